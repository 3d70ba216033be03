/*
 * Convolution and pooling over 2 or 3 spatial dims: conv2d / conv3d (+ their backward-data /
 * backward-filter ops), conv1d (conv2d on an inserted size-1 axis), conv2d_transpose /
 * conv3d_transpose (the backward-data op), depthwise_conv2d (conv2d with groups = in channels),
 * separable convolutions (depthwise then a 1x1 conv2d), pool2d / pool3d (+ their gradient ops). The 2-D and 3-D ops are separate table
 * entries sharing one implementation parameterised by the number of spatial dims nsp (2 or 3);
 * the kernels read nsp from x's rank.
 *
 * Attributes of conv{2,3}d, conv{2,3}d_backprop_input, conv{2,3}d_backprop_filter (kb_attrs.i64),
 * spatial axes in order (d,) h, w:
 *   [0, nsp) strides; [nsp, 2 nsp) dilation; [2 nsp] 1 = 'same' (0 = 'valid');
 *   [2 nsp + 1] 1 = channels_first (NC(D)HW x and y), 0 = channels_last (N(D)HWC).
 *   [2 nsp + 2] groups G (0 or 1 = an ordinary convolution; feature_group_count of TF).
 *   2-D: [0], [1] strides (h, w); [2], [3] dilation (h, w); [4] same; [5] channels_first; [6] G.
 *   The kernel is ((kd,) kh, kw, in / G, out) in both formats; G divides in and out, and output
 *   channel o reads input channels [g * in / G, (g + 1) * in / G) with g = o / (out / G).
 *   depthwise_conv2d is G = C with its (kh, kw, C, M) kernel seen as (kh, kw, 1, C * M): output
 *   channel c * M + m is input channel c times multiplier m (TF's channel-major order).
 * Attributes of pool{2,3}d, pool{2,3}d_grad (kb_attrs.i64):
 *   [0, nsp) pool size; [nsp, 2 nsp) strides; [2 nsp] 1 = 'same'; [2 nsp + 1] 1 = channels_first;
 *   [2 nsp + 2] 0 = max, 1 = avg. 2-D: [0], [1] pool size; [2], [3] strides; [4]; [5]; [6].
 *
 * 'same' padding follows TF: out = ceil(in / s), pad_total = max((out - 1) s + k_eff - in, 0),
 * pad_before = pad_total / 2, the odd extra at the end (back / bottom / right). The pads are
 * computed from the concrete shapes at plan time (infer) and by the kernels (cpu/cpu_conv.c,
 * kernels/conv.cu, which repeat the formula), so spatial dims may be unknown when the graph is
 * built. cuDNN takes symmetric pads only: the CUDA launchers pad the input by the odd extra
 * plane / row / column in a scratch buffer (kernels/conv.cu).
 *
 * Ops and inputs (N = 2 or 3):
 *   convNd(x, kernel) -> y
 *   convNd_backprop_input(x, kernel, dy) -> dx      (x gives the shape only)
 *   convNd_backprop_filter(x, kernel, dy) -> dkernel (kernel gives the shape only)
 *   poolNd(x) -> y;  poolNd_grad(x, y, dy) -> dx   (max: dy goes to the first maximum of each
 *     window in row-major order; avg: dy / (unpadded cells) to each unpadded cell)
 */
#include <stdio.h>

#include "cpu/cpu_kernels.h"
#include "ops/ops_common.h"

/* Attribute positions for nsp spatial dims (layouts above). */
#define A_SAME(nsp) (2 * (nsp))
#define A_CF(nsp) (2 * (nsp) + 1)
#define A_AVG(nsp) (2 * (nsp) + 2)
#define A_GROUPS(nsp) (2 * (nsp) + 2)

enum { FWD_OP = 0, BWD_INPUT_OP = 1, BWD_FILTER_OP = 2 };
/* The conv ops of each spatial rank (row nsp - 2) and direction. */
static const kb_op_id conv_ops[2][3] = {
    {KB_OP_CONV2D, KB_OP_CONV2D_BACKPROP_INPUT, KB_OP_CONV2D_BACKPROP_FILTER},
    {KB_OP_CONV3D, KB_OP_CONV3D_BACKPROP_INPUT, KB_OP_CONV3D_BACKPROP_FILTER}};
static const char *const conv_names[2][3] = {{"conv2d", "conv2d_backprop_input", "conv2d_backprop_filter"},
                                             {"conv3d", "conv3d_backprop_input", "conv3d_backprop_filter"}};

/* Spatial dims of a conv / pool node from its op. */
static int node_nsp(const kb_tensor *n) {
    switch (n->op) {
    case KB_OP_CONV3D:
    case KB_OP_CONV3D_BACKPROP_INPUT:
    case KB_OP_CONV3D_BACKPROP_FILTER:
    case KB_OP_POOL3D:
    case KB_OP_POOL3D_GRAD: return 3;
    default: return 2;
    }
}

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

/* ---- conv2d, conv3d -------------------------------------------------------------------------- */

/* x and kernel: rank nsp + 2, one float dtype, matching input channels; *y = the conv output. */
static kb_status conv_shapes(const char *op, int nsp, const kb_attrs *a, const kb_desc *x, const kb_desc *k,
                             kb_desc *y) {
    KB_TRY(kb_require_float_any(op, "x", x->dtype));
    char s1[160], s2[160];
    if (x->rank != nsp + 2 || k->rank != nsp + 2)
        return kb_set_error(KB_ERR_SHAPE, "%s: x and kernel must be %d-D, got %s and %s", op, nsp + 2,
                            kb_shape_str(x, s1, sizeof s1), kb_shape_str(k, s2, sizeof s2));
    if (k->dtype != x->dtype)
        return kb_set_error(KB_ERR_DTYPE, "%s: kernel dtype %s differs from x dtype %s", op, kb_dtype_name(k->dtype),
                            kb_dtype_name(x->dtype));
    int cf = a->i64[A_CF(nsp)] != 0, same = (int)a->i64[A_SAME(nsp)];
    int c_ax = cf ? 1 : nsp + 1, sp_ax = cf ? 2 : 1;
    int64_t G = a->i64[A_GROUPS(nsp)] > 1 ? a->i64[A_GROUPS(nsp)] : 1;
    if (x->shape[c_ax] >= 0 && k->shape[nsp] >= 0 && x->shape[c_ax] != k->shape[nsp] * G)
        return kb_set_error(KB_ERR_SHAPE, "%s: x %s has %lld input channels, kernel %s expects %lld", op,
                            kb_shape_str(x, s1, sizeof s1), (long long)x->shape[c_ax], kb_shape_str(k, s2, sizeof s2),
                            (long long)(k->shape[nsp] * G));
    if (k->shape[nsp + 1] >= 0 && k->shape[nsp + 1] % G != 0)
        return kb_set_error(KB_ERR_SHAPE, "%s: kernel %s has %lld output channels, not a multiple of %lld groups", op,
                            kb_shape_str(k, s2, sizeof s2), (long long)k->shape[nsp + 1], (long long)G);
    kb_desc o = *x;
    o.shape[c_ax] = k->shape[nsp + 1];
    for (int i = 0; i < nsp; ++i) {
        int64_t in = x->shape[sp_ax + i], kk = k->shape[i], st = a->i64[i], dl = a->i64[nsp + i];
        if (kk == 0) return kb_set_error(KB_ERR_SHAPE, "%s: kernel %s has an empty window", op, kb_shape_str(k, s2, sizeof s2));
        if (kk < 0) {
            o.shape[sp_ax + i] = in >= 0 && same ? out_dim(in, 1, st, 1) : KB_NONE;
            continue;
        }
        int64_t k_eff = (kk - 1) * dl + 1;
        o.shape[sp_ax + i] = out_dim(in, k_eff, st, same);
        if (o.shape[sp_ax + i] == -2) return negative_dim(op, in, k_eff);
    }
    KB_TRY(kb_check_size(op, &o));
    *y = o;
    return KB_OK;
}

/* The backward ops: dy must have conv(x, kernel)'s shape; the result is input `which`'s desc. */
static kb_status infer_conv_backprop(const char *op, int nsp, const kb_attrs *a, const kb_desc *in, kb_desc *out,
                                     int which) {
    kb_desc y;
    KB_TRY(conv_shapes(op, nsp, a, &in[0], &in[1], &y));
    if (in[2].dtype != in[0].dtype || in[2].rank != nsp + 2)
        return kb_set_error(KB_ERR_SHAPE, "%s: dy must be a %d-D %s tensor", op, nsp + 2, kb_dtype_name(in[0].dtype));
    for (int d = 0; d < nsp + 2; ++d)
        if (in[2].shape[d] >= 0 && y.shape[d] >= 0 && in[2].shape[d] != y.shape[d]) {
            char s1[160], s2[160];
            return kb_set_error(KB_ERR_SHAPE, "%s: dy %s does not match the convolution output %s", op,
                                kb_shape_str(&in[2], s1, sizeof s1), kb_shape_str(&y, s2, sizeof s2));
        }
    *out = in[which];
    return KB_OK;
}

/* The infer rules of the six conv entries. */
#define CONV_INFER(N)                                                                                         \
    static kb_status infer_conv##N##d(const char *op, const kb_attrs *a, const kb_desc *in, int n_in,          \
                                      kb_desc *out) {                                                         \
        (void)n_in;                                                                                           \
        return conv_shapes(op, N, a, &in[0], &in[1], out);                                                    \
    }                                                                                                         \
    static kb_status infer_backprop_input##N(const char *op, const kb_attrs *a, const kb_desc *in, int n_in,   \
                                             kb_desc *out) {                                                  \
        (void)n_in;                                                                                           \
        return infer_conv_backprop(op, N, a, in, out, 0);                                                     \
    }                                                                                                         \
    static kb_status infer_backprop_filter##N(const char *op, const kb_attrs *a, const kb_desc *in, int n_in,  \
                                              kb_desc *out) {                                                 \
        (void)n_in;                                                                                           \
        return infer_conv_backprop(op, N, a, in, out, 1);                                                     \
    }
CONV_INFER(2)
CONV_INFER(3)

static kb_tensor *node3(const char *fn, kb_op_id op, kb_tensor *a, kb_tensor *b, kb_tensor *c, const kb_attrs *at) {
    kb_tensor *in[3] = {a, b, c};
    return kb_node(fn, op, in, 3, at);
}

/* conv op of direction dir with the spatial rank and attributes of node n. */
static kb_tensor *conv_like(const kb_tensor *n, int dir, kb_tensor *a, kb_tensor *b, kb_tensor *c) {
    int r = node_nsp(n) - 2;
    if (dir == FWD_OP) {
        kb_tensor *in2[2] = {a, b};
        return kb_node(conv_names[r][dir], conv_ops[r][dir], in2, 2, &n->attrs);
    }
    return node3(conv_names[r][dir], conv_ops[r][dir], a, b, c, &n->attrs);
}

static kb_status grad_conv(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *x = n->in[0], *k = n->in[1];
    dx[0] = conv_like(n, BWD_INPUT_OP, x, k, dy);
    dx[1] = conv_like(n, BWD_FILTER_OP, x, k, dy);
    return dx[0] && dx[1] ? KB_OK : kb_last_status();
}
/* dx = backprop_input(k, dy) is bilinear in (k, dy); x gives only its shape. For an upstream g
 * (x's shape): d<g, dx>/d dy = conv(g, k), d<g, dx>/d k = backprop_filter(g, dy). */
static kb_status grad_backprop_input(kb_tensor *n, kb_tensor *g, kb_tensor **dx) {
    kb_tensor *k = n->in[1], *dy = n->in[2];
    dx[0] = NULL;
    dx[1] = conv_like(n, BWD_FILTER_OP, g, k, dy);
    dx[2] = conv_like(n, FWD_OP, g, k, NULL);
    return dx[1] && dx[2] ? KB_OK : kb_last_status();
}
/* dk = backprop_filter(x, dy) is bilinear in (x, dy); for an upstream g (kernel's shape):
 * d<g, dk>/d x = backprop_input(g, dy), d<g, dk>/d dy = conv(x, g). */
static kb_status grad_backprop_filter(kb_tensor *n, kb_tensor *g, kb_tensor **dx) {
    kb_tensor *x = n->in[0], *dy = n->in[2];
    dx[0] = conv_like(n, BWD_INPUT_OP, x, g, dy);
    dx[1] = NULL;
    dx[2] = conv_like(n, FWD_OP, x, g, NULL);
    return dx[0] && dx[2] ? KB_OK : kb_last_status();
}

const kb_op_def kb_opdef_conv2d = {"conv2d", 2, 0, infer_conv2d, grad_conv, kb_cpu_conv2d, KB_CUDA_KERNEL(conv2d)};
const kb_op_def kb_opdef_conv2d_backprop_input = {"conv2d_backprop_input", 3, KB_OPF_INTERNAL, infer_backprop_input2,
                                                  grad_backprop_input, kb_cpu_conv2d_backprop_input,
                                                  KB_CUDA_KERNEL(conv2d_backprop_input)};
const kb_op_def kb_opdef_conv2d_backprop_filter = {"conv2d_backprop_filter", 3, KB_OPF_INTERNAL, infer_backprop_filter2,
                                                   grad_backprop_filter, kb_cpu_conv2d_backprop_filter,
                                                   KB_CUDA_KERNEL(conv2d_backprop_filter)};
const kb_op_def kb_opdef_conv3d = {"conv3d", 2, 0, infer_conv3d, grad_conv, kb_cpu_conv3d, KB_CUDA_KERNEL(conv3d)};
const kb_op_def kb_opdef_conv3d_backprop_input = {"conv3d_backprop_input", 3, KB_OPF_INTERNAL, infer_backprop_input3,
                                                  grad_backprop_input, kb_cpu_conv3d_backprop_input,
                                                  KB_CUDA_KERNEL(conv3d_backprop_input)};
const kb_op_def kb_opdef_conv3d_backprop_filter = {"conv3d_backprop_filter", 3, KB_OPF_INTERNAL, infer_backprop_filter3,
                                                   grad_backprop_filter, kb_cpu_conv3d_backprop_filter,
                                                   KB_CUDA_KERNEL(conv3d_backprop_filter)};

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

/* v[first .. first + n) positive integers (v NULL = all 1) into dst[0 .. n); the message names
 * the argument's own index. */
static int read_positive_at(const char *fn, const char *arg, const int64_t *v, int first, int n, int64_t *dst) {
    for (int i = 0; i < n; ++i) {
        dst[i] = v ? v[first + i] : 1;
        if (dst[i] < 1 || dst[i] > KB_MAX_ELEMS) {
            kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: %s[%d] = %lld must be a positive integer", fn, arg, first + i,
                         (long long)dst[i]);
            return 0;
        }
    }
    return 1;
}
static int read_positive(const char *fn, const char *arg, const int64_t *v, int n, int64_t *dst) {
    return read_positive_at(fn, arg, v, 0, n, dst);
}

static int check_rank(const char *fn, const char *arg, kb_tensor *x, int rank) {
    if (x->desc.rank == rank) return 1;
    char s[160];
    kb_set_error(KB_ERR_SHAPE, "%s: %s must be %d-D, got shape %s", fn, arg, rank, kb_shape_str(&x->desc, s, sizeof s));
    return 0;
}

/* tf.nn.convolution's rule: no stride > 1 together with a dilation > 1 (any axes). */
static int check_stride_dilation(const char *fn, int nsp, const int64_t *s, const int64_t *d) {
    int strided = 0, dilated = 0;
    for (int i = 0; i < nsp; ++i) strided |= s[i] > 1, dilated |= d[i] > 1;
    if (!(strided && dilated)) return 1;
    kb_set_error(KB_ERR_INVALID_ARGUMENT,
                 "%s: strides > 1 not supported in conjunction with dilation_rate > 1 (tf.nn.convolution)", fn);
    return 0;
}

/* Conv attributes for nsp spatial dims (layout at the top). */
static kb_attrs conv_attrs(int nsp, const int64_t *s, const int64_t *d, int same, int cf) {
    kb_attrs a;
    memset(&a, 0, sizeof a);
    for (int i = 0; i < nsp; ++i) {
        a.i64[i] = s[i];
        a.i64[nsp + i] = d[i];
    }
    a.i64[A_SAME(nsp)] = same;
    a.i64[A_CF(nsp)] = cf;
    return a;
}

static kb_tensor *conv_node(const char *fn, int nsp, kb_tensor *x, kb_tensor *kernel, const int64_t *s, int same,
                            int cf, const int64_t *d) {
    if (!check_stride_dilation(fn, nsp, s, d)) return NULL;
    kb_attrs a = conv_attrs(nsp, s, d, same, cf);
    kb_tensor *in[2] = {x, kernel};
    return kb_node(fn, conv_ops[nsp - 2][FWD_OP], in, 2, &a);
}
static kb_tensor *conv2d_node(const char *fn, kb_tensor *x, kb_tensor *kernel, const int64_t s[2], int same, int cf,
                              const int64_t d[2]) {
    return conv_node(fn, 2, x, kernel, s, same, cf, d);
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

kb_tensor *kb_conv3d(kb_tensor *x, kb_tensor *kernel, const int64_t strides[3], kb_padding padding,
                     kb_data_format_arg data_format, const int64_t dilation_rate[3]) {
    const char *fn = "kb_conv3d";
    if (!kb_check_tensor(fn, "x", x) || !kb_check_tensor(fn, "kernel", kernel)) return NULL;
    int cf = channels_first(fn, x, data_format);
    int64_t s[3], d[3];
    if (cf < 0 || !check_padding(fn, padding, 0) || !read_positive(fn, "strides", strides, 3, s) ||
        !read_positive(fn, "dilation_rate", dilation_rate, 3, d) || !check_rank(fn, "x", x, 5) ||
        !check_rank(fn, "kernel", kernel, 5))
        return NULL;
    return conv_node(fn, 3, x, kernel, s, padding == KB_PADDING_SAME, cf, d);
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

/* ---- conv2d_transpose, conv3d_transpose ------------------------------------------------------ */

/* convNd_transpose is convNd_backprop_input (TF's conv2d_transpose / conv3d_transpose call exactly
 * that op): the transposed filter (.., out, in) is the conv kernel (.., in', out') with in' = the
 * transpose's output channels and out' = x's channels, and x plays dy. The op's first input only
 * gives the output shape; it is a (batch, 1, ..., 1) slice of x tiled to output_shape (so an
 * unknown batch is x's at run time, as Keras' shape(x)[0]), which costs one output-sized fill. The
 * gradient is the op's own rule (conv for x, backprop_filter for the kernel). Arguments already
 * checked except output_shape. */
static kb_tensor *transpose_node(const char *fn, int nsp, kb_tensor *x, kb_tensor *kernel,
                                 const int64_t *output_shape, const int64_t *s, int same, int cf, const int64_t *d) {
    int64_t os[5] = {1, 1, 1, 1, 1};
    if (!read_positive_at(fn, "output_shape", output_shape, 1, nsp + 1, os + 1)) return NULL;
    int64_t xn = x->desc.shape[0];
    if (output_shape[0] != KB_NONE && (output_shape[0] < 0 || (xn >= 0 && output_shape[0] != xn))) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: output_shape[0] = %lld must be KB_NONE or x's batch size %lld", fn,
                     (long long)output_shape[0], (long long)xn);
        return NULL;
    }
    int r = nsp + 2;
    int64_t start[5] = {0, 0, 0, 0, 0}, size[5] = {-1, 1, 1, 1, 1}, reps[5] = {1, 1, 1, 1, 1};
    for (int i = 1; i < r; ++i) reps[i] = os[i];
    kb_tensor *shape_of = kb_tile(kb_slice(x, start, size, r), reps, r);
    if (!shape_of) return NULL;
    kb_attrs a = conv_attrs(nsp, s, d, same, cf);
    return node3(fn, conv_ops[nsp - 2][BWD_INPUT_OP], shape_of, kernel, x, &a);
}

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
    int64_t s[2], d[2];
    if (cf < 0 || !check_padding(fn, padding, 0) || !read_positive(fn, "strides", strides, 2, s) ||
        !read_positive(fn, "dilation_rate", dilation_rate, 2, d) || !check_rank(fn, "x", x, 4) ||
        !check_rank(fn, "kernel", kernel, 4))
        return NULL;
    if (d[0] != d[1]) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: dilation_rate (%lld, %lld) must be equal in H and W "
                     "(tf.nn.atrous_conv2d_transpose)", fn, (long long)d[0], (long long)d[1]);
        return NULL;
    }
    if (!check_stride_dilation(fn, 2, s, d)) return NULL;
    return transpose_node(fn, 2, x, kernel, output_shape, s, padding == KB_PADDING_SAME, cf, d);
}

kb_tensor *kb_conv3d_transpose(kb_tensor *x, kb_tensor *kernel, const int64_t output_shape[5],
                               const int64_t strides[3], kb_padding padding, kb_data_format_arg data_format) {
    const char *fn = "kb_conv3d_transpose";
    if (!kb_check_tensor(fn, "x", x) || !kb_check_tensor(fn, "kernel", kernel)) return NULL;
    if (!output_shape) {
        kb_null_arg(fn, "output_shape");
        return NULL;
    }
    int cf = channels_first(fn, x, data_format);
    int64_t s[3];
    const int64_t d[3] = {1, 1, 1};
    if (cf < 0 || !check_padding(fn, padding, 0) || !read_positive(fn, "strides", strides, 3, s) ||
        !check_rank(fn, "x", x, 5) || !check_rank(fn, "kernel", kernel, 5))
        return NULL;
    return transpose_node(fn, 3, x, kernel, output_shape, s, padding == KB_PADDING_SAME, cf, d);
}

/* ---- depthwise_conv2d, separable_conv2d, separable_conv1d ------------------------------------ */

/* depthwise_conv2d is conv2d with groups G = C (one group per input channel): the kernel
 * (kh, kw, C, M) is reshaped (no copy) to (kh, kw, 1, C * M), whose output channel c * M + m is
 * input channel c times multiplier m, TF's channel-major order. The work is that of a per-channel
 * loop (kh kw M multiply-adds per output pixel and channel); the gradient is conv2d's rule through
 * the grouped backprop ops (the attribute travels with the node). The kernel dims must be known
 * at graph build. */
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
    if (C == 0) {
        kb_set_error(KB_ERR_SHAPE, "%s: depthwise_kernel has no input channels", fn);
        return NULL;
    }
    const int64_t kg[4] = {ks[0], ks[1], 1, C * M};
    kb_tensor *kr = kb_reshape(k, kg, 4);
    if (!kr || !check_stride_dilation(fn, 2, s, d)) return NULL;
    kb_attrs a = conv_attrs(2, s, d, same, cf);
    a.i64[A_GROUPS(2)] = C;
    kb_tensor *in[2] = {x, kr};
    return kb_node(fn, KB_OP_CONV2D, in, 2, &a);
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

/* ---- pool2d, pool3d -------------------------------------------------------------------------- */

static kb_status infer_pool(const char *op, int nsp, const kb_attrs *a, const kb_desc *in, kb_desc *out) {
    KB_TRY(kb_require_float_any(op, "x", in[0].dtype));
    if (in[0].rank != nsp + 2) {
        char s[160];
        return kb_set_error(KB_ERR_SHAPE, "%s: x must be %d-D, got %s", op, nsp + 2, kb_shape_str(&in[0], s, sizeof s));
    }
    kb_desc o = in[0];
    int sp_ax = a->i64[A_CF(nsp)] ? 2 : 1;
    for (int i = 0; i < nsp; ++i) {
        int64_t d = in[0].shape[sp_ax + i];
        o.shape[sp_ax + i] = out_dim(d, a->i64[i], a->i64[nsp + i], (int)a->i64[A_SAME(nsp)]);
        if (o.shape[sp_ax + i] == -2) return negative_dim(op, d, a->i64[i]);
    }
    *out = o;
    return KB_OK;
}

/* poolNd_grad(x, y, dy): y and dy have poolNd(x)'s shape; the result has x's. */
static kb_status infer_pool_grad(const char *op, int nsp, const kb_attrs *a, const kb_desc *in, kb_desc *out) {
    kb_desc y;
    KB_TRY(infer_pool(op, nsp, a, in, &y));
    for (int j = 1; j < 3; ++j) {
        int bad = in[j].dtype != in[0].dtype || in[j].rank != nsp + 2;
        for (int d = 0; d < nsp + 2 && !bad; ++d)
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

#define POOL_INFER(N)                                                                                        \
    static kb_status infer_pool##N##d(const char *op, const kb_attrs *a, const kb_desc *in, int n_in,         \
                                      kb_desc *out) {                                                        \
        (void)n_in;                                                                                          \
        return infer_pool(op, N, a, in, out);                                                                \
    }                                                                                                        \
    static kb_status infer_pool##N##d_grad(const char *op, const kb_attrs *a, const kb_desc *in, int n_in,    \
                                           kb_desc *out) {                                                   \
        (void)n_in;                                                                                          \
        return infer_pool_grad(op, N, a, in, out);                                                           \
    }
POOL_INFER(2)
POOL_INFER(3)

static kb_status grad_pool(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    int three = node_nsp(n) == 3;
    dx[0] = node3(three ? "pool3d_grad" : "pool2d_grad", three ? KB_OP_POOL3D_GRAD : KB_OP_POOL2D_GRAD, n->in[0], n,
                  dy, &n->attrs);
    return dx[0] ? KB_OK : kb_last_status();
}
/* poolNd_grad is linear in dy and piecewise constant in x (max: which cell is the first maximum)
 * or independent of it (avg). Avg: d<g, dx>/d dy = avg poolNd(g). Max would need "g at each
 * window's first maximum", an op kb does not have: the second derivative of max pooling is
 * refused. */
static kb_status grad_pool_grad(kb_tensor *n, kb_tensor *g, kb_tensor **dx) {
    int nsp = node_nsp(n);
    if (n->attrs.i64[A_AVG(nsp)] != 1)
        return kb_set_error(KB_ERR_NOT_SUPPORTED, "kb_gradients: the second derivative of max pooling is not supported");
    dx[0] = dx[1] = NULL;
    dx[2] = kb_node(nsp == 3 ? "pool3d" : "pool2d", nsp == 3 ? KB_OP_POOL3D : KB_OP_POOL2D, &g, 1, &n->attrs);
    return dx[2] ? KB_OK : kb_last_status();
}

const kb_op_def kb_opdef_pool2d = {"pool2d", 1, 0, infer_pool2d, grad_pool, kb_cpu_pool2d, KB_CUDA_KERNEL(pool2d)};
const kb_op_def kb_opdef_pool2d_grad = {"pool2d_grad", 3, KB_OPF_INTERNAL, infer_pool2d_grad, grad_pool_grad,
                                        kb_cpu_pool2d_grad, KB_CUDA_KERNEL(pool2d_grad)};
const kb_op_def kb_opdef_pool3d = {"pool3d", 1, 0, infer_pool3d, grad_pool, kb_cpu_pool3d, KB_CUDA_KERNEL(pool3d)};
const kb_op_def kb_opdef_pool3d_grad = {"pool3d_grad", 3, KB_OPF_INTERNAL, infer_pool3d_grad, grad_pool_grad,
                                        kb_cpu_pool3d_grad, KB_CUDA_KERNEL(pool3d_grad)};

static kb_tensor *pool_node(const char *fn, int nsp, kb_tensor *x, const int64_t *pool_size, const int64_t *strides,
                            kb_padding padding, kb_data_format_arg data_format, kb_pool_mode pool_mode) {
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    if (!pool_size) {
        kb_null_arg(fn, "pool_size");
        return NULL;
    }
    int cf = channels_first(fn, x, data_format);
    int64_t k[3], s[3];
    if (cf < 0 || !check_padding(fn, padding, 0) || !read_positive(fn, "pool_size", pool_size, nsp, k) ||
        !read_positive(fn, "strides", strides, nsp, s) || !check_rank(fn, "x", x, nsp + 2))
        return NULL;
    if (pool_mode != KB_POOL_MAX && pool_mode != KB_POOL_AVG) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: Invalid pool_mode: %d", fn, (int)pool_mode);
        return NULL;
    }
    kb_attrs a;
    memset(&a, 0, sizeof a);
    for (int i = 0; i < nsp; ++i) {
        a.i64[i] = k[i];
        a.i64[nsp + i] = s[i];
    }
    a.i64[A_SAME(nsp)] = padding == KB_PADDING_SAME;
    a.i64[A_CF(nsp)] = cf;
    a.i64[A_AVG(nsp)] = pool_mode == KB_POOL_AVG;
    return kb_node(fn, nsp == 3 ? KB_OP_POOL3D : KB_OP_POOL2D, &x, 1, &a);
}

kb_tensor *kb_pool2d(kb_tensor *x, const int64_t pool_size[2], const int64_t strides[2], kb_padding padding,
                     kb_data_format_arg data_format, kb_pool_mode pool_mode) {
    return pool_node("kb_pool2d", 2, x, pool_size, strides, padding, data_format, pool_mode);
}

kb_tensor *kb_pool3d(kb_tensor *x, const int64_t pool_size[3], const int64_t strides[3], kb_padding padding,
                     kb_data_format_arg data_format, kb_pool_mode pool_mode) {
    return pool_node("kb_pool3d", 3, x, pool_size, strides, padding, data_format, pool_mode);
}
