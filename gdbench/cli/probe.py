"""gdbench probe: the device's memory bandwidth, the roofline."""

from __future__ import annotations

from gdbench.core.units import format_bytes
from gdbench.cli.common import parse_bytes
from gdbench.core.devices import is_cuda
from gdbench.measure.roofline import measure_roofline
from gdbench.records.roofline import COPY_METHODS

NAME = "probe"
HELP = "measure the device's memory bandwidth, the roofline"


def add_arguments(p) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when present)")
    p.add_argument("--bytes", default=None, metavar="SIZE",
                   help="the working set read from memory, such as 256MiB or 2GiB (default: "
                        "four times the last-level cache, at least 1 GiB; 2 GiB on CUDA)")


def main(args) -> int:
    result = measure_roofline(args.device, parse_bytes(args.bytes, "--bytes"))
    levels = sorted(result.levels.items(), key=lambda kv: kv[1])

    def level(size):
        return next((name for name, cap in levels if size <= cap), "memory")

    print(f"{result.device}: roofline {result.bandwidth / 1e9:.1f} GB/s from "
          f"{level(result.nbytes)} ({result.best_method}, {format_bytes(result.nbytes)} "
          "streamed)")
    for method, rate in result.methods.items():
        note = "   read + written: for reference only" if method in COPY_METHODS else ""
        print(f"  {method:20s} {rate / 1e9:8.1f} GB/s{note}")
    print("bandwidth against the working set (the caches as "
          + ("the driver" if is_cuda(result.device) else "the OS") + " reports them: "
          + (", ".join(f"{name} {format_bytes(size)}" for name, size in levels) or "none") + ")")
    for size, rate in sorted(result.curve.items()):
        print(f"  {format_bytes(size):>10s} {rate / 1e9:8.1f} GB/s   fits in {level(size)}")
    return 0
