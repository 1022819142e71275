"""Chapter 3: wake, sleep, reverse sleep, reverse half-asleep, denoising; the downstream classifier."""
import pytest
import torch

from gapkit.bounds import elbo
from gapkit.analysis.classify import Classifier
from gapkit.analysis.classify import accuracy
from gapkit.analysis.classify import predictive
from gapkit.analysis.classify import train_classifier
from gapkit.estimators import log_weights
from gapkit.models import VAE, LinearGaussian
from gapkit.objectives import (Denoising, EncoderScheme, ReverseHalfAsleep, ReverseSleep, Sleep, Wake,
                               make_objective, model_samples, names)
from gapkit.train import train


def small_vae(seed=0):
    torch.manual_seed(seed)
    return VAE(12, 3, (16,), "relu", "bernoulli")


def batch(n=32, d=12, seed=1):
    return torch.bernoulli(torch.full((n, d), 0.4), generator=torch.Generator().manual_seed(seed))


# -- validation
@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), "half", True])
def test_alpha_out_of_range(alpha):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ReverseHalfAsleep(alpha)


@pytest.mark.parametrize("sigma", [-0.1, -1, float("nan")])
def test_negative_sigma(sigma):
    with pytest.raises(ValueError, match=r"sigma .* in \[0, inf\)"):
        Denoising(sigma)


@pytest.mark.parametrize("make", [lambda: ReverseHalfAsleep(0.5, latent="aggregate"),
                                  lambda: Sleep(latent="q"), lambda: ReverseSleep(latent=None)])
def test_unknown_latent_source(make):
    with pytest.raises(ValueError, match="'prior'.*'posterior'"):
        make()


def test_unknown_objective_name_and_K():
    with pytest.raises(ValueError, match="reverse_half_asleep"):
        make_objective("half_asleep")
    assert names(EncoderScheme) == ["wake", "sleep", "reverse_sleep", "reverse_half_asleep", "denoising"]
    assert isinstance(make_objective("reverse_half_asleep", alpha=0.25), ReverseHalfAsleep)
    with pytest.raises(ValueError, match="positive integer"):
        Wake(K=0)


# -- alpha = 0 and alpha = 1
def test_alpha_zero_is_the_encoder_elbo_on_the_same_batch():
    m, x = small_vae(), batch()
    rha = ReverseHalfAsleep(0.0)(m, x, torch.Generator().manual_seed(5))
    ref = -elbo(log_weights(m, x, 1, generator=torch.Generator().manual_seed(5))).mean()
    wake = Wake()(m, x, torch.Generator().manual_seed(5))
    assert rha.decoder is None and wake.decoder is None
    torch.testing.assert_close(rha.encoder, ref, rtol=0, atol=0)
    torch.testing.assert_close(wake.encoder, ref, rtol=0, atol=0)
    g_rha = torch.autograd.grad(rha.encoder, m.encoder_parameters())
    g_ref = torch.autograd.grad(ref, m.encoder_parameters())
    for a, b in zip(g_rha, g_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_alpha_one_uses_no_training_data():
    m = small_vae()
    x_nan = torch.full((32, 12), float("nan"))  # any read of the training rows would show up as nan
    loss = ReverseHalfAsleep(1.0)(m, x_nan, torch.Generator().manual_seed(3)).encoder
    assert torch.isfinite(loss)
    same = ReverseSleep()(m, batch(seed=9), torch.Generator().manual_seed(3)).encoder
    torch.testing.assert_close(loss, same, rtol=0, atol=0)
    # ... whereas alpha < 1 does read them (and the bound refuses the NaN log-weights they give)
    with pytest.raises(ValueError, match="non-finite log-weight"):
        ReverseHalfAsleep(0.5)(m, x_nan, torch.Generator().manual_seed(3))


def test_half_asleep_is_the_mixture_of_its_two_terms():
    m, x = small_vae(), batch()
    g = torch.Generator().manual_seed(11)
    loss = ReverseHalfAsleep(0.25)(m, x, g).encoder
    g = torch.Generator().manual_seed(11)
    wake = -elbo(log_weights(m, x, 1, generator=g)).mean()
    _, xs = m.sample(len(x), g)
    dream = -elbo(log_weights(m, xs, 1, generator=g)).mean()
    torch.testing.assert_close(loss, 0.75 * wake + 0.25 * dream)


def test_posterior_latent_source_decodes_encoder_samples():
    m, x = small_vae(), batch()
    z, xs = model_samples(m, x, "posterior", torch.Generator().manual_seed(0))
    mu, std = m.encode(x)
    assert z.shape == mu.shape and xs.shape == x.shape
    assert set(xs.unique().tolist()) <= {0.0, 1.0}
    # the latents follow q(z|x): standardized they are N(0, 1), not N(0, 1) in raw units
    e = ((z - mu) / std).detach()
    assert abs(float(e.mean())) < 0.3 and abs(float(e.std()) - 1) < 0.3


def test_sleep_is_log_q_of_model_samples():
    m, x = small_vae(), batch()
    loss = Sleep()(m, x, torch.Generator().manual_seed(2)).encoder
    z, xs = m.sample(len(x), torch.Generator().manual_seed(2))
    mu, std = m.encode(xs)
    torch.testing.assert_close(loss, -m.log_q(z, mu, std).mean())


def test_denoising_sigma_zero_is_the_wake_elbo_and_noise_changes_it():
    m, x = small_vae(), batch()
    d0 = Denoising(0.0)(m, x, torch.Generator().manual_seed(4)).encoder
    g = torch.Generator().manual_seed(4)
    a = -elbo(log_weights(m, x, 1, generator=g)).mean()
    torch.randn(x.shape, generator=g)
    b = -elbo(log_weights(m, x, 1, generator=g)).mean()
    torch.testing.assert_close(d0, 0.5 * (a + b))
    d1 = Denoising(1.0)(m, x, torch.Generator().manual_seed(4)).encoder
    assert not torch.allclose(d0, d1)


def test_denoising_noise_is_on_the_encoders_scale_for_8bit_pixels():
    """sigma is relative to pixels in [0, 1]: for grey (0..255) data the noise is added to x / 255,
    what the encoder sees, not to x (which would make it 255 times too small)."""
    import torch.nn.functional as F
    from gapkit.models.base import MIN_STD
    torch.manual_seed(0)
    m = VAE(12, 3, (16,), "relu", "logistic")
    x = torch.randint(0, 256, (32, 12), generator=torch.Generator().manual_seed(1)).float()
    sigma = 0.4
    got = Denoising(sigma)(m, x, torch.Generator().manual_seed(4)).encoder
    g = torch.Generator().manual_seed(4)
    wake = -elbo(log_weights(m, x, 1, generator=g)).mean()
    eps = torch.randn(x.shape, generator=g)
    mu, s = m.encoder(x / 255.0 + sigma * eps).chunk(2, dim=-1)   # the network itself, on [0, 1] pixels
    noisy = -elbo(log_weights(m, x, 1, q=(mu, F.softplus(s) + MIN_STD), generator=g)).mean()
    torch.testing.assert_close(got, 0.5 * (noisy + wake))
    # binary pixels are already on [0, 1]: the noise goes onto x itself
    mb, xb = small_vae(), batch()
    got_b = Denoising(sigma)(mb, xb, torch.Generator().manual_seed(4)).encoder
    g = torch.Generator().manual_seed(4)
    wake_b = -elbo(log_weights(mb, xb, 1, generator=g)).mean()
    eps = torch.randn(xb.shape, generator=g)
    noisy_b = -elbo(log_weights(mb, xb, 1, q=mb.encode(xb + sigma * eps), generator=g)).mean()
    torch.testing.assert_close(got_b, 0.5 * (noisy_b + wake_b))


def test_train_decoder_option_gives_a_decoder_loss():
    m, x = small_vae(), batch()
    for obj in (Sleep(train_decoder=True), ReverseHalfAsleep(0.5, train_decoder=True), Denoising(0.2, train_decoder=True)):
        losses = obj(m, x, torch.Generator().manual_seed(0))
        assert losses.decoder is not None and losses.decoder.requires_grad
    assert Wake(train_decoder=True)(m, x).decoder is not None


# -- in the training loop: the decoder stays fixed
class _Data:
    """A minimal Dataset stand-in for the loop."""

    def __init__(self, train, test):
        self.train, self.test, self.valid = train, test, test
        self.dynamic, self.dim = False, train.shape[1]

    def binarize(self, x, g=None):
        return x

    def to(self, device):
        return self


@pytest.mark.parametrize("obj", [Sleep(), ReverseSleep(), ReverseHalfAsleep(0.5, latent="posterior"), Denoising(0.4)])
def test_post_hoc_training_keeps_the_decoder(obj):
    m = small_vae()
    dec = [p.detach().clone() for p in m.decoder_parameters()]
    enc = [p.detach().clone() for p in m.encoder_parameters()]
    train(m, _Data(batch(64), batch(32, seed=2)), obj, epochs=2, batch_size=16, lr=1e-2, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(dec, m.decoder_parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(enc, m.encoder_parameters()))


# -- the linear-Gaussian model: reverse sleep finds the exact posterior
def test_reverse_sleep_recovers_the_exact_posterior_on_linear_gaussian():
    g = torch.Generator().manual_seed(0)
    W = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0], [0.0, 0.0]], dtype=torch.float64)  # diagonal posterior
    lg = LinearGaussian(4, 2, noise_std=0.7, W=W, generator=g)
    # Reverse sleep never reads the training rows (only their number sets the steps per epoch; the
    # training loop refuses NaN rows, so zeros stand in). The encoder starts at A = 0, c = 0, std = 1.
    data = _Data(torch.zeros((5000, 4), dtype=torch.float64), lg.sample(100, g)[1])
    # two phases, each with a fresh Adam (the loop makes new optimizers per call): a fast one, then a fine one
    train(lg, data, ReverseSleep(K=4), epochs=10, batch_size=500, lr=0.05, eval_every=0, progress=False, seed=1)
    train(lg, data, ReverseSleep(K=4), epochs=10, batch_size=500, lr=0.005, eval_every=0, progress=False, seed=2)
    x = lg.sample(1000, g)[1]
    mu_q, std_q = lg.encode(x)
    mu_p, S = lg.posterior(x)
    err_mean = (mu_q - mu_p).abs().max().item()
    assert err_mean < 0.06, err_mean  # over 1000 points; the untrained encoder (A = 0) is off by > 1
    A, c, _ = lg.exact_encoder()
    torch.testing.assert_close(lg.A.detach(), A.detach(), rtol=0, atol=0.02)
    torch.testing.assert_close(std_q[0].detach(), torch.sqrt(torch.diagonal(S)).detach(), rtol=0.05, atol=0)
    torch.testing.assert_close(lg.W.detach(), W, rtol=0, atol=0)  # the decoder was not touched


# -- the downstream classifier
def test_classifier_learns_separable_latents_and_predictive_is_batched():
    m = small_vae()
    with torch.no_grad():  # a sharp encoder: spread-out means, small std, so the labels below are learnable
        last = m.encoder[-1]
        last.weight[:3] *= 20
        last.weight[3:] = 0
        last.bias[3:] = -5.0
    # labels that the encoder mean separates: the sign of the first latent mean
    x = batch(600, seed=5)
    with torch.no_grad():
        y = (m.encode(x)[0][:, 0] > m.encode(x)[0][:, 0].median()).long()
    clf = train_classifier(m, x[:500], y[:500], epochs=30, lr=3e-3, batch_size=50, seed=0)
    acc = accuracy(m, clf, x[500:], y[500:], K=50)
    assert acc > 0.75, acc
    p_small = predictive(m, clf, x[500:], K=50, max_rows=60, seed=3)   # one image per pass
    p_big = predictive(m, clf, x[500:], K=50, max_rows=1 << 16, seed=3)
    torch.testing.assert_close(p_small.sum(-1), torch.ones(100))
    assert p_small.shape == p_big.shape == (100, 2)
    with pytest.raises(ValueError, match="labels"):
        train_classifier(m, x, y[:10])
    with pytest.raises(ValueError, match="dropout"):
        Classifier(3, dropout=1.0)


# -- the experiments, shrunk further than the quick preset
def test_experiments_write_the_curves_tables_and_accuracies(tmp_path):
    from gapkit import experiments
    r = experiments.run("reverse-half-asleep", preset="quick", out=tmp_path / "rha", progress=False,
                        base_epochs=4, epochs=2, eval_every=1, seeds=2, sigmas=[0.4], classifier_epochs=1,
                        classifier_K=5, final_K=2, grey_epochs=2, grey_train_subset=300)
    m = r["methods"]
    assert set(m) == {"reverse_half_asleep", "sleep", "denoising"}
    assert [x["alpha"] for x in m["reverse_half_asleep"]] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [x["sigma"] for x in m["denoising"]] == [0.4]
    half = r.at("methods.reverse_half_asleep.2")
    assert half["alpha"] == 0.5 and half["epochs"] == [0, 1, 2] and len(half["test_bpd"]) == 2  # per seed
    assert all(len(c) == 3 for c in m["sleep"]["test_bpd"])
    assert r.at("methods.reverse_half_asleep.0.test_bpd.0.0") == r.at("methods.reverse_half_asleep.4.test_bpd.0.0")
    rows = r.at("table1.rows")
    assert [row["method"] for row in rows][:2] == ["VAE (base, as trained)", "VAE + wake post hoc (alpha=0)"]
    assert all(0 < row["test_bpd"] < 2 for row in rows) and r.at("table1.K") == 2
    assert all(0 <= c["accuracy"] <= 1 for c in r.at("classifier.rows")) and len(r.at("classifier.rows")) == 3
    assert r.at("classifier.K") == 5 and r.at("classifier.seeds") == [0, 1]
    for c in r.at("classifier.rows"):   # one classifier per post-hoc seed; accuracy is their mean
        assert len(c["per_seed"]) == 2 and c["accuracy"] == pytest.approx(sum(c["per_seed"]) / 2)
    # Table 1's grey row: grey data, a discretized-logistic base VAE, the same rows as the binary table
    g = r["grey"]
    assert g["dataset"]["binarization"] == "grey" and g["dataset"]["n_train"] == 300 and g["table1"]["K"] == 2
    assert g["base"]["epoch"] == [4]    # the grey base is evaluated after its last epoch only
    assert [row["method"] for row in g["table1"]["rows"]] == [
        "VAE (base, as trained)", "VAE + wake post hoc (alpha=0)", "denoising sigma=0.4", "reverse half-asleep (alpha=0.5)"]
    assert all(0 < row["test_bpd"] < 9 for row in g["table1"]["rows"])
    assert set(r.at("findings.table1_grey")) == {"best_denoising", "beats_every_denoising", "best_denoising_beats_vae"}
    f = r["findings"]
    assert isinstance(f["figure4"]["half_beats_wake"], bool) and f["table1"]["best_denoising"] == "denoising sigma=0.4"
    assert r.at("paper.table1.reverse half-asleep") == 0.187
    s = experiments.run("sleep-consistency", preset="quick", out=tmp_path / "sc", progress=False,
                        n_train=100, n_test=50, epochs=2, eval_every=1)
    assert set(s["methods"]) == {"wake", "sleep", "reverse_sleep"}
    assert s["methods"]["wake"]["epochs"] == [1, 2]
    assert isinstance(s["ordering"]["holds"], bool)


def test_appendix_c_and_d_extras_run_and_are_recorded(tmp_path):
    """The paper preset's extras (Appendix C: latent sizes; D: reverse half-asleep from the start),
    shrunk to seconds: every row is a finite BPD and the from-start model has its own curve."""
    from gapkit import experiments
    from gapkit.experiments.reverse_half_asleep import BASE, RHS, WAKE
    r = experiments.run("reverse-half-asleep", preset="quick", out=tmp_path / "rha", progress=False,
                        base_epochs=3, epochs=1, eval_every=1, seeds=2, alphas=[0.0, 0.5], sigmas=[],
                        classifier_epochs=1, classifier_K=2, final_K=2, extras=True, latents=[2, 4], grey=False,
                        from_start_seeds=2)
    assert "grey" not in r and "table1_grey" not in r["findings"]
    ex = r["extras"]
    assert [row["latent"] for row in ex["latent_sizes"]] == [2, 4]
    for row in ex["latent_sizes"]:
        assert row["alpha"] == [0.0, 0.5] and all(0 < v < 5 for v in [row["vae"], *row["post_hoc"]])
    # the quick preset's own latent size (4) is the base run and its seed-0 post-hoc runs, not trained again
    t = {row["method"]: row["test_bpd"] for row in r.at("table1.rows")}
    assert ex["latent_sizes"][1]["vae"] == t[BASE] and ex["latent_sizes"][1]["post_hoc"] == [t[WAKE], t[RHS]]
    assert (tmp_path / "rha" / "base_z2").is_dir() and not (tmp_path / "rha" / "base_z4").exists()
    fs = ex["from_start"]
    assert 0 < fs["test_bpd"] < 5 and fs["vae_test_bpd"] == r.at("table1.rows.0.test_bpd")
    assert isinstance(r.at("findings.extras.from_start_beats_vae"), bool)
    assert fs["curve"]["epoch"] == [1, 2, 3] and len(fs["curve"]["test_bpd"]) == 3
    over = fs["over_seeds"]
    assert over["from_start"]["seeds"] == [0, 1] and over["from_start"]["test_bpd"][0] == fs["test_bpd"]
    assert over["from_start"]["test_bpd"][1] != fs["test_bpd"]          # another seed, another model
    assert over["post_hoc"]["seeds"] == [0, 1] and over["post_hoc"]["test_bpd"][0] == t[RHS]
    vs = r.at("findings.extras.from_start_vs_post_hoc")
    assert vs["a"]["per_seed"] == over["from_start"]["test_bpd"] and vs["b"]["per_seed"] == over["post_hoc"]["test_bpd"]


def test_seed_difference_against_the_pooled_seed_spread():
    from gapkit.experiments.reverse_half_asleep import seed_difference
    d = seed_difference([1.0, 2.0, 3.0], [0.0])          # s_a = 1, one seed of b adds nothing: s_p = 1
    assert d["difference"] == 2.0 and d["pooled_std"] == pytest.approx(1.0) and d["outcome"] == "better"
    assert d["a"] == {"mean": 2.0, "std": 1.0, "n": 3, "per_seed": [1.0, 2.0, 3.0]} and d["b"]["std"] is None
    d = seed_difference([1.0, 2.0, 3.0], [1.5, 1.5])     # s_p = sqrt((2 * 1 + 1 * 0) / 3) > 0.5
    assert d["pooled_std"] == pytest.approx((2 / 3) ** 0.5) and d["outcome"] == "within seed noise"
    assert seed_difference([1.0, 2.0, 3.0], [5.0], lower_is_better=True)["outcome"] == "better"
    assert seed_difference([1.0, 2.0, 3.0], [5.0])["outcome"] == "worse"
    one = seed_difference([1.0], [2.0])                   # no spread: the sign alone decides
    assert one["pooled_std"] is None and one["outcome"] == "worse"


def test_reproduction_rules_for_grey_table1_classifier_and_from_start_use_the_seed_spread():
    from gapkit.experiments.reverse_half_asleep import BASE, RHS, seed_difference
    from gapkit.reproduction import FINDINGS
    from gapkit.results import Results
    rules = {f.key: f.judge for f in FINDINGS}

    def table(vae, den, rhs):
        return {"rows": [{"method": BASE, "test_bpd": vae}, {"method": "denoising sigma=0.4", "test_bpd": den},
                         {"method": RHS, "test_bpd": rhs}]}
    assert rules["table1_grey"](Results({"table1": table(1, 1, 1)}))[0] == "not run"
    assert rules["table1_grey"](Results({"grey": {"table1": table(1.55, 1.52, 1.51)}}))[0] == "reproduces"
    assert rules["table1_grey"](Results({"grey": {"table1": table(1.55, 1.50, 1.51)}}))[0] == "partly"
    assert rules["table1_grey"](Results({"grey": {"table1": table(1.50, 1.52, 1.53)}}))[0] == "does not"

    def clf(rhs, base, wake):
        rows = [{"encoder": n, "accuracy": sum(v) / len(v), "std": None, "per_seed": v}
                for n, v in (("VAE (base)", base), ("wake post hoc (alpha=0)", wake), (RHS, rhs))]
        f = {"vs_base": seed_difference(rhs, base), "vs_wake_post_hoc": seed_difference(rhs, wake)}
        return Results({"classifier": {"seeds": [0, 1, 2], "rows": rows}, "findings": {"classifier": f}})
    clearly, noisy = [0.90, 0.91, 0.92], [0.80, 0.95, 0.87]
    assert rules["classifier"](clf(clearly, [0.80, 0.81, 0.82], [0.85, 0.86, 0.84]))[0] == "reproduces"
    verdict, ours = rules["classifier"](clf(noisy, [0.80, 0.81, 0.82], [0.85, 0.86, 0.84]))
    assert verdict == "partly" and "within seed noise" in ours
    assert rules["classifier"](clf([0.70, 0.71, 0.72], [0.80, 0.81, 0.82], [0.85, 0.86, 0.84]))[0] == "does not"

    def start(fs, vae, post):
        f = {"from_start_vs_vae": seed_difference(fs, [vae], lower_is_better=True),
             "from_start_vs_post_hoc": seed_difference(fs, post, lower_is_better=True)}
        return Results({"findings": {"extras": f}})
    assert rules["from_start"](start([0.190, 0.191, 0.192], 0.200, [0.195, 0.196]))[0] == "reproduces"
    assert rules["from_start"](start([0.190, 0.210, 0.200], 0.199, [0.195, 0.196]))[0] == "partly"
    assert rules["from_start"](start([0.210, 0.211, 0.212], 0.200, [0.195, 0.196]))[0] == "does not"


def test_over_seeds_reads_runs_by_alpha_and_counts_the_orderings():
    import numpy as np
    from gapkit.experiments.reverse_half_asleep import BASE, RHS, WAKE, over_seeds

    def run(seed, half):
        runs = [{"alpha": a, "test_bpd": [[0.5, v]]} for a, v in ((0.0, 0.30), (0.5, half), (1.0, 0.31))]
        rows = [{"method": BASE, "test_bpd": 0.32}, {"method": WAKE, "test_bpd": 0.30},
                {"method": "denoising sigma=0.2", "test_bpd": 0.305}, {"method": RHS, "test_bpd": half},
                {"method": "sleep", "test_bpd": 0.33}]
        return {"config": {"seed": seed}, "table1": {"K": 2, "rows": rows},
                "methods": {"reverse_half_asleep": runs, "sleep": {"test_bpd": [[0.5, 0.33]]}, "denoising": []}}
    o = over_seeds([run(0, 0.29), run(1, 0.31)])
    assert o["seeds"] == [0, 1] and o["figure4_final"]["alpha"] == [0.0, 0.5, 1.0]
    half = o["figure4_final"]["final"][1]
    assert half["mean"] == np.mean([0.29, 0.31]) and half["n"] == 2 and o["figure4_final"]["sleep"]["mean"] == 0.33
    assert o["holds_in_seeds"]["alpha = 0.5 is the best alpha"] == 1
    assert o["holds_in_seeds"]["reverse half-asleep beats the same wake training"] == 1
