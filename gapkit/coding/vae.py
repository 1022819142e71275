"""The VAE's three codecs on a group of L images
(`chapter 7 <https://gapkit.github.io/gapkit/notebooks/07_bits_back.html>`_):
prior p(z), likelihood p(x | z), posterior q(z | x).

* :meth:`VAECodecs.prior` - each of the L*Z latents uniform over its 2^latent_bits equal-prior-mass bins
  (exactly ``latent_bits`` bits a latent);
* :meth:`VAECodecs.likelihood` - the L*D pixels given latent bins z: the decoder at the bin centres,
  Bernoulli or discretized-logistic tables (:mod:`gapkit.coding.tables`);
* :meth:`VAECodecs.posterior` - the L*Z latent bins given images x: the encoder's (mu, sigma), then
  ``steps`` Adam steps of K-step optimal inference (Zhang et al. 2022, Algorithm 2, with a generator
  seeded by the group index g, so that the decoder repeats them bit for bit), as rounded-CDF tables.

A group is one "super-image" whose latents and pixels factorize over its images, so the networks run
on a whole group at once, with the same tensor shapes on both sides of the coder.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from ..inference.optimal import per_point
from .codecs import Codec, bernoulli, categorical, concat, uniform
from .tables import bernoulli_probs, latent_bins, logistic_tables, posterior_table

__all__ = ["VAECodecs"]


class VAECodecs:
    """Prior, likelihood and posterior codecs of a VAE (a CPU float32 copy of ``model``, eval mode)."""

    def __init__(self, model, latent_bits: int, posterior_precision: int, pixel_precision: int, steps: int,
                 lr: float, seed: int):
        self.model = copy.deepcopy(model).to("cpu", torch.float32).eval()
        self.likelihood_name = self.model.likelihood
        self.x_dim, self.z_dim = self.model.x_dim, self.model.z_dim
        self.latent_bits, self.posterior_precision, self.pixel_precision = latent_bits, posterior_precision, pixel_precision
        self.steps, self.lr, self.seed = steps, lr, seed
        edges, self.centres = latent_bins(latent_bits)
        self.edges32 = edges.float()

    def prior(self, L: int) -> Codec:
        """p(z): L*Z latent bins, each uniform over 2^latent_bits."""
        return uniform(2 ** self.latent_bits, L * self.z_dim)

    def decoder(self, z: np.ndarray):
        """The decoder's output at the bin centres of z (L*Z,) bins -> (L, D) logits or (mean, log-scale)."""
        zc = self.centres[torch.from_numpy(np.asarray(z).astype(np.int64))].reshape(-1, self.z_dim)
        with torch.no_grad():
            return self.model.decode(zc)

    def likelihood(self, z: np.ndarray) -> Codec:
        """p(x | z): the pixels of the L images whose latent bins are z (L*Z,); pops (L, D) uint8."""
        out = self.decoder(z)
        L = len(z) // self.z_dim
        if self.likelihood_name == "bernoulli":
            c = bernoulli(bernoulli_probs(out, self.pixel_precision))
        else:
            c = concat([(sl, categorical(t)) for sl, t in logistic_tables(*out, self.pixel_precision)])
        return Codec(c.push, lambda ans: c.pop(ans).reshape(L, self.x_dim).astype(np.uint8), c.prob)

    def q(self, x: np.ndarray, g: int):
        """(mu, std) of q(z | x) for a group x (L, D) -> (L, Z) each: the encoder, then ``steps`` Adam steps."""
        x = torch.from_numpy(np.asarray(x)).float()
        with torch.no_grad():
            mu, std = self.model.encode(x)
        if self.steps:
            gen = torch.Generator().manual_seed((self.seed * 1000003 + g) % (2 ** 63))
            with torch.enable_grad():
                mu, std = per_point(self.model, x, self.steps, self.lr, K=1, init=(mu, std), generator=gen)
        return mu, std

    def q_table(self, mu, std) -> np.ndarray:
        """q's bin masses (L*Z, n) from (mu, std) (L, Z): :func:`gapkit.coding.tables.posterior_table`."""
        return posterior_table(mu, std, self.edges32, self.posterior_precision)

    def posterior(self, x: np.ndarray, g: int) -> Codec:
        """q(z | x): the L*Z latent bins of the group x (L, D), g its index."""
        return categorical(self.q_table(*self.q(x, g)))
