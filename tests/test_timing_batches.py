"""Batches of back-to-back steps: long enough to be steady, none starting from an idle device."""

import numpy as np

from gdbench.measure.clocks import CudaTimer, HostTimer
from gdbench.measure.timing import StopRule, measure_batches


class Log:
    def __init__(self):
        self.calls = []


class FakeEvent:
    def __init__(self, log, name):
        self.log, self.name = log, name

    def record(self):
        self.log.calls.append(self.name)

    def synchronize(self):
        pass


class SecondSteps(HostTimer):
    def batch(self, step, k):
        return float(k), None


def fake_cuda_timer(log):
    timer = CudaTimer.__new__(CudaTimer)
    timer.events = [FakeEvent(log, "start"), FakeEvent(log, "end")]
    timer.elapsed_ms = lambda a, b: 1000.0  # a second per batch: long enough
    return timer


class Steps:
    def __init__(self, log):
        self.log = log

    def step(self):
        self.log.calls.append("step")

    def synchronize(self):
        pass


def test_a_cuda_batch_is_queued_behind_an_untimed_step():
    log = Log()
    fake_cuda_timer(log).batch(Steps(log).step, 3)
    assert log.calls == ["step", "start", "step", "step", "step", "end"]


def test_asynchronous_batches_hold_ten_steps_at_least():
    log = Log()
    kernel = Steps(log)
    rule = StopRule(budget=1.0, min_samples=3)
    k, per_step, _, ran = measure_batches(kernel, fake_cuda_timer(log), rule, step_estimate=1.0,
                                     budget=1e-9)
    assert k == rule.min_batch_steps == 10 and len(per_step) == 3
    # one batch to check that K steps last long enough, three timed; each behind a lead step
    assert ran == 4 * (10 + 1) == log.calls.count("step")
    # the host clock brackets all the work of a batch: one long step is a batch
    k, _, _, _ = measure_batches(kernel, SecondSteps(lambda: None), rule, step_estimate=1.0,
                              budget=1e-9)
    assert k == 1


def test_batches_last_ten_ms_unless_the_budget_cannot_hold_three():
    assert StopRule.for_budget(0.01, 0.5, 4).batch_seconds == 10e-3
    short = StopRule.for_budget(0.01, 0.02, 1).batch_seconds
    assert np.isclose(short, 0.02 / 2 / 3)
    assert StopRule.for_budget(0.01, 1e-4, 8).batch_seconds == 1e-3
