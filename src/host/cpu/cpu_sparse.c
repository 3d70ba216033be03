/* CPU kernels of the sparse family (ops/sparse.c): COO scatter, gather and sparse x dense products. */
#include <stdio.h>
#include <string.h>

#include "core/dtype.h"
#include "cpu/cpu_common.h"
#include "cpu/cpu_kernels.h"

/* Flat offset of COO entry j in a C-order tensor of `shape`; -1 when outside it. */
static int64_t coo_offset(const int64_t *ix, int64_t j, int rank, const int64_t *shape) {
    int64_t off = 0;
    for (int d = 0; d < rank; ++d) {
        int64_t c = ix[j * rank + d];
        if (c < 0 || c >= shape[d]) return -1;
        off = off * shape[d] + c;
    }
    return off;
}

static kb_status out_of_range(const kb_exec *ex, const int64_t *ix, int64_t j, int rank) {
    char s[160];
    int n = 0;
    for (int d = 0; d < rank && n < (int)sizeof s - 24; ++d)
        n += snprintf(s + n, sizeof s - (size_t)n, "%s%lld", d ? ", " : "", (long long)ix[j * rank + d]);
    return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: sparse index %lld = (%s) is outside the dense shape", ex->op,
                        (long long)j, s);
}

#define SCATTER(T)                                                                      \
    for (int64_t j = 0; j < nnz; ++j) {                                                 \
        int64_t o = coo_offset(ix, j, out->rank, out->shape);                           \
        if (o < 0) return out_of_range(ex, ix, j, out->rank);                           \
        ((T *)out->data)[o] += ((const T *)in[1].data)[j];                              \
    }

/* Duplicates are summed. */
kb_status kb_cpu_sparse_to_dense(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)a; (void)n_in;
    const int64_t *ix = (const int64_t *)in[0].data;
    int64_t nnz = in[1].size;
    memset(out->data, 0, (size_t)out->size * kb_dtype_size(out->dtype));
    switch (out->dtype) {
    case KB_FLOAT32: SCATTER(float) break;
    case KB_FLOAT64: SCATTER(double) break;
    case KB_INT32: SCATTER(int32_t) break;
    case KB_INT64: SCATTER(int64_t) break;
    default: return kb_cpu_bad_dtype(ex, out->dtype);
    }
    return KB_OK;
}

kb_status kb_cpu_sparse_values_at(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)a; (void)n_in;
    const int64_t *ix = (const int64_t *)in[1].data;
    size_t es = kb_dtype_size(out->dtype);
    for (int64_t j = 0; j < out->size; ++j) {
        int64_t o = coo_offset(ix, j, in[0].rank, in[0].shape);
        if (o < 0) return out_of_range(ex, ix, j, in[0].rank);
        memcpy((char *)out->data + (size_t)j * es, (const char *)in[0].data + (size_t)o * es, es);
    }
    return KB_OK;
}

/* Entry j of A (M, K) is (r_j, c_j); with A^T (t = 1) it acts as (c_j, r_j). */
static int entry(const kb_exec *ex, const int64_t *ix, int64_t j, const kb_buf *carrier, int t, int64_t *o,
                 int64_t *r, kb_status *st) {
    int64_t rr = ix[2 * j], cc = ix[2 * j + 1];
    if (rr < 0 || rr >= carrier->shape[0] || cc < 0 || cc >= carrier->shape[1]) {
        *st = out_of_range(ex, ix, j, 2);
        return 0;
    }
    *o = t ? cc : rr;
    *r = t ? rr : cc;
    return 1;
}

#define SPARSE_DOT(T)                                                                   \
    do {                                                                                \
        const T *v = (const T *)in[1].data, *y = (const T *)in[3].data;                 \
        T *o = (T *)out->data;                                                          \
        for (int64_t j = 0; j < nnz; ++j) {                                             \
            int64_t orow, yrow;                                                         \
            if (!entry(ex, ix, j, &in[2], t, &orow, &yrow, &st)) return st;             \
            for (int64_t c = 0; c < n; ++c) o[orow * n + c] += v[j] * y[yrow * n + c];  \
        }                                                                               \
    } while (0)

kb_status kb_cpu_sparse_dot(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    const int64_t *ix = (const int64_t *)in[0].data;
    int64_t nnz = in[1].size, n = out->shape[1];
    int t = a->i64[0] != 0;
    kb_status st = KB_OK;
    memset(out->data, 0, (size_t)out->size * kb_dtype_size(out->dtype));
    if (out->dtype == KB_FLOAT32) SPARSE_DOT(float);
    else if (out->dtype == KB_FLOAT64) SPARSE_DOT(double);
    else return kb_cpu_bad_dtype(ex, out->dtype);
    return KB_OK;
}

/* g_j = sum_c dy[o_j, c] * y[r_j, c], accumulated in double. */
#define GRAD_VALUES(T)                                                                  \
    do {                                                                                \
        const T *dy = (const T *)in[1].data, *y = (const T *)in[2].data;                \
        T *g = (T *)out->data;                                                          \
        for (int64_t j = 0; j < nnz; ++j) {                                             \
            int64_t orow, yrow;                                                         \
            if (!entry(ex, ix, j, &in[3], t, &orow, &yrow, &st)) return st;             \
            double acc = 0;                                                             \
            for (int64_t c = 0; c < n; ++c) acc += (double)dy[orow * n + c] * y[yrow * n + c]; \
            g[j] = (T)acc;                                                              \
        }                                                                               \
    } while (0)

kb_status kb_cpu_sparse_dot_grad_values(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                        kb_buf *out) {
    (void)n_in;
    const int64_t *ix = (const int64_t *)in[0].data;
    int64_t nnz = out->size, n = in[1].shape[1];
    int t = a->i64[0] != 0;
    kb_status st = KB_OK;
    if (out->dtype == KB_FLOAT32) GRAD_VALUES(float);
    else if (out->dtype == KB_FLOAT64) GRAD_VALUES(double);
    else return kb_cpu_bad_dtype(ex, out->dtype);
    return KB_OK;
}
