"""`fit_autoencoder` builds the optimizer before its first step, so the train step is traced once,
not twice (a first trace that creates the optimizer's variables is traced again), and the trained
weights are exactly those of a lazy build inside the trace."""

from __future__ import annotations

import random

import numpy as np
import pytest

from moncae.data import DataSpec, cached_dataset
from moncae.method.genome import GenomeSpace, random_genome
from moncae.model import training
from moncae.model.decode import build_autoencoder

pytestmark = pytest.mark.slow  # trains real models


@pytest.mark.parametrize("optimizer", ["adam", "nadam", "adagrad"])
def test_the_train_step_is_traced_once_and_the_weights_match_a_lazy_build(
        tiny_npz, monkeypatch, optimizer):
    from moncae.model import steps

    data = cached_dataset(DataSpec(str(tiny_npz)))
    space = GenomeSpace(max_blocks=2, max_filters=8, optimizers=(optimizer,), dropout_rates=(0.3,),
                        latent_sizes=(4, 8))
    genome = random_genome(space, random.Random(2))

    def trained(prebuild: bool):
        import keras

        keras.utils.set_random_seed(5)
        model, _ = build_autoencoder(genome, data.input_shape, seed=5)
        model.compile(optimizer=training.make_optimizer(genome), loss=training.make_loss("bce"),
                      jit_compile=False)
        with monkeypatch.context() as patch:
            if not prebuild:  # what fit_autoencoder did before: built inside the first trace
                patch.setattr(training, "build_optimizer", lambda model: None)
            loss = training.fit_autoencoder(model, data.x_train[:48], data.x_val, epochs=2,
                                            batch_size=16, patience=2, seed=5).best
        weights = model.get_weights()
        traces = steps.train_step(model, data.input_shape).experimental_get_tracing_count()
        training.end_session()
        return loss, weights, traces

    lazy_loss, lazy_weights, lazy_traces = trained(prebuild=False)
    loss, weights, count = trained(prebuild=True)
    assert (lazy_traces, count) == (2, 1)
    assert loss == lazy_loss
    for a, b in zip(weights, lazy_weights, strict=True):
        np.testing.assert_array_equal(a, b)
