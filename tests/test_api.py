"""The Python API as a notebook uses it: paths as `Path`s, one-line errors for wrong arguments,
notices it can see, a failed start it can redo, its own random draws left alone."""

from __future__ import annotations

import logging
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import moncae
from moncae.errors import MoncaeError
from moncae.evaluation.surrogate import surrogate_task
from moncae.executors import LocalExecutor
from moncae.search.loop import SearchProgress, run_search
from moncae.store.lock import LOCK_NAME
from tests.runs import assert_same


def test_the_api_lists_its_names():
    assert set(moncae.__all__) <= set(dir(moncae))
    names = {"run_search", "SearchProgress", "RunResult", "default_executor", "FinetuneProgress"}
    assert names <= set(dir(moncae))


@pytest.mark.slow  # `load_model` (moncae.export) imports TensorFlow
def test_every_name_of_the_api_loads():
    for name in moncae.__all__:
        assert getattr(moncae, name) is not None


def test_paths_are_taken_where_strings_are(tmp_path, tiny_npz):
    config = moncae.resolve_config(dataset=Path(tiny_npz), out=tmp_path / "r", data_dir=tmp_path)
    assert (config.dataset, config.out, config.data_dir) == (str(tiny_npz), str(tmp_path / "r"), str(tmp_path))
    direct = moncae.SearchConfig(dataset=Path(tiny_npz), out=tmp_path / "r", data_dir=tmp_path)
    assert direct.run_dir == config.run_dir and direct.results_settings() == config.results_settings()


def test_a_config_that_is_not_one_is_a_moncae_error(tmp_path):
    with pytest.raises(MoncaeError, match="`config` must be a moncae.SearchConfig"):
        run_search("smoke")


def test_a_progress_without_the_hooks_is_refused_before_anything_is_written(stub_config, tmp_path):
    config = stub_config(tmp_path / "r")
    with pytest.raises(MoncaeError, match="`progress` must be a moncae.SearchProgress.*lacks generation_started"):
        run_search(config, progress=print, task_fn=surrogate_task)
    assert not (tmp_path / "r").exists()


class _Broken(SearchProgress):
    def generation_started(self, *args):
        raise RuntimeError("a notebook's hook failed")


def test_a_start_that_failed_before_its_first_training_can_start_again(stub_config, tmp_path):
    """Only `config.json` was written: nothing computed to lose, so no `resume` is needed."""
    config = stub_config(tmp_path / "r")
    with pytest.raises(RuntimeError, match="hook failed"):
        run_search(config, progress=_Broken(), task_fn=surrogate_task)
    assert sorted(p.name for p in config.run_dir.iterdir()) == sorted([LOCK_NAME, "config.json"])
    run_search(config, task_fn=surrogate_task)
    assert_same(config.run_dir, run_search(stub_config(tmp_path / "clean"), task_fn=surrogate_task).run_dir)


def test_a_folder_with_results_is_still_refused_without_resume(stub_config, tmp_path):
    config = stub_config(tmp_path / "r", generations=1)
    run_search(config, task_fn=surrogate_task)
    with pytest.raises(moncae.errors.RunFolderError, match="already has results; pass --resume"):
        run_search(config, task_fn=surrogate_task)


def test_notices_go_to_the_moncae_logger(stub_config, tmp_path, caplog):
    config = stub_config(tmp_path / "r", generations=1)
    with caplog.at_level(logging.INFO, logger="moncae"):
        run_search(config, resume=True, task_fn=surrogate_task)  # nothing there yet
    assert any("no run to resume there yet; starting it" in r.getMessage() and r.name == "moncae"
               for r in caplog.records), caplog.text


def test_an_in_process_search_leaves_the_global_random_states_as_they_were(stub_config, tmp_path):
    """A training seeds Python's and NumPy's global generators (here a stand-in that does)."""
    def seeding_task(task):
        random.seed(1)
        np.random.seed(1)
        return surrogate_task(task)

    random.seed(123)
    np.random.seed(123)
    expected = (random.random(), np.random.random())
    random.seed(123)
    np.random.seed(123)
    run_search(stub_config(tmp_path / "r", generations=2, workers=1), executor=LocalExecutor(),
               task_fn=seeding_task)
    assert (random.random(), np.random.random()) == expected


@pytest.mark.parametrize("kwargs, words", [
    ({"check_images": 0}, "`check_images` must be an integer >= 1"),
    ({"check_images": 2.5}, "`check_images` must be an integer >= 1"),
    ({"formats": "tiff"}, "unknown export format(s) tiff"),
])
def test_export_arguments_are_checked_first(tmp_path, kwargs, words):
    with pytest.raises(MoncaeError) as err:
        moncae.export_model(tmp_path / "no-run", tmp_path / "out", knee=True, **kwargs)
    assert words in str(err.value)


@pytest.mark.parametrize("kwargs, words", [
    ({"key": 5152}, "--key must be a genome key"),
    ({"max_loss": "x"}, "--max-loss must be a number >= 0"),
    ({"max_loc": True}, "--max-loc must be a number >= 0"),
])
def test_a_choice_of_the_wrong_type_is_a_moncae_error(kwargs, words):
    import pandas as pd

    from moncae.export.select import choose

    with pytest.raises(MoncaeError) as err:
        choose(pd.DataFrame(), **kwargs)
    assert words in str(err.value)


def test_resuming_a_finished_run_in_process_loads_no_tensorflow(stub_config, tmp_path):
    """Nothing to train: TensorFlow (seconds and hundreds of MB) loads only with a training."""
    config = stub_config(tmp_path / "r", generations=1, workers=1)
    run_search(config, task_fn=surrogate_task)
    code = ("import sys; from moncae.config import SearchConfig; from moncae.search.loop import run_search; "
            f"run_search(SearchConfig.from_dict({config.to_dict()!r}), resume=True); "
            "print('tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stdout + done.stderr


def test_a_search_result_is_a_table_of_its_final_population(stub_config, tmp_path):
    result = run_search(stub_config(tmp_path / "r", generations=2), task_fn=surrogate_task)
    frame = result.to_frame()
    assert list(frame["genome_key"]) == [r.genome_key for r in result.records]
    assert list(frame["fitness"]) == result.fitness and {"rec_loss", "loc", "status"} <= set(frame.columns)


def test_a_dataset_file_is_recorded_by_its_absolute_path_and_names_its_run_folder(tmp_path, tiny_npz, monkeypatch):
    """So `finetune`, `export` and `report` find it from any folder; any suffix names the run folder
    by its stem (a helper's audit)."""
    monkeypatch.chdir(tiny_npz.parent)
    config = moncae.resolve_config(dataset=tiny_npz.name, out="r", seed=3)
    assert config.dataset == str(tiny_npz) and config.run_dir == Path("r") / tiny_npz.stem / "seed-3"
    odd = tmp_path / "sub" / "faces.NPZ"
    odd.parent.mkdir()
    odd.write_bytes(tiny_npz.read_bytes())
    for name in (str(odd), "sub/faces.NPZ"):
        monkeypatch.chdir(tmp_path)
        assert moncae.resolve_config(dataset=name, out="r", seed=1).run_dir == Path("r") / "faces" / "seed-1"
    assert moncae.resolve_config(dataset="fashion-MNIST").dataset == "fashion_mnist"  # names stay names


def test_a_run_that_recorded_its_dataset_file_by_a_relative_path_still_resumes(stub_config, tmp_path, monkeypatch):
    import json

    from moncae.search.loop import settings_differ
    from moncae.store import RunFolder

    config = stub_config(tmp_path / "r")
    run_search(config, task_fn=surrogate_task)
    path = config.run_dir / "config.json"
    payload = json.loads(path.read_text())
    monkeypatch.chdir(Path(config.dataset).parent)
    payload["settings"]["dataset"] = Path(config.dataset).name  # as runs before this recorded it
    path.write_text(json.dumps(payload))
    assert settings_differ(RunFolder(config.run_dir), config) == []
    monkeypatch.chdir(tmp_path)  # another folder: another file
    assert settings_differ(RunFolder(config.run_dir), config) == ["dataset"]


def test_numpy_numbers_and_configs_made_directly_are_taken_as_resolve_config_takes_them(tiny_npz, monkeypatch):
    """A notebook's `for seed in np.arange(3)`, and `SearchConfig(...)` or `dataclasses.replace`
    with a dataset spelled otherwise or a relative file (a helper's audit: refused, or a run
    folder that `resume` could not find again)."""
    import dataclasses

    import numpy as np

    from moncae.finetune.records import FinetuneSettings

    config = moncae.resolve_config(seed=np.int64(3), population=np.int32(4), ref_point=(np.float32(4), 11))
    assert (config.seed, config.population, config.ref_point) == (3, 4, (4.0, 11.0)) and type(config.seed) is int
    assert FinetuneSettings(epochs=np.int64(1)).epochs == 1
    arrays = moncae.resolve_config(ref_point=np.array([4.0, 11.0]), fidelity="rungs", rungs=np.array([[1, 64]]))
    assert (arrays.ref_point, arrays.rungs) == ((4.0, 11.0), ((1, 64),))  # NumPy arrays too (an audit)
    assert moncae.SearchConfig(dataset="Fashion-MNIST").run_dir.parts[-2] == "fashion_mnist"
    monkeypatch.chdir(tiny_npz.parent)
    assert dataclasses.replace(config, dataset=tiny_npz.name).dataset == str(tiny_npz)
    assert moncae.SearchConfig(dataset=tiny_npz.name).results_settings() == \
        moncae.resolve_config(dataset=tiny_npz.name).results_settings()


def test_errors_and_a_run_s_settings_are_public(stub_config, tmp_path):
    """A notebook catches moncae's errors and reads a CLI-made run's settings to go on with it."""
    import dataclasses

    from moncae.evaluation.surrogate import surrogate_task

    public = {"MoncaeError", "DataError", "RunFolderError", "MoncaeWarning", "read_run_config"}
    assert public <= set(moncae.__all__)
    assert issubclass(moncae.RunFolderError, moncae.MoncaeError)
    config = stub_config(tmp_path / "r", generations=2)
    run_search(config, task_fn=surrogate_task)
    assert moncae.read_run_config(config.run_dir) == config
    longer = run_search(dataclasses.replace(moncae.read_run_config(str(config.run_dir)), generations=3),
                        resume=True, task_fn=surrogate_task)
    assert len(longer.logbook) == 3
    with pytest.raises(moncae.RunFolderError, match="not a moncae run folder"):
        moncae.read_run_config(tmp_path)
    with pytest.raises(moncae.MoncaeError, match="`progress` must be a moncae.FinetuneProgress.*lacks model_done"):
        moncae.finetune_run(config.run_dir, progress=type("P", (), {"started": print, "message": print})())


def test_arguments_of_the_wrong_kind_are_moncae_errors(stub_config, tmp_path):
    """Not a bare TypeError from deep inside (a helper's audit)."""
    with pytest.raises(MoncaeError, match="a run folder is a path"):
        moncae.load_front(None)
    with pytest.raises(MoncaeError, match="`results_dir` and `out` are paths"):
        moncae.build_report(None)
    with pytest.raises(MoncaeError, match="unknown preset \\['smoke'\\]"):
        moncae.resolve_config(preset=["smoke"])
    config = stub_config(tmp_path / "r")
    with pytest.raises(MoncaeError, match="`task_fn` must be a function"):
        run_search(config, task_fn="x")
    with pytest.raises(MoncaeError, match="`resume` must be True or False"):
        run_search(config, resume="yes", task_fn=surrogate_task)
    assert not (tmp_path / "r").exists()  # refused before anything is written


def _returns_none(task):
    return None


def _another_trainings_record(task):
    result = surrogate_task(task)
    result.record.genome_key = "0" * len(task.key)
    return result


@pytest.mark.parametrize("task_fn, said", [
    (_returns_none, "returned None for the training of"),
    (_another_trainings_record, "returned a record of 0+ at rung 0 for the training of"),
])
def test_a_task_fn_that_returns_no_result_of_its_task_is_refused_before_it_is_journaled(
        stub_config, tmp_path, task_fn, said):
    config = stub_config(tmp_path / "r")
    with pytest.raises(MoncaeError, match=said):
        run_search(config, task_fn=task_fn, executor=LocalExecutor())
    assert not (Path(config.run_dir) / "evaluations.csv").exists() or len(
        (Path(config.run_dir) / "evaluations.csv").read_text().splitlines()) <= 1
    run_search(config, resume=True, task_fn=surrogate_task)  # the run folder is as good as new
    assert_same(config.run_dir, run_search(stub_config(tmp_path / "clean"), task_fn=surrogate_task).run_dir)
