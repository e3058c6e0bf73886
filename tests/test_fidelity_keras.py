"""Multi-fidelity with real Keras training (tiny models): a promoted genome continues from its
lower-rung weights, and a real smoke search with rungs completes and resumes identically."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from moncae.config import resolve_config
from moncae.data import DataSpec, cached_dataset
from moncae.evaluation import train
from moncae.evaluation.records import EvalTask, TrainSettings
from moncae.method.genome import GenomeSpace, random_genome
from moncae.search.loop import run_search

pytestmark = pytest.mark.slow  # trains real models


def test_a_promoted_genome_continues_from_its_lower_rung_weights(tiny_npz, monkeypatch):
    spec = DataSpec(str(tiny_npz))
    data = cached_dataset(spec)
    genome = random_genome(GenomeSpace(max_blocks=2, max_filters=8), random.Random(1))
    low = train.evaluate_genome(EvalTask(genome, spec, TrainSettings(1, 32, train_images=32), 7, rung=0,
                                         key="g"), data)
    assert low.record.ok and low.record.train_images == 32 and low.model_bytes
    from moncae.model.inherit import load_parent_model

    expected = load_parent_model(low.model_bytes).get_weights()
    started = {}
    real_fit = train.fit_autoencoder

    def spy(model, *args, **kwargs):
        started["weights"] = model.get_weights()
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(train, "fit_autoencoder", spy)
    top = train.evaluate_genome(EvalTask(genome, spec, TrainSettings(1, 32), 8, rung=1, key="g",
                                         init_model=low.model_bytes), data)
    assert top.record.ok and top.record.rung == 1 and top.record.train_images == len(data.x_train)
    assert len(started["weights"]) == len(expected)
    for a, b in zip(started["weights"], expected):
        np.testing.assert_array_equal(a, b)  # not restarted: training began from rung 0's weights
    # a fresh start from the same seed would have other weights
    fresh = train.evaluate_genome(EvalTask(genome, spec, TrainSettings(1, 32), 8, rung=1, key="g"), data)
    assert fresh.record.rec_loss != top.record.rec_loss


def test_a_real_rungs_search_is_deterministic(tmp_path):
    def run(out):
        config = resolve_config(preset="smoke", dataset="mnist_5k", seed=4, out=str(out),
                                fidelity="rungs", rungs=[[1, 64]], promote=0.5, inherit=True)
        return run_search(config).run_dir

    a, b = run(tmp_path / "a"), run(tmp_path / "b")
    for name in ("evaluations.csv", "population.csv", "generations.csv"):
        da, db = (pd.read_csv(d / name).drop(columns=["fit_seconds", "seconds"], errors="ignore")
                  for d in (a, b))
        pd.testing.assert_frame_equal(da, db, check_exact=True)
    ev = pd.read_csv(a / "evaluations.csv")
    assert set(ev["rung"]) == {0, 1} and (ev.loc[ev["rung"] == 0, "train_images"] == 64).all()
    # generation 1's crossover children started from their parents' weights
    assert (ev.loc[(ev["generation"] == 1) & (ev["rung"] == 0), "inherited"] > 0).any()
    assert (ev.loc[ev["generation"] == 0, "inherited"] == 0).all()  # random genomes: no parents
