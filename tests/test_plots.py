"""gapkit.book.plots: results tables as real HTML, results sentences as Markdown, the shared plot pieces."""
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from gapkit.book import plots  # noqa: E402


def cells(html):
    return re.findall(r"<t([dh]) style=\"text-align:(\w+)\">(.*?)</t[dh]>", html)


def test_table_is_html_with_header_units_and_aligned_columns():
    h = plots.table([{"method": "VAE", "test BPD": 0.123456, "epochs": 10},
                     {"method": "IWAE <64>", "test BPD": 0.1, "epochs": None}],
                    formats={"test BPD": ".4f"}, caption="Test & train")
    html = h.data
    assert html.startswith('<table class="gapkit-table">') and "<caption>Test &amp; train</caption>" in html
    got = cells(html)
    assert got[:3] == [("h", "left", "method"), ("h", "right", "test BPD"), ("h", "right", "epochs")]
    assert ("d", "right", "0.1235") in got and ("d", "right", "10") in got and ("d", "right", "0.1000") in got
    assert ("d", "left", "IWAE &lt;64&gt;") in got          # text is escaped
    assert ("d", "right", "&ndash;") in got                 # None is a dash, in its numeric column
    assert "|" not in html


def test_table_rows_as_sequences_callable_formats_and_best():
    h = plots.table([("a", 1.5, -2.0), ("b", 0.5, -1.0)], columns=["name", "x (nats)", "y (nats)"],
                    formats={"x (nats)": lambda v: f"{v:.1f}!"}, best={"x (nats)": "min", "y (nats)": "max"})
    got = cells(h.data)
    assert ("d", "right", "1.5!") in got
    assert ("d", "right", "<strong>0.5!</strong>") in got
    assert ("d", "right", "<strong>-1</strong>") in got
    assert ("d", "right", "-2") in got


def test_table_numpy_numbers_are_numbers():
    got = cells(plots.table([{"k": np.int64(3), "v": np.float32(0.25)}], formats={"v": ".2f"}).data)
    assert ("d", "right", "3") in got and ("d", "right", "0.25") in got


@pytest.mark.parametrize("kwargs, match", [
    ({"rows": [(1, 2)]}, "columns"),
    ({"rows": [{"a": 1}], "formats": {"b": ".2f"}}, "unknown columns"),
    ({"rows": [{"a": 1}], "best": {"a": "lowest"}}, "min"),
    ({"rows": [(1, 2, 3)], "columns": ["a", "b"]}, "3 values for 2 columns"),
])
def test_table_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plots.table(**kwargs)


def test_say_outside_ipython_prints_paragraphs(capsys):
    from IPython.core.interactiveshell import InteractiveShell
    InteractiveShell.instance()  # a plain IPython shell (no kernel), as another test may leave behind
    try:
        assert plots.say("first sentence.", "", "second one.") is None
    finally:
        InteractiveShell.clear_instance()
    assert capsys.readouterr().out == "first sentence.\n\nsecond one.\n"


def test_say_in_ipython_displays_markdown(monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell
    shown = []
    sh = InteractiveShell.instance()
    try:
        monkeypatch.setattr(sh, "kernel", object(), raising=False)  # as in a notebook kernel
        monkeypatch.setattr("IPython.display.display", lambda obj, **kw: shown.append(obj))
        plots.say("a **bold** result", "next")
    finally:
        InteractiveShell.clear_instance()
    assert len(shown) == 1 and shown[0].data == "a **bold** result\n\nnext"


def test_band_ellipse_legend_hbar():
    fig, ax = plt.subplots()
    line = plots.band(ax, [1, 2, 3], [1.0, 2.0, 3.0], [0.1, 0.2, 0.3], label="mean ± sd")
    assert line.get_label() == "mean ± sd" and len(ax.collections) == 1
    plots.band(ax, [1, 2, 3], [1.0, 2.0, 3.0], ([0.5, 1.5, 2.5], [1.5, 2.5, 3.5]), label="quartiles")
    e = plots.ellipse(ax, (0.0, 0.0), [[4.0, 0.0], [0.0, 1.0]], label="q")
    assert sorted((e.width, e.height)) == pytest.approx([4.0, 8.0])   # 2 standard deviations each side
    d = plots.ellipse(ax, (0.0, 0.0), [1.0, 3.0])                       # standard deviations of a diagonal q
    assert sorted((d.width, d.height)) == pytest.approx([4.0, 12.0])
    leg = plots.legend(ax, "right")
    assert leg is not None and leg.get_bbox_to_anchor() is not None
    assert [t.get_text() for t in leg.get_texts()] == ["mean ± sd", "quartiles", "q"]
    with pytest.raises(ValueError, match="where"):
        plots.legend(ax, "inside")
    fig2, ax2 = plt.subplots()
    assert plots.legend(ax2) is None                                   # nothing labelled
    plots.hbar_values(ax2, ["a", "b"], [1.0, 2.0], xlabel="nats")
    assert [t.get_text() for t in ax2.texts] == ["1.00", "2.00"] and ax2.get_xlabel() == "nats"
    plots.curves([1, 2], {"train": [1, 2], "test": [2, 3]}, "epoch", "BPD", ax=ax2, legend="below")
    assert ax2.get_legend() is not None
    plt.close("all")


def test_records_table_reads_nested_records_by_path():
    rows = [{"method": "VAE", "nll": {"K": 100, "nats": 90.0}, "iwae": [1.0, 2.0]},
            {"method": "IWAE", "nll": {"K": 100, "nats": 88.5}, "iwae": [1.5, 2.5]}]
    h = plots.records_table(rows, {"method": "method", "NLL (nats)": "nll.nats", "IWAE-2K (nats)": "iwae.1",
                                   "K": lambda r: r["nll"]["K"]},
                            formats={"NLL (nats)": ".1f"}, best={"NLL (nats)": "min"}).data
    c = cells(h)
    assert [x[2] for x in c[:4]] == ["method", "NLL (nats)", "IWAE-2K (nats)", "K"]
    assert "<strong>88.5</strong>" in h and ">90.0<" in h and ">2.5<" in h
    with pytest.raises(KeyError, match="valid keys there: K, nats"):
        plots.records_table(rows, {"NLL": "nll.bpd"})


def test_band_over_seeds_and_ellipse_view():
    fig, ax = plt.subplots()
    line = plots.band_over_seeds(ax, [0, 1, 2], [[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], label="runs")
    assert list(line.get_ydata()) == [2.0, 2.0, 2.0]
    with pytest.raises(ValueError, match="per_seed must be"):
        plots.band_over_seeds(ax, [0, 1], [[1.0, 2.0, 3.0]])
    plots.ellipse_view(ax, [[0.0, 0.0], [2.0, 2.0]], 3.0)
    assert ax.get_xlim() == (-2.0, 4.0) and ax.get_ylim() == (-2.0, 4.0) and ax.get_aspect() == 1.0
    plt.close(fig)
