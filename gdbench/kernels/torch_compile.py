"""torch-compile: the analytic step as one function under ``torch.compile``, static shapes.

The residual, both reductions (loss and gradient, one per feature) and the update compile into
one loop over the samples that reads x and y once (1 pass).

Every (N, D, dtype, device) gets its own compiled copy with static shapes. A sample count marked
dynamic looks cheaper (one graph for every size) but is a trap on CUDA: Inductor chooses the
reduction's split and block sizes from the first N it sees and guards nothing on it, so a graph
first compiled at N = 4 runs at N = 10^8 with a split meant for 4 samples, far from the memory
bandwidth. With static shapes N is part of every guard and of the keys of Inductor's on-disk
caches, so no artifact tuned for one N is ever used at another. The compilation happens in the
first step, which the harness reports apart from its samples (``warmup_s``).

``run_steps(k)`` on CUDA replays k compiled steps captured once in one CUDA graph (one launch
of the graph, no Python between the steps); on the CPU it is a loop of compiled steps.
"""

import functools
import types

from gdbench.core.devices import is_cuda
from gdbench.core.dtypes import accumulator
from gdbench.kernels.base import FusedKernelBase
from gdbench.kernels.cuda_graph import torch_graph
from gdbench.kernels.torch_base import TorchKernel


def fused_step(x, y, w, lr):
    """The step; compiled by ``compiled_step``, whose copy sees ``torch`` among its globals.

    Sums are float32 in half precision: float16's would pass its largest number, 65504. ``lr``
    is a 0-d tensor in the sums' dtype: a Python number would be a constant of the graph, and
    each new learning rate (converge's rules, ``train --lr``) a compilation of its own.
    """
    acc = torch.float32 if x.element_size() == 2 else x.dtype  # noqa: F821
    columns = [x] if x.ndim == 1 else [x[:, j] for j in range(x.shape[1])]
    r = sum(c * w[j] for j, c in enumerate(columns)) - y
    loss = (r * r).mean()
    sums = [(r * c).sum(dtype=acc) for c in columns]
    grad = torch.stack(sums) * (2.0 / x.shape[0])  # noqa: F821
    w.sub_(grad * lr)
    return loss, grad


@functools.cache
def compiled_step(n_samples: int, n_features: int, dtype: str, device: str):
    """A copy of ``fused_step`` compiled for one sample count, feature count, dtype and device.

    Each copy has a code object of its own, and so its own cache of compiled graphs: PyTorch
    counts recompilations per code object, and one graph per code object never reaches its limit.
    """
    import torch

    name = f"fused_step_{device}_{dtype}_n{n_samples}_d{n_features}"
    code = fused_step.__code__.replace(co_name=name, co_qualname=name)
    step = types.FunctionType(code, {**fused_step.__globals__, "torch": torch}, name)
    return torch.compile(step, fullgraph=True, dynamic=False)


def fused_sums(x, y, w):
    """The sums of r**2 and r * x_j over the samples (not their means): what ranks add up."""
    acc = torch.float32 if x.element_size() == 2 else x.dtype  # noqa: F821
    columns = [x] if x.ndim == 1 else [x[:, j] for j in range(x.shape[1])]
    r = sum(c * w[j] for j, c in enumerate(columns)) - y
    sums = [(r * r).sum(dtype=acc), *[(r * c).sum(dtype=acc) for c in columns]]
    return torch.stack(sums)  # noqa: F821


@functools.cache
def compiled_sums(n_samples: int, n_features: int, dtype: str, device: str):
    """``fused_sums`` compiled for one shard's shape, dtype and device, as ``compiled_step``."""
    import torch

    name = f"fused_sums_{device}_{dtype}_n{n_samples}_d{n_features}"
    code = fused_sums.__code__.replace(co_name=name, co_qualname=name)
    sums = types.FunctionType(code, {**fused_sums.__globals__, "torch": torch}, name)
    return torch.compile(sums, fullgraph=True, dynamic=False)


class TorchCompile(FusedKernelBase, TorchKernel):
    name = "torch-compile"
    passes = 1.0
    many_steps = "1 graph (cuda)"

    def _setup(self, x, y, w0):
        super()._setup(x, y, w0)
        self.compiled = compiled_step(self.n_samples, self.n_features, self.dtype, self.device)
        self.lr_tensor = self.torch.tensor(self.lr, dtype=getattr(self.torch, accumulator(
            self.dtype)), device=self.device)
        self.graphs = {}  # k -> the CUDA graph of k steps

    def step(self):
        self._loss, self._grad = self.compiled(self.x, self.y, self.w, self.lr_tensor)

    def run_steps(self, k: int):
        if k == 1 or not is_cuda(self.device):
            return super().run_steps(k)
        if k not in self.graphs:
            self.graphs[k] = self._capture_steps(k)
        self.graphs[k].replay()
        self._stepped = True

    def _capture_steps(self, k: int):
        """k steps in one CUDA graph, warmed up by one step; w as it was before."""
        w = self.w.clone()

        def steps():
            for _ in range(k):
                self.step()

        return torch_graph(steps, self.step, lambda: self.w.copy_(w))

    def local_sums(self):
        """A data-parallel step's first part: this shard's sums, compiled."""
        if "sums_fn" not in self.__dict__:
            self.sums_fn = compiled_sums(self.n_samples, self.n_features, self.dtype, self.device)
        return self.sums_fn(self.x, self.y, self.w)

    def apply_sums(self, sums, n_total: int):
        """The update from the sums of all the samples."""
        self._loss = sums[0] / n_total
        self._grad = sums[1:] * (2.0 / n_total)
        self.w.sub_(self._grad, alpha=self.lr)
        self._stepped = True
