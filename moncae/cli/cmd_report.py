"""`moncae report`: Table 1, Pareto fronts with a PCA baseline, and figures over all runs."""

from __future__ import annotations

from pathlib import Path

import click

from moncae.cli.options import data_dir_option


def _run_figures(ctx, param, value: str) -> int | None:
    if value.strip().lower() == "all":
        return None
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise click.BadParameter(f"{value!r} is not an integer >= 0 or all", ctx, param)
    return number


@click.command("report")
@click.argument("results_dir", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the report files (default: RESULTS_DIR/report).")
@click.option("--loc-threshold", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Table 1 averages final models with LOC below this "
                   "(default: 2.5 for single-channel images, 3.1 for three-channel).")
@click.option("--baselines", default=None, metavar="LIST",
              help="Baseline fronts, comma-separated: pca, dense_ae, dense_vae (default pca; none "
                   "for no baseline). Dense ones are trained once and cached in RESULTS_DIR/.baselines/.")
@data_dir_option
@click.option("--run-figures", default="10", show_default=True, metavar="N|all", callback=_run_figures,
              help="Draw each run's own figures (reconstructions; a VAE's samples) for at most N runs of "
                   "each dataset, the lowest seeds; all: every run; 0: none. Each loads every final "
                   "model of its run (seconds a run).")
@click.option("--quiet", is_flag=True, help="Print only warnings and the path of report.md.")
def command(results_dir, out, loc_threshold, quiet, baselines, data_dir, run_figures):
    """Summarise every run under RESULTS_DIR (DATASET/seed-N/ folders): table1.csv/.md,
    pareto_DATASET.png, hv_history_DATASET.png, reconstructions_DATASET_seed-N.png,
    versus_pca_DATASET.csv (each final model against PCA at its latent size) and a report.md
    that embeds them. The data (for PCA and the figures) is looked for where each run found it,
    or in --data-dir. Prints the path of report.md last."""
    from moncae.report import build_report

    log = None if quiet else (lambda text: click.echo(text, err=True))
    report = build_report(results_dir, out=out, loc_threshold=loc_threshold, log=log,
                          baselines=baselines, data_dir=data_dir, run_figures=run_figures)
    click.echo(str(report))
