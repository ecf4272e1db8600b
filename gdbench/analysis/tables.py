"""Tables of a run for the terminal: kernels as rows, sample counts as columns."""

from __future__ import annotations

import math

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text

from gdbench import axes
from gdbench.core.devices import is_cuda
from gdbench.core.units import format_size
from gdbench.records.run import RunResult


def format_time(seconds: float) -> str:
    """Three significant digits in the unit the rounded value falls in: ``1.00 ms``, never
    ``1e+03 µs``."""
    if not math.isfinite(seconds) or seconds <= 0:
        return "?" if seconds != 0 else "0 s"
    rounded = float(f"{seconds:.3g}")
    unit, scale = next(((u, s) for u, s in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6))
                        if rounded >= s), ("ns", 1e-9))
    value = rounded / scale
    decimals = max(0, 2 - int(math.floor(math.log10(value) + 1e-9)))
    return f"{value:.{decimals}f} {unit}"


def format_percent(fraction: float) -> str:
    """``0.05`` as ``5%``, ``0.025`` as ``2.5%``."""
    return f"{100 * fraction:.3g}%"


def phase_split(case) -> str:
    """Each phase's share of the sum of the phase medians, such as ``45·40·15%``."""
    phases = case.samples.phases
    if phases == ("step",):
        return "fused"
    medians = [case.summary(p).median for p in phases]
    total = sum(medians) or 1.0
    return "·".join(f"{100 * m / total:.0f}" for m in medians) + "%"


MARKS = {"~": "noisy: the median is not known to the target precision",
         "^": "contended: another process held the benchmark back (see the JSON)",
         "!": "throttled: the GPU ran below full clock",
         "?": "faster than the roofline measured at its size: a measurement problem"}


def marks(case, exceeded: bool = False) -> str:
    """The MARKS that apply to a timed case; ``exceeded``: it beat its roofline."""
    return (("~" if case.noisy else "") + ("^" if case.contended else "")
            + ("!" if case.throttled else "") + ("?" if exceeded else ""))


def format_precision(p: float) -> str:
    """The median's 95% interval as ± a percentage; one wider than the median itself as a
    factor either way (``×/÷3.1``), and one that is not known as ``±unknown``."""
    if not math.isfinite(p):
        return "±unknown"
    if p >= 1:
        return f"×/÷{1 + p:.1f}" if p < 9 else f"×/÷{1 + p:.0f}"
    return f"±{p:.1%}" if p < 0.1 else f"±{p:.0%}"


def short_cell(case, run: RunResult | None = None) -> str:
    """One line: the median latency, its ± and its % of the roofline, with the case's marks;
    plain text (no markup)."""
    if not case.ok:
        return case.status.upper()
    if case.contended:  # its median says how busy the machine was, not how fast the kernel is
        return "contended ^"
    step = case.summary()
    fraction = run.fraction(case) if run else None
    exceeded = bool(run) and run.exceeds_roofline(case)
    return (f"{format_time(step.median)} {format_precision(step.precision)}"
            + (f" {100 * fraction:.0f}%" if fraction is not None else "")
            + marks(case, exceeded))


def cell(case, run: RunResult | None = None, detail: bool = True) -> str:
    """A case's cell; ``run`` gives its roofline fractions. Without ``detail``, one line
    (``short_cell``)."""
    if not case.ok:
        return f"[red]{case.status.upper()}[/red]"
    if case.contended:  # its median says how busy the machine was, not how fast the kernel is
        return "[yellow]contended[/yellow] ^"
    if not detail:
        return short_cell(case, run)
    step = case.summary()
    fraction = run.fraction(case) if run else None
    tput_fraction = run.fraction(case, throughput=True) if run else None
    bandwidth = f"{case.bandwidth / 1e9:.3g} GB/s{'*' if case.fits_in_cache else ''}"
    if fraction is not None:
        bandwidth += f" {100 * fraction:.0f}%"
    exceeded = bool(run) and run.exceeds_roofline(case)
    lines = [f"{format_time(step.median)} {format_precision(step.precision)}"
             f"{marks(case, exceeded)}"]
    if step.stalled:
        lines.append(f"{len(step.stalled)} of {step.windows} windows stalled")
    fewest = run.settings.get("windows") if run else None
    if fewest and step.windows > fewest:  # its ± was wider than the precision asked for
        lines.append(f"{step.windows} windows")
    if case.samples.host is not None:
        lines.append(f"host {format_time(case.summary('step', 'host').median)}")
    if case.throughput is not None:
        tput = f"tput {format_time(case.throughput.median)}"
        if tput_fraction is not None:
            tput += f" {100 * tput_fraction:.0f}%"
        lines.append(tput)
    floors = run.allreduce_floors.get(case.spec.ranks) if run else None
    if floors and "allreduce" in case.samples.phases:
        allreduce = case.summary("allreduce").median
        lines.append(f"allreduce {format_time(allreduce)} "
                     f"{allreduce / float(np.median(floors)):.1f}× floor")
    lines += [phase_split(case), bandwidth]
    for hook in axes.AXES:  # what each measured axis adds to the case's cell
        lines += hook.detail(case)
    return "\n".join(lines)


def short_legend(run: RunResult) -> str:
    """What the one-line cells of ``step_table`` say."""
    roof = " and its % of the read roofline measured at the case's size" if run.probe else ""
    marks_ = "; ".join(f"{mark} {meaning}" for mark, meaning in MARKS.items())
    return ("Median latency of one step, the half-width of its 95% interval (from the spread "
            f"between windows){roof}; --detail shows throughput, phases, GB/s and memory; "
            f"{marks_}.")


def legend(run: RunResult) -> str:
    """What the cells of ``step_table`` say."""
    s = run.settings
    roof = ", and as % of the read roofline measured at the case's size" if run.probe else ""
    cache = "L2" if is_cuda(s.get("device")) else "the last-level cache"
    marks_ = "; ".join(f"{mark} {meaning}" for mark, meaning in MARKS.items())
    return ("First line: median latency of one step (it starts on an idle device) and the "
            "half-width of its 95% interval, from the spread between windows within this run; "
            "windows stalled: windows 3 times slower than the fastest, left out of the median "
            "and the interval; host: its launch "
            "time on the CPU; tput: time per step in batches of back-to-back steps (steady "
            "state), and its % of the roofline; allreduce: its median time and its multiple of "
            "the all-reduce floor (data-parallel cases); f·b·u%: the phases' shares of the step "
            f"(forward, backward, allreduce, update); GB/s: x and y read once per step "
            f"time{roof}; * data fits in {cache}; mem: the most a step allocates beyond x, y "
            "and w, in arrays of N samples of the case's dtype, and the arrays the byte model "
            "says it writes; "
            f"{marks_}.")


def step_table(run: RunResult, width: int | None = None, detail: bool = False) -> Group:
    """The run's cells, kernels as rows and sizes as columns, with the legend below; one line
    per cell, or with ``detail`` every figure of ``cell``.

    Where the table would be wider than ``width`` characters, the sizes are split over
    several tables, so that no kernel's name or cell is cut.
    """
    s = run.settings
    sizes = sorted({c.spec.n_samples for c in run.cases})
    kernels = list(dict.fromkeys(c.spec.name for c in run.cases))
    by_key = {(c.spec.name, c.spec.n_samples): c for c in run.cases}
    cells = {key: cell(case, run, detail) for key, case in by_key.items()}
    title = f"median step time on {s['device']}, {s['dtype']}, D = {s['n_features']}"
    if s.get("cache_state") == "cold":
        title += ", cold caches"
    if run.probe:
        title += f"; roofline {run.probe['bandwidth'] / 1e9:.3g} GB/s from memory"
    name_width = max(map(len, kernels), default=6) + 4
    cell_width = max((len(line) for text in cells.values() for line in
                      Text.from_markup(text).plain.splitlines()), default=8) + 3
    per_table = len(sizes) if width is None else max(1, (width - name_width) // cell_width)
    tables = []
    for start in range(0, max(len(sizes), 1), per_table):
        chunk = sizes[start:start + per_table]
        table = Table(title=title if start == 0 else None, show_lines=detail)
        table.add_column("kernel", no_wrap=True)
        for n in chunk:
            table.add_column(f"N = {format_size(n)}", justify="right", no_wrap=True)
        for k in kernels:
            table.add_row(k, *(cells.get((k, n), "") for n in chunk))
        tables.append(table)
    return Group(*tables, Text(legend(run) if detail else short_legend(run)))


def sizes_header(sizes, first: str = "kernel") -> list[str]:
    """The two header lines of a Markdown table with a column per sample count."""
    return ["| " + first + " | " + " | ".join(f"N = {format_size(n)}" for n in sizes) + " |",
            "|---|" + "---:|" * len(sizes)]


def markdown_table(run: RunResult, sizes=None, cell=None) -> list[str]:
    """A Markdown table of ``cell(case, run)`` (``short_cell``'s one line by default), kernels
    as rows: what the README shows of a results file (``scripts/docs_tables.py`` writes it
    there, a test keeps it in step) and what ``report`` writes."""
    cell = cell or short_cell
    sizes = sorted(sizes or {c.spec.n_samples for c in run.cases})
    kernels = list(dict.fromkeys(c.spec.name for c in run.cases))
    by_key = {(c.spec.name, c.spec.n_samples): c for c in run.cases}
    lines = sizes_header(sizes)
    for k in kernels:
        cells = [cell(by_key[(k, n)], run) if (k, n) in by_key else "" for n in sizes]
        lines.append(f"| {k} | " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def failures(run: RunResult) -> list[str]:
    """A line for each case not timed, and for each kernel skipped in a dtype of the run."""
    return ([f"{c.spec.label}: {c.status}: {c.message}" for c in run.cases if not c.ok]
            + [f"not run: {why}" for why in run.settings.get("skipped", [])])


def format_times(values: list[float]) -> str:
    """Several times in the unit of the smallest, three significant digits each:
    ``201 / 206 µs``."""
    unit = format_time(min(values)).split()[-1]
    scale = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "ns": 1e-9}[unit]
    return " / ".join(f"{float(f'{v / scale:.3g}'):g}" for v in values) + f" {unit}"


def runs_markdown(runs: list[RunResult], sizes=None, roofline: bool = False) -> list[str]:
    """Runs of the same cases side by side, kernels as rows: in each cell the median latency of
    every run, then in brackets their time per step in batches, and with ``roofline`` each run's
    batched share of the read roofline measured in its own rounds. How far the runs' values lie
    apart is the spread between runs, which no one run's interval shows."""
    sizes = sorted(sizes or {c.spec.n_samples for r in runs for c in r.cases})
    kernels = list(dict.fromkeys(c.spec.name for r in runs for c in r.cases))
    found = [{(c.spec.name, c.spec.n_samples): c for c in r.cases} for r in runs]
    lines = sizes_header(sizes)
    for k in kernels:
        cells = []
        for n in sizes:
            cases = [(run, f.get((k, n))) for run, f in zip(runs, found)]
            if any(c is None for _, c in cases):
                cells.append("")
                continue
            bad = [c.status.upper() if not c.ok else "contended" for _, c in cases
                   if not c.reliable]
            if bad:
                cells.append(" / ".join(dict.fromkeys(bad)))
                continue
            cell = format_times([c.summary().median for _, c in cases])
            if all(c.throughput is not None for _, c in cases):
                cell += f" ({format_times([c.throughput.median for _, c in cases])})"
            fractions = [run.fraction(c, throughput=c.throughput is not None)
                         for run, c in cases]
            if roofline and all(f is not None for f in fractions):
                cell += " · " + " / ".join(f"{100 * f:.0f}" for f in fractions) + "%"
            cells.append(cell)
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return lines
