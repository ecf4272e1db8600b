"""gdbench compare: compare two results files: ratios, intervals and verdicts per case."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from gdbench.analysis.compare import VERDICTS, compare, incomplete, parse_threshold
from gdbench.analysis.noise import read_floor
from gdbench.analysis.tables import format_percent, format_time
from gdbench.cli.common import stdout_console

NAME = "compare"
HELP = "compare two runs: ratios and verdicts per case"


def add_arguments(p) -> None:
    p.add_argument("base", help="gdbench or pytest-benchmark JSON of the baseline")
    p.add_argument("new", help="gdbench or pytest-benchmark JSON to judge")
    p.add_argument("--threshold", default="5%",
                   help="smallest change that counts: a percentage such as 5%% (default) or a "
                        "fraction such as 0.05; a bare 5 is refused")
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit with status 1 when any case is SLOWER")
    p.add_argument("--noise", help="variation of a case between runs on this machine: a noise "
                                   "file of gdbench noise, or a relative standard deviation "
                                   "such as 3%%")


def main(args) -> int:
    threshold = parse_threshold(args.threshold)
    noise = read_floor(args.noise) if args.noise else None
    rows = compare(args.base, args.new, threshold, noise)
    colors = {"FASTER": "green", "SLOWER": "red", "SAME": "", "AMBIGUOUS": "yellow"}
    title = f"{args.new} against {args.base} (threshold {format_percent(threshold)})"
    table = Table("case", "base", "new", "new / base", "95% interval", "verdict", title=title)
    reasons = sorted({text for r in rows for text in (r.why, r.note) if text})
    for r in rows:
        color = colors[r.verdict]
        verdict = f"[{color}]{r.verdict}[/{color}]" if color else r.verdict
        for text in (r.why, r.note):
            if text:
                verdict += f" ({reasons.index(text) + 1})"
        table.add_row(escape(r.label) + r.flags, format_time(r.base_median),
                      format_time(r.new_median), f"{r.ratio:.3f}", f"{r.low:.3f} – {r.high:.3f}",
                      verdict)
    stdout_console().print(table)
    print(f"noise floor from {args.noise}" if noise and noise.cases else
          f"noise floor {noise.default:.1%}" if noise else
          "no noise floor: the intervals hold the variation within each run only "
          "(gdbench noise measures the variation between runs; pass it with --noise)")
    for index, why in enumerate(reasons):
        print(f"({index + 1}) {why}")
    if any(r.flags for r in rows):
        print("~ noisy, ^ contended: in either file")
    for path in (args.base, args.new):
        note = incomplete(path)
        if note:
            print(f"{path}: {note}")
    counts = {v: sum(r.verdict == v for r in rows) for v in VERDICTS}
    print(", ".join(f"{n} {v.lower()}" for v, n in counts.items()))
    return 1 if args.fail_on_regression and counts["SLOWER"] else 0
