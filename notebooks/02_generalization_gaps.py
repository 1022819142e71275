# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. The two generalization gaps of a VAE
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/gapkit/gapkit/blob/main/notebooks/02_generalization_gaps.ipynb)
#
# A VAE trained on a finite training set ([chapter 0](00_vae_basics.ipynb)) can overfit it: its training bound keeps improving
# while its test bound gets worse. This chapter asks *which half of the VAE overfits*, the
# generative model $p_\theta(x \mid z)$ or the encoder $q_\phi(z \mid x)$, following
# {cite}`zhang2022generalization` (Sections 1, 2 and 4).
#
# ## Two terms that can overfit
#
# Average the ELBO over the data distribution $p_d$ and split it with
# $\log p_\theta(x) = \mathrm{ELBO}(x) + \mathrm{KL}(q_\phi(z \mid x) \,\|\, p_\theta(z \mid x))$:
#
# $$
# \begin{aligned}
# \big\langle \mathrm{ELBO}(x, \theta, \phi) \big\rangle_{p_d}
#  = \underbrace{-H(p_d)}_{\text{constant}}
#  &\;-\; \underbrace{\mathrm{KL}\big(p_d(x) \,\|\, p_\theta(x)\big)}_{\text{model learning}} \\
#  &\;-\; \underbrace{\big\langle \mathrm{KL}\big(q_\phi(z \mid x) \,\|\, p_\theta(z \mid x)\big) \big\rangle_{p_d}}_{\text{amortized inference}} .
# \end{aligned}
# $$
#
# Training replaces $\langle\cdot\rangle_{p_d}$ by an average over $N$ training images, and each
# of the two terms can then fit the training set rather than $p_d$:
#
# * the **model-learning term**: a flexible decoder can put mass on the training images
#   themselves, so $\frac1N\sum_n \log p_\theta(x_n)$ keeps rising while the test likelihood falls
#   (the *generative model generalization gap*);
# * the **amortized-inference term**: the encoder is a regression from $x$ to the parameters of
#   $q$, trained only on the $N$ training images; it can learn good posteriors for those images
#   and poor ones for new images, even when the decoder is fine
#   (the *amortized inference generalization gap*).
#
# To tell them apart we need the test bound with the encoder taken out of the picture. With the
# decoder fixed, the best Gaussian for each test image,
# $q^*(z \mid x') = \arg\min_{q \in \mathcal{Q}} \mathrm{KL}(q \,\|\, p_\theta(z \mid x'))$, gives
# the test ELBO of *optimal inference*. The difference
#
# $$
# \begin{aligned}
# \text{inference gap} &= \tfrac1M \sum_m \mathrm{ELBO}(x'_m;\, q^*) - \mathrm{ELBO}(x'_m;\, q_\phi) \\
#   &= \tfrac1M \sum_m \mathrm{KL}(q_\phi \,\|\, p_\theta(z \mid x'_m)) - \mathrm{KL}(q^* \,\|\, p_\theta(z \mid x'_m))
# \end{aligned}
# $$
#
# is the amortized inference generalization gap (Eq. 12 of the paper), and the optimal-inference
# curve shows the generative model's own overfitting. Here $q^*$ is found per test image by
# gradient ascent on its ELBO ({func}`gapkit.inference.optimal.per_point`, as in [chapter 1](01_elbo_tightness.ipynb): free means and standard deviations for
# every image, all optimized at once, starting from the encoder's output); the paper instead
# retrains a copy of the encoder on the test set ({func}`gapkit.inference.optimal.encoder`), and the sweep
# accepts both (`inference="optimal"` or `"optimal-encoder"`). On a linear-Gaussian model, where
# the posterior is known, the tests check that this gap ({func}`gapkit.analysis.sweep.inference_gap`) equals the exact
# $\mathrm{KL}(q_\phi \,\|\, p(z \mid x))$ averaged over the data.
#
# We report bounds in bits per dimension, $\mathrm{BPD} = -\mathrm{ELBO} / (D \ln 2)$: lower is better.

# %% tags=["remove-cell"]
# On Colab, install gapkit first; elsewhere gapkit must already be installed (`make book` does it).
import importlib.util, subprocess, sys
if importlib.util.find_spec("gapkit") is None:
    if "google.colab" not in sys.modules:
        raise ModuleNotFoundError("gapkit is not installed in this kernel: run `pip install -e .` in the repository")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/gapkit/gapkit"], check=True)

# %%
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from gapkit import experiments
from gapkit.book import plots
from gapkit.book.notebook import setup
from gapkit.experiments.generalization_gaps import SETTINGS

preset, device = setup("generalization-gaps")  # theme, $GAPKIT_PRESET, device, expected times

# %% tags=["hide-input"]
s = SETTINGS[preset.name]
for key in ("binary", "grey"):
    c = {**s["changes"], **s.get("per_dataset", {}).get(key, {})}
    plots.say(f"This chapter, {key}: {preset.dataset}, {c.get('train_subset') or 'all'} training images, "
              f"{c['epochs']} epochs, a checkpoint every {c['checkpoint_every']}; optimal inference: "
              f"{s['optimal']['steps']} Adam steps per checkpoint"
              f"{' (learning rate annealed to 0 along a cosine)' if s['optimal']['lr_decay'] else ''} "
              f"on {s['n_eval']} test and {s['n_eval']} training images.")

# %% [markdown]
# ## Training past the point of overfitting
#
# `python -m gapkit run generalization-gaps` does the same from the command line. The experiment
# trains one VAE on binary pixels (Bernoulli decoder) and one on grey pixels (the discretized
# logistic decoder of {cite}`salimans2017pixelcnn`, 256 values per pixel), saves a checkpoint every
# few epochs, and then sweeps the checkpoints ({func}`gapkit.analysis.sweep.sweep`): the training and test ELBO
# with the encoder, and the test (and training) ELBO with optimal inference. Every
# per-checkpoint result is cached, so nothing is computed twice. The `book` preset trains on a
# small subset of MNIST so that overfitting shows within CPU minutes; the `paper` preset is the
# paper's setting (all 50,000 images, 2x500 ReLU, latent 16, Adam 3e-4, 1000 epochs).

# %%
res = experiments.run("generalization-gaps", preset=preset.name)
D = res["datasets"]

# %% tags=["hide-input"]
NAMES = {"binary": "binary pixels (Bernoulli)", "grey": "grey pixels (discretized logistic)"}
for key, d in D.items():
    ds = d["dataset"]
    t = d["training"]
    plots.say(f"{key}: {ds['name']} ({ds['binarization']}), {ds['n_train']} training images, VAE "
          f"{ds['dim']}-{'-'.join(map(str, t['hidden']))}-{t['latent']}, Adam {t['lr']:g}; "
          f"{ds['n_test_eval']} test images evaluated at epochs {', '.join(map(str, d['epochs']))}.")
plots.say(f"Wall time {res['provenance']['wall_time_s']:.0f} s on {res['provenance']['device']}.")

# %% [markdown]
# ## Overfitting made visible
#
# The negative training and test ELBO at every checkpoint, with the amortized encoder (the
# paper's Figure 1). Overfitting shows as the two curves moving apart: the training BPD keeps
# falling while the test BPD stops falling or rises.

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, len(D), figsize=(11, 3.8))
for ax, (key, d) in zip(np.atleast_1d(axes), D.items()):
    plots.curves(d["epochs"], {"train": d["bpd"]["train"]["amortized"], "test": d["bpd"]["test"]["amortized"]}, "epoch",
                 "negative ELBO (BPD)", ax=ax, title=NAMES[key], legend="below")
plt.tight_layout()
plt.show()
for key, d in D.items():
    sm = d["summary"]
    if sm["overfits"]:
        plots.say(f"{key}: overfits. The test BPD is lowest at epoch {sm['best_epoch']} and rises by "
              f"{sm['test_rise_bpd']:.4f} BPD by epoch {sm['last_epoch']}, while the training BPD falls by "
              f"{-sm['train_change_bpd']:.4f} BPD.")
    else:
        plots.say(f"{key}: no overfitting at this preset: the test BPD is lowest at the last checkpoint "
              f"(epoch {sm['last_epoch']}, {d['bpd']['test']['amortized'][-1]:.4f} BPD).")

# %% [markdown]
# ## Separating the two gaps
#
# The same test set evaluated twice at every checkpoint: with the encoder (amortized) and with
# optimal inference for the fixed decoder (the paper's Figures 2 and 5). The vertical distance
# between the two test curves is the amortized inference generalization gap; the shape of the
# optimal curve is the generative model's own overfitting.

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, len(D), figsize=(11, 3.8))
for ax, (key, d) in zip(np.atleast_1d(axes), D.items()):
    plots.curves(d["epochs"], {"train (amortized)": d["bpd"]["train"]["amortized"], "test, amortized": d["bpd"]["test"]["amortized"],
                               "test, optimal inference": d["bpd"]["test"]["optimal"]},
                 "epoch", "negative ELBO (BPD)", ax=ax, title=NAMES[key], legend="below")
    ax.fill_between(d["epochs"], d["bpd"]["test"]["optimal"], d["bpd"]["test"]["amortized"], alpha=0.15, color="C1")
plt.tight_layout()
plt.show()

# %% [markdown]
# Is the overfitting the encoder's? Between the checkpoint with the best amortized test BPD and
# the last one, the amortized test BPD (A) is the optimal-inference test BPD (O) plus the
# inference gap (G), so its rise splits exactly into the decoder's part (the change of O) and
# the encoder's part (the change of G). The verdict below is computed from the results.

# %% tags=["hide-input"]
for key, d in D.items():
    sm = d["summary"]
    if not sm["overfits"]:
        split0 = d["bpd"]["test"]["amortized"][0] - d["bpd"]["train"]["amortized"][0]
        split1 = d["bpd"]["test"]["amortized"][-1] - d["bpd"]["train"]["amortized"][-1]
        plots.say(f"{key}: the test BPD did not rise at this preset, so there is no test-BPD rise to attribute. "
              f"The test-minus-train BPD still widens from {split0:.4f} to {split1:.4f} between epochs "
              f"{d['epochs'][0]} and {d['epochs'][-1]}; over the same checkpoints the inference gap goes from "
              f"{d['gap']['inference']['bpd'][0]:.4f} to {d['gap']['inference']['bpd'][-1]:.4f} BPD "
              f"({d['gap']['inference']['nats'][-1]:.1f} nats per image at the end) and the generative model gap "
              f"from {d['gap']['model']['bpd'][0]:.4f} to {d['gap']['model']['bpd'][-1]:.4f} BPD.")
        continue
    who = "mostly the encoder's" if sm["mostly_encoder"] else "NOT mostly the encoder's"
    plots.say(f"{key}: from epoch {sm['best_epoch']} to {sm['last_epoch']} the amortized test BPD rises by "
          f"{sm['test_rise_bpd']:.4f}; the inference gap grows by {sm['gap_change_bpd']:.4f} and the "
          f"optimal-inference test BPD changes by {sm['optimal_change_bpd']:+.4f}. "
          f"Overfitting here is {who}: the inference gap accounts for {100 * sm['encoder_share']:.0f}% of the rise"
          + (" (more than all of it: the decoder alone still improves on the test set)."
             if sm["optimal_change_bpd"] < 0 else "."))

# %% [markdown]
# ## The two gaps, stacked
#
# Over training, the distance from the *training* BPD with optimal inference up to the *test*
# BPD with the encoder splits into two non-overlapping parts:
#
# $$
# \underbrace{A_\text{test} - O_\text{train}}_{\text{total}}
#  = \underbrace{O_\text{test} - O_\text{train}}_{\text{generative model gap}}
#  + \underbrace{A_\text{test} - O_\text{test}}_{\text{inference gap}} ,
# $$
#
# with $O$ the BPD under optimal inference and $A$ under the encoder (the training term uses as
# many training images as the test term uses test images).

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, len(D), figsize=(11, 3.8))
for ax, (key, d) in zip(np.atleast_1d(axes), D.items()):
    e = d["epochs"]
    ax.stackplot(e, d["gap"]["model"]["bpd"], d["gap"]["inference"]["bpd"], alpha=0.75,
                 labels=["generative model gap $O_{test} - O_{train}$", "inference gap $A_{test} - O_{test}$"])
    ax.plot(e, np.add(d["gap"]["model"]["bpd"], d["gap"]["inference"]["bpd"]), "k.-", lw=1, label="total $A_{test} - O_{train}$")
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("gap (BPD)")
    ax.set_title(NAMES[key])
    plots.legend(ax, "below", ncol=1, fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# Where the stack grows with the epochs the VAE is overfitting; the colour that grows tells which
# part does it. (A band drawn below zero is a negative gap: e.g. a model gap below zero means the
# decoder fits these test images better than these training images.) The generative model gap
# measures how much better the decoder explains its training images than new ones; it can widen
# while the decoder's *test* BPD (the optimal-inference curve above) stays flat, which is what
# matters for generalization. Read from the results:

# %% tags=["hide-input"]
for key, d in D.items():
    o = d["bpd"]["test"]["optimal"]
    plots.say(f"{key}, epoch {d['epochs'][0]} -> {d['epochs'][-1]}: generative model gap "
          f"{d['gap']['model']['bpd'][0]:+.4f} -> {d['gap']['model']['bpd'][-1]:+.4f} BPD, inference gap "
          f"{d['gap']['inference']['bpd'][0]:+.4f} -> {d['gap']['inference']['bpd'][-1]:+.4f} BPD; the optimal-inference test BPD "
          f"moves by {o[-1] - o[0]:+.4f} overall and by {o[-1] - min(o):+.4f} from its best checkpoint "
          f"(epoch {d['epochs'][o.index(min(o))]}).")

# %% [markdown]
# ## Explore: the decomposition at one checkpoint
#
# The bar splits the amortized test BPD at one checkpoint into the training BPD under optimal
# inference, the generative model gap and the inference gap. Below: the figure at the last
# checkpoint, then the interactive version (the slider picks the checkpoint, reading the
# precomputed sweep; nothing is recomputed).

# %% tags=["hide-input"]
def decomposition(key, i, ax=None):
    d = D[key]
    ax = ax or plt.gca()
    base, mg, ig = d["bpd"]["train"]["optimal"][i], d["gap"]["model"]["bpd"][i], d["gap"]["inference"]["bpd"][i]
    ax.bar([0], [base], color="0.75", label=f"train, optimal inference {base:.4f}")
    ax.bar([0], [mg], bottom=[base], color="C0", label=f"generative model gap {mg:+.4f}")
    ax.bar([0], [ig], bottom=[base + mg], color="C1", label=f"inference gap {ig:+.4f}")
    hi = max(d["bpd"]["train"]["optimal"] + d["bpd"]["test"]["amortized"] + d["bpd"]["test"]["optimal"])
    ax.set_ylim(0, hi * 1.05)
    ax.set_xlim(-1, 1)
    ax.set_xticks([])
    ax.set_ylabel("BPD")
    ax.set_title(f"{NAMES[key]}, epoch {d['epochs'][i]}: test BPD {d['bpd']['test']['amortized'][i]:.4f}")
    plots.legend(ax, "right", fontsize=9)
    return ax


fig, ax = plt.subplots(figsize=(6.4, 3.6))
decomposition("binary", -1, ax)
plt.show()

# %% tags=["hide-input"]
import ipywidgets as widgets  # noqa: E402
from gapkit.book.widgets import interact  # noqa: E402


def _show(dataset, checkpoint):
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    decomposition(dataset, min(checkpoint, len(D[dataset]["epochs"]) - 1), ax)
    plt.show()


n_ck = max(len(d["epochs"]) for d in D.values())
interact(_show, dataset=widgets.Dropdown(options=list(D), value="binary"),
         checkpoint=widgets.IntSlider(min=0, max=n_ck - 1, value=n_ck - 1, description="checkpoint #",
                                      style={"description_width": "initial"}),
         grid={"checkpoint": min(n_ck, 16)});

# %% [markdown]
# ## The numbers
#
# Every checkpoint of both runs (BPD; the inference gap is also given in nats per image). The
# optimal-inference bounds come from a finite number of noisy gradient steps, so a gap within a
# few thousandths of a BPD of zero (even slightly negative) means "no measurable gap".

# %% tags=["hide-input"]
cols = {"epoch": "epochs", "train, amortized (BPD)": "bpd.train.amortized", "test, amortized (BPD)": "bpd.test.amortized",
        "test, optimal (BPD)": "bpd.test.optimal", "inference gap (BPD)": "gap.inference.bpd",
        "inference gap (nats)": "gap.inference.nats", "train, optimal (BPD)": "bpd.train.optimal",
        "model gap (BPD)": "gap.model.bpd"}
fmt = {c: ".4f" for c in cols if c != "epoch"} | {"inference gap (nats)": ".2f", "model gap (BPD)": "+.4f"}
for key, d in D.items():
    checkpoints = [{c: d.at(p)[j] for c, p in cols.items()} for j in range(len(d["epochs"]))]
    display(plots.records_table(checkpoints, {c: c for c in cols}, formats=fmt,
                                caption=f"{NAMES[key]} ({d['dataset']['name']}), every checkpoint"))

# %% [markdown]
# For comparison, the paper's own VAEs {cite}`zhang2022generalization`:

# %% tags=["hide-input"]
pp = res["paper"]
plots.say(f"The paper's binary-MNIST VAE (all {pp['n_train']:,} training images, {pp['epochs']} "
          f"epochs) reaches a test BPD of {pp['test_bpd_amortized']['binary']:.3f} with the encoder, and its grey-MNIST "
          f"VAE {pp['test_bpd_amortized']['grey']:.3f} ({pp['source']}); the `book` preset trains on far fewer images, "
          "so its numbers are worse and it overfits sooner.")

# %% [markdown]
# How fast is optimal inference for a whole test set at once? `python -m gapkit bench
# optimal-inference` times it against a loop over images.
#
# Where this leads: the encoder's overfitting is the problem that [chapter 3](03_wake_sleep.ipynb)
# attacks by training the encoder on samples from the model, and the inference gap measured here
# is the test-set amortization gap that [chapter 5](05_iterative_refinement.ipynb) closes by
# refinement.

# %% [markdown]
# How the findings of this chapter fare at every preset, with the papers' numbers next to ours: the
# [reproduction report](../book/reproduction.md).
