"""How much identical runs differ on this machine, and what ``compare`` makes of it.

``gdbench noise`` runs one configuration several times. Every pair of runs is compared as two
measurements of identical code: any FASTER or SLOWER verdict is false. The same pairs with the
second run's samples made 10% and 30% slower (each sample scaled, so that the machine's real
noise is kept) show how often ``compare`` sees a genuine slowdown. Each case's median varies
between runs by more than its windows within one run show whenever the machine changes state
for longer than a run (other work, memory bandwidth, clocks): the relative standard deviation
of each case between runs is that variation, the noise floor. A noise file keeps it per case;
``compare --noise FILE`` widens each case's interval by it, and ``noise --noise FILE`` checks
a floor measured earlier on new runs.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gdbench.analysis.compare import (
    VERDICTS,
    case_label,
    compare_timings,
    parse_fraction,
    run_timings,
)
from gdbench.files.results import load_json, write_atomic
from gdbench.files.versions import NOISE_VERSION, check_noise_version
from gdbench.records.run import RunResult

SLOWDOWNS = (1.1, 1.3)


@dataclass(frozen=True)
class NoiseFloor:
    """Relative standard deviation of a case between runs: per case label, and a default."""

    default: float
    cases: dict

    def of(self, label: str) -> float:
        """A case's floor: its own, never below the default (three runs estimate it roughly)."""
        return max(self.default, self.cases.get(label, 0.0))


@dataclass(frozen=True)
class NoiseReport:
    threshold: float
    runs: int
    comparisons: int  # case comparisons between pairs of identical runs
    verdicts: dict  # verdict -> count over those comparisons
    detected: dict  # slowdown factor -> share of comparisons called SLOWER
    spreads: dict  # case label -> (slowest - fastest) / fastest of its medians across runs
    floor: NoiseFloor  # measured from these runs
    used: NoiseFloor | None = None  # the floor the verdicts were given with, if any

    @property
    def false_rate(self) -> float:
        """Share of identical-code comparisons called FASTER or SLOWER."""
        wrong = self.verdicts.get("FASTER", 0) + self.verdicts.get("SLOWER", 0)
        return wrong / self.comparisons if self.comparisons else math.nan


def assess(runs: list[RunResult], threshold: float = 0.05,
           floor: NoiseFloor | None = None) -> NoiseReport:
    """Verdicts between every pair of ``runs`` (identical code), and with known slowdowns,
    given ``floor`` (measured on other runs) or none; and the floor these runs show."""
    if len(runs) < 2:
        raise ValueError("a noise study needs at least 2 runs")
    timings = [run_timings(r) for r in runs]
    counts = dict.fromkeys(VERDICTS, 0)
    detected = dict.fromkeys(SLOWDOWNS, 0)
    comparisons = 0
    for a, b in itertools.combinations(timings, 2):
        for row in compare_timings(a, b, threshold, floor):
            counts[row.verdict] += 1
            comparisons += 1
        for factor in SLOWDOWNS:
            slower = {k: t.scaled(factor) for k, t in b.items()}
            detected[factor] += sum(r.verdict == "SLOWER"
                                    for r in compare_timings(a, slower, threshold, floor))
    spreads, deviations = {}, {}
    for key in timings[0]:
        medians = [t[key].median for t in timings if key in t]
        if len(medians) == len(timings):
            spreads[case_label(key)] = max(medians) / min(medians) - 1
            deviations[case_label(key)] = float(np.std(np.log(medians), ddof=1))
    measured = NoiseFloor(float(np.median(list(deviations.values()))) if deviations else 0.0,
                          deviations)
    return NoiseReport(threshold, len(runs), comparisons, counts,
                       {f: n / comparisons if comparisons else math.nan
                        for f, n in detected.items()}, spreads, measured, floor)


def write_floor(report: NoiseReport, path, sources: list[str]) -> None:
    """The noise file that ``compare --noise`` and ``noise --noise`` read."""
    write_atomic(path, json.dumps({
        "tool": "gdbench-noise", "schema_version": NOISE_VERSION, "runs": sources,
        "threshold": report.threshold,
        "default": report.floor.default, "cases": report.floor.cases,
        "false_rate": report.false_rate, "detected": {str(k): v for k, v in
                                                      report.detected.items()}}, indent=1) + "\n")


def read_floor(text: str) -> NoiseFloor:
    """A noise floor from ``3%`` or ``0.03`` (every case), or from a noise file's path."""

    if Path(text).suffix == ".json" or os.path.lexists(text):
        d = load_json(text)
        if not isinstance(d, dict) or d.get("tool") != "gdbench-noise":
            raise ValueError(f"{text}: not a noise file written by gdbench noise")
        check_noise_version(d, text)
        return NoiseFloor(float(d["default"]), {k: float(v) for k, v in d["cases"].items()})
    value = parse_fraction(text, "noise")
    if not value < 1:
        raise ValueError(f"noise {text!r} must be below 100%")
    return NoiseFloor(value, {})
