"""Every kernel against the float64 NumPy reference, on random problems."""

import os

import numpy as np
import pytest

import gdbench
from gdbench.core.dtypes import HALF, host_dtype
from gdbench.core.reference import descend, loss_and_grad, tolerance
from tests.conftest import kernels_on

CPU_KERNELS = kernels_on("cpu")
# Odd sample counts: the fused kernels' blocks never divide them, so their masked tails run.
# The shapes every kernel is checked at. The other tests of kernels on the CPU use these shapes
# (test_many_steps at K = 1, test_memory, test_train): torch-compile, which compiles a step for
# each shape (a C++ build of a second or two without a warm cache), then compiles each once.
SHAPES = [(1, 1), (4, 1), (1001, 1), (30_001, 3), (70_001, 1), (20_001, 8)]


def random_problem(n, d, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(dtype)
    y = (x @ rng.uniform(-3, 3, d) + rng.standard_normal(n)).astype(dtype)
    w0 = rng.uniform(-1, 1, d)
    return (x[:, 0] if d == 1 and seed % 2 else x), y, w0


def assert_agrees(kernel, x, y, w0, lr, steps):
    x2 = np.asarray(x, np.float64).reshape(len(y), -1)
    rtol = tolerance(kernel.dtype, len(y))
    kernel.prepare(x, y, w0=w0, lr=lr)
    kernel.step()
    kernel.synchronize()
    loss, grad, scale = loss_and_grad(x2, y, w0)
    assert kernel.loss == pytest.approx(loss, rel=rtol)
    np.testing.assert_allclose(kernel.grad, grad, rtol=0, atol=rtol * np.max(np.abs(grad) + scale))
    for _ in range(steps - 1):
        kernel.step()
    expected = descend(x2, y, w0, lr, steps)
    # Each step contracts the error of the ones before (lr is well under 1 / curvature), so the
    # weights stray by no more than one step's rounding times a small factor.
    np.testing.assert_allclose(kernel.weight, expected, rtol=10 * rtol, atol=10 * rtol)
    assert kernel.weight.dtype == np.dtype(kernel.dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("name", CPU_KERNELS)
def test_matches_float64_reference(name, n, d, dtype):
    x, y, w0 = random_problem(n, d, dtype, seed=n + d)
    kernel = gdbench.make_kernel(name, "cpu", dtype)
    # Triton's interpreter takes 10-80 ms a launch here: 10 steps check the same launch
    steps = 10 if kernel.backend == "triton" else 100
    assert_agrees(kernel, x, y, w0, lr=0.01, steps=steps)


# Every kernel that runs in half precision here, in each half format it supports.
HALF_CASES = [(k.name, dtype) for k in gdbench.list_kernels("cpu") if k.available_on("cpu")
              for dtype in HALF if dtype in k.dtypes]


@pytest.mark.parametrize("n,d", [(4, 1), (1001, 3), (100_003, 1), (20_001, 8)])
@pytest.mark.parametrize("name,dtype", HALF_CASES)
def test_half_precision_matches_float64_reference(name, dtype, n, d):
    """Data rounded from float32 to 16 bits, sums in float32, judged by the float64 reference of
    the float32 data. At 100_003 samples the gradient's sums pass float16's largest number,
    65504: a kernel that kept them in float16 would return inf."""
    x, y, w0 = random_problem(n, d, "float32", seed=n + d)
    kernel = gdbench.make_kernel(name, "cpu", dtype)
    assert gdbench.check_step(kernel, x, y, w0=w0, lr=0.01) is None
    # NumPy has no bfloat16: its read-backs come as float32, which holds bfloat16 exactly
    # (the low 16 bits of each float32 are zero).
    w = kernel.weight
    assert w.dtype == np.dtype(host_dtype(dtype))
    if dtype == "bfloat16":
        assert np.all(w.view(np.uint32) & 0xFFFF == 0)


def test_half_precision_tolerance_catches_sums_kept_in_16_bits():
    """A bfloat16 kernel that adds its gradient up in bfloat16 (each partial sum rounded to 8
    bits) is told apart from one that sums in float32: the tolerance is tight enough."""
    import torch

    class Bfloat16Sums(type(gdbench.make_kernel("torch-manual", "cpu", "bfloat16"))):
        def backward(self):
            total = torch.zeros((), dtype=torch.bfloat16)
            for term in (self.r * self.x).tolist():
                total = (total + term).to(torch.bfloat16)
            self._grad = total * (2.0 / self.n_samples)

    x, y = gdbench.make_problem(10_000, 1, "float32")
    assert gdbench.check_step(gdbench.make_kernel("torch-manual", "cpu", "bfloat16"), x, y) is None
    problems = gdbench.check_step(Bfloat16Sums("cpu", "bfloat16"), x, y)
    assert problems and "gradient" in problems


def test_tolerance_grows_with_the_unit_roundoff_of_storage_and_sums():
    n = 10**6
    assert tolerance("float32", n) == pytest.approx(8 * 2.0**-24 * (1000 + 4))
    # Half precision: float32 sums plus three roundings to 16 bits in each term.
    assert tolerance("bfloat16", n) == pytest.approx(
        8 * (2.0**-24 * (1000 + 4) + 3 * (2.0**-8 - 2.0**-24)))
    assert tolerance("float64", n) < tolerance("float32", n) < tolerance("float16", n) \
        < tolerance("bfloat16", n)


@pytest.mark.parametrize("name", CPU_KERNELS)
def test_check_step_catches_a_wrong_gradient(name):
    kernel = gdbench.make_kernel(name, "cpu", "float64")
    x, y = gdbench.make_problem(30_001, 3, "float64")
    assert gdbench.check_step(kernel, x, y) is None
    assert gdbench.check_step(kernel, x, y + 1.0) is None
    problems = gdbench.check_step(_Doubled(gdbench.make_kernel(name, "cpu", "float64")), x, y)
    assert problems and "gradient" in problems


class _Doubled:
    """A kernel whose reported gradient is twice the true one."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, attr):
        return getattr(self.inner, attr)

    @property
    def grad(self):
        return 2 * self.inner.grad


@pytest.mark.parametrize("name", CPU_KERNELS)
def test_metadata(name):
    kernel = gdbench.make_kernel(name, "cpu", "float64")
    with pytest.raises(AttributeError, match=r"call prepare\(\) first"):
        kernel.loss
    kernel.prepare([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0])  # the tutorial's data
    kernel.step()
    assert isinstance(kernel, gdbench.Kernel)
    assert (kernel.name, kernel.device, kernel.dtype) == (name, "cpu", "float64")
    assert kernel.backend in {"numpy", "torch", "numba", "triton", "cupy", "jax"}
    assert kernel.phases in (gdbench.PHASES, gdbench.FUSED)
    assert kernel.passes >= 1


def sparse_problem(n, d, tail=2000, seed=0):
    """x (N, D) and y of zeros but for their last ``tail`` rows, and the float64 reference step.

    The zeros are pages the OS has never handed out (np.zeros maps them lazily), so N * D can
    pass 2**31 elements, where 32-bit offsets would wrap, with little memory actually used; the
    only rows that count lie beyond that offset.
    """
    rng = np.random.default_rng(seed)
    x, y = np.zeros((n, d), np.float32), np.zeros(n, np.float32)
    x[-tail:] = rng.standard_normal((tail, d), dtype=np.float32)
    y[-tail:] = rng.standard_normal(tail, dtype=np.float32)
    w0 = rng.uniform(-1, 1, d)
    r = x[-tail:].astype(np.float64) @ w0 - y[-tail:]
    grad = 2 * (r @ x[-tail:].astype(np.float64)) / n
    scale = 2 * (np.abs(r) @ np.abs(x[-tail:].astype(np.float64))) / n
    return x, y, w0, (r @ r) / n, grad, scale


def assert_large_offsets(kernel):
    d = 8
    x, y, w0, loss, grad, scale = sparse_problem((1 << 31) // d + 3001, d)
    kernel.prepare(x, y, w0=w0, lr=0.01)
    kernel.step()
    kernel.synchronize()
    rtol = tolerance("float32", 2000)  # only the last rows' terms are not zero
    assert kernel.loss == pytest.approx(loss, rel=rtol)
    np.testing.assert_allclose(kernel.grad, grad, rtol=0, atol=rtol * np.max(np.abs(grad) + scale))


@pytest.mark.skipif("triton-fused" not in CPU_KERNELS, reason="triton is not installed")
@pytest.mark.skipif(os.environ.get("GDBENCH_LARGE_TESTS") != "1",
                    reason="2**31 elements in Triton's interpreter take 150-270 s: run with "
                           "GDBENCH_LARGE_TESTS=1; the compiled kernel's 64-bit row offsets "
                           "are checked by tests/test_cuda_sources.py")
def test_triton_fused_offsets_past_2_to_the_31():
    """N * D >= 2**31 elements: row offsets computed in 32 bits would read the wrong rows."""
    assert_large_offsets(gdbench.make_kernel("triton-fused", "cpu"))


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["triton-fused", "cupy-fused"])
def test_cuda_offsets_past_2_to_the_31(name):
    if name not in kernels_on("cuda"):
        pytest.skip(f"{name} is unavailable on cuda here")
    assert_large_offsets(gdbench.make_kernel(name, "cuda"))


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n,d", [(4, 1), (100_003, 1), (20_001, 8), (1_000_003, 3)])
@pytest.mark.parametrize("name", kernels_on("cuda") or ["cupy-manual", "torch-manual"])
def test_cuda_matches_float64_reference(name, n, d, dtype):
    kernel = gdbench.make_kernel(name, "cuda", dtype)
    if d > (getattr(kernel, "max_features", None) or d):
        pytest.skip(f"{name} supports at most {kernel.max_features} feature(s)")
    x, y, w0 = random_problem(n, d, dtype, seed=n + d)
    assert_agrees(kernel, x, y, w0, lr=0.01, steps=100)


@pytest.mark.parametrize("name", CPU_KERNELS)
def test_calls_out_of_order_say_which_call_is_missing(name):
    """One rule for every kernel: OrderError naming the call that has to come first."""
    from gdbench.core.protocol import OrderError

    kernel = gdbench.make_kernel(name, "cpu", "float64")
    fused = kernel.phases == gdbench.FUSED
    for call in ("step",) if fused else ("forward", "backward", "update", "step"):
        with pytest.raises(OrderError, match=r"call prepare\(\) first"):
            getattr(kernel, call)()
    for read in ("weight", "loss", "grad"):
        with pytest.raises(OrderError, match=r"call prepare\(\) first"):
            getattr(kernel, read)
    kernel.prepare(*gdbench.make_problem(30_001, 3, "float64"))
    assert kernel.weight.shape == (3,)
    for read in ("loss", "grad"):
        with pytest.raises(OrderError, match=r"call (forward\(\) or )?step\(\)|call backward"):
            getattr(kernel, read)
    if fused:
        with pytest.raises(TypeError, match="fused"):
            kernel.forward()
    else:
        with pytest.raises(OrderError, match=r"call forward\(\)"):
            kernel.backward()
        with pytest.raises(OrderError, match=r"call backward\(\)"):
            kernel.update()
        kernel.forward()
        kernel.loss  # noqa: B018  the forward made it
        with pytest.raises(OrderError, match=r"call backward\(\)"):
            kernel.update()
    kernel.step()
    assert np.isfinite(kernel.loss) and kernel.grad.shape == (3,)
    kernel.prepare(*gdbench.make_problem(30_001, 3, "float64"))  # a new one: nothing stale
    with pytest.raises(OrderError):
        kernel.loss  # noqa: B018


@pytest.mark.skipif("jax-jit" not in CPU_KERNELS, reason="jax is not installed")
def test_jax_jit_float64_and_donation_stay_inside_the_kernel():
    import jax.numpy as jnp

    kernel = gdbench.make_kernel("jax-jit", "cpu", "float64")
    kernel.prepare(*gdbench.make_problem(100, 2, "float64"))
    kernel.step()
    before = kernel.w
    kernel.step()
    assert before.is_deleted()  # donated: the new weights took the old ones' buffer
    assert kernel.weight.dtype == kernel.grad.dtype == np.float64
    assert jnp.asarray(np.ones(2)).dtype == jnp.float32  # JAX's own default is untouched


@pytest.mark.skipif("jax-jit" not in kernels_on("cpu"), reason="jax is not installed")
def test_jax_jit_byte_model_is_the_compiled_plan():
    """The arrays of N that XLA's compiled step makes: as many as the byte model writes."""
    import re

    import jax.numpy as jnp

    from gdbench.kernels.jax_jit import JaxJit, compiled_step

    n = 12_345
    x, y = jnp.ones(n, jnp.float32), jnp.ones(n, jnp.float32)
    plan = compiled_step().lower(jnp.zeros(1, jnp.float32), x, y, jnp.float32(0.01))
    entry = plan.compile().as_text().split("ENTRY")[1]
    made = re.findall(rf"= f32\[{n}\]\S* (?!parameter)", entry)
    assert len(made) == JaxJit.writes
