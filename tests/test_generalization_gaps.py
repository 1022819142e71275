"""Chapter 2: checkpoint sweeps, the inference gap against the exact answer, and the experiment."""
import math

import pytest
import torch

from gapkit import experiments
from gapkit.io import save_checkpoint
from gapkit.likelihoods import gaussian_kl
from gapkit.models import VAE, LinearGaussian
from gapkit.analysis.sweep import evaluate_with
from gapkit.analysis.sweep import inference_gap
from gapkit.analysis.sweep import sweep


def _lg_model(seed=0, x_dim=6, z_dim=2):
    """A linear-Gaussian model whose W has orthogonal columns, so p(z|x) is a diagonal Gaussian,
    and an encoder that is off the exact posterior (shifted mean map, too wide a std)."""
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(x_dim, z_dim, generator=g, dtype=torch.float64))
    W = Q * torch.tensor([1.5, 0.8], dtype=torch.float64)            # orthogonal columns
    m = LinearGaussian(x_dim, z_dim, noise_std=0.7, W=W, generator=g)
    A, c, std = m.exact_encoder()
    with torch.no_grad():
        m.A.copy_(A + 0.3 * torch.randn(A.shape, generator=g, dtype=torch.float64))
        m.c.copy_(c + 0.2)
        m.v.copy_(torch.log(std) + torch.tensor([0.4, -0.3], dtype=torch.float64))
    return m


def _analytic_kl(model, x):
    """KL(q_phi(z|x) || p(z|x)) per row, both Gaussians in closed form: (N,)."""
    return gaussian_kl(*model.encode(x), *model.posterior(x))


@torch.no_grad()
def _data(model, n=64, seed=1):
    return model.sample(n, torch.Generator().manual_seed(seed))[1]


def test_inference_gap_equals_analytic_kl_on_linear_gaussian():
    model = _lg_model()
    x = _data(model, n=48)
    kl = _analytic_kl(model, x).detach()
    assert kl.mean() > 0.3                                          # the encoder is clearly off
    gap = inference_gap(model, x, "elbo", K=4000, inference="optimal",
                        inference_kw={"steps": 400, "lr": 3e-2, "K": 32}).detach()
    # Mean over the data: within Monte Carlo error (and the optimizer's last ~1% of KL).
    assert abs(gap.mean() - kl.mean()) < 0.02 * kl.mean() + 0.005, (gap.mean().item(), kl.mean().item())
    # Point by point too.
    assert ((gap - kl).abs() <= 0.05 + 0.03 * kl).all(), (gap - kl).abs().max()


def test_sweep_gap_equals_analytic_kl_and_caches(tmp_path):
    """The gap as the experiment computes it: two sweeps over saved checkpoints, amortized minus optimal."""
    models = [_lg_model(seed=s) for s in (0, 3)]
    # Same decoder in both checkpoints, different encoders.
    with torch.no_grad():
        for p, q in zip(models[1].decoder_parameters(), models[0].decoder_parameters()):
            p.copy_(q)
    cks = [(e, save_checkpoint(tmp_path / "checkpoints" / f"epoch_{e:04d}.pt", m)) for e, m in zip((10, 20), models)]
    x = _data(models[0], n=48)
    kw = {"steps": 400, "lr": 3e-2, "K": 32}
    amort = sweep(cks, x, "elbo", 4000, "amortized", progress=False)
    opt = sweep(cks, x, "elbo", 4000, "optimal", kw, progress=False)
    for m, a, o in zip(models, amort, opt):
        kl = _analytic_kl(m, x).mean().item()
        gap_nats = o["nats"] - a["nats"]
        assert abs(gap_nats - kl) < 0.02 * kl + 0.005, (gap_nats, kl)
        assert a["bpd"] - o["bpd"] == pytest.approx(gap_nats / (x.shape[1] * math.log(2)), rel=1e-9)
        assert not a["cached"] and not o["cached"] and a["epoch"] in (10, 20)
        # The optimal bound is log p(x) here (the posterior is in the q family).
        assert o["nats"] == pytest.approx(m.exact_log_px(x).mean().item(), abs=0.01)
    # Run again: everything comes from the cache, with the same numbers.
    again = sweep(cks, x, "elbo", 4000, "optimal", kw, progress=False)
    assert all(r["cached"] for r in again)
    assert [r["nats"] for r in again] == [r["nats"] for r in opt]
    # A changed checkpoint, other data or another setting is computed afresh.
    save_checkpoint(cks[1][1], models[0])
    changed = sweep(cks, x, "elbo", 4000, "amortized", progress=False)
    assert [r["cached"] for r in changed] == [True, False]
    assert changed[1]["nats"] == pytest.approx(amort[0]["nats"])
    assert not any(r["cached"] for r in sweep(cks, x[:10], "elbo", 4000, "amortized", progress=False))
    assert not any(r["cached"] for r in sweep(cks, x, "iwae", 100, "amortized", progress=False))


def test_optimal_encoder_method_and_bad_input(tmp_path):
    torch.manual_seed(0)
    model = VAE(16, 2, (8,), "relu", "bernoulli")
    x = torch.bernoulli(torch.full((40, 16), 0.3), generator=torch.Generator().manual_seed(0))
    amort = evaluate_with(model, x, "elbo", 20, "amortized").mean()
    enc = evaluate_with(model, x, "elbo", 20, "optimal-encoder", {"epochs": 30, "lr": 1e-2, "batch_size": 20}).mean()
    assert enc > amort                       # training the encoder on x itself improves x's bound
    with pytest.raises(ValueError, match="optimal-encoder"):
        evaluate_with(model, x, "elbo", 1, "best")
    with pytest.raises(ValueError, match="valid"):
        evaluate_with(model, x, "elbo", 1, "optimal", {"epochs": 3})
    with pytest.raises(ValueError, match="iwae"):
        sweep([tmp_path / "epoch_0001.pt"], x, "bogus")
    with pytest.raises(ValueError, match="no checkpoints"):
        sweep([], x)
    with pytest.raises(FileNotFoundError):
        sweep([tmp_path / "epoch_0001.pt"], x, progress=False)


def test_quick_preset_end_to_end(tmp_path):
    res = experiments.run("generalization-gaps", preset="quick", out=tmp_path, progress=False)
    assert set(res["datasets"]) == {"binary", "grey"}
    assert res["datasets"]["grey"]["dataset"]["likelihood"] == "logistic"
    for key, d in res["datasets"].items():
        n = len(d["epochs"])
        assert n >= 2 and d["epochs"] == sorted(d["epochs"])
        for f in ("bpd.train.amortized", "bpd.test.amortized", "bpd.test.optimal", "gap.inference.bpd"):
            assert len(d.at(f)) == n and all(math.isfinite(v) for v in d.at(f)), (key, f)
        for a, o, g in zip(d.at("bpd.test.amortized"), d.at("bpd.test.optimal"), d.at("gap.inference.bpd")):
            assert g == pytest.approx(a - o)
        assert d.at("bpd.test.amortized")[-1] < d.at("bpd.test.amortized")[0] + 0.5   # it learned something sane
        assert 0 < d.at("bpd.train.amortized")[-1] < (1.0 if key == "binary" else 8.0)
    assert res.at("paper.test_bpd_amortized.binary") == 0.200 and res.at("book_summary.unit") == "BPD"
    # Cached: a second run reads results.json; the per-checkpoint sweep files are reused too.
    again = experiments.run("generalization-gaps", preset="quick", out=tmp_path, progress=False)
    assert again["provenance"] == res["provenance"]
    assert list((tmp_path / "binary" / "checkpoints" / "sweep").glob("*.json"))


@pytest.mark.mnist
def test_grey_mnist_logistic_vae_bound_is_sane():
    from gapkit.data import load
    d = load("mnist", "grey", subset=50, test_subset=50)
    torch.manual_seed(0)
    m = VAE(784, 4, (32,), "relu", d.likelihood)
    nats = evaluate_with(m, d.test, "elbo", 2, "amortized")
    assert torch.isfinite(nats).all() and (nats < 0).all()
    opt = evaluate_with(m, d.test, "elbo", 2, "optimal", {"steps": 20, "lr": 5e-2})
    assert opt.mean() > nats.mean()
