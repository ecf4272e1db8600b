"""A kernel's step captured in a CUDA graph and replayed.

Replaying a graph launches every kernel of the step with one call, so the step's cost no longer
includes a Python launch per operation: at small sample counts, where launches dominate, the
difference between a kernel and its graph is what launch overhead costs.

torch and Triton kernels are captured with ``torch.cuda.graph`` (whose private memory pool
serves the step's allocations), CuPy kernels with CuPy's stream capture. A kernel says whether
its step can be captured with the class attribute ``cuda_graph``: cupy-manual cannot, since
CuPy's memory pool is not made for allocations during a capture.
"""

from gdbench.core.devices import is_cuda
from gdbench.core.protocol import FUSED
from gdbench.kernels.base import Wrapper


def capturable(kernel) -> bool:
    return is_cuda(kernel.device) and bool(getattr(kernel, "cuda_graph", False))


def torch_graph(record, warm_up, reset):
    """A ``torch.cuda.CUDAGraph`` of what ``record`` launches. ``warm_up`` runs first on a side
    stream, as torch.cuda.graphs asks: lazy initialization (cuBLAS handles, autograd buffers,
    compilation) must not happen during capture; ``reset`` then undoes what it changed, since
    capturing records the launches and runs none."""
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        warm_up()
    torch.cuda.current_stream().wait_stream(side)
    reset()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        record()
    return graph


class CudaGraphStep(Wrapper):
    """Wraps a kernel; ``prepare`` captures its step, ``step`` replays it."""

    phases = FUSED

    def __init__(self, inner):
        if not capturable(inner):
            raise ValueError(f"{inner.name} ({inner.backend}) on {inner.device} cannot be "
                             "captured in a CUDA graph")
        self.inner = inner
        self.name = f"{inner.name}+graph"
        self.backend, self.device, self.dtype = inner.backend, inner.device, inner.dtype

    def prepare(self, x, y, *, w0=0.0, lr: float = 0.01) -> None:
        inner = self.inner
        inner.prepare(x, y, w0=w0, lr=lr)
        capture = self._capture_cupy if inner.backend == "cupy" else self._capture_torch
        capture(lambda: inner.prepare(x, y, w0=w0, lr=lr))

    def _capture_torch(self, reset) -> None:
        inner = self.inner
        self.graph = torch_graph(inner.step, lambda: [inner.step() for _ in range(3)], reset)
        self.replay = self.graph.replay

    def _capture_cupy(self, reset) -> None:
        import cupy

        inner = self.inner
        for _ in range(3):  # compile and allocate before capturing
            inner.step()
        reset()
        inner.synchronize()
        stream = cupy.cuda.Stream(non_blocking=True)
        with stream:
            stream.begin_capture()
            inner.step()
            self.graph = stream.end_capture()
        self.replay = self.graph.launch  # on the current stream, where the timer's events are

    def step(self) -> None:
        self.replay()

    def forward(self) -> None:
        raise TypeError(f"{self.name} replays whole steps: it has no separate phases")

    backward = update = forward
