/* CPU kernels of the conv family (float32/float64; the executor widens float16/bfloat16).
 * Attribute layouts: ops/conv.c. The 2-D and 3-D ops share one implementation: geometry is kept
 * in three spatial dims (d, h, w) and a 2-D op is a 3-D one of depth 1 (window 1, stride 1,
 * dilation 1, no pad), which adds no work.
 *
 * conv{2,3}d and their backward ops run as vol2col (im2col) + one CBLAS GEMM per chunk of
 * images. The column matrix has one row index r = ((kd * KH + kh) * KW + kw) * C + c per kernel
 * tap, which is the Keras kernel ((kd,) kh, kw, in, out) seen as an (R, O) matrix, so the kernel
 * is never transposed:
 *   channels_last:  cols (P, R) per image (P = OD * OH * OW output pixels), contiguous over a
 *                   chunk, so y (chunk * P, O) = cols . K is one GEMM;
 *   channels_first: cols (R, P) per image, y_n (O, P) = K^T . cols_n, one GEMM per image.
 * Taps outside the volume ('same' padding, both the front/top/left pad and the odd extra at the
 * end) read as zeros. vol2col / col2vol run in parallel over the images of a chunk (OpenMP); the
 * GEMMs use the BLAS library's own threads. A chunk holds as many images as fit COLS_LIMIT
 * elements of columns (at least one).
 *
 * Grouped convolutions (groups G > 1, attribute [2 nsp + 2]; depthwise_conv2d is G = in channels)
 * run as direct loops instead: with Cg = C / G inputs and Og = O / G outputs per group, the
 * kernel is (window..., Cg, O) and output channel o reads input channels [(o / Og) Cg,
 * (o / Og + 1) Cg). Forward is parallel over (image, output channel), backward-data over (image,
 * group) (a group's outputs reach only its own inputs), backward-filter over output channels;
 * each output element costs its window times Cg multiply-adds (Cg = 1 for depthwise). */
#include <cblas.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "cpu/cpu_common.h"
#include "cpu/cpu_kernels.h"

#define COLS_LIMIT ((int64_t)1 << 24)

typedef struct {
    int64_t N, C, O, D, H, W, KD, KH, KW, OD, OH, OW, sd, sh, sw, dd, dh, dw, pd, ph, pw;
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

/* x (N, C, spatial...) in its format, kernel (window..., in, out); nsp = x's rank - 2. */
static geom geom_of(const kb_attrs *a, const kb_buf *x, const kb_buf *k) {
    geom g;
    int nsp = x->rank - 2, lead = 3 - nsp; /* 2-D: the depth axis is a unit one */
    int same = a->i64[2 * nsp] != 0;
    g.cf = a->i64[2 * nsp + 1] != 0;
    g.N = x->shape[0];
    g.C = x->shape[g.cf ? 1 : nsp + 1];
    g.O = k->shape[nsp + 1];
    int64_t in[3] = {1, 1, 1}, kk[3] = {1, 1, 1}, s[3] = {1, 1, 1}, d[3] = {1, 1, 1}, out[3], pad[3];
    for (int i = 0; i < nsp; ++i) {
        in[lead + i] = x->shape[(g.cf ? 2 : 1) + i];
        kk[lead + i] = k->shape[i];
        s[lead + i] = a->i64[i];
        d[lead + i] = a->i64[nsp + i];
    }
    for (int i = 0; i < 3; ++i) axis_geom(in[i], kk[i], s[i], d[i], same, &out[i], &pad[i]);
    g.D = in[0], g.H = in[1], g.W = in[2];
    g.KD = kk[0], g.KH = kk[1], g.KW = kk[2];
    g.OD = out[0], g.OH = out[1], g.OW = out[2];
    g.sd = s[0], g.sh = s[1], g.sw = s[2];
    g.dd = d[0], g.dh = d[1], g.dw = d[2];
    g.pd = pad[0], g.ph = pad[1], g.pw = pad[2];
    return g;
}

static kb_status too_large(const kb_exec *ex, int64_t v) {
    return kb_set_error(KB_ERR_NOT_SUPPORTED, "%s: CBLAS takes int sizes; a GEMM dimension is %lld",
                        ex->op ? ex->op : "conv", (long long)v);
}

/* vol2col (acc = 0: cols <- x) and col2vol (acc = 1: x += cols) of image n, for one element type. */
#define IM2COL(T)                                                                                            \
    static void im2col_##T(const geom *g, const T *x, T *cols, int64_t n, int acc) {                        \
        int64_t P = g->OD * g->OH * g->OW, R = g->KD * g->KH * g->KW * g->C;                                 \
        if (!g->cf) {                                                                                        \
            for (int64_t p = 0; p < P; ++p) {                                                                \
                int64_t ow = p % g->OW, oh = p / g->OW % g->OH, od = p / (g->OW * g->OH);                    \
                for (int64_t kd = 0; kd < g->KD; ++kd) {                                                     \
                    int64_t id = od * g->sd - g->pd + kd * g->dd;                                            \
                    for (int64_t kh = 0; kh < g->KH; ++kh) {                                                 \
                        int64_t ih = oh * g->sh - g->ph + kh * g->dh;                                        \
                        for (int64_t kw = 0; kw < g->KW; ++kw) {                                             \
                            int64_t iw = ow * g->sw - g->pw + kw * g->dw;                                    \
                            T *c = cols + p * R + ((kd * g->KH + kh) * g->KW + kw) * g->C;                   \
                            int inside = id >= 0 && id < g->D && ih >= 0 && ih < g->H && iw >= 0 && iw < g->W; \
                            if (!inside) {                                                                   \
                                if (!acc) memset(c, 0, (size_t)g->C * sizeof(T));                            \
                                continue;                                                                    \
                            }                                                                                \
                            T *xp = (T *)x + (((n * g->D + id) * g->H + ih) * g->W + iw) * g->C;             \
                            if (acc)                                                                         \
                                for (int64_t ci = 0; ci < g->C; ++ci) xp[ci] += c[ci];                       \
                            else                                                                             \
                                memcpy(c, xp, (size_t)g->C * sizeof(T));                                     \
                        }                                                                                    \
                    }                                                                                        \
                }                                                                                            \
            }                                                                                                \
            return;                                                                                          \
        }                                                                                                    \
        for (int64_t ci = 0; ci < g->C; ++ci) {                                                              \
            T *xc = (T *)x + (n * g->C + ci) * g->D * g->H * g->W;                                           \
            for (int64_t kd = 0; kd < g->KD; ++kd)                                                           \
                for (int64_t kh = 0; kh < g->KH; ++kh)                                                       \
                    for (int64_t kw = 0; kw < g->KW; ++kw) {                                                 \
                        T *c = cols + (((kd * g->KH + kh) * g->KW + kw) * g->C + ci) * P;                    \
                        for (int64_t od = 0; od < g->OD; ++od) {                                             \
                            int64_t id = od * g->sd - g->pd + kd * g->dd;                                    \
                            for (int64_t oh = 0; oh < g->OH; ++oh) {                                         \
                                int64_t ih = oh * g->sh - g->ph + kh * g->dh;                                \
                                T *crow = c + (od * g->OH + oh) * g->OW;                                     \
                                if (id < 0 || id >= g->D || ih < 0 || ih >= g->H) {                          \
                                    if (!acc) memset(crow, 0, (size_t)g->OW * sizeof(T));                    \
                                    continue;                                                                \
                                }                                                                            \
                                T *xrow = xc + (id * g->H + ih) * g->W;                                      \
                                for (int64_t ow = 0; ow < g->OW; ++ow) {                                     \
                                    int64_t iw = ow * g->sw - g->pw + kw * g->dw;                            \
                                    int inside = iw >= 0 && iw < g->W;                                       \
                                    if (acc) {                                                               \
                                        if (inside) xrow[iw] += crow[ow];                                    \
                                    } else {                                                                 \
                                        crow[ow] = inside ? xrow[iw] : (T)0;                                 \
                                    }                                                                        \
                                }                                                                            \
                            }                                                                                \
                        }                                                                                    \
                    }                                                                                        \
        }                                                                                                    \
        (void)R;                                                                                             \
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

/* vol2col (acc 0) or col2vol (acc 1) of images [n0, n0 + nb) with the chunk's column buffer. */
static void cols_of_chunk(kb_dtype dt, const geom *g, const void *x, void *cols, int64_t n0, int64_t nb, int acc) {
    int64_t per = g->OD * g->OH * g->OW * g->KD * g->KH * g->KW * g->C;
#pragma omp parallel for if (nb > 1 && nb * per > KB_OMP_MIN)
    for (int64_t i = 0; i < nb; ++i) {
        if (dt == KB_FLOAT32) im2col_float(g, (const float *)x, (float *)cols + i * per, n0 + i, acc);
        else im2col_double(g, (const double *)x, (double *)cols + i * per, n0 + i, acc);
    }
}

enum { FWD, BWD_DATA, BWD_FILTER };

/* Element offset of (n, c, d, h, w) in a tensor of sizes (C, D, H, W) in format cf. */
static inline int64_t off5(int cf, int64_t C, int64_t D, int64_t H, int64_t W, int64_t n, int64_t c, int64_t d,
                           int64_t h, int64_t w) {
    return cf ? (((n * C + c) * D + d) * H + h) * W + w : (((n * D + d) * H + h) * W + w) * C + c;
}

/* The taps of output pixel (od, oh, ow) inside the volume: BODY runs with id, ih, iw and the tap's
 * kernel row t = (kd * KH + kh) * KW + kw. */
#define FOR_TAPS(g, od, oh, ow, BODY)                                                                        \
    for (int64_t kd = 0; kd < (g)->KD; ++kd) {                                                               \
        int64_t id = (od) * (g)->sd - (g)->pd + kd * (g)->dd;                                                \
        if (id < 0 || id >= (g)->D) continue;                                                                \
        for (int64_t kh = 0; kh < (g)->KH; ++kh) {                                                           \
            int64_t ih = (oh) * (g)->sh - (g)->ph + kh * (g)->dh;                                            \
            if (ih < 0 || ih >= (g)->H) continue;                                                            \
            for (int64_t kw = 0; kw < (g)->KW; ++kw) {                                                       \
                int64_t iw = (ow) * (g)->sw - (g)->pw + kw * (g)->dw;                                        \
                if (iw < 0 || iw >= (g)->W) continue;                                                        \
                int64_t t = (kd * (g)->KH + kh) * (g)->KW + kw;                                              \
                BODY                                                                                         \
            }                                                                                                \
        }                                                                                                    \
    }

/* The grouped direct loops for one element type (see the top). x, k, y: image, kernel, y / dy. */
#define GROUPED(T)                                                                                           \
    static void grouped_##T(const geom *g, int64_t G, int dir, T *x, T *k, T *y) {                          \
        int64_t Cg = g->C / G, Og = g->O / G, N = g->N, O = g->O, C = g->C;                                  \
        int64_t work = N * O * g->OD * g->OH * g->OW * g->KD * g->KH * g->KW * Cg;                           \
        if (dir == FWD) {                                                                                    \
            _Pragma("omp parallel for collapse(2) if (work > KB_OMP_MIN)")                                   \
            for (int64_t n = 0; n < N; ++n)                                                                  \
                for (int64_t o = 0; o < O; ++o) {                                                            \
                    int64_t c0 = o / Og * Cg;                                                                \
                    for (int64_t od = 0; od < g->OD; ++od)                                                   \
                        for (int64_t oh = 0; oh < g->OH; ++oh)                                               \
                            for (int64_t ow = 0; ow < g->OW; ++ow) {                                         \
                                T acc = 0;                                                                   \
                                FOR_TAPS(g, od, oh, ow, {                                                    \
                                    const T *kp = k + t * Cg * O + o;                                        \
                                    for (int64_t ci = 0; ci < Cg; ++ci)                                      \
                                        acc += x[off5(g->cf, C, g->D, g->H, g->W, n, c0 + ci, id, ih, iw)] * \
                                               kp[ci * O];                                                   \
                                })                                                                           \
                                y[off5(g->cf, O, g->OD, g->OH, g->OW, n, o, od, oh, ow)] = acc;              \
                            }                                                                                \
                }                                                                                            \
        } else if (dir == BWD_DATA) {                                                                        \
            _Pragma("omp parallel for collapse(2) if (work > KB_OMP_MIN)")                                   \
            for (int64_t n = 0; n < N; ++n)                                                                  \
                for (int64_t gi = 0; gi < G; ++gi)                                                           \
                    for (int64_t o = gi * Og; o < (gi + 1) * Og; ++o)                                        \
                        for (int64_t od = 0; od < g->OD; ++od)                                               \
                            for (int64_t oh = 0; oh < g->OH; ++oh)                                           \
                                for (int64_t ow = 0; ow < g->OW; ++ow) {                                     \
                                    T dv = y[off5(g->cf, O, g->OD, g->OH, g->OW, n, o, od, oh, ow)];         \
                                    FOR_TAPS(g, od, oh, ow, {                                                \
                                        const T *kp = k + t * Cg * O + o;                                    \
                                        for (int64_t ci = 0; ci < Cg; ++ci)                                  \
                                            x[off5(g->cf, C, g->D, g->H, g->W, n, gi * Cg + ci, id, ih, iw)] \
                                                += dv * kp[ci * O];                                          \
                                    })                                                                       \
                                }                                                                            \
        } else {                                                                                             \
            _Pragma("omp parallel for if (work > KB_OMP_MIN)")                                               \
            for (int64_t o = 0; o < O; ++o) {                                                                \
                int64_t c0 = o / Og * Cg;                                                                    \
                for (int64_t n = 0; n < N; ++n)                                                              \
                    for (int64_t od = 0; od < g->OD; ++od)                                                   \
                        for (int64_t oh = 0; oh < g->OH; ++oh)                                               \
                            for (int64_t ow = 0; ow < g->OW; ++ow) {                                         \
                                T dv = y[off5(g->cf, O, g->OD, g->OH, g->OW, n, o, od, oh, ow)];             \
                                FOR_TAPS(g, od, oh, ow, {                                                    \
                                    T *kp = k + t * Cg * O + o;                                              \
                                    for (int64_t ci = 0; ci < Cg; ++ci)                                      \
                                        kp[ci * O] += dv * x[off5(g->cf, C, g->D, g->H, g->W, n, c0 + ci,    \
                                                                  id, ih, iw)];                              \
                                })                                                                           \
                            }                                                                                \
            }                                                                                                \
        }                                                                                                    \
    }
GROUPED(float)
GROUPED(double)

/* x: the image tensor (input of FWD / BWD_FILTER, output of BWD_DATA); k: the kernel (output of
 * BWD_FILTER); d: y (FWD output) or dy. */
static kb_status conv_run(const kb_exec *ex, const kb_attrs *a, const kb_buf *xb, const kb_buf *kb, int dir, void *x,
                          void *k, void *d) {
    kb_dtype dt = xb->dtype;
    if (dt != KB_FLOAT32 && dt != KB_FLOAT64) return kb_cpu_bad_dtype(ex, dt);
    geom g = geom_of(a, xb, kb);
    size_t es = kb_dtype_size(dt);
    int64_t G = a->i64[2 * (xb->rank - 2) + 2];
    if (G > 1) {
        if (dir == BWD_DATA) memset(x, 0, (size_t)xb->size * es);
        if (dir == BWD_FILTER) memset(k, 0, (size_t)kb->size * es);
        if (dt == KB_FLOAT32) grouped_float(&g, G, dir, (float *)x, (float *)k, (float *)d);
        else grouped_double(&g, G, dir, (double *)x, (double *)k, (double *)d);
        return KB_OK;
    }
    int64_t P = g.OD * g.OH * g.OW, R = g.KD * g.KH * g.KW * g.C;
    /* Zero the outputs that are sums: col2vol accumulates, the filter GEMMs add (beta 1) chunk by
     * chunk, and an empty contraction leaves zeros. */
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
                            ex->op ? ex->op : "conv", (long long)(nb * P * R * (int64_t)es));
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

/* The 3-D entries: the same kernels (geom_of reads the spatial rank from x). */
kb_status kb_cpu_conv3d(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    return kb_cpu_conv2d(ex, a, in, n_in, out);
}

kb_status kb_cpu_conv3d_backprop_input(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    return kb_cpu_conv2d_backprop_input(ex, a, in, n_in, out);
}

kb_status kb_cpu_conv3d_backprop_filter(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                        kb_buf *out) {
    return kb_cpu_conv2d_backprop_filter(ex, a, in, n_in, out);
}

/* ---- pool2d, pool3d --------------------------------------------------------------------------- */

/* Pooling geometry in three spatial dims (2-D: depth 1): sizes, pads before, and element strides
 * of x and y in their data format. */
typedef struct {
    int64_t N, C, D, H, W, OD, OH, OW, KD, KH, KW, sd, sh, sw, pf, pt, pl;
    int64_t xs[5], ys[5]; /* strides of n, c, d, h, w */
    int avg;
} pgeom;

static pgeom pgeom_of(const kb_attrs *a, const kb_buf *x) {
    pgeom g;
    int nsp = x->rank - 2, lead = 3 - nsp;
    int cf = a->i64[2 * nsp + 1] != 0, same = a->i64[2 * nsp] != 0;
    g.avg = a->i64[2 * nsp + 2] != 0;
    g.N = x->shape[0];
    g.C = x->shape[cf ? 1 : nsp + 1];
    int64_t in[3] = {1, 1, 1}, k[3] = {1, 1, 1}, s[3] = {1, 1, 1}, out[3], pad[3];
    for (int i = 0; i < nsp; ++i) {
        in[lead + i] = x->shape[(cf ? 2 : 1) + i];
        k[lead + i] = a->i64[i];
        s[lead + i] = a->i64[nsp + i];
    }
    for (int i = 0; i < 3; ++i) axis_geom(in[i], k[i], s[i], 1, same, &out[i], &pad[i]);
    g.D = in[0], g.H = in[1], g.W = in[2];
    g.KD = k[0], g.KH = k[1], g.KW = k[2];
    g.OD = out[0], g.OH = out[1], g.OW = out[2];
    g.sd = s[0], g.sh = s[1], g.sw = s[2];
    g.pf = pad[0], g.pt = pad[1], g.pl = pad[2];
    int64_t sp[2][3] = {{g.D, g.H, g.W}, {g.OD, g.OH, g.OW}};
    for (int t = 0; t < 2; ++t) {
        int64_t *st = t ? g.ys : g.xs, dd = sp[t][0], h = sp[t][1], w = sp[t][2];
        st[0] = g.C * dd * h * w;
        st[1] = cf ? dd * h * w : 1;
        st[2] = cf ? h * w : h * w * g.C;
        st[3] = cf ? w : w * g.C;
        st[4] = cf ? 1 : g.C;
    }
    return g;
}

/* The window of output (od, oh, ow) clipped to the volume: [d0, d1) x [h0, h1) x [w0, w1). */
#define POOL_WINDOW(g, od, oh, ow)                                                                 \
    int64_t d0 = (od) * (g).sd - (g).pf, h0 = (oh) * (g).sh - (g).pt, w0 = (ow) * (g).sw - (g).pl; \
    int64_t d1 = d0 + (g).KD < (g).D ? d0 + (g).KD : (g).D;                                        \
    int64_t h1 = h0 + (g).KH < (g).H ? h0 + (g).KH : (g).H, w1 = w0 + (g).KW < (g).W ? w0 + (g).KW : (g).W; \
    if (d0 < 0) d0 = 0;                                                                            \
    if (h0 < 0) h0 = 0;                                                                            \
    if (w0 < 0) w0 = 0

/* Max: the first maximum in row-major order (a NaN wins and stays); avg: mean of the unpadded cells.
 * *arg = offset of the maximum (max) within x. */
#define POOL_FWD(T)                                                                                 \
    static T pool_window_##T(const pgeom *g, const T *x, int64_t base, int64_t od, int64_t oh, int64_t ow, \
                             int64_t *arg) {                                                        \
        POOL_WINDOW(*g, od, oh, ow);                                                                \
        T best = 0, sum = 0;                                                                        \
        int64_t where = -1;                                                                         \
        for (int64_t dd = d0; dd < d1; ++dd)                                                        \
            for (int64_t h = h0; h < h1; ++h)                                                       \
                for (int64_t w = w0; w < w1; ++w) {                                                 \
                    int64_t off = base + dd * g->xs[2] + h * g->xs[3] + w * g->xs[4];               \
                    T v = x[off];                                                                   \
                    sum += v;                                                                       \
                    if (where < 0 || v > best || (v != v && best == best)) best = v, where = off;   \
                }                                                                                   \
        *arg = where;                                                                               \
        return g->avg ? sum / (T)((d1 - d0) * (h1 - h0) * (w1 - w0)) : best;                        \
    }                                                                                               \
    static void pool_fwd_##T(const pgeom *g, const T *x, T *y) {                                    \
        _Pragma("omp parallel for if (g->N * g->C * g->OD * g->OH * g->OW > KB_OMP_MIN)")          \
        for (int64_t nc = 0; nc < g->N * g->C; ++nc) {                                              \
            int64_t n = nc / g->C, c = nc % g->C, arg;                                              \
            for (int64_t od = 0; od < g->OD; ++od)                                                  \
                for (int64_t oh = 0; oh < g->OH; ++oh)                                              \
                    for (int64_t ow = 0; ow < g->OW; ++ow)                                          \
                        y[n * g->ys[0] + c * g->ys[1] + od * g->ys[2] + oh * g->ys[3] + ow * g->ys[4]] = \
                            pool_window_##T(g, x, n * g->xs[0] + c * g->xs[1], od, oh, ow, &arg);   \
        }                                                                                           \
    }                                                                                               \
    /* dx (zeroed) += each dy at its window's first maximum (max) or spread over it (avg). One       \
     * (n, c) volume per iteration: windows of different volumes never overlap. */                \
    static void pool_bwd_##T(const pgeom *g, const T *x, const T *dy, T *dx) {                      \
        _Pragma("omp parallel for if (g->N * g->C * g->OD * g->OH * g->OW > KB_OMP_MIN)")          \
        for (int64_t nc = 0; nc < g->N * g->C; ++nc) {                                              \
            int64_t n = nc / g->C, c = nc % g->C, base = n * g->xs[0] + c * g->xs[1], arg;          \
            for (int64_t od = 0; od < g->OD; ++od)                                                  \
                for (int64_t oh = 0; oh < g->OH; ++oh)                                              \
                    for (int64_t ow = 0; ow < g->OW; ++ow) {                                        \
                        T dv = dy[n * g->ys[0] + c * g->ys[1] + od * g->ys[2] + oh * g->ys[3] + ow * g->ys[4]]; \
                        if (!g->avg) {                                                              \
                            pool_window_##T(g, x, base, od, oh, ow, &arg);                          \
                            dx[arg] += dv;                                                          \
                            continue;                                                               \
                        }                                                                           \
                        POOL_WINDOW(*g, od, oh, ow);                                                \
                        T share = dv / (T)((d1 - d0) * (h1 - h0) * (w1 - w0));                      \
                        for (int64_t dd = d0; dd < d1; ++dd)                                        \
                            for (int64_t h = h0; h < h1; ++h)                                       \
                                for (int64_t w = w0; w < w1; ++w)                                   \
                                    dx[base + dd * g->xs[2] + h * g->xs[3] + w * g->xs[4]] += share; \
                    }                                                                               \
        }                                                                                           \
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

kb_status kb_cpu_pool3d(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    return kb_cpu_pool2d(ex, a, in, n_in, out);
}

kb_status kb_cpu_pool3d_grad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    return kb_cpu_pool2d_grad(ex, a, in, n_in, out);
}
