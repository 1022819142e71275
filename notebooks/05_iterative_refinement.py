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
# # 5. Refining the amortized posterior: SVI, GDIR and the amortization gap
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/gapkit/gapkit/blob/main/notebooks/05_iterative_refinement.ipynb)
#
# The encoder $q_\phi(z \mid x)$ answers every data point with one forward pass. The price is that
# its answer $\lambda_\phi(x) = (\mu_\phi(x), \sigma_\phi(x))$ need not be the best Gaussian for that
# point. With the model fixed, the best one is
#
# $$
# \begin{gathered}
# \lambda^*(x) = \arg\max_\lambda \mathcal{L}(x; \lambda), \\
# \mathcal{L}(x; \lambda) = \mathbb{E}_{q(z; \lambda)} \log w(z; \lambda), \qquad
# w(z; \lambda) = \frac{p_\theta(x, z)}{q(z; \lambda)} ,
# \end{gathered}
# $$
#
# and the difference $\mathcal{L}(x; \lambda^*) - \mathcal{L}(x; \lambda_\phi(x))
# = \mathrm{KL}(q_\phi \,\|\, p_\theta(z \mid x)) - \mathrm{KL}(q_{\lambda^*} \,\|\, p_\theta(z \mid x))$
# is the **amortization gap** {cite}`cremer2018inference,shu2019buffered`. Measured on the
# training data it is what the encoder failed to fit; measured on test data it is
# [chapter 2](02_generalization_gaps.ipynb)'s
# **inference generalization gap** {cite}`zhang2022generalization`, which also contains what the
# encoder failed to *generalize*.
#
# **Stochastic variational inference** (SVI) closes the gap by gradient ascent on each data point's
# own parameters, starting from the encoder's guess {cite}`krishnan2018challenges,shu2019buffered`;
# for Gaussian latents this is **gradient-descent iterative refinement** (GDIR)
# {cite}`hjelm2016iterative`:
#
# $$
# \begin{gathered}
# \lambda_0 = \lambda_\phi(x), \qquad
# \lambda_{i+1} = \lambda_i + \eta\, \mathrm{clip}\Big(\nabla_{\lambda} \tfrac1S \textstyle\sum_{s=1}^S
# \log w(z_{i,s}; \lambda_i)\Big), \\
# z_{i,s} = \mu_i + \sigma_i \odot \epsilon_{i,s} ,
# \end{gathered}
# $$
#
# with $\lambda = (\mu, \log\sigma)$, $S$ reparameterized samples per step, momentum, and the
# gradient norm clipped *per data point*. {func}`gapkit.inference.refine.refine` does this for a whole batch at
# once: the objective is the **sum** over points of their own ELBOs, so each point's gradient is
# exactly its own (the original GDIR code averaged over the minibatch, which silently divided every
# step size by the batch size). It returns the whole trajectory $\lambda_0, \dots, \lambda_k$ with its
# samples and log-weights ({class}`gapkit.inference.refine.Trajectory`), which [chapter 6](06_bsvi.ipynb) reuses.
#
# How good a proposal is for importance sampling is measured by the normalized **effective sample
# size** of $K$ weights $w_k = p(x, z_k) / q(z_k)$, $z_k \sim q$:
#
# $$
# \mathrm{ESS} = \frac{\left(\sum_k w_k\right)^2}{K \sum_k w_k^2} \in \left[\tfrac1K, 1\right],
# $$
#
# which is 1 when $q$ is the exact posterior (all weights equal) and $1/K$ when one weight dominates
# ({func}`gapkit.bounds.ess`).

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
import torch
from IPython.display import display

from gapkit import experiments
from gapkit.book import plots
from gapkit.book.notebook import setup
from gapkit.models import load_model
from gapkit.inference.refine import refine

preset, device = setup("refinement")  # theme, $GAPKIT_PRESET, device, expected times

# %% [markdown]
# ## The experiment
#
# `python -m gapkit run refinement` does the same from the command line: it trains one VAE with the
# ELBO and one with refinement inside training (GDIR, below), measures the gaps, and refines the
# posteriors of training and test images.

# %%
res = experiments.run("refinement", preset=preset.name)

# %% tags=["hide-input"]
s = res["settings"]
r = s["refine"]
plots.say(f"{res['dataset']['name']}: {res['dataset']['n_train']} training images, D = {res['dataset']['dim']}; "
      f"refinement: {r['optimizer']} (lr {r['lr']}, momentum {r['momentum']}), {r['samples']} samples "
      f"per step, clipping at {r['clip']} ({res['provenance']['wall_time_s']:.0f} s).")

# %% [markdown]
# ## 1. The amortization gap and the inference generalization gap
#
# For the plain VAE: the encoder's ELBO and the ELBO of per-point optimal inference (the best
# diagonal Gaussian for every point, {func}`gapkit.inference.optimal.per_point`, as in
# [chapter 1](01_elbo_tightness.ipynb)), on training images (the
# amortization gap) and on test images (the inference generalization gap), and how much of each gap
# 50 steps of refinement recover.

# %% tags=["hide-input"]
g = res["gaps"]
display(plots.table(
    [{"data": name, "encoder ELBO (nats)": g[split]["elbo_encoder"], "refined ELBO, 50 steps (nats)": g[split]["elbo_refined"],
      "optimal ELBO (nats)": g[split]["elbo_optimal"], "gap (nats)": g[split]["gap"],
      "share closed by refinement (%)": 100 * g[split]["refined_share"]}
     for split, name in (("train", "training (amortization gap)"), ("test", "test (inference generalization gap)"))],
    formats={"encoder ELBO (nats)": ".2f", "refined ELBO, 50 steps (nats)": ".2f", "optimal ELBO (nats)": ".2f",
             "gap (nats)": ".2f", "share closed by refinement (%)": ".0f"},
    caption="The plain VAE's ELBO, nats per image (higher is better)"))
a, ig = g["train"]["gap"], g["test"]["gap"]
fg = res["findings"]["gaps"]
plots.say(
    f"On training images the encoder is {a:.2f} nats short of the best Gaussian; on test images "
    f"{ig:.2f} nats (difference {ig - a:+.2f} nats). "
    + ("The two gaps are about the same size here: at this preset the encoder has not overfitted, so "
       "the inference generalization gap is essentially the amortization gap." if fg["similar"] else
       "The test gap is larger: the encoder also generalizes worse than it fits, the part chapter 2 "
       "attributes to overfitting of the encoder." if fg["test_larger"] else
       "The test gap is smaller than the training gap at this preset."))

# %% [markdown]
# ## 2. Refinement curves
#
# Refinement of every image's $q$ for 0 to 50 steps, from the encoder's output and from the prior
# $\mathcal{N}(0, I)$. At each step we draw fresh samples from $q_i$ to estimate its ELBO and the
# normalized ESS of its importance weights (cf. Figure 1 of the supplement of
# {cite}`hjelm2016iterative`).

# %% tags=["hide-input"]
cv = res["curves"]
steps = cv["steps"]
K = s["eval_samples"]
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for split, ls in (("train", "-"), ("test", "--")):
    for ax, q in zip(axes, ("elbo", "ess")):
        ax.plot(steps, cv[q][split]["encoder"], ls, marker="o", ms=3, label=f"{split}, from the encoder")
        ax.plot(steps, cv[q][split]["prior"], ls, marker="s", ms=3, label=f"{split}, from the prior")
lo = min(min(cv["elbo"]["train"]["encoder"]), min(cv["elbo"]["test"]["encoder"]))
hi = max(max(cv["elbo"]["train"]["encoder"]), max(cv["elbo"]["test"]["encoder"]))
axes[0].set_ylim(lo - 3 * (hi - lo) - 1, hi + 0.3 * (hi - lo) + 0.2)
axes[0].set(xlabel="refinement steps", ylabel="ELBO (nats per image, higher is better)",
            title="ELBO of the refined q")
axes[1].set(xlabel="refinement steps", ylabel=f"normalized ESS of {K} weights",
            title="effective sample size", ylim=(0, 1))
plots.legend(axes[0], "below", fontsize=9)
plots.legend(axes[1], "below", fontsize=9)
plt.show()

# %% tags=["hide-input"]
e0, e50 = cv["elbo"]["test"]["encoder"][0], cv["elbo"]["test"]["encoder"][-1]
p0, p50 = cv["elbo"]["test"]["prior"][0], cv["elbo"]["test"]["prior"][-1]
n0, n50 = cv["ess"]["test"]["encoder"][0], cv["ess"]["test"]["encoder"][-1]
fc = res["findings"]["curves"]
first = fc["prior_reaches_encoder_at"]
plots.say(
    f"On test images refinement raises the ELBO from {e0:.2f} to {e50:.2f} nats "
    f"({'an improvement' if fc['improves'] else 'no improvement'} of {e50 - e0:+.2f}) and the normalized ESS "
    f"from {n0:.3f} to {n50:.3f}. Started from the prior, the ELBO is {p0:.2f} nats at step 0 and "
    f"{p50:.2f} after {steps[-1]} steps; "
    + (f"it needs {first} steps to match the encoder's answer at step 0: that is what the encoder's "
       "initial guess is worth." if first is not None else
       f"it does not reach the encoder's step-0 ELBO within {steps[-1]} steps: the encoder's guess is "
       "worth more than all of them."))

# %% [markdown]
# What to see: the first few steps from the encoder do most of the work and the curve flattens at
# the per-point optimum (the ELBO cannot pass $\log p(x)$); the ESS rises with the ELBO, because a
# $q$ closer to the posterior gives more even importance weights. From the prior, refinement has to
# travel the whole way, so the encoder's initial guess is worth many steps.
#
# ## 3. Training with refinement
#
# Refinement can also be used while training {cite}`hjelm2016iterative,krishnan2018challenges`. On
# a minibatch the encoder proposes $\lambda_0$, $k$ refinement steps give $\lambda_k$ (no gradient
# flows through them), and the two networks get different losses
# ({class}`gapkit.objectives.refined.GDIR`, an objective for the book's one training loop, {func}`gapkit.train.train`):
#
# $$
# \text{encoder: } \max_\phi\, \mathcal{L}(x; \lambda_\phi(x)), \qquad
# \text{decoder: } \max_\theta\, \mathbb{E}_{q(z; \mathrm{sg}(\lambda_k))}
#   \log p_\theta(x, z) .
# $$
#
# The decoder thus learns from a better posterior than the encoder can give. We compare it with the
# plain VAE of the same size trained for the same epochs, with and without refinement at test time:
# the negative ELBO ("bound") and the negative IWAE-$K$ bound ("NLL"), in nats on test images,
# lower is better. The paper's numbers {cite}`hjelm2016iterative` (MNIST, 200 Gaussian latents,
# full training set) are printed beside ours for reference; our model, data and training are much
# smaller, so compare the orderings, not the values.

# %% tags=["hide-input"]
t, p = res["table"], res["paper"]["table1"]
Kn = s["nll_K"]
display(plots.table(
    [{"model": "VAE", "test bound": t["vae"]["bound"], f"IWAE-{Kn} NLL": t["vae"]["nll"],
      "bound, refined at test": t["vae"]["bound_refined"], "NLL, refined at test": t["vae"]["nll_refined"],
      "paper: bound / NLL": f"{p['vae']['bound']:.2f} / {p['vae']['nll']:.2f} (refined: "
                            f"{p['vae_refined']['bound']:.2f} / {p['vae_refined']['nll']:.2f})"},
     {"model": f"GDIR ({s['gdir']['steps']} steps in training)", "test bound": t["gdir"]["bound"],
      f"IWAE-{Kn} NLL": t["gdir"]["nll"], "bound, refined at test": t["gdir"]["bound_refined"],
      "NLL, refined at test": t["gdir"]["nll_refined"],
      "paper: bound / NLL": f"{p['gdir']['bound']:.2f} / {p['gdir']['nll']:.2f}"}],
    formats={c: ".2f" for c in ("test bound", f"IWAE-{Kn} NLL", "bound, refined at test", "NLL, refined at test")},
    caption=f"Test negative bounds, nats per image (lower is better); the paper's column is {res['paper']['source']} "
            "(cited)"))
v, gd, ft = t["vae"], t["gdir"], res["findings"]["table"]
pv, pr, pg = p["vae"], p["vae_refined"], p["gdir"]
plots.say(
    f"Refinement at test time {'tightens' if ft['refinement_tightens_vae'] else 'does not tighten'} the "
    f"VAE's bound ({v['bound']:.2f} -> {v['bound_refined']:.2f} nats; paper: {pv['bound']:.2f} -> {pr['bound']:.2f}) and "
    f"changes its NLL estimate by {v['nll_refined'] - v['nll']:+.3f} nats "
    f"({v['nll']:.2f} -> {v['nll_refined']:.2f}; paper: {pv['nll']:.2f} -> {pr['nll']:.2f}, {pr['nll'] - pv['nll']:+.2f}). "
    f"The GDIR-trained model's refined bound is {gd['bound_refined']:.2f} against the VAE's "
    f"{v['bound_refined']:.2f} ({'better' if ft['gdir_bound_better'] else 'not better'}), "
    f"and its refined NLL {gd['nll_refined']:.2f} against {v['nll_refined']:.2f} "
    f"({'better' if ft['gdir_nll_better'] else 'not better'}). In the paper GDIR training "
    f"and test-time refinement of a VAE end up level ({pg['bound']:.2f} / {pg['nll']:.2f} against "
    f"{pr['bound']:.2f} / {pr['nll']:.2f}); here "
    + (f"they end up level too (within 0.5 nats)." if ft["level"] else
       f"they do not: the GDIR-trained model's refined NLL is {v['nll_refined'] - gd['nll_refined']:+.2f} nats "
       f"{'better' if gd['nll_refined'] < v['nll_refined'] else 'worse'} than the refined VAE's, so training "
       "with refinement gave a better decoder, not just a better posterior, at this preset."))

# %% [markdown]
# ## 4. Watching one posterior move
#
# A VAE with a 2-D latent space on the 8x8 digits, small enough that the true posterior
# $p_\theta(z \mid x) \propto p_\theta(x, z)$ can be drawn on a grid. The static figure shows the
# default setting; the sliders below redraw it: the number of steps and the step size (momentum,
# started at the prior, so that the path is long enough to see).
# Left: the mean ELBO of 200 digits against steps (20 samples per step). Right: one digit's true
# posterior (contours), the start $q_0$ (dashed) and the refined $q_k$ (solid ellipse, two standard
# deviations) with the path of its mean.

# %% tags=["hide-input"]
from gapkit.data import load

wmodel = load_model(res["widget"]["checkpoint"])
wdata = load("digits", "threshold", seed=0)
xw = wdata.fixed("test", seed=0)[:200]
x1 = xw[3:4]
with torch.no_grad():
    mu0, sd0 = wmodel.encode(x1)
    c = mu0[0].numpy()
    lo, hi = min(-2.5, *(c - 3)), max(2.5, *(c + 3))           # the prior and the posterior both in view
    gx = gy = np.linspace(lo, hi, 150)
    Z = torch.tensor(np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 1, 2), dtype=torch.float32)
    logp = wmodel.log_joint(x1, Z)[:, 0].reshape(150, 150).numpy()  # log p(x, z) on the grid
post = np.exp(logp - logp.max())


def prior(n):
    return torch.zeros(n, 2), torch.ones(n, 2)


MAX_STEPS = 50
_paths = {}


def paths(lr, optimizer, start):
    """The MAX_STEPS-step refinement of the 200 digits and of the one digit (cached): a draw with
    k steps shows the first k steps of these paths, so moving the steps slider refines nothing."""
    key = (float(lr), optimizer, start)
    if key not in _paths:
        init_all, init_1 = (prior(len(xw)), prior(1)) if start == "prior" else (None, None)
        _paths[key] = tuple(refine(wmodel, x, MAX_STEPS, init=init, optimizer=optimizer, lr=lr, samples=20, seed=0,
                                   keep_samples=False) for x, init in ((xw, init_all), (x1, init_1)))
    return _paths[key]


def draw(steps=20, lr=0.1, optimizer="momentum", start="prior"):
    tr_all, tr = paths(lr, optimizer, start)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    axes[0].plot(range(steps + 1), tr_all.elbo[: steps + 1].mean(1).numpy(), marker="o", ms=2)
    axes[0].set(xlabel="refinement steps", ylabel="ELBO (nats per digit, higher is better)",
                title=f"{optimizer}, step size {lr:g}, from the {start}")
    ax = axes[1]
    ax.contour(gx, gy, post, levels=6, cmap="Greys")
    m_, s_ = tr.mu[: steps + 1, 0].numpy(), tr.std[: steps + 1, 0].numpy()
    ax.plot(m_[:, 0], m_[:, 1], ".-", ms=3, color="C1", lw=0.8, label="path of the mean")
    plots.ellipse(ax, m_[0], s_[0], color="C0", ls="--", lw=1.5, label=f"$q_0$ ({start})")
    plots.ellipse(ax, m_[-1], s_[-1], color="C3", lw=1.5, label=f"$q_{{{steps}}}$ (refined)")
    ax.set(xlabel="$z_1$", ylabel="$z_2$", title="true posterior (contours) and q", xlim=(gx[0], gx[-1]),
           ylim=(gy[0], gy[-1]))
    plots.legend(ax, "right", fontsize=9)
    plt.show()


draw()

# %% [markdown]
# The interactive version: the number of refinement steps and the step size (momentum, from the
# prior). On the rendered page every point of the grid below is precomputed (8 step counts x 5 step
# sizes); in a live notebook any number of steps is drawn.

# %% tags=["hide-input"]
import ipywidgets as widgets
from gapkit.book.widgets import interact

interact(draw, steps=widgets.IntSlider(20, 0, MAX_STEPS, 1, description="steps"),
         lr=widgets.SelectionSlider(options=[0.01, 0.03, 0.1, 0.3, 1.0], value=0.1, description="step size"),
         optimizer=widgets.fixed("momentum"), start=widgets.fixed("prior"),
         grid={"steps": [0, 1, 2, 5, 10, 20, 35, 50]});

# %% [markdown]
# Too small a step size and the mean crawls; too large and it overshoots and the ELBO falls
# (with clipping at norm 1 the damage is bounded, but not removed). Adam's steps have a size of
# about the step size whatever the gradient, so it needs a smaller one.
#
# ## Closing note
#
# Where this leads: [chapter 6](06_bsvi.ipynb) keeps the whole refinement trajectory instead of its
# last step and gets a tighter bound from it; [chapter 7](07_bits_back.ipynb) runs optimal inference
# inside a compressor, where every nat of gap is a longer file. The numbers of this run, from
# `results.json`:

# %% tags=["hide-input"]
plots.say(f"Amortization gap (train) {a:.2f} nats, inference generalization gap (test) {ig:.2f} nats.",
          f"Refinement, test ELBO: step 0 {e0:.2f} → step {steps[-1]} {e50:.2f} nats; ESS {n0:.3f} → {n50:.3f}.")
display(plots.table([{"model": name.upper(), "bound": t[name]["bound"], "NLL": t[name]["nll"],
                      "bound, refined": t[name]["bound_refined"], "NLL, refined": t[name]["nll_refined"]}
                     for name in ("vae", "gdir")],
                    formats={c: ".2f" for c in ("bound", "NLL", "bound, refined", "NLL, refined")},
                    caption=f"Test negative bounds, nats per image (lower is better). The paper ({res['paper']['source']}): "
                            f"VAE {pv['bound']:.2f} / {pv['nll']:.2f}, VAE refined at test {pr['bound']:.2f} / "
                            f"{pr['nll']:.2f}, GDIR {pg['bound']:.2f} / {pg['nll']:.2f}"))

# %% [markdown]
# How the findings of this chapter fare at every preset, with the papers' numbers next to ours: the
# [reproduction report](../book/reproduction.md).
