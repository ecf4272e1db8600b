"""What is read around every window: each measured axis is a hook.

A hook has a ``field`` (the case result's field its readings go to), ``open(device)`` (the hook
for a run on ``device``, or None where it cannot read anything there), ``start()`` just before a
window's samples, ``stop(token, steps)`` right after (``token`` is what ``start`` gave, ``steps``
the number of steps the window ran), ``record(readings)``, which gives the field's value
from the readings of every window, and ``windows(value)``, its inverse, by which the windows
of several worker processes are joined (``gdbench.runs.workers.merge``). A new measured axis
is one module with such a class, one line in ``HOOKS``, and its field on ``CaseResult`` with
its line in ``gdbench.records.results.READINGS`` (docs/architecture.md).
"""

from __future__ import annotations

from gdbench.measure.contention import ContentionHook
from gdbench.measure.energy import EnergyHook
from gdbench.measure.telemetry import TelemetryHook

HOOKS = (ContentionHook, TelemetryHook, EnergyHook)


def window_hooks(device: str) -> tuple:
    """The hooks that can read something on ``device`` here."""
    return tuple(hook for hook in (cls.open(device) for cls in HOOKS) if hook is not None)
