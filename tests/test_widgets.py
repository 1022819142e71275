"""gapkit.book.widgets.interact: precomputed frames in the saved state (one per grid value, linked to the
controls on the client side), a live redraw on change (off the grid too), clear errors."""
import ipywidgets as W
import matplotlib.pyplot as plt
import pytest
from IPython.core.interactiveshell import InteractiveShell

import base64

from gapkit.book.widgets import frame_key
from gapkit.book.widgets import interact
from gapkit.book.widgets import nearest
from gapkit.book.widgets import render
from gapkit.book.widgets import render_png


@pytest.fixture
def shell():
    """An in-process IPython shell whose display formatter renders figures as PNG, like a kernel's."""
    from matplotlib_inline.backend_inline import set_matplotlib_formats

    sh = InteractiveShell.instance()
    set_matplotlib_formats("png")
    yield sh
    InteractiveShell.clear_instance()


def line(n, note=""):
    fig, ax = plt.subplots()
    ax.plot(range(n))
    if note:
        print(note)


def test_render_captures_figures_and_text_and_closes_figures(shell):
    before = plt.get_fignums()
    outs = render(line, n=3, note="hello")
    assert outs[0] == {"output_type": "stream", "name": "stdout", "text": "hello\n"}
    assert [o["output_type"] for o in outs[1:]] == ["display_data"]
    assert "image/png" in outs[1]["data"]
    assert plt.get_fignums() == before


def test_interact_sets_output_state_and_redraws_on_change(shell):
    calls = []

    def draw(n, scale):
        calls.append((n, scale))
        line(n, note=f"n={n} scale={scale}")

    slider = W.IntSlider(value=2, min=1, max=5)
    box = interact(draw, n=slider, scale=W.fixed(3), static=False)
    out = box.live
    assert box.children[1] is out and box.stack is None
    assert calls == [(2, 3)]
    assert out.outputs[0]["text"] == "n=2 scale=3\n"
    assert "image/png" in out.outputs[1]["data"]
    slider.value = 4
    assert calls[-1] == (4, 3)
    assert out.outputs[0]["text"] == "n=4 scale=3\n"
    assert box.children[0].children == (slider,)


def test_interact_first_error_raises_later_errors_are_shown(shell):
    def draw(n):
        if n > 2:
            raise ValueError("n too big")
        line(n)

    with pytest.raises(ValueError, match="n too big"):
        interact(draw, n=W.IntSlider(value=3, min=1, max=5))
    with pytest.raises(ValueError, match="n too big"):  # a frame of the grid fails: raises in the cell too
        interact(draw, n=W.IntSlider(value=1, min=1, max=5))
    slider = W.IntSlider(value=1, min=1, max=5)
    out = interact(draw, n=slider, grid={"n": [1, 2]}).live
    slider.value = 5
    assert out.outputs[0]["name"] == "stderr" and "n too big" in out.outputs[0]["text"]


def test_interact_rejects_bad_arguments():
    with pytest.raises(TypeError, match="callable"):
        interact(3, n=W.IntSlider())
    with pytest.raises(ValueError, match="at least one control"):
        interact(line)
    with pytest.raises(ValueError, match="slider"):
        interact(line, n=3)
    with pytest.raises(ValueError, match="SelectionSlider"):
        interact(line, n=W.FloatSlider(1.0, min=0, max=3))
    with pytest.raises(ValueError, match="step 1"):
        interact(line, n=W.IntSlider(2, min=0, max=10, step=2))
    with pytest.raises(ValueError, match="max_frames"):
        interact(line, n=W.IntSlider(2, min=1, max=30), note=W.Dropdown(options=["a", "b", "c"]))
    with pytest.raises(ValueError, match="not controls"):
        interact(line, n=W.IntSlider(2, min=1, max=3), grid={"m": [1]})


def _walk(box, positions):
    """The frame the page shows when control i is at index positions[i] (following the stacks)."""
    w = box.stack
    for p in positions:
        assert isinstance(w, W.Stack)
        w = w.children[p]
    return w


def _links(box):
    return [(link.source, link.target) for link in box.links]


def _stacks(w):
    return [w] + [s for c in w.children if isinstance(c, W.Stack) for s in _stacks(c)] if isinstance(w, W.Stack) else []


def test_static_frames_one_per_grid_value_linked_to_the_controls(shell):
    calls = []

    def draw(K, beta, reps):
        calls.append((K, beta, reps))
        line(K + 1, note=f"K={K} beta={beta}")

    Ks = W.SelectionSlider(options=[1, 2, 4, 8, 16], value=4)
    beta = W.IntSlider(value=3, min=0, max=10)
    box = interact(draw, K=Ks, beta=beta, reps=W.fixed(7), grid={"K": [1, 4, 16], "beta": 3})
    grid_beta = [0, 5, 10]                                                  # 3 values, both ends included
    assert sorted(box.frames) == sorted((k, b) for k in (1, 4, 16) for b in grid_beta)
    assert sorted(calls) == sorted((k, b, 7) for k in (1, 4, 16) for b in grid_beta)   # one draw per frame
    for (k, b), frame in box.frames.items():        # each frame holds its own drawing, as a PNG
        text, png = frame.outputs[0], frame.outputs[-1]
        assert text["text"] == f"K={k} beta={b}\n"
        assert base64.b64decode(png["data"]["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
        assert png["metadata"]["gapkit"]["values"] == {"K": k, "beta": b, "reps": 7}
        assert "gapkit-frame" in frame._dom_classes
    # the page shows, for every position of the controls, the frame of the nearest grid value
    for i, k in enumerate(Ks.options):
        for b in range(beta.min, beta.max + 1):
            assert _walk(box, [i, b]) is box.frames[(nearest(k, [1, 4, 16]), nearest(b, grid_beta))]
    assert _walk(box, [Ks.index, beta.value]) is box.frames[(4, 5)]
    # client-side links: K's index drives the outer stack, beta's value every inner stack
    links = _links(box)
    assert ((Ks, "index"), (box.stack, "selected_index")) in links
    inner = {id(c) for c in box.stack.children}
    assert len(inner) == 3 and all(((beta, "value"), (s, "selected_index")) in links
                                   for s in box.stack.children)
    assert box.live.layout.display == "none" and box.live.outputs == ()
    assert "gapkit-interact" in box._dom_classes
    # the saved state (what the page embeds) holds every frame and the links
    state = W.Widget.get_manager_state(drop_defaults=True)["state"]
    assert all(f.model_id in state for f in box.frames.values())
    assert sum(1 for m in state.values() if m["model_name"] == "LinkModel"
               and m["state"]["target"][0] == "IPY_MODEL_" + box.stack.model_id) == 1


def test_live_redraw_off_the_grid_replaces_the_frames(shell):
    calls = []

    def draw(n):
        calls.append(n)
        line(n, note=f"n={n}")

    slider = W.IntSlider(value=2, min=1, max=9)
    box = interact(draw, n=slider, grid={"n": [1, 5, 9]})
    assert sorted(calls) == [1, 5, 9]
    slider.value = 7                                   # off the grid: drawn live, exactly
    assert calls[-1] == 7
    assert box.live.outputs[0]["text"] == "n=7\n" and "image/png" in box.live.outputs[1]["data"]
    assert box.stack.layout.display == "none" and box.live.layout.display is None


def test_render_png_is_small_and_nearest_and_keys():
    def draw(n):
        fig, ax = plt.subplots(figsize=(11, 4))
        ax.plot(range(n))
        ax.set_title(f"n = {n}")
        plt.show()

    outs = render_png(draw, dpi=72, n=5)
    assert len(outs) == 1 and len(base64.b64decode(outs[0]["data"]["image/png"])) < 60_000
    assert nearest(3, [1, 4, 16]) == 4 and nearest("b", ["a", "b"]) == "b"
    with pytest.raises(ValueError, match="not on the grid"):
        nearest("c", ["a", "b"])
    assert frame_key({"K": 4, "beta": 0.5}) == "K=4|beta=0.5"


def test_progress_bars_switch_off_with_env(monkeypatch):
    from gapkit.progress import enabled, tqdm

    monkeypatch.delenv("GAPKIT_PROGRESS", raising=False)
    assert enabled() and not tqdm(range(3), disable=False).disable
    for off in ("0", "off", "False"):
        monkeypatch.setenv("GAPKIT_PROGRESS", off)
        assert not enabled()
        bar = tqdm(range(3), disable=False)  # an explicit disable=False is overridden
        assert bar.disable and list(bar) == [0, 1, 2]
