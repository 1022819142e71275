"""Benchmark AIR: refinement of 10,000 test images, batched against a per-image loop.

The batched path refines all images in one call of :func:`gapkit.inference.air.refine` (every step is one
pass of the generative network over samples x images, in memory chunks); the per-image loop calls
it on one image at a time with the same steps and samples, timed on a subset and scaled to all
images; both at 5 and at 20 samples per step (the loop's cost is mostly per-call overhead, the
batched path's mostly the matrix products and the softplus over every sample's 784 pixel logits, so
the speed-up falls as the samples grow). The batched path's floating-point rate counts the recognition network once and the
generative network's forward pass for every sample of every step, and is given as a fraction of
the machine's matrix-multiply rate measured in the same run.
`Chapter 8 <https://gapkit.github.io/gapkit/notebooks/08_discrete_latents.html>`_
(``notebooks/08_discrete_latents``) uses ``refine``.
"""
from __future__ import annotations


import torch

from ..inference.air import refine
from ..models.sbn import SBN
from . import batched_vs_loop, benchmark, matmul_rate, mlp_flops, table
from .refine import _images

N_IMAGES, STEPS, SAMPLES, LOOP_SUBSET, UNITS = 10_000, 10, 20, 100, (100, 100, 100)


@benchmark("air", "AIR, 10 steps x 5 or 20 samples for 10,000 images: batched vs per-image loop, FLOP rate")
def bench_air(device="cpu", n_images: int = N_IMAGES, steps: int = STEPS, K: int = SAMPLES,
              subset: int = LOOP_SUBSET, units=UNITS):
    device = torch.device(device)
    torch.manual_seed(0)
    x, source = _images(n_images, device)
    model = SBN(784, tuple(units)).to(device).init_output_bias(x).eval()   # the book preset's 3 layers
    kw = dict(steps=steps, K=K, gamma=0.9, seed=0)
    rate = matmul_rate(device=device)

    refine(model, x[:100], **{**kw, "steps": 2})                  # warm-up
    gen = [units[-1], *units[::-1][1:], 784]                      # top-down: h_L -> ... -> h_1 -> x
    rows = []
    for k in sorted({5, K}):                                      # the speed-up depends on the samples
        kw["K"] = k
        t_batch, t_loop = batched_vs_loop(lambda xs: refine(model, xs, **kw), x, subset, device)
        flops = mlp_flops([784, *units], n_images) + (steps + 1) * mlp_flops(gen, n_images * k)
        rows += [
            {"path": "batched", "samples": k, "images": n_images, "seconds": t_batch,
             "images/s": n_images / t_batch, "speed-up": t_loop / t_batch, "GFLOP/s": flops / t_batch / 1e9,
             "of matmul rate": flops / t_batch / rate},
            {"path": f"per-image loop (from {subset})", "samples": k, "images": n_images, "seconds": t_loop,
             "images/s": n_images / t_loop, "speed-up": 1.0, "GFLOP/s": flops / t_loop / 1e9,
             "of matmul rate": flops / t_loop / rate},
        ]
    table(rows, title=f"AIR: {steps} steps, gamma 0.9, {source} images, SBN 784-"
                      f"{'-'.join(map(str, units))}, {device}, {torch.get_num_threads()} threads; "
                      f"matmul rate {rate / 1e9:.1f} GFLOP/s")
    return rows
