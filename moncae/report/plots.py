"""Drawing for `moncae report`: each `plot_*` takes collected data, draws and returns its Axes.

No pyplot: figures are plain `matplotlib.figure.Figure` objects (Agg canvas), so nothing here
needs a display or touches global state.
"""

from __future__ import annotations

import os
import textwrap
import warnings
from itertools import combinations, cycle

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from moncae.method.objective_set import OBJECTIVES
from moncae.store.atomic import atomic_open

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LOSS_LABELS = {"bce": "binary cross-entropy", "mse": "mean squared error"}
LOC_LABEL = "Level of compression, LOC = log10(latent values)"
MAX_SEEDS_NAMED = 10  # more seeds: one legend entry for them all


def _loss_label(loss: str) -> str:
    return f"Reconstruction loss ({LOSS_LABELS.get(loss, loss)} per pixel)"


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 110) -> None:
    """Write `fig` as a PNG atomically (temp file beside `path`, then rename)."""
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=dpi)


def plot_pareto(info: dict, *, dataset: str, loss: str, ax=None):
    """Final models of every seed, their combined front (step line) and the PCA baseline."""
    if ax is None:
        ax = Figure(figsize=(8, 5.2), layout="constrained").subplots()
    points, front, pca = info["points"], info["front"], info["pca"]
    seeds = sorted(points["seed"].unique())
    colors = cycle(f"C{i}" for i in range(10))
    markers = cycle(MARKERS)
    many = len(seeds) > MAX_SEEDS_NAMED  # a legend entry per seed would run off the figure
    for i, seed in enumerate(seeds):
        mine = points[points["seed"] == seed]
        tuned = " (fine-tuned)" if set((points if many else mine)["source"]) == {"finetune"} else ""
        label = f"seed {seed}{tuned}" if not many else (f"final models of {len(seeds)} seeds{tuned}" if i == 0
                                                       else None)
        ax.scatter(mine["loc"], mine["rec_loss"], s=36, marker=next(markers), color=next(colors),
                   alpha=0.8, edgecolors="none", label=label, zorder=3)
    if len(front):  # the attained region's edge, carried on to the right of the last point
        right = max([*points["loc"], *pca["loc"]])
        xs = [*front["loc"], max(right, front["loc"].iloc[-1])]
        ys = [*front["rec_loss"], front["rec_loss"].iloc[-1]]
        ax.step(xs, ys, where="post", color="black", lw=1.6, zorder=2)
        ax.scatter(front["loc"], front["rec_loss"], s=90, facecolors="none", edgecolors="black",
                   lw=1.2, zorder=4, label="non-dominated front of all seeds")
    if len(pca):
        ax.plot(pca["loc"], pca["rec_loss"], ls="--", marker="x", ms=6, color="0.35", lw=1.3,
                label="PCA baseline (k components)", zorder=2)
        last = -np.inf
        for k, x, y in zip(pca["k"], pca["loc"], pca["rec_loss"], strict=True):
            if x - last < 0.15:  # keep the k labels apart
                continue
            last = x
            ax.annotate(f"{int(k)}", (x, y), textcoords="offset points", xytext=(3, 4),
                        fontsize=7, color="0.35")
    dense = info.get("baselines")  # dense AE / VAE baseline fronts (`--baselines`)
    for (kind, rows), style in zip(() if dense is None or not len(dense) else
                                   dense.sort_values(["kind", "k"]).groupby("kind", sort=True),
                                   cycle([("-.", "s", "tab:brown"), (":", "^", "tab:olive")])):
        ls, marker, color = style
        label = {"dense_ae": "dense AE", "dense_vae": "dense VAE (mean decoding)"}.get(kind, kind)
        ax.plot(rows["loc"], rows["rec_loss"], ls=ls, marker=marker, ms=5, color=color, lw=1.3,
                label=f"{label} baseline (k latent values)", zorder=2)
    ax.axvline(info["threshold"], ls=":", color="tab:red", lw=1.3,
               label=f"LOC threshold {info['threshold']:g} (Table 1: left of it)")
    if not len(points):
        ax.text(0.5, 0.5, "no successful final model", transform=ax.transAxes, ha="center")
    n = len(seeds)
    # what the figure holds: no "vs." where no baseline was drawn (`--baselines none`, no data)
    against = " vs. baselines" if dense is not None and len(dense) else " vs. a PCA baseline" if len(pca) else ""
    ax.set_title(f"{dataset}: final models of {n} seed{'s' if n != 1 else ''}{against}")  # a population or a front
    ax.set_xlabel(LOC_LABEL)
    ax.set_ylabel(_loss_label(loss))
    ax.grid(alpha=0.3)
    _legend(ax)
    return ax


def _legend(ax) -> None:
    """The legend beside the axes, where anything is labelled (a run with no generation recorded
    draws nothing: no legend, rather than Matplotlib's warning)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def plot_hv_history(info: dict, *, dataset: str, ax=None):
    """Hypervolume per generation: thin line per seed, mean over seeds and min-max band (several
    seeds), dashed the all-time front's (its mean over seeds)."""
    if ax is None:
        ax = Figure(figsize=(8, 4.8), layout="constrained").subplots()
    per_run, summary = info["runs"], info["summary"]
    seeds = sorted(per_run["seed"].unique())
    for i, seed in enumerate(seeds):
        mine = per_run[per_run["seed"] == seed].sort_values("generation")
        ax.plot(mine["generation"] + 1, mine["hypervolume"], lw=1, alpha=0.6, color=f"C{i % 10}",
                marker=".", label=f"seed {seed}" if len(seeds) <= MAX_SEEDS_NAMED else None)
    if len(seeds) > 1 and len(summary):
        gen = summary["generation"] + 1
        ax.fill_between(gen, summary["min"], summary["max"], color="0.5", alpha=0.15,
                        label="range over seeds")
        ax.plot(gen, summary["mean"], color="black", lw=2.2, label="mean over seeds")
    front = info.get("front")
    if front is not None and front["mean"].notna().any():
        ax.plot(front["generation"] + 1, front["mean"], color="black", lw=1.8, ls="--",
                label="all-time front (mean over seeds)" if len(seeds) > 1 else "all-time front")
    ref = info["ref_point"]
    ax.set_title(f"{dataset}: hypervolume of each generation's population and of the all-time front "
                 f"({len(seeds)} seed{'s' if len(seeds) != 1 else ''})", fontsize=10)
    ax.set_xlabel("Generation (1 = the initial population)")
    names = " × ".join(info.get("objectives", ("loss", "LOC")))
    ax.set_ylabel(f"Hypervolume ({names}), ref. point ({', '.join(f'{v:g}' for v in ref)})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    _legend(ax)
    return ax


def plot_projections(info: dict, *, dataset: str) -> Figure:
    """A run with more than two objectives: every pair of objectives, final models per seed,
    the models on the front over all objectives circled (a point can look dominated in one
    projection and still be on the front through another objective)."""
    objectives = info["objectives"]
    pairs = list(combinations(range(objectives.dims), 2))
    cols = min(3, len(pairs))
    rows = -(-len(pairs) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.6 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    points, on_front = info["points"], info["on_front"]
    seeds = sorted(points["seed"].unique())
    labels = {c: OBJECTIVES[n].label for c, n in zip(objectives.columns, objectives.names)}
    for ax, (i, j) in zip(axes, pairs):
        x, y = objectives.columns[j], objectives.columns[i]
        for k, seed in enumerate(seeds):
            mine = points[points["seed"] == seed]
            ax.scatter(mine[x], mine[y], s=30, marker=MARKERS[k % len(MARKERS)], color=f"C{k % 10}",
                       alpha=0.8, edgecolors="none", label=f"seed {seed}")
        if len(points):
            front = points[on_front]
            ax.scatter(front[x], front[y], s=80, facecolors="none", edgecolors="black", lw=1.0,
                       label="on the front (all objectives)")
        ax.set_xlabel(labels[x], fontsize=8)
        ax.set_ylabel(labels[y], fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[len(pairs):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{dataset}: final models in each pair of the objectives "
                 f"({', '.join(objectives.names)})", fontsize=10)
    return fig


def _image_grid(rows: int, cols: int, blocks: int) -> tuple[Figure, np.ndarray, float]:
    """A figure of `rows` x `cols` image cells (in `blocks` bands of titled rows), every axis
    off until an image is shown in it; its width in inches."""
    width = max(0.95 * cols + 0.3, 4.0)
    fig = Figure(figsize=(width, 0.95 * rows + 0.75 * blocks + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    for ax in axes.flat:
        ax.set_axis_off()
    return fig, axes, width


def _show_image(ax, img: np.ndarray) -> None:
    """One HxWxC image in [0, 1] (grey when C = 1), no ticks."""
    ax.set_axis_on()
    if img.shape[-1] == 1:
        ax.imshow(img[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
    else:
        ax.imshow(img)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_reconstructions(info: dict, *, title: str, loss: str, per_row: int = 10) -> np.ndarray:
    """Figure 4 of the paper: test images (left column), then one column per model.

    More than `per_row` models wrap into further blocks of rows, each with the originals again.
    """
    images, models = info["images"], info["models"]
    n_img = len(images)
    cols = min(per_row, max(1, len(models))) + 1
    blocks = [models[i:i + per_row] for i in range(0, len(models), per_row)] or [[]]
    fig, axes, width = _image_grid(n_img * len(blocks), cols, len(blocks))

    for b, block in enumerate(blocks):
        top = b * n_img
        for r in range(n_img):
            _show_image(axes[top + r, 0], images[r])
            for c, m in enumerate(block, start=1):
                _show_image(axes[top + r, c], m["reconstructions"][r])
        axes[top, 0].set_title("original", fontsize=8)
        for c, m in enumerate(block, start=1):
            number = b * per_row + c
            axes[top, c].set_title(f"#{number}  loss {m['rec_loss']:.3f}\nLOC {m['loc']:.2f}  "
                                   f"{m['bottleneck']}", fontsize=6.5)
    sources = {m["source"] for m in models}
    which = ("fine-tuned, test split" if sources == {"finetune"} else
             "after the search, validation split" if sources == {"search"} else "mixed sources")
    text = (f"{title}: test images reconstructed by each final model, most compressed first. "
            f"Above each: rec loss ({LOSS_LABELS.get(loss, loss)}, {which}), LOC, bottleneck.")
    fig.suptitle("\n".join(textwrap.wrap(text, width=int(width * 14))), fontsize=8.5)
    return axes


def plot_samples(info: dict, *, title: str, loss: str, per_row: int = 10) -> np.ndarray:
    """A VAE run's generated images: one column per final model (labelled like the
    reconstructions figure), one row per N(0, I) draw, the same draws in every column."""
    models = info["models"]
    n_img = max((len(m["reconstructions"]) for m in models), default=0)
    cols = min(per_row, max(1, len(models)))
    blocks = [models[i:i + per_row] for i in range(0, len(models), per_row)] or [[]]
    fig, axes, width = _image_grid(max(1, n_img) * len(blocks), cols, len(blocks))
    for b, block in enumerate(blocks):
        top = b * n_img
        for c, m in enumerate(block):
            for r, img in enumerate(m["reconstructions"]):
                _show_image(axes[top + r, c], img)
            axes[top, c].set_title(f"#{b * per_row + c + 1}  loss {m['rec_loss']:.3f}\nLOC "
                                   f"{m['loc']:.2f}  {m['bottleneck']}", fontsize=6.5)
    text = (f"{title}: images decoded from z ~ N(0, I) by each final VAE, most compressed first "
            f"(the same draws in a column's rows for every model of one code shape). Above each: "
            f"rec loss ({LOSS_LABELS.get(loss, loss)} of the mean decoding), LOC, bottleneck.")
    fig.suptitle("\n".join(textwrap.wrap(text, width=int(width * 14))), fontsize=8.5)
    return axes


def plot_strategies(info: dict, *, family: str, ax=None):
    """All-time front hypervolume against cumulative trainings: per strategy, the mean over seeds
    (a step function per run, averaged on a common grid) and its min-max band."""
    if ax is None:
        ax = Figure(figsize=(8, 4.8), layout="constrained").subplots()
    curves = info["curves"]
    top = float(curves["trainings_total"].max()) if len(curves) else 1.0
    grid = np.linspace(0.0, top, 200)
    for i, strategy in enumerate(sorted(curves["strategy"].unique())):
        mine = curves[curves["strategy"] == strategy]
        steps = []
        for _, run in mine.groupby("seed"):
            run = run.sort_values("trainings_total")
            idx = np.searchsorted(run["trainings_total"].to_numpy(), grid, side="right") - 1
            values = np.where(idx >= 0, run["front_hypervolume"].to_numpy()[np.maximum(idx, 0)], np.nan)
            steps.append(values)
        steps = np.array(steps)
        color = f"C{i % 10}"
        with warnings.catch_warnings():  # grid points before a run's first generation are NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            ax.plot(grid, np.nanmean(steps, axis=0), color=color, lw=2,
                    label=f"{strategy} ({len(steps)} seed{'s' if len(steps) != 1 else ''})")
            if len(steps) > 1:
                ax.fill_between(grid, np.nanmin(steps, axis=0), np.nanmax(steps, axis=0), color=color, alpha=0.15)
    ax.axvline(info["budget"], color="0.4", ls=":", lw=1, label="budget compared")
    ax.set_title(f"{family}: all-time front hypervolume by strategy")
    ax.set_xlabel("Trainings (cumulative, cache hits are free)")
    ax.set_ylabel("Hypervolume of the all-time front (validation)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return ax
