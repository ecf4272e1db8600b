"""The clocks a step is timed with: CUDA events on the kernel's own stream, or the host clock
between phases (``HostTimer``, which lives with the sampling loop in ``timing`` so that the
loop needs nothing else), the cache flush of cold mode, and a synchronized clock for
pytest-benchmark."""

from __future__ import annotations

import time

import numpy as np

from gdbench.core.devices import cuda_unavailable, is_cuda
from gdbench.measure.timing import HostTimer

EVENT_BACKENDS = ("torch", "triton", "cupy")  # whose CUDA work CUDA events on their stream time


class CudaTimer:
    """Phases timed with CUDA events of the kernel's backend (CuPy's or torch's)."""

    asynchronous = True  # steps are queued: a batch needs enough of them to be steady
    lead_steps = 1  # the untimed step each batch is queued behind

    def __init__(self, backend: str, n_phases: int):
        if backend == "cupy":
            import cupy

            self.events = [cupy.cuda.Event() for _ in range(n_phases + 1)]
            self.elapsed_ms = cupy.cuda.get_elapsed_time
        else:
            import torch

            self.events = [torch.cuda.Event(enable_timing=True) for _ in range(n_phases + 1)]
            self.elapsed_ms = lambda a, b: a.elapsed_time(b)

    def sample(self, calls) -> tuple[list[float], list[float]]:
        clock = time.perf_counter_ns
        events = self.events
        host = [clock()]
        events[0].record()
        for call, event in zip(calls, events[1:]):
            call()
            event.record()
            host.append(clock())
        events[-1].synchronize()
        device = [self.elapsed_ms(a, b) * 1e-3 for a, b in zip(events, events[1:])]
        return device, [(b - a) * 1e-9 for a, b in zip(host, host[1:])]

    def batch(self, step, k: int) -> tuple[float, float]:
        """Device seconds between events around ``k`` back-to-back steps, and host seconds.

        An untimed step goes first: the start event waits behind it in the queue, so the
        first timed step is launched while the device is busy, as every later one is.
        """
        start, end = self.events[0], self.events[-1]
        clock = time.perf_counter_ns
        step()
        t0 = clock()
        start.record()
        for _ in range(k):
            step()
        end.record()
        host = (clock() - t0) * 1e-9
        end.synchronize()
        return self.elapsed_ms(start, end) * 1e-3, host


def make_timer(kernel):
    if is_cuda(kernel.device) and kernel.backend in EVENT_BACKENDS:
        return CudaTimer(kernel.backend, len(kernel.phases))
    return HostTimer(kernel.synchronize)


def cache_flush(device: str, nbytes: int):
    """A function that evicts the caches by writing ``nbytes`` (more than the largest cache).

    triton.testing.do_bench flushes L2 the same way before each timed call on CUDA.
    """
    if is_cuda(device):

        if cuda_unavailable("torch") is None:
            import torch

            buffer = torch.empty(nbytes // 4, dtype=torch.int32, device="cuda")
            return buffer.zero_
        import cupy

        buffer = cupy.empty(nbytes // 4, dtype=cupy.int32)
        return lambda: buffer.fill(0)
    buffer = np.empty(nbytes // 8)

    def flush():
        buffer.fill(0.0)

    return flush


def device_synchronize(device: str):
    """A function that waits for all work on ``device`` (cudaDeviceSynchronize on cuda)."""
    if not is_cuda(device):
        return lambda: None

    if cuda_unavailable("torch") is None:
        import torch

        return torch.cuda.synchronize
    import cupy

    return lambda: cupy.cuda.Device().synchronize()


class SynchronizedClock:
    """``time.perf_counter`` that first waits for the device: a timer for pytest-benchmark.

    pytest-benchmark reads its timer once before and once after a round of calls; with this
    clock each round includes all device work its calls launched, at one synchronization per
    round rather than one per call.
    """

    def __init__(self, device: str):
        self.device = device
        self._synchronize = None
        self.kernel = None  # the kernel being timed, whose own synchronize is waited for too
        self.__name__ = f"SynchronizedClock({device!r})"

    def __call__(self) -> float:
        if self._synchronize is None:
            self._synchronize = device_synchronize(self.device)
        self._synchronize()
        if self.kernel is not None:  # JAX, whose work neither CUDA nor the CPU waits for
            self.kernel.synchronize()
        return time.perf_counter()
