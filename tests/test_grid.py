"""Overrides, seeds and grids (issue "Overrides, seeds and grids"): overrides are typed, validated and
part of the run identity; a quick grid with the local engine and with a real local Ray gives cells
that differ by seed, aggregates equal to numpy's, no work on a second run, and a grid killed midway
resumes to the same grid.json."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from gapkit import experiments
from gapkit.grid import aggregate, parse_grid_sets, parse_seeds, run_grid

FAST = {"epochs": 3}  # vae-basics at the quick preset, a few seconds a cell


# --------------------------------------------------------------------------- overrides
def test_overrides_are_typed_and_change_the_identity():
    base = experiments.identity("vae-basics", "quick", 0)
    ident = experiments.identity("vae-basics", "quick", 0, {"epochs": 3, "hidden": [32], "lr": 1})
    assert ident["preset"]["epochs"] == 3 and ident["preset"]["hidden"] == [32] and ident["preset"]["lr"] == 1.0
    assert ident["preset_overrides"] == {"epochs": 3, "hidden": [32], "lr": 1.0}
    assert experiments.run_id(ident) != experiments.run_id(base)
    # a setting of the experiment wins over a preset field of the same name
    rha = experiments.identity("reverse-half-asleep", "quick", 0, {"epochs": 2})
    assert rha["params"] == {"epochs": 2} and rha["preset"]["epochs"] == base["preset"]["epochs"]
    # explicit prefixes and dotted paths into dict settings (the other entries are kept)
    g = experiments.identity("generalization-gaps", "quick", 0, {"changes.epochs": 7, "preset.eval_K": 5})
    assert g["settings"]["changes"]["epochs"] == 7 and g["settings"]["changes"]["latent"] == 4
    assert g["preset"]["eval_K"] == 5


@pytest.mark.parametrize("overrides,msg", [
    ({"epochz": 1}, "unknown setting or preset field 'epochz'.*valid preset fields: dataset"),
    ({"hidden": "64"}, "hidden must be a sequence of positive integers"),
    ({"lr": 0}, "lr must be a finite number in \\(0.0"),
    ({"dataset": "cifar"}, "unknown dataset 'cifar'"),
    ({"preset.name": "book"}, "unknown preset field 'name'"),
    ({"train_subset": True}, "train_subset must be a positive integer or None"),
    ({"nope.x": 1}, "unknown setting or preset field 'nope.x'"),
])
def test_bad_overrides(overrides, msg):
    with pytest.raises(ValueError, match=msg):
        experiments.identity("vae-basics", "quick", 0, overrides)


def test_a_preset_field_the_experiment_sets_itself_names_the_setting():
    with pytest.raises(ValueError, match="--set train.epochs=VALUE"):
        experiments.identity("iwae-snr", "book", 0, {"epochs": 3})
    with pytest.raises(ValueError, match="--set changes.latent=VALUE"):
        experiments.identity("generalization-gaps", "book", 0, {"latent": 3})


def test_parse_value_and_sets():
    pv = experiments.parse_value
    assert pv("3") == 3 and pv("0.5") == 0.5 and pv("true") is True and pv("null") is None
    assert pv("500,500") == [500, 500] and pv("[1, 2]") == [1, 2] and pv("relu") == "relu"
    assert experiments.parse_sets(["a=1", "b=x,y"]) == {"a": 1, "b": ["x", "y"]}
    with pytest.raises(ValueError, match="key=value"):
        experiments.parse_sets(["novalue"])
    assert parse_grid_sets(["alpha=0,0.5", "Ks=[1,2],[3]"]) == {"alpha": [0, 0.5], "Ks": [[1, 2], [3]]}
    with pytest.raises(ValueError, match="twice"):
        parse_grid_sets(["a=1", "a=2"])
    assert parse_seeds("0-2") == [0, 1, 2] and parse_seeds("0,3,5") == [0, 3, 5] and parse_seeds("4") == [4]
    for bad in ("2-0", "x", "0,0", "-1", ""):
        with pytest.raises(ValueError):
            parse_seeds(bad)


def test_run_with_overrides_records_them(tmp_path):
    r = experiments.run("vae-basics", preset="quick", out=tmp_path / "r", progress=False, overrides=FAST)
    assert r["config"]["preset"]["epochs"] == 3 and r["config"]["preset_overrides"] == FAST
    assert r["curves"]["epoch"][-1] == 3
    with pytest.raises(experiments.RunIdentityError, match="preset.epochs: 3 there, 4 in this run"):
        experiments.run("vae-basics", preset="quick", out=tmp_path / "r", overrides={"epochs": 4})


def test_show_lists_settings_with_defaults_and_sources():
    rows = {r["name"]: r for r in experiments.describe_settings("bsvi", "quick", {"k": 2, "epochs": 3})}
    assert rows["k"]["value"] == 2 and rows["k"]["default"] == 3 and rows["k"]["source"] == "--set"
    assert rows["epochs"]["source"] == "--set" and rows["preset.epochs"]["source"] == "preset quick"
    assert rows["n_eval"]["source"] == "experiment bsvi at preset quick"
    r = subprocess.run([sys.executable, "-m", "gapkit", "show", "generalization-gaps", "--preset", "quick",
                        "--set", "K=3"], capture_output=True, text=True)
    assert r.returncode == 0 and "changes it through setting changes" in r.stdout and "--set" in r.stdout


# --------------------------------------------------------------------------- grids
def _results(g):
    """The computed results of a grid's settings (timings aside, which differ from run to run)."""
    return [(s["overrides"], s["seeds"], {k: v for k, v in s["scalars"].items() if k.startswith("metrics/")},
             {k: v for k, v in s["curves"].items() if "time" not in k}) for s in g["settings"]]


def _grid(out, engine="local", seeds="0-1", **kw):
    return run_grid("vae-basics", "quick", parse_seeds(seeds), {"epochs": [2, 3]}, out=out, engine=engine,
                    progress=False, **kw)


@pytest.fixture(scope="module")
def local_grid(tmp_path_factory):
    out = tmp_path_factory.mktemp("grid") / "g"
    return out, _grid(out)


def test_local_grid_cells_and_aggregates(local_grid):
    out, g = local_grid
    assert g["counts"] == {"done": 4, "failed": 0} and len(g["settings"]) == 2
    by = {(c["overrides"]["epochs"], c["seed"]): c for c in g["cells"]}
    k = "metrics/test/elbo/bpd"
    assert by[(3, 0)]["scalars"][k] != by[(3, 1)]["scalars"][k]  # seeds differ
    for s in g["settings"]:
        vals = [by[(s["overrides"]["epochs"], sd)]["scalars"][k] for sd in (0, 1)]
        assert s["scalars"][k]["mean"] == pytest.approx(np.mean(vals), abs=1e-12)
        assert s["scalars"][k]["std"] == pytest.approx(np.std(vals), abs=1e-12) and s["scalars"][k]["n"] == 2
        curves = [json.loads((out / c["dir"] / "results.json").read_text())["curves"]["test_bpd"]
                  for c in g["cells"] if c["overrides"] == s["overrides"]]
        assert s["curves"]["curves/test_bpd"]["mean"] == pytest.approx(np.mean(curves, 0).tolist())
    # each cell is an ordinary run with its own folder and results.json
    for c in g["cells"]:
        r = json.loads((out / c["dir"] / "results.json").read_text())
        assert r["config"]["seed"] == c["seed"] and r["config"]["preset"]["epochs"] == c["overrides"]["epochs"]


def test_a_second_run_does_no_work(local_grid):
    out, g = local_grid
    before = {p: p.stat().st_mtime_ns for p in out.rglob("results.json")}
    t0 = time.perf_counter()
    again = _grid(out)
    assert all(c["reused"] for c in again["cells"]) and time.perf_counter() - t0 < 20
    assert {p: p.stat().st_mtime_ns for p in out.rglob("results.json")} == before
    assert _results(again) == _results(g)


def test_grid_folder_of_another_grid_is_refused(local_grid):
    out, _ = local_grid
    with pytest.raises(experiments.RunIdentityError, match="another grid"):
        run_grid("vae-basics", "quick", [0], {"epochs": [5]}, out=out, progress=False)


def test_bad_grid_input_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="unknown engine 'slurm'"):
        run_grid("vae-basics", "quick", [0], {}, out=tmp_path / "g", engine="slurm")
    with pytest.raises(ValueError, match="hidden must be a sequence"):
        run_grid("vae-basics", "quick", [0], {"hidden": ["x"]}, out=tmp_path / "g")
    with pytest.raises(ValueError, match="--address is for --engine ray"):
        run_grid("vae-basics", "quick", [0], {}, out=tmp_path / "g", address="auto")
    assert not (tmp_path / "g").exists()


def test_a_failed_cell_is_reported_and_the_others_go_on(tmp_path):
    # lr=1e4 makes training diverge (non-finite loss) in some cell; the rest finish
    g = run_grid("vae-basics", "quick", [0], {"lr": [0.003, 1e6]}, out=tmp_path / "g", progress=False)
    st = {c["overrides"]["lr"]: c for c in g["cells"]}
    assert st[0.003]["status"] == "done"
    assert st[1e6]["status"] == "failed" and "non-finite" in st[1e6]["error"]


def test_a_grid_killed_midway_resumes_to_the_same_grid(tmp_path, local_grid):
    out = tmp_path / "g"
    cmd = [sys.executable, "-m", "gapkit", "grid", "vae-basics", "--preset", "quick", "--seeds", "0-1",
           "--set", "epochs=2,3", "--out", str(out), "--workers", "2", "--no-progress"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.rglob("results.json")):
        time.sleep(0.1)
    os.killpg(p.pid, signal.SIGKILL)  # the grid and its workers, as a stopped job
    p.wait()
    assert len(list(out.rglob("results.json"))) < 4  # killed before the end
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    g = json.loads((out / "grid.json").read_text())
    assert g["counts"]["done"] == 4, [c.get("error") for c in g["cells"]]
    assert _results(g) == _results(local_grid[1])  # the same numbers as an uninterrupted grid


def test_aggregate_skips_what_not_every_seed_has():
    a = aggregate([{"x": 1.0, "c": [1, 2], "only": 3.0}, {"x": 3.0, "c": [3, 4]}])
    assert a["scalars"] == {"x": {"mean": 2.0, "std": 1.0, "n": 2}}
    assert a["curves"]["c"] == {"mean": [2.0, 3.0], "std": [1.0, 1.0], "n": 2}


# --------------------------------------------------------------------------- Ray
def _ray_or_skip():
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI installs the cluster extra (ray); it is missing")
        pytest.skip("ray is not installed (pip install 'gapkit[cluster]')")


@pytest.mark.ray
def test_ray_grid_matches_the_local_grid(tmp_path, local_grid):
    _ray_or_skip()
    g = _grid(tmp_path / "g", engine="ray")
    assert g["engine"] == "ray" and g["counts"] == {"done": 4, "failed": 0}
    assert _results(g) == _results(local_grid[1])
    again = _grid(tmp_path / "g", engine="ray")  # nothing to run: Ray is not even started
    assert all(c["reused"] for c in again["cells"])


def test_ray_missing_is_a_clear_message(tmp_path, monkeypatch):
    import builtins
    real = builtins.__import__

    def no_ray(name, *a, **k):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ValueError, match='pip install "gapkit\\[cluster\\]"'):
        run_grid("vae-basics", "quick", [0], {}, out=tmp_path / "g", engine="ray")


def test_chapter_aggregates_over_seeds_equal_numpy():
    from gapkit.experiments.iwae_snr import table_over_seeds
    names = ["IWAE-64", "PIWAE(8,8)", "MIWAE(8,8)", "CIWAE(0.5)", "VAE"]
    rng = np.random.default_rng(0)
    runs = [{"config": {"seed": s}, "table": {"rows": [{"method": n, "iwae": float(rng.normal()),
                                                        "log_p_hat": float(rng.normal()), "neg_kl": float(rng.normal())}
                                                       for n in names]}} for s in range(3)]
    o = table_over_seeds(runs)
    v = [r["table"]["rows"][-1]["log_p_hat"] for r in runs]
    vae = o["table"]["rows"][-1]
    assert vae["method"] == "VAE" and vae["log_p_hat"]["mean"] == pytest.approx(np.mean(v))
    assert vae["log_p_hat"]["std"] == pytest.approx(np.std(v)) and o["n"] == 3
    assert all(0 <= k <= 3 for k in o["holds_in_seeds"].values())
