"""`moncae report` on two tiny real runs: Table 1 against a hand computation, the LOC filter,
the PCA baseline against NumPy, the figures, and bad input."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from matplotlib.image import imread

from moncae.cli.main import main
from moncae.config import resolve_config
from moncae.data import cached_dataset
from moncae.report import TABLE1_COLUMNS, ReportWarning, build_report
from moncae.report.collect import collect_final_models, collect_pareto, collect_runs
from moncae.report.pca import pca_baseline
from moncae.report.table1 import channels_from_model, collect_table1, default_threshold
from moncae.search.loop import run_search

pytestmark = pytest.mark.slow  # trains real models

SEEDS = (2, 3)  # final LOCs: seed 2 {1.81, 3.80}, seed 3 {2.29}: both sides of 2.5
DATASET = "mnist_5k"


def tiny(out: Path, seed: int):
    return resolve_config(preset="smoke", dataset=DATASET, seed=seed, out=str(out), population=3,
                          train_size=128, val_size=64, test_size=128)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """Two finished real runs (two seeds) under one results folder."""
    out = tmp_path_factory.mktemp("results")
    for seed in SEEDS:
        run_search(tiny(out, seed))
    return out


@pytest.fixture(scope="module")
def report(results, tmp_path_factory) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReportWarning)  # finished runs: nothing to warn about
        return build_report(results, out=tmp_path_factory.mktemp("report"))


def run_dirs(results: Path) -> list[Path]:
    return [results / DATASET / f"seed-{s}" for s in SEEDS]


# --------------------------------------------------------------------------- hand computation


def final_models(run: Path) -> pd.DataFrame:
    """Distinct genomes of the last generation, with their evaluation status (by hand)."""
    pop = pd.read_csv(run / "population.csv")
    ev = pd.read_csv(run / "evaluations.csv")
    final = pop[pop["generation"] == pop["generation"].max()].drop_duplicates("genome_key")
    return final.merge(ev[["genome_key", "status"]], on="genome_key")


def expected_row(runs: list[Path], threshold: float) -> dict:
    per_seed, minutes, ft_seconds, models = [], [], [], 0
    for run in runs:
        final = final_models(run)
        final = final[(final["status"] == "ok") & (final["loc"] < threshold)]
        cols = {"rec_loss": final["rec_loss"], "loc": final["loc"]}
        if (run / "finetune.csv").exists():
            ft = pd.read_csv(run / "finetune.csv").set_index("genome_key")
            cols = {"rec_loss": ft.loc[final["genome_key"], "rec_loss"].to_numpy(),
                    "loc": final["loc"].to_numpy(),
                    "cl_loss": ft.loc[final["genome_key"], "cl_loss"].to_numpy(),
                    "cl_acc": ft.loc[final["genome_key"], "cl_acc"].to_numpy()}
            ft_seconds.append(ft["finetune_seconds"].sum())
        if len(final):
            per_seed.append({k: float(np.mean(v)) for k, v in cols.items()})
        models += len(final)
        minutes.append(pd.read_csv(run / "generations.csv")["seconds"].sum() / 60)

    def stats(values):
        values = [v for v in values if not math.isnan(v)]
        if not values:
            return math.nan, math.nan
        std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
        return float(np.mean(values)), std

    row = {"models": models, "runs": len(runs)}
    for col in ("rec_loss", "loc", "cl_loss", "cl_acc"):
        row[col], row[f"{col}_std"] = stats([s.get(col, math.nan) for s in per_seed])
    row["search_minutes"], row["search_minutes_std"] = stats(minutes)
    row["finetune_seconds"], row["finetune_seconds_std"] = stats(ft_seconds)
    return row


def assert_row_matches(actual: pd.Series, expected: dict) -> None:
    for key, value in expected.items():
        got = actual[key]
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(got), (key, got)
        else:
            assert got == pytest.approx(value, rel=1e-9, abs=1e-12), (key, got, value)


def all_locs(results: Path) -> list[float]:
    locs = set()
    for run in run_dirs(results):
        final = final_models(run)
        locs.update(final.loc[final["status"] == "ok", "loc"])
    return sorted(locs)


# --------------------------------------------------------------------------- Table 1


def test_table1_matches_a_hand_computation_from_the_csvs(results, report):
    table = pd.read_csv(report.parent / "table1.csv")
    assert list(table.columns) == TABLE1_COLUMNS
    assert len(table) == 1
    row = table.iloc[0]
    assert row["dataset"] == DATASET and row["loc_threshold"] == 2.5  # single channel default
    assert row["runs"] == 2 and row["unfinished_runs"] == 0 and row["finetuned_runs"] == 0
    assert row["source"] == "search" or (row["models"] == 0 and pd.isna(row["source"]))
    assert_row_matches(row, expected_row(run_dirs(results), 2.5))
    assert row["search_minutes"] > 0
    md = (report.parent / "table1.md").read_text()
    assert "| Dataset | Rec loss | LOC |" in md and f"| {DATASET} |" in md


def table1(results: Path, threshold: float) -> pd.Series:
    """Table 1's one row through the pure collectors (no figures)."""
    runs = collect_runs(results)
    finals = pd.concat([collect_final_models(r) for r in runs], ignore_index=True)
    return collect_table1(runs, finals, {DATASET: threshold}).iloc[0]


def test_loc_threshold_filters_the_models_averaged(results):
    locs = all_locs(results)
    assert len(locs) >= 2, "the tiny runs should hold at least two compression levels"
    for threshold in ((locs[0] + locs[1]) / 2, locs[-1], locs[-1] + 0.01):
        expected = expected_row(run_dirs(results), threshold)
        assert_row_matches(table1(results, threshold), expected)
    only_first = table1(results, (locs[0] + locs[1]) / 2)
    assert 0 < only_first["models"] < table1(results, locs[-1] + 0.01)["models"]
    assert only_first["loc"] == pytest.approx(locs[0]) and math.isnan(only_first["loc_std"])

    with pytest.warns(ReportWarning, match="no final model has LOC"):
        row = table1(results, locs[0] / 2)
    assert row["models"] == 0 and math.isnan(row["rec_loss"]) and row["search_minutes"] > 0


def test_cli_loc_threshold_overrides_the_default(results, tmp_path):
    result = CliRunner().invoke(main, ["report", str(results), "--out", str(tmp_path),
                                       "--loc-threshold", "3.9", "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(tmp_path / "report.md")
    row = pd.read_csv(tmp_path / "table1.csv").iloc[0]
    assert row["loc_threshold"] == 3.9
    assert_row_matches(row, expected_row(run_dirs(results), 3.9))


def test_run_figures_are_drawn_for_the_lowest_seeds_only_and_the_report_says_so(results, tmp_path):
    """A report of 200 seeds took 452 s, 96% of it in one reconstruction figure per run (a helper's audit)."""
    for number, drawn in (("1", [SEEDS[0]]), ("0", [])):
        result = CliRunner().invoke(main, ["report", str(results), "--out", str(tmp_path / number),
                                           "--run-figures", number])
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in (tmp_path / number).glob("reconstructions_*.png")) == [
            f"reconstructions_{DATASET}_seed-{s}.png" for s in drawn]
        text = (tmp_path / number / "report.md").read_text()
        assert f"for {len(drawn)} of the {len(SEEDS)} runs, the lowest seeds" in text
        assert f"figures of each run drawn for {len(drawn)} of {len(SEEDS)} runs" in result.stderr
    assert "No reconstruction figure (`--run-figures 0`)." in text


def test_finetune_results_replace_search_values_when_present(results, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(results, copy, ignore=shutil.ignore_patterns("report*"))
    run = run_dirs(copy)[1]
    final = final_models(run)
    ev = pd.read_csv(run / "evaluations.csv").set_index("genome_key")
    rows = [{"individual": r.individual, "genome_key": r.genome_key,
             "architecture": ev.loc[r.genome_key, "architecture"], "rec_loss": 0.1 + 0.01 * i,
             "loc": r.loc, "bottleneck": ev.loc[r.genome_key, "bottleneck"],
             "cl_loss": 1.0 + 0.1 * i, "cl_acc": 0.5 + 0.05 * i, "epochs": 20,
             "finetune_seconds": 10.0 + i, "status": "ok", "error": ""}
            for i, r in enumerate(final.itertuples())]
    pd.DataFrame(rows).to_csv(run / "finetune.csv", index=False)
    (run / "finetune.json").write_text('{"settings": {"epochs": 20, "classifier_epochs": 7}}')

    threshold = max(all_locs(copy)) + 1  # every model counts: both runs contribute
    path = build_report(copy, loc_threshold=threshold)
    assert path == copy / "report" / "report.md"
    row = pd.read_csv(path.parent / "table1.csv").iloc[0]
    assert row["finetuned_runs"] == 1 and row["source"] == "mixed"
    assert_row_matches(row, expected_row(run_dirs(copy), threshold))
    assert row["cl_acc"] == pytest.approx(np.mean([r["cl_acc"] for r in rows]))
    assert row["finetune_seconds"] == pytest.approx(sum(r["finetune_seconds"] for r in rows))
    assert "‡" in (path.parent / "table1.md").read_text()
    assert str(row["classifier_epochs"]) == "7"  # the accuracy is that budget's: the note says so
    note = "a softmax classifier on the frozen codes, trained for 7 epochs"
    assert note in (path.parent / "table1.md").read_text()

    # against PCA: the fine-tuned run's models beside PCA at their latent size; the other run's not counted
    versus = pd.read_csv(path.parent / f"versus_pca_{DATASET}.csv", dtype={"bottleneck": str})
    pca = pd.read_csv(path.parent / f"pca_baseline_{DATASET}.csv").set_index("k")["rec_loss"]
    tuned = versus[versus["source"] == "finetune"].set_index("genome_key")
    assert sorted(tuned.index) == sorted(r["genome_key"] for r in rows)
    assert set(versus.loc[versus["source"] == "search", "seed"]) == {SEEDS[0]}
    below = compared = capped = 0  # these tiny runs' bottlenecks may exceed PCA's components (training images - 1)
    for r in rows:
        model = tuned.loc[r["genome_key"]]
        k = int(round(10 ** r["loc"]))
        assert model["rec_loss"] == pytest.approx(r["rec_loss"]) and model["latent_size"] == k
        pca_k = k if k in pca.index else pca.index.max()  # larger: beside the largest PCA, counted if above it
        assert k in pca.index or k > pca_k
        assert model["pca_k"] == pca_k and model["pca_rec_loss"] == pytest.approx(pca[pca_k])
        assert model["difference"] == pytest.approx(r["rec_loss"] - pca[pca_k])
        if k == pca_k or r["rec_loss"] >= pca[pca_k]:
            compared, below, capped = compared + 1, below + (r["rec_loss"] < pca[pca_k]), capped + (k != pca_k)
    text = path.read_text()
    assert (f"**{below} of {compared} fine-tuned final models lie below PCA" if compared
            else "No fine-tuned final model has a PCA of its size") in text
    assert (f"{capped} of them {'has' if capped == 1 else 'have'} more latent values" in text) == (capped > 0)
    no_pca = len(rows) - compared
    assert (f"{no_pca} {'model has' if no_pca == 1 else 'models have'} more latent values" in text) == (no_pca > 0)


def test_a_fine_tune_s_test_image_losses_give_each_lead_over_pca_an_interval(results, tmp_path, monkeypatch):
    """A real fine-tune keeps each model's test images' losses; the report pairs them with PCA's on
    the same images (the standard error of the per-image differences, by hand here), caches PCA's,
    and takes a file that does not fit its model for no evidence, with a warning."""
    from moncae.finetune import finetune_run
    from moncae.report.pca import pca_image_losses
    from moncae.store import image_losses_filename

    copy = tmp_path / "results"
    shutil.copytree(results, copy, ignore=shutil.ignore_patterns("report*"))
    run = run_dirs(copy)[0]
    finetune_run(run, epochs=1, classifier_epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReportWarning)
        path = build_report(copy)
    versus = pd.read_csv(path.parent / f"versus_pca_{DATASET}.csv", dtype={"bottleneck": str})
    tuned = versus[(versus["source"] == "finetune") & (versus["pca_k"] == versus["latent_size"])]
    assert len(tuned) >= 1  # seed 2's 4x4x4 bottleneck: 64 values, PCA has up to 127 components here
    data = cached_dataset(tiny(copy, SEEDS[0]).data_spec())
    pca = pca_image_losses(data.x_train, data.x_test, tuned["latent_size"].astype(int), "bce")
    for _, m in tuned.iterrows():
        model = np.load(run / "finetuned" / image_losses_filename(m["genome_key"]))
        d = model - pca[int(m["latent_size"])]
        assert d.mean() == pytest.approx(m["difference"], abs=1e-4)  # Keras: BCE from the logits
        assert m["difference_se"] == pytest.approx(d.std(ddof=1) / math.sqrt(len(d)), rel=1e-9)
        assert m["difference_low"] == pytest.approx(m["difference"] - 1.959964 * m["difference_se"])
    assert versus.loc[versus["source"] == "search", "difference_se"].isna().all()  # seed 3: not fine-tuned
    assert "test images' losses were kept" in path.read_text()
    assert len(list((copy / ".baselines").glob("pca-*.npy"))) == len(set(tuned["latent_size"]))

    def no_fit(*_args, **_kwargs):
        raise AssertionError("PCA's per-image losses are in the cache")

    monkeypatch.setattr("moncae.report.build.pca_image_losses", no_fit)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReportWarning)
        path = build_report(copy)
    cached = pd.read_csv(path.parent / f"versus_pca_{DATASET}.csv", dtype={"bottleneck": str})
    pd.testing.assert_frame_equal(cached, versus)
    first = tuned.iloc[0]
    np.save(run / "finetuned" / image_losses_filename(first["genome_key"]), np.zeros(3))  # another split's
    with pytest.warns(ReportWarning, match="not 128 per-image test losses averaging to"):
        path = build_report(copy)
    again = pd.read_csv(path.parent / f"versus_pca_{DATASET}.csv", dtype={"bottleneck": str})
    rows = again.set_index("genome_key")
    assert pd.isna(rows.loc[first["genome_key"], "difference_se"])  # judged without it
    assert rows.loc[tuned["genome_key"].iloc[1:], "difference_se"].notna().all()


def test_default_threshold_follows_the_input_channels(results):
    files = sorted(str(f) for f in (run_dirs(results)[0] / "models").glob("*.keras"))
    assert channels_from_model(files) == 1  # read from the saved model, without Keras
    assert default_threshold(1) == 2.5 and default_threshold(3) == 3.1
    assert default_threshold(None) == 2.5


# --------------------------------------------------------------------------- PCA baseline


def numpy_pca_losses(x_train, x_test, ks, loss):
    """PCA's test losses by numpy's SVD; under BCE each k clipped at the grid value with the lowest
    BCE on the training images (all of them: fewer than CLIP_IMAGES here)."""
    from moncae.report.pca import CLIP_GRID, CLIP_IMAGES

    assert len(x_train) <= CLIP_IMAGES
    x = x_train.reshape(len(x_train), -1).astype(np.float64)
    t = x_test.reshape(len(x_test), -1).astype(np.float64)
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)

    def bce(target, r, clip):
        p = np.clip(r, clip, 1 - clip)
        return float(np.mean(-(target * np.log(p) + (1 - target) * np.log(1 - p))))

    out = []
    for k in ks:
        r = (t - mean) @ vt[:k].T @ vt[:k] + mean
        if loss == "bce":
            on_train = (x - mean) @ vt[:k].T @ vt[:k] + mean
            clip = min(CLIP_GRID, key=lambda c: bce(x, on_train, c))  # noqa: B023 (used at once)
            out.append(bce(t, r, clip))
        else:
            out.append(float(np.mean((t - np.clip(r, 0, 1)) ** 2)))
    return out


def test_pca_baseline_matches_numpy_svd(results, report):
    config = tiny(results, SEEDS[0])
    data = cached_dataset(config.data_spec())
    written = pd.read_csv(report.parent / f"pca_baseline_{DATASET}.csv")
    ks = written["k"].tolist()
    assert ks == sorted(ks) and ks[0] == 1 and max(ks) <= len(data.x_train) - 1
    assert {2 ** i for i in range(7)} <= set(ks)  # powers of two up to 64, at least
    assert written["loc"].to_numpy() == pytest.approx(np.log10(ks))
    expected = numpy_pca_losses(data.x_train, data.x_test, ks, "bce")
    assert written["rec_loss"].to_numpy() == pytest.approx(expected, rel=1e-4)
    assert np.all(np.diff(written["rec_loss"]) < 0)  # more components, better reconstructions

    mse = pca_baseline(data.x_train, data.x_test, [1, 8, 64], "mse")
    assert mse["rec_loss"].to_numpy() == pytest.approx(
        numpy_pca_losses(data.x_train, data.x_test, [1, 8, 64], "mse"), rel=1e-4)


def test_pareto_front_is_the_non_dominated_subset():
    finals = pd.DataFrame({
        "seed": [1, 1, 2, 2, 2], "loc": [1.0, 2.0, 1.5, 2.5, 1.0],
        "rec_loss": [0.5, 0.3, 0.6, 0.2, 0.9], "source": "search",
        "status": ["ok", "ok", "ok", "ok", "failed"],
    })
    info = collect_pareto(finals, None, 2.5)
    assert info["front"].values.tolist() == [[1.0, 0.5], [2.0, 0.3], [2.5, 0.2]]
    assert len(info["points"]) == 4 and info["failed"] == 1


# --------------------------------------------------------------------------- figures and report.md


def test_every_figure_is_a_sensible_png_and_report_md_embeds_it(report):
    folder = report.parent
    names = [f"pareto_{DATASET}.png", f"hv_history_{DATASET}.png",
             *(f"reconstructions_{DATASET}_seed-{s}.png" for s in SEEDS)]
    text = report.read_text()
    for name in names:
        image = imread(folder / name)
        height, width = image.shape[:2]
        assert 250 <= height <= 3000 and 250 <= width <= 4000, (name, image.shape)
        assert image[..., :3].std() > 0.05, f"{name} looks blank"
        assert f"]({name})" in text  # relative link, renders on GitHub
    assert "](table1.csv)" in text and "| Dataset | Rec loss |" in text
    assert not list(folder.glob(".*.tmp"))  # atomic writes left nothing behind


# ------------------------------------------------------------------ bad input, partial runs


def test_unfinished_run_is_reported_with_a_warning(results, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(results, copy, ignore=shutil.ignore_patterns("report*"))
    run = run_dirs(copy)[0]
    for name in ("population.csv", "generations.csv"):  # as if it crashed in generation 2
        df = pd.read_csv(run / name)
        df[df["generation"] == 0].to_csv(run / name, index=False)
    (run / "models" / "index.csv").unlink()
    empty = copy / DATASET / "seed-99"  # crashed before its first generation
    empty.mkdir()
    (empty / "config.json").write_text((run / "config.json").read_text())

    result = CliRunner().invoke(main, ["report", str(copy), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "stopped after generation 1 of 2" in result.stderr
    assert "seed-99: no finished generation" in result.stderr
    assert result.stdout.strip().endswith("report.md")
    row = pd.read_csv(copy / "report" / "table1.csv").iloc[0]
    assert row["runs"] == 2 and row["unfinished_runs"] == 1
    assert "unfinished" in (copy / "report" / "report.md").read_text()


def _malformed(tmp_path: Path, results: Path) -> tuple[Path, str]:
    copy = tmp_path / "bad"
    shutil.copytree(results / DATASET / f"seed-{SEEDS[0]}", copy / DATASET / "seed-1")
    path = copy / DATASET / "seed-1" / "generations.csv"
    lines = path.read_text().splitlines()
    cells = lines[2].split(",")
    cells[lines[0].split(",").index("seconds")] = "twelve"  # a column the report reads first
    lines[2] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    return copy, "generations.csv:3"


@pytest.mark.parametrize("case", ["missing", "empty", "malformed", "bad_config", "bad_threshold"])
def test_bad_input_exits_2_with_one_line(case, results, tmp_path):
    args, expected = {
        "missing": ([str(tmp_path / "nope")], "does not exist"),
        "empty": ([str(tmp_path)], "no run folders"),
        "bad_threshold": ([str(tmp_path), "--loc-threshold", "-1"], "loc-threshold"),
    }.get(case, (None, None))
    if case == "malformed":
        folder, expected = _malformed(tmp_path, results)
        args = [str(folder)]
    if case == "bad_config":
        run = tmp_path / "r" / DATASET / "seed-1"
        run.mkdir(parents=True)
        (run / "config.json").write_text(json.dumps({"run": {"colour": 3}}))
        args, expected = [str(tmp_path / "r")], "config.json"
    result = CliRunner().invoke(main, ["report", *args])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output
    if case in ("malformed", "bad_config"):  # the run is left out with a warning; then nothing is left
        warning, error = result.stderr.strip().splitlines()
        assert warning.startswith("Warning:") and expected in warning and "left out" in warning
        assert error.startswith("Error:") and "no run" in error
    elif case != "bad_threshold":
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_pareto_caption_names_the_split_when_table1_holds_no_model(results, tmp_path):
    """The figure shows every final model: its caption says which losses they are even when
    no model lies left of the threshold (Table 1's row is then empty)."""
    with pytest.warns(ReportWarning, match="no final model has LOC"):
        md = build_report(results, out=tmp_path, loc_threshold=0.5).read_text()
    assert "reconstruction loss (binary cross-entropy, after the search, validation split)" in md


def test_an_empty_hypervolume_history_draws_no_legend_and_warns_nothing():
    from moncae.report.plots import plot_hv_history

    info = {"runs": pd.DataFrame(columns=["seed", "generation", "hypervolume"]),
            "summary": pd.DataFrame(columns=["generation", "min", "max", "mean"]),
            "ref_point": (4.0, 12.0)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Matplotlib's "No artists with labels" was one
        ax = plot_hv_history(info, dataset="d")
    assert ax.get_legend() is None
