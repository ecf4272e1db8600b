"""A sweep in several fresh worker processes, one after another, as pyperf runs its workers.

One process understates the spread between runs: its memory layout, its compiled code and its
caches are set once. With ``processes`` P, each worker is a new ``python -m gdbench run``
that measures every case in its share of the windows and writes a results file; the parent
measures the roofline at every size before each worker and joins the workers' windows into
one result per case, so that a case's precision covers the variation between processes too.
"""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from gdbench.files.results import read_json
from gdbench import axes
from gdbench.measure.roofline import roofline_at
from gdbench.records.results import CaseResult
from gdbench.records.run import RunResult
from gdbench.records.samples import Samples
from gdbench.runs.settings import Settings


def worker_command(settings: Settings, windows: int, out: Path) -> list[str]:
    """The command line of one worker measuring ``windows`` of the sweep of ``settings``: the
    settings go whole, as JSON in a file beside ``out``, so that none is lost on the way."""
    given = out.with_suffix(".settings.json")
    given.write_text(settings.for_worker(windows).to_json())
    return [sys.executable, "-m", "gdbench", "run", "--settings-file", str(given), "--quiet",
            "--out", str(out)]


def merge(case_lists: list[list[CaseResult]]) -> list[CaseResult]:
    """One result per case from the workers' results: their windows joined, in worker order."""
    merged = []
    for index, first in enumerate(case_lists[0]):
        cases = [cases[index] for cases in case_lists if index < len(cases)]
        failed = next((c for c in cases if not c.ok), None)
        if failed is not None:
            merged.append(failed)
            continue
        readings = {}
        for hook in axes.AXES:  # each axis joins the workers' values as it keeps them
            value = hook.join([c.readings.get(hook.field) for c in cases],
                              [c.windows for c in cases])
            if value is not None:
                readings[hook.field] = value
        merged.append(replace(first, samples=Samples.join([c.samples for c in cases]),
                              remeasured=any(c.remeasured for c in cases), readings=readings))
    return merged


def run_workers(result: RunResult, settings: Settings, roofline: bool, save,
                working_sets=()) -> None:
    """Fill ``result.cases`` from ``settings.processes`` workers, saving after each; with
    ``roofline``, the roofline is measured at each of ``working_sets`` (bytes) before every
    worker."""
    per_worker = max(1, math.ceil(settings.windows / settings.processes))
    case_lists = []
    with tempfile.TemporaryDirectory(prefix="gdbench-workers-") as folder:
        for worker in range(settings.processes):
            if roofline:
                for nbytes in working_sets:
                    result.rooflines.setdefault(nbytes, []).append(
                        roofline_at(settings.device, nbytes))
            out = Path(folder) / f"worker-{worker + 1}.json"
            done = subprocess.run(worker_command(settings, per_worker, out),
                                  capture_output=True, text=True)
            if done.returncode != 0:
                lines = (done.stderr.strip() or f"exit status {done.returncode}").splitlines()
                raise RuntimeError(f"worker {worker + 1} failed: {lines[-1]}")
            worker_run = read_json(out)
            if not case_lists:
                result.environment = worker_run.environment
            case_lists.append(worker_run.cases)
            result.cases = merge(case_lists)
            save()
