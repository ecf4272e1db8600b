"""numpy-manual slowed by extra work in every step: more passes over the data.

A genuine slowdown, to see whether ``gdbench ab`` finds one: each step also copies part of x, as
many elements as make the step about ``SLOWDOWN`` slower than numpy-manual's. The amount is
measured once per sample count and process: the median time of numpy-manual's step and of one
copy of the whole of x, so the slowdown is about right at every size (at small N a copy costs
its call more than its elements, and the slowdown comes out larger than asked for; ``gdbench ab``
reports the ratio it measured).
"""

import time

import numpy as np

from gdbench.kernels.numpy_manual import NumpyManual


def _median_time(run, repeats: int = 15) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


class Slowed(NumpyManual):
    SLOWDOWN = 0.0
    _copies: dict = {}  # (class, N) -> elements of x copied per step

    def _setup(self, x, y, w0):
        super()._setup(x, y, w0)
        self._scratch = np.empty_like(self.x)
        key = (type(self), self.x.size)
        if key not in Slowed._copies:
            def plain_step():
                NumpyManual.forward(self)
                NumpyManual.backward(self)

            step = _median_time(plain_step)
            full = _median_time(lambda: np.copyto(self._scratch, self.x))
            Slowed._copies[key] = max(1, round(self.SLOWDOWN * step / full * self.x.size))
            for made in ("r", "_loss", "_grad"):  # the timed steps leave no loss or gradient
                self.__dict__.pop(made, None)
        self._extra = Slowed._copies[key]

    def forward(self):
        left = self._extra
        while left > 0:  # whole copies of x, then part of one
            m = min(left, self.x.size)
            np.copyto(self._scratch[:m], self.x[:m])
            left -= m
        super().forward()


class Slowed5(Slowed):
    name = "numpy-slowed-5"
    SLOWDOWN = 0.05


class Slowed10(Slowed):
    name = "numpy-slowed-10"
    SLOWDOWN = 0.10


class Slowed30(Slowed):
    name = "numpy-slowed-30"
    SLOWDOWN = 0.30
