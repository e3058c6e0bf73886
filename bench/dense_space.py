"""Does a dense bottleneck gene pay? Fixed architectures of both search spaces against PCA.

On mnist_5k (3,000 train / 1,000 val / 1,000 test images, no download), trains a few fixed
genomes through moncae's own decode (`build_autoencoder`) and training code (`fit_autoencoder`:
seeded tf.data, early stopping on the validation split, best weights restored): paper-space conv
bottlenecks (2x2x8 and 4x4x4) and `dense`-space bottlenecks of 16, 32 and 64 units. Prints, per
model, the test BCE per pixel beside PCA's test BCE with as many components (fitted on the same
3,000 training images, `moncae.report.pca.pca_baseline`), and the seconds it took.

`--sampling` changes how every model halves and doubles its maps (the issue's question whether
strided or transposed convolutions belong in the space, measured before adding them): `pool`
(moncae's default: Conv2D, then MaxPool 2x2; the decoder's Conv2D, then UpSampling2D), `strided`
(the encoder's pooled blocks become one Conv2D with strides 2, no MaxPool: the setting
`downsample = "strided"`, so the genomes are built in such a space), `transpose` (the decoder's
upsampled blocks become one Conv2DTranspose with strides 2, swapped into `moncae.model.decode`
for this process only: not a setting; the layer names and seeds stay, and the decoder crops as
before, so output shapes are the input's) or `both`.

Usage: python bench/dense_space.py [--epochs 20] [--patience 3] [--latent-activation linear]
       [--sampling pool|strided|transpose|both] [--only NAME ...]
       [--dataset fashion_mnist --train-size 54000 --val-size 6000 --test-size 10000]
       (a few minutes on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

from _cli import non_negative_int, positive_int, run

from moncae.data import DataSpec, cached_dataset
from moncae.method.architecture import bottleneck_shape, describe_with_bottleneck
from moncae.method.genome import DENSE_LATENT_SIZES, Genome, GenomeSpace
from moncae.report.pca import pca_baseline

SPACE = GenomeSpace(max_blocks=4, max_filters=32, latent_sizes=DENSE_LATENT_SIZES)
FILTERS = {4: 0, 8: 1, 16: 2, 32: 3}  # filters -> gene (min_filters 4, powers of two)
ADAM, LR_1E_3 = SPACE.optimizers.index("adam"), SPACE.learning_rates.index(1e-3)


def genome(filters: list[int], latent: int | None) -> Genome:
    """Blocks of k3 relu convs, each pooled; latent None = the conv map is the bottleneck."""
    blocks = [[1, FILTERS[f], 0, 0, 0, 0, 1] for f in filters]
    blocks += [[0] * 7] * (SPACE.max_blocks - len(filters))
    latent_gene = 0 if latent is None else SPACE.latent_sizes.index(latent) + 1
    return Genome(tuple([g for b in blocks for g in b] + [latent_gene, ADAM, LR_1E_3]), SPACE)


MODELS = {
    "paper-2x2x8": genome([32, 32, 16, 8], None),
    "paper-4x4x4": genome([32, 32, 4], None),
    "dense16": genome([32, 32], 16),
    "dense32": genome([32, 32], 32),
    "dense64": genome([32, 32], 64),
    "dense16-c16": genome([16, 16], 16),
    "dense32-c16": genome([16, 16], 32),
    "dense64-c16": genome([16, 16], 64),
}


def use_transpose(decode) -> None:
    """Swap `decode`'s decoder block for one whose upsampling is a stride-2 Conv2DTranspose."""
    from keras import layers

    pool_decoder = decode._decoder_block

    def transpose_decoder(x, block, i, target, seed=None):
        if not block.pool:
            return pool_decoder(x, block, i, target, seed)
        x = layers.Conv2DTranspose(block.filters, block.kernel_size, strides=2, padding="same",
                                   activation=block.activation, name=f"dec{i}_conv",
                                   **decode._seeds(seed, 1000 + i))(x)
        (height, width) = target
        extra_h, extra_w = x.shape[1] - height, x.shape[2] - width
        if extra_h or extra_w:
            x = layers.Cropping2D(((0, extra_h), (0, extra_w)), name=f"dec{i}_crop")(x)
        return x

    decode._decoder_block = transpose_decoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=positive_int, default=20)
    parser.add_argument("--patience", type=non_negative_int, default=3)
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--dataset", default="mnist_5k")
    parser.add_argument("--train-size", type=positive_int, default=3000)
    parser.add_argument("--val-size", type=positive_int, default=1000)
    parser.add_argument("--test-size", type=positive_int, default=1000)
    parser.add_argument("--latent-activation", default=None,
                        help="override moncae.model.decode.LATENT_ACTIVATION (default: linear)")
    parser.add_argument("--sampling", choices=["pool", "strided", "transpose", "both"], default="pool",
                        help="how maps halve and double (default pool: moncae's)")
    parser.add_argument("--only", nargs="*", choices=sorted(MODELS), default=None)
    args = parser.parse_args()

    from moncae.tfquiet import import_tensorflow_quietly

    import_tensorflow_quietly()  # before keras imports TensorFlow
    import keras

    from moncae.model import decode
    from moncae.model.decode import build_autoencoder
    from moncae.model.training import evaluate_loss, fit_autoencoder, make_loss, make_optimizer

    if args.latent_activation:
        decode.LATENT_ACTIVATION = args.latent_activation
    if args.sampling in ("transpose", "both"):
        use_transpose(decode)
    strided = dataclasses.replace(SPACE, downsample="strided")
    models = {name: Genome(g.genes, strided) if args.sampling in ("strided", "both") else g
              for name, g in MODELS.items()}
    data = cached_dataset(DataSpec(args.dataset, train_size=args.train_size, val_size=args.val_size,
                                   test_size=args.test_size))
    shape = data.input_shape
    names = args.only or list(MODELS)
    sizes = [math.prod(bottleneck_shape(models[n], shape)) for n in names]
    pca = pca_baseline(data.x_train, data.x_test, sizes, "bce").set_index("k")["rec_loss"]
    print(f"{args.dataset}: {len(data.x_train)} train / {len(data.x_val)} val / {len(data.x_test)} test, "
          f"batch {args.batch_size}, Adam 1e-3, BCE, <= {args.epochs} epochs (patience "
          f"{args.patience}), dense code activation {decode.LATENT_ACTIVATION}, sampling {args.sampling}")
    print(f"{'model':<12} {'latent':>6} {'LOC':>5} {'params':>7} {'epochs':>6} {'val BCE':>8} "
          f"{'test BCE':>8} {'PCA':>7} {'-PCA':>7} {'s':>5} {'s/ep':>5}  architecture")
    for name, k in zip(names, sizes, strict=True):
        g = models[name]
        keras.backend.clear_session()
        keras.utils.set_random_seed(args.seed)
        start = time.perf_counter()
        model, _ = build_autoencoder(g, shape, seed=args.seed)
        model.compile(optimizer=make_optimizer(g), loss=make_loss("bce"), jit_compile=False)
        fit = fit_autoencoder(model, data.x_train, data.x_val, epochs=args.epochs,
                              batch_size=args.batch_size, patience=args.patience, seed=args.seed)
        val, epochs = fit.best, fit.epochs
        test = evaluate_loss(model, data.x_test, args.batch_size)
        seconds = time.perf_counter() - start
        print(f"{name:<12} {k:>6} {math.log10(k):>5.3f} {model.count_params():>7} {epochs:>6} "
              f"{val:>8.4f} {test:>8.4f} {pca[k]:>7.4f} {test - pca[k]:>+7.4f} {seconds:>5.1f} "
              f"{seconds / epochs:>5.1f}  "
              f"{describe_with_bottleneck(g, shape)}", flush=True)


if __name__ == "__main__":
    run(main)
