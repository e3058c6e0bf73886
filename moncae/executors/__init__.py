"""Executors: how a generation's trainings are run. `local` runs them in this process one after
another (`LocalExecutor`, `workers = 1`) or in N worker processes on this machine
(`processes.ProcessExecutor`, `workers` > 1; `workers = "auto"` picks 2 on a CPU-only machine with
>= 2 cores), `dask` (subpackage `dask/`: cluster, worker setup, ordered map) on Dask workers.
Shared by all: `resources` (cores, TF thread counts, GPU discovery and placement) and
`worker_setup` (TF threads in a worker process, the record of a lost training).

An executor yields results in task order, each as soon as it and every task before it is done,
so the driver writes the same CSV rows in the same order whichever executor runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from moncae.config import WORKERS_AUTO, parse_workers
from moncae.errors import MoncaeError
from moncae.executors.resources import training_threads, usable_cores, visible_gpus

TaskFn = Callable[[Any], Any]
AUTO_WORKERS = 2  # processes `workers = "auto"` starts on a CPU-only machine with >= 2 cores


class Executor(Protocol):
    name: str
    threads: int  # TF intra-op threads per training (TF's CPU results depend on it)

    def map_ordered(self, fn: TaskFn, tasks: Sequence[Any]) -> Iterator[Any]:
        """Run `fn` on every task; yield results in task order."""

    def close(self) -> None:
        """Release workers (no-op for local)."""


class LocalExecutor:
    """In-process, one task after another: the default, and the reference for every other."""

    name = "local"
    workers = 1

    @property
    def threads(self) -> int:
        return training_threads()

    def map_ordered(self, fn: TaskFn, tasks: Sequence[Any]) -> Iterator[Any]:
        for task in tasks:
            yield fn(task)

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def resolve_workers(workers: Any = WORKERS_AUTO, *, cores: int | None = None,
                    gpus: Sequence[str] | None = None) -> int:
    """Worker processes of the local executor: an integer as given; "auto" is 2 when this
    machine has >= 2 usable cores and no visible GPU (two 1-thread trainings side by side beat one
    2-thread training), else 1 (one training at a time, in this process)."""
    workers = parse_workers(workers)
    if workers != WORKERS_AUTO:
        return workers
    cores = usable_cores() if cores is None else cores
    gpus = visible_gpus() if gpus is None else gpus
    return AUTO_WORKERS if cores >= 2 and not gpus else 1


def make_executor(name: str = "local", *, workers: Any = None, scheduler: str | None = None,
                  models_per_gpu: int = 1, **kwargs: Any) -> Executor:
    """Build an executor by name; `dask` needs the `dask` extra.

    `local`: `workers` (an integer or "auto", the default) resolves to 1 -> `LocalExecutor`, in
    this process, or N > 1 -> `ProcessExecutor(N)`. `dask`: `workers` is the size of the
    LocalCluster to start ("auto"/None: the Dask executor's own default), `models_per_gpu` the
    workers sharing each GPU.
    """
    if name == "local":
        n = resolve_workers(workers)
        if n == 1:
            return LocalExecutor()
        from moncae.executors.processes import ProcessExecutor

        return ProcessExecutor(n, **kwargs)
    if name == "dask":
        from moncae.executors.dask import DaskExecutor

        workers = parse_workers(workers)
        return DaskExecutor(workers=None if workers == WORKERS_AUTO else workers, scheduler=scheduler,
                            models_per_gpu=models_per_gpu, **kwargs)
    raise MoncaeError(f"unknown executor {name!r}; choose local or dask")
