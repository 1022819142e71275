"""What every latent-variable model offers, batched over any leading sample dimensions:

* ``log_prior(z)``: log p(z), z of shape (..., Z) -> (...);
* ``log_lik(x, z)``: log p(x|z), x (B, D) and z (K, B, Z) -> (K, B);
* ``log_joint(x, z)``: their sum;
* ``encode(x)``: the amortized q(z|x) = N(mu, diag(std^2)) as ``(mu, std)``; it is
  ``encode_input(encoder_input(x))``: ``encoder_input`` maps data to what the encoder network sees
  (the identity here; pixels / 255 for 8-bit data in :class:`gapkit.models.VAE`), so that noise or
  any other change meant "on the encoder's scale" is applied between the two;
* ``sample(n)``: (z, x) from p(z) p(x|z);
* ``encoder_parameters()`` / ``decoder_parameters()``: phi and theta, trained separately.

``model.config`` is a plain dict that rebuilds the model (:func:`gapkit.models.build_model`) and that
checkpoints store, so that a checkpoint of another architecture is refused by name.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..likelihoods import check_data, gaussian_log_prob, standard_normal_log_prob

__all__ = ["LatentModel", "mlp", "ACTIVATIONS", "LIKELIHOODS", "MIN_STD"]

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

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the encoder network sees of data x: u = x here (a subclass that rescales overrides it)."""
        return x

    def encode_input(self, u: torch.Tensor):
        """q(z|x) as (mu, std) from the encoder's input u = ``encoder_input(x)``; here ``encode(u)``,
        valid because ``encoder_input`` is the identity (a subclass that rescales overrides both)."""
        return self.encode(u)

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


