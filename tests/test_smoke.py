"""Smoke runs (gapkit.smoke), the cost model (gapkit.cost), the training loop's switches and the device check.

A smoke result is never taken for a real one: its own identity and folder, ``"smoke": true``, and the
cache lookups, ``load`` and the book's summary pass it by.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gapkit import cost, experiments, smoke
from gapkit.data import load
from gapkit.estimators import evaluate
from gapkit.models import VAE
from gapkit.objectives import ELBO
from gapkit.inference.refine import refine
from gapkit.train import checkpoints, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("GAPKIT_RESULTS_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GAPKIT_SMOKE", raising=False)
    return tmp_path / "cache"


def test_a_smoke_run_is_its_own_identity_and_never_a_result(results):
    res = experiments.run("vae-basics", preset="quick", smoke=True, progress=False)
    assert res["smoke"] is True and res["config"]["smoke"] is True and res["cost"]
    folder = experiments.default_out("vae-basics", "quick", 0, res["config"])
    assert folder.name.startswith("quick-smoke-seed0-") and (folder / "results.json").exists()
    # the real run's lookups pass it by
    assert experiments.finished("vae-basics", preset="quick") is None
    with pytest.raises(FileNotFoundError):
        experiments.load("vae-basics", preset="quick")
    assert experiments.finished("vae-basics", preset="quick", smoke=True)["smoke"] is True
    real = experiments.run("vae-basics", preset="quick", progress=False)
    assert "smoke" not in real and "smoke" not in real["config"] and "cost" not in real
    assert experiments.load("vae-basics", preset="quick")["metrics"] == real["metrics"]
    assert real["metrics"] != res["metrics"]


def test_the_book_summary_skips_smoke_results(results, monkeypatch):
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    try:
        import gapkit_summary
    finally:
        sys.path.remove(str(ROOT / "book" / "_ext"))
    res = experiments.run("vae-basics", preset="quick", smoke=True, progress=False)
    monkeypatch.setattr(experiments, "load", lambda name, preset=None, **kw: res)  # as if the cache held it
    panels, _ = gapkit_summary.collect("quick")
    assert panels == []


def test_gapkit_smoke_environment_makes_run_a_smoke_run(results, monkeypatch):
    monkeypatch.setenv("GAPKIT_SMOKE", "1")
    res = experiments.run("vae-basics", preset="quick", progress=False)
    assert res["smoke"] is True
    assert experiments.run("vae-basics", preset="quick", smoke=False, progress=False).get("smoke") is None


def test_caps_keep_every_shape():
    torch.manual_seed(0)
    m = VAE(64, 2, (16,))
    x = torch.bernoulli(torch.full((300, 64), 0.3))
    with smoke.enabled() as rec:
        assert smoke.rows(300, 1000) == 5 and smoke.rows(300) == smoke.CAPS["images"] and smoke.steps(50) == 2
        out = evaluate(m, x, "iwae", K=1000)
        traj = refine(m, x, steps=30, samples=3, keep_samples=True)
    assert out.shape == (300,) and torch.isfinite(out).all()
    assert torch.equal(out[5:10], out[:5])                   # computed on 5 images, tiled
    assert traj.mu.shape == (31, 300, 2) and traj.z.shape == (31, 3, 300, 2) and traj.grad_norm.shape == (30, 300)
    assert torch.equal(traj.mu[5], traj.mu[2])                # padded with the last step done
    ev = rec["evaluate [VAE 64-16-2]"]
    assert ev["full"] == 300 * 1000 and ev["done"] == 5 * 1000
    assert rec["refinement [VAE 64-16-2]"]["flops"] > 0
    assert not smoke.active() and smoke.rows(300, 1000) == 300   # outside: nothing capped


def test_smoke_training_writes_every_checkpoint_in_few_steps(tmp_path):
    d = load("digits", subset=512, test_subset=64)
    torch.manual_seed(0)
    m = VAE(64, 2, (16,))
    with smoke.enabled() as rec:
        h = train(m, d, ELBO(), epochs=40, batch_size=32, eval_every=10, checkpoint_every=10, progress=False,
                  out_dir=tmp_path)
    assert [e for e, _ in checkpoints(tmp_path)] == [10, 20, 30, 40]
    assert h["epoch"] == [10, 20, 30, 40] and len(h["loss"]) == 6      # epochs 1, 2 and the checkpoint epochs
    r = rec["train elbo [VAE 64-16-2]"]
    assert r["full"] == 40 * 16 and r["done"] == 6 * 2 and r["flops"] > 0 and r["timed"] == 11   # the first step is counted, not timed


def test_stage_estimates_arithmetic():
    rec = {"s": {"full": 1000.0, "done": 3.0, "seconds": 0.2, "timed": 2.0, "unit": "step", "flops": 1e9,
                 "kernels": 100.0, "first_seconds": 0.5, "first_done": 1.0}}
    row, = cost.stage_estimates(rec)
    assert row["s_per_iter"] == pytest.approx(0.1) and row["cpu_s"] == pytest.approx(100.0)
    peak = cost.GPUS["T4"][0]
    assert row["T4_s"] == pytest.approx(1000 * max(1e9 / (peak * cost.EFFICIENCY), 100 * cost.LAUNCH_S))
    once = cost.stage_estimates({"s": {**rec["s"], "timed": 0.0, "seconds": 0.0}})[0]
    assert once["s_per_iter"] == pytest.approx(0.5)            # only the counted call: its time


def test_estimate_command_prints_every_stage_and_writes(results, tmp_path, monkeypatch, capsys):
    from gapkit.__main__ import main
    path = tmp_path / "estimates.json"
    monkeypatch.setattr(cost, "ESTIMATES_PATH", path)
    main(["estimate", "vae-basics", "--preset", "quick", "--write", "--no-progress"])
    out = capsys.readouterr().out
    for word in ("train elbo", "evaluate", "CPU (full)", "T4 (full)", "A100 (full)", "H100 (full)", "8.1 TFLOPS"):
        assert word in out
    doc = json.loads(path.read_text())
    assert doc["experiments"]["vae-basics"]["stages"] and doc["date"] and doc["assumptions"]["efficiency"]
    with pytest.raises(SystemExit):
        main(["estimate", "--preset", "quick"])                 # neither a name nor --all


def test_paper_costs_come_from_the_committed_estimates():
    for name, e in experiments.registry().items():
        assert "paper" not in e.cost, f"{name} types a paper cost by hand"
    doc = cost.read()
    assert doc is not None, "book/_data/estimates.json is missing: python -m gapkit estimate --all --write"
    assert set(doc["experiments"]) == {n for n in experiments.registry() if not n.startswith("_")}  # not tests' own
    assert "on a T4" in cost.expected("vae-basics", "paper")


def test_mixed_precision_training_on_cpu():
    d = load("digits", subset=256, test_subset=64)
    torch.manual_seed(0)
    m = VAE(64, 2, (16,))
    h = train(m, d, ELBO(), epochs=3, batch_size=32, amp=True, progress=False)
    assert all(torch.isfinite(torch.tensor(h["loss"]))) and h["loss"][-1] < h["loss"][0]
    with pytest.raises(ValueError, match="amp must be True or False"):
        train(m, d, ELBO(), epochs=1, amp="yes")


@pytest.mark.skipif(os.environ.get("GAPKIT_TEST_COMPILE") != "1",
                    reason="torch.compile takes minutes on a CPU; GAPKIT_TEST_COMPILE=1 runs it")
def test_compiled_training_matches_eager():
    d = load("digits", subset=256, test_subset=64)
    hs = []
    for c in (False, True):
        torch.manual_seed(0)
        hs.append(train(VAE(64, 2, (16,)), d, ELBO(), epochs=2, batch_size=32, compile=c, progress=False))
    assert hs[1]["loss"] == pytest.approx(hs[0]["loss"], rel=1e-4)


def test_bench_train_reports_the_ratio(capsys):
    from gapkit.bench.train import bench_train
    rows = bench_train(n_images=200, repeats=1)
    assert rows[-1]["loop"] == "ratio minimal/gapkit" and rows[-1]["epoch seconds (median)"] > 0
    assert "ratio minimal/gapkit" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_device_check_without_a_gpu_says_so_and_fails():
    p = subprocess.run(["bash", str(ROOT / "scripts" / "device_check.sh")], capture_output=True, text=True,
                       env={**os.environ, "PY": sys.executable}, timeout=120)
    assert p.returncode == 2
    assert "no CUDA GPU" in p.stderr and "nothing was measured" in p.stderr


def test_run_smoke_from_the_command_line(results, tmp_path, capsys):
    from gapkit.__main__ import main
    main(["run", "vae-basics", "--preset", "quick", "--smoke", "--no-progress", "--out", str(tmp_path / "r")])
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    assert res["smoke"] is True and res["config"]["smoke"] is True and "train elbo [VAE 64-64-64-4]" in res["cost"]
