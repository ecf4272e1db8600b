"""What is read around every window: one module per measured axis, each a hook.

A hook has a ``field`` (its key in a case's ``readings`` and in the results file) and

- ``open(device)``: the hook for a run on ``device``, or None where it cannot read anything
  there;
- ``start()`` just before a window's samples and ``stop(token, steps)`` right after (``token``
  is what ``start`` gave, ``steps`` the number of steps the window ran): one window's reading;
- ``record(readings)``: the field's value from the readings of every window, and
  ``windows(value)``, its inverse, by which the windows of several worker processes are joined
  (``gdbench.runs.workers.merge``);
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
from gdbench.axes.telemetry import TelemetryHook

AXES = (ContentionHook, TelemetryHook, EnergyHook)


def window_hooks(device: str) -> tuple:
    """The hooks that can read something on ``device`` here."""
    return tuple(hook for hook in (cls.open(device) for cls in AXES) if hook is not None)
