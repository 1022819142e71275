"""Smoke runs: the ``paper`` configuration end to end, every loop capped at a few iterations.

``python -m gapkit run NAME --preset paper --smoke`` (``experiments.run(..., smoke=True)``, or
``GAPKIT_SMOKE=1`` for the notebooks) runs an experiment with the full architecture, the full
training set, the paper's K, M, eval_K, methods, checkpoints and grids, while the loops that make
a paper run take days are cut short at the few places every experiment goes through:

* training (:func:`gapkit.train.train`): at most ``CAPS["epochs"]`` epochs plus every checkpoint
  epoch and the last one (so that every snapshot the paper writes exists), each of at most
  ``CAPS["steps"]`` minibatches; its evaluations on at most ``CAPS["images"]`` images;
* per-image work (bound evaluation, optimal inference, refinement, SNR batches): the first
  ``rows(N, K)`` images, ``min(N, CAPS["images"], CAPS["samples"] // K)`` (at least one), computed
  and then tiled to all N rows, so every shape downstream is the paper's;
* inner loops (refinement and coder steps, optimizer iterations, SNR repetitions): ``steps(n)``,
  at most ``CAPS["steps"]`` (trajectories are padded to their full length with their last step);
* the test split (:func:`cap_test`): its first ``CAPS["test_images"]`` images (the bits-back coder
  codes whole messages, which cannot be tiled).

With the values below (2 epochs and steps, 100 images, 5000 image-samples, 50 test images: fewer
than a few hundred, so that every experiment runs in about a minute of one CPU core), IWAE-5000 is
evaluated on one image and every test-set number on 50 images.

A smoke run is its own run identity (``"smoke": true`` in ``identity.json`` and ``results.json``,
folders ``NAME/PRESET-smoke-seedS-ID``); its numbers mean nothing and nothing reads them as results.

**Cost records.** Each capped place is a *stage*: :func:`stage` times it, counts its floating-point
work on its first call (``torch.utils.flop_counter.FlopCounterMode``) and its kernel launches, and
keeps the iterations the uncapped (paper) run would do next to those done here.
:mod:`gapkit.cost` turns the records into full-run estimates (``python -m gapkit estimate``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import os
import time

import torch

__all__ = ["CAPS", "active", "requested", "enabled", "clock", "rows", "steps", "epochs_run", "cap_test", "full_rows",
           "stage", "add", "quiet", "capped", "model_tag"]

CAPS = {"epochs": 2, "steps": 2, "images": 100, "samples": 5000, "test_images": 50}

_STATE = {"on": False, "records": {}, "depth": 0, "test": None, "clock": time.process_time}


def active() -> bool:
    """Whether a smoke run is in progress (inside :func:`enabled`)."""
    return _STATE["on"]


def requested() -> bool:
    """What :func:`gapkit.experiments.run` does when not told: smoke inside a smoke run (an
    experiment that runs another) or with ``$GAPKIT_SMOKE=1`` (the notebooks)."""
    return _STATE["on"] or os.environ.get("GAPKIT_SMOKE", "") == "1"


@contextlib.contextmanager
def enabled(on: bool = True, device="cpu"):
    """Switch smoke mode on (or off) for the ``with`` block, with cost records of its own (an
    experiment run by another, e.g. a teacher, keeps its costs in its own results). Stages are
    timed by :func:`clock`: on a CPU the process's CPU time (the time of one thread with
    ``OMP_NUM_THREADS=1``, unaffected by other processes sharing the cores), on a GPU wall time."""
    old = dict(_STATE)
    gpu = torch.device(device).type != "cpu"
    _STATE.update(on=bool(on), depth=0, records={}, test=None, clock=time.perf_counter if gpu else time.process_time)
    try:
        yield _STATE["records"]
    finally:
        _STATE.update(old)


def clock() -> float:
    """Seconds by the smoke run's clock (see :func:`enabled`); GPU work is waited for first."""
    if _STATE["clock"] is time.perf_counter and torch.cuda.is_available():
        torch.cuda.synchronize()
    return _STATE["clock"]()


def cap_test(data):
    """The dataset with its test split cut to ``CAPS["test_images"]`` images in a smoke run (the
    coder and the per-image loops then see a few), remembering the full size for the cost records:
    a tensor of exactly that many rows and the data's width counts as the whole test split."""
    if active() and len(data.test) > CAPS["test_images"]:
        n = CAPS["test_images"]
        _STATE["test"] = (n, data.dim, len(data.test))
        data.test = data.test[:n]
        if "test" in data.labels:
            data.labels = {**data.labels, "test": data.labels["test"][:n]}
    return data


def _full_count(n: int) -> int:
    """``n`` images in the uncapped run: the whole test split when ``n`` is the cut one's size."""
    t = _STATE["test"]
    return t[2] if t is not None and n == t[0] else n


def full_rows(x) -> int:
    """Rows of ``x`` in the uncapped run (the whole test split for a cut one, see :func:`cap_test`)."""
    t = _STATE["test"]
    if t is not None and hasattr(x, "shape") and len(x.shape) == 2 and tuple(x.shape) == t[:2]:
        return t[2]
    return len(x)


def rows(n: int, K: int = 1) -> int:
    """Images computed of ``n`` with ``K`` samples each: all of them outside a smoke run."""
    if not active():
        return n
    return max(1, min(n, CAPS["images"], CAPS["samples"] // max(1, K)))


def steps(n: int) -> int:
    """Iterations run of ``n`` (epochs' minibatches, refinement or coder steps, repetitions)."""
    return n if not active() else min(n, CAPS["steps"])


def _merge(recs, name, r):
    old = recs.get(name)
    if old is None:
        recs[name] = dict(r)
        return
    for k in ("full", "done", "seconds", "timed"):
        old[k] += r[k]
    if old.get("flops") is None:
        old.update(flops=r["flops"], kernels=r["kernels"], first_seconds=r["first_seconds"], first_done=r["first_done"])


class _KernelCount(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the aten operators dispatched (a GPU launches about one kernel each)."""

    def __init__(self):
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += 1
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def stage(name: str, full: float, done: float, unit: str = "iteration", quiet_ok: bool = False):
    """Record one call of a capped stage: ``full`` iterations in the uncapped run, ``done`` here.

    The first call of each stage runs under a FLOP counter and a kernel counter (its time is not
    used: counting slows it); later calls are timed. Nested stages record nothing (the outermost
    one holds their work; ``quiet_ok``: a stage directly inside :func:`quiet` still records, as
    the first step of a training loop does). Outside a smoke run it does nothing.
    """
    if not active() or _STATE["depth"] > (1 if quiet_ok else 0):
        yield
        return
    recs = _STATE["records"]
    first = name not in recs or recs[name].get("flops") is None
    _STATE["depth"] += 1
    t0 = clock()
    try:
        if first:
            from torch.utils.flop_counter import FlopCounterMode
            kc = _KernelCount()
            with FlopCounterMode(display=False) as fc, kc:
                yield
        else:
            yield
    finally:
        _STATE["depth"] -= 1
    dt = clock() - t0
    r = {"full": float(full), "done": float(done), "seconds": 0.0 if first else dt,
         "timed": 0.0 if first else float(done), "unit": unit, "flops": None, "kernels": None,
         "first_seconds": None, "first_done": None}
    if first:
        r.update(flops=fc.get_total_flops() / max(done, 1), kernels=kc.n / max(done, 1), first_seconds=dt,
                 first_done=float(done))
    _merge(recs, name, r)


def _tile(t, n: int, dim: int = 0):
    """``t`` with its rows along ``dim`` repeated until there are ``n`` of them."""
    if not torch.is_tensor(t) or t.dim() <= dim or t.shape[dim] in (0, n):
        return t
    reps = -(-n // t.shape[dim])
    return t.repeat(*[reps if d == dim else 1 for d in range(t.dim())]).narrow(dim, 0, n)


def _pad(t, n: int, dim: int = 0):
    """``t`` padded along ``dim`` to ``n`` entries by repeating its last one."""
    if not torch.is_tensor(t) or t.shape[dim] >= n or t.shape[dim] == 0:
        return t
    last = t.narrow(dim, t.shape[dim] - 1, 1)
    return torch.cat([t, last.expand(*[n - t.shape[dim] if d == dim else s for d, s in enumerate(t.shape)])], dim)


def _fit(out, n_rows: int, m_rows: int, n_steps: int | None, done_steps: int | None, row_dims: dict | int):
    """Tile every tensor of ``out`` (a tensor, tuple, dict or dataclass) with ``m_rows`` rows back to
    ``n_rows`` and pad step axes (dim 0 of length ``done_steps`` or ``done_steps + 1``) to the full length."""
    def fix(key, t):
        if not torch.is_tensor(t):
            return t
        if n_steps is not None and n_steps != done_steps and t.dim() > 1:
            for k, full in ((done_steps + 1, n_steps + 1), (done_steps, n_steps)):
                if t.shape[0] == k:
                    t = _pad(t, full, 0)
                    break
        d = row_dims.get(key, row_dims.get(None, 0)) if isinstance(row_dims, dict) else row_dims
        return _tile(t, n_rows, d) if m_rows < n_rows and t.dim() > d and t.shape[d] == m_rows else t
    if dataclasses.is_dataclass(out):
        return dataclasses.replace(out, **{f.name: fix(f.name, getattr(out, f.name)) for f in dataclasses.fields(out)})
    if isinstance(out, dict):
        return {k: fix(k, v) for k, v in out.items()}
    if isinstance(out, tuple):
        return tuple(fix(None, v) for v in out)
    return fix(None, out)


def model_tag(model) -> str:
    """A short name of a model's architecture (stages of different models are recorded apart)."""
    cfg = getattr(model, "config", None)
    if not isinstance(cfg, dict):
        return ""
    sizes = [cfg.get("x_dim"), *(cfg.get("hidden") or cfg.get("layers") or []), cfg.get("z_dim")]
    return f" [{cfg.get('model', '')} {'-'.join(str(v) for v in sizes if v is not None)}]"


def capped(name: str, x: str | None = "x", K: str | None = None, steps_arg: str | None = None,
           per_row: tuple = (), x_dim: int = 0, row_dims: dict | int = 0, unit: str = "image-sample",
           fit: bool = True, cap: bool = True, count=None):
    """Decorator of a per-image function, a stage of every smoke run.

    In a smoke run only ``rows(N, K)`` images of argument ``x`` (along ``x_dim``; ``x=None``: no
    images) and of the per-row arguments ``per_row`` (tensors or (mu, std) pairs), and ``steps(n)``
    iterations of argument ``steps_arg``, are computed. The output is tiled back to N rows
    (``row_dims``: its row dimension, per field name) and its step axes padded, so callers see the
    full shapes; ``fit=False``: the output is a summary, returned as it is. ``cap=False`` only
    records (work that cannot be cut per image, e.g. a coder whose output must decode to its input);
    ``count(arguments) -> rows`` counts rows that ``x`` does not show (the images in a message).
    One :func:`stage` record per call, in iterations = images x K x (steps + 1).
    """
    def wrap(func):
        sig = inspect.signature(func)

        @functools.wraps(func)
        def inner(*args, **kwargs):
            if not active():
                return func(*args, **kwargs)
            b = sig.bind(*args, **kwargs)
            b.apply_defaults()
            a = b.arguments
            n = count(a) if count is not None else a[x].shape[x_dim] if x is not None else 1
            n_full = full_rows(a[x]) if x is not None and x_dim == 0 else _full_count(n) if count else n
            k = int(a[K]) if K is not None else 1
            m = rows(n, k) if cap else n
            s_full = int(a[steps_arg]) if steps_arg is not None else None
            s_done = steps(s_full) if s_full is not None else None
            if m < n:
                a[x] = a[x].narrow(x_dim, 0, m)
                for p in per_row:
                    v = a.get(p)
                    if isinstance(v, (tuple, list)):
                        a[p] = type(v)(t[:m] if torch.is_tensor(t) and len(t) == n else t for t in v)
                    elif torch.is_tensor(v) and v.dim() > 0 and len(v) == n:
                        a[p] = v[:m]
            if steps_arg is not None:
                a[steps_arg] = s_done
            per = k * ((s_full + 1) if s_full is not None else 1)
            per_done = k * ((s_done + 1) if s_done is not None else 1)
            with stage(name + model_tag(a.get("model")), n_full * per, m * per_done, unit):
                out = func(*b.args, **b.kwargs)
            return _fit(out, n, m, s_full, s_done, row_dims) if fit else out
        return inner
    return wrap


@contextlib.contextmanager
def quiet():
    """Stages inside the block record nothing (a loop that records its own iterations with :func:`add`)."""
    _STATE["depth"] += 1
    try:
        yield
    finally:
        _STATE["depth"] -= 1


def add(name: str, full: float = 0.0, done: float = 0.0, seconds: float = 0.0, unit: str = "iteration"):
    """Add to a stage's record by hand (a loop that times its own iterations, e.g. training steps)."""
    if active():
        _merge(_STATE["records"], name, {"full": float(full), "done": float(done), "seconds": float(seconds),
                                         "timed": float(done) if seconds else 0.0, "unit": unit, "flops": None,
                                         "kernels": None, "first_seconds": None, "first_done": None})


def epochs_run(epochs: int, checkpoint_every: int):
    """The 0-based epochs a smoke run trains (None outside one: all): the first ``CAPS["epochs"]``,
    every checkpoint epoch and the last, so every snapshot of the paper run is written."""
    if not active():
        return None
    keep = set(range(min(epochs, CAPS["epochs"]))) | {epochs - 1}
    if checkpoint_every:
        keep |= {e - 1 for e in range(checkpoint_every, epochs + 1, checkpoint_every)}
    return keep
