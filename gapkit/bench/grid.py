"""Benchmark ``grid``: 8 ``quick`` cells run one after another, with the local engine, and with Ray.

``python -m gapkit bench grid`` runs the ``vae-basics`` experiment at the ``quick`` preset over seeds
0-7 three ways, each into a fresh folder, in one run on this machine: a plain loop of
:func:`gapkit.experiments.run` (one process, all cores), :func:`gapkit.grid.run_grid` with the
local process pool, and with a local Ray started for the grid (when the ``cluster`` extra is
installed). It prints the wall time of each, the speed-ups over the loop, and Ray's overhead per
cell against the local pool (Ray's start-up included, and without it).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from . import benchmark, table

CELLS = 8


@benchmark("grid", "8 quick cells: a plain loop vs the local engine vs Ray (wall time, ratios, overhead per cell)")
def grid_benchmark(device="cpu", cells: int = CELLS, epochs: int | None = None):
    from ..checks import positive_int
    from ..experiments import run
    from ..grid import run_grid
    positive_int("cells", cells)
    seeds = list(range(cells))
    grid = {"epochs": [epochs]} if epochs else {}
    rows = []
    with tempfile.TemporaryDirectory(prefix="gapkit-bench-grid-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        for s in seeds:
            run("vae-basics", preset="quick", seed=s, out=tmp / "loop" / str(s), progress=False, device=device,
                overrides={k: v[0] for k, v in grid.items()})
        loop = time.perf_counter() - t0
        rows.append({"engine": "loop (one process)", "cells": cells, "wall_s": loop, "speed-up": 1.0})
        t0 = time.perf_counter()
        g = run_grid("vae-basics", "quick", seeds, grid, out=tmp / "local", engine="local", progress=False,
                     device=device)
        local = time.perf_counter() - t0
        assert g["counts"]["done"] == cells
        rows.append({"engine": "local pool", "cells": cells, "wall_s": local, "speed-up": loop / local})
        try:
            import ray
        except ImportError:
            ray = None
            print("ray is not installed (pip install 'gapkit[cluster]'): the Ray row is left out")
        if ray is not None:
            t0 = time.perf_counter()
            ray.init(num_cpus=None, include_dashboard=False, log_to_driver=False, configure_logging=False)
            startup = time.perf_counter() - t0
            try:
                t1 = time.perf_counter()
                g = run_grid("vae-basics", "quick", seeds, grid, out=tmp / "ray", engine="ray", progress=False)
                tasks = time.perf_counter() - t1
            finally:
                ray.shutdown()
            assert g["counts"]["done"] == cells
            total = startup + tasks
            rows.append({"engine": "ray (local)", "cells": cells, "wall_s": total, "speed-up": loop / total})
            print(f"Ray start-up {startup:.1f} s; Ray overhead per cell against the local pool: "
                  f"{(total - local) / cells:+.2f} s with start-up, {(tasks - local) / cells:+.2f} s without")
    table(rows, title=f"bench grid: {cells} cells of vae-basics at the quick preset, device {device}")
    return rows
