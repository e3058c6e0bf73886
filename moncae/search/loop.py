"""`run_search`: the MONCAE generational loop (Python API; the CLI is a thin layer over it).

Generation 0 is random; each next generation keeps the elite unchanged and fills the rest with
children of parents chosen by the named selection strategy (single-point crossover, then
mutation). Fitness is each individual's exclusive hypervolume contribution over
(reconstruction loss, level of compression).

The loop itself needs no TensorFlow: what a training does is `task_fn` (default: the real Keras
training, `moncae.evaluation.train.run_task`, imported only then), so tests and benchmarks run
the loop with a stub.
"""

from __future__ import annotations

import platform
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from deap import tools

from moncae.config import SearchConfig
from moncae.data import cached_dataset
from moncae.errors import RunFolderError
from moncae.evaluation.records import EvalRecord, EvalResult, EvalTask, TrainSettings, evaluation_seed
from moncae.executors import Executor, make_executor
from moncae.method.evolution import breed, make_toolbox, pareto_individual, same_key
from moncae.method.genome import Genome
from moncae.method.objectives import hv_contributions, hypervolume, non_dominated_mask
from moncae.store import Checkpoint, RunFolder

__all__ = ["RunResult", "SearchProgress", "package_versions", "run_search"]

TaskFn = Callable[[EvalTask], EvalResult]
LOGBOOK_HEADER = ["gen", "hypervolume", "front_size", "best_rec_loss", "min_loc", "trained",
                  "cache_hits"]


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


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("moncae", "tensorflow", "keras", "deap", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _start_or_resume(run: RunFolder, config: SearchConfig, resume: bool) -> Checkpoint | None:
    """Create the run folder, or check it can be resumed with these settings."""
    if run.has_results() and not resume:
        raise RunFolderError(
            f"run folder {run.path} already has results; pass --resume to continue it, or --out "
            "to write somewhere else"
        )
    if resume and run.config.exists():
        # a setting newer than the run folder is absent there: the run had its default
        previous = {**SearchConfig().results_settings(), **run.read_config().get("settings", {})}
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


@dataclass
class _State:
    """What the loop carries from one generation to the next."""

    population: list[Genome]
    rng: random.Random
    first: int  # the next generation to run
    logbook: Any
    hof: Any


def _initial_state(config: SearchConfig, toolbox, run: RunFolder, checkpoint: Checkpoint | None,
                   cache: dict[str, EvalRecord], progress: SearchProgress) -> _State:
    if checkpoint is None:
        rng = random.Random(config.seed)
        population = [toolbox.individual(rng) for _ in range(config.population)]
        run.drop_generations_after(-1)
        state = _State(population, rng, 0, tools.Logbook(), tools.ParetoFront(similar=same_key))
    else:
        rng = random.Random()
        rng.setstate(checkpoint.rng_state)
        population = [Genome.from_config(c) for c in checkpoint.population]
        run.drop_generations_after(checkpoint.generation)
        state = _State(population, rng, checkpoint.generation + 1, checkpoint.logbook,
                       checkpoint.halloffame)
        if checkpoint.finished:
            progress.message(f"{run.path} is already complete ({config.generations} generations)")
        else:
            progress.message(f"resuming {run.path} after generation {checkpoint.generation} "
                             f"({len(cache)} trainings reused)")
    state.logbook.header = LOGBOOK_HEADER
    return state


def _fitness(records: list[EvalRecord], ref_point) -> tuple[np.ndarray, list[float]]:
    points = np.array([(r.rec_loss, r.loc) for r in records], dtype=float)
    return points, [float(f) for f in hv_contributions(points, ref_point)]


def _train_pending(gen: int, keys: list[str], population: list[Genome], config: SearchConfig,
                   settings: TrainSettings, run: RunFolder, cache: dict[str, EvalRecord],
                   executor: Executor, task_fn: TaskFn, gene_columns: list[str],
                   progress: SearchProgress) -> None:
    """Train every genome of the generation whose key the cache lacks; journal each result."""
    pending = {k: g for k, g in zip(keys, population) if k not in cache}
    progress.generation_started(gen, config.generations, len(pending), len(population) - len(pending))
    spec = config.data_spec()
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


def _record_generation(gen: int, keys: list[str], records: list[EvalRecord], points: np.ndarray,
                       fitness: list[float], cache: dict[str, EvalRecord], run: RunFolder,
                       config: SearchConfig, seconds: float) -> dict[str, Any]:
    """Append the generation's population rows and its summary row; return the summary."""
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
        "seconds": round(seconds, 3),
    }
    run.append_generation(row)
    return row


def run_search(config: SearchConfig, *, resume: bool = False, progress: SearchProgress | None = None,
               executor: Executor | None = None, task_fn: TaskFn | None = None) -> RunResult:
    """Run (or resume) one seed's search and return its final population.

    `task_fn` is what each training runs (default: real Keras training); tests and benchmarks
    may pass another function with the same contract (an `EvalTask` in, an `EvalResult` out).
    """
    progress = progress or SearchProgress()
    run = RunFolder(config.run_dir)
    run.check_writable()
    data = cached_dataset(config.data_spec())  # fails here (nothing written) if the data is unusable
    space = config.genome_space()
    toolbox = make_toolbox(space, config.selection)
    settings = TrainSettings(config.epochs, config.batch_size, config.loss, config.patience)
    gene_columns = space.gene_names()
    shape = data.input_shape

    own_executor = executor is None  # built before the run folder: a bad --scheduler writes nothing
    executor = executor or make_executor(config.executor, workers=config.workers,
                                         scheduler=config.scheduler)
    try:
        checkpoint = _start_or_resume(run, config, resume)
        if task_fn is None:  # real training: TensorFlow loads here, after every check passed
            from moncae.evaluation.train import run_task as task_fn
        cache = run.read_evaluations()
        state = _initial_state(config, toolbox, run, checkpoint, cache, progress)
        population = state.population
        records: list[EvalRecord] = []
        fitness: list[float] = []
        for gen in range(state.first, config.generations):
            started = time.perf_counter()
            keys = [g.key_for(shape) for g in population]
            _train_pending(gen, keys, population, config, settings, run, cache, executor, task_fn,
                           gene_columns, progress)
            records = [cache[k] for k in keys]
            points, fitness = _fitness(records, config.ref_point)
            row = _record_generation(gen, keys, records, points, fitness, cache, run, config,
                                     time.perf_counter() - started)
            state.logbook.record(gen=gen, **{k: v for k, v in row.items()
                                            if k not in ("generation", "seconds")})
            state.hof.update([pareto_individual(g.genes, r.genome_key, (r.rec_loss, r.loc))
                              for g, r in zip(population, records) if r.ok])
            progress.generation_done(row)

            last = gen == config.generations - 1
            if not last:
                population = breed(population, fitness, [r.rec_loss for r in records], gen + 1,
                                   state.rng, toolbox, config.elitism)
            run.save_checkpoint(Checkpoint(gen, [g.to_config() for g in population],
                                           state.rng.getstate(), state.logbook, state.hof,
                                           finished=last))
    finally:
        if own_executor:
            executor.close()

    if not records:  # resumed a finished run: rebuild the final generation's view from disk
        records = [cache[g.key_for(shape)] for g in population]
        _, fitness = _fitness(records, config.ref_point)
    run.write_model_index([r.genome_key for r in records], [r.status for r in records])
    run.write_front([{"genome_key": ind.key, "architecture": cache[ind.key].architecture,
                      "rec_loss": ind.fitness.values[0], "loc": ind.fitness.values[1],
                      "generation": cache[ind.key].generation} for ind in state.hof])
    hvs = [row["hypervolume"] for row in state.logbook]
    return RunResult(run.path, config, population, records, fitness, hvs, state.logbook,
                     resumed_from=None if checkpoint is None else checkpoint.generation)
