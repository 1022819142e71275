"""Benchmarks: ``python -m gapkit bench NAME`` prints a table with ratios measured side by side.

Speed and memory are measured here, in one run on the machine at hand, never asserted by timed
tests. Helpers: :func:`matmul_rate` (the machine's own matrix-multiply FLOP rate, the physical
limit for MLP work), :func:`timed`, :func:`peak_memory`, :func:`table`. Every module in this
package is imported by :func:`registry`, so a new benchmark is a new file using :func:`benchmark`.
"""
from __future__ import annotations

import importlib
import pkgutil
import resource
import sys
import time

import torch

__all__ = ["benchmark", "registry", "matmul_rate", "timed", "peak_memory", "table", "mlp_flops",
           "batched_vs_loop"]

_REGISTRY: dict = {}


def benchmark(name: str, description: str):
    """Register ``func(args) -> rows`` as benchmark ``name``; it prints its own table."""
    def wrap(func):
        _REGISTRY[name] = (func, description)
        return func
    return wrap


def registry() -> dict:
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
    return dict(sorted(_REGISTRY.items()))


def run(name: str, **kw):
    reg = registry()
    if name not in reg:
        raise ValueError(f"unknown benchmark {name!r}; valid benchmarks: {', '.join(reg) or '(none yet)'}")
    if "device" in kw:  # an unknown name or a GPU this machine lacks: a clear message before any work
        from ..device import default_device
        kw["device"] = default_device(kw["device"], announce=False)
    return reg[name][0](**kw)


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeat: int = 3, device="cpu") -> float:
    """Best wall time of ``repeat`` calls (after one warm-up call), in seconds."""
    fn()
    _sync(device)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_rate(n: int = 1024, device="cpu", dtype=torch.float32, repeat: int = 5) -> float:
    """The machine's measured matrix-multiply rate in FLOP/s (2 n^3 per n x n product)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    t_end = time.perf_counter() + 0.5  # warm up the thread pool and clocks: a cold process reads low
    while time.perf_counter() < t_end:
        a @ b
    _sync(device)
    t = timed(lambda: a @ b, repeat, device)
    return 2 * n ** 3 / t


def batched_vs_loop(fn, x, subset: int, device="cpu") -> tuple[float, float]:
    """Seconds of ``fn(x)`` on all rows at once, and of a per-row loop ``fn(x[i:i+1])`` over the first
    ``subset`` rows scaled to all of them (the loop is too slow to run in full): ``(batched, loop)``."""
    _sync(device)
    t0 = time.perf_counter()
    fn(x)
    _sync(device)
    t_batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(subset):                                   # the per-image loop being measured
        fn(x[i:i + 1])
    _sync(device)
    return t_batch, (time.perf_counter() - t0) * len(x) / subset


def mlp_flops(sizes, rows: int, backward: bool = False) -> float:
    """Multiply-add FLOPs of an MLP with layer ``sizes`` on ``rows`` inputs (x3 with backward)."""
    f = sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:])) * rows
    return 3 * f if backward else f


def peak_memory(device="cpu") -> int:
    """Peak memory in bytes: CUDA's peak allocation, or the process's peak resident set on the CPU."""
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated()
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def table(rows: list[dict], title: str = "") -> str:
    """Format rows (dicts with the same keys) as an aligned text table and print it."""
    if not rows:
        return ""
    cols = list(rows[0])
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    w = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    lines = [" | ".join(c.ljust(w[i]) for i, c in enumerate(cols)), "-+-".join("-" * x for x in w)]
    lines += [" | ".join(v.ljust(w[i]) for i, v in enumerate(r)) for r in cells]
    text = (title + "\n" if title else "") + "\n".join(lines)
    print(text)
    return text
