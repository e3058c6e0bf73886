"""Every search strategy on the surrogate evaluator: completes, is deterministic for a seed,
resumes identically after a crash, and keeps the all-time front. Plus fitness per distinct
network: copies of one network share its contribution, so the GA never drops its best."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from moncae.config import resolve_config
from moncae.errors import MoncaeError
from moncae.evaluation.records import EvalRecord
from moncae.evaluation.surrogate import surrogate_task
from moncae.method.evolution import breed, make_toolbox
from moncae.method.genome import GenomeSpace, random_genome
from moncae.method.objectives import hv_contributions, unique_contributions
from moncae.method.selection import STRATEGY_NAMES, elite_indices
from moncae.search.loop import run_search
from moncae.search.strategies import STRATEGIES
from tests.runs import WITH_INDEX, assert_same, read, resume_after_crash


# -- fitness per distinct network --------------------------------------------------------------
def test_two_copies_of_the_best_network_share_one_positive_contribution():
    points = np.array([[0.10, 2.0], [0.10, 2.0], [0.20, 1.5], [0.30, 3.0]])
    keys = ["best", "best", "small", "worse"]
    per_individual = hv_contributions(points, (4.0, 12.0))
    assert per_individual[0] == per_individual[1] == 0.0  # the old rule: both copies worthless
    fitness = unique_contributions(points, keys, (4.0, 12.0))
    assert fitness[0] == fitness[1] > 0
    assert fitness[0] == pytest.approx(hv_contributions(points[[0, 2, 3]], (4.0, 12.0))[0])
    assert fitness[3] == 0.0  # dominated by another network


def test_a_point_dominated_only_by_its_own_copy_is_not_dominated():
    points = np.array([[0.2, 2.0], [0.2, 2.0]])
    assert list(unique_contributions(points, ["a", "a"], (4.0, 12.0))) == [(4 - 0.2) * (12 - 2)] * 2


def test_the_elite_keeps_the_duplicated_best_network_and_later_generations_hold_it():
    space = GenomeSpace(max_blocks=3, max_filters=16)
    rng = random.Random(0)
    best = random_genome(space, rng)
    others = [random_genome(space, rng) for _ in range(6)]
    population = [best, best, *others]
    keys = ["best", "best", *[f"o{i}" for i in range(6)]]
    # the others trade loss for compression: each adds hypervolume of its own
    points = np.array([[0.05, 1.5], [0.05, 1.5], *[[0.3 + 0.05 * i, 1.4 - 0.1 * i] for i in range(6)]])
    fitness = list(unique_contributions(points, keys, (4.0, 12.0)))
    losses = list(points[:, 0])
    elite = elite_indices(fitness, losses, 2, keys)
    assert elite[0] == 0 and elite[1] != 1  # the best network, then another: distinct first
    toolbox = make_toolbox(space, "paper")
    nextgen = breed(population, fitness, losses, 1, rng, toolbox, 0.25, keys=keys)
    assert nextgen[0] == best
    # and with the old per-individual rule the best network had fitness 0: never an elite
    old = list(hv_contributions(points, (4.0, 12.0)))
    assert best not in [population[i] for i in elite_indices(old, losses, 2)]


def test_best_loss_never_gets_worse_with_the_moncae_strategy(stub_config):
    for seed in range(5):
        result = run_search(stub_config(seed=seed, generations=8), task_fn=surrogate_task)
        best = pd.read_csv(result.run_dir / "generations.csv")["best_rec_loss"]
        assert (best.diff().dropna() <= 0).all(), (seed, list(best))


def test_the_front_fitness_rule_scores_each_generation_against_its_front(stub_config, tmp_path):
    differs = False
    for seed in range(4):
        paper = run_search(stub_config(tmp_path / f"paper{seed}", seed=seed, generations=6),
                           task_fn=surrogate_task)
        front = run_search(stub_config(tmp_path / f"front{seed}", seed=seed, generations=6, fitness="front"),
                           task_fn=surrogate_task)
        pop = pd.read_csv(front.run_dir / "population.csv")
        for _, rows in pop.groupby("generation"):
            points = rows[["rec_loss", "loc"]].to_numpy(dtype=float)
            keys = rows["genome_key"].tolist()
            expected = unique_contributions(points, keys, (4.0, 12.0), rule="front")
            assert rows["fitness"].to_numpy() == pytest.approx(expected, abs=1e-9)
        differs |= not read(paper.run_dir, "population.csv").equals(read(front.run_dir, "population.csv"))
    assert differs  # the rule changes what the GA selects


def test_an_unknown_fitness_rule_is_a_one_line_error(stub_config):
    with pytest.raises(MoncaeError, match="`fitness` must be one of paper, front"):
        stub_config(fitness="sms")


# -- every strategy --------------------------------------------------------------------------
def test_the_registry_has_every_named_strategy():
    assert set(STRATEGIES) == set(STRATEGY_NAMES)


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_strategy_completes_deterministically_and_keeps_the_front(stub_config, tmp_path, strategy):
    a = run_search(stub_config(tmp_path / "a", strategy=strategy), task_fn=surrogate_task)
    b = run_search(stub_config(tmp_path / "b", strategy=strategy), task_fn=surrogate_task)
    assert_same(a.run_dir, b.run_dir, names=WITH_INDEX)
    assert len(a.population) == 8 and len(a.records) == 8
    gens = pd.read_csv(a.run_dir / "generations.csv")
    assert (gens["trainings_total"].diff().dropna() >= 0).all()
    assert (gens["front_hypervolume"].diff().dropna() >= -1e-12).all()
    assert gens["trainings_total"].iloc[-1] == len(pd.read_csv(a.run_dir / "evaluations.csv"))
    assert (gens["front_hypervolume"] >= gens["hypervolume"] - 1e-12).all()


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
@pytest.mark.parametrize("crash_after", [5, 22])
def test_strategy_resumes_identically_after_a_crash(stub_config, tmp_path, strategy, crash_after):
    reference = run_search(stub_config(tmp_path / "ref", strategy=strategy), task_fn=surrogate_task).run_dir
    config = stub_config(tmp_path / "crashed", strategy=strategy)
    resume_after_crash(config, crash_after, must_crash=False)
    assert_same(reference, config.run_dir, names=WITH_INDEX)


@pytest.mark.slow  # two processes per strategy: ~4 s each
@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_strategy_resumes_identically_after_sigkill(tiny_npz, tmp_path, strategy):
    """A search process killed with SIGKILL once generation 0 is checkpointed (mid generation 1,
    files possibly torn), then resumed in a fresh process, equals an uninterrupted run. The
    surrogate evaluator: a real Keras search is killed and resumed in tests/test_search.py."""
    settings = {"dataset": str(tiny_npz), "seed": 3, "strategy": strategy, "generations": 8,
                "population": 8, "max_blocks": 4, "max_filters": 32, "elitism": 0.25}
    reference = run_search(resolve_config(**settings, out=str(tmp_path / "ref")),
                           task_fn=surrogate_task).run_dir
    tests = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)])}
    killed = json.dumps({**settings, "out": str(tmp_path / "killed")})
    cmd = [sys.executable, str(tests / "process_tasks.py"), killed]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run = tmp_path / "killed" / reference.relative_to(tmp_path / "ref")
    deadline = time.time() + 60
    while not (run / "checkpoint.json").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert len(pd.read_csv(run / "evaluations.csv")) < len(pd.read_csv(reference / "evaluations.csv"))
    done = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert_same(reference, run, names=WITH_INDEX)


def test_survival_strategies_end_with_the_best_distinct_networks(stub_config):
    result = run_search(stub_config(strategy="nsga2"), task_fn=surrogate_task)
    keys = [r.genome_key for r in result.records]
    assert len(set(keys)) == len(keys), "survivors are distinct networks"
    front = pd.read_csv(result.run_dir / "pareto_front.csv")
    assert set(front["genome_key"]) <= set(keys) or len(front) > len(keys)


def test_random_strategy_trains_random_genomes_every_generation(stub_config):
    result = run_search(stub_config(strategy="random", generations=3), task_fn=surrogate_task)
    gens = pd.read_csv(result.run_dir / "generations.csv")
    assert (gens["trained"] >= 7).all()  # almost nothing repeats in a random draw


def test_unknown_strategy_is_a_one_line_error(stub_config):
    with pytest.raises(MoncaeError, match="strategy.*moncae, nsga2, mu-plus-lambda, random"):
        stub_config(strategy="hill-climbing")
    assert isinstance(EvalRecord, type)


# -- final = "front" -------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_final_front_ends_with_the_all_time_front_by_loc(stub_config, strategy):
    result = run_search(stub_config(strategy=strategy, final="front", space="dense"), task_fn=surrogate_task)
    front = pd.read_csv(result.run_dir / "pareto_front.csv")
    keys = [r.genome_key for r in result.records]
    assert len(keys) == len(set(keys)) <= 8 and all(r.ok for r in result.records)
    if len(front) <= 8:
        assert set(keys) == set(front["genome_key"])
    else:  # the 8 largest exclusive contributions over the front
        points = front[["rec_loss", "loc"]].to_numpy()
        contrib = hv_contributions(points, (4.0, 12.0))
        assert set(keys) == set(front["genome_key"][np.argsort(-contrib)[:8]])
    locs = [r.loc for r in result.records]
    assert locs == sorted(locs)
    index = pd.read_csv(result.run_dir / "models" / "index.csv")
    assert list(index["genome_key"]) == keys


def test_final_front_keeps_the_best_loss_and_spans_more_loc_than_the_population(stub_config, tmp_path):
    plain = run_search(stub_config(tmp_path / "plain", space="dense"), task_fn=surrogate_task)
    front = run_search(stub_config(tmp_path / "front", space="dense", final="front"), task_fn=surrogate_task)
    best = min(r.rec_loss for r in plain.records if r.ok)
    assert min(r.rec_loss for r in front.records) <= best
    assert len({round(r.loc, 3) for r in front.records}) >= len({round(r.loc, 3) for r in plain.records if r.ok})
    # the searches themselves are the same: only the final choice differs
    assert_same(plain.run_dir, front.run_dir)


def test_final_front_resumes_a_finished_run_to_the_same_final_models(stub_config):
    config = stub_config(final="front")
    first = run_search(config, task_fn=surrogate_task)
    again = run_search(config, resume=True, task_fn=surrogate_task)
    assert [g.key for g in first.population] == [g.key for g in again.population]
