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

import os
import random
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from moncae.config import WORKERS_AUTO, parse_workers
from moncae.errors import MoncaeError, MoncaeWarning
from moncae.executors.resources import cpu_instruction_sets, training_threads, usable_cores, visible_gpus
from moncae.interrupts import held_signals

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
    """In-process, one task after another (`workers = 1`): the reference for every other.

    A training seeds Python's, NumPy's and TensorFlow's global random generators; Python's and
    NumPy's states are put back after each task, so a notebook's own draws do not depend on
    whether it ran a search (TensorFlow's global seed stays the last training's)."""

    name = "local"
    workers = 1

    @property
    def threads(self) -> int:
        return training_threads()

    def map_ordered(self, fn: TaskFn, tasks: Sequence[Any]) -> Iterator[Any]:
        for task in tasks:
            python, numpy = random.getstate(), np.random.get_state()
            try:
                with held_signals():  # a Ctrl-C acts between batches, not inside TensorFlow
                    result = fn(task)
            finally:
                random.setstate(python)
                np.random.set_state(numpy)
            yield result

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
    2-thread training), else 1 (one training at a time, in a worker process: see
    `make_executor`)."""
    workers = parse_workers(workers)
    if workers != WORKERS_AUTO:
        return workers
    cores = usable_cores() if cores is None else cores
    gpus = visible_gpus() if gpus is None else gpus
    return AUTO_WORKERS if cores >= 2 and not gpus else 1


def make_executor(name: str = "local", *, workers: Any = None, scheduler: str | None = None,
                  models_per_gpu: int = 1, **kwargs: Any) -> Executor:
    """Build an executor by name; `dask` needs the `dask` extra.

    `local`: `workers` (an integer or "auto", the default) resolves to N -> `ProcessExecutor(N)`,
    except an explicit 1 -> `LocalExecutor`, in this process. "auto" never trains in this
    process: TensorFlow keeps every graph it traces (`moncae.executors.processes`), and only a
    worker process can be replaced to give that memory back. `dask`: `workers` is the size of the
    LocalCluster to start ("auto"/None: the Dask executor's own default), `models_per_gpu` the
    workers sharing each GPU.
    """
    if name == "local":
        requested = parse_workers(workers)
        n = resolve_workers(requested)
        cores = usable_cores()
        if n > cores:
            warnings.warn(MoncaeWarning(
                f"--workers {n} on {cores} usable core(s): the trainings share the cores and each worker "
                f"process holds its own TensorFlow in memory; the same results, more slowly than --workers "
                f"{cores}"), stacklevel=2)
        if requested == 1:  # --workers 1: in this process
            return LocalExecutor()
        from moncae.executors.processes import ProcessExecutor

        return ProcessExecutor(n, **kwargs)
    if name == "dask":
        from moncae.executors.dask import DaskExecutor

        workers = parse_workers(workers)
        return DaskExecutor(workers=None if workers == WORKERS_AUTO else workers, scheduler=scheduler,
                            models_per_gpu=models_per_gpu, **kwargs)
    raise MoncaeError(f"unknown executor {name!r}; choose local or dask")


# Environment variables that change TensorFlow's CPU numbers (oneDNN's code path) without
# changing the instruction sets `cpu` reads: recorded where set (a helper's audit).
NUMERICS_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS")


def execution_record(executor: Executor) -> dict[str, Any]:
    """How the trainings run: executor, worker processes, TF intra-op threads per training and
    the CPUs' instruction-set extensions (TF's CPU results depend on both, see the README): this
    machine's for its own executors, the connected workers' for one that can ask them (Dask:
    `worker_cpus`), else None."""
    workers = getattr(executor, "workers", None)
    if workers is None and hasattr(executor, "worker_count"):
        workers = executor.worker_count()
    name = getattr(executor, "name", type(executor).__name__)
    if name == "local":
        cpu = cpu_instruction_sets()
    else:
        cpu = executor.worker_cpus() if hasattr(executor, "worker_cpus") else None
    record = {"executor": name, "workers": workers, "threads": getattr(executor, "threads", None), "cpu": cpu}
    env = {k: os.environ[k] for k in NUMERICS_ENV if k in os.environ} if name == "local" else {}
    return {**record, "env": env} if env else record



def execution_notices(path: Path, previous: Any, current: dict[str, Any], doing: str) -> list[str]:
    """One line for each way the trainings now (`doing`: "this resume", "this fine-tune") run
    differently from how `path`'s first ones ran (`execution_record`s): another thread count,
    another CPU (instruction sets). Either may change the new trainings' numbers."""
    before = previous if isinstance(previous, dict) else {}

    def changed(name: str) -> bool:  # both known (older run folders lack some) and different
        return None not in (before.get(name), current.get(name)) and before[name] != current[name]

    notices = []
    if changed("threads"):
        notices.append(
            f"note: {path} started with {before['threads']} TensorFlow thread(s) per training, {doing} "
            f"trains with {current['threads']} ({current['workers']} worker(s)): new trainings "
            "may differ in the numbers from an uninterrupted run (use the first run's "
            + (f"--executor {before['executor']} " if before.get("executor") not in (None, "local") else "")
            + f"--workers{'' if before.get('workers') is None else ' ' + str(before['workers'])} to avoid it)")
    if (before.get("env") or {}) != (current.get("env") or {}) and current.get("cpu") is not None:
        notices.append(
            f"note: {path} started with {before.get('env') or 'none'} of {', '.join(NUMERICS_ENV)} set, this one "
            f"has {current.get('env') or 'none'}: they choose TensorFlow's CPU code path, so new trainings may "
            "differ in the numbers from an uninterrupted run")
    if changed("cpu"):
        notices.append(
            f"note: {path} started on a CPU with {before['cpu']!r}, this one has {current['cpu']!r}: "
            "TensorFlow's CPU kernels follow the instruction set, so new trainings may differ in the "
            "numbers from an uninterrupted run on the first machine")
    return notices


def with_later_execution(payload: dict[str, Any], current: dict[str, Any],
                         notices: list[str]) -> dict[str, Any] | None:
    """`payload` (a run's config.json, or its finetune.json) with `current` added to its
    `later_executions`, where the trainings now run differently from its first ones (`notices`
    from `execution_notices` are not empty) and `current` is not recorded there yet; None when
    there is nothing to add. So a run's record says every way its trainings ran, not only the first."""
    later = payload.get("later_executions")
    later = list(later) if isinstance(later, list) else []
    if not notices or current in later:
        return None
    return {**payload, "later_executions": [*later, current]}
