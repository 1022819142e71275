"""The summary of the book's findings (the intro page), from cached results.

Each chapter's experiment contributes one panel when its ``results.json`` exists for the build's
preset (``$GAPKIT_PRESET``, default ``book``). A panel is a few numbers in one unit (BPD or nats)
drawn as labelled dots, plus one sentence, computed from the numbers, that states the finding. The
book's landing page shows every panel as its own picture at its natural size (``draw_panel``, text
as large as the chapters' figures) with its sentence beside it; ``draw`` puts all panels in one
picture (the README's).

An experiment declares its panel itself, with no code here: a top-level ``"book_summary"`` entry
in its results, computed by the experiment (each experiment module has a ``book_summary(res)``)::

    {"book_summary": {"title": "...", "unit": "BPD", "values": {"label": 0.12, ...},
                      "finding": "one sentence computed from the numbers",
                      "lower_is_better": true}}

An adapter here (``@adapter("experiment-name")`` over ``func(results) -> Panel``) is the older way,
still used by ``bits-back``.

Panels are ordered by the experiments' ``chapter`` field.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Panel", "adapter", "collect", "draw", "draw_panel", "PANEL_FONT_PT"]

# The book's panels use the chapters' figure sizes for text (seaborn's "notebook" context: tick labels
# 11 pt), and are drawn at their natural size, so they read like the chapters' figures.
PANEL_FONT_PT = 11.0
PANEL_WIDTH_IN = 4.4

_ADAPTERS: dict = {}
# within a chapter, panels follow the chapter's order (else the names')
_ORDER = {"sleep-consistency": 0, "reverse-half-asleep": 1}


@dataclass
class Panel:
    experiment: str
    chapter: str                      # notebook slug, e.g. "00_vae_basics"
    title: str
    unit: str                         # "BPD" or "nats"
    values: dict = field(default_factory=dict)   # bar label -> number
    finding: str = ""
    lower_is_better: bool = True


def adapter(name: str):
    """Register ``func(results) -> Panel | None`` as the summary of experiment ``name``."""
    def wrap(func):
        _ADAPTERS[name] = func
        return func
    return wrap


@adapter("bits-back")
def _bits_back(res: dict) -> Panel:
    f = res["full"]["baseline"]
    c = res["compressors"]
    K = res["full"]["iwae_K"]
    file_ = f.get("file_bpd", f["bpd"])    # the whole file (results before issue 17 have only the net rate)
    values = {"bits-back ANS": f["bpd"]}
    if "file_bpd" in f:
        values["bits-back, whole file"] = file_
    values.update({"-ELBO": f["neg_elbo_bpd"], f"-IWAE-{K} (≈ -log p(x))": res["full"]["neg_log_px_iwae_bpd"]})
    values.update({k: c[k] for k in ("bz2", "lzma", "gzip") if k in c})
    others = [k for k in ("bz2", "lzma", "gzip") if k in c]
    beats = [f"{k} ({c[k]:.3f})" for k in others if file_ < c[k]]
    loses = [f"{k} ({c[k]:.3f})" for k in others if file_ >= c[k]]
    vs = ([f"beats {' and '.join(beats)}"] if beats else []) + ([f"loses to {' and '.join(loses)}"] if loses else [])
    finding = (f"Bits-back coding of {f['n_images']:,} test images takes {f['bpd']:.4f} BPD net"
               + (f" ({file_:.4f} for the whole file)" if "file_bpd" in f else "")
               + f", {f['ratio_to_neg_elbo']:.2%} of the -ELBO, "
               f"{'every image decoded exactly' if f['exact'] else 'NOT decoded exactly'}; "
               f"{'the file' if 'file_bpd' in f else 'it'} {' and '.join(vs)}.")
    return Panel("bits-back", "", "Bits-back coding: achieved code length", "BPD", values, finding)


def _generic(name: str, res: dict) -> Panel | None:
    s = res.get("book_summary")
    if not isinstance(s, dict) or not isinstance(s.get("values"), dict):
        return None
    values = {str(k): float(v) for k, v in s["values"].items() if isinstance(v, (int, float))}
    if not values:
        return None
    return Panel(name, "", str(s.get("title", name)), str(s.get("unit", "")), values, str(s.get("finding", "")),
                 bool(s.get("lower_is_better", True)))


def collect(preset: str | None = None) -> tuple[list, str]:
    """Panels for every experiment with cached results at ``preset``; and the preset's name."""
    from gapkit import experiments
    from gapkit.presets import get_preset
    p = get_preset(preset)
    panels = []
    for name, exp in experiments.registry().items():
        try:
            res = experiments.load(name, preset=p.name)
        except (FileNotFoundError, ValueError):
            continue
        if res.get("smoke") or res.get("config", {}).get("smoke"):
            continue  # a smoke run's numbers are never results (gapkit.smoke)
        try:
            panel = _ADAPTERS[name](res) if name in _ADAPTERS else _generic(name, res)
        except (KeyError, TypeError, ValueError, IndexError, StopIteration):
            panel = _generic(name, res)  # an adapter that no longer fits the results: fall back
        if panel is None:
            continue
        panel.chapter = exp.chapter
        panels.append(panel)
    panels.sort(key=lambda q: (q.chapter or "~", _ORDER.get(q.experiment, 0), q.experiment))
    return panels, p.name


def draw(panels: list, path: Path, preset_note: str = "", findings: bool = False) -> Path:
    """Draw ``panels`` into the SVG file ``path`` (the format follows the suffix: ``.png`` works too).

    One small dot chart per panel, at most 4 per row (3 when that fills the rows better): each value
    is a dot with its number beside it, on an axis zoomed to the panel's values (the axis label gives
    the unit and which way is better). With ``findings``, each panel's sentence is printed under it
    (the README picture); the book's page gives the sentences in the caption instead.
    """
    import textwrap

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    from gapkit.book import plots
    plots.use_theme()
    n = max(len(panels), 1)
    nrow = math.ceil(n / 4)
    ncol = math.ceil(n / nrow)
    width = 5.0 if findings else 4.2
    height = (3.55 if findings else 2.35)
    fig, axes = plt.subplots(nrow, ncol, figsize=(width * ncol, height * nrow + 0.4), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, ax in enumerate(axes.flat):
        if i >= len(panels):
            ax.set_axis_off()
            continue
        q = panels[i]
        labels = list(q.values)
        vals = [q.values[k] for k in labels]
        y = list(range(len(labels)))
        lo, hi = min(vals), max(vals)
        span = (hi - lo) or (abs(hi) * 0.1 or 1.0)
        left, right = lo - 0.12 * span, hi + 0.45 * span
        ax.hlines(y, left, vals, color="0.82", lw=1.5, zorder=1)
        ax.scatter(vals, y, s=42, color=[colors[j % len(colors)] for j in y], zorder=2)
        digits = max(0, min(4, 2 - math.floor(math.log10(span)))) if span > 0 else 3
        for j, v in enumerate(vals):
            ax.text(v + 0.04 * span, j, f"{v:.{digits}f}", va="center", ha="left", fontsize=9)
        ax.set_xlim(left, right)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.set_yticks(y, labels)
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.tick_params(axis="both", labelsize=9)
        ax.grid(axis="y", visible=False)
        better = "lower is better" if q.lower_is_better else "higher is better"
        ax.set_xlabel(f"{q.unit}, {better}" if q.unit else better, fontsize=9)
        num = (q.chapter.split("_")[0].lstrip("0") or "0") if q.chapter else ""
        ax.set_title("\n".join(textwrap.wrap((f"Ch. {num}: " if num else "") + q.title, 44)),
                     fontsize=10, loc="left")
        if findings and q.finding:
            ax.text(0.0, -0.30, "\n".join(textwrap.wrap(q.finding, 62)), transform=ax.transAxes,
                    va="top", ha="left", fontsize=8, color="0.25")
    if preset_note:
        fig.suptitle(preset_note, fontsize=9, x=0.01, ha="left", color="0.35")
    fig.tight_layout(h_pad=1.2 if not findings else 2.0, w_pad=1.5)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lstrip(".") or "svg"
    # no date, fixed ids: the same results give the same file (the README picture is committed)
    meta = {"Date": None} if fmt in ("svg", "pdf") else {}
    with plt.rc_context({"svg.hashsalt": "gapkit-summary"}):
        fig.savefig(path, format=fmt, bbox_inches="tight", metadata=meta)
    plt.close(fig)
    return path


def draw_panel(panel: Panel, path: Path) -> tuple:
    """One panel, alone, for the book's landing page: a dot chart of the panel's values (each with
    its number), the axis zoomed to them, its label giving the unit and which way is better; the
    title and the finding are HTML text beside it. Every text is at least ``PANEL_FONT_PT`` points.

    Returns ``(path, (width_px, height_px), smallest_font_pt)``; the picture is meant to be shown at
    its natural size (``width_px``), where a point is 4/3 pixel.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.text import Text
    from matplotlib.ticker import MaxNLocator
    from gapkit.book import plots
    plots.use_theme()
    fs = PANEL_FONT_PT
    labels = list(panel.values)
    vals = [panel.values[k] for k in labels]
    y = list(range(len(labels)))
    fig, ax = plt.subplots(figsize=(PANEL_WIDTH_IN, 0.75 + 0.36 * len(labels)))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    lo, hi = min(vals), max(vals)
    span = (hi - lo) or (abs(hi) * 0.1 or 1.0)
    left, right = lo - 0.12 * span, hi + 0.75 * span
    ax.hlines(y, left, vals, color="0.82", lw=1.5, zorder=1)
    ax.scatter(vals, y, s=46, color=[colors[j % len(colors)] for j in y], zorder=2)
    digits = max(0, min(4, 2 - math.floor(math.log10(span)))) if span > 0 else 3
    for j, v in enumerate(vals):
        ax.text(v + 0.05 * span, j, f"{v:.{digits}f}", va="center", ha="left", fontsize=fs)
    ax.set_xlim(left, right)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=3))
    ax.set_yticks(y, labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.tick_params(axis="both", labelsize=fs)
    ax.grid(axis="y", visible=False)
    better = "lower is better" if panel.lower_is_better else "higher is better"
    ax.set_xlabel(f"{panel.unit}, {better}" if panel.unit else better, fontsize=fs)
    fig.tight_layout(pad=0.6)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with plt.rc_context({"svg.hashsalt": f"gapkit-summary-{path.stem}", "savefig.bbox": "standard"}):
        fig.savefig(path, format=path.suffix.lstrip(".") or "svg", metadata={"Date": None}, bbox_inches=None)
    w, h = fig.get_size_inches()
    smallest = min(t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text())
    plt.close(fig)
    return path, (round(w * 96), round(h * 96)), float(smallest)


def main(argv=None) -> Path:
    """``python book/_ext/gapkit_summary.py --preset book --out book/images/summary.svg``: the summary
    figure (with each panel's finding under it) from the cached results, for the README."""
    import argparse
    ap = argparse.ArgumentParser(description="Draw the book's summary figure from cached experiment results.")
    ap.add_argument("--preset", default=None, help="quick, book or paper (default: $GAPKIT_PRESET or book)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "images" / "summary.svg"),
                    help="output file (.svg, or .png)")
    ap.add_argument("--no-findings", action="store_true", help="leave the sentences out of the picture")
    args = ap.parse_args(argv)
    from gapkit.presets import get_preset
    preset = get_preset(args.preset)
    panels, name = collect(preset.name)
    if not panels:
        raise SystemExit(f"no cached results for the {name!r} preset: run the chapters first (python -m gapkit book)")
    out = draw(panels, Path(args.out), preset_note=f"gapkit, preset {name!r}: {preset.note}",
               findings=not args.no_findings)
    for q in panels:
        print(f"[{q.experiment}] {q.finding}")
    print(f"wrote {out} ({len(panels)} panels)")
    return out


if __name__ == "__main__":
    main()
