"""The rendered book in a real browser (headless Chromium), offline.

Builds the book with the ``quick`` preset into a temporary folder (``-W``: any warning fails),
serves it on 127.0.0.1, opens every page in Debian's ``chromium`` with every host other than
127.0.0.1 unresolvable, and checks what a reader sees:

* no Python error output on any page (no "Traceback", no stderr or error cells);
* every chapter page has figures, and every image on every page loads with a non-zero size;
* math is typeset by MathJax (``mjx-container`` elements, no ``mjx-merror``);
* widgets are drawn from their saved state (every one on each page), and at least one shows its
  figure under its sliders; no progress bar is left on a page;
* the Colab links (the launch button and the badge) open the chapter's own ``.ipynb``;
* every control of every precomputed slider widget (``gapkit.book.widgets.interact``) on a chapter page is
  moved as a reader would (keyboard focus on the slider's handle and ArrowRight, or a drop-down's
  option and its change event) to the next precomputed value; the figure shown must change and be
  the frame the saved widget state holds for that value (drawn at that value); every chapter has
  one; before/after screenshots of each move go to ``sliders/`` beside the page screenshots, the
  moves to ``sliders.json``; each chapter page weighs under ``MAX_PAGE_BYTES`` with its images;
* nothing is fetched from outside localhost, and no JavaScript error is thrown;
* the results read like a book at 1280 pixels: plotting and formatting code folded under "show code"
  toggles (``hide-input``), so that no visible code cell draws a figure or formats results; no raw
  Markdown table text (a line of pipes) in any
  output; no output or display-equation box whose content is clipped (scroll width larger than its
  visible width), code inside the folded "show code" toggles aside; at least one real table on every
  chapter page whose source shows a table (``plots.table``); the summary on the landing page drawn
  with text at least ``SUMMARY_MIN_TEXT_PX`` pixels high.

A screenshot of each page is written to ``$GAPKIT_SCREENSHOTS`` (default ``_build/screenshots``)
for a person to look at, with ``report.json`` (everything the probe saw) and ``pages.json`` (per page:
height in pixels at 1280, tables, raw table lines, clipped boxes). ``GAPKIT_BOOK_HTML=path/to/_build/html`` tests an existing build instead
of building. Chromium is driven with the DevTools protocol over a pipe (``--remote-debugging-pipe``),
so no extra Python package is needed. Without Chromium the test skips, except in CI (``$CI`` set),
where a missing browser is a failure.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REPO_URL = "https://github.com/gapkit/gapkit"
COLAB = "https://colab.research.google.com/github/gapkit/gapkit/blob/main/"
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-default-browser-check", "--mute-audio",
                "--hide-scrollbars", "--disable-extensions", "--window-size=1280,900",
                # no network besides this machine: every other host name fails to resolve
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]
WIDTH = 1280
MAX_SHOT_HEIGHT = 12000
# console.error messages that are not failures: the theme's notice on a first visit (empty storage)
BENIGN_CONSOLE = ("Got invalid theme mode",)
SETTLE_S = 20.0
# A chapter page with every precomputed slider frame and its figures must stay under this many bytes.
MAX_PAGE_BYTES = 3_000_000
# The summary's smallest text (tick labels, in pixels as drawn at 1280) and its sentences must be at
# least this high: the chapters' figures draw their tick labels at about 10-15 pixels.
SUMMARY_MIN_TEXT_PX = 12.0
# What a visible (unfolded) code cell must not do: draw or format results (the gapkit call and teaching
# code stay visible; figures, tables and sentences come from folded cells).
PLOTTING_CODE = re.compile(r"plt\.(subplots|figure|show)\(|\.set_(x|y)label\(|\.legend\(|\bplots\.(say|table|curves|"
                           r"band|ellipse|legend|image_grid)\(|display\(|\binteract\(")

pytestmark = pytest.mark.browser


def _chromium() -> str | None:
    for name in (os.environ.get("GAPKIT_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


# --------------------------------------------------------------------------- DevTools over a pipe
def _high_fd(fd: int) -> int:
    import fcntl
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)  # not inherited; dup2 in the child sets 3 and 4
    os.close(fd)
    return new


class Chrome:
    """Headless Chromium driven with the DevTools protocol over ``--remote-debugging-pipe``.

    Chromium reads commands from its fd 3 and writes replies and events to its fd 4, each one JSON
    message ended by a NUL byte.
    """

    def __init__(self, exe: str, profile: Path):
        # Chromium's ends of the pipes are first moved above fd 9, so that placing them on 3 and 4 in
        # the child cannot overwrite one with the other (pytest's capturing may hold low descriptors).
        cmd_r, self._cmd_w = (_high_fd(fd) for fd in os.pipe())
        self._res_r, res_w = (_high_fd(fd) for fd in os.pipe())
        argv = [exe, *CHROME_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"]

        def child_fds():  # dup2 leaves 3 and 4 inheritable; every other descriptor is close-on-exec
            os.dup2(cmd_r, 3)
            os.dup2(res_w, 4)

        self.log = Path(profile) / "chromium.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(argv, preexec_fn=child_fds, close_fds=False,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        os.close(cmd_r)
        os.close(res_w)
        self._next = 0
        self._replies: dict = {}
        self.events: list = []
        self._cv = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        buf = b""
        with os.fdopen(self._res_r, "rb", buffering=0) as f:
            while True:
                chunk = f.read(1 << 16)
                if not chunk:
                    break
                buf += chunk
                *msgs, buf = buf.split(b"\0")
                with self._cv:
                    for m in msgs:
                        msg = json.loads(m)
                        if "id" in msg:
                            self._replies[msg["id"]] = msg
                        else:
                            self.events.append(msg)
                    self._cv.notify_all()
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60):
        self._next += 1
        mid = self._next
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        try:
            os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        except BrokenPipeError:
            raise RuntimeError(f"chromium exited (rc={self.proc.poll()}); its log ends with:\n"
                               + self.log.read_text(errors="replace")[-2000:]) from None
        deadline = time.monotonic() + timeout
        with self._cv:
            while mid not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or getattr(self, "_closed", False):
                    raise TimeoutError(f"no reply to {method} within {timeout} s (chromium exited: "
                                       f"{self.proc.poll() is not None})")
                self._cv.wait(left)
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait_event(self, method: str, session: str, since: int, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for ev in self.events[since:]:
                    if ev.get("method") == method and ev.get("sessionId") == session:
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cv.wait(left)

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except (TimeoutError, RuntimeError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)


# What the page looks like once MathJax and the widget manager are done (or SETTLE_S has passed).
PROBE = r"""
(async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const t0 = Date.now();
  const viewScripts = () => [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')];
  const drawn = () => [...document.querySelectorAll('.widget-subarea')].filter(e => e.querySelector('.jupyter-widgets'));
  while (Date.now() - t0 < %(settle_ms)d) {
    const mathDone = !document.querySelector('.math') ||
      (window.MathJax && MathJax.startup && MathJax.startup.promise && document.querySelector('mjx-container'));
    const widgetsDone = drawn().length >= viewScripts().length;
    const imagesDone = [...document.images].every(i => i.complete);
    if (mathDone && widgetsDone && imagesDone) break;
    await sleep(100);
  }
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await Promise.race([MathJax.startup.promise.catch(() => null), sleep(5000)]);
  }
  await sleep(300);
  const main = document.querySelector('main') || document.body;
  const text = main.innerText || '';
  return {
    title: document.title,
    traceback: /Traceback \(most recent call last\)|^\s*\w+Error: /m.test(text),
    tracebackContext: (text.match(/.{0,80}(Traceback \(most recent call last\)|\w+Error: ).{0,120}/) || [''])[0],
    errorCells: [...document.querySelectorAll('.output.stderr, .output.traceback, .cell_output .stderr, .output.error')]
                  .map(e => e.innerText.slice(0, 200)),
    images: [...document.images].map(i => ({src: i.getAttribute('src'), complete: i.complete,
              naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight,
              width: i.getBoundingClientRect().width, height: i.getBoundingClientRect().height,
              visible: i.checkVisibility ? i.checkVisibility() : !!i.offsetParent,
              inOutput: !!i.closest('.cell_output, .output, figure')})),
    mathElements: document.querySelectorAll('.math').length,
    mathTypeset: document.querySelectorAll('mjx-container').length,
    mathErrors: document.querySelectorAll('mjx-merror').length,
    mathjaxLoaded: !!(window.MathJax && MathJax.version),
    widgetViews: viewScripts().length,
    widgetsDrawn: drawn().length,
    widgetClasses: [...new Set(drawn().flatMap(e => [...e.querySelectorAll('.jupyter-widgets')]
                    .flatMap(w => [...w.classList].filter(c => c.startsWith('widget-')))))].slice(0, 20),
    widgetFigures: drawn().flatMap(e => [...e.querySelectorAll('.widget-output img, .widget-output svg')])
                    .filter(f => f.getBoundingClientRect().width > 0 && f.getBoundingClientRect().height > 0).length,
    progressBars: document.querySelectorAll('.widget-hprogress, .widget-progress').length,
    colabLinks: [...document.querySelectorAll('a[href*="colab.research.google.com"]')].map(a => a.href),
    launchColab: [...document.querySelectorAll('a')].filter(a => /colab/i.test(a.title || '') ||
                   (a.querySelector('img[alt*="Colab logo"]'))).map(a => a.href),
    height: Math.max(document.documentElement.scrollHeight, document.body.scrollHeight),
    // Markdown tables that were not parsed: a line with three or more pipes in an output
    rawTableLines: [...document.querySelectorAll('.cell_output')]
      .flatMap(o => (o.innerText || '').split('\n')).filter(l => (l.match(/[|]/g) || []).length >= 3)
      .map(l => l.slice(0, 120)),
    outputTables: document.querySelectorAll('.cell_output table').length,
    // boxes whose content is wider than what they show (cut, or behind a scroll bar); code cells'
    // inputs and anything inside a folded toggle (<details>) aside
    clipped: [...document.querySelectorAll('.cell_output, .cell_output *, mjx-container[display="true"], ' +
                                           'div.math, .math-wrapper, main, article, .bd-article-container')]
      .filter(e => !e.closest('details, .cell_input') && e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 2 &&
                   getComputedStyle(e).overflowX !== 'visible')
      .map(e => ({tag: e.tagName.toLowerCase(), cls: String(e.className && e.className.baseVal !== undefined
                   ? e.className.baseVal : e.className).slice(0, 60), scrollWidth: e.scrollWidth,
                  clientWidth: e.clientWidth, text: (e.innerText || e.textContent || '').slice(0, 100)})),
    pageScrollWidth: document.documentElement.scrollWidth,
    // code cells: folded ones (hide-input: a "show code" toggle) and the source of the visible ones
    foldedCells: [...document.querySelectorAll('div.cell.tag_hide-input')]
      .filter(c => c.querySelector('details') && !c.querySelector('details[open]')).length,
    visibleCode: [...document.querySelectorAll('div.cell')]
      .filter(c => !c.classList.contains('tag_hide-input') && c.querySelector('.cell_input'))
      .map(c => c.querySelector('.cell_input').innerText || ''),
    // the landing page's summary: the smallest text of each panel picture, in pixels as drawn
    // (data-min-font-pt is the smallest font in the picture; an SVG's user unit is the point)
    summaryPanels: [...document.querySelectorAll('.gapkit-summary img')].map(i => ({
      src: i.getAttribute('src'), width: i.getBoundingClientRect().width, naturalWidth: i.naturalWidth,
      minTextPx: parseFloat(i.dataset.minFontPt || 'NaN') * 96 / 72 * i.getBoundingClientRect().width /
                 (i.naturalWidth || 1)})),
    summaryFindingPx: [...document.querySelectorAll('.gapkit-summary .gapkit-summary-finding')]
      .map(e => parseFloat(getComputedStyle(e).fontSize)),
  };
})()
"""


# The precomputed sliders (gapkit.book.widgets.interact): every widget's controls, where they stand, and
# the frame the page shows, read from the page itself; the frame the saved widget state says belongs
# to those positions is found by following its stacks (the state is embedded in the page).
SLIDERS = r"""
(() => {
  const st = document.querySelector('script[type="application/vnd.jupyter.widget-state+json"]');
  const state = st ? JSON.parse(st.textContent).state : {};
  const ref = v => (typeof v === 'string' && v.startsWith('IPY_MODEL_')) ? v.slice(10) : v;
  const out = [];
  const views = [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')];
  views.forEach(vs => {
    const id = JSON.parse(vs.textContent).model_id;
    const m = state[id];
    if (!m || !(m.state._dom_classes || []).includes('gapkit-interact')) return;
    const area = vs.previousElementSibling;
    const root = area && area.querySelector('.gapkit-interact');
    if (!root) { out.push({id, error: 'not drawn'}); return; }
    const w = out.length;
    root.dataset.gapkitW = w;
    const ctrlIds = state[ref(m.state.children[0])].state.children.map(ref);
    const ctrlEls = [...root.children[0].children];
    const controls = ctrlIds.map((cid, i) => {
      const el = ctrlEls[i];
      el.dataset.gapkitC = i;
      const handle = el.querySelector('.noUi-handle');
      const select = el.querySelector('select');
      const readout = el.querySelector('.widget-readout');
      const pos = handle ? Math.round(parseFloat(handle.getAttribute('aria-valuenow')))
                         : (select ? select.selectedIndex : null);
      return {model: state[cid].model_name, description: state[cid].state.description || '',
              kind: handle ? 'slider' : (select ? 'select' : 'other'), pos,
              max: handle ? Math.round(parseFloat(handle.getAttribute('aria-valuemax'))) : (select ? select.options.length - 1 : null),
              min: handle ? Math.round(parseFloat(handle.getAttribute('aria-valuemin'))) : 0,
              shown: readout ? (readout.value !== undefined && readout.tagName === 'INPUT' ? readout.value : readout.innerText).trim()
                             : (select ? select.options[select.selectedIndex].text : null)};
    });
    // the frame the saved state holds for these positions
    let node = ref(m.state.children[1]);
    controls.forEach(c => { node = ref(state[node].state.children[c.pos]); });
    const leaf = state[node];
    const png = (leaf.state.outputs || []).filter(o => o.data && o.data['image/png']);
    const expected = png.length ? 'data:image/png;base64,' + png[png.length - 1].data['image/png'] : null;
    const values = png.length ? png[png.length - 1].metadata.gapkit.values : null;
    const names = png.length ? (png[png.length - 1].metadata.gapkit.controls ||
                                Object.keys(values).slice(-controls.length)) : null;
    const imgs = [...root.querySelectorAll('.gapkit-frame img')].filter(i => i.checkVisibility() &&
                  i.getBoundingClientRect().width > 0);
    const r = root.getBoundingClientRect();
    out.push({id, w, controls, frameModel: node, expected, values, names,
              shownSrc: imgs.length === 1 ? imgs[0].getAttribute('src') : null, shownImages: imgs.length,
              shownLoaded: imgs.length === 1 && imgs[0].complete && imgs[0].naturalWidth > 0,
              rect: {x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height}});
  });
  return out;
})()
"""


def _eval(chrome: Chrome, session: str, expr: str):
    res = chrome.send("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True}, session)
    if "exceptionDetails" in res:
        raise RuntimeError(f"page script failed: {res['exceptionDetails']}")
    return res["result"].get("value")


def _widget_shot(chrome: Chrome, session: str, w: int, path: Path):
    """A screenshot of widget ``w`` alone: the window is made as tall as the page (as for the page
    screenshots, so that the theme's fixed header stays at the top of the page), then clipped."""
    import base64
    rect = _eval(chrome, session, f"(() => {{const r = document.querySelector('[data-gapkit-w=\"{w}\"]')"
                                  ".getBoundingClientRect(); return {x: r.left + window.scrollX, y: r.top + "
                                  "window.scrollY, width: r.width, height: r.height, page: Math.max("
                                  "document.documentElement.scrollHeight, document.body.scrollHeight)};})()")
    height = min(int(rect["page"]) + 10, MAX_SHOT_HEIGHT)
    chrome.send("Emulation.setDeviceMetricsOverride",
                {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False}, session)
    time.sleep(0.3)
    clip = {"x": max(0.0, rect["x"]), "y": max(0.0, rect["y"]), "width": max(rect["width"], 1.0),
            "height": min(max(rect["height"], 1.0), 4000.0), "scale": 1}
    png = chrome.send("Page.captureScreenshot", {"format": "png", "clip": clip}, session)["data"]
    chrome.send("Emulation.setDeviceMetricsOverride",
                {"width": WIDTH, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(png))


def _same_value(shown, value) -> bool:
    try:
        return abs(float(shown) - float(value)) < 1e-9
    except (TypeError, ValueError):
        return str(shown) == str(value)


def _move_sliders(chrome: Chrome, session: str, page: str, shots: Path) -> tuple[list, list]:
    """Move every control of every precomputed widget on the page as a reader would (the slider's
    handle takes the keyboard focus and gets ArrowRight, or ArrowLeft at the end; a drop-down gets a
    new option and its change event), until the control stands on the next precomputed value; check
    that the shown figure changed and is the frame the saved state holds for that value (and was
    drawn at that value). Returns (the widgets found, the moves made, problems)."""
    problems, moves = [], []
    widgets = _eval(chrome, session, SLIDERS)
    for wd in widgets:
        if wd.get("error"):
            problems.append(f"{page}: precomputed widget {wd['id']} {wd['error']}")
            continue
        w = wd["w"]
        for i, c in enumerate(wd["controls"]):
            now = next(x for x in _eval(chrome, session, SLIDERS) if x["w"] == w)
            name = f"{page[:-5].replace('/', '__')}__w{w}_c{i}"
            if now["shownSrc"] is None or now["shownSrc"] != now["expected"]:
                problems.append(f"{page}: widget {w} does not show the precomputed frame of its controls before "
                                f"moving them ({now['shownImages']} visible frame images)")
                break
            _widget_shot(chrome, session, w, shots / "sliders" / f"{name}_before.png")
            before = now
            sel = f"[data-gapkit-w=\"{w}\"] [data-gapkit-c=\"{i}\"]"
            direction = "ArrowRight" if c["pos"] < c["max"] else "ArrowLeft"
            after, presses = None, 0
            for presses in range(1, 200):
                if c["kind"] == "slider":
                    _eval(chrome, session, f"document.querySelector('{sel} .noUi-handle').focus()")
                    code = 39 if direction == "ArrowRight" else 37
                    for typ in ("keyDown", "keyUp"):
                        chrome.send("Input.dispatchKeyEvent", {"type": typ, "key": direction, "code": direction,
                                                               "windowsVirtualKeyCode": code}, session)
                elif c["kind"] == "select":
                    step = 1 if direction == "ArrowRight" else -1
                    _eval(chrome, session, f"(() => {{const s = document.querySelector('{sel} select'); "
                                           f"s.selectedIndex += {step}; s.dispatchEvent(new Event('change', "
                                           "{bubbles: true}));})()")
                else:
                    problems.append(f"{page}: widget {w} control {i} ({c['model']}) is neither a slider nor a drop-down")
                    break
                deadline = time.monotonic() + 5
                while True:  # the link and the stack redraw asynchronously
                    time.sleep(0.05)
                    cur = next(x for x in _eval(chrome, session, SLIDERS) if x["w"] == w)
                    if cur["shownSrc"] == cur["expected"] or time.monotonic() > deadline:
                        break
                cc = cur["controls"][i]
                landed = cur["values"] is not None and _same_value(cc["shown"], cur["values"].get(cur["names"][i]))
                if cur["expected"] != before["expected"] and landed:
                    after = cur
                    break
                if cc["pos"] in (cc["min"], cc["max"]) and cc["pos"] != c["pos"]:
                    after = cur
                    break
            if after is None:
                problems.append(f"{page}: widget {w} control {i} ({c['description']}): the figure never changed")
                continue
            _widget_shot(chrome, session, w, shots / "sliders" / f"{name}_after.png")
            cc = after["controls"][i]
            move = {"page": page, "widget": w, "control": i, "description": c["description"], "model": c["model"],
                    "from": c["shown"], "to": cc["shown"], "presses": presses, "key": direction,
                    "frame_before": before["frameModel"], "frame_after": after["frameModel"],
                    "frame_values": after["values"]}
            moves.append(move)
            if cc["pos"] == c["pos"]:
                problems.append(f"{page}: widget {w} control {i} ({c['description']}) did not move: {move}")
            if after["shownSrc"] == before["shownSrc"]:
                problems.append(f"{page}: widget {w} control {i} ({c['description']}): the figure did not change: {move}")
            if after["shownSrc"] != after["expected"] or not after["shownLoaded"]:
                problems.append(f"{page}: widget {w} control {i} ({c['description']}): the figure shown is not the "
                                f"precomputed frame for {cc['shown']!r}: {move}")
            if not _same_value(cc["shown"], (after["values"] or {}).get(after["names"][i])):
                problems.append(f"{page}: widget {w} control {i} ({c['description']}) shows {cc['shown']!r} but the "
                                f"frame was drawn at {after['values']}")
    return widgets, moves, problems


def _page_weight(html: Path, page: str) -> int:
    """Bytes of a page: its HTML (with the widget state and the precomputed frames it embeds) and the
    image files it links to (figures in _images/), each counted once; shared theme files aside."""
    text = (html / page).read_text(errors="replace")
    total = len(text.encode())
    seen = set()
    for src in re.findall(r'<img[^>]+src="([^"]+)"', text):
        if src.startswith(("data:", "http")):
            continue
        f = ((html / page).parent / src.split("#")[0].split("?")[0]).resolve()
        if f not in seen and f.is_file():
            seen.add(f)
            total += f.stat().st_size
    return total


def _serve(folder: Path):
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _visit(chrome: Chrome, session: str, url: str, shot: Path) -> dict:
    start = len(chrome.events)
    chrome.send("Page.navigate", {"url": url}, session)
    if chrome.wait_event("Page.loadEventFired", session, start, 60) is None:
        raise TimeoutError(f"{url} did not finish loading in 60 s")
    res = chrome.send("Runtime.evaluate", {"expression": PROBE % {"settle_ms": int(SETTLE_S * 1000)},
                                           "awaitPromise": True, "returnByValue": True}, session,
                      timeout=SETTLE_S + 30)
    if "exceptionDetails" in res:
        raise RuntimeError(f"probe failed on {url}: {res['exceptionDetails']}")
    report = res["result"]["value"]
    # full-page screenshot at the reading width
    height = min(int(report["height"]) + 10, MAX_SHOT_HEIGHT)
    chrome.send("Emulation.setDeviceMetricsOverride",
                {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False}, session)
    time.sleep(0.3)
    png = chrome.send("Page.captureScreenshot", {"format": "png"}, session)["data"]
    import base64
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.write_bytes(base64.b64decode(png))
    chrome.send("Emulation.setDeviceMetricsOverride",
                {"width": WIDTH, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session)
    events = [e for e in chrome.events[start:] if e.get("sessionId") == session]
    report["jsErrors"] = [e["params"]["exceptionDetails"].get("exception", {}).get("description")
                          or e["params"]["exceptionDetails"].get("text")
                          for e in events if e["method"] == "Runtime.exceptionThrown"]
    report["consoleErrors"] = [" ".join(str(a.get("value", a.get("description", ""))) for a in e["params"]["args"])
                               for e in events
                               if e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] == "error"]
    report["consoleErrors"] = [m for m in report["consoleErrors"] if not any(b in m for b in BENIGN_CONSOLE)]
    requests = {e["params"]["requestId"]: e["params"]["request"]["url"]
                for e in events if e["method"] == "Network.requestWillBeSent"}
    report["external"] = sorted({u for u in requests.values()
                                 if not re.match(r"(https?://127\.0\.0\.1[:/]|data:|blob:|about:)", u)})
    report["failed"] = sorted({requests.get(e["params"]["requestId"], "?") + " (" + e["params"].get("errorText", "") + ")"
                               for e in events if e["method"] == "Network.loadingFailed"
                               and not e["params"].get("canceled")})
    return report


def _build(out: Path) -> Path:
    """Build the book with the quick preset into ``out``; return the HTML folder."""
    env = dict(os.environ, GAPKIT_PRESET="quick", GAPKIT_RESULTS_DIR=str(out / "results"))
    env.setdefault("OMP_NUM_THREADS", "1")
    env["GAPKIT_PROGRESS"] = "0"  # as python -m gapkit book does
    # tests/conftest.py sets MPLBACKEND=Agg for the unit tests; in the chapters' kernels it would
    # replace the inline backend and every figure would vanish from the book.
    env.pop("MPLBACKEND", None)
    # jupyter_book has no __main__ module: call its command-line entry point
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", "-W", "-n",
           "--keep-going", "--path-output", str(out), str(ROOT)]
    out.mkdir(parents=True, exist_ok=True)
    log = out / "build.log"
    # The build must not stall CI whatever happens in a kernel: 15 minutes (it takes ~3 on 2 cores).
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=900)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the build and the kernels it started
            proc.wait()
            rc = "timeout after 900 s"
    text = log.read_text(errors="replace")
    warnings = [ln for ln in text.splitlines() if re.search(r"WARNING|ERROR", ln) and "IPKernelApp" not in ln]
    assert rc == 0 and not warnings, (f"the book build failed (rc={rc}) or warned:\n" + "\n".join(warnings[:30]) +
                                      "\n--- end of the build log ---\n" + text[-3000:])
    return out / "_build" / "html"


def _pages(html: Path) -> list:
    skip = {"index.html"}  # a redirect to the landing page
    return sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                  if not p.relative_to(html).parts[0].startswith("_") and p.name not in skip
                  and p.relative_to(html).as_posix() not in skip)


def test_book_in_browser(tmp_path):
    exe = _chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed, and CI is set: install it (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium); the test runs wherever it is "
                    "and always in CI")
    html = Path(os.environ["GAPKIT_BOOK_HTML"]) if os.environ.get("GAPKIT_BOOK_HTML") else _build(tmp_path / "book")
    assert (html / "book" / "intro.html").is_file(), f"no built book under {html}"
    shots = Path(os.environ.get("GAPKIT_SCREENSHOTS") or ROOT / "_build" / "screenshots")
    shutil.rmtree(shots, ignore_errors=True)
    vendored = (html / "_static" / "gapkit-vendor" / "manifest.json").is_file()

    server = _serve(html)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    chrome = Chrome(exe, Path(tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)))
    reports, slider_reports, slider_problems = {}, {}, []
    try:
        target = chrome.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = chrome.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Network"):
            chrome.send(f"{domain}.enable", {}, session)
        chrome.send("Emulation.setDeviceMetricsOverride",
                    {"width": WIDTH, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session)
        for page in _pages(html):
            reports[page] = _visit(chrome, session, base + page, shots / (page[:-5].replace("/", "__") + ".png"))
            if page.startswith("notebooks/"):
                found, moves, bad = _move_sliders(chrome, session, page, shots)
                slider_reports[page] = {"widgets": len(found), "controls": sum(len(x.get("controls", [])) for x in found),
                                        "moves": moves}
                slider_problems += bad
    finally:
        chrome.close()
        server.shutdown()
    (shots / "report.json").write_text(json.dumps(reports, indent=1))
    pages = {p: {"height_px": r["height"], "tables": r["outputTables"], "raw_table_lines": len(r["rawTableLines"]),
                 "clipped_boxes": len(r["clipped"]), "folded_cells": r["foldedCells"],
                 "visible_code_cells": len(r["visibleCode"])} for p, r in reports.items()}
    for p in pages:
        pages[p]["weight_bytes"] = _page_weight(html, p)
    (shots / "pages.json").write_text(json.dumps(pages, indent=1))
    (shots / "sliders.json").write_text(json.dumps(slider_reports, indent=1))

    problems = list(slider_problems)
    chapters = [p for p in reports if p.startswith("notebooks/")]
    for page in chapters:
        sr = slider_reports.get(page, {})
        if not sr.get("widgets"):
            problems.append(f"{page}: no precomputed slider (gapkit.book.widgets.interact) on the chapter page")
        elif len(sr["moves"]) < sr["controls"]:
            problems.append(f"{page}: {sr['controls'] - len(sr['moves'])} of {sr['controls']} controls were not "
                            "moved to a new precomputed figure")
        if pages[page]["weight_bytes"] > MAX_PAGE_BYTES:
            problems.append(f"{page}: the page weighs {pages[page]['weight_bytes'] / 1e6:.2f} MB with its images "
                            f"(> {MAX_PAGE_BYTES / 1e6:.0f} MB)")
    if not chapters:
        problems.append("no chapter pages (notebooks/*.html) in the build")
    for page, r in reports.items():
        where = f"{page}:"
        if r["traceback"] or r["errorCells"]:
            problems.append(f"{where} Python error output: {r['tracebackContext'] or r['errorCells'][:2]}")
        for im in r["images"]:
            if not (im["complete"] and im["naturalWidth"] > 0 and im["naturalHeight"] > 0
                    and (not im["visible"] or (im["width"] > 0 and im["height"] > 0))):
                problems.append(f"{where} image did not load or has no size: {im}")
        if r["mathElements"] and (r["mathTypeset"] < 1 or r["mathErrors"]):
            hint = "" if vendored else " (MathJax comes from a CDN in this build: npm was not available)"
            problems.append(f"{where} math not typeset: {r['mathElements']} math elements, {r['mathTypeset']} "
                            f"typeset, {r['mathErrors']} errors{hint}")
        if r["widgetViews"] > r["widgetsDrawn"]:
            problems.append(f"{where} {r['widgetViews']} widgets saved but {r['widgetsDrawn']} drawn")
        if r["progressBars"]:
            problems.append(f"{where} {r['progressBars']} progress bars left on the page (GAPKIT_PROGRESS=0 hides them)")
        if r["jsErrors"] or r["consoleErrors"]:
            problems.append(f"{where} JavaScript errors: {(r['jsErrors'] + r['consoleErrors'])[:3]}")
        if vendored and r["external"]:
            problems.append(f"{where} requests outside localhost: {r['external'][:5]}")
        if r["failed"]:
            problems.append(f"{where} failed requests: {r['failed'][:5]}")
        if r["rawTableLines"]:
            problems.append(f"{where} {len(r['rawTableLines'])} lines of raw Markdown table text in outputs "
                            f"(a table printed as text): {r['rawTableLines'][:3]}")
        if r["clipped"]:
            problems.append(f"{where} {len(r['clipped'])} output or equation boxes clip their content at "
                            f"{WIDTH} px: {r['clipped'][:3]}")
        if r["pageScrollWidth"] > WIDTH + 2:
            problems.append(f"{where} the page is wider than the window ({r['pageScrollWidth']} px > {WIDTH})")
    for page in chapters:
        r = reports[page]
        figures = [im for im in r["images"] if im["inOutput"] and im["visible"]]
        if not figures:
            problems.append(f"{page}: no figure in the chapter")
        want = COLAB + page[:-5] + ".ipynb"
        if want not in r["launchColab"]:
            problems.append(f"{page}: the Colab launch button does not open {want}: {r['launchColab']}")
        if r["foldedCells"] < 1:
            problems.append(f"{page}: no folded (hide-input) code cell: plotting code would fill the page")
        drawing = [code.strip().splitlines()[0][:80] for code in r["visibleCode"] if PLOTTING_CODE.search(code)]
        if drawing:
            problems.append(f"{page}: {len(drawing)} visible code cells draw or format results (tag them "
                            f"hide-input): {drawing[:3]}")
        source = ROOT / (page[:-5] + ".py")
        if source.is_file() and "plots.table(" in source.read_text() and r["outputTables"] < 1:
            problems.append(f"{page}: the chapter shows results tables (plots.table) but the page has no real table")
        wrong = [u for u in r["colabLinks"] if u != want]
        if wrong or len(r["colabLinks"]) < 2:
            problems.append(f"{page}: Colab links {r['colabLinks']} should be the launch button and the badge, "
                            f"both to {want}")
    if not any(r["widgetsDrawn"] for r in reports.values()):
        problems.append("no widget was drawn from its saved state on any page")
    if not any(r["widgetFigures"] for r in reports.values()):
        problems.append("no widget shows its figure from the saved state on any page")
    if not any(r["mathTypeset"] for r in reports.values()):
        problems.append("no math typeset on any page")
    intro = reports.get("book/intro.html")
    if intro is None:
        problems.append("no landing page book/intro.html")
    elif not intro["summaryPanels"]:
        problems.append("book/intro.html: the summary has no panel pictures (.gapkit-summary img)")
    else:
        small = [q for q in intro["summaryPanels"]
                 if not (isinstance(q["minTextPx"], (int, float)) and q["minTextPx"] >= SUMMARY_MIN_TEXT_PX)]
        if small:
            problems.append(f"book/intro.html: summary panels drawn with text under {SUMMARY_MIN_TEXT_PX} px: {small[:3]}")
        if not intro["summaryFindingPx"] or min(intro["summaryFindingPx"]) < SUMMARY_MIN_TEXT_PX:
            problems.append(f"book/intro.html: the summary's sentences are missing or under {SUMMARY_MIN_TEXT_PX} px: "
                            f"{intro['summaryFindingPx'][:3]}")
    summary = {p: {k: r[k] for k in ("mathTypeset", "widgetsDrawn", "widgetFigures", "widgetClasses")}
               | {"images": len(r["images"])} | pages[p] for p, r in reports.items()}
    print(f"screenshots in {shots}\n" + json.dumps(summary, indent=1))
    assert not problems, "\n".join(problems) + f"\n(screenshots and report.json in {shots})"
