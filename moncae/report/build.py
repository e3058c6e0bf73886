"""`build_report`: the paper's Table 1 and figures over every run folder under a results folder.

Collecting and drawing are apart: `collect` and `table1` read run folders into plain data
(DataFrames, dicts) that the tests check, `pca` computes the linear baseline, `plots` only
draws, `markdown` only writes text; this module puts them together.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from moncae.data import cached_dataset
from moncae.errors import MoncaeError, RunFolderError
from moncae.method.image_loss import PairedDifference
from moncae.report.baselines import (
    BASELINE_COLUMNS,
    CACHE_DIRNAME,
    cached_pca,
    cached_pca_image_losses,
    dense_baselines,
    dense_sizes,
    parse_baselines,
)
from moncae.report.collect import (
    VERSUS_PCA_COLUMNS,
    RunInfo,
    collect_final_models,
    collect_hv_history,
    collect_pareto,
    collect_projections,
    collect_runs,
    collect_versus_pca,
    paired_with_pca,
    versus_pca_counts,
    warn,
)
from moncae.report.markdown import (
    DatasetSection,
    dataset_section,
    report_markdown,
    table1_markdown,
    versus_pca_count_text,
)
from moncae.report.output import staged_report
from moncae.report.pca import (
    PCA_COLUMNS,
    PcaFit,
    baseline_ks,
    fit_pca,
    max_components,
    pca_baseline,
    pca_image_losses,
)
from moncae.report.strategies import STRATEGY_COLUMNS, collect_strategies, strategies_markdown
from moncae.report.table1 import (
    DEFAULT_LOC_THRESHOLDS,
    RUN_COLUMNS,
    channels_from_model,
    collect_runs_table,
    collect_table1,
    default_threshold,
    table1_columns,
)
from moncae.store import check_writable_folder, write_csv, write_text

__all__ = ["build_report"]

KNOWN_CHANNELS = {"mnist": 1, "mnist_5k": 1, "fashion_mnist": 1, "cifar10": 3}
REPORT_DIRNAME = "report"
RECONSTRUCTION_IMAGES = 4
RUN_FIGURES = 10  # runs per dataset with figures of their own (the paper's 10 seeds)


@dataclass
class _DatasetData:
    x_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray | None
    channels: int
    description: str
    x_val: np.ndarray | None = None
    fingerprint: str = ""


class _PcaFits:
    """The PCA fitted on each training split of this report, by the array (`cached_dataset`
    gives every group with the same split the same array; the arrays are kept here, so that an
    id is never one of another array): settings groups on one dataset fit it once."""

    def __init__(self) -> None:
        self._fits: dict[int, tuple[np.ndarray, PcaFit]] = {}

    def of(self, x_train: np.ndarray, n_components: int) -> PcaFit:
        kept = self._fits.get(id(x_train))
        if kept is None or kept[0] is not x_train or len(kept[1].components) < n_components:
            kept = self._fits[id(x_train)] = (x_train, fit_pca(x_train, n_components))
        return kept[1]


def objective_loss(config) -> str:
    """The loss of a run's reconstruction objective: its `loss` for an AE; for a VAE (trained
    with elbo or reformulated) the per-pixel BCE of the mean decoding."""
    return "bce" if getattr(config, "model", "ae") == "vae" else config.loss


def _load_dataset_for(runs: Sequence[RunInfo], data_dir: str | os.PathLike | None = None) -> _DatasetData | None:
    """The splits of the dataset's first run (by seed), from `data_dir` if given, else where the
    run found them; None with a warning if unavailable."""
    run = runs[0]
    # the split settings; where the files were found (`data_dir`) is no part of a split: the same
    # files found elsewhere give the same splits, and other files are caught by the fingerprint below
    specs = {replace(r.config.data_spec(), data_dir=None) for r in runs}
    if len(specs) > 1:
        warn(f"{run.dataset}: runs use different data splits; the PCA baseline and "
             f"reconstructions use those of {run.path}")
    # where the run found its data first, then `data_dir` (the files' fingerprint is checked below)
    tries = [run.config.data_spec()]
    if data_dir is not None and str(data_dir) != "" and str(data_dir) != tries[0].data_dir:
        tries.append(replace(tries[0], data_dir=str(data_dir)))
    for n, spec in enumerate(tries, start=1):
        try:
            data = cached_dataset(spec)
            break
        except Exception as err:  # noqa: BLE001 - the report works without the data
            if n < len(tries):
                continue
            tried = " or ".join(str(s.data_dir) for s in tries if s.data_dir)
            warn(f"{run.dataset}: cannot load the data{f' from {tried}' if tried else ''} "
                 f"({(str(err).splitlines() or [''])[0][:400]}); the PCA baseline and reconstruction figures are "
                 "left out (pass --data-dir with the dataset's folder)")
            return None
    differ = [r for r in runs if r.data.get("fingerprint") not in (None, data.fingerprint)]
    if differ:
        warn(f"{run.dataset}: the data found now is not the data {differ[0].path} was searched on "
             f"(fingerprint {differ[0].data.get('fingerprint')} != {data.fingerprint}); the PCA "
             "baseline and reconstruction figures are left out (pass --data-dir, or set MONCAE_DATA_DIR, with the "
             "same files)")
        return None
    desc = (f"{len(data.x_train)} training / {len(data.x_test)} test images of "
            f"{'x'.join(str(d) for d in data.input_shape)}")
    return _DatasetData(data.x_train, data.x_test, data.y_test, data.input_shape[-1], desc,
                        data.x_val, data.fingerprint)


def _threshold(dataset: str, runs: Sequence[RunInfo], data: _DatasetData | None,
               finals: pd.DataFrame, loc_threshold: float | None) -> float:
    """The LOC threshold of a dataset: given, else from its input channels (paper's rule)."""
    if loc_threshold is not None:
        return loc_threshold
    channels = data.channels if data is not None else \
        KNOWN_CHANNELS.get(runs[0].config.dataset.strip().lower().replace("-", "_"))
    if channels is None:
        channels = channels_from_model(finals.loc[finals["dataset"] == dataset, "model_file"])
    if channels is None:
        warn(f"{dataset}: input channels unknown; LOC threshold "
             f"{DEFAULT_LOC_THRESHOLDS[1]} assumed (set it with --loc-threshold)")
    return default_threshold(channels)


def _reconstruction_figures(dataset: str, runs: Sequence[RunInfo], finals: pd.DataFrame,
                            data: _DatasetData, loss: str, out_dir: Path, used_names: set[str],
                            log: Callable[[str], None]) -> list[tuple[RunInfo, str, int]]:
    from moncae.report import plots
    from moncae.report.reconstructions import collect_reconstructions, pick_images

    idx = pick_images(data.x_test, data.y_test, RECONSTRUCTION_IMAGES)
    pngs = []
    for run in runs:
        run_finals = finals[finals["seed"] == run.seed]
        n_files = int((run_finals["model_file"] != "").sum())
        log(f"{dataset} {run.label}: reconstructions by {n_files} models")
        recon = collect_reconstructions(run_finals, data.x_test[idx])
        if not recon["models"]:
            warn(f"{run.path}: no saved final model to draw reconstructions with")
            continue
        name = _unique_name(f"reconstructions_{dataset}_{run.label}", used_names)
        axes = plots.plot_reconstructions(recon, title=f"{dataset} {run.label}", loss=loss)
        plots.save_figure(axes.flat[0].figure, out_dir / f"{name}.png")
        pngs.append((run, f"{name}.png", len(recon["models"])))
    return pngs


def _unique_name(name: str, used: set[str]) -> str:
    """`name`, or `name-2`, `name-3`, ... if taken (the same seed twice: copied folders); marks it used."""
    base, n = name, 2
    while name in used:
        name, n = f"{base}-{n}", n + 1
    used.add(name)
    return name


def _sample_figures(dataset: str, runs: Sequence[RunInfo], finals: pd.DataFrame, loss: str,
                    out_dir: Path, used_names: set[str], log: Callable[[str], None]
                    ) -> list[tuple[RunInfo, str, int]]:
    """`samples_DATASET_seed-N.png` for each VAE run: its final models' decodings of N(0, I)."""
    from moncae.report import plots
    from moncae.report.samples import collect_samples

    pngs = []
    for run in runs:
        if run.config.model != "vae":
            continue
        info = collect_samples(finals[finals["seed"] == run.seed])
        log(f"{dataset} {run.label}: N(0, I) samples by {len(info['models'])} models")
        if not info["models"]:
            warn(f"{run.path}: no saved final model to draw samples with")
            continue
        name = _unique_name(f"samples_{dataset}_{run.label}", used_names)
        axes = plots.plot_samples(info, title=f"{dataset} {run.label}", loss=loss)
        plots.save_figure(axes.flat[0].figure, out_dir / f"{name}.png")
        pngs.append((run, f"{name}.png", len(info["models"])))
    return pngs


def _pca_rows(data: _DatasetData, loss: str, fits: _PcaFits, components: int, ks: list[int]) -> pd.DataFrame:
    """PCA's test losses at `ks` from a fit of `components` (shared with the report's other groups)."""
    return pca_baseline(data.x_train, data.x_test, ks, loss, fit=fits.of(data.x_train, components))


def _paired_with_pca(runs: Sequence[RunInfo], finals: pd.DataFrame, data: _DatasetData, loss: str,
                     fits: _PcaFits, components: int, cache: Path | None) -> dict[str, PairedDifference]:
    """Each fine-tuned model that kept its test images' losses, of a run on the loaded split,
    against PCA of its latent size on the same images (`paired_with_pca`)."""
    split = replace(runs[0].config.data_spec(), data_dir=None)
    same_split = {str(r.path) for r in runs if replace(r.config.data_spec(), data_dir=None) == split}
    kept = finals[finals["test_losses_file"].map(lambda f: f != "" and str(Path(f).parent.parent) in same_split)]
    max_k = max_components(len(data.x_train), int(np.prod(data.x_train.shape[1:])))
    ks = sorted({int(k) for k in kept["latent_size"].dropna() if int(k) <= max_k})
    if not ks:
        return {}
    pca = cached_pca_image_losses(
        ks, len(data.x_test), fingerprint=data.fingerprint, loss=loss, cache=cache,
        compute=lambda missing: pca_image_losses(data.x_train, data.x_test, missing, loss,
                                                 fit=fits.of(data.x_train, components)))
    return paired_with_pca(kept, len(data.x_test), pca)


def _baseline_cache(root: Path, dataset: str, *, say: bool = True) -> Path | None:
    """Where the baselines of `dataset` are cached: RESULTS/.baselines/DATASET.csv; None
    (computed, not kept) where the results folder cannot be written, with a warning if `say`
    (the dense baselines: minutes of training each time; PCA alone is said nothing)."""
    cache = root / CACHE_DIRNAME / f"{dataset}.csv"
    try:
        check_writable_folder(cache.parent, "--out")
    except RunFolderError:
        if say:
            warn(f"{cache.parent} cannot be written; the dense baselines are trained but not cached (a next "
                 "report trains them again)")
        return None
    if cache.exists() and not os.access(cache, os.W_OK):
        if say:
            warn(f"{cache} cannot be written; the dense baselines it lacks are trained but not cached")
        return None
    return cache


def _final_models(root: Path, runs: Sequence[RunInfo]) -> tuple[list[RunInfo], pd.DataFrame]:
    """The runs whose final models can be read, and those models; a run with a damaged file is
    left out with a warning naming the file and line, as an unreadable run is (`collect_runs`)."""
    kept, frames = [], []
    for run in runs:
        try:
            frames.append(collect_final_models(run))
        except RunFolderError as err:
            warn(f"{run.path}: left out, it cannot be read ({err}; restore the file from a copy of the run, "
                 "or, for finetune.csv, delete the damaged line and run `moncae finetune` again)")
            continue
        kept.append(run)
    if not kept:
        raise RunFolderError(f"no run under {root} can be reported (none could be read: see the warnings)")
    return kept, pd.concat(frames, ignore_index=True)


def build_report(results_dir: str | os.PathLike, *, out: str | os.PathLike | None = None,
                 loc_threshold: float | None = None,
                 log: Callable[[str], None] | None = None,
                 baselines: str | Sequence[str] | None = None,
                 data_dir: str | os.PathLike | None = None,
                 run_figures: int | None = RUN_FIGURES) -> Path:
    """Write Table 1, the figures and `report.md` for every run under `results_dir`.

    Args:
        results_dir: folder holding `DATASET/seed-N/` run folders (any stage reached).
        out: where to write (default: `results_dir/report/`).
        loc_threshold: LOC below which final models count in Table 1, for every dataset
            (default 2.5 for single-channel images, 3.1 for three-channel ones).
        log: called with a line of progress now and then (the CLI echoes it).
        baselines: the baseline fronts, names from `pca`, `dense_ae`, `dense_vae` (a comma-
            separated string or a sequence; default `pca` only). See `moncae.report.baselines`.
        data_dir: the folder of the datasets' files (for the PCA baseline and the figures), when
            not where the runs found them (a run folder copied from another machine).
        run_figures: the figures drawn for each run (its reconstructions; a VAE's samples) are
            drawn for at most this many runs of each dataset, the lowest seeds (None: every run;
            0: none). Each loads and runs every final model of its run: seconds a run.

    Returns:
        The path of `report.md`. The report is written into a hidden folder inside `out` and moved
        into place at the end, replacing the files of an earlier report there (those it does not
        write again are removed; other files are left as they are): a report stopped part way
        leaves the earlier one whole.

    Raises:
        RunFolderError: no such folder, no run in it, or a malformed run file (named, with
            its line). Unfinished runs and missing data are warnings (`ReportWarning`).
    """
    log = log or (lambda _text: None)
    kinds = parse_baselines(baselines)
    if run_figures is not None and (isinstance(run_figures, bool) or not isinstance(run_figures, int)
                                    or run_figures < 0):
        raise MoncaeError(f"`run_figures` must be an integer >= 0 or None (every run). "
                          f"Received: run_figures={run_figures!r}")
    if loc_threshold is not None and not (math.isfinite(loc_threshold) and loc_threshold > 0):
        raise MoncaeError(f"`loc_threshold` must be a positive number. "
                          f"Received: loc_threshold={loc_threshold!r}")
    if not isinstance(results_dir, (str, os.PathLike)) or not isinstance(out, (str, os.PathLike, type(None))):
        raise MoncaeError(f"`results_dir` and `out` are paths (a str or a pathlib.Path). Received: "
                          f"results_dir={results_dir!r}, out={out!r}"[:200])
    root = Path(results_dir)
    out_dir = Path(out) if out is not None else root / REPORT_DIRNAME
    runs = collect_runs(root)
    inside = next((r.path for r in runs if Path(os.path.abspath(out_dir)).is_relative_to(os.path.abspath(r.path))),
                  None)
    if inside is not None:  # the report's files would mix with a run's own
        raise RunFolderError(f"--out {out_dir} is inside the run folder {inside}; pass a folder outside the runs")
    check_writable_folder(out_dir, "--out")  # a file there or on the way, a read-only place
    out_dir.mkdir(parents=True, exist_ok=True)
    runs, finals = _final_models(root, runs)
    datasets = sorted({r.dataset for r in runs})
    log(f"report: {len(runs)} run(s) of {', '.join(datasets)} -> {out_dir}")
    with staged_report(out_dir) as staging:  # out_dir's earlier report is replaced only at the end
        _write_report(root, runs, finals, datasets, staging, kinds, loc_threshold, log, data_dir, run_figures)
    return out_dir / "report.md"


def _write_report(root: Path, runs: list[RunInfo], finals: pd.DataFrame, datasets: list[str], out_dir: Path,
                  kinds: Sequence[str], loc_threshold: float | None, log: Callable[[str], None],
                  data_dir: str | os.PathLike | None, run_figures: int | None) -> None:
    """Every file of the report, into `out_dir`."""
    from moncae.report import plots

    by_dataset = {d: [r for r in runs if r.dataset == d] for d in datasets}
    data: dict[str, _DatasetData | None] = {}
    thresholds: dict[str, float] = {}
    for dataset, ds_runs in by_dataset.items():
        losses = {objective_loss(r.config) for r in ds_runs}
        if len(losses) > 1:
            warn(f"{dataset}: runs use different losses ({', '.join(sorted(losses))}); their "
                 "rec losses are not comparable")
        data[dataset] = _load_dataset_for(ds_runs, data_dir)
        thresholds[dataset] = _threshold(dataset, ds_runs, data[dataset], finals, loc_threshold)

    table = collect_table1(runs, finals, thresholds)
    runs_table = collect_runs_table(runs, finals, thresholds)
    write_csv(out_dir / "table1.csv", table1_columns(table), table.to_dict("records"))
    write_text(out_dir / "table1.md", table1_markdown(table))
    write_csv(out_dir / "runs.csv", RUN_COLUMNS, runs_table.to_dict("records"))

    sections = []
    versus_by_dataset: dict[str, pd.DataFrame] = {}  # dataset -> its models against PCA
    pca_fits = _PcaFits()  # groups of one dataset split share its PCA fit (seconds to minutes)
    used_names: set[str] = set()
    for dataset, ds_runs in by_dataset.items():
        loss = objective_loss(ds_runs[0].config)
        ds_finals = finals[finals["dataset"] == dataset]
        d = data[dataset]
        pca = None
        dense = pd.DataFrame(columns=BASELINE_COLUMNS)
        sizes = ds_finals.loc[ds_finals["status"] == "ok", "latent_size"].dropna()
        # one cache per dataset, whatever the runs' settings group: its rows are keyed by all that
        # decides a baseline (the data's fingerprint among it), so groups share them
        cache = None if d is None or not kinds else _baseline_cache(
            root, ds_runs[0].config.run_dir.parent.name, say=bool(set(kinds) - {"pca"}))
        if d is not None and "pca" in kinds:
            log(f"{dataset}: PCA baseline on {d.description}")
            ks = baseline_ks(sizes.astype(int),
                             max_components(len(d.x_train), int(np.prod(d.x_train.shape[1:]))))
            pca = cached_pca(ks, fingerprint=d.fingerprint, loss=loss, cache=cache,
                             compute=functools.partial(_pca_rows, d, loss, pca_fits, max(ks)))
            write_csv(out_dir / f"pca_baseline_{dataset}.csv", PCA_COLUMNS, pca.to_dict("records"))
        if d is not None and set(kinds) - {"pca"}:
            log(f"{dataset}: dense baselines ({', '.join(k for k in kinds if k != 'pca')}) on "
                f"{d.description}")
            config = ds_runs[0].config
            vae_run = getattr(config, "model", "ae") == "vae"
            dense = dense_baselines(
                kinds, dense_sizes(sizes.astype(int), int(np.prod(d.x_train.shape[1:]))), d,
                fingerprint=d.fingerprint, loss=loss, vae_loss=config.loss if vae_run else "elbo",
                vae_eps=getattr(config, "vae_eps", 0.01), cache=cache, log=log)
        if d is not None and set(kinds) - {"pca"}:  # the default (pca only) writes what it did
            pca_rows = [] if pca is None else [{"kind": "pca", **r} for r in pca.to_dict("records")]
            write_csv(out_dir / f"baselines_{dataset}.csv", BASELINE_COLUMNS,
                      pca_rows + dense.to_dict("records"))
        versus = None
        if pca is not None:
            paired = _paired_with_pca(ds_runs, ds_finals, d, loss, pca_fits, max(ks), cache)
            versus = versus_by_dataset[dataset] = collect_versus_pca(ds_finals, pca, paired)
            write_csv(out_dir / f"versus_pca_{dataset}.csv", VERSUS_PCA_COLUMNS, versus.to_dict("records"))
            n = versus_pca_counts(versus)
            log(f"{dataset}: {versus_pca_count_text(n)}" if n["compared"] else
                f"{dataset}: no fine-tuned final model to compare with PCA at its latent size")
        pareto = collect_pareto(ds_finals, pca, thresholds[dataset])
        pareto["baselines"] = dense
        pareto_png = f"pareto_{dataset}.png"
        plots.save_figure(plots.plot_pareto(pareto, dataset=dataset, loss=loss).figure,
                          out_dir / pareto_png)
        hv_png = f"hv_history_{dataset}.png"
        plots.save_figure(plots.plot_hv_history(collect_hv_history(ds_runs), dataset=dataset).figure,
                          out_dir / hv_png)
        objectives = ds_runs[0].config.objective_set()
        projections_png = None
        if objectives.dims > 2:  # never assume two: every pair of the objectives
            projections_png = f"projections_{dataset}.png"
            plots.save_figure(plots.plot_projections(collect_projections(ds_finals, objectives),
                                                     dataset=dataset), out_dir / projections_png)
        drawn = ds_runs if run_figures is None else sorted(ds_runs, key=lambda r: r.seed)[:run_figures]
        if len(drawn) < len(ds_runs):
            log(f"{dataset}: figures of each run drawn for {len(drawn)} of {len(ds_runs)} runs (--run-figures)")
        recon_pngs = [] if d is None else _reconstruction_figures(
            dataset, drawn, ds_finals, d, loss, out_dir, used_names, log)
        sample_pngs = _sample_figures(dataset, drawn, ds_finals, loss, out_dir, used_names, log)
        sections.append(dataset_section(DatasetSection(
            dataset, ds_runs, runs_table, table, pareto, loss, pareto_png, hv_png,
            None if d is None else d.description, recon_pngs, sample_pngs, runs_drawn=len(drawn),
            projections_png=projections_png, versus_pca=versus)))

    sections += _strategy_sections(runs, out_dir, log)
    write_text(out_dir / "report.md", report_markdown(root, runs, table, sections, versus_by_dataset))


def _strategy_sections(runs: Sequence[RunInfo], out_dir: Path, log: Callable[[str], None]) -> list[str]:
    """`strategies.csv`/`.md` and a `strategies_FAMILY.png` per family run with several strategies."""
    from moncae.report import plots

    compared = collect_strategies(runs)
    if not compared:
        return []
    tables = pd.concat([c["table"] for c in compared.values()], ignore_index=True)
    write_csv(out_dir / "strategies.csv", STRATEGY_COLUMNS, tables.to_dict("records"))
    sections, text = [], []
    for family, info in compared.items():
        log(f"{family}: strategies compared at {int(info['budget'])} trainings")
        png = f"strategies_{family}.png"
        plots.save_figure(plots.plot_strategies(info, family=family).figure, out_dir / png)
        table_md = strategies_markdown(info["table"])
        text += [f"## {family}", "", table_md]
        sections.append("\n".join([
            f"## Strategies: {family}", "", table_md,
            f"Each run's all-time front hypervolume (validation) once it had used at most "
            f"{int(info['budget'])} trainings (the fewest any finished run of this comparison used: "
            f"{info['fewest']}), mean ± "
            "standard deviation over seeds; p: two-sided exact permutation test against `random`, paired "
            "by seed where both ran the same seeds (then with n seeds no p is below 2/2^n), not adjusted "
            "for the strategies compared with `random`. "
            "As CSV: [strategies.csv](strategies.csv).", "",
            f"![Strategies of {family}]({png})", ""]))
    write_text(out_dir / "strategies.md", "\n".join(text))
    return sections
