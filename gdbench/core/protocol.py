"""The one protocol every gdbench kernel follows.

A kernel owns one linear-regression problem on its device: ``prepare`` moves the data there once;
``forward``, ``backward`` and ``update`` then run one gradient-descent step in three phases, each
of which may return before the device has finished. ``synchronize`` is the only call that waits
for the device, and the read-back properties are the only ones that copy data back to the host.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

PHASES = ("forward", "backward", "update")
FUSED = ("step",)


class OrderError(AttributeError):
    """A kernel's method or read-back used before the call it needs: prepare, forward, backward
    or step. An AttributeError, since it is most often met reading an attribute not made yet."""


@runtime_checkable
class Kernel(Protocol):
    """A linear-regression gradient-descent step ``w -= lr * d/dw mean((x @ w - y)**2)``."""

    name: ClassVar[str]
    backend: ClassVar[str]
    phases: ClassVar[tuple[str, ...]]  # PHASES, or FUSED when only step() exists
    passes: ClassVar[float]  # modelled memory traffic per step, in units of one read of x and y
    device: str
    dtype: str

    def prepare(self, x: np.ndarray, y: np.ndarray, *, w0=0.0, lr: float = 0.01) -> None:
        """Take ``x`` of shape (N,) or (N, D) and ``y`` of shape (N,) to the device, once."""

    def forward(self) -> None:
        """Prediction ``x @ w`` and mean-squared-error loss at the current weights."""

    def backward(self) -> None:
        """Gradient of the last forward's loss with respect to the weights."""

    def update(self) -> None:
        """``w -= lr * grad``, plus any reset the backend needs (such as zeroing ``.grad``)."""

    def step(self) -> None:
        """forward, backward and update; fused kernels do all three in one go."""

    # Optional: ``run_steps(k)``, k steps with the same math, in one call where the backend can
    # (a compiled loop, a persistent kernel); ``gdbench.core.protocol.run_steps`` falls back to
    # a loop of ``step`` for a kernel without it. Afterwards ``loss`` and ``grad`` are those of
    # the last step, and ``weight`` is after all k updates.

    def synchronize(self) -> None:
        """Wait until the device has finished all work launched so far."""

    @property
    def weight(self) -> np.ndarray:
        """Current weights, shape (D,)."""

    @property
    def loss(self) -> float:
        """Loss computed by the last forward (or step)."""

    @property
    def grad(self) -> np.ndarray:
        """Gradient computed by the last backward (or step), shape (D,)."""


def run_steps(kernel, k: int) -> None:
    """``k`` steps of ``kernel``: its own ``run_steps`` where it has one, else ``k`` steps."""
    native = getattr(kernel, "run_steps", None)
    if native is not None:
        native(k)
        return
    for _ in range(k):
        kernel.step()
