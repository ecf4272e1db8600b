"""The shape most axes keep their readings in: ``{"windows": [one reading a window]}``."""

from __future__ import annotations


class KeptByWindow:
    """``record`` and ``windows`` for an axis whose field is ``{"windows": [...]}``, a reading
    (or None) for each window."""

    @staticmethod
    def record(readings: list) -> dict:
        """The case's field from the readings of its windows."""
        return {"windows": readings}

    @staticmethod
    def windows(value: dict | None) -> list | None:
        """The readings of each window a recorded field holds (``record``'s inverse)."""
        return (value or {}).get("windows")
