"""The records of a ``gdbench ab`` session: its cases, settings, each case's record of windows,
pairs and verdicts, the session's result, and its file form (``slim``: the windows' medians in
place of their samples). ``gdbench.runs.ab.session`` runs the session that fills them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from gdbench.core.units import format_size
from gdbench.files.versions import AB_VERSION
from gdbench.runs.settings import Checked

METRICS = ("latency", "throughput")


@dataclass(frozen=True)
class Case:
    base: str  # kernel of the base side
    new: str
    n_samples: int
    # a calibrated slowdown of the new side (gdbench noise --paired): its every step made this
    # fraction longer by spinning, and the base side's steps wrapped alike without the spin
    slowdown: float | None = None

    @property
    def label(self) -> str:
        kernels = self.base if self.base == self.new else f"{self.new} vs {self.base}"
        if self.slowdown is not None:
            kernels += f" slowed {100 * self.slowdown:g}%"
        return f"{kernels} N={format_size(self.n_samples)}"


@dataclass(frozen=True)
class AbSettings(Checked):
    device: str = "cpu"
    sizes: tuple[int, ...] = (10**2, 10**3, 10**4, 10**5, 10**6, 10**7)
    n_features: int = 1
    dtype: str = "float32"
    threshold: float = 0.05  # SAME within it; --fail-on-regression fails beyond it
    min_effect: float = 0.02  # FASTER or SLOWER only beyond it
    alpha: float = 0.05  # spent over the looks: every interval covers with 1 - alpha at least
    window_s: float = 0.05  # sampling time of one window, latency and batches
    rounds_per_block: int | None = None  # None: chosen from the variance components
    min_blocks: int = 6  # blocks before the first look: the fewest a 95% interval needs
    max_blocks: int = 100
    max_seconds: float = 170.0
    lr: float = 0.01
    seed: int = 0

    def resolved(self, device: str) -> dict:
        """The settings checked, the sizes as whole numbers."""
        if not self.sizes or any(int(n) != n or n < 1 for n in self.sizes):
            raise ValueError(f"sizes must be positive whole numbers, got {list(self.sizes)}")
        if not 3 <= self.min_blocks <= self.max_blocks:
            raise ValueError(f"blocks: need 3 <= min blocks <= max blocks, got "
                             f"{self.min_blocks} and {self.max_blocks}")
        if self.rounds_per_block is not None and not 1 <= self.rounds_per_block <= 200:
            raise ValueError(f"rounds per block must be 1 to 200, got {self.rounds_per_block}")
        if not (self.window_s > 0 and math.isfinite(self.window_s)):
            raise ValueError(f"the window must last a positive time, got {self.window_s}")
        if not (self.max_seconds > 0 and math.isfinite(self.max_seconds)):
            raise ValueError(f"the time budget must be positive, got {self.max_seconds}")
        if 2 * self.window_s > self.max_seconds:
            raise ValueError(f"a pair of windows ({self.window_s:g} s each) does not fit in "
                             f"--max-time ({self.max_seconds:g} s)")
        if not 0 <= self.threshold < 10:
            raise ValueError(f"threshold must be a fraction such as 0.05, got {self.threshold}")
        if not 0 <= self.min_effect < 1:
            raise ValueError(f"the minimum effect must be a fraction such as 0.02, got "
                             f"{self.min_effect}")
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha must be between 0 and 0.5, got {self.alpha}")
        return {"sizes": tuple(int(n) for n in self.sizes)}


FAILURES = ("wrong", "error", "oom", "unavailable")  # a case's status when a side failed it


@dataclass
class CaseRecord:
    case: Case
    status: str = "ok"  # ok, or one of FAILURES on a side: then it left the session
    message: str = ""  # the one-line reason of a failure
    side: str | None = None  # the side it failed on
    windows: list = field(default_factory=list)  # every window of both sides
    pairs: list = field(default_factory=list)  # per round: {"round", "block", metric: log ratio}
    verdicts: dict = field(default_factory=dict)  # metric -> Paired.to_dict()
    components: dict = field(default_factory=dict)  # metric -> variance_components()
    best_rounds: int | None = None  # the rounds per block that suit this case best
    decided_at: int | None = None  # the block count of the look that decided it

    @property
    def decided(self) -> bool:
        return self.decided_at is not None

    def fail(self, status: str, side: str, reason: str) -> None:
        """Take the case out of the session: ``status`` (one of FAILURES) on ``side``."""
        if self.status == "ok":
            kernel = self.case.base if side == "base" else self.case.new
            self.status, self.side = status, side
            self.message = f"{side} side ({kernel}): {reason}"

    def to_dict(self) -> dict:
        return {**asdict(self.case), "label": self.case.label, "status": self.status,
                "side": self.side, "message": self.message, "decided_at": self.decided_at,
                "verdicts": self.verdicts, "components": self.components,
                "best_rounds_per_block": self.best_rounds, "pairs": self.pairs,
                "windows": self.windows}


@dataclass
class AbResult:
    environment: dict
    settings: dict
    sides: dict
    cases: list = field(default_factory=list)
    rounds: int = 0
    blocks: int = 0
    seconds: float = 0.0
    measuring: float = 0.0  # seconds inside windows, both sides
    schedule: list = field(default_factory=list)  # per block: rounds, seconds, costs
    looks: list = field(default_factory=list)  # per look: blocks, share of time, level
    complete: bool = False

    def to_dict(self) -> dict:
        return {"tool": "gdbench-ab", "schema_version": AB_VERSION, "complete": self.complete,
                "environment": self.environment, "settings": self.settings,
                "sides": self.sides, "rounds": self.rounds, "blocks": self.blocks,
                "seconds": self.seconds, "measuring_s": self.measuring,
                "measuring_share": self.measuring / self.seconds if self.seconds else None,
                "schedule": self.schedule, "looks": self.looks,
                "cases": [c.to_dict() for c in self.cases]}


def pair_cases(base: list[str], new: list[str], sizes) -> list[Case]:
    """Kernel i of the base side against kernel i of the new; one kernel against each of several."""
    if len(base) == 1 and len(new) > 1:
        base = base * len(new)
    if len(new) == 1 and len(base) > 1:
        new = new * len(base)
    if len(base) != len(new):
        raise ValueError(f"the sides name {len(base)} and {len(new)} kernels: give as many on "
                         "each, or one on either")
    # a pair named twice is measured once
    return list(dict.fromkeys(Case(b, n, size) for size in sizes for b, n in zip(base, new)))


def window_median(window: dict, metric: str) -> float:
    return float(np.median(window[metric]))


def slim(session: dict) -> dict:
    """``session`` (``AbResult.to_dict()``) with each window's samples replaced by their median
    (a one-element list) and their count (``latency_n``, ``throughput_n``): the pairs, the
    verdicts, a study's tables and the variance components come from the medians, and a
    session's samples can take 10 MB. The file says so (``"samples": "window medians"``)."""
    out = dict(session, samples="window medians")
    out["cases"] = []
    for case in session["cases"]:
        windows = []
        for w in case["windows"]:
            w = dict(w)
            for metric in ("latency", "throughput"):
                values = w.get(metric)
                if values:
                    w[metric], w[f"{metric}_n"] = [float(np.median(values))], len(values)
            windows.append(w)
        out["cases"].append(dict(case, windows=windows))
    return out
