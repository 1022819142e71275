"""Experiments: each chapter's computation, runnable without a notebook.

An experiment is a function registered with :func:`experiment`; it takes a :class:`Context`
(preset, seed, output folder, device) and returns a dict of results. :func:`run` adds the config
and provenance (gapkit version, git commit, device, torch version, wall time), writes
``results.json`` atomically, and reuses a finished result with the same config, gapkit
version and experiment source (a hash of its module) unless ``force=True``::

    python -m gapkit run vae-basics --preset quick --seed 0 --out DIR

Every module in this package is imported by :func:`registry`, so a new experiment is a new file.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import __version__
from ..device import default_device, describe
from ..io import read_json, write_json
from ..presets import Preset, get_preset

__all__ = ["experiment", "registry", "get", "run", "load", "Context", "results_dir"]

_REGISTRY: dict = {}


@dataclass
class Experiment:
    name: str
    func: callable
    description: str
    chapter: str = ""
    cost: dict = field(default_factory=dict)  # preset -> rough wall time, e.g. {"book": "3 min CPU"}


def experiment(name: str, description: str, chapter: str = "", cost: dict | None = None):
    """Register ``func(ctx) -> dict`` as the experiment ``name``."""
    def wrap(func):
        _REGISTRY[name] = Experiment(name, func, description, chapter, cost or {})
        return func
    return wrap


def registry() -> dict:
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> Experiment:
    reg = registry()
    if name not in reg:
        raise ValueError(f"unknown experiment {name!r}; valid experiments: {', '.join(reg)}")
    return reg[name]


def results_dir() -> Path:
    """``$GAPKIT_RESULTS_DIR``, else ``~/.cache/gapkit/results``."""
    if os.environ.get("GAPKIT_RESULTS_DIR"):
        return Path(os.environ["GAPKIT_RESULTS_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gapkit" / "results"


@dataclass
class Context:
    """What an experiment gets: its preset, seed, output folder, device and extra parameters."""

    preset: Preset
    seed: int
    out: Path
    device: torch.device
    progress: bool = True
    params: dict = field(default_factory=dict)

    def data(self, **changes):
        """The preset's dataset (``changes`` override preset fields such as ``binarization``)."""
        from ..data import load
        p = self.preset.replace(**changes) if changes else self.preset
        return load(p.dataset, p.binarization, subset=p.train_subset, test_subset=p.test_subset,
                    seed=0, device=self.device)

    def model(self, data, **changes):
        """A fresh VAE of the preset's architecture for ``data``, seeded by ``self.seed``."""
        from ..models import VAE
        p = self.preset.replace(**changes) if changes else self.preset
        torch.manual_seed(self.seed)
        # No output-bias initialisation by default: on the small digits model it starts the decoder
        # at the pixel marginals and training collapses the posterior.
        return VAE(data.dim, p.latent, p.hidden, p.activation, data.likelihood).to(self.device)

    def train_config(self, **changes):
        from ..train import TrainConfig
        p = self.preset
        base = dict(epochs=p.epochs, batch_size=p.batch_size, lr=p.lr, seed=self.seed,
                    eval_every=p.eval_every, checkpoint_every=p.checkpoint_every, progress=self.progress)
        base.update(changes)
        return TrainConfig(**base)


def _git_commit():
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _source_hash(func) -> str:
    """A short hash of the experiment module's code (its syntax tree without docstrings, so that
    editing prose or comments keeps cached results, while any change to what runs invalidates them)."""
    import ast
    import hashlib
    import inspect
    try:
        tree = ast.parse(inspect.getsource(inspect.getmodule(func)))
    except (OSError, TypeError, SyntaxError):
        return "unknown"
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:12]


def provenance(device, wall_time: float) -> dict:
    return {"gapkit_version": __version__, "git_commit": _git_commit(), "device": describe(device),
            "torch_version": torch.__version__, "python": platform.python_version(),
            "wall_time_s": round(wall_time, 3), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def default_out(name: str, preset: str, seed: int) -> Path:
    return results_dir() / name / f"{preset}-seed{seed}"


def run(name: str, preset: str | None = None, seed: int = 0, out=None, force: bool = False,
        device=None, progress: bool = True, **params) -> dict:
    """Run (or reuse) experiment ``name`` and return its results dict (also in ``out/results.json``).

    Every chapter calls it; chapter 0 (``notebooks/00_vae_basics``) explains the cache.
    """
    exp = get(name)
    p = get_preset(preset)
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    out = Path(out) if out is not None else default_out(name, p.name, seed)
    config = {"experiment": name, "preset": p.to_dict(), "seed": seed, "params": params,
              "code": _source_hash(exp.func)}
    path = out / "results.json"
    if path.exists() and not force:
        try:
            old = read_json(path)
        except ValueError:
            old = {}
        if old.get("config") == config and old.get("provenance", {}).get("gapkit_version") == __version__:
            return old
    dev = default_device(device)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = exp.func(Context(p, seed, out, dev, progress, dict(params)))
    result = {"config": config, **result, "provenance": provenance(dev, time.perf_counter() - t0)}
    write_json(path, result)
    return read_json(path)


def load(name: str, preset: str | None = None, seed: int = 0, out=None) -> dict:
    """Read a finished ``results.json`` without running anything."""
    p = get_preset(preset)
    path = (Path(out) if out is not None else default_out(name, p.name, seed)) / "results.json"
    if not path.exists():
        raise FileNotFoundError(f"no results at {path}; run: python -m gapkit run {name} --preset {p.name}")
    return read_json(path)
