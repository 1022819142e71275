"""One look for every figure in the book: a seaborn theme, vector output, labelled axes with units.

``use_theme()`` is called by every chapter; ``image_grid`` draws images; ``curve`` draws a
metric over epochs with units in the axis label.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

__all__ = ["use_theme", "image_grid", "curves", "PALETTE"]

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
