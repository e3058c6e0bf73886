"""The two things moncae runs many times on a compiled autoencoder, each one `tf.function` traced
once per model (any batch size): its train step and its loss.

Keras' `fit` traces its own train step, but it wraps it in a distribution strategy, an input
iterator, the loss tracker and the compiled metrics, and drives it through callbacks, epoch
iterators and a history: 8% of a `quick` rung-0 training's time (2 epochs of 16 batches) and 4%
of a rung-1 one's (6 epochs of 47), measured on one thread (`docs/measurements.md`).
`train_step` is Keras' own `TensorFlowTrainer.train_step` without those wrappers: the forward
pass in training mode, the compiled loss (`compute_loss`, which adds the model's own losses as
Keras does), its gradients and the optimizer's `apply_gradients`: the same operations on the
same operands, so the weights after any number of steps equal `fit`'s to the bit
(`tests/test_train_loop.py`).

Each step holds its model weakly, and the cache drops it with its model.
"""

from __future__ import annotations

import weakref

__all__ = ["loss_step", "train_step"]

_TRAIN_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its traced step
_LOSS_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its traced loss


def _spec(image_shape: tuple[int, ...]):
    import tensorflow as tf

    return [tf.TensorSpec((None, *image_shape), tf.float32)]


def train_step(model, image_shape: tuple[int, ...]):
    """`model`'s train step on a batch of images (their own target): returns the batch's loss
    and updates the weights, the optimizer and any state the layers keep (batch-norm moving
    statistics, dropout seeds). Build the optimizer first (`moncae.model.training.build_optimizer`),
    or the first trace creates its variables and TensorFlow traces the step twice."""
    step = _TRAIN_STEPS.get(model)
    if step is None:
        import tensorflow as tf

        ref = weakref.ref(model)

        def one_step(x):
            model = ref()
            with tf.GradientTape() as tape:
                y_pred = model(x, training=True)
                loss = model.compute_loss(x=x, y=x, y_pred=y_pred, training=True)
                # as in Keras' step: the loss itself, unless the optimizer scales losses
                scaled = model.optimizer.scale_loss(loss)
            weights = model.trainable_weights
            model.optimizer.apply_gradients(zip(tape.gradient(scaled, weights), weights))
            return loss

        step = tf.function(one_step, autograph=False, input_signature=_spec(image_shape))
        _TRAIN_STEPS[model] = step
    return step


def loss_step(model, image_shape: tuple[int, ...]):
    """`model`'s compiled loss on a batch of images (their own target): a forward pass and the
    loss, no metrics, no training-mode layers."""
    step = _LOSS_STEPS.get(model)
    if step is None:
        import tensorflow as tf

        if model.losses:  # Keras would add them (regularisers, `add_loss`): not measured here
            raise ValueError("evaluate_loss measures the compiled loss only; this model adds losses of its own")

        ref, loss = weakref.ref(model), model.loss  # the step does not keep the model alive
        step = tf.function(lambda x: loss(x, ref()(x, training=False)), autograph=False,
                           input_signature=_spec(image_shape))
        _LOSS_STEPS[model] = step
    return step
