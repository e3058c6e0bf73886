"""`ProcessExecutor`: a generation's trainings in N worker processes on this machine.

`executor = "local"` with `workers` > 1, or `workers = "auto"` (the default: two workers on a
CPU-only machine with >= 2 cores, else one). Each worker is a fresh `spawn`ed Python process that
trains one model at a time with TensorFlow limited to `threads` intra-op threads (default
`max(1, cores // workers)`, or `TF_NUM_INTRAOP_THREADS` when the driver has it set) and 1
inter-op thread, set before TensorFlow loads there. Two 1-thread trainings side by side beat one
2-thread training on 2 cores: one model's Python and graph overhead overlaps the other's
arithmetic.

Results come back in task order, each as soon as it and every task before it are done; workers
only compute (they load the data themselves, by name), the driver writes every file. Results are
identical for the same `threads` (each training is seeded from the run seed and its genome key,
whichever process runs it), but TF's CPU float results depend on the intra-op thread count, so
they may differ from a run with another thread count (usually in the last digits; an
unstable training can amplify that, see the README). A free worker takes first a task whose
`affinity` (the genome, for a search's trainings) it ran before: a promoted genome then finds
its lower-rung model still in memory there and is not traced again (`moncae.model.warm`).

Memory: TensorFlow never frees the graph it traces for each new network (about 3-4.5 MB per
training here; TensorFlow issue #124972, open in 2.21), so a worker process is replaced by a
fresh one after `recycle_after` tasks (default `RECYCLE_AFTER`): its memory stays bounded over
runs of thousands of trainings (the `paper` preset, multi-seed commands) for the price of a
TensorFlow import per replacement. Results do not change: every training is seeded, whichever
process runs it.

Faults: each worker runs one training at a time, so a worker process that dies (killed, out of
host memory) names its training: that one runs again in a new worker, up to `retries` times, and
is then recorded as a failed evaluation of kind `lost` (which `--resume` trains again); the other
trainings are not disturbed. Workers ask the kernel to kill them when the driver dies (Linux), so
a SIGKILLed search leaves no training running; the driver alone writes the run folder.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from moncae.errors import MoncaeError, one_line
from moncae.executors.resources import usable_cores
from moncae.executors.worker_setup import RECYCLE_AFTER, configure_tensorflow, lost_evaluation
from moncae.tfquiet import hold_off_keras_extras

__all__ = ["DEFAULT_RETRIES", "RECYCLE_AFTER", "ProcessExecutor", "threads_per_worker"]

DEFAULT_RETRIES = 1  # worker deaths a training may cause before it is recorded `lost`


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """TF intra-op threads per training with `workers` processes: the driver's
    `TF_NUM_INTRAOP_THREADS` when set, else the cores shared out, at least 1."""
    env = os.environ.get("TF_NUM_INTRAOP_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, (usable_cores() if cores is None else cores) // workers)


def _die_with_parent(parent: int) -> None:
    """Linux: have the kernel SIGKILL this process when the driver dies (best effort)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: a worker ends after its current task
        return
    if os.getppid() != parent:  # the driver died before prctl took effect
        os._exit(1)


def _init_worker(intra_threads: int, inter_threads: int, parent: int) -> None:
    """Runs first in each worker process, before any task (and so before TensorFlow loads)."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle (one pending: dropped)
    if hasattr(signal, "pthread_sigmask"):  # started with it blocked (`_sigint_held`)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    configure_tensorflow(intra_threads, inter_threads)
    hold_off_keras_extras()  # this process only trains: Keras loads without pandas & co (~1.5 s)


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """SIGINT blocked in this thread meanwhile (a Ctrl-C now is never lost: another thread of the
    process takes it at once, or this one once it ends), so that a worker process started now
    begins with it blocked and never sees it:
    a Ctrl-C while a worker still imports (before `_init_worker`, which ignores SIGINT, then
    unblocks it) printed that worker's traceback. Ctrl-C is the driver's to handle. Where signals
    cannot be blocked (Windows), SIGINT is ignored meanwhile instead."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if hasattr(signal, "pthread_sigmask"):
        previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            yield
        finally:  # a Ctrl-C that came meanwhile is delivered here
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:  # None: set outside Python; Python's own handler is the nearest
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _processes(pool: ProcessPoolExecutor | None) -> list:
    """A pool's worker processes (CPython internals; none where they are not there)."""
    return list((getattr(pool, "_processes", None) or {}).values())


_AGAIN = object()  # a task to run again: its worker died


class _Raised:
    """A task's own exception, re-raised when its turn comes (as the in-process executor would)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class ProcessExecutor:
    """Run tasks in `workers` spawned processes, one task per process at a time; results come
    back in task order.

    Each worker is its own one-process pool, so when a worker dies the driver knows which task
    killed it: only that task is run again (in a new process), the others are not disturbed.

    Args:
        workers: worker processes (>= 1).
        threads: TF intra-op threads per worker (default: `threads_per_worker(workers)`).
        inter_threads: TF inter-op threads per worker.
        retries: worker deaths a task may cause before it counts as lost.
        on_lost: builds the result of a lost task (default: a failed evaluation of kind `lost`).
        recycle_after: tasks a worker process runs before a fresh one replaces it (None: never).
    """

    name = "local"

    def __init__(self, workers: int, *, threads: int | None = None, inter_threads: int = 1,
                 retries: int = DEFAULT_RETRIES,
                 on_lost: Callable[[Any, str], Any] = lost_evaluation,
                 recycle_after: int | None = RECYCLE_AFTER) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise MoncaeError(f"`workers` must be an integer >= 1. Received: workers={workers!r}")
        self.workers = workers
        self.recycle_after = recycle_after
        self._ran = [0] * workers  # tasks the current process of each worker has run
        self.threads = threads or threads_per_worker(workers)
        self.inter_threads = inter_threads
        self.retries = retries
        self.on_lost = on_lost
        self._slots: list[ProcessPoolExecutor | None] = [None] * workers
        self._home: dict[Any, int] = {}  # a task's `affinity` -> the worker that last ran one

    def _slot(self, k: int) -> ProcessPoolExecutor:
        """Worker k's one-process pool (started on first use, and again after its worker died)."""
        if self._slots[k] is None:
            self._slots[k] = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.threads, self.inter_threads, os.getpid()),
            )
        return self._slots[k]

    def _drop_slot(self, k: int) -> None:
        """Stop worker k now: a task it runs is killed with it (a worker holds nothing worth
        keeping; the driver writes every file)."""
        pool, self._slots[k] = self._slots[k], None
        self._ran[k] = 0
        self._home = {a: w for a, w in self._home.items() if w != k}  # its warm models are gone
        if pool is None:
            return
        processes = _processes(pool)
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.kill()
            process.join(timeout=10)
        pool.shutdown(wait=True)

    def _submit(self, k: int, fn: Callable[[Any], Any], task: Any) -> Future:
        with _sigint_held():  # a worker starting now inherits it (see `_sigint_held`)
            try:
                return self._slot(k).submit(fn, task)
            except BrokenProcessPool:  # worker k died while idle: start another
                self._drop_slot(k)
                return self._slot(k).submit(fn, task)

    def map_ordered(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Any]:
        """Hand each worker one task at a time, the costliest first (a task's `cost`, where it
        has one: longest-processing-time-first, so that the batch does not end with one long task
        and idle workers); yield each result once it and all tasks before it are done."""
        tasks = list(tasks)
        todo = deque(sorted(range(len(tasks)), key=lambda i: -getattr(tasks[i], "cost", 0.0)))
        running: dict[Future, tuple[int, int]] = {}  # future -> (worker, task index)
        free = list(range(self.workers - 1, -1, -1))
        results: dict[int, Any] = {}
        deaths = [0] * len(tasks)
        following = 0
        try:
            while following < len(tasks):
                while free and todo:
                    k = free.pop()
                    i = self._pick(k, todo, tasks, free)
                    running[self._submit(k, fn, tasks[i])] = (k, i)
                while following in results:
                    result = results.pop(following)
                    following += 1
                    if isinstance(result, _Raised):
                        raise result.error
                    yield result
                if following < len(tasks):
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        k, i = running.pop(future)
                        free.append(k)
                        self._ran[k] += 1  # back to 0 if the task killed its worker
                        outcome = self._outcome(future, k, tasks[i], deaths, i)
                        if self.recycle_after and self._ran[k] >= self.recycle_after:
                            self._drop_slot(k)  # idle now: the next task starts a fresh process
                        if outcome is _AGAIN:
                            todo.appendleft(i)
                        else:
                            results[i] = outcome
        finally:
            for k, _ in list(running.values()):  # interrupted: stop what still runs
                self._drop_slot(k)

    def _pick(self, k: int, todo: deque, tasks: list[Any], free: list[int]) -> int:
        """The next task for free worker k (removed from `todo`): the first whose `affinity` (a
        task attribute, e.g. the genome of a promoted training) last ran on worker k, where it
        may find its lower-rung model warm; else the first not waiting for another free worker;
        else the first ("first" in `todo`'s order: costliest first). Which worker runs a task
        never changes its result, only how soon."""
        affinities = [getattr(tasks[i], "affinity", None) for i in todo]
        homes = [self._home.get(a) for a in affinities]
        at = next((n for n, home in enumerate(homes) if home == k),
                  next((n for n, home in enumerate(homes) if home not in free), 0))
        i, affinity = todo[at], affinities[at]
        del todo[at]
        if affinity is not None:
            if len(self._home) > 10_000:  # bounded: only recent homes matter
                self._home.clear()
            self._home[affinity] = k
        return i

    def _outcome(self, future: Future, k: int, task: Any, deaths: list[int], i: int) -> Any:
        """Task i's result; if its worker died: `_AGAIN` (run it again) or, too often, lost."""
        try:
            return future.result()
        except BrokenProcessPool as err:
            code = self._exit_code(k)
            self._drop_slot(k)
            if code is not None and code >= 0:  # it exited, not killed: it could not start
                raise MoncaeError(
                    f"a worker process could not start (it exited with code {code} before training; "
                    "its own error is printed above). A script that calls moncae with `workers` other "
                    "than 1 must make that call under `if __name__ == \"__main__\":` (each worker "
                    "process imports the script again); or pass workers=1 to train in this process"
                ) from None
            deaths[i] += 1
            if deaths[i] <= self.retries:
                return _AGAIN
            how = f"killed by {_signal_name(-code)}" if code is not None and code < 0 else "out of memory?"
            return self.on_lost(task, f"its worker process died each time it ran this evaluation "
                                          f"({deaths[i]} times; {how}): "
                                          f"{one_line(err, limit=300)}")
        except Exception as err:  # noqa: BLE001 - the task's own error, raised in turn
            return _Raised(err)

    def _exit_code(self, k: int) -> int | None:
        """How worker k's process ended, once its pool broke: >= 0 an exit (a task's own errors,
        `SystemExit` included, come back as results, so only a start that failed exits: an
        unguarded script run again, an initializer that raised), < 0 a signal, None unknown."""
        processes = _processes(self._slots[k])
        for process in processes:
            process.join(timeout=5)
        codes = [p.exitcode for p in processes if p.exitcode is not None]
        return codes[0] if codes else None

    def close(self) -> None:
        """Stop the worker processes."""
        for k in range(self.workers):
            self._drop_slot(k)

    def __enter__(self) -> ProcessExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
