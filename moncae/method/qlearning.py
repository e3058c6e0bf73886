"""MetaQNN's tabular Q-learning (Baker et al. 2017, re-implemented in the RL architecture-search
thesis, Algorithm 4 and eq. 4.1) over this tool's genome: the pure parts, no Keras, no DEAP.

The MDP. A network is built block by block, as a trajectory of states and actions:
- a **state** is the depth (blocks built so far) and the last block built, `"d:f,k,bn,act,drop,pool"`
  (gene indices of that block; filters already capped, they never widen), or `START` before the
  first block;
- an **action** is the next block's six genes, `"B:f,k,bn,act,drop,pool"` (filters at most the last
  block's: the genome's never-widen rule, so every action builds exactly what it says), or
  **terminate**, `"T:[latent,]optimizer,learning_rate"`: the training genes are chosen when the
  network is finished. The first block is always built; at `max_blocks` only terminate is allowed.

The reward (given on the terminating transition only, 0 on the others) is a scalar the strategy
supplies; `moncae.search.strategies.metaqnn` uses the network's exclusive hypervolume contribution.

The Q-update (eq. 4.1, MetaQNN's `update_q_value_sequence`): over a trajectory, last transition
first, `Q(s, a) <- (1 - alpha) Q(s, a) + alpha (r + gamma max_a' Q(s', a'))`, with `max` over the
next state's actions (0 after terminate). The table holds only visited pairs; an unvisited one
is `Q0 = 0`, and since every reward is >= 0 the max over a state is `max(visited, 0)` exactly.
MetaQNN defaults: alpha 0.01, gamma 1, Q0 0.5 for accuracy rewards (here 0: HV contributions
start at 0), 100 replayed trajectories per trained network.

Exploration (epsilon-greedy): with probability epsilon, or when no visited action of the state has
a positive Q, the action is drawn at random: terminate with probability 1 / (max_blocks - depth + 1)
(so under epsilon = 1 a network's depth is uniform on 1..max_blocks), else a block with uniform
genes (filters uniform up to the last block's). Otherwise the visited action with the highest Q
(ties: a uniform pick among them, in sorted order, so the table's order never matters).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from moncae.errors import MoncaeError
from moncae.method.genome import GENES_PER_BLOCK, Block, Genome, GenomeSpace

__all__ = ["DISCOUNT", "LEARNING_RATE", "Q0", "REPLAY_SAMPLES", "START", "QTable", "Trajectory",
           "epsilon_schedule", "explore_action", "genome_of", "greedy_action", "q_updated", "replay",
           "rollout", "trajectory"]

LEARNING_RATE = 0.01  # alpha (MetaQNN)
DISCOUNT = 1.0  # gamma (MetaQNN)
Q0 = 0.0  # the value of an unvisited (state, action)
REPLAY_SAMPLES = 100  # trajectories replayed per network trained (MetaQNN: 100; the thesis: 128)
EPSILON_START, EPSILON_END, EPSILON_STEP = 1.0, 0.1, 0.1
START = "start"
BLOCK, TERMINATE = "B:", "T:"

QTable = dict[str, dict[str, float]]  # state -> action -> Q (visited pairs only): JSON-ready


@dataclass(frozen=True)
class Trajectory:
    """`actions[t]` taken in `states[t]`; the last action terminates."""

    states: tuple[str, ...]
    actions: tuple[str, ...]


def epsilon_schedule(generations: int, start: float = EPSILON_START, end: float = EPSILON_END,
                     step: float = EPSILON_STEP) -> list[float]:
    """Epsilon per generation: `start` at generation 0, `end` at the last, linear between and
    rounded to multiples of `step` (so it falls in steps, 1.0 -> 0.9 -> ... -> 0.1, as MetaQNN's)."""
    if generations < 1:
        raise MoncaeError(f"`generations` must be >= 1. Received: generations={generations!r}")
    if not (0.0 <= end <= start <= 1.0 and step > 0):
        raise MoncaeError(f"epsilon needs 0 <= end <= start <= 1 and step > 0. Received: start={start!r}, "
                          f"end={end!r}, step={step!r}")
    if generations == 1:
        return [start]
    out = []
    for g in range(generations):
        raw = start - (start - end) * g / (generations - 1)
        out.append(round(min(start, max(end, round(raw / step) * step)), 10))
    return out


def q_updated(old: float, reward: float, next_max: float, alpha: float = LEARNING_RATE,
              gamma: float = DISCOUNT) -> float:
    """Eq. 4.1: `(1 - alpha) old + alpha (reward + gamma next_max)`."""
    return (1.0 - alpha) * old + alpha * (reward + gamma * next_max)


def _max_q(q: Mapping[str, Mapping[str, float]], state: str | None) -> float:
    if state is None:  # after terminate
        return 0.0
    return max([Q0, *q.get(state, {}).values()])


def replay(q: QTable, path: Trajectory, reward: float, alpha: float = LEARNING_RATE,
           gamma: float = DISCOUNT) -> None:
    """One replayed trajectory, updated in place, last transition first (MetaQNN's order): the
    terminating one gets `reward`, every earlier one 0 plus gamma times its next state's max."""
    if reward < 0 or not math.isfinite(reward):
        raise MoncaeError(f"`reward` must be a finite number >= 0. Received: reward={reward!r}")
    n = len(path.actions)
    for t in reversed(range(n)):
        state, action = path.states[t], path.actions[t]
        nxt = path.states[t + 1] if t + 1 < n else None
        row = q.setdefault(state, {})
        row[action] = q_updated(row.get(action, Q0), reward if nxt is None else 0.0, _max_q(q, nxt),
                                alpha, gamma)


# -- genomes <-> trajectories ------------------------------------------------------------------
def _block_genes(block: Block, space: GenomeSpace) -> tuple[int, ...]:
    return (int(math.log2(block.filters // space.min_filters)), space.kernel_sizes.index(block.kernel_size),
            int(block.batch_norm), space.activations.index(block.activation),
            space.dropout_rates.index(block.dropout), int(block.pool))


def _join(genes: Sequence[int]) -> str:
    return ",".join(str(g) for g in genes)


def _state(depth: int, genes: Sequence[int]) -> str:
    return f"{depth}:{_join(genes)}"


def _parse(text: str) -> tuple[int, ...]:
    return tuple(int(g) for g in text.split(",")) if text else ()


def _training_genes(genome: Genome) -> tuple[int, ...]:
    return genome.genes[genome.space.n_block_genes:]


def trajectory(genome: Genome) -> Trajectory:
    """The states and actions that build `genome`'s network (its active blocks, then terminate
    with its training genes). Genomes with one key have one trajectory."""
    states, actions = [START], []
    for depth, block in enumerate(genome.blocks, start=1):
        genes = _block_genes(block, genome.space)
        actions.append(BLOCK + _join(genes))
        states.append(_state(depth, genes))
    actions.append(TERMINATE + _join(_training_genes(genome)))
    return Trajectory(tuple(states), tuple(actions))


def genome_of(actions: Sequence[str], space: GenomeSpace) -> Genome:
    """The genome a trajectory's actions build: its blocks active in order, the rest inactive
    (all-zero genes), then the terminating action's training genes."""
    blocks = [_parse(a[len(BLOCK):]) for a in actions if a.startswith(BLOCK)]
    ends = [a for a in actions if a.startswith(TERMINATE)]
    if not blocks or len(blocks) > space.max_blocks or len(ends) != 1 or not actions[-1].startswith(TERMINATE):
        raise MoncaeError(f"`actions` must be 1..{space.max_blocks} blocks then one terminate. "
                          f"Received: actions={list(actions)!r}")
    genes: list[int] = []
    for block in blocks:
        genes += [1, *block]
    genes += [0] * (GENES_PER_BLOCK * (space.max_blocks - len(blocks)))
    return Genome((*genes, *_parse(ends[0][len(TERMINATE):])), space)


# -- choosing actions --------------------------------------------------------------------------
def _depth_and_filters(state: str, space: GenomeSpace) -> tuple[int, int]:
    """Blocks built so far, and the largest filters gene the next block may take."""
    if state == START:
        return 0, space.n_filter_choices - 1
    depth, genes = state.split(":")
    return int(depth), _parse(genes)[0]


def explore_action(state: str, space: GenomeSpace, rng: random.Random) -> str:
    """A random action from `state` (see the module docstring for the distribution)."""
    depth, max_filter = _depth_and_filters(state, space)
    stop = depth >= space.max_blocks or (depth > 0 and rng.random() < 1.0 / (space.max_blocks - depth + 1))
    if stop:
        cards = space.cardinalities()[space.n_block_genes:]
        return TERMINATE + _join(rng.randrange(c) for c in cards)
    cards = space.block_cardinalities()[2:]  # after active and filters
    return BLOCK + _join([rng.randint(0, max_filter), *(rng.randrange(c) for c in cards)])


def greedy_action(q: Mapping[str, Mapping[str, float]], state: str, rng: random.Random) -> str | None:
    """The visited action of `state` with the highest Q, when that Q is above Q0 (else None: the
    caller explores). Ties: a uniform pick among them in sorted order."""
    row = q.get(state, {})
    best = max(row.values(), default=Q0)
    if best <= Q0:
        return None
    ties = sorted(a for a, v in row.items() if v == best)
    return ties[0] if len(ties) == 1 else ties[rng.randrange(len(ties))]


def rollout(q: Mapping[str, Mapping[str, float]], space: GenomeSpace, epsilon: float,
            rng: random.Random) -> Genome:
    """One epsilon-greedy trajectory from START to terminate; its genome."""
    state, actions = START, []
    while True:
        action = None if rng.random() < epsilon else greedy_action(q, state, rng)
        action = action or explore_action(state, space, rng)
        actions.append(action)
        if action.startswith(TERMINATE):
            return genome_of(actions, space)
        depth, _ = _depth_and_filters(state, space)
        state = _state(depth + 1, _parse(action[len(BLOCK):]))
