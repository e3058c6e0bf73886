"""Weight inheritance on tiny Keras models (8x8x1): what is copied, from which parent, and what
keeps the child's seeded initial weights."""

from __future__ import annotations

import numpy as np
import pytest

from moncae.method.genome import DENSE_LATENT_SIZES, GENES_PER_BLOCK, Genome, GenomeSpace, Lineage
from moncae.method.inheritance import inheritance_plan
from moncae.model.decode import build_autoencoder
from moncae.model.inherit import inherit_weights, layer_sources, load_parent_model
from moncae.model.training import model_to_bytes

pytestmark = pytest.mark.slow  # builds Keras models (importing TensorFlow alone takes seconds)

SHAPE = (8, 8, 1)
SPACE = GenomeSpace(max_blocks=3, max_filters=16)
DENSE = GenomeSpace(max_blocks=3, max_filters=16, latent_sizes=DENSE_LATENT_SIZES)


def genome_of(blocks, space=SPACE, latent=0) -> Genome:
    """`blocks`: per gene block (active, filters gene, kernel gene, bn); pool on, relu, no dropout."""
    genes = [g for active, filters, kernel, bn in blocks for g in (active, filters, kernel, bn, 0, 0, 1)]
    return Genome(tuple(genes + ([latent] if space.has_latent_gene else []) + [0, 0]), space)


def trained(genome: Genome, seed: int):
    """A parent's model with distinctive weights (every variable, BN statistics too), as if trained."""
    model, _ = build_autoencoder(genome, SHAPE, seed=seed)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype("float32") + 3.0 for w in model.get_weights()])
    return model


def child_of(a: Genome, b: Genome, cut: int) -> Genome:
    return Genome(a.genes[:cut] + b.genes[cut:], a.space, Lineage((a.genes, b.genes), cut))


def weights(model, name):
    return [np.asarray(w) for w in model.get_layer(name).get_weights()]


def same(x, y) -> bool:
    return len(x) == len(y) and all(np.array_equal(u, v) for u, v in zip(x, y))


def test_a_cut_between_blocks_copies_each_block_from_its_parent_and_keeps_the_rest_seeded():
    a = genome_of([(1, 2, 0, 1), (1, 1, 0, 1), (0, 0, 0, 0)])  # C16-bn, C8-bn
    b = genome_of([(1, 1, 1, 0), (0, 0, 0, 0), (1, 1, 0, 1)])  # C8k5, (off), C8-bn
    child = child_of(a, b, 2 * GENES_PER_BLOCK)  # blocks 0, 1 from a, block 2 from b
    assert [blk.describe() for blk in child.blocks] == ["C16k3-relu-bn-pool", "C8k3-relu-bn-pool",
                                                          "C8k3-relu-bn-pool"]
    parents = [trained(a, 1), trained(b, 2)]
    model, _ = build_autoencoder(child, SHAPE, seed=7)
    fresh, _ = build_autoencoder(child, SHAPE, seed=7)
    report = inherit_weights(model, child, parents)
    # block 0 and 1 from a (same names), block 2 is b's layer 1 (its block 1 is off)
    for name in ("enc0_conv", "enc0_bn", "dec0_conv", "enc1_conv", "enc1_bn", "reconstruction"):
        assert same(weights(model, name), weights(parents[0], name)), name
    assert same(weights(model, "enc2_conv"), weights(parents[1], "enc1_conv"))
    assert same(weights(model, "enc2_bn"), weights(parents[1], "enc1_bn"))  # moving stats too
    assert same(weights(model, "dec2_conv"), weights(parents[1], "dec1_conv"))
    # a's dec1_conv (its deepest block, fed by its 8-channel code) has the child's shapes too
    copied = {name for name, _, _ in report.sources}
    assert copied == {"enc0_conv", "enc0_bn", "dec0_conv", "enc1_conv", "enc1_bn", "dec1_conv",
                      "enc2_conv", "enc2_bn", "dec2_conv", "reconstruction"}
    assert report.layers_inherited == report.layers_total == 10
    assert report.weights_inherited == report.weights_total == model.count_params()
    assert report.fraction == 1.0
    # a parent-less genome inherits nothing and stays exactly at its seeded init
    plain = Genome(child.genes, SPACE)
    model2, _ = build_autoencoder(plain, SHAPE, seed=7)
    assert inherit_weights(model2, plain, parents).weights_inherited == 0
    assert all(np.array_equal(u, v) for u, v in zip(model2.get_weights(), fresh.get_weights()))


def test_a_layer_whose_shapes_differ_keeps_the_childs_seeded_init():
    a = genome_of([(1, 2, 0, 0), (1, 1, 0, 0), (0, 0, 0, 0)])  # C16, C8
    b = genome_of([(1, 2, 0, 0), (1, 2, 1, 0), (1, 0, 0, 0)])  # C16, C16k5, C4
    # cut just after block 1's filters gene: block 1 takes a's filters (8) but b's kernel (5)
    child = child_of(a, b, GENES_PER_BLOCK + 2)
    assert inheritance_plan(child).blocks[1].parent == 0
    parents = [trained(a, 1), trained(b, 2)]
    model, _ = build_autoencoder(child, SHAPE, seed=7)
    fresh, _ = build_autoencoder(child, SHAPE, seed=7)
    report = inherit_weights(model, child, parents)
    copied = {name: (parent, source) for name, parent, source in report.sources}
    # enc1_conv: 5x5 kernel in the child, 3x3 in a -> not inherited; block 2 from b: C4 reads 8
    # channels in the child but 16 in b -> its encoder conv is not inherited, its decoder conv
    # (4 -> 4 channels) and the output layer are
    assert "enc1_conv" not in copied and "enc2_conv" not in copied
    assert copied["enc0_conv"] == (0, "enc0_conv") and copied["dec2_conv"] == (1, "dec2_conv")
    for name in ("enc1_conv", "enc2_conv"):
        assert same(weights(model, name), weights(fresh, name)), name
    assert 0 < report.weights_inherited < report.weights_total == model.count_params()
    assert report.layers_inherited == len(report.sources) < report.layers_total


def test_a_missing_parent_model_leaves_its_layers_seeded():
    a = genome_of([(1, 2, 0, 0), (1, 1, 0, 0), (0, 0, 0, 0)])
    b = genome_of([(1, 2, 0, 0), (1, 1, 0, 0), (1, 0, 0, 0)])
    child = child_of(a, b, 2 * GENES_PER_BLOCK)
    model, _ = build_autoencoder(child, SHAPE, seed=7)
    report = inherit_weights(model, child, [trained(a, 1), None])
    assert {parent for _, parent, _ in report.sources} == {0}
    assert "enc2_conv" not in {name for name, _, _ in report.sources}


def test_the_dense_bottleneck_is_inherited_from_the_latent_genes_parent():
    a = genome_of([(1, 2, 0, 0), (1, 1, 0, 0), (0, 0, 0, 0)], DENSE, latent=3)
    b = genome_of([(1, 2, 0, 0), (1, 1, 0, 0), (0, 0, 0, 0)], DENSE, latent=3)
    child = child_of(a, b, 5)  # block 0 from a (its filters gene is before the cut), the rest from b
    parents = [trained(a, 1), trained(b, 2)]
    model, _ = build_autoencoder(child, SHAPE, seed=7)
    report = inherit_weights(model, child, parents)
    assert same(weights(model, "latent"), weights(parents[1], "latent"))
    assert same(weights(model, "dec_dense"), weights(parents[1], "dec_dense"))
    assert same(weights(model, "enc0_conv"), weights(parents[0], "enc0_conv"))
    assert same(weights(model, "enc1_conv"), weights(parents[1], "enc1_conv"))
    assert report.weights_inherited == report.weights_total
    assert layer_sources(inheritance_plan(child))["latent"] == (1, "latent")


def test_a_parent_loads_from_bytes_or_a_file_rebuilt_or_deserialised(tmp_path):
    a = genome_of([(1, 2, 0, 1), (1, 1, 0, 0), (0, 0, 0, 0)])
    parent = trained(a, 1)
    data = model_to_bytes(parent)
    path = tmp_path / "parent.keras"
    path.write_bytes(data)
    for loaded in (load_parent_model(data), load_parent_model(path), load_parent_model(data, a, SHAPE),
                   load_parent_model(str(path), a, SHAPE)):
        assert all(np.array_equal(u, v) for u, v in zip(loaded.get_weights(), parent.get_weights()))
    other = genome_of([(1, 0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0)])
    with pytest.raises(Exception):  # noqa: B017 - whatever Keras raises for another genome's file
        load_parent_model(data, other, SHAPE)


def saved_groups(model_bytes: bytes) -> list[str]:
    """The top-level groups of a `.keras` file's weights."""
    import io
    import zipfile

    import h5py

    with zipfile.ZipFile(io.BytesIO(model_bytes)) as archive, archive.open("model.weights.h5") as fh, \
            h5py.File(io.BytesIO(fh.read()), "r") as weights:
        return sorted(weights)


def test_a_saved_autoencoder_without_its_optimizer_keeps_its_weights_and_input_structure(tmp_path):
    """Search and fine-tune save a plain autoencoder without the optimizer's state (a third of
    the bytes); the weights load as before, and Keras' own loader gives a model called on one
    tensor, as the built one is (a twin built on `inputs`, a list, warned at every call)."""
    import warnings

    import keras

    from moncae.model.training import build_optimizer, make_loss, make_optimizer

    genome = genome_of([(1, 2, 0, 1), (1, 1, 0, 1), (0, 0, 0, 0)], DENSE, latent=3)
    model = trained(genome, 4)
    model.compile(optimizer=make_optimizer(genome), loss=make_loss("bce"))
    build_optimizer(model)
    full, lean = model_to_bytes(model), model_to_bytes(model, optimizer=False)
    assert len(lean) < len(full) and saved_groups(full) == ["layers", "optimizer", "vars"]
    assert saved_groups(lean) == ["layers", "vars"]
    assert same(load_parent_model(lean, genome, SHAPE).get_weights(), model.get_weights())
    (tmp_path / "m.keras").write_bytes(lean)
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False, safe_mode=True)
    assert same(loaded.get_weights(), model.get_weights()) and getattr(loaded, "optimizer", None) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = loaded(np.zeros((2, *SHAPE), np.float32))
    assert tuple(out.shape) == (2, *SHAPE) and model.optimizer.built  # the model itself is as it was
