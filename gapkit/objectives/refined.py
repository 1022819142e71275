"""Objectives that train with refined posteriors: GDIR / SVI training and buffered SVI.

For a minibatch x the encoder gives q_0 = q_phi(z|x); k refinement steps (:func:`gapkit.inference.refine.refine`,
model fixed, stop-gradient) give q_1..q_k. The encoder learns its own ELBO; the decoder learns from
the refined posterior:

=================  ===========================================================================
objective          decoder loss (minimized over theta)
=================  ===========================================================================
``GDIR``           -E_{q(z; sg(lambda_k))}[log p(x, z) - log q(z; lambda_k)], K samples
(`chapter 5 <https://gapkit.github.io/gapkit/notebooks/05_iterative_refinement.html>`_)
``SVI``            -log p(x, z_k) at the trajectory's last sample
(`chapter 6 <https://gapkit.github.io/gapkit/notebooks/06_bsvi.html>`_)
``BSVI``           -log sum_i pi_i p(x, z_i) / q_i(z_i) over the whole buffer
(`chapter 6 <https://gapkit.github.io/gapkit/notebooks/06_bsvi.html>`_)
``BSVIDS``         BSVI with a second, independent sample per step for the weights
``BSVISIR``        -log p(x, z_j), j ~ pi_j w_j / sum_i pi_i w_i (one resampled buffer entry)
=================  ===========================================================================

Hjelm et al. 2016 and Shu et al. 2019 (Section 2, Algorithm 1). Chapters 5 and 6
(``notebooks/05_iterative_refinement``, ``notebooks/06_bsvi``) explain them.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..bounds import bsvi, elbo
from ..inference.bsvi import BufferWeights
from ..inference.bsvi import buffer_trajectory
from ..inference.bsvi import sir_indices
from ..inference.bsvi import trajectory_log_weights
from ..checks import boolean, nonneg_int, positive_int
from ..estimators import log_weights, log_weights_from_noise
from ..inference.refine import check_svi_settings
from ..inference.refine import refine
from .base import Losses, Objective, StepTrace, register

__all__ = ["GDIR", "RefinedObjective", "SVI", "BSVI", "BSVIDS", "BSVISIR"]


@register
class GDIR(Objective):
    """Training with refinement (GDIR / SVI training; Hjelm et al. 2016, Shu et al. 2019 Section 2).

    For a minibatch x: the encoder gives lambda_0 = (mu_phi(x), sigma_phi(x)); ``steps`` refinement
    steps (:func:`gapkit.inference.refine.refine`, model fixed, no gradient through them) give lambda_k. Then

    * encoder loss  = -ELBO(x; q_phi(z|x))                         (phi learns its own ELBO)
    * decoder loss  = -E_{q(z; sg(lambda_k))}[log p_theta(x, z) - log q(z; lambda_k)]
      (theta learns from the refined posterior; sg = stop-gradient)

    both K-sample averages, returned as different losses for :func:`gapkit.train.train`.
    `Chapter 5 <https://gapkit.github.io/gapkit/notebooks/05_iterative_refinement.html>`_.
    """

    name = "gdir"

    def __init__(self, steps: int = 20, optimizer: str = "momentum", lr: float = 1.0, momentum: float = 0.5,
                 samples: int = 1, clip: float | None = 1.0, K: int = 1):
        nonneg_int("steps", steps)
        check_svi_settings(optimizer, lr, momentum, clip)
        positive_int("K", K)
        positive_int("samples", samples)
        self.steps, self.optimizer, self.lr, self.momentum = steps, optimizer, lr, momentum
        self.samples, self.clip, self.K = samples, clip, K

    def config(self):
        return {"name": self.name, "steps": self.steps, "optimizer": self.optimizer, "lr": self.lr,
                "momentum": self.momentum, "samples": self.samples, "clip": self.clip, "K": self.K}

    def __call__(self, model, x, generator=None) -> Losses:
        mu, std = model.encode(x)                                                   # (B, Z) each
        enc_bound = elbo(log_weights(model, x, self.K, q=(mu, std), generator=generator)).mean()
        traj = refine(model, x, self.steps, init=(mu.detach(), std.detach()), optimizer=self.optimizer,
                      lr=self.lr, momentum=self.momentum, samples=self.samples, clip=self.clip,
                      generator=generator, keep_samples=False)
        mu_k, std_k = traj.final                                                    # detached
        dec_bound = elbo(log_weights(model, x, self.K, q=(mu_k, std_k), generator=generator)).mean()
        return Losses(-enc_bound, -dec_bound, {"bound": enc_bound.detach(), "refined_bound": dec_bound.detach()})


class RefinedObjective(Objective, nn.Module):
    """Shared part of the buffered-SVI objectives: run the trajectory, train phi on q_0's ELBO,
    record the three bounds SVI-0, SVI-k and BSVI-k (and E_pi[i]/k) in ``trace``."""

    def __init__(self, steps: int, learn_pi: bool = False, optimizer: str = "momentum", lr: float = 1.0,
                 momentum: float = 0.5, clip: float | None = 1.0, record: bool = True):
        nn.Module.__init__(self)
        self.steps = nonneg_int("steps", steps)
        check_svi_settings(optimizer, lr, momentum, clip)
        boolean("learn_pi", learn_pi)
        boolean("record", record)
        self.svi = dict(optimizer=optimizer, lr=lr, momentum=momentum, clip=clip)
        self.learn_pi = bool(learn_pi)
        self.buffer = BufferWeights(steps) if self.learn_pi else None
        self.record = record
        self._trace = StepTrace()

    @property
    def trace(self) -> dict:
        """What was recorded at every training step, by key (lists of floats)."""
        return self._trace.as_dict()

    def get_extra_state(self) -> dict:
        """The trace travels in ``state_dict()``, so a resumed training run keeps it."""
        return {"trace": self.trace}

    def set_extra_state(self, state: dict) -> None:
        self._trace = StepTrace(state["trace"])

    def config(self):
        return {"name": self.name, "steps": self.steps, "learn_pi": self.learn_pi, **self.svi}

    def log_pi(self):
        return self.buffer.log_pi() if self.buffer is not None else None

    def _start(self, model, x, generator):
        """Trajectory, and the encoder's loss -ELBO(q_0) on the trajectory's own z_0."""
        mu0, std0 = model.encode(x)                                        # (B, Z), with grad wrt phi
        traj = buffer_trajectory(model, x, self.steps, init=(mu0, std0), generator=generator, **self.svi)
        eps0 = (traj.z[0] - traj.mu[0]) / traj.std[0]                       # (S, B, Z): z_0's noise
        enc_loss = -log_weights_from_noise(model, x, eps0, q=(mu0, std0)).mean()  # same z_0, reparameterized
        return traj, enc_loss

    def _metrics(self, traj_log_w):
        lw = traj_log_w.detach()                                           # (k+1, S, B), on the device
        m = {"svi0": lw[0].mean(), "svik": lw[-1].mean(), "bsvik": bsvi(lw).mean()}
        if self.buffer is not None:
            with torch.no_grad():
                pi = self.buffer()
                m["bsvik_pi"] = bsvi(lw, log_pi=self.log_pi().to(lw.dtype)).mean()
                k = len(pi) - 1
                m["pi_position"] = (pi * torch.arange(k + 1, dtype=pi.dtype, device=pi.device)).sum() / max(k, 1)
        return m

    def _log(self, metrics):
        if self.record:
            self._trace.add(**metrics)


@register
class SVI(RefinedObjective):
    """SVI training (Krishnan et al. 2018; Algorithm 1, line 14): the decoder maximizes
    ``log p_theta(x, z_k)`` at the last proposal's sample (``steps`` = k' SVI steps).

    `Chapter 6 <https://gapkit.github.io/gapkit/notebooks/06_bsvi.html>`_ explains it.
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


@register
class BSVI(RefinedObjective):
    """BSVI training (Algorithm 1, line 16): the decoder maximizes ``log sum_i pi_i w_i`` over
    the whole buffer, ``w_i = p_theta(x, z_i) / q_i(z_i)`` at the fixed trajectory. With
    ``learn_pi`` a global pi = softmax(a) is trained on the same bound (``Losses.own``).

    `Chapter 6 <https://gapkit.github.io/gapkit/notebooks/06_bsvi.html>`_ explains it.
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
        return Losses(encoder=enc, decoder=-bound, own=-bound if self.learn_pi else None,
                      metrics={**m, "bound": bound.detach()})


@register
class BSVIDS(BSVI):
    """BSVI with double sampling (Section 4.2): at every step a second sample z'_i ~ q_i, drawn
    independently of the trajectory's update sample, gives the weight w_i = p(x, z'_i)/q_i(z'_i).

    `Chapter 6 <https://gapkit.github.io/gapkit/notebooks/06_bsvi.html>`_ explains it.
    """

    name = "bsvi-ds"

    def _decoder_log_w(self, model, x, traj, generator):
        eps = torch.randn(traj.z.shape, dtype=traj.z.dtype, device=traj.z.device, generator=generator)
        return log_weights_from_noise(model, x, eps, q=(traj.mu[:, None], traj.std[:, None]))  # (k+1, S, B)


@register
class BSVISIR(RefinedObjective):
    """BSVI-SIR (Section 5): one sample z_j of the buffer, j ~ pi_j w_j / sum_i pi_i w_i, and the
    decoder maximizes ``log p_theta(x, z_j)``: an unbiased estimate of the BSVI gradient (Lemma 1)
    at the cost of SVI. With ``learn_pi`` pi is trained on the BSVI bound of the detached weights.

    `Chapter 6 <https://gapkit.github.io/gapkit/notebooks/06_bsvi.html>`_ explains it.
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
        return Losses(encoder=enc, decoder=dec, own=obj, metrics={**m, "bound": m["bsvik"]})
