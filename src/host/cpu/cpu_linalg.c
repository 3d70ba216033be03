/* CPU kernels of the linalg family: dot / batch_dot (CBLAS, one GEMM per batch), gather,
 * scatter_add. */
#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "core/dtype.h"
#include "cpu/cpu_common.h"
#include "cpu/cpu_kernels.h"

/* The GEMM node (ops/linalg.c): per batch, out (M, N) = op(x) (M, K) . op(y) (K, N), row-major. */
static kb_status gemm(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out, int nb) {
    const kb_buf *x = &in[0], *y = &in[1];
    int c = (int)a->i64[0], ta = a->i64[1] != 0, tb = a->i64[2] != 0;
    int m = x->rank - nb - c;
    int64_t B = nb ? x->shape[0] : 1, M = 1, K = 1, N = 1;
    for (int i = 0; i < m; ++i) M *= x->shape[nb + (ta ? c : 0) + i];
    for (int i = 0; i < c; ++i) K *= x->shape[nb + (ta ? i : m + i)];
    for (int j = 0; j < y->rank - nb - c; ++j) N *= y->shape[nb + (tb ? 0 : c) + j];
    if (out->size == 0) return KB_OK;
    if (K == 0) {
        memset(out->data, 0, (size_t)out->size * kb_dtype_size(out->dtype));
        return KB_OK;
    }
    if (M > INT_MAX || N > INT_MAX || K > INT_MAX)
        return kb_set_error(KB_ERR_NOT_SUPPORTED, "%s: CBLAS takes int sizes; M=%lld K=%lld N=%lld",
                            ex->op ? ex->op : "dot", (long long)M, (long long)K, (long long)N);
    enum CBLAS_TRANSPOSE opa = ta ? CblasTrans : CblasNoTrans, opb = tb ? CblasTrans : CblasNoTrans;
    int lda = (int)(ta ? M : K), ldb = (int)(tb ? K : N);
    for (int64_t b = 0; b < B; ++b) {
        if (x->dtype == KB_FLOAT32)
            cblas_sgemm(CblasRowMajor, opa, opb, (int)M, (int)N, (int)K, 1.0f, (const float *)x->data + b * M * K, lda,
                        (const float *)y->data + b * K * N, ldb, 0.0f, (float *)out->data + b * M * N, (int)N);
        else if (x->dtype == KB_FLOAT64)
            cblas_dgemm(CblasRowMajor, opa, opb, (int)M, (int)N, (int)K, 1.0, (const double *)x->data + b * M * K, lda,
                        (const double *)y->data + b * K * N, ldb, 0.0, (double *)out->data + b * M * N, (int)N);
        else
            return kb_cpu_bad_dtype(ex, x->dtype);
    }
    return KB_OK;
}

kb_status kb_cpu_dot(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return gemm(ex, a, in, out, 0);
}

kb_status kb_cpu_batch_dot(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return gemm(ex, a, in, out, 1);
}

static int64_t index_at(const kb_buf *idx, int64_t i) {
    return idx->dtype == KB_INT32 ? (int64_t)((const int32_t *)idx->data)[i] : ((const int64_t *)idx->data)[i];
}

static kb_status out_of_range(const kb_exec *ex, int64_t i, int64_t v, int64_t rows) {
    return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: indices[%lld] = %lld is out of range [0, %lld)",
                        ex->op ? ex->op : "gather", (long long)i, (long long)v, (long long)rows);
}

/* out[i, ...] = reference[indices[i], ...]: whole rows moved by element size (any dtype). */
kb_status kb_cpu_gather(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)a; (void)n_in;
    const kb_buf *ref = &in[0], *idx = &in[1];
    int64_t rows = ref->shape[0], row = rows ? ref->size / rows : 0;
    size_t rb = (size_t)row * kb_dtype_size(ref->dtype);
    for (int64_t i = 0; i < idx->size; ++i) {
        int64_t v = index_at(idx, i);
        if (v < 0 || v >= rows) return out_of_range(ex, i, v, rows);
        memcpy((char *)out->data + (size_t)i * rb, (const char *)ref->data + (size_t)v * rb, rb);
    }
    return KB_OK;
}

/* out = zeros(reference.shape); out[indices[i], ...] += updates[i, ...], in index order. */
kb_status kb_cpu_scatter_add(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)a; (void)n_in;
    const kb_buf *upd = &in[0], *idx = &in[1];
    int64_t rows = out->shape[0], row = rows ? out->size / rows : 0;
    memset(out->data, 0, (size_t)out->size * kb_dtype_size(out->dtype));
    for (int64_t i = 0; i < idx->size; ++i) {
        int64_t v = index_at(idx, i);
        if (v < 0 || v >= rows) return out_of_range(ex, i, v, rows);
        if (upd->dtype == KB_FLOAT32) {
            const float *s = (const float *)upd->data + i * row;
            float *d = (float *)out->data + v * row;
            for (int64_t j = 0; j < row; ++j) d[j] += s[j];
        } else if (upd->dtype == KB_FLOAT64) {
            const double *s = (const double *)upd->data + i * row;
            double *d = (double *)out->data + v * row;
            for (int64_t j = 0; j < row; ++j) d[j] += s[j];
        } else {
            return kb_cpu_bad_dtype(ex, upd->dtype);
        }
    }
    return KB_OK;
}
