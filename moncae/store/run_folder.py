"""The run folder `OUT/DATASET/seed-SEED/`: every file a search reads or writes.

`evaluations.csv` is the append-only journal of trainings (the cache); `checkpoint.json` is the
snapshot taken after each generation. Resume = load the snapshot, drop CSV rows of unfinished
generations, and reuse every training the journal already holds. Journals are appended row by
row (fsynced) and survive a torn last line (`moncae.store.journal`); every other file is
written whole, atomically (`moncae.store.atomic`). `.lock` keeps a second command out.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import shlex
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from moncae.config import resume_flags
from moncae.data import DATASET_NAMES
from moncae.errors import RunFolderError, RunFolderWarning
from moncae.evaluation.records import EVAL_COLUMNS, FAILURE_KINDS, NEW_EVAL_COLUMNS, EvalRecord
from moncae.store.atomic import atomic_open, is_temporary, write_csv, write_json
from moncae.store.checkpoint import (
    CHECKPOINT_NAME,
    LEGACY_CHECKPOINT_NAME,
    Checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from moncae.store.journal import append_rows, read_rows, rewrite_rows
from moncae.store.lock import LOCK_NAME
from moncae.store.tables import csv_float

POPULATION_COLUMNS = ["generation", "individual", "genome_key", "rec_loss", "loc", "fitness", "cached",
                      "rung"]
GENERATION_COLUMNS = [
    "generation", "hypervolume", "front_size", "best_rec_loss", "min_loc", "trained", "cache_hits",
    "trainings_total", "front_hypervolume", "seconds", "image_epochs_total",
]
MODEL_INDEX_COLUMNS = ["individual", "genome_key", "file", "status"]
RUN_FOLDER_HINT = "pass the folder a search wrote, e.g. results/mnist/seed-46"  # ends "not a run folder" errors
FRONT_COLUMNS = ["genome_key", "architecture", "rec_loss", "loc", "generation"]
# what `moncae finetune` writes into a run folder (moncae.finetune.records)
FINETUNE_CSV = "finetune.csv"
FINETUNE_JSON = "finetune.json"
FINETUNED_DIR = "finetuned"


def data_record(data) -> dict[str, Any]:
    """What config.json keeps of the data a run searched on (a `moncae.data.Dataset`)."""
    return {"fingerprint": data.fingerprint, "input_shape": list(data.input_shape),
            **data.sizes}


def model_filename(genome_key: str) -> str:
    return hashlib.sha256(genome_key.encode()).hexdigest()[:16] + ".keras"


def image_losses_filename(genome_key: str) -> str:
    """Beside a fine-tuned model: each test image's loss under it (a float64 `.npy` vector)."""
    return hashlib.sha256(genome_key.encode()).hexdigest()[:16] + ".test_losses.npy"


def check_writable_folder(path: str | os.PathLike, option: str) -> None:
    """Fail (a `RunFolderError` naming `option`, the command's way to choose another place) before
    anything is computed if the folder `path` cannot be created or written: a file on the way, a
    folder without write permission, a read-only file system."""
    probe = Path(path)
    while not probe.exists() and not probe.is_symlink() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise RunFolderError(f"output path {probe} is a file, not a folder; pass another {option}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RunFolderError(f"output folder {probe} is not writable; pass a writable {option}")


class RunFolder:
    """Paths and readers/writers for one run; holds no search state itself."""

    def __init__(self, path: str | os.PathLike) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise RunFolderError(f"a run folder is a path (a str or a pathlib.Path). Received: {path!r}"[:200])
        self.path = Path(path)
        self.config = self.path / "config.json"
        self.evaluations = self.path / "evaluations.csv"
        self.population = self.path / "population.csv"
        self.generations = self.path / "generations.csv"
        self.checkpoint = self.path / CHECKPOINT_NAME
        self.front = self.path / "pareto_front.csv"
        self.models = self.path / "models"
        self.model_index = self.models / "index.csv"
        # objective columns beyond (rec_loss, loc) in population.csv and pareto_front.csv (the
        # search sets them from its `objectives`; none for the paper's two)
        self.objective_columns: list[str] = []

    @property
    def population_columns(self) -> list[str]:
        return POPULATION_COLUMNS + self.objective_columns

    # -- checks -------------------------------------------------------------------------------
    def has_results(self) -> bool:
        """Whether the folder holds anything but its lock file and settings (`config.json` alone:
        a start that failed before its first training, e.g. its worker processes; nothing to lose)."""
        ignored = (LOCK_NAME, self.config.name)  # and a killed write's temporary file
        return self.path.is_dir() and any(p.name not in ignored and not is_temporary(p.name)
                                          for p in self.path.iterdir())

    def has_journals(self) -> bool:
        """Whether a search has written results here (journals or a checkpoint)."""
        return any(p.exists() for p in (self.evaluations, self.population, self.generations,
                                        self.checkpoint, self.path / LEGACY_CHECKPOINT_NAME))

    def finetune_files(self) -> list[str]:
        """The fine-tune's files and folder that this run folder has."""
        return [name for name in (FINETUNE_CSV, FINETUNE_JSON, FINETUNED_DIR) if (self.path / name).exists()]

    def check_writable(self) -> None:
        """Fail before writing anything if the run folder cannot be created or written."""
        check_writable_folder(self.path, "--out")

    def resume_command(self) -> str:
        """The `moncae search ... --resume` that continues this run, as config.json tells: its
        dataset, seed, output root, preset and generations, and a flag for each other setting that
        decides its results and differs from the preset's; settings no flag sets are named."""
        try:
            payload = self.read_config()
            run = payload["run"]
            dataset, seed = str(run["dataset"]), int(run["seed"])
            # --out is where this folder is now (a run copied or moved keeps its old --out in
            # config.json, and resuming that would touch the original); a folder renamed from
            # OUT/DATASET/seed-N cannot be found by a search at all
            name = dataset if dataset in DATASET_NAMES else Path(dataset).stem
            here = self.out_root(dataset, seed)
            placed = here is not None
            out = str(here) if placed else str(run["out"])
            parts = ["moncae search", f"--dataset {shlex.quote(dataset)}", f"--seed {seed}",
                     f"--out {shlex.quote(out)}"] + (
                [f"--preset {shlex.quote(run['preset'])}"] if run.get("preset") else []) + [
                f"--generations {int(run['generations'])}"]
            flags, unflagged = resume_flags(payload["settings"], run.get("preset"))
        except (RunFolderError, KeyError, TypeError, ValueError, AttributeError):
            return "`moncae search ... --resume`"
        rest = f" (with a --config file setting {', '.join(unflagged)} as config.json records them)" \
            if unflagged else ""
        if not placed:
            rest += (f" after moving {self.path} to {Path(out) / name / f'seed-{seed}'} (a search finds a run "
                     "only at OUT/DATASET/seed-N)")
        return f"`{' '.join([*parts, *flags])} --resume`{rest}"

    def out_root(self, dataset: str, seed: int) -> Path | None:
        """The --out under which a search of `dataset` and `seed` finds this folder (its parent's
        parent, where it is OUT/DATASET/seed-N); None where it was renamed."""
        name = dataset if dataset in DATASET_NAMES else Path(dataset).stem
        here = self.path if self.path.name not in ("", ".", "..") else Path(os.path.abspath(self.path))
        return here.parent.parent if (here.parent.name, here.name) == (name, f"seed-{seed}") else None

    @functools.cached_property
    def data_fingerprint(self) -> str | None:
        """The fingerprint of the data config.json records (None where it records none), read once:
        every training of the run must load that data (`moncae.data.DataSpec.fingerprint`)."""
        data = self.read_config().get("data")
        return data.get("fingerprint") if isinstance(data, Mapping) else None

    # -- config -------------------------------------------------------------------------------
    def write_config(self, payload: Mapping[str, Any]) -> None:
        write_json(self.config, payload)

    def read_config(self) -> dict[str, Any]:
        """config.json as written by `moncae search` (a dict with `settings` and `run`)."""
        try:
            payload = json.loads(self.config.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunFolderError(f"{self.path} is not a moncae run folder (no config.json); "
                                 f"{RUN_FOLDER_HINT}") from None
        except (ValueError, UnicodeDecodeError, RecursionError) as err:  # Recursion: nested too deep
            raise RunFolderError(f"{self.config} is corrupt ({str(err)[:120]}); it cannot be used: restore it "
                                 "from a copy, or start the run again with another --out") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("settings"), dict) \
                or not isinstance(payload.get("run"), dict):
            raise RunFolderError(f"{self.config} is not a moncae run configuration (no `settings` and "
                                 "`run` tables); it was not written by `moncae search`")
        return payload

    def check_data(self, data, *, stored: Mapping[str, Any] | None = None) -> None:
        """Refuse data other than the data the search ran on (by its fingerprint)."""
        stored = self.read_config().get("data") if stored is None else stored
        current = data_record(data)
        if not isinstance(stored, Mapping) or "fingerprint" not in stored:
            raise RunFolderError(f"{self.config} does not record the data the search ran on (an older "
                                 "moncae); it cannot be checked, so it is not reused")
        differ = sorted(k for k in current if stored.get(k) != current[k])
        if differ:
            details = ", ".join(f"{k}: {stored.get(k)!r} -> {current[k]!r}" for k in differ)
            fix = ("point --data-dir (or MONCAE_DATA_DIR) at the same files" if data.name in DATASET_NAMES
                   else f"the file {data.name} changed since: put back the one the search ran on")
            raise RunFolderError(f"the data found now is not the data {self.path} was searched on "
                                 f"({details}); {fix}")

    # -- evaluations journal ------------------------------------------------------------------
    def append_evaluation(self, record: EvalRecord, gene_columns: Sequence[str],
                          genes: Sequence[int], extra_columns: Sequence[str] = ()) -> None:
        """One row: EVAL_COLUMNS, then `extra_columns` (a VAE run's VAE_COLUMNS), then the genes."""
        row = record.row()
        row.update(zip(gene_columns, genes))
        append_rows(self.evaluations, EVAL_COLUMNS + list(extra_columns) + list(gene_columns), [row],
                    optional=NEW_EVAL_COLUMNS)

    def _evaluation_rows(self, repair: bool) -> list[tuple[int, dict[str, str], EvalRecord]]:
        out = []
        rows = read_rows(self.evaluations, EVAL_COLUMNS, repair=repair, optional=NEW_EVAL_COLUMNS)
        for line, row in enumerate(rows, start=2):
            try:
                rec = EvalRecord(
                    genome_key=row["genome_key"], architecture=row["architecture"],
                    rec_loss=csv_float(row["rec_loss"]), loc=csv_float(row["loc"]),
                    bottleneck=row["bottleneck"], params=int(row["params"] or 0),
                    epochs=int(row["epochs"] or 0), fit_seconds=csv_float(row["fit_seconds"]),
                    seconds=csv_float(row["seconds"]), status=row["status"], error=row["error"],
                    generation=int(row["generation"]), failure=row["failure"],
                    rung=int(row.get("rung") or 0), train_images=int(row.get("train_images") or 0),
                    inherited=int(row.get("inherited") or 0), flops=int(row.get("flops") or 0),
                    latency_ms=csv_float(row.get("latency_ms")), kl=csv_float(row.get("kl")),
                )
            except ValueError as err:
                raise RunFolderError(f"{self.evaluations}:{line}: unreadable value ({err}); the file "
                                     "is damaged") from None
            if rec.status not in ("ok", "failed") or (rec.failure and rec.failure not in FAILURE_KINDS):
                raise RunFolderError(f"{self.evaluations}:{line}: unknown status {rec.status!r} / "
                                     f"failure {rec.failure!r}; the file is damaged")
            out.append((line, row, rec))
        return out

    def read_evaluations(self, *, repair: bool = False) -> dict[str, list[EvalRecord]]:
        """The cache: genome key -> its training records, one per fidelity rung, lowest rung
        first (one record with fidelity "full"). A torn last row is dropped; with `repair`,
        held under the run's lock, it is also cut from the file."""
        cache: dict[str, list[EvalRecord]] = {}
        for line, _, rec in self._evaluation_rows(repair):
            rungs = cache.setdefault(rec.genome_key, [])
            if rec.rung != len(rungs):
                warnings.warn(f"{self.evaluations}:{line}: a second row for one genome key and rung "
                              f"(or a rung out of order); the first is used", RunFolderWarning,
                              stacklevel=2)
                continue
            rungs.append(rec)
        return cache

    def forget_transient_failures(self, keys: Iterable[str]) -> int:
        """Drop the journal rows of trainings of genomes `keys` that failed for a passing reason
        (out of memory, disk, a dying worker), so that they are trained again; returns how many."""
        keys = set(keys)
        rows = self._evaluation_rows(repair=True)
        keep = [row for _, row, rec in rows if not (rec.transient and rec.genome_key in keys)]
        if len(keep) < len(rows):
            header = list(rows[0][1])
            rewrite_rows(self.evaluations, header, keep)
        return len(rows) - len(keep)

    # -- per-generation tables ----------------------------------------------------------------
    def append_population(self, rows: Iterable[Mapping[str, Any]]) -> None:
        append_rows(self.population, self.population_columns, list(rows))

    def append_generation(self, row: Mapping[str, Any]) -> None:
        append_rows(self.generations, GENERATION_COLUMNS, [row])

    def drop_generations_after(self, generation: int) -> dict[int, float]:
        """Remove rows of generations that did not reach their checkpoint (crash mid-generation,
        or every row when the search replays its journal without a checkpoint); return the
        `seconds` of each generations.csv row removed."""
        removed: dict[int, float] = {}
        for path, columns in ((self.population, self.population_columns),
                              (self.generations, GENERATION_COLUMNS)):
            if not path.exists():
                continue
            rows = read_rows(path, columns)
            try:
                keep = [r for r in rows if int(r["generation"]) <= generation]
            except ValueError:
                raise RunFolderError(f"{path}: a `generation` cell is not an integer; the file is "
                                     "damaged") from None
            if path == self.generations:
                removed = {int(r["generation"]): float(r["seconds"]) for r in rows
                           if int(r["generation"]) > generation and _is_float(r["seconds"])}
            rewrite_rows(path, columns, keep)
        return removed

    def restore_generations(self, logged: Sequence[Mapping[str, Any]]) -> list[int]:
        """Put back the generations.csv rows of checkpointed generations that the file lacks (cut
        or emptied by hand), from the checkpoint's log (`logged`: its rows, `gen` for
        `generation`); `seconds` is left empty where the log lacks it (a checkpoint written before
        the log kept it). Returns the generations put back."""
        rows = read_rows(self.generations, GENERATION_COLUMNS)
        have = {r["generation"] for r in rows}
        back = [{**{k: v for k, v in row.items() if k != "gen"}, "generation": row["gen"],
                 "seconds": row["seconds"] if _is_float(str(row.get("seconds"))) else ""}
                for row in logged if str(row["gen"]) not in have]
        if back:
            rows = sorted([*rows, *back], key=lambda r: int(r["generation"]))
            rewrite_rows(self.generations, GENERATION_COLUMNS, rows)
        return [int(r["generation"]) for r in back]

    # -- checkpoint -----------------------------------------------------------------------------
    def save_checkpoint(self, state: Checkpoint) -> None:
        save_checkpoint(self.checkpoint, state)

    def load_checkpoint(self) -> Checkpoint | None:
        return load_checkpoint(self.checkpoint)

    # -- models ---------------------------------------------------------------------------------
    def save_model_bytes(self, genome_key: str, data: bytes, *, rung: int | None = None,
                         highest: bool = True) -> None:
        """Save a trained model: `models/KEY.keras` holds the highest rung trained so far; a
        lower rung's model is also kept as `models/rungs/KEY.rN.keras` (what a promotion
        continues from, also after a crash that tore the rung above), until the search ends.
        `highest=False`: a lower rung's model alone (one on the way to a higher one)."""
        if rung is not None:
            with atomic_open(self.rung_model(genome_key, rung), "wb") as fh:
                fh.write(data)
        if highest:
            with atomic_open(self.model_path(genome_key), "wb") as fh:
                fh.write(data)

    def model_path(self, genome_key: str) -> Path:
        return self.models / model_filename(genome_key)

    def rung_model(self, genome_key: str, rung: int) -> Path:
        return self.models / "rungs" / f"{Path(model_filename(genome_key)).stem}.r{rung}.keras"

    def write_model_index(self, keys: Sequence[str], statuses: Sequence[str]) -> int:
        """Map final individuals to model files; delete models no final individual uses. A
        training that was ok but whose file is gone (deleted by hand) is `missing`, not `failed`.

        Returns how many final individuals have their model on disk."""
        rows = []
        for i, (key, status) in enumerate(zip(keys, statuses)):
            name = model_filename(key)
            exists = (self.models / name).exists()
            rows.append({"individual": i, "genome_key": key, "file": name if exists else "",
                         "status": status if exists else "missing" if status == "ok" else status})
        write_csv(self.model_index, MODEL_INDEX_COLUMNS, rows)
        keep = {model_filename(k) for k in keys}
        for path in self.models.glob("*.keras"):
            if path.name not in keep:
                path.unlink()
        for path in self.models.glob("rungs/*.keras"):  # promotions are over
            path.unlink()
        with contextlib.suppress(OSError):  # the folder, once empty (a file of the user's stays)
            (self.models / "rungs").rmdir()
        return sum(1 for r in rows if r["file"])

    def write_front(self, rows: Sequence[Mapping[str, Any]]) -> None:
        write_csv(self.front, FRONT_COLUMNS + self.objective_columns, rows)


def _is_float(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
