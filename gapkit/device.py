"""Device choice: CUDA when present, else the CPU; printed once per process."""
from __future__ import annotations

import os

import torch

_announced = set()


def default_device(device=None, announce: bool = True) -> torch.device:
    """``device`` if given, else ``$GAPKIT_DEVICE``, else CUDA if available, else CPU."""
    name = device or os.environ.get("GAPKIT_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA GPU; use 'cpu'")
    if announce and str(dev) not in _announced:
        _announced.add(str(dev))
        print(f"gapkit: device {describe(dev)}")
    return dev


def describe(dev) -> str:
    dev = torch.device(dev)
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)}), torch {torch.__version__}"
    return f"cpu ({torch.get_num_threads()} threads), torch {torch.__version__}"
