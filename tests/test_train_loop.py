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
from tests.keras_fit import keras_fit

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


@pytest.mark.parametrize(("optimizer", "batch_norm", "epochs", "patience"), [
    ("adam", True, 5, 10),  # every epoch runs: the shuffles of epochs 3-5 too
    ("nadam", False, 6, 1),  # stops early and restores the best epoch
    ("rmsprop", True, 3, 0),
    ("adam", False, 4, None),  # no early stopping: every epoch, the last epoch's weights
])
def test_the_loop_trains_as_keras_fit_to_the_bit(tiny_npz, optimizer, batch_norm, epochs, patience):
    data = cached_dataset(DataSpec(str(tiny_npz)))
    genome = _genome(optimizer, batch_norm)
    kwargs = {"epochs": epochs, "batch_size": 16, "patience": patience, "seed": 7}
    x_train = data.x_train[:56]  # an uneven last batch
    keras_model = _model(genome, data)
    keras_val = keras_fit(keras_model, x_train, data.x_val, **kwargs)
    keras_weights = keras_model.get_weights()
    training.end_session()

    model = _model(genome, data)
    fit = training.fit_autoencoder(model, x_train, data.x_val, **kwargs)
    assert fit.epochs == len(keras_val) and fit.best == (keras_val[-1] if patience is None else min(keras_val))
    if patience is None:
        assert fit.epochs == epochs
    assert len(fit.batch_seconds) == 4 * fit.epochs and len(fit.validation_seconds) == fit.epochs
    for ours, theirs in zip(model.get_weights(), keras_weights, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert steps.train_step(model, data.input_shape).experimental_get_tracing_count() == 1
    training.end_session()


def test_a_loss_that_is_not_finite_stops_the_training_after_that_batch(tiny_npz):
    import keras

    data = cached_dataset(DataSpec(str(tiny_npz)))
    genome = _genome("adam", False)
    kwargs = {"epochs": 3, "batch_size": 16, "patience": 2, "seed": 1}  # 6 batches an epoch

    def broken():
        model = _model(genome, data)
        kernel = model.get_layer("reconstruction").kernel
        kernel.assign(np.full(kernel.shape, np.nan, "float32"))
        return model

    fit = training.fit_autoencoder(broken(), data.x_train, data.x_val, **kwargs)
    training.end_session()
    batches = []
    count = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: batches.append(batch))
    val = keras_fit(broken(), data.x_train, data.x_val, callbacks=[count], **kwargs)
    training.end_session()
    assert (fit.epochs, len(fit.batch_seconds)) == (len(val), len(batches)) == (1, 1)
    assert math.isnan(fit.best) and math.isnan(val[0])


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


def test_a_notebook_s_dtype_policy_neither_changes_a_training_nor_is_lost(tiny_npz):
    """A `workers=1` search trains in the notebook's process (a helper's audit: a mixed_bfloat16
    policy changed the first training and was then reset to float32 by `clear_session`)."""
    import keras

    from moncae.evaluation.records import EvalTask, TrainSettings
    from moncae.evaluation.train import run_task

    spec = DataSpec(str(tiny_npz), train_size=32, val_size=16)
    genome = _genome("adam", False)
    task = EvalTask(genome, spec, TrainSettings(1, 16, "bce"), seed=5, ref_point=(4.0, 11.0))
    plain = run_task(task).record
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = run_task(task).record
        assert keras.config.dtype_policy().name == "mixed_bfloat16"  # the notebook's, still
    finally:
        keras.config.set_dtype_policy("float32")
    assert (mixed.status, mixed.rec_loss) == (plain.status, plain.rec_loss)
