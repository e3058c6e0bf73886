"""Keras' Adam, Nadam and RMSprop updates, rewritten to be cheap to trace and equal to the bit.

Every new genome is a new model, so its train step is traced anew, and Keras' optimizer update
was the largest part of that trace: with the search spaces' optimizers a model's first batch
took ~1.0 s (Adam), ~1.5 s (Nadam) and ~0.45 s (RMSprop) longer than with plain SGD here
(cProfile: Adam's `update_step`, ~49 ms per variable, almost all of it Keras-ops dispatch:
`ops.cast`, `ops.multiply`, ... each resolving dtypes in Python). `speed_up_update` replaces the
update of such an optimizer with the same arithmetic written in raw TensorFlow ops, and computes
the per-step scalars (learning rate, bias corrections) once per step instead of once per
variable.

Exactness is the contract: the same operations on the same operands in the same order with the
same constants, so the weights and the optimizer's slots after any number of steps are equal to
the bit to stock Keras' (`tests/test_fast_update.py`). Only the configurations the search uses
are rewritten (every setting at Keras' default but the learning rate; Adam without AMSGrad,
RMSprop without momentum or centring); any other optimizer is returned untouched.

The rewrites copy Keras' private update code, so they are used only where that code is the code
they were checked against: `speed_up_update` compares a digest of the Keras sources each rewrite
mirrors (`update_step`, `build`, every `_backend_update_step` and `_get_variable_index` of the
class) with the digest of the Keras version it was verified on (`VERIFIED`). On any other Keras
the optimizer keeps its own update: slower to trace, never wrong. After a Keras upgrade, re-run
`tests/test_fast_update.py` against the new sources and record their digests.

Each variable's update is one call of a `tf.function` (traced once per process for each rule,
constants and dtype, with free shapes; TensorFlow inlines it when it runs the train step, so the
same kernels run on the same operands), not a dozen ops traced anew for every variable of every
new model: a new `quick` model's first batch took ~0.05 s (~11%) less, the steps the same.

The optimizer stays a stock Keras object: the two methods are replaced on the instance, not by
a subclass, so its class, its config and the `.keras` files saved with it are unchanged and
load without moncae.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable

from moncae.tfquiet import import_tensorflow_quietly

import_tensorflow_quietly()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

__all__ = ["speed_up_update"]

# sha256 (first 16 hex digits) of the Keras sources each rewrite mirrors, as in Keras 3.15.1
VERIFIED = {"Adam": "a4dee2d22dd4ca5a", "Nadam": "daedb51edb5bdd89", "RMSprop": "039d89f439938523"}


@functools.cache
def keras_source_digest(cls: type) -> str | None:
    """The digest of the Keras code a rewrite of `cls`'s update depends on; None when the
    sources cannot be read (then the fast path is not used)."""
    parts = [cls.update_step, cls.build, cls._get_variable_index]
    parts += [k.__dict__["_backend_update_step"] for k in cls.__mro__ if "_backend_update_step" in k.__dict__]
    try:
        text = "".join(inspect.getsource(part) for part in parts)
    except (OSError, TypeError):
        return None
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _slot(slots, optimizer, variable):
    return slots[optimizer._get_variable_index(variable)].value


# --- Adam (keras/src/optimizers/adam.py, amsgrad=False) -------------------------------------

def _adam_scalars(opt, learning_rate, dtype) -> dict:
    lr = ops.cast(learning_rate, dtype)
    local_step = ops.cast(opt.iterations + 1, dtype)
    beta_1_power = ops.power(ops.cast(opt.beta_1, dtype), local_step)
    beta_2_power = ops.power(ops.cast(opt.beta_2, dtype), local_step)
    return {"alpha": lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)}


def _adam_update(opt, s: dict, gradient, variable) -> None:
    update = _traced(_adam_body, (1 - opt.beta_1, 1 - opt.beta_2, opt.epsilon), variable.dtype, 2, 1)
    update(gradient, variable.handle, _slot(opt._momentums, opt, variable).handle,
           _slot(opt._velocities, opt, variable).handle, s["alpha"])


def _adam_body(constants, gradient, variable, m, v, alpha) -> None:
    one_minus_beta_1, one_minus_beta_2, epsilon = constants
    m.assign_add((gradient - m.read()) * one_minus_beta_1)
    v.assign_add((tf.square(gradient) - v.read()) * one_minus_beta_2)
    variable.assign_sub((m.read() * alpha) / (tf.sqrt(v.read()) + epsilon))


# --- Nadam (keras/src/optimizers/nadam.py) ---------------------------------------------------

def _nadam_scalars(opt, learning_rate, dtype) -> dict:
    lr = ops.cast(learning_rate, dtype)
    local_step = ops.cast(opt.iterations + 1, dtype)
    next_step = ops.cast(opt.iterations + 2, dtype)
    decay = ops.cast(0.96, dtype)
    beta_1 = ops.cast(opt.beta_1, dtype)
    beta_2 = ops.cast(opt.beta_2, dtype)
    u_t = beta_1 * (1.0 - 0.5 * (ops.power(decay, local_step)))
    u_t_1 = beta_1 * (1.0 - 0.5 * (ops.power(decay, next_step)))
    u_product_t = ops.cast(opt._u_product, dtype)  # already this step's (Nadam assigns it first)
    u_product_t_1 = u_product_t * u_t_1
    beta_2_power = ops.power(beta_2, local_step)
    return {"lr": lr, "one_minus_beta_1": 1 - beta_1, "one_minus_beta_2": 1 - beta_2,
            "u_t_1": u_t_1, "one_minus_u_product_t_1": 1 - u_product_t_1,
            "one_minus_u_t": 1 - u_t, "one_minus_u_product_t": 1 - u_product_t,
            "one_minus_beta_2_power": 1 - beta_2_power}


_NADAM_SCALARS = ("lr", "one_minus_beta_1", "one_minus_beta_2", "u_t_1", "one_minus_u_product_t_1",
                  "one_minus_u_t", "one_minus_u_product_t", "one_minus_beta_2_power")


def _nadam_update(opt, s: dict, gradient, variable) -> None:
    update = _traced(_nadam_body, (opt.epsilon,), variable.dtype, 2, len(_NADAM_SCALARS))
    update(gradient, variable.handle, _slot(opt._momentums, opt, variable).handle,
           _slot(opt._velocities, opt, variable).handle, *(s[name] for name in _NADAM_SCALARS))


def _nadam_body(constants, gradient, variable, m, v, *scalars) -> None:
    (epsilon,), s = constants, dict(zip(_NADAM_SCALARS, scalars, strict=True))
    m.assign_add((gradient - m.read()) * s["one_minus_beta_1"])
    v.assign_add((tf.square(gradient) - v.read()) * s["one_minus_beta_2"])
    m_hat = ((s["u_t_1"] * m.read()) / s["one_minus_u_product_t_1"]
             + (s["one_minus_u_t"] * gradient) / s["one_minus_u_product_t"])
    v_hat = v.read() / s["one_minus_beta_2_power"]
    variable.assign_sub((m_hat * s["lr"]) / (tf.sqrt(v_hat) + epsilon))


# --- RMSprop (keras/src/optimizers/rmsprop.py, momentum=0, centered=False) -------------------

def _rmsprop_scalars(opt, learning_rate, dtype) -> dict:
    return {"lr": ops.cast(learning_rate, dtype)}


def _rmsprop_update(opt, s: dict, gradient, variable) -> None:
    update = _traced(_rmsprop_body, (opt.rho, 1 - opt.rho, opt.epsilon), variable.dtype, 1, 1)
    update(gradient, variable.handle, _slot(opt._velocities, opt, variable).handle, s["lr"])


def _rmsprop_body(constants, gradient, variable, velocity, lr) -> None:
    rho, one_minus_rho, epsilon = constants
    velocity.assign(rho * velocity.read() + one_minus_rho * tf.square(gradient))
    variable.assign_sub((lr * gradient) / tf.sqrt(velocity.read() + epsilon))


# --- one variable's update as one traced function --------------------------------------------

class _Handle:
    """A resource variable inside the update function: reads and assignments by its handle (the
    ops `tf.Variable`'s `value()`, `assign_add`, `assign_sub` and `assign` make)."""

    def __init__(self, handle, dtype) -> None:
        self.handle, self.dtype = handle, dtype

    def read(self):
        return tf.raw_ops.ReadVariableOp(resource=self.handle, dtype=self.dtype)

    def assign(self, value) -> None:
        tf.raw_ops.AssignVariableOp(resource=self.handle, value=value)

    def assign_add(self, value) -> None:
        tf.raw_ops.AssignAddVariableOp(resource=self.handle, value=value)

    def assign_sub(self, value) -> None:
        tf.raw_ops.AssignSubVariableOp(resource=self.handle, value=value)


@functools.cache
def _traced(body: Callable[..., None], constants: tuple, dtype, slots: int, scalars: int):
    """`body` (constants, gradient, variable, *slots, *scalars) as a `tf.function` of the
    gradient (any shape), the variable's and its slots' handles and the per-step scalars."""
    handle = tf.TensorSpec([], tf.resource)
    signature = [tf.TensorSpec(None, dtype), handle, *[handle] * slots, *[tf.TensorSpec([], dtype)] * scalars]

    @tf.function(input_signature=signature, autograph=False)
    def update(gradient, variable, *rest):
        body(constants, gradient, _Handle(variable, dtype),
             *(_Handle(h, dtype) for h in rest[:slots]), *rest[slots:])

    return update


Rule = tuple[Callable[..., dict], Callable[..., None]]
RULES: dict[type, tuple[Callable[[object], bool], Rule]] = {
    keras.optimizers.Adam: (lambda o: not o.amsgrad, (_adam_scalars, _adam_update)),
    keras.optimizers.Nadam: (lambda o: True, (_nadam_scalars, _nadam_update)),
    keras.optimizers.RMSprop: (lambda o: o.momentum == 0 and not o.centered,
                               (_rmsprop_scalars, _rmsprop_update)),
}


def speed_up_update(optimizer):
    """`optimizer` with its update traced from raw TF ops, when it is a stock Adam (no AMSGrad),
    Nadam or RMSprop (no momentum, not centred) of the Keras code it was verified on; any other
    optimizer is returned as it is. Call it before the first training step. The weights it
    produces are Keras' own to the bit.
    """
    entry = RULES.get(type(optimizer))
    if entry is None or not entry[0](optimizer):
        return optimizer
    if keras_source_digest(type(optimizer)) != VERIFIED[type(optimizer).__name__]:
        return optimizer  # another Keras: its own update
    scalars_of, update = entry[1]
    step_scalars: dict = {}  # per traced step, by dtype; a closure, not tracked state
    backend_update_step = optimizer._backend_update_step

    def _backend_update_step(grads, trainable_variables, learning_rate):
        try:
            backend_update_step(grads, trainable_variables, learning_rate)
        finally:
            step_scalars.clear()  # so the next trace computes its own

    def update_step(gradient, variable, learning_rate):
        if isinstance(gradient, tf.IndexedSlices):  # sparse: Keras' own update
            return type(optimizer).update_step(optimizer, gradient, variable, learning_rate)
        dtype = variable.dtype
        if dtype not in step_scalars:
            step_scalars[dtype] = scalars_of(optimizer, learning_rate, dtype)
        update(optimizer, step_scalars[dtype], tf.cast(gradient, dtype), variable)

    optimizer._backend_update_step = _backend_update_step
    optimizer.update_step = update_step
    return optimizer
