"""`moncae`: the paper's GA (Appendix B). The best `elitism` fraction survives unchanged (distinct
networks first); the rest are single-point-crossover children of parents chosen by the named
parent selection (`paper`: fitness-proportional by exclusive HV contribution, or `tournament`),
then mutated (with `latents = "spread"`, the children's latent genes are then dealt out, see
`Strategy.deal_latents`). Fitness is per distinct network (copies share their key's contribution)."""

from __future__ import annotations

import random

from moncae.method.evolution import breed, elite_count, make_toolbox
from moncae.method.genome import Genome
from moncae.search.strategies.base import Generation, Strategy


class MoncaeGA(Strategy):
    name = "moncae"

    def advance(self, generation: Generation, rng: random.Random, *, last: bool) -> list[Genome]:
        if last:
            return list(generation.population)
        toolbox = make_toolbox(self.space, self.selection)
        losses = [r.rec_loss for r in generation.records]
        nextgen = breed(generation.population, generation.fitness, losses, generation.index + 1, rng,
                        toolbox, self.elitism, keys=generation.keys, size=self.size)
        elite = elite_count(self.elitism, self.size)  # breed puts the elite first, unchanged
        return nextgen[:elite] + self.deal_latents(nextgen[elite:], rng)
