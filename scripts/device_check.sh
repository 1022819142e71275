#!/usr/bin/env bash
# The GPU check of issue 16: on a machine with a CUDA GPU, run the benchmarks and one paper-preset
# smoke run of every experiment (each stage a few iterations: epochs, steps, evaluations) on the GPU,
# and print the full-run times measured there next to the committed estimates
# (book/_data/estimates.json, from `python -m gapkit estimate --all --write` on a CPU).
# Without a GPU it says so and exits with status 2: nothing is measured.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "device_check: no CUDA GPU is visible to torch on this machine; nothing was measured." >&2
    echo "device_check: run scripts/device_check.sh on a machine with a GPU (e.g. a Colab GPU runtime)." >&2
    exit 2
fi
export GAPKIT_PROGRESS=0
"$PY" -c "import torch; print('device_check:', torch.cuda.get_device_name(0), 'torch', torch.__version__)"
for bench in train iwae refine optimal-inference snr air bits-back; do
    "$PY" -m gapkit bench "$bench" --device cuda || echo "device_check: bench $bench failed"
done
"$PY" -c "from gapkit.cost import device_check; print(device_check(device='cuda'))"
