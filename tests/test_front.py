"""`moncae front` and the export's choice of a model, without Keras: a surrogate run (objectives
from the genome, no training) and hand-made fronts. The real-model side is in test_export.py."""

from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from deap import tools

from moncae.cli.main import main
from moncae.config import SearchConfig, resolve_config
from moncae.errors import MoncaeError
from moncae.evaluation.surrogate import surrogate_task
from moncae.export import FRONT_TABLE_COLUMNS, choose, knee_distances, load_front
from moncae.method.architecture import forward_flops
from moncae.method.evolution import pareto_individual, same_key
from moncae.method.genome import Genome
from moncae.method.objectives import non_dominated_mask
from moncae.search.loop import run_search
from moncae.store import MODEL_INDEX_COLUMNS, model_filename, write_csv

SHAPE = (16, 16, 1)  # tiny_npz


@pytest.fixture(scope="module")
def surrogate_run(tiny_npz, tmp_path_factory):
    """A finished surrogate run: its front is real, its models were never kept (stub_config's
    settings, made once per module)."""
    config = resolve_config(dataset=str(tiny_npz), seed=3, out=str(tmp_path_factory.mktemp("front")),
                            generations=4, population=8, max_blocks=4, max_filters=32, elitism=0.25)
    return run_search(config, task_fn=surrogate_task).run_dir


@pytest.fixture
def run(surrogate_run, tmp_path):
    """A copy of the surrogate run for one test to read or damage."""
    return Path(shutil.copytree(surrogate_run, tmp_path / "run"))


def keep_fake_models(run) -> pd.DataFrame:
    """Pretend the final population's models were saved (files that only exist: enough to be
    chosen; loading them would fail)."""
    index = pd.read_csv(run / "models" / "index.csv")
    rows = []
    for row in index.to_dict("records"):
        name = model_filename(row["genome_key"])
        (run / "models" / name).write_bytes(b"not a model")
        rows.append({**row, "file": name, "status": "ok"})
    write_csv(run / "models" / "index.csv", MODEL_INDEX_COLUMNS, rows)
    return pd.DataFrame(rows)


def one_line_error(args, expected):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert expected in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert "Traceback" not in result.output and len(lines) == 1, result.output
    return lines[0]


# --------------------------------------------------------------------------- the front table


def test_front_is_pareto_front_csv_joined_with_evaluations(run):
    front = load_front(run)
    csv = pd.read_csv(run / "pareto_front.csv")
    ev = pd.read_csv(run / "evaluations.csv").set_index("genome_key")
    space = SearchConfig.from_dict(json.loads((run / "config.json").read_text())["run"]).genome_space()
    assert list(front.columns) == FRONT_TABLE_COLUMNS
    assert sorted(front["genome_key"]) == sorted(csv["genome_key"]) and len(front) >= 3
    assert front["on_front"].all() and (front["rec_loss_split"] == "val").all()
    assert list(front["loc"]) == sorted(front["loc"])
    assert non_dominated_mask(front[["search_rec_loss", "loc"]].to_numpy()).all()
    for row in front.to_dict("records"):
        e = ev.loc[row["genome_key"]]
        genome = Genome(tuple(int(e[name]) for name in space.gene_names()), space)
        assert genome.key_for(SHAPE) == row["genome_key"]
        assert row["id"] == model_filename(row["genome_key"]).removesuffix(".keras")
        assert (row["bottleneck"], row["params"]) == (e["bottleneck"], e["params"])
        assert row["rec_loss"] == row["search_rec_loss"] == pytest.approx(e["rec_loss"])
        assert row["loc"] == pytest.approx(e["loc"])
        assert row["flops"] == forward_flops(genome, SHAPE) > 0
        assert row["searched_model"] == row["finetuned_model"] == ""  # the surrogate keeps none
        assert math.isnan(row["cl_acc"])


def test_all_models_adds_the_final_population_off_the_front(run):
    front = load_front(run, all_models=True)
    final = set(pd.read_csv(run / "models" / "index.csv")["genome_key"])
    on = front[front["on_front"]]
    off = front[~front["on_front"]]
    assert list(on["genome_key"]) == list(load_front(run)["genome_key"])
    assert set(off["genome_key"]) == final - set(on["genome_key"])
    assert front.index.tolist() == list(range(len(front)))
    assert list(front["in_final"]) == [k in final for k in front["genome_key"]]


def test_fine_tuned_figures_replace_the_loss_and_say_test(run):
    keep_fake_models(run)
    front = load_front(run, all_models=True)
    tuned, failed = front[front["searched_model"] != ""].iloc[:2].to_dict("records")
    (run / "finetuned").mkdir()
    (run / "finetuned" / model_filename(tuned["genome_key"])).write_bytes(b"x")
    rows = [{"individual": 0, "genome_key": tuned["genome_key"], "rec_loss": 0.0123, "cl_acc": 0.9,
             "status": "ok"},
            {"individual": 1, "genome_key": failed["genome_key"], "rec_loss": "", "cl_acc": "",
             "status": "failed"}]
    pd.DataFrame(rows).to_csv(run / "finetune.csv", index=False)
    front = load_front(run, all_models=True).set_index("genome_key")
    a, b = front.loc[tuned["genome_key"]], front.loc[failed["genome_key"]]
    assert (a["rec_loss"], a["rec_loss_split"], a["cl_acc"]) == (0.0123, "test", 0.9)
    assert a["search_rec_loss"] == tuned["search_rec_loss"]
    assert a["finetuned_model"].endswith(model_filename(tuned["genome_key"]))
    assert (b["rec_loss_split"], b["finetuned_model"]) == ("val", "")


def test_cli_front_prints_a_table_json_and_csv(run):
    front = load_front(run)
    table = CliRunner().invoke(main, ["front", str(run)])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split() == ["key", "architecture", "bottleneck", "LOC", "rec_loss", "split",
                                "params", "FLOPs", "model"]
    assert len(lines) == len(front) + 2 and f"{len(front)} front points" in lines[-1]
    for line, row in zip(lines[1:], front.to_dict("records")):
        assert line.startswith(row["id"][:8]) and f"{row['loc']:.3f}" in line and line.endswith("-")

    as_json = json.loads(CliRunner().invoke(main, ["front", str(run), "--json"]).output)
    assert [r["genome_key"] for r in as_json] == list(front["genome_key"])
    assert as_json[0]["cl_acc"] is None and isinstance(as_json[0]["flops"], int)

    as_csv = pd.read_csv(io.StringIO(CliRunner().invoke(main, ["front", str(run), "--csv"]).output),
                         keep_default_na=False)
    assert list(as_csv.columns) == FRONT_TABLE_COLUMNS
    assert np.allclose(as_csv["loc"], front["loc"]) and list(as_csv["id"]) == list(front["id"])


def test_reading_the_front_never_loads_tensorflow(run):
    code = ("import sys\nfrom moncae import load_front\nfrom moncae.cli.main import main\n"
            f"assert len(load_front({str(run)!r}))\n"
            f"main(['front', {str(run)!r}, '--all'], standalone_mode=False)\n"
            "bad = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
            "assert not bad, bad\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _unfinished(run):
    state = json.loads((run / "checkpoint.json").read_text())
    state["finished"] = False
    (run / "checkpoint.json").write_text(json.dumps(state))


def _damage_loc(run):
    front = pd.read_csv(run / "pareto_front.csv", dtype=str)
    front.loc[0, "loc"] = "two"
    front.to_csv(run / "pareto_front.csv", index=False)


@pytest.mark.parametrize("command", ["front", "export"])
@pytest.mark.parametrize("make_bad, expected", [
    (lambda run: run / "nope", "not a moncae run folder"),
    (lambda run: _unfinished(run) or run, "no final population"),
    (lambda run: (run / "pareto_front.csv").unlink() or run, "no pareto_front.csv"),
    (lambda run: (run / "evaluations.csv").write_text("genome_key\nx\n") and run, "lacks the column"),
    (lambda run: _damage_loc(run) or run, "malformed"),
])
def test_an_unfinished_or_damaged_run_is_a_one_line_error(run, tmp_path, command, make_bad, expected):
    target = make_bad(run)
    args = ["front", str(target)] if command == "front" else \
        ["export", str(target), str(tmp_path / "out"), "--knee"]
    one_line_error(args, expected)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- choosing a model


def hand_front() -> pd.DataFrame:
    """Five front points (loss, LOC); C's model was not kept, F is a final model off the front."""
    points = [("a", 0.05, 3.0, True), ("b", 0.10, 2.0, True), ("c", 0.12, 1.5, False),
              ("d", 0.30, 1.0, True), ("e", 0.60, 0.5, True)]
    rows = [{"id": f"{name * 4}{i:012d}", "genome_key": f"key-{name}", "loc": loc,
             "search_rec_loss": loss, "rec_loss": loss, "on_front": True, "in_final": kept,
             "searched_model": f"models/{name}.keras" if kept else "", "finetuned_model": ""}
            for i, (name, loss, loc, kept) in enumerate(points)]
    rows.append({"id": "ffff" + "9" * 12, "genome_key": "key-f", "loc": 2.5, "search_rec_loss": 0.5,
                 "rec_loss": 0.5, "on_front": False, "in_final": True, "searched_model": "models/f.keras",
                 "finetuned_model": "finetuned/f.keras"})
    return pd.DataFrame(rows)


def test_knee_distances_are_distances_from_the_extremes_line_in_normalised_space():
    front = hand_front()[lambda f: f["on_front"]]
    x = (front["search_rec_loss"] - 0.05) / 0.55
    y = (front["loc"] - 0.5) / 2.5
    expected = np.maximum(0.0, 1 - x - y) / math.sqrt(2)  # the line through (0, 1) and (1, 0)
    assert knee_distances(front["search_rec_loss"], front["loc"]) == pytest.approx(expected.to_numpy())
    # beyond the line (a concave stretch): no knee, however far
    assert knee_distances([0, 0.9, 1], [1, 0.9, 0]).tolist() == [0.0, 0.0, 0.0]
    assert knee_distances([0, 0.1, 1], [1, 0.1, 0])[1] == pytest.approx(0.8 / math.sqrt(2))
    assert knee_distances([0.1, 0.2], [2.0, 1.0]).tolist() == [0.0, 0.0]
    assert knee_distances([0.1, 0.1, 0.1], [1.0, 1.0, 1.0]).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("rule, chosen, note", [
    ({"max_loc": 2.0}, "b", None),  # b, c, d, e qualify: b has the lowest loss
    ({"max_loc": 1.6}, "d", "cccc"),  # c would be best but was not kept
    ({"max_loc": 3.0}, "a", None),
    ({"max_loss": 0.2}, "b", "cccc"),  # a, b, c qualify: c has the smallest LOC, not kept
    ({"max_loss": 0.6}, "e", None),
    ({"knee": True}, "d", "cccc"),  # c is farthest from the a-e line, then d
    ({"key": "bbbb"}, "b", None),
    ({"key": "key-f"}, "f", None),  # a final model off the front, by its genome key
])
def test_rules_pick_the_best_kept_model(rule, chosen, note):
    choice = choose(hand_front(), **rule)
    assert choice.row["genome_key"] == f"key-{chosen}"
    assert (note is None and not choice.notes) or (note and note in choice.notes[0])


def test_constraints_compare_at_the_printed_precision():
    front = hand_front().assign(loc=[3.0, 2.0, 1.5, 1.80617997, 0.5, 2.5])
    assert choose(front, max_loc=1.806).row["genome_key"] == "key-d"  # LOC 1.806 as printed
    front = front.assign(search_rec_loss=[0.05, 0.10, 0.12, 0.30004, 0.6, 0.5])
    assert choose(front, max_loss=0.3).row["genome_key"] == "key-d"


def test_fine_tuned_weights_are_preferred_unless_searched():
    front = hand_front()
    assert (choose(front, key="ffff").file, choose(front, key="ffff").weights) == \
        ("finetuned/f.keras", "finetuned")
    assert choose(front, key="ffff", searched=True).file == "models/f.keras"


@pytest.mark.parametrize("rule, message", [
    ({"max_loc": 0.1}, "no model on the front has LOC <= 0.1; the closest kept model is eeee"),
    ({"max_loc": 0.1}, "(LOC 0.500, val loss 0.6000): try --max-loc 0.500"),
    ({"max_loss": 0.01}, "the closest kept model is aaaa0000 (LOC 3.000, val loss 0.0500)"),
    ({"key": "cccc"}, "has no saved model: it is on the front but not in the final population"),
    ({"key": "zzz"}, "no model with key 'zzz'"),
    ({"key": "key-f", "searched": True, "_drop": "models/f.keras"}, "its model file is missing"),
    ({"key": ""}, "no model with key ''"),
    ({}, "exactly one of --key, --max-loc, --max-loss, --knee (given: none)"),
    ({"knee": True, "max_loc": 1.0}, "(given: --max-loc, --knee)"),
])
def test_nothing_qualifies_is_one_line_naming_the_closest(rule, message):
    front = hand_front()
    if "_drop" in rule:  # a file listed in models/index.csv but gone
        front.loc[front["searched_model"] == rule.pop("_drop"), "searched_model"] = ""
    with pytest.raises(MoncaeError) as err:
        choose(front, **rule)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_ambiguous_prefix_and_unkept_qualifiers_are_explained():
    front = hand_front().assign(id=["ab01", "ab02", "cc03", "dd04", "ee05", "ff06"])
    with pytest.raises(MoncaeError, match="key 'ab' is ambiguous: it starts 2 model names"):
        choose(front, key="ab")
    assert choose(front, key="AB02.keras").row["genome_key"] == "key-b"
    only_c = front.assign(searched_model=["", "", "", "x", "x", "x"])
    with pytest.raises(MoncaeError, match=r"no kept model has LOC <= 1.5: 1 front point\(s\) do, e.g. cc03"):
        choose(only_c.assign(loc=[3.0, 2.0, 1.5, 1.6, 1.7, 2.5]), max_loc=1.5)
    with pytest.raises(MoncaeError, match="none of the 5 front points has a saved model"):
        choose(front.assign(searched_model="", finetuned_model=""), knee=True)


# --------------------------------------------------------------------------- export's early errors


def test_export_errors_before_loading_anything(run, tmp_path):
    one_line_error(["export", str(run), str(tmp_path / "o"), "--max-loc", "0.1"],
                   "none of the")  # the surrogate kept no model at all
    keep_fake_models(run)
    front = load_front(run, all_models=True)
    kept = front[front["on_front"] & (front["searched_model"] != "")]
    lowest = kept.sort_values("loc").iloc[0]
    line = one_line_error(["export", str(run), str(tmp_path / "o"), "--max-loc", "0.1"],
                          "no model on the front has LOC <= 0.1; the closest kept model is "
                          f"{lowest['id'][:8]} (LOC {lowest['loc']:.3f}, val loss "
                          f"{lowest['search_rec_loss']:.4f})")
    assert line.startswith("Error: ")
    one_line_error(["export", str(run), str(tmp_path / "o"), "--key", "0000000000"], "no model with key")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    one_line_error(["export", str(run), str(tmp_path / "full"), "--knee"], "is not empty")
    one_line_error(["export", str(run), str(tmp_path / "o"), "--knee", "--key", "ab"], "exactly one of")
    assert not (tmp_path / "o").exists()


def test_a_front_with_no_point_inside_its_extremes_line_has_no_knee_and_gives_the_lowest_loss():
    rows = [{"id": f"{n * 4}" + "0" * 12, "genome_key": f"key-{n}", "loc": loc, "search_rec_loss": loss,
             "rec_loss": loss, "on_front": True, "in_final": True, "searched_model": f"models/{n}.keras",
             "finetuned_model": ""} for n, loss, loc in (("a", 0.1, 3.0), ("b", 0.5, 2.9), ("c", 0.6, 0.5))]
    choice = choose(pd.DataFrame(rows), knee=True)
    assert choice.row["genome_key"] == "key-a" and "no knee" in choice.rule


def test_a_point_beaten_on_loss_and_loc_is_no_knee_though_a_third_objective_kept_it():
    """As the README says; it scored on the low side of the line and `--knee` could export it
    when the point that beats it was not kept (an audit)."""
    assert list(knee_distances([0, 1, 0.3, 0.35], [1, 0, 0.3, 0.35])[2:]) == [pytest.approx(0.2828427), 0.0]
    frame = pd.DataFrame({"id": [c * 16 for c in "abcd"], "genome_key": list("abcd"),
                          "search_rec_loss": [0.1, 0.5, 0.22, 0.24], "loc": [3, 1, 1.6, 1.7],
                          "on_front": [True] * 4, "in_final": [True, True, False, True],
                          "searched_model": ["/x/a", "/x/b", "", "/x/d"], "finetuned_model": [""] * 4})
    assert choose(frame, knee=True).row["id"][0] != "d"


def test_the_hall_of_fame_keeps_the_minimised_front_once_per_network():
    hof = tools.ParetoFront(similar=same_key)
    hof.update([pareto_individual([1, 0, 0], "a", (0.10, 2.0)),   # front
                pareto_individual([1, 0, 1], "b", (0.20, 3.0)),   # dominated by a
                pareto_individual([1, 1, 1], "c", (0.30, 1.0)),   # front
                pareto_individual([1, 1, 0], "a", (0.10, 2.0))])  # other genes, the same network as a
    assert sorted(ind.key for ind in hof) == ["a", "c"]
