"""cupy-fused: the whole step in one CuPy ``RawKernel`` launch, one pass over x and y.

A grid of a few blocks per multiprocessor strides over the rows; every thread keeps its sums of
r**2 and r * x_j (r = x @ w - y) in float64, a block adds its threads' sums with warp shuffles
and shared memory, and one thread per sum adds the block's total atomically to a float64
accumulator. The last block to finish (an atomic count, after a memory fence, as in CUDA's
threadFenceReduction sample) reads and clears the accumulator, writes the loss and gradient,
updates w and resets the count. One launch, no host synchronization; memory traffic: x and y
read once, 1 pass. The sums for D features live in registers, so D is at most 16.
"""

import functools

import numpy as np

from gdbench.kernels.base import FusedKernelBase, OutBuffer

MAX_FEATURES = 16
THREADS = 256
BLOCKS_PER_SM = 8
# Rows per thread at least: below 8 blocks per multiprocessor, fewer blocks means fewer atomic
# adds to the same two addresses, which a GPU serializes (measured on an H200 at N = 10^6:
# 1056 blocks took 7.0 us per step, 40 blocks 4.0 us at N = 10^4).
MIN_ROWS_PER_THREAD = 16

SOURCE = r"""
#define UNROLL 4

template <typename T, int D>
__global__ void __launch_bounds__(256)
fused_step(const T* __restrict__ x, const T* __restrict__ y, T* w, double* acc,
           unsigned int* done, T* out, long long n, double lr) {
    T wj[D];
    double s[D + 1];  // s[0]: sum of r*r; s[1 + j]: sum of r*x_j
    for (int j = 0; j < D; ++j) wj[j] = w[j];
    for (int j = 0; j <= D; ++j) s[j] = 0.0;
    // Each thread takes UNROLL rows a grid-stride apart per iteration, so that their loads
    // are in flight together.
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long base = (long long)blockIdx.x * blockDim.x + threadIdx.x; base < n;
         base += UNROLL * stride) {
        #pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            const long long i = base + u * stride;
            if (i < n) {
                T xi[D];
                T r = -y[i];
                for (int j = 0; j < D; ++j) {
                    xi[j] = x[i * D + j];
                    r += xi[j] * wj[j];
                }
                s[0] += (double)(r * r);
                for (int j = 0; j < D; ++j) s[1 + j] += (double)(r * xi[j]);
            }
        }
    }
    __shared__ double warp_sums[256 / 32][D + 1];
    __shared__ bool last;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (int j = 0; j <= D; ++j) {
        for (int offset = 16; offset > 0; offset /= 2)
            s[j] += __shfl_down_sync(0xffffffffu, s[j], offset);
        if (lane == 0) warp_sums[warp][j] = s[j];
    }
    __syncthreads();
    if (threadIdx.x <= D) {
        double total = 0.0;
        for (int k = 0; k < blockDim.x / 32; ++k) total += warp_sums[k][threadIdx.x];
        atomicAdd(&acc[threadIdx.x], total);
        __threadfence();  // the add is visible everywhere before this block counts itself done
    }
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(done, 1u) == gridDim.x - 1;
    __syncthreads();
    if (last && threadIdx.x <= D) {
        // Every other block has counted itself: read each total and clear it for the next step.
        unsigned long long* a = (unsigned long long*)&acc[threadIdx.x];
        double total = __longlong_as_double(atomicExch(a, 0ull));
        if (threadIdx.x == 0) {
            out[0] = (T)(total / n);
            *done = 0u;
        } else {
            int j = threadIdx.x - 1;
            double grad = 2.0 * total / n;
            out[1 + j] = (T)grad;
            w[j] = (T)((double)w[j] - lr * grad);  // every block read w before counting
        }
    }
}
"""
C_TYPES = {"float32": "float", "float64": "double"}


@functools.cache
def compiled_step(dtype: str, n_features: int):
    import cupy

    name = f"fused_step<{C_TYPES[dtype]}, {n_features}>"
    module = cupy.RawModule(code=SOURCE, options=("-std=c++17",), name_expressions=[name])
    return module.get_function(name)


class CupyFused(OutBuffer, FusedKernelBase):
    name = "cupy-fused"
    backend = "cupy"
    devices = ("cuda",)
    requires = ("cupy",)
    passes = 1.0
    max_features = MAX_FEATURES  # per-thread sums live in registers
    cuda_graph = True

    def _setup(self, x, y, w0):
        import cupy

        self.cupy = cupy
        self.kernel = compiled_step(self.dtype, self.n_features)
        self.x = cupy.asarray(x)
        self.y = cupy.asarray(y)
        self.w = cupy.asarray(w0.astype(self.dtype))
        self.acc = cupy.zeros(1 + self.n_features, dtype=cupy.float64)
        self.done = cupy.zeros(1, dtype=cupy.uint32)
        self.out = cupy.zeros(1 + self.n_features, dtype=self.dtype)
        sms = cupy.cuda.Device().attributes["MultiProcessorCount"]
        rows_per_block = THREADS * MIN_ROWS_PER_THREAD
        self.blocks = int(min(-(-self.n_samples // rows_per_block), BLOCKS_PER_SM * sms))
        self.args = (self.x, self.y, self.w, self.acc, self.done, self.out,
                     np.int64(self.n_samples), np.float64(self.lr))

    def step(self):
        self.kernel((self.blocks,), (THREADS,), self.args)

    def synchronize(self):
        self.cupy.cuda.get_current_stream().synchronize()

    @staticmethod
    def _host(a) -> np.ndarray:
        return np.array(a.get())

    @property
    def weight(self):
        return self._host(self.w)
