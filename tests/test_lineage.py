"""Lineage (where a child's genes came from) and the inheritance plan: pure Python, no Keras."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moncae.errors import MoncaeError
from moncae.method.evolution import breed, make_toolbox
from moncae.method.genome import (
    DENSE_LATENT_SIZES,
    GENES_PER_BLOCK,
    Genome,
    GenomeSpace,
    Lineage,
    crossover,
    mutate,
    random_genome,
)
from moncae.method.inheritance import BlockSource, inheritance_plan
from moncae.search.strategies import STRATEGIES

SPACE = GenomeSpace(max_blocks=4, max_filters=16)
DENSE = GenomeSpace(max_blocks=4, max_filters=16, latent_sizes=DENSE_LATENT_SIZES)
seeds = st.integers(0, 2**32 - 1)


def genome_of(actives, space=SPACE, filters=0, kernel=0, latent=0) -> Genome:
    """Blocks switched on as `actives` (block 0 always), every block with the given genes."""
    genes = []
    for active in actives:
        genes += [int(active), filters, kernel, 0, 0, 0, 0]
    latent_gene = [latent] if space.has_latent_gene else []
    return Genome(tuple(genes + latent_gene + [0, 0]), space)


# --- lineage on a genome -----------------------------------------------------------------

@settings(max_examples=50, deadline=None)
@given(seeds, seeds)
def test_crossover_children_record_their_parents_and_cut(seed_a, seed_b):
    a, b = random_genome(SPACE, random.Random(seed_a)), random_genome(SPACE, random.Random(seed_b))
    c, d = crossover(a, b, random.Random(seed_a ^ seed_b))
    assert c.lineage.parents == (a.genes, b.genes) and d.lineage.parents == (b.genes, a.genes)
    cut = c.lineage.cut
    assert cut == d.lineage.cut and 1 <= cut < SPACE.n_genes
    for child in (c, d):
        first, second = child.lineage.parents
        assert child.genes == first[:cut] + second[cut:]
        assert [child.lineage.parent_of_gene(i) for i in (0, cut - 1, cut)] == [0, 0, 1]
    assert c.parents() == (a, b)


def test_crossover_draws_exactly_what_it_drew_before_lineage():
    a, b = genome_of([1, 1, 0, 1]), genome_of([1, 0, 1, 1], filters=1)
    rng, reference = random.Random(5), random.Random(5)
    for _ in range(20):
        c, _ = crossover(a, b, rng)
        assert c.lineage.cut == reference.randint(1, SPACE.n_genes - 1)
    assert rng.getstate() == reference.getstate()


def test_mutation_keeps_the_lineage_and_random_genomes_have_none():
    a, b = genome_of([1, 1, 0, 1]), genome_of([1, 0, 1, 1], filters=1)
    rng = random.Random(0)
    child, _ = crossover(a, b, rng)
    assert mutate(child, SPACE, rng, 10).lineage == child.lineage
    assert random_genome(SPACE, rng).lineage is None
    assert mutate(a, SPACE, rng, 0).lineage is None


def test_equality_hash_key_and_repr_ignore_lineage():
    a, b = genome_of([1, 1, 0, 1]), genome_of([1, 0, 1, 1], filters=1)
    plain = Genome(a.genes, SPACE)
    with_lineage = Genome(a.genes, SPACE, Lineage((a.genes, b.genes), 3))
    other = Genome(a.genes, SPACE, Lineage((b.genes, a.genes), 9))
    assert plain == with_lineage == other
    assert hash(plain) == hash(with_lineage) == hash(other)
    assert len({plain, with_lineage, other}) == 1
    assert plain.key == with_lineage.key and plain.key_for((8, 8, 1)) == other.key_for((8, 8, 1))
    assert repr(plain) == repr(with_lineage)


@pytest.mark.parametrize("space", [SPACE, DENSE], ids=["paper", "dense"])
def test_lineage_survives_the_checkpoint_json(space):
    rng = random.Random(1)
    a, b = random_genome(space, rng), random_genome(space, rng)
    child = mutate(crossover(a, b, rng)[0], space, rng, 4)
    config = child.to_config()
    assert set(config) == {"genes", "space", "lineage"}
    again = Genome.from_config(json.loads(json.dumps(config)))
    assert again == child and again.lineage == child.lineage and again.parents() == (a, b)
    # a genome without lineage serialises exactly as before lineage existed
    assert a.to_config() == {"genes": list(a.genes), "space": space.to_config()}
    assert Genome.from_config(a.to_config()).lineage is None


@pytest.mark.parametrize("lineage", [
    {"parents": [[1] + [0] * 29], "cut": 3},  # one parent
    {"parents": [[1] + [0] * 29, [1] + [0] * 29], "cut": 30},  # cut past the end
    {"parents": [[1] + [0] * 29, [1] + [0] * 29], "cut": 0},
    {"parents": [[1] + [0] * 28, [1] + [0] * 28], "cut": 3},  # the child's length is 30
    {"parents": [[1] + [0] * 29, [0] * 30], "cut": 3},  # parent 1's block 0 inactive
    {"parents": [[1] + [9] * 29, [1] + [0] * 29], "cut": 3},  # gene out of range
    {"parents": [[1] + [0] * 29, [1] + [0] * 29]},  # no cut
    {"parents": "ab", "cut": 1},
    [1, 2],
])
def test_a_damaged_lineage_is_a_user_error(lineage):
    config = {"genes": [1] + [0] * 29, "space": SPACE.to_config(), "lineage": lineage}
    with pytest.raises(MoncaeError, match="lineage|genes"):
        Genome.from_config(config)


def test_elites_are_copied_with_their_own_lineage_and_children_get_a_fresh_one():
    rng = random.Random(2)
    population = [random_genome(SPACE, rng) for _ in range(6)]
    fitness, losses = [0.5, 0.4, 0.3, 0.2, 0.1, 0.05], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    nextgen = breed(population, fitness, losses, 1, rng, make_toolbox(SPACE, "paper"), 0.34)
    genes = {g.genes for g in population}
    assert [g.lineage for g in nextgen[:2]] == [None, None]  # elites: the same objects, unchanged
    for child in nextgen[2:]:
        assert set(child.lineage.parents) <= genes


@pytest.mark.parametrize("name", ["moncae", "nsga2", "mu-plus-lambda"])
def test_every_breeding_strategy_gives_children_a_lineage_from_its_parents(name):
    rng = random.Random(3)
    strategy = STRATEGIES[name](SPACE, population=6, ref_point=(4.0, 12.0), elitism=0.0)
    pool = [random_genome(SPACE, rng) for _ in range(6)]
    children = strategy.offspring(lambda: pool[rng.randrange(6)], rng, 1)
    genes = {g.genes for g in pool}
    assert len(children) == 6 and all(set(c.lineage.parents) <= genes for c in children)


# --- the inheritance plan ---------------------------------------------------------------

def with_lineage(a: Genome, b: Genome, cut: int) -> Genome:
    return Genome(a.genes[:cut] + b.genes[cut:], a.space, Lineage((a.genes, b.genes), cut))


def test_no_lineage_no_plan():
    assert inheritance_plan(genome_of([1, 1, 0, 0])) is None


def test_a_cut_between_blocks_takes_each_block_from_its_side():
    a, b = genome_of([1, 1, 1, 0]), genome_of([1, 0, 1, 1], filters=1)
    child = with_lineage(a, b, 3 * GENES_PER_BLOCK)  # blocks 0-2 from a, block 3 from b
    plan = inheritance_plan(child)
    assert plan.blocks == (BlockSource(0, 0, 0, 0), BlockSource(1, 1, 0, 1), BlockSource(2, 2, 0, 2),
                           BlockSource(3, 3, 1, 2))  # b's block 3 is its layer 2 (block 1 is off)
    assert (plan.latent_parent, plan.output_parent) == (1, 0)


@pytest.mark.parametrize("offset, parent", [(1, 1), (2, 0), (3, 0), (6, 0)])
def test_a_block_cut_in_the_middle_goes_to_the_parent_of_its_filters_gene(offset, parent):
    a, b = genome_of([1, 1, 1, 0]), genome_of([1, 0, 1, 1], filters=1)
    child = with_lineage(a, b, 2 * GENES_PER_BLOCK + offset)  # the cut splits block 2
    block2 = inheritance_plan(child).blocks[2]
    assert (block2.layer, block2.block, block2.parent) == (2, 2, parent)
    assert block2.parent_layer == (2 if parent == 0 else 1)  # a: blocks 0,1,2; b: blocks 0,2,3


def test_a_block_inactive_in_its_parent_has_no_parent_layer():
    a, b = genome_of([1, 0, 1, 0]), genome_of([1, 0, 0, 0])
    # a mutation switched block 1 on after the crossover: a child block no parent built
    child = Genome(genome_of([1, 1, 1, 0]).genes, SPACE, Lineage((a.genes, b.genes), 20))
    assert [(s.layer, s.block, s.parent, s.parent_layer) for s in inheritance_plan(child).blocks] == [
        (0, 0, 0, 0), (1, 1, 0, None), (2, 2, 0, 1)]


def test_block_zero_cut_after_its_active_gene_comes_from_the_second_parent():
    a, b = genome_of([1, 1, 0, 0]), genome_of([1, 0, 0, 0], filters=2)
    plan = inheritance_plan(with_lineage(a, b, 1))
    assert plan.blocks[0].parent == 1 and plan.output_parent == 1
    assert len(plan.blocks) == 1  # the child has b's blocks after gene 0: block 0 only


def test_the_dense_layers_follow_the_latent_gene():
    a, b = genome_of([1, 1, 0, 0], DENSE, latent=2), genome_of([1, 1, 0, 0], DENSE, latent=3)
    assert inheritance_plan(with_lineage(a, b, DENSE.n_block_genes)).latent_parent == 1
    assert inheritance_plan(with_lineage(a, b, DENSE.n_block_genes + 1)).latent_parent == 0


@pytest.mark.parametrize("strategy", ["moncae", "nsga2"])
def test_a_search_checkpoint_holds_the_next_generation_with_its_lineage(stub_config, strategy):
    from moncae.evaluation.surrogate import surrogate_task
    from moncae.search.loop import run_search

    result = run_search(stub_config(strategy=strategy, generations=2), task_fn=surrogate_task)
    saved = json.loads((result.run_dir / "checkpoint.json").read_text())
    population = [Genome.from_config(c) for c in saved["last_population"]]
    bred = [g for g in population if g.lineage is not None]
    assert bred, "generation 1 holds crossover children"
    for child in bred:
        assert len(child.parents()) == 2 and inheritance_plan(child).blocks[0].layer == 0


SPACE = GenomeSpace(max_blocks=4, max_filters=16)


def active_genome_of(actives, filters=0):
    genes = []
    for active in actives:
        genes += [int(active), filters, 0, 0, 0, 0, 0]
    return Genome(tuple(genes + [0, 0]), SPACE)


def test_a_child_with_an_inactive_block_between_numbers_its_layers_by_active_blocks():
    a, b = active_genome_of([1, 1, 1, 1]), active_genome_of([1, 0, 1, 1], filters=1)
    child = Genome(b.genes, SPACE, Lineage((a.genes, b.genes), GENES_PER_BLOCK))  # blocks 1-3 from b
    assert inheritance_plan(child).blocks == (
        BlockSource(0, 0, 0, 0), BlockSource(1, 2, 1, 1), BlockSource(2, 3, 1, 2))
