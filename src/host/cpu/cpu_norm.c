/*
 * CPU kernels of the norm family (see ops/norm.c for the ops). x is viewed as (O, C, I): the
 * kept axes form the C block, O and I are the reduced dims before and after it. Per-channel
 * sums accumulate in double, the mean and variance are two-pass (mean first, then the squared
 * deviations), so these kernels are the exact reference the CUDA kernels are checked against.
 * Loops run per channel (OpenMP over channels when the tensor is large).
 */
#include <math.h>

#include "cpu/cpu_common.h"
#include "cpu/cpu_kernels.h"

typedef struct {
    int64_t o, c, i;
} bn_layout;

static bn_layout layout(const kb_buf *x, uint32_t mask) {
    bn_layout l = {1, 1, 1};
    int seen = 0;
    for (int d = 0; d < x->rank; ++d) {
        if (!(mask & (1u << d))) {
            l.c *= x->shape[d];
            seen = 1;
        } else if (seen) {
            l.i *= x->shape[d];
        } else {
            l.o *= x->shape[d];
        }
    }
    return l;
}

/* Element (o, c, i) of an (O, C, I) buffer. */
#define AT(p, l, o, c, i) ((p)[((o) * (l).c + (c)) * (l).i + (i)])

#define BN_CPU_KERNELS(T, S)                                                                                      \
    static void moments_##S(const T *x, T *out, bn_layout l) {                                                   \
        int64_t m = l.o * l.i;                                                                                    \
        _Pragma("omp parallel for if (l.o * l.c * l.i > KB_OMP_MIN)")                                            \
        for (int64_t c = 0; c < l.c; ++c) {                                                                       \
            double s = 0.0, q = 0.0;                                                                              \
            for (int64_t o = 0; o < l.o; ++o)                                                                     \
                for (int64_t i = 0; i < l.i; ++i) s += (double)AT(x, l, o, c, i);                                 \
            double mean = s / (double)m;                                                                          \
            for (int64_t o = 0; o < l.o; ++o)                                                                     \
                for (int64_t i = 0; i < l.i; ++i) {                                                               \
                    double d = (double)AT(x, l, o, c, i) - mean;                                                  \
                    q += d * d;                                                                                   \
                }                                                                                                 \
            out[c] = (T)mean;                                                                                     \
            out[l.c + c] = (T)(q / (double)m);                                                                    \
        }                                                                                                         \
    }                                                                                                             \
    static void normalize_##S(const T *x, const T *mom, const T *gamma, const T *beta, T *y, bn_layout l,         \
                              double eps) {                                                                       \
        _Pragma("omp parallel for if (l.o * l.c * l.i > KB_OMP_MIN)")                                            \
        for (int64_t c = 0; c < l.c; ++c) {                                                                       \
            double mean = (double)mom[c], scale = (double)gamma[c] / sqrt((double)mom[l.c + c] + eps);            \
            double b = (double)beta[c];                                                                           \
            for (int64_t o = 0; o < l.o; ++o)                                                                     \
                for (int64_t i = 0; i < l.i; ++i)                                                                 \
                    AT(y, l, o, c, i) = (T)(((double)AT(x, l, o, c, i) - mean) * scale + b);                      \
        }                                                                                                         \
    }                                                                                                             \
    static void grad_stats_##S(const T *x, const T *dy, const T *mom, const T *gamma, T *out, bn_layout l,        \
                               double eps) {                                                                      \
        _Pragma("omp parallel for if (l.o * l.c * l.i > KB_OMP_MIN)")                                            \
        for (int64_t c = 0; c < l.c; ++c) {                                                                       \
            double mean = (double)mom[c], s = 1.0 / sqrt((double)mom[l.c + c] + eps), sd = 0.0, sdx = 0.0;       \
            for (int64_t o = 0; o < l.o; ++o)                                                                     \
                for (int64_t i = 0; i < l.i; ++i) {                                                               \
                    double g = (double)AT(dy, l, o, c, i);                                                        \
                    sd += g;                                                                                      \
                    sdx += g * ((double)AT(x, l, o, c, i) - mean);                                                \
                }                                                                                                 \
            out[c] = (T)sd;                                                                                       \
            out[l.c + c] = (T)(sdx * s);                                                                          \
            out[2 * l.c + c] = gamma[c];                                                                          \
        }                                                                                                         \
    }                                                                                                             \
    /* dx = gamma s (dy - dbeta / M - xhat dgamma / M), xhat = (x - mean) s */                                   \
    static void grad_input_##S(const T *x, const T *dy, const T *mom, const T *st, T *dx, bn_layout l,            \
                               double eps) {                                                                      \
        double m = (double)(l.o * l.i);                                                                           \
        _Pragma("omp parallel for if (l.o * l.c * l.i > KB_OMP_MIN)")                                            \
        for (int64_t c = 0; c < l.c; ++c) {                                                                       \
            double mean = (double)mom[c], s = 1.0 / sqrt((double)mom[l.c + c] + eps);                            \
            double a = (double)st[2 * l.c + c] * s, b = (double)st[c] / m, d = (double)st[l.c + c] * s / m;       \
            for (int64_t o = 0; o < l.o; ++o)                                                                     \
                for (int64_t i = 0; i < l.i; ++i)                                                                 \
                    AT(dx, l, o, c, i) =                                                                          \
                        (T)(a * ((double)AT(dy, l, o, c, i) - b - ((double)AT(x, l, o, c, i) - mean) * d));      \
        }                                                                                                         \
    }

BN_CPU_KERNELS(float, f32)
BN_CPU_KERNELS(double, f64)

kb_status kb_cpu_bn_moments(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    bn_layout l = layout(&in[0], a->axes_mask);
    if (in[0].dtype == KB_FLOAT32) moments_f32((const float *)in[0].data, (float *)out->data, l);
    else if (in[0].dtype == KB_FLOAT64) moments_f64((const double *)in[0].data, (double *)out->data, l);
    else return kb_cpu_bad_dtype(ex, in[0].dtype);
    return KB_OK;
}

kb_status kb_cpu_bn_normalize(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    bn_layout l = layout(&in[0], a->axes_mask);
    if (in[0].dtype == KB_FLOAT32)
        normalize_f32((const float *)in[0].data, (const float *)in[1].data, (const float *)in[2].data,
                      (const float *)in[3].data, (float *)out->data, l, a->value);
    else if (in[0].dtype == KB_FLOAT64)
        normalize_f64((const double *)in[0].data, (const double *)in[1].data, (const double *)in[2].data,
                      (const double *)in[3].data, (double *)out->data, l, a->value);
    else return kb_cpu_bad_dtype(ex, in[0].dtype);
    return KB_OK;
}

kb_status kb_cpu_bn_grad_stats(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    bn_layout l = layout(&in[0], a->axes_mask);
    if (in[0].dtype == KB_FLOAT32)
        grad_stats_f32((const float *)in[0].data, (const float *)in[1].data, (const float *)in[2].data,
                       (const float *)in[3].data, (float *)out->data, l, a->value);
    else if (in[0].dtype == KB_FLOAT64)
        grad_stats_f64((const double *)in[0].data, (const double *)in[1].data, (const double *)in[2].data,
                       (const double *)in[3].data, (double *)out->data, l, a->value);
    else return kb_cpu_bad_dtype(ex, in[0].dtype);
    return KB_OK;
}

kb_status kb_cpu_bn_grad_input(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    bn_layout l = layout(&in[0], a->axes_mask);
    if (in[0].dtype == KB_FLOAT32)
        grad_input_f32((const float *)in[0].data, (const float *)in[1].data, (const float *)in[2].data,
                       (const float *)in[3].data, (float *)out->data, l, a->value);
    else if (in[0].dtype == KB_FLOAT64)
        grad_input_f64((const double *)in[0].data, (const double *)in[1].data, (const double *)in[2].data,
                       (const double *)in[3].data, (double *)out->data, l, a->value);
    else return kb_cpu_bad_dtype(ex, in[0].dtype);
    return KB_OK;
}
