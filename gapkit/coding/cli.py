"""``python -m gapkit compress`` / ``decompress``: bits-back coding of ``.npy`` image arrays
(`chapter 7 <https://gapkit.github.io/gapkit/notebooks/07_bits_back.html>`_).

    python -m gapkit compress images.npy message.gkbb --checkpoint model.pt [--steps K] [--samples K] ...
    python -m gapkit decompress message.gkbb images.npy --checkpoint model.pt

The model is a gapkit checkpoint (:func:`gapkit.io.save_checkpoint`) of a trained VAE. Every input
is checked before anything is written; the output must not be one of the inputs (same resolved path
or inode); outputs are written atomically, so a failure leaves no file.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np

from ..models import load_model

__all__ = ["add_commands"]


def _read_npy(path):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:  # not an .npy, pickled objects, ...
        raise ValueError(f"{path} is not a readable .npy array ({type(e).__name__}: {e})") from None
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{path} must hold one array (.npy), not an archive (.npz)")
    return arr


def _cmd_compress(args):
    from ..io import atomic_write_bytes, check_output
    from .codec import BitsBackCodec
    check_output(args.output, "file", inputs=[args.input, args.checkpoint])  # never overwrite an input
    images = _read_npy(args.input)
    codec = BitsBackCodec(load_model(args.checkpoint), latent_bits=args.latent_bits,
                          posterior_precision=args.posterior_precision, pixel_precision=args.pixel_precision,
                          group_size=args.group_size, steps=args.steps, lr=args.lr, seed=args.seed,
                          samples=args.samples, cheap_start=args.cheap_start)
    data = codec.encode(images, progress=not args.quiet)
    atomic_write_bytes(args.output, data)
    st = codec.last_stats
    print(f"gapkit: {st['n_images']} images -> {len(data)} bytes ({st['bpd']:.4f} bits/dim net of "
          f"{st['initial_bits']} initial bits; {8 * len(data) / (st['n_images'] * st['dim']):.4f} bits/dim "
          f"for the whole file) -> {args.output}")


def _cmd_decompress(args):
    from ..io import atomic_write_bytes, check_output
    from .codec import decode
    check_output(args.output, "file", inputs=[args.input, args.checkpoint])  # never overwrite an input
    path = Path(args.input)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    images = decode(load_model(args.checkpoint), path.read_bytes(), progress=not args.quiet)
    buf = io.BytesIO()
    np.save(buf, images, allow_pickle=False)
    atomic_write_bytes(args.output, buf.getvalue())
    print(f"gapkit: {len(images)} images {images.shape[1:]} {images.dtype} -> {args.output}", file=sys.stdout)


def add_commands(subparsers):
    """Add ``compress`` and ``decompress`` to the ``python -m gapkit`` subparsers."""
    c = subparsers.add_parser("compress", help="bits-back compress a .npy array of images with a trained VAE")
    c.add_argument("input", help=".npy array of images, (N, D) or (N, H, W): 0/1 or 0..255")
    c.add_argument("output", help="message file to write")
    c.add_argument("--checkpoint", required=True, help="gapkit checkpoint of the trained VAE")
    c.add_argument("--steps", type=int, default=0, help="K-step optimal inference inside the coder (default 0)")
    c.add_argument("--lr", type=float, default=5e-3, help="Adam learning rate of the K steps")
    c.add_argument("--latent-bits", type=int, default=8, help="2^bits prior bins per latent")
    c.add_argument("--samples", type=int, default=1,
                   help="importance samples per image: Monte Carlo bits-back, code length -IWAE-K (default 1)")
    c.add_argument("--cheap-start", action="store_true",
                   help="start the stack without initial random bits (first image coded without bits back)")
    c.add_argument("--posterior-precision", type=int, default=24,
                   help="q's CDF rounded to multiples of 2^-this (tail bins may be empty; default 24)")
    c.add_argument("--pixel-precision", type=int, default=None)
    c.add_argument("--group-size", type=int, default=100, help="images per network pass")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(func=_cmd_compress)
    d = subparsers.add_parser("decompress", help="decompress a bits-back message into a .npy array")
    d.add_argument("input", help="message file from 'compress'")
    d.add_argument("output", help=".npy file to write")
    d.add_argument("--checkpoint", required=True, help="the checkpoint that compressed it")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=_cmd_decompress)
