"""Numba loops: the fused step on the CPU, and the probe's streaming reads.

Imported only by the kernels and the probe that use them, never by ``import gdbench``. The sums
run in float64 whatever the data's dtype: converting costs nothing next to reading memory, and
each thread's partial sum stays accurate over millions of terms; ``serial_step_1d``, for data
in cache, sums blocks of 512 terms in the data's dtype first (see there).
"""

import numba
import numpy as np

# Reassociation lets LLVM vectorize the reductions; no assumptions about NaN or inf, so a
# diverging step still shows as a NaN or inf loss.
FAST = {"reassoc", "contract"}


@numba.njit(parallel=True, fastmath=FAST, cache=True)
def fused_step_1d(x, y, w, lr, out):
    """One pass over x (N,) and y: loss and gradient into ``out``, then ``w -= lr * grad``."""
    w0 = w[0]
    sq = 0.0
    g = 0.0
    for i in numba.prange(x.size):
        r = x[i] * w0 - y[i]
        sq += r * r
        g += r * x[i]
    out[0] = sq / x.size
    out[1] = 2.0 * g / x.size
    w[0] -= lr * out[1]


@numba.njit(fastmath=FAST, cache=True)
def add_rows(x, y, w, start, stop, acc):
    """The sums of rows ``start`` to ``stop`` of x (N, D) added into ``acc``: r², then r·x."""
    d = x.shape[1]
    for i in range(start, stop):
        r = -y[i]
        for j in range(d):
            r += x[i, j] * w[j]
        acc[0] += r * r
        for j in range(d):
            acc[1 + j] += r * x[i, j]


@numba.njit(parallel=True, fastmath=FAST, cache=True)
def fused_step_2d(x, y, w, lr, out, chunks):
    """The same for x (N, D): ``chunks`` contiguous blocks of rows, summed in parallel, each
    into a row of ``partial`` padded to whole cache lines, so that no two threads write one
    line. Nothing is allocated inside the parallel loop: an array made there (or a sum over an
    axis after it) took numba 12 s to compile in float32, 3 s without, at the same speed."""
    n, d = x.shape
    chunks = min(n, chunks)
    partial = np.zeros((chunks, (d + 8) // 8 * 8))
    for c in numba.prange(chunks):
        add_rows(x, y, w, c * n // chunks, (c + 1) * n // chunks, partial[c])
    for j in range(d + 1):
        total = 0.0
        for c in range(chunks):
            total += partial[c, j]
        out[j] = total / n if j == 0 else 2.0 * total / n
    for j in range(d):
        w[j] -= lr * out[1 + j]


@numba.njit(fastmath=FAST, cache=True)
def repeated_sum(a, reps):
    """``reps`` sums of ``a`` in one thread, in its dtype; each starts from the last one's
    result, so that no pass can be left out."""
    total = a[0] * 0
    for _ in range(reps):
        s = total
        for i in range(a.size):
            s += a[i]
        total = s
    return total


@numba.njit(parallel=True, fastmath=FAST, cache=True)
def repeated_parallel_sum(a, reps):
    """``reps`` parallel sums of ``a``, one after the other: the probe's multi-thread read."""
    total = a[0] * 0
    for _ in range(reps):
        s = a[0] * 0
        for i in numba.prange(a.size):
            s += a[i]
        total += s
    return total


@numba.njit(parallel=True, fastmath=FAST, cache=True)
def repeated_parallel_pair_sum(x, y, reps):
    """``reps`` parallel passes over two arrays at once, as the step reads x and y: the
    probe's read with the step's own access pattern (two streams, the same threads)."""
    total = 0.0
    for _ in range(reps):
        s = 0.0
        for i in numba.prange(x.size):
            s += x[i] * total - y[i]
        total += s * 1e-30
    return total


SERIAL_BLOCK = 512  # terms each summed in the data's dtype before they join the float64 sums


@numba.njit(fastmath=FAST, cache=True)
def serial_step_1d(x, y, w, lr, out):
    """``fused_step_1d`` in this thread, for small N where starting the thread pool costs
    more than the pass: the terms of each block of SERIAL_BLOCK are summed in the data's dtype,
    where LLVM vectorizes the sums twice as wide as in float64 (2.6 times faster at 10³ on
    the 2-core VM), and the block sums in float64; each lane then adds up a few dozen terms, so
    the sums lose no more than the format's rounding of those."""
    w0 = w[0]
    sq = 0.0
    g = 0.0
    n = x.size
    for start in range(0, n, SERIAL_BLOCK):
        block_sq = x[start] - x[start]  # zero in the data's dtype
        block_g = block_sq
        for i in range(start, min(start + SERIAL_BLOCK, n)):
            r = x[i] * w0 - y[i]
            block_sq += r * r
            block_g += r * x[i]
        sq += block_sq
        g += block_g
    out[0] = sq / n
    out[1] = 2.0 * g / n
    w[0] -= lr * out[1]


@numba.njit(fastmath=FAST, cache=True)
def serial_step_2d(x, y, w, lr, out):
    """``fused_step_2d`` in this thread, rows in order."""
    n, d = x.shape
    acc = np.zeros(d + 1)
    add_rows(x, y, w, 0, n, acc)
    out[0] = acc[0] / n
    for j in range(d):
        out[1 + j] = 2.0 * acc[1 + j] / n
        w[j] -= lr * out[1 + j]


@numba.njit(fastmath=FAST, cache=True)
def fused_steps_1d(x, y, w, lr, out, k, parallel):
    """``k`` steps of ``fused_step_1d`` in one call, in parallel or in this thread."""
    for _ in range(k):
        if parallel:
            fused_step_1d(x, y, w, lr, out)
        else:
            serial_step_1d(x, y, w, lr, out)


@numba.njit(fastmath=FAST, cache=True)
def fused_steps_2d(x, y, w, lr, out, chunks, k, parallel):
    """``k`` steps of ``fused_step_2d`` in one call, in parallel or in this thread."""
    for _ in range(k):
        if parallel:
            fused_step_2d(x, y, w, lr, out, chunks)
        else:
            serial_step_2d(x, y, w, lr, out)
