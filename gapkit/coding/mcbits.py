"""Monte Carlo bits-back coding with importance sampling: a code length of -IWAE-K (chapter 7).

Ruan et al. (ICML 2021), "Improving Lossless Compression Rates via Monte Carlo Bits-Back Coding",
code an image in an extended latent space. For a group of L images with K samples each
(:class:`gapkit.coding.BitsBackCodec` with ``samples=K``), on the ANS stack:

1. **pop** z_1..z_K, each from q(z|x) (the same quantized table K times: K*L*Z latent bins);
2. compute the log-weights  log2 w_k = log2 P(x|z_k) + log2 P(z_k) - log2 Q(z_k)  from the
   *quantized* probabilities the coder uses (the prior term is the same for every k and drops out);
3. **pop** an index j with probabilities W_j = w_j / sum_k w_k;
4. **push** the K-1 other samples back with q (bits back for them);
5. **push** x with p(x|z_j), z_j with the prior (uniform bins) and j uniformly over K.

Per image the stack grows by  -log2 p(x|z_j) - log2 p(z_j) + log2 q(z_j|x) + log2 W_j + log2 K
= -log2 (1/K) sum_k w_k: on average -IWAE-K (in bits) instead of -ELBO. Decoding runs the steps
backwards: pop j, pop z_j with the prior, pop x with p(x|z_j), pop the K-1 others with q(.|x), rebuild
z_1..z_K, push j with W and z_1..z_K with q.

Exactness: both sides run the decoder on exactly the same tensors: the (K*L)-row batch of all K
samples (for the weights) and the L-row batch of the z_j (for the pixels), and the weights are
computed in float64 numpy from identical inputs, so W is the same array on both sides. K = 1 is the
plain bits-back coder (no index is coded). Any encoder and K-step optimal inference compose with it:
q is whatever the codec's :meth:`_posterior` gives.
"""
from __future__ import annotations

import constriction
import numpy as np

__all__ = ["encode_group", "decode_group", "log2_weights"]

_CAT = constriction.stream.model.Categorical(perfect=False)
_FLOOR = 2.0 ** -24


class Underflow(Exception):
    """The encoder popped more bits than the stack held: retry with more initial words."""


def _log2_px(codec, x_u8: np.ndarray, out, K: int) -> np.ndarray:
    """log2 P(x|z_k) under the coder's quantized pixel tables: x (L, D), decoder out (K*L rows) -> (K, L)."""
    L, D = x_u8.shape
    sym = np.tile(x_u8.reshape(-1), K)                                   # (K*L*D,)
    if codec.likelihood == "bernoulli":
        p = codec._bernoulli_p(out)                                      # (K*L*D,) P(x=1)
        lp = np.log2(np.where(sym == 1, p, 1.0 - p))
    else:
        lp = np.empty(sym.shape, np.float64)
        for sl, tab in codec._logistic_chunks(out, K * L):
            rows = np.arange(len(tab))
            lp[sl] = np.log2(np.maximum(tab[rows, sym[sl]].astype(np.float64), _FLOOR))
    return lp.reshape(K, L, D).sum(-1)


def _log2_q(qtab: np.ndarray, z: np.ndarray, K: int, L: int, Z: int) -> np.ndarray:
    """log2 Q(z_k|x) of popped bins: q table (L*Z, n), z (K, L, Z) -> (K, L)."""
    rows = np.tile(np.arange(L * Z), K)
    q = qtab[rows, z.reshape(-1)].astype(np.float64)
    return np.log2(np.maximum(q, _FLOOR)).reshape(K, L, Z).sum(-1)


def log2_weights(codec, x_u8, qtab, z) -> np.ndarray:
    """log2 w_k - log2 P(z_k) = log2 P(x|z_k) - log2 Q(z_k|x): z (K, L, Z) -> (K, L) float64."""
    K, L, Z = z.shape
    out = codec._decoder_out(z.reshape(-1), K * L)                      # one batch of K*L rows
    return _log2_px(codec, x_u8, out, K) - _log2_q(qtab, z, K, L, Z)


def _index_table(logw: np.ndarray) -> np.ndarray:
    """Probabilities of the index j, W_j = w_j / sum w: (K, L) log2-weights -> (L, K) float64."""
    w = np.exp2(logw - logw.max(0, keepdims=True))
    return np.ascontiguousarray((w / w.sum(0, keepdims=True)).T)


def _others(z: np.ndarray, j: np.ndarray):
    """The K-1 samples that are not z_j, flattened (k-major) -> (bins ((K-1)*L*Z,), image of each row)."""
    K, L, Z = z.shape
    keep = np.arange(K)[:, None] != j[None, :]                           # (K, L)
    img = np.broadcast_to(np.arange(L), (K, L))[keep]                    # ((K-1)*L,)
    return z[keep].reshape(-1), img


def _table_rows(qtab: np.ndarray, img: np.ndarray, Z: int) -> np.ndarray:
    """q's rows for latents of images ``img``: (L*Z, n) -> (len(img)*Z, n)."""
    n = qtab.shape[1]
    return qtab.reshape(-1, Z, n)[img].reshape(-1, n)


def encode_group(codec, ans, x_u8: np.ndarray, qtab: np.ndarray):
    """Push a group of L images (x_u8 (L, D)) with K = codec.samples importance samples."""
    K, L, Z = codec.samples, len(x_u8), codec.z_dim
    before = ans.num_valid_bits()
    z = ans.decode(_CAT, np.tile(qtab, (K, 1))).reshape(K, L, Z)         # pop z_1..z_K ~ q
    logw = log2_weights(codec, x_u8, qtab, z)                           # (K, L)
    info = -_log2_q(qtab, z, K, L, Z).sum()
    if before - info < 64:
        raise Underflow()
    W = _index_table(logw)                                              # (L, K)
    j = ans.decode(_CAT, W)                                             # pop j ~ W
    info += -np.log2(np.maximum(W[np.arange(L), j], _FLOOR)).sum()
    if before - info < 32:
        raise Underflow()
    others, img = _others(z, j)
    ans.encode_reverse(others.astype(np.int32), _CAT, _table_rows(qtab, img, Z))   # push the K-1 others ~ q
    zj = z[j, np.arange(L)]                                             # (L, Z)
    codec._push_pixels(ans, x_u8, codec._decoder_out(zj.reshape(-1), L), L)        # push x ~ p(x|z_j)
    ans.encode_reverse(zj.reshape(-1).astype(np.int32), codec._uniform)            # push z_j ~ p(z)
    ans.encode_reverse(j.astype(np.int32), constriction.stream.model.Uniform(K))   # push j uniformly


def decode_group(codec, ans, L: int, g: int) -> np.ndarray:
    """Pop a group of L images pushed by :func:`encode_group` and give the bits back -> (L, D) uint8."""
    import torch
    K, Z = codec.samples, codec.z_dim
    j = ans.decode(constriction.stream.model.Uniform(K), L)             # pop j
    zj = ans.decode(codec._uniform, L * Z).reshape(L, Z)                # pop z_j ~ p(z)
    xg = codec._pop_pixels(ans, codec._decoder_out(zj.reshape(-1), L), L).astype(np.uint8)  # pop x ~ p(x|z_j)
    qtab = codec._q_table(*codec._posterior(torch.from_numpy(xg).float(), g))
    keep = np.arange(K)[:, None] != j[None, :]
    img = np.broadcast_to(np.arange(L), (K, L))[keep]
    others = ans.decode(_CAT, _table_rows(qtab, img, Z))                # pop the K-1 others ~ q
    z = np.empty((K, L, Z), np.int32)
    z[keep] = others.reshape(-1, Z)
    z[j, np.arange(L)] = zj
    W = _index_table(log2_weights(codec, xg, qtab, z))
    ans.encode_reverse(j.astype(np.int32), _CAT, W)                     # push j ~ W
    ans.encode_reverse(z.reshape(-1), _CAT, np.tile(qtab, (K, 1)))      # push z_1..z_K ~ q
    return xg
