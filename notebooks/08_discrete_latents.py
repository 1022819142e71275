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
# # 8. Discrete latents: adaptive iterative refinement, reweighted wake-sleep and BiHM
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/gapkit/gapkit/blob/main/notebooks/08_discrete_latents.ipynb)
#
# [Chapter 5](05_iterative_refinement.ipynb) refined a Gaussian posterior by gradient steps on each
# image's own ELBO. Most of the supplement of {cite}`hjelm2016iterative` is about the other case:
# **binary** latent variables, where that recipe breaks. This chapter reproduces its Figures 1-3
# and its comparison with bidirectional Helmholtz machines.
#
# ## 1. Why gradient refinement fails for binary latents
#
# The model is a **sigmoid belief network** (SBN): $L = 1, 2$ or $3$ layers of binary units over
# binary pixels, each layer a logistic regression on the one above,
#
# $$
# \begin{aligned}
# p(x, h) &= p(h_L)\, p(h_{L-1} \mid h_L) \cdots p(x \mid h_1), \\
# p(h_{l-1} = 1 \mid h_l) &= \sigma(W_l h_l + b_{l-1}),
# \end{aligned}
# $$
#
# and the approximate posterior a factorized Bernoulli $q(h \mid x) = \prod_j \mu_j^{h_j}
# (1 - \mu_j)^{1 - h_j}$ whose means $\mu_0$ come from a recognition network of the same depth
# ({class}`gapkit.models.sbn.SBN`). GDIR moved $\mu$ along $\nabla_\mu \mathcal{L}$ estimated with
# reparameterized samples $z = \mu + \sigma \epsilon$. A binary $h$ is not a differentiable function
# of $\mu$ and noise, so there is no reparameterized gradient: what is left is the score-function
# estimator $\frac1K \sum_k \log w_k \nabla_\lambda \log q(h_k)$ in the logits $\lambda$ of $q$, whose
# variance grows with the number of units; the supplement says that GDIR with discrete units
# "suffers the same shortcomings as when passing the gradients directly" {cite}`hjelm2016iterative`.
# Section 2 measures it ({func}`gapkit.inference.air.score_function_refine`, with a leave-one-out baseline).
#
# **Adaptive iterative refinement** (AIR) needs no gradient. The posterior's marginals
# $\mathbb{E}_{p(h \mid x)}[h]$ are the best factorized Bernoulli in the inclusive sense, and importance
# sampling from the current $q_t$ estimates them; AIR moves part of the way there:
#
# $$
# \begin{aligned}
# h^{(k)} &\sim q_t, \qquad w^{(k)} = \frac{p(x, h^{(k)})}{q_t(h^{(k)} \mid x)}, \qquad
# \tilde w^{(k)} = \frac{w^{(k)}}{\sum_j w^{(j)}}, \\
# \mu_{t+1} &= (1 - \gamma)\, \mu_t + \gamma \sum_{k=1}^K \tilde w^{(k)} h^{(k)} ,
# \end{aligned}
# $$
#
# with damping $\gamma = 0.9$ in the supplement ({func}`gapkit.inference.air.refine`, all images at once, the
# sample dimension first). How good $q_t$ is as a proposal is measured, as in chapter 5, by the
# normalized effective sample size $\mathrm{ESS} = (\sum_k w_k)^2 / (K \sum_k w_k^2)$.
#
# **Training** with AIR ({class}`gapkit.objectives.discrete.AIR`): refine the recognition network's $\mu_0$ for $T$
# steps, then learn the generative model from samples of the refined $q_T$, either with the lower
# bound's gradient $\frac1K \sum_k \nabla \log p(x, h^{(k)})$ ("AIR", the supplement's *vanilla*
# AIR) or with the importance-weighted $\sum_k \tilde w^{(k)} \nabla \log p(x, h^{(k)})$ ("reweighted
# AIR"); the recognition network is pulled toward the refined posterior by
# $\mathrm{KL}(q_T \,\|\, q_\psi)$, in closed form for factorized Bernoullis, or (the *inclusive-KL*
# variant) by $-\sum_k \tilde w^{(k)} \log q_\psi(h^{(k)} \mid x)$, an estimate of
# $\mathrm{KL}(p(h \mid x) \,\|\, q_\psi)$. **Reweighted wake-sleep** {cite}`bornschein2015reweighted`
# ({class}`gapkit.objectives.discrete.RWS`) uses the same weighted gradients with samples from $q_\psi$ itself, no
# refinement, plus a sleep update of $q_\psi$ on the model's own samples. The **bidirectional
# Helmholtz machine** {cite}`bornschein2016bidirectional` ({class}`gapkit.objectives.discrete.BiHM`) replaces
# $w$ by $\sqrt{p(x, h) / q(h \mid x)}$ (the supplement's Eq. 3) and maximizes the bound
# $2 \log \frac1K \sum_k \sqrt{w_k} \le \log p(x)$ ({func}`gapkit.bounds.bihm`); refining with those
# weights gives **BiHM+**.

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
from IPython.display import Markdown, display

from gapkit import experiments
from gapkit.book import plots
from gapkit.book.notebook import setup

preset, device = setup("discrete-latents")  # theme, $GAPKIT_PRESET, device, expected times

# %% [markdown]
# ## The experiment
#
# `python -m gapkit run discrete-latents` does the same from the command line: it trains eleven
# SBNs (every method of Figure 2 on two layers; AIR on one and three layers; RWS and BiHM on three),
# refines the test posteriors, and estimates test log-likelihoods.

# %%
res = experiments.run("discrete-latents", preset=preset.name)
s, d = res["settings"], res["dataset"]

# %% tags=["hide-input"]
ps = res["paper_settings"]
display(Markdown(
    f"{d['name']} ({d['binarization']} binarization), {d['n_train']} training images of {d['dim']} pixels; "
    f"{s['units']} units per layer (paper: {ps['layers']}), {s['K']} samples per AIR step in training, "
    f"damping γ = {s['gamma']}, {s['epochs']} epochs of {s['updates_per_epoch']} updates "
    f"(batch {s['batch_size']}, Adam {s['lr']:g}). The paper trained for {ps['epochs']} epochs on the whole "
    f"training set: this run has {100 * res['epochs_share_of_paper']:.1f}% of its epochs and "
    f"{d['n_train']} of its training images. The run took {res['provenance']['wall_time_s']:.0f} s."))
F = {f["key"]: f for f in res["findings"]}


def finding(key):
    """One of the supplement's claims with the verdict computed by the experiment."""
    f = F[key]
    verdict = "**holds**" if f["holds"] else "**does not hold**"
    return f"*{f['claim']}*: {verdict} here ({f['detail']})."


# %% [markdown]
# ## 2. Refinement at test time (Figure 1)
#
# Networks with one, two and three layers trained with (reweighted) AIR, 20 steps per update. For
# each test image we start from the recognition network's $\mu_0$ and run AIR for up to 50 steps,
# recording at every step the lower bound and the normalized ESS of the samples drawn from $q_t$.
# Solid lines use the paper's damping $\gamma = 0.9$; dashed lines a gentler $\gamma = 0.1$. The
# right panel shows the entropy of $q_t$: how spread out the refined posterior still is.

# %% tags=["hide-input"]
f1 = res["figure1"]
st, gam = f1["steps"], f1["gamma"]
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
for i, c in enumerate(f1["depths"]):
    lab = f"{c['layers']} layer{'s' if c['layers'] != 1 else ''}"
    for which, ls in (("paper", "-"), ("gentle", "--")):
        for ax, q in zip(axes, ("elbo", "ess", "entropy")):
            ax.plot(st, c[which][q], ls, color=f"C{i}", label=f"{lab}, $\\gamma$ = {gam[which]}")
axes[0].set(xlabel="AIR steps", ylabel="lower bound (nats per image)", title="lower bound of $q_t$")
axes[1].set(xlabel="AIR steps", ylabel=f"normalized ESS of {f1['K']} samples", ylim=(0, 1),
            title="effective sample size")
axes[2].set(xlabel="AIR steps", ylabel="entropy of $q_t$ (nats)", title="spread of $q_t$")
axes[1].legend(fontsize=7)
fig.tight_layout()
plt.show()

# %% tags=["hide-input"]
c3 = next(c for c in f1["depths"] if c["layers"] == 3)
p3, g3 = c3["paper"], c3["gentle"]
display(Markdown(" ".join([finding("refinement_improves_bound"), finding("refinement_improves_ess"),
                           finding("beyond_training_steps")])))
display(Markdown(
    f"With γ = {gam['paper']} the entropy of the three-layer q_t falls from {p3['entropy'][0]:.1f} to "
    f"{p3['entropy'][-1]:.1f} nats in {st[-1]} steps; with γ = {gam['gentle']} it ends at "
    f"{g3['entropy'][-1]:.1f} nats, and the lower bound moves from {g3['elbo'][0]:.2f} to "
    f"{g3['elbo'][-1]:.2f} nats (with γ = {gam['paper']}: {p3['elbo'][0]:.2f} to "
    f"{p3['elbo'][-1]:.2f})."))

# %% [markdown]
# Gradient steps against AIR, on the three-layer network: refinement of the logits of $q$ by
# score-function gradient ascent on each image's ELBO (the best of a grid of step sizes, same number
# of samples per step) beside AIR with both dampings.

# %% tags=["hide-input"]
sf = f1["score_function"]
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for which, ls in (("paper", "-"), ("gentle", "--")):
    lab = f"AIR, $\\gamma$ = {gam[which]}"
    axes[0].plot(st, c3[which]["elbo"], ls, color="C2", label=lab)
    axes[1].plot(st, c3[which]["ess"], ls, color="C2", label=lab)
axes[0].plot(st, sf["elbo"], color="C3", label=f"score-function gradient, step size {sf['best_lr']:g}")
axes[1].plot(st, sf["ess"], color="C3", label=f"score-function gradient, step size {sf['best_lr']:g}")
axes[0].set(xlabel="refinement steps", ylabel="lower bound (nats per image)", title="three layers: lower bound")
axes[1].set(xlabel="refinement steps", ylabel=f"normalized ESS of {f1['K']} samples", ylim=(0, 1),
            title="three layers: effective sample size")
axes[0].legend(fontsize=8)
fig.tight_layout()
plt.show()
display(Markdown(finding("air_beats_gradient") + " Final lower bounds for every step size tried: "
                 + ", ".join(f"{lr:g}: {e:.2f}" for lr, e in zip(sf["lrs"], sf["final_elbo"])) + " nats."))

# %% [markdown]
# Why the damping matters: $\sum_k \tilde w^{(k)} h^{(k)}$ is a *random* estimate of the posterior
# marginals. When a few samples carry most of the weight (a low ESS), it lies near one of them, a
# corner of the cube, and with $\gamma = 0.9$ each step moves $\mu$ 90% of the way there. A unit
# whose mean reaches 0 or 1 never draws the other value again, so the drift is absorbed: $q_t$
# narrows onto a few configurations, its entropy falls, and the ESS can rise merely because all
# samples become alike, while the lower bound, which pays for the lost entropy, can fall. A small $\gamma$
# averages the noisy estimates over many steps, like a small learning rate. The ESS alone is
# therefore no proof of a better posterior; the lower bound is.
#
# ## 3. Training: AIR against reweighted wake-sleep (Figures 2 and 3)
#
# The two-layer networks trained with every method, and evaluated during training (at the epochs
# marked) on a fixed set of training images with samples from the recognition network $q_\psi$ (no refinement):
# the log-likelihood estimate (IWAE with these samples) and the ESS, against epochs and against the
# training wall-clock time (evaluation excluded).

# %% tags=["hide-input"]
tr2 = next(t for t in res["training"] if t["layers"] == 2)
fig, axes = plt.subplots(2, 2, figsize=(12, 8))
for j, h in enumerate(tr2["runs"]):
    o = h["objective"]
    ls = ":" if "steps" not in o else ("-" if o["steps"] == 20 else "--")
    for col, x_key in ((0, "epoch"), (1, "seconds")):
        axes[0, col].plot(h[x_key], h["iwae"], ls, marker="o", ms=3, color=f"C{j}", label=h["method"])
        axes[1, col].plot(h[x_key], h["ess"], ls, marker="o", ms=3, color=f"C{j}", label=h["method"])
for col, xl in ((0, "epochs"), (1, "training wall-clock time (s)")):
    axes[0, col].set(xlabel=xl, ylabel=f"log-likelihood estimate, IWAE-{s['eval_K']} (nats)")
    axes[1, col].set(xlabel=xl, ylabel=f"normalized ESS of {s['eval_K']} samples")
axes[0, 0].set_title("two layers: log-likelihood on training images")
axes[1, 0].set_title("two layers: effective sample size of $q_\\psi$")
axes[0, 1].legend(fontsize=7)
fig.tight_layout()
plt.show()

# %% [markdown]
# Figure 3 of the supplement: the negative lower bound and the ESS for AIR (reweighted, 20 steps)
# and RWS with two and three layers, against updates and against wall-clock time.

# %% tags=["hide-input"]
fig, axes = plt.subplots(2, 2, figsize=(12, 8))
for i, t in enumerate(res["training"]):
    runs = {r["method"]: r for r in t["runs"]}
    for method, ls in ((res["air"], "-"), ("RWS", ":")):
        h = runs[method]
        label = f"{'AIR-20' if method == res['air'] else 'RWS'}, {t['layers']} layers"
        for col, x_key in ((0, "updates"), (1, "seconds")):
            axes[0, col].plot(h[x_key], -np.array(h["elbo"]), ls, marker="o", ms=3, color=f"C{i}", label=label)
            axes[1, col].plot(h[x_key], h["ess"], ls, marker="o", ms=3, color=f"C{i}", label=label)
for col, xl in ((0, "updates"), (1, "training wall-clock time (s)")):
    axes[0, col].set(xlabel=xl, ylabel="negative lower bound (nats, lower is better)")
    axes[1, col].set(xlabel=xl, ylabel=f"normalized ESS of {s['eval_K']} samples")
axes[0, 1].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% tags=["hide-input"]
display(Markdown(" ".join([finding("air_slower_per_epoch"), finding("air_better_per_update"),
                           finding("air_higher_ess"), finding("rws_faster_in_wall_clock")])))

# %% [markdown]
# ## 4. AIR against BiHM and BiHM+
#
# Three-layer networks trained with AIR (reweighted, 20 steps) and with BiHM; the test NLL is
# $-\log p(x)$ estimated by importance sampling (IWAE) from the recognition network, and from the
# posterior refined by 20 AIR steps (with BiHM's weights for BiHM+), in nats, lower is better.
# The paper's numbers (3 layers of 200 units, 500 epochs, 10,000 samples) are beside ours.

# %% tags=["hide-input"]
n, pn = res["nll"], res["paper_nll"]
rows = [{"model": "AIR", "refinement": "none", "path": "air.encoder", "paper": None},
        {"model": "AIR", "refinement": f"{s['test_steps']} steps, gamma {gam['paper']}", "path": "air.refined.paper",
         "paper": pn["AIR"]},
        {"model": "AIR", "refinement": f"{s['test_steps']} steps, gamma {gam['gentle']}", "path": "air.refined.gentle",
         "paper": None},
        {"model": "BiHM", "refinement": "none", "path": "bihm.encoder", "paper": pn["BiHM"]},
        {"model": "BiHM+", "refinement": f"{s['test_steps']} steps, gamma {gam['paper']}", "path": "bihm.refined.paper",
         "paper": pn["BiHM+"]},
        {"model": "BiHM+", "refinement": f"{s['test_steps']} steps, gamma {gam['gentle']}",
         "path": "bihm.refined.gentle", "paper": None}]
nll_col = f"test NLL, IWAE-{s['nll_K']} (nats)"
display(plots.records_table(rows, {"model": "model", "test refinement": "refinement",
                                   nll_col: lambda r: n.at(r["path"] + ".nll"),
                                   "negative BiHM bound (nats)": lambda r: n.at(r["path"] + ".bihm_bound"),
                                   "paper NLL (nats)": "paper"},
                            formats={c: ".2f" for c in (nll_col, "negative BiHM bound (nats)", "paper NLL (nats)")},
                            caption=f"Test NLL of three-layer SBNs on {s['nll_n']} test images"))
display(Markdown(" ".join([finding("bihm_plus_beats_bihm"), finding("air_beats_bihm_plus")])))
display(Markdown(
    f"How far this is from the paper: {s['epochs']} epochs on {d['n_train']} images against {ps['epochs']} "
    f"epochs on the full training set ({100 * res['epochs_share_of_paper']:.1f}% of the epochs), "
    f"{s['units']} rather than {ps['layers']} units per layer, {s['nll_K']} rather than {ps['nll_K']} "
    "importance samples. "
    + (f"Our AIR network's refined test NLL, {n.at('air.refined.paper.nll'):.1f} nats, is "
       f"{n.at('air.refined.paper.nll') - pn['AIR']:.1f} nats above the paper's {pn['AIR']:.2f}: "
       if d["dim"] == 784 else f"These are {d['dim']}-pixel images, not MNIST, so the values cannot be set "
       "beside the paper's: ")
    + "only the orderings can be compared."))

# %% [markdown]
# ## 5. Choosing the number of refinement steps
#
# The three-layer network's test images one by one: the distribution over images of the ESS and of
# the change of the lower bound after $T$ AIR steps, for both dampings. The static figure shows
# $T = 20$; the slider redraws it (precomputed by the experiment, nothing is trained here).

# %% tags=["hide-input"]
sl = res["slider"]
per = {sl["gamma"][which]: {k: np.array(v) for k, v in sl[which].items()} for which in ("paper", "gentle")}


def draw(T=20):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    gains = {g_: a["elbo"][T] - a["elbo"][0] for g_, a in per.items()}
    edges = np.histogram_bin_edges(np.concatenate(list(gains.values())), bins=40)   # shared bins
    for i, (g_, a) in enumerate(per.items()):
        axes[0].hist(a["ess"][T], bins=20, range=(0, 1), alpha=0.5, color=f"C{i}",
                     label=f"$\\gamma$ = {g_}: mean {a['ess'][T].mean():.3f}")
        axes[1].hist(gains[g_], bins=edges, alpha=0.5, color=f"C{i}",
                     label=f"$\\gamma$ = {g_}: mean {gains[g_].mean():+.2f}")
    axes[0].hist(per[sl["gamma"]["paper"]]["ess"][0], bins=20, range=(0, 1), histtype="step", color="k",
                 label="step 0 (recognition network)")
    axes[0].set(xlabel=f"normalized ESS after {T} steps", ylabel="test images", title=f"ESS after {T} AIR steps")
    axes[1].set(xlabel=f"lower bound after {T} steps minus at step 0 (nats)", ylabel="test images",
                title="change of the lower bound")
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    plt.show()


draw()

# %% [markdown]
# Move the slider: the rendered book shows figures precomputed at 11 values of T (the nearest one
# in between); a live kernel (Colab or a local Jupyter) redraws at every value.

# %% tags=["hide-input"]
import ipywidgets as widgets
from gapkit.book.widgets import interact

interact(draw, T=widgets.IntSlider(20, 0, len(f1["steps"]) - 1, 1, description="AIR steps"), grid={"T": 11});

# %% [markdown]
# ## Which of the supplement's findings hold here
#
# Each claim of the supplement, decided by `gapkit.experiments.discrete_latents.findings` from this
# run's numbers.

# %% tags=["hide-input"]
display(plots.table([{"claim": f["claim"], "here": "holds" if f["holds"] else "does not hold",
                      "numbers": f["detail"]} for f in res["findings"]],
                    caption=f"The supplement's findings at the {preset.name!r} preset"))

# %% [markdown]
# How the findings of this chapter fare at every preset, with the papers' numbers next to ours: the
# [reproduction report](../book/reproduction.md).
