"""Search strategies compared at equal cost: the all-time front's hypervolume (validation)
against cumulative trainings, per strategy, over seeds (pure pandas; scipy for the test).

For each family (one dataset and settings, several strategies), the budget compared is the
smallest number of trainings any of its finished runs used, T (unfinished runs are left out);
each run's value is its all-time front hypervolume after the last generation with at most T
trainings (a run with no generation that cheap is left out, and said). Per strategy: mean and
standard deviation over seeds, and a two-sided exact permutation test against `random` at that T
(`p_value`): paired by seed where both ran the same seeds (a seed's first generation is the same
draw for every strategy), so with n seeds no p is below 2 / 2**n; not adjusted for comparing
several strategies with `random`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from moncae.report.collect import RunInfo, read_table, warn

__all__ = ["STRATEGY_COLUMNS", "collect_strategies", "hv_at", "p_value", "strategies_markdown"]

STRATEGY_COLUMNS = ["family", "strategy", "runs", "trainings", "front_hv", "front_hv_std", "p_vs_random",
                    "trainings_used"]


def _curve(run: RunInfo) -> pd.DataFrame:
    rows = read_table(run.path / "generations.csv", ["generation"],
                      numeric=["front_hypervolume", "trainings_total"], integer=["generation"])
    df = pd.DataFrame(rows, columns=["generation", "trainings_total", "front_hypervolume"])
    return df.dropna(subset=["trainings_total", "front_hypervolume"]).sort_values("generation")


def hv_at(curve: pd.DataFrame, trainings: float) -> float:
    """A run's all-time front hypervolume once it had used at most `trainings` (step function);
    NaN before its first generation ended."""
    done = curve[curve["trainings_total"] <= trainings]
    return float(done["front_hypervolume"].iloc[-1]) if len(done) else math.nan


EXACT_UP_TO = 20_000  # permutations enumerated; beyond, 9,999 seeded random ones


def p_value(x: dict[int, float], y: dict[int, float]) -> float:
    """Two-sided permutation test of a difference in mean between two strategies' values by seed:
    with the same seeds on both sides, paired (the signs of the seeds' differences flipped);
    else unpaired (the runs' labels permuted). Exact where the permutations are few (always
    here: a study's seeds), seeded otherwise. NaN with fewer than 2 runs on a side."""
    if len(x) < 2 or len(y) < 2:
        return float("nan")
    from scipy.stats import permutation_test

    if set(x) == set(y):
        data = (np.array([x[s] - y[s] for s in sorted(x)]),)
        kind, count = "samples", 2 ** len(x)
        statistic = np.mean
    else:
        data = (np.array(list(x.values())), np.array(list(y.values())))
        kind, count = "independent", math.comb(len(x) + len(y), len(x))

        def statistic(a, b, axis=-1):
            return np.mean(a, axis=axis) - np.mean(b, axis=axis)
    result = permutation_test(data, statistic, permutation_type=kind, alternative="two-sided", vectorized=True,
                              n_resamples=np.inf if count <= EXACT_UP_TO else 9_999, random_state=0)
    return float(result.pvalue)


def collect_strategies(runs: Sequence[RunInfo]) -> dict[str, dict]:
    """Per family with more than one strategy: `table` (STRATEGY_COLUMNS) and `curves` (one row
    per run and generation: strategy, seed, trainings_total, front_hypervolume)."""
    out: dict[str, dict] = {}
    for family in sorted({r.family for r in runs}):
        mine = [r for r in runs if r.family == family]
        if len({r.strategy for r in mine}) < 2:
            continue
        for run in mine:  # a run stopped early would set everyone's budget at its few trainings
            if not run.finished:
                warn(f"{run.path}: unfinished; left out of the comparison of strategies")
        mine = [r for r in mine if r.finished]
        if len({r.strategy for r in mine}) < 2:
            continue
        curves = {id(r): _curve(r) for r in mine}
        used = {id(r): float(c["trainings_total"].iloc[-1]) for r in mine if len(c := curves[id(r)])}
        if not used:
            continue
        budget = min(used.values())
        fewest = next(r for r in mine if used.get(id(r)) == budget)
        firsts = [float(c["trainings_total"].iloc[0]) for c in curves.values() if len(c)]
        if budget <= max(firsts):
            warn(f"{family}: the strategies are compared at {budget:g} trainings, within a run's first "
                 "generation (the same random draws for every strategy of a seed): no strategy has acted "
                 "yet there; run them for more generations")
        values: dict[str, dict[int, float]] = {}
        trainings: dict[str, list[float]] = {}
        for run in mine:
            curve = curves[id(run)]
            value = hv_at(curve, budget)
            if math.isnan(value):
                warn(f"{run.path}: its first generation took more than the {budget:g} trainings compared; "
                     "left out of the comparison of strategies")
                continue
            values.setdefault(run.strategy, {})[run.seed] = value
            trainings.setdefault(run.strategy, []).append(
                float(curve["trainings_total"].iloc[-1]) if len(curve) else math.nan)
        rows = []
        for strategy in sorted(values):
            v = np.array(list(values[strategy].values()))
            rows.append({
                "family": family, "strategy": strategy, "runs": len(v), "trainings": budget,
                "front_hv": float(v.mean()), "front_hv_std": float(v.std(ddof=1)) if len(v) > 1 else math.nan,
                "p_vs_random": (math.nan if strategy == "random" or "random" not in values
                                else p_value(values[strategy], values["random"])),
                "trainings_used": float(np.nanmean(trainings[strategy])),
            })
        curve_rows = [{"strategy": r.strategy, "seed": r.seed, **row}
                      for r in mine for row in curves[id(r)].to_dict("records")]
        out[family] = {"table": pd.DataFrame(rows, columns=STRATEGY_COLUMNS),
                       "curves": pd.DataFrame(curve_rows), "budget": budget,
                       "fewest": f"{fewest.strategy} {fewest.label}"}
    return out


def strategies_markdown(table: pd.DataFrame) -> str:
    def num(value: float, digits: int) -> str:
        return f"{value:.{digits}f}" if isinstance(value, float) and math.isfinite(value) else "–"

    lines = ["| Strategy | Runs | Front HV at equal trainings | Trainings compared (used) | p vs random |",
             "|---|---|---|---|---|"]
    for _, r in table.iterrows():
        spread = f" ± {num(r['front_hv_std'], 3)}" if math.isfinite(r["front_hv_std"]) else ""
        lines.append(f"| {r['strategy']} | {r['runs']} | {num(r['front_hv'], 3)}{spread} | "
                     f"{int(r['trainings'])} ({num(r['trainings_used'], 1)}) | {num(r['p_vs_random'], 3)} |")
    return "\n".join(lines) + "\n"
