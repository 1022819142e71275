"""Codecs as push/pop pairs over an ANS stack, in the style of craystack
(`chapter 7 <https://gapkit.github.io/gapkit/notebooks/07_bits_back.html>`_).

A :class:`Codec` is a pair of functions over ``constriction``'s stack ANS coder ``ans`` (mutable, so
push returns nothing): ``push(ans, symbols)`` puts symbols on the stack, ``pop(ans) -> symbols`` takes
them off again (last in, first out), and ``prob(symbols)`` gives each symbol's quantized probability
under the codec (so that rates, traces and importance weights come from the very tables that code).
Pushing a symbol with probability P grows the stack by about -log2 P bits; popping shrinks it by as
much. The primitives here code arrays of symbols; :mod:`gapkit.coding.vae` builds the model's prior,
likelihood and posterior from them, :mod:`gapkit.coding.bitsback` and :mod:`gapkit.coding.mcbits`
compose those.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import constriction
import numpy as np

__all__ = ["Codec", "uniform", "categorical", "bernoulli", "concat"]

_CAT = constriction.stream.model.Categorical(perfect=False)
_BERN = constriction.stream.model.Bernoulli(perfect=False)


class Codec(NamedTuple):
    push: Callable                  # push(ans, symbols)
    pop: Callable                   # pop(ans) -> symbols
    prob: Callable | None = None    # prob(symbols) -> P(symbol) of each symbol
    table: np.ndarray | None = None  # a categorical codec's (rows, n) table


def uniform(n: int, size: int) -> Codec:
    """``size`` symbols, each uniform over 0..n-1 (log2 n bits each)."""
    model = constriction.stream.model.Uniform(n)
    return Codec(lambda ans, s: ans.encode_reverse(np.asarray(s, np.int32).reshape(-1), model),
                 lambda ans: ans.decode(model, size),
                 lambda s: np.full(np.shape(s), 1.0 / n))


def categorical(table: np.ndarray) -> Codec:
    """One symbol per row of ``table`` (rows, n): symbol i has probability table[i, s_i]."""
    rows = np.arange(len(table))
    return Codec(lambda ans, s: ans.encode_reverse(np.asarray(s, np.int32).reshape(-1), _CAT, table),
                 lambda ans: ans.decode(_CAT, table),
                 lambda s: table[rows, np.asarray(s).reshape(-1)], table)


def bernoulli(p: np.ndarray) -> Codec:
    """Binary symbols with P(1) = p (one a pixel)."""
    return Codec(lambda ans, s: ans.encode_reverse(np.asarray(s, np.int32).reshape(-1), _BERN, p),
                 lambda ans: ans.decode(_BERN, p),
                 lambda s: np.where(np.asarray(s).reshape(-1) == 1, p, 1.0 - p))


def concat(parts) -> Codec:
    """Consecutive slices of one symbol array, each with its own codec: [(slice, codec)]; pushed in
    order, popped in reverse."""
    def push(ans, s):
        s = np.asarray(s).reshape(-1)
        for sl, c in parts:
            c.push(ans, s[sl])

    def pop(ans):
        return np.concatenate([c.pop(ans) for _, c in reversed(parts)][::-1])

    def prob(s):
        s = np.asarray(s).reshape(-1)
        return np.concatenate([c.prob(s[sl]) for sl, c in parts])
    return Codec(push, pop, prob)
