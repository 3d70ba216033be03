/*
 * Linear algebra and shape kernels: dot (cuBLAS GEMM, float32/float64) and permute_dimensions
 * (any dtype, moved as 1/2/4/8-byte words).
 *
 * dot(x, y): x (..., K), y (K, N) -> out (..., N), one GEMM with M = prod(x.shape[:-1]).
 *   cuBLAS is column-major, so the row-major C = A B is computed as C^T = B^T A^T: gemm(N, N,
 *   n=N, m=M, k=K, B=y (ld N), A=x (ld K), C=out (ld N)). Strict FP32 (CUBLAS_DEFAULT_MATH)
 *   unless the context opted in to TF32. Bytes: (M*K + K*N + M*N) * sizeof T, 2*M*N*K flops.
 * permute_dimensions(x): out.shape[i] = x.shape[perm[i]]. The permutation is coalesced first
 *   (dims contiguous in both orders merge; size-1 dims drop). Identity -> one memcpy. If the
 *   output's innermost dim is not the input's innermost, a 32x32 shared-memory tile transpose
 *   (batched over the remaining dims) keeps reads and writes coalesced; otherwise a strided
 *   gather with contiguous inner runs. Bytes: 2 * n * sizeof T.
 */
#include "cuda/kernels/common.cuh"

namespace {

/* ---- permute ------------------------------------------------------------------------------ */

/* out[i] = in[map(i)] */
template <typename W>
__global__ void k_gather(const W *__restrict__ in, W *__restrict__ out, int64_t n, kb_imap m) {
    KB_GRID_LOOP(i, n) out[i] = in[kb_imap_offset<0>(m, i)];
}

/* Batched tile transpose. Within a batch: P = size of the output dim that is contiguous in the
 * input (input stride 1, output stride out_sp), C = the output's innermost dim (output stride 1,
 * input stride in_sc). batch: op 0 = input offset, op 1 = output offset of each batch. */
struct tplan {
    kb_imap batch;
    int64_t nbatch, P, C, in_sc, out_sp;
};

#define KB_TILE 32
#define KB_TILE_ROWS 8

template <typename W>
__global__ void k_transpose(const W *__restrict__ in, W *__restrict__ out, tplan t) {
    __shared__ W tile[KB_TILE][KB_TILE + 1];
    const int64_t tp = (t.P + KB_TILE - 1) / KB_TILE, tc = (t.C + KB_TILE - 1) / KB_TILE;
    const int64_t ntiles = t.nbatch * tp * tc;
    for (int64_t id = blockIdx.x; id < ntiles; id += gridDim.x) {
        int64_t b = id / (tp * tc), r = id - b * (tp * tc);
        int64_t p0 = (r / tc) * KB_TILE, c0 = (r % tc) * KB_TILE;
        int64_t ib, ob;
        kb_imap_offsets2(t.batch, b, ib, ob);
        /* read: threadIdx.x runs along p (contiguous in the input) */
        int64_t p = p0 + threadIdx.x;
        for (int k = threadIdx.y; k < KB_TILE; k += KB_TILE_ROWS) {
            int64_t c = c0 + k;
            if (p < t.P && c < t.C) tile[k][threadIdx.x] = in[ib + p + c * t.in_sc];
        }
        __syncthreads();
        /* write: threadIdx.x runs along c (contiguous in the output) */
        int64_t c = c0 + threadIdx.x;
        for (int k = threadIdx.y; k < KB_TILE; k += KB_TILE_ROWS) {
            int64_t pp = p0 + k;
            if (pp < t.P && c < t.C) out[ob + pp * t.out_sp + c] = tile[threadIdx.x][k];
        }
        __syncthreads();
    }
}

template <typename W>
kb_status permute_w(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    const kb_buf *x = &in[0];
    const int rank = x->rank;
    const int64_t n = out->size;
    int64_t cs[KB_MAX_RANK], st[KB_MAX_RANK], dims[KB_MAX_RANK];
    kb_contig_strides(x->shape, rank, cs);
    for (int i = 0; i < rank; i++) {
        int p = a->perm[i];
        if (p < 0 || p >= rank || out->shape[i] != x->shape[p])
            return kb_set_error(KB_ERR_AXIS, "%s: invalid permutation", ex->op ? ex->op : "permute_dimensions");
        st[i] = cs[p];
        dims[i] = out->shape[i];
    }
    KB_TRY(kb_cuda_bind(dev));
    const int64_t *sp[1] = {st};
    kb_imap m = kb_imap_make(dims, rank, sp, 1);
    const W *src = (const W *)x->data;
    W *dst = (W *)out->data;
    if (m.rank == 0 || (m.rank == 1 && m.strides[0][0] == 1)) {
        KB_CUDA_CHECK(cudaMemcpyAsync(dst, src, (size_t)n * sizeof(W), cudaMemcpyDeviceToDevice, dev->stream));
        return KB_OK;
    }
    int last = m.rank - 1;
    int pdim = -1;
    for (int d = 0; d < m.rank; d++)
        if (m.strides[0][d] == 1) pdim = d;
    if (m.strides[0][last] != 1 && pdim >= 0) {
        /* tile transpose of (pdim, last), batched over the other coalesced dims */
        int64_t ocs[KB_MAX_RANK];
        kb_contig_strides(m.dims, m.rank, ocs);
        int64_t bd[KB_MAX_RANK], bin[KB_MAX_RANK], bout[KB_MAX_RANK];
        int nb = 0;
        int64_t nbatch = 1;
        for (int d = 0; d < m.rank; d++) {
            if (d == pdim || d == last) continue;
            bd[nb] = m.dims[d];
            bin[nb] = m.strides[0][d];
            bout[nb] = ocs[d];
            nbatch *= m.dims[d];
            nb++;
        }
        tplan t;
        const int64_t *bs[2] = {bin, bout};
        t.batch = kb_imap_make(bd, nb, bs, 2);
        t.nbatch = nbatch;
        t.P = m.dims[pdim];
        t.C = m.dims[last];
        t.in_sc = m.strides[0][last];
        t.out_sp = ocs[pdim];
        int64_t ntiles = nbatch * ((t.P + KB_TILE - 1) / KB_TILE) * ((t.C + KB_TILE - 1) / KB_TILE);
        k_transpose<W><<<kb_blocks(dev, ntiles, 1), dim3(KB_TILE, KB_TILE_ROWS), 0, dev->stream>>>(src, dst, t);
    } else {
        k_gather<W><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>(src, dst, n, m);
    }
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

} /* namespace */

extern "C" kb_status kb_cuda_permute_dimensions(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                                kb_buf *out) {
    (void)n_in;
    if (out->size == 0) return KB_OK;
    switch (kb_dtype_size(in[0].dtype)) {
    case 1: return permute_w<uint8_t>(ex, a, in, out);
    case 2: return permute_w<uint16_t>(ex, a, in, out);
    case 4: return permute_w<uint32_t>(ex, a, in, out);
    case 8: return permute_w<uint64_t>(ex, a, in, out);
    default: return kb_cuda_dtype_error(ex, in[0].dtype, "invalid dtype");
    }
}
