"""A torch-based kernel's step captured in a CUDA graph and replayed.

Replaying a graph launches every kernel of the step with one call, so the step's cost no longer
includes a Python launch per operation: at small sample counts, where launches dominate, the
difference between a kernel and its graph is what launch overhead costs.
"""

from gdbench.protocol import FUSED

GRAPH_BACKENDS = ("torch", "triton")


class CudaGraphStep:
    """Wraps a prepared-on-demand kernel; ``prepare`` captures its step, ``step`` replays it."""

    phases = FUSED

    def __init__(self, inner):
        if inner.device != "cuda" or inner.backend not in GRAPH_BACKENDS:
            raise ValueError(f"a CUDA graph needs a torch or triton kernel on cuda, not "
                             f"{inner.name} ({inner.backend}) on {inner.device}")
        self.inner = inner
        self.name = f"{inner.name}+graph"
        self.backend, self.device, self.dtype = inner.backend, inner.device, inner.dtype
        self.passes = inner.passes

    def prepare(self, x, y, *, w0=0.0, lr: float = 0.01) -> None:
        import torch

        inner = self.inner
        inner.prepare(x, y, w0=w0, lr=lr)
        # Warm up on a side stream, as torch.cuda.graphs asks: lazy initialization (cuBLAS
        # handles, autograd buffers, compilation) must not happen during capture.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                inner.step()
        torch.cuda.current_stream().wait_stream(side)
        inner.prepare(x, y, w0=w0, lr=lr)  # back to w0: capturing records the step, runs nothing
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            inner.step()

    def step(self) -> None:
        self.graph.replay()

    def synchronize(self) -> None:
        self.inner.synchronize()

    def forward(self) -> None:
        raise TypeError(f"{self.name} replays whole steps: it has no separate phases")

    backward = update = forward

    @property
    def weight(self):
        return self.inner.weight

    @property
    def loss(self):
        return self.inner.loss

    @property
    def grad(self):
        return self.inner.grad
