"""gdbench report: a Markdown report of results files with plots and findings, or one HTML page."""

from __future__ import annotations

from gdbench.analysis.convergence import write_converge_report
from gdbench.analysis.html import write_html_report
from gdbench.analysis.report import write_report
from gdbench.cli.common import converge_files, file_kind, parse_size, read_runs
from gdbench.files.paths import check_distinct, check_report_target
from gdbench.files.results import read_ab, read_bisect, read_converge

NAME = "report"
HELP = "write a Markdown report with plots and findings, or one self-contained HTML page"


def add_arguments(p) -> None:
    p.add_argument("results", nargs="+", help="gdbench results JSON files: runs, ab sessions, "
                                              "bisect searches or converge files")
    p.add_argument("-o", "--output", metavar="FILE.md", help="the Markdown report")
    p.add_argument("--html", metavar="FILE.html",
                   help="one self-contained page: sortable tables, plots to hover, findings")
    p.add_argument("--size", help="sample count of the phase plot (default: the largest)")
    p.add_argument("--no-plots", dest="plots", action="store_false",
                   help="the Markdown report's tables and findings without its plots")


def main(args) -> int:
    if args.output is None and args.html is None:
        raise ValueError("give -o FILE.md, --html FILE.html, or both")
    out = check_report_target(args.output, "-o") if args.output is not None else None
    page = check_report_target(args.html, "--html") if args.html is not None else None
    check_distinct({"-o": out, "--html": page,
                    "-o's plots": out.parent / f"{out.stem}-plots" if out else None})
    size = parse_size(args.size)
    kinds = {path: file_kind(path) for path in args.results}
    sessions = [read_ab(p) for p, k in kinds.items() if k == "ab"]
    searches = [read_bisect(p) for p, k in kinds.items() if k == "bisect"]
    others = [p for p, k in kinds.items() if k not in ("ab", "bisect")]
    if page is not None:
        runs = [p for p in others if kinds[p] == "run"]
        converged = [read_converge(p) for p in others if kinds[p] == "converge"]
        print(write_html_report(read_runs(runs), runs, page, sessions, converged, size,
                                searches))
    if out is not None:
        converged = converge_files(others) if others else None
        if converged and (sessions or searches):
            raise ValueError("converge files and ab or bisect files go in Markdown reports of "
                             "their own (--html takes them all)")
        if converged:
            print(write_converge_report(converged, others, out, plots=args.plots))
        else:
            print(write_report(read_runs(others), others, out, size, args.plots, sessions,
                               searches))
    return 0
