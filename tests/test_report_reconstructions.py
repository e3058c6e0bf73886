"""The report's reconstructions figure: one model file that is not an autoencoder of the run's
images is left out with a warning, not a traceback (a helper's audit: a valid Keras model of
another output shape reached matplotlib)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from moncae.report import ReportWarning
from moncae.report.reconstructions import collect_reconstructions

pytestmark = pytest.mark.slow  # loads Keras


def _save(path, outputs):
    import keras

    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(outputs, activation="sigmoid")(x)
    if outputs == 16:
        x = keras.layers.Reshape((4, 4, 1))(x)
    keras.Model(inputs, x).save(path)
    return str(path)


def test_a_model_of_another_output_shape_is_left_out_with_a_warning(tmp_path):
    rows = [{"status": "ok", "genome_key": key, "model_file": _save(tmp_path / f"{key}.keras", n), "loc": 1.0,
             "rec_loss": 0.1, "search_rec_loss": 0.1, "bottleneck": "16", "source": "search",
             "model_stage": "search"} for key, n in (("fits", 16), ("foreign", 10))]
    images = np.random.default_rng(0).random((3, 4, 4, 1)).astype("float32")
    with pytest.warns(ReportWarning, match=r"foreign.keras: cannot load or run this model \(ValueError: its "
                                           r"output is \(10,\), not an image of \(4, 4, 1\)\)"):
        drawn = collect_reconstructions(pd.DataFrame(rows), images)
    assert [m["genome_key"] for m in drawn["models"]] == ["fits"]
