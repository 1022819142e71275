"""Monte Carlo bits-back coding with importance sampling: a code length of -IWAE-K
(`chapter 7 <https://gapkit.github.io/gapkit/notebooks/07_bits_back.html>`_).

Ruan et al. (ICML 2021), "Improving Lossless Compression Rates via Monte Carlo Bits-Back Coding",
code an image in an extended latent space. From the same prior, likelihood and posterior codecs as
:func:`gapkit.coding.bitsback.bits_back`, for a group of L images with K samples each:

* **push**: pop z_1..z_K, each with q(z | x); compute the log-weights
  log2 w_k - log2 P(z_k) = log2 P(x | z_k) - log2 Q(z_k | x) from the *quantized* probabilities the
  codecs code with (the prior term is the same for every k); pop an index j with W_j = w_j / sum_k w_k;
  push the K-1 other samples back with q; push x with p(x | z_j), z_j with p(z) and j uniformly over K.
* **pop**: pop j, pop z_j with p(z), pop x with p(x | z_j), pop the K-1 others with q(. | x), rebuild
  z_1..z_K and W, push j with W and z_1..z_K with q.

Per image the stack grows by -log2 (1/K) sum_k w_k: on average -IWAE-K (in bits) instead of -ELBO.
Both sides run the decoder on the same tensors (the K*L-row batch of all samples, the L-row batch of
the z_j) and compute W in float64 from identical inputs, so W is the same array on both sides.
"""
from __future__ import annotations

import numpy as np

from .codecs import Codec, categorical, uniform
from .stack import check_reserve
from .tables import info

__all__ = ["mc_bits_back", "log2_weights"]


def _bits_q(qK: Codec, z: np.ndarray) -> np.ndarray:
    """-log2 Q(z_k | x) of the samples z (K, L, Z) under the K-fold posterior codec -> (K, L) float64."""
    K, L, Z = z.shape
    return info(qK.prob(z.reshape(-1)).astype(np.float64)).reshape(K, L, Z).sum(-1)


def log2_weights(likelihood, qK: Codec, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """log2 w_k - log2 P(z_k) = log2 P(x | z_k) - log2 Q(z_k | x): x (L, D), z (K, L, Z) -> (K, L) float64."""
    K = len(z)
    px = likelihood(z.reshape(-1))                                       # one decoder batch of K*L rows
    bits_x = info(px.prob(np.tile(x.reshape(-1), K)).astype(np.float64)).reshape(K, len(x), -1).sum(-1)
    return _bits_q(qK, z) - bits_x


def _index_table(logw: np.ndarray) -> np.ndarray:
    """Probabilities of the index j, W_j = w_j / sum w: (K, L) log2-weights -> (L, K) float64."""
    w = np.exp2(logw - logw.max(0, keepdims=True))
    return np.ascontiguousarray((w / w.sum(0, keepdims=True)).T)


def _others(K: int, j: np.ndarray):
    """(K, L) mask of the samples that are not z_j, and the image of each such sample (k-major)."""
    L = len(j)
    keep = np.arange(K)[:, None] != j[None, :]
    return keep, np.broadcast_to(np.arange(L), (K, L))[keep]


def _rows(table: np.ndarray, img: np.ndarray, Z: int) -> np.ndarray:
    """q's rows for the latents of images ``img``: (L*Z, n) -> (len(img)*Z, n)."""
    n = table.shape[1]
    return table.reshape(-1, Z, n)[img].reshape(-1, n)


def mc_bits_back(prior: Codec, likelihood, posterior, K: int, L: int) -> Codec:
    """The Monte Carlo bits-back codec of a group of L images with K >= 2 importance samples an image, from
    ``prior`` (the codec of the L*Z latents), ``likelihood(z)`` and ``posterior(x)`` (functions returning
    codecs)."""
    index = uniform(K, L)

    def push(ans, x):
        qtab = posterior(x).table
        Z = len(qtab) // L
        before = ans.num_valid_bits()
        qK = categorical(np.tile(qtab, (K, 1)))
        z = qK.pop(ans).reshape(K, L, Z)                                 # pop z_1..z_K ~ q
        logw = log2_weights(likelihood, qK, x, z)                        # (K, L)
        popped = _bits_q(qK, z).sum()
        check_reserve(before, popped, 64)
        W = categorical(_index_table(logw))
        j = W.pop(ans)                                                   # pop j ~ W
        check_reserve(before, popped + info(W.prob(j)).sum(), 32)
        keep, img = _others(K, j)
        categorical(_rows(qtab, img, Z)).push(ans, z[keep].reshape(-1))  # push the K-1 others ~ q
        zj = z[j, np.arange(L)].reshape(-1)                              # (L*Z,)
        likelihood(zj).push(ans, x)                                      # push x ~ p(x|z_j)
        prior.push(ans, zj)                                              # push z_j ~ p(z)
        index.push(ans, j)                                               # push j uniformly

    def pop(ans):
        j = index.pop(ans)                                               # pop j
        zj = prior.pop(ans)                                              # pop z_j ~ p(z)
        x = likelihood(zj).pop(ans)                                      # pop x ~ p(x|z_j)
        qtab = posterior(x).table
        Z = len(qtab) // L
        keep, img = _others(K, j)
        z = np.empty((K, L, Z), np.int32)
        z[keep] = categorical(_rows(qtab, img, Z)).pop(ans).reshape(-1, Z)  # pop the K-1 others ~ q
        z[j, np.arange(L)] = zj.reshape(L, Z)
        qK = categorical(np.tile(qtab, (K, 1)))
        categorical(_index_table(log2_weights(likelihood, qK, x, z))).push(ans, j)  # push j ~ W
        qK.push(ans, z.reshape(-1))                                      # push z_1..z_K ~ q
        return x
    return Codec(push, pop)
