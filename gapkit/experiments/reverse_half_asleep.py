"""Experiment ``reverse-half-asleep`` (Zhang et al. 2022, Figure 4, Table 1, Appendices B-D).

A VAE is trained on the preset's binarized MNIST by the ELBO (the "base" VAE, trained long enough on
a small enough set that its encoder overfits). Its decoder is then fixed and copies of its encoder
are trained further, post hoc, by :func:`gapkit.train.train` with

* reverse half-asleep for alpha in {0, 0.25, 0.5, 0.75, 1} and the sleep objective, over several
  seeds of the post-hoc training (Figure 4; alpha = 0 is more wake training, alpha = 1 reverse sleep);
* the denoising regularizer for sigma in {0.1, 0.2, 0.4, 0.8, 1.0} (Table 1).

Test BPD is recorded per epoch; Table 1 takes every row's final encoder (seed 0) and evaluates its
test ELBO with ``final_K`` samples. A classifier on z ~ q(z|x) (Appendix B, :mod:`gapkit.classify`)
is trained on the labelled training images through the base encoder and through the post-hoc
encoders of alpha = 0 and alpha = 0.5. In the ``book`` and ``paper`` presets (or with ``extras=True``) also: the
latent sizes of Appendix C and reverse half-asleep from the start of training (Appendix D).
Chapter 3 (``notebooks/03_wake_sleep``).
"""
from __future__ import annotations

import copy
from dataclasses import replace

import torch
from ..progress import tqdm

from ..bounds import bpd
from ..classify import downstream_accuracy
from ..estimators import evaluate
from ..objectives import ELBO
from ..sleep import Denoising, ReverseHalfAsleep, Sleep
from ..train import _evaluate_into, train
from . import Context, experiment

SETTINGS = {
    "quick": dict(train_subset=None, base_epochs=40, epochs=8, lr=3e-3, eval_every=2, eval_K=2, seeds=2,
                  alphas=(0.0, 0.25, 0.5, 0.75, 1.0), sigmas=(0.2, 0.8), latent_source="prior",
                  final_K=10, classifier_epochs=3, classifier_K=10, extras=False, latents=(4, 8)),
    "book": dict(train_subset=2000, base_epochs=100, epochs=30, lr=1e-3, eval_every=2, eval_K=2, seeds=3,
                 alphas=(0.0, 0.25, 0.5, 0.75, 1.0), sigmas=(0.1, 0.2, 0.4, 0.8, 1.0), latent_source="prior",
                 final_K=20, classifier_epochs=10, classifier_K=100, extras=True, latents=(16, 64, 128)),
    "paper": dict(train_subset=None, base_epochs=1000, epochs=100, lr=3e-4, eval_every=1, eval_K=10, seeds=3,
                  alphas=(0.0, 0.25, 0.5, 0.75, 1.0), sigmas=(0.1, 0.2, 0.4, 0.8, 1.0), latent_source="prior",
                  final_K=100, classifier_epochs=10, classifier_K=100, extras=True, latents=(16, 64, 128)),
}

# The extra seeds chapter 3 runs as a grid (one post-hoc seed each, no latent-size sweep) for Table 1,
# Figure 4 and Appendix D over seeds: two at the quick preset, one at the book preset (the cold book
# build must stay within 25 minutes), two at the paper preset (three seeds, as the paper's Figure 6).
EXTRA_SEEDS = {"quick": [1, 2], "book": [1], "paper": [1, 2]}



def alpha_key(alpha: float) -> str:
    return f"alpha={alpha:g}"


def posthoc(base, data, objective, cfg):
    """Train a copy of ``base`` with ``objective`` (decoder fixed); history with epoch 0 = the base."""
    model = copy.deepcopy(base)
    h0: dict = {}
    _evaluate_into(h0, model, data, cfg, 0, model.device)  # the loop's own evaluation, at epoch 0
    h = train(model, data, objective, cfg)
    curve = {k: h0[k] + h[k] for k in ("epoch", "test_bpd", "train_bpd")}
    return model, curve


def final_bpd(model, data, K: int, seed: int) -> float:
    """Test ELBO (BPD), each image's ELBO averaged over K samples."""
    g = torch.Generator(device=data.test.device).manual_seed(seed)
    return float(bpd(evaluate(model, data.fixed("test", seed), "elbo", K, generator=g).mean(), data.dim))


def _train_base(ctx, data, s, latent=None, objective=None, tag="base"):
    changes = {} if latent is None else {"latent": latent}
    model = ctx.model(data, **changes)
    cfg = ctx.train_config(epochs=s["base_epochs"], eval_every=max(1, s["base_epochs"] // 10),
                           eval_K=s["eval_K"], checkpoint_every=s["base_epochs"])
    h = train(model, data, objective or ELBO(), cfg, out_dir=ctx.out / tag)
    return model, {k: h[k] for k in ("epoch", "test_bpd", "train_bpd")}


@experiment("reverse-half-asleep", "Figure 4 and Table 1: post-hoc encoder training by reverse half-asleep "
            "(alpha), sleep and the denoising regularizer; downstream classifier", chapter="03_wake_sleep",
            cost={"quick": "30 s CPU", "book": "4-5 min CPU"}, settings=SETTINGS)
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
    runs.append(("sleep", lambda: Sleep(latent=s["latent_source"])))
    methods, encoders = {}, {}
    bar = tqdm(total=len(runs) * len(seeds) + len(s["sigmas"]), desc="post-hoc encoders", disable=not ctx.progress)
    for name, make in runs:
        per_seed = []
        for sd in seeds:
            model, curve = posthoc(base, data, make(), replace(cfg, seed=sd, progress=False))
            per_seed.append(curve)
            if sd == seeds[0]:
                encoders[name] = model
            bar.update()
        methods[name] = {"epochs": per_seed[0]["epoch"], "seeds": seeds,
                         "test_bpd": [c["test_bpd"] for c in per_seed],
                         "train_bpd": [c["train_bpd"] for c in per_seed]}
    for sigma in s["sigmas"]:
        name = f"denoising sigma={sigma:g}"
        model, curve = posthoc(base, data, Denoising(sigma), replace(cfg, progress=False))
        encoders[name] = model
        methods[name] = {"epochs": curve["epoch"], "seeds": [ctx.seed], "test_bpd": [curve["test_bpd"]],
                         "train_bpd": [curve["train_bpd"]]}
        bar.update()
    bar.close()

    # Table 1: every row's final encoder (seed 0), test ELBO with final_K samples per image.
    K, ev = s["final_K"], ctx.seed + 7
    rhs = alpha_key(0.5)
    rows = [("VAE (base, as trained)", base), ("VAE + wake post hoc (alpha=0)", encoders[alpha_key(0.0)])]
    rows += [(f"denoising sigma={sg:g}", encoders[f"denoising sigma={sg:g}"]) for sg in s["sigmas"]]
    rows += [("reverse half-asleep (alpha=0.5)", encoders[rhs]), ("sleep", encoders["sleep"])]
    table = [{"method": n, "test_bpd": final_bpd(m, data, K, ev)} for n, m in rows]

    # Appendix B: downstream classification through each encoder.
    ce, cK = s["classifier_epochs"], s["classifier_K"]
    classifier = {n: downstream_accuracy(m, data, epochs=ce, K=cK, seed=ctx.seed)
                  for n, m in (("VAE (base)", base), ("wake post hoc (alpha=0)", encoders[alpha_key(0.0)]),
                               ("reverse half-asleep (alpha=0.5)", encoders[rhs]))}

    out = {"settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.items()},
           "dataset": {"name": data.name, "binarization": data.binarization, "n_train": len(data.train),
                       "n_test": len(data.test)},
           "base": base_curve, "methods": methods, "table1": table,
           "table1_K": K, "classifier": classifier, "classifier_K": cK}
    if s["extras"]:
        out["extras"] = _extras(ctx, data, s, cfg, table[0]["test_bpd"])
    return out


def _extras(ctx, data, s, cfg, base_bpd):
    """Appendix C (latent sizes, post hoc alpha = 0 vs 0.5) and Appendix D (from the start of training)."""
    K, ev = s["final_K"], ctx.seed + 7
    latents = {}
    for z in s["latents"]:
        base, _ = _train_base(ctx, data, s, latent=z, tag=f"base_z{z}")
        for p in base.decoder_parameters():
            p.requires_grad_(False)
        row = {"VAE": final_bpd(base, data, K, ev)}
        for a in (0.0, 0.5):
            m, _ = posthoc(base, data, ReverseHalfAsleep(a, latent=s["latent_source"]), cfg)
            row[alpha_key(a)] = final_bpd(m, data, K, ev)
        latents[str(z)] = row
    start, curve = _train_base(ctx, data, s, objective=ReverseHalfAsleep(0.5, latent=s["latent_source"],
                                                                         train_decoder=True), tag="from_start")
    return {"latent_sizes": latents,
            "from_start": {"curve": curve, "test_bpd": final_bpd(start, data, K, ev), "VAE test_bpd": base_bpd}}


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
    methods = [row["method"] for row in results[0]["table1"]]
    t1 = {m: [next(row["test_bpd"] for row in r["table1"] if row["method"] == m) for r in results] for m in methods}
    alphas = [k for k in results[0]["methods"] if k.startswith("alpha=")] + ["sleep"]
    fin = {a: [r["methods"][a]["test_bpd"][0][-1] for r in results] for a in alphas}
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
           "figure4_final": {a: stats(fin[a]) for a in alphas},
           "holds_in_seeds": holds}
    if all("extras" in r for r in results):
        diff = [r["extras"]["from_start"]["test_bpd"] - next(row["test_bpd"] for row in r["table1"] if row["method"] == rhs)
                for r in results]
        out["from_start_minus_post_hoc"] = stats(diff)
        out["holds_in_seeds"]["from the start beats post hoc"] = sum(d < 0 for d in diff)
    return out
