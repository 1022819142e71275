"""The one-screen summary figure of the book's findings (the intro page), from cached results.

Each chapter's experiment contributes one panel when its ``results.json`` exists for the build's
preset (``$GAPKIT_PRESET``, default ``book``). A panel is a few numbers in one unit (BPD or nats)
drawn as labelled bars, plus one sentence, computed from the numbers, that states the finding.

Two ways to contribute a panel:

* an adapter here, ``@adapter("experiment-name")`` over ``func(results) -> Panel``;
* or, with no code here, a top-level ``"book_summary"`` entry in the experiment's results::

      {"book_summary": {"title": "...", "unit": "BPD", "values": {"label": 0.12, ...},
                   "finding": "one sentence computed from the numbers",
                   "lower_is_better": true}}

Panels are ordered by the experiments' ``chapter`` field.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Panel", "adapter", "collect", "draw"]

_ADAPTERS: dict = {}


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


@adapter("vae-basics")
def _vae_basics(res: dict) -> Panel:
    m = res["metrics"]
    K = res["config"]["preset"]["eval_K"]
    tr, te = m["train"], m["test"]
    iw = te[f"iwae{K}_bpd"]
    values = {"train ELBO": tr["elbo_bpd"], "test ELBO": te["elbo_bpd"], f"test IWAE-{K}": iw}
    gen = te["elbo_bpd"] - tr["elbo_bpd"]
    tight = te["elbo_bpd"] - iw
    finding = (f"On test images IWAE-{K} is {abs(tight):.3f} BPD {'tighter' if tight > 0 else 'looser'} than "
               f"the ELBO, and the test ELBO is {abs(gen):.3f} BPD {'worse' if gen > 0 else 'better'} "
               f"than on training images.")
    return Panel("vae-basics", "", "A VAE, trained: negative bounds", "BPD", values, finding)


@adapter("elbo-tightness")
def _elbo_tightness(res: dict) -> Panel:
    f = res["metrics"]["mnist_final_epoch"]
    K = next(k[len("iwae"):-len("_bpd_amortized")] for k in f if k.startswith("iwae") and k.endswith("_bpd_amortized"))
    values = {"ELBO, amortized q": f["elbo_bpd_amortized"], f"IWAE-{K}, amortized q": f[f"iwae{K}_bpd_amortized"],
              "ELBO, optimal q": f["elbo_bpd_optimal"], f"IWAE-{K}, optimal q": f[f"iwae{K}_bpd_optimal"]}
    amort = f["elbo_bpd_amortized"] - f["elbo_bpd_optimal"]
    iw = f["elbo_bpd_amortized"] - f[f"iwae{K}_bpd_amortized"]

    def tighter(d):
        return f"{abs(d):.4f} BPD {'tighter' if d > 0 else 'looser'}"
    finding = (f"On test images, the ELBO with q optimized per image is {tighter(amort)} than with the encoder's q "
               f"(the amortization gap); IWAE-{K} with the encoder's q is {tighter(iw)} than its ELBO.")
    return Panel("elbo-tightness", "", "How tight is the ELBO? (test, negative bounds)", "BPD", values, finding)


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
        try:
            panel = _ADAPTERS[name](res) if name in _ADAPTERS else _generic(name, res)
        except (KeyError, TypeError, ValueError):
            panel = _generic(name, res)  # an adapter that no longer fits the results: fall back
        if panel is None:
            continue
        panel.chapter = exp.chapter
        panels.append(panel)
    panels.sort(key=lambda q: (q.chapter or "~", q.experiment))
    return panels, p.name


def draw(panels: list, path: Path, preset_note: str = "") -> Path:
    """Draw ``panels`` (one small bar chart each, at most 4 per row) into the SVG file ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from gapkit import plots
    plots.use_theme()
    n = max(len(panels), 1)
    ncol = min(n, 4)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.3 * ncol + 0.6, 2.3 * nrow + 0.4), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, ax in enumerate(axes.flat):
        if i >= len(panels):
            ax.set_axis_off()
            continue
        q = panels[i]
        labels = list(q.values)
        vals = [q.values[k] for k in labels]
        y = range(len(labels))
        ax.barh(y, vals, color=[colors[j % len(colors)] for j in y])
        ax.set_yticks(list(y), labels)
        ax.invert_yaxis()
        lo, hi = min(vals + [0.0]), max(vals + [0.0])
        span = (hi - lo) or 1.0
        ax.set_xlim(lo - 0.4 * span if lo < 0 else 0, hi + 0.4 * span if hi > 0 else 0)
        for j, v in enumerate(vals):
            ax.text(v + (0.02 if v >= 0 else -0.02) * span, j, f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}",
                    va="center", ha="left" if v >= 0 else "right", fontsize=9)
        better = "lower is better" if q.lower_is_better else "higher is better"
        ax.set_xlabel(f"{q.unit} ({better})" if q.unit else better)
        num = (q.chapter.split("_")[0].lstrip("0") or "0") if q.chapter else ""
        ax.set_title((f"Ch. {num}: " if num else "") + q.title, fontsize=10, loc="left")
    if preset_note:
        fig.suptitle(preset_note, fontsize=9, x=0.01, ha="left", color="0.35")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg")
    plt.close(fig)
    return path
