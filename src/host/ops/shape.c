/*
 * Linear algebra and shape: dot (one GEMM; the Keras nD rule is composed from permute/reshape
 * around it), permute_dimensions / transpose, reshape, and the internal reshape_like.
 */
#include <stdio.h>

#include "cpu/cpu_kernels.h"
#include "ops/ops_common.h"

/* ---- dot: x (..., K) . y (K, N) -> (..., N), one GEMM with M = prod(x.shape[:-1]) ---- */

static kb_status infer_dot(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)a; (void)n_in;
    KB_TRY(kb_require_float(op, "x", in[0].dtype));
    if (in[1].dtype != in[0].dtype)
        return kb_set_error(KB_ERR_DTYPE, "%s: x is %s but y is %s", op, kb_dtype_name(in[0].dtype),
                            kb_dtype_name(in[1].dtype));
    if (in[0].rank < 1 || in[1].rank != 2)
        return kb_set_error(KB_ERR_INTERNAL, "%s: the dot kernel takes x of rank >= 1 and y of rank 2", op);
    int64_t k1 = in[0].shape[in[0].rank - 1], k2 = in[1].shape[0];
    if (k1 >= 0 && k2 >= 0 && k1 != k2) {
        char s1[128], s2[128];
        return kb_set_error(KB_ERR_SHAPE, "%s: x %s has %lld on its last axis but y %s has %lld on its contracted axis", op,
                            kb_shape_str(&in[0], s1, sizeof s1), (long long)k1, kb_shape_str(&in[1], s2, sizeof s2),
                            (long long)k2);
    }
    *out = in[0];
    out->shape[out->rank - 1] = in[1].shape[1];
    return KB_OK;
}
/* dx = dy . y^T ; dy_ = reshape(x, (-1, K))^T . reshape(dy, (-1, N)) */
static kb_status grad_dot(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *x = n->in[0], *y = n->in[1];
    dx[0] = kb_node2("dot", KB_OP_DOT, dy, kb_transpose(y));
    int64_t k = y->desc.shape[0] >= 0 ? y->desc.shape[0] : x->desc.shape[x->desc.rank - 1];
    int64_t xs[2] = {-1, k}, ds[2] = {-1, y->desc.shape[1]};
    kb_tensor *x2 = x->desc.rank == 2 ? x : kb_reshape(x, xs, 2);
    kb_tensor *d2 = dy->desc.rank == 2 ? dy : kb_reshape(dy, ds, 2);
    dx[1] = kb_node2("dot", KB_OP_DOT, kb_transpose(x2), d2);
    return KB_OK;
}
const kb_op_def kb_opdef_dot = {"dot", 2, 0, infer_dot, grad_dot, kb_cpu_dot, KB_CUDA_KERNEL(dot)};

/* Keras dot: matmul for rank <= 2, np.dot's rule above (contract x's last axis with y's -2). */
kb_tensor *kb_dot(kb_tensor *x, kb_tensor *y) {
    const char *fn = "kb_dot";
    if (!kb_check_tensor(fn, "x", x) || !kb_check_tensor(fn, "y", y)) return NULL;
    if (x->ctx != y->ctx) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: x and y belong to different contexts", fn);
        return NULL;
    }
    if (kb_require_float(fn, "x", x->desc.dtype) != KB_OK) return NULL;
    if (x->desc.dtype != y->desc.dtype) {
        kb_set_error(KB_ERR_DTYPE, "%s: x is %s but y is %s", fn, kb_dtype_name(x->desc.dtype), kb_dtype_name(y->desc.dtype));
        return NULL;
    }
    int rx = x->desc.rank, ry = y->desc.rank;
    if (rx == 0 || ry == 0) return kb_multiply(x, y);
    int64_t kx = x->desc.shape[rx - 1], ky = y->desc.shape[ry == 1 ? 0 : ry - 2];
    if (kx >= 0 && ky >= 0 && kx != ky) {
        char s1[128], s2[128];
        kb_set_error(KB_ERR_SHAPE, "%s: shapes %s and %s are not aligned: %lld (x axis -1) != %lld (y axis %d)", fn,
                     kb_shape_str(&x->desc, s1, sizeof s1), kb_shape_str(&y->desc, s2, sizeof s2), (long long)kx,
                     (long long)ky, ry == 1 ? 0 : -2);
        return NULL;
    }
    if (ry == 1) {
        int last = -1;
        return kb_sum(kb_multiply(x, y), &last, 1, 0);
    }
    if (ry == 2) return kb_node2(fn, KB_OP_DOT, x, y);
    /* y (B..., K, N): move K to the front, flatten to (K, B*N), one GEMM, then reshape. */
    int perm[KB_MAX_RANK];
    perm[0] = ry - 2;
    for (int i = 0; i < ry - 2; ++i) perm[i + 1] = i;
    perm[ry - 1] = ry - 1;
    int64_t y2s[2] = {ky, -1};
    kb_tensor *y2 = kb_reshape(kb_permute_dimensions(y, perm, ry), y2s, 2);
    int64_t os[KB_MAX_RANK];
    int orank = rx - 1 + ry - 1, unknown = 0;
    if (orank > KB_MAX_RANK) {
        kb_set_error(KB_ERR_SHAPE, "%s: result rank %d exceeds %d", fn, orank, KB_MAX_RANK);
        return NULL;
    }
    for (int i = 0; i < rx - 1; ++i) os[i] = x->desc.shape[i];
    for (int i = 0; i < ry - 2; ++i) os[rx - 1 + i] = y->desc.shape[i];
    os[orank - 1] = y->desc.shape[ry - 1];
    for (int i = 0; i < orank; ++i) unknown += os[i] < 0;
    if (unknown > 1) {
        kb_set_error(KB_ERR_NOT_SUPPORTED, "%s: nD dot with more than one unknown dimension is not supported yet", fn);
        return NULL;
    }
    return kb_reshape(kb_node2(fn, KB_OP_DOT, x, y2), os, orank);
}

/* ---- permute_dimensions / transpose ---- */

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
const kb_op_def kb_opdef_permute_dimensions = {"permute_dimensions", 1, 0, infer_permute, grad_permute,
                                               kb_cpu_permute_dimensions, KB_CUDA_KERNEL(permute_dimensions)};

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

/* ---- reshape (a view: no kernel runs) ---- */

static kb_status infer_reshape(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    int minus = -1;
    int64_t known = 1;
    for (int i = 0; i < a->rank; ++i) {
        if (a->shape[i] == -1) {
            if (minus >= 0) return kb_set_error(KB_ERR_SHAPE, "%s: only one dimension may be -1", op);
            minus = i;
        } else if (a->shape[i] < 0) {
            return kb_set_error(KB_ERR_SHAPE, "%s: dimension %d is %lld", op, i, (long long)a->shape[i]);
        } else {
            if (__builtin_mul_overflow(known, a->shape[i], &known) || known > KB_MAX_ELEMS)
                return kb_set_error(KB_ERR_SHAPE, "%s: target shape has more than 2^56 elements", op);
        }
    }
    kb_desc o = in[0];
    o.rank = a->rank;
    for (int i = 0; i < a->rank; ++i) o.shape[i] = a->shape[i];
    int64_t n = kb_desc_size(&in[0]);
    char s[128];
    if (n >= 0) {
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

/* reshape_like(x, ref): x's data with ref's runtime shape (gradient of reshape). */
static kb_status infer_reshape_like(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)a; (void)n_in;
    int64_t n0 = kb_desc_size(&in[0]), n1 = kb_desc_size(&in[1]);
    if (n0 >= 0 && n1 >= 0 && n0 != n1)
        return kb_set_error(KB_ERR_SHAPE, "%s: %lld elements cannot take a shape of %lld", op, (long long)n0, (long long)n1);
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
