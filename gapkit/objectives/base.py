"""The objective contract and the one registry of objectives.

An objective is called as ``objective(model, x, generator)`` on a minibatch and returns
:class:`Losses`: a scalar to *minimize* for the encoder (phi), one for the decoder (theta),
either of which may be ``None`` to leave that side untouched, plus metrics to log (tensors stay on
the device: reading them is the caller's host synchronisation, not every step's). When the two
are the same tensor (the usual VAE) one backward pass serves both. ``Losses.own`` is a loss
for an objective's own parameters (e.g. CIWAE's learnable beta, BSVI's buffer weights).

Every objective class is registered by its ``name`` with :func:`register`; :func:`make_objective`
builds one by name and :func:`names` lists them (optionally those of one family, e.g. the encoder
schemes of `chapter 3 <https://gapkit.github.io/gapkit/notebooks/03_wake_sleep.html>`_).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..checks import one_of

__all__ = ["Losses", "Objective", "StepTrace", "OBJECTIVES", "register", "make_objective", "names"]


@dataclass
class Losses:
    encoder: torch.Tensor | None
    decoder: torch.Tensor | None
    metrics: dict = field(default_factory=dict)
    own: torch.Tensor | None = None  # a loss for the objective's own parameters (e.g. learnable beta)


class StepTrace:
    """Per-step scalars an objective records (CIWAE's beta, the buffered-SVI bounds), kept as device
    tensors while training and read to the host in one transfer when asked for (:meth:`as_dict`,
    e.g. at a checkpoint or after training), so that recording costs no host synchronisation per
    step."""

    def __init__(self, values: dict | None = None):
        self._floats = {k: [float(v) for v in vs] for k, vs in (values or {}).items()}
        self._pending: dict = {}

    def add(self, **values) -> None:
        for key, v in values.items():
            self._pending.setdefault(key, []).append(v.detach().reshape(()) if torch.is_tensor(v)
                                                     else torch.tensor(float(v)))

    def as_dict(self) -> dict:
        """Every recorded series as a list of floats (the pending device values read at once)."""
        for key, vs in self._pending.items():
            self._floats.setdefault(key, []).extend(torch.stack([v.to(vs[0].device) for v in vs]).tolist())
        self._pending = {}
        return {k: list(v) for k, v in self._floats.items()}


class Objective:
    """Base class: subclasses set ``name`` and implement ``__call__(model, x, generator) -> Losses``
    and ``config() -> dict`` (the settings that identify a training run)."""

    name = "objective"

    def config(self) -> dict:
        return {"name": self.name}

    def __call__(self, model, x, generator=None) -> Losses:  # pragma: no cover - interface
        raise NotImplementedError


OBJECTIVES: dict = {}
"""Every registered objective class by name, in registration order."""


def register(cls):
    """Class decorator: registers ``cls`` (an :class:`Objective` subclass) under ``cls.name``.

    A name belongs to one class; registering another class under a taken name is refused."""
    if not (isinstance(cls, type) and issubclass(cls, Objective)):
        raise TypeError(f"only Objective subclasses can be registered, got {cls!r}")
    name = cls.__dict__.get("name")
    if not isinstance(name, str) or not name or name == Objective.name:
        raise ValueError(f"{cls.__qualname__} needs its own class attribute name = '...' to be registered")
    if OBJECTIVES.get(name, cls) is not cls:
        raise ValueError(f"objective name {name!r} is taken by {OBJECTIVES[name].__qualname__}")
    OBJECTIVES[name] = cls
    return cls


def make_objective(name: str, **cfg) -> Objective:
    """The registered objective ``name`` built with its settings ``cfg``, e.g.
    ``make_objective("miwae", M=8, K=8)``."""
    one_of("objective", name, OBJECTIVES)
    return OBJECTIVES[name](**cfg)


def names(family: type = Objective) -> list:
    """Names of the registered objectives that are subclasses of ``family``, in registration order
    (``names(EncoderScheme)``: the encoder schemes of
    `chapter 3 <https://gapkit.github.io/gapkit/notebooks/03_wake_sleep.html>`_)."""
    return [n for n, c in OBJECTIVES.items() if issubclass(c, family)]
