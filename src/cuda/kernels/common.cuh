/*
 * Helpers shared by the CUDA kernel files: launch sizing, grid-stride loops, dtype dispatch,
 * device-side dtype conversion (all 9 kb dtypes), float math overloads, and index maps.
 *
 * Index maps (kb_imap): an output iteration space (dims, C order) and, per operand, the stride
 * of each output dim in that operand (0 = broadcast). Built on the host, coalesced (size-1 dims
 * dropped, contiguous runs merged) and passed to kernels by value: no device memory, so every
 * launch is capture-safe.
 */
#ifndef KB_CUDA_COMMON_CUH
#define KB_CUDA_COMMON_CUH

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "cuda/cuda_internal.h"

#define KB_THREADS 256

/* for (int64_t i = ...; i < n; i += stride) over the whole grid. */
#define KB_GRID_LOOP(i, n)                                                              \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (int64_t)(n); \
         i += (int64_t)blockDim.x * gridDim.x)

/* Blocks for n work items of `per_block` each: ceil(n / per_block), capped at sm_count * 32
 * (grid-stride loops cover the rest), at least 1. */
static inline unsigned kb_blocks(const struct kb_cuda_device *dev, int64_t n, int64_t per_block) {
    int64_t b = (n + per_block - 1) / per_block;
    int64_t cap = dev->max_blocks > 0 ? dev->max_blocks : 1024;
    if (b > cap) b = cap;
    if (b < 1) b = 1;
    return (unsigned)b;
}

/* Error for an unsupported dtype in a launcher. */
static inline kb_status kb_cuda_dtype_error(const kb_exec *ex, kb_dtype dt, const char *what) {
    const char *n = kb_dtype_name(dt);
    return kb_set_error(KB_ERR_DTYPE, "%s: dtype %s is not supported on CUDA (%s)",
                        ex && ex->op ? ex->op : "op", n ? n : "invalid", what);
}

/* Dispatch a template FN<T>(args...) on a float dtype (float32, float64). */
#define KB_DISPATCH_FLOAT(ex, dt, FN, ...)                                 \
    do {                                                                   \
        switch (dt) {                                                      \
        case KB_FLOAT32: return FN<float>(__VA_ARGS__);                    \
        case KB_FLOAT64: return FN<double>(__VA_ARGS__);                   \
        default: return kb_cuda_dtype_error(ex, dt, "float32 or float64"); \
        }                                                                  \
    } while (0)

/* bool is stored as one byte 0/1; a distinct type so conversions can tell it from uint8. */
struct kb_bool8 {
    uint8_t v;
};

/* Dispatch FN<T>(args...) on any of the 9 dtypes. */
#define KB_DISPATCH_ALL(ex, dt, FN, ...)                                   \
    do {                                                                   \
        switch (dt) {                                                      \
        case KB_FLOAT16: return FN<__half>(__VA_ARGS__);                   \
        case KB_BFLOAT16: return FN<__nv_bfloat16>(__VA_ARGS__);           \
        case KB_FLOAT32: return FN<float>(__VA_ARGS__);                    \
        case KB_FLOAT64: return FN<double>(__VA_ARGS__);                   \
        case KB_INT8: return FN<int8_t>(__VA_ARGS__);                      \
        case KB_UINT8: return FN<uint8_t>(__VA_ARGS__);                    \
        case KB_INT32: return FN<int32_t>(__VA_ARGS__);                    \
        case KB_INT64: return FN<int64_t>(__VA_ARGS__);                    \
        case KB_BOOL: return FN<kb_bool8>(__VA_ARGS__);                    \
        default: return kb_cuda_dtype_error(ex, dt, "invalid dtype");      \
        }                                                                  \
    } while (0)

/* ------------------------------------------------------------------------------------------ */
/* Conversion between dtypes (device), mirroring core/dtype.c (kb_load_f64 / kb_store_f64 /    */
/* kb_convert) so CPU and GPU casts agree bit for bit:                                         */
/*   load: any dtype -> double (bool -> 0/1);                                                  */
/*   store: double -> float16/bfloat16 via float, round to nearest even; float/double by C     */
/*   cast; integers truncate toward zero and saturate, NaN -> 0; bool = (v != 0);             */
/*   int64 -> non-float dtypes and non-float dtypes -> int64 stay exact (C integer casts).     */
/* ------------------------------------------------------------------------------------------ */

template <typename T> struct kb_is_floatish {
    static constexpr bool value = std::is_same<T, float>::value || std::is_same<T, double>::value ||
                                  std::is_same<T, __half>::value || std::is_same<T, __nv_bfloat16>::value;
};

template <typename S>
__host__ __device__ __forceinline__ double kb_dev_load(S x) {
    if constexpr (std::is_same<S, __half>::value) return (double)__half2float(x);
    else if constexpr (std::is_same<S, __nv_bfloat16>::value) return (double)__bfloat162float(x);
    else if constexpr (std::is_same<S, kb_bool8>::value) return x.v != 0 ? 1.0 : 0.0;
    else return (double)x;
}

/* Saturating float -> integer as dtype.c's to_i64: NaN -> 0, clamp to [lo, hi], truncate. */
__host__ __device__ __forceinline__ int64_t kb_sat_i64(double v, double lo, double hi) {
    if (v != v) return 0;
    if (v <= lo) return (int64_t)lo;
    if (v >= hi) return (int64_t)hi;
    return (int64_t)v;
}

template <typename D>
__host__ __device__ __forceinline__ D kb_dev_store(double v) {
    if constexpr (std::is_same<D, __half>::value) return __float2half_rn((float)v);
    else if constexpr (std::is_same<D, __nv_bfloat16>::value) return __float2bfloat16_rn((float)v);
    else if constexpr (std::is_same<D, float>::value) return (float)v;
    else if constexpr (std::is_same<D, double>::value) return v;
    else if constexpr (std::is_same<D, int8_t>::value) return (int8_t)kb_sat_i64(v, -128.0, 127.0);
    else if constexpr (std::is_same<D, uint8_t>::value) return (uint8_t)kb_sat_i64(v, 0.0, 255.0);
    else if constexpr (std::is_same<D, int32_t>::value) return (int32_t)kb_sat_i64(v, -2147483648.0, 2147483647.0);
    else if constexpr (std::is_same<D, int64_t>::value)
        return kb_sat_i64(v, -9223372036854775808.0, 9223372036854774784.0);
    else {
        static_assert(std::is_same<D, kb_bool8>::value, "unknown dtype");
        kb_bool8 b;
        b.v = v != 0.0 ? 1 : 0;
        return b;
    }
}

template <typename D, typename S>
__host__ __device__ __forceinline__ D kb_convert(S s) {
    if constexpr (std::is_same<S, int64_t>::value && !kb_is_floatish<D>::value) {
        if constexpr (std::is_same<D, kb_bool8>::value) {
            kb_bool8 b;
            b.v = s != 0 ? 1 : 0;
            return b;
        } else {
            return (D)s; /* C integer conversion (wraps), as dtype.c */
        }
    } else if constexpr (std::is_same<D, int64_t>::value && !kb_is_floatish<S>::value) {
        return (int64_t)kb_dev_load(s); /* exact for int8/uint8/int32/bool */
    } else {
        return kb_dev_store<D>(kb_dev_load(s));
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Float math overloads (no fast-math: IEEE NaN/Inf behaviour)                                 */
/* ------------------------------------------------------------------------------------------ */

__device__ __forceinline__ float kb_exp(float x) { return expf(x); }
__device__ __forceinline__ double kb_exp(double x) { return exp(x); }
__device__ __forceinline__ float kb_log(float x) { return logf(x); }
__device__ __forceinline__ double kb_log(double x) { return log(x); }
__device__ __forceinline__ float kb_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double kb_sqrt(double x) { return sqrt(x); }
/* Products and quotients rounded on their own (no FMA contraction), as the CPU computes them. */
__device__ __forceinline__ float kb_mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double kb_mul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float kb_div(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double kb_div(double a, double b) { return __ddiv_rn(a, b); }
__device__ __forceinline__ float kb_add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double kb_add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float kb_sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double kb_sub(double a, double b) { return __dsub_rn(a, b); }

/* max that propagates NaN: the result is NaN if either is. */
template <typename T>
__device__ __forceinline__ T kb_max_nan(T a, T b) {
    if (a != a) return a;
    if (b != b) return b;
    return b > a ? b : a;
}

/* ------------------------------------------------------------------------------------------ */
/* Index maps                                                                                  */
/* ------------------------------------------------------------------------------------------ */

#define KB_IMAP_OPS 3 /* operands one map serves: binary ops (2), select (cond, a, b) */

struct kb_imap {
    int rank;                               /* after coalescing; 0 = a single element */
    int64_t dims[KB_MAX_RANK];
    int64_t strides[KB_IMAP_OPS][KB_MAX_RANK];
};

/* Contiguous C-order strides of a shape. */
static inline void kb_contig_strides(const int64_t *shape, int rank, int64_t *strides) {
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) {
        strides[d] = s;
        s *= shape[d];
    }
}

/* Strides of `in` (rank in_rank) seen through an output of rank out_rank under numpy
 * broadcasting (right-aligned; a size-1 or missing dim has stride 0). */
static inline void kb_bcast_strides(const int64_t *in_shape, int in_rank, const int64_t *out_shape,
                                    int out_rank, int64_t *strides) {
    int64_t cs[KB_MAX_RANK];
    kb_contig_strides(in_shape, in_rank, cs);
    int lead = out_rank - in_rank;
    for (int d = 0; d < out_rank; d++) {
        int k = d - lead;
        if (k < 0 || (in_shape[k] == 1 && out_shape[d] != 1)) strides[d] = 0;
        else strides[d] = cs[k];
    }
}

/* Drop size-1 dims and merge runs that are contiguous in every operand. `strides[op][d]` are
 * given per output dim; nops <= KB_IMAP_OPS. */
static inline kb_imap kb_imap_make(const int64_t *dims, int rank, const int64_t *const *strides, int nops) {
    kb_imap m;
    memset(&m, 0, sizeof m);
    int r = 0;
    for (int d = 0; d < rank; d++) {
        if (dims[d] == 1) continue;
        if (r > 0) {
            int ok = 1;
            for (int o = 0; o < nops; o++)
                if (m.strides[o][r - 1] != strides[o][d] * dims[d]) ok = 0;
            if (ok) {
                m.dims[r - 1] *= dims[d];
                for (int o = 0; o < nops; o++) m.strides[o][r - 1] = strides[o][d];
                continue;
            }
        }
        m.dims[r] = dims[d];
        for (int o = 0; o < nops; o++) m.strides[o][r] = strides[o][d];
        r++;
    }
    m.rank = r;
    return m;
}

/* Offset of linear output index i in operand `op`. */
template <int OP>
__host__ __device__ __forceinline__ int64_t kb_imap_offset(const kb_imap &m, int64_t i) {
    int64_t off = 0;
    for (int d = m.rank - 1; d >= 0; d--) {
        int64_t n = m.dims[d];
        int64_t q = i / n;
        off += (i - q * n) * m.strides[OP][d];
        i = q;
    }
    return off;
}

/* Both operands' offsets at once (one div/mod chain). */
__host__ __device__ __forceinline__ void kb_imap_offsets2(const kb_imap &m, int64_t i, int64_t &o0, int64_t &o1) {
    int64_t a = 0, b = 0;
    for (int d = m.rank - 1; d >= 0; d--) {
        int64_t n = m.dims[d];
        int64_t q = i / n;
        int64_t c = i - q * n;
        a += c * m.strides[0][d];
        b += c * m.strides[1][d];
        i = q;
    }
    o0 = a;
    o1 = b;
}

/* ------------------------------------------------------------------------------------------ */
/* Reduction plans: input viewed as kept dims x reduced dims                                   */
/* ------------------------------------------------------------------------------------------ */

struct kb_rplan {
    kb_imap kept;   /* iteration over output elements (C order of the kept dims), op 0 = input */
    kb_imap red;    /* iteration over one group (C order of the reduced dims), op 0 = input */
    int64_t n_out;  /* number of groups = output elements */
    int64_t R;      /* elements per group */
};

/* Plan for reducing a contiguous input of `shape` over the dims set in `mask`. */
static inline kb_rplan kb_rplan_make(const int64_t *shape, int rank, uint32_t mask) {
    int64_t cs[KB_MAX_RANK];
    kb_contig_strides(shape, rank, cs);
    int64_t kd[KB_MAX_RANK], ks[KB_MAX_RANK], rd[KB_MAX_RANK], rs[KB_MAX_RANK];
    int nk = 0, nr = 0;
    int64_t n_out = 1, R = 1;
    for (int d = 0; d < rank; d++) {
        if (mask & (1u << d)) {
            rd[nr] = shape[d];
            rs[nr++] = cs[d];
            R *= shape[d];
        } else {
            kd[nk] = shape[d];
            ks[nk++] = cs[d];
            n_out *= shape[d];
        }
    }
    const int64_t *kp[1] = {ks}, *rp[1] = {rs};
    kb_rplan p;
    p.kept = kb_imap_make(kd, nk, kp, 1);
    p.red = kb_imap_make(rd, nr, rp, 1);
    p.n_out = n_out;
    p.R = R;
    return p;
}

/* ------------------------------------------------------------------------------------------ */
/* Warp / block reductions                                                                     */
/* ------------------------------------------------------------------------------------------ */

struct kb_op_sum {
    template <typename T> __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct kb_op_max {
    template <typename T> __device__ __forceinline__ T operator()(T a, T b) const { return kb_max_nan(a, b); }
};

/* Reduce v over groups of G consecutive lanes (G a power of two <= 32); all lanes get the result. */
template <int G, typename T, typename Op>
__device__ __forceinline__ T kb_group_reduce(T v, Op op) {
#pragma unroll
    for (int o = G / 2; o > 0; o /= 2) v = op(v, __shfl_xor_sync(0xffffffffu, v, o, G));
    return v;
}

/* Reduce v over the whole block (blockDim.x a multiple of 32, <= 1024); every thread gets the
 * result. `sh` holds 32 T. Contains __syncthreads: call from all threads of the block. */
template <typename T, typename Op>
__device__ __forceinline__ T kb_block_reduce(T v, Op op, T identity, T *sh) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = kb_group_reduce<32>(v, op);
    __syncthreads(); /* sh may still be read by a previous call */
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : identity;
    v = kb_group_reduce<32>(v, op);
    return v;
}

/* Scratch buffers of one launch from the device pool (kb_cuda_scratch_alloc), freed
 * (stream-ordered, after the enqueued work) when the set goes out of scope, on every return. */
struct kb_scratch_set {
    kb_cuda_device *dev;
    void *p[24] = {};
    int n = 0;
    explicit kb_scratch_set(kb_cuda_device *d) : dev(d) {}
    ~kb_scratch_set() {
        for (int i = 0; i < n; ++i) kb_cuda_scratch_free(dev, p[i]);
    }
    kb_status get(size_t bytes, void **out) {
        *out = nullptr;
        if (bytes == 0) return KB_OK;
        if (n == (int)(sizeof p / sizeof p[0]))
            return kb_set_error(KB_ERR_INTERNAL, "kb_scratch_set: more scratch buffers than one launch keeps");
        KB_TRY(kb_cuda_scratch_alloc(dev, bytes, out));
        p[n++] = *out;
        return KB_OK;
    }
    kb_scratch_set(const kb_scratch_set &) = delete;
    kb_scratch_set &operator=(const kb_scratch_set &) = delete;
};

#endif
