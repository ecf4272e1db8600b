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
// (R rows per thread, a block's rows apart so that loads coalesce) for all K. A step: each block
// writes its two sums (float64) to its own slot of partials[t % 2] and counts itself arrived on
// a count that only ever rises (step t's barrier opens at base + blocks (t + 1)); once every
// block has arrived, each block's first warp reads all the partials and adds them in one fixed
// order (lane-strided, then a shuffle tree: the same in every block and every run), and the
// block computes the loss, the gradient and the new weight itself. No block waits for another
// to write them; about three round trips to L2 a step. The wait is bounded by the GPU's clock:
// past limit_ns a block sets *status and waits no more (the host raises), so a grid that is not
// resident at once fails instead of hanging. The launch is cooperative: the driver refuses a
// grid that cannot be resident at once.
__device__ __forceinline__ unsigned long long global_ns() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

template <typename T, int R>
__global__ void __launch_bounds__(256)
fused_steps(const T* __restrict__ x, const T* __restrict__ y, T* w, double* partials,
            unsigned long long* arrivals, int* status, T* out, long long n, double lr,
            long long k, unsigned long long base, unsigned long long limit_ns) {
    T xr[R], yr[R];
    const long long first = (long long)blockIdx.x * blockDim.x * R + threadIdx.x;
    #pragma unroll
    for (int u = 0; u < R; ++u) {
        const long long i = first + (long long)u * blockDim.x;
        xr[u] = i < n ? x[i] : (T)0;  // rows past n are 0 - 0: they add nothing
        yr[u] = i < n ? y[i] : (T)0;
    }
    __shared__ double warp_sums[256 / 32][2];
    __shared__ double step[3];  // the weight after the step, its loss and its gradient
    __shared__ bool given_up;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const unsigned int blocks = gridDim.x;
    double wv = (double)w[0], loss = 0.0, grad = 0.0;
    if (threadIdx.x == 0) given_up = false;
    __syncthreads();
    for (long long t = 0; t < k; ++t) {
        double s[2] = {0.0, 0.0};
        const T wt = (T)wv;
        #pragma unroll
        for (int u = 0; u < R; ++u) {
            const T r = xr[u] * wt - yr[u];
            s[0] += (double)(r * r);
            s[1] += (double)(r * xr[u]);
        }
        for (int j = 0; j < 2; ++j) {
            for (int offset = 16; offset > 0; offset /= 2)
                s[j] += __shfl_down_sync(0xffffffffu, s[j], offset);
            if (lane == 0) warp_sums[warp][j] = s[j];
        }
        __syncthreads();
        double* half = partials + (t & 1) * 2 * blocks;
        if (threadIdx.x < 2) {
            double total = 0.0;
            for (int v = 0; v < blockDim.x / 32; ++v) total += warp_sums[v][threadIdx.x];
            half[threadIdx.x * blocks + blockIdx.x] = total;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            __threadfence();  // the partials are written before the arrival
            atomicAdd(arrivals, 1ull);
            const unsigned long long target = base + (unsigned long long)blocks * (t + 1);
            const unsigned long long since = global_ns();
            while (!given_up && *(volatile unsigned long long*)arrivals < target) {
                if (global_ns() - since > limit_ns) {
                    atomicMax(status, 1);
                    given_up = true;
                }
                __nanosleep(32);
            }
            __threadfence();  // every block's partials are read after the wait
        }
        __syncthreads();
        if (warp == 0) {
            double a = 0.0, b = 0.0;
            for (unsigned int i = lane; i < blocks; i += 32) {
                a += __ldcg(&half[i]);  // from L2, where the other blocks wrote them
                b += __ldcg(&half[blocks + i]);
            }
            for (int offset = 16; offset > 0; offset /= 2) {
                a += __shfl_down_sync(0xffffffffu, a, offset);
                b += __shfl_down_sync(0xffffffffu, b, offset);
            }
            if (lane == 0) {
                step[1] = a / n;
                step[2] = 2.0 * b / n;
                step[0] = wv - lr * step[2];
            }
        }
        __syncthreads();
        wv = step[0];
        loss = step[1];
        grad = step[2];
    }
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        w[0] = (T)wv;
        out[0] = (T)loss;
        out[1] = (T)grad;
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
