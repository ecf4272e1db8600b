"""CPU threads of the libraries a step runs on, set together for a case and read back.

torch (``torch.set_num_threads``), Numba (``numba.set_num_threads``) and the BLAS and OpenMP
pools NumPy and torch call into (through threadpoolctl) are each set to the case's thread
count around everything the case runs, and restored after. Each library is set only once it
has been imported; the counts read back while a case runs are recorded with it, so a figure at
"1 thread" says which pools really had one.
"""

from __future__ import annotations

import importlib
import os
import sys
from contextlib import ExitStack, contextmanager

from threadpoolctl import threadpool_info, threadpool_limits


def usable_cpus() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def parse_threads(text: str) -> list[int]:
    """``"1,2"``: thread counts, each at least 1 and at most the usable CPUs, in order."""
    counts = []
    for token in text.split(","):
        if not token.strip():
            continue
        try:
            n = int(token)
        except ValueError:
            raise ValueError(f"thread count {token.strip()!r} is not a whole number") from None
        counts.append(n)
    return check_threads(counts)


def check_threads(counts) -> list[int]:
    counts = list(dict.fromkeys(counts))
    if not counts:
        raise ValueError("no thread count given")
    cpus = usable_cpus()
    for n in counts:
        if not (isinstance(n, int) and 1 <= n <= cpus):
            raise ValueError(f"thread count {n} is not between 1 and the {cpus} CPUs this "
                             "process may use")
    return counts


def thread_counts() -> dict:
    """The thread counts of the pools loaded now: torch, Numba, and each BLAS/OpenMP library."""
    counts = {}
    if "torch" in sys.modules:
        counts["torch"] = sys.modules["torch"].get_num_threads()
    if "numba" in sys.modules:
        counts["numba"] = sys.modules["numba"].get_num_threads()

    for pool in threadpool_info():
        counts[f"{pool['user_api']}:{pool['internal_api']}"] = pool["num_threads"]
    return counts


@contextmanager
def limit_threads(n: int, modules=()):
    """Every loaded pool at ``n`` threads inside the block; ``n`` = 0 changes nothing.

    ``modules`` (a kernel's ``requires``) are imported first, so that their pools are set
    from the start, the case's first step included.
    """
    if not n:
        yield
        return


    for module in modules:
        importlib.import_module(module)
    with ExitStack() as undo:
        undo.enter_context(threadpool_limits(limits=n))
        torch = sys.modules.get("torch")
        if torch is not None:
            before = torch.get_num_threads()
            torch.set_num_threads(n)
            undo.callback(torch.set_num_threads, before)
        numba = sys.modules.get("numba")
        if numba is not None:
            before = numba.get_num_threads()
            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
            undo.callback(numba.set_num_threads, before)
        yield
