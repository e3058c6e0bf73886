"""`moncae train-ga`: train one given genome's autoencoder weights with the mutation-only GA of the
GA weight-training study (no backpropagation), on a small subset, logging the loss per generation."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import sys
import warnings

import click
from click.core import ParameterSource

from moncae.cli.options import data_dir_option
from moncae.config import SPACES
from moncae.errors import MoncaeError, MoncaeWarning, one_line
from moncae.method.genome import DOWNSAMPLINGS
from moncae.method.weight_ga import SEED_MAX


def _genes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(g) for g in text.replace(" ", "").split(",") if g != "")
    except ValueError:
        raise MoncaeError(f"`--genes` must be comma-separated integers. Received: {text!r}") from None


def _check_numbers(perturbation: float, seconds: float | None, seed: int) -> None:
    """Refuse what the GA cannot use, before any data or TensorFlow work."""
    if not (math.isfinite(perturbation) and perturbation > 0):
        raise MoncaeError("--perturbation must be a positive finite number (each mutation adds "
                          f"U(-perturbation, perturbation); the study's: 1). Received: {perturbation!r}")
    if seconds is not None and (math.isnan(seconds) or seconds <= 0):
        raise MoncaeError("--seconds must be a positive number of seconds (leave it out for no time "
                          f"limit). Received: {seconds!r}")
    if not 0 <= seed <= SEED_MAX:
        raise MoncaeError(f"--seed must be an integer from 0 to {SEED_MAX} (2**32 - 1). Received: {seed}")


def _check_output(option: str, path: str | None, suffix: str | None = None) -> None:
    """An output file the command writes after training: its folder must exist and be writable
    now, so that a typo does not cost the trained result."""
    if path is None:
        return
    if suffix is not None and not path.endswith(suffix):
        raise MoncaeError(f"{option} must name a {suffix} file (the format it writes), e.g. "
                          f"{os.path.splitext(path)[0] or 'model'}{suffix}. Received: {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        what = "is not a folder" if os.path.exists(folder) else "does not exist"
        raise MoncaeError(f"{option} {path}: its folder {folder} {what}; create the folder first or give a "
                          "path in an existing one")
    if os.path.isdir(path):
        raise MoncaeError(f"{option} {path} is a folder; give a file path")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise MoncaeError(f"{option} {path}: no permission to write there; choose another path")


def _run_genome(run_dir: str, key: str):
    """The genome `key` of a finished run (its front or final population) and the run's data;
    only its genes are needed, so a front point whose model was not kept is fine too."""
    from moncae.export import read_run_models
    from moncae.export.select import find_key

    models = read_run_models(run_dir, all_models=True)
    row = find_key(models.frame, key)
    return models.genomes[row["genome_key"]], models.config.data_spec()


def _write_csv(path: str, history) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["generation", "seconds", "loss", "evaluations"])
        writer.writerows((h.generation, h.seconds, h.loss, h.evaluations) for h in history)


@click.command("train-ga")
@click.option("--dataset", default=None, help="Dataset name or .npz path (default: mnist_5k, or the run's).")
@data_dir_option
@click.option("--genes", default=None, metavar="G0,G1,...",
              help="The genome as its gene list (the gene columns of a run's evaluations.csv), for the space "
                   "--space/--downsample/--max-blocks/--max-filters describe.")
@click.option("--run", "run_dir", default=None, type=click.Path(file_okay=False, path_type=str),
              help="Instead of --genes: a finished search's run folder; with --key, one of its genomes "
                   "(its space and, unless --dataset is given, its dataset).")
@click.option("--key", default=None,
              help="With --run: a genome key or a unique prefix of its model name (`moncae front RUN --all`).")
@click.option("--space", type=click.Choice(list(SPACES)), default="paper", show_default=True)
@click.option("--downsample", type=click.Choice(DOWNSAMPLINGS), default="pool", show_default=True)
@click.option("--max-blocks", type=int, default=6, show_default=True)
@click.option("--max-filters", type=int, default=256, show_default=True)
@click.option("--images", type=int, default=10, show_default=True, help="Train on the first N training images.")
@click.option("--population", type=int, default=10, show_default=True, help="Agents per generation.")
@click.option("--mutations", type=int, default=10, show_default=True,
              help="Weights mutated per child (each plus U(-perturbation, perturbation)); at most the "
                   "autoencoder's trainable parameters.")
@click.option("--perturbation", type=float, default=1.0, show_default=True,
              help="A mutation adds U(-perturbation, perturbation); positive.")
@click.option("--generations", type=int, default=200, show_default=True)
@click.option("--seconds", type=float, default=None, help="Also stop after this many seconds (> 0).")
@click.option("--loss", type=click.Choice(["bce", "mae"]), default="bce", show_default=True,
              help="The agents' score: the search's BCE, or the study's mean absolute error.")
@click.option("--seed", type=int, default=0, show_default=True,
              help=f"Initial weights and mutations (0 to {SEED_MAX}).")
@click.option("--log-every", type=int, default=10, show_default=True, help="Print every K-th generation.")
@click.option("--csv", "csv_path", type=click.Path(path_type=str), default=None,
              help="Write every generation (generation, seconds, loss, evaluations) to this CSV.")
@click.option("--save", type=click.Path(path_type=str), default=None,
              help="Save the trained autoencoder as a .keras file.")
def command(dataset, data_dir, genes, run_dir, key, space, downsample, max_blocks, max_filters, images,
            population, mutations, perturbation, generations, seconds, loss, seed, log_every, csv_path, save):
    """Train the weights of one genome's autoencoder with a mutation-only GA (no backprop).

    Each generation the best agent's weights are copied to every other agent and MUTATIONS of
    them get U(-1, 1) added (the study's operator); the best agent is kept. Prints the best loss
    on the training images every --log-every generations, and the loss on the validation split
    at the end. The study found it does not scale beyond a handful of images; see
    bench/ga_weights.py (in the source repository) for a comparison with Adam.
    """
    from moncae.data import DataSpec, cached_dataset
    from moncae.method.genome import Genome, GenomeSpace

    if images < 1 or population < 2 or mutations < 1 or generations < 1 or log_every < 1:
        raise MoncaeError("--images, --mutations, --generations and --log-every must be >= 1 and "
                          f"--population >= 2. Received: images={images}, population={population}, "
                          f"mutations={mutations}, generations={generations}, log_every={log_every}")
    _check_numbers(perturbation, seconds, seed)
    _check_output("--csv", csv_path)
    _check_output("--save", save, ".keras")
    if (genes is None) == (run_dir is None) or (run_dir is None) != (key is None):
        raise MoncaeError("give the genome either as --genes G0,G1,... or as --run RUN_DIR --key KEY")
    if run_dir is not None:
        given = [f"--{name.replace('_', '-')}" for name in ("space", "downsample", "max_blocks", "max_filters")
                 if click.get_current_context().get_parameter_source(name) != ParameterSource.DEFAULT]
        if given:
            warnings.warn(MoncaeWarning(f"{'/'.join(given)} {'has' if len(given) == 1 else 'have'} no effect with "
                                        "--run: the genome is decoded in its run's space; they act with --genes"),
                          stacklevel=1)
        genome, spec = _run_genome(run_dir, key)  # the run's data and splits
        if dataset is not None:
            spec = DataSpec(dataset, data_dir)
        elif data_dir is not None:
            spec = dataclasses.replace(spec, data_dir=data_dir)
    else:
        genome_space = GenomeSpace(max_blocks=max_blocks, max_filters=max_filters,
                                   latent_sizes=SPACES[space], downsample=downsample)
        genome, spec = Genome(_genes(genes), genome_space), DataSpec(dataset or "mnist_5k", data_dir)
    data = cached_dataset(spec)
    if images > len(data.x_train):
        raise MoncaeError(f"--images must be at most the {len(data.x_train)} training images. Received: {images}")
    from moncae.model.weight_ga import reconstruction_loss, train_weights_ga

    shape = data.input_shape
    click.echo(f"{genome.describe(shape)}: GA on {images} images, population {population}, {mutations} "
               f"weights mutated per child, U(-{perturbation:g}, {perturbation:g}), {loss}")

    def log(entry) -> None:
        if entry.generation % log_every == 0:
            click.echo(f"gen {entry.generation:5d}  {loss} {entry.loss:.5f}  {entry.seconds:7.1f}s")

    result = train_weights_ga(genome, data.x_train[:images], input_shape=shape, population=population,
                              mutations=mutations, perturbation=perturbation, generations=generations,
                              seconds=seconds, seed=seed, loss=loss, log=log)
    last = result.history[-1]
    val = reconstruction_loss(result.model, data.x_val, loss)
    click.echo(f"done: {last.generation} generations, {last.evaluations} forward passes, {last.seconds:.1f}s; "
               f"{loss} {result.loss:.5f} on the {images} training images, {val:.5f} on {len(data.x_val)} "
               "validation images")
    failed, written = [], []  # write each output even if the other fails: the training is not to be lost
    for option, path, write in (("--csv", csv_path, lambda: _write_csv(csv_path, result.history)),
                                ("--save", save, lambda: result.model.save(save))):
        if path:
            try:
                write()
                written.append(f"{option} {path}")
            except OSError as err:
                failed.append(f"{option} {path} ({one_line(err)})")
    sys.stdout.flush()
    if failed:
        kept = f"{' and '.join(written)} written" if written else "only the losses printed above are kept"
        click.echo(f"Error: could not write {'; '.join(failed)}; {kept}: fix the cause and run the same "
                   "command again", err=True)
        sys.exit(1)
