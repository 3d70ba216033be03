/* CPU kernels of the random family (random (Philox counter-based generator: cuRAND device API on the GPU, the same generator on the CPU) and dropout).
 *
 * Philox4x32-10 as published (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as
 * 1, 2, 3", SC'11), with cuRAND's key / counter layout and uint32 -> float / double conversions,
 * so these kernels reproduce kernels/random.cu. The scheme (seed, per-run counter, element ->
 * (block, lane), conversions) is documented in ops/random.c. The kernels write float16 /
 * bfloat16 themselves (KB_OPF_CPU_ANY_DTYPE): a value is computed in double and rounded once
 * (float16 / bfloat16 through float, as the CUDA stores). Input 0 is never read.
 */
#include <math.h>

#include "core/dtype.h"
#include "cpu/cpu_common.h"
#include "cpu/cpu_kernels.h"

/* One Philox4x32-10 block: 10 rounds of the 4x32 S-box on ctr, the key bumped between rounds.
 * Exported (no header: tests declare it) for the known-answer test. */
void kb_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

void kb_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u; /* round multipliers */
    const uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u; /* Weyl key increments */
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3], k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; ++r) {
        if (r > 0) {
            k0 += W0;
            k1 += W1;
        }
        uint64_t p0 = (uint64_t)M0 * c0, p1 = (uint64_t)M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* ---- the generator of one run ---------------------------------------------------------------- */

typedef struct rng {
    uint32_t key[2];
    uint64_t run;
} rng;

/* The node's key and this run's index; advances the node's CPU run counter (attrs i64[1]). The
 * attrs are the node's own (kb_function passes &node->attrs), so the cast writes real state. */
static rng rng_next(const kb_attrs *a) {
    rng g;
    uint64_t seed = (uint64_t)a->i64[0];
    g.key[0] = (uint32_t)seed;
    g.key[1] = (uint32_t)(seed >> 32);
    g.run = (uint64_t)a->i64[1];
    ((kb_attrs *)a)->i64[1] = (int64_t)(g.run + 1u);
    return g;
}

/* Words of block b: counter {lo(run), hi(run), lo(b), hi(b)} = curand_init(seed, b, 4 run). */
static inline void rng_block(const rng *g, uint64_t b, uint32_t x[4]) {
    const uint32_t c[4] = {(uint32_t)g->run, (uint32_t)(g->run >> 32), (uint32_t)b, (uint32_t)(b >> 32)};
    kb_philox4x32_10(c, g->key, x);
}

/* cuRAND's curand_uniform: (0, 1] in float. The product is exact, so one rounding (the add). */
static inline float u32f(uint32_t x) { return (float)x * 0x1p-32f + 0x1p-33f; }
/* cuRAND's curand_uniform2_double: 53 bits from two words, (0, 1). */
static inline double u53(uint32_t x, uint32_t y) {
    uint64_t z = (uint64_t)x ^ ((uint64_t)y << 21);
    return (double)z * 0x1p-53 + 0x1p-54;
}
/* (x + 0.5) 2^-32 in double (exact), the uniform of the float32 normal / truncated normal. */
static inline double ud(uint32_t x) { return ((double)x + 0.5) * 0x1p-32; }

/* Values per block: 4 for the 16/32-bit dtypes, 2 for float64. */
static inline int per_block(kb_dtype dt) { return dt == KB_FLOAT64 ? 2 : 4; }

static int float_out(const kb_exec *ex, const kb_buf *out, kb_status *st) {
    switch (out->dtype) {
    case KB_FLOAT16:
    case KB_BFLOAT16:
    case KB_FLOAT32:
    case KB_FLOAT64: return 1;
    default: *st = kb_cpu_bad_dtype(ex, out->dtype); return 0;
    }
}

/* Generic loop: for each block b, FILL(x, v) writes the block's per_block values into v[]. */
#define RANDOM_LOOP(out, g, FILL)                                                   \
    do {                                                                            \
        const int64_t n_ = (out)->size;                                             \
        const int e_ = per_block((out)->dtype);                                     \
        const int64_t nb_ = (n_ + e_ - 1) / e_;                                     \
        _Pragma("omp parallel for if (n_ > KB_OMP_MIN)")                            \
        for (int64_t b = 0; b < nb_; ++b) {                                         \
            uint32_t x[4];                                                          \
            double v[4];                                                            \
            rng_block(&(g), (uint64_t)b, x);                                        \
            FILL;                                                                   \
            for (int k = 0; k < e_ && b * e_ + k < n_; ++k) STORE(b * e_ + k, v[k]); \
        }                                                                           \
    } while (0)

/* ---- uniform --------------------------------------------------------------------------------- */

static inline uint16_t bits_down(uint16_t h) { /* next 16-bit float towards -inf (finite h) */
    if (h & 0x8000u) return (uint16_t)(h + 1u);
    return h == 0 ? (uint16_t)0x8001u : (uint16_t)(h - 1u);
}

/* Store v rounded to the dtype, stepped one ulp down when it rounded to >= hi (range [lo, hi)). */
static inline void store_below(void *p, kb_dtype dt, int64_t i, double v, double lo, double hi) {
    switch (dt) {
    case KB_FLOAT16: {
        uint16_t h = kb_f32_to_f16((float)v);
        if (hi > lo && (double)kb_f16_to_f32(h) >= hi) h = bits_down(h);
        ((uint16_t *)p)[i] = h;
        break;
    }
    case KB_BFLOAT16: {
        uint16_t h = kb_f32_to_bf16((float)v);
        if (hi > lo && (double)kb_bf16_to_f32(h) >= hi) h = bits_down(h);
        ((uint16_t *)p)[i] = h;
        break;
    }
    case KB_FLOAT32: {
        float f = (float)v;
        if (hi > lo && (double)f >= hi) f = nextafterf(f, -INFINITY);
        ((float *)p)[i] = f;
        break;
    }
    default: {
        if (hi > lo && v >= hi) v = nextafter(v, -INFINITY);
        ((double *)p)[i] = v;
        break;
    }
    }
}

kb_status kb_cpu_random_uniform(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)in;
    (void)n_in;
    kb_status st = KB_OK;
    if (!float_out(ex, out, &st)) return st;
    const rng g = rng_next(a);
    const double lo = a->lo, hi = a->hi, range = hi - lo;
    void *p = out->data;
    const kb_dtype dt = out->dtype;
#define STORE(i, val) store_below(p, dt, (i), (val), lo, hi)
    if (dt == KB_FLOAT64)
        RANDOM_LOOP(out, g, {
            v[0] = fma(range, u53(x[0], x[1]), lo);
            v[1] = fma(range, u53(x[2], x[3]), lo);
        });
    else
        RANDOM_LOOP(out, g, {
            for (int k = 0; k < 4; ++k) v[k] = fma(range, (double)u32f(x[k]), lo);
        });
#undef STORE
    return KB_OK;
}

/* ---- normal ---------------------------------------------------------------------------------- */

#define KB_PI 3.141592653589793
#define TWO_PI_2POW32 (2.0 * KB_PI * 0x1p-32)

kb_status kb_cpu_random_normal(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)in;
    (void)n_in;
    kb_status st = KB_OK;
    if (!float_out(ex, out, &st)) return st;
    const rng g = rng_next(a);
    const double mean = a->lo, sd = a->hi;
    void *p = out->data;
    const kb_dtype dt = out->dtype;
#define STORE(i, val) kb_store_f64(p, dt, (i), fma(sd, (val), mean))
    if (dt == KB_FLOAT64)
        RANDOM_LOOP(out, g, {
            /* curand_normal2_double: u from (x0, x1), angle pi * v with v from (x2, x3) in (0, 2) */
            double u = u53(x[0], x[1]);
            uint64_t zy = (uint64_t)x[2] ^ ((uint64_t)x[3] << 21);
            double t = (double)zy * 0x1p-52 + 0x1p-53;
            double s = sqrt(-2.0 * log(u));
            v[0] = sin(t * KB_PI) * s;
            v[1] = cos(t * KB_PI) * s;
        });
    else
        RANDOM_LOOP(out, g, {
            for (int k = 0; k < 4; k += 2) {
                double s = sqrt(-2.0 * log(ud(x[k])));
                double ang = ((double)x[k + 1] + 0.5) * TWO_PI_2POW32;
                v[k] = sin(ang) * s;
                v[k + 1] = cos(ang) * s;
            }
        });
#undef STORE
    return KB_OK;
}

/* ---- truncated normal (inverse CDF) ---------------------------------------------------------- */

#define ERF_SQRT2 0.9544997361036416 /* erf(sqrt(2)) = P(|z| < 2) */
#define KB_SQRT2 1.4142135623730951

/* erfinv for |t| < 1: Winitzki's closed form (relative error < 2e-3) refined by three Halley
 * steps on erf(z) - t (cubic convergence: the result is as accurate as libm's erf). */
static double erfinv_d(double t) {
    const double A = 0.147, TWO_OVER_SQRT_PI = 1.1283791670955126;
    double w = log((1.0 - t) * (1.0 + t));
    double b = 2.0 / (KB_PI * A) + 0.5 * w;
    double z = copysign(sqrt(sqrt(b * b - w / A) - b), t);
    for (int k = 0; k < 3; ++k) {
        double f = erf(z) - t;
        double d = TWO_OVER_SQRT_PI * exp(-z * z);
        z -= f / (d + z * f);
    }
    return z;
}

static inline double trunc_z(double u) {
    double z = KB_SQRT2 * erfinv_d(ERF_SQRT2 * (2.0 * u - 1.0));
    return z < -2.0 ? -2.0 : z > 2.0 ? 2.0 : z;
}

kb_status kb_cpu_truncated_normal(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)in;
    (void)n_in;
    kb_status st = KB_OK;
    if (!float_out(ex, out, &st)) return st;
    const rng g = rng_next(a);
    const double mean = a->lo, sd = a->hi;
    void *p = out->data;
    const kb_dtype dt = out->dtype;
#define STORE(i, val) kb_store_f64(p, dt, (i), fma(sd, (val), mean))
    if (dt == KB_FLOAT64)
        RANDOM_LOOP(out, g, {
            v[0] = trunc_z(u53(x[0], x[1]));
            v[1] = trunc_z(u53(x[2], x[3]));
        });
    else
        RANDOM_LOOP(out, g, {
            for (int k = 0; k < 4; ++k) v[k] = trunc_z(ud(x[k]));
        });
#undef STORE
    return KB_OK;
}

/* ---- binomial and the dropout mask ----------------------------------------------------------- */

kb_status kb_cpu_random_binomial(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)in;
    (void)n_in;
    kb_status st = KB_OK;
    if (!float_out(ex, out, &st)) return st;
    const rng g = rng_next(a);
    const double pd = a->value;
    const float pf = (float)pd;
    void *p = out->data;
    const kb_dtype dt = out->dtype;
#define STORE(i, val) kb_store_f64(p, dt, (i), (val))
    if (dt == KB_FLOAT64)
        RANDOM_LOOP(out, g, {
            v[0] = u53(x[0], x[1]) <= pd ? 1.0 : 0.0;
            v[1] = u53(x[2], x[3]) <= pd ? 1.0 : 0.0;
        });
    else
        RANDOM_LOOP(out, g, {
            for (int k = 0; k < 4; ++k) v[k] = u32f(x[k]) <= pf ? 1.0 : 0.0;
        });
#undef STORE
    return KB_OK;
}

kb_status kb_cpu_dropout_mask(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)in;
    (void)n_in;
    kb_status st = KB_OK;
    if (!float_out(ex, out, &st)) return st;
    const rng g = rng_next(a);
    const double level = a->value;
    const float lf = (float)level;
    const double scale_d = 1.0 / (1.0 - level);
    const double scale_f = (double)(1.0f / (1.0f - lf));
    void *p = out->data;
    const kb_dtype dt = out->dtype;
#define STORE(i, val) kb_store_f64(p, dt, (i), (val))
    if (dt == KB_FLOAT64)
        RANDOM_LOOP(out, g, {
            v[0] = u53(x[0], x[1]) >= level ? scale_d : 0.0;
            v[1] = u53(x[2], x[3]) >= level ? scale_d : 0.0;
        });
    else
        RANDOM_LOOP(out, g, {
            for (int k = 0; k < 4; ++k) v[k] = u32f(x[k]) >= lf ? scale_f : 0.0;
        });
#undef STORE
    return KB_OK;
}
