"""Benchmark ``bits-back``: the VAE compressor's speed and code length on the binarized MNIST test set.

``python -m gapkit bench bits-back`` codes the 10,000 test images (threshold binarization) with the
``book`` model of the ``bits-back`` experiment (run ``python -m gapkit run bits-back --preset book``
first) at K = 0, with the default 2^8 latent bins and with 2^10, side by side: encode and decode
images per second (target >= 1,000 each way; the original implementation ran about 150/s), the
achieved BPD (initial bits excluded and reported) and its ratio to the test -ELBO of the coder's q
(target within 1%), gzip/bz2/lzma/PNG on the same images, and the networks' FLOP rate as a fraction
of this machine's matmul rate (one thread: the codec runs single-threaded for exactness).

Then Monte Carlo bits-back (issue 20) on the first ``MC_IMAGES`` test images with K = 1, 2, 8 and 32
importance samples, in the same run: encode and decode images/s, the achieved BPD against the -ELBO
and the -IWAE-K of the coder's q on the same images (the code length should follow -IWAE-K).

Last, the whole file against the net rate for 1, 10, 100 and 1000 images (issue 20: within 2% at
100 images): -ELBO of the coder's q, net BPD, and the file's BPD (8 x bytes / pixels, container
included) without and with the cheap start, from :func:`gapkit.experiments.bits_back.file_rates`.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from . import benchmark, matmul_rate, mlp_flops, table

MC_SAMPLES = (1, 2, 8, 32)
MC_IMAGES = 2000
FILE_SIZES = (1, 10, 100, 1000)


def _book_model():
    from ..experiments import default_out
    from ..models import load_model
    from ..train import checkpoints
    out = default_out("bits-back", "book", 0) / "binary" / "baseline"
    cks = checkpoints(out) if out.exists() else []
    if not cks:
        raise FileNotFoundError(f"no book model at {out}; run: python -m gapkit run bits-back --preset book")
    return load_model(str(cks[-1][1]))


@benchmark("bits-back", "Bits-back ANS codec: images/s each way at K=0, BPD vs -ELBO, gzip/bz2/lzma/PNG; "
                        "Monte Carlo bits-back at K = 1, 2, 8, 32 samples: images/s, BPD vs -ELBO and -IWAE-K")
def bits_back_bench(device="cpu"):
    from ..bounds import bpd
    from ..coding import BitsBackCodec, baseline_bpd
    from ..data import load
    from ..estimators import evaluate
    model = _book_model()
    x = load("mnist", "threshold").test.numpy().astype(np.uint8)        # (10000, 784)
    n, d = x.shape
    torch.set_num_threads(1)
    rate = matmul_rate(512)
    sizes_enc = [d, *model.hidden, 2 * model.z_dim]
    sizes_dec = [model.z_dim, *model.hidden[::-1], d]
    flops = mlp_flops(sizes_enc, 1) * 2 + mlp_flops(sizes_dec, 1)       # encoder on both sides, decoder
    rows = []
    for bits in (8, 10):
        codec = BitsBackCodec(model, latent_bits=bits)
        t0 = time.perf_counter()
        data = codec.encode(x)
        t1 = time.perf_counter()
        y = codec.decode(data)
        t2 = time.perf_counter()
        st = codec.last_stats
        mu, std = codec.posterior(x)
        ne = float(bpd(evaluate(model, torch.from_numpy(x).float(), "elbo", K=20, q=(mu, std)).mean(), d))
        enc, dec = n / (t1 - t0), n / (t2 - t1)
        rows.append({"codec": f"bits-back 2^{bits} bins, K=0", "encode img/s": enc, "decode img/s": dec,
                     "vs original (150/s)": min(enc, dec) / 150, "BPD": st["bpd"], "-ELBO BPD": ne,
                     "BPD / -ELBO": st["bpd"] / ne, "initial bits": st["initial_bits"],
                     "exact": bool(np.array_equal(y, x)),
                     "net FLOP rate / matmul": flops * min(enc, dec) / rate})
    for name, v in sorted(baseline_bpd(x, binary=True).items(), key=lambda kv: kv[1]):
        rows.append({"codec": name, "encode img/s": "", "decode img/s": "", "vs original (150/s)": "",
                     "BPD": v, "-ELBO BPD": "", "BPD / -ELBO": "", "initial bits": "", "exact": "",
                     "net FLOP rate / matmul": ""})
    table(rows, f"bits-back on {n} binarized MNIST test images ({model.config}); matmul {rate / 1e9:.1f} GFLOP/s")
    xm = x[:MC_IMAGES]
    xmt = torch.from_numpy(xm).float()
    mu, std = BitsBackCodec(model).posterior(xm)
    ne = float(bpd(evaluate(model, xmt, "elbo", K=20, q=(mu, std)).mean(), d))
    mc = []
    for K in MC_SAMPLES:
        codec = BitsBackCodec(model, samples=K)
        t0 = time.perf_counter()
        data = codec.encode(xm)
        t1 = time.perf_counter()
        y = codec.decode(data)
        t2 = time.perf_counter()
        st = codec.last_stats
        niw = float(bpd(evaluate(model, xmt, "iwae", K=K, q=(mu, std)).mean(), d))
        mc.append({"samples K": K, "encode img/s": len(xm) / (t1 - t0), "decode img/s": len(xm) / (t2 - t1),
                   "BPD": st["bpd"], "-ELBO BPD": ne, "-IWAE-K BPD": niw, "BPD / -IWAE-K": st["bpd"] / niw,
                   "below -ELBO": st["bpd"] < ne, "initial bits": st["initial_bits"],
                   "exact": bool(np.array_equal(y, xm))})
    table(mc, f"Monte Carlo bits-back on the first {len(xm)} test images, one thread")
    from ..experiments.bits_back import file_rates
    f = file_rates(model, x, FILE_SIZES)
    files = [{"images": n, "-ELBO BPD": f["neg_elbo_bpd"][i], "net BPD": f["plain"]["net_bpd"][i],
              "file BPD (plain)": f["plain"]["file_bpd"][i], "file BPD (cheap start)": f["cheap"]["file_bpd"][i],
              "cheap file / net": f["cheap"]["file_bpd"][i] / max(f["plain"]["net_bpd"][i], 1e-12),
              "container bytes": f["cheap"]["header_bytes"][i],
              "exact": all(f[k]["exact"][i] for k in ("plain", "cheap"))} for i, n in enumerate(f["n_images"])]
    table(files, "The whole file against the net rate (the first n test images)")
    return rows + mc + files
