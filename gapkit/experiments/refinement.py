"""Experiment ``refinement``: the amortization gap, refinement curves and training with refinement.

On one VAE trained with the ELBO (training and test data):

* ``amortization_gap``: the encoder's ELBO against per-point optimal inference
  (:func:`gapkit.optimal.per_point`, the best diagonal Gaussian for every point) on *training*
  images, in nats; ``inference_generalization_gap``: the same on *test* images (chapter 2's gap).
  ``gaps`` holds the ELBOs behind them, plus what test-time refinement recovers.
* Refinement curves (Hjelm et al. 2016, supplement Figure 1): :func:`gapkit.refine.refine` from the
  encoder's q (and from the prior N(0, I)) for 0..``curve_steps`` steps; at each step in ``steps``
  the mean ELBO (``elbo_train``/``elbo_test``, nats) and the mean normalized effective sample size
  (``ess_train``/``ess_test``) of ``eval_samples`` importance weights from q_i; ``*_prior`` keys
  for the start at the prior.
* Training with refinement (GDIR / SVI training, :class:`gapkit.refine.GDIR`) against the plain VAE,
  same architecture, data and epochs: ``table`` -> ``vae``/``gdir`` -> ``bound`` (negative ELBO),
  ``nll`` (negative IWAE-K), and the same with test-time refinement (``bound_refined``,
  ``nll_refined``), all in nats on test images, lower is better; ``paper_table1`` holds Hjelm et al.'s
  numbers (MNIST, 200 Gaussian latents) for comparison.
* ``widget``: a small 2-D-latent VAE on the 8x8 digits (quick scale) for the chapter's widget.

Chapter 5 (``notebooks/05_iterative_refinement``) shows all of it.
"""
from __future__ import annotations

import time

import torch
from ..progress import tqdm

from ..bounds import ess
from ..estimators import evaluate, log_weights
from ..io import load_checkpoint
from ..models import build_model
from ..objectives import ELBO
from ..optimal import per_point
from ..refine import GDIR, refine
from ..train import train
from . import Context, experiment

# Test-time refinement (curves and table): momentum SGD with per-point sums (see gapkit.refine).
REFINE = dict(optimizer="momentum", lr=0.1, momentum=0.5, samples=20, clip=1.0)
SETTINGS = {
    "quick": dict(changes=dict(epochs=30, checkpoint_every=30), n_curve=100, eval_samples=100, n_gap=200,
                  optimal_steps=200, optimal_lr=1e-2, n_table=250, nll_K=100, test_steps=50,
                  train_refine=dict(steps=3, samples=2), refine=REFINE),
    "book": dict(changes={}, n_curve=200, eval_samples=100, n_gap=500, optimal_steps=300,
                 optimal_lr=1e-2, n_table=500, nll_K=1000, test_steps=50,
                 train_refine=dict(steps=5, samples=4), refine=REFINE),
    "paper": dict(changes={}, n_curve=10000, eval_samples=100, n_gap=10000, optimal_steps=1000,
                  optimal_lr=1e-2, n_table=10000, nll_K=5000, test_steps=50,
                  train_refine=dict(steps=20, samples=20), refine=REFINE),
}
CURVE_STEPS = [0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 35, 40, 45, 50]
# Hjelm et al. 2016, supplement Table 1 (MNIST, 200 Gaussian latents): negative bound / NLL, nats.
PAPER_TABLE1 = {"vae": {"bound": 94.48, "nll": 89.31}, "vae_refined": {"bound": 90.57, "nll": 88.53},
                "gdir": {"bound": 90.60, "nll": 88.54}}


@torch.no_grad()
def curve(model, x, traj, steps, K, generator):
    """Mean ELBO (nats) and mean normalized ESS of K fresh weights from q_i at each step i."""
    elbo, ss = [], []
    for i in steps:                                                          # a few steps, not points
        lw = log_weights(model, x, K, q=traj.at(i), generator=generator)     # (K, B)
        elbo.append(lw.mean().item())
        ss.append(ess(lw).mean().item())
    return elbo, ss


def refined_q(model, x, steps, settings, seed, batch=1000):
    """(mu, std) after ``steps`` refinement steps from the encoder, in batches of images."""
    g = torch.Generator(device=x.device).manual_seed(seed)
    mus, stds = [], []
    for s in range(0, len(x), batch):                                        # memory, not per point
        t = refine(model, x[s:s + batch], steps, generator=g, keep_samples=False, **settings)
        mus.append(t.mu[-1])
        stds.append(t.std[-1])
    return torch.cat(mus), torch.cat(stds)


def table_row(model, x, s, seed, progress):
    """Negative ELBO and negative IWAE-K (nats) on x, with the encoder's q and with refined q."""
    q = refined_q(model, x, s["test_steps"], s["refine"], seed + 1)
    kw = dict(seed=seed, progress=progress)
    with torch.no_grad():
        row = {"bound": -evaluate(model, x, "elbo", 100, **kw).mean().item(),
               "nll": -evaluate(model, x, "iwae", s["nll_K"], **kw).mean().item(),
               "bound_refined": -evaluate(model, x, "elbo", 100, q=q, **kw).mean().item(),
               "nll_refined": -evaluate(model, x, "iwae", s["nll_K"], q=q, **kw).mean().item()}
    return row


def train_widget_model(ctx: Context):
    """A 2-D-latent VAE on the 8x8 digits (quick scale, seconds) whose posterior can be drawn on a grid."""
    from ..data import load
    from ..models import VAE
    data = load("digits", "threshold", seed=0, device=ctx.device)
    torch.manual_seed(ctx.seed)
    model = VAE(data.dim, 2, (64, 64), "relu", data.likelihood).to(ctx.device)
    cfg = ctx.train_config(epochs=30, batch_size=64, lr=3e-3, eval_every=0, checkpoint_every=30)
    train(model, data, ELBO(), cfg, out_dir=ctx.out / "widget")
    return {"checkpoint": str(ctx.out / "widget" / "checkpoints" / "epoch_0030.pt"),
            "dataset": "digits", "image_shape": list(data.image_shape)}


@experiment("refinement",
            "Amortization gap, refinement curves (ELBO, ESS vs steps), GDIR training vs a plain VAE",
            chapter="05_iterative_refinement",
            cost={"quick": "1 min CPU", "book": "5 min CPU"},
            settings=SETTINGS, preset_settings=("changes",))
def refinement(ctx: Context) -> dict:
    s = ctx.settings
    if s["changes"]:
        ctx.preset = ctx.preset.replace(**s["changes"])
    timings = {}
    data = ctx.data()
    t0 = time.perf_counter()
    vae = ctx.model(data)
    hist_vae = train(vae, data, ELBO(), ctx.train_config(), out_dir=ctx.out / "vae")
    timings["train_vae_s"] = time.perf_counter() - t0
    g = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
    x_train = data.fixed("train", seed=ctx.seed)
    x_test = data.fixed("test", seed=ctx.seed)

    # -- 1. amortization gap (train) vs inference generalization gap (test)
    t0 = time.perf_counter()
    gaps = {}
    for split, x in (("train", x_train[:s["n_gap"]]), ("test", x_test[:s["n_gap"]])):
        q_opt = per_point(vae, x, s["optimal_steps"], s["optimal_lr"], K=1, seed=ctx.seed, progress=ctx.progress)
        q_ref = refined_q(vae, x, s["test_steps"], s["refine"], ctx.seed)
        with torch.no_grad():
            enc = evaluate(vae, x, "elbo", 100, seed=ctx.seed).mean().item()
            opt = evaluate(vae, x, "elbo", 100, q=q_opt, seed=ctx.seed).mean().item()
            ref = evaluate(vae, x, "elbo", 100, q=q_ref, seed=ctx.seed).mean().item()
        gaps[split] = {"elbo_encoder": enc, "elbo_optimal": opt, "elbo_refined": ref, "gap": opt - enc,
                       "refined_share": (ref - enc) / (opt - enc) if opt != enc else float("nan"),
                       "n": len(x)}
    timings["gaps_s"] = time.perf_counter() - t0

    # -- 2. refinement curves from the encoder and from the prior
    t0 = time.perf_counter()
    steps = CURVE_STEPS
    k = max(steps)
    curves = {"steps": steps}
    for split, x in (("train", x_train[:s["n_curve"]]), ("test", x_test[:s["n_curve"]])):
        prior = (torch.zeros(len(x), vae.z_dim, device=ctx.device), torch.ones(len(x), vae.z_dim, device=ctx.device))
        for start, init in (("", None), ("_prior", prior)):
            traj = refine(vae, x, k, init=init, generator=g, keep_samples=False, progress=ctx.progress,
                          **s["refine"])
            e, n = curve(vae, x, traj, steps, s["eval_samples"], g)
            curves[f"elbo_{split}{start}"], curves[f"ess_{split}{start}"] = e, n
            curves[f"elbo_{split}{start}_every_step"] = traj.elbo.mean(1).tolist()  # S-sample estimate
    timings["curves_s"] = time.perf_counter() - t0

    # -- 3. training with refinement against the plain VAE
    t0 = time.perf_counter()
    gdir_obj = GDIR(**{**s["refine"], **s["train_refine"]})
    gdir = ctx.model(data)
    hist_gdir = train(gdir, data, gdir_obj, ctx.train_config(), out_dir=ctx.out / "gdir")
    timings["train_gdir_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    x_tab = x_test[:s["n_table"]]
    table = {name: table_row(m, x_tab, s, ctx.seed, ctx.progress)
             for name, m in tqdm((("vae", vae), ("gdir", gdir)), desc="table", disable=not ctx.progress)}
    timings["table_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    widget = train_widget_model(ctx)
    timings["widget_s"] = time.perf_counter() - t0

    tv, tg = table["vae"], table["gdir"]
    return {
        "dataset": {"name": data.name, "binarization": data.binarization, "n_train": len(data.train),
                    "n_test": len(data.test), "dim": data.dim},
        "settings": {**{k_: v for k_, v in s.items() if k_ != "changes"}, "preset": ctx.preset.to_dict(),
                     "gdir": gdir_obj.config(), "elbo_K": 100},
        **curves,
        "amortization_gap": gaps["train"]["gap"],
        "inference_generalization_gap": gaps["test"]["gap"],
        "gaps": gaps,
        "table": table,
        "paper_table1": PAPER_TABLE1,
        "history": {"vae": hist_vae, "gdir": hist_gdir},
        "checkpoints": {"vae": str(ctx.out / "vae" / "checkpoints" / f"epoch_{ctx.preset.epochs:04d}.pt"),
                        "gdir": str(ctx.out / "gdir" / "checkpoints" / f"epoch_{ctx.preset.epochs:04d}.pt")},
        "widget": widget,
        "timings_s": timings,
        "metrics": {"amortization_gap_nats": gaps["train"]["gap"],
                    "inference_generalization_gap_nats": gaps["test"]["gap"],
                    "vae_test_bound": tv["bound"], "vae_test_bound_refined": tv["bound_refined"],
                    "gdir_test_bound": tg["bound"], "gdir_test_bound_refined": tg["bound_refined"],
                    "vae_nll": tv["nll"], "gdir_nll": tg["nll"]},
    }


def load_model(path: str):
    """A model from one of this experiment's checkpoints (``res['checkpoints'][...]``, ``res['widget']``)."""
    ck = load_checkpoint(path)
    model = build_model(ck["model_config"])
    model.load_state_dict(ck["model"])
    return model.eval()
