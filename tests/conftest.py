"""Shared fixtures: which kernels run here, and the CUDA marker's skip."""

import os
import shutil

import pytest

# Triton kernels run on CPU tensors through Triton's interpreter where there is no GPU; the
# variable must be set before triton is first imported.
if not (os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi")):
    os.environ.setdefault("TRITON_INTERPRET", "1")

import gdbench  # noqa: E402


def kernels_on(device: str) -> list[str]:
    return [k.name for k in gdbench.list_kernels(device) if k.available_on(device)]


def cuda_present() -> bool:
    from gdbench.core.devices import resolve_device

    return resolve_device("auto") == "cuda"


def pytest_collection_modifyitems(config, items):
    if any("cuda" in item.keywords for item in items) and not cuda_present():
        skip = pytest.mark.skip(reason="no CUDA device here")
        for item in items:
            if "cuda" in item.keywords:
                item.add_marker(skip)
