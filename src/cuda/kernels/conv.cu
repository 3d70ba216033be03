/* CUDA kernels of the conv family: conv2d and its backward-data / backward-filter ops through
 * cuDNN's legacy API (float16, bfloat16, float32, float64). Attribute layouts: ops/conv.c.
 *
 * Layouts. x / y / dy use NHWC or NCHW tensor descriptors as data_format says. The Keras kernel
 * (kh, kw, in, out) is no cuDNN filter layout, so it is permuted into a scratch buffer: KRSC
 * (out, kh, kw, in) for NHWC data, KCRS (out, in, kh, kw) for NCHW data; backward-filter writes
 * that layout and is permuted back.
 *
 * Padding. cuDNN pads symmetrically. TF 'same' puts the odd extra row / column at the bottom /
 * right: then x is copied into a scratch buffer one row / column larger (zeros at the end) and
 * cuDNN runs with the top / left pad; backward-data writes that larger buffer and is cropped.
 *
 * Math. float32 is strict FP32 by default: the convolution descriptors use CUDNN_FMA_MATH and an
 * algorithm reported with tensor-op math is never picked (cuDNN's DEFAULT math would take TF32);
 * with kb_set_allow_tf32 on, float32 uses CUDNN_DEFAULT_MATH and the algorithm's own math type.
 * float16 / bfloat16 compute in float32 with tensor ops allowed; float64 in float64.
 *
 * Plans. Descriptors and the algorithm of each direction (cudnnGetConvolution*Algorithm_v7,
 * heuristic only: no allocation, no synchronisation, so capture-safe) are made once per
 * (GPU ordinal, dtype, layout, math, shapes, strides, pads, dilation) and kept in a process-wide
 * table for the life of the process (a model has a handful of conv shapes). The table is guarded
 * by a mutex; a plan is never changed after its algorithm is chosen, so launches read it unlocked.
 * Workspaces come from the device pool (kb_cuda_scratch_alloc) and are freed right after the call.
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

struct dims4 {
    int64_t d[4];
};

/* dst (N, d1, d2, d3) from src (N, s1, s2, s3): the element at the same index, zero past src's end
 * (pads or crops the end of axes 1..3). */
template <typename T>
__global__ void k_resize_end(const T *src, dims4 s, T *dst, dims4 d, int64_t n) {
    KB_GRID_LOOP(i, n) {
        int64_t r = i;
        int64_t i3 = r % d.d[3];
        r /= d.d[3];
        int64_t i2 = r % d.d[2];
        r /= d.d[2];
        int64_t i1 = r % d.d[1], i0 = r / d.d[1];
        dst[i] = i1 < s.d[1] && i2 < s.d[2] && i3 < s.d[3] ? src[((i0 * s.d[1] + i1) * s.d[2] + i2) * s.d[3] + i3]
                                                          : kb_dev_store<T>(0.0);
    }
}

/* dst = src permuted: dst axis a is src axis perm[a]; st[a] = src stride of that axis. */
template <typename T>
__global__ void k_permute4(const T *src, T *dst, dims4 od, dims4 st, int64_t n) {
    KB_GRID_LOOP(i, n) {
        int64_t r = i, off = 0;
        for (int a = 3; a >= 0; --a) {
            off += (r % od.d[a]) * st.d[a];
            r /= od.d[a];
        }
        dst[i] = src[off];
    }
}

template <typename T>
kb_status launch_permute(kb_cuda_device *dev, const T *src, const int64_t sd[4], const int perm[4], T *dst) {
    dims4 od, st;
    int64_t sst[4], n = 1;
    sst[3] = 1;
    for (int a = 2; a >= 0; --a) sst[a] = sst[a + 1] * sd[a + 1];
    for (int a = 0; a < 4; ++a) {
        od.d[a] = sd[perm[a]];
        st.d[a] = sst[perm[a]];
        n *= sd[a];
    }
    k_permute4<T><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>(src, dst, od, st, n);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

template <typename T>
kb_status launch_resize(kb_cuda_device *dev, const T *src, const int64_t sd[4], T *dst, const int64_t dd[4]) {
    dims4 s, d;
    int64_t n = 1;
    for (int a = 0; a < 4; ++a) {
        s.d[a] = sd[a];
        d.d[a] = dd[a];
        n *= dd[a];
    }
    k_resize_end<T><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>(src, s, dst, d, n);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

/* Conv geometry from the attributes and the concrete shapes (the formula of ops/conv.c). */
struct conv_geom {
    int64_t N, C, H, W, O, KH, KW, OH, OW, sh, sw, dh, dw, pt, pb, pl, pr;
    int cf;
};

void axis_geom(int64_t in, int64_t k, int64_t s, int64_t d, int same, int64_t *out, int64_t *before, int64_t *after) {
    pool_axis(in, (k - 1) * d + 1, s, same, out, before, after);
}

conv_geom conv_geom_of(const kb_attrs *a, const kb_buf *x, const kb_buf *k) {
    conv_geom g;
    g.cf = a->i64[5] != 0;
    g.N = x->shape[0];
    g.C = x->shape[g.cf ? 1 : 3];
    g.H = x->shape[g.cf ? 2 : 1];
    g.W = x->shape[g.cf ? 3 : 2];
    g.KH = k->shape[0];
    g.KW = k->shape[1];
    g.O = k->shape[3];
    g.sh = a->i64[0];
    g.sw = a->i64[1];
    g.dh = a->i64[2];
    g.dw = a->i64[3];
    axis_geom(g.H, g.KH, g.sh, g.dh, a->i64[4] != 0, &g.OH, &g.pt, &g.pb);
    axis_geom(g.W, g.KW, g.sw, g.dw, a->i64[4] != 0, &g.OW, &g.pl, &g.pr);
    return g;
}

/* A tensor's 4 dims in memory order for data format cf, from (n, c, h, w). */
void mem_dims(int cf, int64_t n, int64_t c, int64_t h, int64_t w, int64_t out[4]) {
    out[0] = n;
    out[1] = cf ? c : h;
    out[2] = cf ? h : w;
    out[3] = cf ? w : c;
}

/* Scratch buffers of one launch, freed (stream-ordered, after the enqueued work) on every return. */
struct scratch_set {
    kb_cuda_device *dev;
    void *p[4] = {nullptr, nullptr, nullptr, nullptr};
    int n = 0;
    explicit scratch_set(kb_cuda_device *d) : dev(d) {}
    ~scratch_set() {
        for (int i = 0; i < n; ++i) kb_cuda_scratch_free(dev, p[i]);
    }
    kb_status get(size_t bytes, void **out) {
        *out = nullptr;
        if (bytes == 0) return KB_OK;
        KB_TRY(kb_cuda_scratch_alloc(dev, bytes, out));
        p[n++] = *out;
        return KB_OK;
    }
    scratch_set(const scratch_set &) = delete;
    scratch_set &operator=(const scratch_set &) = delete;
};

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

/* The plan key: every field set (the struct is zeroed first, so memcmp is exact). */
struct conv_key {
    int ordinal, dtype, cf, strict;
    int64_t N, C, H, W, O, KH, KW, sh, sw, dh, dw, ph, pw; /* H, W: as cuDNN sees x (padded) */
};

struct conv_plan {
    conv_key key;
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd[3]; /* one per direction: each carries its algorithm's math type */
    int chosen[3];
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
    int64_t OH = (k.H + 2 * k.ph - ((k.KH - 1) * k.dh + 1)) / k.sh + 1;
    int64_t OW = (k.W + 2 * k.pw - ((k.KW - 1) * k.dw + 1)) / k.sw + 1;
    cudnnMathType_t math = data == CUDNN_DATA_FLOAT ? (k.strict ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH)
                           : data == CUDNN_DATA_DOUBLE ? CUDNN_DEFAULT_MATH
                                                       : CUDNN_TENSOR_OP_MATH;
    KB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->xd));
    KB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->yd));
    KB_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->wd));
    KB_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->xd, fmt, data, (int)k.N, (int)k.C, (int)k.H, (int)k.W));
    KB_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->yd, fmt, data, (int)k.N, (int)k.O, (int)OH, (int)OW));
    KB_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->wd, data, fmt, (int)k.O, (int)k.C, (int)k.KH, (int)k.KW));
    for (int d = 0; d < 3; ++d) {
        KB_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->cd[d]));
        KB_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->cd[d], (int)k.ph, (int)k.pw, (int)k.sh, (int)k.sw, (int)k.dh,
                                                       (int)k.dw, CUDNN_CROSS_CORRELATION, compute));
        KB_CUDNN_CHECK(cudnnSetConvolutionMathType(p->cd[d], math));
    }
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
                        op ? op : "conv2d", names[dir], " (with strict FP32 math)");
}

/* Choose the algorithm of direction dir once (caller holds g_plan_mu). */
kb_status choose_algo(cudnnHandle_t h, conv_plan *p, int dir, const char *op) {
    int strict = p->key.strict, got = 0, i;
    cudnnMathType_t math;
    if (dir == FWD) {
        cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        KB_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, p->xd, p->wd, p->cd[dir], p->yd,
                                                              CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf));
        if ((i = pick_algo(perf, got, strict)) < 0) return no_algo(op, dir);
        p->algo[dir] = (int)perf[i].algo;
        math = perf[i].mathType;
    } else if (dir == BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        KB_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p->wd, p->yd, p->cd[dir], p->xd,
                                                                   CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, perf));
        if ((i = pick_algo(perf, got, strict)) < 0) return no_algo(op, dir);
        p->algo[dir] = (int)perf[i].algo;
        math = perf[i].mathType;
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        KB_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
            h, p->xd, p->yd, p->cd[dir], p->wd, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, perf));
        if ((i = pick_algo(perf, got, strict)) < 0) return no_algo(op, dir);
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

/* The plan of key k with direction dir's algorithm chosen. */
kb_status get_plan(cudnnHandle_t h, const conv_key &k, cudnnDataType_t data, cudnnDataType_t compute, int dir,
                   const char *op, const conv_plan **out) {
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
    if (!p->chosen[dir]) KB_TRY(choose_algo(h, p, dir, op));
    *out = p;
    return KB_OK;
}

/* One conv launch. x: image tensor (input of FWD / BWD_FILTER, output of BWD_DATA), k: Keras
 * kernel (output of BWD_FILTER), y: output of FWD or dy. */
template <typename T>
kb_status conv_exec(const kb_exec *ex, const kb_attrs *a, const kb_buf *xb, const kb_buf *kbuf, const kb_buf *yb,
                    kb_buf *out, int dir) {
    kb_cuda_device *dev = kb_cuda_dev(ex);
    KB_TRY(kb_cuda_bind(dev));
    conv_geom g = conv_geom_of(a, xb, kbuf);
    if (xb->size == 0 || kbuf->size == 0 || yb->size == 0) return zero_output(dev, out);
    int64_t Hp = g.H + (g.pb - g.pt), Wp = g.W + (g.pr - g.pl);
    int padded = Hp != g.H || Wp != g.W;
    const int64_t big[] = {g.N, g.C, Hp, Wp, g.O, g.KH, g.KW, g.OH, g.OW, g.pt, g.pl, g.dh, g.dw};
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
    key.N = g.N, key.C = g.C, key.H = Hp, key.W = Wp, key.O = g.O, key.KH = g.KH, key.KW = g.KW;
    key.sh = g.sh, key.sw = g.sw, key.dh = g.dh, key.dw = g.dw, key.ph = g.pt, key.pw = g.pl;
    const conv_plan *p;
    KB_TRY(get_plan(h, key, cudnn_type<T>::data, cudnn_type<T>::compute, dir, ex->op, &p));

    scratch_set sc(dev);
    void *wf, *xp = nullptr, *ws;
    size_t es = sizeof(T);
    KB_TRY(sc.get((size_t)kbuf->size * es, &wf));
    if (padded) KB_TRY(sc.get((size_t)(g.N * g.C * Hp * Wp) * es, &xp));
    KB_TRY(sc.get(p->ws[dir], &ws));
    /* Keras (kh, kw, in, out) <-> cuDNN KRSC (NHWC data) or KCRS (NCHW data). */
    const int to_krsc[4] = {3, 0, 1, 2}, to_kcrs[4] = {3, 2, 0, 1};
    const int from_krsc[4] = {1, 2, 3, 0}, from_kcrs[4] = {2, 3, 1, 0};
    const int64_t kd[4] = {g.KH, g.KW, g.C, g.O};
    int64_t fd[4] = {g.O, g.cf ? g.C : g.KH, g.cf ? g.KH : g.KW, g.cf ? g.KW : g.C};
    int64_t xd[4], xpd[4];
    mem_dims(g.cf, g.N, g.C, g.H, g.W, xd);
    mem_dims(g.cf, g.N, g.C, Hp, Wp, xpd);
    cudnn_scale<T> sc1;
    T *x = (T *)xb->data, *kk = (T *)kbuf->data, *y = (T *)yb->data;
    if (dir != BWD_FILTER) KB_TRY(launch_permute<T>(dev, kk, kd, g.cf ? to_kcrs : to_krsc, (T *)wf));
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
        KB_TRY(launch_permute<T>(dev, (const T *)wf, fd, g.cf ? from_kcrs : from_krsc, kk));
    }
    (void)out;
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
    return kb_set_error(KB_ERR_NOT_SUPPORTED, "%s: conv2d on CUDA needs cuDNN (kb was built without it)", ex->op);
#endif
}

}  // namespace

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

/* ---- pool2d ---------------------------------------------------------------------------------- */
/* cuDNN pooling (CUDNN_POOLING_MAX_DETERMINISTIC / AVERAGE_COUNT_EXCLUDE_PADDING, NaN propagated)
 * when the pads are symmetric ('valid', or 'same' with an even pad total); our own kernels
 * otherwise (TF's odd extra pad at the bottom / right, which cuDNN cannot express) and in builds
 * without cuDNN. The own kernels take the first maximum of each window in row-major order, as
 * the CPU kernel; cuDNN's deterministic max picks one maximum too (ties: see docs). */
namespace {

struct pool_geom {
    int64_t N, C, H, W, OH, OW, KH, KW, sh, sw, pt, pb, pl, pr;
    int64_t xs[4], ys[4]; /* element strides of n, c, h, w in x and y */
    int cf, avg;
};

pool_geom pool_geom_of(const kb_attrs *a, const kb_buf *x) {
    pool_geom g;
    g.cf = a->i64[5] != 0;
    g.avg = a->i64[6] != 0;
    g.N = x->shape[0];
    g.C = x->shape[g.cf ? 1 : 3];
    g.H = x->shape[g.cf ? 2 : 1];
    g.W = x->shape[g.cf ? 3 : 2];
    g.KH = a->i64[0];
    g.KW = a->i64[1];
    g.sh = a->i64[2];
    g.sw = a->i64[3];
    pool_axis(g.H, g.KH, g.sh, a->i64[4] != 0, &g.OH, &g.pt, &g.pb);
    pool_axis(g.W, g.KW, g.sw, a->i64[4] != 0, &g.OW, &g.pl, &g.pr);
    int64_t hw[2][2] = {{g.H, g.W}, {g.OH, g.OW}};
    for (int t = 0; t < 2; ++t) {
        int64_t *s = t ? g.ys : g.xs, h = hw[t][0], w = hw[t][1];
        s[0] = g.C * h * w;
        s[1] = g.cf ? h * w : 1;
        s[2] = g.cf ? w : w * g.C;
        s[3] = g.cf ? 1 : g.C;
    }
    return g;
}

template <typename T> struct acc_of {
    using type = float;
};
template <> struct acc_of<double> {
    using type = double;
};

/* Window of output (oh, ow) of plane base, clipped; returns the value (max / mean) and *arg, the
 * offset of the first maximum. */
template <typename T>
__device__ typename acc_of<T>::type pool_window(const pool_geom &g, const T *x, int64_t base, int64_t oh, int64_t ow,
                                                int64_t *arg) {
    using A = typename acc_of<T>::type;
    int64_t h0 = oh * g.sh - g.pt, w0 = ow * g.sw - g.pl;
    int64_t h1 = min(h0 + g.KH, g.H), w1 = min(w0 + g.KW, g.W);
    h0 = max(h0, (int64_t)0);
    w0 = max(w0, (int64_t)0);
    A best = 0, sum = 0;
    int64_t where = -1;
    for (int64_t h = h0; h < h1; ++h)
        for (int64_t w = w0; w < w1; ++w) {
            int64_t off = base + h * g.xs[2] + w * g.xs[3];
            A v = (A)kb_dev_load(x[off]);
            sum += v;
            if (where < 0 || v > best || (v != v && best == best)) best = v, where = off;
        }
    *arg = where;
    return g.avg ? sum / (A)((h1 - h0) * (w1 - w0)) : best;
}

/* One thread per output element, in y's memory order. */
template <typename T>
__global__ void k_pool_fwd(pool_geom g, const T *x, T *y, int64_t n) {
    KB_GRID_LOOP(i, n) {
        int64_t r = i, nn, c, oh, ow;
        if (g.cf) {
            ow = r % g.OW, r /= g.OW, oh = r % g.OH, r /= g.OH, c = r % g.C, nn = r / g.C;
        } else {
            c = r % g.C, r /= g.C, ow = r % g.OW, r /= g.OW, oh = r % g.OH, nn = r / g.OH;
        }
        int64_t arg;
        y[i] = kb_dev_store<T>((double)pool_window(g, x, nn * g.xs[0] + c * g.xs[1], oh, ow, &arg));
    }
}

/* One thread per input element: the sum over the windows that contain it (no atomics). Output oh
 * covers rows [oh sh - pt, oh sh - pt + KH), so row h is in windows oh in
 * [ceil((h + pt - KH + 1) / sh), floor((h + pt) / sh)]. */
template <typename T>
__global__ void k_pool_bwd(pool_geom g, const T *x, const T *dy, T *dx, int64_t n) {
    using A = typename acc_of<T>::type;
    KB_GRID_LOOP(i, n) {
        int64_t r = i, nn, c, h, w;
        if (g.cf) {
            w = r % g.W, r /= g.W, h = r % g.H, r /= g.H, c = r % g.C, nn = r / g.C;
        } else {
            c = r % g.C, r /= g.C, w = r % g.W, r /= g.W, h = r % g.H, nn = r / g.H;
        }
        int64_t base = nn * g.xs[0] + c * g.xs[1], ybase = nn * g.ys[0] + c * g.ys[1];
        int64_t th = h + g.pt - g.KH + 1, tw = w + g.pl - g.KW + 1;
        int64_t oh0 = th > 0 ? (th + g.sh - 1) / g.sh : 0, ow0 = tw > 0 ? (tw + g.sw - 1) / g.sw : 0;
        int64_t oh1 = min((h + g.pt) / g.sh, g.OH - 1), ow1 = min((w + g.pl) / g.sw, g.OW - 1);
        A acc = 0;
        for (int64_t oh = oh0; oh <= oh1; ++oh)
            for (int64_t ow = ow0; ow <= ow1; ++ow) {
                A d = (A)kb_dev_load(dy[ybase + oh * g.ys[2] + ow * g.ys[3]]);
                if (g.avg) {
                    int64_t h0 = max(oh * g.sh - g.pt, (int64_t)0), w0 = max(ow * g.sw - g.pl, (int64_t)0);
                    int64_t h1 = min(oh * g.sh - g.pt + g.KH, g.H), w1 = min(ow * g.sw - g.pl + g.KW, g.W);
                    acc += d / (A)((h1 - h0) * (w1 - w0));
                } else {
                    int64_t arg;
                    pool_window(g, x, base, oh, ow, &arg);
                    if (arg == base + h * g.xs[2] + w * g.xs[3]) acc += d;
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
    int ordinal, dtype, cf, avg;
    int64_t N, C, H, W, OH, OW, KH, KW, sh, sw, ph, pw;
};
struct pool_plan {
    pool_key key;
    cudnnTensorDescriptor_t xd, yd;
    cudnnPoolingDescriptor_t pd;
};
std::vector<pool_plan *> g_pool_plans; /* guarded by g_plan_mu, never freed (as the conv plans) */

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
    KB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->xd));
    KB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->yd));
    KB_CUDNN_CHECK(cudnnCreatePoolingDescriptor(&p->pd));
    KB_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->xd, fmt, data, (int)k.N, (int)k.C, (int)k.H, (int)k.W));
    KB_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->yd, fmt, data, (int)k.N, (int)k.C, (int)k.OH, (int)k.OW));
    KB_CUDNN_CHECK(cudnnSetPooling2dDescriptor(
        p->pd, k.avg ? CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING : CUDNN_POOLING_MAX_DETERMINISTIC,
        CUDNN_PROPAGATE_NAN, (int)k.KH, (int)k.KW, (int)k.ph, (int)k.pw, (int)k.sh, (int)k.sw));
    g_pool_plans.push_back(p);
    *out = p;
    return KB_OK;
}

/* in: x (forward) or x, y, dy (backward). */
template <typename T>
kb_status pool_cudnn(kb_cuda_device *dev, const pool_geom &g, const kb_buf *in, int backward, kb_buf *out) {
    cudnnHandle_t h;
    KB_TRY(kb_cuda_cudnn(dev, &h));
    pool_key key;
    memset(&key, 0, sizeof key);
    key.ordinal = dev->ordinal;
    key.dtype = (int)in[0].dtype;
    key.cf = g.cf, key.avg = g.avg;
    key.N = g.N, key.C = g.C, key.H = g.H, key.W = g.W, key.OH = g.OH, key.OW = g.OW;
    key.KH = g.KH, key.KW = g.KW, key.sh = g.sh, key.sw = g.sw, key.ph = g.pt, key.pw = g.pl;
    const pool_plan *p;
    KB_TRY(get_pool_plan(key, cudnn_type<T>::data, &p));
    cudnn_scale<T> sc;
    if (!backward)
        KB_CUDNN_CHECK(cudnnPoolingForward(h, p->pd, &sc.one, p->xd, in[0].data, &sc.zero, p->yd, out->data));
    else
        KB_CUDNN_CHECK(cudnnPoolingBackward(h, p->pd, &sc.one, p->yd, in[1].data, p->yd, in[2].data, p->xd,
                                            in[0].data, &sc.zero, p->xd, out->data));
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
    for (int64_t v : {g.N, g.C, g.H, g.W, g.KH, g.KW, g.sh, g.sw}) fits = fits && v <= INT32_MAX;
    if (g.pt == g.pb && g.pl == g.pr && fits) return pool_cudnn<T>(dev, g, in, backward, out);
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
