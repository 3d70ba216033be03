/*
 * CUDA kernels of the linalg family.
 *
 * dot / batch_dot (the GEMM node of ops/linalg.c): per batch, out (M, N) = op(x) (M, K) . op(y)
 *   (K, N), row-major, op = transpose when the node's ta / tb is set. cuBLAS is column-major, so
 *   C = A B is computed as C^T = B^T A^T: gemm(op_y, op_x, m=N, n=M, k=K, y, x, out (ld N)); a
 *   row-major (K, N) y is the column-major N x K matrix it needs (ld N), a row-major (N, K) y is
 *   its transpose (ld K), and likewise for x. batch_dot with B > 1 is one strided-batched call
 *   (strides K*N, M*K, M*N), so no operand is ever copied. float32 runs strict FP32
 *   (CUBLAS_DEFAULT_MATH) unless the context opted in to TF32 (kb_set_allow_tf32 sets the
 *   handle's math mode, which Sgemm and SgemmStridedBatched both honour). 2*B*M*N*K flops.
 * gather: out[i, j] = reference[indices[i], j], rows moved as 1/2/4/8-byte words. An index out
 *   of range writes zeros for that row: the CPU kernel reports KB_ERR_INVALID_ARGUMENT, but a
 *   device-side check could only be reported after a synchronisation, which kernels must not do.
 * scatter_add: zeros, then atomicAdd of each updates row into out[indices[i]] (float32/float64,
 *   float16/bfloat16 through their native atomics); out-of-range indices are skipped.
 */
#include "cuda/kernels/common.cuh"

namespace {

/* ---- dot / batch_dot ------------------------------------------------------------------------ */

struct gemm_dims {
    int64_t B, M, K, N;
    cublasOperation_t op_y, op_x;
    int64_t ld_y, ld_x;
};

static gemm_dims dims_of(const kb_attrs *a, const kb_buf *x, const kb_buf *y, int nb) {
    gemm_dims d;
    int c = (int)a->i64[0], ta = a->i64[1] != 0, tb = a->i64[2] != 0;
    int m = x->rank - nb - c;
    d.B = nb ? x->shape[0] : 1;
    d.M = d.K = d.N = 1;
    for (int i = 0; i < m; ++i) d.M *= x->shape[nb + (ta ? c : 0) + i];
    for (int i = 0; i < c; ++i) d.K *= x->shape[nb + (ta ? i : m + i)];
    for (int j = 0; j < y->rank - nb - c; ++j) d.N *= y->shape[nb + (tb ? 0 : c) + j];
    d.op_y = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    d.ld_y = tb ? d.K : d.N;
    d.op_x = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    d.ld_x = ta ? d.M : d.K;
    return d;
}

static cublasStatus_t gemm(cublasHandle_t h, const gemm_dims &d, const float *x, const float *y, float *c) {
    const float one = 1.0f, zero = 0.0f;
    if (d.B == 1)
        return cublasSgemm_64(h, d.op_y, d.op_x, d.N, d.M, d.K, &one, y, d.ld_y, x, d.ld_x, &zero, c, d.N);
    return cublasSgemmStridedBatched_64(h, d.op_y, d.op_x, d.N, d.M, d.K, &one, y, d.ld_y, d.K * d.N, x, d.ld_x,
                                        d.M * d.K, &zero, c, d.N, d.M * d.N, d.B);
}
static cublasStatus_t gemm(cublasHandle_t h, const gemm_dims &d, const double *x, const double *y, double *c) {
    const double one = 1.0, zero = 0.0;
    if (d.B == 1)
        return cublasDgemm_64(h, d.op_y, d.op_x, d.N, d.M, d.K, &one, y, d.ld_y, x, d.ld_x, &zero, c, d.N);
    return cublasDgemmStridedBatched_64(h, d.op_y, d.op_x, d.N, d.M, d.K, &one, y, d.ld_y, d.K * d.N, x, d.ld_x,
                                        d.M * d.K, &zero, c, d.N, d.M * d.N, d.B);
}

template <typename T>
kb_status gemm_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out, int nb) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    const kb_buf *x = &in[0], *y = &in[1];
    const char *op = ex->op ? ex->op : "dot";
    if (y->dtype != x->dtype || out->dtype != x->dtype)
        return kb_set_error(KB_ERR_DTYPE, "%s: operands must share one dtype", op);
    gemm_dims d = dims_of(a, x, y, nb);
    if (out->size != d.B * d.M * d.N) return kb_set_error(KB_ERR_SHAPE, "%s: output size mismatch", op);
    if (out->size == 0) return KB_OK;
    KB_TRY(kb_cuda_bind(dev));
    if (d.K == 0) { /* empty sum: zeros */
        KB_CUDA_CHECK(cudaMemsetAsync(out->data, 0, (size_t)out->size * sizeof(T), dev->stream));
        return KB_OK;
    }
    cublasHandle_t h;
    KB_TRY(kb_cuda_cublas(dev, &h));
    KB_CUBLAS_CHECK(gemm(h, d, (const T *)x->data, (const T *)y->data, (T *)out->data));
    return KB_OK;
}

/* ---- gather / scatter_add ------------------------------------------------------------------- */

/* One thread per output word: word i is column j of output row r; row = words per row. */
template <typename W, typename I>
__global__ void k_gather(const W *__restrict__ ref, const I *__restrict__ idx, W *__restrict__ out, int64_t n,
                         int64_t row, int64_t rows) {
    KB_GRID_LOOP(i, n) {
        int64_t r = i / row, j = i - r * row;
        int64_t v = (int64_t)idx[r];
        out[i] = v >= 0 && v < rows ? ref[v * row + j] : (W)0;
    }
}

template <typename W>
kb_status gather_w(const kb_exec *ex, const kb_buf *in, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    const kb_buf *ref = &in[0], *idx = &in[1];
    int64_t rows = ref->shape[0];
    int64_t row = idx->size ? out->size / idx->size : 0; /* elements per row */
    int64_t words = row * (int64_t)kb_dtype_size(ref->dtype) / (int64_t)sizeof(W);
    int64_t n = idx->size * words;
    if (n == 0) return KB_OK;
    KB_TRY(kb_cuda_bind(dev));
    unsigned g = kb_blocks(dev, n, KB_THREADS);
    if (idx->dtype == KB_INT32)
        k_gather<W, int32_t><<<g, KB_THREADS, 0, dev->stream>>>((const W *)ref->data, (const int32_t *)idx->data,
                                                                 (W *)out->data, n, words, rows);
    else
        k_gather<W, int64_t><<<g, KB_THREADS, 0, dev->stream>>>((const W *)ref->data, (const int64_t *)idx->data,
                                                                 (W *)out->data, n, words, rows);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

template <typename T>
__device__ __forceinline__ void atomic_add(T *p, T v) {
    atomicAdd(p, v);
}

template <typename T, typename I>
__global__ void k_scatter_add(const T *__restrict__ upd, const I *__restrict__ idx, T *__restrict__ out, int64_t n,
                              int64_t row, int64_t rows) {
    KB_GRID_LOOP(i, n) {
        int64_t r = i / row, j = i - r * row;
        int64_t v = (int64_t)idx[r];
        if (v >= 0 && v < rows) atomic_add(out + v * row + j, upd[i]);
    }
}

template <typename T>
kb_status scatter_add_t(const kb_exec *ex, const kb_buf *in, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    const kb_buf *upd = &in[0], *idx = &in[1];
    int64_t rows = out->shape[0];
    int64_t row = rows ? out->size / rows : 0;
    if (out->size == 0) return KB_OK;
    KB_TRY(kb_cuda_bind(dev));
    KB_CUDA_CHECK(cudaMemsetAsync(out->data, 0, (size_t)out->size * sizeof(T), dev->stream));
    int64_t n = upd->size;
    if (n == 0) return KB_OK;
    unsigned g = kb_blocks(dev, n, KB_THREADS);
    if (idx->dtype == KB_INT32)
        k_scatter_add<T, int32_t><<<g, KB_THREADS, 0, dev->stream>>>((const T *)upd->data, (const int32_t *)idx->data,
                                                                      (T *)out->data, n, row, rows);
    else
        k_scatter_add<T, int64_t><<<g, KB_THREADS, 0, dev->stream>>>((const T *)upd->data, (const int64_t *)idx->data,
                                                                      (T *)out->data, n, row, rows);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

} /* namespace */

extern "C" kb_status kb_cuda_dot(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    KB_DISPATCH_FLOAT(ex, in[0].dtype, gemm_t, ex, a, in, out, 0);
}

extern "C" kb_status kb_cuda_batch_dot(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                       kb_buf *out) {
    (void)n_in;
    KB_DISPATCH_FLOAT(ex, in[0].dtype, gemm_t, ex, a, in, out, 1);
}

extern "C" kb_status kb_cuda_gather(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)a;
    (void)n_in;
    if (in[1].dtype != KB_INT32 && in[1].dtype != KB_INT64)
        return kb_cuda_dtype_error(ex, in[1].dtype, "indices must be int32 or int64");
    /* Move rows in the widest word that divides a row's bytes and both base addresses. */
    size_t rb = (size_t)(in[1].size ? out->size / in[1].size : 0) * kb_dtype_size(in[0].dtype);
    size_t al = rb | (size_t)(uintptr_t)in[0].data | (size_t)(uintptr_t)out->data;
    if (al % 8 == 0) return gather_w<uint64_t>(ex, in, out);
    if (al % 4 == 0) return gather_w<uint32_t>(ex, in, out);
    if (al % 2 == 0) return gather_w<uint16_t>(ex, in, out);
    return gather_w<uint8_t>(ex, in, out);
}

extern "C" kb_status kb_cuda_scatter_add(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                         kb_buf *out) {
    (void)a;
    (void)n_in;
    if (in[1].dtype != KB_INT32 && in[1].dtype != KB_INT64)
        return kb_cuda_dtype_error(ex, in[1].dtype, "indices must be int32 or int64");
    switch (in[0].dtype) {
    case KB_FLOAT16: return scatter_add_t<__half>(ex, in, out);
    case KB_BFLOAT16: return scatter_add_t<__nv_bfloat16>(ex, in, out);
    case KB_FLOAT32: return scatter_add_t<float>(ex, in, out);
    case KB_FLOAT64: return scatter_add_t<double>(ex, in, out);
    default: return kb_cuda_dtype_error(ex, in[0].dtype, "float16, bfloat16, float32 or float64");
    }
}
