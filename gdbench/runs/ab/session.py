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
from dataclasses import asdict
from types import SimpleNamespace

import numpy as np

from gdbench.axes.contention import contended
from gdbench.core.reference import compare_step, loss_and_grad
from gdbench.measure.environment import capture
from gdbench.runs.ab import paired as stats
from gdbench.runs.ab.pool import CHECK_S, FIRST_S, Clock, Pool
from gdbench.runs.ab.records import METRICS, AbResult, AbSettings, Case, CaseRecord, window_median
from gdbench.runs.ab.sides import Side
from gdbench.runs.ab.worker import make_data

RETRIES = 2
FIRST_ROUNDS = 8  # rounds per block until two blocks show how the log ratio varies


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
