"""The three fixes of Rainforth et al. (2018) as objectives for :func:`gapkit.train.train`.

Notation (the paper's): **K is always the number of importance samples inside one bound**, M the
number of such bounds averaged. With ``log w = log p(x,z) - log q(z|x)``:

* ``MIWAE(M, K)``: ``(1/M) sum_m log (1/K) sum_k w_{m,k}`` for encoder (phi) and decoder (theta);
  M = 1 is IWAE-K, K = 1 the ELBO averaged over M samples (:func:`gapkit.bounds.miwae`); M K samples.
* ``CIWAE(beta, K)``: ``beta ELBO + (1 - beta) IWAE-K`` on the same K samples
  (:func:`gapkit.bounds.ciwae`), beta in [0, 1].
* ``LearnableCIWAE(beta0, K)``: CIWAE with ``beta = sigmoid(a)``, so beta stays inside (0, 1);
  ``a`` is an ``nn.Parameter`` that the training loop steps on the ``objective`` loss (the negative
  CIWAE bound). On every draw ``d CIWAE / d beta = ELBO - IWAE <= 0`` (Jensen), so maximizing the
  bound over beta can only push beta down toward IWAE; how fast is set by the optimizer.
* ``PIWAE(M, K)``: encoder on MIWAE(M, K), decoder on IWAE with ``decoder_K`` samples, by default
  M K, the same samples (the paper's PIWAE(8, 8): MIWAE(8, 8) for phi, IWAE-64 for theta).

`Chapter 4 <https://gapkit.github.io/gapkit/notebooks/04_iwae_snr.html>`_
explains why: the signal-to-noise ratio of the IWAE
encoder gradient falls like 1/sqrt(K) while the decoder's grows like sqrt(K).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..bounds import ciwae, iwae, miwae
from ..checks import number, positive_int
from ..estimators import log_weights
from .base import Losses, Objective, StepTrace, register
from .bounds_based import BoundObjective

__all__ = ["MIWAE", "CIWAE", "LearnableCIWAE", "PIWAE"]


def _beta(name, beta) -> float:
    return number(f"{name} (1: ELBO, 0: IWAE)", beta, 0, 1)


@register
class MIWAE(Objective):
    """Maximize MIWAE(M, K) = (1/M) sum_m log (1/K) sum_k w_{m,k} for phi and theta (M K samples per image).

    `Chapter 4 <https://gapkit.github.io/gapkit/notebooks/04_iwae_snr.html>`_ explains it.
    """

    name = "miwae"

    def __init__(self, M: int = 8, K: int = 8):
        self.M, self.K = positive_int("M", M), positive_int("K", K)

    def config(self):
        return {"name": self.name, "M": self.M, "K": self.K}

    def __call__(self, model, x, generator=None) -> Losses:
        lw = log_weights(model, x, self.M * self.K, generator=generator)      # (M K, B)
        bound = miwae(lw.view(self.M, self.K, -1)).mean()                      # (M, K, B) -> ()
        return Losses(*[-bound] * 2, {"bound": bound.detach()})  # one tensor for both sides: one backward pass


@register
class CIWAE(BoundObjective):
    """Maximize CIWAE(beta) = beta ELBO + (1 - beta) IWAE-K on the same K samples, for phi and theta
    (:func:`gapkit.bounds.ciwae` through :class:`~gapkit.objectives.bounds_based.BoundObjective`).

    `Chapter 4 <https://gapkit.github.io/gapkit/notebooks/04_iwae_snr.html>`_ explains it.
    """

    name = "ciwae"

    def __init__(self, beta: float = 0.5, K: int = 64):
        self.beta = _beta("beta", beta)
        super().__init__(ciwae, K, beta=self.beta)

    def config(self):
        return {"name": self.name, "beta": self.beta, "K": self.K}


@register
class LearnableCIWAE(nn.Module, Objective):
    """CIWAE with a learnable ``beta = sigmoid(a)`` kept inside (0, 1).

    Phi and theta maximize the CIWAE bound; ``a`` gets the gradient of the ``own`` loss
    (the same negative bound), for which ``d/d beta = ELBO - IWAE <= 0`` on every draw.
    ``self.trace`` records beta at every training step.

    `Chapter 4 <https://gapkit.github.io/gapkit/notebooks/04_iwae_snr.html>`_ explains it.
    """

    name = "ciwae-learned"

    def __init__(self, beta0: float = 0.5, K: int = 64):
        nn.Module.__init__(self)
        beta0 = number("beta0 (the initial beta = sigmoid(a))", beta0, 0, 1, lo_open=True, hi_open=True)
        self.beta0, self.K = beta0, positive_int("K", K)
        self.a = nn.Parameter(torch.tensor(math.log(beta0 / (1 - beta0))))
        self._trace = StepTrace()

    @property
    def beta(self) -> torch.Tensor:
        return torch.sigmoid(self.a)

    def config(self):
        return {"name": self.name, "beta0": self.beta0, "K": self.K}

    @property
    def trace(self) -> list:
        """beta at every training step (floats)."""
        return self._trace.as_dict().get("beta", [])

    def get_extra_state(self) -> dict:
        """The trace travels with ``a`` in ``state_dict()``, so a resumed training run keeps it."""
        return {"trace": self.trace}

    def set_extra_state(self, state: dict) -> None:
        self._trace = StepTrace({"beta": state["trace"]})

    def __call__(self, model, x, generator=None) -> Losses:
        lw = log_weights(model, x, self.K, generator=generator)               # (K, B)
        beta = self.beta.to(lw.device)
        bound = ciwae(lw, beta).mean()
        b = beta.detach()
        self._trace.add(beta=b)
        return Losses(*[-bound] * 2, {"bound": bound.detach(), "beta": b}, own=-bound)


@register
class PIWAE(Objective):
    """Encoder on MIWAE(M, K), decoder on IWAE-``decoder_K`` (by default M K: the same samples).

    `Chapter 4 <https://gapkit.github.io/gapkit/notebooks/04_iwae_snr.html>`_ explains it.
    """

    name = "piwae"

    def __init__(self, M: int = 8, K: int = 8, decoder_K: int | None = None):
        self.M, self.K = positive_int("M", M), positive_int("K", K)
        self.decoder_K = self.M * self.K if decoder_K is None else positive_int("decoder_K", decoder_K)

    def config(self):
        return {"name": self.name, "M": self.M, "K": self.K, "decoder_K": self.decoder_K}

    def __call__(self, model, x, generator=None) -> Losses:
        lw = log_weights(model, x, self.M * self.K, generator=generator)      # (M K, B)
        enc = miwae(lw.view(self.M, self.K, -1)).mean()
        if self.decoder_K == self.M * self.K:
            dec = iwae(lw).mean()
        else:
            dec = iwae(log_weights(model, x, self.decoder_K, generator=generator)).mean()
        return Losses(-enc, -dec, {"bound": dec.detach(), "encoder_bound": enc.detach()})
