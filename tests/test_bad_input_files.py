"""Files you can trust: checksummed checkpoints and results, compressed files whose every header
field is validated, and commands that never overwrite their own inputs (issue "Runs you can trust")."""
import io
import json
import os
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gapkit.coding import BitsBackCodec, CodecError, decode
from gapkit.coding.container import FORMAT_VERSION, pack, pack_header, unpack
from gapkit.io import (CHECKPOINT_MAGIC, CheckpointError, IntegrityError, check_output, load_checkpoint,
                       read_json, save_checkpoint, write_json)
from gapkit.models import VAE

from test_bits_back import small_model


@pytest.fixture(scope="module")
def model():
    return small_model()


@pytest.fixture(scope="module")
def ckpt_bytes(tmp_path_factory, model):
    p = tmp_path_factory.mktemp("ck") / "m.pt"
    save_checkpoint(p, model, epoch=3)
    return p.read_bytes()


@pytest.fixture(scope="module")
def message(model):
    x = (np.random.default_rng(0).random((20, 16)) < 0.3).astype(np.uint8)
    return x, BitsBackCodec(model, group_size=8).encode(x)


# --------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip(tmp_path, model, ckpt_bytes):
    (tmp_path / "m.pt").write_bytes(ckpt_bytes)
    m = VAE(16, 3, (12,))
    ck = load_checkpoint(tmp_path / "m.pt", m)
    assert ck["epoch"] == 3 and all(torch.equal(a, b) for a, b in zip(m.state_dict().values(),
                                                                         model.state_dict().values()))


def test_one_flipped_bit_in_tensor_data_is_refused(tmp_path, model, ckpt_bytes):
    # find the bytes of the first weight matrix inside the payload and flip one bit there
    w = model.state_dict()["encoder.0.weight"].numpy().tobytes()
    at = ckpt_bytes.index(w[:64]) + 10
    bad = bytearray(ckpt_bytes)
    bad[at] ^= 0x01
    (tmp_path / "m.pt").write_bytes(bytes(bad))
    # torch alone loads it silently with a changed weight ...
    payload = bytes(bad[len(CHECKPOINT_MAGIC) + 32:])
    silent = torch.load(io.BytesIO(payload), weights_only=True)["model"]["encoder.0.weight"]
    assert not torch.equal(silent, model.state_dict()["encoder.0.weight"])
    # ... gapkit refuses it before using anything
    m = VAE(16, 3, (12,))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(CheckpointError, match="SHA-256 mismatch"):
        load_checkpoint(tmp_path / "m.pt", m)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_byte_edit_of_a_checkpoint_is_refused(tmp_path, ckpt_bytes, data):
    at = data.draw(st.integers(0, len(ckpt_bytes) - 1))
    delta = data.draw(st.integers(1, 255))
    bad = bytearray(ckpt_bytes)
    bad[at] = (bad[at] + delta) % 256
    p = tmp_path / f"edit-{at}.pt"
    p.write_bytes(bytes(bad))
    with pytest.raises(CheckpointError):
        load_checkpoint(p)


@pytest.mark.parametrize("kind", ["truncated", "empty", "old-format", "other-version", "text"])
def test_damaged_or_foreign_checkpoints_are_refused(tmp_path, model, ckpt_bytes, kind):
    buf = io.BytesIO()
    torch.save({"model": model.state_dict()}, buf)
    content = {"truncated": ckpt_bytes[:len(ckpt_bytes) // 2], "empty": b"", "old-format": buf.getvalue(),
               "other-version": CHECKPOINT_MAGIC[:-1] + b"\x09" + ckpt_bytes[len(CHECKPOINT_MAGIC):],
               "text": b"hello"}[kind]
    (tmp_path / "c.pt").write_bytes(content)
    msg = {"truncated": "SHA-256 mismatch", "empty": "not a gapkit checkpoint", "old-format": "older gapkit",
           "other-version": "another format version", "text": "not a gapkit checkpoint"}[kind]
    with pytest.raises(CheckpointError, match=msg):
        load_checkpoint(tmp_path / "c.pt")


def test_a_nan_model_is_never_checkpointed(tmp_path):
    m = small_model()
    with torch.no_grad():
        m.decoder[0].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite values in decoder.0.weight"):
        save_checkpoint(tmp_path / "nan.pt", m)
    assert not (tmp_path / "nan.pt").exists()


# --------------------------------------------------------------------------- results files
def test_results_checksum(tmp_path):
    write_json(tmp_path / "r.json", {"a": 1.5, "b": [1, 2], "t": (3, 4)}, checksum=True)
    assert read_json(tmp_path / "r.json", require_checksum=True) == {"a": 1.5, "b": [1, 2], "t": [3, 4]}
    obj = json.loads((tmp_path / "r.json").read_text())
    obj["a"] = 2.5
    (tmp_path / "r.json").write_text(json.dumps(obj))
    with pytest.raises(IntegrityError, match="checksum does not match"):
        read_json(tmp_path / "r.json")
    write_json(tmp_path / "plain.json", {"a": 1})
    with pytest.raises(IntegrityError, match="has no checksum"):
        read_json(tmp_path / "plain.json", require_checksum=True)
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(IntegrityError, match="not readable JSON"):
        read_json(tmp_path / "junk.json")


# --------------------------------------------------------------------------- outputs vs inputs
def test_check_output(tmp_path):
    (tmp_path / "in.npy").write_bytes(b"x")
    os.link(tmp_path / "in.npy", tmp_path / "hard.npy")
    os.symlink(tmp_path / "in.npy", tmp_path / "soft.npy")
    for out in ("in.npy", "hard.npy", "soft.npy", "./sub/../in.npy"):
        with pytest.raises(ValueError, match="also an input"):
            check_output(tmp_path / out, inputs=[tmp_path / "in.npy"])
    (tmp_path / "d").mkdir()
    with pytest.raises(ValueError, match="is an existing folder"):
        check_output(tmp_path / "d")
    with pytest.raises(ValueError, match="path is empty"):
        check_output("  ")
    with pytest.raises(ValueError, match="cannot create"):
        check_output(tmp_path / "in.npy" / "x.gkbb")
    assert check_output(tmp_path / "new" / "x.gkbb") == tmp_path / "new" / "x.gkbb"
    assert (tmp_path / "in.npy").read_bytes() == b"x"


def _cli(*args):
    from gapkit.__main__ import main
    try:
        main(list(args))
    except SystemExit as e:
        return 0 if e.code in (None, 0) else 1, str(e.code)
    return 0, ""


@pytest.fixture
def files(tmp_path, model):
    ck = tmp_path / "model.pt"
    save_checkpoint(ck, model)
    x = (np.random.default_rng(1).random((12, 16)) < 0.3).astype(np.uint8)
    np.save(tmp_path / "imgs.npy", x)
    assert _cli("compress", str(tmp_path / "imgs.npy"), str(tmp_path / "m.gkbb"), "--checkpoint", str(ck),
                "--quiet")[0] == 0
    return tmp_path, {p.name: p.read_bytes() for p in tmp_path.iterdir()}


@pytest.mark.parametrize("args", [
    ("compress", "imgs.npy", "model.pt", "--checkpoint", "model.pt"),      # the message over the model
    ("compress", "imgs.npy", "imgs.npy", "--checkpoint", "model.pt"),      # over its own input images
    ("decompress", "m.gkbb", "m.gkbb", "--checkpoint", "model.pt"),        # over its own message
    ("decompress", "m.gkbb", "model.pt", "--checkpoint", "model.pt"),      # over the model
], ids=["compress-over-model", "compress-over-input", "decompress-over-message", "decompress-over-model"])
def test_commands_never_overwrite_their_inputs(files, args):
    d, before = files
    code, err = _cli(*[str(d / a) if not a.startswith("-") and a not in ("compress", "decompress") else a
                       for a in args])
    assert code != 0 and "also an input" in err
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before


def test_compress_into_a_folder_is_refused(files):
    d, before = files
    (d / "out").mkdir()
    code, err = _cli("compress", str(d / "imgs.npy"), str(d / "out"), "--checkpoint", str(d / "model.pt"))
    assert code != 0 and "existing folder" in err


# --------------------------------------------------------------------------- compressed files
def repack(data: bytes, edit) -> bytes:
    """Apply ``edit(header)`` and rebuild a well-formed container (a deliberate edit)."""
    header, words = unpack(data)
    edit(header)
    return pack(header, words)


def _set(path, value):
    def edit(h):
        obj = h
        for k in path[:-1]:
            obj = obj[k]
        obj[path[-1]] = value
    return edit


HEADER_EDITS = {
    "shape-8x8": (_set(["image_shape"], [8, 8]), "do not fit this model"),
    "shape-2x8": (_set(["image_shape"], [2, 8]), "do not match the stored check"),
    "shape-zero": (_set(["image_shape"], [0, 16]), "image_shape must be an integer in 1.."),
    "dtype-other-allowed": (_set(["dtype"], "<f8"), "do not match the stored check"),
    "steps-huge": (_set(["coder", "steps"], 100000), "steps must be an integer in 0..1000"),
    "lr-negative": (_set(["coder", "lr"], -1.0), "lr must be a finite number"),
    "lr-nan": (_set(["coder", "lr"], float("nan")), "lr must be a finite number"),
    "group-huge": (_set(["coder", "group_size"], 10 ** 9), "group_size must be an integer in 1..4096"),
    "latent-bits": (_set(["coder", "latent_bits"], 40), "latent_bits must be an integer in 1..16"),
    "seed-huge": (_set(["coder", "seed"], 2 ** 64), "seed must be an integer in 0.."),
    "initial-huge": (_set(["coder", "initial_words"], 10 ** 12), "initial_words must be an integer"),
    "initial-zero": (_set(["coder", "initial_words"], 0), "initial_words must be an integer in 1.."),
    "n-huge": (_set(["n_images"], 10 ** 9), "impossible for a payload|GiB"),
    "n-zero": (_set(["n_images"], 0), "n_images must be an integer in 1.."),
    "n-more": (_set(["n_images"], 21), "truncated|corrupted|do not match"),
    "other-model": (_set(["model_tag"], "00000000"), "another model"),
    "other-arithmetic": (_set(["probe_tag"], "0000"), "bit for bit"),
    "check": (_set(["check"], "0" * 16), "do not match the stored check"),
    "samples-zero": (_set(["coder", "samples"], 0), "coder.samples must be an integer in 1..256"),
    "samples-huge": (_set(["coder", "samples"], 10 ** 6), "coder.samples must be an integer in 1..256"),
    "samples-other": (_set(["coder", "samples"], 3), "truncated|corrupted|do not match"),
    "cheap-start-on": (_set(["coder", "cheap_start"], 1), "truncated|corrupted|do not match|bit for bit"),
    "precision-low": (_set(["coder", "posterior_precision"], 1), "posterior_precision must be an integer"),
    "precision-below-bits": (_set(["coder", "posterior_precision"], 5), "posterior_precision must be an integer"),
}


@pytest.mark.parametrize("name", list(HEADER_EDITS))
def test_edited_headers_are_refused_quickly(model, message, name):
    x, data = message
    edit, msg = HEADER_EDITS[name]
    bad = repack(data, edit)
    t0 = time.perf_counter()
    with pytest.raises(CodecError, match=msg):
        decode(model, bad)
    with pytest.raises(CodecError):
        BitsBackCodec(model, group_size=8).decode(bad)
    assert time.perf_counter() - t0 < 30  # refused before any long work


def _bytes(data, at, value):
    b = bytearray(data)
    b[at] = value
    return bytes(b)


@pytest.mark.parametrize("name", ["version", "flags-reserved", "dtype-index", "varint-run", "zero-tail", "old-format",
                                  "no-payload", "cut-header"])
def test_malformed_containers_are_refused(model, message, name):
    _, data = message
    header, _ = unpack(data)
    n_header = len(pack_header(header)) + 8
    bad, msg = {
        "version": (_bytes(data, 2, FORMAT_VERSION + 1), f"unsupported container version {FORMAT_VERSION + 1}"),
        "flags-reserved": (_bytes(data, 4, data[4] | 0x80), "flags byte"),
        "dtype-index": (_bytes(data, 4, (data[4] & 0x87) | 15 << 3), "names no dtype"),
        "varint-run": (data[:5] + b"\xff" * 11 + data[5:], "not a valid varint"),
        "zero-tail": (data + b"\0", "ends in a zero byte"),
        "old-format": (b"GAPKITBB" + data, "older gapkit container format"),
        "no-payload": (data[:n_header], "holds no ANS words"),
        "cut-header": (data[:n_header - 3], "ends inside the header"),
    }[name]
    with pytest.raises(CodecError, match=msg):
        decode(model, bad)


def test_the_unedited_message_still_decodes(model, message):
    x, data = message
    assert np.array_equal(decode(model, repack(data, lambda h: None)), x)


def test_a_100_image_container_is_small(model):
    x = (np.random.default_rng(2).random((100, 16)) < 0.3).astype(np.uint8)
    c = BitsBackCodec(model, cheap_start=True)
    data = c.encode(x)
    assert c.last_stats["header_bytes"] <= 24 and len(data) - c.last_stats["header_bytes"] <= 4 * len(unpack(data)[1])


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_any_single_byte_edit_of_a_compressed_file_is_refused(message, data):
    x, msg = message
    at = data.draw(st.integers(0, len(msg) - 1))
    delta = data.draw(st.integers(1, 255))
    bad = bytearray(msg)
    bad[at] = (bad[at] + delta) % 256
    with pytest.raises(CodecError):
        decode(small_model(), bytes(bad))


@pytest.mark.parametrize("kw,msg", [
    (dict(steps=100000), "steps must be an integer in 0..1000"),
    (dict(group_size=10 ** 6), "group_size must be an integer in 1..4096"),
    (dict(lr=float("inf")), "lr must be a finite number"),
    (dict(latent_bits=16, group_size=4096), "posterior table"),
    (dict(seed=-1), "seed must be an integer"),
    (dict(samples=0), "samples must be an integer in 1..256"),
    (dict(samples=257), "samples must be an integer in 1..256"),
    (dict(samples=256, group_size=4096), "posterior table"),
    (dict(cheap_start=2), "cheap_start must be True/False"),
])
def test_bad_coder_settings(model, kw, msg):
    with pytest.raises(ValueError, match=msg):
        BitsBackCodec(model, **kw)


def test_images_of_an_unsupported_dtype_are_refused(model):
    x = (np.random.default_rng(0).random((3, 16)) < 0.5).astype(">i4")
    with pytest.raises(ValueError, match="little-endian"):
        BitsBackCodec(model).encode(x)


def test_message_check_covers_shape_and_dtype(model, message):
    x, data = message
    header, words = unpack(data)
    for edit in (dict(image_shape=[4, 4]), dict(dtype="|b1")):   # same pixels, another shape or dtype
        with pytest.raises(CodecError, match="stored check"):
            decode(model, pack({**header, **edit}, words))
