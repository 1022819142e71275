"""Standard lossless compressors on the same images, in bits per dimension
(`chapter 7 <https://gapkit.github.io/gapkit/notebooks/07_bits_back.html>`_).

``baseline_bpd(images, binary)`` compresses the whole set in one stream with gzip (level 9), bz2
(level 9) and lzma (preset 9) - each on the bytes of the pixels (one byte a pixel) and, for binary
images, also on the packed bits (8 pixels a byte), keeping the smaller - and with PNG (Pillow,
``optimize=True``): once image by image (``png``, as files are stored) and once as a single mosaic
of all images (``png_mosaic``). BPD = 8 * compressed bytes / (N * D).
"""
from __future__ import annotations

import bz2
import gzip
import io
import lzma

import numpy as np

__all__ = ["baseline_bpd", "COMPRESSORS"]

COMPRESSORS = {
    "gzip": lambda b: gzip.compress(b, 9, mtime=0),
    "bz2": lambda b: bz2.compress(b, 9),
    "lzma": lambda b: lzma.compress(b, preset=9),
}


def _png_bytes(img: np.ndarray, binary: bool) -> int:
    from PIL import Image
    im = Image.fromarray((img * 255).astype(np.uint8) if binary else img.astype(np.uint8), mode="L")
    if binary:
        im = im.convert("1")
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return len(buf.getvalue())


def baseline_bpd(images, binary: bool, image_shape=(28, 28), png: bool = True) -> dict:
    """BPD of gzip, bz2, lzma (whole set) and PNG (per image and mosaic) on ``images`` (N, D) uint8.

    `Chapter 7 <https://gapkit.github.io/gapkit/notebooks/07_bits_back.html>`_
    compares the bits-back coder with them.
    """
    x = np.asarray(images, dtype=np.uint8).reshape(len(images), -1)
    n, d = x.shape
    if binary and x.max() > 1:
        raise ValueError("binary=True needs pixel values 0 or 1")
    bits = 8.0 / (n * d)
    reps = [x.tobytes()] + ([np.packbits(x, axis=None).tobytes()] if binary else [])
    out = {name: min(len(f(r)) for r in reps) * bits for name, f in COMPRESSORS.items()}
    if png:
        try:
            import PIL  # noqa: F401
        except ImportError:
            return out
        h, w = image_shape
        imgs = x.reshape(n, h, w)
        out["png"] = sum(_png_bytes(im, binary) for im in imgs) * bits
        cols = int(np.ceil(np.sqrt(n)))
        rows = int(np.ceil(n / cols))
        mosaic = np.zeros((rows * cols, h, w), np.uint8)
        mosaic[:n] = imgs
        mosaic = mosaic.reshape(rows, cols, h, w).transpose(0, 2, 1, 3).reshape(rows * h, cols * w)
        out["png_mosaic"] = _png_bytes(mosaic, binary) * bits
    return out
