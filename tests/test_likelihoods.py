"""The discretized logistic likelihood of 8-bit pixels (chapter 2, grey MNIST).

P(x) = sigmoid((x + 1/2 - mu) / s) - sigmoid((x - 1/2 - mu) / s) for x in 0..255, with the outer
edges at -inf and +inf. Checked: the 256 masses sum to one for any mean and scale (extreme ones
included), every mass is finite, and each mass equals a direct numerical integral of the
logistic density over its bin.
"""
import math

import numpy as np
import pytest
import torch

from gapkit.likelihoods import discretized_logistic_log_prob

PIXELS = torch.arange(256, dtype=torch.float64)

# (mean in pixel units, log scale): ordinary, at the edges, far outside 0..255, very sharp, very wide.
CASES = [(127.5, 0.0), (0.0, -4.0), (255.0, -4.0), (3.2, 1.0), (-500.0, 0.0), (900.0, 2.0),
         (40.3, -9.0), (200.5, -12.0), (128.0, 6.0), (60.0, 12.0), (254.6, -3.0), (0.4, 3.0),
         (1e5, -8.0), (-1e5, 5.0), (17.49, -20.0)]


def _log_probs(mean, log_scale, dtype):
    x = PIXELS.to(dtype)[:, None]                              # (256, 1): every pixel value
    m = torch.full((256, 1), float(mean), dtype=dtype)
    ls = torch.full((256, 1), float(log_scale), dtype=dtype)
    return discretized_logistic_log_prob(x, m, ls)               # (256,)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mean,log_scale", CASES)
def test_sums_to_one_over_256_values(mean, log_scale, dtype):
    lp = _log_probs(mean, log_scale, dtype)
    assert torch.isfinite(lp).all(), f"non-finite log-probabilities at mean={mean}, log_scale={log_scale}"
    assert (lp <= 1e-6).all()
    total = torch.logsumexp(lp.double(), 0).exp().item()
    tol = 1e-4 if dtype == torch.float32 else 1e-9
    assert abs(total - 1.0) < tol, f"masses sum to {total} at mean={mean}, log_scale={log_scale}"


def test_sums_to_one_random_batch():
    g = torch.Generator().manual_seed(0)
    mean = torch.empty(1, 300, dtype=torch.float64).uniform_(-300, 600, generator=g)   # (1, 300)
    log_scale = torch.empty(1, 300, dtype=torch.float64).uniform_(-15, 10, generator=g)
    x = PIXELS[:, None].expand(256, 300)                                                # (256, 300)
    lp = discretized_logistic_log_prob(x, mean.expand(256, 300), log_scale.expand(256, 300), reduce=False)
    assert torch.isfinite(lp).all()
    assert torch.allclose(torch.logsumexp(lp, 0).exp(), torch.ones(300, dtype=torch.float64), atol=1e-9)


def _logistic_pdf(t, mean, s):
    u = (t - mean) / s
    return np.exp(-np.abs(u)) / (s * (1 + np.exp(-np.abs(u))) ** 2)


@pytest.mark.parametrize("mean,log_scale", [(127.5, 0.0), (3.2, 1.0), (250.0, 2.5), (80.7, -1.5),
                                            (128.0, 4.0), (10.0, -3.0)])
def test_matches_numerical_integration_over_bins(mean, log_scale):
    """Each mass equals the integral of the logistic density over its bin (edge bins to +-inf)."""
    s = math.exp(log_scale)
    lp = _log_probs(mean, log_scale, torch.float64).numpy()
    # Interior bins [x - 1/2, x + 1/2]: composite Simpson's rule on a fine grid per bin.
    n = 2000  # even number of sub-intervals
    left = np.arange(256) - 0.5
    grid = left[:, None] + np.linspace(0.0, 1.0, n + 1)[None, :]       # (256, n+1)
    w = np.ones(n + 1)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    mass = (_logistic_pdf(grid, mean, s) * w).sum(1) / (3 * n)
    # Edge bins: the integral of the tail out to infinity on a long grid (density decays as exp).
    tail = 60 * s + 300
    for i, (a, b) in ((0, (0.5 - tail, 0.5)), (255, (254.5, 254.5 + tail))):
        t = np.linspace(a, b, 200001)
        mass[i] = np.trapezoid(_logistic_pdf(t, mean, s), t) if hasattr(np, "trapezoid") else \
            np.trapz(_logistic_pdf(t, mean, s), t)
    big = mass > 1e-12
    np.testing.assert_allclose(np.exp(lp[big]), mass[big], rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(mass.sum(), 1.0, atol=1e-6)


def test_matches_closed_form_sigmoid_difference():
    """Moderate values, where the naive sigmoid difference is accurate: the two agree."""
    g = torch.Generator().manual_seed(1)
    x = torch.randint(1, 255, (50, 784), generator=g).double()
    mean = torch.empty(50, 784, dtype=torch.float64).uniform_(0, 255, generator=g)
    log_scale = torch.empty(50, 784, dtype=torch.float64).uniform_(1, 4, generator=g)
    s = log_scale.exp()
    naive = torch.log(torch.sigmoid((x + 0.5 - mean) / s) - torch.sigmoid((x - 0.5 - mean) / s))
    lp = discretized_logistic_log_prob(x, mean, log_scale, reduce=False)
    ok = naive > -12  # where the naive difference of two sigmoids has not lost its digits
    assert ok.float().mean() > 0.5
    assert torch.allclose(lp[ok], naive[ok], rtol=1e-8, atol=1e-8)
    assert torch.allclose(discretized_logistic_log_prob(x, mean, log_scale), lp.sum(-1))


def test_gradients_finite_at_extremes():
    mean = torch.tensor([[-1e3, 0.0, 127.0, 255.0, 1e3]], dtype=torch.float64, requires_grad=True)
    log_scale = torch.tensor([[-12.0, -4.0, 0.0, 6.0, 3.0]], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([[0.0, 0.0, 200.0, 255.0, 100.0]], dtype=torch.float64)
    discretized_logistic_log_prob(x, mean, log_scale).sum().backward()
    assert torch.isfinite(mean.grad).all() and torch.isfinite(log_scale.grad).all()
