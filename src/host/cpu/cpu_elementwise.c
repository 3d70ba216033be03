/*
 * CPU elementwise kernels: binary ops with numpy broadcasting, unary math, clip, cast, relu,
 * sigmoid and their gradient ops. float32 and float64; cast and fill take every dtype.
 * Contract: out = f(in...), out never aliases an input.
 */
#include <math.h>

#include "core/dtype.h"
#include "cpu/cpu_common.h"
#include "cpu/cpu_kernels.h"

/* Broadcasting walks rows of the innermost axis: the row's input offsets come from one div/mod
 * pass, then each input advances by its innermost stride (0 when broadcast, 1 otherwise). */
#define BINARY_T(NAME, T, EXPR)                                                                   \
    static void NAME##_##T(const T *x, const T *y, T *o, const kb_buf *bx, const kb_buf *by,       \
                           const kb_buf *out, const kb_attrs *A) {                                \
        (void)A;                                                                                  \
        int64_t n = out->size;                                                                    \
        if (kb_same_shape(bx, out) && kb_same_shape(by, out)) {                                   \
            _Pragma("omp parallel for if (n > KB_OMP_MIN)") for (int64_t i = 0; i < n; ++i) {     \
                T a = x[i], b = y[i];                                                             \
                o[i] = (T)(EXPR);                                                                 \
            }                                                                                     \
            return;                                                                               \
        }                                                                                         \
        int64_t sx[KB_MAX_RANK], sy[KB_MAX_RANK];                                                 \
        kb_bcast_strides(bx, out, sx);                                                            \
        kb_bcast_strides(by, out, sy);                                                            \
        int last = out->rank - 1;                                                                 \
        int64_t inner = out->shape[last], rows = n / inner, ix = sx[last], iy = sy[last];         \
        _Pragma("omp parallel for if (n > KB_OMP_MIN)") for (int64_t r = 0; r < rows; ++r) {      \
            const T *xr = x + kb_bcast_offset(r * inner, out, sx);                                \
            const T *yr = y + kb_bcast_offset(r * inner, out, sy);                                \
            T *orow = o + r * inner;                                                              \
            for (int64_t j = 0; j < inner; ++j) {                                                 \
                T a = xr[j * ix], b = yr[j * iy];                                                 \
                orow[j] = (T)(EXPR);                                                              \
            }                                                                                     \
        }                                                                                         \
    }

/* out = EXPR(a, b) for float32 and float64; A is the node's attrs. Shapes differ only when
 * broadcasting, so out has rank >= 1 and no zero-size axis there (size-0 outputs never run). */
#define BINARY_KERNEL(NAME, EXPR)                                                                 \
    BINARY_T(NAME, float, EXPR)                                                                   \
    BINARY_T(NAME, double, EXPR)                                                                  \
    kb_status kb_cpu_##NAME(const kb_exec *ex, const kb_attrs *attrs, const kb_buf *in, int n_in, kb_buf *out) { \
        (void)n_in;                                                                               \
        if (out->dtype == KB_FLOAT32)                                                             \
            NAME##_float((const float *)in[0].data, (const float *)in[1].data, (float *)out->data, &in[0], &in[1], \
                         out, attrs);                                                             \
        else if (out->dtype == KB_FLOAT64)                                                        \
            NAME##_double((const double *)in[0].data, (const double *)in[1].data, (double *)out->data, &in[0], \
                          &in[1], out, attrs);                                                    \
        else                                                                                      \
            return kb_cpu_bad_dtype(ex, out->dtype);                                              \
        return KB_OK;                                                                             \
    }

BINARY_KERNEL(add, a + b)
BINARY_KERNEL(subtract, a - b)
BINARY_KERNEL(multiply, a *b)
BINARY_KERNEL(divide, a / b)
/* sqrt_grad(dy, x): Keras sqrt clips x at 0, so no gradient below 0 */
BINARY_KERNEL(sqrt_grad, b < 0 ? 0 : a * 0.5 / sqrt(b))
/* clip_grad(dy, x): TF clip_by_value passes dy where lo <= x <= hi */
BINARY_KERNEL(clip_grad, (b < A->lo || b > A->hi) ? 0 : a)

#define UNARY_KERNEL(NAME, EXPR)                                                                  \
    kb_status kb_cpu_##NAME(const kb_exec *ex, const kb_attrs *attrs, const kb_buf *in, int n_in, kb_buf *out) { \
        (void)n_in;                                                                               \
        const kb_attrs *A = attrs;                                                                \
        (void)A;                                                                                  \
        int64_t n = out->size;                                                                    \
        if (out->dtype == KB_FLOAT32) {                                                           \
            const float *X = (const float *)in[0].data;                                           \
            float *o = (float *)out->data;                                                        \
            _Pragma("omp parallel for if (n > KB_OMP_MIN)") for (int64_t i = 0; i < n; ++i) {     \
                float x = X[i];                                                                   \
                o[i] = (float)(EXPR);                                                             \
            }                                                                                     \
        } else if (out->dtype == KB_FLOAT64) {                                                    \
            const double *X = (const double *)in[0].data;                                         \
            double *o = (double *)out->data;                                                      \
            _Pragma("omp parallel for if (n > KB_OMP_MIN)") for (int64_t i = 0; i < n; ++i) {     \
                double x = X[i];                                                                  \
                o[i] = (EXPR);                                                                    \
            }                                                                                     \
        } else {                                                                                  \
            return kb_cpu_bad_dtype(ex, out->dtype);                                              \
        }                                                                                         \
        return KB_OK;                                                                             \
    }

UNARY_KERNEL(negative, -x)
UNARY_KERNEL(square, x *x)
UNARY_KERNEL(exp, exp(x))
UNARY_KERNEL(log, log(x))
UNARY_KERNEL(sqrt, x < 0 ? 0 : sqrt(x))
UNARY_KERNEL(clip, x < A->lo ? A->lo : (x > A->hi ? A->hi : x))
UNARY_KERNEL(sigmoid, x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)))

/*
 * Keras relu(x, alpha, max_value, threshold) (tensorflow_backend.py 2.3.1): the leaky_relu path
 * max(alpha*x, x) when only alpha is set; else x*(x > threshold) (or relu), clipped to
 * [0, max_value], minus alpha*relu(threshold - x).
 */
static inline double relu_f(double x, const kb_attrs *a) {
    if (a->alpha != 0 && isinf(a->max_value) && a->threshold == 0) return fmax(a->alpha * x, x);
    double neg = a->alpha != 0 ? fmax(a->threshold - x, 0) : 0;
    double y = a->threshold != 0 ? (x > a->threshold ? x : 0) : (x > 0 ? x : 0);
    if (!isinf(a->max_value)) y = fmin(fmax(y, 0), a->max_value);
    return y - a->alpha * neg;
}
static inline double relu_d(double x, const kb_attrs *a) {
    if (a->alpha != 0 && isinf(a->max_value) && a->threshold == 0) return a->alpha * x > x ? a->alpha : 1;
    double ypre = a->threshold != 0 ? (x > a->threshold ? x : 0) : (x > 0 ? x : 0);
    double d = a->threshold != 0 ? (x > a->threshold) : (x > 0);
    if (!isinf(a->max_value) && (ypre < 0 || ypre > a->max_value)) d = 0;
    if (a->alpha != 0 && x < a->threshold) d += a->alpha;
    return d;
}
UNARY_KERNEL(relu, relu_f(x, A))
BINARY_KERNEL(relu_grad, a *relu_d(b, A))

kb_status kb_cpu_cast(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)ex; (void)a; (void)n_in;
    kb_convert(in[0].data, in[0].dtype, out->data, out->dtype, out->size);
    return KB_OK;
}
