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
