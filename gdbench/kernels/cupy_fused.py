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
MIN_STEPS_ROWS = 1024  # rows per block of run_steps' persistent kernel, at the least

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

// K steps in one launch with one feature, each block's rows held in its threads' registers
// (R rows per thread, a block's rows apart so that loads coalesce) for all K. After each step
// the last block to count itself applies the step, as fused_step does, then raises the
// generation; the others wait for it: a grid-wide barrier. Every block must be resident at
// once: at most one per multiprocessor, with nothing else needing the GPU to finish first.
template <typename T, int R>
__global__ void __launch_bounds__(256)
fused_steps(const T* __restrict__ x, const T* __restrict__ y, T* w, double* acc,
            unsigned int* done, unsigned long long* generation, T* out, long long n,
            double lr, long long k) {
    T xr[R], yr[R];
    const long long first = (long long)blockIdx.x * blockDim.x * R + threadIdx.x;
    #pragma unroll
    for (int u = 0; u < R; ++u) {
        const long long i = first + (long long)u * blockDim.x;
        xr[u] = i < n ? x[i] : (T)0;  // rows past n are 0 - 0: they add nothing
        yr[u] = i < n ? y[i] : (T)0;
    }
    __shared__ double warp_sums[256 / 32][2];
    __shared__ unsigned long long start;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    // The generation before this launch: it cannot move before every block has counted itself.
    if (threadIdx.x == 0) start = atomicAdd(generation, 0ull);
    __syncthreads();
    for (long long t = 0; t < k; ++t) {
        const T wv = *(volatile T*)w;  // the weight the last block wrote, past every cache
        double s[2] = {0.0, 0.0};
        #pragma unroll
        for (int u = 0; u < R; ++u) {
            const T r = xr[u] * wv - yr[u];
            s[0] += (double)(r * r);
            s[1] += (double)(r * xr[u]);
        }
        for (int j = 0; j < 2; ++j) {
            for (int offset = 16; offset > 0; offset /= 2)
                s[j] += __shfl_down_sync(0xffffffffu, s[j], offset);
            if (lane == 0) warp_sums[warp][j] = s[j];
        }
        __syncthreads();
        if (threadIdx.x < 2) {
            double total = 0.0;
            for (int v = 0; v < blockDim.x / 32; ++v) total += warp_sums[v][threadIdx.x];
            atomicAdd(&acc[threadIdx.x], total);
            __threadfence();
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            if (atomicAdd(done, 1u) == gridDim.x - 1) {
                __threadfence();
                double loss = __longlong_as_double(atomicExch((unsigned long long*)&acc[0], 0ull));
                double grad = 2.0 * __longlong_as_double(
                    atomicExch((unsigned long long*)&acc[1], 0ull)) / n;
                out[0] = (T)(loss / n);
                out[1] = (T)grad;
                *(volatile T*)w = (T)((double)*(volatile T*)w - lr * grad);
                *done = 0u;
                __threadfence();  // w, out and the count are written before the barrier opens
                atomicAdd(generation, 1ull);
            } else {
                while (atomicAdd(generation, 0ull) < start + t + 1) __nanosleep(64);
                __threadfence();
            }
        }
        __syncthreads();  // the block's other threads wait for its thread 0 to pass
    }
}
"""
C_TYPES = {"float32": "float", "float64": "double"}
ROWS_PER_THREAD = (1, 2, 4, 8, 16, 32)  # the R of fused_steps: rows each thread keeps


@functools.cache
def compiled_step(dtype: str, n_features: int):
    import cupy

    name = f"fused_step<{C_TYPES[dtype]}, {n_features}>"
    module = cupy.RawModule(code=SOURCE, options=("-std=c++17",), name_expressions=[name])
    return module.get_function(name)


@functools.cache
def compiled_steps(dtype: str, rows_per_thread: int):
    import cupy

    name = f"fused_steps<{C_TYPES[dtype]}, {rows_per_thread}>"
    module = cupy.RawModule(code=SOURCE, options=("-std=c++17",), name_expressions=[name])
    return module.get_function(name)


def steps_grid(n: int, sms: int) -> tuple[int, int] | None:
    """(blocks, rows per thread) of ``fused_steps`` for ``n`` rows: one block per
    multiprocessor at most, at least MIN_STEPS_ROWS rows each; None when the rows per thread
    would pass the largest R (N past about 10^6 on an H100 or H200)."""
    blocks = max(1, min(sms, -(-n // MIN_STEPS_ROWS)))
    per_thread = -(-(-(-n // blocks)) // THREADS)
    rows = next((r for r in ROWS_PER_THREAD if r >= per_thread), None)
    if rows is None:
        return None
    return -(-n // (THREADS * rows)), rows


class CupyFused(OutBuffer, FusedKernelBase):
    name = "cupy-fused"
    backend = "cupy"
    devices = ("cuda",)
    requires = ("cupy",)
    passes = 1.0
    max_features = MAX_FEATURES  # per-thread sums live in registers
    cuda_graph = True
    many_steps = "1 launch (D=1)"

    def _setup(self, x, y, w0):
        import cupy

        self.cupy = cupy
        self.kernel = compiled_step(self.dtype, self.n_features)
        self.x = cupy.asarray(x)
        self.y = cupy.asarray(y)
        self.w = cupy.asarray(w0.astype(self.dtype))
        self.acc = cupy.zeros(1 + self.n_features, dtype=cupy.float64)
        self.done = cupy.zeros(1, dtype=cupy.uint32)
        self.generation = cupy.zeros(1, dtype=cupy.uint64)  # of run_steps' barrier: only rises
        self.out = cupy.zeros(1 + self.n_features, dtype=self.dtype)
        sms = cupy.cuda.Device().attributes["MultiProcessorCount"]
        rows_per_block = THREADS * MIN_ROWS_PER_THREAD
        self.blocks = int(min(-(-self.n_samples // rows_per_block), BLOCKS_PER_SM * sms))
        self.args = (self.x, self.y, self.w, self.acc, self.done, self.out,
                     np.int64(self.n_samples), np.float64(self.lr))

    def step(self):
        self.kernel((self.blocks,), (THREADS,), self.args)

    def run_steps(self, k: int):
        """``k`` steps in one persistent launch (``fused_steps``) where x and y fit in the
        registers of a grid resident at once (one feature); else a launch per step."""
        sms = self.cupy.cuda.Device().attributes["MultiProcessorCount"]
        grid = steps_grid(self.n_samples, sms) if self.n_features == 1 and k > 1 else None
        if grid is None:
            return super().run_steps(k)
        blocks, rows = grid
        compiled_steps(self.dtype, rows)((blocks,), (THREADS,), (
            self.x, self.y, self.w, self.acc, self.done, self.generation, self.out,
            np.int64(self.n_samples), np.float64(self.lr), np.int64(k)))
        self._stepped = True

    def synchronize(self):
        self.cupy.cuda.get_current_stream().synchronize()

    @staticmethod
    def _host(a) -> np.ndarray:
        return np.array(a.get())

    @property
    def weight(self):
        return self._host(self.w)
