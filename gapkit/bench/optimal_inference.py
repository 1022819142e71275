"""Benchmark ``optimal-inference``: per-data-point optimal inference for a whole test set at once.

:func:`gapkit.inference.optimal.per_point` optimizes free (mu_i, log sigma_i) for every image together: each
Adam step is one decoder forward and backward pass over all N images (N x K rows), so the work is
a few large matrix products. The alternative is a Python loop over images, one small optimization
per image with the same number of steps. Both are timed here in one run (the loop on a subset of
images, scaled to N), with the batched path's FLOP rate as a fraction of this machine's measured
matrix-multiply rate. `Chapter 2 <https://gapkit.github.io/gapkit/notebooks/02_generalization_gaps.html>`_
uses the batched path at
every checkpoint.

FLOPs per step of the batched path: the decoder's forward pass over N*K rows plus its backward
pass to the latents only (the decoder's weights are frozen, so no weight gradients): about
2 x ``mlp_flops(decoder sizes, N*K)``.
"""
from __future__ import annotations

import os
import time

import torch

from ..models import VAE
from ..inference.optimal import per_point
from . import _sync, benchmark, matmul_rate, mlp_flops, table, timed


def _test_images(n: int, device) -> torch.Tensor:
    """MNIST test images (threshold binarization) when available, else Bernoulli(0.13) pixels."""
    try:
        from ..data import load
        x = load("mnist", "threshold", device=device).test[:n]
        if len(x) == n:
            return x, "mnist test (threshold)"
    except (OSError, ValueError):
        pass
    g = torch.Generator().manual_seed(0)
    return torch.bernoulli(torch.full((n, 784), 0.13), generator=g).to(device), "synthetic Bernoulli(0.13)"


def _once(fn, device) -> float:
    """Wall time of one call (the batched path is long; a small warm-up call precedes it)."""
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


@benchmark("optimal-inference", "per-point optimal inference: whole test set at once vs a loop over images")
def optimal_inference(device="cpu", n: int = 10000, loop_subset: int = 40, steps: int = 20,
                      hidden=(500, 500), latent: int = 16, K: int = 1):
    if not (isinstance(n, int) and n > 0 and isinstance(loop_subset, int) and 0 < loop_subset <= n):
        raise ValueError(f"need 0 < loop_subset <= n, got n={n!r}, loop_subset={loop_subset!r}")
    device = torch.device(device)
    torch.manual_seed(0)
    model = VAE(784, latent, hidden, "relu", "bernoulli").to(device).eval()
    x, source = _test_images(n, device)
    kw = dict(steps=steps, lr=1e-2, K=K, seed=0)

    rate = matmul_rate(device=device)
    per_point(model, x[:100], **{**kw, "steps": 2})                    # warm-up (allocator, kernels)
    t_batch = _once(lambda: per_point(model, x, **kw), device)
    xs = x[:loop_subset]

    def loop():
        for i in range(loop_subset):       # the per-image baseline (deliberately a Python loop)
            per_point(model, xs[i:i + 1], **kw)

    t_loop = timed(loop, repeat=1, device=device) * n / loop_subset
    rate = max(rate, matmul_rate(device=device))  # best of before and after (shared machines)
    dec_sizes = [latent, *hidden[::-1], 784]
    enc_sizes = [784, *hidden, 2 * latent]
    flops = steps * 2 * mlp_flops(dec_sizes, n * K) + mlp_flops(enc_sizes, n)
    threads = torch.get_num_threads() if device.type == "cpu" else "-"
    rows = [
        {"path": f"batched: all {n} images at once", "images/s": n / t_batch, "time (s)": t_batch,
         "speed-up": t_loop / t_batch, "GFLOP/s": flops / t_batch / 1e9, "of matmul rate": flops / t_batch / rate},
        {"path": f"loop over images (timed on {loop_subset}, scaled)", "images/s": n / t_loop, "time (s)": t_loop,
         "speed-up": 1.0, "GFLOP/s": flops / t_loop / 1e9, "of matmul rate": flops / t_loop / rate},
    ]
    table(rows, title=(f"optimal inference, {steps} Adam steps per image, K={K}, VAE 784-{hidden}-{latent}, "
                       f"{source}; device {device}, {threads} threads (OMP_NUM_THREADS="
                       f"{os.environ.get('OMP_NUM_THREADS', 'unset')}); matmul rate {rate / 1e9:.1f} GFLOP/s"))
    ratio = t_loop / t_batch
    print(f"batched / loop throughput ratio: {ratio:.1f}x (target >= 10x): "
          f"{'met' if ratio >= 10 else 'NOT met'}")
    return rows
