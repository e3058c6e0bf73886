"""`DaskExecutor`: a generation's trainings on Dask distributed workers, results in task order."""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError
from typing import Any

from moncae.errors import MoncaeError, MoncaeWarning, one_line
from moncae.executors.dask.worker import WorkerTask, tasks_run
from moncae.executors.resources import (
    cpu_instruction_sets,
    gpu_assignment,
    training_threads,
    usable_cores,
    visible_gpus,
)
from moncae.executors.worker_setup import RECYCLE_AFTER, lost_evaluation

__all__ = ["DEFAULT_RETRIES", "DaskExecutor"]

DEFAULT_RETRIES = 3  # worker deaths tolerated per task (Dask's `allowed-failures` default)
RESUME_HINT = ("the evaluations journaled so far are kept: restart the scheduler and workers, then "
               "run the same command with --resume")


SCHEDULER_ADDRESS = re.compile(r"((tcp|tls|ucx|ws|wss)://)?(\[[0-9a-fA-F:.]+\]|[^\s:/\[\]]+):\d{1,5}")
HANDSHAKE_GRACE = 15.0  # seconds beyond the connect timeout for a scheduler's first answer
PROBE_INTERVAL = 0.5  # seconds between two tries of a port that refused the connection


def _probe(address: re.Match, seconds: float) -> None:
    """What Dask would only say after its connect timeout (30 s by default), said at once: a host
    name that does not resolve fails now; a port nothing listens on yet is said in a warning, then
    tried again until the timeout (a scheduler started beside the search takes seconds to listen),
    and named in the error if it never answers. A connection made, or a slow or silent network, is
    left to Dask."""
    if address.group(2) == "ucx":
        return
    host = address.group(3).strip("[]")
    port = int(address.group(0).rsplit(":", 1)[1])
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is not in 1..65535")
    deadline, warned = time.monotonic() + seconds, False
    while True:
        try:
            socket.create_connection((host, port), timeout=max(0.1, min(5.0, deadline - time.monotonic()))).close()
            return
        except socket.gaierror as err:
            raise OSError(f"the host name {host} does not resolve ({err.strerror})") from None
        except ConnectionRefusedError:
            if time.monotonic() + PROBE_INTERVAL > deadline:
                raise OSError(f"nothing listens on port {port} of {host} (connection refused for "
                              f"{seconds:g} s)") from None
            if not warned:
                warnings.warn(MoncaeWarning(f"nothing listens on port {port} of {host} yet: waiting up to "
                                            f"{seconds:g} s for the Dask scheduler to start"), stacklevel=2)
                warned = True
            time.sleep(PROBE_INTERVAL)
        except OSError:
            return


def _connect(scheduler: str, timeout):
    """A client of the scheduler at `scheduler`, or the error of trying. Dask's connect timeout
    does not cover its handshake: a server that accepts the connection and never answers as a
    Dask scheduler (another service on that port) would hang the search for good, so the attempt
    runs in a thread that is given up after the timeout plus `HANDSHAKE_GRACE`."""
    from dask.utils import parse_timedelta
    from distributed import Client

    if not SCHEDULER_ADDRESS.fullmatch(scheduler):  # refused before Dask tries it (a failed Client
        # waits 60 s as it is collected, and prints a traceback)
        raise ValueError("not an address of the form tcp://HOST:PORT")
    seconds = parse_timedelta(timeout, default="seconds")
    _probe(SCHEDULER_ADDRESS.fullmatch(scheduler), seconds)
    box: dict = {}

    def attempt() -> None:
        try:
            box["client"] = Client(scheduler, timeout=timeout, set_as_default=False)
        except BaseException as err:  # noqa: BLE001 - handed to the caller
            box["error"] = err

    thread = threading.Thread(target=attempt, name="moncae-dask-connect", daemon=True)
    thread.start()
    thread.join(seconds + HANDSHAKE_GRACE)
    if thread.is_alive():
        raise TimeoutError(f"no answer as a Dask scheduler within {seconds + HANDSHAKE_GRACE:g} s (another "
                           "service on that port?)")
    if "error" in box:
        raise box["error"]
    return box["client"]


class DaskExecutor:
    """Evaluate tasks on Dask distributed workers; results come back in task order.

    Args:
        workers: start a LocalCluster of this many single-task worker processes (default:
            `models_per_gpu` per visible GPU, else cores // threads). Not together with `scheduler`.
        scheduler: address of a running scheduler (`tcp://HOST:8786`) instead of a LocalCluster.
        threads: TF intra-op threads per training on the workers (default: `training_threads()`,
            what the local executor uses here, so results are identical to a local run).
        inter_threads: TF inter-op threads per worker (no effect on results).
        retries: worker deaths tolerated per task before it is recorded as failed (LocalCluster;
            a running scheduler uses its own `distributed.scheduler.allowed-failures`).
        gpus: GPU ids for the LocalCluster's workers (default: `visible_gpus()`); each worker sees
            only its own (`gpu_assignment`) and declares the resource GPU=1.
        models_per_gpu: LocalCluster workers per GPU, i.e. models trained at once on each GPU
            (each with TF memory growth on); several small models can fill one GPU better.
        connect_timeout: seconds to reach the scheduler (default: Dask's `comm.timeouts.connect`).
        wait_for_workers: seconds to wait for a running scheduler's first worker.
        on_lost: builds the result of a task that kept killing its worker (default: a failed
            evaluation record).
        recycle_after: tasks a LocalCluster worker runs before it is restarted, between two calls
            of `map_ordered` (TensorFlow's memory, `RECYCLE_AFTER`; None: never). A running
            scheduler's workers are the user's: `dask worker --lifetime ... --lifetime-restart`.
    """

    name = "dask"

    def __init__(self, workers: int | None = None, scheduler: str | None = None, *,
                 threads: int | None = None, inter_threads: int = 1,
                 retries: int = DEFAULT_RETRIES, gpus: Sequence[str] | None = None,
                 models_per_gpu: int = 1,
                 connect_timeout: float | str | None = None, wait_for_workers: float = 60.0,
                 on_lost: Callable[[Any, str], Any] = lost_evaluation,
                 recycle_after: int | None = RECYCLE_AFTER,
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
        if models_per_gpu < 1:
            raise MoncaeError(f"`models_per_gpu` must be >= 1. Received: models_per_gpu={models_per_gpu}")
        self.models_per_gpu = models_per_gpu
        self.threads = threads or training_threads()
        self.inter_threads = inter_threads
        self.retries = retries
        self.on_lost = on_lost
        self.recycle_after = recycle_after
        self.scheduler = scheduler
        self.cluster = None
        self.client = None
        if scheduler:
            if connect_timeout is None:
                import dask

                connect_timeout = dask.config.get("distributed.comm.timeouts.connect")
            try:
                self.client = _connect(scheduler, connect_timeout)
            except Exception as err:  # noqa: BLE001 - refused, timed out, bad scheme, not Dask
                raise MoncaeError(
                    f"cannot reach the Dask scheduler at {scheduler} ({one_line(err, limit=1000)}); check "
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
        placement = gpu_assignment(gpus, workers, self.models_per_gpu)
        n = len(placement) if gpus else workers or max(1, usable_cores() // self.threads)
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
        base = {**cluster.new_spec["options"], "preload": ["moncae.executors.dask.preload"]}  # Ctrl-C
        for i in range(n):  # one spec per worker: each sees its own GPU
            options = dict(base)
            if gpus:
                options["env"] = {**env, "CUDA_VISIBLE_DEVICES": placement[i]}
                options["resources"] = {"GPU": 1}
            cluster.worker_spec[f"moncae-{i}"] = {"cls": Nanny, "options": options}
        cluster.scale(n)
        return cluster

    @property
    def address(self) -> str:
        return self.client.scheduler.address

    def worker_count(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    def worker_cpus(self) -> str | None:
        """The instruction sets (`cpu_instruction_sets`) of the workers connected now, each kind
        once, sorted, joined by "; " (one kind: the same string a local run records); None when
        no worker answers. Workers that join later are not seen."""
        try:
            answers = self.client.run(cpu_instruction_sets)
        except Exception:  # noqa: BLE001 - a record, never a reason to stop the run
            return None
        kinds = sorted({a for a in answers.values() if a})
        return "; ".join(kinds) or None

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
        self._recycle()
        wrapped = WorkerTask(fn, self.threads, self.inter_threads)
        batch = uuid.uuid4().hex[:8]
        resources = self._resources()
        with warnings.catch_warnings():  # a task carries its parents' / lower rung's model bytes by
            # design (README: Dask); Dask's advice to load the data with Dask does not apply
            warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
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

    def _recycle(self) -> None:
        """Restart the LocalCluster's workers that have run `recycle_after` tasks; called between
        batches, when none runs. Results do not change: every training is seeded and self-contained."""
        if self.cluster is None or not self.recycle_after:
            return
        try:
            due = [address for address, n in self.client.run(tasks_run).items() if n >= self.recycle_after]
            if due:  # a restart that fails or times out leaves that worker as it was
                self.client.restart_workers(due, raise_for_error=False)
        except Exception as err:  # noqa: BLE001 - memory housekeeping, never a reason to stop the run
            warnings.warn(MoncaeWarning(f"could not restart Dask workers to free TensorFlow's memory; "
                                        f"going on with them: {one_line(err, limit=300)}"), stacklevel=2)

    def _outcome(self, future, task: Any) -> Any:
        from distributed import KilledWorker

        try:
            return future.result()
        except KilledWorker as err:
            return self.on_lost(task, f"the worker died each time it ran this evaluation (out of "
                                      f"memory?): {one_line(err, limit=1000)}")
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
