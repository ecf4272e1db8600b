"""How sizes are written: a sample count as people write it, bytes in the unit that reads best."""

from __future__ import annotations


def format_size(n: int) -> str:
    """A sample count as people write it: ``1e6`` for a power of ten, else ``1500``."""
    exponent = len(str(n)) - 1
    return f"1e{exponent}" if n == 10**exponent else str(n)


def format_bytes(n: int) -> str:
    """Bytes in the largest binary unit they reach: ``3.1 MiB``, ``512 B``."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"
