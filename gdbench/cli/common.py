"""What several commands share: the run options, their parsers of values, the progress bar,
and the lines that say where results went."""

from __future__ import annotations

import argparse
import re
import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from gdbench.core.dtypes import ALIASES, parse_dtypes
from gdbench.files.paths import read_input
from gdbench.files.results import load_json, read_converge, read_json
from gdbench.kernels import registry
from gdbench.measure.threads import parse_threads
from gdbench.runs import sweep
from gdbench.runs.settings import Settings
from gdbench.runs.sweep import parse_sizes, plan


def stdout_console():
    """A rich console for stdout; a file or pipe gets whole tables, not 80 columns."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def parse_steps(text: str) -> list[int]:
    """``"1,1000"``: steps per call, whole numbers of at least 1."""
    steps = []
    for token in (t.strip() for t in str(text).split(",")):
        if not token.isdigit() or int(token) < 1:
            raise ValueError(f"steps per call {token!r} is not a whole number of at least 1")
        steps.append(int(token))
    return steps


def settings(args) -> Settings:
    """The run options of ``args`` as one checked ``Settings``: built once, handed to every
    runner (the sweep, its workers, the ranks). A worker or rank gets them whole, from the
    JSON file its parent wrote (``--settings-file``)."""
    if getattr(args, "settings_file", None):
        return Settings.from_json(read_input(args.settings_file, "settings file")).checked()
    kernels = ("all" if args.kernels == "all" else
               tuple(k.strip() for k in args.kernels.split(",") if k.strip()))
    return Settings(
        device=args.device, kernels=kernels,
        sizes=tuple(parse_sizes(args.sizes)) if args.sizes is not None else None,
        n_features=args.features, dtypes=(args.dtype,),
        threads=tuple(parse_threads(args.threads)) if args.threads is not None else None,
        budget=args.budget, precision=args.precision, cuda_graph=args.cuda_graph,
        roofline=not args.no_roofline, windows=args.windows,
        max_windows=args.max_windows, cold=args.cold,
        remeasure=not args.no_remeasure, processes=args.processes,
        memory=not args.no_memory, fresh=not args.keep_layout,
        dist_backend=args.dist_backend, dist_timeout=args.dist_timeout,
        weak_scaling=args.weak_scaling,
        steps_per_call=tuple(parse_steps(args.steps_per_call))).checked()


def sweep_with_progress(settings: Settings, quiet: bool, out, csv=None, label=""):
    """The sweep of ``settings``, behind a progress bar on a terminal."""
    err = Console(stderr=True, soft_wrap=True)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True,
                        disable=quiet or not err.is_terminal)
    task = progress.add_task("starting", total=None)

    def on_start(spec, index, total):
        progress.update(task, description=label + spec.label, total=total, completed=index)

    with progress:
        return sweep.sweep(settings, out, csv, on_start=on_start)


def interrupted(command: str, stop: KeyboardInterrupt, output, what: str) -> int:
    """One line for a command stopped by Ctrl-C or SIGTERM: where its partial results are (if
    anything was measured), and that the files it would have replaced are untouched."""
    partial = output.abandon()
    where = f"the {what} so far are in {partial}" if partial else "nothing had been measured"
    kept = [str(p) for p in output.paths if p.exists()]
    print(f"gdbench {command}: {stop.args[0] if stop.args else 'interrupted'}: {where}"
          + (f"; {' and '.join(kept)} {'is' if len(kept) == 1 else 'are'} as it was"
             if kept else ""), file=sys.stderr)
    return getattr(stop, "status", 130)


def wrote(err, written: str, moved, plot_dir, make_plots) -> None:
    """Where the results went, what was moved aside for them, and the plots if asked for."""
    err.print(f"wrote {written}", markup=False)
    for kept in moved:
        err.print(f"kept the earlier results as {kept}", markup=False)
    if plot_dir:
        err.print(f"wrote {len(make_plots())} plots to {plot_dir}", markup=False)


def parse_size(text: str | None) -> int | None:
    if text is None:
        return None

    sizes = parse_sizes(text)
    if len(sizes) != 1:
        raise ValueError(f"--size takes one sample count, got {text!r}")
    return sizes[0]


UNITS = {"": 1, "B": 1, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "KB": 10**3,
         "MB": 10**6, "GB": 10**9}


def parse_bytes(text: str | None, option: str) -> int | None:
    """A size in bytes from ``4096``, ``64KiB``, ``256MiB``, ``2GiB`` or ``1GB``."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = match and match.group(2).upper()
    if not match or unit not in UNITS:
        raise ValueError(f"{option} takes a size such as 4096, 256MiB or 2GiB, got {text!r}")
    nbytes = int(float(match.group(1)) * UNITS[unit])
    if nbytes < 4096:
        raise ValueError(f"{option} must be at least 4 KiB, got {text!r}")
    return nbytes


def file_kind(path) -> str:
    """What a results file holds: "run", "converge", "ab" or "bisect"; "run" also for a file
    that cannot be read, whose reader then says what is wrong with it."""
    try:
        d = load_json(path)
    except ValueError:
        return "run"
    if not isinstance(d, dict):
        return "run"
    return {"gdbench-ab": "ab", "gdbench-bisect": "bisect"}.get(d.get("tool"),
                                                                 d.get("kind", "run"))


def read_runs(paths):
    return [read_json(p) for p in paths]


def converge_files(paths) -> list | None:
    """The converge results in ``paths``, None when they are runs; ValueError for a mix."""
    kinds = [file_kind(path) for path in paths]
    for other in ("ab", "bisect"):
        if other in kinds:
            raise ValueError(f"{paths[kinds.index(other)]} is a gdbench {other} file: plot "
                             f"draws runs and converge files (report -o or --html shows it)")
    if "converge" not in kinds:
        return None
    if set(kinds) != {"converge"}:
        raise ValueError("converge files and run files go in plots and reports of their own")
    return [read_converge(p) for p in paths]


def kernel_list(text: str | None, device: str, dtype: str, n_features: int) -> list[str]:
    """The kernels of a side: named, or all that run on ``device`` in ``dtype`` here."""
    if text and text != "all":
        names = [k.strip() for k in text.split(",") if k.strip()]
        for name in names:
            registry.kernel_class(name)  # unknown: one line with the known names
        return names

    return list(dict.fromkeys(s.kernel for s in plan(device, "all", [100], n_features, dtype)))


def dtypes(text: str) -> str:
    """A ``--dtype`` list with every name spelled in full (``bf16`` is ``bfloat16``)."""
    try:
        return ",".join(parse_dtypes(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def one_dtype(text: str) -> str:
    """One dtype, full or short name; a kernel says which it supports."""
    return ALIASES.get(text, text)


def port(text: str) -> int:
    """A TCP port number, 1 to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is outside 1-65535")
    return value


def add_run_options(p) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when present)")
    p.add_argument("--kernels", default="all", help="comma-separated names, or all (default)")
    p.add_argument("--sizes", help="1e2,1e4,1e6 or 1e2:1e8 (default 1e2:1e7 on cpu, to 1e8 on cuda)")
    p.add_argument("--features", type=int, default=1, help="features D (default 1)")
    p.add_argument("--dtype", default="float32", type=dtypes,
                   help="float32 (default), float64, bfloat16 or float16 (or fp32, fp64, bf16, "
                        "fp16), or several: float32,bfloat16")
    p.add_argument("--threads", help="CPU thread counts of torch, Numba and BLAS, such as 1,2: "
                                     "every case at each (default: as the libraries are set)")
    p.add_argument("--steps-per-call", default="1", metavar="K",
                   help="steps per timed call, one or several such as 1,1000: every case at "
                        "each, times per step (default 1; see gdbench list for the kernels "
                        "that run K steps in one call)")
    p.add_argument("--budget", type=float, default=0.5,
                   help="seconds of latency sampling per case, shared by its windows")
    p.add_argument("--precision", type=float, default=0.02,
                   help="a window stops once its median is known to this relative precision, "
                        "and a case is noisy when its own is worse (default 0.02)")
    p.add_argument("--windows", type=int, default=4,
                   help="windows per case, spread over the run (default 4); a case whose "
                        "interval is wider than --precision gets more while its budget lasts")
    p.add_argument("--max-windows", type=int, metavar="N",
                   help="the most windows a case gets (default 16; with --processes, "
                        "--windows): as --windows for a fixed count")
    p.add_argument("--cold", action="store_true",
                   help="flush the caches before every latency sample (no batches)")
    p.add_argument("--no-remeasure", action="store_true",
                   help="do not measure a contended case a second time")
    p.add_argument("--no-memory", action="store_true",
                   help="do not measure each case's step memory before timing it")
    p.add_argument("--keep-layout", action="store_true",
                   help="measure every window of a case on the instance prepared first, rather "
                        "than on a new instance with fresh buffers (as gdbench 0.1 did)")
    p.add_argument("--processes", type=int, default=1,
                   help="measure the windows in this many fresh processes, one after another")
    p.add_argument("--nproc", help="data-parallel over this many local ranks, or a list of "
                                   "world sizes such as 1,2 (torch.distributed's elastic agent)")
    p.add_argument("--dist-backend", choices=("gloo", "nccl"),
                   help="torch.distributed backend (default: gloo on cpu, nccl on cuda)")
    p.add_argument("--dist-timeout", type=float, default=120.0,
                   help="seconds a collective or a rendezvous may wait before the run ends")
    p.add_argument("--weak-scaling", action="store_true",
                   help="with --nproc, also measure P ranks at P times each size (on when 1 is "
                        "among the world sizes)")
    p.add_argument("--dist-port", type=port, help="rendezvous port on 127.0.0.1 (default: free)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    p.add_argument("--detail", action="store_true",
                   help="table cells with throughput, phases, GB/s and memory besides latency")
    p.add_argument("--cuda-graph", action="store_true",
                   help="also replay each kernel's step from a CUDA graph where it can be captured")
    p.add_argument("--no-roofline", "--no-probe", action="store_true", dest="no_roofline",
                   help="skip measuring the memory bandwidth (no %% of roofline)")
    # a worker process's or a rank's settings, whole, as its parent wrote them
    p.add_argument("--settings-file", help=argparse.SUPPRESS)
