"""Command line: ``python -m gapkit {list,run,estimate,show,grid,report,bench,book,compress,decompress}``."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path


def _cmd_list(args):
    from .cost import expected
    from .experiments import registry
    from .presets import PRESETS
    print("experiments:")
    for name, e in registry().items():
        cost = ", ".join(f"{k}: {expected(name, k)}" for k in PRESETS if k in e.cost or k == "paper")
        print(f"  {name:<22} {e.description}" + (f"  [{cost}]" if cost else ""))
    print("presets:")
    for name, p in PRESETS.items():
        print(f"  {name:<8} {p.note}")
    from .bench import registry as benches
    b = benches()
    if b:
        print("benchmarks:")
        for name, (_, desc) in b.items():
            print(f"  {name:<22} {desc}")


def _cmd_run(args):
    from .experiments import default_out, parse_sets, run
    res = run(args.name, preset=args.preset, seed=args.seed, out=args.out, force=args.force,  # checks first
              device=args.device, progress=not args.no_progress, overrides=parse_sets(args.set),
              smoke=True if args.smoke else None)
    ident = res["config"]
    path = Path(args.out) if args.out is not None else default_out(args.name, ident["preset"]["name"],
                                                                   ident["seed"], ident)
    out = {"experiment": args.name, "preset": res["config"]["preset"]["name"],
           "results": str(path / "results.json"), "wall_time_s": res["provenance"]["wall_time_s"]}
    if "metrics" in res:
        out["metrics"] = res["metrics"]
    else:  # no summary: name what results.json holds
        out["keys"] = [k for k in res if k not in ("config", "provenance")]
    print(json.dumps(out, indent=1))


def _cmd_estimate(args):
    from . import cost
    from .experiments import registry
    if args.all == (args.name is not None):
        raise ValueError("estimate takes one experiment NAME or --all")
    names = list(registry()) if args.all else [args.name]
    ests = {}
    for n in names:
        ests[n] = cost.estimate(n, args.preset, device=args.device, progress=not args.no_progress)
        print(cost.format_table(ests[n]) + "\n")
    print(f"GPU times: peak FP32 x {cost.EFFICIENCY} efficiency, at least {cost.LAUNCH_S * 1e6:.0f} us per operator; "
          + "; ".join(s for _, s in cost.GPUS.values()) + " (see gapkit.cost)")
    if args.write:
        print(f"wrote {cost.write(ests)}")


def _cmd_show(args):
    from .experiments import describe_settings, get, parse_sets
    rows = describe_settings(args.name, args.preset, parse_sets(args.set))
    print(f"{args.name}: {get(args.name).description}")
    fmt = lambda v: json.dumps(v if not isinstance(v, tuple) else list(v))  # noqa: E731
    w = max(len(r["name"]) for r in rows)
    wv = min(40, max(len(fmt(r["value"])) for r in rows))
    print(f"{'setting':<{w}}  {'value':<{wv}}  {'default':<{wv}}  source")
    for r in rows:
        print(f"{r['name']:<{w}}  {fmt(r['value']):<{wv}}  {fmt(r['default']):<{wv}}  {r['source']}")


def _cmd_grid(args):
    from .grid import parse_grid_sets, parse_seeds, run_grid
    res = run_grid(args.name, preset=args.preset, seeds=parse_seeds(args.seeds), grid=parse_grid_sets(args.set),
                   out=args.out, engine=args.engine, address=args.address, workers=args.workers,
                   device=args.device, progress=not args.no_progress)
    print(_grid_summary(res))


def _grid_summary(res) -> str:
    lines = [f"grid {res['spec']['experiment']} ({res['spec']['preset']}): {res['counts']['done']} of "
             f"{len(res['cells'])} cells done, {res['counts']['failed']} failed; {res['wall_time_s']:.1f} s"]
    for s in res["settings"]:
        head = ", ".join(f"{k}={v}" for k, v in s["overrides"].items()) or "(preset settings)"
        metric = {k: v for k, v in s["scalars"].items() if k.startswith("metrics/")}
        some = list(metric.items())[:6] or list(s["scalars"].items())[:6]
        vals = "; ".join(f"{k}: {v['mean']:.5g} ± {v['std']:.2g}" for k, v in some)
        lines.append(f"  {head} [n={s['n']}] {vals}")
    return "\n".join(lines)


def _cmd_report(args):
    from .reproduction import format_report, report
    rep = report([args.preset] if args.preset else None, seed=args.seed)
    print(json.dumps(rep, indent=1) if args.json else format_report(rep))


def _cmd_bench(args):
    from .bench import run
    run(args.name, **({"device": args.device} if args.device is not None else {}))


def _cmd_book(args):
    root = Path(__file__).resolve().parents[1]
    if not (root / "_config.yml").exists():
        sys.exit("gapkit book: run this from a checkout of the gapkit repository (no _config.yml found)")
    if args.jobs is not None and args.jobs < 0:
        sys.exit(f"gapkit book: --jobs must be 0 (no experiments first) or a positive integer, got {args.jobs}")
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # the chapters' figures need the inline backend
    env.setdefault("GAPKIT_PROGRESS", "0")  # no progress bars on the rendered pages
    from .presets import preset_name
    # the preset (argument or $GAPKIT_PRESET) and the device are checked before the build starts
    env["GAPKIT_PRESET"] = preset_name(args.preset)
    if env.get("GAPKIT_DEVICE"):
        from .device import default_device
        default_device(env["GAPKIT_DEVICE"], announce=False)
    if args.path_output is not None:
        from .io import check_output
        check_output(args.path_output, "dir", what="--path-output folder")
    _fresh_execution_cache(Path(args.path_output) if args.path_output else root)
    if args.jobs != 0:
        failed = _run_experiments_first(env, args.jobs)
        if failed:
            sys.exit(f"gapkit book: {', '.join(failed)} failed (its output is above); no page was built")
    # jupyter_book has no __main__; -W: warnings are errors, -n: nitpicky cross-references
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build",
           "-W", "-n", "--keep-going"] + (["--all"] if args.all else []) \
        + (["--path-output", args.path_output] if args.path_output else []) + [str(root)]
    sys.exit(_run_forwarding_signals(cmd, env=env, cwd=root))


def _run_experiments_first(env: dict, jobs: int | None, names=None) -> list:
    """Run every experiment the chapters call, ``jobs`` at a time, before jupyter-book executes them.

    jupyter-book executes the chapters one after another, each kernel using every core; these small
    networks do not use two cores well (one experiment: 21 s on one thread, 14 s on two), so running
    the experiments side by side, one thread each, shortens a cold build. Each is an ordinary
    ``python -m gapkit run NAME`` into the same results cache, which the chapters then read (a
    finished run is only loaded). ``jobs`` None: one per core; ``names`` None: every registered
    experiment. Returns the experiments that failed."""
    import time
    from concurrent.futures import ThreadPoolExecutor
    from .experiments import registry
    from .cost import expected, rough_seconds
    names = list(registry()) if names is None else list(names)
    try:   # the longest first (each experiment's own cost hint), so that no long one starts last
        names.sort(key=lambda n: -rough_seconds(expected(n, env["GAPKIT_PRESET"])))
    except ValueError:   # a name that is no experiment: its run names the valid ones
        pass
    cores = os.cpu_count() or 1
    jobs = max(1, min(jobs or cores, len(names)))
    child_env = {**env, "OMP_NUM_THREADS": str(max(1, cores // jobs)), "GAPKIT_PROGRESS": "0"}
    print(f"gapkit book: running the {len(names)} experiments at the {env['GAPKIT_PRESET']} preset first, "
          f"{jobs} at a time ({child_env['OMP_NUM_THREADS']} thread(s) each); the chapters read their results",
          flush=True)
    children, failed = [], []

    def one(name):
        t0 = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "gapkit", "run", name, "--no-progress"], env=child_env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        children.append(child)
        _, err = child.communicate()
        took = time.perf_counter() - t0
        if child.returncode:
            failed.append(name)
            print(f"  {name}: FAILED after {took:.0f} s\n{err}", flush=True)
        else:
            print(f"  {name}: {took:.0f} s", flush=True)

    pool = ThreadPoolExecutor(jobs)
    try:
        list(pool.map(one, names))
    except BaseException:  # Ctrl-C: stop the runs too (each keeps its finished stages and checkpoints)
        for child in children:
            child.terminate()
        raise
    finally:
        pool.shutdown(cancel_futures=True)
    return failed


def _fresh_execution_cache(build_root: Path) -> bool:
    """Forget the executed chapters when gapkit's code changed since they ran.

    jupyter-book reuses a chapter's executed outputs until the notebook's own code changes; a change
    in the library alone would leave pages showing what the previous code computed. The code hash
    (:func:`gapkit.experiments.code_hash`, which also keys every cached result) is kept beside the
    execution cache; when it differs, the cache is removed and every chapter runs again (reading the
    results cache, so unchanged experiments are not recomputed). Returns True when it was removed."""
    import shutil
    from .experiments import code_hash
    build = build_root / "_build"
    cache, stamp = build / ".jupyter_cache", build / ".gapkit-code-hash"
    code = code_hash()
    stale = cache.exists() and (not stamp.exists() or stamp.read_text().strip() != code)
    if stale:
        print("gapkit book: gapkit's code changed since the chapters were executed: executing them again")
        shutil.rmtree(cache)
    build.mkdir(parents=True, exist_ok=True)
    stamp.write_text(code + "\n")
    return stale


def _run_forwarding_signals(cmd, **kw) -> int:
    """Run ``cmd`` and pass SIGINT/SIGTERM on to it (and its process group), so that stopping
    ``gapkit book`` stops jupyter-book and the kernels it started; returns its exit code."""
    import signal
    child = subprocess.Popen(cmd, start_new_session=True, **kw)

    def forward(signum, frame):
        try:
            os.killpg(child.pid, signum)
        except ProcessLookupError:
            pass
    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:  # pragma: no cover - handled by forward()
                forward(signal.SIGINT, None)
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="gapkit", description="Gaps in amortized variational inference")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="experiments, presets and benchmarks").set_defaults(func=_cmd_list)
    r = sub.add_parser("run", help="run an experiment and write results.json")
    r.add_argument("name")
    r.add_argument("--preset", default=None, help="quick, book or paper (default: $GAPKIT_PRESET or book)")
    r.add_argument("--seed", type=int, default=0, help="an integer in 0..2^63-1 (default 0)")
    r.add_argument("--out", default=None, help="output folder (default: the results cache); it must be empty, "
                   "new, or hold a run of the same identity")
    r.add_argument("--force", action="store_true", help="move an existing run folder aside and run from scratch")
    r.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting or preset field "
                   "(repeatable); `gapkit show NAME` lists them")
    r.add_argument("--smoke", action="store_true", help="a smoke run: the configuration end to end with every "
                   "loop capped (gapkit.smoke; default: $GAPKIT_SMOKE=1); its own identity, never a result")
    r.set_defaults(func=_cmd_run)
    es = sub.add_parser("estimate", help="estimated full-run CPU and GPU time per stage, from a smoke run")
    es.add_argument("name", nargs="?")
    es.add_argument("--all", action="store_true", help="every experiment")
    es.add_argument("--preset", default="paper")
    es.add_argument("--device", default="cpu", help="where the smoke run measures (default cpu)")
    es.add_argument("--write", action="store_true", help="write book/_data/estimates.json (the experiments page)")
    es.add_argument("--no-progress", action="store_true")
    es.set_defaults(func=_cmd_estimate)
    sh = sub.add_parser("show", help="the effective settings of an experiment, their defaults and sources")
    sh.add_argument("name")
    sh.add_argument("--preset", default=None)
    sh.add_argument("--set", action="append", metavar="KEY=VALUE")
    sh.set_defaults(func=_cmd_show)
    g = sub.add_parser("grid", help="run an experiment over seeds and a grid of settings (locally or on Ray)")
    g.add_argument("name")
    g.add_argument("--preset", default=None)
    g.add_argument("--seeds", default="0", help="e.g. 0-2 or 0,3,5 (default 0)")
    g.add_argument("--set", action="append", metavar="KEY=V1,V2", help="grid values of a setting or preset "
                   "field, comma-separated (a list value in brackets); repeatable: the cross product")
    g.add_argument("--engine", default="local", choices=["local", "ray"])
    g.add_argument("--address", default=None, help="Ray cluster address (auto, or ray://host:port); default: "
                   "a local Ray started for the grid")
    g.add_argument("--workers", type=int, default=None, help="cells at once (local: default one per core)")
    g.add_argument("--out", default=None, help="grid folder (default: the results cache)")
    g.add_argument("--device", default=None)
    g.add_argument("--no-progress", action="store_true")
    g.set_defaults(func=_cmd_grid)
    b = sub.add_parser("bench", help="run a benchmark and print its table")
    b.add_argument("name")
    b.add_argument("--device", default=None)
    b.set_defaults(func=_cmd_bench)
    rp = sub.add_parser("report", help="the reproduction report: each paper finding, its value and ours, a verdict")
    rp.add_argument("--preset", default=None, help="one preset (default: every preset; results are read from "
                    "the cache, nothing is run)")
    rp.add_argument("--seed", type=int, default=0)
    rp.add_argument("--json", action="store_true", help="print the report as JSON")
    rp.set_defaults(func=_cmd_report)
    k = sub.add_parser("book", help="build the book with jupyter-book")
    k.add_argument("--preset", default=None)
    k.add_argument("--all", action="store_true", help="rebuild every page")
    k.add_argument("--path-output", default=None, help="where _build goes (default: the repository)")
    k.add_argument("--jobs", type=int, default=None, help="experiments run side by side before the chapters "
                   "execute (default: one per core; 0: none, each chapter runs its own)")
    k.set_defaults(func=_cmd_book)
    from .coding.cli import add_commands as add_coding_commands
    add_coding_commands(sub)  # compress / decompress
    args = ap.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, TypeError, FloatingPointError, FileNotFoundError, PermissionError, IsADirectoryError,
            NotADirectoryError) as e:
        sys.exit(f"gapkit: error: {e}")


if __name__ == "__main__":
    main()
