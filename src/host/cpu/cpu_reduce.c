/*
 * CPU reductions (accumulating in double for floats, in wrapping 64-bit integers for int32 /
 * int64: the parity reference): sum, mean, max, min, prod, any, all, logsumexp over an axes
 * mask; argmax / argmin and the scans cumsum / cumprod along one axis; max_grad, sum_like,
 * broadcast_like; softmax and log_softmax along one axis (used by the nn family).
 * float16 / bfloat16 arrive widened to float32 (kb_cpu_call).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/dtype.h"
#include "cpu/cpu_common.h"
#include "cpu/cpu_kernels.h"

static double ld(const kb_buf *b, int64_t i) {
    return b->dtype == KB_FLOAT32 ? (double)((const float *)b->data)[i] : ((const double *)b->data)[i];
}
static void st(kb_buf *b, int64_t i, double v) {
    if (b->dtype == KB_FLOAT32) ((float *)b->data)[i] = (float)v;
    else ((double *)b->data)[i] = v;
}
static int is_f(kb_dtype dt) { return dt == KB_FLOAT32 || dt == KB_FLOAT64; }
static int is_i(kb_dtype dt) { return dt == KB_INT32 || dt == KB_INT64; }
static int64_t ldi(const kb_buf *b, int64_t i) {
    return b->dtype == KB_INT32 ? (int64_t)((const int32_t *)b->data)[i] : ((const int64_t *)b->data)[i];
}
/* int32 results keep the low 32 bits (two's complement wrap, as TF's int32 arithmetic). */
static void sti(kb_buf *b, int64_t i, uint64_t v) {
    if (b->dtype == KB_INT32) ((int32_t *)b->data)[i] = (int32_t)(uint32_t)v;
    else ((int64_t *)b->data)[i] = (int64_t)v;
}

/* For each axis of x: the stride of the output element it maps to (0 on reduced axes). */
static void reduce_strides(const kb_buf *x, uint32_t mask, int64_t *os) {
    int64_t s = 1;
    for (int i = x->rank - 1; i >= 0; --i) {
        if (mask & (1u << i)) {
            os[i] = 0;
        } else {
            os[i] = s;
            s *= x->shape[i];
        }
    }
}

static int64_t map_offset(int64_t i, const kb_buf *x, const int64_t *os) {
    int64_t off = 0;
    for (int d = x->rank - 1; d >= 0; --d) {
        int64_t c = i % x->shape[d];
        i /= x->shape[d];
        off += c * os[d];
    }
    return off;
}

enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_ANY, R_ALL, R_LSE };

/* Calls body(j, i) for every element i of x with j its output slot: rows of the innermost axis,
 * one div/mod pass per row, then the slot advances by that axis' stride (0 when it is reduced). */
#define FOR_EACH_SLOT(x, os, ...)                                                               \
    do {                                                                                         \
        int64_t inner_ = (x)->rank ? (x)->shape[(x)->rank - 1] : 1;                              \
        int64_t step_ = (x)->rank ? (os)[(x)->rank - 1] : 0;                                     \
        for (int64_t r_ = 0; inner_ && r_ < (x)->size / inner_; ++r_) {                          \
            int64_t j = map_offset(r_ * inner_, (x), (os)), i = r_ * inner_;                     \
            for (int64_t k_ = 0; k_ < inner_; ++k_, ++i, j += step_) __VA_ARGS__;                     \
        }                                                                                        \
    } while (0)

/* Elements per group (the product of the reduced dims, also when x is empty). */
static int64_t group_count(const kb_buf *x, uint32_t mask) {
    int64_t c = 1;
    for (int i = 0; i < x->rank; ++i)
        if (mask & (1u << i)) c *= x->shape[i];
    return c;
}

static kb_status reduce_float(const kb_exec *ex, const kb_attrs *a, const kb_buf *x, kb_buf *out, int kind) {
    int64_t n = out->size;
    double *acc = (double *)malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (!acc) return kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: out of host memory", ex->op);
    double init = kind == R_MAX || kind == R_LSE ? -INFINITY : kind == R_MIN ? INFINITY : kind == R_PROD ? 1.0 : 0.0;
    for (int64_t j = 0; j < n; ++j) acc[j] = init;
    int64_t os[KB_MAX_RANK];
    reduce_strides(x, a->axes_mask, os);
    switch (kind) {
    case R_MAX:
    case R_LSE: /* logsumexp: the max first, the shift of the second pass */
        FOR_EACH_SLOT(x, os, {
            double v = ld(x, i);
            if (!isnan(acc[j]) && (isnan(v) || v > acc[j])) acc[j] = v;
        });
        break;
    case R_MIN:
        FOR_EACH_SLOT(x, os, {
            double v = ld(x, i);
            if (!isnan(acc[j]) && (isnan(v) || v < acc[j])) acc[j] = v;
        });
        break;
    case R_PROD: FOR_EACH_SLOT(x, os, acc[j] *= ld(x, i)); break;
    default: FOR_EACH_SLOT(x, os, acc[j] += ld(x, i)); break;
    }
    if (kind == R_LSE) {
        /* TF's reduce_logsumexp: shift by the max where it is finite, else by 0 (an all -inf
         * group gives log(0) = -inf, a +inf element gives +inf, NaN stays NaN). */
        double *s = (double *)calloc((size_t)(n ? n : 1), sizeof(double));
        if (!s) {
            free(acc);
            return kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: out of host memory", ex->op);
        }
        for (int64_t j = 0; j < n; ++j)
            if (!isfinite(acc[j])) acc[j] = isnan(acc[j]) ? acc[j] : 0.0;
        FOR_EACH_SLOT(x, os, s[j] += exp(ld(x, i) - acc[j]));
        for (int64_t j = 0; j < n; ++j) acc[j] = log(s[j]) + acc[j];
        free(s);
    }
    double count = (double)group_count(x, a->axes_mask);
    for (int64_t j = 0; j < n; ++j) st(out, j, kind == R_MEAN ? acc[j] / count : acc[j]);
    free(acc);
    return KB_OK;
}

/* int32 / int64: sums and products wrap (unsigned arithmetic), empty max / min give the type's
 * lowest / highest value, mean is sum / count truncated toward zero (0 for an empty group). */
static kb_status reduce_int(const kb_exec *ex, const kb_attrs *a, const kb_buf *x, kb_buf *out, int kind) {
    int64_t n = out->size;
    uint64_t *acc = (uint64_t *)malloc(sizeof(uint64_t) * (size_t)(n ? n : 1));
    if (!acc) return kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: out of host memory", ex->op);
    int64_t lo = x->dtype == KB_INT32 ? INT32_MIN : INT64_MIN, hi = x->dtype == KB_INT32 ? INT32_MAX : INT64_MAX;
    uint64_t init = kind == R_MAX ? (uint64_t)lo : kind == R_MIN ? (uint64_t)hi : kind == R_PROD ? 1u : 0u;
    for (int64_t j = 0; j < n; ++j) acc[j] = init;
    int64_t os[KB_MAX_RANK];
    reduce_strides(x, a->axes_mask, os);
    switch (kind) {
    case R_MAX:
        FOR_EACH_SLOT(x, os, {
            if (ldi(x, i) > (int64_t)acc[j]) acc[j] = (uint64_t)ldi(x, i);
        });
        break;
    case R_MIN:
        FOR_EACH_SLOT(x, os, {
            if (ldi(x, i) < (int64_t)acc[j]) acc[j] = (uint64_t)ldi(x, i);
        });
        break;
    case R_PROD: FOR_EACH_SLOT(x, os, acc[j] *= (uint64_t)ldi(x, i)); break;
    default: FOR_EACH_SLOT(x, os, acc[j] += (uint64_t)ldi(x, i)); break;
    }
    int64_t count = group_count(x, a->axes_mask);
    for (int64_t j = 0; j < n; ++j) {
        uint64_t v = acc[j];
        if (kind == R_MEAN) {
            /* int32 sums are kept in 64 bits, so their mean does not wrap */
            v = (uint64_t)(count ? (int64_t)v / count : 0);
        }
        sti(out, j, v);
    }
    free(acc);
    return KB_OK;
}

static kb_status reduce(const kb_exec *ex, const kb_attrs *a, const kb_buf *x, kb_buf *out, int kind) {
    if (is_f(x->dtype)) return reduce_float(ex, a, x, out, kind);
    if (is_i(x->dtype) && kind != R_LSE) return reduce_int(ex, a, x, out, kind);
    return kb_cpu_bad_dtype(ex, x->dtype);
}

/* any / all of any dtype: an element is true when nonzero (NaN is true); out is bool. */
static kb_status reduce_bool(const kb_exec *ex, const kb_attrs *a, const kb_buf *x, kb_buf *out, int all) {
    (void)ex;
    uint8_t *o = (uint8_t *)out->data;
    for (int64_t j = 0; j < out->size; ++j) o[j] = (uint8_t)all;
    int64_t os[KB_MAX_RANK];
    reduce_strides(x, a->axes_mask, os);
    FOR_EACH_SLOT(x, os, {
        if ((kb_load_f64(x->data, x->dtype, i) != 0.0) != all) o[j] = (uint8_t)!all;
    });
    return KB_OK;
}

kb_status kb_cpu_sum(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return reduce(ex, a, &in[0], out, R_SUM);
}
kb_status kb_cpu_mean(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return reduce(ex, a, &in[0], out, R_MEAN);
}
kb_status kb_cpu_max(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return reduce(ex, a, &in[0], out, R_MAX);
}
kb_status kb_cpu_min(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return reduce(ex, a, &in[0], out, R_MIN);
}
kb_status kb_cpu_prod(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return reduce(ex, a, &in[0], out, R_PROD);
}
kb_status kb_cpu_logsumexp(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return reduce(ex, a, &in[0], out, R_LSE);
}
kb_status kb_cpu_any(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return reduce_bool(ex, a, &in[0], out, 0);
}
kb_status kb_cpu_all(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return reduce_bool(ex, a, &in[0], out, 1);
}

/* x viewed as (outer, n, inner) around attrs->axis. */
static void split_axis(const kb_buf *x, int axis, int64_t *outer, int64_t *n, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    *n = x->shape[axis];
    for (int i = 0; i < axis; ++i) *outer *= x->shape[i];
    for (int i = axis + 1; i < x->rank; ++i) *inner *= x->shape[i];
}

/* argmax / argmin (numpy's rule): the first index of the extremum; NaN counts as the extremum,
 * so the first NaN wins. */
static kb_status arg_reduce(const kb_exec *ex, const kb_attrs *a, const kb_buf *x, kb_buf *out, int is_min) {
    if (!is_f(x->dtype) && !is_i(x->dtype)) return kb_cpu_bad_dtype(ex, x->dtype);
    int64_t outer, n, inner;
    split_axis(x, a->axis, &outer, &n, &inner);
    int64_t *o = (int64_t *)out->data;
    for (int64_t g = 0; g < outer * inner; ++g) {
        int64_t base = (g / inner) * n * inner + g % inner, best = 0;
        if (is_f(x->dtype)) {
            double b = ld(x, base);
            for (int64_t k = 1; k < n && !isnan(b); ++k) {
                double v = ld(x, base + k * inner);
                if (isnan(v) || (is_min ? v < b : v > b)) {
                    b = v;
                    best = k;
                }
            }
        } else {
            int64_t b = ldi(x, base);
            for (int64_t k = 1; k < n; ++k) {
                int64_t v = ldi(x, base + k * inner);
                if (is_min ? v < b : v > b) {
                    b = v;
                    best = k;
                }
            }
        }
        o[g] = best;
    }
    return KB_OK;
}
kb_status kb_cpu_argmax(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return arg_reduce(ex, a, &in[0], out, 0);
}
kb_status kb_cpu_argmin(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return arg_reduce(ex, a, &in[0], out, 1);
}

/* Inclusive scans along attrs->axis, from the end when i64[0] is set; floats accumulate in
 * double and round each output once, integers wrap. */
static kb_status scan(const kb_exec *ex, const kb_attrs *a, const kb_buf *x, kb_buf *out, int prod) {
    if (!is_f(x->dtype) && !is_i(x->dtype)) return kb_cpu_bad_dtype(ex, x->dtype);
    int64_t outer, n, inner;
    split_axis(x, a->axis, &outer, &n, &inner);
    int rev = a->i64[0] != 0;
    for (int64_t g = 0; g < outer * inner; ++g) {
        int64_t base = (g / inner) * n * inner + g % inner;
        double acc = prod ? 1.0 : 0.0;
        uint64_t iacc = prod ? 1u : 0u;
        for (int64_t k = 0; k < n; ++k) {
            int64_t i = base + (rev ? n - 1 - k : k) * inner;
            if (is_f(x->dtype)) {
                acc = prod ? acc * ld(x, i) : acc + ld(x, i);
                st(out, i, acc);
            } else {
                iacc = prod ? iacc * (uint64_t)ldi(x, i) : iacc + (uint64_t)ldi(x, i);
                sti(out, i, iacc);
            }
        }
    }
    return KB_OK;
}
kb_status kb_cpu_cumsum(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return scan(ex, a, &in[0], out, 0);
}
kb_status kb_cpu_cumprod(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return scan(ex, a, &in[0], out, 1);
}

/* max_grad(x, y, dy): dy shared equally among the elements equal to the group's max. */
kb_status kb_cpu_max_grad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    const kb_buf *x = &in[0], *y = &in[1], *dy = &in[2];
    if (x->dtype != KB_FLOAT32 && x->dtype != KB_FLOAT64) return kb_cpu_bad_dtype(ex, x->dtype);
    int64_t ng = y->size;
    double *count = (double *)calloc((size_t)(ng ? ng : 1), sizeof(double));
    if (!count) return kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: out of host memory", ex->op);
    int64_t os[KB_MAX_RANK];
    reduce_strides(x, a->axes_mask, os);
    for (int64_t i = 0; i < x->size; ++i) {
        int64_t j = map_offset(i, x, os);
        if (ld(x, i) == ld(y, j)) count[j] += 1;
    }
    for (int64_t i = 0; i < x->size; ++i) {
        int64_t j = map_offset(i, x, os);
        st(out, i, ld(x, i) == ld(y, j) ? ld(dy, j) / count[j] : 0.0);
    }
    free(count);
    return KB_OK;
}

/* sum_like(g, ref): sum g over the axes where it was broadcast from ref's shape (out). */
kb_status kb_cpu_sum_like(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    const kb_buf *g = &in[0];
    if (g->dtype != KB_FLOAT32 && g->dtype != KB_FLOAT64) return kb_cpu_bad_dtype(ex, g->dtype);
    int64_t n = out->size;
    double *acc = (double *)calloc((size_t)(n ? n : 1), sizeof(double));
    if (!acc) return kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: out of host memory", ex->op);
    int64_t os[KB_MAX_RANK], s = 1;
    for (int i = g->rank - 1; i >= 0; --i) {
        int io = i - (g->rank - out->rank);
        int64_t d = io >= 0 ? out->shape[io] : 1;
        os[i] = (io < 0 || d == 1) ? 0 : s;
        s *= d;
    }
    if (n == g->size && out->dtype == g->dtype) { /* nothing was broadcast (shapes equal at run time): a copy */
        memcpy(out->data, g->data, (size_t)n * kb_dtype_size(g->dtype));
        free(acc);
        return KB_OK;
    }
    /* Rows of g's innermost axis: one div/mod pass per row, then the slot advances by that axis'
     * stride (0 when it is summed). Threads sum disjoint row ranges into their own slots, added
     * in thread order afterwards (deterministic for a given thread count). */
    int64_t inner = g->rank ? g->shape[g->rank - 1] : 1, step = g->rank ? os[g->rank - 1] : 0;
    int64_t rows = inner ? g->size / inner : 0;
    int nt = 1;
#ifdef _OPENMP
    if (g->size > KB_OMP_MIN && n <= 65536) nt = omp_get_max_threads();
#endif
    double *part = nt > 1 ? (double *)calloc((size_t)n * (size_t)(nt - 1), sizeof(double)) : NULL;
    if (nt > 1 && !part) nt = 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        double *mine = t ? part + (size_t)(t - 1) * (size_t)n : acc;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; ++r) {
            int64_t j = map_offset(r * inner, g, os), i = r * inner;
            if (g->dtype == KB_FLOAT32) {
                const float *x = (const float *)g->data + i;
                if (step == 0) {
                    double sum = 0;
                    for (int64_t k = 0; k < inner; ++k) sum += x[k];
                    mine[j] += sum;
                } else {
                    for (int64_t k = 0; k < inner; ++k) mine[j + k * step] += x[k];
                }
            } else {
                for (int64_t k = 0; k < inner; ++k) mine[j + k * step] += ld(g, i + k);
            }
        }
    }
    for (int t = 1; t < nt; ++t)
        for (int64_t j = 0; j < n; ++j) acc[j] += part[(size_t)(t - 1) * (size_t)n + (size_t)j];
    free(part);
    double scale = a->mean_scale && n ? (double)n / (double)g->size : 1.0;
    for (int64_t j = 0; j < n; ++j) st(out, j, acc[j] * scale);
    free(acc);
    return KB_OK;
}

/* broadcast_like(dy, ref): dy (ref reduced over axes_mask, or numpy-broadcastable) to ref's shape. */
kb_status kb_cpu_broadcast_like(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    const kb_buf *dy = &in[0];
    if (dy->dtype != KB_FLOAT32 && dy->dtype != KB_FLOAT64) return kb_cpu_bad_dtype(ex, dy->dtype);
    int64_t os[KB_MAX_RANK];
    if (a->axes_mask) reduce_strides(out, a->axes_mask, os);
    else kb_bcast_strides(dy, out, os);
    double scale = a->mean_scale && dy->size ? (double)dy->size / (double)out->size : 1.0;
    for (int64_t i = 0; i < out->size; ++i) st(out, i, ld(dy, map_offset(i, out, os)) * scale);
    return KB_OK;
}

/* softmax / log_softmax along attrs->axis: rows of n elements with stride `inner`. */
static kb_status softmax_impl(const kb_exec *ex, const kb_attrs *a, const kb_buf *x, kb_buf *out, int logsm) {
    if (x->dtype != KB_FLOAT32 && x->dtype != KB_FLOAT64) return kb_cpu_bad_dtype(ex, x->dtype);
    int64_t outer = 1, inner = 1, n = x->shape[a->axis];
    for (int i = 0; i < a->axis; ++i) outer *= x->shape[i];
    for (int i = a->axis + 1; i < x->rank; ++i) inner *= x->shape[i];
#pragma omp parallel for if (x->size > KB_OMP_MIN)
    for (int64_t r = 0; r < outer * inner; ++r) {
        int64_t base = (r / inner) * n * inner + r % inner;
        double m = -INFINITY, s = 0;
        for (int64_t k = 0; k < n; ++k) m = fmax(m, ld(x, base + k * inner));
        for (int64_t k = 0; k < n; ++k) s += exp(ld(x, base + k * inner) - m);
        for (int64_t k = 0; k < n; ++k) {
            double v = ld(x, base + k * inner) - m;
            st(out, base + k * inner, logsm ? v - log(s) : exp(v) / s);
        }
    }
    return KB_OK;
}
kb_status kb_cpu_softmax(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return softmax_impl(ex, a, &in[0], out, 0);
}
kb_status kb_cpu_log_softmax(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return softmax_impl(ex, a, &in[0], out, 1);
}
