"""The two sides of ``gdbench ab`` and their worker processes: a kernel in this environment,
another Python environment, or a git revision's cached worktree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

WORKER = Path(__file__).resolve().with_name("worker.py")


PACKAGE_ROOT = WORKER.parents[3]  # the folder that holds this gdbench package


@dataclass(frozen=True)
class Side:
    """Where one side's kernels come from."""

    name: str  # "base" or "new"
    python: str = sys.executable
    path: str | None = str(PACKAGE_ROOT)  # put first on PYTHONPATH; None: the python's own
    source: str = "this environment"

    @classmethod
    def of_revision(cls, name: str, rev: str, cwd=".") -> Side:
        """A git revision of the checkout at ``cwd``, as a worktree cached in the repository's
        git folder (``gdbench-ab/<commit>``) and run with this environment's packages."""
        def git(*args):
            done = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True)
            if done.returncode:
                raise ValueError(f"--{name}-rev {rev}: {done.stderr.strip().splitlines()[-1]}"
                                 if done.stderr.strip() else f"--{name}-rev {rev}: git failed")
            return done.stdout.strip()

        commit = git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
        common = Path(git("rev-parse", "--git-common-dir"))
        folder = (common if common.is_absolute() else Path(cwd) / common) / "gdbench-ab" / commit
        if not (folder / ".git").exists():
            git("worktree", "add", "--detach", "--force", str(folder), commit)
        root = folder / "src" if (folder / "src").is_dir() else folder
        return cls(name, sys.executable, str(root.resolve()), f"revision {rev} ({commit[:12]})")

    @classmethod
    def of_python(cls, name: str, python: str) -> Side:
        if not (os.path.isfile(python) and os.access(python, os.X_OK)):
            raise ValueError(f"--{name}-python {python} is not an executable file")
        return cls(name, python, None, f"the environment of {python}")


class Worker:
    """One worker process of a side."""

    def __init__(self, side: Side):
        env = dict(os.environ)
        if side.path:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [side.path,
                                                              env.get("PYTHONPATH")]))
        self.side = side
        self.process = subprocess.Popen([side.python, str(WORKER)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True, env=env)
        hello = self.process.stdout.readline()
        if not hello:
            raise ValueError(f"the {side.name} side's worker ({side.source}) did not start; "
                             f"run {side.python} {WORKER} to see why")

    def ask(self, request: dict) -> dict:
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            code = self.process.poll()
            return {"error": f"the worker died (exit status {code})", "died": True}
        return json.loads(line)

    def pause(self) -> None:
        """Stop the process while the other side measures: an idle backend's thread pools
        spin for a while after their work (OpenMP's wait policy), and on a machine of few
        cores that spinning would be taken from the side being measured."""
        if self.process.poll() is None and hasattr(signal, "SIGSTOP"):
            os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process.poll() is None and hasattr(signal, "SIGCONT"):
            os.kill(self.process.pid, signal.SIGCONT)

    def close(self) -> None:
        self.resume()
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
