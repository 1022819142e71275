"""The compact binary container of a bits-back message
(`chapter 7 <https://gapkit.github.io/gapkit/notebooks/07_bits_back.html>`_).

Layout (varints are unsigned LEB128, at most 10 bytes; fixed-size fields little-endian)::

    magic        2 bytes   b"g\\xbb"
    version      1 byte    FORMAT_VERSION
    mask         1 byte    bit i set: coder setting SETTINGS[i] is stored (it differs from its default)
    flags        1 byte    bit 0 cheap start, bits 1-2 image ndim - 1, bits 3-6 index into DTYPES, bit 7 zero
    settings     varints of the stored settings (lr as a float64)
    initial      varint    initial random words of the stack (0 with the cheap start)
    n_images     varint
    shape        ndim varints, the per-image shape
    model_tag    4 bytes   the model's SHA-256, first bytes
    probe_tag    2 bytes   the coder's arithmetic probe's SHA-256, first bytes
    check        8 bytes   BLAKE2b-64 of the full model and probe hashes, the header bytes above and the
                           decoded images' pixels (see :func:`check_value`)
    payload      the rest: the ANS stack's 32-bit words, little-endian, the last (most significant) one
                 without its leading zero bytes

A 100-image file has a 23-byte container. :func:`unpack` checks the magic, the version and every field
against its type and :data:`LIMITS` (the image count also against the payload's length) before any
work, and raises :class:`CodecError` (a ``ValueError``) naming what is wrong. The tags make a decode
with another model, or on a machine whose arithmetic differs, fail at once with a clear message; the
check makes every other change to the file (header or payload) fail after decoding: a message
decodes exactly or raises. Format 4 replaces the JSON header of formats 1-3, which are refused.
"""
from __future__ import annotations

import hashlib
import math
import struct

import numpy as np

__all__ = ["MAGIC", "FORMAT_VERSION", "LIMITS", "DTYPES", "SETTINGS", "DEFAULTS", "CodecError", "pack", "unpack",
           "check_value"]

MAGIC = b"g\xbb"
FORMAT_VERSION = 4  # 1-3: JSON header (8-byte magic b"GAPKITBB"); 4: this compact binary header
OLD_MAGIC = b"GAPKITBB"

# Fixed limits on what a coder (and so a message header) may ask for.
LIMITS = {
    "steps": 1000,                  # K-step optimal inference inside the coder
    "lr": 10.0,                     # its Adam learning rate
    "group_size": 4096,             # images per network pass
    "group_table": 1 << 27,         # samples * group_size * z_dim * 2^latent_bits entries of q's table
    "decoded_bytes": 1 << 31,       # n_images * pixels of the decoded array (2 GiB of uint8)
    "initial_words": 1 << 24,       # 64 MiB of initial random words
    "images_per_bit": 64,           # at most 64 images per bit of the payload (a real image costs > 1 bit)
    "samples": 256,                 # importance samples per image (Monte Carlo bits-back)
    "dim": 1 << 31,                 # one side of an image
}
# The dtypes a message may restore (what check_images accepts), as numpy's dtype.str.
DTYPES = ("|b1", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8")
SETTINGS = ("latent_bits", "posterior_precision", "pixel_precision", "group_size", "steps", "lr", "seed", "samples")
DEFAULTS = {"latent_bits": 8, "posterior_precision": 24, "pixel_precision": 16, "group_size": 100, "steps": 0,
            "lr": 5e-3, "seed": 0, "samples": 1}
_RANGE = {"latent_bits": (1, 16), "posterior_precision": (2, 24), "pixel_precision": (2, 24),
          "group_size": (1, LIMITS["group_size"]), "steps": (0, LIMITS["steps"]), "seed": (0, 2 ** 63 - 1),
          "samples": (1, LIMITS["samples"])}
TAG_BYTES = {"model_tag": 4, "probe_tag": 2, "check": 8}


class CodecError(ValueError):
    """A message that cannot be decoded: not ours, truncated, corrupted, or for another model."""


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def pack_header(header: dict) -> bytes:
    """The header bytes (magic to probe tag) of ``header`` (as :func:`unpack` returns it, ``check`` aside)."""
    c = header["coder"]
    mask = sum(1 << i for i, k in enumerate(SETTINGS) if c[k] != DEFAULTS[k])
    shape = header["image_shape"]
    flags = int(bool(c["cheap_start"])) | (len(shape) - 1) << 1 | DTYPES.index(header["dtype"]) << 3
    out = bytearray(MAGIC + bytes([FORMAT_VERSION, mask, flags]))
    for i, k in enumerate(SETTINGS):
        if mask >> i & 1:
            out += struct.pack("<d", c[k]) if k == "lr" else _varint(c[k])
    for v in (c["initial_words"], header["n_images"], *shape):
        out += _varint(v)
    return bytes(out + bytes.fromhex(header["model_tag"]) + bytes.fromhex(header["probe_tag"]))


def pack(header: dict, words: np.ndarray) -> bytes:
    """Header dict (with its ``check``) + the stack's uint32 words -> container bytes."""
    w = np.ascontiguousarray(words, dtype="<u4").tobytes()   # the last word is nonzero: at most 3 bytes go
    return pack_header(header) + bytes.fromhex(header["check"]) + w.rstrip(b"\0")


def check_value(model_hash: str, probe: str, header_bytes: bytes, pixels: np.ndarray) -> str:
    """BLAKE2b-64 (hex) of the full model hash, the full probe hash, the header bytes and the pixels (N, D) uint8."""
    h = hashlib.blake2b(digest_size=TAG_BYTES["check"], person=b"gapkit-bb")
    for part in (bytes.fromhex(model_hash), bytes.fromhex(probe), header_bytes):
        h.update(part)
    h.update(np.ascontiguousarray(pixels, np.uint8).tobytes())
    return h.hexdigest()


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def take(self, n: int, what: str) -> bytes:
        if self.at + n > len(self.data):
            raise CodecError(f"message truncated: it ends inside the header ({what})")
        self.at += n
        return self.data[self.at - n:self.at]

    def varint(self, what: str, lo: int, hi: int) -> int:
        v = 0
        for i in range(10):
            b = self.take(1, what)[0]
            v |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                break
        else:
            raise CodecError(f"message header rejected: {what} is not a valid varint")
        if not lo <= v <= hi:
            raise CodecError(f"message header rejected: {what} must be an integer in {lo}..{hi}, got {v}")
        return v


def unpack(data) -> tuple[dict, np.ndarray]:
    """Container bytes -> (header dict, uint32 words), every field checked; raises :class:`CodecError`.

    The header holds ``coder`` (the settings of :data:`SETTINGS`, ``cheap_start`` and ``initial_words``),
    ``n_images``, ``image_shape``, ``dtype`` and the hex ``model_tag``, ``probe_tag`` and ``check``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"a bits-back message must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if data[:len(OLD_MAGIC)] == OLD_MAGIC:
        raise CodecError("this message is in an older gapkit container format (1-3, JSON header); this gapkit "
                         f"reads format {FORMAT_VERSION} only: decode it with the gapkit that wrote it")
    if len(data) < len(MAGIC) + 1 or data[:len(MAGIC)] != MAGIC:
        raise CodecError("not a gapkit bits-back message (bad magic or too short)")
    r = _Reader(data)
    r.take(len(MAGIC), "magic")
    version, mask, flags = r.take(3, "version, mask and flags")
    if version != FORMAT_VERSION:
        raise CodecError(f"unsupported container version {version}; this gapkit reads version {FORMAT_VERSION}")
    if flags >> 7 or (flags >> 3 & 15) >= len(DTYPES):
        raise CodecError(f"message header rejected: flags byte {flags:#04x} names no dtype of {', '.join(DTYPES)}")
    c = dict(DEFAULTS)
    for i, k in enumerate(SETTINGS):
        if mask >> i & 1:
            if k == "lr":
                (c[k],) = struct.unpack("<d", r.take(8, k))
                if not (math.isfinite(c[k]) and 0 < c[k] <= LIMITS["lr"]):
                    raise CodecError(f"message header rejected: coder.lr must be a finite number in (0, "
                                     f"{LIMITS['lr']}], got {c[k]!r}")
            else:
                c[k] = r.varint(f"coder.{k}", *_RANGE[k])
    c["cheap_start"] = flags & 1
    c["initial_words"] = r.varint("coder.initial_words", 1 - c["cheap_start"], LIMITS["initial_words"])
    n = r.varint("n_images", 1, LIMITS["decoded_bytes"])
    shape = [r.varint("image_shape", 1, LIMITS["dim"]) for _ in range((flags >> 1 & 3) + 1)]
    tags = {k: r.take(nb, k).hex() for k, nb in TAG_BYTES.items()}
    payload = data[r.at:]
    if not payload:
        raise CodecError("message truncated: it holds no ANS words")
    if payload[-1] == 0:
        raise CodecError("message corrupted: the payload ends in a zero byte")
    if n > LIMITS["images_per_bit"] * 8 * len(payload):
        raise CodecError(f"message header rejected: n_images {n} is impossible for a payload of {len(payload)} "
                         f"bytes (at most {LIMITS['images_per_bit']} images per bit)")
    dim = int(np.prod(shape))
    if n * dim > LIMITS["decoded_bytes"]:
        raise CodecError(f"message header rejected: {n} images of {dim} pixels would need {n * dim / 2**30:.1f} GiB "
                         f"(limit {LIMITS['decoded_bytes'] / 2**30:.0f} GiB)")
    payload += b"\0" * (-len(payload) % 4)
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    header = {"coder": c, "n_images": n, "image_shape": shape, "dtype": DTYPES[flags >> 3 & 15], **tags}
    return header, words
