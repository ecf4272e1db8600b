"""gdbench report: a Markdown report of results files, with plots and findings."""

from __future__ import annotations

from gdbench.analysis.convergence import write_converge_report
from gdbench.analysis.report import write_report
from gdbench.cli.common import converge_files, parse_size, read_runs
from gdbench.files.paths import check_report_target

NAME = "report"
HELP = "write a Markdown report with plots and findings"


def add_arguments(p) -> None:
    p.add_argument("results", nargs="+", help="gdbench results JSON files")
    p.add_argument("-o", "--output", required=True, metavar="FILE.md")
    p.add_argument("--size", help="sample count of the phase plot (default: the largest)")


def main(args) -> int:
    out = check_report_target(args.output, "-o")
    converged = converge_files(args.results)
    if converged:
        print(write_converge_report(converged, args.results, out))
        return 0
    size = parse_size(args.size)
    print(write_report(read_runs(args.results), args.results, out, size))
    return 0
