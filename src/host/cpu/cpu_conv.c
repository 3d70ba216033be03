/* CPU kernels of the conv family (float32/float64; the executor widens float16/bfloat16).
 * Attribute layouts: ops/conv.c.
 *
 * conv2d and its two backward ops run as im2col + one CBLAS GEMM per chunk of images. The
 * column matrix has one row index r = (kh * KW + kw) * C + c per kernel tap, which is the Keras
 * kernel (kh, kw, in, out) seen as an (R, O) matrix, so the kernel is never transposed:
 *   channels_last:  cols (P, R) per image (P = OH * OW output pixels), contiguous over a chunk,
 *                   so y (chunk * P, O) = cols . K is one GEMM;
 *   channels_first: cols (R, P) per image, y_n (O, P) = K^T . cols_n, one GEMM per image.
 * Taps outside the image ('same' padding, both the top/left pad and the odd extra at the end)
 * read as zeros. im2col / col2im run in parallel over the images of a chunk (OpenMP); the GEMMs
 * use the BLAS library's own threads. A chunk holds as many images as fit COLS_LIMIT elements
 * of columns (at least one). */
#include <cblas.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "cpu/cpu_common.h"
#include "cpu/cpu_kernels.h"

#define COLS_LIMIT ((int64_t)1 << 24)

typedef struct {
    int64_t N, C, H, W, O, KH, KW, OH, OW, sh, sw, dh, dw, ph, pw;
    int cf;
} geom;

/* One spatial axis: output size and the pad before it (TF 'same', or 0 for 'valid'). */
static void axis_geom(int64_t in, int64_t k, int64_t s, int64_t d, int same, int64_t *out, int64_t *pad) {
    int64_t k_eff = (k - 1) * d + 1;
    if (same) {
        *out = (in + s - 1) / s;
        int64_t total = (*out - 1) * s + k_eff - in;
        *pad = total > 0 ? total / 2 : 0;
    } else {
        *out = (in - k_eff) / s + 1;
        *pad = 0;
    }
}

static geom geom_of(const kb_attrs *a, const kb_buf *x, const kb_buf *k) {
    geom g;
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
    axis_geom(g.H, g.KH, g.sh, g.dh, a->i64[4] != 0, &g.OH, &g.ph);
    axis_geom(g.W, g.KW, g.sw, g.dw, a->i64[4] != 0, &g.OW, &g.pw);
    return g;
}

static kb_status too_large(const kb_exec *ex, int64_t v) {
    return kb_set_error(KB_ERR_NOT_SUPPORTED, "%s: CBLAS takes int sizes; a GEMM dimension is %lld",
                        ex->op ? ex->op : "conv2d", (long long)v);
}

/* im2col (acc = 0: cols <- x) and col2im (acc = 1: x += cols) of image n, for one element type. */
#define IM2COL(T)                                                                                          \
    static void im2col_##T(const geom *g, const T *x, T *cols, int64_t n, int acc) {                      \
        int64_t P = g->OH * g->OW, R = g->KH * g->KW * g->C;                                               \
        if (!g->cf) {                                                                                      \
            for (int64_t p = 0; p < P; ++p) {                                                              \
                int64_t oh = p / g->OW, ow = p % g->OW;                                                    \
                for (int64_t kh = 0; kh < g->KH; ++kh) {                                                   \
                    int64_t ih = oh * g->sh - g->ph + kh * g->dh;                                          \
                    for (int64_t kw = 0; kw < g->KW; ++kw) {                                               \
                        int64_t iw = ow * g->sw - g->pw + kw * g->dw;                                      \
                        T *c = cols + p * R + (kh * g->KW + kw) * g->C;                                    \
                        int inside = ih >= 0 && ih < g->H && iw >= 0 && iw < g->W;                         \
                        T *xp = (T *)x + ((n * g->H + (inside ? ih : 0)) * g->W + (inside ? iw : 0)) * g->C; \
                        if (acc) {                                                                         \
                            if (inside)                                                                    \
                                for (int64_t ci = 0; ci < g->C; ++ci) xp[ci] += c[ci];                     \
                        } else if (inside) {                                                               \
                            memcpy(c, xp, (size_t)g->C * sizeof(T));                                       \
                        } else {                                                                           \
                            memset(c, 0, (size_t)g->C * sizeof(T));                                        \
                        }                                                                                  \
                    }                                                                                      \
                }                                                                                          \
            }                                                                                              \
            return;                                                                                        \
        }                                                                                                  \
        for (int64_t ci = 0; ci < g->C; ++ci) {                                                            \
            T *xc = (T *)x + (n * g->C + ci) * g->H * g->W;                                                \
            for (int64_t kh = 0; kh < g->KH; ++kh)                                                         \
                for (int64_t kw = 0; kw < g->KW; ++kw) {                                                   \
                    T *c = cols + ((kh * g->KW + kw) * g->C + ci) * P;                                     \
                    for (int64_t oh = 0; oh < g->OH; ++oh) {                                               \
                        int64_t ih = oh * g->sh - g->ph + kh * g->dh;                                      \
                        T *crow = c + oh * g->OW;                                                          \
                        if (ih < 0 || ih >= g->H) {                                                        \
                            if (!acc) memset(crow, 0, (size_t)g->OW * sizeof(T));                          \
                            continue;                                                                      \
                        }                                                                                  \
                        for (int64_t ow = 0; ow < g->OW; ++ow) {                                           \
                            int64_t iw = ow * g->sw - g->pw + kw * g->dw;                                  \
                            int inside = iw >= 0 && iw < g->W;                                             \
                            if (acc) {                                                                     \
                                if (inside) xc[ih * g->W + iw] += crow[ow];                                \
                            } else {                                                                       \
                                crow[ow] = inside ? xc[ih * g->W + iw] : (T)0;                             \
                            }                                                                              \
                        }                                                                                  \
                    }                                                                                      \
                }                                                                                          \
        }                                                                                                  \
        (void)R;                                                                                           \
    }
IM2COL(float)
IM2COL(double)

/* Row-major GEMM C = op(A) op(B) + beta C in the buffer's type. */
static void gemm(kb_dtype dt, int ta, int tb, int64_t M, int64_t N, int64_t K, const void *A, int64_t lda,
                 const void *B, int64_t ldb, double beta, void *C, int64_t ldc) {
    enum CBLAS_TRANSPOSE oa = ta ? CblasTrans : CblasNoTrans, ob = tb ? CblasTrans : CblasNoTrans;
    if (dt == KB_FLOAT32)
        cblas_sgemm(CblasRowMajor, oa, ob, (int)M, (int)N, (int)K, 1.0f, (const float *)A, (int)lda, (const float *)B,
                    (int)ldb, (float)beta, (float *)C, (int)ldc);
    else
        cblas_dgemm(CblasRowMajor, oa, ob, (int)M, (int)N, (int)K, 1.0, (const double *)A, (int)lda,
                    (const double *)B, (int)ldb, beta, (double *)C, (int)ldc);
}

/* im2col (acc 0) or col2im (acc 1) of images [n0, n0 + nb) with the chunk's column buffer. */
static void cols_of_chunk(kb_dtype dt, const geom *g, const void *x, void *cols, int64_t n0, int64_t nb, int acc) {
    int64_t per = g->OH * g->OW * g->KH * g->KW * g->C;
#pragma omp parallel for if (nb > 1 && nb * per > KB_OMP_MIN)
    for (int64_t i = 0; i < nb; ++i) {
        if (dt == KB_FLOAT32) im2col_float(g, (const float *)x, (float *)cols + i * per, n0 + i, acc);
        else im2col_double(g, (const double *)x, (double *)cols + i * per, n0 + i, acc);
    }
}

enum { FWD, BWD_DATA, BWD_FILTER };

/* x: the image tensor (input of FWD / BWD_FILTER, output of BWD_DATA); k: the kernel (output of
 * BWD_FILTER); d: y (FWD output) or dy. */
static kb_status conv_run(const kb_exec *ex, const kb_attrs *a, const kb_buf *xb, const kb_buf *kb, int dir, void *x,
                          void *k, void *d) {
    kb_dtype dt = xb->dtype;
    if (dt != KB_FLOAT32 && dt != KB_FLOAT64) return kb_cpu_bad_dtype(ex, dt);
    geom g = geom_of(a, xb, kb);
    size_t es = kb_dtype_size(dt);
    int64_t P = g.OH * g.OW, R = g.KH * g.KW * g.C;
    /* Zero the outputs that are sums: col2im accumulates, the filter GEMMs add (beta 1) chunk by chunk,
     * and an empty contraction leaves zeros. */
    if (dir == BWD_DATA) memset(x, 0, (size_t)xb->size * es);
    if (dir == BWD_FILTER) memset(k, 0, (size_t)kb->size * es);
    if (dir == FWD && R == 0) memset(d, 0, (size_t)(g.N * P * g.O) * es);
    if (g.N * P == 0 || R == 0 || g.O == 0) return KB_OK;
    int64_t nb = COLS_LIMIT / (P * R);
    if (nb < 1) nb = 1;
    if (nb > g.N) nb = g.N;
    int64_t big = nb * P > R ? nb * P : R;
    if (big > INT_MAX || g.O > INT_MAX) return too_large(ex, big > g.O ? big : g.O);
    void *cols = malloc((size_t)(nb * P * R) * es);
    if (!cols)
        return kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: cannot allocate %lld bytes of im2col columns",
                            ex->op ? ex->op : "conv2d", (long long)(nb * P * R * (int64_t)es));
    char *xc = (char *)x, *dc = (char *)d;
    for (int64_t n0 = 0; n0 < g.N; n0 += nb) {
        int64_t m = g.N - n0 < nb ? g.N - n0 : nb;
        char *dn = dc + (size_t)(n0 * P * g.O) * es; /* y / dy of image n0 */
        if (dir != BWD_DATA) cols_of_chunk(dt, &g, xc, cols, n0, m, 0);
        if (!g.cf) {
            if (dir == FWD) gemm(dt, 0, 0, m * P, g.O, R, cols, R, k, g.O, 0.0, dn, g.O);
            else if (dir == BWD_DATA) gemm(dt, 0, 1, m * P, R, g.O, dn, g.O, k, g.O, 0.0, cols, R);
            else gemm(dt, 1, 0, R, g.O, m * P, cols, R, dn, g.O, 1.0, k, g.O);
        } else {
            for (int64_t i = 0; i < m; ++i) {
                char *ci = (char *)cols + (size_t)(i * R * P) * es, *di = dn + (size_t)(i * g.O * P) * es;
                if (dir == FWD) gemm(dt, 1, 0, g.O, P, R, k, g.O, ci, P, 0.0, di, P);
                else if (dir == BWD_DATA) gemm(dt, 0, 0, R, P, g.O, k, g.O, di, P, 0.0, ci, P);
                else gemm(dt, 0, 1, R, g.O, P, ci, P, di, P, 1.0, k, g.O);
            }
        }
        if (dir == BWD_DATA) cols_of_chunk(dt, &g, xc, cols, n0, m, 1);
    }
    free(cols);
    return KB_OK;
}

kb_status kb_cpu_conv2d(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return conv_run(ex, a, &in[0], &in[1], FWD, in[0].data, in[1].data, out->data);
}

kb_status kb_cpu_conv2d_backprop_input(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return conv_run(ex, a, out, &in[1], BWD_DATA, out->data, in[1].data, in[2].data);
}

kb_status kb_cpu_conv2d_backprop_filter(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                        kb_buf *out) {
    (void)n_in;
    return conv_run(ex, a, &in[0], out, BWD_FILTER, in[0].data, out->data, in[2].data);
}

/* ---- pool2d ---------------------------------------------------------------------------------- */

/* Pooling geometry: sizes, pads before, and element strides of x and y in their data format. */
typedef struct {
    int64_t N, C, H, W, OH, OW, KH, KW, sh, sw, pt, pl;
    int64_t xs[4], ys[4]; /* strides of n, c, h, w */
    int avg;
} pgeom;

static pgeom pgeom_of(const kb_attrs *a, const kb_buf *x) {
    pgeom g;
    int cf = a->i64[5] != 0;
    g.N = x->shape[0];
    g.C = x->shape[cf ? 1 : 3];
    g.H = x->shape[cf ? 2 : 1];
    g.W = x->shape[cf ? 3 : 2];
    g.KH = a->i64[0];
    g.KW = a->i64[1];
    g.sh = a->i64[2];
    g.sw = a->i64[3];
    g.avg = a->i64[6] != 0;
    axis_geom(g.H, g.KH, g.sh, 1, a->i64[4] != 0, &g.OH, &g.pt);
    axis_geom(g.W, g.KW, g.sw, 1, a->i64[4] != 0, &g.OW, &g.pl);
    int64_t hw[2][2] = {{g.H, g.W}, {g.OH, g.OW}};
    for (int t = 0; t < 2; ++t) {
        int64_t *s = t ? g.ys : g.xs, h = hw[t][0], w = hw[t][1];
        s[0] = g.C * h * w;
        s[1] = cf ? h * w : 1;
        s[2] = cf ? w : w * g.C;
        s[3] = cf ? 1 : g.C;
    }
    return g;
}

/* The window of output (oh, ow) clipped to the image: rows [h0, h1), columns [w0, w1). */
#define POOL_WINDOW(g, oh, ow)                                                                   \
    int64_t h0 = (oh) * (g).sh - (g).pt, w0 = (ow) * (g).sw - (g).pl;                           \
    int64_t h1 = h0 + (g).KH < (g).H ? h0 + (g).KH : (g).H, w1 = w0 + (g).KW < (g).W ? w0 + (g).KW : (g).W; \
    if (h0 < 0) h0 = 0;                                                                          \
    if (w0 < 0) w0 = 0

/* Max: the first maximum in row-major order (a NaN wins and stays); avg: mean of the unpadded cells.
 * *arg = offset of the maximum (max) within x. */
#define POOL_FWD(T)                                                                               \
    static T pool_window_##T(const pgeom *g, const T *x, int64_t base, int64_t oh, int64_t ow, int64_t *arg) { \
        POOL_WINDOW(*g, oh, ow);                                                                  \
        T best = 0, sum = 0;                                                                      \
        int64_t where = -1;                                                                       \
        for (int64_t h = h0; h < h1; ++h)                                                         \
            for (int64_t w = w0; w < w1; ++w) {                                                   \
                int64_t off = base + h * g->xs[2] + w * g->xs[3];                                 \
                T v = x[off];                                                                     \
                sum += v;                                                                         \
                if (where < 0 || v > best || (v != v && best == best)) best = v, where = off;     \
            }                                                                                     \
        *arg = where;                                                                             \
        return g->avg ? sum / (T)((h1 - h0) * (w1 - w0)) : best;                                  \
    }                                                                                             \
    static void pool_fwd_##T(const pgeom *g, const T *x, T *y) {                                  \
        _Pragma("omp parallel for if (g->N * g->C * g->OH * g->OW > KB_OMP_MIN)")                \
        for (int64_t nc = 0; nc < g->N * g->C; ++nc) {                                            \
            int64_t n = nc / g->C, c = nc % g->C, arg;                                            \
            for (int64_t oh = 0; oh < g->OH; ++oh)                                                \
                for (int64_t ow = 0; ow < g->OW; ++ow)                                            \
                    y[n * g->ys[0] + c * g->ys[1] + oh * g->ys[2] + ow * g->ys[3]] =              \
                        pool_window_##T(g, x, n * g->xs[0] + c * g->xs[1], oh, ow, &arg);         \
        }                                                                                         \
    }                                                                                             \
    /* dx (zeroed) += each dy at its window's first maximum (max) or spread over it (avg). One     \
     * (n, c) plane per iteration: windows of different planes never overlap. */                 \
    static void pool_bwd_##T(const pgeom *g, const T *x, const T *dy, T *dx) {                    \
        _Pragma("omp parallel for if (g->N * g->C * g->OH * g->OW > KB_OMP_MIN)")                \
        for (int64_t nc = 0; nc < g->N * g->C; ++nc) {                                            \
            int64_t n = nc / g->C, c = nc % g->C, base = n * g->xs[0] + c * g->xs[1], arg;        \
            for (int64_t oh = 0; oh < g->OH; ++oh)                                                \
                for (int64_t ow = 0; ow < g->OW; ++ow) {                                          \
                    T d = dy[n * g->ys[0] + c * g->ys[1] + oh * g->ys[2] + ow * g->ys[3]];        \
                    if (!g->avg) {                                                                \
                        pool_window_##T(g, x, base, oh, ow, &arg);                                \
                        dx[arg] += d;                                                             \
                        continue;                                                                 \
                    }                                                                             \
                    POOL_WINDOW(*g, oh, ow);                                                      \
                    T share = d / (T)((h1 - h0) * (w1 - w0));                                     \
                    for (int64_t h = h0; h < h1; ++h)                                             \
                        for (int64_t w = w0; w < w1; ++w) dx[base + h * g->xs[2] + w * g->xs[3]] += share; \
                }                                                                                 \
        }                                                                                         \
    }
POOL_FWD(float)
POOL_FWD(double)

kb_status kb_cpu_pool2d(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    pgeom g = pgeom_of(a, &in[0]);
    if (in[0].dtype == KB_FLOAT32) pool_fwd_float(&g, (const float *)in[0].data, (float *)out->data);
    else if (in[0].dtype == KB_FLOAT64) pool_fwd_double(&g, (const double *)in[0].data, (double *)out->data);
    else return kb_cpu_bad_dtype(ex, in[0].dtype);
    return KB_OK;
}

kb_status kb_cpu_pool2d_grad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    pgeom g = pgeom_of(a, &in[0]);
    memset(out->data, 0, (size_t)out->size * kb_dtype_size(out->dtype));
    if (in[0].dtype == KB_FLOAT32)
        pool_bwd_float(&g, (const float *)in[0].data, (const float *)in[2].data, (float *)out->data);
    else if (in[0].dtype == KB_FLOAT64)
        pool_bwd_double(&g, (const double *)in[0].data, (const double *)in[2].data, (double *)out->data);
    else return kb_cpu_bad_dtype(ex, in[0].dtype);
    return KB_OK;
}
