"""The statistics of ab's verdict: the rule, the robust estimate, the signed-rank interval, the alpha
spent over the looks, and their coverage on synthetic heavy-tailed rounds."""

import math

import numpy as np
import pytest

from gdbench.analysis.coverage import coverage_markdown, real_coverage, simulate
from gdbench.runs.ab import paired as stats

A = 0.05  # threshold
M = 0.02  # minimum effect


@pytest.mark.parametrize("ratio,low,high,verdict", [
    (1.05, 1.03, 1.07, "SLOWER"),       # a true +5% is callable SLOWER
    (1.10, 1.06, 1.14, "SLOWER"),       # beyond the threshold
    (1.015, 1.005, 1.025, "SAME"),      # a difference, smaller than the minimum effect
    (1.01, 0.99, 1.03, "SAME"),
    (0.95, 0.93, 0.97, "FASTER"),
    (1.03, 0.99, 1.07, "AMBIGUOUS"),    # holds 1 and reaches past the threshold
    (1.015, 1.001, 1.06, "AMBIGUOUS"),  # excludes 1, estimate below the minimum effect
])
def test_the_rule_keeps_a_difference_apart_from_one_that_matters(ratio, low, high, verdict):
    assert stats.decide(ratio, low, high, A, M) == verdict


def test_hodges_lehmann_is_not_moved_by_a_few_rounds_three_times_too_slow():
    rounds = np.log([1.01, 0.99, 1.00, 1.02, 0.98, 1.00, 3.0, 3.7])  # two stalled rounds
    assert abs(stats.hodges_lehmann(rounds)) < 0.03
    assert abs(np.mean(rounds)) > 0.25


@pytest.mark.parametrize("n,c", [(6, 0), (7, 2), (8, 3), (9, 5), (10, 8), (20, 52), (30, 137)])
def test_the_signed_rank_critical_values_are_the_tables(n, c):
    assert stats.signed_ranks(n, 0.05) == c


def test_the_signed_rank_interval_brackets_the_centre_and_a_stalled_block_moves_little():
    assert stats.signed_ranks(5, 0.05) is None  # 2 / 2^5 > 0.05: no interval
    blocks = np.log([0.99, 1.0, 1.01, 1.02, 1.0, 0.98, 5.0, 1.01])
    p = stats.paired(blocks, A, M, 0.05)
    assert p.ratio == pytest.approx(1.005, abs=0.01)  # the x5 block moves it a little
    w = stats.walsh_averages(blocks)
    assert len(w) == 36 and (p.low, p.high) == pytest.approx(np.exp([w[3], w[32]]))  # c = 3
    # one block of eight at x5 still reaches the upper end (8 of the 36 averages hold it),
    # but half as far as the sign test's, whose interval would run to 5 itself (min, max)
    assert p.low == pytest.approx(0.99, abs=0.005) and p.high < 2.5
    assert stats.paired([0.0] * 5, A, M, 0.05).verdict == "AMBIGUOUS"  # too few blocks


def test_the_signed_rank_interval_covers_as_it_says_on_symmetric_heavy_tailed_blocks():
    rng = np.random.default_rng(11)
    held = 0
    for _ in range(2000):
        p = stats.paired(rng.standard_t(2, 12) * 0.02, A, M, 0.05)
        held += p.low <= 1 <= p.high
    assert 0.94 <= held / 2000 <= 0.985


def test_the_looks_spend_at_most_alpha_and_the_last_most_of_it():
    assert stats.spent(0.05, 0.5) == pytest.approx(0.0125)
    assert stats.spent(0.05, 1.0) == stats.spent(0.05, 2.0) == 0.05
    increments = np.diff([0.0] + [stats.spent(0.05, x) for x in (0.2, 0.35, 0.5, 1.0)])
    assert increments.sum() == pytest.approx(0.05) and increments[-1] >= 0.75 * 0.05


def test_the_schedule_weighs_what_a_block_costs_against_what_processes_add():
    quiet = [{"rounds": 0.03, "processes": 0.0}]
    loud = [{"rounds": 0.03, "processes": 0.05}]
    # blocks cost 5 s, a round 0.1 s, 170 s left: many rounds where processes add nothing
    assert stats.best_rounds(quiet, 5.0, 0.1, 170, [], 0.05) > 20
    # where each pair of processes has an offset of its own, more of them
    assert stats.best_rounds(loud, 5.0, 0.1, 170, [], 0.05) < stats.best_rounds(
        quiet, 5.0, 0.1, 170, [], 0.05)
    # and where blocks cost nothing, as many blocks as can be
    assert stats.best_rounds(quiet, 0.0, 0.1, 170, [], 0.05) == 3
    # a block of no rounds (a side that failed before its first pair: bisect's broken commit)
    # gives no estimate and counts for nothing
    assert stats.best_rounds(loud, 5.0, 0.1, 120, [8, 0, 8], 0.05) == stats.best_rounds(
        loud, 5.0, 0.1, 120, [8, 8], 0.05)


def heavy_tailed_session(rng, blocks=20, rounds=8, ratio=1.0):
    """An A/A-like session's file: each block's processes off by 1%, rounds 1.5% apart, and
    one round in ten stalled (up to x3) on either side."""
    pairs = []
    for b in range(blocks):
        offset = rng.normal(0, 0.01)
        for r in range(rounds):
            value = math.log(ratio) + offset + rng.normal(0, 0.015)
            if rng.random() < 0.1:
                value += rng.choice([-1, 1]) * rng.uniform(0.3, 1.1)
            pairs.append({"block": b, "round": r, "latency": value,
                          "throughput": value + rng.normal(0, 0.005)})
    return {"settings": {"min_blocks": 6, "alpha": 0.05}, "looks": [{"level": 0.044}],
            "cases": [{"label": "k N=1e3", "status": "ok", "pairs": pairs}]}


def test_coverage_on_synthetic_heavy_tailed_rounds():
    """Resampled with a ratio put in, the interval holds it at least as often as promised,
    an A/A case is called FASTER or SLOWER within alpha, and +20% is found."""
    rng = np.random.default_rng(7)
    sessions = [heavy_tailed_session(rng) for _ in range(3)]
    result = simulate(sessions, ratios=(1.0, 1.2), trials=150, seed=1)
    assert result["comparisons"] == 6
    same, slowed = result["ratios"]["1.0"], result["ratios"]["1.2"]
    assert result["coverage"] >= 0.93
    assert same["FASTER"] + same["SLOWER"] <= 0.05
    # a resampled world is noisier than its session (rounds drawn again within drawn blocks):
    # the session itself is SAME, the worlds four times in five at least
    assert same["SAME"] >= 0.75
    assert slowed["SLOWER"] >= 0.95 and slowed["FASTER"] == 0


def test_an_interval_that_is_too_narrow_shows_in_the_coverage(monkeypatch):
    """The simulation can fail: an interval of the middle two blocks alone covers far less."""
    monkeypatch.setattr(stats, "signed_ranks",
                        lambda n, level: n * (n + 1) // 4 - 2 if n >= 6 else None)
    import gdbench.analysis.coverage as coverage

    monkeypatch.setattr(coverage, "paired", stats.paired)
    rng = np.random.default_rng(7)
    result = simulate([heavy_tailed_session(rng)], ratios=(1.0,), trials=100, seed=1)
    assert result["coverage"] < 0.6


def test_a_t_interval_over_the_same_blocks_would_be_blown_up_by_the_stalls():
    """Why the robust estimates and the signed-rank interval: the mean of the rounds, with a t
    interval, is as wide as the stalls make it."""
    rng = np.random.default_rng(3)
    case = heavy_tailed_session(rng)["cases"][0]
    blocks = stats.by_block(case["pairs"], "latency")
    means = [float(np.mean(v)) for v in blocks.values()]
    half_t = stats.t_quantile(0.975, len(means) - 1) * np.std(means, ddof=1) / math.sqrt(
        len(means))
    robust = stats.paired(stats.block_estimates(case["pairs"], "latency"), A, M, 0.05)
    assert math.log(robust.high / robust.low) / 2 < half_t / 2


def test_the_real_sessions_coverage_counts_the_intervals_holding_1():
    session = {"cases": [{"status": "ok", "verdicts": {
        "latency": {"low": 0.99, "high": 1.01, "verdict": "SAME"},
        "throughput": {"low": 1.01, "high": 1.05, "verdict": "SLOWER"}}}]}
    real = real_coverage([session])
    assert real == {"comparisons": 2, "hold_1": 1, "FASTER": 0, "SLOWER": 1, "SAME": 1,
                    "AMBIGUOUS": 0}
    text = "\n".join(coverage_markdown({"simulated": {"coverage": 0.96, "comparisons": 4,
                                                        "trials": 10, "ratios": {"1.0": {
        "SLOWER": 0.01, "FASTER": 0.0, "SAME": 0.9, "AMBIGUOUS": 0.09}}}, "real": real}))
    assert "| 1.00 | 1.0% | 0.0% | 90.0% | 9.0% |" in text
    assert "holds the truth: 96.0% (4 comparisons, 10 resampled" in text
    assert "1 of 2 intervals hold 1 (50.0%)" in text
