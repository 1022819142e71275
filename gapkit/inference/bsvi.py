"""Buffered stochastic variational inference (BSVI; Shu, Bui, Whang & Ermon, AISTATS 2019).

SVI refines the encoder's q_0 = q_phi(z|x) by k gradient steps (:func:`gapkit.inference.refine.refine`) and
keeps only the last proposal q_k. BSVI keeps the whole *buffer* of importance weights
``w_i = p(x, z_i) / q_i(z_i)``, ``z_i ~ q_i``, i = 0..k, and uses

    BSVI-k = log sum_{i=0}^k pi_i w_i   <= log p(x)   in expectation (Theorem 1, ``gapkit.bounds.bsvi``)

with buffer weights pi (uniform by default; or one global learnable pi = softmax(a), see
:class:`BufferWeights`). In expectation ``BSVI-k >= SVI-k = log w_k`` for the best pi, and in practice
``BSVI-k >= SVI-k >= SVI-0 = log w_0`` (the health check of Section 6.5).

Training (Algorithm 1): the trajectory is stop-gradient; the encoder phi is trained on its own
ELBO, ``log w(z_0; lambda_0)`` with ``z_0`` the trajectory's first (reparameterized) sample; the
decoder theta on one of

* :class:`gapkit.objectives.refined.SVI`:  ``log p_theta(x, z_k)`` at the last proposal's sample;
* :class:`gapkit.objectives.refined.BSVI`: ``log sum_i pi_i p_theta(x, z_i) / q_i(z_i)`` (all weights; gradient O(k));
* :class:`gapkit.objectives.refined.BSVISIR`: ``log p_theta(x, z_j)`` with j ~ r(j) = pi_j w_j / sum_i pi_i w_i
  (sampling-importance-resampling: an unbiased one-sample estimate of the BSVI gradient, Lemma 1,
  at the cost of SVI);
* :class:`gapkit.objectives.refined.BSVIDS`: double sampling: a second, fresh sample per step from q_i for the weights, so
  that the weights' samples are independent given the trajectory (Section 4.2).

The four objectives live in :mod:`gapkit.objectives.refined`; they return
:class:`gapkit.objectives.base.Losses` for :func:`gapkit.train.train`; with
``learn_pi=True`` they are ``nn.Module`` s whose parameters (pi's logits) the loop trains on
``Losses.own`` (the BSVI bound with the trajectory fixed). Each keeps, per minibatch, the
three bounds SVI-0, SVI-k and BSVI-k (and E_pi[i]/k) in ``objective.trace``.

`Chapter 6 <https://gapkit.github.io/gapkit/notebooks/06_bsvi.html>`_ explains all of it;
`chapter 5 <https://gapkit.github.io/gapkit/notebooks/05_iterative_refinement.html>`_ explains the refinement.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import smoke
from ..bounds import bsvi
from ..checks import nonneg_int, one_of, positive_int
from ..likelihoods import gaussian_kl
from .refine import refine

__all__ = ["BufferWeights", "buffer_trajectory", "trajectory_log_weights", "sir_indices", "optimize_pi",
           "bsvi_prefix", "mean_position", "refined_bounds"]


class BufferWeights(nn.Module):
    """One global categorical pi over the k+1 proposals: ``pi = softmax(a)``, a in R^{k+1}.

    ``init="uniform"`` (a = 0, pi_i = 1/(k+1)) or ``"last"`` (nearly all mass on q_k, i.e. SVI-k).
    The BSVI bound is concave in pi (Section 4.1), and optimizing it guarantees BSVI-k >= SVI-k.

    `Chapter 6 <https://gapkit.github.io/gapkit/notebooks/06_bsvi.html>`_ explains it.
    """

    def __init__(self, steps: int, init: str = "uniform"):
        super().__init__()
        k = nonneg_int("steps", steps)
        one_of("init", init, ("uniform", "last"))
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

    `Chapter 6 <https://gapkit.github.io/gapkit/notebooks/06_bsvi.html>`_ explains it.
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

    Runs :func:`gapkit.inference.refine.refine` from ``init`` (default: the encoder's detached q_0) with one
    sample per step: returns the :class:`gapkit.inference.refine.Trajectory` (all tensors detached), with
    ``log_w`` of shape (k+1, 1, B).

    `Chapter 6 <https://gapkit.github.io/gapkit/notebooks/06_bsvi.html>`_ explains it.
    """
    nonneg_int("steps", steps)
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

    `Chapter 6 <https://gapkit.github.io/gapkit/notebooks/06_bsvi.html>`_ explains it.
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

    `Chapter 6 <https://gapkit.github.io/gapkit/notebooks/06_bsvi.html>`_ explains it.
    """
    j = torch.arange(1, log_w.shape[0] + 1, dtype=log_w.dtype, device=log_w.device)
    return torch.logcumsumexp(log_w, dim=0) - torch.log(j).reshape(-1, *([1] * (log_w.dim() - 1)))


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

    `Chapter 6 <https://gapkit.github.io/gapkit/notebooks/06_bsvi.html>`_ explains it.
    """
    nonneg_int("steps", steps)
    model.check_x(x)
    positive_int("recon_samples", recon_samples)
    if generator is None:
        generator = torch.Generator(device=x.device).manual_seed(seed)
    from ..progress import tqdm
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
            parts["kl_star"].append(gaussian_kl(mu_k, std_k).cpu())
            parts["reconstruction_star"].append(recon.cpu())
    out = {"log_w": torch.cat(parts["log_w"], 1), "kl_star": torch.cat(parts["kl_star"]),
           "reconstruction_star": torch.cat(parts["reconstruction_star"])}
    out["bsvi"] = bsvi(out["log_w"])
    out["elbo_star"] = -(out["reconstruction_star"] + out["kl_star"])
    return out
