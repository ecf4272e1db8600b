"""What every built-in kernel shares: argument checks, availability, and the default step.

A subclass names itself and its backend, lists the devices and modules it needs, and implements
``_setup`` (take the checked host data to its device), the three phases, ``synchronize`` and the
three read-backs.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from gdbench.core.devices import DEVICES, cuda_unavailable, is_cuda, missing_module
from gdbench.core.dtypes import DTYPES, host_dtype
from gdbench.core.protocol import FUSED, PHASES, OrderError


def all_finite(a: np.ndarray) -> bool:
    """No NaN or inf in ``a``: its min and max, which NaN and inf reach, are finite. Unlike
    ``np.isfinite(a).all()`` this makes no temporary of a byte per element (a GB at 1e9
    samples) and maps no page of it: as fast on data in memory, 6 times faster on fresh
    zeros."""
    return bool(np.isfinite(a.min()) and np.isfinite(a.max()))


def check_problem(x, y, w0, lr):
    """Validate a problem; return ``x`` as (N, D), ``y`` as (N,), ``w0`` as (D,) and ``lr``."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise ValueError(f"x and y must be real numbers, got dtypes {x.dtype} and {y.dtype}")
    if x.ndim not in (1, 2):
        raise ValueError(f"x must have shape (N,) or (N, D), got {x.shape}")
    if y.ndim != 1:
        raise ValueError(f"y must have shape (N,), got {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
    if y.shape[0] == 0:
        raise ValueError("x and y are empty: a step needs at least one sample")
    x = x.reshape(len(y), -1)
    if x.shape[1] == 0:
        raise ValueError("x has no features: D must be at least 1")
    if not (all_finite(x) and all_finite(y)):
        raise ValueError("x and y must be finite (found NaN or inf)")
    w0 = np.asarray(w0, dtype=np.float64)
    if w0.ndim == 0:
        w0 = np.full(x.shape[1], float(w0))
    if w0.shape != (x.shape[1],):
        raise ValueError(f"w0 must be a scalar or have shape ({x.shape[1]},), got {w0.shape}")
    if not np.isfinite(w0).all():
        raise ValueError("w0 must be finite")
    if not (isinstance(lr, (int, float, np.floating)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    return x, y, w0, float(lr)


class KernelBase(ABC):
    """Base of the built-in kernels; see ``gdbench.core.protocol.Kernel`` for the contract."""

    name: ClassVar[str]
    backend: ClassVar[str]
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    dtypes: ClassVar[tuple[str, ...]] = ("float32", "float64")
    phases: ClassVar[tuple[str, ...]] = PHASES
    passes: ClassVar[float]
    # Arrays of N elements the byte model says a step writes (D = 1): the most it could hold at
    # once were none freed before the step ended; None where a kernel has no model.
    writes: ClassVar[float | None] = None
    requires: ClassVar[tuple[str, ...]] = ()  # importable modules the kernel needs
    max_features: ClassVar[int | None] = None  # None: any number of features
    cuda_graph: ClassVar[bool] = False  # whether a step on cuda can be captured in a CUDA graph
    data_parallel: ClassVar[bool] = False  # whether gdbench.distributed can split its samples
    # How run_steps(k) runs the steps: "one call" where the k steps are one compiled loop, a
    # short phrase where it depends ("1 launch (D=1)": one persistent launch with one
    # feature; "1 graph (cuda)"), else "a loop of steps" (the default below, which saves
    # nothing). `gdbench list` shows it in its "K steps" column.
    many_steps: ClassVar[str] = "a loop of steps"

    def __init__(self, device: str = "cpu", dtype: str = "float32"):
        if device not in self.devices:
            known = "" if device in DEVICES else f" (known devices: {', '.join(DEVICES)})"
            raise ValueError(
                f"kernel {self.name} does not run on {device!r}{known}; "
                f"it runs on: {', '.join(self.devices)}"
            )
        if dtype not in self.dtypes:
            known = "" if dtype in DTYPES else f" (known dtypes: {', '.join(DTYPES)})"
            raise ValueError(
                f"kernel {self.name} does not support dtype {dtype!r}{known}; "
                f"it supports: {', '.join(self.dtypes)}"
            )
        reason = self.unavailable_reason(device)
        if reason:
            raise ValueError(f"kernel {self.name} is unavailable on {device}: {reason}")
        self.device = device
        self.dtype = dtype

    @classmethod
    def unavailable_reason(cls, device: str) -> str | None:
        """Why this kernel cannot run on ``device`` here, or None when it can."""
        for module in cls.requires:
            reason = missing_module(module)
            if reason:
                return reason
        if is_cuda(device):
            return cuda_unavailable("cupy" if cls.backend == "cupy" else "torch")
        return None

    def prepare(self, x, y, *, w0=0.0, lr: float = 0.01) -> None:
        x, y, w0, lr = check_problem(x, y, w0, lr)
        if self.max_features is not None and x.shape[1] > self.max_features:
            raise ValueError(f"kernel {self.name} supports at most {self.max_features} "
                             f"feature(s), got {x.shape[1]}")
        self.n_samples, self.n_features = x.shape
        self.lr = lr
        for stale in ("_loss", "_grad", "r"):  # of the problem before, if any
            self.__dict__.pop(stale, None)
        host = host_dtype(self.dtype)
        self._setup(np.ascontiguousarray(x, host), np.ascontiguousarray(y, host), w0)

    @abstractmethod
    def _setup(self, x: np.ndarray, y: np.ndarray, w0: np.ndarray) -> None:
        """Take the checked host data, already in this kernel's dtype (float32 for bfloat16,
        which NumPy lacks), to the device."""

    def step(self) -> None:
        self.forward()
        self.backward()
        self.update()

    def run_steps(self, k: int) -> None:
        """``k`` steps; a kernel that can run them in one call overrides this loop."""
        for _ in range(k):
            self.step()

    # What a phase leaves behind for the next one (or shows through a read-back), and the
    # phase that makes it.
    MADE_BY = {"_loss": "forward", "loss": "forward", "r": "forward", "_grad": "backward",
               "grad": "backward"}

    def __getattr__(self, attr):
        # Reached when normal lookup fails, and when a property raises AttributeError: say
        # which call is missing.
        if "n_samples" not in self.__dict__ and not attr.startswith("__"):
            raise OrderError(f"kernel {self.name}: call prepare() first")
        if attr in self.MADE_BY:
            phase = self.MADE_BY[attr]
            call = ("step()" if self.phases == FUSED else
                    f"{phase}()" if attr == "r" else f"{phase}() or step()")
            raise OrderError(f"kernel {self.name} has no {attr.lstrip('_')} yet: call {call} "
                             "first")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")

    def _needs_grad(self, grad) -> None:
        """OrderError unless a backward has left a gradient for ``update``."""
        if grad is None:
            raise OrderError(f"kernel {self.name} has no gradient to apply: call backward() "
                             "first")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} on {self.device}, {self.dtype}>"


class FusedKernelBase(KernelBase):
    """Base of kernels whose step is one fused pass with no separate phases.

    Until the first step after ``prepare``, ``step`` is an instance attribute that runs the
    step and marks the kernel as stepped, then removes itself: the read-backs can tell that no
    step has run without costing the steps after the first anything.
    """

    phases: ClassVar[tuple[str, ...]] = FUSED
    writes: ClassVar[float | None] = 0.0

    def prepare(self, x, y, *, w0=0.0, lr: float = 0.01) -> None:
        super().prepare(x, y, w0=w0, lr=lr)
        self.__dict__.pop("_stepped", None)
        self.step = self._first_step

    def _first_step(self) -> None:
        del self.step
        self.step()
        self._stepped = True

    def _needs_step(self) -> None:
        """OrderError unless a step has run since ``prepare``."""
        if "_stepped" not in self.__dict__:
            raise OrderError(f"kernel {self.name} has no loss or gradient yet: call step() first")

    def _no_phase(self) -> None:
        raise TypeError(f"kernel {self.name} is fused: it has step() but no separate phases")

    forward = backward = update = _no_phase


class OutBuffer:
    """Read-backs of a fused kernel whose step writes the loss and the gradient to one buffer
    ``out`` (the loss first); the kernel's ``_host`` copies part of it to a NumPy array."""

    @property
    def loss(self):
        self._needs_step()
        return float(self._host(self.out[:1])[0])

    @property
    def grad(self):
        self._needs_step()
        return self._host(self.out[1:])


class Wrapper:
    """Base of what wraps a kernel (a CUDA graph of its step, its data-parallel step): waiting
    and the read-backs go to the wrapped kernel, ``inner``."""

    inner: KernelBase

    @property
    def passes(self) -> float:
        return self.inner.passes

    @property
    def writes(self) -> float | None:
        return getattr(self.inner, "writes", None)

    @property
    def requires(self) -> tuple[str, ...]:
        return self.inner.requires

    def synchronize(self) -> None:
        self.inner.synchronize()

    @property
    def weight(self):
        return self.inner.weight

    @property
    def loss(self):
        return self.inner.loss

    @property
    def grad(self):
        return self.inner.grad
