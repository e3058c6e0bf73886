"""The run folder `OUT/DATASET/seed-SEED/`: every file a search reads or writes, atomically.

`evaluations.csv` is the append-only journal of trainings (the cache); `checkpoint.pkl` is the
snapshot taken after each generation. Resume = load the snapshot, drop CSV rows of unfinished
generations, and reuse every training the journal already holds.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from moncae.errors import RunFolderError
from moncae.evaluation.records import EVAL_COLUMNS, EvalRecord
from moncae.store.atomic import append_csv_rows, atomic_open, write_csv, write_json
from moncae.store.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from moncae.store.tables import csv_float, read_csv_rows

POPULATION_COLUMNS = ["generation", "individual", "genome_key", "rec_loss", "loc", "fitness", "cached"]
GENERATION_COLUMNS = [
    "generation", "hypervolume", "front_size", "best_rec_loss", "min_loc", "trained", "cache_hits",
    "seconds",
]
MODEL_INDEX_COLUMNS = ["individual", "genome_key", "file", "status"]
FRONT_COLUMNS = ["genome_key", "architecture", "rec_loss", "loc", "generation"]


def model_filename(genome_key: str) -> str:
    return hashlib.sha256(genome_key.encode()).hexdigest()[:16] + ".keras"


class RunFolder:
    """Paths and readers/writers for one run; holds no search state itself."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.config = self.path / "config.json"
        self.evaluations = self.path / "evaluations.csv"
        self.population = self.path / "population.csv"
        self.generations = self.path / "generations.csv"
        self.checkpoint = self.path / "checkpoint.pkl"
        self.front = self.path / "pareto_front.csv"
        self.models = self.path / "models"
        self.model_index = self.models / "index.csv"

    # -- checks -------------------------------------------------------------------------------
    def has_results(self) -> bool:
        return self.path.is_dir() and any(self.path.iterdir())

    def check_writable(self) -> None:
        """Fail before writing anything if the run folder cannot be created or written."""
        probe = self.path
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir():
            raise RunFolderError(f"output path {probe} is a file, not a folder; pass another --out")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise RunFolderError(f"output folder {probe} is not writable; pass a writable --out")

    # -- config -------------------------------------------------------------------------------
    def write_config(self, payload: Mapping[str, Any]) -> None:
        write_json(self.config, payload)

    def read_config(self) -> dict[str, Any]:
        try:
            return json.loads(self.config.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunFolderError(f"{self.path} is not a moncae run folder (no config.json)") from None
        except ValueError as err:
            raise RunFolderError(f"{self.config} is corrupt ({err}); it cannot be resumed") from None

    # -- evaluations journal ------------------------------------------------------------------
    def append_evaluation(self, record: EvalRecord, gene_columns: Sequence[str],
                          genes: Sequence[int]) -> None:
        row = record.row()
        row.update(zip(gene_columns, genes))
        append_csv_rows(self.evaluations, EVAL_COLUMNS + list(gene_columns), [row])

    def read_evaluations(self) -> dict[str, EvalRecord]:
        """The cache: genome key -> its one training record."""
        cache: dict[str, EvalRecord] = {}
        for row in read_csv_rows(self.evaluations):
            rec = EvalRecord(
                genome_key=row["genome_key"], architecture=row["architecture"],
                rec_loss=csv_float(row["rec_loss"]), loc=csv_float(row["loc"]), bottleneck=row["bottleneck"],
                params=int(row["params"] or 0), epochs=int(row["epochs"] or 0),
                fit_seconds=csv_float(row["fit_seconds"]), seconds=csv_float(row["seconds"]),
                status=row["status"], error=row["error"], generation=int(row["generation"]),
            )
            cache[rec.genome_key] = rec
        return cache

    # -- per-generation tables ----------------------------------------------------------------
    def append_population(self, rows: Iterable[Mapping[str, Any]]) -> None:
        append_csv_rows(self.population, POPULATION_COLUMNS, list(rows))

    def append_generation(self, row: Mapping[str, Any]) -> None:
        append_csv_rows(self.generations, GENERATION_COLUMNS, [row])

    def drop_generations_after(self, generation: int) -> None:
        """Remove rows of generations that did not reach their checkpoint (crash mid-generation)."""
        for path, columns in ((self.population, POPULATION_COLUMNS),
                              (self.generations, GENERATION_COLUMNS)):
            if path.exists():
                rows = [r for r in read_csv_rows(path) if int(r["generation"]) <= generation]
                write_csv(path, columns, rows)

    # -- checkpoint -----------------------------------------------------------------------------
    def save_checkpoint(self, state: Checkpoint) -> None:
        save_checkpoint(self.checkpoint, state)

    def load_checkpoint(self) -> Checkpoint | None:
        return load_checkpoint(self.checkpoint)

    # -- models ---------------------------------------------------------------------------------
    def save_model_bytes(self, genome_key: str, data: bytes) -> None:
        with atomic_open(self.models / model_filename(genome_key), "wb") as fh:
            fh.write(data)

    def write_model_index(self, keys: Sequence[str], statuses: Sequence[str]) -> None:
        """Map final individuals to model files; delete models no final individual uses."""
        rows = []
        for i, (key, status) in enumerate(zip(keys, statuses)):
            name = model_filename(key)
            exists = (self.models / name).exists()
            rows.append({"individual": i, "genome_key": key, "file": name if exists else "",
                         "status": status if exists else "failed"})
        write_csv(self.model_index, MODEL_INDEX_COLUMNS, rows)
        keep = {model_filename(k) for k in keys}
        for path in self.models.glob("*.keras"):
            if path.name not in keep:
                path.unlink()

    def write_front(self, rows: Sequence[Mapping[str, Any]]) -> None:
        write_csv(self.front, FRONT_COLUMNS, rows)

