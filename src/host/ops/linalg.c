/* Linear algebra ops: dot (one GEMM; the Keras nD rule composed from permute/reshape around it). */
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

