"""gdbench bisect on throwaway git repositories: a plugin kernel whose commits change its speed
by known amounts, searched with real paired ab sessions. The tests check the answer, not a
time: the kernel's step spins for a set time (200 us, times 1 + SLOWDOWN of its commit), so
that the ratios are what the commits say."""

import json
import math
import subprocess
from pathlib import Path

import pytest

from gdbench import cli
from gdbench.runs.bisect import commits_between
from tests.plugins import REPO

KERNEL = '''
import time

from gdbench.kernels.numpy_manual import NumpyManual

SLOWDOWN = {slowdown}


class Bisected(NumpyManual):
    name = "bisected"

    def update(self):
        super().update()
        end = time.perf_counter() + 2e-4 * (1 + SLOWDOWN)
        while time.perf_counter() < end:
            pass
'''
QUICK = ["--kernels", "bisected", "--sizes", "1e3", "--device", "cpu", "--window", "0.01",
         "--session-time", "10", "--max-time", "150", "--quiet"]


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                           *args], check=True, capture_output=True, text=True).stdout.strip()


def repository(tmp_path, monkeypatch, history):
    """A repository of the plugin kernel: a commit for each (subject, slowdown or None for
    'cannot be imported') of ``history`` after the first, GOOD (slowdown 0); the plugin's
    entry point installed for this process and the workers; the current folder there."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "bisected.py").write_text(KERNEL.format(slowdown=0.0))
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "GOOD")
    for subject, slowdown in history:
        source = (KERNEL.format(slowdown=slowdown) if slowdown is not None else
                  "raise ImportError('a broken commit')\n")
        if (repo / "bisected.py").read_text() == source:
            (repo / "NOTES").write_text(subject)  # a commit that leaves the kernel alone
        else:
            (repo / "bisected.py").write_text(source)
        git(repo, "add", ".")
        git(repo, "commit", "-q", "-m", subject)
    dist = tmp_path / "bisected-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bisected\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[gdbench.kernels]\nbisected = bisected:Bisected\n")
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{REPO}")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(repo)
    return repo


def search(tmp_path, *extra):
    status = cli.main(["bisect", "HEAD~8", "HEAD", *QUICK, "--out", str(tmp_path / "b.json"),
                       "--markdown", str(tmp_path / "b.md"), *extra])
    return status, json.loads((tmp_path / "b.json").read_text())


def subjects(found):
    return [f["subject"] for f in found]


def test_one_commit_of_30_percent_among_eight_is_named(tmp_path, monkeypatch, capsys):
    repository(tmp_path, monkeypatch, [("docs", 0.0), ("tidy", 0.0), ("refactor", 0.0),
                                       ("the slow one", 0.3), ("tests", 0.3),
                                       ("more tests", 0.3), ("release", 0.3), ("after", 0.3)])
    status, result = search(tmp_path)
    assert status == 0
    assert subjects(result["found"]) == ["the slow one"]
    assert 1.2 < result["found"][0]["ratio"][0] < 1.4
    assert len(result["sessions"]) <= 6  # GOOD against BAD, then about log2(8) steps
    assert "the slow one" in capsys.readouterr().out.splitlines()[0]
    table = (tmp_path / "b.md").read_text()
    assert "| GOOD |" in table and "| BAD |" in table and "← |" in table


def test_two_commits_of_50_percent_each_are_both_named_as_steps_of_one_slowdown(
        tmp_path, monkeypatch):
    """Steps of 50%, in sessions of 20 s: the spread is seen only when the midpoint's interval
    lies below BAD's, and under the suite's load sessions of 10 s left too few blocks for that
    (steps of 20%, 30% and 50% were each hidden in full runs); the search, not its
    sensitivity, is what is tested."""
    repository(tmp_path, monkeypatch, [("a", 0.0), ("first step", 0.5), ("b", 0.5),
                                       ("c", 0.5), ("d", 0.5), ("second step", 1.25),
                                       ("e", 1.25), ("f", 1.25)])
    status, result = search(tmp_path, "--session-time", "20")
    assert status == 0
    assert subjects(result["found"]) == ["first step", "second step"]
    ratios = [f["ratio"][0] for f in result["found"]]
    assert all(1.3 < r < 1.7 for r in ratios), ratios
    assert "spread over 2 commits" in (tmp_path / "b.md").read_text()


def test_a_commit_that_breaks_the_import_is_skipped_and_named(tmp_path, monkeypatch):
    repository(tmp_path, monkeypatch, [("a", 0.0), ("b", 0.0), ("c", 0.0), ("broken", None),
                                       ("fixed", 0.0), ("the slow one", 0.5), ("g", 0.5),
                                       ("h", 0.5)])
    status, result = search(tmp_path)
    assert status == 0
    assert subjects(result["found"]) == ["the slow one"]
    assert [s["subject"] for s in result["skipped"]] == ["broken"]
    assert "ImportError: a broken commit" in result["skipped"][0]["why"]


def test_a_range_without_a_regression_says_so_with_the_evidence(tmp_path, monkeypatch,
                                                                 capsys):
    repository(tmp_path, monkeypatch, [(s, 0.0) for s in "abcdefgh"])
    status, result = search(tmp_path)
    assert status == 0 and result["found"] == [] and result["unresolved"] == []
    assert len(result["sessions"]) == 1  # GOOD against BAD said SAME: nothing to search
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("no regression found: GOOD against BAD gave bisected N=1e3 SAME")
    assert cli.main(["report", str(tmp_path / "b.json"), "-o", str(tmp_path / "r.md"),
                     "--html", str(tmp_path / "r.html")]) == 0
    assert "no regression found" in (tmp_path / "r.md").read_text()
    assert "no regression found" in (tmp_path / "r.html").read_text()


def test_the_commits_between_and_bad_revisions(tmp_path, monkeypatch):
    repo = repository(tmp_path, monkeypatch, [("a", 0.0), ("b", 0.0)])
    commits = commits_between("HEAD~2", "HEAD", repo)
    assert [c.subject for c in commits] == ["GOOD", "a", "b"]
    with pytest.raises(ValueError, match="is not an ancestor"):
        commits_between("HEAD", "HEAD~2", repo)
    assert cli.main(["bisect", "nope", "HEAD", *QUICK]) == 2
    assert cli.main(["bisect", "HEAD", "HEAD~1", *QUICK]) == 2
    assert cli.main(["bisect", "HEAD~1", "HEAD", *QUICK, "--out", "x.json", "--markdown",
                     "x.json"]) == 2
    assert not Path("x.json").exists()


def test_a_session_with_too_few_blocks_for_an_interval_is_shown_without_one(tmp_path):
    """A step whose session ended before it had an interval (low 0, high infinite) carries
    no interval to the commits after it; the table and the plot say so and do not fail."""
    from gdbench.analysis import bisect as view
    from gdbench.runs.bisect import ratios_against_good

    def session(base, new, ratio, low, high):
        case = {"label": "c", "status": "ok", "verdicts": {"latency": {
            "ratio": ratio, "low": low, "high": high, "verdict": "AMBIGUOUS"}}}
        return {"base": base, "new": new, "session": {"cases": [case]}}

    result = {"commits": [{"sha": f"{i:040x}", "subject": f"s{i}"} for i in range(3)],
              "sessions": [session(0, 1, 1.1, 1.05, 1.15), session(1, 2, 1.2, 0.0, math.inf)],
              "found": [], "unresolved": [], "skipped": [], "seconds": 1.0, "complete": True,
              "settings": {"good": "a", "bad": "b", "threshold": 0.02, "min_effect": 0.02}}
    ratios = ratios_against_good(result)["c"]
    assert ratios[1] == pytest.approx((1.1, 1.05, 1.15), rel=0.01)
    assert ratios[2][0] == pytest.approx(1.32) and ratios[2][1:] == (0.0, math.inf)
    text = view.markdown(result)
    assert "1.320 (too few blocks for an interval)" in text and "1.100 [1.0" in text
    assert view.plot(result, tmp_path).stat().st_size > 0
