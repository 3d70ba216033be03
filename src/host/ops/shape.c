/*
 * Shape manipulation: permute_dimensions / transpose, reshape and its views (flatten,
 * batch_flatten, expand_dims, squeeze), concatenate / stack, slice, reverse, tile /
 * repeat_elements / repeat, one_hot, arange, and the internal reshape_like, slice_grad and
 * tile_grad. Every data-movement op takes every dtype (KB_OPF_CPU_ANY_DTYPE: the kernels move
 * elements by their size).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cpu/cpu_kernels.h"
#include "ops/ops_common.h"

/* ---- permute_dimensions / transpose (attrs: perm) ---- */

static kb_status infer_permute(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    unsigned seen = 0;
    for (int i = 0; i < in[0].rank; ++i) {
        int p = a->perm[i];
        if (p < 0 || p >= in[0].rank || (seen & (1u << p)))
            return kb_set_error(KB_ERR_AXIS, "%s: pattern is not a permutation of %d axes", op, in[0].rank);
        seen |= 1u << p;
    }
    *out = in[0];
    for (int i = 0; i < in[0].rank; ++i) out->shape[i] = in[0].shape[a->perm[i]];
    return KB_OK;
}
static kb_status grad_permute(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    int inv[KB_MAX_RANK];
    for (int i = 0; i < n->desc.rank; ++i) inv[n->attrs.perm[i]] = i;
    dx[0] = kb_permute_dimensions(dy, inv, n->desc.rank);
    return KB_OK;
}
const kb_op_def kb_opdef_permute_dimensions = {"permute_dimensions", 1, KB_OPF_CPU_ANY_DTYPE, infer_permute,
                                               grad_permute, kb_cpu_permute_dimensions,
                                               KB_CUDA_KERNEL(permute_dimensions)};

kb_tensor *kb_permute_dimensions(kb_tensor *x, const int *pattern, int n) {
    const char *fn = "kb_permute_dimensions";
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    if (n && !pattern) {
        kb_null_arg(fn, "pattern");
        return NULL;
    }
    if (n != x->desc.rank) {
        kb_set_error(KB_ERR_AXIS, "%s: pattern has %d entries but x has rank %d", fn, n, x->desc.rank);
        return NULL;
    }
    kb_attrs a;
    memset(&a, 0, sizeof a);
    for (int i = 0; i < n; ++i) a.perm[i] = pattern[i] < 0 ? pattern[i] + n : pattern[i];
    return kb_node(fn, KB_OP_PERMUTE, &x, 1, &a);
}

kb_tensor *kb_transpose(kb_tensor *x) {
    if (!kb_check_tensor("kb_transpose", "x", x)) return NULL;
    int perm[KB_MAX_RANK], r = x->desc.rank;
    for (int i = 0; i < r; ++i) perm[i] = r - 1 - i;
    kb_attrs a;
    memset(&a, 0, sizeof a);
    memcpy(a.perm, perm, sizeof perm);
    return kb_node("kb_transpose", KB_OP_PERMUTE, &x, 1, &a);
}

/* ---- reshape (a view: no kernel runs) ----
 * attrs: rank, shape (one -1 allowed); i64[i] = d + 1 (internal views only) means "output dim i is
 * input dim d", so expand_dims / squeeze / batch_flatten work with any number of unknown dims. */

static kb_status infer_reshape(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    int minus = -1, copied_unknown = 0;
    int64_t known = 1;
    kb_desc o = in[0];
    o.rank = a->rank;
    for (int i = 0; i < a->rank; ++i) {
        int64_t dim;
        if (a->i64[i] > 0) {
            if (a->i64[i] > in[0].rank)
                return kb_set_error(KB_ERR_INTERNAL, "%s: view of input dim %lld of a rank-%d input", op,
                                    (long long)a->i64[i] - 1, in[0].rank);
            dim = in[0].shape[a->i64[i] - 1];
            o.shape[i] = dim;
            if (dim < 0) {
                copied_unknown = 1;
                continue;
            }
        } else if (a->shape[i] == -1) {
            if (minus >= 0) return kb_set_error(KB_ERR_SHAPE, "%s: only one dimension may be -1", op);
            minus = i;
            continue;
        } else if (a->shape[i] < 0) {
            return kb_set_error(KB_ERR_SHAPE, "%s: dimension %d is %lld", op, i, (long long)a->shape[i]);
        } else {
            dim = a->shape[i];
            o.shape[i] = dim;
        }
        if (__builtin_mul_overflow(known, dim, &known) || known > KB_MAX_ELEMS)
            return kb_set_error(KB_ERR_SHAPE, "%s: target shape has more than 2^56 elements", op);
    }
    int64_t n = kb_desc_size(&in[0]);
    char s[128];
    if (n >= 0 && !copied_unknown) {
        if (minus >= 0) {
            if (known == 0 ? n != 0 : n % known != 0)
                return kb_set_error(KB_ERR_SHAPE, "%s: cannot reshape %s (%lld elements) with a -1 and %lld others", op,
                                    kb_shape_str(&in[0], s, sizeof s), (long long)n, (long long)known);
            o.shape[minus] = known == 0 ? 0 : n / known;
        } else if (known != n) {
            return kb_set_error(KB_ERR_SHAPE, "%s: cannot reshape %s (%lld elements) into %lld elements", op,
                                kb_shape_str(&in[0], s, sizeof s), (long long)n, (long long)known);
        }
    } else if (minus >= 0) {
        o.shape[minus] = KB_NONE;
    }
    *out = o;
    return KB_OK;
}
static kb_status grad_reshape(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = kb_g_reshape_like(dy, n->in[0]);
    return KB_OK;
}
const kb_op_def kb_opdef_reshape = {"reshape", 1, KB_OPF_ALIAS, infer_reshape, grad_reshape, kb_kernel_alias,
                                    kb_kernel_alias};

kb_tensor *kb_reshape(kb_tensor *x, const int64_t *shape, int rank) {
    const char *fn = "kb_reshape";
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    if (rank && !shape) {
        kb_null_arg(fn, "shape");
        return NULL;
    }
    if (rank < 0 || rank > KB_MAX_RANK) {
        kb_set_error(KB_ERR_SHAPE, "%s: invalid target shape (rank %d)", fn, rank);
        return NULL;
    }
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.rank = rank;
    for (int i = 0; i < rank; ++i) a.shape[i] = shape[i];
    return kb_node(fn, KB_OP_RESHAPE, &x, 1, &a);
}

/* A view whose dim i is input dim src[i], or a new axis of size 1 where src[i] < 0. */
static kb_tensor *view(const char *fn, kb_tensor *x, const int *src, int rank) {
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.rank = rank;
    for (int i = 0; i < rank; ++i) {
        if (src[i] >= 0) a.i64[i] = src[i] + 1;
        else a.shape[i] = 1;
    }
    return kb_node(fn, KB_OP_RESHAPE, &x, 1, &a);
}

kb_tensor *kb_flatten(kb_tensor *x) {
    if (!kb_check_tensor("kb_flatten", "x", x)) return NULL;
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.rank = 1;
    a.shape[0] = -1;
    return kb_node("kb_flatten", KB_OP_RESHAPE, &x, 1, &a);
}

kb_tensor *kb_batch_flatten(kb_tensor *x) {
    const char *fn = "kb_batch_flatten";
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    int r = x->desc.rank;
    int64_t rest = 1;
    for (int i = 1; i < r; ++i) rest = x->desc.shape[i] < 0 || rest < 0 ? -1 : rest * x->desc.shape[i];
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.rank = 2;
    /* (x.shape[0], prod(x.shape[1:])): the first dim is x's own when x has one, the second the known
     * product (exact even for an empty batch), else -1 */
    if (r >= 1 && rest >= 0) {
        a.i64[0] = 1;
        a.shape[1] = rest;
    } else if (r >= 1) {
        a.i64[0] = 1;
        a.shape[1] = -1;
    } else {
        a.shape[0] = 1;
        a.shape[1] = 1;
    }
    return kb_node(fn, KB_OP_RESHAPE, &x, 1, &a);
}

kb_tensor *kb_expand_dims(kb_tensor *x, int axis) {
    const char *fn = "kb_expand_dims";
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    int r = x->desc.rank;
    if (axis < -(r + 1) || axis > r) {
        kb_set_error(KB_ERR_AXIS, "%s: axis %d is out of range [%d, %d] for rank %d", fn, axis, -(r + 1), r, r);
        return NULL;
    }
    if (r + 1 > KB_MAX_RANK) {
        kb_set_error(KB_ERR_SHAPE, "%s: the result would have rank %d (at most %d)", fn, r + 1, KB_MAX_RANK);
        return NULL;
    }
    int ax = axis < 0 ? axis + r + 1 : axis, src[KB_MAX_RANK];
    for (int i = 0, k = 0; i <= r; ++i) src[i] = i == ax ? -1 : k++;
    return view(fn, x, src, r + 1);
}

kb_tensor *kb_squeeze(kb_tensor *x, int axis) {
    const char *fn = "kb_squeeze";
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    int r = x->desc.rank, ax;
    if (kb_norm_axis(fn, axis, r, &ax) != KB_OK) return NULL;
    int64_t d = x->desc.shape[ax];
    if (d >= 0 && d != 1) {
        kb_set_error(KB_ERR_SHAPE, "%s: can not squeeze axis %d, expected a dimension of 1, got %lld", fn, axis,
                     (long long)d);
        return NULL;
    }
    int src[KB_MAX_RANK];
    for (int i = 0, k = 0; i < r; ++i)
        if (i != ax) src[k++] = i;
    return view(fn, x, src, r - 1);
}

/* reshape_like(x, ref): x's data with ref's runtime shape (gradient of reshape). */
static kb_status infer_reshape_like(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)a; (void)n_in;
    int64_t n0 = kb_desc_size(&in[0]), n1 = kb_desc_size(&in[1]);
    if (n0 >= 0 && n1 >= 0 && n0 != n1)
        return kb_set_error(KB_ERR_SHAPE, "%s: %lld elements cannot take a shape of %lld", op, (long long)n0,
                            (long long)n1);
    *out = in[1];
    out->dtype = in[0].dtype;
    return KB_OK;
}
static kb_status grad_reshape_like(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = kb_g_reshape_like(dy, n->in[0]);
    dx[1] = NULL;
    return KB_OK;
}
const kb_op_def kb_opdef_reshape_like = {"reshape_like", 2, KB_OPF_ALIAS | KB_OPF_INTERNAL, infer_reshape_like,
                                         grad_reshape_like, kb_kernel_alias, kb_kernel_alias};

/* ---- slice / slice_grad ----
 * attrs (r = x's rank): i64[d] = start, i64[r + d] = size, i64[2r + d] = 1 if the start counts from
 * the end (start = dim - i64[d]). A size of -1 means "to the end"; -1 - k (internal, k > 0) means
 * "to the end but the last k". The internal forms let concatenate's gradient take its parts from
 * either end when only one input's length is known at build time. */

static kb_status slice_bounds(const char *op, const kb_attrs *a, const kb_desc *x, kb_desc *out) {
    int r = x->rank;
    *out = *x;
    for (int d = 0; d < r; ++d) {
        const int64_t dim = x->shape[d], req = a->i64[r + d];
        if (dim < 0) { /* unknown until plan time: only an explicit size is known */
            out->shape[d] = req >= 0 ? req : KB_NONE;
            continue;
        }
        const int64_t st = a->i64[2 * r + d] ? dim - a->i64[d] : a->i64[d];
        const int64_t sz = req >= 0 ? req : dim - st + (req + 1);
        if (st < 0 || st > dim || sz < 0 || sz > dim - st)
            return kb_set_error(KB_ERR_SHAPE, "%s: axis %d: start %lld and size %lld do not fit in the dimension %lld",
                                op, d, (long long)st, (long long)sz, (long long)dim);
        out->shape[d] = sz;
    }
    return KB_OK;
}

static kb_status infer_slice(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    return slice_bounds(op, a, &in[0], out);
}
static kb_status grad_slice(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *in[2] = {dy, n->in[0]};
    dx[0] = kb_node("slice_grad", KB_OP_SLICE_GRAD, in, 2, &n->attrs);
    return KB_OK;
}
const kb_op_def kb_opdef_slice = {"slice", 1, KB_OPF_CPU_ANY_DTYPE, infer_slice, grad_slice, kb_cpu_slice,
                                  KB_CUDA_KERNEL(slice)};

/* slice_grad(dy, x): zeros of x's shape (dy's dtype) with dy written where the slice took it from. */
static kb_status infer_slice_grad(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    kb_desc s;
    KB_TRY(slice_bounds(op, a, &in[1], &s));
    if (in[0].rank != in[1].rank) return kb_set_error(KB_ERR_INTERNAL, "%s: dy and x ranks differ", op);
    for (int d = 0; d < s.rank; ++d)
        if (s.shape[d] >= 0 && in[0].shape[d] >= 0 && s.shape[d] != in[0].shape[d]) {
            char s1[128], s2[128];
            return kb_set_error(KB_ERR_SHAPE, "%s: dy %s does not match the slice %s", op,
                                kb_shape_str(&in[0], s1, sizeof s1), kb_shape_str(&s, s2, sizeof s2));
        }
    *out = in[1];
    out->dtype = in[0].dtype;
    return KB_OK;
}
static kb_status grad_slice_grad(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = kb_node("slice", KB_OP_SLICE, &dy, 1, &n->attrs);
    dx[1] = NULL;
    return KB_OK;
}
const kb_op_def kb_opdef_slice_grad = {"slice_grad", 2, KB_OPF_INTERNAL | KB_OPF_CPU_ANY_DTYPE, infer_slice_grad,
                                       grad_slice_grad, kb_cpu_slice_grad, KB_CUDA_KERNEL(slice_grad)};

kb_tensor *kb_slice(kb_tensor *x, const int64_t *start, const int64_t *size, int n) {
    const char *fn = "kb_slice";
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    if (n > 0 && !start) {
        kb_null_arg(fn, "start");
        return NULL;
    }
    if (n > 0 && !size) {
        kb_null_arg(fn, "size");
        return NULL;
    }
    int r = x->desc.rank;
    if (n != r) {
        kb_set_error(KB_ERR_SHAPE, "%s: The dimension and the size of indices should match. (start and size have %d "
                     "entries, x has rank %d)", fn, n, r);
        return NULL;
    }
    kb_attrs a;
    memset(&a, 0, sizeof a);
    for (int d = 0; d < r; ++d) {
        if (start[d] < 0 || size[d] < -1) {
            kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: axis %d: start %lld / size %lld (start >= 0, size >= -1)", fn, d,
                         (long long)start[d], (long long)size[d]);
            return NULL;
        }
        a.i64[d] = start[d];
        a.i64[r + d] = size[d];
    }
    return kb_node(fn, KB_OP_SLICE, &x, 1, &a);
}

/* ---- concatenate (two inputs; attrs: axis >= 0) ---- */

static kb_status infer_concat(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    char s1[128], s2[128];
    if (in[1].dtype != in[0].dtype)
        return kb_set_error(KB_ERR_DTYPE, "%s: inputs have dtypes %s and %s", op, kb_dtype_name(in[0].dtype),
                            kb_dtype_name(in[1].dtype));
    if (in[0].rank == 0 || in[1].rank != in[0].rank)
        return kb_set_error(KB_ERR_SHAPE, "%s: cannot concatenate %s and %s (equal ranks >= 1 needed)", op,
                            kb_shape_str(&in[0], s1, sizeof s1), kb_shape_str(&in[1], s2, sizeof s2));
    if (a->axis < 0 || a->axis >= in[0].rank)
        return kb_set_error(KB_ERR_AXIS, "%s: axis %d is out of range for rank %d", op, a->axis, in[0].rank);
    *out = in[0];
    for (int d = 0; d < in[0].rank; ++d) {
        int64_t u = in[0].shape[d], v = in[1].shape[d];
        if (d == a->axis) {
            out->shape[d] = u >= 0 && v >= 0 ? u + v : KB_NONE;
        } else if (u >= 0 && v >= 0 && u != v) {
            return kb_set_error(KB_ERR_SHAPE, "%s: shapes %s and %s differ on axis %d (only the axis %d may differ)",
                                op, kb_shape_str(&in[0], s1, sizeof s1), kb_shape_str(&in[1], s2, sizeof s2), d,
                                a->axis);
        } else {
            out->shape[d] = u >= 0 ? u : v;
        }
    }
    return KB_OK;
}

/* A slice of dy along one axis (every other axis whole); the internal forms of the slice attrs. */
static kb_tensor *slice_axis(kb_tensor *dy, int axis, int64_t start, int from_end, int64_t size) {
    kb_attrs a;
    memset(&a, 0, sizeof a);
    int r = dy->desc.rank;
    for (int d = 0; d < r; ++d) a.i64[r + d] = -1;
    a.i64[axis] = start;
    a.i64[2 * r + axis] = from_end;
    a.i64[r + axis] = size;
    return kb_node("slice", KB_OP_SLICE, &dy, 1, &a);
}

static kb_status grad_concat(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    int ax = n->attrs.axis;
    int64_t n0 = n->in[0]->desc.shape[ax], n1 = n->in[1]->desc.shape[ax];
    if (n0 >= 0) {
        dx[0] = slice_axis(dy, ax, 0, 0, n0);
        dx[1] = slice_axis(dy, ax, n0, 0, -1);
    } else if (n1 >= 0) {
        dx[0] = slice_axis(dy, ax, 0, 0, -1 - n1);
        dx[1] = slice_axis(dy, ax, n1, 1, -1);
    } else {
        return kb_set_error(KB_ERR_NOT_SUPPORTED,
                            "kb_gradients: concatenate along axis %d where neither input's length is known at "
                            "build time", ax);
    }
    return KB_OK;
}
const kb_op_def kb_opdef_concatenate = {"concatenate", 2, KB_OPF_CPU_ANY_DTYPE, infer_concat, grad_concat,
                                        kb_cpu_concatenate, KB_CUDA_KERNEL(concatenate)};

/* More than two inputs: a balanced tree of two-input nodes (each element is copied
 * ceil(log2 n) times). */
static kb_tensor *concat_tree(const char *fn, kb_tensor *const *xs, int n, int axis) {
    if (n == 1) return xs[0];
    kb_tensor *in[2] = {concat_tree(fn, xs, n / 2, axis), concat_tree(fn, xs + n / 2, n - n / 2, axis)};
    if (!in[0] || !in[1]) return NULL;
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.axis = axis;
    return kb_node(fn, KB_OP_CONCATENATE, in, 2, &a);
}

static kb_tensor *concat_checked(const char *fn, kb_tensor *const *xs, int n, int axis) {
    if (n < 1 || !xs) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: tensors is %s with n = %d (at least one tensor)", fn,
                     xs ? "given" : "NULL", n);
        return NULL;
    }
    for (int i = 0; i < n; ++i) {
        char arg[32];
        snprintf(arg, sizeof arg, "tensors[%d]", i);
        if (!kb_check_tensor(fn, arg, xs[i])) return NULL;
    }
    int r = xs[0]->desc.rank;
    /* Keras: a negative axis is taken modulo the rank (Python %), 0 for scalars */
    if (axis < 0) axis = r ? ((axis % r) + r) % r : 0;
    if (axis >= r && r > 0) {
        kb_set_error(KB_ERR_AXIS, "%s: axis %d is out of range for rank %d", fn, axis, r);
        return NULL;
    }
    if (n == 1) return xs[0];
    return concat_tree(fn, xs, n, axis);
}

kb_tensor *kb_concatenate(kb_tensor *const *xs, int n, int axis) {
    return concat_checked("kb_concatenate", xs, n, axis);
}

kb_tensor *kb_stack(kb_tensor *const *xs, int n, int axis) {
    const char *fn = "kb_stack";
    if (n < 1 || !xs) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: x is %s with n = %d (at least one tensor)", fn,
                     xs ? "given" : "NULL", n);
        return NULL;
    }
    kb_tensor **ex = (kb_tensor **)malloc((size_t)n * sizeof *ex);
    if (!ex) {
        kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: out of host memory for %d tensors", fn, n);
        return NULL;
    }
    kb_tensor *res = NULL;
    for (int i = 0; i < n; ++i) {
        char arg[32];
        snprintf(arg, sizeof arg, "x[%d]", i);
        if (!kb_check_tensor(fn, arg, xs[i])) goto done;
        int r = xs[i]->desc.rank;
        if (axis < -(r + 1) || axis > r) {
            kb_set_error(KB_ERR_AXIS, "%s: axis %d is out of range [%d, %d] for inputs of rank %d", fn, axis, -(r + 1),
                         r, r);
            goto done;
        }
        int shape_ok = xs[i]->desc.rank == xs[0]->desc.rank;
        for (int d = 0; shape_ok && d < r; ++d) {
            int64_t u = xs[i]->desc.shape[d], v = xs[0]->desc.shape[d];
            shape_ok = u < 0 || v < 0 || u == v;
        }
        if (!shape_ok) {
            char s1[128], s2[128];
            kb_set_error(KB_ERR_SHAPE, "%s: x[0] %s and x[%d] %s differ (stack needs one shape)", fn,
                         kb_shape_str(&xs[0]->desc, s1, sizeof s1), i, kb_shape_str(&xs[i]->desc, s2, sizeof s2));
            goto done;
        }
        ex[i] = kb_expand_dims(xs[i], axis);
        if (!ex[i]) goto done;
    }
    res = concat_checked(fn, ex, n, axis < 0 ? axis + xs[0]->desc.rank + 1 : axis);
done:
    free(ex);
    return res;
}

/* ---- reverse (attrs: axes_mask) ---- */

static kb_status infer_reverse(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    if (in[0].rank < 32 && (a->axes_mask >> in[0].rank) != 0)
        return kb_set_error(KB_ERR_AXIS, "%s: axes mask 0x%x has axes beyond rank %d", op, a->axes_mask, in[0].rank);
    *out = in[0];
    return KB_OK;
}
static kb_status grad_reverse(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = kb_node("reverse", KB_OP_REVERSE, &dy, 1, &n->attrs);
    return KB_OK;
}
const kb_op_def kb_opdef_reverse = {"reverse", 1, KB_OPF_CPU_ANY_DTYPE, infer_reverse, grad_reverse, kb_cpu_reverse,
                                    KB_CUDA_KERNEL(reverse)};

kb_tensor *kb_reverse(kb_tensor *x, const int *axes, int n_axes) {
    const char *fn = "kb_reverse";
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    kb_attrs a;
    memset(&a, 0, sizeof a);
    /* tf.reverse(x, []) reverses nothing (unlike the reductions, no axes is not "all axes") */
    if (n_axes != 0 && kb_axes_mask(fn, axes, n_axes, x->desc.rank, &a.axes_mask) != KB_OK) return NULL;
    return kb_node(fn, KB_OP_REVERSE, &x, 1, &a);
}

/* ---- tile / repeat_elements / tile_grad ----
 * attrs (r = x's rank): axis d of the output is x's axis d repeated as a whole i64[d] times
 * ("outer", tile) with each element repeated i64[r + d] times ("inner", repeat_elements):
 * out.shape[d] = i64[d] * x.shape[d] * i64[r + d]. tile sets only outer reps, repeat_elements only
 * the inner rep of its axis; tile_grad sums dy over both. */

static kb_status infer_tile(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    int r = in[0].rank;
    *out = in[0];
    for (int d = 0; d < r; ++d) {
        int64_t o = a->i64[d], i = a->i64[r + d], dim = in[0].shape[d], m;
        if (o < 0 || i < 0) return kb_set_error(KB_ERR_INTERNAL, "%s: negative repeats on axis %d", op, d);
        if (__builtin_mul_overflow(o, i, &m) || m > KB_MAX_ELEMS)
            return kb_set_error(KB_ERR_SHAPE, "%s: axis %d is repeated more than 2^56 times", op, d);
        if (dim >= 0 && (__builtin_mul_overflow(m, dim, &m) || m > KB_MAX_ELEMS))
            return kb_set_error(KB_ERR_SHAPE, "%s: axis %d would have more than 2^56 elements", op, d);
        out->shape[d] = dim >= 0 ? m : KB_NONE;
    }
    return KB_OK;
}
static kb_status grad_tile(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *in[2] = {dy, n->in[0]};
    dx[0] = kb_node("tile_grad", KB_OP_TILE_GRAD, in, 2, &n->attrs);
    return KB_OK;
}
const kb_op_def kb_opdef_tile = {"tile", 1, KB_OPF_CPU_ANY_DTYPE, infer_tile, grad_tile, kb_cpu_tile,
                                 KB_CUDA_KERNEL(tile)};
const kb_op_def kb_opdef_repeat_elements = {"repeat_elements", 1, KB_OPF_CPU_ANY_DTYPE, infer_tile, grad_tile,
                                            kb_cpu_repeat_elements, KB_CUDA_KERNEL(repeat_elements)};

/* tile_grad(dy, x): x's shape, each element the sum of its copies in dy. */
static kb_status infer_tile_grad(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    KB_TRY(kb_require_float_any(op, "dy", in[0].dtype));
    kb_desc t;
    KB_TRY(infer_tile(op, a, &in[1], 1, &t));
    for (int d = 0; d < t.rank; ++d)
        if (t.rank != in[0].rank || (t.shape[d] >= 0 && in[0].shape[d] >= 0 && t.shape[d] != in[0].shape[d])) {
            char s1[128], s2[128];
            return kb_set_error(KB_ERR_SHAPE, "%s: dy %s does not match the tiled shape %s", op,
                                kb_shape_str(&in[0], s1, sizeof s1), kb_shape_str(&t, s2, sizeof s2));
        }
    *out = in[1];
    out->dtype = in[0].dtype;
    return KB_OK;
}
static kb_status grad_tile_grad(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = kb_node("tile", KB_OP_TILE, &dy, 1, &n->attrs);
    dx[1] = NULL;
    return KB_OK;
}
const kb_op_def kb_opdef_tile_grad = {"tile_grad", 2, KB_OPF_INTERNAL, infer_tile_grad, grad_tile_grad,
                                      kb_cpu_tile_grad, KB_CUDA_KERNEL(tile_grad)};

kb_tensor *kb_tile(kb_tensor *x, const int64_t *n, int len) {
    const char *fn = "kb_tile";
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    if (len > 0 && !n) {
        kb_null_arg(fn, "n");
        return NULL;
    }
    int r = x->desc.rank;
    if (len < 0) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: len is %d", fn, len);
        return NULL;
    }
    if (len > r) {
        kb_set_error(KB_ERR_NOT_SUPPORTED, "%s: n has %d entries but x has rank %d (Keras: NotImplementedError)", fn,
                     len, r);
        return NULL;
    }
    kb_attrs a;
    memset(&a, 0, sizeof a);
    for (int d = 0; d < r; ++d) {
        int64_t k = d < r - len ? 1 : n[d - (r - len)];
        if (k < 0) {
            kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: n[%d] is %lld (repeats must be >= 0)", fn, d - (r - len),
                         (long long)k);
            return NULL;
        }
        a.i64[d] = k;
        a.i64[r + d] = 1;
    }
    return kb_node(fn, KB_OP_TILE, &x, 1, &a);
}

static kb_tensor *repeat_axis(const char *fn, kb_tensor *x, int64_t rep, int axis) {
    if (rep < 0) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: rep is %lld (must be >= 0)", fn, (long long)rep);
        return NULL;
    }
    int r = x->desc.rank, ax;
    if (kb_norm_axis(fn, axis, r, &ax) != KB_OK) return NULL;
    kb_attrs a;
    memset(&a, 0, sizeof a);
    for (int d = 0; d < r; ++d) {
        a.i64[d] = 1;
        a.i64[r + d] = d == ax ? rep : 1;
    }
    return kb_node(fn, KB_OP_REPEAT_ELEMENTS, &x, 1, &a);
}

kb_tensor *kb_repeat_elements(kb_tensor *x, int64_t rep, int axis) {
    if (!kb_check_tensor("kb_repeat_elements", "x", x)) return NULL;
    return repeat_axis("kb_repeat_elements", x, rep, axis);
}

kb_tensor *kb_repeat(kb_tensor *x, int64_t n) {
    const char *fn = "kb_repeat";
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    if (x->desc.rank != 2) {
        char s[128];
        kb_set_error(KB_ERR_SHAPE, "%s: x must be 2-D, got %s", fn, kb_shape_str(&x->desc, s, sizeof s));
        return NULL;
    }
    if (n < 0) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: n is %lld (must be >= 0)", fn, (long long)n);
        return NULL;
    }
    /* (B, d) -> (B, 1, d) -> tile the middle axis */
    kb_tensor *e = kb_expand_dims(x, 1);
    if (!e) return NULL;
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.i64[0] = 1;
    a.i64[1] = n;
    a.i64[2] = 1;
    a.i64[3] = a.i64[4] = a.i64[5] = 1;
    return kb_node(fn, KB_OP_TILE, &e, 1, &a);
}

/* ---- one_hot (attrs: i64[0] = num_classes) ---- */

static kb_status infer_one_hot(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    if (in[0].dtype != KB_INT32 && in[0].dtype != KB_INT64)
        return kb_set_error(KB_ERR_DTYPE, "%s: indices have dtype %s; one_hot takes int32 or int64", op,
                            kb_dtype_name(in[0].dtype) ? kb_dtype_name(in[0].dtype) : "invalid");
    if (in[0].rank + 1 > KB_MAX_RANK)
        return kb_set_error(KB_ERR_SHAPE, "%s: the result would have rank %d (at most %d)", op, in[0].rank + 1,
                            KB_MAX_RANK);
    *out = in[0];
    out->dtype = KB_FLOAT32;
    out->shape[out->rank++] = a->i64[0];
    return KB_OK;
}
const kb_op_def kb_opdef_one_hot = {"one_hot", 1, KB_OPF_NONDIFF, infer_one_hot, NULL, kb_cpu_one_hot,
                                    KB_CUDA_KERNEL(one_hot)};

kb_tensor *kb_one_hot(kb_tensor *indices, int64_t num_classes) {
    const char *fn = "kb_one_hot";
    if (!kb_check_tensor(fn, "indices", indices)) return NULL;
    if (num_classes < 0) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: num_classes is %lld (must be >= 0)", fn, (long long)num_classes);
        return NULL;
    }
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.i64[0] = num_classes;
    return kb_node(fn, KB_OP_ONE_HOT, &indices, 1, &a);
}

/* ---- arange: a constant made now (Keras builds tf.range of constants) ---- */

kb_tensor *kb_arange(kb_context *ctx, double start, double stop, double step, kb_dtype dtype) {
    const char *fn = "kb_arange";
    if (!ctx) {
        kb_null_arg(fn, "ctx");
        return NULL;
    }
    kb_dtype dt = kb_resolve_dtype(ctx, dtype);
    if (kb_require_numeric(fn, "dtype", dt) != KB_OK) return NULL;
    if (!isfinite(start) || !isfinite(stop) || !isfinite(step)) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: start %g, stop %g and step %g must be finite", fn, start, stop,
                     step);
        return NULL;
    }
    if (step == 0) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: step is 0 (Requires delta != 0)", fn);
        return NULL;
    }
    double len = ceil((stop - start) / step);
    if (!(len > 0)) len = 0;
    if (len > (double)KB_MAX_ELEMS) {
        kb_set_error(KB_ERR_SHAPE, "%s: %g elements (more than 2^56)", fn, len);
        return NULL;
    }
    int64_t n = (int64_t)len;
    size_t es = kb_dtype_size(dt);
    unsigned char *buf = (unsigned char *)malloc(n ? (size_t)n * es : 1);
    if (!buf) {
        kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: out of host memory allocating %zu bytes", fn, (size_t)n * es);
        return NULL;
    }
    for (int64_t i = 0; i < n; ++i) kb_store_f64(buf, dt, i, start + (double)i * step);
    kb_tensor *t = kb_constant(ctx, buf, (size_t)n * es, dt, &n, 1, "arange");
    free(buf);
    return t;
}
