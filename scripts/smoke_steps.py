"""The GPU check's first stage: one small persistent launch of each kernel that runs K steps in
one launch or call, checked against K float64 steps, before anything that could hang for long.

    python scripts/smoke_steps.py [--device cuda|cpu] [--k 10] [--sizes 1e4,1e6]

A kernel whose launch waits at its barrier for longer than it should fails here, in its bound
(the script runs under ``timeout 30``), and says so; the stages after it still run. Exit status 1
when any kernel was wrong or failed, 0 when every one that runs here was right.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import gdbench  # noqa: E402
from gdbench.core.protocol import run_steps  # noqa: E402
from gdbench.core.reference import compare_steps  # noqa: E402
from gdbench.runs.sweep import parse_sizes  # noqa: E402


def persistent_kernels(device: str) -> list[str]:
    """The kernels here whose K steps run in one launch or call rather than a loop."""
    return [k.name for k in gdbench.list_kernels(device)
            if k.available_on(device) and k.many_steps not in ("a loop of steps",)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--sizes", default="1e4,1e6")
    args = p.parse_args(argv)
    failed = 0
    names = persistent_kernels(args.device)
    if not names:
        print(f"no kernel runs K steps in one launch on {args.device} here")
    for name in names:
        for n in parse_sizes(args.sizes):
            rng = np.random.default_rng(n)
            x = rng.standard_normal((n, 1)).astype(np.float32)
            y = (2 * x[:, 0] + 0.1 * rng.standard_normal(n)).astype(np.float32)
            began = time.perf_counter()
            try:
                kernel = gdbench.make_kernel(name, args.device, "float32")
                kernel.prepare(x, y, w0=0.0, lr=0.01)
                plan = getattr(kernel, "many_steps_plan", lambda k: kernel.many_steps)(args.k)
                run_steps(kernel, args.k)
                kernel.synchronize()
                wrong = compare_steps(kernel, x, y, 0.0, 0.01, args.k)
            except Exception as exc:  # the stage reports it and the check goes on
                wrong = f"{type(exc).__name__}: {exc}".splitlines()[0]
                plan = "?"
            seconds = time.perf_counter() - began
            status = "ok" if wrong is None else f"FAILED: {wrong}"
            print(f"{name} N={n:.0e} K={args.k} ({plan}): {status} in {seconds:.2f} s",
                  flush=True)
            failed += wrong is not None
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
