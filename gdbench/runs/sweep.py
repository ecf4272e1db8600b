"""The sweep: every chosen kernel at every sample count, verified, then timed.

All cases are measured together in rounds of windows (``gdbench.measure.cases``). A case that fails
(wrong result, out of memory, an exception, divergence) is recorded with its status and the
sweep goes on; so is a size whose data cannot be made.
With ``out``, the results so far are rewritten atomically after every round, so an interrupted
run leaves a valid file.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation

import numpy as np

from gdbench.axes import case_hooks, window_hooks
from gdbench.core.devices import is_cpu, is_cuda, run_objects_collected
from gdbench.core.dtypes import parse_dtypes
from gdbench.core.reference import loss_and_grad, make_problem
from gdbench.files.results import Output
from gdbench.kernels import registry
from gdbench.kernels.cuda_graph import capturable
from gdbench.measure.cases import Rounds, problem_key
from gdbench.measure.clocks import cache_flush
from gdbench.measure.environment import capture, cpu_cache_bytes
from gdbench.measure.roofline import measure_roofline, roofline_at
from gdbench.measure.timing import StopRule
from gdbench.records.results import CaseResult, CaseSpec
from gdbench.records.run import RunResult
from gdbench.runs.settings import Settings
from gdbench.runs.workers import run_workers


def parse_sizes(text: str) -> list[int]:
    """``"1e2,1e4,1e6"`` (a list) or ``"1e2:1e8"`` (every power of ten between, inclusive)."""
    def one(token: str) -> int:
        try:
            value = Decimal(token.strip())  # exact: 1e30 is 10**30, not the float nearest it
        except InvalidOperation:
            raise ValueError(f"size {token!r} is not a number") from None
        if not value.is_finite() or value < 1 or value != value.to_integral_value():
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


def plan(device: str, kernels: Sequence[str] | str, sizes: Sequence[int], n_features: int,
         dtypes: Sequence[str] | str, cuda_graph: bool = False,
         threads: Sequence[int] = (0,), skipped: list | None = None,
         steps_per_call: Sequence[int] = (1,)) -> list[CaseSpec]:
    """The cases of a sweep, sizes outermost; ValueError for anything that cannot run here.

    Each kernel runs in each of ``dtypes`` it supports and at each thread count of
    ``threads`` (0: as the libraries are set); a kernel that supports some of the dtypes but
    not others is skipped in those, with one line of why appended to ``skipped``. With
    ``cuda_graph``, every kernel whose step can be captured also runs with its step replayed
    from a CUDA graph, right after the same kernel without. Each case runs at each K of
    ``steps_per_call`` (K steps per timed call), K = 1 first.
    """
    dtypes = parse_dtypes(dtypes)
    if cuda_graph and not is_cuda(device):
        raise ValueError("CUDA graphs need --device cuda")
    if n_features < 1:
        raise ValueError(f"features must be at least 1, got {n_features}")
    if kernels == "all":
        kernels = [k.name for k in registry.list_kernels(device)
                   if k.available_on(device) and set(dtypes) & set(k.dtypes)
                   and n_features <= (k.max_features or n_features)]
        if not kernels:
            raise ValueError(f"no kernel runs on {device} in {' or '.join(dtypes)} here "
                             "(see gdbench list)")
    kernels = list(dict.fromkeys(kernels))  # a kernel named twice is measured once
    graphable, runs_in = set(), {}
    for name in kernels:
        errors = {}
        for dtype in dtypes:
            try:
                kernel = registry.make_kernel(name, device, dtype)
            except ValueError as exc:
                errors[dtype] = str(exc)
                continue
            runs_in.setdefault(name, []).append(dtype)
        if name not in runs_in:  # in none of the dtypes: the reason of the first
            raise ValueError(errors[dtypes[0]])
        if errors and skipped is not None:
            skipped.append(f"{name} does not run in {' or '.join(errors)}: it supports "
                           f"{', '.join(registry.kernel_class(name).dtypes)}")
        if n_features > (getattr(kernel, "max_features", None) or n_features):
            raise ValueError(f"kernel {name} supports at most {kernel.max_features} feature(s)")
        if cuda_graph and capturable(kernel):
            graphable.add(name)
    if cuda_graph and not graphable:
        raise ValueError("--cuda-graph needs at least one kernel whose step can be captured "
                         "(see gdbench list)")
    return [CaseSpec(kernel=k, device=device, dtype=dtype, n_samples=int(n),
                     n_features=n_features, cuda_graph=graph, threads=t, steps_per_call=c)
            for n in sizes for k in kernels for dtype in runs_in[k] for t in threads
            for graph in ((False, True) if k in graphable else (False,))
            for c in sorted(steps_per_call)]


def run_case(spec: CaseSpec, x, y, rule: StopRule, lr: float = 0.01,
             cache_bytes: int = 0, reference=None, hooks=None) -> CaseResult:
    """Verify one case against the reference (``loss_and_grad(x, y, 0)``), then time it.

    One window, with the whole budget, and ``hooks`` (``gdbench.axes``; by default
    those that read something on the case's device) read around it; its memory is measured
    first.
    """
    reference = reference or loss_and_grad(x, y, np.zeros(np.asarray(x).reshape(len(y), -1)
                                                          .shape[1]))
    rounds = Rounds(rule, windows=1, lr=lr, remeasure=False,
                    hooks=window_hooks(spec.device) if hooks is None else hooks,
                    case_hooks=case_hooks(spec.device),
                    fields={"cache_bytes": cache_bytes, "precision_target": rule.precision})
    with run_objects_collected():
        return rounds.measure([spec], {problem_key(spec): (x, y, reference)})[0]


def run(device: str = "auto", kernels: Sequence[str] | str = "all",
        sizes: Sequence[int] | None = None, n_features: int = 1,
        dtype: str | Sequence[str] = "float32", threads: Sequence[int] | None = None,
        out=None, csv=None,
        on_start: Callable[[CaseSpec, int, int], None] | None = None,
        on_result: Callable[[CaseResult], None] | None = None, **settings) -> RunResult:
    """Sweep ``kernels`` over ``sizes`` on ``device``; return the records, writing them to ``out``.

    The keyword arguments are those of ``gdbench.runs.settings.Settings``: ``budget`` is the
    latency-sampling time of one case in seconds, shared by its ``windows``; a window stops
    earlier once its median is known to ``precision`` (relative half-width of its 95%
    interval). ``dtype`` may name several dtypes (``"float32,bfloat16"`` or a list), and
    ``threads`` several CPU thread counts: every kernel runs in each dtype it supports, at each
    thread count. See ``sweep`` for the rest.
    """
    dtypes = (dtype,) if isinstance(dtype, str) else tuple(dtype)  # Settings.checked parses
    given = Settings(device=device, kernels=kernels if kernels == "all" else tuple(kernels),
                     sizes=None if sizes is None else tuple(sizes), n_features=n_features,
                     dtypes=dtypes, threads=None if threads is None else tuple(threads),
                     **settings)
    return sweep(given.checked(), out, csv, on_start, on_result)


def sweep(settings: Settings, out=None, csv=None,
          on_start: Callable[[CaseSpec, int, int], None] | None = None,
          on_result: Callable[[CaseResult], None] | None = None) -> RunResult:
    """Measure the cases of ``settings`` (checked); the records, written to ``out``.

    The cases of one size are measured in rounds, one window each per round
    (``gdbench.measure.cases``). With ``roofline``, the device's bandwidth is measured first
    (memory level and the curve against size), then at each size's working set once per
    round, and every case reports its fraction of that roofline. ``cold`` flushes the caches
    before every latency sample and takes no batches. ``remeasure`` measures a contended case
    once more. ``memory`` measures each case's step memory before timing it
    (``gdbench.axes.memory``). ``fresh`` measures every window after a case's first on a new
    instance prepared on fresh copies of the data. With ``processes`` over 1 the windows are
    measured in that many fresh worker processes, one after the other
    (``gdbench.runs.workers``).
    """
    with run_objects_collected():
        return _sweep(settings, out, csv, on_start, on_result)


def _sweep(s: Settings, out, csv, on_start, on_result) -> RunResult:
    device, sizes, n_features = s.device, list(s.sizes), s.n_features
    skipped: list[str] = []
    specs = plan(device, s.kernels, sizes, n_features, list(s.dtypes), s.cuda_graph,
                 s.threads or (0,), skipped, s.steps_per_call)
    rule = StopRule.for_budget(s.precision, s.budget, s.windows)
    recorded = s.record(kernels=sorted({c.kernel for c in specs}), skipped=skipped,
                        min_samples_per_window=rule.min_samples, max_samples=rule.max_samples,
                        batch_seconds=rule.batch_seconds, warmup_max_s=rule.warmup)
    for gone in ("dist_timeout", "weak_scaling"):
        recorded.pop(gone, None)
    roofline, windows, cold = s.roofline, s.windows, s.cold
    output = out if isinstance(out, Output) else Output(out, csv)  # checks the paths now
    result = RunResult(capture(device), recorded)
    cache_bytes = cpu_cache_bytes() if is_cpu(device) else result.environment.get(
        "gpu", {}).get("l2_cache_bytes", 0)

    def save():
        output.save(result)

    save()
    try:
        if roofline:
            try:
                result.probe = measure_roofline(device, s.probe_bytes).to_dict()
            except Exception as exc:  # out of memory, say: the run goes on without a roofline
                recorded["probe_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
                roofline = False
        if s.processes > 1:
            run_workers(result, s, roofline, save, sorted({c.bytes_min for c in specs}))
            result.complete = True
            return result
        problems = {key: _problem(*key, n_features, s.seed)
                    for key in dict.fromkeys(problem_key(c) for c in specs)}
        probes = _Probes(device, specs, result.rooflines) if roofline else None
        recaptured = []

        def partial(cases):
            result.cases = cases
            if not recaptured:  # the kernels have imported their backends: record their threads
                result.environment = capture(device)
                recaptured.append(True)
            save()

        rounds = Rounds(
            rule=rule, windows=windows, max_windows=s.max_windows, lr=s.lr,
            fields={"cache_bytes": cache_bytes, "precision_target": s.precision},
            cold=cold, remeasure=s.remeasure, fresh=s.fresh,
            flush=cache_flush(device, FLUSH_FACTOR * max(cache_bytes, FLUSH_MIN[device]))
            if cold else None,
            # after the probe has made the CUDA context NVML is matched with
            hooks=window_hooks(device), case_hooks=case_hooks(device) if s.memory else (),
            on_window=on_start,
            on_round=partial, before_size=probes.before_size if probes else None,
            after_size=probes.after_size if probes else None,
            roofline_for=probes.for_case if probes else None)
        result.cases = rounds.measure(specs, problems)
        del problems
        if on_result:
            for case in result.cases:
                on_result(case)
        result.complete = True
    finally:
        if result.complete:
            output.finish(result)
        else:
            save()
            output.abandon()  # removes the partial files when nothing was measured
        result.moved_aside = output.moved
    return result


class _Probes:
    """The read roofline at each working set of a sweep, taken around its sizes' windows into
    ``rooflines`` (bytes -> one value a round); a size too large to stream twice has none."""

    def __init__(self, device: str, specs, rooflines: dict):
        self.device, self.specs, self.rooflines = device, specs, rooflines

    def _sizes(self, n: int) -> list[int]:  # the working set of each dtype of the size
        return sorted({c.bytes_min for c in self.specs if c.n_samples == n})

    def before_size(self, n: int) -> None:
        for nbytes in self._sizes(n):
            try:
                self.rooflines.setdefault(nbytes, []).append(roofline_at(self.device, nbytes))
            except Exception:  # too large to stream twice: no roofline for its cases
                pass

    def after_size(self, n: int) -> None:
        """Once more after the size's windows: the round's roofline is the higher."""
        for nbytes in self._sizes(n):
            rounds = self.rooflines.get(nbytes)
            if rounds:
                try:
                    rounds[-1] = max(rounds[-1], roofline_at(self.device, nbytes))
                except Exception:
                    pass

    def for_case(self, spec):
        """Around a remeasured window of ``spec``; None where it cannot be taken."""
        try:
            return roofline_at(self.device, spec.bytes_min)
        except Exception:
            return None


# The cold-mode flush writes this many times the largest cache (at least FLUSH_MIN bytes).
FLUSH_FACTOR = 2
FLUSH_MIN = {"cpu": 64 << 20, "cuda": 256 << 20}


def _problem(n: int, dtype: str, n_features: int, seed: int):
    """(x, y, reference) at ``n`` samples, or why the data could not be made."""
    gc.collect()
    try:
        x, y = make_problem(n, n_features, dtype, seed)
        return x, y, loss_and_grad(x, y, np.zeros(n_features))
    except Exception as exc:  # MemoryError, or a size numpy refuses ("Maximum allowed ...")
        kind = "MemoryError" if isinstance(exc, MemoryError) else type(exc).__name__
        return f"{kind}: generating the data: {exc}".splitlines()[0]
