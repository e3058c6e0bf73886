"""More objectives than the paper's two: the objective set, `--objectives`/`--ref`, and the
search's fitness over them (surrogate evaluator, no Keras)."""

from __future__ import annotations

import math
import random

import moocore
import numpy as np
import pandas as pd
import pytest

from moncae.config import resolve_config
from moncae.errors import MoncaeError
from moncae.evaluation.records import EvalRecord
from moncae.evaluation.surrogate import surrogate_task
from moncae.method.genome import GenomeSpace, random_genome
from moncae.method.objective_set import OBJECTIVES, ObjectiveSet, parse_objectives
from moncae.method.selection import STRATEGY_NAMES
from moncae.search.loop import run_search
from moncae.search.strategies.survival import nsga2_survivors
from tests.runs import WITH_INDEX, assert_same, resume_after_crash


def _record(key="k", rec_loss=0.2, loc=1.5, params=1000, flops=10**6, latency_ms=0.5, status="ok"):
    return EvalRecord(genome_key=key, architecture="", rec_loss=rec_loss, loc=loc, bottleneck="",
                      params=params, epochs=1, fit_seconds=0.0, seconds=0.0, status=status,
                      flops=flops, latency_ms=latency_ms)


# -- the objective set ---------------------------------------------------------------------------
def test_point_is_each_objective_on_its_documented_scale():
    objectives = ObjectiveSet(("rec_loss", "loc", "params", "flops", "latency"), (4, 12, 8, 12, 1000))
    assert objectives.point(_record()) == pytest.approx((0.2, 1.5, 3.0, 6.0, 0.5))
    assert objectives.columns == ["rec_loss", "loc", "log10_params", "log10_flops", "latency_ms"]
    assert objectives.extra_columns == ["log10_params", "log10_flops", "latency_ms"]


def test_a_failed_record_sits_at_the_reference_point_in_every_objective():
    objectives = ObjectiveSet(("rec_loss", "loc", "params"), (4, 12, 8))
    assert objectives.point(_record(status="failed", params=0)) == (4.0, 12.0, 8.0)


def test_default_reference_values_are_the_papers_then_each_objectives_own():
    assert ObjectiveSet.default_ref(("rec_loss", "loc")) == (4.0, 12.0)
    assert ObjectiveSet.default_ref(("rec_loss", "loc", "latency", "params")) == (4.0, 12.0, 1000.0, 8.0)
    config = resolve_config(dataset="mnist_5k", objectives="rec_loss,loc,flops")
    assert config.ref_point == (4.0, 12.0, OBJECTIVES["flops"].default_ref)
    assert resolve_config(dataset="mnist_5k").ref_point == (4.0, 12.0)


@pytest.mark.parametrize("value, message", [
    ("rec_loss", "start with rec_loss,loc"), ("rec_loss,loc,size", "unknown"),
    (["rec_loss", "loc", "loc"], "once"), (3, "list of names"),
])
def test_bad_objectives_are_one_line_errors(value, message):
    with pytest.raises(MoncaeError, match=message):
        parse_objectives(value)


def test_the_reference_point_needs_one_value_per_objective():
    with pytest.raises(MoncaeError, match="one value per objective"):
        resolve_config(dataset="mnist_5k", objectives=["rec_loss", "loc", "params"], ref_point=[4, 12])
    with pytest.raises(MoncaeError, match="one value per objective"):
        ObjectiveSet(("rec_loss", "loc"), (4, 12, 1))


# -- the search over three or more objectives -----------------------------------------------------
def _hv_contributions_per_distinct_key(points: np.ndarray, keys: list[str], ref) -> np.ndarray:
    """The fitness computed here independently: moocore over the first point of each key."""
    first = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    rows = list(first.values())
    contrib = moocore.hv_contributions(np.minimum(points[rows], ref), ref=np.asarray(ref, float),
                                       ignore_dominated=False)
    value = dict(zip(first, contrib))
    return np.array([value[k] for k in keys])


@pytest.mark.parametrize("objectives, ref", [
    ("rec_loss,loc,params", (4.0, 12.0, 8.0)),
    ("rec_loss,loc,flops,latency", (0.5, 3.0, 9.0, 50.0)),
])
def test_fitness_matches_moocore_on_the_logged_points(stub_config, objectives, ref):
    config = stub_config(objectives=objectives, ref_point=list(ref))
    result = run_search(config, task_fn=surrogate_task)
    pop = pd.read_csv(result.run_dir / "population.csv")
    columns = config.objective_set().columns
    assert set(columns) <= set(pop.columns)
    evaluations = pd.read_csv(result.run_dir / "evaluations.csv").set_index("genome_key")
    checked = 0
    for _, gen in pop.groupby("generation"):
        points = gen[columns].to_numpy(dtype=float)
        expected = _hv_contributions_per_distinct_key(points, list(gen["genome_key"]), ref)
        np.testing.assert_allclose(gen["fitness"].to_numpy(), expected, rtol=1e-9, atol=1e-12)
        checked += int((expected > 0).sum())
    assert checked > 0  # some fitness is positive: the comparison is not all zeros
    if "log10_params" in columns:  # the logged objective is log10 of the evaluation's parameters
        ok = pop[pop["genome_key"].map(evaluations["status"]) == "ok"]
        np.testing.assert_allclose(ok["log10_params"], np.log10(ok["genome_key"].map(evaluations["params"])))
    gens = pd.read_csv(result.run_dir / "generations.csv")
    assert (gens["front_hypervolume"].diff().dropna() >= -1e-12).all()
    front = pd.read_csv(result.run_dir / "pareto_front.csv")
    assert set(columns) <= set(front.columns)
    assert np.all(moocore.is_nondominated(front[columns].to_numpy(dtype=float)))


def test_a_third_objective_changes_what_the_search_keeps(stub_config, tmp_path):
    two = run_search(stub_config(tmp_path / "two"), task_fn=surrogate_task)
    three = run_search(stub_config(tmp_path / "three", objectives="rec_loss,loc,params"),
                       task_fn=surrogate_task)
    assert [g.key for g in two.population] != [g.key for g in three.population]
    front2 = pd.read_csv(two.run_dir / "pareto_front.csv")
    front3 = pd.read_csv(three.run_dir / "pareto_front.csv")
    assert "log10_params" not in front2.columns and "log10_params" in front3.columns


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_every_strategy_runs_three_objectives_and_resumes_identically(stub_config, tmp_path, strategy):
    settings = {"strategy": strategy, "objectives": "rec_loss,loc,params"}
    reference = run_search(stub_config(tmp_path / "ref", **settings), task_fn=surrogate_task).run_dir
    config = stub_config(tmp_path / "crashed", **settings)
    resume_after_crash(config, 13)
    assert_same(reference, config.run_dir, names=WITH_INDEX)


def test_nsga2_survival_ranks_on_every_objective():
    """Two networks equal in (loss, LOC): the one with fewer parameters dominates in 3-D."""
    space = GenomeSpace(max_blocks=3, max_filters=16)
    rng = random.Random(0)
    genomes = [random_genome(space, rng) for _ in range(2)]
    records = {"a": _record("a", params=10**6), "b": _record("b", params=10**3)}
    objectives = ObjectiveSet(("rec_loss", "loc", "params"), (4, 12, 8))
    _, keys = nsga2_survivors(genomes, ["a", "b"], records.__getitem__, 1, objectives.point)
    assert keys == ["b"]
    two = ObjectiveSet(("rec_loss", "loc"), (4, 12))
    _, keys = nsga2_survivors(genomes, ["a", "b"], records.__getitem__, 2, two.point)
    assert sorted(keys) == ["a", "b"]


def test_a_reference_point_tighter_than_every_network_warns_once(stub_config):
    messages = []

    class Progress:
        def __getattr__(self, name):
            return lambda *args, **kwargs: None

        def message(self, text):
            messages.append(text)

    run_search(stub_config(ref_point=[0.01, 0.1]), task_fn=surrogate_task, progress=Progress())
    warnings = [m for m in messages if "reference point" in m]
    assert len(warnings) == 1 and "loosen --ref" in warnings[0]
    messages.clear()
    run_search(stub_config(seed=4), task_fn=surrogate_task, progress=Progress())
    assert not [m for m in messages if "reference point" in m]


def test_surrogate_latency_is_recorded_only_when_it_is_an_objective(stub_config, tmp_path):
    plain = run_search(stub_config(tmp_path / "plain"), task_fn=surrogate_task)
    timed = run_search(stub_config(tmp_path / "timed", objectives="rec_loss,loc,latency"),
                       task_fn=surrogate_task)
    assert pd.read_csv(plain.run_dir / "evaluations.csv")["latency_ms"].isna().all()
    latency = pd.read_csv(timed.run_dir / "evaluations.csv")["latency_ms"]
    assert latency.notna().all() and (latency > 0).all()
    assert all(math.isfinite(v) for v in pd.read_csv(timed.run_dir / "population.csv")["latency_ms"])


# -- the report ------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:.*no saved final model")
def test_the_report_draws_every_pair_of_three_objectives(stub_config, tmp_path):
    from moncae.report import build_report
    from moncae.report.collect import collect_final_models, collect_projections, collect_runs

    config = stub_config(tmp_path / "results", objectives="rec_loss,loc,params")
    run_search(config, task_fn=surrogate_task)
    report = build_report(tmp_path / "results")
    assert (report.parent / f"projections_{config.run_dir.parent.name}.png").stat().st_size > 0
    assert "Every pair of objectives" in report.read_text()
    run = collect_runs(tmp_path / "results")[0]
    info = collect_projections(collect_final_models(run), config.objective_set())
    evaluations = pd.read_csv(config.run_dir / "evaluations.csv").drop_duplicates("genome_key")
    expected = sorted(np.log10(evaluations.set_index("genome_key").loc[
        collect_final_models(run)["genome_key"], "params"]))
    np.testing.assert_allclose(sorted(info["points"]["log10_params"]), expected)
    assert info["on_front"].any()


@pytest.mark.filterwarnings("ignore:.*no saved final model")
def test_a_two_objective_report_draws_no_projections(stub_config, tmp_path):
    from moncae.report import build_report

    run_search(stub_config(tmp_path / "results"), task_fn=surrogate_task)
    report = build_report(tmp_path / "results")
    assert not list(report.parent.glob("projections_*.png"))


@pytest.mark.slow
def test_a_real_smoke_search_on_four_objectives_and_its_report(tmp_path):
    """Keras: parameters and the latency measured after training; fitness from moocore."""
    from click.testing import CliRunner

    from moncae.cli.main import main

    out = tmp_path / "results"
    args = ["search", "--dataset", "mnist_5k", "--preset", "smoke", "--seed", "1", "--workers", "1",
            "--objectives", "rec_loss,loc,params,latency", "--out", str(out), "--quiet"]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    run_dir = out / "mnist_5k" / "seed-1"
    evaluations = pd.read_csv(run_dir / "evaluations.csv")
    ok = evaluations[evaluations["status"] == "ok"]
    assert len(ok) and (ok["latency_ms"] > 0).all() and (ok["flops"] > 0).all()
    pop = pd.read_csv(run_dir / "population.csv")
    ref = (4.0, 12.0, 8.0, 1000.0)
    columns = ["rec_loss", "loc", "log10_params", "latency_ms"]
    for _, gen in pop.groupby("generation"):
        expected = _hv_contributions_per_distinct_key(gen[columns].to_numpy(dtype=float),
                                                      list(gen["genome_key"]), ref)
        np.testing.assert_allclose(gen["fitness"].to_numpy(), expected, rtol=1e-9)
    report = CliRunner().invoke(main, ["report", str(out)])
    assert report.exit_code == 0, report.output
    assert (out / "report" / "projections_mnist_5k.png").stat().st_size > 0
