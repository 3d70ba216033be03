/*
 * Shape kernels. Data movement takes every dtype and is dispatched by element size, never by
 * dtype; tile_grad (a sum) handles float16/bfloat16/float32/float64 and sums in double, in the
 * order the CPU kernel does; one_hot writes float32.
 *
 * Copies (slice, slice_grad, concatenate, reverse, tile, repeat_elements, the general
 * permute_dimensions): one "copy map" out[bo + sum(idx_d * so_d)] = in[bi + sum(idx_d * si_d)]
 * over an iteration space in C order. The map is built in bytes (a trailing dim of the element
 * size), size-1 dims dropped and runs contiguous in both operands merged; then the widest word
 * (16, 8, 4, 2 or 1 bytes) that divides the innermost run, every stride, both bases and both
 * pointers' alignment is chosen, so a slice or concatenation of rows of 4 floats moves 16-byte
 * words, each warp reading and writing consecutive words (coalesced). Index math is 32-bit when
 * every offset fits. Bytes moved: 2 * out bytes (tile: in + out).
 * permute_dimensions: the permutation is coalesced first (dims contiguous in both orders merge;
 *   size-1 dims drop). Identity -> one memcpy. If the input's contiguous dim is not the output's
 *   innermost (a 2-D transpose, a batched transpose of the two innermost blocks, or any such
 *   permutation), a 32x32 shared-memory tile (33 columns: no bank conflicts) per block reads rows
 *   of the input and writes rows of the output, both coalesced; the other dims are the batch.
 *   Otherwise the copy map above (contiguous inner runs).
 */
#include "cuda/kernels/common.cuh"

namespace {

/* ---- copy maps ---------------------------------------------------------------------------- */

#define CM_MAX (3 * KB_MAX_RANK + 1) /* tile splits each axis in three; + the byte dim */

template <typename I>
struct cmap {
    int rank;
    I dims[CM_MAX], si[CM_MAX], so[CM_MAX];
    I bi, bo;
};

static void cm_push(cmap<int64_t> &m, int64_t dim, int64_t si, int64_t so) {
    if (dim == 1) return;
    int r = m.rank;
    if (r > 0 && m.si[r - 1] == si * dim && m.so[r - 1] == so * dim) {
        m.dims[r - 1] *= dim;
        m.si[r - 1] = si;
        m.so[r - 1] = so;
        return;
    }
    m.dims[r] = dim;
    m.si[r] = si;
    m.so[r] = so;
    m.rank = r + 1;
}

static cmap<int64_t> cm_empty() {
    cmap<int64_t> m;
    memset(&m, 0, sizeof m);
    return m;
}

template <typename W, typename I>
__global__ void k_copy(const W *__restrict__ in, W *__restrict__ out, cmap<I> m, I n) {
    /* the loop counter is 64-bit so that i + stride never wraps; the index math is in I */
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (int64_t)n;
         i += (int64_t)blockDim.x * gridDim.x) {
        I oi = m.bi, oo = m.bo, k = (I)i;
        for (int d = m.rank - 1; d > 0; d--) {
            I q = k / m.dims[d];
            I c = k - q * m.dims[d];
            oi += c * m.si[d];
            oo += c * m.so[d];
            k = q;
        }
        if (m.rank > 0) {
            oi += k * m.si[0];
            oo += k * m.so[0];
        }
        out[oo] = in[oi];
    }
}

template <typename W>
kb_status copy_words(struct kb_cuda_device *dev, const void *in, void *out, const cmap<int64_t> &m, int64_t n) {
    /* largest offset reached on either side: 32-bit index math when it and n fit */
    int64_t span_i = m.bi < 0 ? -m.bi : m.bi, span_o = m.bo;
    for (int d = 0; d < m.rank; d++) {
        span_i += (m.dims[d] - 1) * (m.si[d] < 0 ? -m.si[d] : m.si[d]);
        span_o += (m.dims[d] - 1) * (m.so[d] < 0 ? -m.so[d] : m.so[d]);
    }
    const unsigned blocks = kb_blocks(dev, n, KB_THREADS);
    if (n <= INT32_MAX && span_i <= INT32_MAX && span_o <= INT32_MAX) {
        cmap<int32_t> m32;
        memset(&m32, 0, sizeof m32);
        m32.rank = m.rank;
        m32.bi = (int32_t)m.bi;
        m32.bo = (int32_t)m.bo;
        for (int d = 0; d < m.rank; d++) {
            m32.dims[d] = (int32_t)m.dims[d];
            m32.si[d] = (int32_t)m.si[d];
            m32.so[d] = (int32_t)m.so[d];
        }
        k_copy<W, int32_t><<<blocks, KB_THREADS, 0, dev->stream>>>((const W *)in, (W *)out, m32, (int32_t)n);
    } else {
        k_copy<W, int64_t><<<blocks, KB_THREADS, 0, dev->stream>>>((const W *)in, (W *)out, m, n);
    }
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

/* Run an element copy map (strides and bases in elements of es bytes); nothing when it is empty. */
kb_status cm_launch(struct kb_cuda_device *dev, const void *in, void *out, const cmap<int64_t> &me, size_t es) {
    cmap<int64_t> m = cm_empty();
    const int64_t e = (int64_t)es;
    int64_t n = 1;
    for (int d = 0; d < me.rank; d++) {
        cm_push(m, me.dims[d], me.si[d] * e, me.so[d] * e);
        n *= me.dims[d];
    }
    if (n == 0) return KB_OK;
    cm_push(m, e, 1, 1);
    m.bi = me.bi * e;
    m.bo = me.bo * e;
    int w = 1;
    const int last = m.rank - 1;
    if (last >= 0 && m.si[last] == 1 && m.so[last] == 1) {
        for (w = 16; w > 1; w /= 2) {
            bool ok = m.dims[last] % w == 0 && m.bi % w == 0 && m.bo % w == 0 && (uintptr_t)in % w == 0 &&
                      (uintptr_t)out % w == 0;
            for (int d = 0; d < last && ok; d++) ok = m.si[d] % w == 0 && m.so[d] % w == 0;
            if (ok) break;
        }
    }
    if (w > 1) {
        m.dims[last] /= w;
        for (int d = 0; d < last; d++) {
            m.si[d] /= w;
            m.so[d] /= w;
        }
        m.bi /= w;
        m.bo /= w;
        if (m.dims[last] == 1 && last > 0) m.rank--; /* one word per element: no innermost loop */
    }
    int64_t words = 1;
    for (int d = 0; d < m.rank; d++) words *= m.dims[d];
    KB_TRY(kb_cuda_bind(dev));
    switch (w) {
    case 16: return copy_words<uint4>(dev, in, out, m, words);
    case 8: return copy_words<unsigned long long>(dev, in, out, m, words);
    case 4: return copy_words<uint32_t>(dev, in, out, m, words);
    case 2: return copy_words<uint16_t>(dev, in, out, m, words);
    default: return copy_words<uint8_t>(dev, in, out, m, words);
    }
}

static void contig_strides(const int64_t *shape, int rank, int64_t *st) { kb_contig_strides(shape, rank, st); }

/* ---- permute ------------------------------------------------------------------------------ */

/* Batched tile transpose. Within a batch: P = size of the output dim that is contiguous in the
 * input (input stride 1, output stride out_sp), C = the output's innermost dim (output stride 1,
 * input stride in_sc). batch: op 0 = input offset, op 1 = output offset of each batch. */
template <typename I>
struct tplan {
    kb_imap batch;
    I tp, tc, ntiles; /* tiles along P, along C, in all */
    I P, C, in_sc, out_sp;
};

#define KB_TILE 32
#define KB_TILE_ROWS 8

/* 32x8 threads move a 32x32 tile: threadIdx.x runs along the input's contiguous dim when reading
 * and along the output's when writing; the 33rd column keeps the column reads conflict-free. */
template <typename W, typename I>
__global__ void __launch_bounds__(KB_TILE * KB_TILE_ROWS) k_transpose(const W *__restrict__ in, W *__restrict__ out,
                                                                      tplan<I> t) {
    __shared__ W tile[KB_TILE][KB_TILE + 1];
    for (int64_t id64 = blockIdx.x; id64 < (int64_t)t.ntiles; id64 += gridDim.x) {
        const I id = (I)id64;
        I b = id / (t.tp * t.tc), r = id - b * (t.tp * t.tc);
        I p0 = (r / t.tc) * KB_TILE, c0 = (r % t.tc) * KB_TILE;
        int64_t ib64 = 0, ob64 = 0;
        if (t.batch.rank > 0) kb_imap_offsets2(t.batch, (int64_t)b, ib64, ob64);
        const W *src = in + ib64;
        W *dst = out + ob64;
        I p = p0 + threadIdx.x;
#pragma unroll
        for (int k0 = 0; k0 < KB_TILE; k0 += KB_TILE_ROWS) {
            const int k = k0 + threadIdx.y;
            I c = c0 + k;
            if (p < t.P && c < t.C) tile[k][threadIdx.x] = src[p + c * t.in_sc];
        }
        __syncthreads();
        I c = c0 + threadIdx.x;
#pragma unroll
        for (int k0 = 0; k0 < KB_TILE; k0 += KB_TILE_ROWS) {
            const int k = k0 + threadIdx.y;
            I pp = p0 + k;
            if (pp < t.P && c < t.C) dst[pp * t.out_sp + c] = tile[threadIdx.x][k];
        }
        __syncthreads();
    }
}

template <typename W, typename I>
kb_status transpose_launch(struct kb_cuda_device *dev, const W *src, W *dst, const kb_imap &batch, int64_t nbatch,
                           int64_t P, int64_t C, int64_t in_sc, int64_t out_sp) {
    tplan<I> t;
    t.batch = batch;
    t.tp = (I)((P + KB_TILE - 1) / KB_TILE);
    t.tc = (I)((C + KB_TILE - 1) / KB_TILE);
    t.ntiles = (I)(nbatch * t.tp * t.tc);
    t.P = (I)P;
    t.C = (I)C;
    t.in_sc = (I)in_sc;
    t.out_sp = (I)out_sp;
    /* one tile per block: no grid-stride loop unless the tiles exceed the grid limit */
    int64_t blocks = nbatch * t.tp * t.tc;
    if (blocks > INT32_MAX) blocks = INT32_MAX;
    k_transpose<W, I><<<(unsigned)blocks, dim3(KB_TILE, KB_TILE_ROWS), 0, dev->stream>>>(src, dst, t);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

template <typename W>
kb_status permute_w(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    const kb_buf *x = &in[0];
    const int rank = x->rank;
    const int64_t n = out->size;
    int64_t cs[KB_MAX_RANK], st[KB_MAX_RANK], dims[KB_MAX_RANK];
    contig_strides(x->shape, rank, cs);
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
    const int last = m.rank - 1;
    int pdim = -1;
    for (int d = 0; d < m.rank; d++)
        if (m.strides[0][d] == 1) pdim = d;
    int64_t ocs[KB_MAX_RANK];
    kb_contig_strides(m.dims, m.rank, ocs);
    if (m.strides[0][last] != 1 && pdim >= 0) {
        /* tile transpose of (pdim, last), batched over the other coalesced dims */
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
        const int64_t *bs[2] = {bin, bout};
        kb_imap batch = kb_imap_make(bd, nb, bs, 2);
        const int64_t P = m.dims[pdim], C = m.dims[last];
        /* 32-bit tile math when every in-batch offset and the tile count fit */
        const int64_t tiles = nbatch * ((P + KB_TILE - 1) / KB_TILE) * ((C + KB_TILE - 1) / KB_TILE);
        const int64_t span = (P + KB_TILE) + (C + KB_TILE) * m.strides[0][last] + (P + KB_TILE) * ocs[pdim] + C;
        if (tiles <= INT32_MAX && span <= INT32_MAX)
            return transpose_launch<W, int32_t>(dev, src, dst, batch, nbatch, P, C, m.strides[0][last], ocs[pdim]);
        return transpose_launch<W, int64_t>(dev, src, dst, batch, nbatch, P, C, m.strides[0][last], ocs[pdim]);
    }
    cmap<int64_t> cm = cm_empty();
    for (int d = 0; d < m.rank; d++) cm_push(cm, m.dims[d], m.strides[0][d], ocs[d]);
    return cm_launch(dev, src, dst, cm, sizeof(W));
}

/* ---- tile_grad ----------------------------------------------------------------------------- */

/* out (x's shape) [j]: dy at base(j) = sum_d idx_d(j) * xstep_d, plus each repeat offset (rd, rs). */
struct tgplan {
    int r, nr;
    int64_t xd[KB_MAX_RANK], xstep[KB_MAX_RANK];
    int64_t rd[2 * KB_MAX_RANK], rs[2 * KB_MAX_RANK];
    int64_t R;
};

template <typename T>
__global__ void k_tile_grad(const T *__restrict__ dy, T *__restrict__ out, tgplan p, int64_t n) {
    KB_GRID_LOOP(j, n) {
        int64_t base = 0, k = j;
        for (int d = p.r - 1; d >= 0; d--) {
            int64_t q = k / p.xd[d];
            base += (k - q * p.xd[d]) * p.xstep[d];
            k = q;
        }
        double acc = 0.0;
        for (int64_t t = 0; t < p.R; t++) {
            int64_t off = base, q = t;
            for (int e = p.nr - 1; e >= 0; e--) {
                int64_t qq = q / p.rd[e];
                off += (q - qq * p.rd[e]) * p.rs[e];
                q = qq;
            }
            acc += kb_dev_load(dy[off]);
        }
        out[j] = kb_dev_store<T>(acc);
    }
}

template <typename T>
kb_status tile_grad_t(struct kb_cuda_device *dev, const kb_buf *dy, kb_buf *out, const tgplan &p) {
    KB_TRY(kb_cuda_bind(dev));
    k_tile_grad<T><<<kb_blocks(dev, out->size, KB_THREADS), KB_THREADS, 0, dev->stream>>>(
        (const T *)dy->data, (T *)out->data, p, out->size);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

/* ---- one_hot ------------------------------------------------------------------------------- */

template <typename I>
__global__ void k_one_hot(const I *__restrict__ idx, float *__restrict__ out, int64_t n, int64_t C) {
    KB_GRID_LOOP(o, n) {
        int64_t i = o / C;
        out[o] = (int64_t)idx[i] == o - i * C ? 1.0f : 0.0f;
    }
}

/* Start of a slice on axis d of a tensor of shape `dims` (see the slice attrs in ops/shape.c). */
static int64_t slice_start(const kb_attrs *a, int r, const int64_t *dims, int d) {
    return a->i64[2 * r + d] ? dims[d] - a->i64[d] : a->i64[d];
}

/* tile / repeat_elements: output axis d viewed as (outer_d, x.shape[d], inner_d), x read with
 * stride 0 along the repeats. */
kb_status tile_copy(const kb_exec *ex, const kb_attrs *a, const kb_buf *x, kb_buf *out) {
    if (out->size == 0) return KB_OK;
    int r = x->rank;
    int64_t xs[KB_MAX_RANK], os[KB_MAX_RANK];
    contig_strides(x->shape, r, xs);
    contig_strides(out->shape, r, os);
    cmap<int64_t> m = cm_empty();
    for (int d = 0; d < r; d++) {
        int64_t o = a->i64[d], i = a->i64[r + d], D = x->shape[d];
        cm_push(m, o, 0, D * i * os[d]);
        cm_push(m, D, xs[d], i * os[d]);
        cm_push(m, i, 0, os[d]);
    }
    return cm_launch(kb_cuda_dev(ex), x->data, out->data, m, kb_dtype_size(out->dtype));
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

extern "C" kb_status kb_cuda_slice(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    if (out->size == 0) return KB_OK;
    const kb_buf *x = &in[0];
    int64_t xs[KB_MAX_RANK], os[KB_MAX_RANK];
    contig_strides(x->shape, x->rank, xs);
    contig_strides(out->shape, out->rank, os);
    cmap<int64_t> m = cm_empty();
    for (int d = 0; d < x->rank; d++) {
        m.bi += slice_start(a, x->rank, x->shape, d) * xs[d];
        m.dims[d] = out->shape[d];
        m.si[d] = xs[d];
        m.so[d] = os[d];
    }
    m.rank = x->rank;
    return cm_launch(kb_cuda_dev(ex), x->data, out->data, m, kb_dtype_size(out->dtype));
}

extern "C" kb_status kb_cuda_slice_grad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                        kb_buf *out) {
    (void)n_in;
    if (out->size == 0) return KB_OK;
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    const kb_buf *dy = &in[0];
    const size_t es = kb_dtype_size(out->dtype);
    KB_TRY(kb_cuda_bind(dev));
    KB_CUDA_CHECK(cudaMemsetAsync(out->data, 0, (size_t)out->size * es, dev->stream));
    int64_t ds[KB_MAX_RANK], os[KB_MAX_RANK];
    contig_strides(dy->shape, dy->rank, ds);
    contig_strides(out->shape, out->rank, os);
    cmap<int64_t> m = cm_empty();
    for (int d = 0; d < out->rank; d++) {
        m.bo += slice_start(a, out->rank, out->shape, d) * os[d];
        m.dims[d] = dy->shape[d];
        m.si[d] = ds[d];
        m.so[d] = os[d];
    }
    m.rank = out->rank;
    return cm_launch(dev, dy->data, out->data, m, es);
}

extern "C" kb_status kb_cuda_concatenate(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                         kb_buf *out) {
    (void)n_in;
    if (out->size == 0) return KB_OK;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < a->axis; d++) outer *= out->shape[d];
    for (int d = a->axis + 1; d < out->rank; d++) inner *= out->shape[d];
    const int64_t w0 = in[0].shape[a->axis] * inner, w1 = in[1].shape[a->axis] * inner;
    for (int k = 0; k < 2; k++) {
        /* input k: rows of wk elements, placed at column k ? w0 : 0 of the output's rows of w0 + w1 */
        cmap<int64_t> m = cm_empty();
        m.rank = 2;
        m.dims[0] = outer;
        m.dims[1] = k ? w1 : w0;
        m.si[0] = m.dims[1];
        m.si[1] = 1;
        m.so[0] = w0 + w1;
        m.so[1] = 1;
        m.bo = k ? w0 : 0;
        KB_TRY(cm_launch(kb_cuda_dev(ex), in[k].data, out->data, m, kb_dtype_size(out->dtype)));
    }
    return KB_OK;
}

extern "C" kb_status kb_cuda_reverse(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    if (out->size == 0) return KB_OK;
    int64_t cs[KB_MAX_RANK];
    contig_strides(out->shape, out->rank, cs);
    cmap<int64_t> m = cm_empty();
    for (int d = 0; d < out->rank; d++) {
        const bool rev = (a->axes_mask >> d) & 1u;
        if (rev) m.bi += (out->shape[d] - 1) * cs[d];
        m.dims[d] = out->shape[d];
        m.si[d] = rev ? -cs[d] : cs[d];
        m.so[d] = cs[d];
    }
    m.rank = out->rank;
    return cm_launch(kb_cuda_dev(ex), in[0].data, out->data, m, kb_dtype_size(out->dtype));
}

extern "C" kb_status kb_cuda_tile(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return tile_copy(ex, a, &in[0], out);
}

extern "C" kb_status kb_cuda_repeat_elements(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                             kb_buf *out) {
    (void)n_in;
    return tile_copy(ex, a, &in[0], out);
}

extern "C" kb_status kb_cuda_tile_grad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                       kb_buf *out) {
    (void)n_in;
    if (out->size == 0) return KB_OK;
    const kb_buf *dy = &in[0];
    tgplan p;
    memset(&p, 0, sizeof p);
    const int r = out->rank;
    int64_t ds[KB_MAX_RANK];
    contig_strides(dy->shape, r, ds);
    p.r = r;
    p.R = 1;
    for (int d = 0; d < r; d++) {
        const int64_t o = a->i64[d], i = a->i64[r + d];
        p.xd[d] = out->shape[d];
        p.xstep[d] = i * ds[d];
        if (o != 1) {
            p.rd[p.nr] = o;
            p.rs[p.nr++] = out->shape[d] * i * ds[d];
        }
        if (i != 1) {
            p.rd[p.nr] = i;
            p.rs[p.nr++] = ds[d];
        }
        p.R *= o * i;
    }
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    switch (dy->dtype) {
    case KB_FLOAT16: return tile_grad_t<__half>(dev, dy, out, p);
    case KB_BFLOAT16: return tile_grad_t<__nv_bfloat16>(dev, dy, out, p);
    case KB_FLOAT32: return tile_grad_t<float>(dev, dy, out, p);
    case KB_FLOAT64: return tile_grad_t<double>(dev, dy, out, p);
    default: return kb_cuda_dtype_error(ex, dy->dtype, "float16, bfloat16, float32 or float64");
    }
}

extern "C" kb_status kb_cuda_one_hot(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    if (out->size == 0) return KB_OK;
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    KB_TRY(kb_cuda_bind(dev));
    const unsigned blocks = kb_blocks(dev, out->size, KB_THREADS);
    if (in[0].dtype == KB_INT32)
        k_one_hot<int32_t><<<blocks, KB_THREADS, 0, dev->stream>>>((const int32_t *)in[0].data, (float *)out->data,
                                                                   out->size, a->i64[0]);
    else if (in[0].dtype == KB_INT64)
        k_one_hot<int64_t><<<blocks, KB_THREADS, 0, dev->stream>>>((const int64_t *)in[0].data, (float *)out->data,
                                                                   out->size, a->i64[0]);
    else
        return kb_cuda_dtype_error(ex, in[0].dtype, "int32 or int64");
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}
