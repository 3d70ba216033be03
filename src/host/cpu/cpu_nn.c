/*
 * CPU kernels of the nn family: elu, softplus, softsign, hard_sigmoid, tanh, in_top_k and
 * sigmoid_cross_entropy (the older relu / sigmoid / softmax kernels are in cpu_elementwise.c and
 * cpu_reduce.c). Floats are float32 / float64 (the executor widens float16 / bfloat16), computed in
 * double and rounded once at the store; in_top_k's targets are int32 / int64.
 */
#include <math.h>

#include "cpu/cpu_common.h"
#include "cpu/cpu_kernels.h"
#include "ops/nn_patches.h"

/* y[i] = F(x[i]) for float32 / float64; F(v) is an expression in double v, A the node's attrs. */
#define NN_UNARY(NAME, F)                                                                            \
    static inline double NAME##_f(double v, const kb_attrs *A) {                                     \
        (void)A;                                                                                     \
        return F;                                                                                    \
    }                                                                                                \
    kb_status kb_cpu_##NAME(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,         \
                            kb_buf *out) {                                                           \
        (void)n_in;                                                                                  \
        int64_t n = out->size;                                                                       \
        if (in[0].dtype == KB_FLOAT32) {                                                             \
            const float *x = (const float *)in[0].data;                                              \
            float *y = (float *)out->data;                                                           \
            _Pragma("omp parallel for if (n > KB_OMP_MIN)") for (int64_t i = 0; i < n; ++i)          \
                y[i] = (float)NAME##_f(x[i], a);                                                     \
        } else if (in[0].dtype == KB_FLOAT64) {                                                      \
            const double *x = (const double *)in[0].data;                                            \
            double *y = (double *)out->data;                                                         \
            _Pragma("omp parallel for if (n > KB_OMP_MIN)") for (int64_t i = 0; i < n; ++i)          \
                y[i] = NAME##_f(x[i], a);                                                            \
        } else {                                                                                     \
            return kb_cpu_bad_dtype(ex, in[0].dtype);                                                \
        }                                                                                            \
        return KB_OK;                                                                                \
    }

/* tf.nn.elu, then Keras' where(x > 0, elu, alpha*elu) for alpha != 1. */
NN_UNARY(elu, v > 0 ? v : A->alpha * expm1(v))
/* Stable log(1 + exp(v)). */
NN_UNARY(softplus, fmax(v, 0.0) + log1p(exp(-fabs(v))))
NN_UNARY(softsign, v / (1.0 + fabs(v)))
/* Keras 2.3.1 TF backend: clip(0.2*x + 0.5, 0, 1); NaN stays NaN. */
NN_UNARY(hard_sigmoid, v != v ? v : fmin(fmax(0.2 * v + 0.5, 0.0), 1.0))
NN_UNARY(tanh, tanh(v))

static inline double pval(const kb_buf *p, int64_t i) {
    return p->dtype == KB_FLOAT32 ? ((const float *)p->data)[i] : ((const double *)p->data)[i];
}

/* tf.nn.in_top_k: false for an out-of-range target or a row with a non-finite prediction; else
 * (#{c : p[c] > p[target]}) < k, so ties with the target count as in the top k. */
kb_status kb_cpu_in_top_k(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    const kb_buf *p = &in[0], *t = &in[1];
    if (p->dtype != KB_FLOAT32 && p->dtype != KB_FLOAT64) return kb_cpu_bad_dtype(ex, p->dtype);
    if (t->dtype != KB_INT32 && t->dtype != KB_INT64) return kb_cpu_bad_dtype(ex, t->dtype);
    int64_t B = p->shape[0], C = p->shape[1], k = a->i64[0];
    uint8_t *o = (uint8_t *)out->data;
#pragma omp parallel for if (p->size > KB_OMP_MIN)
    for (int64_t r = 0; r < B; ++r) {
        int64_t tg = t->dtype == KB_INT32 ? ((const int32_t *)t->data)[r] : ((const int64_t *)t->data)[r];
        if (tg < 0 || tg >= C) {
            o[r] = 0;
            continue;
        }
        int bad = 0;
        int64_t greater = 0;
        double tv = pval(p, r * C + tg);
        for (int64_t c = 0; c < C; ++c) {
            double v = pval(p, r * C + c);
            if (!isfinite(v)) bad = 1;
            else if (v > tv) greater++;
        }
        o[r] = !bad && greater < k;
    }
    return KB_OK;
}

/* max(x, 0) - x*z + log1p(exp(-|x|)) for labels z = in[0], logits x = in[1], numpy-broadcast. */
static inline double sce(double z, double x) { return fmax(x, 0.0) - x * z + log1p(exp(-fabs(x))); }

kb_status kb_cpu_sigmoid_cross_entropy(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                       kb_buf *out) {
    (void)a;
    (void)n_in;
    kb_dtype dt = out->dtype;
    if (dt != KB_FLOAT32 && dt != KB_FLOAT64) return kb_cpu_bad_dtype(ex, dt);
    int64_t sz[KB_MAX_RANK], sx[KB_MAX_RANK];
    kb_bcast_strides(&in[0], out, sz);
    kb_bcast_strides(&in[1], out, sx);
    int flat = kb_same_shape(&in[0], out) && kb_same_shape(&in[1], out);
    int64_t n = out->size;
#pragma omp parallel for if (n > KB_OMP_MIN)
    for (int64_t i = 0; i < n; ++i) {
        int64_t oz = flat ? i : kb_bcast_offset(i, out, sz), ox = flat ? i : kb_bcast_offset(i, out, sx);
        if (dt == KB_FLOAT32)
            ((float *)out->data)[i] = (float)sce(((const float *)in[0].data)[oz], ((const float *)in[1].data)[ox]);
        else
            ((double *)out->data)[i] = sce(((const double *)in[0].data)[oz], ((const double *)in[1].data)[ox]);
    }
    return KB_OK;
}

/* ---- extract_patches / extract_patches_grad (local_conv1d / local_conv2d) ---- */


/* out[(p*B + b)*K + k] = x at window p's element k: contiguous runs of kw*C (channels_last) or
 * kw (channels_first) values. */
#define PATCHES_T(T)                                                                               \
    static void patches_##T(const T *x, T *o, const kb_patch_geo *g) {                                \
        int64_t rows = g->oh * g->ow * g->B;                                                       \
        _Pragma("omp parallel for if (rows * g->K > KB_OMP_MIN)") for (int64_t r = 0; r < rows; ++r) { \
            int64_t p = r / g->B, b = r % g->B, i = p / g->ow, j = p % g->ow;                      \
            T *dst = o + r * g->K;                                                                 \
            if (!g->cf) {                                                                          \
                for (int64_t dy = 0; dy < g->kh; ++dy) {                                           \
                    const T *src = x + ((b * g->H + i * g->sh + dy) * g->W + j * g->sw) * g->C;    \
                    memcpy(dst + dy * g->kw * g->C, src, (size_t)(g->kw * g->C) * sizeof(T));     \
                }                                                                                  \
            } else {                                                                               \
                for (int64_t c = 0; c < g->C; ++c)                                                 \
                    for (int64_t dy = 0; dy < g->kh; ++dy) {                                       \
                        const T *src = x + ((b * g->C + c) * g->H + i * g->sh + dy) * g->W + j * g->sw; \
                        memcpy(dst + (c * g->kh + dy) * g->kw, src, (size_t)g->kw * sizeof(T));   \
                    }                                                                              \
            }                                                                                      \
        }                                                                                          \
    }
PATCHES_T(float)
PATCHES_T(double)

/* dx[b, y, x, c] = sum over the windows (i, j) covering (y, x), i then j ascending, of
 * dy[(i*ow + j)*B + b][k]; the CUDA kernel sums in the same order. */
#define PATCHES_GRAD_T(T)                                                                          \
    static void patches_grad_##T(const T *gy, T *dx, const kb_patch_geo *g, int64_t n) {              \
        _Pragma("omp parallel for if (n > KB_OMP_MIN)") for (int64_t e = 0; e < n; ++e) {          \
            int64_t b, c, y, xx, t = e;                                                            \
            if (!g->cf) {                                                                          \
                c = t % g->C, t /= g->C, xx = t % g->W, t /= g->W, y = t % g->H, b = t / g->H;     \
            } else {                                                                               \
                xx = t % g->W, t /= g->W, y = t % g->H, t /= g->H, c = t % g->C, b = t / g->C;     \
            }                                                                                      \
            int64_t i0 = y >= g->kh ? (y - g->kh + g->sh) / g->sh : 0, i1 = y / g->sh;            \
            int64_t j0 = xx >= g->kw ? (xx - g->kw + g->sw) / g->sw : 0, j1 = xx / g->sw;         \
            if (i1 > g->oh - 1) i1 = g->oh - 1;                                                    \
            if (j1 > g->ow - 1) j1 = g->ow - 1;                                                    \
            T s = 0;                                                                               \
            for (int64_t i = i0; i <= i1; ++i)                                                     \
                for (int64_t j = j0; j <= j1; ++j) {                                               \
                    int64_t dy = y - i * g->sh, dxo = xx - j * g->sw;                              \
                    int64_t k = g->cf ? (c * g->kh + dy) * g->kw + dxo : (dy * g->kw + dxo) * g->C + c; \
                    s += gy[((i * g->ow + j) * g->B + b) * g->K + k];                              \
                }                                                                                  \
            dx[e] = s;                                                                             \
        }                                                                                          \
    }
PATCHES_GRAD_T(float)
PATCHES_GRAD_T(double)

kb_status kb_cpu_extract_patches(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    kb_patch_geo g = kb_patch_geo_of(a, &in[0]);
    switch (in[0].dtype) {
    case KB_FLOAT32: patches_float((const float *)in[0].data, (float *)out->data, &g); break;
    case KB_FLOAT64: patches_double((const double *)in[0].data, (double *)out->data, &g); break;
    default: return kb_cpu_bad_dtype(ex, in[0].dtype);
    }
    return KB_OK;
}

kb_status kb_cpu_extract_patches_grad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                      kb_buf *out) {
    (void)n_in;
    kb_patch_geo g = kb_patch_geo_of(a, &in[1]);
    switch (out->dtype) {
    case KB_FLOAT32: patches_grad_float((const float *)in[0].data, (float *)out->data, &g, out->size); break;
    case KB_FLOAT64: patches_grad_double((const double *)in[0].data, (double *)out->data, &g, out->size); break;
    default: return kb_cpu_bad_dtype(ex, out->dtype);
    }
    return KB_OK;
}
