/*
 * Reductions over any set of axes with keepdims: sum, mean, max, min, prod, any, all,
 * logsumexp (var and std are composites of mean); arg-reductions argmax / argmin and the
 * inclusive scans cumsum / cumprod along one axis; and the internal ops the gradients use:
 * max_grad (ties share the gradient equally, as TF; also min's gradient), sum_like (reduce a
 * broadcast gradient back to an input's runtime shape) and broadcast_like (its adjoint).
 *
 * dtypes: sum, prod, max, min, mean, argmax, argmin, cumsum, cumprod take float16, bfloat16,
 * float32, float64, int32 and int64 (integer results wrap on overflow; integer mean is the
 * sum divided by the count truncated toward zero, as TF's reduce_mean); any / all take every
 * dtype (cast to bool, nonzero or NaN is true) and return bool; logsumexp, var and std take
 * floats (mean, var and std cast bool to floatx first, as Keras).
 *
 * Attributes: reductions use axes_mask (bit i = axis i reduced) and keepdims; argmax / argmin
 * use axis (normalised, >= 0); cumsum / cumprod use axis and i64[0] (1 = scan from the end,
 * made by cumsum's and cumprod's gradients).
 */
#include "cpu/cpu_kernels.h"
#include "ops/ops_common.h"

/* float16, bfloat16, float32, float64, int32 or int64. */
static kb_status require_real(const char *op, kb_dtype dt) {
    if (kb_dtype_is_float(dt) || dt == KB_INT32 || dt == KB_INT64) return KB_OK;
    return kb_set_error(KB_ERR_DTYPE, "%s: x has dtype %s; this op takes a float, int32 or int64 dtype", op,
                        kb_dtype_name(dt) ? kb_dtype_name(dt) : "invalid");
}

/* Output desc of reducing in over a->axes_mask, with dtype dt. */
static kb_status reduce_desc(const char *op, const kb_attrs *a, const kb_desc *in, kb_dtype dt, kb_desc *out) {
    if (in->rank < KB_MAX_RANK && (a->axes_mask >> in->rank))
        return kb_set_error(KB_ERR_AXIS, "%s: axes mask 0x%x is out of range for rank %d", op, a->axes_mask, in->rank);
    kb_desc o;
    memset(&o, 0, sizeof o);
    o.dtype = dt;
    for (int i = 0; i < in->rank; ++i) {
        if (a->axes_mask & (1u << i)) {
            if (a->keepdims) o.shape[o.rank++] = 1;
        } else {
            o.shape[o.rank++] = in->shape[i];
        }
    }
    *out = o;
    return KB_OK;
}

static kb_status infer_reduce(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    KB_TRY(require_real(op, in[0].dtype));
    return reduce_desc(op, a, &in[0], in[0].dtype, out);
}
static kb_status infer_reduce_float(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    KB_TRY(kb_require_float_any(op, "x", in[0].dtype));
    return reduce_desc(op, a, &in[0], in[0].dtype, out);
}
static kb_status infer_reduce_bool(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    if (!kb_dtype_valid(in[0].dtype)) return kb_set_error(KB_ERR_DTYPE, "%s: x has an invalid dtype", op);
    return reduce_desc(op, a, &in[0], KB_BOOL, out);
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

static int is_float_node(const kb_tensor *n) { return kb_dtype_is_float(n->in[0]->desc.dtype); }

static kb_status grad_sum(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = is_float_node(n) ? spread(dy, n->in[0], &n->attrs, 0) : NULL;
    return KB_OK;
}
static kb_status grad_mean(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = is_float_node(n) ? spread(dy, n->in[0], &n->attrs, 1) : NULL;
    return KB_OK;
}
/* max and min: dy shared equally among the elements equal to the result (max_grad compares
 * x with y, so it serves both). */
static kb_status grad_max(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *in[3] = {n->in[0], n, dy};
    dx[0] = is_float_node(n) ? kb_node("max_grad", KB_OP_MAX_GRAD, in, 3, &n->attrs) : NULL;
    return KB_OK;
}
/* prod: dx = dy * y / x, spread over each group. Correct where x has no zeros (there it gives
 * NaN or inf where TF's cumprod-based rule gives the product of the other elements). */
static kb_status grad_prod(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = is_float_node(n) ? kb_divide(spread(kb_multiply(dy, n), n->in[0], &n->attrs, 0), n->in[0]) : NULL;
    return KB_OK;
}
/* logsumexp: dx = dy * exp(x - y), spread over each group (the softmax of the group). */
static kb_status grad_logsumexp(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *x = n->in[0];
    dx[0] = kb_multiply(spread(dy, x, &n->attrs, 0), kb_exp(kb_subtract(x, spread(n, x, &n->attrs, 0))));
    return KB_OK;
}

const kb_op_def kb_opdef_sum = {"sum", 1, 0, infer_reduce, grad_sum, kb_cpu_sum, KB_CUDA_KERNEL(sum)};
const kb_op_def kb_opdef_mean = {"mean", 1, 0, infer_reduce, grad_mean, kb_cpu_mean, KB_CUDA_KERNEL(mean)};
const kb_op_def kb_opdef_max = {"max", 1, 0, infer_reduce, grad_max, kb_cpu_max, KB_CUDA_KERNEL(max)};
const kb_op_def kb_opdef_min = {"min", 1, 0, infer_reduce, grad_max, kb_cpu_min, KB_CUDA_KERNEL(min)};
const kb_op_def kb_opdef_prod = {"prod", 1, 0, infer_reduce, grad_prod, kb_cpu_prod, KB_CUDA_KERNEL(prod)};
const kb_op_def kb_opdef_any = {"any", 1, KB_OPF_NONDIFF, infer_reduce_bool, NULL, kb_cpu_any, KB_CUDA_KERNEL(any)};
const kb_op_def kb_opdef_all = {"all", 1, KB_OPF_NONDIFF, infer_reduce_bool, NULL, kb_cpu_all, KB_CUDA_KERNEL(all)};
const kb_op_def kb_opdef_logsumexp = {"logsumexp", 1, 0, infer_reduce_float, grad_logsumexp, kb_cpu_logsumexp,
                                      KB_CUDA_KERNEL(logsumexp)};

static kb_tensor *reduce(const char *fn, kb_op_id op, kb_tensor *x, const int *axes, int n_axes, int keepdims) {
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    kb_attrs a;
    memset(&a, 0, sizeof a);
    if (kb_axes_mask(fn, axes, n_axes, x->desc.rank, &a.axes_mask) != KB_OK) return NULL;
    a.keepdims = keepdims != 0;
    return kb_node(fn, op, &x, 1, &a);
}
/* Keras' mean, var and std cast bool input to floatx. */
static kb_tensor *bool_to_floatx(kb_tensor *x) {
    return x->desc.dtype == KB_BOOL ? kb_cast(x, kb_floatx(x->ctx)) : x;
}

kb_tensor *kb_sum(kb_tensor *x, const int *axes, int n_axes, int keepdims) {
    return reduce("kb_sum", KB_OP_SUM, x, axes, n_axes, keepdims);
}
kb_tensor *kb_mean(kb_tensor *x, const int *axes, int n_axes, int keepdims) {
    if (!kb_check_tensor("kb_mean", "x", x)) return NULL;
    return reduce("kb_mean", KB_OP_MEAN, bool_to_floatx(x), axes, n_axes, keepdims);
}
kb_tensor *kb_max(kb_tensor *x, const int *axes, int n_axes, int keepdims) {
    return reduce("kb_max", KB_OP_MAX, x, axes, n_axes, keepdims);
}
kb_tensor *kb_min(kb_tensor *x, const int *axes, int n_axes, int keepdims) {
    return reduce("kb_min", KB_OP_MIN, x, axes, n_axes, keepdims);
}
kb_tensor *kb_prod(kb_tensor *x, const int *axes, int n_axes, int keepdims) {
    return reduce("kb_prod", KB_OP_PROD, x, axes, n_axes, keepdims);
}
kb_tensor *kb_any(kb_tensor *x, const int *axes, int n_axes, int keepdims) {
    return reduce("kb_any", KB_OP_ANY, x, axes, n_axes, keepdims);
}
kb_tensor *kb_all(kb_tensor *x, const int *axes, int n_axes, int keepdims) {
    return reduce("kb_all", KB_OP_ALL, x, axes, n_axes, keepdims);
}
kb_tensor *kb_logsumexp(kb_tensor *x, const int *axes, int n_axes, int keepdims) {
    return reduce("kb_logsumexp", KB_OP_LOGSUMEXP, x, axes, n_axes, keepdims);
}

/* var = mean((x - mean(x, keepdims))^2), as Keras' TF backend (population variance). */
static kb_tensor *variance(const char *fn, kb_tensor *x, const int *axes, int n_axes, int keepdims) {
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    x = bool_to_floatx(x);
    if (!x || kb_require_float_any(fn, "x", x->desc.dtype) != KB_OK) return NULL;
    kb_tensor *m = reduce(fn, KB_OP_MEAN, x, axes, n_axes, 1);
    return reduce(fn, KB_OP_MEAN, kb_square(kb_subtract(x, m)), axes, n_axes, keepdims);
}
kb_tensor *kb_var(kb_tensor *x, const int *axes, int n_axes, int keepdims) {
    return variance("kb_var", x, axes, n_axes, keepdims);
}
/* std = sqrt(var): where var is 0 the gradient is NaN (0 * inf), as TF's. */
kb_tensor *kb_std(kb_tensor *x, const int *axes, int n_axes, int keepdims) {
    return kb_sqrt(variance("kb_std", x, axes, n_axes, keepdims));
}

/* ---- argmax / argmin ---- */

static kb_status infer_arg(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    KB_TRY(require_real(op, in[0].dtype));
    if (a->axis < 0 || a->axis >= in[0].rank)
        return kb_set_error(KB_ERR_AXIS, "%s: axis %d is out of range for rank %d", op, a->axis, in[0].rank);
    if (in[0].shape[a->axis] == 0)
        return kb_set_error(KB_ERR_SHAPE, "%s: axis %d is empty (an empty sequence has no arg-extremum)", op, a->axis);
    kb_attrs r;
    memset(&r, 0, sizeof r);
    r.axes_mask = 1u << a->axis;
    return reduce_desc(op, &r, &in[0], KB_INT64, out);
}
const kb_op_def kb_opdef_argmax = {"argmax", 1, KB_OPF_NONDIFF, infer_arg, NULL, kb_cpu_argmax, KB_CUDA_KERNEL(argmax)};
const kb_op_def kb_opdef_argmin = {"argmin", 1, KB_OPF_NONDIFF, infer_arg, NULL, kb_cpu_argmin, KB_CUDA_KERNEL(argmin)};

static kb_tensor *along(const char *fn, kb_op_id op, kb_tensor *x, int axis, int reverse) {
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    kb_attrs a;
    memset(&a, 0, sizeof a);
    if (kb_norm_axis(fn, axis, x->desc.rank, &a.axis) != KB_OK) return NULL;
    a.i64[0] = reverse;
    return kb_node(fn, op, &x, 1, &a);
}
kb_tensor *kb_argmax(kb_tensor *x, int axis) { return along("kb_argmax", KB_OP_ARGMAX, x, axis, 0); }
kb_tensor *kb_argmin(kb_tensor *x, int axis) { return along("kb_argmin", KB_OP_ARGMIN, x, axis, 0); }

/* ---- cumsum / cumprod ---- */

static kb_status infer_scan(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    KB_TRY(require_real(op, in[0].dtype));
    if (a->axis < 0 || a->axis >= in[0].rank)
        return kb_set_error(KB_ERR_AXIS, "%s: axis %d is out of range for rank %d", op, a->axis, in[0].rank);
    *out = in[0];
    return KB_OK;
}
static kb_tensor *scan_node(kb_op_id op, kb_tensor *x, const kb_attrs *src, int flip) {
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.axis = src->axis;
    a.i64[0] = flip ? !src->i64[0] : src->i64[0];
    return kb_node(kb_op_table[op]->name, op, &x, 1, &a);
}
/* cumsum: dx = the scan of dy in the other direction. */
static kb_status grad_cumsum(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = is_float_node(n) ? scan_node(KB_OP_CUMSUM, dy, &n->attrs, 1) : NULL;
    return KB_OK;
}
/* cumprod: TF's rule dx = cumsum(y * dy, other direction) / x, correct where x has no zeros. */
static kb_status grad_cumprod(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = is_float_node(n) ? kb_divide(scan_node(KB_OP_CUMSUM, kb_multiply(n, dy), &n->attrs, 1), n->in[0]) : NULL;
    return KB_OK;
}
const kb_op_def kb_opdef_cumsum = {"cumsum", 1, 0, infer_scan, grad_cumsum, kb_cpu_cumsum, KB_CUDA_KERNEL(cumsum)};
const kb_op_def kb_opdef_cumprod = {"cumprod", 1, 0, infer_scan, grad_cumprod, kb_cpu_cumprod, KB_CUDA_KERNEL(cumprod)};

kb_tensor *kb_cumsum(kb_tensor *x, int axis) { return along("kb_cumsum", KB_OP_CUMSUM, x, axis, 0); }
kb_tensor *kb_cumprod(kb_tensor *x, int axis) { return along("kb_cumprod", KB_OP_CUMPROD, x, axis, 0); }

/* ---- max_grad(x, y, dy) ---- */

static kb_status infer_max_grad(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    kb_desc y;
    KB_TRY(infer_reduce_float(op, a, in, n_in, &y));
    if (in[1].rank != y.rank || in[2].rank != y.rank)
        return kb_set_error(KB_ERR_INTERNAL, "%s: y/dy rank does not match the reduction", op);
    *out = in[0];
    return KB_OK;
}
/* max_grad(x, y, dy) = dy spread over each group's elements equal to y / their count: linear in
 * dy, so its adjoint sums g * (mask / count) back over the group; piecewise constant in x and y
 * (no gradient). */
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
    KB_TRY(kb_require_float_any(op, "x", in[0].dtype));
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
