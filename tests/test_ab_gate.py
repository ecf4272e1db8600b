"""``gdbench ab`` as a gate: a side that is wrong, crashes, hangs or cannot start is a failure
with exit status 1, never AMBIGUOUS; no worker outlives its session; revisions are what they
say. Real worker processes, with plugin kernels that misbehave on purpose."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gdbench import cli
from gdbench.runs.ab import pool
from gdbench.runs.ab.sides import Side
from tests.plugins import REPO, plugin_env
from tests.test_ab import SLOWER_FORWARD, FakeWorker, fake, git  # noqa: F401 (a fixture)

MISBEHAVING = """
import os
import signal
import subprocess
import sys
import time

from gdbench.kernels.numpy_manual import NumpyManual


class Off(NumpyManual):
    name = "numpy-off"  # its gradient is 10% off the reference

    def backward(self):
        super().backward()
        self._grad = 1.1 * self._grad


class Killed(NumpyManual):
    name = "numpy-killed"  # its process is killed in its first window, after the check

    def step(self):
        super().step()
        self.steps = getattr(self, "steps", 0) + 1
        if self.steps == 20:
            os.kill(os.getpid(), signal.SIGKILL)


class Stuck(NumpyManual):
    name = "numpy-stuck"  # stops answering in the middle of its first window

    def step(self):
        super().step()
        self.steps = getattr(self, "steps", 0) + 1
        if self.steps == 20:
            time.sleep(float(os.environ.get("GDBENCH_TEST_STUCK_S", "1000")))


class Spawns(NumpyManual):
    name = "numpy-spawns"  # starts a process of its own, as Inductor starts compile workers

    def _setup(self, x, y, w0):
        super()._setup(x, y, w0)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)"])
        with open(os.environ["GDBENCH_TEST_PIDS"], "a") as f:
            f.write(f"{os.getpid()} {child.pid}\\n")
"""
KERNELS = {"numpy-off": "Off", "numpy-killed": "Killed", "numpy-stuck": "Stuck",
           "numpy-spawns": "Spawns"}
QUICK = ["--device", "cpu", "--sizes", "1e3", "--window", "0.02", "--rounds-per-block", "1",
         "--min-blocks", "3", "--max-blocks", "3", "--quiet"]


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The misbehaving kernels, installed for this process and the workers it starts."""
    env = plugin_env(tmp_path, "gdbench_misbehaving", KERNELS, MISBEHAVING)
    monkeypatch.setenv("PYTHONPATH", env["PYTHONPATH"])
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return env


def measured_rounds(case):
    """The rounds in which both sides of ``case`` gave a window (paired, or contended and
    tried again: how many pairs a loaded machine leaves is not what these tests are about)."""
    return {w["round"] for w in case["windows"] if w["side"] == "base"} & {
        w["round"] for w in case["windows"] if w["side"] == "new"}


def outcome(path="gdbench-ab.json"):
    [case] = json.loads(Path(path).read_text())["cases"]
    return case


def test_a_side_whose_gradient_is_wrong_fails_the_gate_everywhere_it_is_shown(plugin, capsys):
    status = cli.main(["ab", "numpy-manual", "numpy-off", *QUICK, "--markdown", "pr.md"])
    out, err = capsys.readouterr()
    assert status == 1  # without --fail-on-regression too
    case = outcome()
    assert case["status"] == "wrong" and case["side"] == "new"
    assert case["message"].startswith("new side (numpy-off): gradient")
    assert "(off by 0.05 of its scale" in case["message"]  # by how much
    assert "WRONG" in out and "AMBIGUOUS" not in out
    assert "numpy-off vs numpy-manual N=1e3: WRONG: new side (numpy-off)" in err
    markdown = Path("pr.md").read_text()
    rows = [line.split(" | ") for line in markdown.splitlines()
            if line.startswith("| numpy-off vs numpy-manual N=1e3 |")]
    assert rows and all(r[3:6] == ["WRONG", "-", "-"] for r in rows)  # no ratio, no interval
    assert "| WRONG | - | - | **WRONG** (new side (numpy-off): gradient" in markdown
    assert "0 ambiguous, 2 wrong" in markdown
    assert cli.main(["report", "gdbench-ab.json", "--html", "r.html"]) == 0
    page = Path("r.html").read_text()
    assert "WRONG" in page and "new side (numpy-off)" in page and "AMBIGUOUS" not in page


def test_a_worker_killed_mid_window_is_an_error_and_the_others_go_on(plugin, capsys):
    status = cli.main(["ab", "numpy-manual", "numpy-manual,numpy-killed", *QUICK,
                       "--fail-on-regression"])
    assert status == 1
    same, killed = json.loads(Path("gdbench-ab.json").read_text())["cases"]
    assert killed["status"] == "error" and killed["side"] == "new"
    assert "the worker died (killed by signal 9)" in killed["message"]
    assert same["status"] == "ok" and measured_rounds(same) == {0, 1, 2}


def test_a_side_stuck_in_a_window_is_ended_and_recorded(plugin, monkeypatch, capsys):
    """A window's own bound (3 s here): the stuck worker is killed, the case is an ERROR, and
    the session goes on with a fresh worker. The kernel sleeps 20 s, so that a gdbench that
    waits for it ends too, and fails the assertions."""
    monkeypatch.setenv("GDBENCH_TEST_STUCK_S", "20")
    monkeypatch.setattr(pool, "FIRST_S", 3.0)
    monkeypatch.setattr(pool, "LATER_S", 3.0)
    began = time.monotonic()
    status = cli.main(["ab", "numpy-manual", "numpy-manual,numpy-stuck", *QUICK])
    assert status == 1 and time.monotonic() - began < 18
    same, stuck = json.loads(Path("gdbench-ab.json").read_text())["cases"]
    assert stuck["status"] == "error" and stuck["message"] == (
        "new side (numpy-stuck): no window in 3 s")
    assert same["status"] == "ok" and measured_rounds(same) == {0, 1, 2}


def test_max_time_bounds_a_session_with_a_stuck_side(plugin):
    """With the windows' own bounds at their defaults (30 s and more), ``--max-time 4`` ends
    the session within its grace (5 s), the stuck case an ERROR. In a process of its own, with a
    time limit, so that a gdbench that waits for ever fails the test rather than hangs it."""
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "gdbench", "ab", "numpy-stuck", *QUICK,
                           "--max-time", "4"], capture_output=True, text=True, timeout=90,
                          env=plugin)
    assert done.returncode == 1, done.stderr
    assert time.monotonic() - began < 40  # 4 s, 5 s of grace, interpreters and imports
    case = outcome()
    assert case["status"] == "error"
    assert "no window finished within the session's --max-time (4 s)" in case["message"]


def test_a_python_that_never_starts_is_an_error_on_its_side(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sleeper = tmp_path / "python"
    sleeper.write_text("#!/bin/sh\nsleep 1000\n")
    sleeper.chmod(0o755)
    monkeypatch.setattr(pool, "START_S", 3.0)
    status = cli.main(["ab", "numpy-manual", *QUICK, "--new-python", str(sleeper),
                       "--fail-on-regression"])
    assert status == 1
    case = outcome()
    assert case["status"] == "error" and case["side"] == "new"
    assert "worker (the environment of" in case["message"] and "did not start" in case["message"]


def test_no_worker_outlives_a_parent_killed_while_it_is_stopped(plugin, tmp_path):
    """The parent is SIGKILLed while the worker's process group is stopped: the worker and the
    process it started end, rather than stay stopped for ever under another parent."""
    pids = tmp_path / "pids"
    script = ("import sys, time\n"
              "from gdbench.runs.ab.sides import Side, Worker\n"
              "w = Worker(Side('base'))\n"
              "w.ask({'kernel': 'numpy-spawns', 'device': 'cpu', 'dtype': 'float32', 'n': 100,"
              " 'd': 1, 'seed': 0, 'lr': 0.01, 'budget': 0.01, 'check': False})\n"
              "w.pause()\n"
              "print('paused', flush=True)\n"
              "time.sleep(1000)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              env=dict(plugin, GDBENCH_TEST_PIDS=str(pids)),
                              start_new_session=True)  # as under setsid, away from pytest
    try:
        assert parent.stdout.readline().strip() == "paused"
        worker, child = map(int, pids.read_text().split())
        deadline = time.monotonic() + 10  # a stop signal is delivered in its own time
        while time.monotonic() < deadline and {state(worker), state(child)} != {"T"}:
            time.sleep(0.01)
        assert state(worker) == state(child) == "T"  # the whole group is stopped
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and {state(worker), state(child)} - {None, "Z"}:
            time.sleep(0.05)
        assert state(worker) in (None, "Z") and state(child) in (None, "Z")
    finally:
        parent.kill()
        for pid in map(int, pids.read_text().split()) if pids.exists() else ():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def state(pid: int) -> str | None:
    """A process's state letter (R, S, T, Z, ...), or None when there is none."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


@pytest.fixture
def repo(tmp_path):
    """A repository holding this gdbench, then a commit that slows numpy-manual, then one
    whose ``gdbench/__init__.py`` cannot be imported."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "gdbench", repo / "gdbench",
                    ignore=shutil.ignore_patterns("__pycache__"))
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    manual = repo / "gdbench" / "kernels" / "numpy_manual.py"
    manual.write_text(manual.read_text() + SLOWER_FORWARD)
    git(repo, "commit", "-q", "-am", "slower")
    init = repo / "gdbench" / "__init__.py"
    init.write_text("raise ImportError('a broken change')\n" + init.read_text())
    git(repo, "commit", "-q", "-am", "broken")
    return repo


def test_a_revision_that_cannot_be_imported_fails_the_gate(repo, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(repo)
    status = cli.main(["ab", "numpy-manual", "--base-rev", "HEAD~2", "--new-rev", "HEAD",
                       *QUICK, "--fail-on-regression", "--out", str(tmp_path / "ab.json")])
    assert status == 1
    case = outcome(tmp_path / "ab.json")
    assert case["status"] == "error" and case["side"] == "new"
    assert "ImportError: a broken change" in case["message"]
    assert "ERROR" in capsys.readouterr().out


def test_a_damaged_cached_worktree_is_made_anew(repo):
    warned = []
    base = Side.of_revision("base", "HEAD~2", repo, warn=warned.append)
    kept = Path(base.path) / "gdbench" / "kernels" / "numpy_manual.py"
    original = kept.read_text()
    kept.write_text(original + SLOWER_FORWARD)  # someone edited the cache
    (Path(base.path) / "gdbench" / "extra.py").write_text("")
    assert Side.of_revision("base", "HEAD~2", repo, warn=warned.append) == base
    assert kept.read_text() == original
    assert not (Path(base.path) / "gdbench" / "extra.py").exists()
    assert len(warned) == 1 and "differs from its commit (2 files:" in warned[0]
    shutil.rmtree(Path(base.path) / "gdbench")  # and one emptied
    Side.of_revision("base", "HEAD~2", repo, warn=warned.append)
    assert kept.read_text() == original and "differs from its commit" in warned[-1]
    # bytecode Python writes in it is no damage
    (Path(base.path) / "gdbench" / "__pycache__").mkdir()
    (Path(base.path) / "gdbench" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"")
    count = len(warned)
    Side.of_revision("base", "HEAD~2", repo, warn=warned.append)
    assert len(warned) == count


def test_a_revision_of_a_dirty_checkout_warns_that_the_changes_are_not_measured(repo):
    warned = []
    Side.of_revision("new", "HEAD", repo, warn=warned.append)
    assert warned == []
    init = repo / "gdbench" / "__init__.py"
    init.write_text(init.read_text() + "\n")
    Side.of_revision("new", "HEAD", repo, warn=warned.append)
    assert len(warned) == 1 and "uncommitted changes: --new-rev HEAD measures commit" in warned[0]


@pytest.mark.parametrize("ratio,flag,status", [(1.25, [], 0),
                                               (1.25, ["--fail-on-regression"], 1),
                                               (1.0, ["--fail-on-regression"], 0)])
def test_exit_status_follows_the_outcomes(fake, tmp_path, monkeypatch, capsys, ratio, flag,
                                          status):
    monkeypatch.chdir(tmp_path)
    fake.ratio = {"base": 1.0, "new": ratio}
    assert cli.main(["ab", "numpy-manual", "--device", "cpu", "--sizes", "1e3", "--quiet",
                     *flag]) == status
    verdict = outcome()["verdicts"]["latency"]["verdict"]
    assert verdict == ("SLOWER" if ratio > 1 else "SAME")
    out = capsys.readouterr().out
    assert "(threshold 5%)" in out  # the threshold in force, in the header
    assert json.loads(Path("gdbench-ab.json").read_text())["settings"]["threshold"] == 0.05


def test_a_case_named_twice_is_one_row(fake, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["ab", "numpy-manual,numpy-manual", "numpy-manual,numpy-manual",
                     "--device", "cpu", "--sizes", "1e3", "--quiet"]) == 0
    assert len(json.loads(Path("gdbench-ab.json").read_text())["cases"]) == 1


def test_an_interrupted_session_says_so_wherever_it_is_shown(fake, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["ab", "numpy-manual", "--device", "cpu", "--sizes", "1e3", "--quiet"]) == 0
    d = json.loads(Path("gdbench-ab.json").read_text())
    d.update(complete=False, rounds=5, blocks=2, seconds=12.3)
    Path("partial.json").write_text(json.dumps(d))
    assert cli.main(["report", "partial.json", "-o", "r.md", "--html", "r.html"]) == 0
    for page in ("r.md", "r.html"):
        assert "incomplete: interrupted after 5 rounds in 2 blocks, 12 s of at most 170 s" in \
            Path(page).read_text()
    d["settings"].update(rounds_per_block=3, max_blocks=12)  # a fixed count of rounds a block
    Path("partial.json").write_text(json.dumps(d))
    assert cli.main(["report", "partial.json", "-o", "r2.md"]) == 0
    assert "incomplete: interrupted after 5 of at most 36 rounds (2 blocks)" in Path(
        "r2.md").read_text()
    # a whole session's Markdown report is the session's table, not an empty page
    assert cli.main(["report", "gdbench-ab.json", "-o", "whole.md"]) == 0
    text = Path("whole.md").read_text()
    assert "| numpy-manual N=1e3 | latency |" in text and "incomplete" not in text


def test_a_second_ctrl_c_while_the_process_ends_prints_no_traceback(tmp_path):
    """Ctrl-C, then Ctrl-C again and again while gdbench says so and exits: one line, exit
    status 130, no traceback from the exit handlers of the backends it imported."""
    proc = subprocess.Popen([sys.executable, "-m", "gdbench", "run", "--device", "cpu",
                             "--kernels", "torch-manual", "--sizes", "1e3", "--budget", "30",
                             # a precision no window reaches: each samples for its 7.5 s, and
                             # the run cannot end before the signals come
                             "--precision", "0.0001",
                             "--no-roofline", "--quiet"], cwd=tmp_path, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "gdbench-results.partial.json").exists():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        while proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            time.sleep(0.002)
        err = proc.stderr.read()
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
