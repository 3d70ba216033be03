/*
 * Activations and losses: relu (alpha, max_value, threshold), sigmoid, softmax, log_softmax
 * (internal), and categorical_crossentropy as a composite of table ops.
 */
#include <math.h>

#include "cpu/cpu_kernels.h"
#include "ops/ops_common.h"

/* ---- relu ---- */

static kb_status infer_relu(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    if (isnan(a->alpha) || isnan(a->max_value) || isnan(a->threshold))
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: alpha, max_value and threshold must not be NaN", op);
    if (a->max_value < 0)
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: max_value must be >= 0 (or INFINITY for None), got %g", op,
                            a->max_value);
    return n_in == 1 ? kb_infer_unary_float(op, a, in, n_in, out) : kb_infer_binary_float(op, a, in, n_in, out);
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
const kb_op_def kb_opdef_sigmoid = {"sigmoid", 1, 0, kb_infer_unary_float, grad_sigmoid, kb_cpu_sigmoid,
                                    KB_CUDA_KERNEL(sigmoid)};
kb_tensor *kb_sigmoid(kb_tensor *x) { return kb_node1("kb_sigmoid", KB_OP_SIGMOID, x); }

/* ---- softmax / log_softmax along one axis ---- */

static kb_status infer_softmax(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    int ax;
    KB_TRY(kb_infer_unary_float(op, a, in, n_in, out));
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
    if (kb_require_float(fn, "output", output->desc.dtype) != KB_OK) return NULL;
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
