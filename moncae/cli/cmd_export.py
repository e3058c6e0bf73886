"""`moncae export`: one model of a finished run as ready-to-use Keras (and SavedModel/TFLite) files."""

from __future__ import annotations

import click

from moncae.cli.options import data_dir_option
from moncae.export import KNEE_HELP


@click.command("export")
@click.argument("run_dir", type=click.Path(path_type=str))
@click.argument("out_dir", type=click.Path(path_type=str))
@click.option("--key", metavar="K", default=None, help="A genome key, or a unique prefix of its model file name "
                                          "(the key column of `moncae front`).")
@click.option("--max-loc", type=float, default=None, metavar="X",
              help="The front point with the lowest validation loss among those with LOC <= X.")
@click.option("--max-loss", type=float, default=None, metavar="Y",
              help="The front point with the smallest LOC among those with validation loss <= Y.")
@click.option("--knee", is_flag=True, help=f"The front's knee: {KNEE_HELP.split(': ', 1)[1]}.")
@click.option("--searched", is_flag=True,
              help="Export the searched weights even when fine-tuned ones exist (the default takes those).")
@click.option("--format", "formats", type=click.Choice(["savedmodel", "tflite"]), multiple=True,
              help="Also write the encoder and decoder in this format (repeatable).")
@data_dir_option
def command(run_dir, out_dir, key, max_loc, max_loss, knee, searched, formats, data_dir):
    """Export one model of the finished run in RUN_DIR to the new or empty folder OUT_DIR.

    Choose it with exactly one of --key, --max-loc, --max-loss, --knee. The rules compare the
    search's own objectives (validation loss, LOC) at the precision `moncae front` prints, and
    pick among front points whose model was kept (the final population's). Writes
    autoencoder.keras, encoder.keras, decoder.keras (bottleneck code -> image), model.json, and
    with --format the SavedModel / TFLite encoder and decoder; then reloads them and checks that
    encoder -> decoder reproduces the autoencoder on test images.
    """
    from moncae.export import export_model

    result = export_model(run_dir, out_dir, key=key, max_loc=max_loc, max_loss=max_loss, knee=knee,
                          searched=searched, formats=tuple(dict.fromkeys(formats)), data_dir=data_dir)
    row = result.choice.row
    for note in result.notes:
        click.echo(f"Note: {note}", err=True)
    click.echo(f"chose {row['id'][:8]} by {result.choice.rule}")
    loss = f"val loss {row['search_rec_loss']:.4f}"
    if result.choice.weights == "finetuned":
        loss += f", test loss {row['rec_loss']:.4f} after fine-tune"
    click.echo(f"  {row['architecture']} -> {row['bottleneck']}, LOC {row['loc']:.3f}, {loss}; "
               f"{result.choice.weights} weights")
    checks = ", ".join(f"{name} {value:.3g}" for name, value in result.checks.items())
    click.echo(f"  check (encoder -> decoder vs autoencoder, max abs diff): {checks}")
    click.echo(f"  wrote {', '.join(result.files)}")
    click.echo(str(result.out_dir))
