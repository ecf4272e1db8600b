"""gdbench train: the tutorial's training loop, replayed on one kernel."""

from __future__ import annotations

import argparse
import sys

from gdbench.cli.common import one_dtype
from gdbench.core.devices import resolve_device
from gdbench.kernels import registry
from gdbench.runs.train import check_training, predict, train

NAME = "train"
HELP = "replay the tutorial's training loop on one kernel"


def add_arguments(p) -> None:
    p.add_argument("--kernel", default="numpy-manual")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    p.add_argument("--dtype", default="float32", type=one_dtype)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--w0", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--print-every", type=int, default=1)


def main(args) -> int:
    kernel = registry.make_kernel(args.kernel, resolve_device(args.device), args.dtype)
    if args.print_every < 1:
        raise ValueError(f"--print-every must be at least 1, got {args.print_every}")
    check_training(args.iters, args.lr, args.w0)  # before anything is printed
    print(f"Prediction before training: f(5) = {predict(args.w0):.3f}")
    w = args.w0
    for e in train(kernel, iters=args.iters, lr=args.lr, w0=args.w0):
        w = e.w
        if (e.epoch - 1) % args.print_every == 0 or e.epoch == args.iters or not e.finite:
            print(f"epoch {e.epoch}: w = {e.w:.3f}, loss = {e.loss:.8f}")
        if not e.finite:
            print(f"gdbench train: diverged at epoch {e.epoch}: the loss is {e.loss} (the "
                  f"learning rate {args.lr} is too large for this data)", file=sys.stderr)
            return 1
    print(f"Prediction after training: f(5) = {predict(w):.3f}")
    return 0
