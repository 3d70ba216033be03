/* CPU kernels of the shape family (data movement by element size, any dtype; tile_grad sums in
 * double), and of fill_like, shape, size and print_tensor. */
#include <stdio.h>

#include "core/dtype.h"
#include "cpu/cpu_common.h"
#include "cpu/cpu_kernels.h"

/* ---- copy maps: out[bo + sum(idx_d * so_d)] = in[bi + sum(idx_d * si_d)] over dims (C order) ---- */

#define CM_MAX (3 * KB_MAX_RANK) /* tile splits each axis in three */

typedef struct cmap {
    int rank;
    int64_t dims[CM_MAX], si[CM_MAX], so[CM_MAX];
    int64_t bi, bo;
} cmap;

/* Append a dim; size-1 dims vanish and a dim contiguous with the previous one in both operands
 * merges into it, so the innermost run is as long as it can be. */
static void cm_push(cmap *m, int64_t dim, int64_t si, int64_t so) {
    if (dim == 1) return;
    int r = m->rank;
    if (r > 0 && m->si[r - 1] == si * dim && m->so[r - 1] == so * dim) {
        m->dims[r - 1] *= dim;
        m->si[r - 1] = si;
        m->so[r - 1] = so;
        return;
    }
    m->dims[r] = dim;
    m->si[r] = si;
    m->so[r] = so;
    m->rank = r + 1;
}

#define CM_RUN(T)                                                                              \
    do {                                                                                       \
        const T *s_ = (const T *)src;                                                          \
        T *d_ = (T *)dst;                                                                      \
        for (int64_t j = 0; j < inner; ++j) d_[j * m->so[r - 1]] = s_[j * m->si[r - 1]];     \
    } while (0)

static void cm_copy(const cmap *m, const void *in, void *out, size_t es) {
    int r = m->rank;
    if (r == 0) {
        memcpy((char *)out + m->bo * (int64_t)es, (const char *)in + m->bi * (int64_t)es, es);
        return;
    }
    int64_t inner = m->dims[r - 1], rows = 1;
    for (int d = 0; d < r - 1; ++d) rows *= m->dims[d];
    if (rows == 0 || inner == 0) return;
    const int contig = m->si[r - 1] == 1 && m->so[r - 1] == 1;
#pragma omp parallel for if (rows * inner > KB_OMP_MIN)
    for (int64_t row = 0; row < rows; ++row) {
        int64_t oi = m->bi, oo = m->bo, k = row;
        for (int d = r - 2; d >= 0; --d) {
            int64_t c = k % m->dims[d];
            k /= m->dims[d];
            oi += c * m->si[d];
            oo += c * m->so[d];
        }
        const char *src = (const char *)in + oi * (int64_t)es;
        char *dst = (char *)out + oo * (int64_t)es;
        if (contig) memcpy(dst, src, (size_t)inner * es);
        else if (es == 1) CM_RUN(uint8_t);
        else if (es == 2) CM_RUN(uint16_t);
        else if (es == 4) CM_RUN(uint32_t);
        else CM_RUN(uint64_t);
    }
}

static void contig_strides(const int64_t *shape, int rank, int64_t *st) {
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; --d) {
        st[d] = s;
        s *= shape[d];
    }
}

kb_status kb_cpu_permute_dimensions(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)ex; (void)n_in;
    int64_t xs[KB_MAX_RANK], os[KB_MAX_RANK];
    contig_strides(in[0].shape, in[0].rank, xs);
    contig_strides(out->shape, out->rank, os);
    cmap m = {0};
    for (int i = 0; i < out->rank; ++i) cm_push(&m, out->shape[i], xs[a->perm[i]], os[i]);
    cm_copy(&m, in[0].data, out->data, kb_dtype_size(out->dtype));
    return KB_OK;
}

/* Start of a slice on axis d of a tensor of shape `dims` (see the slice attrs in ops/shape.c). */
static int64_t slice_start(const kb_attrs *a, int r, const int64_t *dims, int d) {
    return a->i64[2 * r + d] ? dims[d] - a->i64[d] : a->i64[d];
}

kb_status kb_cpu_slice(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)ex; (void)n_in;
    const kb_buf *x = &in[0];
    int64_t xs[KB_MAX_RANK], os[KB_MAX_RANK];
    contig_strides(x->shape, x->rank, xs);
    contig_strides(out->shape, out->rank, os);
    cmap m = {0};
    for (int d = 0; d < x->rank; ++d) {
        m.bi += slice_start(a, x->rank, x->shape, d) * xs[d];
        cm_push(&m, out->shape[d], xs[d], os[d]);
    }
    cm_copy(&m, x->data, out->data, kb_dtype_size(out->dtype));
    return KB_OK;
}

kb_status kb_cpu_slice_grad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)ex; (void)n_in;
    const kb_buf *dy = &in[0];
    size_t es = kb_dtype_size(out->dtype);
    memset(out->data, 0, (size_t)out->size * es);
    int64_t ds[KB_MAX_RANK], os[KB_MAX_RANK];
    contig_strides(dy->shape, dy->rank, ds);
    contig_strides(out->shape, out->rank, os);
    cmap m = {0};
    for (int d = 0; d < out->rank; ++d) {
        m.bo += slice_start(a, out->rank, out->shape, d) * os[d];
        cm_push(&m, dy->shape[d], ds[d], os[d]);
    }
    if (dy->size) cm_copy(&m, dy->data, out->data, es);
    return KB_OK;
}

/* Each input is a block of rows (outer, n_k * inner) placed side by side in the output's rows. */
kb_status kb_cpu_concatenate(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)ex; (void)n_in;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < a->axis; ++d) outer *= out->shape[d];
    for (int d = a->axis + 1; d < out->rank; ++d) inner *= out->shape[d];
    int64_t w0 = in[0].shape[a->axis] * inner, w1 = in[1].shape[a->axis] * inner, w = w0 + w1;
    for (int k = 0; k < 2; ++k) {
        int64_t wk = k ? w1 : w0;
        if (!wk) continue;
        cmap m = {0};
        m.bo = k ? w0 : 0;
        cm_push(&m, outer, wk, w);
        cm_push(&m, wk, 1, 1);
        cm_copy(&m, in[k].data, out->data, kb_dtype_size(out->dtype));
    }
    return KB_OK;
}

kb_status kb_cpu_reverse(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)ex; (void)n_in;
    int64_t cs[KB_MAX_RANK];
    contig_strides(out->shape, out->rank, cs);
    cmap m = {0};
    for (int d = 0; d < out->rank; ++d) {
        int rev = (a->axes_mask >> d) & 1u;
        if (rev) m.bi += (out->shape[d] - 1) * cs[d];
        cm_push(&m, out->shape[d], rev ? -cs[d] : cs[d], cs[d]);
    }
    cm_copy(&m, in[0].data, out->data, kb_dtype_size(out->dtype));
    return KB_OK;
}

/* tile / repeat_elements: output axis d viewed as (outer_d, x.shape[d], inner_d); x is read with
 * stride 0 along the repeats. */
static kb_status tile_copy(const kb_attrs *a, const kb_buf *x, kb_buf *out) {
    int r = x->rank;
    int64_t xs[KB_MAX_RANK], os[KB_MAX_RANK];
    contig_strides(x->shape, r, xs);
    contig_strides(out->shape, r, os);
    cmap m = {0};
    for (int d = 0; d < r; ++d) {
        int64_t o = a->i64[d], i = a->i64[r + d], D = x->shape[d];
        cm_push(&m, o, 0, D * i * os[d]);
        cm_push(&m, D, xs[d], i * os[d]);
        cm_push(&m, i, 0, os[d]);
    }
    cm_copy(&m, x->data, out->data, kb_dtype_size(out->dtype));
    return KB_OK;
}

kb_status kb_cpu_tile(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)ex; (void)n_in;
    return tile_copy(a, &in[0], out);
}

kb_status kb_cpu_repeat_elements(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)ex; (void)n_in;
    return tile_copy(a, &in[0], out);
}

/* tile_grad: out (x's shape) [j] = sum of dy over the copies of x[j], in double, the copies in C order
 * of (outer_0, inner_0, outer_1, inner_1, ...) (the CUDA kernel sums in the same order). */
kb_status kb_cpu_tile_grad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    const kb_buf *dy = &in[0];
    if (dy->dtype != KB_FLOAT32 && dy->dtype != KB_FLOAT64) return kb_cpu_bad_dtype(ex, dy->dtype);
    int r = out->rank;
    int64_t ds[KB_MAX_RANK], xstep[KB_MAX_RANK], rd[2 * KB_MAX_RANK], rs[2 * KB_MAX_RANK], R = 1;
    int nr = 0;
    contig_strides(dy->shape, r, ds);
    for (int d = 0; d < r; ++d) {
        int64_t o = a->i64[d], i = a->i64[r + d];
        xstep[d] = i * ds[d];
        if (o != 1) {
            rd[nr] = o;
            rs[nr++] = out->shape[d] * i * ds[d];
        }
        if (i != 1) {
            rd[nr] = i;
            rs[nr++] = ds[d];
        }
        R *= o * i;
    }
    const int f32 = dy->dtype == KB_FLOAT32;
#pragma omp parallel for if (out->size * (R ? R : 1) > KB_OMP_MIN)
    for (int64_t j = 0; j < out->size; ++j) {
        int64_t base = 0, k = j;
        for (int d = r - 1; d >= 0; --d) {
            base += (k % out->shape[d]) * xstep[d];
            k /= out->shape[d];
        }
        double acc = 0.0;
        for (int64_t t = 0; t < R; ++t) {
            int64_t off = base, q = t;
            for (int e = nr - 1; e >= 0; --e) {
                off += (q % rd[e]) * rs[e];
                q /= rd[e];
            }
            acc += f32 ? (double)((const float *)dy->data)[off] : ((const double *)dy->data)[off];
        }
        if (f32) ((float *)out->data)[j] = (float)acc;
        else ((double *)out->data)[j] = acc;
    }
    return KB_OK;
}

/* one_hot: float32 rows of num_classes, 1 at the index; an index outside [0, num_classes) gives a
 * row of zeros (tf.one_hot). */
kb_status kb_cpu_one_hot(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)ex; (void)n_in;
    int64_t C = a->i64[0];
    float *o = (float *)out->data;
    memset(o, 0, (size_t)out->size * sizeof(float));
    for (int64_t i = 0; i < in[0].size; ++i) {
        int64_t k = in[0].dtype == KB_INT32 ? ((const int32_t *)in[0].data)[i] : ((const int64_t *)in[0].data)[i];
        if (k >= 0 && k < C) o[i * C + k] = 1.0f;
    }
    return KB_OK;
}

kb_status kb_cpu_fill_like(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)ex; (void)in; (void)n_in;
    unsigned char v[8];
    size_t es = kb_dtype_size(out->dtype);
    kb_store_f64(v, out->dtype, 0, a->value);
    for (int64_t i = 0; i < out->size; ++i) memcpy((char *)out->data + (size_t)i * es, v, es);
    return KB_OK;
}

kb_status kb_cpu_shape(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)ex; (void)a; (void)n_in;
    for (int i = 0; i < in[0].rank; ++i) ((int32_t *)out->data)[i] = (int32_t)in[0].shape[i];
    return KB_OK;
}

kb_status kb_cpu_size(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)ex; (void)a; (void)n_in;
    *(int32_t *)out->data = (int32_t)in[0].size;
    return KB_OK;
}

/* print_tensor: "message [v0 v1 ...]" on stdout (all values, numpy-like nesting), then identity. */
kb_status kb_cpu_print_tensor(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)ex; (void)n_in;
    const kb_buf *x = &in[0];
    printf("%s", a->message ? a->message : "");
    if (a->message && *a->message) printf(" ");
    int64_t inner[KB_MAX_RANK + 1];
    inner[x->rank] = 1;
    for (int d = x->rank - 1; d >= 0; --d) inner[d] = inner[d + 1] * x->shape[d];
    for (int d = 0; d < x->rank; ++d) printf("[");
    for (int64_t i = 0; i < x->size; ++i) {
        if (i) {
            int closes = 0;
            for (int d = 0; d < x->rank; ++d)
                if (i % inner[d] == 0) closes++;
            for (int c = 0; c < closes; ++c) printf("]");
            printf(closes ? "\n " : " ");
            for (int c = 0; c < closes; ++c) printf("[");
        }
        printf("%.9g", kb_load_f64(x->data, x->dtype, i));
    }
    for (int d = 0; d < x->rank; ++d) printf("]");
    printf("\n");
    fflush(stdout);
    memcpy(out->data, x->data, (size_t)x->size * kb_dtype_size(x->dtype));
    return KB_OK;
}
