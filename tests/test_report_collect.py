"""Report aggregation on surrogate runs (no training, no TensorFlow): Table 1 against a hand
computation, and a whole report built from them."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from moncae.config import resolve_config
from moncae.evaluation.surrogate import surrogate_task
from moncae.report import ReportWarning
from moncae.report.collect import (
    FINAL_COLUMNS,
    collect_final_models,
    collect_runs,
    collect_versus_pca,
    versus_pca_counts,
)
from moncae.report.markdown import versus_pca_section, versus_pca_summary
from moncae.report.table1 import collect_table1
from moncae.search.loop import run_search

SEEDS = (1, 2, 3)
THRESHOLD = 2.5


@pytest.fixture(scope="module")
def results(tiny_npz, tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    for seed in SEEDS:
        run_search(resolve_config(dataset=str(tiny_npz), seed=seed, out=str(out), generations=3,
                                  population=8, max_blocks=4, max_filters=32, elitism=0.25),
                   task_fn=surrogate_task)
    return out


def hand_table1(results) -> dict[str, float]:
    """Per seed: mean over distinct ok final models with LOC < 2.5; then mean and std over seeds."""
    per_seed = []
    for seed in SEEDS:
        run = next(results.glob(f"*/seed-{seed}"))
        pop = pd.read_csv(run / "population.csv")
        final = pop[pop["generation"] == pop["generation"].max()].drop_duplicates("genome_key")
        below = final[final["loc"] < THRESHOLD]
        if len(below):
            per_seed.append((below["rec_loss"].mean(), below["loc"].mean()))
    losses, locs = np.array(per_seed).T
    return {"rec_loss": losses.mean(), "rec_loss_std": losses.std(ddof=1), "loc": locs.mean(),
            "runs": len(SEEDS), "models_seeds": len(per_seed)}


def test_table1_matches_a_hand_computation(results):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReportWarning)
        runs = collect_runs(results)
        finals = pd.concat([collect_final_models(r) for r in runs], ignore_index=True)
        table = collect_table1(runs, finals, {runs[0].dataset: THRESHOLD})
    expected = hand_table1(results)
    row = table.iloc[0]
    assert row["runs"] == expected["runs"] and row["source"] == "search"
    assert row["rec_loss"] == pytest.approx(expected["rec_loss"])
    assert row["rec_loss_std"] == pytest.approx(expected["rec_loss_std"])
    assert row["loc"] == pytest.approx(expected["loc"])
    assert len(finals) == finals.groupby("seed")["genome_key"].nunique().sum()


@pytest.mark.slow  # draws every figure (matplotlib) in a fresh interpreter
def test_report_of_surrogate_runs_writes_every_file_without_tensorflow(results):
    code = ("import sys, warnings\nfrom moncae.report import build_report\n"
            "with warnings.catch_warnings(record=True) as seen:\n"
            "    warnings.simplefilter('always')\n"
            f"    print(build_report({str(results)!r}))\n"
            "print(*[str(w.message) for w in seen], sep='\\n')\n"
            "assert 'tensorflow' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "no saved final model" in done.stdout  # the surrogate keeps no model: said, not hidden
    folder = results / "report"
    dataset = "tiny"
    for name in ("report.md", "table1.csv", "table1.md", "runs.csv", f"pareto_{dataset}.png",
                 f"hv_history_{dataset}.png", f"pca_baseline_{dataset}.csv", f"versus_pca_{dataset}.csv"):
        assert (folder / name).stat().st_size > 0, name
    assert len(pd.read_csv(folder / "runs.csv")) == len(SEEDS)



def test_a_fitness_rule_and_a_selection_name_the_strategy_not_the_experiment(stub_config, tmp_path):
    for name, settings in (("paper", {}), ("front", {"fitness": "front", "selection": "tournament"})):
        run_search(stub_config(tmp_path / name, generations=2, **settings), task_fn=surrogate_task)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = {run.strategy: run for run in collect_runs(tmp_path)}
    assert set(runs) == {"moncae", "moncae-tournament-front"}
    # the same experiment otherwise: `moncae report` compares the two at equal trainings
    assert runs["moncae"].settings_id == runs["moncae-tournament-front"].settings_id


def test_spread_latents_name_the_strategy_not_the_experiment(stub_config, tmp_path):
    for name, settings in (("inherited", {}), ("spread", {"latents": "spread"})):
        run_search(stub_config(tmp_path / name, generations=2, space="dense", **settings), task_fn=surrogate_task)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = {run.strategy: run for run in collect_runs(tmp_path)}
    assert set(runs) == {"moncae", "moncae-spread-latents"}
    assert runs["moncae"].settings_id == runs["moncae-spread-latents"].settings_id


def test_versus_pca_pairs_each_model_with_pca_of_its_latent_size():
    def model(key, latent, rec_loss, source="finetune", status="ok"):
        return {**dict.fromkeys(FINAL_COLUMNS, float("nan")), "seed": 1, "genome_key": key,
                "bottleneck": str(latent), "latent_size": latent, "loc": np.log10(latent),
                "rec_loss": rec_loss, "source": source, "status": status}

    finals = pd.DataFrame([model("a", 8, 0.10), model("b", 2, 0.30), model("c", 16, 0.20),  # c ties PCA
                           model("d", 4096, 0.05), model("e", 4, 0.50, source="search"),
                           model("f", 8, 0.01, status="failed"), model("g", 2048, 0.21)])
    pca = pd.DataFrame({"k": [2, 4, 8, 16], "loc": np.log10([2, 4, 8, 16]), "rec_loss": [0.4, 0.3, 0.25, 0.2]})
    versus = collect_versus_pca(finals, pca)
    assert list(versus["genome_key"]) == ["b", "e", "a", "c", "g", "d"]  # ok models only, by LOC
    assert versus.set_index("genome_key")["difference"].to_dict() == pytest.approx(
        {"b": -0.1, "e": 0.2, "a": -0.15, "c": 0.0, "g": 0.01, "d": -0.15})
    # larger than the largest PCA (16): beside it; g is above it (so above any PCA), d below (unknown)
    assert versus.set_index("genome_key")["pca_k"].to_dict() == {"b": 2, "e": 4, "a": 8, "c": 16, "g": 16, "d": 16}
    counts = versus_pca_counts(versus)
    assert counts == {"compared": 4, "below": 2, "capped": 1, "no_pca": 1, "not_finetuned": 1}
    text = "\n".join(versus_pca_section("tiny", versus, "bce"))
    assert "**2 of 4 fine-tuned final models lie below PCA" in text
    assert "1 of them has more latent values than PCA can have components here" in text
    assert "compared with PCA with all 16" in text
    assert "| seed-1 | 2048 | 3.311 | 0.2100 | 0.2000 (k=16) | +0.0100 |" in text
    assert "1 model has more latent values than PCA can have components here and a lower loss" in text
    assert "1 model was not fine-tuned" in text and "0.5000 (validation)" in text
    assert "| seed-1 | 8 | 0.903 | 0.1000 | 0.2500 | -0.1500 |" in text
    assert collect_versus_pca(finals, None)["pca_rec_loss"].isna().all()
    assert "Per seed" not in text
    two = pd.concat([finals, finals.assign(seed=2, rec_loss=1.0)], ignore_index=True)
    text = "\n".join(versus_pca_section("tiny", collect_versus_pca(two, pca), "bce"))
    assert "**2 of 9 fine-tuned final models" in text and "Per seed: seed-1 2 of 4, seed-2 0 of 5." in text
    summary = versus_pca_summary({"tiny": collect_versus_pca(two, pca), "other": collect_versus_pca(finals, None)})
    assert summary[2:] == [
        "- tiny: **2 of 9** fine-tuned final models below PCA at their latent size (test split)", ""]
    assert versus_pca_summary({"other": collect_versus_pca(finals, None)}) == []  # nothing compared: no lines


def test_runs_whose_data_was_found_in_other_folders_share_their_splits(tiny_npz, tmp_path):
    from moncae.report.build import _load_dataset_for

    for seed, data_dir in ((1, None), (2, str(tmp_path))):  # a .npz path: data_dir plays no part
        run_search(resolve_config(dataset=str(tiny_npz), seed=seed, out=str(tmp_path / "r"), generations=1,
                                  population=4, data_dir=data_dir), task_fn=surrogate_task)
    runs = collect_runs(tmp_path / "r")
    assert len(runs) == 2 and {r.config.data_dir for r in runs} == {None, str(tmp_path)}
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert _load_dataset_for(runs) is not None
    assert not [w for w in seen if "different data splits" in str(w.message)], [str(w.message) for w in seen]
    other = resolve_config(dataset=str(tiny_npz), seed=3, out=str(tmp_path / "r"), generations=1, population=4,
                           split_seed=5)
    run_search(other, task_fn=surrogate_task)
    with pytest.warns(ReportWarning, match="different data splits"):
        _load_dataset_for(collect_runs(tmp_path / "r"))


def test_dense_baselines_are_cached_once_per_dataset_across_settings_groups(tiny_npz, tmp_path, monkeypatch):
    import moncae.report.build as build

    for seed, generations in ((1, 1), (2, 2)):  # two settings groups of one dataset
        run_search(resolve_config(dataset=str(tiny_npz), seed=seed, out=str(tmp_path / "r"),
                                  generations=generations, population=4), task_fn=surrogate_task)
    caches = []

    def dense(*args, cache, **kwargs):
        caches.append(cache)
        return pd.DataFrame(columns=build.BASELINE_COLUMNS)

    monkeypatch.setattr(build, "dense_baselines", dense)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build.build_report(tmp_path / "r", baselines="pca,dense_ae")
    assert len(caches) == 2 and caches[0] == caches[1] == tmp_path / "r" / ".baselines" / "tiny.csv"


def test_of_a_run_and_its_copy_the_one_where_the_search_put_it_is_kept(stub_config, tmp_path):
    import shutil

    config = stub_config(tmp_path / "R")
    run_search(config, task_fn=surrogate_task)
    copy = tmp_path / "R" / "a-copy" / config.run_dir.name  # sorts before the dataset's folder
    shutil.copytree(config.run_dir, copy)
    with pytest.warns(ReportWarning, match=f"{copy}: the same dataset, settings, strategy and seed as "
                                           f"{config.run_dir}; left out"):
        (kept,) = collect_runs(tmp_path / "R")
    assert kept.path == config.run_dir


def test_a_report_out_that_cannot_be_written_is_refused_before_any_work(stub_config, tmp_path):
    from moncae.errors import RunFolderError
    from moncae.report import build_report

    run_search(stub_config(tmp_path / "R"), task_fn=surrogate_task)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunFolderError, match=f"output path {blocker} is a file, not a folder; pass another --out"):
        build_report(tmp_path / "R", out=blocker / "report")
