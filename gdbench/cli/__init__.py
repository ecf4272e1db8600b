"""The ``gdbench`` command line: parse arguments, call the library, print.

One module per command, each with its ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``main(args)``; a new command is a new module and one line in ``COMMANDS``. Options several
commands take live in ``gdbench.cli.common``. Every error a user can cause becomes one line on
stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gdbench
from gdbench.cli import (
    ab,
    bisect,
    compare,
    converge,
    list_,
    noise,
    plot,
    probe,
    report,
    run,
    train,
)

COMMANDS = (train, run, converge, noise, ab, bisect, plot, report, compare, probe, list_)


class ArgumentParser(argparse.ArgumentParser):
    """One line and exit status 2 for a bad option; an option is never taken for another that
    it begins (``noise --out`` is not ``--out-dir``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="gdbench", description=gdbench.__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gdbench {gdbench.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    for command in COMMANDS:
        p = sub.add_parser(command.NAME, help=command.HELP)
        command.add_arguments(p)
        p.set_defaults(func=command.main)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, what schedulers send: stops a run as Ctrl-C does, with exit status 143."""

    status = 143


def _terminate(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop at a time: the rest is the stop's
    raise Terminated("terminated")


def _interrupt(signum, frame):
    """Ctrl-C: stop, once. A second Ctrl-C while gdbench says where the results are and the
    interpreter exits (torch's and others' exit handlers) would only break into that with a
    traceback; it is ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """The command line; ``argv`` None: this process's own, and the process ends after it."""
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    if argv is None and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupt)  # this process's own command line
    status = None
    try:
        status = args.func(args)
        return status
    except (ValueError, OSError) as exc:  # bad input, or a file that cannot be read or written
        print(f"gdbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        print(f"gdbench {args.command}: {stop.args[0] if stop.args else 'interrupted'}",
              file=sys.stderr)
        status = getattr(stop, "status", 130)
        return status
    finally:
        signal.signal(signal.SIGTERM, previous)
        if argv is None and status in (130, 143):
            # Stopped by Ctrl-C or SIGTERM, and said so: what is left is the interpreter's
            # exit, which a second signal would break into with a traceback.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
