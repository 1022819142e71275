"""Runs you can trust: run identity, settings, seeds, devices and output folders (issue "Runs you
can trust"). Every bad input gets a clear error before any work, and nothing is written, changed or
lost: folders are compared byte for byte before and after."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from gapkit import experiments
from gapkit.experiments import Context, RunIdentityError, experiment
from gapkit.io import IntegrityError, read_json
from gapkit.models import VAE
from gapkit.objectives import ELBO, IWAE
from gapkit.train import train

PROBE_SETTINGS = {"quick": {"epochs": 2, "lr": 0.01, "flag": False, "Ks": [1, 2], "label": "a", "limit": None,
                            "opts": {"beta": 0.5}}}


@experiment("_probe", "a tiny training run for the run-identity tests", settings=PROBE_SETTINGS)
def _probe(ctx: Context) -> dict:
    s = ctx.settings
    g = torch.Generator().manual_seed(ctx.seed)
    data = _toy_data(seed=0)
    torch.manual_seed(ctx.seed)
    model = VAE(data.dim, 2, (8,))
    train(model, data, ELBO(), epochs=s["epochs"], lr=s["lr"], batch_size=16, seed=ctx.seed, progress=False,
          eval_every=0, checkpoint_every=1, out_dir=ctx.out / "train")
    w = float(sum(p.detach().double().sum() for p in model.parameters()))
    return {"metrics": {"weights_sum": w, "draw": float(torch.rand((), generator=g))}}


class _Data:
    """A tiny binary dataset with the Dataset interface the training loop uses."""

    def __init__(self, train, test, name="toy"):
        self.train, self.test, self.name, self.binarization = train, test, name, "threshold"
        self.dynamic = False

    @property
    def dim(self):
        return self.train.shape[1]

    def binarize(self, x, generator=None):
        return x

    def to(self, device):
        return self


def _toy_data(seed=0, n=64, d=12):
    g = torch.Generator().manual_seed(seed)
    return _Data((torch.rand(n, d, generator=g) < 0.3).float(), (torch.rand(16, d, generator=g) < 0.3).float())


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes (to prove nothing was changed)."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_probe(out, **kw):
    return experiments.run("_probe", preset="quick", out=out, progress=False, **kw)


# --------------------------------------------------------------------------- run identity
def test_same_identity_reuses_the_result_without_work(tmp_path):
    a = run_probe(tmp_path / "r", seed=3)
    before = snapshot(tmp_path / "r")
    b = run_probe(tmp_path / "r", seed=3)
    assert b == a and snapshot(tmp_path / "r") == before


@pytest.mark.parametrize("change", [dict(seed=4), dict(epochs=3), dict(lr=0.02), dict(flag=True)],
                         ids=["seed", "setting-int", "setting-float", "setting-bool"])
def test_another_identity_is_refused_and_nothing_changes(tmp_path, change):
    run_probe(tmp_path / "r", seed=3)
    before = snapshot(tmp_path / "r")
    kw = {"seed": 3, **change}
    with pytest.raises(RunIdentityError, match="holds another run") as e:
        run_probe(tmp_path / "r", **kw)
    key = next(iter(change))
    assert key in str(e.value) and "--force" in str(e.value)
    assert snapshot(tmp_path / "r") == before


def test_another_preset_or_code_is_refused(tmp_path, monkeypatch):
    r = experiments.run("vae-basics", preset="quick", out=tmp_path / "v", progress=False)
    before = snapshot(tmp_path / "v")
    monkeypatch.setattr(experiments, "code_hash", lambda: "0123456789abcdef")  # a fixed bug anywhere in gapkit
    with pytest.raises(RunIdentityError, match="code"):
        experiments.run("vae-basics", preset="quick", out=tmp_path / "v", progress=False)
    assert snapshot(tmp_path / "v") == before
    # the results cache keeps each identity in its own folder: the changed code never meets the old result
    assert experiments.default_out("vae-basics", "quick", 0) != Path(tmp_path / "v")
    assert r["config"]["code"] != experiments.identity("vae-basics", "quick", 0)["code"]


def test_force_moves_the_old_run_aside_and_trains_from_scratch(tmp_path):
    a = run_probe(tmp_path / "r", seed=3)
    old = snapshot(tmp_path / "r")
    b = run_probe(tmp_path / "r", seed=4, force=True)
    assert b["config"]["seed"] == 4 and b["metrics"]["weights_sum"] != a["metrics"]["weights_sum"]
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("r.old-")]
    assert len(moved) == 1 and snapshot(moved[0]) == old  # nothing lost
    # same identity with force: trained again from scratch, to the same numbers (seeded)
    c = run_probe(tmp_path / "r", seed=4, force=True)
    assert c["metrics"] == b["metrics"] and c["provenance"]["finished"] >= b["provenance"]["finished"]


def test_leftovers_of_a_killed_run_do_not_block_it(tmp_path):
    """A process killed mid-write leaves only gapkit's own temporary files: they are not someone
    else's run, and are cleaned up."""
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / ".gapkit-write-probe.abc").write_text("")
    (tmp_path / "r" / ".identity.json.x1.tmp").write_text("{")
    r = run_probe(tmp_path / "r", seed=3)
    assert r["config"]["seed"] == 3 and not list((tmp_path / "r").glob(".*"))


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "notes.txt").write_text("mine")
    with pytest.raises(RunIdentityError, match="not a gapkit run folder"):
        run_probe(tmp_path / "r")
    assert snapshot(tmp_path / "r") == {"notes.txt": b"mine"}


def test_an_edited_identity_or_result_is_refused(tmp_path):
    run_probe(tmp_path / "r", seed=3)
    idf = tmp_path / "r" / "identity.json"
    idf.write_text(idf.read_text().replace('"seed": 3', '"seed": 4'))
    before = snapshot(tmp_path / "r")
    with pytest.raises(RunIdentityError, match="checksum"):
        run_probe(tmp_path / "r", seed=4)
    assert snapshot(tmp_path / "r") == before
    run_probe(tmp_path / "s", seed=3)
    res = tmp_path / "s" / "results.json"
    edited = json.loads(res.read_text())
    edited["metrics"]["weights_sum"] += 1.0  # a hand edit that keeps the old checksum
    res.write_text(json.dumps(edited))
    with pytest.raises(IntegrityError, match="checksum"):
        run_probe(tmp_path / "s", seed=3)
    with pytest.raises(IntegrityError, match="checksum"):
        read_json(res)


def test_load_refuses_a_result_of_another_identity(tmp_path):
    run_probe(tmp_path / "r", seed=3)
    with pytest.raises(RunIdentityError, match="another run"):
        experiments.load("_probe", preset="quick", seed=5, out=tmp_path / "r")
    assert experiments.load("_probe", preset="quick", seed=3, out=tmp_path / "r")["config"]["seed"] == 3


# --------------------------------------------------------------------------- settings
@pytest.mark.parametrize("params,msg", [
    (dict(epochz=1), "unknown setting or preset field 'epochz'.*valid settings: Ks, epochs, flag, label, limit, lr, opts"),
    (dict(epochs=-3), "epochs must be an integer >= 1"),
    (dict(epochs=0), "epochs must be an integer >= 1"),
    (dict(epochs=2.5), "epochs must be an integer"),
    (dict(epochs=True), "epochs must be an integer"),
    (dict(epochs="3"), "epochs must be an integer"),
    (dict(lr=float("nan")), "lr must be a finite number"),
    (dict(lr=-0.1), "lr must be a finite number in \\(0.0"),
    (dict(lr="fast"), "lr must be a finite number"),
    (dict(flag=1), "flag must be True or False"),
    (dict(Ks=3), "Ks must be a list"),
    (dict(Ks="1,2"), "Ks must be a list"),
    (dict(Ks=[1, -2]), "Ks\\[1\\] must be an integer >= 1"),
    (dict(label=3), "label must be a string"),
    (dict(limit=-1), "limit must be an integer >= 1"),
    (dict(limit=True), "limit must be None"),
    (dict(opts={"gamma": 1.0}), "unknown keys in setting opts"),
    (dict(opts={"beta": "x"}), "opts.beta must be a finite number"),
], ids=lambda v: str(v)[:40])
def test_bad_settings_are_refused_before_any_work(tmp_path, params, msg):
    with pytest.raises(ValueError, match=msg):
        run_probe(tmp_path / "r", **params)
    assert not (tmp_path / "r").exists()


def test_every_experiment_refuses_a_misspelt_setting(tmp_path):
    for name in experiments.registry():
        with pytest.raises(ValueError, match="unknown setting or preset field 'epochz'"):
            experiments.run(name, preset="quick", out=tmp_path / name, epochz=1)
        assert not (tmp_path / name).exists()


def test_settings_reach_the_experiment_and_its_identity(tmp_path):
    a = run_probe(tmp_path / "a", epochs=1)
    assert a["config"]["params"] == {"epochs": 1} and a["config"]["settings"]["epochs"] == 1
    assert experiments.identity("_probe", "quick", 0, epochs=1) != experiments.identity("_probe", "quick", 0)


# --------------------------------------------------------------------------- names, seeds, devices, folders
@pytest.mark.parametrize("kw,msg", [
    (dict(name="no-such"), "valid experiments"),
    (dict(preset="huge"), "valid presets: quick, book, paper"),
    (dict(seed=-1), "seed must be an integer in 0..9223372036854775807"),
    (dict(seed=10 ** 23), "seed must be an integer in 0..9223372036854775807"),
    (dict(seed=1.5), "seed must be an integer"),
    (dict(seed=True), "seed must be an integer"),
    (dict(device="tpu"), "unknown device 'tpu'; valid on this machine: cpu"),
    (dict(device="cuda:7"), "cuda"),
    (dict(device=3), "device must be a device name"),
], ids=lambda v: str(v)[:30])
def test_bad_names_seeds_and_devices_leave_no_folder(tmp_path, kw, msg):
    if "cuda" in str(kw.get("device")) and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    kw = {"name": "_probe", "preset": "quick", **kw}
    with pytest.raises(ValueError, match=msg):
        experiments.run(kw.pop("name"), out=tmp_path / "r", progress=False, **kw)
    assert not (tmp_path / "r").exists()


def test_device_from_the_environment_is_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("GAPKIT_DEVICE", "gpu")
    with pytest.raises(ValueError, match="unknown \\$GAPKIT_DEVICE 'gpu'"):
        run_probe(tmp_path / "r")
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it():
    from gapkit.bench import run as bench_run
    with pytest.raises(ValueError, match="sees no CUDA GPU"):
        bench_run("iwae", device="cuda")
    with pytest.raises(ValueError, match="sees no CUDA GPU"):
        experiments.run("_probe", preset="quick", device="cuda")


def test_bad_output_folders(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="path is empty"):
        run_probe("")
    with pytest.raises(ValueError, match="is an existing file"):
        run_probe(tmp_path / "file")
    with pytest.raises(ValueError, match="cannot create"):
        run_probe(tmp_path / "file" / "sub")
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_output_folder_fails_before_training(tmp_path):  # pragma: no cover - not root
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(ValueError, match="cannot write"):
        run_probe(ro / "r")


def test_read_only_filesystem_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match="cannot write"):
        run_probe("/proc/gapkit-run")


# --------------------------------------------------------------------------- the training loop's folders
def _train(out, data=None, objective=None, **kw):
    torch.manual_seed(0)
    m = VAE(12, 2, (8,))
    cfg = dict(epochs=2, batch_size=16, lr=0.01, eval_every=0, checkpoint_every=1, progress=False, seed=0)
    cfg.update(kw)
    train(m, data or _toy_data(), objective or ELBO(), out_dir=out, **cfg)
    return m


@pytest.mark.parametrize("change", [dict(lr=0.02), dict(seed=1), dict(objective=IWAE(3)),
                                    dict(data=_toy_data(seed=1))], ids=["lr", "seed", "objective", "data"])
def test_train_refuses_a_folder_of_another_training_run(tmp_path, change):
    _train(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match="holds another training run"):
        _train(tmp_path, **change)
    assert snapshot(tmp_path) == before


def test_train_same_identity_returns_that_model_and_longer_resumes(tmp_path):
    a = _train(tmp_path)
    b = _train(tmp_path)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(ValueError, match="epochs"):  # 3 epochs is another identity (its schedule differs)
        _train(tmp_path, epochs=3)


def test_train_refuses_snapshots_of_another_run_without_resume_state(tmp_path):
    """A run stopped between writing a snapshot and its resume.pt: its own snapshots are written again
    from the start; another run's are refused."""
    a = _train(tmp_path)
    (tmp_path / "checkpoints" / "resume.pt").unlink()
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match="snapshots .* of another run"):
        _train(tmp_path, lr=0.02)
    assert snapshot(tmp_path) == before
    b = _train(tmp_path)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    (tmp_path / "checkpoints" / "resume.pt").unlink()
    from gapkit.io import save_checkpoint
    save_checkpoint(tmp_path / "checkpoints" / "epoch_0001.pt", VAE(12, 2, (8,)), epoch=1)  # no identity
    with pytest.raises(ValueError, match="snapshots"):
        _train(tmp_path)


@pytest.mark.parametrize("kw,msg", [
    (dict(epochz=3), "unknown TrainConfig fields 'epochz'"),
    (dict(epochs=-3), "epochs must be a positive integer"),
    (dict(batch_size=0), "batch_size must be a positive integer"),
    (dict(lr=float("nan")), "lr must be a finite number"),
    (dict(seed=-2), "seed must be an integer"),
    (dict(schedule="cosine"), "unknown schedule 'cosine'"),
    (dict(eval_bound="renyi"), "unknown eval_bound 'renyi'; valid: 'elbo', 'iwae'"),
    (dict(eval_bound="ciwae"), "give its parameters"),
    (dict(grad_clip=0.0), "grad_clip must be a finite number"),
    (dict(eval_every=1.5), "eval_every must be a non-negative integer"),
], ids=lambda v: str(v)[:30])
def test_bad_training_configs_are_refused(tmp_path, kw, msg):
    with pytest.raises(ValueError, match=msg):
        _train(tmp_path / "t", **kw)
    assert not (tmp_path / "t").exists()


# --------------------------------------------------------------------------- the command line
def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "gapkit", *args], capture_output=True, text=True, timeout=120, **kw)


@pytest.mark.parametrize("args,msg", [
    (("run", "vae-basics", "--preset", "quick", "--out", ""), "path is empty"),
    (("run", "vae-basics", "--preset", "quick", "--seed", str(10 ** 23)), "seed must be an integer in 0.."),
    (("run", "vae-basics", "--preset", "quick", "--device", "tpu"), "unknown device 'tpu'"),
    (("book", "--preset", "nosuch"), "unknown preset 'nosuch'"),
    (("bench", "iwae", "--device", "tpu"), "unknown device 'tpu'"),
], ids=["out-empty", "seed-overflow", "device", "book-preset", "bench-device"])
def test_cli_errors_are_one_line_without_traceback(tmp_path, args, msg):
    r = cli(*args, cwd=tmp_path)
    assert r.returncode != 0 and msg in r.stderr and "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written in the current folder


def test_cli_out_naming_an_existing_file(tmp_path):
    (tmp_path / "f").write_text("keep")
    r = cli("run", "vae-basics", "--preset", "quick", "--out", str(tmp_path / "f"))
    assert r.returncode != 0 and "is an existing file" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "f").read_text() == "keep"


def test_book_validates_the_environment_preset_before_building(monkeypatch):
    import gapkit.__main__ as cli_main
    called = []
    monkeypatch.setattr(cli_main, "_run_forwarding_signals", lambda *a, **k: called.append(a) or 0)
    monkeypatch.setenv("GAPKIT_PRESET", "huge")
    with pytest.raises(SystemExit) as e:
        cli_main.main(["book"])
    assert "unknown preset 'huge'" in str(e.value.code) and not called


def test_stopping_the_book_command_stops_its_child(tmp_path):
    """SIGTERM to the parent reaches the child (jupyter-book in real use): no orphan keeps running."""
    pidfile = tmp_path / "child.pid"
    script = textwrap.dedent(f"""
        import sys
        from gapkit.__main__ import _run_forwarding_signals
        child = [sys.executable, "-c", "import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(120)"]
        sys.exit(_run_forwarding_signals(child))
    """)
    parent = subprocess.Popen([sys.executable, "-c", script])
    for _ in range(200):
        if pidfile.exists() and pidfile.read_text():
            break
        time.sleep(0.05)
    child_pid = int(pidfile.read_text())
    parent.send_signal(signal.SIGTERM)
    parent.wait(timeout=30)
    for _ in range(100):
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(child_pid, signal.SIGKILL)
        pytest.fail("the child outlived its parent")
