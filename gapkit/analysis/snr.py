"""Signal-to-noise ratio of gradient estimators, computed in batch over repetitions.

At fixed parameters, draw R independent gradient estimates ``g_1..g_R`` of a bound (each from
its own noise ``eps_r``) on a fixed minibatch ``x``. For every parameter p::

    SNR_p = |mean_r g_{r,p}| / std_r g_{r,p}      (Rainforth et al. 2018, eq. 5)

reported separately for the encoder (phi) and the decoder (theta). The directional SNR of the
whole gradient vector (Rainforth et al. 2018, Section 4) splits each estimate into the part along
the mean direction ``u = mean_r g_r / ||mean_r g_r||`` and the rest::

    DSNR = mean_r ||g_par,r|| / ||g_perp,r||,   g_par = (g . u) u,   g_perp = g - g_par.

Theory for MIWAE(M, K) (IWAE when M = 1): SNR_theta = O(sqrt(M K)), SNR_phi = O(sqrt(M / K)).

The bound is any reduction over the sample axis of :mod:`gapkit.bounds` (a name or a function
``log_w (K, ...) -> (...)``), applied to each of M groups of K samples and averaged over the groups:
``(1/M) sum_m bound(log w_{m,1..K})``, so ``"iwae"`` gives MIWAE(M, K) (IWAE-K when M = 1) and
``"ciwae"`` with ``beta`` gives CIWAE averaged over M groups.

The R estimates are *not* a Python loop of backward passes. For an MLP (every parameter in an
``nn.Linear``, as in :class:`gapkit.models.vae.VAE`) the repetitions are a batch dimension of one
ordinary forward and backward pass over noise (R_c, M, K, B, Z); each layer's per-repetition
weight gradient is ``d_r^T a_r`` (its output gradients and inputs for that repetition's rows),
one batched matrix product. Other models use ``torch.func.vmap(torch.func.grad(f))`` over the
noise. Repetitions are taken in chunks that bound memory; sums are accumulated in float64.
:func:`gradient_estimates_loop` is the plain loop, kept as the reference for tests and the benchmark.

`Chapter 4 <https://gapkit.github.io/gapkit/notebooks/04_iwae_snr.html>`_ explains it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import torch
from torch.func import functional_call, grad, vmap

from .. import smoke
from .. import bounds as _bounds
from ..checks import integer, positive_int
from ..estimators import log_weights_from_noise
from ..progress import tqdm

__all__ = ["SNRResult", "draw_noise", "gradient_estimates", "gradient_estimates_loop", "snr",
           "snr_from_estimates", "bound_from_noise", "group_bound", "noise_floor"]


def noise_floor(reps: int, q: float = 0.5) -> float:
    """The ``q``-quantile of the SNR that a parameter with a zero mean gradient measures from R
    repetitions (default: the median), ``Phi^-1((1 + q) / 2) / sqrt(R)``; the median is
    ``0.674 / sqrt(R)``.

    Derivation: with R independent estimates of mean ``m`` and standard deviation ``sigma``, the sample
    mean is ``m + sigma Z / sqrt(R)`` (Z ~ N(0, 1), central limit) and the sample standard deviation
    is ``sigma (1 + O(1/sqrt(R)))``, so the measured SNR is ``|s + Z / sqrt(R)|`` with the true SNR
    ``s = |m| / sigma`` (for Gaussian noise exactly ``|T_{R-1}| / sqrt(R)`` when ``m = 0``). For
    ``s = 0`` it is ``|Z| / sqrt(R)``: quantile ``q`` at ``Phi^-1((1 + q) / 2) / sqrt(R)``, mean
    ``sqrt(2 / (pi R))``, root mean square ``1 / sqrt(R)``. For ``s > 0``,
    ``E[measured^2] = s^2 + 1/R``: a parameter measured at ``c`` times the median floor has
    ``R s^2 ~ (0.674 c)^2 - 1``, and its SNR is overstated by about ``1 / (2 R s^2)`` (16% at
    ``c = 3``, 8% at ``c = 4``), so a median SNR near the floor cannot fall further and flattens a
    fitted slope.
    """
    integer("reps", reps, lo=2)
    if not 0 < q < 1:
        raise ValueError(f"q must be a quantile in (0, 1), got {q!r}")
    return NormalDist().inv_cdf((1 + q) / 2) / math.sqrt(reps)


def group_bound(bound, log_w: torch.Tensor) -> torch.Tensor:
    """``(1/M) sum_m bound(log w_m)`` for log-weights (..., M, K, B) -> (..., B): the bound of each
    group of K samples (the sample axis moved first), averaged over the M groups. A bound with a
    ``grouped`` form (IWAE's is :func:`gapkit.bounds.miwae`, over (M, K, ...)) computes it directly."""
    grouped = getattr(bound, "grouped", None)
    if grouped is not None:
        lead = log_w.dim() - 3
        return grouped(log_w.movedim(tuple(range(lead)), tuple(range(2, 2 + lead))))  # (M, K, ..., B)
    return bound(log_w.movedim(-2, 0)).mean(-2)


def bound_from_noise(model, x, eps, bound="iwae") -> torch.Tensor:
    """The minibatch-mean bound for given standard-normal noise ``eps`` (M, K, B, Z) -> scalar.

    :func:`gapkit.estimators.log_weights_from_noise` (M, K, B), then :func:`group_bound` and the
    mean over the B images.
    """
    return group_bound(_bounds.get(bound), log_weights_from_noise(model, x, eps)).mean()


class _Bound(torch.nn.Module):
    """Wraps a model so that ``torch.func.functional_call`` can call ``bound_from_noise``."""

    def __init__(self, model, x, bound):
        super().__init__()
        self.model, self.x, self.bound = model, x, bound

    def forward(self, eps):
        return bound_from_noise(self.model, self.x, eps, self.bound)


def _param_groups(model):
    enc = {id(p) for p in model.encoder_parameters()}
    dec = {id(p) for p in model.decoder_parameters()}
    names = [n for n, p in model.named_parameters() if id(p) in enc or id(p) in dec]
    groups = {n: ("phi" if id(p) in enc else "theta") for n, p in model.named_parameters() if n in names}
    return names, groups


def draw_noise(R: int, M: int, K: int, B: int, Z: int, generator: torch.Generator | None = None,
               device=None, dtype=torch.float32) -> torch.Tensor:
    """Standard-normal noise for R repetitions: (R, M, K, B, Z)."""
    return torch.randn((R, M, K, B, Z), generator=generator, device=device, dtype=dtype)


def _linear_layers(model):
    """The model's nn.Linear layers if they hold every phi and theta parameter, else None."""
    lins = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    held = {id(p) for m in lins for p in m.parameters()}
    want = model.encoder_parameters() + model.decoder_parameters()
    return lins if all(id(p) in held for p in want) else None


def _per_rep_bounds(model, x, eps, bound):
    """Bounds for every repetition, with the repetitions as a leading batch dimension: (R,)."""
    R = len(eps)
    mu, std = model.encode(x.expand(R, *x.shape))                   # (R, B, Z): one copy of x per rep
    lw = log_weights_from_noise(model, x, eps, q=(mu[:, None, None], std[:, None, None]))  # (R, M, K, B)
    return group_bound(bound, lw).mean(-1)                          # (R, B) -> (R,)


def _hooked_backward(model, x, eps, bound, lins):
    """One ordinary backward pass of the sum over repetitions of the bound, recording every call
    of the linear layers ``lins``: a list of ``(layer, a, d)`` with the layer's input ``a``
    (R, rows, in) and the gradient ``d`` (R, rows, out) of the summed bound with respect to its
    output. Each repetition's bound depends only on its own rows, so ``d`` holds every
    repetition's ``dL_r/dy`` at once."""
    calls = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: calls.append((mod, inp[0], out))) for m in lins]
    try:
        with torch.enable_grad():
            params = [p for m in lins for p in m.parameters()]
            req = [p.requires_grad for p in params]
            for p in params:
                p.requires_grad_(True)
            total = _per_rep_bounds(model, x, eps, bound).sum()
            deltas = torch.autograd.grad(total, [out for _, _, out in calls])
            for p, r in zip(params, req):
                p.requires_grad_(r)
    finally:
        for h in hooks:
            h.remove()
    R = len(eps)
    return [(mod, a.detach().reshape(R, -1, a.shape[-1]), d.reshape(R, -1, d.shape[-1]))
            for (mod, a, _), d in zip(calls, deltas)]


def _estimates_linear(model, x, eps, bound, lins):
    """Per-repetition gradients of an MLP model by one ordinary backward pass:
    ``dL_r/dW = sum_n (dL_r/dy_n)^T a_n`` and ``dL_r/db = sum_n dL_r/dy_n`` over repetition r's rows
    (a layer called more than once adds up its calls)."""
    grads = {}
    for mod, a, d in _hooked_backward(model, x, eps, bound, lins):
        gw = torch.bmm(d.transpose(1, 2), a)                        # (R, out, in)
        gb = d.sum(1)                                               # (R, out)
        for p, gp in ((mod.weight, gw), (mod.bias, gb)):
            if p is not None:
                grads[id(p)] = grads[id(p)] + gp if id(p) in grads else gp
    return grads


def _estimates_by_name(model, x, eps, bound):
    """Per-repetition gradients as ``{parameter name: (R, *shape)}`` (see :func:`gradient_estimates`)."""
    names, groups = _param_groups(model)
    named = dict(model.named_parameters())
    lins = _linear_layers(model)
    if lins is not None:
        gid = _estimates_linear(model, x, eps, bound, lins)
        g = {f"model.{n}": gid.get(id(named[n]), torch.zeros(len(eps), *named[n].shape, dtype=eps.dtype,
                                                             device=eps.device)) for n in names}
    else:
        wrapper = _Bound(model, x, bound)
        params = {f"model.{n}": named[n].detach() for n in names}
        buffers = {f"model.{n}": b for n, b in model.named_buffers()}

        def f(p, e):
            return functional_call(wrapper, {**p, **buffers}, (e,))

        g = vmap(grad(f), in_dims=(None, 0), randomness="error")(params, eps)   # name -> (R, *shape)
    return {n: g[f"model.{n}"].reshape(len(eps), -1) for n in names}, groups


def gradient_estimates(model, x, eps, bound="iwae") -> dict:
    """Per-repetition gradients of the bound (to *maximize*) for noise ``eps`` (R, M, K, B, Z).

    ``bound``: a name in :data:`gapkit.bounds.BOUNDS` or a function (see :func:`group_bound`).
    Returns ``{"phi": (R, P_phi), "theta": (R, P_theta)}``. For MLP models (every parameter in an
    ``nn.Linear``) one ordinary batched backward pass with the repetitions as a batch dimension;
    otherwise ``torch.func.vmap(torch.func.grad(...))`` over the repetitions.
    """
    g, groups = _estimates_by_name(model, x, eps, _bounds.get(bound))
    names = list(g)
    out = {}
    for side in ("phi", "theta"):
        parts = [g[n] for n in names if groups[n] == side]
        out[side] = torch.cat(parts, 1) if parts else eps.new_zeros(len(eps), 0)
    return out


def gradient_estimates_loop(model, x, eps, bound="iwae") -> dict:
    """The same as :func:`gradient_estimates` by a Python loop of R backward passes (the reference)."""
    names, groups = _param_groups(model)
    named = dict(model.named_parameters())
    bound = _bounds.get(bound)
    out = {"phi": [], "theta": []}
    for e in eps:                                                    # one backward pass per repetition
        params = [named[n] for n in names]
        gs = torch.autograd.grad(bound_from_noise(model, x, e, bound), params, allow_unused=True)
        for side in out:
            out[side].append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                                        for n, p, g in zip(names, params, gs) if groups[n] == side]))
    return {side: torch.stack(v) if v else eps.new_zeros(len(eps), 0) for side, v in out.items()}


@dataclass
class SNRResult:
    """Per-parameter SNR for phi and theta (NaN where a parameter's gradient is always 0), the
    directional SNR of each side and of the whole vector, and the number of repetitions."""

    phi: torch.Tensor
    theta: torch.Tensor
    dsnr: dict
    reps: int

    def summary(self) -> dict:
        """Median and quartiles of the per-parameter SNR for each side, plus the directional SNR."""
        out = {}
        for side in ("theta", "phi"):
            v = getattr(self, side)
            v = v[torch.isfinite(v)].double()
            q = torch.quantile(v, torch.tensor([0.25, 0.5, 0.75], dtype=v.dtype)).tolist() if len(v) else [math.nan] * 3
            out[side] = {"q25": q[0], "median": q[1], "q75": q[2], "n_params": int(len(v)),
                         "dsnr": float(self.dsnr[side])}
        out["dsnr_all"] = float(self.dsnr["all"])
        out["reps"] = self.reps
        out["floor"] = noise_floor(self.reps)  # the median SNR estimate of a parameter with zero mean gradient
        return out


def snr_from_estimates(g: dict) -> SNRResult:
    """SNR from stored estimates ``{"phi": (R, P), "theta": (R, P)}`` (used by tests and small models)."""
    groups = {"phi": "phi", "theta": "theta"}
    acc = _Acc(groups)
    acc.add(g)
    acc.project(g)
    return acc.result()


class _Acc:
    """Streaming statistics over repetitions, parameter tensor by parameter tensor (no copies of
    the (R, P) estimates), all in float64: per-parameter mean ``mu`` and centred sum of squares
    ``m2`` (merged chunk by chunk, see :meth:`add`), per-repetition squared norms for each side, and
    (second step) each repetition's component along the mean direction."""

    def __init__(self, groups: dict):
        self.groups, self.n = groups, 0
        self.mu, self.m2 = {}, {}
        self.norm2 = {"phi": [], "theta": []}
        self.par = {"phi": [], "theta": []}

    def add(self, g: dict):
        """Merge one chunk of R_c repetitions. Each parameter's chunk mean and centred sum of squares
        ``M2_c = sum_r (g_r - mean_c)^2`` are computed in float64 and merged by Chan et al.'s rule
        ``M2 = M2_a + M2_b + delta^2 n_a n_b / (n_a + n_b)``, ``delta = mean_b - mean_a``, so that a
        large SNR (mean^2 >> variance) loses no digits to ``sum g^2 - n mean^2``."""
        R = len(next(iter(g.values())))
        n, n2 = self.n, {side: torch.zeros(R, dtype=torch.float64) for side in self.norm2}
        for name, v in g.items():                                   # v: (R, P_name)
            v = v.double()
            m_c = v.mean(0)                                         # (P,)
            c = v - m_c
            m2_c = torch.einsum("rp,rp->p", c, c)                   # (P,) centred, float64
            if name in self.mu:
                delta = m_c - self.mu[name]
                self.mu[name] = self.mu[name] + delta * (R / (n + R))
                self.m2[name] = self.m2[name] + m2_c + delta ** 2 * (n * R / (n + R))
            else:
                self.mu[name], self.m2[name] = m_c, m2_c
            n2[self.groups[name]] += torch.einsum("rp,rp->r", v, v).cpu()
        for side in n2:
            self.norm2[side].append(n2[side])
        self.n += R

    def mean(self) -> dict:
        return dict(self.mu)

    def project(self, g: dict):
        if not hasattr(self, "_u"):
            m = self.mean()
            self._u = m
            self._mnorm = {side: math.sqrt(sum(float((m[n] ** 2).sum()) for n in m if self.groups[n] == side))
                           for side in self.par}
        R = len(next(iter(g.values())))
        par = {side: torch.zeros(R, dtype=torch.float64) for side in self.par}
        for name, v in g.items():
            par[self.groups[name]] += (v.double() @ self._u[name]).cpu()
        for side in par:
            self.par[side].append(par[side])

    def result(self) -> SNRResult:
        snr_ = {"phi": [], "theta": []}
        for name, mean in self.mu.items():
            var = self.m2[name] / max(self.n - 1, 1)
            std = var.sqrt()
            v = mean.abs() / std
            v[std <= 1e-6 * mean.abs() + 1e-30] = math.nan            # constant (e.g. unused) parameters
            snr_[self.groups[name]].append(v.float().cpu())
        dsnr = {}
        num = {side: torch.cat(self.par[side]) for side in self.par}   # g_r . m (unnormalized)
        n2 = {side: torch.cat(self.norm2[side]) for side in self.norm2}
        for side in ("phi", "theta", "all"):
            sides = ("phi", "theta") if side == "all" else (side,)
            dot = sum(num[s_] for s_ in sides)
            mn = math.sqrt(sum(self._mnorm[s_] ** 2 for s_ in sides))
            par = dot / max(mn, 1e-300)
            perp = (sum(n2[s_] for s_ in sides) - par ** 2).clamp_min(0).sqrt()
            dsnr[side] = float((par.abs() / perp).mean())
        out = {side: torch.cat(v) if v else torch.zeros(0) for side, v in snr_.items()}
        return SNRResult(out["phi"], out["theta"], dsnr, self.n)


@smoke.capped("SNR", x="x", K="K", steps_arg="reps", unit="image-sample-repetition", fit=False)
def snr(model, x, K: int = 1, M: int = 1, bound="iwae", reps: int = 1000, seed: int = 0,
        max_rows: int = 1 << 15, max_grad_floats: int = 1 << 25, max_keep_floats: int = 1 << 26,
        progress: bool = False, **bound_params) -> SNRResult:
    """Per-parameter and directional SNR of the gradient of a bound on the minibatch ``x`` (B, D).

    :param K: samples per bound estimate.
    :param M: number of averaged estimates (MIWAE(M, K) for ``bound="iwae"``).
    :param bound: a name in :data:`gapkit.bounds.BOUNDS` (default ``"iwae"``) or a function
        ``log_w (K, ...) -> (...)``; ``bound_params`` (e.g. ``beta=0.5`` for ``"ciwae"``) are passed to it.
    :param reps: R, the number of independent gradient estimates.
    :param seed: noise for chunk c comes from a generator seeded with ``seed + c``, so the second pass
        (projections for the directional SNR) sees the same draws as the first.
    :param max_rows: chunk size: at most this many (rep, sample, image) rows per forward pass.
    :param max_grad_floats: chunk size: at most this many per-repetition gradient floats computed
        at once.
    :param max_keep_floats: keep all estimates when they fit (one pass), else recompute them from
        the same seeds for the projections (two passes).

    `Chapter 4 <https://gapkit.github.io/gapkit/notebooks/04_iwae_snr.html>`_
    explains the SNR and plots it against K and M.
    """
    fn = _bounds.get(bound, **bound_params)
    positive_int("M", M)
    positive_int("K", K)
    integer("reps", reps, lo=2)
    model.check_x(x)
    B, Z = len(x), model.z_dim
    n_params = sum(p.numel() for p in model.encoder_parameters() + model.decoder_parameters())
    chunk = max(1, min(reps, max_rows // (M * K * B), max_grad_floats // n_params))
    starts = list(range(0, reps, chunk))
    dtype = next(model.parameters()).dtype

    def estimates(c, s0):
        g = torch.Generator(device=x.device).manual_seed(seed + c)
        eps = draw_noise(min(chunk, reps - s0), M, K, B, Z, g, device=x.device, dtype=dtype)
        return _estimates_by_name(model, x, eps, fn)[0]

    _, groups = _param_groups(model)
    acc = _Acc(groups)
    keep = chunk * len(starts) * n_params <= max_keep_floats        # hold every estimate: one pass
    held = []
    name = _bounds.name_of(fn)
    for c, s0 in enumerate(tqdm(starts, desc=f"SNR {name} M={M} K={K}", disable=not progress, leave=False)):
        ge = estimates(c, s0)
        acc.add(ge)
        if keep:
            held.append(ge)
    for c, s0 in enumerate(starts):                                 # projections on the mean direction
        acc.project(held[c] if keep else estimates(c, s0))
    return acc.result()
