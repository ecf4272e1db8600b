"""What ``gdbench converge`` found: a table per size, the loss against wall time, a report."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Group
from rich.table import Table

from gdbench.analysis.plot import check_plot_files, pyplot, save_figure
from gdbench.analysis.tables import format_time
from gdbench.core.units import format_size
from gdbench.files.results import write_atomic
from gdbench.records.converge import ConvergeResult

COLUMNS = ("kernel", "learning rate", "steps", "time", "loss above the optimum",
           "weights off by", "first step", "end")


def _rate(d) -> str:
    return f"{d.rule} ({d.lr:.3g})" if d.rule in ("tutorial", "curvature") else f"{d.lr:.3g}"


def rows(result: ConvergeResult, n: int) -> list[tuple[str, ...]]:
    """The table's rows at ``n`` samples: every descent, then the direct solves."""
    out = []
    for d in (d for d in result.descents if d.n_samples == n):
        timed = d.status not in ("wrong", "error", "oom")
        out.append((d.name, _rate(d), str(d.steps) if timed else "",
                    format_time(d.seconds) if timed else "",
                    f"{d.excess:.2g}" if timed else "", f"{d.weight_error:.2g}" if timed else "",
                    format_time(d.warmup_s) if d.warmup_s == d.warmup_s else "",
                    d.status + (f": {d.message}" if d.message else "")))
    for s in (s for s in result.direct if s["n_samples"] == n):
        out.append((f"direct solve, {s['method']} {s['dtype']}", "", "", format_time(s["seconds"]),
                    f"{s['excess']:.2g}", f"{s['weight_error']:.2g}", "", "solved"))
    return out


def title(result: ConvergeResult, n: int) -> str:
    opt = next((o for o in result.optima if o["n_samples"] == n), None)
    s = result.settings
    text = (f"N = {format_size(n)} on {s['device']}, from w = 0 to within {s['tol']:g} of "
            "the optimum")
    if opt:
        text += (f" (loss {opt['loss']:.4g}, curvature L = {opt['curvature']:.3g}: "
                 f"1/L = {1 / opt['curvature']:.3g})")
    return text


def converge_tables(result: ConvergeResult):
    """Rich tables of a converge run, one per size."""
    tables = []
    for n in result.settings["sizes"]:
        table = Table(*COLUMNS, title=title(result, n))
        for row in rows(result, n):
            table.add_row(*row)
        tables.append(table)
    return Group(*tables)


RULE_STYLES = {"tutorial": "--", "curvature": "-"}
RULE_LABELS = {"tutorial": "0.01 (tutorial)", "curvature": "1/L (curvature)"}


def plot_converge(results: list[ConvergeResult], out_dir) -> list[Path]:
    """The plots of ``converge_figures``, written to ``out_dir`` (PNG and SVG)."""
    sizes = sorted({d.n_samples for r in results for d in r.descents})
    out_dir = check_plot_files(out_dir, [f"converge-N{format_size(n)}" for n in sizes])
    paths = []
    for stem, fig in converge_figures(results):
        paths += save_figure(fig, out_dir, stem)
        pyplot().close(fig)
    return paths


def converge_figures(results: list[ConvergeResult]) -> list[tuple[str, object]]:
    """The loss above the optimum against wall time, one plot per size: a colour per kernel
    (and format), a line style per learning rate, every run's descents drawn in the same
    colour; each direct solve's time a vertical line, the tolerance a horizontal one."""
    from matplotlib.lines import Line2D

    plt = pyplot()
    tol = results[0].settings["tol"]
    names = list(dict.fromkeys(d.name for r in results for d in r.descents))
    colours = dict(zip(names, plt.get_cmap("tab20").colors * (1 + len(names) // 20)))
    rules = list(dict.fromkeys(d.rule for r in results for d in r.descents))
    numbers = [rule for rule in rules if rule not in RULE_STYLES]
    styles = {**RULE_STYLES, **dict(zip(numbers, (":", "-.") * (1 + len(numbers) // 2)))}
    made = []
    for n in sorted({d.n_samples for r in results for d in r.descents}):
        fig, ax = plt.subplots(figsize=(10, 5.5))
        for r in results:
            opt = {o["dtype"]: o["loss"] for o in r.optima if o["n_samples"] == n}
            for d in (d for d in r.descents if d.n_samples == n and d.trace):
                loss_opt = opt.get("float64" if d.dtype == "float64" else "float32")
                seconds = [max(t, 1e-7) for _, t, _ in d.trace]
                # a reading below the float64 optimum (rounding) is drawn at a tenth of tol
                excess = [max((loss - loss_opt) / loss_opt, tol / 10) for _, _, loss in d.trace]
                ax.loglog(seconds, excess, color=colours[d.name], linestyle=styles[d.rule],
                          linewidth=1.2, alpha=0.85)
        solves = {}
        for r in results:
            for s in (s for s in r.direct if s["n_samples"] == n):
                ax.axvline(s["seconds"], color="grey", linewidth=2, alpha=0.5)
                solves[f"direct solve ({s['method']}, {s['dtype']})"] = None
        ax.axhline(tol, color="black", linewidth=0.8)
        ax.set(xlabel="wall time (s)", ylabel="loss above the optimum, relative",
               title=f"Gradient descent to the optimum, N = {format_size(n)}"
               + (f", {len(results)} runs" if len(results) > 1 else ""))
        ax.grid(True, which="both", alpha=0.3)
        shown = [name for name in names
                 if any(d.name == name and d.n_samples == n for r in results for d in r.descents)]
        handles = ([Line2D([], [], color=colours[name], label=name) for name in shown]
                   + [Line2D([], [], color="black", linestyle=styles[rule],
                             label=f"learning rate {RULE_LABELS.get(rule, rule)}")
                      for rule in rules]
                   + [Line2D([], [], color="grey", linewidth=2, alpha=0.5, label=label)
                      for label in solves]
                   + [Line2D([], [], color="black", linewidth=0.8, label=f"tolerance {tol:g}")])
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
        fig.tight_layout()
        made.append((f"converge-N{format_size(n)}", fig))
    return made


def write_converge_report(results: list[ConvergeResult], sources, out,
                          plots: bool = True) -> Path:
    """A Markdown report of converge runs, with its plots in ``<stem>-plots/`` (without them
    when not ``plots``)."""
    out = Path(out)
    plots_dir = out.parent / f"{out.stem}-plots"
    paths = plot_converge(results, plots_dir) if plots else []
    lines = ["# gdbench converge report", ""]
    for result, source in zip(results, sources):
        env, s = result.environment, result.settings
        lines += [f"## {source}", "",
                  f"- {s['device']}, {s['dtype']}, D = {s['n_features']}; at most "
                  f"{s['max_steps']} steps and {s['max_seconds']:g} s per descent, stalled after "
                  f"{s['patience']} steps no closer; the loss read every {s['check_every']} "
                  f"step(s)" + ("" if result.complete else " (**interrupted run**)"),
                  f"- CPU: {env['cpu']['model']}, {env['cpu']['usable_cores']} usable cores; "
                  f"Python {env['python']}; "
                  + ", ".join(f"{k} {v}" for k, v in env["packages"].items()), ""]
        for n in s["sizes"]:
            lines += [title(result, n) + ":", "", "| " + " | ".join(COLUMNS) + " |",
                      "|" + "---|" * len(COLUMNS)]
            lines += ["| " + " | ".join(row) + " |" for row in rows(result, n)] + [""]
    rel = Path(os.path.relpath(plots_dir, out.parent))
    lines += [f"![{p.stem}]({rel / p.name})\n" for p in paths if p.suffix == ".png"]
    write_atomic(out, "\n".join(lines))
    return out
