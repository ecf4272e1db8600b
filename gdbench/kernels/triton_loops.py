"""Triton kernels of triton-fused: the whole gradient-descent step in one launch.

Imported only by the kernel that uses them, never by ``import gdbench``; the kernel's module
says what they compute.
"""

import triton
import triton.language as tl


@triton.jit
def apply_totals(acc_ptr, count_ptr, out_ptr, w_ptr, lr_ptr, cols, col_ok, n):
    """The last program of a step: the loss, gradient and update from the totals."""
    lr = tl.load(lr_ptr)
    zero = lr * 0
    # Read the totals through the atomic unit, where the other programs' adds landed,
    # then clear them and the count for the next step: nobody else touches them now.
    loss = tl.atomic_add(acc_ptr, zero) / n
    grad = 2.0 * tl.atomic_add(acc_ptr + 1 + cols, zero, mask=col_ok) / n
    tl.store(acc_ptr, zero)
    tl.store(acc_ptr + 1 + cols, zero, mask=col_ok)
    tl.store(count_ptr, 0)
    w = tl.load(w_ptr + cols, mask=col_ok, other=0.0).to(lr.dtype)
    tl.store(w_ptr + cols, (w - lr * grad).to(w_ptr.dtype.element_ty), mask=col_ok)
    tl.store(out_ptr, loss)
    tl.store(out_ptr + 1 + cols, grad, mask=col_ok)


@triton.jit
def finish(acc_ptr, count_ptr, out_ptr, w_ptr, lr_ptr, cols, col_ok, n):
    """Count this program done; the last program to arrive applies the step.

    acq_rel (the default) on the count: the sums every program added before counting itself
    are visible to the program that sees the count reach the grid size.
    """
    if tl.atomic_add(count_ptr, 1) == tl.num_programs(0) - 1:
        apply_totals(acc_ptr, count_ptr, out_ptr, w_ptr, lr_ptr, cols, col_ok, n)


@triton.jit
def apply_sums(acc_ptr, out_ptr, w_ptr, lr_ptr, n, D: tl.constexpr, D_PAD: tl.constexpr):
    """One program: the loss, gradient and update from sums of all ranks' samples, as
    ``finish`` does for one; clears the sums for the next step."""
    cols = tl.arange(0, D_PAD)
    col_ok = cols < D
    lr = tl.load(lr_ptr)
    zero = lr * 0
    loss = tl.load(acc_ptr) / n
    grad = 2.0 * tl.load(acc_ptr + 1 + cols, mask=col_ok, other=0.0) / n
    tl.store(acc_ptr, zero)
    tl.store(acc_ptr + 1 + cols, zero, mask=col_ok)
    w = tl.load(w_ptr + cols, mask=col_ok, other=0.0).to(lr.dtype)
    tl.store(w_ptr + cols, (w - lr * grad).to(w_ptr.dtype.element_ty), mask=col_ok)
    tl.store(out_ptr, loss)
    tl.store(out_ptr + 1 + cols, grad, mask=col_ok)


@triton.jit(do_not_specialize=["n"])
def fused_step_1d(x_ptr, y_ptr, w_ptr, acc_ptr, count_ptr, out_ptr, lr_ptr, n,
                  BLOCK: tl.constexpr, FINISH: tl.constexpr = True):
    acc_t = acc_ptr.dtype.element_ty  # float32 for 16-bit data: every load is widened to it
    w = tl.load(w_ptr).to(acc_t)
    sq = tl.zeros([BLOCK], dtype=acc_t)
    g = tl.zeros([BLOCK], dtype=acc_t)
    whole = n // BLOCK
    for block in range(tl.program_id(0), whole, tl.num_programs(0)):
        rows = tl.cast(block, tl.int64) * BLOCK + tl.arange(0, BLOCK)
        x = tl.load(x_ptr + rows).to(acc_t)
        r = x * w - tl.load(y_ptr + rows).to(acc_t)
        sq += r * r
        g += r * x
    if tl.program_id(0) == tl.num_programs(0) - 1:  # the rows after the last whole block
        rows = tl.cast(whole, tl.int64) * BLOCK + tl.arange(0, BLOCK)
        row_ok = rows < n
        x = tl.load(x_ptr + rows, mask=row_ok, other=0.0).to(acc_t)
        r = x * w - tl.load(y_ptr + rows, mask=row_ok, other=0.0).to(acc_t)
        sq += r * r
        g += r * x
    # Scalar atomics run once per program, whatever the layout of the tensors they came from.
    tl.atomic_add(acc_ptr, tl.sum(sq, axis=0))
    tl.atomic_add(acc_ptr + 1, tl.sum(g, axis=0))
    if FINISH:  # else a data-parallel step: the ranks add up acc before apply_sums
        cols = tl.arange(0, 2)
        finish(acc_ptr, count_ptr, out_ptr, w_ptr, lr_ptr, cols, cols < 1, n)


@triton.jit(do_not_specialize=["n"])
def fused_step_nd(x_ptr, y_ptr, w_ptr, acc_ptr, count_ptr, out_ptr, lr_ptr, n,
                  D: tl.constexpr, D_PAD: tl.constexpr, BLOCK: tl.constexpr,
                  FINISH: tl.constexpr = True):
    cols = tl.arange(0, D_PAD)
    col_ok = cols < D
    acc_t = acc_ptr.dtype.element_ty
    w = tl.load(w_ptr + cols, mask=col_ok, other=0.0).to(acc_t)
    sq = tl.zeros([BLOCK], dtype=acc_t)
    g = tl.zeros([BLOCK, D_PAD], dtype=acc_t)
    whole = n // BLOCK
    for block in range(tl.program_id(0), whole, tl.num_programs(0)):
        rows = tl.cast(block, tl.int64) * BLOCK + tl.arange(0, BLOCK)
        if D == D_PAD:  # resolved at compile time: no mask, so 16-byte loads
            x = tl.load(x_ptr + rows[:, None] * D + cols[None, :]).to(acc_t)
        else:
            x = tl.load(x_ptr + rows[:, None] * D + cols[None, :], mask=col_ok[None, :],
                        other=0.0).to(acc_t)
        r = tl.sum(x * w[None, :], axis=1) - tl.load(y_ptr + rows).to(acc_t)
        sq += r * r
        g += r[:, None] * x
    if tl.program_id(0) == tl.num_programs(0) - 1:
        rows = tl.cast(whole, tl.int64) * BLOCK + tl.arange(0, BLOCK)
        row_ok = rows < n
        x = tl.load(x_ptr + rows[:, None] * D + cols[None, :],
                    mask=row_ok[:, None] & col_ok[None, :], other=0.0).to(acc_t)
        r = (tl.sum(x * w[None, :], axis=1)
             - tl.load(y_ptr + rows, mask=row_ok, other=0.0).to(acc_t))
        sq += r * r
        g += r[:, None] * x
    tl.atomic_add(acc_ptr, tl.sum(sq, axis=0))
    g = tl.sum(g, axis=0)
    for j in tl.static_range(D):
        tl.atomic_add(acc_ptr + 1 + j, tl.sum(tl.where(cols == j, g, 0.0), axis=0))
    if FINISH:
        finish(acc_ptr, count_ptr, out_ptr, w_ptr, lr_ptr, cols, col_ok, n)


@triton.jit
def read_repeatedly(a_ptr, out_ptr, n, reps, BLOCK: tl.constexpr):
    """Sum an array of ``n`` elements (a multiple of BLOCK) ``reps`` times: the probe's L2 read.

    Loads bypass L1 (``.cg``), so that an array smaller than L2 is streamed from L2 every time.
    """
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    blocks = n // BLOCK
    for _ in range(reps):
        for block in range(tl.program_id(0), blocks, tl.num_programs(0)):
            rows = tl.cast(block, tl.int64) * BLOCK + tl.arange(0, BLOCK)
            acc += tl.load(a_ptr + rows, cache_modifier=".cg")
    tl.store(out_ptr + tl.program_id(0), tl.sum(acc, axis=0))


@triton.jit
def step_barrier(acc_ptr, count_ptr, gen_ptr, out_ptr, w_ptr, lr_ptr, cols, col_ok, n, target):
    """The end of one step of a persistent kernel: the last program to arrive applies it (as
    in ``finish``) and opens the barrier by raising the generation; the others wait for that.

    Every program of the grid must be resident at once (at most one per multiprocessor), so the
    ones waiting never keep the last one from running.
    """
    if tl.atomic_add(count_ptr, 1) == tl.num_programs(0) - 1:
        apply_totals(acc_ptr, count_ptr, out_ptr, w_ptr, lr_ptr, cols, col_ok, n)
        tl.atomic_add(gen_ptr, 1)  # acq_rel: w, the sums and the count are written first
    else:
        while tl.atomic_add(gen_ptr, 0) < target:
            pass


@triton.jit(do_not_specialize=["n", "k"])
def fused_steps_1d(x_ptr, y_ptr, w_ptr, acc_ptr, count_ptr, gen_ptr, out_ptr, lr_ptr, n, k,
                   BLOCK: tl.constexpr):
    """``k`` steps in one launch, a grid-wide barrier after each. Each program's rows are one
    block, read once into registers before the first step and kept there for all k."""
    acc_t = acc_ptr.dtype.element_ty
    cols = tl.arange(0, 2)
    # The generation before this launch: it cannot move before every program has arrived.
    start = tl.atomic_add(gen_ptr, 0)
    rows = tl.cast(tl.program_id(0), tl.int64) * BLOCK + tl.arange(0, BLOCK)
    row_ok = rows < n
    x = tl.load(x_ptr + rows, mask=row_ok, other=0.0).to(acc_t)
    y = tl.load(y_ptr + rows, mask=row_ok, other=0.0).to(acc_t)
    for t in range(k):
        # volatile: the weight the last program wrote, not a copy cached before the barrier
        w = tl.load(w_ptr, volatile=True).to(acc_t)
        r = x * w - y  # rows past n are 0 - 0: they add nothing
        tl.atomic_add(acc_ptr, tl.sum(r * r, axis=0))
        tl.atomic_add(acc_ptr + 1, tl.sum(r * x, axis=0))
        step_barrier(acc_ptr, count_ptr, gen_ptr, out_ptr, w_ptr, lr_ptr, cols, cols < 1, n,
                     start + t + 1)
