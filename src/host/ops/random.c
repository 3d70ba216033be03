/*
 * Family random: random_uniform, random_normal, random_binomial, truncated_normal (+ their
 * _like forms and the *_variable creators) and dropout. Entries, validation / shape rules and
 * public constructors; kernels in cpu/cpu_random.c and kernels/random.cu.
 *
 * Generator: Philox4x32-10 (Salmon, Moraes, Dror, Shaw 2011), through cuRAND's device API on the
 * GPU (curand_init + curand4 / curand_uniform4 / curand_uniform2_double / curand_normal2_double)
 * and implemented with the same key / counter layout and the same uint32 -> float / double
 * conversions on the CPU (cpu/cpu_random.c).
 *
 * Seed / counter scheme (one node):
 *   key     = the node's 64-bit seed: key.x = low 32 bits, key.y = high 32 bits. An explicit seed
 *             (>= 0) is used as is; KB_SEED_NONE takes splitmix64(ctx->seed + 0x9E3779B97F4A7C15
 *             * (id + 1)) with id the node's (or the variable's) tensor id, so the same session
 *             seed and the same graph give the same numbers, and two nodes get two streams.
 *   run r   = how many times the node's kernel ran before on this device (a per-node, per-device
 *             64-bit counter in the node's attrs, advanced by the kernel: each run of a function
 *             draws new numbers, reproducibly, as TF's stateful random ops).
 *   block b = output element i / E, lane i % E; E = 4 values per Philox block for
 *             float16/bfloat16/float32 (one uint32 each), E = 2 for float64 (two uint32 each).
 *   counter = {lo32(r), hi32(r), lo32(b), hi32(b)}: on the GPU curand_init(seed, subsequence = b,
 *             offset = 4 r) then one curand4-family call per thread (a 4-value block).
 * Values from a block's words x0..x3 (u32(x) = float(x) * 2^-32 + 2^-33 in float, cuRAND's
 * curand_uniform; u53(x, y) = (x ^ (y << 21)) * 2^-53 + 2^-54 in double, curand_uniform2_double;
 * ud(x) = (x + 0.5) * 2^-32 in double; affine maps by fma() in double, rounded once to the dtype):
 *   uniform   E=4: fma(max - min, u32(xk), min); E=2: fma(max - min, u53(x2k, x2k+1), min); a value
 *             that rounds to >= max is stepped one ulp down (range [min, max)).
 *   normal    E=4: Box-Muller in double per pair (x0, x1), (x2, x3): r = sqrt(-2 log ud(x0)),
 *             a = 2 pi ud(x1), values r sin a, r cos a; E=2: curand_normal2_double's Box-Muller
 *             (u53(x0, x1), angle pi * ((x2 ^ (x3 << 21)) * 2^-52 + 2^-53)). Then fma(stddev, z, mean).
 *   binomial  1 where u32(xk) <= (float)p (E=4) / u53 <= p (E=2), else 0.
 *   truncated inverse CDF: z = sqrt(2) erfinv(erf(sqrt(2)) (2u - 1)) clamped to [-2, 2] with
 *             u = ud(xk) (E=4) / u53 (E=2); then fma(stddev, z, mean).
 *   dropout_mask keep where u32(xk) >= (float)level (E=4) / u53 >= level (E=2); value
 *             1 / (1 - level) computed in float (E=4) / double (E=2), else 0.
 * So uniform, binomial and dropout masks are bit-identical on CPU and GPU; normal and truncated
 * normal agree to a few ulp of double before the rounding to the dtype (log / sin / erfinv).
 *
 * Ops (one input, NONDIFF, CPU_ANY_DTYPE: the CPU kernels write float16/bfloat16 themselves):
 *   random_uniform, random_normal, random_binomial, truncated_normal (input: shape carrier)
 *   dropout_mask (INTERNAL; input x, whose data is not read)
 * Attributes:
 *   dtype     output dtype (dropout_mask: x's dtype)
 *   rank, shape  static output shape (i64[3] == 0); dropout_mask: the noise shape (KB_NONE = x's
 *             dim), right-aligned against x's shape
 *   lo, hi    minval, maxval (uniform); mean, stddev (normal, truncated_normal)
 *   value     p (binomial); level (dropout_mask)
 *   i64[0]    the 64-bit seed (Philox key)
 *   i64[1]    runs so far on the CPU (mutable: the CPU kernel advances it)
 *   i64[2]    runs so far on CUDA (mutable: the CUDA launcher advances it)
 *   i64[3]    1: output shape = input 0's run-time shape ("like" form); 0: attrs shape (input 0
 *             is a rank-0 constant that carries the context)
 * dropout(x) is the composite x * dropout_mask(x): its gradient is dy * mask through multiply.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cpu/cpu_kernels.h"
#include "ops/ops_common.h"

enum { A_SEED = 0, A_RUNS_CPU = 1, A_RUNS_CUDA = 2, A_LIKE = 3 };

static uint64_t session_seed(const kb_context *ctx, int64_t id) {
    uint64_t z = ctx->seed + 0x9E3779B97F4A7C15ull * ((uint64_t)id + 1u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int64_t node_seed(const kb_context *ctx, int64_t id, int64_t seed) {
    return seed >= 0 ? seed : (int64_t)session_seed(ctx, id);
}

/* ---- infer ---------------------------------------------------------------------------------- */

static kb_status infer_random(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    KB_TRY(kb_require_float_any(op, "dtype", a->dtype));
    out->dtype = a->dtype;
    if (a->i64[A_LIKE]) {
        out->rank = in[0].rank;
        for (int i = 0; i < in[0].rank; ++i) out->shape[i] = in[0].shape[i];
        return KB_OK;
    }
    if (a->rank < 0 || a->rank > KB_MAX_RANK)
        return kb_set_error(KB_ERR_SHAPE, "%s: rank %d is out of range [0, %d]", op, a->rank, KB_MAX_RANK);
    out->rank = a->rank;
    for (int i = 0; i < a->rank; ++i) {
        if (a->shape[i] < 0)
            return kb_set_error(KB_ERR_SHAPE, "%s: shape dimension %d is %lld; dimensions must be >= 0", op, i,
                                (long long)a->shape[i]);
        out->shape[i] = a->shape[i];
    }
    return KB_OK;
}

static kb_status infer_dropout_mask(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    const kb_desc *x = &in[0];
    KB_TRY(kb_require_float_any(op, "x", x->dtype));
    if (a->rank < 0 || a->rank > x->rank) {
        char s[160];
        return kb_set_error(KB_ERR_SHAPE, "%s: noise_shape has %d dims, x %s has %d", op, a->rank,
                            kb_shape_str(x, s, sizeof s), x->rank);
    }
    out->dtype = x->dtype;
    out->rank = a->rank;
    for (int i = 0; i < a->rank; ++i) {
        int j = i + x->rank - a->rank;
        int64_t s = a->shape[i], d = x->shape[j];
        if (s == KB_NONE) {
            out->shape[i] = d;
            continue;
        }
        if (s < 0)
            return kb_set_error(KB_ERR_SHAPE, "%s: noise_shape dimension %d is %lld; dimensions must be >= 0 or KB_NONE",
                                op, i, (long long)s);
        if (d >= 0 && s != 1 && s != d) {
            kb_desc nd;
            memset(&nd, 0, sizeof nd);
            nd.rank = a->rank;
            for (int k = 0; k < a->rank; ++k) nd.shape[k] = a->shape[k];
            char s1[160], s2[160];
            return kb_set_error(KB_ERR_SHAPE,
                                "%s: noise_shape %s does not broadcast to x's shape %s (dimension %d is %lld, x has %lld)",
                                op, kb_shape_str(&nd, s1, sizeof s1), kb_shape_str(x, s2, sizeof s2), i, (long long)s,
                                (long long)d);
        }
        out->shape[i] = s;
    }
    return KB_OK;
}

#define RANDOM_FLAGS (KB_OPF_NONDIFF | KB_OPF_CPU_ANY_DTYPE)
const kb_op_def kb_opdef_random_uniform = {"random_uniform", 1, RANDOM_FLAGS, infer_random, NULL,
                                           kb_cpu_random_uniform, KB_CUDA_KERNEL(random_uniform)};
const kb_op_def kb_opdef_random_normal = {"random_normal", 1, RANDOM_FLAGS, infer_random, NULL,
                                          kb_cpu_random_normal, KB_CUDA_KERNEL(random_normal)};
const kb_op_def kb_opdef_random_binomial = {"random_binomial", 1, RANDOM_FLAGS, infer_random, NULL,
                                            kb_cpu_random_binomial, KB_CUDA_KERNEL(random_binomial)};
const kb_op_def kb_opdef_truncated_normal = {"truncated_normal", 1, RANDOM_FLAGS, infer_random, NULL,
                                             kb_cpu_truncated_normal, KB_CUDA_KERNEL(truncated_normal)};
const kb_op_def kb_opdef_dropout_mask = {"dropout_mask", 1, RANDOM_FLAGS | KB_OPF_INTERNAL, infer_dropout_mask, NULL,
                                         kb_cpu_dropout_mask, KB_CUDA_KERNEL(dropout_mask)};

/* ---- constructors --------------------------------------------------------------------------- */

static int check_seed(const char *fn, int64_t seed) {
    if (seed >= 0 || seed == KB_SEED_NONE) return 1;
    kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: seed must be >= 0 or KB_SEED_NONE, got %lld", fn, (long long)seed);
    return 0;
}

/* The distribution parameters of op, checked: (lo, hi) for uniform / normal / truncated_normal,
 * lo = p for binomial. */
static int check_params(const char *fn, kb_op_id op, double lo, double hi) {
    switch (op) {
    case KB_OP_RANDOM_UNIFORM:
        if (!isfinite(lo) || !isfinite(hi)) {
            kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: minval and maxval must be finite, got %g and %g", fn, lo, hi);
            return 0;
        }
        if (lo > hi) {
            kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: minval (%g) must be <= maxval (%g)", fn, lo, hi);
            return 0;
        }
        if (!isfinite(hi - lo)) {
            kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: maxval - minval (%g - %g) overflows", fn, hi, lo);
            return 0;
        }
        return 1;
    case KB_OP_RANDOM_BINOMIAL:
        if (!(lo >= 0.0 && lo <= 1.0)) {
            kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: p must be in [0, 1], got %g", fn, lo);
            return 0;
        }
        return 1;
    default: /* normal, truncated normal: (mean, stddev) */
        if (!isfinite(lo) || !isfinite(hi)) {
            kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: mean and stddev must be finite, got %g and %g", fn, lo, hi);
            return 0;
        }
        if (hi < 0) {
            kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: stddev must be >= 0, got %g", fn, hi);
            return 0;
        }
        return 1;
    }
}

/* Fill the attrs of a random op (seed left to the caller: it may depend on the node id). */
static int random_attrs(const char *fn, kb_op_id op, kb_context *ctx, int like, const int64_t *shape, int rank,
                        double lo, double hi, kb_dtype *dtype, int64_t seed, kb_attrs *a) {
    memset(a, 0, sizeof *a);
    *dtype = kb_resolve_dtype(ctx, *dtype);
    if (!kb_dtype_valid(*dtype)) {
        kb_set_error(KB_ERR_DTYPE, "%s: invalid dtype %d", fn, (int)*dtype);
        return 0;
    }
    if (kb_require_float_any(fn, "dtype", *dtype) != KB_OK || !check_seed(fn, seed) ||
        !check_params(fn, op, lo, hi))
        return 0;
    if (!like) {
        if (rank < 0 || rank > KB_MAX_RANK) {
            kb_set_error(KB_ERR_SHAPE, "%s: rank %d is out of range [0, %d]", fn, rank, KB_MAX_RANK);
            return 0;
        }
        if (rank > 0 && !shape) {
            kb_null_arg(fn, "shape");
            return 0;
        }
        for (int i = 0; i < rank; ++i) {
            if (shape[i] < 0) {
                kb_set_error(KB_ERR_SHAPE,
                             "%s: shape dimension %d is %lld; dimensions must be >= 0 (the _like form takes a run-time "
                             "shape)",
                             fn, i, (long long)shape[i]);
                return 0;
            }
            a->shape[i] = shape[i];
        }
        a->rank = rank;
    }
    a->dtype = *dtype;
    a->i64[A_LIKE] = like;
    if (op == KB_OP_RANDOM_BINOMIAL) a->value = lo;
    else {
        a->lo = lo;
        a->hi = hi;
    }
    return 1;
}

static kb_tensor *make_random(const char *fn, kb_op_id op, kb_context *ctx, kb_tensor *like, const int64_t *shape,
                              int rank, double lo, double hi, kb_dtype dtype, int64_t seed) {
    if (like) {
        if (!kb_check_tensor(fn, "like", like)) return NULL;
        ctx = like->ctx;
    } else if (!ctx) {
        kb_null_arg(fn, "ctx");
        return NULL;
    }
    kb_attrs a;
    if (!random_attrs(fn, op, ctx, like != NULL, shape, rank, lo, hi, &dtype, seed, &a)) return NULL;
    kb_tensor *in = like ? like : kb_scalar(ctx, 0.0, KB_FLOAT32);
    if (!in) return NULL;
    kb_tensor *t = kb_node(fn, op, &in, 1, &a);
    if (t) t->attrs.i64[A_SEED] = node_seed(ctx, t->id, seed);
    return t;
}

kb_tensor *kb_random_uniform(kb_context *ctx, const int64_t *shape, int rank, double minval, double maxval,
                             kb_dtype dtype, int64_t seed) {
    return make_random("kb_random_uniform", KB_OP_RANDOM_UNIFORM, ctx, NULL, shape, rank, minval, maxval, dtype, seed);
}
kb_tensor *kb_random_uniform_like(kb_tensor *like, double minval, double maxval, kb_dtype dtype, int64_t seed) {
    if (!like) {
        kb_null_arg("kb_random_uniform_like", "like");
        return NULL;
    }
    return make_random("kb_random_uniform_like", KB_OP_RANDOM_UNIFORM, NULL, like, NULL, 0, minval, maxval, dtype,
                       seed);
}
kb_tensor *kb_random_normal(kb_context *ctx, const int64_t *shape, int rank, double mean, double stddev,
                            kb_dtype dtype, int64_t seed) {
    return make_random("kb_random_normal", KB_OP_RANDOM_NORMAL, ctx, NULL, shape, rank, mean, stddev, dtype, seed);
}
kb_tensor *kb_random_normal_like(kb_tensor *like, double mean, double stddev, kb_dtype dtype, int64_t seed) {
    if (!like) {
        kb_null_arg("kb_random_normal_like", "like");
        return NULL;
    }
    return make_random("kb_random_normal_like", KB_OP_RANDOM_NORMAL, NULL, like, NULL, 0, mean, stddev, dtype, seed);
}
kb_tensor *kb_random_binomial(kb_context *ctx, const int64_t *shape, int rank, double p, kb_dtype dtype,
                              int64_t seed) {
    return make_random("kb_random_binomial", KB_OP_RANDOM_BINOMIAL, ctx, NULL, shape, rank, p, 0.0, dtype, seed);
}
kb_tensor *kb_random_binomial_like(kb_tensor *like, double p, kb_dtype dtype, int64_t seed) {
    if (!like) {
        kb_null_arg("kb_random_binomial_like", "like");
        return NULL;
    }
    return make_random("kb_random_binomial_like", KB_OP_RANDOM_BINOMIAL, NULL, like, NULL, 0, p, 0.0, dtype, seed);
}
kb_tensor *kb_truncated_normal(kb_context *ctx, const int64_t *shape, int rank, double mean, double stddev,
                               kb_dtype dtype, int64_t seed) {
    return make_random("kb_truncated_normal", KB_OP_TRUNCATED_NORMAL, ctx, NULL, shape, rank, mean, stddev, dtype,
                       seed);
}
kb_tensor *kb_truncated_normal_like(kb_tensor *like, double mean, double stddev, kb_dtype dtype, int64_t seed) {
    if (!like) {
        kb_null_arg("kb_truncated_normal_like", "like");
        return NULL;
    }
    return make_random("kb_truncated_normal_like", KB_OP_TRUNCATED_NORMAL, NULL, like, NULL, 0, mean, stddev, dtype,
                       seed);
}

/* A variable holding the first draw of op (the CPU kernel run once on a host buffer). */
static kb_tensor *random_variable(const char *fn, kb_op_id op, kb_context *ctx, const int64_t *shape, int rank,
                                  double lo, double hi, kb_dtype dtype, const char *name, int64_t seed) {
    if (!ctx) {
        kb_null_arg(fn, "ctx");
        return NULL;
    }
    kb_attrs a;
    if (!random_attrs(fn, op, ctx, 0, shape, rank, lo, hi, &dtype, seed, &a)) return NULL;
    kb_tensor *v = kb_variable(ctx, NULL, 0, dtype, shape, rank, name);
    if (!v) return NULL;
    a.i64[A_SEED] = node_seed(ctx, v->id, seed);
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= shape[i];
    if (n == 0) return v;
    size_t nbytes = (size_t)n * kb_dtype_size(dtype);
    void *buf = malloc(nbytes);
    if (!buf) {
        kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: out of host memory (%zu bytes)", fn, nbytes);
        return NULL;
    }
    kb_buf in, out;
    memset(&in, 0, sizeof in);
    memset(&out, 0, sizeof out);
    in.dtype = KB_FLOAT32;
    in.size = 1;
    out.data = buf;
    out.dtype = dtype;
    out.rank = rank;
    for (int i = 0; i < rank; ++i) out.shape[i] = shape[i];
    out.size = n;
    kb_exec ex = {ctx, NULL, fn};
    kb_status st = kb_op_table[op]->cpu(&ex, &a, &in, 1, &out);
    if (st == KB_OK) st = kb_set_value(v, buf, nbytes);
    free(buf);
    return st == KB_OK ? v : NULL;
}

kb_tensor *kb_random_uniform_variable(kb_context *ctx, const int64_t *shape, int rank, double low, double high,
                                      kb_dtype dtype, const char *name, int64_t seed) {
    return random_variable("kb_random_uniform_variable", KB_OP_RANDOM_UNIFORM, ctx, shape, rank, low, high, dtype,
                           name, seed);
}
kb_tensor *kb_random_normal_variable(kb_context *ctx, const int64_t *shape, int rank, double mean, double scale,
                                     kb_dtype dtype, const char *name, int64_t seed) {
    return random_variable("kb_random_normal_variable", KB_OP_RANDOM_NORMAL, ctx, shape, rank, mean, scale, dtype,
                           name, seed);
}

kb_tensor *kb_dropout(kb_tensor *x, double level, const int64_t *noise_shape, int noise_rank, int64_t seed) {
    const char *fn = "kb_dropout";
    if (!kb_check_tensor(fn, "x", x)) return NULL;
    if (!(level >= 0.0 && level < 1.0)) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: level must be in interval [0, 1), got %g", fn, level);
        return NULL;
    }
    if (!check_seed(fn, seed)) return NULL;
    kb_attrs a;
    memset(&a, 0, sizeof a);
    if (!noise_shape) {
        a.rank = x->desc.rank;
        for (int i = 0; i < a.rank; ++i) a.shape[i] = KB_NONE;
    } else {
        if (noise_rank < 0 || noise_rank > x->desc.rank) {
            char s[160];
            kb_set_error(KB_ERR_SHAPE, "%s: noise_shape has %d dims, x %s has %d", fn, noise_rank,
                         kb_shape_str(&x->desc, s, sizeof s), x->desc.rank);
            return NULL;
        }
        a.rank = noise_rank;
        for (int i = 0; i < noise_rank; ++i) a.shape[i] = noise_shape[i];
    }
    a.value = level;
    kb_tensor *mask = kb_node(fn, KB_OP_DROPOUT_MASK, &x, 1, &a);
    if (!mask) return NULL;
    mask->attrs.i64[A_SEED] = node_seed(x->ctx, mask->id, seed);
    return kb_multiply(x, mask); /* the mask's infer checked that it broadcasts to x */
}
