"""Windows spread over the run, contention and stalls remeasured, cold caches, worker processes."""

import os
import time

import numpy as np
import pytest

import gdbench
from gdbench.files.results import read_json
from gdbench.axes import contention
from gdbench.measure import cases
from gdbench.axes.contention import ContentionHook, Watch
from gdbench.axes.contention import contended, contention_reasons, self_inflicted
from gdbench.records.samples import Samples


def run(*args, **kwargs):
    kwargs.setdefault("budget", 0.04)
    kwargs.setdefault("roofline", False)
    return gdbench.run("cpu", *args, **kwargs)


def test_windows_are_spread_over_the_whole_run():
    # without remeasuring, which would measure an unsteady case again after the rounds
    result = run(["numpy-manual", "torch-manual"], [100, 10_000], windows=3, max_windows=3,
                 remeasure=False)
    starts = {c.spec.label: [w["started"] for w in c.contention] for c in result.cases}
    for case in result.cases:
        assert case.windows == 3 and case.summary().windows == 3
        assert len(case.samples.batch_window) == len(case.samples.batch)
    small, large = starts["numpy-manual-cpu-float32-N1e2-D1"], starts[
        "numpy-manual-cpu-float32-N1e4-D1"]
    # round by round: the small size's second window comes after the large size's first
    assert small[0] < large[0] < small[1] < large[1] < small[2] < large[2]
    # within a size each round starts with the next case
    a, b = starts["numpy-manual-cpu-float32-N1e2-D1"], starts["torch-manual-cpu-float32-N1e2-D1"]
    assert a[0] < b[0] and b[1] < a[1] and a[2] < b[2]


def test_precision_comes_from_the_spread_between_windows():
    from gdbench.records.stats import Summary
    from tests.synthetic import window_samples

    rng = np.random.default_rng(0)
    tight, windows = window_samples(1e-3, rng, 0.005, 400, windows=4)
    assert Summary.of(tight, windows).precision < 0.01
    drifting, windows = window_samples(1e-3, rng, 0.005, 400, windows=4, drift=0.05)
    medians = [np.median(drifting[windows == k]) for k in range(4)]
    assert max(medians) / min(medians) > 1.05
    # each window's median is known to well under 1%, the case's is not
    assert Summary.of(drifting, windows).precision > 0.03


def windows_of(medians):
    """A stand-in for ``sample_window`` whose windows' steps take ``medians(i)`` seconds in the
    i-th window, sleeping 10 ms a window; the windows it ran are counted in ``.calls``."""
    def sample_window(kernel, rule, budget, batches=False, batch_size=None, flush=None):
        sample_window.calls += 1
        time.sleep(0.01)
        phases = tuple(kernel.phases)
        step = medians(sample_window.calls) * (1 + np.linspace(0, 0.01, 20))
        return Samples(phases, np.outer(step, np.ones(len(phases)) / len(phases))), 0, 20

    sample_window.calls = 0
    return sample_window


def test_a_case_gets_windows_while_its_interval_is_wide_and_its_budget_lasts(monkeypatch):
    monkeypatch.setattr(contention, "Watch", FakeWatch)
    # windows that disagree by 30% in turn: the interval stays wide, so windows are added up
    # to max_windows while the budget holds one more
    wide = windows_of(lambda i: 1e-3 * (1.3 if i % 2 else 1.0))
    monkeypatch.setattr(cases, "sample_window", wide)
    result = run(["numpy-manual"], [100], windows=3, max_windows=7, budget=10, remeasure=False)
    [case] = result.cases
    assert case.windows == 7 == wide.calls and case.summary().windows == 7
    from gdbench.analysis import report, tables

    assert "7 windows" in tables.cell(case, result).splitlines()
    assert any(line.startswith("- 3 to 7 windows per case (more than 3 while a case's ± was")
               for line in report.environment_lines(result))
    # three windows of 10 ms or more have spent what a budget of 20 ms allows (30 ms): no more
    spent = windows_of(lambda i: 1e-3 * (1.3 if i % 2 else 1.0))
    monkeypatch.setattr(cases, "sample_window", spent)
    [case] = run(["numpy-manual"], [100], windows=3, max_windows=7, budget=0.02,
                 remeasure=False).cases
    assert case.windows == 3 == spent.calls
    # windows that agree: the interval is narrow after the first three, and none is added
    steady = windows_of(lambda i: 1e-3)
    monkeypatch.setattr(cases, "sample_window", steady)
    [case] = run(["numpy-manual"], [100], windows=3, max_windows=7, budget=10,
                 remeasure=False).cases
    assert case.windows == 3 == steady.calls and case.summary().precision < 0.01


def test_the_window_count_is_fixed_where_asked_and_with_processes():
    from gdbench.runs.settings import MAX_WINDOWS, Settings

    assert Settings(device="cpu").checked().max_windows == MAX_WINDOWS
    assert Settings(device="cpu", windows=20).checked().max_windows == 20
    assert Settings(device="cpu", windows=4, max_windows=4).checked().max_windows == 4
    # each process measures its share of a fixed count
    assert Settings(device="cpu", windows=4, processes=2).checked().max_windows == 4
    worker = Settings(device="cpu", windows=4, processes=2).checked().for_worker(2)
    assert worker.windows == worker.max_windows == 2
    with pytest.raises(ValueError, match="no less than windows"):
        Settings(device="cpu", windows=4, max_windows=3).checked()


class FakeWatch:
    """Reports a busy machine for the first windows of one kernel, an idle one after."""

    busy_windows = {}

    def __init__(self):
        self.started = time.time()

    def stop(self):
        return {"run_delay_fraction": 0.0, "cpu_per_wall": 1.0, "load_1min": [0, 0],
                "wall_s": 0.01, "started": self.started}


def test_a_contended_case_is_measured_again(monkeypatch):
    calls = []

    class Busy(FakeWatch):
        def stop(self):
            reading = super().stop()
            calls.append(1)
            if len(calls) <= 2:  # the first case's first two windows: another process ran
                reading["run_delay_fraction"] = 0.6
            return reading

    monkeypatch.setattr(contention, "Watch", Busy)
    [case] = run(["numpy-manual"], [100], windows=2, max_windows=2).cases
    assert case.remeasured and not case.contended  # the second, idle attempt was kept
    assert len(calls) == 4
    [kept] = run(["numpy-manual"], [100], windows=2, max_windows=2, remeasure=False).cases
    assert not kept.remeasured


def test_contention_is_flagged_when_remeasuring_does_not_help(monkeypatch, tmp_path):
    class AlwaysBusy(FakeWatch):
        def stop(self):
            return dict(super().stop(), run_delay_fraction=0.5)

    monkeypatch.setattr(contention, "Watch", AlwaysBusy)
    result = run(["numpy-manual"], [100], windows=2, out=tmp_path / "r.json")
    [case] = result.cases
    assert case.contended and case.remeasured
    assert case.contention_reasons[0] == "window 1: waited for a CPU 50% of the time"
    saved = read_json(tmp_path / "r.json").cases[0]
    assert saved.contended and saved.to_dict()["contended"]
    from gdbench.analysis import tables

    assert "^" in tables.cell(saved).splitlines()[0]


def test_windows_that_disagree_by_more_than_a_fifth_make_a_case_unsteady():
    """Measured again (``cases.unsteady``) when the slowest window's median is more than 20%
    above the fastest's; 15% is the spread of a steady case."""
    from gdbench.records.results import CaseResult, CaseSpec

    spec = CaseSpec(kernel="k", device="cpu", dtype="float32", n_samples=100)

    def case(slowest):
        times = np.repeat([1e-3, 1e-3 * slowest, 1e-3], 20)[:, None]
        return CaseResult(spec, "ok", samples=Samples(("step",), times,
                                                      window=np.repeat([0, 1, 2], 20)))

    assert cases.unsteady(case(1.3)) and not cases.unsteady(case(1.15))


def test_a_stalled_window_is_measured_again(monkeypatch):
    real = cases.sample_window
    windows = []

    def stalls_once(kernel, rule, budget, batches=False, batch_size=None, flush=None):
        samples, size, ran = real(kernel, rule, budget, batches, batch_size, flush)
        windows.append(1)
        if len(windows) == 2:  # the second window ran five times slower: a stall
            samples = Samples(samples.phases, samples.device * 5, samples.host,
                              None if samples.batch is None else samples.batch * 5,
                              samples.batch_size, samples.batch_host)
        return samples, size, ran

    monkeypatch.setattr(cases, "sample_window", stalls_once)
    # an idle machine throughout: a real CPU wait in the second attempt would rightly keep
    # the first, which this test is not about
    monkeypatch.setattr(contention, "Watch", FakeWatch)
    result = run(["numpy-manual"], [1000], windows=3, max_windows=3, roofline=True,
                 probe_bytes=1 << 20)
    [case] = result.cases
    # the stalled attempt (one window five times slower) is not kept
    assert case.remeasured and case.summary().spread < 4 and case.summary().stalled == ()
    assert len(windows) == 6
    # the attempt kept was measured after the rounds: its windows are set against rooflines
    # measured around them, not against the rounds'
    assert len(case.rooflines) == 3 and all(r > 0 for r in case.rooflines)
    assert result.roofline(case) == np.median(case.rooflines)
    assert len(result.rooflines[case.spec.bytes_min]) == 3


class ScriptedProc:
    """/proc readings and clocks as a scripted window would give them: ``delay`` seconds of
    waiting for a CPU and ``busy`` CPU seconds of the whole machine over ``wall`` seconds, of
    which this process used ``own``."""

    def __init__(self, monkeypatch, wall, delay, busy, own):
        reads = {"delay": iter([1.0, 1.0 + delay]), "busy": iter([50.0, 50.0 + busy]),
                 "wall": iter([10.0, 10.0 + wall]), "cpu": iter([2.0, 2.0 + own])}
        monkeypatch.setattr(contention, "_run_delay", lambda: next(reads["delay"]))
        monkeypatch.setattr(contention, "_machine_busy", lambda: next(reads["busy"]))
        clock = type("Clock", (), {"perf_counter": staticmethod(lambda: next(reads["wall"])),
                                   "process_time": staticmethod(lambda: next(reads["cpu"])),
                                   "time": staticmethod(lambda: 0.0)})
        monkeypatch.setattr(contention, "time", clock)


def test_watch_sees_a_competitor(monkeypatch):
    """Waited 0.3 s of a 0.4 s window while other processes used a whole CPU: contended."""
    ScriptedProc(monkeypatch, wall=0.4, delay=0.3, busy=0.6, own=0.2)
    reading = Watch().stop()
    assert reading["run_delay_fraction"] == pytest.approx(0.75)
    assert reading["others_cpu_per_wall"] == pytest.approx(1.0)
    assert contended(reading) and contention_reasons([reading]) == [
        "window 1: waited for a CPU 75% of the time, while other processes used 1 CPUs"]


def test_a_wait_behind_the_process_own_threads_is_recorded_not_flagged(monkeypatch):
    """The same wait, with no other process busy: the kernel's own threads outnumbered the
    CPUs; recorded, not flagged, since measuring again would not change it."""
    ScriptedProc(monkeypatch, wall=0.4, delay=0.3, busy=0.6, own=0.6)
    reading = Watch().stop()
    assert reading["run_delay_fraction"] == pytest.approx(0.75)
    assert reading["others_cpu_per_wall"] == pytest.approx(0.0)
    assert not contended(reading) and not contention_reasons([reading])
    assert self_inflicted([reading]) == reading["run_delay_fraction"]


def test_watch_reads_this_machine():
    if not os.path.exists("/proc/self/schedstat"):
        pytest.skip("Linux's scheduler statistics are not available here")
    idle = Watch()
    time.sleep(0.05)
    reading = idle.stop()
    assert 0 <= reading["run_delay_fraction"] < 1 and reading["wall_s"] >= 0.05
    assert "others_cpu_per_wall" in reading


def test_contention_needs_both_a_wait_and_other_work():
    base = {"run_delay_fraction": 0.5, "others_cpu_per_wall": 0.9}
    assert contended(base)
    assert not contended(dict(base, run_delay_fraction=0.05))
    assert not contended(dict(base, others_cpu_per_wall=0.1))
    assert self_inflicted([dict(base, others_cpu_per_wall=0.1), base]) == 0.5
    # a reading from before the rest of the machine was read: the wait alone decides
    assert contended({"run_delay_fraction": 0.5})
    assert contention_reasons([base]) == [
        "window 1: waited for a CPU 50% of the time, while other processes used 0.9 CPUs"]


def test_watch_counts_the_page_faults_of_fresh_memory():
    if not os.path.exists("/proc/self/schedstat"):
        pytest.skip("Linux's scheduler statistics are not available here")
    import mmap

    fresh = mmap.mmap(-1, 8 << 20)  # 8 MiB just mapped, none of it touched: 2048 pages of 4 KiB
    watch = Watch()
    pages = np.frombuffer(fresh, np.uint8)
    pages[::4096] = 1  # the first touch of every page
    faults = watch.stop()["minor_faults"]
    del pages
    fresh.close()
    assert faults >= 8 << 20 >> 21  # at least one per 2 MiB, should the kernel use huge pages
    quiet = Watch()
    assert quiet.stop()["minor_faults"] < faults


def test_cold_caches_flush_before_every_sample_outside_the_timing(monkeypatch):
    from gdbench.runs import sweep

    flushes = []

    def slow_flush(device, nbytes):
        assert nbytes >= 64 << 20  # more than any cache it should evict

        def flush():
            flushes.append(1)
            time.sleep(0.002)

        return flush

    monkeypatch.setattr(sweep, "cache_flush", slow_flush)
    result = run(["numpy-manual"], [100], cold=True, windows=2)
    [case] = result.cases
    assert result.settings["cache_state"] == "cold"
    assert case.throughput is None  # no batches: back-to-back steps are warm
    assert len(flushes) >= case.summary().n
    assert case.summary().median < 0.001  # the 2 ms flush is not in the samples


def test_worker_processes_join_their_windows(tmp_path):
    result = run(["numpy-manual"], [100, 1000], windows=4, processes=2, roofline=True,
                 probe_bytes=1 << 20, out=tmp_path / "r.json")
    assert result.complete and result.settings["processes"] == 2
    for case in result.cases:
        assert case.ok and case.windows == 4
    assert all(len(v) == 2 for v in result.rooflines.values())  # one probe per worker
    assert read_json(tmp_path / "r.json").cases[0].windows == 4
    # every window's contention reading is kept, the workers' in worker order
    for case in result.cases:
        assert len(case.contention) == 4
        starts = [w["started"] for w in case.contention]
        assert starts == sorted(starts)


def test_each_axis_joins_the_workers_values_as_it_keeps_them():
    """runs.workers.merge asks each hook to join the workers' values: a worker without a
    reading of a window axis stands for as many empty windows as it measured; memory, read
    once a case, is the first worker's."""
    from gdbench.records.results import CaseResult, CaseSpec
    from gdbench.runs.workers import merge

    spec = CaseSpec(kernel="k", device="cpu", dtype="float32", n_samples=100)

    def case(windows, contention=None, energy=None, memory=None):
        samples = Samples(("step",), np.ones((windows, 1)), window=np.arange(windows))
        readings = {"contention": contention, "energy": energy, "memory": memory}
        return CaseResult(spec, "ok", samples=samples,
                          readings={k: v for k, v in readings.items() if v is not None})

    first = case(2, contention=[{"w": 1}, {"w": 2}], energy={"windows": [{"j": 1}, {"j": 2}]})
    second = case(1, contention=[{"w": 3}], memory={"peak_bytes": 8})
    third = case(1, memory={"peak_bytes": 9})
    [joined] = merge([[first], [second], [third]])
    assert joined.contention == [{"w": 1}, {"w": 2}, {"w": 3}, None]
    assert joined.energy == {"windows": [{"j": 1}, {"j": 2}, None, None]}
    assert joined.telemetry is None  # no worker read it
    assert joined.memory == {"peak_bytes": 8}
    assert joined.windows == 4


def test_the_ranks_contention_is_the_rank_that_waited_most_less_the_other_ranks():
    """A window of a data-parallel run: the ranks share the machine by design, so the CPU
    time of the other ranks on a host is not other work; other hosts' ranks are."""
    def rank(delay, cpu, others):
        return {"run_delay_fraction": delay, "cpu_per_wall": cpu, "others_cpu_per_wall": others}

    readings = [rank(0.3, 1.0, 1.1), rank(0.5, 0.9, 1.2), rank(0.0, 1.0, 0.0)]
    joined = ContentionHook.across_ranks(readings, ["a", "a", "b"])
    assert joined["run_delay_fraction"] == 0.5 and joined["ranks"] == 3
    assert joined["others_cpu_per_wall"] == pytest.approx(0.2)  # 1.2 less rank 0's 1.0
    assert not contended(joined)  # held back by the other rank on its host, not other work
    busy = ContentionHook.across_ranks([rank(0.3, 1.0, 2.0), rank(0.5, 0.9, 2.2)], ["a", "a"])
    assert contended(busy)  # 1.2 CPUs of other work besides the ranks
    assert ContentionHook.across_ranks([None, None], ["a", "a"]) is None


def test_a_case_faster_than_its_roofline_is_flagged():
    from gdbench.analysis import tables
    from tests.synthetic import synthetic_run

    run_ = synthetic_run("cpu", {("k", 1000): 1e-6})  # 8000 bytes in 1 us: 8 GB/s
    case = run_.cases[0]
    run_.rooflines = {8000: [4e9, 4e9]}
    assert run_.exceeds_roofline(case)
    assert run_.case_dict(case)["roofline_exceeded"]
    assert "?" in tables.cell(case, run_).splitlines()[0]
    run_.rooflines = {8000: [8.8e9]}  # its throughput 0.6% beyond it is beyond it
    assert run_.exceeds_roofline(case)
    run_.rooflines = {8000: [16e9]}
    assert not run_.case_dict(case)["roofline_exceeded"]


def test_each_window_is_set_against_its_own_rounds_roofline():
    """The machine's bandwidth halves between rounds, and the case's time doubles with it:
    every window reached 50% of the roofline measured beside it."""
    from gdbench.records.results import CaseResult, CaseSpec
    from gdbench.records.run import RunResult

    times = np.repeat([1e-6, 2e-6, 1e-6, 2e-6], 10)  # 8000 bytes: 8 and 4 GB/s
    samples = Samples(("step",), times[:, None], window=np.repeat(np.arange(4), 10))
    case = CaseResult(CaseSpec("k", "cpu", "float32", 1000), "ok", samples=samples)
    run_ = RunResult({}, {}, [case], rooflines={8000: [16e9, 8e9, 16e9, 8e9]})
    assert run_.fraction(case) == pytest.approx(0.5)
    assert not run_.exceeds_roofline(case)
    unpaired = RunResult({}, {}, [case], rooflines={8000: [16e9, 8e9]})  # a worker's probes
    assert unpaired.fraction(case) == pytest.approx(8000 / 1.5e-6 / 12e9)


class FaultsHook:
    """docs/architecture.md's worked example of a new measured axis: page faults per window."""

    field = "faults"
    reads = "window"

    @classmethod
    def open(cls, device):
        return cls()

    def start(self):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    def stop(self, before, steps=0):
        import resource

        return {"minor": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before,
                "steps": steps}

    @staticmethod
    def record(readings):
        return {"windows": readings}

    @staticmethod
    def join(values, windows):
        readings = [r for v, n in zip(values, windows) for r in (v["windows"] if v else [None] * n)]
        return {"windows": readings} if any(readings) else None

    @staticmethod
    def derived(case):
        return {"faults_per_step": FaultsHook.per_step(case)}

    @staticmethod
    def detail(case):
        return [f"{FaultsHook.per_step(case):.2g} faults/step"]

    @staticmethod
    def table(cases):
        return ["| case | faults/step |", "|---|---:|"] + [
            f"| {c.spec.label} | {FaultsHook.per_step(c):.2g} |" for c in cases if c.ok]

    @staticmethod
    def notes(cases):
        return []

    @staticmethod
    def per_step(case):
        windows = [w for w in case.readings["faults"]["windows"] if w]
        return sum(w["minor"] for w in windows) / max(1, sum(w["steps"] for w in windows))


def test_a_new_measured_axis_is_one_module_and_one_line(monkeypatch, tmp_path):
    """The worked example: a hook class added to AXES is read around every window, kept in
    the case's readings, written and read back with its derived keys, joined across worker
    processes, and shown in --detail and the report, with no other change."""
    from gdbench import axes
    from gdbench.analysis import report, tables
    from gdbench.runs.workers import merge

    monkeypatch.setattr(axes, "AXES", (*axes.AXES, FaultsHook))
    monkeypatch.setattr(contention, "Watch", FakeWatch)  # a contended cell shows no detail
    result = run(["numpy-manual"], [1000], windows=2, max_windows=2, out=tmp_path / "r.json")
    [case] = result.cases
    assert len(case.readings["faults"]["windows"]) == 2
    assert all(w["steps"] > 0 for w in case.readings["faults"]["windows"])
    raw = case.to_dict()
    assert raw["faults"] == case.readings["faults"] and "faults_per_step" in raw
    [saved] = read_json(tmp_path / "r.json").cases
    assert saved.readings["faults"] == case.readings["faults"]
    assert f"{FaultsHook.per_step(case):.2g} faults/step" in tables.cell(case, result)
    assert "| case | faults/step |" in report.axis_tables(result)
    [joined] = merge([[case], [case]])
    assert len(joined.readings["faults"]["windows"]) == 4
    # not read on data-parallel ranks: it does not say how their readings join
    assert FaultsHook not in {type(h) for h in axes.window_hooks("cpu", ranks=True)}
    assert FaultsHook in {type(h) for h in axes.window_hooks("cpu")}
    assert ContentionHook in {type(h) for h in axes.window_hooks("cpu", ranks=True)}
