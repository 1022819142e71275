"""The one training loop of the book.

``train(model, data, objective, TrainConfig(...))`` runs minibatch training with separate Adam
optimizers for the encoder (phi) and the decoder (theta), each stepped on its own loss from the
objective (:mod:`gapkit.objectives`). Data stay on the device as tensors; minibatches are
index slices of a random permutation drawn from an explicit generator. Every ``eval_every``
epochs the train and test bounds (nats and BPD) go into the history; every
``checkpoint_every`` epochs a weights snapshot ``epoch_NNNN.pt`` and the full training state
``resume.pt`` (optimizers, generator state, history) are written atomically. A run started
again with the same ``out_dir`` continues from ``resume.pt`` and ends with the same parameters
as one that was never interrupted (on the CPU).

A training folder belongs to one identity: the model's architecture, the objective and its
settings, the training config (seed, learning rates, epochs, ...) and the data (a SHA-256 of the
training tensor with its name and binarization). It is stored in ``resume.pt`` and checked before
any work: a folder of another identity (or one with snapshots but no ``resume.pt``) is refused with
a message that shows the differences, so a rerun never returns another run's model.

Training stops at the first non-finite loss or parameter with an error naming the epoch and step,
and writes no non-finite checkpoint; data with NaN or values outside the likelihood's support are
refused before the first step.

On a GPU nothing waits for the device inside an epoch: the loss sum and the first non-finite (step,
tensor) stay on the device and are read once per epoch (the epoch that fails is checked before any
checkpoint); evaluations choose their pass size by free memory (:func:`gapkit.device.eval_rows`).
``amp=True`` runs the objective under bfloat16 autocast, ``compile=True`` under ``torch.compile``
(both off by default, so the default numbers stay as they were). In a smoke run
(:mod:`gapkit.smoke`) the loop trains the first epochs, every checkpoint epoch and the last, a few
steps each, and records its cost; such a folder's identity says so.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .estimators import evaluate
from .bounds import bpd
from . import bounds as _bounds, checks, smoke
from .io import CheckpointError, load_checkpoint, save_checkpoint
from .likelihoods import check_data
from .progress import tqdm

__all__ = ["TrainConfig", "train", "History", "lr_factor"]

SCHEDULES = (None, "constant", "burda")


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 100
    lr: float = 3e-4
    lr_encoder: float | None = None     # defaults to lr
    lr_decoder: float | None = None     # defaults to lr
    schedule: str | None = None         # "burda": 3^i epochs at lr * 10^(-i/7)
    seed: int = 0
    eval_every: int = 1                 # epochs between evaluations (0: only at the end)
    eval_K: int = 1                     # samples for the evaluation bound
    eval_bound: str = "elbo"
    eval_train_subset: int | None = 1000  # train images used for the train bound
    checkpoint_every: int = 0           # epochs between checkpoints (0: none)
    grad_clip: float | None = None
    amp: bool = False                   # bfloat16 autocast of the objective (CPU and GPU)
    compile: bool = False               # torch.compile of the objective
    progress: bool = True

    def __post_init__(self):
        for name in ("epochs", "batch_size", "eval_K"):
            checks.positive_int(name, getattr(self, name))
        for name in ("eval_every", "checkpoint_every"):
            checks.nonneg_int(name, getattr(self, name))
        checks.number("lr", self.lr, lo=0.0)
        for name in ("lr_encoder", "lr_decoder"):
            if getattr(self, name) is not None:
                checks.number(name, getattr(self, name), lo=0.0)
        if self.grad_clip is not None:
            checks.number("grad_clip", self.grad_clip, lo=0.0, lo_open=True)
        checks.seed(self.seed)
        checks.optional_positive_int("eval_train_subset", self.eval_train_subset)
        checks.one_of("schedule", self.schedule, SCHEDULES)
        checks.one_of("eval_bound", self.eval_bound, tuple(_bounds.BOUNDS))   # a name: it is recorded
        _bounds.get(self.eval_bound)   # one that needs parameters (ciwae's beta) fails here
        for name in ("amp", "compile", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")


def lr_factor(schedule, epoch: int) -> float:
    """Learning-rate multiplier at a 0-based epoch. Burda et al.: stage i lasts 3^i epochs at 10^(-i/7)."""
    if schedule in (None, "constant"):
        return 1.0
    i, start = 0, 0
    while start + 3 ** i <= epoch:
        start += 3 ** i
        i += 1
    return 10 ** (-i / 7)


History = dict  # str -> list of numbers, one entry per evaluation (or per epoch for 'loss'/'epoch_time')


def _grads(loss, params, retain):
    if loss is None or not params:
        return None
    return torch.autograd.grad(loss, params, retain_graph=retain, allow_unused=True)


def _apply(params, grads):
    for p, g in zip(params, grads):
        p.grad = None if g is None else g.detach()


def _evaluate_into(history, model, data, cfg, epoch, device):
    model.eval()
    g = torch.Generator(device=device).manual_seed(cfg.seed * 100003 + epoch)
    tr = data.train
    if cfg.eval_train_subset is not None and len(tr) > cfg.eval_train_subset:
        tr = tr[:cfg.eval_train_subset]
    means = []
    for x in (tr, data.test):
        x = data.binarize(x, g) if data.dynamic else x
        means.append(evaluate(model, x, cfg.eval_bound, cfg.eval_K, generator=g).mean())  # rows by memory
    row = {"epoch": epoch}
    for split, nats in zip(("train", "test"), torch.stack(means).tolist()):  # one host read
        row[f"{split}_bound"] = nats
        row[f"{split}_bpd"] = float(bpd(nats, data.dim))
    for k, v in row.items():
        history.setdefault(k, []).append(v)
    model.train()
    return row


def _objective_config(objective) -> dict:
    cfg = objective.config() if callable(getattr(objective, "config", None)) else None
    if not isinstance(cfg, dict):
        cfg = {k: v for k, v in vars(objective).items()
               if not k.startswith("_") and isinstance(v, (bool, int, float, str, type(None), tuple, list))}
    return {"class": f"{type(objective).__module__}.{type(objective).__qualname__}", **cfg}


def _tensor_fingerprint(x: torch.Tensor) -> dict:
    """Shape and SHA-256 of a tensor's values: what a training folder's identity records of its data."""
    import hashlib
    x = x.detach().contiguous().cpu()
    return {"shape": list(x.shape), "sha256": hashlib.sha256(x.numpy().tobytes()).hexdigest()}


def _data_fingerprint(data) -> dict:
    return {"name": getattr(data, "name", None), "binarization": getattr(data, "binarization", None),
            "dynamic": bool(getattr(data, "dynamic", False)), **_tensor_fingerprint(data.train)}


def train_identity(model, data, objective, cfg: "TrainConfig") -> dict:
    """What a training folder belongs to: architecture, objective, config (not ``progress``) and data."""
    import json
    c = asdict(cfg)
    c.pop("progress", None)
    ident = {"model": dict(model.config), "objective": _objective_config(objective), "train_config": c,
             "data": _data_fingerprint(data)}
    if smoke.active():
        ident["smoke"] = True
    return json.loads(json.dumps(ident, default=str))


def _check_training_folder(out_dir: Path, ident: dict):
    """Refuse a training folder that holds another run, before any work."""
    ck_dir = out_dir / "checkpoints"
    resume_path = ck_dir / "resume.pt"
    if resume_path.exists():
        try:
            old = load_checkpoint(resume_path).get("identity")
        except CheckpointError as e:
            raise CheckpointError(f"refusing to train into {out_dir}: {e}") from None
        if old != ident:
            from .experiments import _differences
            diff = "; ".join(_differences(old, ident)) if isinstance(old, dict) else "it has no identity"
            raise ValueError(f"refusing to train into {out_dir}: it holds another training run (differences: "
                             f"{diff}). Nothing was changed; give another out_dir or remove that folder.")
        return True
    snaps = sorted(ck_dir.glob("epoch_*.pt")) if ck_dir.exists() else []
    for snap in snaps:  # a run stopped between a snapshot and its resume.pt: the snapshots name their run
        try:
            old = load_checkpoint(snap).get("identity")
        except CheckpointError:
            old = None
        if old != ident:
            raise ValueError(f"refusing to train into {out_dir}: its checkpoints/ holds snapshots ({snap.name}) of "
                             "another run, or of none that can be shown, and no resume.pt; give another out_dir "
                             "or remove them")
    return False  # none, or this run's own: train from the start (the snapshots are written again)


def _value(t, device):
    """A loss as one float32 number for the finiteness check (0 for a side that has none)."""
    return t.detach().float().sum() if t is not None else torch.zeros((), device=device)


def _raise_if_nonfinite(first_bad, names, epoch, steps):
    """The epoch's one host read of the non-finite record: (step, tensor) of the first, or -1."""
    step, what = first_bad.tolist()
    if step >= 0:
        raise FloatingPointError(
            f"training stopped at epoch {epoch + 1}, step {step + 1} of {steps}: non-finite {names[what]} "
            "(NaN or inf). No checkpoint of this state was written; lower the learning rate, clip "
            "gradients (grad_clip) or check the data.")


def _compiled(objective):
    """``torch.compile`` of the objective's call (TrainConfig.compile): the forward and backward graphs."""
    return torch.compile(objective)


def _step(model, x, gen, step_fn, opts, enc, dec, own, cfg):
    """One minibatch: the objective's losses, gradients for each side, optimizer steps; no host read."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=cfg.amp):
        losses = step_fn(model, x, gen)
    same = losses.encoder is not None and losses.encoder is losses.decoder
    if same and not own:
        for o in opts.values():
            o.zero_grad(set_to_none=True)
        losses.encoder.backward()
    else:
        obj_loss = losses.own if losses.own is not None else losses.decoder
        ge = _grads(losses.encoder, enc, retain=True)
        gd = _grads(losses.decoder, dec, retain=bool(own))
        go = _grads(obj_loss, own, retain=False)
        for params, g in ((enc, ge), (dec, gd), (own, go)):
            if g is not None:
                _apply(params, g)
            else:
                for p in params:
                    p.grad = None
    if cfg.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(enc + dec, cfg.grad_clip)
    for o in opts.values():
        if any(p.grad is not None for g in o.param_groups for p in g["params"]):
            o.step()
    return losses


def train(model, data, objective, cfg: TrainConfig | None = None, out_dir=None, resume: bool = True,
          device=None, callback=None, **overrides) -> History:
    """Train ``model`` on ``data`` (a :class:`gapkit.data.Dataset`) with ``objective``.

    ``overrides`` set :class:`TrainConfig` fields directly (``train(m, d, obj, epochs=5)``).
    ``callback(epoch, model, history)`` runs after every epoch (after any checkpoint).
    Returns the history: ``epoch``, ``train_bound``/``test_bound`` (nats), ``train_bpd``/``test_bpd``
    per evaluation, and ``loss``, ``epoch_time`` per epoch.

    `Chapter 0 <https://gapkit.github.io/gapkit/notebooks/00_vae_basics.html>`_ trains its VAE with it;
    `chapter 3 <https://gapkit.github.io/gapkit/notebooks/03_wake_sleep.html>`_ explains why
    every call starts fresh optimizers.
    """
    if cfg is not None and not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    checks.known_keys("TrainConfig fields", overrides, TrainConfig.__dataclass_fields__)
    cfg = TrainConfig(**{**asdict(cfg or TrainConfig()), **overrides})
    if not callable(objective):
        raise TypeError(f"objective must be callable as objective(model, x, generator), got {type(objective).__name__}")
    likelihood = getattr(model, "likelihood", "gaussian")
    for split in ("train", "test"):
        check_data(getattr(data, split), likelihood, name=f"data.{split}")
    if len(data.train) == 0:
        raise ValueError("data.train is empty: training needs at least one image")
    if out_dir is not None:
        from .io import check_output
        out_dir = check_output(out_dir, "dir", what="training folder")
    if device is not None:
        from .device import default_device
        device = default_device(device, announce=False)
    else:
        device = model.device
    model.to(device)
    data.to(device)
    ident = train_identity(model, data, objective, cfg)
    enc, dec = model.encoder_parameters(), model.decoder_parameters()
    own = list(objective.parameters()) if isinstance(objective, torch.nn.Module) else []
    lr_e = cfg.lr if cfg.lr_encoder is None else cfg.lr_encoder
    lr_d = cfg.lr if cfg.lr_decoder is None else cfg.lr_decoder
    opts = {"encoder": torch.optim.Adam(enc, lr=lr_e), "decoder": torch.optim.Adam(dec, lr=lr_d)}
    if own:
        opts["objective"] = torch.optim.Adam(own, lr=lr_e)
    base_lr = {k: o.param_groups[0]["lr"] for k, o in opts.items()}
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    history: History = {}
    start = 0

    resume_path = out_dir / "checkpoints" / "resume.pt" if out_dir is not None else None
    if out_dir is not None and _check_training_folder(out_dir, ident) and not resume:
        raise ValueError(f"{out_dir} already holds this training run; resume=False would overwrite it: "
                         "give another out_dir or remove that folder")
    if resume and resume_path is not None and resume_path.exists():
        ck = load_checkpoint(resume_path, model, map_location=device)
        for k, o in opts.items():
            o.load_state_dict(ck["optimizers"][k])
        if isinstance(objective, torch.nn.Module) and "objective_state" in ck:  # parameters, traces
            objective.load_state_dict(ck["objective_state"])
        gen.set_state(ck["generator"].cpu() if device.type == "cpu" else ck["generator"])
        history, start = ck["history"], int(ck["epoch"])
        if start >= cfg.epochs:
            return history
        print(f"gapkit: resuming from epoch {start} ({resume_path})")

    n = len(data.train)
    steps = math.ceil(n / cfg.batch_size)
    run_epochs, run_steps = smoke.epochs_run(cfg.epochs, cfg.checkpoint_every), smoke.steps(steps)
    stage = f"train {getattr(objective, 'name', None) or type(objective).__name__}{smoke.model_tag(model)}"
    smoke.add(stage, full=(cfg.epochs - start) * steps, unit="step")
    n_eval = min(len(data.train), cfg.eval_train_subset or len(data.train)), len(data.test)
    per_eval = (n_eval[0] + smoke.full_rows(data.test)) * cfg.eval_K          # (image, sample) rows of one evaluation
    smoke.add("evaluation during training", unit="image-sample", full=per_eval * sum(
        1 for e in range(start + 1, cfg.epochs + 1) if (cfg.eval_every and e % cfg.eval_every == 0) or e == cfg.epochs))
    params = enc + dec + own
    names = {id(p): n_ for n_, p in model.named_parameters()}
    names.update({id(p): f"objective.{n_}" for n_, p in (objective.named_parameters() if own else [])})
    checked = ["encoder loss", "decoder loss", "objective loss"] + [names.get(id(p), "parameter") for p in params]
    step_fn = _compiled(objective) if cfg.compile else objective
    model.train()
    bar = tqdm(range(start, cfg.epochs), desc=f"train {getattr(objective, 'name', '')}",
               disable=not cfg.progress, initial=start, total=cfg.epochs, unit="epoch")
    for epoch in bar:
        if run_epochs is not None and epoch not in run_epochs:
            continue
        t0 = time.perf_counter()
        f = lr_factor(cfg.schedule, epoch)
        for k, o in opts.items():
            o.param_groups[0]["lr"] = base_lr[k] * f
        perm = torch.randperm(n, device=device, generator=gen)
        # Read once per epoch: the loss sum (float64, as the host sum it replaces) and the first
        # non-finite (step, tensor), -1 while none.
        total = torch.zeros((), dtype=torch.float64, device=device)
        first_bad = torch.full((2,), -1, dtype=torch.long, device=device)
        step_ids = torch.arange(run_steps, device=device)
        try:
            with smoke.quiet(), checks.values_checked_by_caller():   # checked on the device below
                for i in range(run_steps):
                    if i == 1:
                        t1 = smoke.clock() if smoke.active() else 0.0
                    with smoke.stage(stage, 0, 1, "step", quiet_ok=True) if i == 0 else contextlib.nullcontext():
                        x = data.binarize(data.train[perm[i * cfg.batch_size:(i + 1) * cfg.batch_size]], gen)
                        losses = _step(model, x, gen, step_fn, opts, enc, dec, own, cfg)
                        # a parameter's sum is non-finite iff an entry is (or at |entries| ~ 1e32, far past
                        # divergence): one reduction each, an order of magnitude cheaper than isfinite().all()
                        bad = ~torch.isfinite(torch.stack([_value(t, device) for t in (losses.encoder, losses.decoder,
                                                                                       losses.own)]
                                                          + [p.detach().sum() for p in params]))
                        first_bad = torch.where((first_bad[0] < 0) & bad.any(),
                                                torch.stack([step_ids[i], bad.int().argmax()]), first_bad)
                        main = losses.decoder if losses.decoder is not None else losses.encoder
                        if main is not None:
                            total = total + main.detach().float().double()
        except Exception:
            _raise_if_nonfinite(first_bad, checked, epoch, steps)
            raise
        _raise_if_nonfinite(first_bad, checked, epoch, steps)
        total = float(total)
        if run_steps > 1:
            smoke.add(stage, done=run_steps - 1, seconds=smoke.clock() - t1, unit="step")
        e = epoch + 1
        history.setdefault("loss", []).append(total / run_steps)
        history.setdefault("epoch_time", []).append(time.perf_counter() - t0)
        if (cfg.eval_every and e % cfg.eval_every == 0) or e == cfg.epochs:
            with smoke.stage("evaluation during training", 0, sum(smoke.rows(n_, cfg.eval_K) for n_ in n_eval)
                             * cfg.eval_K, "image-sample"):
                row = _evaluate_into(history, model, data, cfg, e, device)
            bar.set_postfix(train_bpd=f"{row['train_bpd']:.4f}", test_bpd=f"{row['test_bpd']:.4f}")
        if out_dir is not None and cfg.checkpoint_every and (e % cfg.checkpoint_every == 0 or e == cfg.epochs):
            save_checkpoint(out_dir / "checkpoints" / f"epoch_{e:04d}.pt", model, epoch=e, identity=ident)
            state = {"optimizers": {k: o.state_dict() for k, o in opts.items()},
                     "generator": gen.get_state(), "history": history, "epoch": e,
                     "train_config": asdict(cfg), "identity": ident}
            if isinstance(objective, torch.nn.Module):  # its parameters and what it records (traces)
                state["objective_state"] = objective.state_dict()
            save_checkpoint(resume_path, model, **state)
        if callback is not None:
            callback(e, model, history)
    bar.close()
    model.eval()
    return history


def checkpoints(out_dir) -> list[tuple[int, Path]]:
    """The weight snapshots of a run, as (epoch, path), in epoch order."""
    d = Path(out_dir) / "checkpoints"
    return sorted((int(p.stem.split("_")[1]), p) for p in d.glob("epoch_*.pt"))
