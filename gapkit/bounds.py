"""Variational bounds as pure functions of log importance weights.

The sample dimension comes first: ``log_w`` has shape (K, B) with
``log w_k = log p(x, z_k) - log q(z_k | x)``, ``z_k ~ q(z | x)``, and each bound returns (B,).

* ELBO (Kingma & Welling 2014):  ``L_1 = (1/K) sum_k log w_k`` (a K-sample average of the ELBO).
* IWAE (Burda et al. 2016):      ``L_K = log (1/K) sum_k w_k``;  ``L_1`` = ELBO,
  ``L_K <= L_{K+1} <= log p(x)`` in expectation, and ``L_K -> log p(x)`` as K grows.

Bits per dimension of a bound ``L`` in nats on D-pixel images: ``BPD = -L / (D ln 2)``.
`Chapter 1 <https://gapkit.github.io/gapkit/notebooks/01_elbo_tightness.html>`_
explains them; later chapters add their bounds here.

**A bound is a reduction over the sample axis**: a function ``log_w (K, ...) -> (...)`` (the sample
dimension first, any batch dimensions after it). Every consumer takes one by name (:data:`BOUNDS`,
resolved by :func:`get`) or as the function itself: :func:`gapkit.estimators.evaluate` (chunked
over the sample axis), :func:`gapkit.analysis.snr.snr` (applied to each of M groups of K samples, then
averaged over the M groups: MIWAE(M, K) for ``iwae``), :func:`gapkit.inference.optimal.per_point`, and the
objective :class:`gapkit.objectives.bounds_based.BoundObjective`. A bound may carry a :class:`Stream` (its
``stream`` attribute): how to merge partial results over chunks of the sample axis, so that
evaluation memory does not grow with K; without one, ``evaluate`` collects the chunks' (K, b)
log-weights and reduces them at once; it may also carry ``grouped``, its average over M groups
(M, K, ...) -> (...) in one call (IWAE's is :func:`miwae`). A new bound: a function here with its
formula in the docstring (and ``fn.stream = Stream(...)`` when large K needs it), one :data:`BOUNDS`
entry, a test.
"""
from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass
from typing import Callable

import torch

from .checks import positive_int, reading_values, values_checked_by_caller  # noqa: F401 (re-exported)

__all__ = ["log_mean_exp", "elbo", "iwae", "bpd", "check_log_w", "Stream", "BOUNDS", "get", "name_of"]


@dataclass(frozen=True)
class Stream:
    """A bound evaluated over chunks of the sample axis: ``state = part(log_w chunk)`` per chunk
    (K_c, ...) -> (...), ``state = merge(state, next)``, and ``finish(state, K) -> (...)`` the bound
    of all K samples. ELBO: sums, ``+``, ``/ K``; IWAE: ``logsumexp``, ``logaddexp``, ``- log K``."""

    part: Callable
    merge: Callable
    finish: Callable


def check_log_w(log_w: torch.Tensor, min_dim: int = 2, name: str = "log_w") -> torch.Tensor:
    if not torch.is_tensor(log_w) or not log_w.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got "
                        f"{log_w.dtype if torch.is_tensor(log_w) else type(log_w).__name__}")
    if log_w.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimensions with the sample dimension "
                         f"first, e.g. (K, B); got shape {tuple(log_w.shape)}")
    if log_w.shape[0] < 1:
        raise ValueError(f"{name} needs K >= 1 samples, got shape {tuple(log_w.shape)}")
    if not reading_values():   # inside gapkit.train: checked on the device (values_checked_by_caller)
        return log_w
    finite = torch.isfinite(log_w.detach())
    try:
        all_finite = bool(finite.all())
    except RuntimeError:  # inside torch.func.vmap no value can be read: the caller checks the result
        return log_w
    if not all_finite:
        bad = log_w.detach()[~finite]
        kinds = sorted({"NaN" if torch.isnan(v) else ("+inf" if v > 0 else "-inf") for v in bad[:1000]})
        raise ValueError(f"{name} has {int((~finite).sum())} non-finite log-weight(s) ({', '.join(kinds)}) of "
                         f"{log_w.numel()}: a bound needs finite log p(x, z) - log q(z|x); check the model, "
                         "the data (inside the likelihood's support) and q's scale")
    return log_w


def log_mean_exp(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log (1/K) sum_k exp(x_k) over ``dim``, stable for any magnitude (max-shifted)."""
    k = x.shape[dim]
    return torch.logsumexp(x, dim=dim) - math.log(k)


def elbo(log_w: torch.Tensor) -> torch.Tensor:
    """ELBO estimate ``(1/K) sum_k log w_k``: (K, B) -> (B,).

    `Chapter 0 <https://gapkit.github.io/gapkit/notebooks/00_vae_basics.html>`_ explains it.
    """
    return check_log_w(log_w).mean(0)


elbo.stream = Stream(lambda lw: lw.sum(0), torch.add, lambda acc, K: acc / K)


def iwae(log_w: torch.Tensor) -> torch.Tensor:
    """IWAE bound ``log (1/K) sum_k w_k``: (K, B) -> (B,). With K = 1 it is the ELBO.

    `Chapter 1 <https://gapkit.github.io/gapkit/notebooks/01_elbo_tightness.html>`_ explains it.
    """
    return log_mean_exp(check_log_w(log_w), dim=0)


iwae.stream = Stream(lambda lw: torch.logsumexp(lw, 0), torch.logaddexp, lambda acc, K: acc - math.log(K))


def bpd(bound, dim: int):
    """Bits per dimension of a lower bound ``bound`` (nats per image, <= 0): ``-bound / (D ln 2)``.

    ``dim`` (D, the pixels per image) must be a positive integer.
    `Chapter 0 <https://gapkit.github.io/gapkit/notebooks/00_vae_basics.html>`_
    (``notebooks/00_vae_basics``) explains the unit.
    """
    return -bound / (positive_int("dim (pixels per image)", dim) * math.log(2))


def ess(log_w: torch.Tensor) -> torch.Tensor:
    """Normalized effective sample size of importance weights over dimension 0: (K, ...) -> (...).

    ``ESS = (sum_k w_k)^2 / (K sum_k w_k^2)`` in [1/K, 1], computed in log space as
    ``exp(2 logsumexp(log w) - logsumexp(2 log w) - log K)``, so it is exact for any scale of the
    weights. 1 means equal weights (q = p(z|x)); 1/K means one weight dominates.
    `Chapter 5 <https://gapkit.github.io/gapkit/notebooks/05_iterative_refinement.html>`_
    (``notebooks/05_iterative_refinement``) follows it as refinement proceeds (Hjelm et al. 2016).
    """
    log_w = check_log_w(log_w, min_dim=1)
    K = log_w.shape[0]
    return torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0) - math.log(K))


__all__ += ["ess"]


# --- Chapter 4 (notebooks/04_iwae_snr): MIWAE and CIWAE (Rainforth et al. 2018) -------------------

def miwae(log_w: torch.Tensor) -> torch.Tensor:
    """MIWAE(M, K) bound ``(1/M) sum_m log (1/K) sum_k w_{m,k}``: (M, K, B) -> (B,).

    The average of M independent IWAE-K estimates (the sample dimensions come first: M, then K).
    Special cases: M = 1 is IWAE-K; K = 1 is the ELBO averaged over M samples. Its expectation
    is the IWAE-K bound for every M; M only lowers the variance of the estimate and of its
    gradient. `Chapter 4 <https://gapkit.github.io/gapkit/notebooks/04_iwae_snr.html>`_ explains it.
    """
    check_log_w(log_w, min_dim=3)
    return log_mean_exp(log_w, dim=1).mean(0)


def ciwae(log_w: torch.Tensor, beta) -> torch.Tensor:
    """CIWAE(beta) bound ``beta (1/K) sum_k log w_k + (1 - beta) log (1/K) sum_k w_k``: (K, B) -> (B,).

    A convex combination of the ELBO and IWAE-K on the *same* K samples, ``beta`` in [0, 1]
    (a float or a tensor, e.g. a learnable ``sigmoid`` of a free parameter). Special cases:
    beta = 1 is the ELBO (K-sample average), beta = 0 is IWAE-K; on any one draw
    ``ELBO <= CIWAE <= IWAE`` (Jensen).
    `Chapter 4 <https://gapkit.github.io/gapkit/notebooks/04_iwae_snr.html>`_ explains it.
    """
    check_log_w(log_w)
    if torch.is_tensor(beta):
        # a tensor (a learnable sigmoid(a), in [0, 1] by construction) is not read to the host: that
        # would cost a synchronisation per training step; its shape is checked, its value is not
        if beta.numel() != 1:
            raise ValueError(f"beta must be one number in [0, 1] (1: ELBO, 0: IWAE), got shape {tuple(beta.shape)}")
    elif isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be one number in [0, 1] (1: ELBO, 0: IWAE), got {beta!r}")
    b = torch.as_tensor(beta, dtype=log_w.dtype, device=log_w.device).reshape(())
    return b * log_w.mean(0) + (1 - b) * log_mean_exp(log_w, dim=0)


iwae.grouped = miwae  # IWAE averaged over M groups of K samples is MIWAE(M, K)

__all__ += ["miwae", "ciwae"]


def bsvi(log_w: torch.Tensor, pi=None, log_pi=None) -> torch.Tensor:
    """Buffered SVI / generalized IWAE bound ``log sum_i pi_i w_i``: (k+1, B, ...) -> (B, ...).

    ``log_w[i]`` is ``log p(x, z_i) - log q_i(z_i | z_<i)`` for the i-th proposal of a trajectory
    q_0, ..., q_k (e.g. the SVI steps of ``gapkit.inference.refine.refine``). Theorem 1 of Shu et al. (2019),
    the generalized IWAE bound: for any joint q(z_0:k) and fixed weights pi on the simplex,

        E_{q(z_0:k)} log sum_{i=0}^k pi_i p(x, z_i) / q(z_i | z_v(i)) <= log p(x),

    because the sum is an unbiased estimate of p(x) (Jensen). With the default uniform
    ``pi_i = 1/(k+1)`` it is ``log_mean_exp``, i.e. the IWAE bound when the proposals are
    independent and identical; ``pi = (0, ..., 0, 1)`` gives the SVI-k bound ``log w_k``.
    ``pi`` (probabilities) or ``log_pi`` (log-probabilities, e.g. a log-softmax, differentiable)
    has shape (k+1,) or broadcasts against ``log_w``.
    `Chapter 6 <https://gapkit.github.io/gapkit/notebooks/06_bsvi.html>`_ explains it.
    """
    check_log_w(log_w, min_dim=1)
    if pi is not None and log_pi is not None:
        raise ValueError("give pi or log_pi, not both")
    if pi is None and log_pi is None:
        return log_mean_exp(log_w, dim=0)
    if log_pi is None:
        pi = torch.as_tensor(pi, dtype=log_w.dtype, device=log_w.device)
        with torch.no_grad():
            if (pi < 0).any() or not torch.isfinite(pi).all():
                raise ValueError("pi must be finite and non-negative")
        log_pi = torch.log(pi)
    else:
        log_pi = torch.as_tensor(log_pi, dtype=log_w.dtype, device=log_w.device)
    if log_pi.dim() == 0 or log_pi.shape[0] != log_w.shape[0]:
        raise ValueError(f"pi must have k+1 = {log_w.shape[0]} entries along its first dimension "
                         f"(one per proposal), got shape {tuple(log_pi.shape)}")
    with torch.no_grad():
        total = torch.logsumexp(log_pi, dim=0).exp()
        if not torch.allclose(total, torch.ones_like(total), atol=1e-4):
            raise ValueError(f"pi must sum to 1 over its first dimension, got sums in "
                             f"[{total.min().item():.6g}, {total.max().item():.6g}]")
    log_pi = log_pi.reshape(*log_pi.shape, *([1] * (log_w.dim() - log_pi.dim())))
    return torch.logsumexp(log_w + log_pi, dim=0)


__all__ += ["bsvi"]


# --- Chapter 8 (notebooks/08_discrete_latents): the bidirectional Helmholtz machine's bound ---------

def bihm(log_w: torch.Tensor) -> torch.Tensor:
    """BiHM bound ``2 log (1/K) sum_k sqrt(w_k)``: (K, B) -> (B,).

    Bornschein et al. (2016) (the supplement of Hjelm et al. 2016, Eq. 3): with importance weights
    ``sqrt(p(x, h_k) / q(h_k | x))``, ``h_k ~ q(h | x)``, the average estimates
    ``p~*(x) = sum_h sqrt(p(x, h) q(h | x))``, and by Cauchy-Schwarz
    ``2 log p~*(x) <= log p(x)`` (equality iff q(h | x) = p(h | x)); the K-sample estimate is below
    ``2 log p~*(x)`` in expectation (Jensen) and rises to it as K grows. ``2 log p~*(x)`` is also a
    lower bound on the BiHM model's own ``log p*(x) = 2 log p~*(x) - log Z``, since ``Z <= 1``.
    `Chapter 8 <https://gapkit.github.io/gapkit/notebooks/08_discrete_latents.html>`_ explains it.
    """
    return 2 * log_mean_exp(0.5 * check_log_w(log_w), dim=0)


__all__ += ["bihm"]


# --- The one list of bounds by name --------------------------------------------------------------

BOUNDS = {"elbo": elbo, "iwae": iwae, "ciwae": ciwae, "bsvi": bsvi, "bihm": bihm}
"""Reductions over the sample axis, (K, ...) -> (...), by name. ``miwae`` is not one: it is
``iwae`` averaged over M groups (``gapkit.analysis.snr`` and the MIWAE objective form the groups)."""


def get(bound, **params) -> Callable:
    """A bound as a function ``log_w (K, ...) -> (...)``: a name in :data:`BOUNDS` or a callable,
    with ``params`` (e.g. ``beta`` for ``ciwae``) bound by ``functools.partial``. A named bound is
    tried once on a tiny input, so that a missing or bad parameter fails here, before any work."""
    if callable(bound):
        return functools.partial(bound, **params) if params else bound
    if not (isinstance(bound, str) and bound in BOUNDS):
        raise ValueError(f"unknown bound {bound!r}; valid: {', '.join(BOUNDS)} or a function "
                         "log_w (K, ...) -> (...)")
    fn = functools.partial(BOUNDS[bound], **params) if params else BOUNDS[bound]
    try:
        fn(torch.zeros(2, 1))
    except TypeError as e:
        raise ValueError(f"bound {bound!r} cannot be called as bound(log_w): {e}; give its "
                         "parameters, e.g. beta=0.5 for 'ciwae'") from None
    return fn


def name_of(bound) -> str:
    """A bound's name for labels: its key in :data:`BOUNDS`, else the function's ``__name__``."""
    fn = bound.func if isinstance(bound, functools.partial) else bound
    if isinstance(fn, str):
        return fn
    return next((k for k, v in BOUNDS.items() if v is fn), getattr(fn, "__name__", "bound"))
