"""The budgeted search against the plain protocol at the same wall-clock budget.

Runs two searches of the same seed, dataset and search space for `--minutes` each, one after
the other (never side by side: they would share the cores):
  (a) plain: `fidelity = "full"`, `inherit = false`, `initial = "random"`, `fitness = "paper"`,
      `latents = "inherited"`
      (every new genome trains once at the full budget, from random weights; a random first
      generation; the paper's fitness): today's protocol;
  (b) budgeted: the `cpu` preset's settings (successive halving over `rungs`, plus whatever the
      preset turns on).
Both use the `cpu` preset's space and sizes (override with --preset). While each runs, it logs
after every training the elapsed seconds and the hypervolume of the all-time front *at full
fidelity* (top-rung trainings only) on the validation split. It prints both curves, and the
time-to-target ratio: the seconds (a) needed to reach its final hypervolume divided by the
seconds (b) needed to reach that same value (> 1: the budgeted search gets there sooner).
A plain run's last step can be tiny (measured: +0.0013 HV after 10 minutes flat), which makes
that ratio jump, so it also prints the ratio for a target `--tolerance` below the final HV
(default 0.1%: both runs must reach 99.9% of the plain run's final HV).

When it timed both protocols in the same call, it also prints what throughput alone explains:
how many generations the budgeted search finishes per plain one after the first (measured from
when each generation ended), the ratio that would give if every later budgeted generation were
worth a plain one (both first generations as measured: `throughput_ratio`), and how many times as
many generations 3x would take (`needed_generations`). Where the measured ratio beats that figure,
the budgeted search's generations did better than the plain one's, not only more of them.

With `--run DIR` it also prints, for the final models of a finished, fine-tuned run (e.g. the
cpu preset's), the test reconstruction loss minus PCA's at the same latent size (PCA fitted on
the run's training split, scored on its test split, like the report's baseline).

With `--seeds 46,47,48` it runs the comparison once per seed and prints each seed's ratio and
their median (one seed's front moves in jumps, so one ratio is the distance between two steps).

`--set KEY=VALUE` changes a setting of both protocols; `--set-budgeted KEY=VALUE` only the
budgeted one's (e.g. `promote`, `rungs`; the plain protocol keeps full fidelity regardless);
`--set-plain KEY=VALUE` only the plain one's (e.g. `initial="spread"`, to compare a budgeted
search with the plain protocol started the same way: what the start gains apart from the budget).

`--curves FILE` keeps every curve it measures in a JSON file and reuses the plain protocol's
curve from there when the seed, minutes, dataset, plain settings, the search's code (moncae
but its command line, export and report) and the CPU's instruction-set extensions (TensorFlow's
numbers depend on them; curves written before they were recorded have none) match: the plain
run does not depend on the budgeted settings, so comparing budgeted variants need not re-run it.
The budgeted curves are kept there too (under a "budgeted" key; never reused), for ratios
against other plain curves: `--table FILE` prints, per seed, every plain curve of the file
against every budgeted one (each labelled by the settings in which the file's curves of its
kind differ, and by the CPU where they differ in it), and runs nothing.

Usage: python bench/budget.py [--dataset fashion_mnist] [--minutes 8] [--seed 46 | --seeds 46,47]
       [--preset cpu] [--set KEY=VALUE ...] [--set-budgeted KEY=VALUE ...]
       [--set-plain KEY=VALUE ...] [--with-inherit]
       [--curves curves.json] [--plain-only]
       [--run RESULTS/fashion_mnist/seed-46] [--table curves.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _cli import non_negative_int, positive_int, run

from moncae.config import SearchConfig, read_toml, resolve_config
from moncae.data import cached_dataset
from moncae.errors import MoncaeError
from moncae.executors.resources import cpu_instruction_sets
from moncae.method.objectives import hypervolume
from moncae.search.loop import SearchProgress, check_rungs, run_search


class OutOfTime(BaseException):
    """Ends a run at the budget (like SIGKILL: nothing catches it)."""


class Tracker(SearchProgress):
    """Elapsed seconds and the full-fidelity front's hypervolume after every training, over
    (rec_loss, loc) whatever else the run minimises (so a run with more objectives is measured
    like the plain one: `ref` is cut to its first two values)."""

    def __init__(self, top: int, ref, seconds: float) -> None:
        self.top, self.ref, self.limit = top, tuple(ref)[:2], seconds
        self.start = time.perf_counter()
        self.points: list[tuple[float, float]] = []
        self.curve: list[tuple[float, float, int]] = []  # (seconds, HV, trainings)
        self.trainings = 0
        self.by_rung: dict[int, list[tuple[float, float]]] = {}  # rung -> (seconds, fit_seconds)
        self.generation_ends: list[float] = []  # elapsed seconds when each generation ended

    def evaluation_done(self, record) -> None:
        self.trainings += 1
        self.by_rung.setdefault(record.rung, []).append((record.seconds, record.fit_seconds))
        if record.ok and record.rung == self.top:
            self.points.append((record.rec_loss, record.loc))
        hv = hypervolume(np.array(self.points, dtype=float).reshape(-1, 2), self.ref)
        elapsed = time.perf_counter() - self.start
        self.curve.append((elapsed, hv, self.trainings))
        if elapsed > self.limit:
            raise OutOfTime

    def generation_done(self, row) -> None:
        self.generation_ends.append(time.perf_counter() - self.start)


@dataclasses.dataclass
class RunTiming:
    """What a run measured besides its curve: mean seconds per training by rung (in its worker)
    and the elapsed seconds at which each of its generations ended."""

    rung_seconds: dict[int, float]
    generation_ends: list[float]

    def seconds_per_generation(self) -> float | None:
        """Mean seconds per generation after the first (None: fewer than two ended)."""
        ends = self.generation_ends
        return (ends[-1] - ends[0]) / (len(ends) - 1) if len(ends) > 1 else None


def run_for(label: str, config, seconds: float, timing: dict[str, RunTiming] | None = None
            ) -> list[tuple[float, float, int]]:
    """The run's curve; prints its mean seconds per training by rung (and stores them, with the
    ends of its generations, in `timing[label]`)."""
    tracker = Tracker(len(config.rung_schedule()) - 1, config.ref_point, seconds)
    try:
        run_search(config, progress=tracker)
        print(f"{label}: finished its {config.generations} generations within the budget")
    except OutOfTime:
        pass
    means = {rung: np.mean(times, axis=0) for rung, times in sorted(tracker.by_rung.items())}
    if timing is not None:
        timing[label] = RunTiming({rung: float(m[0]) for rung, m in means.items()}, tracker.generation_ends)
    for rung, (task, fit) in means.items():
        print(f"{label}: rung {rung}: {len(tracker.by_rung[rung])} trainings, {task:.1f} s each in its worker "
              f"({fit:.1f} s in fit, the first batch's trace included)")
    return tracker.curve


def first_time(curve, target: float) -> float:
    return next((t for t, hv, _ in curve if hv >= target - 1e-12), math.inf)


def final_hv(curve) -> float:
    return curve[-1][1] if curve else 0.0


def trainings(curve) -> int:
    return curve[-1][2] if curve else 0


@dataclasses.dataclass(frozen=True)
class Target:
    """What a plain curve reached: its final HV and when, and `tolerance` below it and when."""

    hv: float
    seconds: float
    near: float
    near_seconds: float

    @classmethod
    def of(cls, curve, tolerance: float) -> Target:
        hv = final_hv(curve)
        near = hv * (1.0 - tolerance)
        return cls(hv, first_time(curve, hv), near, first_time(curve, near))

    def times(self, curve) -> tuple[float, float]:
        """When `curve` reached this target's final HV, and its `near` value (inf: never)."""
        return first_time(curve, self.hv), first_time(curve, self.near)


def print_curve(label: str, curve) -> None:
    print(f"{label}: seconds -> front HV (full fidelity), trainings")
    shown = -1.0
    for t, hv, n in curve:
        if t - shown >= 30 or (t, hv, n) == curve[-1]:
            print(f"  {t:7.1f} s  HV {hv:8.4f}  trainings {n}")
            shown = t


def versus_pca(run_dir: Path) -> None:
    """The report's comparison (`moncae.report.collect.collect_versus_pca`) for one run's
    fine-tuned final models, printed."""
    from moncae.data import cached_dataset
    from moncae.report.build import objective_loss
    from moncae.report.collect import (
        collect_final_models,
        collect_runs,
        collect_versus_pca,
        paired_with_pca,
        versus_pca_counts,
    )
    from moncae.report.pca import max_components, pca_image_losses

    (run,) = collect_runs(run_dir)
    loss = objective_loss(run.config)  # a VAE's is the BCE of its mean decoding
    finals = collect_final_models(run)
    data = cached_dataset(run.config.data_spec())
    top = max_components(len(data.x_train), int(np.prod(data.x_train.shape[1:])))
    ks = sorted({int(k) for k in finals["latent_size"].dropna()} | {top})  # the largest PCA: for larger codes
    per_image = pca_image_losses(data.x_train, data.x_test, ks, loss)
    pca = pd.DataFrame({"k": list(per_image), "loc": np.log10(list(per_image)),
                        "rec_loss": [v.mean() for v in per_image.values()]})
    # a fine-tune since 2026-12-07 kept its test images' losses: paired with PCA's, as the report does
    paired = paired_with_pca(finals, len(data.x_test), per_image)
    versus = collect_versus_pca(finals, pca, paired)
    versus = versus[versus["source"] == "finetune"]
    print(f"{run_dir}: fine-tuned final models, test {loss} minus PCA's at the same latent size")
    for _, row in versus.iterrows():
        k = int(row["latent_size"])
        if pd.isna(row["pca_rec_loss"]):
            print(f"  {row['bottleneck']:>10} (k={k}): no PCA with that many components")
            continue
        capped = f" (PCA k={row['pca_k']}, all it has)" if row["pca_k"] != k else ""
        interval = ("" if pd.isna(row["difference_se"]) else
                    f" (95%: {row['difference_low']:+.4f} to {row['difference_high']:+.4f})")
        print(f"  {row['bottleneck']:>10} k={k:<5} test {row['rec_loss']:.4f}  PCA {row['pca_rec_loss']:.4f}  "
              f"difference {row['difference']:+.4f}{interval}{capped}")
    n = versus_pca_counts(versus)
    left = f" ({n['no_pca']} not compared)" if n["no_pca"] else ""
    noise = f", {n['narrow']} of them within the test split's noise" if n["narrow"] else ""
    print(f"  {n['below']} of {n['compared']} below PCA{noise}{left}")


def _settings(config) -> dict:
    """The settings a curve depends on (not where the run is written)."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k != "out"}


@functools.cache
def _code_digest() -> str:
    """The SHA-256 of the moncae source a search runs (all but the command line, export and
    report): a curve measured with other code is not reused. Read once per bench process (the
    code its searches import)."""
    import hashlib

    import moncae

    root = Path(moncae.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] not in ("cli", "export", "report"):
            digest.update(path.read_bytes())
    return digest.hexdigest()


# settings that only a multi-fidelity search reads: the plain protocol keeps their defaults
# whatever the preset says, so that its curve key (and "today's protocol") stays the same
RUNG_ONLY = ("promote", "promote_multiple", "promotion", "first_generation")


def overrides(settings: list[str]) -> dict:
    """`--set rungs=[[1,2500]]` -> {"rungs": [[1, 2500]]} (each value read as TOML)."""
    return read_toml("--set", text="\n".join(settings))


def compare(args, seed: int) -> list[float]:
    """Both protocols (and the --with-inherit variant) for one seed; prints the curves and
    returns the time-to-target ratio of each budgeted variant (0.0: it never reached the plain
    run's final HV in the budget)."""
    seconds = args.minutes * 60
    timing: dict[str, RunTiming] = {}  # a reused plain curve comes without its timing
    with tempfile.TemporaryDirectory() as tmp:
        common = {"preset": args.preset, "dataset": args.dataset, "seed": seed,
                  "generations": args.generations}
        both = overrides(args.set)
        # today's protocol: one full training per new genome, from random weights, a random
        # first generation (the paper's draw) and the paper's fitness unless --set / --set-plain
        # say otherwise
        default = SearchConfig()
        shared = resolve_config(out=f"{tmp}/b", **common,
                                **{"initial": default.initial, "fitness": default.fitness,
                                   "latents": default.latents, **both,
                                   **overrides(args.set_plain)})
        plain = dataclasses.replace(shared, fidelity="full", rungs=(), inherit=False, out=f"{tmp}/a",
                                    **{name: getattr(default, name) for name in RUNG_ONLY})
        budgeted = resolve_config(out=f"{tmp}/b", **common,
                                  **{**both, **overrides(args.set_budgeted)})
        # a budgeted setting the search would refuse fails now, not after the plain run
        check_rungs(budgeted, len(cached_dataset(budgeted.data_spec()).x_train))
        print(f"{args.dataset}, seed {seed}, {args.minutes:g} min each; budgeted: "
              f"fidelity {budgeted.fidelity} rungs {list(budgeted.rungs)} promote {budgeted.promote} "
              f"(rounded up to a multiple of {budgeted.promote_multiple}, {budgeted.promotion}) "
              f"inherit {budgeted.inherit} epochs {budgeted.epochs} first population "
              f"{budgeted.first_population or budgeted.population} initial {budgeted.initial} fitness "
              f"{budgeted.fitness} latents {budgeted.latents} objectives {','.join(budgeted.objectives)}; "
              f"plain: fidelity {plain.fidelity} epochs {plain.epochs} initial {plain.initial} fitness "
              f"{plain.fitness} latents {plain.latents}; both: space {plain.space}, population "
              f"{plain.population}")
        store = Path(args.curves) if args.curves else None
        saved = read_curves(store)
        plain_id = curve_id(args, seed, "plain", plain)
        if plain_id in saved:
            print(f"plain: the curve measured earlier with the same settings ({store})")
            curves = {"(a) plain": [tuple(p) for p in saved[plain_id]]}
        else:
            curves = {"(a) plain": run_for("plain", plain, seconds, timing)}
            keep_curve(store, plain_id, curves["(a) plain"])
        if args.plain_only:
            print_curve("(a) plain", curves["(a) plain"])
            return []
        curves["(b) budgeted"] = run_for("budgeted", budgeted, seconds, timing)
        # kept (never reused: this is what is measured) for ratios against other curves
        keep_curve(store, curve_id(args, seed, "budgeted", budgeted), curves["(b) budgeted"])
        if args.with_inherit and not budgeted.inherit:
            inheriting = dataclasses.replace(budgeted, inherit=True, out=f"{tmp}/c")
            curves["(b') budgeted + inherit"] = run_for("budgeted + inherit", inheriting, seconds)
            keep_curve(store, curve_id(args, seed, "budgeted", inheriting), curves["(b') budgeted + inherit"])
    for label, curve in curves.items():
        print_curve(label, curve)
    goal = Target.of(curves["(a) plain"], args.tolerance)
    throughput_bound(budgeted, plain.population, timing, goal)
    final_a, t_a, near, t_a_near = goal.hv, goal.seconds, goal.near, goal.near_seconds
    ratios = []
    for label, curve in list(curves.items())[1:]:
        t_b, t_b_near = goal.times(curve)
        print(f"{label}: final front HV {final_hv(curve):.4f} (plain {final_a:.4f})")
        if math.isfinite(t_b):
            ratios.append(t_a / t_b)
            print(f"  time to the plain protocol's final HV: plain {t_a:.0f} s, this {t_b:.0f} s: "
                  f"ratio {t_a / t_b:.2f}x")
        else:
            ratios.append(0.0)
            print(f"  did not reach the plain protocol's final HV {final_a:.4f} in "
                  f"{args.minutes:g} min (ratio < {t_a / seconds:.2f}x)")
        head = f"  time to {100 * (1 - args.tolerance):g}% of it ({near:.4f}): plain {t_a_near:.0f} s, "
        if math.isfinite(t_b_near):
            print(head + f"this {t_b_near:.0f} s: ratio {t_a_near / t_b_near:.2f}x")
        else:
            print(head + f"this not reached in {args.minutes:g} min (ratio < {t_a_near / seconds:.2f}x)")
    return ratios


def table(path: Path, tolerance: float) -> None:
    """Every (plain, budgeted) pair of curves of the same seed, dataset and minutes in a
    `--curves` file: final HVs, time-to-target ratio, and the ratio to (1 - tolerance) of the
    plain curve's final HV."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise MoncaeError(f"cannot read the curves file {path} ({err}); give a file that "
                          "`--curves` wrote") from None
    entries = []
    for raw, curve in saved.items():
        key = json.loads(raw)
        kind = "plain" if "plain" in key else "budgeted"
        entries.append((key, kind, [tuple(p) for p in curve]))
    varying = {}
    for kind in ("plain", "budgeted"):
        settings = [key[kind] for key, k, _ in entries if k == kind]
        names = set().union(*settings) - {"seed"}
        varying[kind] = sorted(n for n in names if len({repr(s.get(n)) for s in settings}) > 1)

    cpus = {key.get("cpu") for key, _, _ in entries}

    def label(key, kind) -> str:  # the settings in which this kind's curves differ
        shown = ", ".join(f"{name}={key[kind].get(name)}" for name in varying[kind])
        cpu = f", cpu {key.get('cpu') or 'not recorded'}" if len(cpus) > 1 else ""
        return f"{kind} ({shown + '; ' if shown else ''}code {key['code'][:8]}{cpu})"

    for seed in sorted({key["seed"] for key, _, _ in entries}):
        print(f"seed {seed}")
        here = [e for e in entries if e[0]["seed"] == seed]
        for a, _, curve_a in (e for e in here if e[1] == "plain"):
            goal = Target.of(curve_a, tolerance)
            print(f"  {label(a, 'plain')}: final HV {goal.hv:.4f} at {goal.seconds:.0f} s, "
                  f"{trainings(curve_a)} trainings")
            for b, _, curve_b in (e for e in here if e[1] == "budgeted"):
                if (b["dataset"], b["minutes"]) != (a["dataset"], a["minutes"]):
                    continue
                t_b, t_b_near = goal.times(curve_b)
                ratio = f"{goal.seconds / t_b:.2f}x ({t_b:.0f} s)" if math.isfinite(t_b) else "not reached"
                ratio_near = f"{goal.near_seconds / t_b_near:.2f}x" if math.isfinite(t_b_near) else "not reached"
                print(f"    against {label(b, 'budgeted')}: final HV {final_hv(curve_b):.4f}, "
                      f"{trainings(curve_b)} trainings; ratio {ratio}; to "
                      f"{100 * (1 - tolerance):g}% {ratio_near}")


def curve_id(args, seed: int, kind: str, config) -> str:
    """A curve's key in a `--curves` file: what it was measured with ("plain" or "budgeted"), and
    on which CPU (its instruction-set extensions: TensorFlow's numbers depend on them, so a curve
    of another CPU is not reused; files written before this have no `cpu`)."""
    return json.dumps({"seed": seed, "minutes": args.minutes, "dataset": args.dataset,
                       kind: _settings(config), "code": _code_digest(), "cpu": cpu_instruction_sets()},
                      sort_keys=True, default=str)


def read_curves(store: Path | None) -> dict:
    return json.loads(store.read_text()) if store and store.exists() else {}


def keep_curve(store: Path | None, key: str, curve) -> None:
    """Add one curve to the `--curves` file (read again first: a run takes minutes), atomically."""
    if store is None:
        return
    saved = read_curves(store)
    saved[key] = curve
    tmp = store.with_name(store.name + ".tmp")
    tmp.write_text(json.dumps(saved))
    tmp.replace(store)


def generation_cost(rung_seconds: list[float], children: int, promote: float) -> float:
    """Seconds of training in one generation of `children` new genomes: each trains at rung 0,
    `ceil(promote x candidates)` go on at each rung (successive halving)."""
    cost, n = 0.0, children
    for t in rung_seconds:
        cost += n * t
        n = math.ceil(promote * n)
    return cost


def throughput_ratio(target_seconds: float, plain_first: float, budgeted_first: float,
                     generations_per_plain: float) -> float:
    """The time-to-target ratio the budget's throughput alone would give: both protocols finish
    their first generation (at `plain_first` and `budgeted_first` seconds), then every budgeted
    generation costs `1 / generations_per_plain` of a plain one and is worth as much, so the
    budgeted search covers the plain run's remaining `target_seconds - plain_first` seconds of
    generations that many times faster."""
    rest = max(target_seconds - plain_first, 0.0)
    return target_seconds / (budgeted_first + rest / generations_per_plain)


def needed_generations(ratio: float, target_seconds: float, plain_first: float,
                       budgeted_first: float) -> float:
    """The `generations_per_plain` at which `throughput_ratio` equals `ratio` (inf: none does,
    the budgeted first generation alone takes `target_seconds / ratio` or longer)."""
    left = target_seconds / ratio - budgeted_first
    return max(target_seconds - plain_first, 0.0) / left if left > 0 else math.inf


def throughput_bound(budgeted, population: int, timing: dict[str, RunTiming], goal: Target) -> None:
    """How many generations the budgeted search trains per plain one, from the measured seconds
    per training: what its search would gain if a budgeted generation were worth a plain one (a
    generation's new genomes: the population minus its elite); and the time-to-target ratio that
    gain alone gives, with both first generations as measured."""
    from moncae.method.evolution import elite_count

    plain_run, ours_run = timing.get("plain"), timing.get("budgeted")
    if plain_run is None or ours_run is None:
        return
    plain, ours = plain_run.rung_seconds, ours_run.rung_seconds
    rungs = len(budgeted.rung_schedule())
    if 0 not in plain or len(ours) < rungs:
        return
    children = population - elite_count(budgeted.elitism, population)
    a = generation_cost([plain[0]], children, 1.0)
    b = generation_cost([ours[r] for r in range(rungs)], children, budgeted.promote)
    free = generation_cost([0.0] * (rungs - 1) + [ours[rungs - 1]], children, budgeted.promote)
    print(f"a generation of {children} new genomes: plain {a:.1f} s of training, budgeted {b:.1f} s "
          f"({a / b:.2f}x as many generations in the same time; {a / free:.2f}x if its lower "
          "rungs cost nothing)")
    per_a, per_b = plain_run.seconds_per_generation(), ours_run.seconds_per_generation()
    if per_a is None or per_b is None or not math.isfinite(goal.seconds):
        return
    first_a, first_b = plain_run.generation_ends[0], ours_run.generation_ends[0]
    ratio = throughput_ratio(goal.seconds, first_a, first_b, per_a / per_b)
    need = needed_generations(3.0, goal.seconds, first_a, first_b)
    print(f"measured: first generation done after {first_a:.0f} s (plain) and {first_b:.0f} s "
          f"(budgeted), then one every {per_a:.0f} s and {per_b:.0f} s ({per_a / per_b:.2f}x as many); "
          f"throughput alone (each later budgeted generation worth a plain one) gives a ratio of "
          f"{ratio:.2f}x to the plain run's final HV at {goal.seconds:.0f} s; 3x would need "
          + (f"{need:.1f}x as many generations" if math.isfinite(need)
             else "the budgeted first generation to end before a third of that"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--seed", type=non_negative_int, default=46)
    parser.add_argument("--seeds", default=None, help="several seeds, e.g. 46,47,48 (overrides --seed)")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--generations", type=positive_int, default=100, help="more than fit in the budget")
    parser.add_argument("--run", type=Path, default=None, help="a finished, fine-tuned run to compare with PCA")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting instead of the preset's, as TOML, e.g. --set 'rungs=[[1,2500]]' "
                             "--set promote=0.25; it applies to both protocols, except that "
                             "plain always has fidelity full, no rungs and no inheritance")
    parser.add_argument("--set-budgeted", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for the budgeted search only, e.g. --set-budgeted promote=0.16 "
                             "or --set-budgeted 'promotion=\"front\"'")
    parser.add_argument("--set-plain", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for the plain protocol only, e.g. --set-plain 'initial=\"spread\"' "
                             "(fidelity stays full)")
    parser.add_argument("--tolerance", type=float, default=0.001,
                        help="also print the ratio for a target this fraction below plain's final HV")
    parser.add_argument("--curves", default=None,
                        help="JSON file: keep the curves, reuse a matching plain curve")
    parser.add_argument("--with-inherit", action="store_true",
                        help="also run the budgeted settings with weight inheritance on")
    parser.add_argument("--table", type=Path, default=None, metavar="CURVES",
                        help="print every plain curve of a --curves file against every budgeted one, "
                             "per seed, and run nothing")
    parser.add_argument("--plain-only", action="store_true",
                        help="measure (and keep, with --curves) only the plain protocol's curves")
    args = parser.parse_args()
    if args.table is not None:
        table(args.table, args.tolerance)
        return
    if not args.skip_search:
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]
        ratios = {seed: compare(args, seed) for seed in seeds}
        if len(seeds) > 1 and not args.plain_only:
            for variant, values in enumerate(zip(*ratios.values())):
                shown = ", ".join(f"seed {s}: " + (f"{r:.2f}x" if r > 0 else "not reached")
                                  for s, r in zip(seeds, values))
                print(f"time-to-target ratio, budgeted variant {variant + 1}: {shown}; "
                      f"median {float(np.median(values)):.2f}x (not reached counted as 0)")
    if args.run is not None:
        versus_pca(args.run)


if __name__ == "__main__":
    run(main)  # a setting the search refuses: one line, nothing run
