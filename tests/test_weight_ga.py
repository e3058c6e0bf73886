"""The GA weight trainer (the GA weight-training study): its operators in pure NumPy, and one
slow check of the Keras side."""

from __future__ import annotations

import random

import numpy as np
import pytest

from moncae.errors import MoncaeError
from moncae.method.weight_ga import best_index, flatten, ga_step, mutate_weights, offspring, unflatten


def test_flatten_and_unflatten_round_trip():
    arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([7.0], dtype=np.float32),
              np.ones((2, 1, 2), dtype=np.float32)]
    vector = flatten(arrays)
    assert vector.shape == (11,) and vector[6] == 7.0
    back = unflatten(vector, [a.shape for a in arrays])
    for a, b in zip(arrays, back):
        np.testing.assert_array_equal(a, b)
        assert b.dtype == np.float32
    with pytest.raises(MoncaeError, match="11"):
        unflatten(vector[:-1], [a.shape for a in arrays])


def test_a_mutation_adds_uniform_noise_to_exactly_k_weights_of_a_copy():
    parent = np.zeros(1000)
    child = mutate_weights(parent, 10, np.random.default_rng(0))
    changed = np.flatnonzero(child != parent)
    assert len(changed) == 10 and not parent.any()
    assert np.all(np.abs(child[changed]) < 1.0)
    same = mutate_weights(parent, 10, np.random.default_rng(0))
    np.testing.assert_array_equal(child, same)  # seeded
    assert np.count_nonzero(mutate_weights(np.zeros(3), 10, np.random.default_rng(1))) == 3  # at most all
    deltas = np.concatenate([mutate_weights(parent, 50, np.random.default_rng(s))[None] for s in range(40)])
    nonzero = deltas[deltas != 0]
    assert nonzero.min() > -1 and nonzero.max() < 1 and abs(nonzero.mean()) < 0.05  # U(-1, 1)
    with pytest.raises(MoncaeError, match="mutations"):
        mutate_weights(parent, 0, np.random.default_rng(0))


def test_offspring_keep_the_parent_first_and_mutate_the_others():
    parent = np.linspace(0, 1, 50)
    agents = offspring(parent, 6, 2, np.random.default_rng(3))
    assert len(agents) == 6
    np.testing.assert_array_equal(agents[0], parent)
    assert all(np.count_nonzero(a != parent) == 2 for a in agents[1:])
    with pytest.raises(MoncaeError, match="population"):
        offspring(parent, 1, 2, np.random.default_rng(3))


def test_best_index_treats_nan_as_worst_and_keeps_the_parent_on_ties():
    assert best_index([0.5, 0.5, 0.7]) == 0
    assert best_index([0.5, float("nan"), 0.2]) == 2
    assert best_index([float("nan"), 0.9]) == 1


def test_ga_steps_never_get_worse_and_solve_a_toy_problem():
    target = np.random.default_rng(0).uniform(-2, 2, 20)

    def loss(v):
        return float(np.sum((v - target) ** 2))

    rng = np.random.default_rng(1)
    parent = np.zeros(20)
    score = loss(parent)
    scores = [score]
    for _ in range(600):
        step = ga_step(parent, score, loss, 10, 2, rng)
        assert step.score <= score and step.improved == (step.score < score)
        parent, score = step.parent, step.score
        scores.append(score)
    assert scores[-1] < 0.05 * scores[0]


def test_ga_step_is_deterministic_for_a_seed():
    def run(seed):
        rng, parent, score = np.random.default_rng(seed), np.zeros(8), 64.0
        for _ in range(20):
            step = ga_step(parent, score, lambda v: float(np.sum((v - 1) ** 2)), 5, 1, rng)
            parent, score = step.parent, step.score
        return parent

    np.testing.assert_array_equal(run(4), run(4))
    assert not np.array_equal(run(4), run(5))


@pytest.mark.slow  # builds a Keras model
def test_train_weights_ga_lowers_the_loss_and_logs_every_generation():
    import keras

    from moncae.method.genome import GenomeSpace, random_genome
    from moncae.model.weight_ga import reconstruction_loss, train_weights_ga

    genome = random_genome(GenomeSpace(max_blocks=2, max_filters=8), random.Random(0))
    x = np.random.default_rng(0).random((4, 12, 12, 1), dtype=np.float32)
    logged = []
    result = train_weights_ga(genome, x, input_shape=(12, 12, 1), population=6, mutations=5, generations=30,
                              seed=2, log=logged.append)
    assert [h.generation for h in result.history] == list(range(31)) and logged == result.history
    losses = [h.loss for h in result.history]
    assert all(b <= a for a, b in zip(losses, losses[1:])) and losses[-1] < losses[0]
    assert result.history[-1].evaluations == 1 + 30 * 5
    assert reconstruction_loss(result.model, x) == pytest.approx(result.loss, rel=1e-5)
    keras_bce = float(keras.losses.BinaryCrossentropy()(x, result.model(x, training=False)))
    assert result.loss == pytest.approx(keras_bce, rel=1e-4)


def test_train_ga_cli_refuses_bad_genes_with_one_line(tiny_npz):
    from click.testing import CliRunner

    from moncae.cli.main import main

    done = CliRunner().invoke(main, ["train-ga", "--dataset", str(tiny_npz), "--genes", "1,2,x"])
    assert done.exit_code == 2 and "--genes" in done.output and "Traceback" not in done.output
    done = CliRunner().invoke(main, ["train-ga", "--dataset", str(tiny_npz), "--genes", "0,1,2"])
    assert done.exit_code == 2 and "genes" in done.output


@pytest.mark.slow  # trains a Keras model
def test_train_ga_cli_logs_every_generation_to_csv(tiny_npz, tmp_path):
    import pandas as pd
    from click.testing import CliRunner

    from moncae.cli.main import main

    genes = "1,1,0,0,0,0,1,0,0,0,0,0,0,0,0,2"  # max_blocks 2: one C8k3-relu-pool block, adam 1e-3
    out = tmp_path / "log.csv"
    done = CliRunner().invoke(main, ["train-ga", "--dataset", str(tiny_npz), "--genes", genes, "--max-blocks", "2",
                                     "--max-filters", "8", "--images", "4", "--generations", "12",
                                     "--log-every", "4", "--csv", str(out), "--save", str(tmp_path / "m.keras")])
    assert done.exit_code == 0, done.output
    assert "gen    12" in done.output and "done: 12 generations" in done.output
    log = pd.read_csv(out)
    assert list(log["generation"]) == list(range(13)) and log["loss"].is_monotonic_decreasing
    assert (tmp_path / "m.keras").exists()


@pytest.mark.slow  # builds a Keras model
def test_train_ga_cli_builds_the_genes_in_the_space_it_is_told(tiny_npz):
    from click.testing import CliRunner

    from moncae.cli.main import main

    genes = "1,1,0,0,0,0,1,0,0,0,0,0,0,0,0,2"  # max_blocks 2: one C8k3-relu block that halves its map
    common = ["train-ga", "--dataset", str(tiny_npz), "--genes", genes, "--max-blocks", "2", "--max-filters", "8",
              "--images", "2", "--generations", "1"]
    pooled = CliRunner().invoke(main, common)
    strided = CliRunner().invoke(main, [*common, "--downsample", "strided"])
    assert pooled.exit_code == 0 == strided.exit_code, pooled.output + strided.output
    assert pooled.output.startswith("C8k3-relu-pool | adam lr=1e-3")
    assert strided.output.startswith("C8k3-relu-stride2 | adam lr=1e-3")


GENES_16 = ["--genes", "1,1,0,0,0,0,1,0,0,0,0,0,0,0,0,2", "--max-blocks", "2", "--max-filters", "8"]


def _train_ga(tiny_npz, *args):
    from click.testing import CliRunner

    from moncae.cli.main import main

    return CliRunner().invoke(main, ["train-ga", "--dataset", str(tiny_npz), *GENES_16, "--images", "2",
                                     "--generations", "1", *args])


def _refused_up_front(done, *words):
    """Exit 2 with one `Error:` line naming `words`, before the GA starts (no header, no traceback)."""
    lines = done.output.strip().splitlines()
    assert done.exit_code == 2, done.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.output
    assert all(w in lines[0] for w in words), done.output
    assert "Traceback" not in done.output and isinstance(done.exception, SystemExit), done.output


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf"])
def test_train_ga_cli_refuses_a_perturbation_that_is_not_positive_and_finite(tiny_npz, value):
    _refused_up_front(_train_ga(tiny_npz, "--perturbation", value), "--perturbation", "positive finite")


def test_mutate_weights_refuses_a_perturbation_that_is_not_positive_and_finite():
    for bad in (-1.0, 0.0, float("nan"), float("inf")):
        with pytest.raises(MoncaeError, match="perturbation"):
            mutate_weights(np.zeros(5), 1, np.random.default_rng(0), bad)


@pytest.mark.parametrize("value", ["-1", str(2**32)])
def test_train_ga_cli_refuses_a_seed_out_of_range(tiny_npz, value):
    _refused_up_front(_train_ga(tiny_npz, "--seed", value), "--seed", "0 to 4294967295")


@pytest.mark.parametrize("value", ["-1", "0", "nan"])
def test_train_ga_cli_refuses_seconds_that_are_not_positive(tiny_npz, value):
    _refused_up_front(_train_ga(tiny_npz, "--seconds", value), "--seconds", "positive")


@pytest.mark.parametrize("option", ["--csv", "--save"])
def test_train_ga_cli_refuses_an_output_in_a_missing_folder_before_training(tiny_npz, tmp_path, option):
    path = tmp_path / "missing" / ("log.csv" if option == "--csv" else "m.keras")
    _refused_up_front(_train_ga(tiny_npz, option, str(path)), option, "does not exist", str(path.parent))
    (tmp_path / "file").write_text("")  # a file where the folder should be
    path = tmp_path / "file" / ("log.csv" if option == "--csv" else "m.keras")
    _refused_up_front(_train_ga(tiny_npz, option, str(path)), option, "is not a folder")


def test_train_ga_cli_refuses_a_csv_path_that_is_a_folder(tiny_npz, tmp_path):
    _refused_up_front(_train_ga(tiny_npz, "--csv", str(tmp_path)), "--csv", "is a folder")


@pytest.mark.parametrize("name", ["m.h5", "m", "m.keras.bak"])
def test_train_ga_cli_saves_only_keras_files(tiny_npz, tmp_path, name):
    _refused_up_front(_train_ga(tiny_npz, "--save", str(tmp_path / name)), "--save", ".keras")
    assert not (tmp_path / name).exists()


def test_train_ga_takes_a_front_point_whose_model_was_not_kept(monkeypatch):
    """Only the genes are needed: a front point outside the final population (no model file) is fine."""
    import types

    import pandas as pd

    import moncae.export
    from moncae.cli.cmd_train_ga import _run_genome

    frame = pd.DataFrame([{"id": "afea938b00000000", "genome_key": "g1", "loc": 2.0, "search_rec_loss": 0.6,
                           "searched_model": "", "finetuned_model": "", "in_final": False, "on_front": True}])
    models = types.SimpleNamespace(frame=frame, genomes={"g1": "the genome"},
                                   config=types.SimpleNamespace(data_spec=lambda: "the data"))
    monkeypatch.setattr(moncae.export, "read_run_models", lambda run_dir, all_models=False: models)
    assert _run_genome("RUN", "afea938b") == ("the genome", "the data")
    with pytest.raises(MoncaeError, match="no model with key"):
        _run_genome("RUN", "ffff")


@pytest.mark.slow  # builds a Keras model
def test_train_ga_refuses_more_mutations_than_weights_before_training(tiny_npz):
    from moncae.method.genome import GenomeSpace, random_genome
    from moncae.model.weight_ga import train_weights_ga

    done = _train_ga(tiny_npz, "--mutations", "999999999")
    lines = done.output.strip().splitlines()
    assert done.exit_code == 2 and lines[-1].startswith("Error: `mutations` must be at most the "), done.output
    assert "trainable parameters" in lines[-1] and "gen " not in done.output and "Traceback" not in done.output
    genome = random_genome(GenomeSpace(max_blocks=2, max_filters=8), random.Random(0))
    x = np.zeros((2, 12, 12, 1), dtype=np.float32)
    for bad in ({"seed": -1}, {"seed": 2**32}, {"perturbation": float("nan")}, {"seconds": -1.0},
                {"mutations": 10**9}):
        with pytest.raises(MoncaeError, match=next(iter(bad))):
            train_weights_ga(genome, x, input_shape=(12, 12, 1), generations=1, **bad)


@pytest.mark.slow  # trains a Keras model
def test_train_ga_cli_still_saves_the_model_when_the_csv_cannot_be_written(tiny_npz, tmp_path, monkeypatch):
    import moncae.cli.cmd_train_ga as cmd

    def disk_full(path, history):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cmd, "_write_csv", disk_full)
    done = _train_ga(tiny_npz, "--csv", str(tmp_path / "log.csv"), "--save", str(tmp_path / "m.keras"))
    assert done.exit_code == 1 and (tmp_path / "m.keras").exists(), done.output
    error = done.output.strip().splitlines()[-1]
    assert error.startswith("Error: could not write --csv ") and "No space left" in error
    assert "--resume" not in done.output and "Traceback" not in done.output
