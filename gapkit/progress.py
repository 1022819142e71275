"""Progress bars on long work: tqdm's (a widget in a notebook, text in a terminal).

``GAPKIT_PROGRESS=0`` switches every gapkit bar off. ``python -m gapkit book`` sets it for the
chapters it executes: on a rendered page a finished bar is noise, and one that closed leaves an
empty gap.
"""
from __future__ import annotations

import os

from tqdm.auto import tqdm as _tqdm

__all__ = ["tqdm", "enabled"]


def enabled() -> bool:
    """False when ``$GAPKIT_PROGRESS`` is 0, false, no or off."""
    return os.environ.get("GAPKIT_PROGRESS", "1").strip().lower() not in ("0", "false", "no", "off")


def tqdm(*args, **kwargs):
    """``tqdm.auto.tqdm(*args, **kwargs)``, with ``disable=True`` when progress bars are switched off."""
    if not enabled():
        kwargs["disable"] = True
    return _tqdm(*args, **kwargs)
