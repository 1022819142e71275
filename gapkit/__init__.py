"""gapkit: gaps in amortized variational inference.

A small PyTorch library behind the gapkit book. One idea per module:

- :mod:`gapkit.data`: MNIST, binarized MNIST and 8x8 digits as tensors;
- :mod:`gapkit.models`: the MLP VAE and the linear-Gaussian ground truth;
- :mod:`gapkit.likelihoods`: Gaussian, Bernoulli and discretized-logistic log-densities;
- :mod:`gapkit.bounds`: ELBO, IWAE and friends over log-weights (K, B);
- :mod:`gapkit.estimators`: log-weights and chunked whole-dataset evaluation;
- :mod:`gapkit.objectives` and :mod:`gapkit.train`: the one training loop;
- :mod:`gapkit.presets`, :mod:`gapkit.experiments`, :mod:`gapkit.bench`: what the book runs.
"""
__version__ = "0.1.0"

from . import bounds, data, likelihoods, models, objectives  # noqa: E402,F401
from .bounds import bpd, elbo, iwae, log_mean_exp  # noqa: E402,F401
from .data import load  # noqa: E402,F401
from .models import VAE, LinearGaussian  # noqa: E402,F401
from .presets import get_preset  # noqa: E402,F401
