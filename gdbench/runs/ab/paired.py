"""The paired verdict of ``gdbench ab``: a robust estimate per block, an interval over blocks,
sequential looks that spend alpha only where they happen, and a schedule chosen from the
variance components (docs/ab.md has the formulas).

In every round both sides measure one window of the case, back to back, on the same CPU and
behind the same layout. The round's log ratio ``d = log(median NEW / median BASE)`` cancels what
moved both sides alike; what is left varies from round to round, with heavy tails (a stalled
window can be x3), and from one pair of worker processes to the next.

- **Per block**, the Hodges-Lehmann estimate of its rounds' log ratios (the median of their
  pairwise means): a few x3 rounds cannot move it, and it loses 5% of the mean's efficiency on
  normal data.
- **Over blocks**: blocks are independent (fresh processes, other minutes), so the estimate is
  the Hodges-Lehmann estimate of the blocks' estimates and the interval is the one of
  Wilcoxon's signed-rank test: the order statistics of the blocks' pairwise means (Walsh
  averages) that bracket it with the look's confidence, from the exact distribution of the
  signed-rank statistic. It assumes only that the block estimates are spread symmetrically
  about their centre (two sides drawn in a random order make that so for an A/A), not that
  they are normal, so a block whose processes were slow throughout (x6 is seen) cannot widen
  it as it would a t interval; and it keeps 95% of the t interval's efficiency where they are
  normal, where the sign test's keeps 64%. It covers what belongs to a pair of processes as
  well as what varies between rounds; rounds alone are never the unit.
- **Looks**: after a block that ends in the first half of ``--max-time`` (``EARLY``), with at
  least ``min_blocks`` blocks, an early look is made when the alpha it would get can give a
  signed-rank interval at all (``2 / 2^B`` at least for B blocks); and one look at the end. Look k is
  made at level ``alpha_k = f(x_k) - (alpha spent before)``, with ``f(x) = alpha x^2`` (the
  power family of Kim and DeMets with rho = 2) a function of the elapsed share ``x`` of the time
  budget: the early looks spend at most alpha / 4 together and decide what is plain, and the
  final look spends what is left, at least 3/4 of alpha.
  Whether and when a look happens depends on the block count and the clock, never on the
  data, so the levels of the looks that happen add up to at most alpha. The levels add up to at most ``alpha``, so by the union bound every interval a case is
  judged by covers the true ratio with probability at least ``1 - alpha``, however many looks
  came; no alpha goes to a look that does not happen.
- **Decision**: FASTER or SLOWER when the interval excludes 1 and the estimate is beyond the
  minimum effect; SAME when the interval lies within the threshold; AMBIGUOUS otherwise.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

EARLY = 0.5  # the share of the time budget in which early looks are made
HL_VARIANCE = math.pi / 3  # n Var(HL) / sigma^2 for normal data (efficiency 3/pi = 0.955)


def t_quantile(p: float, dof: float) -> float:
    """Student's t quantile at ``p``."""
    from scipy.stats import t

    return float(t.ppf(p, dof))


def hodges_lehmann(values) -> float:
    """The median of the pairwise means (i <= j) of ``values``: a location estimate that a
    minority of outliers cannot move."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return math.nan
    i, j = np.triu_indices(len(v))
    return float(np.median((v[i] + v[j]) / 2))


def robust_scale(values) -> float:
    """The standard deviation that the median absolute deviation implies for normal data."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return math.nan
    return float(1.4826 * np.median(np.abs(v - np.median(v))))


SPENDING_POWER = 2


def spent(alpha: float, fraction: float) -> float:
    """The alpha spent by ``fraction`` of the time budget: ``alpha x^2``, all of it at 1."""
    return alpha * min(max(fraction, 0.0), 1.0) ** SPENDING_POWER


def decide(ratio: float, low: float, high: float, threshold: float, min_effect: float) -> str:
    """FASTER or SLOWER when ``[low, high]`` excludes 1 and ``ratio`` is beyond the minimum
    effect; SAME when ``[low, high]`` lies within the threshold; AMBIGUOUS otherwise."""
    if low > 1 and ratio >= 1 + min_effect:
        return "SLOWER"
    if high < 1 and ratio <= 1 / (1 + min_effect):
        return "FASTER"
    if low >= 1 / (1 + threshold) and high <= 1 + threshold:
        return "SAME"
    return "AMBIGUOUS"


@dataclass(frozen=True)
class Paired:
    """The ratio NEW / BASE of a case over its blocks, its interval, and what it says."""

    ratio: float  # exp(median of the blocks' estimates)
    low: float
    high: float
    blocks: int  # the independent units the interval is taken over
    verdict: str
    spread: float  # robust standard deviation of the blocks' log estimates
    level: float  # the alpha of the look that gave this interval

    def to_dict(self) -> dict:
        return {"ratio": self.ratio, "low": self.low, "high": self.high, "blocks": self.blocks,
                "verdict": self.verdict, "spread": self.spread, "level": self.level}


@functools.cache
def _signed_rank_cdf(n: int) -> np.ndarray:
    """P(T <= t) for t = 0 .. n(n+1)/2, T Wilcoxon's signed-rank statistic of n values."""
    top = n * (n + 1) // 2
    counts = np.zeros(top + 1)
    counts[0] = 1.0
    for k in range(1, n + 1):  # each rank k is in the positive sum or not
        counts[k:] = counts[k:] + counts[:-k].copy()
    return np.cumsum(counts) / 2.0**n


def signed_ranks(n: int, level: float) -> int | None:
    """The largest c with P(T <= c) <= ``level`` / 2, T the signed-rank statistic of n values:
    the sorted Walsh averages at c and M - 1 - c (from 0; M = n(n+1)/2) bracket the centre with
    confidence 1 - level. None when no c does (too few values: 2 / 2^n > level). Exact up to
    n = 60, the normal approximation with continuity correction beyond."""
    if n < 1 or level <= 0:
        return None
    if n <= 60:
        cdf = _signed_rank_cdf(n)
        c = int(np.searchsorted(cdf, level / 2, side="right")) - 1
        return c if c >= 0 else None
    mean, sd = n * (n + 1) / 4, math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    return max(int(math.floor(mean + NormalDist().inv_cdf(level / 2) * sd - 0.5)), 0)


def walsh_averages(values) -> np.ndarray:
    """The pairwise means (i <= j) of ``values``, sorted."""
    v = np.asarray(values, dtype=np.float64)
    i, j = np.triu_indices(len(v))
    return np.sort((v[i] + v[j]) / 2)


def sign_interval(estimates, level: float) -> tuple[float, float, float]:
    """(median, low, high) of log estimates with the sign test's interval at ``level`` (the
    interval of gdbench before the signed-rank one; ``analysis.ab_study.reanalysis_markdown`` sets
    the two side by side); (median, -inf, inf) where there is none."""
    from scipy.stats import binom

    r = np.sort(np.asarray(estimates, dtype=np.float64))
    n = len(r)
    k = int(binom.ppf(level / 2, n, 0.5)) if n else -1
    while k >= 0 and 2 * binom.cdf(k, n, 0.5) > level:
        k -= 1
    median = float(np.median(r)) if n else math.nan
    return (median, -math.inf, math.inf) if k < 0 else (median, float(r[k]), float(r[n - 1 - k]))


def paired(estimates, threshold: float, min_effect: float, level: float) -> Paired:
    """The Hodges-Lehmann estimate of independent log estimates (one per block), its
    signed-rank interval at ``level``, and the verdict."""
    r = np.asarray(estimates, dtype=np.float64)
    w = walsh_averages(r)
    ratio = math.exp(float(np.median(w))) if len(r) else math.nan
    c = signed_ranks(len(r), level)
    if c is None:
        return Paired(ratio, 0.0, math.inf, len(r), "AMBIGUOUS", robust_scale(r), level)
    low, high = math.exp(w[c]), math.exp(w[len(w) - 1 - c])
    return Paired(ratio, low, high, len(r), decide(ratio, low, high, threshold, min_effect),
                  robust_scale(r), level)


def by_block(pairs: list[dict], metric: str) -> dict[int, list[float]]:
    """The log ratios of ``metric`` of each block's rounds."""
    blocks: dict[int, list[float]] = {}
    for p in pairs:
        blocks.setdefault(p["block"], []).append(p[metric])
    return dict(sorted(blocks.items()))


def block_estimates(pairs: list[dict], metric: str) -> list[float]:
    """The Hodges-Lehmann estimate of each block's log ratios, in block order."""
    return [hodges_lehmann(v) for v in by_block(pairs, metric).values()]


def variance_components(pairs: list[dict], metric: str) -> dict:
    """How the log ratio varies, robustly: between rounds of one block (``rounds``: Shamos's
    estimator, the median of the absolute differences between rounds of the same block, which
    no block's offset enters, times 1.0483 = 1 / (sqrt 2 z_0.75) for a standard deviation) and
    between blocks
    beyond what their rounds explain (``processes``: what belongs to a pair of worker
    processes), as standard deviations."""
    blocks = [np.asarray(v) for v in by_block(pairs, metric).values()]
    differences = np.concatenate([np.abs(v[i] - v[j]) for v in blocks if len(v) >= 2
                                  for i, j in [np.triu_indices(len(v), 1)]] or [np.empty(0)])
    rounds = float(1.0483 * np.median(differences)) if len(differences) else math.nan
    estimates = [hodges_lehmann(v) for v in blocks]
    process = math.nan
    if len(estimates) >= 2 and math.isfinite(rounds):
        explained = float(np.mean([HL_VARIANCE * rounds**2 / len(v) for v in blocks]))
        process = math.sqrt(max(float(np.var(estimates, ddof=1)) - explained, 0.0))
    return {"rounds": rounds, "processes": process, "blocks": len(blocks),
            "pairs": sum(len(v) for v in blocks)}


def predicted_half_width(rounds: float, processes: float, per_block: list[int],
                         level: float) -> float:
    """About the half-width of the log interval that blocks of ``per_block`` rounds each would
    give, at ``level``, with these variance components: a block's estimate varies by
    ``processes^2 + (pi/3) rounds^2 / R_b``, and the Hodges-Lehmann estimate of B of them by
    (pi/3) / B of that; Student's t for the quantile, which charges few blocks for their few
    ranks; infinite where B blocks can give no interval at ``level``. A block of no rounds (its
    side failed before its first pair) gives no estimate and is not counted."""
    per_block = [r for r in per_block if r > 0]
    blocks = len(per_block)
    if blocks < 2 or signed_ranks(blocks, level) is None:
        return math.inf
    variance = sum(processes**2 + HL_VARIANCE * rounds**2 / r for r in per_block) / blocks
    return t_quantile(1 - level / 2, blocks - 1) * math.sqrt(HL_VARIANCE * variance / blocks)


def best_rounds(components: list[dict], block_cost: float, round_cost: float, seconds: float,
                done: list[int], level: float, fewest: int = 3, most: int = 60) -> int:
    """Rounds per block for the blocks still to come, as Kalibera and Jones choose repetitions:
    the count that makes the intervals narrowest for the time left, given what a block costs
    (``block_cost``: starting its processes, their first windows) and what a round costs, how
    the log ratio varies between rounds and between blocks, and the rounds of the blocks
    ``done``. Many rounds where processes add little, few where they add much; never so many
    that too few blocks are left for the t interval. ``components``: one per case and metric,
    the median of whose predicted half-widths is made smallest."""
    usable = [c for c in components if math.isfinite(c.get("rounds", math.nan))
              and math.isfinite(c.get("processes", math.nan))]
    if not usable or not round_cost > 0:
        return fewest

    def width(r: int) -> float:
        coming = int(seconds // (block_cost + r * round_cost))
        plan = list(done) + [r] * coming
        return float(np.median([predicted_half_width(c["rounds"], c["processes"], plan,
                                                     level) for c in usable]))

    return min(range(fewest, most + 1), key=width)
