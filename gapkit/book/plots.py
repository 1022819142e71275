"""One look for every figure and result in the book: a seaborn theme, vector output, labelled axes
with units, results tables as real tables and results sentences as text that wraps.

``use_theme()`` is called by every chapter; ``image_grid`` draws images; ``curves`` draws metrics
over epochs with units in the axis label; ``band`` a mean with a shaded spread; ``ellipse`` a
Gaussian's two-standard-deviation ellipse; ``legend`` places a legend where it hides no data;
``table`` shows a results table and ``say`` results sentences (both wrap in the rendered book,
where a long ``print`` line would run off the page).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

__all__ = ["use_theme", "image_grid", "curves", "band", "band_over_seeds", "ellipse", "ellipse_view", "legend",
           "hbar_values", "table", "records_table", "say", "PALETTE"]

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


def curves(x, ys: dict, xlabel: str, ylabel: str, ax=None, title: str = "", marker="o", legend="best"):
    """Several labelled curves against one x (e.g. train and test BPD against epochs).

    ``legend`` is where the legend goes (see :func:`legend`): ``"best"`` (inside, the emptiest
    corner), ``"right"`` or ``"below"`` (outside the axes, hiding nothing), or ``None``.
    """
    ax = ax or plt.gca()
    for label, y in ys.items():
        ax.plot(x, y, marker=marker, ms=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if legend:
        _legend(ax, legend)
    return ax


def band(ax, x, mean, spread, label=None, color=None, alpha: float = 0.2, **kw):
    """A curve ``mean`` against ``x`` with a shaded band ``mean ± spread`` (e.g. one standard deviation
    over seeds); ``spread`` may also be a pair ``(low, high)`` of curves. Returns the line."""
    mean = np.asarray(mean, dtype=float)
    if isinstance(spread, tuple) and len(spread) == 2:
        lo, hi = (np.asarray(v, dtype=float) for v in spread)
    else:
        sd = np.asarray(spread, dtype=float)
        lo, hi = mean - sd, mean + sd
    kw.setdefault("marker", "o")
    kw.setdefault("ms", 3)
    (line,) = ax.plot(x, mean, label=label, color=color, **kw)
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=alpha, lw=0)
    return line


def band_over_seeds(ax, x, per_seed, label=None, **kw):
    """:func:`band` of runs over seeds: ``per_seed`` is (seeds, len(x)); the curve is the mean over
    seeds and the band one standard deviation (numpy, ddof=0). Returns the line."""
    a = np.asarray(per_seed, dtype=float)
    if a.ndim != 2 or a.shape[1] != len(x):
        raise ValueError(f"band_over_seeds: per_seed must be (seeds, {len(x)}), got shape {a.shape}")
    return band(ax, x, a.mean(0), a.std(0), label=label, **kw)


def ellipse_view(ax, centers, radius: float):
    """Square axes of half-width ``radius`` around the mean of ``centers`` (2-D points), equal aspect:
    a view in which ellipses (:func:`ellipse`) keep their shape."""
    c = np.asarray(centers, dtype=float).reshape(-1, 2).mean(0)
    ax.set_xlim(c[0] - radius, c[0] + radius)
    ax.set_ylim(c[1] - radius, c[1] + radius)
    ax.set_aspect("equal")


def ellipse(ax, mean, cov, n_std: float = 2.0, **kw):
    """The ``n_std``-standard-deviation ellipse of the 2-D Gaussian N(mean, cov) (``cov`` a 2x2
    matrix, or a length-2 vector of standard deviations for a diagonal Gaussian)."""
    from matplotlib.patches import Ellipse
    cov = np.asarray(cov, dtype=float)
    if cov.ndim == 1:
        cov = np.diag(np.square(cov))
    vals, vecs = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(vecs[1, 1], vecs[0, 1]))
    kw.setdefault("lw", 2)
    patch = Ellipse(tuple(np.asarray(mean, dtype=float)), 2 * n_std * np.sqrt(vals[1]), 2 * n_std * np.sqrt(vals[0]),
                    angle=angle, fill=False, **kw)
    ax.add_patch(patch)
    return patch


def legend(ax, where: str = "right", **kw):
    """A legend that hides no data: ``"right"`` puts it outside the axes on the right, ``"below"``
    under the x-axis label (in columns), ``"best"`` inside where matplotlib finds the fewest points.
    Returns the legend (``None`` when nothing is labelled)."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    if where == "right":
        kw = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0, **kw}
    elif where == "below":
        kw = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.2), "ncol": min(len(labels), 2), **kw}
    elif where == "best":
        kw = {"loc": "best", **kw}
    else:
        raise ValueError(f"legend: where must be 'right', 'below' or 'best', got {where!r}")
    return ax.legend(handles, labels, **kw)


_legend = legend  # curves() has an argument called legend


def hbar_values(ax, labels, values, colors=None, fmt: str = ".2f", xlabel: str = "", lw: float = 6):
    """Horizontal bars from a common baseline to each value, each labelled with its number (the
    chapters' "bound of each method" pictures); the axis is zoomed to the values."""
    values = np.asarray(values, dtype=float)
    lo, hi = values.min(), values.max()
    span = (hi - lo) or (abs(hi) * 0.1 or 1.0)
    left = lo - 0.6 * span
    y = np.arange(len(values))
    ax.hlines(y, left, values, color=colors, lw=lw)
    for i, v in enumerate(values):
        ax.text(v + 0.03 * span, i, format(v, fmt), va="center", ha="left", fontsize=9)
    ax.set_yticks(y, labels)
    ax.set_xlim(left, hi + 0.35 * span)
    if xlabel:
        ax.set_xlabel(xlabel)
    return ax


def table(rows, columns=None, formats=None, caption: str = "", best=None):
    """A results table as real HTML (rendered as a table in the book and in Jupyter).

    ``rows`` is a list of dicts (or of sequences, then ``columns`` names them); ``columns`` picks and
    orders the keys, whose names are the header (put units there: ``"test BPD"``, ``"nats"``);
    ``formats`` maps a column to a format spec (``".4f"``) or a callable; other floats get ``.4g``.
    A column of numbers (or one with a format) is right-aligned, text left-aligned; ``None`` shows
    as a dash. ``best`` maps a column to ``"min"`` or ``"max"``: that column's best value is bold.
    Returns an ``IPython.display.HTML`` object.
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
    best = dict(best or {})
    bad = (set(formats) | set(best)) - set(columns)
    if bad:
        raise ValueError(f"table: formats or best for unknown columns {sorted(bad)}; columns: {columns}")
    wrong = {c: b for c, b in best.items() if b not in ("min", "max")}
    if wrong:
        raise ValueError(f"table: best must be 'min' or 'max', got {wrong}")

    def is_num(v):
        return isinstance(v, numbers.Number) and not isinstance(v, bool)

    table_rows = []
    for r in rows:
        vals = [r.get(c) for c in columns] if isinstance(r, dict) else list(r)
        if len(vals) != len(columns):
            raise ValueError(f"table: a row has {len(vals)} values for {len(columns)} columns")
        table_rows.append(vals)
    numeric = [c in formats or (any(v is not None for v in col) and all(v is None or is_num(v) for v in col))
               for c, col in zip(columns, zip(*table_rows) if table_rows else [()] * len(columns))]
    best_value = {}
    for j, c in enumerate(columns):
        nums = [v[j] for v in table_rows if is_num(v[j])]
        if c in best and nums:
            best_value[j] = (min if best[c] == "min" else max)(nums)

    def cell(col, value):
        fmt = formats.get(col)
        if value is None:
            return "&ndash;"
        if callable(fmt):
            return html.escape(str(fmt(value)))
        if is_num(value):
            return html.escape(format(value, fmt or (".4g" if isinstance(value, float) else "d")))
        return html.escape(str(value))

    align = ['style="text-align:right"' if n else 'style="text-align:left"' for n in numeric]
    head = "".join(f"<th {a}>{html.escape(str(c))}</th>" for c, a in zip(columns, align))
    body = []
    for vals in table_rows:
        tds = []
        for j, (c, v) in enumerate(zip(columns, vals)):
            text = cell(c, v)
            if j in best_value and is_num(v) and v == best_value[j]:
                text = f"<strong>{text}</strong>"
            tds.append(f"<td {align[j]}>{text}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return HTML(f'<table class="gapkit-table">{cap}<thead><tr>{head}</tr></thead>'
                f'<tbody>{"".join(body)}</tbody></table>')


def records_table(records, columns: dict, formats=None, caption: str = "", best=None):
    """:func:`table` of result records (e.g. ``res.at("table1.rows")``, one dict per row): ``columns``
    maps each header to what the row shows, a dotted path into the record (read with
    :meth:`gapkit.results.Results.at`, so a missing key names the valid ones) or a callable of the
    record. One formatter for every chapter's results tables."""
    from ..results import Results

    def value(rec, how):
        if callable(how):
            return how(rec)
        return Results(rec).at(how) if isinstance(rec, dict) else rec[how]
    rows = [{h: value(r, how) for h, how in columns.items()} for r in records]
    return table(rows, columns=list(columns), formats=formats, caption=caption, best=best)


def say(*paragraphs: str):
    """Show results sentences as Markdown text, one paragraph per argument: unlike a long ``print``
    line they wrap to the page's width in the rendered book. Write them from the results (never
    type a number), e.g. ``say(f"test ELBO {elbo:.2f} nats")``. Outside a notebook kernel the
    text is printed instead."""
    from IPython.display import Markdown, display

    text = "\n\n".join(p.strip() for p in paragraphs if p and p.strip())
    md = Markdown(text)
    try:
        from IPython import get_ipython
        ip = get_ipython()
        in_ipython = ip is not None and getattr(ip, "kernel", None) is not None  # a notebook kernel
    except ImportError:  # pragma: no cover - IPython is a dependency
        in_ipython = False
    if in_ipython:
        display(md)
    else:
        print(text)
    return None
