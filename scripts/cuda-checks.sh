#!/usr/bin/env bash
# gdbench's CUDA checks in one go, on a machine with an NVIDIA GPU and torch, cupy, triton,
# pytest and pytest-benchmark installed (run from a checkout; gdbench need not be installed):
#   1. every test marked cuda (kernels against the float64 reference, event timing, CUDA graphs);
#   2. `gdbench run --device cuda --cuda-graph`, its report, and a comparison with the CPU run;
#   3. the timed pytest-benchmark suite on cuda.
# Results go to DIR (default results/), named after the GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
dir="${1:-results}"
mkdir -p "$dir"
gpu=$(python -c "import torch; print(torch.cuda.get_device_name(0).lower().replace(' ', '-'))") || exit 2
echo "== $gpu: cuda tests"
python -m pytest tests -m cuda -p no:cacheprovider -q -rs 2>&1 | tail -40
echo "== $gpu: gdbench run --device cuda --cuda-graph"
python -m gdbench run --device cuda --cuda-graph --out "$dir/$gpu.json" --csv "$dir/$gpu.csv"
python -m gdbench report "$dir/$gpu.json" results/cpu-2core-xeon.json -o "$dir/$gpu-report.md"
echo "== $gpu: pytest --benchmark-only on cuda"
python -m pytest benchmarks --benchmark-only --gdbench-device cuda -p no:cacheprovider -q \
    --benchmark-json "$dir/$gpu-pytest-benchmark.json" --benchmark-columns=min,median,iqr,rounds \
    2>&1 | tail -60
