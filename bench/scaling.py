"""How the dask executor scales, and what it gives on this machine with real training.

Default mode: a simulated evaluation (a fixed sleep instead of training; this benchmark is the
only place it exists) on LocalClusters of 1, 2, 4 and 8 single-task workers, TASKS_PER_WORKER
tasks per worker. Prints per N: wall time, throughput, speed-up over 1 worker (goal >= 0.9 x N at
N = 8) and efficiency against a perfect N-way sleep; then the driver's overhead per task: its
own CPU time per task (the LocalCluster's scheduler runs in the driver, so that is included)
and the round-trip cost of a no-op task with all workers busy.

`--real`: real training of one search (default: the `quick` preset on mnist_5k) with the local
executor, with `--workers 2` at the driver's TF thread count (results identical to local), and
with `--workers 2` at 1 TF thread each (no oversubscription; results identical to a local run
under TF_NUM_INTRAOP_THREADS=1 instead). Prints wall time, trainings per minute, training
images per second, and whether the CSVs equal the local run's. Run it on an otherwise idle
machine.

Usage: python bench/scaling.py [--sleep 0.5] [--workers 1,2,4,8] [--tasks-per-worker 8]
       python bench/scaling.py --real [--preset quick] [--dataset mnist_5k] [--seed 46]
                               [--generations G] [--population P]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _cli import non_negative_int, positive_float, positive_int, run


def simulated_evaluation(seconds: float) -> float:
    """Stands in for a training: sleeps, so N workers should give N times the throughput."""
    time.sleep(seconds)
    return seconds


def no_op(value: int) -> int:
    return value


def sleep_scaling(sleep: float, workers: list[int], tasks_per_worker: int) -> None:
    from moncae.executors.dask import DaskExecutor

    print(f"simulated evaluation: sleep {sleep:g} s, {tasks_per_worker} tasks per worker")
    print(f"{'workers':>7} {'tasks':>6} {'wall s':>7} {'tasks/s':>8} {'speed-up':>9} "
          f"{'vs ideal':>9} {'driver CPU ms/task':>19} {'no-op ms/task':>14}")
    base = None
    for n in workers:
        with DaskExecutor(workers=n) as executor:
            list(executor.map_ordered(no_op, range(4 * n)))  # workers up, function cached
            tasks = [sleep] * (tasks_per_worker * n)
            cpu, start = time.process_time(), time.perf_counter()
            results = list(executor.map_ordered(simulated_evaluation, tasks))
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            assert results == tasks
            n_ops = 200 * n
            start = time.perf_counter()
            assert list(executor.map_ordered(no_op, range(n_ops))) == list(range(n_ops))
            no_op_ms = 1000 * (time.perf_counter() - start) / n_ops
        throughput = len(tasks) / wall
        base = base or throughput / n  # per-worker throughput of the first (smallest) cluster
        print(f"{n:>7} {len(tasks):>6} {wall:>7.2f} {throughput:>8.2f} {throughput / base:>8.2f}x "
              f"{len(tasks) * sleep / (n * wall):>8.1%} {1000 * cpu / len(tasks):>19.1f} "
              f"{no_op_ms:>14.1f}")
    print("speed-up: throughput over 1 worker's (goal >= 0.9 x N); vs ideal: against N perfect "
          "sleeps in parallel")


def real_training(preset: str, dataset: str, seed: int, **overrides: int | None) -> None:
    import pandas as pd

    from moncae.config import resolve_config
    from moncae.data import cached_dataset
    from moncae.evaluation.records import TIMING_COLUMNS
    from moncae.executors import LocalExecutor
    from moncae.executors.dask import DaskExecutor, training_threads
    from moncae.search.loop import run_search

    def comparable(path: Path) -> pd.DataFrame:
        df = pd.read_csv(path)
        return df.drop(columns=[c for c in (*TIMING_COLUMNS, "seconds") if c in df.columns])

    threads = training_threads()
    runs = [
        (f"local ({threads} TF threads)", LocalExecutor),
        (f"dask --workers 2 x {threads} TF threads", lambda: DaskExecutor(workers=2)),
        ("dask --workers 2 x 1 TF thread", lambda: DaskExecutor(workers=2, threads=1)),
    ]
    print(f"real training: preset {preset}, {dataset}, seed {seed}")
    print(f"{'executor':<34} {'start s':>8} {'wall s':>8} {'trainings':>9} {'per min':>8} "
          f"{'train img/s':>11} {'same as local':>13}")
    with tempfile.TemporaryDirectory() as out:
        reference = None
        for i, (label, build) in enumerate(runs):
            config = resolve_config(preset=preset, dataset=dataset, seed=seed,
                                    out=str(Path(out) / f"run{i}"), **overrides)
            n_train = len(cached_dataset(config.data_spec()).x_train)  # loading is not training
            start = time.perf_counter()
            executor = build()
            if isinstance(executor, DaskExecutor):  # TF loaded in every worker, as in a long run
                executor.client.run(lambda: __import__("moncae.evaluation.train"))
            started = time.perf_counter() - start
            try:
                start = time.perf_counter()
                result = run_search(config, executor=executor)
                wall = time.perf_counter() - start
            finally:
                executor.close()
            ev = pd.read_csv(result.run_dir / "evaluations.csv")
            # the images each training used (a lower rung's train_images; none recorded: all of them)
            used = ev["train_images"].fillna(n_train) if "train_images" in ev else n_train
            images = int((ev["epochs"] * used).sum())
            if reference is None:
                reference, same = result.run_dir, "-"
            else:
                same = "yes"
                for name in ("evaluations.csv", "population.csv", "generations.csv"):
                    try:
                        pd.testing.assert_frame_equal(comparable(reference / name),
                                                      comparable(result.run_dir / name),
                                                      check_exact=True)
                    except AssertionError:
                        same = "no"
            print(f"{label:<34} {started:>8.1f} {wall:>8.1f} {len(ev):>9} "
                  f"{60 * len(ev) / wall:>8.1f} {images / wall:>11.0f} {same:>13}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sleep", type=positive_float, default=0.5, help="seconds per simulated evaluation")
    parser.add_argument("--workers", default="1,2,4,8", help="cluster sizes, comma-separated")
    parser.add_argument("--tasks-per-worker", type=positive_int, default=8)
    parser.add_argument("--real", action="store_true", help="real training: local vs --workers 2")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--dataset", default="mnist_5k")
    parser.add_argument("--seed", type=non_negative_int, default=46)
    parser.add_argument("--generations", type=positive_int, default=None, help="override the preset's")
    parser.add_argument("--population", type=positive_int, default=None, help="override the preset's")
    args = parser.parse_args()
    if args.real:
        real_training(args.preset, args.dataset, args.seed, generations=args.generations,
                      population=args.population)
    else:
        sleep_scaling(args.sleep, [int(n) for n in args.workers.split(",")], args.tasks_per_worker)


if __name__ == "__main__":  # required: the workers are spawned processes
    run(main)
