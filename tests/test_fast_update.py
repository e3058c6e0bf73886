"""`speed_up_update`: Keras' Adam, Nadam and RMSprop updates in raw TF ops give stock Keras'
weights and optimizer slots to the bit, leave other optimizers alone, and change nothing that
is saved."""

from __future__ import annotations

import random

import numpy as np
import pytest

from moncae.data import DataSpec, cached_dataset
from moncae.method.genome import GenomeSpace, random_genome
from moncae.model import fast_update, training
from moncae.model.decode import build_autoencoder
from moncae.model.fast_update import speed_up_update

keras = pytest.importorskip("keras")

# Every test here needs TensorFlow (seconds to import in each test process): none runs in `make test-fast`.
pytestmark = pytest.mark.slow

# Whether the installed Keras is the one the rewrites were verified on (3.15.1). On another Keras
# the fast path must stay off (Keras' own update, the same numbers by construction), and these
# tests check that instead; re-verifying the rewrites there records its digests in VERIFIED.
VERIFIED_HERE = all(fast_update.keras_source_digest(getattr(keras.optimizers, name)) == digest
                    for name, digest in fast_update.VERIFIED.items())


def test_the_installed_keras_is_said_when_the_fast_update_is_off():
    if not VERIFIED_HERE:
        import warnings

        warnings.warn(f"Keras {keras.__version__}: its optimizer sources differ from those the fast update was "
                      "verified on (fast_update.VERIFIED), so trainings use Keras' own update (slower to trace, "
                      "the same numbers); check the rewrites against its sources and record its digests",
                      stacklevel=1)
    assert all(fast_update.keras_source_digest(getattr(keras.optimizers, name)) is not None
               for name in fast_update.VERIFIED)  # its sources can be read


def _genome(optimizer: str, dense: bool):
    """A 2-block genome (one with batch-norm) with a dense bottleneck (`dense`) or the paper's
    conv bottleneck."""
    space = GenomeSpace(max_blocks=2, max_filters=8, optimizers=(optimizer,), learning_rates=(3e-3,),
                        dropout_rates=(0.3,), latent_sizes=(4, 8) if dense else ())
    rng = random.Random(0)
    while True:
        genome = random_genome(space, rng)
        if (genome.latent_units is not None) == dense and len(genome.blocks) == 2 \
                and any(b.batch_norm for b in genome.blocks):
            return genome


def _stock(class_name: str, **config):
    return keras.optimizers.get({"class_name": class_name, "config": {"learning_rate": 3e-3, **config}})


@pytest.mark.parametrize("dense", [False, True], ids=["paper-space", "dense-space"])
@pytest.mark.parametrize("name", ["adam", "nadam", "rmsprop"])
def test_the_fast_update_gives_keras_weights_and_slots_to_the_bit(tiny_npz, name, dense):
    data = cached_dataset(DataSpec(str(tiny_npz)))
    genome = _genome(name, dense)

    def trained(fast: bool):
        keras.utils.set_random_seed(5)
        model, _ = build_autoencoder(genome, data.input_shape, seed=5)
        optimizer = _stock(name)
        if fast:
            assert speed_up_update(optimizer) is optimizer
            assert ("update_step" in vars(optimizer)) == VERIFIED_HERE  # the fast path is in use (or not)
        model.compile(optimizer=optimizer, loss=training.make_loss("bce"), jit_compile=False)
        # 3 epochs of 4 batches: 12 steps, so the bias corrections move
        history = model.fit(training.tf_dataset(data.x_train[:64], batch_size=16, shuffle_seed=5,
                                                autoencoder=True), epochs=3, verbose=0)
        assert int(optimizer.iterations.numpy()) == 12
        state = ([w.numpy() for w in model.weights], [v.numpy() for v in optimizer.variables],
                 history.history["loss"])
        training.end_session()
        return state

    weights, slots, losses = trained(fast=True)
    stock_weights, stock_slots, stock_losses = trained(fast=False)
    assert losses == stock_losses
    assert len(weights) == len(stock_weights) and len(slots) == len(stock_slots)
    for a, b in zip(weights + slots, stock_weights + stock_slots, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(s, 0) for s in slots[2:])  # the slots did move


@pytest.mark.parametrize("optimizer", [
    lambda: _stock("adam", amsgrad=True), lambda: _stock("rmsprop", momentum=0.9),
    lambda: _stock("rmsprop", centered=True), lambda: _stock("adagrad"), lambda: _stock("sgd"),
], ids=["adam-amsgrad", "rmsprop-momentum", "rmsprop-centered", "adagrad", "sgd"])
def test_other_optimizers_and_settings_keep_keras_own_update(optimizer):
    opt = optimizer()
    assert speed_up_update(opt) is opt
    assert "update_step" not in vars(opt) and "_backend_update_step" not in vars(opt)


@pytest.mark.parametrize("name", ["adam", "nadam", "rmsprop"])
def test_a_sped_up_optimizer_serialises_as_keras_own(name):
    fast, stock = speed_up_update(_stock(name, name="opt")), _stock(name, name="opt")
    assert type(fast) is type(stock)
    assert keras.saving.serialize_keras_object(fast) == keras.saving.serialize_keras_object(stock)


def test_make_optimizer_uses_the_fast_update_on_the_keras_it_was_verified_on():
    genome = _genome("nadam", dense=True)
    assert ("update_step" in vars(training.make_optimizer(genome))) == VERIFIED_HERE


@pytest.mark.parametrize("name", ["adam", "nadam", "rmsprop"])
def test_another_keras_keeps_its_own_update(name, monkeypatch):
    """Sources that differ from the verified ones (another Keras version) leave Keras' update."""
    opt = _stock(name)
    verified = fast_update.keras_source_digest(type(opt)) == fast_update.VERIFIED[type(opt).__name__]
    assert verified == VERIFIED_HERE
    monkeypatch.setitem(fast_update.VERIFIED, type(opt).__name__, "0" * 16)
    assert speed_up_update(opt) is opt
    assert "update_step" not in vars(opt) and "_backend_update_step" not in vars(opt)
