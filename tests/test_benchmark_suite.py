"""The pytest-benchmark suite: ids, groups and extra_info, failures, and the synchronized clock."""

import importlib.util
import json
import math
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
                       "--gdbench-max-time", "0.05", f"--benchmark-json={out}")
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
    assert step["options"]["max_time"] == 0.05  # --gdbench-max-time
    for name, bench in benchmarks.items():  # calls of microseconds are repeated within a round
        repeats = name.startswith(("test_step", "test_forward"))
        assert (bench["stats"]["iterations"] > 1) == repeats, name


def load_benchmarks_module():
    spec = importlib.util.spec_from_file_location(
        "gradient_step_benchmarks", REPO / "benchmarks" / "test_gradient_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ScriptedClock:
    """A clock advanced by the calls it times: a call lasts ``duration(now)``."""

    def __init__(self, duration):
        self.now, self.duration = 0.0, duration

    def __call__(self):
        return self.now

    def call(self):
        self.now += self.duration(self.now)


@pytest.mark.parametrize("slow_batch", [0, 1, 2])
def test_rounds_hold_calls_for_the_round_length_at_the_fastest_batch(slow_batch):
    """Calls slowed 3x by another process for one batch, wherever it falls, do not
    shorten the rounds: calls per round come from the fastest batch, and a round at that
    speed lasts its 2 ms."""
    bench = load_benchmarks_module()
    per_call, warm_up = 20e-6, 60e-6
    slow_from = warm_up + slow_batch * bench.ROUND_SECONDS
    slow_until = slow_from + bench.ROUND_SECONDS  # one batch
    clock = ScriptedClock(lambda now: per_call * (3 if slow_from <= now < slow_until else 1))
    calls, rounds = bench.repeated(clock.call, clock)
    assert calls == pytest.approx(bench.ROUND_SECONDS / per_call, abs=1)
    assert calls * per_call >= bench.ROUND_SECONDS * 0.999
    assert rounds == max(5, math.ceil(bench.MAX_SECONDS / (calls * per_call) - 1e-9))


def test_slow_calls_are_one_per_round():
    bench = load_benchmarks_module()
    clock = ScriptedClock(lambda now: 0.0625)
    assert bench.repeated(clock.call, clock) == (1, 8)


def test_untimed_run_catches_a_broken_kernel(tmp_path):
    """Plain pytest runs each benchmark once; a kernel that disagrees with the reference fails."""
    env = scaled_gradient_plugin(tmp_path, "bad_kernels", "off-by-half", 0.5)
    result = run_suite("--gdbench-device", "cpu", "--gdbench-kernels", "numpy-manual,off-by-half",
                       env=env)
    assert result.returncode == 1
    assert "4 passed, 4 errors" in result.stdout and "Benchmark fixture was not used" not in result.stdout
    assert "off-by-half-cpu-float32-N1e2-D1 disagrees with the float64 reference" in result.stdout


def test_unknown_kernel_is_a_usage_error():
    result = run_suite("--gdbench-device", "cpu", "--gdbench-kernels", "nope")
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
