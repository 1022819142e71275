"""What every chapter's first code cell does.

``preset, device = setup("experiment-name", ...)`` applies the book's figure theme, reads the
preset (``$GAPKIT_PRESET``), chooses the device, and prints both with how long each of the
chapter's experiments takes at this preset when its result is not cached yet.
"""
from __future__ import annotations

from .. import experiments
from . import plots
from ..cost import expected
from ..device import default_device
from ..presets import get_preset

__all__ = ["setup"]


def setup(*experiment_names: str):
    """Theme, preset and device for a chapter; prints them and the experiments' expected times.

    Returns ``(preset, device)``. Unknown experiment names raise ``ValueError`` listing the valid ones.
    """
    plots.use_theme()
    preset = get_preset()
    device = default_device()
    print(f"preset {preset.name!r}: {preset.note}")
    for name in experiment_names:
        experiments.get(name)  # an unknown name: ValueError listing the valid ones
        cost = expected(name, preset.name)
        print(f"{name}: about {cost} at this preset when not cached (a cached result is only read)")
    return preset, device
