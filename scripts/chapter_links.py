"""Chapter references in gapkit's docstrings as links into the rendered book.

``python scripts/chapter_links.py FILE...`` rewrites, inside docstrings only, "Chapter 3
(``notebooks/03_wake_sleep``)", "(chapter 2, ``notebooks/02_...``)" and a bare "chapter 5" into a
reST link ```chapter 3 <BASE/notebooks/03_wake_sleep.html>`_``, BASE being ``html.baseurl`` of
``_config.yml``. Already linked references are left alone, so running it again changes nothing.
``--check FILE...`` rewrites nothing and lists the references that are not links yet.
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def base_url() -> str:
    """The rendered book's address, ``html.baseurl`` in ``_config.yml`` (ending in a slash)."""
    m = re.search(r"^\s+baseurl:\s*(\S+)", (ROOT / "_config.yml").read_text(), re.M)
    if not m:
        raise SystemExit("_config.yml has no html.baseurl")
    return m[1].rstrip("/") + "/"


def chapters() -> dict:
    """Chapter number -> notebook slug (``3`` -> ``"03_wake_sleep"``), from ``notebooks/NN_*.py``."""
    return {int(p.stem[:2]): p.stem for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))}


# the three forms, rewritten in this order: "(chapter 2, ``notebooks/02_x``)", "Chapter 3
# (``notebooks/03_x``)", and a bare "chapter 5" that is not a link yet
FORMS = (re.compile(r"\((?P<word>[Cc]hapter) (?P<n>\d+), ``notebooks/\d\d_\w+``\)"),
         re.compile(r"(?P<word>[Cc]hapter) (?P<n>\d+) \(``notebooks/\d\d_\w+``\)"),
         re.compile(r"(?<!`)(?P<word>[Cc]hapter) (?P<n>\d+)\b(?! <)"))


def docstring_lines(source: str) -> set:
    """Line numbers (1-based) of the docstrings of a module, its classes and functions."""
    lines = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    return lines


def link(m: re.Match, base: str, slugs: dict) -> str:
    n = int(m["n"])
    if n not in slugs:
        return m[0]
    text = f"`{m['word']} {n} <{base}notebooks/{slugs[n]}.html>`_"
    return f"({text})" if m[0].startswith("(") else text


def wrap(line: str, width: int = 110) -> str:
    """``line`` broken before (and after) its links when it is longer than ``width``, the new lines
    indented like a continuation of the original (a bullet's text included)."""
    if len(line.rstrip("\n")) <= width:
        return line
    body = line.rstrip("\n")
    lead = body[:len(body) - len(body.lstrip())]
    indent = lead + ("  " if body.lstrip()[:2] in ("* ", "- ") else "")
    parts = re.split(r"(\(?`[Cc]hapter \d+ <[^>]+>`_\)?\S*)", body.lstrip())
    out, cur = [], lead
    for part in parts:
        piece = part
        if cur.strip() and len(cur) + len(piece) > width:
            out.append(cur.rstrip())
            cur, piece = indent, part.lstrip()
        cur += piece
    out.append(cur.rstrip())
    return "\n".join(out) + ("\n" if line.endswith("\n") else "")


def rewrite(path: Path, check: bool = False) -> list:
    """Rewrite ``path`` in place (or with ``check``, only report); returns the references changed."""
    base, slugs = base_url(), chapters()
    src = path.read_text()
    doc = docstring_lines(src)
    out, found = [], []
    for i, line in enumerate(src.splitlines(keepends=True), 1):
        if i in doc:
            new = line
            for form in FORMS:
                new = form.sub(lambda m: link(m, base, slugs), new)
            if new != line:
                found.append(f"{path}:{i}: {line.strip()}")
                new = wrap(new)
            line = new
        out.append(line)
    if found and not check:
        path.write_text("".join(out))
    return found


if __name__ == "__main__":
    args = sys.argv[1:]
    check = "--check" in args
    hits = [h for a in args if a != "--check" for h in rewrite(Path(a), check)]
    print("\n".join(hits) or "no unlinked chapter references")
    sys.exit(1 if check and hits else 0)
