"""Experiment ``bsvi``: buffered SVI, the generalized IWAE bound, and training with BSVI.

`Chapter 6 <https://gapkit.github.io/gapkit/notebooks/06_bsvi.html>`_ shows it. Four parts (Shu et al. 2019):

1. ``linear_gaussian``: the BSVI bound of an SVI trajectory against the exact log p(x) of the
   linear-Gaussian model (Theorem 1), with uniform and with optimized buffer weights.
2. ``steps`` / ``svi0`` / ``svik`` / ``bsvik`` / ``bsvik_opt``: on the test set of the trained VAE,
   the SVI-0, SVI-k and BSVI-k bounds for k = 0..K steps (uniform and optimized pi; pi is fitted on
   training images, so that the test numbers are not fitted to the same samples). ``curves`` has
   the same for every trained model (the widget), ``svi_lr_sweep`` the SVI step size check.
3. ``estimator_table``: per trained model, BSVI-K against IWAE-K, 2K, ..., 5K (Appendix C).
4. ``training_table``: VAE, IWAE-k', SVI-k' and BSVI-k-SIR (k' = k + 1; the ``paper`` preset adds
   BSVI-k, BSVI-k-DS and the pi-learned variants): test log-likelihood (BSVI-K), ELBO*, KL* and
   Reconstruction* (the SVI-K bound of the final proposal and its two terms; Appendix B), plus
   ``monitor``: the three bounds on every training minibatch and E_pi[i]/k when pi is learned.
"""
from __future__ import annotations

import math
import time

import torch

from ..bounds import bsvi as bsvi_bound
from ..inference.bsvi import bsvi_prefix
from ..inference.bsvi import mean_position
from ..inference.bsvi import optimize_pi
from ..inference.bsvi import refined_bounds
from ..estimators import evaluate
from ..models import LinearGaussian
from ..objectives import make_objective
from ..train import train
from . import Context, experiment

# Per preset: k (BSVI steps; SVI and IWAE use k' = k + 1), the SVI settings, the evaluation
# trajectory length K (BSVI-K log-likelihood, ELBO*), the number of test images, the curve length.
SETTINGS = {
    "quick": dict(k=3, epochs=15, svi_lr=0.1, svi_momentum=0.5, svi_clip=1.0, eval_steps=20, n_eval=250,
                  curve_steps=20, grad_clip=5.0, lg_repeats=1000, lg_steps=10, pi_variants=True,
                  extra=False, batch_size=None, lr=None, methods=None),
    "book": dict(k=4, epochs=None, svi_lr=0.1, svi_momentum=0.5, svi_clip=1.0, eval_steps=100, n_eval=500,
                 curve_steps=50, grad_clip=5.0, lg_repeats=4000, lg_steps=20, pi_variants=True, extra=False,
                 batch_size=None, lr=None, methods=None),
    # The paper: k = 9, SGD with momentum (lr 1.0, m 0.5, clip 1.0) for the local parameters, clip 5.0
    # for the networks, batch 50, lr 1e-3, 200k steps (about 167 epochs of 60k images), BSVI-500.
    "paper": dict(k=9, epochs=167, batch_size=50, lr=1e-3, svi_lr=1.0, svi_momentum=0.5, svi_clip=1.0,
                  eval_steps=500, n_eval=10000, curve_steps=50, grad_clip=5.0, lg_repeats=20000, lg_steps=50,
                  pi_variants=True, extra=True, methods=None),
}
SVI_LRS = (1.0, 0.5, 0.2, 0.1, 0.05)


def _settings(ctx: Context) -> dict:
    return ctx.settings  # checked by gapkit.experiments.check_settings (unknown names refused)


def _methods(s: dict):
    """(label, kind, kwargs) of every method to train."""
    k, kp = s["k"], s["k"] + 1
    svi = dict(optimizer="momentum", lr=s["svi_lr"], momentum=s["svi_momentum"], clip=s["svi_clip"])
    out = [("VAE", "elbo", {}), (f"IWAE-{kp}", "iwae", {"K": kp}), (f"SVI-{kp}", "svi", {"steps": kp, **svi}),
           (f"BSVI-{k}-SIR", "bsvi-sir", {"steps": k, **svi})]
    if s["pi_variants"]:
        out.append((f"BSVI-{k}-SIR-pi", "bsvi-sir", {"steps": k, "learn_pi": True, **svi}))
    if s["extra"]:
        out += [(f"BSVI-{k}", "bsvi", {"steps": k, **svi}), (f"BSVI-{k}-DS", "bsvi-ds", {"steps": k, **svi}),
                (f"BSVI-{k}-pi", "bsvi", {"steps": k, "learn_pi": True, **svi})]
    return out


def _mean_se(v: torch.Tensor, dim=-1):
    n = v.shape[dim]
    return v.mean(dim), v.std(dim) / math.sqrt(max(n, 1))


def _windows(values, n_points=100):
    """Means over consecutive windows (at most n_points of them) and the windows' last iteration."""
    v = torch.tensor(values, dtype=torch.float64)
    w = max(1, math.ceil(len(v) / n_points))
    n = len(v) // w * w
    if n == 0:
        return [], []
    return v[:n].reshape(-1, w).mean(1).tolist(), list(range(w, n + 1, w))


# ----------------------------------------------------------------------------------- part 1


def linear_gaussian_check(steps: int = 20, repeats: int = 4000, n_points: int = 8, seed: int = 0,
                          lr: float = 0.1, momentum: float = 0.5) -> dict:
    """BSVI-k of SVI trajectories on the linear-Gaussian model against its exact log p(x).

    The encoder is left at its initial value (q_0 = N(0, I), the prior), SVI refines it; each of
    ``n_points`` data points gets ``repeats`` independent trajectories. Returns per k the mean gap
    (bound - log p(x), averaged over points) and its standard error, for SVI-k, uniform BSVI-k and
    BSVI-k with pi optimized on an independent set of trajectories; ``max_z`` is the largest
    (bound - log p(x)) / se over points and k (a valid bound gives values below about 3).
    """
    g = torch.Generator().manual_seed(seed)
    model = LinearGaussian(x_dim=5, z_dim=2, noise_std=1.0, generator=g)
    _, x = model.sample(n_points, g)                                           # (P, D)
    log_px = model.exact_log_px(x).detach()                                    # (P,)
    xr = x.repeat(repeats, 1)                                                  # (R*P, D), row r*P + p
    from ..inference.bsvi import buffer_trajectory
    fit = buffer_trajectory(model, xr, steps, lr=lr, momentum=momentum, generator=g).log_w[:, 0]
    lw = buffer_trajectory(model, xr, steps, lr=lr, momentum=momentum, generator=g).log_w[:, 0]
    lw = lw.reshape(steps + 1, repeats, n_points)                             # (k+1, R, P)
    fit = fit.reshape(steps + 1, repeats, n_points)
    svik = lw                                                                  # SVI-k: log w_k
    bsvik = bsvi_prefix(lw)                                                    # uniform BSVI-k
    opt = torch.stack([bsvi_bound(lw[:j + 1], pi=optimize_pi(fit[:j + 1].reshape(j + 1, -1)))
                       for j in range(steps + 1)])                             # (k+1, R, P)
    out = {"steps": list(range(steps + 1)), "log_px": log_px.tolist(), "repeats": repeats, "gap": {}, "se": {}}
    max_z = -float("inf")
    for name, v in (("svik", svik), ("bsvik", bsvik), ("bsvik_opt", opt)):
        m, se = _mean_se(v, dim=1)                                             # (k+1, P)
        gap = m - log_px                                                       # (k+1, P)
        out["gap"][name] = gap.mean(1).tolist()
        out["se"][name] = (se.pow(2).mean(1).sqrt() / math.sqrt(n_points)).tolist()
        max_z = max(max_z, float((gap / se).max()))
    out["max_z"] = max_z
    return out


def _evaluate(model, x_test, x_fit, K, curve_k, iwae_Ks, svi, g, progress=False) -> dict:
    """One trained model's evaluation (all draws from ``g``): K SVI steps per test image with BSVI-K,
    ELBO*, KL* and Reconstruction* (``training_row``, nats); BSVI-K against IWAE at ``iwae_Ks``
    (``estimator_row``); the SVI-0, SVI-k, uniform BSVI-k and BSVI-k with pi optimized on ``x_fit``'s
    trajectories for k = 0..curve_k (``curves``)."""
    r = refined_bounds(model, x_test, K, generator=g, progress=progress, **svi)
    fit = refined_bounds(model, x_fit, curve_k, generator=g, **svi)["log_w"]
    lw = r["log_w"]                                                              # (K+1, N)
    training_row = {"log_likelihood": r["bsvi"].mean().item(), "elbo_star": r["elbo_star"].mean().item(),
                    "kl_star": r["kl_star"].mean().item(),
                    "reconstruction_star": r["reconstruction_star"].mean().item(),
                    "log_likelihood_se": _mean_se(r["bsvi"])[1].item()}
    estimator_row = {"bsvi": r["bsvi"].mean().item(),
                     "iwae": [evaluate(model, x_test, "iwae", K=iw_K, generator=g).mean().item() for iw_K in iwae_Ks]}
    pre = bsvi_prefix(lw[:curve_k + 1])                                          # (k+1, N)
    pis = [optimize_pi(fit[:j + 1]) for j in range(curve_k + 1)]
    opt = torch.stack([bsvi_bound(lw[:j + 1], pi=pis[j]) for j in range(curve_k + 1)])  # (k+1, N)
    svik = lw[:curve_k + 1]
    curves = {"svi0": [lw[0].mean().item()] * (curve_k + 1), "svik": svik.mean(1).tolist(),
              "bsvik": pre.mean(1).tolist(), "bsvik_opt": opt.mean(1).tolist(),
              "se_bsvik_minus_svik": _mean_se(pre - svik)[1].tolist(),
              "se_svik_minus_svi0": _mean_se(svik - lw[0])[1].tolist(),
              "pi_opt": [pi.tolist() for pi in pis], "pi_opt_position": [mean_position(pi) for pi in pis]}
    return {"training_row": training_row, "estimator_row": estimator_row, "curves": curves}


def _lr_sweep(vae, x_test, curve_k, svi, g) -> dict:
    """SVI-0, SVI-k and BSVI-k (k = ``curve_k``) of the test images for every SVI step size in
    ``SVI_LRS`` (all draws from ``g``)."""
    out = {"svi0": [], "svik": [], "bsvik": []}
    for lr in SVI_LRS:
        r = refined_bounds(vae, x_test, curve_k, generator=g, **{**svi, "lr": lr})
        out["svi0"].append(r["log_w"][0].mean().item())
        out["svik"].append(r["log_w"][-1].mean().item())
        out["bsvik"].append(r["bsvi"].mean().item())
    return out


# ----------------------------------------------------------------------------------- the experiment


@experiment("bsvi", "Buffered SVI: the generalized IWAE bound, BSVI-k vs SVI-k vs SVI-0, BSVI as an "
            "estimator, and training with SVI / BSVI-SIR (nats)", chapter="06_bsvi",
            cost={"quick": "20 s CPU", "book": "4 min CPU"}, settings=SETTINGS)
def bsvi_experiment(ctx: Context) -> dict:
    s = _settings(ctx)
    k, K = s["k"], s["eval_steps"]
    curve_k = min(s["curve_steps"], K)
    svi = dict(optimizer="momentum", lr=s["svi_lr"], momentum=s["svi_momentum"], clip=s["svi_clip"])
    t_all = time.perf_counter()

    # 1. Theorem 1 on the linear-Gaussian model (a stage; its generator is seeded by the run's seed).
    lg = ctx.stage("linear gaussian", lambda: linear_gaussian_check(steps=s["lg_steps"], repeats=s["lg_repeats"],
                                                                     seed=ctx.seed))

    # 4. Training.
    data = ctx.data()
    g_fit = torch.Generator(device=ctx.device).manual_seed(ctx.seed)   # only for the binarization below
    x_test = data.fixed("test", seed=ctx.seed)[:s["n_eval"]]
    x_fit = data.binarize(data.train[:s["n_eval"]], g_fit)          # images to fit the global pi on
    methods = _methods(s)
    if s["methods"] is not None:
        want = list(s["methods"])
        methods = [m for m in methods if m[0] in want or m[1] in want]
    tc = dict(grad_clip=s["grad_clip"])
    for key in ("epochs", "batch_size", "lr"):
        if s.get(key) is not None:
            tc[key] = s[key]
    models, histories, monitor, times = {}, {}, {}, {}
    for label, kind, kw in methods:
        model = ctx.model(data)
        obj = make_objective(kind, **kw)
        t0 = time.perf_counter()
        slug = label.lower().replace("-", "_")
        histories[label] = train(model, data, obj, ctx.train_config(**tc), out_dir=ctx.out / slug)
        times[label] = time.perf_counter() - t0
        models[label] = model.eval()
        trace = getattr(obj, "trace", {})
        if trace:
            mon = {}
            for key, v in trace.items():
                mon[key], it = _windows(v)
            mon["iteration"] = it
            diffs = torch.tensor([trace["bsvik"], trace["svik"], trace["svi0"]], dtype=torch.float64)
            mon["frac_bsvi_ge_svi"] = float((diffs[0] >= diffs[1]).double().mean())
            mon["frac_svi_ge_svi0"] = float((diffs[1] >= diffs[2]).double().mean())
            mon["mean_bsvi_minus_svi"] = float((diffs[0] - diffs[1]).mean())
            mon["mean_svi_minus_svi0"] = float((diffs[1] - diffs[2]).mean())
            if obj.buffer is not None:
                mon["pi_final"] = obj.buffer().detach().tolist()
            monitor[label] = mon

    # 2-4. Evaluation: one K-step SVI trajectory per test image (and per fitting image) per model. Each
    # model's evaluation and the step-size sweep are stages (ctx.stage), each drawing from its own
    # generator (ctx.generator): a run stopped later continues after the last one finished.
    training_table = {"rows": []}
    estimator_table = {"bsvi": {"steps": K}, "iwae": {"K": [m * K for m in range(1, 6)]}, "rows": []}
    curves = {}
    for label, model in models.items():
        name = f"evaluate {label}"
        ev = ctx.stage(name, lambda model=model, name=name: _evaluate(
            model, x_test, x_fit, K, curve_k, estimator_table["iwae"]["K"], svi, ctx.generator(name), ctx.progress))
        training_table["rows"].append({"method": label, **ev["training_row"], "train_time_s": round(times[label], 1)})
        estimator_table["rows"].append({"method": label, **ev["estimator_row"]})
        curves[label] = ev["curves"]

    # The SVI step size: SVI-k after curve_k steps on the VAE for several learning rates.
    vae = models.get("VAE", next(iter(models.values())))
    sweep = {"lr": list(SVI_LRS), "k": curve_k,
             **ctx.stage("svi lr sweep", lambda: _lr_sweep(vae, x_test, curve_k, svi, ctx.generator("svi lr sweep")))}

    main = curves["VAE"] if "VAE" in curves else next(iter(curves.values()))
    c = {key: torch.tensor(main[key]) for key in ("svi0", "svik", "bsvik", "bsvik_opt")}
    ordering = {"model": "VAE" if "VAE" in curves else next(iter(curves)),
                "k": curve_k, "svi0": main["svi0"][-1], "svik": main["svik"][-1], "bsvik": main["bsvik"][-1],
                "bsvik_opt": main["bsvik_opt"][-1],
                "bsvi_ge_svi": int((c["bsvik"][1:] >= c["svik"][1:]).sum()),
                "bsvi_opt_ge_svi": int((c["bsvik_opt"][1:] >= c["svik"][1:]).sum()),
                "svi_ge_svi0": int((c["svik"][1:] >= c["svi0"][1:]).sum())}
    ordering["held_at_k"] = bool(ordering["bsvik"] >= ordering["svik"] >= ordering["svi0"])
    res = {
        "settings": {**s, "k_prime": k + 1, "methods": [m[0] for m in methods], "dataset": data.name,
                     "n_train": len(data.train), "n_test_eval": len(x_test), "eval_steps": K,
                     "curve_steps": curve_k, "svi": svi, "wall_time_s": round(time.perf_counter() - t_all, 1)},
        "linear_gaussian": lg,
        "steps": list(range(curve_k + 1)),
        "svi0": main["svi0"], "svik": main["svik"], "bsvik": main["bsvik"], "bsvik_opt": main["bsvik_opt"],
        "ordering": ordering,
        "curves": curves,
        "svi_lr_sweep": sweep,
        "estimator_table": estimator_table,
        "training_table": training_table,
        "monitor": monitor,
        "histories": histories,
        "paper": PAPER,
    }
    res["findings"] = findings(res)
    res["book_summary"] = book_summary(res)
    return res


# Shu et al. 2019: k = 9 steps of SVI with lr 1.0 (for its gated PixelCNN decoders), and the test
# log-likelihoods of Table 1 on Omniglot (nats): BSVI-SIR > IWAE > SVI > VAE.
PAPER = {"source": "Shu et al. 2019, Table 1 (Omniglot, k = 9, gated PixelCNN decoder)", "k": 9, "svi_lr": 1.0,
         "log_likelihood": [{"method": "VAE", "nats": -89.83}, {"method": "IWAE-k'", "nats": -89.02},
                            {"method": "SVI-k'", "nats": -89.65}, {"method": "BSVI-k-SIR", "nats": -88.80}]}


def findings(res: dict) -> dict:
    """What `chapter 6 <https://gapkit.github.io/gapkit/notebooks/06_bsvi.html>`_
    states, decided from the numbers (nats).

    ``theorem1``: every bound of the linear-Gaussian check lies below log p(x) within Monte Carlo
    error (the largest (bound - log p(x)) / se below 3); ``svi_lr``: SVI-k - SVI-0 on the VAE at the
    paper's step size (None when not in the sweep); ``estimator``: the models whose BSVI-K is at
    least IWAE-5K; ``training``: BSVI-k-SIR's test log-likelihood minus SVI-k''s and IWAE-k''s (None
    when one of them was not trained), and the paper's IWAE gap.
    """
    s = res["settings"]
    k, kp = s["k"], s["k_prime"]
    sw = res["svi_lr_sweep"]
    d_lr = {lr: b - a for lr, a, b in zip(sw["lr"], sw["svi0"], sw["svik"])}
    est = res["estimator_table"]
    ll = {r["method"]: r["log_likelihood"] for r in res["training_table"]["rows"]}
    sir = f"BSVI-{k}-SIR"
    paper = {r["method"]: r["nats"] for r in PAPER["log_likelihood"]}

    def minus(other):
        return ll[sir] - ll[other] if sir in ll and other in ll else None
    return {"theorem1": {"below_log_px": res["linear_gaussian"]["max_z"] < 3},
            "svi_lr": {"paper_lr_minus_svi0": d_lr.get(PAPER["svi_lr"])},
            "estimator": {"bsvi_at_least_iwae_5K": [r["method"] for r in est["rows"] if r["bsvi"] >= r["iwae"][-1]]},
            "training": {"sir_minus_svi": minus(f"SVI-{kp}"), "sir_minus_iwae": minus(f"IWAE-{kp}"),
                         "paper_sir_minus_iwae": paper["BSVI-k-SIR"] - paper["IWAE-k'"]}}


def book_summary(res: dict) -> dict:
    """The book's summary panel: SVI-0, SVI-k and BSVI-k of the test images after k steps, and whether
    the ordering BSVI-k >= SVI-k >= SVI-0 held."""
    o = res["ordering"]
    k = o["k"]
    values = {"SVI-0 (encoder q)": o["svi0"], f"SVI-{k}": o["svik"], f"BSVI-{k}": o["bsvik"]}
    svik, bsvik = res["svik"][1:], res["bsvik"][1:]
    n_ge = sum(b >= s for b, s in zip(bsvik, svik))
    held = o["bsvik"] >= o["svik"] >= o["svi0"]
    finding = (f"After {k} SVI steps on test images ({o['model']}), BSVI-{k} is {o['bsvik'] - o['svik']:+.2f} nats "
               f"over SVI-{k}, which is {o['svik'] - o['svi0']:+.2f} over SVI-0: the ordering BSVI-k ≥ SVI-k ≥ SVI-0 "
               f"{'held' if held else 'did not hold'} at k={k}, and BSVI-k ≥ SVI-k at {n_ge} of {len(svik)} steps.")
    return {"title": "Buffered SVI: test bounds (higher is tighter)", "unit": "nats", "lower_is_better": False,
            "values": values, "finding": finding}
