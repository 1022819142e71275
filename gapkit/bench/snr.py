"""Benchmark ``snr``: many gradient estimates in one batched pass against a loop of backward passes.

``python -m gapkit bench snr``: 1,000 IWAE gradient estimates (and their per-parameter and
directional SNR) for the ``book`` model of
`chapter 4 <https://gapkit.github.io/gapkit/notebooks/04_iwae_snr.html>`_, by
:func:`gapkit.analysis.snr.snr` (repetitions as a batch dimension) and by a Python loop of backward passes
(:func:`gapkit.analysis.snr.gradient_estimates_loop`), side by side; plus the batched path's FLOP rate as a
fraction of this machine's matrix-multiply rate measured in the same run.
"""
from __future__ import annotations

import torch

from . import benchmark, matmul_rate, mlp_flops, table, timed

CASES = ((1, 1), (10, 4), (64, 1))   # (K, B): samples per estimate, images in the minibatch


def book_model(device="cpu", seed: int = 0):
    """An (untrained) model of the ``book`` preset's architecture of
    `chapter 4 <https://gapkit.github.io/gapkit/notebooks/04_iwae_snr.html>`_; timings do not
    depend on the weights."""
    from ..experiments.iwae_snr import SETTINGS
    from ..models import VAE
    s = SETTINGS["book"]["model"]
    torch.manual_seed(seed)
    return VAE(784, s["latent"], s["hidden"], s["activation"]).to(device)


def compare(model, reps: int = 1000, cases=CASES, device="cpu", repeat: int = 1) -> list[dict]:
    """Rows: time of ``reps`` estimates by the batched estimator and by the loop, their ratio, and
    the batched FLOP rate as a fraction of the matmul rate."""
    from ..analysis.snr import draw_noise
    from ..analysis.snr import gradient_estimates_loop
    from ..analysis.snr import snr
    from ..analysis.snr import snr_from_estimates
    rate = matmul_rate(device=device)
    enc = [model.x_dim, *model.hidden, 2 * model.z_dim]
    dec = [model.z_dim, *model.hidden[::-1], model.x_dim]
    n_params = sum(p.numel() for p in model.parameters())
    rows = []
    for K, B in cases:
        x = (torch.rand(B, model.x_dim, generator=torch.Generator().manual_seed(0)) > 0.5).float().to(device)
        eps = draw_noise(reps, 1, K, B, model.z_dim, torch.Generator().manual_seed(0)).to(device)
        # the batched path may hold all estimates, as the loop does (one pass, no recomputation)
        t_b = timed(lambda: snr(model, x, K=K, reps=reps, seed=0, max_keep_floats=reps * n_params), repeat, device)
        t_l = timed(lambda: snr_from_estimates(gradient_estimates_loop(model, x, eps)), repeat, device)
        flops = mlp_flops(enc, reps * B, backward=True) + mlp_flops(dec, reps * K * B, backward=True)
        rows.append({"K": K, "B": B, "estimates": reps, "batched_s": t_b, "loop_s": t_l,
                     "speedup": t_l / t_b, "batched_GFLOP/s": flops / t_b / 1e9,
                     "matmul_GFLOP/s": rate / 1e9, "fraction_of_matmul": flops / t_b / rate})
    return rows


@benchmark("snr", "1,000 IWAE gradient estimates + SNR for the book model: batched vs a loop of backward passes")
def snr_bench(device: str = "cpu", reps: int = 1000):
    model = book_model(device)
    rows = compare(model, reps, device=device)
    table(rows, title=f"SNR of IWAE gradients, {reps} estimates, model {model.config} ({torch.get_num_threads()} threads)")
    return rows
