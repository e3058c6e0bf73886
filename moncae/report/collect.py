"""Reading run folders into plain data (pandas, dicts) for the report: which runs exist and how
far they got, each run's distinct final models, the Pareto and hypervolume figures' data.

Pure pandas/numpy: no TensorFlow, no drawing; the tests check these values directly.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from moncae.config import SearchConfig
from moncae.errors import MoncaeError, MoncaeWarning, RunFolderError
from moncae.finetune.records import read_finetune_json
from moncae.method.image_loss import Z95, PairedDifference, paired_difference
from moncae.method.objective_set import ObjectiveSet
from moncae.method.objectives import REFERENCE_POINT, non_dominated_mask
from moncae.report.pca import PCA_COLUMNS
from moncae.store import image_losses_filename, lock_holder, model_filename, read_rows

__all__ = ["FINAL_COLUMNS", "VERSUS_PCA_COLUMNS", "ReportWarning", "RunInfo", "collect_final_models",
           "collect_hv_history", "collect_pareto", "collect_runs", "collect_versus_pca", "combined_source",
           "latent_size", "paired_with_pca", "pca_sizes", "read_image_losses", "read_table", "versus_pca_counts",
           "warn"]

FINAL_COLUMNS = [
    "dataset", "seed", "genome_key", "architecture", "bottleneck", "latent_size", "loc",
    "search_rec_loss", "rec_loss", "source", "cl_loss", "cl_acc", "finetune_seconds",
    "individuals", "status", "model_file", "model_stage", "kl", "params", "flops", "latency_ms",
    "test_losses_file",
]


class ReportWarning(MoncaeWarning):
    """Something the report could not use (an unfinished run, missing data); it goes on."""


def warn(message: str) -> None:
    warnings.warn(message, ReportWarning, stacklevel=3)


# --------------------------------------------------------------------------- reading


def read_table(path: Path, required: Sequence[str], *, numeric: Sequence[str] = (),
               integer: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Rows of a run CSV with typed columns; a malformed file is an error naming file and line.

    A torn last line (a run writing right now, or killed mid-write) is left out with a warning.
    Empty numeric cells become NaN. An absent file gives [].
    """
    if not path.exists():
        return []
    rows = read_rows(path)
    if not rows:
        if path.stat().st_size == 0:
            raise RunFolderError(f"{path}:1: empty file, expected a header row with {', '.join(required)}")
        return []
    missing = [c for c in required if c not in rows[0]]
    if missing:
        raise RunFolderError(f"{path}:1: missing column(s) {', '.join(missing)}; "
                             f"the header is {','.join(rows[0])}")
    for line, row in enumerate(rows, start=2):
        for name in numeric:
            row[name] = _number(row.get(name, ""), float, path, line, name)
        for name in integer:
            row[name] = _number(row.get(name, ""), int, path, line, name)
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


def latent_size(bottleneck: str) -> int | None:
    try:
        dims = [int(d) for d in str(bottleneck).split("x")]
    except ValueError:
        return None
    return math.prod(dims) if dims and min(dims) > 0 else None


# --------------------------------------------------------------------------- runs


# settings that runs compared with one another may differ in (not part of their settings id)
NOT_GROUPING = ("seed", "strategy", "selection", "fitness", "latents", "generations")


@dataclass
class RunInfo:
    """One run folder: what it holds and how far it got."""

    path: Path
    dataset: str
    seed: int
    config: SearchConfig
    generations_done: int
    generations: int
    finished: bool
    finetuned: bool
    search_minutes: float
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # config.json's record of the data searched on
    classifier_epochs: int | None = None  # its fine-tune's latent classifier (finetune.json)
    finetune_settings: dict[str, Any] = field(default_factory=dict)  # finetune.json's settings

    @property
    def label(self) -> str:
        return f"seed-{self.seed}"

    family: str = ""  # the comparison group: dataset (+ settings id) without the strategy

    @property
    def strategy(self) -> str:
        """The search strategy, with the `moncae` GA's parent selection when it is not the paper's,
        the fitness rule when it is not the paper's (e.g. `moncae-front`), and the children's latent
        genes when they are spread (`moncae-spread-latents`)."""
        config = self.config
        name = config.strategy
        if config.strategy == "moncae" and config.selection != "paper":
            name += f"-{config.selection}"
        if config.fitness != "paper":
            name += f"-{config.fitness}"
        if config.latents != "inherited":
            name += f"-{config.latents}-latents"
        return name

    @property
    def settings_id(self) -> str:
        """A short hash of the settings that decide results, seed, strategy (with its selection,
        fitness rule and latents) and generations aside:
        runs that share it are compared (strategies at equal trainings); those that also share the
        strategy and generations are seeds of one experiment and may be averaged together."""
        return hashlib.blake2b(json.dumps(self.group_settings, sort_keys=True).encode(),
                               digest_size=3).hexdigest()

    @property
    def group_settings(self) -> dict[str, Any]:
        """The settings its `settings_id` hashes."""
        return {k: v for k, v in self.config.results_settings().items() if k not in NOT_GROUPING}


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
            if re.fullmatch(r"seed-\d+", Path(dirpath).name):  # named as a run but none: said, not skipped
                warn(f"{dirpath}: left out, it holds no config.json or evaluations.csv (a search that never "
                     "started, or not a run folder)")
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    if not found:
        raise RunFolderError(f"no run folders under {root}: expected DATASET/seed-N/ folders "
                             "written by `moncae search`")
    return found


def _read_run_config(path: Path) -> tuple[SearchConfig, dict[str, Any]]:
    """The run's settings and its record of the data it searched on."""
    config_path = path / "config.json"
    if not config_path.exists():
        raise RunFolderError(f"{path} has run files but no config.json; it was not written by "
                             "`moncae search` or is damaged")
    try:
        payload = json.loads(config_path.read_text(encoding="utf-8"))
        data = payload.get("data", {})
        return SearchConfig.from_dict(payload["run"]), data if isinstance(data, dict) else {}
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError, MoncaeError) as err:
        detail = "no 'run' entry" if isinstance(err, KeyError) else (str(err).splitlines() or [""])[0][:200]
        raise RunFolderError(f"{config_path}: not a valid moncae run configuration "
                             f"({detail})") from None


def _finetune_settings(path: Path) -> dict[str, Any]:
    """The settings the fine-tune was made with (`finetune.json`); {} where that file is missing
    or does not say."""
    settings = (read_finetune_json(path) or {}).get("settings")
    return settings if isinstance(settings, dict) else {}


def _classifier_epochs(settings: dict[str, Any]) -> int | None:
    """The epochs the fine-tune trained its latent classifier for; None where not said."""
    value = settings.get("classifier_epochs")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _collect_run(path: Path) -> RunInfo | None:
    """How far one run got; None (with a warning) when it cannot be read or has no finished
    generation."""
    try:
        return _read_run(path)
    except RunFolderError as err:
        warn(f"{path}: left out, it cannot be read ({err})")
        return None


def _read_run(path: Path) -> RunInfo | None:
    holder = lock_holder(path)
    if holder:
        warn(f"{path}: in progress ({holder}); reported as it stands now")
    config, data = _read_run_config(path)
    dataset = Path(config.run_dir).parent.name
    population = read_table(path / "population.csv", ["generation", "genome_key"],
                             integer=["generation"])
    generations = read_table(path / "generations.csv", ["generation", "seconds"],
                              numeric=["seconds"], integer=["generation"])
    if not population:
        warn(f"{path}: no finished generation yet (no population.csv rows); left out")
        return None
    done = max(r["generation"] for r in population) + 1
    seconds = [r["seconds"] for r in generations if math.isfinite(r["seconds"])]
    notes = []
    indexed = (path / "models" / "index.csv").exists()
    ended = done < config.generations and config.max_minutes > 0 and indexed  # by its time budget
    finished = (done >= config.generations or ended) and indexed
    if ended:
        notes.append(f"ended by its time budget ({config.max_minutes:g} min) after generation {done} "
                     f"of {config.generations}")
    elif done < config.generations:
        notes.append(f"{'has done' if holder else 'stopped after'} generation {done} of {config.generations}"
                     f"{' so far' if holder else ''}; its last generation is used as the final population")
    elif not finished:
        notes.append("models/index.csv is missing: the search did not finish writing models")
    # fine-tuned as far as finetune.csv exists; `collect_final_models` checks every final model has a row
    finetuned = (path / "finetune.csv").exists()
    settings = _finetune_settings(path) if finetuned else {}
    run = RunInfo(path, dataset, config.seed, config, done, config.generations, finished,
                  finetuned, sum(seconds) / 60.0 if seconds else float("nan"), notes, data,
                  classifier_epochs=_classifier_epochs(settings), finetune_settings=settings)
    for note in notes:
        warn(f"{path}: {note}")
    return run


def collect_runs(results_dir: str | os.PathLike) -> list[RunInfo]:
    """Every run under `results_dir` with at least one finished generation, sorted."""
    root = Path(results_dir)
    runs = [r for r in (_collect_run(p) for p in _find_run_dirs(root)) if r is not None]
    if not runs:
        raise RunFolderError(f"no run under {root} can be reported (none has finished a generation, "
                             "or none could be read: see the warnings)")
    # of copies, the folder where the search put it (DATASET/seed-SEED) first: the one kept
    runs.sort(key=lambda r: (r.dataset, r.seed, (r.path.parent.name, r.path.name) != (r.dataset, f"seed-{r.seed}"),
                             str(r.path)))
    return _split_settings(_drop_copies(runs))


def _drop_copies(runs: list[RunInfo]) -> list[RunInfo]:
    """One run per (dataset, settings, strategy, seed): a second one (a copied folder) is never
    averaged in."""
    kept: dict[tuple, RunInfo] = {}
    for run in runs:
        first = kept.setdefault((run.dataset, run.settings_id, run.strategy, run.generations, run.seed), run)
        if first is not run:
            warn(f"{run.path}: the same dataset, settings, strategy and seed as {first.path}; left out "
                 "(two runs of one seed would count twice in the averages)")
    return list(kept.values())


def settings_groups(runs: Sequence[RunInfo]) -> dict[str, str]:
    """Per settings id of runs of one dataset, the settings in which its runs differ from the
    dataset's other groups (`model='vae', loss='reformulated'`): what tells the groups apart."""
    first = {}
    for run in runs:
        first.setdefault(run.settings_id, run.group_settings)
    keys = sorted(k for k in set().union(*first.values())
                  if len({json.dumps(s.get(k), sort_keys=True) for s in first.values()}) > 1)
    return {i: ", ".join(f"{k}={s.get(k)!r}" for k in keys) for i, s in first.items()}


def _split_settings(runs: list[RunInfo]) -> list[RunInfo]:
    """Runs of one dataset with other settings are reported apart, as `DATASET_<settings id>`
    (their `family`); within a family, each strategy apart, as `FAMILY_<strategy>`. Nothing is
    ever averaged across settings or strategies."""
    for dataset in sorted({r.dataset for r in runs}):
        mine = [r for r in runs if r.dataset == dataset]
        ids = sorted({r.settings_id for r in mine})
        if len(ids) > 1:
            groups = settings_groups(mine)
            warn(f"{dataset}: runs with {len(ids)} different settings; reported apart as "
                 + "; ".join(f"{dataset}_{i} ({groups[i]})" for i in ids))
        for run in mine:
            run.family = f"{dataset}_{run.settings_id}" if len(ids) > 1 else dataset
    for family in sorted({r.family for r in runs}):
        mine = [r for r in runs if r.family == family]
        several = len({r.strategy for r in mine}) > 1
        for run in mine:
            lengths = {r.generations for r in mine if r.strategy == run.strategy}
            run.dataset = family + (f"_{run.strategy}" if several else "") + \
                (f"_g{run.generations}" if len(lengths) > 1 else "")
    runs.sort(key=lambda r: (r.dataset, r.seed, str(r.path)))
    return runs


# --------------------------------------------------------------------------- final models


def collect_final_models(run: RunInfo) -> pd.DataFrame:
    """One row per distinct genome of the run's final population (FINAL_COLUMNS).

    `rec_loss` is the fine-tuned test loss when `finetune.csv` has the model (`source`
    'finetune'), else the search's validation loss (`source` 'search').
    """
    path = run.path
    population = read_table(path / "population.csv",
                             ["generation", "genome_key", "rec_loss", "loc"],
                             numeric=["rec_loss", "loc"], integer=["generation"])
    last = max(r["generation"] for r in population)
    final = [r for r in population if r["generation"] == last]
    evaluations = {r["genome_key"]: r for r in read_table(
        path / "evaluations.csv", ["genome_key", "architecture", "bottleneck", "status"],
        numeric=["rec_loss", "loc", "kl", "params", "flops", "latency_ms"])}
    finetune = {r["genome_key"]: r for r in read_table(
        path / "finetune.csv", ["genome_key", "rec_loss", "cl_loss", "cl_acc", "finetune_seconds",
                                "status"],
        numeric=["rec_loss", "cl_loss", "cl_acc", "finetune_seconds", "kl"])}
    index_rows = read_table(path / "models" / "index.csv", ["genome_key", "file", "status"])
    if run.finished and index_rows and all(r["genome_key"] in evaluations for r in index_rows):
        # the final population the search ended with (for survival strategies not the last
        # generation trained): models/index.csv, with each network's objectives from its training
        final = [{"genome_key": r["genome_key"], "rec_loss": evaluations[r["genome_key"]]["rec_loss"],
                  "loc": evaluations[r["genome_key"]]["loc"]} for r in index_rows]

    counts: dict[str, int] = {}
    for r in final:
        counts[r["genome_key"]] = counts.get(r["genome_key"], 0) + 1
    rows = []
    missing_finetune = no_row = 0
    for key, n in counts.items():
        pop = next(r for r in final if r["genome_key"] == key)
        ev = evaluations.get(key, {})
        status = ev.get("status", "ok" if pop["rec_loss"] < run.config.ref_point[0] else "failed")
        ok = status == "ok" and math.isfinite(pop["rec_loss"]) and math.isfinite(pop["loc"])
        bottleneck = ev.get("bottleneck", "")
        row = {
            "dataset": run.dataset, "seed": run.seed, "genome_key": key,
            "architecture": ev.get("architecture", ""), "bottleneck": bottleneck,
            "latent_size": latent_size(bottleneck), "loc": pop["loc"],
            "search_rec_loss": pop["rec_loss"], "rec_loss": pop["rec_loss"], "source": "search",
            "cl_loss": float("nan"), "cl_acc": float("nan"), "finetune_seconds": float("nan"),
            "individuals": n, "status": status if ok else "failed", "model_file": "",
            "model_stage": "", "kl": ev.get("kl", float("nan")),  # VAE runs only
            "test_losses_file": "",
            **{c: ev.get(c, float("nan")) for c in ("params", "flops", "latency_ms")},
        }
        ft = finetune.get(key)
        if ft is not None:
            row["finetune_seconds"] = ft["finetune_seconds"]
        if ok and ft is not None and ft["status"] == "ok" and math.isfinite(ft["rec_loss"]):
            row.update(rec_loss=ft["rec_loss"], source="finetune", cl_loss=ft["cl_loss"],
                       cl_acc=ft["cl_acc"], kl=ft["kl"])
            losses = path / "finetuned" / image_losses_filename(key)  # fine-tunes since 2026-12-07
            if losses.is_file():
                row["test_losses_file"] = str(losses)
        elif ok and run.finetuned:
            missing_finetune += 1
            no_row += ft is None
        if ok:
            candidates = []
            if row["source"] == "finetune":
                candidates.append((path / "finetuned" / model_filename(key), "finetune"))
            # the file the search names for this key (never the index's text: a path from elsewhere)
            candidates.append((path / "models" / model_filename(key), "search"))
            found = next((c for c in candidates if c[0].is_file()), None)
            if found:
                row["model_file"], row["model_stage"] = str(found[0]), found[1]
        rows.append(row)
    if no_row:  # a fine-tune stopped part way (or every row so far failed for a passing reason)
        tuned = sum(1 for r in rows if r["status"] == "ok") - no_row
        warn(f"{path}: fine-tuned in part ({tuned} of {tuned + no_row} final models); the others' search "
             f"values are used, and the run does not count as fine-tuned: run `moncae finetune {path}` "
             "to finish")
    if missing_finetune > no_row:
        warn(f"{path}: finetune.csv has no usable result for {missing_finetune - no_row} of the final "
              "models (failed); their search values are used")
    return pd.DataFrame(rows, columns=FINAL_COLUMNS)


# --------------------------------------------------------------------------- figures' data


def collect_pareto(finals: pd.DataFrame, pca: pd.DataFrame | None, threshold: float) -> dict:
    """Points of every final model of every seed, their combined front, the PCA front."""
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
        "source": combined_source(points["source"]),
    }


def combined_source(sources: Iterable[str]) -> str:
    """Where a set of models' losses come from: 'finetune' (test split), 'search' (validation
    split), 'mixed', or '' for no model."""
    kinds = set(sources)
    return ("mixed" if len(kinds) > 1 else kinds.pop()) if kinds else ""


VERSUS_PCA_COLUMNS = ["seed", "genome_key", "architecture", "bottleneck", "latent_size", "loc", "source",
                      "rec_loss", "pca_k", "pca_rec_loss", "difference", "difference_se", "difference_low",
                      "difference_high"]


def collect_versus_pca(finals: pd.DataFrame, pca: pd.DataFrame | None,
                       paired: Mapping[str, PairedDifference] | None = None) -> pd.DataFrame:
    """Every ok final model beside PCA with as many components as the model has latent values
    (`pca`: `pca_baseline`'s `k, rec_loss`, test split), or, for a model with more latent values
    than the largest PCA there (`pca_k` < `latent_size`: PCA's components are at most the
    training images - 1 or the pixels), beside that largest PCA: a PCA with more components could
    only reconstruct better, so a model above it is above PCA at its size (and one below it is
    not compared, `versus_pca_counts`). `difference` is the model's loss minus PCA's: negative
    where the model beats the linear reference. A model's `rec_loss` is its fine-tuned test loss
    (`source` 'finetune') or, not fine-tuned, its search validation loss ('search'): only the
    first compares like with like.

    `paired` (by a model's `test_losses_file`): its per-image test losses against PCA's on the same
    images (`paired_difference`), for a model compared with PCA of its own size; `difference_se`
    is that standard error and `difference_low`/`_high` the 95% interval around `difference`
    (NaN where there is none: a fine-tune from before the losses were kept, or no PCA of its size)."""
    by_k = {} if pca is None else dict(zip(pca["k"].astype(int), pca["rec_loss"].astype(float)))
    top = max(by_k, default=None)
    paired = paired or {}
    rows = []
    for _, m in finals[finals["status"] == "ok"].sort_values(["seed", "loc", "rec_loss"]).iterrows():
        k = int(m["latent_size"]) if pd.notna(m["latent_size"]) else None
        pca_k = k if k in by_k else top if (k is not None and top is not None and k > top) else None
        ref = by_k[pca_k] if pca_k is not None else math.nan
        diff = m["rec_loss"] - ref
        pair = paired.get(m.get("test_losses_file", "")) if pca_k == k and m["source"] == "finetune" else None
        se = pair.se if pair is not None else math.nan
        rows.append({**{c: m[c] for c in VERSUS_PCA_COLUMNS[:8]}, "pca_k": "" if pca_k is None else pca_k,
                     "pca_rec_loss": ref, "difference": diff, "difference_se": se,
                     "difference_low": diff - Z95 * se, "difference_high": diff + Z95 * se})
    return pd.DataFrame(rows, columns=VERSUS_PCA_COLUMNS)


def read_image_losses(path: str | os.PathLike, n_images: int, rec_loss: float) -> np.ndarray | None:
    """A fine-tuned model's per-image test losses (`finetune`'s `.test_losses.npy`), checked: one
    finite value per test image here, averaging to the model's `rec_loss` within 1e-4 (Keras
    scores a sigmoid's BCE from its logits, the file from the clipped probabilities: 3e-6 to
    2.8e-5 apart on the demo's models); None with a warning otherwise (a file from another split,
    or edited: data, never trusted), and the model is then judged by NARROW_MARGIN alone."""
    try:
        losses = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        warn(f"{path}: unreadable ({str(err).splitlines()[0] if str(err) else type(err).__name__}); "
             "its model's lead over PCA is judged without it")
        return None
    ok = (losses.dtype.kind == "f" and losses.shape == (n_images,) and bool(np.isfinite(losses).all())
          and abs(float(losses.mean()) - rec_loss) <= 1e-4)
    if not ok:
        warn(f"{path}: not {n_images} per-image test losses averaging to its model's {rec_loss:.6g} "
             "(another split, or edited); its model's lead over PCA is judged without it")
        return None
    return losses.astype(np.float64)


def paired_with_pca(finals: pd.DataFrame, n_images: int,
                    pca_losses: Mapping[int, np.ndarray]) -> dict[str, PairedDifference]:
    """Each final model that kept its test images' losses (`test_losses_file`: fine-tuned, ok),
    read and checked (`read_image_losses`), against PCA of its latent size on the same images
    (`pca_losses`: PCA's per-image losses by k; a model of another size is left out): the
    `paired_difference` by file, as `collect_versus_pca` takes it."""
    paired = {}
    for _, m in finals[finals["test_losses_file"] != ""].iterrows():
        k = int(m["latent_size"]) if pd.notna(m["latent_size"]) else None
        if k not in pca_losses:
            continue
        losses = read_image_losses(m["test_losses_file"], n_images, float(m["rec_loss"]))
        if losses is not None:
            paired[m["test_losses_file"]] = paired_difference(losses, pca_losses[k])
    return paired


def pca_sizes(versus: pd.DataFrame) -> pd.Series:
    """`collect_versus_pca`'s `pca_k` as numbers (NaN: no PCA; the column holds "" there, so that
    the CSV shows integers)."""
    return pd.to_numeric(versus["pca_k"], errors="coerce")


# A model below PCA whose lead is within the test split's noise is said to be so: where its
# per-image test losses are kept, when the 95% interval of its paired difference from PCA
# (`difference_low`/`_high`) holds 0; for older fine-tunes, when it is below by less than this
# fixed margin: the standard error of a mean per-pixel BCE over 1,000-10,000 test images is
# ~0.0005-0.002 on these datasets (per-image BCE's standard deviation ~0.09 on Fashion-MNIST).
NARROW_MARGIN = 0.002


def versus_pca_counts(versus: pd.DataFrame) -> dict[str, int]:
    """Of `collect_versus_pca`'s rows: `compared` (fine-tuned, beside PCA of their size, or above
    the largest PCA here while larger than it), `below` (of those, below PCA), `paired` (of those,
    with a paired standard error), `narrow` (of those below, within the noise: the 95% interval
    holds 0, or without one, by less than NARROW_MARGIN), `capped` (of those,
    larger than the largest PCA), `no_pca` (fine-tuned, no PCA to tell: larger than the largest
    and below it, or no PCA at all) and `not_finetuned` (validation losses: not compared with
    PCA's test losses)."""
    tuned = versus[versus["source"] == "finetune"]
    larger = pca_sizes(tuned) < tuned["latent_size"]
    compared = tuned[tuned["pca_rec_loss"].notna() & (~larger | (tuned["difference"] >= 0))]
    below = compared[compared["difference"] < 0]
    paired = below["difference_se"].notna()
    narrow = (paired & (below["difference_high"] >= 0)) | (~paired & (below["difference"] > -NARROW_MARGIN))
    return {"compared": len(compared), "below": len(below), "paired": int(compared["difference_se"].notna().sum()),
            "narrow": int(narrow.sum()),
            "capped": int((pca_sizes(compared) < compared["latent_size"]).sum()),
            "no_pca": len(tuned) - len(compared), "not_finetuned": len(versus) - len(tuned)}


def collect_projections(finals: pd.DataFrame, objectives: ObjectiveSet) -> dict:
    """Every ok final model's value in each objective (the columns of `objectives.columns`, on
    the objective's own scale: log10 for params and FLOPs), with its seed, for the pairwise
    projections of a run with more than two objectives. `rec_loss` is the figure Table 1 uses
    (fine-tuned test loss when there is one)."""
    ok = finals[finals["status"] == "ok"]
    rows = []
    for _, model in ok.iterrows():
        record = SimpleNamespace(ok=True, rec_loss=model["rec_loss"], loc=model["loc"],
                                 params=model["params"], flops=model["flops"],
                                 latency_ms=model["latency_ms"])
        rows.append({"seed": model["seed"], **objectives.values(record)})
    points = pd.DataFrame(rows, columns=["seed", *objectives.columns])
    mask = non_dominated_mask(points[objectives.columns].to_numpy(dtype=float)) if len(points) else []
    return {"points": points, "on_front": np.asarray(mask, dtype=bool), "objectives": objectives}


def collect_hv_history(runs: Sequence[RunInfo]) -> dict:
    """Hypervolume per generation: each run's (`runs`) and mean/std/min/max over seeds, of the
    generation's population (`hypervolume`) and of the all-time front (`front_hypervolume`, which
    cannot fall; NaN for runs written before it was recorded)."""
    rows = []
    for run in runs:
        for r in read_table(run.path / "generations.csv", ["generation", "hypervolume"],
                            numeric=["hypervolume", "front_hypervolume", "trainings_total"],
                            integer=["generation"]):
            rows.append({"seed": run.seed, "generation": r["generation"], "hypervolume": r["hypervolume"],
                         "front_hypervolume": r["front_hypervolume"], "trainings_total": r["trainings_total"]})
    per_run = pd.DataFrame(rows, columns=["seed", "generation", "hypervolume", "front_hypervolume",
                                          "trainings_total"])
    summary = per_run.groupby("generation")["hypervolume"].agg(
        ["mean", "std", "min", "max", "count"]).reset_index()
    front = per_run.groupby("generation")["front_hypervolume"].agg(["mean", "min", "max"]).reset_index()
    ref = runs[0].config.ref_point if runs else REFERENCE_POINT
    names = tuple(runs[0].config.objectives) if runs else ("rec_loss", "loc")
    return {"runs": per_run, "summary": summary, "front": front, "ref_point": tuple(ref),
            "objectives": names}
