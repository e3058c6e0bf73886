"""Where each dataset may live on disk, in resolution order, and why a place did not count.

Order (first complete hit wins): the `data_dir` argument, else `$MONCAE_DATA_DIR`; the Keras
cache (`$KERAS_HOME/datasets`, default `~/.keras/datasets`) in the layouts keras.datasets
writes; system copies under `SYSTEM_DATA_DIRS`. The download fallback lives in `core`.
A partial set (e.g. only MNIST's t10k test files) is never a hit, but it is reported so the
user learns why a folder they pointed at did not count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from moncae.data.formats import (
    CIFAR_BATCHES,
    CIFAR_FOLDER,
    IDX_FILES,
    RawData,
    idx_file,
    read_cifar_dir,
    read_cifar_tar,
    read_idx_set,
    read_npz,
)
from moncae.errors import DataError

DATA_DIR_ENV = "MONCAE_DATA_DIR"
# Folders holding one subfolder per dataset (Debian's dataset-fashion-mnist installs
# /usr/share/datasets/fashion-mnist/). Tests replace this tuple.
SYSTEM_DATA_DIRS: tuple[str, ...] = ("/usr/share/datasets", "/usr/local/share/datasets")

_SUBFOLDERS = {"mnist": ("mnist",), "fashion_mnist": ("fashion-mnist", "fashion_mnist")}
_NPZ_NAMES = {"mnist": ("mnist.npz",), "fashion_mnist": ("fashion-mnist.npz", "fashion_mnist.npz")}
_NEAR_MISS_PREFIX = {"mnist": "mnist", "fashion_mnist": "fashion", "cifar10": "cifar"}
_READERS = {"idx": read_idx_set, "npz": read_npz, "cifar_dir": read_cifar_dir,
            "cifar_tar": read_cifar_tar}


@dataclass(frozen=True)
class Candidate:
    """One place a dataset may be: a folder of IDX files or CIFAR pickles, or one file."""

    kind: str  # "idx" | "npz" | "cifar_dir" | "cifar_tar"
    path: Path

    def describe(self) -> str:
        return f"{self.path}{os.sep}" if self.kind in ("idx", "cifar_dir") else str(self.path)

    def probe(self) -> tuple[bool, str]:
        """(complete?, short state) without reading file contents: cheap and side-effect free."""
        if self.kind in ("npz", "cifar_tar"):
            return (True, "found") if self.path.is_file() else (False, "missing")
        present, absent = self._members()
        if not present:
            what = "IDX files" if self.kind == "idx" else "CIFAR-10 batches"
            return False, "missing" if not self.path.is_dir() else f"no {what}"
        if absent:
            return False, (f"partial set: has {', '.join(present)} but lacks "
                           f"{', '.join(absent)}{self._partial_hint(present)}")
        return True, "found"

    def read(self) -> RawData:
        return _READERS[self.kind](self.path)

    def signature(self) -> tuple:
        """Sizes and mtimes of the files read: the in-process cache key changes with them."""
        files = [self.path] if self.kind in ("npz", "cifar_tar") else (
            [idx_file(self.path, r) for r in IDX_FILES] if self.kind == "idx"
            else [self.path / b for b in CIFAR_BATCHES])
        out = []
        for f in files:
            st = os.stat(f) if f is not None else None
            out.append((str(f), st.st_size if st else -1, st.st_mtime_ns if st else -1))
        return tuple(out)

    def _members(self) -> tuple[list[str], list[str]]:
        if self.kind == "idx":
            found = {r: idx_file(self.path, r) for r in IDX_FILES}
            return ([p.name for p in found.values() if p is not None],
                    [f"{IDX_FILES[r]}.gz" for r, p in found.items() if p is None])
        present = [b for b in CIFAR_BATCHES if (self.path / b).is_file()]
        return present, [b for b in CIFAR_BATCHES if b not in present]

    def _partial_hint(self, present: list[str]) -> str:
        if self.kind == "idx" and all(name.startswith("t10k") for name in present):
            return ", i.e. only the test split; a training split is required"
        return ""


def user_data_dir(data_dir: str | os.PathLike | None) -> tuple[Path | None, str]:
    """The explicit data folder (argument first, else the env var) and how it was given."""
    if data_dir is not None and str(data_dir) != "":  # the command line folds the env var into it
        how = f"--data-dir, a --config file's data_dir or ${DATA_DIR_ENV}"
    elif os.environ.get(DATA_DIR_ENV):
        data_dir, how = os.environ[DATA_DIR_ENV], f"${DATA_DIR_ENV}"
    else:
        return None, ""
    path = Path(data_dir).expanduser().absolute()
    if not path.is_dir():
        raise DataError(
            f"Data folder {path} (from {how}) does not exist or is not a folder. Pass an "
            f"existing folder with --data-dir DIR or {DATA_DIR_ENV}. Received: {data_dir}"
        )
    return path, how


def keras_datasets_dir() -> Path:
    """Where keras.datasets caches downloads: $KERAS_HOME/datasets, else ~/.keras/datasets."""
    home = os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    return Path(home).expanduser().absolute() / "datasets"


def candidates(name: str, user_dir: Path | None) -> list[Candidate]:
    """Every place `name` may be, in resolution order."""
    out = _folder_layouts(name, user_dir, direct=True) if user_dir else []
    out += _keras_layouts(name, keras_datasets_dir())
    for root in SYSTEM_DATA_DIRS:
        out += _folder_layouts(name, Path(root), direct=False)
    return out


def near_misses(name: str, user_dir: Path | None, known: list[Candidate]) -> list[Candidate]:
    """Other subfolders named like the dataset (e.g. `mnist-test/`) that hold some files."""
    roots = ([user_dir] if user_dir else []) + [Path(r) for r in SYSTEM_DATA_DIRS]
    seen = {c.path for c in known}
    kind = "cifar_dir" if name == "cifar10" else "idx"
    out = []
    for root in roots:
        try:
            subs = sorted(p for p in root.iterdir() if p.is_dir())
        except OSError:
            continue
        for sub in subs:
            if sub.name.lower().startswith(_NEAR_MISS_PREFIX[name]) and sub not in seen:
                cand = Candidate(kind, sub)
                if cand._members()[0]:
                    out.append(cand)
    return out


def _folder_layouts(name: str, root: Path, *, direct: bool) -> list[Candidate]:
    if name == "cifar10":
        return [Candidate("cifar_dir", root / CIFAR_FOLDER),
                Candidate("cifar_tar", root / "cifar-10-python.tar.gz")]
    out = [Candidate("idx", root / sub) for sub in _SUBFOLDERS[name]]
    out += [Candidate("npz", root / f) for f in _NPZ_NAMES[name]]
    # the folder itself, but not one named after the other IDX dataset: MNIST's and Fashion-MNIST's
    # files have the same names, so `--data-dir .../fashion-mnist` would pass for MNIST
    other = next(o for o in _SUBFOLDERS if o != name)
    if direct and not root.name.lower().startswith(_NEAR_MISS_PREFIX[other]):
        out.append(Candidate("idx", root))
    return out


def _keras_layouts(name: str, kdir: Path) -> list[Candidate]:
    if name == "mnist":
        return [Candidate("npz", kdir / "mnist.npz")]
    if name == "fashion_mnist":
        return [Candidate("idx", kdir / "fashion-mnist")]
    return [  # Keras 3 layout, then the Keras 2 one, then their downloaded archives
        Candidate("cifar_dir", kdir / "cifar-10-batches-py-target" / CIFAR_FOLDER),
        Candidate("cifar_dir", kdir / CIFAR_FOLDER),
        Candidate("cifar_tar", kdir / "cifar-10-batches-py-target_archive"),
        Candidate("cifar_tar", kdir / "cifar-10-batches-py.tar.gz"),
    ]
