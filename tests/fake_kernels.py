"""Kernels that misbehave on purpose, to show that the harness records them and goes on."""

import os
import signal

import numpy as np

from gdbench.kernels.numpy_manual import NumpyManual


class Raises(NumpyManual):
    name = "raises"

    def backward(self):
        raise RuntimeError("backward exploded\nsecond line")


class OutOfMemory(NumpyManual):
    name = "out-of-memory"

    def _setup(self, x, y, w0):
        raise MemoryError("cannot allocate 1 TiB")


class Wrong(NumpyManual):
    name = "wrong"

    def backward(self):
        super().backward()
        self._grad = self._grad * 1.5


class Diverges(NumpyManual):
    name = "diverges"

    def update(self):
        with np.errstate(invalid="ignore"):
            super().update()
        if np.isfinite(self.w).all() and getattr(self, "steps", 0) > 3:
            self.w[:] = np.inf
        self.steps = getattr(self, "steps", 0) + 1


class Interrupts(NumpyManual):
    """Sends itself SIGINT (Ctrl-C) a few steps after its first."""

    name = "interrupts"

    def step(self):
        super().step()
        self.steps = getattr(self, "steps", 0) + 1
        if self.steps == 3:
            os.kill(os.getpid(), signal.SIGINT)


FAKES = {cls.name: f"tests.fake_kernels:{cls.__name__}"
         for cls in (Raises, OutOfMemory, Wrong, Diverges, Interrupts)}
