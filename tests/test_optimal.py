"""Optimal inference (gapkit.inference.optimal): per-data-point and the paper's amortized form."""
import pytest
import torch

from gapkit.inference import optimal
from gapkit.estimators import evaluate
from gapkit.models import VAE, LinearGaussian


def _orthogonal_lg(seed=0, D=6, Z=3):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(D, Z, generator=g, dtype=torch.float64))
    W = Q * torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)   # orthogonal columns -> diagonal posterior
    return LinearGaussian(D, Z, noise_std=0.7, W=W, generator=g), g


def test_per_point_recovers_exact_diagonal_posterior():
    model, g = _orthogonal_lg()
    _, x = model.sample(40, g)
    m, S = model.posterior(x)
    assert torch.allclose(S, torch.diag(torch.diagonal(S)), atol=1e-10)  # the family contains p(z|x)
    mu, std = optimal.per_point(model, x, steps=300, lr=5e-2, K=64, lr_decay=True)
    assert mu.shape == (40, 3) and std.shape == (40, 3)
    sd = torch.sqrt(torch.diagonal(S))
    assert ((mu - m) / sd).abs().max() < 0.06          # within 6% of a posterior std
    assert ((std / sd - 1).abs().max()) < 0.04
    # Its ELBO is then log p(x), up to Monte Carlo error.
    with torch.no_grad():
        gap = (model.exact_log_px(x) - evaluate(model, x, "elbo", 2000, q=(mu, std))).mean()
    assert abs(float(gap)) < 0.01


def test_per_point_leaves_model_untouched_and_improves_elbo():
    torch.manual_seed(0)
    model = VAE(12, 2, (16,))
    x = torch.bernoulli(torch.full((30, 12), 0.3), generator=torch.Generator().manual_seed(1))
    before = [p.detach().clone() for p in model.parameters()]
    req = [p.requires_grad for p in model.parameters()]
    q = optimal.per_point(model, x, steps=100, lr=5e-2, K=4)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert req == [p.requires_grad for p in model.parameters()]
    with torch.no_grad():
        e0 = evaluate(model, x, "elbo", 500).mean()
        e1 = evaluate(model, x, "elbo", 500, q=q).mean()
    assert e1 > e0 + 0.1


def test_optimal_encoder_trains_only_a_copy_of_the_encoder():
    torch.manual_seed(0)
    model = VAE(12, 2, (16,))
    x = torch.bernoulli(torch.full((50, 12), 0.3), generator=torch.Generator().manual_seed(1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = optimal.encoder(model, x, epochs=40, lr=1e-2, batch_size=25)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # original untouched
    for a, b in zip(model.decoder_parameters(), out.decoder_parameters()):
        assert torch.equal(a, b)                                                   # decoder fixed
    assert any(not torch.equal(a, b) for a, b in zip(model.encoder_parameters(), out.encoder_parameters()))
    with torch.no_grad():
        assert evaluate(out, x, "elbo", 500).mean() > evaluate(model, x, "elbo", 500).mean() + 0.1


@pytest.mark.parametrize("kw", [dict(steps=-1), dict(lr=0.0), dict(K=0), dict(bound="kl")])
def test_per_point_rejects_bad_input(kw):
    model, g = _orthogonal_lg()
    _, x = model.sample(4, g)
    with pytest.raises(ValueError):
        optimal.per_point(model, x, **kw)


@pytest.mark.parametrize("kw", [dict(epochs=-1), dict(lr=-1.0), dict(K=0)])
def test_optimal_encoder_rejects_bad_input(kw):
    model, g = _orthogonal_lg()
    _, x = model.sample(4, g)
    with pytest.raises(ValueError):
        optimal.encoder(model, x, **kw)
