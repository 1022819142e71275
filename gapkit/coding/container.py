"""The self-describing container of a bits-back message (chapter 7, ``notebooks/07_bits_back``).

Layout (all integers little-endian)::

    magic        8 bytes   b"GAPKITBB"
    version      u16       FORMAT_VERSION
    header_len   u32       length of the JSON header in bytes
    header       JSON      model hash and config, image count, shape and dtype, coder settings,
                           a SHA-256 of the images and of the coder's arithmetic (see codec.py)
    n_words      u64       number of 32-bit words of the ANS stack
    words        n_words * 4 bytes
    crc32        u32       CRC-32 of everything before it

:func:`unpack` checks the magic, the version, the lengths and the CRC, and raises
:class:`CodecError` (a ``ValueError``) naming what is wrong, so a truncated or corrupted file never
reaches the entropy decoder.
"""
from __future__ import annotations

import json
import struct
import zlib

import numpy as np

__all__ = ["MAGIC", "FORMAT_VERSION", "CodecError", "pack", "unpack"]

MAGIC = b"GAPKITBB"
FORMAT_VERSION = 3  # 2: the images' hash covers their count, shape and dtype; headers validated. 3: coder.samples, coder.cheap_start


class CodecError(ValueError):
    """A message that cannot be decoded: not ours, truncated, corrupted, or for another model."""


def pack(header: dict, words: np.ndarray) -> bytes:
    """Header dict + uint32 words -> container bytes."""
    h = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    w = np.ascontiguousarray(words, dtype="<u4").tobytes()
    body = MAGIC + struct.pack("<HI", FORMAT_VERSION, len(h)) + h + struct.pack("<Q", len(words)) + w
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def unpack(data) -> tuple[dict, np.ndarray]:
    """Container bytes -> (header dict, uint32 words); raises :class:`CodecError` on any damage."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"a bits-back message must be bytes, got {type(data).__name__}")
    data = bytes(data)
    fixed = len(MAGIC) + 6
    if len(data) < fixed + 12 or data[:len(MAGIC)] != MAGIC:
        raise CodecError("not a gapkit bits-back message (bad magic or too short)")
    version, hlen = struct.unpack_from("<HI", data, len(MAGIC))
    if version != FORMAT_VERSION:
        raise CodecError(f"unsupported container version {version}; this gapkit reads version {FORMAT_VERSION}")
    if fixed + hlen + 12 > len(data):
        raise CodecError(f"message truncated: header says {hlen} header bytes, file has {len(data)} bytes")
    (n_words,) = struct.unpack_from("<Q", data, fixed + hlen)
    end = fixed + hlen + 8 + 4 * n_words
    if end + 4 != len(data):
        raise CodecError(f"message truncated or padded: expected {end + 4} bytes for {n_words} words, "
                         f"got {len(data)}")
    (crc,) = struct.unpack_from("<I", data, end)
    if zlib.crc32(data[:end]) & 0xFFFFFFFF != crc:
        raise CodecError("message corrupted: CRC-32 mismatch")
    try:
        header = json.loads(data[fixed:fixed + hlen].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CodecError(f"message corrupted: unreadable header ({e})") from None
    words = np.frombuffer(data, dtype="<u4", count=n_words, offset=fixed + hlen + 8).astype(np.uint32)
    return header, words
