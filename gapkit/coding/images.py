"""The images a codec accepts (`chapter 7 <https://gapkit.github.io/gapkit/notebooks/07_bits_back.html>`_):
integer pixels of the model's likelihood, any allowed dtype."""
from __future__ import annotations

import numpy as np
import torch

from .container import DTYPES

__all__ = ["check_images"]


def check_images(images, x_dim: int, likelihood: str):
    """Validate images (N, D) or (N, H, W) -> (uint8 array (N, D), per-image shape, dtype string).

    Pixels are 0/1 for a Bernoulli model and integers 0..255 for a discretized-logistic one; the dtype
    is one of :data:`gapkit.coding.container.DTYPES`. Raises ``ValueError`` saying what is wrong.
    """
    if torch.is_tensor(images):
        images = images.detach().cpu().numpy()
    arr = np.asarray(images)
    if arr.dtype.kind not in "buif" or arr.dtype.str not in DTYPES:
        raise ValueError(f"images must be a numeric array (bool, uint8, int or float, little-endian), got dtype "
                         f"{arr.dtype} ({arr.dtype.str}); valid: {', '.join(DTYPES)}")
    if arr.ndim < 2:
        raise ValueError(f"images must have shape (N, {x_dim}) or (N, H, W) with H*W = {x_dim}, got shape {arr.shape}")
    if arr.ndim > 5:
        raise ValueError(f"images must have at most 4 dimensions per image, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError("images is an empty batch: give at least one image")
    d = int(np.prod(arr.shape[1:]))
    if d != x_dim:
        raise ValueError(f"each image must have {x_dim} pixels (shape (N, {x_dim}) or (N, H, W) with H*W = {x_dim}), "
                         f"got shape {arr.shape}")
    flat = arr.reshape(arr.shape[0], d)
    if arr.dtype.kind == "f":
        if not np.isfinite(flat).all() or (flat != np.round(flat)).any():
            raise ValueError("images must hold integer pixel values; found non-integer or non-finite floats")
    top = 1 if likelihood == "bernoulli" else 255
    if arr.dtype.kind != "b" and (flat.min() < 0 or flat.max() > top):
        what = "0 or 1 (binary images)" if top == 1 else "integers 0..255 (8-bit images)"
        raise ValueError(f"this codec's model ({likelihood} pixels) takes pixel values {what}; "
                         f"found values in [{flat.min()}, {flat.max()}]")
    return flat.astype(np.uint8), tuple(arr.shape[1:]), arr.dtype.str
