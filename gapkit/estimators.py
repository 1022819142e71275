"""Monte Carlo log-weights and whole-dataset bound evaluation in bounded memory.

``log_weights(model, x, K)`` draws z_k ~ q(z|x) by reparameterization and returns
``log w_k = log p(x, z_k) - log q(z_k|x)`` with shape (K, B).

``evaluate(model, x, bound="iwae", K=5000)`` evaluates a bound for every row of ``x``: the data
are taken in batches and the K samples in chunks whose size keeps the number of rows
(samples x images) per forward pass under ``max_rows``; IWAE is accumulated with a running
log-sum-exp, so memory does not grow with K.
"""
from __future__ import annotations

import math

import torch

from . import smoke
from .bounds import bpd
from .device import eval_rows
from .checks import one_of, positive_int
from .progress import tqdm

__all__ = ["sample_q", "log_weights", "evaluate", "evaluate_bpd", "BOUNDS"]

BOUNDS = ("elbo", "iwae")


def sample_q(mu: torch.Tensor, std: torch.Tensor, K: int, generator: torch.Generator | None = None):
    """z = mu + std * eps with eps ~ N(0, I): (B, Z) -> (K, B, Z)."""
    eps = torch.randn((K, *mu.shape), device=mu.device, dtype=mu.dtype, generator=generator)
    return mu + std * eps


@smoke.capped("log-weights", x="x", K="K", per_row=("q",), row_dims=1)
def log_weights(model, x: torch.Tensor, K: int = 1, q=None, generator: torch.Generator | None = None,
                return_z: bool = False):
    """log w = log p(x, z) - log q(z|x) for K reparameterized z ~ q; shape (K, B).

    ``q`` is ``(mu, std)`` of shape (B, Z) each; by default the model's amortized encoder.

    Chapter 1 (``notebooks/01_elbo_tightness``) explains importance weights.
    """
    positive_int("K", K)
    mu, std = model.encode(x) if q is None else q
    z = sample_q(mu, std, K, generator)                               # (K, B, Z)
    log_w = model.log_joint(x, z) - model.log_q(z, mu, std)           # (K, B)
    return (log_w, z) if return_z else log_w


@smoke.capped("evaluate", x="x", K="K", per_row=("q",))
@torch.no_grad()
def evaluate(model, x: torch.Tensor, bound: str = "elbo", K: int = 1, q=None, batch_size: int = 1000,
             max_rows: int | None = None, generator: torch.Generator | None = None, seed: int = 0,
             progress: bool = False) -> torch.Tensor:
    """A bound (nats) for every row of ``x``: (N, D) -> (N,).

    :param bound: ``"elbo"`` (the K-sample average of log w) or ``"iwae"`` (log-mean-exp of K weights).
    :param K: importance samples per image.
    :param q: per-image ``(mu, std)`` of shape (N, Z) (e.g. from optimal inference), or None for the
        amortized encoder.
    :param max_rows: at most this many (sample, image) rows per forward pass; bounds memory for any K.
        By default :func:`gapkit.device.eval_rows`: by free memory on a GPU; on a CPU 4096, which
        keeps a pass's activations in cache (``python -m gapkit bench iwae``:
        about twice as fast on a CPU as 65536 rows, at under 1 GB for IWAE-5000).
    :param generator: the randomness; when None, a generator seeded with ``seed``.
    :param seed: the seed used when no ``generator`` is given.

    Chapter 1 (``notebooks/01_elbo_tightness``) explains both bounds and measures this function's
    speed; every later chapter evaluates its models with it.
    """
    one_of("bound", bound, BOUNDS)
    positive_int("K", K)
    positive_int("batch_size", batch_size)
    max_rows = eval_rows(x.device, model) if max_rows is None else max_rows   # by memory (gapkit.device)
    positive_int("max_rows", max_rows)
    model.check_x(x)
    if q is not None:
        if not (isinstance(q, (tuple, list)) and len(q) == 2 and all(torch.is_tensor(t) for t in q)
                and q[0].shape == q[1].shape and q[0].dim() == 2 and len(q[0]) == len(x)):
            raise ValueError(f"q must be (mu, std), each of shape (N, Z) with N = {len(x)} rows of x")
        if not bool(torch.isfinite(q[0]).all()) or not bool((q[1] > 0).all()) or not bool(torch.isfinite(q[1]).all()):
            raise ValueError("q must have finite means and finite, positive standard deviations")
    if generator is None:
        generator = torch.Generator(device=x.device).manual_seed(seed)
    n = len(x)
    b = max(1, min(batch_size, n, max_rows))
    k_chunk = max(1, min(K, max_rows // b))
    out = torch.empty(n, device=x.device, dtype=x.dtype if x.dtype == torch.float64 else torch.float32)
    starts = range(0, n, b)
    for s in tqdm(starts, desc=f"{bound}-{K}", disable=not progress, leave=False):
        xb = x[s:s + b]
        mu, std = model.encode(xb) if q is None else (q[0][s:s + b], q[1][s:s + b])
        acc = None
        for k0 in range(0, K, k_chunk):
            lw = log_weights(model, xb, min(k_chunk, K - k0), q=(mu, std), generator=generator)
            part = torch.logsumexp(lw, 0) if bound == "iwae" else lw.sum(0)
            acc = part if acc is None else (torch.logaddexp(acc, part) if bound == "iwae" else acc + part)
        out[s:s + b] = acc - math.log(K) if bound == "iwae" else acc / K
    return out


def evaluate_bpd(model, x: torch.Tensor, bound: str = "elbo", K: int = 1, **kw) -> float:
    """The dataset mean of a bound, in bits per dimension."""
    return float(bpd(evaluate(model, x, bound, K, **kw).mean(), x.shape[1]))
