"""The batched SNR estimator (chapter 4) against a plain loop of backward passes, and its trends."""
import copy
import functools
import math

import pytest
import torch

from gapkit.analysis import snr as S
from gapkit.bounds import ciwae, iwae, miwae
from gapkit.models import VAE, LinearGaussian


def _vae(seed=0):
    torch.manual_seed(seed)
    return VAE(16, 3, (12, 12), "tanh")


def _x(B=3, D=16, seed=1):
    return (torch.rand(B, D, generator=torch.Generator().manual_seed(seed)) > 0.5).float()


@pytest.mark.parametrize("bound,M,K", [("iwae", 1, 5), ("iwae", 3, 2), (functools.partial(ciwae, beta=0.3), 2, 4)])
def test_batched_gradients_match_loop(bound, M, K):
    m, x = _vae(), _x()
    eps = S.draw_noise(6, M, K, 3, 3, torch.Generator().manual_seed(7))
    a = S.gradient_estimates(m, x, eps, bound)
    b = S.gradient_estimates_loop(m, x, eps, bound)
    for side in ("phi", "theta"):
        assert a[side].shape == b[side].shape
        assert a[side].abs().max() > 0
        torch.testing.assert_close(a[side], b[side], rtol=1e-4, atol=1e-5)
    # the six repetitions differ from each other (independent noise)
    assert not torch.allclose(a["theta"][0], a["theta"][1])


def test_vmap_path_matches_loop_on_linear_gaussian():
    g = torch.Generator().manual_seed(0)
    m = LinearGaussian(4, 2, generator=g)
    x = m.sample(3, g)[1]
    eps = S.draw_noise(5, 2, 3, 3, 2, g, dtype=torch.float64)
    a = S.gradient_estimates(m, x, eps, "iwae")
    b = S.gradient_estimates_loop(m, x, eps, "iwae")
    for side in a:
        torch.testing.assert_close(a[side], b[side])


def test_snr_matches_loop_and_plain_formula():
    m, x = _vae(), _x()
    res = S.snr(m, x, K=4, reps=40, seed=5)
    eps = S.draw_noise(40, 1, 4, 3, 3, torch.Generator().manual_seed(5))  # chunk 0 uses seed + 0
    g = S.gradient_estimates_loop(m, x, eps)
    for side in ("phi", "theta"):
        v = g[side].double()
        expect = (v.mean(0).abs() / v.std(0)).float()
        got = getattr(res, side)
        ok = torch.isfinite(got)
        torch.testing.assert_close(got[ok], expect[ok], rtol=1e-3, atol=1e-5)
    # directional SNR by its definition
    v = torch.cat([g["phi"], g["theta"]], 1).double()
    u = v.mean(0) / v.mean(0).norm()
    par = v @ u
    perp = (v - par[:, None] * u).norm(dim=1)
    assert math.isclose(res.dsnr["all"], float((par.abs() / perp).mean()), rel_tol=1e-3)


def test_snr_two_passes_equal_one_pass():
    m, x = _vae(), _x()
    n = sum(p.numel() for p in m.parameters())
    one = S.snr(m, x, K=3, reps=30, seed=2, max_grad_floats=10 * n)
    two = S.snr(m, x, K=3, reps=30, seed=2, max_grad_floats=10 * n, max_keep_floats=1)
    torch.testing.assert_close(one.theta, two.theta, equal_nan=True)
    assert math.isclose(one.dsnr["phi"], two.dsnr["phi"], rel_tol=1e-6)


def test_snr_bad_input_raises():
    m, x = _vae(), _x()
    with pytest.raises(ValueError, match="valid"):
        S.snr(m, x, bound="elbow")
    with pytest.raises(ValueError, match="beta=0.5"):
        S.snr(m, x, bound="ciwae")
    with pytest.raises(ValueError, match="K must be"):
        S.snr(m, x, K=0)
    with pytest.raises(ValueError, match="beta"):
        S.snr(m, x, bound="ciwae", beta=2.0)
    with pytest.raises(ValueError, match="reps"):
        S.snr(m, x, reps=1)


def test_quick_model_slopes_in_K_have_the_papers_signs():
    """On a quick-scale model trained briefly with IWAE, SNR_phi falls and SNR_theta rises with K."""
    from gapkit.data import load
    from gapkit.experiments.iwae_snr import snr_sweep
    from gapkit.objectives import IWAE
    from gapkit.train import train
    data = load("digits", "threshold")
    torch.manual_seed(0)
    m = VAE(data.dim, 4, (64, 64), "relu")
    train(m, data, IWAE(K=16), epochs=3, batch_size=64, lr=3e-3, eval_every=0, progress=False)
    out = snr_sweep(m, data.test[:2], [1, 10, 100, 1000], [1, 10], reps=64, seed=0)
    sl = out["slopes"]
    assert sl["phi"]["K"] < 0
    assert sl["theta"]["K"] > 0
    assert sl["theta"]["M"] > 0 and sl["phi"]["M"] > 0
    assert out["snr_vs_K"]["K"] == [1, 10, 100, 1000] and len(out["snr_vs_K"]["summary"]) == 4


def test_group_bound_of_iwae_is_miwae():
    """One axis order for every bound: the bound of each group of K samples, averaged over M."""
    lw = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # (R, M, K, B)
    torch.testing.assert_close(S.group_bound(iwae, lw), torch.stack([miwae(v) for v in lw]))
    c = S.group_bound(functools.partial(ciwae, beta=0.3), lw[0])                                  # (B,)
    torch.testing.assert_close(c, torch.stack([ciwae(v, 0.3) for v in lw[0]]).mean(0))


def test_sums_are_float64_at_high_snr():
    """A float32 gradient with SNR about 1000 (mean 1000, std 1): the SNR from the streaming sums
    matches a float64 computation on the same numbers, in one chunk and merged over uneven chunks
    (a float32 sum of squares loses the variance to cancellation: ~10% error)."""
    g = torch.Generator().manual_seed(3)
    R, P = 2000, 64
    est = {"phi": 1000 + torch.randn(R, P, generator=g), "theta": -300 + 0.3 * torch.randn(R, P, generator=g)}
    assert est["phi"].dtype == torch.float32
    res = S.snr_from_estimates(est)
    acc = S._Acc({"phi": "phi", "theta": "theta"})
    parts = (slice(0, 7), slice(7, 1200), slice(1200, R))
    for sl in parts:
        acc.add({k: v[sl] for k, v in est.items()})
    for sl in parts:
        acc.project({k: v[sl] for k, v in est.items()})
    chunked = acc.result()
    for side in ("phi", "theta"):
        v = est[side].double()
        expect = v.mean(0).abs() / v.std(0)
        assert 900 < float(expect.median()) < 1100
        torch.testing.assert_close(getattr(res, side).double(), expect, rtol=1e-6, atol=0)
        torch.testing.assert_close(getattr(chunked, side).double(), expect, rtol=1e-6, atol=0)
    assert res.reps == chunked.reps == R


def test_noise_floor_is_the_median_snr_of_a_zero_mean_gradient():
    """Zero-mean gradients measured with R repetitions: the median SNR over parameters is
    Phi^-1(3/4) / sqrt(R) (about 0.674 / sqrt(R))."""
    R = 400
    g = torch.randn(R, 20000, generator=torch.Generator().manual_seed(4))
    res = S.snr_from_estimates({"phi": g, "theta": g[:, :10] + 5})
    assert math.isclose(float(res.phi.median()), S.noise_floor(R), rel_tol=0.03)
    assert math.isclose(S.noise_floor(R), 0.6745 / math.sqrt(R), rel_tol=1e-3)
    assert math.isclose(res.summary()["floor"], S.noise_floor(R))
    assert S.noise_floor(R, q=0.9) > S.noise_floor(R)
    with pytest.raises(ValueError, match="reps"):
        S.noise_floor(1)
    with pytest.raises(ValueError, match="quantile"):
        S.noise_floor(R, q=1.0)


def _summaries(grid, theta, phi, reps):
    """Sweep summaries as SNRResult.summary() writes them, from given medians per grid point."""
    fl = S.noise_floor(reps)
    return [{"theta": {"median": t}, "phi": {"median": p}, "floor": fl, "reps": reps} for t, p in zip(theta, phi)]


def test_slopes_fit_only_points_above_the_floor_and_the_verdict_follows():
    """A phi SNR falling like K^-1/2 that measures sqrt(s^2 + 1/R) near the floor: the whole-grid slope
    is flattened, the slope fitted above fit_floor_factor x floor and K >= K_min is the true one; the
    reproduction rule reads it (reproduces / partly / does not)."""
    from gapkit.experiments.iwae_snr import THEORY_SLOPES, fitted_slope, slope_findings
    from gapkit.reproduction import FINDINGS
    from gapkit.results import Results
    R, grid = 200, [1, 3, 10, 30, 100, 300, 1000, 3000, 10000]
    k = torch.tensor(grid, dtype=torch.float64)
    theta = (0.5 * k ** 0.5).tolist()
    phi = (((2.0 * k ** -0.5) ** 2 + 1 / R) ** 0.5).tolist()       # measured: true SNR plus the floor's share
    summ = _summaries(grid, theta, phi, R)
    f = fitted_slope(grid, summ, "phi", x_min=10, floor_factor=2.5)
    assert f["used"] and min(f["used"]) >= 10
    assert all(p >= 2.5 * S.noise_floor(R) for K, p in zip(grid, phi) if K in f["used"])
    assert max(f["used"]) < grid[-1]                                 # the points at the floor are left out
    assert abs(f["slope"] + 0.5) < 0.1 < abs(f["slope_all"] + 0.5)
    assert fitted_slope(grid, summ, "phi", x_min=10, floor_factor=100.0)["slope"] != f["slope"]  # NaN: no point
    sweeps = {"snr_vs_K": {"K": grid, "summary": summ}, "snr_vs_M": {"M": grid, "summary": _summaries(grid, theta, theta, R)}}
    fit = {"floor_factor": 2.5, "used": {}, "slope_all": {}}
    slopes = {}
    for side in ("theta", "phi"):
        for ax, xm in (("K", 10), ("M", 1)):
            r = fitted_slope(grid, sweeps[f"snr_vs_{ax}"]["summary"], side, xm, 2.5)
            slopes.setdefault(side, {})[ax] = r["slope"]
            fit["used"].setdefault(side, {})[ax] = r["used"]
    judge = {x.key: x.judge for x in FINDINGS}

    def verdict(key, sl):
        res = {**sweeps, "slopes": sl, "slope_fit": fit, "theory_slopes": THEORY_SLOPES,
               "ess": {"slope": 0.4}}
        res["findings"] = {"slopes": slope_findings(res)}
        return judge[key](Results(res))

    v, ours = verdict("snr_slopes_K", slopes)
    assert v == "reproduces" and f"{slopes['phi']['K']:+.2f}" in ours and "K^0.40" in ours
    assert verdict("snr_slopes_M", slopes)[0] == "reproduces"        # both rise like M^+1/2 here
    flat = copy.deepcopy(slopes)
    flat["theta"]["K"] = 0.2
    assert verdict("snr_slopes_K", flat)[0] == "partly"
    flat["phi"]["K"] = 0.1
    assert verdict("snr_slopes_K", flat)[0] == "does not"
    few = {**fit, "used": copy.deepcopy(fit["used"])}
    few["used"]["phi"]["K"] = few["used"]["phi"]["K"][:2]
    fit, saved = few, fit
    assert verdict("snr_slopes_K", slopes)[0] == "does not"          # two points measure no slope
    fit = saved
