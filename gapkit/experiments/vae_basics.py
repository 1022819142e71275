"""Experiment ``vae-basics``: train the VAE on the preset's data; train/test ELBO in nats and BPD.

Chapter 0 (``notebooks/00_vae_basics``) shows its curves, samples and reconstructions.
"""
from __future__ import annotations

import torch

from ..bounds import bpd
from ..estimators import evaluate
from ..io import load_checkpoint
from ..models import build_model
from ..objectives import ELBO
from ..train import train
from . import Context, experiment


@experiment("vae-basics", "Train a VAE on the preset's data; report train/test ELBO (nats, BPD)",
            chapter="00_vae_basics", cost={"quick": "5 s CPU", "book": "1 min CPU"})
def vae_basics(ctx: Context) -> dict:
    data = ctx.data()
    model = ctx.model(data)
    history = train(model, data, ELBO(), ctx.train_config(), out_dir=ctx.out)
    g = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
    final = {}
    K = ctx.preset.eval_K
    for split in ("train", "test"):
        x = data.fixed(split, seed=ctx.seed)[:2000]  # at most 2000 images per split
        elbo = evaluate(model, x, "elbo", K=10, generator=g).mean().item()
        iw = evaluate(model, x[:500], "iwae", K=K, generator=g).mean().item()  # IWAE-K on 500 images
        final[split] = {"elbo_nats": elbo, "elbo_bpd": float(bpd(elbo, data.dim)),
                        f"iwae{K}_nats": iw, f"iwae{K}_bpd": float(bpd(iw, data.dim))}
    with torch.no_grad():
        x = data.fixed("test", seed=ctx.seed)[:16]
        recon = model.mean(model.encode(x)[0])
        samples = model.mean(torch.randn(16, model.z_dim, device=ctx.device, generator=g))
    return {
        "dataset": {"name": data.name, "binarization": data.binarization, "image_shape": list(data.image_shape),
                    "n_train": len(data.train), "n_test": len(data.test)},
        "metrics": final,
        "curves": history,
        "images": {"test": x.cpu().tolist(), "reconstruction": recon.cpu().round(decimals=3).tolist(),
                   "samples": samples.cpu().round(decimals=3).tolist()},
        "checkpoint": str(ctx.out / "checkpoints" / f"epoch_{ctx.preset.epochs:04d}.pt"),
    }


def load_model(results: dict):
    """The trained model of a ``vae-basics`` result."""
    ck = load_checkpoint(results["checkpoint"])
    model = build_model(ck["model_config"])
    model.load_state_dict(ck["model"])
    return model.eval()
