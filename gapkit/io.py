"""Atomic writes, checksummed files, and checks on where output goes.

Every file gapkit writes goes to a temporary file in the same folder and is moved into place
with ``os.replace``, so a crash never leaves a half-written result or checkpoint behind.

Integrity: a checkpoint is ``MAGIC + sha256(payload) + payload``, where the payload is what
``torch.save`` writes (tensors and plain data only; read back with ``weights_only=True``). torch's
zip reader ignores its own CRCs, so without the outer hash a flipped bit in the tensor data would
load silently; here any change to any byte of the file is refused before anything from it is used.
``write_json(..., checksum=True)`` (results.json) stores a SHA-256 of the content that
``read_json`` verifies.

Outputs: :func:`check_output` checks an output place before any work starts (not empty, not an
existing thing of the other kind, creatable and writable, and not one of the command's inputs).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path

import torch

__all__ = ["atomic_write_bytes", "write_json", "read_json", "save_checkpoint", "load_checkpoint",
           "CheckpointError", "IntegrityError", "check_output", "file_digest", "content_digest", "is_leftover",
           "own_entries"]

CHECKPOINT_FORMAT = "gapkit-checkpoint-v2"
CHECKPOINT_MAGIC = b"GAPKITCKPT\x00\x02"      # 12 bytes, then 32 bytes of SHA-256, then the payload


class IntegrityError(ValueError):
    """A file whose stored checksum does not match its content: damaged or edited; nothing is used."""


class CheckpointError(IntegrityError):
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


def content_digest(obj) -> str:
    """SHA-256 (hex) of JSON-able ``obj`` in canonical form (sorted keys, no spaces)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True, default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()


def write_json(path, obj, checksum: bool = False) -> Path:
    """Write ``obj`` as JSON atomically; ``checksum=True`` adds ``"checksum": {"sha256": ...}`` of the
    content (a dict ``obj`` only), which :func:`read_json` verifies."""
    if checksum:
        if not isinstance(obj, dict):
            raise TypeError("write_json(checksum=True) needs a dict")
        plain = json.loads(json.dumps(obj, default=_jsonable, allow_nan=True))  # as it will read back
        plain.pop("checksum", None)
        obj = {**plain, "checksum": {"sha256": content_digest(plain)}}
    return atomic_write_bytes(path, (json.dumps(obj, indent=1, default=_jsonable, allow_nan=True) + "\n").encode())


def read_json(path, require_checksum: bool = False):
    """Read JSON; a stored ``checksum`` is verified (:class:`IntegrityError` on mismatch).

    ``require_checksum=True`` also refuses a file without one. Unreadable JSON is an
    :class:`IntegrityError` too (a ``ValueError`` naming the file).
    """
    try:
        with open(path) as f:
            obj = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IntegrityError(f"{path} is not readable JSON ({e}); nothing from it was used") from None
    if isinstance(obj, dict) and "checksum" in obj:
        stored = obj.pop("checksum")
        if not isinstance(stored, dict) or stored.get("sha256") != content_digest(obj):
            raise IntegrityError(f"{path} was changed or damaged after it was written (its SHA-256 checksum "
                                 "does not match its content); nothing from it was used")
    elif require_checksum:
        raise IntegrityError(f"{path} has no checksum (written by another program or an older gapkit); "
                             "nothing from it was used")
    return obj


def file_digest(path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_finite_state(model, path):
    bad = [n for n, t in model.state_dict().items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise ValueError(f"refusing to write {path}: the model has non-finite values in {', '.join(bad[:5])}"
                         + (" ..." if len(bad) > 5 else ""))


def save_checkpoint(path, model, **state) -> Path:
    """Write ``model``'s config and weights plus any extra plain/tensor ``state`` atomically, with a
    SHA-256 of the whole payload in front. A model with NaN or infinite weights is refused."""
    _check_finite_state(model, path)
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "model_config": dict(model.config),
                "model": model.state_dict(), **state}, buf)
    payload = buf.getvalue()
    return atomic_write_bytes(path, CHECKPOINT_MAGIC + hashlib.sha256(payload).digest() + payload)


def load_checkpoint(path, model=None, map_location="cpu") -> dict:
    """Read a checkpoint (``weights_only=True``); load its weights into ``model`` if given.

    Raises :class:`CheckpointError` when the file is not a gapkit checkpoint, when any byte of it
    differs from what was written (its SHA-256 is checked before torch reads it), or when it was
    written by a model of another architecture (the two configs are named in the message).
    """
    with open(path, "rb") as f:
        data = f.read()
    head = len(CHECKPOINT_MAGIC)
    if data[:head] != CHECKPOINT_MAGIC:
        if data[:head - 1] == CHECKPOINT_MAGIC[:-1]:
            raise CheckpointError(f"{path} is a gapkit checkpoint of another format version "
                                  f"({data[head - 1]}); this gapkit reads version {CHECKPOINT_MAGIC[-1]}")
        raise CheckpointError(f"{path} is not a gapkit checkpoint ({CHECKPOINT_FORMAT}: it must start with "
                              f"{CHECKPOINT_MAGIC!r}; checkpoints of older gapkit versions carry no checksum "
                              "and must be made again)")
    digest, payload = data[head:head + 32], data[head + 32:]
    if len(digest) < 32 or hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"{path} is damaged or was changed after it was written (SHA-256 mismatch); "
                              "nothing from it was used")
    try:
        ckpt = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
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


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_output(path, kind: str = "file", inputs=(), what: str = "output") -> Path:
    """Check an output place before any work starts, and return it as a ``Path``.

    ``kind`` is ``"file"`` or ``"dir"``. Refused with a ``ValueError`` saying why: an empty path; an
    existing directory where a file goes (or a file where a folder goes); one of ``inputs`` (the
    same resolved path or the same inode: no command overwrites its own input); a place that cannot
    be created or written (probed by creating and removing a temporary file there).
    """
    if kind not in ("file", "dir"):
        raise ValueError(f"kind must be 'file' or 'dir', got {kind!r}")
    if path is None or str(path).strip() == "":
        raise ValueError(f"the {what} path is empty; give a {'file' if kind == 'file' else 'folder'} path")
    p = Path(path).expanduser()
    for src in inputs:
        if src is not None and _same_file(p, Path(src).expanduser()):
            raise ValueError(f"the {what} {p} is also an input of this command ({src}); writing it would destroy "
                             "the input: choose another output path")
    if kind == "file" and p.is_dir():
        raise ValueError(f"the {what} {p} is an existing folder; give a file path")
    if kind == "dir" and p.exists() and not p.is_dir():
        raise ValueError(f"the {what} {p} is an existing file; give a folder path")
    folder = p if kind == "dir" else p.parent
    anc = folder
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        raise ValueError(f"cannot create the {what} {p}: {anc} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".gapkit-write-probe.")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise ValueError(f"cannot write the {what} {p}: {e.strerror or e}") from None
    return p


def is_leftover(path) -> bool:
    """A temporary file gapkit itself leaves behind when a process is killed mid-write (an atomic
    write's ``.NAME.*.tmp`` or a write probe); such files never make a folder someone else's."""
    name = Path(path).name
    return name.startswith(".gapkit-write-probe.") or (name.startswith(".") and name.endswith(".tmp"))


def own_entries(folder) -> list[Path]:
    """The entries of ``folder`` other than gapkit's own leftovers (which are removed)."""
    out = []
    for p in Path(folder).iterdir():
        if is_leftover(p) and p.is_file():
            try:
                p.unlink()
            except OSError:
                pass
        else:
            out.append(p)
    return out
