"""gapkit.widgets.interact: draws into the Output widget's state, redraws on change, clear errors."""
import ipywidgets as W
import matplotlib.pyplot as plt
import pytest
from IPython.core.interactiveshell import InteractiveShell

from gapkit.widgets import interact, render


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
    box = interact(draw, n=slider, scale=W.fixed(3))
    out = box.children[1]
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
    slider = W.IntSlider(value=1, min=1, max=5)
    out = interact(draw, n=slider).children[1]
    slider.value = 5
    assert out.outputs[0]["name"] == "stderr" and "n too big" in out.outputs[0]["text"]


def test_interact_rejects_bad_arguments():
    with pytest.raises(TypeError, match="callable"):
        interact(3, n=W.IntSlider())
    with pytest.raises(ValueError, match="at least one control"):
        interact(line)
    with pytest.raises(ValueError, match="slider"):
        interact(line, n=3)


def test_progress_bars_switch_off_with_env(monkeypatch):
    from gapkit.progress import enabled, tqdm

    monkeypatch.delenv("GAPKIT_PROGRESS", raising=False)
    assert enabled() and not tqdm(range(3), disable=False).disable
    for off in ("0", "off", "False"):
        monkeypatch.setenv("GAPKIT_PROGRESS", off)
        assert not enabled()
        bar = tqdm(range(3), disable=False)  # an explicit disable=False is overridden
        assert bar.disable and list(bar) == [0, 1, 2]
