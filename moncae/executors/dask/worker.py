"""Setting up a Dask worker process for moncae trainings: one task at a time, the driver's
TensorFlow thread count, GPU memory growth, and a private RNG for Dask's own draws."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from moncae.executors.worker_setup import WorkerSetupError, configure_tensorflow, lost_evaluation

__all__ = ["WorkerSetupError", "WorkerTask", "configure_tensorflow", "isolate_global_rng",
           "lost_evaluation", "tasks_run"]

_tasks_run = 0  # moncae tasks this worker process has started (the executor replaces it after many)


def tasks_run() -> int:
    """How many moncae tasks this worker process has started (`Client.run` asks every worker)."""
    return _tasks_run


# Dask and Tornado code that draws from Python's global RNG in a worker's event-loop thread
# (dask.sizeof samples big collections, compression samples big payloads, retries jitter).
# `keras.utils.set_random_seed` seeds that same RNG and Keras draws every layer's seed from it
# while the task thread builds the model, so such a draw in between changes the trained model.
_GLOBAL_RNG_USERS = (
    ("dask.sizeof", "random"), ("distributed.protocol.compression", "randint"),
    ("distributed.worker", "random"), ("distributed.utils_comm", "random"),
    ("distributed.comm.core", "random"), ("tornado.ioloop", "random"),
)
_rng_isolated = False


def isolate_global_rng() -> None:
    """Give Dask's own random draws in this process a private RNG (idempotent).

    Without it, a worker's trainings were not reproducible: the loss of one smoke-preset genome
    came out 0.673, 0.678 or 0.698 on different runs (0.694 locally).
    """
    global _rng_isolated
    if _rng_isolated:
        return
    import random

    private = random.Random()
    for module_name, attr in _GLOBAL_RNG_USERS:
        module = sys.modules.get(module_name)
        value = getattr(module, attr, None)
        if value is random:
            setattr(module, attr, private)
        elif getattr(value, "__self__", None) is random._inst:  # `from random import randint`
            setattr(module, attr, getattr(private, attr))
    _rng_isolated = True


def check_single_task_worker() -> None:
    """Keras and TF state is per process: two trainings at once in one worker would mix."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # not in a Dask worker
        return
    state = worker.state
    if state.nthreads > 1 and state.total_resources.get("GPU") != 1:
        raise WorkerSetupError(
            f"the Dask worker at {worker.address} runs {state.nthreads} tasks at once; moncae "
            "needs one training per worker process: start workers with `dask worker ... "
            "--nthreads 1`"
        )


class WorkerTask:
    """`fn` as a worker runs it: TF threads and GPU memory growth set up first (picklable)."""

    def __init__(self, fn: Callable[[Any], Any], intra_threads: int,
                 inter_threads: int = 1) -> None:
        self.fn = fn
        self.intra_threads = intra_threads
        self.inter_threads = inter_threads

    def __call__(self, task: Any) -> Any:
        global _tasks_run
        _tasks_run += 1
        check_single_task_worker()
        isolate_global_rng()
        configure_tensorflow(self.intra_threads, self.inter_threads)
        return self.fn(task)
