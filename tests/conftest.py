"""Test settings: the quick preset, a private results cache, and MNIST tests that skip only when
no data directory is configured (CI sets GAPKIT_DATA_DIR and GAPKIT_REQUIRE_DATA=1, so they run)."""
import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("GAPKIT_PRESET", "quick")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Several workers (and the notebook kernels they start, which inherit this) share the cores: one
    # thread each. Two torch processes with two OpenMP threads each on two cores run many times slower.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("GAPKIT_RESULTS_DIR", tempfile.mkdtemp(prefix="gapkit-results-"))


def mnist_available() -> bool:
    d = os.environ.get("GAPKIT_DATA_DIR")
    return bool(d) and (Path(d) / "mnist" / "train-images-idx3-ubyte.gz").exists()


def pytest_collection_modifyitems(config, items):
    if mnist_available():
        return
    if os.environ.get("GAPKIT_REQUIRE_DATA"):
        raise pytest.UsageError("GAPKIT_REQUIRE_DATA is set but GAPKIT_DATA_DIR holds no mnist/ files: "
                                f"GAPKIT_DATA_DIR={os.environ.get('GAPKIT_DATA_DIR')!r}")
    skip = pytest.mark.skip(reason="MNIST files not found: set GAPKIT_DATA_DIR (e.g. ../shared/data)")
    for item in items:
        if "mnist" in item.keywords:
            item.add_marker(skip)
