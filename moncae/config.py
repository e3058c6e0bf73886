"""Search settings: one frozen dataclass, filled from defaults < preset < TOML file < flags."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import numbers
import os
import re
import shlex
import sys
import types
import typing
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from moncae.data import DATASET_NAMES, canonical_name, looks_like_file
from moncae.data.spec import DataSpec
from moncae.errors import MoncaeError, MoncaeWarning
from moncae.method.fidelity import Rung, rung_schedule
from moncae.method.genome import (
    DEFAULT_MAX_FILTERS,
    DEFAULT_OPTIMIZERS,
    DENSE_LATENT_SIZES,
    DOWNSAMPLINGS,
    KNOWN_OPTIMIZERS,
    GenomeSpace,
)
from moncae.method.objective_set import DEFAULT_OBJECTIVES, ObjectiveSet, parse_objectives
from moncae.method.objectives import FITNESS_RULES
from moncae.method.selection import SELECTORS, STRATEGY_NAMES
from moncae.method.vae_loss import DEFAULT_VAE_EPS, VAE_LOSSES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PAPER_SEEDS = (46, 29, 12, 8, 68, 44, 32, 91, 85, 61)
MAX_POPULATION = 10_000  # trainings per generation; far beyond any budget, a typo guard
MAX_GENERATIONS = 100_000
LOSSES = ("bce", "mse")
# `ae`: the paper's autoencoders (losses LOSSES); `vae`: variational ones (losses VAE_LOSSES, see
# moncae.method.vae_loss and moncae.model.vae).
MODELS = {"ae": LOSSES, "vae": VAE_LOSSES}
# Search spaces: the paper's genome, or the paper's conv blocks plus a latent gene (none or a
# dense bottleneck of DENSE_LATENT_SIZES units).
SPACES = {"paper": (), "dense": DENSE_LATENT_SIZES}
# `full`: every genome trains once at the full budget (the paper); `rungs`: successive halving
# over `rungs` (see moncae.method.fidelity); `proxy`: the same, but the lower rungs train only the
# decoder with the random encoder frozen (the RL thesis's proxy, moncae.model.proxy).
FIDELITIES = ("full", "rungs", "proxy")
# The models a search ends with (fine-tuned, reported, exported): the strategy's final population
# (the paper), or the all-time Pareto front at full fidelity (at most `population` networks).
FINALS = ("population", "front")
# Which of a rung's candidates go on (see moncae.method.fidelity.promoted): `fraction` (the best
# ceil(promote x candidates)), `front` (of those, only the ones that enter or extend the
# all-time front at that rung) or `population` (only the ones that enter or extend the front of
# this generation's population at that rung).
PROMOTIONS = ("fraction", "front", "population")
# The first generation of a multi-fidelity run: `rungs` (like every other generation) or `full`
# (every ok genome goes on to the top rung: Hyperband's bracket without early stopping, so the
# search starts from as many full-budget networks as the plain protocol's first generation).
FIRST_GENERATIONS = ("rungs", "full")
# How generation 0 is drawn: `random` (every gene uniformly, the paper) or `spread` (the `dense`
# space: the same draws, then the dense bottleneck sizes dealt out so that every size is present,
# see moncae.method.genome.spread_latents).
INITIALS = ("random", "spread")
# The latent genes of each later generation's children: `inherited` from their parents by
# crossover and mutation (the paper), or `spread`: dealt out after breeding over every latent gene,
# the conv bottleneck included, so every generation tries its new bodies (blocks, optimizer,
# learning rate) at many latent sizes (see moncae.method.genome.spread_latents).
LATENTS = ("inherited", "spread")
BREEDING_STRATEGIES = ("moncae", "nsga2", "mu-plus-lambda")  # those whose children `latents` acts on
PRESETS_PACKAGE = "moncae.presets"  # package data: presets/NAME.toml
WORKERS_AUTO = "auto"


@dataclass(frozen=True)
class SearchConfig:
    """Everything that decides a run's results (plus where it runs and writes).

    Build one with `resolve_config(preset=..., **settings)` (defaults < preset < config file <
    settings): `preset` here only records the name of the preset a config was built from, so
    `SearchConfig(preset="quick")` holds the defaults, not the `quick` preset's settings. Each
    setting is described in the README's "Search" section and `moncae search --help`; values
    are checked here (a one-line `MoncaeError` naming the setting)."""

    dataset: str = "mnist_5k"
    seed: int = 46
    generations: int = 20
    # a wall-clock budget for the search's generations, in minutes (0: none): once another
    # generation as long as the longest so far would not fit, the next one is the last (see
    # moncae.search.time_budget)
    max_minutes: float = 0.0
    population: int = 20
    epochs: int = 5
    batch_size: int = 256
    loss: str = "bce"
    patience: int = 1
    train_size: int | None = None
    val_size: int | None = None
    test_size: int | None = None
    split_seed: int = 0
    max_blocks: int = 6
    max_filters: int = DEFAULT_MAX_FILTERS
    elitism: float = 0.1
    strategy: str = "moncae"
    selection: str = "paper"  # the `moncae` strategy's parent selection
    # what an exclusive HV contribution (fitness, elite, promotion ranking) is measured against:
    # the whole population (`paper`) or its non-dominated front (`front`), see FITNESS_RULES
    fitness: str = "paper"
    optimizers: tuple[str, ...] = DEFAULT_OPTIMIZERS
    space: str = "paper"
    # how a block with the pool gene halves its map: MaxPool (`pool`, the paper) or a stride-2
    # conv (`strided`), see moncae.method.genome.DOWNSAMPLINGS
    downsample: str = "pool"
    # a block halves its map only while both sides are at least this: 3 (the MONCAE authors'
    # code: never below 2x2); 2 lets maps reach 1x1, as moncae did before 2026-12-07
    min_pool_side: int = 3
    fidelity: str = "full"
    rungs: tuple[tuple[int, int], ...] = ()  # the lower rungs, [epochs, train_images] each
    promote: float = 0.34  # at most this fraction of a rung's candidates goes on to the next
    promotion: str = "fraction"  # see PROMOTIONS
    # the number promoted at a rung, rounded up to a multiple of this by the next-ranked
    # candidates (set it to the trainings at once: none idles at the end of a rung)
    promote_multiple: int = 1
    first_generation: str = "rungs"  # see FIRST_GENERATIONS
    # generation 0's size: 0 = `population`; more draws a wider random start (with rungs, the
    # extra genomes cost a rung-0 training each: Hyperband's wide first bracket)
    first_population: int = 0
    initial: str = "random"  # see INITIALS
    latents: str = "inherited"  # see LATENTS
    inherit: bool = False  # children start from their parents' trained weights where layers match
    final: str = "population"  # see FINALS
    # what is minimised (rec_loss, loc first; then any of params, flops, latency) and the
    # reference point of the hypervolume, one value per objective (None: each one's default)
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES
    ref_point: tuple[float, ...] | None = None
    data_dir: str | None = None
    out: str = "results"
    preset: str | None = None
    executor: str = "local"
    # local: worker processes (1: in this process; "auto": 2 on a CPU-only machine with >= 2
    # cores, else 1); dask: the LocalCluster's size ("auto": one per GPU, or cores // threads)
    workers: int | str = WORKERS_AUTO
    models_per_gpu: int = 1  # dask LocalCluster on GPUs: workers (models at once) per GPU
    scheduler: str | None = None
    model: str = "ae"  # ae | vae
    vae_eps: float = DEFAULT_VAE_EPS  # the reformulated VAE loss's eps (std of its target N(0, eps^2))
    # `moncae finetune`'s maximum epochs per model for this run (its `--epochs` overrides); not a
    # search setting: the search's results do not depend on it
    finetune_epochs: int = 20

    def __post_init__(self) -> None:
        _check_types(self)
        object.__setattr__(self, "workers", parse_workers(self.workers))
        object.__setattr__(self, "objectives", parse_objectives(self.objectives))
        if self.ref_point is None:
            object.__setattr__(self, "ref_point", ObjectiveSet.default_ref(self.objectives))
        object.__setattr__(self, "ref_point", tuple(float(v) for v in self.ref_point))
        object.__setattr__(self, "optimizers", tuple(self.optimizers))
        unknown = [o for o in self.optimizers if o not in KNOWN_OPTIMIZERS]
        _check(bool(self.optimizers) and not unknown, "optimizers",
               f"must be {'' if self.optimizers else 'at least one of the '}names from "
               f"{', '.join(sorted(KNOWN_OPTIMIZERS))}", unknown or self.optimizers)
        _check(self.seed >= 0, "seed", "must be >= 0 (seeds are non-negative integers)", self.seed)
        _check(self.split_seed >= 0, "split_seed", "must be >= 0", self.split_seed)
        _check(1 <= self.generations <= MAX_GENERATIONS, "generations", f"must be in 1..{MAX_GENERATIONS}",
               self.generations)
        object.__setattr__(self, "max_minutes", float(self.max_minutes))
        _check(math.isfinite(self.max_minutes) and self.max_minutes >= 0, "max_minutes",
               "must be a finite number of minutes >= 0 (0: no time budget)", self.max_minutes)
        _check(2 <= self.population <= MAX_POPULATION, "population", f"must be in 2..{MAX_POPULATION}",
               self.population)
        _check(self.epochs >= 1, "epochs", "must be >= 1", self.epochs)
        _check(self.batch_size >= 1, "batch_size", "must be >= 1", self.batch_size)
        _check(self.patience >= 0, "patience", "must be >= 0", self.patience)
        _check(self.finetune_epochs >= 0, "finetune_epochs", "must be >= 0 (0: measure the searched models "
               "as they are)", self.finetune_epochs)
        _check(self.model in MODELS, "model", f"must be one of {', '.join(MODELS)}", self.model)
        if self.model == "ae":
            _check(self.loss in LOSSES, "loss", f"must be one of {', '.join(LOSSES)}"
                   + (" (elbo and reformulated are VAE losses: add model = \"vae\")"
                      if self.loss in VAE_LOSSES else ""), self.loss)
        else:
            _check(self.loss in VAE_LOSSES, "loss",
                   f"must be one of {', '.join(VAE_LOSSES)} with model = \"vae\""
                   + (f" ({', '.join(LOSSES)} are AE losses, {LOSSES[0]} the default: pass --loss reformulated "
                      "or --loss elbo)" if self.loss in LOSSES else ""), self.loss)
        _check(math.isfinite(self.vae_eps) and self.vae_eps > 0, "vae_eps",
               "must be a finite number > 0", self.vae_eps)
        _check(0.0 <= self.elitism < 1.0, "elitism", "must be in [0, 1)", self.elitism)
        _check(self.max_blocks >= 1, "max_blocks", "must be >= 1", self.max_blocks)
        _check(len(self.ref_point) == len(self.objectives), "ref_point",
               f"needs one value per objective ({','.join(self.objectives)})", list(self.ref_point))
        _check(all(math.isfinite(v) and v > 0 for v in self.ref_point), "ref_point",
               "must be finite positive numbers", list(self.ref_point))
        for name in ("train_size", "val_size", "test_size"):
            value = getattr(self, name)
            _check(value is None or value >= 1, name, "must be >= 1 when given", value)
        _check(self.executor in ("local", "dask"), "executor", "must be local or dask", self.executor)
        _check(self.scheduler is None or bool(self.scheduler.strip()), "scheduler", "must be an address such "
               "as tcp://HOST:8786 (leave it out for a cluster on this machine)", self.scheduler)
        _check(self.models_per_gpu >= 1, "models_per_gpu", "must be >= 1", self.models_per_gpu)
        _check(self.fidelity in FIDELITIES, "fidelity", f"must be one of {', '.join(FIDELITIES)}",
               self.fidelity)
        object.__setattr__(self, "rungs", tuple(tuple(r) if isinstance(r, (list, tuple)) else r
                                                for r in self.rungs))
        self.rung_schedule()  # checks the pairs
        _check(self.fidelity == "full" or self.rungs, "rungs",
               f"needs at least one lower rung with fidelity = \"{self.fidelity}\" (e.g. rungs = [[1, 6000]])",
               list(self.rungs))
        _check(self.fidelity != "full" or not self.rungs, "rungs",
               "is only used with fidelity = \"rungs\" (or \"proxy\"); drop it or set fidelity",
               list(self.rungs))
        _check(0.0 < self.promote <= 1.0, "promote", "must be in (0, 1]", self.promote)
        _check(self.promote_multiple >= 1, "promote_multiple", "must be >= 1", self.promote_multiple)
        _check(self.promotion in PROMOTIONS, "promotion", f"must be one of {', '.join(PROMOTIONS)}",
               self.promotion)
        _check(self.first_generation in FIRST_GENERATIONS, "first_generation",
               f"must be one of {', '.join(FIRST_GENERATIONS)}", self.first_generation)
        _check(self.first_population == 0 or self.population <= self.first_population <= MAX_POPULATION,
               "first_population", f"must be 0 (= population) or in {self.population}..{MAX_POPULATION} "
               "(at least population)", self.first_population)
        _check(self.final in FINALS, "final", f"must be one of {', '.join(FINALS)}", self.final)
        _check(self.fidelity != "proxy" or self.model == "ae", "fidelity",
               "\"proxy\" (decoder-only rungs) is for model = \"ae\" only", self.fidelity)
        _check(self.space in SPACES, "space", f"must be one of {', '.join(SPACES)}", self.space)
        _check(self.downsample in DOWNSAMPLINGS, "downsample", f"must be one of {', '.join(DOWNSAMPLINGS)}",
               self.downsample)
        _check(self.min_pool_side >= 2, "min_pool_side", "must be at least 2 (3: maps never below 2x2, the MONCAE "
               "authors' rule; 2: down to 1x1)", self.min_pool_side)
        _check(self.initial in INITIALS, "initial", f"must be one of {', '.join(INITIALS)}", self.initial)
        _check(self.latents in LATENTS, "latents", f"must be one of {', '.join(LATENTS)}", self.latents)
        _check(self.fitness in FITNESS_RULES, "fitness", f"must be one of {', '.join(FITNESS_RULES)}",
               self.fitness)
        _check(self.selection in SELECTORS, "selection", f"must be one of {', '.join(SELECTORS)}",
               self.selection)
        _check(self.strategy in STRATEGY_NAMES, "strategy", f"must be one of {', '.join(STRATEGY_NAMES)}",
               self.strategy)
        for name, rule in ruled_out(lambda setting: getattr(self, setting)).items():
            _check(getattr(self, name) == getattr(SearchConfig, name), name, rule.error, getattr(self, name))
        # what the search builds from these settings first: checked here, so that a dry run refuses
        # what the search refuses, and the search refuses it before it creates its run folder
        self.genome_space()  # e.g. `max_filters` a power of two
        self.objective_set()

    @property
    def run_dir(self) -> Path:
        """`OUT/DATASET/seed-SEED/`; a user .npz dataset (any path) is named by its file stem."""
        name = self.dataset if self.dataset in DATASET_NAMES else Path(self.dataset).stem
        return Path(self.out) / name / f"seed-{self.seed}"

    def data_spec(self) -> DataSpec:
        """How any process loads this run's data and splits."""
        return DataSpec(self.dataset, self.data_dir, self.train_size, self.val_size, self.test_size,
                        self.split_seed)

    def genome_space(self) -> GenomeSpace:
        """The search space these settings define (`space`: paper, or dense = + a latent gene;
        `downsample`: how blocks halve their maps)."""
        return GenomeSpace(max_blocks=self.max_blocks, max_filters=self.max_filters,
                           optimizers=tuple(self.optimizers), latent_sizes=SPACES[self.space],
                           downsample=self.downsample, min_pool_side=self.min_pool_side)

    def objective_set(self) -> ObjectiveSet:
        """The objectives minimised and the hypervolume's reference point."""
        return ObjectiveSet(self.objectives, self.ref_point)

    def rung_schedule(self) -> tuple[Rung, ...]:
        """The fidelity rungs, lowest first; the last is the full budget (the only one with
        fidelity "full")."""
        return rung_schedule(self.rungs if self.fidelity != "full" else (), self.epochs,
                             decoder_only=self.fidelity == "proxy")

    def results_settings(self) -> dict[str, Any]:
        """The settings that decide the search's results (not where the run writes, which executor
        runs it, or how `moncae finetune` trains its models afterwards)."""
        skip = {"out", "preset", "executor", "workers", "models_per_gpu", "scheduler", "data_dir",
                "finetune_epochs"}
        return {k: v for k, v in self.to_dict().items() if k not in skip}

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["ref_point"] = list(self.ref_point)
        d["objectives"] = list(self.objectives)
        d["optimizers"] = list(self.optimizers)
        d["rungs"] = [list(r) for r in self.rungs]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchConfig:
        """Settings from a run's config.json (a setting it lacks: `ABSENT_IN_OLD_RUNS`, else its
        default)."""
        return cls(**{**ABSENT_IN_OLD_RUNS, **_known(d, "config.json")})


# Results settings whose default changed when they were added: a config.json written before
# them had the value here (its genomes were decoded by it), not today's default.
ABSENT_IN_OLD_RUNS: dict[str, Any] = {"min_pool_side": 2}


def parse_workers(value: Any) -> int | str:
    """`workers` as given (flag, TOML, config.json): a positive integer or "auto"; anything else
    is a one-line error naming the valid values. None (config.json before "auto") is "auto"."""
    if value is None:
        return WORKERS_AUTO
    if isinstance(value, str):
        text = value.strip().lower()
        if text == WORKERS_AUTO:
            return WORKERS_AUTO
        if text.isdigit() and int(text) >= 1:
            return int(text)
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise MoncaeError(f"`workers` must be a positive integer or 'auto'. Received: workers={value!r}")


def parse_ref(value: Any) -> tuple[float, ...] | None:
    """`--ref LOSS,LOC[,...]`: comma-separated numbers (None: not given)."""
    if value is None or isinstance(value, (list, tuple)):
        return value
    try:
        if "_" in str(value):  # Python's float reads 4_0 as 40: a typo, not a number here
            raise ValueError(value)
        return tuple(float(part) for part in str(value).split(","))
    except ValueError:
        raise MoncaeError(f"`--ref` must be numbers separated by commas, one per objective (e.g. "
                          f"--ref 4,12). Received: --ref {value}") from None


def _check(ok: bool, name: str, rule: str, value: Any) -> None:
    if not ok:
        raise MoncaeError(f"`{name}` {rule}. Received: {name}={value!r}")


# What a setting accepts beyond its field's type: `objectives` as a flag gives "rec_loss,loc,params",
# an old config.json's `workers` may be null (see parse_workers).
_ALSO_ACCEPTED: dict[str, Any] = {"objectives": str, "workers": type(None)}
# How a setting's type reads in an error, where the words from the field's type would say less.
_TYPE_WORDS = {
    "seed": "a non-negative integer (several seeds: --seed N,M,... on the command line)",
    "data_dir": "a string (a folder path)",
    "out": "a string (a folder path)",
    "workers": 'a positive integer or "auto"',
    "rungs": "a list of [epochs, train_images] pairs of integers (e.g. [[1, 6000]])",
    "ref_point": "a list of numbers, one per objective (e.g. [4.0, 12.0])",
    "optimizers": 'a list of optimizer names (e.g. ["adam", "rmsprop"])',
    "objectives": 'a list of objective names (e.g. ["rec_loss", "loc"])',
    "preset": "a string (a preset name)",
    "scheduler": "a string (a Dask scheduler address)",
}
_PLURALS = {int: "integers", float: "numbers", str: "strings", bool: "true/false values"}


@functools.cache
def _field_types() -> dict[str, Any]:
    """Each SearchConfig field's type (the annotations are strings here: resolved once)."""
    hints = typing.get_type_hints(SearchConfig)
    return {name: hints[name] | _ALSO_ACCEPTED[name] if name in _ALSO_ACCEPTED else hints[name]
            for name in (f.name for f in fields(SearchConfig))}


def _is(value: Any, kind: Any) -> bool:
    """Whether `value` (from TOML, JSON, a flag or Python) has the type `kind`: a TOML array
    stands for a tuple, an integer for a float, but a bool for no number."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return any(_is(value, arg) for arg in args)
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_is(v, args[0]) for v in value)
        return len(value) == len(args) and all(_is(v, a) for v, a in zip(value, args))
    raise TypeError(f"no type check for {kind!r}")  # pragma: no cover - a new field of a new kind


def _type_words(kind: Any) -> str:
    """`kind` in words for an error ("an integer", "a list of strings"); None is left out: it is
    what "not set" means, not a value one writes."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_words(arg) for arg in args if arg is not type(None))
    if origin is tuple:
        each = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        return f"a list of {_PLURALS.get(each, 'values')}" if each is not None else \
            f"a list of {len(args)} values"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[kind]


def check_types(settings: dict[str, Any], where: str | None = None) -> None:
    """Settings are user input (a TOML file, flags, config.json): each known setting of the wrong
    type is a one-line error naming it, the type it takes and the value received (and `where` it
    was given), before any code trips over it. Unknown names are left to `_known`."""
    kinds = _field_types()
    for name, value in settings.items():
        if name in kinds and not _is(value, kinds[name]):
            received = repr(value)
            received = received if len(received) <= 80 else received[:77] + "..."
            words = _TYPE_WORDS.get(name) or _type_words(kinds[name])
            raise MoncaeError(f"`{name}` must be {words}. Received: {name}={received}"
                              + (f" (in {where})" if where else ""))


def dataset_setting(name: str) -> str:
    """A dataset as a run records it: a known name as moncae spells it, a file by its absolute path
    (so that `finetune`, `export` and `report` find it from any folder)."""
    canonical = canonical_name(name)
    if canonical in DATASET_NAMES or not looks_like_file(name):
        return canonical
    return os.path.abspath(os.path.expanduser(name))


PATH_SETTINGS = ("dataset", "data_dir", "out")  # a `pathlib.Path` is taken as its text


def paths_as_text(settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` with a path-like value of a `PATH_SETTINGS` name (a `Path`, from Python) as a
    string, the type the run records and compares."""
    return {k: os.fspath(v) if k in PATH_SETTINGS and isinstance(v, os.PathLike) else v
            for k, v in settings.items()}


def python_number(value: Any) -> Any:
    """A NumPy (or other) integer or real number as Python's `int` or `float` (a notebook's
    `np.arange` seeds), a list or tuple of them, or a NumPy array (as a list), likewise; anything
    else as it is."""
    if type(value).__name__ == "ndarray" and hasattr(value, "tolist"):  # NumPy's, without importing it
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return type(value)(python_number(v) for v in value)
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, int)):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, int, float)):
        return float(value)
    return value


def _check_types(cfg: SearchConfig) -> None:
    for name, value in paths_as_text({name: getattr(cfg, name) for name in PATH_SETTINGS}).items():
        object.__setattr__(cfg, name, value)
    for f in fields(cfg):
        object.__setattr__(cfg, f.name, python_number(getattr(cfg, f.name)))
    check_types({f.name: getattr(cfg, f.name) for f in fields(cfg)})
    # a dataset as a run records it (`Fashion-MNIST` as `fashion_mnist`, a file by its absolute path)
    object.__setattr__(cfg, "dataset", dataset_setting(cfg.dataset))


def _known(d: Any, where: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise MoncaeError(f"settings in {where} must be a table of `name = value` lines. "
                          f"Received: {d!r}"[:300])
    names = {f.name for f in fields(SearchConfig)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise MoncaeError(
            f"unknown setting(s) {', '.join(unknown)} in {where}; known: {', '.join(sorted(names))}"
        )
    return dict(d)


def _preset_files() -> dict[str, Any]:
    """Preset name -> its file in the installed package (works from a wheel too)."""
    folder = resources.files(PRESETS_PACKAGE)
    return {entry.name[:-5]: entry for entry in folder.iterdir() if entry.name.endswith(".toml")}


def preset_names() -> list[str]:
    return sorted(_preset_files())


def read_toml(path: str | Path, *, text: str | None = None) -> dict[str, Any]:
    """Read a settings file; the keys are SearchConfig field names, each checked for its type. They
    may stand under a [search] table instead, but then all of them: a key outside it is refused."""
    path = Path(path) if text is None else path
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8") if text is None else text)
    except FileNotFoundError:
        raise MoncaeError(f"config file {path} does not exist; pass an existing .toml file") from None
    except IsADirectoryError:
        raise MoncaeError(f"config file {path} is a folder; pass a .toml file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise MoncaeError(f"config file {path} is not valid TOML: {err}") from None
    if "search" in data:
        outside = sorted(key for key in data if key != "search")
        if outside and isinstance(data["search"], dict):
            raise MoncaeError(f"config file {path} has a [search] table and settings outside it "
                              f"({', '.join(outside)}), which would be ignored; move them below the "
                              "[search] line, or delete that line")
        data = data["search"]
    settings = _known(data, str(path))
    check_types(settings, str(path))
    return settings


# Settings that decide a run's results and have a `moncae search` flag of their own name (dashes
# for underscores; `ref_point` is --ref, `inherit` --inherit/--no-inherit); the rest of
# `results_settings` takes a --config file (a resume command names them).
FLAG_SETTINGS = ("batch_size", "downsample", "epochs", "fidelity", "final", "first_generation", "first_population",
                 "fitness", "inherit", "initial", "latents", "loss", "max_minutes", "model", "objectives",
                 "population", "promote", "promote_multiple", "promotion", "ref_point", "selection", "space",
                 "strategy", "test_size", "train_size", "vae_eps", "val_size")


def resume_flags(settings: Mapping[str, Any], preset: str | None) -> tuple[list[str], list[str]]:
    """What a `moncae search ... --resume` must add to `--preset PRESET` to give a run's recorded
    `settings` (config.json's): its flags, and the names of the differing settings no flag sets.
    The dataset, seed and generations are the caller's."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            base = resolve_config(preset=preset).results_settings()
    except MoncaeError:  # an unknown preset (a run from another moncae): name nothing
        return [], []
    flags, unflagged = [], []
    for name, value in {**ABSENT_IN_OLD_RUNS, **settings}.items():
        if name in ("dataset", "seed", "generations") or name not in base or value == base[name]:
            continue
        if name not in FLAG_SETTINGS:
            unflagged.append(name)
        elif name == "inherit":
            flags.append("--inherit" if value else "--no-inherit")
        elif isinstance(value, (list, tuple)):
            flags.append(f"--{'ref' if name == 'ref_point' else name} {','.join(str(v) for v in value)}")
        else:
            flags.append(f"--{name.replace('_', '-')} {shlex.quote(str(value))}")
    return flags, unflagged


def settings_toml(config: SearchConfig) -> str:
    """Every setting of `config`, one `key = value` line each, as TOML that `--config` reads back
    to the same settings; a setting left unset (None) is a comment line, TOML having no null, and
    so is a `ref_point` that is its objectives' default (it follows them when they are edited)."""
    default_ref = list(ObjectiveSet.default_ref(config.objectives))
    return "".join(f"# {key}: not set\n" if value is None else
                   f"# {key} = {_toml_value(value)}: the default for these objectives\n"
                   if key == "ref_point" and list(value) == default_ref else f"{key} = {_toml_value(value)}\n"
                   for key, value in config.to_dict().items())


def toml_line(name: str, value: Any) -> str:
    """`name = value` as a --config file writes it."""
    return f"{name} = {_toml_value(value)}"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # TOML writes infinities and NaN as Python does: inf, nan
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: JSON's escapes are TOML's
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def load_preset(name: str) -> dict[str, Any]:
    files = _preset_files()
    if not isinstance(name, str) or name not in files:
        raise MoncaeError(f"unknown preset {name!r}; choose one of {', '.join(sorted(files))}")
    return read_toml(f"preset {name}", text=files[name].read_text(encoding="utf-8"))


@dataclass(frozen=True)
class RuledOut:
    """Why other settings rule a setting out (it must keep its default): `why` names what rules
    it out (a preset's value gives way with that warning), `error` is the rule a value set by
    the user breaks."""

    why: str
    error: str


def ruled_out(get: Callable[[str], Any]) -> dict[str, RuledOut]:
    """The settings that the others (`get(name)` gives each value) rule out: `initial` and
    `latents` "spread" need the dense space, `latents` "spread" a strategy that breeds, `inherit`
    a fidelity other than "proxy". The one place these rules are stated: `SearchConfig` refuses
    them, `resolve_config` lets a preset's give way. An unknown space or strategy rules nothing
    out (it is refused as such)."""
    space, strategy = get("space"), get("strategy")
    out = {}
    if space in SPACES and not SPACES[space]:
        out.update(dict.fromkeys(("initial", "latents"), RuledOut(
            f"space {space!r} has no dense bottleneck",
            "\"spread\" deals out the dense bottleneck sizes: it needs space = \"dense\"")))
    if "latents" not in out and strategy in STRATEGY_NAMES and strategy not in BREEDING_STRATEGIES:
        out["latents"] = RuledOut(
            f"strategy {strategy!r} does not breed",
            f"\"spread\" deals out bred children's latent genes: it needs a strategy that breeds "
            f"({', '.join(BREEDING_STRATEGIES)}); with another, use latents = \"inherited\"")
    if get("fidelity") == "proxy":
        out["inherit"] = RuledOut("the proxy's encoder stays random", "cannot be used with fidelity = "
                                  "\"proxy\" (the proxy's frozen encoder must stay random)")
    return out


def without_effect(config: SearchConfig, given: Iterable[str]) -> list[str]:
    """For each setting in `given` (those the user set) that `config`'s other settings leave
    without effect, a line saying so and what would give it one (a warning, not an error: the
    search runs as asked)."""
    rungs = (config.fidelity != "full", 'with fidelity "full" (one rung: nothing is promoted); it acts with '
             "--fidelity rungs or proxy")
    acts = {"promote": rungs, "promotion": rungs, "promote_multiple": rungs, "first_generation": rungs,
            "vae_eps": (config.model == "vae", "with an autoencoder; it acts with --model vae"),
            "scheduler": (config.executor == "dask", "with the local executor; it acts with --executor dask"),
            "models_per_gpu": (config.executor == "dask" and config.scheduler is None,
                               "outside the Dask LocalCluster (it places that cluster's workers); it acts with "
                               "--executor dask and no --scheduler"),
            "selection": (config.strategy == "moncae", f"with strategy {config.strategy!r} (it picks the moncae "
                          "GA's parents); it acts with --strategy moncae")}
    return [f"--{name.replace('_', '-')} has no effect {acts[name][1]}" for name in given
            if name in acts and not acts[name][0]]


def resolve_config(
    *, preset: str | None = None, config_file: str | Path | None = None, **overrides: Any
) -> SearchConfig:
    """Defaults < preset < config file < explicit overrides (None means 'not given'). The preset is
    `preset` (the --preset flag) or else the config file's own `preset` setting. A preset's
    settings that the settings given on top of it rule out give way to the defaults (see
    `ruled_out`): `--preset quick --strategy random` runs, it does not stop on the preset's
    `latents`."""
    from_file = read_toml(config_file) if config_file else {}
    given = {**from_file, **paths_as_text({k: python_number(v) for k, v in overrides.items() if v is not None})}
    check_types(given)  # the file's were checked naming the file; what is left: the overrides
    in_file = preset is None and from_file.get("preset") is not None
    if in_file:
        preset = from_file["preset"]
    settings: dict[str, Any] = {}
    if preset is not None:
        try:
            settings.update(load_preset(preset))
        except MoncaeError as err:
            if not in_file:
                raise
            raise MoncaeError(f"{err} (the `preset` set in {config_file})") from None
        settings["preset"] = preset
    given.pop("preset", None)  # the preset that applies, or none
    from_preset = set(settings) - set(given)
    settings.update(given)
    for name, rule in sorted(ruled_out(lambda s: settings.get(s, getattr(SearchConfig, s))).items()):
        if name not in from_preset:
            continue
        value, default = settings.pop(name), getattr(SearchConfig, name)
        if value != default:
            warnings.warn(MoncaeWarning(f"preset {preset}'s {name} = {value!r} does not apply ({rule.why}); "
                                        f"using {name} = {default!r}"), stacklevel=2)
    try:
        return SearchConfig(**_known(settings, "settings"))
    except TypeError as err:
        raise MoncaeError(f"invalid settings: {err}") from None
    except MoncaeError as err:  # a value out of range: say where it came from when the file gave it
        name = re.match(r"`(\w+)`", str(err))
        if name and name[1] in from_file and overrides.get(name[1]) is None:
            raise MoncaeError(f"{err} (in {config_file})") from None
        raise
