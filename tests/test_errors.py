"""Bad input: a ValueError with the reason in the library, one line and status 2 on the CLI."""


import numpy as np
import pytest

import gdbench
from gdbench.kernels.base import all_finite

GOOD_X, GOOD_Y = np.arange(1.0, 5.0), 2 * np.arange(1.0, 5.0)


@pytest.mark.parametrize("name,device,dtype,match", [
    ("no-such-kernel", "cpu", "float32", "unknown kernel 'no-such-kernel'; known kernels: numpy-manual"),
    ("numpy-manual", "cuda", "float32", "does not run on 'cuda'"),
    ("numpy-manual", "tpu", "float32", "known devices: cpu, cuda"),
    ("numpy-manual", "cpu", "bfloat16", "does not support dtype 'bfloat16'; it supports: "
                                        "float32, float64, float16"),
    ("numba-fused", "cpu", "float16", "does not support dtype 'float16'"),
    ("numpy-manual", "cpu", "int8", r"known dtypes: float32, float64, bfloat16, float16\)"),
])
def test_make_kernel_rejects(name, device, dtype, match):
    with pytest.raises(ValueError, match=match):
        gdbench.make_kernel(name, device, dtype)


def test_cuda_kernel_absent_here_says_why():
    info = {k.name: k for k in gdbench.list_kernels("cuda")}["cupy-manual"]
    if info.available_on("cuda"):
        pytest.skip("cupy reaches a CUDA device here")
    with pytest.raises(ValueError, match="unavailable on cuda: .*(not installed|no CUDA device)"):
        gdbench.make_kernel("cupy-manual", "cuda")


@pytest.mark.parametrize("x,y,kwargs,match", [
    (GOOD_X, GOOD_Y[:3], {}, "x has 4 samples but y has 3"),
    (np.zeros(0), np.zeros(0), {}, "empty"),
    (np.zeros((4, 0)), np.zeros(4), {}, "no features"),
    (np.zeros((2, 2, 2)), np.zeros(2), {}, r"shape \(N,\) or \(N, D\)"),
    (GOOD_X, GOOD_Y.reshape(2, 2), {}, r"y must have shape \(N,\)"),
    (np.array([1.0, np.nan]), np.ones(2), {}, "finite"),
    (np.ones(2), np.array([np.inf, 1.0]), {}, "finite"),
    (np.array([[1.0, 2.0], [3.0, -np.inf]]), np.ones(2), {}, "finite"),
    (np.ones(3, np.float32), np.array([1.0, np.nan, np.inf], np.float32), {}, "finite"),
    (np.array(["a", "b"]), np.ones(2), {}, "real numbers"),
    (GOOD_X, GOOD_Y, {"w0": [1.0, 2.0]}, r"w0 must be a scalar or have shape \(1,\)"),
    (GOOD_X, GOOD_Y, {"w0": np.nan}, "w0 must be finite"),
    (GOOD_X, GOOD_Y, {"lr": 0.0}, "lr must be a positive finite number"),
    (GOOD_X, GOOD_Y, {"lr": float("inf")}, "lr must be a positive finite number"),
])
def test_prepare_rejects(x, y, kwargs, match):
    kernel = gdbench.make_kernel("numpy-manual")
    with pytest.raises(ValueError, match=match):
        kernel.prepare(x, y, **kwargs)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int32", "bool"])
def test_all_finite_finds_every_nan_and_inf(dtype):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((257, 3)).astype(dtype)
    assert all_finite(a)
    if a.dtype.kind == "f":
        for bad in (np.nan, np.inf, -np.inf):
            for _ in range(5):
                b = a.copy()
                b[rng.integers(257), rng.integers(3)] = bad
                assert not all_finite(b) and not np.isfinite(b).all()


@pytest.mark.parametrize("args,message", [
    (["train", "--kernel", "nope"], "unknown kernel 'nope'"),
    (["train", "--device", "cuda", "--kernel", "numpy-manual"], "does not run on 'cuda'"),
    (["train", "--device", "gpu"], "unknown device 'gpu'"),
    (["train", "--dtype", "int8"], "does not support dtype 'int8'"),
    (["train", "--iters", "ten"], "invalid int value"),
    (["train", "--lr", "-1"], "lr must be a positive finite number"),
    (["train", "--print-every", "0"], "--print-every must be at least 1"),
    (["bogus"], "invalid choice"),
    (["probe", "--device", "tpu"], "unknown device 'tpu'"),
    (["plot", "missing.json", "-o", "plots"], "missing.json: no such file"),
    (["report", "missing.json", "-o", "r.md"], "missing.json: no such file"),
    (["compare", "a.json", "b.json", "--noise", "lots"], "noise 'lots' is not a number"),
    (["noise", "--runs", "1"], "--runs must be at least 2"),
])
def test_cli_one_line_error(args, message, gdbench_cli, tmp_path):
    result = gdbench_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_probe_cuda_without_cuda_is_one_line(gdbench_cli):
    from gdbench.core.devices import resolve_device

    if resolve_device("auto") == "cuda":
        pytest.skip("a CUDA device is present here")
    result = gdbench_cli("probe", "--device", "cuda")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("gdbench probe: error: cannot probe cuda: ")
    assert len(result.stderr.strip().splitlines()) == 1
