"""Timing one kernel's steps: per-phase samples, on the CPU clock or on CUDA events.

CPU: ``time.perf_counter_ns`` (monotonic) read between the phases.
CUDA: an event recorded before the step and after each phase, on the stream the kernel launches
on; the step itself never waits for the device. The one synchronization per sample comes after
the last event, so each sample holds all device work the step launched. The host clock read
between the phases gives the launch (host) time beside the device time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from gdbench.stats import Summary, relative_precision


@dataclass(frozen=True, eq=False)
class Samples:
    """Per-phase timing samples in seconds: ``device`` (wall time on the CPU), ``host`` on CUDA."""

    phases: tuple[str, ...]
    device: np.ndarray  # (samples, phases)
    host: np.ndarray | None = None  # (samples, phases); None where host and device are one clock

    def step(self, clock: str = "device") -> np.ndarray:
        """Whole-step samples: the sum of the phases of each sample."""
        return getattr(self, clock).sum(axis=1)

    def phase(self, name: str, clock: str = "device") -> np.ndarray:
        if name == "step":
            return self.step(clock)
        return getattr(self, clock)[:, self.phases.index(name)]

    def summary(self, name: str = "step", clock: str = "device") -> Summary:
        return Summary.of(self.phase(name, clock))


def _calls(kernel) -> list:
    return [getattr(kernel, phase) for phase in kernel.phases]


class CpuTimer:
    """Phases timed with the monotonic nanosecond clock."""

    def sample(self, calls) -> tuple[list[float], None]:
        clock = time.perf_counter_ns
        marks = [clock()]
        for call in calls:
            call()
            marks.append(clock())
        return [(b - a) * 1e-9 for a, b in zip(marks, marks[1:])], None


class CudaTimer:
    """Phases timed with CUDA events of the kernel's backend (CuPy's or torch's)."""

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


def make_timer(kernel):
    if kernel.device == "cuda":
        return CudaTimer(kernel.backend, len(kernel.phases))
    return CpuTimer()


@dataclass(frozen=True)
class StopRule:
    """When to stop sampling a case: the median known to ``precision``, or ``budget`` spent."""

    precision: float = 0.01
    budget: float = 0.5  # seconds of sampling per case
    min_samples: int = 5
    max_samples: int = 10_000


def warm_up(kernel, seconds: float = 0.05, max_steps: int = 10) -> None:
    """Untimed steps so that caches, allocators and clocks settle before sampling."""
    end = time.perf_counter() + seconds
    for _ in range(max_steps):
        kernel.step()
        kernel.synchronize()
        if time.perf_counter() > end:
            break


def sample(kernel, rule: StopRule = StopRule()) -> Samples:
    """Time steps of a prepared, warmed-up kernel until ``rule`` says stop."""
    timer = make_timer(kernel)
    calls = _calls(kernel)
    device, host = [], []
    start = time.perf_counter()
    next_check = rule.min_samples
    kernel.synchronize()
    while True:
        d, h = timer.sample(calls)
        device.append(d)
        host.append(h)
        n = len(device)
        if n >= rule.max_samples:
            break
        if n >= rule.min_samples:
            if time.perf_counter() - start >= rule.budget:
                break
            if n >= next_check:  # checking costs a sort: do it at geometrically spaced counts
                if relative_precision(np.sum(device, axis=1)) <= rule.precision:
                    break
                next_check = int(n * 1.25) + 1
    host_array = None if host[0] is None else np.array(host)
    return Samples(tuple(kernel.phases), np.array(device), host_array)


def device_synchronize(device: str):
    """A function that waits for all work on ``device`` (cudaDeviceSynchronize on cuda)."""
    if device != "cuda":
        return lambda: None
    from gdbench.devices import cuda_unavailable

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
        self.__name__ = f"SynchronizedClock({device!r})"

    def __call__(self) -> float:
        if self._synchronize is None:
            self._synchronize = device_synchronize(self.device)
        self._synchronize()
        return time.perf_counter()
