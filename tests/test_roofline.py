"""The roofline probe, the byte model, and what the fused kernels promise about themselves."""


import numpy as np
import pytest

import gdbench
from gdbench.kernels.cuda_graph import CudaGraphStep
from gdbench.measure.roofline import measure_roofline
from gdbench.records.roofline import Probe
from tests.conftest import kernels_on


def test_cpu_probe_measures_memory_and_the_curve():
    result = measure_roofline("cpu", nbytes=64 << 20)
    assert result.device == "cpu" and result.nbytes == 64 << 20
    assert "numpy-sum" in result.methods and all(r > 1e8 for r in result.methods.values())
    assert result.bandwidth == max(result.methods.values())
    sizes = sorted(result.curve)
    assert sizes[0] == 4096 and sizes[-1] == 64 << 20
    assert all(b == 4 * a for a, b in zip(sizes, sizes[1:-1]))
    assert all(rate > 1e8 for rate in result.curve.values())
    assert set(result.levels) <= {"L1d", "L2", "L3", "L4"}
    assert Probe.from_dict(result.to_dict()) == result


def test_roofline_follows_the_curve_and_never_drops_below_memory():
    p = Probe("cpu", 1 << 30, {"a": 20e9}, curve={1 << 12: 50e9, 1 << 20: 100e9, 1 << 30: 20e9})
    assert p.roofline(1 << 12) == pytest.approx(50e9)
    assert p.roofline(1 << 16) == pytest.approx((50e9 * 100e9) ** 0.5)  # halfway in log-log
    assert p.roofline(100) == pytest.approx(50e9) and p.roofline(1 << 34) == pytest.approx(20e9)
    slow_small = Probe("cpu", 1 << 30, {"a": 20e9}, curve={1 << 12: 5e9, 1 << 30: 20e9})
    assert slow_small.roofline(1 << 12) == 20e9


def test_roofline_picks_the_level_the_data_fits_in():
    """Results of gdbench 0.1.0 carry a cache level and no curve."""
    p = Probe("cpu", 1 << 30, {"a": 20e9, "b": 25e9}, 1 << 20, {"a": 60e9})
    assert (p.bandwidth, p.best_method, p.cache_bandwidth) == (25e9, "b", 60e9)
    assert p.roofline(1 << 20) == 60e9 and p.roofline((1 << 20) + 1) == 25e9
    assert Probe("cuda", 1 << 30, {"copy": 3e12}).roofline(10) == 3e12
    slow_cache = Probe("cpu", 1 << 30, {"a": 20e9}, 1 << 20, {"a": 5e9})
    assert slow_cache.roofline(100) == 20e9  # never below the memory level


def test_bandwidth_is_measured_at_a_case_size_in_every_round():
    result = gdbench.run("cpu", ["numpy-manual"], [1000, 100_000], budget=0.02, windows=2,
                         max_windows=2,
                         probe_bytes=4 << 20)
    assert sorted(result.rooflines) == [8000, 800_000]
    assert all(len(v) == 2 for v in result.rooflines.values())
    for case in result.cases:  # a case measured again has the rooflines of its own windows
        rounds = case.rooflines or result.rooflines[case.spec.bytes_min]
        assert result.roofline(case) == np.median(rounds)


def test_cli_probe(gdbench_cli, monkeypatch):
    from gdbench.measure import roofline

    monkeypatch.setattr(roofline, "cpu_cache_levels", lambda: {"L1d": 32 << 10, "L2": 1 << 20})
    result = gdbench_cli("probe", "--device", "cpu", "--bytes", "4MiB")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("cpu: roofline ") and "from memory" in lines[0]
    assert lines[0].endswith(", 4 MiB streamed)") and "numpy-sum" in result.stdout
    assert "the OS reports them: L1d 32 KiB, L2 1 MiB)" in result.stdout
    curve = [line.split() for line in lines if "fits in" in line]
    assert [(c[0] + c[1], c[-1]) for c in curve] == [
        ("4KiB", "L1d"), ("16KiB", "L1d"), ("64KiB", "L2"), ("256KiB", "L2"), ("1MiB", "L2"),
        ("4MiB", "memory")]
    inside = gdbench_cli("probe", "--device", "cpu", "--bytes", "64KiB")
    assert "from L2 (" in inside.stdout.splitlines()[0]


@pytest.mark.parametrize("name,passes", [("numpy-manual", 5), ("torch-manual", 5),
                                         ("torch-autograd", 7.5), ("numba-fused", 1),
                                         ("torch-compile", 1), ("triton-fused", 1),
                                         ("cupy-fused", 1)])
def test_byte_model(name, passes):
    from gdbench.kernels.registry import kernel_class

    assert kernel_class(name).passes == passes


@pytest.mark.skipif("torch-compile" not in kernels_on("cpu"), reason="torch is not installed")
def test_torch_compile_compiles_anew_for_each_size_and_never_while_timed():
    """Static shapes: a second N gets a graph of its own, never one tuned for the first."""
    from torch._dynamo.utils import counters

    from gdbench.kernels.torch_compile import compiled_step

    kernel = gdbench.make_kernel("torch-compile", dtype="float64")
    graphs = lambda: counters["stats"]["unique_graphs"]  # noqa: E731
    before = graphs()
    kernel.prepare(*gdbench.make_problem(5_000, 5, "float64"))  # 5 features: used nowhere else
    kernel.step()
    assert graphs() == before + 1  # the first step compiled
    for _ in range(20):
        kernel.step()
    assert graphs() == before + 1  # no recompilation while timed
    first = kernel.compiled
    kernel.prepare(*gdbench.make_problem(20_000, 5, "float64"))
    kernel.step()
    assert graphs() == before + 2 and kernel.compiled is not first  # compiled anew for 20,000
    for _ in range(20):
        kernel.step()
    assert graphs() == before + 2
    kernel.prepare(*gdbench.make_problem(5_000, 5, "float64"))  # back to the first size
    kernel.step()
    assert graphs() == before + 2 and kernel.compiled is first
    assert compiled_step(5_000, 5, "float64", "cpu") is first
    x, y = gdbench.make_problem(5_000, 5, "float64")
    for lr in (0.5, 0.001):  # converge's rules: a learning rate is an input, not a constant
        kernel.prepare(x, y, lr=lr)
        kernel.step()
        assert graphs() == before + 2
        assert gdbench.check_step(kernel, x, y, lr=lr) is None


def test_fused_kernels_have_no_phases():
    kernel = gdbench.make_kernel("numba-fused")
    assert kernel.phases == gdbench.FUSED
    kernel.prepare([1.0, 2.0], [2.0, 4.0])
    with pytest.raises(TypeError, match="fused"):
        kernel.forward()


def test_cupy_fused_takes_up_to_16_features():
    info = {k.name: k for k in gdbench.list_kernels()}["cupy-fused"]
    assert info.max_features == 16


def test_cuda_graph_refuses_cpu_kernels():
    with pytest.raises(ValueError, match="cannot be captured in a CUDA graph"):
        CudaGraphStep(gdbench.make_kernel("numpy-manual"))


def test_which_kernels_can_be_captured():
    infos = {k.name: k for k in gdbench.list_kernels()}
    assert {n for n, k in infos.items() if k.cuda_graph} == {
        "torch-manual", "torch-autograd", "torch-optim", "torch-module", "torch-compile",
        "triton-fused", "cupy-fused"}


@pytest.mark.cuda
@pytest.mark.parametrize("name", [k.name for k in gdbench.list_kernels() if k.cuda_graph])
@pytest.mark.parametrize("n", [1000, 1_000_000])
def test_cuda_graph_step_matches_reference(name, n):
    if name not in kernels_on("cuda"):
        pytest.skip(f"{name} is unavailable on cuda here")
    x, y = gdbench.make_problem(n)
    graph = CudaGraphStep(gdbench.make_kernel(name, "cuda"))
    assert gdbench.check_step(graph, x, y) is None
    for _ in range(9):
        graph.step()
    graph.synchronize()
    expected = gdbench.core.reference.descend(x, y, 0.0, 0.01, 10)
    assert graph.weight == pytest.approx(expected, rel=1e-3)
