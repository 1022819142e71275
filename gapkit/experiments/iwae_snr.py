"""Experiment ``iwae-snr``: tighter bounds are not necessarily better (Rainforth et al. 2018).

1. Trains five methods with the same budget of M K = 64 samples per image: IWAE-64,
   MIWAE(8, 8), CIWAE(beta = 0.5, K = 64), PIWAE(8, 8) (phi on MIWAE(8, 8), theta on IWAE-64)
   and the VAE (the ELBO averaged over 64 samples = MIWAE(64, 1)), plus CIWAE with a learnable
   beta = sigmoid(a) started at 0.5. Reports IWAE-64, log p-hat = IWAE-5000 and
   -KL(Q||P) = IWAE-64 - log p-hat on the test set (nats per image; Rainforth et al. Table 1).
2. On the IWAE-64-trained model, the per-parameter SNR of the IWAE gradient for theta and phi as
   K grows (M = 1) and as M grows (K = 1): median and quartiles, the directional SNR, and the
   fitted log-log slopes (theory: theta +1/2 in K and M; phi -1/2 in K, +1/2 in M).

`Chapter 4 <https://gapkit.github.io/gapkit/notebooks/04_iwae_snr.html>`_ shows it.
"""
from __future__ import annotations

import hashlib
import json
import math
import time

import numpy as np
import torch

from ..bounds import ess as normalized_ess
from ..estimators import evaluate
from ..models import VAE, load_model
from ..objectives import CIWAE, ELBO, IWAE, MIWAE, PIWAE, LearnableCIWAE
from ..analysis.snr import snr
from ..train import train
from . import Context, experiment

# Rainforth et al. (2018), Table 1: MNIST, means of 4 runs, nats per image (a citation, not ours):
# IWAE-64, log p-hat and -KL(Q||P) = IWAE-64 - log p-hat per method, after 3280 epochs.
RAINFORTH_TABLE1 = {
    "source": "Rainforth et al. 2018, Table 1 (MNIST, 3280 epochs, mean of 4 runs)", "epochs": 3280, "runs": 4,
    "iwae": {"K": 64},
    "rows": [{"method": "IWAE-64", "iwae": -86.11, "log_p_hat": -84.52, "neg_kl": -1.59},
             {"method": "PIWAE(8,8)", "iwae": -85.74, "log_p_hat": -84.46, "neg_kl": -1.28},
             {"method": "MIWAE(8,8)", "iwae": -85.69, "log_p_hat": -84.97, "neg_kl": -0.72},
             {"method": "CIWAE(0.5)", "iwae": -86.08, "log_p_hat": -85.24, "neg_kl": -0.84},
             {"method": "VAE", "iwae": -86.69, "log_p_hat": -86.21, "neg_kl": -0.47}],
}
# Rainforth et al. (2018), Theorem 1: SNR ~ K^(+1/2) (theta), K^(-1/2) (phi); M^(+1/2) for both.
THEORY_SLOPES = {"theta": {"K": 0.5, "M": 0.5}, "phi": {"K": -0.5, "M": 0.5}}
METRICS = ("iwae", "log_p_hat", "neg_kl")
SLOPE_TOLERANCE = 0.1   # a fitted slope "reproduces" the theory's within this (gapkit.reproduction)
MIN_FIT_POINTS = 3      # fewer grid points above the noise floor (and K >= fit_K_min) measure no slope  # the columns of Rainforth et al.'s Table 1

# What each preset trains and measures. Book: a short schedule on a subset of dynamically
# binarized MNIST (about 5 minutes on 2 CPU cores); paper: Burda et al.'s architecture and
# 3280-epoch schedule on all of MNIST (GPU).
SETTINGS = {
    "quick": dict(snr=True, data={}, model={}, output_bias=False,
                  train=dict(epochs=10, batch_size=64, lr=3e-3),
                  log_p_K=1000, snr_batch=4, snr_reps=100, snr_reps_K=200,
                  K_grid=[1, 3, 10, 30, 100, 300, 1000], M_grid=[1, 3, 10, 30, 100, 300],
                  fit_K_min=10, fit_floor_factor=2.5, ess_K_grid=[1, 3, 10, 30, 100, 300, 1000, 3000, 10000],
                  ess_samples=10000),
    "book": dict(snr=True, data=dict(binarization="dynamic", train_subset=3000, test_subset=300),
                 model=dict(hidden=(100, 100), latent=20, activation="tanh"), output_bias=True,
                 train=dict(epochs=5, batch_size=50, lr=1e-3),
                 log_p_K=5000, snr_batch=4, snr_reps=200, snr_reps_K=800,
                 K_grid=[1, 3, 10, 30, 100, 300], M_grid=[1, 3, 10, 30, 100, 300],
                 fit_K_min=10, fit_floor_factor=2.5, ess_K_grid=[1, 3, 10, 30, 100, 300, 1000, 3000, 10000],
                 ess_samples=10000),
    "paper": dict(snr=True, data=dict(binarization="dynamic", train_subset=None, test_subset=None),
                  model=dict(hidden=(200, 200), latent=50, activation="tanh"), output_bias=True,
                  train=dict(epochs=3280, batch_size=20, lr=1e-3, schedule="burda"),
                  log_p_K=5000, snr_batch=16, snr_reps=1000, snr_reps_K=4000,
                  K_grid=[1, 3, 10, 30, 100, 300, 1000], M_grid=[1, 3, 10, 30, 100, 300, 1000],
                  fit_K_min=10, fit_floor_factor=2.5,
                  ess_K_grid=[1, 3, 10, 30, 100, 300, 1000, 3000, 10000, 30000, 100000], ess_samples=100000),
}
# snr_reps: repetitions of the M sweep and of each method's gradient; snr_reps_K: of the K sweep, where
# the encoder's SNR falls toward the noise floor 0.674 / sqrt(R) (gapkit.analysis.snr.noise_floor).
# Slopes are fitted on K >= fit_K_min (Theorem 1 is asymptotic in K) and on points whose median SNR is
# at least fit_floor_factor times the floor (there the floor overstates the SNR by about 14% or less).
# ess_K_grid, ess_samples: the effective sample size of the weights, extended past the SNR grid (a
# forward pass only), shows whether the grid reaches the theory's asymptotic regime.

# The extra seeds chapter 4 runs as a grid (snr=False) for the method table over seeds: two at the
# quick preset, one at the book preset (each costs about 1.5 minutes of CPU, and the cold book build
# must stay within 25 minutes), three at the paper preset (four runs in all, as Rainforth et al.).
EXTRA_SEEDS = {"quick": [1, 2], "book": [1], "paper": [1, 2, 3]}



def methods(budget: int = 64) -> dict:
    """The five methods of Rainforth et al. Table 1 with M K = 64 samples, plus learnable beta."""
    return {
        "IWAE-64": lambda: IWAE(K=budget),
        "MIWAE(8,8)": lambda: MIWAE(M=8, K=8),
        "CIWAE(0.5)": lambda: CIWAE(beta=0.5, K=budget),
        "PIWAE(8,8)": lambda: PIWAE(M=8, K=8),
        "VAE": lambda: ELBO(K=budget),
        "CIWAE(learned)": lambda: LearnableCIWAE(beta0=0.5, K=budget),
    }


def settings(preset_name: str) -> dict:
    return SETTINGS.get(preset_name, SETTINGS["book"])


def slope(xs, ys) -> float:
    """Least-squares slope of log10(y) against log10(x) (NaN-free points only)."""
    x, y = np.log10(np.asarray(xs, float)), np.log10(np.asarray(ys, float))
    ok = np.isfinite(x) & np.isfinite(y)
    return float(np.polyfit(x[ok], y[ok], 1)[0]) if ok.sum() >= 2 else math.nan


def _model(ctx: Context, data, s):
    p = ctx.preset.replace(**s["model"]) if s["model"] else ctx.preset
    torch.manual_seed(ctx.seed)
    bias = None
    if s["output_bias"]:  # Burda et al.: the logit of the mean training pixel
        m = data.train.mean(0).clamp(1e-3, 1 - 1e-3)
        bias = torch.log(m) - torch.log1p(-m)
    return VAE(data.dim, p.latent, p.hidden, p.activation, data.likelihood, output_bias=bias).to(ctx.device)


def row(table: dict, method: str) -> dict:
    """The row of ``method`` (e.g. ``"IWAE-64"``) in a table of rows (``res["table"]``, the reference)."""
    for r in table["rows"]:
        if r["method"] == method:
            return r
    raise KeyError(f"no method {method!r} in the table; valid methods: {[r['method'] for r in table['rows']]}")


def fitted_slope(grid, summaries, side: str, x_min: int, floor_factor: float) -> dict:
    """The log-log slope (:func:`slope`) of the median SNR of ``side`` over the grid points that the
    theory speaks about and the repetitions can resolve: ``x >= x_min`` and
    ``median >= floor_factor * floor``, with ``floor`` the median SNR that a zero-mean gradient
    measures, :func:`gapkit.analysis.snr.noise_floor` ``= 0.674 / sqrt(R)`` (near it a measured SNR is
    overstated by about ``1 / (2 R s^2)`` and cannot fall further). Returns ``{"slope", "used",
    "slope_all"}``: the slope over the used points (NaN when fewer than 2), the grid values used, and
    the slope over the whole grid for comparison."""
    med = [v[side]["median"] for v in summaries]
    used = [x for x, m, v in zip(grid, med, summaries) if x >= x_min and m >= floor_factor * v["floor"]]
    ys = [m for x, m in zip(grid, med) if x in used]
    return {"slope": slope(used, ys), "used": used, "slope_all": slope(grid, med)}


def local_slopes(grid, summaries, side: str) -> list[float]:
    """The slope of log10(median SNR) against log10(x) between consecutive grid points:
    ``(log m_{i+1} - log m_i) / (log x_{i+1} - log x_i)`` (length ``len(grid) - 1``)."""
    x = np.log10(np.asarray(grid, float))
    y = np.log10(np.asarray([v[side]["median"] for v in summaries], float))
    return (np.diff(y) / np.diff(x)).tolist()


def snr_sweep(model, x, K_grid, M_grid, reps, seed=0, progress=False, K_min: int = 1,
              floor_factor: float = 0.0, reps_K: int | None = None) -> dict:
    """SNR summaries for IWAE-K (M = 1) over ``K_grid`` (``reps_K`` repetitions, default ``reps``) and
    MIWAE(M, 1) over ``M_grid`` (``reps``), with the
    log-log slopes of the median SNR fitted by :func:`fitted_slope` (K on ``K >= K_min``, every M; on
    points at least ``floor_factor`` times the noise floor): ``{"snr_vs_K": {"K": grid, "M": 1,
    "summary": [...]}, "snr_vs_M": {...}, "slopes": {"theta": {"K": ., "M": .}, "phi": {...}},
    "slope_fit": {"K_min", "floor_factor", "used": {side: {axis: [...]}}, "slope_all": {...},
    "local": {side: {axis: [...]}}}}`` (``local``: :func:`local_slopes`)."""
    out = {"snr_vs_K": {"K": list(K_grid), "M": 1, "summary": []},
           "snr_vs_M": {"M": list(M_grid), "K": 1, "summary": []}}
    for K in K_grid:
        out["snr_vs_K"]["summary"].append(snr(model, x, K=K, M=1, reps=reps_K or reps, seed=seed,
                                              progress=progress).summary())
    for M in M_grid:
        out["snr_vs_M"]["summary"].append(snr(model, x, K=1, M=M, reps=reps, seed=seed, progress=progress).summary())
    sl = {"theta": {}, "phi": {}}
    fit = {"K_min": K_min, "floor_factor": floor_factor, "used": {"theta": {}, "phi": {}},
           "slope_all": {"theta": {}, "phi": {}}, "local": {"theta": {}, "phi": {}}}
    for axis, grid, x_min in (("K", K_grid, K_min), ("M", M_grid, 1)):
        summ = out[f"snr_vs_{axis}"]["summary"]
        for side in ("theta", "phi"):
            f = fitted_slope(grid, summ, side, x_min, floor_factor)
            sl[side][axis] = f["slope"]
            fit["used"][side][axis], fit["slope_all"][side][axis] = f["used"], f["slope_all"]
            fit["local"][side][axis] = local_slopes(grid, summ, side)
    out["slopes"], out["slope_fit"] = sl, fit
    return out


def ess_sweep(model, x, K_grid, samples: int, seed: int = 0, K_min: int = 1) -> dict:
    """The effective sample size of the importance weights on the minibatch ``x`` as K grows:
    ``ESS_K = (sum_k w_k)^2 / sum_k w_k^2`` per image and draw of K samples (1 <= ESS <= K), averaged
    over ``max(1, samples // K)`` draws and the B images. The asymptotic rates of the SNR (Rainforth
    et al.'s Theorem 1) hold once the self-normalized weights average out, where ``ESS_K / K`` tends to
    the constant ``E[w]^2 / E[w^2]`` and ESS grows like ``K^1``; a fitted slope (over ``K >= K_min``) well below 1
    says that the grid is not yet there. Returns ``{"K", "ess", "slope", "K_min", "samples"}``."""
    from ..estimators import log_weights
    g = torch.Generator(device=x.device).manual_seed(seed)
    ess = []
    with torch.no_grad():
        for K in K_grid:
            d = max(1, samples // K)
            lw = log_weights(model, x, K * d, generator=g).reshape(d, K, -1).transpose(0, 1)  # (K, d, B): d draws
            ess.append(float(K * normalized_ess(lw.double()).mean()))            # ESS = K x the normalized one
    ks = [k for k in K_grid if k >= K_min]
    return {"K": list(K_grid), "ess": ess, "slope": slope(ks, [e for k, e in zip(K_grid, ess) if k >= K_min]),
            "K_min": K_min, "samples": samples}


@experiment("iwae-snr", "SNR of IWAE gradients vs K and M; IWAE, MIWAE, CIWAE, PIWAE, VAE (Rainforth et al. 2018)",
            chapter="04_iwae_snr", cost={"quick": "20 s CPU", "book": "3 min CPU"},
            settings=SETTINGS, preset_settings=("data", "model", "train"))
def iwae_snr(ctx: Context) -> dict:
    s = ctx.settings
    data = ctx.data(**s["data"])
    x_test = data.fixed("test", seed=ctx.seed)
    g = torch.Generator(device=ctx.device)
    rows, learned = [], {}
    # Runs resume from their own folder; the folder is named by the settings so that a changed
    # setting never resumes a stale run.
    runs = ctx.out / "runs" / hashlib.sha1(json.dumps(s, sort_keys=True, default=str).encode()).hexdigest()[:10]
    for name, make in methods().items():
        obj = make()
        model = _model(ctx, data, s)
        t0 = time.perf_counter()
        cfg = ctx.train_config(**s["train"], eval_every=0, checkpoint_every=s["train"]["epochs"])
        hist = train(model, data, obj, cfg, out_dir=runs / name)
        seconds = time.perf_counter() - t0

        def evaluate_method(obj=obj, model=model):    # a stage: a run stopped later resumes after it
            g.manual_seed(ctx.seed + 1)
            out = {"iwae": evaluate(model, x_test, "iwae", 64, generator=g).mean().item(),
                   "log_p_hat": evaluate(model, x_test, "iwae", s["log_p_K"], generator=g,
                                         progress=ctx.progress).mean().item()}
            if isinstance(obj, LearnableCIWAE):
                tr = obj.trace
                stride = max(1, len(tr) // 200)
                out["learned"] = {"beta0": obj.beta0, "beta_final": float(obj.beta.detach()),
                                  "steps": list(range(0, len(tr), stride)), "beta": tr[::stride]}
            return out
        ev = ctx.stage(f"evaluate {name}", evaluate_method)
        iw64, lp = ev["iwae"], ev["log_p_hat"]
        rows.append({"method": name, "iwae": iw64, "log_p_hat": lp, "neg_kl": iw64 - lp, "train_seconds": seconds,
                     "objective": obj.config(), "loss": hist.get("loss", []),
                     "checkpoint": str(runs / name / "checkpoints" / f"epoch_{cfg.epochs:04d}.pt")})
        learned = ev.get("learned", learned)
    common = {
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.items()},
        "dataset": {"name": data.name, "binarization": data.binarization, "n_train": len(data.train),
                    "n_test": len(data.test)},
        "table": {"iwae": {"K": 64}, "log_p_hat": {"K": s["log_p_K"]}, "rows": rows},
        "reference": RAINFORTH_TABLE1,
        "learned_beta": learned,
    }
    metrics = {"table": [{"method": r["method"], **{m: round(r[m], 3) for m in METRICS}} for r in rows]}
    common["findings"] = {"rainforth": rainforth_checks(common["table"])}
    if not s["snr"]:  # the method table only (e.g. the extra seeds of chapter 4's grid)
        return {**common, "metrics": metrics}
    # SNR on the IWAE-64-trained model, a fixed minibatch of test images.
    model = load_model(row(common["table"], "IWAE-64")["checkpoint"], ctx.device)
    xb = x_test[:s["snr_batch"]]
    sweep = ctx.stage("snr sweep", lambda: snr_sweep(model, xb, s["K_grid"], s["M_grid"], s["snr_reps"], seed=ctx.seed,
                                                     progress=ctx.progress, reps_K=s["snr_reps_K"],
                                                     K_min=s["fit_K_min"], floor_factor=s["fit_floor_factor"]))
    ess = ctx.stage("ess", lambda: ess_sweep(model, xb, s["ess_K_grid"], s["ess_samples"], seed=ctx.seed + 2,
                                             K_min=s["fit_K_min"]))
    # The gradient each method uses, at the same parameters and budget of 64 samples.
    per_method = {
        "IWAE-64": dict(K=64, M=1),
        "MIWAE(8,8)": dict(K=8, M=8),
        "CIWAE(0.5)": dict(K=64, M=1, bound="ciwae", beta=0.5),
        "VAE": dict(K=1, M=64),
    }
    snr_methods = ctx.stage("snr per method", lambda: {k: snr(model, xb, reps=s["snr_reps"], seed=ctx.seed, **v).summary()
                                                        for k, v in per_method.items()})
    snr_methods["PIWAE(8,8)"] = {"phi": snr_methods["MIWAE(8,8)"]["phi"], "theta": snr_methods["IWAE-64"]["theta"]}
    res = {
        **common,
        "model": model.config,
        **sweep,
        "ess": ess,
        "theory_slopes": THEORY_SLOPES,
        "snr_methods": [{"method": k, **v} for k, v in snr_methods.items()],
        "metrics": {"slopes": sweep["slopes"], **metrics},
    }
    res["findings"]["slopes"] = slope_findings(res)
    res["book_summary"] = book_summary(res)
    return res


def book_summary(res: dict) -> dict:
    """The book's summary panel: log p-hat of the five trained models, the best against the paper's
    best, and the fitted SNR slopes in K against the theory's."""
    t = {r["method"]: r for r in res["table"]["rows"]}
    order = ["IWAE", "MIWAE", "CIWAE(0.5)", "PIWAE", "VAE"]
    keys = [next(k for k in t if k.startswith(p) and "learned" not in k) for p in order]
    values = {k: t[k]["log_p_hat"] for k in keys}
    best = max(values, key=values.get)
    ref = {r["method"]: r for r in res["reference"]["rows"]}
    ref_best = max(ref, key=lambda k: ref[k]["log_p_hat"])
    same = best.split("(")[0].split("-")[0] == ref_best.split("(")[0].split("-")[0]
    agree = f" ({'as in' if same else 'unlike'} the paper's Table 1, where {ref_best} is best)"
    sl, th = res["slopes"], res["theory_slopes"]
    finding = (f"{best} reaches the highest log p̂, {values[best]:.2f} nats{agree}; the encoder's gradient SNR "
               f"scales as K^{sl['phi']['K']:+.2f} and the decoder's as K^{sl['theta']['K']:+.2f} "
               f"(theory: K^{th['phi']['K']:+.1f} and K^{th['theta']['K']:+.1f}).")
    return {"title": "Tighter bounds: log p̂ of the trained models (test)", "unit": "nats", "lower_is_better": False,
            "values": values, "finding": finding}


def slope_findings(res: dict) -> dict:
    """Per slope (``theta``/``phi`` x ``K``/``M``) whether the fitted slope has the theory's sign and is
    within ``SLOPE_TOLERANCE`` of it, fitted on at least ``MIN_FIT_POINTS`` points; the K at which the
    encoder's median SNR is below ``fit_floor_factor`` times the noise floor (left out of the fit);
    and the fitted slope of the effective sample size in K (1 in the theory's asymptotic regime)."""
    sl, th, fit = res["slopes"], res["theory_slopes"], res["slope_fit"]
    axes = ("K", "M")
    same = {side: {ax: bool(math.isfinite(sl[side][ax]) and math.copysign(1, sl[side][ax]) == math.copysign(1, th[side][ax]))
                   for ax in axes} for side in ("theta", "phi")}
    near = {side: {ax: bool(abs(sl[side][ax] - th[side][ax]) <= SLOPE_TOLERANCE) for ax in axes}
            for side in ("theta", "phi")}
    enough = {side: {ax: len(fit["used"][side][ax]) >= MIN_FIT_POINTS for ax in axes} for side in ("theta", "phi")}
    vk = res["snr_vs_K"]
    c = fit["floor_factor"]
    at_floor = [K for K, v in zip(vk["K"], vk["summary"]) if v["phi"]["median"] < c * v["floor"]]
    return {"same_sign_as_theory": same, "within_tolerance": near, "enough_points": enough,
            "tolerance": SLOPE_TOLERANCE, "min_points": MIN_FIT_POINTS, "phi_at_noise_floor_K": at_floor,
            "ess_slope": res["ess"]["slope"]}


def rainforth_checks(table: dict) -> list[dict]:
    """Rainforth et al.'s Table 1 orderings checked on one run's ``table``: a list of
    ``{"claim", "holds", "detail"}``."""
    names = ["IWAE-64", "PIWAE(8,8)", "MIWAE(8,8)", "CIWAE(0.5)", "VAE"]
    lp = {n: row(table, n)["log_p_hat"] for n in names}
    kl = {n: row(table, n)["neg_kl"] for n in names}
    checks = [
        ("PIWAE(8,8) has a log p-hat at least as good as IWAE-64", lp["PIWAE(8,8)"] >= lp["IWAE-64"],
         f"{lp['PIWAE(8,8)']:.2f} vs {lp['IWAE-64']:.2f}"),
        ("MIWAE(8,8) has a smaller |-KL| (a better encoder) than IWAE-64", abs(kl["MIWAE(8,8)"]) < abs(kl["IWAE-64"]),
         f"{kl['MIWAE(8,8)']:.2f} vs {kl['IWAE-64']:.2f}"),
        ("the VAE has the worst log p-hat", lp["VAE"] == min(lp.values()),
         f"{lp['VAE']:.2f} vs best {max(lp.values()):.2f}"),
        ("the VAE has the smallest |-KL|", abs(kl["VAE"]) == min(abs(v) for v in kl.values()), f"{kl['VAE']:.2f}"),
    ]
    return [{"claim": c, "holds": bool(h), "detail": d} for c, h, d in checks]


def table_over_seeds(results: list[dict]) -> dict:
    """The method table over runs with different seeds (this run and a seed grid's cells): per method
    and metric the mean, standard deviation (numpy, ddof=0) and count, and in how many seeds each of
    :func:`rainforth_checks` holds."""
    from ..grid import aggregate
    methods = [r["method"] for r in results[0]["table"]["rows"]]
    agg = aggregate([{m: {k: row(r["table"], m)[k] for k in METRICS} for m in methods} for r in results])["scalars"]
    table = {"rows": [{"method": m, **{k: agg[f"{m}/{k}"] for k in METRICS}} for m in methods]}
    per_seed = [rainforth_checks(r["table"]) for r in results]
    holds = {c["claim"]: sum(run[i]["holds"] for run in per_seed) for i, c in enumerate(per_seed[0])}
    return {"seeds": [r["config"]["seed"] for r in results], "n": len(results), "table": table,
            "holds_in_seeds": holds}
