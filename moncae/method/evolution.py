"""One generation to the next, as in the paper (Appendix B): elitism, then children of selected
parents by single-point crossover and mutation. Pure Python (DEAP's toolbox, no Keras)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from deap import base, creator

from moncae.method.genome import Genome, GenomeSpace, crossover, mutate, random_genome
from moncae.method.selection import SELECTORS, elite_indices

__all__ = ["breed", "elite_count", "make_toolbox", "pareto_individual"]

def _individual_class(dims: int):
    """DEAP's individual class for `dims` minimised objectives (DEAP classes are global: each is
    created once; DEAP compares only as many values as the fitness has weights)."""
    suffix = "" if dims == 2 else str(dims)
    if not hasattr(creator, f"MoncaeIndividual{suffix}"):
        creator.create(f"MoncaeFitness{suffix}", base.Fitness, weights=(-1.0,) * dims)
        creator.create(f"MoncaeIndividual{suffix}", list, fitness=getattr(creator, f"MoncaeFitness{suffix}"),
                       key=str)
    return getattr(creator, f"MoncaeIndividual{suffix}")


_individual_class(2)


def make_toolbox(space: GenomeSpace, selection: str) -> base.Toolbox:
    """DEAP toolbox: the variation operators and the named parent-selection strategy."""
    toolbox = base.Toolbox()
    toolbox.register("individual", random_genome, space)
    toolbox.register("mate", crossover)
    toolbox.register("mutate", mutate, space=space)
    toolbox.register("select", SELECTORS[selection])
    return toolbox


def elite_count(elitism: float, population: int) -> int:
    """Individuals kept unchanged: round(elitism * n), at least one when elitism > 0."""
    return max(1, round(elitism * population)) if elitism > 0 else 0


def breed(population: Sequence[Genome], fitness: Sequence[float], losses: Sequence[float],
          generation: int, rng: random.Random, toolbox: base.Toolbox, elitism: float,
          keys: Sequence[str] | None = None, size: int | None = None) -> list[Genome]:
    """Next generation of `size` (default: as many as `population`): the elite unchanged
    (distinct networks first when `keys` are given), then crossover+mutation children of
    parents selected from all of `population`."""
    n = len(population) if size is None else size
    nextgen = [population[i] for i in elite_indices(fitness, losses, elite_count(elitism, n), keys)]
    while len(nextgen) < n:
        i, j = toolbox.select(fitness, 2, rng)
        child, _ = toolbox.mate(population[i], population[j], rng)
        nextgen.append(toolbox.mutate(child, rng=rng, generation=generation))
    return nextgen


def pareto_individual(genes: Sequence[int], key: str, objectives: Sequence[float]):
    """A DEAP individual for the hall of fame (`tools.ParetoFront`) or NSGA-II, identified by its
    key, with one fitness value per objective (minimised)."""
    ind = _individual_class(len(objectives))(genes)
    ind.key = key
    ind.fitness.values = tuple(objectives)
    return ind


def same_key(a, b) -> bool:
    """Hall-of-fame identity: two individuals that build the same network are one."""
    return a.key == b.key
