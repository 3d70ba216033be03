/*
 * CPU elementwise kernels: binary ops with numpy broadcasting, comparisons, unary math, clip,
 * cast, relu, sigmoid and their gradient ops. float32 and float64 (the executor widens float16 /
 * bfloat16 around them); the integer ops also int8/uint8/int32/int64, the comparisons bool; cast
 * takes every dtype.
 * Contract: out = f(in...), out never aliases an input.
 */
#include <math.h>

#include "core/dtype.h"
#include "cpu/cpu_common.h"
#include "cpu/cpu_kernels.h"

/* Broadcasting walks rows of the innermost axis: the row's input offsets come from one div/mod
 * pass, then each input advances by its innermost stride (0 when broadcast, 1 otherwise).
 * Inputs are T, the output O (T, or uint8_t 0/1 for the bool result of comparisons). */
#define BINARY_T(NAME, T, O, EXPR)                                                                \
    static void NAME##_##T(const T *x, const T *y, O *o, const kb_buf *bx, const kb_buf *by,       \
                           const kb_buf *out, const kb_attrs *A) {                                \
        (void)A;                                                                                  \
        int64_t n = out->size;                                                                    \
        if (kb_same_shape(bx, out) && kb_same_shape(by, out)) {                                   \
            _Pragma("omp parallel for if (n > KB_OMP_MIN)") for (int64_t i = 0; i < n; ++i) {     \
                T a = x[i], b = y[i];                                                             \
                o[i] = (O)(EXPR);                                                                 \
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
            O *orow = o + r * inner;                                                              \
            for (int64_t j = 0; j < inner; ++j) {                                                 \
                T a = xr[j * ix], b = yr[j * iy];                                                 \
                orow[j] = (O)(EXPR);                                                              \
            }                                                                                     \
        }                                                                                         \
    }

#define BINARY_CALL(NAME, T, O)                                                                   \
    NAME##_##T((const T *)in[0].data, (const T *)in[1].data, (O *)out->data, &in[0], &in[1], out, attrs)

/* Shapes differ only when broadcasting, so out has rank >= 1 and no zero-size axis there
 * (size-0 outputs never run). */
#define BINARY_HEAD(NAME)                                                                         \
    kb_status kb_cpu_##NAME(const kb_exec *ex, const kb_attrs *attrs, const kb_buf *in, int n_in, kb_buf *out) { \
        (void)n_in;                                                                               \
        switch (in[0].dtype) {
#define BINARY_TAIL                                                                               \
        default: return kb_cpu_bad_dtype(ex, in[0].dtype);                                        \
        }                                                                                         \
        return KB_OK;                                                                             \
    }

/* out = EXPR(a, b) for float32 and float64; A is the node's attrs. */
#define BINARY_KERNEL(NAME, EXPR)                                                                 \
    BINARY_T(NAME, float, float, EXPR)                                                            \
    BINARY_T(NAME, double, double, EXPR)                                                          \
    BINARY_HEAD(NAME)                                                                             \
        case KB_FLOAT32: BINARY_CALL(NAME, float, float); break;                                  \
        case KB_FLOAT64: BINARY_CALL(NAME, double, double); break;                                \
    BINARY_TAIL

/* Floats by FEXPR, int8/uint8/int32/int64 by IEXPR. Integer arithmetic wraps modulo 2^bits as
 * TF's kernels do: IEXPR computes in uint64_t (no signed overflow) and the store truncates. */
#define BINARY_NUMERIC_KERNEL(NAME, FEXPR, IEXPR)                                                 \
    BINARY_T(NAME, float, float, FEXPR)                                                           \
    BINARY_T(NAME, double, double, FEXPR)                                                         \
    BINARY_T(NAME, int8_t, int8_t, IEXPR)                                                         \
    BINARY_T(NAME, uint8_t, uint8_t, IEXPR)                                                       \
    BINARY_T(NAME, int32_t, int32_t, IEXPR)                                                       \
    BINARY_T(NAME, int64_t, int64_t, IEXPR)                                                       \
    BINARY_HEAD(NAME)                                                                             \
        case KB_FLOAT32: BINARY_CALL(NAME, float, float); break;                                  \
        case KB_FLOAT64: BINARY_CALL(NAME, double, double); break;                                \
        case KB_INT8: BINARY_CALL(NAME, int8_t, int8_t); break;                                   \
        case KB_UINT8: BINARY_CALL(NAME, uint8_t, uint8_t); break;                                \
        case KB_INT32: BINARY_CALL(NAME, int32_t, int32_t); break;                                \
        case KB_INT64: BINARY_CALL(NAME, int64_t, int64_t); break;                                \
    BINARY_TAIL

/* Comparisons: any input dtype (bool is uint8_t 0/1, as uint8), a bool (uint8_t 0/1) output. */
#define COMPARE_KERNEL(NAME, EXPR)                                                                \
    BINARY_T(NAME, float, uint8_t, EXPR)                                                          \
    BINARY_T(NAME, double, uint8_t, EXPR)                                                         \
    BINARY_T(NAME, int8_t, uint8_t, EXPR)                                                         \
    BINARY_T(NAME, uint8_t, uint8_t, EXPR)                                                        \
    BINARY_T(NAME, int32_t, uint8_t, EXPR)                                                        \
    BINARY_T(NAME, int64_t, uint8_t, EXPR)                                                        \
    BINARY_HEAD(NAME)                                                                             \
        case KB_FLOAT32: BINARY_CALL(NAME, float, uint8_t); break;                                \
        case KB_FLOAT64: BINARY_CALL(NAME, double, uint8_t); break;                               \
        case KB_INT8: BINARY_CALL(NAME, int8_t, uint8_t); break;                                  \
        case KB_UINT8:                                                                            \
        case KB_BOOL: BINARY_CALL(NAME, uint8_t, uint8_t); break;                                 \
        case KB_INT32: BINARY_CALL(NAME, int32_t, uint8_t); break;                                \
        case KB_INT64: BINARY_CALL(NAME, int64_t, uint8_t); break;                                \
    BINARY_TAIL

/* Sign test through int64_t, so the unsigned instantiations compile without "always false". */
static inline int is_neg(int64_t v) { return v < 0; }
/* NaN-propagating max / min (numpy, TF 2): the result is NaN if either operand is. */
#define FMAX_NAN(a, b) ((a) != (a) ? (a) : (b) != (b) ? (b) : (a) > (b) ? (a) : (b))
#define FMIN_NAN(a, b) ((a) != (a) ? (a) : (b) != (b) ? (b) : (a) < (b) ? (a) : (b))

BINARY_NUMERIC_KERNEL(add, a + b, (uint64_t)a + (uint64_t)b)
BINARY_NUMERIC_KERNEL(subtract, a - b, (uint64_t)a - (uint64_t)b)
BINARY_NUMERIC_KERNEL(multiply, a *b, (uint64_t)a * (uint64_t)b)
BINARY_NUMERIC_KERNEL(maximum, FMAX_NAN(a, b), a > b ? a : b)
BINARY_NUMERIC_KERNEL(minimum, FMIN_NAN(a, b), a < b ? a : b)
BINARY_KERNEL(divide, a / b)
/* sqrt_grad(dy, x): Keras sqrt clips x at 0, so no gradient below 0 */
BINARY_KERNEL(sqrt_grad, b < 0 ? 0 : a * 0.5 / sqrt(b))
/* clip_grad(dy, x): TF clip_by_value passes dy where lo <= x <= hi */
BINARY_KERNEL(clip_grad, (b < A->lo || b > A->hi) ? 0 : a)

/* IEEE comparisons: any comparison with NaN is false, except != which is true. */
COMPARE_KERNEL(equal, a == b)
COMPARE_KERNEL(not_equal, a != b)
COMPARE_KERNEL(greater, a > b)
COMPARE_KERNEL(greater_equal, a >= b)
COMPARE_KERNEL(less, a < b)
COMPARE_KERNEL(less_equal, a <= b)

/* y = EXPR(x) elementwise over n values of type T; A is the node's attrs. */
#define UNARY_T(NAME, T, EXPR)                                                                    \
    static void NAME##_##T(const T *X, T *o, int64_t n, const kb_attrs *A) {                      \
        (void)A;                                                                                  \
        _Pragma("omp parallel for if (n > KB_OMP_MIN)") for (int64_t i = 0; i < n; ++i) {         \
            T x = X[i];                                                                           \
            o[i] = (T)(EXPR);                                                                     \
        }                                                                                         \
    }
#define UNARY_CALL(NAME, T) NAME##_##T((const T *)in[0].data, (T *)out->data, out->size, attrs)
#define UNARY_HEAD(NAME)                                                                          \
    kb_status kb_cpu_##NAME(const kb_exec *ex, const kb_attrs *attrs, const kb_buf *in, int n_in, kb_buf *out) { \
        (void)n_in;                                                                               \
        switch (out->dtype) {
#define UNARY_TAIL                                                                                \
        default: return kb_cpu_bad_dtype(ex, out->dtype);                                         \
        }                                                                                         \
        return KB_OK;                                                                             \
    }

/* float32 by EXPR32, float64 by EXPR64 (float math is evaluated in double, rounded once). */
#define UNARY_KERNEL2(NAME, EXPR32, EXPR64)                                                       \
    UNARY_T(NAME, float, EXPR32)                                                                  \
    UNARY_T(NAME, double, EXPR64)                                                                 \
    UNARY_HEAD(NAME)                                                                              \
        case KB_FLOAT32: UNARY_CALL(NAME, float); break;                                          \
        case KB_FLOAT64: UNARY_CALL(NAME, double); break;                                         \
    UNARY_TAIL
#define UNARY_KERNEL(NAME, EXPR) UNARY_KERNEL2(NAME, EXPR, EXPR)

/* Floats by FEXPR, int8/uint8/int32/int64 by IEXPR (wrapping, as BINARY_NUMERIC_KERNEL). */
#define UNARY_NUMERIC_KERNEL(NAME, FEXPR, IEXPR)                                                  \
    UNARY_T(NAME, float, FEXPR)                                                                   \
    UNARY_T(NAME, double, FEXPR)                                                                  \
    UNARY_T(NAME, int8_t, IEXPR)                                                                  \
    UNARY_T(NAME, uint8_t, IEXPR)                                                                 \
    UNARY_T(NAME, int32_t, IEXPR)                                                                 \
    UNARY_T(NAME, int64_t, IEXPR)                                                                 \
    UNARY_HEAD(NAME)                                                                              \
        case KB_FLOAT32: UNARY_CALL(NAME, float); break;                                          \
        case KB_FLOAT64: UNARY_CALL(NAME, double); break;                                         \
        case KB_INT8: UNARY_CALL(NAME, int8_t); break;                                            \
        case KB_UINT8: UNARY_CALL(NAME, uint8_t); break;                                          \
        case KB_INT32: UNARY_CALL(NAME, int32_t); break;                                          \
        case KB_INT64: UNARY_CALL(NAME, int64_t); break;                                          \
    UNARY_TAIL

UNARY_NUMERIC_KERNEL(negative, -x, 0 - (uint64_t)x)
UNARY_NUMERIC_KERNEL(square, x *x, (uint64_t)x * (uint64_t)x)
/* fabs: abs(-0) = +0 and NaN stays NaN; integers wrap (abs(INT32_MIN) = INT32_MIN, as TF). */
UNARY_NUMERIC_KERNEL(abs, fabs(x), is_neg(x) ? 0 - (uint64_t)x : (uint64_t)x)
/* sign(0) = +0 (also for -0), NaN stays NaN. */
UNARY_NUMERIC_KERNEL(sign, x > 0 ? 1 : x < 0 ? -1 : x == 0 ? 0 : x, (x > 0) - is_neg(x))
UNARY_KERNEL(exp, exp(x))
UNARY_KERNEL(log, log(x))
UNARY_KERNEL(sqrt, x < 0 ? 0 : sqrt(x))
UNARY_KERNEL(sin, sin(x))
UNARY_KERNEL(cos, cos(x))
/* nearbyint in the default rounding mode is round-half-to-even (tf.round); -0.5 -> -0. */
UNARY_KERNEL(round, nearbyint(x))
/* tf.pow casts the exponent to x's dtype. */
UNARY_KERNEL2(pow, pow(x, (float)A->value), pow(x, A->value))
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

/*
 * select(cond, a, b): out = cond ? a : b (a pure copy: any dtype, moved by element size, so the
 * half types need no widening). attrs.i64[0] = 1 aligns cond to the leading axes of out (its
 * shape padded with trailing 1s), 0 right-aligns it (numpy).
 */
#define SELECT_T(T)                                                                               \
    static void select_##T(const uint8_t *c, const T *a, const T *b, T *o, const kb_buf *bc,      \
                           const kb_buf *ba, const kb_buf *bb, const kb_buf *out) {               \
        int64_t n = out->size;                                                                    \
        if (kb_same_shape(ba, out) && kb_same_shape(bb, out) && (bc->size == 1 || bc->size == n)) { \
            int64_t cs = bc->size == 1 ? 0 : 1;                                                   \
            _Pragma("omp parallel for if (n > KB_OMP_MIN)") for (int64_t i = 0; i < n; ++i)       \
                o[i] = c[i * cs] ? a[i] : b[i];                                                    \
            return;                                                                               \
        }                                                                                         \
        /* broadcasting (out has rank >= 1): rows of the innermost axis, as the binary ops */    \
        int64_t sc[KB_MAX_RANK], sa[KB_MAX_RANK], sb[KB_MAX_RANK];                                \
        kb_bcast_strides(bc, out, sc);                                                            \
        kb_bcast_strides(ba, out, sa);                                                            \
        kb_bcast_strides(bb, out, sb);                                                            \
        int last = out->rank - 1;                                                                 \
        int64_t inner = out->shape[last], rows = n / inner, ic = sc[last], ia = sa[last], ib = sb[last]; \
        _Pragma("omp parallel for if (n > KB_OMP_MIN)") for (int64_t r = 0; r < rows; ++r) {      \
            const uint8_t *cr = c + kb_bcast_offset(r * inner, out, sc);                          \
            const T *ar = a + kb_bcast_offset(r * inner, out, sa), *br = b + kb_bcast_offset(r * inner, out, sb); \
            T *orow = o + r * inner;                                                              \
            for (int64_t j = 0; j < inner; ++j) orow[j] = cr[j * ic] ? ar[j * ia] : br[j * ib];   \
        }                                                                                         \
    }
SELECT_T(uint8_t)
SELECT_T(uint16_t)
SELECT_T(uint32_t)
SELECT_T(uint64_t)

kb_status kb_cpu_select(const kb_exec *ex, const kb_attrs *attrs, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    kb_buf c = in[0];
    if (attrs->i64[0]) { /* cond's dims on the leading axes */
        if (c.rank > out->rank) return kb_set_error(KB_ERR_SHAPE, "%s: condition rank exceeds the output's", ex->op);
        for (int d = c.rank; d < out->rank; ++d) c.shape[d] = 1;
        c.rank = out->rank;
    }
    const uint8_t *cd = (const uint8_t *)c.data;
#define SELECT_CALL(T) \
    select_##T(cd, (const T *)in[1].data, (const T *)in[2].data, (T *)out->data, &c, &in[1], &in[2], out)
    switch (kb_dtype_size(out->dtype)) {
    case 1: SELECT_CALL(uint8_t); break;
    case 2: SELECT_CALL(uint16_t); break;
    case 4: SELECT_CALL(uint32_t); break;
    case 8: SELECT_CALL(uint64_t); break;
    default: return kb_cpu_bad_dtype(ex, out->dtype);
    }
#undef SELECT_CALL
    return KB_OK;
}
