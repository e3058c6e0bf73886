"""VAE mode with Keras: every genome decodes to a VAE of the input's shape, the Keras losses equal
their NumPy definitions, and a real smoke VAE search is deterministic and resumes identically."""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moncae.evaluation.records import EVAL_COLUMNS, TIMING_COLUMNS, VAE_COLUMNS
from moncae.method.architecture import bottleneck_shape, level_of_compression
from moncae.method.genome import DENSE_LATENT_SIZES, Genome, GenomeSpace, crossover, mutate, random_genome
from moncae.method.vae_loss import bce, kl_prior, reformulated_reconstruction, vae_loss
from moncae.model.decode import build_autoencoder
from moncae.model.training import make_optimizer, tf_dataset
from moncae.model.vae import (
    ReformulatedReconstruction,
    build_vae,
    compile_vae,
    evaluate_vae,
    kl_prior_op,
)
from moncae.store import image_losses_filename

pytestmark = pytest.mark.slow  # builds and trains Keras models

SPACE = GenomeSpace(max_filters=64)
DENSE = GenomeSpace(max_filters=16, latent_sizes=DENSE_LATENT_SIZES)
INPUT_SHAPES = [(28, 28, 1), (32, 32, 3), (8, 8, 1), (13, 17, 5), (9, 31, 2)]
_builds = itertools.count()


def check_vae_decodes(genome: Genome, input_shape) -> None:
    if next(_builds) % 25 == 24:
        keras.backend.clear_session()
    parts = build_vae(genome, input_shape)
    code = bottleneck_shape(genome, input_shape)
    assert tuple(parts.vae.output_shape) == (None, *input_shape)
    mu, log_var = parts.stats.output_shape
    assert tuple(mu) == tuple(log_var) == (None, *code)  # the AE bottleneck's shape
    assert tuple(parts.encoder.output_shape) == (None, *code)
    assert tuple(parts.decoder.input_shape) == (None, *code)
    assert tuple(parts.decoder.output_shape) == (None, *input_shape)
    assert math.isclose(level_of_compression(genome, input_shape), math.log10(math.prod(code)))
    shared = {id(layer) for layer in parts.vae.layers}
    assert {id(layer) for layer in parts.decoder.layers[1:]} <= shared


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(INPUT_SHAPES), st.sampled_from([SPACE, DENSE]),
       st.sampled_from(["random", "mutated", "crossover"]))
def test_every_operator_genome_decodes_to_a_vae(seed, input_shape, space, how):
    rng = random.Random(seed)
    genome = random_genome(space, rng)
    if how == "mutated":
        for _ in range(rng.randint(1, 5)):
            genome = mutate(genome, space, rng, rng.randint(0, 80))
    elif how == "crossover":
        genome = crossover(genome, random_genome(space, rng), rng)[rng.randint(0, 1)]
    check_vae_decodes(genome, input_shape)


def test_vae_shares_the_ae_layer_names_for_encoder_and_decoder():
    genome = random_genome(DENSE, random.Random(4))
    ae, _ = build_autoencoder(genome, (28, 28, 1))
    vae = build_vae(genome, (28, 28, 1)).vae
    names = {layer.name for layer in vae.layers}
    assert {layer.name for layer in ae.layers} - {"image"} <= names
    assert {"latent_log_var", "sample"} <= names


# --- losses: Keras ops against NumPy on fixed tensors -----------------------------------------

RNG = np.random.default_rng(7)
X = RNG.random((6, 10, 10, 1)).astype("float32")
X_HAT = np.clip(RNG.random((6, 10, 10, 1)), 0.01, 0.99).astype("float32")
MU = RNG.normal(size=(6, 3, 3, 2)).astype("float32")
LOG_VAR = RNG.normal(size=(6, 3, 3, 2)).astype("float32")


@pytest.mark.parametrize("eps", [0.01, 0.1])
def test_reformulated_loss_matches_numpy(eps):
    keras_value = float(ReformulatedReconstruction(eps)(X, X_HAT))
    assert keras_value == pytest.approx(reformulated_reconstruction(X, X_HAT, eps).mean(), rel=1e-4)


def test_prior_kl_and_bce_match_numpy():
    assert np.allclose(np.asarray(kl_prior_op(MU, LOG_VAR)), kl_prior(MU, LOG_VAR), rtol=1e-5)
    assert float(keras.losses.BinaryCrossentropy()(X, X_HAT)) == pytest.approx(bce(X, X_HAT).mean(),
                                                                               rel=1e-5)


@pytest.mark.parametrize("loss", ["elbo", "reformulated"])
@pytest.mark.parametrize("space", [SPACE, DENSE])
def test_a_built_vae_evaluates_to_the_numpy_loss_of_its_mean_decoding(loss, space):
    genome = random_genome(GenomeSpace(max_blocks=2, max_filters=8,
                                       latent_sizes=space.latent_sizes), random.Random(2))
    parts = build_vae(genome, (12, 12, 1), seed=3)
    compile_vae(parts, make_optimizer(genome), loss, 0.05)
    x = np.random.default_rng(0).random((6, 12, 12, 1)).astype("float32")
    total, rec_bce, kl = evaluate_vae(parts, x, batch_size=6)
    mu, log_var = (np.asarray(a) for a in parts.stats(x, training=False))
    x_hat = np.asarray(parts.vae(x, training=False))
    assert np.allclose(x_hat, np.asarray(parts.decoder(mu, training=False)), atol=1e-6)  # the mean
    assert total == pytest.approx(vae_loss(loss, x, x_hat, mu, log_var, 0.05), rel=1e-4)
    assert rec_bce == pytest.approx(bce(x, x_hat).mean(), rel=1e-4)
    assert kl == pytest.approx(kl_prior(mu, log_var).mean(), rel=1e-4)


def test_training_samples_and_seeded_noise_is_reproducible():
    genome = random_genome(GenomeSpace(max_blocks=2, max_filters=8), random.Random(5))

    def trained(seed):
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        parts = build_vae(genome, (12, 12, 1), seed=seed)
        compile_vae(parts, make_optimizer(genome), "reformulated")
        x = np.random.default_rng(0).random((32, 12, 12, 1)).astype("float32")
        parts.vae.fit(tf_dataset(x, batch_size=8, shuffle_seed=seed, autoencoder=True), epochs=1,
                      verbose=0)
        sampled = [np.asarray(parts.vae(x[:4], training=True)) for _ in range(2)]
        return parts.vae.get_weights(), sampled

    (w1, s1), (w2, s2), (w3, _) = trained(1), trained(1), trained(2)
    assert all(np.array_equal(a, b) for a, b in zip(w1, w2))
    assert not all(np.array_equal(a, b) for a, b in zip(w1, w3))
    assert not np.array_equal(s1[0], s1[1])  # a fresh draw each call while training
    assert np.array_equal(s1[0], s2[0])


def test_fit_vae_without_patience_runs_every_epoch_and_reports_the_last():
    from moncae.model.vae import fit_vae

    genome = random_genome(GenomeSpace(max_blocks=2, max_filters=8), random.Random(5))
    x = np.random.default_rng(0).random((48, 12, 12, 1)).astype("float32")
    keras.backend.clear_session()
    parts = build_vae(genome, (12, 12, 1), seed=1)
    compile_vae(parts, make_optimizer(genome), "reformulated")
    fit = fit_vae(parts, x[:32], x[32:], epochs=4, batch_size=8, patience=None, seed=1)
    assert fit.epochs == 4
    assert fit.val_loss == pytest.approx(evaluate_vae(parts, x[32:], batch_size=8)[0], rel=1e-5)  # last weights


# --- a real smoke VAE search ------------------------------------------------------------------

SEED = 1
ARGS = ["--dataset", "mnist_5k", "--seed", str(SEED), "--preset", "smoke", "--model", "vae",
        "--loss", "reformulated", "--quiet"]


def _cli(*args: str, command: str = "search") -> list[str]:
    return [sys.executable, "-m", "moncae.cli.main", command, *args]


def comparable(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path)
    return df.drop(columns=[c for c in TIMING_COLUMNS if c in df.columns])


def test_smoke_vae_search_completes_is_deterministic_and_resumes_identically(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    straight = subprocess.run(_cli(*ARGS, "--out", str(tmp_path / "straight")), env=env,
                              capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr
    reference = tmp_path / "straight" / "mnist_5k" / f"seed-{SEED}"
    ev = pd.read_csv(reference / "evaluations.csv")
    assert list(ev.columns[:len(EVAL_COLUMNS) + 1]) == EVAL_COLUMNS + VAE_COLUMNS
    ok = ev[ev["status"] == "ok"]
    assert len(ok) >= 2 and ok["kl"].notna().all() and (ok["kl"] >= 0).all()
    assert ((ok["rec_loss"] > 0) & (ok["rec_loss"] < 1)).all()  # per-pixel BCE, not the VAE loss

    # finetune continues with the VAE loss and records the test KL; report draws samples and
    # the three baseline fronts
    tuned = subprocess.run(_cli(str(reference), "--epochs", "1", "--classifier-epochs", "1",
                                command="finetune"), env=env, capture_output=True, text=True)
    assert tuned.returncode == 0, tuned.stderr
    ft = pd.read_csv(reference / "finetune.csv")
    assert ft.columns[-1] == "kl" and ft.loc[ft["status"] == "ok", "kl"].notna().all()
    assert ((ft["rec_loss"] > 0) & (ft["rec_loss"] < 1)).all()
    for _, row in ft[ft["status"] == "ok"].iterrows():  # each test image's BCE of the mean decoding
        losses = np.load(reference / "finetuned" / image_losses_filename(row["genome_key"]))
        assert losses.mean() == pytest.approx(row["rec_loss"], abs=1e-4) and losses.std() > 0
    report = subprocess.run(_cli(str(tmp_path / "straight"), "--baselines", "pca,dense_ae,dense_vae",
                                 "--loc-threshold", "4", command="report"),
                            env=env, capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    assert "per-image test losses" not in report.stderr  # each file fits its model
    out = tmp_path / "straight" / "report"
    assert (out / f"samples_mnist_5k_seed-{SEED}.png").stat().st_size > 1000
    baselines = pd.read_csv(out / "baselines_mnist_5k.csv")
    assert set(baselines["kind"]) == {"pca", "dense_ae", "dense_vae"}
    assert set(baselines.loc[baselines["kind"] == "dense_vae", "k"]) >= {2, 4, 8, 16, 32, 64}
    table = pd.read_csv(out / "table1.csv")
    assert "kl" in table.columns and table["kl"].notna().all()
    assert "samples_mnist_5k" in (out / "report.md").read_text()
    again = subprocess.run(_cli(str(tmp_path / "straight"), "--baselines", "dense_ae,dense_vae",
                                command="report"), env=env, capture_output=True, text=True)
    assert again.returncode == 0 and ": training" not in again.stderr  # cached
    exported = subprocess.run(_cli(str(reference), str(tmp_path / "exported"), "--knee",
                                   command="export"), env=env, capture_output=True, text=True)
    assert exported.returncode == 0, exported.stderr  # it checks encoder -> decoder == the VAE
    assert {p.name for p in (tmp_path / "exported").iterdir()} >= {"encoder.keras", "decoder.keras"}
    metrics = json.loads((tmp_path / "exported" / "model.json").read_text())["metrics"]
    assert metrics["loss"] == "bce" and metrics["vae_training_loss"] == "reformulated"  # rec_loss's loss
    key = json.loads((tmp_path / "exported" / "model.json").read_text())["genome_key"]
    assert metrics["search"]["kl"] == pytest.approx(ok.loc[ok["genome_key"] == key, "kl"].iloc[-1])
    assert metrics["finetune"]["kl"] == pytest.approx(ft.loc[ft["genome_key"] == key, "kl"].iloc[0])

    killed = [*ARGS, "--out", str(tmp_path / "killed")]
    proc = subprocess.Popen(_cli(*killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run = tmp_path / "killed" / "mnist_5k" / f"seed-{SEED}"
    deadline = time.time() + 240
    while not (run / "checkpoint.json").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    done = subprocess.run(_cli(*killed, "--resume"), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for name in ("evaluations.csv", "population.csv", "generations.csv", "pareto_front.csv",
                 "models/index.csv"):
        pd.testing.assert_frame_equal(comparable(reference / name), comparable(run / name))


def test_a_vae_search_with_rungs_and_inheritance(tmp_path):
    """Promotions continue from a VAE's lower-rung weights and children inherit VAE layers."""
    from moncae.config import resolve_config
    from moncae.search.loop import run_search

    config = resolve_config(preset="smoke", dataset="mnist_5k", seed=3, out=str(tmp_path), workers=1,
                            model="vae", loss="elbo", space="dense", fidelity="rungs",
                            rungs=[[1, 128]], promote=0.5, inherit=True, generations=3)
    result = run_search(config)
    ev = pd.read_csv(result.run_dir / "evaluations.csv")
    assert (ev["status"] == "ok").all() and ev["kl"].notna().all()
    assert (ev["rung"] == 1).any() and (ev["inherited"] > 0).any()


def _keras_flops(model) -> int:
    """2 x the multiply-adds of every Conv2D and Dense of a built model, counted from its layers."""
    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            macs += _keras_flops(layer) // 2
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw, c_in, c_out = layer.kernel.shape
            macs += math.prod(layer.output.shape[1:3]) * kh * kw * c_in * c_out
        elif isinstance(layer, keras.layers.Dense):
            macs += math.prod(layer.kernel.shape)
    return 2 * macs


@pytest.mark.parametrize("space", [SPACE, DENSE], ids=["conv-code", "dense-code"])
def test_forward_flops_counts_every_layer_of_the_built_ae_and_vae(space):
    """A VAE's FLOPs include its two code heads (the audit: they were the AE's, 3-15% low)."""
    from moncae.method.architecture import forward_flops

    rng = random.Random(5)
    for shape in [(28, 28, 1), (13, 17, 5)]:
        for _ in range(4):
            genome = random_genome(space, rng)
            autoencoder, _ = build_autoencoder(genome, shape)
            assert forward_flops(genome, shape) == _keras_flops(autoencoder)
            vae = build_vae(genome, shape).vae
            assert forward_flops(genome, shape, "vae") == _keras_flops(vae) > forward_flops(genome, shape)
        keras.backend.clear_session()
