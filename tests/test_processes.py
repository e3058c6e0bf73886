"""The local executor's worker processes (`--workers auto|N`): task order, equality with the
in-process executor, a worker that dies, parsing and resolving `workers`, the thread count a run
records, GPU placement for `--models-per-gpu`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from process_tasks import Costed, Routed, die_on_two, fail_on_one, slow_square, started_at, worker_pid

from moncae.config import parse_workers
from moncae.errors import MoncaeError
from moncae.evaluation.records import TIMING_COLUMNS
from moncae.evaluation.surrogate import surrogate_task
from moncae.executors import LocalExecutor, make_executor, resolve_workers
from moncae.executors.processes import ProcessExecutor, threads_per_worker
from moncae.executors.resources import cpu_instruction_sets, gpu_assignment, instruction_sets
from moncae.search.loop import run_search
from tests.runs import Messages


def test_process_executor_keeps_task_order_and_equals_in_process():
    tasks = list(range(6))
    in_process = [r[0] for r in LocalExecutor().map_ordered(slow_square, tasks)]
    with ProcessExecutor(2, threads=1) as executor:
        got = list(executor.map_ordered(slow_square, tasks))
        assert [g[0] for g in got] == in_process == [t * t for t in tasks]
        pids = {g[1] for g in got}
        assert len(pids) == 2 and os.getpid() not in pids
        assert {g[2] for g in got} == {"1"}  # TF's threads are set in each worker before TF loads
        assert list(executor.map_ordered(slow_square, [])) == []
        results = executor.map_ordered(fail_on_one, [0, 1, 2])  # a task's own error: in its turn
        assert next(results) == 0
        with pytest.raises(ValueError, match="task one"):
            next(results)


def test_a_free_worker_takes_first_the_tasks_whose_affinity_it_ran_before():
    with ProcessExecutor(2, threads=1) as executor:
        first = dict(executor.map_ordered(worker_pid, [Routed("a"), Routed("b")]))
        assert len(set(first.values())) == 2
        # the same genomes again, in the other order: each goes back to its worker (where a
        # promoted genome finds its lower-rung model warm); results still come in task order
        again = list(executor.map_ordered(worker_pid, [Routed("b"), Routed("a"), Routed("c")]))
        assert [a for a, _ in again] == ["b", "a", "c"]
        assert all(pid == first[a] for a, pid in again[:2])


def test_the_costliest_tasks_start_first_and_results_keep_task_order():
    tasks = [Costed("a", 1.0), Costed("b", 5.0), Costed("c", 0.0), Costed("d", 5.0)]
    with ProcessExecutor(1, threads=1) as executor:  # one worker: it runs them one after another
        got = list(executor.map_ordered(started_at, tasks))
    assert [name for name, _ in got] == ["a", "b", "c", "d"]
    # longest first (a rung then does not end with one long training and idle workers); ties in
    # task order
    assert [name for name, _ in sorted(got, key=lambda g: g[1])] == ["b", "d", "a", "c"]


@pytest.mark.slow  # starts worker processes three times
def test_a_worker_that_dies_costs_only_its_own_task():
    lost = []
    with ProcessExecutor(2, threads=1, on_lost=lambda task, why: lost.append(why) or ("lost", task)
                         ) as executor:
        assert list(executor.map_ordered(die_on_two, [0, 1, 2, 3, 4])) == [0, -1, ("lost", 2), -3, -4]
        assert len(lost) == 1 and "2 times; killed by SIGKILL" in lost[0]
        assert list(executor.map_ordered(die_on_two, [5, 6])) == [-5, -6]  # new workers took over


@pytest.mark.slow  # starts a Python process and its worker
def test_a_script_without_a_main_guard_gets_one_error_naming_the_guard(tmp_path, tiny_npz):
    """Each spawned worker imports the script again, so an unguarded `run_search` there starts
    another search and the worker exits: every training was recorded as lost, "out of memory?"."""
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from moncae.config import resolve_config\n"
        "from moncae.evaluation.surrogate import surrogate_task\n"
        "from moncae.search.loop import run_search\n"
        f"run_search(resolve_config(dataset={str(tiny_npz)!r}, seed=3, out={str(tmp_path / 'out')!r}, "
        "generations=1, population=2, workers=2), task_fn=surrogate_task)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240,
                          cwd=tmp_path)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "a worker process could not start" in last and 'if __name__ == "__main__":' in last, last
    assert "out of memory" not in done.stderr


@pytest.mark.slow  # starts a process
def test_a_worker_holds_ctrl_c_back_from_its_first_instruction_and_the_driver_keeps_its_handler():
    """Workers are started with SIGINT blocked (inherited), so a Ctrl-C while one still imports
    prints no traceback of its own; the driver's handler is back at once."""
    import multiprocessing
    import signal

    from process_tasks import report_sigint

    from moncae.executors.processes import _sigint_held

    before = signal.getsignal(signal.SIGINT)
    context = multiprocessing.get_context("spawn")
    queue = context.SimpleQueue()
    with _sigint_held():
        process = context.Process(target=report_sigint, args=(queue,))
        process.start()
    assert signal.getsignal(signal.SIGINT) is before
    assert queue.get() == 1
    process.join(timeout=30)


def test_a_ctrl_c_while_a_worker_is_handed_a_task_is_delivered_after_not_lost():
    """SIGINT was ignored while a task was handed to a worker (~20 ms at a worker's start, 2-3 ms
    for each task), and a Ctrl-C then was thrown away: the search ran on to its end (a helper's audit).
    In a fresh interpreter (pytest-xdist runs tests outside the main thread)."""
    import subprocess
    import sys

    code = ("import os, signal\n"
            "from moncae.executors.processes import _sigint_held\n"
            "try:\n"
            "    with _sigint_held():\n"
            "        os.kill(os.getpid(), signal.SIGINT)\n"
            "        print('held', flush=True)\n"
            "    print('lost')\n"
            "except KeyboardInterrupt:\n"
            "    print('delivered')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    # delivered: at once where another thread of the process takes it (NumPy's BLAS threads), else at the end
    assert done.stdout.rstrip().endswith("delivered") and "lost" not in done.stdout, (done.stdout, done.stderr)


# -- workers = auto | N ---------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [(None, "auto"), ("auto", "auto"), (" AUTO ", "auto"),
                                             ("3", 3), (2, 2)])
def test_workers_parse(value, expected):
    assert parse_workers(value) == expected


@pytest.mark.parametrize("value", [0, "0", "many", -1, 1.5, True, ""])
def test_bad_workers_are_one_line_errors_naming_the_valid_values(value):
    with pytest.raises(MoncaeError, match="positive integer or 'auto'"):
        parse_workers(value)


def test_bad_workers_flag_exits_2_with_one_line(tmp_path, tiny_npz):
    from moncae.cli.main import main

    for bad in ("0", "many"):
        result = CliRunner().invoke(main, ["search", "--dataset", str(tiny_npz), "--seed", "1",
                                           "--workers", bad, "--out", str(tmp_path)])
        assert result.exit_code == 2
        assert result.output.strip().splitlines() == [
            f"Error: `workers` must be a positive integer or 'auto'. Received: workers='{bad}'"]
    assert not any(tmp_path.iterdir())


def test_auto_is_two_processes_on_a_cpu_only_multicore_machine_else_one():
    assert resolve_workers("auto", cores=2, gpus=[]) == 2
    assert resolve_workers("auto", cores=16, gpus=[]) == 2
    assert resolve_workers("auto", cores=1, gpus=[]) == 1
    assert resolve_workers("auto", cores=8, gpus=["0"]) == 1
    assert resolve_workers(3, cores=1, gpus=["0"]) == 3
    assert isinstance(make_executor("local", workers=1), LocalExecutor)


def test_auto_with_one_worker_trains_in_a_replaceable_worker_process(monkeypatch):
    """On a GPU machine (or one core) "auto" means one training at a time, but in a worker
    process, which can be replaced to give back what TensorFlow keeps; an explicit 1 trains here."""
    import moncae.executors as executors

    monkeypatch.setattr(executors, "visible_gpus", lambda: ["0"])
    executor = make_executor("local", workers="auto")
    assert isinstance(executor, ProcessExecutor) and executor.workers == 1
    assert executor.recycle_after and executor.threads == threads_per_worker(1)
    executor.close()  # never started a process
    assert isinstance(make_executor("local", workers=1), LocalExecutor)


def test_threads_per_worker_share_the_cores(monkeypatch):
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    assert threads_per_worker(2, cores=2) == 1
    assert threads_per_worker(2, cores=8) == 4
    assert threads_per_worker(4, cores=2) == 1
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "3")
    assert threads_per_worker(2, cores=8) == 3


def test_a_stand_in_task_fn_runs_in_process_unless_workers_is_a_number(stub_config):
    from moncae.search.loop import default_executor

    assert isinstance(default_executor(stub_config(), surrogate_task), LocalExecutor)  # auto
    assert isinstance(default_executor(stub_config(workers=2), lambda task: task), LocalExecutor)
    executor = default_executor(stub_config(workers=2), surrogate_task)
    assert isinstance(executor, ProcessExecutor) and executor.workers == 2
    executor.close()  # never started a process


class _OtherThreads(LocalExecutor):
    threads = 99


def test_the_run_records_its_threads_and_a_resume_with_others_says_so(stub_config):
    config = stub_config(generations=2)
    run_search(config, task_fn=surrogate_task)
    execution = json.loads((config.run_dir / "config.json").read_text())["execution"]
    assert execution == {"executor": "local", "workers": 1, "threads": LocalExecutor().threads,
                         "cpu": cpu_instruction_sets()}
    same, other = Messages(), Messages()
    run_search(config, resume=True, task_fn=surrogate_task, progress=same)
    run_search(config, resume=True, task_fn=surrogate_task, progress=other, executor=_OtherThreads())
    assert not any("thread" in line for line in same.lines)
    assert [line for line in other.lines if "thread" in line] == [
        f"note: {config.run_dir} started with {execution['threads']} TensorFlow thread(s) per "
        "training, this resume trains with 99 (1 worker(s)): new trainings may differ in the "
        "numbers from an uninterrupted run (use the first run's --workers 1 to avoid it)"]
    # and the run's record says so (an audit: it kept only the first way its trainings ran)
    payload = json.loads((config.run_dir / "config.json").read_text())
    assert payload["execution"] == execution
    assert [e["threads"] for e in payload["later_executions"]] == [99]
    run_search(config, resume=True, task_fn=surrogate_task, executor=_OtherThreads())  # recorded once
    again = json.loads((config.run_dir / "config.json").read_text())
    assert again["later_executions"] == payload["later_executions"]


def _execution(config) -> dict:
    """The run's record of how its trainings ran (config.json)."""
    return json.loads((config.run_dir / "config.json").read_text())["execution"]


def _notes_on_resume(config, word: str, **kwargs) -> list[str]:
    """The lines a resume of `config`'s run says that hold `word`."""
    heard = Messages()
    run_search(config, resume=True, task_fn=surrogate_task, progress=heard, **kwargs)
    return [line for line in heard.lines if word in line]


def test_a_resume_under_other_onednn_variables_says_so(stub_config, monkeypatch):
    """ONEDNN_MAX_CPU_ISA and TF_ENABLE_ONEDNN_OPTS change the numbers (0.639 against 0.568 for a
    smoke run's best loss) but not the instruction sets `cpu` reads: neither recorded nor said (an audit)."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    config = stub_config(generations=2)
    run_search(config, task_fn=surrogate_task)
    assert _execution(config)["env"] == {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert _notes_on_resume(config, "ONEDNN") == [
        f"note: {config.run_dir} started with {{'ONEDNN_MAX_CPU_ISA': 'AVX2'}} of ONEDNN_MAX_CPU_ISA, "
        "DNNL_MAX_CPU_ISA, TF_ENABLE_ONEDNN_OPTS set, this one has none: they choose TensorFlow's CPU code path, "
        "so new trainings may differ in the numbers from an uninterrupted run"]


def test_a_resume_on_another_cpu_says_so(stub_config, monkeypatch):
    config = stub_config(generations=2)
    run_search(config, task_fn=surrogate_task)
    started = _execution(config)["cpu"]
    # another machine's instruction sets, whichever machine runs the test (an AVX2-only one too)
    other = "x86_64: avx avx2 fma" if started != "x86_64: avx avx2 fma" else "x86_64: avx avx2 avx512f fma"
    monkeypatch.setattr("moncae.executors.cpu_instruction_sets", lambda: other)
    assert _notes_on_resume(config, "CPU") == [
        f"note: {config.run_dir} started on a CPU with {started!r}, this one has {other!r}: "
        "TensorFlow's CPU kernels follow the instruction set, so new trainings may differ in the "
        "numbers from an uninterrupted run on the first machine"]
    # what the run folder records is still the machine it started on
    assert _execution(config)["cpu"] == started


def test_instruction_sets_keep_the_extensions_tensorflow_kernels_choose_by():
    flags = " fpu sse sse2 avx2 fma avx avx512f avx512bw avx512_vnni rdrand aes\n"
    assert instruction_sets("x86_64", flags) == "x86_64: avx avx2 avx512_vnni avx512bw avx512f fma"
    assert instruction_sets("aarch64", "fp asimd evtstrm aes") == "aarch64"


@pytest.mark.parametrize("gpus, workers, per_gpu, expected", [
    (["0", "1"], None, 1, ["0", "1"]),
    (["0", "1"], None, 2, ["0", "0", "1", "1"]),
    (["3"], None, 3, ["3", "3", "3"]),
    (["5", "7"], 3, 1, ["5", "7", "5"]),
    (["0", "1"], 5, 2, ["0", "0", "1", "1", "0"]),
    ([], None, 2, []),
])
def test_gpu_assignment_for_models_per_gpu(gpus, workers, per_gpu, expected):
    assert gpu_assignment(gpus, workers, per_gpu) == expected


# -- real runs ------------------------------------------------------------------------------------
def _comparable(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path)
    return df.drop(columns=[c for c in (*TIMING_COLUMNS, "seconds") if c in df.columns])


@pytest.mark.slow
def test_surrogate_run_in_two_processes_equals_the_in_process_run(stub_config, tmp_path):
    one = run_search(stub_config(tmp_path / "one", workers=1), task_fn=surrogate_task).run_dir
    two = run_search(stub_config(tmp_path / "two", workers=2), task_fn=surrogate_task).run_dir
    for name in ("evaluations.csv", "population.csv", "generations.csv"):
        pd.testing.assert_frame_equal(_comparable(one / name), _comparable(two / name), check_exact=True)


@pytest.mark.slow
def test_smoke_search_with_two_workers_is_reproducible(tmp_path):
    """`--workers 2` twice: identical CSVs (timings aside). Only 2 against 2: another worker count
    trains with another TF thread count, which may change the numbers."""
    from moncae.cli.main import main

    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        result = CliRunner().invoke(main, ["search", "--dataset", "mnist_5k", "--seed", "7", "--preset",
                                           "smoke", "--workers", "2", "--quiet", "--out", str(out)])
        assert result.exit_code == 0, result.output
        runs.append(out / "mnist_5k" / "seed-7")
    execution = json.loads((runs[0] / "config.json").read_text())["execution"]
    assert execution == {"executor": "local", "workers": 2, "threads": threads_per_worker(2),
                         "cpu": cpu_instruction_sets()}
    for name in ("evaluations.csv", "population.csv", "generations.csv"):
        a, b = _comparable(runs[0] / name), _comparable(runs[1] / name)
        assert len(a) > 0
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert (_comparable(runs[0] / "evaluations.csv")["status"] == "ok").all()


def test_more_workers_than_cores_warns_and_keeps_one_thread_each(monkeypatch):
    import warnings

    import moncae.executors as executors
    import moncae.executors.processes as processes
    from moncae.errors import MoncaeWarning

    for module in (executors, processes):  # a 2-core machine, whatever runs the test
        monkeypatch.setattr(module, "usable_cores", lambda: 2)
    with pytest.warns(MoncaeWarning, match="--workers 3 on 2 usable core"):
        many = make_executor("local", workers=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MoncaeWarning)
        enough = make_executor("local", workers=2)
    try:
        assert many.threads == enough.threads == 1  # the same results, only slower
    finally:
        many.close()
        enough.close()


def test_a_worker_process_is_replaced_after_recycle_after_tasks():
    """TensorFlow keeps every traced graph, so a long run's workers are replaced now and then:
    each process runs at most `recycle_after` tasks; results keep their order, none is lost."""
    tasks = [Routed(str(i)) for i in range(7)]
    with ProcessExecutor(1, threads=1, recycle_after=3) as executor:
        got = list(executor.map_ordered(worker_pid, tasks))
        assert [a for a, _ in got] == [str(i) for i in range(7)]
        pids = [pid for _, pid in got]
        assert pids[0] == pids[1] == pids[2] != pids[3] == pids[4] == pids[5] != pids[6]
        more = [pid for _, pid in executor.map_ordered(worker_pid, [Routed(a) for a in "xyz"])]
        assert pids[6] == more[0] == more[1] != more[2]  # the count goes on across calls
    with ProcessExecutor(1, threads=1, recycle_after=None) as executor:
        assert len({pid for _, pid in executor.map_ordered(worker_pid, tasks)}) == 1


def test_the_thread_notice_names_a_dask_run_s_executor():
    from moncae.executors import execution_notices

    before = {"executor": "dask", "workers": 2, "threads": 1, "cpu": None}
    now = {"executor": "local", "workers": 1, "threads": 2, "cpu": None}
    (line,) = execution_notices(Path("run"), before, now, "this resume")
    assert line.endswith("(use the first run's --executor dask --workers 2 to avoid it)"), line
