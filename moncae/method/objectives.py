"""Hypervolume and exclusive hypervolume contributions (the MONCAE fitness), minimisation.

Objectives are minimised: (reconstruction loss, level of compression). An individual's
fitness is its exclusive contribution `HV(X) - HV(X \\ {x_i})` to the hypervolume of the
population, measured against a fixed reference point (paper: (4, 12)).

Conventions, the same in every dimension:
- Every coordinate is clipped to the reference (`min(x, ref)`), and NaN counts as the
  reference: a failed or diverged individual sits on the box's edge and adds nothing.
- A point outside (or on the edge of) the reference box contributes 0.
- Dominated and duplicated points contribute 0. As the formula says, a dominated point
  still shrinks the contribution of the single point that dominates it (removing that
  point would uncover it); this matches moocore's `hv_contributions(ignore_dominated=False)`.
  The `front` rule (`FITNESS_RULES`) computes the contributions over the non-dominated points
  only, so a dominated point cannot (SMS-EMOA's contribution within the first front).

Two objectives use an exact O(n log n) sweep written here; three or more go to moocore
(the library DEAP 1.4.4 itself calls for its hypervolume).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from moncae.errors import MoncaeError

__all__ = ["FITNESS_RULES", "REFERENCE_POINT", "contributions", "hv_contributions", "hypervolume",
           "non_dominated_mask", "unique_contributions"]

REFERENCE_POINT: tuple[float, float] = (4.0, 12.0)
# What a network's exclusive contribution is measured against: `paper`, the hypervolume of all
# the points (the paper's formula: a dominated point shrinks the one that dominates it, e.g. two
# networks with the same dense bottleneck, whose LOC is equal, leave the better one ~0), or
# `front`, the hypervolume of the non-dominated points (a dominated one gets 0 and shrinks nothing).
FITNESS_RULES = ("paper", "front")


def _prepare(points: ArrayLike, ref: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Points as an (n, d) float array clipped to `ref` (NaN -> ref), and `ref` as an array."""
    ref_arr = np.asarray(ref, dtype=float)
    if ref_arr.ndim != 1 or ref_arr.size < 2 or not np.all(np.isfinite(ref_arr)):
        raise MoncaeError(f"`ref` must be at least two finite numbers. Received: ref={ref!r}")
    arr = np.asarray(points, dtype=float)
    if arr.size == 0:
        return np.empty((0, ref_arr.size)), ref_arr
    if arr.ndim != 2 or arr.shape[1] != ref_arr.size:
        raise MoncaeError(f"`points` must be rows of {ref_arr.size} objectives, like `ref`. "
                          f"Received: points with shape {arr.shape}")
    if np.any(np.isneginf(arr)):
        raise MoncaeError("`points` must not hold -inf (an unbounded hypervolume). "
                          "Received: points with -inf")
    arr = np.where(np.isnan(arr), ref_arr, arr)
    return np.minimum(arr, ref_arr), ref_arr


def _front_2d(pts: np.ndarray) -> np.ndarray:
    """Indices of the 2-D non-dominated points (first of duplicates), sorted by x ascending.

    Along the result x strictly increases and y strictly decreases.
    """
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    ys = pts[order, 1]
    best_before = np.concatenate(([np.inf], np.minimum.accumulate(ys)[:-1]))
    return order[ys < best_before]


def _staircase_area(front: np.ndarray, ref: np.ndarray) -> float:
    """Area dominated by a 2-D front sorted by x ascending (y descending), within `ref`."""
    if len(front) == 0:
        return 0.0
    next_x = np.append(front[1:, 0], ref[0])
    return float(np.sum((next_x - front[:, 0]) * (ref[1] - front[:, 1])))


def _inside(pts: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Points strictly inside the reference box: the only ones with volume."""
    return np.all(pts < ref, axis=1)


def _hypervolume_2d(pts: np.ndarray, ref: np.ndarray) -> float:
    pts = pts[_inside(pts, ref)]
    return _staircase_area(pts[_front_2d(pts)], ref)


def _contributions_2d(pts: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Exact `HV(X) - HV(X minus x_i)` for every point, in O(n log n).

    A front point's exclusive box runs from it to (next point's x, previous point's y).
    Removing it uncovers the points dominated by it alone, which all lie in that box; its
    contribution is the box minus what those points cover inside it.
    """
    out = np.zeros(len(pts))
    inside = np.flatnonzero(_inside(pts, ref))
    sub = pts[inside]
    front_local = _front_2d(sub)
    front = sub[front_local]
    xs, ys = front[:, 0], front[:, 1]
    upper_x = np.append(xs[1:], ref[0])
    upper_y = np.concatenate(([ref[1]], ys[:-1]))
    box = (upper_x - xs) * (upper_y - ys)

    rest = np.ones(len(sub), dtype=bool)
    rest[front_local] = False
    others = sub[rest]
    # Weak dominators of q are the front points with x <= q.x and y <= q.y: a contiguous
    # run [first, last] of the front, since x rises and y falls along it.
    last = np.searchsorted(xs, others[:, 0], side="right") - 1
    first = np.searchsorted(-ys, -others[:, 1], side="left")
    alone = first == last
    uncovered = np.zeros(len(front))
    for j in np.unique(last[alone]):
        shadow = others[alone & (last == j)]
        corner = np.array([upper_x[j], upper_y[j]])
        uncovered[j] = _staircase_area(shadow[_front_2d(shadow)], corner)
    out[inside[front_local]] = np.maximum(box - uncovered, 0.0)  # not below 0 by rounding (box ~ shadow)
    return out


def _moocore():
    import moocore  # imported late: only three or more objectives need it

    return moocore


def hypervolume(points: ArrayLike, ref: Sequence[float] = REFERENCE_POINT) -> float:
    """Hypervolume dominated by `points` (minimised) within the box bounded by `ref`.

    Coordinates are clipped to `ref` and NaN counts as `ref`; empty input gives 0.
    """
    pts, ref_arr = _prepare(points, ref)
    if len(pts) == 0:
        return 0.0
    if ref_arr.size == 2:
        return _hypervolume_2d(pts, ref_arr)
    return float(_moocore().hypervolume(pts, ref=ref_arr))


def hv_contributions(points: ArrayLike, ref: Sequence[float] = REFERENCE_POINT) -> np.ndarray:
    """Exclusive contribution `HV(X) - HV(X minus x_i)` of each point, in input order.

    Dominated, duplicated and out-of-box points get 0. Coordinates are clipped to `ref`.
    """
    pts, ref_arr = _prepare(points, ref)
    if len(pts) == 0:
        return np.zeros(0)
    if ref_arr.size == 2:
        return _contributions_2d(pts, ref_arr)
    contrib = _moocore().hv_contributions(pts, ref=ref_arr, ignore_dominated=False)
    return np.asarray(contrib, dtype=float)


def contributions(points: ArrayLike, ref: Sequence[float] = REFERENCE_POINT, rule: str = "paper"
                  ) -> np.ndarray:
    """Exclusive contributions under `rule` (`FITNESS_RULES`): `paper` is `hv_contributions`;
    `front` computes them over the non-dominated points only, and gives dominated points 0."""
    if rule not in FITNESS_RULES:
        raise MoncaeError(f"`rule` must be one of {', '.join(FITNESS_RULES)}. Received: rule={rule!r}")
    pts = np.asarray(points, dtype=float)
    if rule == "paper" or len(pts) == 0:
        return hv_contributions(pts, ref)
    clipped, _ = _prepare(pts, ref)  # NaN counts as the reference, as for the hypervolume
    front = non_dominated_mask(clipped)
    values = np.zeros(len(pts))
    values[front] = hv_contributions(pts[front], ref)
    return values


def unique_contributions(points: ArrayLike, keys: Sequence[str],
                         ref: Sequence[float] = REFERENCE_POINT, rule: str = "paper") -> np.ndarray:
    """The MONCAE fitness per *distinct network*: exclusive contributions (under `rule`, see
    `contributions`) computed over the set of distinct points (one per key, its first
    occurrence), every copy getting its key's value.

    `hv_contributions` per individual gives two copies of the best network 0 each (removing one
    copy changes nothing), so the GA would drop its best model whenever it is duplicated;
    `HV(X) - HV(X minus x_i)` over a *set* of points does not.
    """
    if len(keys) != len(points):
        raise MoncaeError(f"`keys` must name every point. Received: {len(keys)} keys for "
                          f"{len(points)} points")
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    rows = list(first.values())
    pts = np.asarray(points, dtype=float)
    distinct = contributions(pts[rows] if len(rows) else pts[:0], ref, rule)
    value = dict(zip(first, distinct))
    return np.array([value[key] for key in keys], dtype=float)


def non_dominated_mask(points: ArrayLike) -> np.ndarray:
    """True for points no other point dominates (minimisation); duplicates are all kept.

    No reference point and no clipping: this is for drawing and reporting fronts. NaN
    counts as +inf (worst).
    """
    arr = np.asarray(points, dtype=float)
    if arr.size == 0:
        return np.zeros(0, dtype=bool)
    if arr.ndim != 2:
        raise MoncaeError(f"`points` must be a 2-D array (one row per point). "
                          f"Received: points with shape {arr.shape}")
    arr = np.where(np.isnan(arr), np.inf, arr)
    mask = np.ones(len(arr), dtype=bool)
    for i, point in enumerate(arr):
        no_worse = np.all(arr <= point, axis=1)
        better = np.any(arr < point, axis=1)
        mask[i] = not np.any(no_worse & better)
    return mask
