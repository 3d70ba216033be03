/*
 * Reduction kernels: sum, mean, max over any set of axes (a->axes_mask), max_grad, sum_like
 * (sum a broadcast gradient back to a shape) and broadcast_like (its adjoint). float32/float64;
 * both accumulate in double, as the CPU reference does (a float accumulator drifts badly when
 * one thread sums ~1M elements of a whole-tensor reduction), and round once at the store.
 *
 * Shapes: the input is viewed as kept dims x reduced dims (kb_rplan, both coalesced); the
 * output holds one element per group, in the C order of the kept dims, which is the memory
 * order of the result with or without keepdims. Bytes moved: sum/mean/max read n*sizeof T
 * and write n_out*sizeof T; max_grad reads x twice (count, then write) plus y, dy and writes
 * n; broadcast_like reads dy (cached) and writes n.
 *
 * Work split: G threads per output element, G = 1 (short groups: a thread loops over its
 * group, coalesced when the reduced axes are outer), 32 (a warp, shuffle reduction) or 256
 * (a block, for long groups or few outputs). Fixed order, no atomics: results are
 * deterministic. Empty groups give sum 0, mean NaN (0/0), max -inf; max propagates NaN.
 */
#include "cuda/kernels/common.cuh"

namespace {

/* R_SCALE: sum times `scale` (sum_like with mean_scale, as the CPU: acc * out.size / g.size). */
enum { R_SUM = 0, R_MEAN = 1, R_MAX = 2, R_SCALE = 3 };

template <int G, typename T, typename Op>
__device__ __forceinline__ T group_reduce_any(T v, Op op, T identity, T *sh) {
    (void)identity;
    (void)sh;
    if constexpr (G == 1) return v;
    else if constexpr (G == 32) return kb_group_reduce<32>(v, op);
    else return kb_block_reduce(v, op, identity, sh);
}

/* Threads [slot*G, slot*G+G) handle outputs slot, slot + nslots, ...; with G in {1, 32, 256}
 * (256 = blockDim) the loop bounds are uniform across each group, as the shuffles and
 * __syncthreads inside need. */
template <typename T, int G, int KIND>
__global__ void k_reduce(const T *__restrict__ x, T *__restrict__ y, kb_rplan p, double scale) {
    /* Accumulator: double for float32 too (max is exact either way). */
    __shared__ double sh[32];
    const int lane = (int)(threadIdx.x % G);
    const int64_t slot = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / G;
    const int64_t nslots = ((int64_t)gridDim.x * blockDim.x) / G;
    const double identity = KIND == R_MAX ? -(double)INFINITY : 0.0;
    for (int64_t o = slot; o < p.n_out; o += nslots) {
        const T *xg = x + kb_imap_offset<0>(p.kept, o);
        double acc = identity;
        if (KIND == R_MAX) {
            for (int64_t j = lane; j < p.R; j += G) acc = kb_max_nan(acc, (double)xg[kb_imap_offset<0>(p.red, j)]);
            acc = group_reduce_any<G>(acc, kb_op_max(), identity, sh);
        } else {
            for (int64_t j = lane; j < p.R; j += G) acc += (double)xg[kb_imap_offset<0>(p.red, j)];
            acc = group_reduce_any<G>(acc, kb_op_sum(), identity, sh);
            /* Final scaling in double, as the CPU. mean of an empty group: 0/0 = NaN. */
            if (KIND == R_MEAN) acc = acc / (double)p.R;
            if (KIND == R_SCALE) acc = acc * scale;
        }
        if (lane == 0) y[o] = (T)acc;
    }
}

/* max_grad: per group o, count the elements equal to y[o], then write dy[o]/count there and 0
 * elsewhere. Every x element belongs to exactly one group, so all of dx is written. */
template <typename T, int G>
__global__ void k_max_grad(const T *__restrict__ x, const T *__restrict__ y, const T *__restrict__ dy,
                           T *__restrict__ dx, kb_rplan p) {
    __shared__ long long sh[32];
    const int lane = (int)(threadIdx.x % G);
    const int64_t slot = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / G;
    const int64_t nslots = ((int64_t)gridDim.x * blockDim.x) / G;
    for (int64_t o = slot; o < p.n_out; o += nslots) {
        const int64_t base = kb_imap_offset<0>(p.kept, o);
        const T m = y[o];
        long long cnt = 0;
        for (int64_t j = lane; j < p.R; j += G) cnt += x[base + kb_imap_offset<0>(p.red, j)] == m;
        cnt = group_reduce_any<G>(cnt, kb_op_sum(), 0ll, sh);
        const T g = cnt > 0 ? (T)((double)dy[o] / (double)cnt) : (T)0; /* in double, as the CPU */
        for (int64_t j = lane; j < p.R; j += G) {
            int64_t off = base + kb_imap_offset<0>(p.red, j);
            dx[off] = x[off] == m ? g : (T)0;
        }
    }
}

/* out[i] = dy[map(i)] (* scale, in double as the CPU). */
template <typename T, bool SCALE>
__global__ void k_broadcast(const T *__restrict__ dy, T *__restrict__ out, int64_t n, kb_imap m, double scale) {
    KB_GRID_LOOP(i, n) {
        T v = dy[kb_imap_offset<0>(m, i)];
        out[i] = SCALE ? (T)((double)v * scale) : v;
    }
}

/* ---- launchers ---------------------------------------------------------------------------- */

/* Threads per output element for n_out groups of R elements. */
static int pick_group(const struct kb_cuda_device *dev, int64_t n_out, int64_t R) {
    if (R >= 4096 || (R >= 256 && n_out < (int64_t)dev->sm_count * 8)) return 256;
    if (R >= 16) return 32;
    return 1;
}

static unsigned group_blocks(const struct kb_cuda_device *dev, int64_t n_out, int G) {
    return kb_blocks(dev, n_out, KB_THREADS / G);
}

template <typename T, int KIND>
kb_status reduce_plan_run(const kb_exec *ex, const T *x, T *y, const kb_rplan &p, double scale = 1.0) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    if (p.n_out == 0) return KB_OK;
    KB_TRY(kb_cuda_bind(dev));
    int G = pick_group(dev, p.n_out, p.R);
    unsigned nb = group_blocks(dev, p.n_out, G);
    if (G == 256) k_reduce<T, 256, KIND><<<nb, KB_THREADS, 0, dev->stream>>>(x, y, p, scale);
    else if (G == 32) k_reduce<T, 32, KIND><<<nb, KB_THREADS, 0, dev->stream>>>(x, y, p, scale);
    else k_reduce<T, 1, KIND><<<nb, KB_THREADS, 0, dev->stream>>>(x, y, p, scale);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

static uint32_t rank_mask(int rank) { return rank >= 32 ? 0xffffffffu : ((1u << rank) - 1u); }

template <typename T, int KIND>
kb_status reduce_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    const kb_buf *x = &in[0];
    kb_rplan p = kb_rplan_make(x->shape, x->rank, a->axes_mask & rank_mask(x->rank));
    if (p.n_out != out->size)
        return kb_set_error(KB_ERR_SHAPE, "%s: output has %lld elements, the reduction gives %lld",
                            ex->op ? ex->op : "reduce", (long long)out->size, (long long)p.n_out);
    return reduce_plan_run<T, KIND>(ex, (const T *)x->data, (T *)out->data, p);
}
template <typename T> kb_status sum_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    return reduce_t<T, R_SUM>(ex, a, in, out);
}
template <typename T> kb_status mean_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    return reduce_t<T, R_MEAN>(ex, a, in, out);
}
template <typename T> kb_status max_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    return reduce_t<T, R_MAX>(ex, a, in, out);
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
    int G = pick_group(dev, p.n_out, p.R);
    unsigned nb = group_blocks(dev, p.n_out, G);
    if (G == 256) k_max_grad<T, 256><<<nb, KB_THREADS, 0, dev->stream>>>(xp, yp, dyp, dxp, p);
    else if (G == 32) k_max_grad<T, 32><<<nb, KB_THREADS, 0, dev->stream>>>(xp, yp, dyp, dxp, p);
    else k_max_grad<T, 1><<<nb, KB_THREADS, 0, dev->stream>>>(xp, yp, dyp, dxp, p);
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
    kb_rplan p = kb_rplan_make(g->shape, g->rank, mask);
    if (p.n_out != out->size)
        return kb_set_error(KB_ERR_SHAPE, "%s: output size mismatch", ex->op ? ex->op : "sum_like");
    /* mean_scale: times out.size / g.size (= 1/R; g.size 0 gives inf, and 0 * inf = NaN as on the CPU). */
    if (a->mean_scale)
        return reduce_plan_run<T, R_SCALE>(ex, (const T *)g->data, (T *)out->data, p,
                                           (double)out->size / (double)g->size);
    return reduce_plan_run<T, R_SUM>(ex, (const T *)g->data, (T *)out->data, p);
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

#define KB_REDUCE_LAUNCHER(name, FN)                                                            \
    extern "C" kb_status kb_cuda_##name(const kb_exec *ex, const kb_attrs *a, const kb_buf *in,  \
                                        int n_in, kb_buf *out) {                                \
        (void)n_in;                                                                             \
        KB_DISPATCH_FLOAT(ex, in[0].dtype, FN, ex, a, in, out);                                 \
    }

KB_REDUCE_LAUNCHER(sum, sum_t)
KB_REDUCE_LAUNCHER(mean, mean_t)
KB_REDUCE_LAUNCHER(max, max_t)
KB_REDUCE_LAUNCHER(max_grad, max_grad_t)
KB_REDUCE_LAUNCHER(sum_like, sum_like_t)
KB_REDUCE_LAUNCHER(broadcast_like, broadcast_like_t)
