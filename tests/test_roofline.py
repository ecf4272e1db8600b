"""The roofline probe, the byte model, and what the fused kernels promise about themselves."""

import subprocess
import sys

import pytest

import gdbench
from gdbench.kernels.cuda_graph import CudaGraphStep
from gdbench.probe import Probe, probe
from tests.conftest import kernels_on


def test_cpu_probe_measures_memory_and_cache():
    result = probe("cpu", nbytes=64 << 20)
    assert result.device == "cpu" and result.nbytes == 64 << 20
    assert "numpy-sum" in result.methods and all(r > 1e8 for r in result.methods.values())
    assert result.bandwidth == max(result.methods.values())
    if result.cache_methods:
        assert result.roofline(1000) == result.cache_bandwidth
        assert result.roofline(result.cache_bytes + 1) == result.bandwidth
    assert Probe.from_dict(result.to_dict()) == result


def test_roofline_picks_the_level_the_data_fits_in():
    p = Probe("cpu", 1 << 30, {"a": 20e9, "b": 25e9}, 1 << 20, {"a": 60e9})
    assert (p.bandwidth, p.best_method, p.cache_bandwidth) == (25e9, "b", 60e9)
    assert p.roofline(1 << 20) == 60e9 and p.roofline((1 << 20) + 1) == 25e9
    assert Probe("cuda", 1 << 30, {"copy": 3e12}).roofline(10) == 3e12


def test_cli_probe():
    result = subprocess.run([sys.executable, "-m", "gdbench", "probe", "--device", "cpu"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("cpu: roofline ") and "numpy-sum" in result.stdout


@pytest.mark.parametrize("name,passes", [("numpy-manual", 5), ("torch-manual", 5),
                                         ("torch-autograd", 7.5), ("numba-fused", 1),
                                         ("torch-compile", 1), ("triton-fused", 1),
                                         ("cupy-fused", 1)])
def test_byte_model(name, passes):
    from gdbench.registry import kernel_class

    assert kernel_class(name).passes == passes


@pytest.mark.skipif("torch-compile" not in kernels_on("cpu"), reason="torch is not installed")
def test_torch_compile_does_not_recompile_while_timed():
    from torch._dynamo.utils import counters

    kernel = gdbench.make_kernel("torch-compile", dtype="float64")
    before = counters["stats"]["unique_graphs"]
    kernel.prepare(*gdbench.make_problem(50_000, 5, "float64"))  # 5 features: used nowhere else
    kernel.step()
    compiled = counters["stats"]["unique_graphs"]
    assert compiled > before  # the first step compiled
    for _ in range(20):
        kernel.step()
    kernel.prepare(*gdbench.make_problem(200_000, 5, "float64"))  # another size, same graph
    for _ in range(20):
        kernel.step()
    assert counters["stats"]["unique_graphs"] == compiled


def test_fused_kernels_have_no_phases():
    kernel = gdbench.make_kernel("numba-fused")
    assert kernel.phases == gdbench.FUSED
    kernel.prepare([1.0, 2.0], [2.0, 4.0])
    with pytest.raises(TypeError, match="fused"):
        kernel.forward()


def test_cupy_fused_takes_one_feature():
    info = {k.name: k for k in gdbench.list_kernels()}["cupy-fused"]
    assert info.max_features == 1


def test_cuda_graph_refuses_cpu_kernels():
    with pytest.raises(ValueError, match="needs a torch or triton kernel on cuda"):
        CudaGraphStep(gdbench.make_kernel("numpy-manual"))


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["torch-manual", "torch-autograd", "torch-optim",
                                  "torch-module", "torch-compile", "triton-fused"])
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
    expected = gdbench.reference.descend(x, y, 0.0, 0.01, 10)
    assert graph.weight == pytest.approx(expected, rel=1e-3)
