"""A sweep's record: where it ran, with which settings, its cases, and the rooflines measured."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gdbench.records.results import SCHEMA_VERSION, CaseResult
from gdbench.records.roofline import Probe
from gdbench.records.stats import window_medians


@dataclass
class RunResult:
    """A sweep: where it ran, with which settings, and its cases so far."""

    environment: dict
    settings: dict
    cases: list[CaseResult] = field(default_factory=list)
    probe: dict | None = None  # gdbench.records.roofline.Probe.to_dict() of the run's device
    complete: bool = False  # False while running, and for a run that was interrupted
    rooflines: dict = field(default_factory=dict)  # bytes -> bytes/s measured in each round
    moved_aside: list = field(default_factory=list, repr=False)  # earlier files kept, not saved
    allreduce_floors: dict = field(default_factory=dict)  # ranks -> seconds, one per round

    @property
    def incomplete(self) -> str:
        """``incomplete: interrupted after 3 of 6 sizes`` for a run that did not end (its
        partial file), "" for one that did."""
        if self.complete:
            return ""
        planned = len(self.settings.get("sizes") or ()) or "?"
        started = len({c.spec.n_samples for c in self.cases})
        return (f"incomplete: interrupted after {len(self.cases)} case"
                f"{'s' if len(self.cases) != 1 else ''} in {started} of {planned} sizes")

    def roofline(self, case: CaseResult) -> float | None:
        """The roofline in bytes/s for ``case``, measured in this run; None if not probed.

        The median of the rounds' measurements at the case's own size where the run made them,
        else the probe's curve (or its levels, in results of gdbench 0.1.0).
        """
        values = case.rooflines or self.rooflines.get(case.spec.bytes_min)
        if values:
            return float(np.median(values))
        if not self.probe:
            return None

        return Probe.from_dict(self.probe).roofline(case.spec.bytes_min)

    def fraction(self, case: CaseResult, throughput: bool = False) -> float | None:
        """The case's effective bandwidth as a fraction of the roofline at its size.

        Where the roofline was measured in every round of the case's windows, each window is
        set against its own round's roofline and the median of those fractions is taken: the
        case and the probe saw the machine in the same state. Otherwise the median time is set
        against the roofline's median. None without samples or a roofline.
        """
        s = case.samples
        if s is None:
            return None
        values, windows = (s.batch, s.batch_window) if throughput else (s.step(), s.window)
        if values is None:
            return None
        rounds = case.rooflines or self.rooflines.get(case.spec.bytes_min)
        if rounds and windows is not None and len(np.unique(windows)) == len(rounds):
            rates = case.spec.bytes_min / window_medians(values, windows)
            return float(np.median(rates / np.asarray(rounds)))
        roofline = self.roofline(case)
        return None if roofline is None else case.spec.bytes_min / float(np.median(values)) / roofline

    def exceeds_roofline(self, case: CaseResult) -> bool:
        """The case streamed faster than the probe could: a measurement problem, not a result."""
        fractions = [self.fraction(case), self.fraction(case, throughput=True)]
        return any(f is not None and f > 1 for f in fractions)

    def case_dict(self, case: CaseResult) -> dict:
        d = case.to_dict()
        roofline = self.roofline(case) if case.samples is not None else None
        if roofline is not None:
            d["roofline_gbs"] = roofline / 1e9
            d["roofline_fraction"] = self.fraction(case)
            if case.throughput is not None:
                d["throughput_roofline_fraction"] = self.fraction(case, throughput=True)
            d["roofline_exceeded"] = self.exceeds_roofline(case)
        return d

    def to_dict(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, "tool": "gdbench", "complete": self.complete,
                "environment": self.environment, "settings": self.settings, "probe": self.probe,
                "rooflines": {str(k): v for k, v in self.rooflines.items()},
                "allreduce_floors": {str(k): v for k, v in self.allreduce_floors.items()},
                "cases": [self.case_dict(c) for c in self.cases]}

    @classmethod
    def from_dict(cls, d: dict) -> RunResult:
        return cls(d["environment"], d["settings"], [CaseResult.from_dict(c) for c in d["cases"]],
                   d.get("probe"), bool(d.get("complete", False)),
                   {int(k): list(v) for k, v in d.get("rooflines", {}).items()},
                   allreduce_floors={int(k): list(v) for k, v in
                                     d.get("allreduce_floors", {}).items()})
