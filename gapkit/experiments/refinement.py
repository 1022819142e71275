"""Experiment ``refinement``: the amortization gap, refinement curves and training with refinement.

On one VAE trained with the ELBO (training and test data):

* ``gaps.train.gap`` (the amortization gap): the encoder's ELBO against per-point optimal inference
  (:func:`gapkit.inference.optimal.per_point`, the best diagonal Gaussian for every point) on *training*
  images, in nats; ``gaps.test.gap`` (the inference generalization gap): the same on *test* images
  (`chapter 2 <https://gapkit.github.io/gapkit/notebooks/02_generalization_gaps.html>`_'s
  gap). ``gaps`` also holds the ELBOs behind them and what test-time refinement recovers.
* Refinement curves (Hjelm et al. 2016, supplement Figure 1): :func:`gapkit.inference.refine.refine` from the
  encoder's q (and from the prior N(0, I)) for 0..``curve_steps`` steps; at each step in ``steps``
  the mean ELBO (``curves.elbo.SPLIT.START``, nats; SPLIT ``train``/``test``, START ``encoder``/``prior``)
  and the mean normalized effective sample size (``curves.ess.SPLIT.START``) of ``eval_samples``
  importance weights from q_i.
* Training with refinement (GDIR / SVI training, :class:`gapkit.objectives.refined.GDIR`) against the plain VAE,
  same architecture, data and epochs: ``table`` -> ``vae``/``gdir`` -> ``bound`` (negative ELBO),
  ``nll`` (negative IWAE-K), and the same with test-time refinement (``bound_refined``,
  ``nll_refined``), all in nats on test images, lower is better; ``paper.table1`` holds Hjelm et al.'s
  numbers (MNIST, 200 Gaussian latents) for comparison.
* ``widget``: a small 2-D-latent VAE on the 8x8 digits (quick scale) for the chapter's widget.

`Chapter 5 <https://gapkit.github.io/gapkit/notebooks/05_iterative_refinement.html>`_ shows all of it.
"""
from __future__ import annotations

import time

import torch
from ..progress import tqdm

from ..bounds import ess
from ..estimators import evaluate, log_weights
from ..objectives import ELBO, GDIR
from ..inference.optimal import per_point
from ..inference.refine import refine
from ..train import train
from . import Context, experiment

# Test-time refinement (curves and table): momentum SGD with per-point sums (see gapkit.inference.refine).
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


def _gaps(vae, x_train, x_test, s, ctx) -> dict:
    """Part 1: the ELBO with the encoder's, per-point optimal and refined q, on training and test images."""
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
    return gaps


def _curves(vae, x_train, x_test, s, ctx) -> dict:
    """Part 2: refinement curves (ELBO, ESS) from the encoder's q and from the prior."""
    g = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
    steps = CURVE_STEPS
    k = max(steps)
    curves = {"steps": steps, "elbo": {}, "ess": {}, "elbo_every_step": {}}
    for split, x in (("train", x_train[:s["n_curve"]]), ("test", x_test[:s["n_curve"]])):
        prior = (torch.zeros(len(x), vae.z_dim, device=ctx.device), torch.ones(len(x), vae.z_dim, device=ctx.device))
        for q in ("elbo", "ess", "elbo_every_step"):
            curves[q][split] = {}
        for start, init in (("encoder", None), ("prior", prior)):
            traj = refine(vae, x, k, init=init, generator=g, keep_samples=False, progress=ctx.progress,
                          **s["refine"])
            e, n = curve(vae, x, traj, steps, s["eval_samples"], g)
            curves["elbo"][split][start], curves["ess"][split][start] = e, n
            curves["elbo_every_step"][split][start] = traj.elbo.mean(1).tolist()  # S-sample estimate
    return curves


@experiment("refinement",
            "Amortization gap, refinement curves (ELBO, ESS vs steps), GDIR training vs a plain VAE",
            chapter="05_iterative_refinement",
            cost={"quick": "1 min CPU", "book": "2 min CPU"},
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
    x_train = data.fixed("train", seed=ctx.seed)
    x_test = data.fixed("test", seed=ctx.seed)

    # Each numbered part is a stage (ctx.stage): a run stopped later resumes after it.
    # -- 1. amortization gap (train) vs inference generalization gap (test)
    t0 = time.perf_counter()
    gaps = ctx.stage("gaps", lambda: _gaps(vae, x_train, x_test, s, ctx))
    timings["gaps_s"] = time.perf_counter() - t0

    # -- 2. refinement curves from the encoder and from the prior
    t0 = time.perf_counter()
    curves = ctx.stage("curves", lambda: _curves(vae, x_train, x_test, s, ctx))
    timings["curves_s"] = time.perf_counter() - t0

    # -- 3. training with refinement against the plain VAE
    t0 = time.perf_counter()
    gdir_obj = GDIR(**{**s["refine"], **s["train_refine"]})
    gdir = ctx.model(data)
    hist_gdir = train(gdir, data, gdir_obj, ctx.train_config(), out_dir=ctx.out / "gdir")
    timings["train_gdir_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    x_tab = x_test[:s["n_table"]]
    table = ctx.stage("table", lambda: {name: table_row(m, x_tab, s, ctx.seed, ctx.progress) for name, m in
                                        tqdm((("vae", vae), ("gdir", gdir)), desc="table", disable=not ctx.progress)})
    timings["table_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    widget = train_widget_model(ctx)
    timings["widget_s"] = time.perf_counter() - t0

    tv, tg = table["vae"], table["gdir"]
    res = {
        "dataset": {"name": data.name, "binarization": data.binarization, "n_train": len(data.train),
                    "n_test": len(data.test), "dim": data.dim},
        "settings": {**{k_: v for k_, v in s.items() if k_ != "changes"}, "preset": ctx.preset.to_dict(),
                     "gdir": gdir_obj.config(), "elbo_K": 100},
        "curves": curves,
        "gaps": gaps,
        "table": table,
        "paper": {"source": "Hjelm et al. 2016, supplement Table 1 (MNIST, 200 Gaussian latents)",
                  "table1": PAPER_TABLE1},
        "history": {"vae": hist_vae, "gdir": hist_gdir},
        "checkpoints": {"vae": str(ctx.out / "vae" / "checkpoints" / f"epoch_{ctx.preset.epochs:04d}.pt"),
                        "gdir": str(ctx.out / "gdir" / "checkpoints" / f"epoch_{ctx.preset.epochs:04d}.pt")},
        "widget": widget,
        "timings_s": timings,
        "metrics": {"gap": {"train": gaps["train"]["gap"], "test": gaps["test"]["gap"]},
                    "table": {name: {k_: t_[k_] for k_ in ("bound", "bound_refined", "nll")}
                              for name, t_ in (("vae", tv), ("gdir", tg))}},
    }
    res["findings"] = findings(res)
    res["book_summary"] = book_summary(res)
    return res


def findings(res: dict) -> dict:
    """What `chapter 5 <https://gapkit.github.io/gapkit/notebooks/05_iterative_refinement.html>`_
    states, decided from the numbers (nats).

    ``gaps``: ``similar`` when the test gap is within 10% of the training gap, else ``test_larger``;
    ``curves`` (test images): whether refinement from the encoder raises the ELBO, and the first step
    at which refinement from the prior reaches the encoder's step-0 ELBO (None: not within the
    curve); ``table``: whether test-time refinement tightens the VAE's bound, whether GDIR's refined
    bound and NLL beat the refined VAE's, and whether the two refined NLLs are level (within 0.5 nats,
    as in Hjelm et al.'s Table 1).
    """
    a, ig = res["gaps"]["train"]["gap"], res["gaps"]["test"]["gap"]
    c = res["curves"]
    e, p = c["elbo"]["test"]["encoder"], c["elbo"]["test"]["prior"]
    v, gd = res["table"]["vae"], res["table"]["gdir"]
    return {"gaps": {"similar": abs(ig - a) < 0.1 * max(abs(a), abs(ig), 1e-9), "test_larger": ig > a},
            "curves": {"improves": e[-1] > e[0],
                       "prior_reaches_encoder_at": next((st for st, x in zip(c["steps"], p) if x >= e[0]), None)},
            "table": {"refinement_tightens_vae": v["bound_refined"] < v["bound"],
                      "gdir_bound_better": gd["bound_refined"] < v["bound_refined"],
                      "gdir_nll_better": gd["nll_refined"] < v["nll_refined"],
                      "level": abs(gd["nll_refined"] - v["nll_refined"]) < 0.5}}


def _better(d: float, unit: str, fmt: str = ".3f") -> str:
    """``"0.012 nats lower"``: the size of a difference ``d`` (new - old) and its direction."""
    return f"{abs(d):{fmt}} {unit} {'lower' if d < 0 else 'higher'}"


def book_summary(res: dict) -> dict:
    """The book's summary panel: the test negative ELBO of the VAE and of GDIR, each without and with
    test-time refinement, and what refinement and GDIR training each gain."""
    t = res["table"]
    steps = res["settings"]["test_steps"]
    values = {"VAE": t["vae"]["bound"], f"VAE + {steps} refinement steps": t["vae"]["bound_refined"],
              "GDIR": t["gdir"]["bound"], f"GDIR + {steps} refinement steps": t["gdir"]["bound_refined"]}
    d_ref = t["vae"]["bound_refined"] - t["vae"]["bound"]
    d_gdir = t["gdir"]["bound"] - t["vae"]["bound"]
    finding = (f"{steps} steps of test-time refinement make the VAE's test -ELBO {_better(d_ref, 'nats', fmt='.2f')} "
               f"(against per-image optimal q its encoder is {res['gaps']['test']['gap']:.2f} nats "
               f"behind); GDIR's encoder alone is {_better(d_gdir, 'nats', fmt='.2f')} than the VAE's.")
    return {"title": "Iterative refinement: test negative ELBO", "unit": "nats", "lower_is_better": True,
            "values": values, "finding": finding}
