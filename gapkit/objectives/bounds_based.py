"""Objectives that maximize one bound of :mod:`gapkit.bounds` for the encoder and the decoder.

``BoundObjective(bound, K)``: maximize ``(1/B) sum_b bound(log w_{1..K, b})`` over phi and theta,
with ``log w_k = log p(x, z_k) - log q(z_k|x)``, ``z_k ~ q(z|x)`` (:func:`gapkit.estimators.log_weights`).
Any bound by name or function trains this way (``make_objective("bound", bound="bihm", K=10)``);
:class:`ELBO` and :class:`IWAE` are the two the book names.
"""
from __future__ import annotations

from .. import bounds as _bounds
from ..checks import positive_int
from ..estimators import log_weights
from .base import Losses, Objective, register

__all__ = ["BoundObjective", "ELBO", "IWAE"]


@register
class BoundObjective(Objective):
    """Maximize the minibatch mean of ``bound(log w)`` with K samples per image, for phi and theta.

    ``bound``: a name in :data:`gapkit.bounds.BOUNDS` or a function ``log_w (K, B) -> (B,)``;
    ``bound_params`` (e.g. ``beta`` for ``"ciwae"``) are passed to it.
    """

    name = "bound"

    def __init__(self, bound="elbo", K: int = 1, **bound_params):
        self.K = positive_int("K", K)
        self.bound = _bounds.get(bound, **bound_params)
        self.bound_params = bound_params

    def config(self):
        return {"name": self.name, "bound": _bounds.name_of(self.bound), **self.bound_params, "K": self.K}

    def __call__(self, model, x, generator=None) -> Losses:
        bound = self.bound(log_weights(model, x, self.K, generator=generator)).mean()
        # One tensor for both sides, so train takes one backward pass; the metric stays on the device.
        return Losses(*[-bound] * 2, {"bound": bound.detach()})


@register
class ELBO(BoundObjective):
    """The VAE objective: maximize the ELBO E_q[log p(x,z) - log q(z|x)] (K-sample average) for phi and theta.

    `Chapter 0 <https://gapkit.github.io/gapkit/notebooks/00_vae_basics.html>`_ explains it.
    """

    name = "elbo"

    def __init__(self, K: int = 1):
        super().__init__(_bounds.elbo, K)

    def config(self):
        return {"name": self.name, "K": self.K}


@register
class IWAE(BoundObjective):
    """Burda et al.: maximize log (1/K) sum_k w_k for phi and theta (K = 1 is the ELBO).

    `Chapter 1 <https://gapkit.github.io/gapkit/notebooks/01_elbo_tightness.html>`_ explains the bound;
    `chapter 4 <https://gapkit.github.io/gapkit/notebooks/04_iwae_snr.html>`_
    trains with it.
    """

    name = "iwae"

    def __init__(self, K: int = 5):
        super().__init__(_bounds.iwae, K)

    def config(self):
        return {"name": self.name, "K": self.K}
