"""`moncae train-ga`: train one given genome's autoencoder weights with the mutation-only GA of the
GA weight-training study (no backpropagation), on a small subset, logging the loss per generation."""

from __future__ import annotations

import csv
import dataclasses
import sys

import click

from moncae.cli.options import data_dir_option
from moncae.config import SPACES
from moncae.errors import MoncaeError
from moncae.method.genome import DOWNSAMPLINGS


def _genes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(g) for g in text.replace(" ", "").split(",") if g != "")
    except ValueError:
        raise MoncaeError(f"`--genes` must be comma-separated integers. Received: {text!r}") from None


def _run_genome(run_dir: str, key: str):
    """The genome `key` of a finished run (its front or final population) and the run's data."""
    from moncae.export import choose, read_run_models

    models = read_run_models(run_dir, all_models=True)
    row = choose(models.frame, key=key).row
    return models.genomes[row["genome_key"]], models.config.data_spec()


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
              help="Weights mutated per child (each plus U(-perturbation, perturbation)).")
@click.option("--perturbation", type=float, default=1.0, show_default=True)
@click.option("--generations", type=int, default=200, show_default=True)
@click.option("--seconds", type=float, default=None, help="Also stop after this many seconds.")
@click.option("--loss", type=click.Choice(["bce", "mae"]), default="bce", show_default=True,
              help="The agents' score: the search's BCE, or the study's mean absolute error.")
@click.option("--seed", type=int, default=0, show_default=True, help="Initial weights and mutations.")
@click.option("--log-every", type=int, default=10, show_default=True, help="Print every K-th generation.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Write every generation (generation, seconds, loss, evaluations) to this CSV.")
@click.option("--save", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Save the trained autoencoder as a .keras file.")
def command(dataset, data_dir, genes, run_dir, key, space, downsample, max_blocks, max_filters, images,
            population, mutations, perturbation, generations, seconds, loss, seed, log_every, csv_path, save):
    """Train the weights of one genome's autoencoder with a mutation-only GA (no backprop).

    Each generation the best agent's weights are copied to every other agent and MUTATIONS of
    them get U(-1, 1) added (the study's operator); the best agent is kept. Prints the best loss
    on the training images every --log-every generations, and the loss on the validation split
    at the end. The study found it does not scale beyond a handful of images; see
    bench/ga_weights.py for a comparison with Adam.
    """
    from moncae.data import DataSpec, cached_dataset
    from moncae.method.genome import Genome, GenomeSpace

    if images < 1 or population < 2 or mutations < 1 or generations < 1 or log_every < 1:
        raise MoncaeError("--images, --mutations, --generations and --log-every must be >= 1 and "
                          f"--population >= 2. Received: images={images}, population={population}, "
                          f"mutations={mutations}, generations={generations}, log_every={log_every}")
    if (genes is None) == (run_dir is None) or (run_dir is None) != (key is None):
        raise MoncaeError("give the genome either as --genes G0,G1,... or as --run RUN_DIR --key KEY")
    if run_dir is not None:
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
    if csv_path:
        with open(csv_path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["generation", "seconds", "loss", "evaluations"])
            writer.writerows((h.generation, h.seconds, h.loss, h.evaluations) for h in result.history)
    if save:
        result.model.save(save)
    sys.stdout.flush()
