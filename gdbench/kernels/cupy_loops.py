"""The CUDA C++ kernels of cupy-fused, compiled by NVRTC through CuPy's ``RawModule``.

Imported only by the kernel that uses them, never by ``import gdbench`` (CuPy is imported when a
kernel is compiled); the kernel's module says what they compute.
"""

import functools

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
