/* CPU kernels of the linalg family: dot (CBLAS). */
#include <cblas.h>
#include <string.h>

#include "cpu/cpu_common.h"
#include "cpu/cpu_kernels.h"

/* out (M, N) = x (M, K) . y (K, N), row-major; M = prod(x.shape[:-1]). */
kb_status kb_cpu_dot(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)a; (void)n_in;
    const kb_buf *x = &in[0], *y = &in[1];
    int64_t K = y->shape[0], N = y->shape[1], M = K ? x->size / K : out->size / (N ? N : 1);
    if (M == 0 || N == 0) return KB_OK;
    if (K == 0) {
        memset(out->data, 0, (size_t)out->size * kb_dtype_size(out->dtype));
        return KB_OK;
    }
    if (x->dtype == KB_FLOAT32)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, (const float *)x->data,
                    (int)K, (const float *)y->data, (int)N, 0.0f, (float *)out->data, (int)N);
    else if (x->dtype == KB_FLOAT64)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0, (const double *)x->data,
                    (int)K, (const double *)y->data, (int)N, 0.0, (double *)out->data, (int)N);
    else
        return kb_cpu_bad_dtype(ex, x->dtype);
    return KB_OK;
}

