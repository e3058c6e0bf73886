"""`train_weights_ga`: train one genome's autoencoder weights with the mutation-only GA of the
GA weight-training study instead of backpropagation (the operators: `moncae.method.weight_ga`).

The genome's autoencoder is built as the search builds it (`seed` fixes the initial weights, which
become the first parent); its trainable parameters (kernels and biases; batch-norm statistics are
left alone) form the flat vector the GA mutates. An agent's score is the reconstruction loss on
the training images (`loss`: "bce", the search's loss, default; or "mae", the study's), inference
mode. Runs until `generations` or `seconds` (whichever comes first) and logs the parent's loss
every generation (the history; `log` is also called with each entry).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moncae.errors import MoncaeError
from moncae.method.genome import Genome
from moncae.method.weight_ga import PERTURBATION, SEED_MAX, check_perturbation, flatten, ga_step, unflatten
from moncae.model.decode import build_autoencoder

__all__ = ["GALog", "GAWeightsResult", "reconstruction_loss", "train_weights_ga"]

DEFAULT_POPULATION = 10  # the study: "about 10 agents"
DEFAULT_MUTATIONS = 10  # the study: "about 10 parameters" (one image); 1 for several images


@dataclass(frozen=True)
class GALog:
    generation: int
    seconds: float
    loss: float  # the parent's (best so far) loss on the training images
    evaluations: int  # forward passes of the whole subset so far


@dataclass
class GAWeightsResult:
    model: Any  # the Keras autoencoder holding the best weights
    loss: float
    history: list[GALog] = field(default_factory=list)


def reconstruction_loss(model, x: np.ndarray, loss: str = "bce") -> float:
    """Mean loss of `model`'s reconstructions of `x` (inference mode), per pixel."""
    out = np.asarray(model(x, training=False), dtype=np.float64)
    target = np.asarray(x, dtype=np.float64)
    if loss == "mae":
        return float(np.mean(np.abs(out - target)))
    if loss == "bce":  # as keras' BinaryCrossentropy on probabilities (clipped by its epsilon)
        eps = 1e-7
        out = np.clip(out, eps, 1.0 - eps)
        return float(np.mean(-(target * np.log(out) + (1.0 - target) * np.log(1.0 - out))))
    raise MoncaeError(f"`loss` must be bce or mae. Received: loss={loss!r}")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_arguments(population, mutations, perturbation, generations, seconds, seed, loss) -> None:
    """Refuse what the GA cannot use before building anything."""
    for name, value, low in (("population", population, 2), ("mutations", mutations, 1)):
        if not _is_int(value) or value < low:
            raise MoncaeError(f"`{name}` must be an integer >= {low}. Received: {name}={value!r}")
    if generations is not None and (not _is_int(generations) or generations < 0):
        raise MoncaeError(f"`generations` must be an integer >= 0 or None. Received: generations={generations!r}")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float, np.number))
                                or math.isnan(seconds) or seconds < 0):
        raise MoncaeError(f"`seconds` must be a number >= 0 or None. Received: seconds={seconds!r}")
    if not _is_int(seed) or not 0 <= seed <= SEED_MAX:
        raise MoncaeError(f"`seed` must be an integer from 0 to {SEED_MAX}. Received: seed={seed!r}")
    check_perturbation(perturbation)
    if loss not in ("bce", "mae"):
        raise MoncaeError(f"`loss` must be bce or mae. Received: loss={loss!r}")


def train_weights_ga(genome: Genome, x: np.ndarray, *, input_shape: Sequence[int],
                     population: int = DEFAULT_POPULATION, mutations: int = DEFAULT_MUTATIONS,
                     perturbation: float = PERTURBATION, generations: int | None = 1000,
                     seconds: float | None = None, seed: int = 0, loss: str = "bce",
                     log: Callable[[GALog], None] | None = None) -> GAWeightsResult:
    """Evolve the weights of `genome`'s autoencoder on the images `x` (see the module docstring)."""
    if generations is None and seconds is None:
        raise MoncaeError("give `generations` or `seconds` (or both): the GA needs a stopping rule")
    _check_arguments(population, mutations, perturbation, generations, seconds, seed, loss)
    import keras

    keras.utils.set_random_seed(seed)
    model, _ = build_autoencoder(genome, input_shape, seed=seed)
    variables = list(model.trainable_weights)
    shapes = [tuple(v.shape) for v in variables]
    n_weights = sum(int(np.prod(s)) for s in shapes)
    if mutations > n_weights:
        raise MoncaeError(f"`mutations` must be at most the {n_weights} trainable parameters of "
                          f"{genome.describe(input_shape)} (each child mutates that many distinct ones). "
                          f"Received: mutations={mutations}")

    def load(vector: np.ndarray) -> None:
        for var, value in zip(variables, unflatten(vector, shapes, dtype=np.float32)):
            var.assign(value)

    def evaluate(vector: np.ndarray) -> float:
        load(vector)
        return reconstruction_loss(model, x, loss)

    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    parent = flatten([v.numpy() for v in variables])
    score = evaluate(parent)
    history = [GALog(0, 0.0, score, 1)]
    if log:
        log(history[-1])
    gen, evaluations = 0, 1
    def more() -> bool:
        return (generations is None or gen < generations) and (
            seconds is None or time.perf_counter() - start < seconds)

    while more():
        gen += 1
        step = ga_step(parent, score, evaluate, population, mutations, rng, perturbation)
        parent, score = step.parent, step.score
        evaluations += population - 1
        history.append(GALog(gen, round(time.perf_counter() - start, 4), score, evaluations))
        if log:
            log(history[-1])
    load(parent)
    return GAWeightsResult(model, score, history)
