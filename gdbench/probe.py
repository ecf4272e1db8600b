"""The roofline: the memory bandwidth this device achieves, measured now.

CPU: a multi-threaded streaming read (a sum) by each available library (Numba's parallel loop,
PyTorch's threaded sum, NumPy's single-threaded sum), at two working-set sizes: four times the
last-level cache ("memory"), and a quarter of it ("cache"), since a step whose data fits in the
cache streams it from there. CUDA: a device-to-device copy (read and write counted) and a read
reduction of 2 GiB ("memory"), and for data that fits in L2 ("cache"), an array of the size of
the run's largest L2-resident case read hundreds of times in one launch (a Triton kernel whose
loads bypass L1, and torch's sum over a stride-0 view of it) and a batch of copies within L2,
all timed with CUDA events. At each level the roofline is the best of the methods:
the fastest a step could stream its data.
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
        """The roofline for a step reading ``nbytes``: the cache's if they fit in it.

        Never below the memory level: data in a cache streams at least as fast as from memory,
        so a cache figure under it says the method failed to reach the cache's speed.
        """
        if self.cache_methods and nbytes <= self.cache_bytes:
            return max(self.cache_bandwidth, self.bandwidth)
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


def _cuda_arrays(nbytes: int):
    """(module, array of ``nbytes`` on CUDA device 0, event pair maker, elapsed ms): torch or CuPy."""
    from gdbench.devices import cuda_unavailable

    if cuda_unavailable("torch") is None:
        import torch

        events = lambda: (torch.cuda.Event(enable_timing=True),  # noqa: E731
                          torch.cuda.Event(enable_timing=True))
        return ("torch", torch.ones(nbytes // 4, dtype=torch.float32, device="cuda"), events,
                lambda start, end: start.elapsed_time(end))
    import cupy

    return ("cupy", cupy.ones(nbytes // 4, dtype=cupy.float32),
            lambda: (cupy.cuda.Event(), cupy.cuda.Event()), cupy.cuda.get_elapsed_time)


def _event_clock(events, elapsed_ms):
    def clock(fn):
        start, end = events()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return elapsed_ms(start, end) * 1e-3

    return clock


def _copy(library, a, b):
    return (lambda: b.copy_(a)) if library == "torch" else (lambda: b.__setitem__(Ellipsis, a))


def _cuda_rates(nbytes: int, repeats: int) -> dict:
    """Copy and read rates of ``nbytes`` from device memory on CUDA device 0."""
    library, a, events, elapsed_ms = _cuda_arrays(nbytes)
    b = a.clone() if library == "torch" else a.copy()
    clock = _event_clock(events, elapsed_ms)
    return {f"{library}-copy": _best_rate(_copy(library, a, b), 2 * nbytes, repeats, clock),
            f"{library}-sum": _best_rate(a.sum, nbytes, repeats, clock)}


def _cuda_cache_rates(nbytes: int, repeats: int, streamed: int = 1 << 30) -> dict:
    """Rates for an array of ``nbytes`` that stays in L2, read about ``streamed`` bytes a time.

    One reduction over a (reps, n) view of the array with stride 0 between rows reads it
    ``reps`` times in a single launch, so launch gaps do not hide the cache's bandwidth; a
    batch of back-to-back copies of half the array into the other half is the second method.
    """
    library, a, events, elapsed_ms = _cuda_arrays(nbytes)
    n = a.shape[0]
    reps = max(1, streamed // max(nbytes, 1))
    if library == "torch":
        view = a.as_strided((reps, n), (0, 1))
    else:
        from cupy.lib.stride_tricks import as_strided

        view = as_strided(a, (reps, n), (0, a.itemsize))
    clock = _event_clock(events, elapsed_ms)
    half = n // 2
    src, dst = a[:half], a[half:2 * half]
    copy = _copy(library, src, dst)
    copies = min(2000, max(1, streamed // max(2 * half * 4, 1)))  # small copies are launch-bound

    def copy_batch():
        for _ in range(copies):
            copy()

    rates = {f"{library}-l2-sum": _best_rate(view.sum, reps * n * 4, repeats, clock),
             f"{library}-l2-copy": _best_rate(copy_batch, copies * 2 * half * 4, repeats, clock)}
    if library == "torch" and missing_module("triton") is None:
        rates["triton-l2-read"] = _triton_l2_rate(a, streamed, repeats, clock)
    return rates


L2_READ_BLOCK = 4096


def _triton_l2_rate(a, streamed: int, repeats: int, clock) -> float:
    """Every multiprocessor's programs read the array again and again, from L2 (not L1)."""
    import torch

    from gdbench.kernels.triton_loops import read_repeatedly

    n = a.shape[0] // L2_READ_BLOCK * L2_READ_BLOCK
    if n == 0:
        return 0.0
    sms = torch.cuda.get_device_properties(a.device).multi_processor_count
    grid = min(n // L2_READ_BLOCK, 4 * sms)
    reps = max(1, streamed // (n * 4))
    out = torch.empty(grid, device=a.device)

    def read():
        read_repeatedly[(grid,)](a, out, n, reps, BLOCK=L2_READ_BLOCK, num_warps=8)

    return _best_rate(read, reps * n * 4, repeats, clock)


def probe_cuda(nbytes: int = 2 << 30, cache_nbytes: int | None = None,
               repeats: int = 10) -> Probe:
    from gdbench.environment import gpu_info

    l2 = int(gpu_info().get("l2_cache_bytes") or 0)
    methods = _cuda_rates(nbytes, repeats)  # its arrays are freed on return
    cache_methods, cache_nbytes = {}, min(cache_nbytes or l2 // 4, l2)
    if cache_nbytes >= 1 << 12:
        cache_methods = _cuda_cache_rates(cache_nbytes, repeats)
    release_device_memory("cuda")
    return Probe("cuda", nbytes, methods, l2, cache_methods, cache_nbytes if cache_methods else 0)


def probe(device: str = "auto", nbytes: int | None = None,
          cache_nbytes: int | None = None) -> Probe:
    """Measure the roofline of ``device`` (cpu, cuda or auto), streaming ``nbytes`` from memory.

    By default ``nbytes`` is four times the CPU's last-level cache (at least 1 GiB), or 2 GiB on
    CUDA. The cache level (the last-level cache on the CPU, L2 on CUDA) streams ``cache_nbytes``
    (by default a quarter of the cache): a sweep passes the bytes of its largest case that fits
    in the cache, since the bandwidth a cache delivers falls as the working set grows towards
    its size.
    """
    device = resolve_device(device)
    if device == "cuda":
        return probe_cuda(nbytes or 2 << 30, cache_nbytes)
    return probe_cpu(nbytes, cache_nbytes)
