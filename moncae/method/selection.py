"""Parent-selection strategies, by name. Each takes fitnesses, k and an RNG and returns indices.

Fitness is maximised (it is the exclusive hypervolume contribution). Add a strategy by writing
one function and registering it in `SELECTORS`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

Selector = Callable[[Sequence[float], int, random.Random], list[int]]

# The search strategies by name (their code is `moncae.search.strategies`, one module each); the
# names live here, in the method layer, so that settings and the CLI can check them cheaply.
STRATEGY_NAMES = ("moncae", "nsga2", "mu-plus-lambda", "random", "metaqnn")


def select_paper(fitnesses: Sequence[float], k: int, rng: random.Random) -> list[int]:
    """MONCAE Appendix B: a random individual is taken when its fitness beats U(0, max fitness).

    Equivalent in distribution to fitness-proportional selection; falls back to uniform choice
    when every fitness is 0 (e.g. a population that is all failures or all duplicates).
    """
    n = len(fitnesses)
    top = max(fitnesses, default=0.0)
    chosen: list[int] = []
    while len(chosen) < k:
        i = rng.randrange(n)
        if top <= 0.0 or fitnesses[i] > rng.uniform(0.0, top):
            chosen.append(i)
    return chosen


def select_tournament(fitnesses: Sequence[float], k: int, rng: random.Random, size: int = 3) -> list[int]:
    """Tournament of `size` (with replacement), as in DEAP's `selTournament`."""
    n = len(fitnesses)
    out = []
    for _ in range(k):
        aspirants = [rng.randrange(n) for _ in range(size)]
        out.append(max(aspirants, key=lambda i: fitnesses[i]))
    return out


SELECTORS: dict[str, Selector] = {"paper": select_paper, "tournament": select_tournament}


def elite_indices(fitnesses: Sequence[float], losses: Sequence[float], count: int,
                  keys: Sequence[str] | None = None) -> list[int]:
    """The `count` best individuals: highest fitness, ties broken by lower loss, then position.

    With `keys` (the search's rule): the lowest-loss network first, so the best loss never gets
    worse (like NSGA-II keeping a front's boundary points; its exclusive contribution alone can be
    small when a near-equal loss has a smaller LOC), then by fitness; distinct networks before
    copies: a second copy takes an elite slot only when there are fewer distinct networks than slots.
    """
    order = sorted(range(len(fitnesses)), key=lambda i: (-fitnesses[i], losses[i], i))
    if keys is None:
        return order[:count]
    if order:
        best = min(order, key=lambda i: (losses[i], -fitnesses[i], i))
        order = [best, *(i for i in order if i != best)]
    seen: set[str] = set()
    firsts = [i for i in order if not (keys[i] in seen or seen.add(keys[i]))]
    first = set(firsts)
    copies = [i for i in order if i not in first]
    return (firsts + copies)[:count]
