/* CUDA kernels of the ctc family (CTC: ctc_label_dense_to_sparse, ctc_batch_cost (loss + gradient in log space), ctc_decode).
 *
 * Our own deterministic kernels (guide/cuda-design-facts.md section 7): any blank index (here
 * C - 1, Keras 2), any label length, fused log-softmax, no atomics. The formulas and their order
 * are those of the CPU kernels (cpu/cpu_ctc.c), all in double whatever the float dtype:
 *
 *   ctc_loss / ctc_loss_grad, three launches:
 *     k_row_lse: the log-sum-exp of every logit row (b, t < T_b), one warp per row over the whole
 *       grid (shuffle reductions) into a B x T scratch;
 *     k_softmax_rows (gradient only): the dense part dy * softmax (0 for t >= T_b), grid-stride;
 *     k_ctc: one CTA (256 threads) per sequence; threads run over the extended label positions s
 *       in [0, 2L+1) for each time step (one __syncthreads per step), alpha in log space reading
 *       the label columns of the logits minus the row lse (fused log-softmax). The loss keeps two
 *       alpha rows; the gradient keeps all T_b rows (scratch B x T x S doubles from the
 *       stream-ordered pool), runs beta backwards with two rows and rewrites, for each class of
 *       the label, dy * softmax - dy * (sum of its positions' posteriors): one thread per class
 *       (the first s of that class walks a precomputed chain of the next position with the same
 *       class, in ascending s), so the sum has a fixed order and there are no atomics.
 *     Invalid data (input_length outside [0, T], label_length < 0, a label outside [0, C-1))
 *     cannot be reported without a host sync: the sample's loss and gradient are NaN.
 *   ctc_greedy_decode: the argmax (first index on ties) or -max of every row, one warp per row over
 *     the whole grid; then one thread per sequence merges repeats, drops blanks and compacts the
 *     path in place, or sums -max in time order; input_length clamped to [0, T].
 *   ctc_sparse_part: one CTA: block scan of the clamped label lengths, then each row's entries.
 *
 * Roofline: the loss reads the B x T x C logits once for the row lse (bandwidth bound, whole grid)
 * and then only the gathered label columns; the alpha / beta recursions are latency bound (T_b
 * sequential steps, one block barrier each, B CTAs). The gradient adds one dense B x T x C read +
 * write and B x T x S doubles of alpha (written once, read once). Measured on the H200 (whole
 * kb function: log(y + eps), loss, gradient chain back to y_pred), see the report of issue 5.
 */
#include "cuda/kernels/common.cuh"

#ifndef KB_WITH_CUDNN /* cuda_internal.h declares the pool scratch only with cuDNN; device.cu always defines it */
extern "C" kb_status kb_cuda_scratch_alloc(struct kb_cuda_device *dev, size_t n, void **p);
extern "C" void kb_cuda_scratch_free(struct kb_cuda_device *dev, void *p);
#endif

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ int64_t ld_len(const void *p, bool i64, int64_t i) {
    return i64 ? ((const int64_t *)p)[i] : (int64_t)((const int32_t *)p)[i];
}

/* lse(a, b) exactly as the CPU: NaN if either is NaN, -inf if both are -inf. */
__device__ __forceinline__ double lse2(double a, double b) {
    if (a != a || b != b) return a + b;
    double m = a > b ? a : b;
    if (m == -INFINITY) return -INFINITY;
    return m + log1p(exp(-fabs(a - b)));
}

/* ---- ctc_sparse_part ---- */

template <typename E>
__global__ void k_sparse_part(int64_t *ix, E *vals, const E *labels, const void *len, bool len64, int64_t B,
                              int64_t M) {
    __shared__ int64_t scan[kThreads];
    __shared__ int64_t s_total, s_carry;
    const int tid = threadIdx.x;
    int64_t part = 0;
    for (int64_t b = tid; b < B; b += kThreads) {
        int64_t n = ld_len(len, len64, b);
        part += n < 0 ? 0 : n > M ? M : n;
    }
    scan[tid] = part;
    __syncthreads();
    if (tid == 0) {
        int64_t t = 0;
        for (int i = 0; i < kThreads; ++i) t += scan[i];
        s_total = t;
        s_carry = 0;
    }
    __syncthreads();
    const int64_t total = s_total;
    for (int64_t base = 0; base < B; base += kThreads) {
        const int64_t b = base + tid;
        int64_t n = 0;
        if (b < B) {
            n = ld_len(len, len64, b);
            n = n < 0 ? 0 : n > M ? M : n;
        }
        scan[tid] = n;
        __syncthreads();
        for (int d = 1; d < kThreads; d <<= 1) { /* inclusive Hillis-Steele scan */
            int64_t v = tid >= d ? scan[tid - d] : 0;
            __syncthreads();
            scan[tid] += v;
            __syncthreads();
        }
        const int64_t off = s_carry + scan[tid] - n;
        if (b < B)
            for (int64_t j = 0; j < M; ++j) {
                int64_t k = j < n ? off + j : total + b * M - off + (j - n);
                if (ix) {
                    ix[2 * k] = b;
                    ix[2 * k + 1] = j;
                } else {
                    vals[k] = j < n ? labels[b * M + j] : E(0);
                }
            }
        __syncthreads();
        if (tid == kThreads - 1) s_carry += scan[tid];
        __syncthreads();
    }
}

/* ---- ctc_loss / ctc_loss_grad ---- */

struct loss_args {
    const void *labels, *il, *ll;
    bool lab64, il64, ll64;
    bool smem;                /* working rows, ext, next, first, post in dynamic shared memory */
    int64_t B, T, C, L, Smax;
    double *lse;              /* B x T */
    double *alpha;            /* B x T x Smax (gradient: every alpha row, read by the beta pass) */
    double *work;             /* global fallback of the per-sample work space, B x work_doubles */
    int64_t work_doubles;
};

__device__ __forceinline__ double warp_max(double v) {
    for (int o = 16; o > 0; o >>= 1) v = kb_max_nan(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Doubles of one sample's work space: alpha rows (2 S), then for the gradient beta rows (2 S) and
 * posteriors (S); then ints: ext (S), and for the gradient next (S) and first (S). */
__host__ __device__ inline int64_t work_doubles(int64_t smax, bool grad) {
    const int64_t d = (grad ? 5 : 2) * smax, i = (grad ? 3 : 1) * smax;
    return d + (i + 1) / 2;
}

template <typename T, bool GRAD>
__global__ void __launch_bounds__(kThreads) k_ctc(const T *z, const T *dy, T *out, loss_args a) {
    extern __shared__ double smem[];
    __shared__ int s_bad;
    __shared__ double s_loss, s_wsum[kThreads / 32];
    const int64_t b = blockIdx.x;
    const int tid = threadIdx.x;
    const int64_t T_ = a.T, C = a.C, blank = C - 1, SM = a.Smax;
    double *ws = a.smem ? smem : a.work + b * a.work_doubles;
    double *arow = ws, *brow = ws + 2 * SM, *post = ws + 4 * SM;
    int *ext = (int *)(ws + (GRAD ? 5 : 2) * SM), *next = ext + SM, *first = ext + 2 * SM;
    int64_t Tb = ld_len(a.il, a.il64, b), Lb = ld_len(a.ll, a.ll64, b);
    if (tid == 0) s_bad = Tb < 0 || Tb > T_ || Lb < 0;
    if (Lb > a.L) Lb = a.L;
    if (Lb < 0) Lb = 0;
    const int64_t S = 2 * Lb + 1;
    __syncthreads();
    for (int64_t s = tid; s < S; s += kThreads) {
        int64_t v = blank;
        if (s & 1) {
            v = ld_len(a.labels, a.lab64, b * a.L + (s - 1) / 2);
            if (v < 0 || v >= blank) s_bad = 1; /* every writer stores 1 */
        }
        ext[s] = (int)v;
    }
    __syncthreads();
    const T *zb = z + b * T_ * C;
    if (s_bad) {
        const double nan = __longlong_as_double(0x7ff8000000000000LL);
        if (GRAD) {
            for (int64_t i = tid; i < T_ * C; i += kThreads) out[b * T_ * C + i] = (T)nan;
        } else if (tid == 0) {
            out[b] = (T)nan;
        }
        return;
    }
    const double *lse = a.lse + b * T_; /* k_row_lse */
#define LSM(t, c) ((double)zb[(t) * C + (c)] - lse[t])
    /* alpha: two working rows (shared memory when they fit); the gradient also keeps every row */
    double *afull = GRAD ? a.alpha + b * T_ * SM : nullptr;
    double *cur = arow;
    if (Tb > 0) {
        for (int64_t s = tid; s < S; s += kThreads) {
            cur[s] = s < 2 ? LSM(0, ext[s]) : -INFINITY;
            if (GRAD) afull[s] = cur[s];
        }
        __syncthreads();
        for (int64_t t = 1; t < Tb; ++t) {
            const double *prev = cur;
            cur = arow + (t & 1) * SM;
            for (int64_t s = tid; s < S; s += kThreads) {
                double v = prev[s];
                if (s >= 1) v = lse2(v, prev[s - 1]);
                if (s >= 2 && ext[s] != blank && ext[s] != ext[s - 2]) v = lse2(v, prev[s - 2]);
                cur[s] = v + LSM(t, ext[s]);
                if (GRAD) afull[t * SM + s] = cur[s];
            }
            __syncthreads();
        }
    }
    if (tid == 0) {
        double ll = Tb == 0 ? (S == 1 ? 0.0 : -INFINITY) : S >= 2 ? lse2(cur[S - 1], cur[S - 2]) : cur[S - 1];
        s_loss = -ll;
        if (!GRAD) out[b] = (T)(-ll);
    }
    if (!GRAD) return;
    __syncthreads();
    const double loss = s_loss, g0 = (double)dy[b];
    T *ob = out + b * T_ * C;
    /* k_softmax_rows wrote dy * softmax (0 for t >= Tb); an impossible label has a zero gradient */
    if (Tb == 0) return;
    if (loss == INFINITY) {
        for (int64_t i = tid; i < T_ * C; i += kThreads) ob[i] = (T)0;
        return;
    }
    /* label positions (odd s): the next position of the same class, and whether s is the first */
    for (int64_t s = 1 + 2 * tid; s < S; s += 2 * kThreads) {
        int nx = -1, fs = 1;
        for (int64_t q = s + 2; q < S; q += 2)
            if (ext[q] == ext[s]) {
                nx = (int)q;
                break;
            }
        for (int64_t q = 1; q < s; q += 2)
            if (ext[q] == ext[s]) {
                fs = 0;
                break;
            }
        next[s] = nx;
        first[s] = fs;
    }
    __syncthreads();
    const int lane = tid & 31, warp = tid >> 5;
    for (int64_t t = Tb - 1; t >= 0; --t) {
        double *bc = brow + (t & 1) * SM;
        const double *bn = brow + ((t + 1) & 1) * SM;
        const double *al = afull + t * SM;
        for (int64_t s = tid; s < S; s += kThreads) {
            double v;
            if (t == Tb - 1) {
                v = s >= S - 2 ? 0.0 : -INFINITY;
            } else {
                v = bn[s];
                if (s + 1 < S) v = lse2(v, bn[s + 1]);
                if (s + 2 < S && ext[s] != blank && ext[s + 2] != ext[s]) v = lse2(v, bn[s + 2]);
            }
            const double l = LSM(t, ext[s]);
            bc[s] = v + l;
            post[s] = exp(al[s] + bc[s] - l + loss);
        }
        __syncthreads();
        /* the blank (every even s): a fixed-order block reduction */
        double part = 0.0;
        for (int64_t s = 2 * tid; s < S; s += 2 * kThreads) part += post[s];
        part = warp_sum(part);
        if (lane == 0) s_wsum[warp] = part;
        /* each label class: its first position walks the chain of the others, ascending s */
        for (int64_t s = 1 + 2 * tid; s < S; s += 2 * kThreads) {
            if (!first[s]) continue;
            double acc = 0.0;
            for (int k = (int)s; k >= 0; k = next[k]) acc += post[k];
            const int c = ext[s];
            ob[t * C + c] = (T)kb_sub(kb_mul(g0, exp(LSM(t, c))), kb_mul(g0, acc));
        }
        __syncthreads();
        if (tid == 0) {
            double acc = 0.0;
            for (int w = 0; w < kThreads / 32; ++w) acc += s_wsum[w];
            ob[t * C + blank] = (T)kb_sub(kb_mul(g0, exp(LSM(t, blank))), kb_mul(g0, acc));
        }
    }
#undef LSM
}

/* Log-sum-exp of every row (b, t < input_length[b]) of the logits: one warp per row over the whole
 * grid (the sequential CTA kernel only reads them). Same value as the CPU's m + log(sum exp(z - m)). */
template <typename T>
__global__ void k_row_lse(const T *z, const void *il, bool il64, int64_t B, int64_t T_, int64_t C, double *lse) {
    const int lane = threadIdx.x & 31;
    const int64_t warps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; r < B * T_; r += warps) {
        const int64_t b = r / T_, t = r - b * T_;
        const int64_t Tb = ld_len(il, il64, b);
        if (t >= Tb) continue; /* warp-uniform */
        const T *row = z + r * C;
        double m = -INFINITY;
        for (int64_t c = lane; c < C; c += 32) m = kb_max_nan(m, (double)row[c]);
        m = warp_max(m);
        double sum = 0.0;
        for (int64_t c = lane; c < C; c += 32) sum += exp((double)row[c] - m);
        sum = warp_sum(sum);
        if (lane == 0) lse[r] = m + log(sum);
    }
}

/* The dense part of the gradient: out[b, t, c] = dy[b] * exp(z - lse) for t < input_length[b]
 * (clamped to [0, T]), 0 beyond; k_ctc then rewrites the label classes (and whole samples that are
 * impossible or invalid). Grid-stride over every element. */
template <typename T>
__global__ void k_softmax_rows(const T *z, const double *lse, const void *il, bool il64, const T *dy, int64_t B,
                               int64_t T_, int64_t C, T *out) {
    KB_GRID_LOOP(i, B * T_ * C) {
        const int64_t r = i / C, b = r / T_, t = r - b * T_;
        const int64_t Tb = ld_len(il, il64, b);
        out[i] = t < Tb ? (T)kb_mul((double)dy[b], exp((double)z[i] - lse[r])) : (T)0;
    }
}

/* ---- ctc_greedy_decode ---- */

/* Per row (b, t < input_length[b], clamped to [0, T]): the first argmax (idx) or minus the max
 * (negmax), one warp per row over the whole grid. */
template <typename T>
__global__ void k_row_argmax(const T *z, const void *il, bool il64, int64_t B, int64_t T_, int64_t C, int64_t *idx,
                             double *negmax) {
    const int lane = threadIdx.x & 31;
    const int64_t warps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; r < B * T_; r += warps) {
        const int64_t b = r / T_, t = r - b * T_;
        if (t >= ld_len(il, il64, b)) continue; /* warp-uniform */
        const T *row = z + r * C;
        double bv = -INFINITY;
        int64_t bi = INT64_MAX;
        if (lane < C) bv = (double)row[lane], bi = lane;
        for (int64_t c = lane + 32; c < C; c += 32) {
            double v = (double)row[c];
            if (v > bv) bv = v, bi = c;
        }
        for (int o = 16; o > 0; o >>= 1) {
            double ov = __shfl_xor_sync(0xffffffffu, bv, o);
            int64_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (ov > bv || (ov == bv && oi < bi)) bv = ov, bi = oi;
        }
        if (lane == 0) {
            if (idx) idx[r] = bi;
            if (negmax) negmax[r] = -bv;
        }
    }
}

/* One thread per sequence, in time order: path: merge repeats, drop blanks, compact in place (the
 * write position never passes the read position), pad with -1; or logp = sum of -max. */
template <typename T>
__global__ void k_greedy_finish(const void *il, bool il64, int64_t B, int64_t T_, int64_t C, int64_t *path,
                                const double *negmax, T *logp) {
    KB_GRID_LOOP(b, B) {
        int64_t Tb = ld_len(il, il64, b);
        Tb = Tb < 0 ? 0 : Tb > T_ ? T_ : Tb;
        if (path) {
            int64_t k = 0, prev = -1, *p = path + b * T_;
            for (int64_t t = 0; t < Tb; ++t) {
                const int64_t c = p[t];
                if (c != C - 1 && c != prev) p[k++] = c;
                prev = c;
            }
            for (; k < T_; ++k) p[k] = -1;
        } else {
            double acc = 0.0;
            for (int64_t t = 0; t < Tb; ++t) acc += negmax[b * T_ + t];
            logp[b] = (T)acc;
        }
    }
}

/* Dynamic shared memory a sample's work space may use: the 48 KB a block gets without opting in,
 * less the kernel's static shared memory. Longer labels use the global fallback. */
constexpr size_t kSmemMax = 46 * 1024;

template <typename T, bool GRAD>
kb_status ctc_t(const kb_exec *ex, const kb_buf *in, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    loss_args a;
    memset(&a, 0, sizeof a);
    a.labels = in[1].data;
    a.il = in[2].data;
    a.ll = in[3].data;
    a.lab64 = in[1].dtype == KB_INT64;
    a.il64 = in[2].dtype == KB_INT64;
    a.ll64 = in[3].dtype == KB_INT64;
    a.B = in[0].shape[0];
    a.T = in[0].shape[1];
    a.C = in[0].shape[2];
    a.L = in[1].shape[1];
    a.Smax = 2 * a.L + 1;
    if (a.B == 0) return KB_OK;
    if (a.T * a.C == 0 && GRAD) return KB_OK;
    a.work_doubles = work_doubles(a.Smax, GRAD);
    const size_t smem = (size_t)a.work_doubles * sizeof(double);
    a.smem = smem <= kSmemMax;
    const int64_t n_dbl = a.B * a.T + (GRAD ? a.B * a.T * a.Smax : 0) + (a.smem ? 0 : a.B * a.work_doubles);
    void *mem = nullptr;
    KB_TRY(kb_cuda_scratch_alloc(dev, (size_t)(n_dbl > 0 ? n_dbl : 1) * sizeof(double), &mem));
    double *d = (double *)mem;
    a.lse = d;
    d += a.B * a.T;
    if (GRAD) {
        a.alpha = d;
        d += a.B * a.T * a.Smax;
    }
    if (!a.smem) a.work = d;
    const T *z = (const T *)in[0].data;
    k_row_lse<T><<<kb_blocks(dev, a.B * a.T * 32, kThreads), kThreads, 0, dev->stream>>>(z, a.il, a.il64, a.B, a.T,
                                                                                        a.C, a.lse);
    if (GRAD)
        k_softmax_rows<T><<<kb_blocks(dev, a.B * a.T * a.C, kThreads), kThreads, 0, dev->stream>>>(
            z, a.lse, a.il, a.il64, (const T *)in[4].data, a.B, a.T, a.C, (T *)out->data);
    k_ctc<T, GRAD><<<(unsigned)a.B, kThreads, a.smem ? smem : 0, dev->stream>>>(
        z, GRAD ? (const T *)in[4].data : nullptr, (T *)out->data, a);
    cudaError_t e = cudaGetLastError();
    kb_cuda_scratch_free(dev, mem);
    KB_CUDA_CHECK(e);
    return KB_OK;
}

template <typename T>
kb_status greedy_t(const kb_exec *ex, const kb_attrs *at, const kb_buf *in, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    const int64_t B = in[0].shape[0], T_ = in[0].shape[1], C = in[0].shape[2];
    const bool il64 = in[1].dtype == KB_INT64, path = at->i64[0] == 0;
    if (B == 0) return KB_OK;
    if (T_ == 0) { /* empty paths; log probability 0 */
        if (!path) KB_CUDA_CHECK(cudaMemsetAsync(out->data, 0, (size_t)B * sizeof(T), dev->stream));
        return KB_OK;
    }
    void *mem = nullptr;
    if (!path) KB_TRY(kb_cuda_scratch_alloc(dev, (size_t)(B * T_) * sizeof(double), &mem));
    k_row_argmax<T><<<kb_blocks(dev, B * T_ * 32, kThreads), kThreads, 0, dev->stream>>>(
        (const T *)in[0].data, in[1].data, il64, B, T_, C, path ? (int64_t *)out->data : nullptr, (double *)mem);
    k_greedy_finish<T><<<kb_blocks(dev, B, 128), 128, 0, dev->stream>>>(
        in[1].data, il64, B, T_, C, path ? (int64_t *)out->data : nullptr, (const double *)mem,
        path ? nullptr : (T *)out->data);
    cudaError_t e = cudaGetLastError();
    if (mem) kb_cuda_scratch_free(dev, mem);
    KB_CUDA_CHECK(e);
    return KB_OK;
}

kb_status check_grid(const kb_exec *ex, int64_t B) {
    if (B > 2147483647LL)
        return kb_set_error(KB_ERR_NOT_SUPPORTED, "%s: batch size %lld exceeds the CUDA grid", ex->op, (long long)B);
    return KB_OK;
}

} /* namespace */

extern "C" kb_status kb_cuda_ctc_sparse_part(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                             kb_buf *out) {
    (void)n_in;
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    KB_TRY(kb_cuda_bind(dev));
    const int64_t B = in[0].shape[0], M = in[0].shape[1];
    if (B * M == 0) return KB_OK;
    const bool len64 = in[1].dtype == KB_INT64, idx = a->i64[0] == 0;
    const size_t es = in[0].dtype == KB_INT32 || in[0].dtype == KB_FLOAT32 ? 4 : 8;
    if (es == 4)
        k_sparse_part<uint32_t><<<1, kThreads, 0, dev->stream>>>(idx ? (int64_t *)out->data : nullptr,
                                                                idx ? nullptr : (uint32_t *)out->data,
                                                                (const uint32_t *)in[0].data, in[1].data, len64, B, M);
    else
        k_sparse_part<uint64_t><<<1, kThreads, 0, dev->stream>>>(idx ? (int64_t *)out->data : nullptr,
                                                                idx ? nullptr : (uint64_t *)out->data,
                                                                (const uint64_t *)in[0].data, in[1].data, len64, B, M);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

extern "C" kb_status kb_cuda_ctc_loss(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)a; (void)n_in;
    KB_TRY(kb_cuda_bind(kb_cuda_dev(ex)));
    KB_TRY(check_grid(ex, in[0].shape[0]));
    switch (out->dtype) {
    case KB_FLOAT32: return ctc_t<float, false>(ex, in, out);
    case KB_FLOAT64: return ctc_t<double, false>(ex, in, out);
    default: return kb_cuda_dtype_error(ex, out->dtype, "float32 or float64");
    }
}

extern "C" kb_status kb_cuda_ctc_loss_grad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                           kb_buf *out) {
    (void)a; (void)n_in;
    KB_TRY(kb_cuda_bind(kb_cuda_dev(ex)));
    KB_TRY(check_grid(ex, in[0].shape[0]));
    switch (out->dtype) {
    case KB_FLOAT32: return ctc_t<float, true>(ex, in, out);
    case KB_FLOAT64: return ctc_t<double, true>(ex, in, out);
    default: return kb_cuda_dtype_error(ex, out->dtype, "float32 or float64");
    }
}

extern "C" kb_status kb_cuda_ctc_greedy_decode(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                               kb_buf *out) {
    (void)n_in;
    KB_TRY(kb_cuda_bind(kb_cuda_dev(ex)));
    KB_TRY(check_grid(ex, in[0].shape[0]));
    KB_DISPATCH_FLOAT(ex, in[0].dtype, greedy_t, ex, a, in, out);
}
