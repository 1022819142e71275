"""Chapter 1 (notebooks/01_elbo_tightness): the ELBO, IWAE-K and optimal inference against exact answers."""
import math

import pytest
import torch

from gapkit import experiments
from gapkit.inference import optimal
from gapkit.estimators import evaluate
from gapkit.likelihoods import gaussian_kl
from gapkit.experiments.elbo_tightness import (best_diagonal, exact_posterior_elbo, iwae_spread,
                                               make_linear_gaussian)


@pytest.fixture(scope="module")
def lg():
    model = make_linear_gaussian(0)
    g = torch.Generator().manual_seed(1)
    _, x = model.sample(50, g)
    with torch.no_grad():
        return model, x, model.exact_log_px(x), best_diagonal(model, x)


def test_iwae_5000_within_005_nats_of_exact_log_px(lg):
    model, x, log_px, q = lg
    with torch.no_grad():
        est = evaluate(model, x, "iwae", 5000, q=q, seed=3)     # the under-dispersed best diagonal q
        elbo = evaluate(model, x, "elbo", 5000, q=q, seed=3)
    assert abs(float((est - log_px).mean())) < 0.05
    assert float((log_px - elbo).mean()) > 0.3                 # the ELBO itself is not that close


def test_iwae_non_decreasing_in_K_beyond_mc_error(lg):
    model, x, log_px, q = lg
    Ks, R = (1, 4, 16, 64, 256, 1024), 20
    with torch.no_grad():
        est = [iwae_spread(model, x, K, R, q=q, seed=K) for K in Ks]   # each (R, N)
    means = [float(e.mean()) for e in est]
    se = [float(e.mean(1).std() / math.sqrt(R)) for e in est]       # standard error of each dataset mean
    for i in range(len(Ks) - 1):
        assert means[i + 1] > means[i] - 3 * math.hypot(se[i], se[i + 1]), (Ks[i], means)
    assert means[1] > means[0] + 3 * math.hypot(se[0], se[1])      # and it does increase
    assert means[-1] <= float(log_px.mean()) + 3 * se[-1]           # while staying below log p(x)


def test_elbo_identity_and_exact_posterior(lg):
    model, x, log_px, q = lg
    m, S = model.posterior(x)
    with torch.no_grad():
        q2 = (q[0] + 0.3, q[1] * 1.5)                                # some other diagonal q
        for qq in (q, q2):
            e = evaluate(model, x, "elbo", 4000, q=qq, seed=0)
            kl = gaussian_kl(qq[0], qq[1], m, S)
            assert abs(float((e - (log_px - kl)).mean())) < 0.02
        assert torch.allclose(exact_posterior_elbo(model, x, 3), log_px, atol=1e-8)


def test_gaussian_kl_matches_torch():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(3, 3, generator=g, dtype=torch.float64)
    S = A @ A.T + 0.5 * torch.eye(3, dtype=torch.float64)
    mq, mp = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    vq = torch.rand(5, 3, generator=g, dtype=torch.float64) + 0.1
    ref = torch.distributions.kl_divergence(torch.distributions.MultivariateNormal(mq, torch.diag_embed(vq)),
                                            torch.distributions.MultivariateNormal(mp, S))
    assert torch.allclose(gaussian_kl(mq, vq.sqrt(), mp, S), ref)
    std_normal = torch.distributions.kl_divergence(torch.distributions.Normal(mq, vq.sqrt()),
                                                   torch.distributions.Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(gaussian_kl(mq, vq.sqrt()), std_normal)


def test_per_point_finds_the_best_diagonal_gaussian(lg):
    model, x, log_px, q = lg
    mu, std = optimal.per_point(model, x, steps=300, lr=5e-2, K=64, lr_decay=True, seed=1)
    m, S = model.posterior(x)
    with torch.no_grad():
        excess = gaussian_kl(mu, std, m, S) - gaussian_kl(q[0], q[1], m, S)   # >= 0, exact
    assert excess.min() > -1e-9 and excess.mean() < 0.01 and excess.max() < 0.1
    assert ((mu - q[0]) / q[1]).abs().mean() < 0.08     # on average (Monte Carlo noise of the last steps)
    assert (std / q[1] - 1).abs().mean() < 0.03


def test_make_linear_gaussian_is_correlated_and_checks_input():
    model = make_linear_gaussian(0)
    _, S = model.posterior(torch.zeros(1, model.x_dim, dtype=torch.float64))
    assert S[0, 1] / torch.sqrt(S[0, 0] * S[1, 1]) < -0.5
    with pytest.raises(ValueError):
        make_linear_gaussian(0, column_corr=1.0)


def test_quick_preset_end_to_end(tmp_path):
    small = dict(lg_test=10, lg_repeats=3, lg_K=[1, 10, 100, 5000], opt_epochs=3,
                 pp={"steps": 5, "lr": 5e-2, "K": 1, "lr_decay": True}, budget_images=20, budget_factors=[1, 3],
                 widget_repeats=4, widget_K=[1, 10], best_K=100)
    r = experiments.run("elbo-tightness", preset="quick", out=tmp_path, progress=False, **small)
    lgr, mn = r["linear_gaussian"], r["mnist"]
    e = r.at("linear_gaussian.elbo")
    assert math.isfinite(lgr["log_px"]) and all(math.isfinite(e[q]) for q in ("amortized", "best_diagonal", "exact_posterior"))
    assert e["amortized"] <= e["best_diagonal"] <= e["exact_posterior"] + 1e-6
    assert abs(e["exact_posterior"] - lgr["log_px"]) < 1e-6
    assert r.at("linear_gaussian.iwae.K") == [1, 10, 100, 5000] and len(r.at("linear_gaussian.iwae.std")) == 4
    n = len(mn["epochs"])
    assert n >= 2 and mn["epochs"] == sorted(mn["epochs"])
    assert r.at("mnist.iwae.K") == 10 and r.at("mnist.elbo.K") == 10
    for b in ("elbo", "iwae"):
        for q in ("amortized", "optimal", "optimal_per_point"):
            v = r.at(f"mnist.{b}.bpd.{q}")
            assert len(v) == n and all(0 < x < 1.5 for x in v)
    # IWAE-10 and the ELBO share their samples, so IWAE-10 is the better bound (lower BPD) at every epoch.
    for q in ("amortized", "optimal"):
        assert all(i <= e for i, e in zip(r.at(f"mnist.iwae.bpd.{q}"), r.at(f"mnist.elbo.bpd.{q}")))
    assert r.at("findings.tight_under_optimal.verdict") in ("reproduced", "partly", "not reproduced")
    # The budget study: 2 factors x (per point with and without decay, paper's form), on 20 images.
    b = r.at("mnist.budgets")
    assert b["n_images"] == 20 and b["factors"] == [1, 3] and len(b["rows"]) == 6
    assert sorted(row["steps"] for row in b["rows"] if row["form"] == "per_point") == [5, 5, 15, 15]
    assert sorted(row["epochs"] for row in b["rows"] if row["form"] == "paper") == [3, 9]
    assert all(row["gap"] == pytest.approx(row["elbo"] - row["iwae"]) and row["gap"] >= 0 for row in b["rows"])
    best = r.at("findings.optimal_budgets.best")
    assert best["gap"] == min(row["gap"] for row in b["rows"])
    assert r.at("findings.tight_under_optimal.ratio_best") == pytest.approx(best["gap"] / b["amortized"]["gap"])
    assert r.at("metrics.mnist.iwae.bpd.amortized") == r.at("mnist.iwae.bpd.amortized")[-1]
    with pytest.raises(KeyError, match="valid keys there: K, bpd"):
        r.at("mnist.iwae.nats")
    assert mn["dataset"]["name"] == "digits"
    w = mn["widget"]
    assert len(w["iwae"]["amortized"]) == 2 and len(w["iwae"]["amortized"][0][0]) == 4
    assert (tmp_path / "results.json").exists()


def _budgets(gaps, amortized=0.01):
    rows = [{"form": form, "factor": f, "lr_decay": decay, "gap": g}
            for (form, decay), gs in gaps.items() for f, g in zip((1, 2, 4), gs)]
    return {"amortized": {"gap": amortized}, "rows": rows}


def test_budget_findings_trend_and_best():
    from gapkit.experiments.elbo_tightness import budget_findings
    f = budget_findings(_budgets({("per_point", True): [0.004, 0.003, 0.002], ("per_point", False): [0.005, 0.006, 0.005],
                                  ("paper", False): [0.004, 0.004, 0.0039]}))
    s = f["series"]
    assert s["per_point_decay"]["closing"] and s["per_point_decay"]["change"] == pytest.approx(-0.5)
    assert not s["per_point_constant"]["closing"] and s["per_point_constant"]["change"] == pytest.approx(0.0)
    assert not s["paper"]["closing"]                       # 0.004 -> 0.004 does not fall
    assert s["per_point_decay"]["ratio"] == pytest.approx([0.4, 0.3, 0.2])
    assert f["best"] == {"form": "per_point", "factor": 4, "lr_decay": True, "gap": 0.002, "ratio": pytest.approx(0.2)}


def test_tight_under_optimal_is_decided_by_the_best_budget():
    from gapkit.experiments.elbo_tightness import findings
    iw = {"K": [10, 100], "mean": [-1.0, -0.9], "std": [0.1, 0.1], "bias": [-0.1, -0.01], "repeats": 2}
    res = {"linear_gaussian": {"iwae": iw, "model": {"n_test": 3}},
           "mnist": {"elbo": {"bpd": {"amortized": [0.20, 0.19], "optimal": [0.185, 0.184], "optimal_per_point": [0.183, 0.182]}},
                     "iwae": {"bpd": {"amortized": [0.19, 0.18], "optimal": [0.18, 0.18], "optimal_per_point": [0.18, 0.18]}}}}
    gaps = {("per_point", True): [0.004, 0.003, 0.002], ("per_point", False): [0.005, 0.005, 0.005],
            ("paper", False): [0.005, 0.005, 0.005]}
    res["mnist"]["budgets"] = _budgets(gaps, amortized=0.01)          # best ratio 0.2 < 0.25
    t = findings(res)["tight_under_optimal"]
    assert t["verdict"] == "reproduced" and t["ratio_best"] == pytest.approx(0.2) and t["ratio"] == pytest.approx(0.4)
    res["mnist"]["budgets"] = _budgets(gaps, amortized=0.006)         # best ratio 1/3
    assert findings(res)["tight_under_optimal"]["verdict"] == "partly"
    res["mnist"]["iwae"]["bpd"]["optimal"] = [0.17, 0.18]              # wider than amortized at the first checkpoint
    assert findings(res)["tight_under_optimal"]["verdict"] == "not reproduced"
