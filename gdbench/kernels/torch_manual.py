"""torch-manual: the analytic gradient on torch tensors, no autograd.

forward:  r = x @ w - y,  loss = mean(r * r)   (x * w with one feature)
backward: grad = 2/N * x.T @ r              (r @ x: a dot product with one feature)
update:   w -= lr * grad   (in place)

Memory traffic (D = 1): x @ w reads x, writes the prediction (2); subtracting y reads 2 arrays
and writes 1 (3); r * r and its mean read r, write and read the square (3); x.T @ r reads 2:
10 arrays, 5 passes over x and y; 3 arrays written (prediction, r, r * r), r kept for backward.

In float16 the sums of the gradient pass float16's largest number, 65504, from about 10^4
samples, so backward sums the products r * x in float32 (bfloat16 has float32's range): the
products are written and read once more, 6 passes and 4 arrays written.
"""

from gdbench.kernels.torch_base import TorchKernel


class TorchManual(TorchKernel):
    name = "torch-manual"
    passes = 5.0
    writes = 3.0

    def forward(self):
        self.r = self.predict() - self.y
        self._loss = (self.r * self.r).mean()

    def _setup_weights(self, w0):
        super()._setup_weights(w0)
        self.passes = 6.0 if self.dtype == "float16" else self.passes
        self.writes = 4.0 if self.dtype == "float16" else self.writes

    def backward(self):
        if self.dtype == "float16":
            r = self.r if self.x.ndim == 1 else self.r[:, None]
            self._grad = (r * self.x).sum(0, dtype=self.torch.float32)
        else:
            self._grad = self.r @ self.x
        self._grad.mul_(2.0 / self.n_samples)

    def update(self):
        self.w.sub_(self._grad, alpha=self.lr)
