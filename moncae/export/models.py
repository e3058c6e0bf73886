"""A run's saved model as Keras models: the autoencoder, its encoder and a standalone decoder.

The autoencoder is rebuilt from its genome (`moncae.model.decode`) and the saved weights loaded
into it, which also checks that the file belongs to that genome. The encoder shares its layers
(image -> bottleneck); the decoder applies the autoencoder's own `dec{i}_*` layers and
`reconstruction` to a new bottleneck-shaped input, so it holds the trained weights.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from moncae.errors import MoncaeError, one_line
from moncae.export.front import read_run_models
from moncae.export.select import choose
from moncae.method.architecture import bottleneck_shape
from moncae.method.genome import Genome
from moncae.model.decode import build_autoencoder
from moncae.model.training import quiet_tensorflow

__all__ = ["PARTS", "build_parts", "load_model"]

PARTS = ("autoencoder", "encoder", "decoder")


def build_parts(model_file: str | os.PathLike, genome: Genome, input_shape, model: str = "ae") -> dict:
    """{'autoencoder', 'encoder', 'decoder'}: Keras models holding the weights in `model_file`.

    `model` is the run's kind: for a VAE (`moncae.model.vae`) the autoencoder is the VAE (it
    decodes the mean outside training), the encoder gives the posterior mean, the decoder maps a
    code to an image (e.g. a draw from N(0, I))."""
    import keras

    quiet_tensorflow()
    path = Path(model_file)
    if not path.is_file():
        raise MoncaeError(f"model file {path} is missing; the run folder was changed after the "
                          "search (rerun `moncae finetune`, or pick another model)")
    if model == "vae":
        from moncae.model.vae import build_vae

        vae = build_vae(genome, input_shape)
        autoencoder, encoder = vae.vae, vae.encoder
    else:
        autoencoder, encoder = build_autoencoder(genome, input_shape)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. the saved optimizer's variables are not loaded
            autoencoder.load_weights(path)
    except Exception as err:  # noqa: BLE001 - a corrupt or foreign file, whatever Keras raises
        raise MoncaeError(f"model file {path} cannot be loaded into its genome's network; it is "
                          f"corrupt or belongs to another genome ({one_line(err, limit=160)})") from None
    if model == "vae":
        return {"autoencoder": autoencoder, "encoder": encoder, "decoder": vae.decoder}
    code = keras.Input(shape=bottleneck_shape(genome, input_shape), name="code")
    x = code
    names = {layer.name for layer in autoencoder.layers}
    for name in ("dec_dense", "dec_reshape"):  # a dense bottleneck: back to the last conv map first
        if name in names:
            x = autoencoder.get_layer(name)(x)
    for i in reversed(range(len(genome.blocks_for(input_shape)))):
        for part in ("conv", "up", "crop"):  # the order `decode._decoder_block` applies them
            if f"dec{i}_{part}" in names:
                x = autoencoder.get_layer(f"dec{i}_{part}")(x)
    x = autoencoder.get_layer("reconstruction")(x)
    decoder = keras.Model(code, x, name="decoder")
    return {"autoencoder": autoencoder, "encoder": encoder, "decoder": decoder}


def load_model(run_dir: str | os.PathLike, key: str, part: str = "autoencoder", *,
               searched: bool = False):
    """One of a finished run's saved models as a Keras model (loads TensorFlow).

    Args:
        run_dir: a run folder whose search finished (`OUT/DATASET/seed-N/`).
        key: a genome key, or a unique prefix of its model file name (the `id` column of
            `load_front`, e.g. the 8 characters `moncae front` prints).
        part: 'autoencoder' (image -> reconstruction), 'encoder' (image -> bottleneck code) or
            'decoder' (code -> reconstruction).
        searched: take the searched weights even when fine-tuned ones exist.

    Raises:
        MoncaeError: unknown key, a model that was not kept (only the final population's are),
            a missing or corrupt file, or an unknown `part`.
    """
    if part not in PARTS:
        raise MoncaeError(f"`part` must be one of {', '.join(PARTS)}. Received: part={part!r}")
    run = read_run_models(run_dir, all_models=True)
    if run.input_shape is None:
        raise MoncaeError(f"cannot tell the input shape of {run.path}'s models (no readable model "
                          "file, dataset not available here)")
    choice = choose(run.frame, key=key, searched=searched)
    genome = run.genomes[choice.row["genome_key"]]
    return build_parts(choice.file, genome, run.input_shape, run.config.model)[part]
