"""K steps per call: a kernel's ``run_steps(K)``, timed as one call and reported per step.

A kernel whose backend can run K steps in one compiled loop or one launch (``many_steps``:
"one call") no longer pays the cost of a call (Python, a launch, the start of a thread pool) on
every step; for any other kernel ``run_steps`` is a loop of steps, and the per-step time is
its single step's.
"""

from gdbench.core.protocol import FUSED, run_steps
from gdbench.kernels.base import Wrapper


class ManySteps(Wrapper):
    """Wraps a kernel; ``step`` runs ``k`` of its steps."""

    phases = FUSED

    def __init__(self, inner, k: int):
        if not (isinstance(k, int) and k >= 1):
            raise ValueError(f"steps per call must be a whole number of at least 1, got {k}")
        self.inner, self.k = inner, k
        self.name = f"{inner.name} K={k}"
        self.backend, self.device, self.dtype = inner.backend, inner.device, inner.dtype

    def prepare(self, x, y, *, w0=0.0, lr: float = 0.01) -> None:
        self.inner.prepare(x, y, w0=w0, lr=lr)

    def step(self) -> None:
        run_steps(self.inner, self.k)
