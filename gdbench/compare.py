"""Did it get slower? Ratios of step times between two runs, with verdicts from the samples.

Reads gdbench results and pytest-benchmark's ``--benchmark-json`` files. For each case in both,
the ratio NEW / BASE of the median times gets a 95% confidence interval: by bootstrap from the
raw samples when both files carry them (gdbench always does; pytest-benchmark with
``--benchmark-save-data``), otherwise from each median's standard error estimated from its IQR
and sample count. The verdict compares that interval with the threshold.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gdbench.results import RunResult, format_size, read_json

VERDICTS = ("FASTER", "SLOWER", "SAME", "AMBIGUOUS")


@dataclass(frozen=True, eq=False)
class Timing:
    """One case's times in seconds: raw samples, or a summary when the file has no samples."""

    median: float
    iqr: float
    n: int
    samples: np.ndarray | None = None

    @classmethod
    def of(cls, samples) -> Timing:
        a = np.asarray(samples, dtype=np.float64)
        q1, med, q3 = np.percentile(a, [25, 50, 75])
        return cls(float(med), float(q3 - q1), len(a), a)


def _read(path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read it as a results file ({exc})") from None
    if not text.strip():
        raise ValueError(f"{path}: the file is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON, perhaps truncated ({exc})") from None


def load_timings(path) -> dict[tuple, Timing]:
    """Step (and phase) timings of a gdbench or pytest-benchmark file, by case key."""
    d = _read(path)
    if isinstance(d, dict) and d.get("tool") == "gdbench":
        return _gdbench_timings(read_json(path))
    if isinstance(d, dict) and isinstance(d.get("benchmarks"), list) and "machine_info" in d:
        return _pytest_benchmark_timings(d, path)
    raise ValueError(f"{path}: neither gdbench results nor pytest-benchmark JSON")


def _gdbench_timings(run: RunResult) -> dict[tuple, Timing]:
    out = {}
    for c in run.cases:
        if c.ok:
            s = c.spec
            out[(s.name, s.device, s.dtype, s.n_samples, s.n_features, "step")] = \
                Timing.of(c.samples.step())
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


def ratio_interval(base: Timing, new: Timing, seed: int = 0) -> tuple[float, float, float]:
    """NEW/BASE ratio of medians and its 95% confidence interval."""
    ratio = new.median / base.median
    if base.samples is not None and new.samples is not None:
        resamples = int(np.clip(4_000_000 // max(base.n, new.n), 200, 2000))
        rng = np.random.default_rng(seed)
        b = np.median(rng.choice(base.samples, (resamples, base.n)), axis=1)
        n = np.median(rng.choice(new.samples, (resamples, new.n)), axis=1)
        lo, hi = np.percentile(n / b, [2.5, 97.5])
        return ratio, float(lo), float(hi)
    # Standard error of a median: 1.2533 sigma / sqrt(n), with sigma = IQR / 1.349 (normal).
    rel = [1.2533 * (t.iqr / 1.349) / math.sqrt(max(t.n, 1)) / t.median for t in (base, new)]
    spread = 1.96 * math.hypot(*rel)
    return ratio, ratio * math.exp(-spread), ratio * math.exp(spread)


def verdict(lo: float, hi: float, threshold: float) -> str:
    """SLOWER or FASTER when the whole interval is beyond the threshold, SAME when it is within."""
    up, down = 1 + threshold, 1 / (1 + threshold)
    if lo > up:
        return "SLOWER"
    if hi < down:
        return "FASTER"
    if down <= lo and hi <= up:
        return "SAME"
    return "AMBIGUOUS"


@dataclass(frozen=True)
class Comparison:
    key: tuple
    base_median: float
    new_median: float
    ratio: float
    low: float
    high: float
    verdict: str

    @property
    def label(self) -> str:
        if len(self.key) == 1:
            return self.key[0]
        name, device, dtype, n, d, phase = self.key
        return f"{phase} {name}-{device}-{dtype}-N{format_size(n)}" + (f"-D{d}" if d != 1 else "")


def compare(base_path, new_path, threshold: float = 0.05) -> list[Comparison]:
    """Every case common to both files, with its ratio, interval and verdict."""
    if not 0 <= threshold < 10:
        raise ValueError(f"threshold must be a fraction such as 0.05, got {threshold}")
    base, new = load_timings(base_path), load_timings(new_path)
    common = [k for k in base if k in new]
    if not common:
        raise ValueError(f"{base_path} and {new_path} have no case in common")
    out = []
    for key in common:
        ratio, lo, hi = ratio_interval(base[key], new[key])
        out.append(Comparison(key, base[key].median, new[key].median, ratio, lo, hi,
                              verdict(lo, hi, threshold)))
    return out


def parse_threshold(text: str) -> float:
    """``5%`` or ``0.05`` as a fraction."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(f"threshold {text!r} is not a number such as 5% or 0.05") from None
    if not 0 <= value < 10:
        raise ValueError(f"threshold {text!r} must be between 0% and 1000%")
    return value
