"""Checkpoint sweeps: evaluate saved checkpoints with any bound and any inference method, once.

A training run leaves snapshots ``epoch_NNNN.pt`` (:func:`gapkit.train.checkpoints`). A sweep
evaluates a bound on a data set at every snapshot::

    rows = sweep(checkpoints(out_dir), x_test, bound="elbo", K=10, inference="optimal")

and returns one row per checkpoint: ``{"epoch", "nats", "bpd", "nats_std", "n", ...}`` with
``nats`` the dataset mean of the bound (nats per image) and ``bpd = -nats / (D ln 2)``.

Inference methods (which q(z|x) the bound is evaluated with):

* ``"amortized"``: the checkpoint's own encoder q_phi(z|x);
* ``"optimal"``: per-data-point optimal Gaussians q*(z|x_i) for the fixed decoder
  (:func:`gapkit.inference.optimal.per_point`, all points optimized at once, from the encoder's output);
* ``"optimal-encoder"``: the paper's optimal inference (Zhang et al. 2022, Eq. 13): a copy of the
  encoder trained on ``x`` itself with the decoder fixed (:func:`gapkit.inference.optimal.encoder`).

The difference of two sweeps on test data is the amortized-inference generalization gap
(`chapter 2 <https://gapkit.github.io/gapkit/notebooks/02_generalization_gaps.html>`_), Eq. 12 of the paper:

    gap(x) = ELBO(x; q*) - ELBO(x; q_phi) = KL(q_phi(z|x) || p(z|x)) - KL(q*(z|x) || p(z|x)) >= 0.

Results are cached: every (checkpoint content, data, bound, K, inference method and its settings,
seed) gets one small JSON file in ``cache_dir``, keyed by a SHA-256 of all of them, so a sweep
run again (or extended with new checkpoints) computes only what it has not computed before.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch

from ..checks import one_of, positive_int
from ..bounds import BOUNDS, bpd
from ..bounds import get as get_bound
from ..estimators import evaluate
from ..io import file_digest, read_json, write_json
from ..models import load_model
from ..progress import tqdm

__all__ = ["INFERENCE", "sweep", "evaluate_with", "inference_gap", "file_digest",
           "tensor_digest"]

INFERENCE = ("amortized", "optimal", "optimal-encoder")
# Defaults of each method's settings (overridden by ``inference_kw``).
DEFAULTS = {"amortized": {},
            "optimal": {"steps": 300, "lr": 1e-2, "K": 1, "lr_decay": False},
            "optimal-encoder": {"epochs": 100, "lr": 5e-4, "batch_size": 100, "K": 1}}


def _check_method(inference: str, inference_kw: dict | None) -> dict:
    one_of("inference method", inference, INFERENCE)
    kw = dict(DEFAULTS[inference])
    bad = set(inference_kw or {}) - set(kw)
    if bad:
        raise ValueError(f"unknown settings {sorted(bad)} for inference {inference!r}; "
                         f"valid: {sorted(kw) or 'none'}")
    kw.update(inference_kw or {})
    return kw


def evaluate_with(model, x: torch.Tensor, bound="elbo", K: int = 1, inference: str = "amortized",
                  inference_kw: dict | None = None, seed: int = 0, progress: bool = False) -> torch.Tensor:
    """A bound (nats) of every row of ``x`` under the chosen inference method: (N, D) -> (N,).

    ``bound`` (a name or a function) and ``K`` are those of :func:`gapkit.estimators.evaluate`
    (``"elbo"``: the K-sample average of log w; ``"iwae"``: log (1/K) sum_k w_k). ``inference`` picks q (module docstring);
    ``inference_kw`` its settings (``optimal``: steps, lr, K, lr_decay; ``optimal-encoder``: epochs, lr,
    batch_size, K). Randomness comes from generators seeded with ``seed``.

    `Chapter 2 <https://gapkit.github.io/gapkit/notebooks/02_generalization_gaps.html>`_
    uses it through :func:`sweep`.
    """
    bound = get_bound(bound)
    kw = _check_method(inference, inference_kw)
    q, m = None, model
    if inference == "optimal":
        from ..inference.optimal import per_point
        q = per_point(model, x, kw["steps"], kw["lr"], kw["K"], seed=seed + 1, progress=progress,
                      lr_decay=kw["lr_decay"])
    elif inference == "optimal-encoder":
        from ..inference.optimal import encoder
        m = encoder(model, x, kw["epochs"], kw["lr"], kw["batch_size"], kw["K"], seed=seed + 1,
                      progress=progress)
    m.eval()
    return evaluate(m, x, bound, K, q=q, seed=seed)


def inference_gap(model, x: torch.Tensor, bound: str = "elbo", K: int = 1, inference: str = "optimal",
                  inference_kw: dict | None = None, seed: int = 0) -> torch.Tensor:
    """Per-point inference gap in nats: ``bound(x; q_opt) - bound(x; q_phi)``, shape (N,).

    With the ELBO and exact optimization of a q family that holds the posterior this is
    ``KL(q_phi(z|x) || p(z|x))``
    (`chapter 2 <https://gapkit.github.io/gapkit/notebooks/02_generalization_gaps.html>`_).
    Both bounds use the same seed.
    """
    amort = evaluate_with(model, x, bound, K, "amortized", seed=seed)
    opt = evaluate_with(model, x, bound, K, inference, inference_kw, seed=seed)
    return opt - amort


def tensor_digest(x: torch.Tensor) -> str:
    """SHA-256 of a tensor's shape, dtype and values (the data a sweep evaluated)."""
    t = x.detach().cpu().contiguous()
    h = hashlib.sha256(f"{tuple(t.shape)}|{t.dtype}".encode())
    h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _as_pairs(checkpoints):
    pairs = []
    for c in checkpoints:
        if isinstance(c, (tuple, list)) and len(c) == 2:
            epoch, path = c
        else:
            path = Path(c)
            try:
                epoch = int(path.stem.split("_")[-1])
            except ValueError:
                epoch = None
        pairs.append((epoch, Path(path)))
    if not pairs:
        raise ValueError("no checkpoints to sweep (train with checkpoint_every > 0)")
    return pairs


def sweep(checkpoints, x: torch.Tensor, bound: str = "elbo", K: int = 1, inference: str = "amortized",
          inference_kw: dict | None = None, cache_dir=None, seed: int = 0, device=None,
          progress: bool = True, label: str = "") -> list[dict]:
    """Evaluate ``bound`` with ``inference`` on ``x`` at every checkpoint, reusing cached results.

    :param checkpoints: ``[(epoch, path), ...]`` as from :func:`gapkit.train.checkpoints`, or paths
        named ``epoch_NNNN.pt``.
    :param x: (N, D) data (a fixed binarization for dynamic data).
    :param bound: a name in :data:`gapkit.bounds.BOUNDS` (``"elbo"``, ``"iwae"``, ...).
    :param K: the bound's samples per image.
    :param inference: q: ``"amortized"``, ``"optimal"`` (:func:`gapkit.inference.optimal.per_point`) or
        ``"optimal-encoder"`` (:func:`gapkit.inference.optimal.encoder`).
    :param inference_kw: the inference method's settings.
    :param cache_dir: where per-checkpoint results live (default: ``sweep/`` next to the checkpoints).
    :returns: one dict per checkpoint, in the given order: ``epoch``, ``checkpoint``, ``nats`` (mean
        bound), ``nats_std`` (its standard deviation over images), ``bpd``, ``n``, ``bound``, ``K``,
        ``inference``, ``inference_kw``, ``seed``, ``cached`` (True when read from the cache).

    `Chapter 2 <https://gapkit.github.io/gapkit/notebooks/02_generalization_gaps.html>`_
    sweeps its checkpoints with it, with the
    encoder and with optimal inference.
    """
    one_of("bound (a name: sweeps are cached by it)", bound, BOUNDS)
    positive_int("K", K)
    kw = _check_method(inference, inference_kw)
    pairs = _as_pairs(checkpoints)
    data_key = tensor_digest(x)
    spec = {"bound": bound, "K": K, "inference": inference, "inference_kw": kw, "seed": seed}
    rows = []
    bar = tqdm(pairs, desc=f"sweep {label or inference} {bound}-{K}", disable=not progress, leave=False)
    for epoch, path in bar:
        if not path.exists():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        cdir = Path(cache_dir) if cache_dir is not None else path.parent / "sweep"
        key = hashlib.sha256(json.dumps({"checkpoint": file_digest(path), "data": data_key, **spec},
                                        sort_keys=True).encode()).hexdigest()[:24]
        cache = cdir / f"{path.stem}-{key}.json"
        if cache.exists():
            try:
                row = read_json(cache, require_checksum=True)
                rows.append({**row, "epoch": epoch, "checkpoint": str(path), "cached": True})
                continue
            except ValueError:  # a damaged or edited cache file (checksum): compute again
                pass
        model = load_model(path, device if device is not None else x.device)
        nats = evaluate_with(model, x, bound, K, inference, kw, seed=seed)    # (N,)
        mean = nats.double().mean().item()
        row = {"epoch": epoch, "checkpoint": str(path), "nats": mean,
               "nats_std": nats.double().std().item() if len(nats) > 1 else 0.0,
               "bpd": float(bpd(mean, x.shape[1])), "n": int(len(x)), "dim": int(x.shape[1]), **spec}
        if not math.isfinite(mean):
            raise ValueError(f"non-finite bound {mean} at checkpoint {path}")
        write_json(cache, row, checksum=True)
        rows.append({**row, "cached": False})
    return rows
