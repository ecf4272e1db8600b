"""gdbench report: a Markdown report of results files with plots and findings, or one HTML page."""

from __future__ import annotations

import json
from pathlib import Path

from gdbench.analysis.convergence import write_converge_report
from gdbench.analysis.html import write_html_report
from gdbench.analysis.report import write_report
from gdbench.cli.common import converge_files, parse_size, read_runs
from gdbench.files.paths import check_report_target
from gdbench.files.results import read_converge

NAME = "report"
HELP = "write a Markdown report with plots and findings, or one self-contained HTML page"


def add_arguments(p) -> None:
    p.add_argument("results", nargs="+", help="gdbench results JSON files (runs; for --html "
                                              "also ab and converge files)")
    p.add_argument("-o", "--output", metavar="FILE.md", help="the Markdown report")
    p.add_argument("--html", metavar="FILE.html",
                   help="one self-contained page: sortable tables, plots to hover, findings")
    p.add_argument("--size", help="sample count of the phase plot (default: the largest)")
    p.add_argument("--no-plots", dest="plots", action="store_false",
                   help="the Markdown report's tables and findings without its plots")


def _kind(path) -> str:
    try:
        d = json.loads(Path(path).read_text())
        return "ab" if d.get("tool") == "gdbench-ab" else d.get("kind", "run")
    except (OSError, ValueError, AttributeError):
        return "run"  # the reader says what is wrong with it


def main(args) -> int:
    if args.output is None and args.html is None:
        raise ValueError("give -o FILE.md, --html FILE.html, or both")
    out = check_report_target(args.output, "-o") if args.output is not None else None
    page = check_report_target(args.html, "--html") if args.html is not None else None
    if out is not None and page is not None and out.resolve() == page.resolve():
        raise ValueError("-o and --html are the same file")
    size = parse_size(args.size)
    if page is not None:
        kinds = {path: _kind(path) for path in args.results}
        runs = [p for p, k in kinds.items() if k == "run"]
        sessions = [json.loads(Path(p).read_text()) for p, k in kinds.items() if k == "ab"]
        converged = [read_converge(p) for p, k in kinds.items() if k == "converge"]
        print(write_html_report(read_runs(runs), runs, page, sessions, converged, size))
    if out is not None:
        markdown_inputs = [p for p in args.results if _kind(p) != "ab"]
        converged = converge_files(markdown_inputs)
        if converged:
            print(write_converge_report(converged, markdown_inputs, out, plots=args.plots))
        else:
            print(write_report(read_runs(markdown_inputs), markdown_inputs, out, size,
                               args.plots))
    return 0
