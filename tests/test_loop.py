"""The search loop, its cache, resume bookkeeping and elitism on the surrogate evaluator: the
real loop and run folder, objectives computed from the genome, no Keras (milliseconds each)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from moncae.errors import RunFolderError
from moncae.evaluation.surrogate import surrogate_task
from moncae.method.genome import DENSE_LATENT_SIZES
from moncae.search.loop import run_search
from moncae.store import GENERATION_COLUMNS, POPULATION_COLUMNS, RunFolder
from tests.by_hand import elite_keys, exclusive_by_network
from tests.runs import assert_same, read, resume_after_crash


def test_loop_writes_every_table_and_fitness_is_the_exclusive_contribution(stub_config):
    result = run_search(stub_config(), task_fn=surrogate_task)
    run = result.run_dir
    pop = pd.read_csv(run / "population.csv")
    assert list(pop.columns) == POPULATION_COLUMNS
    assert list(pd.read_csv(run / "generations.csv").columns) == GENERATION_COLUMNS
    assert sorted(pop["generation"].unique()) == [0, 1, 2, 3]
    for _, group in pop.groupby("generation"):
        expected = exclusive_by_network(group[["rec_loss", "loc"]].to_numpy(), list(group["genome_key"]),
                                        (4.0, 12.0))
        assert group["fitness"].to_numpy() == pytest.approx(expected)
    assert (pop["fitness"] > 0).any() and (pop["fitness"] == 0).any()  # both kinds of point occur
    ev = pd.read_csv(run / "evaluations.csv")
    assert ev["genome_key"].is_unique and (ev["status"] == "ok").all()


def test_the_driver_never_makes_float_copies_of_the_images(stub_config):
    """Searching needs the data's sizes, shape and fingerprint only: the trainings (here the
    surrogate, in-process) make the splits they train on, in their own process."""
    from moncae.data.spec import _cached_dataset, cached_dataset

    _cached_dataset.cache_clear()  # another test in this process may have trained on the same file
    config = stub_config()
    run_search(config, task_fn=surrogate_task)
    data = cached_dataset(config.data_spec())
    assert data.sizes["train"] > 0 and not {"x_train", "x_val", "x_test"} & set(vars(data))


def test_cache_never_retrains_a_key_and_counts_match(stub_config):
    seen: list[str] = []

    def counting(task):
        seen.append(task.key)
        return surrogate_task(task)

    result = run_search(stub_config(generations=5), task_fn=counting)
    assert len(seen) == len(set(seen))
    gens = pd.read_csv(result.run_dir / "generations.csv")
    assert gens["trained"].sum() == len(seen)
    assert (gens["trained"] + gens["cache_hits"] == 8).all()
    assert gens["cache_hits"].iloc[1:].min() >= 2, "two elites survive: at least two cache hits"


def test_same_seed_same_csvs_and_another_seed_differs(stub_config, tmp_path):
    a = run_search(stub_config(tmp_path / "a"), task_fn=surrogate_task).run_dir
    b = run_search(stub_config(tmp_path / "b"), task_fn=surrogate_task).run_dir
    c = run_search(stub_config(tmp_path / "c", seed=4), task_fn=surrogate_task).run_dir
    assert_same(a, b)
    assert not read(a, "evaluations.csv")["genome_key"].equals(read(c, "evaluations.csv")["genome_key"])


@pytest.mark.parametrize("crash_after", [3, 9, 17])
def test_resume_after_a_crash_at_any_training_equals_the_uninterrupted_run(stub_config, tmp_path,
                                                                           crash_after):
    reference = run_search(stub_config(tmp_path / "ref"), task_fn=surrogate_task).run_dir
    resumed = resume_after_crash(stub_config(tmp_path / "crashed"), crash_after)
    assert resumed.resumed_from is None or resumed.resumed_from >= 0
    assert_same(reference, resumed.run_dir)


def test_resuming_a_finished_run_trains_nothing(stub_config):
    config = stub_config()
    first = run_search(config, task_fn=surrogate_task)

    def never(task):
        raise AssertionError("a finished run must not train")

    again = run_search(config, resume=True, task_fn=never)
    assert [g.genes for g in again.population] == [g.genes for g in first.population]
    assert again.fitness == pytest.approx(first.fitness)


def test_elitism_carries_the_fittest_individuals_into_the_next_generation(stub_config):
    """The `round(elitism * n)` elite of each generation (README's rule, by hand) lead the next one."""
    result = run_search(stub_config(generations=6), task_fn=surrogate_task)
    pop = pd.read_csv(result.run_dir / "population.csv")
    for gen in range(5):
        now = pop[pop["generation"] == gen]
        after = pop[pop["generation"] == gen + 1]
        assert list(after["genome_key"].iloc[:2]) == elite_keys(now, 2)
        assert len(set(after["genome_key"].iloc[:2])) == 2, "the two elites are distinct networks"


def best_lost(config) -> int:
    """Generations after which the fittest individual is gone from the next population."""
    pop = pd.read_csv(run_search(config, task_fn=surrogate_task).run_dir / "population.csv")
    lost = 0
    for gen in range(config.generations - 1):
        best = pop[pop["generation"] == gen].sort_values("fitness", ascending=False)["genome_key"].iloc[0]
        lost += best not in set(pop.loc[pop["generation"] == gen + 1, "genome_key"])
    return lost


def test_without_elitism_the_fittest_are_lost(stub_config, tmp_path):
    """The elitism test above has teeth: with elitism off, the same runs lose their best."""
    wide = {"generations": 10, "max_filters": 64}  # a space wide enough that the best is a rare network
    on = sum(best_lost(stub_config(tmp_path / f"on{s}", seed=s, **wide)) for s in range(4))
    off = sum(best_lost(stub_config(tmp_path / f"off{s}", seed=s, elitism=0.0, **wide)) for s in range(4))
    assert on == 0 and off > 0


# --- the `space` setting -------------------------------------------------------------------

def test_space_setting_builds_the_space_and_is_a_results_setting(stub_config):
    paper, dense = stub_config(), stub_config(space="dense")
    assert paper.space == "paper" and paper.genome_space().latent_sizes == ()
    assert dense.genome_space().latent_sizes == DENSE_LATENT_SIZES
    assert dense.genome_space().max_blocks == 4 and dense.genome_space().max_filters == 32
    assert paper.results_settings()["space"] == "paper"
    assert dense.results_settings()["space"] == "dense"


def test_dense_space_run_journals_the_latent_gene_and_dense_bottlenecks(stub_config):
    result = run_search(stub_config(space="dense"), task_fn=surrogate_task)
    ev = pd.read_csv(result.run_dir / "evaluations.csv", dtype={"bottleneck": str})
    assert list(ev.columns[-3:]) == ["latent", "optimizer", "learning_rate"]
    dense = ev[ev["latent"] > 0]
    assert len(dense) and (ev["latent"] == 0).any()
    units = [DENSE_LATENT_SIZES[i - 1] for i in dense["latent"]]
    assert list(dense["bottleneck"]) == [str(u) for u in units]
    assert list(dense["loc"]) == pytest.approx([math.log10(u) for u in units])
    assert all(f"dense{u}|" in k for u, k in zip(units, dense["genome_key"], strict=True))
    assert not ev.loc[ev["latent"] == 0, "genome_key"].str.contains("dense").any()
    assert {g.space for g in result.population} == {result.config.genome_space()}


@pytest.mark.parametrize("crash_after", [5, 12])
def test_dense_space_resume_after_a_crash_equals_the_uninterrupted_run(stub_config, tmp_path,
                                                                        crash_after):
    reference = run_search(stub_config(tmp_path / "ref", space="dense"), task_fn=surrogate_task).run_dir
    resumed = resume_after_crash(stub_config(tmp_path / "crashed", space="dense"), crash_after)
    assert_same(reference, resumed.run_dir)


def test_resuming_with_another_space_is_refused(stub_config):
    run_search(stub_config(generations=1), task_fn=surrogate_task)
    with pytest.raises(RunFolderError, match="space: 'paper' -> 'dense'"):
        run_search(stub_config(generations=1, space="dense"), resume=True, task_fn=surrogate_task)


def test_strided_downsampling_draws_the_same_genomes_as_pooling_but_other_networks(stub_config, tmp_path):
    pooled = run_search(stub_config(tmp_path / "pool", space="dense"), task_fn=surrogate_task)
    strided = run_search(stub_config(tmp_path / "strided", space="dense", downsample="strided"),
                         task_fn=surrogate_task)
    assert strided.config.results_settings()["downsample"] == "strided"
    assert {g.space.downsample for g in strided.population} == {"strided"}
    first = [pd.read_csv(r.run_dir / "evaluations.csv").query("generation == 0") for r in (pooled, strided)]
    genes = pooled.config.genome_space().gene_names()
    assert first[0][genes].equals(first[1][genes])  # the same draws: only the networks differ
    assert first[1]["architecture"].str.contains("stride2").any()
    assert not first[1]["architecture"].str.contains("pool").any()
    halved = first[1]["architecture"].str.contains("stride2")
    assert (first[1].loc[halved, "genome_key"] != first[0].loc[halved, "genome_key"]).all()
    assert (first[1].loc[halved, "flops"] < first[0].loc[halved, "flops"]).all()
    with pytest.raises(RunFolderError, match="downsample: 'strided' -> 'pool'"):
        run_search(stub_config(tmp_path / "strided", space="dense"), resume=True, task_fn=surrogate_task)


def test_a_run_folder_from_before_the_space_setting_resumes_as_paper(stub_config):
    """config.json written before `space` existed lacks it: such a run was a paper-space run."""
    config = stub_config(generations=2)
    reference = run_search(config, task_fn=surrogate_task)
    run = RunFolder(config.run_dir)
    old = run.read_config()
    del old["settings"]["space"]
    run.write_config(old)
    again = run_search(config, resume=True, task_fn=surrogate_task)
    assert [g.genes for g in again.population] == [g.genes for g in reference.population]
    with pytest.raises(RunFolderError, match="space: 'paper' -> 'dense'"):
        run_search(stub_config(generations=2, space="dense"), resume=True, task_fn=surrogate_task)


def test_finetune_epochs_is_not_a_search_setting(stub_config):
    """A run's fine-tune budget does not change its search: a resume with another one is no
    mismatch, and config.json keeps the one the run started with (what `moncae finetune` reads)."""
    config = stub_config(generations=2, finetune_epochs=2)
    reference = run_search(config, task_fn=surrogate_task)
    assert "finetune_epochs" not in reference.config.results_settings()
    assert RunFolder(config.run_dir).read_config()["run"]["finetune_epochs"] == 2
    again = run_search(stub_config(generations=2, finetune_epochs=7), resume=True, task_fn=surrogate_task)
    assert [g.genes for g in again.population] == [g.genes for g in reference.population]
    assert RunFolder(config.run_dir).read_config()["run"]["finetune_epochs"] == 2


def test_a_run_from_before_min_pool_side_resumes_with_its_own_rule(stub_config, tmp_path):
    """A config.json without `min_pool_side` was made with 2 (maps down to 1x1): a resume at today's
    default (3) is refused, naming the --config line; with that line it resumes as the run would have gone."""
    import json

    from moncae.config import SearchConfig

    legacy = {"min_pool_side": 2}
    reference = run_search(stub_config(tmp_path / "ref", generations=3, **legacy), task_fn=surrogate_task)
    old = run_search(stub_config(tmp_path / "old", generations=2, **legacy), task_fn=surrogate_task).run_dir
    path = old / "config.json"
    payload = json.loads(path.read_text())
    for part in ("run", "settings"):
        del payload[part]["min_pool_side"]
    path.write_text(json.dumps(payload))  # as written before the setting existed
    assert SearchConfig.from_dict(payload["run"]).min_pool_side == 2
    refusal = r"min_pool_side: 2 -> 3; a --config file sets the run's: min_pool_side = 2"
    with pytest.raises(RunFolderError, match=refusal):
        run_search(stub_config(tmp_path / "old", generations=3), resume=True, task_fn=surrogate_task)
    run_search(stub_config(tmp_path / "old", generations=3, **legacy), resume=True, task_fn=surrogate_task)
    assert_same(reference.run_dir, old)
