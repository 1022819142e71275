"""Buffered stochastic variational inference (BSVI; Shu, Bui, Whang & Ermon, AISTATS 2019).

SVI refines the encoder's q_0 = q_phi(z|x) by k gradient steps (:func:`gapkit.refine.refine`) and
keeps only the last proposal q_k. BSVI keeps the whole *buffer* of importance weights
``w_i = p(x, z_i) / q_i(z_i)``, ``z_i ~ q_i``, i = 0..k, and uses

    BSVI-k = log sum_{i=0}^k pi_i w_i   <= log p(x)   in expectation (Theorem 1, ``gapkit.bounds.bsvi``)

with buffer weights pi (uniform by default; or one global learnable pi = softmax(a), see
:class:`BufferWeights`). In expectation ``BSVI-k >= SVI-k = log w_k`` for the best pi, and in practice
``BSVI-k >= SVI-k >= SVI-0 = log w_0`` (the health check of Section 6.5).

Training (Algorithm 1): the trajectory is stop-gradient; the encoder phi is trained on its own
ELBO, ``log w(z_0; lambda_0)`` with ``z_0`` the trajectory's first (reparameterized) sample; the
decoder theta on one of

* :class:`SVI`:  ``log p_theta(x, z_k)`` at the last proposal's sample;
* :class:`BSVI`: ``log sum_i pi_i p_theta(x, z_i) / q_i(z_i)`` (all weights; gradient O(k));
* :class:`BSVISIR`: ``log p_theta(x, z_j)`` with j ~ r(j) = pi_j w_j / sum_i pi_i w_i
  (sampling-importance-resampling: an unbiased one-sample estimate of the BSVI gradient, Lemma 1,
  at the cost of SVI);
* :class:`BSVIDS`: double sampling: a second, fresh sample per step from q_i for the weights, so
  that the weights' samples are independent given the trajectory (Section 4.2).

All four return :class:`gapkit.objectives.Losses` for :func:`gapkit.train.train`; with
``learn_pi=True`` they are ``nn.Module`` s whose parameters (pi's logits) the loop trains on
``Losses.objective`` (the BSVI bound with the trajectory fixed). Each keeps, per minibatch, the
three bounds SVI-0, SVI-k and BSVI-k (and E_pi[i]/k) in ``objective.trace``.

Chapter 6 (``notebooks/06_bsvi``) explains all of it; chapter 5 explains the refinement.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import smoke
from .checks import nonneg_int, positive_int
from .bounds import bsvi
from .objectives import Losses, Objective
from .refine import check_svi_settings, refine

__all__ = ["BufferWeights", "buffer_trajectory", "trajectory_log_weights", "sir_indices", "optimize_pi",
           "bsvi_prefix", "mean_position", "refined_bounds", "SVI", "BSVI", "BSVISIR", "BSVIDS",
           "make_refined_objective", "REFINED_OBJECTIVES", "gaussian_kl_std_normal"]


def _check_steps(k, name="steps"):
    return nonneg_int(name, k)


class BufferWeights(nn.Module):
    """One global categorical pi over the k+1 proposals: ``pi = softmax(a)``, a in R^{k+1}.

    ``init="uniform"`` (a = 0, pi_i = 1/(k+1)) or ``"last"`` (nearly all mass on q_k, i.e. SVI-k).
    The BSVI bound is concave in pi (Section 4.1), and optimizing it guarantees BSVI-k >= SVI-k.

    Chapter 6 (``notebooks/06_bsvi``) explains it.
    """

    def __init__(self, steps: int, init: str = "uniform"):
        super().__init__()
        k = _check_steps(steps)
        if init not in ("uniform", "last"):
            raise ValueError(f"unknown init {init!r}; valid: 'uniform', 'last'")
        a = torch.zeros(k + 1)
        if init == "last":
            a[-1] = 10.0
        self.steps = k
        self.logits = nn.Parameter(a)

    def log_pi(self) -> torch.Tensor:
        """log pi, (k+1,)."""
        return F.log_softmax(self.logits, dim=0)

    def forward(self) -> torch.Tensor:
        """pi, (k+1,)."""
        return torch.softmax(self.logits, dim=0)

    def mean_position(self) -> float:
        """E_pi[i] / k in [0, 1]: 0 = all weight on q_0 (the encoder), 1 = all on q_k (Figure 6c)."""
        return mean_position(self.forward().detach())


def mean_position(pi: torch.Tensor) -> float:
    """E_pi[i] / k for buffer weights pi of shape (k+1,) (0.5 for uniform weights).

    Chapter 6 (``notebooks/06_bsvi``) explains it.
    """
    pi = torch.as_tensor(pi)
    k = pi.shape[0] - 1
    if k == 0:
        return 0.0
    return float((pi * torch.arange(k + 1, dtype=pi.dtype, device=pi.device)).sum() / k)


def buffer_trajectory(model, x: torch.Tensor, steps: int, init=None, optimizer: str = "momentum",
                      lr: float = 1.0, momentum: float = 0.5, clip: float | None = 1.0,
                      generator: torch.Generator | None = None, seed: int = 0):
    """The SVI trajectory of the BSVI paper (momentum SGD, lr 1.0, momentum 0.5, clip 1.0).

    Runs :func:`gapkit.refine.refine` from ``init`` (default: the encoder's detached q_0) with one
    sample per step: returns the :class:`gapkit.refine.Trajectory` (all tensors detached), with
    ``log_w`` of shape (k+1, 1, B).

    Chapter 6 (``notebooks/06_bsvi``) explains it.
    """
    _check_steps(steps)
    if init is None:
        with torch.no_grad():
            init = model.encode(x)
    init = (init[0].detach(), init[1].detach())
    return refine(model, x, steps=steps, init=init, optimizer=optimizer, lr=lr, momentum=momentum,
                  samples=1, clip=clip, generator=generator, seed=seed, keep_samples=True)


def trajectory_log_weights(model, x: torch.Tensor, z: torch.Tensor, mu: torch.Tensor,
                           std: torch.Tensor) -> torch.Tensor:
    """``log p_theta(x, z_i) - log q_i(z_i)`` with gradient w.r.t. theta only: (k+1, S, B).

    z: (k+1, S, B, Z) (detached samples), mu/std: (k+1, B, Z) (the detached proposals q_i).
    """
    z, mu, std = z.detach(), mu.detach(), std.detach()
    with torch.no_grad():
        log_q = model.log_q(z, mu[:, None], std[:, None])       # (k+1, S, B)
    return model.log_joint(x, z) - log_q                       # (k+1, S, B)


def sir_indices(log_w: torch.Tensor, pi=None, log_pi=None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Sampling-importance-resampling: one index j per column with P(j) = pi_j w_j / sum_i pi_i w_i.

    log_w: (k+1, ...) (the proposal dimension first); returns a long tensor of shape (...).
    ``pi`` / ``log_pi`` as in :func:`gapkit.bounds.bsvi` (uniform by default).
    """
    if log_w.dim() < 1:
        raise ValueError(f"log_w must have the proposal dimension first, got shape {tuple(log_w.shape)}")
    k1 = log_w.shape[0]
    if log_pi is None:
        log_pi = (torch.zeros(k1, dtype=log_w.dtype, device=log_w.device) if pi is None
                  else torch.log(torch.as_tensor(pi, dtype=log_w.dtype, device=log_w.device)))
    if log_pi.shape[0] != k1:
        raise ValueError(f"pi must have k+1 = {k1} entries, got shape {tuple(log_pi.shape)}")
    log_pi = log_pi.reshape(*log_pi.shape, *([1] * (log_w.dim() - log_pi.dim())))
    logits = (log_w + log_pi).detach()                                  # (k+1, ...)
    flat = logits.reshape(k1, -1).T                                     # (N, k+1)
    probs = torch.softmax(flat, dim=-1)
    idx = torch.multinomial(probs, 1, generator=generator)[:, 0]        # (N,)
    return idx.reshape(log_w.shape[1:])


@smoke.capped("BSVI pi optimization", x="log_w", x_dim=1, steps_arg="iters", unit="image-iteration", fit=False)
def optimize_pi(log_w: torch.Tensor, iters: int = 500, tol: float = 1e-10) -> torch.Tensor:
    """The buffer weights that maximize the mean BSVI bound over a set of trajectories.

    log_w: (k+1, N) (or (k+1, ...), flattened). Maximizes the concave
    ``(1/N) sum_n log sum_i pi_i w_{i,n}`` over the simplex by the EM fixed point
    ``pi_i <- (1/N) sum_n pi_i w_{i,n} / sum_j pi_j w_{j,n}`` (each step increases the objective;
    it is mixture-weight maximum likelihood with fixed components). Returns pi, (k+1,).

    Chapter 6 (``notebooks/06_bsvi``) explains it.
    """
    lw = log_w.detach().reshape(log_w.shape[0], -1).double()
    k1 = lw.shape[0]
    log_pi = torch.full((k1,), -math.log(k1), dtype=torch.float64, device=lw.device)
    for _ in range(iters):
        r = torch.softmax(lw + log_pi[:, None], dim=0)          # (k+1, N) responsibilities
        new = torch.log(r.mean(1).clamp_min(1e-300))
        done = (new.exp() - log_pi.exp()).abs().max() < tol
        log_pi = new
        if done:
            break
    return log_pi.exp().to(log_w.dtype)


def bsvi_prefix(log_w: torch.Tensor) -> torch.Tensor:
    """Uniform-weight BSVI-j bound for every prefix j = 0..k: (k+1, ...) -> (k+1, ...).

    ``out[j] = log (1/(j+1)) sum_{i<=j} w_i`` (``out[0]`` = SVI-0, ``out[k]`` = BSVI-k).

    Chapter 6 (``notebooks/06_bsvi``) explains it.
    """
    j = torch.arange(1, log_w.shape[0] + 1, dtype=log_w.dtype, device=log_w.device)
    return torch.logcumsumexp(log_w, dim=0) - torch.log(j).reshape(-1, *([1] * (log_w.dim() - 1)))


def gaussian_kl_std_normal(mu: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag std^2) || N(0, I)) = 1/2 sum_d (mu^2 + std^2 - 1 - 2 log std): (..., Z) -> (...)."""
    return 0.5 * (mu ** 2 + std ** 2 - 1.0 - 2.0 * torch.log(std)).sum(-1)


@smoke.capped("BSVI evaluation", x="x", steps_arg="steps", row_dims={"log_w": 1, None: 0})
def refined_bounds(model, x: torch.Tensor, steps: int, batch_size: int = 500, recon_samples: int = 10,
                   generator: torch.Generator | None = None, seed: int = 0, progress: bool = False, **svi):
    """Evaluate a trained model with a k-step SVI trajectory per data point, in batches.

    Returns a dict of tensors (on the CPU):

    * ``log_w``: (k+1, N), the trajectory's log-weights (``bsvi_prefix`` / ``optimize_pi`` use them);
    * ``bsvi``: (N,), the uniform BSVI-k bound (Appendix C: BSVI-500 estimates log p(x));
    * ``kl_star``: (N,), KL(q_k || p(z)) in closed form; ``reconstruction_star``: (N,),
      ``-E_{q_k} log p(x|z)`` from ``recon_samples`` samples; ``elbo_star = -(reconstruction_star
      + kl_star)`` is the SVI-k ELBO of the final proposal (Appendix B's ELBO*, KL*, Reconstruction*).

    ``svi`` are :func:`buffer_trajectory`'s settings (optimizer, lr, momentum, clip).

    Chapter 6 (``notebooks/06_bsvi``) explains it.
    """
    _check_steps(steps)
    model.check_x(x)
    positive_int("recon_samples", recon_samples)
    if generator is None:
        generator = torch.Generator(device=x.device).manual_seed(seed)
    from .progress import tqdm
    parts = {"log_w": [], "kl_star": [], "reconstruction_star": []}
    for s in tqdm(range(0, len(x), batch_size), desc=f"BSVI-{steps}", disable=not progress, leave=False):
        xb = x[s:s + batch_size]
        traj = buffer_trajectory(model, xb, steps, generator=generator, **svi)
        mu_k, std_k = traj.final
        with torch.no_grad():
            eps = torch.randn((recon_samples, *mu_k.shape), dtype=mu_k.dtype, device=mu_k.device,
                              generator=generator)
            recon = -model.log_lik(xb, mu_k + std_k * eps).mean(0)               # (b,)
            parts["log_w"].append(traj.log_w[:, 0].cpu())                        # (k+1, b)
            parts["kl_star"].append(gaussian_kl_std_normal(mu_k, std_k).cpu())
            parts["reconstruction_star"].append(recon.cpu())
    out = {"log_w": torch.cat(parts["log_w"], 1), "kl_star": torch.cat(parts["kl_star"]),
           "reconstruction_star": torch.cat(parts["reconstruction_star"])}
    out["bsvi"] = bsvi(out["log_w"])
    out["elbo_star"] = -(out["reconstruction_star"] + out["kl_star"])
    return out


# ---------------------------------------------------------------------------------------------
# Objectives for gapkit.train.train


class _Refined(Objective, nn.Module):
    """Shared part: run the trajectory, train phi on q_0's ELBO, record the three bounds."""

    name = "refined"

    def __init__(self, steps: int, learn_pi: bool = False, optimizer: str = "momentum", lr: float = 1.0,
                 momentum: float = 0.5, clip: float | None = 1.0, record: bool = True):
        nn.Module.__init__(self)
        self.steps = _check_steps(steps)
        check_svi_settings(optimizer, lr, momentum, clip)
        for name, v in (("learn_pi", learn_pi), ("record", record)):
            if not isinstance(v, bool):
                raise ValueError(f"{name} must be True or False, got {v!r}")
        self.svi = dict(optimizer=optimizer, lr=lr, momentum=momentum, clip=clip)
        self.learn_pi = bool(learn_pi)
        self.buffer = BufferWeights(steps) if self.learn_pi else None
        self.record = record
        self.trace: dict = {}

    def config(self):
        return {"name": self.name, "steps": self.steps, "learn_pi": self.learn_pi, **self.svi}

    def log_pi(self):
        return self.buffer.log_pi() if self.buffer is not None else None

    def _start(self, model, x, generator):
        """Trajectory, and the encoder's loss -ELBO(q_0) on the trajectory's own z_0."""
        mu0, std0 = model.encode(x)                                        # (B, Z), with grad wrt phi
        traj = buffer_trajectory(model, x, self.steps, init=(mu0, std0), generator=generator, **self.svi)
        eps0 = (traj.z[0] - traj.mu[0]) / traj.std[0]                       # (S, B, Z): z_0's noise
        z0 = mu0 + std0 * eps0                                             # same z_0, reparameterized
        enc_loss = -(model.log_joint(x, z0) - model.log_q(z0, mu0, std0)).mean()
        return traj, enc_loss

    def _metrics(self, traj_log_w):
        lw = traj_log_w.detach()                                           # (k+1, S, B)
        m = {"svi0": lw[0].mean().item(), "svik": lw[-1].mean().item(), "bsvik": bsvi(lw).mean().item()}
        if self.buffer is not None:
            with torch.no_grad():
                m["bsvik_pi"] = bsvi(lw, log_pi=self.log_pi().to(lw.dtype)).mean().item()
            m["pi_position"] = self.buffer.mean_position()
        return m

    def _log(self, metrics):
        if self.record:
            for key, v in metrics.items():
                self.trace.setdefault(key, []).append(v)


class SVI(_Refined):
    """SVI training (Krishnan et al. 2018; Algorithm 1, line 14): the decoder maximizes
    ``log p_theta(x, z_k)`` at the last proposal's sample (``steps`` = k' SVI steps).

    Chapter 6 (``notebooks/06_bsvi``) explains it.
    """

    name = "svi"

    def __init__(self, steps: int = 10, **kw):
        kw.pop("learn_pi", None)
        super().__init__(steps, learn_pi=False, **kw)

    def __call__(self, model, x, generator=None) -> Losses:
        traj, enc = self._start(model, x, generator)
        zk = traj.z[-1]                                                    # (S, B, Z)
        dec = -model.log_joint(x, zk).mean()
        m = self._metrics(traj.log_w)
        self._log(m)
        return Losses(encoder=enc, decoder=dec, metrics={**m, "bound": m["svik"]})


class BSVI(_Refined):
    """BSVI training (Algorithm 1, line 16): the decoder maximizes ``log sum_i pi_i w_i`` over
    the whole buffer, ``w_i = p_theta(x, z_i) / q_i(z_i)`` at the fixed trajectory. With
    ``learn_pi`` a global pi = softmax(a) is trained on the same bound (``Losses.objective``).

    Chapter 6 (``notebooks/06_bsvi``) explains it.
    """

    name = "bsvi"

    def _decoder_log_w(self, model, x, traj, generator):
        return trajectory_log_weights(model, x, traj.z, traj.mu, traj.std)        # (k+1, S, B)

    def __call__(self, model, x, generator=None) -> Losses:
        traj, enc = self._start(model, x, generator)
        lw = self._decoder_log_w(model, x, traj, generator)                      # (k+1, S, B)
        log_pi = self.log_pi()
        bound = bsvi(lw, log_pi=None if log_pi is None else log_pi.to(lw.dtype)).mean()
        m = self._metrics(traj.log_w)
        self._log(m)
        return Losses(encoder=enc, decoder=-bound, objective=-bound if self.learn_pi else None,
                      metrics={**m, "bound": bound.item()})


class BSVIDS(BSVI):
    """BSVI with double sampling (Section 4.2): at every step a second sample z'_i ~ q_i, drawn
    independently of the trajectory's update sample, gives the weight w_i = p(x, z'_i)/q_i(z'_i).

    Chapter 6 (``notebooks/06_bsvi``) explains it.
    """

    name = "bsvi-ds"

    def _decoder_log_w(self, model, x, traj, generator):
        eps = torch.randn(traj.z.shape, dtype=traj.z.dtype, device=traj.z.device, generator=generator)
        z2 = traj.mu[:, None] + traj.std[:, None] * eps                             # (k+1, S, B, Z)
        return trajectory_log_weights(model, x, z2, traj.mu, traj.std)


class BSVISIR(_Refined):
    """BSVI-SIR (Section 5): one sample z_j of the buffer, j ~ pi_j w_j / sum_i pi_i w_i, and the
    decoder maximizes ``log p_theta(x, z_j)``: an unbiased estimate of the BSVI gradient (Lemma 1)
    at the cost of SVI. With ``learn_pi`` pi is trained on the BSVI bound of the detached weights.

    Chapter 6 (``notebooks/06_bsvi``) explains it.
    """

    name = "bsvi-sir"

    def __call__(self, model, x, generator=None) -> Losses:
        traj, enc = self._start(model, x, generator)
        log_pi = self.log_pi()
        lp = None if log_pi is None else log_pi.detach().to(traj.log_w.dtype)
        j = sir_indices(traj.log_w, log_pi=lp, generator=generator)               # (S, B)
        idx = j[None, :, :, None].expand(1, *traj.z.shape[1:])                     # (1, S, B, Z)
        z = torch.gather(traj.z, 0, idx)[0]                                        # (S, B, Z)
        dec = -model.log_joint(x, z).mean()
        obj = None
        if self.learn_pi:
            obj = -bsvi(traj.log_w, log_pi=log_pi.to(traj.log_w.dtype)).mean()
        m = self._metrics(traj.log_w)
        self._log(m)
        return Losses(encoder=enc, decoder=dec, objective=obj, metrics={**m, "bound": m["bsvik"]})


REFINED_OBJECTIVES = {"svi": SVI, "bsvi": BSVI, "bsvi-ds": BSVIDS, "bsvi-sir": BSVISIR}


def make_refined_objective(name: str, **kw) -> _Refined:
    """``"svi"``, ``"bsvi"``, ``"bsvi-ds"`` or ``"bsvi-sir"`` with ``steps``, ``learn_pi``, SVI settings."""
    if name not in REFINED_OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; valid: {', '.join(REFINED_OBJECTIVES)}")
    return REFINED_OBJECTIVES[name](**kw)
