"""Encoder objectives that train q(z|x) on the training data, on model samples, or on both.

`Chapter 3 <https://gapkit.github.io/gapkit/notebooks/03_wake_sleep.html>`_
explains them. Each is an :class:`EncoderScheme` (an
:class:`gapkit.objectives.base.Objective`, registered, so ``names(EncoderScheme)`` lists them in this order)
for the one training loop :func:`gapkit.train.train`; called as ``objective(model, x, generator)``
on a training minibatch x of B rows, it returns ``Losses(encoder=..., decoder=...)`` (losses to
*minimize*). With ``train_decoder=False`` (the default: post-hoc encoder training) the decoder
loss is ``None`` and the decoder stays fixed; with ``train_decoder=True`` the decoder is trained by
the wake ELBO on x, as in wake-sleep. Model samples are drawn fresh for every minibatch, on the
model's device, with the generator the loop passes in. ELBO(x) below is the K-sample average
(1/K) sum_k [log p(x, z_k) - log q(z_k|x)], z_k ~ q(z|x) (:func:`gapkit.bounds.elbo`).

=========================  ===========================================================================
objective                  encoder loss (minimized over phi)
=========================  ===========================================================================
``Wake()``                 -(1/B) sum_b ELBO(x_b): wake-phase amortized inference on the training set
``Sleep()``                -(1/B) sum_b log q(z'_b | x'_b),  z' ~ p(z), x' ~ p(x|z'): forward
                           KL(p(z|x) || q(z|x)) averaged over p(x), up to a constant
``ReverseSleep()``         -(1/B) sum_b ELBO(x'_b),  x' ~ p(x): reverse KL(q || p(z|x)) over p(x)
``ReverseHalfAsleep(a)``   -[a (1/B) sum_b ELBO(x'_b) + (1 - a) (1/B) sum_b ELBO(x_b)]: reverse KL
                           averaged over the mixture m(x) = a p(x) + (1 - a) p_data(x) (Zhang et al.
                           2022, eq. 21); a = 0 is ``Wake``, a = 1 is ``ReverseSleep``
``Denoising(sigma)``       -[w ELBO_eps(x) + (1 - w) ELBO(x)] with ELBO_eps(x) = E_{q(z|u+eps)}
                           [log p(x, z) - log q(z|u+eps)], u the encoder's input (x, or x / 255 for
                           8-bit pixels), eps ~ N(0, sigma^2 I), w = 0.5 (Shu et al. 2018's
                           regularizer, the baseline of Zhang et al.'s Table 1)
=========================  ===========================================================================

``latent="posterior"`` draws the model samples' latents from the aggregate posterior instead of the
prior: z' ~ q(z|x_b) for the training minibatch, then x' ~ p(x|z') (Zhang et al.'s fix when
q(z) = E_{p_data}[q(z|x)] and p(z) differ). No gradient flows through the sampling of x'.

A new scheme (say RWS's wake-phi) is one registered subclass of :class:`EncoderScheme` here: set
``name``, compute the encoder loss in ``__call__`` and return ``self.losses(model, x, loss, generator)``.
"""
from __future__ import annotations

import torch

from ..bounds import elbo
from ..checks import boolean, number, one_of, positive_int
from ..estimators import log_weights, sample_q
from .base import Losses, Objective, register

__all__ = ["EncoderScheme", "Wake", "Sleep", "ReverseSleep", "ReverseHalfAsleep", "Denoising", "model_samples",
           "LATENT_SOURCES"]

LATENT_SOURCES = ("prior", "posterior")


def _latent(latent):
    return one_of("latent source ('prior': z ~ p(z), 'posterior': z ~ q(z|x_train))", latent, LATENT_SOURCES)


@torch.no_grad()
def model_samples(model, x: torch.Tensor, latent: str = "prior", generator=None):
    """Fresh (z', x') from the model, as many as rows of ``x``: (B, Z), (B, D).

    ``latent="prior"``: z' ~ p(z); ``"posterior"``: z' ~ q(z|x_b) for each training row x_b. Then
    x' ~ p(x|z'). Drawn on ``x``'s device with ``generator``; no gradient reaches the model.

    `Chapter 3 <https://gapkit.github.io/gapkit/notebooks/03_wake_sleep.html>`_ explains it.
    """
    _latent(latent)
    if latent == "prior":
        return model.sample(len(x), generator)
    mu, std = model.encode(x)
    z = sample_q(mu, std, 1, generator)[0]                            # (B, Z)
    return z, model.sample_x(z, generator)


def neg_elbo(model, x, K, generator, q=None):
    """-(1/B) sum_b ELBO(x_b) with K samples: a scalar."""
    return -elbo(log_weights(model, x, K, q=q, generator=generator)).mean()


class EncoderScheme(Objective):
    """An encoder training scheme: K, ``train_decoder`` and the wake ELBO for the decoder.

    Subclasses compute the encoder loss and return :meth:`losses`. ``setting`` names the scheme's
    own knob that `chapter 3 <https://gapkit.github.io/gapkit/notebooks/03_wake_sleep.html>`_
    sweeps (``"alpha"``, ``"sigma"``), None for the plain schemes.
    """

    setting: str | None = None

    def __init__(self, K: int = 1, train_decoder: bool = False):
        self.K = positive_int("K", K)
        self.train_decoder = boolean("train_decoder", train_decoder)

    def config(self):
        return {"name": self.name, "K": self.K, "train_decoder": self.train_decoder}

    def losses(self, model, x, enc_loss, generator, wake=None, metrics=None) -> Losses:
        """Losses with the decoder trained by the wake ELBO on x (reusing ``wake`` when given)."""
        dec = None
        if self.train_decoder:
            dec = wake if wake is not None else neg_elbo(model, x, self.K, generator)
        metrics = dict(metrics or {})
        metrics["encoder_loss"] = enc_loss.detach()
        return Losses(enc_loss, dec, metrics)


@register
class Wake(EncoderScheme):
    """Wake-phase amortized inference: minimize -(1/B) sum_b ELBO(x_b) over the training minibatch.

    With ``train_decoder=True`` this is the usual VAE (the same loss for phi and theta).
    `Chapter 3 <https://gapkit.github.io/gapkit/notebooks/03_wake_sleep.html>`_.
    """

    name = "wake"

    def __call__(self, model, x, generator=None) -> Losses:
        loss = neg_elbo(model, x, self.K, generator)
        return self.losses(model, x, loss, generator, wake=loss)


@register
class Sleep(EncoderScheme):
    """Sleep phase (forward KL): minimize -(1/B) sum_b log q(z'_b | x'_b), (z', x') ~ p(z) p(x|z).

    min_phi E_{p(x)} KL(p(z|x) || q(z|x)) up to a constant in phi (Hinton et al. 1995; Zhang et al.
    2022, eq. 17). The training minibatch is used only for its size (and by the decoder's wake
    ELBO when ``train_decoder``). `Chapter 3 <https://gapkit.github.io/gapkit/notebooks/03_wake_sleep.html>`_.
    """

    name = "sleep"

    def __init__(self, latent: str = "prior", train_decoder: bool = False):
        super().__init__(1, train_decoder)
        self.latent = _latent(latent)

    def config(self):
        return {"name": self.name, "latent": self.latent, "train_decoder": self.train_decoder}

    def __call__(self, model, x, generator=None) -> Losses:
        z, xs = model_samples(model, x, self.latent, generator)     # (B, Z), (B, D)
        mu, std = model.encode(xs)
        loss = -model.log_q(z, mu, std).mean()
        return self.losses(model, x, loss, generator)


class _ReverseKL(EncoderScheme):
    """Reverse KL(q || p(z|x)) averaged over m(x) = alpha p(x) + (1-alpha) p_data (the computation
    shared by :class:`ReverseSleep` and :class:`ReverseHalfAsleep`)."""

    def __init__(self, alpha: float = 0.5, latent: str = "prior", K: int = 1, train_decoder: bool = False):
        super().__init__(K, train_decoder)
        self.alpha = number("alpha (0: wake ELBO on the training data, 1: reverse sleep on model samples)",
                            alpha, 0, 1)
        self.latent = _latent(latent)

    def config(self):
        return {**super().config(), "alpha": self.alpha, "latent": self.latent}

    def __call__(self, model, x, generator=None) -> Losses:
        a = self.alpha
        wake = neg_elbo(model, x, self.K, generator) if a < 1 else None
        loss = (1 - a) * wake if wake is not None else 0.0
        if a > 0:
            _, xs = model_samples(model, x, self.latent, generator)   # (B, D), fresh each minibatch
            loss = loss + a * neg_elbo(model, xs, self.K, generator)
        if a == 0:
            loss = wake  # the very same tensor as Wake's loss
        return self.losses(model, x, loss, generator, wake=wake)


@register
class ReverseSleep(_ReverseKL):
    """Reverse sleep: minimize -(1/B) sum_b ELBO(x'_b) over fresh model samples x' ~ p(x), phi only.

    min_phi E_{p(x)} KL(q(z|x) || p(z|x)) (Zhang et al. 2022, eq. 19); ReverseHalfAsleep(alpha=1).
    `Chapter 3 <https://gapkit.github.io/gapkit/notebooks/03_wake_sleep.html>`_.
    """

    name = "reverse_sleep"

    def __init__(self, latent: str = "prior", K: int = 1, train_decoder: bool = False):
        super().__init__(1.0, latent, K, train_decoder)


@register
class ReverseHalfAsleep(_ReverseKL):
    """Reverse half-asleep: reverse KL(q || p(z|x)) averaged over m(x) = alpha p(x) + (1-alpha) p_data.

    Encoder loss  -[alpha (1/B) sum_b ELBO(x'_b) + (1 - alpha) (1/B) sum_b ELBO(x_b)]  with B fresh
    model samples x' (latents from ``latent``: the prior, or q(z|x_b)) next to the B training rows x:
    an unbiased estimate of -E_m[ELBO]. The term whose weight is 0 is not computed, so alpha = 0 is
    exactly :class:`Wake` on the same batch (and draws no model samples) and alpha = 1 is reverse
    sleep (it reads no training data when ``latent="prior"`` and the decoder is fixed).
    Zhang et al. 2022, eq. 21. `Chapter 3 <https://gapkit.github.io/gapkit/notebooks/03_wake_sleep.html>`_.
    """

    name = "reverse_half_asleep"
    setting = "alpha"


@register
class Denoising(EncoderScheme):
    """The denoising regularizer (Shu et al. 2018): -[w ELBO_eps(x) + (1 - w) ELBO(x)], w = ``weight``.

    ELBO_eps(x) = E_{z ~ q(z|u+eps)}[log p(x, z) - log q(z|u+eps)], eps ~ N(0, sigma^2 I), where
    u = ``model.encoder_input(x)`` is what the encoder network sees (pixels in [0, 1] for 8-bit data:
    x / 255), so sigma is on that scale whatever the data's units: the encoder sees a noisy input,
    the decoder scores the clean x. sigma = 0 gives the wake ELBO (two estimates averaged).
    Zhang et al. 2022, eq. 23 and Table 1.
    `Chapter 3 <https://gapkit.github.io/gapkit/notebooks/03_wake_sleep.html>`_.
    """

    name = "denoising"
    setting = "sigma"

    def __init__(self, sigma: float = 0.4, weight: float = 0.5, K: int = 1, train_decoder: bool = False):
        super().__init__(K, train_decoder)
        self.sigma = number("sigma (the input-noise standard deviation)", sigma, 0)
        self.weight = number("weight", weight, 0, 1)

    def config(self):
        return {**super().config(), "sigma": self.sigma, "weight": self.weight}

    def __call__(self, model, x, generator=None) -> Losses:
        wake = neg_elbo(model, x, self.K, generator)
        eps = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
        u = model.encoder_input(x)                                  # (B, D), the encoder's scale
        noisy = neg_elbo(model, x, self.K, generator, q=model.encode_input(u + self.sigma * eps))
        loss = self.weight * noisy + (1 - self.weight) * wake
        return self.losses(model, x, loss, generator, wake=wake)
