/*
 * Reductions over any set of axes with keepdims: sum, mean, max; and the internal ops their
 * gradients use: max_grad (ties share the gradient equally, as TF), sum_like (reduce a
 * broadcast gradient back to an input's runtime shape) and broadcast_like (its adjoint).
 */
#include "cpu/cpu_kernels.h"
#include "ops/ops_common.h"

static kb_status infer_reduce(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    KB_TRY(kb_require_float(op, "x", in[0].dtype));
    if (in[0].rank < KB_MAX_RANK && (a->axes_mask >> in[0].rank))
        return kb_set_error(KB_ERR_AXIS, "%s: axes mask 0x%x is out of range for rank %d", op, a->axes_mask, in[0].rank);
    kb_desc o;
    memset(&o, 0, sizeof o);
    o.dtype = in[0].dtype;
    for (int i = 0; i < in[0].rank; ++i) {
        if (a->axes_mask & (1u << i)) {
            if (a->keepdims) o.shape[o.rank++] = 1;
        } else {
            o.shape[o.rank++] = in[0].shape[i];
        }
    }
    *out = o;
    return KB_OK;
}

/* Gradient of a reduction of ref: dy spread back over the reduced axes (divided by the count
 * for mean). */
static kb_tensor *spread(kb_tensor *dy, kb_tensor *ref, const kb_attrs *src, int mean) {
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.axes_mask = src->axes_mask;
    a.keepdims = src->keepdims;
    a.mean_scale = mean;
    kb_tensor *in[2] = {dy, ref};
    return kb_node("broadcast_like", KB_OP_BROADCAST_LIKE, in, 2, &a);
}

static kb_status grad_sum(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = spread(dy, n->in[0], &n->attrs, 0);
    return KB_OK;
}
static kb_status grad_mean(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = spread(dy, n->in[0], &n->attrs, 1);
    return KB_OK;
}
static kb_status grad_max(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *in[3] = {n->in[0], n, dy};
    dx[0] = kb_node("max_grad", KB_OP_MAX_GRAD, in, 3, &n->attrs);
    return KB_OK;
}

const kb_op_def kb_opdef_sum = {"sum", 1, 0, infer_reduce, grad_sum, kb_cpu_sum, KB_CUDA_KERNEL(sum)};
const kb_op_def kb_opdef_mean = {"mean", 1, 0, infer_reduce, grad_mean, kb_cpu_mean, KB_CUDA_KERNEL(mean)};
const kb_op_def kb_opdef_max = {"max", 1, 0, infer_reduce, grad_max, kb_cpu_max, KB_CUDA_KERNEL(max)};

static kb_tensor *reduce(const char *fn, kb_op_id op, kb_tensor *x, const int *axes, int n_axes, int keepdims) {
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    kb_attrs a;
    memset(&a, 0, sizeof a);
    if (kb_axes_mask(fn, axes, n_axes, x->desc.rank, &a.axes_mask) != KB_OK) return NULL;
    a.keepdims = keepdims != 0;
    return kb_node(fn, op, &x, 1, &a);
}
kb_tensor *kb_sum(kb_tensor *x, const int *axes, int n_axes, int keepdims) {
    return reduce("kb_sum", KB_OP_SUM, x, axes, n_axes, keepdims);
}
kb_tensor *kb_mean(kb_tensor *x, const int *axes, int n_axes, int keepdims) {
    return reduce("kb_mean", KB_OP_MEAN, x, axes, n_axes, keepdims);
}
kb_tensor *kb_max(kb_tensor *x, const int *axes, int n_axes, int keepdims) {
    return reduce("kb_max", KB_OP_MAX, x, axes, n_axes, keepdims);
}

/* ---- max_grad(x, y, dy) ---- */

static kb_status infer_max_grad(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    kb_desc y;
    KB_TRY(infer_reduce(op, a, in, n_in, &y));
    if (in[1].rank != y.rank || in[2].rank != y.rank)
        return kb_set_error(KB_ERR_INTERNAL, "%s: y/dy rank does not match the reduction", op);
    *out = in[0];
    return KB_OK;
}
/* max_grad(x, y, dy) = dy spread over each group's maxima / their count: linear in dy, so its
 * adjoint sums g * (mask / count) back over the group; piecewise constant in x and y (no gradient). */
static kb_status grad_max_grad(kb_tensor *n, kb_tensor *g, kb_tensor **dx) {
    kb_tensor *in[3] = {n->in[0], n->in[1], kb_ones_like(n->in[2], n->in[2]->desc.dtype)};
    kb_tensor *share = kb_node("max_grad", KB_OP_MAX_GRAD, in, 3, &n->attrs); /* mask / count */
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.axes_mask = n->attrs.axes_mask;
    a.keepdims = n->attrs.keepdims;
    kb_tensor *prod = kb_multiply(g, share);
    dx[0] = dx[1] = NULL;
    dx[2] = kb_node("sum", KB_OP_SUM, &prod, 1, &a);
    return KB_OK;
}
const kb_op_def kb_opdef_max_grad = {"max_grad", 3, KB_OPF_INTERNAL, infer_max_grad, grad_max_grad, kb_cpu_max_grad,
                                     KB_CUDA_KERNEL(max_grad)};

/* ---- sum_like(g, ref) / broadcast_like(dy, ref) ---- */

/* out takes ref's shape and g's dtype; at plan time (all dims known) the pairing is checked. */
/* The "big" side (g for sum_like, ref for broadcast_like) must be a broadcast of the small. */
static kb_status infer_like(const char *op, const kb_attrs *a, const kb_desc *in, const kb_desc *big,
                            const kb_desc *small, kb_desc *out) {
    KB_TRY(kb_require_float(op, "x", in[0].dtype));
    if (a->axes_mask == 0) {
        kb_desc b;
        KB_TRY(kb_broadcast_desc(op, big, small, &b));
        if (b.rank != big->rank)
            return kb_set_error(KB_ERR_SHAPE, "%s: rank %d cannot broadcast to rank %d", op, small->rank, big->rank);
        for (int i = 0; i < b.rank; ++i)
            if (big->shape[i] >= 0 && b.shape[i] >= 0 && b.shape[i] != big->shape[i])
                return kb_set_error(KB_ERR_SHAPE, "%s: axis %d of size %lld does not broadcast to %lld", op, i,
                                    (long long)b.shape[i], (long long)big->shape[i]);
    }
    *out = in[1];
    out->dtype = in[0].dtype;
    return KB_OK;
}
static kb_status infer_sum_like(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    return infer_like(op, a, in, &in[0], &in[1], out);
}
static kb_status infer_broadcast_like(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    return infer_like(op, a, in, &in[1], &in[0], out);
}
static kb_status grad_sum_like(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.mean_scale = n->attrs.mean_scale;
    kb_tensor *in[2] = {dy, n->in[0]};
    dx[0] = kb_node("broadcast_like", KB_OP_BROADCAST_LIKE, in, 2, &a);
    dx[1] = NULL;
    return KB_OK;
}
static kb_status grad_broadcast_like(kb_tensor *n, kb_tensor *g, kb_tensor **dx) {
    const kb_attrs *s = &n->attrs;
    if (s->axes_mask) {
        kb_attrs a;
        memset(&a, 0, sizeof a);
        a.axes_mask = s->axes_mask;
        a.keepdims = s->keepdims;
        kb_op_id op = s->mean_scale ? KB_OP_MEAN : KB_OP_SUM;
        dx[0] = kb_node(kb_op_table[op]->name, op, &g, 1, &a);
    } else {
        kb_attrs a;
        memset(&a, 0, sizeof a);
        a.mean_scale = s->mean_scale;
        kb_tensor *in[2] = {g, n->in[0]};
        dx[0] = kb_node("sum_like", KB_OP_SUM_LIKE, in, 2, &a);
    }
    dx[1] = NULL;
    return KB_OK;
}
const kb_op_def kb_opdef_sum_like = {"sum_like", 2, KB_OPF_INTERNAL, infer_sum_like, grad_sum_like, kb_cpu_sum_like,
                                     KB_CUDA_KERNEL(sum_like)};
const kb_op_def kb_opdef_broadcast_like = {"broadcast_like", 2, KB_OPF_INTERNAL, infer_broadcast_like, grad_broadcast_like,
                                           kb_cpu_broadcast_like, KB_CUDA_KERNEL(broadcast_like)};
