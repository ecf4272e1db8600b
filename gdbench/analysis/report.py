"""A Markdown report of one or more runs: environment, tables, plots and findings."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gdbench.analysis import ab as ab_view
from gdbench.analysis import bisect as bisect_view
from gdbench.analysis import findings
from gdbench.analysis.plot import nothing_to_plot, plot, plottable
from gdbench.analysis.tables import (
    MARKS,
    format_precision,
    format_time,
    markdown_table,
    marks,
    sizes_header,
)
from gdbench import axes
from gdbench.core.devices import is_cuda
from gdbench.core.units import format_bytes, format_size
from gdbench.files.results import write_atomic
from gdbench.measure.source import describe
from gdbench.records.roofline import Probe
from gdbench.records.run import RunResult


def environment_lines(run: RunResult) -> list[str]:
    env, s = run.environment, run.settings
    lines = [f"- device **{s['device']}**, {s['dtype']}, D = {s['n_features']}, "
             f"budget {s.get('budget_s')} s per case, precision {s.get('precision', 0):.0%}"
             + (f", data-parallel over {', '.join(map(str, s['world_sizes']))} ranks "
                f"({s.get('dist_backend')})" if s.get("world_sizes") else "")
             + ("" if run.complete else f" (**{run.incomplete}**)"),
             f"- CPU: {env['cpu']['model']}, {env['cpu']['usable_cores']} usable cores; "
             f"Python {env['python']}; " + ", ".join(f"{k} {v}" for k, v in env["packages"].items())]
    if env.get("gpu"):
        g = env["gpu"]
        line = f"- GPU: {g.get('name')}, CUDA {g.get('cuda')}, driver {g.get('driver')}"
        if isinstance(g.get("nvml"), dict):
            nvml = g["nvml"]
            line += (f", SM clock up to {nvml.get('max_sm_clock_mhz')} MHz, power limit "
                     f"{nvml.get('power_limit_w')} W")
        lines.append(line)
    if run.probe:
        probe = Probe.from_dict(run.probe)
        line = (f"- roofline: {probe.bandwidth / 1e9:.3g} GB/s read from memory "
                f"({probe.best_method})")
        if probe.copy_bandwidth:
            line += (f" (a copy: {probe.copy_bandwidth / 1e9:.3g} GB/s read + written, "
                     "for reference)")
        if run.probe.get("cache_bandwidth"):
            cache = "L2" if is_cuda(run.probe["device"]) else "the last-level cache"
            line += (f", {run.probe['cache_bandwidth'] / 1e9:.3g} GB/s from {cache} "
                     f"({run.probe['cache_nbytes'] / 2**20:.3g} MiB streamed)")
        if run.rooflines:
            line += "; at each case's size: " + ", ".join(
                f"{format_bytes(b)} {np.median(v) / 1e9:.3g} GB/s"
                for b, v in sorted(run.rooflines.items()))
        lines.append(line)
    windows, most = run.settings.get("windows"), run.settings.get("max_windows")
    if windows:
        most = most if most and most > windows else None
        more = (f" (more than {windows} while a case's ± was wider than its precision and "
                "its budget lasted)" if most else "")
        lines.append(f"- {windows}{f' to {most}' if most else ''} windows per case{more}, "
                     f"interleaved with the other cases of its size; "
                     f"{run.settings.get('cache_state', 'warm')} caches")
    lines.append(f"- source: {describe(env.get('source'), env.get('gdbench_commit', ''))}")
    if env.get("energy"):
        lines.append(f"- energy: {env['energy']}")
    return lines


def _step_cell(c, run: RunResult) -> str:
    """The report's cell: median latency, its ±, the case's marks, time per step in batches,
    effective bandwidth and the roofline fractions of both."""
    if not c.ok:
        return c.status.upper()
    if c.contended:
        return "contended ^"
    cell = (f"{format_time(c.summary().median)} {format_precision(c.summary().precision)}"
            f"{marks(c, run.exceeds_roofline(c))}")
    if c.throughput is not None:
        cell += f" · {format_time(c.throughput.median)}"
    cell += f" · {c.bandwidth / 1e9:.3g} GB/s"
    if run.fraction(c) is not None:
        cell += f" · {100 * run.fraction(c):.0f}%"
        if c.throughput is not None:
            cell += f" · {100 * run.fraction(c, throughput=True):.0f}%"
    return cell


def _step_table(run: RunResult) -> list[str]:
    return markdown_table(run, cell=_step_cell)


def _many_steps(run: RunResult, label: str) -> list[str]:
    ratios = findings.many_steps(run)
    if not ratios:
        return []
    sizes = sorted({n for by_size in ratios.values() for n in by_size})
    return ["", "### Many steps per call" + (f" ({label})" if label else ""), "",
            "Median time per step with K steps per call over the same kernel's with one, "
            "measured in the same run (below 1: K steps per call pay):", "",
            "| kernel | K | " + " | ".join(f"N = {format_size(n)}" for n in sizes) + " |",
            "|---|---:|" + "---:|" * len(sizes)] + [
        f"| {name} | {k} | " + " | ".join(f"{by_size[n]:.2f}" if n in by_size else ""
                                          for n in sizes) + " |"
        for (name, k), by_size in ratios.items()]


def _named(name: str, device: str, label: str) -> str:
    return f"{name} ({device}{', ' + label if label else ''})"


def scaling_lines(run: RunResult, label: str) -> list[str]:
    """Strong and weak scaling across ranks, the crossover, and the all-reduce floor."""
    rows = findings.scaling(run)
    if not rows:
        return []
    plain = findings.has_plain_steps(run)
    lines = ["", "### Scaling across ranks" + (f" ({label})" if label else ""), "",
             "Median step time on P ranks against " + (
                 "the plain step in one process (T1, no all-reduce)" if plain else
                 "one rank (T1, all-reduce included: this run has no plain step)")
             + "; parallel efficiency: strong scaling (the same total N) T1 / (P · TP), weak "
             "scaling (the same N per rank) T1 / TP. The data-parallel step on one rank, "
             "all-reduce included, is shown beside it.", "",
             "| kernel | P | scaling | N (per rank for weak) | plain step | 1 rank | P ranks "
             "| efficiency |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for s in rows:
        times = [s.single if plain else None, s.one_rank, s.time]
        lines.append(f"| {s.kernel} | {s.ranks} | {s.kind} | {format_size(s.n_samples)} | "
                     + " | ".join("-" if t is None else format_time(t) for t in times)
                     + f" | {s.efficiency:.0%} |")
    lines += ["", "Splitting pays (faster on P ranks than on one, at this N and every larger one "
              "measured):", ""]
    for (kernel, ranks), n in findings.rank_crossovers(run).items():
        where = f"from N = {format_size(n)} on" if n else "at none of the sizes measured"
        lines.append(f"- {kernel} on {ranks} ranks: {where}")
    if run.allreduce_floors:
        lines += ["", "All-reduce floor (one all-reduce of the gradient's size, median of "
                  f"{run.settings.get('dist_backend', 'the backend')}'s, slowest rank), per "
                  "round: " + "; ".join(
                      f"{p} rank{'s' if p > 1 else ''} "
                      + ", ".join(format_time(t) for t in floors)
                      for p, floors in sorted(run.allreduce_floors.items()))]
    return lines


def axis_tables(run: RunResult) -> list[str]:
    """The tables the measured axes give of the run's cases (memory's, and energy's where it
    was read)."""
    return [line for hook in axes.AXES for line in hook.table(run.cases)]


def findings_lines(runs: list[RunResult], labels: list[str]) -> list[str]:
    lines = ["### Fastest kernel at each size", ""]
    for (label, device, n), c in findings.fastest(runs, labels).items():
        lines.append(f"- {device}{' (' + label + ')' if label else ''}, N = {format_size(n)}: "
                     f"**{c.spec.name}**, {format_time(c.summary().median)}")
    speed = findings.speedups(runs, labels)
    if speed:
        sizes = sorted({n for by_size in speed.values() for n in by_size})
        lines += ["", f"### Speedup over the `{findings.BASELINE}` baseline (cpu)", "",
                  *sizes_header(sizes)]
        for (name, device, label), by_size in speed.items():
            lines.append(f"| {_named(name, device, label)} | "
                         + " | ".join(f"{by_size[n]:.3g}×" if n in by_size else "" for n in sizes)
                         + " |")
    crossings = findings.crossovers(runs, labels)
    if crossings:
        lines += ["", "### Where each GPU kernel overtakes the best CPU kernel", ""]
        for x in crossings:
            where = (f"from N = {format_size(x.n_samples)} on" if x.n_samples is not None
                     else "at none of the sizes measured on both")
            lines.append(f"- {x.kernel}{' (' + x.label + ')' if x.label else ''}: {where}")
    for run, label in zip(runs, labels):
        lines += scaling_lines(run, label) + _many_steps(run, label)
    lines += ["", "### Launch-overhead floor", "",
              "The step time at the smallest size is each kernel's fixed cost; a kernel leaves "
              "that floor at the first size whose step takes more than twice as long.", ""]
    for f in findings.launch_floors(runs, labels):
        leaves = (f"leaves it at N = {format_size(f.leaves_at)}" if f.leaves_at
                  else "stays on it at every size measured")
        lines.append(f"- {_named(f.kernel, f.device, f.label)}: {format_time(f.floor)} at "
                     f"N = {format_size(f.smallest)}, {leaves}")
    return lines


# What each plot of ``gdbench.analysis.plot.figures`` shows, as the report's alt text.
CAPTIONS = {"scaling": "step time against sample count", "phases": "phases of one step",
            "bandwidth": "effective bandwidth against the roofline", "ranks": "parallel efficiency",
            "probe": "the roofline probe's bandwidth against working-set size"}


def write_report(runs: list[RunResult], sources: list[str], out, size: int | None = None,
                 plots: bool = True, sessions=(), searches=()) -> Path:
    """Write ``out`` (Markdown) with its plots beside it in ``<stem>-plots/`` (without them
    when not ``plots``), and a section for each ``gdbench ab`` session in ``sessions`` and each
    ``gdbench bisect`` search in ``searches`` (their files' JSON)."""

    out = Path(out)
    ab_lines = [line for session in sessions for line in ab_view.markdown(session)
                .replace("### ", "## ", 1).splitlines() + [""]]
    ab_lines += [line for search in searches for line in bisect_view.markdown(search)
                 .replace("### ", "## ", 1).splitlines() + [""]]
    if not runs:
        write_atomic(out, "\n".join(["# gdbench report", "", *ab_lines]))
        return out
    plots_dir = out.parent / f"{out.stem}-plots"
    labels = findings.run_labels(runs, sources)
    timed = any(c.ok for run in runs for c in run.cases)
    drawn = plots and plottable(runs)
    images = ([p.stem for p in plot(runs, plots_dir, size, labels) if p.suffix == ".png"]
              if drawn else [])
    rel = Path(os.path.relpath(plots_dir, out.parent))
    lines = ["# gdbench report", ""]
    for run, source in zip(runs, sources):
        batched = any(c.ok and c.throughput is not None for c in run.cases)
        legend = ("Median latency of one step · time per step in batches of back-to-back "
                  "steps (throughput) · effective bandwidth at the latency · % of the roofline "
                  "at the latency · at the throughput" if batched else
                  "Median step time · effective bandwidth · % of the roofline")
        flags = "; ".join(f"`{mark}` {meaning}" for mark, meaning in MARKS.items())
        lines += [f"## {source}", "", *environment_lines(run), "", legend + f" ({flags}):", "",
                  *_step_table(run), "", *axis_tables(run)]
        failed = [c for c in run.cases if not c.ok]
        if failed:
            lines += ["Cases not timed:", ""] + [f"- {c.spec.label}: {c.status}: {c.message}"
                                                 for c in failed] + [""]
        for hook in axes.AXES:  # what each measured axis has to say of the cases
            lines += hook.notes(run.cases)
    if not timed:
        lines += ["No case was timed, so there is nothing to plot or to find; the cases above "
                  "say why each was not.", "", *ab_lines]
        write_atomic(out, "\n".join(lines))
        return out
    if plots and not drawn:
        lines += ["## Plots", "", f"None: {nothing_to_plot(runs)}.", ""]
    if drawn:
        lines += ["## Plots", ""]
        for name in images:
            lines += [f"![{CAPTIONS[name]}]({rel / (name + '.png')})", ""]
    lines += ["## Findings", "",
              *findings_lines(runs, labels), "", *ab_lines]
    write_atomic(out, "\n".join(lines))
    return out
