"""Benchmark ``iwae``: IWAE-K evaluation of binarized MNIST test images with the ``book`` model.

``python -m gapkit bench iwae`` times :func:`gapkit.estimators.evaluate` (images in batches, the
K samples in chunks of at most ``max_rows`` (sample, image) rows per forward pass, a running
log-sum-exp) for K = 1000 and 5000, and reports images per second, the process's peak memory
and the achieved floating-point rate as a fraction of the machine's own matrix-multiply rate,
measured in the same run. The same work done by a per-image loop (all K samples of one image in
one pass, one image after another) is timed on a subset, and the ratio is given.
`Chapter 1 <https://gapkit.github.io/gapkit/notebooks/01_elbo_tightness.html>`_
(``notebooks/01_elbo_tightness``) shows the table.

The model is the trained ``book`` model of ``elbo-tightness`` or ``vae-basics`` when one is cached,
else a freshly initialised one of the same architecture (the speed does not depend on the weights).
"""
from __future__ import annotations

import os

import torch

from ..bounds import iwae
from ..estimators import evaluate, log_weights
from ..io import load_checkpoint
from ..models import VAE, build_model
from ..presets import get_preset
from . import benchmark, matmul_rate, mlp_flops, peak_memory, table, timed

__all__ = ["iwae_benchmark", "book_model", "iwae_flops"]


def book_model(device="cpu"):
    """The trained ``book`` model when a cached result has one, else a fresh one of that architecture."""
    from ..experiments import default_out
    p = get_preset("book")
    for name in ("elbo-tightness", "vae-basics"):
        ck = default_out(name, "book", 0) / "checkpoints" / f"epoch_{p.epochs:04d}.pt"
        if ck.exists():
            c = load_checkpoint(ck, map_location=device)
            m = build_model(c["model_config"])
            m.load_state_dict(c["model"])
            return m.to(device).eval(), f"trained ({name}, epoch {p.epochs})"
    torch.manual_seed(0)
    return VAE(784, p.latent, p.hidden, p.activation, "bernoulli").to(device).eval(), "freshly initialised"


def iwae_flops(model: VAE, n: int, K: int) -> float:
    """Matrix-multiply FLOPs of IWAE-K on n images: the encoder once per image, the decoder K times."""
    enc = [model.x_dim, *model.hidden, 2 * model.z_dim]
    dec = [model.z_dim, *model.hidden[::-1], model.x_dim]
    return mlp_flops(enc, n) + mlp_flops(dec, n * K)


def _per_image(model, x, K, seed=0):
    """The baseline: one image at a time, all K samples of that image in one forward pass."""
    g = torch.Generator(device=x.device).manual_seed(seed)
    with torch.no_grad():
        return torch.stack([iwae(log_weights(model, x[i:i + 1], K, generator=g))[0] for i in range(len(x))])


@benchmark("iwae", "IWAE-K (K=1000, 5000) of MNIST test images, book model: images/s, peak memory, "
           "FLOP rate vs matmul, batched vs per-image loop")
def iwae_benchmark(device="cpu", Ks=(1000, 5000), images=None, loop_images=None, max_rows: int | None = None):
    import inspect
    from ..data import load
    if max_rows is None:  # the library's default
        max_rows = inspect.signature(evaluate).parameters["max_rows"].default
    device = torch.device(device)
    images = images or {1000: 100, 5000: 20}
    loop_images = loop_images or {1000: 10, 5000: 4}
    data = load("mnist", "threshold", subset=100, test_subset=max(images.values()), device=device)
    model, origin = book_model(device)
    threads = torch.get_num_threads()
    print(f"model: book architecture {model.config['hidden']} latent {model.z_dim}, {origin}; device {device}, "
          f"{threads} threads (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})")
    rate = matmul_rate(device=device)
    print(f"matrix-multiply rate (1024x1024 float32): {rate / 1e9:.1f} GFLOP/s")
    base = peak_memory(device)
    rows = []
    for K in Ks:
        n, nl = images.get(K, 20), loop_images.get(K, 4)
        x = data.test[:n]
        t = timed(lambda: evaluate(model, x, "iwae", K, max_rows=max_rows), repeat=1, device=device)
        peak = peak_memory(device)
        tl = timed(lambda: _per_image(model, x[:nl], K), repeat=1, device=device)
        f, fl = iwae_flops(model, n, K), iwae_flops(model, nl, K)
        rows.append({"K": K, "method": f"chunked evaluate (max_rows {max_rows})", "images": n, "seconds": t,
                     "images/s": n / t, "GFLOP/s": f / t / 1e9, "of matmul rate": f / t / rate,
                     "peak MB": peak / 2 ** 20, "speed-up": n / t / (nl / tl)})
        rows.append({"K": K, "method": "per-image loop", "images": nl, "seconds": tl, "images/s": nl / tl,
                     "GFLOP/s": fl / tl / 1e9, "of matmul rate": fl / tl / rate, "peak MB": peak_memory(device) / 2 ** 20,
                     "speed-up": 1.0})
    print(f"peak memory before the evaluations (data, model, matmul test): {base / 2 ** 20:.0f} MB; peak memory "
          "is the process's peak resident set (CPU) or CUDA's peak allocation, cumulative down the table")
    table(rows, title=f"IWAE-K evaluation, binarized MNIST test images ({device}, {threads} threads)")
    per_image = {r["K"]: r["seconds"] / r["images"] for r in rows if r["method"].startswith("chunked")}
    est = {K: 10000 * s for K, s in per_image.items()}
    print("estimated time for the whole 10k test set: " + ", ".join(f"IWAE-{K} {s / 60:.1f} min" for K, s in est.items()))
    return rows
