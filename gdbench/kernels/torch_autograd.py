"""torch-autograd: the tutorial's second step, the gradient from ``loss.backward()``.

forward:  loss = mean((x @ w - y) ** 2), recording the graph
backward: loss.backward() fills w.grad
update:   w -= lr * w.grad under torch.no_grad(), then the gradient is cleared

Memory traffic (D = 1): the forward of the previous kernels (8 arrays, its intermediates kept for
the graph), and a backward that rebuilds d loss / d r = 2 r / N (3), multiplies by x (3) and sums
(1): 15 arrays, 7.5 passes over x and y. It writes 5 arrays: the prediction, r and its square in
forward, d loss / d r and its product with x in backward.
"""

from gdbench.kernels.torch_base import TorchKernel


class TorchAutograd(TorchKernel):
    name = "torch-autograd"
    passes = 7.5
    writes = 5.0

    def _setup_weights(self, w0):
        self.w = w0.requires_grad_(True)

    def forward(self):
        self._loss = ((self.predict() - self.y) ** 2).mean()

    def backward(self):
        self._loss.backward()
        self._grad = self.w.grad

    def update(self):
        self._needs_grad(self.w.grad)
        with self.torch.no_grad():
            self.w -= self.lr * self.w.grad
        # Clearing by setting None (as optimizer.zero_grad does by default) rather than zero_()
        # keeps the last gradient readable through ``grad`` and lets the next backward allocate.
        self.w.grad = None
