"""What a worker trains with: usable cores, TensorFlow's intra-op thread count, visible GPUs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

__all__ = ["training_threads", "usable_cores", "visible_gpus"]


def training_threads() -> int:
    """The TensorFlow intra-op thread count a training in this process uses (TF's own rule)."""
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        configured = tf.config.threading.get_intra_op_parallelism_threads()
        if configured > 0:
            return configured
    env = os.environ.get("TF_NUM_INTRAOP_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return usable_cores()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """GPU ids this process may use: `CUDA_VISIBLE_DEVICES` when set, else what nvidia-smi lists."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, _ in enumerate(ln for ln in out.splitlines() if ln.startswith("GPU "))]
