"""The reproduction report: each finding of the source papers, the paper's value, gapkit's, a verdict.

A :class:`Finding` is data: the claim in one sentence, where the paper shows it, the paper's
value(s), the experiment whose results decide it, the rule (with its tolerances) in words, and
``judge(results) -> (verdict, ours)``, the same rule as code. Nothing here is a number typed from a
run: ``ours`` is always read from the experiment's cached results (:func:`gapkit.experiments.finished`,
which never returns a smoke run), and a finding whose experiment has not run at a preset says
``"not run"``. A finding that no experiment measures yet says so in its rule and is ``"not run"``
everywhere.

``python -m gapkit report [--preset P]`` prints the table; the book's page
`Reproduction report <https://gapkit.github.io/gapkit/book/reproduction.html>`_ renders it with a
column for each preset that has results.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

__all__ = ["Finding", "FINDINGS", "VERDICTS", "judge", "report", "format_report"]

REPRODUCES, PARTLY, DOES_NOT, NOT_RUN = "reproduces", "partly", "does not", "not run"
VERDICTS = (REPRODUCES, PARTLY, DOES_NOT, NOT_RUN)


@dataclass(frozen=True)
class Finding:
    key: str
    source: str          # the paper, e.g. "Zhang et al. 2022"
    where: str           # "Figure 3", "Table 1", "Appendix B"
    claim: str           # one sentence
    paper: str           # the paper's value(s), as the paper gives them
    experiment: str      # the experiment whose results decide it
    rule: str            # how the verdict is decided, tolerances stated
    judge: Callable | None   # results -> (verdict, ours); None: no experiment measures it yet


def _grade(n_hold: int, n: int) -> str:
    """All of n checks hold: reproduces; some: partly; none: does not."""
    return REPRODUCES if n_hold == n else PARTLY if n_hold > 0 else DOES_NOT


# --------------------------------------------------------------------------- Zhang et al. 2022
def _tight_optimal(r):
    f = r.at("findings.tight_under_optimal")
    b = r.at("findings.optimal_budgets.best")
    m = r.at("metrics.mnist")
    gap = {q: m["elbo"]["bpd"][q] - m["iwae"]["bpd"][q] for q in ("amortized", "optimal")}
    verdict = {"reproduced": REPRODUCES, "partly": PARTLY}.get(f["verdict"], DOES_NOT)
    form = "per point" + (", lr decay" if b["lr_decay"] else "") if b["form"] == "per_point" else "paper's form"
    return verdict, (f"ELBO - IWAE-{m['iwae']['K']} at epoch {m['epoch']}: amortized {gap['amortized']:.4f}, "
                     f"optimal (paper's form) {gap['optimal']:.4f} BPD (ratio {f['ratio']:.2f}); best budget "
                     f"({form}, x{b['factor']}) {b['gap']:.4f} BPD (ratio {f['ratio_best']:.2f})")


def _per_dataset(r, check, describe):
    ds = r.at("datasets")
    held = [k for k in ds if check(ds[k])]
    return _grade(len(held), len(ds)), "; ".join(f"{k}: {describe(ds[k])}" for k in ds)


def _overfits(r):
    def describe(d):
        s = d["summary"]
        if s["last_epoch"] == s["best_epoch"]:
            return f"test BPD lowest at the last epoch ({s['last_epoch']})"
        return (f"epoch {s['best_epoch']}->{s['last_epoch']}: train {s['train_change_bpd']:+.3f}, "
                f"test {s['test_rise_bpd']:+.3f} BPD")
    return _per_dataset(r, lambda d: d["summary"]["overfits"], describe)


def _mostly_encoder(r):
    def describe(d):
        s = d["summary"]
        if not s["overfits"]:
            return "no rise in test BPD"
        return (f"of the {s['test_rise_bpd']:.3f} BPD rise, inference gap {s['gap_change_bpd']:+.3f}, "
                f"optimal {s['optimal_change_bpd']:+.3f}")
    return _per_dataset(r, lambda d: d["summary"]["mostly_encoder"], describe)


def _sleep_ordering(r):
    f = r.at("final_test_bpd")
    holds = r.at("ordering.holds")
    best = min(f, key=f.get)
    verdict = REPRODUCES if holds else PARTLY if best == "reverse_sleep" else DOES_NOT
    return verdict, ", ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in sorted(f.items(), key=lambda kv: kv[1])) \
        + " BPD"


def _alpha_half(r):
    f = r.at("findings.figure4")
    vals = ", ".join(f"{a:g}: {v:.4f}" for a, v in zip(f["alpha"], f["final"]))
    ends = f["half_beats_wake"] and f["half_beats_reverse_sleep"]
    verdict = REPRODUCES if f["best"] == "alpha=0.5" else PARTLY if ends else DOES_NOT
    return verdict, f"best {f['best']}; final test BPD by alpha {vals}"


def _table1(path):
    """Table 1's two orderings, read from the rows at ``path`` (binary: ``table1``; grey: ``grey.table1``)."""
    def judge(r):
        from .experiments.reverse_half_asleep import BASE, RHS
        if path.startswith("grey") and "grey" not in r:
            return NOT_RUN, "the grey row is off in this run (grey=False)"
        t = {row["method"]: row["test_bpd"] for row in r.at(f"{path}.rows")}
        den = {k: v for k, v in t.items() if k.startswith("denoising")}
        best = min(den, key=den.get)
        checks = [t[RHS] < den[best], den[best] < t[BASE]]
        return _grade(sum(checks), 2), (f"VAE {t[BASE]:.4f}, best denoising ({best.split(' ', 1)[1]}) "
                                        f"{den[best]:.4f}, reverse half-asleep {t[RHS]:.4f} BPD")
    return judge


def _over_seeds(cmps):
    """The verdict of comparisons judged against seed noise (``seed_difference``): reproduces when each
    is better by more than the pooled seed spread; does not when none is better and some is worse by
    more than it; partly otherwise (some within seed noise)."""
    out = [c["outcome"] for c in cmps]
    if all(o == "better" for o in out):
        return REPRODUCES
    return DOES_NOT if "better" not in out and "worse" in out else PARTLY


def _spread(c, scale=1.0, unit=""):
    sp = c["pooled_std"]
    noise = f"pooled seed std {scale * sp:.{2 if scale > 1 else 4}f}{unit}" if sp is not None else "one seed: no spread"
    return f"{scale * c['difference']:+.{2 if scale > 1 else 4}f}{unit} ({noise}: {c['outcome']})"


def _classifier(r):
    f = r.at("findings.classifier")
    if "vs_base" not in f:
        return NOT_RUN, "results from before the classifier ran over seeds"
    rows = r.at("classifier.rows")
    n = len(r.at("classifier.seeds"))
    acc = ", ".join(f"{row['encoder']} {100 * row['accuracy']:.1f}"
                    + (f" ± {100 * row['std']:.1f}" if row["std"] is not None else "") + "%" for row in rows)
    return (_over_seeds([f["vs_base"], f["vs_wake_post_hoc"]]),
            f"{acc} over {n} seed(s); reverse half-asleep minus base {_spread(f['vs_base'], 100, ' points')}, "
            f"minus wake post hoc {_spread(f['vs_wake_post_hoc'], 100, ' points')}")


def _latent_sizes(r):
    if "extras" not in r.at("findings"):
        return NOT_RUN, "the latent-size runs are off at this preset"
    rows = r.at("extras.latent_sizes")
    held = r.at("findings.extras.half_beats_wake_at_latents")

    def at(row, alpha):
        return row["post_hoc"][row["alpha"].index(alpha)]
    return _grade(len(held), len(rows)), "; ".join(
        f"latent {row['latent']}: alpha 0.5 {at(row, 0.5):.4f} vs 0 {at(row, 0.0):.4f}" for row in rows) + " BPD"


def _from_start(r):
    if "extras" not in r.at("findings"):
        return NOT_RUN, "the from-the-start run is off at this preset"
    f = r.at("findings.extras")
    if "from_start_vs_vae" not in f:
        return NOT_RUN, "results from before the from-the-start run had seeds"
    vae, post = f["from_start_vs_vae"], f["from_start_vs_post_hoc"]

    def ms(st):
        return f"{st['mean']:.4f}" + (f" ± {st['std']:.4f}" if st["std"] is not None else "") + f" ({st['n']} seed(s))"
    return (_over_seeds([vae]),
            f"from the start {ms(vae['a'])}, VAE {ms(vae['b'])}, post hoc {ms(post['b'])} BPD; from the start minus "
            f"VAE {_spread(vae)}, minus post hoc {_spread(post)}")


# --------------------------------------------------------------------------- bits-back
def _bb_rha(r):
    f = r.at("findings.by_K")
    K0 = str(f["K"][0])
    b, h = r.at(f"by_K.baseline.{K0}.bpd"), r.at(f"by_K.reverse_half_asleep.{K0}.bpd")
    return (REPRODUCES if f["reverse_half_asleep_shorter"] else DOES_NOT,
            f"baseline {b:.4f}, reverse half-asleep {h:.4f} BPD")


def _bb_steps(r):
    f = r.at("findings.by_K")
    lo, hi = (str(k) for k in f["K"])
    parts = [f"{k.replace('_', ' ')} {r.at(f'by_K.{k}.{lo}.bpd'):.4f} -> {r.at(f'by_K.{k}.{hi}.bpd'):.4f}"
             for k in f["falls"]]
    return _grade(sum(f["falls"].values()), len(f["falls"])), f"K = {lo} -> {hi} steps: " + "; ".join(parts) + " BPD"


def _bb_compressors(r):
    """Judged on the whole file (initial bits and container included), not on the net rate."""
    comp = r.at("compressors")
    f = r.at("full.baseline")
    beaten = [k for k, v in comp.items() if f["file_bpd"] < v]
    best = min(comp, key=comp.get)
    return (REPRODUCES if len(beaten) == len(comp) else PARTLY if beaten else DOES_NOT,
            f"bits-back file {f['file_bpd']:.4f} (net {f['bpd']:.4f}), best compressor {best} {comp[best]:.4f} BPD "
            f"on {f['n_images']} test images")


# --------------------------------------------------------------------------- Rainforth et al. 2018
def _slope_rule() -> str:
    from .experiments.iwae_snr import MIN_FIT_POINTS, SETTINGS, SLOPE_TOLERANCE
    b = SETTINGS["book"]
    return (f"fitted log-log slopes of the median SNR in K, on the grid points with K >= fit_K_min "
            f"({b['fit_K_min']} at the book preset) whose median SNR is at least fit_floor_factor "
            f"({b['fit_floor_factor']}) times the noise floor 0.674/sqrt(R); reproduces when both are within "
            f"{SLOPE_TOLERANCE} of the theory on at least {MIN_FIT_POINTS} points, partly when both have the "
            f"theory's sign on at least {MIN_FIT_POINTS} points")


def _slopes(axis):
    def judge(r):
        sl, th, f = r.at("slopes"), r.at("theory_slopes"), r.at("findings.slopes")
        sides = ("theta", "phi")
        used = r.at("slope_fit.used")
        enough = all(f["enough_points"][s][axis] for s in sides)
        near = all(f["within_tolerance"][s][axis] for s in sides)
        sign = all(f["same_sign_as_theory"][s][axis] for s in sides)
        verdict = REPRODUCES if enough and near else PARTLY if enough and sign else DOES_NOT
        pts = "; ".join(f"{s} on {axis} = {', '.join(map(str, used[s][axis])) or 'none'}" for s in sides)
        ours = f"theta {sl['theta'][axis]:+.2f}, phi {sl['phi'][axis]:+.2f} (fitted on {pts})"
        if axis == "K":
            ours += f"; the weights' effective sample size grows like K^{f['ess_slope']:.2f} (1 when asymptotic)"
        return verdict, ours
    return judge


def _rainforth_table(r):
    checks = r.at("findings.rainforth")
    held = sum(c["holds"] for c in checks)
    return _grade(held, len(checks)), f"{held} of {len(checks)} orderings hold: " + "; ".join(
        f"{c['claim']}: {'yes' if c['holds'] else 'no'} ({c['detail']})" for c in checks)


# --------------------------------------------------------------------------- Hjelm et al. 2016
def _refinement_table(r):
    v, g = r.at("table.vae"), r.at("table.gdir")
    checks = [v["bound_refined"] < v["bound"], abs(g["bound"] - v["bound_refined"]) <= 1.0]
    return _grade(sum(checks), 2), (f"-ELBO: VAE {v['bound']:.2f}, VAE refined {v['bound_refined']:.2f}, "
                                    f"GDIR-trained {g['bound']:.2f} nats")


def _refinement_curves(r):
    c = r.at("curves")
    e, s = c["elbo"]["test"]["encoder"], c["ess"]["test"]["encoder"]
    checks = [e[-1] > e[0], s[-1] > s[0]]
    return _grade(sum(checks), 2), (f"{c['steps'][-1]} steps: ELBO {e[0]:.2f} -> {e[-1]:.2f} nats, "
                                    f"ESS {s[0]:.3f} -> {s[-1]:.3f}")


# --------------------------------------------------------------------------- Shu et al. 2019 (BSVI)
def _bsvi_health(r):
    o = r.at("ordering")
    checks = [o["bsvik"] >= o["svik"], o["svik"] >= o["svi0"]]
    return _grade(sum(checks), 2), (f"{o['model']} model, k = {o['k']}: BSVI-k {o['bsvik']:.2f}, "
                                    f"SVI-k {o['svik']:.2f}, SVI-0 {o['svi0']:.2f} nats")


def _bsvi_sir_best(r):
    ll = {row["method"]: row["log_likelihood"] for row in r.at("training_table.rows")}
    k = r.at("settings.k")
    sir = f"BSVI-{k}-SIR"
    if sir not in ll:
        return NOT_RUN, f"{sir} was not trained at this preset"
    others = {m: v for m, v in ll.items() if not m.startswith(sir)}
    beaten = [m for m, v in others.items() if ll[sir] > v]
    verdict = REPRODUCES if len(beaten) == len(others) else PARTLY if beaten else DOES_NOT
    return verdict, ", ".join(f"{m} {v:.2f}" for m, v in sorted(ll.items(), key=lambda kv: -kv[1])) + " nats"


def _bsvi_estimator(r):
    est = r.at("estimator_table")
    k, Ks = est["bsvi"]["steps"], est["iwae"]["K"]
    i = Ks.index(k) if k in Ks else 0
    rows = est["rows"]
    held = [row["method"] for row in rows if row["bsvi"] >= row["iwae"][i]]
    return _grade(len(held), len(rows)), (f"BSVI-{k} >= IWAE-{Ks[i]} for {len(held)} of {len(rows)} models; "
                                          + ", ".join(f"{row['method']} {row['bsvi']:.2f} vs {row['iwae'][i]:.2f}"
                                                      for row in rows) + " nats")


# --------------------------------------------------------------------------- Hjelm et al. 2016: AIR (chapter 8)
def _air(key):
    def judge(r):
        f = next((x for x in r.at("findings") if x["key"] == key), None)
        if f is None:
            return NOT_RUN, "not computed at this preset"
        return (REPRODUCES if f["holds"] else DOES_NOT), f["detail"]
    return judge


Z22, R18, H16, S19, T19 = ("Zhang et al. 2022", "Rainforth et al. 2018", "Hjelm et al. 2016",
                           "Shu et al. 2019 (BSVI)", "Townsend et al. 2019 (BB-ANS)")
_F = Finding
FINDINGS: list = [
    _F("tight_under_optimal", Z22, "Appendix A, Figure 9",
       "Under optimal inference the ELBO and IWAE-10 nearly coincide; under amortized inference IWAE-10 is "
       "clearly tighter.", "curves that nearly coincide (optimal) vs a clear gap (amortized)", "elbo-tightness",
       "reproduces when the optimal-inference (paper's form) gap ELBO - IWAE-10 is below the amortized one at every "
       "checkpoint and, at the last, the best optimal inference of the budget study (lowest gap over per-point "
       "and paper's-form inference with 1, 2, 4 times the steps or epochs, on a subset of the test images) is "
       "below a quarter of the amortized gap on the same images; partly when only the first holds", _tight_optimal),
    _F("overfitting", Z22, "Figure 1", "Trained long enough, a VAE's training BPD keeps falling while its test "
       "BPD rises.", "binary and grey MNIST both overfit within 1000 epochs", "generalization-gaps",
       "per data set (binary, grey): test BPD rises after its best checkpoint while train BPD falls; "
       "reproduces when both do, partly when one does", _overfits),
    _F("mostly_encoder", Z22, "Figure 2", "The rise in test BPD is mostly the encoder's (the inference "
       "generalization gap), not the decoder's.", "the inference gap grows; optimal-inference test BPD "
       "barely moves", "generalization-gaps",
       "per data set: the inference gap's growth exceeds the optimal-inference curve's change over the "
       "rise; reproduces when both data sets show it, partly when one does", _mostly_encoder),
    _F("sleep_ordering", Z22, "Figure 3", "For a fixed decoder, fresh encoders reach test BPD in the order "
       "reverse sleep < sleep < wake.", "reverse sleep < sleep < wake", "sleep-consistency",
       "reproduces when the final test BPDs are in that order; partly when reverse sleep is best but the "
       "other two swap", _sleep_ordering),
    _F("alpha_half_best", Z22, "Figure 4", "Among reverse half-asleep's alpha, 0.5 gives the lowest test BPD.",
       "alpha = 0.5 best", "reverse-half-asleep",
       "final test BPD (mean over post-hoc seeds) per alpha; reproduces when 0.5 is the lowest; partly when "
       "0.5 only beats both ends (0 and 1)", _alpha_half),
    _F("rha_close_to_optimal", Z22, "Figure 5", "Reverse half-asleep's encoder comes close to optimal "
       "inference on test images.", "reverse half-asleep's curve approaches the optimal-inference curve",
       "reverse-half-asleep", "no experiment evaluates optimal inference on the reverse half-asleep run yet",
       None),
    _F("table1_binary", Z22, "Table 1, binary MNIST", "Reverse half-asleep beats the best denoising setting, "
       "which beats the VAE.", "VAE 0.200, best denoising 0.191 (sigma 0.4), reverse half-asleep 0.187 BPD",
       "reverse-half-asleep", "two orderings on test BPD: reverse half-asleep < best denoising < VAE; "
       "reproduces when both hold, partly when one does", _table1("table1")),
    _F("table1_grey", Z22, "Table 1, grey MNIST", "The same ordering on grey MNIST.",
       "VAE 1.543, best denoising 1.515, reverse half-asleep 1.513 BPD", "reverse-half-asleep",
       "as for binary MNIST, on the grey row (discretized logistic decoder, denoising noise on [0, 1] "
       "pixels): reverse half-asleep < best denoising < VAE; reproduces when both hold, partly when one does",
       _table1("grey.table1")),
    _F("classifier", Z22, "Appendix B, Figure 10", "A classifier on z ~ q(z|x) is more accurate with the "
       "reverse half-asleep encoder.", "higher accuracy with reverse half-asleep", "reverse-half-asleep",
       "test accuracy of reverse half-asleep's encoder against the base VAE's and wake post hoc's, over "
       "the post-hoc seeds: a difference of means counts when larger than the pooled seed standard "
       "deviation (sample std over seeds); reproduces when reverse half-asleep is higher beyond it in "
       "both, does not when it is higher beyond it in neither and lower beyond it in one, partly "
       "otherwise (within seed noise)", _classifier),
    _F("latent_sizes", Z22, "Appendix C", "Reverse half-asleep helps at every latent size.",
       "lower test BPD than wake at latent 16, 64 and 128", "reverse-half-asleep",
       "alpha = 0.5 below alpha = 0 (same post-hoc training) at each latent size; reproduces at all, partly "
       "at some", _latent_sizes),
    _F("from_start", Z22, "Appendix D", "Training with reverse half-asleep from the start also beats the VAE.",
       "from the start and post hoc both improve on the VAE", "reverse-half-asleep",
       "from-the-start test BPD (mean over its seeds) against the VAE's: reproduces when lower by more than "
       "the pooled seed standard deviation, does not when higher by more than it, partly when within it "
       "(seed noise); post hoc (mean over post-hoc seeds) and the difference to it shown beside, against "
       "the same spread", _from_start),
    _F("bitsback_rha", Z22, "Section 5, Figure 7", "Bits-back coding with the reverse half-asleep encoder "
       "has a lower rate than with the VAE's encoder.", "baseline 0.1854, reverse half-asleep 0.1789 BPD",
       "bits-back", "net rate at K = 0 inference steps, reverse half-asleep below baseline", _bb_rha),
    _F("bitsback_steps", Z22, "Section 5, Figure 8", "K steps of optimal inference in the coder lower the rate "
       "as K grows.", "baseline 0.1841 -> 0.1769, reverse half-asleep 0.1784 -> 0.1725 BPD (K = 1 -> 10)",
       "bits-back", "rate at the largest K below the rate at K = 0, for each encoder; reproduces for both, "
       "partly for one", _bb_steps),
    _F("bbans_vs_compressors", T19, "compression-rate table", "Bits-back ANS with a VAE beats standard compressors.",
       "BB-ANS 0.19, bz2 0.25, gzip 0.33, WebP 0.44, PNG 0.78 bits/dim", "bits-back",
       "rate of the whole file on the test images (8 x file bytes / pixels: the ANS stack with its initial bits, "
       "and the container) below every compressor's (gzip, bz2, lzma, PNG) on the same images; partly when below "
       "some",
       _bb_compressors),
    _F("snr_slopes_K", R18, "Figure 2, Section 3", "As K grows, the decoder's gradient SNR rises like sqrt(K) "
       "and the encoder's falls like 1/sqrt(K).", "log-log slopes +0.5 (theta) and -0.5 (phi)", "iwae-snr",
       _slope_rule(), _slopes("K")),
    _F("snr_slopes_M", R18, "Section 3", "As M grows, both gradients' SNR rises like sqrt(M).",
       "log-log slopes +0.5 (theta and phi)", "iwae-snr", "as for K, on the M sweep (every M)", _slopes("M")),
    _F("rainforth_table1", R18, "Table 1", "PIWAE and MIWAE train better encoders or models than IWAE; the VAE "
       "has the worst log p-hat and the tightest encoder.",
       "IWAE -84.52, PIWAE(8,8) -84.46, MIWAE(8,8) -84.97, CIWAE(0.5) -85.24, VAE -86.21 nats (log p-hat)",
       "iwae-snr", "four orderings of the paper's table (log p-hat and -KL); reproduces when all hold, partly "
       "when some do", _rainforth_table),
    _F("learned_beta", "the Rainforth et al. reproduction", "Figure 4", "A learned CIWAE beta is robust to "
       "its initial value, a fixed one is not.", "-80.34 +/- 0.49 learned vs -81.99 +/- 2.98 fixed (nats)",
       "iwae-snr", "no experiment sweeps beta's initial value yet", None),
    _F("refinement_table1", H16, "supplement, Table 1", "Refinement at test time closes much of the VAE's "
       "gap, and training with refinement (GDIR) reaches the same bound without it.",
       "-ELBO: VAE 94.48, VAE refined 90.57, GDIR 90.60 nats", "refinement",
       "the VAE's refined bound below its bound, and GDIR's bound within 1 nat of the refined VAE's; "
       "reproduces when both, partly when one", _refinement_table),
    _F("refinement_curves", H16, "supplement, Figure 1", "The bound and the effective sample size rise with "
       "refinement steps.", "both rise with steps", "refinement",
       "on test images, from the encoder: ELBO and ESS at the last step above step 0", _refinement_curves),
    _F("bsvi_health", S19, "Figure 6", "BSVI-k >= SVI-k >= SVI-0.", "holds in expectation on every minibatch",
       "bsvi", "the mean bounds at the experiment's k on test images; reproduces when both inequalities hold, "
       "partly when one does", _bsvi_health),
    _F("bsvi_sir_best", S19, "Table 1", "Training with BSVI-SIR gives the best test log-likelihood.",
       "Omniglot: BSVI-k-SIR -88.80, IWAE-k' -89.02, SVI-k' -89.65, VAE -89.83 nats", "bsvi",
       "BSVI-k-SIR's test log-likelihood above every other trained method's; partly when above some",
       _bsvi_sir_best),
    _F("bsvi_estimator", S19, "Appendix C", "BSVI-k is as tight a log-likelihood estimate as IWAE with as "
       "many samples or more.", "BSVI-500 ~ IWAE-500 .. 2500", "bsvi",
       "BSVI-k at least IWAE-k on each trained model; reproduces for all, partly for some", _bsvi_estimator),
]

_AIR = "Hjelm et al. 2016 (AIR)"
for _key, _where, _claim, _paper in (
        ("refinement_improves_bound", "Figure 1", "Refinement improves a binary posterior's lower bound.",
         "higher bound with steps (1-3 layers)"),
        ("refinement_improves_ess", "Figure 1", "Refinement improves the effective sample size.",
         "higher ESS with steps"),
        ("air_better_per_update", "Figure 2", "Per update, AIR reaches a higher log-likelihood than RWS.",
         "AIR above RWS per epoch"),
        ("air_beats_bihm_plus", "Table 1", "AIR has a lower test NLL than BiHM+.",
         "AIR 92.40, BiHM+ 92.90, BiHM 93.30 nats")):
    FINDINGS.append(_F(_key if _key.startswith("air_") else f"air_{_key}", _AIR, _where, _claim, _paper, "discrete-latents",
                       "the discrete-latents experiment's own check of this claim (holds / does not)", _air(_key)))


def judge(finding: Finding, preset: str, seed: int = 0) -> dict:
    """``{"verdict", "ours"}`` of ``finding`` from the cached results of its experiment at ``preset``."""
    from . import experiments
    if finding.judge is None:
        return {"verdict": NOT_RUN, "ours": "not measured by any experiment yet"}
    res = experiments.finished(finding.experiment, preset=preset, seed=seed)
    if res is None:
        return {"verdict": NOT_RUN, "ours": f"no results: python -m gapkit run {finding.experiment} --preset {preset}"}
    verdict, ours = finding.judge(res)
    return {"verdict": verdict, "ours": ours}


def report(presets=None, seed: int = 0) -> dict:
    """Every finding judged at each preset in ``presets`` (default: every preset): ``{"presets": [...],
    "with_results": [presets where some experiment has results], "rows": [finding fields + {"results":
    {preset: {"verdict", "ours"}}}], "counts": {preset: {verdict: n}}}``."""
    from dataclasses import asdict

    from .presets import PRESETS
    presets = list(presets or PRESETS)
    for p in presets:
        if p not in PRESETS:
            raise ValueError(f"unknown preset {p!r}; valid presets: {', '.join(PRESETS)}")
    rows = []
    for f in FINDINGS:
        row = {k: v for k, v in asdict(f).items() if k != "judge"}
        row["results"] = {p: judge(f, p, seed) for p in presets}
        rows.append(row)
    counts = {p: {v: sum(r["results"][p]["verdict"] == v for r in rows) for v in VERDICTS} for p in presets}
    have = [p for p in presets if counts[p][NOT_RUN] < len(rows)]
    return {"presets": presets, "with_results": have, "rows": rows, "counts": counts, "seed": seed}


def format_report(rep: dict, width: int = 100) -> str:
    """The report as plain text (``python -m gapkit report``)."""
    import textwrap
    out = []
    for p in rep["presets"]:
        c = rep["counts"][p]
        out.append(f"{p}: " + ", ".join(f"{c[v]} {v}" for v in VERDICTS))
    for r in rep["rows"]:
        out.append("")
        out.append(f"[{r['key']}] {r['source']}, {r['where']} ({r['experiment']})")
        out += textwrap.wrap(f"claim: {r['claim']}", width, subsequent_indent="  ")
        out += textwrap.wrap(f"paper: {r['paper']}", width, subsequent_indent="  ")
        out += textwrap.wrap(f"rule: {r['rule']}", width, subsequent_indent="  ")
        for p in rep["presets"]:
            j = r["results"][p]
            out += textwrap.wrap(f"{p:>5}: {j['verdict'].upper()}: {j['ours']}", width, subsequent_indent="         ")
    return "\n".join(out)
