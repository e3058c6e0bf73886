"""`nsga2`: NSGA-II (Deb et al. 2002) on this genome. Each generation trains `population`
offspring; the parents of the next are the best `population` distinct networks of parents +
offspring by DEAP's `selNSGA2` (non-dominated rank, then crowding distance). Offspring come from
binary tournaments on (rank, crowding) and the same crossover and mutation as the paper's GA.
The final population is the last survivors."""

from __future__ import annotations

import random

from moncae.method.genome import Genome
from moncae.search.strategies.base import Generation, Strategy
from moncae.search.strategies.survival import nsga2_survivors, ranks_and_crowding


class NSGA2(Strategy):
    name = "nsga2"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.parents: list[dict] = []  # {"key", "genome"} of the current parents

    def advance(self, generation: Generation, rng: random.Random, *, last: bool) -> list[Genome]:
        pool = [Genome.from_config(p["genome"]) for p in self.parents] + list(generation.population)
        keys = [p["key"] for p in self.parents] + list(generation.keys)
        survivors, survivor_keys = nsga2_survivors(pool, keys, generation.lookup, self.size, self.point)
        self.parents = [{"key": k, "genome": g.to_config()} for g, k in zip(survivors, survivor_keys)]
        if last:
            return survivors
        rank, crowd = ranks_and_crowding(survivors, survivor_keys, generation.lookup, self.point)

        def tournament() -> Genome:
            a, b = rng.randrange(len(survivors)), rng.randrange(len(survivors))
            better = min((a, b), key=lambda i: (rank[i], -crowd[i], i))
            return survivors[better]

        return self.offspring(tournament, rng, generation.index + 1)

    def state(self) -> dict:
        return {"parents": list(self.parents)}

    def load_state(self, state: dict) -> None:
        self.parents = list(state.get("parents", []))
