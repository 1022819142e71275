"""Training objectives for the one training loop (:func:`gapkit.train.train`).

An objective is called as ``objective(model, x, generator)`` on a minibatch and returns
:class:`Losses`: a scalar to *minimize* for the encoder (phi), one for the decoder (theta),
either of which may be ``None`` to leave that side untouched, plus metrics to log. When the two
are the same tensor (the usual VAE) one backward pass serves both. Chapters add their own
objectives (sleep, reverse sleep, MIWAE, BSVI, ...) in the same shape.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .checks import positive_int
from .bounds import elbo, iwae
from .estimators import log_weights

__all__ = ["Losses", "Objective", "ELBO", "IWAE", "make_objective"]


@dataclass
class Losses:
    encoder: torch.Tensor | None
    decoder: torch.Tensor | None
    metrics: dict = field(default_factory=dict)
    objective: torch.Tensor | None = None  # for an objective's own parameters (e.g. learnable beta)


class Objective:
    """Base class: subclasses implement ``__call__(model, x, generator) -> Losses``."""

    name = "objective"

    def config(self) -> dict:
        return {"name": self.name}

    def __call__(self, model, x, generator=None) -> Losses:  # pragma: no cover - interface
        raise NotImplementedError


def _check_K(K):
    return positive_int("K", K)


class ELBO(Objective):
    """The VAE objective: maximize the ELBO E_q[log p(x,z) - log q(z|x)] (K-sample average) for phi and theta.

    Chapter 0 (``notebooks/00_vae_basics``) explains it.
    """

    name = "elbo"

    def __init__(self, K: int = 1):
        self.K = _check_K(K)

    def config(self):
        return {"name": self.name, "K": self.K}

    def __call__(self, model, x, generator=None) -> Losses:
        bound = elbo(log_weights(model, x, self.K, generator=generator)).mean()
        return Losses(*[-bound] * 2, {"bound": bound.item()})  # one tensor for both sides: one backward pass


class IWAE(Objective):
    """Burda et al.: maximize log (1/K) sum_k w_k for phi and theta (K = 1 is the ELBO).

    Chapter 1 (``notebooks/01_elbo_tightness``) explains the bound; chapter 4 (``notebooks/04_iwae_snr``)
    trains with it.
    """

    name = "iwae"

    def __init__(self, K: int = 5):
        self.K = _check_K(K)

    def config(self):
        return {"name": self.name, "K": self.K}

    def __call__(self, model, x, generator=None) -> Losses:
        bound = iwae(log_weights(model, x, self.K, generator=generator)).mean()
        return Losses(*[-bound] * 2, {"bound": bound.item()})  # one tensor for both sides: one backward pass


OBJECTIVES = {"elbo": ELBO, "iwae": IWAE}


def make_objective(name: str, **kw) -> Objective:
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; valid: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name](**kw)
