"""Latent-variable models: the MLP VAE and the linear-Gaussian ground truth.

Every model offers the same pieces, batched over any leading sample dimensions:

* ``log_prior(z)``: log p(z), z of shape (..., Z) -> (...);
* ``log_lik(x, z)``: log p(x|z), x (B, D) and z (K, B, Z) -> (K, B);
* ``log_joint(x, z)``: their sum;
* ``encode(x)``: the amortized q(z|x) = N(mu, diag(std^2)) as ``(mu, std)``;
* ``sample(n)``: (z, x) from p(z) p(x|z);
* ``encoder_parameters()`` / ``decoder_parameters()``: phi and theta, trained separately.

``model.config`` is a plain dict that rebuilds the model (``build_model(config)``) and that
checkpoints store, so that a checkpoint of another architecture is refused by name.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checks import int_sizes, number, one_of, positive_int
from .likelihoods import (bernoulli_log_prob, check_data, discretized_logistic_log_prob, gaussian_log_prob,
                          standard_normal_log_prob)

__all__ = ["VAE", "LinearGaussian", "build_model", "load_model", "ACTIVATIONS", "LIKELIHOODS"]

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "softplus": nn.Softplus}
LIKELIHOODS = ("bernoulli", "logistic")
MIN_STD = 1e-4


def mlp(sizes, activation: str) -> nn.Sequential:
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class LatentModel(nn.Module):
    """Shared pieces: the standard-normal prior and the joint."""

    x_dim: int
    z_dim: int

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return standard_normal_log_prob(z)

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.log_prior(z) + self.log_lik(x, z)

    def log_q(self, z: torch.Tensor, mu: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        return gaussian_log_prob(z, mu, std)

    def check_x(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(x) or not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor of shape (B, {self.x_dim}), got "
                            f"{type(x).__name__ if not torch.is_tensor(x) else x.dtype}")
        if x.dim() != 2 or x.shape[-1] != self.x_dim:
            raise ValueError(f"x must have shape (B, {self.x_dim}), got {tuple(x.shape)}")
        return check_data(x, getattr(self, "likelihood", "gaussian"))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


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
        return x / 255.0 if self.likelihood == "logistic" else x

    def encode(self, x: torch.Tensor):
        """q(z|x) as (mu, std), each (B, Z)."""
        h = self.encoder(self.encoder_input(x))
        mu, s = h.chunk(2, dim=-1)
        return mu, F.softplus(s) + MIN_STD

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


def build_model(config: dict) -> LatentModel:
    """Rebuild a model from its ``config`` dict."""
    config = dict(config)
    kind = config.pop("model", None)
    if kind == "VAE":
        return VAE(**config)
    if kind == "LinearGaussian":
        return LinearGaussian(**config)
    raise ValueError(f"unknown model {kind!r}; valid: 'VAE', 'LinearGaussian'")


def load_model(path, device=None) -> LatentModel:
    """The model of a checkpoint (:func:`gapkit.io.save_checkpoint`), rebuilt from its config, with
    its weights, in eval mode, on ``device`` (default the CPU)."""
    from .io import load_checkpoint
    ck = load_checkpoint(path, map_location="cpu")
    model = build_model(ck["model_config"])
    model.load_state_dict(ck["model"])
    if device is not None:
        model.to(device)
    return model.eval()
