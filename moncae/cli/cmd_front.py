"""`moncae front`: a finished run's all-time Pareto front as a table (no TensorFlow)."""

from __future__ import annotations

import json
import math

import click


@click.command("front")
@click.argument("run_dir", type=click.Path(path_type=str))
@click.option("--all", "all_models", is_flag=True,
              help="Also list the final population's models that are not on the front (marked *).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON records (one object per model).")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (every column of `moncae.load_front`).")
def command(run_dir, all_models, as_json, as_csv):
    """Print the all-time Pareto front of the finished run in RUN_DIR, by increasing LOC.

    rec_loss is the search's validation loss, or the test loss where the model was fine-tuned
    (the `split` column says which); FLOPs are one image's forward pass (2 x the multiply-adds of
    every convolution and dense layer); `model` says which saved weights exist (only the final
    population's models are kept). The key column is what `moncae export --key` takes.
    """
    from moncae.export.front import format_front, load_front

    if as_json and as_csv:
        raise click.UsageError("--json and --csv are exclusive")
    frame = load_front(run_dir, all_models=all_models)
    if as_csv:
        click.echo(frame.to_csv(index=False), nl=False)
    elif as_json:
        records = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
                   for r in frame.to_dict("records")]
        click.echo(json.dumps(records, indent=1, default=_plain))
    else:
        click.echo(format_front(frame))
        on_front = int(frame["on_front"].sum())
        others = len(frame) - on_front
        tail = f", {others} other final model{'' if others == 1 else 's'} (*)" if others > 0 else ""
        click.echo(f"{on_front} front points{tail}; split: val = search validation loss, "
                   "test = after fine-tune")


def _plain(value):
    """numpy scalars -> Python numbers for json."""
    return value.item() if hasattr(value, "item") else str(value)
