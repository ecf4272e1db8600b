"""What is read of a case besides its times: one module per measured axis, each a hook.

A hook has a ``field`` (its key in a case's ``readings`` and in the results file), ``reads``
("window": around each of a case's windows; "case": once a case, after it is verified and
before its first window), and

- ``open(device)``: the hook for a run on ``device``, or None where it cannot read anything
  there;
- for an axis read around windows, ``start()`` just before a window's samples and
  ``stop(token, steps)`` right after (``token`` is what ``start`` gave, ``steps`` the number of
  steps the window ran): one window's reading; and ``record(readings)``, the field's value from
  the readings of every window;
- for an axis read once a case, ``case(kernel, prepare)``: its value, of the verified
  ``kernel``, which ``prepare()`` prepares afresh;
- ``join(values, windows)``: one value from those of several worker processes (None where one
  read nothing), each of which measured ``windows[i]`` windows, in order
  (``gdbench.runs.workers.merge``);
- ``across_ranks(readings, hosts)``, where the axis is read on the ranks of a data-parallel run
  (``gdbench.distributed.worker``): one window's reading from the readings of every rank, in
  rank order, ``hosts[i]`` the host of rank ``i``; an axis without it is not read there;
- ``derived(case)``: the keys the results file writes beside the readings (``contended``,
  ``joules_per_step``);
- ``detail(case)``, ``table(cases)`` and ``notes(cases)``: the lines the axis adds to a case's
  cell in ``--detail``, the tables of the report and the HTML page, and the report's lists.

The axes sit below the records: they import the standard library, NumPy and ``gdbench.core``
alone (``contention.py`` only the standard library: ``ab``'s worker loads it by path). A new
measured axis is one module with such a class and one line in ``AXES``
(docs/architecture.md).
"""

from __future__ import annotations

from gdbench.axes.contention import ContentionHook
from gdbench.axes.energy import EnergyHook
from gdbench.axes.memory import MemoryHook
from gdbench.axes.telemetry import TelemetryHook

AXES = (MemoryHook, ContentionHook, TelemetryHook, EnergyHook)


def window_hooks(device: str, ranks: bool = False) -> tuple:
    """The hooks read around each window that can read something on ``device`` here; with
    ``ranks``, those that say how the ranks' readings are joined."""
    return _opened(device, "window", ranks)


def case_hooks(device: str) -> tuple:
    """The hooks read once a case that can read something on ``device`` here."""
    return _opened(device, "case", False)


def _opened(device: str, reads: str, ranks: bool) -> tuple:
    classes = [cls for cls in AXES if cls.reads == reads
               and (not ranks or hasattr(cls, "across_ranks"))]
    return tuple(hook for hook in (cls.open(device) for cls in classes) if hook is not None)
