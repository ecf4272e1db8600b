"""The sweep: every chosen kernel at every sample count, verified, then timed.

A case that fails (wrong result, out of memory, an exception, divergence) is recorded with its
status and the sweep goes on. With ``out``, the results so far are rewritten atomically after
every case, so an interrupted run leaves a valid file.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Sequence

import numpy as np

from gdbench import registry
from gdbench.devices import release_device_memory, resolve_device
from gdbench.environment import capture, cpu_cache_bytes
from gdbench.kernels.cuda_graph import CudaGraphStep, capturable
from gdbench.probe import probe as measure_roofline
from gdbench.reference import compare_step, loss_and_grad, make_problem
from gdbench.results import CaseResult, CaseSpec, RunResult, write_csv, write_json
from gdbench.telemetry import open_telemetry
from gdbench.timing import StopRule, sample, warm_up

DEFAULT_MAX_SIZE = {"cpu": 10**7, "cuda": 10**8}


def parse_sizes(text: str) -> list[int]:
    """``"1e2,1e4,1e6"`` (a list) or ``"1e2:1e8"`` (every power of ten between, inclusive)."""
    def one(token: str) -> int:
        try:
            value = float(token)
        except ValueError:
            raise ValueError(f"size {token!r} is not a number") from None
        if not math.isfinite(value) or value < 1 or value != int(value):
            raise ValueError(f"size {token!r} is not a positive whole number")
        return int(value)

    text = text.strip()
    if ":" in text:
        lo, _, hi = text.partition(":")
        lo, hi = one(lo), one(hi)
        if hi < lo:
            raise ValueError(f"size range {text!r} ends below its start")
        sizes, n = [], lo
        while n <= hi:
            sizes.append(n)
            n *= 10
        return sizes
    sizes = [one(t) for t in text.split(",") if t.strip()]
    if not sizes:
        raise ValueError("no sizes given")
    return sorted(set(sizes))


def default_sizes(device: str) -> list[int]:
    return parse_sizes(f"1e2:{DEFAULT_MAX_SIZE[device]:.0e}")


def plan(device: str, kernels: Sequence[str] | str, sizes: Sequence[int], n_features: int,
         dtype: str, cuda_graph: bool = False) -> list[CaseSpec]:
    """The cases of a sweep, sizes outermost; ValueError for anything that cannot run here.

    With ``cuda_graph``, every kernel whose step can be captured also runs with its step
    replayed from a CUDA graph, right after the same kernel without.
    """
    if cuda_graph and device != "cuda":
        raise ValueError("CUDA graphs need --device cuda")
    if n_features < 1:
        raise ValueError(f"features must be at least 1, got {n_features}")
    if kernels == "all":
        kernels = [k.name for k in registry.list_kernels(device)
                   if k.available_on(device) and dtype in k.dtypes
                   and n_features <= (k.max_features or n_features)]
        if not kernels:
            raise ValueError(f"no kernel runs on {device} in {dtype} here (see gdbench list)")
    graphable = set()
    for name in kernels:
        kernel = registry.make_kernel(name, device, dtype)  # raises ValueError with the reason
        if n_features > (getattr(kernel, "max_features", None) or n_features):
            raise ValueError(f"kernel {name} supports at most {kernel.max_features} feature(s)")
        if cuda_graph and capturable(kernel):
            graphable.add(name)
    if cuda_graph and not graphable:
        raise ValueError("--cuda-graph needs at least one kernel whose step can be captured "
                         "(see gdbench list)")
    return [CaseSpec(k, device, dtype, int(n), n_features, graph)
            for n in sizes for k in kernels
            for graph in ((False, True) if k in graphable else (False,))]


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or "OutOfMemory" in type(exc).__name__ \
        or "out of memory" in str(exc).lower()


def run_case(spec: CaseSpec, x, y, rule: StopRule, lr: float = 0.01,
             cache_bytes: int = 0, reference=None, telemetry=None) -> CaseResult:
    """Verify one case against the reference (``loss_and_grad(x, y, 0)``), then time it.

    ``telemetry`` (a ``gdbench.telemetry.Telemetry``) is read after the warm-up and after the
    last batch, while the device is still busy.
    """
    fields = {"cache_bytes": cache_bytes, "precision_target": rule.precision}
    kernel = None
    try:
        kernel = registry.make_kernel(spec.kernel, spec.device, spec.dtype)
        if spec.cuda_graph:
            kernel = CudaGraphStep(kernel)
        fields.update(backend=kernel.backend, passes=float(kernel.passes))
        t0 = time.perf_counter()
        kernel.prepare(x, y, w0=0.0, lr=lr)
        kernel.synchronize()
        t1 = time.perf_counter()
        kernel.step()  # the first step, compilation included, is timed apart from the samples
        kernel.synchronize()
        fields.update(prepare_s=t1 - t0, warmup_s=time.perf_counter() - t1)
        wrong = compare_step(kernel, x, y, 0.0, lr, reference)
        if wrong:
            return CaseResult(spec, "wrong", wrong, **fields)
        settle = warm_up(kernel, rule)
        fields.update(settle_steps=settle.steps, settled=settle.settled)
        start = telemetry.snapshot() if telemetry else None
        samples = sample(kernel, rule, batches=True)
        if telemetry:
            fields["telemetry"] = {"start": start, "end": telemetry.snapshot()}
        if not math.isfinite(kernel.loss):
            return CaseResult(spec, "diverged", f"loss became {kernel.loss}", **fields)
        return CaseResult(spec, "ok", samples=samples, **fields)
    except Exception as exc:
        status = "oom" if _is_oom(exc) else "error"
        return CaseResult(spec, status, f"{type(exc).__name__}: {exc}".splitlines()[0], **fields)
    finally:
        del kernel
        release_device_memory(spec.device)


def run(device: str = "auto", kernels: Sequence[str] | str = "all",
        sizes: Sequence[int] | None = None, n_features: int = 1, dtype: str = "float32",
        budget: float = 0.5, precision: float = 0.01, lr: float = 0.01, seed: int = 0,
        cuda_graph: bool = False, probe: bool = True, probe_bytes: int | None = None,
        out=None, csv=None,
        on_start: Callable[[CaseSpec, int, int], None] | None = None,
        on_result: Callable[[CaseResult], None] | None = None) -> RunResult:
    """Sweep ``kernels`` over ``sizes`` on ``device``; return the records, writing them to ``out``.

    ``budget`` is the sampling time of one case in seconds; sampling stops earlier once the
    median step time is known to ``precision`` (relative half-width of its 95% interval).
    With ``probe``, the device's memory bandwidth is measured first, and every case reports
    its fraction of that roofline.
    """
    device = resolve_device(device)
    if not (budget > 0 and math.isfinite(budget)):
        raise ValueError(f"budget must be a positive number of seconds, got {budget}")
    if not 0 < precision < 1:
        raise ValueError(f"precision must be between 0 and 1, got {precision}")
    sizes = default_sizes(device) if sizes is None else sorted(set(sizes))
    if not sizes or any(int(n) != n or n < 1 for n in sizes):
        raise ValueError(f"sizes must be positive whole numbers, got {sizes}")
    sizes = [int(n) for n in sizes]
    specs = plan(device, kernels, sizes, n_features, dtype, cuda_graph)
    rule = StopRule(precision=precision, budget=budget)
    settings = {"device": device, "kernels": sorted({s.kernel for s in specs}), "sizes": sizes,
                "n_features": n_features, "dtype": dtype, "budget_s": budget,
                "precision": precision, "lr": lr, "seed": seed, "cuda_graph": cuda_graph,
                "min_samples": rule.min_samples, "max_samples": rule.max_samples,
                "batch_seconds": rule.batch_seconds, "warmup_max_s": rule.warmup,
                "cache_state": "warm"}
    result = RunResult(capture(device), settings)
    cache_bytes = cpu_cache_bytes() if device == "cpu" else result.environment.get(
        "gpu", {}).get("l2_cache_bytes", 0)

    def save():
        if out is not None:
            write_json(result, out)
        if csv is not None:
            write_csv(result, csv)

    save()  # an unwritable output file fails now, before anything is measured
    problem, problem_size, problem_error = None, None, ""
    telemetry = None
    try:
        if probe:
            cached = [s.bytes_min for s in specs if s.bytes_min <= cache_bytes]
            result.probe = measure_roofline(device, probe_bytes, max(cached, default=None)).to_dict()
        if device == "cuda":  # after the probe has made the CUDA context NVML is matched with
            telemetry = open_telemetry()
        for index, spec in enumerate(specs):
            if on_start:
                on_start(spec, index, len(specs))
            if spec.n_samples != problem_size:
                problem, problem_size = None, spec.n_samples
                gc.collect()
                try:
                    data = make_problem(spec.n_samples, n_features, dtype, seed)
                    reference = loss_and_grad(*data, np.zeros(n_features))
                    problem = data
                except MemoryError as exc:
                    problem_error = f"MemoryError: generating the data: {exc}"
            if problem is None:
                case = CaseResult(spec, "oom", problem_error, precision_target=precision)
            else:
                case = run_case(spec, *problem, rule, lr=lr, cache_bytes=cache_bytes,
                                reference=reference, telemetry=telemetry)
            result.cases.append(case)
            if index == 0:  # the backends are imported now: record their thread settings too
                result.environment = capture(device)
            save()
            if on_result:
                on_result(case)
        result.complete = True
    finally:
        save()
    return result
