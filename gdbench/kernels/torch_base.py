"""What the PyTorch kernels share: moving data to the device, synchronizing, reading back.

With one feature, ``x`` is kept as a vector and the prediction is the tutorial's ``x * w``. This
is not only shorter: PyTorch's CPU float32 matrix-vector product over an (N, 1) matrix sums
sequentially, and its gradient is 0.5% off at N = 10^7, where ``x * w`` and its backward sum
with a cascade and stay within rounding of the float64 reference.
"""

from __future__ import annotations

import numpy as np

from gdbench.core.devices import is_cuda
from gdbench.core.dtypes import DTYPES
from gdbench.kernels.base import KernelBase


class TorchKernel(KernelBase):
    backend = "torch"
    devices = ("cpu", "cuda")
    dtypes = DTYPES  # half precision as torch does it: 16-bit tensors, float32 inside reductions
    requires = ("torch",)
    cuda_graph = True
    data_parallel = True

    def _setup(self, x, y, w0):
        import torch

        self.torch = torch
        dtype = getattr(torch, self.dtype)
        self.x = torch.from_numpy(x[:, 0] if x.shape[1] == 1 else x).to(self.device, dtype)
        self.y = torch.from_numpy(y).to(self.device, dtype)
        self._setup_weights(torch.tensor(w0, dtype=dtype, device=self.device))

    def _setup_weights(self, w0) -> None:
        self.w = w0

    def predict(self):
        return self.x * self.w if self.x.ndim == 1 else self.x @ self.w

    def synchronize(self):
        if is_cuda(self.device):
            self.torch.cuda.synchronize()

    def _host(self, t) -> np.ndarray:
        t = t.detach().cpu()
        if t.dtype == self.torch.bfloat16:  # NumPy has no bfloat16; float32 holds it exactly
            t = t.float()
        return t.numpy().reshape(-1).copy()

    @property
    def weight(self):
        return self._host(self.w)

    @property
    def loss(self):
        return float(self._loss.detach())

    @property
    def grad(self):
        return self._host(self._grad)
