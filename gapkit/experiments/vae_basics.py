"""Experiment ``vae-basics``: train the VAE on the preset's data; train/test ELBO in nats and BPD.

`Chapter 0 <https://gapkit.github.io/gapkit/notebooks/00_vae_basics.html>`_
shows its curves, samples and reconstructions.
"""
from __future__ import annotations

import torch

from ..bounds import bpd
from ..estimators import evaluate
from ..objectives import ELBO
from ..train import train
from . import Context, experiment


def _evaluate(ctx, data, model) -> dict:
    """Train and test ELBO (K = 10) and IWAE-K (the preset's eval_K, 500 images), reconstructions of 16
    test images and 16 samples, all from one generator seeded here."""
    g = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
    final = {}
    K = ctx.preset.eval_K
    for split in ("train", "test"):
        x = data.fixed(split, seed=ctx.seed)[:2000]  # at most 2000 images per split
        elbo = evaluate(model, x, "elbo", K=10, generator=g).mean().item()
        iw = evaluate(model, x[:500], "iwae", K=K, generator=g).mean().item()  # IWAE-K on 500 images
        final[split] = {"elbo": {"K": 10, "nats": elbo, "bpd": float(bpd(elbo, data.dim))},
                        "iwae": {"K": K, "nats": iw, "bpd": float(bpd(iw, data.dim))}}
    with torch.no_grad():
        x = data.fixed("test", seed=ctx.seed)[:16]
        recon = model.mean(model.encode(x)[0])
        samples = model.mean(torch.randn(16, model.z_dim, device=ctx.device, generator=g))
    return {"metrics": final,
            "images": {"test": x.cpu().tolist(), "reconstruction": recon.cpu().round(decimals=3).tolist(),
                       "samples": samples.cpu().round(decimals=3).tolist()}}


@experiment("vae-basics", "Train a VAE on the preset's data; report train/test ELBO (nats, BPD)",
            chapter="00_vae_basics", cost={"quick": "5 s CPU", "book": "30 s CPU"})
def vae_basics(ctx: Context) -> dict:
    data = ctx.data()
    model = ctx.model(data)
    history = train(model, data, ELBO(), ctx.train_config(), out_dir=ctx.out)
    ev = ctx.stage("evaluate", lambda: _evaluate(ctx, data, model))   # a run stopped later resumes after it
    res = {
        "dataset": {"name": data.name, "binarization": data.binarization, "image_shape": list(data.image_shape),
                    "n_train": len(data.train), "n_test": len(data.test)},
        "metrics": ev["metrics"],
        "curves": history,
        "images": ev["images"],
        "checkpoint": str(ctx.out / "checkpoints" / f"epoch_{ctx.preset.epochs:04d}.pt"),
    }
    res["book_summary"] = book_summary(res)
    return res


def book_summary(res: dict) -> dict:
    """The book's summary panel (``book/_ext/gapkit_summary.py``): train/test ELBO and test IWAE-K
    (BPD), and a sentence on IWAE-K's tightness and the ELBO's generalization gap."""
    tr, te = res["metrics"]["train"], res["metrics"]["test"]
    K = te["iwae"]["K"]
    iw = te["iwae"]["bpd"]
    gen = te["elbo"]["bpd"] - tr["elbo"]["bpd"]
    tight = te["elbo"]["bpd"] - iw
    finding = (f"On test images IWAE-{K} is {abs(tight):.3f} BPD {'tighter' if tight > 0 else 'looser'} than "
               f"the ELBO, and the test ELBO is {abs(gen):.3f} BPD {'worse' if gen > 0 else 'better'} "
               f"than on training images.")
    return {"title": "A VAE, trained: negative bounds", "unit": "BPD", "lower_is_better": True,
            "values": {"train ELBO": tr["elbo"]["bpd"], "test ELBO": te["elbo"]["bpd"], f"test IWAE-{K}": iw},
            "finding": finding}

