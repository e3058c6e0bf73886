"""The snapshot a search takes after each generation: enough to continue exactly where it
stopped (next population, RNG state, DEAP logbook and Pareto hall of fame)."""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moncae.errors import RunFolderError
from moncae.store.atomic import atomic_open

__all__ = ["CHECKPOINT_VERSION", "Checkpoint", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_VERSION = 1


@dataclass
class Checkpoint:
    """State after a finished generation: enough to continue exactly where the run stopped."""

    generation: int
    population: list[dict[str, Any]]  # genome configs of the NEXT generation (or the final one)
    rng_state: Any
    logbook: Any
    halloffame: Any
    finished: bool = False
    version: int = CHECKPOINT_VERSION


def save_checkpoint(path: str | os.PathLike, state: Checkpoint) -> None:
    with atomic_open(path, "wb") as fh:
        pickle.dump(state, fh, protocol=pickle.HIGHEST_PROTOCOL)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint | None:
    path = Path(path)
    if not path.exists():
        return None
    import moncae.method.evolution  # noqa: F401 - defines the DEAP classes the hall of fame holds

    try:
        with open(path, "rb") as fh:
            state = pickle.load(fh)
    except Exception as err:  # noqa: BLE001 - any unreadable pickle is the same user problem
        raise RunFolderError(
            f"{path} is unreadable ({type(err).__name__}); delete it to resume from "
            "the evaluations journal alone"
        ) from None
    if not isinstance(state, Checkpoint) or state.version != CHECKPOINT_VERSION:
        raise RunFolderError(f"{path} has an unknown format; delete it to resume")
    return state
