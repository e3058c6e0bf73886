"""The snapshot a search takes after each generation, as plain JSON: enough to continue exactly
where it stopped, and nothing that can run code when it is read.

`checkpoint.json` holds the generation, the next population (genome configs), the GA's
`random.Random` state (a list of ints), the per-generation log and the all-time Pareto front
(genes, key, objectives). Loading checks every field's type; a damaged file is an error, never a
guess. An old `checkpoint.pkl` (a pickle: loading one can execute code) is refused unread.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moncae.errors import RunFolderError
from moncae.store.atomic import write_json

__all__ = ["CHECKPOINT_NAME", "CHECKPOINT_VERSION", "LEGACY_CHECKPOINT_NAME", "Checkpoint",
           "load_checkpoint", "save_checkpoint"]

CHECKPOINT_NAME = "checkpoint.json"
LEGACY_CHECKPOINT_NAME = "checkpoint.pkl"
CHECKPOINT_FORMAT = "moncae-checkpoint"
CHECKPOINT_VERSION = 2


@dataclass
class Checkpoint:
    """State after a finished generation (plain data only)."""

    generation: int
    population: list[dict[str, Any]]  # genome configs of the NEXT generation (or the final one)
    rng_state: tuple  # random.Random.getstate()
    logbook: list[dict[str, Any]] = field(default_factory=list)  # one row per generation
    halloffame: list[dict[str, Any]] = field(default_factory=list)  # {genes, key, objectives}
    finished: bool = False
    strategy: dict[str, Any] = field(default_factory=dict)  # the strategy's own state, plain data
    # When finished: the last generation's input (its population and the strategy's state before
    # it), so that a final model that failed for a passing reason can be trained again in place.
    last_population: list[dict[str, Any]] = field(default_factory=list)
    last_strategy: dict[str, Any] = field(default_factory=dict)
    # When finished: the all-time front before the last generation, so that a longer run can take
    # the last generation again as an ordinary one (None: a checkpoint from before it was kept)
    last_halloffame: list[dict[str, Any]] | None = None
    # Trainings in the journal that the search has not reached yet though they are of this
    # generation or before ([key, rung] each): a lengthened run's promotions of its old last
    # generation, which wait until the longer run promotes those genomes (moncae.search.trainings)
    waiting: list[list] = field(default_factory=list)
    # Trainings the search took in a later generation than the journal has them under ([key, rung,
    # generation] each; a lengthened run's, see `waiting`): what it saw them as, and (those of the
    # last generation) what a longer run holds back again
    restamped: list[list] = field(default_factory=list)


def _rng_to_json(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _rng_from_json(value: Any) -> tuple:
    ok = (isinstance(value, list) and len(value) == 3 and isinstance(value[0], int)
          and isinstance(value[1], list) and all(isinstance(v, int) for v in value[1])
          and (value[2] is None or isinstance(value[2], float)))
    if not ok:
        raise ValueError("rng_state is not a random.Random state")
    return value[0], tuple(value[1]), value[2]


def _nan_to_null(row: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN (e.g. the best loss of a generation where every training failed)."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}


def _null_to_nan(row: dict[str, Any]) -> dict[str, Any]:
    return {k: float("nan") if v is None else v for k, v in row.items()}


def save_checkpoint(path: str | os.PathLike, state: Checkpoint) -> None:
    write_json(path, {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "generation": state.generation,
        "finished": state.finished, "population": state.population,
        "rng_state": _rng_to_json(state.rng_state), "logbook": [_nan_to_null(r) for r in state.logbook],
        "halloffame": state.halloffame, "strategy": state.strategy,
        "last_population": state.last_population, "last_strategy": state.last_strategy,
        **({} if state.last_halloffame is None else {"last_halloffame": state.last_halloffame}),
        **({"waiting": state.waiting} if state.waiting else {}),
        **({"restamped": state.restamped} if state.restamped else {}),
    })


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(what)


def _parse(data: Any) -> Checkpoint:
    _check(isinstance(data, dict) and data.get("format") == CHECKPOINT_FORMAT, "not a moncae checkpoint")
    _check(data.get("version") == CHECKPOINT_VERSION, f"unknown version {data.get('version')!r}")
    generation, population = data.get("generation"), data.get("population")
    _check(isinstance(generation, int) and generation >= 0, "bad generation")
    _check(isinstance(population, list) and population and all(isinstance(g, dict) for g in population),
           "bad population")
    _check(isinstance(data.get("finished"), bool), "bad finished flag")
    logbook, hof = data.get("logbook"), data.get("halloffame")
    _check(isinstance(logbook, list) and all(isinstance(r, dict) for r in logbook), "bad logbook")
    last_hof = data.get("last_halloffame")
    for entries in (hof, [] if last_hof is None else last_hof):
        _check(isinstance(entries, list), "bad halloffame")
        for entry in entries:
            _check(isinstance(entry, dict) and isinstance(entry.get("key"), str)
                   and isinstance(entry.get("genes"), list)
                   and all(isinstance(g, int) for g in entry["genes"])
                   and isinstance(entry.get("objectives"), list)
                   and all(isinstance(v, (int, float)) and math.isfinite(v) for v in entry["objectives"]),
                   "bad halloffame entry")
    extras = {name: data.get(name, default) for name, default in
              (("strategy", {}), ("last_population", []), ("last_strategy", {}))}
    _check(isinstance(extras["strategy"], dict) and isinstance(extras["last_strategy"], dict)
           and isinstance(extras["last_population"], list)
           and all(isinstance(g, dict) for g in extras["last_population"]), "bad strategy state")
    waiting, restamped = data.get("waiting", []), data.get("restamped", [])
    for pairs, size in ((waiting, 2), (restamped, 3)):
        _check(isinstance(pairs, list) and all(
            isinstance(w, list) and len(w) == size and isinstance(w[0], str)
            and all(isinstance(n, int) and n >= 0 for n in w[1:]) for w in pairs), "bad waiting trainings")
    return Checkpoint(generation, population, _rng_from_json(data.get("rng_state")),
                      [_null_to_nan(r) for r in logbook], hof, data["finished"], **extras,
                      last_halloffame=last_hof, waiting=waiting, restamped=restamped)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint | None:
    """The checkpoint at `path`, None when there is none; an error for anything unusable."""
    path = Path(path)
    legacy = path.with_name(LEGACY_CHECKPOINT_NAME)
    if not path.exists():
        if legacy.exists():
            raise RunFolderError(
                f"{legacy} is a pickle from an older moncae and is never loaded (a pickle can run "
                f"code); delete it to resume from the evaluations journal (every training is reused)"
            )
        return None
    try:
        return _parse(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, UnicodeDecodeError, RecursionError) as err:  # Recursion: nested too deep
        raise RunFolderError(
            f"{path} is damaged ({(str(err).splitlines() or [''])[0][:120]}); delete it to resume from the "
            "evaluations journal (every training is reused)"
        ) from None
