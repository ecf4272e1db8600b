"""``gdbench noise --paired``: what ``gdbench ab`` can promise on this machine.

Two kinds of sessions of one kernel at every size, for each kernel, one kernel's after the
other's; the A/A sessions repeated ``aa_runs`` times, the power sessions ``runs`` times:

- **A/A**: the kernel against itself, a plain ``ab X X`` at each size. Any FASTER or SLOWER is a
  false verdict; SAME is what a user wants to read.
- **Power**: the kernel against itself made slower by a calibrated amount at each size, a
  session for each slowdown (``Case.slowdown``: every step of the new side spins for that
  fraction of its own time, the base side's steps are wrapped alike without the spin). The slowdown's true size is
  measured in the worker, step by step, independently of ``ab``'s statistics; the share of
  comparisons called SLOWER against it is the power.

Every session is a plain ``gdbench ab`` session and keeps its own file; ``paired.json`` holds a
row per comparison (case and metric) and each session's cost, and every table is derived from
those rows (``gdbench.analysis.ab_study``).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from gdbench.files.paths import check_target, move_aside
from gdbench.files.results import Output, write_atomic
from gdbench.files.versions import NOISE_VERSION
from gdbench.runs.ab.records import AbSettings, Case, pair_cases, slim
from gdbench.runs.ab.session import run_ab
from gdbench.runs.ab.sides import Side

SLOWDOWNS = (0.02, 0.05, 0.10, 0.20)


def sessions_of(kernels: list[str], runs: int, slowdowns, aa_runs: int | None = None
                ) -> list[tuple[str, str, float | None, int]]:
    """(kind, kernel, slowdown, run) of every session, in the order they are measured."""
    aa_runs = runs if aa_runs is None else aa_runs
    plan = []
    for run in range(max(runs if slowdowns else 0, aa_runs)):
        for kernel in kernels:
            if run < aa_runs:
                plan.append(("aa", kernel, None, run))
            if run < runs:
                plan += [("power", kernel, s, run) for s in slowdowns]
    return plan


def file_name(kind: str, kernel: str, slowdown: float | None, run: int) -> str:
    slowed = f"-{100 * slowdown:g}" if slowdown is not None else ""
    return f"paired-{kind}-{kernel}{slowed}-{run + 1}.json"


def planned_files(folder: Path, plan) -> list[Path]:
    """Every file the study writes, so that each is checked before anything is measured."""
    names = [file_name(*session) for session in plan]
    return [check_target(folder / name, "--out-dir")
            for name in names + ["coverage.json", "paired.json"]]


def study(kernels: list[str], settings: AbSettings, runs: int, folder: Path,
          slowdowns=SLOWDOWNS, on_session=None, aa_runs: int | None = None,
          samples: bool = False) -> dict:
    """The A/A sessions and, with ``slowdowns``, the power sessions; the summary, also written
    to ``folder/paired.json`` (an earlier one moved aside). Each session's file keeps its
    windows' medians (``slim``), or every sample with ``samples``."""
    plan = sessions_of(kernels, runs, slowdowns, aa_runs)
    files = planned_files(folder, plan)
    sides = (Side("base"), Side("new"))
    summary = {"tool": "gdbench-noise-paired", "schema_version": NOISE_VERSION,
               "settings": dict(vars(settings)), "kernels": kernels, "runs": runs,
               "aa_runs": runs if aa_runs is None else aa_runs,
               "slowdowns": list(slowdowns), "sessions": [], "comparisons": []}
    started = time.time()
    for index, ((kind, kernel, slowdown, run), path) in enumerate(zip(plan, files)):
        if on_session:
            on_session(kind, kernel, slowdown, run, index, len(plan))
        cases = (pair_cases([kernel], [kernel], settings.sizes) if kind == "aa" else
                 [Case(kernel, kernel, n, slowdown) for n in settings.sizes])
        output = Output(path)
        result = run_ab(sides, cases, replace(settings, seed=settings.seed + index), output.save)
        output.finish(result)
        session = result.to_dict()
        if not samples:
            write_atomic(path, json.dumps(slim(session), indent=1) + "\n")
        summary["sessions"].append({
            "kind": kind, "kernel": kernel, "slowdown": slowdown, "run": run + 1,
            "file": path.name, "cases": len(cases), "rounds": result.rounds,
            "blocks": result.blocks, "seconds": result.seconds,
            "measuring_share": session["measuring_share"]})
        summary["comparisons"] += comparisons(session, kind, run + 1, path.name)
    summary["seconds"] = sum(s["seconds"] for s in summary["sessions"])
    summary["started"], summary["finished"] = started, time.time()
    kept = move_aside(files[-1])
    write_atomic(files[-1], json.dumps(summary, indent=1) + "\n")
    summary["kept"] = str(kept) if kept else None
    return summary


def comparisons(session: dict, kind: str, run: int, file: str) -> list[dict]:
    """A row for each case and metric of ``session``: its verdict and interval, and, for a
    slowed case, the slowdown as it came out in the new side's windows (their median)."""
    rows = []
    for case in session["cases"]:
        calibrated = [w["slowdown"] for w in case["windows"]
                      if w["side"] == "new" and w.get("slowdown") is not None]
        for metric in ("latency", "throughput"):
            v = case["verdicts"].get(metric) or {}
            rows.append({
                "kind": kind, "run": run, "file": file, "kernel": case["new"],
                "n": case["n_samples"], "slowdown": case.get("slowdown"),
                "calibrated": float(np.median(calibrated)) if calibrated else None,
                "metric": metric, "status": case["status"],
                "verdict": v.get("verdict", case["status"].upper()), "ratio": v.get("ratio"),
                "low": v.get("low"), "high": v.get("high"), "blocks": v.get("blocks"),
                "decided_at_s": next((look["seconds"] for look in session.get("looks", [])
                                      if look["blocks"] == case["decided_at"]), None)})
    return rows
