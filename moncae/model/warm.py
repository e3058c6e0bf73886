"""Trained models kept in memory between two rungs of the budgeted search (the "warm" path).

A genome promoted to the next rung continues from the weights of its lower-rung training. Built
afresh, its Keras train step must be traced into a TensorFlow graph again: 0.9-3.4 s measured
here for a `quick` model (most of it the optimizer's ~40 graph ops per variable), as long as a
whole 2-epoch rung-0 training's steps. When the process that trained the lower rung runs the
promotion too, it keeps that model, compiled and traced, and continues from it instead.

The continuation is the same computation as the fresh one, so results are identical whichever
path runs (tested): the weights are those the lower rung saved (the bytes the driver hands back,
matched by their SHA-256), the optimizer is rewound to the state it had before its first step
(iterations 0, slots as `build` made them: zeros, Adagrad's 0.1, Nadam's 1.0), and every
variable that is not a weight (the dropout layers' seed-generator states) is set to what a
fresh build with the new rung's seed holds. Only plain autoencoders are kept (not VAEs, not the
decoder-only proxy rung, whose trainable variables differ). Kept models are bounded in number
and parameters; the oldest go first. A process that never ran the lower rung (another worker,
a resumed run, a Dask worker) simply builds afresh.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

__all__ = ["MAX_MODELS", "MAX_PARAMS", "WarmModels", "digest", "optimizer_start", "rewind", "warm_models"]

MAX_MODELS = 16  # models a process keeps at most
MAX_PARAMS = 4_000_000  # and their parameters in all (optimizer slots take ~2x more)


def digest(model_bytes: bytes) -> str:
    """The key a kept model is found by: the SHA-256 of the bytes its training returned."""
    return hashlib.sha256(bytes(model_bytes)).hexdigest()


def optimizer_start(model) -> list[np.ndarray]:
    """Build the compiled model's optimizer now (as `fit_autoencoder` does before `fit`) and return
    its variables' initial values, to rewind to before a continuation."""
    from moncae.model.training import build_optimizer

    build_optimizer(model)
    return [np.array(v.numpy()) for v in model.optimizer.variables]


@dataclass
class _Warm:
    model: object
    optimizer_start: list[np.ndarray]
    params: int


def rewind(model, start: list[np.ndarray], fresh) -> None:
    """Make a kept `model` start its next training as a fresh build would: the optimizer at
    `start`, and every non-weight variable (seed-generator states) as in `fresh`, a model of the
    same genome just built with the new training's seed. Its weights are left as they are."""
    variables = model.optimizer.variables
    if len(variables) != len(start):
        raise ValueError("the kept optimizer's variables changed")
    for variable, value in zip(variables, start):
        variable.assign(value)
    mine, theirs = _non_weights(model), _non_weights(fresh)  # in build order (names may be
    if len(mine) != len(theirs) or any(  # uniquified differently: Keras counts per session)
            tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype for a, b in zip(mine, theirs)):
        raise ValueError("a kept model and its fresh build differ in their non-weight variables")
    for variable, value in zip(mine, theirs):
        variable.assign(value.numpy())


def _non_weights(model) -> list:
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


class WarmModels:
    """This process's kept models, by the digest of the bytes their training saved."""

    def __init__(self, max_models: int = MAX_MODELS, max_params: int = MAX_PARAMS) -> None:
        self.max_models, self.max_params = max_models, max_params
        self._kept: OrderedDict[str, _Warm] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, key: str, model, start: list[np.ndarray]) -> None:
        params = int(model.count_params())
        if params > self.max_params:
            return
        with self._lock:
            self._kept[key] = _Warm(model, start, params)
            self._kept.move_to_end(key)
            while (len(self._kept) > self.max_models
                   or sum(w.params for w in self._kept.values()) > self.max_params):
                self._kept.popitem(last=False)

    def take(self, key: str) -> _Warm | None:
        """The model kept under `key`, removed from the store (one training uses it), or None."""
        with self._lock:
            warm = self._kept.pop(key, None)
        if warm is not None:
            self.hits += 1
        return warm

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()


warm_models = WarmModels()  # this process's store
