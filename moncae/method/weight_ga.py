"""Training weights with a mutation-only genetic algorithm, as in the GA weight-training study
(`ga-weight-training`): the operators, pure NumPy (the Keras side is `moncae.model.weight_ga`).

The study's algorithm, on one flat vector of a network's parameters (weights and biases):
- a **population** of agents (the study: about 10), each a full parameter vector;
- every generation each agent is scored (the study: mean absolute error of the reconstructions;
  lower is better), and the single best agent is the only parent: no crossover (Castellani);
- its parameters are **copied to all the other agents**, which are then mutated: `mutations`
  randomly chosen parameters (the study: about 10 for one image, 1 for several) each get a
  number drawn from U(-1, 1) **added** to them. The parent itself is kept unmutated (agent 0),
  so the best score never gets worse.

All randomness comes from an explicit `numpy.random.Generator`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from moncae.errors import MoncaeError

__all__ = ["PERTURBATION", "SEED_MAX", "GAStep", "best_index", "check_perturbation", "flatten", "ga_step",
           "mutate_weights", "offspring", "unflatten"]

PERTURBATION = 1.0  # U(-1, 1), the study's
SEED_MAX = 2**32 - 1  # the largest seed `keras.utils.set_random_seed` (NumPy's legacy seeding) accepts


def _check(name: str, value: int, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise MoncaeError(f"`{name}` must be an integer >= {low}. Received: {name}={value!r}")


def check_perturbation(perturbation: float) -> None:
    """A mutation adds U(-perturbation, perturbation): it must be a positive finite number."""
    if isinstance(perturbation, bool) or not isinstance(perturbation, (int, float, np.integer, np.floating)) \
            or not (math.isfinite(perturbation) and perturbation > 0):
        raise MoncaeError("`perturbation` must be a positive finite number (a mutation adds "
                          f"U(-perturbation, perturbation)). Received: perturbation={perturbation!r}")


def flatten(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """The arrays (e.g. a model's weights) as one float64 vector, in order."""
    if not arrays:
        return np.zeros(0)
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])


def unflatten(vector: np.ndarray, shapes: Sequence[tuple[int, ...]], dtype=np.float32) -> list[np.ndarray]:
    """Inverse of `flatten` for arrays of `shapes`."""
    sizes = [math.prod(s) for s in shapes]
    if len(vector) != sum(sizes):
        raise MoncaeError(f"`vector` must hold {sum(sizes)} values for these shapes. Received: {len(vector)}")
    out, at = [], 0
    for shape, size in zip(shapes, sizes):
        out.append(np.asarray(vector[at:at + size], dtype=dtype).reshape(shape))
        at += size
    return out


def mutate_weights(parent: np.ndarray, mutations: int, rng: np.random.Generator,
                   perturbation: float = PERTURBATION) -> np.ndarray:
    """A copy of `parent` with `mutations` distinct random entries each plus U(-perturbation,
    perturbation) (at most every entry once); `parent` is unchanged."""
    _check("mutations", mutations, 1)
    check_perturbation(perturbation)
    child = np.array(parent, dtype=np.float64, copy=True)
    if child.size == 0:
        return child
    index = rng.choice(child.size, size=min(mutations, child.size), replace=False)
    child[index] += rng.uniform(-perturbation, perturbation, size=len(index))
    return child


def offspring(parent: np.ndarray, population: int, mutations: int, rng: np.random.Generator,
              perturbation: float = PERTURBATION) -> list[np.ndarray]:
    """The next population: the parent unchanged first, then `population - 1` mutated copies."""
    _check("population", population, 2)
    return [np.array(parent, dtype=np.float64, copy=True),
            *(mutate_weights(parent, mutations, rng, perturbation) for _ in range(population - 1))]


def best_index(scores: Sequence[float]) -> int:
    """The lowest score (NaN counts as worst); ties: the first, so the parent (agent 0) stays
    unless a child is strictly better."""
    values = np.array([s if math.isfinite(s) else math.inf for s in scores], dtype=float)
    return int(np.argmin(values))


@dataclass(frozen=True)
class GAStep:
    parent: np.ndarray
    score: float
    improved: bool  # a child beat the parent


def ga_step(parent: np.ndarray, score: float, evaluate: Callable[[np.ndarray], float], population: int,
            mutations: int, rng: np.random.Generator, perturbation: float = PERTURBATION) -> GAStep:
    """One generation: copy the parent to every agent, mutate all but the first, score the
    children (`evaluate`: a vector -> its loss; the parent keeps its known `score`), keep the best."""
    agents = offspring(parent, population, mutations, rng, perturbation)
    scores = [score, *(float(evaluate(a)) for a in agents[1:])]
    i = best_index(scores)
    return GAStep(agents[i], scores[i], i != 0)
