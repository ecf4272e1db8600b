"""gdbench ab: is NEW faster than BASE? Both sides in one interleaved session (docs/ab.md)."""

from __future__ import annotations

from rich.console import Console

from gdbench.analysis import ab as summary
from gdbench.analysis.compare import parse_fraction, parse_threshold
from gdbench.analysis.tables import format_percent
from gdbench.cli.common import dtypes, interrupted, kernel_list, stdout_console, wrote
from gdbench.core.devices import cuda_unavailable, is_cuda, resolve_device
from gdbench.files.paths import check_distinct, check_report_target, check_target
from gdbench.files.results import Output, write_atomic
from gdbench.runs.ab.records import AbSettings, pair_cases
from gdbench.runs.ab.session import run_ab
from gdbench.runs.ab.sides import Side
from gdbench.runs.settings import default_sizes
from gdbench.runs.sweep import parse_sizes, plan

NAME = "ab"
HELP = ("is NEW faster than BASE? Both measured in one session, "
        "interleaved, with a paired verdict per case")


def add_arguments(p) -> None:
    p.add_argument("base", nargs="?", help="the base side's kernels, comma-separated "
                                           "(default: every kernel that runs here)")
    p.add_argument("new", nargs="?", help="the new side's kernels, paired with the base's "
                                          "in order (default: the same as the base)")
    p.add_argument("--base-python", help="run the base side in this Python environment")
    p.add_argument("--new-python", help="run the new side in this Python environment")
    p.add_argument("--base-rev", help="run the base side from this git revision of the "
                                      "checkout here (a cached worktree, this environment's "
                                      "packages)")
    p.add_argument("--new-rev", help="run the new side from this git revision")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when present)")
    p.add_argument("--sizes", help="sample counts (default 1e2:1e7 on cpu, to 1e8 on cuda)")
    p.add_argument("--features", type=int, default=1, help="features D (default 1)")
    p.add_argument("--dtype", default="float32", type=dtypes, help="one dtype (default float32)")
    p.add_argument("--threshold", default="5%",
                   help="smallest change that matters: SAME within it, and "
                        "--fail-on-regression fails on SLOWER beyond it; a percentage such as "
                        "5%% (default) or a fraction such as 0.05; a bare 5 is refused")
    p.add_argument("--min-effect", default="2%",
                   help="FASTER or SLOWER only when the estimate is beyond this (default 2%%)")
    p.add_argument("--window", type=float, default=0.05,
                   help="seconds of sampling per window (default 0.05)")
    p.add_argument("--rounds-per-block", type=int,
                   help="rounds measured by each pair of fresh worker processes (default: "
                        "chosen from how the ratio varies between rounds and between blocks)")
    p.add_argument("--min-blocks", type=int, default=6, help="blocks before the first look "
                                                               "(default 6)")
    p.add_argument("--max-blocks", type=int, default=100, help="blocks at most (default 100)")
    p.add_argument("--max-time", type=float, default=170.0,
                   help="seconds the session may measure: no block starts that would end "
                        "after them (default 170)")
    p.add_argument("--out", default="gdbench-ab.json", help="JSON file with every window")
    p.add_argument("--markdown", metavar="FILE.md", help="also write a summary for a pull request")
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit with status 1 when any case is SLOWER by more than the "
                        "threshold (a case that failed on either side exits 1 with or "
                        "without it)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def main(args) -> int:
    device = resolve_device(args.device)
    if "," in args.dtype:
        raise ValueError("gdbench ab takes one --dtype")
    threshold = parse_threshold(args.threshold)
    settings = AbSettings(device=device, sizes=tuple(parse_sizes(args.sizes) if args.sizes
                                                     else default_sizes(device)),
                          n_features=args.features, dtype=args.dtype, threshold=threshold,
                          min_effect=parse_fraction(args.min_effect, "--min-effect"),
                          window_s=args.window, rounds_per_block=args.rounds_per_block,
                          min_blocks=args.min_blocks, max_blocks=args.max_blocks,
                          max_seconds=args.max_time).checked()
    outputs = {"--out": check_target(args.out, "--out"),
               "--markdown": (check_report_target(args.markdown, "--markdown")
                              if args.markdown else None)}
    check_distinct(outputs)
    err = Console(stderr=True, soft_wrap=True)
    sides = []
    for name, python, rev in (("base", args.base_python, args.base_rev),
                              ("new", args.new_python, args.new_rev)):
        if python and rev:
            raise ValueError(f"--{name}-python and --{name}-rev name one side twice")
        sides.append(Side.of_python(name, python) if python else
                     Side.of_revision(name, rev, warn=lambda line: err.print(
                         f"warning: {line}", markup=False, highlight=False)) if rev else
                     Side(name))
    names = [side_kernels(text, side, settings)
             for text, side in ((args.base, sides[0]), (args.new or args.base, sides[1]))]
    cases = pair_cases(*names, settings.sizes)
    output = Output(args.out)
    markdown = outputs["--markdown"]

    def on_round(index, block, active):
        if not args.quiet:
            err.print(f"round {index + 1} (block {block + 1}): {active} "
                      f"case{'s' if active > 1 else ''} undecided", markup=False,
                      highlight=False)

    try:
        result = run_ab(tuple(sides), cases, settings, output.save, on_round)
    except KeyboardInterrupt as stop:
        return interrupted("ab", stop, output, "rounds measured")
    output.finish(result)
    session = result.to_dict()
    stdout_console().print(summary.table(session, summary.title(session)))
    print(summary.summary_line(session))
    if markdown:
        write_atomic(markdown, summary.markdown(session))
    wrote(err, str(args.out) + (f" and {markdown}" if markdown else ""), output.moved, None,
          None)
    return exit_status(session, args.fail_on_regression, err)


def side_kernels(text: str | None, side: Side, settings: AbSettings) -> list[str]:
    """The kernels of a side. A side of this environment is checked here, before any worker
    starts: a kernel that cannot run on the device, in the dtype, with the features, is a bad
    argument (ValueError). Another environment's or revision's kernels are its own to check:
    its worker says, and a kernel it lacks is UNAVAILABLE there."""
    if side.here:
        names = kernel_list(text, settings.device, settings.dtype, settings.n_features)
        plan(settings.device, names, [settings.sizes[0]], settings.n_features, settings.dtype)
        return names
    if settings.n_features < 1:
        raise ValueError(f"features must be at least 1, got {settings.n_features}")
    if is_cuda(settings.device) and all(cuda_unavailable(b) for b in ("torch", "cupy")):
        raise ValueError(f"--device cuda: {cuda_unavailable('torch')}")
    if text and text != "all":
        return [k.strip() for k in text.split(",") if k.strip()]
    return kernel_list(text, settings.device, settings.dtype, settings.n_features)


def exit_status(session: dict, fail_on_regression: bool, err) -> int:
    """1 when any case failed on either side (whatever was asked), or, with
    ``--fail-on-regression``, when any is SLOWER; 0 otherwise (docs/ab.md)."""
    failures = summary.failed(session)
    for case in failures:
        err.print(f"gdbench ab: {case['label']}: {case['status'].upper()}: {case['message']}",
                  markup=False, highlight=False)
    slower = summary.regressions(session)
    if failures:
        err.print(f"gdbench ab: {len(failures)} case{'s' if len(failures) > 1 else ''} "
                  "failed on a side: exit status 1", markup=False, highlight=False)
        return 1
    if fail_on_regression and slower:
        err.print(f"gdbench ab: {len(slower)} SLOWER beyond the threshold "
                  f"({format_percent(session['settings']['threshold'])}) under "
                  "--fail-on-regression: exit status 1", markup=False, highlight=False)
        return 1
    return 0
