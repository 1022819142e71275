"""What a message must be decoded with: the model's identity and the coder's arithmetic
(`chapter 7 <https://gapkit.github.io/gapkit/notebooks/07_bits_back.html>`_).

* :func:`model_hash` - SHA-256 of a model's config and every parameter and buffer;
* :func:`probe` - SHA-256 of the coder's arithmetic on a fixed probe group of L random images: the
  posterior's (mu, std), q's tables and the decoder's output at q's mode bins. A machine or torch build
  that rounds differently gives another probe, so the decoder refuses before it decodes anything.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import torch

__all__ = ["model_hash", "probe"]


def model_hash(model) -> str:
    """SHA-256 (hex) of a model's config and every parameter/buffer (name, dtype, shape, bytes)."""
    h = hashlib.sha256(json.dumps(getattr(model, "config", {}), sort_keys=True).encode())
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def probe(vae, L: int) -> str:
    """SHA-256 (hex) of :class:`gapkit.coding.vae.VAECodecs` arithmetic on a fixed group of L images."""
    rng = np.random.Generator(np.random.PCG64(1234567))
    top = 1 if vae.likelihood_name == "bernoulli" else 255
    x = rng.integers(0, top + 1, (L, vae.x_dim)).astype(np.float32)
    mu, std = vae.q(x, 0)
    qtab = vae.q_table(mu, std)
    out = vae.decoder(qtab.argmax(1).astype(np.int32))
    h = hashlib.sha256()
    for t in (mu, std, torch.from_numpy(qtab), *(out if isinstance(out, tuple) else (out,))):
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()
