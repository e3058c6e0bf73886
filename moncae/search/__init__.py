"""The search: the generational loop (`loop.run_search`) over genomes, evaluated by an executor
(`moncae.executors`) through `moncae.evaluation`, journaled in the run folder (`moncae.store`)."""

from moncae.search.loop import RunResult, SearchProgress, default_executor, run_search

__all__ = ["RunResult", "SearchProgress", "default_executor", "run_search"]
