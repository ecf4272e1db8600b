"""Step memory: each backend's accounting on cases whose allocations are known."""

import json

import numpy as np
import pytest

import gdbench
from gdbench.files.results import read_json
from gdbench.kernels.numpy_manual import NumpyManual
from gdbench.axes.memory import MemoryHook, PoolCounter, measure_memory
from gdbench.runs import sweep
from tests.conftest import kernels_on

N = 70_001  # 280 KB a float32 array: far above what the steps' Python objects take
ALLOWANCE = 16 << 10  # bytes that are not the step's arrays: 6% of one of them


def measured(name, dtype="float32", n=N, d=1):
    x, y = gdbench.make_problem(n, d, "float32")
    kernel = gdbench.make_kernel(name, "cpu", dtype)
    return measure_memory(kernel, lambda: kernel.prepare(x, y)), n * np.dtype(
        "float32" if dtype == "float32" else "float16").itemsize


class Temporaries(NumpyManual):
    """A step that makes ``k`` arrays of N float32 at once, then frees them, and keeps one."""

    name = "temporaries"
    k = 4

    def step(self):
        temporaries = [np.ones(self.n_samples, np.float32) for _ in range(self.k)]
        self.kept = temporaries[0] + 1
        del temporaries


def test_known_temporaries_are_counted_to_the_byte():
    kernel = Temporaries()
    x, y = gdbench.make_problem(N)
    m = measure_memory(kernel, lambda: kernel.prepare(x, y))
    array = 4 * N
    # The first step makes 4 and keeps a fifth; the second makes 4 more + 1 while the kept
    # one lives, and frees the old kept one last. tracemalloc counts every thread of the
    # process: a pytest-xdist worker's receives a message of a few KB now and then.
    assert m["method"] == "tracemalloc"
    assert m["first_step"]["peak"] == pytest.approx(5 * array, abs=ALLOWANCE)
    assert m["held_bytes"] == pytest.approx(array, abs=ALLOWANCE)
    assert m["peak_bytes"] == pytest.approx(6 * array, abs=ALLOWANCE)


def test_numpy_manual_reuses_the_prediction_for_the_residual():
    """forward makes x * w, then r = (x * w) - y, which NumPy computes in the prediction's buffer
    (a temporary nobody else holds), and r**2: two arrays at once, r kept for backward; the
    next step's r is made while the last one is still held."""
    m, array = measured("numpy-manual")
    assert m["peak_bytes"] == pytest.approx(2 * array, rel=0.01)
    assert m["held_bytes"] == pytest.approx(array, rel=0.01)


@pytest.mark.skipif("torch-manual" not in kernels_on("cpu"), reason="torch is not installed")
@pytest.mark.parametrize("name,arrays,held", [
    ("torch-manual", 3, 1),  # prediction and r, with the last step's r still held
    ("torch-autograd", 5, 0),  # the byte model's 5 writes; the gradient is cleared in update
    ("torch-compile", 0, 0),  # one fused loop: nothing of N elements
])
def test_torch_profiler_counts_the_known_arrays(name, arrays, held):
    """Whole arrays are counted exactly; a tenth of one array (28 KB) leaves room for the
    scratch that is not an array of N: the compiled loop's per-thread partial sums take
    5 to 15 KB, depending on the code Inductor generates."""
    m, array = measured(name)
    assert m["method"] == "torch profiler memory events"
    assert m["peak_bytes"] == pytest.approx(arrays * array, abs=0.1 * array)
    assert m["held_bytes"] == pytest.approx(held * array, abs=0.1 * array)


@pytest.mark.skipif("triton-fused" not in kernels_on("cpu"), reason="no Triton interpreter")
def test_triton_fused_allocates_nothing_in_a_step():
    m, _ = measured("triton-fused", "bfloat16", n=10_000)
    assert (m["peak_bytes"], m["held_bytes"]) == (0, 0)


@pytest.mark.skipif("numba-fused" not in kernels_on("cpu"), reason="numba is not installed")
def test_numba_says_why_it_is_not_measured():
    m, _ = measured("numba-fused", n=10_000)
    assert "peak_bytes" not in m
    assert m["not_measured"].startswith("Numba's runtime counts")


def test_pool_counter_follows_mallocs_and_frees():
    counter = PoolCounter()
    counter.malloc_postprocess(device_id=0, size=1000, mem_size=1024, mem_ptr=1, pmem_id=1)
    counter.malloc_postprocess(device_id=0, size=500, mem_size=512, mem_ptr=2, pmem_id=2)
    counter.free_postprocess(device_id=0, mem_size=1024, mem_ptr=1, pmem_id=1)
    counter.malloc_postprocess(device_id=0, size=10, mem_size=512, mem_ptr=3, pmem_id=3)
    assert (counter.peak, counter.current) == (1536, 1024)


def test_sweep_records_memory_and_the_model(tmp_path):
    out, csv = tmp_path / "r.json", tmp_path / "r.csv"
    result = sweep.run("cpu", ["numpy-manual"], [N], budget=0.02, windows=1, roofline=False,
                       out=out, csv=csv)
    case = result.cases[0]
    assert case.memory_peak == pytest.approx(2 * 4 * N, rel=0.01)
    assert case.writes == 3 and case.memory_model == 3 * 4 * N
    saved = json.loads(out.read_text())["cases"][0]
    assert saved["memory"]["method"] == "tracemalloc"
    assert saved["memory_model_bytes"] == 3 * 4 * N
    assert read_json(out).cases[0].memory == case.memory
    assert "memory_peak_bytes" in csv.read_text().splitlines()[0]
    # the cell's memory line (a case contended by another process shows that instead)
    assert MemoryHook.detail(case) == ["mem 2×N (model 3)"]
    assert any("| numpy-manual | " in line and "| tracemalloc |" in line
               for line in MemoryHook.table(result.cases))
    skipped = sweep.run("cpu", ["numpy-manual"], [100], budget=0.02, windows=1, roofline=False,
                        memory=False)
    assert skipped.cases[0].memory is None and skipped.settings["memory"] is False


@pytest.mark.cuda
@pytest.mark.parametrize("name,arrays", [("torch-manual", 3), ("torch-autograd", 5),
                                         ("triton-fused", 0), ("cupy-manual", 3),
                                         ("cupy-fused", 0)])
def test_cuda_accounting_counts_the_known_arrays(name, arrays):
    if name not in kernels_on("cuda"):
        pytest.skip(f"{name} is unavailable on cuda here")
    x, y = gdbench.make_problem(10**6)
    kernel = gdbench.make_kernel(name, "cuda")
    m = measure_memory(kernel, lambda: kernel.prepare(x, y))
    assert m["peak_bytes"] == pytest.approx(arrays * 4 * 10**6, abs=0.02 * 4 * 10**6), m


class Cycle:
    """An object kept alive only by a reference to itself: freed by a collection, not by its
    reference count."""

    def __init__(self):
        self.me = self


def test_a_run_collects_its_own_objects_and_leaves_the_rest_frozen_until_it_ends(monkeypatch):
    import gc
    import weakref

    from gdbench.core.devices import release_device_memory, run_objects_collected

    before = weakref.ref(Cycle())  # garbage from before the run: the run's first collection
    calls = []
    monkeypatch.setattr(sweep, "_sweep", lambda *args: calls.append(gc.get_freeze_count()))
    assert gc.get_freeze_count() == 0
    with run_objects_collected():
        assert before() is None and gc.get_freeze_count() > 0
        inside = weakref.ref(Cycle())
        sweep.sweep(None)  # a run inside a run: still frozen, and after it too
        assert calls[0] > 0 and gc.get_freeze_count() > 0
        release_device_memory("cpu")
        assert inside() is None  # the run's own garbage is collected
    assert gc.get_freeze_count() == 0
    with pytest.raises(KeyboardInterrupt), run_objects_collected():
        raise KeyboardInterrupt
    assert gc.get_freeze_count() == 0
