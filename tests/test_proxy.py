"""The decoder-only proxy (random frozen encoder): the encoder's weights are unchanged after
training, the decoder's are not."""

from __future__ import annotations

import random

import numpy as np
import pytest

from moncae.method.genome import Genome, GenomeSpace, random_genome

pytestmark = pytest.mark.slow  # trains real models


@pytest.mark.parametrize("genes_seed", [0, 3])
def test_decoder_only_training_leaves_the_random_encoder_unchanged(genes_seed):
    from moncae.model.decode import build_autoencoder
    from moncae.model.proxy import train_decoder_only

    space = GenomeSpace(max_blocks=3, max_filters=8, latent_sizes=(4, 8))
    genome = random_genome(space, random.Random(genes_seed))
    genes = list(genome.genes)
    genes[3] = 1  # block 0 with batch norm: its moving statistics must not move either
    genome = Genome(tuple(genes), space)
    rng = np.random.default_rng(0)
    x = rng.random((96, 16, 16, 1), dtype=np.float32)
    _, fresh_encoder = build_autoencoder(genome, (16, 16, 1), seed=5)
    before = [w.copy() for w in fresh_encoder.get_weights()]
    result = train_decoder_only(genome, x[:64], x[64:], input_shape=(16, 16, 1), epochs=2, batch_size=16,
                                seed=5)
    assert np.isfinite(result.loss) and result.epochs >= 1
    after = result.encoder.get_weights()
    assert len(after) == len(before) > 0
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)  # the same random initial encoder, untouched
    assert not result.encoder.trainable_weights
    fresh, fresh_enc = build_autoencoder(genome, (16, 16, 1), seed=5)
    frozen = {id(w) for w in result.encoder.weights}
    moved = [not np.array_equal(a.numpy(), b) for a, b in zip(result.autoencoder.weights, fresh.get_weights())
             if id(a) not in frozen]
    assert moved and any(moved)  # the decoder trained


def test_the_proxy_rung_of_a_search_keeps_the_random_encoder(tiny_npz):
    from moncae.data import DataSpec, cached_dataset
    from moncae.evaluation import train
    from moncae.evaluation.records import EvalTask, TrainSettings
    from moncae.model.decode import build_autoencoder
    from moncae.model.inherit import load_parent_model

    spec = DataSpec(str(tiny_npz))
    data = cached_dataset(spec)
    genome = random_genome(GenomeSpace(max_blocks=2, max_filters=8), random.Random(4))
    task = EvalTask(genome, spec, TrainSettings(2, 32, decoder_only=True), 11, key="g")
    result = train.evaluate_genome(task, data)
    assert result.record.ok and result.model_bytes
    trained = load_parent_model(result.model_bytes)
    fresh, _ = build_autoencoder(genome, data.input_shape, seed=11)
    for layer in fresh.layers:
        before, after = layer.get_weights(), trained.get_layer(layer.name).get_weights()
        same = all(np.array_equal(a, b) for a, b in zip(before, after))
        if layer.name.startswith("enc"):
            assert same, layer.name
        elif before and layer.name.startswith(("dec", "reconstruction")):
            assert not same, layer.name
