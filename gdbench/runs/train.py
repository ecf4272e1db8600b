"""The tutorial, replayed: fit ``f(x) = w * x`` to ``X = [1, 2, 3, 4]``, ``Y = 2 X`` with any kernel."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

TUTORIAL_X = np.array([1.0, 2.0, 3.0, 4.0])
TUTORIAL_Y = 2.0 * TUTORIAL_X
PREDICT_AT = 5.0


@dataclass(frozen=True)
class Epoch:
    """One training step: the weight after it and the loss of its forward (before the update)."""

    epoch: int
    w: float
    loss: float

    @property
    def finite(self) -> bool:
        return math.isfinite(self.loss) and math.isfinite(self.w)


def check_training(iters: int, lr: float, w0: float = 0.0) -> None:
    """ValueError for a loop that cannot mean anything: a negative count, a learning rate or a
    starting weight that is not a finite number."""
    if iters < 0:
        raise ValueError(f"iters must be at least 0, got {iters}")
    for name, value in (("the learning rate", lr), ("the starting weight", w0)):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")


def train(kernel, iters: int = 20, lr: float = 0.01, w0: float = 0.0,
          x=TUTORIAL_X, y=TUTORIAL_Y) -> Iterator[Epoch]:
    """Prepare ``kernel`` on the tutorial's data and yield each of ``iters`` steps.

    A step whose loss or weight is no longer finite is yielded and ends the training: nothing
    after it would mean anything. Overflow on the way there is expected, and not warned of.
    """
    check_training(iters, lr, w0)
    kernel.prepare(x, y, w0=w0, lr=lr)
    for epoch in range(1, iters + 1):
        with np.errstate(over="ignore", invalid="ignore"):
            kernel.step()
            e = Epoch(epoch, float(kernel.weight[0]), kernel.loss)
        yield e
        if not e.finite:
            return


def predict(w: float, at: float = PREDICT_AT) -> float:
    return w * at
