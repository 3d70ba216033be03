/*
 * CPU reductions (accumulating in double, the parity reference): sum, mean, max over an axes
 * mask; max_grad, sum_like, broadcast_like; softmax and log_softmax along one axis.
 */
#include <math.h>
#include <stdlib.h>

#include "cpu/cpu_common.h"
#include "cpu/cpu_kernels.h"

static double ld(const kb_buf *b, int64_t i) {
    return b->dtype == KB_FLOAT32 ? (double)((const float *)b->data)[i] : ((const double *)b->data)[i];
}
static void st(kb_buf *b, int64_t i, double v) {
    if (b->dtype == KB_FLOAT32) ((float *)b->data)[i] = (float)v;
    else ((double *)b->data)[i] = v;
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

enum { R_SUM, R_MEAN, R_MAX };

static kb_status reduce(const kb_exec *ex, const kb_attrs *a, const kb_buf *x, kb_buf *out, int kind) {
    if (x->dtype != KB_FLOAT32 && x->dtype != KB_FLOAT64) return kb_cpu_bad_dtype(ex, x->dtype);
    int64_t n = out->size;
    double *acc = (double *)malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (!acc) return kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: out of host memory", ex->op);
    for (int64_t j = 0; j < n; ++j) acc[j] = kind == R_MAX ? -INFINITY : 0.0;
    int64_t os[KB_MAX_RANK];
    reduce_strides(x, a->axes_mask, os);
    /* rows of the innermost axis: one div/mod pass per row, then the output slot advances by
     * that axis' stride (0 when it is reduced) */
    int64_t inner = x->rank ? x->shape[x->rank - 1] : 1, step = x->rank ? os[x->rank - 1] : 0;
    for (int64_t r = 0; inner && r < x->size / inner; ++r) {
        int64_t j = map_offset(r * inner, x, os);
        for (int64_t k = 0; k < inner; ++k, j += step) {
            double v = ld(x, r * inner + k);
            if (kind == R_MAX) {
                if (isnan(v) || v > acc[j]) acc[j] = isnan(acc[j]) ? acc[j] : v;
            } else {
                acc[j] += v;
            }
        }
    }
    double count = n ? (double)x->size / (double)n : 0.0;
    if (x->size == 0) { /* empty groups: count of each group is the product of reduced dims */
        count = 1;
        for (int i = 0; i < x->rank; ++i)
            if (a->axes_mask & (1u << i)) count *= (double)x->shape[i];
    }
    for (int64_t j = 0; j < n; ++j) st(out, j, kind == R_MEAN ? acc[j] / count : acc[j]);
    free(acc);
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
    for (int64_t i = 0; i < g->size; ++i) acc[map_offset(i, g, os)] += ld(g, i);
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
