"""The roofline: the bandwidth this device streams data at, measured now, at every size.

A step reads its ``x`` and ``y`` once at least; the fastest it can do that is the fastest the
device streams a buffer of that size, which depends on where the buffer lives (L1, L2, the
last-level cache, memory). ``bandwidth_at(device, nbytes)`` measures it for one working-set
size with every available method and gives each method's best rate over several timed calls
(the fastest call, as STREAM reports its best rate: a ceiling is what the machine can do, and
every slower call was held back by something), each call long enough (2 ms) that call
overhead does not count:

- CPU: Numba's serial and parallel sums, repeated over the buffer inside one call, torch's
  threaded sum and NumPy's sum, and the step's own pattern: two arrays of half the size each,
  allocated apart as a problem's x and y are, read side by side on the kernels' threads
  (Numba's parallel pass, ``torch.dot``, NumPy's ``dot``);
- CUDA: a Triton kernel that reads the buffer repeatedly with loads that bypass L1, torch's sum
  and a device-to-device copy (bytes read plus written).

The roofline at a size is the best reading method's rate; a copy (CUDA) reads and writes and is
kept for reference only. ``probe`` measures the memory level (four
times the last-level cache, at least 1 GiB on the CPU; 2 GiB on CUDA) and the curve of
bandwidth against size, with the cache sizes the OS reports beside it: a VM may report its
host's caches, and the curve says where the levels really are. A sweep measures the roofline at
each case's own size in every window, interleaved with the cases (``gdbench.runs.sweep``).
"""

from __future__ import annotations

import math
import time

import numpy as np

from gdbench.core.devices import (
    cuda_unavailable,
    is_cuda,
    missing_module,
    release_device_memory,
    resolve_device,
)
from gdbench.measure.environment import cpu_cache_bytes, cpu_cache_levels, gpu_info
from gdbench.records.roofline import Probe, read_rate

MIN_BYTES = 1 << 30
CALL_SECONDS = 2e-3  # each timed call streams the buffer for at least this long
CURVE_START = {"cpu": 4 << 10, "cuda": 64 << 10}


def _best_rate(stream, nbytes: int, repeats: int, clock) -> float:
    """Best bytes/s of ``repeats`` calls of ``stream(reps)``, reps chosen so that one call
    lasts CALL_SECONDS."""
    first = clock(lambda: stream(1))  # first touch, compilation
    first = clock(lambda: stream(1))
    reps = int(min(1 << 20, max(1, math.ceil(CALL_SECONDS / max(first, 1e-9)))))
    times = [clock(lambda: stream(reps)) for _ in range(repeats)]
    return nbytes * reps / min(times)


def _cpu_clock(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _cpu_methods(nbytes: int) -> dict:
    """Ways to read ``nbytes`` ``reps`` times on the CPU, by name. The ``-pair`` and ``-dot``
    methods read two arrays of half as many bytes side by side, allocated apart as a step's x
    and y are: two streams, on the threads the kernels use."""
    a = np.ones(nbytes // 4, dtype=np.float32)
    x, y = np.ones(nbytes // 8, dtype=np.float32), np.ones(nbytes // 8, dtype=np.float32)
    methods = {"numpy-sum": lambda reps: [a.sum() for _ in range(reps)],
               "numpy-dot": lambda reps: [np.dot(x, y) for _ in range(reps)]}
    if missing_module("numba") is None:
        from gdbench.kernels import numba_loops

        if a.nbytes <= 4 << 20:  # above, the parallel sum is faster wherever there are threads
            methods["numba-sum"] = lambda reps: numba_loops.repeated_sum(a, reps)
        if a.nbytes >= 64 << 10:  # below, starting the threads costs more than the read
            methods["numba-parallel-sum"] = lambda reps: numba_loops.repeated_parallel_sum(a, reps)
            methods["numba-parallel-pair"] = (
                lambda reps: numba_loops.repeated_parallel_pair_sum(x, y, reps))
    if missing_module("torch") is None:
        import torch

        t, tx, ty = torch.from_numpy(a), torch.from_numpy(x), torch.from_numpy(y)
        methods["torch-sum"] = lambda reps: [t.sum() for _ in range(reps)]
        methods["torch-dot"] = lambda reps: [torch.dot(tx, ty) for _ in range(reps)]
    return methods


def _cuda_methods(nbytes: int):
    """(ways to stream ``nbytes`` on CUDA device 0 ``reps`` times, event clock)."""

    if cuda_unavailable("torch") is None:
        import torch

        a = torch.ones(nbytes // 4, dtype=torch.float32, device="cuda")
        half = a.numel() // 2
        methods = {"torch-sum": lambda reps: [a.sum() for _ in range(reps)]}
        if half:
            src, dst = a[:half], a[half:2 * half]
            methods["torch-copy"] = lambda reps: [dst.copy_(src) for _ in range(reps)]
        if missing_module("triton") is None and a.numel() >= L2_READ_BLOCK:
            methods["triton-read"] = _triton_read(a)
        return methods, _event_clock(lambda: (torch.cuda.Event(enable_timing=True),
                                              torch.cuda.Event(enable_timing=True)),
                                     lambda start, end: start.elapsed_time(end))
    import cupy

    a = cupy.ones(nbytes // 4, dtype=cupy.float32)
    methods = {"cupy-sum": lambda reps: [a.sum() for _ in range(reps)]}
    return methods, _event_clock(lambda: (cupy.cuda.Event(), cupy.cuda.Event()),
                                 cupy.cuda.get_elapsed_time)


L2_READ_BLOCK = 4096


def _triton_read(a):
    """Every multiprocessor's programs read ``a`` again and again, from L2 where it fits."""
    import torch

    from gdbench.kernels.triton_loops import read_repeatedly

    n = a.numel() // L2_READ_BLOCK * L2_READ_BLOCK
    sms = torch.cuda.get_device_properties(a.device).multi_processor_count
    grid = min(n // L2_READ_BLOCK, 4 * sms)
    out = torch.empty(grid, device=a.device)

    def read(reps):
        read_repeatedly[(grid,)](a, out, n, reps, BLOCK=L2_READ_BLOCK, num_warps=8)

    read.nbytes = n * 4
    return read


def _event_clock(events, elapsed_ms):
    def clock(fn):
        start, end = events()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return elapsed_ms(start, end) * 1e-3

    return clock


def bandwidth_at(device: str, nbytes: int, repeats: int = 5) -> dict:
    """Each method's best bytes/s reading a working set of ``nbytes`` on ``device``."""
    nbytes = max(nbytes // 4 * 4, 4096)
    if is_cuda(device):
        methods, clock = _cuda_methods(nbytes)
        scale = {"torch-copy": 2 * (nbytes // 8) * 4}  # half the buffer read, half written
    else:
        methods, clock = _cpu_methods(nbytes), _cpu_clock
        scale = {}
    rates = {name: _best_rate(stream, getattr(stream, "nbytes", scale.get(name, nbytes)),
                                repeats, clock)
             for name, stream in methods.items()}
    del methods
    if is_cuda(device):
        release_device_memory("cuda")
    return rates


def roofline_at(device: str, nbytes: int, repeats: int = 5) -> float:
    """The roofline for a working set of ``nbytes``: the best reading method's bytes/s (a
    copy's bytes read plus written are no ceiling for a step that only reads)."""
    return read_rate(bandwidth_at(device, nbytes, repeats))


def cache_levels(device: str) -> dict:
    """The cache sizes the OS (CPU) or the driver (CUDA L2) reports, by name."""
    if is_cuda(device):

        l2 = int(gpu_info().get("l2_cache_bytes") or 0)
        return {"L2": l2} if l2 else {}
    return cpu_cache_levels()


def curve_sizes(device: str, largest: int) -> list[int]:
    """Working-set sizes from a few KiB to ``largest``, four times apart."""
    sizes, n = [], CURVE_START[device]
    while n < largest:
        sizes.append(n)
        n *= 4
    return sizes + [largest]


def measure_roofline(device: str = "auto", nbytes: int | None = None, curve: bool = True,
          repeats: int = 5) -> Probe:
    """Measure the roofline of ``device`` (cpu, cuda or auto) from memory, and its curve.

    ``nbytes`` is the memory level's buffer: by default four times the CPU's last-level cache
    (at least 1 GiB), or 2 GiB on CUDA.
    """
    device = resolve_device(device)
    if is_cuda(device):

        reasons = [cuda_unavailable(b) for b in ("torch", "cupy")]
        if all(reasons):
            raise ValueError(f"cannot probe cuda: {reasons[0]}; {reasons[1]}")
    levels = cache_levels(device)
    if is_cuda(device):
        nbytes = nbytes or 2 << 30
        cache = levels.get("L2", 0)
    else:
        cache = cpu_cache_bytes()
        nbytes = (nbytes or max(MIN_BYTES, 4 * cache)) // 4 * 4
    methods = bandwidth_at(device, nbytes, repeats)
    points = {}
    if curve:
        for size in curve_sizes(device, nbytes)[:-1]:
            points[size] = roofline_at(device, size, repeats)
        points[nbytes] = read_rate(methods)
    return Probe(device, nbytes, methods, cache, curve=points, levels=levels)
