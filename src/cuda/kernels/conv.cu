/* CUDA kernels of the conv family: conv2d / conv3d and their backward-data / backward-filter ops
 * through cuDNN's legacy API (float16, bfloat16, float32, float64), pool2d / pool3d and their
 * gradients through cuDNN pooling or own kernels. Attribute layouts: ops/conv.c. Geometry is kept
 * in three spatial dims (d, h, w); a 2-D op is a 3-D one of depth 1 for the helper kernels
 * (permute, pad / crop, own pooling), while the cuDNN descriptors keep the op's own rank (4-D
 * descriptors for 2-D ops, Nd descriptors for 3-D ops).
 *
 * Layouts. x / y / dy use N(D)HWC or NC(D)HW tensor descriptors as data_format says (3-D:
 * cudnnSetTensorNdDescriptor with explicit strides). The Keras kernel ((kd,) kh, kw, in, out) is
 * no cuDNN filter layout, so it is permuted into a scratch buffer: K(T)RSC (out, (kd,) kh, kw, in)
 * for channels-last data (filter format CUDNN_TENSOR_NHWC), KC(T)RS (out, in, (kd,) kh, kw) for
 * channels-first data; backward-filter writes that layout and is permuted back.
 *
 * Padding. cuDNN pads symmetrically. TF 'same' puts the odd extra plane / row / column at the back
 * / bottom / right: then x is copied into a scratch buffer one larger on those axes (zeros at the
 * end) and cuDNN runs with the front / top / left pad; backward-data writes that larger buffer and
 * is cropped.
 *
 * Math. float32 is strict FP32 by default: the convolution descriptors use CUDNN_FMA_MATH and an
 * algorithm reported with tensor-op math is never picked (cuDNN's DEFAULT math would take TF32);
 * with kb_set_allow_tf32 on, float32 uses CUDNN_DEFAULT_MATH and the algorithm's own math type.
 * float16 / bfloat16 compute in float32 with tensor ops allowed; float64 in float64.
 *
 * Plans. Descriptors and the algorithm of each direction (cudnnGetConvolution*Algorithm_v7,
 * heuristic only: no allocation, no synchronisation, so capture-safe) are made once per
 * (GPU ordinal, dtype, layout, math, spatial rank, shapes, strides, pads, dilation) and kept in a
 * process-wide table for the life of the process (a model has a handful of conv shapes). The
 * table is guarded by a mutex; a plan is never changed after its algorithm is chosen, so launches
 * read it unlocked. Workspaces come from the device pool (kb_cuda_scratch_alloc) and are freed
 * right after the call.
 *
 * Groups. A grouped convolution (attribute groups G > 1; depthwise_conv2d is G = C) sets
 * cudnnSetConvolutionGroupCount(G) on the convolution descriptors, with filter dims (O, C / G,
 * (KD,) KH, KW) in the same KRSC / KCRS layouts (the Keras kernel (window, C / G, O) permuted as
 * for G = 1); the plan key includes G. If cuDNN offers no algorithm (strict FP32 included) in the
 * channels-last layout, the channels-first route is tried as for G = 1; if none there either, own
 * direct kernels run (grouped_direct: one thread per output element, sums in double).
 */
#include <vector>

#include "cuda/kernels/common.cuh"

namespace {

enum { FWD = 0, BWD_DATA = 1, BWD_FILTER = 2 };

/* One spatial axis of a window k (dilated size), stride s: output size and the pads before / after
 * (TF 'same': the odd extra after; 'valid': none). */
void pool_axis(int64_t in, int64_t k_eff, int64_t s, int same, int64_t *out, int64_t *before, int64_t *after) {
    *before = *after = 0;
    if (same) {
        *out = (in + s - 1) / s;
        int64_t total = (*out - 1) * s + k_eff - in;
        if (total > 0) {
            *before = total / 2;
            *after = total - total / 2;
        }
    } else {
        *out = (in - k_eff) / s + 1;
    }
}

#ifdef KB_WITH_CUDNN

struct dims5 {
    int64_t d[5];
};

/* dst (N, d1, .., d4) from src (N, s1, .., s4): the element at the same index, zero past src's end
 * (pads or crops the end of axes 1..4). */
template <typename T>
__global__ void k_resize_end(const T *src, dims5 s, T *dst, dims5 d, int64_t n) {
    KB_GRID_LOOP(i, n) {
        int64_t r = i, idx[5];
        for (int a = 4; a >= 1; --a) {
            idx[a] = r % d.d[a];
            r /= d.d[a];
        }
        idx[0] = r;
        bool inside = idx[1] < s.d[1] && idx[2] < s.d[2] && idx[3] < s.d[3] && idx[4] < s.d[4];
        dst[i] = inside ? src[(((idx[0] * s.d[1] + idx[1]) * s.d[2] + idx[2]) * s.d[3] + idx[3]) * s.d[4] + idx[4]]
                        : kb_dev_store<T>(0.0);
    }
}

/* dst = src permuted: dst axis a is src axis perm[a]; st[a] = src stride of that axis. */
template <typename T>
__global__ void k_permute5(const T *src, T *dst, dims5 od, dims5 st, int64_t n) {
    KB_GRID_LOOP(i, n) {
        int64_t r = i, off = 0;
        for (int a = 4; a >= 0; --a) {
            off += (r % od.d[a]) * st.d[a];
            r /= od.d[a];
        }
        dst[i] = src[off];
    }
}

template <typename T>
kb_status launch_permute(kb_cuda_device *dev, const T *src, const int64_t sd[5], const int perm[5], T *dst) {
    dims5 od, st;
    int64_t sst[5], n = 1;
    sst[4] = 1;
    for (int a = 3; a >= 0; --a) sst[a] = sst[a + 1] * sd[a + 1];
    for (int a = 0; a < 5; ++a) {
        od.d[a] = sd[perm[a]];
        st.d[a] = sst[perm[a]];
        n *= sd[a];
    }
    k_permute5<T><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>(src, dst, od, st, n);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

template <typename T>
kb_status launch_resize(kb_cuda_device *dev, const T *src, const int64_t sd[5], T *dst, const int64_t dd[5]) {
    dims5 s, d;
    int64_t n = 1;
    for (int a = 0; a < 5; ++a) {
        s.d[a] = sd[a];
        d.d[a] = dd[a];
        n *= dd[a];
    }
    k_resize_end<T><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>(src, s, dst, d, n);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

/* Conv geometry from the attributes and the concrete shapes (the formula of ops/conv.c), in three
 * spatial dims (2-D: depth 1, window 1, no pad). pf / pk: front / back pads of the depth axis. */
struct conv_geom {
    int64_t N, C, O, D, H, W, KD, KH, KW, OD, OH, OW, sd, sh, sw, dd, dh, dw, pf, pk, pt, pb, pl, pr;
    int cf, nsp;
};

void axis_geom(int64_t in, int64_t k, int64_t s, int64_t d, int same, int64_t *out, int64_t *before, int64_t *after) {
    pool_axis(in, (k - 1) * d + 1, s, same, out, before, after);
}

conv_geom conv_geom_of(const kb_attrs *a, const kb_buf *x, const kb_buf *k) {
    conv_geom g;
    int nsp = x->rank - 2, lead = 3 - nsp, same = a->i64[2 * nsp] != 0;
    g.nsp = nsp;
    g.cf = a->i64[2 * nsp + 1] != 0;
    g.N = x->shape[0];
    g.C = x->shape[g.cf ? 1 : nsp + 1];
    g.O = k->shape[nsp + 1];
    int64_t in[3] = {1, 1, 1}, kk[3] = {1, 1, 1}, s[3] = {1, 1, 1}, d[3] = {1, 1, 1}, out[3], lo[3], hi[3];
    for (int i = 0; i < nsp; ++i) {
        in[lead + i] = x->shape[(g.cf ? 2 : 1) + i];
        kk[lead + i] = k->shape[i];
        s[lead + i] = a->i64[i];
        d[lead + i] = a->i64[nsp + i];
    }
    for (int i = 0; i < 3; ++i) axis_geom(in[i], kk[i], s[i], d[i], same, &out[i], &lo[i], &hi[i]);
    g.D = in[0], g.H = in[1], g.W = in[2];
    g.KD = kk[0], g.KH = kk[1], g.KW = kk[2];
    g.OD = out[0], g.OH = out[1], g.OW = out[2];
    g.sd = s[0], g.sh = s[1], g.sw = s[2];
    g.dd = d[0], g.dh = d[1], g.dw = d[2];
    g.pf = lo[0], g.pk = hi[0], g.pt = lo[1], g.pb = hi[1], g.pl = lo[2], g.pr = hi[2];
    return g;
}

/* A tensor's 5 dims in memory order for data format cf, from (n, c, d, h, w). */
void mem_dims(int cf, int64_t n, int64_t c, int64_t d, int64_t h, int64_t w, int64_t out[5]) {
    out[0] = n;
    out[1] = cf ? c : d;
    out[2] = cf ? d : h;
    out[3] = cf ? h : w;
    out[4] = cf ? w : c;
}

kb_status zero_output(kb_cuda_device *dev, kb_buf *out) {
    KB_CUDA_CHECK(cudaMemsetAsync(out->data, 0, (size_t)out->size * kb_dtype_size(out->dtype), dev->stream));
    return KB_OK;
}

template <typename T> struct cudnn_type;
template <> struct cudnn_type<float> {
    static constexpr cudnnDataType_t data = CUDNN_DATA_FLOAT, compute = CUDNN_DATA_FLOAT;
};
template <> struct cudnn_type<double> {
    static constexpr cudnnDataType_t data = CUDNN_DATA_DOUBLE, compute = CUDNN_DATA_DOUBLE;
};
template <> struct cudnn_type<__half> {
    static constexpr cudnnDataType_t data = CUDNN_DATA_HALF, compute = CUDNN_DATA_FLOAT;
};
template <> struct cudnn_type<__nv_bfloat16> {
    static constexpr cudnnDataType_t data = CUDNN_DATA_BFLOAT16, compute = CUDNN_DATA_FLOAT;
};

/* alpha / beta of a cuDNN call: double for float64 data, float otherwise. */
template <typename T> struct cudnn_scale {
    float one = 1.0f, zero = 0.0f;
};
template <> struct cudnn_scale<double> {
    double one = 1.0, zero = 0.0;
};

/* A 5-D (N, C, D, H, W) tensor descriptor in NCDHW (cf) or NDHWC memory order: explicit strides. */
kb_status set_tensor5d(cudnnTensorDescriptor_t t, cudnnDataType_t data, int cf, int64_t n, int64_t c, int64_t d,
                       int64_t h, int64_t w) {
    int dims[5] = {(int)n, (int)c, (int)d, (int)h, (int)w};
    int64_t st[5];
    if (cf) {
        st[4] = 1, st[3] = w, st[2] = h * w, st[1] = d * h * w, st[0] = c * d * h * w;
    } else {
        st[1] = 1, st[4] = c, st[3] = w * c, st[2] = h * w * c, st[0] = d * h * w * c;
    }
    int sti[5];
    for (int i = 0; i < 5; ++i) {
        if (st[i] > INT32_MAX)
            return kb_set_error(KB_ERR_NOT_SUPPORTED, "cuDNN takes int strides; a stride is %lld", (long long)st[i]);
        sti[i] = (int)st[i];
    }
    KB_CUDNN_CHECK(cudnnSetTensorNdDescriptor(t, data, 5, dims, sti));
    return KB_OK;
}

/* The plan key: every field set (the struct is zeroed first, so memcmp is exact). */
struct conv_key {
    int ordinal, dtype, cf, strict, nsp;
    /* D, H, W: as cuDNN sees x (padded); 2-D: D = KD = sd = dd = 1, pd = 0 */
    int64_t N, C, D, H, W, O, KD, KH, KW, sd, sh, sw, dd, dh, dw, pd, ph, pw;
    int64_t G; /* groups (1 = ordinary); the filter is (O, C / G, window) */
};

struct conv_plan {
    conv_key key;
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd[3]; /* one per direction: each carries its algorithm's math type */
    int chosen[3];
    int none[3]; /* cuDNN offered no algorithm for that direction (asked once) */
    int algo[3];
    size_t ws[3];
};

std::mutex g_plan_mu;
std::vector<conv_plan *> g_plans; /* never freed: lives as long as the process */

int fits_int(int64_t v) { return v >= 0 && v <= INT32_MAX; }

kb_status make_plan(const conv_key &k, cudnnDataType_t data, cudnnDataType_t compute, conv_plan **out) {
    conv_plan *p = new conv_plan();
    p->key = k;
    cudnnTensorFormat_t fmt = k.cf ? CUDNN_TENSOR_NCHW : CUDNN_TENSOR_NHWC;
    int64_t OD = (k.D + 2 * k.pd - ((k.KD - 1) * k.dd + 1)) / k.sd + 1;
    int64_t OH = (k.H + 2 * k.ph - ((k.KH - 1) * k.dh + 1)) / k.sh + 1;
    int64_t OW = (k.W + 2 * k.pw - ((k.KW - 1) * k.dw + 1)) / k.sw + 1;
    cudnnMathType_t math = data == CUDNN_DATA_FLOAT ? (k.strict ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH)
                           : data == CUDNN_DATA_DOUBLE ? CUDNN_DEFAULT_MATH
                                                       : CUDNN_TENSOR_OP_MATH;
    KB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->xd));
    KB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->yd));
    KB_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->wd));
    for (int d = 0; d < 3; ++d) KB_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->cd[d]));
    if (k.nsp == 2) {
        KB_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->xd, fmt, data, (int)k.N, (int)k.C, (int)k.H, (int)k.W));
        KB_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->yd, fmt, data, (int)k.N, (int)k.O, (int)OH, (int)OW));
        KB_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->wd, data, fmt, (int)k.O, (int)(k.C / k.G), (int)k.KH, (int)k.KW));
        for (int d = 0; d < 3; ++d)
            KB_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->cd[d], (int)k.ph, (int)k.pw, (int)k.sh, (int)k.sw,
                                                           (int)k.dh, (int)k.dw, CUDNN_CROSS_CORRELATION, compute));
    } else {
        KB_TRY(set_tensor5d(p->xd, data, k.cf, k.N, k.C, k.D, k.H, k.W));
        KB_TRY(set_tensor5d(p->yd, data, k.cf, k.N, k.O, OD, OH, OW));
        /* Filter dims are always given as (K, C, T, R, S); the format says the memory order. */
        const int fdims[5] = {(int)k.O, (int)(k.C / k.G), (int)k.KD, (int)k.KH, (int)k.KW};
        KB_CUDNN_CHECK(cudnnSetFilterNdDescriptor(p->wd, data, fmt, 5, fdims));
        const int pad[3] = {(int)k.pd, (int)k.ph, (int)k.pw}, str[3] = {(int)k.sd, (int)k.sh, (int)k.sw};
        const int dil[3] = {(int)k.dd, (int)k.dh, (int)k.dw};
        for (int d = 0; d < 3; ++d)
            KB_CUDNN_CHECK(cudnnSetConvolutionNdDescriptor(p->cd[d], 3, pad, str, dil, CUDNN_CROSS_CORRELATION, compute));
    }
    for (int d = 0; d < 3; ++d) KB_CUDNN_CHECK(cudnnSetConvolutionMathType(p->cd[d], math));
    if (k.G > 1)
        for (int d = 0; d < 3; ++d) KB_CUDNN_CHECK(cudnnSetConvolutionGroupCount(p->cd[d], (int)k.G));
    *out = p;
    return KB_OK;
}

/* The first successful result of the heuristic that keeps strict FP32 (no tensor-op math) and,
 * if any does, a workspace of at most 1 GiB; -1 if none. */
template <typename Perf>
int pick_algo(const Perf *perf, int n, int strict) {
    for (int pass = 0; pass < 2; ++pass)
        for (int i = 0; i < n; ++i) {
            if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
            if (strict && (perf[i].mathType == CUDNN_TENSOR_OP_MATH ||
                           perf[i].mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION))
                continue;
            if (pass == 0 && perf[i].memory > ((size_t)1 << 30)) continue;
            return i;
        }
    return -1;
}

kb_status no_algo(const char *op, int dir) {
    static const char *names[3] = {"forward", "backward-data", "backward-filter"};
    return kb_set_error(KB_ERR_NOT_SUPPORTED, "%s: cuDNN offers no %s convolution algorithm for this shape%s",
                        op ? op : "conv", names[dir], " (with strict FP32 math)");
}
/* No algorithm for direction dir: remembered in the plan, reported by the caller (no error set,
 * so a channels-last launch can take the channels-first route instead). */
kb_status mark_none(conv_plan *p, int dir) {
    p->none[dir] = 1;
    return KB_ERR_NOT_SUPPORTED;
}
/* Choose the algorithm of direction dir once (caller holds g_plan_mu); KB_ERR_NOT_SUPPORTED with no
 * error set when cuDNN offers none. */
kb_status choose_algo(cudnnHandle_t h, conv_plan *p, int dir) {
    int strict = p->key.strict, got = 0, i;
    cudnnMathType_t math;
    if (dir == FWD) {
        cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        KB_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, p->xd, p->wd, p->cd[dir], p->yd,
                                                              CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf));
        if ((i = pick_algo(perf, got, strict)) < 0) return mark_none(p, dir);
        p->algo[dir] = (int)perf[i].algo;
        math = perf[i].mathType;
    } else if (dir == BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        KB_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p->wd, p->yd, p->cd[dir], p->xd,
                                                                   CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, perf));
        if ((i = pick_algo(perf, got, strict)) < 0) return mark_none(p, dir);
        p->algo[dir] = (int)perf[i].algo;
        math = perf[i].mathType;
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        KB_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
            h, p->xd, p->yd, p->cd[dir], p->wd, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, perf));
        if ((i = pick_algo(perf, got, strict)) < 0) return mark_none(p, dir);
        p->algo[dir] = (int)perf[i].algo;
        math = perf[i].mathType;
    }
    /* Strict FP32 keeps CUDNN_FMA_MATH on the descriptor whatever the result reports. */
    if (!strict) KB_CUDNN_CHECK(cudnnSetConvolutionMathType(p->cd[dir], math));
    size_t ws = 0;
    if (dir == FWD)
        KB_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, p->xd, p->wd, p->cd[dir], p->yd,
                                                               (cudnnConvolutionFwdAlgo_t)p->algo[dir], &ws));
    else if (dir == BWD_DATA)
        KB_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(h, p->wd, p->yd, p->cd[dir], p->xd,
                                                                    (cudnnConvolutionBwdDataAlgo_t)p->algo[dir], &ws));
    else
        KB_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(
            h, p->xd, p->yd, p->cd[dir], p->wd, (cudnnConvolutionBwdFilterAlgo_t)p->algo[dir], &ws));
    p->ws[dir] = ws;
    p->chosen[dir] = 1;
    return KB_OK;
}

/* The plan of key k with direction dir's algorithm chosen. KB_ERR_NOT_SUPPORTED without an error
 * set when cuDNN offers no algorithm for it (see mark_none). */
kb_status get_plan(cudnnHandle_t h, const conv_key &k, cudnnDataType_t data, cudnnDataType_t compute, int dir,
                   const conv_plan **out) {
    std::lock_guard<std::mutex> lock(g_plan_mu);
    conv_plan *p = nullptr;
    for (conv_plan *q : g_plans)
        if (memcmp(&q->key, &k, sizeof k) == 0) {
            p = q;
            break;
        }
    if (!p) {
        kb_status s = make_plan(k, data, compute, &p);
        if (s != KB_OK) return s; /* a half-made plan is dropped (its descriptors leak once) */
        g_plans.push_back(p);
    }
    if (p->none[dir]) return KB_ERR_NOT_SUPPORTED;
    if (!p->chosen[dir]) KB_TRY(choose_algo(h, p, dir));
    *out = p;
    return KB_OK;
}

/* ---- grouped convolution fallback: own direct kernels ------------------------------------------ */
/* Used for a grouped convolution (G > 1) when cuDNN offers no algorithm in either data format.
 * Geometry as conv_geom (unpadded x; the front pads pf / pt / pl, taps past either end skipped).
 * Cg = C / G input and Og = O / G output channels per group; the Keras kernel (window, Cg, O) is
 * read in place. One thread per output element, grid-stride, sums in double. */
struct grp_geom {
    conv_geom g;
    int64_t G, Cg, Og;
};

__device__ __forceinline__ int64_t goff(int cf, int64_t C, int64_t D, int64_t H, int64_t W, int64_t n, int64_t c,
                                        int64_t d, int64_t h, int64_t w) {
    return cf ? (((n * C + c) * D + d) * H + h) * W + w : (((n * D + d) * H + h) * W + w) * C + c;
}

/* Memory-order index i of a (n, c, d, h, w) tensor in format cf -> its coordinates. */
__device__ __forceinline__ void gcoords(int cf, int64_t i, int64_t C, int64_t D, int64_t H, int64_t W, int64_t *n,
                                        int64_t *c, int64_t *d, int64_t *h, int64_t *w) {
    if (cf) {
        *w = i % W, i /= W;
        *h = i % H, i /= H;
        *d = i % D, i /= D;
        *c = i % C, *n = i / C;
    } else {
        *c = i % C, i /= C;
        *w = i % W, i /= W;
        *h = i % H, i /= H;
        *d = i % D, *n = i / D;
    }
}

template <typename T>
__global__ void k_grouped_fwd(const T *x, const T *k, T *y, grp_geom q, int64_t total) {
    const conv_geom &g = q.g;
    KB_GRID_LOOP(i, total) {
        int64_t n, o, od, oh, ow;
        gcoords(g.cf, i, g.O, g.OD, g.OH, g.OW, &n, &o, &od, &oh, &ow);
        int64_t c0 = o / q.Og * q.Cg;
        double acc = 0.0;
        for (int64_t kd = 0; kd < g.KD; ++kd) {
            int64_t id = od * g.sd - g.pf + kd * g.dd;
            if (id < 0 || id >= g.D) continue;
            for (int64_t kh = 0; kh < g.KH; ++kh) {
                int64_t ih = oh * g.sh - g.pt + kh * g.dh;
                if (ih < 0 || ih >= g.H) continue;
                for (int64_t kw = 0; kw < g.KW; ++kw) {
                    int64_t iw = ow * g.sw - g.pl + kw * g.dw;
                    if (iw < 0 || iw >= g.W) continue;
                    int64_t t = (kd * g.KH + kh) * g.KW + kw;
                    for (int64_t ci = 0; ci < q.Cg; ++ci)
                        acc += kb_dev_load(x[goff(g.cf, g.C, g.D, g.H, g.W, n, c0 + ci, id, ih, iw)]) *
                               kb_dev_load(k[(t * q.Cg + ci) * g.O + o]);
                }
            }
        }
        y[i] = kb_dev_store<T>(acc);
    }
}

/* dx[n, c, id, ih, iw] = sum over the group's outputs o and the taps that reach (id, ih, iw). */
template <typename T>
__global__ void k_grouped_bwd_data(T *dx, const T *k, const T *dy, grp_geom q, int64_t total) {
    const conv_geom &g = q.g;
    KB_GRID_LOOP(i, total) {
        int64_t n, c, id, ih, iw;
        gcoords(g.cf, i, g.C, g.D, g.H, g.W, &n, &c, &id, &ih, &iw);
        int64_t gi = c / q.Cg, ci = c % q.Cg;
        double acc = 0.0;
        for (int64_t kd = 0; kd < g.KD; ++kd) {
            int64_t pd = id + g.pf - kd * g.dd; /* od * sd */
            if (pd < 0 || pd % g.sd != 0 || pd / g.sd >= g.OD) continue;
            for (int64_t kh = 0; kh < g.KH; ++kh) {
                int64_t ph = ih + g.pt - kh * g.dh;
                if (ph < 0 || ph % g.sh != 0 || ph / g.sh >= g.OH) continue;
                for (int64_t kw = 0; kw < g.KW; ++kw) {
                    int64_t pw = iw + g.pl - kw * g.dw;
                    if (pw < 0 || pw % g.sw != 0 || pw / g.sw >= g.OW) continue;
                    int64_t t = (kd * g.KH + kh) * g.KW + kw;
                    for (int64_t o = gi * q.Og; o < (gi + 1) * q.Og; ++o)
                        acc += kb_dev_load(dy[goff(g.cf, g.O, g.OD, g.OH, g.OW, n, o, pd / g.sd, ph / g.sh,
                                                   pw / g.sw)]) *
                               kb_dev_load(k[(t * q.Cg + ci) * g.O + o]);
                }
            }
        }
        dx[i] = kb_dev_store<T>(acc);
    }
}

/* dk[t, ci, o] = sum over images and output pixels of dy[n, o, ..] x[n, c0 + ci, tap t's pixel]. */
template <typename T>
__global__ void k_grouped_bwd_filter(const T *x, T *dk, const T *dy, grp_geom q, int64_t total) {
    const conv_geom &g = q.g;
    KB_GRID_LOOP(i, total) {
        int64_t o = i % g.O, r = i / g.O;
        int64_t ci = r % q.Cg, t = r / q.Cg;
        int64_t kw = t % g.KW, kh = t / g.KW % g.KH, kd = t / (g.KW * g.KH);
        int64_t c = o / q.Og * q.Cg + ci;
        double acc = 0.0;
        for (int64_t n = 0; n < g.N; ++n)
            for (int64_t od = 0; od < g.OD; ++od) {
                int64_t id = od * g.sd - g.pf + kd * g.dd;
                if (id < 0 || id >= g.D) continue;
                for (int64_t oh = 0; oh < g.OH; ++oh) {
                    int64_t ih = oh * g.sh - g.pt + kh * g.dh;
                    if (ih < 0 || ih >= g.H) continue;
                    for (int64_t ow = 0; ow < g.OW; ++ow) {
                        int64_t iw = ow * g.sw - g.pl + kw * g.dw;
                        if (iw < 0 || iw >= g.W) continue;
                        acc += kb_dev_load(dy[goff(g.cf, g.O, g.OD, g.OH, g.OW, n, o, od, oh, ow)]) *
                               kb_dev_load(x[goff(g.cf, g.C, g.D, g.H, g.W, n, c, id, ih, iw)]);
                    }
                }
            }
        dk[i] = kb_dev_store<T>(acc);
    }
}

template <typename T>
kb_status grouped_direct(kb_cuda_device *dev, const kb_buf *xb, const kb_buf *kbuf, const kb_buf *yb, int dir,
                         const conv_geom &g, int64_t G) {
    grp_geom q;
    q.g = g;
    q.G = G;
    q.Cg = g.C / G;
    q.Og = g.O / G;
    T *x = (T *)xb->data, *k = (T *)kbuf->data, *y = (T *)yb->data;
    int64_t n = dir == FWD ? yb->size : dir == BWD_DATA ? xb->size : kbuf->size;
    unsigned blocks = kb_blocks(dev, n, KB_THREADS);
    if (dir == FWD) k_grouped_fwd<T><<<blocks, KB_THREADS, 0, dev->stream>>>(x, k, y, q, n);
    else if (dir == BWD_DATA) k_grouped_bwd_data<T><<<blocks, KB_THREADS, 0, dev->stream>>>(x, k, y, q, n);
    else k_grouped_bwd_filter<T><<<blocks, KB_THREADS, 0, dev->stream>>>(x, k, y, q, n);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

template <typename T>
kb_status conv_via_cf(const kb_exec *ex, const kb_attrs *a, const kb_buf *xb, const kb_buf *kbuf, const kb_buf *yb,
                      int dir, const conv_geom &g);

/* One conv launch. x: image tensor (input of FWD / BWD_FILTER, output of BWD_DATA), k: Keras
 * kernel (output of BWD_FILTER), y: output of FWD or dy. */
template <typename T>
kb_status conv_exec(const kb_exec *ex, const kb_attrs *a, const kb_buf *xb, const kb_buf *kbuf, const kb_buf *yb,
                    kb_buf *out, int dir) {
    kb_cuda_device *dev = kb_cuda_dev(ex);
    KB_TRY(kb_cuda_bind(dev));
    conv_geom g = conv_geom_of(a, xb, kbuf);
    int64_t G = a->i64[2 * g.nsp + 2] > 1 ? a->i64[2 * g.nsp + 2] : 1, Cg = g.C / G;
    if (xb->size == 0 || kbuf->size == 0 || yb->size == 0) return zero_output(dev, out);
    int64_t Dp = g.D + (g.pk - g.pf), Hp = g.H + (g.pb - g.pt), Wp = g.W + (g.pr - g.pl);
    int padded = Dp != g.D || Hp != g.H || Wp != g.W;
    const int64_t big[] = {g.N, g.C, Dp, Hp, Wp, g.O, g.KD, g.KH, g.KW, g.OD, g.OH, g.OW, g.pf, g.pt, g.pl,
                           g.dd, g.dh, g.dw, g.sd, g.sh, g.sw};
    for (int64_t v : big)
        if (!fits_int(v))
            return kb_set_error(KB_ERR_NOT_SUPPORTED, "%s: cuDNN takes int dims; a dim is %lld", ex->op,
                                (long long)v);
    cudnnHandle_t h;
    KB_TRY(kb_cuda_cudnn(dev, &h));
    conv_key key;
    memset(&key, 0, sizeof key);
    key.ordinal = dev->ordinal;
    key.dtype = (int)xb->dtype;
    key.cf = g.cf;
    key.strict = xb->dtype == KB_FLOAT32 && !dev->allow_tf32;
    key.nsp = g.nsp;
    key.N = g.N, key.C = g.C, key.D = Dp, key.H = Hp, key.W = Wp, key.O = g.O;
    key.KD = g.KD, key.KH = g.KH, key.KW = g.KW;
    key.sd = g.sd, key.sh = g.sh, key.sw = g.sw, key.dd = g.dd, key.dh = g.dh, key.dw = g.dw;
    key.pd = g.pf, key.ph = g.pt, key.pw = g.pl;
    key.G = G;
    const conv_plan *p = nullptr;
    kb_status ps = get_plan(h, key, cudnn_type<T>::data, cudnn_type<T>::compute, dir, &p);
    if (ps == KB_ERR_NOT_SUPPORTED && !p) {
        /* cuDNN has no channels-last algorithm for some shapes and dtypes (float64 backward and 3-D
         * on cuDNN 9.14): transpose to channels-first, which it covers, and back */
        if (!g.cf) return conv_via_cf<T>(ex, a, xb, kbuf, yb, dir, g);
        if (G > 1) return grouped_direct<T>(dev, xb, kbuf, yb, dir, g, G);
        return no_algo(ex->op, dir);
    }
    KB_TRY(ps);

    kb_scratch_set sc(dev);
    void *wf, *xp = nullptr, *ws;
    size_t es = sizeof(T);
    KB_TRY(sc.get((size_t)kbuf->size * es, &wf));
    if (padded) KB_TRY(sc.get((size_t)(g.N * g.C * Dp * Hp * Wp) * es, &xp));
    KB_TRY(sc.get(p->ws[dir], &ws));
    /* Keras (kd, kh, kw, in, out) <-> cuDNN KTRSC (channels-last data) or KCTRS (channels-first);
     * 2-D kernels are the kd = 1 case. */
    const int to_ktrsc[5] = {4, 0, 1, 2, 3}, to_kctrs[5] = {4, 3, 0, 1, 2};
    const int from_ktrsc[5] = {1, 2, 3, 4, 0}, from_kctrs[5] = {2, 3, 4, 1, 0};
    const int64_t kd[5] = {g.KD, g.KH, g.KW, Cg, g.O};
    int64_t fd[5];
    if (g.cf) {
        fd[0] = g.O, fd[1] = Cg, fd[2] = g.KD, fd[3] = g.KH, fd[4] = g.KW;
    } else {
        fd[0] = g.O, fd[1] = g.KD, fd[2] = g.KH, fd[3] = g.KW, fd[4] = Cg;
    }
    int64_t xd[5], xpd[5];
    mem_dims(g.cf, g.N, g.C, g.D, g.H, g.W, xd);
    mem_dims(g.cf, g.N, g.C, Dp, Hp, Wp, xpd);
    cudnn_scale<T> sc1;
    T *x = (T *)xb->data, *kk = (T *)kbuf->data, *y = (T *)yb->data;
    if (dir != BWD_FILTER) KB_TRY(launch_permute<T>(dev, kk, kd, g.cf ? to_kctrs : to_ktrsc, (T *)wf));
    if (dir != BWD_DATA && padded) KB_TRY(launch_resize<T>(dev, x, xd, (T *)xp, xpd));
    const void *xin = padded ? xp : x;
    if (dir == FWD) {
        KB_CUDNN_CHECK(cudnnConvolutionForward(h, &sc1.one, p->xd, xin, p->wd, wf, p->cd[FWD],
                                               (cudnnConvolutionFwdAlgo_t)p->algo[FWD], ws, p->ws[FWD], &sc1.zero,
                                               p->yd, y));
    } else if (dir == BWD_DATA) {
        KB_CUDNN_CHECK(cudnnConvolutionBackwardData(h, &sc1.one, p->wd, wf, p->yd, y, p->cd[BWD_DATA],
                                                    (cudnnConvolutionBwdDataAlgo_t)p->algo[BWD_DATA], ws,
                                                    p->ws[BWD_DATA], &sc1.zero, p->xd, padded ? xp : (void *)x));
        if (padded) KB_TRY(launch_resize<T>(dev, (const T *)xp, xpd, x, xd));
    } else {
        KB_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &sc1.one, p->xd, xin, p->yd, y, p->cd[BWD_FILTER],
                                                      (cudnnConvolutionBwdFilterAlgo_t)p->algo[BWD_FILTER], ws,
                                                      p->ws[BWD_FILTER], &sc1.zero, p->wd, wf));
        KB_TRY(launch_permute<T>(dev, (const T *)wf, fd, g.cf ? from_kctrs : from_ktrsc, kk));
    }
    (void)out;
    return KB_OK;
}

/* A channels-first buffer of n images, c channels and the spatial dims of g (nsp of them). */
kb_buf cf_buf(const conv_geom &g, int64_t c, int64_t d, int64_t h, int64_t w) {
    kb_buf b;
    memset(&b, 0, sizeof b);
    b.rank = g.nsp + 2;
    b.shape[0] = g.N, b.shape[1] = c;
    if (g.nsp == 3) b.shape[2] = d;
    b.shape[b.rank - 2] = h, b.shape[b.rank - 1] = w;
    b.size = g.N * c * d * h * w;
    return b;
}

/* The channels-last launch of direction dir as a channels-first one: the image operands are
 * transposed into scratch (NDHWC -> NCDHW; 2-D is depth 1), the launch runs with the channels_first
 * flag, and the image result is transposed back. The kernel keeps its Keras layout throughout. */
template <typename T>
kb_status conv_via_cf(const kb_exec *ex, const kb_attrs *a, const kb_buf *xb, const kb_buf *kbuf, const kb_buf *yb,
                      int dir, const conv_geom &g) {
    kb_cuda_device *dev = kb_cuda_dev(ex);
    kb_attrs acf = *a;
    acf.i64[2 * g.nsp + 1] = 1;
    kb_buf xc = cf_buf(g, g.C, g.D, g.H, g.W), yc = cf_buf(g, g.O, g.OD, g.OH, g.OW), kc = *kbuf;
    xc.dtype = yc.dtype = xb->dtype;
    kb_scratch_set sc(dev);
    KB_TRY(sc.get((size_t)xc.size * sizeof(T), &xc.data));
    KB_TRY(sc.get((size_t)yc.size * sizeof(T), &yc.data));
    const int to_cf[5] = {0, 4, 1, 2, 3}, to_cl[5] = {0, 2, 3, 4, 1};
    const int64_t xl[5] = {g.N, g.D, g.H, g.W, g.C}, yl[5] = {g.N, g.OD, g.OH, g.OW, g.O};
    const int64_t xcd[5] = {g.N, g.C, g.D, g.H, g.W}, ycd[5] = {g.N, g.O, g.OD, g.OH, g.OW};
    if (dir != BWD_DATA) KB_TRY(launch_permute<T>(dev, (const T *)xb->data, xl, to_cf, (T *)xc.data));
    if (dir != FWD) KB_TRY(launch_permute<T>(dev, (const T *)yb->data, yl, to_cf, (T *)yc.data));
    KB_TRY(conv_exec<T>(ex, &acf, &xc, &kc, &yc, &kc, dir)); /* BWD_FILTER writes kc = the output kernel */
    if (dir == FWD) KB_TRY(launch_permute<T>(dev, (const T *)yc.data, ycd, to_cl, (T *)yb->data));
    if (dir == BWD_DATA) KB_TRY(launch_permute<T>(dev, (const T *)xc.data, xcd, to_cl, (T *)xb->data));
    return KB_OK;
}

#define CONV_DISPATCH(ex, dt, ...)                                                                  \
    do {                                                                                            \
        switch (dt) {                                                                               \
        case KB_FLOAT16: return conv_exec<__half>(__VA_ARGS__);                                     \
        case KB_BFLOAT16: return conv_exec<__nv_bfloat16>(__VA_ARGS__);                             \
        case KB_FLOAT32: return conv_exec<float>(__VA_ARGS__);                                      \
        case KB_FLOAT64: return conv_exec<double>(__VA_ARGS__);                                     \
        default: return kb_cuda_dtype_error(ex, dt, "float16, bfloat16, float32 or float64");      \
        }                                                                                           \
    } while (0)

#endif /* KB_WITH_CUDNN */

kb_status conv_dispatch(const kb_exec *ex, const kb_attrs *a, const kb_buf *x, const kb_buf *k, const kb_buf *y,
                        kb_buf *out, int dir) {
#ifdef KB_WITH_CUDNN
    CONV_DISPATCH(ex, x->dtype, ex, a, x, k, y, out, dir);
#else
    (void)a; (void)x; (void)k; (void)y; (void)out; (void)dir;
    return kb_set_error(KB_ERR_NOT_SUPPORTED, "%s: convolutions on CUDA need cuDNN (kb was built without it)", ex->op);
#endif
}

}  // namespace

/* The 2-D and 3-D entries share the launchers (the spatial rank is x's rank - 2). */
extern "C" kb_status kb_cuda_conv2d(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return conv_dispatch(ex, a, &in[0], &in[1], out, out, FWD);
}

extern "C" kb_status kb_cuda_conv2d_backprop_input(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                                   kb_buf *out) {
    (void)n_in;
    return conv_dispatch(ex, a, out, &in[1], &in[2], out, BWD_DATA);
}

extern "C" kb_status kb_cuda_conv2d_backprop_filter(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                                    kb_buf *out) {
    (void)n_in;
    return conv_dispatch(ex, a, &in[0], out, &in[2], out, BWD_FILTER);
}

extern "C" kb_status kb_cuda_conv3d(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    return kb_cuda_conv2d(ex, a, in, n_in, out);
}

extern "C" kb_status kb_cuda_conv3d_backprop_input(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                                   kb_buf *out) {
    return kb_cuda_conv2d_backprop_input(ex, a, in, n_in, out);
}

extern "C" kb_status kb_cuda_conv3d_backprop_filter(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                                    kb_buf *out) {
    return kb_cuda_conv2d_backprop_filter(ex, a, in, n_in, out);
}

/* ---- pool2d, pool3d ---------------------------------------------------------------------------- */
/* cuDNN pooling (CUDNN_POOLING_MAX_DETERMINISTIC / AVERAGE_COUNT_EXCLUDE_PADDING, NaN propagated)
 * when the pads are symmetric ('valid', or 'same' with an even pad total on every axis); our own
 * kernels otherwise (TF's odd extra pad at the end, which cuDNN cannot express), in builds without
 * cuDNN, and for a 3-D shape cuDNN reports as not supported. The own kernels take the first
 * maximum of each window in (d, h, w) row-major order, as the CPU kernel; cuDNN's deterministic
 * max picks one maximum too (ties: see docs). Geometry in three spatial dims (2-D: depth 1). */
namespace {

struct pool_geom {
    int64_t N, C, D, H, W, OD, OH, OW, KD, KH, KW, sd, sh, sw, pf, pk, pt, pb, pl, pr;
    int64_t xs[5], ys[5]; /* element strides of n, c, d, h, w in x and y */
    int cf, avg, nsp;
};

pool_geom pool_geom_of(const kb_attrs *a, const kb_buf *x) {
    pool_geom g;
    int nsp = x->rank - 2, lead = 3 - nsp, same = a->i64[2 * nsp] != 0;
    g.nsp = nsp;
    g.cf = a->i64[2 * nsp + 1] != 0;
    g.avg = a->i64[2 * nsp + 2] != 0;
    g.N = x->shape[0];
    g.C = x->shape[g.cf ? 1 : nsp + 1];
    int64_t in[3] = {1, 1, 1}, k[3] = {1, 1, 1}, s[3] = {1, 1, 1}, out[3], lo[3], hi[3];
    for (int i = 0; i < nsp; ++i) {
        in[lead + i] = x->shape[(g.cf ? 2 : 1) + i];
        k[lead + i] = a->i64[i];
        s[lead + i] = a->i64[nsp + i];
    }
    for (int i = 0; i < 3; ++i) pool_axis(in[i], k[i], s[i], same, &out[i], &lo[i], &hi[i]);
    g.D = in[0], g.H = in[1], g.W = in[2];
    g.KD = k[0], g.KH = k[1], g.KW = k[2];
    g.OD = out[0], g.OH = out[1], g.OW = out[2];
    g.sd = s[0], g.sh = s[1], g.sw = s[2];
    g.pf = lo[0], g.pk = hi[0], g.pt = lo[1], g.pb = hi[1], g.pl = lo[2], g.pr = hi[2];
    int64_t sp[2][3] = {{g.D, g.H, g.W}, {g.OD, g.OH, g.OW}};
    for (int t = 0; t < 2; ++t) {
        int64_t *st = t ? g.ys : g.xs, d = sp[t][0], h = sp[t][1], w = sp[t][2];
        st[0] = g.C * d * h * w;
        st[1] = g.cf ? d * h * w : 1;
        st[2] = g.cf ? h * w : h * w * g.C;
        st[3] = g.cf ? w : w * g.C;
        st[4] = g.cf ? 1 : g.C;
    }
    return g;
}

template <typename T> struct acc_of {
    using type = float;
};
template <> struct acc_of<double> {
    using type = double;
};

/* Window of output (od, oh, ow) of volume base, clipped; returns the value (max / mean) and *arg,
 * the offset of the first maximum. */
template <typename T>
__device__ typename acc_of<T>::type pool_window(const pool_geom &g, const T *x, int64_t base, int64_t od, int64_t oh,
                                                int64_t ow, int64_t *arg) {
    using A = typename acc_of<T>::type;
    int64_t d0 = od * g.sd - g.pf, h0 = oh * g.sh - g.pt, w0 = ow * g.sw - g.pl;
    int64_t d1 = min(d0 + g.KD, g.D), h1 = min(h0 + g.KH, g.H), w1 = min(w0 + g.KW, g.W);
    d0 = max(d0, (int64_t)0);
    h0 = max(h0, (int64_t)0);
    w0 = max(w0, (int64_t)0);
    A best = 0, sum = 0;
    int64_t where = -1;
    for (int64_t d = d0; d < d1; ++d)
        for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) {
                int64_t off = base + d * g.xs[2] + h * g.xs[3] + w * g.xs[4];
                A v = (A)kb_dev_load(x[off]);
                sum += v;
                if (where < 0 || v > best || (v != v && best == best)) best = v, where = off;
            }
    *arg = where;
    return g.avg ? sum / (A)((d1 - d0) * (h1 - h0) * (w1 - w0)) : best;
}

/* (n, c, d, h, w) of element i of a tensor of spatial dims (D, H, W) in memory order. */
__device__ void unravel(const pool_geom &g, int64_t i, int64_t D, int64_t H, int64_t W, int64_t *n, int64_t *c,
                        int64_t *d, int64_t *h, int64_t *w) {
    int64_t r = i;
    if (g.cf) {
        *w = r % W, r /= W, *h = r % H, r /= H, *d = r % D, r /= D, *c = r % g.C, *n = r / g.C;
    } else {
        *c = r % g.C, r /= g.C, *w = r % W, r /= W, *h = r % H, r /= H, *d = r % D, *n = r / D;
    }
}

/* One thread per output element, in y's memory order. */
template <typename T>
__global__ void k_pool_fwd(pool_geom g, const T *x, T *y, int64_t n) {
    KB_GRID_LOOP(i, n) {
        int64_t nn, c, od, oh, ow, arg;
        unravel(g, i, g.OD, g.OH, g.OW, &nn, &c, &od, &oh, &ow);
        y[i] = kb_dev_store<T>((double)pool_window(g, x, nn * g.xs[0] + c * g.xs[1], od, oh, ow, &arg));
    }
}

/* Outputs o whose window [o s - p, o s - p + k) holds index v: [ceil((v + p - k + 1) / s),
 * floor((v + p) / s)] clipped to [0, O - 1]. */
__device__ void windows_of(int64_t v, int64_t p, int64_t k, int64_t s, int64_t O, int64_t *o0, int64_t *o1) {
    int64_t t = v + p - k + 1;
    *o0 = t > 0 ? (t + s - 1) / s : 0;
    *o1 = min((v + p) / s, O - 1);
}

/* One thread per input element: the sum over the windows that contain it (no atomics). */
template <typename T>
__global__ void k_pool_bwd(pool_geom g, const T *x, const T *dy, T *dx, int64_t n) {
    using A = typename acc_of<T>::type;
    KB_GRID_LOOP(i, n) {
        int64_t nn, c, d, h, w;
        unravel(g, i, g.D, g.H, g.W, &nn, &c, &d, &h, &w);
        int64_t base = nn * g.xs[0] + c * g.xs[1], ybase = nn * g.ys[0] + c * g.ys[1];
        int64_t od0, od1, oh0, oh1, ow0, ow1;
        windows_of(d, g.pf, g.KD, g.sd, g.OD, &od0, &od1);
        windows_of(h, g.pt, g.KH, g.sh, g.OH, &oh0, &oh1);
        windows_of(w, g.pl, g.KW, g.sw, g.OW, &ow0, &ow1);
        int64_t self = base + d * g.xs[2] + h * g.xs[3] + w * g.xs[4];
        A acc = 0;
        for (int64_t od = od0; od <= od1; ++od)
            for (int64_t oh = oh0; oh <= oh1; ++oh)
                for (int64_t ow = ow0; ow <= ow1; ++ow) {
                    A dv = (A)kb_dev_load(dy[ybase + od * g.ys[2] + oh * g.ys[3] + ow * g.ys[4]]);
                    if (g.avg) {
                        int64_t d0 = max(od * g.sd - g.pf, (int64_t)0), d1 = min(od * g.sd - g.pf + g.KD, g.D);
                        int64_t h0 = max(oh * g.sh - g.pt, (int64_t)0), h1 = min(oh * g.sh - g.pt + g.KH, g.H);
                        int64_t w0 = max(ow * g.sw - g.pl, (int64_t)0), w1 = min(ow * g.sw - g.pl + g.KW, g.W);
                        acc += dv / (A)((d1 - d0) * (h1 - h0) * (w1 - w0));
                    } else {
                        int64_t arg;
                        pool_window(g, x, base, od, oh, ow, &arg);
                        if (arg == self) acc += dv;
                    }
                }
        dx[i] = kb_dev_store<T>((double)acc);
    }
}

template <typename T>
kb_status pool_own(kb_cuda_device *dev, const pool_geom &g, const kb_buf *x, const kb_buf *dy, kb_buf *out) {
    int64_t n = out->size;
    if (!dy)
        k_pool_fwd<T><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>(g, (const T *)x->data,
                                                                                      (T *)out->data, n);
    else
        k_pool_bwd<T><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>(
            g, (const T *)x->data, (const T *)dy->data, (T *)out->data, n);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

#ifdef KB_WITH_CUDNN
struct pool_key {
    int ordinal, dtype, cf, avg, nsp;
    int64_t N, C, D, H, W, OD, OH, OW, KD, KH, KW, sd, sh, sw, pd, ph, pw;
};
struct pool_plan {
    pool_key key;
    cudnnTensorDescriptor_t xd, yd;
    cudnnPoolingDescriptor_t pd;
    int own; /* 3-D: cuDNN reported the shape as not supported; the own kernels run it */
};
std::vector<pool_plan *> g_pool_plans; /* guarded by g_plan_mu, never freed (as the conv plans) */

int not_supported(cudnnStatus_t s) { return CUDNN_STATUS_CATEGORY(s) == CUDNN_STATUS_NOT_SUPPORTED; }

kb_status get_pool_plan(const pool_key &k, cudnnDataType_t data, const pool_plan **out) {
    std::lock_guard<std::mutex> lock(g_plan_mu);
    for (pool_plan *q : g_pool_plans)
        if (memcmp(&q->key, &k, sizeof k) == 0) {
            *out = q;
            return KB_OK;
        }
    pool_plan *p = new pool_plan();
    p->key = k;
    cudnnTensorFormat_t fmt = k.cf ? CUDNN_TENSOR_NCHW : CUDNN_TENSOR_NHWC;
    cudnnPoolingMode_t mode = k.avg ? CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING : CUDNN_POOLING_MAX_DETERMINISTIC;
    KB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->xd));
    KB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->yd));
    KB_CUDNN_CHECK(cudnnCreatePoolingDescriptor(&p->pd));
    if (k.nsp == 2) {
        KB_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->xd, fmt, data, (int)k.N, (int)k.C, (int)k.H, (int)k.W));
        KB_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->yd, fmt, data, (int)k.N, (int)k.C, (int)k.OH, (int)k.OW));
        KB_CUDNN_CHECK(cudnnSetPooling2dDescriptor(p->pd, mode, CUDNN_PROPAGATE_NAN, (int)k.KH, (int)k.KW, (int)k.ph,
                                                   (int)k.pw, (int)k.sh, (int)k.sw));
    } else {
        KB_TRY(set_tensor5d(p->xd, data, k.cf, k.N, k.C, k.D, k.H, k.W));
        KB_TRY(set_tensor5d(p->yd, data, k.cf, k.N, k.C, k.OD, k.OH, k.OW));
        const int win[3] = {(int)k.KD, (int)k.KH, (int)k.KW}, pad[3] = {(int)k.pd, (int)k.ph, (int)k.pw};
        const int str[3] = {(int)k.sd, (int)k.sh, (int)k.sw};
        cudnnStatus_t st = cudnnSetPoolingNdDescriptor(p->pd, mode, CUDNN_PROPAGATE_NAN, 3, win, pad, str);
        if (not_supported(st)) p->own = 1;
        else KB_CUDNN_CHECK(st);
    }
    g_pool_plans.push_back(p);
    *out = p;
    return KB_OK;
}

/* in: x (forward) or x, y, dy (backward). *own = 1 (nothing launched) when cuDNN does not support
 * a 3-D shape: the caller runs the own kernels, and the plan remembers it. */
template <typename T>
kb_status pool_cudnn(kb_cuda_device *dev, const pool_geom &g, const kb_buf *in, int backward, kb_buf *out, int *own) {
    cudnnHandle_t h;
    KB_TRY(kb_cuda_cudnn(dev, &h));
    pool_key key;
    memset(&key, 0, sizeof key);
    key.ordinal = dev->ordinal;
    key.dtype = (int)in[0].dtype;
    key.cf = g.cf, key.avg = g.avg, key.nsp = g.nsp;
    key.N = g.N, key.C = g.C, key.D = g.D, key.H = g.H, key.W = g.W, key.OD = g.OD, key.OH = g.OH, key.OW = g.OW;
    key.KD = g.KD, key.KH = g.KH, key.KW = g.KW, key.sd = g.sd, key.sh = g.sh, key.sw = g.sw;
    key.pd = g.pf, key.ph = g.pt, key.pw = g.pl;
    const pool_plan *p;
    KB_TRY(get_pool_plan(key, cudnn_type<T>::data, &p));
    *own = p->own;
    if (p->own) return KB_OK;
    cudnn_scale<T> sc;
    cudnnStatus_t st;
    if (!backward)
        st = cudnnPoolingForward(h, p->pd, &sc.one, p->xd, in[0].data, &sc.zero, p->yd, out->data);
    else
        st = cudnnPoolingBackward(h, p->pd, &sc.one, p->yd, in[1].data, p->yd, in[2].data, p->xd, in[0].data,
                                  &sc.zero, p->xd, out->data);
    if (g.nsp == 3 && not_supported(st)) {
        /* cuDNN refuses before launching anything; the plan remembers it (set once, under the lock). */
        std::lock_guard<std::mutex> lock(g_plan_mu);
        const_cast<pool_plan *>(p)->own = 1;
        *own = 1;
        return KB_OK;
    }
    KB_CUDNN_CHECK(st);
    return KB_OK;
}
#endif

template <typename T>
kb_status pool_exec(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int backward, kb_buf *out) {
    kb_cuda_device *dev = kb_cuda_dev(ex);
    KB_TRY(kb_cuda_bind(dev));
    pool_geom g = pool_geom_of(a, &in[0]);
    /* An empty x or y: the output is empty too, or (backward with an empty y) all zeros. */
    if (in[0].size == 0 || (backward && in[2].size == 0)) {
        KB_CUDA_CHECK(cudaMemsetAsync(out->data, 0, (size_t)out->size * sizeof(T), dev->stream));
        return KB_OK;
    }
#ifdef KB_WITH_CUDNN
    int fits = 1;
    for (int64_t v : {g.N, g.C, g.D, g.H, g.W, g.KD, g.KH, g.KW, g.sd, g.sh, g.sw}) fits = fits && v <= INT32_MAX;
    fits = fits && g.N * g.C * g.D * g.H * g.W <= INT32_MAX; /* Nd strides are int */
    if (g.pf == g.pk && g.pt == g.pb && g.pl == g.pr && fits) {
        int own = 0;
        KB_TRY(pool_cudnn<T>(dev, g, in, backward, out, &own));
        if (!own) return KB_OK;
    }
#endif
    return pool_own<T>(dev, g, &in[0], backward ? &in[2] : nullptr, out);
}

kb_status pool_dispatch(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int backward, kb_buf *out) {
    switch (in[0].dtype) {
    case KB_FLOAT16: return pool_exec<__half>(ex, a, in, backward, out);
    case KB_BFLOAT16: return pool_exec<__nv_bfloat16>(ex, a, in, backward, out);
    case KB_FLOAT32: return pool_exec<float>(ex, a, in, backward, out);
    case KB_FLOAT64: return pool_exec<double>(ex, a, in, backward, out);
    default: return kb_cuda_dtype_error(ex, in[0].dtype, "float16, bfloat16, float32 or float64");
    }
}

}  // namespace

extern "C" kb_status kb_cuda_pool2d(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return pool_dispatch(ex, a, in, 0, out);
}

extern "C" kb_status kb_cuda_pool2d_grad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                         kb_buf *out) {
    (void)n_in;
    return pool_dispatch(ex, a, in, 1, out);
}

extern "C" kb_status kb_cuda_pool3d(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return pool_dispatch(ex, a, in, 0, out);
}

extern "C" kb_status kb_cuda_pool3d_grad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                         kb_buf *out) {
    (void)n_in;
    return pool_dispatch(ex, a, in, 1, out);
}
