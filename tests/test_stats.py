"""The statistics behind the stopping rule and the noise flag, and the sampling loop itself."""

import time
from pathlib import Path

import numpy as np
import pytest

from gdbench.measure.cases import sample
from gdbench.measure.timing import StopRule, warm_up
from gdbench.records.stats import Summary, median_ci, relative_precision


def test_median_interval_covers_the_median_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    true_median = np.log(2)  # of the exponential distribution with scale 1
    hits = 0
    for _ in range(1000):
        lo, hi = median_ci(rng.exponential(size=60))
        hits += lo <= true_median <= hi
    assert 0.92 < hits / 1000 < 0.99


def test_exact_binomial_ranks():
    """The order statistics bracket the median with at least 95%: checked against the sum."""
    from math import comb

    from gdbench.records.stats import _lower_rank

    for n in (1, 5, 6, 7, 20, 61, 400):
        rank = _lower_rank(n, 0.025)
        miss = sum(comb(n, i) for i in range(rank + 1)) / 2**n
        assert n < 6 or miss <= 0.025
        if rank + 1 < n / 2 and n >= 6:  # the next rank would miss too often
            assert sum(comb(n, i) for i in range(rank + 2)) / 2**n > 0.025
    assert median_ci(list(range(7))) == (0.0, 6.0)  # rank 0 is the only one at n = 7


def test_precision_shrinks_with_more_samples():
    rng = np.random.default_rng(1)
    data = 1 + 0.1 * rng.standard_normal(10_000)
    assert relative_precision(data[:6]) > relative_precision(data[:100]) > relative_precision(data)
    assert relative_precision(data) < 0.005
    assert relative_precision([1.0, 2.0, 3.0, 4.0, 5.0]) == float("inf")  # no 95% interval yet


def test_summary_and_noise_flag():
    s = Summary.of([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (s.median, s.iqr, s.min, s.n) == (3.0, 2.0, 1.0, 5)
    assert s.noisy(target=0.01)  # an IQR of 67% of the median
    tight = Summary.of(np.full(50, 2.0) + np.linspace(-0.001, 0.001, 50))
    assert not tight.noisy(target=0.01)


class Sleeper:
    """A fake CPU kernel whose step sleeps a given time."""

    phases = ("step",)
    device = "cpu"
    backend = "none"

    def __init__(self, seconds):
        self.seconds = seconds

    def step(self):
        time.sleep(self.seconds)

    def synchronize(self):
        pass


def test_the_precision_is_the_half_width_that_covers_the_median():
    """The median within ± its relative precision covers the true median about 95% of the
    time: the precision is the interval's half-width, not a fraction of it."""
    rng = np.random.default_rng(2)
    hits = 0
    for _ in range(1000):
        data = 1 + 0.1 * rng.standard_normal(60)
        median, precision = np.median(data), relative_precision(data)
        hits += median * (1 - precision) <= 1 <= median * (1 + precision)
    assert 0.92 < hits / 1000 < 0.995


def test_a_window_three_times_slower_than_the_fastest_is_stalled_and_two_times_is_not():
    from gdbench.records.stats import stalled

    assert stalled([1.0, 2.9, 1.1, 3.0]).tolist() == [False, False, False, True]
    assert stalled([5.0]).tolist() == [False]  # one window: nothing to compare it with


def test_a_window_takes_its_fewest_samples_and_batches_however_short_its_budget():
    from gdbench.measure.timing import HostTimer, take_window

    kernel = Sleeper(0.001)
    rule = StopRule(precision=None, budget=0.0)
    window = take_window(kernel, HostTimer(kernel.synchronize), rule, 0.0, batches=True)
    assert window.device.shape[0] >= rule.min_samples == 3
    assert len(window.batch) >= rule.min_batches == 3


def test_sampling_stops_once_the_median_is_known():
    samples = sample(Sleeper(0.001), StopRule(precision=0.05, budget=5.0))
    assert 5 <= samples.device.shape[0] < 2000  # far below max_samples (10,000)
    assert samples.step().min() >= 0.001


def test_sampling_stops_when_the_budget_is_spent():
    start = time.perf_counter()
    samples = sample(Sleeper(0.002), StopRule(precision=1e-9, budget=0.1))
    assert time.perf_counter() - start < 1.0
    assert samples.device.shape[0] >= 5


@pytest.mark.parametrize("limit", [5, 7])
def test_sampling_respects_max_samples(limit):
    samples = sample(Sleeper(0), StopRule(precision=1e-12, budget=10, max_samples=limit))
    assert samples.device.shape == (limit, 1)


def test_batches_last_about_ten_milliseconds():
    samples = sample(Sleeper(0.0002), StopRule(precision=0.05, budget=0.5), batches=True)
    k = samples.batch_size
    assert 15 <= k <= 50  # 10 ms of 0.2 ms steps, and sleep overshoots
    assert len(samples.batch) >= 3 and samples.batch_host is None
    per_step = samples.throughput().median
    assert 0.0002 <= per_step < 0.002
    assert k * per_step >= 5e-3  # a batch lasts at least half the target


def test_batches_are_opt_in():
    assert sample(Sleeper(0), StopRule(budget=0.01)).batch is None


def test_the_count_rule_takes_exactly_the_samples_and_batches_it_names():
    """The ranks' rule: every rank must step as often as rank 0 decided, however fast."""
    from gdbench.measure.timing import HostTimer, take_window

    kernel = Sleeper(0)
    for count, batches in ((7, 4), (12, 3)):
        window = take_window(kernel, HostTimer(kernel.synchronize),
                             StopRule(precision=0.5, budget=10, count=count, batches=batches),
                             10, batches=True, batch_size=5)
        assert window.device.shape == (count, 1) and len(window.batch) == batches
        assert window.steps == count + 5 * batches


def test_the_time_rule_samples_for_its_whole_share_whatever_the_precision():
    """ab's rule (no precision): a steady step is still sampled for the whole budget, and the
    batches for ``batch_share`` of it."""
    from gdbench.measure.timing import HostTimer, take_window

    kernel = Sleeper(0.001)
    start = time.perf_counter()
    window = take_window(kernel, HostTimer(kernel.synchronize),
                         StopRule(precision=None, budget=0.1, batch_share=1.0,
                                  batch_seconds=2e-3), 0.1, batches=True, whole_step=True)
    assert time.perf_counter() - start >= 0.2
    assert window.phases == ("step",) and window.device.shape[0] >= 50
    assert window.batch_size >= 2 and len(window.batch) >= 20
    precise = sample(kernel, StopRule(precision=0.05, budget=0.1))
    assert precise.device.shape[0] < window.device.shape[0]


def test_the_loop_loads_by_path_with_numpy_alone():
    """ab's worker loads timing.py and contention.py by path, beside a side's gdbench that may
    lack them: at their top they import the standard library and NumPy alone."""
    import ast
    import sys

    import gdbench

    for place in ("measure/timing.py", "axes/contention.py"):
        path = Path(gdbench.__file__).parent / place
        tree = ast.parse(path.read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        roots = {(a.name if isinstance(n, ast.Import) else n.module).split(".")[0]
                 for n in top for a in n.names}
        assert roots <= set(sys.stdlib_module_names) | {"numpy", "__future__"}, (place, roots)


def test_ab_windows_are_the_sampling_loops():
    """ab's worker times its window with this gdbench's timing.py, loaded by path."""
    import gdbench
    from gdbench.runs.ab import worker

    assert Path(worker.timing.__file__) == Path(gdbench.__file__).parent / "measure" / "timing.py"
    answer = worker.window(Sleeper(0.0005), 0.04)
    assert len(answer["latency"]) >= 5 and len(answer["throughput"]) >= 5
    assert min(answer["latency"]) >= 0.0005 and answer["batch_size"] >= 2


class SlowStart(Sleeper):
    """Slow at first (cold caches, clocks ramping up), approaching its steady time step by step.

    It spins rather than sleeps, and its steps are milliseconds long: a late wake-up or a
    scheduler's time slice on a loaded machine made two groups of still-decaying 0.2-ms steps
    agree once in CI."""

    def __init__(self):
        super().__init__(0.002)
        self.extra = 0.03

    def step(self):
        end = time.perf_counter() + self.seconds + self.extra
        while time.perf_counter() < end:
            pass
        self.extra *= 0.8


def test_warm_up_runs_until_the_step_time_settles():
    # settled once a group of steps is within 5% of the one before: the excess has decayed
    # from 15 times the steady time to a few percent of it, which takes 15 steps or more. On
    # a loaded machine a time slice lost in one group can make two groups agree by chance, so
    # one of three fresh kernels must show it; a warm-up that stops early never does.
    for _ in range(3):
        kernel = SlowStart()
        done = warm_up(kernel, StopRule(warmup=5.0))
        assert done.settled and done.seconds < 2.0
        if done.steps >= 15 and kernel.extra < 0.1 * kernel.seconds:
            break
    else:
        raise AssertionError(f"every warm-up stopped while the steps were still decaying: {done}")


class Drifting(Sleeper):
    """Each step half as slow again as the last: never settles, by far more than a loaded
    machine's late wake-ups (a few ms) could hide, which made two groups of 1.2x steps agree."""

    def step(self):
        self.seconds *= 1.5
        time.sleep(self.seconds)


def test_warm_up_gives_up_at_its_time_limit():
    done = warm_up(Drifting(0.001), StopRule(warmup=0.1))
    assert not done.settled and 0.1 <= done.seconds < 0.5


def test_one_or_two_stalled_windows_cannot_blow_up_the_interval():
    """Two of four windows with every step 1800 times slower (the machine was elsewhere): they
    are named, left out of the median and the interval, and the case is still known to a few
    per cent, not x/1028."""
    rng = np.random.default_rng(2)
    clean = 3e-6 * (1 + 0.01 * rng.standard_normal(200))
    samples = clean.copy()
    windows = np.repeat(np.arange(4), 50)
    samples[windows == 1] *= 1800
    samples[windows == 3] *= 1800
    s = Summary.of(samples, windows)
    assert s.stalled == (1, 3) and s.windows == 4 and s.n == 100
    assert s.median == pytest.approx(3e-6, rel=0.01) and s.precision < 0.05
    lone = samples.copy()
    lone[windows == 2] *= 1800  # all but one window stalled: no interval between windows
    assert Summary.of(lone, windows).precision == float("inf")
    assert Summary.of(clean, windows).stalled == ()


def test_a_stalled_window_is_named_in_the_json_and_the_detailed_table():
    from gdbench.analysis.tables import cell
    from tests.synthetic import synthetic_run

    run = synthetic_run("cpu", {("k", 1000): 1e-4}, stall=2)
    [case] = run.cases
    assert run.case_dict(case)["stalled_windows"] == [2]
    assert "1 of 4 windows stalled" in cell(case, run, detail=True)
    assert "stalled" not in cell(synthetic_run("cpu", {("k", 1000): 1e-4}).cases[0], run)
