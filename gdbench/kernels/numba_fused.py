"""numba-fused: the whole step in one parallel pass over x and y on the CPU.

Every thread streams its share of the rows once, computing the residual, its square and its
product with x, and sums them in float64; the partial sums are combined and the weights updated
in the same call. Memory traffic: x and y read once, 1 pass.

``run_steps(k)`` runs k such steps in one compiled call: no Python call between them, and below
SERIAL_BELOW elements each pass runs in the calling thread, since waking the thread pool for
every step costs more than a pass over data that fits in L1 or L2.
"""

import numpy as np

from gdbench.kernels.base import FusedKernelBase, OutBuffer

SERIAL_BELOW = 1 << 16  # elements of x under which run_steps keeps each pass in one thread


class NumbaFused(OutBuffer, FusedKernelBase):
    name = "numba-fused"
    backend = "numba"
    devices = ("cpu",)
    requires = ("numba",)
    passes = 1.0
    many_steps = "one call"

    def _setup(self, x, y, w0):
        from gdbench.kernels import numba_loops

        self.x = x[:, 0] if x.shape[1] == 1 else x
        self.y = y
        self.w = w0.astype(self.dtype)
        self.out = np.zeros(1 + self.n_features)
        self.numba_loops = numba_loops
        self.chunks = 8 * numba_loops.numba.get_num_threads()

    def step(self):
        if self.x.ndim == 1:
            self.numba_loops.fused_step_1d(self.x, self.y, self.w, self.lr, self.out)
        else:
            self.numba_loops.fused_step_2d(self.x, self.y, self.w, self.lr, self.out, self.chunks)

    def run_steps(self, k: int):
        """``k`` steps in one compiled call; afterwards the last step's loss and gradient."""
        parallel = self.x.size >= SERIAL_BELOW
        if self.x.ndim == 1:
            self.numba_loops.fused_steps_1d(self.x, self.y, self.w, self.lr, self.out, k,
                                            parallel)
        else:
            self.numba_loops.fused_steps_2d(self.x, self.y, self.w, self.lr, self.out,
                                            self.chunks, k, parallel)
        self.__dict__.pop("step", None)  # no longer the first step after prepare
        self._stepped = True

    def synchronize(self):
        """Numba returns only when its work is done."""

    @staticmethod
    def _host(a) -> np.ndarray:
        return a.copy()

    @property
    def weight(self):
        return self.w.copy()
