/*
 * Elementwise ops: add subtract multiply divide maximum minimum (numpy broadcasting), negative
 * square abs sign round pow sin cos exp log sqrt clip, the comparisons equal not_equal greater
 * greater_equal less less_equal (bool result), cast, and the internal sqrt_grad and clip_grad.
 * Each entry: validation/shape rule, gradient rule, CPU kernel (cpu/cpu_elementwise.c), CUDA
 * kernel (src/cuda/kernels/elementwise.cu).
 *
 * dtypes: every float op takes float16/bfloat16/float32/float64 (the CPU executor widens the
 * half types to float32; the CUDA kernels compute them in float and round once). add subtract
 * multiply negative square abs sign maximum minimum also take int8/uint8/int32/int64, with the
 * wrap-around arithmetic of TF's integer kernels. divide does not take integers: Keras/TF
 * truediv would return a float tensor, so kb asks for an explicit cast instead of guessing
 * which float. The comparisons take any dtype except that only equal/not_equal take bool.
 */
#include <math.h>

#include "cpu/cpu_kernels.h"
#include "ops/ops_common.h"

static int is_float(const kb_tensor *t) { return kb_dtype_is_float(t->desc.dtype); }
static const char *dt_name(kb_dtype dt) { return kb_dtype_name(dt) ? kb_dtype_name(dt) : "invalid"; }

/* ---- shared validation rules ---- */

static kb_status same_dtype(const char *op, const kb_desc *in) {
    if (in[1].dtype != in[0].dtype)
        return kb_set_error(KB_ERR_DTYPE, "%s: x is %s but y is %s (cast one of them first)", op, dt_name(in[0].dtype),
                            dt_name(in[1].dtype));
    return KB_OK;
}
/* One float input (any width); out = in[0]. */
static kb_status infer_unary_floatany(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)a; (void)n_in;
    KB_TRY(kb_require_float_any(op, "x", in[0].dtype));
    *out = in[0];
    return KB_OK;
}
/* One float or integer input; out = in[0]. */
static kb_status infer_unary_numeric(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)a; (void)n_in;
    KB_TRY(kb_require_numeric(op, "x", in[0].dtype));
    *out = in[0];
    return KB_OK;
}
/* Two float inputs (any width) of one dtype, numpy-broadcast. */
static kb_status infer_binary_floatany(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)a; (void)n_in;
    KB_TRY(kb_require_float_any(op, "x", in[0].dtype));
    KB_TRY(same_dtype(op, in));
    return kb_broadcast_desc(op, &in[0], &in[1], out);
}
/* Two float or integer inputs of one dtype, numpy-broadcast. */
static kb_status infer_binary_numeric(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)a; (void)n_in;
    KB_TRY(kb_require_numeric(op, "x", in[0].dtype));
    KB_TRY(same_dtype(op, in));
    return kb_broadcast_desc(op, &in[0], &in[1], out);
}
/* divide: floats only. Keras/TF truediv of integers returns float64/float32 depending on the
 * width; kb makes the caller say which float by casting. */
static kb_status infer_divide(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    if (kb_dtype_valid(in[0].dtype) && !kb_dtype_is_float(in[0].dtype))
        return kb_set_error(KB_ERR_DTYPE,
                            "%s: x has dtype %s; divide takes float dtypes only (true division of integers "
                            "gives a float: kb_cast the operands to float32 or float64 first)",
                            op, dt_name(in[0].dtype));
    return infer_binary_floatany(op, a, in, n_in, out);
}

/* ---- add / subtract / multiply / divide ---- */

static kb_status grad_add(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    if (!is_float(n)) return KB_OK;
    dx[0] = kb_g_sum_like(dy, n->in[0]);
    dx[1] = kb_g_sum_like(dy, n->in[1]);
    return KB_OK;
}
static kb_status grad_subtract(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    if (!is_float(n)) return KB_OK;
    dx[0] = kb_g_sum_like(dy, n->in[0]);
    dx[1] = kb_g_sum_like(kb_negative(dy), n->in[1]);
    return KB_OK;
}
static kb_status grad_multiply(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    if (!is_float(n)) return KB_OK;
    dx[0] = kb_g_sum_like(kb_multiply(dy, n->in[1]), n->in[0]);
    dx[1] = kb_g_sum_like(kb_multiply(dy, n->in[0]), n->in[1]);
    return KB_OK;
}
/* d(x/y)/dy = -x/y^2 = -out/y */
static kb_status grad_divide(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = kb_g_sum_like(kb_divide(dy, n->in[1]), n->in[0]);
    dx[1] = kb_g_sum_like(kb_negative(kb_divide(kb_multiply(dy, n), n->in[1])), n->in[1]);
    return KB_OK;
}

const kb_op_def kb_opdef_add = {"add", 2, 0, infer_binary_numeric, grad_add, kb_cpu_add, KB_CUDA_KERNEL(add)};
const kb_op_def kb_opdef_subtract = {"subtract", 2, 0, infer_binary_numeric, grad_subtract, kb_cpu_subtract,
                                     KB_CUDA_KERNEL(subtract)};
const kb_op_def kb_opdef_multiply = {"multiply", 2, 0, infer_binary_numeric, grad_multiply, kb_cpu_multiply,
                                     KB_CUDA_KERNEL(multiply)};
const kb_op_def kb_opdef_divide = {"divide", 2, 0, infer_divide, grad_divide, kb_cpu_divide, KB_CUDA_KERNEL(divide)};

kb_tensor *kb_add(kb_tensor *x, kb_tensor *y) { return kb_node2("kb_add", KB_OP_ADD, x, y); }
kb_tensor *kb_subtract(kb_tensor *x, kb_tensor *y) { return kb_node2("kb_subtract", KB_OP_SUBTRACT, x, y); }
kb_tensor *kb_multiply(kb_tensor *x, kb_tensor *y) { return kb_node2("kb_multiply", KB_OP_MULTIPLY, x, y); }
kb_tensor *kb_divide(kb_tensor *x, kb_tensor *y) { return kb_node2("kb_divide", KB_OP_DIVIDE, x, y); }

/* ---- maximum / minimum ---- */

/* TF's _MaximumMinimumGrad: dy goes to x where x >= y (maximum) or x <= y (minimum), the rest
 * (including NaN comparisons) to y. Built as masks: dx = dy * m, dy_y = dy * (1 - m). */
static kb_status grad_minmax(kb_tensor *n, kb_tensor *dy, kb_tensor **dx, int is_max) {
    if (!is_float(n)) return KB_OK;
    kb_tensor *x = n->in[0], *y = n->in[1];
    kb_dtype dt = n->desc.dtype;
    kb_tensor *m = kb_cast(is_max ? kb_greater_equal(x, y) : kb_less_equal(x, y), dt);
    dx[0] = kb_g_sum_like(kb_multiply(dy, m), x);
    dx[1] = kb_g_sum_like(kb_multiply(dy, kb_subtract(kb_scalar(n->ctx, 1.0, dt), m)), y);
    return KB_OK;
}
static kb_status grad_maximum(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) { return grad_minmax(n, dy, dx, 1); }
static kb_status grad_minimum(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) { return grad_minmax(n, dy, dx, 0); }

/* NaN propagates (numpy, TF 2): maximum(NaN, 1) = NaN. */
const kb_op_def kb_opdef_maximum = {"maximum", 2, 0, infer_binary_numeric, grad_maximum, kb_cpu_maximum,
                                    KB_CUDA_KERNEL(maximum)};
const kb_op_def kb_opdef_minimum = {"minimum", 2, 0, infer_binary_numeric, grad_minimum, kb_cpu_minimum,
                                    KB_CUDA_KERNEL(minimum)};

kb_tensor *kb_maximum(kb_tensor *x, kb_tensor *y) { return kb_node2("kb_maximum", KB_OP_MAXIMUM, x, y); }
kb_tensor *kb_minimum(kb_tensor *x, kb_tensor *y) { return kb_node2("kb_minimum", KB_OP_MINIMUM, x, y); }

/* ---- comparisons: bool output, no gradient ---- */

/* equal / not_equal: any one dtype (bool included), numpy-broadcast, bool out. */
static kb_status infer_compare_eq(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)a; (void)n_in;
    if (!kb_dtype_valid(in[0].dtype))
        return kb_set_error(KB_ERR_DTYPE, "%s: x has an invalid dtype %d", op, (int)in[0].dtype);
    KB_TRY(same_dtype(op, in));
    KB_TRY(kb_broadcast_desc(op, &in[0], &in[1], out));
    out->dtype = KB_BOOL;
    return KB_OK;
}
/* greater / less / ...: one float or integer dtype (bools have no order in TF), bool out. */
static kb_status infer_compare_order(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)a; (void)n_in;
    KB_TRY(kb_require_numeric(op, "x", in[0].dtype));
    KB_TRY(same_dtype(op, in));
    KB_TRY(kb_broadcast_desc(op, &in[0], &in[1], out));
    out->dtype = KB_BOOL;
    return KB_OK;
}

#define KB_COMPARE_OP(NAME, ID, INFER)                                                                     \
    const kb_op_def kb_opdef_##NAME = {#NAME, 2, KB_OPF_NONDIFF, INFER, NULL, kb_cpu_##NAME,               \
                                       KB_CUDA_KERNEL(NAME)};                                              \
    kb_tensor *kb_##NAME(kb_tensor *x, kb_tensor *y) { return kb_node2("kb_" #NAME, KB_OP_##ID, x, y); }

KB_COMPARE_OP(equal, EQUAL, infer_compare_eq)
KB_COMPARE_OP(not_equal, NOT_EQUAL, infer_compare_eq)
KB_COMPARE_OP(greater, GREATER, infer_compare_order)
KB_COMPARE_OP(greater_equal, GREATER_EQUAL, infer_compare_order)
KB_COMPARE_OP(less, LESS, infer_compare_order)
KB_COMPARE_OP(less_equal, LESS_EQUAL, infer_compare_order)

/* ---- unary math ---- */

static kb_status grad_negative(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    if (is_float(n)) dx[0] = kb_negative(dy);
    return KB_OK;
}
static kb_status grad_square(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *x = n->in[0];
    if (is_float(n)) dx[0] = kb_multiply(dy, kb_multiply(x, kb_scalar(x->ctx, 2.0, x->desc.dtype)));
    return KB_OK;
}
/* d|x|/dx = sign(x) (0 at 0, as TF). */
static kb_status grad_abs(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    if (is_float(n)) dx[0] = kb_multiply(dy, kb_sign(n->in[0]));
    return KB_OK;
}
/* TF's _SignGrad returns zeros_like(x) (not None): a variable reached only through sign gets
 * zeros. */
static kb_status grad_sign(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    (void)dy;
    if (is_float(n)) dx[0] = kb_zeros_like(n->in[0], n->desc.dtype);
    return KB_OK;
}
static kb_status grad_exp(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = kb_multiply(dy, n);
    return KB_OK;
}
static kb_status grad_log(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = kb_divide(dy, n->in[0]);
    return KB_OK;
}
/* TF's _PowGrad for x: dy * a * x^(a-1) (NaN at x = 0 for a < 1, as TF). */
static kb_status grad_pow(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *x = n->in[0];
    double a = n->attrs.value;
    dx[0] = kb_multiply(dy, kb_multiply(kb_scalar(x->ctx, a, x->desc.dtype), kb_pow(x, a - 1.0)));
    return KB_OK;
}
static kb_status grad_sin(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = kb_multiply(dy, kb_cos(n->in[0]));
    return KB_OK;
}
static kb_status grad_cos(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = kb_negative(kb_multiply(dy, kb_sin(n->in[0])));
    return KB_OK;
}
/* Keras sqrt is sqrt(clip(x, 0, inf)): the gradient is 0 where x < 0 (as TF's clip gradient). */
static kb_status grad_sqrt(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = kb_node2("sqrt_grad", KB_OP_SQRT_GRAD, dy, n->in[0]);
    return KB_OK;
}
/* n = sqrt_grad(dy, x) = dy / (2 sqrt(x)) (0 where x < 0): linear in dy, and
 * dn/dx = -dy / (4 x^1.5) = -n / (2x), which is 0 where x < 0 since n is. */
static kb_status grad_sqrt_grad(kb_tensor *n, kb_tensor *g, kb_tensor **dx) {
    kb_tensor *x = n->in[1];
    dx[0] = kb_node2("sqrt_grad", KB_OP_SQRT_GRAD, g, x);
    dx[1] = kb_g_sum_like(kb_negative(kb_divide(kb_multiply(g, n), kb_multiply(x, kb_scalar(x->ctx, 2.0, x->desc.dtype)))), x);
    return KB_OK;
}

const kb_op_def kb_opdef_negative = {"negative", 1, 0, infer_unary_numeric, grad_negative, kb_cpu_negative,
                                     KB_CUDA_KERNEL(negative)};
const kb_op_def kb_opdef_square = {"square", 1, 0, infer_unary_numeric, grad_square, kb_cpu_square,
                                   KB_CUDA_KERNEL(square)};
const kb_op_def kb_opdef_abs = {"abs", 1, 0, infer_unary_numeric, grad_abs, kb_cpu_abs, KB_CUDA_KERNEL(abs)};
const kb_op_def kb_opdef_sign = {"sign", 1, 0, infer_unary_numeric, grad_sign, kb_cpu_sign, KB_CUDA_KERNEL(sign)};
/* TF registers no gradient for Round (None): kb_gradients gives NULL through it. */
const kb_op_def kb_opdef_round = {"round", 1, KB_OPF_NONDIFF, infer_unary_floatany, NULL, kb_cpu_round,
                                  KB_CUDA_KERNEL(round)};
/* attrs.value: the exponent a. */
const kb_op_def kb_opdef_pow = {"pow", 1, 0, infer_unary_floatany, grad_pow, kb_cpu_pow, KB_CUDA_KERNEL(pow)};
const kb_op_def kb_opdef_sin = {"sin", 1, 0, infer_unary_floatany, grad_sin, kb_cpu_sin, KB_CUDA_KERNEL(sin)};
const kb_op_def kb_opdef_cos = {"cos", 1, 0, infer_unary_floatany, grad_cos, kb_cpu_cos, KB_CUDA_KERNEL(cos)};
const kb_op_def kb_opdef_exp = {"exp", 1, 0, infer_unary_floatany, grad_exp, kb_cpu_exp, KB_CUDA_KERNEL(exp)};
const kb_op_def kb_opdef_log = {"log", 1, 0, infer_unary_floatany, grad_log, kb_cpu_log, KB_CUDA_KERNEL(log)};
const kb_op_def kb_opdef_sqrt = {"sqrt", 1, 0, infer_unary_floatany, grad_sqrt, kb_cpu_sqrt, KB_CUDA_KERNEL(sqrt)};
const kb_op_def kb_opdef_sqrt_grad = {"sqrt_grad", 2, KB_OPF_INTERNAL, infer_binary_floatany, grad_sqrt_grad,
                                      kb_cpu_sqrt_grad, KB_CUDA_KERNEL(sqrt_grad)};

kb_tensor *kb_negative(kb_tensor *x) { return kb_node1("kb_negative", KB_OP_NEGATIVE, x); }
kb_tensor *kb_square(kb_tensor *x) { return kb_node1("kb_square", KB_OP_SQUARE, x); }
kb_tensor *kb_abs(kb_tensor *x) { return kb_node1("kb_abs", KB_OP_ABS, x); }
kb_tensor *kb_sign(kb_tensor *x) { return kb_node1("kb_sign", KB_OP_SIGN, x); }
kb_tensor *kb_round(kb_tensor *x) { return kb_node1("kb_round", KB_OP_ROUND, x); }
kb_tensor *kb_sin(kb_tensor *x) { return kb_node1("kb_sin", KB_OP_SIN, x); }
kb_tensor *kb_cos(kb_tensor *x) { return kb_node1("kb_cos", KB_OP_COS, x); }
kb_tensor *kb_exp(kb_tensor *x) { return kb_node1("kb_exp", KB_OP_EXP, x); }
kb_tensor *kb_log(kb_tensor *x) { return kb_node1("kb_log", KB_OP_LOG, x); }
kb_tensor *kb_sqrt(kb_tensor *x) { return kb_node1("kb_sqrt", KB_OP_SQRT, x); }

kb_tensor *kb_pow(kb_tensor *x, double a) {
    kb_attrs at;
    memset(&at, 0, sizeof at);
    at.value = a;
    return kb_node("kb_pow", KB_OP_POW, &x, 1, &at);
}

/* ---- clip ---- */

/* attrs.lo / attrs.hi: the bounds (-inf / inf for None), hi >= lo. */
static kb_status infer_clip(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    if (isnan(a->lo)) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: min_value is NaN", op);
    if (isnan(a->hi)) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: max_value is NaN", op);
    return infer_unary_floatany(op, a, in, n_in, out);
}
/* TF's clip_by_value gradient: passes dy where lo <= x <= hi. */
static kb_status grad_clip(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *in[2] = {dy, n->in[0]};
    dx[0] = kb_node("clip_grad", KB_OP_CLIP_GRAD, in, 2, &n->attrs);
    return KB_OK;
}
static kb_status grad_clip_grad(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *in[2] = {dy, n->in[1]};
    dx[0] = kb_node("clip_grad", KB_OP_CLIP_GRAD, in, 2, &n->attrs); /* linear in dy, 0 a.e. in x */
    dx[1] = NULL;
    return KB_OK;
}
const kb_op_def kb_opdef_clip = {"clip", 1, 0, infer_clip, grad_clip, kb_cpu_clip, KB_CUDA_KERNEL(clip)};
/* attrs.lo / attrs.hi: those of the clip it differentiates. */
const kb_op_def kb_opdef_clip_grad = {"clip_grad", 2, KB_OPF_INTERNAL, infer_binary_floatany, grad_clip_grad,
                                      kb_cpu_clip_grad, KB_CUDA_KERNEL(clip_grad)};

kb_tensor *kb_clip(kb_tensor *x, double min_value, double max_value) {
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.lo = min_value;
    a.hi = max_value < min_value ? min_value : max_value; /* Keras: max_value < min_value gives max = min */
    return kb_node("kb_clip", KB_OP_CLIP, &x, 1, &a);
}

kb_tensor *kb_clip_internal(kb_tensor *x, double lo, double hi) { return kb_clip(x, lo, hi); }

/* A tensor bound must broadcast to x's shape without growing it (TF's clip_by_value keeps the
 * shape of x). */
static int check_bound(const char *fn, const char *arg, kb_tensor *x, kb_tensor *b) {
    if (!kb_check_tensor(fn, arg, b)) return 0;
    if (b->desc.dtype != x->desc.dtype) {
        kb_set_error(KB_ERR_DTYPE, "%s: %s is %s but x is %s (cast it first)", fn, arg, dt_name(b->desc.dtype),
                     dt_name(x->desc.dtype));
        return 0;
    }
    /* Right-aligned, each bound dim is 1 or x's dim (unknown dims are checked at run time). */
    int lead = x->desc.rank - b->desc.rank, fits = lead >= 0;
    for (int i = 0; fits && i < b->desc.rank; ++i) {
        int64_t db = b->desc.shape[i], dx = x->desc.shape[lead + i];
        fits = db == 1 || db == dx || db == KB_NONE || dx == KB_NONE;
    }
    if (!fits) {
        char sx[128], sb[128];
        kb_set_error(KB_ERR_SHAPE, "%s: %s of shape %s does not broadcast to x's shape %s", fn, arg,
                     kb_shape_str(&b->desc, sb, sizeof sb), kb_shape_str(&x->desc, sx, sizeof sx));
        return 0;
    }
    return 1;
}

/* tf.clip_by_value with tensor bounds is maximum(minimum(x, max), min): where max < min the
 * result is min, as Keras' max = min rule for numbers. Its gradient through minimum/maximum
 * matches TF's clip gradient (x gets dy inside [min, max], a bound where x is beyond it). */
kb_tensor *kb_clip_tensor(kb_tensor *x, kb_tensor *min_value, kb_tensor *max_value) {
    const char *fn = "kb_clip_tensor";
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    if (min_value && !check_bound(fn, "min_value", x, min_value)) return NULL;
    if (max_value && !check_bound(fn, "max_value", x, max_value)) return NULL;
    if (!min_value && !max_value) return kb_clip(x, -INFINITY, INFINITY);
    kb_tensor *y = x;
    if (max_value) y = kb_minimum(y, max_value);
    if (min_value) y = kb_maximum(y, min_value);
    return y;
}

/* ---- cast ---- */

/* attrs.dtype: the target dtype. */
static kb_status infer_cast(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    if (!kb_dtype_valid(a->dtype)) return kb_set_error(KB_ERR_DTYPE, "%s: invalid target dtype %d", op, (int)a->dtype);
    *out = in[0];
    out->dtype = a->dtype;
    return KB_OK;
}
static kb_status grad_cast(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    kb_dtype from = n->in[0]->desc.dtype;
    dx[0] = kb_dtype_is_float(from) && kb_dtype_is_float(n->desc.dtype) ? kb_cast(dy, from) : NULL;
    return KB_OK;
}
const kb_op_def kb_opdef_cast = {"cast", 1, KB_OPF_CPU_ANY_DTYPE, infer_cast, grad_cast, kb_cpu_cast, KB_CUDA_KERNEL(cast)};

kb_tensor *kb_cast(kb_tensor *x, kb_dtype dtype) {
    if (!kb_check_tensor("kb_cast", "x", x)) return NULL;
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.dtype = kb_resolve_dtype(x->ctx, dtype);
    return kb_node("kb_cast", KB_OP_CAST, &x, 1, &a);
}

/* ---- select (tf.where) and the control-flow functions built on it ---- */

/*
 * select(cond, a, b) = cond ? a : b elementwise. cond is bool; a and b share one dtype (any of
 * the 9) and broadcast numpy-style (right-aligned) against each other; cond broadcasts against
 * that shape either right-aligned (attrs.i64[0] = 0, numpy / tf.where v2) or, with
 * attrs.i64[0] = 1, aligned to the LEADING axes (cond's shape padded with trailing 1s: Keras
 * switch's reshape-and-tile, TF1 tf.where's rank-1 rule); cond's rank must not exceed the
 * others' there. A rank-0 cond selects a whole operand. Both operands are always computed (kb
 * has no lazy branches: the tensors exist before the call, as TF1 tensors made outside a cond).
 * Gradient: dy to a where cond holds, to b elsewhere (zeros at the other positions, summed back
 * to broadcast operands), none to cond; integer and bool operands get none.
 */

/* cond's desc at rank r with trailing 1s (lead) or as is (numpy). */
static kb_status select_cond_desc(const char *op, const kb_attrs *a, const kb_desc *c, int r, kb_desc *out) {
    *out = *c;
    if (!a->i64[0]) return KB_OK;
    if (c->rank > r)
        return kb_set_error(KB_ERR_SHAPE, "%s: the condition has rank %d, more than the operands' %d", op, c->rank, r);
    for (int d = c->rank; d < r; ++d) out->shape[d] = 1;
    out->rank = r;
    return KB_OK;
}
static kb_status infer_select(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    if (in[0].dtype != KB_BOOL)
        return kb_set_error(KB_ERR_DTYPE, "%s: the condition must be bool, got %s", op, dt_name(in[0].dtype));
    if (!kb_dtype_valid(in[1].dtype)) return kb_set_error(KB_ERR_DTYPE, "%s: x has an invalid dtype %d", op, (int)in[1].dtype);
    if (in[2].dtype != in[1].dtype)
        return kb_set_error(KB_ERR_DTYPE, "%s: x is %s but y is %s (cast one of them first)", op, dt_name(in[1].dtype),
                            dt_name(in[2].dtype));
    kb_desc ab, c;
    KB_TRY(kb_broadcast_desc(op, &in[1], &in[2], &ab));
    KB_TRY(select_cond_desc(op, a, &in[0], ab.rank, &c));
    KB_TRY(kb_broadcast_desc(op, &c, &ab, out));
    out->dtype = in[1].dtype;
    return KB_OK;
}
static kb_tensor *select_node(const char *fn, kb_tensor *cond, kb_tensor *x, kb_tensor *y, int lead) {
    kb_attrs at;
    memset(&at, 0, sizeof at);
    at.i64[0] = lead;
    kb_tensor *in[3] = {cond, x, y};
    return kb_node(fn, KB_OP_SELECT, in, 3, &at);
}
static kb_status grad_select(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[0] = NULL;
    if (!is_float(n)) return KB_OK;
    kb_tensor *c = n->in[0], *zero = kb_scalar(n->ctx, 0.0, n->desc.dtype);
    int lead = (int)n->attrs.i64[0];
    dx[1] = kb_g_sum_like(select_node("select", c, dy, zero, lead), n->in[1]);
    dx[2] = kb_g_sum_like(select_node("select", c, zero, dy, lead), n->in[2]);
    return KB_OK;
}
/* attrs.i64[0]: 1 = cond aligned to the leading axes (trailing 1s), 0 = numpy right-aligned. */
const kb_op_def kb_opdef_select = {"select", 3, KB_OPF_INTERNAL | KB_OPF_CPU_ANY_DTYPE, infer_select, grad_select,
                                   kb_cpu_select, KB_CUDA_KERNEL(select)};

/* Keras switch (spec 2.11) with the argument names of \p fn's messages. */
static kb_tensor *switch_impl(const char *fn, kb_tensor *cond, kb_tensor *x, kb_tensor *y, const char *cn,
                              const char *xn, const char *yn) {
    if (!kb_check_tensor(fn, cn, cond) || !kb_check_tensor(fn, xn, x) || !kb_check_tensor(fn, yn, y)) return NULL;
    if (cond->ctx != x->ctx || y->ctx != x->ctx) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: %s, %s and %s belong to different contexts", fn, cn, xn, yn);
        return NULL;
    }
    if (x->desc.dtype != y->desc.dtype) {
        kb_set_error(KB_ERR_DTYPE, "%s: %s is %s but %s is %s (cast one of them first)", fn, xn,
                     dt_name(x->desc.dtype), yn, dt_name(y->desc.dtype));
        return NULL;
    }
    const kb_desc *xd = &x->desc, *yd = &y->desc, *cd = &cond->desc;
    char s1[128], s2[128];
    int same = xd->rank == yd->rank;
    for (int d = 0; same && d < xd->rank; ++d)
        same = xd->shape[d] == yd->shape[d] || xd->shape[d] == KB_NONE || yd->shape[d] == KB_NONE;
    if (!same) {
        kb_set_error(cd->rank == 0 ? KB_ERR_NOT_SUPPORTED : KB_ERR_SHAPE,
                     "%s: %s %s and %s %s must have the same shape%s", fn, xn, kb_shape_str(xd, s1, sizeof s1), yn,
                     kb_shape_str(yd, s2, sizeof s2),
                     cd->rank == 0 ? " (branches of different shapes under a scalar condition, which tf.cond allows, "
                                     "are not supported)"
                                   : " (tf.where)");
        return NULL;
    }
    if (cd->rank > xd->rank) {
        kb_set_error(KB_ERR_SHAPE,
                     "%s: Rank of `condition` should be less than or equal to rank of `then_expression` and "
                     "`else_expression`. ndim(condition)=%d, ndim(then_expression)=%d",
                     fn, cd->rank, xd->rank);
        return NULL;
    }
    for (int d = 0; d < cd->rank; ++d) {
        int64_t c = cd->shape[d], e = xd->shape[d];
        if (c != KB_NONE && e != KB_NONE && c != 1 && c != e) {
            kb_set_error(KB_ERR_SHAPE, "%s: %s %s does not match the leading axes of %s %s (axis %d: %lld vs %lld)", fn,
                         cn, kb_shape_str(cd, s1, sizeof s1), xn, kb_shape_str(xd, s2, sizeof s2), d, (long long)c,
                         (long long)e);
            return NULL;
        }
    }
    kb_tensor *c = cd->dtype == KB_BOOL ? cond : kb_cast(cond, KB_BOOL); /* Keras: cast(condition, 'bool') */
    return select_node(fn, c, x, y, 1);
}

kb_tensor *kb_switch(kb_tensor *condition, kb_tensor *then_expression, kb_tensor *else_expression) {
    return switch_impl("kb_switch", condition, then_expression, else_expression, "condition", "then_expression",
                       "else_expression");
}

/* Keras in_train_phase: training NULL = the learning-phase tensor; x when training, else alt. */
static kb_tensor *phase_impl(const char *fn, kb_tensor *x, kb_tensor *alt, kb_tensor *training, int train) {
    if (!kb_check_tensor(fn, "x", x) || !kb_check_tensor(fn, "alt", alt)) return NULL;
    if (training && !kb_check_tensor(fn, "training", training)) return NULL;
    if (!training) training = kb_learning_phase(x->ctx);
    if (!training) return NULL;
    if (x == alt) return x;
    return train ? switch_impl(fn, training, x, alt, "training", "x", "alt")
                 : switch_impl(fn, training, alt, x, "training", "alt", "x");
}
kb_tensor *kb_in_train_phase(kb_tensor *x, kb_tensor *alt, kb_tensor *training) {
    return phase_impl("kb_in_train_phase", x, alt, training, 1);
}
kb_tensor *kb_in_test_phase(kb_tensor *x, kb_tensor *alt, kb_tensor *training) {
    return phase_impl("kb_in_test_phase", x, alt, training, 0);
}

static kb_tensor *phase_fixed(const char *fn, kb_tensor *x, kb_tensor *alt, int training, int train) {
    if (!kb_check_tensor(fn, "x", x) || !kb_check_tensor(fn, "alt", alt)) return NULL;
    if (training != 0 && training != 1) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: training must be 0 or 1, got %d", fn, training);
        return NULL;
    }
    return (training == 1) == (train == 1) ? x : alt;
}
kb_tensor *kb_in_train_phase_fixed(kb_tensor *x, kb_tensor *alt, int training) {
    return phase_fixed("kb_in_train_phase_fixed", x, alt, training, 1);
}
kb_tensor *kb_in_test_phase_fixed(kb_tensor *x, kb_tensor *alt, int training) {
    return phase_fixed("kb_in_test_phase_fixed", x, alt, training, 0);
}
