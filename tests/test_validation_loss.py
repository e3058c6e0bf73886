"""`evaluate_loss` and `fit_autoencoder`'s validation: the compiled loss through one traced forward
pass per model instead of Keras' test step (traced once more per model), with the same numbers
to the bit."""

from __future__ import annotations

import random

import numpy as np
import pytest

from moncae.data import DataSpec, cached_dataset
from moncae.method.genome import GenomeSpace, random_genome
from moncae.model import steps, training
from moncae.model.decode import build_autoencoder
from tests.keras_fit import keras_fit

pytestmark = pytest.mark.slow  # trains real models


def _model(data, optimizer: str = "adam"):
    import keras

    space = GenomeSpace(max_blocks=2, max_filters=8, optimizers=(optimizer,), dropout_rates=(0.3,),
                        latent_sizes=(4, 8))
    genome = random_genome(space, random.Random(4))
    keras.utils.set_random_seed(3)
    model, _ = build_autoencoder(genome, data.input_shape, seed=3)
    model.compile(optimizer=training.make_optimizer(genome), loss=training.make_loss("bce"),
                  jit_compile=False)
    return model


def test_the_loss_is_keras_evaluates_to_the_bit_with_an_uneven_last_batch(tiny_npz):
    data = cached_dataset(DataSpec(str(tiny_npz)))
    model = _model(data)
    bias = model.get_layer("reconstruction").bias
    bias.assign(np.full(bias.shape, 2.0, "float32"))  # outputs near 0.88: black and white images differ
    x = np.zeros((50, *data.input_shape), "float32")
    x[48:] = 1.0  # the last batch of 2 (of 16, 16, 16, 2): white, a loss ~15 times smaller
    keras_loss = float(model.evaluate(training.tf_dataset(x, batch_size=16, autoencoder=True), verbose=0))
    assert training.evaluate_loss(model, x, 16) == keras_loss
    # the batches weighted by their images: an unweighted mean of the batch losses is far off
    means = [training.evaluate_loss(model, x[i:i + 16], 16) for i in range(0, 50, 16)]
    assert abs(np.mean(means) - keras_loss) > 0.1
    training.end_session()


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_fit_gives_keras_validations_numbers_without_tracing_a_test_step(tiny_npz, monkeypatch, optimizer):
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    data = cached_dataset(DataSpec(str(tiny_npz)))
    x_train, x_val = data.x_train[:56], data.x_val  # 56: an uneven last training batch too
    kwargs = {"epochs": 4, "batch_size": 16, "patience": 1, "seed": 5}
    keras_model = _model(data, optimizer)
    keras_val = keras_fit(keras_model, x_train, x_val, **kwargs)
    keras_weights = keras_model.get_weights()
    training.end_session()

    test_steps = []
    test_step = TensorFlowTrainer.test_step
    monkeypatch.setattr(TensorFlowTrainer, "test_step",
                        lambda self, batch: test_steps.append(1) or test_step(self, batch))
    model = _model(data, optimizer)
    fit = training.fit_autoencoder(model, x_train, x_val, **kwargs)
    best = fit.best
    assert test_steps == []
    assert fit.epochs == len(keras_val) and best == min(keras_val)
    for ours, theirs in zip(model.get_weights(), keras_weights, strict=True):  # the best epoch's
        np.testing.assert_array_equal(ours, theirs)
    assert best == training.evaluate_loss(model, x_val, 16)  # the restored model's own loss
    training.evaluate_loss(model, data.x_train[:7], 16)  # another batch size: no new trace
    assert steps.loss_step(model, data.input_shape).experimental_get_tracing_count() == 1
    training.end_session()


def test_a_model_with_losses_of_its_own_is_refused_not_measured_short():
    import keras

    inputs = keras.Input((4, 4, 1))
    flat = keras.layers.Flatten()(inputs)
    dense = keras.layers.Dense(16, activation="sigmoid", kernel_regularizer="l2")(flat)
    model = keras.Model(inputs, keras.layers.Reshape((4, 4, 1))(dense))
    model.compile(optimizer="adam", loss=training.make_loss("bce"))
    with pytest.raises(ValueError, match="adds losses of its own"):
        training.evaluate_loss(model, np.zeros((3, 4, 4, 1), "float32"), 2)
    training.end_session()
