"""The MONCAE genome: a flat list of integer genes, DEvol-style, and its variation operators.

A genome is `max_blocks` convolutional blocks of `GENES_PER_BLOCK` genes each
(active, filters, kernel size, batch norm, activation, dropout, max-pool), then, only in a
space with `latent_sizes` (the `dense` space), one latent gene (0: the last conv map is the
bottleneck, as in the paper; i >= 1: a dense bottleneck of `latent_sizes[i - 1]` units after a
Flatten), then two hyperparameter genes (optimizer, learning rate). How a block with the pool gene
halves its map is the space's `downsample`: `pool` (the paper: Conv2D, then MaxPool 2x2) or
`strided` (one Conv2D with strides 2, no MaxPool). Every gene is an index into the
`GenomeSpace`'s choices, so the genome is a plain list of small integers that DEAP's list
operators and a CSV row can hold. No Keras here: decoding lives in `moncae.model.decode`.

All operators take an explicit `random.Random`; nothing touches the global RNG, so a seed
fixes every result.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from moncae.errors import MoncaeError

__all__ = [
    "BLOCK_FIELDS",
    "Block",
    "DEFAULT_MAX_FILTERS",
    "DENSE_LATENT_SIZES",
    "DEFAULT_OPTIMIZERS",
    "DOWNSAMPLINGS",
    "KNOWN_OPTIMIZERS",
    "GENES_PER_BLOCK",
    "Genome",
    "GenomeSpace",
    "Lineage",
    "check_input_shape",
    "crossover",
    "mutate",
    "pooled_size",
    "random_genome",
    "spread_latents",
]

BLOCK_FIELDS = ("active", "filters", "kernel_size", "batch_norm", "activation", "dropout", "pool")
GENES_PER_BLOCK = len(BLOCK_FIELDS)
HYPER_FIELDS = ("optimizer", "learning_rate")
LATENT_FIELD = "latent"
# The `dense` space's latent gene: a dense bottleneck of 2, 4, ..., 256 units (or none).
DENSE_LATENT_SIZES = tuple(2 ** i for i in range(1, 9))

# How a block with the pool gene halves its map: MaxPool 2x2 after its conv (the paper), or its
# conv with strides 2 (bench/dense_space.py --sampling: as good or better, and cheaper; README).
DOWNSAMPLINGS = ("pool", "strided")

# Names Keras 3 resolves with `keras.activations.get` / `keras.optimizers.get`; checked here
# so that a bad space fails when it is made, not hours later when a genome is decoded.
KNOWN_ACTIVATIONS = frozenset({
    "relu", "elu", "selu", "sigmoid", "tanh", "softplus", "softsign", "swish", "silu",
    "gelu", "linear", "leaky_relu", "relu6", "hard_sigmoid", "exponential", "mish",
})
KNOWN_OPTIMIZERS = frozenset({
    "adam", "rmsprop", "adagrad", "adadelta", "nadam", "sgd", "adamax", "adamw", "ftrl", "lion",
})
DEFAULT_OPTIMIZERS = ("adam", "rmsprop", "adagrad", "adadelta", "nadam", "sgd")
DEFAULT_MAX_FILTERS = 256  # the paper preset's value

# DEvol's schedule: up to max(MUTATIONS_MIN, generation // MUTATIONS_EVERY) resamples.
MUTATIONS_MIN = 3
MUTATIONS_EVERY = 4
# Chance that picking a gene of an inactive block switches the block on (DEvol: 1%).
SWITCH_ON_PROBABILITY = 0.01


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def _fail(field: str, rule: str, value: Any) -> MoncaeError:
    return MoncaeError(f"`{field}` {rule}. Received: {field}={value!r}")


def _as_tuple(value: Any, field: str) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise _fail(field, "must be a list of choices", value)
    if len(value) == 0:
        raise _fail(field, "must hold at least one choice", value)
    if len(set(value)) != len(value):
        raise _fail(field, "must not repeat a choice", value)
    return tuple(value)


def _as_int(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise _fail(field, "must be an integer", value)
    try:
        return operator.index(value)
    except TypeError:
        raise _fail(field, "must be an integer", value) from None


def pooled_size(n: int) -> int:
    """Side length after MaxPool 2x2 with 'same' padding: ceil(n / 2), so 7 -> 4."""
    return (n + 1) // 2


def check_input_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    """Validate an (height, width, channels) image shape and return it as ints."""
    try:
        shape = tuple(operator.index(d) for d in input_shape)
    except TypeError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise _fail("input_shape", "must be three positive integers (height, width, channels)",
                    tuple(input_shape) if isinstance(input_shape, Sequence) else input_shape)
    return shape  # type: ignore[return-value]


@dataclass(frozen=True)
class GenomeSpace:
    """The choices each gene indexes into; the search space of one run.

    Filters are powers of two from `min_filters` to `max_filters`; a filters gene `g`
    means `min_filters * 2**g`. `latent_sizes` empty (the paper's space) means no latent gene:
    the genome is exactly the paper's. Non-empty (e.g. `DENSE_LATENT_SIZES`) adds one gene
    after the blocks: 0 keeps the conv bottleneck, `i` picks a dense bottleneck of
    `latent_sizes[i - 1]` units. `downsample` (one of `DOWNSAMPLINGS`) is how a block whose
    pool gene is on halves its map: `pool` (the paper's MaxPool) or `strided` (a stride-2 conv).
    A block halves its map only while both sides are at least `min_pool_side`: 3, the MONCAE
    authors' code, so a map never shrinks below 2x2 (the paper's smallest bottleneck is 2x2x4);
    DEvol's is 5; 2 (down to 1x1) is the rule of moncae before 2026-12-07, and of a saved space
    without the field.
    """

    max_blocks: int = 6
    min_filters: int = 4
    max_filters: int = DEFAULT_MAX_FILTERS
    kernel_sizes: tuple[int, ...] = (3, 5, 7)
    activations: tuple[str, ...] = ("relu", "elu", "sigmoid", "tanh")
    dropout_rates: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
    optimizers: tuple[str, ...] = DEFAULT_OPTIMIZERS
    learning_rates: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
    latent_sizes: tuple[int, ...] = ()
    downsample: str = "pool"
    min_pool_side: int = 3

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "max_blocks", _as_int(self.max_blocks, "max_blocks"))
        if self.max_blocks < 1:
            raise _fail("max_blocks", "must be at least 1", self.max_blocks)
        for name in ("min_filters", "max_filters"):
            value = _as_int(getattr(self, name), name)
            if not _is_power_of_two(value):
                raise _fail(name, "must be a power of two (1, 2, 4, 8, ...)", value)
            set_(self, name, value)
        if self.max_filters < self.min_filters:
            raise _fail("max_filters", f"must be at least `min_filters` ({self.min_filters})",
                        self.max_filters)
        set_(self, "kernel_sizes", self._kernel_sizes())
        set_(self, "activations", self._names("activations", KNOWN_ACTIVATIONS))
        set_(self, "optimizers", self._names("optimizers", KNOWN_OPTIMIZERS))
        set_(self, "dropout_rates", self._floats("dropout_rates", 0.0, 1.0, closed_low=True))
        set_(self, "learning_rates", self._floats("learning_rates", 0.0, math.inf))
        set_(self, "latent_sizes", self._latent_sizes())
        if self.downsample not in DOWNSAMPLINGS:
            raise _fail("downsample", f"must be one of {', '.join(DOWNSAMPLINGS)}", self.downsample)
        set_(self, "min_pool_side", _as_int(self.min_pool_side, "min_pool_side"))
        if self.min_pool_side < 2:
            raise _fail("min_pool_side", "must be at least 2 (a 1-pixel side cannot be halved)",
                        self.min_pool_side)

    def _kernel_sizes(self) -> tuple[int, ...]:
        sizes = tuple(_as_int(k, "kernel_sizes") for k in _as_tuple(self.kernel_sizes,
                                                                     "kernel_sizes"))
        if min(sizes) < 1:
            raise _fail("kernel_sizes", "must be positive integers", self.kernel_sizes)
        return sizes

    def _latent_sizes(self) -> tuple[int, ...]:
        raw = self.latent_sizes
        if isinstance(raw, Sequence) and not isinstance(raw, (str, bytes)) and len(raw) == 0:
            return ()  # the paper's space: no latent gene
        sizes = tuple(_as_int(u, "latent_sizes") for u in _as_tuple(raw, "latent_sizes"))
        if min(sizes) < 1:
            raise _fail("latent_sizes", "must be positive integers", raw)
        return sizes

    def _names(self, field: str, known: frozenset[str]) -> tuple[str, ...]:
        names = _as_tuple(getattr(self, field), field)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise _fail(field, f"must be names from {sorted(known)}", getattr(self, field))
        return names

    def _floats(self, field: str, low: float, high: float, closed_low: bool = False
                ) -> tuple[float, ...]:
        raw = _as_tuple(getattr(self, field), field)
        try:
            values = tuple(float(v) for v in raw)
        except (TypeError, ValueError):
            raise _fail(field, "must be numbers", raw) from None
        ok = all((low <= v if closed_low else low < v) and v < high for v in values)
        if not ok:
            bracket = "[" if closed_low else "("
            raise _fail(field, f"must lie in {bracket}{low}, {high})", raw)
        return values

    @property
    def n_filter_choices(self) -> int:
        return int(math.log2(self.max_filters // self.min_filters)) + 1

    @property
    def has_latent_gene(self) -> bool:
        return bool(self.latent_sizes)

    @property
    def n_block_genes(self) -> int:
        return GENES_PER_BLOCK * self.max_blocks

    @property
    def n_genes(self) -> int:
        return self.n_block_genes + int(self.has_latent_gene) + len(HYPER_FIELDS)

    def block_cardinalities(self) -> tuple[int, ...]:
        """How many values each gene of one block can take, in `BLOCK_FIELDS` order."""
        return (2, self.n_filter_choices, len(self.kernel_sizes), 2, len(self.activations),
                len(self.dropout_rates), 2)

    def cardinalities(self) -> tuple[int, ...]:
        """How many values each gene of a whole genome can take (gene i is in range(card[i]))."""
        latent = (1 + len(self.latent_sizes),) if self.has_latent_gene else ()
        hyper = (len(self.optimizers), len(self.learning_rates))
        return self.block_cardinalities() * self.max_blocks + latent + hyper

    def gene_names(self) -> list[str]:
        """Column names for the flat gene list, e.g. `b0_active`, ..., [`latent`,] `learning_rate`."""
        names = [f"b{i}_{f}" for i in range(self.max_blocks) for f in BLOCK_FIELDS]
        return names + ([LATENT_FIELD] if self.has_latent_gene else []) + list(HYPER_FIELDS)

    def to_config(self) -> dict[str, Any]:
        """A JSON-ready dict; `from_config` of it gives an equal space.

        An empty `latent_sizes` (the paper's space), `downsample = "pool"` and `min_pool_side = 2`
        are left out, so such spaces serialise exactly as they did before those fields existed.
        """
        config = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if (field.name, value) in (("latent_sizes", ()), ("downsample", "pool"), ("min_pool_side", 2)):
                continue
            config[field.name] = list(value) if isinstance(value, tuple) else value
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> GenomeSpace:
        """Rebuild a space from `to_config()`; missing keys take their defaults, but a missing
        `min_pool_side` is 2 (a space saved before the field: its genomes decode as they did)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise _fail("config", f"has unknown keys {unknown}; expected some of {sorted(known)}",
                        dict(config))
        return cls(**{"min_pool_side": 2, **config})


@dataclass(frozen=True)
class Block:
    """One active encoder block as built: filters already capped by the previous block. With
    `pool`, it halves its map: by MaxPool 2x2 after its conv, or with `strided` by a stride-2 conv."""

    filters: int
    kernel_size: int
    batch_norm: bool
    activation: str
    dropout: float
    pool: bool
    strided: bool = False

    def describe(self) -> str:
        """Short label such as `C32k3-relu-bn-drop0.2-pool` (`-stride2`: a strided block)."""
        parts = [f"C{self.filters}k{self.kernel_size}", self.activation]
        if self.batch_norm:
            parts.append("bn")
        if self.dropout > 0:
            parts.append(f"drop{self.dropout:g}")
        if self.pool:
            parts.append("stride2" if self.strided else "pool")
        return "-".join(parts)


def _format_lr(lr: float) -> str:
    """1e-3 rather than 0.001: learning rates read best in scientific notation."""
    mantissa, exponent = f"{lr:e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def _gene_list(value: Any, field: str) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise _fail(field, "must be a list of integers", value)
    return tuple(_as_int(g, field) for g in value)


@dataclass(frozen=True)
class Lineage:
    """Where a crossover child's genes came from: `genes[:cut]` from `parents[0]`, `genes[cut:]`
    from `parents[1]`, then mutation may have changed a few of them.

    The parents are kept as gene tuples (same space as the child), not as genomes, so a lineage
    is one generation deep: a child never drags its ancestors' lineages along.
    """

    parents: tuple[tuple[int, ...], tuple[int, ...]]
    cut: int

    def __post_init__(self) -> None:
        parents = self.parents
        if isinstance(parents, (str, bytes)) or not isinstance(parents, Sequence) or len(parents) != 2:
            raise _fail("lineage.parents", "must be two gene lists", parents)
        a, b = (_gene_list(p, "lineage.parents") for p in parents)
        if len(a) != len(b) or len(a) < 2:
            raise _fail("lineage.parents", "must be two gene lists of one length (>= 2)", parents)
        object.__setattr__(self, "parents", (a, b))
        cut = _as_int(self.cut, "lineage.cut")
        if not 1 <= cut < len(a):
            raise _fail("lineage.cut", f"must be in 1..{len(a) - 1}", cut)
        object.__setattr__(self, "cut", cut)

    def parent_of_gene(self, index: int) -> int:
        """0 when gene `index` came from `parents[0]`, 1 when from `parents[1]`."""
        return 0 if index < self.cut else 1

    def parent_genomes(self, space: GenomeSpace) -> tuple[Genome, Genome]:
        """The two parents as genomes of `space` (the child's): their `key_for(input_shape)`
        names their trainings."""
        return Genome(self.parents[0], space), Genome(self.parents[1], space)

    def to_config(self) -> dict[str, Any]:
        return {"parents": [list(self.parents[0]), list(self.parents[1])], "cut": self.cut}

    @classmethod
    def from_config(cls, config: Any) -> Lineage:
        if not isinstance(config, Mapping) or set(config) != {"parents", "cut"}:
            raise _fail("lineage", "must be a dict with `parents` (two gene lists) and `cut`", config)
        return cls(config["parents"], config["cut"])


@dataclass(frozen=True)
class Genome:
    """An immutable genome: integer genes indexing into `space`.

    Equality and hashing use (genes, space). Use `key` (or `key_for(input_shape)`) to
    recognise genomes that build the same network. `lineage` (set by `crossover`, kept by
    `mutate`, None for random genomes) records the parents a child came from, for weight
    inheritance; it takes no part in equality, hashing, `key` or `repr`: two genomes with equal
    genes are the same network, whatever their history.
    """

    genes: tuple[int, ...]
    space: GenomeSpace = dataclasses.field(default_factory=GenomeSpace)
    lineage: Lineage | None = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.space, GenomeSpace):
            raise _fail("space", "must be a GenomeSpace", self.space)
        if isinstance(self.genes, (str, bytes)) or not isinstance(self.genes, Sequence):
            raise _fail("genes", "must be a list of integers", self.genes)
        genes = tuple(_as_int(g, "genes") for g in self.genes)
        object.__setattr__(self, "genes", genes)
        if len(genes) != self.space.n_genes:
            latent = " + 1 latent" if self.space.has_latent_gene else ""
            raise _fail("genes", f"must hold {self.space.n_genes} genes for this space "
                        f"({self.space.max_blocks} blocks x {GENES_PER_BLOCK}{latent} + "
                        f"{len(HYPER_FIELDS)}), not {len(genes)}", list(genes))
        for i, (gene, card) in enumerate(zip(genes, self.space.cardinalities(), strict=True)):
            if not 0 <= gene < card:
                name = self.space.gene_names()[i]
                raise _fail("genes", f"gene {i} (`{name}`) must be in 0..{card - 1}", list(genes))
        if genes[0] != 1:
            raise _fail("genes", "must keep the first block active (gene 0 == 1)", list(genes))
        if self.lineage is not None:
            if not isinstance(self.lineage, Lineage):
                raise _fail("lineage", "must be a Lineage or None", self.lineage)
            if len(self.lineage.parents[0]) != len(genes):
                raise _fail("lineage.parents", f"must hold {len(genes)} genes each, as the child",
                            self.lineage.to_config())

    def parents(self) -> tuple[Genome, Genome] | None:
        """The two parent genomes of a crossover child (same space), or None (random genome)."""
        return None if self.lineage is None else self.lineage.parent_genomes(self.space)

    def _block_genes(self, i: int) -> tuple[int, ...]:
        start = i * GENES_PER_BLOCK
        return self.genes[start:start + GENES_PER_BLOCK]

    def is_active(self, i: int) -> bool:
        """Whether block `i` is switched on (block 0 always is)."""
        return self._block_genes(i)[0] == 1

    @property
    def blocks(self) -> list[Block]:
        """Active blocks in order; filters never widen (min with the previous block)."""
        space, out = self.space, []
        strided = space.downsample == "strided"
        previous = space.max_filters
        for i in range(space.max_blocks):
            active, filt, kernel, bn, act, drop, pool = self._block_genes(i)
            if not active:
                continue
            filters = min(space.min_filters * 2 ** filt, previous)
            previous = filters
            out.append(Block(filters, space.kernel_sizes[kernel], bool(bn),
                             space.activations[act], space.dropout_rates[drop], bool(pool),
                             strided and bool(pool)))
        return out

    def blocks_for(self, input_shape: Sequence[int]) -> list[Block]:
        """`blocks` with `pool` turned off where a side of the map is below the space's
        `min_pool_side`.

        This is what the decoder builds: a block halves its map (MaxPool or stride 2) only while
        both sides are >= `min_pool_side` (3: never below 2x2).
        """
        height, width, _ = check_input_shape(input_shape)
        smallest = self.space.min_pool_side
        out = []
        for block in self.blocks:
            pool = block.pool and height >= smallest and width >= smallest
            if pool:
                height, width = pooled_size(height), pooled_size(width)
            out.append(dataclasses.replace(block, pool=pool, strided=block.strided and pool))
        return out

    @property
    def latent_units(self) -> int | None:
        """Units of the dense bottleneck, or None when the last conv map is the bottleneck."""
        if not self.space.has_latent_gene:
            return None
        gene = self.genes[self.space.n_block_genes]
        return self.space.latent_sizes[gene - 1] if gene else None

    @property
    def optimizer(self) -> str:
        return self.space.optimizers[self.genes[-2]]

    @property
    def learning_rate(self) -> float:
        return self.space.learning_rates[self.genes[-1]]

    def _key_of(self, blocks: list[Block]) -> str:
        parts = [f"{b.filters},{b.kernel_size},{int(b.batch_norm)},{b.activation},"
                 f"{b.dropout!r},{'s' if b.strided else int(b.pool)}" for b in blocks]
        latent = [] if self.latent_units is None else [f"dense{self.latent_units}"]
        return "|".join([*parts, *latent, self.optimizer, repr(self.learning_rate)])

    @property
    def key(self) -> str:
        """Canonical string of the network this genome builds, for any input shape.

        Ignores inactive blocks' genes and filters genes capped by an earlier block, so
        genomes that differ only there share a key; it does not depend on the space (a conv
        bottleneck adds nothing to the key, so a `dense`-space genome whose latent gene is 0
        shares its key with the same paper-space genome; a dense one adds `dense<units>`; a
        block that halves its map by a strided conv shows `s` where a pooled one shows `1`).
        Pooling that an input's size makes absent is ignored only by `key_for`.
        """
        return self._key_of(self.blocks)

    def key_for(self, input_shape: Sequence[int]) -> str:
        """`key` that also ignores pool genes absent for this input (map already 1 wide)."""
        return self._key_of(self.blocks_for(input_shape))

    def describe(self, input_shape: Sequence[int] | None = None) -> str:
        """Readable summary, e.g. `C32k3-relu-bn-pool | C16k5-elu | adam lr=1e-3`.

        With `input_shape`, shows only the pooling that actually happens for that input. A
        dense bottleneck shows as `dense16` after the blocks.
        """
        blocks = self.blocks if input_shape is None else self.blocks_for(input_shape)
        latent = [] if self.latent_units is None else [f"dense{self.latent_units}"]
        return " | ".join([*(b.describe() for b in blocks), *latent, self.describe_training()])

    def describe_training(self) -> str:
        """The hyperparameter part of `describe()`, e.g. `adam lr=1e-3`."""
        return f"{self.optimizer} lr={_format_lr(self.learning_rate)}"

    def to_config(self) -> dict[str, Any]:
        """JSON-ready dict holding the genes and the space, and `lineage` only when there is
        one (so a genome without one serialises exactly as before lineage existed)."""
        config = {"genes": list(self.genes), "space": self.space.to_config()}
        if self.lineage is not None:
            config["lineage"] = self.lineage.to_config()
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Genome:
        """Rebuild a genome (and its lineage, if saved) from `to_config()`."""
        if not isinstance(config, Mapping) or "genes" not in config:
            raise _fail("config", "must be a dict with `genes` (and optionally `space`)", config)
        unknown = sorted(set(config) - {"genes", "space", "lineage"})
        if unknown:
            raise _fail("config", f"has unknown keys {unknown}", dict(config))
        space = GenomeSpace.from_config(config.get("space", {}))
        lineage = config.get("lineage")
        genome = cls(tuple(config["genes"]), space,
                     None if lineage is None else Lineage.from_config(lineage))
        if genome.lineage is not None:
            genome.parents()  # the parents must be valid genomes of this space too
        return genome


def random_genome(space: GenomeSpace, rng: random.Random) -> Genome:
    """Draw every gene uniformly; block 0 is then switched on (DEvol's `generate`)."""
    genes = [rng.randrange(card) for card in space.cardinalities()]
    genes[0] = 1
    return Genome(tuple(genes), space)


def spread_latents(genomes: Sequence[Genome], space: GenomeSpace, rng: random.Random, *,
                   conv: bool = False) -> list[Genome]:
    """`genomes` with their dense bottleneck sizes spread: genome i's latent gene becomes the
    i-th of a sequence that holds every dense size (genes 1..len(latent_sizes)) once in a random
    order, then once more in a fresh random order, and so on. Every other gene, and the order of
    the genomes, is kept. So n genomes cover min(n, len(latent_sizes)) latent sizes, each at most
    ceil(n / len(latent_sizes)) times, where independent draws leave sizes out (8 draws from 9
    values hold 4.9 of the 8 dense sizes on average). The conv bottleneck (gene 0) is among
    them only with `conv` (generation 0 leaves it out: its latent size depends on the blocks and
    the input, not on this gene; the children of `latents = "spread"` include it, so a body that
    reconstructs well keeps being tried without a dense bottleneck). Draws `rng.shuffle` once per
    cycle of sizes."""
    if not space.has_latent_gene:
        raise _fail("space", "has no latent gene to spread (use the dense space)", space)
    index, sizes, order = space.n_block_genes, len(space.latent_sizes), []
    out = []
    for genome in genomes:
        if genome.space != space:
            raise _fail("genomes", "must all be of the space given", genome.space)
        if not order:
            order = list(range(0 if conv else 1, sizes + 1))
            rng.shuffle(order)
        genes = list(genome.genes)
        genes[index] = order.pop(0)
        out.append(Genome(tuple(genes), space, genome.lineage))
    return out


def mutation_count(generation: int, rng: random.Random) -> int:
    """How many genes to resample: 1..max(3, generation // 4), growing with the generation.

    DEvol draws 0..max(3, g // 4) - 1; we draw at least one so a mutated child is never a
    plain copy by construction.
    """
    upper = max(MUTATIONS_MIN, generation // MUTATIONS_EVERY)
    return rng.randint(1, upper)


def mutate(genome: Genome, space: GenomeSpace, rng: random.Random, generation: int) -> Genome:
    """DEvol-style mutation: resample a few random genes (never gene 0).

    A gene of an inactive block is not resampled; instead the block is switched on with
    probability `SWITCH_ON_PROBABILITY`. The latent gene (if any) and the hyperparameter genes
    are resampled uniformly. Returns a new genome with `genome`'s lineage (the parents it came
    from; mutated genes are told apart by comparing with them); `genome` is unchanged.
    """
    if genome.space != space:
        raise _fail("space", "must be the space the genome was made in", space)
    if generation < 0:
        raise _fail("generation", "must be >= 0", generation)
    genes = list(genome.genes)
    cards = space.cardinalities()
    n_block_genes = space.n_block_genes
    for _ in range(mutation_count(generation, rng)):
        index = rng.randrange(1, len(genes))
        if index >= n_block_genes:
            genes[index] = rng.randrange(cards[index])
            continue
        active_index = index - index % GENES_PER_BLOCK
        if genes[active_index]:
            genes[index] = rng.randrange(cards[index])
        elif rng.random() < SWITCH_ON_PROBABILITY:
            genes[active_index] = 1
    return Genome(tuple(genes), space, genome.lineage)


def crossover(a: Genome, b: Genome, rng: random.Random) -> tuple[Genome, Genome]:
    """Single-point crossover on the gene lists: (a[:p] + b[p:], b[:p] + a[p:]).

    The cut `p` is in 1..n-1 (as DEAP's `cxOnePoint`), so each child keeps its own parent's
    gene 0 and block 0 stays active. Own code rather than `cxOnePoint` because that one
    draws from the global `random` module. Each child records its `Lineage`: child_a has
    parents (a, b), child_b (b, a), both with cut `p`, so `genes[:p]` come from `parents[0]`.
    """
    if a.space != b.space:
        raise _fail("b", "must share the first genome's space to cross over", b.space)
    n = len(a.genes)
    if n < 2:
        return a, b
    cut = rng.randint(1, n - 1)
    child_a = Genome(a.genes[:cut] + b.genes[cut:], a.space, Lineage((a.genes, b.genes), cut))
    child_b = Genome(b.genes[:cut] + a.genes[cut:], a.space, Lineage((b.genes, a.genes), cut))
    return child_a, child_b
