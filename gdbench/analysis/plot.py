"""Plots of one or more runs: scaling, effective bandwidth against the roofline, phase split.

Headless (matplotlib's Agg backend), PNG and SVG. matplotlib comes with the ``plot`` extra.
"""

from __future__ import annotations

import math
from pathlib import Path

from gdbench.analysis.findings import run_labels, scaling
from gdbench.core.devices import is_cuda, missing_module
from gdbench.core.units import format_size
from gdbench.files.paths import check_folder, check_target
from gdbench.files.results import replace_atomic
from gdbench.records.roofline import Probe
from gdbench.records.run import RunResult

FORMATS = ("png", "svg")
PLOTS = ("scaling", "bandwidth", "phases", "probe", "ranks")


def pyplot():
    reason = missing_module("matplotlib")
    if reason:
        raise ValueError(f"plotting needs matplotlib: {reason}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def series(runs: list[RunResult], labels: list[str]) -> dict[tuple[str, str, str], list]:
    """The ok cases of every run, by (kernel as reported, device, run label), by sample count."""
    lines: dict[tuple[str, str, str], list] = {}
    for run, label in zip(runs, labels):
        for c in run.cases:
            if c.reliable:
                lines.setdefault((c.spec.name, c.spec.device, label), []).append(c)
    return {k: sorted(v, key=lambda c: c.spec.n_samples) for k, v in lines.items()}


def plottable(runs: list[RunResult]) -> bool:
    """Whether ``series`` of ``runs`` has a line: some case timed and not held back."""
    return any(c.reliable for run in runs for c in run.cases)


def nothing_to_plot(runs: list[RunResult]) -> str:
    """Why ``series`` of ``runs`` is empty."""
    if any(c.ok for run in runs for c in run.cases):
        return ("every timed case was held back by other work (contended), and plots leave "
                "those out")
    return "the results hold no successfully timed case to plot"


def series_name(name: str, device: str, label: str) -> str:
    return f"{name} ({device}{', ' + label if label else ''})"


def check_plot_files(out_dir, stems) -> Path:
    """``out_dir`` once it is a folder (or can be made one) in which every plot file of
    ``stems`` is nothing yet or a regular file (``gdbench.files.paths``); ValueError otherwise."""
    out_dir = check_folder(out_dir, "the plot folder")
    for stem in stems:
        for fmt in FORMATS:
            check_target(out_dir / f"{stem}.{fmt}", "plot file")
    return out_dir


SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_of_ten(x: float) -> str:
    """``x`` as a log axis labels it: 10ⁿ, or c×10ⁿ at a minor tick."""
    exponent = math.floor(math.log10(x) + 1e-9)
    coeff = round(x / 10.0**exponent)
    power = "10" + str(exponent).translate(SUPERSCRIPT)
    return power if coeff == 1 else f"{coeff}×{power}"


def plain_log_labels(fig) -> None:
    """The tick labels of every log axis of ``fig`` in plain text (10⁶): matplotlib's own are
    mathtext, whose parsing took a quarter of the time a plot took to save."""
    from matplotlib.ticker import LogFormatter

    class Powers(LogFormatter):  # matplotlib's choice of the ticks to label, in plain text
        def _num_to_string(self, x, vmin, vmax):
            return power_of_ten(x)

    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                axis.set_major_formatter(Powers())
                axis.set_minor_formatter(Powers(labelOnlyBase=False))


def save_figure(fig, out_dir: Path, stem: str, formats=FORMATS) -> list[Path]:
    """Each format written to a temporary file and renamed over its name, as results are."""
    plain_log_labels(fig)
    paths = []
    for fmt in formats:
        path = check_target(Path(out_dir) / f"{stem}.{fmt}", "plot file")
        paths.append(replace_atomic(path, lambda tmp, fmt=fmt: fig.savefig(
            tmp, dpi=120, bbox_inches="tight", format=fmt)))
    return paths


def legend(ax, loc: str = "best") -> None:
    """The legend in two columns inside the axes; beside them, where it would cover the lines
    (more than 10 series: several runs of every kernel)."""
    count = len(ax.get_legend_handles_labels()[1])
    if count > 10:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0,
                  ncol=1 + count // 30)
    else:
        ax.legend(fontsize=8, ncol=2, loc=loc)


def scaling_figure(plt, lines):
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for index, ((name, device, label), cases) in enumerate(lines.items()):
        line, = ax.loglog([c.spec.n_samples for c in cases], [c.summary().median for c in cases],
                          marker="o", linestyle="-" if is_cuda(device) else "--",
                          label=series_name(name, device, label))
        line.set_gid(f"series-{index}")  # the page's script finds a series' points by it
    ax.set(xlabel="samples N", ylabel="median step time (s)", title="Step time against sample count")
    ax.grid(True, which="both", alpha=0.3)
    legend(ax)
    return fig


def bandwidth_figure(plt, runs, labels, lines):
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for index, ((name, device, label), cases) in enumerate(lines.items()):
        line, = ax.loglog([c.spec.n_samples for c in cases], [c.bandwidth / 1e9 for c in cases],
                          marker="o", linestyle="-" if is_cuda(device) else "--",
                          label=series_name(name, device, label))
        line.set_gid(f"series-{index}")
    for run, label in zip(runs, labels):
        if run.rooflines:  # measured at each case's size, in every round
            by_size = {}
            for c in run.cases:
                if run.roofline(c):
                    by_size[c.spec.n_samples] = run.roofline(c) / 1e9
            sizes = sorted(by_size)
            ax.plot(sizes, [by_size[n] for n in sizes], color="black", linewidth=1.5,
                    drawstyle="steps-mid",
                    label=series_name("roofline at each size", run.settings["device"], label))
        elif run.probe:
            device = run.probe["device"]
            read = Probe.from_dict(run.probe).bandwidth  # a reading method's, never a copy's
            ax.axhline(read / 1e9, color="black", linewidth=1.5)
            ax.annotate(f"{device} roofline, memory: {read / 1e9:.3g} GB/s",
                        (0.01, read / 1e9), xycoords=("axes fraction", "data"),
                        va="bottom", fontsize=8)
            if run.probe.get("cache_bandwidth"):
                ax.axhline(run.probe["cache_bandwidth"] / 1e9, color="gray", linestyle=":")
                ax.annotate(f"{device} roofline, cache: {run.probe['cache_bandwidth'] / 1e9:.3g} GB/s",
                            (0.01, run.probe["cache_bandwidth"] / 1e9),
                            xycoords=("axes fraction", "data"), va="bottom", fontsize=8)
    ax.set(xlabel="samples N", ylabel="effective bandwidth (GB/s): x and y read once per step",
           title="Effective bandwidth against the measured roofline")
    ax.grid(True, which="both", alpha=0.3)
    legend(ax, "lower right")
    return fig


def phases_figure(plt, runs, labels, size: int | None):
    """Each phase's median time at one size, one row per case, on a log axis so that a 2 µs
    phase and a 2 ms one both read; a case that was not timed says why on its row."""
    cases = [(label, c) for run, label in zip(runs, labels) for c in run.cases]
    sizes = {c.spec.n_samples for _, c in cases if c.ok}
    if size is None:
        size = max(sizes)
    elif size not in sizes:
        raise ValueError(f"no case with {size} samples; sizes in the results: "
                         f"{', '.join(format_size(n) for n in sorted(sizes))}")
    rows = [(series_name(c.spec.name, c.spec.device, label), c) for label, c in cases
            if c.spec.n_samples == size]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.5))
    styles = {"forward": ("tab:blue", "o"), "backward": ("tab:orange", "s"),
              "update": ("tab:green", "^"), "step": ("black", "D")}
    times = [c.summary(p).median for _, c in rows if c.ok for p in ("step", *c.samples.phases)]
    for i, (_, case) in enumerate(rows):
        if not case.ok:
            ax.annotate(case.status.upper(), (0.02, i), xycoords=("axes fraction", "data"),
                        va="center", fontsize=8, color="tab:red")
            continue
        for phase in dict.fromkeys(("step", *case.samples.phases)):
            color, marker = styles.get(phase, ("tab:purple", "x"))
            ax.scatter(case.summary(phase).median * 1e6, i, color=color, marker=marker,
                       label=phase if phase not in ax.get_legend_handles_labels()[1] else None)
    ax.set_xscale("log")
    if times:
        ax.set_xlim(min(times) * 1e6 / 2, max(times) * 1e6 * 2)
    ax.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=8)
    ax.set_ylim(-0.5, len(rows) - 0.5)
    ax.set(xlabel="median time (µs, log scale)",
           title=f"Phases of one step at N = {format_size(size)}")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def probe_figure(plt, runs, labels):
    """The probe's bandwidth against working-set size, with the cache sizes reported."""
    curves = [(r, label) for r, label in zip(runs, labels) if r.probe and r.probe.get("curve")]
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for run, label in curves:
        curve = {int(k): v for k, v in run.probe["curve"].items()}
        sizes = sorted(curve)
        line, = ax.loglog(sizes, [curve[n] / 1e9 for n in sizes], marker="o",
                          label=run.probe["device"] + (f", {label}" if label else ""))
        for name, size in run.probe.get("levels", {}).items():
            ax.axvline(size, color=line.get_color(), linestyle=":", linewidth=1)
            ax.annotate(name, (size, 0.98), xycoords=("data", "axes fraction"), fontsize=8,
                        ha="right", va="top", rotation=90, color=line.get_color())
    ax.set(xlabel="working set (bytes)", ylabel="streaming read (GB/s)",
           title="Measured bandwidth against working set, and the caches reported")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def ranks_figure(plt, runs, labels):
    """Parallel efficiency against N for each data-parallel kernel and world size."""

    rows = [(label, s) for run, label in zip(runs, labels) for s in scaling(run)]
    if not rows:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, kind in zip(axes, ("strong", "weak")):
        lines: dict[tuple, list] = {}
        for label, s in rows:
            if s.kind == kind:
                lines.setdefault((s.kernel, s.ranks, label), []).append(s)
        for (kernel, ranks, label), points in lines.items():
            points.sort(key=lambda s: s.n_samples)
            ax.semilogx([p.n_samples for p in points], [100 * p.efficiency for p in points],
                        marker="o", label=f"{kernel}, {ranks} ranks" + (f", {label}" if label
                                                                         else ""))
        ax.axhline(100, color="black", linewidth=1)
        ax.set(xlabel="samples N" + (" per rank" if kind == "weak" else " in all"),
               title=f"{kind.capitalize()} scaling")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("parallel efficiency (%)")
    return fig


def figures(runs: list[RunResult], size: int | None = None,
            labels: list[str] | None = None) -> list[tuple[str, object]]:
    """(name, matplotlib figure) of every plot the runs make, in PLOTS order: ``probe`` only
    for runs whose probe measured the bandwidth curve, ``ranks`` (parallel efficiency) only
    for data-parallel runs over several world sizes. The caller closes them."""
    plt = pyplot()
    labels = labels or run_labels(runs)
    lines = series(runs, labels)
    if not lines:
        raise ValueError(nothing_to_plot(runs))
    made = [("scaling", scaling_figure(plt, lines)),
            ("bandwidth", bandwidth_figure(plt, runs, labels, lines)),
            ("phases", phases_figure(plt, runs, labels, size)),
            ("probe", probe_figure(plt, runs, labels)),
            ("ranks", ranks_figure(plt, runs, labels))]
    return [(name, fig) for name, fig in made if fig is not None]


def plot(runs: list[RunResult], out_dir, size: int | None = None,
         labels: list[str] | None = None) -> list[Path]:
    """Write scaling, bandwidth, phases and probe plots (PNG and SVG) of ``runs`` to ``out_dir``.

    Runs of the same device are told apart by ``labels`` (``findings.run_labels``).
    """
    labels = labels or run_labels(runs)
    if not series(runs, labels):
        raise ValueError(nothing_to_plot(runs))
    out_dir = check_plot_files(out_dir, PLOTS)
    paths = []
    for name, fig in figures(runs, size, labels):
        paths += save_figure(fig, out_dir, name)
        pyplot().close(fig)
    return paths
