"""Sigmoid belief networks: binary latent layers, a generative model and a factorized recognition net.

A sigmoid belief network (SBN; Neal 1992) with L = 1..3 stochastic layers of binary units
h_l in {0, 1}^{H_l} over binary pixels x in {0, 1}^D (Hjelm et al. 2016; Bornschein & Bengio 2015)::

    p(x, h) = p(h_L) p(h_{L-1} | h_L) ... p(h_1 | h_2) p(x | h_1),
    p(h_L)           = prod_j Bernoulli(h_{L,j}; sigmoid(b_L,j))                (learned biases)
    p(h_{l-1} | h_l) = prod_j Bernoulli(h_{l-1,j}; sigmoid(W_l h_l + b_{l-1})_j)
    p(x | h_1)       = prod_d Bernoulli(x_d; sigmoid(W_1 h_1 + b_x)_d)

The approximate posterior is one factorized Bernoulli over all units of all layers,
``q(h | x) = prod_l prod_j Bernoulli(h_{l,j}; mu_{l,j})``, whose means come from a recognition
network of the same depth, ``mu_1 = sigmoid(V_1 x + c_1)``, ``mu_l = sigmoid(V_l mu_{l-1} + c_l)``
(deterministic, so that AIR can refine every mean, :mod:`gapkit.inference.air`).

Shapes: the layers are concatenated along the last dimension, layer 1 first, ``H = sum_l H_l``;
``h`` is (..., B, H) with any leading sample dimensions (K first), ``mu`` (B, H), and
``log_joint(x, h)`` and ``log_q(h, mu)`` return (..., B), so ``log_w = log_joint - log_q`` is (K, B)
and every bound of :mod:`gapkit.bounds` applies unchanged.
`Chapter 8 <https://gapkit.github.io/gapkit/notebooks/08_discrete_latents.html>`_ explains the model.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import int_sizes, positive_int
from ..likelihoods import bernoulli_log_prob, check_data

__all__ = ["SBN", "bernoulli_mean_log_prob", "bernoulli_kl", "MAX_LAYERS"]

MAX_LAYERS = 3


def bernoulli_mean_log_prob(h: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """``sum_j h_j log mu_j + (1 - h_j) log(1 - mu_j)`` for means ``mu`` in [0, 1]: (..., B, H) -> (..., B).

    Computed as ``h . (log mu - log(1 - mu)) + sum_j log(1 - mu_j)``: the (B, H) terms once, then one
    batched contraction over the samples. ``mu`` is clamped to [eps, 1 - eps] (eps the dtype's machine
    epsilon), so a mean of exactly 0 or 1 costs at most about eps nats per unit for the samples it draws.
    """
    eps = torch.finfo(mu.dtype).eps
    mu = mu.clamp(eps, 1 - eps)
    log1m = torch.log1p(-mu)                                                    # (B, H)
    a = torch.log(mu) - log1m                                                   # (B, H)
    lead = h.shape[:h.dim() - mu.dim()]
    if lead and h.shape[len(lead):] == mu.shape and mu.dim() == 2:
        ha = torch.einsum("kbh,bh->kb", h.reshape(-1, *mu.shape), a).reshape(*lead, mu.shape[0])
    else:
        ha = (h * a).sum(-1)
    return ha + log1m.sum(-1)


def bernoulli_kl(mu_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """``KL(Bern(mu_p) || Bern(sigmoid(logits_q)))`` summed over the last dimension: (B, H) -> (B,).

    Closed form for factorized Bernoullis:
    ``sum_j mu_j log(mu_j / q_j) + (1 - mu_j) log((1 - mu_j) / (1 - q_j))``; differentiable in
    ``logits_q`` (stable through ``logsigmoid``). Used to pull the recognition network toward the
    refined posterior (Hjelm et al. 2016, ``KL(q_T || q_psi)``).
    """
    neg_entropy = torch.xlogy(mu_p, mu_p) + torch.xlogy(1 - mu_p, 1 - mu_p)
    cross = mu_p * F.logsigmoid(logits_q) + (1 - mu_p) * F.logsigmoid(-logits_q)
    return (neg_entropy - cross).sum(-1)


class SBN(nn.Module):
    """A sigmoid belief network p(x, h) with a factorized Bernoulli recognition network q(h | x).

    :param x_dim: D, the number of binary pixels.
    :param layers: units per stochastic layer, bottom (next to x) first, 1 to 3 layers
        (the paper: 200, 200x2 or 200x3).

    See the module docstring for the formulas.
    `Chapter 8 <https://gapkit.github.io/gapkit/notebooks/08_discrete_latents.html>`_.
    """

    def __init__(self, x_dim: int = 784, layers=(200,)):
        super().__init__()
        positive_int("x_dim", x_dim)
        layers = int_sizes("units per layer", (layers,) if isinstance(layers, int) and not isinstance(layers, bool)
                           else layers)
        if not 1 <= len(layers) <= MAX_LAYERS:
            raise ValueError(f"an SBN has 1 to {MAX_LAYERS} stochastic layers, got {len(layers)} "
                             f"({layers!r})")
        self.x_dim, self.layers = x_dim, layers
        self.h_dim = sum(layers)
        self.config = dict(model="SBN", x_dim=x_dim, layers=list(layers))
        # generative: top prior logits, then top-down conditionals layer l -> l-1, then h_1 -> x
        self.prior_logits = nn.Parameter(torch.zeros(layers[-1]))
        self.gen = nn.ModuleList([nn.Linear(layers[l], layers[l - 1]) for l in range(len(layers) - 1, 0, -1)]
                                 + [nn.Linear(layers[0], x_dim)])
        # recognition: bottom-up means
        sizes = [x_dim, *layers]
        self.rec = nn.ModuleList([nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])])
        self._splits = list(layers)

    @property
    def device(self) -> torch.device:
        return self.prior_logits.device

    @property
    def depth(self) -> int:
        return len(self.layers)

    def check_x(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(x) or not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor of shape (B, {self.x_dim})")
        if x.dim() != 2 or x.shape[-1] != self.x_dim:
            raise ValueError(f"x must have shape (B, {self.x_dim}), got {tuple(x.shape)}")
        return check_data(x, "bernoulli")

    def split(self, h: torch.Tensor) -> list:
        """The per-layer pieces of ``h`` (..., H): [h_1, ..., h_L]."""
        return list(torch.split(h, self._splits, dim=-1))

    # -- q(h | x)
    def encode_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the recognition means, (B, D) -> (B, H): ``a_l = V_l mu_{l-1} + c_l``, mu_0 = x."""
        out, m = [], x
        for lin in self.rec:
            a = lin(m)
            out.append(a)
            m = torch.sigmoid(a)
        return torch.cat(out, -1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The recognition network's Bernoulli means mu_0 = q_psi(h = 1 | x), (B, D) -> (B, H)."""
        return torch.sigmoid(self.encode_logits(x))

    def log_q(self, h: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """log q(h | x) = sum_j Bernoulli(h_j; mu_j): h (..., B, H), mu (B, H) -> (..., B)."""
        return bernoulli_mean_log_prob(h, mu)

    def log_q_logits(self, h: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """log q(h | x) from logits (stable, differentiable in the recognition network): -> (..., B)."""
        return (h * F.logsigmoid(logits) + (1 - h) * F.logsigmoid(-logits)).sum(-1)

    @staticmethod
    def sample_q(mu: torch.Tensor, K: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """K samples h ~ Bernoulli(mu): (B, H) -> (K, B, H)."""
        positive_int("K", K)
        u = torch.rand((K, *mu.shape), device=mu.device, dtype=mu.dtype, generator=generator)
        return (u < mu).to(mu.dtype)

    # -- p(x, h)
    def log_prior(self, h: torch.Tensor) -> torch.Tensor:
        """log p(h) = log p(h_L) + sum_l log p(h_{l-1} | h_l): (..., B, H) -> (..., B)."""
        hs = self.split(h)
        lp = bernoulli_log_prob(hs[-1], self.prior_logits.expand_as(hs[-1]))
        for i, lin in enumerate(self.gen[:-1]):        # top-down: layer L-i -> L-i-1
            upper, lower = hs[self.depth - 1 - i], hs[self.depth - 2 - i]
            lp = lp + bernoulli_log_prob(lower, lin(upper))
        return lp

    def x_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Logits of p(x | h_1): (..., B, H) -> (..., B, D)."""
        return self.gen[-1](self.split(h)[0])

    def log_lik(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """log p(x | h_1): x (B, D), h (..., B, H) -> (..., B)."""
        return bernoulli_log_prob(x, self.x_logits(h))

    def log_joint(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """log p(x, h): x (B, D), h (..., B, H) -> (..., B)."""
        return self.log_prior(h) + self.log_lik(x, h)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None):
        """Ancestral samples (h, x) ~ p(h) p(x | h): (n, H), (n, D)."""
        dev = self.device
        top = torch.bernoulli(torch.sigmoid(self.prior_logits).expand(n, -1).contiguous(), generator=generator)
        hs = [top]
        for lin in self.gen[:-1]:
            hs.append(torch.bernoulli(torch.sigmoid(lin(hs[-1])), generator=generator))
        h = torch.cat(hs[::-1], -1).to(dev)
        x = torch.bernoulli(torch.sigmoid(self.x_logits(h)), generator=generator)
        return h, x

    def init_output_bias(self, x_train: torch.Tensor) -> "SBN":
        """Set b_x to the logit of the mean training pixel (Burda et al.: faster early training)."""
        p = x_train.mean(0).clamp(1e-3, 1 - 1e-3)
        with torch.no_grad():
            self.gen[-1].bias.copy_(torch.log(p) - torch.log1p(-p))
        return self

    def encoder_parameters(self):
        return list(self.rec.parameters())

    def decoder_parameters(self):
        return [self.prior_logits, *self.gen.parameters()]

    # -- exact answers by enumeration (tiny networks only: 2^H states)
    def all_states(self, dtype=torch.float32) -> torch.Tensor:
        """Every h in {0, 1}^H as (2^H, H); refuses H > 20."""
        if self.h_dim > 20:
            raise ValueError(f"enumeration needs H <= 20 latent units, this network has {self.h_dim}")
        idx = torch.arange(2 ** self.h_dim, device=self.device)
        bits = (idx[:, None] >> torch.arange(self.h_dim, device=self.device)) & 1
        return bits.to(dtype)

    @torch.no_grad()
    def exact_log_px(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = logsumexp_h log p(x, h) over all 2^H states: (B, D) -> (B,)."""
        h = self.all_states(x.dtype)[:, None, :].expand(-1, len(x), -1)       # (S, B, H)
        return torch.logsumexp(self.log_joint(x, h), 0)

    @torch.no_grad()
    def exact_posterior(self, x: torch.Tensor):
        """(states (S, H), log p(h | x) (S, B)) over all S = 2^H states."""
        states = self.all_states(x.dtype)
        lj = self.log_joint(x, states[:, None, :].expand(-1, len(x), -1))       # (S, B)
        return states, lj - torch.logsumexp(lj, 0)

