/*
 * Batch normalization: Keras normalize_batch_in_training and batch_normalization.
 *
 * Design. An op has one output, and batch norm training has three forward results (normed,
 * mean, var) and three backward ones (dx, dgamma, dbeta). Instead of one op with a packed
 * output (which would need a copy of the large normed / dx out of the pack), the work is split
 * where the data dependencies split anyway:
 *   bn_moments(x) -> (2, C)             rows [mean; var] per channel (one read of x);
 *   bn_normalize(x, moments, gamma, beta) -> normed   (one read of x, one write);
 *   bn_grad_stats(x, dy, moments, gamma) -> (3, C)   rows [sum dy = dbeta; sum dy*xhat = dgamma;
 *                                                     gamma] (one read of x and dy);
 *   bn_grad_input(x, dy, moments, stats) -> dx        (one read of x and dy, one write).
 * mean / var / dgamma / dbeta are cheap (C-element) slices of the small packed outputs. The
 * memory traffic is the same as cuDNN's fused ForwardTraining / BackwardEx calls, which also
 * read x twice forward and x, dy twice backward; cuDNN itself is not called because each of its
 * calls produces results that belong to two of our ops (it would recompute), and because its
 * epsilon floor (1e-5) and layout rules do not cover Keras' cases. gamma is carried as row 2 of
 * bn_grad_stats so bn_grad_input takes four inputs.
 *
 * "Channels" are the kept (not reduced) axes, which must form one contiguous block with known
 * dims: x is viewed as (O, C, I) (O = dims before the block, C = product of the block, I = dims
 * after it) and reduced over O and I. This covers NHWC [0,1,2], NCHW [0,2,3], 2-D [0] and a
 * reduction over all axes (C = 1). Every other configuration (kept axes not contiguous, a kept
 * dim unknown at build, gamma / beta not of C elements) takes the composite path of mean, var,
 * sqrt and broadcasting, with Keras' broadcast rules.
 *
 * The fused gradient: bn_normalize's rule returns the total derivative through x (including
 * the path through the batch moments, which are a function of the same x), so it gives the
 * moments input no gradient. Gradients reaching mean / var from elsewhere flow through
 * bn_moments' own rule. Second derivatives: the rules of bn_moments, bn_grad_stats and
 * bn_grad_input differentiate a composite expression of the same function (reference graphs
 * of table ops), so gradients of gradients are exact, if not fast.
 *
 * attrs: axes_mask = reduced axes (bit i = axis i of x); value = epsilon (bn_normalize,
 * bn_grad_stats, bn_grad_input).
 */
#include <stdlib.h>

#include "cpu/cpu_kernels.h"
#include "ops/ops_common.h"

/* ---- layout --------------------------------------------------------------------------------- */

/* Kept axes [*k0, *k1) of a mask over rank axes; 0 when they are not contiguous. No kept axis
 * gives an empty block. */
static int kept_block(uint32_t mask, int rank, int *k0, int *k1) {
    int a = -1, b = -1;
    for (int i = 0; i < rank; ++i)
        if (!(mask & (1u << i))) {
            if (a < 0) a = i;
            else if (b != i) return 0;
            b = i + 1;
        }
    if (a < 0) a = b = rank;
    *k0 = a;
    *k1 = b;
    return 1;
}

/* Product of the kept dims: KB_NONE if one is unknown. */
static int64_t kept_count(const kb_desc *d, uint32_t mask) {
    int64_t c = 1;
    for (int i = 0; i < d->rank; ++i)
        if (!(mask & (1u << i))) {
            if (d->shape[i] < 0) return KB_NONE;
            c *= d->shape[i];
        }
    return c;
}

/* ---- infer rules -------------------------------------------------------------------------- */

static kb_status check_x(const char *op, const kb_attrs *a, const kb_desc *x) {
    int k0, k1;
    kb_status st = kb_require_float_any(op, "x", x->dtype);
    if (st) return st;
    if (x->rank < 1 || (x->rank < 32 && (a->axes_mask >> x->rank) != 0) || !kept_block(a->axes_mask, x->rank, &k0, &k1))
        return kb_set_error(KB_ERR_AXIS, "%s: reduction axes mask 0x%x does not leave a contiguous block of kept axes "
                            "of a rank-%d x", op, (unsigned)a->axes_mask, x->rank);
    return KB_OK;
}

/* A (rows, C) per-channel input of x's dtype. */
static kb_status check_rows(const char *op, const char *arg, const kb_desc *d, int rows, int64_t c, kb_dtype dt) {
    if (d->dtype != dt)
        return kb_set_error(KB_ERR_DTYPE, "%s: %s has dtype %s, x has %s", op, arg, kb_dtype_name(d->dtype),
                            kb_dtype_name(dt));
    if (d->rank != 2 || (d->shape[0] >= 0 && d->shape[0] != rows) || (c >= 0 && d->shape[1] >= 0 && d->shape[1] != c))
        return kb_set_error(KB_ERR_SHAPE, "%s: %s must have shape (%d, %lld)", op, arg, rows, (long long)c);
    return KB_OK;
}

static kb_status check_vec(const char *op, const char *arg, const kb_desc *d, int64_t c, kb_dtype dt) {
    if (d->dtype != dt)
        return kb_set_error(KB_ERR_DTYPE, "%s: %s has dtype %s, x has %s", op, arg, kb_dtype_name(d->dtype),
                            kb_dtype_name(dt));
    if (d->rank != 1 || (c >= 0 && d->shape[0] >= 0 && d->shape[0] != c))
        return kb_set_error(KB_ERR_SHAPE, "%s: %s must have shape (%lld,)", op, arg, (long long)c);
    return KB_OK;
}

static kb_status check_same_shape(const char *op, const char *arg, const kb_desc *d, const kb_desc *x) {
    if (d->dtype != x->dtype)
        return kb_set_error(KB_ERR_DTYPE, "%s: %s has dtype %s, x has %s", op, arg, kb_dtype_name(d->dtype),
                            kb_dtype_name(x->dtype));
    int bad = d->rank != x->rank;
    for (int i = 0; !bad && i < d->rank; ++i)
        bad = d->shape[i] >= 0 && x->shape[i] >= 0 && d->shape[i] != x->shape[i];
    if (bad) return kb_set_error(KB_ERR_SHAPE, "%s: %s must have x's shape", op, arg);
    return KB_OK;
}

static void set_rows(kb_desc *out, kb_dtype dt, int rows, int64_t c) {
    memset(out, 0, sizeof *out);
    out->dtype = dt;
    out->rank = 2;
    out->shape[0] = rows;
    out->shape[1] = c;
}

static kb_status infer_moments(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    kb_status st = check_x(op, a, &in[0]);
    if (st) return st;
    set_rows(out, in[0].dtype, 2, kept_count(&in[0], a->axes_mask));
    return KB_OK;
}

static kb_status infer_normalize(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    kb_status st = check_x(op, a, &in[0]);
    int64_t c = kept_count(&in[0], a->axes_mask);
    if (!st) st = check_rows(op, "moments", &in[1], 2, c, in[0].dtype);
    if (!st) st = check_vec(op, "gamma", &in[2], c, in[0].dtype);
    if (!st) st = check_vec(op, "beta", &in[3], c, in[0].dtype);
    if (st) return st;
    *out = in[0];
    return KB_OK;
}

static kb_status infer_grad_stats(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    kb_status st = check_x(op, a, &in[0]);
    int64_t c = kept_count(&in[0], a->axes_mask);
    if (!st) st = check_same_shape(op, "dy", &in[1], &in[0]);
    if (!st) st = check_rows(op, "moments", &in[2], 2, c, in[0].dtype);
    if (!st) st = check_vec(op, "gamma", &in[3], c, in[0].dtype);
    if (st) return st;
    set_rows(out, in[0].dtype, 3, c);
    return KB_OK;
}

static kb_status infer_grad_input(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    kb_status st = check_x(op, a, &in[0]);
    int64_t c = kept_count(&in[0], a->axes_mask);
    if (!st) st = check_same_shape(op, "dy", &in[1], &in[0]);
    if (!st) st = check_rows(op, "moments", &in[2], 2, c, in[0].dtype);
    if (!st) st = check_rows(op, "stats", &in[3], 3, c, in[0].dtype);
    if (st) return st;
    *out = in[0];
    return KB_OK;
}

/* ---- per-channel graph helpers (kept dims are known wherever these run) ---------------------- */

/* Reduced axes of a mask as a list; returns their count. */
static int mask_axes(uint32_t mask, int rank, int *axes) {
    int n = 0;
    for (int i = 0; i < rank; ++i)
        if (mask & (1u << i)) axes[n++] = i;
    return n;
}

/* Row k of a (rows, C) tensor as a (C,) vector. */
static kb_tensor *row(kb_tensor *m, int k, int64_t c) {
    int64_t start[2] = {k, 0}, size[2] = {1, c};
    return kb_reshape(kb_slice(m, start, size, 2), &c, 1);
}

/* A (C,) vector as x's rank with 1 on the reduced axes (broadcasts per channel). */
static kb_tensor *per_channel(kb_tensor *v, const kb_tensor *x, uint32_t mask) {
    int64_t s[KB_MAX_RANK];
    for (int i = 0; i < x->desc.rank; ++i) s[i] = (mask & (1u << i)) ? 1 : x->desc.shape[i];
    return kb_reshape(v, s, x->desc.rank);
}

/* Sum of t (x's shape) over the reduced axes, as a (C,) vector. */
static kb_tensor *channel_sum(kb_tensor *t, uint32_t mask, int64_t c) {
    int axes[KB_MAX_RANK];
    int n = mask_axes(mask, t->desc.rank, axes);
    return kb_reshape(kb_sum(t, axes, n, 0), &c, 1);
}

/* Rows stacked into a (rows, C) tensor. */
static kb_tensor *stack_rows(kb_tensor **v, int n, int64_t c) {
    kb_tensor *r[3];
    int64_t s[2] = {1, c};
    for (int i = 0; i < n; ++i) r[i] = kb_reshape(v[i], s, 2);
    return kb_concatenate(r, n, 0);
}

/* 1 / sqrt(var + epsilon) of a (C,) variance vector. */
static kb_tensor *inv_std(kb_tensor *var, double eps) {
    if (!var) return NULL;
    kb_context *ctx = var->ctx;
    kb_dtype dt = var->desc.dtype;
    return kb_divide(kb_scalar(ctx, 1.0, dt), kb_sqrt(kb_add(var, kb_scalar(ctx, eps, dt))));
}

/* The functions of the ops as composites (second derivatives differentiate these). */
static kb_tensor *ref_moments(kb_tensor *x, uint32_t mask, int64_t c) {
    int axes[KB_MAX_RANK];
    int n = mask_axes(mask, x->desc.rank, axes);
    kb_tensor *v[2] = {kb_mean(x, axes, n, 0), kb_var(x, axes, n, 0)};
    return stack_rows(v, 2, c);
}

static kb_tensor *ref_grad_stats(kb_tensor *x, kb_tensor *dy, kb_tensor *m, kb_tensor *gamma, uint32_t mask,
                                 double eps, int64_t c) {
    kb_tensor *xhat = kb_multiply(kb_subtract(x, per_channel(row(m, 0, c), x, mask)),
                                  per_channel(inv_std(row(m, 1, c), eps), x, mask));
    kb_tensor *v[3] = {channel_sum(dy, mask, c), channel_sum(kb_multiply(dy, xhat), mask, c), gamma};
    return stack_rows(v, 3, c);
}

static kb_tensor *ref_grad_input(kb_tensor *x, kb_tensor *dy, kb_tensor *m, kb_tensor *g, uint32_t mask, double eps,
                                 int64_t c) {
    kb_tensor *s = inv_std(row(m, 1, c), eps);
    kb_tensor *cnt = channel_sum(kb_ones_like(x, x->desc.dtype), mask, c);
    kb_tensor *a = kb_multiply(row(g, 2, c), s);
    kb_tensor *b = kb_divide(row(g, 0, c), cnt);
    kb_tensor *d = kb_divide(kb_multiply(row(g, 1, c), s), cnt);
    kb_tensor *xc = kb_subtract(x, per_channel(row(m, 0, c), x, mask));
    kb_tensor *inner = kb_subtract(kb_subtract(dy, per_channel(b, x, mask)), kb_multiply(xc, per_channel(d, x, mask)));
    return kb_multiply(per_channel(a, x, mask), inner);
}

/* dx of a composite f(inputs) against g: each input replaced by an identity view so the
 * derivatives are partial (moments and stats are themselves functions of x and dy). */
static kb_status grad_of_ref(kb_tensor *n, kb_tensor *g, kb_tensor **dx) {
    kb_tensor *t[4];
    for (int i = 0; i < n->n_in; ++i) t[i] = kb_identity(n->in[i]);
    uint32_t mask = n->attrs.axes_mask;
    double eps = n->attrs.value;
    int64_t c = kept_count(&n->in[0]->desc, mask);
    kb_tensor *f;
    if (n->op == KB_OP_BN_MOMENTS) f = ref_moments(t[0], mask, c);
    else if (n->op == KB_OP_BN_GRAD_STATS) f = ref_grad_stats(t[0], t[1], t[2], t[3], mask, eps, c);
    else f = ref_grad_input(t[0], t[1], t[2], t[3], mask, eps, c);
    kb_tensor *loss = kb_sum(kb_multiply(f, g), NULL, 0, 0);
    if (!loss) return kb_last_status();
    return kb_gradients(loss, t, n->n_in, dx);
}

/* The fused backward: dx is the total derivative through x (moments included), so the moments
 * input gets none; dgamma and dbeta are rows of the stats. */
static kb_status grad_normalize(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *x = n->in[0], *m = n->in[1];
    if (m->kind != KB_KIND_OP || m->op != KB_OP_BN_MOMENTS || m->in[0] != x)
        return kb_set_error(KB_ERR_INTERNAL, "bn_normalize: moments input is not bn_moments of x");
    int64_t c = kept_count(&x->desc, n->attrs.axes_mask);
    kb_tensor *in[4] = {x, dy, m, n->in[2]};
    kb_tensor *stats = kb_node("bn_grad_stats", KB_OP_BN_GRAD_STATS, in, 4, &n->attrs);
    in[3] = stats;
    dx[0] = kb_node("bn_grad_input", KB_OP_BN_GRAD_INPUT, in, 4, &n->attrs);
    dx[1] = NULL;
    dx[2] = row(stats, 1, c);
    dx[3] = row(stats, 0, c);
    return KB_OK;
}

const kb_op_def kb_opdef_bn_moments = {"bn_moments", 1, KB_OPF_INTERNAL, infer_moments, grad_of_ref,
                                       kb_cpu_bn_moments, KB_CUDA_KERNEL(bn_moments)};
const kb_op_def kb_opdef_bn_normalize = {"bn_normalize", 4, KB_OPF_INTERNAL, infer_normalize, grad_normalize,
                                         kb_cpu_bn_normalize, KB_CUDA_KERNEL(bn_normalize)};
const kb_op_def kb_opdef_bn_grad_stats = {"bn_grad_stats", 4, KB_OPF_INTERNAL, infer_grad_stats, grad_of_ref,
                                          kb_cpu_bn_grad_stats, KB_CUDA_KERNEL(bn_grad_stats)};
const kb_op_def kb_opdef_bn_grad_input = {"bn_grad_input", 4, KB_OPF_INTERNAL, infer_grad_input, grad_of_ref,
                                          kb_cpu_bn_grad_input, KB_CUDA_KERNEL(bn_grad_input)};

/* ---- public functions ------------------------------------------------------------------------ */

/* (x - mean) * (gamma / sqrt(var + eps)) + beta with broadcasting; gamma / beta may be NULL. */
static kb_tensor *bn_composite(kb_tensor *x, kb_tensor *mean, kb_tensor *var, kb_tensor *beta, kb_tensor *gamma,
                               double eps) {
    /* stop at the first failing op so its message (a broadcast error, say) is the one kept */
    kb_tensor *inv = inv_std(var, eps);
    if (inv && gamma) inv = kb_multiply(inv, gamma);
    kb_tensor *xc = inv ? kb_subtract(x, mean) : NULL;
    kb_tensor *y = xc ? kb_multiply(xc, inv) : NULL;
    return y && beta ? kb_add(y, beta) : y;
}

static int has_size(const kb_tensor *t, int64_t c) {
    int64_t n = kb_desc_size(&t->desc);
    return n == c;
}

kb_status kb_normalize_batch_in_training(kb_tensor *x, kb_tensor *gamma, kb_tensor *beta, const int *reduction_axes,
                                         int n_axes, double epsilon, kb_tensor **normed, kb_tensor **mean,
                                         kb_tensor **var) {
    const char *fn = "kb_normalize_batch_in_training";
    if (!normed || !mean || !var)
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: normed, mean or var (outputs) is NULL", fn);
    *normed = *mean = *var = NULL;
    if (!kb_check_tensor(fn, "x", x)) return kb_last_status();
    if (gamma && !kb_check_tensor(fn, "gamma", gamma)) return kb_last_status();
    if (beta && !kb_check_tensor(fn, "beta", beta)) return kb_last_status();
    kb_status st = kb_require_float_any(fn, "x", x->desc.dtype);
    if (st) return st;
    if (!(epsilon >= 0.0))
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: epsilon must be >= 0 (got %g)", fn, epsilon);
    int rank = x->desc.rank;
    uint32_t mask;
    st = kb_axes_mask(fn, reduction_axes, n_axes, rank, &mask);
    if (st) return st;
    int k0, k1;
    int64_t c = kept_count(&x->desc, mask);
    int fused = rank >= 1 && kept_block(mask, rank, &k0, &k1) && c >= 0 &&
                (!gamma || (has_size(gamma, c) && gamma->desc.dtype == x->desc.dtype)) &&
                (!beta || (has_size(beta, c) && beta->desc.dtype == x->desc.dtype));
    kb_tensor *n = NULL, *mu = NULL, *v = NULL;
    if (fused) {
        kb_attrs a;
        memset(&a, 0, sizeof a);
        a.axes_mask = mask;
        a.value = epsilon;
        kb_tensor *m = kb_node(fn, KB_OP_BN_MOMENTS, &x, 1, &a);
        kb_tensor *g = gamma ? kb_reshape(gamma, &c, 1) : kb_constant_scalar(x->ctx, 1.0, x->desc.dtype, &c, 1);
        kb_tensor *b = beta ? kb_reshape(beta, &c, 1) : kb_constant_scalar(x->ctx, 0.0, x->desc.dtype, &c, 1);
        kb_tensor *in[4] = {x, m, g, b};
        n = m && g && b ? kb_node(fn, KB_OP_BN_NORMALIZE, in, 4, &a) : NULL;
        int64_t ks[KB_MAX_RANK];
        for (int i = k0; i < k1; ++i) ks[i - k0] = x->desc.shape[i];
        mu = kb_reshape(row(m, 0, c), ks, k1 - k0);
        v = kb_reshape(row(m, 1, c), ks, k1 - k0);
    } else {
        /* Keras: tf.nn.moments, then the gamma / beta broadcast against x directly when the axes
         * are all but the last, else mean / var / gamma / beta reshaped to the broadcast shape. */
        int axes[KB_MAX_RANK];
        int na = mask_axes(mask, rank, axes);
        mu = kb_mean(x, axes, na, 0);
        v = kb_var(x, axes, na, 0);
        if (rank >= 1 && mask == (((1u << rank) - 1u) & ~(1u << (rank - 1)))) {
            n = bn_composite(x, mu, v, beta, gamma, epsilon);
        } else {
            int64_t t[KB_MAX_RANK];
            int unknown = 0;
            for (int i = 0; i < rank; ++i) {
                t[i] = (mask & (1u << i)) ? 1 : x->desc.shape[i];
                unknown += t[i] < 0;
            }
            if (unknown > 1)
                return kb_set_error(KB_ERR_NOT_SUPPORTED, "%s: more than one kept axis of x has an unknown size", fn);
            kb_tensor *b = beta ? kb_reshape(beta, t, rank) : NULL, *g = gamma ? kb_reshape(gamma, t, rank) : NULL;
            if ((beta && !b) || (gamma && !g)) return kb_last_status();
            n = bn_composite(x, kb_reshape(mu, t, rank), kb_reshape(v, t, rank), b, g, epsilon);
        }
    }
    if (!n || !mu || !v) return kb_last_status();
    *normed = n;
    *mean = mu;
    *var = v;
    return KB_OK;
}

kb_tensor *kb_batch_normalization(kb_tensor *x, kb_tensor *mean, kb_tensor *var, kb_tensor *beta, kb_tensor *gamma,
                                  int axis, double epsilon) {
    const char *fn = "kb_batch_normalization";
    if (!kb_check_tensor(fn, "x", x) || !kb_check_tensor(fn, "mean", mean) || !kb_check_tensor(fn, "var", var))
        return NULL;
    if ((gamma && !kb_check_tensor(fn, "gamma", gamma)) || (beta && !kb_check_tensor(fn, "beta", beta))) return NULL;
    if (kb_require_float_any(fn, "x", x->desc.dtype)) return NULL;
    if (!(epsilon >= 0.0)) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: epsilon must be >= 0 (got %g)", fn, epsilon);
        return NULL;
    }
    if (x->desc.rank == 4 && (axis == 1 || axis == -3 || axis == 3 || axis == -1)) {
        /* Keras' fused path: the parameters are flattened and apply per channel of the axis. */
        int64_t s[4] = {1, 1, 1, 1};
        s[axis == 1 || axis == -3 ? 1 : 3] = -1;
        kb_tensor **p[4] = {&mean, &var, &beta, &gamma};
        for (int i = 0; i < 4; ++i)
            if (*p[i] && !(*p[i] = kb_reshape(*p[i], s, 4))) return NULL;
    }
    return bn_composite(x, mean, var, beta, gamma, epsilon);
}
