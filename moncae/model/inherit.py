"""Weight inheritance (Lamarckian warm start, as in LEMONADE): a crossover child starts from its
parents' trained weights wherever a layer matches, and from its own seeded initialisation
elsewhere.

`moncae.method.inheritance.inheritance_plan` says which parent each of the child's layers
comes from (and which of that parent's layers); here a layer is copied when that parent's model
is given, has a layer of that name and the same class, and every weight has the same shape
(kernels, biases, BatchNorm's gamma, beta and moving statistics). Call `inherit_weights` after
`build_autoencoder(child, shape, seed)` and before compiling and fitting: the optimizer starts
fresh.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from moncae.method.genome import Genome
from moncae.method.inheritance import InheritancePlan, inheritance_plan
from moncae.tfquiet import import_tensorflow_quietly

import_tensorflow_quietly()
import keras  # noqa: E402

from moncae.model.decode import build_autoencoder  # noqa: E402

__all__ = ["InheritReport", "inherit_weights", "layer_sources", "load_parent_model"]

BLOCK_LAYERS = ("enc{}_conv", "enc{}_bn", "dec{}_conv")  # the decoder's names for block i's weighted layers


@dataclass(frozen=True)
class InheritReport:
    """What `inherit_weights` copied. Weights are scalar parameters of every variable the layers
    hold (trainable or not, as `model.count_params()`), layers those with any weights."""

    weights_inherited: int
    weights_total: int
    layers_inherited: int
    layers_total: int
    sources: tuple[tuple[str, int, str], ...] = ()  # (child layer, parent 0/1, parent layer), copied

    @property
    def fraction(self) -> float:
        """Share of the child's weights that came from a parent (0.0 for no weights)."""
        return self.weights_inherited / self.weights_total if self.weights_total else 0.0


def layer_sources(plan: InheritancePlan) -> dict[str, tuple[int, str]]:
    """The plan in the decoder's layer names: child layer -> (parent 0/1, parent layer)."""
    sources: dict[str, tuple[int, str]] = {}
    for block in plan.blocks:
        if block.parent_layer is None:
            continue
        for name in BLOCK_LAYERS:
            sources[name.format(block.layer)] = (block.parent, name.format(block.parent_layer))
    for name in ("latent", "dec_dense"):
        sources[name] = (plan.latent_parent, name)
    sources["reconstruction"] = (plan.output_parent, "reconstruction")
    return sources


def _size(layer) -> int:
    return sum(int(np.prod(w.shape)) for w in layer.weights)


def _matching_layer(model, name: str, like):
    """`model`'s layer `name` when it has `like`'s class and weight shapes, else None."""
    try:
        layer = model.get_layer(name)
    except ValueError:
        return None
    if type(layer) is not type(like) or len(layer.weights) != len(like.weights):
        return None
    if any(tuple(a.shape) != tuple(b.shape) for a, b in zip(layer.weights, like.weights)):
        return None
    return layer


def inherit_weights(child_model, child_genome: Genome, parent_models: Sequence) -> InheritReport:
    """Copy into `child_model` (the autoencoder of `child_genome`, freshly built) every layer's
    weights that its planned parent has with equal name mapping, class and shapes.

    `parent_models` are the trained autoencoders of `child_genome.lineage.parents[0]` and `[1]`
    (`child_genome.parents()` as genomes), in that order; None for one that is not available (its
    training failed, or its model is gone): its layers keep the child's initial weights. A genome
    without lineage inherits nothing. Returns what was copied out of the total.
    """
    plan = inheritance_plan(child_genome)
    sources = layer_sources(plan) if plan is not None else {}
    if plan is not None and len(parent_models) != 2:
        raise ValueError(f"parent_models must hold two entries (None allowed), not {len(parent_models)}")
    weighted = [layer for layer in child_model.layers if layer.weights]
    copied, n_weights = [], 0
    for layer in weighted:
        parent, name = sources.get(layer.name, (None, ""))
        model = None if parent is None else parent_models[parent]
        source = None if model is None else _matching_layer(model, name, layer)
        if source is None:
            continue
        layer.set_weights(source.get_weights())
        copied.append((layer.name, parent, name))
        n_weights += _size(layer)
    return InheritReport(n_weights, sum(_size(layer) for layer in weighted), len(copied), len(weighted),
                         tuple(copied))


def load_parent_model(source: str | os.PathLike | bytes, genome: Genome | None = None,
                      input_shape: Sequence[int] | None = None, *, model: str = "ae"):
    """A parent's trained autoencoder from a `.keras` file (path) or its bytes (`model_to_bytes`).

    With `genome` and `input_shape`, the network is rebuilt from the genome and the file's
    weights loaded into it (as `finetune` and `export` do: nothing in the file is deserialised
    but weights, and a file of another genome fails); without, `keras.saving.load_model` in
    safe mode, uncompiled. Rebuilding uses a fixed seed, so it never draws from the global RNG.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "parent.keras")
            with open(path, "wb") as fh:
                fh.write(bytes(source))
            return load_parent_model(path, genome, input_shape, model=model)
    if genome is None:
        return keras.saving.load_model(source, compile=False, safe_mode=True)
    if input_shape is None:
        raise ValueError("input_shape is needed to rebuild the parent from its genome")
    if model == "vae":  # `model`: the run's kind, ae or vae (the VAE of moncae.model.vae)
        from moncae.model.vae import build_vae

        network = build_vae(genome, input_shape, seed=0).vae
    else:
        network, _ = build_autoencoder(genome, input_shape, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. the saved optimizer's variables are not loaded
        network.load_weights(source)
    return network
