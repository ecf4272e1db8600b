"""``gdbench noise --paired``: what ``gdbench ab`` can promise on this machine.

Two kinds of sessions, each repeated ``runs`` times:

- A/A: every kernel against itself. Any FASTER or SLOWER is a false verdict; SAME is what a
  user wants to read.
- Power: a base kernel against copies of it slowed by extra work in every step (the example
  plugin ``examples/slowed-plugin``: ``numpy-slowed-5``, ``-10`` and ``-30``, about 5, 10 and
  30% slower). The share called SLOWER is the power against that slowdown; the ratio ``ab``
  measured is reported beside it, since the slowdown is sized, not exact.

Every session is a plain ``gdbench ab`` session and keeps its own file.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from gdbench.files.paths import check_target, move_aside
from gdbench.files.results import Output, write_atomic
from gdbench.kernels import registry
from gdbench.runs.ab.session import AbSettings, pair_cases, run_ab
from gdbench.runs.ab.sides import Side

SLOWED = ("numpy-slowed-5", "numpy-slowed-10", "numpy-slowed-30")
BASE = "numpy-manual"


def planned_files(folder: Path, runs: int, power: bool) -> list[Path]:
    """Every file the study writes, so that each is checked before anything is measured."""
    names = [f"paired-aa-{i + 1}.json" for i in range(runs)]
    if power:
        names += [f"paired-power-{i + 1}.json" for i in range(runs)]
    return [check_target(folder / name, "--out-dir") for name in names + ["paired.json"]]


def slowed_kernels() -> list[str]:
    """The slowed copies installed here; ValueError saying how to install them otherwise."""
    missing = [name for name in SLOWED if name not in registry.kernel_names()]
    if missing:
        raise ValueError("the power study needs the example plugin with numpy-slowed-5, -10 "
                         "and -30: pip install -e examples/slowed-plugin (or --no-power)")
    return list(SLOWED)


def study(kernels: list[str], settings: AbSettings, runs: int, folder: Path, power: bool = True,
          on_session=None) -> dict:
    """The A/A sessions and, with ``power``, the slowed ones; the summary, also written to
    ``folder/paired.json`` (an earlier one moved aside)."""
    files = planned_files(folder, runs, power)
    slowed = slowed_kernels() if power else []
    sides = (Side("base"), Side("new"))
    sessions = [("aa", i, pair_cases(kernels, kernels, settings.sizes)) for i in range(runs)]
    if power:
        sessions += [("power", i, pair_cases([BASE], slowed, settings.sizes))
                     for i in range(runs)]
    summary = {"tool": "gdbench-noise-paired", "settings": dict(vars(settings)),
               "kernels": kernels, "runs": runs, "sessions": [], "aa": {}, "power": {}}
    verdicts: dict = {"aa": [], "power": {}}
    for (kind, index, cases), path in zip(sessions, files):
        if on_session:
            on_session(kind, index, runs)
        output = Output(path)
        result = run_ab(sides, cases, settings, output.save)
        output.finish(result)
        summary["sessions"].append({"kind": kind, "file": str(path), "rounds": result.rounds,
                                    "blocks": result.blocks, "seconds": result.seconds})
        for record in result.cases:
            for metric, v in record.verdicts.items():
                if kind == "aa":
                    verdicts["aa"].append(v["verdict"])
                else:
                    verdicts["power"].setdefault((record.case.new, metric), []).append(
                        (v["verdict"], v["ratio"]))
    n = len(verdicts["aa"])
    summary["aa"] = {"comparisons": n, **{v: verdicts["aa"].count(v) for v in
                                          ("FASTER", "SLOWER", "SAME", "AMBIGUOUS")},
                     "false_rate": (verdicts["aa"].count("FASTER")
                                    + verdicts["aa"].count("SLOWER")) / n if n else None,
                     "same_rate": verdicts["aa"].count("SAME") / n if n else None}
    for (kernel, metric), got in sorted(verdicts["power"].items()):
        summary["power"][f"{kernel} {metric}"] = {
            "comparisons": len(got), "slower": sum(v == "SLOWER" for v, _ in got) / len(got),
            "median_ratio": float(np.nanmedian([r for _, r in got]))}
    summary["seconds"] = sum(s["seconds"] for s in summary["sessions"])
    summary["finished"] = time.time()
    kept = move_aside(files[-1])
    write_atomic(files[-1], json.dumps(summary, indent=1) + "\n")
    summary["kept"] = str(kept) if kept else None
    return summary
