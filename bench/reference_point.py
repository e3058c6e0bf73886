"""How the reference point steers the search: the same search (surrogate evaluator, so it runs
in seconds and shows the mechanism, not a trained result) with the paper's reference point and
with a tight one, every trained network drawn, and the share of trainings inside the tight box.

    python bench/reference_point.py [--out docs/reference_point.png] [--tight 0.2,2.0]

Exclusive hypervolume contributions are measured inside the box the reference point bounds: a
network outside it in any objective contributes 0 and is selected only by chance, so a tight
point spends the trainings on that corner of the front.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from _cli import run
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from moncae.config import parse_ref, resolve_config
from moncae.evaluation.surrogate import surrogate_task
from moncae.search import run_search

SEEDS = (1, 2, 3)


def trained_points(out: Path, ref, seed: int) -> pd.DataFrame:
    config = resolve_config(dataset="mnist_5k", seed=seed, out=str(out), generations=20, population=20,
                            space="dense", ref_point=list(ref), workers=1)
    run_search(config, task_fn=surrogate_task)
    ev = pd.read_csv(config.run_dir / "evaluations.csv")
    return ev[ev["status"] == "ok"].assign(seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/reference_point.png")
    parser.add_argument("--tight", default="0.2,2.0", help="the tight reference point LOSS,LOC")
    args = parser.parse_args()
    os.environ.setdefault("MONCAE_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    tight = parse_ref(args.tight)
    settings = {"paper (4, 12)": (4.0, 12.0), f"tight {tight}": tight}
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    with tempfile.TemporaryDirectory() as tmp:
        for ax, (name, ref) in zip(axes, settings.items()):
            points = pd.concat([trained_points(Path(tmp) / name.split()[0], ref, s) for s in SEEDS])
            inside = np.mean((points["rec_loss"] < tight[0]) & (points["loc"] < tight[1]))
            print(f"{name}: {len(points)} trainings over {len(SEEDS)} seeds, {inside:.0%} inside the "
                  f"tight box (loss < {tight[0]}, LOC < {tight[1]}), best loss at LOC < {tight[1]}: "
                  f"{points.loc[points['loc'] < tight[1], 'rec_loss'].min():.4f}")
            ax.scatter(points["loc"], points["rec_loss"], s=9, alpha=0.45, c=points["generation"],
                       cmap="viridis")
            ax.add_patch(Rectangle((0, 0), tight[1], tight[0], fill=False, ls="--", color="tab:red", lw=1.4))
            ax.set_title(f"reference point {name}: {inside:.0%} of trainings in the red box", fontsize=9)
            ax.set_xlabel("LOC = log10(latent values)")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("validation loss (surrogate)")
        axes[0].set_xlim(0, None)
        axes[0].set_ylim(0, None)
    fig.suptitle("Every network trained by 3 seeds x 20 generations x 20 (colour: generation); "
                 "red box: the tight reference point", fontsize=10)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(f"figure: {args.out}")


if __name__ == "__main__":
    run(main)
