"""gdbench plot: scaling, bandwidth, phase, probe and scaling-efficiency plots of results files."""

from __future__ import annotations

import sys

from gdbench.analysis.convergence import plot_converge
from gdbench.analysis.findings import run_labels
from gdbench.analysis.plot import nothing_to_plot, plot, plottable
from gdbench.analysis.tables import failures
from gdbench.cli.common import converge_files, parse_size, read_runs
from gdbench.files.paths import check_folder

NAME = "plot"
HELP = "plot scaling, bandwidth and phases of results files"


def add_arguments(p) -> None:
    p.add_argument("results", nargs="+", help="gdbench results JSON files")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for the plots")
    p.add_argument("--size", help="sample count of the phase plot (default: the largest)")


def main(args) -> int:
    converged = converge_files(args.results)
    if converged:
        check_folder(args.output, "-o")
        print("\n".join(str(p) for p in plot_converge(converged, args.output)))
        return 0
    size = parse_size(args.size)
    runs = read_runs(args.results)
    check_folder(args.output, "-o")
    if not any(c.ok for run in runs for c in run.cases):
        return nothing_timed("plot", runs, args.results)
    if not plottable(runs):
        print(f"gdbench plot: {nothing_to_plot(runs)}: nothing to plot", file=sys.stderr)
        return 1
    paths = plot(runs, args.output, size, run_labels(runs, args.results))
    print("\n".join(str(p) for p in paths))
    return 0


def nothing_timed(command: str, runs, paths) -> int:
    """No case of ``runs`` was timed: each failure on a line, exit status 1."""
    print(f"gdbench {command}: no case in {', '.join(map(str, paths))} was timed, so there is "
          "nothing to plot:", file=sys.stderr)
    for run in runs:
        for line in failures(run):
            print(f"  {line}", file=sys.stderr)
    return 1
