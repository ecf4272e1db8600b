#!/usr/bin/env bash
# Every CUDA check of gdbench in one call of at most 450 s, kill graces included (a device
# command may run 600 s), the checks that can hang first and the most valuable next:
#   1. the environment (GPU, driver, library versions) and `gdbench list`;
#   2. a smoke test: one small persistent launch of each kernel that runs K steps in one launch
#      (scripts/smoke_steps.py), under `timeout 30`;
#   3. the many-steps tests marked cuda, in a stage of their own, each result printed as it
#      comes (a kill keeps what ran);
#   4. the other tests marked cuda, likewise;
#   5. `gdbench run --cuda-graph` over every kernel at 1e4, 1e6, 1e7 and 1e8 samples;
#   6. its report, beside the committed CPU run (made to check it works; the JSON remakes it);
#   7. two more runs at 1e6 and 1e8 in two worker processes each: the spread between runs;
#   8. the pytest-benchmark suite at two sizes, and `gdbench compare` of it with the sweep;
#   9. float32 against bfloat16 and float16 (torch-manual, torch-compile, triton-fused);
#  10. `gdbench ab`, the A/A self-check of the fused kernel (or of the first of `--kernels`);
#  11. K = 1 against K = 1000 steps per call at 1e4 and 1e6 (the persistent kernels).
# Every stage runs under `timeout` (its limit tripled with `--device cpu`, where it only stops a
# hang), never past the script's deadline (`--time`, 450 s): a stage that no longer fits is
# skipped and the log says so; a failing or killed stage does not stop the next. Run from a
# checkout (gdbench need not be installed); everything printed goes to OUT/check.log as well.
#
#   scripts/gpu-check.sh OUT [--device cuda|cpu] [--sizes 1e4,1e6,1e7,1e8] [--bench-sizes 1e4,1e6]
#                            [--budget 0.3] [--name NAME] [--kernels all] [--no-roofline]
#                            [--tests tests] [--time 450]
#
# OUT receives at most 8 files: check.log, NAME.json, NAME-2.json, NAME-3.json,
# NAME-pytest-benchmark.json, NAME-precision.json, NAME-ab.json and NAME-many-steps.json (NAME:
# the GPU's, such as h100-80gb-hbm3); the tests' results are in check.log. Every results file
# names the source that ran (commit and hashes).
# `--device cpu` runs the same stages on the CPU at small sizes, as the test suite does (with
# `--kernels` naming a few, `--no-roofline` and `--tests` naming one file, so that it takes
# seconds). For the tests only: GDBENCH_CHECK_HANG names a stage (the start of its title) that
# sleeps instead of running, with a limit of 3 s, to show that a hung stage is ended and the
# ones after it still run.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: scripts/gpu-check.sh OUT [--device cuda|cpu] [--sizes ...] [--name NAME]}"
shift
device=cuda sizes=1e4,1e6,1e7,1e8 bench_sizes=1e4,1e6 budget=0.3 name= kernels=all roofline=
tests=tests total=450
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device="$2"; shift 2 ;;
        --sizes) sizes="$2"; shift 2 ;;
        --bench-sizes) bench_sizes="$2"; shift 2 ;;
        --budget) budget="$2"; shift 2 ;;
        --name) name="$2"; shift 2 ;;
        --kernels) kernels="$2"; shift 2 ;;
        --no-roofline) roofline=--no-roofline; shift ;;
        --tests) tests="$2"; shift 2 ;;
        --time) total="$2"; shift 2 ;;
        *) echo "gpu-check: unknown option $1" >&2; exit 2 ;;
    esac
done
python=${PYTHON:-python3}
# started from a pytest-xdist worker (the tests): its variables would turn pytest-benchmark off
unset PYTEST_XDIST_WORKER PYTEST_XDIST_WORKER_COUNT PYTEST_XDIST_TESTRUNUID
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
grace=5  # seconds `timeout` gives a stage between SIGTERM and SIGKILL
deadline=$((SECONDS + total))
skipped=()
stage() {  # stage SECONDS TITLE COMMAND...
    local seconds="$1" title="$2"
    shift 2
    # on the CPU (the tests, on a loaded 2-core machine) a limit only stops a hang
    [ "$device" = cuda ] || seconds=$((seconds * 3))
    if [ -n "${GDBENCH_CHECK_HANG:-}" ] && [[ "$title" == "$GDBENCH_CHECK_HANG"* ]]; then
        set -- sleep 600  # the tests' stand-in for a stage that hangs
        seconds=3
    fi
    local left=$((deadline - SECONDS - grace))
    if [ "$left" -lt 5 ]; then
        echo "== [$(date +%T)] $title: skipped for time (${left}s left of ${total}s)"
        skipped+=("$title")
        status=1
        return
    fi
    [ "$seconds" -gt "$left" ] && seconds=$left
    echo "== [$(date +%T)] $title (at most ${seconds}s)"
    timeout -k "$grace" "$seconds" "$@"
    local rc=$?
    [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && echo "== $title: stopped after ${seconds}s"
    [ "$rc" -ne 0 ] && status=1
    echo "== $title: exit $rc"
}

stage 15 "environment" bash -c "nvidia-smi 2>/dev/null | head -20; $python -c \"
import json, gdbench.measure.environment as e; print(json.dumps(e.capture('$device'), indent=1))\"; \
$python -m gdbench list"
stage 30 "smoke test: K steps in one launch" "$python" scripts/smoke_steps.py --device "$device" \
    --sizes "$([ "$device" = cuda ] && echo 1e4,1e6 || echo 1e3)"
# -p no:xdist: one process per stage, whoever started this (pytest-benchmark times nothing under
# xdist, and CUDA tests share one GPU); -v: each result is printed as it comes, so that a stage
# killed at its limit leaves what ran in the log
steps_tests="$tests"
[ -d "$tests" ] && steps_tests="$tests/test_many_steps.py"
stage 60 "tests marked cuda: many steps" "$python" -m pytest "$steps_tests" -m cuda -v -rs \
    -p no:cacheprovider -p no:xdist
other_tests=("$tests")
[ -d "$tests" ] && other_tests=("$tests" --ignore "$tests/test_many_steps.py")
stage 100 "tests marked cuda" "$python" -m pytest "${other_tests[@]}" -m cuda -v -rs \
    -p no:cacheprovider -p no:xdist
stage 90 "gdbench run --device $device --sizes $sizes" "$python" -m gdbench run \
    --device "$device" --sizes "$sizes" --budget "$budget" --kernels "$kernels" $roofline \
    $([ "$device" = cuda ] && echo --cuda-graph) --out "$out/$name.json"
report_dir=$(mktemp -d)  # the report and its plots stay behind: the JSON remakes them
# a GPU run is reported beside the committed CPU run, with its plots; a CPU run alone, without
# (the tests draw every plot)
report_args=(--no-plots)
[ "$device" = cuda ] && report_args=(results/cpu-2core-xeon.json)
stage 10 "gdbench report" "$python" -m gdbench report "$out/$name.json" "${report_args[@]}" \
    -o "$report_dir/$name-report.md"
# on the CPU (the tests) the later stages run at the budget given, to take seconds
if [ "$device" = cuda ]; then spread_sizes=1e6,1e8 later_budget=0.2; else
    spread_sizes="$sizes" later_budget="$budget"; fi
for run in 2 3; do
    stage 35 "gdbench run $run of 3 --processes 2" "$python" -m gdbench run \
        --device "$device" --sizes "$spread_sizes" --budget "$later_budget" --processes 2 \
        --kernels "$kernels" $roofline --quiet --out "$out/$name-$run.json"
done
stage 40 "pytest --benchmark-only --gdbench-sizes $bench_sizes" "$python" -m pytest benchmarks \
    --benchmark-only --gdbench-device "$device" --gdbench-sizes "$bench_sizes" -q -p no:xdist \
    --gdbench-kernels "$kernels" \
    -p no:cacheprovider --benchmark-json "$out/$name-pytest-benchmark.json" \
    --benchmark-columns=min,median,iqr,rounds,iterations
stage 5 "gdbench compare: sweep against pytest-benchmark" "$python" -m gdbench compare \
    "$out/$name.json" "$out/$name-pytest-benchmark.json"
if [ "$device" = cuda ]; then
    half_kernels=torch-manual,torch-compile,triton-fused half_sizes=1e6,1e8
else  # Triton on the CPU is its interpreter: checked by the tests, not timed here
    half_kernels=torch-manual half_sizes="$sizes"
fi
stage 30 "gdbench run --dtype float32,bfloat16,float16" "$python" -m gdbench run \
    --device "$device" --kernels "$half_kernels" --sizes "$half_sizes" \
    --dtype float32,bfloat16,float16 --budget "$later_budget" --windows 2 --quiet $roofline \
    --out "$out/$name-precision.json"
if [ "$device" = cuda ]; then
    ab_kernel=triton-fused ab_sizes=1e6,1e8 ab_time=30 ab_blocks="--max-blocks 6"
else  # the fewest blocks that give a verdict: on the CPU this stage only has to work
    ab_kernel=numba-fused ab_sizes="$sizes" ab_time=4 ab_blocks="--min-blocks 3 --max-blocks 3"
fi
[ "$kernels" != all ] && ab_kernel="${kernels%%,*}"  # the first kernel named
stage 40 "gdbench ab $ab_kernel $ab_kernel (A/A)" "$python" -m gdbench ab "$ab_kernel" \
    --device "$device" --sizes "$ab_sizes" --window 0.02 --rounds-per-block 2 $ab_blocks \
    --max-time "$ab_time" --quiet --out "$out/$name-ab.json"
if [ "$device" = cuda ]; then
    steps_kernels=triton-fused,cupy-fused,torch-compile,torch-manual steps_sizes=1e4,1e6
else  # numba-fused runs K steps in one call on the CPU
    steps_kernels="$kernels" steps_sizes="$sizes"
fi
stage 30 "gdbench run --steps-per-call 1,1000" "$python" -m gdbench run --device "$device" \
    --kernels "$steps_kernels" --sizes "$steps_sizes" --steps-per-call 1,1000 \
    --budget "$later_budget" --windows 2 --quiet $roofline --out "$out/$name-many-steps.json"
echo "== [$(date +%T)] done in ${SECONDS}s of ${total}s; files in $out:"
ls -l "$out"
[ "${#skipped[@]}" -gt 0 ] && echo "== skipped for time: ${skipped[*]}"
exit $status
