"""What a new model's first training batch costs: graph tracing against steady-state steps.

For a few random genomes of a preset's space (default: `cpu` on Fashion-MNIST), builds
and compiles each model and trains it (`fit_autoencoder`) for one epoch on `--images` training
images, which times every batch; prints per genome the first batch (the train step's trace into a
TF graph, its first run, and the input pipeline's start), the median batch, and the steady-state
steps (batches x median). With `--lazy` the optimizer is left for Keras to build inside the first
trace (what `fit_autoencoder` did before `build_optimizer`): that trace is then done twice.
`--update stock` trains with Keras' own optimizer update instead of `moncae.model.fast_update`'s;
`--update both` trains every genome with each in the same process, stock first on even genomes
and fast first on odd ones (this machine's speed drifts between runs, and a second build of the
same network may gain from warm caches, so only such paired figures compare the two).

Usage: python bench/first_batch.py [--dataset fashion_mnist] [--preset cpu] [--genomes 4] [--images 5000]
       [--lazy] [--update fast|stock|both]
"""

from __future__ import annotations

import argparse
import random
import statistics

from _cli import non_negative_int, positive_int, run

from moncae.config import resolve_config
from moncae.data import cached_dataset
from moncae.method.genome import random_genome
from moncae.model import training
from moncae.model.decode import build_autoencoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--genomes", type=positive_int, default=4)
    parser.add_argument("--images", type=positive_int, default=5000)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--lazy", action="store_true", help="let Keras build the optimizer in the trace")
    parser.add_argument("--update", choices=("fast", "stock", "both"), default="fast",
                        help="the optimizer update: moncae's fast one, Keras' own, or each in turn")
    args = parser.parse_args()

    import keras

    config = resolve_config(preset=args.preset, dataset=args.dataset, seed=args.seed, out="unused")
    data = cached_dataset(config.data_spec())
    x = data.x_train[:args.images]
    rng = random.Random(args.seed)
    if args.lazy:
        training.build_optimizer = lambda model: None
    print(f"{args.dataset}, {args.preset} space, {len(x)} images, batch {config.batch_size}, "
          f"optimizer built {'in the first trace (lazy)' if args.lazy else 'before fit'}")
    updates = ("stock", "fast") if args.update == "both" else (args.update,)
    firsts: dict[str, list[float]] = {u: [] for u in updates}
    steps: dict[str, list[float]] = {u: [] for u in updates}
    for i in range(args.genomes):
        genome = random_genome(config.genome_space(), rng)
        for update in updates if i % 2 == 0 else updates[::-1]:
            keras.utils.set_random_seed(args.seed)
            model, _ = build_autoencoder(genome, data.input_shape, seed=args.seed)
            optimizer = training.make_optimizer(genome) if update == "fast" else keras.optimizers.get(
                {"class_name": genome.optimizer, "config": {"learning_rate": genome.learning_rate}})
            model.compile(optimizer=optimizer, loss=training.make_loss(config.loss), jit_compile=False)
            times = training.fit_autoencoder(model, x, data.x_val[:config.batch_size], epochs=1,
                                             batch_size=config.batch_size, patience=1,
                                             seed=args.seed).batch_seconds
            median = statistics.median(times)
            firsts[update].append(times[0])
            steps[update].append(median * len(times))
            print(f"  {genome.optimizer:8} {update:5} update, {len(model.trainable_variables):2} variables "
                  f"{model.count_params():7} params: first batch {times[0]:.2f} s, median batch "
                  f"{median * 1000:.1f} ms, steady-state steps {steps[update][-1]:.2f} s "
                  f"({len(times)} batches)")
            training.end_session()
    for update in updates:
        print(f"{update} update: mean first batch {statistics.mean(firsts[update]):.2f} s, "
              f"mean steady-state steps {statistics.mean(steps[update]):.2f} s")

if __name__ == "__main__":
    run(main)
