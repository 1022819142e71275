"""The contributor recipes of CONTRIBUTING.md, proven: a new bound and a new objective, each defined
only here, go through the library's public entry points without touching any library file."""
import functools
import math

import pytest
import torch

from gapkit.inference import optimal
from gapkit.bounds import iwae, log_mean_exp
from gapkit.estimators import evaluate, log_weights
from gapkit.models import VAE
from gapkit.objectives import OBJECTIVES, Losses, Objective, make_objective, register
from gapkit.inference.refine import refine
from gapkit.analysis.snr import snr
from gapkit.train import train


def renyi(log_w: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """Renyi's alpha bound (Li & Turner 2016): ``1/(1 - alpha) log (1/K) sum_k w_k^(1 - alpha)``:
    (K, ...) -> (...). alpha = 0 is IWAE-K; alpha -> 1 the ELBO."""
    return log_mean_exp((1 - alpha) * log_w, dim=0) / (1 - alpha)


def _model_and_data(seed=0, n=6):
    torch.manual_seed(seed)
    m = VAE(12, 2, (16,), "tanh")
    x = torch.bernoulli(torch.full((n, 12), 0.4), generator=torch.Generator().manual_seed(seed + 1))
    return m, x


def test_a_new_bound_goes_through_evaluate_snr_per_point_and_refine():
    m, x = _model_and_data()
    half = functools.partial(renyi, alpha=0.5)
    # evaluate: chunked over the samples (no stream: the chunks' log-weights are reduced at once)
    got = evaluate(m, x, half, K=40, max_rows=8 * len(x), seed=3)
    with torch.no_grad():
        direct = half(log_weights(m, x, 40, generator=torch.Generator().manual_seed(3)))
    torch.testing.assert_close(got, direct)
    ev_iwae, ev_elbo = evaluate(m, x, "iwae", K=40, seed=3), evaluate(m, x, "elbo", K=40, seed=3)
    assert bool((ev_elbo <= got + 1e-5).all()) and bool((got <= ev_iwae + 1e-5).all())   # between ELBO and IWAE
    # snr: alpha = 0 is IWAE (to the last bit for M = 1; M = 2 averages two groups: MIWAE);
    # alpha = 0.5 gives finite SNRs
    zero = functools.partial(renyi, alpha=0.0)
    for M, tol in ((1, 0), (2, 1e-4)):
        a, b = snr(m, x[:2], K=4, M=M, bound=zero, reps=8), snr(m, x[:2], K=4, M=M, bound="iwae", reps=8)
        for side in ("phi", "theta"):
            torch.testing.assert_close(getattr(a, side), getattr(b, side), rtol=tol, atol=tol, equal_nan=True)
    s = snr(m, x[:2], K=4, bound=renyi, alpha=0.5, reps=8)       # parameters of the bound by keyword
    assert math.isfinite(s.dsnr["all"]) and s.theta.numel() > 0
    # per_point and refine: alpha = 0 follows IWAE exactly; alpha = 0.5 improves on the encoder
    q0 = optimal.per_point(m, x, steps=5, lr=0.05, K=3, bound=zero, seed=1)
    q1 = optimal.per_point(m, x, steps=5, lr=0.05, K=3, bound="iwae", seed=1)
    assert torch.equal(q0[0], q1[0]) and torch.equal(q0[1], q1[1])
    q = optimal.per_point(m, x, steps=60, lr=0.05, K=3, bound=half, seed=1)
    assert evaluate(m, x, half, K=200, q=q, seed=2).mean() > evaluate(m, x, half, K=200, seed=2).mean()
    t0 = refine(m, x, steps=3, samples=3, bound=zero, seed=1)
    t1 = refine(m, x, steps=3, samples=3, bound="iwae", seed=1)
    assert torch.equal(t0.mu, t1.mu)


def test_a_bad_bound_is_refused_before_work():
    m, x = _model_and_data()
    with pytest.raises(ValueError, match="valid: elbo, iwae"):
        evaluate(m, x, "renyi")
    with pytest.raises(ValueError, match="beta"):
        optimal.per_point(m, x, bound="ciwae")


def test_a_new_objective_registered_here_trains_through_the_one_loop():
    @register
    class RenyiVI(Objective):
        """Maximize the Renyi-alpha bound with K samples, for phi and theta."""

        name = "renyi-vi-test"

        def __init__(self, alpha: float = 0.5, K: int = 4):
            self.alpha, self.K = alpha, K

        def config(self):
            return {"name": self.name, "alpha": self.alpha, "K": self.K}

        def __call__(self, model, x, generator=None) -> Losses:
            bound = renyi(log_weights(model, x, self.K, generator=generator), self.alpha).mean()
            return Losses(-bound, -bound, {"bound": bound.item()})

    try:
        with pytest.raises(ValueError, match="taken"):
            register(type("Other", (Objective,), {"name": "renyi-vi-test"}))
        from gapkit.data import load
        data = load("digits", "threshold", subset=200)
        torch.manual_seed(0)
        m = VAE(data.dim, 2, (16,), "tanh")
        obj = make_objective("renyi-vi-test", alpha=0.5, K=3)
        h = train(m, data, obj, epochs=3, batch_size=50, lr=3e-3, eval_every=1, progress=False)
        assert h["test_bound"][-1] > h["test_bound"][0]
    finally:
        OBJECTIVES.pop("renyi-vi-test", None)
    # the same bound with no class at all: the registered "bound" objective takes it as a function
    torch.manual_seed(0)
    m = VAE(data.dim, 2, (16,), "tanh")
    h = train(m, data, make_objective("bound", bound=renyi, alpha=0.0, K=3), epochs=1, batch_size=50,
              eval_every=1, progress=False)
    assert math.isfinite(h["test_bound"][-1])
    assert make_objective("bound", bound="iwae", K=3).config() == {"name": "bound", "bound": "iwae", "K": 3}


def test_iwae_of_the_registry_is_iwae():
    m, x = _model_and_data()
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a = make_objective("iwae", K=5)(m, x, g1).encoder
    b = -iwae(log_weights(m, x, 5, generator=g2)).mean()
    assert torch.equal(a, b)
