"""Which model to export: by key, by a constraint on one objective, or the front's knee.

Pure (pandas/numpy on `load_front`'s table, no TensorFlow). The rules work on the search's own
objectives, validation loss (`search_rec_loss`) and LOC, the coordinates the front was built on:
fine-tuned test losses exist only for the final population, so they cannot rank the whole front.
Constraints are compared at the precision the table shows (LOC to 3 decimals, loss to 4), so
a value copied from `moncae front` selects the row it came from. Only a model whose saved file
exists can be chosen; when a better front point has none, the choice says so in a note.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from moncae.errors import MoncaeError
from moncae.method.objectives import non_dominated_mask

__all__ = ["Choice", "choose", "find_key", "knee_distances", "model_file"]

LOC_DIGITS, LOSS_DIGITS = 3, 4


@dataclass(frozen=True)
class Choice:
    """The chosen row of the front table, the rule that chose it, and notes for the user."""

    row: dict
    rule: str
    file: str  # the model file to export (fine-tuned preferred unless `searched`)
    weights: str  # 'finetuned' or 'searched'
    notes: tuple[str, ...] = field(default=())


def model_file(row, searched: bool = False) -> tuple[str, str]:
    """(path, 'finetuned' | 'searched') of the row's model to use; ('', '') if none is kept."""
    if not searched and row["finetuned_model"]:
        return row["finetuned_model"], "finetuned"
    if row["searched_model"]:
        return row["searched_model"], "searched"
    return "", ""


def describe(row) -> str:
    """`3888c6ad (LOC 2.292, val loss 0.4435)`."""
    return (f"{row['id'][:8]} (LOC {row['loc']:.{LOC_DIGITS}f}, "
            f"val loss {row['search_rec_loss']:.{LOSS_DIGITS}f})")


def knee_distances(loss, loc) -> np.ndarray:
    """Each point's distance from the line through the front's extremes, objectives normalised,
    on the side of low loss and low LOC (the front bulging towards both); 0 on the line or beyond
    it, where a point is no knee but a poor trade-off (a concave stretch of the front), and 0 for a
    point another point beats on both loss and LOC (a third objective kept it on the front).

    Both objectives are scaled to [0, 1] by their min and max over the points; the extremes are
    the lowest-loss point and the lowest-LOC point. All zeros for fewer than three points or when
    the extremes coincide (no knee to find).
    """
    xy = np.column_stack([np.asarray(loss, dtype=float), np.asarray(loc, dtype=float)])
    if len(xy) < 3:
        return np.zeros(len(xy))
    span = xy.max(axis=0) - xy.min(axis=0)
    xy = (xy - xy.min(axis=0)) / np.where(span > 0, span, 1.0)
    a = xy[np.lexsort((xy[:, 1], xy[:, 0]))[0]]  # lowest loss (then LOC)
    b = xy[np.lexsort((xy[:, 0], xy[:, 1]))[0]]  # lowest LOC (then loss)
    direction = b - a
    length = float(np.hypot(*direction))
    if length == 0.0:
        return np.zeros(len(xy))
    rel = xy - a
    # a -> b runs from (0, high LOC) to (high loss, 0): the origin's side has a negative cross product
    distance = np.maximum(0.0, direction[1] * rel[:, 0] - direction[0] * rel[:, 1]) / length
    return np.where(non_dominated_mask(xy), distance, 0.0)


def find_key(frame: pd.DataFrame, key: str) -> dict:
    """The row of a genome key, or of a unique prefix of its model file name (`id`)."""
    exact = frame[frame["genome_key"] == key]
    if len(exact):
        return exact.iloc[0].to_dict()
    prefix = key.strip().lower().removesuffix(".keras")
    hits = frame[frame["id"].str.startswith(prefix)] if prefix else frame.iloc[:0]
    if len(hits) == 1:
        return hits.iloc[0].to_dict()
    if len(hits) > 1:
        raise MoncaeError(f"key {key!r} is ambiguous: it starts {len(hits)} model names "
                          f"({', '.join(hits['id'].str[:12])}); give more characters")
    raise MoncaeError(f"no model with key {key!r} on this run's front or in its final population; "
                      "`moncae front RUN_DIR --all` lists the keys")


def choose(frame: pd.DataFrame, *, key: str | None = None, max_loc: float | None = None,
           max_loss: float | None = None, knee: bool = False, searched: bool = False) -> Choice:
    """Pick one model of a `load_front(run, all_models=True)` table by exactly one rule.

    - `key`: that genome (any row: the front or the final population);
    - `max_loc`: the front point with the lowest validation loss among those with LOC <= max_loc;
    - `max_loss`: the front point with the smallest LOC among those with loss <= max_loss;
    - `knee`: see `moncae.export.KNEE_HELP` and `knee_distances`.

    The rules other than `key` choose among front points whose model file exists. Raises
    `MoncaeError` with a one-line reason (and the closest model) when nothing qualifies.
    """
    given = [name for name, value in (("--key", key), ("--max-loc", max_loc), ("--max-loss", max_loss),
                                      ("--knee", knee or None)) if value is not None]
    if len(given) != 1:
        raise MoncaeError("choose the model with exactly one of --key, --max-loc, --max-loss, "
                          f"--knee (given: {', '.join(given) or 'none'})")
    if key is not None and not isinstance(key, str):
        raise MoncaeError(f"--key must be a genome key or a prefix of its model file name (text). "
                          f"Received: {key!r}")
    for name, value in (("--max-loc", max_loc), ("--max-loss", max_loss)):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if value is not None and not (number and math.isfinite(value) and value >= 0):
            raise MoncaeError(f"{name} must be a number >= 0 (LOC is log10 of the latent values; losses are "
                              f"not negative). Received: {value!r}")
    files = [model_file(r, searched) for r in frame.to_dict("records")]
    frame = frame.assign(_file=[f for f, _ in files], _weights=[w for _, w in files])
    which = "searched " if searched else ""

    if key is not None:
        row = find_key(frame, key)
        if not row["_file"]:
            if row["in_final"]:
                raise MoncaeError(f"model {describe(row)} has no saved {which}model file: its model file is "
                                  "missing (models/index.csv names none: its training failed, or the "
                                  "file is gone)")
            raise MoncaeError(f"model {describe(row)} has no saved {which}model: it is on the front but "
                              "not in the final population, and only the final population's models "
                              "are kept (models/, finetuned/)")
        return _choice(row, f"--key {key}")

    front = frame[frame["on_front"]]
    kept = front[front["_file"] != ""]
    if kept.empty:
        raise MoncaeError(f"none of the {len(front)} front points has a saved {which}model (only the "
                          "final population's models are kept, in models/ and finetuned/)")
    loc, loss = _shown(front["loc"], LOC_DIGITS), _shown(front["search_rec_loss"], LOSS_DIGITS)

    if max_loc is not None:
        ok = front[loc <= max_loc]
        order = ["search_rec_loss", "loc"]
        rule = f"--max-loc {max_loc:g}: the lowest validation loss with LOC <= {max_loc:g}"
        closest = kept.sort_values(["loc", "search_rec_loss"], kind="stable").iloc[0]
        hint = f"--max-loc {closest['loc']:.{LOC_DIGITS}f}"
        what = f"LOC <= {max_loc:g}"
    elif max_loss is not None:
        ok = front[loss <= max_loss]
        order = ["loc", "search_rec_loss"]
        rule = f"--max-loss {max_loss:g}: the smallest LOC with validation loss <= {max_loss:g}"
        closest = kept.sort_values(["search_rec_loss", "loc"], kind="stable").iloc[0]
        hint = f"--max-loss {closest['search_rec_loss']:.{LOSS_DIGITS}f}"
        what = f"validation loss <= {max_loss:g}"
    else:
        distance = knee_distances(front["search_rec_loss"], front["loc"])
        ok = front.assign(_distance=distance)
        order = ["_distance", "search_rec_loss"]
        ok = ok.sort_values(order, ascending=[False, True], kind="stable")
        if len(front) < 3:
            rule = f"--knee: a front of {len(front)} point(s) has no knee, the lowest loss"
        elif not (distance > 0).any():
            rule = ("--knee: no front point lies on the low side of the line through its extremes (no "
                    "knee), the lowest loss")
        else:
            rule = ("--knee: the point farthest from the line through the front's extremes "
                    "(normalised objectives)")
        return _best_kept(ok, rule)

    ok = ok.sort_values(order, kind="stable")
    if ok.empty:
        raise MoncaeError(f"no model on the front has {what}; the closest kept model is "
                          f"{describe(closest)}: try {hint}")
    if (ok["_file"] == "").all():
        raise MoncaeError(f"no kept model has {what}: {len(ok)} front point(s) do, e.g. "
                          f"{describe(ok.iloc[0])}, but their models were not kept (only the final "
                          f"population's are); the closest kept model is {describe(closest)}: "
                          f"try {hint}")
    return _best_kept(ok, rule)


def _shown(values: pd.Series, digits: int) -> pd.Series:
    """Values as the table prints them (so `--max-loc 1.806` admits LOC 1.80618)."""
    return values.map(lambda v: float(f"{v:.{digits}f}"))


def _best_kept(ordered: pd.DataFrame, rule: str) -> Choice:
    """The first row with a model file; a note when better rows had none."""
    kept = ordered[ordered["_file"] != ""]
    first = ordered.iloc[0]
    notes = []
    if first["_file"] == "":
        notes.append(f"front point {describe(first)} ranks first but its model was not kept "
                     "(not in the final population); exporting the best kept one")
    return _choice(kept.iloc[0].to_dict(), rule, tuple(notes))


def _choice(row: dict, rule: str, notes: tuple[str, ...] = ()) -> Choice:
    file, weights = row.pop("_file"), row.pop("_weights")
    row.pop("_distance", None)
    return Choice(row, rule, file, weights, notes)
