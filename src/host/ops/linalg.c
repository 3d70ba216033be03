/*
 * Linear algebra ops: dot and batch_dot (one GEMM node each; the Keras shape rules are built from
 * permutes around it), gather and its gradient scatter_add.
 *
 * The GEMM node (dot, batch_dot) contracts c axes of x with c axes of y:
 *   attrs: i64[0] = c (>= 0), i64[1] = ta, i64[2] = tb.
 *   batch_dot has one leading batch axis B shared by x, y and the output; dot has none.
 *   x (after the batch axis) is (Mdims..., Kdims...) if ta = 0, (Kdims..., Mdims...) if ta = 1;
 *   y (after the batch axis) is (Kdims..., Ndims...) if tb = 0, (Ndims..., Kdims...) if tb = 1;
 *   out = (B,) + Mdims + Ndims = per batch op(A) (M, K) . op(B) (K, N), where M, K, N are the
 *   products of the dim groups (an empty group is 1; c = 0 is an outer product).
 * The output shape comes from the inputs' shapes whenever infer runs, so unknown dims (any
 * number of them) resolve at plan time. The transposes are GEMM flags, not copies, which also
 * makes the gradients two GEMM nodes without permutes.
 */
#include <stdio.h>

#include "cpu/cpu_kernels.h"
#include "ops/ops_common.h"

/* ---- dot / batch_dot ---------------------------------------------------------------------- */

static kb_status infer_gemm(const char *op, const kb_attrs *a, const kb_desc *in, kb_desc *out, int nb) {
    KB_TRY(kb_require_float(op, "x", in[0].dtype));
    if (in[1].dtype != in[0].dtype)
        return kb_set_error(KB_ERR_DTYPE, "%s: x is %s but y is %s", op, kb_dtype_name(in[0].dtype),
                            kb_dtype_name(in[1].dtype));
    const kb_desc *x = &in[0], *y = &in[1];
    int c = (int)a->i64[0], ta = a->i64[1] != 0, tb = a->i64[2] != 0;
    if (c < 0 || x->rank < nb + c || y->rank < nb + c)
        return kb_set_error(KB_ERR_INTERNAL, "%s: GEMM node contracts %d axes of ranks %d and %d", op, c, x->rank,
                            y->rank);
    int m = x->rank - nb - c, n = y->rank - nb - c;
    char s1[160], s2[160];
    if (nb + m + n > KB_MAX_RANK)
        return kb_set_error(KB_ERR_SHAPE, "%s: result rank %d exceeds %d", op, nb + m + n, KB_MAX_RANK);
    if (nb && x->shape[0] >= 0 && y->shape[0] >= 0 && x->shape[0] != y->shape[0])
        return kb_set_error(KB_ERR_SHAPE, "%s: x %s and y %s have different batch sizes", op,
                            kb_shape_str(x, s1, sizeof s1), kb_shape_str(y, s2, sizeof s2));
    for (int i = 0; i < c; ++i) {
        int ax = nb + (ta ? i : m + i), ay = nb + (tb ? n + i : i);
        int64_t kx = x->shape[ax], ky = y->shape[ay];
        if (kx >= 0 && ky >= 0 && kx != ky)
            return kb_set_error(KB_ERR_SHAPE, "%s: x %s axis %d (%lld) and y %s axis %d (%lld) are contracted but differ",
                                op, kb_shape_str(x, s1, sizeof s1), ax, (long long)kx, kb_shape_str(y, s2, sizeof s2),
                                ay, (long long)ky);
    }
    kb_desc o;
    memset(&o, 0, sizeof o);
    o.dtype = x->dtype;
    o.rank = nb + m + n;
    if (nb) o.shape[0] = x->shape[0] >= 0 ? x->shape[0] : y->shape[0];
    for (int i = 0; i < m; ++i) o.shape[nb + i] = x->shape[nb + (ta ? c : 0) + i];
    for (int j = 0; j < n; ++j) o.shape[nb + m + j] = y->shape[nb + (tb ? 0 : c) + j];
    KB_TRY(kb_check_size(op, &o));
    *out = o;
    return KB_OK;
}
static kb_status infer_dot(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    return infer_gemm(op, a, in, out, 0);
}
static kb_status infer_batch_dot(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    return infer_gemm(op, a, in, out, 1);
}

static kb_tensor *gemm_node(const char *fn, kb_op_id op, kb_tensor *x, kb_tensor *y, int c, int ta, int tb) {
    kb_attrs at;
    memset(&at, 0, sizeof at);
    at.i64[0] = c;
    at.i64[1] = ta;
    at.i64[2] = tb;
    kb_tensor *in[2] = {x, y};
    return kb_node(fn, op, in, 2, &at);
}

/* With G = dout (B, Mdims, Ndims), m = |Mdims|, n = |Ndims|:
 *   dA = G . B^T: contract G's last n axes with y's Ndims; dB = A^T . G: contract x's Mdims with
 *   G's first m axes. Which end of x / y holds the contracted group follows ta / tb. */
static kb_status grad_gemm(kb_tensor *nd, kb_tensor *g, kb_tensor **dx) {
    kb_tensor *x = nd->in[0], *y = nd->in[1];
    int nb = nd->op == KB_OP_BATCH_DOT;
    const char *fn = nb ? "batch_dot" : "dot";
    int c = (int)nd->attrs.i64[0], ta = nd->attrs.i64[1] != 0, tb = nd->attrs.i64[2] != 0;
    int m = x->desc.rank - nb - c, n = y->desc.rank - nb - c;
    dx[0] = ta ? gemm_node(fn, nd->op, y, g, n, tb, 1) : gemm_node(fn, nd->op, g, y, n, 0, !tb);
    dx[1] = tb ? gemm_node(fn, nd->op, g, x, m, 1, ta) : gemm_node(fn, nd->op, x, g, m, !ta, 0);
    return KB_OK;
}
const kb_op_def kb_opdef_dot = {"dot", 2, 0, infer_dot, grad_gemm, kb_cpu_dot, KB_CUDA_KERNEL(dot)};
const kb_op_def kb_opdef_batch_dot = {"batch_dot", 2, 0, infer_batch_dot, grad_gemm, kb_cpu_batch_dot,
                                      KB_CUDA_KERNEL(batch_dot)};

static int check_pair(const char *fn, kb_tensor *x, kb_tensor *y) {
    if (!kb_check_tensor(fn, "x", x) || !kb_check_tensor(fn, "y", y)) return 0;
    if (x->ctx != y->ctx) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: x and y belong to different contexts", fn);
        return 0;
    }
    if (kb_require_float(fn, "x", x->desc.dtype) != KB_OK) return 0;
    if (x->desc.dtype != y->desc.dtype) {
        kb_set_error(KB_ERR_DTYPE, "%s: x is %s but y is %s", fn, kb_dtype_name(x->desc.dtype), kb_dtype_name(y->desc.dtype));
        return 0;
    }
    return 1;
}

/* Keras dot: matmul for rank <= 2, np.dot's rule above (contract x's last axis with y's -2). */
kb_tensor *kb_dot(kb_tensor *x, kb_tensor *y) {
    const char *fn = "kb_dot";
    if (!check_pair(fn, x, y)) return NULL;
    if (x->sparse) return kb_sparse_dot(x, y); /* tf.sparse.sparse_dense_matmul (ops/sparse.c) */
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
    if (rx - 1 + ry - 1 > KB_MAX_RANK) {
        kb_set_error(KB_ERR_SHAPE, "%s: result rank %d exceeds %d", fn, rx - 1 + ry - 1, KB_MAX_RANK);
        return NULL;
    }
    if (ry > 2) {
        /* y (B..., K, N) -> (K, B..., N): then x's last axis meets y's first, and the GEMM node's
         * output x.shape[:-1] + B... + (N,) is Keras' order without any reshape. */
        int perm[KB_MAX_RANK];
        perm[0] = ry - 2;
        for (int i = 0; i < ry - 2; ++i) perm[i + 1] = i;
        perm[ry - 1] = ry - 1;
        y = kb_permute_dimensions(y, perm, ry);
    }
    return gemm_node(fn, KB_OP_DOT, x, y, 1, 0, 0);
}

/* Keras batch_dot (spec 2.2). The contracted axis of x must end up last (ta = 0) or first after
 * the batch (ta = 1), y's first after the batch (tb = 0) or last (tb = 1): any other position
 * costs one permute. The GEMM node's output is then x's remaining axes followed by y's, which is
 * Keras' output rule; two rank-2 inputs give (B,) which Keras reports as (B, 1). */
kb_tensor *kb_batch_dot(kb_tensor *x, kb_tensor *y, const int *axes, int n_axes) {
    const char *fn = "kb_batch_dot";
    if (!check_pair(fn, x, y)) return NULL;
    int rx = x->desc.rank, ry = y->desc.rank;
    char s1[160], s2[160];
    kb_shape_str(&x->desc, s1, sizeof s1);
    kb_shape_str(&y->desc, s2, sizeof s2);
    if (rx < 2 || ry < 2) {
        kb_set_error(KB_ERR_SHAPE,
                     "%s: Can not do batch_dot on inputs with rank < 2. Received inputs with shapes %s and %s.", fn,
                     s1, s2);
        return NULL;
    }
    int64_t bx = x->desc.shape[0], by = y->desc.shape[0];
    if (bx >= 0 && by >= 0 && bx != by) {
        kb_set_error(KB_ERR_SHAPE,
                     "%s: Can not do batch_dot on inputs with different batch sizes. Received inputs with shapes %s "
                     "and %s.", fn, s1, s2);
        return NULL;
    }
    int a0, a1;
    if (n_axes > 0 && !axes) {
        kb_null_arg(fn, "axes");
        return NULL;
    }
    if (n_axes == 0) {
        a0 = rx - 1;
        a1 = ry == 2 ? ry - 1 : ry - 2;
    } else if (n_axes == 1) {
        a0 = a1 = axes[0];
    } else if (n_axes == 2) {
        a0 = axes[0];
        a1 = axes[1];
    } else {
        kb_set_error(KB_ERR_INVALID_ARGUMENT,
                     "%s: Multiple target dimensions are not supported. Expected: None, int, (int, int), Provided: "
                     "%d axes", fn, n_axes);
        return NULL;
    }
    if (a0 < -rx || a0 >= rx || a1 < -ry || a1 >= ry) {
        kb_set_error(KB_ERR_AXIS, "%s: axes (%d, %d) are out of range for x of rank %d and y of rank %d", fn, a0, a1,
                     rx, ry);
        return NULL;
    }
    if (a0 < 0) a0 += rx;
    if (a1 < 0) a1 += ry;
    if (a0 == 0 || a1 == 0) {
        kb_set_error(KB_ERR_AXIS,
                     "%s: Can not perform batch_dot over axis 0.If your inputs are not batched, add a dummy batch "
                     "dimension to your inputs using K.expand_dims(x, 0)", fn);
        return NULL;
    }
    int64_t d1 = x->desc.shape[a0], d2 = y->desc.shape[a1];
    if (d1 >= 0 && d2 >= 0 && d1 != d2) {
        kb_set_error(KB_ERR_SHAPE,
                     "%s: Can not do batch_dot on inputs with shapes %s and %s with axes=[%d, %d]. x.shape[%d] != "
                     "y.shape[%d] (%lld != %lld).", fn, s1, s2, a0, a1, a0, a1, (long long)d1, (long long)d2);
        return NULL;
    }
    if (rx - 2 + ry - 2 + 1 > KB_MAX_RANK) {
        kb_set_error(KB_ERR_SHAPE, "%s: result rank %d exceeds %d", fn, rx + ry - 3, KB_MAX_RANK);
        return NULL;
    }
    int ta = 0, tb = 0, perm[KB_MAX_RANK];
    if (a0 == 1 && rx > 2) {
        ta = 1;
    } else if (a0 != rx - 1) { /* move a0 to the end */
        for (int i = 0, j = 0; i < rx; ++i)
            if (i != a0) perm[j++] = i;
        perm[rx - 1] = a0;
        x = kb_permute_dimensions(x, perm, rx);
    }
    if (a1 == ry - 1 && ry > 2) {
        tb = 1;
    } else if (a1 != 1) { /* move a1 next to the batch axis */
        perm[0] = 0;
        perm[1] = a1;
        for (int i = 1, j = 2; i < ry; ++i)
            if (i != a1) perm[j++] = i;
        y = kb_permute_dimensions(y, perm, ry);
    }
    kb_tensor *z = gemm_node(fn, KB_OP_BATCH_DOT, x, y, 1, ta, tb);
    if (z && rx == 2 && ry == 2) {
        int64_t s[2] = {-1, 1};
        z = kb_reshape(z, s, 2);
    }
    return z;
}

/* ---- gather / scatter_add ------------------------------------------------------------------ */

static kb_status require_index(const char *op, const char *arg, kb_dtype dt) {
    if (dt == KB_INT32 || dt == KB_INT64) return KB_OK;
    return kb_set_error(KB_ERR_DTYPE, "%s: %s has dtype %s; it must be int32 or int64", op, arg,
                        kb_dtype_name(dt) ? kb_dtype_name(dt) : "invalid");
}

/* gather(reference, indices): out = indices.shape + reference.shape[1:], rows of reference. */
static kb_status infer_gather(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)a; (void)n_in;
    KB_TRY(require_index(op, "indices", in[1].dtype));
    if (in[0].rank < 1) return kb_set_error(KB_ERR_SHAPE, "%s: reference must have rank >= 1 (it is a scalar)", op);
    int r = in[1].rank + in[0].rank - 1;
    if (r > KB_MAX_RANK) return kb_set_error(KB_ERR_SHAPE, "%s: result rank %d exceeds %d", op, r, KB_MAX_RANK);
    kb_desc o;
    memset(&o, 0, sizeof o);
    o.dtype = in[0].dtype;
    o.rank = r;
    for (int i = 0; i < in[1].rank; ++i) o.shape[i] = in[1].shape[i];
    for (int i = 1; i < in[0].rank; ++i) o.shape[in[1].rank + i - 1] = in[0].shape[i];
    KB_TRY(kb_check_size(op, &o));
    *out = o;
    return KB_OK;
}
static kb_status grad_gather(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *in[3] = {dy, n->in[1], n->in[0]};
    dx[0] = kb_node("scatter_add", KB_OP_SCATTER_ADD, in, 3, NULL);
    dx[1] = NULL;
    return KB_OK;
}
const kb_op_def kb_opdef_gather = {"gather", 2, KB_OPF_CPU_ANY_DTYPE, infer_gather, grad_gather, kb_cpu_gather,
                                   KB_CUDA_KERNEL(gather)};

/* scatter_add(updates, indices, reference): zeros of reference's shape, then out[indices[i]] +=
 * updates[i] (rows). reference is read for its shape only. */
static kb_status infer_scatter_add(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    KB_TRY(kb_require_float_any(op, "updates", in[0].dtype));
    kb_desc want;
    kb_desc gin[2] = {in[2], in[1]};
    KB_TRY(infer_gather(op, a, gin, 2, &want));
    for (int i = 0; i < want.rank; ++i)
        if (in[0].rank != want.rank ||
            (in[0].shape[i] >= 0 && want.shape[i] >= 0 && in[0].shape[i] != want.shape[i])) {
            char s1[160], s2[160];
            return kb_set_error(KB_ERR_SHAPE, "%s: updates %s do not have the gathered shape %s", op,
                                kb_shape_str(&in[0], s1, sizeof s1), kb_shape_str(&want, s2, sizeof s2));
        }
    *out = in[2];
    out->dtype = in[0].dtype;
    return KB_OK;
}
static kb_status grad_scatter_add(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = kb_node2("gather", KB_OP_GATHER, dy, n->in[1]);
    dx[1] = NULL;
    dx[2] = NULL;
    return KB_OK;
}
const kb_op_def kb_opdef_scatter_add = {"scatter_add", 3, KB_OPF_INTERNAL, infer_scatter_add, grad_scatter_add,
                                        kb_cpu_scatter_add, KB_CUDA_KERNEL(scatter_add)};

/* Keras gather: tf.nn.embedding_lookup, rows along axis 0. */
kb_tensor *kb_gather(kb_tensor *reference, kb_tensor *indices) {
    const char *fn = "kb_gather";
    if (!kb_check_tensor(fn, "reference", reference) || !kb_check_tensor(fn, "indices", indices)) return NULL;
    if (reference->ctx != indices->ctx) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: reference and indices belong to different contexts", fn);
        return NULL;
    }
    return kb_node2(fn, KB_OP_GATHER, reference, indices);
}
