"""scripts/gpu-check.sh, run with its stages on the CPU, so that the GPU's one call is no debug."""

import json
import os
import subprocess
import sys

from gdbench.analysis.compare import load_timings
from gdbench.files.results import read_json
from tests.plugins import REPO

STAGES = ("environment", "tests marked cuda", "gdbench run --device", "gdbench report",
          "gdbench run 2 of 3", "gdbench run 3 of 3", "pytest --benchmark-only",
          "gdbench compare", "gdbench run --dtype", "gdbench ab")


def gpu_check(out, sizes: str, name: str):
    """The script's stages on the CPU, with this interpreter, writing into ``out``."""
    return subprocess.run(["bash", str(REPO / "scripts" / "gpu-check.sh"), str(out),
                           "--device", "cpu", "--sizes", sizes, "--bench-sizes", "1e2",
                           "--budget", "0.02", "--name", name,
                           "--kernels", "numpy-manual,numba-fused", "--no-roofline",
                           "--tests", "tests/test_benchmark_suite.py"],
                          capture_output=True, text=True, timeout=300, cwd=out.parent,
                          env=dict(os.environ, PYTHON=sys.executable))


def test_every_stage_runs_on_the_cpu(tmp_path):
    out = tmp_path / "out"
    result = gpu_check(out, "1e2", "cpu-check")
    log = (out / "check.log").read_text()
    assert result.returncode == 0, log[-3000:]
    for stage in STAGES:
        assert f"== {stage}" in log and f"== {stage}" in result.stdout
    assert log.count(": exit 0") == len(STAGES)
    assert '"implementation": "CPython"' in log  # the environment was printed
    files = sorted(p.name for p in out.iterdir())
    assert files == ["check.log", "cpu-check-2.json", "cpu-check-3.json", "cpu-check-ab.json",
                     "cpu-check-precision.json", "cpu-check-pytest-benchmark.json",
                     "cpu-check.json", "tests.xml"]  # at most 8 come back
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


def test_a_failing_stage_is_reported_and_the_rest_still_run(tmp_path):
    out = tmp_path / "out"
    result = gpu_check(out, "0", "bad")
    log = (out / "check.log").read_text()
    assert result.returncode == 1
    assert "== gdbench run --device cpu --sizes 0: exit 2" in log
    assert "== pytest --benchmark-only --gdbench-sizes 1e2: exit 0" in log
