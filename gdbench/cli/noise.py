"""gdbench noise: how far identical runs differ here; with --paired, what gdbench ab can promise."""

from __future__ import annotations

import sys
from dataclasses import replace

from rich.table import Table

from gdbench.analysis.ab_study import paired_study_lines
from gdbench.analysis.compare import parse_fraction, parse_threshold
from gdbench.analysis.coverage import write_coverage
from gdbench.analysis.noise import assess, read_floor, write_floor
from gdbench.cli.common import (
    add_run_options,
    kernel_list,
    settings,
    stdout_console,
    sweep_with_progress,
)
from gdbench.core.devices import resolve_device
from gdbench.files.paths import check_folder, check_target, move_aside
from gdbench.runs.ab.records import AbSettings
from gdbench.runs.ab.study import study
from gdbench.runs.settings import default_sizes
from gdbench.runs.sweep import parse_sizes

NAME = "noise"
HELP = ("run one configuration several times: how far identical "
        "runs differ here, and what compare makes of it")


def add_arguments(p) -> None:
    add_run_options(p)
    p.add_argument("--runs", type=int, default=2, help="how many runs (default 2)")
    p.add_argument("--threshold", default="5%", help="compare's threshold (default 5%%)")
    p.add_argument("--out-dir", default=".",
                   help="folder for noise-1.json, noise-2.json, ... and noise.json")
    p.add_argument("--noise", help="judge the runs with this noise floor (a noise file of an "
                                   "earlier study, or a fraction such as 3%%)")
    p.add_argument("--paired", action="store_true",
                   help="measure what gdbench ab promises here instead: for each kernel, --runs "
                        "A/A sessions and as many against itself slowed by --slowdowns "
                        "(paired-*.json and paired.json in --out-dir)")
    p.add_argument("--slowdowns", default="2%,5%,10%,20%",
                   help="with --paired, the calibrated slowdowns whose power is measured "
                        "(default 2%%,5%%,10%%,20%%)")
    p.add_argument("--no-power", action="store_true",
                   help="with --paired, the A/A sessions only")
    p.add_argument("--aa-runs", type=int,
                   help="with --paired, how many A/A sessions of each kernel (default: --runs)")
    p.add_argument("--keep-samples", action="store_true",
                   help="with --paired, keep every sample of every window in the sessions' "
                        "files (10 MB a session) rather than their medians")
    p.add_argument("--max-time", type=float, default=170.0,
                   help="with --paired, each ab session's --max-time (default 170)")
    p.add_argument("--min-effect", default="2%",
                   help="with --paired, each ab session's --min-effect (default 2%%)")


def main(args) -> int:
    if args.paired:
        return _noise_paired(args)
    if args.runs < 2:
        raise ValueError(f"--runs must be at least 2, got {args.runs}")
    threshold = parse_threshold(args.threshold)
    floor = read_floor(args.noise) if args.noise else None
    folder = check_folder(args.out_dir, "--out-dir")
    paths = [check_target(folder / f"noise-{i + 1}.json", "--out-dir")
             for i in range(args.runs)]
    floor_path = check_target(folder / "noise.json", "--out-dir")
    given = replace(settings(args), roofline=False)
    runs = [sweep_with_progress(given, args.quiet, path, label=f"run {index + 1}/{args.runs}: ")
            for index, path in enumerate(paths)]
    report = assess(runs, threshold, floor)
    kept = move_aside(floor_path)
    write_floor(report, floor_path, [str(p) for p in paths])
    if kept:
        print(f"kept the earlier noise floor as {kept}", file=sys.stderr)
    files = ", ".join(map(str, paths))
    table = Table("case", "spread of the medians between runs",
                  title=f"{args.runs} runs of the same configuration ({files})")
    for label, spread in sorted(report.spreads.items(), key=lambda kv: -kv[1]):
        table.add_row(label, f"{spread:.1%}")
    stdout_console().print(table)
    v = report.verdicts
    given = f"with the noise floor of {args.noise}" if floor else "without a noise floor"
    print(f"identical runs compared at a {threshold:.0%} threshold, {given}: "
          f"{report.comparisons} cases, {v['FASTER']} faster, {v['SLOWER']} slower, "
          f"{v['SAME']} same, {v['AMBIGUOUS']} ambiguous: false verdicts {report.false_rate:.1%}")
    for factor, share in report.detected.items():
        print(f"samples made {factor - 1:.0%} slower: called SLOWER in {share:.1%} of cases")
    print(f"noise floor of these runs: {report.floor.default:.1%} relative standard deviation "
          f"between runs (median over cases); per case in {floor_path}, for "
          f"gdbench compare --noise")
    return 0


def _noise_paired(args) -> int:
    """``noise --paired``: the A/A false-verdict and SAME rates and the power of ``ab`` here."""
    if args.runs < 1:
        raise ValueError(f"--runs must be at least 1, got {args.runs}")
    device = resolve_device(args.device)
    if "," in args.dtype:
        raise ValueError("noise --paired takes one --dtype")
    settings = AbSettings(device=device, sizes=tuple(parse_sizes(args.sizes) if args.sizes
                                                     else default_sizes(device)),
                          n_features=args.features, dtype=args.dtype,
                          threshold=parse_threshold(args.threshold),
                          min_effect=parse_fraction(args.min_effect, "--min-effect"),
                          max_seconds=args.max_time).checked()
    slowdowns = () if args.no_power else tuple(
        parse_fraction(s.strip(), "--slowdowns") for s in args.slowdowns.split(",") if s.strip())
    if not args.no_power and not slowdowns:
        raise ValueError("--slowdowns names no slowdown (or give --no-power)")
    kernels = kernel_list(args.kernels, device, args.dtype, args.features)
    folder = check_folder(args.out_dir, "--out-dir")

    def on_session(kind, kernel, slowdown, run, index, total):
        if not args.quiet:
            what = "A/A" if kind == "aa" else f"slowed {100 * slowdown:g}%"
            print(f"session {index + 1}/{total}: {what} {kernel}, run {run + 1} ...",
                  file=sys.stderr)

    aa_runs = args.aa_runs if args.aa_runs is not None else args.runs
    if aa_runs < 1:
        raise ValueError(f"--aa-runs must be at least 1, got {aa_runs}")
    s = study(kernels, settings, args.runs, folder, slowdowns, on_session, aa_runs,
              args.keep_samples)
    write_coverage(folder, keep_earlier=True)
    for line in paired_study_lines(s):
        print(line)
    print(f"{len(s['sessions'])} sessions in {s['seconds']:.0f} s; summary in "
          f"{folder / 'paired.json'}" + (f" (the earlier one kept as {s['kept']})"
                                          if s["kept"] else "")
          + f", the resampled coverage in {folder / 'coverage.json'}")
    return 0
