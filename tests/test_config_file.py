"""`moncae search --config FILE.toml`: what a settings file may hold, and how bad input is said
(one line, exit code 2, no traceback); all through `--dry-run`, which trains nothing."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from moncae.cli.main import main
from moncae.config import SearchConfig, resolve_config
from moncae.errors import MoncaeError

EXAMPLE = Path(__file__).resolve().parents[1] / "experiments" / "example.toml"
FLAGS = ["--dataset", "mnist_5k", "--seed", "1", "--preset", "smoke"]
BASE = ["search", *FLAGS]

INT_KEYS = {"seed", "generations", "population", "epochs", "batch_size", "patience", "train_size", "val_size",
            "test_size", "split_seed", "max_blocks", "max_filters", "models_per_gpu", "first_population",
            "promote_multiple", "finetune_epochs", "min_pool_side"}
NUMBER_KEYS = {"elitism", "promote", "vae_eps", "max_minutes"}
STR_KEYS = {"dataset", "loss", "selection", "strategy", "out", "executor", "space", "downsample", "fidelity",
            "final", "model", "promotion", "first_generation", "initial", "fitness", "latents", "data_dir",
            "preset", "scheduler"}
# TOML value -> (its Python value, the settings whose type takes it)
FUZZ = {
    "7": (7, INT_KEYS | NUMBER_KEYS | {"workers"}),
    "1.5": (1.5, NUMBER_KEYS),
    '"x"': ("x", STR_KEYS | {"workers", "objectives"}),  # objectives: "rec_loss,loc" as from the flag
    "true": (True, {"inherit"}),
    "[1]": ([1], {"ref_point"}),  # a list of numbers; then refused for its length
    "{a = 1}": ({"a": 1}, set()),
}


def _run(tmp_path, toml: str, *args: str):
    path = tmp_path / "settings.toml"
    path.write_text(toml)
    return CliRunner().invoke(main, ["search", *args, "--config", str(path), "--out", str(tmp_path / "out"),
                                     "--dry-run"])


def _no_crash(result) -> None:
    """No Python exception escaped the command (CliRunner catches it: no traceback is printed)."""
    assert isinstance(result.exception, (SystemExit, type(None))), repr(result.exception)
    assert "Traceback" not in result.output


def _one_line_error(result) -> str:
    _no_crash(result)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


@pytest.mark.parametrize("line", ["max_minutes = -3", "generations = 0", "elitism = 1.5"])
def test_a_value_out_of_range_in_a_config_file_names_the_file(tmp_path, line):
    key = line.split(" = ")[0]
    error = _one_line_error(_run(tmp_path, line + "\n", *FLAGS))
    assert f"`{key}` must be" in error and error.endswith(f"(in {tmp_path / 'settings.toml'})"), error
    flag = ["--generations", "0"] if key == "generations" else None  # the flag's value: no file named
    if flag:
        error = _one_line_error(_run(tmp_path, "generations = 3\n", *FLAGS, *flag))
        assert "(in " not in error, error


def test_the_fuzzed_keys_are_every_setting():
    names = {f.name for f in dataclasses.fields(SearchConfig)}
    assert INT_KEYS | NUMBER_KEYS | STR_KEYS | {"workers", "objectives", "inherit", "ref_point", "rungs",
                                                "optimizers"} == names


@pytest.mark.parametrize("toml_value", list(FUZZ))
@pytest.mark.parametrize("key", sorted(f.name for f in dataclasses.fields(SearchConfig)))
def test_any_value_of_any_setting_in_a_config_file_is_taken_or_refused_in_one_line(tmp_path, monkeypatch, key,
                                                                                    toml_value):
    monkeypatch.delenv("MONCAE_DATA_DIR", raising=False)  # data_dir from the file alone
    value, takers = FUZZ[toml_value]
    result = _run(tmp_path, f"{key} = {toml_value}\n", *FLAGS)
    if key in takers:  # the right type: runs, or its value is refused
        _no_crash(result)
        assert result.exit_code in (0, 2), result.output
        if result.exit_code == 2:
            _one_line_error(result)
        return
    line = _one_line_error(result)
    assert f"`{key}` must be " in line and f"Received: {key}={value!r} (in " in line, line


def test_a_wrong_type_from_python_is_the_same_one_line_error():
    with pytest.raises(MoncaeError, match=r"`data_dir` must be a string \(a folder path\). Received: data_dir=5$"):
        SearchConfig(data_dir=5)
    with pytest.raises(MoncaeError, match=r"`space` must be a string. Received: space=\[1\]$"):
        resolve_config(preset="smoke", space=[1])
    with pytest.raises(MoncaeError, match="`rungs` must be a list of \\[epochs, train_images\\] pairs"):
        SearchConfig(fidelity="rungs", rungs=[[1, "x"]])


def test_settings_outside_a_search_table_are_refused_naming_them(tmp_path):
    line = _one_line_error(_run(tmp_path, "generations = 1\nepochs = 1\n[search]\npopulation = 99\n", *FLAGS))
    assert "settings outside it (epochs, generations)" in line and "below the [search] line" in line
    result = _run(tmp_path, "[search]\ngenerations = 1\npopulation = 99\n", *FLAGS)  # all under it: read
    assert result.exit_code == 0, result.output
    assert "generations = 1" in result.output.splitlines() and "population = 99" in result.output.splitlines()


def test_the_files_dataset_and_seed_stand_for_the_flags_which_still_override_them(tmp_path):
    result = CliRunner().invoke(main, ["search", "--config", str(EXAMPLE), "--seed", "1", "--out",
                                       str(tmp_path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"-> {tmp_path / 'fashion_mnist' / 'seed-1'}" in result.output.splitlines()[0]
    result = _run(tmp_path, 'dataset = "mnist_5k"\nseed = 4\npreset = "smoke"\n')
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"# search mnist_5k seed 4 -> {tmp_path / 'out' / 'mnist_5k' / 'seed-4'}")
    result = _run(tmp_path, 'dataset = "fashion_mnist"\nseed = 4\npreset = "smoke"\n', "--seed", "5,6",
                  "--dataset", "mnist_5k")
    assert result.exit_code == 0, result.output
    assert [line.split(" ->")[0] for line in result.output.splitlines()[:2]] == [
        "# search mnist_5k seed 5", "# search mnist_5k seed 6"]


@pytest.mark.parametrize("missing", ["dataset", "seed"])
def test_a_missing_dataset_or_seed_says_the_flag_and_the_file_line(tmp_path, missing):
    given = {"dataset": "mnist_5k", "seed": "1"}
    del given[missing]
    args = ["--preset", "smoke", *[a for k, v in given.items() for a in (f"--{k}", v)]]
    line = _one_line_error(_run(tmp_path, "epochs = 1\n", *args))
    assert f"Missing option '--{missing}'" in line and f"set {missing} = " in line


def test_the_files_preset_applies_under_the_file_and_a_preset_flag_replaces_it(tmp_path):
    smoke = resolve_config(preset="smoke", dataset="mnist_5k", seed=1)
    result = _run(tmp_path, 'preset = "smoke"\nepochs = 3\n', "--dataset", "mnist_5k", "--seed", "1")
    lines = result.output.splitlines()
    assert result.exit_code == 0, result.output
    assert 'preset = "smoke"' in lines and "epochs = 3" in lines  # the file over its preset
    assert f"generations = {smoke.generations}" in lines and f"train_size = {smoke.train_size}" in lines
    quick = resolve_config(preset="quick", dataset="mnist_5k", seed=1)
    result = _run(tmp_path, 'preset = "smoke"\nepochs = 3\n', "--dataset", "mnist_5k", "--seed", "1",
                  "--preset", "quick", "--epochs", "4")
    lines = result.output.splitlines()
    assert result.exit_code == 0, result.output
    assert 'preset = "quick"' in lines and "epochs = 4" in lines  # flags over the file
    assert f"generations = {quick.generations}" in lines


def test_an_unknown_preset_in_a_file_is_refused_naming_the_file(tmp_path):
    line = _one_line_error(_run(tmp_path, 'preset = "bogus"\n', "--dataset", "mnist_5k", "--seed", "1"))
    assert "unknown preset 'bogus'" in line and "settings.toml" in line


@pytest.mark.parametrize(("args", "origin"), [
    (["--dataset", "mnist_5k", "--seed", "1", "--config", str(EXAMPLE)],
     f"train_size=10000 (from the --config file {EXAMPLE})"),
    (["--dataset", "mnist_5k", "--seed", "1", "--train-size", "4900"], "train_size=4900 (from --train-size)"),
    (["--dataset", "mnist_5k", "--seed", "1", "--preset", "smoke", "--val-size", "3900"],
     "train_size=256 (preset smoke's value)"),
])
def test_a_size_the_data_cannot_hold_says_where_it_came_from(tmp_path, args, origin):
    result = CliRunner().invoke(main, ["search", *args, "--out", str(tmp_path), "--dry-run"])
    line = _one_line_error(result)
    if "is not here" in result.output:  # pragma: no cover - no mnist_5k here: sizes unchecked
        pytest.skip("mnist_5k is not here")
    assert origin in line and "a preset's value unless set" not in line, line


@pytest.mark.parametrize("max_filters", [-1, 0, 3])
def test_a_dry_run_refuses_what_the_search_refuses_and_the_search_writes_nothing(tmp_path, max_filters):
    line = _one_line_error(_run(tmp_path, f"max_filters = {max_filters}\n", *FLAGS))
    assert "`max_filters` must be a power of two" in line
    path = tmp_path / "settings.toml"
    result = CliRunner().invoke(main, [*BASE, "--config", str(path), "--out", str(tmp_path / "real")])
    assert "power of two" in _one_line_error(result)
    assert not (tmp_path / "real").exists()  # no run folder holding only .lock


def test_a_dry_run_refuses_an_out_that_is_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(main, [*BASE, "--out", str(blocker), "--dry-run"])
    assert "is a file" in _one_line_error(result)


def test_a_flag_other_settings_leave_without_effect_is_warned_about(tmp_path):
    from moncae.config import SearchConfig, without_effect

    plain = SearchConfig()
    assert without_effect(plain, ["promote", "vae_eps", "scheduler", "generations"]) == [
        '--promote has no effect with fidelity "full" (one rung: nothing is promoted); it acts with '
        "--fidelity rungs or proxy",
        "--vae-eps has no effect with an autoencoder; it acts with --model vae",
        "--scheduler has no effect with the local executor; it acts with --executor dask"]
    rungs = SearchConfig(fidelity="rungs", rungs=((1, 100),), model="vae", loss="reformulated")
    assert without_effect(rungs, ["promote", "promotion", "vae_eps"]) == []
    assert without_effect(SearchConfig(strategy="nsga2"), ["models_per_gpu", "selection"]) == [
        "--models-per-gpu has no effect outside the Dask LocalCluster (it places that cluster's workers); it "
        "acts with --executor dask and no --scheduler",
        "--selection has no effect with strategy 'nsga2' (it picks the moncae GA's parents); it acts with "
        "--strategy moncae"]
    assert without_effect(SearchConfig(executor="dask"), ["models_per_gpu", "selection"]) == []
    result = CliRunner().invoke(main, ["search", "--dataset", "mnist_5k", "--seed", "1", "--preset", "smoke",
                                       "--promote", "0.5", "--out", str(tmp_path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert [line for line in result.output.splitlines() if line.startswith("Warning:")] == [
        'Warning: --promote has no effect with fidelity "full" (one rung: nothing is promoted); it acts '
        "with --fidelity rungs or proxy"]


def test_moncae_data_dir_gives_way_to_a_config_file_s_data_dir_and_a_flag_to_both(tmp_path, monkeypatch):
    """The README's order, defaults < preset < file < flags: the environment variable is no flag."""
    env, in_file, flag = (str(tmp_path / name) for name in ("from-env", "from-file", "from-flag"))
    for folder in (env, in_file, flag):
        Path(folder).mkdir()  # a data folder that is not there is refused, by a dry run too
    monkeypatch.setenv("MONCAE_DATA_DIR", env)
    toml = f'data_dir = "{in_file}"\n'
    assert f'data_dir = "{in_file}"' in _run(tmp_path, toml, *FLAGS).output
    assert f'data_dir = "{flag}"' in _run(tmp_path, toml, *FLAGS, "--data-dir", flag).output
    assert f'data_dir = "{env}"' in _run(tmp_path, "epochs = 1\n", *FLAGS).output


@pytest.mark.parametrize("preset, given", [
    ("smoke", {"model": "vae", "loss": "reformulated"}),
    ("quick", {"inherit": False, "objectives": "rec_loss,loc,params", "ref_point": (4.0, 12.0, 7.5), "epochs": 2}),
    ("smoke", {"fidelity": "rungs", "rungs": [[1, 64]], "elitism": 0.5, "promote": 0.5}),
])
def test_the_resume_command_a_run_names_gives_back_its_settings(tmp_path, preset, given):
    """What `finetune`, `export` and `front` print for an unfinished run: copied as it is, it must
    resume the run, not be refused for settings it left out (an audit: a VAE's --model, --loss)."""
    import shlex

    from moncae.config import resume_flags

    run = resolve_config(preset=preset, dataset="mnist_5k", seed=1, **given)
    flags, unflagged = resume_flags(run.results_settings(), preset)
    file = tmp_path / "rest.toml"
    file.write_text("".join(f"{name} = {json_value}\n" for name, json_value in
                            ((n, json.dumps(run.results_settings()[n])) for n in unflagged)))
    args = ["--dataset", "mnist_5k", "--seed", "1", "--preset", preset, "--generations", str(run.generations),
            *shlex.split(" ".join(flags))]
    result = _run(tmp_path, file.read_text(), *args)
    assert result.exit_code == 0, result.output
    toml = tmp_path / "back.toml"
    toml.write_text(result.output.split("\n\n")[0])
    again = resolve_config(config_file=toml)
    assert again.results_settings() == run.results_settings()
    assert set(unflagged) == {n for n in given if n in ("rungs", "elitism")}


def test_a_run_recorded_before_min_pool_side_is_told_to_set_its_old_value():
    from moncae.config import resume_flags

    old = resolve_config(preset="smoke", dataset="mnist_5k", seed=1).results_settings()
    del old["min_pool_side"]  # config.json before the setting: its maps went down to 1x1
    assert resume_flags(old, "smoke") == ([], ["min_pool_side"])
    assert SearchConfig.from_dict({**old, "seed": 1}).min_pool_side == 2
    assert resolve_config(preset="paper").min_pool_side == 3
