"""Sliders that redraw a figure, live in a kernel and precomputed in the rendered book.

``interact(draw, K=slider, beta=slider, reps=100)`` shows the controls and, under them, what
``draw(**values)`` draws (figures, printed text). It is what every chapter's interactive cell uses,
in place of ``ipywidgets.interact``, and it gives both behaviours:

* **In the static book** (no kernel): at execution time ``draw`` is called once for every point of
  the grid of the controls' values (``grid=``; by default every position of each control; with two
  controls, every pair) and each drawing is saved, as a PNG, in an ``Output`` widget. The frames sit
  in ``Stack`` widgets (one level per control), and each control is linked on the client side
  (``ipywidgets.jslink``: a link model that the embedded widget manager runs in the page) to the
  stacks' ``selected_index``. Moving a slider in the rendered page swaps the frame, offline. A
  position between two grid values shows the frame of the nearest grid value.
* **In a live kernel**: moving a control calls ``draw`` again with the exact values (on or off the
  grid); the precomputed frames are then hidden and the live drawing shown instead.

Which controls can be precomputed: selection widgets (``SelectionSlider``, ``Dropdown``,
``ToggleButtons``, ...; linked by their ``index``) and ``IntSlider`` with step 1 and min >= 0
(linked by its ``value``). A ``FloatSlider`` cannot drive a stack index: use a ``SelectionSlider``
over the float values instead.

Why not ``ipywidgets.interact``: it captures output with ``with output_widget:``. Executors that mimic
a front end (nbclient, and so nbmake and jupyter-book) answer captured output by sending a message
on the kernel's shell channel from inside their IOPub reader; that send can make the waiting shell
poll miss the cell's reply, and the executor stalls until the cell timeout (seen here in about one
run in three; jupyter/nbclient#312). ``interact`` here never captures through the widget: it renders
``draw``'s output in the kernel (``IPython.utils.capture``) and sets the ``Output`` widgets'
``outputs`` state directly, which travels as an ordinary IOPub update.
"""
from __future__ import annotations

import base64
import io
import itertools
import numbers
import traceback
from typing import Any, Callable

__all__ = ["interact", "render", "render_png", "frame_key", "nearest", "MAX_FRAMES", "DPI"]

MAX_FRAMES = 64     # frames one widget may precompute (page weight: see the chapters' closing notes)
DPI = 72            # resolution of the precomputed PNG frames
FRAME_CLASS = "gapkit-frame"
ROOT_CLASS = "gapkit-interact"


def render(draw: Callable[..., Any], **values) -> list[dict]:
    """Run ``draw(**values)`` and return what it showed as notebook outputs (``nbformat`` dicts).

    Figures that ``draw`` opens are displayed (in the formats the kernel's display formatter is set
    to: SVG in the book) and closed; printed text becomes a ``stream`` output. An exception in
    ``draw`` propagates, with whatever was captured before it lost.
    """
    import matplotlib.pyplot as plt
    from IPython.display import display
    from IPython.utils.capture import capture_output

    before = set(plt.get_fignums())
    with capture_output() as cap:
        try:
            draw(**values)  # may call plt.show() itself (the inline backend then displays and closes)
            for num in sorted(set(plt.get_fignums()) - before):
                display(plt.figure(num))
        finally:
            for num in set(plt.get_fignums()) - before:
                plt.close(num)
    return _outputs(cap, [{"output_type": "display_data", "data": dict(o.data), "metadata": dict(o.metadata or {})}
                          for o in cap.outputs])


def _outputs(cap, displayed: list[dict]) -> list[dict]:
    outputs: list[dict] = []
    if cap.stdout:
        outputs.append({"output_type": "stream", "name": "stdout", "text": cap.stdout})
    outputs += displayed
    if cap.stderr:
        outputs.append({"output_type": "stream", "name": "stderr", "text": cap.stderr})
    return outputs


def _png(fig, dpi: int) -> bytes:
    """The figure as a compact PNG: drawn at ``dpi``, then reduced to a 256-colour palette."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow comes with matplotlib
        return buf.getvalue()
    im = Image.open(io.BytesIO(buf.getvalue())).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    im.save(out, format="PNG", optimize=True)
    return out.getvalue()


def render_png(draw: Callable[..., Any], dpi: int = DPI, **values) -> list[dict]:
    """Like :func:`render`, but figures become PNG outputs at ``dpi`` (palette PNG, small enough to
    precompute many of them into a page), whatever the kernel's display formats are. Each figure's
    output carries ``metadata["gapkit"] = {"values": values}``: the values it was drawn at."""
    import matplotlib.pyplot as plt
    from IPython.utils.capture import capture_output

    before = set(plt.get_fignums())
    show = plt.show
    pngs: list[dict] = []
    plt.show = lambda *a, **k: None   # keep the figures open; they are saved below, then closed
    try:
        with capture_output() as cap:
            try:
                draw(**values)
                for num in sorted(set(plt.get_fignums()) - before):
                    fig = plt.figure(num)
                    w, h = fig.get_size_inches()
                    pngs.append({"output_type": "display_data",
                                 "data": {"image/png": base64.b64encode(_png(fig, dpi)).decode("ascii"),
                                          "text/plain": f"<Figure {w:g}x{h:g} in, {values}>"},
                                 "metadata": {"gapkit": {"values": _jsonable(values)}}})
            finally:
                for num in set(plt.get_fignums()) - before:
                    plt.close(num)
    finally:
        plt.show = show
    others = [{"output_type": "display_data", "data": dict(o.data), "metadata": dict(o.metadata or {})}
              for o in cap.outputs]
    return _outputs(cap, others + pngs)


def _jsonable(values: dict) -> dict:
    out = {}
    for k, v in values.items():
        if isinstance(v, (bool, str)) or v is None:
            out[k] = v
        elif isinstance(v, numbers.Integral):
            out[k] = int(v)
        elif isinstance(v, numbers.Real):
            out[k] = float(v)
        else:
            out[k] = str(v)
    return out


def nearest(value, grid: list):
    """The grid value a control's ``value`` is shown with in the static page: the same value when
    it is on the grid, else (numbers only) the nearest one (the first of two equally near)."""
    for g in grid:
        if g == value:
            return g
    if isinstance(value, numbers.Real) and all(isinstance(g, numbers.Real) for g in grid):
        return min(grid, key=lambda g: abs(g - value))
    raise ValueError(f"the value {value!r} is not on the grid {list(grid)} (only numbers are matched to the "
                     "nearest grid value)")


def frame_key(values: dict) -> str:
    """A frame's name from the grid values it shows, e.g. ``"K=8|beta=0.5"``."""
    return "|".join(f"{k}={v}" for k, v in values.items())


def _positions(name: str, c) -> tuple[str, list]:
    """(trait to link, the value at each index of that trait) for a control that can drive a stack."""
    import ipywidgets as W

    if isinstance(c, W.widgets.widget_selection._Selection):
        return "index", list(c._options_values)
    if isinstance(c, (W.IntSlider, W.BoundedIntText)):
        step = getattr(c, "step", 1)
        if step != 1 or c.min < 0:
            raise ValueError(f"interact: the control {name!r} (an {type(c).__name__} with min {c.min}, step {step}) "
                             "cannot drive the precomputed frames: give it step 1 and min >= 0, or use a "
                             "SelectionSlider over its values")
        return "value", list(range(0, c.max + 1))   # index i shows value i (below min: never reached)
    raise ValueError(f"interact: the control {name!r} is a {type(c).__name__}, which cannot drive the precomputed "
                     "frames; use a SelectionSlider (numbers), a Dropdown (choices) or an IntSlider with step 1, "
                     "or pass static=False")


def _grid_for(name: str, c, grid: dict | None) -> list:
    import ipywidgets as W

    if isinstance(c, W.widgets.widget_selection._Selection):
        allv = list(c._options_values)
    else:
        allv = list(range(c.min, c.max + 1))
    if grid and isinstance(grid.get(name), numbers.Integral) and not isinstance(grid.get(name), bool):
        n = int(grid[name])     # n values spread evenly over the control's positions, both ends included
        if n < 1:
            raise ValueError(f"interact: the grid for {name!r} must be at least 1 value, got {n}")
        if n >= len(allv):
            return allv
        idx = sorted({round(i * (len(allv) - 1) / max(n - 1, 1)) for i in range(n)})
        return [allv[i] for i in idx]
    if grid and name in grid:
        g = list(grid[name])
        if not g:
            raise ValueError(f"interact: the grid for {name!r} is empty")
        return g
    return allv


def interact(draw: Callable[..., Any], *, static: bool = True, grid: dict | None = None, dpi: int = DPI,
             max_frames: int = MAX_FRAMES, **controls):
    """Display ``controls`` over ``draw(**values)``: precomputed frames for the static page, a live
    redraw in a kernel.

    Each keyword is a parameter of ``draw``: an ipywidgets value widget (slider, dropdown, ...) whose
    ``.value`` is passed, or any other object, passed unchanged every time (like
    ``ipywidgets.fixed``). ``grid`` maps a control's name to the values to precompute, or to a number
    n of values spread evenly over its positions, both ends included (default: every position); the frames are the product of the controls' grids, at most
    ``max_frames`` (PNG at ``dpi``). ``static=False`` skips the frames (a widget that only works in
    a live kernel). The drawing at the controls' initial values happens first, so an error in
    ``draw`` raises in the cell; later errors (from moving a control) are shown in the output area
    instead. Returns the ``VBox`` (controls, frames, live output); its attribute ``frames`` maps each
    frame's grid values (a tuple in the controls' order) to its ``Output`` widget, ``links`` holds the
    client-side links, ``stack`` the outer ``Stack`` (None when not static) and ``live`` the live output.
    """
    import ipywidgets as W
    from IPython.display import display

    if not callable(draw):
        raise TypeError(f"draw must be callable, got {type(draw).__name__}")
    if not controls:
        raise ValueError("interact needs at least one control, e.g. K=ipywidgets.IntSlider(...)")
    live = {k: c for k, c in controls.items() if isinstance(c, W.ValueWidget)}
    fixed = {k: (c.value if isinstance(c, W.fixed) else c) for k, c in controls.items() if k not in live}
    if not live:
        raise ValueError(f"none of {sorted(controls)} is a widget with a value; give at least one slider "
                         "or dropdown")
    unknown = sorted(set(grid or {}) - set(live))
    if unknown:
        raise ValueError(f"interact: grid for {unknown}, which are not controls; controls: {sorted(live)}")
    out = W.Output()

    def values() -> dict:
        return {**fixed, **{k: c.value for k, c in live.items()}}

    frames: dict = {}
    jslinks: list = []
    stack = None
    if static:
        names = list(live)
        links = {k: _positions(k, c) for k, c in live.items()}
        grids = {k: _grid_for(k, live[k], grid) for k in names}
        n = 1
        for k in names:
            n *= len(grids[k])
        if n > max_frames:
            raise ValueError(f"interact: {n} frames to precompute ({' x '.join(f'{len(grids[k])} {k}' for k in names)}) "
                             f"> max_frames={max_frames}; give a coarser grid=... or raise max_frames")
        for key in itertools.product(*(grids[k] for k in names)):  # every frame, in the controls' order
            v = {**fixed, **dict(zip(names, key))}
            leaf = W.Output(layout=W.Layout(min_height="2em"))
            leaf.add_class(FRAME_CLASS)
            outs = render_png(draw, dpi=dpi, **v)  # an error here raises in the cell
            for o in outs:
                if "gapkit" in o.get("metadata", {}):
                    o["metadata"]["gapkit"]["controls"] = names
            leaf.outputs = tuple(outs)
            frames[key] = leaf
        stacks: dict = {k: [] for k in names}

        def build(level: int, prefix: tuple):
            if level == len(names):
                return frames[prefix]
            k = names[level]
            trait, pos = links[k]
            cache: dict = {}
            children = []
            for p in pos:
                g = nearest(p, grids[k]) if p in grids[k] or isinstance(p, numbers.Real) else grids[k][0]
                if g not in cache:
                    cache[g] = build(level + 1, prefix + (g,))
                children.append(cache[g])
            s = W.Stack(children=children, selected_index=int(getattr(live[k], trait)))
            stacks[k].append(s)
            return s

        stack = build(0, ())
        for k in names:
            trait = links[k][0]
            for s in stacks[k]:
                jslinks.append(W.jslink((live[k], trait), (s, "selected_index")))
        out.layout.display = "none"   # the live drawing replaces the frames once a control moves in a kernel
    else:
        out.outputs = tuple(render(draw, **values()))  # the first drawing raises in the cell

    def redraw(*_):
        try:
            out.outputs = tuple(render(draw, **values()))
        except Exception:  # a live callback: show the error where the figure would be
            out.outputs = ({"output_type": "stream", "name": "stderr", "text": traceback.format_exc()},)
        if stack is not None:
            stack.layout.display = "none"
            out.layout.display = None

    for c in live.values():
        c.observe(redraw, names="value")
    box = W.VBox([W.HBox(list(live.values())), *([stack] if stack is not None else []), out])
    box.add_class(ROOT_CLASS)
    box.frames = frames
    box.links = jslinks
    box.live = out
    box.stack = stack
    display(box)
    return box
