import json
import subprocess
import sys

import pytest

from gapkit import experiments
from gapkit.presets import get_preset


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "gapkit", *args], capture_output=True, text=True, **kw)


def test_list_names_experiments_and_presets():
    r = cli("list")
    assert r.returncode == 0
    assert "vae-basics" in r.stdout and "quick" in r.stdout and "paper" in r.stdout


def test_run_vae_basics_quick_writes_results(tmp_path):
    r = cli("run", "vae-basics", "--preset", "quick", "--out", str(tmp_path), "--no-progress")
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["config"]["preset"]["name"] == "quick" and res["config"]["seed"] == 0
    for k in ("gapkit_version", "git_commit", "device", "torch_version", "wall_time_s"):
        assert k in res["provenance"]
    m = res["metrics"]
    assert m["test"]["elbo"]["nats"] < 0 and m["test"]["elbo"]["bpd"] > 0
    assert m["test"]["iwae"]["K"] == 100 and m["test"]["iwae"]["nats"] >= m["test"]["elbo"]["nats"] - 0.5
    assert len(res["curves"]["test_bpd"]) == len(res["curves"]["epoch"])
    # a second run reuses the result
    t = res["provenance"]["finished"]
    again = experiments.run("vae-basics", preset="quick", out=tmp_path)
    assert again["provenance"]["finished"] == t


@pytest.mark.parametrize("args,msg", [
    (("run", "no-such-experiment"), "valid experiments"),
    (("run", "vae-basics", "--preset", "huge"), "valid presets"),
    (("bench", "no-such-bench"), "valid benchmarks"),
])
def test_unknown_names_list_the_valid_ones(args, msg):
    r = cli(*args)
    assert r.returncode != 0 and msg in r.stderr


def test_preset_from_environment(monkeypatch):
    monkeypatch.setenv("GAPKIT_PRESET", "paper")
    assert get_preset().name == "paper"
    monkeypatch.setenv("GAPKIT_PRESET", "nope")
    with pytest.raises(ValueError, match="quick, book, paper"):
        get_preset()
    with pytest.raises(ValueError, match="unknown preset fields"):
        get_preset("quick").replace(epochz=3)


def test_cache_key_ignores_docstrings_but_not_code(tmp_path, monkeypatch):
    import importlib
    import sys
    from gapkit.experiments import _source_hash
    mod = tmp_path / "exp_probe.py"
    monkeypatch.syspath_prepend(str(tmp_path))

    def h(src):
        mod.write_text(src)
        sys.modules.pop("exp_probe", None)
        importlib.invalidate_caches()
        return _source_hash(importlib.import_module("exp_probe").f)
    base = h('"""doc"""\ndef f(ctx):\n    """one"""\n    return {"a": 1}\n')
    assert h('"""other doc"""\ndef f(ctx):\n    """two"""\n    # comment\n    return {"a": 1}\n') == base
    assert h('"""doc"""\ndef f(ctx):\n    """one"""\n    return {"a": 2}\n') != base


def test_notebook_setup(capsys):
    from gapkit.book.notebook import setup
    preset, device = setup("vae-basics")
    out = capsys.readouterr().out
    assert preset.name == "quick" and "vae-basics: about" in out and device.type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="valid experiments"):
        setup("no-such-experiment")


def test_book_forgets_executed_chapters_when_the_code_changed(tmp_path):
    from gapkit.__main__ import _fresh_execution_cache
    from gapkit.experiments import code_hash
    cache = tmp_path / "_build" / ".jupyter_cache"
    assert _fresh_execution_cache(tmp_path) is False                 # nothing executed yet
    cache.mkdir(parents=True)
    (cache / "global.db").write_text("x")
    assert _fresh_execution_cache(tmp_path) is False and cache.exists()   # same code: kept
    (tmp_path / "_build" / ".gapkit-code-hash").write_text("0123456789abcdef\n")   # other code ran them
    assert _fresh_execution_cache(tmp_path) is True and not cache.exists()
    assert (tmp_path / "_build" / ".gapkit-code-hash").read_text().strip() == code_hash()


def test_book_runs_the_experiments_first_side_by_side(tmp_path, capsys, monkeypatch):
    """``gapkit book`` runs the chapters' experiments in parallel processes into the results cache the
    chapters read; a failing one is named (and stops the build before any page)."""
    import os
    from gapkit import experiments
    from gapkit.__main__ import _run_experiments_first
    env = {**os.environ, "GAPKIT_PRESET": "quick", "GAPKIT_RESULTS_DIR": str(tmp_path)}
    assert _run_experiments_first(env, 2, names=["sleep-consistency", "no-such-experiment"]) == ["no-such-experiment"]
    out = capsys.readouterr().out
    assert "2 at a time" in out and "sleep-consistency:" in out and "no-such-experiment: FAILED" in out
    monkeypatch.setenv("GAPKIT_RESULTS_DIR", str(tmp_path))
    assert experiments.finished("sleep-consistency", preset="quick")   # what the chapter then reads


def test_cost_hints_order_the_experiments_first_runs():
    from gapkit.cost import rough_seconds
    assert rough_seconds("4-5 min CPU") == 300 and rough_seconds("30 s CPU (+ vae-basics)") == 30
    assert rough_seconds("2 h") == 7200 and rough_seconds("unknown") == 0.0
