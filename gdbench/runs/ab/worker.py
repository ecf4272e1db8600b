"""One side's worker of ``gdbench ab``: a process that measures windows when the parent asks.

It reads one JSON request per line on stdin and answers one JSON line on stdout. It is started
as a script, ``python .../gdbench/runs/ab/worker.py``, with the side's own gdbench first on the
path: a kernel in this environment, another Python environment's, or a git revision's
worktree. So it touches only what every version of gdbench has, the kernel protocol
(``make_kernel``, ``prepare``, ``step``, ``synchronize`` and the read-backs), and
NumPy; the data are this file's, and the sampling loop and the contention readings are this
gdbench's, loaded by path (``gdbench/measure/timing.py`` and ``gdbench/axes/contention.py``,
which import NumPy and the standard library alone), so that both sides are measured by the same code
whatever version of the kernels they run, and by the same loop as ``gdbench run``.

Every window is a fresh kernel instance, prepared on fresh copies of the data behind a
padding allocation of random size, so that where the buffers sit changes from window to
window (Mytkowicz et al., ASPLOS 2009; Stabilizer, ASPLOS 2013).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0]).resolve() == HERE:  # run as a script: not a package folder
    sys.path.pop(0)

import numpy as np  # noqa: E402


def _sibling(path: str, name: str):
    """A module of the gdbench this file belongs to, loaded by path (it imports only the
    standard library and NumPy): not the side's, which may lack it."""
    spec = importlib.util.spec_from_file_location(name, HERE.parents[1] / path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


timing = _sibling("measure/timing.py", "_gdbench_ab_timing")


def make_data(n: int, d: int, dtype: str, seed: int):
    """The problem every side steps on: ``x`` (N, D) standard normal, ``y = x w + noise``, in
    float64 for float64 cases and float32 otherwise (a kernel rounds to half precision)."""
    rng = np.random.default_rng(seed)
    host = np.float64 if dtype == "float64" else np.float32
    x = rng.standard_normal((n, d), dtype=host)
    y = x @ rng.uniform(1.0, 3.0, d).astype(host)
    y += 0.1 * rng.standard_normal(n, dtype=host)
    return x, y


BATCH_S = 2e-3  # a batch of back-to-back steps lasts at least this long


def window(kernel, budget: float, first: bool = True) -> dict:
    """One window of the sampling loop (``gdbench.measure.timing``) with its time rule: the
    warm-up (a case's first window in this process, for at most half of ``budget``; a
    millisecond of steps after, a twentieth of ``budget`` where that is less), then latency
    samples of the whole step (5 at least) for half of ``budget``, then batches of back-to-back steps (3 at least), each of K steps lasting at
    least ``BATCH_S`` by the latency samples' median, for the other half."""
    rule = timing.StopRule(precision=None, budget=budget / 2, min_samples=5, min_batches=3,
                           warmup=budget / 2)
    if first:
        timing.warm_up(kernel, rule)
    else:  # a millisecond, less in windows under 20 ms
        timing.rewarm(kernel, min(1e-3, budget / 20))
    timer = timing.HostTimer(kernel.synchronize)
    taken = timing.take_window(kernel, timer, rule, budget / 2, whole_step=True)
    step = float(np.median(taken.device[:, 0]))
    k = max(1, math.ceil(BATCH_S / max(step, 1e-9)))
    k, batches, _, _ = timing.measure_batches(kernel, timer, rule, step, budget / 2, k)
    return {"latency": taken.device[:, 0].tolist(), "throughput": batches.tolist(),
            "batch_size": k}


def _make_kernel():
    """The side's ``make_kernel``: ``gdbench.kernels.registry``'s, or ``gdbench.registry``'s in
    revisions of gdbench before its package was laid out by job."""
    try:
        from gdbench.kernels.registry import make_kernel
    except ImportError:
        from gdbench.registry import make_kernel
    return make_kernel


def slow_down(kernel, factor: float) -> list[float]:
    """Make every step of ``kernel`` ``1 + factor`` times as long as it is, by spinning after it
    for ``factor`` times what it took (a calibrated slowdown, for measuring what ``ab`` can
    find). Returns [seconds of wrapped steps, seconds of them spent spinning], which the window
    fills in: their ratio is the slowdown's true size, measured in this process."""
    step, synchronize, clock = kernel.step, kernel.synchronize, time.perf_counter
    spent = [0.0, 0.0]
    ticks = [clock() for _ in range(101)]
    half_tick = float(np.median(np.diff(ticks))) / 2  # the spin ends half a clock read late

    def slowed_step():
        start = clock()
        step()
        synchronize()
        done = clock()
        end = done + factor * (done - start) - half_tick
        now = done
        while now < end:
            now = clock()
        spent[0] += now - start
        spent[1] += now - done

    kernel.step = slowed_step
    return spent


def problem(request: dict, data: dict):
    """The data of the request's problem, made once a process and kept while they fit in a
    quarter of the memory (the least recently used go first): regenerating 10^7 samples costs
    about half a second a window."""
    key = (request["n"], request["d"], request["dtype"], request["seed"])
    if key in data:
        data[key] = data.pop(key)  # the most recently used last
        return data[key]
    x, y = make_data(*key)
    limit = _memory() // 4
    while data and sum(a.nbytes + b.nbytes for a, b in data.values()) + x.nbytes + y.nbytes \
            > limit:
        data.pop(next(iter(data)))
    data[key] = (x, y)
    return x, y


def _memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def measure(request: dict, data: dict, watch_class, seen: set) -> dict:
    """One window of one case, verified on its first step when asked; ``seen``: the cases
    this process has measured a window of (a first window warms up in full).

    ``padding``: the size of the allocation made before the fresh buffers (random when not
    given); ``cpu``: the CPU this thread measures on (the pools the first step started keep
    theirs). The parent gives both windows of a pair the same of each."""
    x, y = problem(request, data)
    size = request.get("padding") or int(np.random.default_rng().integers(1, 1 << 20))
    padding = np.ones(size, np.uint8)  # shifts the next allocations
    x, y = x.copy(), y.copy()
    kernel = _make_kernel()(request["kernel"], request["device"], request["dtype"])
    kernel.prepare(x, y, w0=0.0, lr=request["lr"])
    kernel.step()
    kernel.synchronize()
    answer = {"padding": size}
    if request.get("check"):
        answer["check"] = {"loss": float(kernel.loss),
                           "grad": np.asarray(kernel.grad, dtype=np.float64).tolist(),
                           "weight": np.asarray(kernel.weight, dtype=np.float64).tolist()}
    slowdown = request.get("slowdown")
    spent = slow_down(kernel, slowdown) if slowdown is not None else None
    cpu = request.get("cpu")
    everywhere = None
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        everywhere = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {cpu})  # this thread only
        answer["cpu"] = cpu
    try:
        watch = watch_class()
        began = time.perf_counter()
        key = tuple(request.get(k) for k in ("kernel", "device", "dtype", "n", "d"))
        answer.update(window(kernel, request["budget"], first=key not in seen))
        seen.add(key)
        answer["seconds"] = time.perf_counter() - began
        answer["contention"] = watch.stop()
    finally:
        if everywhere is not None:
            os.sched_setaffinity(0, everywhere)
    answer["loss"] = float(kernel.loss)
    if spent is not None and spent[0] > spent[1]:
        answer["slowdown"] = spent[0] / (spent[0] - spent[1]) - 1  # as it came out
    del kernel, padding
    return answer


def check(request: dict) -> dict:
    """Whether the side can make the request's kernel for its device and dtype, and take its
    features: ``unavailable`` with the kernel's reason when not."""
    kernel = _make_kernel()(request["kernel"], request["device"], request["dtype"])
    most = getattr(kernel, "max_features", None)
    if most is not None and request["d"] > most:
        return {"unavailable": f"kernel {request['kernel']} supports at most {most} "
                               f"feature(s), not {request['d']}"}
    return {"ok": True}


def warm(request: dict, data: dict) -> dict:
    """Make, prepare and step each case of the request once, untimed: the backend is imported,
    the step compiled (or loaded from the side's cache) and the data made before the block's
    first window, while the other side's worker does the same. A case that fails is left for
    its window to report."""
    failed = 0
    for case in request["cases"]:
        try:
            x, y = problem(case, data)
            kernel = _make_kernel()(case["kernel"], case["device"], case["dtype"])
            kernel.prepare(x.copy(), y.copy(), w0=0.0, lr=case["lr"])
            kernel.step()
            kernel.synchronize()
            del kernel
        except Exception:  # the case's window says what it is
            failed += 1
    return {"ok": True, "failed": failed}


OOM_WORDS = ("memoryerror", "outofmemory", "out of memory", "can't allocate memory",
             "unable to allocate")


def _answer(exc: BaseException) -> dict:
    """The parent's record of a failed request: the one-line reason, and whether memory ran
    out (then the case is OOM rather than an error)."""
    text = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return {"error": text, "oom": any(w in text.lower() for w in OOM_WORDS)}


def _die_with_parent() -> None:
    """End this process when the one that started it ends, even while stopped: Linux's
    parent-death signal (SIGKILL), set before the parent may stop it; elsewhere a thread that
    watches the parent (it cannot run while the process is stopped)."""
    parent = int(os.environ.get("GDBENCH_AB_PARENT", "0") or 0)
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    else:
        import threading

        def watch():
            while os.getppid() == parent or not parent:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if parent and os.getppid() != parent:  # it died before the signal was asked for
        os._exit(1)


def main() -> None:
    _die_with_parent()
    # Answers go to a private copy of stdout; anything a backend prints goes to stderr.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    watch_class = _sibling("axes/contention.py", "_gdbench_ab_contention").Watch
    data: dict = {}
    seen: set = set()
    answers.write(json.dumps({"ready": True, "python": sys.executable}) + "\n")
    answers.flush()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request.get("op") == "check":
                answer = check(request)
            elif request.get("op") == "warm":
                answer = warm(request, data)
            else:
                answer = measure(request, data, watch_class, seen)
        except ValueError as exc:  # make_kernel's word for a kernel that cannot run here
            answer = ({"unavailable": str(exc).splitlines()[0]} if request.get("op") == "check"
                      else _answer(exc))
        except Exception as exc:  # the parent records it as the case's failure
            answer = _answer(exc)
            data.clear()  # memory that ran out is given back before the next case
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
