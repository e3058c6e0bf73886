"""What a worker trains with: usable cores, TensorFlow's intra-op thread count, the CPU's
instruction-set extensions, visible GPUs and which of them each worker gets."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import warnings

from moncae.errors import MoncaeWarning

__all__ = ["cpu_instruction_sets", "gpu_assignment", "instruction_sets", "training_threads", "usable_cores",
           "visible_gpus"]


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


# The x86 extensions TensorFlow's CPU kernels (oneDNN) choose their code path by: AVX2, AVX-VNNI,
# AVX-512 (core, VNNI, BF16, FP16) and AMX. Two CPUs that differ in them may round differently.
KERNEL_EXTENSIONS = frozenset({
    "avx", "avx2", "fma", "avx_vnni", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd",
    "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8",
})


def instruction_sets(machine: str, flags: str) -> str:
    """`machine` and, of a /proc/cpuinfo `flags` line's extensions, the ones TensorFlow's CPU
    kernels choose their code path by, sorted: e.g. `x86_64: avx avx2 fma`."""
    kept = sorted(KERNEL_EXTENSIONS.intersection(flags.split()))
    return f"{machine}: {' '.join(kept)}" if kept else machine


def cpu_instruction_sets() -> str | None:
    """This machine's `instruction_sets` (Linux: from /proc/cpuinfo; elsewhere the machine type
    alone); None when nothing can be read. TensorFlow's CPU numbers depend on them (README:
    "The CPU counts too")."""
    machine = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return instruction_sets(machine, line.partition(":")[2])
    except OSError:
        pass
    return machine or None


# Where an NVIDIA driver shows itself (Linux, a container given GPUs, WSL2)
NVIDIA_PATHS = ("/dev/nvidiactl", "/proc/driver/nvidia", "/dev/dxg")


def _nvidia_present() -> bool:
    return any(os.path.exists(p) for p in NVIDIA_PATHS) or shutil.which("nvidia-smi") is not None


def visible_gpus() -> list[str]:
    """GPU ids this process may use: `CUDA_VISIBLE_DEVICES` when set (on a machine with an NVIDIA
    driver: a stale value on a CPU-only machine made `--workers auto` train one at a time, with
    other numbers, an audit found), else what nvidia-smi lists."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        ids = [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
        if ids and not _nvidia_present():
            warnings.warn(f"CUDA_VISIBLE_DEVICES={env} names GPUs, but this machine has no NVIDIA driver: "
                          "trainings run on the CPU, as on a machine without GPUs", MoncaeWarning, stacklevel=2)
            return []
        return ids
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, _ in enumerate(ln for ln in out.splitlines() if ln.startswith("GPU "))]


def gpu_assignment(gpus: list[str] | tuple[str, ...], workers: int | None = None,
                   models_per_gpu: int = 1) -> list[str]:
    """The GPU id each worker process sees, in worker order (one entry per worker).

    By default `models_per_gpu` workers per GPU (`len(gpus) * models_per_gpu` in all); an explicit
    `workers` count is spread round-robin. Worker i gets `gpus[(i // models_per_gpu) % len(gpus)]`,
    so the workers sharing a GPU are neighbours: 2 GPUs, 2 per GPU -> 0, 0, 1, 1.
    """
    gpus = list(gpus)
    if not gpus:
        return []
    if models_per_gpu < 1:
        raise ValueError(f"models_per_gpu must be >= 1, got {models_per_gpu}")
    n = len(gpus) * models_per_gpu if workers is None else workers
    return [gpus[(i // models_per_gpu) % len(gpus)] for i in range(n)]
