/*
 * Reduction kernels: sum, mean, max, min, prod, any, all, logsumexp over any set of axes
 * (a->axes_mask); argmax / argmin along one axis; the inclusive scans cumsum / cumprod; and
 * max_grad, sum_like (sum a broadcast gradient back to a shape) and broadcast_like (its adjoint).
 *
 * dtypes: float16, bfloat16, float32, float64 (loaded to double, accumulated in double as the
 * CPU reference does, rounded once at the store) and int32 / int64 (accumulated in 64 bits,
 * sums and products wrap); any / all take every dtype and write bool.
 *
 * One reducer object per op (init / push one element / combine two partials / finish) runs in
 * one of three kernels, picked from the reduction plan (kb_rplan: kept dims x reduced dims):
 *   rows: the reduced dims are the contiguous innermost block (sum over the last axis): G = 32
 *         (a warp per row) or a whole block per row for long rows or few rows; 16-byte vector
 *         loads when the rows are 16-byte aligned;
 *   cols: the reduced dims sit between outer kept dims and a contiguous inner kept block of N
 *         (sum over the first axis): threads of a block walk TX adjacent columns (coalesced) and
 *         split the reduced dim TY ways, combined in shared memory in a fixed order;
 *   generic: any other mask, through index maps (a thread, a warp or a block per output).
 * Every output is reduced inside one block, in a fixed order, without atomics: results are
 * deterministic. A whole-tensor reduction therefore runs on one block (no device workspace to
 * hold per-block partials; see the family's report).
 *
 * Empty groups give sum 0, prod 1, mean NaN (integers: 0), max -inf / min +inf (integers: the
 * type's lowest / highest value), logsumexp -inf, any false, all true. max / min propagate NaN;
 * argmax / argmin take the first index of the extremum, NaN counting as the extremum (numpy).
 */
#include "cuda/kernels/common.cuh"

namespace {

/* ---- element values: floats as double, integers as 64-bit ----------------------------------- */

template <typename T> constexpr bool is_int_v = std::is_same<T, int32_t>::value || std::is_same<T, int64_t>::value;

template <typename T> struct Val {
    using V = double;            /* a loaded element */
    using S = double;            /* a sum or product */
};
template <> struct Val<int32_t> {
    using V = long long;
    using S = unsigned long long; /* wraps on overflow */
};
template <> struct Val<int64_t> {
    using V = long long;
    using S = unsigned long long;
};

template <typename T> __device__ __forceinline__ typename Val<T>::V ldv(T x) {
    if constexpr (is_int_v<T>) return (long long)x;
    else return kb_dev_load(x);
}
/* Store a sum / product / extremum: floats rounded once, integers keep their low bits. */
template <typename T, typename A> __device__ __forceinline__ T stv(A v) {
    if constexpr (std::is_same<T, int32_t>::value) return (int32_t)(uint32_t)(unsigned long long)v;
    else if constexpr (std::is_same<T, int64_t>::value) return (int64_t)v;
    else return kb_dev_store<T>((double)v);
}

template <typename V> __device__ __forceinline__ bool is_nan(V v) {
    if constexpr (std::is_floating_point<V>::value) return v != v;
    else return false;
}

/* Shuffles of the accumulator types (plain scalars, or the structs below field by field). */
struct LseAcc {
    double m, s; /* running max and sum of exp(x - m) */
};
template <typename V> struct ArgAcc {
    V v;
    long long i; /* -1: no element yet */
};
template <typename A> __device__ __forceinline__ A shfl_xor(A a, int o) {
    if constexpr (std::is_same<A, LseAcc>::value) {
        return LseAcc{__shfl_xor_sync(0xffffffffu, a.m, o), __shfl_xor_sync(0xffffffffu, a.s, o)};
    } else if constexpr (std::is_same<A, ArgAcc<double>>::value || std::is_same<A, ArgAcc<long long>>::value) {
        A r;
        r.v = __shfl_xor_sync(0xffffffffu, a.v, o);
        r.i = __shfl_xor_sync(0xffffffffu, a.i, o);
        return r;
    } else {
        return __shfl_xor_sync(0xffffffffu, a, o);
    }
}

/* ---- reducers ------------------------------------------------------------------------------ */

enum { K_SUM, K_MEAN, K_SCALE, K_PROD, K_MAX, K_MIN };

/* sum / mean / scaled sum / prod / max / min of T; out is T. */
template <typename T, int K> struct RArith {
    using Out = T;
    using A = typename std::conditional<K == K_MAX || K == K_MIN, typename Val<T>::V, typename Val<T>::S>::type;
    int64_t count; /* elements per group (mean) */
    double scale;  /* K_SCALE */
    __device__ A init() const {
        if constexpr (K == K_PROD) return (A)1;
        else if constexpr (K == K_MAX && is_int_v<T>) return (A)(sizeof(T) == 4 ? INT32_MIN : INT64_MIN);
        else if constexpr (K == K_MIN && is_int_v<T>) return (A)(sizeof(T) == 4 ? INT32_MAX : INT64_MAX);
        else if constexpr (K == K_MAX) return (A)-INFINITY;
        else if constexpr (K == K_MIN) return (A)INFINITY;
        else return (A)0;
    }
    __device__ A comb(A a, A b) const {
        if constexpr (K == K_PROD) return a * b;
        else if constexpr (K == K_MAX) return (is_nan(a) || b < a) ? a : (is_nan(b) || b > a) ? b : a;
        else if constexpr (K == K_MIN) return (is_nan(a) || b > a) ? a : (is_nan(b) || b < a) ? b : a;
        else return a + b;
    }
    __device__ A push(A a, T x, int64_t) const { return comb(a, (A)ldv(x)); }
    __device__ Out fin(A a) const {
        if constexpr (K == K_MEAN) {
            if constexpr (is_int_v<T>) return (T)(count ? (long long)a / count : 0);
            else return kb_dev_store<T>((double)a / (double)count); /* empty: 0/0 = NaN */
        } else if constexpr (K == K_SCALE) {
            return kb_dev_store<T>((double)a * scale);
        } else {
            return stv<T>(a);
        }
    }
};

/* any / all of any dtype: nonzero (and NaN) is true. */
template <typename T, bool ALL> struct RBool {
    using Out = uint8_t;
    using A = int;
    __device__ A init() const { return ALL ? 1 : 0; }
    __device__ A comb(A a, A b) const { return ALL ? (a & b) : (a | b); }
    __device__ A push(A a, T x, int64_t) const { return comb(a, kb_dev_load(x) != 0.0 ? 1 : 0); }
    __device__ Out fin(A a) const { return (uint8_t)a; }
};

/* logsumexp (online max shift, one exp per element); TF's result: NaN if any NaN, +inf if any
 * +inf, -inf for an all -inf or empty group, else m + log(sum exp(x - m)). */
template <typename T> struct RLse {
    using Out = T;
    using A = LseAcc;
    __device__ A init() const { return LseAcc{-(double)INFINITY, 0.0}; }
    __device__ A comb(A a, A b) const {
        if (a.m != a.m || b.m != b.m) return LseAcc{(double)NAN, 0.0};
        if (a.m == -(double)INFINITY) return b;
        if (b.m == -(double)INFINITY) return a;
        if (a.m == (double)INFINITY || b.m == (double)INFINITY) return LseAcc{(double)INFINITY, 1.0};
        double m = a.m > b.m ? a.m : b.m;
        return LseAcc{m, a.s * exp(a.m - m) + b.s * exp(b.m - m)};
    }
    __device__ A push(A a, T x, int64_t) const {
        double v = kb_dev_load(x);
        if (v > a.m && v < (double)INFINITY && a.m == a.m) return LseAcc{v, a.s * exp(a.m - v) + 1.0};
        if (v <= a.m && v > -(double)INFINITY && a.m < (double)INFINITY) return LseAcc{a.m, a.s + exp(v - a.m)};
        return comb(a, LseAcc{v, 1.0}); /* NaN, +-inf on either side */
    }
    __device__ Out fin(A a) const {
        if (a.m != a.m || a.m == (double)INFINITY || a.m == -(double)INFINITY) return kb_dev_store<T>(a.m);
        return kb_dev_store<T>(a.m + log(a.s));
    }
};

/* argmax / argmin: (value, index), ties and NaN resolved by the smaller index. */
template <typename T, bool MIN> struct RArg {
    using Out = int64_t;
    using V = typename Val<T>::V;
    using A = ArgAcc<V>;
    __device__ A init() const { return A{(V)0, -1}; }
    __device__ A comb(A a, A b) const {
        if (a.i < 0) return b;
        if (b.i < 0) return a;
        bool an = is_nan(a.v), bn = is_nan(b.v);
        bool a_first = a.i < b.i;
        if (an || bn) return an && (!bn || a_first) ? a : b;
        if (a.v == b.v) return a_first ? a : b;
        return (MIN ? a.v < b.v : a.v > b.v) ? a : b;
    }
    __device__ A push(A a, T x, int64_t j) const { return comb(a, A{ldv(x), (long long)j}); }
    __device__ Out fin(A a) const { return (int64_t)a.i; }
};

/* ---- group combines ------------------------------------------------------------------------ */

template <int G, typename Rd, typename A>
__device__ __forceinline__ A warp_comb(const Rd &rd, A a) {
#pragma unroll
    for (int o = G / 2; o > 0; o /= 2) a = rd.comb(a, shfl_xor(a, o));
    return a;
}
/* Whole block (blockDim.x a multiple of 32); the result is valid in thread 0. */
template <typename Rd, typename A>
__device__ __forceinline__ A block_comb(const Rd &rd, A a, A *sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    a = warp_comb<32>(rd, a);
    __syncthreads(); /* sh may still be read by the previous group */
    if (lane == 0) sh[warp] = a;
    __syncthreads();
    if (warp == 0) {
        a = lane < nw ? sh[lane] : rd.init();
        a = warp_comb<32>(rd, a);
    }
    return a;
}
template <int G, typename Rd, typename A>
__device__ __forceinline__ A group_comb(const Rd &rd, A a, A *sh) {
    if constexpr (G == 1) return a;
    else if constexpr (G == 32) return warp_comb<32>(rd, a);
    else return block_comb(rd, a, sh);
}

/* ---- kernels ------------------------------------------------------------------------------- */

/* rows: group o is x[o*R, o*R + R). G threads per row (32, or blockDim for G == 0). VEC: the row
 * start is 16-byte aligned and R a multiple of 16 / sizeof(T). */
template <typename T, typename Rd, int G, bool VEC>
__global__ void k_rows(const T *__restrict__ x, typename Rd::Out *__restrict__ y, int64_t n_out, int64_t R, Rd rd) {
    using A = typename Rd::A;
    __shared__ A sh[32];
    const int g = G ? G : (int)blockDim.x;
    const int lane = (int)(threadIdx.x % g);
    const int64_t slot = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / g;
    const int64_t nslots = ((int64_t)gridDim.x * blockDim.x) / g;
    constexpr int EPV = 16 / (int)sizeof(T);
    for (int64_t o = slot; o < n_out; o += nslots) {
        const T *xr = x + o * R;
        A acc = rd.init();
        if constexpr (VEC) {
            const uint4 *xv = reinterpret_cast<const uint4 *>(xr);
            const int64_t nv = R / EPV;
#pragma unroll 4
            for (int64_t q = lane; q < nv; q += g) {
                uint4 u = __ldg(xv + q);
                const T *e = reinterpret_cast<const T *>(&u);
#pragma unroll
                for (int k = 0; k < EPV; ++k) acc = rd.push(acc, e[k], q * EPV + k);
            }
        } else {
#pragma unroll 4
            for (int64_t j = lane; j < R; j += g) acc = rd.push(acc, xr[j], j);
        }
        constexpr int GC = G ? G : 256; /* G == 0: the whole block */
        acc = group_comb<GC>(rd, acc, sh);
        if (lane == 0) y[o] = rd.fin(acc);
    }
}

/* cols: x viewed as (Ko, R, N); output (Ko, N). Block (TX, TY): thread (tx, ty) of block
 * (bx, by) reduces rows ty, ty + TY, ... of column bx*TX + tx of slab by, by + gridDim.y, ...;
 * the TY partials are combined in row order through shared memory. */
template <typename T, typename Rd>
__global__ void k_cols(const T *__restrict__ x, typename Rd::Out *__restrict__ y, int64_t Ko, int64_t R, int64_t N,
                       Rd rd) {
    using A = typename Rd::A;
    extern __shared__ __align__(16) unsigned char smem[];
    A *sh = reinterpret_cast<A *>(smem);
    const int tx = (int)threadIdx.x, ty = (int)threadIdx.y, TX = (int)blockDim.x, TY = (int)blockDim.y;
    const int64_t n = (int64_t)blockIdx.x * TX + tx;
    for (int64_t ko = blockIdx.y; ko < Ko; ko += gridDim.y) {
        A acc = rd.init();
        if (n < N) {
            const T *xc = x + ko * R * N + n;
#pragma unroll 8
            for (int64_t r = ty; r < R; r += TY) acc = rd.push(acc, xc[r * N], r);
        }
        __syncthreads(); /* sh may still be read for the previous slab */
        sh[ty * TX + tx] = acc;
        __syncthreads();
        if (ty == 0 && n < N) {
            for (int k = 1; k < TY; ++k) acc = rd.comb(acc, sh[k * TX + tx]);
            y[ko * N + n] = rd.fin(acc);
        }
    }
}

/* generic: any mask, through the plan's index maps; G threads per output (1, 32, 256 = blockDim). */
template <typename T, typename Rd, int G>
__global__ void k_generic(const T *__restrict__ x, typename Rd::Out *__restrict__ y, kb_rplan p, Rd rd) {
    using A = typename Rd::A;
    __shared__ A sh[32];
    const int lane = (int)(threadIdx.x % G);
    const int64_t slot = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / G;
    const int64_t nslots = ((int64_t)gridDim.x * blockDim.x) / G;
    for (int64_t o = slot; o < p.n_out; o += nslots) {
        const T *xg = x + kb_imap_offset<0>(p.kept, o);
        A acc = rd.init();
        for (int64_t j = lane; j < p.R; j += G) acc = rd.push(acc, xg[kb_imap_offset<0>(p.red, j)], j);
        acc = group_comb<G>(rd, acc, sh);
        if (lane == 0) y[o] = rd.fin(acc);
    }
}

/* ---- reduction launcher -------------------------------------------------------------------- */

static uint32_t rank_mask(int rank) { return rank >= 32 ? 0xffffffffu : ((1u << rank) - 1u); }

static int64_t pow2_at_least(int64_t v) {
    int64_t p = 1;
    while (p < v) p *= 2;
    return p;
}

template <typename T, typename Rd>
kb_status run_reduce(const kb_exec *ex, const kb_buf *xb, kb_buf *out, uint32_t mask, Rd rd) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    using Out = typename Rd::Out;
    kb_rplan p = kb_rplan_make(xb->shape, xb->rank, mask & rank_mask(xb->rank));
    if (p.n_out != out->size)
        return kb_set_error(KB_ERR_SHAPE, "%s: output has %lld elements, the reduction gives %lld",
                            ex->op ? ex->op : "reduce", (long long)out->size, (long long)p.n_out);
    if (p.n_out == 0) return KB_OK;
    KB_TRY(kb_cuda_bind(dev));
    const T *x = (const T *)xb->data;
    Out *y = (Out *)out->data;
    cudaStream_t s = dev->stream;
    const int64_t R = p.R, few = (int64_t)dev->sm_count * 8;
    const bool rows = R > 1 && p.red.rank == 1 && p.red.strides[0][0] == 1 &&
                      (p.kept.rank == 0 || (p.kept.rank == 1 && p.kept.strides[0][0] == R));
    const int kl = p.kept.rank - 1;
    const bool cols = !rows && R > 1 && p.red.rank == 1 && p.kept.rank >= 1 && p.kept.rank <= 2 &&
                      p.kept.strides[0][kl] == 1 && p.red.strides[0][0] == p.kept.dims[kl] &&
                      (p.kept.rank == 1 || p.kept.strides[0][0] == R * p.kept.dims[kl]);
    if (rows) {
        const bool vec = ((uintptr_t)x % 16 == 0) && (R * (int64_t)sizeof(T)) % 16 == 0;
        if (R >= 4096 || (R >= 256 && p.n_out < few)) { /* a block per row */
            int threads = p.n_out < dev->sm_count ? 1024 : KB_THREADS;
            unsigned nb = kb_blocks(dev, p.n_out, 1);
            if (vec) k_rows<T, Rd, 0, true><<<nb, threads, 0, s>>>(x, y, p.n_out, R, rd);
            else k_rows<T, Rd, 0, false><<<nb, threads, 0, s>>>(x, y, p.n_out, R, rd);
        } else if (R >= 16) { /* a warp per row */
            unsigned nb = kb_blocks(dev, p.n_out, KB_THREADS / 32);
            if (vec) k_rows<T, Rd, 32, true><<<nb, KB_THREADS, 0, s>>>(x, y, p.n_out, R, rd);
            else k_rows<T, Rd, 32, false><<<nb, KB_THREADS, 0, s>>>(x, y, p.n_out, R, rd);
        } else { /* short rows: a thread per row */
            k_generic<T, Rd, 1><<<kb_blocks(dev, p.n_out, KB_THREADS), KB_THREADS, 0, s>>>(x, y, p, rd);
        }
    } else if (cols) {
        const int64_t N = p.kept.dims[kl], Ko = p.kept.rank == 2 ? p.kept.dims[0] : 1;
        /* Columns per block: 32 (128-byte rows of float32), halved while there are too few
         * blocks to fill the GPU, down to 8 (32-byte sectors); never more than N. */
        int64_t tx = 32;
        while (tx > 8 && ((N + tx - 1) / tx) * Ko < 2 * (int64_t)dev->sm_count) tx /= 2;
        if (tx > pow2_at_least(N)) tx = pow2_at_least(N);
        int64_t ty = 1024 / tx;
        if (ty > pow2_at_least(R)) ty = pow2_at_least(R);
        dim3 block((unsigned)tx, (unsigned)ty);
        int64_t gy = Ko < 65535 ? Ko : 65535;
        dim3 grid((unsigned)((N + tx - 1) / tx), (unsigned)gy);
        size_t shb = (size_t)(tx * ty) * sizeof(typename Rd::A);
        k_cols<T, Rd><<<grid, block, shb, s>>>(x, y, Ko, R, N, rd);
    } else {
        if (R >= 4096 || (R >= 256 && p.n_out < few))
            k_generic<T, Rd, 256><<<kb_blocks(dev, p.n_out, 1), KB_THREADS, 0, s>>>(x, y, p, rd);
        else if (R >= 16)
            k_generic<T, Rd, 32><<<kb_blocks(dev, p.n_out, KB_THREADS / 32), KB_THREADS, 0, s>>>(x, y, p, rd);
        else
            k_generic<T, Rd, 1><<<kb_blocks(dev, p.n_out, KB_THREADS), KB_THREADS, 0, s>>>(x, y, p, rd);
    }
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

static int64_t group_count(const kb_buf *x, uint32_t mask) {
    int64_t c = 1;
    for (int d = 0; d < x->rank; d++)
        if (mask & (1u << d)) c *= x->shape[d];
    return c;
}

template <int K> struct ArithOp {
    template <typename T> static kb_status run(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
        RArith<T, K> rd{group_count(&in[0], a->axes_mask), 1.0};
        return run_reduce<T>(ex, &in[0], out, a->axes_mask, rd);
    }
};
template <typename T> kb_status sum_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    return ArithOp<K_SUM>::run<T>(ex, a, in, out);
}
template <typename T> kb_status mean_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    return ArithOp<K_MEAN>::run<T>(ex, a, in, out);
}
template <typename T> kb_status max_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    return ArithOp<K_MAX>::run<T>(ex, a, in, out);
}
template <typename T> kb_status min_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    return ArithOp<K_MIN>::run<T>(ex, a, in, out);
}
template <typename T> kb_status prod_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    return ArithOp<K_PROD>::run<T>(ex, a, in, out);
}
template <typename T> kb_status logsumexp_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    return run_reduce<T>(ex, &in[0], out, a->axes_mask, RLse<T>{});
}
template <typename T> kb_status any_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    return run_reduce<T>(ex, &in[0], out, a->axes_mask, RBool<T, false>{});
}
template <typename T> kb_status all_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    return run_reduce<T>(ex, &in[0], out, a->axes_mask, RBool<T, true>{});
}
template <typename T> kb_status argmax_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    return run_reduce<T>(ex, &in[0], out, 1u << a->axis, RArg<T, false>{});
}
template <typename T> kb_status argmin_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    return run_reduce<T>(ex, &in[0], out, 1u << a->axis, RArg<T, true>{});
}

/* ---- scans --------------------------------------------------------------------------------- */

/* Running sum / product: floats in double, integers in wrapping 64 bits. */
template <typename T, bool PROD> struct Scan {
    using S = typename Val<T>::S;
    __device__ __forceinline__ static S id() { return (S)(PROD ? 1 : 0); }
    __device__ __forceinline__ static S op(S a, S b) { return PROD ? a * b : a + b; }
};

/* Scan along rows of L contiguous elements (the last axis): a warp per row, tiles of 32 * SK
 * elements. A tile is loaded coalesced into shared memory (padded: element e at e + e / SK, so
 * neither phase has bank conflicts for 4-byte types), each lane scans its SK consecutive
 * elements, a shuffle scan of the lane totals gives each lane's prefix, and the tile is stored
 * back coalesced. REV scans from the end. */
constexpr int SK = 8;
constexpr int SCAN_WARPS = KB_THREADS / 32;
template <typename T, bool PROD>
__global__ void k_scan_rows(const T *__restrict__ x, T *__restrict__ y, int64_t rows, int64_t L, int rev) {
    using Sc = Scan<T, PROD>;
    using S = typename Sc::S;
    __shared__ T tile[SCAN_WARPS][32 * (SK + 1)];
    const int lane = (int)(threadIdx.x & 31), w = (int)(threadIdx.x >> 5);
    T *t = tile[w];
    const int64_t warp0 = (int64_t)blockIdx.x * SCAN_WARPS + w, nwarps = (int64_t)gridDim.x * SCAN_WARPS;
    for (int64_t row = warp0; row < rows; row += nwarps) {
        const T *xr = x + row * L;
        T *yr = y + row * L;
        S carry = Sc::id();
        for (int64_t base = 0; base < L; base += 32 * SK) {
#pragma unroll
            for (int k = 0; k < SK; ++k) {
                int e = lane + 32 * k;
                int64_t gi = base + e;
                if (gi < L) t[e + e / SK] = xr[rev ? L - 1 - gi : gi];
            }
            __syncwarp();
            S part[SK];
            S run = Sc::id();
            const int64_t mine = base + (int64_t)lane * SK;
#pragma unroll
            for (int k = 0; k < SK; ++k) {
                if (mine + k < L) run = Sc::op(run, (S)ldv(t[lane * (SK + 1) + k]));
                part[k] = run;
            }
            S incl = run;
#pragma unroll
            for (int o = 1; o < 32; o *= 2) {
                S v = __shfl_up_sync(0xffffffffu, incl, o);
                if (lane >= o) incl = Sc::op(v, incl);
            }
            S excl = __shfl_up_sync(0xffffffffu, incl, 1);
            S prefix = lane == 0 ? carry : Sc::op(carry, excl);
#pragma unroll
            for (int k = 0; k < SK; ++k)
                if (mine + k < L) t[lane * (SK + 1) + k] = stv<T>(Sc::op(prefix, part[k]));
            carry = Sc::op(carry, __shfl_sync(0xffffffffu, incl, 31));
            __syncwarp();
#pragma unroll
            for (int k = 0; k < SK; ++k) {
                int e = lane + 32 * k;
                int64_t gi = base + e;
                if (gi < L) yr[rev ? L - 1 - gi : gi] = t[e + e / SK];
            }
            __syncwarp(); /* the next tile overwrites t */
        }
    }
}

/* Scan along a non-innermost axis: x viewed as (O, L, N), a thread per (o, n) column walking L
 * (adjacent threads read adjacent n: coalesced). */
template <typename T, bool PROD>
__global__ void k_scan_cols(const T *__restrict__ x, T *__restrict__ y, int64_t O, int64_t L, int64_t N, int rev) {
    using Sc = Scan<T, PROD>;
    KB_GRID_LOOP(c, O * N) {
        const int64_t base = (c / N) * L * N + c % N;
        typename Sc::S run = Sc::id();
        for (int64_t k = 0; k < L; ++k) {
            int64_t i = base + (rev ? L - 1 - k : k) * N;
            run = Sc::op(run, (typename Sc::S)ldv(x[i]));
            y[i] = stv<T>(run);
        }
    }
}

template <bool PROD> struct ScanOp {
    template <typename T> static kb_status run(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
        struct kb_cuda_device *dev = kb_cuda_dev(ex);
        const kb_buf *xb = &in[0];
        if (out->size == 0) return KB_OK;
        if (a->axis < 0 || a->axis >= xb->rank || out->size != xb->size)
            return kb_set_error(KB_ERR_SHAPE, "%s: scan axis %d does not fit the input", ex->op ? ex->op : "scan",
                                a->axis);
        int64_t O = 1, N = 1, L = xb->shape[a->axis];
        for (int d = 0; d < a->axis; d++) O *= xb->shape[d];
        for (int d = a->axis + 1; d < xb->rank; d++) N *= xb->shape[d];
        KB_TRY(kb_cuda_bind(dev));
        const T *x = (const T *)xb->data;
        T *y = (T *)out->data;
        int rev = a->i64[0] != 0;
        if (N == 1) {
            unsigned nb = kb_blocks(dev, O, SCAN_WARPS);
            k_scan_rows<T, PROD><<<nb, KB_THREADS, 0, dev->stream>>>(x, y, O, L, rev);
        } else {
            unsigned nb = kb_blocks(dev, O * N, KB_THREADS);
            k_scan_cols<T, PROD><<<nb, KB_THREADS, 0, dev->stream>>>(x, y, O, L, N, rev);
        }
        KB_CUDA_CHECK(cudaGetLastError());
        return KB_OK;
    }
};
template <typename T> kb_status cumsum_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    return ScanOp<false>::run<T>(ex, a, in, out);
}
template <typename T> kb_status cumprod_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    return ScanOp<true>::run<T>(ex, a, in, out);
}

/* ---- max_grad, sum_like, broadcast_like ---------------------------------------------------- */

/* max_grad: per group o, count the elements equal to y[o], then write dy[o]/count there and 0
 * elsewhere (in double, as the CPU). Every x element belongs to exactly one group, so all of dx
 * is written. Serves min too (y is then the minimum). */
template <typename T, int G>
__global__ void k_max_grad(const T *__restrict__ x, const T *__restrict__ y, const T *__restrict__ dy,
                           T *__restrict__ dx, kb_rplan p) {
    __shared__ long long sh[32];
    const int lane = (int)(threadIdx.x % G);
    const int64_t slot = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / G;
    const int64_t nslots = ((int64_t)gridDim.x * blockDim.x) / G;
    for (int64_t o = slot; o < p.n_out; o += nslots) {
        const int64_t base = kb_imap_offset<0>(p.kept, o);
        const double m = kb_dev_load(y[o]);
        long long cnt = 0;
        for (int64_t j = lane; j < p.R; j += G) cnt += kb_dev_load(x[base + kb_imap_offset<0>(p.red, j)]) == m;
        if constexpr (G == 32) cnt = kb_group_reduce<32>(cnt, kb_op_sum());
        else if constexpr (G == 256) cnt = kb_block_reduce(cnt, kb_op_sum(), 0ll, sh);
        const T g = kb_dev_store<T>(cnt > 0 ? kb_dev_load(dy[o]) / (double)cnt : 0.0);
        const T zero = kb_dev_store<T>(0.0);
        for (int64_t j = lane; j < p.R; j += G) {
            int64_t off = base + kb_imap_offset<0>(p.red, j);
            dx[off] = kb_dev_load(x[off]) == m ? g : zero;
        }
    }
}

template <typename T>
kb_status max_grad_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    const kb_buf *x = &in[0], *y = &in[1], *dy = &in[2];
    if (out->size == 0) return KB_OK;
    kb_rplan p = kb_rplan_make(x->shape, x->rank, a->axes_mask & rank_mask(x->rank));
    if (y->size != p.n_out || dy->size != p.n_out || out->size != x->size)
        return kb_set_error(KB_ERR_SHAPE, "%s: max_grad operands do not match the reduction",
                            ex->op ? ex->op : "max_grad");
    if (y->dtype != x->dtype || dy->dtype != x->dtype)
        return kb_set_error(KB_ERR_DTYPE, "%s: operands must share one dtype", ex->op ? ex->op : "max_grad");
    KB_TRY(kb_cuda_bind(dev));
    const T *xp = (const T *)x->data, *yp = (const T *)y->data, *dyp = (const T *)dy->data;
    T *dxp = (T *)out->data;
    cudaStream_t s = dev->stream;
    if (p.R >= 4096 || (p.R >= 256 && p.n_out < (int64_t)dev->sm_count * 8))
        k_max_grad<T, 256><<<kb_blocks(dev, p.n_out, 1), KB_THREADS, 0, s>>>(xp, yp, dyp, dxp, p);
    else if (p.R >= 16)
        k_max_grad<T, 32><<<kb_blocks(dev, p.n_out, KB_THREADS / 32), KB_THREADS, 0, s>>>(xp, yp, dyp, dxp, p);
    else
        k_max_grad<T, 1><<<kb_blocks(dev, p.n_out, KB_THREADS), KB_THREADS, 0, s>>>(xp, yp, dyp, dxp, p);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

/* sum_like(g, ref): sum g over the dims numpy broadcasting added to ref's shape (out->shape). */
template <typename T>
kb_status sum_like_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    const kb_buf *g = &in[0];
    if (out->size == 0) return KB_OK;
    if (g->rank < out->rank)
        return kb_set_error(KB_ERR_SHAPE, "%s: gradient rank %d below target rank %d",
                            ex->op ? ex->op : "sum_like", g->rank, out->rank);
    int lead = g->rank - out->rank;
    uint32_t mask = 0;
    for (int d = 0; d < g->rank; d++) {
        int k = d - lead;
        if (k < 0) {
            mask |= 1u << d;
        } else if (out->shape[k] != g->shape[d]) {
            if (out->shape[k] != 1)
                return kb_set_error(KB_ERR_SHAPE, "%s: dim %d of the gradient (%lld) does not broadcast from %lld",
                                    ex->op ? ex->op : "sum_like", d, (long long)g->shape[d],
                                    (long long)out->shape[k]);
            mask |= 1u << d;
        }
    }
    /* mean_scale: times out.size / g.size (= 1/R; g.size 0 gives inf, and 0 * inf = NaN as on the CPU). */
    if (a->mean_scale) {
        RArith<T, K_SCALE> rd{1, (double)out->size / (double)g->size};
        return run_reduce<T>(ex, g, out, mask, rd);
    }
    RArith<T, K_SUM> rd{1, 1.0};
    return run_reduce<T>(ex, g, out, mask, rd);
}

/* out[i] = dy[map(i)] (* scale, in double as the CPU). */
template <typename T, bool SCALE>
__global__ void k_broadcast(const T *__restrict__ dy, T *__restrict__ out, int64_t n, kb_imap m, double scale) {
    KB_GRID_LOOP(i, n) {
        T v = dy[kb_imap_offset<0>(m, i)];
        out[i] = SCALE ? kb_dev_store<T>(kb_dev_load(v) * scale) : v;
    }
}

/* broadcast_like(dy, ref): spread the reduced dy back over ref's shape (out->shape). */
template <typename T>
kb_status broadcast_like_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    const kb_buf *dy = &in[0];
    int64_t n = out->size;
    if (n == 0) return KB_OK;
    int64_t st[KB_MAX_RANK];
    if (a->axes_mask != 0) {
        /* dy is ref reduced over the mask: its keepdims shape has 1 there (same memory order). */
        int64_t keep[KB_MAX_RANK], cnt = 1;
        for (int d = 0; d < out->rank; d++) {
            keep[d] = (a->axes_mask & (1u << d)) ? 1 : out->shape[d];
            cnt *= keep[d];
        }
        if (cnt != dy->size)
            return kb_set_error(KB_ERR_SHAPE, "%s: dy has %lld elements, expected %lld",
                                ex->op ? ex->op : "broadcast_like", (long long)dy->size, (long long)cnt);
        kb_bcast_strides(keep, out->rank, out->shape, out->rank, st);
    } else {
        if (dy->rank > out->rank)
            return kb_set_error(KB_ERR_SHAPE, "%s: dy rank %d above target rank %d",
                                ex->op ? ex->op : "broadcast_like", dy->rank, out->rank);
        kb_bcast_strides(dy->shape, dy->rank, out->shape, out->rank, st);
    }
    const int64_t *sp[1] = {st};
    kb_imap m = kb_imap_make(out->shape, out->rank, sp, 1);
    KB_TRY(kb_cuda_bind(dev));
    const T *dyp = (const T *)dy->data;
    T *op = (T *)out->data;
    if (a->mean_scale && dy->size > 0) {
        double scale = (double)dy->size / (double)n;
        k_broadcast<T, true><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>(dyp, op, n, m, scale);
    } else {
        k_broadcast<T, false><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>(dyp, op, n, m, 1.0);
    }
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

} /* namespace */

/* float16, bfloat16, float32, float64 (+ int32, int64 for the REAL ones). */
#define RED_DISPATCH_FLOATS(ex, dt, FN, ...)                                                  \
    do {                                                                                      \
        switch (dt) {                                                                         \
        case KB_FLOAT16: return FN<__half>(__VA_ARGS__);                                      \
        case KB_BFLOAT16: return FN<__nv_bfloat16>(__VA_ARGS__);                              \
        case KB_FLOAT32: return FN<float>(__VA_ARGS__);                                       \
        case KB_FLOAT64: return FN<double>(__VA_ARGS__);                                      \
        default: return kb_cuda_dtype_error(ex, dt, "float16, bfloat16, float32 or float64"); \
        }                                                                                     \
    } while (0)
#define RED_DISPATCH_REAL(ex, dt, FN, ...)                                                                   \
    do {                                                                                                     \
        switch (dt) {                                                                                        \
        case KB_FLOAT16: return FN<__half>(__VA_ARGS__);                                                     \
        case KB_BFLOAT16: return FN<__nv_bfloat16>(__VA_ARGS__);                                             \
        case KB_FLOAT32: return FN<float>(__VA_ARGS__);                                                      \
        case KB_FLOAT64: return FN<double>(__VA_ARGS__);                                                     \
        case KB_INT32: return FN<int32_t>(__VA_ARGS__);                                                      \
        case KB_INT64: return FN<int64_t>(__VA_ARGS__);                                                      \
        default: return kb_cuda_dtype_error(ex, dt, "float16, bfloat16, float32, float64, int32 or int64"); \
        }                                                                                                    \
    } while (0)

#define KB_REDUCE_LAUNCHER(name, FN, DISPATCH)                                                  \
    extern "C" kb_status kb_cuda_##name(const kb_exec *ex, const kb_attrs *a, const kb_buf *in,  \
                                        int n_in, kb_buf *out) {                                \
        (void)n_in;                                                                             \
        DISPATCH(ex, in[0].dtype, FN, ex, a, in, out);                                          \
    }

KB_REDUCE_LAUNCHER(sum, sum_t, RED_DISPATCH_REAL)
KB_REDUCE_LAUNCHER(mean, mean_t, RED_DISPATCH_REAL)
KB_REDUCE_LAUNCHER(max, max_t, RED_DISPATCH_REAL)
KB_REDUCE_LAUNCHER(min, min_t, RED_DISPATCH_REAL)
KB_REDUCE_LAUNCHER(prod, prod_t, RED_DISPATCH_REAL)
KB_REDUCE_LAUNCHER(argmax, argmax_t, RED_DISPATCH_REAL)
KB_REDUCE_LAUNCHER(argmin, argmin_t, RED_DISPATCH_REAL)
KB_REDUCE_LAUNCHER(cumsum, cumsum_t, RED_DISPATCH_REAL)
KB_REDUCE_LAUNCHER(cumprod, cumprod_t, RED_DISPATCH_REAL)
KB_REDUCE_LAUNCHER(logsumexp, logsumexp_t, RED_DISPATCH_FLOATS)
KB_REDUCE_LAUNCHER(any, any_t, KB_DISPATCH_ALL)
KB_REDUCE_LAUNCHER(all, all_t, KB_DISPATCH_ALL)
KB_REDUCE_LAUNCHER(max_grad, max_grad_t, RED_DISPATCH_FLOATS)
KB_REDUCE_LAUNCHER(sum_like, sum_like_t, RED_DISPATCH_FLOATS)
KB_REDUCE_LAUNCHER(broadcast_like, broadcast_like_t, RED_DISPATCH_FLOATS)
