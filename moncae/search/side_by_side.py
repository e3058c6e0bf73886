"""Several seeds' searches side by side on one machine (`moncae search --seed A,B,... --seeds-at-once N`).

A search with W worker processes waits at the end of every rung: its next trainings depend on
the ones still running, so the workers that finish first sit idle (on `quick`, 2 workers, ~9% of
their capacity; on the `cpu` preset's generations with one promotion, half of it for a whole
3-epoch training). Another seed's search does not depend on them. So N seeds run at once here,
each in its own driver process with W / N worker processes, and every training keeps the
TensorFlow thread count `--workers W` gives it (`threads_per_worker(W)`): one seed's rung end is
another seed's training.

A training's numbers depend on its task and its thread count (and the CPU), never on which worker
runs it or when (`moncae.executors`), so each seed's run folder is the one `--workers W` makes
for it alone (tested): only the wall time changes. Its own seconds (`generations.csv`) grow, as it
shares the cores; `--max-minutes`, which counts them, then ends it at another generation than
alone, which is why "auto" runs one seed at a time when a time budget is set.

The drivers are spawned processes (each ignores Ctrl-C, which reaches the whole terminal's
process group; this process then stops them with SIGTERM, each as `moncae search` stops on it:
what was journaled is kept and `--resume` goes on).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moncae.config import WORKERS_AUTO, SearchConfig
from moncae.errors import MoncaeError, MoncaeWarning, one_line
from moncae.executors import resolve_workers

__all__ = ["SeedOutcome", "resolve_at_once", "run_side_by_side", "slot_plan"]

STOP_WAIT = 300.0  # seconds a stopped driver gets to end its training and close its workers


@dataclass(frozen=True)
class SeedOutcome:
    """How one seed's search ended (what the command says of it)."""

    seed: int | None
    run_dir: Path
    finals: int = 0  # final models
    ok: int = 0  # of them trained ok
    models_saved: int = 0  # with their model on disk
    unsaved: tuple[str, ...] = ()  # the errors of final models that failed for a passing reason
    errors: tuple[str, ...] = ()  # the final models' distinct errors (when none trained ok)
    failure: str | None = None  # why the seed stopped: one line
    failure_kind: str | None = None  # "input" (a MoncaeError: exit 2) or "os" (exit 1)

    @property
    def done(self) -> bool:
        return self.failure is None


def slot_plan(workers: int, at_once: int, cores: int | None = None) -> tuple[int, int]:
    """(worker processes per seed, TF intra-op threads per training) for `at_once` seeds sharing
    the machine that `workers` worker processes would use: the threads are those `--workers
    workers` gives each training, so the numbers are too."""
    from moncae.executors.processes import threads_per_worker

    if isinstance(at_once, bool) or not isinstance(at_once, int) or at_once < 1:
        raise MoncaeError(f"`seeds_at_once` must be a positive integer or 'auto'. Received: {at_once!r}")
    if at_once > workers:
        raise MoncaeError(f"--seeds-at-once {at_once} needs at least {at_once} worker processes (one per seed "
                          f"at a time); the settings give {workers}: pass --workers {at_once} or more, or "
                          f"--seeds-at-once {workers}")
    return max(1, workers // at_once), threads_per_worker(workers, cores)


def resolve_at_once(value: Any, configs: Sequence[SearchConfig]) -> int:
    """How many seeds run at once: an integer as given (checked against the workers; at most the
    seeds); "auto", with several seeds, the local executor and no time budget (`max_minutes`,
    which would then end each seed elsewhere), the most seeds up to one per worker process that
    share the workers out evenly (2 workers: 2; 4 workers and 3 seeds: 2 of 2 workers each), else 1."""
    if value in (None, WORKERS_AUTO):
        config = configs[0]
        if len(configs) < 2 or config.executor != "local" or any(c.max_minutes > 0 for c in configs):
            return 1
        workers = resolve_workers(config.workers)
        return max(d for d in range(1, min(workers, len(configs)) + 1) if workers % d == 0)
    try:
        at_once = int(value)
    except (TypeError, ValueError):
        at_once = 0
    if str(value).strip() != str(at_once) or at_once < 1:
        raise MoncaeError(f"`seeds_at_once` must be a positive integer or 'auto'. Received: {value!r}")
    if at_once > 1:
        config = configs[0]
        if config.executor != "local":
            raise MoncaeError("--seeds-at-once runs seeds side by side on this machine's worker processes; "
                              "with --executor dask the cluster already shares its workers: leave it out")
        if config.workers == 1:
            raise MoncaeError(f"--seeds-at-once {at_once} with --workers 1 (one training at a time, in this "
                              f"process): pass --workers {at_once} or more (or auto), or drop --seeds-at-once")
        slot_plan(resolve_workers(config.workers), at_once)  # refuses more seeds than workers
        if any(c.max_minutes > 0 for c in configs):
            warnings.warn(MoncaeWarning(
                f"--max-minutes with --seeds-at-once {at_once}: each seed's budget counts its own time, which "
                "runs longer while it shares the cores, so the budget ends it at an earlier generation than "
                "alone"), stacklevel=2)
    return min(at_once, len(configs))  # one seed: it alone, with every worker


class _Stopped(BaseException):
    """SIGTERM in a driver process: unwind as Ctrl-C does (workers closed, the lock released)."""


def _stop(signum, frame):
    raise _Stopped(signum)


def _outcome(config: SearchConfig, result) -> SeedOutcome:
    records = list(result.records)
    ok = sum(r.ok for r in records)
    return SeedOutcome(config.seed, Path(result.run_dir), finals=len(records), ok=ok,
                       models_saved=result.models_saved, unsaved=tuple(r.error for r in result.unsaved),
                       errors=tuple(sorted({r.error for r in records if r.error})) if not ok else ())


def _slot(configs: list[SearchConfig], counter, outcomes, resume: bool, per_slot: int, threads: int,
          progress: Callable[[SearchConfig, int, int], Any] | None, setup: Callable[[], None] | None,
          task_fn: Callable | None, parent: int) -> None:
    """One driver process: takes the next seed not taken yet, runs its search, reports it; again."""
    from moncae.executors.processes import ProcessExecutor, _die_with_parent
    from moncae.search.loop import run_search

    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's Ctrl-C is the command's to handle
    signal.signal(signal.SIGTERM, _stop)
    if setup is not None:
        setup()
    executor = ProcessExecutor(per_slot, threads=threads)
    try:
        while True:
            with counter.get_lock():
                i = counter.value
                counter.value += 1
            if i >= len(configs):
                return
            config = configs[i]
            hooks = progress(config, i, len(configs)) if progress is not None else None
            try:
                outcome = _outcome(config, run_search(config, resume=resume, progress=hooks, executor=executor,
                                                       task_fn=task_fn))
            except MoncaeError as err:
                outcome = SeedOutcome(config.seed, config.run_dir, failure=one_line(err, limit=2000),
                                      failure_kind="input")
            except OSError as err:
                outcome = SeedOutcome(config.seed, config.run_dir, failure=one_line(err, limit=2000),
                                      failure_kind="os")
            finally:
                close = getattr(hooks, "close", None)
                if callable(close):
                    close()
            outcomes.put((i, outcome))
    except _Stopped:
        sys.exit(128 + signal.SIGTERM)
    finally:
        executor.close()
        sys.stdout.flush()


@contextlib.contextmanager
def _quiet_while_starting():
    """Start the drivers with SIGINT ignored, so that a Ctrl-C during their start (Python's own,
    before `_slot` runs) does not reach them; this process's handler is back right after."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_side_by_side(configs: Sequence[SearchConfig], at_once: int, *, resume: bool = False,
                     progress: Callable[[SearchConfig, int, int], Any] | None = None,
                     setup: Callable[[], None] | None = None,
                     on_outcome: Callable[[SeedOutcome], None] | None = None,
                     task_fn: Callable | None = None) -> list[SeedOutcome]:
    """Run each config's search (one per seed), `at_once` of them at a time, each in its own driver
    process with its share of the worker processes (`slot_plan`); return their outcomes in the
    order of `configs`. Each run folder is the one `run_search(config)` with `--workers W` makes.

    Args:
        configs: the searches (the local executor; the first one's `workers` is shared out).
        at_once: searches at a time (`resolve_at_once`).
        resume: as `run_search`'s.
        progress: `progress(config, i, n)` builds a seed's `SearchProgress` in its driver process
            (picklable: a module-level function or a `functools.partial` of one).
        setup: run first in each driver process (e.g. how warnings print).
        on_outcome: called here as each seed ends (in the order they end).
        task_fn: as `run_search`'s (picklable; default: real training).

    A seed whose search raises a `MoncaeError` or an `OSError` is reported (`failure`) and the
    others go on. A Ctrl-C or SIGTERM here stops every driver (each keeps what it journaled) and
    is raised again once they have ended.
    """
    configs = list(configs)
    if not configs:
        return []
    if not all(isinstance(c, SearchConfig) for c in configs):
        raise MoncaeError("`configs` must be moncae.SearchConfig values (moncae.resolve_config(...))")
    per_slot, threads = slot_plan(resolve_workers(configs[0].workers), at_once)
    context = multiprocessing.get_context("spawn")
    counter, outcomes = context.Value("i", 0), context.Queue()
    drivers = [context.Process(target=_slot, name=f"moncae-seeds-{k}",
                               args=(configs, counter, outcomes, resume, per_slot, threads, progress, setup,
                                     task_fn, os.getpid()))
               for k in range(min(at_once, len(configs)))]
    found: dict[int, SeedOutcome] = {}
    started: list = []

    def take(timeout: float) -> bool:
        try:
            i, outcome = outcomes.get(timeout=timeout)
        except queue.Empty:
            return False
        found[i] = outcome
        if on_outcome is not None:
            on_outcome(outcome)
        return True

    try:
        with _quiet_while_starting():
            for driver in drivers:
                driver.start()
                started.append(driver)
        while len(found) < len(configs):
            if not take(0.5) and not any(d.is_alive() for d in drivers):
                break  # every driver has ended: what they sent last is taken below
    except BaseException:  # Ctrl-C, SIGTERM: every driver stops as `moncae search` does on SIGTERM
        for driver in started:
            if driver.is_alive():
                with contextlib.suppress(OSError):
                    os.kill(driver.pid, signal.SIGTERM)
        for driver in started:
            driver.join(timeout=STOP_WAIT)
            if driver.is_alive():
                driver.kill()
        raise
    for driver in drivers:
        driver.join()
    while take(0.1):  # anything still on its way
        pass
    codes = [d.exitcode for d in drivers if d.exitcode]
    why = "killed, out of memory?"
    if not found and codes and codes[0] > 0:  # no driver got as far as one seed: it could not start
        why = ("it could not start: a script that calls moncae.run_side_by_side must make that call under "
               "`if __name__ == \"__main__\":`, as each driver process imports the script again")
    return [found.get(i) or SeedOutcome(
        c.seed, c.run_dir, failure_kind="os",
        failure=f"its driver process ended (exit code {codes[0] if codes else 'unknown'}: {why}) before the "
                "search did; what it journaled is kept")
        for i, c in enumerate(configs)]
