"""Picklable task functions for tests/test_processes.py: a module of their own, importing almost
nothing, so that a spawned worker process unpickles them in milliseconds."""

from __future__ import annotations

import os
import signal
import time


def slow_square(x: int) -> tuple[int, int, str | None]:
    """x*x, the worker's PID and its TF thread setting; earlier tasks finish later."""
    time.sleep(0.04 * max(0, 4 - x))
    return x * x, os.getpid(), os.environ.get("TF_NUM_INTRAOP_THREADS")


def die_on_two(x: int) -> int:
    """Kills its own worker process on task 2 (as the kernel's OOM killer would)."""
    if x == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return -x


def fail_on_one(x: int) -> int:
    if x == 1:
        raise ValueError("task one is bad")
    return x


class Routed:
    """A task with an `affinity`, as the search's trainings have (their genome key)."""

    def __init__(self, affinity: str) -> None:
        self.affinity = affinity


def worker_pid(task: Routed) -> tuple[str, int]:
    time.sleep(0.05)
    return task.affinity, os.getpid()


class Costed:
    """A task with a `cost`, as the search's trainings have (their forward-pass FLOPs)."""

    def __init__(self, name: str, cost: float) -> None:
        self.name, self.cost = name, cost


def started_at(task: Costed) -> tuple[str, int]:
    """The task's name and when its worker started it."""
    start = time.monotonic_ns()
    time.sleep(0.01)
    return task.name, start


def slow_surrogate_task(task):
    """The surrogate evaluator at 30 ms a training: a search long enough to be killed mid-way."""
    from moncae.evaluation.surrogate import surrogate_task

    time.sleep(0.03)
    return surrogate_task(task)


def keras_extras_loaded(_: int) -> list[str]:
    """Which of Keras' optional libraries this worker loaded with moncae's training code; then
    checks that pandas still imports afterwards."""
    import sys

    from moncae.model import training  # noqa: F401 - imports TensorFlow and Keras
    from moncae.tfquiet import KERAS_EXTRAS

    loaded = sorted(name for name in KERAS_EXTRAS if name in sys.modules)
    import pandas

    assert pandas.DataFrame({"a": [1]}).shape == (1, 1)
    return loaded


if __name__ == "__main__":  # `python process_tasks.py SETTINGS_JSON [--resume]`: a surrogate search
    import json
    import sys

    from moncae.config import resolve_config
    from moncae.search.loop import run_search

    run_search(resolve_config(**json.loads(sys.argv[1])), resume="--resume" in sys.argv[2:],
               task_fn=slow_surrogate_task)


def report_sigint(queue) -> None:
    """Put whether this process started with SIGINT ignored or blocked on `queue`."""
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    blocked = hasattr(signal, "pthread_sigmask") and signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    queue.put(int(ignored or blocked))
