"""`random`: random genomes from the same space every generation, no selection at all. The
baseline every strategy must beat at the same number of trainings. Its final population is the
best distinct networks seen (by exclusive HV contribution over everything trained)."""

from __future__ import annotations

import random

from moncae.method.genome import Genome
from moncae.search.strategies.base import Generation, Strategy
from moncae.search.strategies.survival import best_by_contribution


class RandomSearch(Strategy):
    name = "random"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[dict] = []  # every genome trained so far (configs), for the final pick

    def advance(self, generation: Generation, rng: random.Random, *, last: bool) -> list[Genome]:
        known = {g["key"] for g in self.seen}
        for genome, key in zip(generation.population, generation.keys):
            if key not in known:
                self.seen.append({"key": key, "genome": genome.to_config()})
                known.add(key)
        if not last:
            return self.random_genomes(rng, self.size)
        pool = [Genome.from_config(g["genome"]) for g in self.seen]
        keys = [g["key"] for g in self.seen]
        return best_by_contribution(self, pool, keys, generation.lookup, self.size)

    def state(self) -> dict:
        return {"seen": list(self.seen)}  # a copy: `advance` appends to the live list

    def load_state(self, state: dict) -> None:
        self.seen = list(state.get("seen", []))
