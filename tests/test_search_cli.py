"""`moncae search` bad input: one-line error, exit code 2, nothing written."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from moncae.cli.main import main

BASE = ["search", "--dataset", "mnist_5k", "--seed", "1", "--preset", "smoke"]


def _config(tmp_path, text: str) -> str:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["search", "--dataset", "no_such_data", "--seed", "1"], "no_such_data"),
        ([*BASE[:-1], "nope"], "unknown preset"),
        (["search", "--dataset", "mnist_5k", "--seed", "1,2,1"], "seed 1 is listed more than once"),
        ([*BASE, "--train-size", "0"], "train_size"),
        ([*BASE, "--val-size", "-3"], "val_size"),
        ([*BASE, "--test-size", "0"], "test_size"),
        ([*BASE, "--test-size", "5000"], "pass --test-size N with N <= 1000"),
        ([*BASE, "--population", "1"], "population"),
        ([*BASE, "--train-size", "999999"], "train"),
        ([*BASE, "--selection", "roulette-of-doom"], "selection"),
        ([*BASE, "--space", "wide"], "space"),
        (lambda tmp: [*BASE, "--config", _config(tmp, 'downsample = "avg"')], "downsample"),
        ([*BASE, "--final", "everything"], "final"),
        ([*BASE, "--initial", "spread"], 'needs space = "dense"'),  # smoke: the paper space
        (lambda tmp: [*BASE, "--config", _config(tmp, 'initial = "even"')], "initial"),
        (lambda tmp: [*BASE, "--config", _config(tmp, 'final = "best"')], "final"),
        ([*BASE, "--objectives", "rec_loss,loc,beauty"], "beauty"),
        ([*BASE, "--objectives", "loc,rec_loss"], "start with rec_loss,loc"),
        ([*BASE, "--objectives", "rec_loss,loc,params,params"], "each objective once"),
        ([*BASE, "--ref", "4,12,8"], "one value per objective"),
        ([*BASE, "--objectives", "rec_loss,loc,flops", "--ref", "4,12"], "one value per objective"),
        ([*BASE, "--ref", "4,nan"], "finite positive"),
        ([*BASE, "--ref", "4;12"], "--ref"),
        ([*BASE, "--ref", "4_0,12"], "must be numbers separated by commas"),  # Python's float: 40
        (lambda tmp: [*BASE, "--config", _config(tmp, 'ref_point = [4, "x"]')], "ref_point"),
        (lambda tmp: [*BASE, "--config", _config(tmp, 'space = "wide"')], "space"),
        (lambda tmp: [*BASE, "--config", _config(tmp, "space = 2")], "space"),
        (lambda tmp: [*BASE, "--config", _config(tmp, 'optimizers = ["adam", "quantum"]')], "optimizers"),
        (lambda tmp: [*BASE, "--config", _config(tmp, "colour = 3")], "unknown setting"),
        (lambda tmp: [*BASE, "--config", _config(tmp, 'epochs = "five"')], "epochs"),
        (lambda tmp: [*BASE, "--config", _config(tmp, "finetune_epochs = -1")], "finetune_epochs"),
        (lambda tmp: [*BASE, "--config", _config(tmp, "epochs = [")], "not valid TOML"),
        (lambda tmp: [*BASE, "--config", str(tmp / "missing.toml")], "missing.toml"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, expected):
    out = tmp_path / "out"
    argv = args(tmp_path) if callable(args) else args
    result = CliRunner().invoke(main, [*argv, "--out", str(out)])
    assert result.exit_code == 2, result.output
    message = [line for line in result.output.strip().splitlines() if line.strip()]
    assert expected in result.output, result.output
    assert "Traceback" not in result.output and len(message) <= 3  # click usage errors add 2 lines
    assert sum(line.startswith("Error:") for line in message) == 1
    assert not out.exists()


@pytest.mark.parametrize("dataset, more", [("no_such_data", []), ("missing.npz", []),
                                           ("mnist_5k", ["--test-size", "5000"]),  # sizes: checked on the data
                                           ("mnist_5k", ["--preset", "quick", "--train-size", "900"])])  # rungs
def test_a_data_problem_is_refused_before_the_run_is_announced(tmp_path, dataset, more):
    argv = ["search", "--dataset", dataset, "--seed", "1,2", "--out", str(tmp_path / "out"), *more]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 2 and result.output.startswith("Error: "), result.output
    assert len(result.output.strip().splitlines()) == 1 and "->" not in result.output


def test_output_path_that_is_a_file_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(main, [*BASE, "--out", str(blocker / "sub")])
    assert result.exit_code == 2 and "is a file" in result.output


def test_existing_run_without_resume_is_refused(tmp_path):
    run = tmp_path / "mnist_5k" / "seed-1"
    run.mkdir(parents=True)
    (run / "evaluations.csv").write_text("precious\n")
    result = CliRunner().invoke(main, [*BASE, "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--resume" in result.output
    assert (run / "evaluations.csv").read_text() == "precious\n"


def test_paper_seed_list_is_expanded():
    from moncae.cli.cmd_search import SeedParam

    assert SeedParam().convert("paper", None, None) == (46, 29, 12, 8, 68, 44, 32, 91, 85, 61)
    assert SeedParam().convert("1,2", None, None) == (1, 2)


def test_a_reader_that_leaves_early_is_no_error():
    """`moncae front RUN | head -1`: the closed pipe ends the command quietly, exit 0."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "moncae", "datasets"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before anything is written
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, stderr
    assert "Error" not in stderr and "Traceback" not in stderr


def test_several_seeds_share_one_executor_closed_at_the_end(tmp_path, monkeypatch):
    """`--seed 1,2` runs both searches on one executor (its workers import TensorFlow once), and
    closes it when the last ends, or when one fails; one seed leaves the executor to `run_search`."""
    from types import SimpleNamespace

    import moncae.search as search

    made, runs = [], []

    class Recorder:
        closed = False

        def close(self):
            self.closed = True

    def executor_for(config):
        made.append(Recorder())
        return made[-1]

    def fake_run(config, *, resume, progress, executor):
        runs.append((config.seed, executor))
        if config.seed == 3:
            raise RuntimeError("a search that fails")
        return SimpleNamespace(records=[], models_saved=0, run_dir=config.run_dir, unsaved=[])

    monkeypatch.setattr(search, "default_executor", executor_for)
    monkeypatch.setattr(search, "run_search", fake_run)
    argv = [*BASE, "--out", str(tmp_path), "--seeds-at-once", "1"]  # one after another
    argv[argv.index("--seed") + 1] = "1,2"
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output
    assert [line.split(" -> ")[0] for line in result.output.splitlines() if line.startswith("search ")] == [
        "search mnist_5k seed 1 (1 of 2)", "search mnist_5k seed 2 (2 of 2)"]
    assert [seed for seed, _ in runs] == [1, 2] and len(made) == 1
    assert all(executor is made[0] for _, executor in runs) and made[0].closed

    argv[argv.index("--seed") + 1] = "3,4"
    result = CliRunner().invoke(main, argv)
    assert isinstance(result.exception, RuntimeError) and len(made) == 2 and made[1].closed
    assert [seed for seed, _ in runs[2:]] == [3]

    runs.clear()
    argv[argv.index("--seed") + 1] = "5"
    assert CliRunner().invoke(main, argv).exit_code == 0
    assert runs == [(5, None)] and len(made) == 2


def test_dry_run_prints_settings_that_config_reads_back_and_writes_nothing(tmp_path, monkeypatch):
    from moncae.config import resolve_config

    monkeypatch.delenv("MONCAE_DATA_DIR", raising=False)  # --data-dir's default: not set
    out = tmp_path / "out"
    argv = ["search", "--dataset", "mnist_5k", "--seed", "3,4", "--preset", "quick", "--epochs", "9",
            "--ref", "3,11", "--out", str(out), "--dry-run"]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output
    assert not out.exists()
    lines = result.output.splitlines()
    assert lines[:2] == [f"# search mnist_5k seed {s} -> {out / 'mnist_5k' / f'seed-{s}'} (new)" for s in (3, 4)]
    settings = tmp_path / "settings.toml"
    settings.write_text(result.output)
    expected = resolve_config(preset="quick", dataset="mnist_5k", seed=3, epochs=9, ref_point=(3.0, 11.0),
                              out=str(out))
    assert resolve_config(config_file=settings) == expected
    assert "# data_dir: not set" in lines  # None has no TOML form


def test_the_progress_bar_shows_the_last_generations_hypervolume_once_there_is_one():
    from moncae.cli.cmd_search import BarProgress

    progress = BarProgress(quiet=False, bar=True)
    progress.generation_started(0, 2, 3, 0)
    assert progress.bar.item_show_func(None) == "cache hits 0"  # no "HV nan"
    progress.generation_done({"generation": 0, "hypervolume": 30.48031, "front_size": 2, "best_rec_loss": 0.5,
                              "min_loc": 2.0, "trained": 3, "cache_hits": 0, "seconds": 1.0})
    progress.generation_started(1, 2, 1, 2)
    assert progress.bar.item_show_func(None) == "cache hits 2, HV 30.480 after gen 1"
    progress.generation_done({"generation": 1, "hypervolume": 31.0, "front_size": 2, "best_rec_loss": 0.5,
                              "min_loc": 2.0, "trained": 1, "cache_hits": 2, "seconds": 1.0})


def test_the_progress_bar_goes_on_when_promotions_lengthen_it():
    from types import SimpleNamespace

    from moncae.cli.cmd_search import BarProgress

    progress = BarProgress(quiet=False, bar=True)
    progress.generation_started(0, 2, 2, 0)
    for _ in range(2):
        progress.evaluation_done(SimpleNamespace(generation=0, rung=0, seconds=1.0))
    assert progress.bar.finished  # click's: its length reached
    progress.promotion(0, 1, 2, 2, 2)  # two more: not finished (a full bar without its time left)
    assert (progress.bar.pos, progress.bar.length, progress.bar.finished) == (2, 4, False)
    assert progress.bar.label == "gen 1/2 rung 1"  # why the count grew (a helper's audit: 8/8, then 9/11)


def test_the_summary_line_shows_the_all_time_front_hypervolume_where_the_population_lost_some(capsys):
    from moncae.cli.cmd_search import BarProgress

    progress = BarProgress(quiet=True)
    progress.generation_started(0, 2, 4, 0)
    row = {"generation": 0, "hypervolume": 33.1708, "front_size": 3, "best_rec_loss": 0.5, "min_loc": 2.0,
           "trained": 4, "cache_hits": 0, "seconds": 1.0, "front_hypervolume": 33.1708}
    progress.generation_done(row)
    assert capsys.readouterr().out.startswith("gen  1/2  HV 33.1708  front 3")
    progress.generation_done({**row, "generation": 1, "hypervolume": 29.3591, "front_hypervolume": 34.3754})
    assert "HV 29.3591 (all-time 34.3754)  front 3" in capsys.readouterr().out


def test_quiet_promotion_lines_only_for_a_rung_with_candidates(capsys):
    from moncae.cli.cmd_search import BarProgress

    progress = BarProgress(quiet=True)
    progress.promotion(3, 1, 0, 0, 0)  # every genome of the generation was cached
    assert capsys.readouterr().out == ""
    progress.promotion(3, 1, 3, 1, 1)
    assert capsys.readouterr().out == "  rung 1: 1 of 3 promoted\n"
    progress.promotion(3, 1, 3, 2, 0)  # a resume's replay: their trainings are in the journal
    assert capsys.readouterr().out == "  rung 1: 2 of 3 promoted (2 trained before)\n"


def test_in_a_log_a_generation_says_what_it_trains_and_each_rung_what_it_promoted(capsys):
    """With stderr not a terminal, click's bar printed its label once and nothing more: a long
    generation gave no sign of life in a log (a helper's audit)."""
    from moncae.cli.cmd_search import BarProgress

    progress = BarProgress(quiet=False)  # stderr here is not a terminal
    assert not progress.show_bar
    progress.generation_started(2, 4, 8, 1)
    progress.promotion(2, 1, 8, 3, 3)
    assert capsys.readouterr().err == "gen 3/4: 8 to train, 1 cached\n  rung 1: 3 of 8 promoted\n"
    assert progress.bar is None


def test_the_summary_line_says_about_how_long_the_rest_takes():
    from moncae.cli.cmd_search import time_left

    assert time_left({0: 30.0}, 3) == ""  # only the first generation, which says little of the others
    assert time_left({0: 50.0, 1: 20.0, 2: 40.0}, 2) == "~60 s left"  # the first left out
    assert time_left({4: 100.0}, 3) == "~5.0 min left"  # a resumed run: its first generation counts


def test_the_time_left_stays_within_the_time_budget():
    from moncae.cli.cmd_search import time_left

    # 10 generations of 30 s to go, but a 2-minute budget with 60 s used: 60 s left of it, then one
    assert time_left({0: 30.0, 1: 30.0}, 10, max_minutes=2) == "~90 s left"
    assert time_left({0: 30.0, 1: 30.0}, 2, max_minutes=60) == "~60 s left"  # the budget is far
    # a resumed command has seen one generation of 30 s, but the run has used 100 s: with 30 s
    # of the longest, the next generation is the last
    assert time_left({5: 30.0}, 10, max_minutes=2, used=100.0, longest=30.0) == "~30 s left"


def test_a_dry_run_downloads_nothing_and_says_the_data_was_not_checked(tmp_path):
    empty = tmp_path / "data"
    empty.mkdir()
    argv = ["search", "--dataset", "cifar10", "--seed", "1", "--data-dir", str(empty), "--out",
            str(tmp_path / "out"), "--dry-run"]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output
    assert "# data: cifar10 is not here without a download, so the sizes are not checked" in result.output
    assert "Downloading" not in result.output and not (tmp_path / "out").exists()
    result = CliRunner().invoke(main, ["search", "--dataset", "no_such_data", "--seed", "1", "--dry-run"])
    assert result.exit_code == 2 and "Unknown dataset 'no_such_data'" in result.output


def test_results_failed_for_a_passing_reason_exit_1_with_the_first_reason_and_the_fix(capsys):
    from types import SimpleNamespace

    from moncae.cli.options import exit_if_unsaved

    exit_if_unsaved([], "final model(s)", "with --resume to train them again", "e.g. free memory")  # none: no exit
    unsaved = [SimpleNamespace(error="ResourceExhaustedError: OOM"), SimpleNamespace(error="lost")]
    with pytest.raises(SystemExit) as stop:
        exit_if_unsaved(unsaved, "final model(s)", "with --resume to train them again", "e.g. free memory")
    assert stop.value.code == 1
    assert capsys.readouterr().err == (
        "Error: 2 final model(s) failed for a passing reason (first: ResourceExhaustedError: OOM); fix it "
        "(e.g. free memory) and run the same command with --resume to train them again\n")


def test_a_search_whose_every_final_model_failed_exits_1_naming_the_error(tmp_path, monkeypatch):
    """With an unsupported Keras every training failed with a TypeError, and the search said
    "done: 0/4 final models trained" and exited 0 (a helper's audit)."""
    from types import SimpleNamespace

    import moncae.search as search

    failed = [SimpleNamespace(ok=False, error="TypeError: compute_loss() got an unexpected keyword argument")] * 4
    monkeypatch.setattr(search, "run_search", lambda *a, **k: SimpleNamespace(
        records=failed, models_saved=0, run_dir=tmp_path / "run", unsaved=[]))
    result = CliRunner().invoke(main, ["search", "--dataset", "mnist_5k", "--seed", "1", "--preset", "smoke",
                                       "--out", str(tmp_path), "--workers", "1", "--quiet"])
    assert result.exit_code == 1, result.output
    assert ("Error: every final model's training failed (1 distinct error(s); the first: TypeError: "
            "compute_loss() got an unexpected keyword argument); see the `error` column of") in result.output


def test_a_later_seed_refused_says_to_resume_for_the_seeds_done(tmp_path, monkeypatch):
    """`--seed 31,32` with seed 32 in use: "run this again" then failed on seed 31's results (an audit)."""
    from types import SimpleNamespace

    import moncae.search as search
    from moncae.errors import RunFolderError

    def one_seed(config, **kwargs):
        if config.seed == 2:
            raise RunFolderError(f"{config.run_dir} is in use by PID 1; wait for it, then run this again")
        return SimpleNamespace(records=[SimpleNamespace(ok=True, error="")], models_saved=1,
                               run_dir=config.run_dir, unsaved=[])

    monkeypatch.setattr(search, "run_search", one_seed)
    monkeypatch.setattr(search, "default_executor", lambda config: SimpleNamespace(close=lambda: None))
    result = CliRunner().invoke(main, ["search", "--dataset", "mnist_5k", "--seed", "1,2", "--preset", "smoke",
                                       "--out", str(tmp_path), "--quiet", "--seeds-at-once", "1"])
    assert result.exit_code == 2, result.output
    assert ("wait for it, then run this again (seed(s) 1 of this command are done: add --resume when you "
            "run it again)") in result.output


def test_the_time_left_counts_the_last_generation_promoting_the_whole_population():
    from types import SimpleNamespace

    from moncae.cli.cmd_search import BarProgress, last_generation_extra

    # gens 1 and 2: 10 s of wall each for 20 s of trainings (two at once); 2 genomes reached the
    # top rung in 12 s of trainings above rung 0, so each further one costs 6 s x 10/20 = 3 s
    seconds, work, above, top = {0: 99.0, 1: 10.0, 2: 10.0}, {1: 20.0, 2: 20.0}, {1: 12.0}, {1: 2}
    assert last_generation_extra(seconds, work, above, top, below_top=4) == pytest.approx(4 * 3.0)
    assert last_generation_extra(seconds, work, {}, {}, below_top=4) == 0.0  # none promoted yet
    assert last_generation_extra({0: 99.0}, {0: 150.0}, {0: 90.0}, {0: 3}, below_top=4) == 0.0  # gen 0 alone
    progress = BarProgress(quiet=True)
    progress.generations = 5
    for gen, rung, secs in [(1, 0, 8.0), (1, 0, 8.0), (1, 1, 12.0), (2, 0, 10.0), (2, 0, 10.0)]:
        progress.evaluation_done(SimpleNamespace(generation=gen, rung=rung, seconds=secs))
    progress.seconds = {1: 14.0, 2: 10.0}
    progress.population_rungs(5)  # typical 12 s a generation; 5 x 12 s x 24/48 for the last
    assert progress.time_left(2) == "~54 s left"
    progress.rungs = {1: {0: 3}, 2: {0: 2}}  # one rung only (fidelity "full"): no extra
    assert progress.time_left(2) == "~24 s left"


def test_the_time_left_goes_by_generations_that_trained_something(capsys):
    from types import SimpleNamespace

    from moncae.cli.cmd_search import BarProgress

    progress = BarProgress(quiet=True)
    row = {"hypervolume": 1.0, "front_size": 1, "best_rec_loss": 0.3, "min_loc": 1.0, "trained": 4,
           "cache_hits": 0}
    progress.generation_started(2, 8, 0, 4)
    progress.generation_done({**row, "generation": 2, "seconds": 0.0})  # read from the journal alone
    assert "left" not in capsys.readouterr().out
    progress.generation_started(3, 8, 2, 2)
    progress.evaluation_done(SimpleNamespace(generation=3, rung=0, seconds=20.0))
    progress.generation_done({**row, "generation": 3, "seconds": 20.0})
    assert capsys.readouterr().out.rstrip().endswith("20.0s  ~80 s left")  # 4 more of 20 s, not of 10 s


def test_a_dry_run_says_whether_resume_would_take_an_existing_run_folder(tiny_npz, tmp_path):
    from moncae.config import resolve_config
    from moncae.evaluation.surrogate import surrogate_task
    from moncae.search.loop import run_search

    config = resolve_config(dataset=str(tiny_npz), seed=3, out=str(tmp_path), generations=1, population=4)
    run_search(config, task_fn=surrogate_task)
    args = ["search", "--dataset", str(tiny_npz), "--seed", "3", "--out", str(tmp_path), "--population", "4",
            "--dry-run"]
    same = CliRunner().invoke(main, [*args, "--generations", "1"])
    assert same.exit_code == 0 and "(exists: --resume continues it)" in same.output, same.output
    longer = CliRunner().invoke(main, [*args, "--generations", "2"])
    assert longer.exit_code == 0 and "(exists: --resume continues it to 2 generations)" in longer.output, \
        longer.output
    other = CliRunner().invoke(main, [*args, "--generations", "2", "--epochs", "3"])
    assert other.exit_code == 0 and "(exists with other epochs, generations: --resume would refuse these " \
        "settings; use the run's own, or another --out)" in other.output, other.output
    (config.run_dir / "finetune.csv").write_text("individual\n")  # a fine-tuned run is not lengthened
    refused = CliRunner().invoke(main, [*args, "--generations", "2"])
    assert refused.exit_code == 0 and "(exists with other generations: --resume would refuse these settings " \
        "(its fine-tune (finetune.csv) would no longer match its final models" in refused.output, refused.output


def test_a_multi_seed_search_refuses_an_existing_seed_folder_before_any_seed_trains(tiny_npz, tmp_path):
    existing = tmp_path / "tiny" / "seed-1"
    existing.mkdir(parents=True)
    (existing / "evaluations.csv").write_text("generation\n")
    result = CliRunner().invoke(main, ["search", "--dataset", str(tiny_npz), "--seed", "5,1", "--out",
                                       str(tmp_path), "--generations", "1", "--population", "4"])
    assert result.exit_code == 2 and "seed-1 already has results; pass --resume" in result.output, result.output
    assert not (tmp_path / "tiny" / "seed-5").exists()  # refused before seed 5 trained


def test_a_multi_seed_dry_run_says_its_settings_hold_the_first_seed(tiny_npz, tmp_path):
    result = CliRunner().invoke(main, ["search", "--dataset", str(tiny_npz), "--seed", "1,2", "--out",
                                       str(tmp_path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "# the settings below hold seed 1: `--config` reads them back for that seed; pass --seed for " \
           "the others" in result.output and "\nseed = 1\n" in result.output
