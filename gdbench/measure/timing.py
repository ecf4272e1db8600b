"""Timing one kernel's steps: per-phase latency samples, and batches of back-to-back steps.

CPU: ``time.perf_counter_ns`` (monotonic) read between the phases, each after the kernel's own
``synchronize``: a no-op for NumPy, Numba and torch on the CPU, but JAX dispatches its CPU work
asynchronously and a phase is done only once its results are ready. Every kernel is waited for,
not only those known to be asynchronous, so that a plugin's is too; for the others the wait is
a method call that returns at once (about 25 ns against numba-fused's 2.15 µs step at 10², 1%).
The same host timer times kernels on CUDA whose backend records no events on the stream they
launch on (JAX).
CUDA: an event recorded before the step and after each phase, on the stream the kernel launches
on; the step itself never waits for the device. The one synchronization per sample comes after
the last event, so each sample holds all device work the step launched. The host clock read
between the phases gives the launch (host) time beside the device time.

A latency sample starts on an idle device, so on a GPU at small sizes it includes the time to
launch the step from Python. A batch (nvbench's "batch" measurement) runs K steps back to back
between two clock reads or two events, K chosen so that a batch lasts about a millisecond:
launches overlap the device work of the steps before them, and the batch time over K is the
steady-state time per step, the throughput.

A case is timed in several windows spread over the run (``sample_window`` once per window;
``Samples.concat`` joins them), so that its spread between windows can be seen. In cold mode a
flush of the caches runs before each latency sample, outside the timed region, and no batches
are taken: back-to-back steps are warm by nature.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from gdbench.measure.stats import Summary, relative_precision


@dataclass(frozen=True, eq=False)
class Samples:
    """Per-phase timing samples in seconds: ``device`` (wall time on the CPU), ``host`` on CUDA."""

    phases: tuple[str, ...]
    device: np.ndarray  # (samples, phases)
    host: np.ndarray | None = None  # (samples, phases); None where host and device are one clock
    batch: np.ndarray | None = None  # time per step of each batch of back-to-back steps
    batch_size: int = 0  # steps per batch
    batch_host: np.ndarray | None = None  # host (launch) time per step of each batch, on CUDA
    window: np.ndarray | None = None  # the window each latency sample was taken in
    batch_window: np.ndarray | None = None  # the window of each batch

    def step(self, clock: str = "device") -> np.ndarray:
        """Whole-step samples: the sum of the phases of each sample."""
        return getattr(self, clock).sum(axis=1)

    def phase(self, name: str, clock: str = "device") -> np.ndarray:
        if name == "step":
            return self.step(clock)
        return getattr(self, clock)[:, self.phases.index(name)]

    def summary(self, name: str = "step", clock: str = "device") -> Summary:
        return Summary.of(self.phase(name, clock), self.window)

    def throughput(self, clock: str = "device") -> Summary | None:
        """Time per step in batches of back-to-back steps; None when no batch was measured."""
        values = self.batch if clock == "device" else self.batch_host
        if values is None or len(values) == 0:
            return None
        return Summary.of(values, self.batch_window)

    @property
    def windows(self) -> int:
        return 1 if self.window is None else len(np.unique(self.window))

    @classmethod
    def concat(cls, parts: list[Samples]) -> Samples:
        """One window per part, in order: the samples of ``parts[k]`` make window k."""
        def stack(field, rows=False):
            arrays = [getattr(p, field) for p in parts]
            if any(a is None for a in arrays):
                return None
            return np.concatenate(arrays) if not rows else np.vstack(arrays)

        first = parts[0]
        window = np.concatenate([np.full(len(p.device), k) for k, p in enumerate(parts)])
        batch_window = None
        if all(p.batch is not None for p in parts):
            batch_window = np.concatenate([np.full(len(p.batch), k) for k, p in enumerate(parts)])
        return cls(first.phases, stack("device", True), stack("host", True), stack("batch"),
                   first.batch_size, stack("batch_host"), window, batch_window)

    @classmethod
    def join(cls, parts: list[Samples]) -> Samples:
        """Samples of several runs of the same case, each keeping its windows, one after another."""
        pieces = []
        for p in parts:
            window = p.window if p.window is not None else np.zeros(len(p.device), int)
            batch_window = p.batch_window
            if p.batch is not None and batch_window is None:
                batch_window = np.zeros(len(p.batch), int)
            ids = np.unique(window)
            for k in ids:
                host = None if p.host is None else p.host[window == k]
                batch = batch_host = None
                if p.batch is not None:
                    batch = p.batch[batch_window == k]
                    batch_host = None if p.batch_host is None else p.batch_host[batch_window == k]
                pieces.append(cls(p.phases, p.device[window == k], host, batch, p.batch_size,
                                  batch_host))
        return cls.concat(pieces)


def _calls(kernel) -> list:
    return [getattr(kernel, phase) for phase in kernel.phases]


class HostTimer:
    """Phases timed with the monotonic nanosecond clock, each read after ``synchronize``."""

    def __init__(self, synchronize):
        self.synchronize = synchronize

    def sample(self, calls) -> tuple[list[float], None]:
        clock, sync = time.perf_counter_ns, self.synchronize
        marks = [clock()]
        for call in calls:
            call()
            sync()
            marks.append(clock())
        return [(b - a) * 1e-9 for a, b in zip(marks, marks[1:])], None

    def batch(self, step, k: int) -> tuple[float, None]:
        """Seconds taken by ``k`` back-to-back calls of ``step``, and the wait for them."""
        clock = time.perf_counter_ns
        start = clock()
        for _ in range(k):
            step()
        self.synchronize()
        return (clock() - start) * 1e-9, None


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

    def batch(self, step, k: int) -> tuple[float, float]:
        """Device seconds between events around ``k`` back-to-back steps, and host seconds."""
        start, end = self.events[0], self.events[-1]
        clock = time.perf_counter_ns
        t0 = clock()
        start.record()
        for _ in range(k):
            step()
        end.record()
        host = (clock() - t0) * 1e-9
        end.synchronize()
        return self.elapsed_ms(start, end) * 1e-3, host


EVENT_BACKENDS = ("torch", "triton", "cupy")  # whose CUDA work CUDA events on their stream time


def make_timer(kernel):
    if kernel.device == "cuda" and kernel.backend in EVENT_BACKENDS:
        return CudaTimer(kernel.backend, len(kernel.phases))
    return HostTimer(kernel.synchronize)


@dataclass(frozen=True)
class StopRule:
    """When to stop sampling a case: the median known to ``precision``, or ``budget`` spent.

    Batches get half the budget, and each lasts about ``batch_seconds``. Warm-up runs until
    two consecutive groups of steps agree within ``settle`` or ``warmup`` seconds have passed.
    """

    precision: float = 0.01
    budget: float = 0.5  # seconds of latency sampling per case, shared by its windows
    min_samples: int = 3  # per window
    max_samples: int = 10_000
    batch_seconds: float = 1e-3
    max_batch_size: int = 100_000
    warmup: float = 0.25  # longest warm-up, seconds
    settle: float = 0.05


@dataclass(frozen=True)
class WarmUp:
    """What the warm-up did: steps run, seconds spent, and whether the step time settled."""

    steps: int
    seconds: float
    settled: bool


def warm_up(kernel, rule: StopRule = StopRule(), group_seconds: float = 2e-3) -> WarmUp:
    """Untimed steps in groups until the time per step of two groups in a row agree.

    Caches, allocators, clocks and lazily compiled code settle in the first steps; a fixed
    count of steps would be too few for some kernels and a waste for others.
    """
    clock = time.perf_counter
    start = clock()
    steps, previous, settled = 0, None, False
    while True:
        group_start, n = clock(), 0
        while n < 3 or clock() - group_start < group_seconds:
            kernel.step()
            n += 1
        kernel.synchronize()  # the group's device work belongs to its time
        per_step = (clock() - group_start) / n
        steps += n
        if previous is not None and abs(per_step - previous) <= rule.settle * previous:
            settled = True
            break
        previous = per_step
        if clock() - start >= rule.warmup:
            break
    return WarmUp(steps, clock() - start, settled)


def _sampling_done(values, start: float, budget: float, rule: StopRule, next_check: int):
    """(stop now, next count at which to check the precision)."""
    n = len(values)
    if n >= rule.max_samples:
        return True, next_check
    if n >= rule.min_samples:
        if time.perf_counter() - start >= budget:
            return True, next_check
        if n >= next_check:  # checking costs a sort: do it at geometrically spaced counts
            if relative_precision(values) <= rule.precision:
                return True, next_check
            return False, int(n * 1.25) + 1
    return False, next_check


def rewarm(kernel, seconds: float = 1e-3) -> None:
    """Untimed steps for ``seconds`` (at least one): a window after the first starts warm."""
    end = time.perf_counter() + seconds
    kernel.step()
    while time.perf_counter() < end:
        kernel.step()
    kernel.synchronize()


def sample(kernel, rule: StopRule = StopRule(), batches: bool = False) -> Samples:
    """One window of a prepared, warmed-up kernel, with the whole budget."""
    return sample_window(kernel, rule, rule.budget, batches)[0]


def sample_window(kernel, rule: StopRule, budget: float, batches: bool = False,
                  batch_size: int | None = None, flush=None) -> tuple[Samples, int]:
    """(samples, K): latency samples until ``rule`` says stop or ``budget`` is spent, then
    batches of K back-to-back steps (K from ``batch_size``, or chosen now) for half as long.

    ``flush``, when given, runs before every latency sample and is not timed.
    """
    timer = make_timer(kernel)
    calls = _calls(kernel)
    device, host, steps = [], [], []
    start = time.perf_counter()
    next_check = rule.min_samples
    kernel.synchronize()
    while True:
        if flush is not None:
            flush()
            kernel.synchronize()
        d, h = timer.sample(calls)
        device.append(d)
        host.append(h)
        steps.append(sum(d))
        done, next_check = _sampling_done(steps, start, budget, rule, next_check)
        if done:
            break
    host_array = None if host[0] is None else np.array(host)
    samples = Samples(tuple(kernel.phases), np.array(device), host_array)
    if not batches:
        return samples, 0
    size, per_step, host_per_step = measure_batches(kernel, timer, rule, float(np.median(steps)),
                                                    budget / 2, batch_size)
    return Samples(samples.phases, samples.device, samples.host, per_step, size,
                   host_per_step), size


def measure_batches(kernel, timer, rule: StopRule, step_estimate: float, budget: float,
                    k: int | None = None):
    """(K, time per step of each batch, host time per step or None): batches of K steps.

    Without ``k``, K is chosen so that a batch lasts about ``rule.batch_seconds``.
    """
    step = kernel.step
    kernel.synchronize()
    if k is None:
        k = int(min(rule.max_batch_size, max(1, math.ceil(rule.batch_seconds / step_estimate))))
        for _ in range(4):  # a latency sample overstates a GPU step: grow K until long enough
            elapsed, _ = timer.batch(step, k)
            if elapsed >= 0.5 * rule.batch_seconds or k >= rule.max_batch_size:
                break
            k = int(min(rule.max_batch_size,
                        math.ceil(k * rule.batch_seconds / max(elapsed, 1e-9))))
    device, host = [], []
    start = time.perf_counter()
    next_check = rule.min_samples
    while True:
        d, h = timer.batch(step, k)
        device.append(d / k)
        host.append(None if h is None else h / k)
        done, next_check = _sampling_done(device, start, budget, rule, next_check)
        if done:
            break
    return k, np.array(device), None if host[0] is None else np.array(host)


def cache_flush(device: str, nbytes: int):
    """A function that evicts the caches by writing ``nbytes`` (more than the largest cache).

    triton.testing.do_bench flushes L2 the same way before each timed call on CUDA.
    """
    if device == "cuda":
        from gdbench.devices import cuda_unavailable

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
        self.kernel = None  # the kernel being timed, whose own synchronize is waited for too
        self.__name__ = f"SynchronizedClock({device!r})"

    def __call__(self) -> float:
        if self._synchronize is None:
            self._synchronize = device_synchronize(self.device)
        self._synchronize()
        if self.kernel is not None:  # JAX, whose work neither CUDA nor the CPU waits for
            self.kernel.synchronize()
        return time.perf_counter()
