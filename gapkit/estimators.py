"""Monte Carlo log-weights and whole-dataset bound evaluation in bounded memory.

``log_weights_from_noise(model, x, eps, q)`` is the one place where log-weights are made:
``z = mu + std * eps`` and ``log w = log p(x, z) - log q(z|x)`` for given standard-normal noise
``eps`` (..., B, Z) -> (...., B). ``log_weights(model, x, K)`` draws the noise (K, B, Z) and calls it.

``evaluate(model, x, bound="iwae", K=5000)`` evaluates any bound of :mod:`gapkit.bounds` (a name
or a function) for every row of ``x``: the data are taken in batches and the K samples in chunks
whose size keeps the number of rows (samples x images) per forward pass under ``max_rows``; a bound
with a :class:`gapkit.bounds.Stream` (ELBO, IWAE: a running sum, a running log-sum-exp) is merged
chunk by chunk, so memory does not grow with K.
"""
from __future__ import annotations

import torch

from . import bounds as _bounds
from . import smoke
from .checks import positive_int
from .device import eval_rows
from .progress import tqdm

__all__ = ["sample_q", "log_weights_from_noise", "log_weights", "evaluate"]


def sample_q(mu: torch.Tensor, std: torch.Tensor, K: int, generator: torch.Generator | None = None):
    """z = mu + std * eps with eps ~ N(0, I): (B, Z) -> (K, B, Z)."""
    eps = torch.randn((K, *mu.shape), device=mu.device, dtype=mu.dtype, generator=generator)
    return mu + std * eps


def log_weights_from_noise(model, x: torch.Tensor, eps: torch.Tensor, q=None, return_z: bool = False):
    """log w = log p(x, z) - log q(z|x) at ``z = mu + std * eps`` for given noise: (..., B, Z) -> (..., B).

    ``q`` is ``(mu, std)``, broadcastable against ``eps`` (e.g. (B, Z), or (R, 1, 1, B, Z) for
    repetitions); by default the model's amortized encoder ``model.encode(x)``. Gradients flow to
    whatever ``q`` and the model's parameters carry.
    `Chapter 1 <https://gapkit.github.io/gapkit/notebooks/01_elbo_tightness.html>`_.
    """
    mu, std = model.encode(x) if q is None else q
    z = mu + std * eps                                                # (..., B, Z)
    log_w = model.log_joint(x, z) - model.log_q(z, mu, std)           # (..., B)
    return (log_w, z) if return_z else log_w


@smoke.capped("log-weights", x="x", K="K", per_row=("q",), row_dims=1)
def log_weights(model, x: torch.Tensor, K: int = 1, q=None, generator: torch.Generator | None = None,
                return_z: bool = False):
    """log w = log p(x, z) - log q(z|x) for K reparameterized z ~ q; shape (K, B).

    ``q`` is ``(mu, std)`` of shape (B, Z) each; by default the model's amortized encoder.
    The noise eps ~ N(0, I) (K, B, Z) goes through :func:`log_weights_from_noise`.

    `Chapter 1 <https://gapkit.github.io/gapkit/notebooks/01_elbo_tightness.html>`_
    explains importance weights.
    """
    positive_int("K", K)
    mu, std = model.encode(x) if q is None else q
    eps = torch.randn((K, *mu.shape), device=mu.device, dtype=mu.dtype, generator=generator)
    return log_weights_from_noise(model, x, eps, q=(mu, std), return_z=return_z)


@smoke.capped("evaluate", x="x", K="K", per_row=("q",))
@torch.no_grad()
def evaluate(model, x: torch.Tensor, bound="elbo", K: int = 1, q=None, batch_size: int = 1000,
             max_rows: int | None = None, generator: torch.Generator | None = None, seed: int = 0,
             progress: bool = False) -> torch.Tensor:
    """A bound (nats) for every row of ``x``: (N, D) -> (N,).

    :param bound: a bound of :mod:`gapkit.bounds` by name (``"elbo"``: the K-sample average of log w,
        ``"iwae"``: log-mean-exp of K weights, ...) or any function ``log_w (K, B) -> (B,)``; one with
        a ``stream`` is merged over sample chunks, any other reduces all K log-weights of a batch at once.
    :param K: importance samples per image.
    :param q: per-image ``(mu, std)`` of shape (N, Z) (e.g. from optimal inference), or None for the
        amortized encoder.
    :param max_rows: at most this many (sample, image) rows per forward pass; bounds memory for any K.
        By default :func:`gapkit.device.eval_rows`: by free memory on a GPU; on a CPU 4096, which
        keeps a pass's activations in cache (``python -m gapkit bench iwae``:
        about twice as fast on a CPU as 65536 rows, at under 1 GB for IWAE-5000).
    :param generator: the randomness; when None, a generator seeded with ``seed``.
    :param seed: the seed used when no ``generator`` is given.

    `Chapter 1 <https://gapkit.github.io/gapkit/notebooks/01_elbo_tightness.html>`_
    explains both bounds and measures this function's
    speed; every later chapter evaluates its models with it.
    """
    fn = _bounds.get(bound)
    stream = getattr(fn, "stream", None)
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
    for s in tqdm(starts, desc=f"{_bounds.name_of(fn)}-{K}", disable=not progress, leave=False):
        xb = x[s:s + b]
        mu, std = model.encode(xb) if q is None else (q[0][s:s + b], q[1][s:s + b])
        acc, parts = None, []
        for k0 in range(0, K, k_chunk):
            lw = log_weights(model, xb, min(k_chunk, K - k0), q=(mu, std), generator=generator)  # (k, b)
            if stream is None:
                parts.append(lw)
            else:
                part = stream.part(lw)
                acc = part if acc is None else stream.merge(acc, part)
        out[s:s + b] = fn(torch.cat(parts)) if stream is None else stream.finish(acc, K)
    return out
