"""Bounds against exact answers on the linear-Gaussian model (float64)."""
import torch

from gapkit.estimators import evaluate, log_weights
from gapkit.likelihoods import gaussian_kl
from gapkit.models import LinearGaussian


def model_and_data(seed=0, n=64):
    g = torch.Generator().manual_seed(seed)
    m = LinearGaussian(x_dim=5, z_dim=3, noise_std=0.7, generator=g)
    _, x = m.sample(n, g)
    return m, x, g


def test_elbo_with_exact_posterior_equals_log_px():
    # make the exact posterior diagonal (orthogonal columns of W) so that a diagonal q holds it
    g = torch.Generator().manual_seed(1)
    Q, _ = torch.linalg.qr(torch.randn(5, 3, generator=g, dtype=torch.float64))
    m = LinearGaussian(5, 3, 0.7, W=Q * torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64), generator=g)
    _, x = m.sample(64, g)
    mu, S = m.posterior(x)
    assert torch.allclose(S, torch.diag(S.diagonal()), atol=1e-12)
    std = S.diagonal().sqrt().expand_as(mu)
    lw = log_weights(m, x, K=16, q=(mu, std), generator=g)
    # log w is constant = log p(x) under the exact posterior: every sample gives it
    assert torch.allclose(lw, m.exact_log_px(x).expand_as(lw), atol=1e-4)
    elbo = evaluate(m, x, "elbo", K=4, q=(mu, std))
    assert (elbo - m.exact_log_px(x)).abs().max() < 1e-4


def test_elbo_is_lower_by_kl():
    m, x, g = model_and_data()
    mu_p, S = m.posterior(x)
    # a q near (not at) the posterior, so that log w has a small spread and the MC error is tiny
    mu_q = mu_p + 0.3 * torch.randn(len(x), 3, generator=g, dtype=torch.float64)
    std_q = S.diagonal().sqrt() * (0.7 + 0.6 * torch.rand(len(x), 3, generator=g, dtype=torch.float64))
    exact = m.exact_log_px(x) - gaussian_kl(mu_q, std_q, mu_p, S)
    lw = log_weights(m, x, K=20000, q=(mu_q, std_q), generator=g).detach()  # (K, B)
    est, se = lw.mean(0), lw.std(0) / 20000 ** 0.5
    # within 4.5 Monte Carlo standard errors for every one of the 64 points
    assert ((est - exact).abs() < 4.5 * se).all()
    assert torch.all(exact < m.exact_log_px(x))


def test_iwae_rises_toward_log_px():
    m, x, g = model_and_data(n=32)
    log_px = m.exact_log_px(x).detach()
    with torch.no_grad():
        m.v.fill_(0.0)  # a poor encoder: q = N(0, I)
    vals = []
    for K in (1, 10, 100, 1000):
        reps = torch.stack([evaluate(m, x, "iwae", K, generator=g) for _ in range(8)])
        vals.append(reps.mean().item())
    assert all(a <= b + 0.02 for a, b in zip(vals, vals[1:]))
    assert vals[-1] <= log_px.mean().item() + 0.02
    assert log_px.mean().item() - vals[-1] < log_px.mean().item() - vals[0]
    k1 = evaluate(m, x, "iwae", 1, seed=3)
    e1 = evaluate(m, x, "elbo", 1, seed=3)
    assert torch.allclose(k1, e1)


def test_evaluate_chunking_matches_one_pass():
    m, x, g = model_and_data(n=10)
    mu_p, S = m.posterior(x)
    q = (mu_p.detach(), 1.5 * S.diagonal().sqrt().detach().expand_as(mu_p))  # a good, wider proposal
    a = evaluate(m, x, "iwae", K=300, q=q, seed=5, max_rows=1 << 20)
    b = evaluate(m, x, "iwae", K=300, q=q, seed=5, max_rows=7, batch_size=3)  # 3 images x 2 samples a pass
    assert torch.allclose(a, evaluate(m, x, "iwae", K=300, q=q, seed=5, max_rows=1 << 20))  # deterministic
    exact = m.exact_log_px(x)
    assert (a - exact).abs().max() < 0.15 and (b - exact).abs().max() < 0.15
