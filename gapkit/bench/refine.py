"""Benchmark ``refine``: 50 refinement steps for 10,000 test images, batched against a per-image loop.

The batched path refines all images in one call of :func:`gapkit.inference.refine.refine` (one decoder
forward/backward per step for the whole batch); the per-image loop calls it on one image at a
time, timed on a subset and scaled to all images. The batched path's floating-point rate counts the
decoder's forward pass and its backward pass to the latent input (about as many FLOPs again; no
weight gradients are needed), and is given as a fraction of the machine's matrix-multiply rate
measured in the same run.
`Chapter 5 <https://gapkit.github.io/gapkit/notebooks/05_iterative_refinement.html>`_ uses ``refine``.
"""
from __future__ import annotations

import os

import torch

from ..models import VAE
from ..inference.refine import refine
from . import batched_vs_loop, benchmark, matmul_rate, mlp_flops, table

N_IMAGES, STEPS, LOOP_SUBSET = 10_000, 50, 40


def _images(n, device):
    """MNIST test images (threshold binarization) when the data are there, else random binary images."""
    if os.environ.get("GAPKIT_DATA_DIR"):
        try:
            from ..data import load
            x = load("mnist", "threshold", device=device).test[:n]
            if len(x) == n:
                return x, "MNIST test"
        except (FileNotFoundError, ValueError, OSError):
            pass
    g = torch.Generator().manual_seed(0)
    return torch.bernoulli(torch.full((n, 784), 0.13), generator=g).to(device), "random binary"


@benchmark("refine", "50 refinement steps for 10,000 images: batched vs per-image loop, FLOP rate")
def bench_refine(device="cpu", n_images: int = N_IMAGES, steps: int = STEPS, subset: int = LOOP_SUBSET):
    device = torch.device(device)
    torch.manual_seed(0)
    model = VAE(784, 16, (200, 200), "relu").to(device).eval()   # the book preset's architecture
    x, source = _images(n_images, device)
    kw = dict(steps=steps, optimizer="momentum", lr=0.1, samples=1, keep_samples=False, seed=0)
    rate = matmul_rate(device=device)

    refine(model, x[:100], **{**kw, "steps": 2})                  # warm-up
    t_batch, t_loop = batched_vs_loop(lambda xs: refine(model, xs, **kw), x, subset, device)

    dec = [model.z_dim, *model.hidden[::-1], model.x_dim]
    enc = [model.x_dim, *model.hidden, 2 * model.z_dim]
    rows_per_step = n_images * kw["samples"]
    flops = (mlp_flops(enc, n_images) + steps * 2 * mlp_flops(dec, rows_per_step)
             + mlp_flops(dec, rows_per_step))                   # k fwd+bwd steps and the last forward
    rows = [
        {"path": "batched", "images": n_images, "seconds": t_batch, "images/s": n_images / t_batch,
         "speed-up": t_loop / t_batch, "GFLOP/s": flops / t_batch / 1e9, "of matmul rate": flops / t_batch / rate},
        {"path": f"per-image loop (from {subset})", "images": n_images, "seconds": t_loop,
         "images/s": n_images / t_loop, "speed-up": 1.0, "GFLOP/s": flops / t_loop / 1e9,
         "of matmul rate": flops / t_loop / rate},
    ]
    table(rows, title=f"refine: {steps} steps, momentum, 1 sample/step, {source} images, VAE 784-200-200-16, "
                      f"{device}, {torch.get_num_threads()} threads; matmul rate {rate / 1e9:.1f} GFLOP/s")
    return rows
