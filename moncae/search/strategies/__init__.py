"""Search strategies by name (`--strategy`), one short module each behind one interface
(`base.Strategy`): `moncae` (the paper's GA), `nsga2`, `mu-plus-lambda` (the evolutionary VAE
paper), `random` (the baseline) and `metaqnn` (MetaQNN Q-learning, the RL thesis). Compare them at
equal trainings with `moncae report`."""

from __future__ import annotations

from moncae.search.strategies.base import Generation, Strategy
from moncae.search.strategies.metaqnn import MetaQNN
from moncae.search.strategies.moncae_ga import MoncaeGA
from moncae.search.strategies.mu_plus_lambda import MuPlusLambda
from moncae.search.strategies.nsga2 import NSGA2
from moncae.search.strategies.random_search import RandomSearch

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (MoncaeGA, NSGA2, MuPlusLambda, RandomSearch, MetaQNN)}

__all__ = ["STRATEGIES", "Generation", "Strategy", "make_strategy"]


def make_strategy(config, space) -> Strategy:
    """The strategy a `SearchConfig` names, for its genome space."""
    cls = STRATEGIES[config.strategy]
    return cls(space, population=config.population, ref_point=config.ref_point, elitism=config.elitism,
               selection=config.selection, objectives=config.objectives,
               first_population=config.first_population, initial=config.initial, fitness=config.fitness,
               latents=config.latents,
               **cls.run_settings(config))
