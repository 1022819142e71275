"""Presets: how big every experiment is.

* ``quick``: seconds per notebook on 2 CPU cores, scikit-learn's 8x8 digits (used by the tests);
* ``book``: what the rendered book shows: real binarized MNIST, minutes per chapter on a CPU;
* ``paper``: the source papers' settings, for a GPU.

The preset is chosen by ``$GAPKIT_PRESET`` or the CLI's ``--preset``; the default is ``book``.
Each experiment starts from its preset's :class:`Preset` and changes what it needs with
``preset.replace(...)``.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace

__all__ = ["Preset", "PRESETS", "get_preset", "preset_name", "DEFAULT_PRESET", "check_field", "FIELDS"]

DEFAULT_PRESET = "book"


@dataclass(frozen=True)
class Preset:
    name: str
    dataset: str                 # digits | mnist | binarized_mnist
    binarization: str            # threshold | dynamic | grey | fixed
    train_subset: int | None     # None: the whole training split
    test_subset: int | None
    hidden: tuple
    latent: int
    activation: str
    epochs: int
    batch_size: int
    lr: float
    eval_every: int
    checkpoint_every: int
    eval_K: int                  # K of the reported IWAE bounds (e.g. IWAE-5000 in the papers)
    note: str = ""

    def replace(self, **changes) -> "Preset":
        valid = {f.name for f in fields(self)}
        bad = set(changes) - valid
        if bad:
            raise ValueError(f"unknown preset fields {sorted(bad)}; valid: {sorted(valid)}")
        return replace(self, **changes)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Preset":
        """The inverse of :meth:`to_dict` (e.g. the effective preset of a run identity)."""
        return cls(**{**d, "hidden": tuple(d["hidden"])})


PRESETS = {
    "quick": Preset("quick", "digits", "threshold", None, None, (64, 64), 4, "relu",
                    epochs=60, batch_size=64, lr=3e-3, eval_every=10, checkpoint_every=20, eval_K=100,
                    note="8x8 digits, tiny MLP: seconds on 2 CPU cores (tests, CI)"),
    "book": Preset("book", "mnist", "threshold", 10000, 2000, (200, 200), 16, "relu",
                   epochs=20, batch_size=100, lr=1e-3, eval_every=2, checkpoint_every=5, eval_K=1000,
                   note="real MNIST (threshold binarization), 10k training images: minutes on a CPU"),
    "paper": Preset("paper", "mnist", "threshold", None, None, (500, 500), 16, "relu",
                    epochs=1000, batch_size=100, lr=3e-4, eval_every=100, checkpoint_every=100, eval_K=5000,
                    note="Zhang et al. 2022 settings: 2x500 ReLU, latent 16, Adam 3e-4, 1000 epochs (GPU)"),
}


FIELDS = {  # what each overridable field holds
    "dataset": "one of digits, mnist, binarized_mnist",
    "binarization": "threshold, dynamic, grey or fixed",
    "train_subset": "a positive integer or null (the whole training split)",
    "test_subset": "a positive integer or null (the whole test split)",
    "hidden": "hidden layer sizes, e.g. 500,500",
    "latent": "a positive integer (latent dimensions)",
    "activation": "relu, tanh, elu or softplus",
    "epochs": "a positive integer", "batch_size": "a positive integer", "lr": "a number > 0",
    "eval_every": "a non-negative integer (epochs)", "checkpoint_every": "a non-negative integer (epochs)",
    "eval_K": "a positive integer (samples of the reported IWAE bounds)",
}


def check_field(name: str, value):
    """A preset field's override, checked and converted (``hidden=500`` -> ``(500,)``); ``ValueError``
    naming the valid fields or values. ``name`` and ``note`` cannot be overridden."""
    from . import checks
    if name not in FIELDS:
        raise ValueError(f"unknown preset field {name!r}; valid: {', '.join(FIELDS)}")
    if name == "dataset":
        from .data import DATASETS
        return checks.one_of("dataset", value, DATASETS)
    if name == "binarization":
        return checks.one_of("binarization", value, ("threshold", "dynamic", "grey", "fixed"))
    if name in ("train_subset", "test_subset"):
        return checks.optional_positive_int(name, value)
    if name == "hidden":
        return checks.int_sizes("hidden", (value,) if isinstance(value, int) and not isinstance(value, bool) else value)
    if name == "activation":
        from .models import ACTIVATIONS
        return checks.one_of("activation", value, tuple(ACTIVATIONS))
    if name == "lr":
        return checks.number("lr", value, 0.0, lo_open=True)
    if name in ("eval_every", "checkpoint_every"):
        return checks.nonneg_int(name, value)
    return checks.positive_int(name, value)


def preset_name(name: str | None = None) -> str:
    """The preset to use: ``name``, else ``$GAPKIT_PRESET``, else ``book``."""
    name = name or os.environ.get("GAPKIT_PRESET") or DEFAULT_PRESET
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return name


def get_preset(name: str | None = None) -> Preset:
    """The :class:`Preset` called ``name``, else ``$GAPKIT_PRESET``, else ``book``
    (:func:`preset_name`; an unknown name raises ``ValueError``).

    Every chapter (``notebooks/*``) starts with it; the book's landing page lists the presets.
    """
    return PRESETS[preset_name(name)]
