"""Where a run happened: Python, libraries, CPU, threads, GPU, and the project's commit."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from gdbench.axes.energy import energy_source
from gdbench.axes.telemetry import open_telemetry
from gdbench.core.devices import is_cuda
from gdbench.measure.source import source
from gdbench.measure.threads import thread_counts

PACKAGES = ("numpy", "torch", "triton", "numba", "numba-cuda", "jax", "jaxlib", "nvidia-ml-py",
            "rich", "matplotlib", "pytest-benchmark")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "NUMBA_NUM_THREADS", "TRITON_INTERPRET")


def package_versions() -> dict[str, str]:
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] or ""
        if name.lower() in PACKAGES or name.lower().startswith("cupy"):
            found[name.lower()] = dist.version
    return dict(sorted(found.items()))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_cache_bytes() -> int:
    """Size of the CPU's last-level cache as the OS reports it, 0 when it does not."""
    caches = Path("/sys/devices/system/cpu/cpu0/cache")
    best = 0
    for index in caches.glob("index*"):
        try:
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        best = max(best, int(text.rstrip("KMG")) * scale)
    return best


def cpu_cache_levels() -> dict[str, int]:
    """The data caches of CPU 0 as the OS reports them: {"L1d": bytes, "L2": ..., "L3": ...}."""
    levels = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        if kind == "Instruction":
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        levels[f"L{level}" + ("d" if kind == "Data" else "")] = int(text.rstrip("KMG")) * scale
    return levels


def gpu_info() -> dict:
    """Name, memory, cache, driver and CUDA version of CUDA device 0, from torch or CuPy."""
    try:
        import torch

        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            info = {"name": p.name, "memory_bytes": p.total_memory,
                    "capability": f"{p.major}.{p.minor}", "multiprocessors": p.multi_processor_count,
                    "l2_cache_bytes": getattr(p, "L2_cache_size", 0), "cuda": torch.version.cuda}
            return {**info, "driver": _driver_version()}
    except ImportError:
        pass
    try:
        import cupy

        p = cupy.cuda.runtime.getDeviceProperties(0)
        return {"name": p["name"].decode(), "memory_bytes": p["totalGlobalMem"],
                "capability": f"{p['major']}.{p['minor']}",
                "multiprocessors": p["multiProcessorCount"], "l2_cache_bytes": p["l2CacheSize"],
                "cuda": str(cupy.cuda.runtime.runtimeGetVersion()), "driver": _driver_version()}
    except Exception:
        return {}


def _driver_version() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return ""


def git_commit(record: dict) -> str:
    """The older form of the source: the commit, with '-dirty' for local changes; '' if none."""
    if not record["commit"]:
        return ""
    return record["commit"] + ("-dirty" if record["uncommitted"] else "")


def capture(device: str) -> dict:
    """The environment of a run on ``device``; ask after the kernels have imported their backends."""

    threads = {v: os.environ[v] for v in THREAD_VARIABLES if v in os.environ}
    # torch's, Numba's and each BLAS and OpenMP pool's threads (a case run with --threads
    # records its own in the case)
    threads["pools"] = thread_counts()
    code = source()
    env = {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "gdbench_commit": git_commit(code),
        "source": code,
        "cpu": {"model": cpu_model(), "logical_cores": os.cpu_count(),
                "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                else os.cpu_count(), "last_level_cache_bytes": cpu_cache_bytes()},
        "threads": threads,
    }
    env["energy"] = energy_source(device)
    if is_cuda(device):
        env["gpu"] = gpu_info()

        nvml = open_telemetry()
        env["gpu"]["nvml"] = nvml.describe() if nvml else "not recorded (pip install nvidia-ml-py)"
    return env
