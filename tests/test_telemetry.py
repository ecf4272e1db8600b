"""GPU telemetry through a fake NVML: readings, the throttle flag, and where it is shown."""

import importlib

import numpy as np
import pytest

from gdbench.analysis import tables
from gdbench.files.results import read_json, write_json
from gdbench.axes import telemetry
from gdbench.axes.telemetry import Telemetry, TelemetryHook, during, open_telemetry
from gdbench.measure.timing import StopRule
from gdbench.axes.telemetry import throttle_reasons
from gdbench.records.results import CaseResult, CaseSpec
from gdbench.records.run import RunResult
from gdbench.runs import sweep


class FakeNvml:
    """The part of pynvml that gdbench calls, with the real constants, for one GPU."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 1, 2, 0
    nvmlClocksEventReasonGpuIdle = 0x1
    nvmlClocksEventReasonApplicationsClocksSetting = 0x2
    nvmlClocksEventReasonSwPowerCap = 0x4
    nvmlClocksEventReasonHwSlowdown = 0x8
    nvmlClocksEventReasonSyncBoost = 0x10
    nvmlClocksEventReasonSwThermalSlowdown = 0x20
    nvmlClocksEventReasonHwThermalSlowdown = 0x40
    nvmlClocksEventReasonHwPowerBrakeSlowdown = 0x80
    nvmlClocksEventReasonDisplayClockSetting = 0x100

    def __init__(self, sm_clock=1980, reasons=0, max_sm_clock=1980):
        self.sm_clock, self.reasons, self.max_sm_clock = sm_clock, reasons, max_sm_clock
        self.initialized = False

    def nvmlInit(self):
        self.initialized = True

    def nvmlDeviceGetHandleByIndex(self, index):
        return f"gpu{index}"

    def nvmlDeviceGetHandleByPciBusId(self, bus_id):
        return bus_id

    def nvmlDeviceGetMaxClockInfo(self, handle, clock):
        return self.max_sm_clock if clock == self.NVML_CLOCK_SM else 3201

    def nvmlDeviceGetClockInfo(self, handle, clock):
        return self.sm_clock if clock == self.NVML_CLOCK_SM else 3201

    def nvmlDeviceGetTemperature(self, handle, sensor):
        return 41

    def nvmlDeviceGetPowerUsage(self, handle):
        return 312_500  # milliwatts

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle):
        return self.reasons

    def nvmlSystemGetDriverVersion(self):
        return "580.159.04"

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return 700_000

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        self.energy_mj = getattr(self, "energy_mj", 10**9) + 250  # a quarter joule a call
        return self.energy_mj


def readings(**fake):
    t = Telemetry(FakeNvml(**fake), "gpu0")
    return {"start": t.snapshot(), "end": t.snapshot()}


def test_snapshot_and_description():
    t = open_telemetry(FakeNvml(reasons=0x1))
    assert t.nvml.initialized
    assert t.snapshot() == {"sm_clock_mhz": 1980, "max_sm_clock_mhz": 1980,
                            "memory_clock_mhz": 3201, "temperature_c": 41, "power_w": 312.5,
                            "reasons": ["gpu_idle"]}
    assert t.describe() == {"max_sm_clock_mhz": 1980, "driver": "580.159.04",
                            "max_memory_clock_mhz": 3201, "power_limit_w": 700.0}


@pytest.mark.parametrize("fake,expected", [
    ({}, []),
    ({"reasons": 0x1}, []),  # idle is not a slowdown
    ({"reasons": 0x2 | 0x10}, []),  # settings alone, at full clock
    ({"sm_clock": 1800}, []),  # 91% of the maximum
    ({"sm_clock": 1700}, ["SM clock 1700 MHz at the start, under 90% of 1980 MHz",
                          "SM clock 1700 MHz at the end, under 90% of 1980 MHz"]),
    ({"reasons": 0x4 | 0x1}, ["sw_power_cap at the start", "sw_power_cap at the end"]),
    ({"reasons": 0x40}, ["hw_thermal_slowdown at the start", "hw_thermal_slowdown at the end"]),
])
def test_throttle_rule(fake, expected):
    assert throttle_reasons(readings(**fake)) == expected


def test_nothing_recorded_is_not_throttled():
    assert throttle_reasons(None) == []
    assert throttle_reasons({"start": None, "end": None}) == []


def test_without_nvml_nothing_is_recorded(monkeypatch):
    def missing(name):
        raise ModuleNotFoundError(f"No module named {name!r}")

    monkeypatch.setattr(importlib, "import_module", missing)
    assert open_telemetry() is None

    class Broken(FakeNvml):
        def nvmlInit(self):
            raise RuntimeError("NVML Shared Library Not Found")

    assert open_telemetry(Broken()) is None


def test_an_unsupported_query_is_not_recorded():
    class NoPower(FakeNvml):
        def nvmlDeviceGetPowerUsage(self, handle):
            raise RuntimeError("Not Supported")

    assert Telemetry(NoPower(), "gpu0").snapshot() is None


def test_a_throttled_case_is_flagged_in_the_json_and_the_table(tmp_path):
    x, y = np.ones((200, 1), np.float32), np.ones(200, np.float32)
    spec = CaseSpec("numpy-manual", "cpu", "float32", 200)
    slow = Telemetry(FakeNvml(sm_clock=1200, reasons=0x4), "gpu0")
    case = sweep.run_case(spec, x, y, StopRule(budget=0.02), hooks=(TelemetryHook(slow),))
    assert case.ok and case.throttled
    assert case.telemetry["windows"][0]["end"]["sm_clock_mhz"] == 1200
    run = RunResult({}, {"device": "cpu", "dtype": "float32", "n_features": 1}, [case])
    write_json(run, tmp_path / "r.json")
    saved = read_json(tmp_path / "r.json").cases[0]
    assert saved.throttled and saved.throttle_reasons == case.throttle_reasons
    assert tables.cell(saved).splitlines()[0].endswith("!")
    fine = sweep.run_case(spec, x, y, StopRule(budget=0.02),
                          hooks=(TelemetryHook(Telemetry(FakeNvml(), "gpu0")),))
    assert not fine.throttled and not tables.cell(fine).splitlines()[0].endswith("!")
    untracked = CaseResult(spec, "ok")
    assert untracked.telemetry is None and not untracked.throttled


def test_cpu_runs_record_no_telemetry():
    case = gdbench_run_one()
    assert case.telemetry is None and "telemetry" not in case.to_dict()


def gdbench_run_one():
    import gdbench

    return gdbench.run("cpu", ["numpy-manual"], [100], budget=0.02, roofline=False).cases[0]


def test_constants_match_pynvml():
    nvml = pytest.importorskip("pynvml", reason="nvidia-ml-py is not installed")
    for name in [a for a in dir(FakeNvml) if a.startswith("nvmlClocksEventReason")]:
        assert getattr(nvml, name) == getattr(FakeNvml, name)
    for name in ("NVML_CLOCK_SM", "NVML_CLOCK_MEM", "NVML_TEMPERATURE_GPU"):
        assert getattr(nvml, name) == getattr(FakeNvml, name)
    assert set(telemetry.SLOWDOWNS) | set(telemetry.SETTINGS) == {
        a.removeprefix("nvmlClocksEventReason") for a in dir(FakeNvml)
        if a.startswith("nvmlClocksEventReason")} | {"UserDefinedClocks"}


def test_readings_inside_a_window_see_a_clock_that_drops_and_recovers():
    import time

    nvml = FakeNvml()
    hook = TelemetryHook(Telemetry(nvml, "gpu0"), interval=0.005)
    token = hook.start()
    time.sleep(0.06)
    nvml.sm_clock, nvml.reasons = 1200, 0x20  # a thermal slowdown, over before the end
    time.sleep(0.06)
    nvml.sm_clock, nvml.reasons = 1980, 0
    time.sleep(0.06)
    window = hook.stop(token, steps=100)
    assert window["start"]["sm_clock_mhz"] == window["end"]["sm_clock_mhz"] == 1980
    inside = window["during"]
    assert inside["min_sm_clock_mhz"] == 1200 and inside["reasons"] == ["sw_thermal_slowdown"]
    assert inside["readings"] >= 10 and inside["hz"] >= 20
    assert throttle_reasons({"windows": [window]}) == [
        "SM clock down to 1200 MHz during the window, under 90% of 1980 MHz",
        "sw_thermal_slowdown during the window"]


def test_the_default_sampling_rate_is_at_least_20_hz_in_a_timed_window():
    x, y = np.ones((200, 1), np.float32), np.ones(200, np.float32)
    spec = CaseSpec("numpy-manual", "cpu", "float32", 200)
    case = sweep.run_case(spec, x, y, StopRule(budget=0.3, precision=1e-9),
                          hooks=(TelemetryHook(Telemetry(FakeNvml(), "gpu0")),))
    inside = case.telemetry["windows"][0]["during"]
    assert telemetry.SAMPLE_SECONDS <= 0.05 and inside["readings"] >= 5 and inside["hz"] >= 20
    assert not case.throttled


def test_no_readings_inside_say_nothing():
    assert during([], 0.01) is None


def test_the_ranks_telemetry_is_the_most_throttled_rank_s():
    """A step of a data-parallel run takes as long as its slowest rank: a window keeps the
    reading of the rank whose GPU ran most throttled, and says which rank it was."""
    def reading(clock, reasons=()):
        snapshot = {"sm_clock_mhz": 1980, "max_sm_clock_mhz": 1980, "reasons": []}
        return {"start": snapshot, "end": snapshot, "seconds": 0.1,
                "during": {"min_sm_clock_mhz": clock, "reasons": list(reasons)}}

    calm, slow, capped = reading(1980), reading(1500), reading(1500, ["sw_power_cap"])
    joined = TelemetryHook.across_ranks([calm, slow, calm], ["a", "a", "a"])
    assert joined["rank"] == 1 and joined["during"]["min_sm_clock_mhz"] == 1500
    assert TelemetryHook.across_ranks([slow, capped], ["a", "a"])["rank"] == 1
    assert TelemetryHook.across_ranks([calm, None], ["a", "a"])["rank"] == 0
    assert TelemetryHook.across_ranks([None, None], ["a", "a"]) is None
