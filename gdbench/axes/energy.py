"""Energy per step: the energy counter read around each window, divided by the steps it ran.

On CUDA the counter is NVML's total energy of the GPU (millijoules since the driver loaded,
``nvmlDeviceGetTotalEnergyConsumption``, Volta and later); on the CPU it is Linux's RAPL
package domains (``/sys/class/powercap/intel-rapl:N/energy_uj``, on Intel and on AMD since
Zen), where the kernel exposes them and this user may read them (often root only). Where there
is no counter the run says why (``energy_source``) and records nothing; it never fails.

A window's energy covers all of it, its latency samples (a device idle between steps) and its
batches, and every step it ran, untimed ones included; the energy of the whole device (or
package), not of the step alone. So J/step is what a step costs the device as gdbench runs it.
"""

from __future__ import annotations

import time
from pathlib import Path

from gdbench.axes.telemetry import open_telemetry
from gdbench.axes.windows import KeptByWindow
from gdbench.core.devices import is_cuda

POWERCAP = Path("/sys/class/powercap")


class Rapl:
    """The CPU packages' RAPL energy counters, in joules, with their wrap-around."""

    def __init__(self, domains: list[Path]):
        self.domains = domains
        self.ranges = [int((d / "max_energy_range_uj").read_text()) for d in domains]

    @classmethod
    def find(cls, root: Path = POWERCAP) -> Rapl | str:
        """The counters of every package, or why there are none."""
        domains = sorted(d for d in root.glob("intel-rapl:*") if d.name.count(":") == 1)
        if not domains:
            return f"no RAPL package domains under {root}"
        try:
            rapl = cls(domains)
            rapl.read()
        except PermissionError as exc:
            return f"RAPL is not readable by this user ({exc.filename})"
        except (OSError, ValueError) as exc:
            return f"RAPL cannot be read: {exc}"
        return rapl

    def read(self) -> list[int]:
        return [int((d / "energy_uj").read_text()) for d in self.domains]

    def joules(self, before: list[int], after: list[int]) -> float:
        return sum(((b - a) % r) * 1e-6 for a, b, r in zip(before, after, self.ranges))


class NvmlEnergy:
    """NVML's energy counter of the GPU in use, in joules."""

    def __init__(self, telemetry):
        self.telemetry = telemetry

    @classmethod
    def find(cls, telemetry=None) -> NvmlEnergy | str:
        telemetry = telemetry or open_telemetry()
        if telemetry is None:
            return "NVML is not available (pip install nvidia-ml-py, and a driver)"
        try:
            telemetry.nvml.nvmlDeviceGetTotalEnergyConsumption(telemetry.handle)
        except Exception as exc:
            return f"NVML has no energy counter for this GPU ({exc})"
        return cls(telemetry)

    def read(self) -> int:
        return self.telemetry.nvml.nvmlDeviceGetTotalEnergyConsumption(self.telemetry.handle)

    def joules(self, before: int, after: int) -> float:
        return (after - before) * 1e-3


def find_counter(device: str):
    """The energy counter for ``device`` here, or a string saying why there is none."""
    return NvmlEnergy.find() if is_cuda(device) else Rapl.find()


def energy_source(device: str) -> str:
    """What a run on ``device`` reads its energy from, or "not readable here: why"."""
    counter = find_counter(device)
    if isinstance(counter, str):
        return f"not readable here: {counter}"
    if isinstance(counter, Rapl):
        return "RAPL " + ", ".join((d / "name").read_text().strip() if (d / "name").exists()
                                   else d.name for d in counter.domains)
    return "NVML total energy"


class EnergyHook(KeptByWindow):
    """Energy as a window hook (``gdbench.axes``): joules, seconds and steps of each
    window, in the case's ``energy``."""

    field = "energy"

    def __init__(self, counter):
        self.counter = counter

    @classmethod
    def open(cls, device: str) -> EnergyHook | None:
        counter = find_counter(device)
        return None if isinstance(counter, str) else cls(counter)

    def start(self):
        return self.counter.read(), time.perf_counter()

    def stop(self, token, steps: int = 0) -> dict:
        before, t0 = token
        after, seconds = self.counter.read(), time.perf_counter() - t0
        return {"joules": self.counter.joules(before, after), "seconds": seconds, "steps": steps}

    def across_ranks(self, readings: list, hosts: list) -> dict | None:
        """One window of a data-parallel run: the energy of every device that ran it, over the
        steps of one rank (the ranks step together). NVML counts each rank's own GPU, so the
        ranks' joules add up; RAPL counts a host's packages, which its ranks share, so one
        reading a host counts."""
        read = [(r, host) for r, host in zip(readings, hosts) if r]
        if not read:
            return None
        if isinstance(self.counter, Rapl):
            read = list({host: r for r, host in reversed(read)}.values())
        else:
            read = [r for r, _ in read]
        return {"joules": sum(r["joules"] for r in read),
                "seconds": max(r["seconds"] for r in read), "steps": read[0]["steps"],
                "devices": len(read)}

    @staticmethod
    def derived(case) -> dict:
        """What the results file adds beside the readings: energy per step and per sample."""
        return {"joules_per_step": case.joules_per_step,
                "samples_per_joule": case.samples_per_joule}

    @staticmethod
    def detail(case) -> list[str]:
        j = case.joules_per_step
        return [] if j is None else [f"{format_joules(j)}/step"]

    @staticmethod
    def table(cases) -> list[str]:
        """Energy per step and samples per joule of each case whose energy was read."""
        read = [c for c in cases if c.joules_per_step is not None]
        if not read:
            return []
        lines = ["Energy of the device per step, over all of a case's windows (latency samples "
                 "and batches, every step they ran):", "",
                 "| case | J/step | samples per joule |", "|---|---:|---:|"]
        lines += [f"| {c.spec.label} | {format_joules(c.joules_per_step)} | "
                  f"{c.samples_per_joule:,.0f} |" for c in read]
        return lines + [""]

    @staticmethod
    def notes(cases) -> list[str]:
        return []


def format_joules(j: float) -> str:
    """Joules in the unit that reads best: ``3.1 mJ``, ``410 µJ``."""
    for unit, scale in (("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6)):
        if j >= scale:
            return f"{j / scale:.3g} {unit}"
    return f"{j / 1e-9:.3g} nJ"


def energy_per_step(energy: dict | None) -> float | None:
    """Joules per step over all the windows of a case: their energy over the steps they ran;
    None where no energy was read."""
    windows = [w for w in (energy or {}).get("windows") or [] if w]
    steps = sum(w["steps"] for w in windows)
    return sum(w["joules"] for w in windows) / steps if steps else None
