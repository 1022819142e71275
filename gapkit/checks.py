"""Argument checks shared by every public entry point, in one message style.

Each check raises ``ValueError`` (or ``TypeError`` for a wrong kind of object) saying what was
wrong and what is valid, e.g. ``epochs must be a positive integer, got -3``, and returns the value
when it is good, so that a constructor reads ``self.K = positive_int("K", K)``. ``bool`` is never
taken for an integer (``True`` is not a subset size), a string is never taken for a sequence of
sizes (``'64'`` is not ``(6, 4)``) and a float is never rounded into an integer.
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import numbers

__all__ = ["values_checked_by_caller", "reading_values", "integer", "positive_int", "nonneg_int", "optional_positive_int", "int_sizes", "number",
           "one_of", "known_keys", "seed", "boolean", "MAX_SEED"]

MAX_SEED = 2 ** 63 - 1  # torch.manual_seed takes up to 2^64 - 1; numpy's SeedSequence any int; keep it signed


_READ_VALUES = contextvars.ContextVar("gapkit_read_values", default=True)


@contextlib.contextmanager
def values_checked_by_caller():
    """Inside this block the tensor checks (data inside a likelihood's support, finite log-weights,
    a refiner's positive init std) check type and shape but do not read values to the host: each
    such read is one synchronisation with the device. :func:`gapkit.train.train` runs its steps
    inside it: it checks every step's losses and parameters for non-finite values on the device and
    reads that record once per epoch, so a NaN still stops training at the step where it appeared,
    and its data was checked when it was loaded."""
    token = _READ_VALUES.set(False)
    try:
        yield
    finally:
        _READ_VALUES.reset(token)


def reading_values() -> bool:
    """False inside :func:`values_checked_by_caller`: tensor checks skip what needs a host read."""
    return _READ_VALUES.get()


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def integer(name: str, v, lo: int | None = None, hi: int | None = None) -> int:
    """``v`` as an ``int`` in ``lo..hi`` (either end open when None)."""
    if not _is_int(v):
        what = "an integer" + (f" in {lo}..{hi}" if lo is not None and hi is not None else
                               f" >= {lo}" if lo is not None else f" <= {hi}" if hi is not None else "")
        raise ValueError(f"{name} must be {what}, got {v!r} ({type(v).__name__})")
    v = int(v)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = (f"in {lo}..{hi}" if lo is not None and hi is not None else
               f">= {lo}" if lo is not None else f"<= {hi}")
        raise ValueError(f"{name} must be an integer {rng}, got {v!r}")
    return v


def positive_int(name: str, v, hi: int | None = None) -> int:
    """An integer >= 1 (and <= ``hi``)."""
    if not _is_int(v) or v < 1 or (hi is not None and v > hi):
        rng = f"in 1..{hi}" if hi is not None else "(1, 2, ...)"
        raise ValueError(f"{name} must be a positive integer {rng}, got {v!r}")
    return int(v)


def nonneg_int(name: str, v, hi: int | None = None) -> int:
    """An integer >= 0 (and <= ``hi``)."""
    if not _is_int(v) or v < 0 or (hi is not None and v > hi):
        rng = f"in 0..{hi}" if hi is not None else "(0, 1, 2, ...)"
        raise ValueError(f"{name} must be a non-negative integer {rng}, got {v!r}")
    return int(v)


def optional_positive_int(name: str, v) -> int | None:
    """None or an integer >= 1."""
    if v is None:
        return None
    if not _is_int(v) or v < 1:
        raise ValueError(f"{name} must be a positive integer or None, got {v!r}")
    return int(v)


def int_sizes(name: str, v, allow_empty: bool = True) -> tuple:
    """A sequence of positive integers (layer sizes) as a tuple; a string or a float is refused."""
    if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
        raise ValueError(f"{name} must be a sequence of positive integers such as (500, 500), got {v!r}")
    out = tuple(v)
    bad = [h for h in out if not _is_int(h) or h < 1]
    if bad:
        raise ValueError(f"{name} must be a sequence of positive integers such as (500, 500), got {v!r} "
                         f"(not a positive integer: {bad[0]!r})")
    if not out and not allow_empty:
        raise ValueError(f"{name} must hold at least one size, got {v!r}")
    return tuple(int(h) for h in out)


def number(name: str, v, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
           hi_open: bool = False) -> float:
    """A finite real number in [lo, hi] (``lo_open``/``hi_open`` exclude an end)."""
    ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
    if ok:
        v = float(v)
        ok = not ((lo is not None and (v <= lo if lo_open else v < lo)) or
                  (hi is not None and (v >= hi if hi_open else v > hi)))
    if not ok:
        left = "(" if lo_open or lo is None else "["
        right = ")" if hi_open or hi is None else "]"
        rng = f" in {left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"
        raise ValueError(f"{name} must be a finite number{rng if lo is not None or hi is not None else ''}, "
                         f"got {v!r}")
    return v


def one_of(name: str, v, valid) -> object:
    """``v`` if it is one of ``valid``."""
    valid = tuple(valid)
    try:
        ok = v in valid
    except TypeError:  # unhashable
        ok = False
    if not ok:
        raise ValueError(f"unknown {name} {v!r}; valid: {', '.join(repr(x) for x in valid)}")
    return v


def known_keys(what: str, given, valid) -> None:
    """Refuse keys of ``given`` that are not in ``valid`` (misspelt settings), listing the valid ones."""
    bad = sorted(set(given) - set(valid), key=str)
    if bad:
        raise ValueError(f"unknown {what} {', '.join(repr(b) for b in bad)}; valid: "
                         f"{', '.join(sorted(map(str, valid))) or '(none)'}")


def seed(v, name: str = "seed") -> int:
    """A seed: an integer in 0..2^63-1."""
    return integer(name, v, 0, MAX_SEED)


def boolean(name: str, v) -> bool:
    """``True`` or ``False`` (not 1, 0 or a string)."""
    if not isinstance(v, bool):
        raise ValueError(f"{name} must be True or False, got {v!r}")
    return v
