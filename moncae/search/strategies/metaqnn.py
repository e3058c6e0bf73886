"""`metaqnn`: MetaQNN's Q-learning controller (Baker et al. 2017, as the RL architecture-search
thesis runs it) over this tool's genome; the MDP, the Q-update and epsilon-greedy sampling are in
`moncae.method.qlearning`.

Per generation (generation 0 is random, as for every strategy):
1. every network trained so far (distinct keys, in training order) is the replay memory;
2. each one's **reward** is its exclusive hypervolume contribution among all of them (the all-time
   set of trained networks, through `Strategy.contributions`, so the two objectives are both in it:
   a network on the all-time front earns what it alone adds, a dominated or failed one 0); rewards
   are recomputed every generation, so a network that has since been dominated stops paying;
3. **replay**: `REPLAY_SAMPLES` (100) trajectories per network trained this generation are drawn
   uniformly with replacement from the memory and Q-updated (alpha 0.01, gamma 1);
4. the next `population` networks are epsilon-greedy rollouts, epsilon from `epsilon_schedule`
   (1.0 at generation 0, down in steps of 0.1 to 0.1 at the last). A rollout that builds a network
   already trained in the run, or already drawn for this generation, is drawn again (up to
   `MAX_DRAWS` times for one slot, then kept): MetaQNN would reuse the stored reward, but here each
   generation trains `population` new networks, so strategies compare at equal trainings.

The final population is the best distinct networks of the memory by exclusive HV contribution.
State (checkpointed): the Q-table and the memory, plain JSON data.
"""

from __future__ import annotations

import random
from typing import Any

from moncae.method.genome import Genome
from moncae.method.qlearning import (
    DISCOUNT,
    LEARNING_RATE,
    REPLAY_SAMPLES,
    QTable,
    epsilon_schedule,
    replay,
    rollout,
    trajectory,
)
from moncae.search.strategies.base import Generation, Strategy
from moncae.search.strategies.survival import best_by_contribution
from moncae.search.strategies.trained import TrainedNetworks

MAX_DRAWS = 50  # rollouts tried per slot before a repeat is accepted


class MetaQNN(Strategy):
    name = "metaqnn"

    def __init__(self, *args, generations: int = 20, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.epsilons = epsilon_schedule(generations)
        self.q: QTable = {}
        self.memory = TrainedNetworks(self.space)  # every distinct network trained

    @classmethod
    def run_settings(cls, config) -> dict[str, Any]:
        return {"generations": config.generations}

    def epsilon(self, generation: int) -> float:
        return self.epsilons[min(generation, len(self.epsilons) - 1)]

    def remember(self, generation: Generation) -> int:
        """Add the generation's new networks to the memory; how many there were."""
        return self.memory.add(generation.population, generation.keys)

    def learn(self, generation: Generation, rng: random.Random, samples: int) -> None:
        """Replay `samples` trajectories of the memory with their current rewards."""
        if not len(self.memory) or samples <= 0:
            return
        genomes, keys = self.memory.genomes, self.memory.keys
        rewards = self.contributions([generation.lookup(k) for k in keys], keys)
        paths = [trajectory(g) for g in genomes]
        for _ in range(samples):
            i = rng.randrange(len(paths))
            replay(self.q, paths[i], max(0.0, rewards[i]), LEARNING_RATE, DISCOUNT)

    def sample(self, epsilon: float, rng: random.Random, input_shape=None) -> list[Genome]:
        """`size` epsilon-greedy rollouts, new networks where `MAX_DRAWS` allows: new as the
        search's cache tells networks apart (`key_for` the input: a pool gene on a map too small to
        halve makes no other network)."""
        def key(genome: Genome) -> str:
            return genome.key if input_shape is None else genome.key_for(input_shape)

        seen = {key(genome) for genome in self.memory.genomes}
        out: list[Genome] = []
        for _ in range(self.size):
            for _ in range(MAX_DRAWS):
                genome = rollout(self.q, self.space, epsilon, rng)
                if key(genome) not in seen:
                    break
            seen.add(key(genome))
            out.append(genome)
        return out

    def advance(self, generation: Generation, rng: random.Random, *, last: bool) -> list[Genome]:
        new = self.remember(generation)
        if last:
            return best_by_contribution(self, list(self.memory.genomes), list(self.memory.keys),
                                        generation.lookup, self.size)
        self.learn(generation, rng, REPLAY_SAMPLES * new)
        return self.sample(self.epsilon(generation.index + 1), rng, generation.input_shape)

    def state(self) -> dict:
        return {"q": {s: dict(row) for s, row in self.q.items()}, "memory": self.memory.to_state()}

    def load_state(self, state: dict) -> None:
        self.q = {s: dict(row) for s, row in state.get("q", {}).items()}
        self.memory.load(state.get("memory", []))
