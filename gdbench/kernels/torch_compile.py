"""torch-compile: the analytic step as one function under ``torch.compile``.

Inductor fuses the residual, both reductions (loss and gradient) and the update; with one
feature it reads x and y once (1 pass), with D features it reads x once more for the gradient
after the matrix-vector product. The function is compiled once per process with dynamic shapes,
so every sample count reuses it; the compilation happens in the first step, which the harness
reports apart from its samples.
"""

from gdbench.kernels.base import FusedKernelBase
from gdbench.kernels.torch_base import TorchKernel

_compiled = None


def fused_step(x, y, w, lr: float):
    r = (x * w if x.ndim == 1 else x @ w) - y
    loss = (r * r).mean()
    grad = (r[:, None] * x.reshape(x.shape[0], -1)).sum(0) * (2.0 / x.shape[0])
    w.sub_(grad, alpha=lr)
    return loss, grad


def compiled_step():
    global _compiled
    if _compiled is None:
        import torch

        _compiled = torch.compile(fused_step, dynamic=True, fullgraph=True)
    return _compiled


class TorchCompile(FusedKernelBase, TorchKernel):
    name = "torch-compile"
    passes = 1.0

    def step(self):
        self._loss, self._grad = compiled_step()(self.x, self.y, self.w, self.lr)
