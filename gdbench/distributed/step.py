"""The data-parallel step: one rank's shard of the samples, the gradient and loss all-reduced.

Each of P ranks holds N/P samples, the last rank also the remainder. A kernel with separate
phases runs its forward and backward on the shard; ``allreduce`` then weights the local loss
and gradient by the shard's share of the samples and sums them over the ranks in one
all-reduce, in place, so that every rank's ``update`` applies exactly the gradient of all N
samples (``gdbench.distributed.adapters`` says which tensors each kind of kernel all-reduces;
torch-module's are PyTorch's own ``DistributedDataParallel``). A fused kernel computes
its shard's sums of r**2 and r * x (``local_sums``), the sums are all-reduced (they add up
exactly), and ``apply_sums`` turns them into the loss, gradient and update.
"""

from __future__ import annotations

import numpy as np

from gdbench.core.dtypes import accumulator
from gdbench.core.protocol import FUSED, PHASES
from gdbench.distributed.adapters import adapter
from gdbench.kernels.base import Wrapper

DP_PHASES = ("forward", "backward", "allreduce", "update")
DP_FUSED = ("sums", "allreduce", "update")


def shard(n: int, rank: int, world: int) -> tuple[int, int]:
    """[start, stop) of ``rank``'s samples: N // P each, the last rank the remainder too."""
    per = n // world
    return rank * per, (n if rank == world - 1 else (rank + 1) * per)


class DataParallel(Wrapper):
    """``inner`` (a kernel with ``data_parallel``) on this rank's shard of every problem."""

    writes = None  # the byte model of a step on N samples is not a rank's on its shard

    def __init__(self, inner, rank: int, world: int):
        import torch.distributed as dist

        if not getattr(inner, "data_parallel", False):
            raise ValueError(f"kernel {inner.name} cannot run data-parallel (see gdbench list)")
        self.inner, self.rank, self.world, self.dist = inner, rank, world, dist
        self.name, self.backend = inner.name, inner.backend
        self.device, self.dtype = inner.device, inner.dtype
        self.fused = inner.phases == FUSED
        self.phases = DP_FUSED if self.fused else DP_PHASES
        assert inner.phases in (FUSED, PHASES)

    def prepare(self, x, y, *, w0=0.0, lr: float = 0.01) -> None:
        x = np.asarray(x).reshape(len(y), -1)
        n = len(y)
        if n < self.world:
            raise ValueError(f"{n} samples cannot be split over {self.world} ranks")
        start, stop = shard(n, self.rank, self.world)
        self.n_total, self.share = n, (stop - start) / n
        self.adapter = adapter(self.inner)
        self.adapter.before_prepare(self.inner, self.share, self.world)
        self.inner.prepare(x[start:stop], np.asarray(y)[start:stop], w0=w0, lr=lr)
        torch = self.inner.torch
        # Sums of half-precision ranks travel in float32, the format they were accumulated in.
        self.buffer = torch.empty(1 + self.inner.n_features,
                                  dtype=getattr(torch, accumulator(self.dtype)), device=self.device)

    def forward(self):
        self.inner.forward()

    def backward(self):
        self.inner.backward()

    def sums(self):
        self.local = self.inner.local_sums()

    def allreduce(self):
        if self.fused:
            self.dist.all_reduce(self.local)  # sums add up exactly across ranks
            return
        loss, grad = self.adapter.tensors(self.inner)
        buffer = self.buffer
        with self.inner.torch.no_grad():
            buffer[0].copy_(loss.detach())
            if grad is not None:
                buffer[1:].copy_(grad.reshape(-1))  # a 0-d tensor for one feature
            buffer.mul_(self.share)
            self.dist.all_reduce(buffer)
            loss.detach().copy_(buffer[0])
            if grad is not None:
                grad.copy_(buffer[1:].reshape(grad.shape))

    def update(self):
        if self.fused:
            self.inner.apply_sums(self.local, self.n_total)
        else:
            self.inner.update()

    def step(self):
        for phase in self.phases:
            getattr(self, phase)()
