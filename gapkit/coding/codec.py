"""Bits-back coding with ANS over a trained VAE: a real lossless compressor (chapter 7).

Chapter 7 (``notebooks/07_bits_back``) explains every step. For one image x (Townsend et al. 2019;
Zhang et al. 2022, Algorithm 1), on a stack of bits:

1. **pop** a latent z from the stack with the posterior q(z|x) (decoding *is* sampling);
2. **push** x with the likelihood p(x|z);
3. **push** z with the prior p(z).

The stack grows by  -log2 p(x|z) - log2 p(z) + log2 q(z|x)  bits: a one-sample negative ELBO in
bits. Decompression runs the steps backwards (pop z with p(z), pop x with p(x|z), push z back with
q(z|x)) and hands the popped bits back.

Discretization. Each latent dimension is cut into n = 2^latent_bits bins of equal prior mass, with
edges at the prior's quantiles Phi^-1(k/n); the prior over a bin index is uniform (exactly
``latent_bits`` bits a latent) and the decoder sees the bin centre Phi^-1((k + 1/2)/n). The
posterior's bin masses are the differences of its Gaussian CDF at the edges,
Q(k) = Phi((e_{k+1} - mu)/sigma) - Phi((e_k - mu)/sigma), quantized to multiples of
2^-posterior_precision with every bin at least 2^-posterior_precision (so every bin is codable; at
the default 24 bits this is the coder's own leaky quantization).
Binary pixels are Bernoulli with P(x=1) = sigmoid(logit) rounded to a multiple of 2^-pixel_precision
and clipped to [2^-p, 1 - 2^-p]; 8-bit pixels use the discretized logistic
P(x) = sigmoid((x + 1/2 - m)/s) - sigmoid((x - 1/2 - m)/s) (outer edges at -inf/+inf), quantized the
same way over its 256 values. The entropy coder is ``constriction``'s stack ANS coder.

Speed and exactness. Images are coded in groups of ``group_size``: a group is one "super-image"
whose latents and pixels factorize over its images, so the networks run on a whole group at once on
both sides with the *same* tensor shapes (the decoder of the group's images needs only the group's
popped latents). Both sides therefore do bit-identical arithmetic on one machine; all work runs on
the CPU with one thread so that the thread count cannot change a rounding. Optional K-step optimal
inference (Zhang et al. 2022, Algorithm 2): before popping z, ``steps`` Adam steps (``lr``) on each
image's (mu, log sigma) from the encoder's output with a generator seeded by the group
(:func:`gapkit.optimal.per_point`); the decoder repeats them on the recovered images.

Failing loudly. The container (:mod:`gapkit.coding.container`) holds a hash of the model's
parameters, a SHA-256 of the images with their count, shape and dtype, and a SHA-256 of a probe run
of the coder's arithmetic. Before anything is decoded, every header field is checked
(:func:`validate_header`): its type, the image shape against the model, the dtype against an
allow-list, and every count, size and step number against fixed limits and against the message's
length, so an edited header (even with its CRC recomputed) is a :class:`CodecError`, never a hang,
a huge allocation or images of another shape. A decode then re-runs the probe (a machine or torch build that rounds differently is refused before
any decoding), and at the end checks that the stack gave back exactly the initial random words and
that the images hash to the stored value; any mismatch raises :class:`CodecError`.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math

import constriction
import numpy as np
import torch

from .. import smoke
from ..models import VAE
from ..optimal import per_point
from .container import CodecError, pack, unpack
from .mcbits import Underflow, decode_group as _mc_decode_group, encode_group as _mc_encode_group

__all__ = ["BitsBackCodec", "encode", "decode", "model_hash", "CodecError", "read_header", "validate_header",
           "LIMITS", "DTYPES"]

# Fixed limits on what a coder (and so a message header) may ask for.
LIMITS = {
    "steps": 1000,                  # K-step optimal inference inside the coder
    "lr": 10.0,                     # its Adam learning rate
    "group_size": 4096,             # images per network pass
    "group_table": 1 << 27,         # group_size * z_dim * 2^latent_bits entries of q's table (512 MB in float32)
    "decoded_bytes": 1 << 31,       # n_images * pixels of the decoded array (2 GiB of uint8)
    "initial_words": 1 << 24,       # 64 MiB of initial random words
    "images_per_bit": 64,           # at most 64 images per bit of the message (a real image costs > 1 bit)
    "samples": 256,                 # importance samples per image (Monte Carlo bits-back, mcbits.py)
}
# The dtypes a message may restore (what check_images accepts), as numpy's dtype.str.
DTYPES = ("|b1", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8")
HEADER_KEYS = ("codec", "coder", "dtype", "image_shape", "images_sha256", "likelihood", "model_config", "model_hash",
               "n_images", "probe_sha256", "torch")
CODER_KEYS = ("cheap_start", "group_size", "initial_words", "latent_bits", "lr", "pixel_precision",
              "posterior_precision", "samples", "seed", "steps")

INIT_SEED_STREAM = 0x6761706B  # "gapk": the stream of the initial random words

_CAT = constriction.stream.model.Categorical(perfect=False)
_BERN = constriction.stream.model.Bernoulli(perfect=False)


_Underflow = Underflow  # the encoder popped more bits than the stack held: retry with more initial words


def model_hash(model) -> str:
    """SHA-256 (hex) of a model's config and every parameter/buffer (name, dtype, shape, bytes)."""
    h = hashlib.sha256(json.dumps(getattr(model, "config", {}), sort_keys=True).encode())
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


@contextlib.contextmanager
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _int_param(name, v, lo, hi):
    from ..checks import integer
    return integer(name, v, lo, hi)


def _images_digest(x_u8: np.ndarray, shape, dtype: str) -> str:
    """SHA-256 of the images' count, per-image shape and dtype, then their pixels."""
    h = hashlib.sha256(json.dumps([int(len(x_u8)), [int(d) for d in shape], str(dtype)]).encode())
    h.update(np.ascontiguousarray(x_u8).tobytes())
    return h.hexdigest()


def _is_hex(v, n=64) -> bool:
    return isinstance(v, str) and len(v) == n and all(c in "0123456789abcdef" for c in v)


def validate_header(header, n_words: int) -> dict:
    """Check every field of a message header before use -> the coder settings, ``initial_words``,
    ``n_images``, ``image_shape`` and ``dtype``. Raises :class:`CodecError` saying what is wrong.

    Types are exact; the dtype comes from :data:`DTYPES`; counts, sizes and steps are bounded by
    :data:`LIMITS` and, for the image count, by the message's length.
    """
    def bad(msg):
        raise CodecError(f"message header rejected: {msg}")
    if not isinstance(header, dict):
        bad(f"it must be a JSON object, got {type(header).__name__}")
    missing, extra = sorted(set(HEADER_KEYS) - set(header)), sorted(set(header) - set(HEADER_KEYS))
    if missing or extra:
        bad(f"fields missing {missing} / unknown {extra}; a header has exactly {list(HEADER_KEYS)}")
    if header["codec"] != "gapkit-bits-back":
        bad(f"unknown codec {header['codec']!r}; valid: 'gapkit-bits-back'")
    for k in ("model_hash", "images_sha256", "probe_sha256"):
        if not _is_hex(header[k]):
            bad(f"{k} must be 64 lowercase hex digits, got {str(header[k])[:80]!r}")
    if not isinstance(header["model_config"], dict):
        bad("model_config must be a JSON object")
    if header["likelihood"] not in ("bernoulli", "logistic"):
        bad(f"likelihood {header['likelihood']!r}; valid: 'bernoulli', 'logistic'")
    if not isinstance(header["torch"], str) or len(header["torch"]) > 64:
        bad("torch must be a version string")
    n = header["n_images"]
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        bad(f"n_images must be a positive integer, got {n!r}")
    if n > LIMITS["images_per_bit"] * 32 * max(n_words, 1):
        bad(f"n_images {n} is impossible for a message of {n_words} words (at most {LIMITS['images_per_bit']} images "
            "per bit)")
    shape = header["image_shape"]
    if (not isinstance(shape, list) or not 1 <= len(shape) <= 3
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)):
        bad(f"image_shape must be a list of 1 to 3 positive integers, got {shape!r}")
    dim = int(np.prod(shape))
    if n * dim > LIMITS["decoded_bytes"]:
        bad(f"{n} images of {dim} pixels would need {n * dim / 2**30:.1f} GiB (limit "
            f"{LIMITS['decoded_bytes'] / 2**30:.0f} GiB)")
    if header["dtype"] not in DTYPES:
        bad(f"dtype {str(header['dtype'])[:40]!r} is not allowed; valid: {', '.join(DTYPES)}")
    c = header["coder"]
    if not isinstance(c, dict) or sorted(c) != sorted(CODER_KEYS):
        bad(f"coder must be an object with exactly the fields {list(CODER_KEYS)}, got "
            f"{sorted(c) if isinstance(c, dict) else type(c).__name__}")
    c = dict(c)
    n_init = c.pop("initial_words")
    if not isinstance(n_init, int) or isinstance(n_init, bool) or not 1 <= n_init <= LIMITS["initial_words"]:
        bad(f"coder.initial_words must be an integer in 1..{LIMITS['initial_words']}, got {n_init!r}")
    for k, v in c.items():
        if k == "lr":
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                bad(f"coder.lr must be a number, got {v!r}")
        elif not isinstance(v, int) or isinstance(v, bool):
            bad(f"coder.{k} must be an integer, got {v!r}")
    if not 1 <= c["samples"] <= LIMITS["samples"]:
        bad(f"coder.samples must be an integer in 1..{LIMITS['samples']}, got {c['samples']!r}")
    if c["cheap_start"] not in (0, 1):
        bad(f"coder.cheap_start must be 0 or 1, got {c['cheap_start']!r}")
    return {"settings": c, "initial_words": n_init, "n_images": n, "image_shape": list(shape),
            "dtype": header["dtype"]}


def initial_words(n: int, seed: int) -> np.ndarray:
    """The ``n`` random 32-bit words that start the stack (PCG64 raw output, stable across numpy)."""
    bg = np.random.PCG64([seed, INIT_SEED_STREAM])
    raw = bg.random_raw((n + 1) // 2).astype(np.uint64)
    return np.stack([raw & 0xFFFFFFFF, raw >> np.uint64(32)], 1).reshape(-1)[:n].astype(np.uint32)


def _quantize(p: torch.Tensor, precision: int) -> torch.Tensor:
    """Probabilities (..., n) -> multiples of 2^-precision, each >= 2^-precision, summing to 1.

    counts_k = 1 + floor(p_k (2^P - n)); the remainder goes to the largest bin. exact in float32 for P <= 24.
    """
    n = p.shape[-1]
    total = float(2 ** precision)  # integers up to 2^24 are exact in float32
    p = p.clamp_min(0.0)
    p = p / p.sum(-1, keepdim=True)
    counts = torch.floor(p * (total - n)) + 1.0
    rem = total - counts.sum(-1, keepdim=True)
    counts.scatter_add_(-1, counts.argmax(-1, keepdim=True), rem)
    return counts / total


class BitsBackCodec:
    """A lossless compressor of images built from a trained :class:`gapkit.models.VAE`.

    ``encode(images) -> bytes`` and ``decode(data) -> images`` (same shape and dtype as given).
    Settings (stored in every message, so a decode needs only the model):

    * ``latent_bits``: 2^latent_bits equal-prior-mass bins per latent (default 8; 10 gives the same
      code length on MNIST and is half as fast);
    * ``posterior_precision``: q's bin masses are multiples of 2^-this (default 24, the coder's);
    * ``pixel_precision``: likelihood masses are multiples of 2^-this (default 16 for Bernoulli
      pixels, 20 for 8-bit pixels);
    * ``group_size``: images coded together per network pass (default 100);
    * ``steps``, ``lr``: K-step optimal inference inside the coder (default 0: the encoder's q);
    * ``samples``: importance samples per image (default 1, plain bits-back; K > 1 is Monte Carlo
      bits-back, :mod:`gapkit.coding.mcbits`, whose code length is -IWAE-K instead of -ELBO);
    * ``cheap_start``: start the stack without initial random bits (default False): the first
      image is coded with no bits back (x with p(x|z*) at the mode bins z* of its q, then z* with
      the prior), and the groups then grow 1, 2, 4, ... up to ``group_size`` so that each first pop
      finds enough bits on the stack (if one does not, initial words are added as usual);
    * ``seed``: seeds the initial random words and the optimal-inference noise.

    Chapter 7 (``notebooks/07_bits_back``).
    """

    def __init__(self, model, latent_bits: int = 8, posterior_precision: int = 24,
                 pixel_precision: int | None = None, group_size: int = 100, steps: int = 0,
                 lr: float = 5e-3, seed: int = 0, samples: int = 1, cheap_start: bool | int = False):
        if not isinstance(model, VAE):
            raise ValueError(f"the bits-back codec needs a gapkit.models.VAE, got {type(model).__name__}")
        if model.likelihood not in ("bernoulli", "logistic"):
            raise ValueError(f"unsupported likelihood {model.likelihood!r}; valid: 'bernoulli', 'logistic'")
        self.latent_bits = _int_param("latent_bits", latent_bits, 1, 16)
        self.posterior_precision = _int_param("posterior_precision", posterior_precision, latent_bits + 1, 24)
        if pixel_precision is None:
            pixel_precision = 16 if model.likelihood == "bernoulli" else 20
        lo = 2 if model.likelihood == "bernoulli" else 9
        self.pixel_precision = _int_param("pixel_precision", pixel_precision, lo, 24)
        self.group_size = _int_param("group_size", group_size, 1, LIMITS["group_size"])
        self.steps = _int_param("steps", steps, 0, LIMITS["steps"])
        from ..checks import number
        self.lr = number("lr", lr, 0.0, LIMITS["lr"], lo_open=True)
        self.seed = _int_param("seed", seed, 0, 2 ** 63 - 1)
        self.samples = _int_param("samples", samples, 1, LIMITS["samples"])
        if cheap_start not in (0, 1):  # True/False or 0/1
            raise ValueError(f"cheap_start must be True/False (or 0/1), got {cheap_start!r}")
        self.cheap_start = int(cheap_start)
        if self.samples * self.group_size * model.z_dim * 2 ** self.latent_bits > LIMITS["group_table"]:
            raise ValueError(f"{self.samples} samples x group_size {self.group_size} x {model.z_dim} latents x "
                             f"2^{self.latent_bits} bins is a posterior table of more than {LIMITS['group_table']} "
                             "entries; lower group_size, samples or latent_bits")
        self.model = copy.deepcopy(model).to("cpu", torch.float32).eval()
        self.model_hash = model_hash(self.model)
        self.likelihood = self.model.likelihood
        self.x_dim, self.z_dim = self.model.x_dim, self.model.z_dim
        n = 2 ** self.latent_bits
        k = torch.arange(n + 1, dtype=torch.float64)
        self.edges = torch.special.ndtri(k / n)                                   # (n+1,), -inf..inf
        self.edges32 = self.edges.float()
        self.centres = torch.special.ndtri((k[:-1] + 0.5) / n).float()           # (n,)
        self._uniform = constriction.stream.model.Uniform(n)
        self.last_stats: dict = {}

    # ------------------------------------------------------------------ settings
    def settings(self) -> dict:
        return {"latent_bits": self.latent_bits, "posterior_precision": self.posterior_precision,
                "pixel_precision": self.pixel_precision, "group_size": self.group_size,
                "steps": self.steps, "lr": self.lr, "seed": self.seed, "samples": self.samples,
                "cheap_start": self.cheap_start}

    def _groups(self, n):
        """[(start, end)] of each group: ``group_size`` images; with ``cheap_start`` the first image
        alone (coded without bits back), then groups of 1, 2, 4, ... up to ``group_size``."""
        if not self.cheap_start:
            return [(s, min(s + self.group_size, n)) for s in range(0, n, self.group_size)]
        out, s, size = [(0, 1)], 1, 1
        while s < n:
            out.append((s, min(s + size, n)))
            s, size = s + size, min(2 * size, self.group_size)
        return out

    # ------------------------------------------------------------------ input checks
    def check_images(self, images):
        """Validate images -> (uint8 array (N, D), per-image shape, dtype string). Raises ValueError."""
        if torch.is_tensor(images):
            images = images.detach().cpu().numpy()
        arr = np.asarray(images)
        if arr.dtype.kind not in "buif" or arr.dtype.str not in DTYPES:
            raise ValueError(f"images must be a numeric array (bool, uint8, int or float, little-endian), got dtype "
                             f"{arr.dtype} ({arr.dtype.str}); valid: {', '.join(DTYPES)}")
        if arr.ndim < 2:
            raise ValueError(f"images must have shape (N, {self.x_dim}) or (N, H, W) with H*W = {self.x_dim}, "
                             f"got shape {arr.shape}")
        if arr.shape[0] == 0:
            raise ValueError("images is an empty batch: give at least one image")
        d = int(np.prod(arr.shape[1:]))
        if d != self.x_dim:
            raise ValueError(f"each image must have {self.x_dim} pixels (shape (N, {self.x_dim}) or (N, H, W) "
                             f"with H*W = {self.x_dim}), got shape {arr.shape}")
        flat = arr.reshape(arr.shape[0], d)
        if arr.dtype.kind == "f":
            if not np.isfinite(flat).all() or (flat != np.round(flat)).any():
                raise ValueError("images must hold integer pixel values; found non-integer or non-finite floats")
        top = 1 if self.likelihood == "bernoulli" else 255
        if arr.dtype.kind != "b" and (flat.min() < 0 or flat.max() > top):
            what = "0 or 1 (binary images)" if top == 1 else "integers 0..255 (8-bit images)"
            raise ValueError(f"this codec's model ({self.likelihood} pixels) takes pixel values {what}; "
                             f"found values in [{flat.min()}, {flat.max()}]")
        return flat.astype(np.uint8), tuple(arr.shape[1:]), arr.dtype.str

    # ------------------------------------------------------------------ the model pieces
    def _posterior(self, x: torch.Tensor, g: int):
        """(mu, std) of q(z|x) for a group (L, D) -> (L, Z) each: the encoder, then K Adam steps."""
        with torch.no_grad():
            mu, std = self.model.encode(x)
        if self.steps:
            gen = torch.Generator().manual_seed((self.seed * 1000003 + g) % (2 ** 63))
            with torch.enable_grad():
                mu, std = per_point(self.model, x, self.steps, self.lr, K=1, init=(mu, std), generator=gen)
        return mu, std

    def _q_table(self, mu, std) -> np.ndarray:
        """Bin masses of q: (L, Z) -> (L*Z, n) float32, from CDF differences at the prior's bin edges.

        With ``posterior_precision`` P < 24 the CDF is rounded to multiples of 2^-P, as craystack
        does: Q(k) = (round(2^P Phi_k+1) - round(2^P Phi_k)) / 2^P, so far-tail bins may be empty (only a
        popped bin is ever pushed back with q; the coder still leaks 2^-24 into them, so every bin
        stays codable). At 24 the coder's own leaky quantization (every bin at least 2^-24) is used.
        """
        a = (self.edges32 - mu[..., None]) / std[..., None]                      # (L, Z, n+1)
        cdf = torch.special.ndtr(a)
        if self.posterior_precision < 24:
            t = float(2 ** self.posterior_precision)
            c = torch.round(cdf.double() * t)                                    # (L, Z, n+1) integers
            c[..., 0], c[..., -1] = 0.0, t
            c = torch.cummax(c, -1).values.clamp_max(t)                          # monotone
            return ((c[..., 1:] - c[..., :-1]) / t).float().reshape(-1, self.edges32.numel() - 1).numpy()
        p = (cdf[..., 1:] - cdf[..., :-1]).reshape(-1, self.edges32.numel() - 1)
        p = p.clamp_min_(0.0)
        return (p / p.sum(-1, keepdim=True)).numpy()

    def _decoder_out(self, z_idx: np.ndarray, L: int):
        z = self.centres[torch.from_numpy(z_idx.astype(np.int64))].reshape(L, self.z_dim)
        with torch.no_grad():
            return self.model.decode(z)

    def _bernoulli_p(self, logits) -> np.ndarray:
        """P(x=1) on the grid 2^-P, clipped to [2^-P, 1 - 2^-P]: (L, D) -> (L*D,) float64."""
        t = float(2 ** self.pixel_precision)
        p = torch.sigmoid(logits.double())
        return (torch.round(p * t).clamp(1.0, t - 1.0) / t).reshape(-1).numpy()

    def _logistic_chunks(self, out, L):
        """The discretized-logistic tables of a group in chunks of pixels: [(slice, (rows, 256) table)]."""
        mean, log_scale = (o.double().reshape(-1) for o in out)
        rows = mean.numel()
        step = max(1, (1 << 20) // 256)
        edges = torch.arange(256, dtype=torch.float64)[:-1] + 0.5                    # (255,)
        chunks = []
        for s in range(0, rows, step):
            m, ls = mean[s:s + step, None], log_scale[s:s + step, None]
            cdf = torch.sigmoid((edges - m) * torch.exp(-ls))                          # (r, 255)
            cdf = torch.cat([torch.zeros_like(m), cdf, torch.ones_like(m)], 1)
            chunks.append((slice(s, s + step), _quantize(cdf[:, 1:] - cdf[:, :-1], self.pixel_precision).numpy()))
        return chunks

    # ------------------------------------------------------------------ one group, both directions
    def _push_pixels(self, ans, xg: np.ndarray, out, L):
        sym = xg.reshape(-1).astype(np.int32)
        if self.likelihood == "bernoulli":
            ans.encode_reverse(sym, _BERN, self._bernoulli_p(out))
        else:
            for sl, tab in self._logistic_chunks(out, L):
                ans.encode_reverse(sym[sl], _CAT, tab)

    def _pop_pixels(self, ans, out, L) -> np.ndarray:
        if self.likelihood == "bernoulli":
            return ans.decode(_BERN, self._bernoulli_p(out)).reshape(L, self.x_dim)
        chunks = self._logistic_chunks(out, L)
        parts = [ans.decode(_CAT, tab) for _, tab in reversed(chunks)][::-1]
        return np.concatenate(parts).reshape(L, self.x_dim)

    def _encode_group(self, ans, xg_u8: np.ndarray, xg: torch.Tensor, g: int, qtab=None):
        L = len(xg_u8)
        if qtab is None:
            qtab = self._q_table(*self._posterior(xg, g))
        if self.cheap_start and g == 0:
            return self._encode_cheap(ans, xg_u8, qtab, L)
        if self.samples > 1:
            return _mc_encode_group(self, ans, xg_u8, qtab)
        before = ans.num_valid_bits()
        z_idx = ans.decode(_CAT, qtab)                                                # pop z ~ q(z|x)
        info = -np.log2(np.maximum(qtab[np.arange(len(z_idx)), z_idx], 2.0 ** -24)).sum()
        if before - info < 32:
            raise _Underflow()
        self._push_pixels(ans, xg_u8, self._decoder_out(z_idx, L), L)                  # push x ~ p(x|z)
        ans.encode_reverse(z_idx, self._uniform)                                      # push z ~ p(z)

    def _encode_cheap(self, ans, xg_u8, qtab, L):
        """No bits back (the cheap start): push x with p(x|z*) at q's mode bins z*, then z* with p(z)."""
        z_idx = qtab.argmax(1).astype(np.int32)                                     # (L*Z,)
        self._push_pixels(ans, xg_u8, self._decoder_out(z_idx, L), L)
        ans.encode_reverse(z_idx, self._uniform)

    def _decode_group(self, ans, L: int, g: int) -> np.ndarray:
        if ans.num_valid_bits() <= 0:
            raise CodecError("message truncated: the stack ran out of bits before all images were decoded")
        if self.cheap_start and g == 0:
            z_idx = ans.decode(self._uniform, L * self.z_dim)
            return self._pop_pixels(ans, self._decoder_out(z_idx, L), L).astype(np.uint8)
        if self.samples > 1:
            return _mc_decode_group(self, ans, L, g)
        z_idx = ans.decode(self._uniform, L * self.z_dim)                              # pop z ~ p(z)
        xg = self._pop_pixels(ans, self._decoder_out(z_idx, L), L).astype(np.uint8)    # pop x ~ p(x|z)
        qtab = self._q_table(*self._posterior(torch.from_numpy(xg).float(), g))
        ans.encode_reverse(z_idx.astype(np.int32), _CAT, qtab)                        # push z ~ q(z|x)
        return xg

    # ------------------------------------------------------------------ arithmetic fingerprint
    def _fingerprint(self, L: int) -> str:
        """SHA-256 of the coder's arithmetic on a fixed probe group of L images (q tables, decoder)."""
        rng = np.random.Generator(np.random.PCG64(1234567))
        top = 1 if self.likelihood == "bernoulli" else 255
        x = torch.from_numpy(rng.integers(0, top + 1, (L, self.x_dim)).astype(np.float32))
        mu, std = self._posterior(x, 0)
        qtab = self._q_table(mu, std)
        out = self._decoder_out(qtab.argmax(1).astype(np.int32), L)
        h = hashlib.sha256()
        for t in (mu, std, torch.from_numpy(qtab), *(out if isinstance(out, tuple) else (out,))):
            h.update(t.detach().contiguous().numpy().tobytes())
        return h.hexdigest()

    # ------------------------------------------------------------------ public API
    @smoke.capped("bits-back encoding", x="images", cap=False, fit=False, unit="image")
    def encode(self, images, progress: bool = False) -> bytes:
        """Compress images (N, D) or (N, H, W) into one self-describing message.

        ``self.last_stats`` then holds ``message_bits`` (the stack), ``initial_bits`` (the random
        words the first pop reads), ``net_bits`` = message - initial, ``bpd`` = net_bits / (N D),
        ``container_bytes`` and ``header_bytes``.
        """
        from ..progress import tqdm
        x_u8, shape, dtype = self.check_images(images)
        n = len(x_u8)
        x = torch.from_numpy(x_u8).float()
        groups = self._groups(n)
        with _one_thread():
            probe = self._fingerprint(groups[0][1] - groups[0][0])
            q0 = self._q_table(*self._posterior(x[groups[0][0]:groups[0][1]], 0))
            h0 = float(-(q0 * np.log2(np.maximum(q0, 2.0 ** -24))).sum())          # entropy of the first pop (bits)
            n_init = 1 if self.cheap_start else int(math.ceil((1.25 * h0 * self.samples + 256) / 32))
            while True:
                ans = constriction.stream.stack.AnsCoder(initial_words(n_init, self.seed), seal=True)
                start_bits = ans.num_bits()
                try:
                    for g, (s, e) in enumerate(tqdm(groups, desc="bits-back encode", disable=not progress,
                                                    leave=False)):
                        self._encode_group(ans, x_u8[s:e], x[s:e], g, q0 if g == 0 else None)
                    break
                except _Underflow:
                    n_init *= 2
        words = ans.get_compressed()
        header = {
            "codec": "gapkit-bits-back", "model_hash": self.model_hash, "model_config": self.model.config,
            "n_images": n, "image_shape": list(shape), "dtype": dtype, "likelihood": self.likelihood,
            "coder": {**self.settings(), "initial_words": n_init},
            "images_sha256": _images_digest(x_u8, shape, dtype), "probe_sha256": probe,
            "torch": torch.__version__,
        }
        data = pack(header, words)
        message_bits = 32 * len(words)
        self.last_stats = {"n_images": n, "dim": self.x_dim, "message_bits": message_bits,
                           "initial_bits": start_bits, "net_bits": message_bits - start_bits,
                           "bpd": (message_bits - start_bits) / (n * self.x_dim),
                           "container_bytes": len(data), "header_bytes": len(data) - 4 * len(words)}
        return data

    @smoke.capped("bits-back decoding", x=None, count=lambda a: read_header(a["data"])["n_images"], cap=False,
                  fit=False, unit="image")
    def decode(self, data, return_initial: bool = False, progress: bool = False):
        """Decompress a message from :meth:`encode` -> images with the shape and dtype given to encode.

        The message's own coder settings are used; the model must be the one that encoded it.
        ``return_initial=True`` also returns the initial random words the stack gave back.
        Raises :class:`CodecError` for a message that is damaged, truncated, for another model, or
        that this machine cannot reproduce bit for bit.
        """
        header, words = unpack(data)
        meta = validate_header(header, len(words))
        if header["model_hash"] != self.model_hash:
            raise CodecError(f"this message was encoded with another model (parameter hash "
                             f"{header['model_hash'][:16]}...); this model's hash is {self.model_hash[:16]}...")
        if header["likelihood"] != self.likelihood or int(np.prod(meta["image_shape"])) != self.x_dim:
            raise CodecError(f"message header rejected: images of shape {meta['image_shape']} with "
                             f"{header['likelihood']} pixels do not fit this model ({self.x_dim} {self.likelihood} pixels)")
        codec = self
        if meta["settings"] != self.settings():
            try:
                codec = BitsBackCodec(self.model, **meta["settings"])
            except (TypeError, ValueError) as e:
                raise CodecError(f"message header rejected: bad coder settings ({e})") from None
        return codec._decode(header, words, meta, return_initial, progress)

    def _decode(self, header, words, meta, return_initial, progress):
        from ..progress import tqdm
        n = meta["n_images"]
        n_init = meta["initial_words"]
        groups = self._groups(n)
        out = np.empty((n, self.x_dim), dtype=np.uint8)
        with _one_thread():
            if self._fingerprint(groups[0][1] - groups[0][0]) != header["probe_sha256"]:
                raise CodecError(
                    "this machine does not reproduce the encoder's arithmetic bit for bit (probe hash "
                    f"differs; encoded with torch {header.get('torch')}, here torch {torch.__version__}): "
                    "decoding would give wrong images. Decode on the kind of machine and torch build that "
                    "encoded the message.")
            ans = constriction.stream.stack.AnsCoder(words)
            try:
                for g in tqdm(range(len(groups) - 1, -1, -1), desc="bits-back decode", disable=not progress,
                              leave=False):
                    s, e = groups[g]
                    out[s:e] = self._decode_group(ans, e - s, g)
                back = ans.get_compressed(unseal=True)
            except CodecError:
                raise
            except Exception as err:  # constriction refuses an inconsistent stack
                raise CodecError(f"message corrupted: the entropy decoder failed ({err})") from None
        init = initial_words(n_init, self.seed)
        if not np.array_equal(back, init):
            raise CodecError("message corrupted or truncated: decoding did not return the initial bits")
        if _images_digest(out, meta["image_shape"], meta["dtype"]) != header["images_sha256"]:
            raise CodecError("message corrupted: the decoded images (with their shape and dtype) do not match "
                             "the stored hash")
        images = out.astype(np.dtype(meta["dtype"])).reshape(n, *meta["image_shape"])
        return (images, init) if return_initial else images

    def posterior(self, images):
        """The q (mu, std), each (N, Z), that the coder uses for every image (K steps included)."""
        x_u8, _, _ = self.check_images(images)
        x = torch.from_numpy(x_u8).float()
        mus, stds = [], []
        with _one_thread():
            for g, (s, e) in enumerate(self._groups(len(x))):
                mu, std = self._posterior(x[s:e], g)
                mus.append(mu)
                stds.append(std)
        return torch.cat(mus), torch.cat(stds)

    def trace(self, image) -> dict:
        """Bits-back step by step for one image on a fresh stack (chapter 7, Algorithm 1).

        Returns the stack size in bits after each step (``start``, ``pop z``, ``push x``, ``push z``)
        and the terms -log2 Q(z|x), -log2 P(x|z), -log2 P(z) of the popped z.
        """
        x_u8, _, _ = self.check_images(np.asarray(image).reshape(1, -1))
        x = torch.from_numpy(x_u8).float()
        with _one_thread():
            qtab = self._q_table(*self._posterior(x, 0))
            n_init = int(math.ceil((1.25 * float(-(qtab * np.log2(np.maximum(qtab, 2.0 ** -24))).sum()) + 256) / 32))
            ans = constriction.stream.stack.AnsCoder(initial_words(n_init, self.seed), seal=True)
            sizes = {"start": ans.num_valid_bits()}
            z_idx = ans.decode(_CAT, qtab)
            sizes["pop z"] = ans.num_valid_bits()
            out = self._decoder_out(z_idx, 1)
            self._push_pixels(ans, x_u8, out, 1)
            sizes["push x"] = ans.num_valid_bits()
            ans.encode_reverse(z_idx, self._uniform)
            sizes["push z"] = ans.num_valid_bits()
            if self.likelihood == "bernoulli":
                p = self._bernoulli_p(out)
                px = float(-np.log2(np.where(x_u8.reshape(-1) == 1, p, 1 - p)).sum())
            else:
                px = float(-sum(np.log2(tab[np.arange(len(tab)), x_u8.reshape(-1)[sl]]).sum()
                                for sl, tab in self._logistic_chunks(out, 1)))
        return {"stack_bits": sizes, "z_bins": z_idx.tolist(),
                "neg_log2_q": float(-np.log2(np.maximum(qtab[np.arange(len(z_idx)), z_idx], 2.0 ** -24)).sum()),
                "neg_log2_px_given_z": px, "neg_log2_pz": float(self.latent_bits * self.z_dim)}


def encode(model, images, **settings) -> bytes:
    """``BitsBackCodec(model, **settings).encode(images)``: images -> message bytes (chapter 7)."""
    return BitsBackCodec(model, **settings).encode(images)


def decode(model, data, **kw):
    """Message bytes -> images, with the settings stored in the message (chapter 7)."""
    header, words = unpack(data)
    meta = validate_header(header, len(words))
    try:
        codec = BitsBackCodec(model, **meta["settings"])
    except (TypeError, ValueError) as e:
        raise CodecError(f"message header rejected: bad coder settings ({e})") from None
    return codec.decode(data, **kw)


def read_header(data) -> dict:
    """The JSON header of a message (checks the container but decodes nothing)."""
    return unpack(data)[0]
