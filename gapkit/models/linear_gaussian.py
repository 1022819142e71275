"""The linear-Gaussian model: exact log p(x) and posterior, the ground truth that bounds are tested against."""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..checks import number, positive_int
from ..likelihoods import gaussian_log_prob
from .base import LatentModel

__all__ = ["LinearGaussian"]


class LinearGaussian(LatentModel):
    """p(z) = N(0, I_Z), p(x|z) = N(W z + b, s^2 I_D), with an amortized linear encoder.

    Exact answers, used as ground truth:  p(x) = N(x; b, W W^T + s^2 I) and
    p(z|x) = N(m(x), S) with S = (I + W^T W / s^2)^{-1}, m(x) = S W^T (x - b) / s^2.
    The encoder q(z|x) = N(A x + c, diag(exp(2 v))) can hold the exact posterior when S is
    diagonal (for instance when W has orthogonal columns).

    `Chapter 1 <https://gapkit.github.io/gapkit/notebooks/01_elbo_tightness.html>`_
    checks the bounds and optimal inference against it;
    `chapter 6 <https://gapkit.github.io/gapkit/notebooks/06_bsvi.html>`_
    (``notebooks/06_bsvi``) checks the BSVI bound.
    """

    def __init__(self, x_dim: int = 4, z_dim: int = 2, noise_std: float = 0.5, W=None, b=None,
                 generator: torch.Generator | None = None, dtype=torch.float64):
        super().__init__()
        positive_int("x_dim", x_dim)
        positive_int("latent size z_dim", z_dim)
        number("noise_std", noise_std, 0, lo_open=True)
        self.x_dim, self.z_dim = x_dim, z_dim
        W = torch.randn(x_dim, z_dim, generator=generator, dtype=dtype) if W is None else torch.as_tensor(W, dtype=dtype)
        b = torch.randn(x_dim, generator=generator, dtype=dtype) if b is None else torch.as_tensor(b, dtype=dtype)
        if W.shape != (x_dim, z_dim) or b.shape != (x_dim,):
            raise ValueError(f"W must be ({x_dim}, {z_dim}) and b ({x_dim},), got {tuple(W.shape)}, {tuple(b.shape)}")
        self.W = nn.Parameter(W)
        self.b = nn.Parameter(b)
        self.log_noise = nn.Parameter(torch.tensor(math.log(noise_std), dtype=dtype))
        self.A = nn.Parameter(torch.zeros(z_dim, x_dim, dtype=dtype))
        self.c = nn.Parameter(torch.zeros(z_dim, dtype=dtype))
        self.v = nn.Parameter(torch.zeros(z_dim, dtype=dtype))
        self.config = dict(model="LinearGaussian", x_dim=x_dim, z_dim=z_dim)

    @property
    def noise_std(self):
        return torch.exp(self.log_noise)

    def log_lik(self, x, z):
        mean = z @ self.W.T + self.b
        return gaussian_log_prob(x, mean, self.noise_std.expand_as(mean))

    def encode(self, x):
        mu = x @ self.A.T + self.c
        return mu, torch.exp(self.v).expand_as(mu)

    def marginal_cov(self):
        return self.W @ self.W.T + self.noise_std ** 2 * torch.eye(self.x_dim, dtype=self.W.dtype)

    def exact_log_px(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = log N(x; b, W W^T + s^2 I), shape (B,)."""
        dist = torch.distributions.MultivariateNormal(self.b, covariance_matrix=self.marginal_cov())
        return dist.log_prob(x)

    def posterior(self, x: torch.Tensor):
        """Exact p(z|x) as (mean (B, Z), covariance (Z, Z))."""
        s2 = self.noise_std ** 2
        S = torch.linalg.inv(torch.eye(self.z_dim, dtype=self.W.dtype) + self.W.T @ self.W / s2)
        return (x - self.b) @ self.W @ S / s2, S

    def exact_encoder(self):
        """(A, c, std) of the best linear encoder: the exact posterior mean map and marginal stds."""
        s2 = self.noise_std ** 2
        S = torch.linalg.inv(torch.eye(self.z_dim, dtype=self.W.dtype) + self.W.T @ self.W / s2)
        A = S @ self.W.T / s2
        return A, -A @ self.b, torch.sqrt(torch.diagonal(S))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None):
        z = torch.randn(n, self.z_dim, generator=generator, dtype=self.W.dtype)
        return z, self.sample_x(z, generator)

    @torch.no_grad()
    def sample_x(self, z, generator=None):
        eps = torch.randn(*z.shape[:-1], self.x_dim, generator=generator, dtype=self.W.dtype)
        return z @ self.W.T + self.b + self.noise_std * eps

    def encoder_parameters(self):
        return [self.A, self.c, self.v]

    def decoder_parameters(self):
        return [self.W, self.b, self.log_noise]
