"""Fetch the book's viewer assets (MathJax, RequireJS, the ipywidgets HTML manager) from npm.

The rendered book draws math with MathJax and widgets with ``@jupyter-widgets/html-manager``
(loaded by RequireJS). By default Jupyter Book loads all three from CDNs, so a reader without a
network sees raw TeX and no widgets. This script downloads pinned versions from the npm registry
with npm's own client (``npm pack``; npm checks each tarball against the registry's integrity
hash) into a build-local folder (default ``_build/assets``, ignored by git), and writes
``manifest.json`` there. The book's Sphinx extension (``book/_ext/gapkit_book.py``) copies the
folder into the HTML output and points the pages at it (Sphinx's ``mathjax_path``, myst-nb's
``nb_ipywidgets_js``). Widgets from other packages than ipywidgets still come from the CDN, as
before, so online readers lose nothing.

Without npm the script says so and does nothing: the book then keeps the CDN links.

    python scripts/fetch_assets.py [--dest DIR] [--force]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DEST = ROOT / "_build" / "assets"
MANIFEST = "manifest.json"

# name -> npm spec, what to keep from the tarball's ``package/`` folder, and the entry file.
PACKAGES = {
    "requirejs": {"spec": "requirejs@2.3.8", "keep": ["require.js"], "entry": "require.js"},
    # html-manager 1.0.x renders the state saved by ipywidgets 8 (controls 2.0.0 models).
    "html-manager": {"spec": "@jupyter-widgets/html-manager@1.0.15", "keep": ["dist/"],
                     "drop": [".map", "/embed.js", "/libembed-amd.js"], "entry": "dist/embed-amd.js"},
    # The combined TeX+MathML -> CHTML component, its fonts, and the parts it loads on demand
    # (TeX extensions, menu, accessibility, speech); the other combined components are left out.
    "mathjax": {"spec": "mathjax@3.2.2", "keep": ["es5/"],
                "drop": ["es5/tex-svg", "es5/tex-chtml", "es5/mml-", "es5/tex-mml-svg", "es5/output/svg",
                         "es5/node-main", "es5/startup.js", "es5/core.js", "es5/loader.js"],
                "entry": "es5/tex-mml-chtml.js"},
}


def npm_available() -> bool:
    return shutil.which("npm") is not None


def read_manifest(dest: Path = DEFAULT_DEST) -> dict | None:
    """The manifest of fetched assets in ``dest``, or None when they are missing or incomplete."""
    path = Path(dest) / MANIFEST
    try:
        man = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if set(man.get("packages", {})) != set(PACKAGES):
        return None
    for name, info in man["packages"].items():
        if info.get("spec") != PACKAGES[name]["spec"] or not (Path(dest) / name / info["entry"]).is_file():
            return None
    return man


def _wanted(member: str, keep, drop) -> bool:
    if not member.startswith("package/"):
        return False
    rel = member[len("package/"):]
    return any(rel == k or (k.endswith("/") and rel.startswith(k)) for k in keep) and \
        not any(d in "/" + rel if d.startswith("/") else (rel.endswith(d) if d.startswith(".") else rel.startswith(d))
                for d in drop)


def fetch(dest: Path = DEFAULT_DEST, force: bool = False, quiet: bool = False) -> dict | None:
    """Download the assets into ``dest`` (unless already there) and return the manifest.

    Returns None, after saying so, when npm is not installed or the download fails: the book then
    keeps the CDN links.
    """
    dest = Path(dest)
    say = (lambda *a: None) if quiet else (lambda *a: print("[fetch_assets]", *a, file=sys.stderr))
    man = None if force else read_manifest(dest)
    if man is not None:
        return man
    if not npm_available():
        say("npm not found: the book keeps the CDN links for MathJax, RequireJS and the widget manager "
            "(math and widgets then need network access)")
        return None
    dest.mkdir(parents=True, exist_ok=True)
    packages = {}
    with tempfile.TemporaryDirectory(prefix="gapkit-assets-") as tmp:
        specs = [p["spec"] for p in PACKAGES.values()]
        say("fetching from the npm registry:", ", ".join(specs))
        try:
            out = subprocess.run(["npm", "pack", "--json", "--pack-destination", tmp, *specs],
                                 capture_output=True, text=True, timeout=300, cwd=tmp, check=True)
            packed = json.loads(out.stdout)
        except (subprocess.SubprocessError, OSError, ValueError) as e:
            detail = getattr(e, "stderr", "") or str(e)
            say(f"npm pack failed ({detail.strip()[-300:]}): the book keeps the CDN links")
            return None
        for (name, spec), info in zip(PACKAGES.items(), packed):
            target = dest / name
            shutil.rmtree(target, ignore_errors=True)
            with tarfile.open(Path(tmp) / info["filename"]) as tar:
                members = [m for m in tar.getmembers()
                           if m.isfile() and _wanted(m.name, spec["keep"], spec.get("drop", ()))]
                for m in members:
                    m.name = m.name[len("package/"):]
                tar.extractall(target, members=members,
                               **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
            packages[name] = {"spec": spec["spec"], "version": info["version"], "integrity": info["integrity"],
                              "entry": spec["entry"], "files": len(members)}
    man = {"packages": packages}
    tmp_manifest = dest / (MANIFEST + ".tmp")
    tmp_manifest.write_text(json.dumps(man, indent=1))
    os.replace(tmp_manifest, dest / MANIFEST)
    say("assets in", dest, "(" + ", ".join(f"{k} {v['version']}" for k, v in packages.items()) + ")")
    return man


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dest", default=os.environ.get("GAPKIT_ASSETS_DIR") or DEFAULT_DEST, type=Path)
    ap.add_argument("--force", action="store_true", help="download again")
    args = ap.parse_args(argv)
    man = fetch(args.dest, force=args.force)
    if man is None:
        print("no local assets: the book uses the CDN links")
    else:
        print(json.dumps(man, indent=1))


if __name__ == "__main__":
    main()
