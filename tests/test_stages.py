"""Staged, resumable experiments: a quick run killed inside each stage (training included) and started
again ends with the results of an uninterrupted run (Context.stage; training resumes by itself).
All ten experiments: vae-basics (training, evaluation), sleep-consistency (each method's training),
reverse-half-asleep (base training, post-hoc trainings, Table 1, the classifier, Table 1's grey row),
generalization-gaps (training and checkpoint sweeps of two data sets), refinement
(gaps, curves, table), iwae-snr (evaluations after each training, e.g. after CIWAE(learned)'s, whose
beta trace must survive the resume; the SNR sweeps), bits-back (coding, inference steps, samples,
file rates, grey), elbo-tightness (the linear-Gaussian part, training, each checkpoint's evaluation, the
optimal-inference budget study, the widget), bsvi (the linear-Gaussian check, between its trainings: each
resumes from its checkpoint with the bounds its objective recorded; each model's evaluation, each with its
own generator; the step-size sweep) and discrete-latents (inside an SBN fit, which resumes from its last
epoch's checkpoint; between two fits; inside the last fit; Figure 1; each model's NLL)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from gapkit.experiments import Context
from gapkit.io import IntegrityError, read_json

# (experiment, the files whose appearance means "inside that stage", in order)
KILLS = {
    "vae-basics": ["checkpoints/epoch_0040.pt", "stages/evaluate.started"],
    "reverse-half-asleep": ["base/checkpoints/epoch_0040.pt", "posthoc/alpha=0.25/seed*/checkpoints/epoch_*.pt",
                            "posthoc/sleep/seed1/checkpoints/epoch_*.pt", "stages/table_1.started",
                            "stages/classifier.started", "stages/table_1_grey.started"],
    "sleep-consistency": ["stages/train_sleep.started", "stages/train_reverse_sleep.started"],
    "generalization-gaps": ["binary/checkpoints/epoch_0040.pt", "stages/sweep_binary.started",
                            "grey/checkpoints/epoch_0040.pt", "stages/sweep_grey.started"],
    "refinement": ["stages/gaps.started", "stages/curves.started", "stages/table.started"],
    "iwae-snr": ["stages/evaluate_MIWAE_8_8.started", "stages/evaluate_CIWAE_learned.started",
                 "stages/snr_sweep.started", "stages/snr_per_method.started"],
    "bsvi": ["stages/linear_gaussian.started", "svi_4/checkpoints/epoch_*.pt", "bsvi_3_sir/checkpoints/epoch_*.pt",
             "stages/evaluate_VAE.started", "stages/evaluate_BSVI-3-SIR.started", "stages/svi_lr_sweep.started"],
    "discrete-latents": ["sbn/2_layers/air20/checkpoints/resume.pt", "sbn/2_layers/rws/checkpoints/epoch_0002.pt",
                         "sbn/3_layers/bihm/checkpoints/resume.pt", "stages/figure_1.started", "stages/nll_air.started",
                         "stages/nll_bihm.started"],
    "elbo-tightness": ["stages/linear_gaussian.started", "checkpoints/epoch_0040.pt",
                       "stages/checkpoint_0040.started", "stages/optimal_budgets.started", "stages/widget.started"],
    "bits-back": ["stages/code_test_set.started", "stages/inference_steps.started", "stages/samples.started",
                  "stages/file_rates.started", "stages/grey.started"],
}
VOLATILE = ("provenance", "timings_s", "epoch_time", "seconds", "wall_time", "_s_per_image", "time_s")
# findings decided from measured wall-clock times (they differ between two uninterrupted runs), and
# what counts them
TIMED = {"discrete-latents": {"findings": ("air_slower_per_epoch", "rws_faster_in_wall_clock"),
                              "paths": (("book_summary", "finding"), ("metrics", "findings", "holding"))}}


def _untimed(res, name):
    """``res`` without the findings that ``TIMED`` names for experiment ``name``."""
    t = TIMED.get(name)
    if t:
        res["findings"] = [f for f in res["findings"] if f["key"] not in t["findings"]]
        for path in t["paths"]:
            d = res
            for k in path[:-1]:
                d = d[k]
            d.pop(path[-1])
    return res


def _run(name, out, marker=None, timeout=600):
    """Run ``name`` at quick into ``out``; with ``marker`` (a glob), SIGKILL it as soon as such a file
    appears: inside the stage it marks, or (a finished training's checkpoint) inside the next one."""
    env = {**os.environ, "GAPKIT_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "gapkit", "run", name, "--preset", "quick", "--out", str(out),
                          "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    t0 = time.monotonic()
    while marker is not None and p.poll() is None and time.monotonic() - t0 < timeout:
        if any(out.glob(marker)):
            p.send_signal(signal.SIGKILL)
            p.wait()
            return "killed"
        time.sleep(0.002)
    _, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err.decode()[-2000:]
    return "finished"


def _clean(obj, out):
    """Results without what differs between two runs by construction: timings and the run folder."""
    if isinstance(obj, dict):
        return {k: _clean(v, out) for k, v in obj.items() if not any(t in k for t in VOLATILE)}
    if isinstance(obj, list):
        return [_clean(v, out) for v in obj]
    if isinstance(obj, str):
        return obj.replace(str(out), "OUT")
    return obj


@pytest.mark.parametrize("name", list(KILLS))
def test_killed_inside_every_stage_resumes_to_the_same_results(name, tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "killed"
    assert _run(name, ref) == "finished"
    for marker in KILLS[name]:
        assert _run(name, out, marker) == "killed", f"the run ended before {marker} appeared"
        if marker.endswith(".started"):  # killed inside the stage: its result was not written
            assert not (out / marker.replace(".started", ".json")).exists()
        assert not (out / "results.json").exists()
    assert _run(name, out) == "finished"
    a = _untimed(_clean(json.loads((ref / "results.json").read_text()), ref), name)
    b = _untimed(_clean(json.loads((out / "results.json").read_text()), out), name)
    a.pop("checksum", None), b.pop("checksum", None)
    assert a == b


def test_a_stage_runs_once_and_comes_back_through_json(tmp_path):
    ctx = Context(preset=None, seed=0, out=tmp_path, device=None)
    calls = []

    def work():
        calls.append(1)
        return {"t": (1, 2), "x": 0.1}
    first = ctx.stage("sweep binary", work)
    assert first == {"t": [1, 2], "x": 0.1}               # as JSON gives it back, the first time too
    assert ctx.stage("sweep binary", work) == first and len(calls) == 1
    saved = read_json(tmp_path / "stages" / "sweep_binary.json", require_checksum=True)
    assert saved["stage"] == "sweep binary" and saved["result"] == first
    (tmp_path / "stages" / "sweep_binary.json").write_text('{"stage": "sweep binary", "result": 5}')
    with pytest.raises(IntegrityError):
        read_json(tmp_path / "stages" / "sweep_binary.json", require_checksum=True)
    assert ctx.stage("sweep binary", work) == first and len(calls) == 2   # a damaged result is computed again
    with pytest.raises(ValueError, match="stage needs a name"):
        ctx.stage("//", work)


def test_a_stage_generator_depends_on_the_run_seed_and_the_name_only():
    draw = lambda seed, name: torch.rand(4, generator=Context(preset=None, seed=seed, out=None,  # noqa: E731
                                                               device=torch.device("cpu")).generator(name))
    assert torch.equal(draw(0, "evaluate VAE"), draw(0, "evaluate VAE"))
    assert not torch.equal(draw(0, "evaluate VAE"), draw(0, "evaluate SVI-4"))
    assert not torch.equal(draw(0, "evaluate VAE"), draw(1, "evaluate VAE"))
    for bad in ("", None, 3):
        with pytest.raises(ValueError, match="needs a name"):
            Context(preset=None, seed=0, out=None, device=None).generator(bad)
