"""Each final model's reconstructions of a few test images (the report's only Keras use)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from moncae.report.collect import warn

__all__ = ["collect_reconstructions", "pick_images"]


def pick_images(x: np.ndarray, y: np.ndarray | None, n: int) -> np.ndarray:
    """Indices of the first `n` test images, one per class where labels allow."""
    if y is None or len(y) != len(x):
        return np.arange(min(n, len(x)))
    chosen, seen = [], set()
    for i, label in enumerate(np.asarray(y).tolist()):
        if label not in seen:
            chosen.append(i)
            seen.add(label)
        if len(chosen) == n:
            break
    for i in range(len(x)):  # fewer classes than n: fill with the next images
        if len(chosen) >= n:
            break
        if i not in chosen:
            chosen.append(i)
    return np.array(sorted(chosen))


def collect_reconstructions(finals: pd.DataFrame, images: np.ndarray) -> dict:
    """Each final model's reconstructions of `images`, models sorted by LOC then loss."""
    models = finals[(finals["status"] == "ok") & (finals["model_file"] != "")]
    models = models.sort_values(["loc", "rec_loss"])
    out: list[dict] = []
    if models.empty:  # nothing to draw: do not load TensorFlow for it
        return {"images": images, "models": out}
    from moncae.tfquiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    import moncae.model.vae  # noqa: F401 - registers a VAE's layers, so its file loads

    for _, m in models.iterrows():  # tiny models: one session for all (clear_session costs a gc)
        try:
            model = keras.models.load_model(m["model_file"], compile=False)
            recon = np.asarray(model(images.astype("float32"), training=False))
            if recon.shape != images.shape:  # a file swapped in from elsewhere: not an autoencoder of these
                raise ValueError(f"its output is {recon.shape[1:]}, not an image of {images.shape[1:]}")
        except Exception as err:  # noqa: BLE001 - one unreadable model must not stop the report
            warn(f"{m['model_file']}: cannot load or run this model ({type(err).__name__}: "
                 f"{str(err).splitlines()[0][:120] if str(err) else ''}); left out of the reconstructions figure")
            continue
        searched = m["model_stage"] == "search"  # the loss shown is the drawn model's own
        out.append({"genome_key": m["genome_key"],
                    "rec_loss": float(m["search_rec_loss"] if searched else m["rec_loss"]),
                    "loc": float(m["loc"]), "bottleneck": m["bottleneck"],
                    "source": "search" if searched else m["source"],
                    "reconstructions": np.clip(recon, 0.0, 1.0)})
    keras.backend.clear_session()
    return {"images": images, "models": out}
