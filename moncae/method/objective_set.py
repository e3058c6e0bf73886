"""Which objectives a search minimises, their reference point, and each network's point.

The paper's two objectives are the reconstruction loss and the level of compression (LOC). More
can be added (`objectives = ["rec_loss", "loc", "params", "flops", "latency"]`, the first two
always first): each is a number a record of a training already holds, on a scale where the
hypervolume makes sense (orders of magnitude are compared as LOC compares latent sizes):

| name | value minimised | default reference |
|---|---|---|
| `rec_loss` | validation reconstruction loss | 4 (paper) |
| `loc` | log10(bottleneck values) | 12 (paper) |
| `params` | log10(parameters of the autoencoder) | 8 (100 M parameters) |
| `flops` | log10(FLOPs of one image's forward pass, `forward_flops`) | 12 (10^12 FLOPs) |
| `latency` | median milliseconds per image at batch 1 on the training machine | 1000 ms |

A failed training (or a genome stopped at a lower fidelity rung) sits at the reference point in
every objective, so it adds no hypervolume. Pure Python: the records are read by attribute.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from moncae.errors import MoncaeError
from moncae.method.objectives import REFERENCE_POINT

__all__ = ["DEFAULT_OBJECTIVES", "OBJECTIVES", "Objective", "ObjectiveSet", "parse_objectives"]


@dataclass(frozen=True)
class Objective:
    """One minimised objective: its name (settings, `--objectives`), the column that holds its
    value in `population.csv` / `pareto_front.csv`, its default reference value and a label."""

    name: str
    column: str
    default_ref: float
    label: str

    def value(self, record: Any) -> float:
        """This objective's value for a training record (`EvalRecord`-like, read by attribute)."""
        if self.name == "rec_loss":
            return float(record.rec_loss)
        if self.name == "loc":
            return float(record.loc)
        if self.name == "params":
            return _log10(record.params)
        if self.name == "flops":
            return _log10(record.flops)
        return float(record.latency_ms)


def _log10(count: Any) -> float:
    value = float(count)
    return math.log10(value) if value >= 1 else float("nan")


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("rec_loss", "rec_loss", REFERENCE_POINT[0], "reconstruction loss"),
    Objective("loc", "loc", REFERENCE_POINT[1], "LOC (log10 latent values)"),
    Objective("params", "log10_params", 8.0, "log10 parameters"),
    Objective("flops", "log10_flops", 12.0, "log10 FLOPs per image"),
    Objective("latency", "latency_ms", 1000.0, "latency (ms per image, batch 1)"),
)}
DEFAULT_OBJECTIVES: tuple[str, ...] = ("rec_loss", "loc")


def parse_objectives(value: Any) -> tuple[str, ...]:
    """`objectives` as given (a comma-separated string from a flag, or a list from TOML/JSON):
    `rec_loss`, `loc`, then any of the others, each once. A one-line error otherwise."""
    if isinstance(value, str):
        names = tuple(part.strip().lower() for part in value.split(",") if part.strip())
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        names = tuple(v.strip().lower() for v in value)
    else:
        raise MoncaeError(f"`objectives` must be a list of names like rec_loss,loc,params. "
                          f"Received: objectives={value!r}")
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown:
        raise MoncaeError(f"`objectives` has unknown name(s) {', '.join(unknown)}; known: "
                          f"{', '.join(OBJECTIVES)}. Received: objectives={','.join(names)}")
    if names[:2] != DEFAULT_OBJECTIVES or len(set(names)) != len(names):
        raise MoncaeError(f"`objectives` must start with rec_loss,loc and name each objective once "
                          f"(e.g. rec_loss,loc,params). Received: objectives={','.join(names)}")
    return names


@dataclass(frozen=True)
class ObjectiveSet:
    """The objectives of a run and its reference point (one value per objective)."""

    names: tuple[str, ...] = DEFAULT_OBJECTIVES
    ref: tuple[float, ...] = REFERENCE_POINT

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", parse_objectives(self.names))
        object.__setattr__(self, "ref", tuple(float(v) for v in self.ref))
        if len(self.ref) != len(self.names):
            raise MoncaeError(f"the reference point needs one value per objective "
                              f"({','.join(self.names)}). Received: {len(self.ref)} value(s) "
                              f"{list(self.ref)}")

    @classmethod
    def default_ref(cls, names: Sequence[str]) -> tuple[float, ...]:
        """Each objective's default reference value (the paper's (4, 12) for the first two)."""
        return tuple(OBJECTIVES[n].default_ref for n in parse_objectives(tuple(names)))

    @property
    def dims(self) -> int:
        return len(self.names)

    @property
    def columns(self) -> list[str]:
        """The CSV columns of the objective values, in order."""
        return [OBJECTIVES[n].column for n in self.names]

    @property
    def extra_columns(self) -> list[str]:
        """The columns beyond (rec_loss, loc): empty for the paper's two objectives."""
        return self.columns[2:]

    def point(self, record: Any) -> tuple[float, ...]:
        """A record's objective vector; the reference point when it did not train ok."""
        if not record.ok:
            return self.ref
        return tuple(OBJECTIVES[n].value(record) for n in self.names)

    def points(self, records: Sequence[Any]) -> np.ndarray:
        """An (n, dims) array of the records' objective vectors."""
        return np.array([self.point(r) for r in records], dtype=float).reshape(-1, self.dims)

    def values(self, record: Any) -> dict[str, float]:
        """The record's objective values by column name (for CSV rows)."""
        return dict(zip(self.columns, self.point(record)))
