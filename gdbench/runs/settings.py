"""How a command measures, as one frozen object built once, by keyword, and handed down.

Every command's settings (``Settings`` for run, ``ConvergeSettings``, ``gdbench.runs.ab``'s
``AbSettings``) are a ``Checked``: ``checked`` validates them and resolves what depends on the
machine (``auto``, the default sizes), once, with a ValueError of one line for what cannot be;
``to_json`` and ``from_json`` carry them whole. The command line builds them from its options
(``gdbench.cli.common.settings``), ``gdbench.run`` from its arguments; the sweep, its worker
processes and every rank of a data-parallel run take the same object: a worker or rank gets it
whole, as JSON, never turned back into options that could drop a field. ``record`` is what a
results file keeps of it.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields, replace

from gdbench.core.devices import is_cpu, is_cuda, resolve_device
from gdbench.core.dtypes import parse_dtypes
from gdbench.measure.threads import check_threads

DEFAULT_MAX_SIZE = {"cpu": 10**7, "cuda": 10**8}
# A case whose interval is wider than the precision asked for gets windows beyond --windows,
# up to this many, while its budget lasts (``gdbench.measure.cases.Rounds``).
MAX_WINDOWS = 16


def default_sizes(device: str) -> tuple[int, ...]:
    """Powers of ten from 10^2 to 10^7 on the CPU, to 10^8 on CUDA."""
    top = round(math.log10(DEFAULT_MAX_SIZE[device]))
    return tuple(10**k for k in range(2, top + 1))


class Checked(ABC):
    """The base of every command's settings: a frozen dataclass whose ``resolved(device)``
    checks its fields and gives those that ``checked`` replaces."""

    def checked(self):
        """The same settings validated, with the device and what depends on it resolved;
        ValueError for any that cannot be."""
        device = resolve_device(self.device)
        return replace(self, device=device, **self.resolved(device))

    @abstractmethod
    def resolved(self, device: str) -> dict:
        """The fields checked, for ``device``: those that change, by name."""

    def to_json(self) -> str:
        """Every field, as JSON: how the settings travel to a worker or a rank."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str):
        """The settings ``to_json`` wrote (tuples again where they were); ValueError for what is
        not."""
        try:
            d = json.loads(text)
            known = {f.name for f in fields(cls)}
            d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known}
            return cls(**d)
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"settings that are not gdbench's {cls.__name__}: {exc}") from None


@dataclass(frozen=True)
class Settings(Checked):
    device: str = "auto"
    kernels: tuple[str, ...] | str = "all"
    sizes: tuple[int, ...] | None = None  # None: default_sizes(device)
    n_features: int = 1
    dtypes: tuple[str, ...] = ("float32",)
    threads: tuple[int, ...] | None = None  # CPU thread counts; None: as the libraries are set
    budget: float = 0.5  # seconds of latency sampling per case, shared by its windows
    precision: float = 0.01
    lr: float = 0.01
    seed: int = 0
    cuda_graph: bool = False
    roofline: bool = True
    probe_bytes: int | None = None
    windows: int = 4  # the fewest windows per case
    max_windows: int | None = None  # the most, budget allowing (None: 16, or windows)
    cold: bool = False
    remeasure: bool = True
    processes: int = 1
    memory: bool = True
    fresh: bool = True  # a new instance on fresh buffers for every window
    dist_backend: str | None = None  # data-parallel runs: gloo or nccl (None: by device)
    dist_timeout: float = 120.0
    weak_scaling: bool = False
    steps_per_call: tuple[int, ...] = (1,)  # K: each case at each, its times per step

    def resolved(self, device: str) -> dict:
        """The settings checked, the sizes resolved (``default_sizes`` of ``device``)."""
        if not (self.budget > 0 and math.isfinite(self.budget)):
            raise ValueError(f"budget must be a positive number of seconds, got {self.budget}")
        if not 0 < self.precision < 1:
            raise ValueError(f"precision must be between 0 and 1, got {self.precision}")
        for name in ("windows", "processes"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be a whole number of at least 1, got {value}")
        max_windows = self.max_windows
        if max_windows is None:  # fresh processes and ranks measure a fixed count
            max_windows = (max(MAX_WINDOWS, self.windows) if self.processes == 1 else
                           self.windows)
        elif not (isinstance(max_windows, int) and max_windows >= self.windows):
            raise ValueError(f"max_windows must be a whole number no less than windows "
                             f"({self.windows}), got {max_windows}")
        elif self.processes > 1 and max_windows > self.windows:
            raise ValueError("more windows than --windows need one process: with --processes "
                             "the count is fixed (give --max-windows as --windows, or leave "
                             "it out)")
        if self.processes > self.windows:
            raise ValueError(f"processes ({self.processes}) cannot be more than windows "
                             f"({self.windows}): each process measures at least one window "
                             "of every case")
        if not self.dist_timeout > 0:
            raise ValueError(f"--dist-timeout must be a positive number of seconds, got "
                             f"{self.dist_timeout}")
        sizes = default_sizes(device) if self.sizes is None else tuple(sorted(set(self.sizes)))
        if not sizes or any(int(n) != n or n < 1 for n in sizes):
            raise ValueError(f"sizes must be positive whole numbers, got {list(sizes)}")
        threads = self.threads
        if threads is not None:
            if not is_cpu(device):
                raise ValueError("thread counts set the CPU's thread pools: they need "
                                 "--device cpu")
            threads = tuple(check_threads(threads))
        kernels = self.kernels if self.kernels == "all" else tuple(dict.fromkeys(self.kernels))
        steps = tuple(sorted(set(self.steps_per_call)))
        if not steps or any(not (isinstance(k, int) and k >= 1) for k in steps):
            raise ValueError(f"steps per call must be whole numbers of at least 1, got "
                             f"{list(self.steps_per_call)}")
        if self.cuda_graph and steps != (1,):
            raise ValueError("--steps-per-call does not go with --cuda-graph: a graph replays "
                             "one step")
        return dict(sizes=tuple(int(n) for n in sizes), dtypes=tuple(parse_dtypes(self.dtypes)),
                    threads=threads, kernels=kernels, steps_per_call=steps,
                    max_windows=max_windows)

    @property
    def dtype(self) -> str:
        """The dtypes as the command line and the results file write them."""
        return ",".join(self.dtypes)

    def record(self, **measured) -> dict:
        """The settings as a results file keeps them, with what the sweep found (``measured``:
        the kernels it runs, what it skipped, the sampling rule's constants)."""
        d = asdict(self)
        d.update(kernels=list(self.kernels) if self.kernels != "all" else "all",
                 sizes=list(self.sizes or ()), dtype=self.dtype,
                 threads=list(self.threads) if self.threads else None, budget_s=self.budget,
                 steps_per_call=list(self.steps_per_call),
                 fresh_layout=self.fresh, cache_state="cold" if self.cold else "warm")
        for gone in ("dtypes", "budget", "fresh", "roofline", "probe_bytes", "dist_backend",
                     "dist_timeout", "weak_scaling"):
            d.pop(gone)
        return {**d, **measured}

    def for_worker(self, windows: int | None = None) -> Settings:
        """These settings for one worker process measuring ``windows`` of them, with their
        share of the budget, without the roofline (the parent measures it) or workers of its
        own."""
        windows = windows or self.windows
        return replace(self, windows=windows, max_windows=windows,
                       budget=self.budget * windows / self.windows,
                       roofline=False, processes=1)


@dataclass(frozen=True)
class ConvergeSettings(Checked):
    """How ``gdbench converge`` descends: which cases, which learning rates, and when a descent
    ends (within ``tol`` of the optimum, or at its bounds)."""

    device: str = "auto"
    kernels: tuple[str, ...] | str = "all"
    sizes: tuple[int, ...] = (10**4, 10**6)
    n_features: int = 1
    dtypes: tuple[str, ...] = ("float32",)
    rates: tuple[str | float, ...] = ("tutorial", "curvature")
    tol: float = 1e-6
    max_steps: int = 100_000
    max_seconds: float = 60.0
    patience: int = 100
    check_every: int | None = None  # None: 10 on CUDA (a reading waits for the device), else 1
    seed: int = 0
    steps_per_call: int = 1  # K: the steps between readings run as one run_steps(K) call

    def resolved(self, device: str) -> dict:
        """The settings checked, ``check_every`` resolved for ``device``."""
        if not 0 < self.tol < 1:
            raise ValueError(f"tol must be between 0 and 1, got {self.tol}")
        check_every = self.check_every
        if not (isinstance(self.steps_per_call, int) and self.steps_per_call >= 1):
            raise ValueError(f"steps per call must be a whole number of at least 1, got "
                             f"{self.steps_per_call}")
        if self.steps_per_call > 1:
            if check_every not in (None, self.steps_per_call):
                raise ValueError("--steps-per-call K reads the loss every K steps: give it "
                                 "without --check-every")
            check_every = self.steps_per_call
        if check_every is None:
            check_every = 10 if is_cuda(device) else 1
        for name, value in (("max_steps", self.max_steps), ("patience", self.patience),
                            ("check_every", check_every)):
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be a whole number of at least 1, got {value}")
        if not (self.max_seconds > 0 and math.isfinite(self.max_seconds)):
            raise ValueError(f"max_seconds must be a positive number, got {self.max_seconds}")
        sizes = tuple(sorted(set(int(n) for n in self.sizes)))
        if not sizes or sizes[0] < 1:
            raise ValueError(f"sizes must be positive whole numbers, got {list(self.sizes)}")
        if sizes[0] <= self.n_features:
            raise ValueError(f"converge needs more samples than features (N > D), got N = "
                             f"{sizes[0]} with D = {self.n_features}: with N <= D the "
                             "least-squares optimum fits the data exactly, its loss is 0, and "
                             "the distance to it relative to it is undefined")
        if not self.rates:
            raise ValueError("no learning rate given")
        kernels = self.kernels if self.kernels == "all" else tuple(dict.fromkeys(self.kernels))
        return dict(sizes=sizes, check_every=check_every, dtypes=tuple(parse_dtypes(self.dtypes)),
                    kernels=kernels, rates=tuple(dict.fromkeys(self.rates)))

    def record(self, **found) -> dict:
        """The settings as a converge results file keeps them, with what the run found."""
        d = asdict(self)
        d.update(sizes=list(self.sizes), dtype=",".join(self.dtypes),
                 rates=[str(r) for r in self.rates])
        del d["dtypes"]
        return {**d, **found}
