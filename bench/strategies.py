"""Search strategies on the surrogate evaluator (objectives computed from the genome, no
training): all-time front hypervolume at equal trainings per strategy over many seeds, and how
often the paper's GA loses its best model between generations, with the old per-individual
fitness, with fitness per distinct network, and with the `front` fitness rule.

Usage: python bench/strategies.py [SEEDS] [GENERATIONS] [POPULATION]   (default 20 20 20: the
paper's protocol per seed; about 2-4 minutes on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd

import moncae.search.loop as loop
import moncae.search.strategies.base as strategy_base
from moncae.config import resolve_config
from moncae.evaluation.surrogate import surrogate_task
from moncae.method.evolution import breed, make_toolbox
from moncae.method.objectives import hv_contributions
from moncae.method.selection import STRATEGY_NAMES
from moncae.report.strategies import hv_at, p_value
from moncae.search.strategies import STRATEGIES, MoncaeGA


class PerIndividualGA(MoncaeGA):
    """The GA before the fix: fitness per individual (copies of a network score 0 each) and
    elites chosen without regard to copies."""

    def advance(self, generation, rng, *, last):
        if last:
            return list(generation.population)
        toolbox = make_toolbox(self.space, self.selection)
        losses = [r.rec_loss for r in generation.records]
        return breed(generation.population, generation.fitness, losses, generation.index + 1, rng, toolbox,
                     self.elitism)


def per_individual(points, keys, ref, rule="paper"):
    return hv_contributions(points, ref)


def run(data: Path, out: Path, strategy: str, seed: int, generations: int, population: int, old: bool = False,
        fitness: str = "paper"):
    config = resolve_config(dataset=str(data), seed=seed,
                            out=str(out / strategy / ("old" if old else "new") / fitness),
                            strategy=strategy, generations=generations, population=population, max_blocks=6,
                            max_filters=256, elitism=0.1, fitness=fitness)
    patches = [mock.patch.dict(STRATEGIES, {"moncae": PerIndividualGA}),
               mock.patch.object(strategy_base, "unique_contributions", per_individual)] if old else []
    for patch in patches:
        patch.start()
    try:
        return loop.run_search(config, task_fn=surrogate_task).run_dir
    finally:
        for patch in patches:
            patch.stop()


def best_lost(run: Path) -> tuple[int, int]:
    """(generations after which the lowest-loss network was gone from the next one and nothing as
    good replaced it, generations compared)."""
    pop = pd.read_csv(run / "population.csv")
    lost = total = 0
    for gen in range(int(pop["generation"].max())):
        now, after = pop[pop["generation"] == gen], pop[pop["generation"] == gen + 1]
        lost += after["rec_loss"].min() > now["rec_loss"].min()
        total += 1
    return lost, total


def main(seeds: int = 20, generations: int = 20, population: int = 20) -> None:
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "surrogate28.npz"
        images = rng.integers(0, 256, (250, 28, 28), dtype=np.uint8)
        np.savez(data, x_train=images[:200], y_train=rng.integers(0, 10, 200), x_test=images[200:],
                 y_test=rng.integers(0, 10, 50))
        out = Path(tmp) / "runs"
        dirs = {s: [run(data, out, s, seed, generations, population) for seed in range(seeds)]
                for s in STRATEGY_NAMES}
        dirs["moncae (per-individual fitness, before)"] = [
            run(data, out, "moncae", seed, generations, population, old=True) for seed in range(seeds)]
        dirs["moncae, fitness = front"] = [
            run(data, out, "moncae", seed, generations, population, fitness="front") for seed in range(seeds)]
        curves = {name: [pd.read_csv(d / "generations.csv") for d in ds] for name, ds in dirs.items()}
        budget = min(c["trainings_total"].iloc[-1] for cs in curves.values() for c in cs)
        print(f"surrogate, {seeds} seeds, {generations} generations x {population}; all-time front hypervolume "
              f"at {budget} trainings (the fewest any run used):")
        first = min(len(c) and c["trainings_total"].iloc[0] for cs in curves.values() for c in cs)
        if budget <= first:
            print(f"  note: {budget} trainings is generation 0, the same for every strategy: no strategy has "
                  "acted yet; give more generations")
        random_values = {seed: hv_at(c, budget) for seed, c in enumerate(curves["random"])}
        for name, cs in curves.items():
            by_seed = {seed: hv_at(c, budget) for seed, c in enumerate(cs)}  # seed i is range(seeds)[i]
            values = np.array(list(by_seed.values()))
            used = np.mean([c["trainings_total"].iloc[-1] for c in cs])
            # paired by seed, exact (moncae.report.strategies.p_value): with n seeds, p >= 2 / 2**n
            p = "" if name == "random" else f"  p vs random {p_value(by_seed, random_values):.3g}"
            print(f"  {name:<42} {values.mean():.4f} +- {values.std(ddof=1):.4f}  (trainings used {used:.0f}){p}")
        for name in ("moncae (per-individual fitness, before)", "moncae", "moncae, fitness = front"):
            lost = np.array([best_lost(d) for d in dirs[name]]).sum(axis=0)
            print(f"best-loss model lost from one generation to the next, {name}: {lost[0]} of {lost[1]} "
                  f"({100 * lost[0] / lost[1]:.1f}%)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, default, low in (("seeds", 20, 2), ("generations", 20, 2), ("population", 20, 2)):
        parser.add_argument(name, nargs="?", type=int, default=default, help=f"default {default}, >= {low}")
    args = parser.parse_args()
    if min(args.seeds, args.generations, args.population) < 2:
        parser.error("seeds, generations and population must each be >= 2")
    main(args.seeds, args.generations, args.population)
