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


class TritonFused(OutBuffer, FusedKernelBase, TorchKernel):
    name = "triton-fused"
    backend = "triton"
    devices = ("cuda", "cpu")
    requires = ("torch", "triton")
    passes = 1.0
    data_parallel = True
    dtypes = DTYPES
    many_steps = "1 launch (D=1)"

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
        if is_cuda(self.device):
            sms = torch.cuda.get_device_properties(self.x.device).multi_processor_count
            self.grid = (min(blocks, PROGRAMS_PER_SM * sms),)
        else:
            self.grid = (min(blocks, 8),)
        dtype = getattr(torch, accumulator(self.dtype))  # of the sums, the loss and gradient
        self.acc = torch.zeros(1 + d, dtype=dtype, device=self.device)
        self.count = torch.zeros(1, dtype=torch.int32, device=self.device)
        self.out = torch.zeros(1 + d, dtype=dtype, device=self.device)
        # lr travels as a tensor of the sums' dtype: Triton would pass a Python float as fp32.
        self.lr_tensor = torch.tensor([self.lr], dtype=dtype, device=self.device)
        # the generation of run_steps' grid-wide barrier: it only ever rises
        self.generation = torch.zeros(1, dtype=torch.int64, device=self.device)

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

    def run_steps(self, k: int):
        """``k`` steps in one persistent launch (``fused_steps_1d``) where x and y fit in the
        registers of a grid that is resident at once: one feature, at most one program per
        multiprocessor with up to RESIDENT_ROWS rows each on CUDA (N up to about 10^6 on an
        H100 or H200), one program of up to 2^20 rows in the interpreter (which runs
        programs one after another). Anything larger streams from memory anyway, and runs a
        launch per step, as fast per step as one launch of K."""
        import triton

        n = self.n_samples
        if is_cuda(self.device):
            sms = self.torch.cuda.get_device_properties(self.x.device).multi_processor_count
            programs, most = max(1, min(sms, triton.cdiv(n, MIN_ROWS))), RESIDENT_ROWS
        else:
            programs, most = 1, BLOCK_ELEMENTS["cpu"]
        rows = triton.cdiv(n, programs)
        if self.n_features != 1 or k == 1 or rows > most:
            return super().run_steps(k)
        self.loops.fused_steps_1d[(programs,)](
            self.x, self.y, self.w, self.acc, self.count, self.generation, self.out,
            self.lr_tensor, n, k, BLOCK=max(16, triton.next_power_of_2(rows)),
            num_warps=NUM_WARPS)
        self._stepped = True

    def local_sums(self):
        """A data-parallel step's first part: this shard's sums, added into ``acc``."""
        self._launch(finish=False)
        return self.acc

    def apply_sums(self, sums, n_total: int):
        """The update from the sums of all the samples (``acc``, all-reduced in place)."""
        self.loops.apply_sums[(1,)](sums, self.out, self.w, self.lr_tensor, n_total,
                                    D=self.n_features, D_PAD=max(2, self.d_pad))
        self._stepped = True
