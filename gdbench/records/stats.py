"""Statistics of timing samples: median, spread, and how well the median is known.

Samples taken back to back are serially correlated and share the machine's state of the
moment, so an interval computed as if they were independent is too narrow. A case is sampled
in several windows spread over the run; the precision of its median comes from the spread
between the windows' medians (a t interval on their logarithms), never narrower than the
exact order-statistic interval of all samples. A single window falls back to a moving-block
bootstrap, which keeps runs of neighbouring samples together.

A window whose median is ``STALLED`` times the fastest window's or more is stalled: most of
its steps waited on something else (a process that took the CPU, a page-out, a host's other
guest), and it measures that, not the kernel. A stalled window is named (``stalled_windows``),
kept in the data, and left out of the case's median and interval, so that one or two of them
cannot blow the interval up: ``x/3.1`` rather than ``x/1028``. When every window but one is
stalled there is no interval between windows.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

# Two-sided 95% quantiles of Student's t for 1 to 30 degrees of freedom; 1.96 beyond.
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(dof: float) -> float:
    """Student's t quantile for a two-sided 95% interval (dof rounded down, at least 1)."""
    k = max(1, int(math.floor(dof)))
    return T975[k - 1] if k <= len(T975) else 1.96


@functools.cache
def _lower_rank(n: int, alpha: float) -> int:
    """Largest l with P(X <= l) <= alpha for X ~ Binomial(n, 1/2); 0 when there is none."""
    pmf = cdf = 0.5**n
    rank, k = 0, 0
    while cdf <= alpha and k < n / 2:
        rank = k
        k += 1
        pmf *= (n - k + 1) / k
        cdf += pmf
    return rank


def median_ci(samples, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median, from exact binomial ranks.

    The number of samples below the median is Binomial(n, 1/2), so the sorted samples at ranks
    l and n - 1 - l miss the median with probability 2 P(X <= l): l is the largest rank that
    keeps this within 1 - ``confidence``. Below 6 samples no rank does, and the interval is the
    whole range. Past 1000 samples the normal approximation is exact enough.
    """
    s = np.sort(np.asarray(samples, dtype=np.float64))
    n = len(s)
    if n > 1000:
        lo = max(int(math.floor(n / 2 - 1.959964 * math.sqrt(n) / 2)), 0)
    else:
        lo = _lower_rank(n, (1 - confidence) / 2)
    return float(s[lo]), float(s[n - 1 - lo])


def relative_precision(samples) -> float:
    """Half-width of the median's 95% interval over the median; inf below 6 samples, where
    no pair of order statistics brackets the median with 95% confidence."""
    if len(samples) < 6:
        return math.inf
    lo, hi = median_ci(samples)
    med = float(np.median(samples))
    return (hi - lo) / (2 * med) if med > 0 else math.inf


def block_bootstrap_precision(samples, resamples: int = 400, seed: int = 0) -> float:
    """Relative half-width of the median's 95% interval by a moving-block bootstrap.

    Blocks of consecutive samples are drawn with replacement, so that serial correlation within
    a block is kept and the interval widens where neighbours agree: blocks of n**(1/3) samples,
    twice as long as the lag-1 autocorrelation says neighbours stay alike.
    """
    a = np.asarray(samples, dtype=np.float64)
    n = len(a)
    if n < 2:
        return math.inf
    block = min(max(1, n // 4), max(round(n ** (1 / 3)), 2 * _correlation_length(a)))
    starts = np.random.default_rng(seed).integers(0, n - block + 1, (resamples, -(-n // block)))
    index = (starts[:, :, None] + np.arange(block)).reshape(resamples, -1)[:, :n]
    medians = np.median(a[index], axis=1)
    lo, hi = np.percentile(medians, [2.5, 97.5])
    med = float(np.median(a))
    return float(hi - lo) / (2 * med) if med > 0 else math.inf


def _correlation_length(a: np.ndarray) -> int:
    """Samples over which an AR(1) process with ``a``'s lag-1 autocorrelation r stays alike:
    (1 + r) / (1 - r), the factor by which it has fewer independent samples than values."""
    centred = a - a.mean()
    denominator = float(centred @ centred)
    if denominator == 0:
        return 1
    r = min(max(float(centred[1:] @ centred[:-1]) / denominator, 0.0), 0.98)
    return math.ceil((1 + r) / (1 - r))


STALLED = 3.0  # a window this many times slower than the fastest is stalled


def stalled(medians) -> np.ndarray:
    """Which of the windows with these medians are stalled (a boolean per window)."""
    m = np.asarray(medians, dtype=np.float64)
    return m >= STALLED * m.min() if len(m) > 1 else np.zeros(len(m), bool)


def window_medians(samples, windows) -> np.ndarray:
    """The median of each window's samples, in window order."""
    a = np.asarray(samples, dtype=np.float64)
    w = np.asarray(windows)
    return np.array([np.median(a[w == k]) for k in np.unique(w)])


def between_window_precision(medians) -> float:
    """Relative half-width of a 95% t interval on the mean of the windows' log medians."""
    m = np.log(np.asarray(medians, dtype=np.float64))
    if len(m) < 2:
        return math.inf
    return math.expm1(t975(len(m) - 1) * float(np.std(m, ddof=1)) / math.sqrt(len(m)))


@dataclass(frozen=True)
class Summary:
    """What a set of samples says; all derived from the samples, in their unit."""

    median: float
    iqr: float
    min: float
    n: int
    precision: float  # relative half-width of the median's 95% interval
    windows: int = 1
    spread: float = 0.0  # (slowest - fastest) / fastest of the windows' medians, stalled aside
    stalled: tuple[int, ...] = ()  # the stalled windows (their place in window order)

    @classmethod
    def of(cls, samples, windows=None) -> Summary:
        a = np.asarray(samples, dtype=np.float64)
        count, spread, left_out = 1, 0.0, ()
        if windows is not None and len(np.unique(windows)) > 1:
            w = np.asarray(windows)
            ids = np.unique(w)
            medians = window_medians(a, w)
            out = stalled(medians)
            left_out = tuple(int(k) for k in np.flatnonzero(out))
            kept = medians[~out]
            a = a[np.isin(w, ids[~out])]  # the median and the interval of the others
            count, spread = len(medians), float(kept.max() / kept.min() - 1)
            precision = max(between_window_precision(kept), relative_precision(a))
        else:
            precision = block_bootstrap_precision(a)
        q1, med, q3 = np.percentile(a, [25, 50, 75])
        return cls(float(med), float(q3 - q1), float(a.min()), len(a), precision, count, spread,
                   left_out)

    def noisy(self, target: float) -> bool:
        """The median is not known to ``target`` (relative half-width of its 95% interval)."""
        return self.precision > target


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
