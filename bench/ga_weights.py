"""GA weight training (the GA weight-training study) against backpropagation, at equal wall time.

One fixed small genome (C8k3-relu-pool | C4k3-relu-pool -> 7x7x4, about 1k parameters), the same
seeded initial weights for both methods, the same training images from mnist_5k: a subset of `N`
images (default 10, one per digit as in the study, then 100). For `--seconds` each:
- `ga`: `moncae.model.weight_ga.train_weights_ga` (population 10, 10 weights mutated per child
  by adding U(-1, 1), the parent kept; score: BCE on the subset);
- `adam`: full-batch Adam (learning rate 1e-3) on the same subset (`train_on_batch`), the clock
  paused while its loss is logged.
Prints each method's training-subset BCE at a few wall-clock marks, then the final BCE on the
subset and on 500 held-out validation images (what the weights learned beyond the subset).

Usage: python bench/ga_weights.py [--seconds 30] [--images 10 100] [--population 10]
       [--mutations 10] [--seed 0]     (about 2-3 minutes on 2 CPU cores at the defaults)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _cli import non_negative_int, positive_float, positive_int, run

from moncae.data import DataSpec, cached_dataset
from moncae.method.genome import Genome, GenomeSpace

SPACE = GenomeSpace(max_blocks=2, max_filters=8)
# block: active, filters gene (4 * 2**g), kernel 3, no bn, relu, no dropout, pool
GENOME = Genome((1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, SPACE.optimizers.index("adam"),
                 SPACE.learning_rates.index(1e-3)), SPACE)
MARKS = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


def subset(data, n: int) -> np.ndarray:
    """`n` training images, round-robin over the digits (n = 10: one per digit)."""
    by_digit = [np.flatnonzero(data.y_train == d) for d in range(10)]
    picks = [by_digit[i % 10][i // 10] for i in range(n)]
    return data.x_train[picks]


def at_marks(curve: list[tuple[float, float]], seconds: float) -> list[tuple[float, float]]:
    """The loss reached by each mark (the last logged point at or before it)."""
    out = []
    for mark in [m for m in MARKS if m < seconds] + [seconds]:
        done = [loss for t, loss in curve if t <= mark]
        out.append((mark, done[-1] if done else float("nan")))
    return out


def adam(x: np.ndarray, seconds: float, seed: int, shape) -> tuple[object, list[tuple[float, float]], int]:
    import keras

    from moncae.model.decode import build_autoencoder
    from moncae.model.weight_ga import reconstruction_loss

    keras.utils.set_random_seed(seed)
    model, _ = build_autoencoder(GENOME, shape, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.BinaryCrossentropy(),
                  jit_compile=False)
    curve = [(0.0, reconstruction_loss(model, x))]
    spent, steps, next_log = 0.0, 0, 0.25
    while spent < seconds:
        start = time.perf_counter()
        model.train_on_batch(x, x)
        spent += time.perf_counter() - start
        steps += 1
        if spent >= next_log:  # logging is off the clock
            curve.append((spent, reconstruction_loss(model, x)))
            next_log = spent + 0.25
    curve.append((spent, reconstruction_loss(model, x)))
    return model, curve, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=positive_float, default=30.0)
    parser.add_argument("--images", type=positive_int, nargs="+", default=[10, 100])
    parser.add_argument("--population", type=positive_int, default=10)
    parser.add_argument("--mutations", type=positive_int, default=10)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    args = parser.parse_args()

    import keras

    from moncae.model.training import quiet_tensorflow
    from moncae.model.weight_ga import reconstruction_loss, train_weights_ga

    quiet_tensorflow()
    data = cached_dataset(DataSpec("mnist_5k", val_size=500, test_size=10))
    shape, x_val = data.input_shape, data.x_val
    most = 10 * min(int(np.sum(data.y_train == d)) for d in range(10))  # round-robin over the digits
    if max(args.images) > most:
        parser.error(f"--images must be <= {most} (as many of each digit as the training split has)")
    print(f"genome {GENOME.describe(shape)}; {args.seconds:g} s per method; GA population "
          f"{args.population}, {args.mutations} weights mutated per child, U(-1, 1)")
    for n in args.images:
        x = subset(data, n)
        keras.backend.clear_session()
        ga = train_weights_ga(GENOME, x, input_shape=shape, population=args.population,
                              mutations=args.mutations, generations=None, seconds=args.seconds, seed=args.seed)
        ga_curve = [(h.seconds, h.loss) for h in ga.history]
        ga_val = reconstruction_loss(ga.model, x_val)
        params = int(sum(np.prod(v.shape) for v in ga.model.trainable_weights))
        keras.backend.clear_session()
        model, adam_curve, steps = adam(x, args.seconds, args.seed, shape)
        adam_val = reconstruction_loss(model, x_val)
        print(f"\n{n} training images, {params} trainable parameters")
        print("  seconds   GA BCE    Adam BCE   (on the training images)")
        for (mark, g), (_, a) in zip(at_marks(ga_curve, args.seconds), at_marks(adam_curve, args.seconds)):
            print(f"  {mark:7.1f}   {g:.4f}    {a:.4f}")
        print(f"  GA: {ga.history[-1].generation} generations ({ga.history[-1].evaluations} forward passes), "
              f"final {ga.loss:.4f} on the subset, {ga_val:.4f} on 500 held-out images")
        print(f"  Adam: {steps} steps, final {adam_curve[-1][1]:.4f} on the subset, {adam_val:.4f} on 500 "
              "held-out images")


if __name__ == "__main__":
    run(main)
