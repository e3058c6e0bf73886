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

import logging
import math
import pickle
import platform
import random
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from deap import tools

from moncae.config import ABSENT_IN_OLD_RUNS, FLAG_SETTINGS, WORKERS_AUTO, SearchConfig, dataset_setting, toml_line
from moncae.data import Dataset, cached_dataset
from moncae.errors import MoncaeError, MoncaeWarning, RunFolderError, RunFolderWarning, one_line
from moncae.evaluation.records import (
    VAE_COLUMNS,
    EvalRecord,
    EvalResult,
    EvalTask,
    TrainSettings,
    evaluation_seed,
)
from moncae.executors import (
    Executor,
    LocalExecutor,
    execution_notices,
    execution_record,
    make_executor,
    with_later_execution,
)
from moncae.method.architecture import forward_flops
from moncae.method.evolution import pareto_individual, same_key
from moncae.method.fidelity import Rung, promoted
from moncae.method.genome import Genome
from moncae.method.objective_set import ObjectiveSet
from moncae.method.objectives import hypervolume, non_dominated_mask, unique_contributions
from moncae.search.strategies import Generation, Strategy, make_strategy
from moncae.search.time_budget import budget_ends, used_minutes
from moncae.search.trainings import Trainings
from moncae.store import Checkpoint, RunFolder, RunLock, data_record, lock_holder

__all__ = ["RunResult", "SearchProgress", "StoppedOnIO", "check_rungs", "default_executor", "search_data",
           "package_versions", "run_search"]

TaskFn = Callable[[EvalTask], EvalResult]
LOG = logging.getLogger("moncae")
LOGBOOK_HEADER = ["gen", "hypervolume", "front_size", "best_rec_loss", "min_loc", "trained",
                  "cache_hits", "trainings_total", "front_hypervolume", "image_epochs_total", "seconds"]


class SearchProgress:
    """Hooks the search calls as it goes; every hook but `message` does nothing by default (like
    Keras callbacks); `message` logs its line at INFO to the `moncae` logger."""

    def generation_started(self, generation: int, generations: int, to_train: int,
                           cache_hits: int) -> None:
        pass

    def evaluation_done(self, record: EvalRecord) -> None:
        pass

    def promotion(self, generation: int, rung: int, candidates: int, promoted: int, to_train: int) -> None:
        """After rung `rung - 1`: `promoted` of `candidates` genomes go on to `rung`, of which
        `to_train` train there now (the others' trainings are in the journal: a resume's replay)."""

    def population_rungs(self, below_top: int) -> None:
        """After a generation of a search with rungs, before `generation_done`: how many distinct
        genomes of its population trained ok but below the top rung (the last generation promotes
        every one of its population's)."""

    def generation_done(self, row: dict[str, Any]) -> None:
        """`row`: the generation's `generations.csv` row, plus `search_seconds` and `longest_seconds`
        (the run's generations so far, those of earlier commands included: what the time budget
        goes by)."""

    def message(self, text: str) -> None:
        """A notice (a resume, a retry, a settings note): logged at INFO by the `moncae` logger."""
        LOG.info(text)


_HOOKS = [name for name in vars(SearchProgress) if not name.startswith("_")]


@dataclass
class RunResult:
    """What `run_search` returns: the final population (`population`, with `records` and
    `fitness` in its order), the population's hypervolume after each generation (`hypervolumes`;
    it can fall where the population loses a front network: the all-time front's is the logbook's
    `front_hypervolume`),
    DEAP's `logbook`, the generation a resume started after (`resumed_from`) and how many of the
    final individuals have their model in `run_dir/models/` (`models_saved`)."""

    run_dir: Path
    config: SearchConfig
    population: list[Genome]
    records: list[EvalRecord]
    fitness: list[float]
    hypervolumes: list[float] = field(default_factory=list)
    logbook: Any = None
    resumed_from: int | None = None
    models_saved: int = 0  # final individuals whose trained model is on disk

    def to_frame(self):
        """The final population as a pandas DataFrame: each individual's training record (the
        columns of `evaluations.csv` but the genes, `kl` included) and its `fitness`, in
        population order."""
        import pandas as pd

        return pd.DataFrame([{**r.row(), "fitness": f} for r, f in zip(self.records, self.fitness)])

    @property
    def unsaved(self) -> list[EvalRecord]:
        """Final individuals whose training failed for a passing reason (out of memory, a worker
        that kept dying): the run is not complete until `--resume` trains them again."""
        return [r for r in self.records if r.transient]


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("moncae", "tensorflow", "keras", "deap", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def settings_differ(run: RunFolder, config: SearchConfig) -> list[str] | None:
    """The results settings in which `config` differs from the run folder's own (what `--resume`
    would refuse), sorted; None where the folder has no readable config.json."""
    try:
        payload = run.read_config()
    except RunFolderError:
        return None
    return _differ(_run_settings(payload), config.results_settings())


def _run_settings(payload: dict) -> dict:
    """A run's results settings from its config.json (a setting newer than the run folder is
    absent there: the run had its default, or its `ABSENT_IN_OLD_RUNS` value; a dataset file recorded
    by a relative path, before runs recorded absolute ones, is taken from the current folder, as this
    command takes it)."""
    settings = {**SearchConfig().results_settings(), **ABSENT_IN_OLD_RUNS, **payload["settings"]}
    if isinstance(settings["dataset"], str):
        settings["dataset"] = dataset_setting(settings["dataset"])
    return settings


def _differ(previous: dict, current: dict) -> list[str]:
    return sorted(k for k in set(current) | set(previous) if previous.get(k) != current.get(k))


def _check_same(run: RunFolder, what: str, previous: dict, current: dict, preset: str | None = None) -> None:
    """`preset`: the run's own preset where this command names another (or none): said first."""
    differ = _differ(previous, current)
    if differ:
        details = ", ".join(f"{k}: {previous.get(k)!r} -> {current.get(k)!r}" for k in differ)
        unflagged = [toml_line(k, previous[k]) for k in differ if k in previous and k not in FLAG_SETTINGS
                     and k not in ("dataset", "seed", "generations") and previous[k] is not None]
        if unflagged:  # settings only a --config file sets: say the lines that give the run's
            details += f"; a --config file sets the run's: {'; '.join(unflagged)}"
        if preset:
            raise RunFolderError(f"cannot resume {run.path} with different {what}: it was made with --preset "
                                 f"{preset} ({details}); pass --preset {preset} and the run's other settings "
                                 "again, or another --out")
        raise RunFolderError(f"cannot resume {run.path} with different {what} ({details}); use the "
                             "run's own settings, or another --out")


def check_not_overwritten(run: RunFolder, resume: bool, *, locked: bool = False) -> None:
    """A run folder with results is continued (`resume`), never started over. `locked`: this
    process holds its lock (else the refusal says who does, if anyone)."""
    if run.has_results() and not resume:
        holder = None if locked else lock_holder(run.path)
        busy = f" and is in use by {holder}: wait for it to finish, then" if holder else ";"
        raise RunFolderError(
            f"run folder {run.path} already has results{busy} pass --resume to continue it, or --out "
            "to write somewhere else"
        )


def _start_or_resume(run: RunFolder, config: SearchConfig, data, resume: bool, execution: dict[str, Any],
                     progress: SearchProgress) -> tuple[Checkpoint | None, int | None]:
    """Create the run folder, or check it can be resumed with these settings and this data. Returns
    the checkpoint, and the run's old number of generations where the resume changes that alone
    (a longer run: `_lengthening_refused`)."""
    check_not_overwritten(run, resume, locked=True)
    if resume and run.config.exists():
        payload = run.read_config()
        preset = payload.get("preset")
        previous = _run_settings(payload)
        lengthen = _differ(previous, config.results_settings()) == ["generations"]
        if not lengthen:
            _check_same(run, "settings", previous, config.results_settings(),
                        preset if isinstance(preset, str) and preset != config.preset else None)
        run.check_data(data, stored=payload.get("data"))
        notices = execution_notices(run.path, payload.get("execution"), execution, "this resume")
        for notice in notices:
            progress.message(notice)
        checkpoint = run.load_checkpoint()
        why = _lengthening_refused(run, config, previous["generations"], checkpoint) if lengthen else None
        if why:
            raise RunFolderError(f"cannot resume {run.path} with {config.generations} generations instead of "
                                 f"{previous['generations']}: {why}; use --generations {previous['generations']}, "
                                 f"or start a run of {config.generations} generations with another --out")
        if (recorded := with_later_execution(payload, execution, notices)) is not None:
            run.write_config(recorded)  # config.json says every way the run's trainings ran
        return checkpoint, previous["generations"] if lengthen else None
    if run.has_journals():
        raise RunFolderError(f"{run.path} has search results but no config.json, so its settings "
                             "cannot be checked; it cannot be resumed (start a new run with --out)")
    if resume:  # e.g. the seeds of a multi-seed command that had not started yet
        progress.message(f"{run.path}: no run to resume there yet; starting it")
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_config({
        "settings": config.results_settings(), "run": config.to_dict(), "preset": config.preset,
        "data": data_record(data), "execution": execution, "versions": package_versions(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    return None, None


def lengthening_refused(run: RunFolder, config: SearchConfig) -> str | None:
    """Why `--resume` would refuse to give the run in `run` (whose settings differ from `config` in
    `generations` alone) `config.generations` (None: it would not)."""
    old = _run_settings(run.read_config())["generations"]
    return _lengthening_refused(run, config, old, run.load_checkpoint())


def _lengthening_refused(run: RunFolder, config: SearchConfig, old: int,
                         checkpoint: Checkpoint | None) -> str | None:
    """Why a resume with another number of generations is refused: the run it would make would not
    be the run of that length from the start (None: it would be). An unfinished run can take any
    number above the generations it has done. A finished one can be made longer: its last
    generation (which promoted every genome and ended with the final population) runs again as an
    ordinary one, its trainings reused, where nothing else depends on the length and the models it
    no longer keeps (only its final networks') can be trained again as they were (no inheritance)."""
    new = config.generations
    # done and finished: by its checkpoint, or, where the checkpoint is gone (a replay), by its journal
    # (the generations before the latest it trained in) and its models' index
    done = len(checkpoint.logbook) if checkpoint is not None else _journal_generations(run)
    finished = checkpoint.finished if checkpoint is not None else run.model_index.exists()
    # a finished run's length: less than `old` where a lengthening stopped before its first checkpoint
    ended = done if checkpoint is not None else old
    why = None
    if config.strategy == "metaqnn":
        why = "metaqnn's exploration schedule is set by the number of generations"
    elif not finished:
        if new <= done:
            why = f"it has done {done} generation(s) already; ask for more than that"
        elif config.inherit and done >= old - 1:  # its last generation began: it promoted every genome
            why = ("its last generation had begun, whose promotions replaced models that its children "
                   "would inherit from (inherit = true)")
    elif config.max_minutes > 0:  # (which may have ended it before `old`)
        why = "its time budget (max_minutes) decided its last generation"
    elif new < ended:
        why = f"it finished after {ended} generation(s) and cannot be made shorter"
    elif new == ended:  # back to its own length: that generation's rows are the redo's now
        why = (f"it finished after {ended} generation(s), and a lengthening to {old} has begun to run its last "
               f"generation again as an ordinary one; ask for more than {ended}")
    elif config.inherit:
        why = ("its children would inherit the weights of networks whose models the finished run no "
               "longer keeps (inherit = true)")
    elif checkpoint is not None and checkpoint.last_halloffame is None:
        why = "it was finished by an older moncae, whose checkpoint lacks the front before its last generation"
    elif fine_tune := run.finetune_files():
        why = (f"its fine-tune ({', '.join(fine_tune)}) would no longer match its final models: "
               "move that away first, or lengthen a copy of the run folder")
    return why


def _journal_generations(run: RunFolder) -> int:
    """The generations a run without a checkpoint had done by its journal: those before the latest
    one it trained in (which may not have been finished)."""
    with warnings.catch_warnings():  # a torn last row: warned about where it is repaired
        warnings.simplefilter("ignore", RunFolderWarning)
        journal = run.read_evaluations()
    return max((rec.generation for records in journal.values() for rec in records), default=0)


def _lengthen(run: RunFolder, config: SearchConfig, old: int, progress: SearchProgress) -> None:
    """Record a resume's new number of generations in config.json (a finished run first loses its
    `models/index.csv`: it is unfinished again until its new last generation)."""
    run.model_index.unlink(missing_ok=True)
    payload = run.read_config()
    payload["settings"]["generations"] = payload["run"]["generations"] = config.generations
    payload.setdefault("lengthened", []).append(
        {"from": old, "to": config.generations, "at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    run.write_config(payload)
    shorter = f" (fewer than it was started with: it ends after generation {config.generations})" \
        if config.generations < old else ""
    progress.message(f"{run.path}: {old} -> {config.generations} generations{shorter}")


@dataclass
class _State:
    """What the loop carries from one generation to the next."""

    population: list[Genome]
    rng: random.Random
    first: int  # the next generation to run
    logbook: Any  # deap.tools.Logbook
    hof: Any  # deap.tools.ParetoFront of every ok network seen
    strategy: Strategy
    # a search replayed from its journal: the seconds generations.csv had for its generations
    replayed_seconds: dict[int, float] = field(default_factory=dict)
    finished: bool = False  # the checkpoint's last generation was the search's last
    lengthened: bool = False  # a run made longer once finished: models it no longer has are trained again


def _logbook(rows: list[dict[str, Any]]):
    logbook = tools.Logbook()
    for row in rows:
        logbook.record(**row)
    logbook.header = LOGBOOK_HEADER
    return logbook


def _hall_of_fame(entries: list[dict[str, Any]]):
    hof = tools.ParetoFront(similar=same_key)
    hof.update([pareto_individual(e["genes"], e["key"], tuple(e["objectives"])) for e in entries])
    return hof


def _hof_entries(hof) -> list[dict[str, Any]]:
    return [{"genes": list(ind), "key": ind.key, "objectives": list(ind.fitness.values)} for ind in hof]


def _checkpoint(gen: int, state: _State, finished: bool, last_input: tuple[list[Genome], dict],
                front_before: list[dict[str, Any]] | None, cache: Trainings) -> Checkpoint:
    return Checkpoint(
        gen, [g.to_config() for g in state.population], state.rng.getstate(),
        [dict(row) for row in state.logbook], _hof_entries(state.hof),
        finished=finished, strategy=state.strategy.state(),
        last_population=[g.to_config() for g in last_input[0]] if finished else [],
        last_strategy=last_input[1] if finished else {},
        last_halloffame=front_before if finished else None, waiting=cache.still_waiting(gen),
        restamped=cache.restamped(),
    )


def _check_front_rows(run: RunFolder, checkpoint: Checkpoint) -> None:
    """Refuse, before anything is written, a journal without a row for a network of the
    checkpoint's Pareto front: each trained ok before its checkpoint, so no crash loses its row
    (a torn last row belongs to a generation not yet checkpointed); the file was cut or edited."""
    with warnings.catch_warnings():  # a torn last row: warned about where it is repaired
        warnings.simplefilter("ignore", RunFolderWarning)
        journaled = run.read_evaluations()
    absent = [ind["key"] for ind in checkpoint.halloffame if ind["key"] not in journaled]
    if absent:
        raise RunFolderError(
            f"{run.evaluations} has no row for {len(absent)} network(s) of the Pareto front in "
            f"checkpoint.json (e.g. {absent[0]!r}): the journal was cut or edited after they were "
            "trained, so the run cannot be resumed as it was; restore the file, or start a new run "
            "with --out")


def _next_keys(checkpoint: Checkpoint, shape) -> set[str]:
    """The genomes the resumed search trains first: the next generation's, or, after the last,
    the last generation's (redone where one of them failed for a passing reason). Only their
    failed-for-a-passing-reason rows are forgotten (trained again): an earlier generation's stay
    on record, as the uninterrupted run has them (it never returns to those genomes)."""
    genomes = checkpoint.last_population if checkpoint.finished else checkpoint.population
    return {Genome.from_config(c).key_for(shape) for c in genomes}


def _trainings(n: int) -> str:
    return f"{n} training{'' if n == 1 else 's'}"


def _initial_state(config: SearchConfig, strategy: Strategy, run: RunFolder, checkpoint: Checkpoint | None,
                   cache: Trainings, shape, progress: SearchProgress, lengthened: bool) -> _State:
    """Where the loop starts. `lengthened`: a finished run made longer, which takes its last
    generation again as an ordinary one, from that generation's input and the front before it."""
    if checkpoint is None:
        rng = random.Random(config.seed)
        population = strategy.initial(rng)
        if cache.journaled():  # stopped in generation 0, or its checkpoint deleted: the journal replays
            progress.message(f"resuming {run.path} from its journal ({_trainings(cache.journaled())} reused)")
        seconds = run.drop_generations_after(-1)
        return _State(population, rng, 0, _logbook([]), _hall_of_fame([]), strategy, seconds)
    rng = random.Random()
    rng.setstate(checkpoint.rng_state)  # after the last generation: `advance` draws nothing then
    population = [Genome.from_config(c) for c in checkpoint.population]
    first, logbook, strategy_state = checkpoint.generation + 1, checkpoint.logbook, checkpoint.strategy
    last = [Genome.from_config(c) for c in checkpoint.last_population]
    # not trained, or (the last generation promotes every ok genome) not yet at the top rung
    missing = [g for g in last if g.key_for(shape) not in cache
               or (cache.latest(g.key_for(shape)).ok and cache.reached(g.key_for(shape)) < cache.top)]
    hof = checkpoint.halloffame
    if lengthened:
        if checkpoint.last_halloffame is None:
            raise RunFolderError(f"{run.config} asks for {config.generations} generations, but {run.checkpoint} "
                                 f"is of a run finished after {len(logbook)} by an older moncae, which cannot "
                                 f"be lengthened; resume with --generations {len(logbook)}")
        first, logbook = checkpoint.generation, logbook[:-1]
        population, strategy_state, hof = last, checkpoint.last_strategy, checkpoint.last_halloffame
        progress.message(f"{run.path}: its last generation ({first + 1}) runs again as an ordinary one "
                         f"({_trainings(cache.journaled())} reused)")
    elif checkpoint.finished and missing:  # a training of the last generation failed for a passing
        first, logbook = checkpoint.generation, logbook[:-1]  # reason, or its row was cut: redo it
        population, strategy_state = last, checkpoint.last_strategy
        progress.message(f"{run.path}: {len(missing)} network(s) of the last generation lack a training "
                         "in the journal (one that failed for a passing reason, or whose row was cut "
                         "off); training them again")
    elif checkpoint.finished:
        ended = len(logbook)
        progress.message(f"{run.path} is already complete ({ended} generations"
                         + (f" of {config.generations}: its time budget ended it)"
                            if ended < config.generations else ")"))
    else:
        progress.message(f"resuming {run.path} after generation {checkpoint.generation + 1} "
                         f"({_trainings(cache.journaled())} reused)")
    strategy.load_state(strategy_state)
    # a generation whose row was written but not its checkpoint runs again from the journal alone
    # (as does a lengthened run's old last generation): it keeps the seconds it took
    replayed = run.drop_generations_after(first - 1)
    restored = run.restore_generations([row for row in logbook if row["gen"] < first])
    if restored:
        unknown = any(not np.isfinite(row.get("seconds", np.nan)) for row in logbook if row["gen"] in restored)
        progress.message(f"{run.generations} lacked generation(s) {', '.join(str(g + 1) for g in restored)} "
                         "(the file was cut): put back from the checkpoint's log"
                         + (", their seconds unknown" if unknown else ""))
    return _State(population, rng, first, _logbook(logbook), _hall_of_fame(hof), strategy, replayed,
                  finished=checkpoint.finished and first > checkpoint.generation)


def _out_of_time(gen: int, logbook, config: SearchConfig, progress: SearchProgress) -> bool:
    """Whether the time budget makes generation `gen` the last (said when it does), going by the
    seconds its generations before took (the checkpoint's log: the same on a resume)."""
    seconds = [row.get("seconds") for row in logbook]
    if not budget_ends(seconds, config.max_minutes):
        return False
    used = used_minutes(seconds)
    why = ("the budget is used up; this one ends the run" if used >= config.max_minutes else
           "another generation as long as the longest so far would not fit")
    digits = 1 if config.max_minutes >= 10 else 2
    progress.message(f"time budget: generation {gen + 1} is the last of {config.generations} "
                     f"({used:.{digits}f} of {config.max_minutes:g} min used; {why})")
    return True


def _fitness(records: list[EvalRecord], keys: list[str], strategy: Strategy
             ) -> tuple[np.ndarray, list[float]]:
    """Each individual's objective vector and exclusive HV contribution (the strategy's, under
    the `fitness` rule), per distinct network (copies share it)."""
    return strategy.objectives.points(records), strategy.contributions(records, keys)


def _front_hypervolume(cache: Trainings, objectives: ObjectiveSet) -> float:
    """Hypervolume of every ok network trained to the top rung so far (the all-time front at
    full fidelity; it never falls)."""
    points = np.array(list(cache.rung_points(cache.top).values()), dtype=float).reshape(-1, objectives.dims)
    return hypervolume(points, objectives.ref)


def _box_notice(points: np.ndarray, records: list[EvalRecord], objectives: ObjectiveSet) -> str | None:
    """One line when networks trained but none lies inside the reference box: every fitness is
    then 0 and selection is blind (the reference point is tighter than anything feasible)."""
    ok = np.array([r.ok for r in records], dtype=bool)
    if not ok.any() or np.any(np.all(points[ok] < np.asarray(objectives.ref), axis=1)):
        return None
    best = points[ok].min(axis=0)
    return (f"warning: no network lies inside the reference point {list(objectives.ref)} "
            f"({','.join(objectives.names)}; the best values reached are "
            f"{[round(float(v), 4) for v in best]}): every fitness is 0, so selection is blind; "
            "loosen --ref")


def _train_generation(gen: int, keys: list[str], population: list[Genome], config: SearchConfig,
                      run: RunFolder, cache: Trainings, executor: Executor, task_fn: TaskFn,
                      gene_columns: list[str], progress: SearchProgress, last: bool, shape,
                      lengthened: bool = False) -> None:
    """Train the generation's new genomes at rung 0, then promote rung by rung (with fidelity
    "full" there is one rung: every new genome trains once at the full budget). The last
    generation, and with `first_generation = "full"` the first, promotes every ok genome."""
    genomes = dict(zip(keys, population))  # per key its last genome (copies build one network)
    todo = [k for k in genomes if k not in cache and not cache.take(k, 0, gen)]
    # the run's length, once the time budget has set it
    length = gen + 1 if last else config.generations
    progress.generation_started(gen, length, len(todo), len(population) - len(todo))
    _train_rung(gen, 0, todo, genomes, config, run, cache, executor, task_fn, gene_columns, progress,
                shape)
    everyone = last or (gen == 0 and config.first_generation == "full")
    for rung in range(cache.top):
        candidates = [k for k in genomes if (rec := cache.at_rung(k, rung)) is not None and rec.ok
                      and (last or rec.generation == gen)]
        chosen = promoted(candidates, cache.rung_points(rung), config.ref_point, config.promote,
                          everyone=everyone, front_only=config.promotion != "fraction",
                          within=genomes if config.promotion == "population" else None,
                          multiple=config.promote_multiple, rule=config.fitness)
        todo = [k for k in chosen if cache.reached(k) == rung and not cache.take(k, rung + 1, gen)]
        progress.promotion(gen, rung + 1, len(candidates), len(chosen), len(todo))
        if lengthened:  # continued from the rung-`rung` models, which a finished run no longer kept
            _train_again({k: rung for k in todo if not run.rung_model(k, rung).exists()}, genomes, config,
                         run, cache, executor, task_fn, progress, shape)
        _train_rung(gen, rung + 1, todo, genomes, config, run, cache, executor, task_fn, gene_columns,
                    progress, shape)


def _front_population(hof, space, objectives: ObjectiveSet, size: int) -> list[Genome]:
    """`final = "front"`: the distinct networks of the all-time front (every one trained ok at
    full fidelity, so each has its model), by increasing LOC then loss; when the front holds more
    than `size`, the `size` with the largest exclusive hypervolume contributions over it."""
    front = list(hof)
    if len(front) > size:
        points = np.array([ind.fitness.values for ind in front], dtype=float).reshape(-1, objectives.dims)
        contrib = unique_contributions(points, [ind.key for ind in front], objectives.ref)
        order = sorted(range(len(front)), key=lambda i: (-contrib[i], points[i][0], i))
        front = [front[i] for i in sorted(order[:size])]
    front.sort(key=lambda ind: (ind.fitness.values[1], ind.fitness.values[0], ind.key))
    return [Genome(tuple(ind), space) for ind in front]


def _parent_models(genome: Genome, run: RunFolder, shape, read: dict[str, bytes | None]
                   ) -> tuple[bytes | None, ...]:
    """Weight inheritance: the trained models of a crossover child's parents, as bytes (so a
    Dask worker needs no shared disk); None for a parent with no model (its training failed).
    Every model trained in the run stays in `models/` until the search ends. `read` holds the
    files already read for this batch (a parent of several children is read once)."""
    parents = genome.parents()
    if parents is None:
        return ()
    for key in (p.key_for(shape) for p in parents):
        if key not in read:
            path = run.model_path(key)
            read[key] = path.read_bytes() if path.exists() else None
    return tuple(read[p.key_for(shape)] for p in parents)


class StoppedOnIO(OSError):
    """A training's file could not be read or written (a full disk, an unreadable file): the search
    stops before journaling it. Going on would score that training, and every one after it while
    the disk stays full, as failed, and selection would breed from those failures; stopped, the
    checkpoint stays at the last whole generation, so `--resume` once the cause is fixed trains
    what was not journaled and continues as an uninterrupted run would."""


def _eval_task(config: SearchConfig, run: RunFolder, genome: Genome, key: str, rung: int, shape,
               parent_files: dict[str, bytes | None], *, keep_warm: bool) -> EvalTask:
    """The training of `genome` at `rung`: from the rung below's model where the run folder has it,
    from its parents' (weight inheritance) at rung 0."""
    fidelity: Rung = config.rung_schedule()[rung]
    settings = TrainSettings(fidelity.epochs, config.batch_size, config.loss, config.patience,
                             train_images=fidelity.train_images, model=config.model,
                             vae_eps=config.vae_eps, decoder_only=fidelity.decoder_only)
    below = run.rung_model(key, rung - 1) if rung > 0 else None
    init = below.read_bytes() if below is not None and below.exists() else None
    parents = _parent_models(genome, run, shape, parent_files) if config.inherit and rung == 0 else ()
    spec = replace(config.data_spec(), fingerprint=run.data_fingerprint)  # the run's data alone
    return EvalTask(genome, spec, settings, evaluation_seed(config.seed, key, rung),
                    config.ref_point, key=key, rung=rung, init_model=init, parent_models=parents,
                    measure_latency="latency" in config.objectives, keep_warm=keep_warm,
                    cost=forward_flops(genome, shape, config.model))


def _results(executor: Executor, task_fn: TaskFn, tasks: list[EvalTask]) -> Iterator[EvalResult]:
    """`executor.map_ordered(task_fn, tasks)`, each result checked before anything is journaled: a
    `task_fn` of one's own that returns something else, or another training's record, is refused."""
    for task, result in zip(tasks, executor.map_ordered(task_fn, tasks), strict=True):
        record = getattr(result, "record", None)
        if not (isinstance(result, EvalResult) and isinstance(record, EvalRecord)
                and (record.genome_key, record.rung) == (task.key, task.rung)):
            got = (f"a record of {record.genome_key} at rung {record.rung}" if isinstance(record, EvalRecord)
                   else repr(result)[:80])
            raise MoncaeError(f"`task_fn` returned {got} for the training of {task.key} at rung {task.rung}; "
                              "it must return that training's `moncae.evaluation.records.EvalResult`")
        yield result


def _train_again(needs: dict[str, int], genomes: dict[str, Genome], config: SearchConfig, run: RunFolder,
                 cache: Trainings, executor: Executor, task_fn: TaskFn, progress: SearchProgress,
                 shape) -> None:
    """A lengthened run's models that its folder no longer has (a finished run keeps only its final
    networks'): each key's trainings up to rung `needs[key]`, again as they ran (the same seeds,
    each rung from the rung below's weights; no inheritance in a lengthened run), saved but not
    journaled again. A result other than the journal's is said: the model is kept."""
    if not needs:
        return
    progress.message(f"training {len(needs)} network(s) again whose models {run.path} no longer has "
                     "(removed when it first finished); not journaled again")
    for rung in range(max(needs.values()) + 1):
        tasks = [_eval_task(config, run, genomes[k], k, rung, shape, {}, keep_warm=False)
                 for k, top in needs.items() if top >= rung]
        for result in _results(executor, task_fn, tasks):
            rec, journaled = result.record, cache.at_rung(result.record.genome_key, rung)
            if journaled is None or (rec.status, rec.rec_loss) != (journaled.status, journaled.rec_loss):
                was = "none" if journaled is None else f"{journaled.status} {journaled.rec_loss!r}"
                progress.message(f"warning: {rec.genome_key} trained again at rung {rung}: {rec.status} "
                                 f"{rec.rec_loss!r}, the journal has {was} (another machine or thread "
                                 "count rounds differently); its journal record stands")
            if rec.failure == "io":
                raise StoppedOnIO(f"training {rec.genome_key} again in {run.path}: {rec.error}")
            if result.model_bytes:
                try:
                    # a model on the way to the one needed goes to models/rungs/ alone: models/KEY.keras
                    # present means the one needed is there (a stop between the two redoes both)
                    run.save_model_bytes(rec.genome_key, result.model_bytes,
                                         rung=rung if rung < cache.top else None,
                                         highest=rung == needs[rec.genome_key])
                except OSError as err:
                    raise StoppedOnIO(f"saving the model of {rec.genome_key} in {run.path}: {one_line(err)}"
                                      ) from err


def _train_rung(gen: int, rung: int, todo: list[str], genomes: dict[str, Genome], config: SearchConfig,
                run: RunFolder, cache: Trainings, executor: Executor, task_fn: TaskFn,
                gene_columns: list[str], progress: SearchProgress, shape) -> None:
    """Train `todo` at `rung` (from the rung below's weights when it has a model); journal each."""
    if not todo:
        return
    parent_files: dict[str, bytes | None] = {}
    lower = rung < cache.top
    tasks = [_eval_task(config, run, genomes[k], k, rung, shape, parent_files, keep_warm=lower) for k in todo]
    for result in _results(executor, task_fn, tasks):
        rec = result.record
        rec.generation = gen
        if rec.failure == "io":  # the worker could not read or write a file: stop (`StoppedOnIO`)
            raise StoppedOnIO(f"training {rec.genome_key} in {run.path}: {rec.error}")
        if result.model_bytes:
            try:  # before the journal row
                run.save_model_bytes(rec.genome_key, result.model_bytes, rung=rung if lower else None)
            except OSError as err:
                raise StoppedOnIO(f"saving the model of {rec.genome_key} in {run.path}: {one_line(err)}"
                                  ) from err
        run.append_evaluation(rec, gene_columns, genomes[rec.genome_key].genes,
                              VAE_COLUMNS if config.model == "vae" else ())
        cache.add(rec)
        progress.evaluation_done(rec)
        if rec.failure == "lost":
            progress.message(f"{rec.genome_key} (generation {gen + 1}, rung {rung}) is recorded failed: "
                             f"{rec.error[:200]} (a --resume of this run trains it again where it meets it)")


def _record_generation(gen: int, keys: list[str], records: list[EvalRecord], points: np.ndarray,
                       fitness: list[float], cache: Trainings, run: RunFolder,
                       objectives: ObjectiveSet, seconds: float) -> dict[str, Any]:
    """Append the generation's population rows and its summary row; return the summary."""
    seen: set[str] = set()
    cached = []
    for k in keys:  # trained this generation = first occurrence of a key journaled now
        cached.append(k in seen or cache.latest(k).generation != gen)
        seen.add(k)
    run.append_population(
        {"generation": gen, "individual": i, "genome_key": k, "rec_loss": r.rec_loss,
         "loc": r.loc, "fitness": f, "cached": c, "rung": r.rung,
         **dict(zip(objectives.extra_columns, p[2:]))}
        for i, (k, r, f, c, p) in enumerate(zip(keys, records, fitness, cached, points))
    )
    ok = [r for r in records if r.ok]
    row = {
        "generation": gen, "hypervolume": hypervolume(points, objectives.ref),
        "front_size": int(non_dominated_mask(points[[r.ok for r in records]]).sum()) if ok else 0,
        "best_rec_loss": min((r.rec_loss for r in ok), default=float("nan")),
        "min_loc": min((r.loc for r in ok), default=float("nan")),
        "trained": cached.count(False), "cache_hits": cached.count(True),
        "trainings_total": len(cache), "front_hypervolume": _front_hypervolume(cache, objectives),
        "image_epochs_total": cache.image_epochs(),
        "seconds": round(seconds, 3),
    }
    run.append_generation(row)
    return row


def _picklable(fn: Any) -> bool:
    try:
        pickle.dumps(fn)
    except Exception:  # noqa: BLE001 - lambdas, closures, local functions
        return False
    return True


def default_executor(config: SearchConfig, task_fn: TaskFn | None = None) -> Executor:
    """The executor the settings name (`executor`, `workers`, `scheduler`, `models_per_gpu`).

    With `executor = "local"`, a `task_fn` of one's own (a test's or benchmark's cheap stand-in)
    runs in this process unless `workers` is an explicit number and the function can be pickled:
    "auto" starts worker processes for the real training only, where they pay.
    """
    if config.executor == "local" and task_fn is not None and (
            config.workers == WORKERS_AUTO or not _picklable(task_fn)):
        return LocalExecutor()
    return make_executor(config.executor, workers=config.workers, scheduler=config.scheduler,
                         models_per_gpu=config.models_per_gpu)


def check_rungs(config: SearchConfig, train_images: int, *, warn: bool = True) -> None:
    """A lower rung must use fewer training images than the run has (else it is no cheaper); a
    decoder-only (proxy) rung may use them all, and is said (`warn`) when its image-epochs reach
    the full budget's (then it saves only the encoder's share of each step)."""
    top = config.rung_schedule()[-1]
    for rung in config.rung_schedule()[:-1]:
        if warn and rung.decoder_only and rung.epochs * min(rung.train_images or train_images, train_images) \
                >= top.epochs * train_images:
            warnings.warn(MoncaeWarning(
                f"the decoder-only rung trains {rung.epochs} epoch(s) on {rung.train_images} images, as many "
                f"image-epochs as the full budget ({top.epochs} on {train_images}) or more: it saves only the "
                "encoder's share of each step; fewer epochs in `rungs`, or a larger --epochs, make it the "
                "cheap rung"), stacklevel=2)
        if rung.train_images > train_images or (rung.train_images == train_images and not rung.decoder_only):
            raise MoncaeError(f"`rungs` trains a lower rung on {rung.train_images} images, but the run "
                              f"has {train_images} training images; use fewer in `rungs` (a --config "
                              f"file, e.g. rungs = [[{rung.epochs}, {max(1, train_images // 3)}]]), a "
                              "larger --train-size, or --fidelity full")


def search_data(config: SearchConfig, *, warn: bool = True) -> Dataset:
    """The run's data (loaded once per process), checked against its rungs; raises before anything
    is written when either is unusable (`warn`: and says a rung that is not the cheap one)."""
    data = cached_dataset(config.data_spec())
    check_rungs(config, data.sizes["train"], warn=warn)
    return data


def run_search(config: SearchConfig, *, resume: bool = False, progress: SearchProgress | None = None,
               executor: Executor | None = None, task_fn: TaskFn | None = None) -> RunResult:
    """Run (or resume) one seed's search and return its final population.

    Args:
        config: the settings, e.g. `moncae.resolve_config(preset="quick", dataset="mnist_5k",
            seed=46, out="results")`; the run folder is `config.run_dir` (OUT/DATASET/seed-N).
        resume: continue the run in `config.run_dir` (the same settings, checked); without it a
            folder with results there is refused.
        progress: hooks called as the search goes (a `SearchProgress` subclass; default: none,
            and its notices, e.g. "resuming ... after generation 3", go to the `moncae` logger
            at INFO level: `logging.basicConfig(level=logging.INFO)` shows them).
        executor: runs the trainings (default: `default_executor(config, task_fn)`, closed at
            the end; one passed in is left open). With `workers` other than 1 (`"auto"`, the
            default, included) the trainings run in spawned worker processes, so a script must
            call this under `if __name__ == "__main__":`.
        task_fn: what each training runs (default: real Keras training); tests and benchmarks
            may pass another function with the same contract (an `EvalTask` in, an `EvalResult`
            out).

    Returns:
        RunResult: the final population, its records and fitness, the hypervolume per
        generation and where the CSVs and models are (`run_dir`). The driver alone writes the
        run folder.

    Raises:
        MoncaeError (its subclasses `DataError`, `RunFolderError`): one-line reasons, before
            anything is written where the settings, data or folder are unusable.
    """
    if not isinstance(config, SearchConfig):
        raise MoncaeError("`config` must be a moncae.SearchConfig (e.g. moncae.resolve_config(preset="
                          f"\"quick\", dataset=\"mnist_5k\", seed=46)). Received: config={config!r}"[:300])
    if not isinstance(resume, bool):
        raise MoncaeError(f"`resume` must be True or False. Received: resume={resume!r}"[:200])
    if task_fn is not None and not callable(task_fn):
        raise MoncaeError(f"`task_fn` must be a function of a training task (or None: real training). "
                          f"Received: task_fn={task_fn!r}"[:200])
    progress = progress or SearchProgress()
    missing = [name for name in _HOOKS if not callable(getattr(progress, name, None))]
    if missing:
        raise MoncaeError(f"`progress` must be a moncae.SearchProgress (subclass it and override the "
                          f"hooks you need); it lacks {', '.join(missing)}. Received: progress={progress!r}"[:300])
    run = RunFolder(config.run_dir)
    run.check_writable()
    data = search_data(config)  # fails here (nothing written) if the data is unusable
    own_executor = executor is None  # built before the run folder: a bad --scheduler writes nothing
    executor = executor or default_executor(config, task_fn)
    try:
        with RunLock(run.path, "moncae search"):
            return _search_locked(config, resume, progress, executor, task_fn, run, data)
    finally:
        if own_executor:
            executor.close()


def _search_locked(config: SearchConfig, resume: bool, progress: SearchProgress, executor: Executor,
                   task_fn: TaskFn | None, run: RunFolder, data) -> RunResult:
    """`run_search` once the run folder's lock is held."""
    space = config.genome_space()
    objectives = config.objective_set()
    run.objective_columns = objectives.extra_columns
    strategy = make_strategy(config, space)
    gene_columns = space.gene_names()
    shape = data.input_shape
    checkpoint, old_length = _start_or_resume(run, config, data, resume, execution_record(executor), progress)
    if task_fn is None:  # real training: TensorFlow loads with the first one, in the process that
        from moncae.evaluation.lazy import train_task as task_fn  # runs it (none: a finished run)
    if checkpoint is not None:
        _check_front_rows(run, checkpoint)
    # a finished run made longer (now, or by a command that stopped before its old last generation
    # was done again): that generation runs again as an ordinary one
    lengthened = checkpoint is not None and checkpoint.finished and len(checkpoint.logbook) < config.generations \
        and config.max_minutes <= 0
    if old_length is not None:
        _lengthen(run, config, old_length, progress)
    retried = run.forget_transient_failures(_next_keys(checkpoint, shape)) if checkpoint is not None else 0
    # a lengthened run's old last generation: its trainings wait until the search reaches them again
    upto = -1 if checkpoint is None else checkpoint.generation - lengthened
    # and what it took from the journal under an earlier generation: seen as of the one that took it
    restamped = {} if checkpoint is None else {(key, rung): g for key, rung, g in checkpoint.restamped}
    waiting = set() if checkpoint is None else {(key, rung) for key, rung in checkpoint.waiting} | {
        pair for pair, g in restamped.items() if lengthened and g == checkpoint.generation}
    cache = Trainings(run.read_evaluations(repair=True), len(config.rung_schedule()) - 1, objectives, upto=upto,
                      waiting=waiting, restamped=restamped)
    if retried:
        progress.message(f"{retried} training(s) that failed for a passing reason (memory, disk, "
                         "worker) will be tried again")
    state = _initial_state(config, strategy, run, checkpoint, cache, shape, progress, lengthened)
    state.lengthened = bool(run.read_config().get("lengthened"))  # models removed at its first finish
    box_warned = False
    for gen in range(state.first, state.first if state.finished else config.generations):
        started, journaled = time.perf_counter(), cache.journaled()
        keys = [g.key_for(shape) for g in state.population]
        last = gen == config.generations - 1 or _out_of_time(gen, state.logbook, config, progress)
        _train_generation(gen, keys, state.population, config, run, cache, executor, task_fn,
                          gene_columns, progress, last, shape, state.lengthened)
        records = [cache.view(k) for k in keys]
        points, fitness = _fitness(records, keys, state.strategy)
        seconds = time.perf_counter() - started
        if cache.journaled() == journaled:  # replayed from the journal alone: its time then
            seconds = state.replayed_seconds.get(gen, seconds)
        row = _record_generation(gen, keys, records, points, fitness, cache, run, objectives, seconds)
        notice = None if box_warned else _box_notice(points, records, objectives)
        if notice:
            progress.message(notice)
            box_warned = True
        state.logbook.record(gen=gen, **{k: v for k, v in row.items() if k != "generation"})
        front_before = _hof_entries(state.hof) if last else None  # kept so a longer run can redo it
        state.hof.update([pareto_individual(g.genes, r.genome_key, objectives.point(r))
                          for g, r in zip(state.population, records) if r.ok])
        if cache.top > 0:
            progress.population_rungs(sum(1 for k in set(keys)
                                          if cache.latest(k).ok and cache.reached(k) < cache.top))
        run_seconds = [s for r in state.logbook if math.isfinite(s := r.get("seconds", math.nan))]
        progress.generation_done({**row, "search_seconds": sum(run_seconds),  # the run's, all commands
                                  "longest_seconds": max(run_seconds, default=0.0)})
        last_input = (state.population, state.strategy.state())
        state.population = state.strategy.advance(
            Generation(gen, state.population, keys, records, fitness, cache.view, shape), state.rng, last=last)
        if last and config.final == "front":  # the all-time front at full fidelity, not the strategy's
            state.population = _front_population(state.hof, space, objectives, config.population) \
                or state.population
        run.save_checkpoint(_checkpoint(gen, state, last, last_input, front_before, cache))
        if last:  # the time budget's last generation comes before the planned one
            break

    keys = [g.key_for(shape) for g in state.population]  # the final population
    if state.lengthened:
        final = dict(zip(keys, state.population))
        _train_again({k: cache.reached(k) for k in final if cache.latest(k).ok and not run.model_path(k).exists()},
                     final, config, run, cache, executor, task_fn, progress, shape)
    records = [cache.view(k) for k in keys]
    _, fitness = _fitness(records, keys, state.strategy)
    run.write_front([{"genome_key": ind.key, "architecture": cache.latest(ind.key).architecture,
                      "rec_loss": ind.fitness.values[0], "loc": ind.fitness.values[1],
                      "generation": cache.latest(ind.key).generation,
                      **dict(zip(objectives.extra_columns, ind.fitness.values[2:]))} for ind in state.hof])
    # the index last: with it a run is finished for `finetune`, `front` and `export` (a kill
    # before it leaves a run that `--resume` finishes, writing both again)
    saved = run.write_model_index(keys, [r.status for r in records])
    hvs = [row["hypervolume"] for row in state.logbook]
    return RunResult(run.path, config, state.population, records, fitness, hvs, state.logbook,
                     resumed_from=None if checkpoint is None else checkpoint.generation,
                     models_saved=saved)
