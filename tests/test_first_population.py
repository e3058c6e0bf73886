"""`first_population`: a wider random generation 0 (every strategy), then `population` per
generation; the default changes nothing. On the surrogate evaluator (no Keras)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from moncae.errors import MoncaeError
from moncae.evaluation.surrogate import surrogate_task
from moncae.method.selection import STRATEGY_NAMES
from moncae.search.loop import run_search
from tests.runs import WITH_INDEX, assert_same, resume_after_crash


def sizes(run_dir) -> list[int]:
    return pd.read_csv(run_dir / "population.csv").groupby("generation").size().tolist()


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_generation_0_is_wider_then_every_generation_has_population(stub_config, tmp_path, strategy):
    wide = run_search(stub_config(tmp_path / "wide", strategy=strategy, first_population=20),
                      task_fn=surrogate_task).run_dir
    default = run_search(stub_config(tmp_path / "default", strategy=strategy), task_fn=surrogate_task).run_dir
    assert sizes(wide) == [20, 8, 8, 8] and sizes(default) == [8, 8, 8, 8]
    first = pd.read_csv(wide / "population.csv").query("generation == 0")["genome_key"].tolist()
    before = pd.read_csv(default / "population.csv").query("generation == 0")["genome_key"].tolist()
    assert first[:8] == before  # the same random draws, then 12 more
    assert len(pd.read_csv(wide / "models/index.csv")) == 8  # the final population has `population`


def test_zero_or_the_population_is_the_default(stub_config, tmp_path):
    a = run_search(stub_config(tmp_path / "a"), task_fn=surrogate_task).run_dir
    b = run_search(stub_config(tmp_path / "b", first_population=8), task_fn=surrogate_task).run_dir
    assert_same(a, b, names=WITH_INDEX)


def test_the_next_generation_is_bred_from_all_of_the_wide_one(stub_config, tmp_path):
    from tests.by_hand import elite_keys

    result = run_search(stub_config(tmp_path, first_population=24, generations=2, elitism=0.25),
                        task_fn=surrogate_task)
    pop = pd.read_csv(result.run_dir / "population.csv")
    first, second = pop[pop["generation"] == 0], pop[pop["generation"] == 1]
    # the elite (2 of 8, first in the next generation) are the best of all 24
    keys = first["genome_key"].tolist()
    elite = elite_keys(first, 2)
    assert second["genome_key"].tolist()[:2] == elite
    assert max(keys.index(k) for k in elite) >= 8  # with this seed one was drawn after the first 8 (index 20)


def test_with_rungs_every_extra_genome_costs_one_rung_0_training(stub_config, tmp_path):
    from tests.test_fidelity import RUNGS, with_model

    result = run_search(stub_config(tmp_path, **RUNGS, first_population=16), task_fn=with_model)
    ev = pd.read_csv(result.run_dir / "evaluations.csv")
    gen0 = ev[ev["generation"] == 0]
    low = gen0[gen0["rung"] == 0]
    assert len(low) == 16
    assert len(gen0[gen0["rung"] == 1]) == math.ceil(0.34 * (low["status"] == "ok").sum())


@pytest.mark.parametrize("crash_after", [5, 19])
def test_a_wide_start_resumes_identically_after_a_crash(stub_config, tmp_path, crash_after):
    reference = run_search(stub_config(tmp_path / "ref", first_population=16), task_fn=surrogate_task).run_dir
    config = stub_config(tmp_path / "crashed", first_population=16)
    resume_after_crash(config, crash_after)
    assert_same(reference, config.run_dir, names=WITH_INDEX)


def test_resume_refuses_another_first_population(stub_config, tmp_path):
    from moncae.errors import RunFolderError

    run_search(stub_config(tmp_path, generations=1), task_fn=surrogate_task)
    with pytest.raises(RunFolderError, match="first_population"):
        run_search(stub_config(tmp_path, generations=1, first_population=12), resume=True,
                   task_fn=surrogate_task)


@pytest.mark.parametrize("value", [5, -1, 10_001])
def test_a_first_population_below_the_population_is_a_one_line_error(stub_config, value):
    with pytest.raises(MoncaeError, match=r"`first_population` must be 0 \(= population\) or in 8\.\.10000"):
        stub_config(first_population=value)
