/*
 * Tensor utilities and state: identity, stop_gradient, fill_like (zeros_like / ones_like),
 * shape, size, print_tensor, and update (ASSIGN) with update_add / update_sub /
 * moving_average_update composed on it.
 */
#include "cpu/cpu_kernels.h"
#include "ops/ops_common.h"

static kb_status grad_pass(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    (void)n;
    dx[0] = dy;
    return KB_OK;
}
static kb_status grad_none(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    (void)dy;
    for (int i = 0; i < n->n_in; ++i) dx[i] = NULL;
    return KB_OK;
}

const kb_op_def kb_opdef_identity = {"identity", 1, KB_OPF_ALIAS, kb_infer_same, grad_pass, kb_kernel_alias,
                                     kb_kernel_alias};
/* stop_gradient: an identity whose gradient rule returns none. */
const kb_op_def kb_opdef_stop_gradient = {"stop_gradient", 1, KB_OPF_ALIAS, kb_infer_same, grad_none,
                                          kb_kernel_alias, kb_kernel_alias};
kb_tensor *kb_identity(kb_tensor *x) { return kb_node1("kb_identity", KB_OP_IDENTITY, x); }
kb_tensor *kb_stop_gradient(kb_tensor *x) { return kb_node1("kb_stop_gradient", KB_OP_STOP_GRADIENT, x); }

/* ---- fill_like ---- */

static kb_status infer_fill_like(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    if (!kb_dtype_valid(a->dtype)) return kb_set_error(KB_ERR_DTYPE, "%s: invalid dtype %d", op, (int)a->dtype);
    *out = in[0];
    out->dtype = a->dtype;
    return KB_OK;
}
const kb_op_def kb_opdef_fill_like = {"fill_like", 1, KB_OPF_NONDIFF, infer_fill_like, NULL, kb_cpu_fill_like,
                                      KB_CUDA_KERNEL(fill_like)};

static kb_tensor *fill_like(const char *fn, kb_tensor *x, kb_dtype dt, double v) {
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.dtype = kb_resolve_dtype(x->ctx, dt);
    a.value = v;
    return kb_node(fn, KB_OP_FILL_LIKE, &x, 1, &a);
}
kb_tensor *kb_zeros_like(kb_tensor *x, kb_dtype dtype) { return fill_like("kb_zeros_like", x, dtype, 0.0); }
kb_tensor *kb_ones_like(kb_tensor *x, kb_dtype dtype) { return fill_like("kb_ones_like", x, dtype, 1.0); }

/* ---- shape / size: int32, computed from the runtime shape ---- */

static kb_status infer_shape(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)op; (void)a; (void)n_in;
    memset(out, 0, sizeof *out);
    out->dtype = KB_INT32;
    out->rank = 1;
    out->shape[0] = in[0].rank;
    return KB_OK;
}
static kb_status infer_size(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)op; (void)a; (void)n_in; (void)in;
    memset(out, 0, sizeof *out);
    out->dtype = KB_INT32;
    return KB_OK;
}
const kb_op_def kb_opdef_shape = {"shape", 1, KB_OPF_NONDIFF, infer_shape, NULL, kb_cpu_shape, KB_CUDA_KERNEL(shape)};
const kb_op_def kb_opdef_size = {"size", 1, KB_OPF_NONDIFF, infer_size, NULL, kb_cpu_size, KB_CUDA_KERNEL(size)};
kb_tensor *kb_shape(kb_tensor *x) { return kb_node1("kb_shape", KB_OP_SHAPE, x); }
kb_tensor *kb_size(kb_tensor *x) { return kb_node1("kb_size", KB_OP_SIZE, x); }

/* ---- print_tensor: runs on the host (inside a CUDA function its input is copied over) ---- */

const kb_op_def kb_opdef_print_tensor = {"print_tensor", 1, KB_OPF_HOST, kb_infer_same, grad_pass,
                                         kb_cpu_print_tensor, NULL};
kb_tensor *kb_print_tensor(kb_tensor *x, const char *message) {
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.message = (char *)(message ? message : ""); /* kb_node keeps a copy */
    return kb_node("kb_print_tensor", KB_OP_PRINT_TENSOR, &x, 1, &a);
}

/* ---- update: ASSIGN(new_value, variable); its value is the new value ---- */

static kb_status infer_assign(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)a; (void)n_in;
    const kb_desc *v = &in[0], *var = &in[1];
    char s1[128], s2[128];
    if (v->dtype != var->dtype)
        return kb_set_error(KB_ERR_DTYPE, "%s: the variable is %s but the new value is %s", op, kb_dtype_name(var->dtype),
                            kb_dtype_name(v->dtype));
    int ok = v->rank == var->rank;
    for (int i = 0; ok && i < v->rank; ++i) ok = v->shape[i] == KB_NONE || v->shape[i] == var->shape[i];
    if (!ok)
        return kb_set_error(KB_ERR_SHAPE, "%s: the variable has shape %s but the new value has shape %s", op,
                            kb_shape_str(var, s1, sizeof s1), kb_shape_str(v, s2, sizeof s2));
    *out = *var;
    return KB_OK;
}
const kb_op_def kb_opdef_update = {"update", 2, KB_OPF_ALIAS | KB_OPF_UPDATE | KB_OPF_NONDIFF, infer_assign, NULL,
                                   kb_kernel_alias, kb_kernel_alias};

static kb_tensor *assign(const char *fn, kb_tensor *x, kb_tensor *value) {
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    if (x->kind != KB_KIND_VARIABLE) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: %s is not a variable", fn, x->name);
        return NULL;
    }
    kb_tensor *in[2] = {value, x};
    return kb_node(fn, KB_OP_ASSIGN, in, 2, NULL);
}
kb_tensor *kb_update(kb_tensor *x, kb_tensor *new_x) {
    if (!kb_check_tensor("kb_update", "new_x", new_x)) return NULL;
    return assign("kb_update", x, new_x);
}
kb_tensor *kb_update_add(kb_tensor *x, kb_tensor *increment) {
    if (!kb_check_tensor("kb_update_add", "x", x) || !kb_check_tensor("kb_update_add", "increment", increment)) return NULL;
    return assign("kb_update_add", x, kb_add(x, increment));
}
kb_tensor *kb_update_sub(kb_tensor *x, kb_tensor *decrement) {
    if (!kb_check_tensor("kb_update_sub", "x", x) || !kb_check_tensor("kb_update_sub", "decrement", decrement)) return NULL;
    return assign("kb_update_sub", x, kb_subtract(x, decrement));
}
/* Keras 2.3.1: x <- x - (x - value) * (1 - momentum), no zero-debias. */
kb_tensor *kb_moving_average_update(kb_tensor *x, kb_tensor *value, double momentum) {
    const char *fn = "kb_moving_average_update";
    if (!kb_check_tensor(fn, "x", x) || !kb_check_tensor(fn, "value", value)) return NULL;
    kb_tensor *f = kb_scalar(x->ctx, 1.0 - momentum, x->desc.dtype);
    return assign(fn, x, kb_subtract(x, kb_multiply(kb_subtract(x, value), f)));
}
