"""The paper's Table 1 over runs, and the per-run table (pure pandas).

What Table 1 averages, per dataset (like the paper's Table 1):
- the *final population* of each run: the rows of the last generation in `population.csv`
  (for a run that did not finish, its last completed generation, with a warning);
- each distinct network once (duplicated genomes are one trained model), failed ones left out,
  and only those with `LOC < threshold` (default 2.5 for single-channel images, 3.1 for
  three-channel ones);
- rec loss and classification loss/accuracy from `finetune.csv` when the run was fine-tuned
  (test split), else the search's validation loss with the fine-tune columns empty;
- per seed the mean over its models, then the mean and standard deviation over the seeds that
  have such a model (`rec_runs` of them; the table says "k of n runs" where that is not all);
- `search_minutes`: the sum of `generations.csv` `seconds` of a run, / 60 (training and
  bookkeeping time of the generations, not start-up); `finetune_seconds`: the sum of
  `finetune.csv` `finetune_seconds` of a run (its whole final population: summed over models,
  which `finetune` trains two at a time by default, so the command itself took less);
  `classifier_epochs`: the epochs of the fine-tune's latent classifier (`finetune.json`; "10-20"
  where the runs differ).
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from moncae.report.collect import RunInfo, combined_source, warn

__all__ = ["DEFAULT_LOC_THRESHOLDS", "KL_COLUMNS", "RUN_COLUMNS", "TABLE1_COLUMNS", "channels_from_model",
           "collect_runs_table", "collect_table1", "default_threshold", "table1_columns"]

DEFAULT_LOC_THRESHOLDS = {1: 2.5, 3: 3.1}  # input channels -> LOC threshold (paper)
TABLE1_COLUMNS = [
    "dataset", "loc_threshold", "runs", "unfinished_runs", "finetuned_runs", "models", "rec_runs", "source",
    "rec_loss", "rec_loss_std", "loc", "loc_std", "cl_loss", "cl_loss_std", "cl_acc", "cl_acc_std",
    "search_minutes", "search_minutes_std", "finetune_seconds", "finetune_seconds_std", "classifier_epochs",
    "cl_runs",
]
RUN_COLUMNS = [
    "dataset", "seed", "path", "generations_done", "generations", "finished", "finetuned",
    "finetuned_models", "final_models", "failed_models", "models_below_threshold", "search_minutes",
    "finetune_seconds", "classifier_epochs",
]
_MEANED = ("rec_loss", "loc", "cl_loss", "cl_acc")
# With VAE runs, Table 1 adds the prior KL per latent dimension (fine-tuned: test split; else the
# search's validation split), averaged like the other columns; AE-only tables are unchanged.
KL_COLUMNS = ["kl", "kl_std"]


def table1_columns(table: pd.DataFrame) -> list[str]:
    """TABLE1_COLUMNS, plus KL_COLUMNS when the table has them (some run is a VAE run)."""
    return TABLE1_COLUMNS + (KL_COLUMNS if "kl" in table.columns else [])



def channels_from_model(files: Iterable[str]) -> int | None:
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


def default_threshold(channels: int | None) -> float:
    return DEFAULT_LOC_THRESHOLDS[3] if channels is not None and channels >= 3 else \
        DEFAULT_LOC_THRESHOLDS[1]


def collect_runs_table(runs: Sequence[RunInfo], finals: pd.DataFrame,
                        thresholds: dict[str, float]) -> pd.DataFrame:
    rows = []
    for run in runs:
        mine = finals[(finals["dataset"] == run.dataset) & (finals["seed"] == run.seed)]
        ok = mine[mine["status"] == "ok"]
        below = ok[ok["loc"] < thresholds[run.dataset]]
        ft = mine["finetune_seconds"].dropna()
        # a fine-tune counts once every working final model has its row (one stopped part way does not)
        tuned = int(ok["finetune_seconds"].notna().sum()) if run.finetuned else 0
        finetuned = run.finetuned and tuned == len(ok)
        rows.append({
            "dataset": run.dataset, "seed": run.seed, "path": str(run.path),
            "generations_done": run.generations_done, "generations": run.generations,
            "finished": run.finished, "finetuned": finetuned, "finetuned_models": tuned,
            "final_models": len(mine), "failed_models": int((mine["status"] != "ok").sum()),
            "models_below_threshold": len(below), "search_minutes": run.search_minutes,
            "finetune_seconds": float(ft.sum()) if finetuned else float("nan"),
            "classifier_epochs": run.classifier_epochs if run.classifier_epochs is not None else "",
        })
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def _mean_std(values: Iterable[float]) -> tuple[float, float]:
    arr = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if arr.size == 0:
        return float("nan"), float("nan")
    std = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
    return float(arr.mean()), std


def _warn_mixed_finetunes(dataset: str, runs: Sequence[RunInfo], seeds: set) -> None:
    """Said when the fine-tuned runs averaged in one row were fine-tuned with other epochs, batch
    size or patience (the classifier's epochs are shown as a range instead)."""
    values: dict[str, set] = {}
    for run in runs:
        if run.seed in seeds:
            for name in ("epochs", "batch_size", "patience"):
                values.setdefault(name, set()).add(json.dumps(run.finetune_settings.get(name)))
    differ = {name: sorted(v) for name, v in values.items() if len(v) > 1}
    if differ:
        warn(f"{dataset}: its runs were fine-tuned with different settings ("
             + "; ".join(f"{name}: {', '.join(v)}" for name, v in differ.items())
             + "); Table 1 averages them together (fine-tune them alike to compare)")


def collect_table1(runs: Sequence[RunInfo], finals: pd.DataFrame,
                    thresholds: dict[str, float]) -> pd.DataFrame:
    """Table 1: one row per dataset (TABLE1_COLUMNS); see the module docstring for the rules."""
    runs_table = collect_runs_table(runs, finals, thresholds)
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
            "rec_runs": len(per_seed),  # the seeds the means are over: those with a model below the threshold
        }
        row["source"] = combined_source(models["source"])
        for col in _MEANED:
            row[col], row[f"{col}_std"] = _mean_std(per_seed[col]) if len(per_seed) else \
                (float("nan"), float("nan"))
        if "kl" in models.columns:
            per_seed_kl = models.groupby("seed")["kl"].mean()
            row["kl"], row["kl_std"] = _mean_std(per_seed_kl) if len(per_seed_kl) else \
                (float("nan"), float("nan"))
        row["search_minutes"], row["search_minutes_std"] = _mean_std(group["search_minutes"])
        row["finetune_seconds"], row["finetune_seconds_std"] = _mean_std(group["finetune_seconds"])
        row["cl_runs"] = int(per_seed["cl_acc"].notna().sum()) if len(per_seed) else 0
        _warn_mixed_finetunes(dataset, [r for r in runs if r.dataset == dataset],
                              set(group.loc[group["finetuned"].astype(bool), "seed"]))
        epochs = sorted({int(e) for e in group["classifier_epochs"] if e != ""})
        row["classifier_epochs"] = "" if not epochs else str(epochs[0]) if len(epochs) == 1 else \
            f"{epochs[0]}-{epochs[-1]}"
        if not len(models):
            warn(f"{dataset}: no final model has LOC < {threshold:g}; its Table 1 row is empty "
                  "(lower the compression requirement with --loc-threshold)")
        rows.append(row)
    vae = any(getattr(r.config, "model", "ae") == "vae" for r in runs)
    return pd.DataFrame(rows, columns=TABLE1_COLUMNS + (KL_COLUMNS if vae else []))
