"""Finding kernels: the built-in ones and those other projects add through entry points.

Another project adds a kernel by naming its class in the entry-point group ``gdbench.kernels``::

    [project.entry-points."gdbench.kernels"]
    my-kernel = "my_project.kernels:MyKernel"

The class follows ``gdbench.core.protocol.Kernel``, is constructed as ``cls(device=..., dtype=...)``
and has class attributes ``name``, ``backend``, ``devices``, ``dtypes``, ``phases`` and
``passes``, plus a classmethod ``unavailable_reason(device)`` (subclassing
``gdbench.kernels.base.KernelBase`` gives all of that).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points

from gdbench.core.dtypes import ALIASES

ENTRY_POINT_GROUP = "gdbench.kernels"

BUILTIN = {
    "numpy-manual": "gdbench.kernels.numpy_manual:NumpyManual",
    "cupy-manual": "gdbench.kernels.cupy_manual:CupyManual",
    "torch-manual": "gdbench.kernels.torch_manual:TorchManual",
    "torch-autograd": "gdbench.kernels.torch_autograd:TorchAutograd",
    "torch-optim": "gdbench.kernels.torch_optim:TorchOptim",
    "torch-module": "gdbench.kernels.torch_module:TorchModule",
    "torch-compile": "gdbench.kernels.torch_compile:TorchCompile",
    "triton-fused": "gdbench.kernels.triton_fused:TritonFused",
    "cupy-fused": "gdbench.kernels.cupy_fused:CupyFused",
    "numba-fused": "gdbench.kernels.numba_fused:NumbaFused",
    "jax-jit": "gdbench.kernels.jax_jit:JaxJit",
}


@dataclass(frozen=True)
class KernelInfo:
    """What ``list_kernels`` says of one kernel; ``unavailable`` maps a device to why not."""

    name: str
    backend: str
    devices: tuple[str, ...]
    dtypes: tuple[str, ...]
    phases: tuple[str, ...]
    unavailable: dict[str, str]
    source: str = "gdbench"
    max_features: int | None = None  # None: any number of features
    cuda_graph: bool = False  # whether its step on cuda can be captured in a CUDA graph
    data_parallel: bool = False  # whether gdbench.distributed can split its samples
    # How run_steps(k) runs k steps: "one call" (a compiled loop, one launch) or "a loop of
    # steps" (a kernel without its own run_steps, whose K steps save nothing)
    many_steps: str = "a loop of steps"

    def available_on(self, device: str) -> bool:
        return device in self.devices and device not in self.unavailable

    @property
    def available(self) -> bool:
        """Whether the kernel runs on at least one of its devices here."""
        return any(self.available_on(d) for d in self.devices)

    @property
    def reason(self) -> str | None:
        """Why the kernel runs nowhere here, or None when it runs somewhere."""
        if self.available:
            return None
        return "; ".join(f"{d}: {r}" for d, r in self.unavailable.items())


# What the harness reads from a kernel class before it makes one (KernelBase provides it all).
CONTRACT = ("name", "backend", "devices", "dtypes", "phases", "passes", "unavailable_reason",
            "prepare", "step", "synchronize", "weight", "loss", "grad")


def _load(target: str):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _plugin_entry_points() -> dict:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in BUILTIN}


def shadowed_plugins() -> list[tuple[str, str]]:
    """(name, target) of each plugin not loaded because a built-in kernel has its name."""
    return [(ep.name, ep.value) for ep in entry_points(group=ENTRY_POINT_GROUP)
            if ep.name in BUILTIN]


def kernel_names() -> list[str]:
    """Every known kernel name: built-in first, then those from entry points."""
    return list(BUILTIN) + sorted(_plugin_entry_points())


def kernel_class(name: str):
    """The class of kernel ``name``; ValueError listing the known names when there is none."""
    if name in BUILTIN:
        return _load(BUILTIN[name])
    plugins = _plugin_entry_points()
    if name in plugins:
        try:
            cls = plugins[name].load()
        except Exception as exc:
            raise ValueError(f"kernel {name!r} failed to load from {plugins[name].value}: "
                             f"{type(exc).__name__}: {exc}".splitlines()[0]) from None
        missing = [attr for attr in CONTRACT if not hasattr(cls, attr)]
        if missing:
            raise ValueError(f"kernel {name!r} from {plugins[name].value} lacks "
                             f"{', '.join(missing)} (see gdbench.kernels.base.KernelBase)")
        return cls
    raise ValueError(f"unknown kernel {name!r}; known kernels: {', '.join(kernel_names())}")


def make_kernel(name: str, device: str = "cpu", dtype: str = "float32"):
    """A new kernel ``name`` for ``device`` and ``dtype``; ValueError says why it cannot be."""
    return kernel_class(name)(device=device, dtype=ALIASES.get(dtype, dtype))


def list_kernels(device: str | None = None) -> list[KernelInfo]:
    """Every known kernel and whether it runs here, on ``device`` or on each of its devices."""
    infos = []
    for name in kernel_names():
        try:
            cls = kernel_class(name)
        except ValueError as exc:
            infos.append(KernelInfo(name, "?", (), (), (), {"any": str(exc)}, "plugin"))
            continue
        devices = tuple(cls.devices)
        checked = [d for d in devices if device in (None, d)]
        unavailable = {}
        for d in checked:
            try:
                reason = cls.unavailable_reason(d)
            except Exception as exc:  # a plugin's own check that fails says so, and nothing else
                reason = f"its availability check failed: {type(exc).__name__}: {exc}"
            if reason:
                unavailable[d] = reason
        if device is not None and device not in devices:
            unavailable[device] = f"does not run on {device}"
        source = "gdbench" if name in BUILTIN else "plugin"
        infos.append(
            KernelInfo(name, cls.backend, devices, tuple(cls.dtypes), tuple(cls.phases),
                       unavailable, source, getattr(cls, "max_features", None),
                       bool(getattr(cls, "cuda_graph", False)),
                       bool(getattr(cls, "data_parallel", False)),
                       getattr(cls, "many_steps", "a loop of steps"))
        )
    return infos
