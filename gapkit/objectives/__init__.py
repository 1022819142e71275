"""Training objectives for the one training loop (:func:`gapkit.train.train`), in one registry.

An objective is called as ``objective(model, x, generator)`` on a minibatch and returns
:class:`gapkit.objectives.base.Losses` (losses to *minimize* for the encoder and the decoder,
either may be ``None``). Every objective class is registered by name, so
``make_objective("miwae", M=8, K=8)`` works as soon as ``gapkit`` is imported, and
``names(EncoderScheme)`` lists one family. Everything below is importable from ``gapkit.objectives``.

=====================  ==================================================================  =======
file                   objectives                                                          chapter
=====================  ==================================================================  =======
``base.py``            ``Losses``, ``Objective``, ``register``, ``make_objective``, ``names``  -
``bounds_based.py``    ``bound`` (any bound of :mod:`gapkit.bounds`), ``elbo``, ``iwae``     0, 1, 4
``rainforth.py``       ``miwae``, ``ciwae``, ``ciwae-learned``, ``piwae``                    4
``encoder_schemes.py`` ``wake``, ``sleep``, ``reverse_sleep``, ``reverse_half_asleep``,      3
                       ``denoising`` (``EncoderScheme``)
``refined.py``         ``gdir``, ``svi``, ``bsvi``, ``bsvi-ds``, ``bsvi-sir``                5, 6
``discrete.py``        ``air``, ``rws``, ``bihm`` (binary latents, ``gapkit.inference.air.fit``)       8
=====================  ==================================================================  =======

A new objective: one small class in one of these files (or a new file imported below), with a
``name``, ``config()`` and ``__call__``, decorated with ``register``. The classes are documented
in their files (the names are re-exported here without ``__all__``, so that each has one home).
"""
from .base import OBJECTIVES, Losses, Objective, make_objective, names, register  # noqa: F401
from .bounds_based import ELBO, IWAE, BoundObjective  # noqa: F401
from .rainforth import CIWAE, MIWAE, PIWAE, LearnableCIWAE  # noqa: F401
from .encoder_schemes import (Denoising, EncoderScheme, ReverseHalfAsleep, ReverseSleep, Sleep, Wake,
                              model_samples)  # noqa: F401
from .refined import BSVI, BSVIDS, BSVISIR, GDIR, SVI, RefinedObjective  # noqa: F401
from .discrete import AIR, RWS, BiHM, Reweighted  # noqa: F401
