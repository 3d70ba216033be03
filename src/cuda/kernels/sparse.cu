/*
 * CUDA kernels of the sparse family (ops/sparse.c): COO scatter (sparse_to_dense), gather
 * (sparse_values_at), sparse x dense product (sparse_dot) and its values gradient.
 *
 * Our own kernels rather than cuSPARSE: cusparseSpMM wants a workspace sized per call
 * (cusparseSpMM_bufferSize), which a launcher may not allocate (stream capture, no allocation
 * inside launchers), and COO with atomics is what cuSPARSE's COO algorithm does too. Entries
 * outside the dense shape are skipped (the CPU kernel reports them; a device-side report would
 * need a sync per call). Duplicates are summed (atomicAdd), so float sums of duplicates may
 * differ from the CPU's order in the last bits.
 *
 * Bytes: sparse_to_dense writes the dense output once (memset) + nnz scattered elements;
 * sparse_dot reads nnz rows of y and atomically adds nnz rows of out (N columns each).
 */
#include "cuda/kernels/common.cuh"

namespace {

struct shape_arg { /* a dense shape passed by value */
    int64_t d[KB_MAX_RANK];
};

__device__ inline int64_t coo_offset(const int64_t *ix, int64_t j, int rank, const shape_arg &shape) {
    int64_t off = 0;
    for (int d = 0; d < rank; ++d) {
        int64_t c = ix[j * rank + d];
        if (c < 0 || c >= shape.d[d]) return -1;
        off = off * shape.d[d] + c;
    }
    return off;
}

__device__ inline void atomic_add(float *p, float v) { atomicAdd(p, v); }
__device__ inline void atomic_add(double *p, double v) { atomicAdd(p, v); }
__device__ inline void atomic_add(int32_t *p, int32_t v) { atomicAdd((int *)p, (int)v); }
__device__ inline void atomic_add(int64_t *p, int64_t v) {
    atomicAdd((unsigned long long *)p, (unsigned long long)v); /* two's complement: same bits */
}

template <typename T>
__global__ void k_scatter(T *out, const int64_t *ix, const T *v, int64_t nnz, int rank, shape_arg shape) {
    KB_GRID_LOOP(j, nnz) {
        int64_t o = coo_offset(ix, j, rank, shape);
        if (o >= 0) atomic_add(out + o, v[j]);
    }
}

template <typename T>
__global__ void k_gather(T *out, const int64_t *ix, const T *dense, int64_t nnz, int rank, shape_arg shape) {
    KB_GRID_LOOP(j, nnz) {
        int64_t o = coo_offset(ix, j, rank, shape);
        out[j] = o >= 0 ? dense[o] : (T)0;
    }
}

/* Entry j as (out row, y row); false when outside the (M, K) matrix. */
__device__ inline bool entry(const int64_t *ix, int64_t j, int64_t m, int64_t k, int t, int64_t *o, int64_t *r) {
    int64_t rr = ix[2 * j], cc = ix[2 * j + 1];
    if (rr < 0 || rr >= m || cc < 0 || cc >= k) return false;
    *o = t ? cc : rr;
    *r = t ? rr : cc;
    return true;
}

/* One thread per (entry, column): columns are contiguous, so y reads and out atomics coalesce. */
template <typename T>
__global__ void k_sparse_dot(T *out, const int64_t *ix, const T *v, const T *y, int64_t nnz, int64_t n, int64_t m,
                             int64_t k, int t) {
    KB_GRID_LOOP(i, nnz * n) {
        int64_t j = i / n, c = i - j * n, o, r;
        if (entry(ix, j, m, k, t, &o, &r)) atomic_add(out + o * n + c, v[j] * y[r * n + c]);
    }
}

/* One warp per entry: g_j = <dy[o_j, :], y[r_j, :]> in double (as the CPU). */
template <typename T>
__global__ void k_grad_values(T *g, const int64_t *ix, const T *dy, const T *y, int64_t nnz, int64_t n, int64_t m,
                              int64_t k, int t) {
    const int lane = threadIdx.x & 31;
    const int64_t warps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t j = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; j < nnz; j += warps) {
        int64_t o = 0, r = 0;
        bool ok = entry(ix, j, m, k, t, &o, &r);
        double acc = 0;
        if (ok)
            for (int64_t c = lane; c < n; c += 32) acc += (double)dy[o * n + c] * (double)y[r * n + c];
        for (int off = 16; off; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
        if (lane == 0) g[j] = (T)acc;
    }
}

shape_arg shape_of(const kb_buf &b) {
    shape_arg s;
    memset(&s, 0, sizeof s);
    for (int d = 0; d < b.rank; ++d) s.d[d] = b.shape[d];
    return s;
}

template <typename T>
kb_status to_dense_t(const kb_exec *ex, const kb_buf *in, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    KB_CUDA_CHECK(cudaMemsetAsync(out->data, 0, (size_t)out->size * sizeof(T), dev->stream));
    int64_t nnz = in[1].size;
    if (nnz == 0) return KB_OK;
    k_scatter<T><<<kb_blocks(dev, nnz, KB_THREADS), KB_THREADS, 0, dev->stream>>>(
        (T *)out->data, (const int64_t *)in[0].data, (const T *)in[1].data, nnz, out->rank, shape_of(*out));
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

template <typename T>
kb_status values_at_t(const kb_exec *ex, const kb_buf *in, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    int64_t nnz = out->size;
    k_gather<T><<<kb_blocks(dev, nnz, KB_THREADS), KB_THREADS, 0, dev->stream>>>(
        (T *)out->data, (const int64_t *)in[1].data, (const T *)in[0].data, nnz, in[0].rank, shape_of(in[0]));
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

template <typename T>
kb_status sparse_dot_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    KB_CUDA_CHECK(cudaMemsetAsync(out->data, 0, (size_t)out->size * sizeof(T), dev->stream));
    int64_t nnz = in[1].size, n = out->shape[1];
    if (nnz == 0) return KB_OK;
    k_sparse_dot<T><<<kb_blocks(dev, nnz * n, KB_THREADS), KB_THREADS, 0, dev->stream>>>(
        (T *)out->data, (const int64_t *)in[0].data, (const T *)in[1].data, (const T *)in[3].data, nnz, n,
        in[2].shape[0], in[2].shape[1], a->i64[0] != 0);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

template <typename T>
kb_status grad_values_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    int64_t nnz = out->size;
    k_grad_values<T><<<kb_blocks(dev, nnz * 32, KB_THREADS), KB_THREADS, 0, dev->stream>>>(
        (T *)out->data, (const int64_t *)in[0].data, (const T *)in[1].data, (const T *)in[2].data, nnz,
        in[1].shape[1], in[3].shape[0], in[3].shape[1], a->i64[0] != 0);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

} /* namespace */

extern "C" kb_status kb_cuda_sparse_to_dense(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                             kb_buf *out) {
    (void)a; (void)n_in;
    KB_TRY(kb_cuda_bind(kb_cuda_dev(ex)));
    switch (out->dtype) {
    case KB_FLOAT32: return to_dense_t<float>(ex, in, out);
    case KB_FLOAT64: return to_dense_t<double>(ex, in, out);
    case KB_INT32: return to_dense_t<int32_t>(ex, in, out);
    case KB_INT64: return to_dense_t<int64_t>(ex, in, out);
    default: return kb_cuda_dtype_error(ex, out->dtype, "float32, float64, int32 or int64");
    }
}

extern "C" kb_status kb_cuda_sparse_values_at(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                              kb_buf *out) {
    (void)a; (void)n_in;
    KB_TRY(kb_cuda_bind(kb_cuda_dev(ex)));
    switch (out->dtype) {
    case KB_FLOAT32: return values_at_t<float>(ex, in, out);
    case KB_FLOAT64: return values_at_t<double>(ex, in, out);
    case KB_INT32: return values_at_t<int32_t>(ex, in, out);
    case KB_INT64: return values_at_t<int64_t>(ex, in, out);
    default: return kb_cuda_dtype_error(ex, out->dtype, "float32, float64, int32 or int64");
    }
}

extern "C" kb_status kb_cuda_sparse_dot(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                        kb_buf *out) {
    (void)n_in;
    KB_TRY(kb_cuda_bind(kb_cuda_dev(ex)));
    KB_DISPATCH_FLOAT(ex, out->dtype, sparse_dot_t, ex, a, in, out);
}

extern "C" kb_status kb_cuda_sparse_dot_grad_values(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                                    kb_buf *out) {
    (void)n_in;
    KB_TRY(kb_cuda_bind(kb_cuda_dev(ex)));
    KB_DISPATCH_FLOAT(ex, out->dtype, grad_values_t, ex, a, in, out);
}
