"""The two sides of ``gdbench ab`` and their worker processes: a kernel in this environment,
another Python environment, or a git revision's cached worktree."""

from __future__ import annotations

import json
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
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

    @property
    def here(self) -> bool:
        """Whether the side is this environment's own kernels."""
        return self.source == "this environment"

    @classmethod
    def of_revision(cls, name: str, rev: str, cwd=".", warn=None) -> Side:
        """A git revision of the checkout at ``cwd``, as a worktree cached in the repository's
        git folder (``gdbench-ab/<commit>``) and run with this environment's packages. A
        cached worktree is checked against its commit before it is used again, and made anew
        when anything in it differs; ``warn`` is told when the checkout has changes that no
        revision holds."""
        def git(*args, at=cwd, check=True):
            done = subprocess.run(["git", "-C", str(at), *args], capture_output=True, text=True)
            if done.returncode and check:
                raise ValueError(f"--{name}-rev {rev}: {done.stderr.strip().splitlines()[-1]}"
                                 if done.stderr.strip() else f"--{name}-rev {rev}: git failed")
            return done.stdout.strip() if not done.returncode else None

        commit = git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
        common = Path(git("rev-parse", "--git-common-dir"))
        folder = (common if common.is_absolute() else Path(cwd) / common) / "gdbench-ab" / commit
        damage = _worktree_damage(folder, commit, git)
        if damage:
            if damage != "absent":
                if warn:
                    warn(f"the cached worktree of --{name}-rev {rev} ({folder}) {damage}: "
                         "making it anew")
                git("worktree", "remove", "--force", str(folder), check=False)
                if folder.is_symlink():
                    folder.unlink()
                elif folder.exists():
                    shutil.rmtree(folder)
                git("worktree", "prune", check=False)
            git("worktree", "add", "--detach", "--force", str(folder), commit)
        if warn and git("status", "--porcelain", "--untracked-files=no", check=False):
            warn(f"the checkout has uncommitted changes: --{name}-rev {rev} measures commit "
                 f"{commit[:12]} as committed, without them (commit them to measure them)")
        root = folder / "src" if (folder / "src").is_dir() else folder
        return cls(name, sys.executable, str(root.resolve()), f"revision {rev} ({commit[:12]})")

    @classmethod
    def of_python(cls, name: str, python: str) -> Side:
        if not (os.path.isfile(python) and os.access(python, os.X_OK)):
            raise ValueError(f"--{name}-python {python} is not an executable file")
        return cls(name, python, None, f"the environment of {python}")


def _worktree_damage(folder: Path, commit: str, git) -> str | None:
    """What is wrong with the cached worktree at ``folder`` for ``commit`` ("absent" when there
    is none), or None when it holds exactly that commit. Bytecode that Python wrote in it is
    not a change."""
    if not os.path.lexists(folder):
        return "absent"
    if folder.is_symlink() or not (folder / ".git").exists():
        return "is not a git worktree"
    head = git("rev-parse", "HEAD", at=folder, check=False)
    if head != commit:
        return f"is at {str(head)[:12]}, not at {commit[:12]}"
    status = git("status", "--porcelain", "--untracked-files=all", at=folder, check=False)
    if status is None:
        return "cannot be read by git"
    changed = [line[3:] for line in status.splitlines()
               if not (line.startswith("?? ") and ("__pycache__/" in line or
                                                   line.endswith((".pyc", ".nbi", ".nbc"))))]
    if changed:
        return f"differs from its commit ({len(changed)} file{'s' if len(changed) > 1 else ''}: "  \
               f"{', '.join(changed[:3])}{', ...' if len(changed) > 3 else ''})"
    return None


START_S = 60.0  # a worker says it is ready within this long, or it did not start


class Worker:
    """One worker process of a side, in a process group of its own.

    The group is what ``pause`` stops and ``close`` ends, so that the processes a backend starts
    (Inductor's compile workers) stop and end with the worker. The worker dies with this
    process, stopped or not: it asks Linux for SIGKILL when its parent dies, before it says it
    is ready (``worker._die_with_parent``), and a group left behind with a stopped process in it
    is sent SIGHUP and SIGCONT by the kernel (an orphaned process group). Every answer is
    awaited at most as long as the caller allows; a worker that does not answer in time is
    killed, group and all.
    """

    def __init__(self, side: Side, timeout: float = START_S, extra_env: dict | None = None):
        env = dict(os.environ, **(extra_env or {}), GDBENCH_AB_PARENT=str(os.getpid()))
        if side.path:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [side.path,
                                                              env.get("PYTHONPATH")]))
        # One thread per compile: Inductor's pool of compile workers would otherwise run
        # beside the windows of this side (the group is stopped with it) and of the other.
        env.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
        self.side = side
        self.stderr = tempfile.TemporaryFile()
        group = ({"process_group": 0} if sys.version_info >= (3, 11) else
                 {"preexec_fn": os.setpgrp})
        try:
            self.process = subprocess.Popen([side.python, str(WORKER)], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=self.stderr, env=env,
                                            **group)
        except OSError as exc:
            raise WorkerFailed(f"the {side.name} side's worker ({side.source}) did not start: "
                               f"{exc.strerror or exc}") from None
        self._buffer = b""
        hello = self._readline(time.monotonic() + timeout)
        if not hello:
            why = f"no answer in {timeout:.0f} s" if hello is None else self._exit_words()
            self.kill()
            raise WorkerFailed(f"the {side.name} side's worker ({side.source}) did not start: "
                               f"{why}")

    def _readline(self, deadline: float) -> bytes | None:
        """One line from the worker; b"" when it closed its end (it ended), None when the
        deadline passed first."""
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left if math.isfinite(left)
                                              else None)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b""
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _exit_words(self) -> str:
        """Why the worker ended: its exit status and the last line it wrote to stderr."""
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        how = (f"killed by signal {-code}" if code is not None and code < 0 else
               f"exit status {code}")
        self.stderr.seek(0)
        lines = [line.strip() for line in self.stderr.read()[-4096:].decode(
            "utf-8", "replace").splitlines() if line.strip()]
        return how + (f": {lines[-1]}" if lines else "")

    def ask(self, request: dict, timeout: float = math.inf) -> dict:
        """The worker's answer to ``request``; an ``error`` (and ``died``) when it died or gave
        none within ``timeout`` seconds (``stalled``: it was killed for that)."""
        self.send(request)
        return self.receive(timeout)

    def send(self, request: dict) -> None:
        try:
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # receive says that it died

    def receive(self, timeout: float = math.inf) -> dict:
        """The answer to the request sent last (as ``ask``)."""
        line = self._readline(time.monotonic() + timeout)
        if line:
            return json.loads(line)
        if line is None:  # alive, and silent for too long
            self.kill()
            return {"error": f"no window in {timeout:.0f} s", "died": True, "stalled": True}
        return {"error": f"the worker died ({self._exit_words()})", "died": True}

    def _signal_group(self, signum) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def pause(self) -> None:
        """Stop the worker's process group while the other side measures: an idle backend's
        thread pools spin for a while after their work (OpenMP's wait policy), and what it
        started (compile workers) would run; on a machine of few cores either is taken from
        the side being measured."""
        if self.process.poll() is None and hasattr(signal, "SIGSTOP"):
            self._signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process.poll() is None and hasattr(signal, "SIGCONT"):
            self._signal_group(signal.SIGCONT)

    def kill(self) -> None:
        """End the worker and everything in its group, at once."""
        self._signal_group(signal.SIGKILL)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def close(self) -> None:
        """End the worker and its group now: it holds nothing to save (what a backend compiled
        is in its cache already), and an interpreter with torch takes over a second to exit."""
        try:
            self.process.stdin.close()
        except OSError:
            pass
        self.kill()
        self.stderr.close()


class WorkerFailed(Exception):
    """A side's worker could not be started: its side cannot run."""
