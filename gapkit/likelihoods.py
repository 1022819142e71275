"""Log-densities, summed over the event's last dimension and batched over any leading ones.

* :func:`gaussian_log_prob` - diagonal Gaussian, ``log N(z; mu, std^2)``.
* :func:`bernoulli_log_prob` - ``x log sigmoid(l) + (1 - x) log sigmoid(-l)`` for logits ``l``.
* :func:`discretized_logistic_log_prob` - 8-bit pixels (Salimans et al. 2017, PixelCNN++):
  ``P(x) = sigmoid((x + 1/2 - mu) / s) - sigmoid((x - 1/2 - mu) / s)`` for x in 0..255, with
  the outer edges at -inf and +inf so that the 256 masses sum to exactly one.
* :func:`gaussian_kl` - KL divergence of a diagonal Gaussian from N(0, I) or a full-covariance Gaussian.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .checks import one_of, reading_values

LOG_2PI = math.log(2 * math.pi)

SUPPORT = {"bernoulli": "values in [0, 1] (binary pixels, or probabilities for dynamic binarization)",
           "logistic": "integers 0..255 (8-bit pixels stored as floats)",
           "gaussian": "finite real values"}


def check_data(x: torch.Tensor, likelihood: str, name: str = "x") -> torch.Tensor:
    """Refuse data outside a likelihood's support, or with NaN or infinite values (``ValueError``).

    A Bernoulli model takes values in [0, 1]; the discretized logistic integers 0..255; a Gaussian
    any finite value. One NaN pixel would otherwise turn every parameter into NaN, and a pixel of 2
    under a Bernoulli model would give a finite number that is no bound at all.
    """
    one_of("likelihood", likelihood, SUPPORT)
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got "
                        f"{x.dtype if torch.is_tensor(x) else type(x).__name__}")
    if x.numel() == 0 or not reading_values():   # inside gapkit.train the data was checked when loaded
        return x
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        n = int((~finite).sum())
        raise ValueError(f"{name} has {n} NaN or infinite value(s) (first at flat index "
                         f"{int((~finite).flatten().nonzero()[0])}); a {likelihood} model takes {SUPPORT[likelihood]}")
    if likelihood == "bernoulli":
        bad = (x < 0) | (x > 1)
    elif likelihood == "logistic":
        bad = (x < 0) | (x > 255) | (x != torch.round(x))
    else:
        return x
    if bool(bad.any()):
        v = x[bad].flatten()[0].item()
        raise ValueError(f"{name} has {int(bad.sum())} value(s) outside the {likelihood} model's support "
                         f"(e.g. {v:g}); it takes {SUPPORT[likelihood]}")
    return x


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """sum_d log N(z_d; mu_d, std_d^2)."""
    return (-0.5 * ((z - mu) / std) ** 2 - torch.log(std) - 0.5 * LOG_2PI).sum(-1)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """sum_d log N(z_d; 0, 1)."""
    return (-0.5 * z ** 2 - 0.5 * LOG_2PI).sum(-1)


def bernoulli_log_prob(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """sum_d log Bernoulli(x_d; sigmoid(logits_d)), stable for any logits."""
    # log p = x l - softplus(l); with K samples of logits (..., B, D) and one x (B, D) the product
    # is one batched contraction, without materializing x expanded to the logits' shape.
    lead = logits.shape[:logits.dim() - x.dim()]
    if lead and logits.shape[len(lead):] == x.shape and x.dim() == 2:
        xl = torch.einsum("kbd,bd->kb", logits.reshape(-1, *x.shape), x).reshape(*lead, x.shape[0])
    else:
        xl = (logits * x).sum(-1)
    return xl - F.softplus(logits).sum(-1)


def _log1mexp(t: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(t)) for t <= 0 (Maechler 2012)."""
    return torch.where(t > -math.log(2), torch.log(-torch.expm1(t)), torch.log1p(-torch.exp(t)))


def discretized_logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor,
                                  reduce: bool = True) -> torch.Tensor:
    """log P(x) of 8-bit pixels x in {0..255} (float) under a discretized logistic.

    ``mean`` is in pixel units (0..255), ``log_scale`` the log of the scale in pixel units.
    Computed in log space on the side of the mean where the two sigmoids differ most,
    with the bin-centre density as a fallback where the difference underflows, so that
    it stays finite and normalized for extreme means and scales.
    """
    x = x.expand_as(mean)
    inv_s = torch.exp(-log_scale)
    a = (x + 0.5 - mean) * inv_s  # upper edge
    b = (x - 0.5 - mean) * inv_s  # lower edge
    # log(sigmoid(a) - sigmoid(b)) = log(sigmoid(-b) - sigmoid(-a)); use the side with the smaller values.
    flip = (a + b) > 0
    hi = torch.where(flip, -b, a)
    lo = torch.where(flip, -a, b)
    log_hi, log_lo = F.logsigmoid(hi), F.logsigmoid(lo)
    diff = (log_lo - log_hi).clamp(max=0.0)
    interior = log_hi + _log1mexp(torch.where(diff < 0, diff, torch.full_like(diff, -1e-30)))
    # Bin-centre density times width 1 where the difference underflowed.
    m = (x - mean) * inv_s
    centre = F.logsigmoid(m) + F.logsigmoid(-m) - log_scale
    interior = torch.where(diff < -1e-3, interior, centre)
    lowest = F.logsigmoid(a)      # x = 0: P = sigmoid(a), lower edge at -inf
    highest = F.logsigmoid(-b)    # x = 255: P = 1 - sigmoid(b)
    out = torch.where(x < 0.5, lowest, torch.where(x > 254.5, highest, interior))
    return out.sum(-1) if reduce else out


def gaussian_kl(mu_q: torch.Tensor, std_q: torch.Tensor, mu_p: torch.Tensor | None = None,
                cov_p: torch.Tensor | None = None) -> torch.Tensor:
    """KL(N(mu_q, diag std_q^2) || p) per row: (..., Z) -> (...).

    ``p = N(0, I)`` (``mu_p``, ``cov_p`` None): ``1/2 sum_d (mu^2 + std^2 - 1 - 2 log std)``.
    ``p = N(mu_p, cov_p)`` (``cov_p`` (Z, Z)), with ``V = diag std_q^2`` and ``S = cov_p``:
    ``1/2 [tr(S^-1 V) + (mu_p - mu_q)^T S^-1 (mu_p - mu_q) - Z + log det S - log det V]``.
    """
    if (mu_p is None) != (cov_p is None):
        raise ValueError("give both mu_p and cov_p (a full-covariance p) or neither (p = N(0, I))")
    if cov_p is None:
        return 0.5 * (mu_q ** 2 + std_q ** 2 - 1.0 - 2.0 * torch.log(std_q)).sum(-1)
    var_q = std_q ** 2
    prec = torch.linalg.inv(cov_p)
    d = mu_p - mu_q
    return 0.5 * ((torch.diagonal(prec) * var_q).sum(-1) + ((d @ prec) * d).sum(-1) - mu_q.shape[-1]
                  + torch.logdet(cov_p) - torch.log(var_q).sum(-1))
