"""Result records of a sweep, and their JSON and CSV files.

A file is always whole: it is written to a temporary file beside the target and renamed over it,
so a run stopped at any moment leaves the last complete version on disk.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from gdbench.dtypes import ITEMSIZE, SHORT
from gdbench.measure.stats import Summary, window_medians
from gdbench.measure.timing import Samples
from gdbench.paths import check_target, move_aside, numbered_path, partial_path  # noqa: F401

SCHEMA_VERSION = 1


def format_size(n: int) -> str:
    """A sample count as people write it: ``1e6`` for a power of ten, else ``1500``."""
    exponent = len(str(n)) - 1
    return f"1e{exponent}" if n == 10**exponent else str(n)


@dataclass(frozen=True)
class CaseSpec:
    kernel: str
    device: str
    dtype: str
    n_samples: int
    n_features: int = 1
    cuda_graph: bool = False  # the kernel's step captured in a CUDA graph and replayed
    ranks: int = 0  # data-parallel over this many ranks (gdbench.distributed); 0: one process
    threads: int = 0  # CPU threads of torch, Numba and BLAS; 0: as the libraries were set

    @property
    def name(self) -> str:
        """The kernel as reports show it: its name, with ``+graph`` when replayed from a graph,
        the dtype's short name unless float32 (``bf16``), ``T=k`` at k threads and ``P=k``
        when data-parallel over k ranks."""
        return (self.kernel + ("+graph" if self.cuda_graph else "")
                + ("" if self.dtype == "float32" else f" {SHORT.get(self.dtype, self.dtype)}")
                + (f" T={self.threads}" if self.threads else "")
                + (f" P={self.ranks}" if self.ranks else ""))

    @property
    def label(self) -> str:
        return (f"{self.kernel}{'+graph' if self.cuda_graph else ''}-{self.device}-{self.dtype}"
                f"-N{format_size(self.n_samples)}-D{self.n_features}"
                + (f"-T{self.threads}" if self.threads else "")
                + (f"-P{self.ranks}" if self.ranks else ""))

    @property
    def bytes_min(self) -> int:
        """Bytes a step must read at least: ``x`` and ``y`` once, in the storage format."""
        return self.n_samples * (self.n_features + 1) * ITEMSIZE[self.dtype]


@dataclass(frozen=True, eq=False)
class CaseResult:
    """One case: its status, and when it was timed, its samples and what they imply.

    ``status`` is ok, wrong (disagrees with the reference), oom, error or diverged.
    """

    spec: CaseSpec
    status: str
    message: str = ""
    backend: str = ""
    passes: float = float("nan")  # the kernel's modelled traffic, in reads of x and y
    prepare_s: float = float("nan")  # prepare(): host-to-device transfer and set-up
    warmup_s: float = float("nan")  # the first step, compilation included
    samples: Samples | None = None
    cache_bytes: int = 0  # last-level cache of the device (L2 on CUDA), 0 where unknown
    precision_target: float = 0.01
    settle_steps: int = 0  # untimed steps run until the step time settled
    settled: bool = False  # whether it settled before the warm-up's time limit
    telemetry: dict | None = None  # NVML readings at the start and end of each CUDA window
    contention: list | None = None  # gdbench.measure.contention readings of each window
    remeasured: bool = False  # contended at first, and measured once more
    thread_counts: dict | None = None  # each CPU pool's threads while the case ran (--threads)
    memory: dict | None = None  # gdbench.measure.memory.measure_memory's figures
    writes: float | None = None  # arrays of N elements the byte model says a step writes

    @property
    def memory_peak(self) -> int | None:
        """Bytes a step allocated at most beyond the prepared kernel; None if not measured."""
        return (self.memory or {}).get("peak_bytes")

    @property
    def memory_model(self) -> int | None:
        """Bytes of the arrays the byte model says a step writes: its peak, were none freed."""
        if self.writes is None or self.writes != self.writes:
            return None
        return int(self.writes * self.spec.n_samples * ITEMSIZE[self.spec.dtype])

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def reliable(self) -> bool:
        """Timed, and not held back by other work in the attempt kept: a time that counts as
        a result (tables show a contended case as "contended", findings leave it out)."""
        return self.ok and not self.contended

    def summary(self, phase: str = "step", clock: str = "device") -> Summary:
        return self.samples.summary(phase, clock)

    @property
    def noisy(self) -> bool:
        return self.summary().noisy(self.precision_target)

    @property
    def samples_per_s(self) -> float:
        return self.spec.n_samples / self.summary().median

    @property
    def bandwidth(self) -> float:
        """Effective bandwidth in bytes/s: the minimum bytes a step reads over its median time."""
        return self.spec.bytes_min / self.summary().median

    @property
    def throughput(self) -> Summary | None:
        """Time per step in batches of back-to-back steps; None when no batch was measured."""
        return None if self.samples is None else self.samples.throughput()

    @property
    def throughput_bandwidth(self) -> float | None:
        """Effective bandwidth at the batched (steady-state) time per step."""
        t = self.throughput
        return None if t is None else self.spec.bytes_min / t.median

    @property
    def throttle_reasons(self) -> list[str]:
        """Why the GPU ran below full speed during the case (empty: it did not, or unknown)."""
        from gdbench.measure.telemetry import throttle_reasons

        return throttle_reasons(self.telemetry)

    @property
    def throttled(self) -> bool:
        return bool(self.throttle_reasons)

    @property
    def contention_reasons(self) -> list[str]:
        """Why the case counts as measured on a busy machine (empty: it does not, or unknown)."""
        from gdbench.measure.contention import contention_reasons

        return contention_reasons(self.contention)

    @property
    def contended(self) -> bool:
        return bool(self.contention_reasons)

    @property
    def windows(self) -> int:
        return 0 if self.samples is None else self.samples.windows

    @property
    def bytes_model(self) -> float:
        return self.passes * self.spec.bytes_min

    @property
    def fits_in_cache(self) -> bool:
        return 0 < self.spec.bytes_min <= self.cache_bytes

    def to_dict(self) -> dict:
        d = {**asdict(self.spec), "name": self.spec.name, "label": self.spec.label,
             "status": self.status,
             "message": self.message, "backend": self.backend, "passes": self.passes,
             "bytes_min": self.spec.bytes_min, "bytes_model": self.bytes_model,
             "cache_bytes": self.cache_bytes,
             "fits_in_cache": self.fits_in_cache, "prepare_s": self.prepare_s,
             "warmup_s": self.warmup_s, "precision_target": self.precision_target,
             "settle_steps": self.settle_steps, "settled": self.settled,
             "remeasured": self.remeasured}
        if self.telemetry is not None:
            d["telemetry"] = self.telemetry
            d["throttled"] = self.throttled
            d["throttle_reasons"] = self.throttle_reasons
        if self.thread_counts is not None:
            d["thread_counts"] = self.thread_counts
        if self.memory is not None:
            d["memory"] = self.memory
        if self.writes is not None:
            d["writes"] = self.writes
            d["memory_model_bytes"] = self.memory_model
        if self.contention is not None:
            d["contention"] = self.contention
            d["contended"] = self.contended
            d["contention_reasons"] = self.contention_reasons
        if self.samples is not None:
            s = self.samples
            d["phases"] = list(s.phases)
            d["samples"] = {p: s.phase(p).tolist() for p in s.phases}
            if s.host is not None:
                d["host_samples"] = {p: s.phase(p, "host").tolist() for p in s.phases}
            if s.window is not None:
                d["windows"] = s.windows
                d["sample_windows"] = s.window.tolist()
            if s.batch is not None:
                d["batch_size"] = s.batch_size
                d["batch_samples"] = s.batch.tolist()
                if s.batch_host is not None:
                    d["batch_host_samples"] = s.batch_host.tolist()
                if s.batch_window is not None:
                    d["batch_windows"] = s.batch_window.tolist()
            # Derived from the samples above, for readers that want the figures without them.
            d["summary"] = {p: asdict(s.summary(p)) for p in ("step", *s.phases)}
            if s.batch is not None:
                d["summary"]["throughput"] = asdict(s.throughput())
            d["noisy"] = self.noisy
            d["samples_per_s"] = self.samples_per_s
            d["bandwidth_gbs"] = self.bandwidth / 1e9
            if s.batch is not None:
                d["throughput_bandwidth_gbs"] = self.throughput_bandwidth / 1e9
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CaseResult:
        spec = CaseSpec(d["kernel"], d["device"], d["dtype"], int(d["n_samples"]),
                        int(d.get("n_features", 1)), bool(d.get("cuda_graph", False)),
                        int(d.get("ranks", 0)), int(d.get("threads", 0)))
        samples = None
        if d.get("samples"):
            phases = tuple(d["phases"])
            device = np.array([d["samples"][p] for p in phases]).T
            host = None
            if d.get("host_samples"):
                host = np.array([d["host_samples"][p] for p in phases]).T
            def optional(key):
                return np.array(d[key]) if d.get(key) else None

            samples = Samples(phases, device, host, optional("batch_samples"),
                              int(d.get("batch_size", 0)), optional("batch_host_samples"),
                              optional("sample_windows"), optional("batch_windows"))
        return cls(spec, d["status"], d.get("message", ""), d.get("backend", ""),
                   float(d.get("passes", float("nan"))), float(d.get("prepare_s", float("nan"))),
                   float(d.get("warmup_s", float("nan"))), samples, int(d.get("cache_bytes", 0)),
                   float(d.get("precision_target", 0.01)), int(d.get("settle_steps", 0)),
                   bool(d.get("settled", False)), d.get("telemetry"), d.get("contention"),
                   bool(d.get("remeasured", False)), d.get("thread_counts"), d.get("memory"),
                   d.get("writes"))


@dataclass
class RunResult:
    """A sweep: where it ran, with which settings, and its cases so far."""

    environment: dict
    settings: dict
    cases: list[CaseResult] = field(default_factory=list)
    probe: dict | None = None  # gdbench.measure.probe.Probe.to_dict() of the run's device
    complete: bool = False  # False while running, and for a run that was interrupted
    rooflines: dict = field(default_factory=dict)  # bytes -> bytes/s measured in each round
    moved_aside: list = field(default_factory=list, repr=False)  # earlier files kept, not saved
    allreduce_floors: dict = field(default_factory=dict)  # ranks -> seconds, one per round

    def roofline(self, case: CaseResult) -> float | None:
        """The roofline in bytes/s for ``case``, measured in this run; None if not probed.

        The median of the rounds' measurements at the case's own size where the run made them,
        else the probe's curve (or its levels, in results of gdbench 0.1.0).
        """
        values = self.rooflines.get(case.spec.bytes_min)
        if values:
            return float(np.median(values))
        if not self.probe:
            return None
        from gdbench.measure.probe import Probe

        return Probe.from_dict(self.probe).roofline(case.spec.bytes_min)

    def fraction(self, case: CaseResult, throughput: bool = False) -> float | None:
        """The case's effective bandwidth as a fraction of the roofline at its size.

        Where the roofline was measured in every round of the case's windows, each window is
        set against its own round's roofline and the median of those fractions is taken: the
        case and the probe saw the machine in the same state. Otherwise the median time is set
        against the roofline's median. None without samples or a roofline.
        """
        s = case.samples
        if s is None:
            return None
        values, windows = (s.batch, s.batch_window) if throughput else (s.step(), s.window)
        if values is None:
            return None
        rounds = self.rooflines.get(case.spec.bytes_min)
        if rounds and windows is not None and len(np.unique(windows)) == len(rounds):
            rates = case.spec.bytes_min / window_medians(values, windows)
            return float(np.median(rates / np.asarray(rounds)))
        roofline = self.roofline(case)
        return None if roofline is None else case.spec.bytes_min / float(np.median(values)) / roofline

    def exceeds_roofline(self, case: CaseResult) -> bool:
        """The case streamed faster than the probe could: a measurement problem, not a result."""
        fractions = [self.fraction(case), self.fraction(case, throughput=True)]
        return any(f is not None and f > 1 for f in fractions)

    def case_dict(self, case: CaseResult) -> dict:
        d = case.to_dict()
        roofline = self.roofline(case) if case.samples is not None else None
        if roofline is not None:
            d["roofline_gbs"] = roofline / 1e9
            d["roofline_fraction"] = self.fraction(case)
            if case.throughput is not None:
                d["throughput_roofline_fraction"] = self.fraction(case, throughput=True)
            d["roofline_exceeded"] = self.exceeds_roofline(case)
        return d

    def to_dict(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, "tool": "gdbench", "complete": self.complete,
                "environment": self.environment, "settings": self.settings, "probe": self.probe,
                "rooflines": {str(k): v for k, v in self.rooflines.items()},
                "allreduce_floors": {str(k): v for k, v in self.allreduce_floors.items()},
                "cases": [self.case_dict(c) for c in self.cases]}

    @classmethod
    def from_dict(cls, d: dict) -> RunResult:
        return cls(d["environment"], d["settings"], [CaseResult.from_dict(c) for c in d["cases"]],
                   d.get("probe"), bool(d.get("complete", False)),
                   {int(k): list(v) for k, v in d.get("rooflines", {}).items()},
                   allreduce_floors={int(k): list(v) for k, v in
                                     d.get("allreduce_floors", {}).items()})


def write_atomic(path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise OSError(f"cannot write {path}: {exc.strerror or exc}") from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; results are ordinary files
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(run: RunResult, path) -> None:
    write_atomic(path, dumps(run))


class Output:
    """Where a run's results go, so that nothing measured is ever destroyed.

    While the run lasts, every save goes to its own partial file (``results.partial.json``,
    and ``.partial.csv``); a run that ends writes them to the files asked for, moving a file
    already there aside to the first free numbered name (``results.1.json``). A run that is
    interrupted leaves its partial files, when they hold anything measured, and every earlier
    file as they were. Every path is checked before anything is measured
    (``gdbench.paths``: only a regular file is ever replaced or moved aside), and JSON and CSV
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
        self.empty = not (getattr(run, "cases", None) or getattr(run, "descents", None))
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
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(d, dict) and d.get("tool") == "gdbench" and d.get("complete") is False
            and not d.get("cases") and not d.get("descents"))


def _jsonable(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def load_json(path):
    """The JSON in ``path``; ValueError when it is missing or not valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


def read_json(path) -> RunResult:
    """A gdbench results file; ValueError when it is missing, truncated or not gdbench's."""
    path = Path(path)
    d = load_json(path)
    if not isinstance(d, dict) or d.get("tool") != "gdbench" or "cases" not in d:
        raise ValueError(f"{path}: not a gdbench results file")
    if d.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema version {d.get('schema_version')} is not "
                         f"{SCHEMA_VERSION}")
    try:
        return RunResult.from_dict(d)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: malformed gdbench results ({exc!r})") from None


CSV_FIELDS = ["kernel", "cuda_graph", "ranks", "threads", "backend", "device", "dtype", "n_samples",
              "n_features", "status", "message", "samples", "step_median_s", "step_iqr_s",
              "step_min_s", "forward_median_s", "backward_median_s", "allreduce_median_s",
              "sums_median_s", "update_median_s", "host_step_median_s", "noisy",
              "samples_per_s", "bandwidth_gbs", "roofline_fraction", "batch_size",
              "throughput_median_s", "throughput_bandwidth_gbs", "throughput_roofline_fraction",
              "throttled", "bytes_min", "bytes_model", "passes", "memory_peak_bytes",
              "memory_held_bytes", "memory_model_bytes", "fits_in_cache",
              "prepare_s", "warmup_s", "settle_steps", "settled"]


def write_csv(run: RunResult, path) -> None:
    import io

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
