"""How well does each candidate rung 0 rank genomes for the top rung? (issue 13's main lever)

Successive halving stops a genome after its rung 0 unless that cheap training says it would
enter or extend the front. With the `cpu` space, rung 0 = 1 epoch on 3,000 images ranked only
weakly (Spearman 0.38-0.65 against the 3-epoch, 20,000-image training, README). This bench
draws N distinct random genomes of a preset's space and trains each, from the same seeded
initial weights, once per candidate rung 0 (`--rungs`, [epochs, images] pairs) and once at the
full budget (`--epochs` on all `train_size` images, from scratch: the plain protocol's
training). It prints, per candidate rung:

- the Spearman and Kendall rank correlations between its validation loss and the full loss
  (with a 95% bootstrap interval, pairs resampled);
- what promotion by that rung keeps: the full-fidelity hypervolume of the `ceil(q x N)` genomes
  `moncae.method.fidelity.promoted` would pick from the rung's points (q = `--promote`), against
  the hypervolume of all N and of the best possible pick of that many (found greedily);
- its cost: mean seconds per training (build, trace and fit, as a search worker spends them),
  against the full training's.

Usage: python bench/rung_rank.py [--dataset fashion_mnist] [--preset cpu] [--genomes 20]
       [--epochs 3] [--rungs 1x3000,1x6000,1x10000,2x3000] [--promote 0.25] [--seed 0]
       (about 10-12 minutes with the defaults on a fast day of this 2-core machine, when a full
       training took ~10 s; several times that on a slower one)
"""

from __future__ import annotations

import argparse
import math
import random
import time

import numpy as np
from _cli import non_negative_int, positive_int, run
from proxy import BOOTSTRAP, bootstrap  # bench/proxy.py: the same bootstrap interval
from scipy.stats import kendalltau, spearmanr

from moncae.config import resolve_config
from moncae.data import cached_dataset
from moncae.method.architecture import bottleneck_shape, describe_with_bottleneck, loc_of_shape
from moncae.method.fidelity import promoted
from moncae.method.genome import random_genome
from moncae.method.objectives import hypervolume


def front_hv(points: list[tuple[float, float]], ref: tuple[float, ...]) -> float:
    return float(hypervolume(np.array(points, dtype=float).reshape(-1, 2), ref)) if points else 0.0


def best_pick_hv(points: list[tuple[float, float]], size: int, ref: tuple[float, ...]) -> float:
    """The hypervolume of a greedy best subset of `size` points (a lower bound on the optimum)."""
    chosen: list[int] = []
    for _ in range(size):
        rest = [i for i in range(len(points)) if i not in chosen]
        chosen.append(max(rest, key=lambda i: front_hv([points[j] for j in chosen + [i]], ref)))
    return front_hv([points[j] for j in chosen], ref)


def parse_rungs(text: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in part.split("x")) for part in text.split(",")]


def train(genome, shape, data, *, epochs, images, batch_size, patience, seed, loss) -> tuple[float, float]:
    """One training as a search worker runs it (seeded build, compile, fit): (val loss, seconds)."""
    import keras

    from moncae.model.decode import build_autoencoder
    from moncae.model.training import end_session, fit_autoencoder, make_loss, make_optimizer

    start = time.perf_counter()
    try:
        keras.utils.set_random_seed(seed)
        model, _ = build_autoencoder(genome, shape, seed=seed)
        model.compile(optimizer=make_optimizer(genome), loss=make_loss(loss), jit_compile=False)
        value = fit_autoencoder(model, data.x_train[:images], data.x_val, epochs=epochs,
                                batch_size=batch_size, patience=patience, seed=seed).best
    finally:
        end_session()
    return float(value), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--genomes", type=positive_int, default=20)
    parser.add_argument("--epochs", type=positive_int, default=3, help="the full budget (default 3)")
    parser.add_argument("--rungs", default="1x3000,1x6000,1x10000,2x3000",
                        help="candidate rung 0s, EPOCHSxIMAGES, comma-separated")
    parser.add_argument("--promote", type=float, default=0.25)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    args = parser.parse_args()

    from moncae.model.training import quiet_tensorflow

    quiet_tensorflow()
    config = resolve_config(preset=args.preset, dataset=args.dataset, seed=args.seed, out="unused")
    data = cached_dataset(config.data_spec())
    shape = data.input_shape
    if len(config.objectives) != 2:
        raise SystemExit(f"rung_rank.py scores (loss, LOC) points only; the preset has objectives "
                         f"{','.join(config.objectives)}")
    ref = tuple(config.ref_point)
    rungs = parse_rungs(args.rungs)
    rng = random.Random(args.seed)
    genomes, keys = [], set()
    while len(genomes) < args.genomes:
        g = random_genome(config.genome_space(), rng)
        if g.key_for(shape) not in keys:
            keys.add(g.key_for(shape))
            genomes.append(g)

    print(f"{args.dataset}, {args.preset} space: {len(data.x_train)} train / {len(data.x_val)} val "
          f"images, batch {config.batch_size}; full: {args.epochs} epochs on all; candidate rung 0s: "
          + ", ".join(f"{e} epoch(s) on {n}" for e, n in rungs), flush=True)
    full, low, locs, full_s, low_s = [], [], [], [], []
    common = dict(batch_size=config.batch_size, patience=config.patience, loss=config.loss)
    for n, genome in enumerate(genomes):
        seed = args.seed * 1000 + n
        row, row_s = [], []
        for epochs, images in rungs:
            value, seconds = train(genome, shape, data, epochs=epochs, images=images, seed=seed, **common)
            row.append(value)
            row_s.append(seconds)
        value, seconds = train(genome, shape, data, epochs=args.epochs, images=None, seed=seed, **common)
        full.append(value)
        full_s.append(seconds)
        low.append(row)
        low_s.append(row_s)
        locs.append(loc_of_shape(bottleneck_shape(genome, shape)))
        print(f"{n:3d}  full {value:.4f} ({seconds:5.1f}s)  "
              + "  ".join(f"{e}x{i} {v:.4f} ({s:4.1f}s)" for (e, i), v, s in zip(rungs, row, row_s))
              + f"  LOC {locs[-1]:.3f}  {describe_with_bottleneck(genome, shape)}", flush=True)

    full_a, low_a = np.array(full), np.array(low)
    ok = np.isfinite(full_a) & np.isfinite(low_a).all(axis=1)
    brng = np.random.default_rng(args.seed)
    idx = [i for i in range(len(genomes)) if ok[i]]
    size = max(1, math.ceil(args.promote * len(idx)))
    full_points = [(full[i], locs[i]) for i in idx]
    all_hv = front_hv(full_points, ref)
    best_hv = best_pick_hv(full_points, size, ref)
    print(f"\n{len(idx)} of {len(genomes)} genomes with finite losses at every fidelity; "
          f"95% bootstrap intervals ({BOOTSTRAP} resamples of the pairs)")
    print(f"full-fidelity HV (ref {ref}): all {len(idx)}: {all_hv:.4f}; best pick of {size}: {best_hv:.4f}; "
          f"mean full training {np.mean(full_s):.1f}s")
    print("| rung 0 | Spearman (95% CI) | Kendall (95% CI) | HV of its pick of "
          f"{size} (`promoted`) | mean s per training | cost / full |")
    print("|---|---|---|---|---|---|")
    for r, (epochs, images) in enumerate(rungs):
        x, y = low_a[ok, r], full_a[ok]
        sp = bootstrap(x, y, spearmanr, brng)
        kt = bootstrap(x, y, kendalltau, brng)
        points = {str(i): (low[i][r], locs[i]) for i in idx}
        pick = promoted(list(points), points, ref, args.promote)
        pick_hv = front_hv([(full[int(k)], locs[int(k)]) for k in pick], ref)
        seconds = float(np.mean([s[r] for s in low_s]))
        print(f"| {epochs} epoch(s) on {images} | {sp[0]:+.2f} [{sp[1]:+.2f}, {sp[2]:+.2f}] | "
              f"{kt[0]:+.2f} [{kt[1]:+.2f}, {kt[2]:+.2f}] | {pick_hv:.4f} | {seconds:.1f} | "
              f"{seconds / np.mean(full_s):.2f} |")


if __name__ == "__main__":
    run(main)
