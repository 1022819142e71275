"""Bits-back coding as a composition of push/pop pairs (Townsend et al. 2019;
`chapter 7 <https://gapkit.github.io/gapkit/notebooks/07_bits_back.html>`_).

For a group of images x, from the prior, likelihood and posterior codecs (:mod:`gapkit.coding.vae`):

* **push**: pop z with q(z | x) (decoding *is* sampling), push x with p(x | z), push z with p(z);
* **pop**: pop z with p(z), pop x with p(x | z), push z back with q(z | x).

The stack grows by  -log2 p(x | z) - log2 p(z) + log2 q(z | x)  bits: a one-sample negative ELBO in
bits. :func:`no_bits_back` is the cheap start's codec (no pop, so an empty stack will do), and
:func:`trace` records the stack size after each step of :func:`bits_back` for one image.
"""
from __future__ import annotations

from .codecs import Codec
from .stack import check_reserve, start, words_for
from .tables import entropy_bits, info

__all__ = ["bits_back", "no_bits_back", "trace"]


def bits_back(prior: Codec, likelihood, posterior, reserve: int = 32, record=None) -> Codec:
    """The bits-back codec of images x from ``prior`` (a codec), ``likelihood(z)`` and ``posterior(x)``
    (functions returning codecs). The encoder's pop of z must leave ``reserve`` bits on the stack
    (:class:`gapkit.coding.stack.Underflow` otherwise); ``record(step, codec, symbols)``, if given,
    runs after each step of push."""
    record = record or (lambda *a: None)

    def push(ans, x):
        q = posterior(x)
        before = ans.num_valid_bits()
        z = q.pop(ans)                                   # pop z ~ q(z|x)
        check_reserve(before, info(q.prob(z)).sum(), reserve)
        record("pop z", q, z)
        px = likelihood(z)
        px.push(ans, x)                                  # push x ~ p(x|z)
        record("push x", px, x)
        prior.push(ans, z)                               # push z ~ p(z)
        record("push z", prior, z)

    def pop(ans):
        z = prior.pop(ans)                               # pop z ~ p(z)
        x = likelihood(z).pop(ans)                       # pop x ~ p(x|z)
        posterior(x).push(ans, z)                        # push z ~ q(z|x): the bits back
        return x
    return Codec(push, pop)


def no_bits_back(prior: Codec, likelihood, mode) -> Codec:
    """The cheap start: push x with p(x | z*) at the latent bins z* = ``mode(x)``, then z* with p(z);
    nothing is popped, so it needs no bits on the stack (and gives none back)."""
    def push(ans, x):
        z = mode(x)
        likelihood(z).push(ans, x)
        prior.push(ans, z)

    def pop(ans):
        return likelihood(prior.pop(ans)).pop(ans)
    return Codec(push, pop)


def trace(prior: Codec, likelihood, posterior, x, seed: int) -> dict:
    """Bits-back step by step for one image x (1, D) on a fresh stack of initial words
    (`chapter 7 <https://gapkit.github.io/gapkit/notebooks/07_bits_back.html>`_).

    -> the stack size in bits after each step (``start``, ``pop z``, ``push x``, ``push z``), the popped
    bins, and the terms -log2 Q(z|x), -log2 P(x|z), -log2 P(z) from the codecs that coded them.
    """
    q = posterior(x)
    ans = start(words_for(entropy_bits(q.table)), seed)
    sizes, terms = {"start": ans.num_valid_bits()}, {}

    def record(step, codec, symbols):
        sizes[step] = ans.num_valid_bits()
        terms[step] = (float(info(codec.prob(symbols)).sum()), symbols)
    bits_back(prior, likelihood, lambda _: q, record=record).push(ans, x)
    return {"stack_bits": sizes, "z_bins": terms["pop z"][1].tolist(), "neg_log2_q": terms["pop z"][0],
            "neg_log2_px_given_z": terms["push x"][0], "neg_log2_pz": terms["push z"][0]}
