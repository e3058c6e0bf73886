"""What one training is asked to do (`EvalTask`) and what it gives back (`EvalRecord`,
`EvalResult`): plain values, no TensorFlow, so the run folder, executors and reports read them
without loading it.

Every evaluation is seeded from (run seed, genome key), so a genome gives the same result
whatever order, process or machine it runs in; that is what makes the cache, `--resume` and
distributed executors give identical runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from moncae.data.spec import DataSpec
from moncae.method.genome import Genome
from moncae.method.objectives import REFERENCE_POINT
from moncae.method.vae_loss import DEFAULT_VAE_EPS

__all__ = ["EVAL_COLUMNS", "FAILURE_KINDS", "NEW_EVAL_COLUMNS", "TIMING_COLUMNS", "TRANSIENT_FAILURES",
           "VAE_COLUMNS", "EvalRecord", "EvalResult", "EvalTask", "Outcome", "TrainSettings", "evaluation_seed",
           "failed_record", "failure_kind"]

EVAL_COLUMNS = [
    "generation", "genome_key", "architecture", "rec_loss", "loc", "bottleneck", "params",
    "epochs", "fit_seconds", "seconds", "status", "error", "failure", "rung", "train_images", "inherited",
    "flops", "latency_ms",
]
# Columns added since the last released layout: a journal written without them is still read
# and appended to (its rows have no value there).
NEW_EVAL_COLUMNS = ("flops", "latency_ms")
# A VAE run's evaluations.csv has these after EVAL_COLUMNS (an AE run's columns are unchanged):
# `kl`, the validation prior KL per latent dimension of the model whose rec_loss is recorded.
VAE_COLUMNS = ["kl"]
TIMING_COLUMNS = ("fit_seconds", "seconds")
ERROR_LIMIT = 300  # characters of an error message kept in a record
# Why a training failed. `nan` and `error` belong to the genome and stay cached; `oom` (out of
# memory), `io` (disk full, unreadable file) and `lost` (its worker kept dying) belong to the
# moment, so `--resume` and a `finetune` rerun try them again. (A search stops at an `io` failure
# rather than journal it, `moncae.search.loop.StoppedOnIO`; a fine-tune, and journals written
# before that rule, hold such rows.)
FAILURE_KINDS = ("nan", "error", "oom", "io", "lost")
TRANSIENT_FAILURES = frozenset({"oom", "io", "lost"})


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 5
    batch_size: int = 256
    loss: str = "bce"
    patience: int = 1
    train_images: int | None = None  # the first N training images (a lower rung); None: all
    model: str = "ae"  # ae | vae (then `loss` is a VAE loss: elbo | reformulated)
    vae_eps: float = DEFAULT_VAE_EPS  # the reformulated VAE loss's eps
    decoder_only: bool = False  # the proxy rung: the random encoder frozen, only the decoder trains


@dataclass(frozen=True)
class EvalTask:
    genome: Genome
    data: DataSpec
    train: TrainSettings
    seed: int
    ref_point: tuple[float, ...] = REFERENCE_POINT  # one value per objective (rec_loss, loc first)
    keep_model: bool = True
    key: str = ""  # the genome's canonical key for this input shape (set by the search)
    rung: int = 0  # the fidelity rung (0: the lowest; with fidelity "full" the only one)
    init_model: bytes | None = field(default=None, repr=False)  # continue from this model's weights
    # weight inheritance: the trained models of the genome's two parents (None: not available)
    parent_models: tuple[bytes | None, ...] = field(default=(), repr=False)
    measure_latency: bool = False  # the `latency` objective: time inference after training
    # a lower rung's training: the process keeps the trained model in memory, so that its
    # promotion, when it runs there, continues without building and tracing it again
    keep_warm: bool = False
    # how long the training is expected to take, relative to the others handed over with it (the
    # search: one image's forward-pass FLOPs); an executor may start the costliest first, so that
    # a rung does not end with one long training and idle workers. 0: unknown
    cost: float = 0.0

    @property
    def affinity(self) -> str | None:
        """Which earlier task's process suits this one best (executors that route work read it):
        the genome's, whose process may keep its lower-rung model warm (moncae.model.warm)."""
        return self.key or None


class Outcome:
    """What every result row (a training, a fine-tune) says about how it went: `status` and,
    when it failed, the `failure` kind; `row()` is its CSV row."""

    status: str
    failure: str

    def row(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def transient(self) -> bool:
        """A failure worth trying again later (see `TRANSIENT_FAILURES`)."""
        return self.status != "ok" and self.failure in TRANSIENT_FAILURES


@dataclass
class EvalRecord(Outcome):
    """One training of one genome: a row of `evaluations.csv` (generation is set by the search)."""

    genome_key: str
    architecture: str
    rec_loss: float
    loc: float
    bottleneck: str
    params: int
    epochs: int
    fit_seconds: float
    seconds: float
    status: str
    error: str = ""
    generation: int = -1
    failure: str = ""  # one of FAILURE_KINDS when status is "failed"
    rung: int = 0  # the fidelity rung this training reached (see moncae.method.fidelity)
    train_images: int = 0  # training images it used (0 when it failed before training)
    inherited: int = 0  # weights (scalar parameters) it started with from its parents
    flops: int = 0  # one image's forward pass (moncae.method.architecture.forward_flops)
    latency_ms: float = float("nan")  # median ms per image at batch 1 (measured with `latency`)
    kl: float = float("nan")  # VAE: validation prior KL per latent dimension (NaN for an AE)


@dataclass
class EvalResult:
    record: EvalRecord
    model_bytes: bytes | None = field(default=None, repr=False)


def failure_kind(err: BaseException) -> str:
    """`oom`, `io` or `error` for an exception (TensorFlow's out-of-memory error is `oom`)."""
    names = {cls.__name__ for cls in type(err).__mro__}
    if isinstance(err, MemoryError) or "ResourceExhaustedError" in names:
        return "oom"
    if isinstance(err, OSError):
        return "io"
    return "error"


def failed_record(task: EvalTask, error: str, *, failure: str = "error", architecture: str | None = None,
                  bottleneck: str = "") -> EvalRecord:
    """A failed training: objectives at the reference point (it adds no hypervolume)."""
    return EvalRecord(
        genome_key=task.key, architecture=task.genome.describe() if architecture is None else architecture,
        rec_loss=task.ref_point[0], loc=task.ref_point[1], bottleneck=bottleneck, params=0, epochs=0,
        fit_seconds=0.0, seconds=0.0, status="failed", error=error[:ERROR_LIMIT], failure=failure,
        rung=task.rung,
    )


def evaluation_seed(run_seed: int, genome_key: str, rung: int = 0) -> int:
    """A 31-bit seed from (run seed, genome key[, rung > 0]), the same in every process."""
    name = genome_key if rung == 0 else f"{genome_key}@rung{rung}"
    digest = hashlib.sha256(f"{run_seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
