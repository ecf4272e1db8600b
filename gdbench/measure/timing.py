"""The one sampling loop: a window of one kernel's steps, per-phase latency samples and batches
of back-to-back steps, for ``run``, ``ab``'s workers and the ranks of a data-parallel run.

What differs between them is the stop rule (``StopRule``):

- precision (``run``): latency samples until the median is known to ``precision`` or the
  window's share of the budget is spent, after ``min_samples``; batches for half as long;
- time (``ab``'s workers, ``precision=None``): the whole share, then batches for as long
  (``batch_share=1``), whole steps timed, since a slowed side is slowed in its step;
- count (the ranks, ``count`` and ``batches``): exactly as many samples and batches as rank 0
  decided, so that every rank steps in lockstep through its collectives.

This file imports NumPy alone at its top (the precision stop imports gdbench's statistics
when it is used), so that ``ab``'s worker loads it by path whatever gdbench the side runs.

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
between two clock reads or two events, K chosen so that a batch lasts about 10 ms (less where
the budget of a window cannot hold three such batches), and on CUDA at least 10 steps:
launches overlap the device work of the steps before them, and the batch time over K is the
steady-state time per step, the throughput. On CUDA an untimed step is launched just before
each batch's first event, so that the batch's first step does not start from an idle device.

A case is timed in several windows spread over the run (``take_window`` once per window;
``Samples.concat`` joins them), so that its spread between windows can be seen. In cold mode a
flush of the caches runs before each latency sample, outside the timed region, and no batches
are taken: back-to-back steps are warm by nature.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StopRule:
    """When to stop sampling a window: the median known to ``precision`` (None: never), or
    ``budget`` spent, or ``count`` samples taken (then ``batches`` batches).

    Batches get ``batch_share`` of the window's budget, and each lasts about
    ``batch_seconds``, with at least ``min_batch_steps`` steps where the device runs them
    asynchronously (CUDA). Warm-up runs until two consecutive groups of steps agree within
    ``settle`` or ``warmup`` seconds have passed.
    """

    precision: float | None = 0.01
    budget: float = 0.5  # seconds of latency sampling per case, shared by its windows
    min_samples: int = 3  # latency samples a window, at least
    min_batches: int = 3  # batches a window, at least
    max_samples: int = 10_000
    batch_seconds: float = 10e-3
    min_batch_steps: int = 10
    max_batch_size: int = 100_000
    warmup: float = 0.25  # longest warm-up, seconds
    settle: float = 0.05
    batch_share: float = 0.5  # batches run this share of the window's budget
    count: int | None = None  # exactly this many latency samples a window (ranks)
    batches: int | None = None  # and exactly this many batches

    @classmethod
    def for_budget(cls, precision: float, budget: float, windows: int = 1) -> StopRule:
        """The rule for ``budget`` seconds per case over ``windows``: batches of 10 ms where
        the budget holds three per window, shorter (1 ms at least) where it does not."""
        per_window = budget / windows / 2 / cls.min_samples
        return cls(precision=precision, budget=budget,
                   batch_seconds=min(cls.batch_seconds, max(1e-3, per_window)))


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


def _sampling_done(values, start: float, budget: float, rule: StopRule, next_check: int,
                   count: int | None = None, fewest: int | None = None):
    """(stop now, next count at which to check the precision); at least ``fewest`` values
    (``rule.min_samples``)."""
    n = len(values)
    if count is not None:
        return n >= count, next_check
    if n >= rule.max_samples:
        return True, next_check
    if n >= (rule.min_samples if fewest is None else fewest):
        if time.perf_counter() - start >= budget:
            return True, next_check
        if rule.precision is not None and n >= next_check:  # checking costs a sort: do it
            from gdbench.records.stats import relative_precision  # at geometric counts

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


class HostTimer:
    """Phases timed with the monotonic nanosecond clock, each read after ``synchronize``."""

    asynchronous = False  # a batch's clock reads bracket all its work
    lead_steps = 0

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


@dataclass(frozen=True, eq=False)
class Window:
    """What one window measured: latency samples (samples, phases), on the device clock and,
    where it differs, the host's; the batches' time per step; K; and every step it ran."""

    phases: tuple[str, ...]
    device: np.ndarray
    host: np.ndarray | None
    batch: np.ndarray | None = None
    batch_size: int = 0
    batch_host: np.ndarray | None = None
    steps: int = 0


def take_window(kernel, timer, rule: StopRule, budget: float, batches: bool = False,
                batch_size: int | None = None, flush=None, whole_step: bool = False) -> Window:
    """One window of a prepared, warmed-up kernel: latency samples until ``rule`` says stop
    or ``budget`` is spent, then batches of K back-to-back steps (K from ``batch_size``, or
    chosen now) for ``rule.batch_share`` of it; every step the window ran is counted, untimed
    ones included.

    ``timer``: ``HostTimer`` or a CUDA event timer (``gdbench.measure.clocks.make_timer``).
    A sample times the kernel's phases, a clock read after each, or with ``whole_step`` its
    ``step`` as one phase (``ab``: a slowed side is slowed in its step). ``flush``, when
    given, runs before every latency sample and is not timed.
    """
    phases = ("step",) if whole_step else tuple(kernel.phases)
    calls = [getattr(kernel, p) for p in phases]
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
        done, next_check = _sampling_done(steps, start, budget, rule, next_check, rule.count)
        if done:
            break
    host_array = None if host[0] is None else np.array(host)
    if not batches:
        return Window(phases, np.array(device), host_array, steps=len(steps))
    size, per_step, host_per_step, ran = measure_batches(
        kernel, timer, rule, float(np.median(steps)), budget * rule.batch_share, batch_size)
    return Window(phases, np.array(device), host_array, per_step, size, host_per_step,
                  len(steps) + ran)


def measure_batches(kernel, timer, rule: StopRule, step_estimate: float, budget: float,
                    k: int | None = None):
    """(K, time per step of each batch, host time per step or None, steps run): batches of
    K steps.

    Without ``k``, K is chosen so that a batch lasts about ``rule.batch_seconds``.
    """
    step = kernel.step
    kernel.synchronize()
    ran = 0
    if k is None:
        fewest = rule.min_batch_steps if timer.asynchronous else 1
        k = int(min(rule.max_batch_size,
                    max(fewest, math.ceil(rule.batch_seconds / step_estimate))))
        for _ in range(4):  # a latency sample overstates a GPU step: grow K until long enough
            elapsed, _ = timer.batch(step, k)
            ran += k + timer.lead_steps
            if elapsed >= 0.5 * rule.batch_seconds or k >= rule.max_batch_size:
                break
            k = int(min(rule.max_batch_size,
                        math.ceil(k * rule.batch_seconds / max(elapsed, 1e-9))))
    device, host = [], []
    start = time.perf_counter()
    next_check = rule.min_batches
    while True:
        d, h = timer.batch(step, k)
        ran += k + timer.lead_steps
        device.append(d / k)
        host.append(None if h is None else h / k)
        done, next_check = _sampling_done(device, start, budget, rule, next_check,
                                          rule.batches, rule.min_batches)
        if done:
            break
    return k, np.array(device), None if host[0] is None else np.array(host), ran


