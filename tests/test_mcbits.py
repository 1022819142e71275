"""Bits-back beyond the ELBO (issue 20, chapter 7): Monte Carlo bits-back with K importance samples
(code length -IWAE-K), posterior tables as a rounded CDF, and a cheap start without initial bits."""
import hashlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gapkit.bounds import bpd
from gapkit.coding import BitsBackCodec, CodecError, decode, encode
from gapkit.coding.container import unpack
from gapkit.estimators import evaluate
from gapkit.models import VAE

from test_bits_back import binary, small_model


@pytest.fixture(scope="module")
def sampled():
    """A VAE and 1500 images drawn from it (so the model fits the data)."""
    torch.manual_seed(0)
    m = VAE(64, 4, (32,)).eval()
    with torch.no_grad():
        _, x = m.sample(1500, torch.Generator().manual_seed(0))
    return m, x.numpy().astype(np.uint8)


# ---------------------------------------------------------------- exact round trips for every K
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 16), n=st.integers(1, 30), z=st.integers(1, 4), p=st.floats(0.0, 1.0),
       group=st.integers(1, 12), K=st.integers(1, 12), steps=st.sampled_from([0, 1]), bits=st.integers(2, 9),
       prec=st.sampled_from([12, 14, 24]), cheap=st.booleans())
def test_property_round_trip_every_K(seed, n, z, p, group, K, steps, bits, prec, cheap):
    m = small_model(seed, x_dim=12, z_dim=z)
    x = binary(n, 12, p, seed)
    prec = max(prec, bits + 1)
    c = BitsBackCodec(m, group_size=group, samples=K, steps=steps, latent_bits=bits, posterior_precision=prec,
                      cheap_start=cheap)
    data = c.encode(x)
    y, init = c.decode(data, return_initial=True)
    assert np.array_equal(y, x)
    assert np.array_equal(decode(m, data), x)  # a fresh codec from the header alone


@pytest.mark.parametrize("K", [1, 2, 7, 64])
def test_round_trip_logistic_and_adversarial(K):
    m = small_model(likelihood="logistic")
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.integers(0, 256, (9, 16)), np.zeros((2, 16)), np.full((2, 16), 255)]).astype(np.uint8)
    c = BitsBackCodec(m, group_size=5, samples=K, posterior_precision=14)
    assert np.array_equal(c.decode(c.encode(x)), x)
    mb = small_model()
    xb = np.concatenate([np.zeros((5, 16)), np.ones((5, 16)), binary(5)]).astype(np.uint8)
    c = BitsBackCodec(mb, group_size=4, samples=K, cheap_start=True)
    assert np.array_equal(c.decode(c.encode(xb)), xb)


def test_thread_count_does_not_change_an_mc_message():
    m, x = small_model(), binary(40)
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = encode(m, x, samples=4)
        torch.set_num_threads(2)
        b = encode(m, x, samples=4)
    finally:
        torch.set_num_threads(n)
    assert a == b


# ---------------------------------------------------------------- K = 1 is today's coder
# SHA-256 of the ANS words of main's coder (before issue 20) on these images: K = 1 must not change them.
PINNED = {(("group_size", 20),): "e686775e5bbee10e43bdb84de9a73d6c66b2f0e2ccc5877306a5d14bd5c8fac4",
          (("group_size", 7), ("steps", 2)): "11570c11fab9afa0e4e35955deac1f605f5b2189a8e1a2205d07faed70549964"}


@pytest.mark.parametrize("kw", list(PINNED))
def test_one_sample_is_the_plain_coder_bit_for_bit(kw):
    m, x = small_model(), binary(60)
    words = unpack(BitsBackCodec(m, samples=1, **dict(kw)).encode(x))[1]
    assert hashlib.sha256(words.tobytes()).hexdigest() == PINNED[kw]


# ---------------------------------------------------------------- rates
def test_rate_falls_below_the_elbo_and_tracks_iwae(sampled):
    m, x = sampled
    xt = torch.from_numpy(x).float()
    rates = {}
    for K in (1, 8):
        c = BitsBackCodec(m, samples=K)
        data = c.encode(x)
        assert np.array_equal(c.decode(data), x)
        rates[K] = c.last_stats["bpd"]
    mu, std = BitsBackCodec(m).posterior(x)
    ne = float(bpd(evaluate(m, xt, "elbo", K=50, q=(mu, std)).mean(), 64))
    ni = float(bpd(evaluate(m, xt, "iwae", K=8, q=(mu, std)).mean(), 64))
    assert rates[1] == pytest.approx(ne, rel=0.01)
    assert rates[8] == pytest.approx(ni, rel=0.01)
    assert rates[8] < rates[1] and rates[8] < ne


def test_rounded_cdf_tables_are_sharper(sampled):
    """At 10 bits a floor of 2^-10 per bin wastes 256/1024 of q's mass; the rounded CDF does not."""
    m, x = sampled
    x = x[:500]
    c = BitsBackCodec(m, posterior_precision=10)
    c.encode(x)
    r10 = c.last_stats["bpd"]
    c24 = BitsBackCodec(m)
    c24.encode(x)
    assert r10 < c24.last_stats["bpd"] * 1.01
    mu, std = c.posterior(x)
    t = c.vae.q_table(mu, std)
    assert (t == 0).any() and np.allclose(t.sum(1), 1) and np.all(t * 1024 == np.round(t * 1024))


def test_cheap_start_total_close_to_net(sampled):
    m, x = sampled
    x = x[:100]
    c = BitsBackCodec(m, cheap_start=True)
    data = c.encode(x)
    assert np.array_equal(c.decode(data), x)
    st = c.last_stats
    assert st["initial_bits"] <= 64 and st["message_bits"] <= 1.02 * st["net_bits"]
    plain = BitsBackCodec(m)
    plain.encode(x)
    assert st["message_bits"] < plain.last_stats["message_bits"]


# ---------------------------------------------------------------- damaged MC messages
def test_edited_mc_messages_are_refused():
    m, x = small_model(), binary(20)
    data = BitsBackCodec(m, samples=4, group_size=8).encode(x)
    header, words = unpack(data)
    from gapkit.coding.container import pack
    for i in (0, len(words) // 2, len(words) - 2):
        w = words.copy()
        w[i] ^= np.uint32(1 << 5)
        with pytest.raises(CodecError):
            decode(m, pack(header, w))
    h = dict(header, coder=dict(header["coder"], samples=5))
    with pytest.raises(CodecError):
        decode(m, pack(h, words))


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_single_byte_edit_of_an_mc_file_is_refused(data):
    m, x = small_model(), binary(12)
    msg = _mc_message(m, x)
    at = data.draw(st.integers(0, len(msg) - 1))
    bad = bytearray(msg)
    bad[at] = (bad[at] + data.draw(st.integers(1, 255))) % 256
    with pytest.raises(CodecError):
        decode(m, bytes(bad))


_CACHE = {}


def _mc_message(m, x):
    if "msg" not in _CACHE:
        _CACHE["msg"] = BitsBackCodec(m, samples=3, group_size=5, cheap_start=True).encode(x)
    return _CACHE["msg"]


def test_cli_samples(tmp_path):
    from gapkit.io import save_checkpoint
    from gapkit.__main__ import main
    m = small_model()
    save_checkpoint(tmp_path / "m.pt", m)
    x = binary(10).reshape(10, 4, 4)
    np.save(tmp_path / "x.npy", x)
    main(["compress", str(tmp_path / "x.npy"), str(tmp_path / "m.gkbb"), "--checkpoint", str(tmp_path / "m.pt"),
          "--samples", "4", "--cheap-start", "--posterior-precision", "14", "--quiet"])
    c = unpack((tmp_path / "m.gkbb").read_bytes())[0]["coder"]
    assert c["samples"] == 4 and c["cheap_start"] == 1 and c["posterior_precision"] == 14
    main(["decompress", str(tmp_path / "m.gkbb"), str(tmp_path / "y.npy"), "--checkpoint", str(tmp_path / "m.pt"),
          "--quiet"])
    assert np.array_equal(np.load(tmp_path / "y.npy"), x)
