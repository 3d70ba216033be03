/* CPU kernels of the image family: pad / crop and resize_nearest (any dtype, moved by element
 * size), resize_nearest_grad, resize_bilinear and its adjoint (float32/float64). Attribute
 * layouts: ops/image.c. */
#include <string.h>

#include "core/dtype.h"
#include "cpu/cpu_common.h"
#include "cpu/cpu_kernels.h"

/* One output row (the last axis) at a time: rows outside the input along an outer axis are
 * zeros; inside, pad writes zeros + the input row + zeros, crop copies the middle of the input row. */
static kb_status pad_crop(const kb_attrs *a, const kb_buf *x, kb_buf *out, int pad) {
    size_t es = kb_dtype_size(out->dtype);
    int r = out->rank;
    if (out->size == 0) return KB_OK;
    if (r == 0) {
        memcpy(out->data, x->data, es);
        return KB_OK;
    }
    int64_t W = out->shape[r - 1], Wi = x->shape[r - 1], b = a->i64[2 * (r - 1)];
    int64_t rows = out->size / W;
    const char *src = (const char *)x->data;
    char *dst = (char *)out->data;
#pragma omp parallel for if (out->size > KB_OMP_MIN)
    for (int64_t row = 0; row < rows; ++row) {
        int64_t k = row, off = 0, stride = Wi;
        int inside = 1;
        for (int d = r - 2; d >= 0; --d) {
            int64_t o = k % out->shape[d], i = pad ? o - a->i64[2 * d] : o + a->i64[2 * d];
            k /= out->shape[d];
            if (i < 0 || i >= x->shape[d]) inside = 0;
            off += i * stride;
            stride *= x->shape[d];
        }
        char *d0 = dst + (size_t)(row * W) * es;
        if (!inside) {
            memset(d0, 0, (size_t)W * es);
        } else if (pad) {
            memset(d0, 0, (size_t)b * es);
            memcpy(d0 + (size_t)b * es, src + (size_t)off * es, (size_t)Wi * es);
            memset(d0 + (size_t)(b + Wi) * es, 0, (size_t)(W - b - Wi) * es);
        } else {
            memcpy(d0, src + (size_t)(off + b) * es, (size_t)W * es);
        }
    }
    return KB_OK;
}

kb_status kb_cpu_pad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)ex; (void)n_in;
    return pad_crop(a, &in[0], out, 1);
}

kb_status kb_cpu_crop(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)ex; (void)n_in;
    return pad_crop(a, &in[0], out, 0);
}

/* out[o] = x[o / f] per axis. */
kb_status kb_cpu_resize_nearest(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)ex; (void)n_in;
    const kb_buf *x = &in[0];
    size_t es = kb_dtype_size(x->dtype);
    int r = out->rank;
#pragma omp parallel for if (out->size > KB_OMP_MIN)
    for (int64_t i = 0; i < out->size; ++i) {
        int64_t k = i, off = 0, stride = 1;
        for (int d = r - 1; d >= 0; --d) {
            int64_t o = k % out->shape[d];
            k /= out->shape[d];
            off += (o / a->i64[d]) * stride;
            stride *= x->shape[d];
        }
        memcpy((char *)out->data + (size_t)i * es, (const char *)x->data + (size_t)off * es, es);
    }
    return KB_OK;
}

/* out[j] = sum of dy over the block j * f + [0, f) of every axis, in C order of the block. */
#define NEAREST_GRAD(T)                                                                          \
    do {                                                                                         \
        const T *src = (const T *)dy->data;                                                      \
        T *dst = (T *)out->data;                                                                 \
        _Pragma("omp parallel for if (out->size > KB_OMP_MIN)")                                 \
        for (int64_t i = 0; i < out->size; ++i) {                                                \
            int64_t base = 0, stride = 1, k = i;                                                 \
            int64_t st[KB_MAX_RANK];                                                             \
            for (int d = r - 1; d >= 0; --d) {                                                   \
                base += (k % out->shape[d]) * a->i64[d] * stride;                                \
                k /= out->shape[d];                                                              \
                st[d] = stride;                                                                  \
                stride *= dy->shape[d];                                                          \
            }                                                                                    \
            T acc = 0;                                                                           \
            for (int64_t t = 0; t < block; ++t) {                                                \
                int64_t off = base, q = t;                                                       \
                for (int d = r - 1; d >= 0; --d) {                                               \
                    off += (q % a->i64[d]) * st[d];                                              \
                    q /= a->i64[d];                                                              \
                }                                                                                \
                acc += src[off];                                                                 \
            }                                                                                    \
            dst[i] = acc;                                                                        \
        }                                                                                        \
    } while (0)

kb_status kb_cpu_resize_nearest_grad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    const kb_buf *dy = &in[0];
    int r = out->rank;
    int64_t block = 1;
    for (int d = 0; d < r; ++d) block *= a->i64[d];
    if (dy->dtype == KB_FLOAT32) NEAREST_GRAD(float);
    else if (dy->dtype == KB_FLOAT64) NEAREST_GRAD(double);
    else return kb_cpu_bad_dtype(ex, dy->dtype);
    return KB_OK;
}

/* Views of a bilinear node's tensors as (outer, H, W, inner). */
typedef struct {
    int64_t outer, inner, h, w, oh, ow, fh, fw;
} bil_dims;

static bil_dims bil_of(const kb_attrs *a, const kb_buf *small, const kb_buf *big) {
    bil_dims g;
    int h = (int)a->i64[0];
    g.fh = a->i64[1];
    g.fw = a->i64[2];
    g.outer = g.inner = 1;
    for (int d = 0; d < h; ++d) g.outer *= small->shape[d];
    for (int d = h + 2; d < small->rank; ++d) g.inner *= small->shape[d];
    g.h = small->shape[h];
    g.w = small->shape[h + 1];
    g.oh = big->shape[h];
    g.ow = big->shape[h + 1];
    return g;
}

/* Legacy TF1 bilinear: top = x[floor(y / fh)], bottom = the next row clamped, lerp by (y mod fh) / fh. */
#define BILINEAR(T)                                                                                      \
    do {                                                                                                 \
        const T *src = (const T *)x->data;                                                               \
        T *dst = (T *)out->data;                                                                         \
        _Pragma("omp parallel for if (out->size > KB_OMP_MIN)")                                         \
        for (int64_t i = 0; i < out->size; ++i) {                                                        \
            int64_t c = i % g.inner, t = i / g.inner;                                                    \
            int64_t ox = t % g.ow, oy = (t / g.ow) % g.oh, o = t / (g.ow * g.oh);                        \
            int64_t y0 = oy / g.fh, x0 = ox / g.fw;                                                      \
            int64_t y1 = y0 + 1 < g.h ? y0 + 1 : g.h - 1, x1 = x0 + 1 < g.w ? x0 + 1 : g.w - 1;          \
            T yl = (T)(oy % g.fh) / (T)g.fh, xl = (T)(ox % g.fw) / (T)g.fw;                              \
            const T *p = src + o * g.h * g.w * g.inner + c;                                              \
            T tl = p[(y0 * g.w + x0) * g.inner], tr = p[(y0 * g.w + x1) * g.inner];                      \
            T bl = p[(y1 * g.w + x0) * g.inner], br = p[(y1 * g.w + x1) * g.inner];                      \
            T top = tl + (tr - tl) * xl, bot = bl + (br - bl) * xl;                                      \
            dst[i] = top + (bot - top) * yl;                                                             \
        }                                                                                                \
    } while (0)

kb_status kb_cpu_resize_bilinear(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    const kb_buf *x = &in[0];
    bil_dims g = bil_of(a, x, out);
    if (x->dtype == KB_FLOAT32) BILINEAR(float);
    else if (x->dtype == KB_FLOAT64) BILINEAR(double);
    else return kb_cpu_bad_dtype(ex, x->dtype);
    return KB_OK;
}

/* The adjoint: dx[iy, ix] = sum over output pixels (y, x) of wy(y, iy) * wx(x, ix) * dy[y, x], where
 * w(y, i) = (1 - l) if floor(y / f) == i, plus l if the clamped next row is i (l = (y mod f) / f).
 * Only y in [(i - 1) f, (i + 1) f) can touch row i, so each input pixel reads at most 4 f_h f_w values. */
#define BILINEAR_GRAD(T)                                                                                 \
    do {                                                                                                 \
        const T *src = (const T *)dy->data;                                                              \
        T *dst = (T *)out->data;                                                                         \
        _Pragma("omp parallel for if (out->size > KB_OMP_MIN)")                                         \
        for (int64_t i = 0; i < out->size; ++i) {                                                        \
            int64_t c = i % g.inner, t = i / g.inner;                                                    \
            int64_t ix = t % g.w, iy = (t / g.w) % g.h, o = t / (g.w * g.h);                             \
            const T *p = src + o * g.oh * g.ow * g.inner + c;                                            \
            int64_t ya = iy > 0 ? (iy - 1) * g.fh : 0, xa = ix > 0 ? (ix - 1) * g.fw : 0;               \
            T acc = 0;                                                                                   \
            for (int64_t y = ya; y < (iy + 1) * g.fh; ++y) {                                             \
                int64_t y0 = y / g.fh, y1 = y0 + 1 < g.h ? y0 + 1 : g.h - 1;                             \
                T yl = (T)(y % g.fh) / (T)g.fh;                                                          \
                T wy = (y0 == iy ? (T)1 - yl : (T)0) + (y1 == iy ? yl : (T)0);                           \
                if (wy == (T)0) continue;                                                                \
                T row = 0;                                                                               \
                for (int64_t xx = xa; xx < (ix + 1) * g.fw; ++xx) {                                      \
                    int64_t x0 = xx / g.fw, x1 = x0 + 1 < g.w ? x0 + 1 : g.w - 1;                        \
                    T xl = (T)(xx % g.fw) / (T)g.fw;                                                     \
                    T wx = (x0 == ix ? (T)1 - xl : (T)0) + (x1 == ix ? xl : (T)0);                       \
                    row += wx * p[(y * g.ow + xx) * g.inner];                                            \
                }                                                                                        \
                acc += wy * row;                                                                         \
            }                                                                                            \
            dst[i] = acc;                                                                                \
        }                                                                                                \
    } while (0)

kb_status kb_cpu_resize_bilinear_grad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    const kb_buf *dy = &in[0];
    bil_dims g = bil_of(a, out, dy);
    if (dy->dtype == KB_FLOAT32) BILINEAR_GRAD(float);
    else if (dy->dtype == KB_FLOAT64) BILINEAR_GRAD(double);
    else return kb_cpu_bad_dtype(ex, dy->dtype);
    return KB_OK;
}
