"""Command line: ``python -m gapkit {list,run,bench,book}``."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path


def _cmd_list(args):
    from .experiments import registry
    from .presets import PRESETS
    print("experiments:")
    for name, e in registry().items():
        cost = ", ".join(f"{k}: {v}" for k, v in e.cost.items())
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
    from .experiments import default_out, identity, run
    ident = identity(args.name, args.preset, args.seed)  # checks the name, preset and seed before any work
    res = run(args.name, preset=args.preset, seed=args.seed, out=args.out, force=args.force,
              device=args.device, progress=not args.no_progress)
    path = Path(args.out) if args.out is not None else default_out(args.name, ident["preset"]["name"],
                                                                   args.seed, ident)
    out = {"experiment": args.name, "preset": res["config"]["preset"]["name"],
           "results": str(path / "results.json"), "wall_time_s": res["provenance"]["wall_time_s"]}
    if "metrics" in res:
        out["metrics"] = res["metrics"]
    else:  # no summary: name what results.json holds
        out["keys"] = [k for k in res if k not in ("config", "provenance")]
    print(json.dumps(out, indent=1))


def _cmd_bench(args):
    from .bench import run
    run(args.name, **({"device": args.device} if args.device is not None else {}))


def _cmd_book(args):
    root = Path(__file__).resolve().parents[1]
    if not (root / "_config.yml").exists():
        sys.exit("gapkit book: run this from a checkout of the gapkit repository (no _config.yml found)")
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
    # jupyter_book has no __main__; -W: warnings are errors, -n: nitpicky cross-references
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build",
           "-W", "-n", "--keep-going"] + (["--all"] if args.all else []) \
        + (["--path-output", args.path_output] if args.path_output else []) + [str(root)]
    sys.exit(_run_forwarding_signals(cmd, env=env, cwd=root))


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
    r.set_defaults(func=_cmd_run)
    b = sub.add_parser("bench", help="run a benchmark and print its table")
    b.add_argument("name")
    b.add_argument("--device", default=None)
    b.set_defaults(func=_cmd_bench)
    k = sub.add_parser("book", help="build the book with jupyter-book")
    k.add_argument("--preset", default=None)
    k.add_argument("--all", action="store_true", help="rebuild every page")
    k.add_argument("--path-output", default=None, help="where _build goes (default: the repository)")
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
