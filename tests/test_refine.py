"""Iterative refinement (chapter 5) against exact answers on the linear-Gaussian model."""
import math

import pytest
import torch

from gapkit.bounds import ess
from gapkit.models import VAE, LinearGaussian
from gapkit.objectives import GDIR
from gapkit.inference.refine import refine


def diagonal_model(seed=0, n=8):
    """Linear-Gaussian model whose posterior covariance is diagonal (W has orthogonal columns)."""
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(6, 3, generator=g, dtype=torch.float64))
    m = LinearGaussian(6, 3, 0.5, W=Q * torch.tensor([1.5, 1.0, 0.5], dtype=torch.float64), generator=g)
    _, x = m.sample(n, g)
    mu, S = m.posterior(x)
    assert torch.allclose(S, torch.diag(S.diagonal()), atol=1e-12)
    return m, x, mu.detach(), S.diagonal().sqrt().detach()


@pytest.mark.parametrize("optimizer,lr", [("sgd", 0.03), ("momentum", 0.02), ("adam", 0.05)])
def test_refinement_converges_to_exact_posterior_from_any_start(optimizer, lr):
    m, x, post_mu, post_std = diagonal_model()
    B, Z = post_mu.shape
    g = torch.Generator().manual_seed(3)
    starts = [None,                                                             # the (untrained) encoder
              (torch.zeros(B, Z, dtype=torch.float64), torch.ones(B, Z, dtype=torch.float64)),  # prior
              (5 * torch.randn(B, Z, generator=g, dtype=torch.float64),
               torch.full((B, Z), 4.0, dtype=torch.float64))]                  # far away, too wide
    for init in starts:
        t = refine(m, x, steps=350, init=init, optimizer=optimizer, lr=lr, samples=64, clip=None, seed=1)
        # then smaller steps from where it got to, and the average of the last iterates (MC jitter)
        t2 = refine(m, x, steps=150, init=t.final, optimizer=optimizer, lr=lr / 10, samples=64, clip=None)
        mu = t2.mu[-100:].mean(0)
        std = t2.std[-100:].mean(0)
        assert (mu - post_mu).abs().max() < 0.03, (optimizer, init is None)
        assert (std / post_std - 1).abs().max() < 0.05, (optimizer, init is None)
        # the start is far from the answer, so convergence is not trivial
        assert (t.mu[0] - post_mu).abs().max() > 0.2


def test_refined_elbo_reaches_log_px_within_mc_error():
    m, x, _, _ = diagonal_model(n=16)
    t = refine(m, x, steps=400, optimizer="sgd", lr=0.03, samples=64, clip=None, seed=2)
    log_px = m.exact_log_px(x).detach()
    lw = t.log_w[-50:]                                                           # (50, S, B)
    est = lw.mean((0, 1))
    se = lw.std((0, 1)) / math.sqrt(lw.shape[0] * lw.shape[1])
    gap0 = (log_px - t.elbo[0]).mean()
    assert gap0 > 1.0                                                            # the encoder starts far off
    assert ((est - log_px).abs() < 4 * se + 2e-3).all(), (est - log_px)
    assert (t.elbo[-20:].mean(0) <= log_px + 1e-2).all()


def test_refinement_never_changes_the_model_and_log_w_match_recomputation():
    torch.manual_seed(0)
    m = VAE(12, 3, (16,), "tanh")
    x = torch.bernoulli(torch.full((10, 12), 0.4), generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    t = refine(m, x, steps=7, optimizer="adam", lr=0.1, samples=3)
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in m.parameters())
    assert t.mu.shape == (8, 10, 3) and t.z.shape == (8, 3, 10, 3) and t.log_w.shape == (8, 3, 10)
    assert t.grad_norm.shape == (7, 10)
    assert not any(v.requires_grad for v in (t.mu, t.std, t.z, t.log_w, t.elbo))
    with torch.no_grad():
        for i in range(8):
            direct = m.log_joint(x, t.z[i]) - m.log_q(t.z[i], t.mu[i], t.std[i])
            assert torch.allclose(direct, t.log_w[i], atol=1e-5), i
    assert torch.allclose(t.elbo, t.log_w.mean(1))
    # the parameters actually moved, and the start is the encoder's output
    mu0, std0 = m.encode(x)
    assert torch.allclose(t.mu[0], mu0) and torch.allclose(t.std[0], std0)
    assert (t.mu[-1] - t.mu[0]).abs().max() > 0.05
    # same seed, same trajectory; keep_samples=False drops z only
    t2 = refine(m, x, steps=7, optimizer="adam", lr=0.1, samples=3, keep_samples=False)
    assert t2.z is None and torch.equal(t2.log_w, t.log_w)


def _reference_sgd(model, x, steps, lr, clip, samples, seed):
    """Per-point loop: each point's own ELBO, its own gradient, its own clipping (same noise)."""
    with torch.no_grad():
        mu, std = model.encode(x)
    mu, ls = mu.clone(), torch.log(std).clone()
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        eps = torch.randn((samples, *mu.shape), generator=g, dtype=mu.dtype)
        for b in range(len(x)):
            m_b = mu[b].clone().requires_grad_(True)
            l_b = ls[b].clone().requires_grad_(True)
            z = m_b + torch.exp(l_b) * eps[:, b]                                # (S, Z)
            lw = model.log_joint(x[b:b + 1], z[:, None])[:, 0] - model.log_q(z, m_b, torch.exp(l_b))
            gm, gl = torch.autograd.grad(lw.mean(), (m_b, l_b))
            gvec = torch.cat([gm, gl])
            gvec = gvec * min(1.0, clip / gvec.norm().item())
            mu[b] += lr[b] * gvec[:mu.shape[1]]
            ls[b] += lr[b] * gvec[mu.shape[1]:]
    return mu, torch.exp(ls)


def test_batched_refinement_matches_per_point_loop_and_does_not_shrink_with_batch():
    torch.manual_seed(1)
    m = VAE(12, 3, (16,), "tanh")
    x = torch.bernoulli(torch.full((9, 12), 0.5), generator=torch.Generator().manual_seed(1))
    lr = torch.linspace(0.05, 0.5, 9)                                           # per-point step sizes
    t = refine(m, x, steps=5, optimizer="sgd", lr=lr, clip=0.7, samples=2, seed=4)
    mu, std = _reference_sgd(m, x, 5, lr, 0.7, 2, 4)
    assert torch.allclose(t.mu[-1], mu, atol=1e-5) and torch.allclose(t.std[-1], std, atol=1e-5)
    # clipping per point: no SGD step is longer than lr * clip in (mu, log std)
    step = torch.cat([t.mu[1:] - t.mu[:-1], torch.log(t.std[1:]) - torch.log(t.std[:-1])], -1).norm(dim=-1)
    assert (step <= lr * 0.7 + 1e-5).all()
    assert (t.grad_norm > 0.7).any()                                              # clipping was active


def test_refine_rejects_bad_input():
    m, x, _, _ = diagonal_model()
    with pytest.raises(ValueError, match="sgd"):
        refine(m, x, optimizer="lbfgs")
    with pytest.raises(ValueError, match="shape"):
        refine(m, x, lr=torch.ones(3))
    with pytest.raises(ValueError, match=r"lr must be a finite number in \(0.0, inf\), got -1.0"):
        refine(m, x, lr=-1.0)
    with pytest.raises(ValueError, match="> 0 and finite for every data point"):
        refine(m, x, lr=torch.full((len(x),), -1.0))
    with pytest.raises(ValueError, match="steps"):
        refine(m, x, steps=-1)
    with pytest.raises(ValueError, match="samples"):
        refine(m, x, samples=0)
    with pytest.raises(ValueError, match="clip"):
        refine(m, x, clip=0.0)


def test_ess():
    assert torch.allclose(ess(torch.zeros(10, 3)), torch.ones(3))
    lw = torch.tensor([[0.0], [-1e4], [-1e4], [-1e4]])                        # one weight dominates
    assert torch.allclose(ess(lw), torch.tensor([0.25]))
    g = torch.Generator().manual_seed(0)
    lw = torch.randn(50, 4, generator=g, dtype=torch.float64)
    w = lw.exp()
    naive = w.sum(0) ** 2 / (50 * (w ** 2).sum(0))
    assert torch.allclose(ess(lw), naive)
    assert torch.allclose(ess(lw + 3000.0), naive)                             # scale-free, no overflow
    with pytest.raises(ValueError):
        ess(torch.tensor(1.0))


def test_gdir_objective_trains_decoder_on_refined_q_and_encoder_on_its_own_elbo():
    torch.manual_seed(2)
    m = VAE(12, 3, (16,), "tanh")
    x = torch.bernoulli(torch.full((20, 12), 0.3), generator=torch.Generator().manual_seed(2))
    obj = GDIR(steps=5, lr=0.1, K=100)
    losses = obj(m, x, torch.Generator().manual_seed(0))
    assert losses.encoder is not losses.decoder
    assert losses.metrics["refined_bound"] > losses.metrics["bound"]           # refinement helped
    enc, dec = m.encoder_parameters(), m.decoder_parameters()
    # the decoder loss reaches no encoder parameter (stop-gradient through the refinement)
    gd = torch.autograd.grad(losses.decoder, enc + dec, allow_unused=True, retain_graph=True)
    assert all(gi is None or gi.abs().max() == 0 for gi in gd[:len(enc)])
    assert any(gi is not None and gi.abs().max() > 0 for gi in gd[len(enc):])
    ge = torch.autograd.grad(losses.encoder, enc, allow_unused=True)
    assert any(gi is not None and gi.abs().max() > 0 for gi in ge)
    with pytest.raises(ValueError):
        GDIR(steps=-1)
