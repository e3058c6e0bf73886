"""The `dask` executor: a generation's trainings on Dask distributed workers.

`DaskExecutor(workers=N)` starts a LocalCluster of N single-task worker processes on this
machine (one per GPU when there are GPUs); `DaskExecutor(scheduler="tcp://host:8786")` uses a
running cluster (`dask scheduler` plus `dask worker --nthreads 1` per GPU). The driver submits
every task at once and yields results in task order; workers only compute (they load the data
themselves, by name, through the task's `DataSpec`), the driver writes every file.

Results are bit-identical to the local executor's (tested) because each evaluation is seeded
from (run seed, genome key), and two more things hold on every worker:
- it trains with the same TensorFlow intra-op thread count as the driver would: on CPU, TF's
  float results depend on that count (a reduction split over 1 or 2 threads sums in another
  order). By default that is the driver's count (`TF_NUM_INTRAOP_THREADS` when set, else its
  usable cores), so `TF_NUM_INTRAOP_THREADS=1` in the driver's environment gives single-threaded
  trainings under both executors. Inter-op threads (no effect on results) are 1 on the workers.
- Dask's own threads do not draw from Python's global RNG, which Keras draws layer seeds from
  (see `isolate_global_rng`).

Faults: a worker that dies mid-task (killed, out of host memory) is replaced and its task runs
again elsewhere, up to `retries` times; a task that killed its worker more often is recorded as a
failed evaluation (the run goes on). A lost scheduler stops the run with a `MoncaeError` that
says to `--resume` (every evaluation already journaled is kept).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError
from typing import Any

from moncae.errors import MoncaeError

__all__ = ["DaskExecutor", "WorkerSetupError", "WorkerTask", "lost_evaluation", "training_threads",
           "visible_gpus"]

DEFAULT_RETRIES = 3  # worker deaths tolerated per task (Dask's `allowed-failures` default)
RESUME_HINT = ("the evaluations journaled so far are kept: restart the scheduler and workers, then "
               "run the same command with --resume")


class WorkerSetupError(MoncaeError):
    """A worker cannot train the way this run requires (raised on the worker, re-raised here)."""


def training_threads() -> int:
    """The TensorFlow intra-op thread count a training in this process uses (TF's own rule)."""
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        configured = tf.config.threading.get_intra_op_parallelism_threads()
        if configured > 0:
            return configured
    env = os.environ.get("TF_NUM_INTRAOP_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return usable_cores()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """GPU ids this process may use: `CUDA_VISIBLE_DEVICES` when set, else what nvidia-smi lists."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, _ in enumerate(ln for ln in out.splitlines() if ln.startswith("GPU "))]


# Dask and Tornado code that draws from Python's global RNG in a worker's event-loop thread
# (dask.sizeof samples big collections, compression samples big payloads, retries jitter).
# `keras.utils.set_random_seed` seeds that same RNG and Keras draws every layer's seed from it
# while the task thread builds the model, so such a draw in between changes the trained model.
_GLOBAL_RNG_USERS = (
    ("dask.sizeof", "random"), ("distributed.protocol.compression", "randint"),
    ("distributed.worker", "random"), ("distributed.utils_comm", "random"),
    ("distributed.comm.core", "random"), ("tornado.ioloop", "random"),
)
_configured: tuple[int, int] | None = None
_rng_isolated = False


def isolate_global_rng() -> None:
    """Give Dask's own random draws in this process a private RNG (idempotent).

    Without it, a worker's trainings were not reproducible: the loss of one smoke-preset genome
    came out 0.673, 0.678 or 0.698 on different runs (0.694 locally).
    """
    global _rng_isolated
    if _rng_isolated:
        return
    import random

    private = random.Random()
    for module_name, attr in _GLOBAL_RNG_USERS:
        module = sys.modules.get(module_name)
        value = getattr(module, attr, None)
        if value is random:
            setattr(module, attr, private)
        elif getattr(value, "__self__", None) is random._inst:  # `from random import randint`
            setattr(module, attr, getattr(private, attr))
    _rng_isolated = True


def configure_tensorflow(intra_threads: int, inter_threads: int) -> None:
    """Pin this worker process's TF threads and turn GPU memory growth on (idempotent).

    Environment variables cover a TensorFlow not imported yet; once it is imported, the
    `tf.config` calls apply before its runtime starts, or fail if it already runs otherwise.
    """
    global _configured
    if _configured == (intra_threads, inter_threads):
        return
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(intra_threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = str(inter_threads)
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    if "tensorflow" not in sys.modules:
        return  # a task that never imports TF (the scaling benchmark): nothing more to do
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_threads)
        tf.config.threading.set_inter_op_parallelism_threads(inter_threads)
    except RuntimeError:
        raise WorkerSetupError(
            f"a Dask worker's TensorFlow already runs with other thread settings than this run's "
            f"({intra_threads} intra-op threads); restart the workers (results would differ)"
        ) from None
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised: TF_FORCE_GPU_ALLOW_GROWTH applied at start
            pass
    _configured = (intra_threads, inter_threads)


def check_single_task_worker() -> None:
    """Keras and TF state is per process: two trainings at once in one worker would mix."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # not in a Dask worker
        return
    state = worker.state
    if state.nthreads > 1 and state.total_resources.get("GPU") != 1:
        raise WorkerSetupError(
            f"the Dask worker at {worker.address} runs {state.nthreads} tasks at once; moncae "
            "needs one training per worker process: start workers with `dask worker ... "
            "--nthreads 1`"
        )


class WorkerTask:
    """`fn` as a worker runs it: TF threads and GPU memory growth set up first (picklable)."""

    def __init__(self, fn: Callable[[Any], Any], intra_threads: int,
                 inter_threads: int = 1) -> None:
        self.fn = fn
        self.intra_threads = intra_threads
        self.inter_threads = inter_threads

    def __call__(self, task: Any) -> Any:
        check_single_task_worker()
        isolate_global_rng()
        configure_tensorflow(self.intra_threads, self.inter_threads)
        return self.fn(task)


def lost_evaluation(task: Any, error: str) -> Any:
    """The failed record of an evaluation whose worker kept dying (e.g. out of host memory)."""
    from moncae.evaluate import EvalRecord, EvalResult, EvalTask, cached_dataset

    if not isinstance(task, EvalTask):
        raise MoncaeError(error)
    architecture, bottleneck = task.genome.describe(), ""
    try:
        from moncae.decode import bottleneck_shape, describe_with_bottleneck

        shape = cached_dataset(task.data).input_shape
        architecture = describe_with_bottleneck(task.genome, shape)
        bottleneck = "x".join(str(d) for d in bottleneck_shape(task.genome, shape))
    except Exception:  # noqa: BLE001 - the description is a nicety, the record is what matters
        pass
    record = EvalRecord(task.key, architecture, task.ref_point[0], task.ref_point[1], bottleneck,
                        0, 0, 0.0, 0.0, "failed", error[:300])
    return EvalResult(record)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


class DaskExecutor:
    """Evaluate tasks on Dask distributed workers; results come back in task order.

    Args:
        workers: start a LocalCluster of this many single-task worker processes (default: one
            per visible GPU, else cores // threads). Not together with `scheduler`.
        scheduler: address of a running scheduler (`tcp://HOST:8786`) instead of a LocalCluster.
        threads: TF intra-op threads per training on the workers (default: `training_threads()`,
            what the local executor uses here, so results are identical to a local run).
        inter_threads: TF inter-op threads per worker (no effect on results).
        retries: worker deaths tolerated per task before it is recorded as failed (LocalCluster;
            a running scheduler uses its own `distributed.scheduler.allowed-failures`).
        gpus: GPU ids for the LocalCluster's workers (default: `visible_gpus()`); worker i sees
            only `gpus[i % len(gpus)]` and declares the resource GPU=1.
        connect_timeout: seconds to reach the scheduler (default: Dask's `comm.timeouts.connect`).
        wait_for_workers: seconds to wait for a running scheduler's first worker.
        on_lost: builds the result of a task that kept killing its worker (default: a failed
            evaluation record).
    """

    name = "dask"

    def __init__(self, workers: int | None = None, scheduler: str | None = None, *,
                 threads: int | None = None, inter_threads: int = 1,
                 retries: int = DEFAULT_RETRIES, gpus: Sequence[str] | None = None,
                 connect_timeout: float | str | None = None, wait_for_workers: float = 60.0,
                 on_lost: Callable[[Any, str], Any] = lost_evaluation,
                 silence_logs: int = logging.ERROR) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise MoncaeError("--executor dask needs Dask distributed: pip install 'moncae[dask]'"
                              ) from None

        if workers is not None and scheduler:
            raise MoncaeError("pass either --workers (a cluster on this machine) or --scheduler "
                              f"(a running cluster), not both. Received: workers={workers}, "
                              f"scheduler={scheduler!r}")
        if workers is not None and workers < 1:
            raise MoncaeError(f"`workers` must be >= 1. Received: workers={workers}")
        self.threads = threads or training_threads()
        self.inter_threads = inter_threads
        self.retries = retries
        self.on_lost = on_lost
        self.scheduler = scheduler
        self.cluster = None
        self.client = None
        if scheduler:
            if connect_timeout is None:
                import dask

                connect_timeout = dask.config.get("distributed.comm.timeouts.connect")
            try:
                self.client = Client(scheduler, timeout=connect_timeout, set_as_default=False)
            except Exception as err:  # noqa: BLE001 - refused, timed out, bad scheme, not Dask
                raise MoncaeError(
                    f"cannot reach the Dask scheduler at {scheduler} ({_one_line(err)}); check "
                    "--scheduler (tcp://HOST:8786) and that `dask scheduler` runs there"
                ) from None
            try:
                self.client.wait_for_workers(1, timeout=wait_for_workers)
            except (TimeoutError, OSError):
                self.close()
                raise MoncaeError(
                    f"no Dask worker joined the scheduler at {scheduler} within "
                    f"{wait_for_workers:g} s; start workers with `dask worker {scheduler} "
                    "--nthreads 1` (one per GPU)"
                ) from None
        else:
            self.cluster = self._start_cluster(workers, gpus, silence_logs)
            self.client = Client(self.cluster, set_as_default=False)
            n_workers = len(self.cluster.worker_spec)
            try:
                self.client.wait_for_workers(n_workers, timeout=wait_for_workers)
            except (TimeoutError, OSError):
                self.close()
                raise MoncaeError(f"the local Dask workers did not start within "
                                  f"{wait_for_workers:g} s (see the messages above)") from None

    def _start_cluster(self, workers: int | None, gpus: Sequence[str] | None, silence_logs: int):
        from distributed import LocalCluster, Nanny

        gpus = list(visible_gpus() if gpus is None else gpus)
        n = workers or (len(gpus) if gpus else max(1, usable_cores() // self.threads))
        env = {"TF_NUM_INTRAOP_THREADS": str(self.threads),
               "TF_NUM_INTEROP_THREADS": str(self.inter_threads),
               "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
        cluster = LocalCluster(
            n_workers=0, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, silence_logs=silence_logs,
            scheduler_kwargs={"allowed_failures": self.retries},
            # TF's memory is not Dask data: with a limit, a worker whose TF holds most of its
            # share pauses (and takes no task again); the OS's OOM kill is a retry, then a failure
            memory_limit=0, env=env,
        )
        base = cluster.new_spec["options"]
        for i in range(n):  # one spec per worker: each sees its own GPU
            options = dict(base)
            if gpus:
                options["env"] = {**env, "CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]}
                options["resources"] = {"GPU": 1}
            cluster.worker_spec[f"moncae-{i}"] = {"cls": Nanny, "options": options}
        cluster.scale(n)
        return cluster

    @property
    def address(self) -> str:
        return self.client.scheduler.address

    def worker_count(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    def _resources(self) -> dict[str, int] | None:
        """Ask for one GPU per task when the workers declare GPUs (`--resources GPU=1`)."""
        workers = self.client.scheduler_info(n_workers=-1)["workers"].values()
        return {"GPU": 1} if any(w.get("resources", {}).get("GPU") for w in workers) else None

    def _check_connected(self) -> None:
        if self.client is None or self.client.status != "running":
            where = self.scheduler or "the local cluster"
            raise MoncaeError(f"lost the connection to the Dask scheduler at {where}; "
                              f"{RESUME_HINT}")

    def map_ordered(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Any]:
        """Submit every task now; yield each result once it and all tasks before it are done."""
        from distributed import as_completed

        tasks = list(tasks)
        if not tasks:
            return
        self._check_connected()
        wrapped = WorkerTask(fn, self.threads, self.inter_threads)
        batch = uuid.uuid4().hex[:8]
        resources = self._resources()
        futures = [self.client.submit(wrapped, task, key=f"moncae-eval-{batch}-{i}", pure=False,
                                      resources=resources) for i, task in enumerate(tasks)]
        position = {f.key: i for i, f in enumerate(futures)}
        ready: dict[int, Any] = {}
        following = 0
        try:
            for future in as_completed(futures, loop=self.client.loop):
                ready[position[future.key]] = future
                while following in ready:
                    yield self._outcome(ready.pop(following), tasks[following])
                    futures[following] = None  # release the result on the cluster
                    following += 1
        finally:
            left = [f for f in futures if f is not None]
            if left and self.client.status == "running":
                self.client.cancel(left)

    def _outcome(self, future, task: Any) -> Any:
        from distributed import KilledWorker

        try:
            return future.result()
        except KilledWorker as err:
            return self.on_lost(task, f"the worker died each time it ran this evaluation (out of "
                                      f"memory?): {_one_line(err)}")
        except CancelledError:
            self._check_connected()
            raise MoncaeError(f"Dask cancelled an evaluation (was the cluster shut down?); "
                              f"{RESUME_HINT}") from None

    def close(self) -> None:
        """Disconnect; shut down the LocalCluster this executor started (never a remote one)."""
        client, cluster, self.client, self.cluster = self.client, self.cluster, None, None
        if client is not None:
            lost = client.status != "running"
            quiet = logging.getLogger("distributed.client")
            level = quiet.level
            if lost:  # its reconnection attempt, cancelled here, would log a traceback
                quiet.setLevel(logging.CRITICAL)
            try:
                client.close(timeout=10)
            except Exception:  # noqa: BLE001 - closing after a lost scheduler must not mask the error
                pass
            finally:
                quiet.setLevel(level)
        if cluster is not None:
            try:
                cluster.close(timeout=30)
            except Exception:  # noqa: BLE001
                pass

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
