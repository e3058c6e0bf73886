"""How much of a search's wall time is training, and how fast training runs.

Runs the `smoke` and `quick` presets on mnist_5k (no download) into a temp folder and prints,
per preset: wall time, trainings and cache hits, and how the trainings' capacity (W x wall
seconds, W trainings at once) was spent:

- `in steps`: the steady-state work of every training: its training batches times its median
  training-batch time (each batch with its input, timed by `fit_autoencoder` in each worker),
  plus its validation passes (one per epoch, `moncae.model.training.evaluate_loss`) times the
  median of those after the first. This is the work the method asks for.
- `outside steps`: everything else (goal <= 5% on quick): building and compiling the model,
  **tracing the train step and the validation loss into TF graphs** (the first batch and the
  first validation pass), loading weights, saving the model, `clear_session`, the driver's
  fitness, journals, checkpoints and promotions, and a worker waiting for the others at the end
  of a rung.
- `outside fit`: the older, narrower figure: 1 - sum(fit seconds) / capacity. `fit` includes the
  graph tracing, so this figure hides it.
- a second line: the share of the capacity inside tasks (a training in its worker, from start to
  result) and how the rest splits: before the first task, after the last, while no task runs
  (the driver's turn), and while some workers wait for the others (the end of a rung); with
  several workers a third: that waiting, rung by rung (`rung_waits`).

Usage: python bench/search_overhead.py [--workers auto|N] [--set KEY=VALUE ...] [--warm]
                                       [--seeds N [--one-after-another]] [smoke quick]
(`--set promote_multiple=2`: a setting instead of the preset's, its value read as TOML; `--warm`:
the workers first run a one-generation search of another seed, as they do for the second and later
seeds of `moncae search --seed A,B,...`, so the measured search pays no worker start-up; `--seeds N`:
N seeds (46, 47, ...) as `moncae search --seed 46,47,...` runs them, side by side (one per worker,
`moncae.search.side_by_side`), or with `--one-after-another` on one set of workers; the figures
are then over all of them, from fresh workers, without the per-rung line)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from _cli import positive_int, run

from moncae.config import read_toml, resolve_config
from moncae.data import cached_dataset
from moncae.errors import MoncaeError
from moncae.executors import resolve_workers
from moncae.search.loop import default_executor, run_search
from moncae.search.side_by_side import resolve_at_once, run_side_by_side

STEPS_FILE = "MONCAE_BENCH_STEPS"  # where each worker appends its trainings' batch timings
TASKS_FILE = "MONCAE_BENCH_TASKS"  # where each worker appends when each of its tasks ran


def _time_steps() -> None:
    """In this process, have every search training log its batch timings (once per process)."""
    from moncae.evaluation import train

    fit_autoencoder = train.fit_autoencoder
    if getattr(fit_autoencoder, "_timed", False):
        return

    def fit(*args, **kwargs):
        result = fit_autoencoder(*args, **kwargs)
        steady = first = 0.0
        batches, passes = result.batch_seconds, result.validation_seconds  # a validation pass per epoch
        if batches:  # the first of each traces a graph for a new model
            steady += len(batches) * statistics.median(batches)
            first += batches[0]
        if passes:
            steady += len(passes) * statistics.median(passes[1:] or passes)
            first += passes[0]
        with open(os.environ[STEPS_FILE], "a") as fh:
            fh.write(json.dumps({"steady": steady, "first": first, "batches": len(result.batch_seconds)}) + "\n")
        return result

    fit._timed = True
    train.fit_autoencoder = fit


def timed_task(task):
    """The real training, with its batches timed (picklable: worker processes run it too)."""
    _time_steps()
    from moncae.evaluation.train import run_task

    start = time.time()  # wall clock: comparable across the worker processes
    try:
        return run_task(task)
    finally:
        with open(os.environ[TASKS_FILE], "a") as fh:
            fh.write(json.dumps({"start": start, "end": time.time(), "rung": task.rung}) + "\n")


def rung_waits(tasks: list[dict], workers: int) -> dict[int, float]:
    """Worker-seconds idle at the end of each rung, summed per rung: the tasks cut into batches (a
    batch: consecutive tasks of one rung that overlap in time, as one `_train_rung` hands them
    out), each batch's idle being `workers x its span - its tasks' seconds` (the span from its
    first start to its last end, so the driver's turn before it is not counted)."""
    waits: dict[int, float] = {}
    batch: list[dict] = []
    for t in sorted(tasks, key=lambda t: t["start"]) + [None]:
        if batch and (t is None or t["rung"] != batch[-1]["rung"] or t["start"] > max(b["end"] for b in batch)):
            span = max(b["end"] for b in batch) - min(b["start"] for b in batch)
            idle = max(0.0, workers * span - sum(b["end"] - b["start"] for b in batch))
            waits[batch[0]["rung"]] = waits.get(batch[0]["rung"], 0.0) + idle
            batch = []
        if t is not None:
            batch.append(t)
    return waits


def idle_shares(tasks: list[dict], begin: float, end: float, workers: int) -> dict[str, float]:
    """How the workers' capacity outside tasks splits, in % of `workers x (end - begin)`: before
    the first task starts (start-up), after the last ends, while no task runs in between (the
    driver's turn: fitness, journals, promotions), and while some but not all workers run one
    (waiting at the end of a rung for its longest training)."""
    events = sorted([(t["start"], 1) for t in tasks] + [(t["end"], -1) for t in tasks])
    none = some = 0.0
    running, last = 0, events[0][0]
    for when, step in events:
        if running == 0:
            none += when - last
        elif running < workers:
            some += (workers - running) * (when - last)
        running, last = running + step, when
    capacity = workers * (end - begin)
    return {"before_first_pct": 100 * workers * (events[0][0] - begin) / capacity,
            "after_last_pct": 100 * workers * (end - events[-1][0]) / capacity,
            "none_running_pct": 100 * workers * none / capacity,
            "some_idle_pct": 100 * some / capacity}


def _run_seeds(configs: list, side_by_side: bool) -> list[Path]:
    """`moncae search --seed A,B,...`'s way: side by side, or one after another on one executor."""
    if side_by_side:
        outcomes = run_side_by_side(configs, resolve_at_once("auto", configs), task_fn=timed_task)
        if not all(o.done for o in outcomes):
            raise MoncaeError(f"a seed stopped: {[o.failure for o in outcomes if not o.done]}")
        return [o.run_dir for o in outcomes]
    executor = default_executor(configs[0], timed_task)
    try:
        return [run_search(c, task_fn=timed_task, executor=executor).run_dir for c in configs]
    finally:
        executor.close()


def measure(preset: str, workers: str, seed: int = 46, settings: dict | None = None,
            warm: bool = False, seeds: int = 1, side_by_side: bool = True) -> dict[str, float]:
    import pandas as pd  # here, not at the top: the spawned workers import this module first

    with tempfile.TemporaryDirectory() as out:
        os.environ[STEPS_FILE] = str(Path(out) / "steps.jsonl")
        os.environ[TASKS_FILE] = str(Path(out) / "tasks.jsonl")
        n = resolve_workers(workers)  # an explicit count: the timed task runs in those workers
        config = resolve_config(preset=preset, dataset="mnist_5k", seed=seed, out=f"{out}/run", workers=n,
                                **(settings or {}))
        cached_dataset(config.data_spec())  # data loading is not search overhead
        executor = default_executor(config, timed_task) if warm else None
        try:
            if executor is not None:  # workers that outlive a search: another seed's first
                warm_up = dataclasses.replace(config, seed=seed + 1, generations=1, out=f"{out}/warm")
                run_search(warm_up, task_fn=timed_task, executor=executor)
                for name in (STEPS_FILE, TASKS_FILE):
                    Path(os.environ[name]).write_text("")  # count the measured search only
            begin = time.time()  # wall clock, as the workers log their tasks
            if seeds > 1:
                run_dirs = _run_seeds([dataclasses.replace(config, seed=seed + k) for k in range(seeds)],
                                      side_by_side)
            else:
                run_dirs = [run_search(config, task_fn=timed_task, executor=executor).run_dir]
            end = time.time()
        finally:
            if executor is not None:
                executor.close()
        wall = end - begin
        ev = pd.concat([pd.read_csv(d / "evaluations.csv") for d in run_dirs])
        gens = pd.concat([pd.read_csv(d / "generations.csv") for d in run_dirs])
        steps = [json.loads(line) for line in Path(os.environ[STEPS_FILE]).read_text().splitlines()]
        tasks = [json.loads(line) for line in Path(os.environ[TASKS_FILE]).read_text().splitlines()]
    fit, steady = ev["fit_seconds"].sum(), sum(s["steady"] for s in steps)
    capacity = n * wall
    return {
        "wall_s": wall, "fit_s": fit, "workers": n, "steady_s": steady,
        "outside_steps_pct": 100 * (1 - steady / capacity),
        "outside_fit_pct": 100 * (1 - fit / capacity),
        "first_batches_pct": 100 * sum(s["first"] for s in steps) / capacity,
        "train_img_per_s": (ev["epochs"] * ev["train_images"]).sum() / fit,
        "trainings": len(ev), "cache_hits": int(gens["cache_hits"].sum()),
        "failed": int((ev["status"] != "ok").sum()),
        "in_tasks_pct": 100 * sum(t["end"] - t["start"] for t in tasks) / capacity,
        "rung_wait_pct": {} if seeds > 1 else {r: 100 * w / capacity
                                               for r, w in sorted(rung_waits(tasks, n).items())},
        **idle_shares(tasks, begin, end, n),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("presets", nargs="*", default=["smoke", "quick"])
    parser.add_argument("--workers", default="auto")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting instead of the preset's, as TOML, e.g. --set promote_multiple=2")
    parser.add_argument("--warm", action="store_true",
                        help="workers already started (a one-generation search of another seed first)")
    parser.add_argument("--seeds", type=positive_int, default=1,
                        help="seeds 46, 47, ... as `moncae search --seed 46,47,...` runs them (default 1)")
    parser.add_argument("--one-after-another", action="store_true",
                        help="with --seeds: one seed after another on one set of workers, not side by side")
    args = parser.parse_args()
    if args.warm and args.seeds > 1:
        parser.error("--warm is for one seed (several start their own workers)")
    settings = read_toml("--set", text="\n".join(args.set))
    for preset in args.presets:
        m = measure(preset, args.workers, settings=settings, warm=args.warm, seeds=args.seeds,
                    side_by_side=not args.one_after_another)
        if args.seeds > 1:
            print(f"{preset:>6}: {args.seeds} seeds, " + ("one after another" if args.one_after_another
                                                          else "side by side"))
        print(f"{preset:>6}: wall {m['wall_s']:.1f} s, {m['workers']} at once, {m['trainings']} trainings, "
              f"{m['cache_hits']} cache hits, {m['failed']} failed; of the capacity ({m['workers']} x wall): "
              f"outside steady-state steps {m['outside_steps_pct']:.1f}% (first batches of each fit, "
              f"i.e. graph tracing: {m['first_batches_pct']:.1f}%), outside fit {m['outside_fit_pct']:.1f}%; "
              f"{m['train_img_per_s']:.0f} train img/s in fit")
        print(f"{'':>6}  in tasks {m['in_tasks_pct']:.1f}%; no task: before the first "
              f"{m['before_first_pct']:.1f}%, none running between tasks (the driver) "
              f"{m['none_running_pct']:.1f}%, some workers waiting for others (end of a rung) "
              f"{m['some_idle_pct']:.1f}%, after the last {m['after_last_pct']:.1f}%")
        if m["workers"] > 1 and m["rung_wait_pct"]:
            print(f"{'':>6}  waiting at the end of each rung: " + ", ".join(
                f"rung {r} {pct:.1f}%" for r, pct in m["rung_wait_pct"].items()))


if __name__ == "__main__":
    run(main)
