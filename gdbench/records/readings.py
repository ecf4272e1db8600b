"""What the readings taken around a window say: held back by other work (contended), or
throttled. The readings themselves are taken by ``gdbench.measure.contention`` and
``gdbench.measure.telemetry``."""

from __future__ import annotations

CLOCK_FRACTION = 0.90


# NVML's clock-event reason bits, by the name of their pynvml constant (older pynvml releases
# spell them ClocksThrottleReason...).
SLOWDOWNS = {"SwPowerCap": "sw_power_cap", "HwSlowdown": "hw_slowdown",
             "SwThermalSlowdown": "sw_thermal_slowdown", "HwThermalSlowdown": "hw_thermal_slowdown",
             "HwPowerBrakeSlowdown": "hw_power_brake_slowdown"}

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


def energy_per_step(energy: dict | None) -> float | None:
    """Joules per step over all the windows of a case: their energy over the steps they ran;
    None where no energy was read."""
    windows = [w for w in (energy or {}).get("windows") or [] if w]
    steps = sum(w["steps"] for w in windows)
    return sum(w["joules"] for w in windows) / steps if steps else None
