import pytest
import torch

from gapkit import data as gdata
from gapkit.io import CheckpointError, load_checkpoint, save_checkpoint
from gapkit.models import VAE
from gapkit.objectives import ELBO, IWAE, Losses, Objective, make_objective
from gapkit.train import TrainConfig, checkpoints, lr_factor, train


@pytest.fixture(scope="module")
def digits():
    return gdata.load("digits", subset=256, test_subset=64)


def fresh(seed=0):
    torch.manual_seed(seed)
    return VAE(64, 2, (16,))


def test_training_improves_the_bound(digits):
    m = fresh()
    h = train(m, digits, ELBO(), epochs=15, lr=3e-3, batch_size=32, eval_every=5, progress=False)
    assert h["epoch"] == [5, 10, 15]
    assert h["train_bound"][-1] > h["train_bound"][0]
    assert len(h["loss"]) == 15 and all(t > 0 for t in h["epoch_time"])


def test_resume_after_interruption_matches_uninterrupted(digits, tmp_path):
    cfg = dict(epochs=6, lr=3e-3, batch_size=32, eval_every=2, checkpoint_every=2, progress=False, seed=3)
    ref = fresh()
    h_ref = train(ref, digits, IWAE(3), out_dir=tmp_path / "ref", **cfg)

    class Kill(Exception):
        pass

    def die(epoch, model, history):
        if epoch == 4:
            raise Kill

    m = fresh()
    with pytest.raises(Kill):
        train(m, digits, IWAE(3), out_dir=tmp_path / "run", callback=die, **cfg)
    m2 = fresh(seed=99)  # a new process would start from other weights: resume must overwrite them
    h = train(m2, digits, IWAE(3), out_dir=tmp_path / "run", **cfg)
    for a, b in zip(ref.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    assert h["test_bound"] == h_ref["test_bound"]
    assert [e for e, _ in checkpoints(tmp_path / "run")] == [2, 4, 6]


def test_checkpoint_from_another_architecture_is_refused(tmp_path):
    save_checkpoint(tmp_path / "a.pt", VAE(64, 2, (16,)))
    with pytest.raises(CheckpointError, match="another model"):
        load_checkpoint(tmp_path / "a.pt", VAE(64, 3, (16,)))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a gapkit checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    ck = load_checkpoint(tmp_path / "a.pt", VAE(64, 2, (16,)))
    assert ck["model_config"]["z_dim"] == 2


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    import gapkit.io as gio
    save_checkpoint(tmp_path / "c.pt", VAE(64, 2, (16,)))
    before = (tmp_path / "c.pt").read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(gio.os, "replace", boom)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "c.pt", VAE(64, 3, (16,)))
    assert (tmp_path / "c.pt").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


class EncoderOnly(Objective):
    name = "encoder-only"

    def __call__(self, model, x, generator=None):
        return Losses(ELBO()(model, x, generator).encoder, None)


def test_separate_objectives_leave_the_other_side_alone(digits):
    m = fresh()
    dec0 = [p.clone() for p in m.decoder_parameters()]
    enc0 = [p.clone() for p in m.encoder_parameters()]
    train(m, digits, EncoderOnly(), epochs=2, batch_size=64, lr=1e-2, progress=False, eval_every=0)
    assert all(torch.equal(a, b) for a, b in zip(dec0, m.decoder_parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(enc0, m.encoder_parameters()))


@pytest.mark.parametrize("kw", [dict(epochs=0), dict(batch_size=-1), dict(eval_K=0), dict(lr=-1.0),
                                dict(schedule="cosine")])
def test_bad_train_config(kw):
    with pytest.raises(ValueError):
        TrainConfig(**kw)


def test_bad_objective_and_K():
    with pytest.raises(ValueError, match="valid"):
        make_objective("wake-phi")
    with pytest.raises(ValueError, match="positive"):
        IWAE(0)


def test_burda_schedule():
    # stage i lasts 3^i epochs at 10^(-i/7): epochs 0 | 1-3 | 4-12 | ...
    assert lr_factor("burda", 0) == 1.0
    assert lr_factor("burda", 1) == lr_factor("burda", 3) == pytest.approx(10 ** (-1 / 7))
    assert lr_factor("burda", 4) == pytest.approx(10 ** (-2 / 7))
    assert lr_factor("burda", 3279) == pytest.approx(10 ** (-7 / 7))


def test_training_evaluates_with_any_bound_by_name():
    """``TrainConfig.eval_bound`` takes any bound of :data:`gapkit.bounds.BOUNDS` that needs no
    parameter: BSVI with uniform pi over K samples is IWAE-K, so both curves agree."""
    data = gdata.load("digits", subset=64, test_subset=32)
    curves = {}
    for bound in ("iwae", "bsvi"):
        torch.manual_seed(0)
        model = VAE(data.dim, 2, (16,))
        h = train(model, data, ELBO(), TrainConfig(epochs=1, batch_size=32, eval_K=5, eval_bound=bound,
                                                   progress=False))
        curves[bound] = h["test_bound"]
    assert curves["iwae"] == pytest.approx(curves["bsvi"], abs=1e-4)
