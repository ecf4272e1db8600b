"""Which devices exist here, asked without importing a backend until the question is asked."""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import sys
from functools import cache

DEVICES = ("cpu", "cuda")


def is_cuda(device: str | None) -> bool:
    """Whether ``device`` (a resolved device name) is a CUDA device."""
    return device == "cuda"


def is_cpu(device: str | None) -> bool:
    return device == "cpu"

INSTALL_HINT = {
    "torch": "torch",
    "cupy": "cupy",
    "triton": "triton",
    "numba": "numba",
    "matplotlib": "plot",
    "pynvml": "nvml",
}


def missing_module(module: str) -> str | None:
    """Why ``module`` cannot be used ("torch is not installed ..."), or None."""
    if importlib.util.find_spec(module) is None:
        extra = INSTALL_HINT.get(module, module)
        return f"{module} is not installed (pip install 'gdbench[{extra}]')"
    return None


@cache
def cuda_unavailable(backend: str = "torch") -> str | None:
    """Why ``backend`` cannot reach a CUDA device here, or None when it can."""
    if backend == "cupy":
        reason = missing_module("cupy")
        if reason:
            return reason
        try:
            import cupy

            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDARuntimeError, or a missing driver library
            return f"no CUDA device ({type(exc).__name__}: {exc})"
        return None if count > 0 else "no CUDA device"
    reason = missing_module("torch")
    if reason:
        return reason
    import torch

    if torch.version.cuda is None:
        return "no CUDA device (this torch build has no CUDA support)"
    if not torch.cuda.is_available():
        return "no CUDA device"
    return None


def resolve_device(device: str) -> str:
    """Map ``auto`` to cuda when some backend reaches a CUDA device, else cpu."""
    if device == "auto":
        present = any(cuda_unavailable(b) is None for b in ("torch", "cupy"))
        return "cuda" if present else "cpu"
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose one of: auto, {', '.join(DEVICES)}")
    return device


_runs_frozen = 0  # how many runs are inside run_objects_collected


@contextlib.contextmanager
def run_objects_collected():
    """Collections inside scan only the objects made inside.

    With torch, numba and the other backends imported, a full collection walks millions of
    objects: a quarter of a second on the 2-core VM, for every case that released its memory,
    and a pause wherever Python started one itself inside a timed window. What is alive when
    the outermost run starts is frozen (``gc.freeze``), after a collection of the younger
    generations (the garbage made just before), and unfrozen when the run ends, so that a
    long-lived process (a notebook, the tests) collects it afterwards.
    """
    global _runs_frozen
    if _runs_frozen == 0:
        gc.collect(1)
        gc.freeze()
    _runs_frozen += 1
    try:
        yield
    finally:
        _runs_frozen -= 1
        if _runs_frozen == 0:
            gc.unfreeze()


def release_device_memory(device: str) -> None:
    """Collect garbage and hand cached CUDA memory back, so that the next case starts clean
    (inside ``run_objects_collected``, a collection of the run's own objects)."""
    gc.collect()
    if is_cuda(device):
        if "torch" in sys.modules:
            sys.modules["torch"].cuda.empty_cache()
        if "cupy" in sys.modules:
            sys.modules["cupy"].get_default_memory_pool().free_all_blocks()
