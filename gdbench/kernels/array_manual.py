"""The tutorial's first step, written once over an array namespace ``xp`` (NumPy or CuPy).

forward:  r = x @ w - y,  loss = mean(r**2)   (x * w with one feature, as in the tutorial)
backward: grad = 2/N * x.T @ r            (d loss / d w, the analytic gradient)
update:   w -= lr * grad

Memory traffic, in arrays of N elements (D = 1): forward reads x and writes x @ w (2), subtracts
y (3), squares (2) and averages (1); backward reads r and x (2): 10 arrays, 5 passes over x and y.
It writes 3 arrays (the prediction, r and r**2); r is kept for backward.

float16 (NumPy's and CuPy's half precision; neither has bfloat16) keeps its sums in float32:
the mean of r**2 accumulates in float32, and backward sums the products r * x in float32, since
float16's sums pass its largest number, 65504, from about 10^4 samples; writing and reading the
products makes 6 passes and 4 arrays written.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from gdbench.kernels.base import KernelBase


class ArrayManualKernel(KernelBase):
    passes: ClassVar[float] = 5.0
    writes: ClassVar[float] = 3.0
    dtypes: ClassVar[tuple[str, ...]] = ("float32", "float64", "float16")

    def _setup(self, x, y, w0):
        xp = self.xp
        self.x = xp.asarray(x[:, 0] if x.shape[1] == 1 else x)
        self.y = xp.asarray(y)
        self.w = xp.asarray(w0.astype(self.dtype))
        self.sum_dtype = "float32" if self.dtype == "float16" else None  # None: the data's
        self.passes = 6.0 if self.sum_dtype else type(self).passes
        self.writes = 4.0 if self.sum_dtype else type(self).writes

    def predict(self):
        return self.x * self.w if self.x.ndim == 1 else self.x @ self.w

    def forward(self):
        self.r = self.predict() - self.y  # the prediction is freed before r**2 is made
        self._loss = (self.r**2).mean(dtype=self.sum_dtype)

    def backward(self):
        if self.sum_dtype:
            r = self.r if self.x.ndim == 1 else self.r[:, None]
            self._grad = (2.0 / self.n_samples) * (r * self.x).sum(0, dtype=self.sum_dtype)
        else:
            self._grad = (2.0 / self.n_samples) * (self.r @ self.x)

    def update(self):
        self.w -= self.lr * self._grad

    def _host(self, a) -> np.ndarray:
        return np.array(a.get() if hasattr(a, "get") else a)

    @property
    def weight(self):
        return self._host(self.w).reshape(-1)

    @property
    def loss(self):
        return float(self._loss)

    @property
    def grad(self):
        return self._host(self._grad).reshape(-1)
