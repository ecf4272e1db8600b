"""The pytest-benchmark suite: ids, groups and extra_info, failures, and the synchronized clock."""

import json
import os
import subprocess
import sys
import time

import pytest

import gdbench
from gdbench.measure.clocks import SynchronizedClock
from tests.plugins import REPO, scaled_gradient_plugin


def run_suite(*args, env=None):
    # A pytest of its own, timed, even when these tests run in xdist's workers: pytest-benchmark
    # turns timing off where it finds a worker's environment.
    env = {k: v for k, v in (env or os.environ).items() if not k.startswith("PYTEST_XDIST")}
    return subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "-p", "no:cacheprovider",
                           "-p", "no:xdist", "-q", *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env=env)


def test_timed_suite_writes_pytest_benchmark_json(tmp_path):
    out = tmp_path / "bench.json"
    result = run_suite("--benchmark-only", "--gdbench-device", "cpu", "--gdbench-sizes", "1e3",
                       "--gdbench-kernels", "numpy-manual,torch-autograd",
                       f"--benchmark-json={out}")
    assert result.returncode == 0, result.stdout[-2000:]
    benchmarks = {b["name"]: b for b in json.loads(out.read_text())["benchmarks"]}
    assert set(benchmarks) == {f"test_{p}[{k}-cpu-1e3]" for p in ("step", *gdbench.PHASES)
                               for k in ("numpy-manual", "torch-autograd")}
    step = benchmarks["test_step[torch-autograd-cpu-1e3]"]
    assert step["group"] == "step N=1e3"
    assert benchmarks["test_backward[numpy-manual-cpu-1e3]"]["group"] == "backward N=1e3"
    info = step["extra_info"]
    assert info["kernel"] == "torch-autograd" and info["backend"] == "torch"
    assert (info["device"], info["dtype"], info["n_samples"]) == ("cpu", "float32", 1000)
    assert info["bytes_per_step"] == 8000
    assert info["effective_gbs"] == pytest.approx(8000 / step["stats"]["median"] / 1e9)
    assert step["stats"]["rounds"] >= 5 and step["options"]["timer"].endswith("SynchronizedClock('cpu')")
    for name, bench in benchmarks.items():  # rounds of repeated calls last 1 ms at the least
        if name.startswith(("test_step", "test_forward")):
            assert bench["stats"]["min"] * bench["stats"]["iterations"] >= 1e-3, name


def test_untimed_run_catches_a_broken_kernel(tmp_path):
    """Plain pytest runs each benchmark once; a kernel that disagrees with the reference fails."""
    env = scaled_gradient_plugin(tmp_path, "bad_kernels", "off-by-half", 0.5)
    result = run_suite("--gdbench-device", "cpu", "--gdbench-kernels", "numpy-manual,off-by-half",
                       env=env)
    assert result.returncode == 1
    assert "4 passed, 4 errors" in result.stdout and "Benchmark fixture was not used" not in result.stdout
    assert "off-by-half-cpu-float32-N1e2-D1 disagrees with the float64 reference" in result.stdout


def test_unknown_kernel_is_a_usage_error():
    result = run_suite("--gdbench-kernels", "nope")
    assert result.returncode != 0
    assert "unknown kernel 'nope'" in result.stdout + result.stderr


def test_cpu_clock_is_perf_counter():
    clock = SynchronizedClock("cpu")
    before = time.perf_counter()
    assert before <= clock() <= time.perf_counter()


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["torch-manual", "cupy-manual"])
def test_round_time_holds_the_device_work(name):
    """A round at 10^8 takes at least half what its bytes need at the measured bandwidth;
    the same loop without the synchronizing clock measures only its launches."""
    info = {k.name: k for k in gdbench.list_kernels("cuda")}[name]
    if not info.available_on("cuda"):
        pytest.skip(info.unavailable["cuda"])
    from gdbench.measure.roofline import measure_roofline

    n = 10**8
    bytes_model = gdbench.kernels.registry.kernel_class(name).passes * 8 * n  # x and y, float32
    floor = bytes_model / measure_roofline("cuda").bandwidth
    clock = SynchronizedClock("cuda")
    kernel = gdbench.make_kernel(name, "cuda")
    kernel.prepare(*gdbench.make_problem(n))
    kernel.step()
    start = clock()
    for _ in range(10):
        kernel.step()
    per_step = (clock() - start) / 10
    kernel.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        kernel.step()
    launch_only = (time.perf_counter() - start) / 10
    kernel.synchronize()
    assert per_step >= 0.5 * floor
    assert launch_only < 0.5 * per_step


@pytest.mark.cuda
def test_cuda_rounds_last_a_millisecond(tmp_path):
    out = tmp_path / "bench.json"
    result = run_suite("--benchmark-only", "--gdbench-device", "cuda", "--gdbench-sizes", "1e4",
                       "--gdbench-kernels", "torch-manual,torch-autograd", "-k",
                       "test_step or test_forward", f"--benchmark-json={out}")
    assert result.returncode == 0, result.stdout[-2000:]
    for bench in json.loads(out.read_text())["benchmarks"]:
        assert bench["stats"]["min"] * bench["stats"]["iterations"] >= 1e-3, bench["name"]
