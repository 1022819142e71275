"""Sphinx extension for the gapkit book (loaded through ``_config.yml``: ``sphinx.local_extensions``).

* **Offline viewer assets.** MathJax, RequireJS and ``@jupyter-widgets/html-manager`` are fetched
  from the npm registry by ``scripts/fetch_assets.py`` into ``_build/assets`` (or
  ``$GAPKIT_ASSETS_DIR``), copied to ``_static/gapkit-vendor/`` in the HTML output, and the pages point
  at them (``mathjax_path``, ``nb_ipywidgets_js``). Without npm the CDN links stay, and the build
  says so. ``GAPKIT_BOOK_ASSETS=cdn`` keeps the CDN links on purpose.
* **The Colab badge** at the top of each chapter is drawn from a local copy, so that it shows
  offline too; the link still goes to Colab.
* ``{gapkit-experiments}`` and ``{gapkit-presets}``: tables generated from the experiments
  registry (``python -m gapkit list``): each experiment, its chapter, and its ``cost`` per preset,
  with the wall time measured for the results in the cache when there are any.
* ``{gapkit-summary}``: the summary of the book's findings (``gapkit_summary.py``), drawn after every
  chapter has run, from the cached results: one panel per experiment, shown at its natural size
  with its finding beside it.
* ``{gapkit-report}``: the reproduction report (:mod:`gapkit.reproduction`), drawn like the summary
  after every chapter has run: each finding, the paper's value, and a verdict with gapkit's value
  for each preset that has results.
* ``static/gapkit.css``: results tables, printed output that wraps, wide equations that scroll in
  their own box, and the summary's layout.

Pages using these directives are rebuilt on every build (they depend on results, not on their
source).
"""
from __future__ import annotations

import html
import importlib.util
import os
import re
import shutil
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from sphinx.util import logging

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
LOCAL_BADGE = "/book/_ext/colab-badge.svg"      # relative to the source folder
VENDOR = "gapkit-vendor"                         # under _static/ in the output (the theme owns _static/vendor)
WIDGETS_CDN = "https://cdn.jsdelivr.net/npm/"    # third-party widget modules, as myst-nb's default


def _fetch_module():
    spec = importlib.util.spec_from_file_location("gapkit_fetch_assets", ROOT / "scripts" / "fetch_assets.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def assets_dir() -> Path:
    return Path(os.environ.get("GAPKIT_ASSETS_DIR") or ROOT / "_build" / "assets")


# --------------------------------------------------------------------------- offline assets
def _use_local_assets(app, config):
    app.gapkit_assets = None
    mode = os.environ.get("GAPKIT_BOOK_ASSETS", "local")
    if mode not in ("local", "cdn"):
        raise ValueError(f"GAPKIT_BOOK_ASSETS must be 'local' or 'cdn', got {mode!r}")
    if mode == "cdn":
        logger.info("[gapkit] GAPKIT_BOOK_ASSETS=cdn: math and widgets load from CDNs (need network)")
        return
    fetch = _fetch_module()
    man = fetch.fetch(assets_dir(), quiet=True)
    if man is None:
        why = "npm not found" if not fetch.npm_available() else "npm could not fetch them"
        logger.info(f"[gapkit] {why}: the book keeps the CDN links for MathJax, RequireJS and the widget "
                    "manager; math and widgets need network access. Run scripts/fetch_assets.py where npm "
                    "is available for an offline book.")
        return
    pk = man["packages"]
    config.mathjax_path = f"{VENDOR}/mathjax/{pk['mathjax']['entry']}"
    config.nb_ipywidgets_js = {
        f"{VENDOR}/requirejs/{pk['requirejs']['entry']}": {},
        f"{VENDOR}/html-manager/{pk['html-manager']['entry']}": {"data-jupyter-widgets-cdn": WIDGETS_CDN},
    }
    app.gapkit_assets = man
    logger.info("[gapkit] offline viewer assets: " +
                ", ".join(f"{k} {v['version']}" for k, v in pk.items()))


def _copy_assets(app, exception):
    if exception is not None or app.gapkit_assets is None or app.builder.format != "html":
        return
    src = assets_dir()
    dst = Path(app.outdir) / "_static" / VENDOR
    stamp = dst / "manifest.json"
    if stamp.is_file() and stamp.read_text() == (src / "manifest.json").read_text():
        return
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)


# The widget manager (html-manager 1.0.x) typesets widget labels with the MathJax 2 call
# ``MathJax.Hub.Queue(["Typeset", MathJax.Hub, el])``; the book loads MathJax 3, which has no
# ``Hub``, so every labelled widget threw a TypeError. Map the call onto MathJax 3's API.
MATHJAX2_SHIM = """(function () {
  function shim() {
    var mj = window.MathJax;
    if (mj && mj.version && !mj.Hub) {
      mj.Hub = {Queue: function (cmd) {
        var el = cmd && cmd[2];
        if (el && mj.typesetPromise) { mj.typesetPromise([el]).catch(function () {}); }
      }};
    }
  }
  shim();
  document.addEventListener("DOMContentLoaded", shim);
})();"""


# --------------------------------------------------------------------------- Colab badge
def _local_colab_badge(app, doctree):
    for img in doctree.findall(nodes.image):
        if img.get("uri") == COLAB_BADGE:
            img["uri"] = LOCAL_BADGE
            if "candidates" in img.attributes:
                del img["candidates"]


# --------------------------------------------------------------------------- generated pages
def _note_dynamic(env, docname):
    if not hasattr(env, "gapkit_dynamic"):
        env.gapkit_dynamic = set()
    env.gapkit_dynamic.add(docname)


def _table(header, rows, widths=None):
    table = nodes.table(classes=["gapkit-table"])
    group = nodes.tgroup(cols=len(header))
    table += group
    for w in widths or [1] * len(header):
        group += nodes.colspec(colwidth=w)
    head = nodes.thead()
    group += head
    head += nodes.row("", *[nodes.entry("", nodes.paragraph(text=h)) for h in header])
    body = nodes.tbody()
    group += body
    for cells in rows:
        row = nodes.row()
        for c in cells:
            entry = nodes.entry()
            entry += c if isinstance(c, nodes.Node) else nodes.paragraph(text=str(c))
            row += entry
        body += row
    return table


def _chapter_cell(env, name: str, chapter: str):
    """The experiment's name, and under it a link to its chapter when that page is in the book."""
    para = nodes.paragraph()
    para += nodes.literal(text=name)
    if not chapter:
        return para
    para += nodes.raw("", "<br/>", format="html")
    num = chapter.split("_")[0].lstrip("0") or "0"
    doc = f"notebooks/{chapter}"
    if doc in env.found_docs:
        from sphinx.addnodes import pending_xref
        ref = pending_xref("", refdomain="std", reftype="doc", reftarget="/" + doc, refexplicit=True,
                           refdoc=env.docname)
        ref += nodes.inline(text=f"chapter {num}")
        para += ref
    else:
        para += nodes.emphasis(text=f"chapter {num} (not yet in the book)")
    return para


def _measured(name: str, preset: str) -> str:
    from gapkit import experiments
    try:
        res = experiments.load(name, preset=preset)
    except (FileNotFoundError, ValueError):
        return ""
    prov = res.get("provenance", {})
    t = prov.get("wall_time_s")
    if not isinstance(t, (int, float)):
        return ""
    when = f"{t:.0f} s" if t < 120 else f"{t / 60:.1f} min"
    dev = str(prov.get("device", "")).split(", torch")[0]
    dev = re.sub(r"^cpu \((\d+) threads?\)", lambda m: f"CPU, {m.group(1)} thread" + ("s" if m.group(1) != "1" else ""),
                 dev)
    return f"{when} on {dev}" if dev else when


class ExperimentsTable(Directive):
    """Every registered experiment: chapter, description, and its cost per preset."""

    has_content = False

    def run(self):
        env = self.state.document.settings.env
        _note_dynamic(env, env.docname)
        from gapkit.cost import expected
        from gapkit.experiments import registry
        from gapkit.presets import PRESETS
        rows = []
        exps = sorted(registry().items(), key=lambda kv: (kv[1].chapter or "~", kv[0]))
        for name, e in exps:
            row = [_chapter_cell(env, name, e.chapter), e.description]
            for p in PRESETS:
                # paper: the estimate from a measured smoke run (gapkit.cost), never typed by hand
                text = (expected(name, p) if p == "paper" else e.cost.get(p, "")) or "—"
                meas = _measured(name, p)
                if meas:
                    text += f" (measured here: {meas})"
                row.append(text)
            rows.append(row)
        header = ["experiment", "what it computes"] + [f"{p}" for p in PRESETS]
        return [_table(header, rows, [4, 8] + [3] * len(PRESETS))]


class PresetsTable(Directive):
    """The presets and what each is for (``gapkit.presets.PRESETS``)."""

    has_content = False

    def run(self):
        from gapkit.presets import PRESETS
        rows = []
        for name, p in PRESETS.items():
            data = f"{p.dataset} ({p.binarization})" + (f", {p.train_subset:,} training images" if p.train_subset else "")
            model = f"{'-'.join(str(h) for h in p.hidden)} {p.activation}, latent {p.latent}"
            rows.append([nodes.paragraph("", "", nodes.literal(text=name)), data, model,
                         f"{p.epochs} epochs", f"IWAE-{p.eval_K}", p.note])
        return [_table(["preset", "data", "MLP", "training", "reported bound", "meant for"], rows,
                       [2, 4, 4, 2, 2, 6])]


class ApiReference(Directive):
    """``automodule`` (members) for every module of the gapkit package, found at build time, so
    that chapters can link to library functions with ``{func}`gapkit.bounds.iwae``` and new
    modules appear without editing the page."""

    has_content = False

    def run(self):
        import pkgutil
        from docutils.statemachine import StringList
        import gapkit
        env = self.state.document.settings.env
        _note_dynamic(env, env.docname)
        names = sorted(m.name for m in pkgutil.walk_packages(gapkit.__path__, "gapkit.")
                       if not m.name.split(".")[-1].startswith("_"))
        # autodoc writes reStructuredText, so the modules go through MyST's eval-rst
        lines = ["```{eval-rst}"]
        for name in ["gapkit"] + names:
            lines += [f".. rubric:: {name}", "", f".. automodule:: {name}", "   :members:", ""]
        lines += ["```"]
        container = nodes.container(classes=["gapkit-api"])
        self.state.nested_parse(StringList(lines, source="gapkit-api"), self.content_offset, container)
        return container.children


def _rst_problems(text: str) -> list:
    """docutils' complaints about ``text`` as reStructuredText (Sphinx-only roles aside)."""
    import io
    from docutils.core import publish_doctree
    # Sphinx's roles need a Sphinx environment: check their contents as literals instead
    text = re.sub(r":[\w:+.-]+:`([^`]*)`", r"``\1``", text)
    try:
        doc = publish_doctree(text, settings_overrides={"report_level": 5, "halt_level": 5,
                                                        "warning_stream": io.StringIO()})
    except Exception:  # noqa: BLE001 - a Sphinx directive in the docstring: leave it to Sphinx
        return []
    msgs = [m.astext() for m in doc.findall(nodes.system_message) if m["level"] >= 2]
    msgs += [f"problematic: {p.astext()}" for p in doc.findall(nodes.problematic)]  # e.g. |undefined|
    return [m for m in msgs if "Unknown interpreted text role" not in m and "Unknown directive type" not in m
            and "No role entry" not in m and "No directive entry" not in m
            and 'Unknown target name' not in m]


def _plain_bad_docstrings(app, what, name, obj, options, lines):
    """A docstring that is not valid reStructuredText is shown verbatim instead of failing the
    build (-W); the build log names it so that it can be fixed."""
    if not lines or not _rst_problems("\n".join(lines)):
        return
    logger.info(f"[gapkit] docstring of {name} is not valid reStructuredText: shown verbatim")
    text = [ln.rstrip() for ln in lines]
    lines[:] = ["::", ""] + ["   " + ln if ln else "" for ln in text] + [""]


def _docstring_refs(app, env, node, contnode):
    """A cross-reference written in a docstring to something outside the reference (a private
    helper, a name relative to its module) stays plain text instead of a nitpicky warning. Links in
    the chapters are still checked."""
    if "docstring of" in str(node.source or "") and node.get("refdomain") == "py":
        return contnode
    return None


class summary_placeholder(nodes.General, nodes.Element):
    """Replaced by the summary figure once every chapter has run (``doctree-resolved``)."""


class SummaryFigure(Directive):
    has_content = False
    option_spec = {"preset": directives.unchanged}

    def run(self):
        env = self.state.document.settings.env
        _note_dynamic(env, env.docname)
        return [summary_placeholder(preset=self.options.get("preset", ""))]


def _render_summary(app, doctree, docname):
    for node in list(doctree.findall(summary_placeholder)):
        if app.builder.format != "html":
            node.replace_self([])
            continue
        import gapkit_summary
        from gapkit.presets import get_preset
        preset = get_preset(node.get("preset") or None)
        panels, _ = gapkit_summary.collect(preset.name)
        if not panels:
            para = nodes.paragraph(text=(
                f"No experiment results for the {preset.name!r} preset yet: the summary figure appears "
                f"once the chapters have run (python -m gapkit book)."))
            node.replace_self(para)
            continue
        depth = docname.count("/")
        parts = []
        for q in panels:
            fname = f"gapkit-summary-{preset.name}-{q.experiment}.svg"
            _, (w, h), smallest = gapkit_summary.draw_panel(q, Path(app.outdir) / "_static" / fname)
            src = "../" * depth + f"_static/{fname}"
            doc = f"notebooks/{q.chapter}"
            num = (q.chapter.split("_")[0].lstrip("0") or "0") if q.chapter else ""
            title = html.escape((f"Chapter {num}: " if num else "") + q.title)
            if q.chapter and doc in app.env.found_docs:
                title = f'<a href="{html.escape(app.builder.get_relative_uri(docname, doc))}">{title}</a>'
            values = "; ".join(f"{k} {v:.4g}" for k, v in q.values.items())
            alt = html.escape(f"{q.title} ({q.unit}): {values}")
            parts.append(f'<div class="gapkit-summary-panel">'
                         f'<img src="{src}" alt="{alt}" width="{w}" height="{h}" data-min-font-pt="{smallest:g}"/>'
                         f'<div class="gapkit-summary-text"><p class="gapkit-summary-title">{title}</p>'
                         f'<p class="gapkit-summary-finding">{html.escape(q.finding)}</p></div></div>')
        raw = (f'<div class="gapkit-summary">'
               f'<p class="gapkit-summary-note">The book\'s findings at the <code>{html.escape(preset.name)}</code> '
               f'preset ({html.escape(preset.note)}), one panel per experiment, computed when this page was built: '
               f'each shows the bounds that its chapter compares, with the finding beside it.</p>'
               f'{"".join(parts)}</div>')
        node.replace_self(nodes.raw("", raw, format="html"))


class report_placeholder(nodes.General, nodes.Element):
    """Replaced by the reproduction report once every chapter has run (``doctree-resolved``)."""


class ReproductionReport(Directive):
    """``{gapkit-report}``: :func:`gapkit.reproduction.report`, one column per preset with results."""

    has_content = False

    def run(self):
        env = self.state.document.settings.env
        _note_dynamic(env, env.docname)
        return [report_placeholder()]


def _render_report(app, doctree, docname):
    for node in list(doctree.findall(report_placeholder)):
        if app.builder.format != "html":
            node.replace_self([])
            continue
        from gapkit.experiments import registry
        from gapkit.reproduction import VERDICTS, report
        rep = report()
        presets = rep["with_results"]
        esc = html.escape
        if not presets:
            node.replace_self(nodes.paragraph(text="No experiment has results at any preset yet: the report fills in "
                                                   "once the chapters have run (python -m gapkit book)."))
            continue
        counts = "; ".join(f"<code>{esc(p)}</code>: " + ", ".join(
            f'{rep["counts"][p][v]} <span class="gapkit-verdict gapkit-verdict-{v.replace(" ", "-")}">{esc(v)}</span>'
            for v in VERDICTS) for p in presets)
        chapters = {name: e.chapter for name, e in registry().items()}
        head = "".join(f"<th>{esc(h)}</th>" for h in ["finding", "the paper's value"] + [f"ours: {p}" for p in presets])
        rows = []
        for r in rep["rows"]:
            doc = f"notebooks/{chapters.get(r['experiment'], '')}"
            where = esc(f"{r['source']}, {r['where']}")
            if doc in app.env.found_docs:
                num = doc.split("/")[1].split("_")[0].lstrip("0") or "0"
                where += f' (<a href="{esc(app.builder.get_relative_uri(docname, doc))}">chapter {num}</a>)'
            cells = [f'<p class="gapkit-report-where">{where}</p><p>{esc(r["claim"])}</p>'
                     f'<p class="gapkit-report-rule">Verdict rule: {esc(r["rule"])}.</p>', f"<p>{esc(r['paper'])}</p>"]
            for p in presets:
                j = r["results"][p]
                v = j["verdict"]
                cells.append(f'<p><span class="gapkit-verdict gapkit-verdict-{v.replace(" ", "-")}">{esc(v)}</span></p>'
                             f"<p>{esc(j['ours'])}</p>")
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        raw = (f'<div class="gapkit-report"><p>{counts}.</p>'
               f'<table class="gapkit-table gapkit-report-table"><thead><tr>{head}</tr></thead>'
               f'<tbody>{"".join(rows)}</tbody></table></div>')
        node.replace_self(nodes.raw("", raw, format="html"))


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    """Drop repeated inline scripts: sphinx-thebe adds its ``const THEBE_JS_URL = ...`` twice under
    Jupyter Book, and the second copy throws a SyntaxError in every page."""
    files = context.get("script_files")
    if not files:
        return
    seen, kept = set(), []
    for js in files:
        attrs = getattr(js, "attributes", {}) or {}
        key = (str(getattr(js, "filename", js) or ""), tuple(sorted((k, str(v)) for k, v in attrs.items())))
        if key in seen and attrs.get("body"):
            continue
        seen.add(key)
        kept.append(js)
    files[:] = kept


def _always_outdated(app, env, added, changed, removed):
    return sorted(getattr(env, "gapkit_dynamic", set()) & set(env.found_docs) - set(removed))


def _purge(app, env, docname):
    getattr(env, "gapkit_dynamic", set()).discard(docname)


def _merge(app, env, docnames, other):
    if not hasattr(env, "gapkit_dynamic"):
        env.gapkit_dynamic = set()
    env.gapkit_dynamic |= getattr(other, "gapkit_dynamic", set()) & set(docnames)


def _static_files(app, config):
    """The book's own CSS (``static/gapkit.css``: tables, wrapping output, the summary's layout)."""
    config.html_static_path = list(config.html_static_path) + [str(Path(__file__).resolve().parent / "static")]


def setup(app):
    app.connect("config-inited", _static_files)
    app.connect("config-inited", _use_local_assets)
    app.add_css_file("gapkit.css")
    app.connect("build-finished", _copy_assets)
    app.connect("doctree-read", _local_colab_badge, priority=100)  # before Sphinx collects images
    app.connect("doctree-resolved", _render_summary)
    app.connect("doctree-resolved", _render_report)
    app.connect("env-get-outdated", _always_outdated)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.add_js_file(None, body=MATHJAX2_SHIM, priority=510)  # after MathJax (500)
    app.add_node(summary_placeholder)
    app.add_node(report_placeholder)
    app.add_directive("gapkit-experiments", ExperimentsTable)
    app.add_directive("gapkit-presets", PresetsTable)
    app.add_directive("gapkit-summary", SummaryFigure)
    app.add_directive("gapkit-report", ReproductionReport)
    app.add_directive("gapkit-api", ApiReference)
    app.connect("autodoc-process-docstring", _plain_bad_docstrings)
    app.connect("missing-reference", _docstring_refs, priority=900)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
