/*
 * Activation kernels: relu (Keras alpha / max_value / threshold), relu_grad, sigmoid, softmax
 * and log_softmax along one axis (float32 / float64).
 *
 * Shapes: relu, sigmoid keep x's shape; relu_grad(dy, x) -> dx of x's shape; softmax views x
 * as (outer, n, inner) around a->axis. Bytes moved: relu/sigmoid 2*n*sizeof T, relu_grad 3*n,
 * softmax reads each row three times (max, sum, write; rows usually stay in L1/L2) and writes
 * once. Softmax dispatch: inner == 1 and n <= 1024: one warp per row; inner == 1 and longer
 * rows: one block per row; inner > 1: one thread per (outer, inner) column, so that neighbouring
 * threads read neighbouring addresses.
 */
#include "cuda/kernels/common.cuh"

namespace {

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
    KB_GRID_LOOP(i, n) y[i] = (T)relu_f((double)x[i], p);
}

template <typename T>
__global__ void k_relu_grad(const T *__restrict__ dy, const T *__restrict__ x, T *__restrict__ dx,
                            int64_t n, relu_params p) {
    KB_GRID_LOOP(i, n) dx[i] = (T)kb_mul((double)dy[i], relu_d((double)x[i], p));
}

/* Stable logistic: 1/(1+exp(-x)) for x >= 0, exp(x)/(1+exp(x)) below. */
template <typename T>
__global__ void k_sigmoid(const T *__restrict__ x, T *__restrict__ y, int64_t n) {
    KB_GRID_LOOP(i, n) {
        T v = x[i];
        if (v >= (T)0) {
            y[i] = (T)1 / ((T)1 + kb_exp(-v));
        } else {
            T e = kb_exp(v);
            y[i] = e / ((T)1 + e);
        }
    }
}

/* ---- softmax ------------------------------------------------------------------------------ */

/* Finish one element: softmax exp(x-m)/s, log_softmax (x-m)-log(s) (ls = log(s) precomputed). */
template <typename T, bool LOG>
__device__ __forceinline__ T sm_out(T v, T m, T s, T ls) {
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
    int lane = threadIdx.x & 31;
    int64_t w = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int64_t nw = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t r = w; r < rows; r += nw) {
        const T *xr = x + r * n;
        T *yr = y + r * n;
        T m = -INFINITY;
        for (int64_t j = lane; j < n; j += 32) m = op_max_skip()(m, xr[j]);
        m = kb_group_reduce<32>(m, op_max_skip());
        T s = 0;
        for (int64_t j = lane; j < n; j += 32) s += kb_exp(xr[j] - m);
        s = kb_group_reduce<32>(s, kb_op_sum());
        T ls = LOG ? kb_log(s) : (T)0;
        for (int64_t j = lane; j < n; j += 32) yr[j] = sm_out<T, LOG>(xr[j], m, s, ls);
    }
}

/* One block per contiguous row (long rows). */
template <typename T, bool LOG>
__global__ void k_softmax_block(const T *__restrict__ x, T *__restrict__ y, int64_t rows, int64_t n) {
    __shared__ T sh[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *xr = x + r * n;
        T *yr = y + r * n;
        T m = -INFINITY;
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = op_max_skip()(m, xr[j]);
        m = kb_block_reduce(m, op_max_skip(), (T)-INFINITY, sh);
        T s = 0;
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += kb_exp(xr[j] - m);
        s = kb_block_reduce(s, kb_op_sum(), (T)0, sh);
        T ls = LOG ? kb_log(s) : (T)0;
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = sm_out<T, LOG>(xr[j], m, s, ls);
    }
}

/* One thread per (outer, inner) column of a (outer, n, inner) view; elements are inner apart. */
template <typename T, bool LOG>
__global__ void k_softmax_col(const T *__restrict__ x, T *__restrict__ y, int64_t cols, int64_t n,
                              int64_t inner) {
    KB_GRID_LOOP(c, cols) {
        int64_t o = c / inner, k = c - o * inner;
        int64_t base = o * n * inner + k;
        const T *xc = x + base;
        T *yc = y + base;
        T m = -INFINITY;
        for (int64_t j = 0; j < n; j++) m = op_max_skip()(m, xc[j * inner]);
        T s = 0;
        for (int64_t j = 0; j < n; j++) s += kb_exp(xc[j * inner] - m);
        T ls = LOG ? kb_log(s) : (T)0;
        for (int64_t j = 0; j < n; j++) yc[j * inner] = sm_out<T, LOG>(xc[j * inner], m, s, ls);
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

} /* namespace */

extern "C" kb_status kb_cuda_relu(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    KB_DISPATCH_FLOAT(ex, in[0].dtype, relu_t, ex, a, in, out);
}

extern "C" kb_status kb_cuda_relu_grad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                       kb_buf *out) {
    (void)n_in;
    KB_DISPATCH_FLOAT(ex, in[0].dtype, relu_grad_t, ex, a, in, out);
}

extern "C" kb_status kb_cuda_sigmoid(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                     kb_buf *out) {
    (void)a;
    (void)n_in;
    KB_DISPATCH_FLOAT(ex, in[0].dtype, sigmoid_t, ex, in, out);
}

extern "C" kb_status kb_cuda_softmax(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                     kb_buf *out) {
    (void)n_in;
    KB_DISPATCH_FLOAT(ex, in[0].dtype, softmax_t, ex, a, in, out);
}

extern "C" kb_status kb_cuda_log_softmax(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                         kb_buf *out) {
    (void)n_in;
    KB_DISPATCH_FLOAT(ex, in[0].dtype, log_softmax_t, ex, a, in, out);
}
