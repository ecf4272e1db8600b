"""Is the machine busy? What each sampling window saw of the other work on the CPUs.

Linux counts, for every thread, the time it was ready to run but waited for a CPU
(``/proc/self/task/*/schedstat``, the second field). Summed over this process's threads and
divided by the window's wall time, it is the share of the window in which the benchmark was
held back by other work: near 0 on an idle machine, tens of percent when another process takes
a core from a two-thread kernel. A window is contended above ``CONTENDED`` (10%). The process's
CPU time per wall second and the one-minute load average before and after are recorded beside
it, and so are the minor page faults the process took (``getrusage``): a step that allocates
large temporaries on fresh pages pays for every first touch of them, which can be most of its
time. Where the counters do not exist (not Linux), nothing is recorded and nothing is flagged.
"""

from __future__ import annotations

import glob
import os
import resource
import time

CONTENDED = 0.10


def _run_delay() -> float | None:
    """Seconds this process's threads have waited for a CPU, or None where Linux does not say."""
    total, seen = 0, False
    for path in glob.glob("/proc/self/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[1])
            seen = True
        except (OSError, IndexError, ValueError):  # a thread that ended meanwhile
            continue
    return total * 1e-9 if seen else None


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


class Watch:
    """Started before a window, read after it: ``stop()`` gives the window's readings."""

    def __init__(self):
        self.delay, self.load = _run_delay(), _load()
        self.cpu, self.wall = time.process_time(), time.perf_counter()
        self.faults = _minor_faults()
        self.started = time.time()  # when the window began, seconds since the epoch

    def stop(self) -> dict | None:
        delay = _run_delay()
        if delay is None or self.delay is None:
            return None
        wall = max(time.perf_counter() - self.wall, 1e-9)
        return {"run_delay_fraction": (delay - self.delay) / wall,
                "cpu_per_wall": (time.process_time() - self.cpu) / wall,
                "load_1min": [self.load, _load()], "wall_s": wall, "started": self.started,
                "minor_faults": _minor_faults() - self.faults}


def contention_reasons(windows: list | None) -> list[str]:
    """Why a case with these per-window readings counts as contended; [] if it does not."""
    why = []
    for index, reading in enumerate(windows or []):
        if reading and reading["run_delay_fraction"] > CONTENDED:
            why.append(f"window {index + 1}: waited for a CPU "
                       f"{reading['run_delay_fraction']:.0%} of the time")
    return why
