import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gapkit import data


def test_digits_threshold_splits():
    d = data.load("digits")
    assert d.train.shape == (1297, 64) and d.valid.shape == (250, 64) and d.test.shape == (250, 64)
    assert set(torch.unique(d.train).tolist()) == {0.0, 1.0}
    assert d.likelihood == "bernoulli" and not d.dynamic
    assert len(d.labels["train"]) == len(d.train)
    # the split is fixed: same data on every call
    assert torch.equal(data.load("digits").test, d.test)


def test_digits_dynamic_and_grey():
    d = data.load("digits", "dynamic")
    assert d.dynamic and 0 <= d.train.min() and d.train.max() <= 1 and len(torch.unique(d.train)) > 2
    g = torch.Generator().manual_seed(0)
    b1 = d.binarize(d.train[:50], g)
    b2 = d.binarize(d.train[:50], g)
    assert set(torch.unique(b1).tolist()) <= {0.0, 1.0}
    assert not torch.equal(b1, b2)  # a fresh draw per minibatch
    assert torch.equal(d.fixed("test", 3), d.fixed("test", 3))
    grey = data.load("digits", "grey")
    assert grey.likelihood == "logistic" and grey.train.max() == 255 and torch.equal(grey.train, grey.train.round())


def test_subset_keeps_labels_aligned():
    full = data.load("digits")
    d = data.load("digits", subset=100, test_subset=20, seed=1)
    assert d.train.shape[0] == 100 and d.test.shape[0] == 20 and len(d.labels["train"]) == 100
    # every subset row is a row of the full set with the same label
    idx = [int(torch.nonzero((full.train == r).all(1) & (full.labels["train"] == y))[0]) for r, y in
           zip(d.train[:10], d.labels["train"][:10])]
    assert len(idx) == 10


@pytest.mark.parametrize("kw,msg", [
    (dict(name="cifar"), "valid names"),
    (dict(name="mnist", binarization="otsu"), "valid"),
    (dict(name="digits", subset=0), "positive"),
])
def test_bad_arguments(kw, msg):
    with pytest.raises(ValueError, match=msg):
        data.load(**kw)


def test_missing_mnist_offline_error(tmp_path, monkeypatch):
    monkeypatch.setenv("GAPKIT_DATA_DIR", str(tmp_path / "nothing"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "MNIST_MIRRORS", ("http://127.0.0.1:9/",))  # nothing listens there
    with pytest.raises(data.DataError) as e:
        data.load("mnist")
    text = str(e.value)
    for f in data.MNIST_FILES:
        assert f in text
    assert "GAPKIT_DATA_DIR" in text and str(tmp_path / "nothing") in text


def test_idx_reader_and_truncation(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = bytes([0, 0, 8, 3]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape) + arr.tobytes()
    p = tmp_path / "x.idx.gz"
    p.write_bytes(gzip.compress(raw))
    assert np.array_equal(data.read_idx(p), arr)
    p.write_bytes(gzip.compress(raw[:-5]))
    with pytest.raises(data.DataError, match="truncated"):
        data.read_idx(p)


@pytest.mark.mnist
def test_corrupt_file_fails_checksum(tmp_path, monkeypatch):
    src = Path(os.environ["GAPKIT_DATA_DIR"]) / "mnist"
    dst = tmp_path / "mnist"
    shutil.copytree(src, dst)
    f = dst / "t10k-labels-idx1-ubyte.gz"
    f.write_bytes(f.read_bytes()[:-10])
    monkeypatch.setenv("GAPKIT_DATA_DIR", str(tmp_path))
    with pytest.raises(data.DataError, match="corrupt or truncated"):
        data.load("mnist")


@pytest.mark.mnist
def test_mnist_binarizations():
    t = data.load("mnist", "threshold")
    assert t.train.shape == (50000, 784) and t.valid.shape == (10000, 784) and t.test.shape == (10000, 784)
    g = data.load("mnist", "grey")
    assert torch.equal(t.test, (g.test >= 128).float())
    assert abs(g.test.mean().item() / 255 - 0.1325) < 1e-3
    dyn = data.load("mnist", "dynamic", subset=1000)
    assert dyn.dynamic and dyn.train.max() <= 1
    assert torch.bincount(t.labels["test"]).tolist()[:3] == [980, 1135, 1032]


@pytest.mark.mnist
def test_binarized_mnist_fixed():
    d = data.load("binarized_mnist")
    assert d.train.shape == (50000, 784) and d.valid.shape == (10000, 784) and d.test.shape == (10000, 784)
    assert set(torch.unique(d.test).tolist()) == {0.0, 1.0}
    assert abs(d.test.mean().item() - 0.1325) < 1e-3
    with pytest.raises(ValueError, match="fixed"):
        data.load("binarized_mnist", "dynamic")
