"""gdbench bisect: which commit made it slower? A search of GOOD..BAD by paired ab sessions."""

from __future__ import annotations

import sys

from rich.console import Console

from gdbench.analysis import bisect as view
from gdbench.analysis.compare import parse_fraction, parse_threshold
from gdbench.cli.common import dtypes, interrupted, wrote
from gdbench.core.devices import resolve_device
from gdbench.files.paths import check_distinct, check_folder, check_report_target, check_target
from gdbench.files.results import Output, write_atomic
from gdbench.runs.ab.records import AbSettings
from gdbench.runs.bisect import bisect
from gdbench.runs.sweep import parse_sizes

NAME = "bisect"
HELP = "which commit between GOOD and BAD made a case slower: a search by paired ab sessions"


def add_arguments(p) -> None:
    p.add_argument("good", help="a revision before the regression (git: a commit, tag, branch)")
    p.add_argument("bad", help="a revision after it")
    p.add_argument("--kernels", help="comma-separated kernels, at every size: the cases GOOD "
                                     "and BAD are compared on; those SLOWER are searched "
                                     "(default: numpy-manual)")
    p.add_argument("--sizes", default="1e4,1e6", help="sample counts (default 1e4,1e6)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when present)")
    p.add_argument("--dtype", default="float32", type=dtypes, help="one dtype (default float32)")
    p.add_argument("--threshold", default="5%",
                   help="ab's threshold: a percentage such as 5%% or a fraction (default 5%%)")
    p.add_argument("--min-effect", default="2%",
                   help="ab's minimum effect for SLOWER (default 2%%)")
    p.add_argument("--window", type=float, default=0.05,
                   help="seconds of sampling per window (default 0.05)")
    p.add_argument("--max-time", type=float, default=900.0,
                   help="seconds the whole search may take; each session gets its share "
                        "(default 900)")
    p.add_argument("--session-time", type=float, default=120.0,
                   help="seconds one ab session may take at most (default 120)")
    p.add_argument("--out", default="gdbench-bisect.json", help="JSON file with every session")
    p.add_argument("--markdown", metavar="FILE.md", help="also write the answer and its table")
    p.add_argument("--plot", metavar="DIR", help="also draw the ratio over the commits tested")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def main(args) -> int:
    device = resolve_device(args.device)
    if "," in args.dtype:
        raise ValueError("gdbench bisect takes one --dtype")
    if not (args.max_time > 0 and args.session_time > 0):
        raise ValueError("--max-time and --session-time must be positive numbers of seconds")
    settings = AbSettings(device=device, sizes=tuple(parse_sizes(args.sizes)),
                          dtype=args.dtype, threshold=parse_threshold(args.threshold),
                          min_effect=parse_fraction(args.min_effect, "--min-effect"),
                          window_s=args.window, max_seconds=args.session_time).checked()
    outputs = {"--out": check_target(args.out, "--out"),
               "--markdown": (check_report_target(args.markdown, "--markdown")
                              if args.markdown else None),
               "--plot": args.plot}
    check_distinct(outputs)
    if args.plot:
        check_folder(args.plot, "--plot")
        check_target(f"{args.plot}/bisect.png", "--plot")
    kernels = ([k.strip() for k in args.kernels.split(",") if k.strip()] if args.kernels
               else ["numpy-manual"])
    output = Output(args.out)
    err = Console(stderr=True, soft_wrap=True)

    def say(line):
        if not args.quiet:
            err.print(line, markup=False, highlight=False)

    def on_step(purpose, base, new, seconds):
        say(f"{purpose}: {new.short} against {base.short} (at most {seconds:.0f} s)")

    try:
        result = bisect(args.good, args.bad, kernels, settings, ".", args.max_time,
                        output.save, on_step,
                        warn=lambda line: say(f"warning: {line}"))
    except KeyboardInterrupt as stop:
        return interrupted("bisect", stop, output, "sessions")
    output.finish(result)
    d = result.to_dict()
    for line in view.answer_lines(d):
        print(line)
    print(f"{len(d['sessions'])} paired sessions in {d['seconds']:.0f} s")
    if outputs["--markdown"]:
        write_atomic(outputs["--markdown"], view.markdown(d))
    if args.plot:
        path = view.plot(d, args.plot)
        say(f"wrote {path}")
    wrote(err, str(args.out) + (f" and {args.markdown}" if args.markdown else ""),
          output.moved, None, None)
    if d["unresolved"] and not d["found"]:
        print("gdbench bisect: no commit could be named (see above)", file=sys.stderr)
        return 1
    return 0
