"""Result records of a sweep: a case's spec, its result with its raw samples, and the run.

Plain data: statistics are derived from the samples, never stored twice; reading and writing
them is ``gdbench.files.results``'s job."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from gdbench import axes
from gdbench.core.dtypes import ITEMSIZE, SHORT
from gdbench.core.units import format_size
from gdbench.axes.contention import contention_reasons
from gdbench.axes.energy import energy_per_step
from gdbench.axes.telemetry import throttle_reasons
from gdbench.records.samples import Samples
from gdbench.records.stats import Summary

SCHEMA_VERSION = 4  # gdbench.files.versions has the change log


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
    steps_per_call: int = 1  # K: the steps of one timed call (run_steps); times are per step

    @property
    def name(self) -> str:
        """The kernel as reports show it: its name, with ``+graph`` when replayed from a graph,
        the dtype's short name unless float32 (``bf16``), ``T=k`` at k threads, ``P=k``
        when data-parallel over k ranks and ``K=k`` at k steps per call."""
        return (self.kernel + ("+graph" if self.cuda_graph else "")
                + ("" if self.dtype == "float32" else f" {SHORT.get(self.dtype, self.dtype)}")
                + (f" T={self.threads}" if self.threads else "")
                + (f" P={self.ranks}" if self.ranks else "")
                + (f" K={self.steps_per_call}" if self.steps_per_call > 1 else ""))

    @property
    def label(self) -> str:
        return (f"{self.kernel}{'+graph' if self.cuda_graph else ''}-{self.device}-{self.dtype}"
                f"-N{format_size(self.n_samples)}-D{self.n_features}"
                + (f"-T{self.threads}" if self.threads else "")
                + (f"-P{self.ranks}" if self.ranks else "")
                + (f"-K{self.steps_per_call}" if self.steps_per_call > 1 else ""))

    @property
    def bytes_min(self) -> int:
        """Bytes a step must read at least: ``x`` and ``y`` once, in the storage format."""
        return self.n_samples * (self.n_features + 1) * ITEMSIZE[self.dtype]


def _reading(name: str, doc: str) -> property:
    """A case's readings of the axis ``name``, as a read-only attribute."""
    return property(lambda case: case.readings.get(name), doc=doc)


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
    remeasured: bool = False  # contended at first, and measured once more
    thread_counts: dict | None = None  # each CPU pool's threads while the case ran (--threads)
    writes: float | None = None  # arrays of N elements the byte model says a step writes
    # The read roofline (bytes/s) of each window's round, for an attempt measured again after
    # the run's rounds; None: the run's rooflines of the case's size are its rounds'.
    rooflines: list | None = None
    # How a case of K steps per call ran them: one launch, or a launch a step and why
    many_steps: str | None = None
    # What each measured axis (gdbench.axes) read of the case, under its field: memory (once a
    # case), contention, telemetry (NVML, on CUDA), energy (around each window); an axis that
    # read nothing is absent.
    readings: dict = field(default_factory=dict)

    # Each axis's readings by name (gdbench.axes), read-only; None where it read nothing.
    memory = _reading("memory", "The step memory measured once before the windows.")
    contention = _reading("contention", "The contention readings of each window.")
    telemetry = _reading("telemetry", "NVML's readings at the start and end of each CUDA "
                                      "window, and between.")
    energy = _reading("energy", "The energy counter's reading of each window.")

    @property
    def joules_per_step(self) -> float | None:
        """Energy of the device per step, over the windows; None where it was not read."""
        return energy_per_step(self.energy)

    @property
    def samples_per_joule(self) -> float | None:
        j = self.joules_per_step
        return self.spec.n_samples / j if j else None

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

        return throttle_reasons(self.telemetry)

    @property
    def throttled(self) -> bool:
        return bool(self.throttle_reasons)

    @property
    def contention_reasons(self) -> list[str]:
        """Why the case counts as measured on a busy machine (empty: it does not, or unknown)."""

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
        """The case as a results file keeps it (``from_dict`` reads it back), in the schema's
        order: the spec, the case's fields (``FIELDS``), each reading it has with what is
        derived from it (``READINGS``, then each measured axis's: ``gdbench.axes``), then its
        samples and what they give (``SAMPLES``)."""
        d = {**asdict(self.spec), "name": self.spec.name, "label": self.spec.label,
             "status": self.status, "message": self.message, "backend": self.backend,
             "passes": self.passes, "bytes_min": self.spec.bytes_min,
             **{key: getattr(self, key) for key in FIELDS}}
        for reading, derived in READINGS:
            if getattr(self, reading) is not None:
                d[reading] = getattr(self, reading)
                d.update((key, getattr(self, name)) for key, name in derived)
        for axis in axes.AXES:
            if self.readings.get(axis.field) is not None:
                d[axis.field] = self.readings[axis.field]
                d.update(axis.derived(self))
        if self.samples is not None:
            d.update(_samples_dict(self.samples))
            for key, name, unit in SAMPLES:
                value = getattr(self, name)
                if value is not None:
                    d[key] = value if unit is None else value / unit
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CaseResult:
        spec = CaseSpec(kernel=d["kernel"], device=d["device"], dtype=d["dtype"],
                        n_samples=int(d["n_samples"]), n_features=int(d.get("n_features", 1)),
                        cuda_graph=bool(d.get("cuda_graph", False)),
                        ranks=int(d.get("ranks", 0)), threads=int(d.get("threads", 0)),
                        steps_per_call=int(d.get("steps_per_call", 1)))
        nan = float("nan")
        return cls(spec=spec, status=d["status"], message=d.get("message", ""),
                   backend=d.get("backend", ""), passes=float(d.get("passes", nan)),
                   prepare_s=float(d.get("prepare_s", nan)),
                   warmup_s=float(d.get("warmup_s", nan)), samples=_samples(d),
                   cache_bytes=int(d.get("cache_bytes", 0)),
                   precision_target=float(d.get("precision_target", 0.01)),
                   settle_steps=int(d.get("settle_steps", 0)),
                   settled=bool(d.get("settled", False)),
                   remeasured=bool(d.get("remeasured", False)),
                   **{reading: d.get(reading) for reading, _ in READINGS},
                   readings={axis.field: d[axis.field] for axis in axes.AXES
                             if d.get(axis.field) is not None})


# The schema of a case in a results file, after its spec (gdbench.files.versions).
FIELDS = ("bytes_model", "cache_bytes", "fits_in_cache", "prepare_s", "warmup_s",
          "precision_target", "settle_steps", "settled", "remeasured")
# A reading of the case that is not a measured axis's (those are gdbench.axes.AXES'), written
# where it has one, and the keys derived from it: (key in the file, attribute).
READINGS = (
    ("thread_counts", ()),
    ("writes", (("memory_model_bytes", "memory_model"),)),
    ("rooflines", ()),
    ("many_steps", ()),
)
# Figures derived from the samples, for readers that want them without the samples: (key,
# attribute, what the attribute is divided by); one that is None (no batches) is left out.
SAMPLES = (("noisy", "noisy", None), ("samples_per_s", "samples_per_s", None),
           ("bandwidth_gbs", "bandwidth", 1e9),
           ("throughput_bandwidth_gbs", "throughput_bandwidth", 1e9))


def _samples_dict(s: Samples) -> dict:
    """The samples as a results file keeps them (``_samples`` reads them back), with their
    summaries."""
    d = {"phases": list(s.phases), "samples": {p: s.phase(p).tolist() for p in s.phases}}
    if s.host is not None:
        d["host_samples"] = {p: s.phase(p, "host").tolist() for p in s.phases}
    if s.window is not None:
        d.update(windows=s.windows, sample_windows=s.window.tolist())
    if s.batch is not None:
        d.update(batch_size=s.batch_size, batch_samples=s.batch.tolist())
        if s.batch_host is not None:
            d["batch_host_samples"] = s.batch_host.tolist()
        if s.batch_window is not None:
            d["batch_windows"] = s.batch_window.tolist()
    d["summary"] = {p: asdict(s.summary(p)) for p in ("step", *s.phases)}
    d["stalled_windows"] = list(s.summary().stalled)
    if s.batch is not None:
        d["summary"]["throughput"] = asdict(s.throughput())
    return d


def _samples(d: dict) -> Samples | None:
    """The samples of a case's dict, as ``CaseResult.to_dict`` wrote them; None if it has none."""
    if not d.get("samples"):
        return None
    phases = tuple(d["phases"])

    def optional(key):
        return np.array(d[key]) if d.get(key) else None

    host = (np.array([d["host_samples"][p] for p in phases]).T if d.get("host_samples")
            else None)
    return Samples(phases=phases, device=np.array([d["samples"][p] for p in phases]).T,
                   host=host, batch=optional("batch_samples"),
                   batch_size=int(d.get("batch_size", 0)),
                   batch_host=optional("batch_host_samples"), window=optional("sample_windows"),
                   batch_window=optional("batch_windows"))


