import pytest
import torch

from gapkit.estimators import log_weights
from gapkit.models import VAE, LinearGaussian, build_model


@pytest.mark.parametrize("lik", ["bernoulli", "logistic"])
def test_vae_shapes_and_sampling(lik):
    m = VAE(64, 3, (16,), likelihood=lik)
    x = torch.randint(0, 2 if lik == "bernoulli" else 256, (5, 64)).float()
    mu, std = m.encode(x)
    assert mu.shape == (5, 3) and (std > 0).all()
    z = torch.randn(7, 5, 3)
    assert m.log_lik(x, z).shape == (7, 5) and m.log_prior(z).shape == (7, 5)
    assert log_weights(m, x, 4).shape == (4, 5)
    z, xs = m.sample(6, torch.Generator().manual_seed(0))
    assert xs.shape == (6, 64)
    if lik == "bernoulli":
        assert set(torch.unique(xs).tolist()) <= {0.0, 1.0}
    else:
        assert xs.min() >= 0 and xs.max() <= 255 and torch.equal(xs, xs.round())


def test_bad_config_and_input():
    with pytest.raises(ValueError, match="positive"):
        VAE(64, 0)
    with pytest.raises(ValueError, match="valid"):
        VAE(64, 2, activation="gelu9")
    with pytest.raises(ValueError, match="valid"):
        VAE(64, 2, likelihood="poisson")
    m = VAE(64, 2, (8,))
    with pytest.raises(ValueError, match=r"\(B, 64\)"):
        m.check_x(torch.zeros(3, 10))
    with pytest.raises(TypeError):
        m.check_x(torch.zeros(3, 64, dtype=torch.long))
    with pytest.raises(ValueError, match="K"):
        log_weights(m, torch.zeros(2, 64), K=0)


def test_build_model_roundtrip():
    m = VAE(64, 3, (16, 8), "tanh")
    m2 = build_model(m.config)
    assert m2.config == m.config
    lg = LinearGaussian(4, 2)
    assert build_model(lg.config).config == lg.config


def test_linear_gaussian_exact_log_px_matches_numerical_integral():
    # 1-D latent: integrate p(x|z) p(z) over a fine grid
    g = torch.Generator().manual_seed(0)
    m = LinearGaussian(3, 1, 0.5, generator=g)
    _, x = m.sample(4, g)
    zs = torch.linspace(-10, 10, 20001, dtype=torch.float64).view(-1, 1, 1).expand(-1, 4, 1)
    lj = m.log_joint(x, zs)  # (G, B)
    dz = 20 / 20000
    num = torch.logsumexp(lj, 0) + torch.log(torch.tensor(dz, dtype=torch.float64))
    assert torch.allclose(num, m.exact_log_px(x), atol=1e-6)
