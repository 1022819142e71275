"""Datasets used by the book, as tensors with train/valid/test splits.

``load(name, binarization=...)`` is the one entry point:

===================  ==============================================  =========
name                 what                                            pixels
===================  ==============================================  =========
``digits``           scikit-learn's bundled 8x8 digits (offline)     64
``mnist``            the original MNIST IDX files                    784
``binarized_mnist``  Larochelle & Murray's fixed binarization        784
===================  ==============================================  =========

Binarizations of ``mnist`` (and ``digits``):

* ``threshold``: pixel >= 128 (>= 8 of 16 for digits), as in Zhang et al. 2022;
* ``dynamic``: a fresh Bernoulli(x / 255) draw for every minibatch (Burda et
  al. 2016); the stored tensors hold the probabilities and
  :meth:`Dataset.binarize` draws, with an explicit generator;
* ``grey``: integers 0..255 as float, for the discretized logistic likelihood.

Files are looked up in ``$GAPKIT_DATA_DIR`` (``mnist/*.gz`` and
``binarized_mnist/binarized_mnist.npz``), then in the per-user cache
(``$XDG_CACHE_HOME/gapkit/data``, default ``~/.cache/gapkit/data``); when absent
they are downloaded once into the cache and checked against their known
checksums.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = ["Dataset", "load", "DATASETS", "BINARIZATIONS", "DataError", "data_dirs"]

DATASETS = ("digits", "mnist", "binarized_mnist")
BINARIZATIONS = ("threshold", "dynamic", "grey", "fixed")

# sha256 of the original files (see shared/data/README.md).
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
BINARIZED_MNIST_NPZ = ("binarized_mnist.npz",
                       "350243cb824d66d022e0c3e87cac231231668817ff03f5f6d7b6533017d56b4b")
# The original .amat text files (md5s as used by public loaders).
BINARIZED_MNIST_AMAT = {
    "train": "db28b1a6ae0fe70cbd3da91acf46e477",
    "valid": "bf37822a04e94123630de6a7dfd9c9ef",
    "test": "14e41ae11040adba6ab8cb291eda0dd8",
}
BINARIZED_MNIST_URL = ("http://www.cs.toronto.edu/~larocheh/public/datasets/"
                       "binarized_mnist/binarized_mnist_{}.amat")


class DataError(FileNotFoundError):
    """Data files are missing, unreachable or corrupt."""


@dataclass
class Dataset:
    """Train/valid/test tensors of flattened images, shape (N, D), float32.

    ``likelihood`` is ``"bernoulli"`` (values in {0, 1}, or probabilities when
    ``dynamic``) or ``"logistic"`` (integers 0..255 stored as float).
    """

    name: str
    binarization: str
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    image_shape: tuple
    likelihood: str
    dynamic: bool = False
    labels: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.train.shape[1])

    def split(self, name: str) -> torch.Tensor:
        if name not in ("train", "valid", "test"):
            raise ValueError(f"unknown split {name!r}; valid splits: 'train', 'valid', 'test'")
        return getattr(self, name)

    def binarize(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A minibatch as the model sees it: a Bernoulli draw when dynamic, else unchanged."""
        if not self.dynamic:
            return x
        return torch.bernoulli(x, generator=generator)

    def fixed(self, split: str, seed: int = 0) -> torch.Tensor:
        """A split with one fixed binarization (for evaluation of dynamic data)."""
        x = self.split(split)
        if not self.dynamic:
            return x
        g = torch.Generator(device=x.device).manual_seed(seed)
        return torch.bernoulli(x, generator=g)

    def to(self, device) -> "Dataset":
        for s in ("train", "valid", "test"):
            setattr(self, s, getattr(self, s).to(device))
        return self

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, binarization={self.binarization!r}, "
                f"train={tuple(self.train.shape)}, valid={tuple(self.valid.shape)}, "
                f"test={tuple(self.test.shape)}, likelihood={self.likelihood!r})")


# ----------------------------------------------------------------------------- files

def data_dirs() -> list[Path]:
    """Where data files are looked for, in order: $GAPKIT_DATA_DIR, then the user cache."""
    dirs = []
    if os.environ.get("GAPKIT_DATA_DIR"):
        dirs.append(Path(os.environ["GAPKIT_DATA_DIR"]).expanduser())
    dirs.append(cache_dir())
    return dirs


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gapkit" / "data"


def _digest(path: Path, algo: str = "sha256") -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check(path: Path, expected: str, algo: str = "sha256") -> Path:
    got = _digest(path, algo)
    if got != expected:
        raise DataError(
            f"{path} is corrupt or truncated: its {algo} is {got}, expected {expected}. "
            f"Delete it and put a good copy there (see the data section of the README).")
    return path


def _download(urls, dest: Path, expected: str, algo: str = "sha256") -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        try:
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".")
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as r:
                shutil.copyfileobj(r, out)
            if _digest(Path(tmp), algo) != expected:
                os.unlink(tmp)
                errors.append(f"{url}: checksum mismatch")
                continue
            os.replace(tmp, dest)
            return dest
        except OSError as e:  # URLError is an OSError
            errors.append(f"{url}: {e}")
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise DataError("; ".join(errors))


def _find(subdir: str, filename: str, expected: str, urls=(), algo="sha256") -> Path:
    """Look a file up in the data dirs, checking its checksum; else download it to the cache."""
    looked = []
    for d in data_dirs():
        p = d / subdir / filename
        looked.append(str(p))
        if p.exists():
            return _check(p, expected, algo)
    if urls:
        try:
            return _download(urls, cache_dir() / subdir / filename, expected, algo)
        except DataError as e:
            reason = str(e)
    else:
        reason = "no download source"
    raise DataError(
        f"{filename} not found. Looked in: {', '.join(looked)}; download failed ({reason}). "
        f"Set GAPKIT_DATA_DIR to a folder holding {subdir}/{filename}.")


def _mnist_paths() -> dict[str, Path]:
    paths, missing = {}, []
    for fname, sha in MNIST_FILES.items():
        try:
            paths[fname] = _find("mnist", fname, sha, [m + fname for m in MNIST_MIRRORS])
        except DataError as e:
            if "corrupt" in str(e):
                raise
            missing.append(fname)
    if missing:
        where = ", ".join(str(d / "mnist") for d in data_dirs())
        raise DataError(
            "MNIST is not available offline. Needed: " + ", ".join(MNIST_FILES) +
            f" (missing: {', '.join(missing)}). Looked in: {where}, and the download from "
            f"{', '.join(MNIST_MIRRORS)} failed. Put the four .gz files in a folder "
            "'mnist/' and set GAPKIT_DATA_DIR to its parent, e.g. GAPKIT_DATA_DIR=../shared/data.")
    return paths


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file: magic 0x0000 08 NDIM, big-endian sizes, uint8 data."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not a uint8 IDX file (bad magic {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path} is truncated: header says {shape}, found {data.size} values")
    return data.reshape(shape)


# ----------------------------------------------------------------------------- loaders

def _load_mnist_uint8():
    p = _mnist_paths()
    xtr = read_idx(p["train-images-idx3-ubyte.gz"]).reshape(-1, 784)
    ytr = read_idx(p["train-labels-idx1-ubyte.gz"])
    xte = read_idx(p["t10k-images-idx3-ubyte.gz"]).reshape(-1, 784)
    yte = read_idx(p["t10k-labels-idx1-ubyte.gz"])
    # The usual split: the last 10,000 training images are the validation set.
    return (xtr[:50000], ytr[:50000]), (xtr[50000:], ytr[50000:]), (xte, yte)


def _load_binarized_mnist():
    fname, sha = BINARIZED_MNIST_NPZ
    looked = []
    for d in data_dirs():
        p = d / "binarized_mnist" / fname
        looked.append(str(p))
        if p.exists():
            _check(p, sha)
            with np.load(p) as z:
                return z["train"], z["valid"], z["test"]
    # Not found: fetch the original .amat text files into the cache and convert.
    dest = cache_dir() / "binarized_mnist"
    try:
        arrays = {}
        for split, md5 in BINARIZED_MNIST_AMAT.items():
            f = _download([BINARIZED_MNIST_URL.format(split)], dest / f"binarized_mnist_{split}.amat",
                          md5, algo="md5")
            arrays[split] = np.loadtxt(f, dtype=np.uint8)
    except (DataError, OSError) as e:
        raise DataError(
            f"{fname} not found. Looked in: {', '.join(looked)}; download of the .amat files "
            f"failed ({e}). Put binarized_mnist/{fname} (arrays train, valid, test) under a folder "
            "and set GAPKIT_DATA_DIR to it.") from None
    np.savez_compressed(dest / fname, **arrays)
    return arrays["train"], arrays["valid"], arrays["test"]


def _load_digits():
    from sklearn.datasets import load_digits
    d = load_digits()
    x, y = d.data.astype(np.uint8), d.target.astype(np.uint8)  # values 0..16
    perm = np.random.RandomState(0).permutation(len(x))  # fixed split, independent of any seed
    x, y = x[perm], y[perm]
    return (x[:1297], y[:1297]), (x[1297:1547], y[1297:1547]), (x[1547:], y[1547:])


def load(name: str = "digits", binarization: str = "threshold", subset: int | None = None,
         test_subset: int | None = None, seed: int = 0, device=None) -> Dataset:
    """Load a dataset as flattened float32 tensors with train/valid/test splits.

    :param name: one of ``digits``, ``mnist``, ``binarized_mnist``.
    :param binarization: ``threshold``, ``dynamic`` or ``grey`` (``mnist``, ``digits``);
        ``binarized_mnist`` is already binary (``fixed``).
    :param subset: keep a random subset of this many training images (fixed by ``seed``).
    :param test_subset: likewise for the validation and test splits.
    :param seed: the seed of those random subsets.
    :param device: where the tensors live (the training loop keeps data on the device).

    `Chapter 0 <https://gapkit.github.io/gapkit/notebooks/00_vae_basics.html>`_
    uses it through the experiments; the ``quick`` preset
    loads ``digits``, the ``book`` preset ``mnist``.
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    if name == "binarized_mnist":
        if binarization not in ("fixed", "threshold"):
            raise ValueError(f"binarized_mnist comes binarized (Larochelle & Murray); "
                             f"binarization must be 'fixed', not {binarization!r}")
        binarization = "fixed"
    elif binarization not in ("threshold", "dynamic", "grey"):
        raise ValueError(f"unknown binarization {binarization!r} for {name}; valid: "
                         "'threshold', 'dynamic', 'grey'")
    from .checks import optional_positive_int, seed as check_seed
    subset = optional_positive_int("subset", subset)           # True is not a subset size
    test_subset = optional_positive_int("test_subset", test_subset)
    seed = check_seed(seed)
    if device is not None:
        from .device import default_device
        device = default_device(device, announce=False)

    labels = {}
    if name == "binarized_mnist":
        tr, va, te = (torch.from_numpy(a.astype(np.float32)) for a in _load_binarized_mnist())
        shape, likelihood, dynamic = (28, 28), "bernoulli", False
    else:
        (xtr, ytr), (xva, yva), (xte, yte) = _load_digits() if name == "digits" else _load_mnist_uint8()
        labels = {"train": torch.from_numpy(ytr.astype(np.int64)), "valid": torch.from_numpy(yva.astype(np.int64)),
                  "test": torch.from_numpy(yte.astype(np.int64))}
        top = 16.0 if name == "digits" else 255.0
        shape = (8, 8) if name == "digits" else (28, 28)

        def convert(a):
            a = torch.from_numpy(a.astype(np.float32))
            if binarization == "threshold":  # pixel >= 128 of 255 (>= 8 of 16 for digits)
                return (a >= (8.0 if name == "digits" else 128.0)).float()
            if binarization == "dynamic":  # probabilities; Dataset.binarize draws
                return a / top
            return torch.round(a * (255.0 / top))  # grey: integers 0..255

        tr, va, te = convert(xtr), convert(xva), convert(xte)
        likelihood = "logistic" if binarization == "grey" else "bernoulli"
        dynamic = binarization == "dynamic"

    # Subsets keep labels aligned by drawing the same permutation.
    def sub(split, x, n, s):
        if n is None or n >= len(x):
            return x
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(s))[:n]
        if split in labels:
            labels[split] = labels[split][idx]
        return x[idx]

    tr = sub("train", tr, subset, seed)
    va = sub("valid", va, test_subset, seed + 1)
    te = sub("test", te, test_subset, seed + 2)
    ds = Dataset(name, binarization, tr.contiguous(), va.contiguous(), te.contiguous(), shape,
                 likelihood, dynamic, labels)
    if device is not None:
        ds.to(device)
    return ds
