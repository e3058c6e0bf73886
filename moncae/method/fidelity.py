"""Multi-fidelity (successive halving adapted to a Pareto front): the rung schedule and the
promotion rule. Pure Python; the search loop trains, this decides.

A run with `fidelity = "rungs"` trains every new genome first at rung 0 (few epochs on the first
N training images); after every genome of the generation has trained at rung r, `ceil(promote *
candidates)` of them are promoted and train on at rung r + 1 from their rung-r weights: first
those whose rung-r point adds hypervolume to the *all-time* set of rung-r points (they would
enter or extend the front at that fidelity), largest contribution first, then by their
contribution to this generation's own rung-r front, then by loss (`promoted`); with `promotion
= "front"` only those that enter or extend the all-time rung-r front go on, at most that many
(none when no candidate does: the budget follows the search's progress); with `promotion =
"population"` likewise, but against the rung-r points of this generation's population only (the
elite it carries over and its new genomes), so the bar is set by networks that survived
selection at full fidelity, not by every cheap point the run ever measured. The top rung is
the run's full budget (`epochs` on every training image): only top-rung points are ever compared
with each other for fitness, the front and its hypervolume. A genome stopped at a lower rung is
handed to the strategy like a failed one (objectives at the reference point, fitness 0): a
stated rule, never a mix of fidelities. In the last generation every ok genome is promoted, so
the final population is measured at full fidelity; with `first_generation = "full"` the first
generation's too (the search loop passes `everyone`). With `promote_multiple = N` the number
promoted at a rung is rounded up to a multiple of N by the next-ranked candidates (N trainings
at once then leave no worker idle at the end of the rung).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from moncae.errors import MoncaeError
from moncae.method.objectives import contributions

__all__ = ["Rung", "promoted", "rung_schedule"]


@dataclass(frozen=True)
class Rung:
    """One fidelity: `epochs` (at most; early stopping applies) on the first `train_images`
    training images (None: all of them); with `decoder_only` (`fidelity = "proxy"`) only the
    decoder trains, the encoder stays at its random initialisation, frozen."""

    epochs: int
    train_images: int | None = None
    decoder_only: bool = False


def rung_schedule(lower: Sequence[Sequence[int]], epochs: int, *, decoder_only: bool = False
                  ) -> tuple[Rung, ...]:
    """The rungs of a run: the `lower` ones ([epochs, train_images] pairs, cheapest first; with
    `decoder_only` each trains only the decoder), then the top rung, the run's full budget (`epochs`
    on all training images, end to end)."""
    rungs = []
    for i, pair in enumerate(lower):
        if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                     for v in pair):
            raise MoncaeError(f"`rungs` entries must be [epochs, train_images] pairs of positive "
                              f"integers. Received: rungs[{i}]={list(pair)!r}")
        rungs.append(Rung(int(pair[0]), int(pair[1]), decoder_only))
    for a, b in zip(rungs, rungs[1:]):
        if (b.epochs, b.train_images) < (a.epochs, a.train_images) or b == a:
            raise MoncaeError("`rungs` must grow from one rung to the next (epochs, then images). "
                              f"Received: {[[r.epochs, r.train_images] for r in rungs]}")
    return (*rungs, Rung(epochs, None))


def promoted(candidates: Sequence[str], points: Mapping[str, Sequence[float]],
             ref: Sequence[float], fraction: float, *, everyone: bool = False,
             front_only: bool = False, within: Collection[str] | None = None,
             multiple: int = 1, rule: str = "paper") -> list[str]:
    """The candidates (genome keys, in order) that go on to the next rung.

    `points` holds every ok network's point at this rung so far (the candidates' included), one
    value per objective (loss first), like `ref`.
    `ceil(fraction * candidates)` of them go on (successive halving with eta = 1 / fraction:
    the budget per rung is fixed), ranked by (1) exclusive hypervolume contribution over all
    of `points` (those that would enter or extend the all-time front at this fidelity come
    first), then (2) contribution over the candidates alone (this generation's own front), then
    (3) lower loss, then candidate order. With `front_only` (`promotion = "front"`) only
    candidates with a positive contribution in (1) are taken, still at most that many. With
    `everyone` every candidate that has a point goes on (the last generation). With `within`
    (`promotion = "population"`, with `front_only`), (1) is the contribution over the points of
    `within`'s keys and the candidates only, not over all of `points`. With `multiple` > 1 a
    number of chosen that is not a multiple of it is rounded up by the next candidates in the
    same ranking (whatever `front_only` says; so up to `multiple - 1` more than the fraction),
    as far as there are candidates; none chosen stays none. Contributions follow `rule` (the
    `fitness` setting, `moncae.method.objectives.contributions`).
    """
    candidates = [k for k in dict.fromkeys(candidates) if k in points]
    if everyone or not candidates:
        return candidates
    keys = list(points) if within is None else \
        [k for k in dict.fromkeys([*within, *candidates]) if k in points]
    overall = dict(zip(keys, _contributions([points[k] for k in keys], ref, rule)))
    own = dict(zip(candidates, _contributions([points[k] for k in candidates], ref, rule)))
    ranked = sorted(range(len(candidates)), key=lambda i: (
        -overall[candidates[i]], -own[candidates[i]], points[candidates[i]][0], i))
    chosen = {i for i in ranked[:math.ceil(fraction * len(candidates))]
              if not front_only or overall[candidates[i]] > 0}
    for i in ranked:  # round up to a multiple (`chosen` is a prefix of `ranked`): fill idle slots
        if len(chosen) % multiple == 0:
            break
        chosen.add(i)
    return [k for i, k in enumerate(candidates) if i in chosen]


def _contributions(points: list[Sequence[float]], ref: Sequence[float], rule: str) -> np.ndarray:
    return contributions(np.array(points, dtype=float).reshape(-1, len(ref)), ref, rule)
