"""How often ``ab``'s interval covers the true ratio, shown by resampling recorded rounds.

A/A sessions record, for each case and metric, the log ratio of every round and the block it
belongs to. Their noise is what this machine does: heavy tails, blocks whose processes were
slow, rounds that stalled. Each of them is made into a world whose truth is known, and the
session is measured again in that world many times, as a two-stage bootstrap does: as many
blocks as it had, drawn with replacement, and in each as many rounds as that block had, drawn
with replacement from it. The world's true log ratio is the median of all the block estimates
it gives (the median every resampled session's estimate aims at); a ratio is put in by adding
its logarithm to every round. Each resampled session gets ``ab``'s estimate, interval (at the
level of the session's final look) and verdict. The share of intervals that hold the world's
truth is the coverage (the same for every ratio put in: a shift moves estimate and interval
alike); the verdicts give the A/A rates (ratio 1) and the power (ratio above 1), with the
same resampled sessions for every ratio.

What the resampling cannot show is a bias that every round shares (the two sides measured
unlike each other): real A/A sessions show that, by how often their intervals miss 1.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from gdbench.files.paths import check_target, move_aside
from gdbench.files.results import load_json, read_ab, write_atomic
from gdbench.files.versions import NOISE_VERSION
from gdbench.runs.ab.paired import by_block, hodges_lehmann, paired

RATIOS = (1.0, 1.02, 1.05, 1.10, 1.20)


def recorded(session: dict, metric: str):
    """(case label, its blocks' centred log ratios, the final look's level) of each case of
    an A/A session with enough blocks for a verdict."""
    looks = session.get("looks") or []
    level = looks[-1]["level"] if looks else session["settings"].get("alpha", 0.05)
    fewest = session["settings"].get("min_blocks", 6)
    for case in session["cases"]:
        if case["status"] != "ok":
            continue
        blocks = [np.asarray(v) for v in by_block(case["pairs"], metric).values()]
        if len(blocks) < fewest:
            continue
        center = float(np.median([hodges_lehmann(b) for b in blocks]))
        yield case["label"], [b - center for b in blocks], level


def resample(blocks, rng) -> list[float]:
    """The blocks' estimates of one resampled session."""
    chosen = rng.integers(0, len(blocks), len(blocks))
    return [hodges_lehmann(rng.choice(blocks[i], len(blocks[i]))) for i in chosen]


def simulate(sessions: list[dict], ratios=RATIOS, trials: int = 200, seed: int = 0,
             threshold: float = 0.05, min_effect: float = 0.02) -> dict:
    """Over every case and metric of ``sessions`` and ``trials`` resampled sessions of each:
    the share of intervals that hold the truth, and, for each ratio put in, of each verdict."""
    rng = np.random.default_rng(seed)
    worlds = [(blocks, level) for session in sessions for metric in ("latency", "throughput")
              for _, blocks, level in recorded(session, metric)]
    covered, verdicts = 0, {str(r): {v: 0 for v in ("FASTER", "SLOWER", "SAME", "AMBIGUOUS")}
                            for r in ratios}
    for blocks, level in worlds:
        draws = np.array([resample(blocks, rng) for _ in range(trials)])
        truth = float(np.median(draws))
        for estimates in draws:
            p = paired(estimates, threshold, min_effect, level)
            covered += p.low <= math.exp(truth) <= p.high
            for ratio in ratios:
                shifted = paired(estimates + math.log(ratio), threshold, min_effect, level)
                verdicts[str(ratio)][shifted.verdict] += 1
    total = max(len(worlds) * trials, 1)
    return {"trials": trials, "comparisons": len(worlds), "seed": seed,
            "threshold": threshold, "min_effect": min_effect, "coverage": covered / total,
            "ratios": {r: {v: n / total for v, n in counts.items()}
                       for r, counts in verdicts.items()}}


def real_coverage(sessions: list[dict]) -> dict:
    """How the real A/A sessions' intervals did: how many hold 1, and their verdicts."""
    rows = [case["verdicts"][m] for s in sessions for case in s["cases"]
            if case["status"] == "ok" for m in ("latency", "throughput")
            if m in case.get("verdicts", {})]
    held = sum(v["low"] <= 1 <= v["high"] for v in rows)
    return {"comparisons": len(rows), "hold_1": held,
            **{v: sum(r["verdict"] == v for r in rows)
               for v in ("FASTER", "SLOWER", "SAME", "AMBIGUOUS")}}


def coverage_markdown(result: dict) -> list[str]:
    """The table of a coverage file: per ratio put in, the verdicts; the coverage; how the real
    sessions did."""
    sim = result["simulated"]
    lines = ["| ratio put in | SLOWER | FASTER | SAME | AMBIGUOUS |",
             "|---:|---:|---:|---:|---:|"]
    for ratio, r in sim["ratios"].items():
        lines.append(f"| {float(ratio):.2f} | {r['SLOWER']:.1%} | {r['FASTER']:.1%} | "
                     f"{r['SAME']:.1%} | {r['AMBIGUOUS']:.1%} |")
    real = result["real"]
    lines += ["", f"Resampled sessions whose interval holds the truth: {sim['coverage']:.1%} "
                  f"({sim['comparisons']} comparisons, {sim['trials']} resampled sessions "
                  "each).", "",
              f"The real A/A sessions themselves: {real['hold_1']} of "
                  f"{real['comparisons']} intervals hold 1 "
                  f"({real['hold_1'] / max(real['comparisons'], 1):.1%}); "
                  f"{real['FASTER'] + real['SLOWER']} FASTER or SLOWER, {real['SAME']} SAME, "
                  f"{real['AMBIGUOUS']} AMBIGUOUS."]
    return lines


def write_coverage(folder: Path, trials: int = 200, seed: int = 0,
                   keep_earlier: bool = False) -> dict:
    """``coverage.json`` beside a study's ``paired.json``: its A/A sessions resampled with
    ratios put in (``gdbench.analysis.coverage``), and how the real ones did; an earlier one
    moved aside with ``keep_earlier`` (a new study), replaced otherwise (``python
    scripts/ab_coverage.py DIR`` writes it again from the same files)."""
    summary = load_json(folder / "paired.json")
    sessions = [read_ab(folder / s["file"]) for s in summary["sessions"] if s["kind"] == "aa"]
    settings = summary["settings"]
    result = {"tool": "gdbench-noise-coverage", "schema_version": NOISE_VERSION,
              "sessions": [s["file"] for s in summary["sessions"] if s["kind"] == "aa"],
              "simulated": simulate(sessions, trials=trials, seed=seed,
                                    threshold=settings["threshold"],
                                    min_effect=settings.get("min_effect", 0.02)),
              "real": real_coverage(sessions)}
    path = check_target(folder / "coverage.json", "--out-dir")
    if keep_earlier:
        move_aside(path)
    write_atomic(path, json.dumps(result, indent=1) + "\n")
    return result
