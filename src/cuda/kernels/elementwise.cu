/*
 * Elementwise kernels: add, subtract, multiply, divide, maximum, minimum (numpy broadcasting),
 * the comparisons equal, not_equal, greater, greater_equal, less, less_equal (bool out),
 * negative, square, abs, sign, round, pow, sin, cos, exp, log, sqrt, sqrt_grad, clip,
 * clip_grad, and cast (any of the 9 dtypes to any).
 *
 * dtypes: float16 / bfloat16 / float32 / float64 for every op; the half types are loaded to
 * float, computed in float and rounded once on store (as the CPU executor, which widens them to
 * float32). add subtract multiply maximum minimum negative square abs sign also take int8,
 * uint8, int32, int64 with wrap-around arithmetic (done in the unsigned type: no signed
 * overflow). The comparisons take every dtype (bool as its 0/1 byte) and write bool bytes.
 *
 * Shapes: binary ops broadcast in[0] and in[1] (right-aligned, size-1 dims stretch) into
 * out->shape; unary ops keep the shape. Bytes moved: unary n*(sizeof T + sizeof O); binary with
 * equal shapes n*(2*sizeof T + sizeof O) (broadcast operands are re-read from cache); cast
 * n*(sizeof S+sizeof D). Flops are negligible: all of these are memory-bound, so the equal-shape
 * paths load 16 bytes per operand per step (float4 / double2 / 8 halves / 16 int8, and the
 * matching output pack) in a grid-stride loop, with a scalar tail; the broadcast path walks a
 * coalesced index map (kb_imap) with int64 indices.
 */
#include "cuda/kernels/common.cuh"

namespace {

/* ------------------------------------------------------------------------------------------ */
/* Load / compute / store types                                                                */
/* ------------------------------------------------------------------------------------------ */

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
/* One rounding to the stored type (round to nearest even for the half types); a bool result is
 * stored as its 0/1 byte. */
template <typename O, typename V> __device__ __forceinline__ O st(V v) {
    if constexpr (std::is_same<O, __half>::value) return __float2half_rn(v);
    else if constexpr (std::is_same<O, __nv_bfloat16>::value) return __float2bfloat16_rn(v);
    else return (O)v;
}

/* Integer arithmetic wraps modulo 2^bits (TF's integer kernels): computed in the unsigned type. */
template <typename C> using uns_t = typename std::make_unsigned<C>::type;
template <typename C> __device__ __forceinline__ C w_add(C a, C b) {
    if constexpr (std::is_integral<C>::value) return (C)((uns_t<C>)a + (uns_t<C>)b);
    else return a + b;
}
template <typename C> __device__ __forceinline__ C w_sub(C a, C b) {
    if constexpr (std::is_integral<C>::value) return (C)((uns_t<C>)a - (uns_t<C>)b);
    else return a - b;
}
template <typename C> __device__ __forceinline__ C w_mul(C a, C b) {
    if constexpr (std::is_integral<C>::value) return (C)((uns_t<C>)a * (uns_t<C>)b);
    else return a * b;
}

/* Float math by compute type (no fast-math: IEEE NaN/Inf, as the CPU). */
__device__ __forceinline__ float m_sin(float x) { return sinf(x); }
__device__ __forceinline__ double m_sin(double x) { return sin(x); }
__device__ __forceinline__ float m_cos(float x) { return cosf(x); }
__device__ __forceinline__ double m_cos(double x) { return cos(x); }
__device__ __forceinline__ float m_rint(float x) { return rintf(x); }
__device__ __forceinline__ double m_rint(double x) { return rint(x); }
__device__ __forceinline__ float m_pow(float x, float a) { return powf(x, a); }
__device__ __forceinline__ double m_pow(double x, double a) { return pow(x, a); }
__device__ __forceinline__ float m_fabs(float x) { return fabsf(x); }
__device__ __forceinline__ double m_fabs(double x) { return fabs(x); }

/* ------------------------------------------------------------------------------------------ */
/* Functors on compute-type values (semantics shared with cpu/cpu_elementwise.c)               */
/* ------------------------------------------------------------------------------------------ */

struct f_add { template <typename C> __device__ C operator()(C a, C b) const { return w_add(a, b); } };
struct f_sub { template <typename C> __device__ C operator()(C a, C b) const { return w_sub(a, b); } };
struct f_mul { template <typename C> __device__ C operator()(C a, C b) const { return w_mul(a, b); } };
struct f_div { template <typename C> __device__ C operator()(C a, C b) const { return a / b; } };
/* NaN propagates (numpy, TF 2); ties return b, as the CPU. */
struct f_max {
    template <typename C> __device__ C operator()(C a, C b) const {
        if constexpr (std::is_floating_point<C>::value) {
            if (a != a) return a;
            if (b != b) return b;
        }
        return a > b ? a : b;
    }
};
struct f_min {
    template <typename C> __device__ C operator()(C a, C b) const {
        if constexpr (std::is_floating_point<C>::value) {
            if (a != a) return a;
            if (b != b) return b;
        }
        return a < b ? a : b;
    }
};
/* sqrt_grad(dy, x) = x < 0 ? 0 : dy * 0.5 / sqrt(x), in double as the CPU evaluates it. */
struct f_sqrt_grad {
    template <typename C> __device__ C operator()(C dy, C x) const {
        double xd = (double)x;
        return xd < 0.0 ? (C)0 : (C)kb_div(kb_mul((double)dy, 0.5), kb_sqrt(xd));
    }
};
/* clip_grad(dy, x): TF clip_by_value passes dy where lo <= x <= hi (double compares, as the CPU). */
struct f_clip_grad {
    double lo, hi;
    template <typename C> __device__ C operator()(C dy, C x) const {
        double xd = (double)x;
        return (xd < lo || xd > hi) ? (C)0 : dy;
    }
};

/* IEEE comparisons: false with a NaN operand, except not_equal. */
struct f_eq { template <typename C> __device__ bool operator()(C a, C b) const { return a == b; } };
struct f_ne { template <typename C> __device__ bool operator()(C a, C b) const { return a != b; } };
struct f_gt { template <typename C> __device__ bool operator()(C a, C b) const { return a > b; } };
struct f_ge { template <typename C> __device__ bool operator()(C a, C b) const { return a >= b; } };
struct f_lt { template <typename C> __device__ bool operator()(C a, C b) const { return a < b; } };
struct f_le { template <typename C> __device__ bool operator()(C a, C b) const { return a <= b; } };

/* Floats: -x (negative(+0) = -0); integers wrap. */
struct f_neg {
    template <typename C> __device__ C operator()(C x) const {
        if constexpr (std::is_floating_point<C>::value) return -x;
        else return w_sub((C)0, x);
    }
};
struct f_square { template <typename C> __device__ C operator()(C x) const { return w_mul(x, x); } };
/* abs(-0) = +0, NaN stays NaN; integers wrap (abs(INT32_MIN) = INT32_MIN, as TF). */
struct f_abs {
    template <typename C> __device__ C operator()(C x) const {
        if constexpr (std::is_floating_point<C>::value) return m_fabs(x);
        else if constexpr (std::is_signed<C>::value) return x < 0 ? w_sub((C)0, x) : x;
        else return x;
    }
};
/* sign(+-0) = +0, NaN stays NaN. */
struct f_sign {
    template <typename C> __device__ C operator()(C x) const {
        if constexpr (std::is_floating_point<C>::value) return x > 0 ? (C)1 : x < 0 ? (C)-1 : x == 0 ? (C)0 : x;
        else if constexpr (std::is_signed<C>::value) return (C)((x > 0) - (x < 0));
        else return (C)(x > 0);
    }
};
struct f_exp { template <typename C> __device__ C operator()(C x) const { return kb_exp(x); } };
struct f_log { template <typename C> __device__ C operator()(C x) const { return kb_log(x); } };
/* Keras sqrt: sqrt(max(x, 0)); NaN stays NaN. */
struct f_sqrt { template <typename C> __device__ C operator()(C x) const { return x < (C)0 ? (C)0 : kb_sqrt(x); } };
struct f_sin { template <typename C> __device__ C operator()(C x) const { return m_sin(x); } };
struct f_cos { template <typename C> __device__ C operator()(C x) const { return m_cos(x); } };
/* rint in the default mode rounds half to even (tf.round): round(2.5) = 2, round(-0.5) = -0. */
struct f_round { template <typename C> __device__ C operator()(C x) const { return m_rint(x); } };
/* tf.pow casts the exponent to x's dtype (float for the half types, as the widening CPU path). */
struct f_pow {
    double a;
    template <typename C> __device__ C operator()(C x) const { return m_pow(x, (C)a); }
};
/* clip compares in double against the double bounds (as the CPU), so float32 results agree. */
struct f_clip {
    double lo, hi;
    template <typename C> __device__ C operator()(C x) const {
        double xd = (double)x;
        return xd < lo ? (C)lo : (xd > hi ? (C)hi : x);
    }
};

/* ------------------------------------------------------------------------------------------ */
/* Kernels                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* N elements of the input type per 16 bytes; the output pack holds the same N elements. */
template <typename T> struct vec16 { static constexpr int N = 16 / (int)sizeof(T); };
template <typename T, int N> struct alignas(sizeof(T) * N) pack { T v[N]; };

/* y = f(x), contiguous. vec: x 16-byte aligned, y aligned to its pack -> n/N vector steps + tail. */
template <typename T, typename O, typename F>
__global__ void k_unary(const T *__restrict__ x, O *__restrict__ y, int64_t n, int vec, F f) {
    constexpr int N = vec16<T>::N;
    int64_t done = 0;
    if (vec) {
        int64_t nv = n / N;
        const pack<T, N> *xv = (const pack<T, N> *)x;
        pack<O, N> *yv = (pack<O, N> *)y;
        KB_GRID_LOOP(i, nv) {
            pack<T, N> p = xv[i];
            pack<O, N> q;
#pragma unroll
            for (int k = 0; k < N; k++) q.v[k] = st<O>(f(ld(p.v[k])));
            yv[i] = q;
        }
        done = nv * N;
    }
    KB_GRID_LOOP(j, n - done) y[done + j] = st<O>(f(ld(x[done + j])));
}

/* y = f(a, b), all three of the same shape. */
template <typename T, typename O, typename F>
__global__ void k_binary_flat(const T *__restrict__ a, const T *__restrict__ b, O *__restrict__ y, int64_t n,
                              int vec, F f) {
    constexpr int N = vec16<T>::N;
    int64_t done = 0;
    if (vec) {
        int64_t nv = n / N;
        const pack<T, N> *av = (const pack<T, N> *)a, *bv = (const pack<T, N> *)b;
        pack<O, N> *yv = (pack<O, N> *)y;
        KB_GRID_LOOP(i, nv) {
            pack<T, N> p = av[i], q = bv[i];
            pack<O, N> r;
#pragma unroll
            for (int k = 0; k < N; k++) r.v[k] = st<O>(f(ld(p.v[k]), ld(q.v[k])));
            yv[i] = r;
        }
        done = nv * N;
    }
    KB_GRID_LOOP(j, n - done) y[done + j] = st<O>(f(ld(a[done + j]), ld(b[done + j])));
}

/* y[i] = f(a[map0(i)], b[map1(i)]): numpy broadcasting through an index map. */
template <typename T, typename O, typename F>
__global__ void k_binary_bcast(const T *__restrict__ a, const T *__restrict__ b, O *__restrict__ y, int64_t n,
                               kb_imap m, F f) {
    KB_GRID_LOOP(i, n) {
        int64_t oa, ob;
        kb_imap_offsets2(m, i, oa, ob);
        y[i] = st<O>(f(ld(a[oa]), ld(b[ob])));
    }
}

template <typename D, typename S>
__global__ void k_cast(const S *__restrict__ x, D *__restrict__ y, int64_t n) {
    KB_GRID_LOOP(i, n) y[i] = kb_convert<D>(x[i]);
}

/* ------------------------------------------------------------------------------------------ */
/* Launchers                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static inline int aligned(const void *p, size_t bytes) { return ((uintptr_t)p & (bytes - 1)) == 0; }

static int same_shape(const kb_buf *a, const kb_buf *b) {
    if (a->rank != b->rank) return 0;
    for (int d = 0; d < a->rank; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

template <typename T, typename O, typename F>
kb_status run_unary(const kb_exec *ex, const kb_buf *in, kb_buf *out, F f) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    int64_t n = out->size;
    if (n == 0) return KB_OK;
    KB_TRY(kb_cuda_bind(dev));
    constexpr int N = vec16<T>::N;
    int vec = aligned(in[0].data, 16) && aligned(out->data, sizeof(O) * N);
    int64_t work = vec ? (n + N - 1) / N : n;
    k_unary<T, O, F><<<kb_blocks(dev, work, KB_THREADS), KB_THREADS, 0, dev->stream>>>(
        (const T *)in[0].data, (O *)out->data, n, vec, f);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

template <typename T, typename O, typename F>
kb_status run_binary(const kb_exec *ex, const kb_buf *in, kb_buf *out, F f) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    int64_t n = out->size;
    if (n == 0) return KB_OK;
    KB_TRY(kb_cuda_bind(dev));
    const T *a = (const T *)in[0].data, *b = (const T *)in[1].data;
    O *y = (O *)out->data;
    if (in[0].size == n && in[1].size == n && same_shape(&in[0], out) && same_shape(&in[1], out)) {
        constexpr int N = vec16<T>::N;
        int vec = aligned(a, 16) && aligned(b, 16) && aligned(y, sizeof(O) * N);
        int64_t work = vec ? (n + N - 1) / N : n;
        k_binary_flat<T, O, F><<<kb_blocks(dev, work, KB_THREADS), KB_THREADS, 0, dev->stream>>>(a, b, y, n, vec, f);
    } else {
        int64_t sa[KB_MAX_RANK], sb[KB_MAX_RANK];
        if (in[0].rank > out->rank || in[1].rank > out->rank)
            return kb_set_error(KB_ERR_SHAPE, "%s: input rank exceeds output rank", ex->op ? ex->op : "binary");
        kb_bcast_strides(in[0].shape, in[0].rank, out->shape, out->rank, sa);
        kb_bcast_strides(in[1].shape, in[1].rank, out->shape, out->rank, sb);
        const int64_t *st[2] = {sa, sb};
        kb_imap m = kb_imap_make(out->shape, out->rank, st, 2);
        k_binary_bcast<T, O, F><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>(a, b, y, n, m, f);
    }
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

/* Which input dtypes an op takes (its infer rule already checked; this guards the launcher). */
enum types { FLOATS, NUMERIC, ANY };

static const char *types_text(types ts) {
    return ts == FLOATS    ? "float16, bfloat16, float32 or float64"
           : ts == NUMERIC ? "a float or int8/uint8/int32/int64"
                           : "any dtype";
}

/* Instantiate only the dtypes of TS (a functor like f_exp has no integer form). */
template <types TS, typename F>
kb_status unary_dispatch(const kb_exec *ex, const kb_buf *in, kb_buf *out, F f) {
    kb_dtype dt = in[0].dtype;
    if (dt == KB_FLOAT16) return run_unary<__half, __half>(ex, in, out, f);
    if (dt == KB_BFLOAT16) return run_unary<__nv_bfloat16, __nv_bfloat16>(ex, in, out, f);
    if (dt == KB_FLOAT32) return run_unary<float, float>(ex, in, out, f);
    if (dt == KB_FLOAT64) return run_unary<double, double>(ex, in, out, f);
    if constexpr (TS != FLOATS) {
        if (dt == KB_INT8) return run_unary<int8_t, int8_t>(ex, in, out, f);
        if (dt == KB_UINT8) return run_unary<uint8_t, uint8_t>(ex, in, out, f);
        if (dt == KB_INT32) return run_unary<int32_t, int32_t>(ex, in, out, f);
        if (dt == KB_INT64) return run_unary<int64_t, int64_t>(ex, in, out, f);
    }
    return kb_cuda_dtype_error(ex, dt, types_text(TS));
}

/* CMP: the output is bool (one 0/1 byte) instead of the input type. */
template <typename T, bool CMP, typename F>
kb_status binary_t(const kb_exec *ex, const kb_buf *in, kb_buf *out, F f) {
    using O = typename std::conditional<CMP, uint8_t, T>::type;
    return run_binary<T, O>(ex, in, out, f);
}

template <types TS, bool CMP, typename F>
kb_status binary_dispatch(const kb_exec *ex, const kb_buf *in, kb_buf *out, F f) {
    kb_dtype dt = in[0].dtype;
    if (in[1].dtype != dt || (!CMP && out->dtype != dt) || (CMP && out->dtype != KB_BOOL))
        return kb_set_error(KB_ERR_DTYPE, "%s: operands must share one dtype", ex->op ? ex->op : "binary");
    if (dt == KB_FLOAT16) return binary_t<__half, CMP>(ex, in, out, f);
    if (dt == KB_BFLOAT16) return binary_t<__nv_bfloat16, CMP>(ex, in, out, f);
    if (dt == KB_FLOAT32) return binary_t<float, CMP>(ex, in, out, f);
    if (dt == KB_FLOAT64) return binary_t<double, CMP>(ex, in, out, f);
    if constexpr (TS != FLOATS) {
        if (dt == KB_INT8) return binary_t<int8_t, CMP>(ex, in, out, f);
        if (dt == KB_UINT8) return binary_t<uint8_t, CMP>(ex, in, out, f);
        if (dt == KB_INT32) return binary_t<int32_t, CMP>(ex, in, out, f);
        if (dt == KB_INT64) return binary_t<int64_t, CMP>(ex, in, out, f);
    }
    if constexpr (TS == ANY) {
        if (dt == KB_BOOL) return binary_t<uint8_t, CMP>(ex, in, out, f); /* 0/1 bytes compare as such */
    }
    return kb_cuda_dtype_error(ex, dt, types_text(TS));
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

#define KB_UNARY(name, TS, F)                                                                    \
    extern "C" kb_status kb_cuda_##name(const kb_exec *ex, const kb_attrs *a, const kb_buf *in,   \
                                        int n_in, kb_buf *out) {                                 \
        (void)a;                                                                                 \
        (void)n_in;                                                                              \
        return unary_dispatch<TS>(ex, in, out, F());                                      \
    }
#define KB_BINARY(name, TS, CMP, F)                                                              \
    extern "C" kb_status kb_cuda_##name(const kb_exec *ex, const kb_attrs *a, const kb_buf *in,   \
                                        int n_in, kb_buf *out) {                                 \
        (void)a;                                                                                 \
        (void)n_in;                                                                              \
        return binary_dispatch<TS, CMP>(ex, in, out, F());                                       \
    }

KB_BINARY(add, NUMERIC, false, f_add)
KB_BINARY(subtract, NUMERIC, false, f_sub)
KB_BINARY(multiply, NUMERIC, false, f_mul)
KB_BINARY(divide, FLOATS, false, f_div)
KB_BINARY(maximum, NUMERIC, false, f_max)
KB_BINARY(minimum, NUMERIC, false, f_min)
KB_BINARY(sqrt_grad, FLOATS, false, f_sqrt_grad)
KB_BINARY(equal, ANY, true, f_eq)
KB_BINARY(not_equal, ANY, true, f_ne)
KB_BINARY(greater, NUMERIC, true, f_gt)
KB_BINARY(greater_equal, NUMERIC, true, f_ge)
KB_BINARY(less, NUMERIC, true, f_lt)
KB_BINARY(less_equal, NUMERIC, true, f_le)
KB_UNARY(negative, NUMERIC, f_neg)
KB_UNARY(square, NUMERIC, f_square)
KB_UNARY(abs, NUMERIC, f_abs)
KB_UNARY(sign, NUMERIC, f_sign)
KB_UNARY(exp, FLOATS, f_exp)
KB_UNARY(log, FLOATS, f_log)
KB_UNARY(sqrt, FLOATS, f_sqrt)
KB_UNARY(sin, FLOATS, f_sin)
KB_UNARY(cos, FLOATS, f_cos)
KB_UNARY(round, FLOATS, f_round)

/* attrs.value: the exponent. */
extern "C" kb_status kb_cuda_pow(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    f_pow f;
    f.a = a->value;
    return unary_dispatch<FLOATS>(ex, in, out, f);
}

/* attrs.lo / attrs.hi: the bounds. */
extern "C" kb_status kb_cuda_clip(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                  kb_buf *out) {
    (void)n_in;
    f_clip f;
    f.lo = a->lo;
    f.hi = a->hi;
    return unary_dispatch<FLOATS>(ex, in, out, f);
}

extern "C" kb_status kb_cuda_clip_grad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                       kb_buf *out) {
    (void)n_in;
    f_clip_grad f;
    f.lo = a->lo;
    f.hi = a->hi;
    return binary_dispatch<FLOATS, false>(ex, in, out, f);
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

/* ------------------------------------------------------------------------------------------ */
/* select(cond, a, b) = cond ? a : b (tf.where): a copy, so every dtype runs as an unsigned    */
/* integer of its size (bit-exact). Bytes moved: n * (1 + 3 * sizeof T) at most (broadcast     */
/* operands are re-read from cache). attrs.i64[0] = 1 aligns cond to the leading axes of out   */
/* (trailing 1s), 0 right-aligns it (numpy).                                                   */
/* ------------------------------------------------------------------------------------------ */

namespace {

/* Equal-shape a, b, out; cond of the same size (cs = 1) or a single value (cs = 0). */
template <typename T>
__global__ void k_select_flat(const uint8_t *__restrict__ c, const T *__restrict__ a, const T *__restrict__ b,
                              T *__restrict__ y, int64_t n, int64_t cs) {
    KB_GRID_LOOP(i, n) y[i] = c[i * cs] ? a[i] : b[i];
}

template <typename T>
__global__ void k_select_bcast(const uint8_t *__restrict__ c, const T *__restrict__ a, const T *__restrict__ b,
                               T *__restrict__ y, int64_t n, kb_imap m) {
    KB_GRID_LOOP(i, n) {
        int64_t j = i, oc = 0, oa = 0, ob = 0;
        for (int d = m.rank - 1; d >= 0; d--) {
            int64_t q = j / m.dims[d];
            int64_t r = j - q * m.dims[d];
            oc += r * m.strides[0][d];
            oa += r * m.strides[1][d];
            ob += r * m.strides[2][d];
            j = q;
        }
        y[i] = c[oc] ? a[oa] : b[ob];
    }
}

template <typename T>
kb_status run_select(const kb_exec *ex, const kb_attrs *at, const kb_buf *in, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    int64_t n = out->size;
    if (n == 0) return KB_OK;
    KB_TRY(kb_cuda_bind(dev));
    const uint8_t *c = (const uint8_t *)in[0].data;
    const T *a = (const T *)in[1].data, *b = (const T *)in[2].data;
    T *y = (T *)out->data;
    /* cond's shape at out's rank (leading alignment pads trailing 1s) */
    int64_t cshape[KB_MAX_RANK];
    int crank = in[0].rank;
    for (int d = 0; d < crank; d++) cshape[d] = in[0].shape[d];
    if (at->i64[0]) {
        if (crank > out->rank)
            return kb_set_error(KB_ERR_SHAPE, "%s: condition rank exceeds the output's", ex->op ? ex->op : "select");
        for (int d = crank; d < out->rank; d++) cshape[d] = 1;
        crank = out->rank;
    }
    if (crank > out->rank || in[1].rank > out->rank || in[2].rank > out->rank)
        return kb_set_error(KB_ERR_SHAPE, "%s: input rank exceeds output rank", ex->op ? ex->op : "select");
    if (same_shape(&in[1], out) && same_shape(&in[2], out) && (in[0].size == 1 || in[0].size == n)) {
        /* a cond of n elements broadcast to out must have out's shape up to size-1 dims: same order */
        k_select_flat<T><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>(c, a, b, y, n,
                                                                                      in[0].size == 1 ? 0 : 1);
    } else {
        int64_t sc[KB_MAX_RANK], sa[KB_MAX_RANK], sb[KB_MAX_RANK];
        kb_bcast_strides(cshape, crank, out->shape, out->rank, sc);
        kb_bcast_strides(in[1].shape, in[1].rank, out->shape, out->rank, sa);
        kb_bcast_strides(in[2].shape, in[2].rank, out->shape, out->rank, sb);
        const int64_t *st[3] = {sc, sa, sb};
        kb_imap m = kb_imap_make(out->shape, out->rank, st, 3);
        k_select_bcast<T><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>(c, a, b, y, n, m);
    }
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

} /* namespace */

extern "C" kb_status kb_cuda_select(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    if (in[0].dtype != KB_BOOL || in[1].dtype != out->dtype || in[2].dtype != out->dtype)
        return kb_set_error(KB_ERR_DTYPE, "%s: select takes a bool condition and two operands of the output's dtype",
                            ex->op ? ex->op : "select");
    switch (kb_dtype_size(out->dtype)) {
    case 1: return run_select<uint8_t>(ex, a, in, out);
    case 2: return run_select<uint16_t>(ex, a, in, out);
    case 4: return run_select<uint32_t>(ex, a, in, out);
    case 8: return run_select<uint64_t>(ex, a, in, out);
    default: return kb_cuda_dtype_error(ex, out->dtype, "any dtype");
    }
}
