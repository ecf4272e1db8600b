"""Energy per step: RAPL and NVML counters read around each window, through fakes."""

import numpy as np

from gdbench.files.results import read_json, write_json
from gdbench.axes.energy import EnergyHook, NvmlEnergy, Rapl, energy_source
from gdbench.axes.telemetry import Telemetry
from gdbench.measure.timing import StopRule
from gdbench.records.results import CaseSpec
from gdbench.records.run import RunResult
from gdbench.runs import sweep
from gdbench.runs.workers import merge
from tests.test_telemetry import FakeNvml


def powercap(tmp_path, packages=((999_000, 1_000_000),)):
    """A /sys/class/powercap tree: package domains, each with a core subdomain to ignore."""
    for index, (energy, top) in enumerate(packages):
        d = tmp_path / f"intel-rapl:{index}"
        (d / f"intel-rapl:{index}:0").mkdir(parents=True)
        (d / "name").write_text(f"package-{index}\n")
        (d / "energy_uj").write_text(f"{energy}\n")
        (d / "max_energy_range_uj").write_text(f"{top}\n")
        (d / f"intel-rapl:{index}:0" / "energy_uj").write_text("5\n")
    return tmp_path


def test_rapl_sums_the_packages_and_counts_through_the_wrap(tmp_path):
    root = powercap(tmp_path, [(999_000, 1_000_000), (10, 2_000_000)])
    rapl = Rapl.find(root)
    assert [d.name for d in rapl.domains] == ["intel-rapl:0", "intel-rapl:1"]
    before = rapl.read()
    (root / "intel-rapl:0" / "energy_uj").write_text("1000\n")  # wrapped past 1 J
    (root / "intel-rapl:1" / "energy_uj").write_text("500010\n")
    assert np.isclose(rapl.joules(before, rapl.read()), 0.002 + 0.5)


def test_rapl_says_why_it_cannot_be_read(tmp_path, monkeypatch):
    assert Rapl.find(tmp_path) == f"no RAPL package domains under {tmp_path}"
    root = powercap(tmp_path)

    def denied(self):
        raise PermissionError(13, "Permission denied", str(root / "intel-rapl:0" / "energy_uj"))

    monkeypatch.setattr(Rapl, "read", denied)
    assert Rapl.find(root).startswith("RAPL is not readable by this user (")


def test_a_run_says_where_its_energy_comes_from_or_why_not():
    text = energy_source("cpu")
    assert text.startswith("RAPL package") or text.startswith("not readable here: ")


def test_nvml_energy_and_its_absence():
    counter = NvmlEnergy.find(Telemetry(FakeNvml(), "gpu0"))
    assert counter.joules(counter.read(), counter.read()) == 0.25

    class Old(FakeNvml):
        def nvmlDeviceGetTotalEnergyConsumption(self, handle):
            raise RuntimeError("Not Supported")

    assert NvmlEnergy.find(Telemetry(Old(), "gpu0")).startswith("NVML has no energy counter")


class Counter:
    """One joule per read."""

    def __init__(self):
        self.reads = 0

    def read(self):
        self.reads += 1
        return self.reads

    def joules(self, before, after):
        return float(after - before)


def test_joules_per_step_over_the_windows_and_in_the_file(tmp_path):
    x, y = np.ones((200, 1), np.float32), np.ones(200, np.float32)
    spec = CaseSpec("numpy-manual", "cpu", "float32", 200)
    case = sweep.run_case(spec, x, y, StopRule(budget=0.02), hooks=(EnergyHook(Counter()),))
    window = case.energy["windows"][0]
    timed = len(case.samples.device) + len(case.samples.batch) * case.samples.batch_size
    assert window["joules"] == 1.0 and window["steps"] >= timed and window["seconds"] > 0
    assert case.joules_per_step == 1.0 / window["steps"]
    assert np.isclose(case.samples_per_joule, 200 * window["steps"])
    write_json(RunResult({}, {"device": "cpu", "dtype": "float32", "n_features": 1}, [case]),
               tmp_path / "r.json")
    again = read_json(tmp_path / "r.json").cases[0]
    assert again.joules_per_step == case.joules_per_step
    both = merge([[case], [case]])[0]  # two worker processes' windows of the case
    assert len(both.energy["windows"]) == 2 and both.joules_per_step == case.joules_per_step


def test_the_ranks_energy_adds_their_gpus_and_counts_a_shared_package_once(tmp_path):
    """A window of a data-parallel run: NVML counts each rank's own GPU, so two ranks' joules
    add up; RAPL counts the packages of a host, which its ranks share, so a host counts once."""
    window = [{"joules": 2.0, "seconds": 0.1, "steps": 50},
              {"joules": 3.0, "seconds": 0.12, "steps": 50},
              {"joules": 7.0, "seconds": 0.11, "steps": 50}]
    gpus = EnergyHook(NvmlEnergy.find(Telemetry(FakeNvml(), "gpu0")))
    joined = gpus.across_ranks(window, ["a", "a", "b"])
    assert joined == {"joules": 12.0, "seconds": 0.12, "steps": 50, "devices": 3}
    packages = EnergyHook(Rapl.find(powercap(tmp_path)))
    joined = packages.across_ranks(window, ["a", "a", "b"])
    assert joined["joules"] == 9.0 and joined["devices"] == 2  # rank 0 for host a, rank 2 for b
    assert packages.across_ranks([None, None], ["a", "a"]) is None
