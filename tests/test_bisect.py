"""gdbench bisect on throwaway git repositories: a plugin kernel whose commits change its speed
by known amounts, searched with real paired ab sessions. The tests check the answer, not a
time: the kernel's step spins for a set time (200 us, times 1 + SLOWDOWN of its commit), so
that the ratios are what the commits say. The search's other paths (a slowdown spread over two
commits, a midpoint that stays AMBIGUOUS, one that cannot be imported) are followed through
simulated sessions (``simulated``): each gives the ratio the commits say, in a ±3% interval,
and a verdict as ab's would be, or the error of a side that cannot import its kernel; what is
tested there is the search, not ab (whose sides that fail are tests/test_ab_gate.py's)."""

import json
import math
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from gdbench import cli
from gdbench.runs import bisect as search_module
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


def test_a_commit_that_breaks_the_import_is_skipped_and_named(tmp_path, monkeypatch):
    """Simulated sessions (the side that cannot import its kernel is tests/test_ab_gate.py's):
    the broken midpoint is skipped as git bisect skip does, the nearest other commit taken."""
    repository(tmp_path, monkeypatch, [("a", 0.0), ("b", 0.0), ("c", 0.0), ("broken", None),
                                       ("fixed", 0.0), ("the slow one", 0.5), ("g", 0.5),
                                       ("h", 0.5)])
    asked = simulated(monkeypatch)
    status, result = search(tmp_path)
    assert ("GOOD", "broken") in [(a, b) for a, b, _ in asked]
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


def simulated(monkeypatch, ambiguous=()):
    """Sessions without workers: a side is a commit whose kernel spins 1 + SLOWDOWN times as
    long (read from the commit; an ImportError where it cannot be imported), a session's ratio
    is new over base in [ratio / 1.03, ratio * 1.03], SLOWER above 1.02, SAME within it; a
    session whose new side's subject is in ``ambiguous`` is AMBIGUOUS however long it runs.
    The sessions asked for are kept, (base subject, new subject, seconds)."""
    asked = []

    def side(cls, name, rev, cwd=".", warn=None):
        source = git(cwd, "show", f"{rev}:bisected.py")
        found = re.search(r"SLOWDOWN = ([0-9.]+)", source)
        return SimpleNamespace(subject=git(cwd, "log", "-1", "--format=%s", rev),
                               slowdown=float(found.group(1)) if found else None)

    def run_ab(sides, cases, settings):
        base, new = sides
        asked.append((base.subject, new.subject, settings.max_seconds))
        records = []
        for case in cases:
            if new.slowdown is None:
                records.append({"label": case.label, "status": "error", "side": "new",
                                "message": "ImportError: a broken commit", "windows": [],
                                "verdicts": {}})
                continue
            ratio = (1 + new.slowdown) / (1 + base.slowdown)
            low, high = ratio / 1.03, ratio * 1.03
            verdict = ("AMBIGUOUS" if new.subject in ambiguous else "SLOWER" if low > 1.02
                       else "FASTER" if high < 1 / 1.02 else "SAME")
            metric = {"ratio": ratio, "low": low, "high": high, "verdict": verdict}
            records.append({"label": case.label, "status": "ok", "side": None, "windows": [],
                            "verdicts": {"latency": metric, "throughput": metric}})
        return SimpleNamespace(to_dict=lambda: {"cases": records})

    monkeypatch.setattr(search_module.Side, "of_revision", classmethod(side))
    monkeypatch.setattr(search_module, "run_ab", run_ab)
    return asked


def test_two_commits_of_50_percent_each_are_both_named_as_steps_of_one_slowdown(
        tmp_path, monkeypatch):
    """The midpoint is SLOWER than GOOD, but clearly less so than BAD: the slowdown is spread,
    each half is searched (the second after a session confirms it), and both steps are named."""
    repository(tmp_path, monkeypatch, [("a", 0.0), ("first step", 0.5), ("b", 0.5),
                                       ("c", 0.5), ("d", 0.5), ("second step", 1.25),
                                       ("e", 1.25), ("f", 1.25)])
    asked = simulated(monkeypatch)
    status, result = search(tmp_path)
    assert status == 0
    assert subjects(result["found"]) == ["first step", "second step"]
    assert [f["ratio"][0] for f in result["found"]] == [pytest.approx(1.5), pytest.approx(1.5)]
    assert ("c", "f") in [(a, b) for a, b, _ in asked]  # the rest of the spread slowdown
    assert [s["purpose"] for s in result["sessions"]].count("the rest of a spread slowdown") == 1
    assert "spread over 2 commits" in (tmp_path / "b.md").read_text()
    assert result["unresolved"] == [] and result["skipped"] == []


def test_a_midpoint_that_stays_ambiguous_is_measured_for_longer_then_left_unresolved(
        tmp_path, monkeypatch):
    repository(tmp_path, monkeypatch, [("a", 0.0), ("b", 0.0), ("c", 0.0), ("d", 0.3),
                                       ("e", 0.3), ("f", 0.3), ("g", 0.3), ("h", 0.3)])
    asked = simulated(monkeypatch, ambiguous={"c"})
    status, result = search(tmp_path)
    assert status == 1 and result["found"] == []  # no commit could be named
    assert [(a, b) for a, b, _ in asked] == [("GOOD", "h"), ("GOOD", "d"), ("GOOD", "b"),
                                            ("b", "c"), ("b", "c")]
    assert asked[4][2] == pytest.approx(2 * asked[3][2])  # once more, for twice as long
    [left] = result["unresolved"]
    assert (left["lo"], left["hi"], left["mid"]) == (2, 4, 3)
    assert left["why"] == (f"{result['commits'][3]['sha'][:12]} was AMBIGUOUS against "
                           f"{result['commits'][2]['sha'][:12]}")
    assert "was AMBIGUOUS against" in (tmp_path / "b.md").read_text()
