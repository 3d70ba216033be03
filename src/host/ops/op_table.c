/* The op table (expanded from ops.def) and the validation/shape helpers shared by families. */
#include <stdio.h>

#include "ops/ops_common.h"

const kb_op_def *const kb_op_table[KB_OP_COUNT] = {
#define KB_OP(ID, name) &kb_opdef_##name,
#include "ops/ops.def"
#undef KB_OP
};

kb_status kb_kernel_alias(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)ex; (void)a; (void)in; (void)n_in; (void)out;
    return KB_OK;
}

int64_t kb_desc_size(const kb_desc *d) {
    int64_t n = 1;
    int big = 0;
    for (int i = 0; i < d->rank; ++i) {
        if (d->shape[i] < 0) return -1;
        if (d->shape[i] == 0) return 0;
        if (big || __builtin_mul_overflow(n, d->shape[i], &n) || n > KB_MAX_ELEMS) big = 1;
    }
    return big ? KB_MAX_ELEMS + 1 : n;
}

kb_status kb_check_size(const char *op, const kb_desc *d) {
    if (kb_desc_size(d) <= KB_MAX_ELEMS) return KB_OK;
    char s[160];
    return kb_set_error(KB_ERR_SHAPE, "%s: shape %s has more than 2^56 elements", op, kb_shape_str(d, s, sizeof s));
}

kb_status kb_broadcast_desc(const char *op, const kb_desc *a, const kb_desc *b, kb_desc *out) {
    int r = a->rank > b->rank ? a->rank : b->rank;
    kb_desc o;
    memset(&o, 0, sizeof o);
    o.dtype = a->dtype;
    o.rank = r;
    for (int i = 0; i < r; ++i) {
        int ia = i - (r - a->rank), ib = i - (r - b->rank);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        int64_t d;
        if (da == db) d = da;
        else if (da == 1) d = db;
        else if (db == 1) d = da;
        else if (da == KB_NONE) d = db; /* None broadcasts to db, or fails at run time */
        else if (db == KB_NONE) d = da;
        else {
            char sa[128], sb[128];
            return kb_set_error(KB_ERR_SHAPE, "%s: shapes %s and %s cannot be broadcast (axis %d: %lld vs %lld)", op,
                                kb_shape_str(a, sa, sizeof sa), kb_shape_str(b, sb, sizeof sb), i, (long long)da,
                                (long long)db);
        }
        o.shape[i] = d;
    }
    *out = o;
    return KB_OK;
}

kb_status kb_require_float(const char *op, const char *arg, kb_dtype dt) {
    if (dt == KB_FLOAT32 || dt == KB_FLOAT64) return KB_OK;
    return kb_set_error(KB_ERR_DTYPE, "%s: %s has dtype %s; this op takes float32 or float64", op, arg,
                        kb_dtype_name(dt) ? kb_dtype_name(dt) : "invalid");
}

kb_status kb_require_float_any(const char *op, const char *arg, kb_dtype dt) {
    if (kb_dtype_is_float(dt)) return KB_OK;
    return kb_set_error(KB_ERR_DTYPE, "%s: %s has dtype %s; this op takes float16, bfloat16, float32 or float64", op,
                        arg, kb_dtype_name(dt) ? kb_dtype_name(dt) : "invalid");
}

kb_status kb_require_numeric(const char *op, const char *arg, kb_dtype dt) {
    if (kb_dtype_valid(dt) && dt != KB_BOOL) return KB_OK;
    return kb_set_error(KB_ERR_DTYPE, "%s: %s has dtype %s; this op takes a float or integer dtype", op, arg,
                        kb_dtype_name(dt) ? kb_dtype_name(dt) : "invalid");
}

kb_status kb_infer_unary_float(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)a; (void)n_in;
    KB_TRY(kb_require_float(op, "x", in[0].dtype));
    *out = in[0];
    return KB_OK;
}

kb_status kb_infer_binary_float(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)a; (void)n_in;
    KB_TRY(kb_require_float(op, "x", in[0].dtype));
    if (in[1].dtype != in[0].dtype)
        return kb_set_error(KB_ERR_DTYPE, "%s: x is %s but y is %s (cast one of them first)", op,
                            kb_dtype_name(in[0].dtype), kb_dtype_name(in[1].dtype));
    return kb_broadcast_desc(op, &in[0], &in[1], out);
}

kb_status kb_infer_same(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)op; (void)a; (void)n_in;
    *out = in[0];
    return KB_OK;
}

int kb_desc_same_known_shape(const kb_desc *a, const kb_desc *b) {
    if (a->rank != b->rank) return 0;
    for (int i = 0; i < a->rank; ++i)
        if (a->shape[i] < 0 || a->shape[i] != b->shape[i]) return 0;
    return 1;
}

kb_status kb_norm_axis(const char *op, int axis, int rank, int *out) {
    if (axis < -rank || axis >= rank || rank == 0)
        return kb_set_error(KB_ERR_AXIS, "%s: axis %d is out of range for rank %d", op, axis, rank);
    *out = axis < 0 ? axis + rank : axis;
    return KB_OK;
}

kb_status kb_axes_mask(const char *fn, const int *axes, int n_axes, int rank, uint32_t *mask) {
    uint32_t m = 0;
    if (n_axes < 0 || (n_axes > 0 && !axes))
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: axes is NULL with n_axes = %d", fn, n_axes);
    if (n_axes == 0) {
        *mask = rank ? (uint32_t)((1u << rank) - 1u) : 0u;
        return KB_OK;
    }
    for (int i = 0; i < n_axes; ++i) {
        int ax;
        if (axes[i] < -rank || axes[i] >= rank)
            return kb_set_error(KB_ERR_AXIS, "%s: axis %d is out of range for rank %d", fn, axes[i], rank);
        ax = axes[i] < 0 ? axes[i] + rank : axes[i];
        if (m & (1u << ax)) return kb_set_error(KB_ERR_AXIS, "%s: axis %d is repeated", fn, axes[i]);
        m |= 1u << ax;
    }
    *mask = m;
    return KB_OK;
}

kb_tensor *kb_g_sum_like(kb_tensor *g, kb_tensor *ref) {
    if (g && ref && kb_desc_same_known_shape(&g->desc, &ref->desc)) return g;
    return kb_node2("sum_like", KB_OP_SUM_LIKE, g, ref);
}

kb_tensor *kb_g_reshape_like(kb_tensor *g, kb_tensor *ref) {
    return kb_node2("reshape_like", KB_OP_RESHAPE_LIKE, g, ref);
}

kb_tensor *kb_g_sum_keep(kb_tensor *x, int axis) { return kb_sum(x, &axis, 1, 1); }
