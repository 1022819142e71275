"""The coder's quantized probability tables, and the information content of a coded symbol
(`chapter 7 <https://gapkit.github.io/gapkit/notebooks/07_bits_back.html>`_).

* Latent bins: each latent dimension is cut into n = 2^latent_bits bins of equal prior mass, with
  edges at the prior's quantiles Phi^-1(k/n); the decoder sees the bin centre Phi^-1((k + 1/2)/n).
* :func:`posterior_table`: q's bin masses Q(k) = Phi((e_{k+1} - mu)/sigma) - Phi((e_k - mu)/sigma), as a
  CDF rounded to multiples of 2^-P (P < 24, as craystack does: far-tail bins may be empty) or, at
  P = 24, normalized CDF differences (the entropy coder's own leaky quantization).
* :func:`bernoulli_probs`: P(x=1) = sigmoid(logit) rounded to multiples of 2^-P, clipped to [2^-P, 1 - 2^-P].
* :func:`logistic_tables`: the discretized logistic P(x) = sigmoid((x + 1/2 - m)/s) - sigmoid((x - 1/2 - m)/s)
  over 0..255 (outer edges at -inf/+inf), through :func:`quantize`.
* :func:`info`: -log2 P of a symbol, floored at 2^-24 (the one place this expression is written);
  :func:`entropy_bits`: sum_k Q(k) * info(Q(k)).
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["FLOOR", "info", "entropy_bits", "latent_bins", "quantize", "posterior_table", "bernoulli_probs",
           "logistic_tables"]

FLOOR = 2.0 ** -24  # the smallest probability the entropy coder gives any symbol


def info(p):
    """Information content in bits, -log2 max(p, 2^-24), elementwise (keeps p's float type)."""
    return -np.log2(np.maximum(p, FLOOR))


def entropy_bits(table) -> float:
    """Entropy in bits of the rows of a probability table, summed: sum_rows sum_k Q(k) info(Q(k))."""
    return float((table * info(table)).sum())


def latent_bins(latent_bits: int):
    """(edges (n+1,) float64 from -inf to inf, bin centres (n,) float32) of n = 2^latent_bits equal-mass bins."""
    n = 2 ** latent_bits
    k = torch.arange(n + 1, dtype=torch.float64)
    return torch.special.ndtri(k / n), torch.special.ndtri((k[:-1] + 0.5) / n).float()


def quantize(p: torch.Tensor, precision: int) -> torch.Tensor:
    """Probabilities (..., n) -> multiples of 2^-precision, each >= 2^-precision, summing to 1.

    counts_k = 1 + floor(p_k (2^P - n)); the remainder goes to the largest bin. Exact in float32 for P <= 24.
    """
    n = p.shape[-1]
    total = float(2 ** precision)  # integers up to 2^24 are exact in float32
    p = p.clamp_min(0.0)
    p = p / p.sum(-1, keepdim=True)
    counts = torch.floor(p * (total - n)) + 1.0
    rem = total - counts.sum(-1, keepdim=True)
    counts.scatter_add_(-1, counts.argmax(-1, keepdim=True), rem)
    return counts / total


def posterior_table(mu, std, edges32, precision: int) -> np.ndarray:
    """Bin masses of q: (L, Z) each -> (L*Z, n) float32, CDF differences at the prior's bin edges.

    P < 24: Q(k) = (round(2^P Phi_{k+1}) - round(2^P Phi_k)) / 2^P, so far-tail bins may be empty (only a
    popped bin is ever pushed back with q; the coder still leaks 2^-24 into them, so every bin stays
    codable). P = 24: the normalized CDF differences.
    """
    n = edges32.numel() - 1
    cdf = torch.special.ndtr((edges32 - mu[..., None]) / std[..., None])     # (L, Z, n+1)
    if precision < 24:
        t = float(2 ** precision)
        c = torch.round(cdf.double() * t)                                    # integers
        c[..., 0], c[..., -1] = 0.0, t
        c = torch.cummax(c, -1).values.clamp_max(t)                          # monotone
        return ((c[..., 1:] - c[..., :-1]) / t).float().reshape(-1, n).numpy()
    p = (cdf[..., 1:] - cdf[..., :-1]).reshape(-1, n).clamp_min_(0.0)
    return (p / p.sum(-1, keepdim=True)).numpy()


def bernoulli_probs(logits, precision: int) -> np.ndarray:
    """P(x=1) on the grid 2^-P, clipped to [2^-P, 1 - 2^-P]: (L, D) logits -> (L*D,) float64."""
    t = float(2 ** precision)
    p = torch.sigmoid(logits.double())
    return (torch.round(p * t).clamp(1.0, t - 1.0) / t).reshape(-1).numpy()


def logistic_tables(mean, log_scale, precision: int):
    """Discretized-logistic tables in chunks of pixels: (L, D) each -> [(slice, (rows, 256) float32 table)]."""
    mean, log_scale = mean.double().reshape(-1), log_scale.double().reshape(-1)
    step = max(1, (1 << 20) // 256)
    edges = torch.arange(256, dtype=torch.float64)[:-1] + 0.5                # (255,)
    chunks = []
    for s in range(0, mean.numel(), step):
        m, ls = mean[s:s + step, None], log_scale[s:s + step, None]
        cdf = torch.sigmoid((edges - m) * torch.exp(-ls))                      # (r, 255)
        cdf = torch.cat([torch.zeros_like(m), cdf, torch.ones_like(m)], 1)
        chunks.append((slice(s, s + step), quantize(cdf[:, 1:] - cdf[:, :-1], precision).numpy()))
    return chunks
