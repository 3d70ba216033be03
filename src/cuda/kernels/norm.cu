/*
 * CUDA kernels of the norm family (see ops/norm.c for why batch norm is four ops and not a
 * cuDNN call). x is viewed as (O, C, I): C channels (the kept block), reduced over O and I.
 * dtypes: float16, bfloat16, float32, float64; loads are widened, sums accumulate in double,
 * each result is rounded once at the store.
 *
 * Per-channel sums (bn_moments, bn_grad_stats) run in two kernels without atomics, so results
 * are deterministic:
 *   stage 1 writes S partial pairs per column into a scratch buffer from the device pool:
 *     rows: I >= 32 (NCHW-like): block (c, s) walks the rows o = s, s + S, ... of channel c,
 *           its threads the contiguous inner run (coalesced);
 *     cols: I < 32 (NHWC-like): x viewed as (O, C*I); a 32 x 8 block takes 32 adjacent columns
 *           (coalesced across channels) and rows o = 8 s + ty, stepping 8 S;
 *   stage 2: one block per channel adds its P partial pairs (P = S for rows, I * S for cols,
 *   contiguous in the scratch) in a fixed order and writes the outputs.
 * bn_moments sums x - K and (x - K)^2 with K the channel's first element (a shift that removes
 * the cancellation of E[x^2] - E[x]^2 when |mean| >> std); bn_grad_stats sums dy and
 * dy (x - mean). S is picked so that stage 1 has about kTargetBlocks blocks.
 * bn_normalize and bn_grad_input are elementwise grid-stride kernels with per-channel
 * coefficients computed in the accumulation type from the (2, C) / (3, C) inputs.
 * An empty reduction (O * I == 0) skips stage 1: stage 2 then writes NaN mean / var and zero
 * sums, as the CPU kernels do.
 */
#include "cuda/kernels/common.cuh"

namespace {

constexpr int kTargetBlocks = 1024;
constexpr int kRowsThreads = 256;
constexpr int kColsX = 32, kColsY = 8;

struct Layout {
    int64_t o, c, i;
};

Layout layout(const kb_buf &x, uint32_t mask) {
    Layout l{1, 1, 1};
    bool seen = false;
    for (int d = 0; d < x.rank; ++d) {
        if (!(mask & (1u << d))) {
            l.c *= x.shape[d];
            seen = true;
        } else if (seen) {
            l.i *= x.shape[d];
        } else {
            l.o *= x.shape[d];
        }
    }
    return l;
}

/* Computation type of the elementwise kernels: float for the 16/32-bit types, double for f64. */
template <typename T> struct Acc {
    using type = float;
};
template <> struct Acc<double> {
    using type = double;
};

__device__ __forceinline__ double2 add2(double2 a, double2 b) { return make_double2(a.x + b.x, a.y + b.y); }

/* Sum of a double2 over the block (blockDim.x * blockDim.y threads, a multiple of 32); the
 * result is valid in thread 0. */
__device__ double2 block_sum(double2 v) {
    __shared__ double2 warp_part[32];
    for (int off = 16; off > 0; off >>= 1)
        v = add2(v, make_double2(__shfl_down_sync(0xffffffffu, v.x, off), __shfl_down_sync(0xffffffffu, v.y, off)));
    int t = threadIdx.y * blockDim.x + threadIdx.x, nw = (blockDim.x * blockDim.y) / 32;
    if ((t & 31) == 0) warp_part[t >> 5] = v;
    __syncthreads();
    if (t == 0) {
        double2 s = warp_part[0];
        for (int w = 1; w < nw; ++w) s = add2(s, warp_part[w]);
        v = s;
    }
    return v;
}

/* The summed pair of one element: moments (GRAD false): (x - K, (x - K)^2) with K = shift;
 * grad_stats (GRAD true): (dy, dy (x - mean)) with mean = shift. */
template <bool GRAD, typename T>
__device__ __forceinline__ double2 term(const T *x, const T *dy, int64_t j, double shift) {
    double v = kb_dev_load(x[j]) - shift;
    if (GRAD) {
        double g = kb_dev_load(dy[j]);
        return make_double2(g, g * v);
    }
    return make_double2(v, v * v);
}

/* The per-channel shift: the channel's first element (moments) or its mean (grad_stats). */
template <bool GRAD, typename T>
__device__ __forceinline__ double shift_of(const T *x, const T *mom, int64_t c, int64_t inner) {
    return GRAD ? kb_dev_load(mom[c]) : kb_dev_load(x[c * inner]);
}

template <bool GRAD, typename T>
__global__ void k_sums_rows(const T *__restrict__ x, const T *__restrict__ dy, const T *__restrict__ mom,
                            double2 *__restrict__ part, Layout l, int s_count) {
    const int64_t c = blockIdx.x;
    const int s = blockIdx.y;
    const double k = shift_of<GRAD>(x, mom, c, l.i);
    double2 acc = make_double2(0.0, 0.0);
    for (int64_t o = s; o < l.o; o += s_count) {
        const int64_t base = (o * l.c + c) * l.i;
        for (int64_t i = threadIdx.x; i < l.i; i += blockDim.x) acc = add2(acc, term<GRAD>(x, dy, base + i, k));
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) part[c * s_count + s] = acc;
}

template <bool GRAD, typename T>
__global__ void k_sums_cols(const T *__restrict__ x, const T *__restrict__ dy, const T *__restrict__ mom,
                            double2 *__restrict__ part, Layout l, int s_count) {
    __shared__ double2 tile[kColsY][kColsX];
    const int64_t ncol = l.c * l.i;
    const int64_t col = (int64_t)blockIdx.x * kColsX + threadIdx.x;
    const int s = blockIdx.y;
    double2 acc = make_double2(0.0, 0.0);
    if (col < ncol) {
        const double k = shift_of<GRAD>(x, mom, col / l.i, l.i);
        for (int64_t o = (int64_t)s * kColsY + threadIdx.y; o < l.o; o += (int64_t)s_count * kColsY)
            acc = add2(acc, term<GRAD>(x, dy, o * ncol + col, k));
    }
    tile[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && col < ncol) {
        for (int y = 1; y < kColsY; ++y) acc = add2(acc, tile[y][threadIdx.x]);
        part[col * s_count + s] = acc;
    }
}

/* Stage 2: channel blockIdx.x adds its p partials. moments: out = [mean; var]; grad_stats:
 * out = [sum dy; sum dy xhat; gamma]. */
template <bool GRAD, typename T>
__global__ void k_sums_final(const T *__restrict__ x, const T *__restrict__ mom, const T *__restrict__ gamma,
                             const double2 *__restrict__ part, T *__restrict__ out, Layout l, int64_t p, double eps) {
    const int64_t c = blockIdx.x;
    double2 acc = make_double2(0.0, 0.0);
    for (int64_t j = threadIdx.x; j < p; j += blockDim.x) acc = add2(acc, part[c * p + j]);
    acc = block_sum(acc);
    if (threadIdx.x != 0) return;
    const double m = (double)(l.o * l.i);
    if (GRAD) {
        out[c] = kb_dev_store<T>(acc.x);
        out[l.c + c] = kb_dev_store<T>(acc.y / sqrt(kb_dev_load(mom[l.c + c]) + eps));
        out[2 * l.c + c] = gamma[c];
    } else {
        /* m == 0: 0 / 0 is NaN without reading x (which is empty) */
        const double k = m > 0.0 ? kb_dev_load(x[c * l.i]) : 0.0, d = acc.x / m;
        const double var = acc.y / m - d * d;
        out[c] = kb_dev_store<T>(k + d);
        out[l.c + c] = kb_dev_store<T>(var > 0.0 || var != var ? var : 0.0);
    }
}

template <bool GRAD, typename T>
kb_status sums(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    kb_cuda_device *dev = kb_cuda_dev(ex);
    KB_TRY(kb_cuda_bind(dev));
    const Layout l = layout(in[0], a->axes_mask);
    const T *x = (const T *)in[0].data;
    const T *dy = GRAD ? (const T *)in[1].data : nullptr;
    const T *mom = GRAD ? (const T *)in[2].data : nullptr;
    const T *gamma = GRAD ? (const T *)in[3].data : nullptr;
    const bool rows = l.i >= 32;
    int64_t s_count = 1, p = 0;
    double2 *part = nullptr;
    if (l.o * l.i > 0) {
        if (rows) {
            s_count = (kTargetBlocks + l.c - 1) / l.c;
            if (s_count > l.o) s_count = l.o;
            if (s_count > 65535) s_count = 65535;
            p = s_count;
        } else {
            const int64_t bx = (l.c * l.i + kColsX - 1) / kColsX, oy = (l.o + kColsY - 1) / kColsY;
            s_count = (kTargetBlocks + bx - 1) / bx;
            if (s_count > oy) s_count = oy;
            if (s_count > 65535) s_count = 65535;
            p = l.i * s_count;
        }
        if (s_count < 1) s_count = 1;
        void *mem = nullptr;
        KB_TRY(kb_cuda_scratch_alloc(dev, (size_t)(l.c * p) * sizeof(double2), &mem));
        part = (double2 *)mem;
        if (rows) {
            k_sums_rows<GRAD, T><<<dim3((unsigned)l.c, (unsigned)s_count), kRowsThreads, 0, dev->stream>>>(
                x, dy, mom, part, l, (int)s_count);
        } else {
            const int64_t bx = (l.c * l.i + kColsX - 1) / kColsX;
            k_sums_cols<GRAD, T><<<dim3((unsigned)bx, (unsigned)s_count), dim3(kColsX, kColsY), 0, dev->stream>>>(
                x, dy, mom, part, l, (int)s_count);
        }
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) {
            kb_cuda_scratch_free(dev, part);
            KB_CUDA_CHECK(e);
        }
    }
    k_sums_final<GRAD, T><<<(unsigned)l.c, 128, 0, dev->stream>>>(x, mom, gamma, part, (T *)out->data, l, p,
                                                                   a->value);
    if (part) kb_cuda_scratch_free(dev, part);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

/* Channel of flat index j of an (O, C, I) tensor. */
__device__ __forceinline__ int64_t channel(int64_t j, const Layout &l) {
    return l.i == 1 ? j % l.c : (j / l.i) % l.c;
}

/* y = (x - mean) * gamma / sqrt(var + eps) + beta */
template <typename T>
__global__ void k_normalize(const T *__restrict__ x, const T *__restrict__ mom, const T *__restrict__ gamma,
                            const T *__restrict__ beta, T *__restrict__ y, Layout l, int64_t n, double eps) {
    using A = typename Acc<T>::type;
    KB_GRID_LOOP(j, n) {
        const int64_t c = channel(j, l);
        const A scale = (A)kb_dev_load(gamma[c]) / kb_sqrt((A)kb_dev_load(mom[l.c + c]) + (A)eps);
        y[j] = kb_dev_store<T>((double)(((A)kb_dev_load(x[j]) - (A)kb_dev_load(mom[c])) * scale +
                                        (A)kb_dev_load(beta[c])));
    }
}

/* dx = gamma s (dy - dbeta / M - (x - mean) s dgamma / M), s = 1 / sqrt(var + eps) */
template <typename T>
__global__ void k_grad_input(const T *__restrict__ x, const T *__restrict__ dy, const T *__restrict__ mom,
                             const T *__restrict__ st, T *__restrict__ dx, Layout l, int64_t n, double eps) {
    using A = typename Acc<T>::type;
    const A inv_m = (A)(1.0 / (double)(l.o * l.i));
    KB_GRID_LOOP(j, n) {
        const int64_t c = channel(j, l);
        const A s = (A)1 / kb_sqrt((A)kb_dev_load(mom[l.c + c]) + (A)eps);
        const A a = (A)kb_dev_load(st[2 * l.c + c]) * s, b = (A)kb_dev_load(st[c]) * inv_m;
        const A d = (A)kb_dev_load(st[l.c + c]) * s * inv_m;
        const A xc = (A)kb_dev_load(x[j]) - (A)kb_dev_load(mom[c]);
        dx[j] = kb_dev_store<T>((double)(a * ((A)kb_dev_load(dy[j]) - b - xc * d)));
    }
}

template <typename T> kb_status normalize_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    kb_cuda_device *dev = kb_cuda_dev(ex);
    KB_TRY(kb_cuda_bind(dev));
    const int64_t n = out->size;
    k_normalize<T><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>(
        (const T *)in[0].data, (const T *)in[1].data, (const T *)in[2].data, (const T *)in[3].data, (T *)out->data,
        layout(in[0], a->axes_mask), n, a->value);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

template <typename T> kb_status grad_input_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    kb_cuda_device *dev = kb_cuda_dev(ex);
    KB_TRY(kb_cuda_bind(dev));
    const int64_t n = out->size;
    k_grad_input<T><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>(
        (const T *)in[0].data, (const T *)in[1].data, (const T *)in[2].data, (const T *)in[3].data, (T *)out->data,
        layout(in[0], a->axes_mask), n, a->value);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

template <typename T> kb_status moments_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    return sums<false, T>(ex, a, in, out);
}
template <typename T> kb_status grad_stats_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    return sums<true, T>(ex, a, in, out);
}

}  // namespace

#define BN_DISPATCH(ex, dt, FN, ...)                                                              \
    do {                                                                                          \
        switch (dt) {                                                                             \
        case KB_FLOAT16: return FN<__half>(__VA_ARGS__);                                          \
        case KB_BFLOAT16: return FN<__nv_bfloat16>(__VA_ARGS__);                                  \
        case KB_FLOAT32: return FN<float>(__VA_ARGS__);                                           \
        case KB_FLOAT64: return FN<double>(__VA_ARGS__);                                          \
        default: return kb_cuda_dtype_error(ex, dt, "float16, bfloat16, float32 or float64");     \
        }                                                                                         \
    } while (0)

#define BN_LAUNCHER(name, FN)                                                                    \
    extern "C" kb_status kb_cuda_##name(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, \
                                        int n_in, kb_buf *out) {                               \
        (void)n_in;                                                                            \
        BN_DISPATCH(ex, in[0].dtype, FN, ex, a, in, out);                                      \
    }

BN_LAUNCHER(bn_moments, moments_t)
BN_LAUNCHER(bn_normalize, normalize_t)
BN_LAUNCHER(bn_grad_stats, grad_stats_t)
BN_LAUNCHER(bn_grad_input, grad_input_t)
