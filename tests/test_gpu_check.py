"""scripts/gpu-check.sh, run with its stages on the CPU, so that the GPU's one call is no debug."""

import json
import os
import subprocess
import sys

from gdbench.analysis.compare import load_timings
from gdbench.files.results import read_json
from tests.plugins import REPO

STAGES = ("environment", "smoke test: K steps in one launch", "tests marked cuda: many steps",
          "tests marked cuda", "gdbench run --device", "gdbench report", "gdbench run 2 of 3",
          "gdbench run 3 of 3", "pytest --benchmark-only", "gdbench compare",
          "gdbench run --dtype", "gdbench ab", "gdbench run --steps-per-call")


FAILING_TEST = """
import pytest

@pytest.mark.cuda
def test_that_fails():
    assert False, "a failing CUDA test"
"""


def gpu_check(out, tests, *extra, env=None):
    """The script's stages on the CPU, with this interpreter, writing into ``out``."""
    return subprocess.run(["bash", str(REPO / "scripts" / "gpu-check.sh"), str(out),
                           "--device", "cpu", "--sizes", "1e2", "--bench-sizes", "1e2",
                           "--budget", "0.02", "--name", "cpu-check",
                           "--kernels", "numpy-manual", "--no-roofline",
                           "--tests", str(tests), *extra],
                          capture_output=True, text=True, timeout=300, cwd=out.parent,
                          env=dict(os.environ, PYTHON=sys.executable, **(env or {})))


def test_every_stage_runs_on_the_cpu_and_a_failing_or_hung_one_stops_none_after_it(tmp_path):
    """One call of the script as the GPU gets it, whose tests stage fails and whose many-steps
    tests stage hangs (a stand-in that sleeps): the failure is reported, the hung stage is
    killed at its limit and the log says so, the script's status says so, and every later
    stage still runs and writes."""
    failing = tmp_path / "test_failing_on_cuda.py"
    failing.write_text(FAILING_TEST)
    out = tmp_path / "out"
    result = gpu_check(out, failing, env={"GDBENCH_CHECK_HANG": "tests marked cuda: many"})
    log = (out / "check.log").read_text()
    assert result.returncode == 1, log[-3000:]
    for stage in STAGES:
        assert f"== {stage}" in log and f"== {stage}" in result.stdout
    assert "== tests marked cuda: many steps: stopped after 3s" in log
    assert "== tests marked cuda: exit 1" in log and "a failing CUDA test" in log
    assert "1 failed" in log  # the tests' results are in the log
    assert "test_that_fails FAILED" in log  # each as it came (-v)
    # the one hung and the one failed stage: every other ends well
    assert log.count(": exit 0") == len(STAGES) - 2, log[-3000:]
    assert "numba-fused N=1e+03 K=10" in log and ": ok in" in log  # the smoke test ran
    assert "skipped for time" not in log
    assert '"implementation": "CPython"' in log  # the environment was printed
    files = sorted(p.name for p in out.iterdir())
    assert files == ["check.log", "cpu-check-2.json", "cpu-check-3.json", "cpu-check-ab.json",
                     "cpu-check-many-steps.json", "cpu-check-precision.json",
                     "cpu-check-pytest-benchmark.json", "cpu-check.json"]  # at most 8 come back
    steps = read_json(out / "cpu-check-many-steps.json")
    assert {c.spec.steps_per_call for c in steps.cases} == {1, 1000}
    assert all(c.ok for c in steps.cases), [c.message for c in steps.cases]
    ab = json.loads((out / "cpu-check-ab.json").read_text())
    assert ab["tool"] == "gdbench-ab" and ab["cases"][0]["status"] == "ok"
    half = read_json(out / "cpu-check-precision.json")
    assert {c.spec.dtype for c in half.cases} == {"float32", "bfloat16", "float16"}
    assert all(c.ok for c in half.cases), [c.message for c in half.cases]
    run = read_json(out / "cpu-check.json")
    assert run.complete and all(c.ok for c in run.cases)
    assert load_timings(out / "cpu-check-pytest-benchmark.json")
    for extra in ("cpu-check-2.json", "cpu-check-3.json"):  # the spread between runs
        again = read_json(out / extra)
        assert again.complete and again.settings["processes"] == 2
        assert again.environment["source"]["files_sha256"] == run.environment["source"][
            "files_sha256"]


def test_stages_that_no_longer_fit_in_the_time_are_skipped_and_named(tmp_path):
    out = tmp_path / "out"
    result = gpu_check(out, REPO / "tests" / "test_gpu_check.py", "--time", "12")
    log = (out / "check.log").read_text()
    assert result.returncode == 1
    assert "skipped for time" in log
    assert log.strip().splitlines()[-1].startswith("== skipped for time: ")
    assert "gdbench run --steps-per-call" in log.strip().splitlines()[-1]
