"""Tables of the docs that are not a sweep's grid: converge runs side by side, a run's memory
table and its scaling across ranks, and the summary lines of ``gdbench noise`` logs. Each is
computed from committed results files by ``scripts/docs_tables.py``."""

from __future__ import annotations

import re
from pathlib import Path

from gdbench.analysis.report import scaling_lines
from gdbench.analysis.tables import format_times
from gdbench.axes.memory import MemoryHook
from gdbench.core.units import format_size
from gdbench.records.converge import ConvergeResult
from gdbench.records.run import RunResult


def converge_markdown(results: list[ConvergeResult]) -> list[str]:
    """One row per kernel, one column per size and learning rate: the steps to the tolerance
    and the time of each run (the steps of the first; a run that took other steps says so)."""
    columns = list(dict.fromkeys((d.n_samples, d.rule) for d in results[0].descents))
    names = list(dict.fromkeys(d.name for d in results[0].descents))
    first = results[0]
    lr = {(d.n_samples, d.rule): d.lr for d in first.descents}
    head = [f"{format_size(n)}, lr {lr[(n, rule)]:.3g}" for n, rule in columns]
    lines = ["| kernel | " + " | ".join(head) + " |", "|---|" + "---|" * len(columns)]
    found = [{(d.name, d.n_samples, d.rule): d for d in r.descents} for r in results]
    for name in names:
        cells = []
        for n, rule in columns:
            ds = [f.get((name, n, rule)) for f in found]
            if any(d is None for d in ds):
                cells.append("")
            elif ds[0].status == "converged":
                steps = {d.steps for d in ds}
                cells.append(f"{ds[0].steps}{'' if len(steps) == 1 else ' (steps differ)'}: "
                             + format_times([d.seconds for d in ds]))
            else:
                cells.append(f"{ds[0].status}, {ds[0].steps}: {ds[0].excess:.2g} above")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    solves = []
    for n, rule in columns:
        times = [s["seconds"] for r in results for s in r.direct if s["n_samples"] == n
                 and s["dtype"] == "float32"]
        solves.append(format_times(times) if times and rule == columns[0][1] else "")
    lines.append("| direct solve (`lstsq`, float32) | " + " | ".join(solves) + " |")
    return lines


def memory_markdown(run: RunResult) -> list[str]:
    return MemoryHook.table(run.cases)[2:-1]  # the table alone, without its sentence


def scaling_markdown(run: RunResult) -> list[str]:
    lines = scaling_lines(run, "")
    start = next(i for i, line in enumerate(lines) if line.startswith("| kernel"))
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    return lines[start:end]


NOISE_LINES = {
    "false": re.compile(r"false verdicts (\S+)%"),
    "30": re.compile(r"made 30% slower: called SLOWER in (\S+)%"),
    "10": re.compile(r"made 10% slower: called SLOWER in (\S+)%"),
}


def noise_logs_markdown(folder: Path, studies: list[tuple[str, str, str]]) -> list[str]:
    """A row per ``gdbench noise`` study: (log name, how it was run, its noise floor), with
    the figures its log's summary lines give."""
    lines = ["| study | noise floor | false FASTER or SLOWER (target at most 5%) | "
             "30% slower called SLOWER (target at least 90%) | 10% slower called SLOWER |",
             "|---|---|---|---|---|"]
    for log, how, floor in studies:
        text = (folder / log).read_text()
        figures = {k: p.search(text) for k, p in NOISE_LINES.items()}
        lines.append(f"| {how} | {floor} | " + " | ".join(
            f"{figures[k].group(1)}%" if figures[k] else "?" for k in ("false", "30", "10"))
            + " |")
    return lines


def spread_markdown(runs: list[RunResult]) -> list[str]:
    """How far the same cases' medians lay apart between runs, per size: the median over the
    kernels of (largest / smallest − 1), and the largest, with its kernel."""
    sizes = sorted({c.spec.n_samples for c in runs[0].cases})
    found = [{(c.spec.name, c.spec.n_samples): c for c in r.cases if c.reliable} for r in runs]
    lines = ["| N | " + " | ".join(format_size(n) for n in sizes) + " |",
             "|---|" + "---:|" * len(sizes)]
    typical, largest = [], []
    for n in sizes:
        spreads = []
        for name in dict.fromkeys(c.spec.name for c in runs[0].cases if c.spec.n_samples == n):
            medians = [f[(name, n)].summary().median for f in found if (name, n) in f]
            if len(medians) == len(runs):
                spreads.append((max(medians) / min(medians) - 1, name))
        spreads.sort()
        typical.append(f"{spreads[len(spreads) // 2][0]:.0%}" if spreads else "")
        largest.append(f"{spreads[-1][0]:.0%} ({spreads[-1][1]})" if spreads else "")
    return lines + ["| median over kernels | " + " | ".join(typical) + " |",
                    "| largest | " + " | ".join(largest) + " |"]


def many_steps_markdown(runs: list[RunResult]) -> list[str]:
    """Per-step time with K steps per call over the same kernel's with one, each measured in
    the same run (``gdbench.analysis.findings.many_steps``): run 1 / run 2 / ... in a cell."""
    from gdbench.analysis.findings import many_steps

    ratios = [many_steps(run) for run in runs]
    keys = list(dict.fromkeys(k for r in ratios for k in r))
    sizes = sorted({n for r in ratios for by_size in r.values() for n in by_size})
    lines = ["| kernel | K | " + " | ".join(f"N = {format_size(n)}" for n in sizes) + " |",
             "|---|---:|" + "---:|" * len(sizes)]
    for name, k in keys:
        cells = []
        for n in sizes:
            values = [r.get((name, k), {}).get(n) for r in ratios]
            cells.append(" / ".join(f"{v:.2f}" for v in values if v is not None))
        lines.append(f"| {name} | {k} | " + " | ".join(cells) + " |")
    return lines


def windows_markdown(runs: list[tuple[str, RunResult]]) -> list[str]:
    """A row per run of the same sweep: how many windows its cases got, how well their
    latency medians are known (the ± of each case), and how long the windows took from the
    first's start to the last's end."""
    import numpy as np

    lines = ["| run | --max-windows | cases | windows a case: median (range) | cases with more "
             "than --windows | ± of a case: median | cases noisy (± over --precision) | "
             "windows took |", "|---|---:|---:|---|---:|---:|---:|---:|"]
    for name, run in runs:
        s = run.settings
        ok = [c for c in run.cases if c.ok]
        counts = [c.summary().windows for c in ok]
        precision = [c.summary().precision for c in ok]
        spans = [(w["started"], w["started"] + w["wall_s"]) for c in ok
                 for w in c.contention or () if w]
        took = max(e for _, e in spans) - min(b for b, _ in spans) if spans else float("nan")
        lines.append(
            f"| {name} | {s.get('max_windows') or s['windows']} | {len(ok)} | "
            f"{int(np.median(counts))} ({min(counts)}-{max(counts)}) | "
            f"{sum(n > s['windows'] for n in counts)} | {np.median(precision):.1%} | "
            f"{sum(p > s['precision'] for p in precision)} | {took:.0f} s |")
    return lines
