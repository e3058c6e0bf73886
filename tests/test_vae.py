"""VAE mode without TensorFlow: the losses' NumPy definitions and the settings' checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from moncae.config import SearchConfig, resolve_config
from moncae.errors import MoncaeError
from moncae.method.vae_loss import (
    bce,
    kl_prior,
    reformulated_reconstruction,
    vae_loss,
)


def test_kl_prior_is_zero_at_the_prior_and_per_dimension():
    assert np.allclose(kl_prior(np.zeros((3, 4, 4, 2)), np.zeros((3, 4, 4, 2))), 0.0)
    mu = np.array([[1.0, 0.0]])  # 0.5 * mu^2 in one of two dimensions
    assert kl_prior(mu, np.zeros((1, 2))) == pytest.approx([0.25])
    log_var = np.array([[math.log(4.0)]])  # 0.5 * (4 - 1 - log 4)
    assert kl_prior(np.zeros((1, 1)), log_var) == pytest.approx([0.5 * (3 - math.log(4.0))])


def test_bce_is_per_pixel_and_clipped():
    x = np.array([[1.0, 0.0, 1.0, 0.0]])
    p = np.array([[0.5, 0.5, 1.0, 0.0]])  # the last two are perfect (clipped to 1e-7)
    expected = (2 * math.log(2.0) - 2 * math.log(1 - 1e-7)) / 4
    assert bce(x, p) == pytest.approx([expected], rel=1e-6)


def test_reformulated_term_matches_the_gaussian_kl():
    """KL(N(m, s^2) || N(0, eps^2)) of the differences' fit, by the textbook formula."""
    rng = np.random.default_rng(0)
    x, x_hat = rng.random((5, 6, 6, 1)), rng.random((5, 6, 6, 1))
    eps = 0.05
    d = (x - x_hat).reshape(5, -1)
    m, s2 = d.mean(axis=1), d.var(axis=1)
    textbook = np.log(eps / np.sqrt(s2)) + (s2 + m**2) / (2 * eps**2) - 0.5
    assert np.allclose(reformulated_reconstruction(x, x_hat, eps), textbook)


def test_reformulated_term_is_finite_for_a_perfect_or_constant_offset_reconstruction():
    x = np.full((2, 4, 4, 1), 0.5)
    perfect = reformulated_reconstruction(x, x, 0.01)
    offset = reformulated_reconstruction(x, x - 0.1, 0.01)
    assert np.all(np.isfinite(perfect)) and np.all(np.isfinite(offset))
    assert np.all(offset > perfect)  # a constant error still costs mean(d^2) / (2 eps^2)


def test_vae_loss_adds_the_prior_term():
    rng = np.random.default_rng(1)
    x, x_hat = rng.random((4, 8)), rng.random((4, 8))
    mu, log_var = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    kl = kl_prior(mu, log_var).mean()
    assert vae_loss("elbo", x, x_hat, mu, log_var) == pytest.approx(bce(x, x_hat).mean() + kl)
    assert vae_loss("reformulated", x, x_hat, mu, log_var, 0.1) == pytest.approx(
        reformulated_reconstruction(x, x_hat, 0.1).mean() + kl)
    with pytest.raises(ValueError, match="elbo, reformulated"):
        vae_loss("bce", x, x_hat, mu, log_var)


# --- settings ---------------------------------------------------------------------------------

def test_default_is_the_ae_and_its_settings_are_unchanged():
    cfg = SearchConfig()
    assert (cfg.model, cfg.loss) == ("ae", "bce")
    assert SearchConfig(model="vae", loss="reformulated").vae_eps == 0.01


@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_vae_with_an_ae_loss_is_refused_naming_the_valid_ones(loss):
    with pytest.raises(MoncaeError, match="`loss` must be one of elbo, reformulated") as err:
        SearchConfig(model="vae", loss=loss)
    assert "\n" not in str(err.value)
    assert "bce the default: pass --loss reformulated or --loss elbo" in str(err.value)  # `--model vae` alone


@pytest.mark.parametrize("loss", ["elbo", "reformulated"])
def test_a_vae_loss_for_an_ae_is_refused(loss):
    with pytest.raises(MoncaeError, match="must be one of bce, mse .*model = \"vae\""):
        SearchConfig(loss=loss)


@pytest.mark.parametrize("bad", [dict(model="gan"), dict(model="vae", loss="elbo", vae_eps=0.0),
                                 dict(model="vae", loss="elbo", vae_eps=float("inf")),
                                 dict(model="vae", loss="elbo", vae_eps="small")])
def test_bad_vae_settings_are_one_line_errors(bad):
    with pytest.raises(MoncaeError) as err:
        SearchConfig(**bad)
    assert "\n" not in str(err.value)


def test_vae_settings_come_from_presets_and_flags_and_decide_results():
    cfg = resolve_config(preset="smoke", model="vae", loss="reformulated", vae_eps=0.02)
    assert (cfg.model, cfg.loss, cfg.vae_eps) == ("vae", "reformulated", 0.02)
    assert cfg.results_settings()["model"] == "vae" and cfg.results_settings()["vae_eps"] == 0.02
    assert SearchConfig.from_dict(cfg.to_dict()) == cfg


def test_cli_bad_combination_exits_2():
    from click.testing import CliRunner

    from moncae.cli.main import main

    result = CliRunner().invoke(main, ["search", "--dataset", "mnist_5k", "--seed", "1", "--model",
                                      "vae", "--loss", "bce", "--out", "/nonexistent-moncae"])
    assert result.exit_code == 2, result.output
    assert "elbo, reformulated" in result.output
    result = CliRunner().invoke(main, ["search", "--dataset", "mnist_5k", "--seed", "1", "--loss",
                                      "elbo", "--out", "/nonexistent-moncae"])
    assert result.exit_code == 2 and "bce, mse" in result.output


# --- run folders (surrogate trainings: no Keras) ------------------------------------------------

def _surrogate_with_kl(task):
    """The surrogate, plus a KL value when the task is a VAE training (as the real one records)."""
    from moncae.evaluation.surrogate import surrogate_task

    result = surrogate_task(task)
    if task.train.model == "vae":
        result.record.kl = 0.125
    return result


def test_kl_column_only_in_a_vae_runs_journal_and_a_vae_run_resumes(stub_config, tmp_path):
    import pandas as pd

    from moncae.evaluation.records import EVAL_COLUMNS
    from moncae.search.loop import run_search
    from tests.runs import assert_same, resume_after_crash

    ae = run_search(stub_config(tmp_path / "ae", generations=2), task_fn=_surrogate_with_kl).run_dir
    vae_config = stub_config(tmp_path / "vae", generations=2, model="vae", loss="reformulated")
    vae = run_search(vae_config, task_fn=_surrogate_with_kl).run_dir
    ae_cols, vae_cols = (list(pd.read_csv(d / "evaluations.csv").columns) for d in (ae, vae))
    assert "kl" not in ae_cols
    assert vae_cols[:len(EVAL_COLUMNS) + 1] == EVAL_COLUMNS + ["kl"]
    assert vae_cols[len(EVAL_COLUMNS) + 1:] == ae_cols[len(EVAL_COLUMNS):]  # the genes follow
    assert (pd.read_csv(vae / "evaluations.csv")["kl"] == 0.125).all()
    killed = stub_config(tmp_path / "killed", generations=2, model="vae", loss="reformulated")
    resumed = resume_after_crash(killed, 10, _surrogate_with_kl).run_dir  # crashes in generation 1
    assert_same(vae, resumed, names=("evaluations.csv", "population.csv", "generations.csv"))


def test_resume_refuses_another_model_and_accepts_an_ae_folder_from_before_vae_mode(stub_config, tmp_path):
    import json

    from moncae.errors import RunFolderError
    from moncae.search.loop import run_search
    from tests.runs import Crash, crashing_after

    with pytest.raises(Crash):
        run_search(stub_config(tmp_path, generations=2), task_fn=crashing_after(10, _surrogate_with_kl))
    run = stub_config(tmp_path, generations=2).run_dir
    with pytest.raises(RunFolderError, match="model: 'ae' -> 'vae'"):
        run_search(stub_config(tmp_path, generations=2, model="vae", loss="elbo"), resume=True,
                   task_fn=_surrogate_with_kl)
    payload = json.loads((run / "config.json").read_text())
    for table in ("settings", "run"):  # as written before `model` and `vae_eps` existed
        payload[table].pop("model")
        payload[table].pop("vae_eps")
    (run / "config.json").write_text(json.dumps(payload))
    done = run_search(stub_config(tmp_path, generations=2), resume=True, task_fn=_surrogate_with_kl)
    assert len(done.records) == 8
