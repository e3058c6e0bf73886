"""The interface every search strategy implements, and what it is given.

A strategy decides which genomes are trained next; the loop, the cache, the run folder, the
executors and resume are shared. Each generation the loop trains the genomes of `population`
that the cache lacks (a cached key is free), then calls `advance`, which returns the next
population to train (or, after the last generation, the final population). A strategy may keep
state between generations (e.g. the parents NSGA-II selects from); it must be plain data
(`state()`: JSON-ready), saved in the checkpoint, so a resumed run continues identically.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from moncae.evaluation.records import EvalRecord
from moncae.method.genome import Genome, GenomeSpace, crossover, mutate, random_genome, spread_latents
from moncae.method.objective_set import DEFAULT_OBJECTIVES, ObjectiveSet
from moncae.method.objectives import unique_contributions

__all__ = ["Generation", "Strategy"]


@dataclass
class Generation:
    """One trained generation as a strategy sees it."""

    index: int
    population: list[Genome]
    keys: list[str]
    records: list[EvalRecord]
    fitness: list[float]  # each individual's exclusive HV contribution, per distinct network
    lookup: Callable[[str], EvalRecord]  # the record of any key trained so far in this run
    input_shape: tuple[int, ...] | None = None  # the images' (H, W, C): `keys` are `key_for` it


class Strategy(ABC):
    """A search strategy: `initial` population, then `advance` once per trained generation."""

    name: ClassVar[str]

    def __init__(self, space: GenomeSpace, *, population: int, ref_point: Sequence[float],
                 elitism: float = 0.0, selection: str = "paper",
                 objectives: Sequence[str] = DEFAULT_OBJECTIVES, first_population: int = 0,
                 initial: str = "random", fitness: str = "paper", latents: str = "inherited") -> None:
        self.space = space
        self.size = population
        self.first_size = first_population or population  # generation 0's size
        self.initial_draw = initial  # "random", or "spread": its dense bottleneck sizes dealt out
        self.ref_point = tuple(ref_point)
        self.objectives = ObjectiveSet(tuple(objectives), self.ref_point)
        self.elitism = elitism
        self.selection = selection
        self.fitness_rule = fitness  # what a contribution is measured against (FITNESS_RULES)
        self.latents = latents  # children's latent genes: "inherited", or "spread" (config.LATENTS)

    def initial(self, rng: random.Random) -> list[Genome]:
        """Generation 0: `first_population` (default `population`) random genomes (every strategy
        starts the same way; each next generation has `population`); with `initial = "spread"`
        their dense bottleneck sizes are then dealt out (`spread_latents`)."""
        genomes = self.random_genomes(rng, self.first_size)
        return spread_latents(genomes, self.space, rng) if self.initial_draw == "spread" else genomes

    def random_genomes(self, rng: random.Random, n: int) -> list[Genome]:
        return [random_genome(self.space, rng) for _ in range(n)]

    @abstractmethod
    def advance(self, generation: Generation, rng: random.Random, *, last: bool) -> list[Genome]:
        """The next population to train, or with `last` the run's final population."""

    @classmethod
    def run_settings(cls, config) -> dict[str, Any]:
        """Keyword arguments this strategy takes from the run's `SearchConfig` beyond the common
        ones (e.g. `metaqnn`'s epsilon schedule needs the generations); none by default."""
        return {}

    def state(self) -> dict[str, Any]:
        """What the strategy carries between generations, as JSON-ready data."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook, like Keras'
        """Restore `state()` (on resume); stateless strategies need nothing."""

    # helpers shared by the strategies ------------------------------------------------------
    def offspring(self, pick: Callable[[], Genome], rng: random.Random, generation: int) -> list[Genome]:
        """`size` children: single-point crossover of two picked parents, then mutation."""
        children = []
        while len(children) < self.size:
            child, _ = crossover(pick(), pick(), rng)
            children.append(mutate(child, self.space, rng, generation))
        return self.deal_latents(children, rng)

    def deal_latents(self, children: list[Genome], rng: random.Random) -> list[Genome]:
        """With `latents = "spread"`, `children` with their latent genes dealt out over every
        latent gene, the conv bottleneck included (`spread_latents(conv=True)`); else as they are."""
        if self.latents != "spread":
            return children
        return spread_latents(children, self.space, rng, conv=True)

    def point(self, record: EvalRecord) -> tuple[float, ...]:
        """A training's objective vector (the reference point when it failed or was stopped)."""
        return self.objectives.point(record)

    def contributions(self, records: Sequence[EvalRecord], keys: Sequence[str]) -> list[float]:
        """Exclusive HV contribution of each record's network over all of them (under the
        `fitness` rule), per distinct key."""
        points = self.objectives.points(records)
        return [float(c) for c in unique_contributions(points, keys, self.ref_point, self.fitness_rule)]
