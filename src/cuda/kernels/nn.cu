/*
 * Activation kernels: relu (Keras alpha / max_value / threshold), relu_grad, sigmoid, softmax
 * and log_softmax along one axis, elu, softplus, softsign, hard_sigmoid, tanh; in_top_k; the
 * sigmoid_cross_entropy of binary_crossentropy's logits path. float16 / bfloat16 / float32 /
 * float64: the half types are loaded, computed in float and rounded once at the store (relu and
 * relu_grad compute in double for every dtype, as the CPU does).
 *
 * Shapes: the activations keep x's shape; relu_grad(dy, x) -> dx of x's shape; softmax views x
 * as (outer, n, inner) around a->axis; in_top_k (B, C) predictions + (B,) targets -> (B,) bool;
 * sigmoid_cross_entropy(z, x) numpy-broadcast. Bytes moved: the unary activations 2*n*sizeof T
 * (16-byte vector loads/stores when both pointers are aligned), relu_grad 3*n, softmax reads each
 * row three times (max, sum, write; rows usually stay in L1/L2) and writes once, in_top_k reads
 * each row once plus the target element. Softmax dispatch: inner == 1 and n <= 1024: one warp per
 * row; inner == 1 and longer rows: one block per row; inner > 1: one thread per (outer, inner)
 * column, so that neighbouring threads read neighbouring addresses. in_top_k: one warp per row.
 */
#include "cuda/kernels/common.cuh"
#include "ops/nn_patches.h"

namespace {

/* The type a value is computed in: float for the half types, the type itself otherwise. */
template <typename T> struct ctype { using type = T; };
template <> struct ctype<__half> { using type = float; };
template <> struct ctype<__nv_bfloat16> { using type = float; };
template <typename T> using ctype_t = typename ctype<T>::type;

template <typename T> __device__ __forceinline__ ctype_t<T> ld(T x) {
    if constexpr (std::is_same<T, __half>::value) return __half2float(x);
    else if constexpr (std::is_same<T, __nv_bfloat16>::value) return __bfloat162float(x);
    else return x;
}
/* One rounding to the stored type (round to nearest even for the half types). */
template <typename T> __device__ __forceinline__ T st(ctype_t<T> v) {
    if constexpr (std::is_same<T, __half>::value) return __float2half_rn(v);
    else if constexpr (std::is_same<T, __nv_bfloat16>::value) return __float2bfloat16_rn(v);
    else return v;
}

/* Float math by compute type (no fast-math: IEEE NaN/Inf, as the CPU). */
__device__ __forceinline__ float m_expm1(float x) { return expm1f(x); }
__device__ __forceinline__ double m_expm1(double x) { return expm1(x); }
__device__ __forceinline__ float m_log1p(float x) { return log1pf(x); }
__device__ __forceinline__ double m_log1p(double x) { return log1p(x); }
__device__ __forceinline__ float m_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double m_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float m_fabs(float x) { return fabsf(x); }
__device__ __forceinline__ double m_fabs(double x) { return fabs(x); }

/* Keras max/min on scalars as the CPU writes them: (a > b ? a : b), so max(NaN, 0) = 0. */
template <typename T> __device__ __forceinline__ T mx(T a, T b) { return a > b ? a : b; }
template <typename T> __device__ __forceinline__ T mn(T a, T b) { return a < b ? a : b; }

/* relu and relu_grad evaluate in double for both dtypes, as the CPU does (alpha, max_value and
 * threshold stay doubles), and round once at the store. */
struct relu_params {
    double alpha, max_value, threshold;
    int leaky;   /* alpha != 0 && max_value is inf && threshold == 0 */
    int has_max; /* max_value is finite */
};

__device__ __forceinline__ double relu_f(double x, const relu_params &p) {
    if (p.leaky) return mx(kb_mul(p.alpha, x), x);
    double neg = p.alpha != 0.0 ? mx(p.threshold - x, 0.0) : 0.0;
    double y = p.threshold != 0.0 ? (x > p.threshold ? x : 0.0) : mx(x, 0.0);
    if (p.has_max) y = mn(mx(y, 0.0), p.max_value);
    return y - kb_mul(p.alpha, neg);
}

__device__ __forceinline__ double relu_d(double x, const relu_params &p) {
    if (p.leaky) return kb_mul(p.alpha, x) > x ? p.alpha : 1.0;
    double ypre = p.threshold != 0.0 ? (x > p.threshold ? x : 0.0) : mx(x, 0.0);
    double d = p.threshold != 0.0 ? (double)(x > p.threshold) : (double)(x > 0.0);
    if (p.has_max && (ypre < 0.0 || ypre > p.max_value)) d = 0.0;
    if (p.alpha != 0.0 && x < p.threshold) d += p.alpha;
    return d;
}

template <typename T>
__global__ void k_relu(const T *__restrict__ x, T *__restrict__ y, int64_t n, relu_params p) {
    KB_GRID_LOOP(i, n) y[i] = kb_dev_store<T>(relu_f(kb_dev_load(x[i]), p));
}

template <typename T>
__global__ void k_relu_grad(const T *__restrict__ dy, const T *__restrict__ x, T *__restrict__ dx,
                            int64_t n, relu_params p) {
    KB_GRID_LOOP(i, n) dx[i] = kb_dev_store<T>(kb_mul(kb_dev_load(dy[i]), relu_d(kb_dev_load(x[i]), p)));
}

/* Stable logistic: 1/(1+exp(-x)) for x >= 0, exp(x)/(1+exp(x)) below. */
template <typename T>
__global__ void k_sigmoid(const T *__restrict__ x, T *__restrict__ y, int64_t n) {
    using C = ctype_t<T>;
    KB_GRID_LOOP(i, n) {
        C v = ld(x[i]);
        if (v >= (C)0) {
            y[i] = st<T>((C)1 / ((C)1 + kb_exp(-v)));
        } else {
            C e = kb_exp(v);
            y[i] = st<T>(e / ((C)1 + e));
        }
    }
}

/* ---- softmax ------------------------------------------------------------------------------ */

/* Finish one element: softmax exp(x-m)/s, log_softmax (x-m)-log(s) (ls = log(s) precomputed). */
template <typename C, bool LOG>
__device__ __forceinline__ C sm_out(C v, C m, C s, C ls) {
    if (LOG) return (v - m) - ls;
    return kb_exp(v - m) / s;
}

/* Max that skips NaN (NaN then reaches the output through the sum). */
struct op_max_skip {
    template <typename T> __device__ __forceinline__ T operator()(T a, T b) const { return b > a ? b : a; }
};

/* One warp per contiguous row of n elements. */
template <typename T, bool LOG>
__global__ void k_softmax_warp(const T *__restrict__ x, T *__restrict__ y, int64_t rows, int64_t n) {
    using C = ctype_t<T>;
    int lane = threadIdx.x & 31;
    int64_t w = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int64_t nw = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t r = w; r < rows; r += nw) {
        const T *xr = x + r * n;
        T *yr = y + r * n;
        C m = -INFINITY;
        for (int64_t j = lane; j < n; j += 32) m = op_max_skip()(m, ld(xr[j]));
        m = kb_group_reduce<32>(m, op_max_skip());
        C s = 0;
        for (int64_t j = lane; j < n; j += 32) s += kb_exp(ld(xr[j]) - m);
        s = kb_group_reduce<32>(s, kb_op_sum());
        C ls = LOG ? kb_log(s) : (C)0;
        for (int64_t j = lane; j < n; j += 32) yr[j] = st<T>(sm_out<C, LOG>(ld(xr[j]), m, s, ls));
    }
}

/* One block per contiguous row (long rows). */
template <typename T, bool LOG>
__global__ void k_softmax_block(const T *__restrict__ x, T *__restrict__ y, int64_t rows, int64_t n) {
    using C = ctype_t<T>;
    __shared__ C sh[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *xr = x + r * n;
        T *yr = y + r * n;
        C m = -INFINITY;
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = op_max_skip()(m, ld(xr[j]));
        m = kb_block_reduce(m, op_max_skip(), (C)-INFINITY, sh);
        C s = 0;
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += kb_exp(ld(xr[j]) - m);
        s = kb_block_reduce(s, kb_op_sum(), (C)0, sh);
        C ls = LOG ? kb_log(s) : (C)0;
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = st<T>(sm_out<C, LOG>(ld(xr[j]), m, s, ls));
    }
}

/* One thread per (outer, inner) column of a (outer, n, inner) view; elements are inner apart. */
template <typename T, bool LOG>
__global__ void k_softmax_col(const T *__restrict__ x, T *__restrict__ y, int64_t cols, int64_t n,
                              int64_t inner) {
    using C = ctype_t<T>;
    KB_GRID_LOOP(c, cols) {
        int64_t o = c / inner, k = c - o * inner;
        int64_t base = o * n * inner + k;
        const T *xc = x + base;
        T *yc = y + base;
        C m = -INFINITY;
        for (int64_t j = 0; j < n; j++) m = op_max_skip()(m, ld(xc[j * inner]));
        C s = 0;
        for (int64_t j = 0; j < n; j++) s += kb_exp(ld(xc[j * inner]) - m);
        C ls = LOG ? kb_log(s) : (C)0;
        for (int64_t j = 0; j < n; j++) yc[j * inner] = st<T>(sm_out<C, LOG>(ld(xc[j * inner]), m, s, ls));
    }
}

/* ---- elu, softplus, softsign, hard_sigmoid, tanh ---------------------------------------- */

struct f_elu {
    double alpha;
    template <typename C> __device__ C operator()(C v) const { return v > (C)0 ? v : (C)alpha * m_expm1(v); }
};
/* Stable log(1 + exp(v)). */
struct f_softplus {
    template <typename C> __device__ C operator()(C v) const {
        return (v > (C)0 ? v : (C)0) + m_log1p(kb_exp(-m_fabs(v)));
    }
};
struct f_softsign {
    template <typename C> __device__ C operator()(C v) const { return v / ((C)1 + m_fabs(v)); }
};
/* clip(0.2*x + 0.5, 0, 1); NaN stays NaN. */
struct f_hard_sigmoid {
    template <typename C> __device__ C operator()(C v) const {
        if (v != v) return v;
        C t = (C)0.2 * v + (C)0.5;
        return t < (C)0 ? (C)0 : (t > (C)1 ? (C)1 : t);
    }
};
struct f_tanh {
    template <typename C> __device__ C operator()(C v) const { return m_tanh(v); }
};

/* N elements of T per 16 bytes, loaded and stored as one vector. */
template <typename T> struct vec16 {
    static constexpr int N = 16 / (int)sizeof(T);
    struct alignas(16) type {
        T v[N];
    };
};

/* y = f(x). vec: both pointers 16-byte aligned, so elements [0, n/N*N) go by vectors; the tail
 * (and everything when !vec) one by one. */
template <typename T, typename F>
__global__ void k_act(const T *__restrict__ x, T *__restrict__ y, int64_t n, int vec, F f) {
    constexpr int N = vec16<T>::N;
    using V = typename vec16<T>::type;
    int64_t head = 0;
    if (vec) {
        int64_t nv = n / N;
        KB_GRID_LOOP(i, nv) {
            V p = ((const V *)x)[i];
#pragma unroll
            for (int k = 0; k < N; k++) p.v[k] = st<T>(f(ld(p.v[k])));
            ((V *)y)[i] = p;
        }
        head = nv * N;
    }
    KB_GRID_LOOP(j, n - head) y[head + j] = st<T>(f(ld(x[head + j])));
}

/* ---- in_top_k ----------------------------------------------------------------------------- */

/* One warp per row: lanes count the predictions strictly greater than the target's and flag
 * non-finite ones; the row is in the top k when none is non-finite and fewer than k are greater. */
template <typename T, typename I>
__global__ void k_in_top_k(const T *__restrict__ p, const I *__restrict__ t, uint8_t *__restrict__ out,
                           int64_t rows, int64_t C, int64_t k) {
    int lane = threadIdx.x & 31;
    int64_t w = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int64_t nw = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t r = w; r < rows; r += nw) {
        int64_t tg = (int64_t)t[r];
        if (tg < 0 || tg >= C) { /* the same for the whole warp */
            if (lane == 0) out[r] = 0;
            continue;
        }
        const T *pr = p + r * C;
        auto tv = ld(pr[tg]);
        long long greater = 0;
        int bad = 0;
        for (int64_t j = lane; j < C; j += 32) {
            auto v = ld(pr[j]);
            if (!isfinite(v)) bad = 1;
            else if (v > tv) greater++;
        }
        greater = kb_group_reduce<32>(greater, kb_op_sum());
        bad = kb_group_reduce<32>(bad, kb_op_sum());
        if (lane == 0) out[r] = bad == 0 && greater < k;
    }
}

/* ---- sigmoid_cross_entropy ---------------------------------------------------------------- */

/* max(x, 0) - x*z + log1p(exp(-|x|)) for labels z, logits x. */
template <typename C> __device__ __forceinline__ C sce(C z, C x) {
    return (x > (C)0 ? x : (C)0) - x * z + m_log1p(kb_exp(-m_fabs(x)));
}

template <typename T>
__global__ void k_sce_flat(const T *__restrict__ z, const T *__restrict__ x, T *__restrict__ y, int64_t n) {
    KB_GRID_LOOP(i, n) y[i] = st<T>(sce(ld(z[i]), ld(x[i])));
}

template <typename T>
__global__ void k_sce_bcast(const T *__restrict__ z, const T *__restrict__ x, T *__restrict__ y, int64_t n,
                            kb_imap m) {
    KB_GRID_LOOP(i, n) {
        int64_t oz, ox;
        kb_imap_offsets2(m, i, oz, ox);
        y[i] = st<T>(sce(ld(z[oz]), ld(x[ox])));
    }
}

/* ---- launchers ---------------------------------------------------------------------------- */

static relu_params make_relu_params(const kb_attrs *a) {
    relu_params p;
    p.alpha = a->alpha;
    p.max_value = a->max_value;
    p.threshold = a->threshold;
    p.leaky = a->alpha != 0 && isinf(a->max_value) && a->threshold == 0;
    p.has_max = !isinf(a->max_value);
    return p;
}

template <typename T>
kb_status relu_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    int64_t n = out->size;
    if (n == 0) return KB_OK;
    KB_TRY(kb_cuda_bind(dev));
    k_relu<T><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>(
        (const T *)in[0].data, (T *)out->data, n, make_relu_params(a));
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

template <typename T>
kb_status relu_grad_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    int64_t n = out->size;
    if (n == 0) return KB_OK;
    if (in[0].size != n || in[1].size != n)
        return kb_set_error(KB_ERR_SHAPE, "%s: dy and x must have the shape of dx", ex->op ? ex->op : "relu_grad");
    KB_TRY(kb_cuda_bind(dev));
    k_relu_grad<T><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>(
        (const T *)in[0].data, (const T *)in[1].data, (T *)out->data, n, make_relu_params(a));
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

template <typename T>
kb_status sigmoid_t(const kb_exec *ex, const kb_buf *in, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    int64_t n = out->size;
    if (n == 0) return KB_OK;
    KB_TRY(kb_cuda_bind(dev));
    k_sigmoid<T><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>(
        (const T *)in[0].data, (T *)out->data, n);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

template <typename T, bool LOG>
kb_status softmax_run(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    if (out->size == 0) return KB_OK;
    const kb_buf *x = &in[0];
    int axis = a->axis;
    if (x->rank > 0 && (axis < 0 || axis >= x->rank))
        return kb_set_error(KB_ERR_AXIS, "%s: axis %d out of range for rank %d", ex->op ? ex->op : "softmax",
                            axis, x->rank);
    int64_t outer = 1, n = 1, inner = 1;
    for (int d = 0; d < x->rank; d++) {
        if (d < axis) outer *= x->shape[d];
        else if (d == axis) n = x->shape[d];
        else inner *= x->shape[d];
    }
    KB_TRY(kb_cuda_bind(dev));
    const T *xp = (const T *)x->data;
    T *yp = (T *)out->data;
    if (inner == 1) {
        int64_t rows = outer;
        if (n <= 1024) {
            const int warps = KB_THREADS / 32;
            k_softmax_warp<T, LOG><<<kb_blocks(dev, rows, warps), KB_THREADS, 0, dev->stream>>>(xp, yp, rows, n);
        } else {
            k_softmax_block<T, LOG><<<kb_blocks(dev, rows, 1), 512, 0, dev->stream>>>(xp, yp, rows, n);
        }
    } else {
        int64_t cols = outer * inner;
        k_softmax_col<T, LOG><<<kb_blocks(dev, cols, KB_THREADS), KB_THREADS, 0, dev->stream>>>(xp, yp, cols, n, inner);
    }
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

template <typename T> kb_status softmax_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    return softmax_run<T, false>(ex, a, in, out);
}
template <typename T> kb_status log_softmax_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    return softmax_run<T, true>(ex, a, in, out);
}

template <typename T, typename F> kb_status act_t(const kb_exec *ex, const kb_buf *in, kb_buf *out, F f) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    int64_t n = out->size;
    if (n == 0) return KB_OK;
    KB_TRY(kb_cuda_bind(dev));
    constexpr int N = vec16<T>::N;
    int vec = ((uintptr_t)in[0].data % 16 == 0) && ((uintptr_t)out->data % 16 == 0);
    int64_t work = vec ? n / N + (n % N) : n;
    k_act<T, F><<<kb_blocks(dev, work, KB_THREADS), KB_THREADS, 0, dev->stream>>>((const T *)in[0].data,
                                                                                  (T *)out->data, n, vec, f);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}
template <typename T> kb_status elu_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    return act_t<T>(ex, in, out, f_elu{a->alpha});
}
template <typename T> kb_status softplus_t(const kb_exec *ex, const kb_attrs *, const kb_buf *in, kb_buf *out) {
    return act_t<T>(ex, in, out, f_softplus{});
}
template <typename T> kb_status softsign_t(const kb_exec *ex, const kb_attrs *, const kb_buf *in, kb_buf *out) {
    return act_t<T>(ex, in, out, f_softsign{});
}
template <typename T>
kb_status hard_sigmoid_t(const kb_exec *ex, const kb_attrs *, const kb_buf *in, kb_buf *out) {
    return act_t<T>(ex, in, out, f_hard_sigmoid{});
}
template <typename T> kb_status tanh_t(const kb_exec *ex, const kb_attrs *, const kb_buf *in, kb_buf *out) {
    return act_t<T>(ex, in, out, f_tanh{});
}

template <typename T> kb_status in_top_k_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    const kb_buf *p = &in[0], *t = &in[1];
    int64_t rows = out->size;
    if (rows == 0) return KB_OK;
    if (p->rank != 2 || t->size != rows || p->shape[0] != rows)
        return kb_set_error(KB_ERR_SHAPE, "%s: predictions must be (batch, classes) and targets (batch,)",
                            ex->op ? ex->op : "in_top_k");
    KB_TRY(kb_cuda_bind(dev));
    const int warps = KB_THREADS / 32;
    unsigned blocks = kb_blocks(dev, rows, warps);
    if (t->dtype == KB_INT32)
        k_in_top_k<T, int32_t><<<blocks, KB_THREADS, 0, dev->stream>>>(
            (const T *)p->data, (const int32_t *)t->data, (uint8_t *)out->data, rows, p->shape[1], a->i64[0]);
    else if (t->dtype == KB_INT64)
        k_in_top_k<T, int64_t><<<blocks, KB_THREADS, 0, dev->stream>>>(
            (const T *)p->data, (const int64_t *)t->data, (uint8_t *)out->data, rows, p->shape[1], a->i64[0]);
    else
        return kb_cuda_dtype_error(ex, t->dtype, "targets: int32 or int64");
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

template <typename T>
kb_status sigmoid_cross_entropy_t(const kb_exec *ex, const kb_attrs *, const kb_buf *in, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    int64_t n = out->size;
    if (n == 0) return KB_OK;
    if (in[0].rank > out->rank || in[1].rank > out->rank)
        return kb_set_error(KB_ERR_SHAPE, "%s: input rank exceeds output rank",
                            ex->op ? ex->op : "sigmoid_cross_entropy");
    KB_TRY(kb_cuda_bind(dev));
    const T *z = (const T *)in[0].data, *x = (const T *)in[1].data;
    T *y = (T *)out->data;
    if (in[0].size == n && in[1].size == n && in[0].rank == out->rank && in[1].rank == out->rank) {
        /* equal element counts at the output's rank: equal shapes (broadcasting only grows dims) */
        k_sce_flat<T><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>(z, x, y, n);
    } else {
        int64_t sz[KB_MAX_RANK], sx[KB_MAX_RANK];
        kb_bcast_strides(in[0].shape, in[0].rank, out->shape, out->rank, sz);
        kb_bcast_strides(in[1].shape, in[1].rank, out->shape, out->rank, sx);
        const int64_t *strides[2] = {sz, sx};
        kb_imap m = kb_imap_make(out->shape, out->rank, strides, 2);
        k_sce_bcast<T><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>(z, x, y, n, m);
    }
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

} /* namespace */

/* float16, bfloat16, float32, float64. */
#define NN_DISPATCH_FLOATS(ex, dt, FN, ...)                                                   \
    do {                                                                                      \
        switch (dt) {                                                                         \
        case KB_FLOAT16: return FN<__half>(__VA_ARGS__);                                      \
        case KB_BFLOAT16: return FN<__nv_bfloat16>(__VA_ARGS__);                              \
        case KB_FLOAT32: return FN<float>(__VA_ARGS__);                                       \
        case KB_FLOAT64: return FN<double>(__VA_ARGS__);                                      \
        default: return kb_cuda_dtype_error(ex, dt, "float16, bfloat16, float32 or float64"); \
        }                                                                                     \
    } while (0)

extern "C" kb_status kb_cuda_relu(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    NN_DISPATCH_FLOATS(ex, in[0].dtype, relu_t, ex, a, in, out);
}

extern "C" kb_status kb_cuda_relu_grad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                       kb_buf *out) {
    (void)n_in;
    NN_DISPATCH_FLOATS(ex, in[0].dtype, relu_grad_t, ex, a, in, out);
}

extern "C" kb_status kb_cuda_sigmoid(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                     kb_buf *out) {
    (void)a;
    (void)n_in;
    NN_DISPATCH_FLOATS(ex, in[0].dtype, sigmoid_t, ex, in, out);
}

extern "C" kb_status kb_cuda_softmax(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                     kb_buf *out) {
    (void)n_in;
    NN_DISPATCH_FLOATS(ex, in[0].dtype, softmax_t, ex, a, in, out);
}

extern "C" kb_status kb_cuda_log_softmax(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                         kb_buf *out) {
    (void)n_in;
    NN_DISPATCH_FLOATS(ex, in[0].dtype, log_softmax_t, ex, a, in, out);
}

#define NN_LAUNCHER(name)                                                                                 \
    extern "C" kb_status kb_cuda_##name(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, \
                                        kb_buf *out) {                                                   \
        (void)n_in;                                                                                       \
        NN_DISPATCH_FLOATS(ex, in[0].dtype, name##_t, ex, a, in, out);                                    \
    }
NN_LAUNCHER(elu)
NN_LAUNCHER(softplus)
NN_LAUNCHER(softsign)
NN_LAUNCHER(hard_sigmoid)
NN_LAUNCHER(tanh)
NN_LAUNCHER(in_top_k)
NN_LAUNCHER(sigmoid_cross_entropy)

/* ------------------------------------------------------------------------------------------ */
/* extract_patches / extract_patches_grad (local_conv1d / local_conv2d; attrs in ops/nn.c).    */
/* Patches: one thread per output element (P*B*K), a gather; consecutive threads write         */
/* consecutive k, reading runs of kw*C (channels_last) or kw (channels_first) contiguous       */
/* inputs. Bytes: 2 * P*B*K * sizeof T. Grad: one thread per input element summing the patch  */
/* entries that copied it, windows (i, j) ascending as the CPU (deterministic, no atomics).    */
/* Bytes: (P*B*K + B*H*W*C) * sizeof T.                                                        */
/* ------------------------------------------------------------------------------------------ */

namespace {


template <typename T>
__global__ void k_patches(const T *__restrict__ x, T *__restrict__ o, int64_t n, kb_patch_geo g) {
    KB_GRID_LOOP(e, n) {
        int64_t k = e % g.K, r = e / g.K;
        int64_t b = r % g.B, p = r / g.B, i = p / g.ow, j = p % g.ow, c, dy, dx, src;
        if (!g.cf) {
            c = k % g.C;
            int64_t t = k / g.C;
            dx = t % g.kw, dy = t / g.kw;
            src = ((b * g.H + i * g.sh + dy) * g.W + j * g.sw + dx) * g.C + c;
        } else {
            dx = k % g.kw;
            int64_t t = k / g.kw;
            dy = t % g.kh, c = t / g.kh;
            src = ((b * g.C + c) * g.H + i * g.sh + dy) * g.W + j * g.sw + dx;
        }
        o[e] = x[src];
    }
}

template <typename T>
__global__ void k_patches_grad(const T *__restrict__ gy, T *__restrict__ dx, int64_t n, kb_patch_geo g) {
    KB_GRID_LOOP(e, n) {
        int64_t b, c, y, xx, t = e;
        if (!g.cf) {
            c = t % g.C, t /= g.C, xx = t % g.W, t /= g.W, y = t % g.H, b = t / g.H;
        } else {
            xx = t % g.W, t /= g.W, y = t % g.H, t /= g.H, c = t % g.C, b = t / g.C;
        }
        int64_t i0 = y >= g.kh ? (y - g.kh + g.sh) / g.sh : 0, i1 = y / g.sh;
        int64_t j0 = xx >= g.kw ? (xx - g.kw + g.sw) / g.sw : 0, j1 = xx / g.sw;
        if (i1 > g.oh - 1) i1 = g.oh - 1;
        if (j1 > g.ow - 1) j1 = g.ow - 1;
        T s = 0;
        for (int64_t i = i0; i <= i1; ++i)
            for (int64_t j = j0; j <= j1; ++j) {
                int64_t dy = y - i * g.sh, dxo = xx - j * g.sw;
                int64_t k = g.cf ? (c * g.kh + dy) * g.kw + dxo : (dy * g.kw + dxo) * g.C + c;
                s = kb_add(s, gy[((i * g.ow + j) * g.B + b) * g.K + k]);
            }
        dx[e] = s;
    }
}

template <typename T>
kb_status patches_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    int64_t n = out->size;
    if (n == 0) return KB_OK;
    KB_TRY(kb_cuda_bind(dev));
    kb_patch_geo g = kb_patch_geo_of(a, &in[0]);
    k_patches<T><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>((const T *)in[0].data,
                                                                                (T *)out->data, n, g);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

template <typename T>
kb_status patches_grad_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    int64_t n = out->size;
    if (n == 0) return KB_OK;
    KB_TRY(kb_cuda_bind(dev));
    kb_patch_geo g = kb_patch_geo_of(a, &in[1]);
    k_patches_grad<T><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>((const T *)in[0].data,
                                                                                     (T *)out->data, n, g);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

} /* namespace */

extern "C" kb_status kb_cuda_extract_patches(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                             kb_buf *out) {
    (void)n_in;
    KB_DISPATCH_FLOAT(ex, in[0].dtype, patches_t, ex, a, in, out);
}

extern "C" kb_status kb_cuda_extract_patches_grad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                                  kb_buf *out) {
    (void)n_in;
    KB_DISPATCH_FLOAT(ex, out->dtype, patches_grad_t, ex, a, in, out);
}
