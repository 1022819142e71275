"""Buffered SVI: the generalized IWAE bound, buffer weights, SIR and the training objectives."""
import math

import pytest
import torch
from scipy.stats import chisquare

from gapkit.bounds import bsvi, iwae
from gapkit.inference.bsvi import (BufferWeights, buffer_trajectory, bsvi_prefix, mean_position, optimize_pi, sir_indices,
                         trajectory_log_weights)
from gapkit.estimators import log_weights
from gapkit.experiments.bsvi import linear_gaussian_check
from gapkit.models import VAE, LinearGaussian
from gapkit.objectives import BSVI, BSVIDS, BSVISIR, SVI, Losses, make_objective


def _lg(seed=0):
    g = torch.Generator().manual_seed(seed)
    model = LinearGaussian(x_dim=5, z_dim=2, noise_std=1.0, generator=g)
    _, x = model.sample(6, g)
    return model, x, g


# --- Theorem 1 against the exact log p(x) -----------------------------------------------------

def test_bsvi_bound_below_exact_log_px_uniform_and_optimized():
    r = linear_gaussian_check(steps=6, repeats=3000, n_points=4, seed=1)
    k = 6
    for name in ("svik", "bsvik", "bsvik_opt"):
        gap, se = torch.tensor(r["gap"][name]), torch.tensor(r["se"][name])
        assert (gap <= 3 * se).all(), (name, gap, se)    # below log p(x), within Monte Carlo error
    assert r["max_z"] < 3.5
    # The bound is informative: BSVI is far tighter than SVI-k here, and the test has power: the
    # same weights without the 1/(k+1) (a log-sum-exp, an over-estimate) lie clearly above log p(x).
    gap, se = r["gap"], r["se"]
    assert gap["bsvik"][k] > gap["svik"][k] + 1.0
    assert gap["bsvik"][k] + math.log(k + 1) > 5 * se["bsvik"][k]
    assert gap["bsvik_opt"][k] >= gap["bsvik"][k] - 3 * se["bsvik"][k]


def test_one_hot_last_weight_is_svi_k_and_uniform_iid_is_iwae():
    model, x, g = _lg()
    traj = buffer_trajectory(model, x, 5, lr=0.1, generator=g)
    lw = traj.log_w[:, 0]                                             # (k+1, B)
    one_hot = torch.zeros(6, dtype=lw.dtype)
    one_hot[-1] = 1
    assert torch.equal(bsvi(lw, pi=one_hot), lw[-1])
    assert BufferWeights(5, init="last")()[-1] > 0.999
    # independent, identical proposals: BSVI with uniform pi is the IWAE bound
    lw_iid = log_weights(model, x, 7, generator=g)
    assert torch.allclose(bsvi(lw_iid), iwae(lw_iid))
    assert torch.allclose(bsvi(lw_iid, pi=torch.full((7,), 1 / 7)), iwae(lw_iid))
    assert not torch.allclose(bsvi(lw), lw[-1])


def test_bsvi_rejects_bad_weights():
    lw = torch.randn(4, 3)
    with pytest.raises(ValueError, match="k\\+1 = 4"):
        bsvi(lw, pi=torch.full((3,), 1 / 3))
    with pytest.raises(ValueError, match="sum to 1"):
        bsvi(lw, pi=torch.full((4,), 0.3))
    with pytest.raises(ValueError, match="non-negative"):
        bsvi(lw, pi=torch.tensor([1.5, -0.5, 0.0, 0.0]))
    with pytest.raises(ValueError, match="steps"):
        BufferWeights(-1)


def test_prefix_and_optimized_weights():
    g = torch.Generator().manual_seed(0)
    lw = torch.randn(6, 500, generator=g, dtype=torch.float64) * 2 + torch.linspace(-3, 0, 6, dtype=torch.float64)[:, None]
    pre = bsvi_prefix(lw)
    for j in range(6):
        assert torch.allclose(pre[j], bsvi(lw[:j + 1]))
    pi = optimize_pi(lw)
    assert torch.isclose(pi.sum(), torch.tensor(1.0, dtype=pi.dtype)) and (pi >= 0).all()
    best = bsvi(lw, pi=pi).mean()
    assert best >= bsvi(lw).mean() - 1e-9 and best >= lw[-1].mean() - 1e-9
    for _ in range(5):   # no random point of the simplex does better (concave, global optimum)
        other = torch.distributions.Dirichlet(torch.ones(6, dtype=torch.float64)).sample()
        assert best >= bsvi(lw, pi=other).mean() - 1e-6
    assert mean_position(torch.full((5,), 0.2)) == pytest.approx(0.5)
    assert mean_position(torch.tensor([0.0, 0.0, 1.0])) == pytest.approx(1.0)


# --- SIR ---------------------------------------------------------------------------------------

def test_sir_resampling_frequencies_chi_squared():
    log_w = torch.tensor([-3.0, -1.0, -2.0, -0.5, -4.0], dtype=torch.float64)   # one fixed trajectory
    pi = torch.tensor([0.1, 0.3, 0.2, 0.3, 0.1], dtype=torch.float64)
    n = 20000
    g = torch.Generator().manual_seed(0)
    idx = sir_indices(log_w[:, None].expand(5, n), pi=pi, generator=g)  # (n,)
    assert idx.shape == (n,)
    counts = torch.bincount(idx, minlength=5).double()
    p = pi * log_w.exp()
    p = p / p.sum()
    assert chisquare(counts.numpy(), (n * p).numpy()).pvalue > 1e-3
    # power: ignoring pi (uniform weights) is rejected
    idx_u = sir_indices(log_w[:, None].expand(5, n), generator=g)
    assert chisquare(torch.bincount(idx_u, minlength=5).double().numpy(), (n * p).numpy()).pvalue < 1e-6


def test_bsvi_gradient_is_the_sir_expectation():
    """Lemma 1: grad_theta log sum_i pi_i w_i = sum_i r_i grad_theta log p(x, z_i), r_i ∝ pi_i w_i."""
    model, x, g = _lg()
    traj = buffer_trajectory(model, x, 4, lr=0.1, generator=g)
    pi = torch.tensor([0.1, 0.1, 0.2, 0.3, 0.3], dtype=torch.float64)
    theta = model.decoder_parameters()
    lw = trajectory_log_weights(model, x, traj.z, traj.mu, traj.std)      # (k+1, 1, B)
    assert torch.allclose(lw, traj.log_w)                                  # same weights, now with grad
    g_bsvi = torch.autograd.grad(bsvi(lw, pi=pi).sum(), theta)
    r = torch.softmax(traj.log_w + torch.log(pi)[:, None, None], 0)       # (k+1, 1, B)
    g_sir = torch.autograd.grad((r * model.log_joint(x, traj.z)).sum(), theta)
    for a, b in zip(g_bsvi, g_sir):
        assert torch.allclose(a, b, atol=1e-10)
    enc = model.encoder_parameters()
    assert all(not p_.requires_grad or a is None for p_, a in
               zip(enc, torch.autograd.grad(bsvi(lw).sum(), enc, allow_unused=True)))


# --- objectives --------------------------------------------------------------------------------

@pytest.mark.parametrize("name,kw", [("svi", {"steps": 3}), ("bsvi", {"steps": 3}), ("bsvi-ds", {"steps": 3}),
                                     ("bsvi-sir", {"steps": 3}), ("bsvi", {"steps": 3, "learn_pi": True}),
                                     ("bsvi-sir", {"steps": 3, "learn_pi": True})])
def test_objectives_losses(name, kw):
    torch.manual_seed(0)
    model = VAE(20, 3, (16,), likelihood="bernoulli")
    x = (torch.rand(8, 20) > 0.5).float()
    obj = make_objective(name, lr=0.1, **kw)
    gen = torch.Generator().manual_seed(3)
    losses = obj(model, x, gen)
    assert isinstance(losses, Losses) and losses.encoder is not None and losses.decoder is not None
    enc, dec = model.encoder_parameters(), model.decoder_parameters()
    # the decoder loss does not reach phi (stop-gradient trajectory); the encoder loss reaches phi
    assert all(gr is None for gr in torch.autograd.grad(losses.decoder, enc, allow_unused=True, retain_graph=True))
    assert all(gr is not None for gr in torch.autograd.grad(losses.decoder, dec, retain_graph=True))
    assert all(gr is not None for gr in torch.autograd.grad(losses.encoder, enc, retain_graph=True))
    assert set(obj.trace) >= {"svi0", "svik", "bsvik"} and len(obj.trace["svi0"]) == 1
    if kw.get("learn_pi"):
        assert losses.own is not None
        (ga,) = torch.autograd.grad(losses.own, list(obj.parameters()), retain_graph=True)
        assert ga.abs().sum() > 0 and "pi_position" in obj.trace
    else:
        assert list(obj.parameters()) == []
    # the encoder trains on the ELBO of the trajectory's own first sample z_0
    gen2 = torch.Generator().manual_seed(3)
    steps = kw["steps"]
    traj = buffer_trajectory(model, x, steps, lr=0.1, generator=gen2)
    assert torch.allclose(losses.encoder, -traj.log_w[0].mean(), atol=1e-5)
    assert obj.trace["svi0"][0] == pytest.approx(traj.log_w[0].mean().item(), abs=1e-5)


def test_objective_classes_and_errors():
    assert isinstance(make_objective("svi", steps=2), SVI)
    assert isinstance(make_objective("bsvi-ds", steps=2), BSVIDS)
    assert isinstance(make_objective("bsvi-sir", steps=2), BSVISIR)
    assert isinstance(make_objective("bsvi", steps=2), BSVI)
    with pytest.raises(ValueError, match="'svi', 'bsvi', 'bsvi-ds', 'bsvi-sir'"):
        make_objective("vsbi")
    with pytest.raises(ValueError, match="optimizer"):
        BSVI(2, optimizer="lbfgs")


def test_training_learns_pi_and_keeps_the_health_check():
    from gapkit.data import load
    from gapkit.train import train
    data = load("digits", "threshold", subset=256, test_subset=64)
    torch.manual_seed(0)
    model = VAE(data.dim, 4, (32,))
    obj = BSVISIR(steps=3, learn_pi=True, lr=0.1)
    before = [p.detach().clone() for p in model.decoder_parameters()]
    logits0 = obj.buffer.logits.detach().clone()
    train(model, data, obj, epochs=2, batch_size=32, lr=3e-3, progress=False, eval_every=0)
    assert len(obj.trace["bsvik"]) == 2 * 8
    assert not torch.equal(obj.buffer.logits.detach(), logits0)           # pi was trained
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, model.decoder_parameters()))
    # BSVI-k >= SVI-k on (nearly) every minibatch: uniform weights over a trajectory
    b, s = torch.tensor(obj.trace["bsvik"]), torch.tensor(obj.trace["svik"])
    assert (b >= s).float().mean() > 0.8


def test_experiment_runs_small(tmp_path):
    from gapkit import experiments
    r = experiments.run("bsvi", preset="quick", out=tmp_path, progress=False, methods=["VAE", "bsvi-sir"],
                        epochs=2, eval_steps=6, curve_steps=4, n_eval=40, lg_repeats=50, lg_steps=3,
                        pi_variants=False)
    assert r["steps"] == list(range(5))
    for key in ("svi0", "svik", "bsvik", "bsvik_opt"):
        assert len(r[key]) == 5
    assert [row["method"] for row in r.at("training_table.rows")] == ["VAE", "BSVI-3-SIR"]
    row = r.at("training_table.rows.1")
    assert set(row) >= {"log_likelihood", "elbo_star", "kl_star", "reconstruction_star"}
    assert row["elbo_star"] == pytest.approx(-(row["kl_star"] + row["reconstruction_star"]), abs=1e-3)
    assert r.at("estimator_table.iwae.K") == [6, 12, 18, 24, 30] and r.at("estimator_table.bsvi.steps") == 6
    assert r.at("estimator_table.rows.0.method") == "VAE" and len(r.at("estimator_table.rows.0.iwae")) == 5
    assert r.at("findings.training.sir_minus_svi") is None and r.at("paper.k") == 9
    assert "BSVI-3-SIR" in r["monitor"]
    with pytest.raises(ValueError, match="unknown setting or preset field 'bogus' for experiment 'bsvi'"):
        experiments.run("bsvi", preset="quick", out=tmp_path / "x", bogus=1)


def test_recording_the_trace_reads_nothing_to_the_host_per_step(monkeypatch):
    """The bound objectives, the refining ones (GDIR, SVI, BSVI, AIR), RWS, BiHM and learned-beta
    CIWAE read nothing to the host in a training step (no Tensor.item / __float__ / __bool__): their per-step values are recorded as device
    tensors (gapkit.objectives.base.StepTrace) and ``trace`` afterwards gives every step's value."""
    from gapkit.checks import values_checked_by_caller
    from gapkit.models.sbn import SBN
    torch.manual_seed(0)
    model = VAE(20, 3, (8,))
    x = (torch.rand(6, 20) < 0.5).float()
    reads = []
    for name, cfg in (("bsvi", {"steps": 2, "learn_pi": True}), ("svi", {"steps": 2}),
                      ("bsvi-sir", {"steps": 2}), ("ciwae-learned", {"K": 3}), ("gdir", {"steps": 2}),
                      ("elbo", {}), ("iwae", {"K": 4}), ("miwae", {"M": 2, "K": 2}), ("piwae", {"M": 2, "K": 2}),
                      ("air", {"steps": 2, "K": 3}), ("rws", {"K": 3}), ("bihm", {"K": 3})):
        obj = make_objective(name, **cfg)
        net = SBN(20, (5,)) if name in ("air", "rws", "bihm") else model
        with monkeypatch.context() as m:
            m.setattr(torch.Tensor, "item", lambda self: reads.append(name) or 0.0)
            m.setattr(torch.Tensor, "__float__", lambda self: reads.append(name) or 0.0)
            m.setattr(torch.Tensor, "__bool__", lambda self: reads.append(name) or True)
            with values_checked_by_caller():   # as gapkit.train runs every step
                for _ in range(3):
                    obj(net, x, torch.Generator().manual_seed(1))
        assert reads == [], f"{name} read {len(reads)} value(s) to the host per step"
        if hasattr(obj, "trace"):
            tr = obj.trace
            assert len(tr if isinstance(tr, list) else tr["bsvik" if "bsvi" in name else "svik"]) == 3
