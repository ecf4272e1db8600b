"""Did it get slower? Ratios of step times between two runs, with verdicts that can be believed.

Reads gdbench results and pytest-benchmark's ``--benchmark-json`` files. For each case in both,
the ratio NEW / BASE of the median times gets a 95% confidence interval, and the verdict
compares that interval with the threshold.

Samples taken in one burst agree with each other far better than two runs do, so the interval
is built from what varies between runs: the medians of the windows a gdbench case was sampled
in, spread over its run (a Welch t interval on their logarithms), widened by a noise floor the
user may give (the relative standard deviation of a case between runs on this machine, which
``gdbench noise`` measures: a machine can change state for longer than a run, and no run sees
that from inside). A case sampled in a single window (any pytest-benchmark file, a gdbench run
with ``--windows 1``) says nothing of the variation over time: without a noise floor it is
AMBIGUOUS, and the row says why; so is a case that other work held back on either side
(contended). A file compared with itself is SAME. Cold-cache and
warm-cache runs are not compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from gdbench.core.units import format_size
from gdbench.files.results import load_json, read_json
from gdbench.records.run import RunResult
from gdbench.records.stats import Summary, stalled, t975, verdict, window_medians

VERDICTS = ("FASTER", "SLOWER", "SAME", "AMBIGUOUS")
FEW = 10  # rounds or samples below which a row says its interval is wide for that reason


@dataclass(frozen=True, eq=False)
class Timing:
    """One case's times in seconds: raw samples with their windows, or a summary only."""

    median: float
    iqr: float
    n: int
    samples: np.ndarray | None = None
    windows: np.ndarray | None = None  # the window of each sample; None: one window
    noisy: bool = False
    contended: bool = False

    @classmethod
    def of(cls, samples, windows=None, **flags) -> Timing:
        """The timing of ``samples``; their stalled windows (``records.stats.stalled``) left
        out, as a run's table leaves them out."""
        a = np.asarray(samples, dtype=np.float64)
        if windows is not None and len(np.unique(windows)) > 1:
            w = np.asarray(windows)
            out = stalled(window_medians(a, w))
            keep = np.isin(w, np.unique(w)[~out])
            a, windows = a[keep], w[keep]
        q1, med, q3 = np.percentile(a, [25, 50, 75])
        return cls(float(med), float(q3 - q1), len(a), a, windows, **flags)

    @property
    def window_medians(self) -> np.ndarray | None:
        """The medians of the windows, when there are two or more."""
        if self.samples is None or self.windows is None or len(np.unique(self.windows)) < 2:
            return None
        return window_medians(self.samples, self.windows)

    def scaled(self, factor: float) -> Timing:
        """The same timing with every sample ``factor`` times as long."""
        samples = None if self.samples is None else self.samples * factor
        return replace(self, median=self.median * factor, iqr=self.iqr * factor,
                       samples=samples)


def _read(path) -> dict:
    return load_json(path)


def load(path) -> tuple[dict[tuple, Timing], str]:
    """(timings by case key, cache state "warm" or "cold") of a gdbench or pytest-benchmark file."""
    d = _read(path)
    if isinstance(d, dict) and d.get("tool") == "gdbench":
        run = read_json(path)
        return run_timings(run), run.settings.get("cache_state", "warm")
    if isinstance(d, dict) and isinstance(d.get("benchmarks"), list) and "machine_info" in d:
        return _pytest_benchmark_timings(d, path), "warm"
    raise ValueError(f"{path}: neither gdbench results nor pytest-benchmark JSON")


def incomplete(path) -> str:
    """What a gdbench run's partial file lacks (``RunResult.incomplete``); "" for a whole run
    or a pytest-benchmark file."""
    d = _read(path)
    if isinstance(d, dict) and d.get("tool") == "gdbench" and not d.get("complete", False):
        return read_json(path).incomplete
    return ""


def load_timings(path) -> dict[tuple, Timing]:
    return load(path)[0]


def run_timings(run: RunResult) -> dict[tuple, Timing]:
    """Latency (phase "step") and batched throughput (phase "throughput") of each timed case."""
    out = {}
    for c in run.cases:
        if c.ok:
            s = c.spec
            key = (s.name, s.device, s.dtype, s.n_samples, s.n_features)
            flags = {"noisy": c.noisy, "contended": c.contended}
            out[key + ("step",)] = Timing.of(c.samples.step(), c.samples.window, **flags)
            if c.samples.batch is not None:
                out[key + ("throughput",)] = Timing.of(c.samples.batch, c.samples.batch_window,
                                                       **flags)
    return out


def _pytest_benchmark_timings(d: dict, path) -> dict[tuple, Timing]:
    out = {}
    for b in d["benchmarks"]:
        try:
            stats, info = b["stats"], b.get("extra_info", {})
            if {"kernel", "device", "dtype", "n_samples"} <= set(info):
                phase = b["name"].split("[")[0].removeprefix("test_")
                key = (info["kernel"], info["device"], info["dtype"], int(info["n_samples"]),
                       int(info.get("n_features", 1)), phase)
            else:
                key = (b["fullname"],)
            if stats.get("data"):
                out[key] = Timing.of(stats["data"])
            else:
                out[key] = Timing(float(stats["median"]), float(stats["iqr"]), int(stats["rounds"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: malformed pytest-benchmark entry ({exc!r})") from None
    return out


def _identical(a: Timing, b: Timing) -> bool:
    if a.samples is not None and b.samples is not None:
        return a.samples.shape == b.samples.shape and bool(np.array_equal(a.samples, b.samples))
    return a.samples is None and b.samples is None and (a.median, a.iqr, a.n) == (b.median, b.iqr,
                                                                                  b.n)


def _single_window_log_se(t: Timing) -> float:
    """Standard error of log(median) from one window: block bootstrap, or the IQR and count."""
    if t.samples is not None:
        return Summary.of(t.samples).precision / 1.96
    # A median's standard error: 1.2533 sigma / sqrt(n), sigma = IQR / 1.349 (normal data).
    return 1.2533 * (t.iqr / 1.349) / math.sqrt(max(t.n, 1)) / t.median


def ratio_interval(base: Timing, new: Timing, noise: float = 0.0) -> tuple[float, float, float, str]:
    """NEW/BASE ratio of medians, its 95% interval, and why a verdict cannot be given ("" if it can).

    ``noise`` is the relative standard deviation of a case between runs on this machine.
    """
    ratio = new.median / base.median
    if _identical(base, new):
        return ratio, ratio, ratio, ""
    mb, mn = base.window_medians, new.window_medians
    if mb is not None and mn is not None:
        vb = float(np.var(np.log(mb), ddof=1)) / len(mb)
        vn = float(np.var(np.log(mn), ddof=1)) / len(mn)
        variance = vb + vn
        dof = variance**2 / max(vb**2 / (len(mb) - 1) + vn**2 / (len(mn) - 1), 1e-300)
        variance += 2 * noise**2  # each run's own offset, where the user knows its size
        half = t975(dof) * math.sqrt(variance)
        return ratio, ratio * math.exp(-half), ratio * math.exp(half), ""
    variance = _single_window_log_se(base) ** 2 + _single_window_log_se(new) ** 2
    if not noise:
        low, high = ratio * math.exp(-1.96 * math.sqrt(variance)), ratio * math.exp(
            1.96 * math.sqrt(variance))
        return ratio, low, high, ("one window: the variation between runs is unknown "
                                  "(sample in several windows, or pass --noise)")
    half = 1.96 * math.sqrt(variance + 2 * noise**2)
    return ratio, ratio * math.exp(-half), ratio * math.exp(half), ""


@dataclass(frozen=True)
class Comparison:
    key: tuple
    base_median: float
    new_median: float
    ratio: float
    low: float
    high: float
    verdict: str
    why: str = ""  # why the verdict is AMBIGUOUS whatever the data, when it is
    flags: str = ""  # ~ noisy, ^ contended (either side)
    note: str = ""  # why the interval is wide, when few samples or rounds make it so

    @property
    def label(self) -> str:
        return case_label(self.key)


def case_label(key: tuple) -> str:
    """``step torch-manual-cpu-float32-N1e6`` for a case key."""
    if len(key) == 1:
        return key[0]
    name, device, dtype, n, d, phase = key
    return f"{phase} {name}-{device}-{dtype}-N{format_size(n)}" + (f"-D{d}" if d != 1 else "")


def compare_timings(base: dict[tuple, Timing], new: dict[tuple, Timing], threshold: float = 0.05,
                    noise=None) -> list[Comparison]:
    """Every case common to both, with its ratio, interval and verdict.

    ``noise`` is a ``gdbench.analysis.noise.NoiseFloor`` (each case's variation between runs), or None.
    """
    out = []
    for key in [k for k in base if k in new]:
        b, n = base[key], new[key]
        floor = noise.of(case_label(key)) if noise is not None else 0.0
        ratio, lo, hi, why = ratio_interval(b, n, floor)
        if (b.contended or n.contended) and not _identical(b, n):
            why = ("contended: other work held back "
                   + ("both sides" if b.contended and n.contended else
                      "the base" if b.contended else "the new side")
                   + ", so its time says how busy the machine was")
        flags = ("~" if b.noisy or n.noisy else "") + ("^" if b.contended or n.contended else "")
        fewest = min(b.n, n.n)
        note = (f"only {fewest} rounds or samples on one side: the interval is wide"
                if fewest < FEW and not _identical(b, n) else "")
        out.append(Comparison(key, b.median, n.median, ratio, lo, hi,
                              "AMBIGUOUS" if why else verdict(lo, hi, threshold), why, flags,
                              note))
    return out


def compare(base_path, new_path, threshold: float = 0.05, noise=None) -> list[Comparison]:
    """Every case common to both files, with its ratio, interval and verdict.

    ``noise``: a ``gdbench.analysis.noise.NoiseFloor``, or None to judge by the runs' own windows only.
    """
    if not 0 <= threshold < 10:
        raise ValueError(f"threshold must be a fraction such as 0.05, got {threshold}")
    (base, base_cache), (new, new_cache) = load(base_path), load(new_path)
    if base_cache != new_cache:
        raise ValueError(f"{base_path} was measured with {base_cache} caches and {new_path} with "
                         f"{new_cache} caches: their times are not comparable")
    rows = compare_timings(base, new, threshold, noise)
    if not rows:
        raise ValueError(f"{base_path} and {new_path} have no case in common")
    return rows


def parse_fraction(text: str, what: str = "threshold") -> float:
    """``5%`` or ``0.05`` as a fraction. A bare number of 1 or more is refused: ``5`` could mean
    5% or 500%, and a threshold read as the wrong one passes what it should stop."""
    text = text.strip()
    percent = text.endswith("%")
    try:
        value = float(text[:-1]) / 100 if percent else float(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a number such as 5% or 0.05") from None
    if not percent and value >= 1:
        raise ValueError(f"{what} {text!r} has no unit: write {text}% for a percentage, or a "
                         f"fraction below 1 such as {value / 100:g}")
    if not 0 <= value < 10:
        raise ValueError(f"{what} {text!r} must be between 0% and 1000%")
    return value


def parse_threshold(text: str) -> float:
    return parse_fraction(text, "threshold")
