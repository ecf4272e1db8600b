#!/usr/bin/env bash
# Every CUDA check of gdbench in one call of at most 9 minutes, the most valuable first:
#   1. the environment (GPU, driver, library versions) and `gdbench list`;
#   2. the tests marked cuda;
#   3. `gdbench run --cuda-graph` over every kernel at 1e4, 1e6 and 1e8 samples;
#   4. its report, beside the committed CPU run;
#   5. the pytest-benchmark suite at two sizes, and `gdbench compare` of it with the sweep;
#   6. float32 against bfloat16 and float16 (torch-manual, torch-compile, triton-fused);
#   7. `gdbench ab`, the A/A self-check of the fused kernel, in blocks of fresh processes.
# Every stage runs under `timeout` and a failing stage does not stop the next. Run from a
# checkout (gdbench need not be installed); everything printed goes to OUT/check.log as well.
#
#   scripts/gpu-check.sh OUT [--device cuda|cpu] [--sizes 1e4,1e6,1e8] [--bench-sizes 1e4,1e6]
#                            [--budget 0.3] [--name NAME]
#
# OUT receives at most 8 files: check.log, NAME.json, NAME.csv, NAME-report.md,
# NAME-pytest-benchmark.json, NAME-precision.json, NAME-ab.json and tests.xml (NAME: the GPU's,
# such as h100-80gb-hbm3).
# `--device cpu` runs the same stages on the CPU at small sizes, as the test suite does.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: scripts/gpu-check.sh OUT [--device cuda|cpu] [--sizes ...] [--name NAME]}"
shift
device=cuda sizes=1e4,1e6,1e8 bench_sizes=1e4,1e6 budget=0.3 name=
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device="$2"; shift 2 ;;
        --sizes) sizes="$2"; shift 2 ;;
        --bench-sizes) bench_sizes="$2"; shift 2 ;;
        --budget) budget="$2"; shift 2 ;;
        --name) name="$2"; shift 2 ;;
        *) echo "gpu-check: unknown option $1" >&2; exit 2 ;;
    esac
done
python=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$out" || exit 2
log="$out/check.log"
: > "$log"
exec > >(tee -a "$log") 2>&1

if [ -z "$name" ]; then
    if [ "$device" = cuda ]; then
        name=$(timeout 60 "$python" -c "import torch; n = torch.cuda.get_device_name(0).lower()
print(n.removeprefix('nvidia ').replace(' ', '-'))") || name=gpu
    else
        name=cpu
    fi
fi
status=0
stage() {  # stage SECONDS TITLE COMMAND...
    local seconds="$1" title="$2"
    shift 2
    echo "== [$(date +%T)] $title (at most ${seconds}s)"
    timeout -k 10 "$seconds" "$@"
    local rc=$?
    [ "$rc" -eq 124 ] && echo "== $title: stopped after ${seconds}s"
    [ "$rc" -ne 0 ] && status=1
    echo "== $title: exit $rc"
}

stage 30 "environment" bash -c "nvidia-smi 2>/dev/null | head -20; $python -c \"
import json, gdbench.measure.environment as e; print(json.dumps(e.capture('$device'), indent=1))\"; \
$python -m gdbench list"
stage 160 "tests marked cuda" "$python" -m pytest tests -m cuda -q -rs -p no:cacheprovider \
    --junitxml "$out/tests.xml"
stage 140 "gdbench run --device $device --sizes $sizes" "$python" -m gdbench run \
    --device "$device" --sizes "$sizes" --budget "$budget" \
    $([ "$device" = cuda ] && echo --cuda-graph) --out "$out/$name.json" --csv "$out/$name.csv"
report_dir=$(mktemp -d)  # the plots stay behind: `gdbench report` remakes them from the JSON
stage 20 "gdbench report" bash -c "$python -m gdbench report '$out/$name.json' \
    results/cpu-2core-xeon.json -o '$report_dir/$name-report.md' && \
    cp '$report_dir/$name-report.md' '$out/'"
stage 70 "pytest --benchmark-only --gdbench-sizes $bench_sizes" "$python" -m pytest benchmarks \
    --benchmark-only --gdbench-device "$device" --gdbench-sizes "$bench_sizes" -q \
    -p no:cacheprovider --benchmark-json "$out/$name-pytest-benchmark.json" \
    --benchmark-columns=min,median,iqr,rounds,iterations
stage 20 "gdbench compare: sweep against pytest-benchmark" "$python" -m gdbench compare \
    "$out/$name.json" "$out/$name-pytest-benchmark.json"
if [ "$device" = cuda ]; then
    half_kernels=torch-manual,torch-compile,triton-fused half_sizes=1e6,1e8
else  # Triton on the CPU is its interpreter: checked by the tests, not timed here
    half_kernels=torch-manual,torch-compile half_sizes="$sizes"
fi
stage 60 "gdbench run --dtype float32,bfloat16,float16" "$python" -m gdbench run \
    --device "$device" --kernels "$half_kernels" --sizes "$half_sizes" \
    --dtype float32,bfloat16,float16 --budget 0.2 --windows 2 --quiet \
    --out "$out/$name-precision.json"
if [ "$device" = cuda ]; then ab_kernel=triton-fused ab_sizes=1e6,1e8; else
    ab_kernel=numba-fused ab_sizes="$sizes"; fi
stage 40 "gdbench ab $ab_kernel $ab_kernel (A/A)" "$python" -m gdbench ab "$ab_kernel" \
    --device "$device" --sizes "$ab_sizes" --window 0.02 --rounds-per-block 2 --max-blocks 6 \
    --max-time 25 --quiet --out "$out/$name-ab.json"
echo "== [$(date +%T)] done; files in $out:"
ls -l "$out"
exit $status
