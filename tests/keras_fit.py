"""Keras' own training of a compiled autoencoder, as the reference `fit_autoencoder` must equal:
`fit` with Keras' validation pass, `EarlyStopping(restore_best_weights=True)` and
`TerminateOnNaN`. Not a test module: the tests import it (`from tests.keras_fit import`)."""

from __future__ import annotations

from moncae.model import training


def keras_fit(model, x_train, x_val, *, epochs, batch_size, patience, seed, callbacks=()):
    """Train `model` with Keras' `fit`; return the validation loss of every epoch it ran
    (`patience=None`: no `EarlyStopping`)."""
    import keras

    training.build_optimizer(model)
    stopping = [] if patience is None else [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)]
    history = model.fit(
        training.tf_dataset(x_train, batch_size=batch_size, shuffle_seed=seed, autoencoder=True),
        validation_data=training.tf_dataset(x_val, batch_size=batch_size, autoencoder=True),
        epochs=epochs, verbose=0, shuffle=False,
        callbacks=[*stopping, keras.callbacks.TerminateOnNaN(), *callbacks])
    return history.history["val_loss"]
