"""Iterative refinement of a Gaussian posterior: SVI / GDIR steps on each data point's own q.

For a fixed model p(x, z) and every data point x_b, the local variational parameters
lambda_b = (mu_b, log sigma_b) of q(z; lambda_b) = N(mu_b, diag(sigma_b^2)) take k gradient steps
on that point's own ELBO (Hjelm et al. 2016, GDIR; Krishnan et al. / Kim et al., SVI; Shu et al.
2019, Section 2)::

    z_{i,s} = mu_i + sigma_i * eps_{i,s},   eps_{i,s} ~ N(0, I),  s = 1..S     (reparameterized)
    log w_{i,s} = log p(x, z_{i,s}) - log q(z_{i,s}; lambda_i)
    g_i = grad_lambda bound(log w_{i,1..S})                  (per point: the batch is *summed*)
    g_i <- g_i * min(1, c / ||g_i||)                          (clipping per data point)
    lambda_{i+1} = lambda_i + eta * update(g_i)               (SGD, momentum or Adam; ascent)

``bound`` is the ELBO ``(1/S) sum_s log w_{i,s}`` by default, or any bound of :mod:`gapkit.bounds`
by name or function (e.g. ``"iwae"``: refinement on each point's IWAE-S bound).
Because the objective is the *sum* over data points of their own ELBOs, the gradient for lambda_b
is exactly the gradient of x_b's ELBO, whatever the batch size (the original GDIR averaged over the
minibatch, which shrank every point's step by the batch size). All points move at once: one
forward/backward pass of the decoder per step for the whole batch. No gradient reaches the model's
parameters (only mu and log sigma are differentiated), and the returned :class:`Trajectory` is
detached.

Optimizers (per point; ``eta`` may be a (B,) tensor of per-point step sizes):

* ``sgd``:       lambda += eta g
* ``momentum``:  v = m v + g;  lambda += eta v     (PyTorch's convention; the BSVI paper's
  setting is eta = 1.0, m = 0.5, clipping at 1.0)
* ``adam``:      Adam's moment estimates with bias correction, betas (0.9, 0.999), eps 1e-8.

`Chapter 5 <https://gapkit.github.io/gapkit/notebooks/05_iterative_refinement.html>`_
explains refinement and the amortization gap;
`chapter 6 <https://gapkit.github.io/gapkit/notebooks/06_bsvi.html>`_ (BSVI) reuses the whole trajectory.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import smoke
from ..bounds import get as get_bound
from ..checks import nonneg_int, number, one_of, positive_int, reading_values
from ..estimators import log_weights_from_noise
from ..progress import tqdm

__all__ = ["refine", "Trajectory", "OPTIMIZERS", "check_svi_settings"]

OPTIMIZERS = ("sgd", "momentum", "adam")


@dataclass
class Trajectory:
    """The whole refinement path, detached. k = number of steps, S = samples per step.

    * ``mu``, ``std``: (k+1, B, Z), the parameters at steps 0..k (step 0 = the initial q);
    * ``z``: (k+1, S, B, Z), the samples drawn from q_i at step i (None if ``keep_samples=False``);
    * ``log_w``: (k+1, S, B), log p(x, z) - log q_i(z) for those samples under the q_i that drew them;
    * ``elbo``: (k+1, B), the mean over S of ``log_w`` (a noisy ELBO estimate at every step);
    * ``grad_norm``: (k, B), each point's gradient norm before clipping, at steps 0..k-1.

    `Chapter 5 <https://gapkit.github.io/gapkit/notebooks/05_iterative_refinement.html>`_ explains it.
    """

    mu: torch.Tensor
    std: torch.Tensor
    z: torch.Tensor | None
    log_w: torch.Tensor
    elbo: torch.Tensor
    grad_norm: torch.Tensor

    @property
    def steps(self) -> int:
        return self.mu.shape[0] - 1

    @property
    def final(self):
        """(mu, std) after the last step, each (B, Z)."""
        return self.mu[-1], self.std[-1]

    def at(self, i: int):
        """(mu, std) at step i, each (B, Z)."""
        return self.mu[i], self.std[i]


def _check_lr(lr, B, device, dtype):
    if not torch.is_tensor(lr):   # a number is checked on the host (no device read)
        number("lr", lr, 0.0, lo_open=True)
        return torch.full((B, 1), float(lr), dtype=dtype, device=device)
    lr_t = torch.as_tensor(lr, dtype=dtype, device=device)
    if lr_t.dim() == 0:
        lr_t = lr_t.expand(B)
    if lr_t.shape != (B,):
        raise ValueError(f"lr must be a positive number or a tensor of shape ({B},) (one step size per "
                         f"data point), got shape {tuple(lr_t.shape)}")
    if not bool((lr_t > 0).all()) or not bool(torch.isfinite(lr_t).all()):
        raise ValueError("lr must be > 0 and finite for every data point")
    return lr_t[:, None]  # (B, 1)


def check_svi_settings(optimizer: str, lr: float, momentum: float, clip) -> None:
    """The refiners' settings: a known optimizer, lr a finite number > 0, momentum in [0, 1), clip
    a finite number > 0 or None (``ValueError`` otherwise)."""
    one_of("optimizer", optimizer, OPTIMIZERS)
    number("lr", lr, 0.0, lo_open=True)
    number("momentum", momentum, 0.0, 1.0, hi_open=True)
    if clip is not None:
        number("clip", clip, 0.0, lo_open=True)


@smoke.capped("refinement", x="x", K="samples", steps_arg="steps", per_row=("init", "lr"), row_dims={"z": 2, "log_w": 2, None: 1})
def refine(model, x: torch.Tensor, steps: int = 20, init=None, optimizer: str = "momentum", lr=1.0,
           momentum: float = 0.5, samples: int = 1, clip: float | None = 1.0,
           generator: torch.Generator | None = None, seed: int = 0, keep_samples: bool = True,
           betas=(0.9, 0.999), eps: float = 1e-8, progress: bool = False, bound="elbo") -> Trajectory:
    """Refine every data point's Gaussian q by ``steps`` gradient steps on its own ELBO.

    Args:
        model: any gapkit model (``encode``, ``log_joint``, ``log_q``); it is not changed.
        x: (B, D) data.
        steps: k >= 0 refinement steps; the trajectory has k+1 entries (step 0 = ``init``).
        init: ``(mu, std)`` each (B, Z); default ``model.encode(x)``.
        optimizer: ``"sgd"``, ``"momentum"`` or ``"adam"`` (ascent on the ELBO).
        lr: step size eta, a number or a (B,) tensor of per-point step sizes.
        momentum: m for ``"momentum"`` (0 <= m < 1).
        samples: S Monte Carlo samples per step and point (the gradient uses their mean).
        clip: per-point gradient-norm clipping threshold over (mu, log sigma); None switches it off.
        generator / seed: the randomness (a generator seeded with ``seed`` when none is given).
        keep_samples: keep ``z`` (k+1, S, B, Z) in the trajectory (else ``z`` is None).
        bound: what each point's step ascends, a bound of :mod:`gapkit.bounds` by name or function
            of its S log-weights (S, B) -> (B,); default the ELBO (their mean).

    Returns:
        :class:`Trajectory` with ``mu``, ``std``, ``z``, ``log_w``, ``elbo``, ``grad_norm``.

    `Chapter 5 <https://gapkit.github.io/gapkit/notebooks/05_iterative_refinement.html>`_ explains it;
    `chapter 6 <https://gapkit.github.io/gapkit/notebooks/06_bsvi.html>`_ builds
    buffered SVI on its trajectory.
    """
    one_of("optimizer", optimizer, OPTIMIZERS)
    reduce = get_bound(bound)
    nonneg_int("steps", steps)
    positive_int("samples", samples)
    if clip is not None:
        number("clip (None: no clipping)", clip, 0.0, lo_open=True)
    number("momentum", momentum, 0.0, 1.0, hi_open=True)
    model.check_x(x)   # values not read inside gapkit.train (gapkit.checks.values_checked_by_caller)
    with torch.no_grad():
        mu0, std0 = model.encode(x) if init is None else init
    if mu0.shape != std0.shape or mu0.dim() != 2 or mu0.shape[0] != x.shape[0]:
        raise ValueError(f"init must be (mu, std), each of shape ({x.shape[0]}, Z); got "
                         f"{tuple(mu0.shape)} and {tuple(std0.shape)}")
    if reading_values() and not bool((std0 > 0).all()):
        raise ValueError("init std must be > 0")
    B, Z = mu0.shape
    dtype, device = mu0.dtype, mu0.device
    lr_t = _check_lr(lr, B, device, dtype)
    if generator is None:
        generator = torch.Generator(device=device).manual_seed(seed)

    mu = mu0.detach().clone()                                  # (B, Z)
    log_std = torch.log(std0.detach()).clone()                 # (B, Z)
    k, S = steps, samples
    out_mu = torch.empty(k + 1, B, Z, dtype=dtype, device=device)
    out_std = torch.empty_like(out_mu)
    out_z = torch.empty(k + 1, S, B, Z, dtype=dtype, device=device) if keep_samples else None
    out_lw = torch.empty(k + 1, S, B, dtype=dtype, device=device)
    out_gn = torch.empty(k, B, dtype=dtype, device=device)
    state = {}
    for i in tqdm(range(k + 1), desc="refine", disable=not progress, leave=False):
        out_mu[i], out_std[i] = mu, torch.exp(log_std)
        last = i == k
        with torch.enable_grad():
            m = mu.requires_grad_(not last)
            ls = log_std.requires_grad_(not last)
            sd = torch.exp(ls)
            eps_ = torch.randn((S, B, Z), dtype=dtype, device=device, generator=generator)
            log_w, z = log_weights_from_noise(model, x, eps_, q=(m, sd), return_z=True)  # (S, B), (S, B, Z)
            if not last:
                # sum over points of each point's S-sample bound: per-point gradients, no batch shrink
                g_mu, g_ls = torch.autograd.grad(reduce(log_w).sum(), (m, ls))  # (B, Z) each
        out_lw[i] = log_w.detach()
        if keep_samples:
            out_z[i] = z.detach()
        if last:
            break
        mu, log_std = mu.detach(), log_std.detach()
        g = torch.cat([g_mu, g_ls], dim=-1)                                     # (B, 2Z)
        gn = g.norm(dim=-1)                                                     # (B,)
        out_gn[i] = gn
        if clip is not None:
            g = g * (clip / gn.clamp(min=clip))[:, None]
        if optimizer == "sgd":
            d = g
        elif optimizer == "momentum":
            state["v"] = g if "v" not in state else momentum * state["v"] + g
            d = state["v"]
        else:  # adam
            b1, b2 = betas
            t = i + 1
            state["m"] = (1 - b1) * g if "m" not in state else b1 * state["m"] + (1 - b1) * g
            state["s"] = (1 - b2) * g * g if "s" not in state else b2 * state["s"] + (1 - b2) * g * g
            d = (state["m"] / (1 - b1 ** t)) / ((state["s"] / (1 - b2 ** t)).sqrt() + eps)
        step = lr_t * d                                                         # (B, 2Z)
        mu = mu + step[:, :Z]
        log_std = log_std + step[:, Z:]
    return Trajectory(out_mu, out_std, out_z, out_lw, out_lw.mean(1), out_gn)
