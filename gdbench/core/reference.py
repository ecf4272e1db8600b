"""The judge: float64 NumPy reference of the step, random problems, and agreement tolerances."""

from __future__ import annotations

import math

import numpy as np

from gdbench.core.dtypes import UNIT_ROUNDOFF, accumulator, host_dtype

CHUNK_ROWS = 1 << 20  # the reference works in float64 chunks so that 10^8 samples fit in memory


def make_problem(n_samples: int, n_features: int = 1, dtype="float32", seed: int = 0):
    """Random well-conditioned problem: ``x`` (N, D) standard normal, ``y = x @ w_true + noise``.

    ``bfloat16`` data are made in float32, which carries them on the host.
    """
    rng = np.random.default_rng(seed)
    dtype = np.dtype(host_dtype(dtype) if isinstance(dtype, str) else dtype)
    x = rng.standard_normal((n_samples, n_features), dtype=dtype)
    w_true = rng.uniform(1.0, 3.0, n_features).astype(dtype)
    y = x @ w_true
    y += 0.1 * rng.standard_normal(n_samples, dtype=dtype)
    return x, y


def loss_and_grad(x: np.ndarray, y: np.ndarray, w) -> tuple[float, np.ndarray, np.ndarray]:
    """Loss, gradient and the gradient's condition scale ``2/N * sum |x| |r|``, all in float64.

    The scale bounds how far a correctly rounded gradient may stray: summing N terms in a
    lower precision loses up to about ``u * sqrt(N)`` of the sum of their magnitudes.
    """
    x = np.asarray(x).reshape(len(y), -1)
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    n = len(y)
    sq = 0.0
    grad = np.zeros(x.shape[1])
    scale = np.zeros(x.shape[1])
    for start in range(0, n, CHUNK_ROWS):
        xc = x[start:start + CHUNK_ROWS].astype(np.float64)
        r = xc @ w - y[start:start + CHUNK_ROWS].astype(np.float64)
        sq += float(r @ r)
        grad += r @ xc
        scale += np.abs(r) @ np.abs(xc)
    return sq / n, 2.0 * grad / n, 2.0 * scale / n


def normal_equations(x, y) -> tuple[np.ndarray, np.ndarray]:
    """``xᵀx`` and ``xᵀy``, summed in float64 chunks."""
    x = np.asarray(x).reshape(len(y), -1)
    n, d = x.shape
    gram, xty = np.zeros((d, d)), np.zeros(d)
    for start in range(0, n, CHUNK_ROWS):
        xc = x[start:start + CHUNK_ROWS].astype(np.float64)
        gram += xc.T @ xc
        xty += xc.T @ y[start:start + CHUNK_ROWS].astype(np.float64)
    return gram, xty


def descend(x, y, w0, lr: float, steps: int) -> np.ndarray:
    """Weights after ``steps`` float64 gradient-descent steps from ``w0``.

    The gradient is linear in the weights, ``2 (G w - b)`` with ``G = xᵀx / N`` and
    ``b = xᵀy / N``: those are summed once in float64 chunks, and the steps are then taken on D
    numbers, so a thousand steps cost one pass over the data.
    """
    gram, xty = normal_equations(x, y)
    gram, xty = gram / len(y), xty / len(y)
    w = np.array(np.broadcast_to(np.asarray(w0, dtype=np.float64), (len(xty),)))
    for _ in range(steps):
        w = w - lr * 2.0 * (gram @ w - xty)
    return w


def steps_tolerance(dtype, n_samples: int, steps: int) -> float:
    """Relative tolerance for the weights after ``steps`` steps: one step's (``tolerance``)
    times ``1 + sqrt(steps)``, for roundings that add up like a random walk from step to step
    (10 times one step's after 100 steps)."""
    return tolerance(dtype, n_samples) * (1 + math.sqrt(steps))


def compare_steps(kernel, x, y, w0, lr: float, steps: int) -> str | None:
    """How the weights of a kernel that has run exactly ``steps`` steps since
    ``prepare(x, y, w0, lr)`` disagree with the float64 reference of as many steps."""
    expected = descend(x, y, w0, lr, steps)
    tol = steps_tolerance(kernel.dtype, len(y), steps)
    got = np.asarray(kernel.weight, dtype=np.float64)
    if np.all(np.abs(got - expected) <= tol * (1 + np.abs(expected))):
        return None
    return (f"weights after {steps} steps {got} != reference {expected} "
            f"(tolerance {tol:.2g})")


def tolerance(dtype, n_samples: int) -> float:
    """Relative tolerance for a step computed in ``dtype`` over ``n_samples`` samples.

    Unit roundoff ``u`` of the format the sums are kept in, times ``sqrt(N)`` for the growth of
    rounding errors in a sum of N terms (they add up like a random walk in pairwise or blocked
    BLAS summation); in half precision, plus three roundings to the storage format in each term
    (x, y and the residual, each stored in 16 bits), which no summation order can undo; all
    times a safety factor of 8 for the few operations each term goes through.
    """
    u_sum = UNIT_ROUNDOFF[accumulator(dtype)]
    u_storage = UNIT_ROUNDOFF[dtype]
    return float(8 * (u_sum * (math.sqrt(n_samples) + 4) + 3 * (u_storage - u_sum)))


def check_step(kernel, x, y, w0=0.0, lr: float = 0.01) -> str | None:
    """Prepare ``kernel`` on (x, y), run one step and say how it disagrees with the reference.

    Returns None when loss, gradient and updated weights all agree within ``tolerance``.
    """
    kernel.prepare(x, y, w0=w0, lr=lr)
    kernel.step()
    kernel.synchronize()
    return compare_step(kernel, x, y, w0, lr)


def compare_step(kernel, x, y, w0=0.0, lr: float = 0.01, reference=None) -> str | None:
    """How a kernel that has run exactly one step since ``prepare(x, y, w0, lr)`` disagrees.

    ``reference`` is ``loss_and_grad(x, y, w0)`` when the caller has it already.
    """
    x2 = np.asarray(x).reshape(len(y), -1)
    w_start = np.broadcast_to(np.asarray(w0, dtype=np.float64), (x2.shape[1],))
    loss, grad, scale = reference or loss_and_grad(x2, y, w_start)
    rtol = tolerance(kernel.dtype, len(y))
    problems = []
    if not math.isfinite(kernel.loss) or abs(kernel.loss - loss) > rtol * loss:
        problems.append(f"loss {kernel.loss:.9g} != reference {loss:.9g}")
    got = kernel.grad
    if not np.all(np.abs(got - grad) <= rtol * (np.abs(grad) + scale)):
        off = np.max(np.abs(got - grad) / (np.abs(grad) + scale))
        problems.append(f"gradient {got} != reference {grad} (off by {off:.2g} of its scale, "
                        f"tolerance {rtol:.2g})")
    expected_w = w_start - lr * grad
    if not np.all(np.abs(kernel.weight - expected_w) <= rtol * (np.abs(expected_w) + lr * scale)):
        problems.append(f"weights {kernel.weight} != reference {expected_w}")
    return "; ".join(problems) or None
