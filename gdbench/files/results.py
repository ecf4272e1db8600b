"""Result records of a sweep, and their JSON and CSV files.

A file is always whole: it is written to a temporary file beside the target and renamed over it,
so a run stopped at any moment leaves the last complete version on disk.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from gdbench.files.paths import check_target, move_aside, partial_path, read_input
from gdbench.files.versions import upgrade, upgrade_ab
from gdbench.records.converge import ConvergeResult
from gdbench.records.run import RunResult


def replace_atomic(path, write) -> Path:
    """Have ``write(tmp)`` write a temporary file beside ``path`` (same suffix), flush it to
    disk and rename it over ``path``: readers see the old file or the new one, never half of
    one. The file gets the permissions of an ordinary new file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    except OSError as exc:
        raise OSError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; results are ordinary
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_atomic(path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``."""
    replace_atomic(path, lambda tmp: Path(tmp).write_text(text))


def write_json(run: RunResult, path) -> None:
    write_atomic(path, dumps(run))


class Output:
    """Where a run's results go, so that nothing measured is ever destroyed.

    While the run lasts, every save goes to its own partial file (``results.partial.json``,
    and ``.partial.csv``); a run that ends writes them to the files asked for, moving a file
    already there aside to the first free numbered name (``results.1.json``). A run that is
    interrupted leaves its partial files, when they hold anything measured, and every earlier
    file as they were. Every path is checked before anything is measured
    (``gdbench.files.paths``: only a regular file is ever replaced or moved aside), and JSON and CSV
    may not be the same file. An earlier interrupted run's partial file is moved aside, or
    removed when nothing had been measured in it.
    """

    def __init__(self, out=None, csv=None, flags: tuple[str, str] = ("--out", "--csv")):
        self.out = check_target(out, flags[0]) if out is not None else None
        self.csv = check_target(csv, flags[1]) if csv is not None else None
        if self.out and self.csv and self.out.resolve() == self.csv.resolve():
            raise ValueError(f"{flags[0]} and {flags[1]} are the same file ({self.out}): the "
                             "CSV would replace the JSON")
        self.moved: list[Path] = []
        self.empty = True  # whether the last save held nothing measured
        for path, flag in ((self.out, flags[0]), (self.csv, flags[1])):
            if path is None:
                continue
            partial = check_target(partial_path(path), flag)
            if path.suffix == ".json" and _measured_nothing(partial):
                partial.unlink()
            elif (kept := move_aside(partial)) is not None:
                self.moved.append(kept)

    @property
    def paths(self) -> list[Path]:
        return [p for p in (self.out, self.csv) if p is not None]

    def save(self, run) -> None:
        self.empty = not (getattr(run, "cases", None) or getattr(run, "descents", None)
                          or getattr(run, "sessions", None))
        if self.out:
            write_atomic(partial_path(self.out), dumps(run))
        if self.csv:
            write_csv(run, partial_path(self.csv))

    def finish(self, run) -> None:
        """Write the final files; earlier ones of the same names move aside first."""
        self.save(run)
        for path in self.paths:
            if (kept := move_aside(path)) is not None:
                self.moved.append(kept)
            os.replace(partial_path(path), path)

    def abandon(self) -> Path | None:
        """After an interruption: the partial file that holds what was measured, or None when
        nothing was (its partial files are then removed)."""
        if self.empty:
            for path in self.paths:
                partial_path(path).unlink(missing_ok=True)
            return None
        return partial_path(self.out or self.csv) if self.paths else None


def dumps(run) -> str:
    return json.dumps(run.to_dict(), indent=1, default=_jsonable) + "\n"


def _measured_nothing(path: Path) -> bool:
    """A partial results file of gdbench's with no case or descent in it."""
    try:
        d = json.loads(read_input(path))
    except ValueError:
        return False
    return (isinstance(d, dict) and d.get("tool") == "gdbench" and d.get("complete") is False
            and not d.get("cases") and not d.get("descents"))


def _jsonable(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def load_json(path):
    """The JSON in ``path``; ValueError when it is missing, not a regular file
    (``read_input``), empty or not valid JSON."""
    text = read_input(path)
    if not text.strip():
        raise ValueError(f"{path}: the file is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON, perhaps truncated ({exc})") from None


def read_bisect(path) -> dict:
    """A ``gdbench bisect`` file as the dict it holds; ValueError when it is not one, or of a
    version this gdbench does not read (version 1, the first, is the only one)."""
    d = load_json(path)
    if not isinstance(d, dict) or d.get("tool") != "gdbench-bisect" or "sessions" not in d:
        raise ValueError(f"{path}: not a gdbench bisect file")
    if d.get("schema_version") != 1:
        raise ValueError(f"{path}: bisect schema version {d.get('schema_version')!r} is not "
                         "one this gdbench reads (1)")
    for s in d["sessions"]:
        upgrade_ab(s["session"], path)
    return d


def read_ab(path) -> dict:
    """A ``gdbench ab`` file as the dict it holds, in the current ab version; ValueError when
    it is not one, or of a version this gdbench does not read."""
    d = load_json(path)
    if not isinstance(d, dict) or d.get("tool") != "gdbench-ab" or "cases" not in d:
        raise ValueError(f"{path}: not a gdbench ab file")
    return upgrade_ab(d, path)


def read_json(path) -> RunResult:
    """A gdbench results file; ValueError when it is missing, truncated or not gdbench's."""
    path = Path(path)
    d = load_json(path)
    if not isinstance(d, dict) or d.get("tool") != "gdbench" or "cases" not in d:
        raise ValueError(f"{path}: not a gdbench results file")
    d = upgrade(d, path)
    try:
        return RunResult.from_dict(d)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: malformed gdbench results ({exc!r})") from None


CSV_FIELDS = ["kernel", "cuda_graph", "ranks", "threads", "steps_per_call", "backend", "device", "dtype", "n_samples",
              "n_features", "status", "message", "samples", "step_median_s", "step_iqr_s",
              "step_min_s", "forward_median_s", "backward_median_s", "allreduce_median_s",
              "sums_median_s", "update_median_s", "host_step_median_s", "noisy",
              "samples_per_s", "bandwidth_gbs", "roofline_fraction", "batch_size",
              "throughput_median_s", "throughput_bandwidth_gbs", "throughput_roofline_fraction",
              "throttled", "bytes_min", "bytes_model", "passes", "memory_peak_bytes",
              "memory_held_bytes", "memory_model_bytes", "fits_in_cache",
              "prepare_s", "warmup_s", "settle_steps", "settled"]


def write_csv(run: RunResult, path) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_FIELDS)
    writer.writeheader()
    for c in run.cases:
        row = {**asdict(c.spec), "backend": c.backend, "status": c.status, "message": c.message,
               "bytes_min": c.spec.bytes_min, "bytes_model": c.bytes_model, "passes": c.passes,
               "fits_in_cache": c.fits_in_cache, "prepare_s": c.prepare_s,
               "warmup_s": c.warmup_s, "settle_steps": c.settle_steps, "settled": c.settled,
               "memory_peak_bytes": c.memory_peak,
               "memory_held_bytes": (c.memory or {}).get("held_bytes"),
               "memory_model_bytes": c.memory_model}
        if c.telemetry is not None:
            row["throttled"] = c.throttled
        if c.samples is not None:
            step = c.summary()
            row.update(samples=step.n, step_median_s=step.median, step_iqr_s=step.iqr,
                       step_min_s=step.min, noisy=c.noisy, samples_per_s=c.samples_per_s,
                       bandwidth_gbs=c.bandwidth / 1e9)
            if run.roofline(c):
                row["roofline_fraction"] = run.fraction(c)
            if c.throughput is not None:
                row.update(batch_size=c.samples.batch_size,
                           throughput_median_s=c.throughput.median,
                           throughput_bandwidth_gbs=c.throughput_bandwidth / 1e9)
                if run.roofline(c):
                    row["throughput_roofline_fraction"] = run.fraction(c, throughput=True)
            for p in c.samples.phases:
                if p != "step":
                    row[f"{p}_median_s"] = c.summary(p).median
            if c.samples.host is not None:
                row["host_step_median_s"] = c.summary("step", "host").median
        writer.writerow(row)
    write_atomic(path, out.getvalue())


def read_converge(path) -> ConvergeResult:
    """A ``gdbench converge`` results file; ValueError when it is not one."""
    d = load_json(path)
    if not isinstance(d, dict) or d.get("kind") != "converge":
        raise ValueError(f"{path}: not a gdbench converge file")
    return ConvergeResult.from_dict(upgrade(d, path))
