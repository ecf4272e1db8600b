"""jax-jit: the step as one ``jax.jit`` function, ``value_and_grad`` of the loss plus the update.

step:  loss, grad = value_and_grad(mean((x @ w - y)**2))(w);  w -= lr * grad

``run_steps(k)`` runs k steps as one ``lax.fori_loop`` in one jitted call.

XLA's CPU compiler (jaxlib 0.10) makes three loops of it, not one: the residual r = x·w - y is
written out (reads x and y, writes r), then the gradient's sum reads x and r, and the loss's sum
reads r: six arrays of N moved, 3 passes of x and y, one array of N written. XLA's GPU compiler
may fuse more; its plan is unmeasured, and the byte model is the CPU's. The weights are donated
to the call, so the new weights take the old ones' buffer. JAX's 64-bit types are enabled for
this kernel's arrays and calls only (``jax.enable_x64`` around each), never globally. JAX would
take 75% of a GPU's memory when it starts; it is asked to allocate what it uses, so that it can
share the GPU with the other kernels of a run.
"""

from __future__ import annotations

import contextlib
import functools
import os

import numpy as np

from gdbench.core.devices import is_cpu, is_cuda
from gdbench.kernels.base import FusedKernelBase


def _loss(w, x, y):
    import jax.numpy as jnp

    r = (x * w[0] if x.ndim == 1 else x @ w) - y
    return jnp.mean(r * r)


@functools.cache
def compiled_step():
    """The jitted step, traced once per shape and dtype; ``w`` (argument 0) is donated."""
    import jax

    def step(w, x, y, lr):
        loss, grad = jax.value_and_grad(_loss)(w, x, y)
        return w - lr * grad, loss, grad

    return jax.jit(step, donate_argnums=0)


@functools.cache
def compiled_steps():
    """k steps as one ``lax.fori_loop`` in one jitted call (k is traced: one compilation serves
    every k); the first step is taken before the loop, so the loop carries the loss and
    gradient in the types the step makes."""
    import jax

    def one(w, x, y, lr):
        loss, grad = jax.value_and_grad(_loss)(w, x, y)
        return w - lr * grad, loss, grad

    def steps(w, x, y, lr, k):
        first = one(w, x, y, lr)
        return jax.lax.fori_loop(1, k, lambda _, carry: one(carry[0], x, y, lr), first)

    return jax.jit(steps, donate_argnums=0)


def _jax():
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax

    return jax


class JaxJit(FusedKernelBase):
    name = "jax-jit"
    backend = "jax"
    devices = ("cpu", "cuda")
    requires = ("jax",)
    passes = 3.0
    writes = 1.0
    many_steps = "one call"

    @classmethod
    def unavailable_reason(cls, device):
        reason = super().unavailable_reason("cpu")  # whether jax imports; CUDA is JAX's to say
        if reason or is_cpu(device):
            return reason
        try:
            _jax().devices("gpu")
        except RuntimeError as exc:
            return f"JAX sees no GPU ({str(exc).splitlines()[0]})"
        return None

    def _setup(self, x, y, w0):
        jax = self.jax = _jax()
        self.x64 = jax.enable_x64(True) if self.dtype == "float64" else contextlib.nullcontext()
        with self.x64:
            device = jax.devices("gpu" if is_cuda(self.device) else "cpu")[0]
            self.x = jax.device_put(x[:, 0] if x.shape[1] == 1 else x, device)
            self.y = jax.device_put(y, device)
            self.w = jax.device_put(w0.astype(self.dtype), device)
            self.lr_array = jax.device_put(np.asarray(self.lr, self.dtype), device)
        self.compiled = compiled_step()

    def step(self):
        with self.x64:
            self.w, self._loss, self._grad = self.compiled(self.w, self.x, self.y, self.lr_array)

    def run_steps(self, k: int):
        """``k`` steps in one jitted call (``lax.fori_loop``)."""
        with self.x64:
            self.w, self._loss, self._grad = compiled_steps()(self.w, self.x, self.y,
                                                              self.lr_array, k)
        self.__dict__.pop("step", None)  # no longer the first step after prepare
        self._stepped = True

    def synchronize(self):
        self.w.block_until_ready()

    @property
    def weight(self):
        return np.array(self.w)

    @property
    def loss(self):
        self._needs_step()
        return float(self._loss)

    @property
    def grad(self):
        self._needs_step()
        return np.array(self._grad).reshape(-1)
