"""`build_report`: the paper's Table 1 and figures over every run folder under a results folder.

Collecting and drawing are apart: each `_collect_*` function reads run folders and returns
plain data (DataFrames, dicts) that the tests check; `moncae.report_plots` only draws it.

What Table 1 averages, per dataset (like the paper's Table 1):
- the *final population* of each run: the rows of the last generation in `population.csv`
  (for a run that did not finish, its last completed generation, with a warning);
- each distinct network once (duplicated genomes are one trained model), failed ones left out,
  and only those with `LOC < threshold` (default 2.5 for single-channel images, 3.1 for
  three-channel ones);
- rec loss and classification loss/accuracy from `finetune.csv` when the run was fine-tuned
  (test split), else the search's validation loss with the fine-tune columns empty;
- per seed the mean over its models, then the mean and standard deviation over seeds;
- `search_minutes`: the sum of `generations.csv` `seconds` of a run, / 60 (training and
  bookkeeping time of the generations, not start-up); `finetune_seconds`: the sum of
  `finetune.csv` `finetune_seconds` of a run (its whole final population).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import warnings
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from moncae._version import __version__
from moncae.atomic import write_csv, write_text
from moncae.errors import MoncaeError, RunFolderError
from moncae.report_pca import PCA_COLUMNS, baseline_ks, max_components, pca_baseline

__all__ = ["DEFAULT_LOC_THRESHOLDS", "ReportWarning", "TABLE1_COLUMNS", "build_report"]

DEFAULT_LOC_THRESHOLDS = {1: 2.5, 3: 3.1}  # input channels -> LOC threshold (paper)
KNOWN_CHANNELS = {"mnist": 1, "mnist_5k": 1, "fashion_mnist": 1, "cifar10": 3}
REPORT_DIRNAME = "report"
RECONSTRUCTION_IMAGES = 4
TABLE1_COLUMNS = [
    "dataset", "loc_threshold", "runs", "unfinished_runs", "finetuned_runs", "models", "source",
    "rec_loss", "rec_loss_std", "loc", "loc_std", "cl_loss", "cl_loss_std", "cl_acc", "cl_acc_std",
    "search_minutes", "search_minutes_std", "finetune_seconds", "finetune_seconds_std",
]
RUN_COLUMNS = [
    "dataset", "seed", "path", "generations_done", "generations", "finished", "finetuned",
    "final_models", "failed_models", "models_below_threshold", "search_minutes", "finetune_seconds",
]
FINAL_COLUMNS = [
    "dataset", "seed", "genome_key", "architecture", "bottleneck", "latent_size", "loc",
    "search_rec_loss", "rec_loss", "source", "cl_loss", "cl_acc", "finetune_seconds",
    "individuals", "status", "model_file", "model_stage",
]
_MEANED = ("rec_loss", "loc", "cl_loss", "cl_acc")


class ReportWarning(UserWarning):
    """Something the report could not use (an unfinished run, missing data); it goes on."""


def _warn(message: str) -> None:
    warnings.warn(message, ReportWarning, stacklevel=3)


# --------------------------------------------------------------------------- reading


def _read_table(path: Path, required: Sequence[str], *, numeric: Sequence[str] = (),
                integer: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Rows of a run CSV with typed columns; a malformed file is an error naming file and line.

    Empty numeric cells become NaN. An absent file gives [].
    """
    if not path.exists():
        return []
    rows: list[dict[str, Any]] = []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header:
                raise RunFolderError(f"{path}:1: empty file, expected a header row with "
                                     f"{', '.join(required)}")
            missing = [c for c in required if c not in header]
            if missing:
                raise RunFolderError(f"{path}:1: missing column(s) {', '.join(missing)}; "
                                     f"the header is {','.join(header)}")
            for cells in reader:
                line = reader.line_num
                if not cells:
                    continue
                if len(cells) != len(header):
                    raise RunFolderError(f"{path}:{line}: expected {len(header)} fields, "
                                         f"found {len(cells)}")
                row: dict[str, Any] = dict(zip(header, cells, strict=True))
                for name in numeric:
                    row[name] = _number(row.get(name, ""), float, path, line, name)
                for name in integer:
                    row[name] = _number(row.get(name, ""), int, path, line, name)
                rows.append(row)
    except (UnicodeDecodeError, csv.Error) as err:
        raise RunFolderError(f"{path}: not a readable CSV ({err})") from None
    return rows


def _number(text: Any, kind: type, path: Path, line: int, name: str) -> Any:
    text = "" if text is None else str(text).strip()
    if text == "":
        if kind is int:
            raise RunFolderError(f"{path}:{line}: column `{name}` is empty, expected an integer")
        return float("nan")
    try:
        return kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise RunFolderError(f"{path}:{line}: column `{name}` must be {what}. "
                             f"Received: {text!r}") from None


def _latent_size(bottleneck: str) -> int | None:
    try:
        dims = [int(d) for d in str(bottleneck).split("x")]
    except ValueError:
        return None
    return math.prod(dims) if dims and min(dims) > 0 else None


# --------------------------------------------------------------------------- runs


@dataclass
class RunInfo:
    """One run folder: what it holds and how far it got."""

    path: Path
    dataset: str
    seed: int
    config: Any  # moncae.config.SearchConfig
    generations_done: int
    generations: int
    finished: bool
    finetuned: bool
    search_minutes: float
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"seed-{self.seed}"


def _find_run_dirs(root: Path) -> list[Path]:
    """Folders holding a `config.json` or `evaluations.csv` (not searched below one)."""
    if not root.exists():
        raise RunFolderError(f"results folder {root} does not exist; pass the folder `moncae "
                             "search` wrote to (its --out, default: results)")
    if not root.is_dir():
        raise RunFolderError(f"{root} is a file, not a results folder")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        if "config.json" in filenames or "evaluations.csv" in filenames:
            found.append(Path(dirpath))
            dirnames[:] = []
        else:
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    if not found:
        raise RunFolderError(f"no run folders under {root}: expected DATASET/seed-N/ folders "
                             "written by `moncae search`")
    return found


def _read_run_config(path: Path):
    from moncae.config import SearchConfig

    config_path = path / "config.json"
    if not config_path.exists():
        raise RunFolderError(f"{path} has run files but no config.json; it was not written by "
                             "`moncae search` or is damaged")
    try:
        payload = json.loads(config_path.read_text(encoding="utf-8"))
        return SearchConfig.from_dict(payload["run"])
    except (ValueError, KeyError, TypeError, MoncaeError) as err:
        detail = "no 'run' entry" if isinstance(err, KeyError) else str(err).splitlines()[0]
        raise RunFolderError(f"{config_path}: not a valid moncae run configuration "
                             f"({detail})") from None


def _collect_run(path: Path) -> RunInfo | None:
    """How far one run got; None (with a warning) when it has no finished generation."""
    config = _read_run_config(path)
    dataset = Path(config.run_dir).parent.name
    population = _read_table(path / "population.csv", ["generation", "genome_key"],
                             integer=["generation"])
    generations = _read_table(path / "generations.csv", ["generation", "seconds"],
                              numeric=["seconds"], integer=["generation"])
    if not population:
        _warn(f"{path}: no finished generation yet (no population.csv rows); left out")
        return None
    done = max(r["generation"] for r in population) + 1
    seconds = [r["seconds"] for r in generations if math.isfinite(r["seconds"])]
    notes = []
    finished = done >= config.generations and (path / "models" / "index.csv").exists()
    if done < config.generations:
        notes.append(f"stopped after generation {done} of {config.generations}; its last "
                     f"generation is used as the final population")
    elif not finished:
        notes.append("models/index.csv is missing: the search did not finish writing models")
    finetuned = (path / "finetune.csv").exists()
    run = RunInfo(path, dataset, config.seed, config, done, config.generations, finished,
                  finetuned, sum(seconds) / 60.0 if seconds else float("nan"), notes)
    for note in notes:
        _warn(f"{path}: {note}")
    return run


def _collect_runs(results_dir: str | os.PathLike) -> list[RunInfo]:
    """Every run under `results_dir` with at least one finished generation, sorted."""
    root = Path(results_dir)
    runs = [r for r in (_collect_run(p) for p in _find_run_dirs(root)) if r is not None]
    if not runs:
        raise RunFolderError(f"no run under {root} has finished a generation yet; nothing to "
                             "report")
    runs.sort(key=lambda r: (r.dataset, r.seed, str(r.path)))
    return runs


# --------------------------------------------------------------------------- final models


def _collect_final_models(run: RunInfo) -> pd.DataFrame:
    """One row per distinct genome of the run's final population (FINAL_COLUMNS).

    `rec_loss` is the fine-tuned test loss when `finetune.csv` has the model (`source`
    'finetune'), else the search's validation loss (`source` 'search').
    """
    from moncae.runstore import model_filename

    path = run.path
    population = _read_table(path / "population.csv",
                             ["generation", "genome_key", "rec_loss", "loc"],
                             numeric=["rec_loss", "loc"], integer=["generation"])
    last = max(r["generation"] for r in population)
    final = [r for r in population if r["generation"] == last]
    evaluations = {r["genome_key"]: r for r in _read_table(
        path / "evaluations.csv", ["genome_key", "architecture", "bottleneck", "status"],
        numeric=["rec_loss", "loc"])}
    finetune = {r["genome_key"]: r for r in _read_table(
        path / "finetune.csv", ["genome_key", "rec_loss", "cl_loss", "cl_acc", "finetune_seconds",
                                "status"],
        numeric=["rec_loss", "cl_loss", "cl_acc", "finetune_seconds"])}
    index = {r["genome_key"]: r for r in _read_table(
        path / "models" / "index.csv", ["genome_key", "file", "status"])}

    counts: dict[str, int] = {}
    for r in final:
        counts[r["genome_key"]] = counts.get(r["genome_key"], 0) + 1
    rows = []
    missing_finetune = 0
    for key, n in counts.items():
        pop = next(r for r in final if r["genome_key"] == key)
        ev = evaluations.get(key, {})
        status = ev.get("status", "ok" if pop["rec_loss"] < run.config.ref_point[0] else "failed")
        ok = status == "ok" and math.isfinite(pop["rec_loss"]) and math.isfinite(pop["loc"])
        bottleneck = ev.get("bottleneck", "")
        row = {
            "dataset": run.dataset, "seed": run.seed, "genome_key": key,
            "architecture": ev.get("architecture", ""), "bottleneck": bottleneck,
            "latent_size": _latent_size(bottleneck), "loc": pop["loc"],
            "search_rec_loss": pop["rec_loss"], "rec_loss": pop["rec_loss"], "source": "search",
            "cl_loss": float("nan"), "cl_acc": float("nan"), "finetune_seconds": float("nan"),
            "individuals": n, "status": status if ok else "failed", "model_file": "",
            "model_stage": "",
        }
        ft = finetune.get(key)
        if ft is not None:
            row["finetune_seconds"] = ft["finetune_seconds"]
        if ok and ft is not None and ft["status"] == "ok" and math.isfinite(ft["rec_loss"]):
            row.update(rec_loss=ft["rec_loss"], source="finetune", cl_loss=ft["cl_loss"],
                       cl_acc=ft["cl_acc"])
        elif ok and run.finetuned:
            missing_finetune += 1
        if ok:
            candidates = []
            if row["source"] == "finetune":
                candidates.append((path / "finetuned" / model_filename(key), "finetune"))
            if key in index and index[key]["file"]:
                candidates.append((path / "models" / index[key]["file"], "search"))
            candidates.append((path / "models" / model_filename(key), "search"))
            found = next((c for c in candidates if c[0].is_file()), None)
            if found:
                row["model_file"], row["model_stage"] = str(found[0]), found[1]
        rows.append(row)
    if missing_finetune:
        _warn(f"{path}: finetune.csv has no usable result for {missing_finetune} of the final "
              "models; their search values are used")
    return pd.DataFrame(rows, columns=FINAL_COLUMNS)


# --------------------------------------------------------------------------- thresholds


def _channels_from_model(files: Iterable[str]) -> int | None:
    """Input channels read from a saved .keras model's config (no Keras needed)."""
    for file in files:
        if not file:
            continue
        try:
            with zipfile.ZipFile(file) as zf:
                text = zf.read("config.json").decode("utf-8")
        except (OSError, KeyError, zipfile.BadZipFile):
            continue
        match = re.search(r'"batch_shape":\s*\[\s*null\s*,\s*\d+\s*,\s*\d+\s*,\s*(\d+)\s*\]', text)
        if match:
            return int(match.group(1))
    return None


def _default_threshold(channels: int | None) -> float:
    return DEFAULT_LOC_THRESHOLDS[3] if channels is not None and channels >= 3 else \
        DEFAULT_LOC_THRESHOLDS[1]


def _collect_runs_table(runs: Sequence[RunInfo], finals: pd.DataFrame,
                        thresholds: dict[str, float]) -> pd.DataFrame:
    rows = []
    for run in runs:
        mine = finals[(finals["dataset"] == run.dataset) & (finals["seed"] == run.seed)]
        ok = mine[mine["status"] == "ok"]
        below = ok[ok["loc"] < thresholds[run.dataset]]
        ft = mine["finetune_seconds"].dropna()
        rows.append({
            "dataset": run.dataset, "seed": run.seed, "path": str(run.path),
            "generations_done": run.generations_done, "generations": run.generations,
            "finished": run.finished, "finetuned": run.finetuned, "final_models": len(mine),
            "failed_models": int((mine["status"] != "ok").sum()),
            "models_below_threshold": len(below), "search_minutes": run.search_minutes,
            "finetune_seconds": float(ft.sum()) if run.finetuned else float("nan"),
        })
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def _mean_std(values: Iterable[float]) -> tuple[float, float]:
    arr = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if arr.size == 0:
        return float("nan"), float("nan")
    std = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
    return float(arr.mean()), std


def _collect_table1(runs: Sequence[RunInfo], finals: pd.DataFrame,
                    thresholds: dict[str, float]) -> pd.DataFrame:
    """Table 1: one row per dataset (TABLE1_COLUMNS); see the module docstring for the rules."""
    runs_table = _collect_runs_table(runs, finals, thresholds)
    rows = []
    for dataset, group in runs_table.groupby("dataset", sort=True):
        threshold = thresholds[dataset]
        models = finals[(finals["dataset"] == dataset) & (finals["status"] == "ok")
                        & (finals["loc"] < threshold)]
        per_seed = models.groupby("seed")[list(_MEANED)].mean()
        row: dict[str, Any] = {
            "dataset": dataset, "loc_threshold": threshold, "runs": len(group),
            "unfinished_runs": int((~group["finished"].astype(bool)).sum()),
            "finetuned_runs": int(group["finetuned"].astype(bool).sum()), "models": len(models),
        }
        sources = set(models["source"])
        row["source"] = ("mixed" if len(sources) > 1 else sources.pop()) if sources else ""
        for col in _MEANED:
            row[col], row[f"{col}_std"] = _mean_std(per_seed[col]) if len(per_seed) else \
                (float("nan"), float("nan"))
        row["search_minutes"], row["search_minutes_std"] = _mean_std(group["search_minutes"])
        row["finetune_seconds"], row["finetune_seconds_std"] = _mean_std(group["finetune_seconds"])
        if not len(models):
            _warn(f"{dataset}: no final model has LOC < {threshold:g}; its Table 1 row is empty "
                  "(lower the compression requirement with --loc-threshold)")
        rows.append(row)
    return pd.DataFrame(rows, columns=TABLE1_COLUMNS)


# --------------------------------------------------------------------------- figures' data


def _collect_pareto(finals: pd.DataFrame, pca: pd.DataFrame | None, threshold: float) -> dict:
    """Points of every final model of every seed, their combined front, the PCA front."""
    from moncae.objectives import non_dominated_mask

    ok = finals[finals["status"] == "ok"].sort_values(["seed", "loc", "rec_loss"])
    points = ok[["seed", "loc", "rec_loss", "source"]].reset_index(drop=True)
    if len(points):
        xy = points[["rec_loss", "loc"]].to_numpy(dtype=float)
        mask = non_dominated_mask(xy)
        front = points.loc[mask, ["loc", "rec_loss"]].drop_duplicates()
        front = front.sort_values(["loc", "rec_loss"]).reset_index(drop=True)
    else:
        front = pd.DataFrame(columns=["loc", "rec_loss"])
    return {
        "points": points, "front": front, "threshold": threshold,
        "pca": pca if pca is not None else pd.DataFrame(columns=PCA_COLUMNS),
        "failed": int((finals["status"] != "ok").sum()),
        "sources": sorted(set(points["source"])),
    }


def _collect_hv_history(runs: Sequence[RunInfo]) -> dict:
    """Hypervolume per generation: each run's (`runs`) and mean/std/min/max over seeds."""
    rows = []
    for run in runs:
        for r in _read_table(run.path / "generations.csv", ["generation", "hypervolume"],
                             numeric=["hypervolume"], integer=["generation"]):
            rows.append({"seed": run.seed, "generation": r["generation"],
                         "hypervolume": r["hypervolume"]})
    per_run = pd.DataFrame(rows, columns=["seed", "generation", "hypervolume"])
    summary = per_run.groupby("generation")["hypervolume"].agg(
        ["mean", "std", "min", "max", "count"]).reset_index()
    ref = runs[0].config.ref_point if runs else (4.0, 12.0)
    return {"runs": per_run, "summary": summary, "ref_point": tuple(ref)}


def _pick_images(x: np.ndarray, y: np.ndarray | None, n: int) -> np.ndarray:
    """Indices of the first `n` test images, one per class where labels allow."""
    if y is None or len(y) != len(x):
        return np.arange(min(n, len(x)))
    chosen, seen = [], set()
    for i, label in enumerate(np.asarray(y).tolist()):
        if label not in seen:
            chosen.append(i)
            seen.add(label)
        if len(chosen) == n:
            break
    for i in range(len(x)):  # fewer classes than n: fill with the next images
        if len(chosen) >= n:
            break
        if i not in chosen:
            chosen.append(i)
    return np.array(sorted(chosen))


def _collect_reconstructions(finals: pd.DataFrame, images: np.ndarray) -> dict:
    """Each final model's reconstructions of `images`, models sorted by LOC then loss."""
    from moncae.evaluate import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    models = finals[(finals["status"] == "ok") & (finals["model_file"] != "")]
    models = models.sort_values(["loc", "rec_loss"])
    out = []
    for _, m in models.iterrows():  # tiny models: one session for all (clear_session costs a gc)
        try:
            model = keras.models.load_model(m["model_file"], compile=False)
            recon = np.asarray(model(images.astype("float32"), training=False))
        except Exception as err:  # noqa: BLE001 - one unreadable model must not stop the report
            _warn(f"{m['model_file']}: cannot load or run this model ({type(err).__name__}); "
                  "left out of the reconstructions figure")
            continue
        searched = m["model_stage"] == "search"  # the loss shown is the drawn model's own
        out.append({"genome_key": m["genome_key"],
                    "rec_loss": float(m["search_rec_loss"] if searched else m["rec_loss"]),
                    "loc": float(m["loc"]), "bottleneck": m["bottleneck"],
                    "source": "search" if searched else m["source"],
                    "reconstructions": np.clip(recon, 0.0, 1.0)})
    keras.backend.clear_session()
    return {"images": images, "models": out}


# --------------------------------------------------------------------------- data per dataset


@dataclass
class _DatasetData:
    x_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray | None
    channels: int
    description: str


def _load_dataset_for(runs: Sequence[RunInfo]) -> _DatasetData | None:
    """The splits of the dataset's first run (by seed); None with a warning if unavailable."""
    from moncae.evaluate import cached_dataset
    from moncae.search import data_spec

    run = runs[0]
    specs = {data_spec(r.config) for r in runs}
    if len(specs) > 1:
        _warn(f"{run.dataset}: runs use different data splits; the PCA baseline and "
              f"reconstructions use those of {run.path}")
    try:
        data = cached_dataset(data_spec(run.config))
    except Exception as err:  # noqa: BLE001 - the report works without the data
        _warn(f"{run.dataset}: cannot load the data ({str(err).splitlines()[0][:200]}); the PCA "
              "baseline and reconstruction figures are left out")
        return None
    desc = (f"{len(data.x_train)} training / {len(data.x_test)} test images of "
            f"{'x'.join(str(d) for d in data.input_shape)}")
    return _DatasetData(data.x_train, data.x_test, data.y_test, data.input_shape[-1], desc)


# --------------------------------------------------------------------------- markdown


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pm(mean: float, std: float, digits: int) -> str:
    if not math.isfinite(mean):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if math.isfinite(std) else f"{mean:.{digits}f}"


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


_SOURCE_MARK = {"finetune": "", "search": " †", "mixed": " ‡", "": ""}


def table1_markdown(table: pd.DataFrame) -> str:
    """Table 1 as a GitHub markdown table (mean ± std over seeds) with its footnotes."""
    rows = []
    for _, r in table.iterrows():
        mark = _SOURCE_MARK.get(r["source"], "")
        rows.append([
            f"{r['dataset']}", _pm(r["rec_loss"], r["rec_loss_std"], 3) + mark,
            _pm(r["loc"], r["loc_std"], 3), _pm(r["cl_loss"], r["cl_loss_std"], 3),
            _pm(r["cl_acc"], r["cl_acc_std"], 3),
            _pm(r["search_minutes"], r["search_minutes_std"], 2),
            _pm(r["finetune_seconds"], r["finetune_seconds_std"], 0)
            + (f" ({r['finetuned_runs']} of {r['runs']} runs)"
               if 0 < r["finetuned_runs"] < r["runs"] else ""),
            f"{r['runs']}"
            + (f" ({r['unfinished_runs']} unfinished)" if r["unfinished_runs"] else ""),
            f"{r['models']} with LOC < {r['loc_threshold']:g}",
        ])
    header = ["Dataset", "Rec loss", "LOC", "Cl loss", "Cl acc", "Search time (min)",
              "Fine-tune (s)", "Runs", "Models"]
    notes = [
        "Mean ± standard deviation over seeds of each seed's mean over its distinct "
        "final-population models with LOC below the threshold (failed models left out).",
        "Rec loss after fine-tuning, on the test split. † not fine-tuned: the search's "
        "validation loss, and no classification columns. ‡ some runs fine-tuned, some not.",
        "Search time: sum of the generation times in generations.csv. Fine-tune: seconds to "
        "fine-tune a run's whole final population. –: no value.",
    ]
    return _md_table(header, rows) + "\n\n" + "\n".join(f"{n}  " for n in notes).rstrip() + "\n"


def _runs_markdown(runs_table: pd.DataFrame, threshold: float) -> str:
    rows = []
    for _, r in runs_table.iterrows():
        status = "finished" if r["finished"] else \
            f"**unfinished** ({r['generations_done']}/{r['generations']} generations)"
        rows.append([f"seed-{r['seed']}", status, f"{r['final_models']}",
                     f"{r['failed_models']}", f"{r['models_below_threshold']}",
                     _fmt(r["search_minutes"], 2), "yes" if r["finetuned"] else "no",
                     _fmt(r["finetune_seconds"], 0)])
    header = ["Run", "Search", "Distinct final models", "Failed", f"LOC < {threshold:g}",
              "Search (min)", "Fine-tuned", "Fine-tune (s)"]
    return _md_table(header, rows)


def _loss_name(loss: str) -> str:
    return {"bce": "binary cross-entropy", "mse": "mean squared error"}.get(loss, loss)


# --------------------------------------------------------------------------- build


def build_report(results_dir: str | os.PathLike, *, out: str | os.PathLike | None = None,
                 loc_threshold: float | None = None,
                 log: Callable[[str], None] | None = None) -> Path:
    """Write Table 1, the figures and `report.md` for every run under `results_dir`.

    Args:
        results_dir: folder holding `DATASET/seed-N/` run folders (any stage reached).
        out: where to write (default: `results_dir/report/`).
        loc_threshold: LOC below which final models count in Table 1, for every dataset
            (default 2.5 for single-channel images, 3.1 for three-channel ones).
        log: called with a line of progress now and then (the CLI echoes it).

    Returns:
        The path of `report.md`.

    Raises:
        RunFolderError: no such folder, no run in it, or a malformed run file (named, with
            its line). Unfinished runs and missing data are warnings (`ReportWarning`).
    """
    from moncae import report_plots as plots

    log = log or (lambda _text: None)
    if loc_threshold is not None and not (math.isfinite(loc_threshold) and loc_threshold > 0):
        raise MoncaeError(f"`loc_threshold` must be a positive number. "
                          f"Received: loc_threshold={loc_threshold!r}")
    root = Path(results_dir)
    out_dir = Path(out) if out is not None else root / REPORT_DIRNAME
    runs = _collect_runs(root)
    if out_dir.exists() and not out_dir.is_dir():
        raise RunFolderError(f"output path {out_dir} is a file, not a folder; pass another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    datasets = sorted({r.dataset for r in runs})
    log(f"report: {len(runs)} run(s) of {', '.join(datasets)} -> {out_dir}")

    finals = pd.concat([_collect_final_models(r) for r in runs], ignore_index=True)
    by_dataset = {d: [r for r in runs if r.dataset == d] for d in datasets}
    data: dict[str, _DatasetData | None] = {}
    thresholds: dict[str, float] = {}
    for dataset, ds_runs in by_dataset.items():
        losses = {r.config.loss for r in ds_runs}
        if len(losses) > 1:
            _warn(f"{dataset}: runs use different losses ({', '.join(sorted(losses))}); their "
                  "rec losses are not comparable")
        data[dataset] = _load_dataset_for(ds_runs)
        channels = data[dataset].channels if data[dataset] is not None else \
            KNOWN_CHANNELS.get(ds_runs[0].config.dataset.strip().lower().replace("-", "_"))
        if channels is None:
            channels = _channels_from_model(finals.loc[finals["dataset"] == dataset, "model_file"])
        if channels is None and loc_threshold is None:
            _warn(f"{dataset}: input channels unknown; LOC threshold "
                  f"{DEFAULT_LOC_THRESHOLDS[1]} assumed (set it with --loc-threshold)")
        thresholds[dataset] = loc_threshold if loc_threshold is not None else \
            _default_threshold(channels)

    table = _collect_table1(runs, finals, thresholds)
    runs_table = _collect_runs_table(runs, finals, thresholds)
    write_csv(out_dir / "table1.csv", TABLE1_COLUMNS, table.to_dict("records"))
    write_text(out_dir / "table1.md", table1_markdown(table))
    write_csv(out_dir / "runs.csv", RUN_COLUMNS, runs_table.to_dict("records"))

    sections = []
    used_names: set[str] = set()
    for dataset, ds_runs in by_dataset.items():
        loss = ds_runs[0].config.loss
        ds_finals = finals[finals["dataset"] == dataset]
        d = data[dataset]
        pca = None
        if d is not None:
            log(f"{dataset}: PCA baseline on {d.description}")
            sizes = ds_finals.loc[ds_finals["status"] == "ok", "latent_size"].dropna()
            ks = baseline_ks(sizes.astype(int),
                             max_components(len(d.x_train), int(np.prod(d.x_train.shape[1:]))))
            pca = pca_baseline(d.x_train, d.x_test, ks, loss)
            write_csv(out_dir / f"pca_baseline_{dataset}.csv", PCA_COLUMNS, pca.to_dict("records"))
        pareto = _collect_pareto(ds_finals, pca, thresholds[dataset])
        pareto_png = f"pareto_{dataset}.png"
        plots.save_figure(plots.plot_pareto(pareto, dataset=dataset, loss=loss).figure,
                          out_dir / pareto_png)
        hv = _collect_hv_history(ds_runs)
        hv_png = f"hv_history_{dataset}.png"
        plots.save_figure(plots.plot_hv_history(hv, dataset=dataset).figure, out_dir / hv_png)

        recon_pngs = []
        if d is not None:
            idx = _pick_images(d.x_test, d.y_test, RECONSTRUCTION_IMAGES)
            for run in ds_runs:
                run_finals = ds_finals[ds_finals["seed"] == run.seed]
                n_files = int((run_finals["model_file"] != "").sum())
                log(f"{dataset} {run.label}: reconstructions by {n_files} models")
                recon = _collect_reconstructions(run_finals, d.x_test[idx])
                if not recon["models"]:
                    _warn(f"{run.path}: no saved final model to draw reconstructions with")
                    continue
                name = f"reconstructions_{dataset}_{run.label}"
                n = 2
                while name in used_names:  # the same seed twice (copied folders)
                    name, n = f"reconstructions_{dataset}_{run.label}-{n}", n + 1
                used_names.add(name)
                axes = plots.plot_reconstructions(recon, title=f"{dataset} {run.label}", loss=loss)
                plots.save_figure(axes.flat[0].figure, out_dir / f"{name}.png")
                recon_pngs.append((run, f"{name}.png", len(recon["models"])))
        sections.append(_dataset_section(dataset, ds_runs, runs_table, table, pareto, d, loss,
                                         pareto_png, hv_png, recon_pngs))

    report = out_dir / "report.md"
    write_text(report, _report_markdown(root, runs, table, sections))
    return report


def _dataset_section(dataset, ds_runs, runs_table, table, pareto, d, loss, pareto_png, hv_png,
                     recon_pngs) -> str:
    threshold = pareto["threshold"]
    row = table[table["dataset"] == dataset].iloc[0]
    split = {"finetune": "after fine-tuning, test split", "search": "after the search, "
             "validation split", "mixed": "fine-tuned runs on the test split, the others on "
             "the validation split"}.get(row["source"], "")
    parts = [f"## {dataset}", ""]
    parts += [_runs_markdown(runs_table[runs_table["dataset"] == dataset], threshold), ""]
    parts += ["### Pareto front", "", f"![Pareto front of {dataset}]({pareto_png})", ""]
    pca_text = (f"The dashed line is the PCA baseline (a linear autoencoder with k latent values "
                f"at LOC = log10 k, fitted on the training split, scored on the test split; "
                f"[pca_baseline_{dataset}.csv](pca_baseline_{dataset}.csv)): an evolved front "
                f"below it beats the linear reference." if d is not None and len(pareto["pca"])
                else "No PCA baseline: the data could not be loaded.")
    parts += [
        f"Every distinct final model of every seed: reconstruction loss ({_loss_name(loss)}, "
        f"{split}) against level of compression. The black step line is the non-dominated "
        f"front over all seeds. {pca_text} Models left of the dotted line (LOC < "
        f"{threshold:g}) are the ones averaged in Table 1."
        + (f" {pareto['failed']} failed model(s) are not drawn." if pareto["failed"] else ""),
        "",
    ]
    parts += ["### Hypervolume per generation", "", f"![Hypervolume of {dataset}]({hv_png})", ""]
    parts += ["Hypervolume of each generation's population (reference point "
              f"{tuple(ds_runs[0].config.ref_point)}; higher is better), per seed and its mean "
              "over seeds.", ""]
    parts += ["### Reconstructions", ""]
    if not recon_pngs:
        parts += ["No reconstruction figure (no data or no saved models).", ""]
    if d is not None and recon_pngs:
        parts += [f"Test images (left column) and their reconstructions by each final model of "
                  f"the run, most compressed first; above each column its rec loss and LOC. "
                  f"Data: {d.description}.", ""]
    for run, png, n in recon_pngs:
        parts += [f"#### {run.label} ({n} models)", "", f"![Reconstructions {dataset} "
                  f"{run.label}]({png})", ""]
    return "\n".join(parts)


def _report_markdown(root: Path, runs: Sequence[RunInfo], table: pd.DataFrame,
                     sections: Sequence[str]) -> str:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    notes = [f"- `{r.path}`: {n}" for r in runs for n in r.notes]
    parts = [
        "# MONCAE report", "",
        f"{len(runs)} run(s) under `{root}`, generated {now} by moncae {__version__}.", "",
        "## Table 1", "", table1_markdown(table),
        "As CSV: [table1.csv](table1.csv); per run: [runs.csv](runs.csv).", "",
        *sections,
    ]
    if notes:
        parts += ["## Warnings", "", *notes, ""]
    return "\n".join(parts).rstrip() + "\n"
