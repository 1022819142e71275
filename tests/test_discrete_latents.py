"""Chapter 8: sigmoid belief networks, AIR, RWS and BiHM against exact answers by enumeration.

A tiny SBN (5 pixels, layers of 3 and 2 binary units: 32 latent states) has log p(x), the exact
posterior p(h | x), its marginals and the BiHM target sum_h sqrt(p(x, h) q(h | x)) in closed form.
"""
import math

import numpy as np
import pytest
import torch

from gapkit import bounds
from gapkit.inference.air import evaluate
from gapkit.inference.air import fit
from gapkit.inference.air import log_likelihood
from gapkit.inference.air import normalized_weights
from gapkit.inference.air import refine
from gapkit.objectives import AIR, RWS, BiHM
from gapkit.models.sbn import SBN
from gapkit.models.sbn import bernoulli_kl


def tiny(seed=0, n=6, layers=(3, 2), scale=2.0):
    torch.manual_seed(seed)
    m = SBN(5, layers).double()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(scale).add_(0.5 * torch.randn_like(p))
    g = torch.Generator().manual_seed(seed)
    _, x = m.sample(n, g)
    return m, x, g


def exact_kls(m, x, mu):
    """KL(q || p(h|x)) and KL(p(h|x) || q) for factorized q = Bernoulli(mu), by enumeration: (B,) each."""
    states, log_post = m.exact_posterior(x)                                    # (S, H), (S, B)
    log_q = m.log_q(states[:, None, :].expand(-1, len(x), -1), mu)              # (S, B)
    q, p = log_q.exp(), log_post.exp()
    return (q * (log_q - log_post)).sum(0), (p * (log_post - log_q)).sum(0)


def test_enumeration_is_normalized():
    m, _, _ = tiny()
    xs = m.all_states(torch.float64)                                            # every x in {0,1}^5
    assert xs.shape == (32, 5) and m.x_dim == 5
    assert torch.logsumexp(m.exact_log_px(xs), 0).exp().item() == pytest.approx(1.0, abs=1e-10)
    # the recognition network's q sums to one over h
    mu = m.encode(xs[:3])
    states = m.all_states(torch.float64)[:, None, :].expand(-1, 3, -1)
    assert torch.allclose(m.log_q(states, mu).exp().sum(0), torch.ones(3, dtype=torch.float64))


def test_iwae_approaches_log_px_from_below():
    m, x, g = tiny()
    exact = m.exact_log_px(x)
    means = []
    for K in (1, 10, 100):
        reps = torch.stack([log_likelihood(m, x, K=K, generator=g)[0] for _ in range(200)])
        means.append(reps.mean(0))
        assert (reps.mean(0) <= exact + 3 * reps.std(0) / math.sqrt(200) + 1e-9).all()
    assert (means[0] <= means[1] + 0.02).all() and (means[1] <= means[2] + 0.02).all()
    big, _ = log_likelihood(m, x, K=200000, generator=g)
    assert torch.allclose(big, exact, atol=0.02)


def test_each_air_step_moves_q_toward_the_exact_posterior():
    m, x, g = tiny(1)
    mu = m.encode(x)
    states, log_post = m.exact_posterior(x)
    marginals = (log_post.exp()[:, :, None] * states[:, None, :]).sum(0)       # (B, H)
    tr = refine(m, x, steps=15, K=2000, gamma=0.9, generator=g, keep_mu=True)
    incl = torch.stack([exact_kls(m, x, tr.mu[t])[1] for t in range(16)])      # (T+1, B)
    excl = torch.stack([exact_kls(m, x, tr.mu[t])[0] for t in range(16)])
    # the inclusive KL is convex in mu with its minimum at the posterior marginals: every step falls
    assert (incl[1:].mean(1) < incl[:-1].mean(1) + 1e-3).all()
    assert incl[-1].mean() < 0.1 * incl[0].mean()
    # and q's own KL to the posterior falls on average
    assert excl[1:4].mean() < excl[0].mean() and excl[-1].mean() < 0.5 * excl[0].mean()
    assert torch.allclose(tr.final, marginals, atol=0.05)
    # the recorded ELBO rises toward log p(x) and the ESS toward 1
    assert (tr.elbo[-1] > tr.elbo[0]).all() and (tr.ess[-1] > tr.ess[0]).all()
    assert (tr.elbo[-1] <= m.exact_log_px(x) + 1e-9).all()


def test_air_with_gamma_one_and_exact_weights_lands_on_the_marginals():
    m, x, g = tiny(2)
    states, log_post = m.exact_posterior(x)
    marginals = (log_post.exp()[:, :, None] * states[:, None, :]).sum(0)
    tr = refine(m, x, steps=1, K=50000, gamma=1.0, generator=g)                  # one undamped step
    assert torch.allclose(tr.final, marginals, atol=0.03)


def grads(loss, params):
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, retain_graph=True)])


def test_rws_gradients_match_their_definitions_by_enumeration():
    m, x, g = tiny(3, n=4)
    obj = RWS(K=40000)
    obj.sleep = False                      # the wake phase; the sleep phase is checked below
    losses = obj(m, x, g)
    # theta: sum_k w~_k grad log p(x, h_k) -> grad log p(x)
    exact_p = grads(-torch.logsumexp(m.log_joint(x, m.all_states(torch.float64)[:, None, :].expand(-1, 4, -1)),
                                     0).mean(), m.decoder_parameters())
    assert torch.allclose(grads(losses.decoder, m.decoder_parameters()), exact_p, atol=0.02, rtol=0.05)
    # psi (wake): sum_k w~_k grad log q(h_k|x) -> E_{p(h|x)} grad log q(h|x) = -grad KL(p(h|x) || q)
    states, log_post = m.exact_posterior(x)
    logits = m.encode_logits(x)
    exact_q = grads(-(log_post.exp() * m.log_q_logits(states[:, None, :].expand(-1, 4, -1), logits)).sum(0).mean(),
                    m.encoder_parameters())
    assert torch.allclose(grads(losses.encoder, m.encoder_parameters()), exact_q, atol=0.02, rtol=0.05)


def test_rws_sleep_phase_is_the_forward_kl_on_model_samples():
    m, x, g = tiny(4, n=3)
    wake = RWS(K=10)
    wake.sleep = False
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    full = RWS(K=10)(m, x, g1)
    w = wake(m, x, g2)
    hs, xs = m.sample(len(x), g2)          # the same draws the full objective made after the wake phase
    sleep = -m.log_q_logits(hs, m.encode_logits(xs)).mean()
    assert torch.allclose(full.encoder, 0.5 * (w.encoder + sleep))


def test_bihm_gradients_and_bound_match_their_definitions_by_enumeration():
    m, x, g = tiny(5, n=4)
    states, _ = m.exact_posterior(x)
    S = states[:, None, :].expand(-1, 4, -1)

    def target():  # 2 log sum_h sqrt(p(x, h) q(h | x)), with gradients for theta and psi
        return 2 * torch.logsumexp(0.5 * (m.log_joint(x, S) + m.log_q_logits(S, m.encode_logits(x))), 0)

    t = target()
    exact_lpx = m.exact_log_px(x)
    assert (t <= exact_lpx + 1e-9).all()                                     # Cauchy-Schwarz
    losses = BiHM(K=40000)(m, x, g)
    tm = -target().mean()
    assert torch.allclose(grads(losses.decoder, m.decoder_parameters()), grads(tm, m.decoder_parameters()),
                          atol=0.02, rtol=0.05)
    assert torch.allclose(grads(losses.encoder, m.encoder_parameters()), grads(tm, m.encoder_parameters()),
                          atol=0.02, rtol=0.05)
    # the K-sample bound stays below its own target and reaches it as K grows
    for K in (1, 5, 50):
        reps = torch.stack([log_likelihood(m, x, K=K, generator=g)[1] for _ in range(200)])
        assert (reps.mean(0) <= t.detach() + 3 * reps.std(0) / math.sqrt(200) + 1e-9).all()
    big = log_likelihood(m, x, K=40000, generator=g)[1]
    assert torch.allclose(big, t.detach(), atol=0.02)


def test_bihm_bound_reduction_and_weights():
    log_w = torch.randn(7, 3, dtype=torch.float64) * 3
    assert torch.allclose(bounds.bihm(log_w), 2 * torch.log(torch.exp(log_w / 2).mean(0)))
    assert (bounds.bihm(log_w) <= bounds.iwae(log_w) + 1e-12).all()        # Jensen: E sqrt(w)^2 <= E w
    w = normalized_weights(log_w, "bihm")
    assert torch.allclose(w, log_w.div(2).exp() / log_w.div(2).exp().sum(0))
    assert torch.allclose(normalized_weights(log_w).sum(0), torch.ones(3, dtype=torch.float64))


def test_air_objective_encoder_loss_is_the_closed_form_kl():
    m, x, _ = tiny(6, n=3)
    mu_p = torch.rand(3, m.h_dim, dtype=torch.float64)
    logits = m.encode_logits(x)
    states = m.all_states(torch.float64)[:, None, :].expand(-1, 3, -1)
    lp, lq = m.log_q(states, mu_p), m.log_q_logits(states, logits)
    assert torch.allclose(bernoulli_kl(mu_p, logits), (lp.exp() * (lp - lq)).sum(0))
    for obj in (AIR(3, 5), AIR(3, 5, reweighted=False), AIR(3, 5, encoder="inclusive"), AIR(2, 5, weights="bihm")):
        losses = obj(m, x, torch.Generator().manual_seed(0))
        assert losses.encoder.requires_grad and losses.decoder.requires_grad
        assert math.isfinite(losses.metrics["bound"]) and 0 < losses.metrics["ess"] <= 1


def test_training_raises_the_likelihood():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    teacher = SBN(16, (4,))
    with torch.no_grad():
        for p in teacher.parameters():
            p.mul_(4)
    _, x = teacher.sample(300, g)
    for obj in (AIR(3, 5), RWS(5), BiHM(5)):
        torch.manual_seed(1)
        m = SBN(16, (8,)).init_output_bias(x)
        h = fit(m, x, obj, epochs=8, batch_size=25, lr=1e-2, seed=0, eval_epochs=(0, 8),
                eval_fn=lambda mm: evaluate(mm, x[:100], K=20))
        assert h["iwae"][-1] > h["iwae"][0] + 0.1, obj.name
        assert h["seconds"][-1] > 0 and len(h["epoch_time"]) == 8


def _fit_run(x, out_dir, fail_at=None, lr=1e-2):
    """fit of a fresh SBN (same initialization) for 4 epochs; ``fail_at``: the evaluation after that
    epoch raises (the process stops there, after the previous epoch's checkpoint)."""
    torch.manual_seed(1)
    m = SBN(16, (8, 4)).init_output_bias(x)

    def eval_fn(mm):
        if fail_at is not None and len(h_seen) == fail_at:
            raise KeyboardInterrupt("stopped")
        h_seen.append(1)
        return {"w": float(sum(p.detach().double().sum() for p in mm.parameters()))}
    h_seen = []
    h = fit(m, x, AIR(3, 5), epochs=4, batch_size=25, lr=lr, seed=0, eval_epochs=(1, 2, 3, 4), eval_fn=eval_fn,
            out_dir=out_dir, checkpoint_every=1)
    return m, h


def test_fit_resumes_from_its_last_checkpoint_to_the_uninterrupted_result(tmp_path):
    g = torch.Generator().manual_seed(0)
    _, x = SBN(16, (4,)).sample(200, g)
    ref, h_ref = _fit_run(x, tmp_path / "ref")
    with pytest.raises(KeyboardInterrupt):
        _fit_run(x, tmp_path / "run", fail_at=2)                 # after epoch 3, before its checkpoint
    assert (tmp_path / "run" / "checkpoints" / "resume.pt").exists()
    assert not list((tmp_path / "run" / "checkpoints").glob("epoch_*.pt"))   # the trained weights: at the end
    m, h = _fit_run(x, tmp_path / "run")                          # continues after epoch 2
    for a, b in zip(ref.state_dict().values(), m.state_dict().values()):
        assert torch.equal(a, b)
    assert h["w"] == h_ref["w"] and h["epoch"] == h_ref["epoch"] == [1, 2, 3, 4] and len(h["epoch_time"]) == 4
    m2, h2 = _fit_run(x, tmp_path / "run", fail_at=0)             # finished: loads, neither trains nor evaluates
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), m2.state_dict().values()))
    assert h2["w"] == h_ref["w"]
    with pytest.raises(ValueError, match="another training run"):
        _fit_run(x, tmp_path / "run", lr=3e-2)                    # another training's folder is refused


@pytest.mark.parametrize("call,match", [
    (lambda: SBN(5, ()), "1 to 3"), (lambda: SBN(5, (2, 2, 2, 2)), "1 to 3"), (lambda: SBN(5, (0,)), "positive"),
    (lambda: refine(SBN(5, (2,)), torch.zeros(2, 5), steps=-1), "steps"),
    (lambda: refine(SBN(5, (2,)), torch.zeros(2, 5), gamma=0.0), r"\(0, 1\]"),
    (lambda: refine(SBN(5, (2,)), torch.zeros(2, 5), gamma=1.5), r"\(0, 1\]"),
    (lambda: refine(SBN(5, (2,)), torch.zeros(2, 5), K=0), "K"),
    (lambda: refine(SBN(5, (2,)), torch.zeros(2, 5), weights="sqrt"), "'iw'"),
    (lambda: AIR(encoder="forward"), "inclusive"),
    (lambda: refine(SBN(5, (2,)), torch.zeros(2, 4)), "shape"),
])
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def fake_results(good=True):
    """A results dict shaped like the experiment's, in which every claim holds (or none does)."""
    up = 1 if good else -1
    steps = list(range(51))
    curve = {"paper": {"elbo": [-100 + up * 0.1 * t for t in steps], "ess": [0.2 + up * 0.001 * t + 0.1 for t in steps]},
             "gentle": {"elbo": [-100 + 0.01 * t for t in steps]}}
    sf = {"elbo": [-100 + 0.05 * t for t in steps], "lrs": [0.1, 1.0], "best_lr": 0.1}
    hist = lambda m, ll, ess_, secs: {"method": m, "iwae": [-200, ll], "ess": [0.1, ess_],  # noqa: E731
                                      "elbo": [-210, ll - 5], "seconds": [0.0, secs], "epoch_time": [secs]}
    training = [{"layers": d, "runs": [hist("reweighted AIR-20", -100 + up, 0.5 + 0.1 * up, 10.0 if good else 0.5),
                                       hist("RWS", -100, 0.5, 1.0)]} for d in (2, 3)]
    nll = {"air": {"refined": {"paper": {"nll": 92.0 + (0 if good else 2)}}}, "bihm": {"encoder": {"nll": 93.0},
           "refined": {"paper": {"nll": 92.5 + (0 if good else 1)}}}}
    return {"figure1": {"steps": steps, "train_steps": 20, "depths": [{"layers": d, **curve} for d in (1, 2, 3)],
                        "score_function": sf, "gamma": {"paper": 0.9, "gentle": 0.1}},
            "training": training, "nll": nll}


def test_findings_are_decided_from_the_numbers():
    from gapkit.experiments.discrete_latents import findings
    good, bad = findings(fake_results(True)), findings(fake_results(False))
    assert [f["key"] for f in good] == [f["key"] for f in bad] and len(good) == 10
    assert all(f["holds"] for f in good), [f["key"] for f in good if not f["holds"]]
    # in the bad case every claim fails except "RWS is faster in wall-clock time" (there AIR's training
    # ends at 0.5 s with a bound of -106 nats, below RWS's -105 at 1 s)
    assert [f["key"] for f in bad if f["holds"]] == ["rws_faster_in_wall_clock"]
    assert all(f["detail"] for f in good + bad)


def test_experiment_runs_at_the_quick_preset(tmp_path):
    from gapkit import experiments
    res = experiments.run("discrete-latents", preset="quick", out=tmp_path, progress=False)
    f1 = res["figure1"]
    assert [c["layers"] for c in f1["depths"]] == [1, 2, 3] and len(f1["steps"]) == 51
    for c in f1["depths"]:
        assert len(c["paper"]["elbo"]) == 51 and all(0 < v <= 1 for v in c["paper"]["ess"] + c["gentle"]["ess"])
        assert all(v >= 0 for v in c["paper"]["entropy"])
    assert [t["layers"] for t in res["training"]] == [2, 3]
    assert [r["method"] for r in res.at("training.0.runs")] == res["methods"]
    assert [r["method"] for r in res.at("training.1.runs")] == [res["air"], "RWS"]
    h = res.at("training.0.runs.6")
    assert h["method"] == "RWS" and h["epoch"] == res["settings"]["eval_epochs"] and h["seconds"][0] == 0 < h["seconds"][-1]
    rows = [m["encoder"] for m in res["nll"].values()] + [r for m in res["nll"].values() for r in m["refined"].values()]
    assert len(rows) == 6
    for row in rows:
        assert math.isfinite(row["nll"]) and row["nll"] > 0 and row["bihm_bound"] >= row["nll"] - 1e-3
    assert len(res["findings"]) == 10 and res["paper_nll"] == {"AIR": 92.40, "BiHM": 93.30, "BiHM+": 92.90}
    assert res.at("metrics.nll.air.refined.paper") == res.at("nll.air.refined.paper.nll")
    sf = f1["score_function"]
    assert sf["best_lr"] in sf["lrs"] and len(sf["elbo"]) == 51 and max(sf["final_elbo"]) == sf["elbo"][-1]
    sl = res["slider"]["paper"]
    assert np.array(sl["ess"]).shape == (51, res["settings"]["curve_n"])


def test_score_function_gradient_is_the_elbo_gradient_by_enumeration():
    from gapkit.inference.air import score_function_gradient
    from gapkit.inference.air import score_function_refine
    m, x, g = tiny(7, n=3)
    logits = m.encode_logits(x).detach().requires_grad_(True)
    states = m.all_states(torch.float64)[:, None, :].expand(-1, 3, -1)
    log_q = m.log_q_logits(states, logits)                                      # (S, B)
    exact_elbo = (log_q.exp() * (m.log_joint(x, states).detach() - log_q)).sum(0)
    exact = torch.autograd.grad(exact_elbo.sum(), logits)[0]                    # (B, H), per image
    with torch.no_grad():
        est, lw = score_function_gradient(m, x, logits.detach(), K=200000, generator=g)
    assert lw.shape == (200000, 3)
    assert torch.allclose(est, exact, atol=0.03), (est - exact).abs().max()
    # ascent on the ELBO with these gradients raises it toward the best factorized q
    tr = score_function_refine(m, x, steps=100, K=200, lr=0.1, generator=g)
    assert (tr.elbo[-20:].mean(0) > tr.elbo[0] + 0.05).all() and (tr.elbo[-1] <= m.exact_log_px(x) + 1e-9).all()
    with pytest.raises(ValueError, match="lr"):
        score_function_refine(m, x, lr=0.0)
    with pytest.raises(ValueError, match="K"):
        score_function_refine(m, x, K=1)
