"""Experiment ``sleep-consistency`` (Zhang et al. 2022, Figure 3): wake vs sleep vs reverse sleep.

A teacher VAE trained on binarized MNIST
(`chapter 0 <https://gapkit.github.io/gapkit/notebooks/00_vae_basics.html>`_'s
``vae-basics`` model at the same preset) is
taken as the true data distribution p_d(x) = int p_teacher(x|z) p(z) dz. A finite training set and a
test set are sampled from it. A student with the teacher's decoder (fixed) and a freshly initialized
encoder is then trained three ways by :func:`gapkit.train.train` and the test ELBO (BPD) is recorded
per epoch:

* wake: the ELBO of the finite training set (:class:`gapkit.objectives.encoder_schemes.Wake`);
* sleep: log q(z|x) on fresh (z, x) ~ p(z) p(x|z) (:class:`gapkit.objectives.encoder_schemes.Sleep`);
* reverse sleep: the ELBO of fresh model samples (:class:`gapkit.objectives.encoder_schemes.ReverseSleep`);

that is, every registered :class:`gapkit.objectives.encoder_schemes.EncoderScheme` without a setting to sweep.

All three take the same number of gradient steps per epoch (one per training minibatch) from the
same initial encoder, with the same evaluation noise.
`Chapter 3 <https://gapkit.github.io/gapkit/notebooks/03_wake_sleep.html>`_.
"""
from __future__ import annotations

import torch

from ..data import Dataset
from ..models import build_model, load_model
from ..objectives import OBJECTIVES, EncoderScheme, names
from ..train import train
from . import Context, experiment, run

# Per preset: synthetic set sizes, student training (Adam), evaluation.
SETTINGS = {
    "quick": dict(n_train=200, n_test=250, epochs=20, lr=3e-3, batch_size=50, eval_every=4, eval_K=2),
    "book": dict(n_train=500, n_test=1000, epochs=150, lr=1e-3, batch_size=50, eval_every=5, eval_K=2),
    "paper": dict(n_train=10000, n_test=1000, epochs=100, lr=1e-3, batch_size=100, eval_every=1, eval_K=10),
}
# The plain encoder schemes of the registry (those without a setting to sweep), in registration order:
# wake, sleep, reverse_sleep.
METHODS = {n: OBJECTIVES[n] for n in names(EncoderScheme) if OBJECTIVES[n].setting is None}
ORDER = ("reverse_sleep", "sleep", "wake")  # the paper's ordering, best (lowest BPD) first


def student(teacher, seed: int):
    """The teacher's decoder (copied; trained by nobody) with a fresh encoder initialized from ``seed``."""
    torch.manual_seed(seed)
    model = build_model(teacher.config).to(teacher.device)
    model.decoder.load_state_dict(teacher.decoder.state_dict())
    return model


@experiment("sleep-consistency", "Figure 3: fresh encoders for a teacher's decoder by wake, sleep and reverse "
            "sleep; test BPD per epoch", chapter="03_wake_sleep",
            cost={"quick": "10 s CPU", "book": "30 s CPU (+ vae-basics)"}, settings=SETTINGS)
def sleep_consistency(ctx: Context) -> dict:
    s = ctx.settings
    base = run("vae-basics", preset=ctx.preset.name, seed=ctx.seed, progress=ctx.progress)
    teacher = load_model(base["checkpoint"], ctx.device)
    real = ctx.data()
    g = torch.Generator(device=ctx.device).manual_seed(ctx.seed + 12345)
    _, xtr = teacher.sample(s["n_train"], g)                          # (N, D) from p_d
    _, xte = teacher.sample(s["n_test"], g)
    data = Dataset("teacher-samples", "sampled", xtr, xte, xte, real.image_shape, "bernoulli")
    cfg = ctx.train_config(epochs=s["epochs"], lr=s["lr"], batch_size=s["batch_size"], eval_every=s["eval_every"],
                           eval_K=s["eval_K"], checkpoint_every=0)
    def fit(cls):
        model = student(teacher, ctx.seed + 1)   # the same fresh encoder for every method
        h = train(model, data, cls(), cfg)
        return {"epochs": h["epoch"], "test_bpd": h["test_bpd"], "train_bpd": h["train_bpd"]}
    # Each method's training is a stage: a run stopped later resumes after the methods it finished.
    methods = {name: ctx.stage(f"train {name}", lambda cls=cls: fit(cls)) for name, cls in METHODS.items()}
    final = {k: v["test_bpd"][-1] for k, v in methods.items()}
    holds = all(final[a] < final[b] for a, b in zip(ORDER[:-1], ORDER[1:]))
    res = {
        "settings": s,
        "teacher": {"from": "vae-basics", "test_elbo_bpd_real_data": base["metrics"]["test"]["elbo"]["bpd"],
                    "n_train": len(xtr), "n_test": len(xte)},
        "methods": methods,
        "final_test_bpd": final,
        "ordering": {"expected": " < ".join(ORDER), "holds": holds,
                     "observed": " < ".join(sorted(final, key=final.get))},
        "samples": xtr[:16].cpu().tolist(),
    }
    res["book_summary"] = book_summary(res)
    return res


def book_summary(res: dict) -> dict:
    """The book's summary panel: the final test BPD of the three encoders and whether the paper's
    ordering (reverse sleep < sleep < wake) held."""
    f = res["final_test_bpd"]
    names = {"wake": "wake", "sleep": "sleep", "reverse_sleep": "reverse sleep"}
    values = {names[k]: f[k] for k in ("wake", "sleep", "reverse_sleep")}
    epochs = res["methods"]["wake"]["epochs"][-1]
    observed = " < ".join(sorted(values, key=values.get))
    holds = values["reverse sleep"] < values["sleep"] < values["wake"]
    finding = (f"Fresh encoders for a fixed decoder, after {epochs} epochs: test BPD orders {observed}; the "
               f"expected order reverse sleep < sleep < wake {'held' if holds else 'did not hold'}.")
    return {"title": "Wake, sleep, reverse sleep: test negative ELBO", "unit": "BPD", "lower_is_better": True,
            "values": values, "finding": finding}
