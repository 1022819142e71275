import math

import pytest
import torch

from gapkit import bounds


def test_iwae_k1_is_elbo_and_shapes():
    lw = torch.randn(1, 7)
    assert torch.allclose(bounds.iwae(lw), bounds.elbo(lw))
    lw = torch.randn(5, 7)
    assert bounds.elbo(lw).shape == (7,) and bounds.iwae(lw).shape == (7,)
    assert torch.all(bounds.iwae(lw) >= bounds.elbo(lw))  # Jensen, per sample set


def test_log_mean_exp_matches_direct():
    x = torch.randn(10, 3, dtype=torch.float64)
    assert torch.allclose(bounds.log_mean_exp(x), torch.log(torch.exp(x).mean(0)))


@pytest.mark.parametrize("K", [1, 100, 10_000])
def test_stable_for_large_K_and_magnitude(K):
    lw = -1e4 + torch.randn(K, 4) * 50
    for f in (bounds.elbo, bounds.iwae):
        out = f(lw)
        assert torch.isfinite(out).all()
    assert torch.isfinite(bounds.iwae(torch.full((K, 2), 1e4))).all()
    assert torch.allclose(bounds.iwae(torch.full((K, 2), 1e4)), torch.full((2,), 1e4))


def test_bpd():
    assert bounds.bpd(-86.0, 784) == pytest.approx(86 / (784 * math.log(2)))
    assert bounds.bpd(-86.0, 784) == pytest.approx(0.158, abs=1e-3)


def test_bad_log_w():
    with pytest.raises(ValueError, match="sample dimension"):
        bounds.iwae(torch.randn(5))
    with pytest.raises(TypeError):
        bounds.elbo(torch.ones(3, 2, dtype=torch.long))
