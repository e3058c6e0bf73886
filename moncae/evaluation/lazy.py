"""`train_task`: the real training (`train.run_task`) behind a function whose module loads no
TensorFlow, so a driver that hands trainings to worker processes never loads TensorFlow itself
(8 s and hundreds of MB saved); the worker loads it on its first training."""

from __future__ import annotations

from moncae.evaluation.records import EvalResult, EvalTask

__all__ = ["train_task"]


def train_task(task: EvalTask) -> EvalResult:
    """`moncae.evaluation.train.run_task(task)`, importing it (and TensorFlow) on first use."""
    from moncae.evaluation.train import run_task

    return run_task(task)
