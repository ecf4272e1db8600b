"""triton-fused: the whole step in one Triton launch, one pass over x and y.

``fused_step_1d`` (one feature) and ``fused_step_nd``: each program strides over whole blocks of
rows, keeping per-lane sums of r**2 and r * x (r = x @ w - y); the last program also takes the
rows after the last whole block, masked. Whole blocks are read without a mask, so the compiler
can use aligned 16-byte loads for any N; row offsets are 64-bit, so N * D past 2**31 elements
stays in bounds. Each program adds its totals atomically to a small accumulator and counts
itself done; the last program to finish reads and clears the accumulator, writes the loss and
gradient, updates w and resets the count. One launch, no host synchronization; memory traffic:
x and y read once, 1 pass. Loads of x are 16-byte wide when D is a power of two; other D mask
the padding columns. In bfloat16 and float16, x, y and w are loaded in 16 bits and everything
after the load, the sums included, is float32, so the bytes read halve and the sums lose nothing.

On the CPU the kernels run on CPU tensors in Triton's interpreter (TRITON_INTERPRET=1), which is
how the tests check them without a GPU.
"""

import os

import numpy as np

from gdbench.core.devices import is_cpu, is_cuda
from gdbench.core.dtypes import DTYPES, accumulator
from gdbench.kernels.base import FusedKernelBase, OutBuffer
from gdbench.kernels.torch_base import TorchKernel

# Elements of x per block and warps per program on the GPU. The interpreter runs each block as
# NumPy operations, so on the CPU a block is as large as the data, up to Triton's largest tensor
# (2**20 elements): fewer, larger blocks are faster there (2**31 elements in 2,048 blocks
# rather than 32,768).
BLOCK_ELEMENTS = {"cuda": 4096, "cpu": 1 << 20}
NUM_WARPS = 8
PROGRAMS_PER_SM = 4
# run_steps with one feature: at most this many rows per program keep x and y in registers
# for all k steps (32 of each per thread at 8 warps); at least this many per program.
RESIDENT_ROWS = 8192
MIN_ROWS = 1024
# Polls of the barrier's count before a program gives up waiting (seconds on a GPU, where a
# poll is an L2 round trip): a grid that is not resident at once fails, it does not hang.
POLL_LIMIT = 1 << 26


class TritonFused(OutBuffer, FusedKernelBase, TorchKernel):
    name = "triton-fused"
    backend = "triton"
    devices = ("cuda", "cpu")
    requires = ("torch", "triton")
    passes = 1.0
    data_parallel = True
    dtypes = DTYPES
    many_steps = (f"1 launch for D=1 and N up to {RESIDENT_ROWS} rows a multiprocessor "
                  "(1.08e6 on 132 SMs), cooperative where Triton can; else a launch a step")

    @classmethod
    def unavailable_reason(cls, device):
        interpreted = os.environ.get("TRITON_INTERPRET") == "1"
        if is_cpu(device) and not interpreted:
            return "runs on the CPU only in Triton's interpreter (set TRITON_INTERPRET=1)"
        if is_cuda(device) and interpreted:
            return "TRITON_INTERPRET=1 is set: Triton would interpret instead of compiling"
        return super().unavailable_reason(device)

    def _setup(self, x, y, w0):
        super()._setup(np.ascontiguousarray(x), y, w0)
        torch = self.torch
        import triton

        from gdbench.kernels import triton_loops

        self.loops = triton_loops
        d = self.n_features
        self.d_pad = triton.next_power_of_2(d)
        elements = BLOCK_ELEMENTS[self.device]
        if is_cpu(self.device):  # no larger than the data, whose size rounds up to a power of 2
            elements = min(elements, max(1 << 10, triton.next_power_of_2(self.n_samples * d)))
        self.block = elements if d == 1 else max(16, elements // self.d_pad)
        blocks = triton.cdiv(self.n_samples, self.block)
        # the multiprocessors, once: run_steps needs them on every call
        self.sms = (torch.cuda.get_device_properties(self.x.device).multi_processor_count
                    if is_cuda(self.device) else None)
        self.grid = (min(blocks, PROGRAMS_PER_SM * self.sms),) if self.sms else (min(blocks, 8),)
        dtype = getattr(torch, accumulator(self.dtype))  # of the sums, the loss and gradient
        self.acc = torch.zeros(1 + d, dtype=dtype, device=self.device)
        self.count = torch.zeros(1, dtype=torch.int32, device=self.device)
        self.out = torch.zeros(1 + d, dtype=dtype, device=self.device)
        # lr travels as a tensor of the sums' dtype: Triton would pass a Python float as fp32.
        self.lr_tensor = torch.tensor([self.lr], dtype=dtype, device=self.device)
        # run_steps' barrier: every program's sums of the step, in two halves a step apart
        # (float64, summed in a fixed order), the count of arrivals (it only ever rises; the
        # host keeps how far, ``arrived``), and a status a program sets when it waited too long
        self.slots = max(2, triton.next_power_of_2(self.sms or 1))
        self.partials = torch.zeros(4 * self.slots, dtype=torch.float64, device=self.device)
        self.arrivals = torch.zeros(1, dtype=torch.int64, device=self.device)
        self.status = torch.zeros(1, dtype=torch.int32, device=self.device)
        self.arrived = 0
        self.launched_persistent = False

    def step(self):
        self._launch(finish=True)

    def _launch(self, finish: bool):
        args = (self.x, self.y, self.w, self.acc, self.count, self.out, self.lr_tensor,
                self.n_samples)
        if self.n_features == 1:
            self.loops.fused_step_1d[self.grid](*args, BLOCK=self.block, FINISH=finish,
                                                num_warps=NUM_WARPS)
        else:
            self.loops.fused_step_nd[self.grid](*args, D=self.n_features, D_PAD=self.d_pad,
                                                BLOCK=self.block, FINISH=finish,
                                                num_warps=NUM_WARPS)

    def persistent_grid(self) -> tuple[int, int] | str:
        """(programs, rows per program) of ``run_steps``' one launch, or why ``run_steps`` runs
        a launch per step instead: x and y must fit in the registers of a grid resident at
        once (one feature; at most one program per multiprocessor with up to RESIDENT_ROWS rows
        each on CUDA, about 10^6 rows on an H100 or H200; one program of up to 2^20 rows in the
        interpreter, which runs programs one after another)."""
        import triton

        n = self.n_samples
        if self.n_features != 1:
            return f"{self.n_features} features: one launch of K steps holds one"
        if is_cuda(self.device):
            programs = max(1, min(self.sms, triton.cdiv(n, MIN_ROWS)))
            if triton.cdiv(n, programs) > RESIDENT_ROWS:
                return (f"{n:.3g} rows exceed {self.sms} programs x {RESIDENT_ROWS} rows on "
                        "this GPU")
        else:
            programs = 1
            if n > BLOCK_ELEMENTS["cpu"]:
                return f"{n:.3g} rows exceed one interpreted program of {BLOCK_ELEMENTS['cpu']}"
        return programs, triton.cdiv(n, programs)

    def many_steps_plan(self, k: int) -> str:
        """How ``run_steps(k)`` runs on these data: results record it."""
        grid = self.persistent_grid()
        if k == 1:
            return "1 launch"
        if isinstance(grid, str):
            return f"a launch a step: {grid}"
        how = ("cooperative" if cooperative_launch() else "plain, one program a multiprocessor "
               "(no cooperative launch in this Triton)") if is_cuda(self.device) else "interpreted"
        return f"1 launch of {grid[0]} program(s), {how}"

    def run_steps(self, k: int):
        """``k`` steps in one persistent launch (``fused_steps_1d``) where ``persistent_grid``
        allows, else a launch per step, as fast per step as one launch of K."""
        grid = self.persistent_grid()
        if k == 1 or isinstance(grid, str):
            return super().run_steps(k)
        import triton

        programs, rows = grid
        cooperative = {"launch_cooperative_grid": True} if (
            is_cuda(self.device) and cooperative_launch()) else {}
        self.loops.fused_steps_1d[(programs,)](
            self.x, self.y, self.w, self.partials, self.arrivals, self.status, self.out,
            self.lr_tensor, self.n_samples, k, self.arrived, POLL_LIMIT,
            BLOCK=max(16, triton.next_power_of_2(rows)), SLOTS=self.slots,
            FENCE=is_cuda(self.device), num_warps=NUM_WARPS, **cooperative)
        self.arrived += programs * k
        self.launched_persistent = True
        self._stepped = True

    def synchronize(self):
        """Wait for the device; after a persistent launch, raise if a program of it gave up
        waiting at a barrier (its results are then not the steps')."""
        super().synchronize()
        if self.launched_persistent:
            self.launched_persistent = False
            if int(self.status.item()):
                self.status.zero_()
                self.arrivals.zero_()
                self.arrived = 0
                raise RuntimeError(
                    f"persistent barrier timed out: a program of run_steps' launch waited "
                    f"{POLL_LIMIT} polls for the others, which were not all running at once "
                    "(another process or stream holding multiprocessors, or MPS limiting them)")

    def local_sums(self):
        """A data-parallel step's first part: this shard's sums, added into ``acc``."""
        self._launch(finish=False)
        return self.acc

    def apply_sums(self, sums, n_total: int):
        """The update from the sums of all the samples (``acc``, all-reduced in place)."""
        self.loops.apply_sums[(1,)](sums, self.out, self.w, self.lr_tensor, n_total,
                                    D=self.n_features, D_PAD=max(2, self.d_pad))
        self._stepped = True


def cooperative_launch() -> bool:
    """Whether this Triton launches a grid cooperatively (``launch_cooperative_grid``): the
    driver then refuses a grid that cannot be resident at once, rather than let it wait."""
    import dataclasses

    try:
        from triton.backends.nvidia.compiler import CUDAOptions
    except ImportError:
        return False
    return "launch_cooperative_grid" in {f.name for f in dataclasses.fields(CUDAOptions)}
