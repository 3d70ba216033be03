/*
 * Linear algebra and shape: dot (one GEMM; the Keras nD rule is composed from permute/reshape
 * around it), permute_dimensions / transpose, reshape, and the internal reshape_like.
 */
#include <stdio.h>

#include "cpu/cpu_kernels.h"
#include "ops/ops_common.h"

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
