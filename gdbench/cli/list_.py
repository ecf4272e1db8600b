"""gdbench list: the kernels, and whether each runs here and why not."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from gdbench.cli.common import stdout_console
from gdbench.core.devices import DEVICES, is_cuda
from gdbench.core.dtypes import SHORT
from gdbench.kernels import registry

NAME = "list"
HELP = "list the kernels and whether each runs here"


def add_arguments(p) -> None:
    pass


def main(args) -> int:
    table = Table("kernel", "backend", "phases", "features", "dtypes", "CUDA graph",
                  "data-parallel", "K steps", *DEVICES)
    for info in registry.list_kernels():
        cells = []
        for device in DEVICES:
            if "any" in info.unavailable:  # a plugin that failed to load: why, everywhere
                cells.append(f"[red]{escape(info.unavailable['any'])}[/red]")
            elif device not in info.devices:
                cells.append("-")
            elif info.available_on(device):
                cells.append("[green]available[/green]")
            else:
                cells.append(f"[red]{escape(info.unavailable[device])}[/red]")
        phases = {("step",): "fused step", (): "?"}.get(tuple(info.phases), "3 phases")
        features = "any" if info.max_features is None else f"≤ {info.max_features}"
        graph = ("yes" if info.cuda_graph else "no" if any(map(is_cuda, info.devices)) else "-")
        parallel = "yes" if info.data_parallel else "no"
        dtypes = " ".join(SHORT.get(d, d) for d in info.dtypes)
        steps = {"one call": "1 call", "a loop of steps": "loop"}.get(info.many_steps,
                                                                  info.many_steps)
        table.add_row(info.name, info.backend, phases, features, dtypes, graph, parallel, steps,
                      *cells)
    for name, target in registry.shadowed_plugins():
        why = f"[red]not loaded: plugin {escape(target)} has the name of a built-in kernel[/red]"
        table.add_row(f"{name} (plugin)", "?", "", "", "", "", "", "", why, why)
    stdout_console().print(table)
    return 0
