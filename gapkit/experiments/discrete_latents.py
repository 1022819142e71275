"""Experiment ``discrete-latents``: AIR, RWS and BiHM on sigmoid belief networks (Hjelm et al. 2016).

The binary-latent half of the supplement of Hjelm et al. (2016), arXiv 1511.06382:

* ``figure1``: SBNs with 1, 2 and 3 layers trained with (reweighted) AIR, 20 steps; the test
  images' posteriors refined for 0..50 AIR steps from the recognition network, with the mean lower
  bound (ELBO, nats) and normalized ESS of ``curve_K`` samples at every step (supplement Fig. 1):
  ``depths`` is a list of ``{"layers": L, "paper": curves, "gentle": curves}``, one curve set per
  damping in ``gamma`` (the paper's 0.9 and a gentler 0.1); ``slider`` holds the per-image values
  of the 3-layer network for the chapter's slider, per damping.
* ``training``: a list of ``{"layers": L, "runs": [...]}`` (2 layers: every method of Fig. 2; 3
  layers: AIR-20 and RWS, Fig. 3), each run the training history of one ``method`` (``epoch``,
  ``updates``, ``seconds`` of training, and on a fixed training subset with ``eval_K`` samples from
  the recognition network: ``elbo``, ``iwae`` (the log-likelihood estimate), ``ess``) and ``epoch_time``.
* ``nll``: 3-layer AIR-20 (``air``) against BiHM (``bihm``), with the recognition network's q
  (``encoder``) and refined at test time with each damping (``refined.paper``, ``refined.gentle``;
  BiHM+ refines with BiHM weights), test NLL by IWAE-``nll_K`` and the BiHM bound, nats
  (supplement Section 4); ``paper_nll`` holds the paper's numbers.
* ``findings``: the supplement's claims, each decided from these numbers by :func:`findings`.

`Chapter 8 <https://gapkit.github.io/gapkit/notebooks/08_discrete_latents.html>`_ shows all of it.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from ..inference.air import evaluate
from ..inference.air import fit
from ..inference.air import log_likelihood
from ..inference.air import refine
from ..inference.air import score_function_refine
from ..objectives import AIR, RWS, BiHM
from ..models.sbn import SBN
from . import Context, experiment

# The paper's numbers (Hjelm et al. 2016, supplement Section 4): test NLL in nats of a 3-layer SBN
# (200 units per layer) after 500 epochs, 10,000 posterior samples.
PAPER_NLL = {"AIR": 92.40, "BiHM": 93.30, "BiHM+": 92.90}
PAPER_SETTINGS = {"layers": 200, "epochs": 500, "train_steps": 20, "gamma": 0.9, "curve_steps": 50,
                  "curve_K": 100, "nll_K": 10000}

# Figure 2's methods: key -> (label, objective factory)
METHODS = {
    "air5": ("AIR-5", lambda s: AIR(5, s["K"], s["gamma"], reweighted=False)),
    "air20": ("AIR-20", lambda s: AIR(20, s["K"], s["gamma"], reweighted=False)),
    "rwair5": ("reweighted AIR-5", lambda s: AIR(5, s["K"], s["gamma"])),
    "rwair20": ("reweighted AIR-20", lambda s: AIR(20, s["K"], s["gamma"])),
    "incl5": ("reweighted AIR-5, inclusive KL", lambda s: AIR(5, s["K"], s["gamma"], encoder="inclusive")),
    "incl20": ("reweighted AIR-20, inclusive KL", lambda s: AIR(20, s["K"], s["gamma"], encoder="inclusive")),
    "rws": ("RWS", lambda s: RWS(s["K"])),
}
GENTLE_GAMMA = 0.1    # a smaller damping than the paper's 0.9, shown beside it (Monte Carlo drift)
SF_LRS = (0.01, 0.03, 0.1, 0.3, 1.0)   # step sizes of score-function gradient refinement (best one shown)
AIR_KEY = "rwair20"   # "AIR" outside Figure 2: reweighted AIR with 20 steps, as in Figs. 1 and 3

SETTINGS = {
    "quick": dict(units=16, K=5, gamma=0.9, train_subset=None, epochs=2, batch_size=50, lr=3e-3,
                  eval_n=100, eval_K=20, eval_epochs=[0, 1, 2], curve_n=50, curve_K=20, curve_steps=50,
                  nll_n=100, nll_K=100, test_steps=20, test_K=20, checkpoint_every=1),
    "book": dict(units=100, K=10, gamma=0.9, train_subset=1000, epochs=6, batch_size=25, lr=3e-3,
                 eval_n=100, eval_K=100, eval_epochs=[0, 1, 2, 3, 4, 6], curve_n=100, curve_K=100,
                 curve_steps=50, nll_n=200, nll_K=500, test_steps=20, test_K=100, checkpoint_every=1),
    "paper": dict(units=200, K=20, gamma=0.9, train_subset=None, epochs=500, batch_size=100, lr=1e-3,
                  eval_n=1000, eval_K=100, eval_epochs=[0, 1, 2, 5, 10, 20, 50, 100, 200, 500],
                  curve_n=10000, curve_K=100, curve_steps=50, nll_n=10000, nll_K=10000, test_steps=20,
                  test_K=100, checkpoint_every=10),
}


def _train(ctx, s, depth, objective, x_train, x_eval, seed, out_dir):
    """A fresh SBN of ``depth`` layers (same initialization for every method) trained with ``objective``;
    its checkpoints go to ``out_dir``, so a run stopped inside the training continues from the last one."""
    torch.manual_seed(seed)
    model = SBN(x_train.shape[1], (s["units"],) * depth).to(ctx.device).init_output_bias(x_train)
    g_eval = torch.Generator(device=ctx.device).manual_seed(seed + 7)

    def eval_fn(m):
        g_eval.manual_seed(seed + 7)                   # the same evaluation samples at every epoch
        return evaluate(m, x_eval, K=s["eval_K"], generator=g_eval)

    hist = fit(model, x_train, objective, s["epochs"], s["batch_size"], s["lr"], seed=seed, eval_fn=eval_fn,
               eval_epochs=tuple(s["eval_epochs"]), progress=ctx.progress, out_dir=out_dir,
               checkpoint_every=s["checkpoint_every"])
    return model, hist


def _figure1(ctx, s, models, xc, seed):
    """Figure 1: AIR refinement curves of every depth at both dampings, the 3-layer slider values, and
    score-function gradient refinement over ``SF_LRS``; one generator (``seed + 11``) for all of it."""
    steps = list(range(s["curve_steps"] + 1))
    gammas = {"paper": s["gamma"], "gentle": GENTLE_GAMMA}
    fig1 = {"steps": steps, "train_steps": 20, "K": s["curve_K"], "gamma": gammas, "depths": []}
    g = torch.Generator(device=ctx.device).manual_seed(seed + 11)
    slider = {}
    for depth in (1, 2, 3):
        curves = {"layers": depth, "units": [s["units"]] * depth}
        for which, gamma in gammas.items():
            tr = refine(models[(depth, AIR_KEY)], xc, s["curve_steps"], s["curve_K"], gamma, generator=g,
                        progress=ctx.progress)
            elbo, ess_ = tr.elbo, tr.ess                                        # (T+1, B) each
            curves[which] = {"elbo": elbo.mean(1).tolist(), "ess": ess_.mean(1).tolist(),
                             "entropy": tr.entropy.mean(1).tolist()}
            if depth == 3:
                slider[which] = {"elbo": np.round(elbo.numpy(), 3).tolist(), "ess": np.round(ess_.numpy(), 4).tolist(),
                                 "entropy": np.round(tr.entropy.numpy(), 3).tolist()}
        fig1["depths"].append(curves)
    # gradient refinement for binary latents: score-function estimates, a grid of step sizes, 3 layers
    sf = {"lrs": list(SF_LRS), "final_elbo": [], "K": s["curve_K"]}
    for lr in SF_LRS:
        tr = score_function_refine(models[(3, AIR_KEY)], xc, s["curve_steps"], s["curve_K"], lr, generator=g)
        sf["final_elbo"].append(tr.elbo[-1].mean().item())
        if sf["final_elbo"][-1] >= max(sf["final_elbo"]):
            sf.update(best_lr=lr, elbo=tr.elbo.mean(1).tolist(), ess=tr.ess.mean(1).tolist(),
                      entropy=tr.entropy.mean(1).tolist())
    fig1["score_function"] = sf
    return fig1, {"gamma": gammas, **slider}


def _nll(ctx, s, m, xn, weights, seed):
    """Test NLL (IWAE-``nll_K``) and BiHM bound of one 3-layer model, nats, with the recognition
    network's q (``encoder``) and refined for ``test_steps`` steps at each damping (``refined``)."""
    out = {"refined": {}}
    gq = torch.Generator(device=ctx.device).manual_seed(seed + 13)
    mu_T = refine(m, xn, s["test_steps"], s["test_K"], s["gamma"], weights, generator=gq).final
    mu_G = refine(m, xn, s["test_steps"], s["test_K"], GENTLE_GAMMA, weights, generator=gq).final
    for which, mu in (("encoder", None), ("paper", mu_T), ("gentle", mu_G)):
        gl = torch.Generator(device=ctx.device).manual_seed(seed + 17)
        lp, bh = log_likelihood(m, xn, mu, K=s["nll_K"], generator=gl)
        row = {"nll": -lp.mean().item(), "bihm_bound": -bh.mean().item()}
        if which == "encoder":
            out["encoder"] = row
        else:
            out["refined"][which] = row
    return out


def _value_at(times, values, t):
    """``values`` linearly interpolated at time ``t`` (held at the ends)."""
    return float(np.interp(t, times, values))


def findings(res: dict) -> list:
    """The supplement's claims, each with ``holds`` (bool) decided from the results and the numbers.

    Tested in ``tests/test_discrete_latents.py``; the chapter prints them.
    """
    out = []
    f1 = res["figure1"]
    cur = {c["layers"]: c for c in f1["depths"]}                 # layers -> curves at each damping
    depths = sorted(cur)
    T = f1["train_steps"]
    i_T = f1["steps"].index(T)

    def add(key, claim, holds, detail):
        out.append({"key": key, "claim": claim, "holds": bool(holds), "detail": detail})

    gains = {d: (cur[d]["paper"]["elbo"][-1] - cur[d]["paper"]["elbo"][0]) for d in depths}
    add("refinement_improves_bound", "Refinement improves the variational lower bound (Fig. 1, left)",
        all(v > 0 for v in gains.values()),
        ", ".join(f"{d} layer(s): {gains[d]:+.2f} nats" for d in depths))
    ess_ = {d: (cur[d]["paper"]["ess"][0], cur[d]["paper"]["ess"][-1]) for d in depths}
    add("refinement_improves_ess", "Refinement improves the effective sample size (Fig. 1, right)",
        all(b > a for a, b in ess_.values()),
        ", ".join(f"{d} layer(s): {a:.3f} -> {b:.3f}" for d, (a, b) in ess_.items()))
    beyond = {d: cur[d]["paper"]["elbo"][-1] - cur[d]["paper"]["elbo"][i_T] for d in depths}
    add("beyond_training_steps", f"Refinement keeps improving beyond the {T} steps used in training",
        all(v > 0 for v in beyond.values()),
        ", ".join(f"{d} layer(s): step {T} -> {f1['steps'][-1]}: {beyond[d]:+.2f} nats" for d in depths))

    sf, c3 = f1["score_function"], cur[3]
    add("air_beats_gradient", "AIR refines a binary posterior better than gradient steps (GDIR's "
        "score-function counterpart)", c3["paper"]["elbo"][-1] > sf["elbo"][-1],
        f"3 layers, lower bound after {f1['steps'][-1]} steps: AIR {c3['paper']['elbo'][-1]:.2f} nats "
        f"(with gamma {f1['gamma']['gentle']}: {c3['gentle']['elbo'][-1]:.2f}), score-function gradient "
        f"{sf['elbo'][-1]:.2f} nats (step size {sf['best_lr']:g}, the best of {len(sf['lrs'])}), from "
        f"{c3['paper']['elbo'][0]:.2f}")

    air_label, rws_label = METHODS[AIR_KEY][0], METHODS["rws"][0]
    tr = {t["layers"]: {r["method"]: r for r in t["runs"]} for t in res["training"]}
    tr = {d: {"air": runs[air_label], "rws": runs[rws_label]} for d, runs in tr.items()}
    ta = {d: float(np.mean(tr[d]["air"]["epoch_time"])) for d in tr}
    tr_ = {d: float(np.mean(tr[d]["rws"]["epoch_time"])) for d in tr}
    add("air_slower_per_epoch", "AIR takes longer per epoch than RWS", all(ta[d] > tr_[d] for d in tr),
        ", ".join(f"{d} layers: {ta[d]:.2f} s against {tr_[d]:.2f} s" for d in tr))
    ll = {d: (tr[d]["air"]["iwae"][-1], tr[d]["rws"]["iwae"][-1]) for d in tr}
    add("air_better_per_update", "Per update (epoch), AIR reaches a higher log-likelihood than RWS",
        all(a > r for a, r in ll.values()),
        ", ".join(f"{d} layers: AIR {a:.2f}, RWS {r:.2f} nats" for d, (a, r) in ll.items()))
    es = {d: (tr[d]["air"]["ess"][-1], tr[d]["rws"]["ess"][-1]) for d in tr}
    add("air_higher_ess", "AIR reaches a higher effective sample size than RWS", all(a > r for a, r in es.values()),
        ", ".join(f"{d} layers: AIR {a:.3f}, RWS {r:.3f}" for d, (a, r) in es.items()))
    wc = {}
    for d in tr:
        a, r = tr[d]["air"], tr[d]["rws"]
        t_r = r["seconds"][-1]
        wc[d] = (r["elbo"][-1], _value_at(a["seconds"], a["elbo"], t_r), t_r)
    add("rws_faster_in_wall_clock", "At equal wall-clock time early in training, RWS has the higher lower bound",
        all(r > a for r, a, _ in wc.values()),
        ", ".join(f"{d} layers, after {t:.1f} s: RWS {r:.2f}, AIR {a:.2f} nats" for d, (r, a, t) in wc.items()))

    n = res["nll"]
    air, bihm, bihm_plus = n["air"]["refined"]["paper"]["nll"], n["bihm"]["encoder"]["nll"], \
        n["bihm"]["refined"]["paper"]["nll"]
    add("bihm_plus_beats_bihm", "BiHM+ (refined at test) has a lower test NLL than BiHM", bihm_plus < bihm,
        f"BiHM+ {bihm_plus:.2f} against BiHM {bihm:.2f} nats (paper: {PAPER_NLL['BiHM+']:.2f} against "
        f"{PAPER_NLL['BiHM']:.2f})")
    add("air_beats_bihm_plus", "AIR has a lower test NLL than BiHM+", air < bihm_plus,
        f"AIR {air:.2f} against BiHM+ {bihm_plus:.2f} nats (paper: {PAPER_NLL['AIR']:.2f} against "
        f"{PAPER_NLL['BiHM+']:.2f})")
    return out


@experiment("discrete-latents",
            "Sigmoid belief networks: AIR refinement curves (1-3 layers), AIR vs RWS training, AIR vs BiHM NLL",
            chapter="08_discrete_latents",
            cost={"quick": "15 s CPU", "book": "2 min CPU"})
def discrete_latents(ctx: Context) -> dict:
    s = SETTINGS[ctx.preset.name]
    timings = {}
    data = ctx.data(train_subset=s["train_subset"])
    x_train = data.train
    x_test = data.fixed("test", seed=ctx.seed)
    x_eval = x_train[:s["eval_n"]]
    seed = ctx.seed

    # -- training: every Figure-2 method on 2 layers; AIR-20 on 1 and 3 layers; RWS and BiHM on 3
    runs = [(2, k) for k in METHODS] + [(1, AIR_KEY), (3, AIR_KEY), (3, "rws"), (3, "bihm")]
    models, training = {}, {}
    t0 = time.perf_counter()
    for depth, key in runs:
        obj = BiHM(s["K"]) if key == "bihm" else METHODS[key][1](s)
        m, hist = _train(ctx, s, depth, obj, x_train, x_eval, seed + depth,
                         out_dir=ctx.out / "sbn" / f"{depth}_layers" / key)
        models[(depth, key)] = m
        hist["objective"] = obj.config()
        if key != "bihm" and depth in (2, 3):
            training.setdefault(depth, []).append({"method": METHODS[key][0], **hist})
        if key == "bihm":
            bihm_hist = hist
    timings["training_s"] = time.perf_counter() - t0

    # -- Figure 1: refinement of the test posteriors, 0..50 steps, from the recognition network; a stage
    # (ctx.stage): a run stopped later continues after it
    t0 = time.perf_counter()
    fig1, slider = ctx.stage("figure 1", lambda: _figure1(ctx, s, models, x_test[:s["curve_n"]], seed))
    timings["figure1_s"] = time.perf_counter() - t0

    # -- Section 4: test NLL of 3-layer AIR and BiHM, without and with test-time refinement; one stage
    # per model, each with its own generators
    t0 = time.perf_counter()
    xn = x_test[:s["nll_n"]]
    nll = {name: ctx.stage(f"nll {name}", lambda key=key, weights=weights: _nll(ctx, s, models[(3, key)], xn, weights,
                                                                               seed))
           for name, key, weights in (("air", AIR_KEY, "iw"), ("bihm", "bihm", "bihm"))}
    timings["nll_s"] = time.perf_counter() - t0
    steps = fig1["steps"]

    res = {
        "dataset": {"name": data.name, "binarization": data.binarization, "n_train": len(x_train),
                    "n_test": len(x_test), "dim": data.dim, "image_shape": list(data.image_shape)},
        "settings": {**s, "updates_per_epoch": -(-len(x_train) // s["batch_size"])},
        "methods": [v[0] for v in METHODS.values()],
        "air": METHODS[AIR_KEY][0],
        "figure1": fig1,
        "slider": slider,
        "training": [{"layers": d, "units": [s["units"]] * d, "runs": runs} for d, runs in training.items()],
        "bihm_history": bihm_hist,
        "nll": nll,
        "paper_nll": PAPER_NLL,
        "paper_settings": PAPER_SETTINGS,
        "epochs_share_of_paper": s["epochs"] / PAPER_SETTINGS["epochs"],
        "timings_s": timings,
    }
    res["findings"] = findings(res)
    res["book_summary"] = book_summary(res)
    res["metrics"] = {"nll": {m: {"encoder": nll[m]["encoder"]["nll"],
                                  "refined": {w: r["nll"] for w, r in nll[m]["refined"].items()}} for m in nll},
                      "ess": {"layers": [c["layers"] for c in fig1["depths"]], "steps": [steps[0], steps[-1]],
                              "ess": [[c["paper"]["ess"][0], c["paper"]["ess"][-1]] for c in fig1["depths"]]},
                      "findings": {"holding": sum(f["holds"] for f in res["findings"]), "total": len(res["findings"])}}
    return res


def book_summary(res: dict) -> dict:
    """The book's summary panel: the test NLL of 3-layer AIR (refined), BiHM and BiHM+, and how many of
    the supplement's findings hold at this preset."""
    nll, s = res["nll"], res["settings"]
    held = sum(f["holds"] for f in res["findings"])
    return {"title": "Discrete latents: test NLL of 3-layer SBNs", "unit": "nats", "lower_is_better": True,
            "values": {"AIR (refined)": nll["air"]["refined"]["paper"]["nll"], "BiHM": nll["bihm"]["encoder"]["nll"],
                       "BiHM+": nll["bihm"]["refined"]["paper"]["nll"]},
            "finding": f"{held} of the supplement's {len(res['findings'])} findings on binary latents hold at this "
                       f"preset ({s['epochs']} of the paper's {res['paper_settings']['epochs']} epochs)."}
