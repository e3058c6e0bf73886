"""`mu-plus-lambda`: the evolutionary VAE paper's (mu + lambda) scheme (Hajewski & Oliveira
2020, Algorithm 2), multi-objective. mu = `population` parents make lambda = `population`
offspring (crossover of two uniformly drawn parents, then mutation); the best mu distinct
networks of parents + offspring survive, ranked by exclusive hypervolume contribution over
that union (ties: lower loss). A re-discovered network costs no training (the cache) and
cannot take a second place. The final population is the last survivors."""

from __future__ import annotations

import random

from moncae.method.genome import Genome
from moncae.search.strategies.base import Generation, Strategy
from moncae.search.strategies.survival import best_by_contribution


class MuPlusLambda(Strategy):
    name = "mu-plus-lambda"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.parents: list[dict] = []

    def advance(self, generation: Generation, rng: random.Random, *, last: bool) -> list[Genome]:
        pool = [Genome.from_config(p["genome"]) for p in self.parents] + list(generation.population)
        keys = [p["key"] for p in self.parents] + list(generation.keys)
        key_of = dict(zip((id(g) for g in pool), keys))
        survivors = best_by_contribution(self, pool, keys, generation.lookup, self.size)
        self.parents = [{"key": key_of[id(g)], "genome": g.to_config()} for g in survivors]
        if last:
            return survivors
        return self.offspring(lambda: survivors[rng.randrange(len(survivors))], rng, generation.index + 1)

    def state(self) -> dict:
        return {"parents": list(self.parents)}

    def load_state(self, state: dict) -> None:
        self.parents = list(state.get("parents", []))
