"""A VAE run's generated images: each final model decodes the same N(0, I) draws."""

from __future__ import annotations

import pandas as pd

from moncae.report.collect import warn

__all__ = ["SAMPLE_DRAWS", "SAMPLE_SEED", "collect_samples"]

SAMPLE_DRAWS = 8  # images per model
SAMPLE_SEED = 0  # the draws' seed (models with one code shape decode the same draws)


def collect_samples(finals: pd.DataFrame, n: int = SAMPLE_DRAWS, seed: int = SAMPLE_SEED) -> dict:
    """Each final model's decodings of `n` draws z ~ N(0, I), models sorted by LOC then loss
    (the reconstructions figure's order); `images` is None: there are no originals."""
    models = finals[(finals["status"] == "ok") & (finals["model_file"] != "")]
    models = models.sort_values(["loc", "rec_loss"])
    out: list[dict] = []
    if models.empty:
        return {"images": None, "models": out}
    from moncae.tfquiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    from moncae.model.vae import decode_prior_samples  # registers the VAE's layers for loading

    for _, m in models.iterrows():
        try:
            model = keras.saving.load_model(m["model_file"], compile=False, safe_mode=True)
            samples = decode_prior_samples(model, n, seed)
        except Exception as err:  # noqa: BLE001 - one unreadable model must not stop the report
            warn(f"{m['model_file']}: cannot load or sample this model ({type(err).__name__}: "
                 f"{str(err)[:120]}); left out of the samples figure")
            continue
        searched = m["model_stage"] == "search"
        out.append({"genome_key": m["genome_key"],
                    "rec_loss": float(m["search_rec_loss"] if searched else m["rec_loss"]),
                    "loc": float(m["loc"]), "bottleneck": m["bottleneck"],
                    "source": "search" if searched else m["source"], "reconstructions": samples})
    keras.backend.clear_session()
    return {"images": None, "models": out}
