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
def acquire(after, FENCE: tl.constexpr):
    """``fence.acq_rel.gpu`` where the kernel is compiled for a GPU (``FENCE``), after ``after``;
    nothing in Triton's interpreter, which runs programs one after another."""
    if FENCE:
        tl.inline_asm_elementwise("fence.acq_rel.gpu; mov.u32 $0, $1;", "=r,r", [after],
                                  dtype=tl.int32, is_pure=False, pack=1)


@triton.jit(do_not_specialize=["n", "k", "base", "limit"])
def fused_steps_1d(x_ptr, y_ptr, w_ptr, partials_ptr, count_ptr, status_ptr, out_ptr, lr_ptr,
                   n, k, base, limit, BLOCK: tl.constexpr, SLOTS: tl.constexpr,
                   FENCE: tl.constexpr = True):
    """``k`` steps in one launch, a grid-wide barrier after each. Each program's rows are one
    block, read once into registers before the first step and kept there for all k.

    A step: each program writes its two sums (in float64) to its own slot of
    ``partials[t % 2]``, and counts itself arrived (a release add to a count that only ever
    rises: step t's barrier opens at ``base + P (t + 1)``). Once every program has arrived,
    every program reads all P partials and adds them in the same fixed order (a float64 sum,
    the same in every program and every run: deterministic), and computes the loss, the
    gradient and the new weight itself; no program waits for another to write them. Two slots
    a step: a program can write step t + 1's partial only past step t's barrier, and t + 2's
    only once every program has read step t's. About three round trips to L2 a step: the
    partials' stores, the count's add, and the partials' loads after the wait.

    The wait is bounded: after ``limit`` polls a program sets ``status`` to 1 and waits no more
    (the host raises "persistent barrier timed out"): a grid not resident at once (another
    process holding multiprocessors, MPS) fails, it does not hang. A CTA barrier after the wait
    keeps every thread behind it, on any Triton (before 3.9 nothing else put one there).
    """
    acc_t = x_ptr.dtype.element_ty
    if acc_t != tl.float64:
        acc_t = tl.float32  # 16-bit data are widened once, on the load
    programs = tl.num_programs(0)
    me = tl.program_id(0)
    rows = tl.cast(me, tl.int64) * BLOCK + tl.arange(0, BLOCK)
    row_ok = rows < n
    x = tl.load(x_ptr + rows, mask=row_ok, other=0.0).to(acc_t)
    y = tl.load(y_ptr + rows, mask=row_ok, other=0.0).to(acc_t)
    w = tl.load(w_ptr).to(tl.float64)  # every program keeps the weight, in float64
    lr = tl.load(lr_ptr).to(tl.float64)
    slots = tl.arange(0, SLOTS)
    slot_ok = slots < programs
    loss = w * 0.0
    grad = w * 0.0
    failed = limit * 0  # 1 once a wait has passed its limit: no more waiting in this launch
    for t in range(k):
        r = x * w.to(acc_t) - y  # rows past n are 0 - 0: they add nothing
        half = partials_ptr + (t % 2) * 2 * SLOTS
        tl.store(half + me, tl.sum(r * r, axis=0).to(tl.float64))
        tl.store(half + SLOTS + me, tl.sum(r * x, axis=0).to(tl.float64))
        tl.atomic_add(count_ptr, 1, sem="release")  # the partials are stored before
        target = base + programs * (t + 1)
        polls = limit * 0
        allowed = tl.where(failed > 0, 0, limit)
        while (tl.load(count_ptr, volatile=True) < target) & (polls < allowed):
            polls += 1
        failed = tl.where(polls >= limit, 1, failed)
        # an acquire fence: every program's partials are read after the count that says they
        # were written (an add of 0 with acquire semantics is compiled to a plain load); then
        # a CTA barrier, so that no thread of the program reads before the others have waited
        acquire(polls, FENCE)
        tl.debug_barrier()
        sq = tl.load(half + slots, mask=slot_ok, other=0.0, volatile=True)
        g = tl.load(half + SLOTS + slots, mask=slot_ok, other=0.0, volatile=True)
        loss = tl.sum(sq, axis=0) / n
        grad = 2.0 * tl.sum(g, axis=0) / n
        w = w - lr * grad
    tl.atomic_max(status_ptr, failed)
    if me == 0:
        tl.store(w_ptr, w.to(w_ptr.dtype.element_ty))
        tl.store(out_ptr, loss.to(out_ptr.dtype.element_ty))
        tl.store(out_ptr + 1, grad.to(out_ptr.dtype.element_ty))
