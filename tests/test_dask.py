"""The dask executor: same results as local, ordered results, and every fault a cluster has.

Real Dask clusters on 127.0.0.1 only (LocalCluster, or `dask scheduler`/`dask worker`
subprocesses where the test must kill the scheduler); short connection timeouts.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from moncae.cli.main import main
from moncae.config import resolve_config
from moncae.errors import MoncaeError, MoncaeWarning
from moncae.evaluation.records import TIMING_COLUMNS, EvalRecord, EvalResult, EvalTask, TrainSettings
from moncae.evaluation.surrogate import surrogate_task
from moncae.executors import make_executor
from moncae.executors.dask import (
    DaskExecutor,
    WorkerSetupError,
    WorkerTask,
    lost_evaluation,
    training_threads,
    visible_gpus,
)
from moncae.search.loop import SearchProgress, run_search

pytest.importorskip("distributed")

SEED = 5
CSVS = ("evaluations.csv", "population.csv", "generations.csv")


def smoke(out: Path, **overrides):
    """The smoke preset; the local reference trains in this process (`workers = 1`: the driver's
    thread count, which the Dask workers use too)."""
    overrides = {"workers": 1, **overrides}
    return resolve_config(preset="smoke", dataset="mnist_5k", seed=SEED, out=str(out), **overrides)


def comparable(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path)
    return df.drop(columns=[c for c in (*TIMING_COLUMNS, "seconds") if c in df.columns])


def assert_same_run(a: Path, b: Path) -> None:
    """Bit-identical CSVs (timings aside): not merely close floats."""
    for name in CSVS:
        pd.testing.assert_frame_equal(comparable(a / name), comparable(b / name), check_exact=True)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    return run_search(smoke(tmp_path_factory.mktemp("local")))


@pytest.fixture(scope="module")
def two_workers():
    """What `--executor dask --workers 2` builds; shared by the tests (TF loads once per worker)."""
    executor = make_executor("dask", workers=2)
    assert isinstance(executor, DaskExecutor) and executor.worker_count() == 2
    with executor:
        yield executor


# -- results -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_tasks_carrying_model_bytes_give_no_large_graph_warning(two_workers):
    """A promotion or an inheriting child carries model bytes (by design): Dask's warning about a
    large graph, and its advice, printed a paragraph on every such batch."""
    import warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert list(two_workers.map_ordered(len, [b"0" * (11 * 2**20)] * 2)) == [11 * 2**20] * 2
    assert not [w for w in seen if "large graph" in str(w.message)], [str(w.message) for w in seen]


@pytest.mark.slow
def test_smoke_run_on_two_workers_equals_the_local_run(tmp_path, reference_run, two_workers):
    result = run_search(smoke(tmp_path, executor="dask", workers=2), executor=two_workers)
    assert_same_run(reference_run.run_dir, result.run_dir)
    assert two_workers.client.status == "running", "run_search must not close a given executor"


@pytest.mark.slow  # starts a Dask LocalCluster (seconds)
def test_results_come_in_task_order_whatever_order_they_finish(two_workers):
    def nap(seconds):  # a local function: shipped by value to the workers
        import time

        time.sleep(seconds)
        return seconds, os.getpid()

    durations = [0.6, 0.05, 0.3, 0.01, 0.2, 0.0]
    results = list(two_workers.map_ordered(nap, durations))
    assert [r[0] for r in results] == durations
    assert len({pid for _, pid in results}) == 2, "both workers must have been used"
    assert list(two_workers.map_ordered(nap, [])) == []
    env = two_workers.client.run(lambda: os.environ.get("TF_NUM_INTRAOP_THREADS"))
    assert set(env.values()) == {str(training_threads())}
    # Ctrl-C in a terminal reaches every process of the group: the workers leave it to the driver
    handlers = two_workers.client.run(lambda: signal.getsignal(signal.SIGINT))
    assert set(handlers.values()) == {signal.SIG_IGN}


@pytest.mark.slow  # starts a Dask LocalCluster (seconds)
def test_a_local_cluster_worker_is_restarted_between_batches_after_recycle_after_tasks():
    """TensorFlow keeps every traced graph, so the LocalCluster's workers are restarted now and
    then, between batches (never under a running task); results keep their order."""
    def pid(i):  # a local function: shipped by value to the worker
        import os

        return i, os.getpid()

    with DaskExecutor(workers=1, threads=1, recycle_after=2) as executor:
        first = list(executor.map_ordered(pid, [0, 1, 2]))  # one batch: not cut short at 2
        assert [i for i, _ in first] == [0, 1, 2] and len({p for _, p in first}) == 1
        second = list(executor.map_ordered(pid, [3]))
        assert second[0][1] != first[0][1]
        assert list(executor.map_ordered(pid, [4])) == [(4, second[0][1])]  # 1 task since: kept
        assert executor.worker_count() == 1
        executor.recycle_after = 1

        def refuse(*args, **kwargs):
            raise OSError("connection reset")

        executor.client.restart_workers = refuse  # a failed restart: one warning, the batch runs
        with pytest.warns(MoncaeWarning, match="could not restart Dask workers.*connection reset"):
            assert list(executor.map_ordered(pid, [5])) == [(5, second[0][1])]
    with DaskExecutor(workers=1, threads=1, recycle_after=None) as executor:
        pids = {p for _ in range(2) for _, p in executor.map_ordered(pid, [0, 1, 2])}
        assert len(pids) == 1


@pytest.mark.slow  # starts a Dask LocalCluster (seconds)
def test_surrogate_run_on_two_workers_equals_the_local_run(stub_config, tmp_path, two_workers):
    """The executor's ordering and bookkeeping with the surrogate evaluator (no training)."""
    local = run_search(stub_config(tmp_path / "local"), task_fn=surrogate_task).run_dir
    remote = run_search(stub_config(tmp_path / "dask"), executor=two_workers, task_fn=surrogate_task).run_dir
    assert_same_run(local, remote)


# -- faults --------------------------------------------------------------------------------------
class KillOneBusyWorker(SearchProgress):
    """After an evaluation is journaled, SIGKILL a worker that is running another one."""

    def __init__(self, executor: DaskExecutor) -> None:
        self.executor = executor
        self.killed: list[int] = []

    def evaluation_done(self, record: EvalRecord) -> None:
        if self.killed:
            return
        client = self.executor.client
        busy = [addr for addr, keys in client.processing().items() if keys]
        if busy:
            pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            self.killed.append(pid)


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_replaced_and_every_evaluation_recorded_once(
        tmp_path, reference_run, two_workers):
    progress = KillOneBusyWorker(two_workers)
    result = run_search(smoke(tmp_path), executor=two_workers, progress=progress)
    assert progress.killed, "no worker was busy when an evaluation came back"
    ev = pd.read_csv(result.run_dir / "evaluations.csv")
    assert ev["genome_key"].is_unique and (ev["status"] == "ok").all()
    assert_same_run(reference_run.run_dir, result.run_dir)  # the retried training too
    two_workers.client.wait_for_workers(2, timeout=30)  # the nanny restarts the killed worker


@pytest.mark.slow
def test_a_task_that_keeps_killing_its_worker_is_given_up_after_the_retries():
    def die(task):
        os.kill(os.getpid(), signal.SIGKILL)

    lost = []
    with DaskExecutor(workers=1, retries=1, on_lost=lambda task, error: lost.append(error) or task
                      ) as executor:
        assert list(executor.map_ordered(die, ["victim"])) == ["victim"]
    assert len(lost) == 1 and "worker died" in lost[0]


@pytest.mark.slow
def test_a_lost_evaluation_is_a_failed_record_at_the_reference_point(reference_run):
    config = reference_run.config
    task = EvalTask(reference_run.population[0], config.data_spec(), TrainSettings(), 1,
                    config.ref_point, key="victim")
    rec = lost_evaluation(task, "the worker died each time").record
    assert (rec.genome_key, rec.status, rec.rec_loss, rec.loc) == ("victim", "failed", 4.0, 12.0)
    assert rec.error == "the worker died each time" and rec.bottleneck
    with pytest.raises(MoncaeError, match="worker died"):
        lost_evaluation("not an evaluation", "the worker died")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_evaluation_fn():
    """Cheap, deterministic in the genome: stands in for training where only the loop matters.

    Made inside a function so that Dask ships it by value (workers cannot import test modules).
    """

    def fake_evaluation(task: EvalTask) -> EvalResult:
        import time

        time.sleep(0.2)
        blocks = len(task.genome.blocks)
        loss = 0.1 + 0.1 * blocks + (task.seed % 97) / 1000
        return EvalResult(EvalRecord(task.key, task.genome.describe(), loss, 1.0 + blocks, "",
                                     10 * blocks, 1, 0.2, 0.2, "ok"))

    return fake_evaluation


@pytest.mark.slow
def test_scheduler_lost_mid_run_is_a_resume_error_and_resume_completes(tmp_path):
    address = f"tcp://127.0.0.1:{_free_port()}"
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "5s"}
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port",
         address.rsplit(":", 1)[1], "--no-dashboard"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen(
        [sys.executable, "-m", "dask", "worker", address, "--nthreads", "1", "--no-dashboard"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    class KillScheduler(SearchProgress):  # in generation 1: generation 0 is checkpointed
        def evaluation_done(self, record):
            if record.generation >= 1 and scheduler.poll() is None:
                scheduler.kill()
                scheduler.wait()

    config = smoke(tmp_path, generations=3)
    fake = fake_evaluation_fn()
    try:
        executor = DaskExecutor(scheduler=address, connect_timeout=20, wait_for_workers=30)
        try:
            with pytest.raises(MoncaeError, match="--resume") as err:
                run_search(config, executor=executor, progress=KillScheduler(),
                           task_fn=fake)
        finally:
            executor.close()
    finally:
        for proc in (worker, scheduler):
            proc.kill()
            proc.wait()
    assert "\n" not in str(err.value)
    journaled = pd.read_csv(config.run_dir / "evaluations.csv")
    assert journaled["generation"].max() == 1 and len(journaled) < 3 * config.population
    resumed = run_search(config, resume=True, task_fn=fake)
    straight = run_search(smoke(tmp_path / "straight", generations=3), task_fn=fake)
    assert_same_run(straight.run_dir, resumed.run_dir)


@pytest.mark.slow
def test_unreachable_scheduler_exits_2_with_one_line_and_writes_nothing(tmp_path):
    import dask

    out = tmp_path / "out"
    args = ["search", "--dataset", "mnist_5k", "--seed", "1", "--preset", "smoke", "--executor",
            "dask", "--scheduler", "tcp://127.0.0.1:1", "--out", str(out)]
    started = time.perf_counter()
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "tcp://127.0.0.1:1" in errors[0] and "scheduler" in errors[0]
    assert "Traceback" not in result.output
    assert not out.exists()
    assert time.perf_counter() - started < 30


@pytest.mark.parametrize("address", ["not-an-address", "tcp://", "foo://x:1", "tcp://h:"])
def test_a_malformed_scheduler_address_is_refused_at_once(address):
    """Before Dask tries it: a failed Client waited 60 s as it was collected, then printed a
    traceback (a helper's audit)."""
    started = time.perf_counter()
    with pytest.raises(MoncaeError, match="not an address of the form tcp://HOST:PORT"):
        DaskExecutor(scheduler=address)
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("address, said", [
    (lambda: "tcp://no-such-host.invalid:8786", "the host name no-such-host.invalid does not resolve"),
    (lambda: "127.0.0.1:70000", "port 70000 is not in 1..65535"),
], ids=["unresolvable", "port-out-of-range"])
def test_a_scheduler_that_cannot_be_there_is_refused_at_once_not_after_the_connect_timeout(address, said):
    """Dask retries these until its connect timeout (30 s by default), silently."""
    started = time.perf_counter()
    with pytest.raises(MoncaeError, match=f"cannot reach the Dask scheduler at .*{said}"):
        DaskExecutor(scheduler=address(), connect_timeout=20)
    assert time.perf_counter() - started < 10


def test_a_port_nothing_listens_on_is_said_at_once_and_waited_for_until_the_connect_timeout():
    """A scheduler started beside the search takes seconds to listen: it is waited for, as Dask
    does, but the wait is said, and the error names the refused port."""
    started = time.perf_counter()
    with pytest.warns(MoncaeWarning, match="nothing listens on port .* of 127.0.0.1 yet: waiting up to 1.5 s"):
        with pytest.raises(MoncaeError, match=r"nothing listens on port .* \(connection refused for 1.5 s\)"):
            DaskExecutor(scheduler=f"tcp://127.0.0.1:{_free_port()}", connect_timeout=1.5)
    assert 1.0 < time.perf_counter() - started < 10


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_scheduler_setting_is_refused_not_taken_for_none(stub_config, blank):
    with pytest.raises(MoncaeError, match="`scheduler` must be an address such as tcp://HOST:8786"):
        stub_config(executor="dask", scheduler=blank)


def test_a_server_that_never_answers_as_a_scheduler_is_given_up(monkeypatch):
    """It accepts the connection and says nothing (another service on the port): Dask's connect
    timeout does not cover the handshake, and the search hung for good (a helper's audit)."""
    import moncae.executors.dask.executor as dask_executor

    monkeypatch.setattr(dask_executor, "HANDSHAKE_GRACE", 0.3)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        started = time.perf_counter()
        with pytest.raises(MoncaeError, match="no answer as a Dask scheduler within 0.5 s"):
            DaskExecutor(scheduler=f"tcp://127.0.0.1:{server.getsockname()[1]}", connect_timeout=0.2)
        assert time.perf_counter() - started < 10


@pytest.mark.slow
def test_each_local_worker_sees_one_gpu_and_tasks_ask_for_one(two_workers):
    with DaskExecutor(workers=3, gpus=["5", "7"]) as executor:  # no GPU needed to place them
        seen = executor.client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
        assert sorted(seen.values()) == ["5", "5", "7"]
        assert executor._resources() == {"GPU": 1}
        assert list(executor.map_ordered(abs, [-1, -2, -3])) == [1, 2, 3]
    assert two_workers._resources() is None


@pytest.mark.slow
def test_models_per_gpu_starts_that_many_workers_on_each_gpu():
    with make_executor("dask", models_per_gpu=2, gpus=["5", "7"]) as executor:
        seen = executor.client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
        assert sorted(seen.values()) == ["5", "5", "7", "7"]


def test_the_run_records_its_workers_cpus(two_workers):
    """A Dask run's `execution.cpu` is what its workers report (here: this machine's), each kind
    once; a worker that cannot answer leaves it None, never stops the run."""
    from types import SimpleNamespace

    from moncae.executors import execution_record
    from moncae.executors.resources import cpu_instruction_sets

    record = execution_record(two_workers)
    assert record == {"executor": "dask", "workers": 2, "threads": two_workers.threads,
                      "cpu": cpu_instruction_sets()}
    mixed = object.__new__(DaskExecutor)
    mixed.client = SimpleNamespace(run=lambda fn: {"a": "x86_64: avx2", "b": "aarch64", "c": "x86_64: avx2"})
    assert mixed.worker_cpus() == "aarch64; x86_64: avx2"

    def unreachable(fn):
        raise OSError("gone")

    mixed.client = SimpleNamespace(run=unreachable)
    assert mixed.worker_cpus() is None


# -- settings ------------------------------------------------------------------------------------
def test_workers_and_scheduler_together_are_refused():
    with pytest.raises(MoncaeError, match="not both"):
        DaskExecutor(workers=2, scheduler="tcp://127.0.0.1:1")


@pytest.mark.slow  # imports TensorFlow
def test_training_threads_follow_tensorflow_rule(monkeypatch):
    import tensorflow as tf

    if tf.config.threading.get_intra_op_parallelism_threads() > 0:
        pytest.skip("this process pinned TF's intra-op threads itself")
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "3")
    assert training_threads() == 3
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS")
    assert training_threads() == len(os.sched_getaffinity(0))


@pytest.mark.slow
def test_a_worker_running_several_tasks_at_once_is_refused():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
                      ) as cluster, Client(cluster, set_as_default=False) as client:
        future = client.submit(WorkerTask(abs, intra_threads=1), -1)
        with pytest.raises(WorkerSetupError, match="--nthreads 1"):
            future.result()


@pytest.mark.parametrize("env, expected", [("0,2", ["0", "2"]), ("", []), ("-1", []), ("3", ["3"])])
def test_visible_gpus_follow_cuda_visible_devices(monkeypatch, env, expected):
    from moncae.executors import resources

    monkeypatch.setattr(resources, "_nvidia_present", lambda: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", env)
    assert visible_gpus() == expected


def test_a_stale_cuda_visible_devices_on_a_machine_without_nvidia_is_said_and_ignored(monkeypatch):
    """It made `--workers auto` train one at a time, with other numbers, silently (an audit)."""
    from moncae.errors import MoncaeWarning
    from moncae.executors import resources

    monkeypatch.setattr(resources, "_nvidia_present", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.warns(MoncaeWarning, match="CUDA_VISIBLE_DEVICES=0 names GPUs, but this machine has no NVIDIA"):
        assert visible_gpus() == []
