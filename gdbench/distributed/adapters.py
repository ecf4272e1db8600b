"""What a data-parallel step all-reduces, for each kind of kernel with separate phases.

A kernel of the torch family keeps its loss and gradient as tensors (``_loss``, ``_grad``): the
step weights them by the shard's share of the samples, all-reduces them in place, and the
kernel's own ``update`` then applies the gradient of all N samples. torch-module is PyTorch's
own ``DistributedDataParallel``, which all-reduces the gradient during backward: each rank's
loss is scaled by (its samples / all samples) · world size before backward (``dp_scale``), so
the gradient DDP averages is that of all the samples when shards differ in size, and only the
loss is left to all-reduce. Fused kernels need no adapter: their ``local_sums`` and
``apply_sums`` are the step's own arithmetic split at the sums.
"""

from __future__ import annotations

from gdbench.kernels import registry
from gdbench.kernels.torch_module import TorchModule


class TorchTensors:
    """The loss and gradient tensors of a torch kernel, all-reduced by the step."""

    def before_prepare(self, kernel, share: float, world: int) -> None:
        """Set up ``kernel`` for its shard before ``prepare``."""

    def tensors(self, kernel):
        """The loss tensor and the gradient tensor (None: already all-reduced)."""
        return kernel._loss, kernel._grad


class DistributedModule(TorchTensors):
    """torch-module under ``DistributedDataParallel``."""

    def before_prepare(self, kernel, share: float, world: int) -> None:
        kernel.dp_scale = share * world  # see TorchModule.dp_scale

    def tensors(self, kernel):
        return kernel._loss, None  # DDP has all-reduced the gradient in backward


def adapter(kernel) -> TorchTensors:
    """The adapter of a data-parallel kernel with separate phases."""
    return DistributedModule() if isinstance(kernel, TorchModule) else TorchTensors()


def data_parallel_kernels(device: str, dtype: str, names="all") -> list[str]:
    """The kernels that can run data-parallel on ``device``; ValueError for a named one that
    cannot."""
    infos = {k.name: k for k in registry.list_kernels(device)}
    if names == "all":
        return [n for n, k in infos.items() if k.data_parallel and k.available_on(device)
                and dtype in k.dtypes]
    for name in names:
        registry.make_kernel(name, device, dtype)  # unknown or unavailable: its reason
        if not infos[name].data_parallel:
            raise ValueError(f"kernel {name} cannot run data-parallel; those that can: "
                             f"{', '.join(n for n, k in infos.items() if k.data_parallel)}")
    return list(dict.fromkeys(names))
