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
    """Sends itself SIGINT (Ctrl-C) in its first window, after the steps of its check (1) and
    of its memory's measurement (2)."""

    name = "interrupts"

    def step(self):
        super().step()
        self.steps = getattr(self, "steps", 0) + 1
        if self.steps == 6:
            os.kill(os.getpid(), signal.SIGINT)


class Terminates(NumpyManual):
    """Sends itself SIGTERM, as a scheduler would, in its first window (as ``Interrupts``)."""

    name = "terminates"

    def step(self):
        super().step()
        self.steps = getattr(self, "steps", 0) + 1
        if self.steps == 6:
            os.kill(os.getpid(), signal.SIGTERM)


class TorchAllocatorFails(NumpyManual):
    """Fails as PyTorch's CPU allocator does when memory runs out."""

    name = "torch-allocator-fails"

    def _setup(self, x, y, w0):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: "
                           "can't allocate memory: you tried to allocate 8000000000000 bytes.")


class Counted(NumpyManual):
    """Records the address of the x each prepare was handed."""

    name = "counted"
    buffers: list = []

    def _setup(self, x, y, w0):
        Counted.buffers.append(x.ctypes.data)
        super()._setup(x, y, w0)


class FitsAlone(NumpyManual):
    """Out of memory while another kernel holds its buffers (``crowded``), as a large kernel
    beside the others can be; it fits once they are gone."""

    name = "fits-alone"
    crowded = True

    def _setup(self, x, y, w0):
        if FitsAlone.crowded:
            raise MemoryError("cannot allocate its buffers beside the others'")
        super()._setup(x, y, w0)


FAKES = {cls.name: f"tests.fake_kernels:{cls.__name__}"
         for cls in (Raises, OutOfMemory, Wrong, Diverges, Interrupts, Terminates,
                     TorchAllocatorFails, Counted, FitsAlone)}
