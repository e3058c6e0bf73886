"""What every worker process of moncae needs, whichever executor started it: TensorFlow's thread
counts and GPU memory growth set before a training, and the record of a training whose worker died."""

from __future__ import annotations

import os
import sys
from typing import Any

from moncae.errors import MoncaeError
from moncae.evaluation.records import EvalResult, EvalTask, failed_record

__all__ = ["RECYCLE_AFTER", "WorkerSetupError", "configure_tensorflow", "lost_evaluation"]

# Trainings a worker process runs before a fresh one replaces it: TensorFlow never frees the graph
# it traces for each new network (~3-4.5 MB per training here; tensorflow#124972, open in 2.21).
RECYCLE_AFTER = 200

_configured: tuple[int, int] | None = None


class WorkerSetupError(MoncaeError):
    """A worker cannot train the way this run requires (raised on the worker, re-raised here)."""


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
    if "tensorflow" not in sys.modules:  # TF reads these when it loads: nothing more to do
        _configured = (intra_threads, inter_threads)
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_threads)
        tf.config.threading.set_inter_op_parallelism_threads(inter_threads)
    except RuntimeError:
        raise WorkerSetupError(
            f"a worker's TensorFlow already runs with other thread settings than this run's "
            f"({intra_threads} intra-op threads); restart the workers (results would differ)"
        ) from None
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised: TF_FORCE_GPU_ALLOW_GROWTH applied at start
            pass
    _configured = (intra_threads, inter_threads)


def lost_evaluation(task: Any, error: str) -> Any:
    """The failed record of an evaluation whose worker kept dying (e.g. out of host memory)."""
    if not isinstance(task, EvalTask):
        raise MoncaeError(error)
    architecture, bottleneck = task.genome.describe(), ""
    try:
        from moncae.data import cached_dataset
        from moncae.method.architecture import bottleneck_shape, bottleneck_text, describe_with_bottleneck

        shape = cached_dataset(task.data).input_shape
        architecture = describe_with_bottleneck(task.genome, shape)
        bottleneck = bottleneck_text(bottleneck_shape(task.genome, shape))
    except Exception:  # noqa: BLE001 - the description is a nicety, the record is what matters
        pass
    return EvalResult(failed_record(task, error, failure="lost", architecture=architecture,
                                    bottleneck=bottleneck))
