"""torch-module: the tutorial's fourth step, an ``nn.Linear(D, 1, bias=False)`` model.

forward:  loss = MSELoss(model(x), y)      with y kept as (N, 1), the model's output shape

The model's weight gradient is the (1, N) x (N, 1) product ``grad_out.T @ x``; for one feature
in float32 on the CPU PyTorch sums it sequentially and loses about 0.5% at N = 10^7, which the
harness's check against the float64 reference reports as wrong.
backward: loss.backward()
update:   optimizer.step(); optimizer.zero_grad()

Memory traffic (D = 1) as torch-autograd: 7.5 passes over x and y, 5 arrays written.
"""

from gdbench.core.devices import is_cuda
from gdbench.kernels.torch_base import TorchKernel


class TorchModule(TorchKernel):
    name = "torch-module"
    passes = 7.5
    writes = 5.0

    # Set by gdbench.distributed.adapters before prepare: DDP averages the ranks' gradients,
    # so each rank's loss is scaled by (its samples / all samples) * world size for backward,
    # which makes the average the gradient of all the samples when shards differ in size.
    dp_scale = None

    def _setup_weights(self, w0):
        nn = self.torch.nn
        self.x = self.x.reshape(self.n_samples, -1)
        self.y = self.y.reshape(-1, 1)
        self.model = nn.Linear(self.n_features, 1, bias=False, device=self.device, dtype=w0.dtype)
        with self.torch.no_grad():
            self.model.weight.copy_(w0.reshape(1, -1))
        self.w = self.model.weight
        self.loss_fn = nn.MSELoss()
        self.optimizer = self.torch.optim.SGD(self.model.parameters(), lr=self.lr)
        if self.dp_scale is not None:  # the way users write data parallelism in PyTorch
            parallel = self.torch.nn.parallel.DistributedDataParallel
            self.model = parallel(self.model, device_ids=[self.x.device.index]
                                  if is_cuda(self.device) else None)

    def forward(self):
        self._loss = self.loss_fn(self.model(self.x), self.y)

    def backward(self):
        loss = self._loss if self.dp_scale is None else self._loss * self.dp_scale
        loss.backward()  # under DDP, the gradient's all-reduce runs here, bucket by bucket
        self._grad = self.w.grad

    def update(self):
        self._needs_grad(self.w.grad)  # the optimizer would skip a weight without one
        self.optimizer.step()
        self.optimizer.zero_grad()
