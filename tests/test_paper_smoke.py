"""Every experiment end to end at the ``paper`` preset, every loop capped (``gapkit.smoke``): the
paper's architecture, full training set, K, M, eval_K, methods, checkpoints and grids run, in CI.

``make paper-smoke`` runs the same from the command line, two at a time."""
import time

import pytest

from gapkit import experiments

pytestmark = pytest.mark.mnist   # the paper preset's MNIST: CI has it (GAPKIT_REQUIRE_DATA=1)


@pytest.mark.parametrize("name", sorted(n for n in experiments.registry() if not n.startswith("_")))  # not tests' own
def test_paper_preset_smoke_run(name, tmp_path):
    t0 = time.perf_counter()
    res = experiments.run(name, preset="paper", smoke=True, out=tmp_path / name, progress=False)
    assert res["smoke"] is True and res["config"]["smoke"] is True
    assert res["config"]["preset"]["name"] == "paper"
    assert res["cost"], "a smoke run records the cost of its stages"
    for stage, r in res["cost"].items():
        assert 0 < r["done"] <= r["full"], (stage, r)
        assert r["flops"] is not None and (r["timed"] > 0 or r["first_seconds"] is not None), (stage, r)
    print(f"{name}: paper smoke run in {time.perf_counter() - t0:.1f} s")
