/*
 * CUDA kernels of the linalg family.
 *
 * dot(x, y): x (..., K), y (K, N) -> out (..., N), one GEMM with M = prod(x.shape[:-1]).
 *   cuBLAS is column-major, so the row-major C = A B is computed as C^T = B^T A^T: gemm(N, N,
 *   n=N, m=M, k=K, B=y (ld N), A=x (ld K), C=out (ld N)). Strict FP32 (CUBLAS_DEFAULT_MATH)
 *   unless the context opted in to TF32. Bytes: (M*K + K*N + M*N) * sizeof T, 2*M*N*K flops.
 */
#include "cuda/kernels/common.cuh"

namespace {

/* ---- dot ---------------------------------------------------------------------------------- */

static cublasStatus_t gemm(cublasHandle_t h, int64_t m, int64_t n, int64_t k, const float *a, const float *b,
                           float *c) {
    const float one = 1.0f, zero = 0.0f;
    return cublasSgemm_64(h, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &one, b, n, a, k, &zero, c, n);
}
static cublasStatus_t gemm(cublasHandle_t h, int64_t m, int64_t n, int64_t k, const double *a, const double *b,
                           double *c) {
    const double one = 1.0, zero = 0.0;
    return cublasDgemm_64(h, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &one, b, n, a, k, &zero, c, n);
}

template <typename T>
kb_status dot_t(const kb_exec *ex, const kb_buf *in, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    const kb_buf *x = &in[0], *y = &in[1];
    const char *op = ex->op ? ex->op : "dot";
    if (x->rank < 1 || y->rank != 2 || x->shape[x->rank - 1] != y->shape[0])
        return kb_set_error(KB_ERR_SHAPE, "%s: CUDA dot needs x (..., K) and y (K, N)", op);
    if (y->dtype != x->dtype || out->dtype != x->dtype)
        return kb_set_error(KB_ERR_DTYPE, "%s: operands must share one dtype", op);
    int64_t K = y->shape[0], N = y->shape[1];
    int64_t M = K > 0 ? x->size / K : 1;
    if (K == 0) {
        M = 1;
        for (int d = 0; d < x->rank - 1; d++) M *= x->shape[d];
    }
    if (out->size != M * N) return kb_set_error(KB_ERR_SHAPE, "%s: output size mismatch", op);
    if (M == 0 || N == 0) return KB_OK;
    KB_TRY(kb_cuda_bind(dev));
    if (K == 0) { /* empty sum: zeros */
        KB_CUDA_CHECK(cudaMemsetAsync(out->data, 0, (size_t)(M * N) * sizeof(T), dev->stream));
        return KB_OK;
    }
    cublasHandle_t h;
    KB_TRY(kb_cuda_cublas(dev, &h));
    KB_CUBLAS_CHECK(gemm(h, M, N, K, (const T *)x->data, (const T *)y->data, (T *)out->data));
    return KB_OK;
}

} /* namespace */

extern "C" kb_status kb_cuda_dot(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)a;
    (void)n_in;
    KB_DISPATCH_FLOAT(ex, in[0].dtype, dot_t, ex, in, out);
}

