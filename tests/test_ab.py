"""gdbench ab: the paired verdict on synthetic windows, and real sides in worker processes."""

import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from gdbench import cli
from gdbench.core.reference import loss_and_grad
from gdbench.runs.ab import paired as paired_stats
from gdbench.runs.ab import pool, session
from gdbench.runs.ab.paired import paired, t_quantile
from gdbench.runs.ab.records import AbSettings, Case, pair_cases
from gdbench.runs.ab.session import run_ab
from gdbench.runs.ab.sides import Side
from gdbench.runs.ab.worker import make_data
from tests.conftest import kernels_on
from tests.plugins import REPO, plugin_env

BUSY = {"run_delay_fraction": 0.6, "others_cpu_per_wall": 1.0}
SLOWED = """
import numpy as np
from gdbench.kernels.numpy_manual import NumpyManual

class Slowed(NumpyManual):
    name = "numpy-slowed"
    def forward(self):
        for _ in range(6):  # six more passes over x than numpy-manual makes
            np.multiply(self.x, 1.0, out=self._scratch)
        super().forward()
    def _setup(self, x, y, w0):
        super()._setup(x, y, w0)
        self._scratch = np.empty_like(self.x)
"""


@pytest.mark.parametrize("p,dof,exact", [(0.975, 1, 12.706), (0.975, 5, 2.571),
                                         (0.995, 2, 9.925), (0.9975, 4, 5.598)])
def test_t_quantile(p, dof, exact):
    assert t_quantile(p, dof) == pytest.approx(exact, abs=1e-3)


def test_a_drift_that_moves_both_sides_gives_no_verdict_and_a_real_ratio_is_found():
    rng = np.random.default_rng(0)
    drift = np.exp(rng.normal(0, 0.3, 12))  # the machine's speed changes 30% between rounds
    base = 1e-4 * drift * np.exp(rng.normal(0, 0.01, 12))
    same = 1e-4 * drift * np.exp(rng.normal(0, 0.01, 12))
    slower = 1.2e-4 * drift * np.exp(rng.normal(0, 0.01, 12))
    assert paired(np.log(same / base), 0.05, 0.02, 0.05).verdict == "SAME"
    found = paired(np.log(slower / base), 0.05, 0.02, 0.05)
    assert found.verdict == "SLOWER" and found.ratio == pytest.approx(1.2, rel=0.03)
    # unpaired, the same drift is all that an interval over the rounds would see
    assert paired(np.log(same) - np.log(base[::-1]), 0.05, 0.02, 0.05).verdict == "AMBIGUOUS"


class FakeWorker:
    """Windows around ``median * ratio`` of the side, a drift shared by both sides over time,
    and the first ``busy`` windows of each side contended; each window takes 0.1 s of the
    session's clock (``now``), and no real time."""

    ratio = {"base": 1.0, "new": 1.0}
    busy = 0
    busy_sides = ("base", "new")
    calls = []
    requests = []
    now = 0.0
    start_cost = 0.0  # seconds of the session's clock a worker takes to start
    process = 0.0  # standard deviation of a new-side process's log offset
    offsets = np.random.default_rng(3)

    def __init__(self, side, timeout=None, extra_env=None):
        self.side = side
        FakeWorker.now += self.start_cost
        # what belongs to this process: an offset of its own on the new side
        self.offset = FakeWorker.offsets.normal(0, FakeWorker.process) if side.name == "new" \
            else 0.0

    def send(self, request):
        self.sent = request

    def receive(self, timeout=None):
        if self.sent.get("op") == "warm":
            return {"ok": True, "failed": 0}
        return self.ask(self.sent)

    def ask(self, request, timeout=None):
        if request.get("op") == "check":
            return {"ok": True}
        FakeWorker.now += 0.1
        FakeWorker.calls.append(self.side.name)
        FakeWorker.requests.append((self.side.name, request))
        count = FakeWorker.calls.count(self.side.name)
        # the machine slows down and speeds up by 30% over about 300 windows
        level = 1e-4 * self.ratio[self.side.name] * (1 + 0.3 * math.sin(len(self.calls) / 50))
        level *= math.exp(getattr(self, "offset", 0.0))
        rng = np.random.default_rng(len(FakeWorker.calls))
        slowdown = request.get("slowdown") if self.side.name == "new" else None
        level *= 1 + (slowdown or 0.0)
        answer = {"latency": list(level * (1 + 0.01 * rng.standard_normal(20))),
                  "throughput": list(level * (1 + 0.01 * rng.standard_normal(5))),
                  "batch_size": 10, "seconds": 0.1, "slowdown": slowdown,
                  "contention": BUSY if count <= self.busy and self.side.name in self.busy_sides
                  else None}
        if request["check"]:
            x, y = make_data(request["n"], request["d"], request["dtype"], request["seed"])
            loss, grad, _ = loss_and_grad(x, y, np.zeros(request["d"]))
            answer["check"] = {"loss": loss, "grad": list(grad),
                               "weight": list(-request["lr"] * grad)}
        return answer

    def pause(self):
        pass

    def resume(self):
        pass

    def close(self):
        pass


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(pool, "Worker", FakeWorker)
    clock = SimpleNamespace(monotonic=lambda: FakeWorker.now)
    monkeypatch.setattr(session, "time", clock)
    monkeypatch.setattr(pool, "time", clock)
    FakeWorker.now = 0.0
    FakeWorker.calls = []
    FakeWorker.requests = []
    FakeWorker.busy = 0
    FakeWorker.busy_sides = ("base", "new")
    FakeWorker.start_cost = 0.0
    FakeWorker.process = 0.0
    FakeWorker.offsets = np.random.default_rng(3)
    FakeWorker.ratio = {"base": 1.0, "new": 1.0}
    return FakeWorker


SIDES = (Side("base"), Side("new"))


def test_a_drift_shared_by_both_sides_is_same_in_the_session(fake):
    result = run_ab(SIDES, [Case("k", "k", 1000)], AbSettings(sizes=(1000,)))
    record = result.cases[0]
    assert {m: v["verdict"] for m, v in record.verdicts.items()} == {"latency": "SAME",
                                                                     "throughput": "SAME"}
    assert record.decided_at >= 4 and result.blocks == record.decided_at
    assert sum(look["level"] for look in result.looks) <= 0.05 + 1e-12
    assert record.verdicts["latency"]["level"] == result.looks[-1]["level"]


def test_a_real_slowdown_is_found_in_the_session(fake):
    fake.ratio = {"base": 1.0, "new": 1.25}
    record = run_ab(SIDES, [Case("k", "k", 1000)], AbSettings(sizes=(1000,))).cases[0]
    assert record.verdicts["latency"]["verdict"] == "SLOWER"
    assert record.verdicts["latency"]["low"] < 1.25 < record.verdicts["latency"]["high"]


FIXED = dict(sizes=(1000,), rounds_per_block=3, min_blocks=4, max_blocks=4)


def test_contended_windows_are_measured_again_with_their_partner_and_never_paired(fake):
    fake.busy = 2  # each side's first two windows
    record = run_ab(SIDES, [Case("k", "k", 1000)], AbSettings(**FIXED)).cases[0]
    contended = [w for w in record.windows if w["contended"]]
    assert len(contended) == 4 and all(w["round"] == 0 for w in contended)
    assert len(record.pairs) == 12 and record.pairs[0]["attempt"] == 2  # the third paired
    # one side held back: both windows of the pair are measured again, never one alone
    fake.busy, fake.busy_sides, fake.calls = 1, ("base",), []
    record = run_ab(SIDES, [Case("k", "k", 1000)], AbSettings(**FIXED)).cases[0]
    first = [w for w in record.windows if w["round"] == 0]
    assert sorted((w["side"], w["attempt"], w["contended"]) for w in first) == [
        ("base", 0, True), ("base", 1, False), ("new", 0, False), ("new", 1, False)]
    assert record.pairs[0]["attempt"] == 1


def test_both_windows_of_a_pair_share_their_layout_and_cpu(fake):
    run_ab(SIDES, [Case("k", "k", 1000), Case("k", "k", 10)], AbSettings(**FIXED))
    requests = [r for _, r in fake.requests]
    pairs = list(zip(requests[::2], requests[1::2]))
    assert all(a["padding"] == b["padding"] and a.get("cpu") == b.get("cpu")
               and a["n"] == b["n"] for a, b in pairs)
    assert len({a["padding"] for a, _ in pairs}) > len(pairs) // 2  # drawn anew for each pair


def test_a_session_ends_within_its_budget(fake):
    # no threshold: never SAME, and no difference: undecided to the end
    result = run_ab(SIDES, [Case("k", "k", 1000)], AbSettings(sizes=(1000,), max_seconds=10,
                                                             threshold=0.0))
    assert result.complete and result.seconds <= 10 and result.blocks >= 4
    assert result.looks[-1]["final"] and result.looks[-1]["level"] > 0.04
    assert sum(look["level"] for look in result.looks) == pytest.approx(0.05)
    # windows of 0.1 s: a block of 100 rounds would outlast 3 s; no window starts after it
    cut = run_ab(SIDES, [Case("k", "k", 1000)], AbSettings(sizes=(1000,), max_seconds=3,
                                                          rounds_per_block=100))
    assert cut.blocks == 1 and cut.seconds <= 3.2 + 1e-9 and cut.rounds in (15, 16)
    assert cut.cases[0].verdicts["latency"]["verdict"] == "AMBIGUOUS"


@pytest.mark.parametrize("start_cost,process,fewer", [(2.0, 0.0, False), (0.0, 0.0, True),
                                                       (2.0, 0.05, True)])
def test_the_rounds_per_block_follow_the_variance_components(fake, start_cost, process, fewer):
    """After two blocks the schedule is chosen from the data, as Kalibera and Jones do: many
    rounds a block where a block costs much (processes take 2 s to start) and the processes
    add nothing; few where blocks are free or each pair of processes has an offset of its own
    (5% here)."""
    fake.start_cost, fake.process = start_cost, process
    result = run_ab(SIDES, [Case("k", "k", 1000)], AbSettings(sizes=(1000,), max_seconds=60,
                                                             min_effect=0.0, threshold=0.0))
    rounds = [b["rounds"] for b in result.schedule]
    assert rounds[:2] == [session.FIRST_ROUNDS] * 2
    assert (max(rounds[2:]) <= 6) == fewer, rounds
    best = result.cases[0].best_rounds
    assert (best <= 6) == fewer, best
    assert result.to_dict()["cases"][0]["best_rounds_per_block"] == best


def test_each_block_starts_fresh_workers_and_its_variance_components_are_recorded(fake,
                                                                                 monkeypatch):
    started = []
    monkeypatch.setattr(FakeWorker, "__init__", lambda self, side, timeout=None, extra_env=None: (
        setattr(self, "side", side), started.append(side.name))[0])
    record = run_ab(SIDES, [Case("k", "k", 1000)], AbSettings(**FIXED)).cases[0]
    assert sorted(started) == ["base"] * 4 + ["new"] * 4  # a pair of fresh ones a block
    components = record.components["latency"]
    assert components["blocks"] == 4 and components["pairs"] == 12
    assert math.isfinite(components["rounds"]) and math.isfinite(components["processes"])


def test_variance_components_separate_processes_from_rounds():
    rng = np.random.default_rng(1)
    offsets = rng.normal(0, 0.10, 40)  # each block's processes: 10%
    pairs = [{"block": b, "latency": offsets[b] + rng.normal(0, 0.02)}
             for b in range(40) for _ in range(9)]
    c = paired_stats.variance_components(pairs, "latency")
    assert c["processes"] == pytest.approx(0.10, rel=0.3)
    assert c["rounds"] == pytest.approx(0.02, rel=0.25)
    quiet = paired_stats.variance_components(
        [{"block": b, "latency": rng.normal(0, 0.02)} for b in range(40) for _ in range(9)],
        "latency")
    assert quiet["processes"] < 0.01


def test_a_wrong_side_leaves_the_session(fake, monkeypatch):
    real_ask = FakeWorker.ask

    def wrong(self, request, timeout=None):
        answer = real_ask(self, request)
        if "check" in answer and self.side.name == "new":
            answer["check"]["grad"] = [2 * g for g in answer["check"]["grad"]]
        return answer

    monkeypatch.setattr(FakeWorker, "ask", wrong)
    record = run_ab(SIDES, [Case("k", "k", 1000)], AbSettings(sizes=(1000,))).cases[0]
    assert record.status == "wrong" and record.message.startswith("new side (k): gradient")
    assert record.pairs == []


def test_pairing_kernels():
    assert pair_cases(["a"], ["b", "c"], [10]) == [Case("a", "b", 10), Case("a", "c", 10)]
    with pytest.raises(ValueError, match="give as many on each"):
        pair_cases(["a", "b"], ["c", "d", "e"], [10])


def test_a_real_ab_in_worker_processes_finds_extra_work_and_writes_its_files(tmp_path,
                                                                              monkeypatch):
    env = plugin_env(tmp_path, "slowed", {"numpy-slowed": "Slowed"}, SLOWED)
    monkeypatch.setenv("PYTHONPATH", env["PYTHONPATH"])  # the workers' processes
    monkeypatch.syspath_prepend(str(tmp_path))  # this one
    monkeypatch.chdir(tmp_path)
    status = cli.main(["ab", "numpy-manual", "numpy-manual,numpy-slowed", "--device", "cpu",
                       "--sizes", "1e5", "--window", "0.02", "--min-blocks", "3",
                       "--max-blocks", "3", "--rounds-per-block", "2", "--markdown", "pr.md",
                       "--quiet", "--fail-on-regression"])
    d = json.loads((tmp_path / "gdbench-ab.json").read_text())
    assert d["tool"] == "gdbench-ab" and d["complete"]
    same, slowed = d["cases"]
    assert same["status"] == slowed["status"] == "ok"
    assert slowed["verdicts"]["latency"]["ratio"] > 1.3
    assert slowed["verdicts"]["latency"]["verdict"] in ("SLOWER", "AMBIGUOUS")
    assert status == (1 if slowed["verdicts"]["latency"]["verdict"] == "SLOWER"
                      or slowed["verdicts"]["throughput"]["verdict"] == "SLOWER" else 0)
    assert {w["side"] for w in same["windows"]} == {"base", "new"}
    assert all(len(w["latency"]) >= 5 for w in same["windows"])
    assert "| numpy-slowed vs numpy-manual N=1e5 | latency |" in (tmp_path / "pr.md").read_text()


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                   check=True, capture_output=True)


def test_two_revisions_run_from_cached_worktrees(tmp_path, monkeypatch):
    """A repository holding this gdbench, with a kernel changed in a second commit: ab of the
    two revisions runs each from its own worktree, and sees the change."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "gdbench", repo / "gdbench",
                    ignore=shutil.ignore_patterns("__pycache__"))
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    manual = repo / "gdbench" / "kernels" / "numpy_manual.py"
    manual.write_text(manual.read_text() + SLOWER_FORWARD)
    git(repo, "commit", "-q", "-am", "slower")
    base = Side.of_revision("base", "HEAD~1", repo)
    assert Side.of_revision("base", "HEAD~1", repo) == base  # the cached worktree is reused
    assert base.source.startswith("revision HEAD~1 (") and (Path(base.path) / "gdbench").is_dir()
    with pytest.raises(ValueError, match="--new-rev nope"):
        Side.of_revision("new", "nope", repo)
    monkeypatch.chdir(repo)
    status = cli.main(["ab", "numpy-manual", "--base-rev", "HEAD~1", "--new-rev", "HEAD",
                       "--device", "cpu", "--sizes", "1e5", "--window", "0.02",
                       "--rounds-per-block", "2", "--min-blocks", "3", "--max-blocks", "3",
                       "--quiet", "--out", str(tmp_path / "ab.json")])
    assert status == 0
    [case] = json.loads((tmp_path / "ab.json").read_text())["cases"]
    assert case["status"] == "ok" and case["verdicts"]["latency"]["ratio"] > 1.3


SLOWER_FORWARD = """

_forward = NumpyManual.forward


def _slower_forward(self):
    for _ in range(8):
        self.x.copy()
    _forward(self)


NumpyManual.forward = _slower_forward
"""


def test_the_worker_runs_as_a_script_and_answers_one_line_per_request():
    worker = pool.Worker(Side("base"))
    try:
        answer = worker.ask({"kernel": "numpy-manual", "device": "cpu", "dtype": "float64",
                             "n": 1000, "d": 2, "seed": 3, "lr": 0.01, "budget": 0.01,
                             "check": True})
        assert set(answer) >= {"latency", "throughput", "batch_size", "contention", "check"}
        assert "error" in worker.ask({"kernel": "nope", "device": "cpu", "dtype": "float64",
                                      "n": 10, "d": 1, "seed": 0, "lr": 0.01, "budget": 0.01})
    finally:
        worker.close()


def test_cli_bad_ab_input_is_one_line(capsys):
    for args, message in [
        (["ab", "nope", "numpy-manual"], "unknown kernel 'nope'"),
        (["ab", "--device", "cpu", "--dtype", "float32,float64"], "takes one --dtype"),
        (["ab", "--device", "cpu", "--base-python", "/nonexistent/python"], "is not an exec"),
        (["ab", "--device", "cpu", "--min-blocks", "2"], "need 3 <= min blocks"),
        (["ab", "--device", "cpu", "--rounds-per-block", "0"], "rounds per block must be"),
        (["ab", "--device", "cpu", "--out", "-"], "--out - :"),
    ]:
        assert cli.main(args) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_ab_is_in_the_help():
    out = subprocess.run([sys.executable, "-m", "gdbench", "ab", "--help"], capture_output=True,
                         text=True, timeout=60).stdout
    assert "--base-rev" in out and "--fail-on-regression" in out


def test_the_paired_study_counts_false_verdicts_and_power(fake, tmp_path):
    from gdbench.analysis.ab_study import paired_study_markdown
    from gdbench.runs.ab import study

    summary = study.study(["a", "b"], AbSettings(sizes=(1000, 10**5), max_seconds=20), 1,
                          tmp_path, slowdowns=(0.02, 0.3), aa_runs=2)
    rows = summary["comparisons"]
    aa = [r for r in rows if r["kind"] == "aa"]
    assert len(aa) == 16  # 2 kernels x 2 runs x 2 sizes x 2 metrics
    assert {r["verdict"] for r in aa} == {"SAME"}
    big = [r for r in rows if r["slowdown"] == 0.3]
    assert len(big) == 8 and {r["verdict"] for r in big} == {"SLOWER"}
    assert all(r["calibrated"] == pytest.approx(0.3) for r in big)
    assert all(1.25 < r["ratio"] < 1.35 for r in big)
    names = sorted(p.name for p in tmp_path.glob("paired-*.json"))
    assert names == ["paired-aa-a-1.json", "paired-aa-a-2.json", "paired-aa-b-1.json",
                     "paired-aa-b-2.json", "paired-power-a-2-1.json", "paired-power-a-30-1.json",
                     "paired-power-b-2-1.json", "paired-power-b-30-1.json"]
    written = json.loads((tmp_path / "paired.json").read_text())
    assert written["tool"] == "gdbench-noise-paired" and written["comparisons"] == rows
    text = "\n".join(paired_study_markdown(written))
    assert "| **all** | 16 | 0 (0%) | 16 (100%) | 0 | 0 |" in text
    assert "| +30% | +30.0% | 8 | 8 (100%) | 0 | 0 | 0 |" in text


def test_the_example_plugins_slowdowns_are_about_what_they_say(tmp_path, monkeypatch):
    source = (REPO / "examples" / "slowed-plugin" / "gdbench_slowed.py").read_text()
    plugin_env(tmp_path, "gdbench_slowed", {"numpy-slowed-30": "Slowed30"}, source)
    monkeypatch.syspath_prepend(str(tmp_path))
    import gdbench

    kernel = gdbench.make_kernel("numpy-slowed-30", "cpu", "float64")
    x, y = make_data(100_000, 1, "float64", 0)
    kernel.prepare(x, y, w0=0.0, lr=0.01)
    kernel.step()
    reference = loss_and_grad(x, y, np.zeros(1))
    assert kernel.grad == pytest.approx(reference[1], rel=1e-9)  # the same step, more work
    assert kernel._extra >= 1


def test_a_session_cut_short_by_its_budget_gives_no_verdict_on_too_few_blocks(fake):
    fake.ratio = {"base": 1.0, "new": 1.5}  # plain to see, but only one block was measured
    result = run_ab(SIDES, [Case("k", "k", 1000)], AbSettings(sizes=(1000,), max_seconds=0.5))
    v = result.cases[0].verdicts["latency"]
    assert result.blocks == 1 and v["verdict"] == "AMBIGUOUS"
    assert v["why"] == "only 1 block: a verdict needs 6"


def test_the_side_not_measured_is_paused(tmp_path):
    """A paused worker takes no CPU time: its idle thread pools cannot spin against the other
    side's window."""
    worker = pool.Worker(Side("base"))
    try:
        worker.pause()
        for _ in range(100):  # the signal is delivered asynchronously
            state = open(f"/proc/{worker.process.pid}/stat").read().split(")")[1].split()[0]
            if state == "T":
                break
            time.sleep(0.01)
        assert state == "T"  # stopped
        worker.resume()
        assert "latency" in worker.ask({"kernel": "numpy-manual", "device": "cpu",
                                        "dtype": "float32", "n": 100, "d": 1, "seed": 0,
                                        "lr": 0.01, "budget": 0.01, "check": False})
    finally:
        worker.close()


def test_two_python_environments_are_two_sides(tmp_path, monkeypatch):
    """--base-python and --new-python: each side's workers run that interpreter with its own
    gdbench (here both are this environment's, with this checkout first on the path)."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.chdir(tmp_path)
    status = cli.main(["ab", "numpy-manual", "--base-python", sys.executable, "--new-python",
                       sys.executable, "--device", "cpu", "--sizes", "1e3", "--window", "0.01",
                       "--rounds-per-block", "1", "--min-blocks", "3", "--max-blocks", "3",
                       "--quiet"])
    d = json.loads((tmp_path / "gdbench-ab.json").read_text())
    assert status == 0 and d["cases"][0]["status"] == "ok"
    assert d["sides"]["base"]["source"] == f"the environment of {sys.executable}"
    assert d["sides"]["base"]["path"] is None and d["blocks"] == 3


@pytest.mark.cuda
def test_ab_on_cuda_takes_the_gpu_in_turn(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kernel = "triton-fused" if "triton-fused" in kernels_on("cuda") else "torch-manual"
    assert cli.main(["ab", kernel, "--device", "cuda", "--sizes", "1e6", "--window", "0.02",
                     "--rounds-per-block", "2", "--max-blocks", "4", "--quiet"]) == 0
    [case] = json.loads((tmp_path / "gdbench-ab.json").read_text())["cases"]
    assert case["status"] == "ok" and len(case["pairs"]) == 8
