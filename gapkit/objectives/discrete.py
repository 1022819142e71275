"""Training objectives for binary latents (sigmoid belief networks, :class:`gapkit.models.sbn.SBN`).

=============================  ======================================================================
objective                      generative model p (theta)            recognition net q_psi
=============================  ======================================================================
``AIR(reweighted=False)``      -(1/K) sum_k log p(x, h_k), h ~ q_T    KL(q_T || q_psi) (closed form)
``AIR()`` (reweighted AIR)     -sum_k w~_k log p(x, h_k), h ~ q_T     KL(q_T || q_psi)
``AIR(encoder="inclusive")``   -sum_k w~_k log p(x, h_k), h ~ q_T     -sum_k w~_k log q_psi(h_k | x)
``RWS()``                      -sum_k w~_k log p(x, h_k), h ~ q_psi   mean of wake -sum_k w~_k log q_psi(h_k|x)
                                                                     and sleep -log q_psi(h'|x'), (h', x') ~ p
``BiHM()``                     as RWS with w = sqrt(p / q), no sleep  -sum_k w~_k log q_psi(h_k | x)
=============================  ======================================================================

q_T is q_psi refined by T AIR steps (:func:`gapkit.inference.air.refine`), w~ the normalized importance
weights. Trained by :func:`gapkit.inference.air.fit`.
`Chapter 8 <https://gapkit.github.io/gapkit/notebooks/08_discrete_latents.html>`_ explains them.
"""
from __future__ import annotations

import torch

from ..inference.air import ENCODER_LOSSES
from ..inference.air import check_gamma
from ..inference.air import check_weights
from ..inference.air import normalized_weights
from ..inference.air import refine
from ..bounds import ess
from ..checks import boolean, nonneg_int, one_of, positive_int
from ..models.sbn import SBN
from ..models.sbn import bernoulli_kl
from .base import Losses, Objective, register

__all__ = ["AIR", "RWS", "BiHM", "Reweighted"]


@register
class AIR(Objective):
    """AIR training (Hjelm et al. 2016): refine q_psi's means for ``steps`` steps, then learn from q_T.

    Generative model: ``-sum_k w~_k log p(x, h_k)`` (``reweighted=True``) or the lower bound's
    ``-(1/K) sum_k log p(x, h_k)`` (``reweighted=False``, "vanilla AIR"), h_k ~ q_T, w~ normalized
    p/q_T (or sqrt(p/q_T) with ``weights="bihm"``). Recognition network: ``KL(q_T || q_psi)`` in
    closed form (``encoder="kl"``) or the inclusive ``-sum_k w~_k log q_psi(h_k | x)``
    (``encoder="inclusive"``). See the module docstring.
    `Chapter 8 <https://gapkit.github.io/gapkit/notebooks/08_discrete_latents.html>`_.
    """

    name = "air"

    def __init__(self, steps: int = 20, K: int = 20, gamma: float = 0.9, reweighted: bool = True,
                 encoder: str = "kl", weights: str = "iw"):
        self.steps = nonneg_int("steps", steps)
        self.K = positive_int("K", K)
        self.gamma = check_gamma(gamma)
        boolean("reweighted", reweighted)
        one_of("encoder loss ('kl': KL(q_T || q_psi), 'inclusive': importance-weighted KL(p(h|x) || q_psi))",
               encoder, ENCODER_LOSSES)
        self.reweighted, self.encoder, self.weights = reweighted, encoder, check_weights(weights)

    def config(self):
        return {"name": self.name, "steps": self.steps, "K": self.K, "gamma": self.gamma,
                "reweighted": self.reweighted, "encoder": self.encoder, "weights": self.weights}

    def __call__(self, model: SBN, x, generator=None) -> Losses:
        logits = model.encode_logits(x)                                         # (B, H), grad to psi
        tr = refine(model, x, self.steps, self.K, self.gamma, self.weights, init=torch.sigmoid(logits).detach(),
                    generator=generator, keep_last=True)
        mu_T, h = tr.final, tr.last_samples                                     # (B, H), (K, B, H)
        log_p = model.log_joint(x, h)                                           # (K, B), grad to theta
        log_w = tr.log_w[-1]                                                    # (K, B), detached
        w = normalized_weights(log_w, self.weights)
        dec = -(w * log_p).sum(0).mean() if self.reweighted else -log_p.mean(0).mean()
        if self.encoder == "kl":
            enc = bernoulli_kl(mu_T, logits).mean()
        else:
            enc = -(w * model.log_q_logits(h, logits)).sum(0).mean()
        return Losses(enc, dec, {"bound": log_w.mean(), "ess": ess(log_w).mean()})


class Reweighted(Objective):
    """Wake updates with normalized weights from K samples of q_psi (no refinement): the shared part
    of :class:`RWS` and :class:`BiHM` (``weights``: ``"iw"`` or ``"bihm"``; ``sleep``: add the sleep
    update of q)."""

    weights, sleep = "iw", False

    def __init__(self, K: int = 20):
        self.K = positive_int("K", K)

    def config(self):
        return {"name": self.name, "K": self.K, "weights": self.weights, "sleep": self.sleep}

    def __call__(self, model: SBN, x, generator=None) -> Losses:
        logits = model.encode_logits(x)                                         # (B, H)
        mu = torch.sigmoid(logits).detach()
        h = model.sample_q(mu, self.K, generator)                               # (K, B, H)
        log_p = model.log_joint(x, h)                                           # (K, B)
        log_w = (log_p - model.log_q(h, mu)).detach()
        w = normalized_weights(log_w, self.weights)
        dec = -(w * log_p).sum(0).mean()
        enc = -(w * model.log_q_logits(h, logits)).sum(0).mean()               # wake phase for q
        if self.sleep:                                                          # sleep phase for q
            hs, xs = model.sample(len(x), generator)
            enc = 0.5 * (enc - model.log_q_logits(hs, model.encode_logits(xs)).mean())
        return Losses(enc, dec, {"bound": log_w.mean(), "ess": ess(log_w).mean()})


@register
class RWS(Reweighted):
    """Reweighted wake-sleep (Bornschein & Bengio 2015): wake updates of p and q with normalized
    weights ``p(x, h_k) / q_psi(h_k | x)``, plus the sleep update of q on model samples (the q loss
    is the mean of wake and sleep).
    `Chapter 8 <https://gapkit.github.io/gapkit/notebooks/08_discrete_latents.html>`_."""

    name, weights, sleep = "rws", "iw", True


@register
class BiHM(Reweighted):
    """Bidirectional Helmholtz machine training (Bornschein et al. 2016): both networks follow the
    gradient of ``2 log p~*(x)`` estimated with normalized weights ``sqrt(p(x, h_k) / q(h_k | x))``,
    ``h_k ~ q_psi`` (the supplement's Eq. 3).
    `Chapter 8 <https://gapkit.github.io/gapkit/notebooks/08_discrete_latents.html>`_."""

    name, weights, sleep = "bihm", "bihm", False
