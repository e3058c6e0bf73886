"""Executors: how a generation's trainings are run. `local` runs them in this process, `dask`
(subpackage `dask/`: cluster, worker setup, GPU discovery, ordered map) on Dask workers.

An executor yields results in task order, each as soon as it and every task before it is done,
so the driver writes the same CSV rows in the same order whichever executor runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

TaskFn = Callable[[Any], Any]


class Executor(Protocol):
    name: str

    def map_ordered(self, fn: TaskFn, tasks: Sequence[Any]) -> Iterator[Any]:
        """Run `fn` on every task; yield results in task order."""

    def close(self) -> None:
        """Release workers (no-op for local)."""


class LocalExecutor:
    """In-process, one task after another: the default, and the reference for every other."""

    name = "local"

    def map_ordered(self, fn: TaskFn, tasks: Sequence[Any]) -> Iterator[Any]:
        for task in tasks:
            yield fn(task)

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_executor(name: str = "local", *, workers: int | None = None, scheduler: str | None = None,
                  **kwargs: Any) -> Executor:
    """Build an executor by name; `dask` needs the `dask` extra."""
    if name == "local":
        return LocalExecutor()
    if name == "dask":
        from moncae.executors.dask import DaskExecutor

        return DaskExecutor(workers=workers, scheduler=scheduler, **kwargs)
    from moncae.errors import MoncaeError

    raise MoncaeError(f"unknown executor {name!r}; choose local or dask")
