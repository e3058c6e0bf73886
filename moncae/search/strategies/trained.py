"""`TrainedNetworks`: every distinct network a strategy has trained, in the order first met, for
strategies that choose from all of them (`random`'s final pick, `metaqnn`'s replay memory).

A checkpoint keeps each as its key and genes (the space is the run's, the strategy's own), not
as a whole genome config repeating the space: 100 generations x 100 of `metaqnn` held 35.7 MB
of configs and decoded them all again every generation. A checkpoint from before (whole
configs) still loads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from moncae.method.genome import Genome, GenomeSpace, Lineage


class TrainedNetworks:
    """Keys and genomes of the distinct networks trained, first met first."""

    def __init__(self, space: GenomeSpace) -> None:
        self.space = space
        self.keys: list[str] = []
        self.genomes: list[Genome] = []
        self._known: set[str] = set()

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, genomes: Iterable[Genome], keys: Iterable[str]) -> int:
        """Remember the networks not met before; how many were new."""
        new = 0
        for genome, key in zip(genomes, keys):
            if key not in self._known:
                self._known.add(key)
                self.keys.append(key)
                self.genomes.append(genome)
                new += 1
        return new

    def to_state(self) -> list[dict[str, Any]]:
        """JSON-ready: `key` and `genes` of each (and `lineage`, where a genome has one)."""
        out = []
        for key, genome in zip(self.keys, self.genomes):
            entry: dict[str, Any] = {"key": key, "genes": list(genome.genes)}
            if genome.lineage is not None:
                entry["lineage"] = genome.lineage.to_config()
            out.append(entry)
        return out

    def load(self, entries: Sequence[dict[str, Any]]) -> None:
        """Replace the contents with a `to_state()` list (or an older checkpoint's, whose
        entries hold a whole genome config under `genome`)."""
        self.keys, self.genomes, self._known = [], [], set()
        self.add((self._genome(e) for e in entries), (e["key"] for e in entries))

    def _genome(self, entry: dict[str, Any]) -> Genome:
        if "genome" in entry:
            return Genome.from_config(entry["genome"])
        lineage = Lineage.from_config(entry["lineage"]) if "lineage" in entry else None
        return Genome(tuple(entry["genes"]), self.space, lineage)
