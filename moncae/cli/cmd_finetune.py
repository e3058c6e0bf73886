"""`moncae finetune`: train a finished run's final population further and measure its codes."""

from __future__ import annotations

import math
import sys

import click

from moncae.cli.options import data_dir_option, exit_if_unsaved


class BarProgress:
    """A Click progress bar over the models to fine-tune (nothing when `quiet`)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar = None

    def started(self, total, to_train, skipped):
        if skipped:
            click.echo(f"{skipped}/{total} models already in finetune.csv (skipped)")
        if not self.quiet and to_train:
            self.bar = click.progressbar(
                length=to_train, label="fine-tune", file=sys.stderr,
                show_pos=True,
                item_show_func=lambda r: r and f"individual {r.individual}: {r.status}",
            )
            self.bar.__enter__()

    def model_done(self, record):
        if self.bar is not None:
            self.bar.update(1, record)

    def close(self):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None

    def message(self, text):
        click.echo(text)


class Patience(click.ParamType):
    """A non-negative integer, or `off` (None: no early stopping)."""

    name = "patience"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        text = str(value).strip().lower()
        if text in ("off", "none"):
            return None
        if text.isdigit():
            return int(text)
        self.fail(f"{value!r} is neither a whole number >= 0 nor 'off'", param, ctx)


PATIENCE = Patience()


def _num(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "-"


@click.command("finetune")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--epochs", type=click.IntRange(min=0), default=None,
              help="Max fine-tuning epochs per model (early stopping on validation); 0 = none. "
                   "[default: the run's finetune_epochs setting: 20 unless its preset sets fewer, e.g. cpu]")
@click.option("--classifier-epochs", type=click.IntRange(min=1), default=20, show_default=True,
              help="Training epochs of the softmax classifier on the frozen latent codes.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--patience", type=PATIENCE, default="3", show_default=True, metavar="N|off",
              help="Early-stopping patience (epochs without a better validation loss); off: every "
                   "epoch and the last epoch's weights, as the paper's extra 20 epochs.")
@data_dir_option
@click.option("--workers", default="auto", show_default=True, metavar="auto|N",
              help="Models fine-tuned at once, each in its own process with the cores shared out as "
                   "TensorFlow threads (auto: 2 on a CPU-only machine with >= 2 cores, else 1, in a "
                   "worker process; an explicit 1: in this process).")
@click.option("--quiet", is_flag=True, help="No progress bar, only the summary.")
def command(run_dirs, epochs, classifier_epochs, batch_size, patience, data_dir, workers, quiet):
    """Fine-tune the final population of each search run in RUN_DIRS (one or more, e.g.
    results/mnist/seed-*, one after another) and score it on the test split.

    Writes RUN_DIR/finetune.csv (one row per unique genome) and RUN_DIR/finetuned/*.keras, each
    with its test images' losses (*.test_losses.npy, for the report's paired comparison with PCA);
    a rerun skips the models already in finetune.csv. With several runs, every folder (and its
    rows already fine-tuned, against these settings) is checked before any is fine-tuned.
    """
    from moncae.config import parse_workers
    from moncae.finetune import check_finetune, finetune_executor

    workers = parse_workers(workers)
    run_dirs = list(dict.fromkeys(run_dirs))  # a folder named twice is fine-tuned once
    if len(run_dirs) > 1:
        for run_dir in run_dirs:
            check_finetune(run_dir, epochs=epochs, classifier_epochs=classifier_epochs, batch_size=batch_size,
                           patience=patience, data_dir=data_dir)
    unsaved, none_ok = [], []
    with finetune_executor(workers) as executor:  # the runs share its workers, started once
        for i, run_dir in enumerate(run_dirs, 1):
            if len(run_dirs) > 1:
                click.echo(f"finetune {run_dir} ({i} of {len(run_dirs)})")
            result = _finetune_one(run_dir, epochs, classifier_epochs, batch_size, patience, data_dir,
                                   quiet, executor)
            unsaved += result.unsaved
            if result.records and not any(r.ok for r in result.records):
                none_ok.append(run_dir)
    exit_if_unsaved(unsaved, "model(s)", "again to fine-tune them", "e.g. free disk space or memory")
    if none_ok:  # every model failed: not a success, whatever else the command wrote
        click.echo(f"Error: no model of {', '.join(map(str, none_ok))} was fine-tuned ok; each one's error "
                   "is in the table above and in its finetune.csv", err=True)
        sys.exit(1)


def _finetune_one(run_dir, epochs, classifier_epochs, batch_size, patience, data_dir, quiet,
                  executor):
    """One run: fine-tune, print its table and summary; return the `finetune_run` result."""
    from moncae.finetune import finetune_run

    progress = BarProgress(quiet)
    try:
        result = finetune_run(run_dir, epochs=epochs, classifier_epochs=classifier_epochs,
                              batch_size=batch_size, patience=patience, data_dir=data_dir,
                              progress=progress, executor=executor)
    finally:
        progress.close()
    click.echo(f"{'ind':>3}  {'rec_loss':>8}  {'LOC':>5}  {'cl_loss':>7}  {'cl_acc':>6}  "
               f"{'epochs':>6}  {'seconds':>7}  status")
    for r in result.records:
        click.echo(f"{r.individual:>3}  {_num(r.rec_loss, 4):>8}  {_num(r.loc, 3):>5}  "
                   f"{_num(r.cl_loss, 4):>7}  {_num(r.cl_acc, 3):>6}  {r.epochs:>6}  "
                   f"{_num(r.finetune_seconds, 1):>7}  {r.status}"
                   + (f" ({r.error})" if r.error else ""))
    ok = sum(r.ok for r in result.records)
    epochs = result.settings.epochs
    click.echo(f"done: {ok}/{len(result.records)} models ok ({result.trained} fine-tuned now, "
               f"{result.skipped} skipped; up to {epochs} epoch{'' if epochs == 1 else 's'} each); results in "
               f"{result.csv_path}")
    return result
