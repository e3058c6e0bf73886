"""`moncae search`: one evolutionary run per seed, with a progress bar per generation."""

from __future__ import annotations

import math
import sys
import warnings

import click

from moncae.cli.options import data_dir_option, exit_if_unsaved, unsaved_text
from moncae.config import (
    FIDELITIES,
    FINALS,
    FIRST_GENERATIONS,
    INITIALS,
    LATENTS,
    LOSSES,
    MODELS,
    PROMOTIONS,
    SPACES,
)
from moncae.errors import DataError, MoncaeError, MoncaeWarning
from moncae.method.genome import DOWNSAMPLINGS
from moncae.method.objectives import FITNESS_RULES
from moncae.method.selection import SELECTORS, STRATEGY_NAMES
from moncae.method.vae_loss import VAE_LOSSES


class SeedParam(click.ParamType):
    """An integer seed, a comma-separated list, or `paper` (the paper's 10 seeds)."""

    name = "seed"

    def convert(self, value, param, ctx):
        from moncae.config import PAPER_SEEDS

        if isinstance(value, tuple):
            return value
        text = str(value).strip().lower()
        if text == "paper":
            return PAPER_SEEDS
        try:
            seeds = tuple(int(part) for part in text.split(","))
        except ValueError:
            seeds = ()
        if seeds and min(seeds) >= 0:
            twice = sorted({s for s in seeds if seeds.count(s) > 1})
            if twice:
                self.fail(f"seed {twice[0]} is listed more than once (one run folder per seed); list each "
                          f"seed once. Received: {value!r}", param, ctx)
            return seeds
        self.fail(f"expected a non-negative integer, a comma-separated list of them or 'paper'. "
                  f"Received: {value!r}", param, ctx)


def time_left(seconds: dict[int, float], generations_left: int, last_extra: float = 0.0,
              max_minutes: float = 0.0, used: float | None = None, longest: float | None = None) -> str:
    """About how long `generations_left` more generations take, going by the seconds of those run
    so far (by generation; generation 0 left out: it trains a whole first population and starts the
    workers, so "" while it is the only one), plus `last_extra` seconds that the last generation
    adds (`last_generation_extra`).
    With a time budget (`max_minutes`), only the generations its rule lets start (as long as the
    seconds `used` so far plus the `longest` generation fit, those of the whole run where a
    resume's command has not seen them all; moncae.search.time_budget), then a last one."""
    typical = [v for g, v in seconds.items() if g > 0]
    if not typical:
        return ""
    mean = sum(typical) / len(typical)
    runs = generations_left
    if max_minutes > 0:
        spent = sum(seconds.values()) if used is None else used
        longest = max(seconds.values()) if longest is None else longest
        ordinary = 0
        while ordinary < generations_left - 1 and spent + longest <= max_minutes * 60:
            spent, longest, ordinary = spent + mean, max(longest, mean), ordinary + 1
        runs = ordinary + 1
    left = mean * runs + last_extra
    return f"~{left:.0f} s left" if left < 120 else f"~{left / 60:.1f} min left"


def last_generation_extra(seconds: dict[int, float], work: dict[int, float], above: dict[int, float],
                          top: dict[int, int], below_top: int) -> float:
    """Seconds a search with rungs spends in its last generation beyond a typical one: there every
    genome of the population is promoted to the top rung; `below_top` of the current population
    are not there yet (an estimate for the last one's). By generation (generation 0 left out: its
    promotions, of a whole first population, say little of later ones): `seconds` its wall clock,
    `work` its trainings' seconds summed, `above` those of its trainings above rung 0, `top` how
    many reached the top rung. Each genome promoted costs `above` per `top` (a middle rung counts
    with the top one), scaled by wall clock over work (trainings run side by side); 0 while nothing
    was promoted after generation 0."""
    gens = [g for g in seconds if g > 0]
    promoted = sum(top.get(g, 0) for g in gens)
    busy = sum(work.get(g, 0.0) for g in gens)
    if not promoted or busy <= 0:
        return 0.0
    per_genome = sum(above.get(g, 0.0) for g in gens) / promoted
    return below_top * per_genome * sum(seconds[g] for g in gens) / busy


def all_time_hv(row: dict) -> str:
    """The all-time front's hypervolume beside the population's, where they differ (the population
    may lose a front network; the all-time front cannot fall)."""
    front, population = row.get("front_hypervolume", float("nan")), row["hypervolume"]
    if not math.isfinite(front) or front - population <= 1e-9 * max(1.0, abs(population)):
        return ""
    return f" (all-time {front:.4f})"


class BarProgress:
    """Click progress bar per generation plus a one-line summary; `quiet` keeps the lines only.
    `header` (the run's `search ... -> RUN` line) is printed before the first thing the search
    says, so a refusal found while it starts (a resume's settings, a lock) comes alone."""

    def __init__(self, quiet: bool, header: str | None = None, max_minutes: float = 0.0,
                 bar: bool | None = None, prefix: str = "") -> None:
        self.quiet = quiet
        self.prefix = prefix  # before each line (seeds side by side: whose line it is)
        # the bar where stderr is a terminal (`bar` None); in a log, a line per generation and rung instead
        self.show_bar = not quiet and (sys.stderr.isatty() if bar is None else bar)
        self.header = header
        self.max_minutes = max_minutes  # the search's time budget (0: none), for the time left
        self.run_seconds: tuple[float, float] | None = None  # the whole run's seconds so far, longest
        self.bar = None
        self.trained = 0
        self.hits = 0
        self.hv = float("nan")
        self.seconds: dict[int, float] = {}  # generation -> its seconds, those run by this command
        self.work: dict[int, float] = {}  # generation -> its trainings' seconds summed
        self.above: dict[int, float] = {}  # generation -> its trainings' seconds above rung 0
        self.rungs: dict[int, dict[int, int]] = {}  # generation -> rung -> trainings there
        self.below_top = 0  # distinct genomes of the population below the top rung

    def generation_started(self, generation, generations, to_train, cache_hits):
        self.announce()
        self.generation, self.generations = generation, generations
        self.trained, self.hits = 0, cache_hits
        if not self.quiet and not self.show_bar:
            self._echo(f"gen {generation + 1}/{generations}: {to_train} to train, {cache_hits} cached", err=True)
        self._open_bar(to_train)

    def _open_bar(self, to_train):
        if self.show_bar and to_train:
            generation = self.generation
            self.bar = click.progressbar(
                length=to_train, label=f"gen {generation + 1}/{self.generations}", file=sys.stderr,
                # the trainings are the bar's count (its promotions included); the summary line's
                # `trained` counts the new genomes
                item_show_func=lambda _: f"cache hits {self.hits}" + (
                    f", HV {self.hv:.3f} after gen {generation}" if math.isfinite(self.hv) else ""),
                show_pos=True,
            )
            self.bar.__enter__()

    def evaluation_done(self, record):
        self.announce()
        self.trained += 1
        gen = record.generation
        self.work[gen] = self.work.get(gen, 0.0) + record.seconds
        counts = self.rungs.setdefault(gen, {})
        counts[record.rung] = counts.get(record.rung, 0) + 1
        if record.rung > 0:
            self.above[gen] = self.above.get(gen, 0.0) + record.seconds
        if self.bar is not None:
            self.bar.update(1, record)

    def promotion(self, generation, rung, candidates, promoted, to_train):
        self.announce()
        if self.bar is not None:  # the bar grows by the promoted trainings, and says which rung it is at
            self.bar.length += to_train
            self.bar.finished = self.bar.pos >= self.bar.length  # click's flag, set once pos reached it
            if to_train:
                self.bar.label = f"gen {generation + 1}/{self.generations} rung {rung}"
        else:
            self._open_bar(to_train)
        if not self.show_bar and candidates:  # no candidates: every genome of the generation was cached
            reused = f" ({promoted - to_train} trained before)" if promoted > to_train else ""
            self._echo(f"  rung {rung}: {promoted} of {candidates} promoted{reused}", err=not self.quiet)

    def _echo(self, text: str, err: bool = False) -> None:
        click.echo(self.prefix + text, err=err)

    def announce(self) -> None:
        """Print the header, once."""
        if self.header is not None:
            click.echo(self.header)
            self.header = None

    def population_rungs(self, below_top):
        self.below_top = below_top

    def close(self) -> None:
        """End the generation's bar (click hides the terminal's cursor while one is open)."""
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None

    def generation_done(self, row):
        self.announce()
        self.close()
        self.hv = row["hypervolume"]
        self.seconds[row["generation"]] = row["seconds"]
        if "search_seconds" in row:
            self.run_seconds = (row["search_seconds"], row["longest_seconds"])
        left = self.generations - row["generation"] - 1
        self._echo(
            f"gen {row['generation'] + 1:>2}/{self.generations}  HV {row['hypervolume']:.4f}"
            f"{all_time_hv(row)}  "
            f"front {row['front_size']}  best loss {row['best_rec_loss']:.4f}  "
            f"min LOC {row['min_loc']:.3f}  trained {row['trained']}  cached {row['cache_hits']}  "
            f"{row['seconds']:.1f}s" + (f"  {estimate}" if left > 0 and (estimate := self.time_left(left)) else "")
        )

    def time_left(self, generations_left: int) -> str:
        """About how long the rest takes, by the generations that trained something in this command
        ("" before one has: a resume's first generations may only read the journal)."""
        seconds = {g: v for g, v in self.seconds.items() if g in self.work}
        if not seconds:
            return ""
        top = max((rung for counts in self.rungs.values() for rung in counts), default=0)
        reached = {g: counts.get(top, 0) for g, counts in self.rungs.items()} if top > 0 else {}
        extra = last_generation_extra(seconds, self.work, self.above, reached, self.below_top)
        used, longest = self.run_seconds or (None, None)
        return time_left(seconds, generations_left, extra, self.max_minutes, used, longest)

    def message(self, text):
        self.announce()
        self._echo(text)


def _dry_run(configs) -> None:
    """Print each seed's run folder and the settings as TOML; check the data when it is here (a dry
    run downloads nothing: its settings may be meant for another machine's data)."""
    from moncae.config import settings_toml
    from moncae.data import DATASET_NAMES, dataset_status
    from moncae.data.locate import user_data_dir
    from moncae.errors import DataError, RunFolderError
    from moncae.search.loop import lengthening_refused, search_data, settings_differ
    from moncae.store.run_folder import RunFolder

    user_data_dir(configs[0].data_dir)  # a data folder that is not there: refused, as the search refuses it
    status = dataset_status(configs[0].dataset, data_dir=configs[0].data_dir)
    if not status.available and status.name not in DATASET_NAMES:
        raise DataError(status.reason)  # an unknown name or a missing .npz: nothing to download
    # the same settings but the seed: a warning is said once
    datas = [search_data(config, warn=i == 0) if status.available else None for i, config in enumerate(configs)]
    for config, data in zip(configs, datas):
        state = "new"
        if config.run_dir.exists():
            run = RunFolder(config.run_dir)
            differ = settings_differ(run, config)
            if data is not None and run.config.exists():  # --resume checks the data too
                try:
                    run.check_data(data)
                except RunFolderError as err:
                    differ = [*(differ or []), f"data ({err})"]
            why = lengthening_refused(run, config) if differ == ["generations"] else None
            state = ("exists: --resume continues it" if not differ else
                     f"exists: --resume continues it to {config.generations} generations"
                     if differ == ["generations"] and not why else
                     f"exists with other {', '.join(differ)}: --resume would refuse these settings"
                     + (f" ({why})" if why else "") + "; use the run's own, or another --out")
        click.echo(f"# search {config.dataset} seed {config.seed} -> {config.run_dir} ({state})")
    if not status.available:
        click.echo(f"# data: {configs[0].dataset} is not here without a download, so the sizes are not "
                   "checked (`moncae datasets` says where it looked)")
    if len(configs) > 1:
        click.echo(f"# the settings below hold seed {configs[0].seed}: `--config` reads them back for that "
                   "seed; pass --seed for the others")
    click.echo(settings_toml(configs[0]), nl=False)


@click.command("search")
@click.option("--dataset", default=None,
              help="mnist, fashion_mnist, cifar10, mnist_5k, or a .npz path (required unless the "
                   "--config file sets `dataset`).")
@click.option("--seed", type=SeedParam(), default=None,
              help="Seed(s): N, N,M,... or 'paper' (10 seeds); required unless the --config file sets `seed`.")
@click.option("--preset", default=None, metavar="NAME",
              help="Settings preset shipped with moncae: smoke, quick, cpu or paper (default: the "
                   "--config file's `preset`, if it sets one).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="TOML file with settings (SearchConfig field names): over the preset's; flags override it.")
@click.option("--generations", type=int, default=None)
@click.option("--max-minutes", type=float, default=None, metavar="MIN",
              help="A time budget for the search (0: none, the default): once another generation as "
                   "long as the longest so far would not fit, the next one is the last.")
@click.option("--population", type=int, default=None)
@click.option("--epochs", type=int, default=None, help="Max training epochs per individual.")
@click.option("--batch-size", type=int, default=None)
@click.option("--train-size", type=int, default=None, help="Cap on training images.")
@click.option("--val-size", type=int, default=None, help="Validation images (carved from training).")
@click.option("--test-size", type=int, default=None,
              help="Test images (a seeded sample of the test split; default: all, or the preset's).")
@click.option("--loss", type=click.Choice([*LOSSES, *VAE_LOSSES]), default=None,
              help="bce|mse for --model ae (default bce); elbo|reformulated for --model vae.")
@click.option("--model", type=click.Choice(list(MODELS)), default=None,
              help="ae: autoencoders (default); vae: variational autoencoders (needs --loss elbo|reformulated).")
@click.option("--vae-eps", type=float, default=None,
              help="The reformulated VAE loss's eps (default 0.01, as in the thesis).")
@click.option("--strategy", type=click.Choice(STRATEGY_NAMES), default=None,
              help="Search strategy (default moncae, the paper's GA); compare them with `moncae report`.")
@click.option("--selection", type=click.Choice(sorted(SELECTORS)), default=None,
              help="Parent selection of the moncae strategy (default paper).")
@click.option("--fitness", type=click.Choice(FITNESS_RULES), default=None,
              help="What a network's exclusive hypervolume contribution (fitness, elite, promotion) "
                   "is measured against: paper (default): the whole population, so a dominated "
                   "network shrinks the one dominating it; front: the population's non-dominated front.")
@click.option("--space", type=click.Choice(list(SPACES)), default=None,
              help="Search space: paper (the paper's genome) or dense (+ a dense-bottleneck gene).")
@click.option("--downsample", type=click.Choice(DOWNSAMPLINGS), default=None,
              help="How a block with the pool gene halves its map: pool (default, the paper: "
                   "MaxPool 2x2 after its conv) or strided (its conv with strides 2).")
@click.option("--fidelity", type=click.Choice(FIDELITIES), default=None,
              help="full: every genome trains once at the full budget; rungs: successive halving "
                   "over the `rungs` setting (a preset or --config file sets it); proxy: the same, "
                   "the lower rungs training only the decoder with the random encoder frozen.")
@click.option("--promote", type=float, default=None,
              help="With --fidelity rungs: at most this fraction of a rung's genomes goes on (default 0.34).")
@click.option("--promote-multiple", type=int, default=None, metavar="N",
              help="With --fidelity rungs: round the number promoted at a rung up to a multiple of N "
                   "by the next-ranked genomes (default 1; N = trainings at once: none idles).")
@click.option("--promotion", type=click.Choice(PROMOTIONS), default=None,
              help="With --fidelity rungs: fraction (default): the best --promote fraction goes on; "
                   "front: of those, only genomes that enter or extend the all-time front at their "
                   "rung; population: only those that enter or extend this generation's front there.")
@click.option("--first-generation", type=click.Choice(FIRST_GENERATIONS), default=None,
              help="With --fidelity rungs: rungs (default): the first generation is promoted like "
                   "the others; full: every genome of it goes on to the full budget.")
@click.option("--first-population", type=int, default=None, metavar="N",
              help="Generation 0's size (default: --population): a wider random start; with "
                   "--fidelity rungs each extra genome costs one rung-0 training.")
@click.option("--initial", type=click.Choice(INITIALS), default=None,
              help="Generation 0: random (default, the paper) or spread (--space dense: every dense "
                   "bottleneck size present, dealt out over the random genomes).")
@click.option("--latents", type=click.Choice(LATENTS), default=None,
              help="Later generations' children: inherited (default, the paper): latent genes by "
                   "crossover and mutation; spread (--space dense; moncae, nsga2, mu-plus-lambda): "
                   "dealt out over every latent gene, the conv bottleneck included.")
@click.option("--inherit/--no-inherit", default=None,
              help="Weight inheritance: a crossover child starts from its parents' trained weights "
                   "where layers match (default off).")
@click.option("--final", type=click.Choice(FINALS), default=None,
              help="The models the search ends with: the strategy's final population (default, the "
                   "paper) or the all-time Pareto front (at most --population networks, by LOC).")
@click.option("--objectives", default=None, metavar="rec_loss,loc[,params][,flops][,latency]",
              help="What is minimised (default rec_loss,loc, the paper's two). params: log10 of the "
                   "parameter count; flops: log10 of one image's forward-pass FLOPs; latency: median "
                   "ms per image at batch 1 (measured).")
@click.option("--ref", default=None, metavar="LOSS,LOC[,...]",
              help="Reference point of the hypervolume, one value per objective (default 4,12 "
                   "and 8, 12, 1000 for params, flops, latency): a tighter point focuses the search "
                   "on that corner of the front.")
@click.option("--out", default=None, help="Results folder (default: results).")
@data_dir_option
@click.option("--executor", type=click.Choice(["local", "dask"]), default=None)
@click.option("--workers", default=None, metavar="auto|N",
              help="local: trainings at once, each in its own process (default auto: 2 on a CPU-only "
                   "machine with >= 2 cores, else 1, in a worker process; an explicit 1: in this "
                   "process); dask: start a LocalCluster of N workers.")
@click.option("--seeds-at-once", default="auto", metavar="N|auto", show_default=True,
              help="With several seeds: run N of them side by side, each with its share of the --workers "
                   "(at most one seed per worker), every training with the threads --workers gives it, so "
                   "each run folder is the one it gets alone, sooner in all (one seed's rung ends are "
                   "another's trainings); a line per generation, each seed's lines marked. auto: up to one "
                   "seed per worker process of the local executor (as many as share them out evenly), "
                   "unless --max-minutes is set; 1: one after another, with progress bars.")
@click.option("--models-per-gpu", type=int, default=None,
              help="Dask LocalCluster on GPUs: workers (models trained at once) per GPU (default 1).")
@click.option("--scheduler", default=None, help="Dask: scheduler address, e.g. tcp://host:8786.")
@click.option("--resume", is_flag=True,
              help="Continue a run from its checkpoint: an interrupted one, or (with a larger --generations) "
                   "a finished one.")
@click.option("--quiet", is_flag=True, help="No progress bars, one line per generation.")
@click.option("--dry-run", is_flag=True,
              help="Print the settings these options resolve to, as TOML that --config reads back, "
                   "and each seed's run folder; train and write nothing.")
def command(dataset, seed, preset, config_file, resume, quiet, ref, dry_run, seeds_at_once, **flags):
    """Run the MONCAE neuroevolution for one seed (or several: one after another, or side by side)."""
    from moncae.config import parse_ref, read_toml, resolve_config, without_effect
    from moncae.store.run_folder import RunFolder

    flags["ref_point"] = parse_ref(ref)
    from_file = read_toml(config_file) if config_file else {}
    if "data_dir" in from_file and click.get_current_context().get_parameter_source(
            "data_dir") is click.core.ParameterSource.ENVIRONMENT:
        flags["data_dir"] = None  # $MONCAE_DATA_DIR gives way to the file's data_dir: flags > file > it
    for name, value, flag, line in (("dataset", dataset, "mnist_5k", '"mnist_5k"'), ("seed", seed, "46", "46")):
        if value is None and name not in from_file:
            raise MoncaeError(f"Missing option '--{name}': pass --{name} (e.g. --{name} {flag}), or set "
                              f"{name} = {line} in a --config file")
    # seed None: the file's (flags override it, preset < file < flags)
    def resolve(s):
        return resolve_config(preset=preset, config_file=config_file, dataset=dataset, seed=s, **flags)

    seeds = list(seed or (None,))
    configs = [resolve(seeds[0])]
    with warnings.catch_warnings():  # the same settings but the seed: the first said it
        warnings.simplefilter("ignore", MoncaeWarning)
        configs += [resolve(s) for s in seeds[1:]]
    for line in without_effect(configs[0], [name for name, value in flags.items() if value is not None]):
        warnings.warn(MoncaeWarning(line), stacklevel=1)
    for config in configs:  # what the search checks before it writes: said by a dry run too
        RunFolder(config.run_dir).check_writable()
    from moncae.search.side_by_side import resolve_at_once

    at_once = resolve_at_once(seeds_at_once, configs)
    if not dry_run:  # every seed's folder before the first seed trains
        from moncae.search.loop import check_not_overwritten

        for config in configs:
            check_not_overwritten(RunFolder(config.run_dir), resume)
    from moncae.data.core import SIZE_ORIGIN, SizeTooLarge

    try:
        if dry_run:
            return _dry_run(configs)
        from moncae.search.loop import search_data

        for config in configs:  # a data problem is said before any run is announced (the search reuses the data)
            search_data(config, warn=False)  # what it has to say, the search says
        if at_once > 1:
            _side_by_side(configs, resume, quiet, at_once)
        else:
            _search(configs, resume, quiet)
    except SizeTooLarge as err:  # a size the data cannot hold: say where its value came from
        origin = _origin(err.setting, preset, from_file, config_file, flags)
        raise DataError(str(err).replace(SIZE_ORIGIN, f"({origin})")) from None


def _origin(name: str, preset, from_file, config_file, flags) -> str:
    """Where setting `name`'s value came from: a flag, the --config file, the preset (the flag's
    or the file's) or the default."""
    from moncae.config import load_preset

    preset = preset if preset is not None else from_file.get("preset")
    if flags.get(name) is not None:
        return f"from --{name.replace('_', '-')}"
    if name in from_file:
        return f"from the --config file {config_file}"
    if preset is not None and name in load_preset(preset):
        return f"preset {preset}'s value"
    return "the default"


def _seed_progress(quiet: bool, config, i: int, n: int) -> BarProgress:
    """A seed's progress in its own driver process (`--seeds-at-once`): lines, each marked."""
    return BarProgress(quiet, header=f"search {config.dataset} seed {config.seed} ({i + 1} of {n}) -> "
                       f"{config.run_dir}", max_minutes=config.max_minutes, bar=False,
                       prefix=f"[seed {config.seed}] ")


# a search's final models that failed for a passing reason: what they are, how to train them again, a fix
UNSAVED = ("final model(s)", "with --resume to train them again", "e.g. free memory, or fewer --workers")


def _done_text(ok: int, finals: int, saved: int, run_dir) -> str:
    return f"done: {ok}/{finals} final models trained, {saved} with their model on disk; results in {run_dir}"


def _all_failed_text(errors, run_dir) -> str:
    """Every final model's training failed: say why, not "done"."""
    first = errors[0] if errors else "none recorded"
    return (f"every final model's training failed ({len(errors)} distinct error(s); the first: {first}); see "
            f"the `error` column of {run_dir / 'evaluations.csv'}")


def _side_by_side(configs, resume, quiet, at_once) -> None:
    """`--seeds-at-once N`: the seeds' searches N at a time (`moncae.search.side_by_side`); each
    seed's end is said as it comes, the failures again at the end (exit 2 for a refusal, 1 for a
    passing cause), with what to run next."""
    import functools

    from moncae.cli.main import say_warnings_in_one_line
    from moncae.executors import resolve_workers
    from moncae.search.side_by_side import run_side_by_side, slot_plan

    workers = resolve_workers(configs[0].workers)
    per_seed, threads = slot_plan(workers, at_once)
    click.echo(f"{len(configs)} seeds, {at_once} at a time, each with {per_seed} worker process(es) of "
               f"{threads} TensorFlow thread(s) (as --workers {workers} gives each training alone)")

    def said(outcome) -> None:
        if outcome.done:
            click.echo(f"[seed {outcome.seed}] "
                       + _done_text(outcome.ok, outcome.finals, outcome.models_saved, outcome.run_dir))
        else:
            click.echo(f"[seed {outcome.seed}] stopped: {outcome.failure}", err=True)

    outcomes = run_side_by_side(configs, at_once, resume=resume, progress=functools.partial(_seed_progress, quiet),
                                setup=say_warnings_in_one_line, on_outcome=said)
    failed = [o for o in outcomes if not o.done]
    unsaved = [o for o in outcomes if o.done and o.unsaved]
    empty = [o for o in outcomes if o.done and o.finals and not o.ok]
    again = "" if resume else " with --resume"
    for o in failed:
        click.echo(f"Error: seed {o.seed}: {o.failure}", err=True)
    for o in unsaved:
        click.echo(f"Error: seed {o.seed}: {unsaved_text(len(o.unsaved), o.unsaved[0], *UNSAVED)}", err=True)
    for o in empty:
        click.echo(f"Error: seed {o.seed}: {_all_failed_text(o.errors, o.run_dir)}", err=True)
    if failed or unsaved or empty:
        done = [str(o.seed) for o in outcomes if o.done and not o.unsaved]
        if done and failed:
            click.echo(f"seed(s) {', '.join(done)} of this command are done: run it again{again} once the "
                       "cause is fixed", err=True)
        sys.exit(2 if any(o.failure_kind == "input" for o in failed) else 1)


def _search(configs, resume, quiet) -> None:
    from moncae.search import default_executor, run_search

    # several seeds share one executor: its worker processes import TensorFlow once, not per seed
    executor = default_executor(configs[0]) if len(configs) > 1 else None
    try:
        for i, config in enumerate(configs, 1):
            of = f" ({i} of {len(configs)})" if len(configs) > 1 else ""
            header = f"search {config.dataset} seed {config.seed}{of} -> {config.run_dir}"
            progress = BarProgress(quiet, header=header, max_minutes=config.max_minutes)
            try:
                result = run_search(config, resume=resume, progress=progress, executor=executor)
            except MoncaeError as err:  # e.g. a seed's folder in use: the seeds done so far are not lost
                if i == 1 or resume:
                    raise
                done = ", ".join(str(c.seed) for c in configs[:i - 1])
                raise MoncaeError(f"{err} (seed(s) {done} of this command are done: add --resume when you run "
                                  "it again)") from None
            finally:  # a stop (Ctrl-C) or an error mid-generation: the bar gives the terminal's cursor back
                progress.close()
            progress.announce()
            ok = sum(r.ok for r in result.records)
            click.echo(_done_text(ok, len(result.records), result.models_saved, result.run_dir))
            # a model that could not be saved stops the search (StoppedOnIO); what is left is memory
            # or a worker that kept dying
            exit_if_unsaved(result.unsaved, *UNSAVED)
            if result.records and not ok:  # nothing worth finding: say why, not "done"
                errors = sorted({r.error for r in result.records if r.error})
                click.echo(f"Error: {_all_failed_text(errors, result.run_dir)}", err=True)
                sys.exit(1)
    finally:
        if executor is not None:
            executor.close()
