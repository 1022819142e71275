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


def test_per_point_settings_run_the_same_optimization_and_check_their_values():
    model, g = _orthogonal_lg()
    _, x = model.sample(10, g)
    pp = optimal.PerPoint(steps=20, lr=5e-2, K=4, lr_decay=True)
    a = pp(model, x, seed=3)
    b = optimal.per_point(model, x, steps=20, lr=5e-2, K=4, lr_decay=True, seed=3)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    c = pp.scaled(2, lr_decay=False)
    assert (c.steps, c.lr, c.K, c.lr_decay) == (40, 5e-2, 4, False) and pp.scaled(3).lr_decay
    assert optimal.PerPoint(**pp.as_dict()) == pp
    for bad in (dict(steps=-1, lr=1e-2), dict(steps=5, lr=0.0), dict(steps=5, lr=1e-2, K=0),
                dict(steps=5, lr=1e-2, lr_decay="yes")):
        with pytest.raises(ValueError):
            optimal.PerPoint(**bad)
    with pytest.raises(ValueError, match="valid"):
        optimal.tuned("huge")
    # One tuned setting per preset, with decay, shared by chapters 1 and 2.
    from gapkit.experiments import elbo_tightness, generalization_gaps
    for preset, t in optimal.TUNED.items():
        assert t.lr_decay and optimal.tuned(preset) is t
        assert elbo_tightness.SETTINGS[preset]["pp"] == t.as_dict() == generalization_gaps.SETTINGS[preset]["optimal"]


def test_sweep_passes_lr_decay_to_per_point():
    from gapkit.analysis.sweep import evaluate_with
    model, g = _orthogonal_lg()
    _, x = model.sample(10, g)
    kw = {"steps": 30, "lr": 1e-1, "K": 2}
    a = evaluate_with(model, x, "elbo", 3, "optimal", {**kw, "lr_decay": True}, seed=0)
    b = evaluate_with(model, x, "elbo", 3, "optimal", {**kw, "lr_decay": False}, seed=0)
    mu, std = optimal.per_point(model, x, lr_decay=True, seed=1, **kw)
    assert torch.equal(a, evaluate(model, x, "elbo", 3, q=(mu, std), seed=0)) and not torch.equal(a, b)


def test_a_long_run_passes_through_every_shorter_budget():
    """Constant learning rate: the iterate after t steps (epochs) of a long run is a run of length t."""
    model, g = _orthogonal_lg()
    _, x = model.sample(12, g)
    seen = {}
    optimal.per_point(model, x, steps=12, lr=5e-2, K=2, seed=4, on_step=lambda t, mu, std: seen.update({t: (mu, std)}))
    assert sorted(seen) == list(range(1, 13))
    for t in (3, 12):
        short = optimal.per_point(model, x, steps=t, lr=5e-2, K=2, seed=4)
        assert all(torch.equal(a, b) for a, b in zip(seen[t], short))
    vae = VAE(6, 2, (8,), "relu", "bernoulli")
    xb = (torch.rand(30, 6, generator=g) > 0.5).float()
    enc = {}
    optimal.encoder(vae, xb, epochs=4, lr=1e-2, batch_size=10, seed=2,
                    on_epoch=lambda e, m: enc.update({e: [p.clone() for p in m.encoder_parameters()]}))
    short = optimal.encoder(vae, xb, epochs=2, lr=1e-2, batch_size=10, seed=2)
    assert sorted(enc) == [1, 2, 3, 4] and all(torch.equal(a, b) for a, b in zip(enc[2], short.encoder_parameters()))
