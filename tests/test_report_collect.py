"""Report aggregation on surrogate runs (no training, no TensorFlow): Table 1 against a hand
computation, and a whole report built from them."""

from __future__ import annotations

import os
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
    collect_pareto,
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
    assert counts == {"compared": 4, "below": 2, "paired": 0, "narrow": 0, "capped": 1, "no_pca": 1,
                      "not_finetuned": 1}
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
    assert "within the test split's noise" not in text
    a_close = finals["rec_loss"].where(finals["genome_key"] != "a", 0.2485)
    close = collect_versus_pca(finals.assign(rec_loss=a_close), pca)
    assert versus_pca_counts(close)["narrow"] == 1  # a: 0.0015 below PCA's 0.25
    assert "1 of those below is within the test split's noise (below by less than 0.002," in "\n".join(
        versus_pca_section("tiny", close, "bce"))
    assert versus_pca_summary({"tiny": close})[2] == (
        "- tiny: **2 of 4** fine-tuned final models below PCA at their latent size (test split), 1 of them "
        "within the test split's noise")


def test_versus_pca_gives_a_paired_interval_where_the_test_images_losses_were_kept():
    """A model's lead over PCA is judged by the 95% interval of its per-image differences where
    they were kept: a 0.0015 lead is clear when the differences hardly vary, within noise when
    they vary a lot; a model without them keeps the fixed margin; a model beside a smaller PCA
    (larger than any PCA here) is given no interval."""
    from moncae.method.image_loss import paired_difference

    def model(key, latent, rec_loss, losses_file):
        return {**dict.fromkeys(FINAL_COLUMNS, float("nan")), "seed": 1, "genome_key": key,
                "bottleneck": str(latent), "latent_size": latent, "loc": np.log10(latent),
                "rec_loss": rec_loss, "source": "finetune", "status": "ok", "test_losses_file": losses_file}

    finals = pd.DataFrame([model("steady", 2, 0.3985, "s.npy"), model("noisy", 4, 0.2985, "n.npy"),
                           model("old", 8, 0.2485, ""), model("big", 32, 0.10, "b.npy")])
    pca = pd.DataFrame({"k": [2, 4, 8, 16], "loc": np.log10([2, 4, 8, 16]), "rec_loss": [0.4, 0.3, 0.25, 0.2]})
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.7, 1000)
    steady = paired_difference(base - 0.0015 + rng.normal(0, 0.001, 1000), base)
    noisy = paired_difference(base - 0.0015 + rng.normal(0, 0.05, 1000), base)
    versus = collect_versus_pca(finals, pca, {"s.npy": steady, "n.npy": noisy, "b.npy": steady})
    rows = versus.set_index("genome_key")
    assert rows.loc["steady", "difference_se"] == steady.se and rows.loc["noisy", "difference_se"] == noisy.se
    assert rows.loc["steady", "difference_high"] < 0 < rows.loc["noisy", "difference_high"]
    assert rows.loc["steady", "difference_low"] == pytest.approx(-0.0015 - 1.959964 * steady.se)
    assert rows[["difference_se"]].loc[["old", "big"]].isna().all().all()
    counts = versus_pca_counts(versus)
    assert (counts["below"], counts["paired"], counts["narrow"]) == (3, 2, 2)  # noisy and old
    text = "\n".join(versus_pca_section("tiny", versus, "bce"))
    assert "For 2 of them the test images' losses were kept" in text
    assert ("2 of those below are within the test split's noise (its 95% interval holds 0, or, without "
            "one, it is below by less than 0.002)") in text
    low, high = rows.loc["steady", ["difference_low", "difference_high"]]
    assert f"| -0.0015 ({low:+.4f} to {high:+.4f}) |" in text


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


def test_a_second_report_reads_pca_from_the_cache_and_fits_nothing(tiny_npz, tmp_path, monkeypatch):
    import moncae.report.build as build

    run_search(resolve_config(dataset=str(tiny_npz), seed=1, out=str(tmp_path / "r"), generations=1, population=4),
               task_fn=surrogate_task)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = build.build_report(tmp_path / "r", out=tmp_path / "a").parent
        monkeypatch.setattr(build, "pca_baseline", lambda *a, **k: pytest.fail("PCA fitted again"))
        second = build.build_report(tmp_path / "r", out=tmp_path / "b").parent
    name = "pca_baseline_tiny.csv"
    assert (first / name).read_bytes() == (second / name).read_bytes()
    assert len(pd.read_csv(first / name)) > 0


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


def test_a_run_with_a_damaged_file_is_left_out_and_the_others_reported(stub_config, tmp_path):
    """A damaged middle line of one run's evaluations.csv stopped the whole report (a helper's audit);
    such a run is left out with a warning naming the file and line, as an unreadable run is."""
    import pandas as pd

    from moncae.report import build_report

    configs = [stub_config(tmp_path / "R", seed=seed, generations=2) for seed in (1, 2)]
    for config in configs:
        run_search(config, task_fn=surrogate_task)
    path = configs[1].run_dir / "evaluations.csv"
    lines = path.read_text().splitlines(keepends=True)
    lines[3] = "garbage\n"
    path.write_text("".join(lines))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        report = build_report(tmp_path / "R")
    messages = [str(w.message) for w in seen]
    assert any(f"{configs[1].run_dir}: left out" in m and "evaluations.csv:4" in m for m in messages), messages
    runs = pd.read_csv(report.parent / "runs.csv")
    assert list(runs["seed"]) == [1]
    lines = path.read_text().splitlines(keepends=True)
    (configs[0].run_dir / "evaluations.csv").write_text("".join(lines))  # both damaged: nothing left
    with pytest.warns(ReportWarning), pytest.raises(Exception, match="none could be read"):
        build_report(tmp_path / "R")


def _fine_tuned(run, keys, epochs=20):
    """finetune.csv with an ok row for each of `keys`, and its finetune.json."""
    import json

    from moncae.finetune.records import FINETUNE_COLUMNS
    from moncae.store import write_csv

    (run / "finetune.json").write_text(json.dumps({"settings": {"epochs": epochs, "classifier_epochs": 20,
                                                                "batch_size": 256, "patience": 3}}))
    write_csv(run / "finetune.csv", FINETUNE_COLUMNS, [
        {**dict.fromkeys(FINETUNE_COLUMNS, ""), "individual": i, "genome_key": key, "rec_loss": 0.1 + i,
         "cl_loss": 1.0, "cl_acc": 0.5, "epochs": epochs, "finetune_seconds": 2.0, "status": "ok"}
        for i, key in enumerate(keys)])


def test_a_fine_tune_stopped_part_way_is_not_counted_as_a_fine_tune(stub_config, tmp_path):
    """A partly fine-tuned run (or one whose finetune.csv holds only its header) counted as fine-tuned,
    its Table 1 means mixing test and validation losses under the wrong mark (a helper's audit)."""
    from moncae.report.markdown import table1_markdown
    from moncae.report.table1 import collect_runs_table

    configs = [stub_config(tmp_path / "R", seed=seed, generations=2) for seed in (1, 2, 3)]
    for config in configs:
        run_search(config, task_fn=surrogate_task)
    keys = {c.seed: list(dict.fromkeys(pd.read_csv(c.run_dir / "models" / "index.csv")["genome_key"]))
            for c in configs}
    _fine_tuned(configs[0].run_dir, keys[1])
    _fine_tuned(configs[1].run_dir, keys[2][:-1])  # stopped before its last model
    _fine_tuned(configs[2].run_dir, [])  # header only
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        runs = collect_runs(tmp_path / "R")
        finals = pd.concat([collect_final_models(r) for r in runs], ignore_index=True)
        table = collect_runs_table(runs, finals, {runs[0].dataset: 10.0}).set_index("seed")
        row = collect_table1(runs, finals, {runs[0].dataset: 10.0}).iloc[0]
    messages = [str(w.message) for w in seen]
    assert any(f"{configs[1].run_dir}: fine-tuned in part ({len(keys[2]) - 1} of {len(keys[2])}" in m
               and "moncae finetune" in m for m in messages), messages
    assert table["finetuned"].to_dict() == {1: True, 2: False, 3: False}
    assert table["finetuned_models"].to_dict() == {1: len(keys[1]), 2: len(keys[2]) - 1, 3: 0}
    assert table.loc[1, "finetune_seconds"] == 2.0 * len(keys[1])
    assert table.loc[2:, "finetune_seconds"].isna().all()
    assert row["finetuned_runs"] == 1 and row["source"] == "mixed" and row["cl_runs"] == 2
    assert "| 1.000 ± 0.000 (2 of 3 runs) |" in table1_markdown(pd.DataFrame([row]))


def test_runs_fine_tuned_with_other_settings_are_said_to_be_averaged_together(stub_config, tmp_path):
    configs = [stub_config(tmp_path / "R", seed=seed, generations=2) for seed in (1, 2)]
    for config, epochs in zip(configs, (20, 2)):
        run_search(config, task_fn=surrogate_task)
        _fine_tuned(config.run_dir, list(pd.read_csv(config.run_dir / "models" / "index.csv")["genome_key"]),
                    epochs)
    runs = collect_runs(tmp_path / "R")
    finals = pd.concat([collect_final_models(r) for r in runs], ignore_index=True)
    with pytest.warns(ReportWarning, match=r"fine-tuned with different settings \(epochs: 2, 20\)"):
        collect_table1(runs, finals, {runs[0].dataset: 10.0})


@pytest.mark.slow  # three whole reports (matplotlib)
def test_a_report_replaces_the_earlier_one_whole_and_a_stopped_one_leaves_it(stub_config, tmp_path, monkeypatch):
    """Files of an earlier report stayed beside a new one (a strategy no longer in the results), and
    a report stopped part way left new tables beside the old report.md (a helper's audit)."""
    import shutil

    import moncae.report.build as build
    from moncae.report import build_report

    for name, settings in (("a", {}), ("b", {"strategy": "random"})):
        run_search(stub_config(tmp_path / "R" / name, generations=2, **settings), task_fn=surrogate_task)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = build_report(tmp_path / "R")
    folder = report.parent
    assert (folder / "strategies.csv").exists()
    (folder / "notes.txt").write_text("mine")
    (folder / ".partial-report-999999999-x").mkdir()  # left by a report killed with SIGKILL
    shutil.rmtree(tmp_path / "R" / "b")
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build, "report_markdown", stop)
    with warnings.catch_warnings(), pytest.raises(KeyboardInterrupt):
        warnings.simplefilter("ignore")
        build_report(tmp_path / "R")
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    assert [p.name for p in folder.iterdir() if p.is_dir()] == []  # nor a staging folder left
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_report(tmp_path / "R")
    names = {p.name for p in folder.iterdir()}
    assert not any(n.startswith("strategies") for n in names), names
    assert "notes.txt" in names and "report.md" in names
    assert {n for n in names if n.startswith(".")} == {".report.lock"}  # no staging folder left


def test_the_data_of_a_moved_run_is_found_with_data_dir(tmp_path, monkeypatch):
    """A run whose recorded data folder is gone (copied from another machine): the report could not
    find its data, and had no --data-dir (a helper's audit)."""
    from click.testing import CliRunner

    import moncae.report.build as build
    from moncae.cli.main import main
    from tests.test_data import write_idx_set

    write_idx_set(tmp_path / "there" / "mnist", n_train=120, n_test=40, hw=(16, 16))
    run_search(resolve_config(dataset="mnist", data_dir=str(tmp_path / "there"), seed=1, out=str(tmp_path / "R"),
                              train_size=80, val_size=40, test_size=40, generations=1, population=4),
               task_fn=surrogate_task)
    (tmp_path / "there").rename(tmp_path / "here")
    from moncae.data.spec import _cached_dataset

    _cached_dataset.cache_clear()  # the search loaded it in this process
    runs = collect_runs(tmp_path / "R")
    with pytest.warns(ReportWarning, match=f"cannot load the data from {tmp_path / 'there'} .*pass --data-dir"):
        assert build._load_dataset_for(runs) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = build._load_dataset_for(runs, tmp_path / "here")
    assert data is not None and len(data.x_test) == 40
    seen = []
    monkeypatch.setattr(build, "_load_dataset_for", lambda runs, data_dir=None: seen.append(data_dir))
    monkeypatch.delenv("MONCAE_DATA_DIR", raising=False)
    CliRunner().invoke(main, ["report", str(tmp_path / "R"), "--data-dir", str(tmp_path / "here"), "--quiet"])
    assert seen == [str(tmp_path / "here")]


def test_a_report_out_inside_a_run_folder_is_refused(stub_config, tmp_path):
    from moncae.errors import RunFolderError
    from moncae.report import build_report

    config = stub_config(tmp_path / "R", generations=1)
    run_search(config, task_fn=surrogate_task)
    for out in (config.run_dir, config.run_dir / "models" / "report"):
        with pytest.raises(RunFolderError, match=f"is inside the run folder {config.run_dir}; pass a folder"):
            build_report(tmp_path / "R", out=out)
    assert not (config.run_dir / "models" / "report").exists()


def test_a_folder_named_as_a_run_but_without_one_is_said_to_be_left_out(stub_config, tmp_path):
    config = stub_config(tmp_path / "R", generations=1)
    run_search(config, task_fn=surrogate_task)
    empty = config.run_dir.parent / "seed-8"
    (empty / "models").mkdir(parents=True)
    with pytest.warns(ReportWarning, match=f"{empty}: left out, it holds no config.json or evaluations.csv"):
        assert [r.seed for r in collect_runs(tmp_path / "R")] == [config.seed]


def test_two_reports_into_one_folder_swap_in_turn_and_a_file_already_gone_is_no_error(tmp_path):
    """Two reports' moves interleaved left a mix of both, and the one that lost exited 1 on a
    FileNotFoundError (a helper's audit)."""
    import fcntl
    import threading

    from moncae.report.output import LOCK_NAME, staged_report

    out = tmp_path / "out"
    out.mkdir()
    (out / "pca_baseline_a.csv").write_text("old")  # an earlier report's, not written again
    (out / "report.md").write_text("old")
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another report moving its files in right now
    done = []

    def other_report():
        with staged_report(out) as staging:
            (staging / "report.md").write_text("new")
        done.append(True)

    thread = threading.Thread(target=other_report)
    thread.start()
    thread.join(0.3)
    assert not done and (out / "report.md").read_text() == "old"  # it waits for the lock
    (out / "pca_baseline_a.csv").unlink()  # the other report removed it meanwhile
    os.close(fd)
    thread.join(10)
    assert done and (out / "report.md").read_text() == "new"


def test_the_pareto_title_names_a_pca_baseline_only_where_one_is_drawn():
    """With `--baselines none` it said "vs. a PCA baseline" above a figure with none (a helper's audit)."""
    import matplotlib

    matplotlib.use("Agg")
    from moncae.report.plots import plot_pareto

    finals = pd.DataFrame([{**dict.fromkeys(FINAL_COLUMNS, float("nan")), "seed": 1, "genome_key": "a",
                            "loc": 1.0, "rec_loss": 0.2, "source": "search", "status": "ok"}])
    pca = pd.DataFrame({"k": [8], "loc": [0.9], "rec_loss": [0.25]})
    assert plot_pareto(collect_pareto(finals, None, 2.5), dataset="d", loss="bce").get_title() == \
        "d: final models of 1 seed"
    assert plot_pareto(collect_pareto(finals, pca, 2.5), dataset="d", loss="bce").get_title() == \
        "d: final models of 1 seed vs. a PCA baseline"


def test_settings_groups_on_one_dataset_fit_its_pca_once_with_the_same_numbers(stub_config, tiny_npz, tmp_path,
                                                                               monkeypatch):
    """Every settings or strategy group fitted the same PCA again (28 s against 8.7 s for four
    strategies on Fashion-MNIST; minutes on larger images: a helper's audit)."""
    import moncae.report.build as build
    from moncae.data import cached_dataset
    from moncae.report import build_report
    from moncae.report.pca import pca_baseline

    for name, settings in (("a", {}), ("b", {"strategy": "random"}), ("c", {"strategy": "nsga2"})):
        run_search(stub_config(tmp_path / "R" / name, generations=2, **settings), task_fn=surrogate_task)
    fits, fit_pca = [], build.fit_pca
    monkeypatch.setattr(build, "fit_pca", lambda *args: fits.append(args) or fit_pca(*args))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = build_report(tmp_path / "R").parent
    tables = sorted(folder.glob("pca_baseline_*.csv"))
    assert len(tables) == 3 and len(fits) == 1
    data = cached_dataset(stub_config(tmp_path / "x").data_spec())
    for table in tables:  # the numbers of a PCA fitted for the group alone
        rows = pd.read_csv(table)
        alone = pca_baseline(data.x_train, data.x_test, rows["k"], "bce")
        np.testing.assert_array_equal(rows["rec_loss"].to_numpy(), alone["rec_loss"].to_numpy())


def test_the_pareto_legend_names_each_seed_up_to_ten_and_then_them_all_at_once():
    """With 200 seeds the legend listed one entry per seed and ran off the figure after ~26 (a
    helper's audit)."""
    import matplotlib

    matplotlib.use("Agg")
    from moncae.report.plots import plot_pareto

    def labels(seeds: int) -> list[str]:
        finals = pd.DataFrame([{**dict.fromkeys(FINAL_COLUMNS, float("nan")), "seed": s, "genome_key": f"g{s}",
                                "loc": 1.0 + s / 100, "rec_loss": 0.2, "source": "search", "status": "ok"}
                               for s in range(seeds)])
        ax = plot_pareto(collect_pareto(finals, None, 2.5), dataset="d", loss="bce")
        return [t.get_text() for t in ax.get_legend().get_texts()]

    assert [t for t in labels(10) if t.startswith("seed")] == [f"seed {s}" for s in range(10)]
    assert [t for t in labels(11) if "seed" in t and "front" not in t] == ["final models of 11 seeds"]
