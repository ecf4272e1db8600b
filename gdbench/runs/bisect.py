"""``gdbench bisect``: the commit behind a regression, found with paired ``ab`` sessions.

The commits from GOOD to BAD (first parents) are searched as ``git bisect`` does, but every
step is a paired ``ab`` session, so drift between steps cannot send the search the wrong way,
and a step that cannot tell says so instead of guessing:

1. ``ab GOOD BAD`` on the cases asked for; the cases it calls SLOWER are searched. None: no
   regression, and that session is the evidence.
2. A range (LO, HI] known to hold a slowdown of a case is split at its midpoint M by ``ab LO
   M``: SLOWER puts a slowdown in (LO, M]; SAME or FASTER puts it in (M, HI]. When M is SLOWER
   but clearly less so than HI was against LO (its interval lies below HI's), the slowdown is
   spread over both halves, each a step partway, and both are searched, the second after a
   session ``ab M HI`` confirms it. An AMBIGUOUS step is measured once more for twice as long;
   still AMBIGUOUS, the range stays as it is: the answer is "between LO and HI: M was
   AMBIGUOUS". A midpoint that fails to import or build (an ERROR, OOM or UNAVAILABLE on its
   side) is skipped, as ``git bisect skip`` does, and the nearest other commit in the range
   taken instead; a range whose commits all fail is reported with them named.
3. A range of one commit is an answer: that commit, with the ratio of its step.

Every session is a plain ``ab`` session between two cached worktrees (``Side.of_revision``),
kept in the results with its windows' medians (``slim``). Each tested commit also gets its ratio against GOOD, the product of
the steps' ratios along the way (their log intervals added: wider than one session's, never
narrower).
"""

from __future__ import annotations

import math
import subprocess
import time
from dataclasses import asdict, dataclass, field, replace

from gdbench.runs.ab.records import AbSettings, Case, slim
from gdbench.runs.ab.session import run_ab
from gdbench.runs.ab.sides import Side

FAILED_SIDE = ("error", "oom", "unavailable", "wrong")


@dataclass(frozen=True)
class Commit:
    sha: str
    subject: str

    @property
    def short(self) -> str:
        return self.sha[:12]


def commits_between(good: str, bad: str, cwd=".") -> list[Commit]:
    """GOOD and the commits after it up to BAD, on BAD's first-parent line, oldest first;
    ValueError when either is not a commit or GOOD is not an ancestor of BAD."""
    def git(*args):
        done = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True)
        if done.returncode:
            raise ValueError(f"git {' '.join(args)}: "
                             + (done.stderr.strip().splitlines() or ["failed"])[-1])
        return done.stdout

    shas = [git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").strip()
            for rev in (good, bad)]
    if subprocess.run(["git", "-C", str(cwd), "merge-base", "--is-ancestor", *shas]).returncode:
        raise ValueError(f"{good} is not an ancestor of {bad}: bisect needs GOOD before BAD")
    lines = git("log", "--first-parent", "--reverse", "--format=%H %s",
                f"{shas[0]}..{shas[1]}").splitlines()
    subject = git("log", "-1", "--format=%s", shas[0]).strip()
    return [Commit(shas[0], subject)] + [Commit(*line.split(" ", 1)) if " " in line
                                         else Commit(line, "") for line in lines]


@dataclass
class Range:
    """Commits ``lo`` (not slower) and ``hi`` (slower, for ``cases``), as indices."""

    lo: int
    hi: int
    cases: list  # Case
    ratios: dict  # case label -> (ratio, low, high) of hi against lo, where measured
    confirmed: bool = True  # False: inferred, a session of hi against lo must confirm it


@dataclass
class BisectResult:
    environment: dict
    settings: dict
    commits: list  # Commit as dicts, GOOD first
    sessions: list = field(default_factory=list)  # every ab session, whole, with its step
    found: list = field(default_factory=list)  # per commit found: index, case, ratio ...
    unresolved: list = field(default_factory=list)  # ranges left, and why
    skipped: list = field(default_factory=list)  # commits that failed to import or build
    seconds: float = 0.0
    complete: bool = False

    def to_dict(self) -> dict:
        return {"tool": "gdbench-bisect", "schema_version": 1, "complete": self.complete,
                "environment": self.environment, "settings": self.settings,
                "commits": self.commits, "sessions": self.sessions, "found": self.found,
                "unresolved": self.unresolved, "skipped": self.skipped,
                "seconds": self.seconds}


def bisect(good: str, bad: str, kernels: list[str], settings: AbSettings, cwd=".",
           max_seconds: float = 600.0, save=None, on_step=None, warn=None) -> BisectResult:
    """Search the commits from ``good`` to ``bad`` for the ones that made ``kernels`` at
    ``settings.sizes`` slower (module docstring)."""
    commits = commits_between(good, bad, cwd)
    if len(commits) < 2:
        raise ValueError(f"no commit between {good} and {bad}")
    began = time.monotonic()
    result = BisectResult({}, {**asdict(settings), "good": good, "bad": bad,
                               "kernels": kernels, "max_seconds": max_seconds},
                          [asdict(c) for c in commits])
    save = save or (lambda r: None)
    sides: dict = {}

    def side(name: str, index: int) -> Side:
        key = (name, index)
        if key not in sides:
            sides[key] = Side.of_revision(name, commits[index].sha, cwd, warn=warn)
        return sides[key]

    steps = math.ceil(math.log2(len(commits))) + 2
    per_session = min(settings.max_seconds, max(20.0, max_seconds / steps))

    def session(lo: int, hi: int, cases: list, purpose: str, seconds: float | None = None):
        left = max_seconds - (time.monotonic() - began)
        budget = min(seconds or per_session, left)
        if budget < 2 * settings.window_s + 1:
            return None
        if on_step:
            on_step(purpose, commits[lo], commits[hi], budget)
        ab = run_ab((side("base", lo), side("new", hi)), cases,
                    replace(settings, max_seconds=budget, seed=settings.seed + len(
                        result.sessions)))
        d = slim(ab.to_dict())  # the windows' medians: a session's samples can take 10 MB
        result.sessions.append({"purpose": purpose, "base": lo, "new": hi, "session": d})
        result.seconds = time.monotonic() - began
        save(result)
        return {c["label"]: c for c in d["cases"]}

    cases = [Case(k, k, n) for n in settings.sizes for k in kernels]
    first = session(0, len(commits) - 1, cases, "GOOD against BAD", None)
    if first is None:
        raise ValueError("--max-time leaves no time for a session")
    for case in cases:
        got = first[case.label]
        if got["status"] != "ok":
            side_name = "GOOD" if got["side"] == "base" else "BAD"
            result.unresolved.append({"case": case.label, "lo": 0, "hi": len(commits) - 1,
                                      "why": f"{side_name} failed: {got['message']}"})
    slower = [c for c in cases if first[c.label]["status"] == "ok"
              and _verdict(first[c.label]) == "SLOWER"]
    work = [Range(0, len(commits) - 1, slower, {c.label: _ratio(first[c.label])
                                                  for c in slower})] if slower else []
    skipped: set = set()
    while work:
        r = work.pop(0)
        if not r.confirmed:  # the rest of a spread slowdown: is hi slower than lo at all?
            got = session(r.lo, r.hi, r.cases, "the rest of a spread slowdown")
            if got is None:
                _unresolved(result, r, "--max-time ran out")
                continue
            r.cases = [c for c in r.cases if _verdict(got[c.label]) == "SLOWER"]
            r.ratios = {c.label: _ratio(got[c.label]) for c in r.cases}
            if not r.cases:
                continue
            r.confirmed = True
        if r.hi == r.lo + 1:
            for case in r.cases:
                result.found.append({"index": r.hi, "commit": commits[r.hi].sha,
                                     "subject": commits[r.hi].subject, "case": case.label,
                                     "ratio": r.ratios.get(case.label), "against": r.lo})
            continue
        mid = _midpoint(r.lo, r.hi, skipped)
        if mid is None:
            _unresolved(result, r, "every commit between failed to import or build: "
                        + ", ".join(commits[i].short for i in sorted(skipped)
                                    if r.lo < i < r.hi))
            continue
        got = session(r.lo, mid, r.cases, "a midpoint against the range's start")
        if got is None:
            _unresolved(result, r, f"--max-time ran out before {commits[mid].short}")
            continue
        broken = [c for c in r.cases if got[c.label]["status"] in FAILED_SIDE
                  and got[c.label]["side"] == "new"]
        if broken:  # the midpoint does not run: skip it, as git bisect skip does
            skipped.add(mid)
            result.skipped.append({"index": mid, "commit": commits[mid].sha,
                                   "subject": commits[mid].subject,
                                   "why": got[broken[0].label]["message"]})
            work.insert(0, r)
            continue
        ambiguous = [c for c in r.cases if _verdict(got[c.label]) == "AMBIGUOUS"]
        if ambiguous:  # measured once more, for twice as long
            again = session(r.lo, mid, ambiguous, "the midpoint again, for longer",
                            2 * per_session)
            for c in ambiguous:
                if again is not None and _verdict(again[c.label]) != "AMBIGUOUS":
                    got[c.label] = again[c.label]
        left, right = [], []
        for c in r.cases:
            v = _verdict(got[c.label])
            ratio = _ratio(got[c.label])
            if v == "SLOWER":
                left.append((c, ratio))
                whole = r.ratios.get(c.label)
                if whole and ratio[2] < whole[1]:  # clearly less than the whole: spread
                    right.append((c, None))
            elif v in ("SAME", "FASTER"):
                right.append((c, r.ratios.get(c.label)))
            else:
                result.unresolved.append({
                    "case": c.label, "lo": r.lo, "hi": r.hi,
                    "why": f"{commits[mid].short} was AMBIGUOUS against "
                           f"{commits[r.lo].short}", "mid": mid, "ratio": ratio})
        if left:
            work.append(Range(r.lo, mid, [c for c, _ in left], dict(
                (c.label, ratio) for c, ratio in left)))
        inferred = [(c, ratio) for c, ratio in right if ratio is not None]
        spread = [c for c, ratio in right if ratio is None]
        if inferred:
            work.append(Range(mid, r.hi, [c for c, _ in inferred], dict(
                (c.label, ratio) for c, ratio in inferred)))
        if spread:
            work.append(Range(mid, r.hi, spread, {}, confirmed=False))
    result.found.sort(key=lambda f: f["index"])
    result.skipped.sort(key=lambda s: s["index"])
    result.complete = True
    result.seconds = time.monotonic() - began
    save(result)
    return result


def _verdict(case: dict) -> str:
    """A case's verdict: SLOWER or FASTER when either metric says so (latency first), SAME
    when both do; the failure's name for a case that failed."""
    if case["status"] != "ok":
        return case["status"].upper()
    verdicts = [case["verdicts"].get(m, {}).get("verdict", "AMBIGUOUS")
                for m in ("latency", "throughput")]
    for v in ("SLOWER", "FASTER"):
        if v in verdicts and not ({"SLOWER", "FASTER"} - {v}) & set(verdicts):
            return v
    return "SAME" if set(verdicts) == {"SAME"} else "AMBIGUOUS"


def _ratio(case: dict) -> tuple[float, float, float] | None:
    """(ratio, low, high) of a case's latency."""
    v = case.get("verdicts", {}).get("latency")
    return (v["ratio"], v["low"], v["high"]) if v else None


def _midpoint(lo: int, hi: int, skipped: set) -> int | None:
    """The commit between ``lo`` and ``hi`` nearest their middle that was not skipped."""
    middle = (lo + hi) / 2
    candidates = [i for i in range(lo + 1, hi) if i not in skipped]
    return min(candidates, key=lambda i: (abs(i - middle), i)) if candidates else None


def _unresolved(result: BisectResult, r: Range, why: str) -> None:
    for case in r.cases:
        result.unresolved.append({"case": case.label, "lo": r.lo, "hi": r.hi, "why": why})


def _log_width(low: float, high: float) -> float:
    """log(high / low); infinite for an interval with no lower end (0) or no upper end."""
    return math.log(high / low) if 0 < low <= high < math.inf else math.inf


def ratios_against_good(result: dict) -> dict:
    """Each tested commit's ratio against GOOD, per case: the product of the ratios of the
    sessions that lead to it from GOOD (base before new), with their log half-widths added."""
    out: dict = {}  # case label -> {index: (ratio, low, high)}
    for s in result["sessions"]:
        for case in s["session"]["cases"]:
            v = case.get("verdicts", {}).get("latency")
            if case["status"] != "ok" or not v:
                continue
            known = out.setdefault(case["label"], {0: (1.0, 1.0, 1.0)})
            if s["base"] in known and s["new"] not in known:
                b = known[s["base"]]
                ratio = b[0] * v["ratio"]
                half = (_log_width(b[1], b[2]) + _log_width(v["low"], v["high"])) / 2
                known[s["new"]] = (ratio, ratio * math.exp(-half), ratio * math.exp(half))
    return out
