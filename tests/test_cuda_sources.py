"""The GPU kernels compiled for a Hopper GPU (sm_90) without one: what the GPU will run.

Triton compiles ahead of time for a target it is told of, and NVRTC (the nvidia-cuda-nvrtc
wheel of the test extra) compiles CUDA C++ without a device, so the CPU can check that the
fused kernels build, that Triton's main loop loads 16 bytes at a time, that its row offsets
are 64-bit, and that nothing spills to local memory.
"""

import ctypes
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugins import REPO

AOT = r"""
import json, re, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from gdbench.kernels import triton_loops

def compiled(fn, dtype, constexprs, n_type="i64"):
    names = ["x_ptr", "y_ptr", "w_ptr", "acc_ptr", "count_ptr", "out_ptr", "lr_ptr"]
    signature = {k: ("*i32" if k == "count_ptr" else f"*{dtype}") for k in names}
    signature["n"] = n_type
    signature.update({k: "constexpr" for k in constexprs})
    # torch's allocations are 16-byte aligned, and Triton specializes on that at run time
    aligned = {(i,): [["tt.divisibility", 16]] for i in range(len(names))}
    source = ASTSource(fn=fn, signature=signature, constexprs=constexprs, attrs=aligned)
    return triton.compile(source, target=GPUTarget("cuda", 90, 32),
                          options={"num_warps": 8}).asm

out = {}
for name, fn, dtype, constexprs in [
        ("1d-fp32", triton_loops.fused_step_1d, "fp32", {"BLOCK": 4096, "FINISH": True}),
        ("1d-fp64", triton_loops.fused_step_1d, "fp64", {"BLOCK": 4096, "FINISH": True}),
        ("1d-sums", triton_loops.fused_step_1d, "fp32", {"BLOCK": 4096, "FINISH": False}),
        ("nd8-fp32", triton_loops.fused_step_nd, "fp32",
         {"D": 8, "D_PAD": 8, "BLOCK": 512, "FINISH": True}),
        ("nd3-fp32", triton_loops.fused_step_nd, "fp32",
         {"D": 3, "D_PAD": 4, "BLOCK": 1024, "FINISH": True})]:
    # Triton types n as i32 when it fits: with D features, rows * D passes 2**31 while n does not
    asm = compiled(fn, dtype, constexprs, "i32" if name.startswith("nd") else "i64")
    text = asm["ptx"]
    block = constexprs["BLOCK"]
    # the width of every row offset added to x's and y's pointers: tensors of BLOCK rows
    rows = re.findall(rf"tt.addptr .* : tensor<{block}(?:x1)?x!tt.ptr<\w+>>, "
                      rf"tensor<{block}(?:x1)?xi(\d+)>", asm["ttir"])
    out[name] = {"v4": len(re.findall(r"ld\.global[\w.]*\.v4", text)),
                 "v2": len(re.findall(r"ld\.global[\w.]*\.v2", text)),
                 "local": len(re.findall(r"\.local", text)),
                 "row_offset_bits": sorted(set(map(int, rows))), "row_offsets": len(rows)}
def fence_then_barrier(ptx):  # an acquire fence, then a CTA barrier before the next load
    at = ptx.find("fence.acq_rel.gpu")
    if at < 0:
        return False
    after = ptx[at:]
    barrier, load = after.find("bar.sync"), after.find("ld.volatile.global")
    return 0 <= barrier < load

# run_steps' persistent kernel with the signature it runs with: x and y held in registers for
# all k steps, the partials in float64, a count of arrivals, a status; the resource usage of the
# cubin Triton built (its ptxas's), which shows the spills the PTX does not
import pathlib, subprocess, tempfile
cuobjdump = pathlib.Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
names = ["x_ptr", "y_ptr", "w_ptr", "partials_ptr", "count_ptr", "status_ptr", "out_ptr",
         "lr_ptr"]
for dtype, acc, block in [("fp32", "fp32", 8192), ("fp64", "fp64", 8192), ("fp32", "fp32", 1024),
                          ("bf16", "fp32", 8192)]:
    types = {"partials_ptr": "*fp64", "count_ptr": "*i64", "status_ptr": "*i32",
             "out_ptr": f"*{acc}", "lr_ptr": f"*{acc}"}
    signature = {k: types.get(k, f"*{dtype}") for k in names}
    signature.update(n="i64", k="i64", base="i64", limit="i64", BLOCK="constexpr",
                     SLOTS="constexpr", FENCE="constexpr")
    source = ASTSource(fn=triton_loops.fused_steps_1d, signature=signature,
                       constexprs={"BLOCK": block, "SLOTS": 256, "FENCE": True},
                       attrs={(i,): [["tt.divisibility", 16]] for i in range(len(names))})
    asm = triton.compile(source, target=GPUTarget("cuda", 90, 32),
                         options={"num_warps": 8}).asm
    text = asm["ptx"]
    with tempfile.NamedTemporaryFile("wb", suffix=".cubin") as f:
        f.write(asm["cubin"])
        f.flush()
        usage = subprocess.run([str(cuobjdump), "--dump-resource-usage", f.name],
                               capture_output=True, text=True).stdout
    found = dict(re.findall(r"\b(REG|STACK|LOCAL):(\d+)", usage))
    out[f"steps-{dtype}-{block}"] = {
        "registers": int(found.get("REG", -1)), "stack": int(found.get("STACK", -1)),
        "local": int(found.get("LOCAL", -1)),
        "volatile": len(re.findall(r"ld\.volatile\.global", text)),
        "release": len(re.findall(r"(?:atom|red)\.[\w.]*release[\w.]*add", text)),
        # after the wait: the acquire fence, then a CTA barrier before the partials' loads
        "fence_then_barrier": fence_then_barrier(text),
        "float_atomics": len(re.findall(r"(?:atom|red)\.[\w.]*add\.f(?:32|64)", text))}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def triton_ptx():
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run([sys.executable, "-c", AOT], capture_output=True, text=True,
                            timeout=300, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_triton_row_offsets_are_64_bit(triton_ptx):
    """Offsets of rows past 2**31 elements stay in bounds: every row offset added to x's and
    y's pointers is 64-bit in the compiled kernel (the main loop and the masked tail). The run
    past 2**31 elements itself: tests/test_kernels.py (on a GPU, and in the interpreter with
    GDBENCH_LARGE_TESTS=1)."""
    for name, found in triton_ptx.items():
        if name.startswith("steps-"):  # rows of one program, at most 2**13 of them
            continue
        assert found["row_offsets"] >= 4, name  # x and y, in the loop and in the tail
        assert found["row_offset_bits"] == [64], name


def test_triton_main_loop_loads_16_bytes(triton_ptx):
    # float32: 16-element vectors per thread are four 16-byte loads of x and four of y
    assert triton_ptx["1d-fp32"]["v4"] >= 8
    assert triton_ptx["1d-fp64"]["v2"] >= 8  # float64: two elements per 16 bytes
    assert triton_ptx["1d-sums"]["v4"] >= 8  # the data-parallel step's sums alike
    assert triton_ptx["nd8-fp32"]["v4"] >= 4  # rows of 8 features, unmasked
    assert all(k["local"] == 0 for name, k in triton_ptx.items() if not name.startswith("steps"))


def nvrtc():
    """NVRTC from the nvidia-cuda-nvrtc wheel, or None."""
    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations if spec else []):
        for lib in sorted(Path(root).glob("*/lib/libnvrtc.so*")):
            if "builtins" not in lib.name:
                return ctypes.CDLL(str(lib))
    return None


def compile_cuda(lib, source: str, name: str) -> str:
    """PTX for sm_90 of the template instance ``name`` in ``source``; AssertionError with the log."""
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"k.cu", 0, None, None) == 0
    assert lib.nvrtcAddNameExpression(prog, name.encode()) == 0
    options = [b"-std=c++17", b"--gpu-architecture=compute_90"]
    status = lib.nvrtcCompileProgram(prog, len(options), (ctypes.c_char_p * 2)(*options))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    assert status == 0, log.value.decode()
    lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
    ptx = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetPTX(prog, ptx)
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return ptx.value.decode()


@pytest.mark.parametrize("ctype", ["float", "double"])
@pytest.mark.parametrize("d", [1, 3, 16])
def test_cupy_fused_source_compiles(ctype, d):
    lib = nvrtc()
    if lib is None:
        pytest.skip("NVRTC is not installed (pip install nvidia-cuda-nvrtc)")
    from gdbench.kernels.cupy_fused import MAX_FEATURES
    from gdbench.kernels.cupy_loops import SOURCE

    assert d <= MAX_FEATURES
    ptx = compile_cuda(lib, SOURCE, f"fused_step<{ctype}, {d}>")
    assert "atom.global.add.f64" in ptx  # the float64 accumulator
    assert "atom.global.add.u32" in ptx  # the count of finished blocks
    log = ptxas_log(lib, SOURCE, f"fused_step<{ctype}, {d}>")
    assert not re.search(r"[1-9]\d* bytes spill", log), log  # the sums stay in registers


def test_triton_persistent_steps_as_they_run(triton_ptx):
    """fused_steps_1d for sm_90 with the signature it runs with (float32 data, and float64 and
    bfloat16): the arrival a release add, the wait a volatile poll, and a CTA
    barrier behind the wait's acquire fence (what kept warps 1-7 from reading a stale weight
    before Triton 3.9), no float atomics (the partials are summed in a fixed order: deterministic), and
    ptxas, the one Triton runs, reports no spill with 8192 rows a program (32 of x and 32 of
    y a thread)."""
    for name in ("steps-fp32-8192", "steps-fp64-8192", "steps-fp32-1024", "steps-bf16-8192"):
        found = triton_ptx[name]
        assert found["volatile"] >= 1 and found["release"] >= 1, name
        assert found["fence_then_barrier"], name
        assert found["float_atomics"] == 0, name
        assert found["local"] == 0 and found["stack"] == 0, (name, found)  # nothing spilled
        assert 0 < found["registers"] <= 255, (name, found)


def ptxas_log(lib, source: str, name: str) -> str:
    """NVRTC's log of compiling ``name`` to sm_90 machine code with ``ptxas -v``: the
    registers and spills the GPU will see (spills appear only after ptxas, not in PTX)."""
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"k.cu", 0, None, None) == 0
    assert lib.nvrtcAddNameExpression(prog, name.encode()) == 0
    options = [b"-std=c++17", b"--gpu-architecture=sm_90", b"--ptxas-options=-v"]
    status = lib.nvrtcCompileProgram(prog, len(options), (ctypes.c_char_p * 3)(*options))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    assert status == 0, log.value.decode()
    return log.value.decode()


@pytest.mark.parametrize("ctype", ["float", "double"])
@pytest.mark.parametrize("rows", [1, 32])
def test_cupy_persistent_steps_compile(ctype, rows):
    lib = nvrtc()
    if lib is None:
        pytest.skip("NVRTC is not installed (pip install nvidia-cuda-nvrtc)")
    from gdbench.kernels.cupy_loops import ROWS_PER_THREAD, SOURCE

    assert rows in ROWS_PER_THREAD
    name = f"fused_steps<{ctype}, {rows}>"
    ptx = compile_cuda(lib, SOURCE, name)
    assert "atom.global.add.u64" in ptx  # the count of arrivals
    assert "globaltimer" in ptx  # the wait is bounded by the GPU's clock
    assert "nanosleep" in ptx  # the blocks that wait, wait politely
    assert re.search(r"ld\.volatile\.global", ptx)  # the count, past every cache
    assert re.search(r"ld\.global\.cg\.f64", ptx)  # the partials, from L2
    assert not re.search(r"atom\.global\.add\.f64", ptx)  # summed in a fixed order
    log = ptxas_log(lib, SOURCE, name)
    assert "0 bytes spill stores" in log and not re.search(r"[1-9]\d* bytes spill", log), log


def test_persistent_grids_fit_one_block_per_multiprocessor():
    from gdbench.kernels.cupy_fused import MIN_STEPS_ROWS, THREADS, steps_grid

    for n in (1, 1000, 10**4, 10**5, 10**6):
        blocks, rows = steps_grid(n, 132)
        assert blocks <= 132 and blocks * THREADS * rows >= n
        assert blocks == 1 or n / blocks >= MIN_STEPS_ROWS / 2
    assert steps_grid(10**6, 132) == (123, 32)
    assert steps_grid(2 * 10**6, 132) is None  # past the registers: a launch per step
