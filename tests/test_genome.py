"""Genome space, genome value, and the variation operators (no Keras)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from moncae.errors import MoncaeError
from moncae.method.genome import (
    DENSE_LATENT_SIZES,
    GENES_PER_BLOCK,
    Block,
    Genome,
    GenomeSpace,
    crossover,
    mutate,
    mutation_count,
    random_genome,
)

SPACE = GenomeSpace(max_filters=64)
DENSE = GenomeSpace(max_filters=64, latent_sizes=DENSE_LATENT_SIZES)  # the `dense` space
N_BLOCK_GENES = GENES_PER_BLOCK * SPACE.max_blocks


def block_genes(active=1, filters=0, kernel=0, bn=0, act=0, drop=0, pool=0) -> list[int]:
    return [active, filters, kernel, bn, act, drop, pool]


def make_genome(blocks: list[list[int]], optimizer=0, lr=0, space=SPACE) -> Genome:
    """Genome from up to max_blocks block gene lists; missing blocks are inactive zeros."""
    padding = [block_genes(active=0)] * (space.max_blocks - len(blocks))
    genes = [g for block in blocks + padding for g in block] + [optimizer, lr]
    return Genome(tuple(genes), space)


@st.composite
def genomes(draw, space: GenomeSpace = SPACE) -> Genome:
    """Any valid genome, gene by gene (a superset of what the operators produce)."""
    genes = [draw(st.integers(0, card - 1)) for card in space.cardinalities()]
    genes[0] = 1
    return Genome(tuple(genes), space)


seeds = st.integers(0, 2**32 - 1)


# --- GenomeSpace -------------------------------------------------------------------------

def test_default_space_matches_the_paper_search_space():
    assert SPACE.n_filter_choices == 5  # 4, 8, 16, 32, 64
    assert SPACE.n_genes == 6 * 7 + 2
    names = SPACE.gene_names()
    assert len(names) == SPACE.n_genes == len(set(names))
    assert names[:7] == ["b0_active", "b0_filters", "b0_kernel_size", "b0_batch_norm",
                         "b0_activation", "b0_dropout", "b0_pool"]
    assert names[-2:] == ["optimizer", "learning_rate"]


@pytest.mark.parametrize("field, value", [
    ("max_blocks", 0),
    ("max_blocks", 2.5),
    ("min_filters", 6),
    ("max_filters", 48),
    ("max_filters", 2),
    ("kernel_sizes", ()),
    ("kernel_sizes", (3, 3)),
    ("kernel_sizes", (0, 3)),
    ("activations", ("relu", "nope")),
    ("activations", "relu"),
    ("dropout_rates", (0.0, 1.0)),
    ("dropout_rates", (-0.1,)),
    ("optimizers", ("adam", "adamm")),
    ("learning_rates", (0.0,)),
    ("learning_rates", ("fast",)),
    ("downsample", "avgpool"),
])
def test_space_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(MoncaeError, match=rf"`{field}`.*Received: {field}="):
        GenomeSpace(**{field: value})


def test_space_config_round_trips_through_json():
    space = GenomeSpace(max_blocks=3, max_filters=32, kernel_sizes=(3,), activations=("relu",))
    again = GenomeSpace.from_config(json.loads(json.dumps(space.to_config())))
    assert again == space
    assert hash(again) == hash(space)
    assert GenomeSpace.from_config(json.loads(json.dumps(SPACE.to_config()))) == SPACE


def test_space_from_config_rejects_unknown_keys():
    with pytest.raises(MoncaeError, match="unknown keys.*max_layers"):
        GenomeSpace.from_config({"max_layers": 3})


# --- Genome value ------------------------------------------------------------------------

def test_genome_rejects_wrong_length_range_and_inactive_first_block():
    good = list(random_genome(SPACE, random.Random(0)).genes)
    with pytest.raises(MoncaeError, match=r"must hold 44 genes.*Received: genes="):
        Genome(tuple(good[:-1]), SPACE)
    too_big = good.copy()
    too_big[1] = SPACE.n_filter_choices
    with pytest.raises(MoncaeError, match=r"gene 1 \(`b0_filters`\)"):
        Genome(tuple(too_big), SPACE)
    with pytest.raises(MoncaeError, match="first block active"):
        Genome(tuple([0] + good[1:]), SPACE)
    with pytest.raises(MoncaeError, match="must be an integer"):
        Genome(tuple([1.5] + good[1:]), SPACE)


def test_genome_is_immutable_and_hashable():
    genome = random_genome(SPACE, random.Random(1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        genome.genes = ()  # type: ignore[misc]
    twin = Genome(list(genome.genes), SPACE)  # a list is accepted and stored as a tuple
    assert isinstance(twin.genes, tuple)
    assert twin == genome and hash(twin) == hash(genome)
    assert len({genome, twin}) == 1
    other_space = GenomeSpace(learning_rates=(1e-4, 3e-4, 1e-3, 3e-3, 2e-2))
    assert Genome(genome.genes, other_space) != genome  # equality is genes + space


def test_blocks_skip_inactive_ones_and_never_widen():
    genome = make_genome([
        block_genes(filters=3, kernel=0, bn=1, act=0, pool=1),         # 32
        block_genes(active=0, filters=0),                               # off
        block_genes(filters=4, kernel=1, act=1, drop=2, pool=1),        # 64 -> capped to 32
        block_genes(filters=0, kernel=2, act=3),                        # 4
        block_genes(filters=2),                                         # 16 -> capped to 4
    ], optimizer=0, lr=2)
    assert genome.blocks == [
        Block(32, 3, True, "relu", 0.0, True),
        Block(32, 5, False, "elu", 0.2, True),
        Block(4, 7, False, "tanh", 0.0, False),
        Block(4, 3, False, "relu", 0.0, False),
    ]
    assert genome.optimizer == "adam"
    assert genome.learning_rate == 1e-3


def test_describe_reads_like_the_issue_example():
    genome = make_genome([
        block_genes(filters=3, kernel=0, bn=1, act=0, pool=1),
        block_genes(filters=2, kernel=1, act=1, pool=1),
        block_genes(filters=0, kernel=0, act=0),
    ], optimizer=0, lr=2)
    assert genome.describe() == "C32k3-relu-bn-pool | C16k5-elu-pool | C4k3-relu | adam lr=1e-3"
    dropout = make_genome([block_genes(filters=1, drop=3)], optimizer=5, lr=1)
    assert dropout.describe() == "C8k3-relu-drop0.3 | sgd lr=3e-4"


@settings(max_examples=60, deadline=None)
@given(genomes())
def test_genome_config_round_trips_through_json(genome):
    again = Genome.from_config(json.loads(json.dumps(genome.to_config())))
    assert again == genome
    assert again.key == genome.key


def test_genome_from_config_errors_are_user_errors():
    with pytest.raises(MoncaeError, match="genes"):
        Genome.from_config({"space": {}})
    with pytest.raises(MoncaeError, match="unknown keys"):
        Genome.from_config({"genes": [1] + [0] * 43, "fitness": 1})


# --- canonical key -----------------------------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(genomes(), seeds)
def test_key_ignores_genes_of_inactive_blocks(genome, seed):
    rng = random.Random(seed)
    cards = SPACE.cardinalities()
    genes = list(genome.genes)
    for b in range(SPACE.max_blocks):
        start = b * GENES_PER_BLOCK
        if not genes[start]:
            for i in range(start + 1, start + GENES_PER_BLOCK):
                genes[i] = rng.randrange(cards[i])
    other = Genome(tuple(genes), SPACE)
    assert other.key == genome.key
    assert other.key_for((28, 28, 1)) == genome.key_for((28, 28, 1))


def test_key_ignores_capped_filters_and_absent_pooling_but_not_real_changes():
    base = [block_genes(filters=1, pool=1)] * 4
    genome = make_genome(base)
    # A later block asking for more filters than the previous one is capped: same network.
    wider = make_genome(base[:3] + [block_genes(filters=4, pool=1)])
    assert wider.key == genome.key
    # On 8x8 the maps go 8 -> 4 -> 2 -> 1, so the fourth pool gene is absent.
    no_last_pool = make_genome(base[:3] + [block_genes(filters=1, pool=0)])
    assert no_last_pool.key != genome.key  # shape-free key: it could matter for 32x32
    assert no_last_pool.key_for((8, 8, 1)) == genome.key_for((8, 8, 1))
    assert no_last_pool.key_for((32, 32, 3)) != genome.key_for((32, 32, 3))
    # Any gene of an active block that changes the network changes the key.
    for index in (2, 3, 4, 5, 6, N_BLOCK_GENES, N_BLOCK_GENES + 1):
        genes = list(genome.genes)
        genes[index] = 1 - genes[index] if genes[index] <= 1 else 0
        assert Genome(tuple(genes), SPACE).key != genome.key


def test_key_does_not_depend_on_the_space_only_on_the_network():
    small = GenomeSpace(max_blocks=2)
    a = Genome((1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2), small)
    b = make_genome([block_genes(filters=1, pool=1)], optimizer=0, lr=2)
    assert a != b
    assert a.key == b.key


def test_strided_downsampling_is_the_same_genes_but_another_network():
    strided = GenomeSpace(max_blocks=2, downsample="strided")
    genes = (1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 2)  # the first block halves its map
    pooled, halved_by_stride = Genome(genes, GenomeSpace(max_blocks=2)), Genome(genes, strided)
    assert [b.strided for b in halved_by_stride.blocks] == [True, False]
    assert pooled.key.replace(",1|", ",s|", 1) == halved_by_stride.key != pooled.key
    assert halved_by_stride.describe() == "C8k3-relu-stride2 | C8k3-relu | adam lr=1e-3"
    # a block that cannot halve (its map is 1 wide) is neither pooled nor strided: the same network
    assert Genome(genes, strided).key_for((1, 9, 1)) == pooled.key_for((1, 9, 1))
    assert "downsample" not in GenomeSpace().to_config()  # pooled spaces serialise as before
    assert GenomeSpace.from_config(json.loads(json.dumps(strided.to_config()))) == strided


# --- operators ---------------------------------------------------------------------------

@settings(max_examples=50, deadline=None)
@given(seeds, st.integers(0, 60))
def test_operators_are_deterministic_and_leave_the_global_rng_alone(seed, generation):
    def run(global_seed: int):
        random.seed(global_seed)
        before = random.getstate()
        rng = random.Random(seed)
        a, b = random_genome(SPACE, rng), random_genome(SPACE, rng)
        c, d = crossover(a, b, rng)
        out = (a, b, c, d, mutate(c, SPACE, rng, generation))
        assert random.getstate() == before
        return out

    assert run(1) == run(2)


@settings(max_examples=100, deadline=None)
@given(genomes(), seeds, st.integers(0, 80))
@example(Genome(tuple([1] + [0] * 43), SPACE), 242, 32)  # switches block 1 on, then resamples it
@example(Genome(tuple([1] + [0] * 12 + [1] + [0] * 30), SPACE), 265333, 32)  # on, resampled, off
def test_mutate_resamples_a_few_active_genes_and_keeps_the_parent(genome, seed, generation):
    child = mutate(genome, SPACE, random.Random(seed), generation)
    assert isinstance(child, Genome) and child.space == SPACE
    assert child.genes[0] == 1
    changed = [i for i, (p, c) in enumerate(zip(genome.genes, child.genes, strict=True))
               if p != c]
    assert len(changed) <= max(3, generation // 4)
    for i in changed:
        if i < N_BLOCK_GENES:
            start = i - i % GENES_PER_BLOCK
            # An inactive block's genes are never resampled unless the same mutation first
            # switched the block on (a later pick of one of its genes then resamples it; a
            # later pick of its `active` gene may switch it off again: then the change is in
            # a block off in both, invisible in the network and its key).
            if genome.genes[start] == 0 and child.genes[start] == 0:
                restored = list(child.genes)
                restored[start:start + GENES_PER_BLOCK] = genome.genes[start:start + GENES_PER_BLOCK]
                assert Genome(tuple(restored), SPACE).key == child.key


def test_mutation_count_grows_with_the_generation():
    rng = random.Random(0)
    early = {mutation_count(0, rng) for _ in range(500)}
    late = {mutation_count(40, rng) for _ in range(500)}
    assert early == {1, 2, 3}
    assert late == set(range(1, 11))


def test_inactive_blocks_switch_on_rarely():
    genome = make_genome([block_genes()])
    rng = random.Random(0)
    trials = 3000
    switched = sum(len(mutate(genome, SPACE, rng, 0).blocks) > 1 for _ in range(trials))
    assert 0 < switched < 0.05 * trials


def test_mutate_rejects_another_space_and_negative_generation():
    genome = random_genome(SPACE, random.Random(0))
    with pytest.raises(MoncaeError, match="space"):
        mutate(genome, GenomeSpace(max_blocks=5), random.Random(0), 0)
    with pytest.raises(MoncaeError, match="generation"):
        mutate(genome, SPACE, random.Random(0), -1)


@settings(max_examples=100, deadline=None)
@given(genomes(), genomes(), seeds)
def test_crossover_is_single_point_and_keeps_block_zero(a, b, seed):
    c, d = crossover(a, b, random.Random(seed))
    n = SPACE.n_genes
    cuts = [p for p in range(1, n) if c.genes == a.genes[:p] + b.genes[p:]
            and d.genes == b.genes[:p] + a.genes[p:]]
    assert cuts
    assert c.genes[0] == d.genes[0] == 1


def test_crossover_cut_covers_every_position():
    a = Genome(tuple([1] + [0] * (SPACE.n_genes - 1)), SPACE)
    b = Genome(tuple([1] * SPACE.n_genes), SPACE)
    rng = random.Random(0)
    cuts = {sum(crossover(a, b, rng)[0].genes[1:]) for _ in range(2000)}
    # child = a[:p] + b[p:] has n - p ones after gene 0: p runs over 1..n-1.
    assert cuts == set(range(1, SPACE.n_genes))


def test_crossover_rejects_genomes_from_different_spaces():
    a = random_genome(SPACE, random.Random(0))
    b = random_genome(GenomeSpace(max_blocks=5), random.Random(0))
    with pytest.raises(MoncaeError, match="space"):
        crossover(a, b, random.Random(0))


def test_random_genomes_cover_the_space():
    rng = random.Random(3)
    population = [random_genome(SPACE, rng) for _ in range(300)]
    assert all(g.genes[0] == 1 for g in population)
    for i, card in enumerate(SPACE.cardinalities()):
        values = {g.genes[i] for g in population}
        assert values == ({1} if i == 0 else set(range(card)))


# --- the paper space is unchanged; the dense space's latent gene ---------------------------

def test_paper_space_draws_are_pinned():
    """Genes, keys and RNG draws of the paper space, recorded before the latent gene existed:
    `space = "paper"` runs must stay bit-identical."""
    rng = random.Random(2021)
    pop = [random_genome(SPACE, rng) for _ in range(20)]
    for generation in range(1, 30):
        a, _ = crossover(pop[rng.randrange(20)], pop[rng.randrange(20)], rng)
        pop.append(mutate(a, SPACE, rng, generation))
    blob = "\n".join(str(g.genes) + g.key_for((28, 28, 1)) for g in pop)
    assert pop[0].key_for((28, 28, 1)) == \
        "64,5,0,relu,0.3,1|32,7,0,elu,0.1,1|32,3,0,tanh,0.3,1|rmsprop|0.001"
    assert hashlib.sha256(blob.encode()).hexdigest() == \
        "0ea7062388b65611d05ab87f37172fca9c28171f360f82b8173e5ce9064139e0"
    assert rng.random() == 0.22461277465223062


def test_paper_space_has_no_latent_gene_and_serialises_as_before():
    assert SPACE.latent_sizes == () and not SPACE.has_latent_gene
    assert "latent" not in SPACE.gene_names() and SPACE.n_genes == 44
    assert "latent_sizes" not in SPACE.to_config()
    assert random_genome(SPACE, random.Random(0)).latent_units is None


def test_dense_space_adds_one_latent_gene_before_the_hyperparameters():
    assert DENSE.latent_sizes == (2, 4, 8, 16, 32, 64, 128, 256)
    assert DENSE.n_genes == SPACE.n_genes + 1
    assert DENSE.gene_names() == SPACE.gene_names()[:-2] + ["latent", "optimizer", "learning_rate"]
    assert DENSE.cardinalities() == SPACE.cardinalities()[:-2] + (9,) + SPACE.cardinalities()[-2:]
    with pytest.raises(MoncaeError, match=r"must hold 45 genes .*6 blocks x 7 \+ 1 latent \+ 2"):
        Genome((1,) * 44, DENSE)
    genes = list(make_genome([block_genes()]).genes)
    genes[N_BLOCK_GENES:N_BLOCK_GENES] = [9]
    with pytest.raises(MoncaeError, match=r"gene 42 \(`latent`\) must be in 0..8"):
        Genome(tuple(genes), DENSE)


@pytest.mark.parametrize("value", [(0,), (4, 4), "16", (2.5,), 16])
def test_space_rejects_bad_latent_sizes(value):
    with pytest.raises(MoncaeError, match=r"`latent_sizes`.*Received: latent_sizes="):
        GenomeSpace(latent_sizes=value)


def dense_genome(blocks: list[list[int]], latent: int, optimizer=0, lr=0) -> Genome:
    """A `DENSE` genome: blocks as `make_genome`, then the latent gene (0 = conv bottleneck)."""
    genes = list(make_genome(blocks, optimizer, lr).genes)
    genes[N_BLOCK_GENES:N_BLOCK_GENES] = [latent]
    return Genome(tuple(genes), DENSE)


def test_latent_gene_reads_as_units_and_shows_in_key_and_description():
    blocks = [block_genes(filters=3, pool=1), block_genes(filters=3, pool=1)]
    conv, dense16 = dense_genome(blocks, 0, lr=2), dense_genome(blocks, 4, lr=2)
    assert conv.latent_units is None and dense16.latent_units == 16
    assert dense_genome(blocks, 8).latent_units == 256
    # A conv bottleneck adds nothing to the key: the same network as the paper-space genome.
    paper = make_genome(blocks, lr=2)
    assert conv.key == paper.key and conv.key_for((28, 28, 1)) == paper.key_for((28, 28, 1))
    assert conv != paper  # different spaces, one network
    assert dense16.key == "32,3,0,relu,0.0,1|32,3,0,relu,0.0,1|dense16|adam|0.001"
    assert dense16.key_for((9, 31, 2)) == dense16.key
    assert len({dense_genome(blocks, i).key for i in range(9)}) == 9
    assert dense16.describe() == "C32k3-relu-pool | C32k3-relu-pool | dense16 | adam lr=1e-3"
    assert conv.describe() == paper.describe()


@settings(max_examples=60, deadline=None)
@given(genomes(DENSE), seeds)
def test_dense_keys_ignore_inactive_blocks_and_round_trip_through_json(genome, seed):
    rng = random.Random(seed)
    cards = DENSE.cardinalities()
    genes = list(genome.genes)
    for b in range(DENSE.max_blocks):
        start = b * GENES_PER_BLOCK
        if not genes[start]:
            for i in range(start + 1, start + GENES_PER_BLOCK):
                genes[i] = rng.randrange(cards[i])
    assert Genome(tuple(genes), DENSE).key == genome.key
    again = Genome.from_config(json.loads(json.dumps(genome.to_config())))
    assert again == genome and again.space == DENSE and again.key == genome.key
    assert GenomeSpace.from_config(json.loads(json.dumps(DENSE.to_config()))) == DENSE


@settings(max_examples=60, deadline=None)
@given(genomes(DENSE), genomes(DENSE), seeds, st.integers(0, 80))
def test_operators_on_the_dense_space_give_valid_genomes(a, b, seed, generation):
    rng = random.Random(seed)
    c, d = crossover(a, b, rng)
    for child in (c, d, mutate(c, DENSE, rng, generation)):
        assert child.space == DENSE and len(child.genes) == DENSE.n_genes and child.genes[0] == 1
        Genome(child.genes, DENSE)  # validates every gene's range
        assert child.latent_units in (None, *DENSE_LATENT_SIZES)


def test_mutation_and_random_draws_reach_every_latent_choice():
    rng = random.Random(5)
    drawn = {random_genome(DENSE, rng).latent_units for _ in range(300)}
    assert drawn == {None, *DENSE_LATENT_SIZES}
    parent = dense_genome([block_genes()], 0)
    mutated = {mutate(parent, DENSE, rng, 0).latent_units for _ in range(3000)}
    assert mutated == {None, *DENSE_LATENT_SIZES}
