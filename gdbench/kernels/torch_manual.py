"""torch-manual: the analytic gradient on torch tensors, no autograd.

forward:  r = x @ w - y,  loss = mean(r * r)   (x * w with one feature)
backward: grad = 2/N * x.T @ r              (r @ x: a dot product with one feature)
update:   w -= lr * grad   (in place)

Memory traffic (D = 1): x @ w reads x, writes the prediction (2); subtracting y reads 2 arrays
and writes 1 (3); r * r and its mean read r, write and read the square (3); x.T @ r reads 2:
10 arrays, 5 passes over x and y.
"""

from gdbench.kernels.torch_base import TorchKernel


class TorchManual(TorchKernel):
    name = "torch-manual"
    passes = 5.0

    def forward(self):
        self.r = self.predict() - self.y
        self._loss = (self.r * self.r).mean()

    def backward(self):
        self._grad = (self.r @ self.x).mul_(2.0 / self.n_samples)

    def update(self):
        self.w.sub_(self._grad, alpha=self.lr)
