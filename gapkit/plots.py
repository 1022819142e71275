"""One look for every figure in the book: a seaborn theme, vector output, labelled axes with units.

``use_theme()`` is called by every chapter; ``image_grid`` draws images; ``curve`` draws a
metric over epochs with units in the axis label.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

__all__ = ["use_theme", "image_grid", "curves", "table", "PALETTE"]

PALETTE = "colorblind"


def use_theme():
    """The book's seaborn theme; notebooks also get SVG (vector) output."""
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)
    plt.rcParams.update({"figure.figsize": (6.4, 4.0), "figure.dpi": 100, "savefig.bbox": "tight",
                         "axes.titleweight": "bold", "legend.frameon": False})
    try:
        from IPython import get_ipython
        ip = get_ipython()
        if ip is not None and "IPKernelApp" in ip.config:  # a notebook kernel, whatever MPLBACKEND says
            ip.run_line_magic("matplotlib", "inline")
        from matplotlib_inline.backend_inline import set_matplotlib_formats
        set_matplotlib_formats("svg")
    except ImportError:  # outside IPython
        pass


def image_grid(images, shape, ax=None, ncol: int = 8, title: str = "", cmap="gray_r"):
    """Tile flattened images (N, D) into one picture."""
    a = np.asarray(images, dtype=float).reshape(-1, *shape)
    n = len(a)
    nrow = int(np.ceil(n / ncol))
    h, w = shape
    canvas = np.ones((nrow * (h + 1) + 1, ncol * (w + 1) + 1)) * np.nan
    for i, im in enumerate(a):
        r, c = divmod(i, ncol)
        canvas[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + c * (w + 1): 1 + c * (w + 1) + w] = im
    ax = ax or plt.gca()
    ax.imshow(canvas, cmap=cmap, vmin=0, vmax=np.nanmax(a) if np.nanmax(a) > 1 else 1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def curves(x, ys: dict, xlabel: str, ylabel: str, ax=None, title: str = "", marker="o"):
    """Several labelled curves against one x (e.g. train and test BPD against epochs)."""
    ax = ax or plt.gca()
    for label, y in ys.items():
        ax.plot(x, y, marker=marker, ms=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend()
    return ax


def table(rows, columns=None, formats=None, caption: str = ""):
    """A results table as real HTML (rendered as a table in the book and in Jupyter).

    ``rows`` is a list of dicts (or of sequences, then ``columns`` names them); ``columns`` picks and
    orders the keys, whose names are the header (put units there: ``"test BPD"``, ``"nats"``);
    ``formats`` maps a column to a format spec (``".4f"``) or a callable; other floats get ``.4g``.
    Numbers are right-aligned, text left-aligned. Returns an ``IPython.display.HTML`` object.
    """
    import html
    import numbers

    from IPython.display import HTML

    rows = list(rows)
    if columns is None:
        if not rows or not isinstance(rows[0], dict):
            raise ValueError("table: give columns=... when rows are not dicts")
        columns = list(rows[0])
    columns = list(columns)
    formats = dict(formats or {})
    bad = set(formats) - set(columns)
    if bad:
        raise ValueError(f"table: formats for unknown columns {sorted(bad)}; columns: {columns}")

    def cell(col, value):
        fmt = formats.get(col)
        if value is None:
            return "&ndash;", True
        if callable(fmt):
            return html.escape(str(fmt(value))), isinstance(value, numbers.Number)
        if isinstance(value, numbers.Number) and not isinstance(value, bool):
            return html.escape(format(value, fmt or (".4g" if isinstance(value, float) else "d"))), True
        return html.escape(str(value)), False

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for r in rows:
        vals = [r.get(c) for c in columns] if isinstance(r, dict) else list(r)
        if len(vals) != len(columns):
            raise ValueError(f"table: a row has {len(vals)} values for {len(columns)} columns")
        tds = []
        for c, v in zip(columns, vals):
            text, num = cell(c, v)
            tds.append(f'<td style="text-align:right">{text}</td>' if num else f"<td>{text}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return HTML(f'<table class="gapkit-table">{cap}<thead><tr>{head}</tr></thead>'
                f'<tbody>{"".join(body)}</tbody></table>')
