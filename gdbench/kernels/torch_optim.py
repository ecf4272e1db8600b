"""torch-optim: the tutorial's third step, ``nn.MSELoss`` and ``torch.optim.SGD``.

forward:  loss = MSELoss(x @ w, y)
backward: loss.backward()
update:   optimizer.step(); optimizer.zero_grad()

Memory traffic (D = 1) as torch-autograd: 7.5 passes over x and y, 5 arrays written.
"""

from gdbench.kernels.torch_base import TorchKernel


class TorchOptim(TorchKernel):
    name = "torch-optim"
    passes = 7.5
    writes = 5.0

    def _setup_weights(self, w0):
        self.w = w0.requires_grad_(True)
        self.loss_fn = self.torch.nn.MSELoss()
        self.optimizer = self.torch.optim.SGD([self.w], lr=self.lr)

    def forward(self):
        self._loss = self.loss_fn(self.predict(), self.y)

    def backward(self):
        self._loss.backward()
        self._grad = self.w.grad

    def update(self):
        self._needs_grad(self.w.grad)  # the optimizer would skip a weight without one
        self.optimizer.step()
        self.optimizer.zero_grad()
