"""Is the machine busy? What each sampling window saw of the other work on the CPUs.

Linux counts, for every thread, the time it was ready to run but waited for a CPU
(``/proc/self/task/*/schedstat``, the second field). Summed over this process's threads and
divided by the window's wall time, it is the share of the window in which the benchmark was held
back (a thread that ends within the window takes its count with it; the kernels' thread pools
live as long as the process): near 0 on an idle machine, tens of percent when another process
takes a core from a two-thread kernel. A process can also hold itself back, when its own threads
outnumber the CPUs (XLA's thread pools on two cores), so the CPU time the rest of the machine
used meanwhile is read too (``/proc/stat``'s busy time, the hypervisor's steal included, less
this process's CPU time). A window is contended when it waited over ``CONTENDED`` (10%) of its
time and other processes used more than ``OTHERS`` (a quarter of a CPU; ``/proc/stat`` counts in
10 ms ticks); a wait that the rest of the machine cannot explain is the kernel's own, recorded
and not flagged, since measuring again would not change it. The process's CPU time per wall
second and the one-minute load average before and after are recorded beside it, and so are the
minor page faults the process took (``getrusage``): a step that allocates large temporaries on
fresh pages pays for every first touch of them, which can be most of its time. Where the
counters do not exist (not Linux), nothing is recorded and nothing is flagged.
"""

from __future__ import annotations

import glob
import os
import resource
import time


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


def _machine_busy() -> float | None:
    """CPU seconds all CPUs spent busy (steal included) since boot, or None without /proc/stat."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal (guest time is inside user)
        busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]
        return busy / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


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
        self.delay, self.load, self.busy = _run_delay(), _load(), _machine_busy()
        self.cpu, self.wall = time.process_time(), time.perf_counter()
        self.faults = _minor_faults()
        self.started = time.time()  # when the window began, seconds since the epoch

    def stop(self) -> dict | None:
        delay = _run_delay()
        if delay is None or self.delay is None:
            return None
        wall = max(time.perf_counter() - self.wall, 1e-9)
        cpu, busy = time.process_time() - self.cpu, _machine_busy()
        reading = {"run_delay_fraction": (delay - self.delay) / wall, "cpu_per_wall": cpu / wall,
                   "load_1min": [self.load, _load()], "wall_s": wall, "started": self.started,
                   "minor_faults": _minor_faults() - self.faults}
        if busy is not None and self.busy is not None:
            reading["others_cpu_per_wall"] = max(busy - self.busy - cpu, 0.0) / wall
        return reading


class ContentionHook:
    """Contention as a window hook (``gdbench.axes``): a ``Watch`` around each window,
    its readings in the case's ``contention``."""

    field = "contention"
    reads = "window"

    @classmethod
    def open(cls, device: str) -> ContentionHook:
        return cls()

    def start(self) -> Watch:
        return Watch()

    def stop(self, watch: Watch, steps: int = 0) -> dict | None:
        return watch.stop()

    @staticmethod
    def record(readings: list) -> list:
        """The case's field from the readings of its windows."""
        return readings

    @staticmethod
    def join(values: list, windows: list) -> list | None:
        """Several processes' values as one, their windows in order (a process that read
        nothing counts its ``windows`` as unread); None when no window was read at all."""
        readings = [r for value, n in zip(values, windows) for r in (value or [None] * n)]
        return readings if any(readings) else None

    @staticmethod
    def across_ranks(readings: list, hosts: list) -> dict | None:
        """One window of a data-parallel run: the reading of the rank that waited longest for
        a CPU, with the CPU time of the other ranks on its host taken out of the other
        processes' (the ranks share the machine by design; only other work holds them
        back)."""
        read = [(r, host) for r, host in zip(readings, hosts) if r]
        if not read:
            return None
        worst, host = max(read, key=lambda pair: pair[0]["run_delay_fraction"])
        worst = dict(worst, ranks=len(readings))
        if "others_cpu_per_wall" in worst:
            ranks_cpu = sum(r["cpu_per_wall"] for r, h in read if h == host) \
                - worst["cpu_per_wall"]
            worst["others_cpu_per_wall"] = max(worst["others_cpu_per_wall"] - ranks_cpu, 0.0)
        return worst

    @staticmethod
    def derived(case) -> dict:
        """What the results file adds beside the readings: whether the case was held back."""
        return {"contended": case.contended, "contention_reasons": case.contention_reasons}

    @staticmethod
    def detail(case) -> list[str]:
        return []  # a contended case's cell says so, marked "^"

    @staticmethod
    def table(cases) -> list[str]:
        return []

    @staticmethod
    def notes(cases) -> list[str]:
        """The report's lists: the cases other work held back, and those whose own threads
        waited for a CPU."""
        lines = []
        held = [c for c in cases if c.ok and c.contended]
        if held:
            lines += ["Cases measured while other work held them back:", ""] + [
                f"- {c.spec.label}: {'; '.join(c.contention_reasons)}"
                + (" (measured twice, the less contended kept)" if c.remeasured else "")
                for c in held] + [""]
        crowded = [(c, self_inflicted(c.contention)) for c in cases if c.ok]
        crowded = [(c, wait) for c, wait in crowded if wait]
        if crowded:
            lines += ["Cases whose own threads outnumbered the CPUs (waited for a CPU while "
                      "no other process was busy; not measured again):", ""] + [
                f"- {c.spec.label}: up to {wait:.0%} of a window" for c, wait in crowded] + [""]
        return lines


CONTENDED = 0.10


OTHERS = 0.25


def contention_reasons(windows: list | None) -> list[str]:
    """Why a case with these per-window readings counts as contended; [] if it does not."""
    why = []
    for index, reading in enumerate(windows or []):
        if contended(reading):
            others = reading.get("others_cpu_per_wall")
            why.append(f"window {index + 1}: waited for a CPU "
                       f"{reading['run_delay_fraction']:.0%} of the time"
                       + ("" if others is None else
                          f", while other processes used {others:.2g} CPUs"))
    return why


def contended(reading: dict | None) -> bool:
    """Held back by other work: waited for a CPU, while the rest of the machine was busy
    (where that is known; a reading without it counts the wait alone)."""
    if not reading or reading["run_delay_fraction"] <= CONTENDED:
        return False
    return reading.get("others_cpu_per_wall", OTHERS + 1) > OTHERS


def self_inflicted(windows: list | None) -> float:
    """The largest share of a window spent waiting for a CPU that no other process explains:
    the kernel's own threads outnumbering the CPUs. 0 where there is none."""
    return max((w["run_delay_fraction"] for w in windows or []
                if w and w["run_delay_fraction"] > CONTENDED and not contended(w)), default=0.0)
