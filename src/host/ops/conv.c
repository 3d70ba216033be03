/*
 * Convolution and pooling: conv2d (+ its backward-data / backward-filter ops), conv1d (conv2d on
 * an inserted size-1 axis), pool2d (+ pool2d_grad).
 *
 * Attributes of conv2d, conv2d_backprop_input, conv2d_backprop_filter (kb_attrs.i64):
 *   [0], [1] strides (h, w); [2], [3] dilation (h, w); [4] 1 = 'same' (0 = 'valid');
 *   [5] 1 = channels_first (NCHW x and y), 0 = channels_last (NHWC). The kernel is (kh, kw, in, out)
 *   in both formats.
 * Attributes of pool2d, pool2d_grad (kb_attrs.i64):
 *   [0], [1] pool size (h, w); [2], [3] strides (h, w); [4] 1 = 'same'; [5] 1 = channels_first;
 *   [6] 0 = max, 1 = avg.
 *
 * 'same' padding follows TF: out = ceil(in / s), pad_total = max((out - 1) s + k_eff - in, 0),
 * pad_before = pad_total / 2, the odd extra at the end (bottom / right). The pads are computed
 * from the concrete shapes at plan time (infer) and by the kernels (cpu/cpu_conv.c,
 * kernels/conv.cu, which repeat the formula), so spatial dims may be unknown when the graph is
 * built. cuDNN takes symmetric pads only: the CUDA launchers pad the input by the odd extra row /
 * column in a scratch buffer (kernels/conv.cu).
 *
 * Ops and inputs:
 *   conv2d(x, kernel) -> y
 *   conv2d_backprop_input(x, kernel, dy) -> dx      (x gives the shape only)
 *   conv2d_backprop_filter(x, kernel, dy) -> dkernel (kernel gives the shape only)
 *   pool2d(x) -> y;  pool2d_grad(x, y, dy) -> dx   (max: dy goes to the first maximum of each
 *     window in row-major order; avg: dy / (unpadded cells) to each unpadded cell)
 */
#include <stdio.h>

#include "cpu/cpu_kernels.h"
#include "ops/ops_common.h"

/* Output size of one spatial axis, or KB_NONE when the input size is unknown; -2 when 'valid'
 * leaves no room for the (dilated) window. */
static int64_t out_dim(int64_t in, int64_t k_eff, int64_t s, int same) {
    if (in < 0) return KB_NONE;
    if (same) return (in + s - 1) / s;
    if (in < k_eff) return -2;
    return (in - k_eff) / s + 1;
}

static kb_status negative_dim(const char *op, int64_t in, int64_t k_eff) {
    return kb_set_error(KB_ERR_SHAPE, "%s: Negative dimension size caused by subtracting %lld from %lld", op,
                        (long long)k_eff, (long long)in);
}

/* ---- conv2d --------------------------------------------------------------------------------- */

/* x and kernel: rank 4, one float dtype, matching input channels; *y = the conv2d output. */
static kb_status conv_shapes(const char *op, const kb_attrs *a, const kb_desc *x, const kb_desc *k, kb_desc *y) {
    KB_TRY(kb_require_float_any(op, "x", x->dtype));
    char s1[160], s2[160];
    if (x->rank != 4 || k->rank != 4)
        return kb_set_error(KB_ERR_SHAPE, "%s: x and kernel must be 4-D, got %s and %s", op,
                            kb_shape_str(x, s1, sizeof s1), kb_shape_str(k, s2, sizeof s2));
    if (k->dtype != x->dtype)
        return kb_set_error(KB_ERR_DTYPE, "%s: kernel dtype %s differs from x dtype %s", op, kb_dtype_name(k->dtype),
                            kb_dtype_name(x->dtype));
    int cf = a->i64[5] != 0, c_ax = cf ? 1 : 3, h_ax = cf ? 2 : 1;
    if (x->shape[c_ax] >= 0 && k->shape[2] >= 0 && x->shape[c_ax] != k->shape[2])
        return kb_set_error(KB_ERR_SHAPE, "%s: x %s has %lld input channels, kernel %s expects %lld", op,
                            kb_shape_str(x, s1, sizeof s1), (long long)x->shape[c_ax], kb_shape_str(k, s2, sizeof s2),
                            (long long)k->shape[2]);
    kb_desc o = *x;
    o.shape[c_ax] = k->shape[3];
    for (int i = 0; i < 2; ++i) {
        int64_t in = x->shape[h_ax + i], kk = k->shape[i];
        if (kk == 0) return kb_set_error(KB_ERR_SHAPE, "%s: kernel %s has an empty window", op, kb_shape_str(k, s2, sizeof s2));
        if (kk < 0) {
            o.shape[h_ax + i] = in >= 0 && a->i64[4] ? out_dim(in, 1, a->i64[i], 1) : KB_NONE;
            continue;
        }
        int64_t k_eff = (kk - 1) * a->i64[2 + i] + 1;
        o.shape[h_ax + i] = out_dim(in, k_eff, a->i64[i], (int)a->i64[4]);
        if (o.shape[h_ax + i] == -2) return negative_dim(op, in, k_eff);
    }
    KB_TRY(kb_check_size(op, &o));
    *y = o;
    return KB_OK;
}

static kb_status infer_conv2d(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    return conv_shapes(op, a, &in[0], &in[1], out);
}

/* The backward ops: dy must have conv2d(x, kernel)'s shape; the result is input `which`'s desc. */
static kb_status infer_conv_backprop(const char *op, const kb_attrs *a, const kb_desc *in, kb_desc *out, int which) {
    kb_desc y;
    KB_TRY(conv_shapes(op, a, &in[0], &in[1], &y));
    if (in[2].dtype != in[0].dtype || in[2].rank != 4)
        return kb_set_error(KB_ERR_SHAPE, "%s: dy must be a 4-D %s tensor", op, kb_dtype_name(in[0].dtype));
    for (int d = 0; d < 4; ++d)
        if (in[2].shape[d] >= 0 && y.shape[d] >= 0 && in[2].shape[d] != y.shape[d]) {
            char s1[160], s2[160];
            return kb_set_error(KB_ERR_SHAPE, "%s: dy %s does not match the convolution output %s", op,
                                kb_shape_str(&in[2], s1, sizeof s1), kb_shape_str(&y, s2, sizeof s2));
        }
    *out = in[which];
    return KB_OK;
}
static kb_status infer_backprop_input(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    return infer_conv_backprop(op, a, in, out, 0);
}
static kb_status infer_backprop_filter(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    return infer_conv_backprop(op, a, in, out, 1);
}

static kb_tensor *node3(const char *fn, kb_op_id op, kb_tensor *a, kb_tensor *b, kb_tensor *c, const kb_attrs *at) {
    kb_tensor *in[3] = {a, b, c};
    return kb_node(fn, op, in, 3, at);
}

static kb_status grad_conv2d(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *x = n->in[0], *k = n->in[1];
    dx[0] = node3("conv2d_backprop_input", KB_OP_CONV2D_BACKPROP_INPUT, x, k, dy, &n->attrs);
    dx[1] = node3("conv2d_backprop_filter", KB_OP_CONV2D_BACKPROP_FILTER, x, k, dy, &n->attrs);
    return dx[0] && dx[1] ? KB_OK : kb_last_status();
}
/* dx = backprop_input(k, dy) is bilinear in (k, dy); x gives only its shape. For an upstream g
 * (x's shape): d<g, dx>/d dy = conv2d(g, k), d<g, dx>/d k = backprop_filter(g, dy). */
static kb_status grad_backprop_input(kb_tensor *n, kb_tensor *g, kb_tensor **dx) {
    kb_tensor *x = n->in[0], *k = n->in[1], *dy = n->in[2];
    kb_tensor *in2[2] = {g, k};
    dx[0] = NULL;
    dx[1] = node3("conv2d_backprop_filter", KB_OP_CONV2D_BACKPROP_FILTER, g, k, dy, &n->attrs);
    dx[2] = kb_node("conv2d", KB_OP_CONV2D, in2, 2, &n->attrs);
    (void)x;
    return dx[1] && dx[2] ? KB_OK : kb_last_status();
}
/* dk = backprop_filter(x, dy) is bilinear in (x, dy); for an upstream g (kernel's shape):
 * d<g, dk>/d x = backprop_input(g, dy), d<g, dk>/d dy = conv2d(x, g). */
static kb_status grad_backprop_filter(kb_tensor *n, kb_tensor *g, kb_tensor **dx) {
    kb_tensor *x = n->in[0], *dy = n->in[2];
    kb_tensor *in2[2] = {x, g};
    dx[0] = node3("conv2d_backprop_input", KB_OP_CONV2D_BACKPROP_INPUT, x, g, dy, &n->attrs);
    dx[1] = NULL;
    dx[2] = kb_node("conv2d", KB_OP_CONV2D, in2, 2, &n->attrs);
    return dx[0] && dx[2] ? KB_OK : kb_last_status();
}

const kb_op_def kb_opdef_conv2d = {"conv2d", 2, 0, infer_conv2d, grad_conv2d, kb_cpu_conv2d, KB_CUDA_KERNEL(conv2d)};
const kb_op_def kb_opdef_conv2d_backprop_input = {"conv2d_backprop_input", 3, KB_OPF_INTERNAL, infer_backprop_input,
                                                  grad_backprop_input, kb_cpu_conv2d_backprop_input,
                                                  KB_CUDA_KERNEL(conv2d_backprop_input)};
const kb_op_def kb_opdef_conv2d_backprop_filter = {"conv2d_backprop_filter", 3, KB_OPF_INTERNAL, infer_backprop_filter,
                                                   grad_backprop_filter, kb_cpu_conv2d_backprop_filter,
                                                   KB_CUDA_KERNEL(conv2d_backprop_filter)};

/* ---- public argument checks ----------------------------------------------------------------- */

/* data_format argument -> 1 for channels_first, 0 for channels_last; -1 with the error set. */
static int channels_first(const char *fn, kb_tensor *x, kb_data_format_arg f) {
    if (f == KB_DATA_FORMAT_DEFAULT) return kb_image_data_format(x->ctx) == KB_CHANNELS_FIRST;
    if (f == KB_DATA_FORMAT_CHANNELS_LAST || f == KB_DATA_FORMAT_CHANNELS_FIRST) return f == KB_DATA_FORMAT_CHANNELS_FIRST;
    kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: Unknown data_format: %d", fn, (int)f);
    return -1;
}

static int check_padding(const char *fn, kb_padding p, int causal_ok) {
    if (p == KB_PADDING_VALID || p == KB_PADDING_SAME || (causal_ok && p == KB_PADDING_CAUSAL)) return 1;
    kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: Invalid padding: %d", fn, (int)p);
    return 0;
}

/* n positive integers (NULL = all 1) into dst. */
static int read_positive(const char *fn, const char *arg, const int64_t *v, int n, int64_t *dst) {
    for (int i = 0; i < n; ++i) {
        dst[i] = v ? v[i] : 1;
        if (dst[i] < 1 || dst[i] > KB_MAX_ELEMS) {
            kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: %s[%d] = %lld must be a positive integer", fn, arg, i,
                         (long long)dst[i]);
            return 0;
        }
    }
    return 1;
}

static int check_rank(const char *fn, const char *arg, kb_tensor *x, int rank) {
    if (x->desc.rank == rank) return 1;
    char s[160];
    kb_set_error(KB_ERR_SHAPE, "%s: %s must be %d-D, got shape %s", fn, arg, rank, kb_shape_str(&x->desc, s, sizeof s));
    return 0;
}

static kb_tensor *conv2d_node(const char *fn, kb_tensor *x, kb_tensor *kernel, const int64_t s[2], int same, int cf,
                              const int64_t d[2]) {
    if ((s[0] > 1 || s[1] > 1) && (d[0] > 1 || d[1] > 1)) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT,
                     "%s: strides > 1 not supported in conjunction with dilation_rate > 1 (tf.nn.convolution)", fn);
        return NULL;
    }
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.i64[0] = s[0];
    a.i64[1] = s[1];
    a.i64[2] = d[0];
    a.i64[3] = d[1];
    a.i64[4] = same;
    a.i64[5] = cf;
    kb_tensor *in[2] = {x, kernel};
    return kb_node(fn, KB_OP_CONV2D, in, 2, &a);
}

kb_tensor *kb_conv2d(kb_tensor *x, kb_tensor *kernel, const int64_t strides[2], kb_padding padding,
                     kb_data_format_arg data_format, const int64_t dilation_rate[2]) {
    const char *fn = "kb_conv2d";
    if (!kb_check_tensor(fn, "x", x) || !kb_check_tensor(fn, "kernel", kernel)) return NULL;
    int cf = channels_first(fn, x, data_format);
    int64_t s[2], d[2];
    if (cf < 0 || !check_padding(fn, padding, 0) || !read_positive(fn, "strides", strides, 2, s) ||
        !read_positive(fn, "dilation_rate", dilation_rate, 2, d) || !check_rank(fn, "x", x, 4) ||
        !check_rank(fn, "kernel", kernel, 4))
        return NULL;
    return conv2d_node(fn, x, kernel, s, padding == KB_PADDING_SAME, cf, d);
}

kb_tensor *kb_conv1d(kb_tensor *x, kb_tensor *kernel, int64_t strides, kb_padding padding,
                     kb_data_format_arg data_format, int64_t dilation_rate) {
    const char *fn = "kb_conv1d";
    if (!kb_check_tensor(fn, "x", x) || !kb_check_tensor(fn, "kernel", kernel)) return NULL;
    int cf = channels_first(fn, x, data_format);
    int64_t s[2] = {1, 1}, d[2] = {1, 1};
    if (cf < 0 || !check_padding(fn, padding, 1) || !read_positive(fn, "strides", &strides, 1, &s[1]) ||
        !read_positive(fn, "dilation_rate", &dilation_rate, 1, &d[1]) || !check_rank(fn, "x", x, 3) ||
        !check_rank(fn, "kernel", kernel, 3))
        return NULL;
    if (padding == KB_PADDING_CAUSAL) {
        if (cf) {
            kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: When using causal padding in `conv1d`, `data_format` must be "
                                                  "\"channels_last\" (temporal data).", fn);
            return NULL;
        }
        int64_t k = kernel->desc.shape[0];
        if (k < 0) {
            kb_set_error(KB_ERR_NOT_SUPPORTED, "%s: causal padding needs the kernel length at graph build", fn);
            return NULL;
        }
        if (k == 0) {
            kb_set_error(KB_ERR_SHAPE, "%s: kernel has an empty window", fn);
            return NULL;
        }
        x = kb_temporal_padding(x, dilation_rate * (k - 1), 0);
        padding = KB_PADDING_VALID;
    }
    /* The 1-D axis becomes the width of an image of height 1. */
    kb_tensor *x4 = kb_expand_dims(x, cf ? 2 : 1);
    kb_tensor *k4 = kb_expand_dims(kernel, 0);
    if (!x4 || !k4) return NULL;
    kb_tensor *y = conv2d_node(fn, x4, k4, s, padding == KB_PADDING_SAME, cf, d);
    return y ? kb_squeeze(y, cf ? 2 : 1) : NULL;
}

/* ---- conv2d_transpose ------------------------------------------------------------------------ */

/* conv2d_transpose is conv2d_backprop_input (TF's conv2d_transpose calls exactly that op): the
 * transposed filter (kh, kw, out, in) is conv2d's kernel (kh, kw, in', out') with in' = the
 * transpose's output channels and out' = x's channels, and x plays dy. The op's first input only
 * gives the output shape; it is a (batch, 1, 1, 1) slice of x tiled to output_shape (so an unknown
 * batch is x's at run time, as Keras' shape(x)[0]), which costs one output-sized fill. The
 * gradient is the op's own rule (conv2d for x, conv2d_backprop_filter for the kernel). */
kb_tensor *kb_conv2d_transpose(kb_tensor *x, kb_tensor *kernel, const int64_t output_shape[4],
                               const int64_t strides[2], kb_padding padding, kb_data_format_arg data_format,
                               const int64_t dilation_rate[2]) {
    const char *fn = "kb_conv2d_transpose";
    if (!kb_check_tensor(fn, "x", x) || !kb_check_tensor(fn, "kernel", kernel)) return NULL;
    if (!output_shape) {
        kb_null_arg(fn, "output_shape");
        return NULL;
    }
    int cf = channels_first(fn, x, data_format);
    int64_t s[2], d[2], os[4];
    if (cf < 0 || !check_padding(fn, padding, 0) || !read_positive(fn, "strides", strides, 2, s) ||
        !read_positive(fn, "dilation_rate", dilation_rate, 2, d) ||
        !read_positive(fn, "output_shape", output_shape + 1, 3, os + 1) || !check_rank(fn, "x", x, 4) || !check_rank(fn, "kernel", kernel, 4))
        return NULL;
    if (d[0] != d[1]) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: dilation_rate (%lld, %lld) must be equal in H and W "
                     "(tf.nn.atrous_conv2d_transpose)", fn, (long long)d[0], (long long)d[1]);
        return NULL;
    }
    if ((s[0] > 1 || s[1] > 1) && d[0] > 1) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT,
                     "%s: strides > 1 not supported in conjunction with dilation_rate > 1 (tf.nn.convolution)", fn);
        return NULL;
    }
    int64_t xn = x->desc.shape[0];
    if (output_shape[0] != KB_NONE && (output_shape[0] < 0 || (xn >= 0 && output_shape[0] != xn))) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: output_shape[0] = %lld must be KB_NONE or x's batch size %lld", fn,
                     (long long)output_shape[0], (long long)xn);
        return NULL;
    }
    const int64_t start[4] = {0, 0, 0, 0}, size[4] = {-1, 1, 1, 1}, reps[4] = {1, os[1], os[2], os[3]};
    kb_tensor *shape_of = kb_tile(kb_slice(x, start, size, 4), reps, 4);
    if (!shape_of) return NULL;
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.i64[0] = s[0];
    a.i64[1] = s[1];
    a.i64[2] = d[0];
    a.i64[3] = d[1];
    a.i64[4] = padding == KB_PADDING_SAME;
    a.i64[5] = cf;
    return node3(fn, KB_OP_CONV2D_BACKPROP_INPUT, shape_of, kernel, x, &a);
}

/* ---- depthwise_conv2d, separable_conv2d, separable_conv1d ------------------------------------ */

/* depthwise_conv2d is conv2d with a block-diagonal kernel (kh, kw, C, C * M) whose entry
 * [., ., c, c' * M + m] is depthwise_kernel[., ., c, m] when c == c' and 0 otherwise (built as
 * kernel (kh, kw, C, 1, M) times eye(C) seen as (1, 1, C, C, 1), then reshaped), so the output
 * channels come out channel-major as TF's. The zero taps add exact zeros to finite sums, so the
 * values are those of a per-channel loop (up to summation order); a non-finite input value also
 * reaches the other channels of its pixel as NaN (0 * inf). It costs C times the multiply-adds of a
 * grouped convolution; the gradient is conv2d's (backprop ops) through the multiply and reshapes.
 * The kernel dims must be known at graph build. */
static kb_tensor *depthwise_node(const char *fn, kb_tensor *x, kb_tensor *k, const int64_t s[2], int same, int cf,
                                 const int64_t d[2]) {
    const int64_t *ks = k->desc.shape;
    for (int i = 0; i < 4; ++i)
        if (ks[i] < 0) {
            kb_set_error(KB_ERR_NOT_SUPPORTED, "%s: depthwise_kernel dims must be known at graph build", fn);
            return NULL;
        }
    int64_t C = ks[2], M = ks[3], xc = x->desc.shape[cf ? 1 : 3];
    if (xc >= 0 && xc != C) {
        char s1[160], s2[160];
        kb_set_error(KB_ERR_SHAPE, "%s: x %s has %lld input channels, depthwise_kernel %s expects %lld", fn,
                     kb_shape_str(&x->desc, s1, sizeof s1), (long long)xc, kb_shape_str(&k->desc, s2, sizeof s2),
                     (long long)C);
        return NULL;
    }
    const int64_t k5[5] = {ks[0], ks[1], C, 1, M}, e5[5] = {1, 1, C, C, 1}, kf[4] = {ks[0], ks[1], C, C * M};
    kb_tensor *eye = kb_eye(x->ctx, C, C, k->desc.dtype, NULL);
    kb_tensor *full = eye ? kb_reshape(kb_multiply(kb_reshape(k, k5, 5), kb_reshape(eye, e5, 5)), kf, 4) : NULL;
    return full ? conv2d_node(fn, x, full, s, same, cf, d) : NULL;
}

kb_tensor *kb_depthwise_conv2d(kb_tensor *x, kb_tensor *depthwise_kernel, const int64_t strides[2],
                               kb_padding padding, kb_data_format_arg data_format, const int64_t dilation_rate[2]) {
    const char *fn = "kb_depthwise_conv2d";
    if (!kb_check_tensor(fn, "x", x) || !kb_check_tensor(fn, "depthwise_kernel", depthwise_kernel)) return NULL;
    int cf = channels_first(fn, x, data_format);
    int64_t s[2], d[2];
    if (cf < 0 || !check_padding(fn, padding, 0) || !read_positive(fn, "strides", strides, 2, s) ||
        !read_positive(fn, "dilation_rate", dilation_rate, 2, d) || !check_rank(fn, "x", x, 4) ||
        !check_rank(fn, "depthwise_kernel", depthwise_kernel, 4))
        return NULL;
    if ((s[0] > 1 || s[1] > 1) && (d[0] > 1 || d[1] > 1)) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT,
                     "%s: strides > 1 not supported in conjunction with dilation_rate > 1 (tf.nn.convolution)", fn);
        return NULL;
    }
    return depthwise_node(fn, x, depthwise_kernel, s, padding == KB_PADDING_SAME, cf, d);
}

/* The pointwise step of the separable convolutions: a 1x1 'valid' conv2d with stride 1. TF requires
 * a 1x1 pointwise filter; its input channels must be in * M (conv2d's channel check). */
static kb_tensor *pointwise(const char *fn, kb_tensor *y, kb_tensor *pk, int cf) {
    if (!y) return NULL;
    if (pk->desc.shape[0] != 1 || pk->desc.shape[1] != 1) {
        char s1[160];
        kb_set_error(KB_ERR_SHAPE, "%s: pointwise_kernel %s must have a 1x1 window", fn,
                     kb_shape_str(&pk->desc, s1, sizeof s1));
        return NULL;
    }
    const int64_t one[2] = {1, 1};
    return conv2d_node(fn, y, pk, one, 0, cf, one);
}

/* Checks shared by both separable functions: x and both kernels have rank `rank`. */
static int separable_args(const char *fn, kb_tensor *x, kb_tensor *dk, kb_tensor *pk, kb_padding padding, int rank) {
    return kb_check_tensor(fn, "x", x) && kb_check_tensor(fn, "depthwise_kernel", dk) &&
           kb_check_tensor(fn, "pointwise_kernel", pk) && check_padding(fn, padding, 0) &&
           check_rank(fn, "x", x, rank) &&
           check_rank(fn, "depthwise_kernel", dk, rank) && check_rank(fn, "pointwise_kernel", pk, rank);
}

kb_tensor *kb_separable_conv2d(kb_tensor *x, kb_tensor *depthwise_kernel, kb_tensor *pointwise_kernel,
                               const int64_t strides[2], kb_padding padding, kb_data_format_arg data_format,
                               const int64_t dilation_rate[2]) {
    const char *fn = "kb_separable_conv2d";
    if (!separable_args(fn, x, depthwise_kernel, pointwise_kernel, padding, 4)) return NULL;
    int cf = channels_first(fn, x, data_format);
    int64_t s[2], d[2];
    if (cf < 0 || !read_positive(fn, "strides", strides, 2, s) ||
        !read_positive(fn, "dilation_rate", dilation_rate, 2, d))
        return NULL;
    if ((s[0] > 1 || s[1] > 1) && (d[0] > 1 || d[1] > 1)) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT,
                     "%s: strides > 1 not supported in conjunction with dilation_rate > 1 (tf.nn.convolution)", fn);
        return NULL;
    }
    return pointwise(fn, depthwise_node(fn, x, depthwise_kernel, s, padding == KB_PADDING_SAME, cf, d),
                     pointwise_kernel, cf);
}

kb_tensor *kb_separable_conv1d(kb_tensor *x, kb_tensor *depthwise_kernel, kb_tensor *pointwise_kernel,
                               int64_t strides, kb_padding padding, kb_data_format_arg data_format,
                               int64_t dilation_rate) {
    const char *fn = "kb_separable_conv1d";
    if (!separable_args(fn, x, depthwise_kernel, pointwise_kernel, padding, 3)) return NULL;
    int cf = channels_first(fn, x, data_format);
    int64_t s[2] = {1, 1}, d[2] = {1, 1};
    if (cf < 0 || !read_positive(fn, "strides", &strides, 1, &s[1]) ||
        !read_positive(fn, "dilation_rate", &dilation_rate, 1, &d[1]))
        return NULL;
    if (s[1] > 1 && d[1] > 1) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT,
                     "%s: strides > 1 not supported in conjunction with dilation_rate > 1 (tf.nn.convolution)", fn);
        return NULL;
    }
    /* The 1-D axis becomes the width of an image of height 1. */
    kb_tensor *x4 = kb_expand_dims(x, cf ? 2 : 1);
    kb_tensor *dk4 = kb_expand_dims(depthwise_kernel, 0), *pk4 = kb_expand_dims(pointwise_kernel, 0);
    if (!x4 || !dk4 || !pk4) return NULL;
    kb_tensor *y = pointwise(fn, depthwise_node(fn, x4, dk4, s, padding == KB_PADDING_SAME, cf, d), pk4, cf);
    return y ? kb_squeeze(y, cf ? 2 : 1) : NULL;
}

/* ---- pool2d --------------------------------------------------------------------------------- */

static kb_status infer_pool2d(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    KB_TRY(kb_require_float_any(op, "x", in[0].dtype));
    if (in[0].rank != 4) {
        char s[160];
        return kb_set_error(KB_ERR_SHAPE, "%s: x must be 4-D, got %s", op, kb_shape_str(&in[0], s, sizeof s));
    }
    kb_desc o = in[0];
    int h_ax = a->i64[5] ? 2 : 1;
    for (int i = 0; i < 2; ++i) {
        int64_t d = in[0].shape[h_ax + i];
        o.shape[h_ax + i] = out_dim(d, a->i64[i], a->i64[2 + i], (int)a->i64[4]);
        if (o.shape[h_ax + i] == -2) return negative_dim(op, d, a->i64[i]);
    }
    *out = o;
    return KB_OK;
}

/* pool2d_grad(x, y, dy): y and dy have pool2d(x)'s shape; the result has x's. */
static kb_status infer_pool2d_grad(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    kb_desc y;
    KB_TRY(infer_pool2d(op, a, in, n_in, &y));
    for (int j = 1; j < 3; ++j) {
        int bad = in[j].dtype != in[0].dtype || in[j].rank != 4;
        for (int d = 0; d < 4 && !bad; ++d)
            bad = in[j].shape[d] >= 0 && y.shape[d] >= 0 && in[j].shape[d] != y.shape[d];
        if (bad) {
            char s1[160], s2[160];
            return kb_set_error(KB_ERR_SHAPE, "%s: %s %s does not match the pooling output %s", op, j == 1 ? "y" : "dy",
                                kb_shape_str(&in[j], s1, sizeof s1), kb_shape_str(&y, s2, sizeof s2));
        }
    }
    *out = in[0];
    return KB_OK;
}

static kb_status grad_pool2d(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = node3("pool2d_grad", KB_OP_POOL2D_GRAD, n->in[0], n, dy, &n->attrs);
    return dx[0] ? KB_OK : kb_last_status();
}
/* pool2d_grad is linear in dy and piecewise constant in x (max: which cell is the first maximum)
 * or independent of it (avg). Avg: d<g, dx>/d dy = avg pool2d(g). Max would need "g at each
 * window's first maximum", an op kb does not have: the second derivative of max pooling is
 * refused. */
static kb_status grad_pool2d_grad(kb_tensor *n, kb_tensor *g, kb_tensor **dx) {
    if (n->attrs.i64[6] != 1)
        return kb_set_error(KB_ERR_NOT_SUPPORTED, "kb_gradients: the second derivative of max pooling is not supported");
    dx[0] = dx[1] = NULL;
    dx[2] = kb_node("pool2d", KB_OP_POOL2D, &g, 1, &n->attrs);
    return dx[2] ? KB_OK : kb_last_status();
}

const kb_op_def kb_opdef_pool2d = {"pool2d", 1, 0, infer_pool2d, grad_pool2d, kb_cpu_pool2d, KB_CUDA_KERNEL(pool2d)};
const kb_op_def kb_opdef_pool2d_grad = {"pool2d_grad", 3, KB_OPF_INTERNAL, infer_pool2d_grad, grad_pool2d_grad,
                                        kb_cpu_pool2d_grad, KB_CUDA_KERNEL(pool2d_grad)};

kb_tensor *kb_pool2d(kb_tensor *x, const int64_t pool_size[2], const int64_t strides[2], kb_padding padding,
                     kb_data_format_arg data_format, kb_pool_mode pool_mode) {
    const char *fn = "kb_pool2d";
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    if (!pool_size) {
        kb_null_arg(fn, "pool_size");
        return NULL;
    }
    int cf = channels_first(fn, x, data_format);
    int64_t k[2], s[2];
    if (cf < 0 || !check_padding(fn, padding, 0) || !read_positive(fn, "pool_size", pool_size, 2, k) ||
        !read_positive(fn, "strides", strides, 2, s) || !check_rank(fn, "x", x, 4))
        return NULL;
    if (pool_mode != KB_POOL_MAX && pool_mode != KB_POOL_AVG) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: Invalid pool_mode: %d", fn, (int)pool_mode);
        return NULL;
    }
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.i64[0] = k[0];
    a.i64[1] = k[1];
    a.i64[2] = s[0];
    a.i64[3] = s[1];
    a.i64[4] = padding == KB_PADDING_SAME;
    a.i64[5] = cf;
    a.i64[6] = pool_mode == KB_POOL_AVG;
    return kb_node(fn, KB_OP_POOL2D, &x, 1, &a);
}
