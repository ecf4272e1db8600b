"""The roofline: the memory bandwidth this device achieves, measured now.

CPU: a multi-threaded streaming read (a sum) by each available library (Numba's parallel loop,
PyTorch's threaded sum, NumPy's single-threaded sum), at two working-set sizes: four times the
last-level cache ("memory"), and a quarter of it ("cache"), since a step whose data fits in the
cache streams it from there. CUDA: a device-to-device copy (read and write counted) and a read
reduction of 2 GiB, timed with CUDA events ("memory" only). At each level the roofline is the
best of the methods: the fastest a step could stream its data.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from gdbench.devices import missing_module, release_device_memory, resolve_device
from gdbench.environment import cpu_cache_bytes

MIN_BYTES = 1 << 30


@dataclass(frozen=True)
class Probe:
    device: str
    nbytes: int  # size of the array streamed from memory
    methods: dict  # method name -> best bytes/s over the repeats, from memory
    cache_bytes: int = 0  # last-level cache size; 0 when there is no cache level
    cache_methods: dict = field(default_factory=dict)  # the same with a cache-resident array
    cache_nbytes: int = 0  # size of that array

    @property
    def bandwidth(self) -> float:
        """Memory roofline in bytes/s: the best method's."""
        return max(self.methods.values())

    @property
    def best_method(self) -> str:
        return max(self.methods, key=self.methods.get)

    @property
    def cache_bandwidth(self) -> float | None:
        return max(self.cache_methods.values()) if self.cache_methods else None

    def roofline(self, nbytes: int) -> float:
        """The roofline for a step reading ``nbytes``: the cache's if they fit in it."""
        if self.cache_methods and nbytes <= self.cache_bytes:
            return self.cache_bandwidth
        return self.bandwidth

    def to_dict(self) -> dict:
        return {**asdict(self), "bandwidth": self.bandwidth, "best_method": self.best_method,
                "cache_bandwidth": self.cache_bandwidth}

    @classmethod
    def from_dict(cls, d: dict) -> Probe:
        return cls(d["device"], int(d["nbytes"]), dict(d["methods"]),
                   int(d.get("cache_bytes", 0)), dict(d.get("cache_methods", {})),
                   int(d.get("cache_nbytes", 0)))


def _best_rate(fn, nbytes: int, repeats: int, clock) -> float:
    fn()  # first touch, compilation
    times = []
    for _ in range(repeats):
        times.append(clock(fn))
    return nbytes / min(times)


def _cpu_clock(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _cpu_read_rates(nbytes: int, repeats: int) -> dict:
    a = np.ones(nbytes // 4, dtype=np.float32)
    methods = {"numpy-sum": _best_rate(a.sum, a.nbytes, repeats, _cpu_clock)}
    if missing_module("numba") is None:
        from gdbench.kernels.numba_loops import parallel_sum

        methods["numba-parallel-sum"] = _best_rate(lambda: parallel_sum(a), a.nbytes, repeats,
                                                   _cpu_clock)
    if missing_module("torch") is None:
        import torch

        t = torch.from_numpy(a)
        methods["torch-sum"] = _best_rate(t.sum, a.nbytes, repeats, _cpu_clock)
    return methods


def probe_cpu(nbytes: int | None = None, cache_nbytes: int | None = None,
              repeats: int = 5) -> Probe:
    cache = cpu_cache_bytes()
    nbytes = (nbytes or max(MIN_BYTES, 4 * cache)) // 4 * 4
    cache = min(cache, nbytes // 4)
    cache_nbytes = min(cache_nbytes or cache // 4, cache)
    cache_methods = _cpu_read_rates(cache_nbytes, 4 * repeats) if cache_nbytes >= 4 else {}
    return Probe("cpu", nbytes, _cpu_read_rates(nbytes, repeats), cache, cache_methods,
                 cache_nbytes)


def _cuda_rates(nbytes: int, repeats: int) -> dict:
    """Copy and read rates of ``nbytes`` on CUDA device 0, with torch, or CuPy without it."""
    from gdbench.devices import cuda_unavailable

    if cuda_unavailable("torch") is None:
        import torch

        a = torch.ones(nbytes // 4, dtype=torch.float32, device="cuda")
        b = torch.empty_like(a)
        events = lambda: (torch.cuda.Event(enable_timing=True),  # noqa: E731
                          torch.cuda.Event(enable_timing=True))
        elapsed_ms = lambda start, end: start.elapsed_time(end)  # noqa: E731
        copy, library = (lambda: b.copy_(a)), "torch"
    else:
        import cupy

        a = cupy.ones(nbytes // 4, dtype=cupy.float32)
        b = cupy.empty_like(a)
        events = lambda: (cupy.cuda.Event(), cupy.cuda.Event())  # noqa: E731
        elapsed_ms = cupy.cuda.get_elapsed_time
        copy, library = (lambda: b.__setitem__(Ellipsis, a)), "cupy"

    def clock(fn):
        start, end = events()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return elapsed_ms(start, end) * 1e-3

    return {f"{library}-copy": _best_rate(copy, 2 * nbytes, repeats, clock),
            f"{library}-sum": _best_rate(a.sum, nbytes, repeats, clock)}


def probe_cuda(nbytes: int = 2 << 30, repeats: int = 10) -> Probe:
    methods = _cuda_rates(nbytes, repeats)  # its arrays are freed on return
    release_device_memory("cuda")
    return Probe("cuda", nbytes, methods)


def probe(device: str = "auto", nbytes: int | None = None,
          cache_nbytes: int | None = None) -> Probe:
    """Measure the roofline of ``device`` (cpu, cuda or auto), streaming ``nbytes`` from memory.

    By default ``nbytes`` is four times the CPU's last-level cache (at least 1 GiB), or 2 GiB on
    CUDA. The CPU's cache level streams ``cache_nbytes`` (by default a quarter of the cache): a
    sweep passes the bytes of its largest case that fits in the cache, since the bandwidth a
    cache delivers falls as the working set grows towards its size.
    """
    device = resolve_device(device)
    if device == "cuda":
        return probe_cuda(nbytes or 2 << 30)
    return probe_cpu(nbytes, cache_nbytes)
