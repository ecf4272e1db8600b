"""A sweep's cases, measured together: verified, then timed window by window, in rounds.

Every case is prepared and checked against the float64 reference first
(``gdbench.measure.prepare``). Then the run goes
round all the cases ``windows`` times, as asv interleaves its rounds, so
that a case's windows are spread over the whole run: a round takes the sizes in order and each
size's cases starting one further on than in the last round. Further rounds, up to
``max_windows``, take the cases whose interval is still wider than the precision asked for and
whose budget holds one more window (``Rounds.wants_more``): a case whose windows end early,
their medians known, gets as many windows as its budget allows. A window is untimed steps (until
the step time settles in the first round, a millisecond's worth later), latency samples for
the case's share of the budget, then batches, with the machine's contention and the GPU's
clocks read around it. Every window after a case's first is of a new instance of its kernel,
prepared on fresh copies of the data, so that where its buffers sit is drawn anew each time
(``Rounds.fresh``; a layout that favours a case by a few per cent is then variance, not a bias
the interval cannot see). The spread between a case's windows is what its precision is made
of, so it takes in the slow changes of a machine (memory bandwidth, clocks, other work) and
the layouts that one burst of samples hides. A case that another process held back, with a
stalled window, or whose windows disagree by more than DISAGREE, is measured once more, all its
windows, and the steadier attempt is kept.
Kernels whose data do not fit beside the others are measured last, alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from gdbench.core.devices import release_device_memory
from gdbench.core.dtypes import problem_dtype
from gdbench.measure.clocks import make_timer
from gdbench.measure.prepare import Live, prepare
from gdbench.measure.threads import limit_threads
from gdbench.measure.timing import StopRule, Window, rewarm, take_window, warm_up
from gdbench.records.results import CaseResult, CaseSpec
from gdbench.records.samples import Samples

# Windows whose medians differ by more than this (slowest over fastest) disagree: something
# else was running in some of them, and the case is measured once more.
DISAGREE = 0.20


def problem_key(spec: CaseSpec) -> tuple[int, str]:
    """The problem a case steps on: its sample count and the dtype the data are made in,
    which every half-precision case shares with float32 (``gdbench.core.dtypes``)."""
    return spec.n_samples, problem_dtype(spec.dtype)


def sample_window(kernel, rule: StopRule, budget: float, batches: bool = False,
                  batch_size: int | None = None, flush=None) -> tuple[Samples, int, int]:
    """(samples, K, steps run): one window of the sampling loop (``gdbench.measure.timing``),
    timed with the kernel's own clock."""
    window = take_window(kernel, make_timer(kernel), rule, budget, batches, batch_size, flush)
    return window_samples(window), window.batch_size, window.steps


def sample(kernel, rule: StopRule = StopRule(), batches: bool = False) -> Samples:
    """One window of a prepared, warmed-up kernel, with the whole budget."""
    return sample_window(kernel, rule, rule.budget, batches)[0]


def window_samples(window: Window) -> Samples:
    return Samples(window.phases, window.device, window.host, window.batch, window.batch_size,
                   window.batch_host)


def measure_window(live: Live, rule: StopRule, budget: float, batches: bool, flush=None,
                   fresh: bool = True) -> None:
    """One window of ``live``: warm-up, latency samples, batches; appended to ``live``. With
    ``fresh``, every window after the first is of a new instance on fresh buffers."""
    with limit_threads(live.spec.threads):
        if fresh and live.parts and live.problem is not None:
            live.refresh()
        _measure_window(live, rule, budget, batches, flush)


def _measure_window(live: Live, rule: StopRule, budget: float, batches: bool,
                    flush=None) -> None:
    kernel = live.kernel
    if not live.parts:
        settle = warm_up(kernel, rule)
        live.fields.update(settle_steps=settle.steps, settled=settle.settled)
    else:
        rewarm(kernel)
    started = [hook.start() for hook in live.hooks]
    began = time.perf_counter()
    samples, size, steps = sample_window(kernel, rule, budget, batches, live.batch_size, flush)
    live.sampled.append(time.perf_counter() - began)
    k = live.spec.steps_per_call
    if k > 1:  # a call ran k steps: times per step, and every step counted
        samples, steps = samples.per_step(k), steps * k
    for hook, token in reversed(list(zip(live.hooks, started))):
        live.readings.setdefault(hook.field, []).append(hook.stop(token, steps))
    live.batch_size = live.batch_size or size or None
    live.parts.append(samples)


@dataclass
class Rounds:
    """How to measure a sweep's cases in rounds of windows; ``measure`` does it."""

    rule: StopRule
    windows: int = 4
    max_windows: int | None = None  # up to this many while a case wants more (None: windows)
    lr: float = 0.01
    fields: dict = field(default_factory=dict)  # recorded with every case
    cold: bool = False
    flush: object = None  # cache flush before each latency sample, in cold mode
    hooks: tuple = ()  # gdbench.axes.window_hooks: what is read around each window
    case_hooks: tuple = ()  # gdbench.axes.case_hooks: what is read once a case (its memory)
    remeasure: bool = True
    fresh: bool = True  # a new instance on fresh buffers for every window (layout drawn anew)
    on_window: object = None  # on_window(spec, done, total) before each window
    on_round: object = None  # on_round(results so far) after each round, to save them
    before_size: object = None  # before_size(n_samples) ahead of a size's windows: the probe
    after_size: object = None  # after_size(n_samples) once they are done: the probe again
    roofline_for: object = None  # roofline_for(spec) -> bytes/s: around a remeasured window

    def measure(self, specs: list[CaseSpec], problems: dict) -> list[CaseResult]:
        """Results of ``specs``, in order; ``problems`` maps each ``problem_key`` to
        ``(x, y, reference)``, or to why its data could not be made."""
        done: dict[CaseSpec, CaseResult] = {}
        live: list[Live] = []
        deferred: list[CaseSpec] = []
        for spec in specs:
            problem = problems[problem_key(spec)]
            if isinstance(problem, str):
                done[spec] = CaseResult(spec, "oom" if problem.startswith("MemoryError") else
                                        "error", problem, **self.fields)
                continue
            case = prepare(spec, *problem, self.lr, self.fields, self.case_hooks)
            if isinstance(case, Live):
                case.hooks = tuple(self.hooks)
                live.append(case)
            elif case.status == "oom" and live:  # it may fit once the others are gone
                deferred.append(spec)
                release_device_memory(spec.device)
            else:
                done[spec] = case
        steps = [0, self.windows * (len(live) + len(deferred))]

        def ordered():  # what is measured so far; a case without a window is not yet
            current = {c.spec: c.result() for c in live if c.parts}
            return [done.get(s) or current[s] for s in specs if s in done or s in current]

        def saved():
            if self.on_round:
                self.on_round(ordered())

        try:
            self._rounds(live, steps, after_round=saved)
            for case in live:
                done[case.spec] = self._remeasured(case)
            live.clear()
            if specs:
                release_device_memory(specs[0].device)
            for spec in deferred:
                alone = prepare(spec, *problems[problem_key(spec)], self.lr, self.fields,
                                self.case_hooks)
                if isinstance(alone, Live):
                    alone.hooks = tuple(self.hooks)
                    self._rounds([alone], steps, roofline=False)
                    alone = replace(alone.result(), message="measured alone: its data did not "
                                                            "fit beside the other kernels'")
                done[spec] = alone
                release_device_memory(spec.device)
        except BaseException:
            if self.on_round:  # Ctrl-C or a crash: keep the windows measured so far
                self.on_round(ordered())
            raise
        return [done[s] for s in specs if s in done]

    def _rounds(self, live: list[Live], steps: list[int], roofline: bool = True,
                after_round=None) -> None:
        """``windows`` rounds of every case, then rounds of those that want more
        (``wants_more``), up to ``max_windows``; ``after_round()`` after each."""
        for index in range(max(self.windows, self.max_windows or 0)):
            group = live if index < self.windows else [c for c in live if self.wants_more(c)]
            if not group:
                break
            if index >= self.windows:
                steps[1] += len(group)
            self._round(group, index, steps, roofline)
            if after_round:
                after_round()

    def wants_more(self, case: Live) -> bool:
        """Another window for ``case``: its interval is wider than the precision asked for
        (stalled windows aside), and one more window as long as its longest so far keeps its
        sampling within what its first ``windows`` could take (the budget for latency
        samples, half as long again for batches)."""
        if not case.sampled:
            return False
        result = case.result()
        if not result.ok or result.summary().precision <= self.rule.precision:
            return False
        return sum(case.sampled) + max(case.sampled) <= 1.5 * self.rule.budget

    def _round(self, live: list[Live], index: int, steps: list[int], roofline: bool = True) -> None:
        """One window of every case, in ``round_order``."""
        for n, group in round_order(live, index):
            if roofline and self.before_size:
                self.before_size(n)
            for case in group:
                if self.on_window and steps[0] < steps[1]:
                    self.on_window(case.spec, steps[0], steps[1])
                measure_window(case, self.rule, self.rule.budget / self.windows,
                               not self.cold, self.flush, self.fresh)
                steps[0] += 1
            if roofline and self.after_size:
                self.after_size(n)

    def _remeasured(self, case: Live) -> CaseResult:
        """The case's result; measured again when it was contended or its windows disagreed,
        keeping the attempt that waited less for a CPU, and then the one with less spread."""
        first = case.result()
        if not (self.remeasure and first.ok and unsteady(first)):
            return first
        again = Live(case.spec, case.kernel, dict(case.fields), hooks=case.hooks,
                     problem=case.problem)
        again.batch_size = case.batch_size
        rooflines = []  # the attempt's own: measured around each of its windows, as the run's
        for index in range(len(case.parts)):  # as many windows as the first attempt had
            before = self.roofline_for(case.spec) if self.roofline_for else None
            self._round([again], index, [0, 0], roofline=False)
            after = self.roofline_for(case.spec) if self.roofline_for else None
            rooflines.append(max((r for r in (before, after) if r), default=None))
        second = again.result(remeasured=True)
        if not second.ok:
            return replace(first, remeasured=True)
        if all(rooflines):
            second = replace(second, rooflines=rooflines)
        return min(second, replace(first, remeasured=True), key=_unsteadiness)


def round_order(cases, index: int):
    """(size, its cases) of round ``index``: sizes in order, and each size's cases starting
    ``index`` further on, so that no case is always first after the size's roofline probe."""
    for n in sorted({c.spec.n_samples for c in cases}):
        group = [c for c in cases if c.spec.n_samples == n]
        shift = index % len(group)
        yield n, group[shift:] + group[:shift]


def unsteady(case: CaseResult) -> bool:
    """Contended, with a stalled window, or with windows that disagree."""
    step = case.summary()
    return bool(case.contention_reasons) or bool(step.stalled) or step.spread > DISAGREE


def _unsteadiness(case: CaseResult) -> tuple[float, int, float]:
    step = case.summary()
    return (bool(case.contention_reasons), len(step.stalled), step.spread)
