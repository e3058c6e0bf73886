"""`random`: random genomes from the same space every generation, no selection at all. The
baseline every strategy must beat at the same number of trainings. Its final population is the
best distinct networks seen (by exclusive HV contribution over everything trained)."""

from __future__ import annotations

import random

from moncae.method.genome import Genome
from moncae.search.strategies.base import Generation, Strategy
from moncae.search.strategies.survival import best_by_contribution
from moncae.search.strategies.trained import TrainedNetworks


class RandomSearch(Strategy):
    name = "random"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen = TrainedNetworks(self.space)  # every network trained so far, for the final pick

    def advance(self, generation: Generation, rng: random.Random, *, last: bool) -> list[Genome]:
        self.seen.add(generation.population, generation.keys)
        if not last:
            return self.random_genomes(rng, self.size)
        return best_by_contribution(self, list(self.seen.genomes), list(self.seen.keys), generation.lookup,
                                    self.size)

    def state(self) -> dict:
        return {"seen": self.seen.to_state()}

    def load_state(self, state: dict) -> None:
        self.seen.load(state.get("seen", []))
