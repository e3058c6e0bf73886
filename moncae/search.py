"""`run_search`: the MONCAE generational loop (Python API; the CLI is a thin layer over it).

Generation 0 is random; each next generation keeps the elite unchanged and fills the rest with
children of parents chosen by the named selection strategy (single-point crossover, then
mutation). Fitness is each individual's exclusive hypervolume contribution over
(reconstruction loss, level of compression).
"""

from __future__ import annotations

import platform
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from deap import base, creator, tools

from moncae.config import SearchConfig
from moncae.errors import RunFolderError
from moncae.evaluate import (
    DataSpec,
    EvalRecord,
    EvalTask,
    TrainSettings,
    cached_dataset,
    evaluation_seed,
    run_task,
)
from moncae.executors import Executor, make_executor
from moncae.genome import Genome, GenomeSpace, crossover, mutate, random_genome
from moncae.objectives import hv_contributions, hypervolume, non_dominated_mask
from moncae.runstore import Checkpoint, RunFolder
from moncae.selection import SELECTORS, elite_indices

if not hasattr(creator, "MoncaeFitness"):  # DEAP classes are global: create them once
    creator.create("MoncaeFitness", base.Fitness, weights=(-1.0, -1.0))
    creator.create("MoncaeIndividual", list, fitness=creator.MoncaeFitness, key=str)


class SearchProgress:
    """Hooks the search calls as it goes; every hook does nothing by default (like Keras callbacks)."""

    def generation_started(self, generation: int, generations: int, to_train: int,
                           cache_hits: int) -> None:
        pass

    def evaluation_done(self, record: EvalRecord) -> None:
        pass

    def generation_done(self, row: dict[str, Any]) -> None:
        pass

    def message(self, text: str) -> None:
        pass


@dataclass
class RunResult:
    run_dir: Path
    config: SearchConfig
    population: list[Genome]
    records: list[EvalRecord]
    fitness: list[float]
    hypervolumes: list[float] = field(default_factory=list)
    logbook: Any = None
    resumed_from: int | None = None


def genome_space(config: SearchConfig) -> GenomeSpace:
    return GenomeSpace(max_blocks=config.max_blocks, max_filters=config.max_filters,
                       optimizers=tuple(config.optimizers))


def data_spec(config: SearchConfig) -> DataSpec:
    return DataSpec(config.dataset, config.data_dir, config.train_size, config.val_size,
                    config.test_size, config.split_seed)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("moncae", "tensorflow", "keras", "deap", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def make_toolbox(space: GenomeSpace, config: SearchConfig) -> base.Toolbox:
    """DEAP toolbox: the variation operators and the named selection strategy."""
    toolbox = base.Toolbox()
    toolbox.register("individual", random_genome, space)
    toolbox.register("mate", crossover)
    toolbox.register("mutate", mutate, space=space)
    toolbox.register("select", SELECTORS[config.selection])
    return toolbox


def breed(population: list[Genome], fitness: list[float], losses: list[float], generation: int,
          rng: random.Random, toolbox: base.Toolbox, elitism: float) -> list[Genome]:
    """Next generation: the elite unchanged, then crossover+mutation children of selected parents."""
    n = len(population)
    n_elite = max(1, round(elitism * n)) if elitism > 0 else 0
    nextgen = [population[i] for i in elite_indices(fitness, losses, n_elite)]
    while len(nextgen) < n:
        i, j = toolbox.select(fitness, 2, rng)
        child, _ = toolbox.mate(population[i], population[j], rng)
        nextgen.append(toolbox.mutate(child, rng=rng, generation=generation))
    return nextgen


def _same_key(a, b) -> bool:
    """Hall-of-fame identity: two individuals that build the same network are one."""
    return a.key == b.key


def _to_individual(genome: Genome, record: EvalRecord):
    ind = creator.MoncaeIndividual(genome.genes)
    ind.key = record.genome_key
    ind.fitness.values = (record.rec_loss, record.loc)
    return ind


def _start_or_resume(run: RunFolder, config: SearchConfig, resume: bool) -> Checkpoint | None:
    """Create the run folder, or check it can be resumed with these settings."""
    if run.has_results() and not resume:
        raise RunFolderError(
            f"run folder {run.path} already has results; pass --resume to continue it, or --out "
            "to write somewhere else"
        )
    if resume and run.config.exists():
        previous = run.read_config().get("settings", {})
        current = config.results_settings()
        differ = sorted(k for k in current if previous.get(k) != current[k])
        if differ:
            details = ", ".join(f"{k}: {previous.get(k)!r} -> {current[k]!r}" for k in differ)
            raise RunFolderError(
                f"cannot resume {run.path} with different settings ({details}); use the run's "
                "own settings or another --out"
            )
        return run.load_checkpoint()
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_config({
        "settings": config.results_settings(), "run": config.to_dict(), "preset": config.preset,
        "versions": package_versions(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    return None


def run_search(config: SearchConfig, *, resume: bool = False, progress: SearchProgress | None = None,
               executor: Executor | None = None, task_fn=run_task) -> RunResult:
    """Run (or resume) one seed's search and return its final population.

    `task_fn` is what each training runs (default: real Keras training); tests and benchmarks
    may pass another function with the same contract.
    """
    progress = progress or SearchProgress()
    run = RunFolder(config.run_dir)
    run.check_writable()
    spec = data_spec(config)
    data = cached_dataset(spec)  # fails here (nothing written) if the data is unusable
    space = genome_space(config)
    toolbox = make_toolbox(space, config)
    settings = TrainSettings(config.epochs, config.batch_size, config.loss, config.patience)
    gene_columns = space.gene_names()
    shape = data.input_shape

    own_executor = executor is None  # built before the run folder: a bad --scheduler writes nothing
    executor = executor or make_executor(config.executor, workers=config.workers,
                                         scheduler=config.scheduler)
    try:
        state = _start_or_resume(run, config, resume)
    except BaseException:
        if own_executor:
            executor.close()
        raise
    cache = run.read_evaluations()
    if state is None:
        rng = random.Random(config.seed)
        population = [toolbox.individual(rng) for _ in range(config.population)]
        first, logbook, hof = 0, tools.Logbook(), tools.ParetoFront(similar=_same_key)
        run.drop_generations_after(-1)
    else:
        rng = random.Random()
        rng.setstate(state.rng_state)
        population = [Genome.from_config(c) for c in state.population]
        first, logbook, hof = state.generation + 1, state.logbook, state.halloffame
        run.drop_generations_after(state.generation)
        if state.finished:
            progress.message(f"{run.path} is already complete ({config.generations} generations)")
        else:
            progress.message(f"resuming {run.path} after generation {state.generation} "
                             f"({len(cache)} trainings reused)")
    logbook.header = ["gen", "hypervolume", "front_size", "best_rec_loss", "min_loc", "trained",
                      "cache_hits"]

    records: list[EvalRecord] = []
    fitness: list[float] = []
    try:
        for gen in range(first, config.generations):
            started = time.perf_counter()
            keys = [g.key_for(shape) for g in population]
            pending = {k: g for k, g in zip(keys, population) if k not in cache}
            progress.generation_started(gen, config.generations, len(pending),
                                        len(population) - len(pending))
            tasks = [EvalTask(g, spec, settings, evaluation_seed(config.seed, k), config.ref_point, key=k)
                     for k, g in pending.items()]
            for result in executor.map_ordered(task_fn, tasks):
                rec = result.record
                rec.generation = gen
                if result.model_bytes:
                    run.save_model_bytes(rec.genome_key, result.model_bytes)  # before the journal row
                run.append_evaluation(rec, gene_columns, pending[rec.genome_key].genes)
                cache[rec.genome_key] = rec
                progress.evaluation_done(rec)

            records = [cache[k] for k in keys]
            points = np.array([(r.rec_loss, r.loc) for r in records], dtype=float)
            fitness = [float(f) for f in hv_contributions(points, config.ref_point)]
            seen: set[str] = set()
            cached = []
            for k in keys:  # trained this generation = first occurrence of a key journaled now
                cached.append(k in seen or cache[k].generation != gen)
                seen.add(k)
            run.append_population(
                {"generation": gen, "individual": i, "genome_key": k, "rec_loss": r.rec_loss,
                 "loc": r.loc, "fitness": f, "cached": c}
                for i, (k, r, f, c) in enumerate(zip(keys, records, fitness, cached))
            )
            ok = [r for r in records if r.ok]
            row = {
                "generation": gen, "hypervolume": hypervolume(points, config.ref_point),
                "front_size": int(non_dominated_mask(points[[r.ok for r in records]]).sum()) if ok else 0,
                "best_rec_loss": min((r.rec_loss for r in ok), default=float("nan")),
                "min_loc": min((r.loc for r in ok), default=float("nan")),
                "trained": cached.count(False), "cache_hits": cached.count(True),
                "seconds": round(time.perf_counter() - started, 3),
            }
            run.append_generation(row)
            logbook.record(gen=gen, **{k: v for k, v in row.items() if k not in ("generation", "seconds")})
            hof.update([_to_individual(g, r) for g, r in zip(population, records) if r.ok])
            progress.generation_done(row)

            last = gen == config.generations - 1
            if not last:
                population = breed(population, fitness, [r.rec_loss for r in records], gen + 1, rng,
                                   toolbox, config.elitism)
            run.save_checkpoint(Checkpoint(gen, [g.to_config() for g in population], rng.getstate(),
                                           logbook, hof, finished=last))
    finally:
        if own_executor:
            executor.close()

    if not records:  # resumed a finished run: rebuild the final generation's view from disk
        records = [cache[g.key_for(shape)] for g in population]
        points = np.array([(r.rec_loss, r.loc) for r in records], dtype=float)
        fitness = [float(f) for f in hv_contributions(points, config.ref_point)]
    run.write_model_index([r.genome_key for r in records], [r.status for r in records])
    run.write_front([{"genome_key": ind.key, "architecture": cache[ind.key].architecture,
                      "rec_loss": ind.fitness.values[0], "loc": ind.fitness.values[1],
                      "generation": cache[ind.key].generation} for ind in hof])
    hvs = [row["hypervolume"] for row in logbook]
    return RunResult(run.path, config, population, records, fitness, hvs, logbook,
                     resumed_from=None if state is None else state.generation)
