"""Table 1, the strategy comparison and the Pareto / PCA data on hand-made inputs, against numbers
computed by hand (no search, no TensorFlow)."""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from moncae.report.collect import FINAL_COLUMNS, RunInfo, collect_pareto, collect_versus_pca
from moncae.report.strategies import collect_strategies, hv_at
from moncae.report.table1 import collect_runs_table, collect_table1, default_threshold


def _run(path, seed, *, finished=True, epochs=None, strategy="moncae", family="f"):
    config = SimpleNamespace(model="ae", strategy=strategy, selection="paper", fitness="paper",
                             latents="inherited")
    return RunInfo(Path(path), "d", seed, config, 3, 3, finished, epochs is not None, 1.0,
                   classifier_epochs=epochs, family=family)


def _model(seed, key, loc, loss, status="ok"):
    return {**dict.fromkeys(FINAL_COLUMNS, float("nan")), "dataset": "d", "seed": seed,
            "genome_key": key, "loc": loc, "rec_loss": loss, "status": status, "source": "search"}


def test_table1_counts_only_ok_models_strictly_below_the_threshold():
    finals = pd.DataFrame([_model(1, "a", 1.0, 0.1), _model(1, "b", 2.5, 9.0),  # b: at the threshold
                           _model(1, "c", 1.0, 5.0, status="failed"), _model(2, "d", 2.0, 0.3)])
    runs = [_run("r1", 1, epochs=10), _run("r2", 2, finished=False, epochs=20), _run("r3", 3)]  # r3: no model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        row = collect_table1(runs, finals, {"d": 2.5}).iloc[0]
        table = collect_runs_table(runs, finals, {"d": 2.5}).set_index("seed")
    assert row["models"] == 2 and row["rec_loss"] == pytest.approx(0.2)
    assert row["rec_loss_std"] == pytest.approx(np.std([0.1, 0.3], ddof=1))
    assert row["unfinished_runs"] == 1 and row["classifier_epochs"] == "10-20"
    assert table["models_below_threshold"].to_dict() == {1: 1, 2: 1, 3: 0}
    assert table["failed_models"].to_dict() == {1: 1, 2: 0, 3: 0}
    assert row["runs"] == 3 and row["rec_runs"] == 2  # r3 has no model below the threshold
    from moncae.report.markdown import table1_markdown

    line = next(ln for ln in table1_markdown(collect_table1(runs, finals, {"d": 2.5})).splitlines()
                if ln.startswith("| d "))
    assert "0.200 ± 0.141 † (2 of 3 runs)" in line and "1.500 ± 0.707 (2 of 3 runs)" in line, line


def test_default_thresholds_are_the_papers():
    assert (default_threshold(1), default_threshold(None), default_threshold(3)) == (2.5, 2.5, 3.1)


def test_hv_at_is_a_step_function_of_trainings():
    curve = pd.DataFrame({"generation": [0, 1, 2], "trainings_total": [8, 16, 24],
                          "front_hypervolume": [1.0, 2.0, 3.0]})
    assert [hv_at(curve, t) for t in (8, 16, 20, 99)] == [1.0, 2.0, 2.0, 3.0]
    assert math.isnan(hv_at(curve, 4))  # before its first generation ended: no value


def _generations(folder: Path, rows):
    folder.mkdir(parents=True)
    pd.DataFrame(rows, columns=["generation", "trainings_total", "front_hypervolume"]).to_csv(
        folder / "generations.csv", index=False)
    return folder


def _sign_flip_p(differences) -> float:
    """The exact two-sided paired permutation p, by enumerating every sign pattern."""
    import itertools

    observed = abs(np.mean(differences))
    flips = [abs(np.mean(np.multiply(differences, signs))) >= observed - 1e-12
             for signs in itertools.product((1, -1), repeat=len(differences))]
    return sum(flips) / len(flips)


def test_strategies_are_compared_at_the_fewest_trainings_of_a_finished_run(tmp_path):
    g = [(0, 8, 1.0), (1, 16, 2.0), (2, 24, 3.0)]
    runs = [
        _run(_generations(tmp_path / "m1", [g[1], g[2], g[0]]), 1),  # rows out of order
        _run(_generations(tmp_path / "m2", [(0, 8, 1.5), (1, 16, 2.5), (2, 24, 3.5)]), 2),
        _run(_generations(tmp_path / "m3", [(0, 8, 1.2), (1, 16, 2.9), (2, 24, 3.9)]), 3),
        _run(_generations(tmp_path / "r1", [(0, 8, 0.5), (1, 16, 1.0)]), 1, strategy="random"),
        _run(_generations(tmp_path / "r2", [(0, 8, 0.7), (1, 16, 1.1), (2, 20, 1.2)]), 2, strategy="random"),
        _run(_generations(tmp_path / "r3", [(0, 8, 0.6), (1, 16, 0.9), (2, 22, 1.3)]), 3, strategy="random"),
        _run(_generations(tmp_path / "u", [(0, 8, 9.0)]), 4, finished=False),  # unfinished: left out
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (compared,) = collect_strategies(runs).values()
    table = compared["table"].set_index("strategy")
    assert compared["budget"] == 16
    moncae, rnd = [2.0, 2.5, 2.9], [1.0, 1.1, 0.9]
    assert table.loc["moncae", "front_hv"] == pytest.approx(np.mean(moncae))
    assert table.loc["moncae", "front_hv_std"] == pytest.approx(np.std(moncae, ddof=1))
    assert table.loc["random", "trainings_used"] == pytest.approx(np.mean([16, 20, 22]))
    # seeds 1-3 on both sides: paired; every difference > 0, so only all-plus and all-minus are as
    # extreme: 2 of 8 sign patterns
    assert table.loc["moncae", "p_vs_random"] == pytest.approx(_sign_flip_p(np.subtract(moncae, rnd))) \
        == pytest.approx(0.25)
    assert math.isnan(table.loc["random", "p_vs_random"])


def test_versus_pca_leaves_a_size_pca_was_not_computed_at_uncompared():
    finals = pd.DataFrame([{**_model(1, "a", math.log10(3), 0.1), "latent_size": 3, "source": "finetune"}])
    pca = pd.DataFrame({"k": [2, 4, 8], "loc": np.log10([2, 4, 8]), "rec_loss": [0.4, 0.3, 0.2]})
    versus = collect_versus_pca(finals, pca)
    assert versus["pca_k"].tolist() == [""] and versus["pca_rec_loss"].isna().all()


def test_the_pareto_data_holds_the_non_dominated_ok_models_only():
    finals = pd.DataFrame([_model(1, "a", 1.0, 0.3), _model(1, "b", 2.0, 0.1), _model(1, "c", 2.0, 0.4),
                           _model(2, "x", 0.5, 0.05, status="failed")])
    pareto = collect_pareto(finals, None, 2.5)
    assert pareto["front"].values.tolist() == [[1.0, 0.3], [2.0, 0.1]]
    assert len(pareto["points"]) == 3 and pareto["failed"] == 1


def test_the_p_value_is_exact_and_unpaired_where_the_seeds_differ():
    import itertools

    from moncae.report.strategies import p_value

    x, y = {1: 3.0, 2: 4.0, 3: 5.0}, {4: 1.0, 5: 2.0}
    pooled, observed = [3.0, 4.0, 5.0, 1.0, 2.0], 4.0 - 1.5
    extreme = [abs(np.mean([pooled[i] for i in pick]) - np.mean([pooled[i] for i in range(5) if i not in pick]))
               >= observed - 1e-12 for pick in itertools.combinations(range(5), 3)]
    assert p_value(x, y) == pytest.approx(sum(extreme) / len(extreme)) == pytest.approx(0.2)
    assert math.isnan(p_value({1: 1.0}, {1: 2.0, 2: 3.0}))
    assert p_value({1: 1.0, 2: 1.0, 3: 1.0}, {1: 2.0, 2: 2.0, 3: 2.0}) == pytest.approx(0.25)  # ties: exact


def test_strategies_compared_within_a_first_generation_are_warned_about(tmp_path):
    from moncae.report.collect import ReportWarning

    runs = [_run(_generations(tmp_path / f"m{s}", [(0, 8, 1.0 + s), (1, 16, 2.0 + s)]), s) for s in (1, 2)] + [
        _run(_generations(tmp_path / f"r{s}", [(0, 8, 1.0 + s)]), s, strategy="random") for s in (1, 2)]
    with pytest.warns(ReportWarning, match="compared at 8 trainings, within a run's first generation"):
        (compared,) = collect_strategies(runs).values()
    assert compared["table"].set_index("strategy").loc["moncae", "front_hv"] == pytest.approx(2.5)
