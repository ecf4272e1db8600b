"""K steps per call: ``run_steps`` of every kernel against K float64 steps, the harness's
``--steps-per-call``, and converge reading the loss every K steps."""

import numpy as np
import pytest

import gdbench
from gdbench.core.protocol import run_steps
from gdbench.core.reference import compare_steps, descend, steps_tolerance
from gdbench.kernels.numpy_manual import NumpyManual
from gdbench.kernels.registry import kernel_class
from gdbench.runs.converge import converge
from gdbench.runs.settings import ConvergeSettings
from tests.conftest import kernels_on
from tests.test_kernels import random_problem, sparse_problem

CPU_KERNELS = kernels_on("cpu")


@pytest.mark.parametrize("k", [1, 300])
# numba-fused runs its passes in one thread below 2**16 elements, in parallel above
@pytest.mark.parametrize("n,d", [(1001, 1), (70_001, 1), (30_001, 3)])
@pytest.mark.parametrize("name", CPU_KERNELS)
def test_run_steps_match_k_float64_steps(name, n, d, k):
    if d > (kernel_class(name).max_features or d):
        pytest.skip(f"{name} supports at most {kernel_class(name).max_features} feature(s)")
    if name == "triton-fused":  # in the interpreter: 9 ms a step in one launch, 30 ms a launch
        k = min(k, 100 if d == 1 else 20)
    x, y, w0 = random_problem(n, d, "float32", seed=n + d + k)
    kernel = gdbench.make_kernel(name, "cpu", "float32")
    kernel.prepare(x, y, w0=w0, lr=0.01)
    run_steps(kernel, k)
    kernel.synchronize()
    assert compare_steps(kernel, x, y, w0, 0.01, k) is None
    # the read-backs are the last step's: the loss at the weights before its update
    before = descend(x, y, w0, 0.01, k - 1)
    x2 = np.asarray(x, np.float64).reshape(n, -1)
    r = x2 @ before - y
    assert kernel.loss == pytest.approx(float(r @ r) / n, rel=steps_tolerance("float32", n, k))


class Launches:
    """The kernels of a module, counted as they are launched (``kernel[grid](...)``)."""

    def __init__(self, module):
        self.module, self.counts = module, {}

    def __getattr__(self, name):
        kernel = getattr(self.module, name)
        counts = self.counts

        class Counted:
            def __getitem__(self, grid):
                counts[name] = counts.get(name, 0) + 1
                return kernel[grid]

        return Counted()


@pytest.mark.skipif("triton-fused" not in CPU_KERNELS, reason="triton is not installed")
@pytest.mark.parametrize("n,d,k,launches", [
    (1001, 1, 50, {"fused_steps_1d": 1}),  # one persistent launch of 50 steps
    (1001, 1, 1, {"fused_step_1d": 1}),
    (1001, 3, 5, {"fused_step_nd": 5}),  # several features: a launch per step
    (2**20 + 1, 1, 3, {"fused_step_1d": 3})])  # past one program's registers: streamed
def test_triton_runs_k_steps_of_one_feature_in_one_launch(n, d, k, launches):
    x, y, w0 = random_problem(n, d, "float32", seed=5)
    kernel = gdbench.make_kernel("triton-fused", "cpu", "float32")
    kernel.prepare(x, y, w0=w0, lr=0.01)
    kernel.loops = counted = Launches(kernel.loops)
    run_steps(kernel, k)
    assert counted.counts == launches
    assert compare_steps(kernel, x, y, w0, 0.01, k) is None
    run_steps(kernel, k)  # the barrier's generation carries on from the launch before
    assert compare_steps(kernel, x, y, w0, 0.01, 2 * k) is None


def test_the_tolerance_grows_with_k_and_catches_a_missing_step():
    assert steps_tolerance("float32", 1000, 100) == pytest.approx(
        11 * steps_tolerance("float32", 1000, 1) / 2)
    x, y, w0 = random_problem(1001, 1, "float64", seed=3)
    kernel = gdbench.make_kernel("numpy-manual", "cpu", "float64")
    kernel.prepare(x, y, w0=w0, lr=0.01)
    run_steps(kernel, 99)
    assert "weights after 100 steps" in compare_steps(kernel, x, y, w0, 0.01, 100)
    # the weights may stray by the tolerance, relative to 1 + |w|, and no further
    from types import SimpleNamespace

    from gdbench.core.reference import descend

    expected, tol = descend(x, y, w0, 0.01, 100), steps_tolerance("float32", len(y), 100)
    near = SimpleNamespace(dtype="float32", weight=expected + 0.5 * tol * (1 + abs(expected)))
    far = SimpleNamespace(dtype="float32", weight=expected + 3 * tol * (1 + abs(expected)))
    assert compare_steps(near, x, y, w0, 0.01, 100) is None
    assert "weights after 100 steps" in compare_steps(far, x, y, w0, 0.01, 100)


class Plain:
    """A plugin's kernel without run_steps: the protocol's loop of steps stands in."""

    def __init__(self):
        self.steps = 0

    def step(self):
        self.steps += 1


def test_a_kernel_without_run_steps_gets_a_loop():
    kernel = Plain()
    run_steps(kernel, 5)
    assert kernel.steps == 5
    assert NumpyManual.many_steps == "a loop of steps"
    assert kernel_class("numba-fused").many_steps == "one call"


def test_numba_run_steps_past_2_to_the_31_elements():
    """Offsets of N past 2**31 in the compiled loop: the sums reach the rows at the end."""
    if "numba-fused" not in CPU_KERNELS:
        pytest.skip("numba is not installed")
    x, y, w0, loss, grad, scale = sparse_problem((1 << 31) + 3001, 1)
    kernel = gdbench.make_kernel("numba-fused", "cpu")
    kernel.prepare(x, y, w0=w0, lr=0.01)
    run_steps(kernel, 2)
    w1 = w0 - 0.01 * grad  # the first step's update, from the float64 sums of the last rows
    r = x[-2000:, 0].astype(np.float64) * w1[0] - y[-2000:]
    assert kernel.loss == pytest.approx(float(r @ r) / len(y), rel=1e-3)


def test_a_sweep_times_k_steps_per_call_per_step(tmp_path):
    result = gdbench.run("cpu", ["numpy-manual", "numba-fused"], [1000], budget=0.04,
                         windows=2, roofline=False, steps_per_call=(50, 1))
    assert [c.spec.name for c in result.cases] == [
        "numpy-manual", "numpy-manual K=50", "numba-fused", "numba-fused K=50"]
    assert all(c.ok for c in result.cases), [c.message for c in result.cases]
    assert result.settings["steps_per_call"] == [1, 50]
    many = result.cases[1]
    assert many.spec.label.endswith("-K50") and many.samples.phases == ("step",)
    # each window's steps: every call's 50, and the energy and per-step times say so
    assert many.summary().median < 1.0  # seconds per step, not per call of 50


class SkipsAStep(NumpyManual):
    name = "skips-a-step"

    def run_steps(self, k):
        for _ in range(k - 1):
            self.step()


def test_k_steps_that_are_not_k_steps_are_wrong(monkeypatch):
    from gdbench.kernels import registry

    monkeypatch.setattr(registry, "BUILTIN", {**registry.BUILTIN,
                                              "skips-a-step": f"{__name__}:SkipsAStep"})
    [case] = gdbench.run("cpu", ["skips-a-step"], [1000], budget=0.02, windows=1,
                         roofline=False, steps_per_call=(20,)).cases
    assert case.status == "wrong" and "weights after 20 steps" in case.message


def test_converge_reads_the_loss_every_k_steps():
    s = ConvergeSettings("cpu", ("numba-fused",), (1000,), rates=("curvature", "tutorial"),
                         steps_per_call=40)
    assert s.checked().check_every == 40
    result = converge(s)
    assert result.settings["steps_per_call"] == 40
    for d in result.descents:
        assert d.status == "converged" and d.steps % 40 == 0, d
    with pytest.raises(ValueError, match="give it without --check-every"):
        ConvergeSettings("cpu", steps_per_call=40, check_every=10).checked()


@pytest.mark.parametrize("args,message", [
    (["--steps-per-call", "0"], "steps per call '0' is not a whole number"),
    (["--steps-per-call", "1,x"], "steps per call 'x' is not a whole number"),
    (["--steps-per-call", "10", "--nproc", "2"], "--steps-per-call does not go with a"),
])
def test_bad_steps_per_call_are_one_line(args, message, gdbench_cli, tmp_path):
    result = gdbench_cli("run", "--device", "cpu", "--kernels", "torch-manual", "--sizes", "100",
                         "--out", tmp_path / "r.json", *args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_run_and_list_show_k(gdbench_cli, tmp_path):
    result = gdbench_cli("run", "--device", "cpu", "--kernels", "numba-fused", "--sizes", "100",
                         "--steps-per-call", "1,10", "--budget", "0.02", "--windows", "1",
                         "--no-roofline", "--out", tmp_path / "r.json")
    assert result.returncode == 0, result.stderr
    assert "numba-fused K=10" in result.stdout
    listed = gdbench_cli("list").stdout
    assert "K steps" in listed and "1 call" in listed


def test_the_report_sets_k_steps_against_one(tmp_path, gdbench_cli):
    from dataclasses import replace

    from gdbench.analysis import findings
    from gdbench.files.results import write_json
    from tests.synthetic import synthetic_run

    run = synthetic_run("cpu", {("numba-fused", 1000): 4e-6})
    [one] = run.cases
    many = replace(one, spec=replace(one.spec, steps_per_call=100),
                   samples=one.samples.per_step(10))  # a tenth of the time per step
    run.cases.append(many)
    [(key, by_size)] = findings.many_steps(run).items()
    assert key == ("numba-fused", 100) and by_size == {1000: pytest.approx(0.1)}
    write_json(run, tmp_path / "r.json")
    assert gdbench_cli("report", tmp_path / "r.json", "-o", tmp_path / "r.md",
                       "--no-plots").returncode == 0
    text = (tmp_path / "r.md").read_text()
    assert "### Many steps per call" in text and "| numba-fused | 100 |" in text


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [3, 1001, 65_535])  # in one thread, in blocks of 512 terms
def test_numba_steps_in_one_thread_in_both_dtypes(n, dtype):
    if "numba-fused" not in CPU_KERNELS:
        pytest.skip("numba is not installed")
    x, y, w0 = random_problem(n, 1, dtype, seed=n)
    kernel = gdbench.make_kernel("numba-fused", "cpu", dtype)
    kernel.prepare(x, y, w0=w0, lr=0.01)
    run_steps(kernel, 50)
    assert compare_steps(kernel, x, y, w0, 0.01, 50) is None
    assert kernel.weight.dtype == np.dtype(dtype)


@pytest.mark.cuda
@pytest.mark.parametrize("n", [1, 1001, 10**4, 10**6, 2 * 10**6])
@pytest.mark.parametrize("name", ["triton-fused", "cupy-fused", "torch-compile"])
def test_k_steps_in_one_launch_on_cuda_match_k_float64_steps(name, n):
    """The persistent kernels (one block per multiprocessor, a grid-wide barrier per step,
    x and y in registers up to about 10^6 rows; a launch per step past that) and
    torch-compile's CUDA graph of K steps, against K float64 steps, twice in a row."""
    info = {k.name: k for k in gdbench.list_kernels("cuda")}[name]
    if not info.available_on("cuda"):
        pytest.skip(info.unavailable["cuda"])
    k = 1000
    x, y, w0 = random_problem(n, 1, "float32", seed=n)
    kernel = gdbench.make_kernel(name, "cuda", "float32")
    kernel.prepare(x, y, w0=w0, lr=0.01)
    for calls in (1, 2):
        run_steps(kernel, k)
        kernel.synchronize()
        assert compare_steps(kernel, x, y, w0, 0.01, calls * k) is None, calls


@pytest.mark.skipif("triton-fused" not in CPU_KERNELS, reason="triton is not installed")
def test_a_persistent_barrier_that_waits_in_vain_fails_rather_than_hangs(monkeypatch):
    """Two programs in Triton's interpreter, which runs them one after another: the first
    waits for a second that cannot run, as a grid not resident at once would on a GPU. The
    wait is bounded: synchronize raises, the next launch starts clean, and the results of a
    good launch are right again."""
    from gdbench.kernels import triton_fused

    x, y, w0 = random_problem(1001, 1, "float32", seed=3)
    kernel = gdbench.make_kernel("triton-fused", "cpu", "float32")
    kernel.prepare(x, y, w0=w0, lr=0.01)
    monkeypatch.setattr(triton_fused, "POLL_LIMIT", 200)
    monkeypatch.setattr(kernel, "persistent_grid", lambda: (2, 512))
    run_steps(kernel, 3)
    with pytest.raises(RuntimeError, match="persistent barrier timed out"):
        kernel.synchronize()
    monkeypatch.undo()
    kernel.prepare(x, y, w0=w0, lr=0.01)
    run_steps(kernel, 3)
    kernel.synchronize()
    assert compare_steps(kernel, x, y, w0, 0.01, 3) is None


@pytest.mark.skipif("triton-fused" not in CPU_KERNELS, reason="triton is not installed")
def test_how_k_steps_ran_is_recorded_and_said(tmp_path, gdbench_cli):
    """One launch where the rows fit; beyond, a launch a step, and the results say why."""
    ran = gdbench_cli("run", "--device", "cpu", "--kernels", "triton-fused", "--sizes",
                      "1e3,1.1e6", "--steps-per-call", "1,3", "--budget", "0.01", "--windows",
                      "1", "--no-roofline", "--no-memory", "--quiet", "--out",
                      tmp_path / "r.json")
    assert ran.returncode == 0, ran.stderr
    import json

    cases = {(c["n_samples"], c["steps_per_call"]): c
             for c in json.loads((tmp_path / "r.json").read_text())["cases"]}
    assert cases[(1000, 3)]["many_steps"] == "1 launch of 1 program(s), interpreted"
    assert cases[(1_100_000, 3)]["many_steps"] == (
        "a launch a step: 1.1e+06 rows exceed one interpreted program of 1048576")
    assert "many_steps" not in cases[(1000, 1)]


def test_the_cupy_persistent_grid_says_why_it_falls_back():
    """Without CuPy: the choice of cupy-fused's run_steps, on an H100 PCIe's 114 SMs."""
    from gdbench.kernels.cupy_fused import CupyFused

    kernel = CupyFused.__new__(CupyFused)
    kernel.sms, kernel.n_features = 114, 1
    kernel.n_samples = 10**5
    assert kernel.many_steps_plan(1000).startswith("1 cooperative launch of ")
    kernel.n_samples = 10**6
    assert kernel.many_steps_plan(1000) == ("a launch a step: 1e+06 rows exceed 114 blocks x "
                                            "8192 rows on this GPU")
    kernel.n_samples, kernel.n_features = 10**4, 3
    assert kernel.many_steps_plan(1000) == (
        "a launch a step: 3 features: one launch of K steps holds one")
