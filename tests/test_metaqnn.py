"""`metaqnn` (MetaQNN Q-learning): the Q-update, the epsilon schedule, replay, the genome <->
trajectory map, and the strategy on the surrogate evaluator (no Keras). Completion, determinism
and crash/resume are also covered for every strategy in test_strategies.py."""

from __future__ import annotations

import json
import random
from collections import Counter

import pandas as pd
import pytest

from moncae.errors import MoncaeError
from moncae.evaluation.surrogate import surrogate_task
from moncae.method.genome import GenomeSpace, random_genome
from moncae.method.qlearning import (
    START,
    Trajectory,
    epsilon_schedule,
    explore_action,
    genome_of,
    greedy_action,
    q_updated,
    replay,
    rollout,
    trajectory,
)
from moncae.search.loop import run_search
from moncae.search.strategies.metaqnn import MetaQNN

SPACE = GenomeSpace(max_blocks=4, max_filters=32)


# -- the Q-update ------------------------------------------------------------------------------
def test_q_update_is_eq_4_1():
    assert q_updated(0.5, 1.0, 0.0, alpha=0.01, gamma=1.0) == pytest.approx(0.99 * 0.5 + 0.01 * 1.0)
    assert q_updated(0.2, 0.0, 0.8, alpha=0.1, gamma=0.9) == pytest.approx(0.9 * 0.2 + 0.1 * 0.72)


def test_replay_updates_the_last_transition_first_with_the_reward_only_there():
    path = Trajectory(("start", "1:a", "2:b"), ("B:a", "B:b", "T:x"))
    q: dict = {}
    replay(q, path, 1.0, alpha=0.5, gamma=1.0)
    # last first: T gets 0.5 * 1; then B:b sees max Q(2:b) = 0.5 -> 0.25; then B:a -> 0.125
    assert q == {"2:b": {"T:x": 0.5}, "1:a": {"B:b": 0.25}, "start": {"B:a": 0.125}}
    replay(q, path, 1.0, alpha=0.5, gamma=1.0)
    assert q["2:b"]["T:x"] == pytest.approx(0.75)
    assert q["1:a"]["B:b"] == pytest.approx(0.5 * 0.25 + 0.5 * 0.75)
    assert q["start"]["B:a"] == pytest.approx(0.5 * 0.125 + 0.5 * q["1:a"]["B:b"])


def test_replay_uses_the_best_next_action_and_refuses_negative_rewards():
    q = {"1:a": {"B:z": 0.9, "T:y": 0.1}}
    replay(q, Trajectory(("start", "1:a"), ("B:a", "T:x")), 0.0, alpha=0.1, gamma=1.0)
    assert q["start"]["B:a"] == pytest.approx(0.1 * 0.9)  # max over the next state, not the taken action
    with pytest.raises(MoncaeError, match="reward"):
        replay(q, Trajectory(("start",), ("T:x",)), -1.0)


# -- the epsilon schedule ----------------------------------------------------------------------
def test_epsilon_falls_from_one_to_a_tenth_in_steps():
    assert epsilon_schedule(1) == [1.0]
    assert epsilon_schedule(2) == [1.0, 0.1]
    assert epsilon_schedule(10) == [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    twenty = epsilon_schedule(20)
    assert twenty[0] == 1.0 and twenty[-1] == 0.1 and len(twenty) == 20
    assert all(a >= b for a, b in zip(twenty, twenty[1:]))
    assert all(round(e * 10) == pytest.approx(e * 10) for e in twenty)  # multiples of 0.1
    with pytest.raises(MoncaeError):
        epsilon_schedule(0)


# -- genomes and trajectories ------------------------------------------------------------------
def test_a_genome_and_its_trajectory_build_the_same_network():
    rng = random.Random(0)
    for _ in range(200):
        genome = random_genome(SPACE, rng)
        path = trajectory(genome)
        assert path.states[0] == START and path.actions[-1].startswith("T:")
        assert len(path.actions) == len(genome.blocks) + 1 == len(path.states)
        rebuilt = genome_of(path.actions, SPACE)
        assert rebuilt.key == genome.key
        assert trajectory(rebuilt) == path


def test_random_actions_build_valid_genomes_of_uniform_depth():
    rng = random.Random(1)
    depths = Counter(len(rollout({}, SPACE, 1.0, rng).blocks) for _ in range(4000))
    assert set(depths) == {1, 2, 3, 4}
    assert all(abs(n / 4000 - 0.25) < 0.03 for n in depths.values())
    for _ in range(50):  # never widens: a block's filters at most the last's
        state = "2:1,0,0,0,0,0"
        action = explore_action(state, SPACE, rng)
        assert action.startswith("T:") or int(action[2:].split(",")[0]) <= 1
    assert explore_action("4:0,0,0,0,0,0", SPACE, rng).startswith("T:")  # at max_blocks: terminate


def test_greedy_takes_the_best_visited_action_and_explores_when_none_pays():
    rng = random.Random(0)
    assert greedy_action({}, START, rng) is None
    assert greedy_action({START: {"B:a": 0.0}}, START, rng) is None
    assert greedy_action({START: {"B:a": 0.1, "B:b": 0.3}}, START, rng) == "B:b"
    picks = {greedy_action({START: {"B:a": 0.3, "B:b": 0.3}}, START, random.Random(s)) for s in range(20)}
    assert picks == {"B:a", "B:b"}


def test_after_replay_greedy_rollouts_rebuild_the_rewarded_network():
    rng = random.Random(2)
    good, bad = random_genome(SPACE, rng), random_genome(SPACE, rng)
    q: dict = {}
    for _ in range(20):
        replay(q, trajectory(good), 1.0)
        replay(q, trajectory(bad), 0.0)
    assert rollout(q, SPACE, 0.0, rng).key == good.key


# -- the strategy ------------------------------------------------------------------------------
def test_metaqnn_trains_a_full_population_of_new_networks_and_its_state_is_json(stub_config):
    result = run_search(stub_config(strategy="metaqnn", generations=5), task_fn=surrogate_task)
    gens = pd.read_csv(result.run_dir / "generations.csv")
    assert (gens["trained"] == 8).all()  # redrawn until new: equal trainings to the others
    checkpoint = json.loads((result.run_dir / "checkpoint.json").read_text())
    state = checkpoint["strategy"]
    assert len(state["memory"]) == 40 and state["q"]
    restored = MetaQNN(SPACE, population=8, ref_point=(4.0, 12.0), generations=5)
    restored.load_state(json.loads(json.dumps(state)))
    assert restored.state() == state


def test_the_schedule_follows_the_runs_generations(stub_config):
    from moncae.search.strategies import make_strategy

    config = stub_config(strategy="metaqnn", generations=10)
    strategy = make_strategy(config, config.genome_space())
    assert strategy.epsilons == epsilon_schedule(10)


@pytest.mark.slow  # scipy alone takes 1.5 s to import
def test_metaqnn_appears_in_the_reports_strategy_comparison(tiny_npz, tmp_path):
    import warnings

    from moncae.config import resolve_config
    from moncae.report.collect import collect_runs
    from moncae.report.strategies import collect_strategies, strategies_markdown

    for strategy in ("metaqnn", "random"):
        for seed in (1, 2):
            run_search(resolve_config(dataset=str(tiny_npz), seed=seed, out=str(tmp_path / strategy),
                                      strategy=strategy, generations=3, population=8, max_blocks=4,
                                      max_filters=32), task_fn=surrogate_task)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (compared,) = collect_strategies(collect_runs(tmp_path)).values()
    table = compared["table"].set_index("strategy")
    assert set(table.index) == {"metaqnn", "random"}
    assert table.loc["metaqnn", "runs"] == 2 and table.loc["metaqnn", "trainings"] == 24
    assert "| metaqnn |" in strategies_markdown(compared["table"])


def test_the_reward_is_the_exclusive_hv_contribution_over_everything_trained():
    from moncae.evaluation.records import EvalRecord
    from moncae.search.strategies.base import Generation

    rng = random.Random(5)
    genomes = [random_genome(SPACE, rng) for _ in range(3)]
    keys = [g.key for g in genomes]
    points = {keys[0]: (0.1, 2.0), keys[1]: (0.2, 3.0), keys[2]: (0.3, 1.0)}  # keys[1] is dominated
    records = {k: EvalRecord(genome_key=k, architecture="", rec_loss=p[0], loc=p[1], bottleneck="", params=0,
                             epochs=1, fit_seconds=0.0, seconds=0.0, status="ok") for k, p in points.items()}
    strategy = MetaQNN(SPACE, population=3, ref_point=(4.0, 12.0), generations=3)
    generation = Generation(0, genomes, keys, [records[k] for k in keys], [0.0] * 3, records.__getitem__)
    assert strategy.remember(generation) == 3 and strategy.remember(generation) == 0
    strategy.learn(generation, random.Random(0), 300)
    last = [(trajectory(g).states[-1], trajectory(g).actions[-1]) for g in genomes]
    q = [strategy.q.get(s, {}).get(a, 0.0) for s, a in last]
    assert q[0] > 0 and q[2] > 0 and q[1] == 0.0  # on the front pays, dominated does not
    # what each adds alone (reference (4, 12)): (0.3 - 0.1) x (12 - 2) less what the point it alone
    # dominates covers there, (0.3 - 0.2) x (12 - 3); and (4 - 0.3) x (2 - 1)
    rewards = strategy.contributions([records[k] for k in keys], keys)
    assert rewards == pytest.approx([2.0 - 0.9, 0.0, 3.7])


def test_a_rollout_is_new_as_the_search_s_cache_tells_networks_apart():
    """On 2x2 images no block can pool (a side below `min_pool_side`), so a pool gene makes no
    other network (`key_for`): the sampler counted such rollouts as new, and the search then trained fewer
    networks than the strategy meant (an audit). A space of few networks makes it show."""
    space = GenomeSpace(max_blocks=3, min_filters=4, max_filters=4, kernel_sizes=(3,), activations=("relu",),
                        dropout_rates=(0.0,), optimizers=("adam",), learning_rates=(1e-3,))
    shape = (2, 2, 1)
    strategy = MetaQNN(space, population=6, ref_point=(4.0, 12.0), generations=3)
    rng = random.Random(0)
    genomes = [random_genome(space, rng) for _ in range(10)]
    strategy.memory.add(genomes, [g.key_for(shape) for g in genomes])
    known = set(strategy.memory.keys)
    for seed in range(20):
        drawn = [g.key_for(shape) for g in strategy.sample(1.0, random.Random(seed), shape)]
        assert len(set(drawn)) == len(drawn) and not known & set(drawn)
    collided = 0
    for seed in range(20):  # the shape-free key, as before: some rollouts repeat a network
        drawn = [g.key_for(shape) for g in strategy.sample(1.0, random.Random(seed))]
        collided += len(drawn) - len(set(drawn) - known)
    assert collided > 0


@pytest.mark.parametrize("strategy", ["metaqnn", "random"])
def test_the_checkpoint_keeps_genes_and_reads_an_older_one_of_whole_configs(stub_config, strategy):
    """The strategy's memory of trained networks is saved as keys and genes (not a genome config
    repeating the space per network); a checkpoint written before, with whole configs, loads to the
    same memory and the run resumes as if uninterrupted."""
    from moncae.search.strategies import make_strategy
    from moncae.store.checkpoint import load_checkpoint

    config = stub_config(strategy=strategy, generations=3)
    run = run_search(config, task_fn=surrogate_task).run_dir
    state = load_checkpoint(run / "checkpoint.json").strategy
    entries = state["memory" if strategy == "metaqnn" else "seen"]
    assert entries and all(set(e) == {"key", "genes"} for e in entries)
    older = [{"key": e["key"], "genome": {"genes": e["genes"], "space": config.genome_space().to_config()}}
             for e in entries]
    fresh = make_strategy(config, config.genome_space())
    fresh.load_state({**state, ("memory" if strategy == "metaqnn" else "seen"): older})
    memory = fresh.memory if strategy == "metaqnn" else fresh.seen
    assert memory.to_state() == entries
