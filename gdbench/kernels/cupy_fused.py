"""cupy-fused: one CuPy reduction kernel over x and y, then the update on the device.

A ``cupy.ReductionKernel`` reads each (x, y) pair once and reduces the complex number
``r**2 + i * r * x`` (r = x * w - y): its real part is the sum for the loss, its imaginary part
the sum for the gradient, so both come out of one pass. A one-thread ``ElementwiseKernel`` then
writes the loss and gradient and updates w. Two launches, no host synchronization; memory
traffic: x and y read once, 1 pass. One feature only: the complex pair holds two sums.
"""

import functools

import numpy as np

from gdbench.kernels.base import FusedKernelBase

PREAMBLE = r"""
template <typename T>
__device__ complex<T> residual_terms(T x, T y, T w) {
    T r = x * w - y;
    return complex<T>(r * r, r * x);
}
"""
C_TYPES = {"float32": ("float", "complex64"), "float64": ("double", "complex128")}


@functools.cache
def kernels(dtype: str):
    import cupy

    ctype, complex_dtype = C_TYPES[dtype]
    sums = cupy.ReductionKernel(
        f"{dtype} x, {dtype} y, raw {dtype} w", f"{complex_dtype} s",
        f"residual_terms<{ctype}>(x, y, w[0])", "a + b", "s = a", f"complex<{ctype}>(0, 0)",
        name="gdbench_residual_sums", reduce_type=f"complex<{ctype}>", preamble=PREAMBLE)
    update = cupy.ElementwiseKernel(
        f"raw {complex_dtype} s, {dtype} inv_n, {dtype} lr", f"raw {dtype} w, raw {dtype} out",
        f"{ctype} grad = 2 * s[0].imag() * inv_n; out[0] = s[0].real() * inv_n; "
        "out[1] = grad; w[0] -= lr * grad;",
        name="gdbench_apply_update")
    return cupy, sums, update


class CupyFused(FusedKernelBase):
    name = "cupy-fused"
    backend = "cupy"
    devices = ("cuda",)
    requires = ("cupy",)
    passes = 1.0
    max_features = 1

    def _setup(self, x, y, w0):
        cupy, self.sums, self.update_kernel = kernels(self.dtype)
        self.cupy = cupy
        self.x = cupy.asarray(x[:, 0])
        self.y = cupy.asarray(y)
        self.w = cupy.asarray(w0.astype(self.dtype))
        self.s = cupy.zeros((), dtype=C_TYPES[self.dtype][1])
        self.out = cupy.zeros(2, dtype=self.dtype)

    def step(self):
        self.sums(self.x, self.y, self.w, self.s)
        self.update_kernel(self.s, 1.0 / self.n_samples, self.lr, self.w, self.out, size=1)

    def synchronize(self):
        self.cupy.cuda.get_current_stream().synchronize()

    @property
    def weight(self):
        return np.array(self.w.get())

    @property
    def loss(self):
        return float(self.out[0].get())

    @property
    def grad(self):
        return np.array(self.out[1:].get())
