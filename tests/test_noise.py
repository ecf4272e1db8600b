"""gdbench noise: false verdicts between identical runs, slowdowns found, the noise floor."""

import json

import pytest

from gdbench.analysis.noise import NoiseFloor, assess, read_floor
from tests.synthetic import synthetic_run, write_run

CASES = {("k", n): 1e-4 * n / 1000 for n in (1000, 10_000, 100_000, 1_000_000)}


def test_identical_runs_and_genuine_slowdowns():
    runs = [synthetic_run("cpu", CASES, seed=s) for s in range(3)]
    report = assess(runs)
    assert report.comparisons == 3 * len(CASES) * 2  # 3 pairs, latency and throughput
    assert report.false_rate == 0.0
    assert report.detected[1.3] == 1.0 and report.detected[1.1] > 0.9
    assert report.floor.default < 0.01 and set(report.spreads) == set(report.floor.cases)


def test_runs_that_differ_as_a_whole_need_the_floor():
    """Each run's windows agree, but the machine was 20% slower in one run: without a floor
    compare calls identical code slower; with the floor the runs showed, it does not."""
    steady = [synthetic_run("cpu", CASES, seed=s) for s in range(3)]
    shifted = synthetic_run("cpu", {k: 1.2 * v for k, v in CASES.items()}, seed=9)
    report = assess(steady + [shifted])
    assert report.false_rate > 0.2
    floor = report.floor
    assert floor.default > 0.05
    again = assess([synthetic_run("cpu", CASES, seed=20),
                    synthetic_run("cpu", {k: 1.2 * v for k, v in CASES.items()}, seed=21)],
                   floor=floor)
    assert again.false_rate == 0.0 and again.used is floor


def test_a_floor_is_a_number_or_a_noise_file(tmp_path):
    assert read_floor("3%") == NoiseFloor(0.03, {})
    assert read_floor("0.05").of("anything") == 0.05
    path = tmp_path / "noise.json"
    path.write_text(json.dumps({"tool": "gdbench-noise", "default": 0.02,
                                "cases": {"step k-cpu-float32-N1e3": 0.3}}))
    floor = read_floor(str(path))
    assert floor.of("step k-cpu-float32-N1e3") == 0.3 and floor.of("other") == 0.02
    with pytest.raises(ValueError, match="no such file"):
        read_floor(str(tmp_path / "missing.json"))
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ValueError, match="not a noise file"):
        read_floor(str(tmp_path / "other.json"))
    with pytest.raises(ValueError, match="noise"):
        read_floor("lots")


def test_cli_noise_then_compare_with_its_floor(tmp_path, gdbench_cli):
    result = gdbench_cli("noise", "--device", "cpu", "--kernels", "numpy-manual", "--sizes",
                         "1e2,1e3", "--budget", "0.03", "--windows", "2", "--runs", "2",
                         "--out-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "identical runs compared at a 5% threshold, without a noise floor: 4 cases" \
        in result.stdout
    assert "samples made 30% slower: called SLOWER in" in result.stdout
    floor = json.loads((tmp_path / "noise.json").read_text())
    assert floor["tool"] == "gdbench-noise" and len(floor["cases"]) == 4
    compared = gdbench_cli("compare", tmp_path / "noise-1.json", tmp_path / "noise-2.json",
                           "--noise", tmp_path / "noise.json")
    assert compared.returncode == 0, compared.stderr
    assert f"noise floor from {tmp_path / 'noise.json'}" in compared.stdout


def test_cli_noise_needs_two_runs(tmp_path, gdbench_cli):
    result = gdbench_cli("noise", "--runs", "1", "--out-dir", tmp_path)
    assert result.returncode == 2 and "--runs must be at least 2" in result.stderr


def test_written_runs_round_trip(tmp_path):
    path = write_run(tmp_path / "r.json", "cpu", CASES)
    from gdbench.files.results import read_json

    case = read_json(path).cases[0]
    assert case.windows == 4 and case.samples.batch_window is not None
