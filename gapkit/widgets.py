"""Sliders that redraw a figure, safe to execute unattended (nbmake, jupyter-book, Colab).

``interact(draw, K=slider, beta=slider, reps=100)`` shows the controls and, under them, what
``draw(**values)`` draws (figures, printed text); moving a control calls ``draw`` again with the new
values. It is what every chapter's interactive cell uses, in place of ``ipywidgets.interact``.

Why not ``ipywidgets.interact``: it captures output with ``with output_widget:``. Executors that mimic
a front end (nbclient, and so nbmake and jupyter-book) answer captured output by sending a message
on the kernel's shell channel from inside their IOPub reader; that send can make the waiting shell
poll miss the cell's reply, and the executor stalls until the cell timeout (seen here in about one
run in three; jupyter/nbclient#312). ``interact`` here never captures through the widget: it renders
``draw``'s output in the kernel (``IPython.utils.capture``) and sets the ``Output`` widget's
``outputs`` state directly, which travels as an ordinary IOPub update. The saved widget state still
holds the first drawing, so the rendered book shows the figure under its sliders.
"""
from __future__ import annotations

import traceback
from typing import Any, Callable

__all__ = ["interact", "render"]


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
    outputs: list[dict] = []
    if cap.stdout:
        outputs.append({"output_type": "stream", "name": "stdout", "text": cap.stdout})
    outputs += [{"output_type": "display_data", "data": dict(o.data), "metadata": dict(o.metadata or {})}
                for o in cap.outputs]
    if cap.stderr:
        outputs.append({"output_type": "stream", "name": "stderr", "text": cap.stderr})
    return outputs


def interact(draw: Callable[..., Any], **controls):
    """Display ``controls`` over an output area showing ``draw(**values)``; redraw when one moves.

    Each keyword is a parameter of ``draw``: an ipywidgets value widget (slider, dropdown, ...) whose
    ``.value`` is passed, or any other object, passed unchanged every time (like
    ``ipywidgets.fixed``). The first drawing happens here, so an error in ``draw`` raises in the
    cell; later errors (from moving a control) are shown in the output area instead. Returns the
    ``VBox`` (controls, output).
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
    out = W.Output()

    def values() -> dict:
        return {**fixed, **{k: c.value for k, c in live.items()}}

    def redraw(*_):
        try:
            out.outputs = tuple(render(draw, **values()))
        except Exception:  # a live callback: show the error where the figure would be
            out.outputs = ({"output_type": "stream", "name": "stderr", "text": traceback.format_exc()},)

    out.outputs = tuple(render(draw, **values()))  # the first drawing raises in the cell
    for c in live.values():
        c.observe(redraw, names="value")
    box = W.VBox([W.HBox(list(live.values())), out])
    display(box)
    return box
