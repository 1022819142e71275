"""Lossless compression with a VAE: bits-back coding with ANS (chapter 7, ``notebooks/07_bits_back``).

* :class:`BitsBackCodec` - ``encode(images) -> bytes``, ``decode(data) -> images`` over a trained
  :class:`gapkit.models.VAE` (Bernoulli or discretized-logistic pixels), with K-step optimal
  inference inside the coder; :func:`encode` / :func:`decode` are the one-call forms.
* :mod:`gapkit.coding.mcbits` - Monte Carlo bits-back with importance sampling (``samples=K``):
  a code length of -IWAE-K.
* :mod:`gapkit.coding.container` - the self-describing message format.
* :mod:`gapkit.coding.baselines` - gzip, bz2, lzma and PNG on the same images, in bits per dimension.
* :mod:`gapkit.coding.cli` - ``python -m gapkit compress`` / ``decompress``.
"""
from .codec import BitsBackCodec, CodecError, decode, encode, model_hash, read_header  # noqa: F401
from .baselines import baseline_bpd  # noqa: F401
