"""The report's Markdown: Table 1, the runs table, one section per dataset, `report.md`."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from moncae._version import __version__
from moncae.report.collect import NARROW_MARGIN, RunInfo, pca_sizes, settings_groups, versus_pca_counts

__all__ = ["DatasetSection", "dataset_section", "report_markdown", "table1_markdown", "versus_pca_count_text",
           "versus_pca_section", "versus_pca_summary"]


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


def _of_runs(r: pd.Series, column: str = "cl_runs") -> str:
    """The note " (k of n runs)" where a column averages fewer runs than the row holds (`cl_runs`:
    the classification columns; `rec_runs`: the runs with a model below the LOC threshold)."""
    n = int(r.get(column, 0) or 0)
    return f" ({n} of {r['runs']} runs)" if 0 < n < r["runs"] else ""


def table1_markdown(table: pd.DataFrame) -> str:
    """Table 1 as a GitHub markdown table (mean ± std over seeds) with its footnotes."""
    rows = []
    for _, r in table.iterrows():
        mark = _SOURCE_MARK.get(r["source"], "")
        rows.append([
            f"{r['dataset']}", _pm(r["rec_loss"], r["rec_loss_std"], 3) + mark + _of_runs(r, "rec_runs"),
            _pm(r["loc"], r["loc_std"], 3) + _of_runs(r, "rec_runs"),
            _pm(r["cl_loss"], r["cl_loss_std"], 3) + _of_runs(r),
            _pm(r["cl_acc"], r["cl_acc_std"], 3) + _of_runs(r),
            _pm(r["search_minutes"], r["search_minutes_std"], 2),
            _pm(r["finetune_seconds"], r["finetune_seconds_std"], 0)
            + (f" ({r['finetuned_runs']} of {r['runs']} runs)"
               if 0 < r["finetuned_runs"] < r["runs"] else ""),
            f"{r['runs']}"
            + (f" ({r['unfinished_runs']} unfinished)" if r["unfinished_runs"] else ""),
            f"{r['models']} with LOC < {r['loc_threshold']:g}",
        ] + ([_pm(r["kl"], r["kl_std"], 4)] if "kl" in table.columns else []))
    header = ["Dataset", "Rec loss", "LOC", "Cl loss", "Cl acc", "Search time (min)",
              "Fine-tune (s)", "Runs", "Models"] + (["KL"] if "kl" in table.columns else [])
    notes = [
        "Mean ± standard deviation over seeds of each seed's mean over its distinct "
        "final models (models/index.csv: the final population, or the all-time front with "
        "final = \"front\") with LOC below the threshold (failed models left out).",
        "Rec loss after fine-tuning, on the test split. † not fine-tuned: the search's "
        "validation loss, and no classification columns. ‡ mixed: some models' test losses after "
        "fine-tuning, the others' validation losses (a run not fine-tuned, or fine-tuned in part); "
        "(k of n runs) beside the classification columns: the runs they average.",
        "Search time: sum of the generation times in generations.csv. Fine-tune: a run's "
        "models' fine-tune seconds summed (two at a time by default: the command took less). "
        "–: no value.",
    ] + [f"Cl loss, Cl acc ({dataset}): a softmax classifier on the frozen codes, trained for "
         f"{epochs} epochs (`moncae finetune --classifier-epochs`): how well the codes separate the "
         "classes within that budget, not a converged classifier's figure."
         for dataset, epochs in _classifier_epochs(table)]
    notes += (["KL (VAE runs): the prior KL(q(z|x) || N(0, I)) per latent dimension, on the same "
               "split as the rec loss; the rec loss of a VAE is the per-pixel BCE of its mean "
               "decoding."] if "kl" in table.columns else [])
    return _md_table(header, rows) + "\n\n" + "\n".join(f"{n}  " for n in notes).rstrip() + "\n"


def _runs_markdown(runs_table: pd.DataFrame, threshold: float) -> str:
    rows = []
    for _, r in runs_table.iterrows():
        status = "finished" if r["finished"] else \
            f"**unfinished** ({r['generations_done']}/{r['generations']} generations)"
        rows.append([f"seed-{r['seed']}", status, f"{r['final_models']}",
                     f"{r['failed_models']}", f"{r['models_below_threshold']}",
                     _fmt(r["search_minutes"], 2),
                     "yes" if r["finetuned"] else
                     f"in part ({r['finetuned_models']} of {r['final_models'] - r['failed_models']})"
                     if r["finetuned_models"] else "no",
                     _fmt(r["finetune_seconds"], 0)])
    header = ["Run", "Search", "Distinct final models", "Failed", f"LOC < {threshold:g}",
              "Search (min)", "Fine-tuned", "Fine-tune (s)"]
    return _md_table(header, rows)


def _loss_name(loss: str) -> str:
    return {"bce": "binary cross-entropy", "mse": "mean squared error"}.get(loss, loss)


@dataclass
class DatasetSection:
    """What one dataset's section of `report.md` shows."""

    dataset: str
    runs: Sequence[RunInfo]
    runs_table: pd.DataFrame  # every run (this dataset's rows are picked)
    table1: pd.DataFrame  # every dataset's Table 1 row
    pareto: dict  # `collect_pareto`'s output
    loss: str
    pareto_png: str
    hv_png: str
    data_description: str | None  # None when the data could not be loaded
    reconstructions: list[tuple[RunInfo, str, int]]  # (run, png, models drawn)
    samples: list[tuple[RunInfo, str, int]] = field(default_factory=list)  # VAE runs: (run, png, models)
    projections_png: str | None = None  # runs with more than two objectives
    versus_pca: pd.DataFrame | None = None  # `collect_versus_pca`'s rows; None: no PCA baseline
    runs_drawn: int | None = None  # runs with reconstruction / sample figures (None: every run)


VERSUS_PCA_ROWS = 24  # at most this many models listed in the Markdown (all of them in the CSV)


def _classifier_epochs(table: pd.DataFrame) -> list[tuple[str, str]]:
    """(dataset, its runs' classifier epochs, e.g. "10" or "10-20") where some run was fine-tuned."""
    if "classifier_epochs" not in table.columns:
        return []
    return [(r["dataset"], str(r["classifier_epochs"])) for _, r in table.iterrows()
            if str(r["classifier_epochs"]) not in ("", "nan")]


def versus_pca_section(dataset: str, versus: pd.DataFrame, loss: str) -> list[str]:
    """The section saying how many fine-tuned final models beat PCA at their latent size, and each one."""
    n = versus_pca_counts(versus)
    text = (f"**{n['below']} of {n['compared']} fine-tuned final models lie below PCA with as many "
            f"components as they have latent values** ({_loss_name(loss)}, test split; the difference "
            "is the model's loss minus PCA's, negative: the model beats the linear reference at its size)."
            if n["compared"] else "No fine-tuned final model has a PCA of its size to be compared with.")
    if n["paired"]:
        text += (f" For {n['paired']} of them the test images' losses were kept, so the difference has a 95% "
                 "interval from the per-image differences (model minus PCA on the same images: "
                 "`difference_low`, `difference_high`).")
    if n["narrow"]:
        how = ("its 95% interval holds 0" if n["paired"] == n["compared"] else
               f"its 95% interval holds 0, or, without one, it is below by less than {NARROW_MARGIN:g}"
               if n["paired"] else f"below by less than {NARROW_MARGIN:g}, while a mean over 1,000-10,000 "
               "test images has a standard error of ~0.0005-0.002")
        text += (f" {n['narrow']} of those below {'is' if n['narrow'] == 1 else 'are'} within the test "
                 f"split's noise ({how}).")
    top = pca_sizes(versus).max()
    if n["capped"]:
        text += (f" {n['capped']} of them {'has' if n['capped'] == 1 else 'have'} more latent values than PCA "
                 f"can have components here (training images - 1, or pixels): compared with PCA with all "
                 f"{int(top)}, which a larger linear code could only improve on (where they are the "
                 "pixels, a lossless code).")
    if n["no_pca"]:
        text += (f" {n['no_pca']} {'model has' if n['no_pca'] == 1 else 'models have'} more latent values "
                 "than PCA can have components here" + (" and a lower loss than PCA with all of them" if
                                                        pd.notna(top) else "") + ": not compared.")
    if n["not_finetuned"]:
        text += (f" {n['not_finetuned']} {'model was' if n['not_finetuned'] == 1 else 'models were'} not "
                 "fine-tuned (their loss is the search's, on the validation split): listed, not counted.")
    seeds = sorted(set(versus["seed"]))
    if len(seeds) > 1:  # per seed, of its fine-tuned models compared
        per_seed = [f"seed-{seed} {c['below']} of {c['compared']}" for seed in seeds
                    for c in [versus_pca_counts(versus[versus["seed"] == seed])] if c["compared"]]
        if per_seed:
            text += " Per seed: " + ", ".join(per_seed) + "."
    parts = ["### Against PCA at the same latent size", "", text, "",
             f"Per model: [versus_pca_{dataset}.csv](versus_pca_{dataset}.csv).", ""]
    if 0 < len(versus) <= VERSUS_PCA_ROWS:
        rows = [[f"seed-{r['seed']}", r["bottleneck"], _fmt(float(r["loc"])),
                 _fmt(float(r["rec_loss"]), 4) + ("" if r["source"] == "finetune" else " (validation)"),
                 (_fmt(float(r["pca_rec_loss"]), 4) or "–")
                 + (f" (k={r['pca_k']})" if r["pca_k"] != "" and r["pca_k"] < r["latent_size"] else ""),
                 "–" if r["source"] != "finetune" or pd.isna(r["difference"]) else f"{r['difference']:+.4f}"
                 + ("" if pd.isna(r["difference_se"]) else
                    f" ({r['difference_low']:+.4f} to {r['difference_high']:+.4f})")]
                for _, r in versus.iterrows()]
        parts += [_md_table(["Run", "Bottleneck", "LOC", "Rec loss", "PCA", "Difference (95% interval)"], rows),
                  ""]
    return parts


def dataset_section(section: DatasetSection) -> str:
    s = section
    dataset, pareto, loss = s.dataset, s.pareto, s.loss
    threshold = pareto["threshold"]
    split = {"finetune": "after fine-tuning, test split", "search": "after the search, "
             "validation split", "mixed": "fine-tuned runs on the test split, the others on "
             "the validation split"}.get(pareto["source"], "no model")  # of the plotted models
    parts = [f"## {dataset}", ""]
    parts += [_runs_markdown(s.runs_table[s.runs_table["dataset"] == dataset], threshold), ""]
    parts += ["### Pareto front", "", f"![Pareto front of {dataset}]({s.pareto_png})", ""]
    pca_text = (f"The dashed line is the PCA baseline (a linear autoencoder with k latent values "
                f"at LOC = log10 k, fitted on the training split, scored on the test split; "
                f"[pca_baseline_{dataset}.csv](pca_baseline_{dataset}.csv)): an evolved front "
                f"below it beats the linear reference." if s.data_description and len(pareto["pca"])
                else "No PCA baseline: the data could not be loaded." if not s.data_description
                else "No PCA baseline (not selected with --baselines).")
    dense = pareto.get("baselines")
    if dense is not None and len(dense):
        pca_text += (f" The dash-dotted / dotted lines are the dense baselines "
                     f"({', '.join(sorted(set(dense['kind'])))}: one hidden layer of 256 ReLU "
                     f"units each side of a k-value code, trained on the training split with early "
                     f"stopping on the validation split, scored on the test split with the same "
                     f"loss; [baselines_{dataset}.csv](baselines_{dataset}.csv)).")
    parts += [
        f"Every distinct final model of every seed: reconstruction loss ({_loss_name(loss)}, "
        f"{split}) against level of compression. The black step line is the non-dominated "
        f"front over all seeds. {pca_text} Models left of the dotted line (LOC < "
        f"{threshold:g}) are the ones averaged in Table 1."
        + (f" {pareto['failed']} failed model(s) are not drawn." if pareto["failed"] else ""),
        "",
    ]
    if s.versus_pca is not None:
        parts += versus_pca_section(dataset, s.versus_pca, loss)
    if s.projections_png:
        names = ", ".join(s.runs[0].config.objectives)
        parts += ["### Every pair of objectives", "", f"![Objective pairs of {dataset}]({s.projections_png})",
                  "", f"The runs minimise {len(s.runs[0].config.objectives)} objectives ({names}; params and "
                  "FLOPs as log10, latency in ms per image at batch 1): each panel is one pair, every "
                  "final model of every seed; circled: the models no other final model dominates in "
                  "all objectives at once.", ""]
    parts += ["### Hypervolume per generation", "", f"![Hypervolume of {dataset}]({s.hv_png})", ""]
    several = len({r.seed for r in s.runs}) > 1
    parts += [f"Hypervolume of each generation's population over ({', '.join(s.runs[0].config.objectives)}) "
              f"(reference point {tuple(s.runs[0].config.ref_point)}; higher is better), per seed"
              + (" and its mean over seeds" if several else "") + "; dashed: the all-time front's"
              + (" (mean over seeds)" if several else "") + ", which never falls.", ""]
    parts += ["### Reconstructions", ""]
    if s.runs_drawn is not None and s.runs_drawn < len(s.runs):
        parts += [f"Figures of each run (reconstructions{', samples' if s.samples else ''}) for "
                  f"{s.runs_drawn} of the {len(s.runs)} runs, the lowest seeds (`moncae report "
                  "--run-figures all` draws every run's).", ""]
    if not s.reconstructions:
        parts += ["No reconstruction figure (no data or no saved models)." if s.runs_drawn != 0 else
                  "No reconstruction figure (`--run-figures 0`).", ""]
    if s.data_description and s.reconstructions:
        parts += [f"Test images (left column) and their reconstructions by each final model of "
                  f"the run, most compressed first; above each column its rec loss and LOC. "
                  f"Data: {s.data_description}.", ""]
    for run, png, n in s.reconstructions:
        parts += [f"#### {run.label} ({n} models)", "", f"![Reconstructions {dataset} "
                  f"{run.label}]({png})", ""]
    if s.samples:
        parts += ["### Samples", "", "Images each final VAE decodes from the same draws "
                  "z ~ N(0, I) (one row per draw), most compressed first.", ""]
    for run, png, n in s.samples:
        parts += [f"#### {run.label} ({n} models)", "", f"![Samples {dataset} {run.label}]({png})", ""]
    return "\n".join(parts)


def versus_pca_count_text(n: dict[str, int], *, bold: bool = False) -> str:
    """`versus_pca_counts`' `n` in words: how many of the compared models lie below PCA, and how
    many of those within the test split's noise (the report's summary; `moncae report`'s log)."""
    count = f"{n['below']} of {n['compared']}"
    noise = f", {n['narrow']} of them within the test split's noise" if n["narrow"] else ""
    return (f"{f'**{count}**' if bold else count} fine-tuned final models below PCA at their latent size "
            f"(test split){noise}")


def versus_pca_summary(versus: dict[str, pd.DataFrame]) -> list[str]:
    """One line per dataset with a PCA baseline: how many fine-tuned final models beat it."""
    lines = []
    for dataset, rows in versus.items():
        n = versus_pca_counts(rows)
        if n["compared"]:
            lines.append(f"- {dataset}: {versus_pca_count_text(n, bold=True)}")
    return ["Against PCA (details in each dataset's section):", "", *lines, ""] if lines else []


def report_markdown(root: Path, runs: Sequence[RunInfo], table: pd.DataFrame,
                    sections: Sequence[str], versus: dict[str, pd.DataFrame] | None = None) -> str:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    notes = [f"- `{r.path}`: {n}" for r in runs for n in r.notes]
    parts = [
        "# MONCAE report", "",
        f"{len(runs)} run(s) under `{root}`, generated {now} by moncae {__version__}.", "",
        "## Table 1", "", table1_markdown(table),
        "As CSV: [table1.csv](table1.csv); per run: [runs.csv](runs.csv).", "",
        *versus_pca_summary(versus or {}),
        *sections,
    ]
    groups = _settings_groups_markdown(runs)
    if groups:
        parts += ["## Settings groups", "", "Runs of one dataset with other settings are reported apart, "
                  "each group named after its settings id; what sets each apart:", "", *groups, ""]
    if notes:
        parts += ["## Warnings", "", *notes, ""]
    return "\n".join(parts).rstrip() + "\n"


def _settings_groups_markdown(runs: Sequence[RunInfo]) -> list[str]:
    lines = []
    for dataset in sorted({r.config.dataset for r in runs}):
        mine = [r for r in runs if r.config.dataset == dataset]
        if len({r.settings_id for r in mine}) > 1:
            families = {r.settings_id: r.family for r in mine}
            lines += [f"- `{families[i]}`: {text}" for i, text in sorted(settings_groups(mine).items())]
    return lines
