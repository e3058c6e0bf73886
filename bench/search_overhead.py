"""How much of a search's wall time is training, and how fast training runs.

Runs the `smoke` and `quick` presets on mnist_5k (no download) into a temp folder and prints,
per preset: wall time, the share of the trainings' capacity not spent in `fit` (goal <= 5% on
quick), how much of each training is outside `fit` (build, compile, weight loading, saving,
`clear_session`), training images/s inside fit, trainings and cache hits.

With W trainings at once (`--workers auto`: 2 worker processes on 2 cores), the capacity is
W x wall seconds, so `outside fit` = 1 - sum(fit seconds) / (W x wall): it counts the driver's
own work (fitness, journals, checkpoints, promotion) and the moments a worker waits for the
others at the end of a rung as well as each training's own overhead.

Usage: python bench/search_overhead.py [--workers auto|N] [smoke quick]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from moncae.config import resolve_config
from moncae.data import cached_dataset
from moncae.search.loop import run_search


def measure(preset: str, workers: str, seed: int = 46) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        config = resolve_config(preset=preset, dataset="mnist_5k", seed=seed, out=out, workers=workers)
        cached_dataset(config.data_spec())  # data loading is not search overhead
        start = time.perf_counter()
        result = run_search(config)
        wall = time.perf_counter() - start
        ev = pd.read_csv(result.run_dir / "evaluations.csv")
        gens = pd.read_csv(result.run_dir / "generations.csv")
        execution = json.loads(Path(result.run_dir / "config.json").read_text())["execution"]
    fit = ev["fit_seconds"].sum()
    parallel = int(execution.get("workers") or 1)
    return {
        "wall_s": wall, "fit_s": fit, "workers": parallel,
        "outside_fit_pct": 100 * (1 - fit / (parallel * wall)),
        "in_training_pct": 100 * (ev["seconds"] - ev["fit_seconds"]).sum() / ev["seconds"].sum(),
        "train_img_per_s": (ev["epochs"] * ev["train_images"]).sum() / fit,
        "trainings": len(ev), "cache_hits": int(gens["cache_hits"].sum()),
        "failed": int((ev["status"] != "ok").sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("presets", nargs="*", default=["smoke", "quick"])
    parser.add_argument("--workers", default="auto")
    args = parser.parse_args()
    for preset in args.presets:
        m = measure(preset, args.workers)
        print(f"{preset:>6}: wall {m['wall_s']:.1f} s, {m['workers']} at once, fit {m['fit_s']:.1f} s, "
              f"outside fit {m['outside_fit_pct']:.1f}% of the capacity ({m['in_training_pct']:.1f}% of "
              f"each training's own time), {m['train_img_per_s']:.0f} train img/s in fit, "
              f"{m['trainings']} trainings, {m['cache_hits']} cache hits, {m['failed']} failed")


if __name__ == "__main__":
    main()
