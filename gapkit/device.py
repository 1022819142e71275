"""Device choice: CUDA when present, else the CPU; printed once per process.

Valid names: ``cpu``, ``cuda`` or ``cuda:N`` (when torch sees that GPU), ``mps`` (Apple GPUs, when
available). Anything else, from an argument, ``--device`` or ``$GAPKIT_DEVICE``, is refused before
any work with a message that lists what this machine has.
"""
from __future__ import annotations

import os

import torch

__all__ = ["default_device", "describe", "available_devices", "eval_rows", "CPU_EVAL_ROWS"]

CPU_EVAL_ROWS = 1 << 12   # rows per pass on a CPU: activations stay in cache (``gapkit bench iwae``)
GPU_MEMORY_SHARE = 0.25   # share of the free GPU memory one evaluation pass may take

_announced = set()


def available_devices() -> list[str]:
    """The device names this machine can use, e.g. ``['cpu', 'cuda', 'cuda:0']``."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return names


def default_device(device=None, announce: bool = True) -> torch.device:
    """``device`` if given, else ``$GAPKIT_DEVICE``, else CUDA if available, else CPU.

    Raises ``ValueError`` naming the valid devices for an unknown name or a GPU this machine lacks.
    """
    source = "device"
    if device is None and os.environ.get("GAPKIT_DEVICE"):
        device, source = os.environ["GAPKIT_DEVICE"], "$GAPKIT_DEVICE"
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    valid = available_devices()
    if isinstance(device, torch.device):
        dev = device
    else:
        if not isinstance(device, str):
            raise ValueError(f"{source} must be a device name such as 'cpu' or 'cuda', got {device!r}")
        try:
            dev = torch.device(device.strip())
        except (RuntimeError, ValueError):
            raise ValueError(f"unknown {source} {device!r}; valid on this machine: {', '.join(valid)}") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported {source} {str(device)!r}; valid on this machine: {', '.join(valid)}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{source} {str(device)!r} requested but torch sees no CUDA GPU here; valid on "
                             f"this machine: {', '.join(valid)}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{source} {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA "
                             f"GPU(s); valid: {', '.join(valid)}")
    if dev.type == "mps" and "mps" not in valid:
        raise ValueError(f"{source} 'mps' requested but it is not available here; valid: {', '.join(valid)}")
    if announce and str(dev) not in _announced:
        _announced.add(str(dev))
        print(f"gapkit: device {describe(dev)}")
    return dev


def describe(dev) -> str:
    dev = torch.device(dev)
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)}), torch {torch.__version__}"
    return f"{dev.type} ({torch.get_num_threads()} threads), torch {torch.__version__}"


def eval_rows(device, model=None) -> int:
    """(sample, image) rows per evaluation pass, chosen by memory rather than fixed.

    On a CPU: ``CPU_EVAL_ROWS`` (4096; larger passes leave the cache and run slower, and the
    default keeps every CPU number as it was). On a GPU: ``GPU_MEMORY_SHARE`` of the free memory
    divided by the bytes one row needs, ``4 * 3 * (sum of the model's layer widths)`` (float32
    activations, counted three times for the temporaries of the log-likelihood and log-sum-exp),
    rounded down to a power of two, at least 4096 and at most 2^20.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return CPU_EVAL_ROWS
    free, _ = torch.cuda.mem_get_info(device)
    widths = sum(m.out_features + m.in_features for m in model.modules()
                 if isinstance(m, torch.nn.Linear)) if model is not None else 4096
    rows = int(free * GPU_MEMORY_SHARE) // (4 * 3 * max(widths, 1))
    return max(CPU_EVAL_ROWS, min(1 << 20, 1 << max(rows.bit_length() - 1, 0)))
