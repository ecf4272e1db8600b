"""The time of an ``ab`` session and the worker processes of a block.

``Clock``: no window starts after ``--max-time``, none runs past it by more than a grace, and
no window runs far longer than its side's earlier ones (a stuck side is ended, not waited on).
``Pool``: a block's worker of each side, started when first needed and again after one died,
with the per-side compile caches that let a fresh process load what an earlier one compiled.
Only the side being asked runs; the other side's process group is stopped meanwhile.
"""

from __future__ import annotations

import os
import time

from gdbench.runs.ab.sides import START_S, Worker, WorkerFailed

CHECK_S = 120.0  # a side makes a kernel (imports its backend) within this long
FIRST_S = 90.0  # a process's first window of a kernel (a compile) ends within this long ...
LATER_S = 30.0  # ... and any later one within this long,
STALL_FACTOR = 4  # or within 4 times the longest of the same kind on that side so far


def grace(max_seconds: float) -> float:
    """How long past ``max_seconds`` a window that started in time may run before it is cut."""
    return min(30.0, max(5.0, 0.25 * max_seconds))


class Clock:
    """The session's time."""

    def __init__(self, max_seconds: float, window_s: float):
        self.window_s = window_s
        self.start = time.monotonic()
        self.budget = max_seconds
        self.soft = self.start + max_seconds
        self.hard = self.soft + grace(max_seconds)
        self.longest: dict = {}  # (side, kernel, first in its process) -> seconds

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    @property
    def left(self) -> float:
        """Seconds until no window may start."""
        return self.soft - time.monotonic()

    def out_of_time(self) -> bool:
        return time.monotonic() > self.soft

    def limit(self, side: str, kernel: str, first: bool) -> tuple[float, bool]:
        """Seconds the next window may take, and whether that is the window's own bound (a
        stall when passed) rather than what is left of the session."""
        floor = FIRST_S if first else LATER_S
        own = max(floor, 20 * self.window_s,
                  STALL_FACTOR * self.longest.get((side, kernel, first), 0.0))
        left = max(self.hard - time.monotonic(), 0.0)
        return (own, True) if own <= left else (left, False)

    def took(self, side: str, kernel: str, first: bool, seconds: float) -> None:
        key = (side, kernel, first)
        self.longest[key] = max(self.longest.get(key, 0.0), seconds)


# Where each backend keeps what it compiled, by environment variable: a fresh worker process
# loads what an earlier one of its side compiled instead of compiling again (Inductor's FX graph
# and AOTAutograd caches, Numba's cache=True functions, JAX's persistent compilation cache,
# Triton's kernels, CuPy's). Each side has its own folder: the two sides may run other code.
CACHES = {"TORCHINDUCTOR_CACHE_DIR": "inductor", "TORCHINDUCTOR_FX_GRAPH_CACHE": None,
          "TORCHINDUCTOR_AUTOGRAD_CACHE": None, "NUMBA_CACHE_DIR": "numba",
          "JAX_COMPILATION_CACHE_DIR": "jax", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": None,
          "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": None, "TRITON_CACHE_DIR": "triton",
          "CUPY_CACHE_DIR": "cupy"}
SWITCHES = {"TORCHINDUCTOR_FX_GRAPH_CACHE": "1", "TORCHINDUCTOR_AUTOGRAD_CACHE": "1",
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def cache_env(folder) -> dict:
    """The environment variables that put a side's compile caches in ``folder``; a variable
    the user set is kept as it is."""
    env = {}
    for name, sub in CACHES.items():
        if name in os.environ:
            continue
        env[name] = os.path.join(folder, sub) if sub else SWITCHES[name]
    return env


class Pool:
    """A block's worker of each side. ``caches``: a folder per side for its compile caches."""

    def __init__(self, sides, clock: Clock, caches: dict | None = None):
        self.sides, self.clock = {s.name: s for s in sides}, clock
        self.caches = caches or {}
        self.workers: dict = {}
        self.ran: dict = {}  # side -> kernels its current worker has measured
        self.started = 0  # workers started, for the session's record of what it cost

    def first(self, side: str, kernel: str) -> bool:
        return kernel not in self.ran.get(side, set())

    def _worker(self, side: str, timeout: float):
        """The side's worker, started if it is not; an answer that says why when it cannot."""
        worker = self.workers.get(side)
        if worker is None:
            try:
                worker = Worker(self.sides[side], min(START_S, max(timeout, 1.0)),
                                cache_env(self.caches[side]) if side in self.caches else None)
            except WorkerFailed as exc:
                return {"error": str(exc), "died": True, "start": True}
            self.workers[side], self.ran[side] = worker, set()
            self.started += 1
        return worker

    def warm(self, cases: dict, timeout: float) -> None:
        """Start both sides' workers and have each make, prepare and step its ``cases`` (side
        -> list of requests) at the same time: imports and compiles of a block's processes
        overlap, before any window. A worker that fails or stalls here is closed; its side
        starts again, and says why, at its first window."""
        started = {}
        for side, requests in cases.items():
            worker = self._worker(side, timeout)
            if isinstance(worker, dict):
                continue
            worker.resume()
            worker.send({"op": "warm", "cases": requests})
            started[side] = worker
        deadline = time.monotonic() + timeout
        for side, worker in started.items():
            answer = worker.receive(max(deadline - time.monotonic(), 0.0))
            if answer.get("died"):
                worker.close()
                del self.workers[side]
            elif not answer.get("failed"):  # every step compiled: later windows are not first
                self.ran[side].update(r["kernel"] for r in cases[side])

    def ask(self, side: str, request: dict, timeout: float) -> dict:
        worker = self._worker(side, timeout)
        if isinstance(worker, dict):
            return worker
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
