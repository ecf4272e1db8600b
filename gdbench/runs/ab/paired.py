"""The paired verdict of ``gdbench ab``: log ratios per round, an interval over rounds, and a
stopping rule that keeps the interval's coverage.

In every round both sides measure one window of the case, close together in time. The round's
log ratio ``log(median NEW / median BASE)`` cancels what moved both sides alike (the machine's
drift over minutes, another process, the clock); what is left varies from round to round
(layout, noise) and from one pair of worker processes to the next. Rounds of one block share
their processes, so the unit of the interval is the block: a t interval over the blocks' mean
log ratios, paired, not over samples, and not between two runs.

Blocks go on until the verdict is decided or the budget runs out, so the data are looked at
several times. Each look is made at a level of ``alpha / looks``, with ``looks`` the number of
looks the schedule allows (``look_rounds``) plus a final one; by the union bound the chance that
any look's interval misses the true ratio is at most ``alpha``, so a verdict taken at the first
look that decides it is as valid as one taken at a single, fixed round count (Bonferroni's
alpha spending; stricter than needed, never looser).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from gdbench.records.stats import verdict


def t_cdf(t: float, dof: float) -> float:
    """Student's t distribution function: its density integrated by Simpson's rule."""
    v = float(dof)
    grid = np.linspace(0.0, abs(t), 4001)
    log_c = math.lgamma((v + 1) / 2) - math.lgamma(v / 2) - 0.5 * math.log(v * math.pi)
    density = np.exp(log_c - (v + 1) / 2 * np.log1p(grid**2 / v))
    h = grid[1] - grid[0]
    area = h / 3 * (density[0] + density[-1] + 4 * density[1:-1:2].sum()
                    + 2 * density[2:-1:2].sum())
    return 0.5 + math.copysign(area, t)


def t_quantile(p: float, dof: float) -> float:
    """Student's t quantile at ``p`` (0.5 < p < 1), by bisection on ``t_cdf``."""
    lo, hi = 0.0, max(4 * NormalDist().inv_cdf(p), 1.0)
    while t_cdf(hi, dof) < p:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, dof) < p else (lo, mid)
    return (lo + hi) / 2


def look_rounds(min_rounds: int, max_rounds: int, every: int) -> list[int]:
    """The round counts at which the data are looked at."""
    return list(range(min_rounds, max_rounds + 1, max(every, 1))) or [max_rounds]


@dataclass(frozen=True)
class Paired:
    """The ratio NEW / BASE of a case's window medians over its rounds, and what it says."""

    ratio: float  # exp(mean log ratio)
    low: float
    high: float
    blocks: int  # the independent units the interval is taken over
    verdict: str
    spread: float  # standard deviation of the blocks' log ratios

    def to_dict(self) -> dict:
        return {"ratio": self.ratio, "low": self.low, "high": self.high, "blocks": self.blocks,
                "verdict": self.verdict, "spread": self.spread}


def paired(log_ratios, threshold: float, alpha: float) -> Paired:
    """The interval and verdict from independent log ratios (one per block), at level
    ``alpha``."""
    r = np.asarray(log_ratios, dtype=np.float64)
    if len(r) < 2:
        ratio = math.exp(float(r.mean())) if len(r) else math.nan
        return Paired(ratio, 0.0, math.inf, len(r), "AMBIGUOUS", math.nan)
    mean, sd = float(r.mean()), float(r.std(ddof=1))
    half = t_quantile(1 - alpha / 2, len(r) - 1) * sd / math.sqrt(len(r))
    low, high = math.exp(mean - half), math.exp(mean + half)
    return Paired(math.exp(mean), low, high, len(r), verdict(low, high, threshold), sd)


def block_means(pairs: list[dict], metric: str) -> list[float]:
    """The mean log ratio of each block's rounds, in block order."""
    blocks: dict[int, list[float]] = {}
    for p in pairs:
        blocks.setdefault(p["block"], []).append(p[metric])
    return [float(np.mean(v)) for _, v in sorted(blocks.items())]


def variance_components(pairs: list[dict], metric: str) -> dict:
    """How the log ratio varies: between rounds of one block (the same two processes, minutes
    apart, fresh layout) and between blocks beyond that (what belongs to a process), as
    standard deviations, from a one-way analysis of variance."""
    blocks: dict[int, list[float]] = {}
    for p in pairs:
        blocks.setdefault(p["block"], []).append(p[metric])
    groups = [np.asarray(v) for v in blocks.values() if len(v)]
    within_df = sum(len(g) - 1 for g in groups)
    within = (sum(float(((g - g.mean()) ** 2).sum()) for g in groups) / within_df
              if within_df else math.nan)
    means = [float(g.mean()) for g in groups]
    per_block = float(np.mean([len(g) for g in groups])) if groups else math.nan
    between = float(np.var(means, ddof=1)) if len(means) > 1 else math.nan
    process = max(between - within / per_block, 0.0) if math.isfinite(between) and \
        math.isfinite(within) else math.nan
    return {"rounds": math.sqrt(within) if math.isfinite(within) else math.nan,
            "processes": math.sqrt(process) if math.isfinite(process) else math.nan,
            "blocks": len(groups), "pairs": len(pairs)}
