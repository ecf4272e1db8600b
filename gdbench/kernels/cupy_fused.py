"""cupy-fused: the whole step in one CuPy ``RawKernel`` launch, one pass over x and y.

A grid of a few blocks per multiprocessor strides over the rows; every thread keeps its sums of
r**2 and r * x_j (r = x @ w - y) in float64, a block adds its threads' sums with warp shuffles
and shared memory, and one thread per sum adds the block's total atomically to a float64
accumulator. The last block to finish (an atomic count, after a memory fence, as in CUDA's
threadFenceReduction sample) reads and clears the accumulator, writes the loss and gradient,
updates w and resets the count. One launch, no host synchronization; memory traffic: x and y
read once, 1 pass. The sums for D features live in registers, so D is at most 16.

``run_steps(k)`` with one feature runs the k steps in one persistent, cooperative launch
(``fused_steps``): at most one block per multiprocessor, each holding its rows of x and y in
registers for all k steps, with a grid-wide barrier after each step and a fixed-order float64
sum of the blocks' partials, whose wait is bounded (docs/many-steps.md). The CUDA C++ source is
in ``cupy_loops``.
"""

import numpy as np

from gdbench.kernels.base import FusedKernelBase, OutBuffer
from gdbench.kernels.cupy_loops import ROWS_PER_THREAD, compiled_step, compiled_steps

MAX_FEATURES = 16
THREADS = 256
BLOCKS_PER_SM = 8
# Rows per thread at least: below 8 blocks per multiprocessor, fewer blocks means fewer atomic
# adds to the same two addresses, which a GPU serializes (measured on an H200 at N = 10^6:
# 1056 blocks took 7.0 us per step, 40 blocks 4.0 us at N = 10^4).
MIN_ROWS_PER_THREAD = 16
MIN_STEPS_ROWS = 1024  # rows per block of run_steps' persistent kernel, at the least
WAIT_NS = 10**10  # a block gives up waiting at a barrier after 10 s: a grid not resident fails


def steps_grid(n: int, sms: int) -> tuple[int, int] | None:
    """(blocks, rows per thread) of ``fused_steps`` for ``n`` rows: one block per
    multiprocessor at most, at least MIN_STEPS_ROWS rows each; None when the rows per thread
    would pass the largest R (N past about 10^6 on an H100 or H200)."""
    blocks = max(1, min(sms, ceil_div(n, MIN_STEPS_ROWS)))
    per_thread = ceil_div(ceil_div(n, blocks), THREADS)
    rows = next((r for r in ROWS_PER_THREAD if r >= per_thread), None)
    if rows is None:
        return None
    return ceil_div(n, THREADS * rows), rows


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class CupyFused(OutBuffer, FusedKernelBase):
    name = "cupy-fused"
    backend = "cupy"
    devices = ("cuda",)
    requires = ("cupy",)
    passes = 1.0
    max_features = MAX_FEATURES  # per-thread sums live in registers
    cuda_graph = True
    many_steps = ("1 cooperative launch for D=1 and N up to 8192 rows a multiprocessor "
                  "(1.08e6 on 132 SMs); else a launch a step")

    def _setup(self, x, y, w0):
        import cupy

        self.cupy = cupy
        self.kernel = compiled_step(self.dtype, self.n_features)
        self.x = cupy.asarray(x)
        self.y = cupy.asarray(y)
        self.w = cupy.asarray(w0.astype(self.dtype))
        self.acc = cupy.zeros(1 + self.n_features, dtype=cupy.float64)
        self.done = cupy.zeros(1, dtype=cupy.uint32)
        self.out = cupy.zeros(1 + self.n_features, dtype=self.dtype)
        # the multiprocessors, once: run_steps needs them on every call
        self.sms = int(cupy.cuda.Device().attributes["MultiProcessorCount"])
        rows_per_block = THREADS * MIN_ROWS_PER_THREAD
        self.blocks = int(min(ceil_div(self.n_samples, rows_per_block),
                              BLOCKS_PER_SM * self.sms))
        # run_steps' barrier: each block's sums of a step in two halves a step apart, the count
        # of arrivals (it only ever rises; the host keeps how far, ``arrived``), and a status
        # a block sets when it waited too long
        self.partials = cupy.zeros(4 * self.sms, dtype=cupy.float64)
        self.arrivals = cupy.zeros(1, dtype=cupy.uint64)
        self.status = cupy.zeros(1, dtype=cupy.int32)
        self.arrived = 0
        self.launched_persistent = False
        self.args = (self.x, self.y, self.w, self.acc, self.done, self.out,
                     np.int64(self.n_samples), np.float64(self.lr))

    def step(self):
        self.kernel((self.blocks,), (THREADS,), self.args)

    def persistent_grid(self) -> tuple[int, int] | str:
        """(blocks, rows per thread) of ``run_steps``' one launch, or why it runs a launch per
        step instead."""
        if self.n_features != 1:
            return f"{self.n_features} features: one launch of K steps holds one"
        grid = steps_grid(self.n_samples, self.sms)
        if grid is None:
            return (f"{self.n_samples:.3g} rows exceed {self.sms} blocks x "
                    f"{THREADS * ROWS_PER_THREAD[-1]} rows on this GPU")
        return grid

    def many_steps_plan(self, k: int) -> str:
        """How ``run_steps(k)`` runs on these data: results record it."""
        grid = self.persistent_grid()
        if k == 1:
            return "1 launch"
        if isinstance(grid, str):
            return f"a launch a step: {grid}"
        return f"1 cooperative launch of {grid[0]} block(s)"

    def run_steps(self, k: int):
        """``k`` steps in one persistent, cooperative launch (``fused_steps``) where
        ``persistent_grid`` allows; else a launch per step."""
        grid = self.persistent_grid()
        if k == 1 or isinstance(grid, str):
            return super().run_steps(k)
        blocks, rows = grid
        compiled_steps(self.dtype, rows)((blocks,), (THREADS,), (
            self.x, self.y, self.w, self.partials, self.arrivals, self.status, self.out,
            np.int64(self.n_samples), np.float64(self.lr), np.int64(k),
            np.uint64(self.arrived), np.uint64(WAIT_NS)), enable_cooperative_groups=True)
        self.arrived += blocks * k
        self.launched_persistent = True
        self._stepped = True

    def synchronize(self):
        """Wait for the device; after a persistent launch, raise if a block of it gave up
        waiting at a barrier (its results are then not the steps')."""
        self.cupy.cuda.get_current_stream().synchronize()
        if self.launched_persistent:
            self.launched_persistent = False
            if int(self.status.get()[0]):
                self.status.fill(0)
                self.arrivals.fill(0)
                self.arrived = 0
                raise RuntimeError(
                    f"persistent barrier timed out: a block of run_steps' launch waited "
                    f"{WAIT_NS / 1e9:.0f} s for the others, which were not all running at once")

    @staticmethod
    def _host(a) -> np.ndarray:
        return np.array(a.get())

    @property
    def weight(self):
        return self._host(self.w)
