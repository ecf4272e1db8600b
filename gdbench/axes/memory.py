"""Peak memory of a step, measured with each backend's own accounting: the axis read once a
case, not around its windows (``MemoryHook``, ``reads = "case"``).

A case's memory is measured once, after it is verified and before it is timed, on a fresh
``prepare``: its first and second step each give the most they had allocated at once above
what was allocated when they began (``peak``) and what they left allocated (``net``). The
case's figure is ``max(first.peak, first.net + second.peak)``: the most that steps have
allocated at once beyond the prepared kernel (x, y, w and the buffers made once in prepare),
that is temporaries, what one phase keeps for the next (the residual, autograd's saved tensors
and gradient) and compiled code's buffers; ``first.net`` is what a step holds between steps.

The accounting of each backend:

- torch and Triton on CUDA: the caching allocator's statistics (``memory_allocated`` before,
  ``max_memory_allocated`` after ``reset_peak_memory_stats``).
- torch on the CPU (Triton's interpreter included): the profiler's memory events
  (``profile_memory=True``), each allocation and free of torch's allocator in the order they
  happened; the peak of their running sum. The interpreter's own NumPy arrays are not the
  kernel's and are not counted.
- NumPy: tracemalloc, which NumPy tells of every array's data.
- CuPy: a ``cupy.cuda.MemoryHook`` adding up the bytes its memory pool hands out and takes back.
- Numba: its runtime counts allocations but not their sizes: not measured, with the count.
- JAX: not measured; its device statistics have no peak that can be reset for one step.

The byte model's counterpart is ``writes``: the arrays of N elements a kernel's model says a
step writes (D = 1). Were none freed before the step ended, that would be its peak.
"""

from __future__ import annotations

import os
import sys
import tempfile
import tracemalloc
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from gdbench.core.devices import is_cuda
from gdbench.core.dtypes import ITEMSIZE
from gdbench.core.units import format_bytes, format_size


@contextmanager
def without_lines(noise: tuple[str, ...]):
    """What is written to stderr (file descriptor 2, where C++ libraries log) inside the block,
    less the lines containing any of ``noise``, written out after it."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines(keepends=True):
                if not any(text in line for text in noise):
                    sys.stderr.write(line)


@dataclass(frozen=True)
class StepMemory:
    peak: int  # the most allocated at once above the allocation at the step's start, bytes
    net: int  # allocated at the step's end above its start


class NotMeasured(Exception):
    """This backend's accounting cannot give the figure; the message says why."""


class PoolCounter:
    """Running total and peak of what a memory pool hands out (malloc) and takes back (free),
    as CuPy's memory hooks report them."""
    name = "gdbench-pool-counter"

    def __init__(self):
        self.current = self.peak = 0

    def malloc_postprocess(self, **kwargs):
        self.current += kwargs["mem_size"]
        self.peak = max(self.peak, self.current)

    def free_postprocess(self, **kwargs):
        self.current -= kwargs["mem_size"]


class Accounting(ABC):
    """One backend's accounting, entered around the steps it measures."""
    method = ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @abstractmethod
    def measure(self, step) -> StepMemory:
        """Run ``step`` and say what it allocated: at its peak, and still held after it."""


class TorchCuda(Accounting):
    method = "torch.cuda memory statistics"

    def __init__(self):
        import torch

        self.cuda = torch.cuda

    def measure(self, step):
        self.cuda.synchronize()
        start = self.cuda.memory_allocated()
        self.cuda.reset_peak_memory_stats()
        step()
        self.cuda.synchronize()
        return StepMemory(self.cuda.max_memory_allocated() - start,
                          self.cuda.memory_allocated() - start)


class TorchProfiler(Accounting):
    method = "torch profiler memory events"
    # What the profiler says on stderr about itself: kineto's start and stop, and that frees of
    # blocks made before it started are not events (they are not the step's to count).
    NOISE = ("profiler_start", "profiler_stop", "allocated before the profiling started")

    def measure(self, step):
        os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # above its start and stop lines' level
        # the autograd profiler under torch.profiler.profile, which would first look up
        # torch._inductor and so import the compiler (3 s, in every run that measures memory)
        from torch.autograd.profiler import profile

        with without_lines(self.NOISE), profile(profile_memory=True, use_cpu=True) as prof:
            step()
        events = sorted((e for e in prof.kineto_results.events()
                         if e.name() == "[memory]"), key=lambda e: e.start_ns())
        running = peak = 0
        for event in events:
            running += event.nbytes()
            peak = max(peak, running)
        return StepMemory(peak, running)


class Tracemalloc(Accounting):
    method = "tracemalloc"

    def __enter__(self):
        self.tracemalloc = tracemalloc
        self.started = not tracemalloc.is_tracing()
        if self.started:
            tracemalloc.start()
        return self

    def __exit__(self, *exc):
        if self.started:
            self.tracemalloc.stop()
        return False

    def measure(self, step):
        start = self.tracemalloc.get_traced_memory()[0]
        self.tracemalloc.reset_peak()
        step()
        current, peak = self.tracemalloc.get_traced_memory()
        return StepMemory(peak - start, current - start)


class CupyPool(Accounting):
    method = "CuPy memory hook"

    def __enter__(self):
        import cupy

        hook_class = type("Counter", (PoolCounter, cupy.cuda.MemoryHook), {})
        self.counter = hook_class()
        self.counter.__enter__()
        return self

    def __exit__(self, *exc):
        self.counter.__exit__(*exc)
        return False

    def measure(self, step):
        import cupy

        cupy.cuda.Device().synchronize()
        self.counter.current = self.counter.peak = 0
        step()
        cupy.cuda.Device().synchronize()
        return StepMemory(self.counter.peak, self.counter.current)


class NumbaRuntime(Accounting):
    method = "Numba runtime allocation count"

    def __enter__(self):
        from numba.core.runtime import _nrt_python, rtsys

        _nrt_python.memsys_enable_stats()
        self.rtsys = rtsys
        return self

    def measure(self, step):
        before = self.rtsys.get_allocation_stats().alloc
        step()
        made = self.rtsys.get_allocation_stats().alloc - before
        if made:
            raise NotMeasured(f"Numba's runtime counts {made} allocations in a step but not "
                              "their sizes")
        return StepMemory(0, 0)


def accounting(kernel) -> Accounting:
    """The accounting for ``kernel``'s backend and device; NotMeasured where there is none."""
    backend = getattr(kernel, "backend", "")
    if backend in ("torch", "triton"):
        return TorchCuda() if is_cuda(kernel.device) else TorchProfiler()
    if backend == "numpy":
        return Tracemalloc()
    if backend == "cupy":
        return CupyPool()
    if backend == "numba":
        return NumbaRuntime()
    if backend == "jax":
        raise NotMeasured("JAX's allocator statistics (memory_stats) exist only on accelerators "
                          "and keep a peak that cannot be reset between steps")
    raise NotMeasured(f"no memory accounting for backend {backend!r}")


def measure_memory(kernel, prepare) -> dict:
    """A verified kernel's step memory; ``prepare()`` prepares it afresh on its problem.

    ``{"method", "peak_bytes", "held_bytes", "first_step", "second_step"}``, or
    ``{"method", "not_measured"}`` with the reason.
    """
    try:
        account = accounting(kernel)
    except NotMeasured as why:
        return {"method": None, "not_measured": str(why)}

    def step():
        kernel.step()
        kernel.synchronize()

    try:
        prepare()
        kernel.synchronize()
        with account:
            first = account.measure(step)
            second = account.measure(step)
    except NotMeasured as why:
        return {"method": account.method, "not_measured": str(why)}
    except Exception as exc:  # out of memory preparing again, say: the case is timed all the same
        return {"method": account.method,
                "not_measured": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    return {"method": account.method, "peak_bytes": max(first.peak, first.net + second.peak),
            "held_bytes": first.net, "first_step": asdict(first), "second_step": asdict(second)}


class MemoryHook:
    """Step memory as a measured axis (``gdbench.axes``), read once a case: after the case is
    verified and before its first window, on a fresh ``prepare``; in the case's ``memory``."""

    field = "memory"
    reads = "case"

    @classmethod
    def open(cls, device: str) -> MemoryHook:
        return cls()  # a backend without accounting is recorded as not measured, and why

    @staticmethod
    def case(kernel, prepare) -> dict:
        """The case's reading: ``measure_memory``'s figures."""
        return measure_memory(kernel, prepare)

    @staticmethod
    def join(values: list, windows: list) -> dict | None:
        """One value from several processes' (None: read nothing there): every worker measures
        a case's memory alike, on the same problem, so the first that has one."""
        return next((v for v in values if v is not None), None)

    @staticmethod
    def derived(case) -> dict:
        return {}

    @staticmethod
    def detail(case) -> list[str]:
        """``mem 3×N (model 3)``: a step's peak memory in arrays of N, and the byte model's."""
        if case.memory_peak is None:
            return []
        text = f"mem {format_arrays(memory_arrays(case, case.memory_peak))}×N"
        if case.writes is not None:
            text += f" (model {case.writes:g})"
        return [text]

    @staticmethod
    def table(cases) -> list[str]:
        """Each kernel's step memory at the largest size it was measured at, against the
        model."""
        largest = {}
        for c in cases:
            if c.memory is not None:
                largest[c.spec.name] = c
        if not largest:
            return []
        lines = ["Memory a step allocates beyond x, y and w, measured by each backend's "
                 "accounting on a fresh prepare, against the byte model's arrays written per "
                 "step:", "",
                 "| kernel | N | peak | arrays of N | model | held between steps | accounting |",
                 "|---|---:|---:|---:|---:|---:|---|"]
        for name, c in largest.items():
            m, model = c.memory, "" if c.writes is None else f"{c.writes:g}"
            if c.memory_peak is None:
                lines.append(f"| {name} | {format_size(c.spec.n_samples)} | | | {model} | | "
                             f"not measured: {m.get('not_measured')} |")
                continue
            lines.append(f"| {name} | {format_size(c.spec.n_samples)} | "
                         f"{format_bytes(c.memory_peak)} | "
                         f"{format_arrays(memory_arrays(c, c.memory_peak))} | {model} | "
                         f"{format_bytes(m['held_bytes'])} | {m['method']} |")
        return lines + [""]

    @staticmethod
    def notes(cases) -> list[str]:
        return []


def memory_arrays(case, nbytes: int) -> float:
    """``nbytes`` in arrays of the case's N samples in its dtype."""
    return nbytes / (case.spec.n_samples * ITEMSIZE[case.spec.dtype])


def format_arrays(a: float) -> str:
    return f"{a:.2g}" if a == 0 or a >= 0.01 else "<0.01"
