"""GPU telemetry during each CUDA window: clocks, temperature, power and throttle reasons (NVML).

NVML comes with nvidia-ml-py (``pynvml``, the ``nvml`` extra). Without it, or without a driver,
nothing is recorded and nothing fails: a case's ``telemetry`` is then None ("not recorded").

A window is read at its start and its end, and in between by a background thread every
``SAMPLE_SECONDS`` (50 Hz), so that a clock that drops inside a window is seen: the window keeps
the lowest SM clock, the highest temperature and power, the reasons seen at any reading, and
the number and rate of the readings. The thread spends its time in NVML's C calls, which
release the GIL; it wakes 50 times a second, which the timed loop can feel as a rare outlier
and the medians do not.

A case is throttled when, at its start, its end or any reading between, the SM clock was below
90% of its maximum
(nvbench's throttle criterion, at the threshold this project uses) or a reason that slows the
clocks down was active: a power cap, a thermal or hardware slowdown, or the power brake. Idle
is not a slowdown, and the reasons that are settings (application or display clocks, sync
boost, user-defined clocks) are recorded but do not flag a case by themselves: where they hold
the clock low, the clock test catches it.
"""

from __future__ import annotations

import importlib
import sys
import threading
import time

from gdbench.axes.windows import KeptByWindow
from gdbench.core.devices import is_cuda

SAMPLE_SECONDS = 0.02
CLOCK_FRACTION = 0.90  # an SM clock under this share of its maximum is throttled


# NVML's clock-event reason bits, by the name of their pynvml constant (older pynvml releases
# spell them ClocksThrottleReason...).
SLOWDOWNS = {"SwPowerCap": "sw_power_cap", "HwSlowdown": "hw_slowdown",
             "SwThermalSlowdown": "sw_thermal_slowdown", "HwThermalSlowdown": "hw_thermal_slowdown",
             "HwPowerBrakeSlowdown": "hw_power_brake_slowdown"}


SETTINGS = {"GpuIdle": "gpu_idle", "ApplicationsClocksSetting": "applications_clocks_setting",
            "SyncBoost": "sync_boost", "DisplayClockSetting": "display_clock_setting",
            "UserDefinedClocks": "user_defined_clocks"}


def _constant(nvml, name: str) -> int:
    for prefix in ("nvmlClocksEventReason", "nvmlClocksThrottleReason"):
        value = getattr(nvml, prefix + name, None)
        if value is not None:
            return int(value)
    return 0


class Telemetry:
    """Readings of one GPU through an NVML module (``pynvml``, or a fake of it in tests)."""

    def __init__(self, nvml, handle):
        self.nvml = nvml
        self.handle = handle
        self.max_sm_clock = nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_SM)
        self.reason_bits = {label: _constant(nvml, name)
                            for table in (SLOWDOWNS, SETTINGS) for name, label in table.items()}

    def _reasons(self) -> list[str]:
        nvml = self.nvml
        query = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
            nvml.nvmlDeviceGetCurrentClocksThrottleReasons
        mask = int(query(self.handle))
        return [label for label, bit in self.reason_bits.items() if bit and mask & bit]

    def describe(self) -> dict:
        """What does not change during a run: driver, clock limits, power limit."""
        nvml, h = self.nvml, self.handle
        facts = {"max_sm_clock_mhz": self.max_sm_clock}
        for key, call in (("driver", lambda: nvml.nvmlSystemGetDriverVersion()),
                          ("max_memory_clock_mhz",
                           lambda: nvml.nvmlDeviceGetMaxClockInfo(h, nvml.NVML_CLOCK_MEM)),
                          ("power_limit_w",
                           lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000)):
            try:
                value = call()
                facts[key] = value.decode() if isinstance(value, bytes) else value
            except Exception:
                pass
        return facts

    def snapshot(self) -> dict | None:
        """The GPU's state now; None when NVML cannot answer."""
        nvml, h = self.nvml, self.handle
        try:
            return {
                "sm_clock_mhz": nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM),
                "max_sm_clock_mhz": self.max_sm_clock,
                "memory_clock_mhz": nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_MEM),
                "temperature_c": nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU),
                "power_w": nvml.nvmlDeviceGetPowerUsage(h) / 1000,
                "reasons": self._reasons(),
            }
        except Exception:  # NVMLError_NotSupported and the like: not recorded
            return None


def _cuda_pci_bus_id() -> str | None:
    """PCI bus id of the CUDA device in use: NVML numbers GPUs without CUDA_VISIBLE_DEVICES."""
    try:
        if "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized():
            torch = sys.modules["torch"]
            p = torch.cuda.get_device_properties(torch.cuda.current_device())
            return f"{p.pci_domain_id:x}:{p.pci_bus_id:x}:{p.pci_device_id:x}.0"
        if "cupy" in sys.modules:
            return sys.modules["cupy"].cuda.Device().pci_bus_id
    except Exception:
        pass
    return None


def open_telemetry(nvml=None) -> Telemetry | None:
    """Telemetry of the CUDA device in use, or None when NVML is not installed or not working."""
    try:
        nvml = nvml or importlib.import_module("pynvml")
        nvml.nvmlInit()
        bus_id = _cuda_pci_bus_id()
        handle = (nvml.nvmlDeviceGetHandleByPciBusId(bus_id) if bus_id
                  else nvml.nvmlDeviceGetHandleByIndex(0))
        return Telemetry(nvml, handle)
    except Exception:  # no pynvml, no driver, no such device
        return None


class Sampler(threading.Thread):
    """Readings of ``telemetry`` every ``interval`` seconds until ``finish``."""

    def __init__(self, telemetry: Telemetry, interval: float = SAMPLE_SECONDS):
        super().__init__(name="gdbench-nvml", daemon=True)
        self.telemetry, self.interval = telemetry, interval
        self.readings: list[dict] = []
        self._done = threading.Event()

    def run(self):
        while not self._done.wait(self.interval):
            reading = self.telemetry.snapshot()
            if reading is not None:
                self.readings.append(reading)

    def finish(self) -> list[dict]:
        self._done.set()
        self.join()
        return self.readings


def during(readings: list[dict], seconds: float) -> dict | None:
    """What the readings taken inside a window say, in a few numbers; None without any."""
    if not readings:
        return None
    return {"readings": len(readings), "hz": len(readings) / seconds if seconds > 0 else None,
            "min_sm_clock_mhz": min(r["sm_clock_mhz"] for r in readings),
            "max_temperature_c": max(r["temperature_c"] for r in readings),
            "max_power_w": max(r["power_w"] for r in readings),
            "mean_power_w": sum(r["power_w"] for r in readings) / len(readings),
            "reasons": sorted({x for r in readings for x in r["reasons"]})}


class TelemetryHook(KeptByWindow):
    """NVML telemetry as a window hook (``gdbench.axes``): a snapshot at each window's
    start and end and readings at 50 Hz between, in the case's ``telemetry``; on CUDA, where
    NVML can be opened."""
    field = "telemetry"

    def __init__(self, telemetry: Telemetry, interval: float = SAMPLE_SECONDS):
        self.telemetry, self.interval = telemetry, interval

    @classmethod
    def open(cls, device: str) -> TelemetryHook | None:
        telemetry = open_telemetry() if is_cuda(device) else None
        return cls(telemetry) if telemetry is not None else None

    def start(self):
        sampler = Sampler(self.telemetry, self.interval)
        first = self.telemetry.snapshot()
        sampler.start()
        return first, sampler, time.perf_counter()

    def stop(self, token, steps: int = 0) -> dict:
        first, sampler, t0 = token
        readings = sampler.finish()
        seconds = time.perf_counter() - t0
        return {"start": first, "end": self.telemetry.snapshot(),
                "during": during(readings, seconds), "seconds": seconds}

    @staticmethod
    def across_ranks(readings: list, hosts: list) -> dict | None:
        """One window of a data-parallel run: the reading of the rank whose GPU ran most
        throttled (the most reasons, then the lowest SM clock inside the window), with its
        rank; a step takes as long as its slowest rank."""
        read = [(rank, r) for rank, r in enumerate(readings) if r]
        if not read:
            return None

        def slowness(pair):
            inside = pair[1].get("during") or {}
            return (len(throttle_reasons({"windows": [pair[1]]})),
                    -(inside.get("min_sm_clock_mhz") or 0))

        rank, worst = max(read, key=slowness)
        return dict(worst, rank=rank)

    @staticmethod
    def derived(case) -> dict:
        """What the results file adds beside the readings: whether the case ran throttled."""
        return {"throttled": case.throttled, "throttle_reasons": case.throttle_reasons}

    @staticmethod
    def detail(case) -> list[str]:
        return []  # a throttled case is marked "!" in its cell

    @staticmethod
    def table(cases) -> list[str]:
        return []

    @staticmethod
    def notes(cases) -> list[str]:
        """The report's list of the cases that ran throttled, and why."""
        throttled = [c for c in cases if c.ok and c.throttled]
        if not throttled:
            return []
        return (["Cases during which the GPU ran throttled:", ""]
                + [f"- {c.spec.label}: {'; '.join(c.throttle_reasons)}" for c in throttled]
                + [""])


def throttle_reasons(telemetry: dict | None) -> list[str]:
    """Why a case ran throttled, from its readings; [] if it did not, or nothing was recorded.

    ``telemetry`` is ``{"windows": [{"start": reading, "end": reading, "during": summary},
    ...]}`` (``during``: the readings taken inside the window; older files lack it), or one such
    pair (results of gdbench 0.1.0).
    """
    if not telemetry:
        return []
    windows = telemetry.get("windows") or [telemetry]
    why = []
    for index, pair in enumerate(windows):
        where = f" of window {index + 1}" if len(windows) > 1 else ""
        top = None
        for when in ("start", "end"):
            reading = (pair or {}).get(when)
            if not reading:
                continue
            clock, top = reading.get("sm_clock_mhz"), reading.get("max_sm_clock_mhz")
            why += _slowed(clock, top, reading.get("reasons", []), "", f"at the {when}{where}")
        inside = (pair or {}).get("during")
        if inside:
            why += _slowed(inside.get("min_sm_clock_mhz"), top, inside.get("reasons", []),
                           "down to ", f"during{where or ' the window'}")
    return list(dict.fromkeys(why))


def _slowed(clock, top, reasons: list, how: str, when: str) -> list[str]:
    """What one reading says: a clock under CLOCK_FRACTION of ``top``, slowdown reasons."""
    why = []
    if clock and top and clock < CLOCK_FRACTION * top:
        why.append(f"SM clock {how}{clock} MHz {when}, under {CLOCK_FRACTION:.0%} of {top} MHz")
    slow = [r for r in reasons if r in SLOWDOWNS.values()]
    if slow:
        why.append(f"{', '.join(slow)} {when}")
    return why
