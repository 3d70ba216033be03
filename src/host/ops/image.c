/*
 * Padding and resizing: temporal/spatial_2d/spatial_3d_padding, resize_images, resize_volumes.
 * The public functions place their axes (data_format) and build one of these internal ops:
 *   pad / crop (any dtype): i64[2d], i64[2d+1] = zeros added before / after axis d (pad), or
 *     elements removed there (crop). They are each other's gradient.
 *   resize_nearest (any dtype): i64[d] = integer factor of axis d (1 = unchanged);
 *     out[..., o_d, ...] = in[..., o_d / f_d, ...]. Gradient: resize_nearest_grad (same attrs),
 *     the sum over each f_0 x f_1 x ... block, whose own gradient is resize_nearest.
 *   resize_bilinear (floats): i64[0] = axis h of height (width is h + 1), i64[1] = fh, i64[2] = fw.
 *     Legacy TF1 resize_bilinear (align_corners = False, no half-pixel offset): source row
 *     y / fh, top = floor, bottom = min(top + 1, H - 1), weight (y mod fh) / fh; columns alike.
 *     Gradient: resize_bilinear_grad (same attrs), its adjoint, whose gradient is resize_bilinear.
 */
#include <stdio.h>

#include "cpu/cpu_kernels.h"
#include "ops/ops_common.h"

static kb_tensor *node_with(const char *fn, kb_op_id op, kb_tensor *x, const kb_attrs *a) {
    return kb_node(fn, op, &x, 1, a);
}

/* ---- pad / crop ----------------------------------------------------------------------------- */

static kb_status infer_pad_crop(const char *op, const kb_attrs *a, const kb_desc *in, kb_desc *out, int sign) {
    kb_desc o = in[0];
    for (int d = 0; d < in[0].rank; ++d) {
        int64_t b = a->i64[2 * d], e = a->i64[2 * d + 1];
        if (b < 0 || e < 0 || b > KB_MAX_ELEMS || e > KB_MAX_ELEMS)
            return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: padding (%lld, %lld) of axis %d is negative or too large",
                                op, (long long)b, (long long)e, d);
        if (in[0].shape[d] < 0) continue;
        o.shape[d] = in[0].shape[d] + sign * (b + e);
        if (o.shape[d] < 0)
            return kb_set_error(KB_ERR_SHAPE, "%s: cannot crop %lld + %lld from axis %d of size %lld", op, (long long)b,
                                (long long)e, d, (long long)in[0].shape[d]);
    }
    KB_TRY(kb_check_size(op, &o));
    *out = o;
    return KB_OK;
}
static kb_status infer_pad(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    return infer_pad_crop(op, a, in, out, 1);
}
static kb_status infer_crop(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    return infer_pad_crop(op, a, in, out, -1);
}
static kb_status grad_pad(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = node_with("crop", KB_OP_CROP, dy, &n->attrs);
    return KB_OK;
}
static kb_status grad_crop(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = node_with("pad", KB_OP_PAD, dy, &n->attrs);
    return KB_OK;
}
const kb_op_def kb_opdef_pad = {"pad", 1, KB_OPF_INTERNAL | KB_OPF_CPU_ANY_DTYPE, infer_pad, grad_pad, kb_cpu_pad,
                                KB_CUDA_KERNEL(pad)};
const kb_op_def kb_opdef_crop = {"crop", 1, KB_OPF_INTERNAL | KB_OPF_CPU_ANY_DTYPE, infer_crop, grad_crop,
                                 kb_cpu_crop, KB_CUDA_KERNEL(crop)};

/* data_format argument -> 1 for channels_first, 0 for channels_last; -1 with the error set. */
static int channels_first(const char *fn, kb_tensor *x, kb_data_format_arg f) {
    if (f == KB_DATA_FORMAT_DEFAULT) return kb_image_data_format(x->ctx) == KB_CHANNELS_FIRST;
    if (f == KB_DATA_FORMAT_CHANNELS_LAST || f == KB_DATA_FORMAT_CHANNELS_FIRST) return f == KB_DATA_FORMAT_CHANNELS_FIRST;
    kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: Unknown data_format: %d", fn, (int)f);
    return -1;
}

static int check_rank(const char *fn, kb_tensor *x, int rank) {
    if (x->desc.rank == rank) return 1;
    char s[160];
    kb_set_error(KB_ERR_SHAPE, "%s: x must be %d-D, got shape %s", fn, rank, kb_shape_str(&x->desc, s, sizeof s));
    return 0;
}

/* pairs[2i], pairs[2i+1] pad spatial axis i, the spatial axes starting at `first`. */
static kb_tensor *pad_spatial(const char *fn, kb_tensor *x, const int64_t *pairs, int n_spatial, int first) {
    kb_attrs a;
    memset(&a, 0, sizeof a);
    for (int i = 0; i < 2 * n_spatial; ++i) {
        if (pairs[i] < 0) {
            kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: padding[%d] = %lld is negative", fn, i, (long long)pairs[i]);
            return NULL;
        }
        a.i64[2 * first + i] = pairs[i];
    }
    return node_with(fn, KB_OP_PAD, x, &a);
}

kb_tensor *kb_temporal_padding(kb_tensor *x, int64_t left, int64_t right) {
    const char *fn = "kb_temporal_padding";
    if (!kb_check_tensor(fn, "x", x) || !check_rank(fn, x, 3)) return NULL;
    int64_t p[2] = {left, right};
    return pad_spatial(fn, x, p, 1, 1);
}

kb_tensor *kb_spatial_2d_padding(kb_tensor *x, const int64_t padding[4], kb_data_format_arg data_format) {
    const char *fn = "kb_spatial_2d_padding";
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    if (!padding) {
        kb_null_arg(fn, "padding");
        return NULL;
    }
    int cf = channels_first(fn, x, data_format);
    if (cf < 0 || !check_rank(fn, x, 4)) return NULL;
    return pad_spatial(fn, x, padding, 2, cf ? 2 : 1);
}

kb_tensor *kb_spatial_3d_padding(kb_tensor *x, const int64_t padding[6], kb_data_format_arg data_format) {
    const char *fn = "kb_spatial_3d_padding";
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    if (!padding) {
        kb_null_arg(fn, "padding");
        return NULL;
    }
    int cf = channels_first(fn, x, data_format);
    if (cf < 0 || !check_rank(fn, x, 5)) return NULL;
    return pad_spatial(fn, x, padding, 3, cf ? 2 : 1);
}

/* ---- resize_nearest ------------------------------------------------------------------------- */

static kb_status infer_nearest(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    kb_desc o = in[0];
    for (int d = 0; d < in[0].rank; ++d) {
        int64_t f = a->i64[d];
        if (f < 1 || f > KB_MAX_ELEMS) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: factor %lld of axis %d", op, (long long)f, d);
        if (in[0].shape[d] >= 0 && __builtin_mul_overflow(in[0].shape[d], f, &o.shape[d]))
            return kb_set_error(KB_ERR_SHAPE, "%s: axis %d overflows", op, d);
    }
    KB_TRY(kb_check_size(op, &o));
    *out = o;
    return KB_OK;
}
static kb_status infer_nearest_grad(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    KB_TRY(kb_require_float_any(op, "dy", in[0].dtype));
    kb_desc o = in[0];
    for (int d = 0; d < in[0].rank; ++d) {
        int64_t f = a->i64[d];
        if (f < 1) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: factor %lld of axis %d", op, (long long)f, d);
        if (in[0].shape[d] < 0) continue;
        if (in[0].shape[d] % f)
            return kb_set_error(KB_ERR_SHAPE, "%s: axis %d of size %lld is not a multiple of %lld", op, d,
                                (long long)in[0].shape[d], (long long)f);
        o.shape[d] = in[0].shape[d] / f;
    }
    *out = o;
    return KB_OK;
}
static kb_status grad_nearest(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = kb_dtype_is_float(n->desc.dtype) ? node_with("resize_nearest_grad", KB_OP_RESIZE_NEAREST_GRAD, dy, &n->attrs)
                                             : NULL;
    return KB_OK;
}
static kb_status grad_nearest_grad(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = node_with("resize_nearest", KB_OP_RESIZE_NEAREST, dy, &n->attrs);
    return KB_OK;
}
const kb_op_def kb_opdef_resize_nearest = {"resize_nearest", 1, KB_OPF_INTERNAL | KB_OPF_CPU_ANY_DTYPE, infer_nearest,
                                           grad_nearest, kb_cpu_resize_nearest, KB_CUDA_KERNEL(resize_nearest)};
const kb_op_def kb_opdef_resize_nearest_grad = {"resize_nearest_grad", 1, KB_OPF_INTERNAL, infer_nearest_grad,
                                                grad_nearest_grad, kb_cpu_resize_nearest_grad,
                                                KB_CUDA_KERNEL(resize_nearest_grad)};

/* ---- resize_bilinear ------------------------------------------------------------------------ */

static kb_status infer_bilinear_common(const char *op, const kb_attrs *a, const kb_desc *in, kb_desc *out, int grad) {
    KB_TRY(kb_require_float_any(op, "x", in[0].dtype));
    int h = (int)a->i64[0];
    int64_t f[2] = {a->i64[1], a->i64[2]};
    if (h < 0 || h + 1 >= in[0].rank || f[0] < 1 || f[1] < 1)
        return kb_set_error(KB_ERR_INTERNAL, "%s: bad resize attributes (axis %d, factors %lld, %lld)", op, h,
                            (long long)f[0], (long long)f[1]);
    kb_desc o = in[0];
    for (int i = 0; i < 2; ++i) {
        int64_t s = in[0].shape[h + i];
        if (s < 0) continue;
        if (grad) {
            if (s % f[i])
                return kb_set_error(KB_ERR_SHAPE, "%s: axis %d of size %lld is not a multiple of %lld", op, h + i,
                                    (long long)s, (long long)f[i]);
            o.shape[h + i] = s / f[i];
        } else if (__builtin_mul_overflow(s, f[i], &o.shape[h + i])) {
            return kb_set_error(KB_ERR_SHAPE, "%s: axis %d overflows", op, h + i);
        }
    }
    KB_TRY(kb_check_size(op, &o));
    *out = o;
    return KB_OK;
}
static kb_status infer_bilinear(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    return infer_bilinear_common(op, a, in, out, 0);
}
static kb_status infer_bilinear_grad(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    return infer_bilinear_common(op, a, in, out, 1);
}
static kb_status grad_bilinear(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = node_with("resize_bilinear_grad", KB_OP_RESIZE_BILINEAR_GRAD, dy, &n->attrs);
    return KB_OK;
}
static kb_status grad_bilinear_grad(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = node_with("resize_bilinear", KB_OP_RESIZE_BILINEAR, dy, &n->attrs);
    return KB_OK;
}
const kb_op_def kb_opdef_resize_bilinear = {"resize_bilinear", 1, KB_OPF_INTERNAL, infer_bilinear, grad_bilinear,
                                            kb_cpu_resize_bilinear, KB_CUDA_KERNEL(resize_bilinear)};
const kb_op_def kb_opdef_resize_bilinear_grad = {"resize_bilinear_grad", 1, KB_OPF_INTERNAL, infer_bilinear_grad,
                                                 grad_bilinear_grad, kb_cpu_resize_bilinear_grad,
                                                 KB_CUDA_KERNEL(resize_bilinear_grad)};

static int check_factors(const char *fn, const int64_t *f, int n) {
    for (int i = 0; i < n; ++i)
        if (f[i] < 1) {
            kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: factor %lld must be a positive integer", fn, (long long)f[i]);
            return 0;
        }
    return 1;
}

kb_tensor *kb_resize_images(kb_tensor *x, int64_t height_factor, int64_t width_factor, kb_data_format_arg data_format,
                            kb_interpolation interpolation) {
    const char *fn = "kb_resize_images";
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    int cf = channels_first(fn, x, data_format);
    if (cf < 0 || !check_rank(fn, x, 4)) return NULL;
    if (interpolation != KB_INTERP_NEAREST && interpolation != KB_INTERP_BILINEAR) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: interpolation should be one of \"nearest\" or \"bilinear\".", fn);
        return NULL;
    }
    if (kb_require_float_any(fn, "x", x->desc.dtype) != KB_OK) return NULL;
    int64_t f[2] = {height_factor, width_factor};
    if (!check_factors(fn, f, 2)) return NULL;
    int h = cf ? 2 : 1;
    kb_attrs a;
    memset(&a, 0, sizeof a);
    if (interpolation == KB_INTERP_NEAREST) {
        for (int d = 0; d < 4; ++d) a.i64[d] = 1;
        a.i64[h] = height_factor;
        a.i64[h + 1] = width_factor;
        return node_with(fn, KB_OP_RESIZE_NEAREST, x, &a);
    }
    a.i64[0] = h;
    a.i64[1] = height_factor;
    a.i64[2] = width_factor;
    return node_with(fn, KB_OP_RESIZE_BILINEAR, x, &a);
}

kb_tensor *kb_resize_volumes(kb_tensor *x, int64_t depth_factor, int64_t height_factor, int64_t width_factor,
                             kb_data_format_arg data_format) {
    const char *fn = "kb_resize_volumes";
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    int cf = channels_first(fn, x, data_format);
    if (cf < 0 || !check_rank(fn, x, 5)) return NULL;
    if (kb_require_float_any(fn, "x", x->desc.dtype) != KB_OK) return NULL;
    int64_t f[3] = {depth_factor, height_factor, width_factor};
    if (!check_factors(fn, f, 3)) return NULL;
    kb_attrs a;
    memset(&a, 0, sizeof a);
    for (int d = 0; d < 5; ++d) a.i64[d] = 1;
    for (int i = 0; i < 3; ++i) a.i64[(cf ? 2 : 1) + i] = f[i];
    return node_with(fn, KB_OP_RESIZE_NEAREST, x, &a);
}
