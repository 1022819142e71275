"""What a full run costs, estimated from a smoke run's measurements (``python -m gapkit estimate``).

A smoke run (:mod:`gapkit.smoke`) records, per stage (training of each objective, evaluation,
optimal inference, refinement, SNR, ...): the iterations the uncapped run would do (``full``), the
iterations done and their seconds here, and on one call the floating-point operations and the
operators dispatched per iteration (``FlopCounterMode``, a dispatch counter). For each stage:

* CPU time of the full run = ``full x (seconds per iteration here)``, in CPU seconds of the
  process (one thread: ``OMP_NUM_THREADS=1``), which other processes on the machine do not inflate;
* GPU time of the full run = ``full x max(F / (P x EFFICIENCY), k x LAUNCH_S)``, with F the FLOPs
  and k the operators per iteration, P the GPU's peak FP32 rate (PyTorch computes float32 matmuls
  in FP32 unless TF32 is switched on) and ``LAUNCH_S`` the time one eager PyTorch operator takes at
  least (its launch and Python dispatch): small MLPs are bound by it, not by arithmetic. The FLOP
counter counts matrix products only; elementwise work (e.g. the BSVI buffer weights' EM) is covered
by the operator floor. The bits-back coder (numpy) runs on the CPU on any machine: its GPU time is its
CPU time. Loops that stop early (a tolerance) are counted at their maximum; a chapter's seed grid
runs the experiment once per seed.

Peak FP32 rates (NVIDIA datasheets): T4 8.1 TFLOPS (Colab's free GPU); A100 SXM 19.5 TFLOPS
(156 TF32); H100 SXM 67 TFLOPS (495 TF32 dense). ``EFFICIENCY`` = 0.3: the share of the peak that
cuBLAS reaches on the 100-500-wide matrix products of these models (large GEMMs reach 0.7-0.9;
these are far smaller). ``LAUNCH_S`` = 10 us: PyTorch's per-operator overhead in eager mode
(about 5-10 us of CPU dispatch plus the launch). Both are stated assumptions, checked by
``scripts/device_check.sh`` on a GPU; stage timings on this CPU are what ``bench`` measures.
"""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path

__all__ = ["GPUS", "EFFICIENCY", "LAUNCH_S", "stage_estimates", "estimate", "estimate_all", "format_table", "expected",
           "human", "write", "read", "ESTIMATES_PATH", "device_check"]

# Stages that run on the CPU whatever the device (the ANS coder is numpy): their GPU time is their CPU time.
CPU_STAGES = ("bits-back encoding", "bits-back decoding")
GPUS = {  # name -> peak FP32 FLOP/s, source
    "T4": (8.1e12, "NVIDIA T4 datasheet: 8.1 TFLOPS FP32"),
    "A100": (19.5e12, "NVIDIA A100 datasheet: 19.5 TFLOPS FP32 (156 TF32)"),
    "H100": (67e12, "NVIDIA H100 SXM datasheet: 67 TFLOPS FP32 (495 TF32 dense)"),
}
EFFICIENCY = 0.3
LAUNCH_S = 10e-6
ESTIMATES_PATH = Path(__file__).resolve().parents[1] / "book" / "_data" / "estimates.json"


def _per_iter_seconds(r: dict) -> float:
    """Seconds per iteration: the timed calls, else the first (counted, so somewhat slower) call."""
    if r.get("timed"):
        return r["seconds"] / r["timed"]
    return (r.get("first_seconds") or 0.0) / max(r.get("first_done") or 1.0, 1.0)


def stage_estimates(cost: dict) -> list[dict]:
    """Rows per stage of a smoke run's ``cost`` records: full iterations, s/iter, FLOPs/iter, CPU and GPU seconds."""
    rows = []
    for name, r in cost.items():
        s = _per_iter_seconds(r)
        flops, kernels = r.get("flops") or 0.0, r.get("kernels") or 0.0
        row = {"stage": name, "unit": r.get("unit", "iteration"), "full_iterations": r["full"],
               "done_iterations": r["done"], "s_per_iter": s, "flops_per_iter": flops,
               "kernels_per_iter": kernels, "cpu_s": r["full"] * s}
        for gpu, (peak, _) in GPUS.items():
            row[f"{gpu}_s"] = row["cpu_s"] if name.startswith(CPU_STAGES) else \
                r["full"] * max(flops / (peak * EFFICIENCY), kernels * LAUNCH_S)
        rows.append(row)
    return rows


def estimate(name: str, preset: str = "paper", seed: int = 0, device="cpu", progress: bool = False,
             out=None) -> dict:
    """The estimate of one experiment's full run at ``preset``: its smoke run (run now unless cached;
    ``out``: its folder, e.g. a fresh one to measure on another device) -> {experiment, preset,
    stages, totals, smoke_wall_s, machine}."""
    from .experiments import run
    res = run(name, preset=preset, seed=seed, smoke=True, device=device, progress=progress, out=out)
    stages = stage_estimates(res.get("cost", {}))
    totals = {k: sum(r[k] for r in stages) for k in ["cpu_s"] + [f"{g}_s" for g in GPUS]}
    return {"experiment": name, "preset": preset, "stages": stages, "totals": totals,
            "smoke_wall_s": res["provenance"]["wall_time_s"], "machine": res["provenance"]["device"]}


def estimate_all(preset: str = "paper", names=None, **kw) -> dict:
    from .experiments import registry
    names = list(names or registry())
    return {n: estimate(n, preset, **kw) for n in names}


def human(s: float) -> str:
    """Seconds as s, min, h or days."""
    if s < 90:
        return f"{s:.0f} s" if s >= 1 else f"{s:.2g} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def format_table(est: dict) -> str:
    """The per-stage table of :func:`estimate` as text."""
    cols = ["stage", "unit", "full iters", "s/iter here", "GFLOP/iter", "CPU (full)"] + [f"{g} (full)" for g in GPUS]
    lines = [f"{est['experiment']} at preset {est['preset']} (smoke run: {est['smoke_wall_s']:.0f} s on {est['machine']})"]
    rows = [[r["stage"], r["unit"], f"{r['full_iterations']:.3g}", f"{r['s_per_iter']:.3g}",
             f"{r['flops_per_iter'] / 1e9:.3g}", human(r["cpu_s"])] + [human(r[f"{g}_s"]) for g in GPUS]
            for r in est["stages"]]
    rows.append(["total", "", "", "", "", human(est["totals"]["cpu_s"])] + [human(est["totals"][f"{g}_s"]) for g in GPUS])
    w = [max(len(str(x)) for x in col) for col in zip(cols, *rows)]
    for r in [cols] + rows:
        lines.append("  ".join(str(x).rjust(n) if i > 1 else str(x).ljust(n) for i, (x, n) in enumerate(zip(r, w))))
    return "\n".join(lines)


def _cpu_name() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write(ests: dict, path=None) -> Path:
    """``book/_data/estimates.json``: the estimates with the machine, date and the assumptions."""
    from .io import write_json
    path = Path(path or ESTIMATES_PATH)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"machine": _cpu_name(),
           "device": next(iter(ests.values()))["machine"] if ests else "",
           "date": time.strftime("%Y-%m-%d"),
           "timing": "stages timed in the process's CPU time (one thread), so other jobs on the machine "
                     "do not inflate them",
           "assumptions": {"efficiency": EFFICIENCY, "launch_s": LAUNCH_S,
                           "peak_fp32": {g: {"flops": p, "source": s} for g, (p, s) in GPUS.items()}},
           "experiments": ests}
    write_json(path, doc, checksum=False)
    return path


def read(path=None) -> dict | None:
    """The committed estimates, or None when there are none."""
    path = Path(path or ESTIMATES_PATH)
    if not path.exists():
        return None
    return json.loads(path.read_text())


def expected(name: str, preset: str) -> str:
    """How long experiment ``name`` takes at ``preset``: at ``paper`` the committed estimate
    (``book/_data/estimates.json``: CPU, T4, A100, H100), else the experiment's own ``cost``."""
    if preset == "paper":
        est = (read() or {}).get("experiments", {}).get(name)
        if est is None:
            return "not estimated yet (python -m gapkit estimate --all --write)"
        t = est["totals"]
        return (f"{human(t['T4_s'])} on a T4, {human(t['A100_s'])} on an A100, {human(t['H100_s'])} on an H100, "
                f"{human(t['cpu_s'])} on a CPU (estimated)")
    from .experiments import get
    return get(name).cost.get(preset, "unknown")


def rough_seconds(text: str) -> float:
    """The longest duration in a cost hint such as ``"4-5 min CPU"`` (300.0), ``"30 s"`` or ``"2 h"``;
    0.0 when it names none. :func:`gapkit.__main__` starts the longest experiments first with it."""
    import re
    units = {"s": 1, "min": 60, "h": 3600}
    found = [float(b or a) * units[u] for a, b, u in
             re.findall(r"(\d+(?:\.\d+)?)(?:\s*-\s*(\d+(?:\.\d+)?))?\s*(min|s|h)\b", text or "")]
    return max(found, default=0.0)


def device_check(names=None, preset: str = "paper", device="cuda") -> str:
    """On a GPU: each experiment's smoke run measured there (a fresh folder), its full-run time from
    the GPU's own seconds per iteration, next to the committed estimates (``scripts/device_check.sh``)."""
    import tempfile
    from .experiments import registry
    committed = (read() or {}).get("experiments", {})
    lines = [f"{'experiment':<22} {'smoke s':>8} {'measured full run':>18}   estimated: T4 / A100 / H100"]
    with tempfile.TemporaryDirectory() as tmp:
        for n in names or registry():
            est = estimate(n, preset, device=device, out=Path(tmp) / n)
            c = committed.get(n, {}).get("totals")
            guess = " / ".join(human(c[f"{g}_s"]) for g in GPUS) if c else "(none committed)"
            lines.append(f"{n:<22} {est['smoke_wall_s']:>8.1f} {human(est['totals']['cpu_s']):>18}   {guess}")
            lines.append(format_table(est))
    return "\n".join(lines)
