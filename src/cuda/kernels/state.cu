/*
 * Tensor-utility kernels: fill_like (any of the 9 dtypes), shape and size (int32 results).
 *
 * fill_like(x): out has x's shape and dtype a->dtype, every element a->value converted to it
 *   (bool: value != 0; float16/bfloat16 round to nearest even). All-zero bit patterns use
 *   cudaMemsetAsync. Bytes: n * sizeof(dtype) written.
 * shape(x): int32 vector of length rank(x) with x's dims; size(x): int32 scalar. The values are
 *   passed to a one-thread kernel by value (capture-safe: no host buffer whose lifetime the
 *   copy would outlive, no host sync).
 */
#include "cuda/kernels/common.cuh"

namespace {

template <typename T>
__global__ void k_fill(T *__restrict__ y, int64_t n, double v) {
    const T t = kb_dev_store<T>(v); /* as dtype.c kb_store_f64 */
    KB_GRID_LOOP(i, n) y[i] = t;
}

struct int_vec {
    int n;
    int32_t v[KB_MAX_RANK];
};

__global__ void k_write_ints(int32_t *__restrict__ y, int_vec v) {
    int i = threadIdx.x;
    if (i < v.n) y[i] = v.v[i];
}

template <typename T>
kb_status fill_t(const kb_exec *ex, kb_buf *out, double v) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    int64_t n = out->size;
    k_fill<T><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>((T *)out->data, n, v);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

static kb_status write_ints(const kb_exec *ex, kb_buf *out, const int_vec &v) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    if (out->dtype != KB_INT32)
        return kb_set_error(KB_ERR_DTYPE, "%s: output must be int32", ex->op ? ex->op : "shape");
    if (out->size != v.n)
        return kb_set_error(KB_ERR_SHAPE, "%s: output has %lld elements, expected %d", ex->op ? ex->op : "shape",
                            (long long)out->size, v.n);
    if (v.n == 0) return KB_OK;
    KB_TRY(kb_cuda_bind(dev));
    k_write_ints<<<1, 32, 0, dev->stream>>>((int32_t *)out->data, v);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

} /* namespace */

extern "C" kb_status kb_cuda_fill_like(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                       kb_buf *out) {
    (void)in;
    (void)n_in;
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    int64_t n = out->size;
    if (n == 0) return KB_OK;
    size_t es = kb_dtype_size(out->dtype);
    if (!es) return kb_cuda_dtype_error(ex, out->dtype, "invalid dtype");
    KB_TRY(kb_cuda_bind(dev));
    double v = a->value;
    /* value 0 (not -0.0, whose float bits are not zero) is all-zero bytes in every dtype.
     * A NaN compares unequal and goes to the kernel. */
    if (v == 0.0 && !signbit(v)) {
        KB_CUDA_CHECK(cudaMemsetAsync(out->data, 0, (size_t)n * es, dev->stream));
        return KB_OK;
    }
    KB_DISPATCH_ALL(ex, out->dtype, fill_t, ex, out, v);
}

extern "C" kb_status kb_cuda_shape(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)a;
    (void)n_in;
    int_vec v;
    memset(&v, 0, sizeof v);
    v.n = in[0].rank;
    for (int d = 0; d < in[0].rank && d < KB_MAX_RANK; d++) v.v[d] = (int32_t)in[0].shape[d];
    return write_ints(ex, out, v);
}

extern "C" kb_status kb_cuda_size(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)a;
    (void)n_in;
    int_vec v;
    memset(&v, 0, sizeof v);
    v.n = 1;
    v.v[0] = (int32_t)in[0].size;
    return write_ints(ex, out, v);
}
