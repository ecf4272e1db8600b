"""The statistics behind the stopping rule and the noise flag, and the sampling loop itself."""

import time

import numpy as np
import pytest

from gdbench.stats import Summary, median_ci, relative_precision
from gdbench.timing import StopRule, sample


def test_median_interval_covers_the_median_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    true_median = np.log(2)  # of the exponential distribution with scale 1
    hits = 0
    for _ in range(1000):
        lo, hi = median_ci(rng.exponential(size=60))
        hits += lo <= true_median <= hi
    assert 0.92 < hits / 1000 < 0.99


def test_precision_shrinks_with_more_samples():
    rng = np.random.default_rng(1)
    data = 1 + 0.1 * rng.standard_normal(10_000)
    assert relative_precision(data[:2]) > relative_precision(data[:100]) > relative_precision(data)
    assert relative_precision(data) < 0.005
    assert relative_precision([1.0]) == float("inf")


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
