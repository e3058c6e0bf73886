"""Setting up a Dask worker process for moncae trainings: one task at a time, the driver's
TensorFlow thread count, GPU memory growth, and a private RNG for Dask's own draws."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from moncae.errors import MoncaeError
from moncae.evaluation.records import EvalResult, EvalTask, failed_record

__all__ = ["WorkerSetupError", "WorkerTask", "configure_tensorflow", "isolate_global_rng",
           "lost_evaluation"]


class WorkerSetupError(MoncaeError):
    """A worker cannot train the way this run requires (raised on the worker, re-raised here)."""


# Dask and Tornado code that draws from Python's global RNG in a worker's event-loop thread
# (dask.sizeof samples big collections, compression samples big payloads, retries jitter).
# `keras.utils.set_random_seed` seeds that same RNG and Keras draws every layer's seed from it
# while the task thread builds the model, so such a draw in between changes the trained model.
_GLOBAL_RNG_USERS = (
    ("dask.sizeof", "random"), ("distributed.protocol.compression", "randint"),
    ("distributed.worker", "random"), ("distributed.utils_comm", "random"),
    ("distributed.comm.core", "random"), ("tornado.ioloop", "random"),
)
_configured: tuple[int, int] | None = None
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


def configure_tensorflow(intra_threads: int, inter_threads: int) -> None:
    """Pin this worker process's TF threads and turn GPU memory growth on (idempotent).

    Environment variables cover a TensorFlow not imported yet; once it is imported, the
    `tf.config` calls apply before its runtime starts, or fail if it already runs otherwise.
    """
    global _configured
    if _configured == (intra_threads, inter_threads):
        return
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(intra_threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = str(inter_threads)
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    if "tensorflow" not in sys.modules:
        return  # a task that never imports TF (the scaling benchmark): nothing more to do
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_threads)
        tf.config.threading.set_inter_op_parallelism_threads(inter_threads)
    except RuntimeError:
        raise WorkerSetupError(
            f"a Dask worker's TensorFlow already runs with other thread settings than this run's "
            f"({intra_threads} intra-op threads); restart the workers (results would differ)"
        ) from None
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised: TF_FORCE_GPU_ALLOW_GROWTH applied at start
            pass
    _configured = (intra_threads, inter_threads)


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
        check_single_task_worker()
        isolate_global_rng()
        configure_tensorflow(self.intra_threads, self.inter_threads)
        return self.fn(task)


def lost_evaluation(task: Any, error: str) -> Any:
    """The failed record of an evaluation whose worker kept dying (e.g. out of host memory)."""
    if not isinstance(task, EvalTask):
        raise MoncaeError(error)
    architecture, bottleneck = task.genome.describe(), ""
    try:
        from moncae.data import cached_dataset
        from moncae.method.architecture import bottleneck_shape, describe_with_bottleneck

        shape = cached_dataset(task.data).input_shape
        architecture = describe_with_bottleneck(task.genome, shape)
        bottleneck = "x".join(str(d) for d in bottleneck_shape(task.genome, shape))
    except Exception:  # noqa: BLE001 - the description is a nicety, the record is what matters
        pass
    return EvalResult(failed_record(task, error, failure="lost", architecture=architecture,
                                    bottleneck=bottleneck))
