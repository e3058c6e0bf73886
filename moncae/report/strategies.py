"""Search strategies compared at equal cost: the all-time front's hypervolume (validation)
against cumulative trainings, per strategy, over seeds (pure pandas; scipy for the test).

For each family (one dataset and settings, several strategies), the budget compared is the
smallest number of trainings any of its finished runs used, T (unfinished runs are left out);
each run's value is its all-time front hypervolume after the last generation with at most T
trainings. Per strategy: mean and standard
deviation over seeds, and a two-sided Mann-Whitney U p-value against `random` at that T.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from moncae.report.collect import RunInfo, read_table, warn

__all__ = ["STRATEGY_COLUMNS", "collect_strategies", "hv_at", "strategies_markdown"]

STRATEGY_COLUMNS = ["family", "strategy", "runs", "trainings", "front_hv", "front_hv_std", "p_vs_random",
                    "trainings_used"]


def _curve(run: RunInfo) -> pd.DataFrame:
    rows = read_table(run.path / "generations.csv", ["generation"],
                      numeric=["front_hypervolume", "trainings_total"], integer=["generation"])
    df = pd.DataFrame(rows, columns=["generation", "trainings_total", "front_hypervolume"])
    return df.dropna(subset=["trainings_total", "front_hypervolume"]).sort_values("generation")


def hv_at(curve: pd.DataFrame, trainings: float) -> float:
    """A run's all-time front hypervolume once it had used at most `trainings` (step function)."""
    done = curve[curve["trainings_total"] <= trainings]
    return float(done["front_hypervolume"].iloc[-1]) if len(done) else 0.0


def _p_value(x: Sequence[float], y: Sequence[float]) -> float:
    """Mann-Whitney's two-sided p; NaN with fewer than 2 runs on a side (one against one is p = 1
    whatever the numbers)."""
    if len(x) < 2 or len(y) < 2:
        return float("nan")
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(x, y, alternative="two-sided").pvalue)


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
        values: dict[str, list[float]] = {}
        trainings: dict[str, list[float]] = {}
        for run in mine:
            curve = curves[id(run)]
            values.setdefault(run.strategy, []).append(hv_at(curve, budget))
            trainings.setdefault(run.strategy, []).append(
                float(curve["trainings_total"].iloc[-1]) if len(curve) else math.nan)
        rows = []
        for strategy in sorted(values):
            v = np.array(values[strategy])
            rows.append({
                "family": family, "strategy": strategy, "runs": len(v), "trainings": budget,
                "front_hv": float(v.mean()), "front_hv_std": float(v.std(ddof=1)) if len(v) > 1 else math.nan,
                "p_vs_random": (math.nan if strategy == "random" or "random" not in values
                                else _p_value(values[strategy], values["random"])),
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
