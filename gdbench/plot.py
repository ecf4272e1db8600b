"""Plots of one or more runs: scaling, effective bandwidth against the roofline, phase split.

Headless (matplotlib's Agg backend), PNG and SVG. matplotlib comes with the ``plot`` extra.
"""

from __future__ import annotations

from pathlib import Path

from gdbench.devices import missing_module
from gdbench.results import RunResult, format_size

FORMATS = ("png", "svg")


def _pyplot():
    reason = missing_module("matplotlib")
    if reason:
        raise ValueError(f"plotting needs matplotlib: {reason}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def series(runs: list[RunResult]) -> dict[tuple[str, str], list]:
    """The ok cases of every run, by (kernel as reported, device), sorted by sample count."""
    lines: dict[tuple[str, str], list] = {}
    for run in runs:
        for c in run.cases:
            if c.ok:
                lines.setdefault((c.spec.name, c.spec.device), []).append(c)
    return {k: sorted(v, key=lambda c: c.spec.n_samples) for k, v in lines.items()}


def _save(fig, out_dir: Path, stem: str) -> list[Path]:
    paths = []
    for fmt in FORMATS:
        path = out_dir / f"{stem}.{fmt}"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        paths.append(path)
    return paths


def plot_scaling(plt, lines, out_dir) -> list[Path]:
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for (name, device), cases in lines.items():
        ax.loglog([c.spec.n_samples for c in cases], [c.summary().median for c in cases],
                  marker="o", linestyle="-" if device == "cuda" else "--", label=f"{name} ({device})")
    ax.set(xlabel="samples N", ylabel="median step time (s)", title="Step time against sample count")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    paths = _save(fig, out_dir, "scaling")
    plt.close(fig)
    return paths


def plot_bandwidth(plt, runs, lines, out_dir) -> list[Path]:
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for (name, device), cases in lines.items():
        ax.loglog([c.spec.n_samples for c in cases], [c.bandwidth / 1e9 for c in cases],
                  marker="o", linestyle="-" if device == "cuda" else "--", label=f"{name} ({device})")
    for run in runs:
        if run.rooflines:  # measured at each case's size, in every round
            by_size = {}
            for c in run.cases:
                if run.roofline(c):
                    by_size[c.spec.n_samples] = run.roofline(c) / 1e9
            sizes = sorted(by_size)
            ax.plot(sizes, [by_size[n] for n in sizes], color="black", linewidth=1.5,
                    drawstyle="steps-mid", label=f"roofline at each size ({run.settings['device']})")
        elif run.probe:
            device = run.probe["device"]
            ax.axhline(run.probe["bandwidth"] / 1e9, color="black", linewidth=1.5)
            ax.annotate(f"{device} roofline, memory: {run.probe['bandwidth'] / 1e9:.3g} GB/s",
                        (0.01, run.probe["bandwidth"] / 1e9), xycoords=("axes fraction", "data"),
                        va="bottom", fontsize=8)
            if run.probe.get("cache_bandwidth"):
                ax.axhline(run.probe["cache_bandwidth"] / 1e9, color="gray", linestyle=":")
                ax.annotate(f"{device} roofline, cache: {run.probe['cache_bandwidth'] / 1e9:.3g} GB/s",
                            (0.01, run.probe["cache_bandwidth"] / 1e9),
                            xycoords=("axes fraction", "data"), va="bottom", fontsize=8)
    ax.set(xlabel="samples N", ylabel="effective bandwidth (GB/s): x and y read once per step",
           title="Effective bandwidth against the measured roofline")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2, loc="lower right")
    paths = _save(fig, out_dir, "bandwidth")
    plt.close(fig)
    return paths


def plot_phases(plt, lines, out_dir, size: int | None) -> list[Path]:
    sizes = {c.spec.n_samples for cases in lines.values() for c in cases}
    if size is None:
        size = max(sizes)
    elif size not in sizes:
        raise ValueError(f"no case with {size} samples; sizes in the results: "
                         f"{', '.join(format_size(n) for n in sorted(sizes))}")
    rows = [(f"{name} ({device})", c) for (name, device), cases in lines.items()
            for c in cases if c.spec.n_samples == size]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    colors = {"forward": "tab:blue", "backward": "tab:orange", "update": "tab:green",
              "step": "tab:gray"}
    for i, (label, case) in enumerate(rows):
        left = 0.0
        for phase in case.samples.phases:
            width = case.summary(phase).median * 1e6
            ax.barh(i, width, left=left, color=colors.get(phase, "tab:purple"),
                    label=phase if phase not in ax.get_legend_handles_labels()[1] else None)
            left += width
    ax.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=8)
    ax.set(xlabel="median time (µs)", title=f"Phases of one step at N = {format_size(size)}")
    ax.legend(fontsize=8)
    paths = _save(fig, out_dir, "phases")
    plt.close(fig)
    return paths


def plot_probe(plt, runs, out_dir) -> list[Path]:
    """The probe's bandwidth against working-set size, with the cache sizes reported."""
    curves = [r for r in runs if r.probe and r.probe.get("curve")]
    if not curves:
        return []
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for index, run in enumerate(curves):
        curve = {int(k): v for k, v in run.probe["curve"].items()}
        sizes = sorted(curve)
        line, = ax.loglog(sizes, [curve[n] / 1e9 for n in sizes], marker="o",
                          label=f"{run.probe['device']}, run {index + 1}")
        for name, size in run.probe.get("levels", {}).items():
            ax.axvline(size, color=line.get_color(), linestyle=":", linewidth=1)
            ax.annotate(name, (size, 0.98), xycoords=("data", "axes fraction"), fontsize=8,
                        ha="right", va="top", rotation=90, color=line.get_color())
    ax.set(xlabel="working set (bytes)", ylabel="streaming read (GB/s)",
           title="Measured bandwidth against working set, and the caches reported")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    paths = _save(fig, out_dir, "probe")
    plt.close(fig)
    return paths


def plot(runs: list[RunResult], out_dir, size: int | None = None) -> list[Path]:
    """Write scaling, bandwidth, phases and probe plots (PNG and SVG) of ``runs`` to ``out_dir``.

    The probe plot only for runs whose probe measured the bandwidth curve.
    """
    plt = _pyplot()
    lines = series(runs)
    if not lines:
        raise ValueError("the results hold no successfully timed case to plot")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return (plot_scaling(plt, lines, out_dir) + plot_bandwidth(plt, runs, lines, out_dir)
            + plot_phases(plt, lines, out_dir, size) + plot_probe(plt, runs, out_dir))
