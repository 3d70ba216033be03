/*
 * CUDA kernels of the image family (attribute layouts: ops/image.c). One thread per output
 * element, grid-stride; shapes travel by value (no device memory, capture-safe).
 *
 * pad / crop (any dtype, moved as 1/2/4/8-byte words): out coordinate o_d reads input o_d - before_d
 *   (pad; zero outside) or o_d + before_d (crop). Bytes: (in + out) * sizeof T at most.
 * resize_nearest (any dtype): out[o] = in[o / f] per axis.
 * resize_nearest_grad (floats): each output sums its f_0 x ... block of dy, accumulating in float
 *   (double for float64), in the block's C order as the CPU kernel.
 * resize_bilinear / resize_bilinear_grad (floats, float16/bfloat16 loaded to float and stored
 *   once): the legacy TF1 formula and its adjoint, as cpu_image.c, with products and sums rounded
 *   on their own (kb_mul / kb_add) so float32 matches the CPU order of operations.
 */
#include "cuda/kernels/common.cuh"

namespace {

struct shapes {
    int rank;
    int64_t out[KB_MAX_RANK], in[KB_MAX_RANK], p[KB_MAX_RANK]; /* p: offset (pad/crop) or factor */
};

template <typename W>
__global__ void k_pad_crop(const W *__restrict__ x, W *__restrict__ y, int64_t n, shapes s, int pad) {
    KB_GRID_LOOP(i, n) {
        int64_t k = i, off = 0, stride = 1;
        bool inside = true;
        for (int d = s.rank - 1; d >= 0; --d) {
            int64_t o = k % s.out[d];
            k /= s.out[d];
            int64_t j = pad ? o - s.p[d] : o + s.p[d];
            inside = inside && j >= 0 && j < s.in[d];
            off += j * stride;
            stride *= s.in[d];
        }
        y[i] = inside ? x[off] : (W)0;
    }
}

template <typename W>
__global__ void k_nearest(const W *__restrict__ x, W *__restrict__ y, int64_t n, shapes s) {
    KB_GRID_LOOP(i, n) {
        int64_t k = i, off = 0, stride = 1;
        for (int d = s.rank - 1; d >= 0; --d) {
            int64_t o = k % s.out[d];
            k /= s.out[d];
            off += (o / s.p[d]) * stride;
            stride *= s.in[d];
        }
        y[i] = x[off];
    }
}

template <typename W>
kb_status launch_move(const kb_exec *ex, const kb_buf *x, kb_buf *out, const shapes &s, int kind) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    KB_TRY(kb_cuda_bind(dev));
    unsigned g = kb_blocks(dev, out->size, KB_THREADS);
    if (kind == 2)
        k_nearest<W><<<g, KB_THREADS, 0, dev->stream>>>((const W *)x->data, (W *)out->data, out->size, s);
    else
        k_pad_crop<W><<<g, KB_THREADS, 0, dev->stream>>>((const W *)x->data, (W *)out->data, out->size, s, kind);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

/* kind: 1 = pad, 0 = crop, 2 = resize_nearest. */
kb_status move(const kb_exec *ex, const kb_attrs *a, const kb_buf *x, kb_buf *out, int kind) {
    if (out->size == 0) return KB_OK;
    shapes s;
    s.rank = out->rank;
    for (int d = 0; d < out->rank; ++d) {
        s.out[d] = out->shape[d];
        s.in[d] = x->shape[d];
        s.p[d] = kind == 2 ? a->i64[d] : a->i64[2 * d];
    }
    switch (kb_dtype_size(x->dtype)) {
    case 1: return launch_move<uint8_t>(ex, x, out, s, kind);
    case 2: return launch_move<uint16_t>(ex, x, out, s, kind);
    case 4: return launch_move<uint32_t>(ex, x, out, s, kind);
    case 8: return launch_move<uint64_t>(ex, x, out, s, kind);
    default: return kb_cuda_dtype_error(ex, x->dtype, "element size 1, 2, 4 or 8");
    }
}

template <typename T> struct acc_of { using type = float; };
template <> struct acc_of<double> { using type = double; };

template <typename T>
__global__ void k_nearest_grad(const T *__restrict__ dy, T *__restrict__ out, int64_t n, shapes s, int64_t block) {
    using A = typename acc_of<T>::type;
    KB_GRID_LOOP(i, n) {
        int64_t base = 0, stride = 1, k = i, st[KB_MAX_RANK];
        for (int d = s.rank - 1; d >= 0; --d) {
            base += (k % s.out[d]) * s.p[d] * stride;
            k /= s.out[d];
            st[d] = stride;
            stride *= s.in[d];
        }
        A acc = 0;
        for (int64_t t = 0; t < block; ++t) {
            int64_t off = base, q = t;
            for (int d = s.rank - 1; d >= 0; --d) {
                off += (q % s.p[d]) * st[d];
                q /= s.p[d];
            }
            acc = kb_add(acc, (A)kb_dev_load(dy[off]));
        }
        out[i] = kb_dev_store<T>((double)acc);
    }
}

template <typename T>
kb_status nearest_grad_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *dy, kb_buf *out) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    if (out->size == 0) return KB_OK;
    shapes s;
    s.rank = out->rank;
    int64_t block = 1;
    for (int d = 0; d < out->rank; ++d) {
        s.out[d] = out->shape[d];
        s.in[d] = dy->shape[d];
        s.p[d] = a->i64[d];
        block *= a->i64[d];
    }
    KB_TRY(kb_cuda_bind(dev));
    k_nearest_grad<T><<<kb_blocks(dev, out->size, KB_THREADS), KB_THREADS, 0, dev->stream>>>(
        (const T *)dy->data, (T *)out->data, out->size, s, block);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

/* (outer, H, W, inner) views of a bilinear node's small and big tensors. */
struct bil {
    int64_t inner, h, w, oh, ow, fh, fw;
};

static bil bil_of(const kb_attrs *a, const kb_buf *small, const kb_buf *big) {
    bil g;
    int h = (int)a->i64[0];
    g.fh = a->i64[1];
    g.fw = a->i64[2];
    g.inner = 1;
    for (int d = h + 2; d < small->rank; ++d) g.inner *= small->shape[d];
    g.h = small->shape[h];
    g.w = small->shape[h + 1];
    g.oh = big->shape[h];
    g.ow = big->shape[h + 1];
    return g;
}

template <typename T>
__global__ void k_bilinear(const T *__restrict__ x, T *__restrict__ y, int64_t n, bil g) {
    using A = typename acc_of<T>::type;
    KB_GRID_LOOP(i, n) {
        int64_t c = i % g.inner, t = i / g.inner;
        int64_t ox = t % g.ow, oy = (t / g.ow) % g.oh, o = t / (g.ow * g.oh);
        int64_t y0 = oy / g.fh, x0 = ox / g.fw;
        int64_t y1 = y0 + 1 < g.h ? y0 + 1 : g.h - 1, x1 = x0 + 1 < g.w ? x0 + 1 : g.w - 1;
        A yl = kb_div((A)(oy % g.fh), (A)g.fh), xl = kb_div((A)(ox % g.fw), (A)g.fw);
        const T *p = x + o * g.h * g.w * g.inner + c;
        A tl = (A)kb_dev_load(p[(y0 * g.w + x0) * g.inner]), tr = (A)kb_dev_load(p[(y0 * g.w + x1) * g.inner]);
        A bl = (A)kb_dev_load(p[(y1 * g.w + x0) * g.inner]), br = (A)kb_dev_load(p[(y1 * g.w + x1) * g.inner]);
        A top = kb_add(tl, kb_mul(kb_sub(tr, tl), xl)), bot = kb_add(bl, kb_mul(kb_sub(br, bl), xl));
        y[i] = kb_dev_store<T>((double)kb_add(top, kb_mul(kb_sub(bot, top), yl)));
    }
}

template <typename T>
__global__ void k_bilinear_grad(const T *__restrict__ dy, T *__restrict__ dx, int64_t n, bil g) {
    using A = typename acc_of<T>::type;
    KB_GRID_LOOP(i, n) {
        int64_t c = i % g.inner, t = i / g.inner;
        int64_t ix = t % g.w, iy = (t / g.w) % g.h, o = t / (g.w * g.h);
        const T *p = dy + o * g.oh * g.ow * g.inner + c;
        int64_t ya = iy > 0 ? (iy - 1) * g.fh : 0, xa = ix > 0 ? (ix - 1) * g.fw : 0;
        A acc = 0;
        for (int64_t y = ya; y < (iy + 1) * g.fh; ++y) {
            int64_t y0 = y / g.fh, y1 = y0 + 1 < g.h ? y0 + 1 : g.h - 1;
            A yl = kb_div((A)(y % g.fh), (A)g.fh);
            A wy = kb_add(y0 == iy ? kb_sub((A)1, yl) : (A)0, y1 == iy ? yl : (A)0);
            if (wy == (A)0) continue;
            A row = 0;
            for (int64_t xx = xa; xx < (ix + 1) * g.fw; ++xx) {
                int64_t x0 = xx / g.fw, x1 = x0 + 1 < g.w ? x0 + 1 : g.w - 1;
                A xl = kb_div((A)(xx % g.fw), (A)g.fw);
                A wx = kb_add(x0 == ix ? kb_sub((A)1, xl) : (A)0, x1 == ix ? xl : (A)0);
                row = kb_add(row, kb_mul(wx, (A)kb_dev_load(p[(y * g.ow + xx) * g.inner])));
            }
            acc = kb_add(acc, kb_mul(wy, row));
        }
        dx[i] = kb_dev_store<T>((double)acc);
    }
}

template <typename T>
kb_status bilinear_t(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out, int grad) {
    struct kb_cuda_device *dev = kb_cuda_dev(ex);
    if (out->size == 0) return KB_OK;
    bil g = grad ? bil_of(a, out, &in[0]) : bil_of(a, &in[0], out);
    KB_TRY(kb_cuda_bind(dev));
    unsigned b = kb_blocks(dev, out->size, KB_THREADS);
    if (grad)
        k_bilinear_grad<T><<<b, KB_THREADS, 0, dev->stream>>>((const T *)in[0].data, (T *)out->data, out->size, g);
    else
        k_bilinear<T><<<b, KB_THREADS, 0, dev->stream>>>((const T *)in[0].data, (T *)out->data, out->size, g);
    KB_CUDA_CHECK(cudaGetLastError());
    return KB_OK;
}

/* float16, bfloat16, float32, float64 */
#define KB_DISPATCH_FLOATS(ex, dt, FN, ...)                                                         \
    do {                                                                                            \
        switch (dt) {                                                                               \
        case KB_FLOAT16: return FN<__half>(__VA_ARGS__);                                            \
        case KB_BFLOAT16: return FN<__nv_bfloat16>(__VA_ARGS__);                                    \
        case KB_FLOAT32: return FN<float>(__VA_ARGS__);                                             \
        case KB_FLOAT64: return FN<double>(__VA_ARGS__);                                            \
        default: return kb_cuda_dtype_error(ex, dt, "float16, bfloat16, float32 or float64");       \
        }                                                                                           \
    } while (0)

} /* namespace */

extern "C" kb_status kb_cuda_pad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return move(ex, a, &in[0], out, 1);
}

extern "C" kb_status kb_cuda_crop(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return move(ex, a, &in[0], out, 0);
}

extern "C" kb_status kb_cuda_resize_nearest(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                            kb_buf *out) {
    (void)n_in;
    return move(ex, a, &in[0], out, 2);
}

extern "C" kb_status kb_cuda_resize_nearest_grad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                                 kb_buf *out) {
    (void)n_in;
    KB_DISPATCH_FLOATS(ex, in[0].dtype, nearest_grad_t, ex, a, &in[0], out);
}

extern "C" kb_status kb_cuda_resize_bilinear(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                             kb_buf *out) {
    (void)n_in;
    KB_DISPATCH_FLOATS(ex, in[0].dtype, bilinear_t, ex, a, in, out, 0);
}

extern "C" kb_status kb_cuda_resize_bilinear_grad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                                  kb_buf *out) {
    (void)n_in;
    KB_DISPATCH_FLOATS(ex, in[0].dtype, bilinear_t, ex, a, in, out, 1);
}
