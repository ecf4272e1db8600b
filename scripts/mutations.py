"""Mutation check: each rule below is changed in a copy of the checkout, one at a time, and its
tests must then fail. A rule whose tests still pass is one that no test pins (an assertion that
cannot fail), and the script says so and exits 1.

    python scripts/mutations.py            # all of them, about 5 minutes on two cores
    python scripts/mutations.py stalled    # those whose name holds "stalled"

Each mutation names the text it replaces, which must occur exactly once in its file
(``tests/test_docs.py`` checks that every one still applies), what replaces it, and the tests
that must catch it. The copy holds the files git knows of, as ``.ci/run``'s does; the checkout
itself is never changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTATIONS = [
    Mutation("memory join takes the last", "gdbench/axes/memory.py",
             "return next((v for v in values if v is not None), None)",
             "return next((v for v in reversed(values) if v is not None), None)",
             ("tests/test_rounds.py",)),
    Mutation("KeptByWindow join drops unread windows", "gdbench/axes/windows.py",
             "or [None] * n)]",
             "or [])]",
             ("tests/test_rounds.py",)),
    Mutation("contention join ignores hosts", "gdbench/axes/contention.py",
             "for r, h in read if h == host)",
             "for r, h in read)",
             ("tests/test_rounds.py",)),
    Mutation("contention join no ranks subtraction", "gdbench/axes/contention.py",
             "worst[\"others_cpu_per_wall\"] = max(worst[\"others_cpu_per_wall\"] - ranks_cpu, 0.0)",
             "pass",
             ("tests/test_rounds.py",)),
    Mutation("energy join sums RAPL per rank", "gdbench/axes/energy.py",
             "if isinstance(self.counter, Rapl):",
             "if False:",
             ("tests/test_energy.py",)),
    Mutation("telemetry join least throttled", "gdbench/axes/telemetry.py",
             "rank, worst = max(read, key=slowness)",
             "rank, worst = min(read, key=slowness)",
             ("tests/test_telemetry.py",)),
    Mutation("ranks keep rank 0 reading only", "gdbench/distributed/worker.py",
             "joined = [hook.across_ranks([r[hook.field][w] for _, r in per_rank], hosts)",
             "joined = [hook.across_ranks([r[hook.field][w] for _, r in per_rank[:1]], hosts[:1])",
             ("tests/test_distributed.py::test_two_ranks_through_the_launcher_verify_scale_and_report",)),
    Mutation("ranks read no hooks", "gdbench/distributed/worker.py",
             "            case.hooks = hooks\n",
             "            pass\n",
             ("tests/test_distributed.py::test_two_ranks_through_the_launcher_verify_scale_and_report",)),
    Mutation("prepare reads no case hooks", "gdbench/measure/prepare.py",
             "        if hooks:\n",
             "        if False:\n",
             ("tests/test_memory.py",)),
    Mutation("Live.result drops case readings", "gdbench/measure/prepare.py",
             "fields[\"readings\"] = {**self.fields.get(\"readings\", {}), **{",
             "fields[\"readings\"] = {**{",
             ("tests/test_memory.py",)),
    Mutation("sweep ignores --no-memory", "gdbench/runs/sweep.py",
             "case_hooks=case_hooks(device) if s.memory else (),",
             "case_hooks=case_hooks(device),",
             ("tests/test_memory.py",)),
    Mutation("merge takes first worker's readings", "gdbench/runs/workers.py",
             "value = hook.join([c.readings.get(hook.field) for c in cases],",
             "value = hook.join([c.readings.get(hook.field) for c in cases[:1]],",
             ("tests/test_rounds.py",)),
    Mutation("memory detail omits the model", "gdbench/axes/memory.py",
             "            text += f\" (model {case.writes:g})\"\n        return [text]",
             "            pass\n        return [text]",
             ("tests/test_memory.py",)),
    Mutation("memory table empty", "gdbench/axes/memory.py",
             "        if not largest:\n            return []",
             "        if True:\n            return []",
             ("tests/test_memory.py",)),
    Mutation("Checked.checked ignores resolved", "gdbench/runs/settings.py",
             "return replace(self, device=device, **self.resolved(device))",
             "return replace(self, device=device)",
             ("tests/test_sweep.py",)),
    Mutation("AbSettings sizes unchecked", "gdbench/runs/ab/records.py",
             "        if not self.sizes or any(int(n) != n or n < 1 for n in self.sizes):",
             "        if False:",
             ("tests/test_sweep.py",)),
    Mutation("window_hooks ranks filter off", "gdbench/axes/__init__.py",
             "and (not ranks or hasattr(cls, \"across_ranks\"))]",
             "]",
             ("tests/test_rounds.py", "tests/test_energy.py", "tests/test_telemetry.py")),
    Mutation("bisect does not skip a broken midpoint", "gdbench/runs/bisect.py",
             "        if broken:  # the midpoint does not run",
             "        if False:  # the midpoint does not run",
             ("tests/test_bisect.py::test_a_commit_that_breaks_the_import_is_skipped_and_named",)),
    Mutation("paired SLOWER needs no min effect", "gdbench/runs/ab/paired.py",
             "if low > 1 and ratio >= 1 + min_effect:",
             "if low > 1:",
             ("tests/test_ab.py", "tests/test_ab_stats.py")),
    Mutation("paired SAME bound loosened", "gdbench/runs/ab/paired.py",
             "if low >= 1 / (1 + threshold) and high <= 1 + threshold:",
             "if low >= 1 / (1 + 2 * threshold) and high <= 1 + 2 * threshold:",
             ("tests/test_ab.py", "tests/test_ab_stats.py")),
    Mutation("ab gate passes failures", "gdbench/cli/ab.py",
             "                  \"failed on a side: exit status 1\", markup=False, highlight=False)\n        return 1",
             "                  \"failed on a side: exit status 1\", markup=False, highlight=False)\n        return 0",
             ("tests/test_ab_gate.py",)),
    Mutation("ab gate ignores regressions", "gdbench/cli/ab.py",
             "    if fail_on_regression and slower:",
             "    if False:",
             ("tests/test_ab_gate.py", "tests/test_ab.py")),
    Mutation("compare verdict SAME widened", "gdbench/records/stats.py",
             "    if down <= lo and hi <= up:\n        return \"SAME\"",
             "    if True:\n        return \"SAME\"",
             ("tests/test_compare.py", "tests/test_stats.py")),
    Mutation("relative precision halved", "gdbench/records/stats.py",
             "    return (hi - lo) / (2 * med) if med > 0 else math.inf",
             "    return (hi - lo) / (4 * med) if med > 0 else math.inf",
             ("tests/test_stats.py",)),
    Mutation("move_aside moves anything", "gdbench/files/paths.py",
             "    what = kind(path)\n    if what:\n        raise ValueError(f\"{path} is {what}: only a regular file is ever moved aside\")",
             "    what = None",
             ("tests/test_nothing_destroyed.py",)),
    Mutation("read accepts a FIFO", "gdbench/files/paths.py",
             "    if not stat.S_ISREG(st.st_mode):\n        os.close(fd)",
             "    if False:\n        os.close(fd)",
             ("tests/test_nothing_destroyed.py", "tests/test_bad_input.py")),
    Mutation("newer schema read", "gdbench/files/versions.py",
             "    if version > VERSION:",
             "    if False:",
             ("tests/test_compare.py",)),
    Mutation("sampling ignores budget", "gdbench/measure/timing.py",
             "        if time.perf_counter() - start >= budget:\n            return True, next_check",
             "        if False:\n            return True, next_check",
             ("tests/test_stats.py", "tests/test_rounds.py")),
    Mutation("sampling ignores min samples", "gdbench/measure/timing.py",
             "    if n >= (rule.min_samples if fewest is None else fewest):",
             "    if n >= 1:",
             ("tests/test_stats.py",)),
    Mutation("grad tolerance 10x", "gdbench/core/reference.py",
             "    if not np.all(np.abs(got - grad) <= rtol * (np.abs(grad) + scale)):",
             "    if not np.all(np.abs(got - grad) <= 10 * rtol * (np.abs(grad) + scale)):",
             ("tests/test_kernels.py",)),
    Mutation("contended threshold 50%", "gdbench/axes/contention.py",
             "CONTENDED = 0.10",
             "CONTENDED = 0.50",
             ("tests/test_rounds.py",)),
    Mutation("disagree 60%", "gdbench/measure/cases.py",
             "DISAGREE = 0.20",
             "DISAGREE = 0.60",
             ("tests/test_rounds.py",)),
    Mutation("stalled at 1.5x", "gdbench/records/stats.py",
             "STALLED = 3.0",
             "STALLED = 1.5",
             ("tests/test_stats.py",)),
    Mutation("stalled at 4x", "gdbench/records/stats.py",
             "STALLED = 3.0",
             "STALLED = 4.0",
             ("tests/test_stats.py",)),
    Mutation("disagree 10%", "gdbench/measure/cases.py",
             "DISAGREE = 0.20",
             "DISAGREE = 0.10",
             ("tests/test_rounds.py",)),
    Mutation("reference gradient off by factor", "gdbench/core/reference.py",
             "    return sq / n, 2.0 * grad / n, 2.0 * scale / n",
             "    return sq / n, 2.01 * grad / n, 2.0 * scale / n",
             ("tests/test_kernels.py",)),
    Mutation("array kernel gradient factor", "gdbench/kernels/array_manual.py",
             "            self._grad = (2.0 / self.n_samples) * (self.r @ self.x)",
             "            self._grad = (2.002 / self.n_samples) * (self.r @ self.x)",
             ("tests/test_kernels.py",)),
    Mutation("concat window ids all zero", "gdbench/records/samples.py",
             "        window = np.concatenate([np.full(len(p.device), k) for k, p in enumerate(parts)])",
             "        window = np.concatenate([np.full(len(p.device), 0) for k, p in enumerate(parts)])",
             ("tests/test_rounds.py", "tests/test_stats.py", "tests/test_sweep.py")),
    Mutation("per_step not scaled", "gdbench/records/samples.py",
             "        return Samples(self.phases, self.device / k, scaled(self.host), scaled(self.batch),",
             "        return Samples(self.phases, self.device, scaled(self.host), scaled(self.batch),",
             ("tests/test_many_steps.py",)),
    Mutation("finish does not move aside", "gdbench/files/results.py",
             "            if (kept := move_aside(path)) is not None:\n                self.moved.append(kept)",
             "            if False:\n                pass",
             ("tests/test_nothing_destroyed.py", "tests/test_sweep.py")),
    Mutation("abandon always removes", "gdbench/files/results.py",
             "        if self.empty:\n            for path in self.paths:",
             "        if True:\n            for path in self.paths:",
             ("tests/test_sweep.py", "tests/test_nothing_destroyed.py")),
    Mutation("oom not deferred", "gdbench/measure/cases.py",
             "            elif case.status == \"oom\" and live:",
             "            elif False:",
             ("tests/test_sweep.py",)),
    Mutation("roofline exceed check off", "gdbench/records/run.py",
             "        return any(f is not None and f > 1 for f in fractions)",
             "        return any(f is not None and f > 1.1 for f in fractions)",
             ("tests/test_rounds.py",)),
    Mutation("wrong case still timed", "gdbench/measure/prepare.py",
             "        if wrong:\n            return CaseResult(spec, \"wrong\", wrong, **fields)",
             "        if False:\n            return CaseResult(spec, \"wrong\", wrong, **fields)",
             ("tests/test_sweep.py",)),
    Mutation("ab first-step check ignored", "gdbench/runs/ab/session.py",
             "        if wrong:\n            record.fail(\"wrong\", side.name, wrong)",
             "        if False:\n            record.fail(\"wrong\", side.name, wrong)",
             ("tests/test_ab_gate.py",)),
    Mutation("cli bad input exit 1", "gdbench/cli/__init__.py",
             "        print(f\"gdbench {args.command}: error: {exc}\", file=sys.stderr)\n        return 2",
             "        print(f\"gdbench {args.command}: error: {exc}\", file=sys.stderr)\n        return 1",
             ("tests/test_bad_input.py",)),
    Mutation("converge tolerance 10x", "gdbench/runs/converge.py",
             "\"converged\" if excess <= tol",
             "\"converged\" if excess <= 10 * tol",
             ("tests/test_converge.py",)),
    Mutation("converge patience ignored", "gdbench/runs/converge.py",
             "else \"stalled\" if since_best >= patience",
             "else \"stalled\" if False",
             ("tests/test_converge.py",)),
    Mutation("many-steps tolerance 10x", "gdbench/core/reference.py",
             "    if np.all(np.abs(got - expected) <= tol * (1 + np.abs(expected))):",
             "    if np.all(np.abs(got - expected) <= 10 * tol * (1 + np.abs(expected))):",
             ("tests/test_many_steps.py::test_the_tolerance_grows_with_k_and_catches_a_missing_step",)),
    Mutation("many-steps tolerance /10", "gdbench/core/reference.py",
             "    if np.all(np.abs(got - expected) <= tol * (1 + np.abs(expected))):",
             "    if np.all(np.abs(got - expected) <= 0.1 * tol * (1 + np.abs(expected))):",
             ("tests/test_many_steps.py::test_the_tolerance_grows_with_k_and_catches_a_missing_step",)),
]


def applies(m: Mutation, root: Path = ROOT) -> bool:
    """Whether the text ``m`` replaces occurs exactly once in its file."""
    return (root / m.file).read_text().count(m.old) == 1


def copy_checkout(into: Path) -> None:
    """The files git knows of into ``into``; outside a git checkout (a copy such as CI's), the
    tree less what no checkout holds (environments, caches, build output)."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], capture_output=True, text=True)
    if listed.returncode != 0:
        shutil.copytree(ROOT, into, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            ".git", ".venv", "venv", "__pycache__", ".pytest_cache", "*.egg-info", "build"))
        return
    for name in filter(None, listed.stdout.split("\0")):
        source = ROOT / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)


def caught(m: Mutation, copy: Path) -> tuple[bool, str]:
    """(whether the tests failed with ``m`` made in ``copy``, pytest's last line)."""
    path = copy / m.file
    original = path.read_text()
    path.write_text(original.replace(m.old, m.new))
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p",
                               "no:cacheprovider", *m.tests], cwd=copy, capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": str(copy),
                                              # no cached bytecode: a mutation of the same size
                                              # within a second would run the cached original
                                              "PYTHONDONTWRITEBYTECODE": "1"})
    finally:
        path.write_text(original)
    lines = done.stdout.strip().splitlines()
    return done.returncode not in (0, 5), lines[-1] if lines else ""  # 5: no test ran


def main(argv: list[str]) -> int:
    chosen = [m for m in MUTATIONS if not argv or any(a in m.name for a in argv)]
    stale = [m.name for m in chosen if not applies(m)]
    if stale:
        print("no longer applies (its text is not in its file once): " + ", ".join(stale),
              file=sys.stderr)
        return 2
    survived = []
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder)
        copy_checkout(copy)
        for m in chosen:
            failed, last = caught(m, copy)
            print(f"{'caught  ' if failed else 'SURVIVED'} {m.name}: {last}", flush=True)
            if not failed:
                survived.append(m.name)
    print(f"{len(chosen) - len(survived)} of {len(chosen)} mutations caught")
    return 1 if survived else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
