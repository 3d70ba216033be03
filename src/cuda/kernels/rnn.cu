/* CUDA kernels of the rnn family (fused recurrent layers (cuDNN LSTM / GRU / simple RNN over a sequence, CPU twin)).
 * Math, packed layouts and attributes: ops/rnn.c. float32 / float64.
 *
 * cuDNN's v8 RNN API (cudnn_adv.h, not deprecated in cuDNN 9): one unidirectional layer,
 * CUDNN_RNN_ALGO_STANDARD, CUDNN_RNN_DOUBLE_BIAS, CUDNN_LINEAR_INPUT, x / y as
 * CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED (x's (B, T, I) order, every sequence of length T,
 * padded IO enabled as the unpacked layouts require), h / c as packed (1, B, U) tensors, a
 * dropout descriptor with probability 0 and no states. Absent initial states are NULL hx / cx
 * (cuDNN reads zeros).
 *
 * Weights. cuDNN's weight space holds, per linear layer, a (U, in) row-major matrix (W applied as
 * W . x) and a U bias; cudnnGetRNNWeightParams gives their addresses. Linear layer ids: LSTM
 * 0..3 = input i, f, c, o and 4..7 = recurrent i, f, c, o (Keras' order); GRU 0..2 = input r, z,
 * h and 3..5 recurrent r, z, h (Keras' z, r, h: blocks 0 and 1 swap); simple RNN 0 input, 1
 * recurrent. Keras gate block k of kernel (I, G*U) is columns [k*U, (k+1)*U): its cuDNN matrix is
 * the transpose, W[u][i] = kernel[i][k*U + u]; recurrent_kernel likewise; the input bias of
 * block k is bias[k*U .. k*U+U), the recurrent bias bias[G*U + k*U ..]. One kernel gathers the
 * three Keras arrays into a scratch weight space (and scatters the weight gradient back, where
 * every Keras element is written exactly once). The byte offsets of the 4G pieces are read once
 * per plan (first launch) and checked against the expected (1, U, in) / (1, U, 1) shapes.
 *
 * Directions (pack layouts: ops/rnn.c). cudnn_rnn runs the training forward with cuDNN's reserve
 * space in its pack's reserve blocks; cudnn_rnn_backward_data copies that reserve into its own
 * pack's reserve blocks and runs cudnnRNNBackwardData_v8 on it there (an input is never written);
 * cudnn_rnn_backward_weights copies the reserve as BackwardData left it into scratch (cuDNN's
 * pointer is not const), zeroes a gradient weight space, runs cudnnRNNBackwardWeights_v8
 * (CUDNN_WGRAD_MODE_ADD) and scatters it into the (I + U + 2, G*U) pack, which is [dkernel |
 * drecurrent_kernel | dbias] in Keras layout. One training forward, one backward-data, one
 * backward-weights per step, plus copies of the reserve. Fallback when the reserve does not fit the
 * 2G blocks (reserve_fits, the same decision in all three): the forward runs the inference mode;
 * backward-data recomputes the training forward into scratch and keeps dpack's block 0 in its
 * reserve blocks; backward-weights recomputes the forward and backward-data from that copy.
 * KB_RNN_RECOMPUTE=1 in the environment forces the fallback (read per launch; for its tests).
 *
 * Math type. float32 is strict by default: CUDNN_FMA_MATH (no TF32 tensor ops); with
 * kb_set_allow_tf32 on, CUDNN_DEFAULT_MATH. float64: CUDNN_DEFAULT_MATH.
 *
 * Plans. Data / tensor descriptors, sizes (weight space, workspace of each mode, reserve) and the
 * weight offsets are made once per (GPU ordinal, dtype, mode, math, B, T, I, U) and kept for the
 * life of the process in a table guarded by a mutex, as kernels/conv.cu does. The RNN descriptor
 * and its dropout descriptor are bound to a cuDNN handle, which dies with its context: they are
 * made per launch with the calling context's handle (host work of a few microseconds) and never
 * cached, so no context runs cuDNN on another context's freed handle.
 * Buffer sizes are checked against ops/rnn_layout.h and every pointer cuDNN gets against 16-byte
 * alignment (KB_ERR_INTERNAL, never a device fault); a CUDA error a cuDNN call leaves pending is
 * reported right after that call. devSeqLengths (B copies of T) are filled by a
 * kernel into scratch each launch; all buffers come from kb_cuda_scratch_alloc. No host sync.
 */
#include <stdlib.h>

#include <mutex>
#include <vector>

#include "cuda/kernels/common.cuh"
#include "ops/rnn_layout.h"

namespace {

enum { MODE_LSTM = 0, MODE_GRU = 1, MODE_TANH = 2, MODE_RELU = 3 }; /* attrs.i64[0], ops/rnn.c */
enum { FWD = 0, BWD_DATA = 1, BWD_WEIGHTS = 2 };

#ifdef KB_WITH_CUDNN

int gates_of(int mode) { return mode == MODE_LSTM ? 4 : mode == MODE_GRU ? 3 : 1; }

/* cuDNN linear layer id of Keras gate block k (input part; the recurrent part adds G). */
int cudnn_block(int mode, int k) {
    if (mode == MODE_GRU && k < 2) return 1 - k;
    return k;
}

__global__ void k_fill_i32(int32_t *p, int64_t n, int32_t v) {
    KB_GRID_LOOP(i, n) p[i] = v;
}

/* The forward pack (B, kH + T, U): row 0 = hy, row 1 = cy (kH = 2), rows kH.. = y (B, T, U). */
template <typename T>
__global__ void k_pack_fwd(T *out, const T *y, const T *hy, const T *cy, int64_t T_, int64_t U, int64_t kH, int64_t n) {
    KB_GRID_LOOP(i, n) {
        int64_t u = i % U, r = (i / U) % (kH + T_), b = i / (U * (kH + T_));
        out[i] = r == 0 ? hy[b * U + u] : r < kH ? cy[b * U + u] : y[(b * T_ + r - kH) * U + u];
    }
}

/* The inverse: the gradient pack (B, kH + T, U) into dy (B, T, U), dhy and dcy (B, U). */
template <typename T>
__global__ void k_unpack_dy(const T *pack, T *dy, T *dhy, T *dcy, int64_t T_, int64_t U, int64_t kH, int64_t n) {
    KB_GRID_LOOP(i, n) {
        int64_t u = i % U, r = (i / U) % (kH + T_), b = i / (U * (kH + T_));
        if (r == 0) dhy[b * U + u] = pack[i];
        else if (r < kH) dcy[b * U + u] = pack[i];
        else dy[(b * T_ + r - kH) * U + u] = pack[i];
    }
}

/* Rows kH.. of a pack's block 0 (B, kH + T, U) as y (B, T, U). */
template <typename T>
__global__ void k_take_rows(const T *pack, T *y, int64_t T_, int64_t U, int64_t kH, int64_t n) {
    KB_GRID_LOOP(i, n) {
        int64_t u = i % U, t = (i / U) % T_, b = i / (U * T_);
        y[i] = pack[(b * (kH + T_) + kH + t) * U + u];
    }
}

/* The backward-data pack (B, kH + T, W): row 0 [:U] = dhx, row 1 [:U] = dcx, rows kH.. [:I] = dx,
 * zeros elsewhere (dhx / dcx NULL: zeros). */
template <typename T>
__global__ void k_pack_bwd(T *out, const T *dx, const T *dhx, const T *dcx, int64_t T_, int64_t I, int64_t U,
                           int64_t W, int64_t kH, int64_t n) {
    KB_GRID_LOOP(i, n) {
        int64_t c = i % W, r = (i / W) % (kH + T_), b = i / (W * (kH + T_));
        T v = kb_dev_store<T>(0.0);
        if (r == 0) {
            if (dhx && c < U) v = dhx[b * U + c];
        } else if (r < kH) {
            if (dcx && c < U) v = dcx[b * U + c];
        } else if (c < I) {
            v = dx[(b * T_ + r - kH) * I + c];
        }
        out[i] = v;
    }
}

/* One piece of the weight space: rows x cols elements at element offset dst (row-major), read
 * from / written to Keras array src (0 kernel, 1 recurrent_kernel, 2 bias) at
 * [i * ld + col0 + u] for element (u, i). */
struct wseg {
    int64_t dst, start, rows, cols, ld, col0;
    int src;
};
struct wsegs {
    int n;
    int64_t total;
    wseg s[16];
};

/* to_ws = 1: weight space <- Keras arrays; 0: Keras arrays <- weight space. */
template <typename T>
__global__ void k_weights(T *ws, T *k0, T *k1, T *k2, wsegs m, int to_ws) {
    KB_GRID_LOOP(e, m.total) {
        int s = 0;
        while (s + 1 < m.n && e >= m.s[s + 1].start) ++s;
        const wseg &g = m.s[s];
        int64_t j = e - g.start, u = j / g.cols, i = j - u * g.cols;
        T *src = g.src == 0 ? k0 : g.src == 1 ? k1 : k2;
        int64_t ki = i * g.ld + g.col0 + u;
        if (to_ws) ws[g.dst + j] = src[ki];
        else src[ki] = ws[g.dst + j];
    }
}

template <typename T> struct rnn_type;
template <> struct rnn_type<float> {
    static constexpr cudnnDataType_t data = CUDNN_DATA_FLOAT;
};
template <> struct rnn_type<double> {
    static constexpr cudnnDataType_t data = CUDNN_DATA_DOUBLE;
};

/* The plan key: every field set (the struct is zeroed first, so memcmp is exact). */
struct rnn_key {
    int ordinal, dtype, mode, strict;
    int64_t B, T, I, U;
};

/* A plan holds no handle-bound state: the data / tensor descriptors, the sizes and the weight
 * offsets, which depend on the key alone. (It used to hold the RNN descriptor and its dropout
 * descriptor, set with the handle of the context that made the plan; a handle dies with its
 * context, and a later context of the same shapes then ran cuDNN on a descriptor bound to a freed
 * handle: the likely cause of the fault at the parity run's first training-mode call, the first
 * use of a plan made by an earlier, freed context.) */
struct rnn_plan {
    rnn_key key;
    cudnnRNNDataDescriptor_t xd, yd;
    cudnnTensorDescriptor_t hd, md, bd; /* md / bd: for cudnnGetRNNWeightParams (under the mutex) */
    size_t wsize, work[2], reserve;     /* work[0] inference, work[1] training */
    int have_offsets;
    wsegs segs; /* element offsets of the 4G pieces in the weight space */
};

std::mutex g_rnn_mu;
std::vector<rnn_plan *> g_rnn_plans; /* never freed: lives as long as the process */

/* The RNN descriptor and its (probability 0) dropout descriptor, made per launch with the calling
 * context's handle, as frameworks do, and destroyed when the launch returns: host objects that
 * the enqueued work does not keep. */
struct rnn_descs {
    cudnnRNNDescriptor_t rnn = nullptr;
    cudnnDropoutDescriptor_t drop = nullptr;
    rnn_descs() = default;
    ~rnn_descs() {
        if (rnn) cudnnDestroyRNNDescriptor(rnn);
        if (drop) cudnnDestroyDropoutDescriptor(drop);
    }
    rnn_descs(const rnn_descs &) = delete;
    rnn_descs &operator=(const rnn_descs &) = delete;
};

kb_status make_descs(cudnnHandle_t h, const rnn_key &k, cudnnDataType_t data, rnn_descs *d) {
    cudnnRNNMode_t cell = k.mode == MODE_LSTM ? CUDNN_LSTM
                          : k.mode == MODE_GRU ? CUDNN_GRU
                          : k.mode == MODE_TANH ? CUDNN_RNN_TANH
                                                : CUDNN_RNN_RELU;
    cudnnMathType_t math = data == CUDNN_DATA_FLOAT && k.strict ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
    KB_CUDNN_CHECK(cudnnCreateDropoutDescriptor(&d->drop));
    KB_CUDNN_CHECK(cudnnSetDropoutDescriptor(d->drop, h, 0.0f, nullptr, 0, 0));
    KB_CUDNN_CHECK(cudnnCreateRNNDescriptor(&d->rnn));
    KB_CUDNN_CHECK(cudnnSetRNNDescriptor_v8(d->rnn, CUDNN_RNN_ALGO_STANDARD, cell, CUDNN_RNN_DOUBLE_BIAS,
                                            CUDNN_UNIDIRECTIONAL, CUDNN_LINEAR_INPUT, data, data, math, (int32_t)k.I,
                                            (int32_t)k.U, (int32_t)k.U, 1, d->drop, CUDNN_RNN_PADDED_IO_ENABLED));
    return KB_OK;
}

kb_status make_plan(cudnnHandle_t h, const rnn_key &k, cudnnDataType_t data, rnn_plan **out) {
    rnn_plan *p = new rnn_plan();
    p->key = k;
    rnn_descs d;
    KB_TRY(make_descs(h, k, data, &d));
    std::vector<int> lens((size_t)k.B, (int)k.T);
    KB_CUDNN_CHECK(cudnnCreateRNNDataDescriptor(&p->xd));
    KB_CUDNN_CHECK(cudnnCreateRNNDataDescriptor(&p->yd));
    KB_CUDNN_CHECK(cudnnSetRNNDataDescriptor(p->xd, data, CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED, (int)k.T,
                                             (int)k.B, (int)k.I, lens.data(), nullptr));
    KB_CUDNN_CHECK(cudnnSetRNNDataDescriptor(p->yd, data, CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED, (int)k.T,
                                             (int)k.B, (int)k.U, lens.data(), nullptr));
    int hdims[3] = {1, (int)k.B, (int)k.U}, hstr[3] = {(int)(k.B * k.U), (int)k.U, 1};
    KB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->hd));
    KB_CUDNN_CHECK(cudnnSetTensorNdDescriptor(p->hd, data, 3, hdims, hstr));
    KB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->md));
    KB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->bd));
    KB_CUDNN_CHECK(cudnnGetRNNWeightSpaceSize(h, d.rnn, &p->wsize));
    size_t unused = 0;
    KB_CUDNN_CHECK(cudnnGetRNNTempSpaceSizes(h, d.rnn, CUDNN_FWD_MODE_INFERENCE, p->xd, &p->work[0], &unused));
    KB_CUDNN_CHECK(cudnnGetRNNTempSpaceSizes(h, d.rnn, CUDNN_FWD_MODE_TRAINING, p->xd, &p->work[1], &p->reserve));
    *out = p;
    return KB_OK;
}

kb_status layout_error(const char *op, const char *what, int id) {
    return kb_set_error(KB_ERR_INTERNAL, "%s: cuDNN's RNN weight space has an unexpected %s for linear layer %d", op,
                        what, id);
}

/* Shape check of one weight piece: dims (1, rows, cols), packed row-major. */
bool piece_is(cudnnTensorDescriptor_t d, int64_t rows, int64_t cols) {
    cudnnDataType_t dt;
    int nb = 0, dims[4] = {0, 0, 0, 0}, str[4] = {0, 0, 0, 0};
    if (cudnnGetTensorNdDescriptor(d, 4, &dt, &nb, dims, str) != CUDNN_STATUS_SUCCESS) return false;
    return nb == 3 && dims[0] == 1 && dims[1] == rows && dims[2] == cols && (cols == 1 || str[2] == 1) &&
           (rows == 1 || str[1] == cols);
}

/* The element offsets of the weight pieces, read once per plan from a weight space at `base`. */
kb_status ensure_offsets(cudnnHandle_t h, cudnnRNNDescriptor_t rnn, rnn_plan *p, void *base, size_t esize,
                         const char *op) {
    std::lock_guard<std::mutex> lock(g_rnn_mu);
    if (p->have_offsets) return KB_OK;
    const rnn_key &k = p->key;
    int G = gates_of(k.mode);
    int64_t GU = G * k.U;
    wsegs m;
    memset(&m, 0, sizeof m);
    int64_t start = 0;
    for (int rec = 0; rec < 2; ++rec)
        for (int blk = 0; blk < G; ++blk) {
            int id = rec * G + cudnn_block(k.mode, blk);
            void *ma = nullptr, *ba = nullptr;
            KB_CUDNN_CHECK(cudnnGetRNNWeightParams(h, rnn, 0, p->wsize, base, id, p->md, &ma, p->bd, &ba));
            int64_t in = rec ? k.U : k.I;
            if (!ma || !piece_is(p->md, k.U, in)) return layout_error(op, "matrix", id);
            if (!ba || !piece_is(p->bd, k.U, 1)) return layout_error(op, "bias", id);
            size_t mo = (size_t)((char *)ma - (char *)base), bo = (size_t)((char *)ba - (char *)base);
            if (mo % esize || bo % esize || mo + (size_t)(k.U * in) * esize > p->wsize || bo + (size_t)k.U * esize > p->wsize)
                return layout_error(op, "offset", id);
            wseg &w = m.s[m.n++];
            w.dst = (int64_t)(mo / esize), w.start = start, w.rows = k.U, w.cols = in, w.ld = GU, w.col0 = blk * k.U;
            w.src = rec;
            start += k.U * in;
            wseg &b = m.s[m.n++];
            b.dst = (int64_t)(bo / esize), b.start = start, b.rows = k.U, b.cols = 1, b.ld = 0;
            b.col0 = rec * GU + blk * k.U, b.src = 2;
            start += k.U;
        }
    /* k_weights finds a piece by scanning increasing starts */
    m.total = start;
    p->segs = m;
    p->have_offsets = 1;
    return KB_OK;
}

kb_status get_plan(cudnnHandle_t h, const rnn_key &k, cudnnDataType_t data, rnn_plan **out) {
    std::lock_guard<std::mutex> lock(g_rnn_mu);
    for (rnn_plan *q : g_rnn_plans)
        if (memcmp(&q->key, &k, sizeof k) == 0) {
            *out = q;
            return KB_OK;
        }
    rnn_plan *p = nullptr;
    kb_status s = make_plan(h, k, data, &p);
    if (s != KB_OK) return s; /* a half-made plan is dropped (its descriptors leak once) */
    g_rnn_plans.push_back(p);
    *out = p;
    return KB_OK;
}

/* The reserve region of a pack: blocks 1.. (2G blocks of `blk` elements), used from the first
 * multiple of 256 bytes past block 0 (relative to the pack, so the place does not depend on the
 * buffer's address; pool buffers are 256-byte aligned). cuDNN's reserve goes there when it fits
 * both packs (ops/rnn_layout.h): a decision made from the plan's sizes alone, so the three kernels
 * agree without reading device memory. */
bool reserve_fits(const rnn_plan *p, const kb_rnn_layout &L, size_t es) {
    const char *force = getenv("KB_RNN_RECOMPUTE"); /* "1": always the fallback (tests of that path) */
    if (force && strcmp(force, "1") == 0) return false;
    return kb_rnn_reserve_fits(&L, es, p->reserve) != 0;
}
void *reserve_at(const void *pack, int64_t blk, size_t es) { return (char *)pack + kb_rnn_reserve_offset(blk, es); }

/* Guards that turn a layout slip into a clear error instead of a fault on the device. */
kb_status size_is(const char *op, const char *what, int64_t have, int64_t want) {
    if (have == want) return KB_OK;
    return kb_set_error(KB_ERR_INTERNAL, "%s: %s has %lld elements, the packed recurrent layout needs %lld", op, what,
                        (long long)have, (long long)want);
}
/* cuDNN's RNN kernels use vector loads: every pointer it gets is checked to be 16-byte aligned. */
kb_status aligned(const char *op, const char *what, const void *ptr) {
    if (((uintptr_t)ptr & 15) == 0) return KB_OK;
    return kb_set_error(KB_ERR_INTERNAL, "%s: %s at %p is not 16-byte aligned for cuDNN", op, what, ptr);
}
/* *p, if it is not 16-byte aligned, replaced by an aligned scratch copy of its `bytes`. */
template <typename T>
kb_status stage_aligned(kb_scratch_set &sc, cudaStream_t st, const T **p, size_t bytes) {
    if (!*p || ((uintptr_t)*p & 15) == 0) return KB_OK;
    void *q;
    KB_TRY(sc.get(bytes, &q));
    KB_CUDA_CHECK(cudaMemcpyAsync(q, *p, bytes, cudaMemcpyDeviceToDevice, st));
    *p = (const T *)q;
    return KB_OK;
}
/* A CUDA error left pending by a cuDNN call (it returned success) is reported as its own. */
kb_status after_cudnn(const char *op, const char *call) {
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return KB_OK;
    return kb_set_error(e == cudaErrorMemoryAllocation ? KB_ERR_OUT_OF_MEMORY : KB_ERR_CUDA,
                        "%s: %s left a CUDA error: %s (%s)", op, call, cudaGetErrorString(e), cudaGetErrorName(e));
}

template <typename T>
kb_status launch_take_rows(kb_cuda_device *dev, const T *pack, T *y, int64_t B, int64_t T_, int64_t U, int64_t kH) {
    int64_t n = B * T_ * U;
    k_take_rows<T><<<kb_blocks(dev, n, KB_THREADS), KB_THREADS, 0, dev->stream>>>(pack, y, T_, U, kH, n);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

template <typename T>
kb_status rnn_exec(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out, int dir) {
    kb_cuda_device *dev = kb_cuda_dev(ex);
    KB_TRY(kb_cuda_bind(dev));
    const char *op = ex->op;
    int mode = (int)a->i64[0];
    int has_h0 = a->i64[1] != 0, has_c0 = a->i64[2] != 0 && mode == MODE_LSTM;
    int64_t B = in[0].shape[0], T_ = in[0].shape[1], I = in[0].shape[2], U = in[4].shape[0];
    kb_rnn_layout L;
    kb_rnn_layout_of(mode, B, T_, I, U, &L);
    const int G = L.G;
    const int64_t kH = L.kH, W = L.W, GU = (int64_t)G * U;
    const int64_t blk_f = L.blk_f, blk_d = L.blk_d; /* block sizes of the forward / data packs */
    size_t es = sizeof(T);
    cudaStream_t st = dev->stream;
    /* every buffer against the layout the infer rules gave the plan (ops/rnn_layout.h) */
    KB_TRY(size_is(op, "x", in[0].size, B * T_ * I));
    if (has_h0) KB_TRY(size_is(op, "h0", in[1].size, B * U));
    if (has_c0) KB_TRY(size_is(op, "c0", in[2].size, B * U));
    KB_TRY(size_is(op, "kernel", in[3].size, I * GU));
    KB_TRY(size_is(op, "recurrent_kernel", in[4].size, U * GU));
    KB_TRY(size_is(op, "bias", in[5].size, 2 * GU));
    if (dir != FWD) {
        KB_TRY(size_is(op, "the forward pack (input 6)", in[6].size, L.size_f));
        KB_TRY(size_is(op, dir == BWD_DATA ? "dpack (input 7)" : "the data pack (input 7)", in[7].size,
                       dir == BWD_DATA ? L.size_f : L.size_d));
    }
    KB_TRY(size_is(op, "the output", out->size, dir == FWD ? L.size_f : dir == BWD_DATA ? L.size_d : L.size_w));
    if (out->size == 0) return KB_OK;
    if (B == 0) { /* only the weights pack is non-empty: no sequence, zero gradient */
        KB_CUDA_CHECK(cudaMemsetAsync(out->data, 0, (size_t)out->size * es, st));
        return KB_OK;
    }
    const int64_t big[] = {B, T_, I, U, B * U, GU};
    for (int64_t v : big)
        if (v > INT32_MAX)
            return kb_set_error(KB_ERR_NOT_SUPPORTED, "%s: cuDNN takes int dims; a dim is %lld", op, (long long)v);
    cudnnHandle_t h;
    KB_TRY(kb_cuda_cudnn(dev, &h));
    rnn_key key;
    memset(&key, 0, sizeof key);
    key.ordinal = dev->ordinal;
    key.dtype = (int)in[0].dtype;
    key.mode = mode;
    key.strict = in[0].dtype == KB_FLOAT32 && !dev->allow_tf32;
    key.B = B, key.T = T_, key.I = I, key.U = U;
    rnn_plan *p;
    KB_TRY(get_plan(h, key, rnn_type<T>::data, &p));
    rnn_descs d; /* this launch's, with this context's handle */
    KB_TRY(make_descs(h, key, rnn_type<T>::data, &d));

    bool fit = reserve_fits(p, L, es); /* in both packs (the same decision in all three kernels) */
    size_t nBU = (size_t)(B * U) * es, nY = (size_t)(B * T_ * U) * es;
    kb_scratch_set sc(dev);
    void *seq, *work, *y;
    size_t work_size = p->work[dir == FWD && !fit ? 0 : 1];
    KB_TRY(sc.get((size_t)B * sizeof(int32_t), &seq));
    KB_TRY(sc.get(work_size, &work));
    KB_TRY(sc.get(nY, &y));
    k_fill_i32<<<kb_blocks(dev, B, KB_THREADS), KB_THREADS, 0, st>>>((int32_t *)seq, B, (int32_t)T_);
    KB_CUDA_CHECK(cudaGetLastError());
    const wsegs &m = p->segs;
    T *kk = (T *)in[3].data, *rk = (T *)in[4].data, *bias = (T *)in[5].data;
    const T *x = (const T *)in[0].data;
    const T *hx = has_h0 ? (const T *)in[1].data : nullptr, *cx = has_c0 ? (const T *)in[2].data : nullptr;
    size_t wsize = p->wsize;
    /* graph buffers are 256-byte aligned, but an input may come from elsewhere (a loop body's feed
     * points into the loop's buffer): one that is not 16-byte aligned is staged into scratch */
    KB_TRY(stage_aligned(sc, st, &x, (size_t)(B * T_ * I) * es));
    KB_TRY(stage_aligned(sc, st, &hx, nBU));
    KB_TRY(stage_aligned(sc, st, &cx, nBU));
    KB_TRY(aligned(op, "the workspace", work));
    KB_TRY(aligned(op, "y", y));
    /* the weight space gathered from the Keras arrays (offsets read on the first launch) */
    void *w = nullptr;
    bool need_w = dir != BWD_WEIGHTS || !fit;
    if (need_w) {
        KB_TRY(sc.get(wsize, &w));
        KB_TRY(aligned(op, "the weight space", w));
        KB_TRY(ensure_offsets(h, d.rnn, p, w, es, op));
        k_weights<T><<<kb_blocks(dev, m.total, KB_THREADS), KB_THREADS, 0, st>>>((T *)w, kk, rk, bias, m, 1);
        KB_CUDA_CHECK(cudaGetLastError());
    }

    if (dir == FWD) {
        void *hy, *cy = nullptr;
        KB_TRY(sc.get(nBU, &hy));
        if (mode == MODE_LSTM) KB_TRY(sc.get(nBU, &cy));
        KB_TRY(aligned(op, "h_n", hy));
        KB_TRY(aligned(op, "c_n", cy));
        void *reserve = fit ? reserve_at(out->data, blk_f, es) : nullptr;
        KB_TRY(aligned(op, "the reserve in the pack", reserve));
        KB_CUDNN_CHECK(cudnnRNNForward(h, d.rnn, fit ? CUDNN_FWD_MODE_TRAINING : CUDNN_FWD_MODE_INFERENCE,
                                       (const int32_t *)seq, p->xd, x, p->yd, y, p->hd, hx, hy, p->hd, cx, cy, wsize, w,
                                       work_size, work, fit ? p->reserve : 0, reserve));
        KB_TRY(after_cudnn(op, "cudnnRNNForward"));
        k_pack_fwd<T><<<kb_blocks(dev, blk_f, KB_THREADS), KB_THREADS, 0, st>>>(
            (T *)out->data, (const T *)y, (const T *)hy, (const T *)(cy ? cy : hy), T_, U, kH, blk_f);
        KB_CUDA_CHECK(cudaGetLastError());
        return KB_OK;
    }

    /* dy, dhy, dcy: dpack's block 0 (backward-data) or its copy in the data pack (weights fallback) */
    void *dy = nullptr, *dhy = nullptr, *dcy = nullptr, *reserve = nullptr, *dx = nullptr, *dhx = nullptr, *dcx = nullptr;
    const T *dsrc = dir == BWD_DATA ? (const T *)in[7].data : (const T *)in[7].data + blk_d;
    if (dir == BWD_DATA || !fit) {
        KB_TRY(sc.get(nY, &dy));
        KB_TRY(sc.get(nBU, &dhy));
        if (mode == MODE_LSTM) KB_TRY(sc.get(nBU, &dcy));
        k_unpack_dy<T><<<kb_blocks(dev, blk_f, KB_THREADS), KB_THREADS, 0, st>>>(
            dsrc, (T *)dy, (T *)dhy, (T *)(dcy ? dcy : dhy), T_, U, kH, blk_f);
        KB_CUDA_CHECK(cudaGetLastError());
    }
    if (fit) {
        /* the forward's outputs and reserve (backward-weights: the reserve as backward-data left it) */
        KB_TRY(launch_take_rows<T>(dev, (const T *)in[6].data, (T *)y, B, T_, U, kH));
        if (dir == BWD_DATA) {
            reserve = reserve_at(out->data, blk_d, es);
            KB_CUDA_CHECK(cudaMemcpyAsync(reserve, reserve_at(in[6].data, blk_f, es), p->reserve,
                                          cudaMemcpyDeviceToDevice, st));
        } else {
            KB_TRY(sc.get(p->reserve, &reserve)); /* cuDNN may write it: never into an input */
            KB_CUDA_CHECK(cudaMemcpyAsync(reserve, reserve_at(in[7].data, blk_d, es), p->reserve,
                                          cudaMemcpyDeviceToDevice, st));
        }
    } else {
        /* fallback: recompute the training forward (reserve in scratch) */
        KB_TRY(sc.get(p->reserve, &reserve));
        KB_CUDNN_CHECK(cudnnRNNForward(h, d.rnn, CUDNN_FWD_MODE_TRAINING, (const int32_t *)seq, p->xd, x, p->yd, y,
                                       p->hd, hx, nullptr, p->hd, cx, nullptr, wsize, w, work_size, work, p->reserve,
                                       reserve));
        KB_TRY(after_cudnn(op, "cudnnRNNForward (training, recompute)"));
        if (dir == BWD_DATA) /* keep dpack's block 0 in the reserve blocks for backward-weights */
            KB_CUDA_CHECK(cudaMemcpyAsync((T *)out->data + blk_d, in[7].data, (size_t)blk_f * es,
                                          cudaMemcpyDeviceToDevice, st));
    }
    KB_TRY(aligned(op, "the reserve", reserve));
    if (dir == BWD_DATA || !fit) {
        KB_TRY(sc.get((size_t)(B * T_ * I) * es, &dx));
        if (dir == BWD_DATA && has_h0) KB_TRY(sc.get(nBU, &dhx));
        if (dir == BWD_DATA && has_c0) KB_TRY(sc.get(nBU, &dcx));
        const void *ptrs[] = {dy, dhy, dcy, dx, dhx, dcx};
        const char *names[] = {"dy", "dh_n", "dc_n", "dx", "dh0", "dc0"};
        for (int i = 0; i < 6; ++i) KB_TRY(aligned(op, names[i], ptrs[i]));
        KB_CUDNN_CHECK(cudnnRNNBackwardData_v8(h, d.rnn, (const int32_t *)seq, p->yd, y, dy, p->xd, dx, p->hd, hx, dhy,
                                               dhx, p->hd, cx, dcy, dcx, wsize, w, work_size, work, p->reserve,
                                               reserve));
        KB_TRY(after_cudnn(op, "cudnnRNNBackwardData_v8"));
    }
    if (dir == BWD_DATA) {
        k_pack_bwd<T><<<kb_blocks(dev, blk_d, KB_THREADS), KB_THREADS, 0, st>>>(
            (T *)out->data, (const T *)dx, (const T *)dhx, (const T *)dcx, T_, I, U, W, kH, blk_d);
        KB_CUDA_CHECK(cudaGetLastError());
        return KB_OK;
    }
    void *dw;
    KB_TRY(sc.get(wsize, &dw));
    KB_TRY(aligned(op, "the weight gradient space", dw));
    KB_TRY(ensure_offsets(h, d.rnn, p, dw, es, op));
    KB_CUDA_CHECK(cudaMemsetAsync(dw, 0, wsize, st));
    KB_CUDNN_CHECK(cudnnRNNBackwardWeights_v8(h, d.rnn, CUDNN_WGRAD_MODE_ADD, (const int32_t *)seq, p->xd, x, p->hd,
                                              hx, p->yd, y, wsize, dw, work_size, work, p->reserve, reserve));
    KB_TRY(after_cudnn(op, "cudnnRNNBackwardWeights_v8"));
    /* out = [dkernel (I, GU) | drecurrent (U, GU) | dbias (2 GU)], Keras layout */
    T *o = (T *)out->data;
    k_weights<T><<<kb_blocks(dev, m.total, KB_THREADS), KB_THREADS, 0, st>>>((T *)dw, o, o + I * GU, o + (I + U) * GU,
                                                                              m, 0);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

#endif /* KB_WITH_CUDNN */

kb_status rnn_dispatch(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out, int dir) {
#ifdef KB_WITH_CUDNN
    switch (in[0].dtype) {
    case KB_FLOAT32: return rnn_exec<float>(ex, a, in, out, dir);
    case KB_FLOAT64: return rnn_exec<double>(ex, a, in, out, dir);
    default: return kb_cuda_dtype_error(ex, in[0].dtype, "float32 or float64");
    }
#else
    (void)a; (void)in; (void)out; (void)dir;
    return kb_set_error(KB_ERR_NOT_SUPPORTED, "%s: fused recurrent layers on CUDA need cuDNN (kb was built without it)",
                        ex->op);
#endif
}

}  // namespace

extern "C" kb_status kb_cuda_cudnn_rnn(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return rnn_dispatch(ex, a, in, out, FWD);
}

extern "C" kb_status kb_cuda_cudnn_rnn_backward_data(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                                     kb_buf *out) {
    (void)n_in;
    return rnn_dispatch(ex, a, in, out, BWD_DATA);
}

extern "C" kb_status kb_cuda_cudnn_rnn_backward_weights(const kb_exec *ex, const kb_attrs *a, const kb_buf *in,
                                                        int n_in, kb_buf *out) {
    (void)n_in;
    return rnn_dispatch(ex, a, in, out, BWD_WEIGHTS);
}
