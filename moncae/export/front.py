"""A finished run's all-time Pareto front as a table: pandas and the run's CSVs, no TensorFlow.

`pareto_front.csv` (the non-dominated genomes of the whole search) joined with `evaluations.csv`
(genes, bottleneck, parameters), the analytic FLOPs of each genome, and, where the run was
fine-tuned, `finetune.csv` (test-split figures) and which saved model files exist: only the final
population's models are kept (`models/`, `finetuned/`), so a front point found earlier may have
none.
"""

from __future__ import annotations

import json
import math
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from moncae.config import SearchConfig
from moncae.data import cached_dataset
from moncae.errors import MoncaeError, RunFolderError, RunFolderWarning
from moncae.finetune.records import FINETUNE_CSV, FINETUNED_DIR
from moncae.finetune.run import check_finished, read_run_config
from moncae.method.architecture import bottleneck_shape, bottleneck_text, forward_flops
from moncae.method.genome import Genome
from moncae.store import RunFolder, csv_float, lock_holder, model_filename, read_rows

__all__ = ["FRONT_TABLE_COLUMNS", "RunModels", "format_front", "load_front", "read_run_models"]

FRONT_TABLE_COLUMNS = [
    "id", "genome_key", "architecture", "bottleneck", "loc", "rec_loss", "rec_loss_split",
    "search_rec_loss", "params", "flops", "latency_ms", "cl_acc", "kl", "search_kl", "generation", "on_front",
    "in_final",
    "searched_model", "finetuned_model",
]
MAX_MODEL_CONFIG_BYTES = 64 << 20  # a model file's config.json unpacked (moncae's: tens of KB)


@dataclass
class RunModels:
    """What `read_run_models` reads: the table plus what an export needs beside it."""

    path: Path
    config: SearchConfig
    payload: dict[str, Any]  # config.json as written by the search
    input_shape: tuple[int, int, int] | None  # None when neither a model file nor the data says
    frame: pd.DataFrame  # FRONT_TABLE_COLUMNS
    genomes: dict[str, Genome]  # genome key -> genome (its genes from evaluations.csv)
    finetuned: bool  # the run has a finetune.csv


def load_front(run_dir: str | os.PathLike, *, all_models: bool = False) -> pd.DataFrame:
    """The all-time Pareto front of a finished run, one row per genome, by increasing LOC.

    Columns (`FRONT_TABLE_COLUMNS`): `id` (the 16 hex digits of the model's file name; any unique
    prefix is a key for `moncae export --key` and `load_model`), `genome_key`, `architecture`,
    `bottleneck` (HxWxC), `loc`, `rec_loss` with `rec_loss_split` ('test' where the run was
    fine-tuned and this model was, else 'val'), `search_rec_loss` (the search's validation loss:
    the front's own objective), `params` (the autoencoder's, from the search), `flops` (one
    image's forward pass: `moncae.method.architecture.forward_flops`), `latency_ms` (measured in
    the search when `latency` was an objective, else NaN), `cl_acc` (the fine-tune's
    latent-classifier test accuracy, NaN if none), `kl` and `search_kl` (a VAE's KL term beside
    `rec_loss` and `search_rec_loss`; NaN for an AE), `generation` (first trained), `on_front`,
    `in_final` (in the final population, whose models alone are kept), `searched_model` /
    `finetuned_model` (paths of the saved `.keras` files, '' where none).

    With `all_models`, the final population's models that are not on the front follow
    (`on_front` False). Reads CSVs only: no TensorFlow.
    """
    return read_run_models(run_dir, all_models=all_models).frame


def read_run_models(run_dir: str | os.PathLike, *, all_models: bool = False) -> RunModels:
    """`load_front` with the run's settings, input shape and genomes (for `export`)."""
    run = RunFolder(run_dir)
    config = read_run_config(run)
    check_finished(run)
    holder = lock_holder(run.path)
    if holder and "moncae finetune" in holder:
        warnings.warn(RunFolderWarning(
            f"{run.path}: its fine-tune is running ({holder}): the models it has fine-tuned so far are "
            "used, the searched ones elsewhere; wait for it to finish for all the fine-tuned ones"), stacklevel=2)
    if not run.front.exists():
        raise RunFolderError(f"{run.path} has no pareto_front.csv; the search did not finish "
                             f"writing its results: rerun it with {run.resume_command()}")
    payload = json.loads(run.config.read_text(encoding="utf-8"))
    space = config.genome_space()
    gene_names = space.gene_names()

    front = _rows(run.front, ["genome_key", "rec_loss", "loc", "generation"])
    evaluations = {r["genome_key"]: r for r in _rows(
        run.evaluations, ["genome_key", "rec_loss", "loc", "bottleneck", "params", "status", "generation",
                          *gene_names])}
    searched = _model_files(run.model_index, run.models)
    ft_rows = {r["genome_key"]: r for r in _rows(run.path / FINETUNE_CSV,
                                                 ["genome_key", "rec_loss", "cl_acc", "status"])}
    # a fine-tuned model's file is written before its finetune.csv row (finetuned/index.csv only
    # at the end), so the CSV says which exist, even after an interrupted fine-tune
    ft_dir = run.path / FINETUNED_DIR
    finetuned = {key: ft_dir / model_filename(key) for key, r in ft_rows.items()
                 if r["status"] == "ok" and (ft_dir / model_filename(key)).is_file()}

    keys = [r["genome_key"] for r in front]
    if all_models:  # the final population's other (successfully trained) models
        keys += [k for k in searched.order if k not in set(keys)
                 and evaluations.get(k, {}).get("status") == "ok"]
    genomes = {}
    for key in keys:
        ev = evaluations.get(key)
        if ev is None:
            raise RunFolderError(f"{run.evaluations} has no row for genome {key!r} of "
                                 f"{run.front.name}; the run folder is inconsistent")
        try:
            genomes[key] = Genome(tuple(int(ev[g]) for g in gene_names), space)
        except (ValueError, MoncaeError) as err:
            raise RunFolderError(f"{run.evaluations}: the genes of {key!r} do not fit the run's "
                                 f"genome space ({err})") from None
    shape = _input_shape(config, [*searched.files.values(), *finetuned.values()])

    by_key = {r["genome_key"]: r for r in front}
    try:
        rows = [_row(key, genomes[key], evaluations[key], by_key.get(key), ft_rows.get(key), shape,
                     run, searched, finetuned, config.model) for key in keys]
    except ValueError as err:
        raise RunFolderError(f"{run.path}: a number in its CSVs is malformed ({err})") from None
    frame = pd.DataFrame(rows, columns=FRONT_TABLE_COLUMNS)
    frame = frame.sort_values(["on_front", "loc", "search_rec_loss"], ascending=[False, True, True],
                              kind="stable").reset_index(drop=True)
    return RunModels(run.path, config, payload, shape, frame, genomes,
                     (run.path / FINETUNE_CSV).exists())


def _row(key, genome, ev, on_front_row, ft, shape, run, searched, finetuned, model) -> dict[str, Any]:
    """One model's row of the table."""
    if shape is not None:
        _check_genome(run, key, genome, shape, ev["bottleneck"])
    on_front = on_front_row is not None
    search_loss = csv_float((on_front_row or ev)["rec_loss"])
    # the fine-tune's figures only with its model (a file deleted since: the searched one's stand)
    ft_ok = ft is not None and ft["status"] == "ok" and math.isfinite(csv_float(ft["rec_loss"])) \
        and key in finetuned
    return {
        "id": model_filename(key).removesuffix(".keras"),
        "genome_key": key,
        "architecture": genome.describe(shape) if shape is not None else genome.describe(),
        "bottleneck": ev["bottleneck"],
        "loc": csv_float((on_front_row or ev)["loc"]),
        "rec_loss": csv_float(ft["rec_loss"]) if ft_ok else search_loss,
        "rec_loss_split": "test" if ft_ok else "val",
        "search_rec_loss": search_loss,
        "params": int(ev["params"] or 0),
        "flops": forward_flops(genome, shape, model) if shape is not None else float("nan"),
        "latency_ms": csv_float(ev.get("latency_ms")),
        "cl_acc": csv_float(ft["cl_acc"]) if ft_ok else float("nan"),
        "kl": csv_float(ft.get("kl")) if ft_ok else csv_float(ev.get("kl")),
        "search_kl": csv_float(ev.get("kl")),
        "generation": int((on_front_row or ev)["generation"] or 0),
        "on_front": on_front,
        "in_final": key in searched.order,
        "searched_model": str(searched.files.get(key, "")),
        "finetuned_model": str(finetuned[key]) if ft_ok else "",
    }


# --------------------------------------------------------------------------- reading helpers


def _rows(path: Path, required: list[str]) -> list[dict[str, str]]:
    try:
        rows = read_rows(path)  # a torn last line (a run writing now) is left out with a warning
    except (UnicodeDecodeError, ValueError) as err:
        raise RunFolderError(f"{path} is not a readable CSV ({err})") from None
    if rows:
        missing = [c for c in required if c not in rows[0]]
        if missing:
            raise RunFolderError(f"{path} lacks the column(s) {', '.join(missing)}; it was not "
                                 "written by this version of moncae or is damaged")
    return rows


@dataclass
class _Files:
    files: dict[str, Path]  # genome key -> existing model file
    order: list[str]  # every genome key the index lists, in individual order


def _model_files(index: Path, folder: Path) -> _Files:
    files, order = {}, []
    for row in _rows(index, ["genome_key", "file"]):
        key = row["genome_key"]
        if key not in order:
            order.append(key)
        # the file the search names for this key (never the index's text: a path from elsewhere)
        if row["file"] and (folder / model_filename(key)).is_file():
            files[key] = folder / model_filename(key)
    return _Files(files, order)


def _input_shape(config: SearchConfig, model_files: list[Path]) -> tuple[int, int, int] | None:
    """The run's image shape: from a saved model's config (a zip holding JSON, read without
    Keras), else from the dataset itself; None if neither is readable here."""
    for path in model_files:
        try:
            with zipfile.ZipFile(path) as archive:
                if archive.getinfo("config.json").file_size > MAX_MODEL_CONFIG_BYTES:
                    continue  # not a model moncae wrote (a zip bomb, say): not unpacked
                model = json.loads(archive.read("config.json"))
            shape = model["config"]["layers"][0]["config"]["batch_shape"][1:]
            if len(shape) == 3 and all(isinstance(d, int) and d > 0 for d in shape):
                return tuple(shape)
        except (OSError, KeyError, IndexError, TypeError, ValueError, RecursionError, zipfile.BadZipFile):
            continue
    try:
        return cached_dataset(config.data_spec()).input_shape
    except MoncaeError:
        return None


def _check_genome(run: RunFolder, key: str, genome: Genome, shape, bottleneck: str) -> None:
    ours = bottleneck_text(bottleneck_shape(genome, shape))
    if genome.key_for(shape) != key or (bottleneck and ours != bottleneck):
        raise RunFolderError(f"{run.evaluations}: the genes recorded for {key!r} build another "
                             "network; the run folder is inconsistent")


# --------------------------------------------------------------------------- text table


def _num(value: float, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, (int, float)) and math.isfinite(value) else "-"


def _si(value: float) -> str:
    """1234567 -> 1.23M."""
    if not (isinstance(value, (int, float)) and math.isfinite(value)):
        return "-"
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:g}"


def format_front(frame: pd.DataFrame) -> str:
    """The front as a fixed-width text table (what `moncae front` prints); a `latency` column
    (ms per image) when the search measured it."""
    timed = bool(len(frame)) and bool(frame["latency_ms"].notna().any())
    header = ["key", "architecture", "bottleneck", "LOC", "rec_loss", "split", "params", "FLOPs",
              *(["latency"] if timed else []), "model"]
    lines = []
    for row in frame.to_dict("records"):
        model = "finetuned" if row["finetuned_model"] else "searched" if row["searched_model"] else "-"
        lines.append([row["id"][:8] + ("" if row["on_front"] else "*"), row["architecture"],
                      row["bottleneck"], _num(row["loc"], ".3f"), _num(row["rec_loss"], ".4f"),
                      row["rec_loss_split"], _si(row["params"]), _si(row["flops"]),
                      *([_num(row["latency_ms"], ".3f")] if timed else []), model])
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines)]
    right = {3, 4, 6, 7, 8} if timed else {3, 4, 6, 7}
    out = []
    for cells in [header, *lines]:
        out.append("  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip())
    return "\n".join(out)
