"""triton-fused: one pass over x and y in Triton, then the update on the device.

``partial_sums_1d`` (one feature) or ``partial_sums_nd``: each program strides over blocks of
rows, keeping per-lane sums of r**2 and r * x (r = x @ w - y), and adds its totals atomically
to a small accumulator.
``apply_update``: one program turns the sums into the loss and gradient, updates w and clears
the accumulator for the next step. Two launches, no host synchronization; memory traffic: x and
y read once, 1 pass.

On the CPU the kernels run on CPU tensors in Triton's interpreter (TRITON_INTERPRET=1), which is
how the tests check them without a GPU.
"""

import functools
import os

import numpy as np

from gdbench.kernels.base import FusedKernelBase
from gdbench.kernels.torch_base import TorchKernel

BLOCK_ELEMENTS = {"cuda": 2048, "cpu": 1 << 16}  # elements of x per block of rows; the
# interpreter runs each block as NumPy operations, so on the CPU fewer, larger blocks are faster


@functools.cache
def kernels():
    import triton
    import triton.language as tl

    @triton.jit
    def partial_sums_1d(x_ptr, y_ptr, w_ptr, acc_ptr, n, BLOCK: tl.constexpr):
        w = tl.load(w_ptr)
        sq = tl.zeros([BLOCK], dtype=w.dtype)
        g = tl.zeros([BLOCK], dtype=w.dtype)
        for start in range(tl.program_id(0) * BLOCK, n, tl.num_programs(0) * BLOCK):
            rows = start + tl.arange(0, BLOCK)
            row_ok = rows < n
            x = tl.load(x_ptr + rows, mask=row_ok, other=0.0)
            r = x * w - tl.load(y_ptr + rows, mask=row_ok, other=0.0)
            sq += r * r
            g += r * x
        tl.atomic_add(acc_ptr, tl.sum(sq, axis=0))
        tl.atomic_add(acc_ptr + 1, tl.sum(g, axis=0))

    @triton.jit
    def partial_sums_nd(x_ptr, y_ptr, w_ptr, acc_ptr, n, D: tl.constexpr, D_PAD: tl.constexpr,
                        BLOCK: tl.constexpr):
        cols = tl.arange(0, D_PAD)
        col_ok = cols < D
        w = tl.load(w_ptr + cols, mask=col_ok, other=0.0)
        sq = tl.zeros([BLOCK], dtype=w.dtype)
        g = tl.zeros([BLOCK, D_PAD], dtype=w.dtype)
        for start in range(tl.program_id(0) * BLOCK, n, tl.num_programs(0) * BLOCK):
            rows = start + tl.arange(0, BLOCK)
            row_ok = rows < n
            x = tl.load(x_ptr + rows[:, None] * D + cols[None, :],
                        mask=row_ok[:, None] & col_ok[None, :], other=0.0)
            r = tl.sum(x * w[None, :], axis=1) - tl.load(y_ptr + rows, mask=row_ok, other=0.0)
            sq += r * r
            g += r[:, None] * x
        tl.atomic_add(acc_ptr, tl.sum(sq, axis=0))
        tl.atomic_add(acc_ptr + 1 + cols, tl.sum(g, axis=0), mask=col_ok)

    @triton.jit
    def apply_update(w_ptr, acc_ptr, out_ptr, lr_ptr, n, D: tl.constexpr, D_PAD: tl.constexpr):
        cols = tl.arange(0, D_PAD)
        col_ok = cols < D
        loss = tl.load(acc_ptr) / n
        grad = 2.0 * tl.load(acc_ptr + 1 + cols, mask=col_ok, other=0.0) / n
        w = tl.load(w_ptr + cols, mask=col_ok)
        tl.store(w_ptr + cols, w - tl.load(lr_ptr) * grad, mask=col_ok)
        tl.store(out_ptr, loss)
        tl.store(out_ptr + 1 + cols, grad, mask=col_ok)
        tl.store(acc_ptr, 0.0)
        tl.store(acc_ptr + 1 + cols, tl.zeros([D_PAD], dtype=w.dtype), mask=col_ok)

    return triton, partial_sums_1d, partial_sums_nd, apply_update


class TritonFused(FusedKernelBase, TorchKernel):
    name = "triton-fused"
    backend = "triton"
    devices = ("cuda", "cpu")
    requires = ("torch", "triton")
    passes = 1.0

    @classmethod
    def unavailable_reason(cls, device):
        interpreted = os.environ.get("TRITON_INTERPRET") == "1"
        if device == "cpu" and not interpreted:
            return "runs on the CPU only in Triton's interpreter (set TRITON_INTERPRET=1)"
        if device == "cuda" and interpreted:
            return "TRITON_INTERPRET=1 is set: Triton would interpret instead of compiling"
        return super().unavailable_reason(device)

    def _setup(self, x, y, w0):
        super()._setup(np.ascontiguousarray(x), y, w0)
        torch = self.torch
        triton, self.partial_sums_1d, self.partial_sums_nd, self.apply_update = kernels()
        d = self.n_features
        self.d_pad = max(2, triton.next_power_of_2(d))  # tl.arange needs at least 2 here
        elements = BLOCK_ELEMENTS[self.device]
        self.block = elements if d == 1 else max(16, elements // self.d_pad)
        blocks = triton.cdiv(self.n_samples, self.block)
        if self.device == "cuda":
            sms = torch.cuda.get_device_properties(self.x.device).multi_processor_count
            self.grid = (min(blocks, 4 * sms),)
        else:
            self.grid = (min(blocks, 8),)
        self.acc = torch.zeros(1 + d, dtype=self.w.dtype, device=self.device)
        self.out = torch.zeros(1 + d, dtype=self.w.dtype, device=self.device)
        # lr travels as a tensor of the data's dtype: Triton would pass a Python float as fp32.
        self.lr_tensor = torch.tensor([self.lr], dtype=self.w.dtype, device=self.device)
        self._loss, self._grad = self.out[0], self.out[1:]

    def step(self):
        d = self.n_features
        if d == 1:
            self.partial_sums_1d[self.grid](self.x, self.y, self.w, self.acc, self.n_samples,
                                            BLOCK=self.block)
        else:
            self.partial_sums_nd[self.grid](self.x, self.y, self.w, self.acc, self.n_samples,
                                            D=d, D_PAD=self.d_pad, BLOCK=self.block)
        self.apply_update[(1,)](self.w, self.acc, self.out, self.lr_tensor, self.n_samples,
                                D=d, D_PAD=self.d_pad)
