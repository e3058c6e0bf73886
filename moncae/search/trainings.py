"""`Trainings`: every training of a run so far, by genome key and fidelity rung, and what the
search sees of them (the `view`: full-fidelity records, or a stopped genome as a failure)."""

from __future__ import annotations

import dataclasses

from moncae.evaluation.records import EvalRecord
from moncae.method.objective_set import ObjectiveSet

__all__ = ["Trainings"]


class Trainings:
    """Every training of the run: per genome key its records by fidelity rung, lowest first.

    `view(key)` is what fitness, the front and the strategies see: the top-rung record, or, for
    a genome stopped at a lower rung, that record at the reference point with status `failed`
    and failure `stopped` (see moncae.method.fidelity); with fidelity "full" the one record.
    """

    def __init__(self, by_key: dict[str, list[EvalRecord]], top: int, objectives: ObjectiveSet,
                 upto: int | None = None, waiting: set[tuple[str, int]] = frozenset(),
                 restamped: dict[tuple[str, int], int] | None = None) -> None:
        """`by_key`: the journal. With `upto`, only its trainings of generation `upto` or before are
        known at first; each later one waits until the search reaches its genome and rung again
        (`take`), as it did when it trained it: so a search resumed, or replayed from its journal
        without a checkpoint, sees at every step what the uninterrupted run saw. `waiting`:
        (key, rung) pairs that wait too though of an earlier generation (`still_waiting`);
        `restamped`: the generation the search took a known one in, where that is later than the
        journal's (`taken_late`)."""
        self.top, self.objectives = top, objectives
        self.ref_point = objectives.ref
        self.by_key: dict[str, list[EvalRecord]] = {}
        self.later: dict[tuple[str, int], EvalRecord] = {}
        # (key, rung) -> the generation that took a training the journal has under an earlier one
        self.taken_late: dict[tuple[str, int], int] = {}
        restamped = restamped or {}
        for key, records in by_key.items():
            waits = False  # rungs in order: once one waits, so do those above it
            for rec in records:
                waits = waits or (upto is not None and rec.generation > upto) or (key, rec.rung) in waiting
                if waits:
                    self.later[key, rec.rung] = rec
                elif (key, rec.rung) in restamped:
                    self.taken_late[key, rec.rung] = restamped[key, rec.rung]
                    self.by_key.setdefault(key, []).append(
                        dataclasses.replace(rec, generation=restamped[key, rec.rung]))
                else:
                    self.by_key.setdefault(key, []).append(rec)

    def __contains__(self, key: str) -> bool:
        return key in self.by_key

    def __len__(self) -> int:
        """How many trainings (all rungs) the run has journaled."""
        return sum(len(v) for v in self.by_key.values())

    def add(self, record: EvalRecord) -> None:
        self.by_key.setdefault(record.genome_key, []).append(record)

    def take(self, key: str, rung: int, generation: int) -> bool:
        """Make the journal's training of `key` at `rung` known, if it waits; True if it did. The
        search reaches it in `generation`: where the journal has another (a lengthened run's
        training from its old last generation), the search sees it as of `generation`, as a run
        of that length from the start trained it then."""
        rec = self.later.pop((key, rung), None)
        if rec is not None and rec.generation != generation:
            self.taken_late[key, rung] = generation
            rec = dataclasses.replace(rec, generation=generation)
        if rec is not None:
            self.add(rec)
        return rec is not None

    def still_waiting(self, generation: int) -> list[list]:
        """The waiting trainings of `generation` or before ([key, rung] each, sorted): what a
        checkpoint after `generation` must hold back besides the later generations'."""
        return sorted([key, rung] for (key, rung), rec in self.later.items() if rec.generation <= generation)

    def restamped(self) -> list[list]:
        """The known trainings the search took in a later generation than the journal's ([key, rung,
        generation] each, sorted): what a checkpoint keeps so that a resume sees them the same."""
        return sorted([key, rung, g] for (key, rung), g in self.taken_late.items())

    def journaled(self) -> int:
        """How many trainings the journal holds, those still waiting included."""
        return len(self) + len(self.later)

    def latest(self, key: str) -> EvalRecord:
        return self.by_key[key][-1]

    def reached(self, key: str) -> int:
        """The highest rung trained for `key` (-1: none)."""
        return len(self.by_key.get(key, ())) - 1

    def at_rung(self, key: str, rung: int) -> EvalRecord | None:
        records = self.by_key.get(key, ())
        return records[rung] if rung < len(records) else None

    def rung_points(self, rung: int) -> dict[str, tuple[float, ...]]:
        """Every ok network's point (its objective vector) at `rung` so far."""
        return {k: self.objectives.point(v[rung]) for k, v in self.by_key.items()
                if len(v) > rung and v[rung].ok}

    def view(self, key: str) -> EvalRecord:
        rec = self.latest(key)
        if rec.rung == self.top or not rec.ok:
            return rec
        return dataclasses.replace(rec, rec_loss=self.ref_point[0], loc=self.ref_point[1],
                                   status="failed", failure="stopped",
                                   error=f"stopped at fidelity rung {rec.rung} (not promoted)")

    def image_epochs(self) -> int:
        """Training images times epochs over every training: the compute spent."""
        return sum(r.train_images * r.epochs for v in self.by_key.values() for r in v)
