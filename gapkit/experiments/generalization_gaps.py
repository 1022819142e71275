"""Experiment ``generalization-gaps``: the two generalization gaps of a VAE over training.

For each data set (binary and grey pixels) a VAE is trained with the ELBO long enough to overfit,
with a checkpoint every few epochs. At every checkpoint (:func:`gapkit.analysis.sweep.sweep`, cached):

* ``bpd.train.amortized``: the negative ELBO (BPD) of training images with the amortized encoder;
* ``bpd.test.amortized``: the same on test images;
* ``bpd.test.optimal``: the test ELBO with per-point optimal inference q*(z|x) for the fixed
  decoder (:func:`gapkit.inference.optimal.per_point` with the preset's
  :data:`gapkit.inference.optimal.TUNED` settings, as in chapter 1) - the generative model's own test
  performance;
* ``gap.inference.bpd = bpd.test.amortized - bpd.test.optimal``: the amortized-inference
  generalization gap (Zhang et al. 2022, Eq. 12; ``gap.inference.nats`` in nats per image);
* ``bpd.train.optimal`` (optimal inference on as many training images as test images) and
  ``gap.model.bpd = bpd.test.optimal - bpd.train.optimal``: the generative model's generalization gap.

``bpd.test.amortized - bpd.train.optimal = gap.model + gap.inference`` is the stacked plot of
`chapter 2 <https://gapkit.github.io/gapkit/notebooks/02_generalization_gaps.html>`_.
The ``book`` preset trains on a small subset of
MNIST so that overfitting shows within CPU minutes; ``paper`` is the paper's setting (2x500 ReLU,
latent 16, Adam 3e-4, 1000 epochs, a checkpoint every 100).
"""
from __future__ import annotations

import math

from ..inference.optimal import TUNED, PerPoint
from ..objectives import ELBO
from ..analysis.sweep import sweep
from ..train import checkpoints, train
from . import Context, experiment

# Per preset: the data/model/training changes to the preset, and the evaluation settings; ``optimal``: the
# per-point optimal inference, the one well-tuned setting of the preset (gapkit.inference.optimal.TUNED,
# cosine learning-rate decay) that chapter 1 uses too.
SETTINGS = {
    "quick": dict(changes=dict(train_subset=100, test_subset=100, hidden=(128, 128), latent=4, epochs=160,
                               lr=3e-3, batch_size=25, eval_every=40, checkpoint_every=40),
                  n_eval=100, K=5, optimal=TUNED["quick"].as_dict()),
    "book": dict(changes=dict(train_subset=1000, test_subset=1000, hidden=(500, 500), latent=16, epochs=200,
                              lr=1e-3, batch_size=100, eval_every=25, checkpoint_every=25),
                 n_eval=500, K=5, optimal=TUNED["book"].as_dict(),
                 # The discretized-logistic VAE learns more slowly: it needs more epochs to overfit.
                 per_dataset={"grey": dict(epochs=400, eval_every=50, checkpoint_every=50)}),
    "paper": dict(changes=dict(hidden=(500, 500), latent=16, epochs=1000, lr=3e-4, batch_size=100,
                               eval_every=100, checkpoint_every=100),
                  n_eval=10000, K=10, optimal=TUNED["paper"].as_dict()),
}
DATASETS = {"binary": "threshold", "grey": "grey"}


def encoder_share(res: dict) -> dict:
    """How much of the test-BPD rise after its best checkpoint is the encoder's.

    With e* the checkpoint of lowest amortized test BPD and e_last the last one:
    rise = A(e_last) - A(e*), of which the inference gap's change G(e_last) - G(e*) is the
    encoder's and the optimal curve's change O(e_last) - O(e*) the decoder's (A = O + G).

    `Chapter 2 <https://gapkit.github.io/gapkit/notebooks/02_generalization_gaps.html>`_ prints its verdict.
    """
    a, o, g = res["bpd"]["test"]["amortized"], res["bpd"]["test"]["optimal"], res["gap"]["inference"]["bpd"]
    best = min(range(len(a)), key=a.__getitem__)
    rise = a[-1] - a[best]
    d_gap, d_opt = g[-1] - g[best], o[-1] - o[best]
    tr = res["bpd"]["train"]["amortized"]
    return {"best_epoch": res["epochs"][best], "last_epoch": res["epochs"][-1],
            "test_rise_bpd": rise, "gap_change_bpd": d_gap, "optimal_change_bpd": d_opt,
            "train_change_bpd": tr[-1] - tr[best],
            "overfits": bool(rise > 0 and tr[-1] < tr[best]),
            "encoder_share": d_gap / rise if rise > 0 else float("nan"),
            "mostly_encoder": bool(rise > 0 and d_gap > d_opt)}


@experiment("generalization-gaps",
            "Train a VAE past overfitting; test BPD with amortized vs optimal inference at every checkpoint",
            chapter="02_generalization_gaps",
            cost={"quick": "20 s CPU", "book": "10 min CPU"},
            settings=SETTINGS, preset_settings=("changes",))
def generalization_gaps(ctx: Context) -> dict:
    s = ctx.settings
    ctx.preset = ctx.preset.replace(**s["changes"])
    kw_opt = PerPoint(**s["optimal"]).as_dict()     # checked
    out = {"settings": {"n_eval": s["n_eval"], "elbo": {"K": s["K"]}, "optimal": {"method": "per-point", **kw_opt},
                        "preset": ctx.preset.to_dict(), "per_dataset": s.get("per_dataset", {})},
           "datasets": {}, "metrics": {}}
    base = ctx.preset
    for key, binarization in DATASETS.items():
        ctx.preset = base.replace(**s.get("per_dataset", {}).get(key, {}))
        data = ctx.data(binarization=binarization)
        model = ctx.model(data)
        run_dir = ctx.out / key
        history = train(model, data, ELBO(), ctx.train_config(), out_dir=run_dir)
        every, last = ctx.preset.checkpoint_every, ctx.preset.epochs
        cks = [(e, p) for e, p in checkpoints(run_dir) if e <= last and (e % every == 0 or e == last)]
        n = s["n_eval"]
        x_train = data.fixed("train", seed=ctx.seed)[:n]
        x_test = data.fixed("test", seed=ctx.seed)[:n]
        common = dict(bound="elbo", K=s["K"], seed=ctx.seed, progress=ctx.progress)
        sw = ctx.stage(f"sweep {key}", lambda: {   # a stage: a run stopped later resumes after it
            "train": sweep(cks, x_train, inference="amortized", label=f"{key} train", **common),
            "test": sweep(cks, x_test, inference="amortized", label=f"{key} test", **common),
            "test_optimal": sweep(cks, x_test, inference="optimal", inference_kw=kw_opt,
                                  label=f"{key} test optimal", **common),
            "train_optimal": sweep(cks, x_train, inference="optimal", inference_kw=kw_opt,
                                   label=f"{key} train optimal", **common)})
        tr, te, te_opt, tr_opt = sw["train"], sw["test"], sw["test_optimal"], sw["train_optimal"]
        res = {
            "training": {"epochs": ctx.preset.epochs, "checkpoint_every": every, "lr": ctx.preset.lr,
                         "hidden": list(ctx.preset.hidden), "latent": ctx.preset.latent},
            "dataset": {"name": data.name, "binarization": data.binarization, "likelihood": data.likelihood,
                        "n_train": len(data.train), "n_test_eval": len(x_test), "dim": data.dim},
            "epochs": [r["epoch"] for r in te],
            "bpd": {"train": {"amortized": [r["bpd"] for r in tr], "optimal": [r["bpd"] for r in tr_opt]},
                    "test": {"amortized": [r["bpd"] for r in te], "optimal": [r["bpd"] for r in te_opt]}},
            "gap": {"inference": {"bpd": [a["bpd"] - b["bpd"] for a, b in zip(te, te_opt)],
                                  "nats": [b["nats"] - a["nats"] for a, b in zip(te, te_opt)]},
                    "model": {"bpd": [a["bpd"] - b["bpd"] for a, b in zip(te_opt, tr_opt)]},
                    "train_amortization": {"bpd": [a["bpd"] - b["bpd"] for a, b in zip(tr, tr_opt)]}},
            "curves": {k: history[k] for k in ("epoch", "train_bpd", "test_bpd", "loss") if k in history},
        }
        res["summary"] = encoder_share(res)
        out["datasets"][key] = res
        b = res["bpd"]
        out["metrics"][key] = {"epoch": res["epochs"][-1],
                               "bpd": {"train": {"amortized": b["train"]["amortized"][-1]},
                                       "test": {q: b["test"][q][-1] for q in ("amortized", "optimal")}},
                               "gap": {"inference": {"bpd": res["gap"]["inference"]["bpd"][-1]}},
                               "encoder_share": res["summary"]["encoder_share"]}
        finals = (b["train"]["amortized"][-1], b["test"]["amortized"][-1], b["test"]["optimal"][-1],
                  res["gap"]["inference"]["bpd"][-1], res["summary"]["encoder_share"])
        if any(isinstance(v, float) and math.isinf(v) for v in finals):
            raise ValueError(f"infinite result for {key}: {out['metrics'][key]}")
    out["paper"] = PAPER
    out["book_summary"] = book_summary(out)
    return out


# Zhang et al. 2022 (Table 2): test BPD with the encoder of the VAEs trained on all 50,000 images for 1000 epochs.
PAPER = {"source": "Zhang et al. 2022", "n_train": 50000, "epochs": 1000,
         "test_bpd_amortized": {"binary": 0.200, "grey": 1.543}}


def book_summary(res: dict) -> dict:
    """The book's summary panel: train and test BPD with the encoder and test BPD with optimal q at the
    last checkpoint (binary pixels), and which part of the test-BPD rise is the encoder's."""
    ds = res["datasets"]
    key = "binary" if "binary" in ds else next(iter(ds))
    g = ds[key]
    ep, amort, opt = g["epochs"], g["bpd"]["test"]["amortized"], g["bpd"]["test"]["optimal"]
    train = g["bpd"]["train"]["amortized"]
    best = min(range(len(amort)), key=amort.__getitem__)
    rise = amort[-1] - amort[best]
    opt_change = opt[-1] - opt[best]
    if best == len(amort) - 1 or rise <= 0:
        finding = (f"The test BPD with the encoder's q was lowest at the last checkpoint (epoch {ep[-1]}): "
                   f"no overfitting at this preset.")
    else:
        gap_change = rise - opt_change          # amortized = optimal + inference gap
        who = "the encoder's" if gap_change > opt_change else "the decoder's"
        finding = (f"From epoch {ep[best]} to {ep[-1]} the test BPD with the encoder's q rose by {rise:.3f}: the "
                   f"inference gap (encoder) grew by {gap_change:+.3f} and the test BPD with per-image optimal q "
                   f"(decoder) changed by {opt_change:+.3f}, so the overfitting is mostly {who}.")
    return {"title": f"Generalization gaps at epoch {ep[-1]} (negative ELBO)", "unit": "BPD", "lower_is_better": True,
            "values": {"train, encoder q": train[-1], "test, encoder q": amort[-1], "test, optimal q": opt[-1]},
            "finding": finding}
