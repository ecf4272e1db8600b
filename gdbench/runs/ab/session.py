"""``gdbench ab``: two sides measured in one session, interleaved, with a paired verdict per case.

A side is a kernel in this environment, the same kernels in another Python environment
(``python``), or a git revision's worktree run by this interpreter (``Side.of_revision``).

The session goes in blocks of rounds. Each block starts one fresh worker process per side
(``gdbench.runs.ab.worker``) and closes them after ``rounds_per_block`` rounds: what belongs to one
process (thread placement, where its code and heap sit, what it compiled) is drawn anew for
every block. In each round every undecided case gets one window on each side, the cases in a
random order that changes every round and a case's two windows back to back, which side first
drawn at random (randomized multiple interleaved trials, Abedi and Brecht 2017): the two
windows of a pair are seconds closer than a round is long, so that the drift between them is
as small as it can be. Each window is of a fresh kernel instance on fresh buffers. A window that another process held back (``gdbench.measure.contention``) is measured
again, up to ``RETRIES`` times, and never paired while contended. Each side's first window of a
case in a block is checked against the float64 reference before any of its times count.

A block's log ratio is the mean of its rounds'; blocks are independent (fresh processes, other
minutes), so the interval is taken over blocks (``gdbench.runs.ab.paired``), at each look of the
schedule; a case is decided once latency and throughput both are, and then leaves the session.
The session ends when every case is decided, at ``max_blocks``, or past ``max_seconds``.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from types import SimpleNamespace

import numpy as np

from gdbench.core.reference import compare_step, loss_and_grad
from gdbench.files.versions import AB_VERSION
from gdbench.measure.environment import capture
from gdbench.records.readings import contended
from gdbench.records.results import format_size
from gdbench.runs.ab.paired import block_means, look_rounds, paired, variance_components
from gdbench.runs.ab.sides import START_S, Side, Worker, WorkerFailed
from gdbench.runs.ab.worker import make_data

RETRIES = 2
METRICS = ("latency", "throughput")


@dataclass(frozen=True)
class Case:
    base: str  # kernel of the base side
    new: str
    n_samples: int

    @property
    def label(self) -> str:
        kernels = self.base if self.base == self.new else f"{self.new} vs {self.base}"
        return f"{kernels} N={format_size(self.n_samples)}"


@dataclass(frozen=True)
class AbSettings:
    device: str = "cpu"
    sizes: tuple[int, ...] = (10**2, 10**3, 10**4, 10**5, 10**6, 10**7)
    n_features: int = 1
    dtype: str = "float32"
    threshold: float = 0.05
    alpha: float = 0.05
    window_s: float = 0.05  # sampling time of one window, latency and batches
    rounds_per_block: int = 3  # rounds measured by one pair of fresh worker processes
    min_blocks: int = 4  # blocks before the first look
    max_blocks: int = 12
    look_every: int = 2  # blocks between looks
    max_seconds: float = 170.0
    lr: float = 0.01
    seed: int = 0

    def __post_init__(self):
        if not 3 <= self.min_blocks <= self.max_blocks:
            raise ValueError(f"blocks: need 3 <= min blocks <= max blocks, got "
                             f"{self.min_blocks} and {self.max_blocks}")
        if not 1 <= self.rounds_per_block <= 100:
            raise ValueError(f"rounds per block must be 1 to 100, got {self.rounds_per_block}")
        if not (self.window_s > 0 and math.isfinite(self.window_s)):
            raise ValueError(f"the window must last a positive time, got {self.window_s}")
        if not (self.max_seconds > 0 and math.isfinite(self.max_seconds)):
            raise ValueError(f"the time budget must be positive, got {self.max_seconds}")
        if 2 * self.window_s > self.max_seconds:
            raise ValueError(f"a pair of windows ({self.window_s:g} s each) does not fit in "
                             f"--max-time ({self.max_seconds:g} s)")
        if not 0 <= self.threshold < 10:
            raise ValueError(f"threshold must be a fraction such as 0.05, got {self.threshold}")

    @property
    def looks(self) -> list[int]:
        """The block counts at which the data are looked at."""
        return look_rounds(self.min_blocks, self.max_blocks, self.look_every)

    @property
    def level(self) -> float:
        """The level of each look: alpha over the looks of the schedule and a final one."""
        return self.alpha / (len(self.looks) + 1)


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
                "verdicts": self.verdicts, "components": self.components, "pairs": self.pairs,
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
    complete: bool = False

    def to_dict(self) -> dict:
        return {"tool": "gdbench-ab", "schema_version": AB_VERSION, "complete": self.complete,
                "environment": self.environment, "settings": self.settings,
                "sides": self.sides, "rounds": self.rounds, "blocks": self.blocks,
                "seconds": self.seconds,
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


CHECK_S = 120.0  # a side makes a kernel (imports its backend) within this long
FIRST_S = 90.0  # a process's first window of a kernel (a compile) ends within this long ...
LATER_S = 30.0  # ... and any later one within this long,
STALL_FACTOR = 4  # or within 4 times the longest of the same kind so far on that side


def grace(max_seconds: float) -> float:
    """How long past ``max_seconds`` a window that started in time may run before it is cut."""
    return min(30.0, max(5.0, 0.25 * max_seconds))


class _Clock:
    """The session's time: no window starts after ``max_seconds``, none runs past
    ``max_seconds + grace``, and no window runs far longer than its side's earlier ones."""

    def __init__(self, settings: AbSettings):
        self.settings = settings
        self.start = time.monotonic()
        self.soft = self.start + settings.max_seconds
        self.hard = self.soft + grace(settings.max_seconds)
        self.longest: dict = {}  # (side, kernel, first in its process) -> seconds

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def out_of_time(self) -> bool:
        return time.monotonic() > self.soft

    def limit(self, side: str, kernel: str, first: bool) -> tuple[float, bool]:
        """Seconds the next window may take, and whether that is the window's own bound (a
        stall when passed) rather than what is left of the session."""
        floor = FIRST_S if first else LATER_S
        own = max(floor, 20 * self.settings.window_s,
                  STALL_FACTOR * self.longest.get((side, kernel, first), 0.0))
        left = max(self.hard - time.monotonic(), 0.0)
        return (own, True) if own <= left else (left, False)

    def took(self, side: str, kernel: str, first: bool, seconds: float) -> None:
        key = (side, kernel, first)
        self.longest[key] = max(self.longest.get(key, 0.0), seconds)


class _Pool:
    """A block's worker of each side: started when first needed, and again after one died.
    Only the side being asked runs; the other's worker is stopped meanwhile."""

    def __init__(self, sides, clock: _Clock):
        self.sides, self.clock = {s.name: s for s in sides}, clock
        self.workers: dict = {}
        self.ran: dict = {}  # side -> kernels its current worker has measured

    def first(self, side: str, kernel: str) -> bool:
        return kernel not in self.ran.get(side, set())

    def ask(self, side: str, request: dict, timeout: float) -> dict:
        worker = self.workers.get(side)
        if worker is None:
            try:
                worker = Worker(self.sides[side], min(START_S, max(timeout, 1.0)))
            except WorkerFailed as exc:
                return {"error": str(exc), "died": True, "start": True}
            self.workers[side], self.ran[side] = worker, set()
        for name, other in self.workers.items():
            (other.resume if name == side else other.pause)()
        answer = worker.ask(request, timeout)
        if answer.get("died"):  # a fresh worker takes its place for the other cases
            worker.close()
            del self.workers[side]
        elif request.get("op") != "check":
            self.ran[side].add(request["kernel"])
        return answer

    def close(self) -> None:
        for worker in self.workers.values():
            worker.close()
        self.workers.clear()


def run_ab(sides: tuple[Side, Side], cases: list[Case], settings: AbSettings, save=None,
           on_round=None) -> AbResult:
    """Measure ``cases`` on both sides, interleaved, until decided or out of budget."""
    result = AbResult(capture(settings.device), asdict(settings) | {"looks": settings.looks,
                                                                    "level": settings.level},
                      {s.name: {"python": s.python, "path": s.path, "source": s.source}
                       for s in sides})
    records = [CaseRecord(c) for c in cases]
    result.cases = records
    save = save or (lambda r: None)
    references = {}
    shuffle = random.Random(settings.seed)
    clock = _Clock(settings)
    for block in range(settings.max_blocks):
        active = [r for r in records if r.status == "ok" and not r.decided]
        if not active or (block and clock.out_of_time()):
            break
        pool = _Pool(sides, clock)  # fresh processes for every block
        try:
            if block == 0:
                _check_kernels(pool, active, sides, settings, clock)
            for _ in range(settings.rounds_per_block):
                active = [r for r in active if r.status == "ok"]
                if not active or clock.out_of_time():
                    break
                if on_round:
                    on_round(result.rounds, block, len(active))
                _round(active, sides, pool, block, result.rounds, settings, references,
                       shuffle, clock)
                result.rounds += 1
        finally:
            pool.close()
        result.blocks = block + 1
        if result.blocks in settings.looks:
            _look([r for r in active if r.status == "ok"], settings, result.blocks)
        result.seconds = clock.elapsed
        save(result)
    for record in records:
        if record.status != "ok":
            continue
        for side in sides:  # a side that never finished a window did not run
            if not any(w["side"] == side.name for w in record.windows):
                record.fail("error", side.name, "no window finished within the session's "
                            f"--max-time ({settings.max_seconds:g} s)")
                break
        else:
            if not record.decided:  # the final look, for those the schedule left undecided
                _look([record], settings, result.blocks, final=True)
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


def _check_kernels(pool: _Pool, active, sides, settings: AbSettings, clock: _Clock) -> None:
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


def _round(active, sides, pool, block, index, settings, references, shuffle, clock) -> None:
    """One window of every active case on each side: the cases in a random order, the two
    windows of a case one right after the other, which side first drawn at random; the pairs
    it makes."""
    order = list(active)
    shuffle.shuffle(order)
    for record in order:
        if clock.out_of_time():
            return
        first = shuffle.random() < 0.5
        got = {}
        for side in (sides if first else sides[::-1]):
            if record.status != "ok":
                break
            got[side.name] = _window(pool, record, side, block, index, settings, references,
                                     clock)
        base, new = (got.get(s.name) for s in sides)
        if record.status == "ok" and base and new:
            record.pairs.append({"round": index, "block": block, "base_first": first, **{
                m: math.log(window_median(new, m) / window_median(base, m)) for m in METRICS}})


def _window(pool: _Pool, record: CaseRecord, side: Side, block: int, index: int,
            settings: AbSettings, references: dict, clock: _Clock) -> dict | None:
    """One uncontended window of ``record`` on ``side`` (its answer), or None."""
    case = record.case
    kernel = case.base if side.name == "base" else case.new
    check = not any(w["side"] == side.name and w["block"] == block for w in record.windows)
    request = {"kernel": kernel, "device": settings.device, "dtype": settings.dtype,
               "n": case.n_samples, "d": settings.n_features, "seed": settings.seed,
               "lr": settings.lr, "budget": settings.window_s, "check": check}
    for attempt in range(1 + RETRIES):
        if attempt and clock.out_of_time():
            return None
        first = pool.first(side.name, kernel)
        timeout, own = clock.limit(side.name, kernel, first)
        began = time.monotonic()
        answer = pool.ask(side.name, request, timeout)
        if "error" in answer or "unavailable" in answer:
            if answer.get("stalled") and not own:  # cut by the session's end, not stuck
                return None
            _failed(record, side.name, answer)
            return None
        clock.took(side.name, kernel, first, time.monotonic() - began)
        if check:
            wrong = _check(answer["check"], case.n_samples, settings, references)
            if wrong:
                record.fail("wrong", side.name, wrong)
                return None
            request["check"] = check = False
        busy = contended(answer.get("contention"))
        record.windows.append({"side": side.name, "round": index, "block": block,
                               "attempt": attempt, "contended": busy,
                               **{k: answer[k] for k in ("latency", "throughput", "batch_size",
                                                         "contention")}})
        if not busy:
            return answer
    return None


def _check(got: dict, n: int, settings: AbSettings, references: dict) -> str | None:
    """How a side's first step disagrees with the float64 reference, or None."""
    key = (n, settings.n_features, settings.dtype, settings.seed)
    if key not in references:
        references.clear()
        x, y = make_data(*key)
        references[key] = (x, y, loss_and_grad(x, y, np.zeros(settings.n_features)))
    x, y, reference = references[key]
    stepped = SimpleNamespace(dtype=settings.dtype, loss=got["loss"],
                              grad=np.asarray(got["grad"]), weight=np.asarray(got["weight"]))
    return compare_step(stepped, x, y, 0.0, settings.lr, reference)


def _look(records, settings: AbSettings, blocks: int, final: bool = False) -> None:
    for record in records:
        means = {m: block_means(record.pairs, m) for m in METRICS}
        verdicts = {m: paired(means[m], settings.threshold, settings.level) for m in METRICS}
        record.verdicts = {m: v.to_dict() for m, v in verdicts.items()}
        record.components = {m: variance_components(record.pairs, m) for m in METRICS}
        counted = min(len(v) for v in means.values())
        if counted < settings.min_blocks:  # too few to trust their spread, whatever it says
            for v in record.verdicts.values():
                v.update(verdict="AMBIGUOUS", why=f"only {counted} block"
                         f"{'s' if counted != 1 else ''}: a verdict needs {settings.min_blocks}")
        elif all(v.verdict != "AMBIGUOUS" for v in verdicts.values()) and not final:
            record.decided_at = blocks


