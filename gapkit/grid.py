"""Grids: one experiment over seeds and a cross product of settings, on this machine or a Ray cluster.

    python -m gapkit grid reverse-half-asleep --preset paper --seeds 0-2 --set epochs=50,100 --engine ray

Each cell is an ordinary run (:func:`gapkit.experiments.run`): its own folder
``OUT/cells/<overrides>-seed<N>-<run id>`` with its identity, checkpoints and ``results.json``. A
finished cell is reused without starting anything, an interrupted one resumes from its last
checkpoint, and a failed one is reported with its error while the others go on; running the grid
again runs only the missing or failed cells. ``OUT/grid.json`` (checksummed) holds every cell's
state and scalar results and, for each setting, the mean, standard deviation (numpy's, ``ddof=0``)
and count over seeds of every scalar result and every curve (a list of numbers of the same length
in every seed).

Engines:

* ``local``: a process pool sized to the machine: ``workers`` cells at once (default: one per core,
  at most the number of cells), each with ``cores // workers`` torch threads, so that cores are not
  oversubscribed.
* ``ray``: every cell is a Ray task (one GPU each when the cluster has GPUs), submitted to a running
  cluster (``address="auto"`` or ``"ray://host:port"``) or to a local Ray started for the grid. Ray is
  an optional extra (``pip install "gapkit[cluster]"``), imported only here. On a cluster, ``OUT``
  must be on storage that every node sees (the cells write their folders there).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import time
import traceback
from pathlib import Path

import numpy as np

from . import checks
from .io import IntegrityError, check_output, own_entries, read_json, write_json
from .progress import tqdm

__all__ = ["run_grid", "parse_seeds", "parse_grid_sets", "cells", "aggregate", "ENGINES"]

ENGINES = ("local", "ray")
RAY_MISSING = ("the Ray engine needs Ray, an optional extra of gapkit: pip install \"gapkit[cluster]\" "
               "(or pip install ray); --engine local needs nothing more")


# --------------------------------------------------------------------------- parsing
def parse_seeds(text) -> list[int]:
    """``"0-2"`` -> [0, 1, 2]; ``"0,3,5"``; ``"4"``; or a list of ints. Each a valid seed, no repeats."""
    if isinstance(text, (list, tuple)):
        seeds = [checks.seed(s) for s in text]
    else:
        seeds = []
        for part in str(text).split(","):
            part = part.strip()
            m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
            try:
                if m:
                    lo, hi = int(m.group(1)), int(m.group(2))
                    if hi < lo:
                        raise ValueError
                    seeds += list(range(lo, hi + 1))
                else:
                    seeds.append(int(part))
            except ValueError:
                raise ValueError(f"--seeds takes seeds such as 0-2 or 0,3,5; got {text!r}") from None
        seeds = [checks.seed(s) for s in seeds]
    if not seeds:
        raise ValueError("--seeds names no seed; give e.g. 0-2")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds repeats a seed: {seeds}")
    return seeds


def _split_top(text: str) -> list[str]:
    """Split at commas outside brackets and quotes: ``"[1,2],[3]"`` -> ``["[1,2]", "[3]"]``."""
    parts, depth, quote, cur = [], 0, None, ""
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def parse_grid_sets(items) -> dict:
    """``["alpha=0,0.5", "Ks=[1,2],[3]"]`` -> ``{"alpha": [0, 0.5], "Ks": [[1, 2], [3]]}``: each
    comma (outside brackets) separates grid values; a list value goes in brackets."""
    from .experiments import parse_value
    out = {}
    for item in items or ():
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise ValueError(f"--set takes key=value[,value...], got {item!r}")
        k, v = item.split("=", 1)
        k = k.strip()
        if k in out:
            raise ValueError(f"--set names {k!r} twice; give its values once, separated by commas")
        vals = [parse_value(p) for p in _split_top(v) if p != ""]
        if not vals:
            raise ValueError(f"--set {k}= gives no value")
        out[k] = vals
    return out


def _slug(overrides: dict) -> str:
    if not overrides:
        return "default"
    text = "_".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in overrides.items())
    text = re.sub(r"[^A-Za-z0-9_.=,+-]", "", text)[:60]
    return text or "cell"


def cells(name: str, preset: str | None, seeds, grid: dict) -> list[dict]:
    """Every (setting combination, seed) cell of a grid, each checked (its run identity) before any work."""
    from .experiments import identity, run_id
    keys = list(grid)
    combos = [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))] if keys else [{}]
    out = []
    for ov in combos:
        for s in seeds:
            ident = identity(name, preset, s, ov)  # raises a clear ValueError for a bad value
            out.append({"seed": s, "overrides": ov, "key": json.dumps(ov, sort_keys=True), "id": run_id(ident),
                        "dir": f"{_slug(ov)}-seed{s}-{run_id(ident)}"})
    return out


# --------------------------------------------------------------------------- one cell (in a worker)
def _run_cell(name, preset, seed, overrides, out, device, threads):
    """Run one cell; never raises: returns its state, wall time and error (a worker must go on)."""
    import torch
    if threads:
        torch.set_num_threads(int(threads))
    t0 = time.perf_counter()
    try:
        from .experiments import run
        run(name, preset=preset, seed=seed, out=out, device=device, progress=False, overrides=overrides)
        return {"status": "done", "seconds": time.perf_counter() - t0}
    except Exception as e:  # reported in grid.json; the other cells go on
        return {"status": "failed", "seconds": time.perf_counter() - t0,
                "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=8)}


def _init_local_worker(threads):
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["GAPKIT_PROGRESS"] = "0"


# --------------------------------------------------------------------------- aggregates
def _leaves(obj, prefix=""):
    """Numeric leaves of a result: scalars and 1-D numeric lists (curves), by slash-joined path."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if prefix == "" and k in ("config", "provenance", "checksum"):
                continue
            yield from _leaves(v, f"{prefix}{k}/")
    elif isinstance(obj, bool):
        return
    elif isinstance(obj, (int, float)):
        yield prefix[:-1], float(obj)
    elif isinstance(obj, list) and obj and len(obj) <= 100000 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in obj):
        yield prefix[:-1], [float(x) for x in obj]


def aggregate(results: list[dict]) -> dict:
    """Mean, std (numpy, ddof=0) and count over ``results`` (one per seed) of every scalar and every
    curve that all of them have with the same length."""
    if not results:
        return {"n": 0, "scalars": {}, "curves": {}}
    leaves = [dict(_leaves(r)) for r in results]
    common = set(leaves[0]).intersection(*leaves[1:])
    scalars, curves = {}, {}
    for k in sorted(common):
        vals = [lv[k] for lv in leaves]
        if isinstance(vals[0], float) and all(isinstance(v, float) for v in vals):
            a = np.asarray(vals)
            scalars[k] = {"mean": float(a.mean()), "std": float(a.std()), "n": len(a)}
        elif all(isinstance(v, list) for v in vals) and len({len(v) for v in vals}) == 1:
            a = np.asarray(vals)
            curves[k] = {"mean": a.mean(0).tolist(), "std": a.std(0).tolist(), "n": len(a)}
    return {"n": len(results), "scalars": scalars, "curves": curves}


# --------------------------------------------------------------------------- the grid
def default_grid_out(name: str, preset: str, seeds, grid) -> Path:
    from .experiments import results_dir
    h = hashlib.sha256(json.dumps([name, preset, seeds, grid], sort_keys=True).encode()).hexdigest()[:10]
    return results_dir() / "grids" / name / f"{preset}-{h}"


def run_grid(name: str, preset: str | None = None, seeds=(0,), grid: dict | None = None, out=None,
             engine: str = "local", address: str | None = None, workers: int | None = None,
             device=None, progress: bool = True) -> dict:
    """Run the cells of a grid (see the module docstring) and return what ``grid.json`` holds.

    ``grid`` maps each setting or preset field to its list of values. Everything is checked before
    any work: the experiment, preset, seeds, every cell's overrides, the engine, the device and the
    output folder. Only missing or failed cells run.
    """
    from .device import default_device
    from .experiments import RunIdentityError, finished, get
    from .presets import get_preset
    get(name)
    p = get_preset(preset)
    seeds = parse_seeds(seeds)
    grid = dict(grid or {})
    for k, v in grid.items():
        if not isinstance(v, (list, tuple)) or not v:
            raise ValueError(f"grid values of {k!r} must be a non-empty list, got {v!r}")
    checks.one_of("engine", engine, ENGINES)
    if address is not None and engine != "ray":
        raise ValueError("--address is for --engine ray")
    if workers is not None:
        checks.positive_int("workers", workers)
    dev = default_device(device, announce=False) if device is not None else None
    todo = cells(name, p.name, seeds, grid)
    out = check_output(out if out is not None else default_grid_out(name, p.name, seeds, grid), "dir",
                       what="grid folder")
    spec = json.loads(json.dumps({"experiment": name, "preset": p.name, "seeds": seeds, "grid": grid}))
    spec_path = out / "grid-spec.json"
    if spec_path.exists():
        try:
            old = read_json(spec_path, require_checksum=True)
        except IntegrityError as e:
            raise RunIdentityError(f"refusing to use {out}: {e}") from None
        if old != spec:
            raise RunIdentityError(f"refusing to use {out}: it holds another grid ({old}); give another --out")
    elif out.exists() and own_entries(out):
        raise RunIdentityError(f"refusing to use {out}: it holds files but is not a gapkit grid folder")
    if engine == "ray":
        try:
            import ray  # noqa: F401  (the optional extra, imported only for this engine)
        except ImportError:
            raise ValueError(RAY_MISSING) from None
    write_json(spec_path, spec, checksum=True)

    state = {}
    for c in todo:
        res = finished(name, p.name, c["seed"], out / "cells" / c["dir"], c["overrides"])
        state[c["dir"]] = {"status": "done" if res is not None else "pending", "seconds": 0.0, "reused": res is not None}
    pending = [c for c in todo if state[c["dir"]]["status"] == "pending"]
    dev_name = str(dev) if dev is not None else None

    bar = tqdm(total=len(todo), initial=len(todo) - len(pending), desc=f"grid {name}", unit="cell",
               disable=not progress)

    def show():
        counts = {}
        for s in state.values():
            counts[s["status"]] = counts.get(s["status"], 0) + 1
        bar.set_postfix(counts, refresh=True)

    def finish(c, outcome):
        state[c["dir"]] = {**outcome, "reused": False}
        bar.update(1)
        show()
        if outcome["status"] == "failed":
            bar.write(f"gapkit grid: cell {c['dir']} failed: {outcome['error']}")

    t0 = time.perf_counter()
    if pending:
        if engine == "local":
            _local(name, p.name, pending, out, dev_name, workers, state, show, finish)
        else:
            _ray(name, p.name, pending, out, dev_name, address, workers, state, show, finish)
    bar.close()
    result = _collect(name, p.name, todo, out, state, spec, engine, time.perf_counter() - t0)
    write_json(out / "grid.json", result, checksum=True)
    failed = [c for c in result["cells"] if c["status"] == "failed"]
    if failed:
        print(f"gapkit grid: {len(failed)} of {len(todo)} cells failed; run the same command again to retry them")
    return read_json(out / "grid.json", require_checksum=True)


def _local(name, preset, pending, out, device, workers, state, show, finish):
    import concurrent.futures as cf
    import multiprocessing as mp
    cores = os.cpu_count() or 1
    w = min(len(pending), workers or cores)
    threads = max(1, cores // w)
    if w == 1:  # no pool: run here
        import torch
        old = torch.get_num_threads()
        try:
            for c in pending:
                state[c["dir"]]["status"] = "running"
                show()
                finish(c, _run_cell(name, preset, c["seed"], c["overrides"], str(out / "cells" / c["dir"]), device, threads))
        finally:
            torch.set_num_threads(old)
        return
    with cf.ProcessPoolExecutor(max_workers=w, mp_context=mp.get_context("spawn"),
                                initializer=_init_local_worker, initargs=(threads,)) as pool:
        futs = {}
        for c in pending:
            futs[pool.submit(_run_cell, name, preset, c["seed"], c["overrides"], str(out / "cells" / c["dir"]),
                             device, threads)] = c
            state[c["dir"]]["status"] = "queued"
        show()
        for f in cf.as_completed(futs):
            c = futs[f]
            try:
                outcome = f.result()
            except Exception as e:  # the worker process itself died
                outcome = {"status": "failed", "seconds": 0.0, "error": f"{type(e).__name__}: {e}"}
            finish(c, outcome)


def _ray(name, preset, pending, out, device, address, workers, state, show, finish):
    import ray
    started = False
    if not ray.is_initialized():
        kw = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        if address is None:
            kw["num_cpus"] = os.cpu_count() or 1
        ray.init(address=address, **kw)
        started = True
    try:
        res = ray.cluster_resources()
        gpus, cpus = int(res.get("GPU", 0)), int(res.get("CPU", 1))
        per_cell = 1 if gpus else max(1, cpus // max(1, min(len(pending), workers or cpus)))
        task = ray.remote(num_cpus=per_cell, num_gpus=1 if gpus else 0, max_retries=0)(_run_cell)
        dev = device or ("cuda" if gpus else "cpu")
        futs = {task.remote(name, preset, c["seed"], c["overrides"], str(out / "cells" / c["dir"]), dev, per_cell): c
                for c in pending}
        for c in pending:
            state[c["dir"]]["status"] = "queued"
        show()
        waiting = list(futs)
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            c = futs[done[0]]
            try:
                outcome = ray.get(done[0])
            except Exception as e:  # the task or its worker died
                outcome = {"status": "failed", "seconds": 0.0, "error": f"{type(e).__name__}: {e}"}
            finish(c, outcome)
    finally:
        if started:
            ray.shutdown()


def _collect(name, preset, todo, out, state, spec, engine, wall) -> dict:
    from .experiments import finished
    rows, groups = [], {}
    for c in todo:
        st = state[c["dir"]]
        res = finished(name, preset, c["seed"], out / "cells" / c["dir"], c["overrides"]) \
            if st["status"] == "done" else None
        if st["status"] == "done" and res is None:
            st = {**st, "status": "failed", "error": "finished without a readable results.json"}
        row = {"seed": c["seed"], "overrides": c["overrides"], "dir": str(Path("cells") / c["dir"]),
               "status": st["status"], "reused": st.get("reused", False), "seconds": round(st.get("seconds", 0.0), 3)}
        if st["status"] == "failed":
            row["error"] = st.get("error")
        if res is not None:
            row["scalars"] = {k: v for k, v in _leaves(res) if isinstance(v, float)}
            row["wall_time_s"] = res["provenance"]["wall_time_s"]
            groups.setdefault(c["key"], {"overrides": c["overrides"], "results": [], "seeds": []})
            groups[c["key"]]["results"].append(res)
            groups[c["key"]]["seeds"].append(c["seed"])
        rows.append(row)
    settings = []
    for key in dict.fromkeys(c["key"] for c in todo):
        g = groups.get(key)
        if g is None:
            settings.append({"overrides": json.loads(key), "seeds": [], "n": 0, "scalars": {}, "curves": {}})
            continue
        settings.append({"overrides": g["overrides"], "seeds": g["seeds"], **aggregate(g["results"])})
    counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "failed")}
    return {"spec": spec, "engine": engine, "out": str(out), "cells": rows, "settings": settings, "counts": counts,
            "std": "numpy std over seeds, ddof=0", "wall_time_s": round(wall, 3)}


def cell_results(grid_result: dict, overrides: dict | None = None) -> list[dict]:
    """The full ``results.json`` of every finished cell of a grid (checksums verified), in seed order;
    ``overrides`` keeps only the cells of one setting."""
    out = Path(grid_result["out"])
    cells = [c for c in grid_result["cells"] if c["status"] == "done"
             and (overrides is None or c["overrides"] == overrides)]
    return [read_json(out / c["dir"] / "results.json", require_checksum=True)
            for c in sorted(cells, key=lambda c: c["seed"])]


def mean_std(grid_result: dict, path: str, overrides: dict | None = None):
    """(mean, std, n) of a scalar result at ``path`` (e.g. ``"metrics/test/elbo/bpd"``) for one setting."""
    for s in grid_result["settings"]:
        if overrides is None or s["overrides"] == overrides:
            if path in s["scalars"]:
                v = s["scalars"][path]
                return v["mean"], v["std"], v["n"]
            if path in s["curves"]:
                v = s["curves"][path]
                return v["mean"], v["std"], v["n"]
            raise KeyError(f"no scalar or curve {path!r} in this grid; some of: {list(s['scalars'])[:10]}")
    raise KeyError(f"no setting {overrides!r} in this grid")


__all__ += ["mean_std", "default_grid_out", "cell_results"]
