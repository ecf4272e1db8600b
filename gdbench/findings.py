"""What a set of runs says, computed from the data: winners, speedups, crossovers, floors."""

from __future__ import annotations

from dataclasses import dataclass

from gdbench.results import CaseResult, RunResult

BASELINE = "numpy-manual"


def ok_cases(runs: list[RunResult]) -> list[CaseResult]:
    return [c for run in runs for c in run.cases if c.ok]


def median(case: CaseResult) -> float:
    return case.summary().median


def fastest(runs) -> dict[tuple[str, int], CaseResult]:
    """The fastest case at each (device, sample count)."""
    best: dict[tuple[str, int], CaseResult] = {}
    for c in ok_cases(runs):
        key = (c.spec.device, c.spec.n_samples)
        if key not in best or median(c) < median(best[key]):
            best[key] = c
    return dict(sorted(best.items()))


def speedups(runs) -> dict[tuple[str, str], dict[int, float]]:
    """Each kernel's speedup over the CPU ``numpy-manual`` baseline at each sample count."""
    base = {c.spec.n_samples: median(c) for c in ok_cases(runs)
            if c.spec.kernel == BASELINE and c.spec.device == "cpu"}
    out: dict[tuple[str, str], dict[int, float]] = {}
    for c in ok_cases(runs):
        if c.spec.n_samples in base:
            out.setdefault((c.spec.name, c.spec.device), {})[c.spec.n_samples] = \
                base[c.spec.n_samples] / median(c)
    return out


@dataclass(frozen=True)
class Crossover:
    kernel: str
    n_samples: int | None  # the first size from which the GPU kernel stays ahead; None: never
    sizes: tuple[int, ...]  # the sizes both devices measured


def crossovers(runs) -> list[Crossover]:
    """Where each GPU kernel overtakes the best CPU kernel, when both devices were measured."""
    cpu_best = {n: median(c) for (device, n), c in fastest(runs).items() if device == "cpu"}
    gpu: dict[str, dict[int, float]] = {}
    for c in ok_cases(runs):
        if c.spec.device == "cuda":
            gpu.setdefault(c.spec.name, {})[c.spec.n_samples] = median(c)
    out = []
    for name, times in gpu.items():
        sizes = tuple(sorted(set(times) & set(cpu_best)))
        if not sizes:
            continue
        ahead = None
        for n in reversed(sizes):  # the smallest size from which the GPU is ahead at every size
            if times[n] < cpu_best[n]:
                ahead = n
            else:
                break
        out.append(Crossover(name, ahead, sizes))
    return out


@dataclass(frozen=True)
class Floor:
    kernel: str
    device: str
    floor: float  # median step time at the smallest sample count, seconds
    smallest: int
    leaves_at: int | None  # the first size whose step takes over twice the floor; None: never


def launch_floors(runs) -> list[Floor]:
    """Each kernel's fixed cost per step, and the size where the data starts to dominate it."""
    by_kernel: dict[tuple[str, str], list[CaseResult]] = {}
    for c in ok_cases(runs):
        by_kernel.setdefault((c.spec.name, c.spec.device), []).append(c)
    out = []
    for (name, device), cases in by_kernel.items():
        cases.sort(key=lambda c: c.spec.n_samples)
        floor = median(cases[0])
        leaves = next((c.spec.n_samples for c in cases[1:] if median(c) > 2 * floor), None)
        out.append(Floor(name, device, floor, cases[0].spec.n_samples, leaves))
    return out
