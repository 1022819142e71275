"""Atomic writes and checkpoints.

Every file gapkit writes goes to a temporary file in the same folder and is moved into place
with ``os.replace``, so a crash never leaves a half-written result or checkpoint behind.
Checkpoints hold only tensors and plain data and load with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import torch

__all__ = ["atomic_write_bytes", "write_json", "read_json", "save_checkpoint", "load_checkpoint",
           "CheckpointError"]

CHECKPOINT_FORMAT = "gapkit-checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint that is not gapkit's, is damaged, or belongs to another model."""


def atomic_write_bytes(path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _jsonable(o):
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if hasattr(o, "tolist"):  # numpy
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot write {type(o).__name__} to JSON")


def write_json(path, obj) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=1, default=_jsonable, allow_nan=True) + "\n").encode())


def read_json(path):
    with open(path) as f:
        return json.load(f)


def save_checkpoint(path, model, **state) -> Path:
    """Write ``model``'s config and weights plus any extra plain/tensor ``state`` atomically."""
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "model_config": dict(model.config),
                "model": model.state_dict(), **state}, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path, model=None, map_location="cpu") -> dict:
    """Read a checkpoint (``weights_only=True``); load its weights into ``model`` if given.

    Raises :class:`CheckpointError` when the file is not a gapkit checkpoint or when it was
    written by a model of another architecture (the two configs are named in the message).
    """
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # pickle/zip errors
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a gapkit checkpoint (format {CHECKPOINT_FORMAT})")
    if model is not None:
        if dict(ckpt["model_config"]) != dict(model.config):
            raise CheckpointError(
                f"{path} was written by another model: checkpoint {ckpt['model_config']}, "
                f"this model {model.config}")
        model.load_state_dict(ckpt["model"])
    return ckpt
