"""What a new model's first training batch costs: graph tracing against steady-state steps.

For a few random genomes of a preset's space (default: `cpu` on Fashion-MNIST), builds
and compiles each model and fits it for one epoch on `--images` training images, timing every
batch with a Keras callback; prints per genome the first batch (the train step's trace into a
TF graph, its first run, and the input pipeline's start), the median batch, and the steady-state
steps (batches x median). With `--lazy` the optimizer is left for Keras to build inside the first
trace (what `fit_autoencoder` did before `build_optimizer`): that trace is then done twice.

Usage: python bench/first_batch.py [--dataset fashion_mnist] [--preset cpu] [--genomes 4] [--images 5000]
       [--lazy]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from moncae.config import resolve_config
from moncae.data import cached_dataset
from moncae.method.genome import random_genome
from moncae.model import training
from moncae.model.decode import build_autoencoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--genomes", type=int, default=4)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lazy", action="store_true", help="let Keras build the optimizer in the trace")
    args = parser.parse_args()

    import keras

    class BatchTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self._start)

    config = resolve_config(preset=args.preset, dataset=args.dataset, seed=args.seed, out="unused")
    data = cached_dataset(config.data_spec())
    x = data.x_train[:args.images]
    rng = random.Random(args.seed)
    if args.lazy:
        training.build_optimizer = lambda model: None
    print(f"{args.dataset}, {args.preset} space, {len(x)} images, batch {config.batch_size}, "
          f"optimizer built {'in the first trace (lazy)' if args.lazy else 'before fit'}")
    firsts, steps = [], []
    for _ in range(args.genomes):
        genome = random_genome(config.genome_space(), rng)
        keras.utils.set_random_seed(args.seed)
        model, _ = build_autoencoder(genome, data.input_shape, seed=args.seed)
        model.compile(optimizer=training.make_optimizer(genome), loss=training.make_loss(config.loss),
                      jit_compile=False)
        timer = BatchTimer()
        training.build_optimizer(model)
        model.fit(training.tf_dataset(x, batch_size=config.batch_size, shuffle_seed=args.seed,
                                      autoencoder=True),
                  epochs=1, verbose=0, callbacks=[timer])
        median = statistics.median(timer.times)
        firsts.append(timer.times[0])
        steps.append(median * len(timer.times))
        print(f"  {genome.optimizer:8} {len(model.trainable_variables):2} variables "
              f"{model.count_params():7} params: first batch {timer.times[0]:.2f} s, median batch "
              f"{median * 1000:.1f} ms, steady-state steps {steps[-1]:.2f} s ({len(timer.times)} batches)")
        training.end_session()
    print(f"mean first batch {statistics.mean(firsts):.2f} s, mean steady-state steps "
          f"{statistics.mean(steps):.2f} s")


if __name__ == "__main__":
    main()
