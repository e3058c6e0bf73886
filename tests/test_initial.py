"""`initial = "spread"`: generation 0's dense bottleneck sizes dealt out so every size is
present; the other genes are the random draws. The default changes nothing. Surrogate
evaluator (no Keras)."""

from __future__ import annotations

import random
from collections import Counter

import pandas as pd
import pytest

from moncae.errors import MoncaeError
from moncae.evaluation.surrogate import surrogate_task
from moncae.method.genome import DENSE_LATENT_SIZES, GenomeSpace, random_genome, spread_latents
from moncae.method.selection import STRATEGY_NAMES
from moncae.search.loop import run_search
from tests.runs import assert_same, read

DENSE = GenomeSpace(max_blocks=3, max_filters=16, latent_sizes=DENSE_LATENT_SIZES)


def drawn(n: int, seed: int = 0):
    rng = random.Random(seed)
    return [random_genome(DENSE, rng) for _ in range(n)], rng


@pytest.mark.parametrize("n", [1, 5, 8, 9, 16, 20])
def test_every_size_is_dealt_before_any_is_dealt_twice(n):
    genomes, rng = drawn(n)
    units = [g.latent_units for g in spread_latents(genomes, DENSE, rng)]
    counts = Counter(units)
    sizes = len(DENSE_LATENT_SIZES)
    assert None not in counts  # never the conv bottleneck
    assert len(counts) == min(n, sizes)
    assert max(counts.values()) - min(counts.values()) <= 1 if n >= sizes else max(counts.values()) == 1
    for cycle in range(0, n, sizes):  # each full cycle holds every size once
        chunk = units[cycle:cycle + sizes]
        assert len(set(chunk)) == len(chunk)


def test_only_the_latent_gene_changes_and_the_draw_is_seeded():
    genomes, rng = drawn(12)
    spread = spread_latents(genomes, DENSE, rng)
    index = DENSE.n_block_genes
    for before, after in zip(genomes, spread):
        assert before.genes[:index] == after.genes[:index] and before.genes[index + 1:] == after.genes[index + 1:]
    again, rng2 = drawn(12)
    assert spread_latents(again, DENSE, rng2) == spread
    other, rng3 = drawn(12, seed=1)
    assert [g.latent_units for g in spread_latents(other, DENSE, rng3)] != [g.latent_units for g in spread]


def test_independent_draws_leave_sizes_out_which_is_why_it_exists():
    # 8 uniform draws of the latent gene (9 values) hold 8 x (1 - (8/9)^8) = 4.88 of the 8
    # dense sizes on average
    covered = [len({g.latent_units for g in drawn(8, seed)[0]} - {None}) for seed in range(200)]
    assert 4.6 < sum(covered) / len(covered) < 5.2


def test_the_paper_space_has_no_latent_gene_to_spread():
    paper = GenomeSpace(max_blocks=3, max_filters=16)
    rng = random.Random(0)
    with pytest.raises(MoncaeError, match="no latent gene"):
        spread_latents([random_genome(paper, rng)], paper, rng)


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_a_spread_search_starts_with_every_size(stub_config, tmp_path, strategy):
    config = stub_config(tmp_path, strategy=strategy, space="dense", initial="spread", first_population=16)
    ev = pd.read_csv(run_search(config, task_fn=surrogate_task).run_dir / "evaluations.csv")
    latent = ev[ev["generation"] == 0]["latent"]
    assert sorted(Counter(latent).values()) == [2] * 8 and 0 not in set(latent)


def test_random_is_the_default_and_changes_nothing(stub_config, tmp_path):
    a = run_search(stub_config(tmp_path / "a", space="dense"), task_fn=surrogate_task).run_dir
    b = run_search(stub_config(tmp_path / "b", space="dense", initial="random"), task_fn=surrogate_task).run_dir
    c = run_search(stub_config(tmp_path / "c", space="dense", initial="spread"), task_fn=surrogate_task).run_dir
    assert_same(a, b)
    assert not read(a, "population.csv").equals(read(c, "population.csv"))  # another start


def test_resume_refuses_another_initial(stub_config, tmp_path):
    from moncae.errors import RunFolderError

    run_search(stub_config(tmp_path, generations=1, space="dense"), task_fn=surrogate_task)
    with pytest.raises(RunFolderError, match="initial"):
        run_search(stub_config(tmp_path, generations=1, space="dense", initial="spread"), resume=True,
                   task_fn=surrogate_task)


def test_spread_needs_the_dense_space(stub_config):
    with pytest.raises(MoncaeError, match='`initial` "spread" deals out the dense bottleneck sizes'):
        stub_config(initial="spread")
