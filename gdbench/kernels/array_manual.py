"""The tutorial's first step, written once over an array namespace ``xp`` (NumPy or CuPy).

forward:  r = x @ w - y,  loss = mean(r**2)   (x * w with one feature, as in the tutorial)
backward: grad = 2/N * x.T @ r            (d loss / d w, the analytic gradient)
update:   w -= lr * grad

Memory traffic, in arrays of N elements (D = 1): forward reads x and writes x @ w (2), subtracts
y (3), squares (2) and averages (1); backward reads r and x (2): 10 arrays, 5 passes over x and y.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from gdbench.kernels.base import KernelBase


class ArrayManualKernel(KernelBase):
    passes: ClassVar[float] = 5.0

    def _setup(self, x, y, w0):
        xp = self.xp
        self.x = xp.asarray(x[:, 0] if x.shape[1] == 1 else x)
        self.y = xp.asarray(y)
        self.w = xp.asarray(w0.astype(self.dtype))

    def forward(self):
        prediction = self.x * self.w if self.x.ndim == 1 else self.x @ self.w
        self.r = prediction - self.y
        self._loss = (self.r**2).mean()

    def backward(self):
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
