"""gdbench compare: verdicts from raw samples, both file formats, and bad input."""

import json

import numpy as np
import pytest

from gdbench.analysis.compare import Timing, compare, parse_threshold, ratio_interval
from gdbench.analysis.noise import NoiseFloor
from gdbench.records.stats import verdict
from tests.synthetic import write_run

SIZES = (1000, 100_000)


def run_pair(tmp_path, base, new, spread=0.01, seed=1, **kwargs):
    a = write_run(tmp_path / "base.json", "cpu", {("k", n): base for n in SIZES}, spread, seed=0,
                  **kwargs)
    b = write_run(tmp_path / "new.json", "cpu", {("k", n): new for n in SIZES}, spread, seed=seed,
                  **kwargs)
    return a, b


@pytest.mark.parametrize("base,new,spread,expected", [
    (1e-3, 1e-3, 0.01, "SAME"),        # equal distributions, different samples
    (1e-3, 1.3e-3, 0.01, "SLOWER"),    # 30% slower, tight samples
    (1e-3, 0.7e-3, 0.01, "FASTER"),
    (1e-3, 1.06e-3, 0.9, "AMBIGUOUS"),  # too noisy to tell
])
def test_verdicts_on_synthetic_samples(tmp_path, base, new, spread, expected):
    rows = compare(*run_pair(tmp_path, base, new, spread), threshold=0.05)
    assert [r.verdict for r in rows if r.key[-1] == "step"] == [expected] * len(SIZES)
    assert rows[0].ratio == pytest.approx(new / base, rel=0.05)
    assert rows[0].low <= rows[0].ratio <= rows[0].high


def test_throughput_is_compared_beside_latency(tmp_path):
    rows = compare(*run_pair(tmp_path, 1e-3, 1.3e-3))
    assert {r.key[-1] for r in rows} == {"step", "throughput"}
    assert all(r.verdict == "SLOWER" for r in rows)


def test_drift_between_windows_widens_the_interval(tmp_path):
    """Windows that disagree by 10% make a 6% change impossible to call; tight ones do not."""
    steady = compare(*run_pair(tmp_path, 1e-3, 1.12e-3, spread=0.01), threshold=0.05)
    drifting = compare(*run_pair(tmp_path, 1e-3, 1.12e-3, spread=0.01, drift=0.10),
                       threshold=0.05)
    assert {r.verdict for r in steady} == {"SLOWER"}
    assert {r.verdict for r in drifting} == {"AMBIGUOUS"}
    assert all(d.high - d.low > 3 * (s.high - s.low) for s, d in zip(steady, drifting))


def test_serially_correlated_samples_get_an_interval_that_covers():
    """A slow walk: neighbours agree, so one burst holds fewer independent samples than values.

    Over many walks around a true median of 1, the block-bootstrap interval covers it most of
    the time; the interval that takes the samples as independent mostly does not.
    """
    from gdbench.records.stats import Summary, median_ci
    from tests.synthetic import window_samples

    covered = naive = 0
    for seed in range(100):
        walk = window_samples(1.0, np.random.default_rng(seed), 0.05, 400, windows=1,
                              correlation=0.95)[0]
        half = Summary.of(walk).precision * np.median(walk)
        covered += abs(np.median(walk) - 1.0) <= half
        lo, hi = median_ci(walk)
        naive += lo <= 1.0 <= hi
    assert covered >= 75 and naive <= 50


def test_a_stalled_window_is_left_out_and_cannot_blow_up_the_interval(tmp_path):
    from tests.synthetic import window_samples

    rng = np.random.default_rng(5)
    samples, windows = window_samples(1e-3, rng, 0.01, 80, windows=4, stall=2)
    base = Timing.of(samples, windows)
    assert len(base.window_medians) == 3 and base.median == pytest.approx(1e-3, rel=0.02)
    clean = Timing.of(*window_samples(1e-3, rng, 0.01, 80, windows=4))
    ratio, lo, hi, why = ratio_interval(base, clean)
    assert not why and verdict(lo, hi, 0.05) == "SAME" and hi / lo < 1.1


def test_one_window_is_ambiguous_and_says_why(tmp_path):
    rows = compare(*run_pair(tmp_path, 1e-3, 1.3e-3, windows=1))
    assert {r.verdict for r in rows} == {"AMBIGUOUS"}
    assert "one window" in rows[0].why
    floored = compare(*run_pair(tmp_path, 1e-3, 1.3e-3, windows=1),
                      noise=NoiseFloor(0.02, {}))
    assert {r.verdict for r in floored} == {"SLOWER"} and not floored[0].why


def test_a_noise_floor_widens_every_interval(tmp_path):
    plain = compare(*run_pair(tmp_path, 1e-3, 1.12e-3))
    floored = compare(*run_pair(tmp_path, 1e-3, 1.12e-3), noise=NoiseFloor(0.05, {}))
    per_case = compare(*run_pair(tmp_path, 1e-3, 1.12e-3),
                       noise=NoiseFloor(0.0, {"step k-cpu-float32-N1e3": 0.05}))
    assert {r.verdict for r in plain} == {"SLOWER"}
    assert {r.verdict for r in floored} == {"AMBIGUOUS"}
    assert [r.verdict for r in per_case if r.key[-1] == "step"] == ["AMBIGUOUS", "SLOWER"]


def test_a_file_against_itself_is_same(tmp_path):
    path = write_run(tmp_path / "r.json", "cpu", {("k", 1000): 1e-3}, windows=1)
    assert {r.verdict for r in compare(path, path)} == {"SAME"}
    bench = pytest_benchmark_json(tmp_path / "b.json", 1e-5)
    [row] = compare(bench, bench)
    assert row.verdict == "SAME" and (row.low, row.high) == (1.0, 1.0)


def test_cold_and_warm_are_not_compared(tmp_path):
    warm = write_run(tmp_path / "w.json", "cpu", {("k", 1000): 1e-3})
    cold = write_run(tmp_path / "c.json", "cpu", {("k", 1000): 2e-3}, cache_state="cold")
    with pytest.raises(ValueError, match="cold caches .* warm caches"):
        compare(cold, warm)


def test_verdict_rule():
    assert verdict(1.06, 1.2, 0.05) == "SLOWER"
    assert verdict(0.5, 0.9, 0.05) == "FASTER"
    assert verdict(0.97, 1.04, 0.05) == "SAME"
    assert verdict(1.01, 1.09, 0.05) == "AMBIGUOUS"  # slower, but maybe less than the threshold
    assert verdict(0.8, 1.3, 0.05) == "AMBIGUOUS"


def test_interval_without_raw_samples_uses_the_iqr():
    floor = 0.01
    summary = ratio_interval(Timing(1.0, 0.1, 100), Timing(2.0, 0.1, 100), floor)
    assert summary[0] == 2.0 and not summary[3]
    assert summary[1] < 2.0 < summary[2] and summary[2] / summary[1] < 1.1


def pytest_benchmark_json(path, median, data=None):
    stats = {"median": median, "iqr": 0.01 * median, "rounds": 50, "mean": median}
    if data is not None:
        stats["data"] = data
    path.write_text(json.dumps({"machine_info": {}, "benchmarks": [{
        "name": "test_step[numpy-manual-cpu-1e3]", "fullname": "b.py::test_step[...]",
        "group": "step N=1e3", "stats": stats,
        "extra_info": {"kernel": "numpy-manual", "device": "cpu", "dtype": "float32",
                       "n_samples": 1000}}]}))
    return path


def test_reads_pytest_benchmark_json(tmp_path):
    base = pytest_benchmark_json(tmp_path / "a.json", 1e-5)
    new = pytest_benchmark_json(tmp_path / "b.json", 2e-5, data=list(np.full(50, 2e-5)))
    [row] = compare(base, new)
    assert row.key == ("numpy-manual", "cpu", "float32", 1000, 1, "step")
    assert row.verdict == "AMBIGUOUS" and "one window" in row.why  # one burst of rounds
    assert row.ratio == pytest.approx(2.0)
    [row] = compare(base, new, noise=NoiseFloor(0.03, {}))
    assert row.verdict == "SLOWER"


def test_gdbench_against_pytest_benchmark(tmp_path):
    gdbench_file = write_run(tmp_path / "g.json", "cpu", {("numpy-manual", 1000): 1e-5})
    [row] = compare(gdbench_file, pytest_benchmark_json(tmp_path / "p.json", 1e-5),
                    noise=NoiseFloor(0.01, {}))
    assert row.verdict == "SAME"


@pytest.fixture
def cli(gdbench_cli):
    return lambda *args: gdbench_cli("compare", *args)


def test_cli_fails_on_regression_when_asked(tmp_path, cli):
    base, new = run_pair(tmp_path, 1e-3, 1.5e-3)
    plain = cli(base, new)
    assert plain.returncode == 0 and "SLOWER" in plain.stdout
    assert plain.stdout.strip().endswith("0 faster, 4 slower, 0 same, 0 ambiguous")
    assert "no noise floor" in plain.stdout
    assert cli(base, new, "--fail-on-regression").returncode == 1
    assert cli(new, base, "--fail-on-regression").returncode == 0  # the reverse is faster
    assert cli(base, new, "--threshold", "60%", "--fail-on-regression").returncode == 0


def written(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("make,message", [
    (lambda p: p / "missing.json", "no such file"),
    (lambda p: written(p / "empty.json", ""), "the file is empty"),
    (lambda p: written(p / "cut.json", '{"tool": "gdbench", "cas'),
     "not valid JSON, perhaps truncated"),
    (lambda p: written(p / "foreign.json", '{"hello": 1}'),
     "neither gdbench results nor pytest-benchmark JSON"),
    (lambda p: written(p / "old.json", '{"tool": "gdbench", "schema_version": 99, "cases": []}'),
     "schema version 99"),
    (lambda p: write_run(p / "other.json", "cpu", {("other-kernel", 10): 1e-3}),
     "have no case in common"),
])
def test_cli_bad_input(tmp_path, make, message, cli):
    good = write_run(tmp_path / "good.json", "cpu", {("k", 1000): 1e-3})
    result = cli(good, make(tmp_path))
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("text,value", [("5%", 0.05), ("0.1", 0.1), ("0%", 0.0)])
def test_parse_threshold(text, value):
    assert parse_threshold(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["five", "-3%", "2000%", "5", "1", "12.5"])
def test_parse_threshold_rejects(text):
    with pytest.raises(ValueError, match="threshold"):
        parse_threshold(text)


def test_a_partial_run_file_says_it_is_incomplete(tmp_path, cli, gdbench_cli):
    base, new = run_pair(tmp_path, 1e-3, 1e-3)
    d = json.loads(new.read_text())
    d["complete"] = False
    d["settings"]["sizes"] = list(SIZES)
    d["cases"] = [c for c in d["cases"] if c["n_samples"] == SIZES[0]]
    new.write_text(json.dumps(d))
    shown = cli(base, new)
    assert shown.returncode == 0
    assert f"{new}: incomplete: interrupted after 1 case in 1 of 2 sizes" in shown.stdout
    assert "incomplete" not in cli(base, base).stdout
    assert gdbench_cli("report", new, "-o", tmp_path / "r.md", "--no-plots").returncode == 0
    assert "incomplete: interrupted after 1 case in 1 of 2 sizes" in (tmp_path
                                                                       / "r.md").read_text()


def test_pytest_benchmark_names_keep_their_brackets_and_few_rounds_are_said(tmp_path, cli):
    base = pytest_benchmark_json(tmp_path / "a.json", 1e-5)
    data = json.loads(base.read_text())
    data["benchmarks"][0]["stats"]["rounds"] = 4
    data["benchmarks"][0]["extra_info"] = {}
    base.write_text(json.dumps(data))
    new = tmp_path / "b.json"
    data["benchmarks"][0]["stats"]["median"] = 1.2e-5
    new.write_text(json.dumps(data))
    result = cli(base, new, "--noise", "2%")
    assert result.returncode == 0, result.stderr
    assert "[...]" in result.stdout  # the fullname, not taken as markup
    assert "only 4 rounds or samples on one side: the interval is wide" in result.stdout


def test_results_of_an_older_version_read_and_of_a_newer_one_are_refused(tmp_path):
    from gdbench.files.results import read_json

    path = write_run(tmp_path / "v1.json", "cpu", {("k", 1000): 1e-4})
    d = json.loads(path.read_text())
    d["schema_version"] = 1
    d["settings"].pop("fresh_layout", None)
    path.write_text(json.dumps(d))
    assert read_json(path).settings["fresh_layout"] is False
    d["schema_version"] = 99
    path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="newer than this gdbench's"):
        read_json(path)
