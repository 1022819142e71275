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
# # 0. A variational autoencoder, trained
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/gapkit/gapkit/blob/main/notebooks/00_vae_basics.ipynb)
#
# On Colab, the `paper` preset wants a GPU: *Runtime > Change runtime type > GPU*.
#
# Every chapter of this book studies one VAE from a different angle, so we start by training
# one. A VAE has a decoder $p_\theta(x \mid z)\,p(z)$ and an encoder $q_\phi(z \mid x)$, and both
# are trained by maximizing the evidence lower bound (ELBO) {cite}`kingma2014auto`:
#
# $$
# \log p_\theta(x) \;\ge\; \mathcal{L}(x) = \mathbb{E}_{q_\phi(z \mid x)}
#   \left[\log p_\theta(x \mid z) + \log p(z) - \log q_\phi(z \mid x)\right].
# $$
#
# We report bounds in nats per image and in bits per dimension,
# $\mathrm{BPD} = -\mathcal{L} / (D \ln 2)$ with $D$ pixels ({func}`gapkit.bounds.bpd`).
#
# In gapkit the model is a {class}`gapkit.models.vae.VAE`; {func}`gapkit.estimators.log_weights` draws
# $z \sim q_\phi(z \mid x)$ and returns the log-weights $\log p_\theta(x, z) - \log q_\phi(z \mid x)$,
# {func}`gapkit.bounds.elbo` averages them, and {func}`gapkit.train.train` maximizes the ELBO
# ({class}`gapkit.objectives.bounds_based.ELBO`) with Adam.

# %% tags=["remove-cell"]
# On Colab, install gapkit first; elsewhere gapkit must already be installed (`make book` does it).
import importlib.util, subprocess, sys
if importlib.util.find_spec("gapkit") is None:
    if "google.colab" not in sys.modules:
        raise ModuleNotFoundError("gapkit is not installed in this kernel: run `pip install -e .` in the repository")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/gapkit/gapkit"], check=True)

# %%
import matplotlib.pyplot as plt
import gapkit
from gapkit import experiments
from gapkit.book import plots
from gapkit.book.notebook import setup

preset, device = setup()  # theme, $GAPKIT_PRESET, device, expected times

# %% [markdown]
# ## Training
#
# {func}`gapkit.experiments.run` runs the `vae-basics` experiment (`python -m gapkit run vae-basics`
# does the same from the command line). The result is cached: running the cell again reads
# `results.json` instead of training again.

# %%
res = experiments.run("vae-basics", preset=preset.name)

# %% tags=["hide-input"]
K = res.at("metrics.test.iwae.K")
plots.table([{"split": split, "ELBO (nats)": res.at(f"metrics.{split}.elbo.nats"),
              "ELBO (BPD)": res.at(f"metrics.{split}.elbo.bpd"),
              f"IWAE-{K} (nats)": res.at(f"metrics.{split}.iwae.nats"),
              f"IWAE-{K} (BPD)": res.at(f"metrics.{split}.iwae.bpd")}
             for split in ("train", "test")],
            formats={"ELBO (nats)": ".2f", "ELBO (BPD)": ".4f", f"IWAE-{K} (nats)": ".2f", f"IWAE-{K} (BPD)": ".4f"},
            caption=f"The trained VAE's bounds, mean per image ({res['provenance']['wall_time_s']:.0f} s to compute)")

# %% [markdown]
# ## The bound during training
#
# Both curves fall as the model learns; the test curve sits above the training curve (a worse
# bound), a first glimpse of the generalization gap that [chapter 2](02_generalization_gaps.ipynb)
# takes apart.

# %% tags=["hide-input"]
c = res["curves"]
fig, ax = plt.subplots()
plots.curves(c["epoch"], {"train": c["train_bpd"], "test": c["test_bpd"]}, "epoch",
             "negative ELBO (BPD, lower is better)", ax=ax, title="ELBO during training")
plt.show()

# %% [markdown]
# The same curves, interactively: the slider picks an evaluation epoch and the title gives both
# bounds there. (The callback only redraws the saved curves; on the rendered page every epoch's
# figure is precomputed.)

# %% tags=["hide-input"]
import ipywidgets as widgets
from gapkit.book.widgets import interact


def curves_until(epoch):
    i = c["epoch"].index(epoch)
    fig, ax = plt.subplots()
    plots.curves(c["epoch"][: i + 1], {"train": c["train_bpd"][: i + 1], "test": c["test_bpd"][: i + 1]},
                 "epoch", "negative ELBO (BPD, lower is better)", ax=ax,
                 title=f"epoch {epoch}: train {c['train_bpd'][i]:.4f}, test {c['test_bpd'][i]:.4f} BPD")
    ax.set_xlim(0, c["epoch"][-1] * 1.05)
    ax.set_ylim(min(c["train_bpd"] + c["test_bpd"]) * 0.98, max(c["train_bpd"] + c["test_bpd"]) * 1.02)
    plt.show()


interact(curves_until, epoch=widgets.SelectionSlider(options=c["epoch"], value=c["epoch"][-1],
                                                     description="epoch"));

# %% [markdown]
# ## Reconstructions and samples
#
# Top: test images. Middle: the decoder's mean at the encoder's mean, $\mathbb{E}[x \mid z=\mu_\phi(x)]$.
# Bottom: the decoder's mean for $z \sim p(z)$.

# %% tags=["hide-input"]
shape = tuple(res["dataset"]["image_shape"])
fig, axes = plt.subplots(3, 1, figsize=(6.4, 3.6))
plots.image_grid(res["images"]["test"], shape, ax=axes[0], title="test images")
plots.image_grid(res["images"]["reconstruction"], shape, ax=axes[1], title="reconstructions")
plots.image_grid(res["images"]["samples"], shape, ax=axes[2], title="samples from the model")
plt.show()

# %% [markdown]
# ## Where this leads
#
# The rest of the book takes this model apart:
# [chapter 1](01_elbo_tightness.ipynb) asks how far the ELBO is from $\log p_\theta(x)$ and how much
# a better $q$ recovers; [chapter 2](02_generalization_gaps.ipynb) asks whether the decoder or the
# encoder overfits; [chapter 3](03_wake_sleep.ipynb) trains the encoder on the model's own samples;
# [chapter 4](04_iwae_snr.ipynb) trains with tighter bounds; [chapter 5](05_iterative_refinement.ipynb)
# and [chapter 6](06_bsvi.ipynb) refine $q$ per image; and [chapter 7](07_bits_back.ipynb) turns the
# ELBO into the length of a real compressed file.

# %% [markdown]
# How the findings of this chapter fare at every preset, with the papers' numbers next to ours: the
# [reproduction report](../book/reproduction.md).
