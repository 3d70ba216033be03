/*
 * Sparse COO tensors (Keras placeholder(sparse=True), is_sparse, to_dense, dot with a sparse
 * left operand).
 *
 * A sparse tensor is a sparse_to_dense node flagged `sparse` whose inputs are its components:
 * indices (nnz, rank) int64, values (nnz,), and a "shape carrier" whose shape is the dense shape
 * (its data is never read: a sparse placeholder's carrier is a data-less placeholder fed with the
 * dense shape). kb_dot reads the components and never densifies; any other op consuming the
 * tensor sees its dense value (TF would refuse most of them; densifying is the forgiving reading
 * of the same math). Duplicate indices are summed (the COO convention of scipy and
 * tf.sparse.add); an index outside the dense shape is KB_ERR_INVALID_ARGUMENT on the CPU and is
 * skipped by the CUDA kernels (a device-side check would need a sync per call).
 *
 * Ops (attrs.i64[0] of sparse_dot / sparse_dot_grad_values: 1 = use A^T):
 *   sparse_to_dense(indices, values, carrier)           -> carrier's shape, values' dtype
 *   sparse_values_at(dense, indices)                    -> (nnz,) = dense[indices[j]]
 *   sparse_dot(indices, values, carrier, y)             -> op(A) . y, A (M, K) the dense matrix
 *   sparse_dot_grad_values(indices, dy, y, carrier)     -> (nnz,) d values of sparse_dot
 */
#include <stdio.h>

#include "cpu/cpu_kernels.h"
#include "ops/ops_common.h"

static int sparse_value_dtype(kb_dtype dt) {
    return dt == KB_FLOAT32 || dt == KB_FLOAT64 || dt == KB_INT32 || dt == KB_INT64;
}

/* indices (nnz, rank) int64 against a dense rank and an nnz (-1: unknown). */
static kb_status check_indices(const char *op, const kb_desc *ix, int rank, int64_t nnz) {
    if (ix->dtype != KB_INT64)
        return kb_set_error(KB_ERR_DTYPE, "%s: sparse indices must be int64, got %s", op, kb_dtype_name(ix->dtype));
    if (ix->rank != 2 || (ix->shape[1] >= 0 && ix->shape[1] != rank))
        return kb_set_error(KB_ERR_SHAPE, "%s: sparse indices must have shape (nnz, %d)", op, rank);
    if (nnz >= 0 && ix->shape[0] >= 0 && ix->shape[0] != nnz)
        return kb_set_error(KB_ERR_SHAPE, "%s: %lld indices but %lld values", op, (long long)ix->shape[0], (long long)nnz);
    return KB_OK;
}

static kb_status check_values(const char *op, const kb_desc *v) {
    if (!sparse_value_dtype(v->dtype))
        return kb_set_error(KB_ERR_DTYPE, "%s: sparse values must be float32, float64, int32 or int64, got %s", op,
                            kb_dtype_name(v->dtype) ? kb_dtype_name(v->dtype) : "invalid");
    if (v->rank != 1) return kb_set_error(KB_ERR_SHAPE, "%s: sparse values must have rank 1, got %d", op, v->rank);
    return KB_OK;
}

/* ---- sparse_to_dense ---- */

static kb_status infer_to_dense(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)a; (void)n_in;
    KB_TRY(check_values(op, &in[1]));
    KB_TRY(check_indices(op, &in[0], in[2].rank, in[1].shape[0]));
    *out = in[2];
    out->dtype = in[1].dtype;
    return KB_OK;
}
static kb_status grad_to_dense(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = dx[2] = NULL;
    dx[1] = kb_dtype_is_float(n->desc.dtype) ? kb_node2("sparse_values_at", KB_OP_SPARSE_VALUES_AT, dy, n->in[0]) : NULL;
    return KB_OK;
}
const kb_op_def kb_opdef_sparse_to_dense = {"sparse_to_dense", 3, 0, infer_to_dense, grad_to_dense,
                                            kb_cpu_sparse_to_dense, KB_CUDA_KERNEL(sparse_to_dense)};

/* ---- sparse_values_at(dense, indices) ---- */

static kb_status infer_values_at(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)a; (void)n_in;
    if (!sparse_value_dtype(in[0].dtype))
        return kb_set_error(KB_ERR_DTYPE, "%s: values must be float32, float64, int32 or int64", op);
    KB_TRY(check_indices(op, &in[1], in[0].rank, -1));
    memset(out, 0, sizeof *out);
    out->dtype = in[0].dtype;
    out->rank = 1;
    out->shape[0] = in[1].shape[0];
    return KB_OK;
}
/* Linear in dense: its adjoint scatters g back (a plain sparse_to_dense, carrier = dense). */
static kb_status grad_values_at(kb_tensor *n, kb_tensor *g, kb_tensor **dx) {
    kb_tensor *in[3] = {n->in[1], g, n->in[0]};
    dx[0] = kb_node("sparse_to_dense", KB_OP_SPARSE_TO_DENSE, in, 3, NULL);
    dx[1] = NULL;
    return KB_OK;
}
const kb_op_def kb_opdef_sparse_values_at = {"sparse_values_at", 2, KB_OPF_INTERNAL, infer_values_at, grad_values_at,
                                             kb_cpu_sparse_values_at, KB_CUDA_KERNEL(sparse_values_at)};

/* ---- sparse_dot(indices, values, carrier, y) ---- */

static kb_status infer_sparse_dot(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    KB_TRY(check_values(op, &in[1]));
    KB_TRY(kb_require_float(op, "the sparse values", in[1].dtype));
    if (in[3].dtype != in[1].dtype)
        return kb_set_error(KB_ERR_DTYPE, "%s: the sparse x is %s but y is %s", op, kb_dtype_name(in[1].dtype),
                            kb_dtype_name(in[3].dtype));
    if (in[2].rank != 2 || in[3].rank != 2)
        return kb_set_error(KB_ERR_NOT_SUPPORTED, "%s: a sparse dot takes a 2-D sparse x and a 2-D y (got ranks %d, %d)",
                            op, in[2].rank, in[3].rank);
    KB_TRY(check_indices(op, &in[0], 2, in[1].shape[0]));
    int t = a->i64[0] != 0;
    int64_t rows = in[2].shape[t], k = in[2].shape[1 - t], ky = in[3].shape[0];
    if (k >= 0 && ky >= 0 && k != ky)
        return kb_set_error(KB_ERR_SHAPE, "%s: the sparse x has %lld columns but y has %lld rows", op, (long long)k,
                            (long long)ky);
    memset(out, 0, sizeof *out);
    out->dtype = in[1].dtype;
    out->rank = 2;
    out->shape[0] = rows;
    out->shape[1] = in[3].shape[1];
    return KB_OK;
}
static kb_tensor *sparse_dot_node(const char *fn, kb_tensor *ix, kb_tensor *v, kb_tensor *carrier, kb_tensor *y,
                                  int t) {
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.i64[0] = t;
    kb_tensor *in[4] = {ix, v, carrier, y};
    return kb_node(fn, KB_OP_SPARSE_DOT, in, 4, &a);
}
static kb_tensor *grad_values_node(kb_tensor *ix, kb_tensor *dy, kb_tensor *y, kb_tensor *carrier, int t) {
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.i64[0] = t;
    kb_tensor *in[4] = {ix, dy, y, carrier};
    return kb_node("sparse_dot_grad_values", KB_OP_SPARSE_DOT_GRAD_VALUES, in, 4, &a);
}
/* out[o_j] += v_j y[r_j] with (o_j, r_j) = (row, col) of entry j, swapped for A^T. */
static kb_status grad_sparse_dot(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    int t = n->attrs.i64[0] != 0;
    dx[0] = dx[2] = NULL;
    dx[1] = grad_values_node(n->in[0], dy, n->in[3], n->in[2], t);
    dx[3] = sparse_dot_node("sparse_dot", n->in[0], n->in[1], n->in[2], dy, !t);
    return KB_OK;
}
const kb_op_def kb_opdef_sparse_dot = {"sparse_dot", 4, KB_OPF_INTERNAL, infer_sparse_dot, grad_sparse_dot,
                                       kb_cpu_sparse_dot, KB_CUDA_KERNEL(sparse_dot)};

/* ---- sparse_dot_grad_values(indices, dy, y, carrier): g_j = <dy[o_j, :], y[r_j, :]> ---- */

static kb_status infer_grad_values(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)a; (void)n_in;
    KB_TRY(kb_require_float(op, "dy", in[1].dtype));
    if (in[2].dtype != in[1].dtype || in[1].rank != 2 || in[2].rank != 2 || in[3].rank != 2)
        return kb_set_error(KB_ERR_INTERNAL, "%s: dy and y must be 2-D of one dtype", op);
    KB_TRY(check_indices(op, &in[0], 2, -1));
    memset(out, 0, sizeof *out);
    out->dtype = in[1].dtype;
    out->rank = 1;
    out->shape[0] = in[0].shape[0];
    return KB_OK;
}
/* Bilinear in (dy, y): each adjoint is a sparse_dot with the incoming g as the values. */
static kb_status grad_grad_values(kb_tensor *n, kb_tensor *g, kb_tensor **dx) {
    int t = n->attrs.i64[0] != 0;
    dx[0] = dx[3] = NULL;
    dx[1] = sparse_dot_node("sparse_dot", n->in[0], g, n->in[3], n->in[2], t);
    dx[2] = sparse_dot_node("sparse_dot", n->in[0], g, n->in[3], n->in[1], !t);
    return KB_OK;
}
const kb_op_def kb_opdef_sparse_dot_grad_values = {"sparse_dot_grad_values", 4, KB_OPF_INTERNAL, infer_grad_values,
                                                   grad_grad_values, kb_cpu_sparse_dot_grad_values,
                                                   KB_CUDA_KERNEL(sparse_dot_grad_values)};

/* ---- public API ---- */

static kb_tensor *make_sparse(const char *fn, kb_tensor *indices, kb_tensor *values, kb_tensor *carrier) {
    kb_tensor *in[3] = {indices, values, carrier};
    kb_tensor *t = kb_node(fn, KB_OP_SPARSE_TO_DENSE, in, 3, NULL);
    if (t) t->sparse = 1;
    return t;
}

kb_tensor *kb_sparse_tensor(kb_tensor *indices, kb_tensor *values, kb_tensor *dense_shape_like) {
    return make_sparse("kb_sparse_tensor", indices, values, dense_shape_like);
}

kb_tensor *kb_sparse_placeholder(kb_context *ctx, const int64_t *shape, int rank, kb_dtype dtype, const char *name) {
    const char *fn = "kb_sparse_placeholder";
    char nm[80];
    kb_tensor *carrier = kb_placeholder(ctx, shape, rank, dtype, name);
    if (!carrier) return NULL;
    if (!sparse_value_dtype(carrier->desc.dtype)) {
        kb_set_error(KB_ERR_DTYPE, "%s: sparse values must be float32, float64, int32 or int64, got %s", fn,
                     kb_dtype_name(carrier->desc.dtype));
        return NULL;
    }
    carrier->shape_only = 1;
    int64_t is[2] = {KB_NONE, rank}, vs[1] = {KB_NONE};
    snprintf(nm, sizeof nm, "%s/indices", carrier->name);
    kb_tensor *ix = kb_placeholder(ctx, is, 2, KB_INT64, nm);
    snprintf(nm, sizeof nm, "%s/values", carrier->name);
    kb_tensor *v = ix ? kb_placeholder(ctx, vs, 1, carrier->desc.dtype, nm) : NULL;
    kb_tensor *t = v ? make_sparse(fn, ix, v, carrier) : NULL;
    if (t) {
        t->sparse_placeholder = 1;
        snprintf(t->name, sizeof t->name, "%s", carrier->name);
    }
    return t;
}

int kb_is_sparse(const kb_tensor *x) { return x && x->magic == KB_TENSOR_MAGIC && x->sparse; }

kb_tensor *kb_to_dense(kb_tensor *x) {
    if (!kb_check_tensor("kb_to_dense", "x", x)) return NULL;
    if (!x->sparse) return x; /* Keras: a dense tensor is returned as is */
    kb_tensor *in[3] = {x->in[0], x->in[1], x->in[2]};
    return kb_node("kb_to_dense", KB_OP_SPARSE_TO_DENSE, in, 3, NULL);
}

kb_tensor *kb_sparse_dot(kb_tensor *x, kb_tensor *y) {
    return sparse_dot_node("kb_dot", x->in[0], x->in[1], x->in[2], y, 0);
}
