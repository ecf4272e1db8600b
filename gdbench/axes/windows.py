"""The shape most axes keep their readings in: ``{"windows": [one reading a window]}``."""

from __future__ import annotations


class KeptByWindow:
    """``record`` and ``join`` for an axis read around windows whose field is ``{"windows":
    [...]}``, a reading (or None) for each window."""

    reads = "window"

    @staticmethod
    def record(readings: list) -> dict:
        """The case's field from the readings of its windows."""
        return {"windows": readings}

    @staticmethod
    def windows(value: dict | None) -> list | None:
        """The readings of each window a recorded field holds (``record``'s inverse)."""
        return (value or {}).get("windows")

    @classmethod
    def join(cls, values: list, windows: list) -> dict | list | None:
        """Several processes' values as one, their windows in order: a process that read
        nothing counts its ``windows`` as unread; None when no window was read at all."""
        readings = [r for value, n in zip(values, windows) for r in (cls.windows(value)
                                                                       or [None] * n)]
        return cls.record(readings) if any(readings) else None
