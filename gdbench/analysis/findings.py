"""What a set of runs says, computed from the data: winners, speedups, crossovers, floors.

Every finding belongs to one run: two runs of the same device are not mixed. A run is named by
its label (``run_labels``), empty where it is the only run of its device. Speedups and
crossovers set a run against the first CPU run given.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from gdbench.core.devices import is_cpu, is_cuda
from gdbench.records.results import CaseResult
from gdbench.records.run import RunResult

BASELINE = "numpy-manual"


def run_labels(runs: list[RunResult], sources=None) -> list[str]:
    """A name for each run where another run of the same device would be confused with it:
    its file's stem (or ``run k``); "" for the only run of a device."""
    devices = [r.settings.get("device", "?") for r in runs]
    labels = []
    for index, device in enumerate(devices):
        if devices.count(device) == 1:
            labels.append("")
        elif sources is not None:
            labels.append(Path(sources[index]).stem)
        else:
            labels.append(f"run {index + 1}")
    return labels


def median(case: CaseResult) -> float:
    return case.summary().median


def _ok(run: RunResult) -> list[CaseResult]:
    """The cases whose times count: timed and not contended."""
    return [c for c in run.cases if c.reliable]


def fastest(runs, labels=None) -> dict[tuple[str, str, int], CaseResult]:
    """The fastest case of each run at each sample count: {(label, device, n): case}."""
    labels = labels or run_labels(runs)
    best: dict[tuple[str, str, int], CaseResult] = {}
    for run, label in zip(runs, labels):
        for c in _ok(run):
            key = (label, c.spec.device, c.spec.n_samples)
            if key not in best or median(c) < median(best[key]):
                best[key] = c
    return dict(sorted(best.items()))


def _baseline_run(runs):
    return next((r for r in runs if is_cpu(r.settings.get("device"))
                 and any(c.reliable and c.spec.kernel == BASELINE for c in r.cases)), None)


def speedups(runs, labels=None) -> dict[tuple[str, str, str], dict[int, float]]:
    """Each kernel's speedup over ``numpy-manual`` of the first CPU run, at each sample count:
    {(kernel, device, label): {n: speedup}}."""
    labels = labels or run_labels(runs)
    baseline = _baseline_run(runs)
    if baseline is None:
        return {}
    base: dict[int, float] = {}
    # numpy-manual in float32 at the libraries' threads where the run has it, else its first
    for c in sorted((c for c in _ok(baseline) if c.spec.kernel == BASELINE),
                    key=lambda c: c.spec.name != BASELINE):
        base.setdefault(c.spec.n_samples, median(c))
    out: dict[tuple[str, str, str], dict[int, float]] = {}
    for run, label in zip(runs, labels):
        for c in _ok(run):
            if c.spec.n_samples in base:
                out.setdefault((c.spec.name, c.spec.device, label), {})[c.spec.n_samples] = \
                    base[c.spec.n_samples] / median(c)
    return out


@dataclass(frozen=True)
class Crossover:
    kernel: str
    n_samples: int | None  # the first size from which the GPU kernel stays ahead; None: never
    sizes: tuple[int, ...]  # the sizes both devices measured
    label: str = ""  # the GPU run's


def crossovers(runs, labels=None) -> list[Crossover]:
    """Where each GPU kernel of each CUDA run overtakes the best kernel of the first CPU run."""
    labels = labels or run_labels(runs)
    cpu = next((r for r in runs if is_cpu(r.settings.get("device"))), None)
    if cpu is None:
        return []
    cpu_best = {n: median(c) for (_, _, n), c in fastest([cpu], [""]).items()}
    out = []
    for run, label in zip(runs, labels):
        if not is_cuda(run.settings.get("device")):
            continue
        gpu: dict[str, dict[int, float]] = {}
        for c in _ok(run):
            gpu.setdefault(c.spec.name, {})[c.spec.n_samples] = median(c)
        for name, times in gpu.items():
            sizes = tuple(sorted(set(times) & set(cpu_best)))
            if not sizes:
                continue
            ahead = None
            for n in reversed(sizes):  # the smallest size from which it is ahead at every size
                if times[n] < cpu_best[n]:
                    ahead = n
                else:
                    break
            out.append(Crossover(name, ahead, sizes, label))
    return out


@dataclass(frozen=True)
class Floor:
    kernel: str
    device: str
    floor: float  # median step time at the smallest sample count, seconds
    smallest: int
    leaves_at: int | None  # the first size whose step takes over twice the floor; None: never
    label: str = ""


def launch_floors(runs, labels=None) -> list[Floor]:
    """Each kernel's fixed cost per step, and the size where the data starts to dominate it."""
    labels = labels or run_labels(runs)
    out = []
    for run, label in zip(runs, labels):
        by_kernel: dict[tuple[str, str], list[CaseResult]] = {}
        for c in _ok(run):
            by_kernel.setdefault((c.spec.name, c.spec.device), []).append(c)
        for (name, device), cases in by_kernel.items():
            cases.sort(key=lambda c: c.spec.n_samples)
            floor = median(cases[0])
            leaves = next((c.spec.n_samples for c in cases[1:] if median(c) > 2 * floor), None)
            out.append(Floor(name, device, floor, cases[0].spec.n_samples, leaves, label))
    return out


@dataclass(frozen=True)
class Scaling:
    """A data-parallel case against the same kernel's plain step in one process."""

    kernel: str
    ranks: int
    n_samples: int  # strong: the total N; weak: N per rank
    kind: str  # "strong" (total N fixed) or "weak" (N per rank fixed)
    single: float  # median plain step time in one process, seconds
    time: float  # on ``ranks`` ranks
    efficiency: float  # strong: single / (ranks * time); weak: single / time
    one_rank: float | None = None  # the data-parallel step on one rank, all-reduce included


def has_plain_steps(run: RunResult) -> bool:
    """Whether the run measured the plain step (older runs of the launcher did not)."""
    return any(c.spec.ranks == 0 for c in run.cases)


def scaling(run: RunResult) -> list[Scaling]:
    """Strong and weak scaling of every data-parallel kernel against the plain step: the same
    kernel in one process, no all-reduce (runs of gdbench 0.1.0 without it: its one-rank
    cases). The one-rank data-parallel time is kept beside it. A size whose plain step was
    contended has no row: the one-rank time does not stand in for it."""
    times = {(c.spec.kernel, c.spec.ranks, c.spec.n_samples): median(c) for c in _ok(run)}
    plain = 0 if has_plain_steps(run) else 1
    out = []
    for (kernel, ranks, n), t in sorted(times.items()):
        if ranks <= 1:
            continue
        single, one_rank = times.get((kernel, plain, n)), times.get((kernel, 1, n))
        if single is not None:
            out.append(Scaling(kernel, ranks, n, "strong", single, t, single / (ranks * t),
                               one_rank))
        if n % ranks == 0 and (kernel, plain, n // ranks) in times:
            single = times[(kernel, plain, n // ranks)]
            out.append(Scaling(kernel, ranks, n // ranks, "weak", single, t, single / t,
                               times.get((kernel, 1, n // ranks))))
    return out


def rank_crossovers(run: RunResult) -> dict[tuple[str, int], int | None]:
    """For each kernel and world size, the smallest total N from which splitting it across the
    ranks is faster than one rank at every larger N measured; None where it never is."""
    strong: dict[tuple[str, int], list[Scaling]] = {}
    for s in scaling(run):
        if s.kind == "strong":
            strong.setdefault((s.kernel, s.ranks), []).append(s)
    out = {}
    for key, rows in strong.items():
        ahead = None
        for s in sorted(rows, key=lambda s: -s.n_samples):
            if s.time < s.single:
                ahead = s.n_samples
            else:
                break
        out[key] = ahead
    return out


def many_steps(run: RunResult) -> dict[tuple[str, int], dict[int, float]]:
    """Per-step time with K steps per call over the same case's with one, measured in the same
    run: {(kernel name at K = 1, K): {N: ratio}}; below 1, K steps per call pay."""
    ones = {(replace(c.spec, steps_per_call=1)): c for c in run.cases
            if c.reliable and c.spec.steps_per_call == 1}
    out: dict[tuple[str, int], dict[int, float]] = {}
    for c in run.cases:
        k = c.spec.steps_per_call
        one = ones.get(replace(c.spec, steps_per_call=1))
        if k > 1 and c.reliable and one is not None:
            out.setdefault((one.spec.name, k), {})[c.spec.n_samples] = (
                c.summary().median / one.summary().median)
    return out
