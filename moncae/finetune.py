"""`finetune_run`: the paper's second stage on a finished search run (Section 3, Table 1).

Each unique genome of the final population continues training from its searched weights with
its own optimizer and learning rate (early stopping on the run's validation split; the best
weights are kept, the searched ones included), and is then measured on the test split:
reconstruction loss (the search's loss), LOC, and how well a softmax classifier trained on its
frozen latent codes separates the classes (`moncae.latent`).

Results go to `RUN_DIR/finetune.csv` (one row per unique genome, appended as each model
finishes, so a rerun skips what is done) and the models to `RUN_DIR/finetuned/`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from moncae.atomic import append_csv_rows, atomic_open, write_csv, write_json
from moncae.config import SearchConfig
from moncae.errors import MoncaeError, RunFolderError
from moncae.genome import Genome
from moncae.runstore import (
    MODEL_INDEX_COLUMNS,
    RunFolder,
    csv_float,
    model_filename,
    read_csv_rows,
)

__all__ = ["FINETUNE_COLUMNS", "FinetuneProgress", "FinetuneRecord", "FinetuneResult",
           "FinetuneSettings", "FinalModel", "check_finished", "finetune_run", "final_models"]

FINETUNE_COLUMNS = [
    "individual", "genome_key", "architecture", "rec_loss", "loc", "bottleneck", "cl_loss",
    "cl_acc", "epochs", "finetune_seconds", "status", "error",
]
FINETUNE_CSV = "finetune.csv"
FINETUNE_JSON = "finetune.json"
FINETUNED_DIR = "finetuned"


@dataclass(frozen=True)
class FinetuneSettings:
    """What decides the fine-tune results; stored in `finetune.json` so reruns stay consistent."""

    epochs: int = 20
    classifier_epochs: int = 20
    batch_size: int = 256
    patience: int = 3

    def __post_init__(self) -> None:
        for name, low in (("epochs", 0), ("classifier_epochs", 1), ("batch_size", 1),
                          ("patience", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise MoncaeError(
                    f"`{name}` must be an integer >= {low}. Received: {name}={value!r}")


@dataclass
class FinetuneRecord:
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

    def row(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def from_row(cls, row: dict[str, str]) -> FinetuneRecord:
        def num(name: str) -> float:
            return csv_float(row.get(name))

        return cls(int(row["individual"]), row["genome_key"], row["architecture"], num("rec_loss"),
                   num("loc"), row["bottleneck"], num("cl_loss"), num("cl_acc"),
                   int(row["epochs"] or 0), num("finetune_seconds"), row["status"],
                   row.get("error") or "")


@dataclass(frozen=True)
class FinalModel:
    """A unique genome of the final population and where its searched model is."""

    individual: int  # the first individual holding this genome
    genome: Genome
    genome_key: str
    model_file: Path | None  # None when the search's training of it failed
    individuals: tuple[int, ...] = ()  # every individual holding it


@dataclass
class FinetuneResult:
    run_dir: Path
    records: list[FinetuneRecord]  # one per unique final genome, in individual order
    trained: int  # models fine-tuned by this call
    skipped: int  # models already in finetune.csv
    settings: FinetuneSettings = field(default_factory=FinetuneSettings)

    @property
    def csv_path(self) -> Path:
        return self.run_dir / FINETUNE_CSV

    def to_frame(self):
        """The records as a pandas DataFrame (the columns of `finetune.csv`)."""
        import pandas as pd

        return pd.DataFrame([r.row() for r in self.records], columns=FINETUNE_COLUMNS)


class FinetuneProgress:
    """Hooks `finetune_run` calls as it goes; each does nothing by default."""

    def started(self, total: int, to_train: int, skipped: int) -> None:
        pass

    def model_done(self, record: FinetuneRecord) -> None:
        pass

    def message(self, text: str) -> None:
        pass


# --------------------------------------------------------------------------- reading the run


def read_run_config(run: RunFolder) -> SearchConfig:
    if not run.path.is_dir():
        what = "not a folder" if run.path.exists() else "no such folder"
        raise RunFolderError(f"{run.path} is not a moncae run folder ({what}); pass the folder a "
                             "search wrote, e.g. results/mnist/seed-46")
    payload = run.read_config()
    if not isinstance(payload, dict) or not isinstance(payload.get("run"), dict):
        raise RunFolderError(f"{run.config} has no `run` settings; it was not written by "
                             "`moncae search`")
    return SearchConfig.from_dict(payload["run"])


def check_finished(run: RunFolder):
    """The checkpoint of a search that finished and wrote its final models (else an error)."""
    state = run.load_checkpoint()
    if state is None or not state.finished or not run.model_index.exists():
        where = "no checkpoint" if state is None else (
            f"last checkpoint after generation {state.generation + 1}" if not state.finished
            else "no models/index.csv")
        raise RunFolderError(
            f"{run.path} has no final population ({where}); finish the search first with "
            "`moncae search ... --resume`"
        )
    return state


def final_models(run: RunFolder, input_shape) -> list[FinalModel]:
    """The final population's unique genomes (first individual first), from a finished run."""
    state = check_finished(run)
    index = read_csv_rows(run.model_index)
    if len(index) != len(state.population):
        raise RunFolderError(f"{run.model_index} lists {len(index)} models but the final "
                             f"population has {len(state.population)}; the run folder is "
                             "inconsistent")
    unique: dict[str, FinalModel] = {}
    for row, config in zip(index, state.population, strict=True):
        genome = Genome.from_config(config)
        key = genome.key_for(input_shape)
        if key != row["genome_key"]:
            raise RunFolderError(f"{run.model_index} does not match the checkpoint's final "
                                 f"population (individual {row['individual']}); the run folder "
                                 "is inconsistent")
        i = int(row["individual"])
        if key in unique:
            first = unique[key]
            unique[key] = dataclasses.replace(first, individuals=(*first.individuals, i))
        else:
            model = run.models / row["file"] if row["file"] else None
            unique[key] = FinalModel(i, genome, key, model, (i,))
    return list(unique.values())


def _check_settings(run: RunFolder, settings: FinetuneSettings, has_rows: bool) -> None:
    """A rerun must use the settings of the rows it continues (or start over)."""
    path = run.path / FINETUNE_JSON
    if has_rows and path.exists():
        import json

        try:
            previous = json.loads(path.read_text(encoding="utf-8")).get("settings", {})
        except (ValueError, AttributeError):
            previous = {}
        current = asdict(settings)
        differ = sorted(k for k in current if previous.get(k) != current[k])
        if differ:
            details = ", ".join(f"{k}: {previous.get(k)!r} -> {current[k]!r}" for k in differ)
            raise RunFolderError(
                f"{run.path / FINETUNE_CSV} was made with other settings ({details}); rerun with "
                f"those, or delete {FINETUNE_CSV} and {FINETUNED_DIR}/ to start over"
            )
        return
    write_json(path, {"settings": asdict(settings),
                      "started": datetime.now(timezone.utc).isoformat(timespec="seconds")})


# --------------------------------------------------------------------------- one model


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}"[:300] if text else type(err).__name__


def finetune_model(model: FinalModel, data, config: SearchConfig, settings: FinetuneSettings,
                   out_dir: Path) -> FinetuneRecord:
    """Fine-tune, measure and save one model; never raises: failures come back as 'failed'."""
    import warnings

    import keras

    from moncae.decode import (
        bottleneck_shape,
        build_autoencoder,
        describe_with_bottleneck,
        loc_of_shape,
    )
    from moncae.evaluate import (
        evaluation_seed,
        fit_autoencoder,
        make_loss,
        make_optimizer,
        model_to_bytes,
        quiet_tensorflow,
        tf_dataset,
    )
    from moncae.latent import latent_classification

    quiet_tensorflow()
    start = time.perf_counter()
    genome, shape = model.genome, data.input_shape
    bottleneck = bottleneck_shape(genome, shape)
    record = FinetuneRecord(
        model.individual, model.genome_key, describe_with_bottleneck(genome, shape),
        float("nan"), loc_of_shape(bottleneck), "x".join(str(d) for d in bottleneck),
        float("nan"), float("nan"), 0, 0.0, "failed",
    )
    seed = evaluation_seed(config.seed, model.genome_key)
    keras.backend.clear_session()
    try:
        if model.model_file is None:
            raise MoncaeError("no searched model: its training failed during the search")
        keras.utils.set_random_seed(seed)
        # Rebuilding from the genome gives the encoder (it shares the autoencoder's layers)
        # and checks that the saved weights really belong to this genome.
        autoencoder, encoder = build_autoencoder(genome, shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            autoencoder.load_weights(model.model_file)
        autoencoder.compile(optimizer=make_optimizer(genome), loss=make_loss(config.loss),
                            jit_compile=False)
        bs = settings.batch_size
        if settings.epochs > 0:
            searched_val = float(autoencoder.evaluate(tf_dataset(data.x_val, bs), verbose=0))
            searched_weights = autoencoder.get_weights()
            best_val, record.epochs = fit_autoencoder(
                autoencoder, data.x_train, data.x_val, epochs=settings.epochs, batch_size=bs,
                patience=settings.patience, seed=seed,
            )
            if not math.isfinite(best_val) or best_val > searched_val:
                autoencoder.set_weights(searched_weights)  # fine-tuning never made it better
        rec_loss = float(autoencoder.evaluate(tf_dataset(data.x_test, bs), verbose=0))
        if not math.isfinite(rec_loss):
            raise FloatingPointError("test reconstruction loss is NaN or infinite")
        record.rec_loss = rec_loss
        model_bytes = model_to_bytes(autoencoder)
        with atomic_open(out_dir / model_filename(model.genome_key), "wb") as fh:
            fh.write(model_bytes)
        score = latent_classification(
            encoder, data.x_train, data.y_train, data.x_test, data.y_test,
            num_classes=data.num_classes, epochs=settings.classifier_epochs, seed=seed,
            encode_batch_size=bs,
        )
        record.cl_loss, record.cl_acc = score.loss, score.accuracy
        record.status = "ok"
    except Exception as err:  # noqa: BLE001 - one failing model must not stop the others
        record.error = _one_line(err)
    finally:
        keras.backend.clear_session()
    record.finetune_seconds = round(time.perf_counter() - start, 3)
    return record


# --------------------------------------------------------------------------- the run


def finetune_run(run_dir, *, epochs: int = 20, classifier_epochs: int = 20, batch_size: int = 256,
                 patience: int = 3, data_dir: str | None = None,
                 progress: FinetuneProgress | None = None) -> FinetuneResult:
    """Fine-tune every unique genome of a finished run's final population and measure it.

    Args:
        run_dir: a run folder written by `moncae search` (`OUT/DATASET/seed-N/`) whose search
            finished.
        epochs: maximum fine-tuning epochs per model (early stopping on the validation split);
            0 measures the searched models as they are.
        classifier_epochs: training epochs of the latent softmax classifier.
        batch_size: fine-tuning batch size (and images per encoder call).
        patience: early-stopping patience, in epochs without a better validation loss.
        data_dir: where to find the dataset if not where the search found it.
        progress: receives `started` / `model_done` calls (for a progress bar).

    Returns:
        A `FinetuneResult`: one record per unique final genome, in individual order (those
        done by an earlier call are read from `finetune.csv`), and how many were trained now.

    Raises:
        RunFolderError: not a run folder, the search has not finished, or `finetune.csv` was
            made with other settings.
        DataError: the run's dataset cannot be loaded here.
    """
    progress = progress or FinetuneProgress()
    settings = FinetuneSettings(epochs, classifier_epochs, batch_size, patience)
    run = RunFolder(run_dir)
    config = read_run_config(run)
    if data_dir is not None:
        config = dataclasses.replace(config, data_dir=data_dir)

    check_finished(run)  # before loading any data: a quick answer for an unfinished run

    from moncae.evaluate import cached_dataset
    from moncae.search import data_spec

    data = cached_dataset(data_spec(config))
    models = final_models(run, data.input_shape)
    csv_path = run.path / FINETUNE_CSV
    done = _read_done(csv_path)
    _check_settings(run, settings, has_rows=bool(done))
    todo = [m for m in models if m.genome_key not in done]
    progress.started(len(models), len(todo), len(models) - len(todo))

    out_dir = run.path / FINETUNED_DIR
    for model in todo:
        record = finetune_model(model, data, config, settings, out_dir)
        append_csv_rows(csv_path, FINETUNE_COLUMNS, [record.row()])  # after its model file
        done[model.genome_key] = record
        progress.model_done(record)

    records = [done[m.genome_key] for m in models]
    _write_index(out_dir, models, records)
    return FinetuneResult(run.path, records, trained=len(todo), skipped=len(models) - len(todo),
                          settings=settings)


def _read_done(path: Path) -> dict[str, FinetuneRecord]:
    """Models already fine-tuned, by genome key (a rerun skips them)."""
    try:
        return {row["genome_key"]: FinetuneRecord.from_row(row) for row in read_csv_rows(path)}
    except (KeyError, TypeError, ValueError) as err:
        raise RunFolderError(f"{path} is corrupt ({_one_line(err)}); delete it (and "
                             f"{FINETUNED_DIR}/) to fine-tune again") from None


def _write_index(out_dir: Path, models: list[FinalModel], records: list[FinetuneRecord]) -> None:
    """`finetuned/index.csv`: every final individual -> its fine-tuned model file."""
    rows = []
    for model, record in zip(models, records, strict=True):
        name = model_filename(model.genome_key)
        exists = record.ok and (out_dir / name).exists()
        for i in model.individuals:
            rows.append({"individual": i, "genome_key": model.genome_key,
                         "file": name if exists else "", "status": record.status})
    rows.sort(key=lambda r: r["individual"])
    write_csv(out_dir / "index.csv", MODEL_INDEX_COLUMNS, rows)
