"""Results as nested data read through one accessor, and the new-chapter recipe of CONTRIBUTING.md:
an experiment defined in one file (here, in this test) runs, its results read through
``Results.at``, and the book's summary picks up its panel from the experiment's own declaration."""
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from gapkit import experiments
from gapkit.results import Results

ROOT = Path(__file__).resolve().parents[1]


def test_results_path_access_and_errors():
    r = Results({"iwae": {"K": 10, "bpd": {"amortized": [0.5, 0.4]}}, "rows": [{"method": "VAE", "nats": -90.0}]})
    assert r.at("iwae.K") == 10 and r.at("iwae.bpd.amortized.1") == 0.4 and r.at("rows.0.method") == "VAE"
    assert isinstance(r["iwae"], Results) and isinstance(r["rows"][0], Results)   # nested dicts wrapped at load
    assert r["iwae"].at("bpd.amortized") == [0.5, 0.4]                             # plain indexing still works
    assert json.loads(json.dumps(r)) == r                                            # still plain JSON data
    with pytest.raises(KeyError, match=r"no 'nats' in results at iwae.*valid keys there: K, bpd"):
        r.at("iwae.nats")
    with pytest.raises(KeyError, match="valid keys there: iwae, rows"):
        r.at("elbo.bpd")
    with pytest.raises(KeyError, match=r"valid indices: 0\.\.0"):
        r.at("rows.3.method")
    with pytest.raises(KeyError, match="not a dict"):
        r.at("iwae.K.value")
    assert r.at("iwae.nats", None) is None


def _summary_module():
    path = ROOT / "book" / "_ext" / "gapkit_summary.py"
    spec = importlib.util.spec_from_file_location("gapkit_summary_for_test", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_a_new_chapter_is_one_experiment_file(tmp_path, monkeypatch):
    """CONTRIBUTING.md, "A new chapter": the experiment (registered by the decorator), its settings per
    preset, its results without parameters in key names, and its summary panel (``book_summary``)."""
    monkeypatch.setenv("GAPKIT_RESULTS_DIR", str(tmp_path))
    monkeypatch.setattr(experiments, "_REGISTRY", dict(experiments.registry()))

    import torch
    from gapkit.estimators import evaluate

    @experiment_toy
    def toy(ctx):
        data = ctx.data()
        model = ctx.model(data)                                   # untrained: the toy needs no training
        x = data.fixed("test", seed=ctx.seed)[:ctx.settings["n"]]
        K = ctx.settings["K"]
        with torch.no_grad():
            elbo = evaluate(model, x, "elbo", K, seed=ctx.seed).mean().item()
            iw = evaluate(model, x, "iwae", K, seed=ctx.seed).mean().item()
        res = {"elbo": {"K": K, "nats": elbo}, "iwae": {"K": K, "nats": iw}}
        res["book_summary"] = {"title": "Toy: bounds of an untrained VAE", "unit": "nats", "lower_is_better": False,
                               "values": {"ELBO": elbo, f"IWAE-{K}": iw},
                               "finding": f"IWAE-{K} is {iw - elbo:.2f} nats above the ELBO."}
        return res

    res = experiments.run("toy-chapter", preset="quick", progress=False)
    assert isinstance(res, Results)
    assert res.at("iwae.K") == 4 and res.at("iwae.nats") >= res.at("elbo.nats") - 1e-6
    assert experiments.load("toy-chapter", preset="quick").at("elbo.nats") == res.at("elbo.nats")
    with pytest.raises(KeyError, match="valid keys there: K, nats"):
        res.at("iwae.bpd")
    panels, preset = _summary_module().collect("quick")
    assert preset == "quick" and [p.experiment for p in panels] == ["toy-chapter"]   # nothing else is cached here
    p = panels[0]
    assert p.chapter == "99_toy" and p.unit == "nats" and not p.lower_is_better
    assert p.values == {"ELBO": res.at("elbo.nats"), "IWAE-4": res.at("iwae.nats")}
    assert p.finding == res.at("book_summary.finding")


def experiment_toy(func):
    return experiments.experiment("toy-chapter", "A toy chapter: ELBO and IWAE-K of an untrained VAE",
                                  chapter="99_toy", cost={"quick": "1 s CPU"},
                                  settings={"quick": dict(n=20, K=4), "book": dict(n=100, K=10)})(func)


def test_every_chapter_declares_its_summary_panel():
    """Every experiment module (bits-back aside, which still has an adapter in the extension) has a
    ``book_summary(res)`` that the experiment puts into its results."""
    mod = _summary_module()
    for name, exp in experiments.registry().items():
        if not exp.func.__module__.startswith("gapkit.experiments."):
            continue  # an experiment another test registered
        module = sys.modules[exp.func.__module__]
        assert hasattr(module, "book_summary") or name in mod._ADAPTERS, name


def test_chapter_links_in_docstrings_point_at_chapters():
    """Docstrings link chapters into the rendered book (``html.baseurl`` of ``_config.yml``), and
    every link names a chapter that exists; ``scripts/chapter_links.py`` writes them."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import chapter_links
    finally:
        sys.path.pop(0)
    base, slugs = chapter_links.base_url(), set(chapter_links.chapters().values())
    assert base.startswith("https://") and "03_wake_sleep" in slugs
    links = [(p, m) for p in sorted((ROOT / "gapkit").rglob("*.py"))
             for m in re.findall(r"<(https?://[^>]*notebooks/[^>]*)>`_", p.read_text())]
    assert len(links) >= 30
    for path, url in links:
        assert url.startswith(base + "notebooks/") and url[len(base + "notebooks/"):-len(".html")] in slugs, (path, url)
    # the files of this change have no chapter reference left that is not a link
    mine = [ROOT / "gapkit" / "experiments" / f"{n}.py" for n in ("vae_basics", "elbo_tightness", "refinement", "bsvi")]
    assert all(chapter_links.rewrite(p, check=True) == [] for p in mine)
