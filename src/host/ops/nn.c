/*
 * Activations and losses: relu (alpha, max_value, threshold), sigmoid, softmax, log_softmax
 * (internal), elu, softplus, softsign, hard_sigmoid, tanh, in_top_k, sigmoid_cross_entropy
 * (internal: binary_crossentropy's logits path); l2_normalize, the three crossentropies and bias_add
 * as composites of table ops. The activations take float16/bfloat16 too (CUDA computes them in
 * float; the CPU executor widens them to float32).
 */
#include <math.h>

#include "cpu/cpu_kernels.h"
#include "ops/ops_common.h"

/* One float input of any width; out = in[0]. */
static kb_status infer_unary_floatany(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)a;
    (void)n_in;
    KB_TRY(kb_require_float_any(op, "x", in[0].dtype));
    *out = in[0];
    return KB_OK;
}
/* Two floats of one dtype (any width), numpy-broadcast. */
static kb_status infer_binary_floatany(const char *op, const kb_attrs *a, const kb_desc *in, int n_in,
                                       kb_desc *out) {
    (void)a;
    (void)n_in;
    KB_TRY(kb_require_float_any(op, "x", in[0].dtype));
    if (in[1].dtype != in[0].dtype)
        return kb_set_error(KB_ERR_DTYPE, "%s: x is %s but y is %s (cast one of them first)", op,
                            kb_dtype_name(in[0].dtype), kb_dtype_name(in[1].dtype));
    return kb_broadcast_desc(op, &in[0], &in[1], out);
}

/* ---- relu ---- */

static kb_status infer_relu(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    if (isnan(a->alpha) || isnan(a->max_value) || isnan(a->threshold))
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: alpha, max_value and threshold must not be NaN", op);
    if (a->max_value < 0)
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: max_value must be >= 0 (or INFINITY for None), got %g", op,
                            a->max_value);
    return n_in == 1 ? infer_unary_floatany(op, a, in, n_in, out) : infer_binary_floatany(op, a, in, n_in, out);
}
static kb_status grad_relu(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *in[2] = {dy, n->in[0]};
    dx[0] = kb_node("relu_grad", KB_OP_RELU_GRAD, in, 2, &n->attrs);
    return KB_OK;
}
/* relu_grad(dy, x) = dy * relu'(x): linear in dy; relu' is piecewise constant, so 0 for x. */
static kb_status grad_relu_grad(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *in[2] = {dy, n->in[1]};
    dx[0] = kb_node("relu_grad", KB_OP_RELU_GRAD, in, 2, &n->attrs);
    dx[1] = NULL;
    return KB_OK;
}
const kb_op_def kb_opdef_relu = {"relu", 1, 0, infer_relu, grad_relu, kb_cpu_relu, KB_CUDA_KERNEL(relu)};
const kb_op_def kb_opdef_relu_grad = {"relu_grad", 2, KB_OPF_INTERNAL, infer_relu, grad_relu_grad, kb_cpu_relu_grad,
                                      KB_CUDA_KERNEL(relu_grad)};

kb_tensor *kb_relu(kb_tensor *x, double alpha, double max_value, double threshold) {
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.alpha = alpha;
    a.max_value = max_value;
    a.threshold = threshold;
    return kb_node("kb_relu", KB_OP_RELU, &x, 1, &a);
}

/* ---- sigmoid ---- */

static kb_status grad_sigmoid(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *one = kb_scalar(n->ctx, 1.0, n->desc.dtype);
    dx[0] = kb_multiply(dy, kb_multiply(n, kb_subtract(one, n)));
    return KB_OK;
}
const kb_op_def kb_opdef_sigmoid = {"sigmoid", 1, 0, infer_unary_floatany, grad_sigmoid, kb_cpu_sigmoid,
                                    KB_CUDA_KERNEL(sigmoid)};
kb_tensor *kb_sigmoid(kb_tensor *x) { return kb_node1("kb_sigmoid", KB_OP_SIGMOID, x); }

/* ---- softmax / log_softmax along one axis ---- */

static kb_status infer_softmax(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    int ax;
    KB_TRY(infer_unary_floatany(op, a, in, n_in, out));
    return kb_norm_axis(op, a->axis, in[0].rank, &ax);
}
/* dx = y * (dy - sum(dy * y, axis)) */
static kb_status grad_softmax(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = kb_multiply(n, kb_subtract(dy, kb_g_sum_keep(kb_multiply(dy, n), n->attrs.axis)));
    return KB_OK;
}
/* dx = dy - softmax(x) * sum(dy, axis) = dy - exp(y) * sum(dy) */
static kb_status grad_log_softmax(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = kb_subtract(dy, kb_multiply(kb_exp(n), kb_g_sum_keep(dy, n->attrs.axis)));
    return KB_OK;
}
const kb_op_def kb_opdef_softmax = {"softmax", 1, 0, infer_softmax, grad_softmax, kb_cpu_softmax,
                                    KB_CUDA_KERNEL(softmax)};
const kb_op_def kb_opdef_log_softmax = {"log_softmax", 1, KB_OPF_INTERNAL, infer_softmax, grad_log_softmax,
                                        kb_cpu_log_softmax, KB_CUDA_KERNEL(log_softmax)};

static kb_tensor *softmax_like(const char *fn, kb_op_id op, kb_tensor *x, int axis) {
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    kb_attrs a;
    memset(&a, 0, sizeof a);
    if (kb_norm_axis(fn, axis, x->desc.rank, &a.axis) != KB_OK) return NULL;
    return kb_node(fn, op, &x, 1, &a);
}
kb_tensor *kb_softmax(kb_tensor *x, int axis) { return softmax_like("kb_softmax", KB_OP_SOFTMAX, x, axis); }
kb_tensor *kb_log_softmax_internal(kb_tensor *x, int axis) {
    return softmax_like("kb_log_softmax", KB_OP_LOG_SOFTMAX, x, axis);
}

/* ---- categorical_crossentropy (composite) ---- */

/*
 * tf.keras 2.3: from_logits: -sum(target * log_softmax(output)). Otherwise, when output is
 * directly a softmax over the same axis, its logits are used (the stable path tf.keras takes);
 * else output is renormalised, clipped to [eps, 1 - eps] and -sum(target * log(output)).
 */
kb_tensor *kb_categorical_crossentropy(kb_tensor *target, kb_tensor *output, int from_logits, int axis) {
    const char *fn = "kb_categorical_crossentropy";
    if (!kb_check_tensor(fn, "target", target) || !kb_check_tensor(fn, "output", output)) return NULL;
    if (kb_require_float_any(fn, "output", output->desc.dtype) != KB_OK) return NULL;
    if (target->desc.dtype != output->desc.dtype) {
        kb_set_error(KB_ERR_DTYPE, "%s: target is %s but output is %s", fn, kb_dtype_name(target->desc.dtype),
                     kb_dtype_name(output->desc.dtype));
        return NULL;
    }
    kb_desc b;
    if (kb_broadcast_desc(fn, &target->desc, &output->desc, &b) != KB_OK) return NULL;
    if (target->desc.rank != output->desc.rank) {
        char s1[128], s2[128];
        kb_set_error(KB_ERR_SHAPE, "%s: target %s and output %s must have the same rank", fn,
                     kb_shape_str(&target->desc, s1, sizeof s1), kb_shape_str(&output->desc, s2, sizeof s2));
        return NULL;
    }
    int ax;
    if (kb_norm_axis(fn, axis, output->desc.rank, &ax) != KB_OK) return NULL;
    kb_tensor *logits = NULL;
    if (from_logits) logits = output;
    else if (output->kind == KB_KIND_OP && output->op == KB_OP_SOFTMAX && output->attrs.axis == ax)
        logits = output->in[0];
    kb_tensor *logp;
    if (logits) {
        logp = kb_log_softmax_internal(logits, ax);
    } else {
        double eps = output->ctx->cfg.epsilon;
        kb_tensor *p = kb_divide(output, kb_g_sum_keep(output, ax));
        logp = kb_log(kb_clip_internal(p, eps, 1.0 - eps));
    }
    return kb_negative(kb_sum(kb_multiply(target, logp), &ax, 1, 0));
}

/* ---- elu, softplus, softsign, hard_sigmoid, tanh ---- */

static kb_tensor *scalar_of(kb_tensor *like, double v) { return kb_scalar(like->ctx, v, like->desc.dtype); }

/* elu' = 1 for x > 0, alpha*exp(x) otherwise (tf.where(x > 0, elu, alpha*elu) picks alpha*elu at 0);
 * exp(min(x, 0)) keeps the unused branch finite so that 0 * it stays 0. */
static kb_status grad_elu(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *x = n->in[0], *zero = scalar_of(x, 0.0);
    kb_tensor *pos = kb_cast(kb_greater(x, zero), x->desc.dtype);
    kb_tensor *neg = kb_subtract(scalar_of(x, 1.0), pos);
    kb_tensor *dneg = kb_multiply(scalar_of(x, n->attrs.alpha), kb_exp(kb_minimum(x, zero)));
    dx[0] = kb_multiply(dy, kb_add(pos, kb_multiply(neg, dneg)));
    return KB_OK;
}
/* softplus' = sigmoid */
static kb_status grad_softplus(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = kb_multiply(dy, kb_sigmoid(n->in[0]));
    return KB_OK;
}
/* softsign' = 1 / (1 + |x|)^2 */
static kb_status grad_softsign(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *x = n->in[0];
    dx[0] = kb_divide(dy, kb_square(kb_add(scalar_of(x, 1.0), kb_abs(x))));
    return KB_OK;
}
/* TF's clip_by_value gradient on t = 0.2x + 0.5: 0.2*dy where 0 <= t <= 1, i.e. -2.5 <= x <= 2.5. */
static kb_status grad_hard_sigmoid(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.lo = -2.5;
    a.hi = 2.5;
    kb_tensor *in[2] = {dy, n->in[0]};
    dx[0] = kb_multiply(scalar_of(dy, 0.2), kb_node("clip_grad", KB_OP_CLIP_GRAD, in, 2, &a));
    return KB_OK;
}
/* tanh' = 1 - y^2 */
static kb_status grad_tanh(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = kb_multiply(dy, kb_subtract(scalar_of(n, 1.0), kb_square(n)));
    return KB_OK;
}
/* attrs.alpha: elu's alpha. */
const kb_op_def kb_opdef_elu = {"elu", 1, 0, infer_unary_floatany, grad_elu, kb_cpu_elu, KB_CUDA_KERNEL(elu)};
const kb_op_def kb_opdef_softplus = {"softplus", 1, 0, infer_unary_floatany, grad_softplus, kb_cpu_softplus,
                                     KB_CUDA_KERNEL(softplus)};
const kb_op_def kb_opdef_softsign = {"softsign", 1, 0, infer_unary_floatany, grad_softsign, kb_cpu_softsign,
                                     KB_CUDA_KERNEL(softsign)};
const kb_op_def kb_opdef_hard_sigmoid = {"hard_sigmoid", 1, 0, infer_unary_floatany, grad_hard_sigmoid,
                                         kb_cpu_hard_sigmoid, KB_CUDA_KERNEL(hard_sigmoid)};
const kb_op_def kb_opdef_tanh = {"tanh", 1, 0, infer_unary_floatany, grad_tanh, kb_cpu_tanh, KB_CUDA_KERNEL(tanh)};

kb_tensor *kb_elu(kb_tensor *x, double alpha) {
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.alpha = alpha;
    return kb_node("kb_elu", KB_OP_ELU, &x, 1, &a);
}
kb_tensor *kb_softplus(kb_tensor *x) { return kb_node1("kb_softplus", KB_OP_SOFTPLUS, x); }
kb_tensor *kb_softsign(kb_tensor *x) { return kb_node1("kb_softsign", KB_OP_SOFTSIGN, x); }
kb_tensor *kb_hard_sigmoid(kb_tensor *x) { return kb_node1("kb_hard_sigmoid", KB_OP_HARD_SIGMOID, x); }
kb_tensor *kb_tanh(kb_tensor *x) { return kb_node1("kb_tanh", KB_OP_TANH, x); }

/* ---- l2_normalize (composite) ---- */

/* tf.nn.l2_normalize: x * rsqrt(max(sum(x^2, axes, keepdims), 1e-12)), here as x / sqrt(...). */
kb_tensor *kb_l2_normalize(kb_tensor *x, const int *axes, int n_axes) {
    const char *fn = "kb_l2_normalize";
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    if (kb_require_float_any(fn, "x", x->desc.dtype) != KB_OK) return NULL;
    if (n_axes < 0 || (n_axes > 0 && !axes)) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: axes is %s with n_axes %d", fn, axes ? "given" : "NULL", n_axes);
        return NULL;
    }
    uint32_t mask;
    if (kb_axes_mask(fn, axes, n_axes, x->desc.rank, &mask) != KB_OK) return NULL;
    kb_tensor *ss = kb_sum(kb_square(x), axes, n_axes, 1);
    return kb_divide(x, kb_sqrt(kb_maximum(ss, scalar_of(x, 1e-12))));
}

/* ---- in_top_k ---- */

/* in[0] predictions (B, C) float, in[1] targets (B,) int32/int64; attrs.i64[0] = k. Out bool (B,). */
static kb_status infer_in_top_k(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)a;
    (void)n_in;
    KB_TRY(kb_require_float_any(op, "predictions", in[0].dtype));
    if (in[1].dtype != KB_INT32 && in[1].dtype != KB_INT64)
        return kb_set_error(KB_ERR_DTYPE, "%s: targets have dtype %s; in_top_k takes int32 or int64", op,
                            kb_dtype_name(in[1].dtype) ? kb_dtype_name(in[1].dtype) : "invalid");
    char s1[128], s2[128];
    if (in[0].rank != 2 || in[1].rank != 1 ||
        (in[0].shape[0] != KB_NONE && in[1].shape[0] != KB_NONE && in[0].shape[0] != in[1].shape[0]))
        return kb_set_error(KB_ERR_SHAPE, "%s: predictions %s must be (batch, classes) and targets %s (batch,)", op,
                            kb_shape_str(&in[0], s1, sizeof s1), kb_shape_str(&in[1], s2, sizeof s2));
    out->dtype = KB_BOOL;
    out->rank = 1;
    out->shape[0] = in[0].shape[0] != KB_NONE ? in[0].shape[0] : in[1].shape[0];
    return KB_OK;
}
const kb_op_def kb_opdef_in_top_k = {"in_top_k", 2, KB_OPF_NONDIFF, infer_in_top_k, NULL, kb_cpu_in_top_k,
                                     KB_CUDA_KERNEL(in_top_k)};

kb_tensor *kb_in_top_k(kb_tensor *predictions, kb_tensor *targets, int64_t k) {
    const char *fn = "kb_in_top_k";
    if (!kb_check_tensor(fn, "predictions", predictions) || !kb_check_tensor(fn, "targets", targets)) return NULL;
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.i64[0] = k;
    kb_tensor *in[2] = {predictions, targets};
    return kb_node(fn, KB_OP_IN_TOP_K, in, 2, &a);
}

/* ---- binary_crossentropy ---- */

/* sigmoid_cross_entropy(z, x) = max(x, 0) - x*z + log(1 + exp(-|x|)) (tf.nn.sigmoid_cross_entropy_with_logits,
 * labels z, logits x), numpy-broadcast. d/dx = sigmoid(x) - z, d/dz = -x. */
static kb_status grad_sigmoid_cross_entropy(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *z = n->in[0], *x = n->in[1];
    dx[0] = kb_g_sum_like(kb_negative(kb_multiply(dy, x)), z);
    dx[1] = kb_g_sum_like(kb_multiply(dy, kb_subtract(kb_sigmoid(x), z)), x);
    return KB_OK;
}
const kb_op_def kb_opdef_sigmoid_cross_entropy = {"sigmoid_cross_entropy", 2, KB_OPF_INTERNAL,
                                                  infer_binary_floatany, grad_sigmoid_cross_entropy,
                                                  kb_cpu_sigmoid_cross_entropy, KB_CUDA_KERNEL(sigmoid_cross_entropy)};

/* target and output: floats of one dtype; same rank (Keras losses compare elementwise). */
static int check_loss_pair(const char *fn, kb_tensor *target, kb_tensor *output) {
    if (!kb_check_tensor(fn, "target", target) || !kb_check_tensor(fn, "output", output)) return 0;
    if (kb_require_float_any(fn, "output", output->desc.dtype) != KB_OK) return 0;
    if (target->desc.dtype != output->desc.dtype) {
        kb_set_error(KB_ERR_DTYPE, "%s: target is %s but output is %s", fn, kb_dtype_name(target->desc.dtype),
                     kb_dtype_name(output->desc.dtype));
        return 0;
    }
    kb_desc b;
    return kb_broadcast_desc(fn, &target->desc, &output->desc, &b) == KB_OK;
}

/*
 * tf.keras 2.3: from_logits, or output made directly by a sigmoid (its logits are used, the stable
 * path tf.keras takes): sigmoid_cross_entropy. Else o = clip(output, eps, 1 - eps) and
 * -(t*log(o + eps) + (1 - t)*log(1 - o + eps)).
 */
kb_tensor *kb_binary_crossentropy(kb_tensor *target, kb_tensor *output, int from_logits) {
    const char *fn = "kb_binary_crossentropy";
    if (!check_loss_pair(fn, target, output)) return NULL;
    kb_tensor *logits = NULL;
    if (from_logits) logits = output;
    else if (output->kind == KB_KIND_OP && output->op == KB_OP_SIGMOID) logits = output->in[0];
    if (logits) {
        kb_tensor *in[2] = {target, logits};
        return kb_node(fn, KB_OP_SIGMOID_CROSS_ENTROPY, in, 2, NULL);
    }
    double eps = output->ctx->cfg.epsilon;
    kb_tensor *o = kb_clip_internal(output, eps, 1.0 - eps), *e = scalar_of(output, eps), *one = scalar_of(output, 1.0);
    kb_tensor *pos = kb_multiply(target, kb_log(kb_add(o, e)));
    kb_tensor *neg = kb_multiply(kb_subtract(one, target), kb_log(kb_add(kb_subtract(one, o), e)));
    return kb_negative(kb_add(pos, neg));
}

/* ---- sparse_categorical_crossentropy (composite) ---- */

/*
 * tf.keras 2.3: logits = output (from_logits), the softmax's input (output made directly by a softmax
 * over `axis`), or log(clip(output, eps, 1 - eps)); loss = -log_softmax(logits)[target] along `axis`
 * (log_softmax renormalises the clipped probabilities, as sparse_softmax_cross_entropy_with_logits
 * does). The class is picked by a one_hot product, so an out-of-range class gives 0.
 */
kb_tensor *kb_sparse_categorical_crossentropy(kb_tensor *target, kb_tensor *output, int from_logits, int axis) {
    const char *fn = "kb_sparse_categorical_crossentropy";
    if (!kb_check_tensor(fn, "target", target) || !kb_check_tensor(fn, "output", output)) return NULL;
    if (kb_require_float_any(fn, "output", output->desc.dtype) != KB_OK) return NULL;
    kb_dtype tdt = target->desc.dtype;
    if (tdt == KB_BOOL || kb_dtype_name(tdt) == NULL) {
        kb_set_error(KB_ERR_DTYPE, "%s: target has dtype %s; class indices must be integers or floats", fn,
                     kb_dtype_name(tdt) ? kb_dtype_name(tdt) : "invalid");
        return NULL;
    }
    int ax;
    if (kb_norm_axis(fn, axis, output->desc.rank, &ax) != KB_OK) return NULL;
    int64_t classes = output->desc.shape[ax];
    if (classes == KB_NONE) {
        kb_set_error(KB_ERR_SHAPE, "%s: the class axis %d of output must have a known size", fn, axis);
        return NULL;
    }
    /* target: output's shape without the class axis, or that plus a trailing 1 (Keras flattens it). */
    const kb_desc *td = &target->desc, *od = &output->desc;
    int r = od->rank - 1, ok = td->rank == r || (td->rank == r + 1 && td->shape[r] == 1);
    for (int d = 0, k = 0; ok && d < od->rank; d++) {
        if (d == ax) continue;
        int64_t a = td->shape[k++], b = od->shape[d];
        if (a != KB_NONE && b != KB_NONE && a != b) ok = 0;
    }
    if (!ok) {
        char s1[128], s2[128];
        kb_set_error(KB_ERR_SHAPE, "%s: target %s does not match output %s without its class axis %d", fn,
                     kb_shape_str(td, s1, sizeof s1), kb_shape_str(od, s2, sizeof s2), axis);
        return NULL;
    }
    kb_tensor *t = td->rank == r + 1 ? kb_squeeze(target, -1) : target;
    if (tdt != KB_INT32 && tdt != KB_INT64) t = kb_cast(t, KB_INT64);
    kb_tensor *logits;
    if (from_logits) logits = output;
    else if (output->kind == KB_KIND_OP && output->op == KB_OP_SOFTMAX && output->attrs.axis == ax)
        logits = output->in[0];
    else {
        double eps = output->ctx->cfg.epsilon;
        logits = kb_log(kb_clip_internal(output, eps, 1.0 - eps));
    }
    kb_tensor *logp = kb_log_softmax_internal(logits, ax);
    kb_tensor *oh = kb_one_hot(t, classes); /* (..., C): the class axis last */
    if (oh && oh->desc.dtype != od->dtype) oh = kb_cast(oh, od->dtype);
    if (oh && ax != r) {
        int perm[KB_MAX_RANK];
        for (int d = 0, k = 0; d < od->rank; d++) perm[d] = d == ax ? r : k++;
        oh = kb_permute_dimensions(oh, perm, od->rank);
    }
    return kb_negative(kb_sum(kb_multiply(oh, logp), &ax, 1, 0));
}

/* ---- bias_add (composite) ---- */

/*
 * Keras 2.3.1 bias_add: bias of rank 1 or ndim(x)-1, else ValueError('Unexpected bias dimensions %d,
 * expect to be 1 or %d dimensions'). For x of rank 3..5 the bias is reshaped to broadcast: 1-D to the
 * channel axis; a full bias (spatial..., C) to (1,) + its shape (channels_last) or (1, C) + its spatial
 * dims (channels_first: a reshape, not a transpose). Other ranks: tf.nn.bias_add(x, bias), i.e. a 1-D
 * bias on the last axis whatever the data format.
 */
kb_tensor *kb_bias_add(kb_tensor *x, kb_tensor *bias, kb_data_format_arg data_format) {
    const char *fn = "kb_bias_add";
    if (!kb_check_tensor(fn, "x", x) || !kb_check_tensor(fn, "bias", bias)) return NULL;
    if (data_format != KB_DATA_FORMAT_DEFAULT && data_format != KB_DATA_FORMAT_CHANNELS_LAST &&
        data_format != KB_DATA_FORMAT_CHANNELS_FIRST) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: Unknown data_format: %d", fn, (int)data_format);
        return NULL;
    }
    int cf = (data_format == KB_DATA_FORMAT_DEFAULT ? (int)kb_image_data_format(x->ctx) : (int)data_format) ==
             KB_CHANNELS_FIRST;
    const kb_desc *xd = &x->desc, *bd = &bias->desc;
    int nd = xd->rank, br = bd->rank;
    if (br != 1 && br != nd - 1) {
        kb_set_error(KB_ERR_SHAPE, "%s: Unexpected bias dimensions %d, expect to be 1 or %d dimensions", fn, br, nd);
        return NULL;
    }
    for (int d = 0; d < br; d++)
        if (bd->shape[d] == KB_NONE) {
            kb_set_error(KB_ERR_SHAPE, "%s: the bias shape must be known", fn);
            return NULL;
        }
    int64_t shape[KB_MAX_RANK];
    int rank = nd;
    if (nd >= 3 && nd <= 5) {
        for (int d = 0; d < nd; d++) shape[d] = 1;
        if (br == 1) {
            shape[cf ? 1 : nd - 1] = bd->shape[0];
        } else if (cf) {
            shape[1] = bd->shape[br - 1];
            for (int d = 0; d < br - 1; d++) shape[2 + d] = bd->shape[d];
        } else {
            for (int d = 0; d < br; d++) shape[1 + d] = bd->shape[d];
        }
    } else {
        /* tf.nn.bias_add: x of rank >= 2, a 1-D bias as long as x's last axis. */
        int64_t c = nd >= 1 ? xd->shape[nd - 1] : KB_NONE;
        if (nd < 2 || br != 1 || (c != KB_NONE && c != bd->shape[0])) {
            char s1[128], s2[128];
            kb_set_error(KB_ERR_SHAPE, "%s: x %s of rank 2 or > 5 takes a 1-D bias as long as its last axis, got %s",
                         fn, kb_shape_str(xd, s1, sizeof s1), kb_shape_str(bd, s2, sizeof s2));
            return NULL;
        }
        rank = 1;
        shape[0] = bd->shape[0];
    }
    if (br == 1 && nd >= 3 && nd <= 5) {
        int64_t c = xd->shape[cf ? 1 : nd - 1];
        if (c != KB_NONE && c != bd->shape[0]) {
            char s1[128], s2[128];
            kb_set_error(KB_ERR_SHAPE, "%s: bias %s does not match the channel axis of x %s (%s)", fn,
                         kb_shape_str(bd, s2, sizeof s2), kb_shape_str(xd, s1, sizeof s1),
                         cf ? "channels_first" : "channels_last");
            return NULL;
        }
    }
    kb_tensor *b = rank == br ? bias : kb_reshape(bias, shape, rank);
    return kb_add(x, b);
}

/* ---- locally connected convolution: extract_patches + batch_dot (Keras local_conv1d/2d) ---- */

/*
 * extract_patches(x) -> (P, B, K): the 'valid' windows of x, one row of K = kh*kw*C values per
 * output position p = i*ow + j and batch b, flattened as Keras flattens inputs[:, rows, cols, :]
 * (channels_last: (kh, kw, C) order) or inputs[:, :, rows, cols] (channels_first: (C, kh, kw)).
 * x is (B, H, W, C) / (B, C, H, W), or (B, L, C) (a 1-D window: H = kh = sh = oh = 1).
 * attrs.i64: [0] channels_first, [1] kh, [2] kw, [3] sh, [4] sw, [5] oh, [6] ow (window starts
 * i*sh, j*sw for i < oh, j < ow; the input may be longer than the last window needs).
 * extract_patches_grad(dy (P, B, K), x) -> x's shape: the adjoint (each input element sums the
 * patch entries it was copied to, in (i, j) order: deterministic, no atomics); x is read for its
 * shape only. float32 / float64 (batch_dot's dtypes).
 */
static kb_status patches_geometry(const char *op, const kb_attrs *a, const kb_desc *x) {
    KB_TRY(kb_require_float(op, "inputs", x->dtype));
    int cf = (int)a->i64[0];
    if (x->rank != 3 && x->rank != 4)
        return kb_set_error(KB_ERR_SHAPE, "%s: inputs must be 3-D or 4-D, got rank %d", op, x->rank);
    for (int i = 1; i <= 6; ++i)
        if (a->i64[i] < 1) return kb_set_error(KB_ERR_INTERNAL, "%s: window attribute %d is %lld", op, i, (long long)a->i64[i]);
    if (x->rank == 3 && (cf || a->i64[1] != 1 || a->i64[3] != 1 || a->i64[5] != 1))
        return kb_set_error(KB_ERR_INTERNAL, "%s: a 3-D input takes a 1-D channels_last window", op);
    int64_t H = x->rank == 3 ? 1 : x->shape[cf ? 2 : 1], W = x->shape[x->rank == 3 ? 1 : (cf ? 3 : 2)];
    const char *what[2] = {x->rank == 3 ? "steps" : "rows", x->rank == 3 ? "steps" : "columns"};
    int64_t dim[2] = {H, W};
    for (int s = 0; s < 2; ++s) {
        int64_t k = a->i64[1 + s], st = a->i64[3 + s], o = a->i64[5 + s], need = (o - 1) * st + k;
        if (dim[s] != KB_NONE && need > dim[s]) {
            char sx[128];
            return kb_set_error(KB_ERR_SHAPE,
                                "%s: %lld output %s with kernel size %lld and stride %lld need %lld input %s, inputs "
                                "%s have %lld",
                                op, (long long)o, what[s], (long long)k, (long long)st, (long long)need, what[s],
                                kb_shape_str(x, sx, sizeof sx), (long long)dim[s]);
        }
    }
    return KB_OK;
}
static void patches_desc(const kb_attrs *a, const kb_desc *x, kb_desc *out) {
    int cf = (int)a->i64[0];
    int64_t C = x->shape[x->rank == 3 ? 2 : (cf ? 1 : 3)];
    memset(out, 0, sizeof *out);
    out->dtype = x->dtype;
    out->rank = 3;
    out->shape[0] = a->i64[5] * a->i64[6];
    out->shape[1] = x->shape[0];
    out->shape[2] = C == KB_NONE ? KB_NONE : a->i64[1] * a->i64[2] * C;
}
static kb_status infer_extract_patches(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    KB_TRY(patches_geometry(op, a, &in[0]));
    patches_desc(a, &in[0], out);
    return KB_OK;
}
static kb_status infer_extract_patches_grad(const char *op, const kb_attrs *a, const kb_desc *in, int n_in,
                                            kb_desc *out) {
    (void)n_in;
    KB_TRY(patches_geometry(op, a, &in[1]));
    if (in[0].dtype != in[1].dtype)
        return kb_set_error(KB_ERR_DTYPE, "%s: dy is %s but x is %s", op, kb_dtype_name(in[0].dtype),
                            kb_dtype_name(in[1].dtype));
    kb_desc p;
    patches_desc(a, &in[1], &p);
    int fits = in[0].rank == 3;
    for (int d = 0; fits && d < 3; ++d)
        fits = in[0].shape[d] == p.shape[d] || in[0].shape[d] == KB_NONE || p.shape[d] == KB_NONE;
    if (!fits) {
        char s1[128], s2[128];
        return kb_set_error(KB_ERR_SHAPE, "%s: dy %s does not match the patches %s", op,
                            kb_shape_str(&in[0], s1, sizeof s1), kb_shape_str(&p, s2, sizeof s2));
    }
    *out = in[1];
    return KB_OK;
}
static kb_status grad_extract_patches(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *in[2] = {dy, n->in[0]};
    dx[0] = kb_node("extract_patches_grad", KB_OP_EXTRACT_PATCHES_GRAD, in, 2, &n->attrs);
    return KB_OK;
}
/* linear in dy: its adjoint is extract_patches again; x only gives the shape */
static kb_status grad_extract_patches_grad(kb_tensor *n, kb_tensor *g, kb_tensor **dx) {
    dx[0] = kb_node("extract_patches", KB_OP_EXTRACT_PATCHES, &g, 1, &n->attrs);
    dx[1] = NULL;
    return KB_OK;
}
/* attrs.i64: [0] channels_first, [1] kh, [2] kw, [3] sh, [4] sw, [5] oh, [6] ow. */
const kb_op_def kb_opdef_extract_patches = {"extract_patches", 1, KB_OPF_INTERNAL, infer_extract_patches,
                                            grad_extract_patches, kb_cpu_extract_patches,
                                            KB_CUDA_KERNEL(extract_patches)};
/* attrs: those of the extract_patches it differentiates. */
const kb_op_def kb_opdef_extract_patches_grad = {"extract_patches_grad", 2, KB_OPF_INTERNAL,
                                                 infer_extract_patches_grad, grad_extract_patches_grad,
                                                 kb_cpu_extract_patches_grad, KB_CUDA_KERNEL(extract_patches_grad)};

/* Checks shared by local_conv1d / local_conv2d; returns 0 with the error set. */
static int local_conv_check(const char *fn, kb_tensor *inputs, kb_tensor *kernel, int rank, kb_data_format_arg f) {
    if (!kb_check_tensor(fn, "inputs", inputs) || !kb_check_tensor(fn, "kernel", kernel)) return 0;
    if (inputs->ctx != kernel->ctx) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: inputs and kernel belong to different contexts", fn);
        return 0;
    }
    if (f != KB_DATA_FORMAT_DEFAULT && f != KB_DATA_FORMAT_CHANNELS_LAST && f != KB_DATA_FORMAT_CHANNELS_FIRST) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: Unknown data_format: %d", fn, (int)f);
        return 0;
    }
    if (kb_require_float(fn, "inputs", inputs->desc.dtype) != KB_OK) return 0;
    if (kernel->desc.dtype != inputs->desc.dtype) {
        kb_set_error(KB_ERR_DTYPE, "%s: kernel is %s but inputs is %s", fn, kb_dtype_name(kernel->desc.dtype),
                     kb_dtype_name(inputs->desc.dtype));
        return 0;
    }
    char s[128];
    if (inputs->desc.rank != rank) {
        kb_set_error(KB_ERR_SHAPE, "%s: inputs must be %d-D, got shape %s", fn, rank,
                     kb_shape_str(&inputs->desc, s, sizeof s));
        return 0;
    }
    if (kernel->desc.rank != 3) {
        kb_set_error(KB_ERR_SHAPE, "%s: kernel must be 3-D (positions, features, filters), got shape %s", fn,
                     kb_shape_str(&kernel->desc, s, sizeof s));
        return 0;
    }
    for (int d = 0; d < 3; ++d)
        if (kernel->desc.shape[d] < 1) {
            kb_set_error(KB_ERR_SHAPE, "%s: the kernel shape must be known and non-empty, got %s", fn,
                         kb_shape_str(&kernel->desc, s, sizeof s));
            return 0;
        }
    return 1;
}
/* kernel's feature dim = window * C (C known), else KB_ERR_SHAPE. */
static int local_conv_features(const char *fn, kb_tensor *kernel, int64_t window, int64_t C, const char *how) {
    int64_t fd = kernel->desc.shape[1];
    if (C != KB_NONE && fd != window * C) {
        char s[128];
        kb_set_error(KB_ERR_SHAPE, "%s: kernel %s has %lld features per position, %s = %lld", fn,
                     kb_shape_str(&kernel->desc, s, sizeof s), (long long)fd, how, (long long)(window * C));
        return 0;
    }
    return 1;
}
static kb_tensor *patches_node(const char *fn, kb_tensor *x, int cf, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                               int64_t oh, int64_t ow) {
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.i64[0] = cf;
    a.i64[1] = kh;
    a.i64[2] = kw;
    a.i64[3] = sh;
    a.i64[4] = sw;
    a.i64[5] = oh;
    a.i64[6] = ow;
    return kb_node(fn, KB_OP_EXTRACT_PATCHES, &x, 1, &a);
}

/* Keras local_conv1d: data_format is checked but not used (channels_last, as Keras). */
kb_tensor *kb_local_conv1d(kb_tensor *inputs, kb_tensor *kernel, int64_t kernel_size, int64_t strides,
                           kb_data_format_arg data_format) {
    const char *fn = "kb_local_conv1d";
    if (!local_conv_check(fn, inputs, kernel, 3, data_format)) return NULL;
    if (kernel_size < 1 || strides < 1) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: kernel_size (%lld) and strides (%lld) must be >= 1", fn,
                     (long long)kernel_size, (long long)strides);
        return NULL;
    }
    int64_t ol = kernel->desc.shape[0];
    if (!local_conv_features(fn, kernel, kernel_size, inputs->desc.shape[2], "kernel_size * channels")) return NULL;
    kb_tensor *p = patches_node(fn, inputs, 0, 1, kernel_size, 1, strides, 1, ol);
    int axes[2] = {2, 1}, perm[3] = {1, 0, 2};
    return kb_permute_dimensions(kb_batch_dot(p, kernel, axes, 2), perm, 3); /* (ol, B, F) -> (B, ol, F) */
}

kb_tensor *kb_local_conv2d(kb_tensor *inputs, kb_tensor *kernel, const int64_t kernel_size[2],
                           const int64_t strides[2], const int64_t output_shape[2], kb_data_format_arg data_format) {
    const char *fn = "kb_local_conv2d";
    if (!local_conv_check(fn, inputs, kernel, 4, data_format)) return NULL;
    if (!kernel_size) {
        kb_null_arg(fn, "kernel_size");
        return NULL;
    }
    if (!output_shape) {
        kb_null_arg(fn, "output_shape");
        return NULL;
    }
    static const int64_t one[2] = {1, 1};
    if (!strides) strides = one;
    for (int s = 0; s < 2; ++s)
        if (kernel_size[s] < 1 || strides[s] < 1 || output_shape[s] < 1) {
            kb_set_error(KB_ERR_INVALID_ARGUMENT,
                         "%s: kernel_size (%lld, %lld), strides (%lld, %lld) and output_shape (%lld, %lld) must be >= 1",
                         fn, (long long)kernel_size[0], (long long)kernel_size[1], (long long)strides[0],
                         (long long)strides[1], (long long)output_shape[0], (long long)output_shape[1]);
            return NULL;
        }
    int cf = (data_format == KB_DATA_FORMAT_DEFAULT ? (int)kb_image_data_format(inputs->ctx) : (int)data_format) ==
             KB_CHANNELS_FIRST;
    int64_t oh = output_shape[0], ow = output_shape[1], F = kernel->desc.shape[2];
    char s[128];
    if (kernel->desc.shape[0] != oh * ow) {
        kb_set_error(KB_ERR_SHAPE, "%s: kernel %s has %lld positions, output_shape (%lld, %lld) has %lld", fn,
                     kb_shape_str(&kernel->desc, s, sizeof s), (long long)kernel->desc.shape[0], (long long)oh,
                     (long long)ow, (long long)(oh * ow));
        return NULL;
    }
    if (!local_conv_features(fn, kernel, kernel_size[0] * kernel_size[1], inputs->desc.shape[cf ? 1 : 3],
                             "kernel_size[0] * kernel_size[1] * channels"))
        return NULL;
    kb_tensor *p = patches_node(fn, inputs, cf, kernel_size[0], kernel_size[1], strides[0], strides[1], oh, ow);
    int axes[2] = {2, 1};
    kb_tensor *y = kb_batch_dot(p, kernel, axes, 2); /* (oh*ow, B, F) */
    int64_t shape[4] = {oh, ow, -1, F};
    int perm_cl[4] = {2, 0, 1, 3}, perm_cf[4] = {2, 3, 0, 1};
    return kb_permute_dimensions(kb_reshape(y, shape, 4), cf ? perm_cf : perm_cl, 4);
}
