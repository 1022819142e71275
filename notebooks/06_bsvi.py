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
# # 6. Buffered SVI and the generalized IWAE bound
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/gapkit/gapkit/blob/main/notebooks/06_bsvi.ipynb)
#
# [Chapter 5](05_iterative_refinement.ipynb) closed part of the amortization gap with stochastic variational inference (SVI): start
# from the encoder's proposal $q_0 = q_\phi(z \mid x)$ with parameters $\lambda_0$ and take $k$
# gradient steps on the data point's own ELBO,
#
# $$
# \lambda_{i+1} = \lambda_i + \eta \, \nabla_{\lambda_i} \log w(z_i; \lambda_i), \qquad
# z_i \sim q(z; \lambda_i), \qquad w(z; \lambda) = \frac{p_\theta(x, z)}{q(z; \lambda)} .
# $$
#
# SVI keeps only the last proposal $q_k$ and throws away the *trajectory* $q_0, \dots, q_k$ and its
# importance weights $w_0, \dots, w_k$. Buffered SVI (BSVI) {cite}`shu2019buffered` keeps them in a
# buffer and averages them like IWAE {cite}`burda2016importance` ([chapter 1](01_elbo_tightness.ipynb),
# [chapter 4](04_iwae_snr.ipynb)) does:
#
# $$
# \text{BSVI-}k(x) = \mathbb{E}_{q(z_{0:k} \mid x)} \log \sum_{i=0}^{k} \pi_i \, w_i ,
# \qquad w_i = \frac{p_\theta(x, z_i)}{q(z_i \mid z_{<i}, x)}, \qquad \sum_i \pi_i = 1 .
# $$
#
# The samples are neither independent ($\lambda_{i+1}$ depends on $z_i$) nor identically distributed,
# so this is not the IWAE bound. It is still a lower bound of $\log p_\theta(x)$, by the
# **generalized IWAE bound** (Theorem 1 of {cite}`shu2019buffered`): for any joint proposal
# $q(z_{0:k})$, any conditioning sets $v(i) \subset \{0..k\} \setminus \{i\}$ and any fixed $\pi$,
#
# $$
# \mathbb{E}_{q(z_{0:k})} \log \sum_{i=0}^k \pi_i \frac{p(x, z_i)}{q(z_i \mid z_{v(i)})} \le \log p(x),
# $$
#
# because each term $p(x, z_i) / q(z_i \mid z_{v(i)})$ has expectation $p(x)$ (integrate $z_i$ out
# first), so the weighted sum is an unbiased estimate of $p(x)$, and Jensen's inequality does the
# rest. SVI-$k$ ($\pi = (0, \dots, 0, 1)$) and IWAE (independent identical proposals, uniform $\pi$)
# are special cases. We call SVI-0 the encoder's ELBO, SVI-$k$ the ELBO $\mathbb{E} \log w_k$ of the
# last proposal, and BSVI-$k$ the bound above (uniform $\pi_i = 1/(k+1)$ unless we say otherwise;
# {func}`gapkit.bounds.bsvi`). The trajectory is {func}`gapkit.inference.refine.refine`'s, run by
# {func}`gapkit.inference.bsvi.buffer_trajectory`.

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

preset, device = setup("bsvi")  # theme, $GAPKIT_PRESET, device, expected times

# %% [markdown]
# ## Running the experiment
#
# `python -m gapkit run bsvi` does the same from the command line; the result is cached. The
# experiment trains every model of the chapter (VAE, IWAE-$k'$, SVI-$k'$ and BSVI-$k$-SIR with
# $k' = k + 1$), then evaluates each one with a long SVI trajectory on test images. What each method
# draws per data point and training step differs:
#
# - the VAE: one sample $z \sim q_\phi(z|x)$;
# - IWAE-$k'$: $k'$ samples from $q_\phi(z|x)$, all of them importance weights of its bound;
# - BSVI-$k$(-SIR): $k$ SVI steps, one sample from each proposal $q_0, \dots, q_k$ ($k + 1 = k'$ samples;
#   the first $k$ also drive the steps), all $k + 1$ of them importance weights of the buffer;
# - SVI-$k'$: $k'$ SVI steps, one sample from each of $q_0, \dots, q_{k'}$ ($k' + 1 = k + 2$ samples); the
#   decoder is trained on the last one only, $\log p_\theta(x, z_{k'})$ with $z_{k'} \sim q_{k'}$, and no
#   importance weight enters its loss.

# %%
res = experiments.run("bsvi", preset=preset.name)

# %% tags=["hide-input"]
S = res["settings"]
k, kp, K = S["k"], S["k_prime"], S["eval_steps"]
plots.say(f"{S['dataset']}: {S['n_train']} training images, {S['n_test_eval']} test images for evaluation; "
      f"k = {k}, k' = {kp}; SVI: {S['svi']['optimizer']} lr {S['svi']['lr']}, momentum {S['svi']['momentum']}, "
      f"clip {S['svi']['clip']}; evaluation trajectories of K = {K} steps "
      f"({res['provenance']['wall_time_s']:.0f} s)."
          + (f" The paper trains with k = {res['paper']['k']}; this preset uses k = {k} to keep the run short."
             if k != res["paper"]["k"] else ""))

# %% [markdown]
# ## 1. The generalized IWAE bound, checked exactly
#
# On the linear-Gaussian model ({class}`gapkit.models.linear_gaussian.LinearGaussian`, as in
# [chapter 1](01_elbo_tightness.ipynb)) $\log p(x)$ is known in closed form. We start SVI at the prior
# ($q_0 = \mathcal{N}(0, I)$, a deliberately bad encoder), run many independent trajectories for a
# few data points, and compare the Monte Carlo means of SVI-$k$ and BSVI-$k$ with $\log p(x)$.
# "Optimized" uses the one global $\pi$ that maximizes the bound on a *separate* set of
# trajectories (maximizing $\frac1N\sum_n \log\sum_i \pi_i w_{i,n}$ over the simplex is concave;
# we solve it with the EM fixed point $\pi_i \leftarrow \frac1N \sum_n \pi_i w_{i,n} / \sum_j \pi_j w_{j,n}$,
# {func}`gapkit.inference.bsvi.optimize_pi`).

# %% tags=["hide-input"]
lg = res["linear_gaussian"]
steps_lg = np.array(lg["steps"])
fig, ax = plt.subplots()
for name, label in (("svik", "SVI-k"), ("bsvik", "BSVI-k, uniform π"), ("bsvik_opt", "BSVI-k, optimized π")):
    gap, se = np.array(lg["gap"][name]), np.array(lg["se"][name])
    ax.errorbar(steps_lg, gap, yerr=2 * se, marker="o", ms=3, capsize=2, label=label)
ax.axhline(0, color="k", lw=1, ls="--", label="exact log p(x)")
ax.set_xlabel("SVI steps k")
ax.set_ylabel("bound − log p(x) (nats)")
ax.set_title("Linear-Gaussian model: every bound stays below log p(x)")
plots.legend(ax, "right")
plt.show()
ok = res.at("findings.theorem1.below_log_px")
plots.say(f"Largest (bound − log p(x)) / standard error over {len(lg['log_px'])} data points and every k: "
      f"{lg['max_z']:.2f} -> {'all bounds lie below log p(x) within Monte Carlo error' if ok else 'A BOUND EXCEEDS log p(x)'}. "
      f"At k = {steps_lg[-1]}, bound − log p(x): SVI-k {lg['gap']['svik'][-1]:.3f} nats, "
      f"BSVI-k {lg['gap']['bsvik'][-1]:.3f}, BSVI-k with optimized π {lg['gap']['bsvik_opt'][-1]:.3f} "
      f"({lg['repeats']} trajectories per point).")

# %% [markdown]
# Error bars are two standard errors. Theorem 1 says that no curve may cross the zero line by more
# than its Monte Carlo error, although the proposals are dependent and not identical; the line
# above says whether that held, and how much tighter the buffer makes the bound than SVI's last
# proposal alone (the early proposals cover parts of the posterior that the last one misses).

# %% [markdown]
# ## 2. BSVI on a trained VAE
#
# The VAE trained with the plain ELBO, evaluated on test images ({func}`gapkit.inference.bsvi.refined_bounds`):
# for every $k$ the encoder's ELBO
# (SVI-0), the ELBO of the $k$-th SVI proposal (SVI-$k$), and BSVI-$k$ with uniform and optimized
# buffer weights (π fitted on training images). Section 6.5 of {cite}`shu2019buffered` uses the
# ordering BSVI-$k$ ≥ SVI-$k$ ≥ SVI-0 as a health check of training.

# %% tags=["hide-input"]
steps = np.array(res["steps"])
fig, ax = plt.subplots()
ax.plot(steps, res["svi0"], ls="--", label="SVI-0 (encoder ELBO)")
ax.plot(steps, res["svik"], marker="o", ms=2, label="SVI-k (last proposal)")
ax.plot(steps, res["bsvik"], marker="o", ms=2, label="BSVI-k, uniform π")
ax.plot(steps, res["bsvik_opt"], marker="o", ms=2, label="BSVI-k, optimized π")
ax.set_xlabel("SVI steps k")
ax.set_ylabel("test bound (nats per image, higher is better)")
ax.set_title(f"{res['ordering']['model']}: BSVI-k ≥ SVI-k ≥ SVI-0?")
plots.legend(ax, "right")
plt.show()
o = res["ordering"]
held = "held" if o["held_at_k"] else "did NOT hold"
lines = []
lines.append(f"At k = {o['k']}: BSVI-k {o['bsvik']:.2f} (optimized π {o['bsvik_opt']:.2f}), SVI-k {o['svik']:.2f}, "
      f"SVI-0 {o['svi0']:.2f} nats: the ordering BSVI-k ≥ SVI-k ≥ SVI-0 {held}.")
lines.append(f"Over k = 1..{o['k']}: BSVI-k >= SVI-k at {o['bsvi_ge_svi']} of {o['k']} values of k "
      f"(optimized π: {o['bsvi_opt_ge_svi']}), SVI-k ≥ SVI-0 at {o['svi_ge_svi0']} of {o['k']}.")
sw = res["svi_lr_sweep"]
lines.append(f"SVI step size (momentum {S['svi']['momentum']}, clip {S['svi']['clip']}), SVI-{sw['k']} - SVI-0 on the VAE: "
      + ", ".join(f"lr {lr}: {b - a:+.2f}" for lr, a, b in zip(sw["lr"], sw["svi0"], sw["svik"])) + " nats.")
d1 = dict(zip(sw["lr"], np.array(sw["svik"]) - np.array(sw["svi0"])))
d_paper, lr_paper = res.at("findings.svi_lr.paper_lr_minus_svi0"), res.at("paper.svi_lr")
if d_paper is not None:
    lines.append(f"With the paper's lr {lr_paper}, SVI-{sw['k']} is {'worse' if d_paper < 0 else 'better'} than SVI-0 on "
          f"this model ({d_paper:+.2f} nats); with lr {S['svi']['lr']}: {d1.get(S['svi']['lr'], float('nan')):+.2f} nats.")
plots.say(*lines)

# %% [markdown]
# The gap between BSVI-$k$ and SVI-$k$ is what the buffer buys: single SVI proposals improve slowly
# with one-sample gradients, while averaging the whole trajectory's weights also reduces variance.
# The last printed line shows how SVI-$k$ depends on the SVI step size; the paper's step size was tuned
# for its PixelCNN models, and the experiment uses the step size printed at the top.

# %% [markdown]
# ## 3. BSVI as a likelihood estimator
#
# Appendix C of {cite}`shu2019buffered` compares BSVI-$K$ (one trajectory of $K$ steps, $K + 1$
# weights) with IWAE using $K$ to $5K$ independent samples from the encoder. The tightest estimate
# per model is in bold.

# %% tags=["hide-input"]
est = res["estimator_table"]
names = [f"BSVI-{est['bsvi']['steps']}"] + [f"IWAE-{n}" for n in est["iwae"]["K"]]


EST = dict(columns={"model (trained with)": "method", f"{names[0]} (nats)": "bsvi",
                   **{f"{n} (nats)": f"iwae.{i}" for i, n in enumerate(names[1:])},
                   "tightest": lambda r: names[int(np.argmax([r["bsvi"], *r["iwae"]]))]},
           formats={f"{n} (nats)": ".2f" for n in names})
display(plots.records_table(est["rows"], caption="Test log-likelihood estimates, nats per image (higher is tighter)", **EST))
wins = res.at("findings.estimator.bsvi_at_least_iwae_5K")
plots.say(f"{names[0]} is at least as tight as {names[-1]} for {len(wins)} of {len(est['rows'])} models"
          + (f" ({', '.join(wins)})" if wins else "") + "; "
          + "; ".join(f"{r['method']}: {names[0]} − {names[-1]} = {r['bsvi'] - r['iwae'][-1]:+.2f}" for r in est["rows"])
          + " nats.")

# %% [markdown]
# ## 4. Training with BSVI
#
# In Algorithm 1 of {cite}`shu2019buffered` the trajectory is computed with the gradient stopped.
# The encoder $\phi$ is trained on its own ELBO, $\log w(z_0; \lambda_0)$. The decoder $\theta$ is
# trained on the refined proposals:
#
# * **SVI-$k'$** ({class}`gapkit.objectives.refined.SVI`): $\nabla_\theta \log p_\theta(x, z_{k'})$, at the last proposal only;
# * **BSVI-$k$** ({class}`gapkit.objectives.refined.BSVI`): $\nabla_\theta \log \sum_i \pi_i w_i$ over the buffer. Its gradient is
#   $\mathbb{E}_{r(i)} \nabla_\theta \log p_\theta(x, z_i)$ with $r(i) = \pi_i w_i / \sum_j \pi_j w_j$
#   (Lemma 1);
# * **BSVI-$k$-SIR** ({class}`gapkit.objectives.refined.BSVISIR`): one index $i \sim r(i)$ and $\nabla_\theta \log p_\theta(x, z_i)$. This is
#   the same gradient in expectation, at the cost of SVI;
# * **-π**: a global $\pi = \mathrm{softmax}(a)$ trained by gradient ascent on the BSVI bound
#   ({class}`gapkit.inference.bsvi.BufferWeights`).
#
# The table gives the test log-likelihood (BSVI-$K$, uniform π), ELBO\* (the ELBO of the $K$-th
# SVI proposal), and its two terms KL\* $= \mathrm{KL}(q_K \,\|\, p(z))$ and
# Reconstruction\* $= -\mathbb{E}_{q_K} \log p_\theta(x \mid z)$ (Appendix B). The paper's decoder was a
# 12-layer gated **PixelCNN** on Omniglot, SVHN and FashionMNIST; ours is the book's MLP on MNIST,
# so the absolute numbers differ and **the ordering is what to compare**. The paper's test
# log-likelihoods:

# %% tags=["hide-input"]
pp = res["paper"]
plots.say(f"{pp['source']}: " + ", ".join(f"{r['method']} {r['nats']:.2f}" for r in pp["log_likelihood"]) + " nats: "
          + " > ".join(r["method"] for r in sorted(pp["log_likelihood"], key=lambda r: -r["nats"])) + ".")

# %% tags=["hide-input"]
tt = {r["method"]: r for r in res.at("training_table.rows")}


TRAIN = {"model": "method", f"log-likelihood, BSVI-{K} (nats)": "log_likelihood", "± s.e. (nats)": "log_likelihood_se",
         "ELBO* (nats)": "elbo_star", "KL* (nats)": "kl_star", "Reconstruction* (nats)": "reconstruction_star"}
TRAIN_FMT = dict(formats={c: ".2f" for c in TRAIN if c.endswith("(nats)")}, best={f"log-likelihood, BSVI-{K} (nats)": "max"})
display(plots.records_table(res.at("training_table.rows"), {**TRAIN, "train time (s)": "train_time_s"},
                            formats=TRAIN_FMT["formats"] | {"train time (s)": ".0f"}, best=TRAIN_FMT["best"],
                            caption="Test metrics of each trained model, nats per image"))
ll = {m: r["log_likelihood"] for m, r in tt.items()}
order = sorted(ll, key=ll.get, reverse=True)
lines = ["Test log-likelihood ranking (best first): " + " > ".join(f"{m} ({ll[m]:.2f})" for m in order) + "."]
sir, svi_, vae, iw = f"BSVI-{k}-SIR", f"SVI-{kp}", "VAE", f"IWAE-{kp}"
ftr = res.at("findings.training")
if ftr["sir_minus_svi"] is not None:
    d = ftr["sir_minus_svi"]
    lines.append(f"{sir} vs {svi_}: {d:+.2f} nats: "
          + ("BSVI-SIR trained the better model, as in the paper." if d > 0
             else "the paper's finding (BSVI-SIR better than SVI) did NOT reproduce here."))
if ftr["sir_minus_iwae"] is not None:
    lines.append(f"{sir} vs {iw}: {ftr['sir_minus_iwae']:+.2f} nats (the paper: BSVI-SIR ahead of IWAE by "
                 f"{ftr['paper_sir_minus_iwae']:.2f} nats).")
if sir + "-pi" in ll and sir in ll:
    lines.append(f"Learning π ({sir}-pi) vs uniform π: {ll[sir + '-pi'] - ll[sir]:+.2f} nats.")
lines.append("(The ± are standard errors over test images; the models are evaluated on the same images, so "
             "differences between models are less noisy than these.)")
if svi_ in ll and vae in ll:
    lines.append(f"{svi_} vs VAE: {ll[svi_] - ll[vae]:+.2f} nats; "
          f"KL\\* {tt[svi_]['kl_star']:.2f} vs {tt[vae]['kl_star']:.2f} (more latent use means a larger KL\\*).")
plots.say(*lines)

# %% [markdown]
# ## 5. Monitoring during training
#
# Every BSVI or SVI training step computes the whole trajectory anyway, so the three bounds come
# for free on each minibatch (Figure 6 of {cite}`shu2019buffered`): (a) SVI-$k$ − SVI-0, what
# refinement adds; (b) BSVI-$k$ − SVI-$k$, what the buffer adds; (c) the mean position of the
# learned buffer weights $\mathbb{E}_\pi[i]/k$ (0.5 for uniform weights, 1 for SVI's last step).
# The curves are averages over windows of consecutive minibatches.

# %% tags=["hide-input"]
mon = res["monitor"]
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
for m, tr in mon.items():
    it = np.array(tr["iteration"])
    axes[0].plot(it, np.array(tr["svik"]) - np.array(tr["svi0"]), label=m)
    axes[1].plot(it, np.array(tr["bsvik"]) - np.array(tr["svik"]), label=m)
    if "pi_position" in tr:
        axes[2].plot(it, tr["pi_position"], label=m)
axes[0].set_title("(a) SVI-k − SVI-0")
axes[1].set_title("(b) BSVI-k − SVI-k")
axes[2].set_title("(c) buffer weight mean E_π[i]/k")
for a in axes:
    a.set_xlabel("training iteration (minibatch)")
    a.axhline(0 if a is not axes[2] else 0.5, color="k", lw=0.8, ls=":")
axes[0].set_ylabel("difference (nats per image)")
axes[1].set_ylabel("difference (nats per image)")
axes[2].set_ylabel("E_π[i] / k")
plt.tight_layout()
handles, labels = axes[0].get_legend_handles_labels()
fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(labels), 4), fontsize=9)
plt.show()
lines = []
for m, tr in mon.items():
    line = (f"{m}: BSVI-k >= SVI-k on {100 * tr['frac_bsvi_ge_svi']:.0f}% of minibatches (mean {tr['mean_bsvi_minus_svi']:+.2f} nats), "
            f"SVI-k >= SVI-0 on {100 * tr['frac_svi_ge_svi0']:.0f}% (mean {tr['mean_svi_minus_svi0']:+.2f} nats)")
    if "pi_position" in tr:
        line += f"; final E\\_π[i]/k = {tr['pi_position'][-1]:.3f}"
    lines.append(line + ".")
plots.say(*lines)

# %% [markdown]
# ## 6. Explore: the buffer weights
#
# Choose a model, the number of SVI steps $k$ and the buffer weighting: uniform, optimized (π
# fitted on training trajectories) or all weight on the last step (which is SVI-$k$). The left
# panel shows the three bounds on the test images against $k$; the right panel shows the weights π.
# Everything is precomputed, so the widget only redraws. First the static figure at the default
# values:

# %% tags=["hide-input"]
curves = res["curves"]
WEIGHTINGS = ("uniform", "optimized", "last step only")


def draw(model="VAE", k_sel=None, weighting="uniform"):
    c = curves[model]
    kmax = len(c["svik"]) - 1
    k_sel = kmax if k_sel is None else min(int(k_sel), kmax)
    if weighting == "uniform":
        b, pi = c["bsvik"], np.full(k_sel + 1, 1 / (k_sel + 1))
    elif weighting == "optimized":
        b, pi = c["bsvik_opt"], np.array(c["pi_opt"][k_sel])
    else:
        b, pi = c["svik"], np.eye(k_sel + 1)[-1]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    ks = np.arange(kmax + 1)
    a1.plot(ks, c["svi0"], ls="--", label="SVI-0")
    a1.plot(ks, c["svik"], label="SVI-k")
    a1.plot(ks, b, label=f"BSVI-k ({weighting})")
    a1.axvline(k_sel, color="gray", lw=0.8)
    vals = (c["svi0"][k_sel], c["svik"][k_sel], b[k_sel])
    a1.set_title(f"k = {k_sel}: SVI-0 {vals[0]:.2f}, SVI-k {vals[1]:.2f}, BSVI-k {vals[2]:.2f} nats", fontsize=10)
    a1.set_xlabel("SVI steps k")
    a1.set_ylabel("test bound (nats per image)")
    plots.legend(a1, "below", fontsize=9)
    a2.bar(np.arange(k_sel + 1), pi)
    a2.set_xlabel("proposal i (0 = encoder)")
    a2.set_ylabel("buffer weight π_i")
    a2.set_title(f"{model}: E_π[i]/k = {(pi * np.arange(k_sel + 1)).sum() / max(k_sel, 1):.2f}", fontsize=10)
    plt.tight_layout()
    plt.show()


default_model = "VAE" if "VAE" in curves else next(iter(curves))
draw(default_model, None, "uniform")

# %% [markdown]
# And the interactive version: the number of refinement steps k and the buffer's weighting (on
# the rendered page 11 values of k, both ends included, are precomputed for each weighting; in a
# live notebook every k is drawn).

# %% tags=["hide-input"]
import ipywidgets as widgets
from gapkit.book.widgets import interact

kmax = len(curves[default_model]["svik"]) - 1
interact(draw,
         k_sel=widgets.IntSlider(value=kmax, min=0, max=kmax, step=1, description="k"),
         weighting=widgets.Dropdown(options=WEIGHTINGS, value="uniform", description="π"),
         model=widgets.fixed(default_model),
         grid={"k_sel": 11});

# %% [markdown]
# ## Closing note
#
# Where this leads: [chapter 7](07_bits_back.ipynb) turns bounds like these into code lengths. The
# numbers of this run (preset printed at the top), in one place:

# %% tags=["hide-input"]
plots.say(f"Ordering on the {o['model']} test images at k = {o['k']}: BSVI-k {o['bsvik']:.2f} (opt. π {o['bsvik_opt']:.2f}) "
          f"/ SVI-k {o['svik']:.2f} / SVI-0 {o['svi0']:.2f} nats: BSVI-k ≥ SVI-k ≥ SVI-0 {held}.")
display(plots.records_table(res.at("training_table.rows"), TRAIN, caption="Training with BSVI: test metrics, nats per image",
                            **TRAIN_FMT))
display(plots.records_table(est["rows"], caption="BSVI as a likelihood estimator: test estimates, nats per image "
                                                 "(higher is tighter)", **EST))

# %% [markdown]
# How the findings of this chapter fare at every preset, with the papers' numbers next to ours: the
# [reproduction report](../book/reproduction.md).
