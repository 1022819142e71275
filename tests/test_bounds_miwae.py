"""MIWAE and CIWAE bounds (chapter 4): special cases, ordering, bad input; the objectives."""
import math

import pytest
import torch

from gapkit.bounds import ciwae, elbo, iwae, miwae
from gapkit.models import LinearGaussian
from gapkit.objectives import CIWAE, MIWAE, PIWAE, LearnableCIWAE, make_objective


def _lw(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 3


def test_miwae_M1_is_iwae():
    lw = _lw(1, 7, 5)
    torch.testing.assert_close(miwae(lw), iwae(lw[0]))


def test_miwae_K1_is_elbo_over_M():
    lw = _lw(9, 1, 5)
    torch.testing.assert_close(miwae(lw), elbo(lw[:, 0]))


def test_miwae_is_mean_of_iwae_over_M_not_K():
    lw = _lw(3, 4, 2)
    expect = torch.stack([iwae(lw[m]) for m in range(3)]).mean(0)
    torch.testing.assert_close(miwae(lw), expect)
    assert not torch.allclose(miwae(lw), miwae(lw.transpose(0, 1)))  # M and K are not interchangeable


def test_miwae_needs_three_dims():
    with pytest.raises(ValueError, match="at least 3"):
        miwae(_lw(4, 5))


def test_ciwae_endpoints_and_between():
    lw = _lw(8, 6)
    torch.testing.assert_close(ciwae(lw, 1.0), elbo(lw))
    torch.testing.assert_close(ciwae(lw, 0.0), iwae(lw))
    mid = ciwae(lw, 0.3)
    torch.testing.assert_close(mid, 0.3 * elbo(lw) + 0.7 * iwae(lw))
    assert torch.all(elbo(lw) <= mid + 1e-12) and torch.all(mid <= iwae(lw) + 1e-12)


@pytest.mark.parametrize("beta", [-0.1, 1.5, math.nan, math.inf])
def test_ciwae_beta_outside_unit_interval_raises(beta):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ciwae(_lw(4, 3), beta)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        CIWAE(beta=beta)


def test_ciwae_tensor_beta_gets_gradient_elbo_minus_iwae():
    lw = _lw(5, 4)
    beta = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    ciwae(lw, beta).sum().backward()
    torch.testing.assert_close(beta.grad, (elbo(lw) - iwae(lw)).sum())
    assert beta.grad <= 0


def test_ciwae_on_exact_posterior_is_log_px():
    """With q = p(z|x) every weight equals p(x): every bound is exactly log p(x)."""
    g = torch.Generator().manual_seed(0)
    W = torch.linalg.qr(torch.randn(5, 2, generator=g, dtype=torch.float64))[0] * 2  # orthogonal columns
    m = LinearGaussian(5, 2, noise_std=0.7, W=W, generator=g)
    A, c, std = m.exact_encoder()
    with torch.no_grad():
        m.A.copy_(A), m.c.copy_(c), m.v.copy_(torch.log(std))
    x = m.sample(4, g)[1]
    from gapkit.estimators import log_weights
    lw = log_weights(m, x, 24, generator=g)
    exact = m.exact_log_px(x)
    torch.testing.assert_close(ciwae(lw, 0.5), exact)
    torch.testing.assert_close(miwae(lw.view(4, 6, -1)), exact)


def test_objectives_shapes_and_learnable_beta_stays_inside():
    g = torch.Generator().manual_seed(0)
    m = LinearGaussian(4, 2, generator=g)
    x = m.sample(6, g)[1]
    for obj in (MIWAE(2, 3), CIWAE(0.5, 6), PIWAE(2, 3)):
        losses = obj(m, x, g)
        assert losses.encoder.dim() == 0 and losses.decoder.dim() == 0
    p = PIWAE(2, 3)(m, x, torch.Generator().manual_seed(1))
    assert p.encoder is not p.decoder
    # K is the number of samples inside one bound everywhere (Rainforth et al. 2018's notation)
    assert PIWAE(2, 3).config() == {"name": "piwae", "M": 2, "K": 3, "decoder_K": 6}
    assert make_objective("miwae", M=2, K=3).config() == {"name": "miwae", "M": 2, "K": 3}
    lc = LearnableCIWAE(0.5, 6).double()
    opt = torch.optim.Adam(lc.parameters(), lr=0.5)
    for _ in range(50):
        loss = lc(m, x, g).own
        opt.zero_grad()
        loss.backward()
        opt.step()
    b = float(lc.beta.detach())
    assert 0.0 < b < 0.5  # d bound / d beta = ELBO - IWAE <= 0: beta only goes down
    with pytest.raises(ValueError):
        LearnableCIWAE(1.0)
