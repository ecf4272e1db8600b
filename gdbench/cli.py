"""The ``gdbench`` command line: parse arguments, call the library, print.

Every error a user can cause becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from gdbench import registry
from gdbench.devices import resolve_device


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def cmd_train(args) -> int:
    from gdbench.train import predict, train

    kernel = registry.make_kernel(args.kernel, resolve_device(args.device), args.dtype)
    if args.print_every < 1:
        raise ValueError(f"--print-every must be at least 1, got {args.print_every}")
    print(f"Prediction before training: f(5) = {predict(args.w0):.3f}")
    w = args.w0
    for e in train(kernel, iters=args.iters, lr=args.lr, w0=args.w0):
        w = e.w
        if (e.epoch - 1) % args.print_every == 0:
            print(f"epoch {e.epoch}: w = {e.w:.3f}, loss = {e.loss:.8f}")
    print(f"Prediction after training: f(5) = {predict(w):.3f}")
    return 0


def cmd_list(args) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table("kernel", "backend", "phases", *(f"{d}" for d in ("cpu", "cuda")))
    for info in registry.list_kernels():
        cells = []
        for device in ("cpu", "cuda"):
            if device not in info.devices:
                cells.append("-")
            elif info.available_on(device):
                cells.append("[green]available[/green]")
            else:
                cells.append(f"[red]{escape(info.unavailable[device])}[/red]")
        phases = "fused step" if tuple(info.phases) == ("step",) else "3 phases"
        table.add_row(info.name, info.backend, phases, *cells)
    Console().print(table)
    return 0


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="gdbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    p = sub.add_parser("train", help="replay the tutorial's training loop on one kernel")
    p.add_argument("--kernel", default="numpy-manual")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--w0", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--print-every", type=int, default=1)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("list", help="list the kernels and whether each runs here")
    p.set_defaults(func=cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        print(f"gdbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
