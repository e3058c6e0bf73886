"""Warm continuations (moncae.model.warm): a promoted genome that continues from the model its
lower rung left in this process gives exactly the result of a fresh build from the saved bytes,
for every optimizer, with dropout and batch norm; and it is not traced again."""

from __future__ import annotations

import random

import numpy as np
import pytest

from moncae.data import DataSpec, cached_dataset
from moncae.evaluation import train
from moncae.evaluation.records import EvalTask, TrainSettings
from moncae.method.genome import KNOWN_OPTIMIZERS, GenomeSpace, random_genome
from moncae.model import steps
from moncae.model.inherit import load_parent_model
from moncae.model.warm import WarmModels, digest, warm_models

pytestmark = pytest.mark.slow  # trains real models


def _genome(optimizer: str, seed: int):
    """A random 2-block genome with this optimizer, dropout > 0 and batch norm in a block."""
    space = GenomeSpace(max_blocks=2, max_filters=8, optimizers=(optimizer,), dropout_rates=(0.3,),
                        latent_sizes=(4, 8))
    rng = random.Random(seed)
    while True:
        genome = random_genome(space, rng)
        blocks = genome.blocks_for((16, 16, 1))
        if any(b.batch_norm for b in blocks) and genome.optimizer == optimizer:
            return genome


@pytest.mark.parametrize("optimizer", sorted(KNOWN_OPTIMIZERS))
def test_a_warm_continuation_equals_a_fresh_one(tiny_npz, optimizer):
    spec = DataSpec(str(tiny_npz))
    data = cached_dataset(spec)
    genome = _genome(optimizer, 3)
    warm_models.clear()
    settings = TrainSettings(2, 16, train_images=48, patience=2)
    low = train.evaluate_genome(EvalTask(genome, spec, settings, 5, key="g", keep_warm=True), data)
    assert low.record.ok and len(warm_models) == 1
    top_task = EvalTask(genome, spec, TrainSettings(2, 16, patience=2), 6, key="g", rung=1,
                        init_model=low.model_bytes)
    hits = warm_models.hits
    warm = train.evaluate_genome(top_task, data)
    assert warm_models.hits == hits + 1 and len(warm_models) == 0  # it used the kept model
    fresh = train.evaluate_genome(top_task, data)  # nothing kept now: built and loaded afresh
    assert warm_models.hits == hits + 1
    assert warm.record.ok and fresh.record.ok, (warm.record.error, fresh.record.error)
    assert warm.record.rec_loss == fresh.record.rec_loss
    assert (warm.record.epochs, warm.record.params) == (fresh.record.epochs, fresh.record.params)
    for a, b in zip(load_parent_model(warm.model_bytes).get_weights(),
                    load_parent_model(fresh.model_bytes).get_weights()):
        np.testing.assert_array_equal(a, b)
    assert warm.record.rec_loss != low.record.rec_loss  # it did train on


def test_a_warm_continuation_is_not_traced_again(tiny_npz):
    spec = DataSpec(str(tiny_npz))
    data = cached_dataset(spec)
    genome = _genome("adam", 4)
    warm_models.clear()
    low = train.evaluate_genome(EvalTask(genome, spec, TrainSettings(1, 16, train_images=48), 5,
                                         key="g", keep_warm=True), data)
    model = warm_models._kept[digest(low.model_bytes)].model
    traced = steps.train_step(model, data.input_shape)
    top = train.evaluate_genome(EvalTask(genome, spec, TrainSettings(1, 16), 6, key="g", rung=1,
                                         init_model=low.model_bytes, keep_warm=True), data)
    assert top.record.ok
    assert steps.train_step(model, data.input_shape) is traced  # the same step, kept for a next rung
    assert traced.experimental_get_tracing_count() == 1
    assert warm_models._kept[digest(top.model_bytes)].model is model


def test_the_store_is_bounded_and_keyed_by_the_saved_bytes():
    class Model:
        def __init__(self, params):
            self.params = params

        def count_params(self):
            return self.params

    store = WarmModels(max_models=2, max_params=100)
    store.keep("a", Model(10), [])
    store.keep("b", Model(10), [])
    store.keep("c", Model(10), [])  # the oldest goes
    assert store.take("a") is None and store.take("b") is not None
    store.keep("d", Model(95), [])  # over the parameter bound together with c: c goes
    assert store.take("c") is None and store.take("d") is not None
    store.keep("e", Model(101), [])  # alone over the bound: never kept
    assert len(store) == 0
    assert digest(b"x") != digest(b"y") and digest(b"x") == digest(bytearray(b"x"))
