"""How much of a search's wall time is training, and how fast training runs.

Runs the `smoke` and `quick` presets on mnist_5k (no download) into a temp folder and prints,
per preset: wall time, share of wall time outside fit (goal <= 5% on quick), training images/s
inside fit, trainings and cache hits. Usage: python bench/search_overhead.py [smoke quick]
"""

from __future__ import annotations

import sys
import tempfile
import time

import pandas as pd

from moncae.config import resolve_config
from moncae.data import cached_dataset
from moncae.search.loop import run_search


def measure(preset: str, seed: int = 46) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        config = resolve_config(preset=preset, dataset="mnist_5k", seed=seed, out=out)
        cached_dataset(config.data_spec())  # data loading is not search overhead
        start = time.perf_counter()
        result = run_search(config)
        wall = time.perf_counter() - start
        ev = pd.read_csv(result.run_dir / "evaluations.csv")
        gens = pd.read_csv(result.run_dir / "generations.csv")
        n_train = len(cached_dataset(config.data_spec()).x_train)
    fit = ev["fit_seconds"].sum()
    return {
        "wall_s": wall, "fit_s": fit, "outside_fit_pct": 100 * (wall - fit) / wall,
        "train_img_per_s": (ev["epochs"] * n_train).sum() / fit,
        "trainings": len(ev), "cache_hits": int(gens["cache_hits"].sum()),
        "failed": int((ev["status"] != "ok").sum()),
    }


def main(presets: list[str]) -> None:
    for preset in presets:
        m = measure(preset)
        print(f"{preset:>6}: wall {m['wall_s']:.1f} s, fit {m['fit_s']:.1f} s, outside fit "
              f"{m['outside_fit_pct']:.1f}%, {m['train_img_per_s']:.0f} train img/s, "
              f"{m['trainings']} trainings, {m['cache_hits']} cache hits, {m['failed']} failed")


if __name__ == "__main__":
    main(sys.argv[1:] or ["smoke", "quick"])
