"""A search's wall-clock budget (`max_minutes`): when the generation about to start is its last.

A generation's `last` flag must be known when it starts (the last generation promotes every
genome to the top rung and ends with the final population), so the budget is checked there,
from the seconds the generations before it took: the next generation is the last when another
one as long as the longest so far would not fit in what is left. The first generation never
is (it gives the estimate), and a search with a budget runs at most `generations`.

The seconds are those the run recorded for its generations (the checkpoint's log), not the
time since the command started: a resumed run makes the same decision at the same generation
as the uninterrupted one, and the time between a stop and its resume does not count. What the
decision depends on is the machine's speed, so the same seed and settings can end after
different generations on two machines; a run with `generations` set to the number it ran
(and no budget) gives the same results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["budget_ends", "used_minutes"]


def _known(seconds: Sequence[float | None]) -> list[float]:
    return [float(s) for s in seconds if s is not None and math.isfinite(s)]


def used_minutes(seconds: Sequence[float | None]) -> float:
    """Minutes the generations so far took (those whose seconds are known)."""
    return sum(_known(seconds)) / 60


def budget_ends(seconds: Sequence[float | None], max_minutes: float) -> bool:
    """Whether the generation after those that took `seconds` is the search's last under a budget
    of `max_minutes` (0: none): when their sum plus the longest of them passes the budget."""
    known = _known(seconds)
    if max_minutes <= 0 or not known:
        return False
    return sum(known) + max(known) > max_minutes * 60
