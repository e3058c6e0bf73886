"""The fine-tune's values: its settings, one fine-tuned model's row of `finetune.csv`, the
final models it works on, its result and progress hooks. No TensorFlow."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from moncae.config import python_number
from moncae.errors import MoncaeError
from moncae.evaluation.records import Outcome
from moncae.method.architecture import bottleneck_shape, bottleneck_text, describe_with_bottleneck, loc_of_shape
from moncae.method.genome import Genome
from moncae.store import csv_float
from moncae.store.run_folder import FINETUNE_CSV, FINETUNE_JSON, FINETUNED_DIR

__all__ = ["FINETUNED_DIR", "FINETUNE_COLUMNS", "FINETUNE_CSV", "FINETUNE_VAE_COLUMNS",
           "FINETUNE_JSON", "FinalModel", "FinetuneOutput",
           "FinetuneProgress", "FinetuneRecord", "FinetuneResult", "FinetuneSettings", "failed_finetune"]

FINETUNE_COLUMNS = [
    "individual", "genome_key", "architecture", "rec_loss", "loc", "bottleneck", "cl_loss",
    "cl_acc", "epochs", "finetune_seconds", "status", "error", "failure",
]
# A VAE run's finetune.csv adds `kl` (the test prior KL per latent dimension) at the end.
FINETUNE_VAE_COLUMNS = ["kl"]


def read_finetune_json(run_dir: str | Path) -> dict | None:
    """A run's `finetune.json` (the settings and execution of its fine-tuned rows); None where the
    file is missing, {} where it does not read as a JSON object."""
    path = Path(run_dir) / FINETUNE_JSON
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError):  # RecursionError: nested too deep to read
        return {}
    return payload if isinstance(payload, dict) else {}


@dataclass(frozen=True)
class FinetuneSettings:
    """What decides the fine-tune results; stored in `finetune.json` so reruns stay consistent."""

    epochs: int = 20
    classifier_epochs: int = 20
    batch_size: int = 256
    # early stopping's patience in epochs; None: none (the paper's "extra 20 epochs": every epoch,
    # the last epoch's weights, never the searched ones instead)
    patience: int | None = 3

    def __post_init__(self) -> None:
        for name, low in (("epochs", 0), ("classifier_epochs", 1), ("batch_size", 1),
                          ("patience", 0)):
            if name == "patience" and self.patience is None:
                continue
            value = python_number(getattr(self, name))  # a NumPy integer as an int
            object.__setattr__(self, name, value)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                none = " (or None: no early stopping)" if name == "patience" else ""
                raise MoncaeError(
                    f"`{name}` must be an integer >= {low}{none}. Received: {name}={value!r}")


@dataclass
class FinetuneRecord(Outcome):
    """One fine-tuned model: a row of `finetune.csv`."""

    individual: int
    genome_key: str
    architecture: str
    rec_loss: float
    loc: float
    bottleneck: str
    cl_loss: float
    cl_acc: float
    epochs: int
    finetune_seconds: float
    status: str
    error: str = ""
    failure: str = ""  # a `moncae.evaluation.records.FAILURE_KINDS` name when failed
    kl: float = float("nan")  # VAE: test prior KL per latent dimension (NaN for an AE)

    @classmethod
    def from_row(cls, row: dict[str, str]) -> FinetuneRecord:
        def num(name: str) -> float:
            return csv_float(row.get(name))

        return cls(int(row["individual"]), row["genome_key"], row["architecture"], num("rec_loss"),
                   num("loc"), row["bottleneck"], num("cl_loss"), num("cl_acc"),
                   int(row["epochs"] or 0), num("finetune_seconds"), row["status"],
                   row.get("error") or "", row.get("failure") or "", num("kl"))


@dataclass
class FinetuneOutput:
    """What one fine-tune sends back: its record and, when it is ok, the `.keras` file's bytes and
    each test image's loss under the model (the run's objective loss: `image_losses`, float64)."""

    record: FinetuneRecord
    model_bytes: bytes | None = field(default=None, repr=False)
    test_losses: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True)
class FinalModel:
    """A unique genome of the final population and where its searched model is."""

    individual: int  # the first individual holding this genome
    genome: Genome
    genome_key: str
    model_file: Path | None  # None when the search's training of it failed
    individuals: tuple[int, ...] = ()  # every individual holding it


def failed_finetune(model: FinalModel, input_shape, error: str = "", failure: str = "") -> FinetuneRecord:
    """`model`'s row before (or instead of) its fine-tune: what its genome says, no losses, failed."""
    bottleneck = bottleneck_shape(model.genome, input_shape)
    return FinetuneRecord(
        model.individual, model.genome_key, describe_with_bottleneck(model.genome, input_shape),
        float("nan"), loc_of_shape(bottleneck), bottleneck_text(bottleneck),
        float("nan"), float("nan"), 0, 0.0, "failed", error, failure,
    )


@dataclass
class FinetuneResult:
    run_dir: Path
    records: list[FinetuneRecord]  # one per unique final genome, in individual order
    trained: int  # models fine-tuned by this call
    skipped: int  # models already in finetune.csv
    settings: FinetuneSettings = field(default_factory=FinetuneSettings)

    @property
    def unsaved(self) -> list[FinetuneRecord]:
        """Models that failed for a passing reason (e.g. the model could not be saved)."""
        return [r for r in self.records if r.transient]

    @property
    def csv_path(self) -> Path:
        return self.run_dir / FINETUNE_CSV

    def to_frame(self):
        """The records as a pandas DataFrame (the columns of `finetune.csv`)."""
        import pandas as pd

        return pd.DataFrame([r.row() for r in self.records], columns=FINETUNE_COLUMNS)


class FinetuneProgress:
    """Hooks `finetune_run` calls as it goes; each does nothing by default but `message`, whose
    notices go to the `moncae` logger at INFO level."""

    def started(self, total: int, to_train: int, skipped: int) -> None:
        pass

    def model_done(self, record: FinetuneRecord) -> None:
        pass

    def message(self, text: str) -> None:
        logging.getLogger("moncae").info(text)
