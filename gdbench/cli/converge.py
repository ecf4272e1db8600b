"""gdbench converge: gradient descent from w = 0 to the least-squares optimum, against a direct solve."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gdbench.analysis.convergence import converge_tables, plot_converge
from gdbench.cli.common import dtypes, interrupted, stdout_console, wrote
from gdbench.files.paths import check_distinct, check_folder
from gdbench.files.results import Output
from gdbench.runs.converge import converge, parse_rates
from gdbench.runs.settings import ConvergeSettings
from gdbench.runs.sweep import parse_sizes

NAME = "converge"
HELP = ("time gradient descent to the least-squares optimum, "
        "against a direct solve")


def add_arguments(p) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when present)")
    p.add_argument("--kernels", default="all", help="comma-separated names, or all (default)")
    p.add_argument("--sizes", default="1e4,1e6", help="sample counts (default 1e4,1e6)")
    p.add_argument("--features", type=int, default=1, help="features D (default 1)")
    p.add_argument("--dtype", default="float32", type=dtypes, help="one or several, as for run")
    p.add_argument("--lr", default="tutorial,curvature",
                   help="learning rates: tutorial (0.01), curvature (1/L of the data), or "
                        "numbers (default tutorial,curvature)")
    p.add_argument("--tol", type=float, default=1e-6,
                   help="converged when the loss is within this of the optimum's, relatively")
    p.add_argument("--max-steps", type=int, default=100_000, help="steps per descent at most")
    p.add_argument("--max-seconds", type=float, default=60.0, help="seconds per descent at most")
    p.add_argument("--patience", type=int, default=100,
                   help="stalled after this many steps without coming closer")
    p.add_argument("--check-every", type=int,
                   help="steps between loss readings (default 1 on cpu, 10 on cuda), run as "
                        "one call where the kernel can")
    p.add_argument("--steps-per-call", type=int, default=1, metavar="K",
                   help="run K steps per call (run_steps) and read the loss after each call, "
                        "checking for convergence and stalls every K steps (default 1)")
    p.add_argument("--out", default="gdbench-converge.json", help="JSON results file")
    p.add_argument("--plot", metavar="DIR", help="also write the loss-against-time plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no table")


def main(args) -> int:
    kernels = "all" if args.kernels == "all" else [k.strip() for k in args.kernels.split(",")]
    settings = ConvergeSettings(
        device=args.device, kernels=kernels, sizes=tuple(parse_sizes(args.sizes)),
        n_features=args.features, dtypes=(args.dtype,),
        rates=tuple(parse_rates(args.lr)), tol=args.tol, max_steps=args.max_steps,
        max_seconds=args.max_seconds, patience=args.patience, check_every=args.check_every,
        steps_per_call=args.steps_per_call).checked()
    check_distinct({"--out": args.out, "--plot": args.plot})
    output = Output(args.out)
    if args.plot:
        check_folder(args.plot, "--plot")
    err = Console(stderr=True, soft_wrap=True)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err, transient=True,
                        disable=args.quiet or not err.is_terminal)
    task = progress.add_task("starting", total=None)

    def on_start(label, done, total):
        progress.update(task, description=label, total=total, completed=done)

    try:
        with progress:
            result = converge(settings, save=output.save, on_start=on_start)
    except KeyboardInterrupt as stop:
        return interrupted("converge", stop, output, "descents")
    output.finish(result)
    if not args.quiet:
        stdout_console().print(converge_tables(result))
        for why in result.settings.get("skipped", []):
            err.print(f"not run: {why}", markup=False, highlight=False)
    wrote(err, args.out, output.moved, args.plot, lambda: plot_converge([result], args.plot))
    return 0
