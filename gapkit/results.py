"""Results as nested data, read through one accessor.

An experiment returns nested dicts whose key names carry no parameters: a parameter is a value
beside the numbers it produced (``{"iwae": {"K": 10, "bpd": {"amortized": [...]}}}``, never
``"iwae10_bpd_amortized"``), and a grid over a parameter is a list of its values beside lists of
results (``{"K": [1, 10, 100], "mean": [...]}``). :func:`gapkit.experiments.run` and
:func:`~gapkit.experiments.load` return a :class:`Results`, so that ``res["iwae"]["bpd"]`` indexing
works as on any dict and ``res.at("iwae.bpd.amortized")`` reads a path, with an error that names
the keys that exist where the path went wrong. See `chapter 0
<https://gapkit.github.io/gapkit/notebooks/00_vae_basics.html>`_.
"""
from __future__ import annotations

__all__ = ["Results"]


class Results(dict):
    """A results dict whose nested dicts (also inside lists) are :class:`Results` too, converted
    once when it is made.

    ``res.at("a.b.c")`` is ``res["a"]["b"]["c"]``; a list is indexed by an integer part
    (``res.at("table1.rows.0.method")``). A missing part raises ``KeyError`` naming the path so far
    and the valid keys at that level.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for k, v in dict.items(self):
            w = _wrap(v)
            if w is not v:
                dict.__setitem__(self, k, w)

    def at(self, path: str, *default):
        """The value at the dotted ``path`` (``"iwae.bpd.amortized"``); with ``default``, that
        instead of a ``KeyError`` when the path does not exist."""
        if not isinstance(path, str) or not path:
            raise KeyError(f"a results path is a non-empty string such as 'iwae.bpd.amortized', got {path!r}")
        node, done = self, []
        for part in path.split("."):
            if isinstance(node, dict):
                if part not in node:
                    if default:
                        return default[0]
                    where = ".".join(done) or "the top level"
                    raise KeyError(f"no {part!r} in results at {where} (path {path!r}); valid keys there: "
                                   f"{', '.join(map(str, node)) or '(none)'}")
                node = node[part]
            elif isinstance(node, (list, tuple)):
                try:
                    node = node[int(part)]
                except (ValueError, IndexError):
                    if default:
                        return default[0]
                    raise KeyError(f"{part!r} is not an index of the list at {'.'.join(done)} (path {path!r}); "
                                   f"valid indices: 0..{len(node) - 1}") from None
            else:
                if default:
                    return default[0]
                raise KeyError(f"{'.'.join(done)} is a value ({type(node).__name__}), not a dict, in path {path!r}")
            done.append(part)
        return node


def _wrap(v):
    """``v`` with every dict in it a :class:`Results` (lists of numbers are left as they are)."""
    if isinstance(v, dict):
        return v if isinstance(v, Results) else Results(v)
    if isinstance(v, list) and v and isinstance(v[0], (dict, list)):
        return [_wrap(x) for x in v]
    return v
