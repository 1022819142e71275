"""Experiment ``reverse-half-asleep`` (Zhang et al. 2022, Figure 4, Table 1, Appendices B-D).

A VAE is trained on the preset's binarized MNIST by the ELBO (the "base" VAE, trained long enough on
a small enough set that its encoder overfits). Its decoder is then fixed and copies of its encoder
are trained further, post hoc, by :func:`gapkit.train.train` with

* reverse half-asleep for alpha in {0, 0.25, 0.5, 0.75, 1} and the sleep objective, over several
  seeds of the post-hoc training (Figure 4; alpha = 0 is more wake training, alpha = 1 reverse sleep);
* the denoising regularizer for sigma in {0.1, 0.2, 0.4, 0.8, 1.0} (Table 1).

Test BPD is recorded per epoch; Table 1 takes every row's final encoder (seed 0) and evaluates its
test ELBO with ``final_K`` samples. With ``grey=True`` Table 1's second row runs too: a base VAE on
``grey_train_subset`` grey MNIST images (8-bit pixels, discretized logistic decoder; None: the
preset's subset) for ``base_epochs``, then post-hoc encoders (wake, the denoising sigmas, reverse
half-asleep) for ``grey_epochs``, all evaluated at the end only. The discretized logistic costs about
twice the Bernoulli per image, so the book preset runs the grey row on half the images and half the
post-hoc epochs of the binary one to stay within the book's time budget. A classifier on
z ~ q(z|x) (Appendix B, :mod:`gapkit.analysis.classify`) is trained on the labelled training images
through the base encoder and through the post-hoc encoders of alpha = 0 and alpha = 0.5, once per
post-hoc seed (classifier seed = post-hoc seed). In the ``book`` and ``paper`` presets (or with
``extras=True``) also: the latent sizes of Appendix C (the preset's own latent size is the base run
itself, not trained again) and reverse half-asleep from the start of training (Appendix D), with
``from_start_seeds`` seeds (model initialisation and training order), compared with post-hoc reverse
half-asleep's final encoder of every post-hoc seed. Comparisons over seeds are
:func:`seed_difference` (the difference of means against the pooled seed standard deviation).
`Chapter 3 <https://gapkit.github.io/gapkit/notebooks/03_wake_sleep.html>`_.
"""
from __future__ import annotations

import copy
from dataclasses import replace

import torch
from ..progress import tqdm

from ..bounds import bpd
from ..analysis.classify import downstream_accuracy
from ..estimators import evaluate
from ..objectives import ELBO
from ..objectives import Denoising, ReverseHalfAsleep, Sleep
from ..train import _evaluate_into, train
from . import Context, experiment

SETTINGS = {
    "quick": dict(train_subset=None, base_epochs=40, epochs=8, lr=3e-3, eval_every=2, eval_K=2, seeds=2,
                  alphas=(0.0, 0.25, 0.5, 0.75, 1.0), sigmas=(0.2, 0.8), latent_source="prior",
                  final_K=10, classifier_epochs=3, classifier_K=10, extras=False, latents=(4, 8), grey=True,
                  grey_train_subset=None, grey_epochs=8, from_start_seeds=2),
    "book": dict(train_subset=2000, base_epochs=100, epochs=30, lr=1e-3, eval_every=2, eval_K=2, seeds=3,
                 alphas=(0.0, 0.25, 0.5, 0.75, 1.0), sigmas=(0.1, 0.2, 0.4, 0.8, 1.0), latent_source="prior",
                 final_K=20, classifier_epochs=10, classifier_K=100, extras=True, latents=(16, 64, 128), grey=True,
                 grey_train_subset=1000, grey_epochs=15, from_start_seeds=3),
    "paper": dict(train_subset=None, base_epochs=1000, epochs=100, lr=3e-4, eval_every=1, eval_K=10, seeds=3,
                  alphas=(0.0, 0.25, 0.5, 0.75, 1.0), sigmas=(0.1, 0.2, 0.4, 0.8, 1.0), latent_source="prior",
                  final_K=100, classifier_epochs=10, classifier_K=100, extras=True, latents=(16, 64, 128), grey=True,
                  grey_train_subset=None, grey_epochs=100, from_start_seeds=3),
}

# The extra seeds chapter 3 runs as a grid for Table 1 (binary) and Figure 4 over base-VAE seeds: two
# at the quick preset, one at the book preset (the cold book build must stay within 25 minutes), two
# at the paper preset (three seeds, as the paper's Figure 6). Each cell is one post-hoc seed, no grey
# row and no extras (Appendices C and D: the main run measures Appendix D over its own seeds).
EXTRA_SEEDS = {"quick": [1, 2], "book": [1], "paper": [1, 2]}
SEED_GRID = {"seeds": [1], "extras": [False], "grey": [False]}



def alpha_key(alpha: float) -> str:
    return f"alpha={alpha:g}"


def posthoc(base, data, objective, cfg, out_dir=None):
    """Train a copy of ``base`` with ``objective`` (decoder fixed); history with epoch 0 = the base.

    With ``out_dir`` the training keeps a checkpoint of its last epoch there, so a run stopped later
    reloads the trained encoder instead of training it again."""
    model = copy.deepcopy(base)
    h0: dict = {}
    _evaluate_into(h0, model, data, cfg, 0, model.device)  # the loop's own evaluation, at epoch 0
    if out_dir is not None:
        cfg = replace(cfg, checkpoint_every=cfg.epochs)
    h = train(model, data, objective, cfg, out_dir=out_dir)
    curve = {k: h0[k] + h[k] for k in ("epoch", "test_bpd", "train_bpd")}
    return model, curve


def final_bpd(model, data, K: int, seed: int) -> float:
    """Test ELBO (BPD), each image's ELBO averaged over K samples."""
    g = torch.Generator(device=data.test.device).manual_seed(seed)
    return float(bpd(evaluate(model, data.fixed("test", seed), "elbo", K, generator=g).mean(), data.dim))


def _train_base(ctx, data, s, latent=None, objective=None, tag="base", curve=True):
    """A VAE of the preset (``latent`` changed) trained for ``base_epochs`` from ``ctx.seed``'s
    initialisation; ``curve=False`` evaluates only after the last epoch."""
    changes = {} if latent is None else {"latent": latent}
    model = ctx.model(data, **changes)
    every = max(1, s["base_epochs"] // 10) if curve else s["base_epochs"]
    cfg = ctx.train_config(epochs=s["base_epochs"], eval_every=every,
                           eval_K=s["eval_K"], checkpoint_every=s["base_epochs"])
    h = train(model, data, objective or ELBO(), cfg, out_dir=ctx.out / tag)
    return model, {k: h[k] for k in ("epoch", "test_bpd", "train_bpd")}


@experiment("reverse-half-asleep", "Figure 4 and Table 1: post-hoc encoder training by reverse half-asleep "
            "(alpha), sleep and the denoising regularizer; downstream classifier", chapter="03_wake_sleep",
            cost={"quick": "30 s CPU", "book": "7 min CPU"}, settings=SETTINGS)
def reverse_half_asleep(ctx: Context) -> dict:
    s = ctx.settings
    data = ctx.data(train_subset=s["train_subset"])
    base, base_curve = _train_base(ctx, data, s)
    for p in base.decoder_parameters():
        p.requires_grad_(False)  # the decoder is fixed from here on (the objectives return decoder=None too)
    cfg = ctx.train_config(epochs=s["epochs"], lr=s["lr"], eval_every=s["eval_every"], eval_K=s["eval_K"],
                           checkpoint_every=0)
    seeds = [ctx.seed + i for i in range(s["seeds"])]
    runs = [(alpha_key(a), lambda a=a: ReverseHalfAsleep(a, latent=s["latent_source"])) for a in s["alphas"]]
    alphas = {alpha_key(a): a for a in s["alphas"]}
    runs.append(("sleep", lambda: Sleep(latent=s["latent_source"])))
    methods, encoders = {"reverse_half_asleep": [], "sleep": None, "denoising": []}, {}
    by_seed = {alpha_key(0.0): {}, alpha_key(0.5): {}}  # every post-hoc seed's encoder (Appendices B, D)
    bar = tqdm(total=len(runs) * len(seeds) + len(s["sigmas"]), desc="post-hoc encoders", disable=not ctx.progress)
    for name, make in runs:
        per_seed = []
        for sd in seeds:
            model, curve = posthoc(base, data, make(), replace(cfg, seed=sd, progress=False),
                                   out_dir=ctx.out / "posthoc" / name / f"seed{sd}")
            per_seed.append(curve)
            if sd == seeds[0]:
                encoders[name] = model
            if name in by_seed:
                by_seed[name][sd] = model
            bar.update()
        row = {"epochs": per_seed[0]["epoch"], "seeds": seeds, "test_bpd": [c["test_bpd"] for c in per_seed],
               "train_bpd": [c["train_bpd"] for c in per_seed]}
        if name == "sleep":
            methods["sleep"] = row
        else:
            methods["reverse_half_asleep"].append({"alpha": alphas[name], **row})
    for sigma in s["sigmas"]:
        name = f"denoising sigma={sigma:g}"
        model, curve = posthoc(base, data, Denoising(sigma), replace(cfg, progress=False),
                               out_dir=ctx.out / "posthoc" / name.replace(" ", "_"))
        encoders[name] = model
        methods["denoising"].append({"sigma": sigma, "epochs": curve["epoch"], "seeds": [ctx.seed],
                                     "test_bpd": [curve["test_bpd"]], "train_bpd": [curve["train_bpd"]]})
        bar.update()
    bar.close()

    # Table 1: every row's final encoder (seed 0), test ELBO with final_K samples per image.
    K, ev = s["final_K"], ctx.seed + 7
    rhs = alpha_key(0.5)
    rows = [("VAE (base, as trained)", base), ("VAE + wake post hoc (alpha=0)", encoders[alpha_key(0.0)])]
    rows += [(f"denoising sigma={sg:g}", encoders[f"denoising sigma={sg:g}"]) for sg in s["sigmas"]]
    rows += [("reverse half-asleep (alpha=0.5)", encoders[rhs]), ("sleep", encoders["sleep"])]
    # Table 1 and Appendix B are stages: a run stopped later resumes after them.
    table = _table1(ctx, "table 1", rows, data, s)

    # Appendix B: downstream classification through each encoder, once per post-hoc seed (the
    # classifier's seed is the post-hoc seed; the base encoder is the same for every seed).
    ce, cK = s["classifier_epochs"], s["classifier_K"]
    encs = ((BASE_ENC, {sd: base for sd in seeds}), (WAKE_ENC, by_seed[alpha_key(0.0)]), (RHS_ENC, by_seed[rhs]))

    def accuracies(models):
        st = _stats([downstream_accuracy(models[sd], data, epochs=ce, K=cK, seed=sd) for sd in seeds])
        return {"accuracy": st["mean"], "std": st["std"], "per_seed": st["per_seed"]}
    classifier = ctx.stage("classifier", lambda: [{"encoder": n, **accuracies(m)} for n, m in encs])

    out = {"settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.items()},
           "dataset": {"name": data.name, "binarization": data.binarization, "n_train": len(data.train),
                       "n_test": len(data.test)},
           "base": base_curve, "methods": methods, "table1": {"K": K, "rows": table},
           "classifier": {"K": cK, "seeds": seeds, "rows": classifier}, "paper": PAPER}
    if s["grey"]:
        out["grey"] = _grey(ctx, s, cfg)
    if s["extras"]:
        rhs_seeds = ctx.stage("post hoc over seeds", lambda: [final_bpd(by_seed[rhs][sd], data, K, ev)
                                                              for sd in seeds])
        out["extras"] = _extras(ctx, data, s, cfg, table[0]["test_bpd"], base=base,
                                post_hoc={BASE: table[0]["test_bpd"], WAKE: table[1]["test_bpd"],
                                          RHS: table[[r["method"] for r in table].index(RHS)]["test_bpd"]},
                                rhs_over_seeds={"seeds": seeds, "test_bpd": rhs_seeds})
    out["findings"] = findings(out)
    out["book_summary"] = book_summary(out)
    return out


# Zhang et al. 2022, Table 1 (binarized and grey MNIST, all 60,000 images, 1000 epochs): test BPD.
PAPER = {"source": "Zhang et al. 2022, Table 1 (1000 epochs, all 60,000 images)",
         "table1": {"VAE": 0.200, "best denoising": 0.191, "reverse half-asleep": 0.187},
         "table1_grey": {"VAE": 1.543, "best denoising": 1.515, "reverse half-asleep": 1.513}}
RHS, WAKE, BASE = "reverse half-asleep (alpha=0.5)", "VAE + wake post hoc (alpha=0)", "VAE (base, as trained)"
# Appendix B's encoders
RHS_ENC, WAKE_ENC, BASE_ENC = "reverse half-asleep (alpha=0.5)", "wake post hoc (alpha=0)", "VAE (base)"


def post_hoc(res: dict, alpha: float) -> dict:
    """The post-hoc run of reverse half-asleep at ``alpha`` in ``res["methods"]``."""
    runs = res["methods"]["reverse_half_asleep"]
    for r in runs:
        if r["alpha"] == alpha:
            return r
    raise KeyError(f"no reverse half-asleep run with alpha={alpha!r}; valid alphas: {[r['alpha'] for r in runs]}")


def findings(res: dict) -> dict:
    """What `chapter 3 <https://gapkit.github.io/gapkit/notebooks/03_wake_sleep.html>`_
    states about reverse half-asleep, decided from the numbers.

    ``figure4``: the final test BPD per alpha (mean over seeds, ``final``) and sleep's, the best, and
    whether alpha = 0.5 beats alpha = 0 and alpha = 1 and sleep is the worst; ``table1`` (and
    ``table1_grey`` when the grey row ran): :func:`table1_findings`; ``classifier``: the accuracy
    differences (means over post-hoc seeds) of reverse half-asleep to the base encoder and to wake
    post hoc, each also as :func:`seed_difference` (``vs_base``, ``vs_wake_post_hoc``); ``extras``
    (when run): the latent sizes at which alpha = 0.5 beats alpha = 0, and whether training by it from
    the start beats the VAE and post-hoc reverse half-asleep (means over seeds, and as
    :func:`seed_difference`: ``from_start_vs_vae``, ``from_start_vs_post_hoc``).
    """
    import numpy as np
    m = res["methods"]
    fin = {a["alpha"]: float(np.mean([c[-1] for c in a["test_bpd"]])) for a in m["reverse_half_asleep"]}
    sleep = float(np.mean([c[-1] for c in m["sleep"]["test_bpd"]]))
    allv = {**{f"alpha={a:g}": v for a, v in fin.items()}, "sleep": sleep}
    out = {"figure4": {"alpha": list(fin), "final": list(fin.values()), "sleep_final": sleep,
                       "best": min(allv, key=allv.get),
                       "half_beats_wake": fin.get(0.5, np.inf) < fin.get(0.0, -np.inf),
                       "half_beats_reverse_sleep": fin.get(0.5, np.inf) < fin.get(1.0, -np.inf),
                       "sleep_worst": max(allv, key=allv.get) == "sleep"}}
    t = {r["method"]: r["test_bpd"] for r in res["table1"]["rows"]}
    out["table1"] = table1_findings(res["table1"]["rows"])
    if "grey" in res:
        out["table1_grey"] = table1_findings(res["grey"]["table1"]["rows"])
    acc = {r["encoder"]: r["per_seed"] for r in res["classifier"]["rows"]}
    vs_base = seed_difference(acc[RHS_ENC], acc[BASE_ENC])
    vs_wake = seed_difference(acc[RHS_ENC], acc[WAKE_ENC])
    out["classifier"] = {"minus_base": vs_base["difference"], "minus_wake_post_hoc": vs_wake["difference"],
                         "vs_base": vs_base, "vs_wake_post_hoc": vs_wake}
    if "extras" in res:
        ex = res["extras"]
        fs = ex["from_start"]
        def at(r, alpha):
            return r["post_hoc"][r["alpha"].index(alpha)]
        starts, post = fs["over_seeds"]["from_start"]["test_bpd"], fs["over_seeds"]["post_hoc"]["test_bpd"]
        vs_vae = seed_difference(starts, [fs["vae_test_bpd"]], lower_is_better=True)
        vs_post = seed_difference(starts, post, lower_is_better=True)
        out["extras"] = {"half_beats_wake_at_latents": [r["latent"] for r in ex["latent_sizes"] if at(r, 0.5) < at(r, 0.0)],
                         "from_start_beats_vae": vs_vae["difference"] < 0,
                         "from_start_beats_post_hoc": vs_post["difference"] < 0,
                         "from_start_vs_vae": vs_vae, "from_start_vs_post_hoc": vs_post}
    return out


def table1_findings(rows: list[dict]) -> dict:
    """Table 1's orderings from its rows (``{"method", "test_bpd"}``): the best denoising setting,
    whether reverse half-asleep beats it (so every denoising setting) and whether it beats the VAE."""
    t = {r["method"]: r["test_bpd"] for r in rows}
    den = {k: v for k, v in t.items() if k.startswith("denoising")}
    best_den = min(den, key=den.get) if den else None
    return {"best_denoising": best_den,
            "beats_every_denoising": bool(den) and t[RHS] < den[best_den],
            "best_denoising_beats_vae": bool(den) and den[best_den] < t[BASE]}


def _stats(values) -> dict:
    """Mean, sample standard deviation (ddof=1; None for one value) and count of per-seed values."""
    import numpy as np
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else None, "n": int(a.size),
            "per_seed": a.tolist()}


def seed_difference(a, b, lower_is_better: bool = False) -> dict:
    """Whether the per-seed values ``a`` beat ``b`` by more than seed noise.

    d = mean(a) - mean(b); the pooled seed standard deviation
    s_p = sqrt(((n_a - 1) s_a^2 + (n_b - 1) s_b^2) / (n_a + n_b - 2)), s the sample standard deviation
    (ddof=1) over each group's seeds, so a group of one seed adds nothing to it (None when both have
    one). ``outcome``: ``"better"`` when a beats b by more than s_p (d < -s_p when lower is better,
    d > s_p otherwise), ``"worse"`` when b beats a by more than s_p, ``"within seed noise"`` when
    |d| <= s_p; with no spread (one seed each) the sign of d alone decides and ``pooled_std`` is None.
    """
    import math
    sa, sb = _stats(a), _stats(b)
    d = sa["mean"] - sb["mean"]
    dof = sa["n"] + sb["n"] - 2
    sp = (math.sqrt(((sa["n"] - 1) * (sa["std"] or 0.0) ** 2 + (sb["n"] - 1) * (sb["std"] or 0.0) ** 2) / dof)
          if dof > 0 else None)
    gain = -d if lower_is_better else d   # > 0: a is better
    if sp is not None and abs(d) <= sp:
        outcome = "within seed noise"
    else:
        outcome = "better" if gain > 0 else "worse"
    return {"a": sa, "b": sb, "difference": d, "pooled_std": sp, "outcome": outcome}


def book_summary(res: dict) -> dict:
    """The book's summary panel: Table 1's test BPD of the base VAE, wake post hoc, reverse
    half-asleep, sleep and the best denoising setting."""
    rows = {r["method"]: r["test_bpd"] for r in res["table1"]["rows"]}

    def better(d):
        return f"{abs(d):.4f} BPD {'lower' if d < 0 else 'higher'}"
    values = {"base VAE": rows[BASE], "wake post hoc (α=0)": rows[WAKE], "reverse half-asleep (α=0.5)": rows[RHS],
              "sleep": rows["sleep"]}
    den = [k for k in rows if k.startswith("denoising")]
    if den:
        d = min(den, key=rows.get)
        values[f"best {d.replace('sigma', 'σ')}"] = rows[d]
    best = min(values, key=values.get)
    finding = (f"Training the encoder post hoc with half its batch from the model (α=0.5) gives a test -ELBO "
               f"{better(rows[RHS] - rows[WAKE])} than with real images only (α=0) and "
               f"{better(rows[RHS] - rows['sleep'])} than sleep; the best row is {best}.")
    return {"title": f"Reverse half-asleep: test negative ELBO (K={res['table1']['K']})", "unit": "BPD",
            "lower_is_better": True, "values": values, "finding": finding}


def _table1(ctx, stage, rows, data, s) -> list:
    """A Table 1 stage: each row's (name, model) test ELBO in BPD with ``final_K`` samples, all drawn
    from the seed ``ctx.seed + 7`` (:func:`final_bpd`); a run stopped later resumes after it."""
    K, ev = s["final_K"], ctx.seed + 7
    return ctx.stage(stage, lambda: [{"method": n, "test_bpd": final_bpd(m, data, K, ev)} for n, m in rows])


def _grey(ctx, s, cfg):
    """Table 1's grey MNIST row: a base VAE (discretized logistic decoder) trained for ``base_epochs``
    on ``grey_train_subset`` images, then post hoc for ``grey_epochs``, decoder fixed, by wake
    (alpha = 0), the denoising regularizer at each sigma (noise on the encoder's [0, 1] pixels) and
    reverse half-asleep (alpha = 0.5), each evaluated after its last epoch only; every row's test ELBO
    with ``final_K`` samples, as in the binary row."""
    data = ctx.data(train_subset=s["grey_train_subset"] or s["train_subset"], binarization="grey")
    base, curve = _train_base(ctx, data, s, tag="grey/base", curve=False)
    for p in base.decoder_parameters():
        p.requires_grad_(False)
    # no curves: the table needs the last epoch only
    end = replace(cfg, epochs=s["grey_epochs"], eval_every=s["grey_epochs"], progress=False)
    runs = [(WAKE, "wake", ReverseHalfAsleep(0.0, latent=s["latent_source"]))]
    runs += [(f"denoising sigma={sg:g}", f"denoising_sigma={sg:g}", Denoising(sg)) for sg in s["sigmas"]]
    runs += [(RHS, alpha_key(0.5), ReverseHalfAsleep(0.5, latent=s["latent_source"]))]
    rows = [(BASE, base)]
    for name, folder, objective in tqdm(runs, desc="grey post-hoc encoders", disable=not ctx.progress):
        model, _ = posthoc(base, data, objective, end, out_dir=ctx.out / "grey" / "posthoc" / folder)
        rows.append((name, model))
    table = _table1(ctx, "table 1 grey", rows, data, s)
    return {"dataset": {"name": data.name, "binarization": data.binarization, "n_train": len(data.train),
                        "n_test": len(data.test)},
            "base": curve, "table1": {"K": s["final_K"], "rows": table}}


def _extras(ctx, data, s, cfg, base_bpd, base, post_hoc, rhs_over_seeds):
    """Appendix C (latent sizes, post hoc alpha = 0 vs 0.5) and Appendix D (from the start of training,
    ``from_start_seeds`` seeds, against the post-hoc runs ``rhs_over_seeds``).

    At the preset's own latent size the base VAE and its post-hoc runs of seed ``ctx.seed`` are the
    very runs of Table 1 (same model, seed, data and settings), so their BPDs ``post_hoc`` are reused."""
    K, ev = s["final_K"], ctx.seed + 7
    latents = []
    for z in s["latents"]:
        if z == base.z_dim:
            latents.append({"latent": z, "vae": post_hoc[BASE], "alpha": [0.0, 0.5],
                            "post_hoc": [post_hoc[WAKE], post_hoc[RHS]]})
            continue
        vae, _ = _train_base(ctx, data, s, latent=z, tag=f"base_z{z}")
        for p in vae.decoder_parameters():
            p.requires_grad_(False)
        row = {"latent": z, "vae": final_bpd(vae, data, K, ev), "alpha": [0.0, 0.5], "post_hoc": []}
        for a in row["alpha"]:
            m, _ = posthoc(vae, data, ReverseHalfAsleep(a, latent=s["latent_source"]), cfg,
                           out_dir=ctx.out / "posthoc" / f"latent{z}" / alpha_key(a))
            row["post_hoc"].append(final_bpd(m, data, K, ev))
        latents.append(row)
    seeds = [ctx.seed + i for i in range(s["from_start_seeds"])]
    starts = []
    for i, sd in enumerate(seeds):   # the first seed keeps its curve; the others are evaluated at the end
        model, c = _train_base(replace(ctx, seed=sd), data, s, curve=i == 0,
                               objective=ReverseHalfAsleep(0.5, latent=s["latent_source"], train_decoder=True),
                               tag="from_start" if i == 0 else f"from_start_seed{sd}")
        starts.append(model)
        curve = c if i == 0 else curve
    bpds = ctx.stage("from start", lambda: [final_bpd(m, data, K, ev) for m in starts])
    return {"latent_sizes": latents,
            "from_start": {"curve": curve, "test_bpd": bpds[0], "vae_test_bpd": base_bpd,
                           "over_seeds": {"from_start": {"seeds": seeds, "test_bpd": bpds},
                                          "post_hoc": rhs_over_seeds}}}


def over_seeds(results: list[dict]) -> dict:
    """Figure 4, Table 1 and Appendix D over runs of this experiment with different seeds (e.g. this
    run and the cells of a seed grid, :func:`gapkit.grid.run_grid`): for each, the mean, standard
    deviation (numpy, ddof=0) and count over seeds, and in how many seeds each of the paper's
    orderings holds. Each run contributes its first post-hoc seed, so that every seed is one base VAE
    and one post-hoc training."""
    import numpy as np

    def stats(v):
        a = np.asarray(v, dtype=float)
        return {"mean": float(a.mean()), "std": float(a.std()), "n": int(a.size), "values": a.tolist()}
    seeds = [r["config"]["seed"] for r in results]
    methods = [row["method"] for row in results[0]["table1"]["rows"]]
    t1 = {m: [next(row["test_bpd"] for row in r["table1"]["rows"] if row["method"] == m) for r in results]
          for m in methods}
    alphas = [alpha_key(a["alpha"]) for a in results[0]["methods"]["reverse_half_asleep"]] + ["sleep"]
    fin = {a: [(r["methods"]["sleep"] if a == "sleep" else post_hoc(r, float(a[len("alpha="):])))["test_bpd"][0][-1]
               for r in results] for a in alphas}
    rhs, wake = "reverse half-asleep (alpha=0.5)", "VAE + wake post hoc (alpha=0)"
    den = [m for m in methods if m.startswith("denoising")]
    holds = {
        "reverse half-asleep beats every denoising setting":
            sum(t1[rhs][i] < min(t1[d][i] for d in den) for i in range(len(results))) if den else None,
        "reverse half-asleep beats the same wake training": sum(t1[rhs][i] < t1[wake][i] for i in range(len(results))),
        "alpha = 0.5 is the best alpha": sum(min((a for a in alphas if a != "sleep"), key=lambda a: fin[a][i]) == "alpha=0.5"
                                             for i in range(len(results))),
    }
    out = {"seeds": seeds, "n": len(results),
           "table1": [{"method": m, **stats(t1[m])} for m in methods],
           "figure4_final": {"alpha": [a["alpha"] for a in results[0]["methods"]["reverse_half_asleep"]],
                             "final": [stats(fin[a]) for a in alphas if a != "sleep"], "sleep": stats(fin["sleep"])},
           "holds_in_seeds": holds}
    if all("extras" in r for r in results):
        diff = [r["extras"]["from_start"]["test_bpd"] - next(row["test_bpd"] for row in r["table1"]["rows"]
                                                             if row["method"] == rhs)
                for r in results]
        out["from_start_minus_post_hoc"] = stats(diff)
        out["holds_in_seeds"]["from the start beats post hoc"] = sum(d < 0 for d in diff)
    return out
