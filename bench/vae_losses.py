"""The RL thesis's proof of concept (its chapter 9), reproduced with moncae's VAE: one fixed random
VAE genome trained on mnist_5k with the vanilla loss (`elbo`) and with the reformulated one,
same weights at the start, same data, same seed; per epoch the validation BCE of the mean
decoding and the validation prior KL per latent dimension.

    MONCAE_DATA_DIR=../shared/datasets python bench/vae_losses.py            # ~1-2 min, 2 cores
    python bench/vae_losses.py --epochs 10 --genome-seed 3 --space paper

Prints one table row per (loss, epoch) and a final summary line per loss.
"""

from __future__ import annotations

import argparse
import random
import time

from _cli import non_negative_int, positive_int, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=positive_int, default=5)
    parser.add_argument("--train-size", type=positive_int, default=3000)
    parser.add_argument("--val-size", type=positive_int, default=1000)
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--genome-seeds", default="0,1,2",
                        help="comma-separated: one random genome per seed, each trained with both losses")
    parser.add_argument("--space", choices=["dense", "paper"], default="dense",
                        help="dense: a dense latent gene (as the thesis's latent size 5); paper: a conv code")
    parser.add_argument("--seed", type=non_negative_int, default=1, help="seeds weights, noise and shuffling")
    parser.add_argument("--eps", type=float, default=0.01)
    args = parser.parse_args()

    import keras

    from moncae.data import DataSpec, cached_dataset
    from moncae.method.genome import DENSE_LATENT_SIZES, GenomeSpace, random_genome
    from moncae.model.training import make_optimizer, quiet_tensorflow
    from moncae.model.vae import build_vae, compile_vae, vae_kl

    quiet_tensorflow()
    data = cached_dataset(DataSpec("mnist_5k", None, args.train_size, args.val_size, None, 0))
    space = GenomeSpace(max_blocks=3, max_filters=16, optimizers=("adam",),
                        latent_sizes=DENSE_LATENT_SIZES if args.space == "dense" else ())
    from moncae.method.architecture import describe_with_bottleneck
    from moncae.model.training import tf_dataset

    print(f"data: {len(data.x_train)} train / {len(data.x_val)} val images of mnist_5k; "
          f"{args.epochs} epochs, batch {args.batch_size}, seed {args.seed}, eps {args.eps}")
    summary = []
    for genome_seed in (int(s) for s in args.genome_seeds.split(",")):
        rng = random.Random(genome_seed)
        genome = random_genome(space, rng)
        while args.space == "dense" and genome.latent_units is None:  # want a dense code
            genome = random_genome(space, rng)
        name = describe_with_bottleneck(genome, data.input_shape)
        print(f"\ngenome seed {genome_seed}: {name}")
        print(f"{'loss':<13} {'epoch':>5} {'val loss':>12} {'val BCE':>8} {'val KL':>12} {'s':>6}")
        summary += train_both(genome, genome_seed, name, data, args, keras, build_vae, compile_vae,
                              make_optimizer, tf_dataset, vae_kl)
    print("\nsummary (last epoch): genome seed | loss | val BCE of the mean decoding | val KL per "
          "latent dimension | genome")
    for row in summary:
        print(" | ".join(row))


def train_both(genome, genome_seed, name, data, args, keras, build_vae, compile_vae, make_optimizer,
               tf_dataset, vae_kl) -> list[tuple[str, ...]]:
    summary = []
    for loss in ("elbo", "reformulated"):
        keras.backend.clear_session()
        keras.utils.set_random_seed(args.seed)
        parts = build_vae(genome, data.input_shape, seed=args.seed)
        compile_vae(parts, make_optimizer(genome), loss, args.eps)
        start = time.perf_counter()
        rows = []

        def epoch_end(epoch, logs, parts=parts, loss=loss, rows=rows, start=start):
            kl = vae_kl(parts.stats, data.x_val, 256)
            rows.append((logs["val_bce"], kl))
            print(f"{loss:<13} {epoch + 1:>5} {logs['val_loss']:>12.4g} {logs['val_bce']:>8.4f} "
                  f"{kl:>12.5g} {time.perf_counter() - start:>6.1f}", flush=True)

        parts.vae.fit(tf_dataset(data.x_train, batch_size=args.batch_size, shuffle_seed=args.seed,
                                 autoencoder=True),
                      validation_data=tf_dataset(data.x_val, batch_size=256, autoencoder=True),
                      epochs=args.epochs, verbose=0,
                      callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=epoch_end)])
        bce, kl = rows[-1]
        summary.append((str(genome_seed), loss, f"{bce:.4f}", f"{kl:.5g}", name))
    return summary


if __name__ == "__main__":
    run(main)
