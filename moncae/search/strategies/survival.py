"""Survival rules shared by the (mu + lambda) strategies: which distinct networks go on."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from deap import tools

from moncae.evaluation.records import EvalRecord
from moncae.method.evolution import pareto_individual
from moncae.method.genome import Genome

__all__ = ["best_by_contribution", "distinct", "nsga2_survivors", "ranks_and_crowding"]


def distinct(genomes: Sequence[Genome], keys: Sequence[str]) -> tuple[list[Genome], list[str]]:
    """One genome per key, first occurrence first."""
    seen: dict[str, Genome] = {}
    for genome, key in zip(genomes, keys):
        seen.setdefault(key, genome)
    return list(seen.values()), list(seen)


def best_by_contribution(strategy, genomes: Sequence[Genome], keys: Sequence[str],
                         lookup: Callable[[str], EvalRecord], k: int) -> list[Genome]:
    """The `k` distinct networks with the largest exclusive HV contribution over the pool
    (ties: lower loss, then pool order)."""
    genomes, keys = distinct(genomes, keys)
    records = [lookup(key) for key in keys]
    contrib = strategy.contributions(records, keys)
    order = sorted(range(len(genomes)), key=lambda i: (-contrib[i], records[i].rec_loss, i))
    return [genomes[i] for i in order[:k]]


def _individuals(genomes: Sequence[Genome], keys: Sequence[str], lookup: Callable[[str], EvalRecord],
                 point: Callable[[EvalRecord], Sequence[float]]):
    return [pareto_individual(g.genes, k, point(lookup(k))) for g, k in zip(genomes, keys)]


def nsga2_survivors(genomes: Sequence[Genome], keys: Sequence[str], lookup: Callable[[str], EvalRecord],
                    k: int, point: Callable[[EvalRecord], Sequence[float]]) -> tuple[list[Genome], list[str]]:
    """DEAP's `selNSGA2` (non-dominated sorting, then crowding distance) over the distinct pool,
    on each record's objective vector `point(record)`."""
    genomes, keys = distinct(genomes, keys)
    individuals = _individuals(genomes, keys, lookup, point)
    index = {id(ind): i for i, ind in enumerate(individuals)}
    chosen = [index[id(ind)] for ind in tools.selNSGA2(individuals, min(k, len(individuals)))]
    return [genomes[i] for i in chosen], [keys[i] for i in chosen]


def ranks_and_crowding(genomes: Sequence[Genome], keys: Sequence[str], lookup: Callable[[str], EvalRecord],
                       point: Callable[[EvalRecord], Sequence[float]]) -> tuple[list[int], list[float]]:
    """Each genome's non-dominated front (0 = best) and crowding distance within it."""
    individuals = _individuals(genomes, keys, lookup, point)
    fronts = tools.sortNondominated(individuals, len(individuals))
    rank, crowd = [0] * len(individuals), [0.0] * len(individuals)
    index = {id(ind): i for i, ind in enumerate(individuals)}
    for r, front in enumerate(fronts):
        tools.emo.assignCrowdingDist(front)
        for ind in front:
            rank[index[id(ind)]] = r
            crowd[index[id(ind)]] = ind.fitness.crowding_dist
    return rank, crowd
