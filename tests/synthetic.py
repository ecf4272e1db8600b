"""Runs with known timings, for testing what reads results: compare, plots, reports."""

import numpy as np

from gdbench.environment import capture
from gdbench.results import CaseResult, CaseSpec, RunResult, write_json
from gdbench.timing import Samples


def synthetic_run(device: str, medians: dict, spread: float = 0.01, n: int = 60,
                  seed: int = 0, phased: bool = False) -> RunResult:
    """A complete run whose case (kernel, size) has step times around ``medians[(kernel, size)]``.

    Samples are the median times ``1 + spread * u`` with ``u`` uniform in [-1, 1].
    """
    rng = np.random.default_rng(seed)
    cases = []
    for (kernel, size), median in medians.items():
        step = median * (1 + spread * rng.uniform(-1, 1, n))
        if phased:
            samples = Samples(("forward", "backward", "update"),
                              np.stack([0.5 * step, 0.3 * step, 0.2 * step], axis=1))
        else:
            samples = Samples(("step",), step[:, None])
        cases.append(CaseResult(CaseSpec(kernel, device, "float32", size), "ok", backend="numpy",
                                passes=1.0, prepare_s=0.0, warmup_s=0.0, samples=samples))
    settings = {"device": device, "dtype": "float32", "n_features": 1, "budget_s": 0.5,
                "precision": 0.01}
    probe = {"device": device, "nbytes": 1 << 30, "methods": {"sum": 20e9}, "bandwidth": 20e9,
             "best_method": "sum", "cache_bytes": 0, "cache_methods": {}, "cache_nbytes": 0,
             "cache_bandwidth": None}
    return RunResult(capture("cpu"), settings, cases, probe, complete=True)


def write_run(path, *args, **kwargs):
    write_json(synthetic_run(*args, **kwargs), path)
    return path
