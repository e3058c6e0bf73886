"""The report's strategy comparison on surrogate runs: runs never merged across strategies,
the table checked against a hand computation."""

from __future__ import annotations

import math
import warnings

import pandas as pd
import pytest

from moncae.config import resolve_config
from moncae.evaluation.surrogate import surrogate_task
from moncae.report import build_report
from moncae.report.collect import collect_runs
from moncae.report.strategies import collect_strategies
from moncae.search.loop import run_search

SEEDS = (1, 2, 3)


@pytest.fixture(scope="module")
def runs(tiny_npz, tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    for strategy, generations in (("moncae", 4), ("random", 3)):  # different budgets on purpose
        for seed in SEEDS:
            run_search(resolve_config(dataset=str(tiny_npz), seed=seed, out=str(out / strategy), strategy=strategy,
                                      generations=generations, population=8, max_blocks=4, max_filters=32,
                                      elitism=0.25), task_fn=surrogate_task)
    return out


@pytest.fixture(scope="module")
def results(runs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = build_report(runs)
    return runs, report.parent


def hv_at(run_dir, budget):
    gens = pd.read_csv(run_dir / "generations.csv")
    done = gens[gens["trainings_total"] <= budget]
    return done["front_hypervolume"].iloc[-1] if len(done) else math.nan


@pytest.mark.slow  # scipy alone takes 1.5 s to import; six surrogate runs
def test_strategies_table_matches_a_hand_computation(runs):
    out = runs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (compared,) = collect_strategies(collect_runs(out)).values()
    table = compared["table"].set_index("strategy")
    assert set(table.index) == {"moncae", "random"}
    runs = {s: [out / s / "tiny" / f"seed-{seed}" for seed in SEEDS] for s in ("moncae", "random")}
    budget = min(pd.read_csv(r / "generations.csv")["trainings_total"].iloc[-1]
                 for rs in runs.values() for r in rs)
    values = {s: [hv_at(r, budget) for r in rs] for s, rs in runs.items()}
    for strategy, v in values.items():
        row = table.loc[strategy]
        assert row["trainings"] == budget and row["runs"] == len(SEEDS)
        assert row["front_hv"] == pytest.approx(pd.Series(v).mean())
        assert row["front_hv_std"] == pytest.approx(pd.Series(v).std())
    from tests.test_report_numbers import _sign_flip_p

    # the same seeds for both strategies: paired, exact (3 seeds: 8 sign patterns)
    expected_p = _sign_flip_p([m - r for m, r in zip(values["moncae"], values["random"], strict=True)])
    assert table.loc["moncae", "p_vs_random"] == pytest.approx(expected_p)
    assert pd.isna(table.loc["random", "p_vs_random"])


@pytest.mark.slow  # draws every figure
def test_report_draws_the_comparison_and_never_merges_strategies(results):
    _, folder = results
    written = pd.read_csv(folder / "strategies.csv")
    assert set(written["strategy"]) == {"moncae", "random"}
    assert (folder / "strategies_tiny.png").stat().st_size > 0
    assert "Strategies: tiny" in (folder / "report.md").read_text()
    table1 = pd.read_csv(folder / "table1.csv")
    assert sorted(table1["dataset"]) == ["tiny_moncae", "tiny_random"]
    assert (table1["runs"] == len(SEEDS)).all()
    runs = pd.read_csv(folder / "runs.csv")
    assert len(runs) == 2 * len(SEEDS)


def test_a_p_value_needs_two_runs_on_each_side():
    """One run against one is p = 1 whatever the numbers (an audit found it printed as 1.000)."""
    from moncae.report.strategies import p_value

    assert math.isnan(p_value({1: 45.0}, {1: 40.0})) and math.isnan(p_value({1: 45.0, 2: 46.0}, {1: 40.0}))
    assert math.isnan(p_value({}, {1: 40.0, 2: 41.0}))


def test_an_unfinished_run_is_left_out_of_the_comparison_not_setting_its_budget(runs, tiny_npz, tmp_path):
    """A run stopped after its first generation set every strategy's budget at its few trainings
    (a helper's audit)."""
    import shutil

    from tests.runs import Crash, crashing_after

    out = tmp_path / "R"
    shutil.copytree(runs, out, ignore=shutil.ignore_patterns("report"))
    with pytest.raises(Crash):
        run_search(resolve_config(dataset=str(tiny_npz), seed=9, out=str(out / "moncae"), generations=4,
                                  population=8, max_blocks=4, max_filters=32, elitism=0.25),
                   task_fn=crashing_after(10))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        all_runs = collect_runs(out)
        (compared,) = collect_strategies(all_runs).values()
    assert any("seed-9: unfinished; left out of the comparison" in str(w.message) for w in seen)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (before,) = collect_strategies(collect_runs(runs)).values()
    assert compared["budget"] == before["budget"] and compared["fewest"] == before["fewest"]
    pd.testing.assert_frame_equal(compared["table"], before["table"])
