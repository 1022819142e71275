"""Numerics and arguments you can trust: non-finite data, losses and parameters stop training with
a clear error and no checkpoint; bounds refuse non-finite log-weights; models, data, estimators and
objectives check names, types and ranges before any work (issue "Runs you can trust")."""
import math

import pytest
import torch

from gapkit import bounds, data as gdata
from gapkit.estimators import evaluate, log_weights
from gapkit.models import VAE, LinearGaussian
from gapkit.objectives import ELBO, IWAE, Losses, Objective, make_objective
from gapkit.train import train

from test_bad_input_runs import _Data, _toy_data, snapshot


def _fit(data, objective=None, out=None, **kw):
    torch.manual_seed(0)
    m = VAE(data.dim, 2, (8,), likelihood=kw.pop("likelihood", "bernoulli"))
    cfg = dict(epochs=2, batch_size=16, lr=0.01, eval_every=0, checkpoint_every=1, progress=False)
    cfg.update(kw)
    return train(m, data, objective or ELBO(), out_dir=out, **cfg), m


# --------------------------------------------------------------------------- data
@pytest.mark.parametrize("value,msg", [(float("nan"), "NaN or infinite"), (float("inf"), "NaN or infinite"),
                                        (2.0, "outside the bernoulli model's support"),
                                        (-1.0, "outside the bernoulli model's support")])
def test_bad_pixels_in_training_data_are_refused_before_training(tmp_path, value, msg):
    d = _toy_data()
    d.train[5, 3] = value
    with pytest.raises(ValueError, match=msg):
        _fit(d, out=tmp_path / "t")
    assert not (tmp_path / "t").exists() or snapshot(tmp_path / "t") == {}


def test_grey_pixels_must_be_integers_0_to_255():
    d = _Data(torch.randint(0, 256, (32, 12)).float(), torch.randint(0, 256, (8, 12)).float())
    d.train[0, 0] = 12.5
    with pytest.raises(ValueError, match="logistic model's support"):
        _fit(d, likelihood="logistic")
    d.train[0, 0] = 300.0
    with pytest.raises(ValueError, match="integers 0..255"):
        _fit(d, likelihood="logistic")


def test_empty_training_data():
    d = _Data(torch.zeros(0, 12), torch.zeros(4, 12))
    with pytest.raises(ValueError, match="empty"):
        _fit(d)


# --------------------------------------------------------------------------- non-finite training
class BreaksAt(Objective):
    """The ELBO, except at one step (counted over the whole run): ``"nan"`` makes the loss NaN;
    ``"inf-grad"`` adds a term of value 0 whose gradient is infinite, so the parameters become
    non-finite while the loss stays finite."""
    name = "breaks-at"

    def __init__(self, step, how="nan"):
        self.step, self.how, self.calls = step, how, 0

    def __call__(self, model, x, generator=None):
        self.calls += 1
        loss = ELBO()(model, x, generator).encoder
        if self.calls == self.step:
            if self.how == "nan":
                loss = loss * float("nan")
            else:
                w = model.decoder[0].weight
                loss = loss + torch.sqrt((w - w.detach()).abs()).sum()  # value 0, gradient inf
        return Losses(loss, loss, {})


def test_a_nan_loss_stops_training_naming_epoch_and_step(tmp_path):
    with pytest.raises(FloatingPointError, match="epoch 2, step 3 of 4: non-finite encoder loss"):
        _fit(_toy_data(), BreaksAt(7), out=tmp_path)  # 4 steps an epoch: call 7 is epoch 2, step 3
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["epoch_0001.pt", "resume.pt"]  # epoch 1 was fine; nothing of epoch 2 was written


def test_a_non_finite_parameter_stops_training(tmp_path):
    with pytest.raises(FloatingPointError, match="epoch 1, step 2 of 4: non-finite decoder.0.weight"):
        _fit(_toy_data(), BreaksAt(2, "inf-grad"), out=tmp_path)
    assert not (tmp_path / "checkpoints").exists()


def test_nan_from_the_command_line_is_one_line(tmp_path, monkeypatch):
    from gapkit.__main__ import main
    from gapkit.experiments import Context, experiment

    @experiment("_nan_probe", "training that diverges")
    def _nan_probe(ctx: Context):
        _fit(_toy_data(), BreaksAt(2), out=ctx.out / "t")
        return {}
    with pytest.raises(SystemExit) as e:
        main(["run", "_nan_probe", "--preset", "quick", "--out", str(tmp_path / "r")])
    assert "training stopped at epoch 1, step 2" in str(e.value.code)
    assert not (tmp_path / "r" / "results.json").exists()


# --------------------------------------------------------------------------- bounds and estimators
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("fn", ["elbo", "iwae", "ess", "miwae", "ciwae", "bsvi"])
def test_bounds_refuse_non_finite_log_weights(fn, bad):
    lw = torch.randn(4, 3, 5) if fn == "miwae" else torch.randn(4, 5)
    lw[1, 2] = bad
    f = getattr(bounds, fn)
    with pytest.raises(ValueError, match="non-finite log-weight"):
        f(lw, 0.5) if fn == "ciwae" else f(lw)


@pytest.mark.parametrize("dim", [0, -5, 2.5, True, "784"])
def test_bpd_needs_a_positive_pixel_count(dim):
    with pytest.raises(ValueError, match="dim \\(pixels per image\\) must be a positive integer"):
        bounds.bpd(-100.0, dim)


@pytest.mark.parametrize("value", [2.0, -1.0, float("nan")])
def test_evaluate_refuses_data_outside_the_support(value):
    m = VAE(12, 2, (8,))
    x = (torch.rand(5, 12) < 0.5).float()
    x[2, 4] = value
    with pytest.raises(ValueError, match="support|NaN"):
        evaluate(m, x, "iwae", K=5)


@pytest.mark.parametrize("kw,msg", [
    (dict(bound="miwae"), "unknown bound 'miwae'"), (dict(K=0), "K must be a positive integer"),
    (dict(K=True), "K must be a positive integer"), (dict(K=2.0), "K must be a positive integer"),
    (dict(max_rows=0), "max_rows must be a positive integer"),
    (dict(batch_size=-1), "batch_size must be a positive integer"),
    (dict(q=(torch.zeros(5, 2), torch.zeros(5, 2))), "positive standard deviations"),
    (dict(q=(torch.zeros(4, 2), torch.ones(4, 2))), "N = 5 rows"),
])
def test_evaluate_arguments(kw, msg):
    m = VAE(12, 2, (8,))
    x = (torch.rand(5, 12) < 0.5).float()
    with pytest.raises(ValueError, match=msg):
        evaluate(m, x, **{"bound": "elbo", "K": 1, **kw})


def test_evaluate_shape_and_type():
    m = VAE(12, 2, (8,))
    with pytest.raises(ValueError, match="shape \\(B, 12\\)"):
        evaluate(m, torch.zeros(5, 10))
    with pytest.raises(TypeError, match="floating-point"):
        evaluate(m, torch.zeros(5, 12, dtype=torch.long))
    with pytest.raises(ValueError, match="K must be a positive integer"):
        log_weights(m, torch.zeros(5, 12), K=0)


# --------------------------------------------------------------------------- models, objectives, data loading
@pytest.mark.parametrize("kw,msg", [
    (dict(hidden="64"), "hidden must be a sequence of positive integers"),
    (dict(hidden=(10.7,)), "not a positive integer: 10.7"),
    (dict(hidden=(0,)), "not a positive integer: 0"),
    (dict(hidden=64), "hidden must be a sequence"),
    (dict(z_dim=0), "z_dim must be a positive integer"),
    (dict(x_dim=True), "x_dim must be a positive integer"),
    (dict(activation="gelu2"), "unknown activation"),
    (dict(likelihood="poisson"), "unknown likelihood"),
])
def test_model_arguments(kw, msg):
    with pytest.raises(ValueError, match=msg):
        VAE(**{"x_dim": 12, "z_dim": 2, "hidden": (8,), **kw})


def test_linear_gaussian_arguments():
    with pytest.raises(ValueError, match="z_dim must be a positive integer"):
        LinearGaussian(4, 0)
    with pytest.raises(ValueError, match="noise_std"):
        LinearGaussian(4, 2, noise_std=-1.0)


@pytest.mark.parametrize("make", [lambda: ELBO(K=0), lambda: IWAE(K=True), lambda: IWAE(K="5"),
                                  lambda: make_objective("elbow")])
def test_objective_arguments(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize("kw,msg", [
    (dict(subset=True), "subset must be a positive integer or None, got True"),
    (dict(subset=0), "subset must be a positive integer"),
    (dict(subset=2.5), "subset must be a positive integer"),
    (dict(test_subset=-1), "test_subset must be a positive integer"),
    (dict(seed=-1), "seed must be an integer"),
    (dict(name="cifar"), "unknown dataset 'cifar'"),
    (dict(binarization="otsu"), "unknown binarization 'otsu'"),
    (dict(device="tpu"), "unknown device 'tpu'"),
])
def test_data_loading_arguments(kw, msg):
    with pytest.raises(ValueError, match=msg):
        gdata.load(**{"name": "digits", **kw})


def test_train_arguments():
    m = VAE(12, 2, (8,))
    with pytest.raises(TypeError, match="objective must be callable"):
        train(m, _toy_data(), "elbo", epochs=1, progress=False)
    with pytest.raises(TypeError, match="cfg must be a TrainConfig"):
        train(m, _toy_data(), ELBO(), {"epochs": 1})
    with pytest.raises(ValueError, match="unknown device"):
        train(m, _toy_data(), ELBO(), epochs=1, progress=False, device="tpu")
    assert math.isfinite(sum(float(p.detach().sum()) for p in m.parameters()))


def _objective_cases():
    from gapkit.objectives import (AIR, BSVI, BSVISIR, CIWAE, GDIR, MIWAE, PIWAE, RWS, SVI, BoundObjective, Denoising,
                                   LearnableCIWAE, ReverseHalfAsleep, ReverseSleep, Sleep, Wake)
    return {
        "ciwae-beta": lambda: CIWAE(beta=2), "ciwae-nan": lambda: CIWAE(beta=float("nan")),
        "learned-beta0": lambda: LearnableCIWAE(beta0=0), "miwae-M": lambda: MIWAE(M=0),
        "miwae-bool": lambda: MIWAE(M=True), "piwae-K": lambda: PIWAE(M=2, K=0),
        "piwae-decoder-K": lambda: PIWAE(decoder_K=0), "bound-name": lambda: BoundObjective("elbow"),
        "bound-ciwae-beta": lambda: BoundObjective("ciwae", K=2), "air-gamma": lambda: AIR(gamma=0),
        "rws-K": lambda: RWS(K=0),
        "denoising-sigma": lambda: Denoising(sigma=-1), "denoising-weight": lambda: Denoising(weight=2),
        "rha-alpha": lambda: ReverseHalfAsleep(alpha=2), "rha-latent": lambda: ReverseHalfAsleep(latent="x"),
        "reverse-sleep-K": lambda: ReverseSleep(K=0), "sleep-latent": lambda: Sleep(latent=3),
        "wake-flag": lambda: Wake(train_decoder="yes"), "gdir-steps": lambda: GDIR(steps=-1),
        "gdir-lr": lambda: GDIR(lr=float("nan")), "gdir-momentum": lambda: GDIR(momentum=2),
        "gdir-clip": lambda: GDIR(clip=-1), "gdir-optimizer": lambda: GDIR(optimizer="sgdx"),
        "bsvi-steps": lambda: BSVI(steps=-1), "bsvi-lr": lambda: BSVISIR(steps=2, lr=float("inf")),
        "svi-steps": lambda: SVI(steps=2.5), "bsvi-momentum": lambda: BSVISIR(steps=2, momentum=-1),
        "bsvi-flag": lambda: BSVISIR(steps=2, learn_pi="no"),
    }


@pytest.mark.parametrize("name", list(_objective_cases()))
def test_every_objective_checks_its_settings(name):
    with pytest.raises(ValueError):
        _objective_cases()[name]()
