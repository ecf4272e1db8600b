"""Statistics of timing samples: median, spread, and how well the median is known."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959964  # two-sided 95% normal quantile


def median_ci(samples, z: float = Z95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median from order statistics.

    The number of samples below the median is Binomial(n, 1/2), so the sorted samples at ranks
    ``n/2 -+ z sqrt(n)/2`` bracket the median with the normal approximation's confidence.
    """
    s = np.sort(np.asarray(samples, dtype=np.float64))
    n = len(s)
    half = z * math.sqrt(n) / 2
    lo = max(int(math.floor(n / 2 - half)), 0)
    hi = min(int(math.ceil(n / 2 + half)), n - 1)
    return float(s[lo]), float(s[hi])


def relative_precision(samples) -> float:
    """Half-width of the median's 95% interval over the median (inf below 2 samples)."""
    if len(samples) < 2:
        return math.inf
    lo, hi = median_ci(samples)
    med = float(np.median(samples))
    return (hi - lo) / (2 * med) if med > 0 else math.inf


@dataclass(frozen=True)
class Summary:
    """What a set of samples says; all derived from the samples, in their unit."""

    median: float
    iqr: float
    min: float
    n: int
    precision: float  # relative half-width of the median's 95% interval

    @classmethod
    def of(cls, samples) -> Summary:
        a = np.asarray(samples, dtype=np.float64)
        q1, med, q3 = np.percentile(a, [25, 50, 75])
        return cls(float(med), float(q3 - q1), float(a.min()), len(a), relative_precision(a))

    def noisy(self, target: float) -> bool:
        """The median is not known to ``target``, or the middle half spreads over 10% of it."""
        return self.precision > target or self.iqr > 0.10 * self.median
