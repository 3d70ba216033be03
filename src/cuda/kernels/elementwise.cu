/*
 * Elementwise kernels: add, subtract, multiply, divide (numpy broadcasting), negative, square,
 * exp, log, sqrt, sqrt_grad, clip, clip_grad (float32 / float64) and cast (any of the 9 dtypes to any).
 *
 * Shapes: binary ops broadcast in[0] and in[1] (right-aligned, size-1 dims stretch) into
 * out->shape; unary ops keep the shape. Bytes moved: unary n*(2*sizeof T); binary with equal
 * shapes n*3*sizeof T (broadcast operands are re-read from cache); cast n*(sizeof S+sizeof D).
 * Flops are negligible: all of these are memory-bound, so the equal-shape paths use 16-byte
 * vector loads (float4 / double2) with a scalar tail; the broadcast path walks a coalesced
 * index map (kb_imap) with int64 indices.
 */
#include "cuda/kernels/common.cuh"

namespace {

/* ------------------------------------------------------------------------------------------ */
/* Functors (semantics shared with the CPU kernels in ops/elementwise.c)                       */
/* ------------------------------------------------------------------------------------------ */

struct f_add { template <typename T> __device__ T operator()(T a, T b) const { return a + b; } };
struct f_sub { template <typename T> __device__ T operator()(T a, T b) const { return a - b; } };
struct f_mul { template <typename T> __device__ T operator()(T a, T b) const { return a * b; } };
struct f_div { template <typename T> __device__ T operator()(T a, T b) const { return a / b; } };
/* sqrt_grad(dy, x) = x < 0 ? 0 : dy * 0.5 / sqrt(x), in double as the CPU evaluates it. */
struct f_sqrt_grad {
    template <typename T> __device__ T operator()(T dy, T x) const {
        double xd = (double)x;
        return xd < 0.0 ? (T)0 : (T)kb_div(kb_mul((double)dy, 0.5), kb_sqrt(xd));
    }
};

struct f_neg { template <typename T> __device__ T operator()(T x) const { return -x; } };
struct f_square { template <typename T> __device__ T operator()(T x) const { return x * x; } };
struct f_exp { template <typename T> __device__ T operator()(T x) const { return kb_exp(x); } };
struct f_log { template <typename T> __device__ T operator()(T x) const { return kb_log(x); } };
/* Keras sqrt: sqrt(max(x, 0)); NaN stays NaN. */
struct f_sqrt { template <typename T> __device__ T operator()(T x) const { return x < (T)0 ? (T)0 : kb_sqrt(x); } };
/* clip compares in double against the double bounds (as the CPU), so float32 results agree. */
struct f_clip {
    double lo, hi;
    template <typename T> __device__ T operator()(T x) const {
        double xd = (double)x;
        return xd < lo ? (T)lo : (xd > hi ? (T)hi : x);
    }
};

/* clip_grad(dy, x): TF clip_by_value passes dy where lo <= x <= hi (double compares, as the CPU). */
struct f_clip_grad {
    double lo, hi;
    template <typename T> __device__ T operator()(T dy, T x) const {
        double xd = (double)x;
        return (xd < lo || xd > hi) ? (T)0 : dy;
    }
};

/* ------------------------------------------------------------------------------------------ */
/* Kernels                                                                                     */
/* ------------------------------------------------------------------------------------------ */

template <typename T> struct vec16 { static constexpr int N = 16 / sizeof(T); };
template <typename T> struct alignas(16) pack { T v[vec16<T>::N]; };

/* y = f(x), contiguous. vec: x and y are 16-byte aligned -> n/N vector iterations + tail. */
template <typename T, typename F>
__global__ void k_unary(const T *__restrict__ x, T *__restrict__ y, int64_t n, int vec, F f) {
    constexpr int N = vec16<T>::N;
    int64_t done = 0;
    if (vec) {
        int64_t nv = n / N;
        const pack<T> *xv = (const pack<T> *)x;
        pack<T> *yv = (pack<T> *)y;
        KB_GRID_LOOP(i, nv) {
            pack<T> p = xv[i];
#pragma unroll
            for (int k = 0; k < N; k++) p.v[k] = f(p.v[k]);
            yv[i] = p;
        }
        done = nv * N;
    }
    KB_GRID_LOOP(j, n - done) y[done + j] = f(x[done + j]);
}

/* y = f(a, b), all three of the same shape. */
template <typename T, typename F>
__global__ void k_binary_flat(const T *__restrict__ a, const T *__restrict__ b, T *__restrict__ y,
                              int64_t n, int vec, F f) {
    constexpr int N = vec16<T>::N;
    int64_t done = 0;
    if (vec) {
        int64_t nv = n / N;
        const pack<T> *av = (const pack<T> *)a, *bv = (const pack<T> *)b;
        pack<T> *yv = (pack<T> *)y;
        KB_GRID_LOOP(i, nv) {
            pack<T> p = av[i], q = bv[i];
#pragma unroll
            for (int k = 0; k < N; k++) p.v[k] = f(p.v[k], q.v[k]);
            yv[i] = p;
        }
        done = nv * N;
    }
    KB_GRID_LOOP(j, n - done) y[done + j] = f(a[done + j], b[done + j]);
}

/* y[i] = f(a[map0(i)], b[map1(i)]): numpy broadcasting through an index map. */
template <typename T, typename F>
__global__ void k_binary_bcast(const T *__restrict__ a, const T *__restrict__ b, T *__restrict__ y,
                               int64_t n, kb_imap m, F f) {
    KB_GRID_LOOP(i, n) {
        int64_t oa, ob;
        kb_imap_offsets2(m, i, oa, ob);
        y[i] = f(a[oa], b[ob]);
    }
}

template <typename D, typename S>
__global__ void k_cast(const S *__restrict__ x, D *__restrict__ y, int64_t n) {
    KB_GRID_LOOP(i, n) y[i] = kb_convert<D>(x[i]);
}

/* ------------------------------------------------------------------------------------------ */
/* Launchers                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static inline int aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

static int same_shape(const kb_buf *a, const kb_buf *b) {
    if (a->rank != b->rank) return 0;
    for (int d = 0; d < a->rank; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

template <typename T, typename F>
kb_status run_unary(const kb_exec *ex, const kb_buf *in, kb_buf *out, F f) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    int64_t n = out->size;
    if (n == 0) return KB_OK;
    KB_TRY(kb_cuda_bind(dev));
    int vec = aligned16(in[0].data) && aligned16(out->data);
    int64_t work = vec ? (n + vec16<T>::N - 1) / vec16<T>::N : n;
    k_unary<T, F><<<kb_blocks(dev, work, KB_THREADS), KB_THREADS, 0, dev->stream>>>(
        (const T *)in[0].data, (T *)out->data, n, vec, f);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

template <typename T, typename F>
kb_status run_binary(const kb_exec *ex, const kb_buf *in, kb_buf *out, F f) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    int64_t n = out->size;
    if (n == 0) return KB_OK;
    KB_TRY(kb_cuda_bind(dev));
    const T *a = (const T *)in[0].data, *b = (const T *)in[1].data;
    T *y = (T *)out->data;
    if (in[0].size == n && in[1].size == n && same_shape(&in[0], out) && same_shape(&in[1], out)) {
        int vec = aligned16(a) && aligned16(b) && aligned16(y);
        int64_t work = vec ? (n + vec16<T>::N - 1) / vec16<T>::N : n;
        k_binary_flat<T, F><<<kb_blocks(dev, work, KB_THREADS), KB_THREADS, 0, dev->stream>>>(a, b, y, n, vec, f);
    } else {
        int64_t sa[KB_MAX_RANK], sb[KB_MAX_RANK];
        if (in[0].rank > out->rank || in[1].rank > out->rank)
            return kb_set_error(KB_ERR_SHAPE, "%s: input rank exceeds output rank", ex->op ? ex->op : "binary");
        kb_bcast_strides(in[0].shape, in[0].rank, out->shape, out->rank, sa);
        kb_bcast_strides(in[1].shape, in[1].rank, out->shape, out->rank, sb);
        const int64_t *st[2] = {sa, sb};
        kb_imap m = kb_imap_make(out->shape, out->rank, st, 2);
        k_binary_bcast<T, F><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>(a, b, y, n, m, f);
    }
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

/* Per-dtype entry points used with KB_DISPATCH_FLOAT. */
template <typename T, typename F> kb_status unary_t(const kb_exec *ex, const kb_buf *in, kb_buf *out) {
    return run_unary<T>(ex, in, out, F());
}
template <typename T> kb_status clip_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    f_clip f;
    f.lo = a->lo;
    f.hi = a->hi;
    return run_unary<T>(ex, in, out, f);
}

template <typename S>
struct cast_from {
    template <typename D>
    static kb_status run(const kb_exec *ex, const kb_buf *in, kb_buf *out) {
        struct kb_cuda_device *dev = kb_cuda_dev(ex);
        int64_t n = out->size;
        k_cast<D, S><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>(
            (const S *)in[0].data, (D *)out->data, n);
        KB_CUDA_CHECK(cudaGetLastError());
        return KB_OK;
    }
};
template <typename S> kb_status cast_t(const kb_exec *ex, const kb_buf *in, kb_buf *out) {
    KB_DISPATCH_ALL(ex, out->dtype, cast_from<S>::template run, ex, in, out);
}

} /* namespace */

/* Launchers check the dtype, then instantiate the functor for float or double. */
namespace {
template <typename F> kb_status unary_dispatch(const kb_exec *ex, const kb_buf *in, kb_buf *out) {
    switch (in[0].dtype) {
    case KB_FLOAT32: return unary_t<float, F>(ex, in, out);
    case KB_FLOAT64: return unary_t<double, F>(ex, in, out);
    default: return kb_cuda_dtype_error(ex, in[0].dtype, "float32 or float64");
    }
}
template <typename F> kb_status binary_dispatch(const kb_exec *ex, const kb_buf *in, kb_buf *out, F f = F()) {
    if (in[1].dtype != in[0].dtype || out->dtype != in[0].dtype)
        return kb_set_error(KB_ERR_DTYPE, "%s: operands must share one dtype", ex->op ? ex->op : "binary");
    switch (in[0].dtype) {
    case KB_FLOAT32: return run_binary<float>(ex, in, out, f);
    case KB_FLOAT64: return run_binary<double>(ex, in, out, f);
    default: return kb_cuda_dtype_error(ex, in[0].dtype, "float32 or float64");
    }
}
} /* namespace */

#define KB_UNARY(name, F)                                                                        \
    extern "C" kb_status kb_cuda_##name(const kb_exec *ex, const kb_attrs *a, const kb_buf *in,   \
                                        int n_in, kb_buf *out) {                                 \
        (void)a;                                                                                 \
        (void)n_in;                                                                              \
        return unary_dispatch<F>(ex, in, out);                                                   \
    }
#define KB_BINARY(name, F)                                                                       \
    extern "C" kb_status kb_cuda_##name(const kb_exec *ex, const kb_attrs *a, const kb_buf *in,   \
                                        int n_in, kb_buf *out) {                                 \
        (void)a;                                                                                 \
        (void)n_in;                                                                              \
        return binary_dispatch<F>(ex, in, out);                                                  \
    }

KB_BINARY(add, f_add)
KB_BINARY(subtract, f_sub)
KB_BINARY(multiply, f_mul)
KB_BINARY(divide, f_div)
KB_BINARY(sqrt_grad, f_sqrt_grad)
KB_UNARY(negative, f_neg)
KB_UNARY(square, f_square)
KB_UNARY(exp, f_exp)
KB_UNARY(log, f_log)
KB_UNARY(sqrt, f_sqrt)

extern "C" kb_status kb_cuda_clip(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                  kb_buf *out) {
    (void)n_in;
    KB_DISPATCH_FLOAT(ex, in[0].dtype, clip_t, ex, a, in, out);
}

extern "C" kb_status kb_cuda_cast(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                  kb_buf *out) {
    (void)a;
    (void)n_in;
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    int64_t n = out->size;
    if (n == 0) return KB_OK;
    KB_TRY(kb_cuda_bind(dev));
    if (in[0].dtype == out->dtype) {
        size_t es = kb_dtype_size(out->dtype);
        if (!es) return kb_cuda_dtype_error(ex, out->dtype, "invalid dtype");
        if (in[0].data != out->data)
            KB_CUDA_CHECK(cudaMemcpyAsync(out->data, in[0].data, (size_t)n * es, cudaMemcpyDeviceToDevice,
                                          dev->stream));
        return KB_OK;
    }
    KB_DISPATCH_ALL(ex, in[0].dtype, cast_t, ex, in, out);
}

extern "C" kb_status kb_cuda_clip_grad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                       kb_buf *out) {
    (void)n_in;
    f_clip_grad f;
    f.lo = a->lo;
    f.hi = a->hi;
    return binary_dispatch<f_clip_grad>(ex, in, out, f);
}
