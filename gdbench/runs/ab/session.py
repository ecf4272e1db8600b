"""``gdbench ab``: two sides measured in one session, interleaved, with a paired verdict per case.

A side is a kernel in this environment, the same kernels in another Python environment
(``python``), or a git revision's worktree run by this interpreter (``Side.of_revision``).

The session goes in blocks of rounds. Each block starts one fresh worker process per side
(``gdbench.runs.ab.worker``) and closes them after its rounds: what belongs to one process
(thread placement, where its code and heap sit, what it compiled) is drawn anew for every block.
In each round every undecided case gets one pair of windows: the cases in a random order that
changes every round, a case's two windows back to back, which side first drawn at random
(randomized multiple interleaved trials, Abedi and Brecht 2017). The two windows of a pair share
their nuisances (common random numbers): the same padding allocation before their buffers, and
the same CPU for the measuring thread, drawn anew for every pair, so that what a CPU or a layout
does to both cancels in the pair's ratio and is averaged over the pairs. A pair in which either
window was held back by other work (``gdbench.axes.contention``) is measured again, both
windows, up to ``RETRIES`` times, and never paired while contended. Each side's first window of
a case in a block is checked against the float64 reference before any of its times count.

How many rounds a block holds is chosen from the variance components and the costs measured as
the session goes (``gdbench.runs.ab.paired.best_rounds``); the interval is taken over blocks, at
the looks of the alpha-spending plan (``gdbench.runs.ab.paired``). A case is decided once latency
and throughput both are, and then leaves the session. The session ends when every case is
decided, at ``max_blocks``, or when the next block would not end within ``max_seconds``.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from dataclasses import asdict, dataclass, field
from types import SimpleNamespace

import numpy as np

from gdbench.core.reference import compare_step, loss_and_grad
from gdbench.files.versions import AB_VERSION
from gdbench.measure.environment import capture
from gdbench.axes.contention import contended
from gdbench.records.results import format_size
from gdbench.runs.ab import paired as stats
from gdbench.runs.ab.pool import CHECK_S, FIRST_S, Clock, Pool
from gdbench.runs.ab.sides import Side
from gdbench.runs.ab.worker import make_data

RETRIES = 2
METRICS = ("latency", "throughput")
FIRST_ROUNDS = 8  # rounds per block until two blocks show how the log ratio varies


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
class AbSettings:
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

    def __post_init__(self):
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


class Plan:
    """How many rounds the next block holds, whether it fits in the time left, and the alpha
    of each look (``gdbench.runs.ab.paired``: O'Brien-Fleming-type spending by the share of
    ``max_seconds`` elapsed, the final look taking what is left)."""

    def __init__(self, settings: AbSettings, clock: Clock):
        self.settings, self.clock = settings, clock
        self.spent = 0.0
        self.block_cost = self.round_cost = None  # seconds; a round's per case

    def measured(self, block_seconds: float, rounds: list[tuple[float, int]]) -> None:
        """A block took ``block_seconds``; its rounds (seconds, cases) as listed: what a round
        costs per case (the median of the rounds after the first, which compiles), and what the
        block cost besides (starting its processes, their first windows)."""
        later = rounds[1:] or rounds
        if not later:
            return
        self.round_cost = float(np.median([s / max(n, 1) for s, n in later]))
        self.block_cost = max(block_seconds - sum(self.round_cost * n for _, n in rounds), 0.0)

    def rounds(self, records, done: list[int]) -> int:
        """Rounds for the next block, after blocks of ``done`` rounds: as given,
        ``FIRST_ROUNDS`` until two blocks show how the log ratio varies, then what narrows the
        intervals most for the time left."""
        if self.settings.rounds_per_block:
            return self.settings.rounds_per_block
        if len(done) < 2 or self.round_cost is None:
            return FIRST_ROUNDS
        components = [c for r in records for c in r.components.values()]
        level = max(self.settings.alpha - self.spent, 1e-6)
        return stats.best_rounds(components, self.block_cost, self.round_cost * len(records),
                                 self.clock.left, done, level)

    def fits(self, rounds: int, cases: int) -> bool:
        """Whether a block of ``rounds`` rounds of ``cases`` cases ends before the time is up."""
        if self.round_cost is None:
            return self.clock.left > 0
        return self.block_cost + rounds * cases * self.round_cost <= self.clock.left

    def look(self, blocks: int, final: bool) -> float | None:
        """The alpha of a look after ``blocks`` blocks, or None when there is none now."""
        s = self.settings
        if blocks < s.min_blocks and not final:
            return None
        fraction = self.clock.elapsed / s.max_seconds
        if final:
            level = s.alpha - self.spent
        elif fraction <= stats.EARLY:
            level = stats.spent(s.alpha, fraction) - self.spent
            if stats.signed_ranks(blocks, level) is None:  # no interval at that level yet
                return None
        else:
            return None
        if level <= 0:
            return None
        self.spent += level
        return level


def run_ab(sides: tuple[Side, Side], cases: list[Case], settings: AbSettings, save=None,
           on_round=None) -> AbResult:
    """Measure ``cases`` on both sides, interleaved, until decided or out of time."""
    result = AbResult(capture(settings.device), asdict(settings),
                      {s.name: {"python": s.python, "path": s.path, "source": s.source}
                       for s in sides})
    records = [CaseRecord(c) for c in cases]
    result.cases = records
    save = save or (lambda r: None)
    references: dict = {}
    rng = random.Random(settings.seed)
    clock = Clock(settings.max_seconds, settings.window_s)
    plan = Plan(settings, clock)
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    final = False
    with tempfile.TemporaryDirectory(prefix="gdbench-ab-") as caches:
        folders = {s.name: os.path.join(caches, s.name) for s in sides}
        for block in range(settings.max_blocks):
            active = [r for r in records if r.status == "ok" and not r.decided]
            count = plan.rounds(active, [b["rounds"] for b in result.schedule])
            if not active or (block and not plan.fits(count, len(active))):
                break
            began, durations = time.monotonic(), []
            pool = Pool(sides, clock, folders)  # fresh processes for every block
            try:
                if block == 0:
                    _check_kernels(pool, active, sides, settings, clock)
                _warm(pool, [r for r in active if r.status == "ok"], sides, settings, clock)
                for _ in range(count):
                    active = [r for r in active if r.status == "ok"]
                    if not active or clock.out_of_time():
                        break
                    if on_round:
                        on_round(result.rounds, block, len(active))
                    start = time.monotonic()
                    result.measuring += _round(active, sides, pool, block, result.rounds,
                                               settings, references, rng, clock, cpus)
                    durations.append((time.monotonic() - start, len(active)))
                    result.rounds += 1
            finally:
                pool.close()
            result.blocks = block + 1
            plan.measured(time.monotonic() - began, durations)
            result.schedule.append({"block": block, "rounds": len(durations),
                                    "seconds": time.monotonic() - began,
                                    "block_cost_s": plan.block_cost,
                                    "round_cost_s": plan.round_cost})
            active = [r for r in active if r.status == "ok"]
            for record in active:
                record.components = {m: stats.variance_components(record.pairs, m)
                                     for m in METRICS}
            following = plan.rounds(active, [b["rounds"] for b in result.schedule])
            final = (result.blocks == settings.max_blocks
                     or not plan.fits(following, len(active)))
            level = plan.look(result.blocks, final)
            if level is not None:
                result.looks.append({"blocks": result.blocks, "seconds": clock.elapsed,
                                     "share": clock.elapsed / settings.max_seconds,
                                     "level": level, "final": final})
                _look(active, settings, result.blocks, level, final)
            if plan.round_cost is not None:
                for record in active:
                    record.best_rounds = stats.best_rounds(
                        list(record.components.values()), plan.block_cost, plan.round_cost,
                        settings.max_seconds, [], settings.alpha)
            result.seconds = clock.elapsed
            save(result)
            if final:
                break
    for record in records:
        if record.status != "ok":
            continue
        for side in sides:  # a side that never finished a window did not run
            if not any(w["side"] == side.name for w in record.windows):
                record.fail("error", side.name, "no window finished within the session's "
                            f"--max-time ({settings.max_seconds:g} s)")
                break
    undecided = [r for r in records if r.status == "ok" and not r.decided]
    if undecided and not final:  # ended before its planned end: the final look now
        level = plan.look(result.blocks, True)
        if level is not None:
            result.looks.append({"blocks": result.blocks, "seconds": clock.elapsed,
                                 "share": clock.elapsed / settings.max_seconds,
                                 "level": level, "final": True})
            _look(undecided, settings, result.blocks, level, True)
    result.complete = True
    result.seconds = clock.elapsed
    save(result)
    return result


def _failed(record: CaseRecord, side: str, answer: dict) -> None:
    """Record a side's failed request as the case's outcome."""
    if "unavailable" in answer:
        record.fail("unavailable", side, answer["unavailable"])
    else:
        record.fail("oom" if answer.get("oom") else "error", side, answer["error"])


def _check_kernels(pool: Pool, active, sides, settings: AbSettings, clock: Clock) -> None:
    """Whether each side can make each of its kernels here, before any window: a kernel it
    cannot make (unknown to it, not on this device or dtype) is UNAVAILABLE on that side, a
    side that cannot import it is an ERROR."""
    for side in sides:
        kernels = {}
        for record in active:
            kernels.setdefault(record.case.base if side.name == "base" else record.case.new,
                               []).append(record)
        for kernel, records in kernels.items():
            if clock.out_of_time():
                return
            answer = pool.ask(side.name, {"op": "check", "kernel": kernel,
                                          "device": settings.device, "dtype": settings.dtype,
                                          "d": settings.n_features},
                              min(CHECK_S, max(clock.hard - time.monotonic(), 1.0)))
            if not answer.get("ok"):
                for record in records:
                    _failed(record, side.name, answer)
                if answer.get("start"):  # the side's worker cannot start: nothing of it runs
                    for record in active:
                        _failed(record, side.name, answer)
                    return


def _warm(pool: Pool, active, sides, settings: AbSettings, clock: Clock) -> None:
    """Both sides' fresh workers import, compile and make the data of every case at once."""
    if not active:
        return
    cases = {side.name: [{"kernel": r.case.base if side.name == "base" else r.case.new,
                          "device": settings.device, "dtype": settings.dtype,
                          "n": r.case.n_samples, "d": settings.n_features,
                          "seed": settings.seed, "lr": settings.lr} for r in active]
             for side in sides}
    most = CHECK_S + FIRST_S * len(active)
    pool.warm(cases, min(most, max(clock.hard - time.monotonic(), 1.0)))


def _round(active, sides, pool, block, index, settings, references, rng, clock, cpus) -> float:
    """One pair of windows of every active case: the cases in a random order, the two windows
    of a case one right after the other, which side first drawn at random, both behind the same
    padding and on the same CPU; the pairs it makes. Returns the seconds spent in windows."""
    order = list(active)
    rng.shuffle(order)
    measuring = 0.0
    for record in order:
        if clock.out_of_time():
            break
        shared = {"padding": rng.randint(1, 1 << 20)}
        if cpus:
            shared["cpu"] = rng.choice(cpus)
        for attempt in range(1 + RETRIES):
            first = rng.random() < 0.5
            got = {}
            for side in (sides if first else sides[::-1]):
                got[side.name] = _window(pool, record, side, block, index, attempt, shared,
                                         settings, references, clock)
                if got[side.name] is None:
                    break
            measuring += sum(a.get("seconds", 0.0) for a in got.values() if a)
            if record.status != "ok" or any(a is None for a in got.values()):
                break
            if not any(a["contended"] for a in got.values()):
                base, new = (got[s.name] for s in sides)
                record.pairs.append({"round": index, "block": block, "base_first": first,
                                     "attempt": attempt, **{
                    m: math.log(window_median(new, m) / window_median(base, m))
                    for m in METRICS}})
                break
            if clock.out_of_time():
                break
    return measuring


def _window(pool: Pool, record: CaseRecord, side: Side, block: int, index: int, attempt: int,
            shared: dict, settings: AbSettings, references: dict, clock: Clock) -> dict | None:
    """One window of ``record`` on ``side`` (its answer, with ``contended``), or None when it
    failed or the session's time cut it."""
    case = record.case
    kernel = case.base if side.name == "base" else case.new
    check = not any(w["side"] == side.name and w["block"] == block for w in record.windows)
    request = {"kernel": kernel, "device": settings.device, "dtype": settings.dtype,
               "n": case.n_samples, "d": settings.n_features, "seed": settings.seed,
               "lr": settings.lr, "budget": settings.window_s, "check": check, **shared}
    if case.slowdown is not None:
        request["slowdown"] = case.slowdown if side.name == "new" else 0.0
    first = pool.first(side.name, kernel)
    timeout, own = clock.limit(side.name, kernel, first)
    began = time.monotonic()
    answer = pool.ask(side.name, request, timeout)
    if "error" in answer or "unavailable" in answer:
        if not (answer.get("stalled") and not own):  # cut by the session's end: not stuck
            _failed(record, side.name, answer)
        return None
    clock.took(side.name, kernel, first, time.monotonic() - began)
    if check:
        wrong = _check(answer["check"], case.n_samples, settings, references)
        if wrong:
            record.fail("wrong", side.name, wrong)
            return None
    answer["contended"] = contended(answer.get("contention"))
    record.windows.append({"side": side.name, "round": index, "block": block,
                           "attempt": attempt, "contended": answer["contended"],
                           **{k: answer.get(k) for k in ("latency", "throughput", "batch_size",
                                                         "contention", "seconds", "cpu",
                                                         "padding", "slowdown")}})
    return answer


def _check(got: dict, n: int, settings: AbSettings, references: dict) -> str | None:
    """How a side's first step disagrees with the float64 reference, or None. The reference of
    each problem is computed once a session; the data are made again only for it."""
    key = (n, settings.n_features, settings.dtype, settings.seed)
    if key not in references:
        x, y = make_data(*key)
        references[key] = loss_and_grad(x, y, np.zeros(settings.n_features))
        del x, y
    # compare_step reads only the shapes of the data once it has the reference
    x, y = np.broadcast_to(0.0, (n, settings.n_features)), np.broadcast_to(0.0, (n,))
    stepped = SimpleNamespace(dtype=settings.dtype, loss=got["loss"],
                              grad=np.asarray(got["grad"]), weight=np.asarray(got["weight"]))
    return compare_step(stepped, x, y, 0.0, settings.lr, references[key])


def _look(records, settings: AbSettings, blocks: int, level: float, final: bool) -> None:
    """The interval and verdict of each of ``records`` at ``level``; a case whose two metrics
    both have a verdict is decided and leaves the session."""
    for record in records:
        estimates = {m: stats.block_estimates(record.pairs, m) for m in METRICS}
        verdicts = {m: stats.paired(estimates[m], settings.threshold, settings.min_effect,
                                    level) for m in METRICS}
        record.verdicts = {m: v.to_dict() for m, v in verdicts.items()}
        counted = min(len(v) for v in estimates.values())
        if counted < settings.min_blocks:  # too few to trust their spread, whatever it says
            for v in record.verdicts.values():
                v.update(verdict="AMBIGUOUS", why=f"only {counted} block"
                         f"{'s' if counted != 1 else ''}: a verdict needs {settings.min_blocks}")
        elif all(v.verdict != "AMBIGUOUS" for v in verdicts.values()):
            record.decided_at = blocks


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
