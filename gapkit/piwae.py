"""The three fixes of Rainforth et al. (2018) as objectives for :func:`gapkit.train.train`.

All of them spend the same budget of ``T = M K`` samples per image, ``log w = log p(x,z) - log q(z|x)``:

* ``MIWAE(M, K)``: ``(1/M) sum_m log (1/K) sum_k w_{m,k}`` for encoder (phi) and decoder (theta);
  M = 1 is IWAE-K, K = 1 the ELBO averaged over M samples (:func:`gapkit.bounds.miwae`).
* ``CIWAE(beta, K)``: ``beta ELBO + (1 - beta) IWAE-K`` on the same K samples
  (:func:`gapkit.bounds.ciwae`), beta in [0, 1].
* ``LearnableCIWAE(beta0, K)``: CIWAE with ``beta = sigmoid(a)``, so beta stays inside (0, 1);
  ``a`` is an ``nn.Parameter`` that the training loop steps on the ``objective`` loss (the negative
  CIWAE bound). On every draw ``d CIWAE / d beta = ELBO - IWAE <= 0`` (Jensen), so maximizing the
  bound over beta can only push beta down toward IWAE; how fast is set by the optimizer.
* ``PIWAE(M, L, K)``: encoder on MIWAE(M, L), decoder on IWAE-K; with ``K = M L`` (the paper's
  PIWAE(8, 8): MIWAE(8, 8) for phi, IWAE-64 for theta) both use the same M L samples.

Chapter 4 (``notebooks/04_iwae_snr``) explains why: the signal-to-noise ratio of the IWAE
encoder gradient falls like 1/sqrt(K) while the decoder's grows like sqrt(K).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .bounds import ciwae, iwae, miwae
from .estimators import log_weights
from .objectives import OBJECTIVES, Losses, Objective, _check_K

__all__ = ["MIWAE", "CIWAE", "LearnableCIWAE", "PIWAE", "check_beta"]


def check_beta(beta) -> float:
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 <= float(beta) <= 1.0:
        raise ValueError(f"beta must be a number in [0, 1] (1: ELBO, 0: IWAE), got {beta!r}")
    return float(beta)


class MIWAE(Objective):
    """Maximize MIWAE(M, K) = (1/M) sum_m log (1/K) sum_k w_{m,k} for phi and theta (M K samples per image).

    Chapter 4 (``notebooks/04_iwae_snr``) explains it.
    """

    name = "miwae"

    def __init__(self, M: int = 8, K: int = 8):
        self.M, self.K = _check_K(M), _check_K(K)

    def config(self):
        return {"name": self.name, "M": self.M, "K": self.K}

    def __call__(self, model, x, generator=None) -> Losses:
        lw = log_weights(model, x, self.M * self.K, generator=generator)      # (M K, B)
        bound = miwae(lw.view(self.M, self.K, -1)).mean()                      # (M, K, B) -> ()
        return Losses(*[-bound] * 2, {"bound": bound.item()})  # one tensor for both sides: one backward pass


class CIWAE(Objective):
    """Maximize CIWAE(beta) = beta ELBO + (1 - beta) IWAE-K on the same K samples, for phi and theta.

    Chapter 4 (``notebooks/04_iwae_snr``) explains it.
    """

    name = "ciwae"

    def __init__(self, beta: float = 0.5, K: int = 64):
        self.beta, self.K = check_beta(beta), _check_K(K)

    def config(self):
        return {"name": self.name, "beta": self.beta, "K": self.K}

    def __call__(self, model, x, generator=None) -> Losses:
        bound = ciwae(log_weights(model, x, self.K, generator=generator), self.beta).mean()
        return Losses(*[-bound] * 2, {"bound": bound.item()})  # one tensor for both sides: one backward pass


class LearnableCIWAE(nn.Module, Objective):
    """CIWAE with a learnable ``beta = sigmoid(a)`` kept inside (0, 1).

    Phi and theta maximize the CIWAE bound; ``a`` gets the gradient of the ``objective`` loss
    (the same negative bound), for which ``d/d beta = ELBO - IWAE <= 0`` on every draw.
    ``self.trace`` records beta at every training step.

    Chapter 4 (``notebooks/04_iwae_snr``) explains it.
    """

    name = "ciwae-learned"

    def __init__(self, beta0: float = 0.5, K: int = 64):
        nn.Module.__init__(self)
        beta0 = check_beta(beta0)
        if not 0.0 < beta0 < 1.0:
            raise ValueError(f"beta0 must be strictly inside (0, 1) for beta = sigmoid(a), got {beta0!r}")
        self.beta0, self.K = beta0, _check_K(K)
        self.a = nn.Parameter(torch.tensor(math.log(beta0 / (1 - beta0))))
        self.trace: list[float] = []

    @property
    def beta(self) -> torch.Tensor:
        return torch.sigmoid(self.a)

    def config(self):
        return {"name": self.name, "beta0": self.beta0, "K": self.K}

    def __call__(self, model, x, generator=None) -> Losses:
        lw = log_weights(model, x, self.K, generator=generator)               # (K, B)
        beta = self.beta.to(lw.device)
        bound = ciwae(lw, beta).mean()
        b = float(beta.detach())
        self.trace.append(b)
        return Losses(-bound, -bound, {"bound": bound.item(), "beta": b}, objective=-bound)


class PIWAE(Objective):
    """Encoder on MIWAE(M, L), decoder on IWAE-K (K = M L by default: the same samples).

    Chapter 4 (``notebooks/04_iwae_snr``) explains it.
    """

    name = "piwae"

    def __init__(self, M: int = 8, L: int = 8, K: int | None = None):
        self.M, self.L = _check_K(M), _check_K(L)
        self.K = self.M * self.L if K is None else _check_K(K)

    def config(self):
        return {"name": self.name, "M": self.M, "L": self.L, "K": self.K}

    def __call__(self, model, x, generator=None) -> Losses:
        lw = log_weights(model, x, self.M * self.L, generator=generator)      # (M L, B)
        enc = miwae(lw.view(self.M, self.L, -1)).mean()
        if self.K == self.M * self.L:
            dec = iwae(lw).mean()
        else:
            dec = iwae(log_weights(model, x, self.K, generator=generator)).mean()
        return Losses(-enc, -dec, {"bound": dec.item(), "encoder_bound": enc.item()})


for _cls in (MIWAE, CIWAE, LearnableCIWAE, PIWAE):
    OBJECTIVES.setdefault(_cls.name, _cls)
