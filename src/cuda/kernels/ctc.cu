/* CUDA kernels of the ctc family (CTC: ctc_label_dense_to_sparse, ctc_batch_cost (loss + gradient in log space), ctc_decode).
 *
 * Our own deterministic kernels (guide/cuda-design-facts.md section 7): any blank index (here
 * C - 1, Keras 2), any label length, fused log-softmax, no atomics. The formulas and their order
 * are those of the CPU kernels (cpu/cpu_ctc.c), all in double whatever the float dtype:
 *
 *   ctc_loss / ctc_loss_grad: one CTA (256 threads) per sequence. The 8 warps first compute the
 *     log-sum-exp of the sample's T_b logit rows (one warp per row, shuffle reductions); then the
 *     threads run over the extended label positions s in [0, 2L+1) for each time step (one
 *     __syncthreads per step), alpha in log space. The loss keeps two alpha rows; the gradient
 *     keeps all T_b rows (scratch B x T x S doubles from the stream-ordered pool) and runs beta
 *     backwards with two rows, writing each gradient row as dy * softmax (coalesced over C) and
 *     then, for each class of the label, dy * softmax - dy * (sum of its positions' posteriors):
 *     one thread per class (the first s of that class walks a precomputed chain of the next
 *     position with the same class, in ascending s), so the sum has a fixed order and no
 *     atomics. Invalid data (input_length outside [0, T], label_length < 0, a label outside
 *     [0, C-1)) cannot be reported without a host sync: the sample's loss and gradient are NaN.
 *   ctc_greedy_decode: one warp per sequence, sequential over t: argmax over C by shuffles (first
 *     index on ties), lane 0 merges repeats, drops blanks and sums -max; input_length clamped to
 *     [0, T].
 *   ctc_sparse_part: one CTA: block scan of the clamped label lengths, then each row's entries.
 *
 * Roofline: the loss reads the T_b x C logits twice (row lse, then gathered label columns) and is
 * latency bound by the T sequential steps (one block barrier each); the gradient adds B x T x S
 * doubles of alpha (written once, read once) and one dense B x T x C write. Not yet measured
 * (docs/performance.md).
 */
#include "cuda/kernels/common.cuh"

#ifndef KB_WITH_CUDNN /* cuda_internal.h declares the pool scratch only with cuDNN; device.cu always defines it */
extern "C" kb_status kb_cuda_scratch_alloc(struct kb_cuda_device *dev, size_t n, void **p);
extern "C" void kb_cuda_scratch_free(struct kb_cuda_device *dev, void *p);
#endif

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

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
    int64_t B, T, C, L, Smax;
    int *ext, *next, *first; /* B x Smax each (next / first: gradient only) */
    double *lse;              /* B x T */
    double *alpha;            /* B x 2 x Smax (loss) or B x T x Smax (gradient) */
    double *beta;             /* B x 2 x Smax (gradient) */
    double *post;             /* B x Smax (gradient) */
};

__device__ __forceinline__ double warp_max(double v) {
    for (int o = 16; o > 0; o >>= 1) v = kb_max_nan(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <typename T, bool GRAD>
__global__ void __launch_bounds__(kThreads) k_ctc(const T *z, const T *dy, T *out, loss_args a) {
    const int64_t b = blockIdx.x;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int64_t T_ = a.T, C = a.C, blank = C - 1;
    __shared__ int s_bad;
    __shared__ double s_loss;
    int64_t Tb = ld_len(a.il, a.il64, b), Lb = ld_len(a.ll, a.ll64, b);
    if (tid == 0) s_bad = Tb < 0 || Tb > T_ || Lb < 0;
    if (Lb > a.L) Lb = a.L;
    if (Lb < 0) Lb = 0;
    const int64_t S = 2 * Lb + 1;
    int *ext = a.ext + b * a.Smax;
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
    /* row log-sum-exps, one warp per row */
    double *lse = a.lse + b * T_;
    for (int64_t t = warp; t < Tb; t += kWarps) {
        const T *row = zb + t * C;
        double m = -INFINITY;
        for (int64_t c = lane; c < C; c += 32) m = kb_max_nan(m, (double)row[c]);
        m = warp_max(m);
        double sum = 0.0;
        for (int64_t c = lane; c < C; c += 32) sum += exp((double)row[c] - m);
        sum = warp_sum(sum);
        if (lane == 0) lse[t] = m + log(sum);
    }
    __syncthreads();
#define LSM(t, c) ((double)zb[(t) * C + (c)] - lse[t])
    /* alpha */
    double *alpha = GRAD ? a.alpha + b * T_ * a.Smax : a.alpha + b * 2 * a.Smax;
    double *cur = alpha;
    if (Tb > 0) {
        for (int64_t s = tid; s < S; s += kThreads) cur[s] = s < 2 ? LSM(0, ext[s]) : -INFINITY;
        __syncthreads();
        for (int64_t t = 1; t < Tb; ++t) {
            const double *prev = cur;
            cur = GRAD ? alpha + t * a.Smax : alpha + (t & 1) * a.Smax;
            for (int64_t s = tid; s < S; s += kThreads) {
                double v = prev[s];
                if (s >= 1) v = lse2(v, prev[s - 1]);
                if (s >= 2 && ext[s] != blank && ext[s] != ext[s - 2]) v = lse2(v, prev[s - 2]);
                cur[s] = v + LSM(t, ext[s]);
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
    const int64_t t_zero = (Tb == 0 || loss == INFINITY) ? 0 : Tb; /* rows from here on are 0 */
    for (int64_t i = t_zero * C + tid; i < T_ * C; i += kThreads) ob[i] = (T)0;
    if (t_zero == 0) return;
    /* next position of the same class (ascending s), and whether s is its class's first */
    int *next = a.next + b * a.Smax, *first = a.first + b * a.Smax;
    for (int64_t s = tid; s < S; s += kThreads) {
        int nx = -1, fs = 1;
        if ((s & 1) == 0) {
            nx = s + 2 < S ? (int)(s + 2) : -1;
            fs = s == 0;
        } else {
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
        }
        next[s] = nx;
        first[s] = fs;
    }
    double *beta = a.beta + b * 2 * a.Smax, *post = a.post + b * a.Smax;
    __syncthreads();
    for (int64_t t = Tb - 1; t >= 0; --t) {
        double *bc = beta + (t & 1) * a.Smax;
        const double *bn = beta + ((t + 1) & 1) * a.Smax;
        const double *al = alpha + t * a.Smax;
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
        for (int64_t c = tid; c < C; c += kThreads) ob[t * C + c] = (T)kb_mul(g0, exp(LSM(t, c)));
        __syncthreads();
        for (int64_t s = tid; s < S; s += kThreads) {
            if (!first[s]) continue;
            double acc = 0.0;
            for (int k = (int)s; k >= 0; k = next[k]) acc += post[k];
            const int c = ext[s];
            ob[t * C + c] = (T)kb_sub(kb_mul(g0, exp(LSM(t, c))), kb_mul(g0, acc));
        }
        __syncthreads();
    }
#undef LSM
}

/* ---- ctc_greedy_decode: one warp per sequence ---- */

template <typename T>
__global__ void k_greedy(const T *z, const void *il, bool il64, int64_t T_, int64_t C, int mode, int64_t *path,
                         T *logp) {
    const int64_t b = blockIdx.x;
    const int lane = threadIdx.x;
    int64_t Tb = ld_len(il, il64, b);
    Tb = Tb < 0 ? 0 : Tb > T_ ? T_ : Tb;
    int64_t k = 0, prev = -1;
    double acc = 0.0;
    for (int64_t t = 0; t < Tb; ++t) {
        const T *row = z + (b * T_ + t) * C;
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
            acc += -bv;
            if (mode == 0 && bi != C - 1 && bi != prev) path[b * T_ + k++] = bi;
            prev = bi;
        }
    }
    if (lane != 0) return;
    if (mode == 0)
        for (; k < T_; ++k) path[b * T_ + k] = -1;
    else
        logp[b] = (T)acc;
}

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
    const int64_t BS = a.B * a.Smax;
    const int64_t n_int = (GRAD ? 3 : 1) * BS;
    const int64_t n_dbl = a.B * a.T + (GRAD ? a.B * a.T * a.Smax + 2 * BS + BS : 2 * BS);
    const size_t bytes = (size_t)n_dbl * sizeof(double) + (size_t)n_int * sizeof(int);
    void *mem = nullptr;
    KB_TRY(kb_cuda_scratch_alloc(dev, bytes, &mem));
    double *d = (double *)mem;
    a.lse = d;
    d += a.B * a.T;
    a.alpha = d;
    d += GRAD ? a.B * a.T * a.Smax : 2 * BS;
    if (GRAD) {
        a.beta = d;
        d += 2 * BS;
        a.post = d;
        d += BS;
    }
    int *ip = (int *)d;
    a.ext = ip;
    if (GRAD) {
        a.next = ip + BS;
        a.first = ip + 2 * BS;
    }
    k_ctc<T, GRAD><<<(unsigned)a.B, kThreads, 0, dev->stream>>>((const T *)in[0].data,
                                                               GRAD ? (const T *)in[4].data : nullptr, (T *)out->data, a);
    cudaError_t e = cudaGetLastError();
    kb_cuda_scratch_free(dev, mem);
    KB_CUDA_CHECK(e);
    return KB_OK;
}

template <typename T>
kb_status greedy_t(const kb_exec *ex, const kb_attrs *at, const kb_buf *in, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    const int64_t B = in[0].shape[0];
    if (B == 0) return KB_OK;
    const int mode = (int)at->i64[0];
    k_greedy<T><<<(unsigned)B, 32, 0, dev->stream>>>((const T *)in[0].data, in[1].data, in[1].dtype == KB_INT64,
                                                     in[0].shape[1], in[0].shape[2], mode,
                                                     mode == 0 ? (int64_t *)out->data : nullptr,
                                                     mode == 0 ? nullptr : (T *)out->data);
    KB_CUDA_CHECK(cudaGetLastError());
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
