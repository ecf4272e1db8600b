"""The bisect measured in docs/bisect.md: a throwaway repository of a plugin kernel, eight commits
after GOOD, one of which makes its step 10% slower, searched by ``gdbench bisect``.

    python scripts/bisect_demo.py OUT [gdbench bisect options]

The kernel is numpy-manual whose step spins, after it, for SLOWDOWN times what it took: a
calibrated slowdown, 0 up to the fifth commit and 0.10 from it on. The repository is made in a
temporary folder and removed; OUT receives bisect.json, bisect.md and bisect.png.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

KERNEL = '''"""A plugin kernel whose commits change its speed (scripts/bisect_demo.py)."""
import time

from gdbench.kernels.numpy_manual import NumpyManual

SLOWDOWN = {slowdown}


class Demo(NumpyManual):
    name = "demo"

    def step(self):
        start = time.perf_counter()
        super().step()
        done = time.perf_counter()
        end = done + SLOWDOWN * (done - start)
        while time.perf_counter() < end:
            pass
'''
HISTORY = [("Read the data once", 0.0), ("Name the phases", 0.0), ("Tidy the tests", 0.0),
           ("Check the gradient's shape", 0.0), ("Copy the residual before the update", 0.10),
           ("Document the kernel", 0.10), ("Release 1.1", 0.10), ("Start 1.2", 0.10)]


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=demo", "-c",
                    "user.email=demo@example.com", *args], check=True, capture_output=True)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gdbench-bisect-demo-") as folder:
        repo = Path(folder) / "demo"
        repo.mkdir()
        git(repo, "init", "-q")
        (repo / "demo_kernel.py").write_text(KERNEL.format(slowdown=0.0))
        git(repo, "add", ".")
        git(repo, "commit", "-q", "-m", "GOOD: the demo kernel")
        for subject, slowdown in HISTORY:
            source = KERNEL.format(slowdown=slowdown)
            if (repo / "demo_kernel.py").read_text() == source:
                (repo / "NOTES").write_text(subject + "\n")
            else:
                (repo / "demo_kernel.py").write_text(source)
            git(repo, "add", ".")
            git(repo, "commit", "-q", "-m", subject)
        dist = Path(folder) / "demo_kernel-1.0.dist-info"  # the plugin, installed by path
        dist.mkdir()
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-kernel\nVersion: 1.0\n")
        (dist / "entry_points.txt").write_text("[gdbench.kernels]\ndemo = demo_kernel:Demo\n")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([folder, str(ROOT)]))
        command = [sys.executable, "-m", "gdbench", "bisect", "HEAD~8", "HEAD", "--kernels",
                   "demo", "--device", "cpu", "--sizes", "1e4,1e6", *argv[1:],
                   "--out", str(out / "bisect.json"), "--markdown", str(out / "bisect.md"),
                   "--plot", str(out)]
        print("$ " + " ".join(command[1:]), flush=True)
        return subprocess.run(command, cwd=repo, env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
