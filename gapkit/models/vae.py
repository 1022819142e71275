"""The MLP VAE: a Gaussian encoder q(z|x) and a Bernoulli or discretized-logistic decoder p(x|z)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..checks import int_sizes, one_of, positive_int
from ..likelihoods import bernoulli_log_prob, discretized_logistic_log_prob
from .base import ACTIVATIONS, LIKELIHOODS, MIN_STD, LatentModel, mlp

__all__ = ["VAE"]


class VAE(LatentModel):
    """MLP VAE with a diagonal Gaussian encoder and a Bernoulli or discretized-logistic decoder.

    q_phi(z|x) = N(mu(x), diag(std(x)^2)), mu from a linear head, std = softplus(linear) + 1e-4;
    p(z) = N(0, I); p_theta(x|z) = prod_d Bernoulli(x_d; sigmoid(logit_d(z))) for binary pixels or
    the discretized logistic with per-pixel mean and log-scale for 8-bit pixels.

    `Chapter 0 <https://gapkit.github.io/gapkit/notebooks/00_vae_basics.html>`_
    trains it; every later chapter studies it.
    """

    def __init__(self, x_dim: int = 784, z_dim: int = 16, hidden=(500, 500), activation: str = "relu",
                 likelihood: str = "bernoulli", output_bias=None):
        super().__init__()
        positive_int("x_dim", x_dim)
        positive_int("latent size z_dim", z_dim)
        hidden = int_sizes("hidden", hidden)
        one_of("activation", activation, ACTIVATIONS)
        one_of("likelihood", likelihood, LIKELIHOODS)
        self.x_dim, self.z_dim, self.hidden = x_dim, z_dim, hidden
        self.activation, self.likelihood = activation, likelihood
        self.config = dict(model="VAE", x_dim=x_dim, z_dim=z_dim, hidden=list(hidden),
                           activation=activation, likelihood=likelihood)
        out = x_dim if likelihood == "bernoulli" else 2 * x_dim
        self.encoder = mlp([x_dim, *hidden, 2 * z_dim], activation)
        self.decoder = mlp([z_dim, *hidden[::-1], out], activation)
        if output_bias is not None:  # e.g. the logit of the mean training pixel (Burda et al.)
            with torch.no_grad():
                self.decoder[-1].bias[:x_dim].copy_(torch.as_tensor(output_bias))

    # -- phi
    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the encoder network sees: u = x / 255 for 8-bit pixels (in [0, 1]), u = x for binary ones."""
        return x / 255.0 if self.likelihood == "logistic" else x

    def encode_input(self, u: torch.Tensor):
        """q(z|x) as (mu, std), each (B, Z), from the encoder's input u = ``encoder_input(x)``."""
        h = self.encoder(u)
        mu, s = h.chunk(2, dim=-1)
        return mu, F.softplus(s) + MIN_STD

    def encode(self, x: torch.Tensor):
        """q(z|x) as (mu, std), each (B, Z): ``encode_input(encoder_input(x))``."""
        return self.encode_input(self.encoder_input(x))

    # -- theta
    def decode(self, z: torch.Tensor):
        """Decoder output: logits (..., D), or (mean, log_scale) in pixel units for 8-bit data."""
        h = self.decoder(z)
        if self.likelihood == "bernoulli":
            return h
        m, ls = h.chunk(2, dim=-1)
        return 127.5 + 127.5 * m, ls.clamp(min=-4.0, max=6.0)

    def log_lik(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z): x (B, D), z (..., B, Z) -> (..., B)."""
        out = self.decode(z)
        if self.likelihood == "bernoulli":
            return bernoulli_log_prob(x, out)
        return discretized_logistic_log_prob(x, *out)

    def mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x|z] (pixel probabilities, or mean intensity 0..255)."""
        out = self.decode(z)
        if self.likelihood == "bernoulli":
            return torch.sigmoid(out)
        return out[0].clamp(0, 255)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None):
        """(z, x) with z ~ p(z), x ~ p(x|z); x binary or integer 0..255."""
        z = torch.randn(n, self.z_dim, device=self.device, generator=generator)
        return z, self.sample_x(z, generator)

    @torch.no_grad()
    def sample_x(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        out = self.decode(z)
        if self.likelihood == "bernoulli":
            return torch.bernoulli(torch.sigmoid(out), generator=generator)
        mean, log_scale = out
        u = torch.rand(mean.shape, device=mean.device, generator=generator).clamp(1e-6, 1 - 1e-6)
        return (mean + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))).round().clamp(0, 255)

    def encoder_parameters(self):
        return list(self.encoder.parameters())

    def decoder_parameters(self):
        return list(self.decoder.parameters())
