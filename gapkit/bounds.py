"""Variational bounds as pure functions of log importance weights.

The sample dimension comes first: ``log_w`` has shape (K, B) with
``log w_k = log p(x, z_k) - log q(z_k | x)``, ``z_k ~ q(z | x)``, and each bound returns (B,).

* ELBO (Kingma & Welling 2014):  ``L_1 = (1/K) sum_k log w_k`` (a K-sample average of the ELBO).
* IWAE (Burda et al. 2016):      ``L_K = log (1/K) sum_k w_k``;  ``L_1`` = ELBO,
  ``L_K <= L_{K+1} <= log p(x)`` in expectation, and ``L_K -> log p(x)`` as K grows.

Bits per dimension of a bound ``L`` in nats on D-pixel images: ``BPD = -L / (D ln 2)``.
Chapter 1 (``notebooks/01_elbo_tightness``) explains them; later chapters add their bounds here.
"""
from __future__ import annotations

import math

import torch

__all__ = ["log_mean_exp", "elbo", "iwae", "bpd", "nats_to_bpd", "check_log_w"]


def check_log_w(log_w: torch.Tensor, min_dim: int = 2, name: str = "log_w") -> torch.Tensor:
    if not torch.is_tensor(log_w) or not log_w.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got "
                        f"{log_w.dtype if torch.is_tensor(log_w) else type(log_w).__name__}")
    if log_w.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimensions with the sample dimension "
                         f"first, e.g. (K, B); got shape {tuple(log_w.shape)}")
    if log_w.shape[0] < 1:
        raise ValueError(f"{name} needs K >= 1 samples, got shape {tuple(log_w.shape)}")
    return log_w


def log_mean_exp(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log (1/K) sum_k exp(x_k) over ``dim``, stable for any magnitude (max-shifted)."""
    k = x.shape[dim]
    return torch.logsumexp(x, dim=dim) - math.log(k)


def elbo(log_w: torch.Tensor) -> torch.Tensor:
    """ELBO estimate ``(1/K) sum_k log w_k``: (K, B) -> (B,)."""
    return check_log_w(log_w).mean(0)


def iwae(log_w: torch.Tensor) -> torch.Tensor:
    """IWAE bound ``log (1/K) sum_k w_k``: (K, B) -> (B,). With K = 1 it is the ELBO."""
    return log_mean_exp(check_log_w(log_w), dim=0)


def nats_to_bpd(nats, dim: int):
    """Bits per dimension of a negative log-likelihood ``nats`` (>= 0) per D-pixel image."""
    return nats / (dim * math.log(2))


def bpd(bound, dim: int):
    """Bits per dimension of a lower bound ``bound`` (nats per image, <= 0): ``-bound / (D ln 2)``."""
    return -bound / (dim * math.log(2))
