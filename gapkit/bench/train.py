"""Benchmark the training loop: one epoch of :func:`gapkit.train.train` against a minimal PyTorch loop.

Both train the same model (the ``paper`` preset's 784-500-500 ReLU VAE, latent 16) from the same
weights on the same images (10,000 MNIST training images, or the 8x8 digits without data), batch
100, Adam, the ELBO; the minimal loop is what one would write by hand (a permutation, slices,
``loss.backward()``, two optimizer steps, no checks). gapkit's loop adds the per-step finiteness
check of every loss and parameter and the loss sum on the device, read once per epoch. The two run
interleaved, ``repeats`` times each, and the table gives the median seconds of the epoch's steps
(gapkit's ``epoch_time``, which leaves out the evaluation and checkpoints that follow the epoch)
and their ratio: minimal / gapkit, 1.0 when gapkit's loop costs nothing extra (target >= 0.95).
"""
from __future__ import annotations

import copy
import math
import statistics
import time

import torch

from . import _sync, benchmark, table

N_IMAGES, BATCH, REPEATS = 10_000, 100, 5


def _data(n_images, device):
    from ..data import load
    try:
        return load("mnist", "threshold", subset=n_images, test_subset=1000, seed=0, device=device), "MNIST"
    except (FileNotFoundError, ValueError, OSError):
        return load("digits", "threshold", seed=0, device=device), "8x8 digits"


def minimal_epoch(model, data, batch_size, lr, seed) -> float:
    """One epoch of a hand-written loop (ELBO, Adam on each side); seconds."""
    from ..objectives import ELBO
    device = data.train.device
    obj = ELBO()
    opt_e = torch.optim.Adam(model.encoder_parameters(), lr=lr)
    opt_d = torch.optim.Adam(model.decoder_parameters(), lr=lr)
    gen = torch.Generator(device=device).manual_seed(seed)
    n = len(data.train)
    _sync(device)
    t0 = time.perf_counter()
    perm = torch.randperm(n, device=device, generator=gen)
    for i in range(math.ceil(n / batch_size)):
        x = data.train[perm[i * batch_size:(i + 1) * batch_size]]
        loss = obj(model, x, gen).encoder
        opt_e.zero_grad(set_to_none=True)
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        opt_e.step()
        opt_d.step()
    _sync(device)
    return time.perf_counter() - t0


def gapkit_epoch(model, data, batch_size, lr, seed) -> float:
    """One epoch of :func:`gapkit.train.train`; the seconds of its steps (``epoch_time``)."""
    from ..objectives import ELBO
    from ..train import train
    h = train(model, data, ELBO(), epochs=1, batch_size=batch_size, lr=lr, seed=seed, eval_every=0,
              eval_train_subset=100, progress=False)
    return h["epoch_time"][0]


@benchmark("train", "one epoch of gapkit's training loop vs a minimal hand-written PyTorch loop (ratio)")
def bench_train(device="cpu", n_images: int = N_IMAGES, batch_size: int = BATCH, repeats: int = REPEATS):
    from ..models import VAE
    device = torch.device(device)
    data, source = _data(n_images, device)
    torch.manual_seed(0)
    base = VAE(data.dim, 16, (500, 500), "relu", data.likelihood).to(device)
    times = {"gapkit": [], "minimal": []}
    runs = {"gapkit": gapkit_epoch, "minimal": minimal_epoch}
    for r in range(repeats + 1):                       # interleaved; the first round warms up
        for name, fn in (runs.items() if r % 2 == 0 else reversed(runs.items())):
            t = fn(copy.deepcopy(base), data, batch_size, 1e-3, r)
            if r > 0:
                times[name].append(t)
    med = {k: statistics.median(v) for k, v in times.items()}
    steps = math.ceil(len(data.train) / batch_size)
    rows = [{"loop": k, "epoch seconds (median)": med[k], "ms/step": 1e3 * med[k] / steps,
             "min": min(times[k]), "max": max(times[k])} for k in ("minimal", "gapkit")]
    ratio = med["minimal"] / med["gapkit"]
    table(rows, title=f"train: one epoch, {len(data.train)} {source} images, batch {batch_size}, VAE "
                      f"{data.dim}-500-500 latent 16, {device}, {torch.get_num_threads()} threads, {repeats} "
                      f"interleaved repeats; ratio minimal/gapkit = {ratio:.3f} (target >= 0.95)")
    return rows + [{"loop": "ratio minimal/gapkit", "epoch seconds (median)": ratio}]
