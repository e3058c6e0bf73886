"""Does the decoder-only proxy rank architectures like full training? (RL thesis, section 5.2)

Draws N distinct random genomes (default 24, from a quick-preset-sized space: up to 3 blocks, 4-16
filters, adaptive optimizers), and trains each on mnist_5k twice from the same seeded initial
weights: end-to-end (`fit_autoencoder`, `--full-epochs`) and decoder-only with the random encoder
frozen (`moncae.model.proxy.train_decoder_only`, `--proxy-epochs`). Prints per genome both best
validation losses, then the Spearman and Kendall rank correlations between proxy loss and full loss
with a 95% bootstrap interval (pairs resampled), the same for LOC (a ranking that needs no training
at all) against the full loss for comparison, and the cost ratio (proxy fit seconds / full fit seconds).

Usage: python bench/proxy.py [--genomes 24] [--full-epochs 3] [--proxy-epochs 2]
       [--train-size 1000] [--val-size 500] [--seed 0]     (about 2-4 minutes on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import math
import random
import time

import numpy as np
from _cli import non_negative_int, positive_int, run
from scipy.stats import kendalltau, spearmanr

from moncae.data import DataSpec, cached_dataset
from moncae.method.architecture import bottleneck_shape, describe_with_bottleneck, loc_of_shape
from moncae.method.genome import GenomeSpace, random_genome

SPACE = GenomeSpace(max_blocks=3, max_filters=16, optimizers=("adam", "nadam", "rmsprop"))
BOOTSTRAP = 2000


def bootstrap(x: np.ndarray, y: np.ndarray, stat, rng: np.random.Generator) -> tuple[float, float, float]:
    """The statistic on all pairs and its 95% percentile bootstrap interval."""
    value = float(stat(x, y)[0])
    draws = []
    for _ in range(BOOTSTRAP):
        i = rng.integers(0, len(x), len(x))
        if len(set(x[i])) > 1 and len(set(y[i])) > 1:
            draws.append(float(stat(x[i], y[i])[0]))
    low, high = np.percentile(draws, [2.5, 97.5])
    return value, float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genomes", type=positive_int, default=24)
    parser.add_argument("--full-epochs", type=positive_int, default=3)
    parser.add_argument("--proxy-epochs", type=positive_int, default=None, help="default: PROXY_EPOCHS")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--train-size", type=positive_int, default=1000)
    parser.add_argument("--val-size", type=positive_int, default=500)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    args = parser.parse_args()
    if args.genomes < 3:
        parser.error("--genomes must be >= 3 (rank correlations and their bootstrap need several pairs)")

    import keras

    from moncae.model.decode import build_autoencoder
    from moncae.model.proxy import PROXY_EPOCHS, train_decoder_only
    from moncae.model.training import fit_autoencoder, make_loss, make_optimizer, quiet_tensorflow

    proxy_epochs = PROXY_EPOCHS if args.proxy_epochs is None else args.proxy_epochs
    quiet_tensorflow()
    data = cached_dataset(DataSpec("mnist_5k", train_size=args.train_size, val_size=args.val_size,
                                   test_size=10))
    shape = data.input_shape
    rng = random.Random(args.seed)
    genomes, keys = [], set()
    while len(genomes) < args.genomes:
        g = random_genome(SPACE, rng)
        if g.key_for(shape) not in keys:
            keys.add(g.key_for(shape))
            genomes.append(g)

    print(f"mnist_5k: {len(data.x_train)} train / {len(data.x_val)} val images; full: {args.full_epochs} "
          f"epochs end-to-end; proxy: {proxy_epochs} epochs, decoder only, random frozen encoder")
    rows = []
    for n, genome in enumerate(genomes):
        seed = args.seed * 1000 + n
        keras.utils.set_random_seed(seed)
        model, _ = build_autoencoder(genome, shape, seed=seed)
        model.compile(optimizer=make_optimizer(genome), loss=make_loss("bce"), jit_compile=False)
        start = time.perf_counter()
        fit = fit_autoencoder(model, data.x_train, data.x_val, epochs=args.full_epochs,
                              batch_size=args.batch_size, patience=1, seed=seed)
        full, full_epochs = fit.best, fit.epochs
        full_s = time.perf_counter() - start
        keras.backend.clear_session()
        proxy = train_decoder_only(genome, data.x_train, data.x_val, input_shape=shape, epochs=proxy_epochs,
                                   batch_size=args.batch_size, seed=seed)
        keras.backend.clear_session()
        loc = loc_of_shape(bottleneck_shape(genome, shape))
        rows.append((full, proxy.loss, loc, full_s, proxy.seconds, full_epochs, proxy.epochs))
        print(f"{n:3d}  full {full:.4f} ({full_s:5.1f}s)  proxy {proxy.loss:.4f} ({proxy.seconds:5.1f}s)  "
              f"LOC {loc:.3f}  {describe_with_bottleneck(genome, shape)}", flush=True)

    arr = np.array(rows, dtype=float)
    ok = np.isfinite(arr[:, 0]) & np.isfinite(arr[:, 1])
    full, proxy, loc = arr[ok, 0], arr[ok, 1], arr[ok, 2]
    brng = np.random.default_rng(args.seed)
    print(f"\n{ok.sum()} of {len(arr)} genomes with finite losses both ways; 95% bootstrap intervals "
          f"({BOOTSTRAP} resamples of the pairs)")
    for label, x in (("proxy loss vs full loss", proxy), ("LOC (no training) vs full loss", loc)):
        for name, stat in (("Spearman", spearmanr), ("Kendall", kendalltau)):
            value, low, high = bootstrap(x, full, stat, brng)
            print(f"  {label:32s} {name:8s} {value:+.3f}  [{low:+.3f}, {high:+.3f}]")
    top = max(1, math.ceil(len(full) / 4))
    best_full = set(np.argsort(full)[:top])
    best_proxy = set(np.argsort(proxy)[:top])
    print(f"  top-{top} overlap (proxy's best quarter among full training's best quarter): "
          f"{len(best_full & best_proxy)} of {top}")
    proxy_s, full_s = arr[:, 4].sum(), arr[:, 3].sum()
    per_epoch = (proxy_s / arr[:, 6].sum()) / (full_s / arr[:, 5].sum())
    print(f"cost: proxy fit {proxy_s:.1f}s, full fit {full_s:.1f}s; ratio {proxy_s / full_s:.2f} "
          f"(per epoch run: {per_epoch:.2f}; epochs run: proxy {arr[:, 6].sum():.0f}, full {arr[:, 5].sum():.0f})")

if __name__ == "__main__":
    run(main)
