"""Bits-back coding with ANS over a trained VAE: a real lossless compressor
(`chapter 7 <https://gapkit.github.io/gapkit/notebooks/07_bits_back.html>`_).

:class:`BitsBackCodec` codes images in groups of ``group_size`` with the group codecs of
:mod:`gapkit.coding.bitsback` (one sample, code length -ELBO) or :mod:`gapkit.coding.mcbits`
(``samples`` = K, code length -IWAE-K), built from the model's prior, likelihood and posterior codecs
(:mod:`gapkit.coding.vae`), on a stack started by :mod:`gapkit.coding.stack`, and writes the compact
container of :mod:`gapkit.coding.container`. All work runs on the CPU with one thread, so that both
sides do bit-identical arithmetic; :mod:`gapkit.coding.fingerprint` lets the decoder refuse a machine
that rounds differently before it decodes anything, and the container's check makes a damaged message
raise :class:`CodecError` instead of giving wrong images.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import smoke
from ..checks import integer, number
from ..models import VAE
from .bitsback import bits_back, no_bits_back, trace
from .container import LIMITS, SETTINGS, CodecError, check_value, pack, pack_header, unpack
from .fingerprint import model_hash, probe
from .images import check_images
from .mcbits import mc_bits_back
from .stack import encode_with_retry, initial_words, one_thread, words_for
from .tables import entropy_bits
from .vae import VAECodecs

__all__ = ["BitsBackCodec", "encode", "decode", "read_header"]


class BitsBackCodec:
    """A lossless compressor of images built from a trained :class:`gapkit.models.vae.VAE`.

    ``encode(images) -> bytes`` and ``decode(data) -> images`` (same shape and dtype as given).
    Settings (stored in every message, so a decode needs only the model):

    * ``latent_bits``: 2^latent_bits equal-prior-mass bins per latent (default 8);
    * ``posterior_precision``: q's CDF rounded to multiples of 2^-this (default 24, the coder's);
    * ``pixel_precision``: likelihood masses are multiples of 2^-this (default 16 for Bernoulli
      pixels, 20 for 8-bit pixels);
    * ``group_size``: images coded together per network pass (default 100);
    * ``steps``, ``lr``: K-step optimal inference inside the coder (default 0: the encoder's q);
    * ``samples``: importance samples per image (default 1, plain bits-back; K > 1 is Monte Carlo
      bits-back, whose code length is -IWAE-K instead of -ELBO);
    * ``cheap_start``: start the stack empty (default False): the first image is coded with no bits
      back (:func:`gapkit.coding.bitsback.no_bits_back` at the mode bins of its q), and the groups then
      grow 1, 2, 4, ... up to ``group_size`` so that each first pop finds enough bits on the stack (if
      one does not, initial words are added as usual);
    * ``seed``: seeds the initial random words and the optimal-inference noise.

    `Chapter 7 <https://gapkit.github.io/gapkit/notebooks/07_bits_back.html>`_.
    """

    pieces = VAECodecs  # the model's prior, likelihood and posterior codecs

    def __init__(self, model, latent_bits: int = 8, posterior_precision: int = 24,
                 pixel_precision: int | None = None, group_size: int = 100, steps: int = 0,
                 lr: float = 5e-3, seed: int = 0, samples: int = 1, cheap_start: bool | int = False):
        if not isinstance(model, VAE):
            raise ValueError(f"the bits-back codec needs a gapkit.models.VAE, got {type(model).__name__}")
        if model.likelihood not in ("bernoulli", "logistic"):
            raise ValueError(f"unsupported likelihood {model.likelihood!r}; valid: 'bernoulli', 'logistic'")
        self.latent_bits = integer("latent_bits", latent_bits, 1, 16)
        self.posterior_precision = integer("posterior_precision", posterior_precision, latent_bits + 1, 24)
        if pixel_precision is None:
            pixel_precision = 16 if model.likelihood == "bernoulli" else 20
        lo = 2 if model.likelihood == "bernoulli" else 9
        self.pixel_precision = integer("pixel_precision", pixel_precision, lo, 24)
        self.group_size = integer("group_size", group_size, 1, LIMITS["group_size"])
        self.steps = integer("steps", steps, 0, LIMITS["steps"])
        self.lr = number("lr", lr, 0.0, LIMITS["lr"], lo_open=True)
        self.seed = integer("seed", seed, 0, 2 ** 63 - 1)
        self.samples = integer("samples", samples, 1, LIMITS["samples"])
        if cheap_start not in (0, 1):  # True/False or 0/1
            raise ValueError(f"cheap_start must be True/False (or 0/1), got {cheap_start!r}")
        self.cheap_start = int(cheap_start)
        if self.samples * self.group_size * model.z_dim * 2 ** self.latent_bits > LIMITS["group_table"]:
            raise ValueError(f"{self.samples} samples x group_size {self.group_size} x {model.z_dim} latents x "
                             f"2^{self.latent_bits} bins is a posterior table of more than {LIMITS['group_table']} "
                             "entries; lower group_size, samples or latent_bits")
        self.vae = self.pieces(model, self.latent_bits, self.posterior_precision, self.pixel_precision,
                               self.steps, self.lr, self.seed)
        self.model = self.vae.model
        self.model_hash = model_hash(self.model)
        self.likelihood = self.model.likelihood
        self.x_dim, self.z_dim = self.model.x_dim, self.model.z_dim
        self.last_stats: dict = {}

    def settings(self) -> dict:
        return {"latent_bits": self.latent_bits, "posterior_precision": self.posterior_precision,
                "pixel_precision": self.pixel_precision, "group_size": self.group_size,
                "steps": self.steps, "lr": self.lr, "seed": self.seed, "samples": self.samples,
                "cheap_start": self.cheap_start}

    def check_images(self, images):
        """Validate images -> (uint8 array (N, D), per-image shape, dtype string): :func:`gapkit.coding.images.check_images`."""
        return check_images(images, self.x_dim, self.likelihood)

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

    def group_codec(self, g: int, L: int, posterior=None):
        """The codec of group g (L images): no bits back for the cheap start's first group, else bits-back
        with one sample or Monte Carlo bits-back with ``samples``. ``posterior(x)`` replaces q's codec."""
        vae = self.vae
        posterior = posterior or (lambda x: vae.posterior(x, g))
        if self.cheap_start and g == 0:
            return no_bits_back(vae.prior(L), vae.likelihood, lambda x: posterior(x).table.argmax(1).astype(np.int32))
        if self.samples > 1:
            return mc_bits_back(vae.prior(L), vae.likelihood, posterior, self.samples, L)
        return bits_back(vae.prior(L), vae.likelihood, posterior)

    def _header(self, n, shape, dtype, n_init, probe_hex, pixels) -> dict:
        header = {"coder": {**self.settings(), "initial_words": n_init}, "n_images": n, "image_shape": list(shape),
                  "dtype": dtype, "model_tag": self.model_hash[:8], "probe_tag": probe_hex[:4]}
        header["check"] = check_value(self.model_hash, probe_hex, pack_header(header), pixels)
        return header

    @smoke.capped("bits-back encoding", x="images", cap=False, fit=False, unit="image")
    def encode(self, images, progress: bool = False) -> bytes:
        """Compress images (N, D) or (N, H, W) into one self-describing message.

        ``self.last_stats`` then holds ``message_bits`` (the stack), ``initial_bits`` (the stack before
        the first image), ``net_bits`` = message - initial, ``bpd`` = net_bits / (N D),
        ``container_bytes`` (the whole file) and ``header_bytes`` (the file less the stack's bytes).
        """
        from ..progress import tqdm
        x_u8, shape, dtype = self.check_images(images)
        n = len(x_u8)
        groups = self._groups(n)
        s0, e0 = groups[0]
        with one_thread():
            probe_hex = probe(self.vae, e0 - s0)
            q0 = self.vae.posterior(x_u8[s0:e0], 0)
            n_init = 0 if self.cheap_start else words_for(entropy_bits(q0.table), self.samples)

            def push_all(ans):
                for g, (s, e) in enumerate(tqdm(groups, desc="bits-back encode", disable=not progress, leave=False)):
                    self.group_codec(g, e - s, (lambda x: q0) if g == 0 else None).push(ans, x_u8[s:e])
            ans, n_init, start_bits = encode_with_retry(push_all, n_init, self.seed)
        words = ans.get_compressed()
        data = pack(self._header(n, shape, dtype, n_init, probe_hex, x_u8), words)
        payload = len(np.ascontiguousarray(words, "<u4").tobytes().rstrip(b"\0"))
        message_bits = 32 * len(words)
        self.last_stats = {"n_images": n, "dim": self.x_dim, "message_bits": message_bits,
                           "initial_bits": start_bits, "net_bits": message_bits - start_bits,
                           "bpd": (message_bits - start_bits) / (n * self.x_dim),
                           "container_bytes": len(data), "header_bytes": len(data) - payload}
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
        if header["model_tag"] != self.model_hash[:8]:
            raise CodecError(f"this message was encoded with another model (model tag {header['model_tag']}); "
                             f"this model's tag is {self.model_hash[:8]}")
        if int(np.prod(header["image_shape"])) != self.x_dim:
            raise CodecError(f"message header rejected: images of shape {header['image_shape']} do not fit this "
                             f"model ({self.x_dim} pixels)")
        settings = {k: header["coder"][k] for k in (*SETTINGS, "cheap_start")}
        codec = self
        if settings != self.settings():
            try:
                codec = BitsBackCodec(self.model, **settings)
            except (TypeError, ValueError) as e:
                raise CodecError(f"message header rejected: bad coder settings ({e})") from None
        return codec._decode(header, words, return_initial, progress)

    def _decode(self, header, words, return_initial, progress):
        import constriction
        from ..progress import tqdm
        n, n_init = header["n_images"], header["coder"]["initial_words"]
        groups = self._groups(n)
        out = np.empty((n, self.x_dim), dtype=np.uint8)
        with one_thread():
            probe_hex = probe(self.vae, groups[0][1] - groups[0][0])
            if probe_hex[:4] != header["probe_tag"]:
                raise CodecError(
                    f"this machine does not reproduce the encoder's arithmetic bit for bit (probe tag "
                    f"{header['probe_tag']}, here {probe_hex[:4]}; torch {torch.__version__} here): decoding would "
                    "give wrong images. Decode on the kind of machine and torch build that encoded the message.")
            ans = constriction.stream.stack.AnsCoder(words)
            try:
                for g in tqdm(range(len(groups) - 1, -1, -1), desc="bits-back decode", disable=not progress,
                              leave=False):
                    if ans.num_valid_bits() <= 0:
                        raise CodecError("message truncated: the stack ran out of bits before all images were decoded")
                    s, e = groups[g]
                    out[s:e] = self.group_codec(g, e - s).pop(ans)
                back = ans.get_compressed(unseal=n_init > 0)
            except CodecError:
                raise
            except Exception as err:  # constriction refuses an inconsistent stack
                raise CodecError(f"message corrupted or truncated: the entropy decoder failed ({err})") from None
        init = initial_words(n_init, self.seed)
        if not np.array_equal(back, init):
            raise CodecError("message corrupted or truncated: decoding did not return the initial bits")
        if check_value(self.model_hash, probe_hex, pack_header(header), out) != header["check"]:
            raise CodecError("message corrupted or truncated: the decoded images (with their count, shape and dtype) do not match "
                             "the stored check")
        images = out.astype(np.dtype(header["dtype"])).reshape(n, *header["image_shape"])
        return (images, init) if return_initial else images

    def posterior(self, images):
        """The q (mu, std), each (N, Z), that the coder uses for every image (K steps included)."""
        x_u8, _, _ = self.check_images(images)
        with one_thread():
            qs = [self.vae.q(x_u8[s:e], g) for g, (s, e) in enumerate(self._groups(len(x_u8)))]
        return torch.cat([mu for mu, _ in qs]), torch.cat([std for _, std in qs])

    def trace(self, image) -> dict:
        """Bits-back step by step for one image on a fresh stack: :func:`gapkit.coding.bitsback.trace`."""
        x_u8, _, _ = self.check_images(np.asarray(image).reshape(1, -1))
        with one_thread():
            return trace(self.vae.prior(1), self.vae.likelihood, lambda x: self.vae.posterior(x, 0), x_u8, self.seed)


def encode(model, images, **settings) -> bytes:
    """``BitsBackCodec(model, **settings).encode(images)``: images -> message bytes
    (`chapter 7 <https://gapkit.github.io/gapkit/notebooks/07_bits_back.html>`_)."""
    return BitsBackCodec(model, **settings).encode(images)


def decode(model, data, **kw):
    """Message bytes -> images, with the settings stored in the message
    (`chapter 7 <https://gapkit.github.io/gapkit/notebooks/07_bits_back.html>`_)."""
    header, _ = unpack(data)
    settings = {k: header["coder"][k] for k in (*SETTINGS, "cheap_start")}
    try:
        codec = BitsBackCodec(model, **settings)
    except (TypeError, ValueError) as e:
        raise CodecError(f"message header rejected: bad coder settings ({e})") from None
    return codec.decode(data, **kw)


def read_header(data) -> dict:
    """The header of a message (checks the container but decodes nothing)."""
    return unpack(data)[0]
