"""`fit_autoencoder`'s loop (one traced step per model, `moncae.model.steps`) trains exactly as
Keras' `fit` with early stopping and `TerminateOnNaN` does: the same batches in the same order,
the same weights to the bit, the same epochs; it stops after a batch whose loss is not finite,
and its traced steps do not keep a model alive."""

from __future__ import annotations

import gc
import math
import random
import weakref

import numpy as np
import pytest

from moncae.data import DataSpec, cached_dataset
from moncae.method.genome import GenomeSpace, random_genome
from moncae.model import steps, training
from moncae.model.decode import build_autoencoder

pytestmark = pytest.mark.slow  # trains real models


def _genome(optimizer: str, batch_norm: bool):
    space = GenomeSpace(max_blocks=2, max_filters=8, optimizers=(optimizer,), dropout_rates=(0.0, 0.3),
                        latent_sizes=(4, 8))
    rng = random.Random(11)
    while True:
        genome = random_genome(space, rng)
        blocks = genome.blocks_for((16, 16, 1))
        if any(b.batch_norm for b in blocks) == batch_norm and any(b.dropout for b in blocks):
            return genome


def _model(genome, data, seed=3):
    import keras

    keras.utils.set_random_seed(seed)
    model, _ = build_autoencoder(genome, data.input_shape, seed=seed)
    model.compile(optimizer=training.make_optimizer(genome), loss=training.make_loss("bce"),
                  jit_compile=False)
    return model


def _keras_fit(model, x_train, x_val, *, epochs, batch_size, patience, seed):
    import keras

    training.build_optimizer(model)
    history = model.fit(
        training.tf_dataset(x_train, batch_size=batch_size, shuffle_seed=seed, autoencoder=True),
        validation_data=training.tf_dataset(x_val, batch_size=batch_size, autoencoder=True),
        epochs=epochs, verbose=0, shuffle=False,
        callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                                 restore_best_weights=True),
                   keras.callbacks.TerminateOnNaN()])
    return history.history["val_loss"]


@pytest.mark.parametrize(("optimizer", "batch_norm", "epochs", "patience"), [
    ("adam", True, 5, 10),  # every epoch runs: the shuffles of epochs 3-5 too
    ("nadam", False, 6, 1),  # stops early and restores the best epoch
    ("rmsprop", True, 3, 0),
])
def test_the_loop_trains_as_keras_fit_to_the_bit(tiny_npz, optimizer, batch_norm, epochs, patience):
    data = cached_dataset(DataSpec(str(tiny_npz)))
    genome = _genome(optimizer, batch_norm)
    kwargs = {"epochs": epochs, "batch_size": 16, "patience": patience, "seed": 7}
    x_train = data.x_train[:56]  # an uneven last batch
    keras_model = _model(genome, data)
    keras_val = _keras_fit(keras_model, x_train, data.x_val, **kwargs)
    keras_weights = keras_model.get_weights()
    training.end_session()

    model = _model(genome, data)
    fit = training.fit_autoencoder(model, x_train, data.x_val, **kwargs)
    assert fit.epochs == len(keras_val) and fit.best == min(keras_val)
    assert len(fit.batch_seconds) == 4 * fit.epochs and len(fit.validation_seconds) == fit.epochs
    for ours, theirs in zip(model.get_weights(), keras_weights, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert steps.train_step(model, data.input_shape).experimental_get_tracing_count() == 1
    training.end_session()


def test_a_loss_that_is_not_finite_stops_the_training_after_that_batch(tiny_npz):
    data = cached_dataset(DataSpec(str(tiny_npz)))
    genome = _genome("adam", False)
    runs = []
    for ours in (True, False):
        model = _model(genome, data)
        kernel = model.get_layer("reconstruction").kernel
        kernel.assign(np.full(kernel.shape, np.nan, "float32"))
        if ours:
            fit = training.fit_autoencoder(model, data.x_train, data.x_val, epochs=3, batch_size=16,
                                           patience=2, seed=1)
            runs.append((fit.epochs, len(fit.batch_seconds), math.isnan(fit.best)))
        else:
            val = _keras_fit(model, data.x_train, data.x_val, epochs=3, batch_size=16, patience=2, seed=1)
            runs.append((len(val), 1, all(math.isnan(v) for v in val)))
        training.end_session()
    assert runs[0] == runs[1] == (1, 1, True)


def test_no_images_to_train_on_is_an_error(tiny_npz):
    data = cached_dataset(DataSpec(str(tiny_npz)))
    model = _model(_genome("adam", False), data)
    with pytest.raises(ValueError, match="no images to train on"):
        training.fit_autoencoder(model, data.x_train[:0], data.x_val, epochs=1, batch_size=16,
                                 patience=1, seed=1)
    training.end_session()


def test_the_traced_steps_do_not_keep_a_model_alive(tiny_npz):
    data = cached_dataset(DataSpec(str(tiny_npz)))
    model = _model(_genome("adam", False), data)
    training.fit_autoencoder(model, data.x_train[:32], data.x_val, epochs=1, batch_size=16,
                             patience=1, seed=1)
    assert model in steps._TRAIN_STEPS and model in steps._LOSS_STEPS
    ref = weakref.ref(model)
    del model
    training.end_session()
    gc.collect()
    assert ref() is None
