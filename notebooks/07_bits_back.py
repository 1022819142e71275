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
# # 7. Bits-back coding with ANS: a real lossless compressor from a VAE
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/gapkit/gapkit/blob/main/notebooks/07_bits_back.ipynb)
#
# A VAE's negative ELBO is measured in nats, but it is more than a score: with *bits-back
# coding* {cite}`townsend2019practical` it becomes the length of a real compressed file. This
# chapter builds that compressor ({class}`gapkit.coding.codec.BitsBackCodec`), checks that it is lossless and that its code length is the
# -ELBO of [chapter 0](00_vae_basics.ipynb)'s VAE, and then shows what the rest of the book buys:
# better inference gives shorter files
# {cite}`zhang2022generalization`.

# %% tags=["remove-cell"]
# On Colab, install gapkit first; elsewhere gapkit must already be installed (`make book` does it).
import importlib.util, subprocess, sys
if importlib.util.find_spec("gapkit") is None:
    if "google.colab" not in sys.modules:
        raise ModuleNotFoundError("gapkit is not installed in this kernel: run `pip install -e .` in the repository")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/gapkit/gapkit"], check=True)

# %%
import constriction
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display

from gapkit import experiments
from gapkit.book import plots
from gapkit.book.notebook import setup
from gapkit.coding import BitsBackCodec
from gapkit.models import VAE

preset, device = setup("bits-back")  # theme, $GAPKIT_PRESET, device, expected times

# %% [markdown]
# ## 1. Source coding and ANS, a stack of bits
#
# Shannon: no lossless code can spend fewer than $-\log_2 P(x)$ bits on average on symbols drawn
# from $P$, and good entropy coders get within a fraction of a bit of it over a whole message.
# Asymmetric numeral systems (ANS) {cite}`duda2013ans` keep the message as one big integer $s$,
# a **stack**: pushing symbol $x$ with quantized probability $f_x / 2^r$ (cumulative $c_x$) maps
# $s \mapsto \lfloor s / f_x \rfloor 2^r + (s \bmod f_x) + c_x$, which grows $\log_2 s$ by about
# $-\log_2(f_x / 2^r)$ bits; popping inverts it exactly, last in, first out. Here is the whole
# coder in a few lines of Python (an unbounded integer, no renormalization), checked against the
# production coder of the `constriction` library on the same symbols.

# %%
def rans_push(s, x, freqs, r):
    c = sum(freqs[:x])
    return (s // freqs[x] << r) + s % freqs[x] + c


def rans_pop(s, freqs, r):
    slot = s & ((1 << r) - 1)
    x, c = 0, 0
    while c + freqs[x] <= slot:
        c += freqs[x]
        x += 1
    return x, freqs[x] * (s >> r) + slot - c


r = 8
freqs = [200, 40, 16]                        # P = (200, 40, 16) / 256
symbols = np.random.default_rng(0).choice(3, size=400, p=np.array(freqs) / 256)
s = 1 << 64                                  # a start state (65 bits)
for x in symbols[::-1]:
    s = rans_push(s, int(x), freqs, r)
ours_bits = s.bit_length() - 65              # bits the symbols added
decoded = []
for _ in symbols:
    x, s = rans_pop(s, freqs, r)
    decoded.append(x)
shannon = -np.log2(np.array(freqs)[symbols] / 256).sum()
coder = constriction.stream.stack.AnsCoder()
model = constriction.stream.model.Categorical(np.array(freqs) / 256, perfect=False)
coder.encode_reverse(symbols.astype(np.int32), model)
lib_bits = coder.num_bits()
lib_back = coder.decode(model, len(symbols))

# %% tags=["hide-input"]
display(plots.table([{"coder": "Shannon bound -log2 P", "bits": shannon, "round trip exact": "–"},
                     {"coder": "toy rANS (above)", "bits": ours_bits, "round trip exact": str(decoded == list(symbols))},
                     {"coder": "constriction (whole 32-bit words)", "bits": lib_bits,
                      "round trip exact": str(bool(np.array_equal(lib_back, symbols)))}],
                    formats={"bits": lambda v: f"{v:.1f}" if isinstance(v, float) else f"{v:d}"},
                    caption=f"{len(symbols)} symbols"))

# %% [markdown]
# ## 2. Bits back, step by step
#
# A VAE gives $p(z)\,p(x \mid z)$ but no tractable $p(x)$. Bits-back coding (Algorithm 1 of
# {cite}`zhang2022generalization`) spends the ANS stack like this, for one image $x$:
#
# 1. **pop** $z$ with $q(z \mid x)$: decoding random-looking bits *is* sampling, and takes
#    $-\log_2 q(z \mid x)$ bits *off* the stack;
# 2. **push** $x$ with $p(x \mid z)$: $-\log_2 p(x \mid z)$ bits on;
# 3. **push** $z$ with $p(z)$: $-\log_2 p(z)$ bits on.
#
# The stack grows by $-\log_2 p(x \mid z) - \log_2 p(z) + \log_2 q(z \mid x)$: a one-sample
# $-$ELBO in bits, so on average the code length *is* the $-$ELBO. The decoder runs the steps
# backwards and returns the borrowed bits. In gapkit, as in craystack {cite}`townsend2019practical`,
# each of $p(z)$, $p(x \mid z)$ and $q(z \mid x)$ is a *codec*, a pair of functions that push symbols
# on the stack and pop them off again ({mod}`gapkit.coding.vae`), and
# {func}`gapkit.coding.bitsback.bits_back` composes the three into the pair above in a dozen lines. Continuous latents are cut into $2^{b}$ bins of equal
# prior mass (so $p(z)$ costs exactly $b$ bits a latent); the decoder sees the bin centres and
# $q$'s bin masses are CDF differences, quantized so that every bin stays codable. Pixels are
# Bernoulli (binary images) or discretized logistic {cite}`salimans2017pixelcnn` (8-bit images).
#
# The experiment trains the VAE (latent size 10, as in the paper's compression experiment), a
# second encoder for the same decoder by reverse half-asleep ([chapter 3](03_wake_sleep.ipynb),
# {class}`gapkit.objectives.encoder_schemes.ReverseHalfAsleep`), and compresses the
# whole test set.

# %%
res = experiments.run("bits-back", preset=preset.name)

# %% tags=["hide-input"]
ds, tr = res["dataset"], res["training"]
plots.say(f"The coding models train on {ds['n_train']:,} {ds['name']} training images: the VAE for {tr['epochs']} "
          f"epochs, then the reverse-half-asleep encoder for {tr['posthoc_epochs']} epochs on the same images "
          f"(batches of {tr['batch_size']}); the grey model of section 5 on {ds['n_train_grey']:,} images for "
          f"{tr['grey_epochs']} epochs. Everything is coded on the {ds['n_test']:,} test images.")

# %% tags=["hide-input"]
t = res["trace"]
sb = t["stack_bits"]
steps_ = ["start", "pop z", "push x", "push z"]
fig, ax = plt.subplots()
ax.plot(range(4), [sb[k] - sb["start"] for k in steps_], marker="o")
ax.set_xticks(range(4), ["start", "pop z ~ q(z|x)", "push x ~ p(x|z)", "push z ~ p(z)"])
ax.axhline(0, color="grey", lw=0.8)
ax.set_ylabel("stack size change (bits)")
ax.set_title("Bits-back coding of one test image")
plt.show()
net = sb["push z"] - sb["start"]
plots.say(f"-log2 q(z|x) = {t['neg_log2_q']:.1f} bits popped; -log2 p(x|z) = {t['neg_log2_px_given_z']:.1f}; "
      f"-log2 p(z) = {t['neg_log2_pz']:.0f}; net {net} bits "
      f"(= {t['neg_log2_px_given_z'] + t['neg_log2_pz'] - t['neg_log2_q']:.1f} from the three terms).")

# %% [markdown]
# The stack first *shrinks* (the popped latent), then grows by the image and the latent's prior
# cost; the net growth is the one-sample $-$ELBO in bits of this image.
#
# ## 3. Compressing the test set
#
# All images are chained in one message, so the random bits the very first pop needs are paid once
# (reported separately below; decoding hands them back at the end). To be fast, the coder treats
# each group of images as one "super-image" whose latents and pixels factorize, so the networks run
# on a whole group at a time, and encoder and decoder do bit-identical arithmetic. For comparison,
# the same images go through general-purpose compressors (gzip, bz2, lzma and PNG,
# {func}`gapkit.coding.baselines.baseline_bpd`).

# %% tags=["hide-input"]
f, comp = res["full"], res["compressors"]
enc_names = {"baseline": "baseline encoder", "reverse_half_asleep": "reverse-half-asleep encoder"}
rows = [(f"bits-back, {label}: {what}", f[key][k]) for key, label in enc_names.items()
        for what, k in (("net", "bpd"), ("stack with initial bits", "total_bpd"),
                        ("whole file (stack and container)", "file_bpd"))]
rows += [("test -ELBO, baseline encoder (its q)", f["baseline"]["neg_elbo_bpd"]),
         (f"IWAE-{f['iwae_K']} estimate of -log p(x)", f["neg_log_px_iwae_bpd"])]
rows += [(name, v) for name, v in sorted(comp.items(), key=lambda kv: kv[1])]
display(plots.table(rows, columns=["method", "BPD"], formats={"BPD": ".4f"},
                    caption=f"Code lengths on the {ds['n_test']} test images ({ds['name']}, {ds['binarization']} "
                            "binarization), bits per dimension (lower is better); the compressors' files are whole "
                            "files too"))
b = f["baseline"]
fd = res["findings"]
ok = "within" if fd["full"]["ratio_within_1pct"] else "NOT within"
best_std = fd["full"]["best_compressor"]
lost = [k for k, won in fd["full"]["file_beats"].items() if not won]
plots.say(f"Achieved {b['bpd']:.4f} BPD net = {b['ratio_to_neg_elbo']:.4f} x the test -ELBO ({ok} 1%), "
      f"plus {b['initial_bits']} initial bits once for the whole message: "
      f"{b['total_bpd']:.4f} BPD for the stack with them and {b['file_bpd']:.4f} BPD for the whole file "
      f"({b['container_bytes']:,} bytes, container included); "
      f"round trip exact: {b['exact'] and f['reverse_half_asleep']['exact']}; "
      f"encode {1 / b['encode_s_per_image']:.0f} images/s, decode {1 / b['decode_s_per_image']:.0f} images/s "
      f"on this machine.")
plots.say(f"The best standard compressor is {best_std} at {comp[best_std]:.4f} BPD: the net rate "
      f"{'beats' if fd['full']['beats_best_compressor'] else 'does NOT beat'} it and the whole bits-back file "
      f"{'beats' if fd['full']['file_beats_best_compressor'] else 'does NOT beat'} it "
      f"({best_std}'s file is {comp[best_std] / b['file_bpd']:.3f}x as long as the bits-back file); "
      + ("the whole file beats every standard compressor." if not lost
         else f"the whole file loses to {', '.join(lost)}."))

# %% [markdown]
# ## 4. Better inference, shorter codes
#
# The code length is the $-$ELBO of the $q$ the coder uses, so any gap between $q$ and the true
# posterior costs bits. Two remedies from the paper: a better amortized encoder (reverse half-asleep,
# [chapter 3](03_wake_sleep.ipynb), at no extra cost per image), and $K$ steps of optimal inference *inside* the coder
# (Algorithm 2; the optimal inference of [chapter 2](02_generalization_gaps.ipynb) and the refinement of
# [chapter 5](05_iterative_refinement.ipynb)): before popping $z$, Adam refines the encoder's
# $(\mu, \log\sigma)$ for this image;
# the decoder, which has just recovered $x$, repeats the same steps bit for bit before pushing $z$
# back.

# %% tags=["hide-input"]
byK = res["by_K"]
names = {"baseline": "baseline encoder", "reverse_half_asleep": "reverse half-asleep encoder"}
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for key, label in names.items():
    rr = sorted(byK[key].values(), key=lambda r: r["K"])
    Ks = [r["K"] for r in rr]
    axes[0].plot(Ks, [r["bpd"] for r in rr], marker="o", label=label)
    axes[1].plot([1e3 * (r["encode_s_per_image"] + r["decode_s_per_image"]) / 2 for r in rr],
                 [r["bpd"] for r in rr], marker="o", label=label)
axes[0].set_xlabel("optimal-inference steps K inside the coder")
axes[1].set_xlabel("time per image, mean of encode and decode (ms)")
for ax in axes:
    ax.set_ylabel("achieved code length (BPD)")
    plots.legend(ax, "below", ncol=1, fontsize=9)
axes[0].set_title("BPD against K")
axes[1].set_title("BPD against time")
plt.show()

# %% [markdown]
# Each point is a real encode and decode of the first test images (exact round trips). Left: both
# curves fall with K; right: what those steps cost in time.

# %% tags=["hide-input"]
K0, Kmax = fd["by_K"]["K"]
b0, r0 = byK["baseline"][str(K0)]["bpd"], byK["reverse_half_asleep"][str(K0)]["bpd"]
bK, rK = byK["baseline"][str(Kmax)]["bpd"], byK["reverse_half_asleep"][str(Kmax)]["bpd"]
paper = res["reference"]["paper"]
(pb0, pbK), (pr0, prK) = paper["bpd"]["baseline"], paper["bpd"]["reverse_half_asleep"]
display(plots.table(
    [{"encoder": label, "K": r["K"], "code length (BPD)": r["bpd"], "-ELBO (BPD)": r["neg_elbo_bpd"],
      "encode (ms/image)": 1e3 * r["encode_s_per_image"], "decode (ms/image)": 1e3 * r["decode_s_per_image"]}
     for key, label in names.items() for r in sorted(byK[key].values(), key=lambda r: r["K"])],
    formats={"code length (BPD)": ".4f", "-ELBO (BPD)": ".4f", "encode (ms/image)": ".2f", "decode (ms/image)": ".2f"},
    caption=f"The first {ds['sweep_images']} test images, K optimal-inference steps inside the coder"))
falls = fd["by_K"]["falls"]
plots.say(f"K = {K0}: reverse half-asleep {r0:.4f} vs baseline {b0:.4f} BPD: "
      f"{'shorter' if fd['by_K']['reverse_half_asleep_shorter'] else 'NOT shorter'} at no extra cost "
      f"(paper, K = {paper['K'][0]}: {pr0} vs {pb0}). "
      f"K = {Kmax}: baseline {b0:.4f} -> {bK:.4f} ({'falls' if falls['baseline'] else 'does NOT fall'}; "
      f"paper {pb0} -> {pbK} at K = {paper['K'][1]}), reverse half-asleep {r0:.4f} -> {rK:.4f} "
      f"({'falls' if falls['reverse_half_asleep'] else 'does NOT fall'}; paper {pr0} -> {prK}).")
match = fd["by_K"]["baseline_steps_to_match_reverse_half_asleep"]
plots.say("The baseline needs K = " + (f"{match} steps" if match is not None else f"more than {Kmax} steps")
      + f" to match the reverse-half-asleep encoder at K = {K0} (paper: K = "
      f"{paper['baseline_steps_to_match_reverse_half_asleep']}).")

# %% [markdown]
# The same sweep with a slider over the number of optimization steps K inside the coder: left, the
# code length of both encoders against K with the chosen K marked; right, at that K, the achieved
# code length beside the -ELBO of the coder's own $q$ (every number from the results above; nothing
# is coded when the slider moves).

# %% tags=["hide-input"]
import ipywidgets as widgets
from gapkit.book.widgets import interact

sweep_Ks = sorted(r["K"] for r in byK["baseline"].values())


def coder_steps(K):
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    at = {key: byK[key][str(K)] for key in names}
    for i, (key, label) in enumerate(names.items()):
        rr = sorted(byK[key].values(), key=lambda r: r["K"])
        a1.plot([r["K"] for r in rr], [r["bpd"] for r in rr], marker="o", ms=3, color=f"C{i}", label=label)
        a1.plot([K], [at[key]["bpd"]], "o", ms=9, mfc="none", color=f"C{i}")
    a1.axvline(K, color="gray", lw=0.8)
    a1.set(xlabel="optimal-inference steps K inside the coder", ylabel="achieved code length (BPD)",
           title=f"K = {K}: baseline {at['baseline']['bpd']:.4f}, reverse half-asleep "
                 f"{at['reverse_half_asleep']['bpd']:.4f} BPD")
    a1.title.set_fontsize(10)
    plots.legend(a1, "below", ncol=1, fontsize=9)
    x = np.arange(len(names))
    a2.bar(x - 0.2, [at[k]["bpd"] for k in names], 0.4, label="achieved code length")
    a2.bar(x + 0.2, [at[k]["neg_elbo_bpd"] for k in names], 0.4, label="-ELBO of the coder's q")
    lo = min(min(r["bpd"], r["neg_elbo_bpd"]) for d in byK.values() for r in d.values())
    hi = max(max(r["bpd"], r["neg_elbo_bpd"]) for d in byK.values() for r in d.values())
    a2.set_ylim(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo))
    a2.set_xticks(x, ["baseline", "reverse\nhalf-asleep"])
    a2.set_ylabel("BPD")
    a2.set_title(f"at K = {K}", fontsize=10)
    plots.legend(a2, "below", ncol=1, fontsize=9)
    plt.tight_layout()
    plt.show()


interact(coder_steps, K=widgets.SelectionSlider(options=sweep_Ks, value=sweep_Ks[-1], description="K steps"));

# %% [markdown]
# ## 5. Grey images: the discretized logistic
#
# The same coder handles 8-bit pixels: each pixel is pushed with its 256-way discretized-logistic
# distribution.

# %% tags=["hide-input"]
g = res["grey"]
gc = g["compressors"]
display(plots.table([("bits-back (VAE, discretized logistic)", g["bpd"]), ("test -ELBO", g["neg_elbo_bpd"])]
                    + sorted(gc.items(), key=lambda kv: kv[1]), columns=["method", "BPD"], formats={"BPD": ".4f"},
                    caption="Grey (8-bit) test images, bits per dimension (lower is better)"))
gbest = fd["grey"]["best_compressor"]
plots.say(f"Grey: {g['n_images']} test images, {g['bpd']:.4f} BPD = {g['ratio_to_neg_elbo']:.4f} x -ELBO, exact: {g['exact']}; "
      f"the best standard compressor ({gbest}, {gc[gbest]:.4f} BPD) is "
      f"{'beaten' if fd['grey']['beats_best_compressor'] else 'NOT beaten'}: "
      "the code is only as short as the model is good.")

# %% [markdown]
# ## 6. Beyond the ELBO: Monte Carlo bits-back
#
# The code length above is the $-$ELBO because one latent is popped per image. Monte Carlo
# bits-back with importance sampling (Ruan et al., ICML 2021) codes each image in an extended
# latent space ({mod}`gapkit.coding.mcbits`): pop $K$ samples $z_1, \dots, z_K$ with $q$, pop an
# index $j$ with probability proportional to the weights $w_k = p(x \mid z_k)\,p(z_k) / q(z_k \mid x)$,
# push the $K-1$ other samples back with $q$, then push $x$ with $p(x \mid z_j)$, $z_j$ with $p(z)$ and
# $j$ uniformly. The stack grows by $-\log_2 \frac{1}{K}\sum_k w_k$, so on average the code length is
# the $-$IWAE-$K$ bound of [chapter 1](01_elbo_tightness.ipynb) instead of the $-$ELBO. The decoder
# recovers $z_1..z_K$ after $x$ and pushes them back: every step is exactly reversible. It works
# with any encoder and with the $K$ optimal-inference steps of section 4 (both change only $q$).

# %% tags=["hide-input"]
bs = res["by_samples"]
labels = {"baseline": "baseline encoder", "reverse_half_asleep": "reverse half-asleep encoder"}
labels.update({k: k.replace("baseline+", "baseline + ").replace("steps", " inference steps")
               for k in bs if k not in labels})
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for i, (key, label) in enumerate(labels.items()):
    rr = sorted(bs[key].values(), key=lambda r: r["K"])
    Ks = [r["K"] for r in rr]
    line, = axes[0].plot(Ks, [r["bpd"] for r in rr], marker="o", label=f"{label}: code length")
    axes[0].plot(Ks, [r["neg_iwae_bpd"] for r in rr], ls="--", color=line.get_color(), label=f"{label}: -IWAE-K")
    if key == "baseline":
        axes[0].axhline(rr[0]["neg_elbo_bpd"], color="grey", lw=0.8, ls=":", label="baseline -ELBO")
        axes[1].plot(Ks, [1e3 * r["encode_s_per_image"] for r in rr], marker="o", label="encode")
        axes[1].plot(Ks, [1e3 * r["decode_s_per_image"] for r in rr], marker="s", label="decode")
for ax in axes:
    ax.set_xscale("log", base=2)
    ax.set_xlabel("importance samples K per image")
axes[0].set_ylabel("code length (BPD)")
axes[1].set_ylabel("time per image (ms), baseline encoder")
axes[0].set_title("Code length against K, next to -IWAE-K")
axes[1].set_title("Time against K")
plots.legend(axes[0], "below", ncol=2, fontsize=8)
plots.legend(axes[1], "below", ncol=2, fontsize=9)
plt.show()

# %% tags=["hide-input"]
display(plots.table(
    [{"q": labels[key], "K": r["K"], "code length (BPD)": r["bpd"], "-IWAE-K (BPD)": r["neg_iwae_bpd"],
      "-ELBO (BPD)": r["neg_elbo_bpd"], "encode (ms/image)": 1e3 * r["encode_s_per_image"],
      "decode (ms/image)": 1e3 * r["decode_s_per_image"], "initial bits": r["initial_bits"]}
     for key in labels for r in sorted(bs[key].values(), key=lambda r: r["K"])],
    formats={"code length (BPD)": ".4f", "-IWAE-K (BPD)": ".4f", "-ELBO (BPD)": ".4f",
             "encode (ms/image)": ".2f", "decode (ms/image)": ".2f"},
    caption=f"Monte Carlo bits-back on the first {ds['sweep_images']} test images (exact round trips: "
            f"{all(r['exact'] for d in bs.values() for r in d.values())})"))
rb = sorted(bs["baseline"].values(), key=lambda r: r["K"])
r1, rK = rb[0], rb[-1]
fm = fd["by_samples"]
plots.say(f"Baseline encoder: K = {r1['K']} codes at {r1['bpd']:.4f} BPD (its -ELBO {r1['neg_elbo_bpd']:.4f}); "
          f"K = {rK['K']} codes at {rK['bpd']:.4f} BPD, {'below' if fm['below_neg_elbo'] else 'NOT below'} "
          f"the -ELBO by {fm['below_neg_elbo_pct']:.2f}% and "
          f"{fm['from_neg_iwae_pct']:+.2f}% from its -IWAE-{rK['K']} ({rK['neg_iwae_bpd']:.4f}), "
          f"at {rK['encode_s_per_image'] / r1['encode_s_per_image']:.1f}x the encode time and "
          f"{rK['initial_bits'] / max(r1['initial_bits'], 1):.0f}x the initial bits (the first group pops K latents an image).")

# %% [markdown]
# ## 7. Posterior tables at lower precision
#
# The entropy coder needs $q$'s bin masses as integers out of $2^P$. Giving every one of the $2^b$
# bins at least one unit (so that any bin could be pushed) puts $2^{b-P}$ of every latent's mass
# into far-tail bins: 1.56% at $b = 8$, $P = 14$. But with bits-back only a bin that was *popped*
# with $q$ is ever pushed back with $q$, so the bins may be empty: the coder rounds $q$'s CDF to
# multiples of $2^{-P}$, as craystack does {cite}`townsend2019practical`, and tail bins get nothing.

# %% tags=["hide-input"]
bp = sorted(res["by_precision"].values(), key=lambda r: r["precision"])
fig, ax = plt.subplots()
ax.plot([r["precision"] for r in bp], [r["rounded_bpd"] for r in bp], marker="o", label="rounded CDF (empty tail bins allowed)")
ax.plot([r["precision"] for r in bp], [r["floor_bpd"] for r in bp], marker="s", label="every bin at least 2^-P (before)")
ax.set_xlabel("posterior precision P (bits)")
ax.set_ylabel("code length (BPD)")
ax.set_title("Code length against the precision of q's tables")
plots.legend(ax, "below", ncol=1, fontsize=9)
plt.show()

# %% tags=["hide-input"]
display(plots.table([{"P (bits)": r["precision"], "rounded CDF (BPD)": r["rounded_bpd"],
                      "floor of 2^-P per bin (BPD)": r["floor_bpd"], "round trip exact": str(r["exact"])} for r in bp],
                    formats={"rounded CDF (BPD)": ".4f", "floor of 2^-P per bin (BPD)": ".4f"},
                    caption=f"Baseline encoder, first {ds['sweep_images']} test images, 2^8 bins a latent"))
cray = res["reference"]["craystack"]
p14 = res["by_precision"].get("14")
p24 = res["by_precision"].get("24")
if p14 and p24:
    at14 = cray["posterior_precision"].index(14)
    plots.say(f"At P = 14 the rounded CDF codes at {p14['rounded_bpd']:.4f} BPD "
              f"({100 * (p14['rounded_bpd'] / p24['rounded_bpd'] - 1):+.2f}% against 24 bits), the floor at "
              f"{p14['floor_bpd']:.4f} ({100 * (p14['floor_bpd'] / p24['rounded_bpd'] - 1):+.2f}%). For reference, issue 20 "
              f"measured craystack's BB-ANS on the book model at 14 bits: {cray['bpd']['craystack'][at14]:.4f} BPD, against "
              f"{cray['bpd']['gapkit_before'][at14]:.4f} for gapkit's floor tables.")

# %% [markdown]
# ## 8. A cheap start and a small file
#
# The first pop of a message needs random bits already on the stack: the initial words, paid once
# but a large share of a short file. With `cheap_start=True` the coder needs none: the stack starts
# empty, the first image is coded with no bits back ($x$ with $p(x \mid z^*)$ at the mode bins $z^*$ of
# its $q$, then $z^*$ with the prior), and the groups then grow 1, 2, 4, ... images, so that each pop
# finds enough bits on the stack. The file around the stack is a compact binary container
# ({mod}`gapkit.coding.container`, its size in the table below): the coder settings that differ from the
# defaults, the image count, shape and dtype, short tags of the model and of the coder's arithmetic
# (a wrong model or a machine that rounds differently is refused before any decoding), and a 64-bit
# check of the decoded images, so that a damaged file raises instead of decoding to wrong images.
# Below, for files of the first few to the first thousand test images (the experiment's `start_sizes`),
# the whole file next to the net rate and the $-$ELBO of the coder's $q$.

# %% tags=["hide-input"]
fr = res["file_rate"]
ns = fr["n_images"]
fig, ax = plt.subplots()
ax.plot(ns, fr["plain"]["file_bpd"], marker="o", label="file, plain start (initial bits included)")
ax.plot(ns, fr["cheap"]["file_bpd"], marker="s", label="file, cheap start")
ax.plot(ns, fr["plain"]["net_bpd"], ls="--", color="grey", label="net rate")
ax.plot(ns, fr["neg_elbo_bpd"], ls=":", color="black", label="-ELBO of the coder's q")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("images in the file")
ax.set_ylabel("rate (BPD)")
ax.set_title("The whole file against the net rate")
plots.legend(ax, "below", ncol=1, fontsize=9)
plt.show()
display(plots.table(
    [{"images": n, "-ELBO (BPD)": fr["neg_elbo_bpd"][i], "net (BPD)": fr["plain"]["net_bpd"][i],
      "file, plain start (BPD)": fr["plain"]["file_bpd"][i], "file, cheap start (BPD)": fr["cheap"]["file_bpd"][i],
      "cheap file over net": (f"{100 * (fr['cheap']['file_bpd'][i] / fr['plain']['net_bpd'][i] - 1):+.1f}%"
                              if fr["plain"]["net_bpd"][i] > 0 else "–"),
      "plain initial bits": fr["plain"]["initial_bits"][i], "container bytes": fr["cheap"]["header_bytes"][i]}
     for i, n in enumerate(ns)],
    formats={k: ".4f" for k in ("-ELBO (BPD)", "net (BPD)", "file, plain start (BPD)", "file, cheap start (BPD)")},
    caption="Whole files (8 x bytes / pixels) for the first n test images, baseline encoder (exact round trips: "
            f"{all(all(fr[k]['exact']) for k in ('plain', 'cheap'))})"))
ff = fd["file_rate"]
i = ns.index(ff["n_images"])
plots.say(f"{ff['n_images']} images: the whole file with the cheap start costs {fr['cheap']['file_bpd'][i]:.4f} BPD, "
          f"{100 * ff['file_over_net']:+.2f}% over the net rate {fr['plain']['net_bpd'][i]:.4f} "
          f"({'within' if ff['within_tolerance'] else 'NOT within'} {100 * ff['tolerance']:.0f}%), against "
          f"{fr['plain']['file_bpd'][i]:.4f} BPD ({100 * (fr['plain']['file_bpd'][i] / fr['plain']['net_bpd'][i] - 1):+.1f}%) "
          f"with the initial bits. Of the excess, the stack itself (the first image's missing bits back and the "
          f"stack's last word) is {100 * (fr['cheap']['total_bpd'][i] / fr['plain']['net_bpd'][i] - 1):+.2f}% and the "
          f"container's {fr['cheap']['header_bytes'][i]} bytes the rest, on {ds['name']} images of "
          f"{np.prod(ds['image_shape'])} pixels.")

# %% [markdown]
# ## Try it: the latent bins
#
# How coarse can the latent bins be? Below, a tiny VAE on random binary images is coded with
# $2^b$ bins a latent; the static figure first, then a slider over $b$ = 1..12 (each value codes
# the 200 images once; the rendered page holds all twelve figures).

# %%
import functools

torch.manual_seed(0)
toy = VAE(64, 4, (32,)).eval()
with torch.no_grad():
    _, toy_x = toy.sample(200, torch.Generator().manual_seed(0))
toy_x = toy_x.numpy().astype(np.uint8)


@functools.lru_cache(maxsize=None)
def toy_bpd(bits):
    c = BitsBackCodec(toy, latent_bits=bits)
    c.encode(toy_x)
    return c.last_stats["bpd"]


grid = list(range(2, 11, 2))
grid_bpd = [toy_bpd(b) for b in grid]

# %% tags=["hide-input"]
fig, ax = plt.subplots()
ax.plot(grid, grid_bpd, marker="o")
ax.set_xlabel("latent bins per dimension (log2)")
ax.set_ylabel("achieved code length (BPD)")
ax.set_title("Code length against the number of latent bins")
plt.show()

# %% tags=["hide-input"]
import ipywidgets as widgets
from gapkit.book.widgets import interact


def show(bits=6):
    bs = list(range(1, 13))
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot(bs, [toy_bpd(b) for b in bs], marker="o", ms=3)
    ax.plot([bits], [toy_bpd(bits)], "o", ms=10, mfc="none", color="C3")
    ax.set(xlabel="latent bins per dimension (log2)", ylabel="achieved code length (BPD)",
           title=f"$2^{{{bits}}}$ bins: {toy_bpd(bits):.4f} BPD")
    plt.show()


interact(show, bits=widgets.IntSlider(6, 1, 12, 1, description="log2 bins"));

# %% [markdown]
# How the findings of this chapter fare at every preset, with the papers' numbers next to ours: the
# [reproduction report](../book/reproduction.md).
