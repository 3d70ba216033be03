/*
 * Elementwise ops: add subtract multiply divide (numpy broadcasting) negative square exp log sqrt,
 * and the internal clip, clip_grad, sqrt_grad, cast. Each entry: validation/shape rule, gradient
 * rule, CPU kernel (cpu/cpu_elementwise.c), CUDA kernel (src/cuda/kernels/elementwise.cu).
 */
#include <math.h>

#include "cpu/cpu_kernels.h"
#include "ops/ops_common.h"

/* ---- add / subtract / multiply / divide ---- */

static kb_status grad_add(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = kb_g_sum_like(dy, n->in[0]);
    dx[1] = kb_g_sum_like(dy, n->in[1]);
    return KB_OK;
}
static kb_status grad_subtract(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = kb_g_sum_like(dy, n->in[0]);
    dx[1] = kb_g_sum_like(kb_negative(dy), n->in[1]);
    return KB_OK;
}
static kb_status grad_multiply(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = kb_g_sum_like(kb_multiply(dy, n->in[1]), n->in[0]);
    dx[1] = kb_g_sum_like(kb_multiply(dy, n->in[0]), n->in[1]);
    return KB_OK;
}
/* d(x/y)/dy = -x/y^2 = -out/y */
static kb_status grad_divide(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = kb_g_sum_like(kb_divide(dy, n->in[1]), n->in[0]);
    dx[1] = kb_g_sum_like(kb_negative(kb_divide(kb_multiply(dy, n), n->in[1])), n->in[1]);
    return KB_OK;
}

const kb_op_def kb_opdef_add = {"add", 2, 0, kb_infer_binary_float, grad_add, kb_cpu_add, KB_CUDA_KERNEL(add)};
const kb_op_def kb_opdef_subtract = {"subtract", 2, 0, kb_infer_binary_float, grad_subtract, kb_cpu_subtract,
                                     KB_CUDA_KERNEL(subtract)};
const kb_op_def kb_opdef_multiply = {"multiply", 2, 0, kb_infer_binary_float, grad_multiply, kb_cpu_multiply,
                                     KB_CUDA_KERNEL(multiply)};
const kb_op_def kb_opdef_divide = {"divide", 2, 0, kb_infer_binary_float, grad_divide, kb_cpu_divide,
                                   KB_CUDA_KERNEL(divide)};

kb_tensor *kb_add(kb_tensor *x, kb_tensor *y) { return kb_node2("kb_add", KB_OP_ADD, x, y); }
kb_tensor *kb_subtract(kb_tensor *x, kb_tensor *y) { return kb_node2("kb_subtract", KB_OP_SUBTRACT, x, y); }
kb_tensor *kb_multiply(kb_tensor *x, kb_tensor *y) { return kb_node2("kb_multiply", KB_OP_MULTIPLY, x, y); }
kb_tensor *kb_divide(kb_tensor *x, kb_tensor *y) { return kb_node2("kb_divide", KB_OP_DIVIDE, x, y); }

/* ---- unary math ---- */

static kb_status grad_negative(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    (void)n;
    dx[0] = kb_negative(dy);
    return KB_OK;
}
static kb_status grad_square(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *x = n->in[0];
    dx[0] = kb_multiply(dy, kb_multiply(x, kb_scalar(x->ctx, 2.0, x->desc.dtype)));
    return KB_OK;
}
static kb_status grad_exp(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = kb_multiply(dy, n);
    return KB_OK;
}
static kb_status grad_log(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = kb_divide(dy, n->in[0]);
    return KB_OK;
}
/* Keras sqrt is sqrt(clip(x, 0, inf)): the gradient is 0 where x < 0 (as TF's clip gradient). */
static kb_status grad_sqrt(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = kb_node2("sqrt_grad", KB_OP_SQRT_GRAD, dy, n->in[0]);
    return KB_OK;
}
/* n = sqrt_grad(dy, x) = dy / (2 sqrt(x)) (0 where x < 0): linear in dy, and
 * dn/dx = -dy / (4 x^1.5) = -n / (2x), which is 0 where x < 0 since n is. */
static kb_status grad_sqrt_grad(kb_tensor *n, kb_tensor *g, kb_tensor **dx) {
    kb_tensor *x = n->in[1];
    dx[0] = kb_node2("sqrt_grad", KB_OP_SQRT_GRAD, g, x);
    dx[1] = kb_g_sum_like(kb_negative(kb_divide(kb_multiply(g, n), kb_multiply(x, kb_scalar(x->ctx, 2.0, x->desc.dtype)))), x);
    return KB_OK;
}

const kb_op_def kb_opdef_negative = {"negative", 1, 0, kb_infer_unary_float, grad_negative, kb_cpu_negative,
                                     KB_CUDA_KERNEL(negative)};
const kb_op_def kb_opdef_square = {"square", 1, 0, kb_infer_unary_float, grad_square, kb_cpu_square,
                                   KB_CUDA_KERNEL(square)};
const kb_op_def kb_opdef_exp = {"exp", 1, 0, kb_infer_unary_float, grad_exp, kb_cpu_exp, KB_CUDA_KERNEL(exp)};
const kb_op_def kb_opdef_log = {"log", 1, 0, kb_infer_unary_float, grad_log, kb_cpu_log, KB_CUDA_KERNEL(log)};
const kb_op_def kb_opdef_sqrt = {"sqrt", 1, 0, kb_infer_unary_float, grad_sqrt, kb_cpu_sqrt, KB_CUDA_KERNEL(sqrt)};
const kb_op_def kb_opdef_sqrt_grad = {"sqrt_grad", 2, KB_OPF_INTERNAL, kb_infer_binary_float, grad_sqrt_grad,
                                      kb_cpu_sqrt_grad, KB_CUDA_KERNEL(sqrt_grad)};

kb_tensor *kb_negative(kb_tensor *x) { return kb_node1("kb_negative", KB_OP_NEGATIVE, x); }
kb_tensor *kb_square(kb_tensor *x) { return kb_node1("kb_square", KB_OP_SQUARE, x); }
kb_tensor *kb_exp(kb_tensor *x) { return kb_node1("kb_exp", KB_OP_EXP, x); }
kb_tensor *kb_log(kb_tensor *x) { return kb_node1("kb_log", KB_OP_LOG, x); }
kb_tensor *kb_sqrt(kb_tensor *x) { return kb_node1("kb_sqrt", KB_OP_SQRT, x); }

/* ---- clip (internal until the tensor-API issue makes K.clip public) ---- */

static kb_status infer_clip(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    if (isnan(a->lo) || isnan(a->hi))
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: bounds must not be NaN", op);
    return kb_infer_unary_float(op, a, in, n_in, out);
}
/* TF's clip_by_value gradient: passes dy where lo <= x <= hi. */
static kb_status grad_clip(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *in[2] = {dy, n->in[0]};
    dx[0] = kb_node("clip_grad", KB_OP_CLIP_GRAD, in, 2, &n->attrs);
    return KB_OK;
}
static kb_status grad_clip_grad(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *in[2] = {dy, n->in[1]};
    dx[0] = kb_node("clip_grad", KB_OP_CLIP_GRAD, in, 2, &n->attrs); /* linear in dy, 0 a.e. in x */
    dx[1] = NULL;
    return KB_OK;
}
const kb_op_def kb_opdef_clip = {"clip", 1, KB_OPF_INTERNAL, infer_clip, grad_clip, kb_cpu_clip, KB_CUDA_KERNEL(clip)};
const kb_op_def kb_opdef_clip_grad = {"clip_grad", 2, KB_OPF_INTERNAL, kb_infer_binary_float, grad_clip_grad,
                                      kb_cpu_clip_grad, KB_CUDA_KERNEL(clip_grad)};

kb_tensor *kb_clip_internal(kb_tensor *x, double lo, double hi) {
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.lo = lo;
    a.hi = hi < lo ? lo : hi; /* Keras: max_value < min_value gives max_value = min_value */
    return kb_node("kb_clip", KB_OP_CLIP, &x, 1, &a);
}

/* ---- cast ---- */

static kb_status infer_cast(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    if (!kb_dtype_valid(a->dtype)) return kb_set_error(KB_ERR_DTYPE, "%s: invalid target dtype %d", op, (int)a->dtype);
    *out = in[0];
    out->dtype = a->dtype;
    return KB_OK;
}
static kb_status grad_cast(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_dtype from = n->in[0]->desc.dtype;
    dx[0] = kb_dtype_is_float(from) && kb_dtype_is_float(n->desc.dtype) ? kb_cast(dy, from) : NULL;
    return KB_OK;
}
const kb_op_def kb_opdef_cast = {"cast", 1, KB_OPF_CPU_ANY_DTYPE, infer_cast, grad_cast, kb_cpu_cast, KB_CUDA_KERNEL(cast)};

kb_tensor *kb_cast(kb_tensor *x, kb_dtype dtype) {
    if (!kb_check_tensor("kb_cast", "x", x)) return NULL;
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.dtype = kb_resolve_dtype(x->ctx, dtype);
    return kb_node("kb_cast", KB_OP_CAST, &x, 1, &a);
}
