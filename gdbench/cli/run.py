"""gdbench run: time every kernel over a sweep of sample counts, and write the results."""

from __future__ import annotations

import os
import sys
from dataclasses import replace

from rich.console import Console

from gdbench.analysis import tables
from gdbench.analysis.plot import nothing_to_plot, plot, plottable
from gdbench.cli.common import (
    add_run_options,
    interrupted,
    settings,
    stdout_console,
    sweep_with_progress,
    wrote,
)
from gdbench.distributed import worker
from gdbench.distributed.adapters import data_parallel_kernels
from gdbench.distributed.launch import RankFailure, launch, parse_world_sizes
from gdbench.distributed.worker import measure
from gdbench.files.paths import check_distinct, check_folder
from gdbench.files.results import Output
from gdbench.runs.settings import Settings

NAME = "run"
HELP = "time every kernel over a sweep of sample counts"


def add_arguments(p) -> None:
    add_run_options(p)
    p.add_argument("--out", default="gdbench-results.json", help="JSON results file")
    p.add_argument("--csv", help="also write a CSV file")
    p.add_argument("--plot", metavar="DIR", help="also write the plots into DIR")


def main(args) -> int:
    err = Console(stderr=True, soft_wrap=True)
    given = settings(args)  # every option is checked before anything is measured
    check_distinct({"--out": args.out, "--csv": args.csv, "--plot": args.plot})
    if worker.launched() or args.nproc:
        _check_data_parallel_options(args, given)
    if worker.launched():  # one rank of torchrun or of the agent behind --nproc
        result = measure(given, args.out, args.csv)
        if result is None or args.quiet:  # ranks other than 0 show nothing
            return 0
        return _show(args, result, err)
    output = Output(args.out, args.csv)  # and every path
    if args.plot:
        check_folder(args.plot, "--plot")
    try:
        result = (_launch(args, given, output) if args.nproc else
                  sweep_with_progress(given, args.quiet, output))
    except KeyboardInterrupt as stop:
        return interrupted("run", stop, output, "windows measured")
    except RankFailure as exc:  # one line, and the cases so far are kept
        partial = output.abandon()
        print(f"gdbench run: {exc}" + (f"; the cases finished so far are in {partial}"
                                       if partial else "; no case had finished"),
              file=sys.stderr)
        return 1
    return _show(args, result, err)


def _show(args, result, err) -> int:
    """The table and the failures; exit status 1 when no case was timed."""
    if not args.quiet:
        stdout_console().print(tables.step_table(result, stdout_console().width,
                                                 getattr(args, "detail", False)))
        for line in tables.failures(result):
            err.print(line, markup=False, highlight=False)
    timed = any(c.ok for c in result.cases)
    drawn = plottable([result])
    wrote(err, f"{args.out}" + (f" and {args.csv}" if args.csv else ""), result.moved_aside,
           args.plot if drawn else None, lambda: plot([result], args.plot))
    if timed and args.plot and not drawn:
        err.print(f"no plots in {args.plot}: {nothing_to_plot([result])}", markup=False,
                  highlight=False)
    if not timed:
        err.print(f"gdbench run: no case was timed ({len(result.cases)} failed); their reasons "
                  f"are in {args.out}", markup=False, highlight=False)
        return 1
    return 0


def _check_data_parallel_options(args, given: Settings) -> None:
    for flag, used in (("--cuda-graph", given.cuda_graph), ("--cold", given.cold),
                       ("--processes", given.processes != 1), ("--threads", given.threads),
                       ("--steps-per-call", given.steps_per_call != (1,))):
        if used:
            raise ValueError(f"{flag} does not go with a data-parallel run (--nproc, torchrun)")
    if len(given.dtypes) > 1:
        raise ValueError("a data-parallel run (--nproc, torchrun) takes one --dtype")


def _launch(args, given: Settings, output):
    """``--nproc``: the agent starts the ranks, once per world size."""
    world_sizes = parse_world_sizes(args.nproc)
    names = data_parallel_kernels(given.device, given.dtype, given.kernels)
    if not names:
        raise ValueError(f"no kernel runs data-parallel on {given.device} in {given.dtype} here")
    err = Console(stderr=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if max(world_sizes) > cores:
        err.print(f"warning: {max(world_sizes)} ranks on {cores} CPUs: the ranks wait for each "
                  "other's CPU time, and the scaling measured is that of a crowded machine",
                  markup=False, highlight=False)

    def on_launch(world):
        if not args.quiet:
            err.print(f"starting {world} rank{'s' if world > 1 else ''} ..." if world else
                      "measuring the plain step in one process ...", markup=False)

    return launch(replace(given, kernels=tuple(names)), world_sizes, output, args.dist_port,
                  on_launch)
