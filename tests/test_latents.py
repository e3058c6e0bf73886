"""`latents = "spread"`: each later generation's bred children get their latent genes dealt out
over every latent gene (the conv bottleneck included), so every generation tries its new bodies
at many latent sizes; the elite is kept unchanged. The default (`inherited`) changes nothing.
Surrogate evaluator (no Keras)."""

from __future__ import annotations

import random
from collections import Counter

import pandas as pd
import pytest

from moncae.errors import MoncaeError, RunFolderError
from moncae.evaluation.surrogate import surrogate_task
from moncae.method.evolution import elite_count
from moncae.method.genome import DENSE_LATENT_SIZES, GenomeSpace, random_genome, spread_latents
from moncae.search.loop import run_search
from tests.runs import TEXT, assert_same, read, resume_after_crash, with_model

DENSE = GenomeSpace(max_blocks=3, max_filters=16, latent_sizes=DENSE_LATENT_SIZES)
GENES = len(DENSE_LATENT_SIZES) + 1  # the conv bottleneck (gene 0) and every dense size


@pytest.mark.parametrize("n", [1, 6, 9, 10, 18, 20])
def test_with_conv_every_latent_gene_is_dealt_before_any_is_dealt_twice(n):
    rng = random.Random(0)
    genomes = [random_genome(DENSE, rng) for _ in range(n)]
    genes = [g.genes[DENSE.n_block_genes] for g in spread_latents(genomes, DENSE, rng, conv=True)]
    assert set(genes) <= set(range(GENES))
    for cycle in range(0, n, GENES):  # each cycle holds every gene once, the conv bottleneck too
        chunk = genes[cycle:cycle + GENES]
        assert len(set(chunk)) == len(chunk)
    if n >= GENES:
        assert 0 in genes and len(set(genes)) == GENES


def _latent_gene_column(population: pd.DataFrame) -> pd.Series:
    """The latent gene of each row's genome key: the dense size's gene, 0 for none."""
    sizes = {f"dense{units}": i + 1 for i, units in enumerate(DENSE_LATENT_SIZES)}
    return population["genome_key"].map(
        lambda key: next((sizes[part] for part in key.split("|") if part in sizes), 0))


def test_each_later_generation_deals_its_children_latent_genes_and_keeps_its_elite(stub_config, tmp_path):
    config = stub_config(tmp_path, space="dense", latents="spread", generations=5)
    run_dir = run_search(config, task_fn=surrogate_task).run_dir
    population = pd.read_csv(run_dir / "population.csv")
    population["latent_gene"] = _latent_gene_column(population)
    elite = elite_count(config.elitism, config.population)
    for generation in range(1, config.generations):
        rows = population[population["generation"] == generation]
        children = rows["latent_gene"].tolist()[elite:]
        assert len(set(children)) == len(children)  # 6 children: 6 of the 9 latent genes, no repeat
        previous = population[population["generation"] == generation - 1]
        # the elite are networks of the previous generation, unchanged
        assert set(rows["genome_key"].tolist()[:elite]) <= set(previous["genome_key"])
    counts = Counter(population[population["generation"] >= 1]["latent_gene"])
    assert counts[0] > 0  # the conv bottleneck is dealt too


def test_inherited_is_the_default_and_changes_nothing(stub_config, tmp_path):
    a = run_search(stub_config(tmp_path / "a", space="dense"), task_fn=surrogate_task).run_dir
    b = run_search(stub_config(tmp_path / "b", space="dense", latents="inherited"), task_fn=surrogate_task).run_dir
    c = run_search(stub_config(tmp_path / "c", space="dense", latents="spread"), task_fn=surrogate_task).run_dir
    assert_same(a, b, dtype=TEXT)
    gen0 = read(a, "population.csv").query("generation == 0").reset_index(drop=True)
    pd.testing.assert_frame_equal(gen0, read(c, "population.csv").query("generation == 0").reset_index(drop=True))
    assert not read(a, "population.csv").equals(read(c, "population.csv"))  # later generations differ


@pytest.mark.parametrize("strategy", ["nsga2", "mu-plus-lambda"])
def test_the_other_breeding_strategies_deal_their_offspring(stub_config, tmp_path, strategy):
    config = stub_config(tmp_path, space="dense", latents="spread", strategy=strategy, generations=3)
    ev = pd.read_csv(run_search(config, task_fn=surrogate_task).run_dir / "evaluations.csv")
    for generation in (1, 2):  # every offspring is new or cached; the trained ones never repeat a gene
        # within one cycle of 9 the 8 offspring's latent genes are all distinct
        genes = ev[ev["generation"] == generation]["latent"].tolist()
        assert len(genes) == len(set(genes))


@pytest.mark.parametrize("crash_after", [9, 21])
def test_a_spread_search_resumes_identically_after_a_crash(stub_config, tmp_path, crash_after):
    settings = {"space": "dense", "latents": "spread"}
    reference = run_search(stub_config(tmp_path / "ref", **settings), task_fn=with_model).run_dir
    config = stub_config(tmp_path / "crashed", **settings)
    resume_after_crash(config, crash_after, with_model)
    assert_same(reference, config.run_dir, dtype=TEXT)


def test_resume_refuses_other_latents(stub_config, tmp_path):
    run_search(stub_config(tmp_path, generations=1, space="dense"), task_fn=surrogate_task)
    with pytest.raises(RunFolderError, match="latents"):
        run_search(stub_config(tmp_path, generations=1, space="dense", latents="spread"), resume=True,
                   task_fn=surrogate_task)


@pytest.mark.parametrize(("settings", "message"), [
    ({"latents": "spread"}, 'needs space = "dense"'),
    ({"latents": "spread", "space": "dense", "strategy": "random"}, "needs a strategy that breeds"),
    ({"latents": "spread", "space": "dense", "strategy": "metaqnn"}, "needs a strategy that breeds"),
    ({"latents": "both", "space": "dense"}, "must be one of inherited, spread"),
])
def test_bad_latents_are_one_line_errors(stub_config, settings, message):
    with pytest.raises(MoncaeError, match=f"`latents` .*{message}"):
        stub_config(**settings)
