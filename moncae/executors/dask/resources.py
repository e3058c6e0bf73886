"""Kept for imports written before the process executor: see `moncae.executors.resources`."""

from moncae.executors.resources import gpu_assignment, training_threads, usable_cores, visible_gpus

__all__ = ["gpu_assignment", "training_threads", "usable_cores", "visible_gpus"]
