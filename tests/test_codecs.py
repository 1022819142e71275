"""Codecs as push/pop pairs (chapter 7): each piece and each composition round-trips on its own."""
import numpy as np
import pytest
import torch

from gapkit.coding import BitsBackCodec
from gapkit.coding.bitsback import bits_back, no_bits_back, trace
from gapkit.coding.codecs import bernoulli, categorical, concat, uniform
from gapkit.coding.mcbits import mc_bits_back
from gapkit.coding.stack import Underflow, check_reserve, encode_with_retry, initial_words, start
from gapkit.coding.tables import entropy_bits, info, posterior_table, quantize

from test_bits_back import binary, small_model

L = 6


def round_trip(codec, symbols, n_init=40):
    """Push then pop on a stack of random words: the symbols come back and the stack is as before."""
    ans = start(n_init, 3)
    before = ans.get_compressed().copy()
    codec.push(ans, symbols)
    back = codec.pop(ans)
    assert np.array_equal(np.asarray(back).reshape(np.shape(symbols)), symbols)
    assert np.array_equal(ans.get_compressed(), before)


@pytest.fixture(scope="module", params=["bernoulli", "logistic"])
def vae(request):
    return BitsBackCodec(small_model(likelihood=request.param), steps=1, posterior_precision=14).vae


@pytest.fixture(scope="module")
def images(vae):
    top = 2 if vae.likelihood_name == "bernoulli" else 256
    return np.random.default_rng(0).integers(0, top, (L, vae.x_dim)).astype(np.uint8)


def test_primitives_round_trip():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5), 30).astype(np.float32)
    round_trip(categorical(p), rng.integers(0, 5, 30).astype(np.int32))
    round_trip(uniform(7, 30), rng.integers(0, 7, 30).astype(np.int32))
    pb = rng.uniform(0.05, 0.95, 30)
    round_trip(bernoulli(pb), rng.integers(0, 2, 30).astype(np.int32))
    round_trip(concat([(slice(0, 10), categorical(p[:10])), (slice(10, 30), categorical(p[10:]))]),
               rng.integers(0, 5, 30).astype(np.int32))
    assert np.allclose(categorical(p).prob(np.zeros(30, int)), p[:, 0])


def test_prior_likelihood_posterior_round_trip(vae, images):
    z = np.random.default_rng(1).integers(0, 2 ** vae.latent_bits, L * vae.z_dim).astype(np.int32)
    round_trip(vae.prior(L), z)                           # p(z)
    round_trip(vae.likelihood(z), images)                 # p(x | z)
    round_trip(vae.posterior(images, 0), z)               # q(z | x)


def test_bits_back_pair_round_trips_and_costs_the_one_sample_elbo(vae, images):
    post = lambda x: vae.posterior(x, 0)  # noqa: E731
    bb = bits_back(vae.prior(L), vae.likelihood, post)
    round_trip(bb, images)
    t = trace(vae.prior(1), vae.likelihood, post, images[:1], 0)
    s = t["stack_bits"]
    assert s["push z"] - s["start"] == pytest.approx(t["neg_log2_px_given_z"] + t["neg_log2_pz"] - t["neg_log2_q"],
                                                     abs=3)


@pytest.mark.parametrize("K", [2, 5])
def test_mc_bits_back_pair_round_trips(vae, images, K):
    round_trip(mc_bits_back(vae.prior(L), vae.likelihood, lambda x: vae.posterior(x, 0), K, L), images,
               n_init=40 * K)


def test_no_bits_back_pair_needs_no_bits(vae, images):
    codec = no_bits_back(vae.prior(L), vae.likelihood, lambda x: vae.posterior(x, 0).table.argmax(1))
    ans = start(0, 0)
    codec.push(ans, images)
    assert np.array_equal(codec.pop(ans), images) and ans.is_empty()


def test_reserve_and_retry():
    with pytest.raises(Underflow):
        check_reserve(100, 80.0, 32)
    calls = []

    def push_all(ans):
        calls.append(ans.num_bits())
        if len(calls) < 3:
            raise Underflow()
    ans, n, start_bits = encode_with_retry(push_all, 0, 0)
    assert n == 2 and calls == [0, 64, 96] and start_bits == 96   # 0 -> 1 -> 2 words (and the seal word)
    assert np.array_equal(initial_words(5, 1)[:3], initial_words(3, 1))


def test_tables_and_information():
    p = torch.tensor([[0.5, 0.25, 0.25, 0.0]])
    q = quantize(p, 8)
    assert float(q.sum()) == 1.0 and (q > 0).all()
    assert entropy_bits(np.array([[0.5, 0.5]])) == 1.0 and info(0.25) == 2.0
    edges = torch.tensor([-float("inf"), -1.0, 0.0, 1.0, float("inf")])
    t = posterior_table(torch.zeros(1, 1), torch.full((1, 1), 0.01), edges, 10)
    assert t.sum() == 1.0 and (t == 0).sum() == 2       # far-tail bins may be empty
