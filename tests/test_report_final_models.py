"""Which models `collect_final_models` takes as a run's final population, and which loss it reports
for each, on run folders written by hand (no search needed)."""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from types import SimpleNamespace

from moncae.report.collect import RunInfo, collect_final_models
from moncae.store import write_csv


def _folder(tmp_path: Path, *, index_keys=None, finetune=None) -> Path:
    write_csv(tmp_path / "population.csv", ["generation", "genome_key", "rec_loss", "loc"], [
        {"generation": 0, "genome_key": "old", "rec_loss": 0.9, "loc": 1.0},
        {"generation": 1, "genome_key": "a", "rec_loss": 0.2, "loc": 1.5},
        {"generation": 1, "genome_key": "a", "rec_loss": 0.2, "loc": 1.5},
        {"generation": 1, "genome_key": "b", "rec_loss": 0.3, "loc": 1.2}])
    columns = ["genome_key", "architecture", "bottleneck", "status", "rec_loss", "loc"]
    write_csv(tmp_path / "evaluations.csv", columns, [
        {"genome_key": k, "architecture": k, "bottleneck": "8", "status": "ok", "rec_loss": r, "loc": loc}
        for k, r, loc in (("old", 0.9, 1.0), ("a", 0.2, 1.5), ("b", 0.3, 1.2), ("s", 0.25, 1.1))])
    if index_keys is not None:
        write_csv(tmp_path / "models" / "index.csv", ["individual", "genome_key", "file", "status"],
                  [{"individual": i, "genome_key": k, "file": "", "status": "ok"}
                   for i, k in enumerate(index_keys)])
    if finetune is not None:
        write_csv(tmp_path / "finetune.csv", ["genome_key", "rec_loss", "cl_loss", "cl_acc",
                                              "finetune_seconds", "status"], finetune)
    return tmp_path


def _run(path, *, finished, finetuned=False):
    config = SimpleNamespace(ref_point=(4.0, 12.0))
    return RunInfo(path, "d", 1, config, 2, 2, finished, finetuned, 1.0)


def test_an_unfinished_run_reports_its_last_generation_once_per_network(tmp_path):
    finals = collect_final_models(_run(_folder(tmp_path), finished=False)).set_index("genome_key")
    assert sorted(finals.index) == ["a", "b"]
    assert finals["individuals"].to_dict() == {"a": 2, "b": 1}


def test_a_finished_run_reports_the_population_it_ended_with(tmp_path):
    # a survival strategy's final population (models/index.csv) need not be its last trained generation
    finals = collect_final_models(_run(_folder(tmp_path, index_keys=["a", "s"]), finished=True))
    assert sorted(finals["genome_key"]) == ["a", "s"]


def test_a_failed_fine_tune_row_leaves_the_search_loss(tmp_path):
    rows = [{"genome_key": "a", "rec_loss": 0.1, "cl_loss": 1.0, "cl_acc": 0.5, "finetune_seconds": 2,
             "status": "ok"},
            {"genome_key": "b", "rec_loss": "", "cl_loss": "", "cl_acc": "", "finetune_seconds": 1,
             "status": "failed"}]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        finals = collect_final_models(_run(_folder(tmp_path, finetune=rows), finished=False, finetuned=True))
    finals = finals.set_index("genome_key")
    assert (finals.loc["a", "source"], finals.loc["a", "rec_loss"]) == ("finetune", 0.1)
    assert finals.loc["b", "source"] == "search" and finals.loc["b", "rec_loss"] == 0.3
    assert not math.isnan(finals.loc["b", "rec_loss"])
