"""A case made, prepared and checked before it is timed: the one path by which the sweep
(``gdbench.measure.cases``) and every rank of a data-parallel run (``gdbench.distributed``)
prepare a kernel, time its first step, verify it against the float64 reference and read the
axes read once a case (its memory), and the ``Live`` case that comes of it, whose windows the
rounds then measure. A case that fails here is a ``CaseResult`` saying why: wrong, out of
memory, or the error it raised.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from gdbench.core.reference import check_step, compare_step, compare_steps
from gdbench.kernels import registry
from gdbench.kernels.cuda_graph import CudaGraphStep
from gdbench.kernels.many_steps import ManySteps
from gdbench.measure.threads import limit_threads, thread_counts
from gdbench.records.results import CaseResult, CaseSpec
from gdbench.records.samples import Samples


def is_oom(exc: BaseException) -> bool:
    """An allocation failure of any backend: MemoryError, CUDA's, CuPy's, torch's CPU allocator."""
    text = str(exc).lower()
    return (isinstance(exc, MemoryError) or "OutOfMemory" in type(exc).__name__
            or "out of memory" in text or "can't allocate memory" in text)


def failure(spec: CaseSpec, exc: BaseException, **fields) -> CaseResult:
    status = "oom" if is_oom(exc) else "error"
    return CaseResult(spec, status, f"{type(exc).__name__}: {exc}".splitlines()[0], **fields)


@dataclass
class Live:
    """A verified kernel and the windows measured of it so far."""

    spec: CaseSpec
    kernel: object
    fields: dict
    parts: list = field(default_factory=list)  # Samples of each window
    hooks: tuple = ()  # gdbench.axes: what is read around each window
    readings: dict = field(default_factory=dict)  # a hook's field -> its reading of each window
    batch_size: int | None = None
    problem: tuple | None = None  # (x, y, lr): to prepare a fresh instance for every window
    held: tuple = ()  # this window's copies of the data and the padding before them
    sampled: list = field(default_factory=list)  # seconds each window sampled, batches included

    def refresh(self) -> None:
        """A new instance of the kernel, prepared on fresh copies of the data and stepped once:
        where its buffers sit is drawn anew for every window, so that a layout that happens
        to favour this case is variance between windows, not a bias of the whole run. The
        copies are made behind a padding allocation of random size, while the last window's
        are still held, so they cannot take the same place."""
        x, y, lr = self.problem
        padding = np.empty(int(np.random.default_rng().integers(1, 1 << 12)) * 64, np.uint8)
        x, y = x.copy(), y.copy()
        self.kernel = None  # the old instance's device buffers go before the new ones come
        kernel = _instance(self.spec)
        kernel.prepare(x, y, w0=0.0, lr=lr)
        kernel.step()
        kernel.synchronize()
        self.kernel, self.held = kernel, (padding, x, y)

    def result(self, remeasured: bool = False) -> CaseResult:
        if not self.parts:
            return CaseResult(self.spec, "error", "interrupted before its first window",
                              **self.fields)
        fields = dict(self.fields, remeasured=remeasured)
        fields["readings"] = {**self.fields.get("readings", {}), **{
            hook.field: hook.record(self.readings[hook.field])
            for hook in self.hooks if any(self.readings.get(hook.field, []))}}
        if not math.isfinite(self.kernel.loss):
            return CaseResult(self.spec, "diverged", f"loss became {self.kernel.loss}", **fields)
        return CaseResult(self.spec, "ok", samples=Samples.concat(self.parts), **fields)


def prepare(spec: CaseSpec, x, y, reference, lr: float, fields: dict, hooks: tuple = (),
            make=None) -> Live | CaseResult:
    """Make (``make(spec)``; by default the registry's kernel, wrapped as the spec says),
    prepare and verify the case's kernel, then read the axes read once a case (``hooks``,
    ``gdbench.axes.case_hooks``: its memory); a CaseResult says why it will not be timed. The
    one path by which the sweep and the data-parallel ranks prepare and verify a case."""
    kernel = None
    fields = dict(fields)
    try:
        kernel = (make or _instance)(spec)
        requires = getattr(kernel, "requires", ())
        with limit_threads(spec.threads, requires):
            t0 = time.perf_counter()
            kernel.prepare(x, y, w0=0.0, lr=lr)
            kernel.synchronize()
            t1 = time.perf_counter()
            kernel.step()  # the first step, compilation included, is timed apart from samples
            kernel.synchronize()
            fields.update(prepare_s=t1 - t0, warmup_s=time.perf_counter() - t1)
        if spec.threads:  # as every window sets them, the pools the first step loaded too (a
            with limit_threads(spec.threads):  # BLAS Numba's compiler loads, OpenMP's count
                fields["thread_counts"] = thread_counts()  # its threading layer resets)
        # after prepare: a kernel's modelled traffic may depend on its data (float16's sums)
        fields.update(backend=kernel.backend, passes=float(kernel.passes),
                      writes=getattr(kernel, "writes", None))
        if spec.steps_per_call > 1:  # K steps against K float64 steps, then one step alone
            plan = getattr(kernel.inner, "many_steps_plan", None)
            fields["many_steps"] = (plan(spec.steps_per_call) if plan else
                                    getattr(kernel.inner, "many_steps", "a loop of steps"))
            wrong = (compare_steps(kernel, x, y, 0.0, lr, spec.steps_per_call)
                     or check_step(kernel.inner, x, y, 0.0, lr))
        else:
            wrong = compare_step(kernel, x, y, 0.0, lr, reference)
        if wrong:
            return CaseResult(spec, "wrong", wrong, **fields)
        if hooks:
            with limit_threads(spec.threads):
                fields["readings"] = {hook.field: hook.case(
                    kernel, lambda: kernel.prepare(x, y, w0=0.0, lr=lr)) for hook in hooks}
        return Live(spec, kernel, fields, problem=(x, y, lr))
    except Exception as exc:
        return failure(spec, exc, **fields)


def _instance(spec: CaseSpec):
    kernel = registry.make_kernel(spec.kernel, spec.device, spec.dtype)
    if spec.steps_per_call > 1:
        return ManySteps(kernel, spec.steps_per_call)
    return CudaGraphStep(kernel) if spec.cuda_graph else kernel


