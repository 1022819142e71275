"""Experiments: each chapter's computation, runnable without a notebook.

An experiment is a function registered with :func:`experiment`; it takes a :class:`Context`
(preset, seed, output folder, device, settings) and returns a dict of results. :func:`run` adds
the config and provenance (gapkit version, git commit, device, torch version, wall time) and
writes ``results.json`` atomically with a checksum::

    python -m gapkit run vae-basics --preset quick --seed 0 --out DIR

**Run identity.** A run folder belongs to one identity: the experiment, the effective preset
(which names the data: dataset, binarization, subsets), the effective settings, the seed, the
gapkit version and a hash of the source of the whole ``gapkit`` package (so that fixing a bug in
any module the experiment uses invalidates its results). The identity is written to
``identity.json`` (with a checksum) before any work. A run reuses a finished result or resumes an
unfinished one only from a folder of the same identity; a folder of another identity, or one that
is not a gapkit run, is refused before any work with a message that shows both identities, and
``force=True`` (``--force``) moves the old folder aside and starts from scratch, training included.
The results cache (the default output, under :func:`results_dir`) puts each identity in its own
folder, so a changed setting or changed code never meets an old result.

**Settings.** An experiment declares its settings per preset (``@experiment(..., settings=SETTINGS)``);
``run(name, ..., **params)`` overrides them by name. Unknown names are refused with the list of
valid ones, and each value must have its default's type and sign (see :func:`check_settings`).

Every module in this package is imported by :func:`registry`, so a new experiment is a new file.
"""
from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import json
import numbers
import os
import pkgutil
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import __version__
from ..device import default_device, describe
from .. import checks
from ..io import IntegrityError, read_json, write_json
from ..presets import Preset, get_preset
from ..results import Results

__all__ = ["experiment", "registry", "get", "run", "load", "finished", "Context", "results_dir", "identity",
           "check_settings", "resolve_overrides", "effective", "describe_settings", "parse_value", "code_hash",
           "RunIdentityError"]


class RunIdentityError(ValueError):
    """An output folder that holds another run (or something that is not a gapkit run)."""

_REGISTRY: dict = {}


@dataclass
class Experiment:
    name: str
    func: callable
    description: str
    chapter: str = ""
    cost: dict = field(default_factory=dict)  # preset -> rough wall time, e.g. {"book": "3 min CPU"}; paper: gapkit.cost
    settings: dict | None = None              # preset -> {setting: default}; "book" stands in for a missing preset
    preset_settings: tuple = ()               # settings that are dicts of preset-field changes (e.g. "changes")

    def defaults(self, preset_name: str) -> dict:
        """The experiment's settings at a preset, with their default values."""
        if not self.settings:
            return {}
        return dict(self.settings.get(preset_name, self.settings.get("book", {})))


def experiment(name: str, description: str, chapter: str = "", cost: dict | None = None,
               settings: dict | None = None, preset_settings: tuple = ()):
    """Register ``func(ctx) -> dict`` as the experiment ``name``; ``settings`` maps each preset name
    to the experiment's settings and their defaults (``ctx.settings`` holds them, overrides applied);
    ``preset_settings`` names the settings that hold changes to preset fields (the experiment applies
    them itself, so a preset-field override of the same field is refused in favour of the setting)."""
    def wrap(func):
        _REGISTRY[name] = Experiment(name, func, description, chapter, cost or {}, settings, tuple(preset_settings))
        return func
    return wrap


def _check_value(key: str, v, default):
    """``v`` checked against the type and sign of its ``default`` (see :func:`check_settings`)."""
    if isinstance(default, bool):
        if not isinstance(v, bool):
            raise ValueError(f"setting {key} must be True or False, got {v!r}")
        return v
    if isinstance(default, numbers.Integral):
        return checks.integer(key, v, lo=1 if default > 0 else (0 if default == 0 else None))
    if isinstance(default, numbers.Real):
        lo = 0.0 if default >= 0 else None
        return checks.number(key, v, lo=lo, lo_open=default > 0)
    if isinstance(default, str):
        if not isinstance(v, str):
            raise ValueError(f"setting {key} must be a string such as {default!r}, got {v!r}")
        return v
    if isinstance(default, (list, tuple)):
        if isinstance(v, (str, bytes, dict)) or not isinstance(v, (list, tuple)):
            raise ValueError(f"setting {key} must be a list such as {list(default)!r}, got {v!r}")
        if default:
            proto = min(default, key=lambda d: d if isinstance(d, numbers.Real) and not isinstance(d, bool) else 0) \
                if all(isinstance(d, numbers.Real) for d in default) else default[0]
            return [_check_value(f"{key}[{i}]", x, proto) for i, x in enumerate(v)]
        return list(v)
    if isinstance(default, dict):
        if not isinstance(v, dict):
            raise ValueError(f"setting {key} must be a dict such as {default!r}, got {v!r}")
        if default:
            checks.known_keys(f"keys in setting {key}", v, default)
            return {k: _check_value(f"{key}.{k}", x, default[k]) for k, x in v.items()}
        return dict(v)
    # a default of None: None, a positive number, a string, or a list of those
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        return checks.integer(key, v, lo=1) if isinstance(v, numbers.Integral) else checks.number(key, v, 0, lo_open=True)
    if isinstance(v, (list, tuple)) and all(isinstance(x, (str, numbers.Real)) and not isinstance(x, bool) for x in v):
        return list(v)
    raise ValueError(f"setting {key} must be None, a positive number, a string or a list of those, got {v!r}")


def check_settings(exp: "Experiment", preset_name: str, params: dict) -> dict:
    """Validate overrides of ``exp``'s settings at a preset -> the checked overrides.

    Names must be settings the experiment declares (the message lists them). A value must match its
    default: a bool for a bool; an integer for an integer, >= 1 when the default is positive
    (``epochs=-3`` is refused before any work); a finite number for a float, > 0 when the default is
    positive; a string for a string; a list for a list (each element checked against the defaults'
    smallest); a dict for a dict (with known keys); for a default of None: None, a positive number, a
    string or a list of those.
    """
    from ..presets import check_field
    defaults = exp.defaults(preset_name)
    if params and not defaults:
        raise ValueError(f"experiment {exp.name!r} takes no settings, got {', '.join(map(repr, params))}")
    checks.known_keys(f"settings for experiment {exp.name!r} at preset {preset_name!r}", params, defaults)
    out = {}
    for k, v in params.items():
        if k in exp.preset_settings and isinstance(v, dict):  # preset-field changes: checked as preset fields
            out[k] = {f: check_field(f, x) for f, x in v.items() if f in _preset_fields()} | \
                {f: _check_value(f"{k}.{f}", x, defaults[k].get(f)) for f, x in v.items() if f not in _preset_fields()}
        else:
            out[k] = _check_value(k, v, defaults[k])
    return out


def _preset_fields() -> tuple:
    from ..presets import FIELDS
    return tuple(FIELDS)


def resolve_overrides(exp: "Experiment", preset_name: str, overrides: dict) -> tuple[dict, dict]:
    """Split ``overrides`` into (preset-field changes, setting overrides), both checked.

    A key is a setting of the experiment (``alpha``), a dotted path into a dict setting
    (``changes.epochs`` changes one entry and keeps the others), a preset field (``epochs``) or an
    explicit ``preset.FIELD`` / ``settings.NAME``. A bare name that is both a setting and a preset field
    means the setting. A preset field that the experiment sets itself through one of its
    ``preset_settings`` is refused, naming the setting to change instead.
    """
    from ..presets import check_field
    defaults = exp.defaults(preset_name)
    fields = _preset_fields()
    preset_changes, params = {}, {}
    for key, value in overrides.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"an override needs a name, got {key!r}")
        kind, name = None, key
        if key.startswith("preset."):
            kind, name = "preset", key[len("preset."):]
        elif key.startswith("settings."):
            kind, name = "setting", key[len("settings."):]
        root = name.split(".")[0]
        if kind is None:
            kind = "setting" if root in defaults else "preset" if name in fields else None
        if kind is None:
            raise ValueError(f"unknown setting or preset field {key!r} for experiment {exp.name!r} at preset "
                             f"{preset_name!r}; valid settings: {', '.join(sorted(defaults)) or '(none)'}; valid "
                             f"preset fields: {', '.join(fields)}")
        if kind == "preset":
            value = check_field(name, value)
            for ps in exp.preset_settings:
                if name in (defaults.get(ps) or {}):
                    raise ValueError(f"experiment {exp.name!r} sets the preset field {name!r} itself through its "
                                     f"setting {ps}.{name} (= {defaults[ps][name]!r} at preset {preset_name!r}); "
                                     f"override that instead: --set {ps}.{name}=VALUE")
            preset_changes[name] = value
        elif "." in name:
            if root not in defaults or not isinstance(defaults[root], dict):
                raise ValueError(f"{key!r}: {root!r} is not a dict setting of experiment {exp.name!r}; valid "
                                 f"dict settings: {', '.join(k for k, v in defaults.items() if isinstance(v, dict)) or '(none)'}")
            sub = name.split(".", 1)[1]
            base = params.get(root, dict(defaults[root]))
            params[root] = {**base, sub: value}
        else:
            params[name] = value
    return preset_changes, check_settings(exp, preset_name, params)


def registry() -> dict:
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> Experiment:
    reg = registry()
    if name not in reg:
        raise ValueError(f"unknown experiment {name!r}; valid experiments: {', '.join(reg)}")
    return reg[name]


def results_dir() -> Path:
    """``$GAPKIT_RESULTS_DIR``, else ``~/.cache/gapkit/results``."""
    if os.environ.get("GAPKIT_RESULTS_DIR"):
        return Path(os.environ["GAPKIT_RESULTS_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gapkit" / "results"


@dataclass
class Context:
    """What an experiment gets: its preset, seed, output folder, device and extra parameters."""

    preset: Preset
    seed: int
    out: Path
    device: torch.device
    progress: bool = True
    params: dict = field(default_factory=dict)      # the checked overrides
    defaults: dict = field(default_factory=dict)    # the experiment's settings at this preset

    @property
    def settings(self) -> dict:
        """The effective settings: the experiment's defaults at this preset, overrides applied."""
        return {**self.defaults, **self.params}

    def data(self, **changes):
        """The preset's dataset (``changes`` override preset fields such as ``binarization``); a smoke
        run cuts its test split (:func:`gapkit.smoke.cap_test`)."""
        from ..data import load
        p = self.preset.replace(**changes) if changes else self.preset
        from .. import smoke
        return smoke.cap_test(load(p.dataset, p.binarization, subset=p.train_subset, test_subset=p.test_subset,
                                   seed=0, device=self.device))

    def model(self, data, **changes):
        """A fresh VAE of the preset's architecture for ``data``, seeded by ``self.seed``."""
        from ..models import VAE
        p = self.preset.replace(**changes) if changes else self.preset
        torch.manual_seed(self.seed)
        # No output-bias initialisation by default: on the small digits model it starts the decoder
        # at the pixel marginals and training collapses the posterior.
        return VAE(data.dim, p.latent, p.hidden, p.activation, data.likelihood).to(self.device)

    def stage(self, name: str, func):
        """One named stage of the experiment (a checkpoint sweep, an evaluation, coding...): the
        JSON-able result of ``func()``, computed once and kept in ``out/stages/NAME.json``
        (checksummed, written atomically) so that a run interrupted later continues from its last
        finished stage. Training is not a stage of this kind: :func:`gapkit.train.train` with an
        ``out_dir`` resumes from its own last checkpoint.

        The result always comes back through JSON (also the first time), so an uninterrupted run and
        one that read some stages back compute the same numbers; ``func`` must draw its random numbers
        from its own seeded generators, not from what an earlier stage left in the global one.
        ``out/stages/NAME.started`` marks a stage that has begun.
        """
        import re
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
        if not slug:
            raise ValueError(f"a stage needs a name with letters or digits, got {name!r}")
        folder = self.out / "stages"
        path = folder / f"{slug}.json"
        if path.exists():
            try:
                return Results(read_json(path, require_checksum=True))["result"]
            except IntegrityError:  # a damaged file is computed again, never trusted
                pass
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{slug}.started").touch()
        t0 = time.perf_counter()
        write_json(path, {"stage": name, "result": func(), "seconds": time.perf_counter() - t0}, checksum=True)
        return Results(read_json(path, require_checksum=True))["result"]

    def generator(self, name: str) -> torch.Generator:
        """A ``torch.Generator`` on the run's device seeded from (run seed, ``name``): the first 8 bytes
        of ``SHA-256("SEED/NAME")`` as an integer below 2^63. A stage draws from its own, so its numbers
        do not depend on what ran before it (nor on whether that came back from ``out/stages``)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a generator needs a name (a non-empty string), got {name!r}")
        digest = hashlib.sha256(f"{self.seed}/{name}".encode()).digest()
        return torch.Generator(device=self.device).manual_seed(int.from_bytes(digest[:8], "little") & (2 ** 63 - 1))

    def train_config(self, **changes):
        from ..train import TrainConfig
        p = self.preset
        base = dict(epochs=p.epochs, batch_size=p.batch_size, lr=p.lr, seed=self.seed,
                    eval_every=p.eval_every, checkpoint_every=p.checkpoint_every, progress=self.progress)
        base.update(changes)
        return TrainConfig(**base)


def _git_commit():
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _code_digest(source: str) -> str:
    """SHA-256 of Python source as a syntax tree without docstrings: editing prose or comments keeps
    cached results, while any change to what runs invalidates them."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


def _source_hash(func) -> str:
    """A short hash of one module's code (the module that defines ``func``)."""
    try:
        return _code_digest(inspect.getsource(inspect.getmodule(func)))[:12]
    except (OSError, TypeError, SyntaxError):
        return "unknown"


_CODE_CACHE: dict = {}


def code_hash() -> str:
    """A short hash of the code of every module of the ``gapkit`` package (docstrings and comments
    aside). Every cached result is keyed by it, so that no result computed by code that no longer
    exists is ever shown. Recomputed only when a file's size or modification time changes."""
    root = Path(__file__).resolve().parents[1]
    files = sorted(root.rglob("*.py"))
    stamp = tuple((str(f.relative_to(root)), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    if _CODE_CACHE.get("stamp") != stamp:
        h = hashlib.sha256()
        for f in files:
            try:
                d = _code_digest(f.read_text())
            except (SyntaxError, UnicodeDecodeError):
                d = hashlib.sha256(f.read_bytes()).hexdigest()
            h.update(f"{f.relative_to(root).as_posix()}:{d}\n".encode())
        _CODE_CACHE.update(stamp=stamp, hash=h.hexdigest()[:16])
    return _CODE_CACHE["hash"]


def provenance(device, wall_time: float) -> dict:
    return {"gapkit_version": __version__, "git_commit": _git_commit(), "device": describe(device),
            "torch_version": torch.__version__, "python": platform.python_version(),
            "wall_time_s": round(wall_time, 3), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def effective(name: str, preset: str | None = None, overrides: dict | None = None, **params):
    """(experiment, effective preset, checked setting overrides, checked preset changes) of a run."""
    exp = get(name)
    p = get_preset(preset)
    if overrides is not None and not isinstance(overrides, dict):
        raise ValueError(f"overrides must be a dict of name -> value, got {type(overrides).__name__}")
    both = {**(overrides or {}), **params}
    preset_changes, settings = resolve_overrides(exp, p.name, both)
    return exp, (p.replace(**preset_changes) if preset_changes else p), settings, preset_changes


def identity(name: str, preset: str | None = None, seed: int = 0, overrides: dict | None = None,
             smoke: bool = False, **params) -> dict:
    """The identity of a run: what makes its results what they are (see the module docstring).

    ``overrides`` (and ``params``) change settings or preset fields (:func:`resolve_overrides`);
    ``smoke=True`` is a smoke run (:mod:`gapkit.smoke`), an identity of its own.
    Raises ``ValueError`` for an unknown experiment or preset, a bad seed, or bad overrides.
    """
    seed = checks.seed(seed)
    exp, p, settings, preset_changes = effective(name, preset, overrides, **params)
    ident = {"experiment": name, "preset": p.to_dict(), "seed": seed, "params": settings,
             "preset_overrides": preset_changes, "settings": {**exp.defaults(p.name), **settings},
             "code": code_hash(), "gapkit_version": __version__}
    if smoke:
        ident["smoke"] = True
    return json.loads(json.dumps(ident))  # as it reads back from identity.json (tuples become lists)


def run_id(ident: dict) -> str:
    """A short hash of an identity (names the run's folder in the results cache)."""
    from ..io import content_digest
    return content_digest(ident)[:12]


def default_out(name: str, preset: str, seed: int, ident: dict | None = None) -> Path:
    """Where the results cache keeps a run: ``results_dir()/NAME/PRESET-seedSEED-RUNID``
    (``PRESET-smoke-seedSEED-RUNID`` for a smoke run)."""
    ident = ident if ident is not None else identity(name, preset, seed)
    return results_dir() / name / f"{preset}{'-smoke' if ident.get('smoke') else ''}-seed{seed}-{run_id(ident)}"


def _run_folder(ident: dict, out=None) -> Path:
    """``out``, or the results cache's folder of this identity."""
    return Path(out) if out is not None else default_out(ident["experiment"], ident["preset"]["name"],
                                                         ident["seed"], ident)


def _differences(a, b, prefix="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _differences(a.get(k, "(absent)"), b.get(k, "(absent)"), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix[:-1]}: {a!r} there, {b!r} in this run"]


def _move_aside(out: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = out.with_name(f"{out.name}.old-{stamp}")
    i = 1
    while dest.exists():
        dest = out.with_name(f"{out.name}.old-{stamp}-{i}")
        i += 1
    os.replace(out, dest)
    print(f"gapkit: moved the old run folder aside to {dest}")
    return dest


def _claim(out: Path, ident: dict, force: bool) -> dict | None:
    """Make ``out`` this run's folder before any work; return a finished result to reuse, else None."""
    idf, res = out / "identity.json", out / "results.json"
    from ..io import own_entries
    if out.is_dir() and own_entries(out):  # leftovers of a killed gapkit process do not count
        problem = None
        try:
            old = read_json(idf, require_checksum=True) if idf.exists() else None
        except IntegrityError as e:
            old, problem = None, str(e)
        if old is None:
            problem = problem or "it holds files but no identity.json: it is not a gapkit run folder"
        elif old != ident:
            diff = "; ".join(_differences(old, ident)) or "(unreadable)"
            problem = f"it holds another run (differences: {diff})"
        if problem is not None and not force:
            raise RunIdentityError(f"refusing to use {out}: {problem}. Nothing was changed. Give another --out, "
                                   "or --force (force=True) to move that folder aside and start this run from scratch.")
        if force:
            _move_aside(out)
        elif res.exists():
            result = read_json(res, require_checksum=True)
            if result.get("config") != ident:
                raise RunIdentityError(f"refusing {res}: its config does not match the folder's identity.json "
                                       "(edited by hand?); use --force to start again")
            return result
    out.mkdir(parents=True, exist_ok=True)
    if not idf.exists():
        write_json(idf, ident, checksum=True)
    return None


def run(name: str, preset: str | None = None, seed: int = 0, out=None, force: bool = False,
        device=None, progress: bool = True, overrides: dict | None = None, smoke: bool | None = None,
        **params) -> Results:
    """Run (or reuse) experiment ``name`` and return its results (also in ``out/results.json``) as
    :class:`gapkit.results.Results` (a dict; ``res.at("a.b.c")`` reads a path).

    Everything is checked before any work: the experiment, preset, seed (0..2^63-1), overrides of
    settings and preset fields (``overrides={...}`` or keyword ``params``, see :func:`resolve_overrides`),
    device and output folder. A folder of another identity
    is refused (:class:`RunIdentityError`); ``force=True`` moves it aside and starts from scratch.
    ``smoke=True`` (default: ``$GAPKIT_SMOKE=1`` or a smoke run in progress) caps every loop
    (:mod:`gapkit.smoke`); its ``results.json`` says ``"smoke": true`` and holds the cost records.
    Every chapter calls it; `chapter 0 <https://gapkit.github.io/gapkit/notebooks/00_vae_basics.html>`_
    explains the cache.
    """
    from ..io import check_output
    from .. import smoke as smoke_mode
    smoke = smoke_mode.requested() if smoke is None else bool(smoke)
    ident = identity(name, preset, seed, overrides, smoke=smoke, **params)
    exp, p = get(name), Preset.from_dict(ident["preset"])  # the effective preset, overrides applied
    dev = default_device(device)
    out = check_output(out if out is not None else _run_folder(ident), "dir", what="run folder")
    cached = _claim(out, ident, force)
    if cached is not None:
        return Results(cached)
    t0 = time.perf_counter()
    ctx = Context(p, ident["seed"], out, dev, progress, dict(ident["params"]), exp.defaults(p.name))
    with smoke_mode.enabled(smoke, dev) as costs:
        result = exp.func(ctx)
    result = {"config": ident, **result, "provenance": provenance(dev, time.perf_counter() - t0)}
    if smoke:
        result.update(smoke=True, cost=costs)
    write_json(out / "results.json", result, checksum=True)
    return Results(read_json(out / "results.json", require_checksum=True))


def finished(name: str, preset: str | None = None, seed: int = 0, out=None, overrides: dict | None = None,
             smoke: bool = False, **params) -> Results | None:
    """The finished result of this run identity in ``out`` (or the cache), or None; computes nothing."""
    ident = identity(name, preset, seed, overrides, smoke=smoke, **params)
    path = _run_folder(ident, out) / "results.json"
    try:
        res = read_json(path, require_checksum=True) if path.exists() else None
    except IntegrityError:
        return None
    return Results(res) if res is not None and res.get("config") == ident else None


def load(name: str, preset: str | None = None, seed: int = 0, out=None, overrides: dict | None = None,
         smoke: bool = False, **params) -> Results:
    """Read a finished ``results.json`` (checksum verified) without running anything, as
    :class:`gapkit.results.Results`."""
    ident = identity(name, preset, seed, overrides, smoke=smoke, **params)
    path = _run_folder(ident, out) / "results.json"
    if not path.exists():
        raise FileNotFoundError(f"no results at {path}; run: python -m gapkit run {name} --preset "
                                f"{ident['preset']['name']}")
    res = read_json(path, require_checksum=True)
    if res.get("config") != ident:
        raise RunIdentityError(f"{path} belongs to another run: {'; '.join(_differences(res.get('config'), ident))}")
    return Results(res)


def parse_value(text: str):
    """A ``--set`` value from the command line: JSON (``3``, ``0.5``, ``true``, ``null``, ``[1, 2]``,
    ``"a"``), else comma-separated values as a list (``500,500``), else the text itself."""
    text = text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    if "," in text:
        return [parse_value(t) for t in text.split(",")]
    return text


def parse_sets(items) -> dict:
    """``["key=value", ...]`` -> ``{key: parsed value}``; a malformed item is a ``ValueError``."""
    out = {}
    for item in items or ():
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise ValueError(f"--set takes key=value, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = parse_value(v)
    return out


def describe_settings(name: str, preset: str | None = None, overrides: dict | None = None) -> list[dict]:
    """Rows (name, value, default, source) of every preset field and setting of a run: what
    ``python -m gapkit show NAME --preset P [--set k=v]`` prints."""
    exp, p, settings, preset_changes = effective(name, preset, overrides)
    base = get_preset(preset)
    rows = []
    for f in _preset_fields():
        set_by = [ps for ps in exp.preset_settings if f in (exp.defaults(base.name).get(ps) or {})]
        source = ("--set" if f in preset_changes else
                  f"preset {base.name} (experiment changes it through setting {set_by[0]})" if set_by else
                  f"preset {base.name}")
        rows.append({"name": f"preset.{f}", "value": getattr(p, f), "default": getattr(base, f), "source": source})
    defaults = exp.defaults(base.name)
    for k, d in defaults.items():
        rows.append({"name": k, "value": settings.get(k, d), "default": d,
                     "source": "--set" if k in settings else f"experiment {name} at preset {base.name}"})
    return rows
