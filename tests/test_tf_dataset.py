"""`tf_dataset`: the batches a Keras `fit`/`evaluate` reads, without leaving files behind."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest

from moncae.model.training import tf_dataset

# It needs TensorFlow (seconds to import in each test process): not part of `make test-fast`.
pytestmark = pytest.mark.slow


def test_an_autoencoder_dataset_writes_no_autograph_file_to_the_temp_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    x = np.zeros((10, 4, 4, 1), np.float32)
    batch = next(iter(tf_dataset(x, batch_size=4, autoencoder=True)))
    assert [tuple(b.shape) for b in batch] == [(4, 4, 4, 1), (4, 4, 4, 1)]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("labels", [False, True])
def test_a_shuffled_dataset_gives_the_batches_of_shuffling_the_images_themselves(tmp_path, monkeypatch, labels):
    """Shuffling indices and gathering from one copy of the images (not a second copy in the
    shuffle buffer, a helper's audit) keeps every batch of every epoch to the bit, and still
    writes no AutoGraph file."""
    import tensorflow as tf

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    rng = np.random.default_rng(0)
    x = rng.random((203, 5, 3, 2), dtype=np.float32)
    y = rng.integers(0, 10, 203).astype(np.int64)
    images = tf.data.Dataset.from_tensor_slices((x, y) if labels else x)
    before = images.shuffle(len(x), seed=7, reshuffle_each_iteration=True).batch(32)
    now = tf_dataset(x, y if labels else None, batch_size=32, shuffle_seed=7, autoencoder=not labels)
    for epoch in range(3):
        pairs = list(zip(before, now, strict=True))
        assert len(pairs) == 7
        for old, new in pairs:
            new = new if labels else new[0]  # (x, x) for an autoencoder
            for a, b in zip(old if labels else (old,), new if labels else (new,), strict=True):
                assert np.array_equal(a.numpy(), b.numpy()), epoch
    assert list(tmp_path.iterdir()) == []
