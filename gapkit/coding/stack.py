"""The ANS stack's start, its reserve of bits, and the retry loop of the encoder
(`chapter 7 <https://gapkit.github.io/gapkit/notebooks/07_bits_back.html>`_).

Bits-back pops latents before it pushes anything, so a stack must hold bits before the first pop:
``n`` initial random 32-bit words (:func:`initial_words`, seeded; decoding hands exactly these back,
which the decoder checks), or none with the cheap start. A pop that would leave fewer than a reserve
of bits (estimated from the popped symbols' information) raises :class:`Underflow`, and
:func:`encode_with_retry` starts again with twice the initial words.
"""
from __future__ import annotations

import contextlib
import math

import constriction
import numpy as np
import torch

__all__ = ["INIT_SEED_STREAM", "Underflow", "initial_words", "words_for", "start", "check_reserve",
           "encode_with_retry", "one_thread"]

INIT_SEED_STREAM = 0x6761706B  # "gapk": the stream of the initial random words


class Underflow(Exception):
    """The encoder popped more bits than the stack held: retry with more initial words."""


def initial_words(n: int, seed: int) -> np.ndarray:
    """The ``n`` random 32-bit words that start the stack (PCG64 raw output, stable across numpy)."""
    bg = np.random.PCG64([seed, INIT_SEED_STREAM])
    raw = bg.random_raw((n + 1) // 2).astype(np.uint64)
    return np.stack([raw & 0xFFFFFFFF, raw >> np.uint64(32)], 1).reshape(-1)[:n].astype(np.uint32)


def words_for(bits: float, samples: int = 1) -> int:
    """Initial words for a first pop of ``samples`` times ``bits`` expected information:
    ceil((1.25 bits samples + 256) / 32)."""
    return int(math.ceil((1.25 * bits * samples + 256) / 32))


def start(n: int, seed: int):
    """A stack holding the ``n`` initial words (sealed), or an empty stack for n = 0."""
    if n == 0:
        return constriction.stream.stack.AnsCoder()
    return constriction.stream.stack.AnsCoder(initial_words(n, seed), seal=True)


def check_reserve(before: int, popped: float, reserve: int):
    """Raise :class:`Underflow` when ``before`` stack bits less ``popped`` bits of information fall below ``reserve``."""
    if before - popped < reserve:
        raise Underflow()


def encode_with_retry(push_all, n: int, seed: int):
    """Run ``push_all(ans)`` on a stack started with ``n`` initial words, doubling them (at least one) on
    :class:`Underflow` -> (ans, n, the stack's bits at the start)."""
    while True:
        ans = start(n, seed)
        start_bits = ans.num_bits()
        try:
            push_all(ans)
            return ans, n, start_bits
        except Underflow:
            n = max(1, 2 * n)


@contextlib.contextmanager
def one_thread():
    """Torch on one thread inside: the thread count cannot change a rounding on either side of the coder."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
