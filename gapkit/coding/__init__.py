"""Lossless compression with a VAE: bits-back coding with ANS
(`chapter 7 <https://gapkit.github.io/gapkit/notebooks/07_bits_back.html>`_).

One idea a file:

* :mod:`~gapkit.coding.codecs` - push/pop pairs over the ANS stack (uniform, categorical, Bernoulli);
* :mod:`~gapkit.coding.tables` - the quantized tables (latent bins, q's rounded CDF, pixels) and -log2 P;
* :mod:`~gapkit.coding.vae` - the VAE's prior p(z), likelihood p(x|z) and posterior q(z|x) codecs;
* :mod:`~gapkit.coding.bitsback` - their composition into bits-back (code length -ELBO), the cheap
  start, and the step-by-step trace;
* :mod:`~gapkit.coding.mcbits` - Monte Carlo bits-back with K importance samples (code length -IWAE-K);
* :mod:`~gapkit.coding.stack` - initial bits, the reserve check and the encoder's retry loop;
* :mod:`~gapkit.coding.fingerprint` - the model hash and the arithmetic probe;
* :mod:`~gapkit.coding.container` - the compact binary message format and its checks;
* :mod:`~gapkit.coding.images` - the images a codec accepts;
* :mod:`~gapkit.coding.codec` - :class:`BitsBackCodec`, ``encode(images) -> bytes``,
  ``decode(data) -> images``; :func:`encode` / :func:`decode` are the one-call forms;
* :mod:`~gapkit.coding.baselines` - gzip, bz2, lzma and PNG on the same images, in bits per dimension;
* :mod:`~gapkit.coding.cli` - ``python -m gapkit compress`` / ``decompress``.
"""
from .baselines import baseline_bpd  # noqa: F401
from .codec import BitsBackCodec, decode, encode, read_header  # noqa: F401
from .container import CodecError  # noqa: F401
from .fingerprint import model_hash  # noqa: F401
