"""Runs with known timings, for testing what reads results: compare, noise, plots, reports."""

import numpy as np

from gdbench.files.results import write_json
from gdbench.measure.environment import capture
from gdbench.records.results import CaseResult, CaseSpec
from gdbench.records.run import RunResult
from gdbench.records.samples import Samples


def window_samples(median: float, rng, spread: float = 0.01, n: int = 60, windows: int = 4,
                   drift: float = 0.0, correlation: float = 0.0, stall: int | None = None):
    """(samples, window of each) around ``median``.

    ``spread``: samples are ``median * (1 + spread * u)``, u uniform in [-1, 1]; ``drift``: each
    window's level is ``1 + drift * v``, v standard normal; ``correlation``: lag-1
    autocorrelation of the noise (an AR(1) walk); ``stall``: that window runs 5 times slower.
    """
    per = max(1, n // windows)
    values, ids = [], []
    for w in range(windows):
        level = 1 + drift * rng.standard_normal()
        noise = np.empty(per)
        previous = 0.0
        for i in range(per):
            previous = correlation * previous + np.sqrt(1 - correlation**2) * rng.uniform(-1, 1)
            noise[i] = previous
        window = median * level * (1 + spread * noise)
        if stall == w:
            window = window * 5
        values.append(window)
        ids.append(np.full(per, w))
    return np.concatenate(values), np.concatenate(ids)


def synthetic_run(device: str, medians: dict, spread: float = 0.01, n: int = 60,
                  seed: int = 0, phased: bool = False, windows: int = 4, drift: float = 0.0,
                  cache_state: str = "warm", stall: int | None = None) -> RunResult:
    """A complete run whose case (kernel, size) has step times around ``medians[(kernel, size)]``,
    sampled in ``windows`` windows (see ``window_samples``; ``stall``: that window of the
    latency samples runs 5 times slower)."""
    rng = np.random.default_rng(seed)
    cases = []
    for (kernel, size), median in medians.items():
        step, window = window_samples(median, rng, spread, n, windows, drift, stall=stall)
        batch, batch_window = window_samples(0.9 * median, rng, spread, n // 2, windows, drift)
        window = window if windows > 1 else None
        batch_window = batch_window if windows > 1 else None
        if phased:
            device_samples = np.stack([0.5 * step, 0.3 * step, 0.2 * step], axis=1)
            samples = Samples(("forward", "backward", "update"), device_samples, None, batch, 10,
                              None, window, batch_window)
        else:
            samples = Samples(("step",), step[:, None], None, batch, 10, None, window,
                              batch_window)
        cases.append(CaseResult(CaseSpec(kernel, device, "float32", size), "ok", backend="numpy",
                                passes=1.0, prepare_s=0.0, warmup_s=0.0, samples=samples,
                                precision_target=0.02))
    settings = {"device": device, "dtype": "float32", "n_features": 1, "budget_s": 0.5,
                "precision": 0.02, "windows": windows, "cache_state": cache_state}
    probe = {"device": device, "nbytes": 1 << 30, "methods": {"sum": 20e9}, "bandwidth": 20e9,
             "best_method": "sum", "cache_bytes": 0, "cache_methods": {}, "cache_nbytes": 0,
             "cache_bandwidth": None}
    return RunResult(capture("cpu"), settings, cases, probe, complete=True)


def write_run(path, *args, **kwargs):
    write_json(synthetic_run(*args, **kwargs), path)
    return path
