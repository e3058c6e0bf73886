"""The search's rules computed the slow, obvious way, so that tests compare the code's answers
with something it did not compute itself: the 2-D hypervolume as a sweep over boxes, each
distinct network's exclusive contribution by its definition, and the elite by sorting a table."""

from __future__ import annotations

import math

import pandas as pd


def area(points, ref) -> float:
    """The area dominated by `points` (minimised) inside the box below `ref`: coordinates past
    `ref` are clipped to it and NaN counts as `ref` (such a point adds nothing)."""
    rx, ry = ref
    pts = sorted((rx if math.isnan(x) else min(x, rx), ry if math.isnan(y) else min(y, ry))
                 for x, y in points)
    total, lowest = 0.0, ry
    for i, (x, y) in enumerate(pts):
        lowest = min(lowest, y)
        right = pts[i + 1][0] if i + 1 < len(pts) else rx
        total += (right - x) * (ry - lowest)
    return total


def exclusive_by_network(points, keys, ref) -> list[float]:
    """HV(distinct networks) - HV(them without this one), every copy of a network getting its
    value; a network's point is that of its first copy."""
    first: dict[str, tuple[float, float]] = {}
    for key, point in zip(keys, points):
        first.setdefault(key, tuple(point))
    whole = area(first.values(), ref)
    value = {k: whole - area([p for other, p in first.items() if other != k], ref) for k in first}
    return [value[k] for k in keys]


def elite_keys(generation: pd.DataFrame, count: int) -> list[str]:
    """The README's elite: the lowest-loss network first (ties: higher fitness, then earlier),
    then the fittest (ties: lower loss, then earlier), distinct networks before second copies."""
    table = generation.reset_index(drop=True).assign(position=lambda t: range(len(t)))
    best = table.sort_values(["rec_loss", "fitness", "position"], ascending=[True, False, True]).iloc[0]
    rest = table.drop(index=best.name).sort_values(["fitness", "rec_loss", "position"],
                                                   ascending=[False, True, True])
    keys = [best["genome_key"], *rest["genome_key"]]
    distinct = list(dict.fromkeys(keys))
    copies = [k for i, k in enumerate(keys) if k in keys[:i]]
    return (distinct + copies)[:count]
