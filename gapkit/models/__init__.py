"""Latent-variable models: the MLP VAE (:mod:`gapkit.models.vae`), the linear-Gaussian ground truth
(:mod:`gapkit.models.linear_gaussian`) and sigmoid belief networks (:mod:`gapkit.models.sbn`), with
the interface they share (:mod:`gapkit.models.base`). ``build_model`` and ``load_model`` rebuild a
model from a config or a checkpoint.
"""
from __future__ import annotations

from .base import ACTIVATIONS, LIKELIHOODS, LatentModel  # noqa: F401
from .linear_gaussian import LinearGaussian
from .vae import VAE


def build_model(config: dict) -> LatentModel:
    """Rebuild a model from its ``config`` dict."""
    config = dict(config)
    kind = config.pop("model", None)
    if kind == "VAE":
        return VAE(**config)
    if kind == "LinearGaussian":
        return LinearGaussian(**config)
    raise ValueError(f"unknown model {kind!r}; valid: 'VAE', 'LinearGaussian'")


def load_model(path, device=None) -> LatentModel:
    """The model of a checkpoint (:func:`gapkit.io.save_checkpoint`), rebuilt from its config, with
    its weights, in eval mode, on ``device`` (default the CPU)."""
    from ..io import load_checkpoint
    ck = load_checkpoint(path, map_location="cpu")
    model = build_model(ck["model_config"])
    model.load_state_dict(ck["model"])
    if device is not None:
        model.to(device)
    return model.eval()
