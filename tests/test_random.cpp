// Reference values, gradients and bad input of the random family.
//
// * The generator: Philox4x32-10 against Random123's published known-answer vectors, and each op's
//   first and second runs against the documented scheme (ops/random.c) recomputed here from the
//   Philox block: key = seed, counter = {run, block}, element i = block i / E, lane i % E.
// * Distributions, statistically (spec 2.9's rules on 200 x 200 draws, and a Kolmogorov-Smirnov
//   bound against the exact CDF). A statistical bound at level a fails for a fraction a of seeds,
//   so these use fixed seeds (listed in each test); everything else uses the test's printed seed.
// * Seeds and streams: same seed -> same values, other seeds and successive runs -> new values,
//   a fresh session with the same graph -> the same sequence; the _like forms' run-time shapes.
// * random_*_variable: shape, dtype, values = the op's first draw with the same seed.
// * dropout: kept fraction, scale, noise_shape broadcast (KB_NONE too), gradient = mask * scale.
// * Bad input: status, message naming the function and argument, session still usable.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kb_test_util.h"

extern "C" void kb_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

namespace {

using namespace kbt;

class Random : public KbTest {};

const int64_t k200[2] = {200, 200};

// ---- helpers -------------------------------------------------------------------------------

// A compiled function with no inputs, called repeatedly.
struct Fn {
    kb_function *fn = nullptr;
    Fn(kb_context *ctx, std::vector<kb_tensor *> outs, kb_device dev = KB_DEVICE_CPU) {
        fn = kb_function_new(ctx, nullptr, 0, outs.data(), (int)outs.size(), nullptr, 0, dev);
        EXPECT_NE(fn, nullptr) << kb_last_error();
    }
    ~Fn() { kb_function_free(fn); }
    // Call once (with optional feeds) and return output i as doubles.
    std::vector<double> call(int i = 0, const std::vector<kb_feed> &feeds = {}) {
        std::vector<double> v;
        if (!fn) return v;
        if (kb_function_call(fn, feeds.data(), (int)feeds.size()) != KB_OK) {
            ADD_FAILURE() << kb_last_error();
            return v;
        }
        return out(i);
    }
    std::vector<double> out(int i) {
        kb_dtype dt;
        int rank = 0;
        int64_t dims[KB_MAX_RANK];
        size_t nbytes = 0;
        const void *p = kb_function_output(fn, i, &dt, &rank, dims, &nbytes);
        last_shape.assign(dims, dims + rank);
        if (!p) return {};
        return from_bytes(p, nbytes / kb_dtype_size(dt), dt);
    }
    Shape last_shape;
};

double mean_of(const std::vector<double> &v) {
    double s = 0;
    for (double x : v) s += x;
    return s / (double)v.size();
}
double std_of(const std::vector<double> &v) {
    double m = mean_of(v), s = 0;
    for (double x : v) s += (x - m) * (x - m);
    return std::sqrt(s / (double)v.size());
}

// Kolmogorov-Smirnov statistic of the sample against the continuous CDF F.
template <typename F>
double ks_stat(std::vector<double> v, F cdf) {
    std::sort(v.begin(), v.end());
    const double n = (double)v.size();
    double d = 0;
    for (size_t i = 0; i < v.size(); ++i) {
        double f = cdf(v[i]);
        d = std::max(d, std::max((double)(i + 1) / n - f, f - (double)i / n));
    }
    return d;
}
// 1% critical value of the one-sample KS statistic, asymptotic (n large).
double ks_bound(size_t n) { return 1.63 / std::sqrt((double)n); }

double phi(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

// The scheme of ops/random.c, recomputed: words of block b of run r for a seed.
void block(uint64_t seed, uint64_t run, uint64_t b, uint32_t x[4]) {
    const uint32_t c[4] = {(uint32_t)run, (uint32_t)(run >> 32), (uint32_t)b, (uint32_t)(b >> 32)};
    const uint32_t k[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    kb_philox4x32_10(c, k, x);
}
// cuRAND's curand_uniform (float, (0, 1]) and curand_uniform2_double's 53-bit value.
float uf(uint32_t x) { return (float)x * 0x1p-32f + 0x1p-33f; }
double u53(uint32_t a, uint32_t b) { return (double)((uint64_t)a ^ ((uint64_t)b << 21)) * 0x1p-53 + 0x1p-54; }
// The uniform of element i (run r): float lanes for 4-per-block dtypes, 53-bit for float64.
double elem_u(uint64_t seed, uint64_t run, int64_t i, kb_dtype dt) {
    uint32_t x[4];
    if (dt == KB_FLOAT64) {
        block(seed, run, (uint64_t)(i / 2), x);
        return i % 2 ? u53(x[2], x[3]) : u53(x[0], x[1]);
    }
    block(seed, run, (uint64_t)(i / 4), x);
    return uf(x[i % 4]);
}

// ---- the generator -------------------------------------------------------------------------

// Random123's kat_vectors for philox4x32 (10 rounds): counter, key -> output.
TEST_F(Random, PhiloxKnownAnswers) {
    struct Kat {
        uint32_t ctr[4], key[2], out[4];
    };
    const Kat kats[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
        {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
         {0xffffffffu, 0xffffffffu},
         {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
        {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
         {0xa4093822u, 0x299f31d0u},
         {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
    };
    for (const Kat &k : kats) {
        uint32_t out[4];
        kb_philox4x32_10(k.ctr, k.key, out);
        for (int i = 0; i < 4; ++i) EXPECT_EQ(out[i], k.out[i]) << "word " << i;
    }
}

// Each op's first and second runs equal the scheme recomputed from the Philox block.
TEST_F(Random, OpsFollowTheDocumentedScheme) {
    const uint64_t s = seed & 0x7fffffffffffffffull;
    const int64_t shp[2] = {3, 7};  // 21 elements: a partial last block
    for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64}) {
        SCOPED_TRACE(kb_dtype_name(dt));
        kb_tensor *u = kb_random_uniform(ctx, shp, 2, -2.0, 3.0, dt, (int64_t)s);
        kb_tensor *b = kb_random_binomial(ctx, shp, 2, 0.35, dt, (int64_t)s);
        kb_tensor *tn = kb_truncated_normal(ctx, shp, 2, 1.0, 2.0, dt, (int64_t)s);
        kb_tensor *x = make_var(ctx, random_values(gen, 21, 0.5, 2.0), {3, 7}, dt);
        kb_tensor *d = kb_dropout(x, 0.3, nullptr, 0, (int64_t)s);
        ASSERT_TRUE(u && b && tn && d) << kb_last_error();
        auto xv = get_v(x);
        Fn f(ctx, {u, b, tn, d});
        for (uint64_t run = 0; run < 2; ++run) {
            ASSERT_EQ(kb_function_call(f.fn, nullptr, 0), KB_OK) << kb_last_error();
            auto uv = f.out(0), bv = f.out(1), tv = f.out(2), dv = f.out(3);
            ASSERT_EQ(uv.size(), 21u);
            const double scale = dt == KB_FLOAT64 ? 1.0 / (1.0 - 0.3) : (double)(1.0f / (1.0f - 0.3f));
            for (int64_t i = 0; i < 21; ++i) {
                double e = elem_u(s, run, i, dt);
                double ue = std::fma(5.0, e, -2.0);
                EXPECT_EQ(uv[i], dt == KB_FLOAT32 ? (double)(float)ue : ue) << "uniform " << i << " run " << run;
                EXPECT_EQ(bv[i], e <= (dt == KB_FLOAT32 ? (double)0.35f : 0.35) ? 1.0 : 0.0) << i;
                double keep = e >= (dt == KB_FLOAT32 ? (double)0.3f : 0.3) ? 1.0 : 0.0;
                double de = dt == KB_FLOAT32 ? (double)((float)xv[i] * (float)(keep * scale)) : xv[i] * keep * scale;
                EXPECT_EQ(dv[i], de) << "dropout " << i;
                // truncated normal by the inverse CDF: its CDF position is the element's uniform
                // (float lanes use (x + 0.5) 2^-32 in double; float64 the 53-bit uniform)
                double ut = e;
                if (dt != KB_FLOAT64) {
                    uint32_t w[4];
                    block(s, run, (uint64_t)(i / 4), w);
                    ut = ((double)w[i % 4] + 0.5) * 0x1p-32;
                }
                double z = (tv[i] - 1.0) / 2.0;
                double pos = (phi(z) - phi(-2.0)) / (phi(2.0) - phi(-2.0));
                EXPECT_NEAR(pos, ut, dt == KB_FLOAT64 ? 1e-12 : 2e-6) << "truncated_normal " << i;
            }
        }
    }
}

// Normal values: Box-Muller of the documented pairs (float lanes: (x0, x1) and (x2, x3); float64:
// cuRAND's double Box-Muller over the four words).
TEST_F(Random, NormalFollowsTheDocumentedScheme) {
    const uint64_t s = seed & 0x7fffffffffffffffull;
    const int64_t shp[1] = {10};
    for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64}) {
        kb_tensor *n = kb_random_normal(ctx, shp, 1, 0.0, 1.0, dt, (int64_t)s);
        auto v = eval_v(n);
        ASSERT_EQ(v.size(), 10u);
        for (int64_t i = 0; i < 10; ++i) {
            uint32_t w[4];
            double e;
            if (dt == KB_FLOAT64) {
                block(s, 0, (uint64_t)(i / 2), w);
                double u = u53(w[0], w[1]);
                double t = (double)((uint64_t)w[2] ^ ((uint64_t)w[3] << 21)) * 0x1p-52 + 0x1p-53;
                double r = std::sqrt(-2.0 * std::log(u));
                e = i % 2 ? r * std::cos(M_PI * t) : r * std::sin(M_PI * t);
            } else {
                block(s, 0, (uint64_t)(i / 4), w);
                int k = (int)(i % 4) & ~1;
                double r = std::sqrt(-2.0 * std::log(((double)w[k] + 0.5) * 0x1p-32));
                double a = 2.0 * M_PI * (((double)w[k + 1] + 0.5) * 0x1p-32);
                e = i % 2 ? r * std::cos(a) : r * std::sin(a);
            }
            EXPECT_NEAR(v[i], e, dt == KB_FLOAT64 ? 1e-13 : 1e-6 * std::max(1.0, std::fabs(e)))
                << kb_dtype_name(dt) << " " << i;
        }
    }
}

// ---- distributions (fixed seeds: see the file comment) ----------------------------------------

TEST_F(Random, UniformMomentsAndKS) {
    for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64}) {
        SCOPED_TRACE(kb_dtype_name(dt));
        auto v = eval_v(kb_random_uniform(ctx, k200, 2, -1.0, 1.0, dt, 1001));
        ASSERT_EQ(v.size(), 40000u);
        double mx = *std::max_element(v.begin(), v.end()), mn = *std::min_element(v.begin(), v.end());
        EXPECT_LT(std::fabs(mean_of(v)), 0.015);
        EXPECT_GT(mx, 0.985);
        EXPECT_LT(mx, 1.0);
        EXPECT_GE(mn, -1.0);
        EXPECT_LT(mn, -0.985);
        EXPECT_LT(ks_stat(v, [](double x) { return (x + 1.0) / 2.0; }), ks_bound(v.size()));
    }
    // another range and float16: all values in [minval, maxval)
    auto h = eval_v(kb_random_uniform(ctx, k200, 2, 2.0, 5.0, KB_FLOAT16, 1002));
    ASSERT_EQ(h.size(), 40000u);
    for (double x : h) {
        ASSERT_GE(x, 2.0);
        ASSERT_LT(x, 5.0);
    }
    EXPECT_NEAR(mean_of(h), 3.5, 0.03);
}

// [minval, maxval): values that round up to maxval in the dtype are stepped one ulp down.
TEST_F(Random, UniformExcludesMaxval) {
    // float16 in [0, 1): about 1 / 4096 of the draws round to 1.0 and must become 1 - 2^-11
    auto h = eval_v(kb_random_uniform(ctx, k200, 2, 0.0, 1.0, KB_FLOAT16, (int64_t)(seed >> 1)));
    ASSERT_EQ(h.size(), 40000u);
    EXPECT_LT(*std::max_element(h.begin(), h.end()), 1.0);
    EXPECT_EQ(*std::max_element(h.begin(), h.end()), 1.0 - 0x1p-11);  // reached: P(miss) < e^-9
    // a range narrower than one float32 ulp at 1: every value is 1.0
    auto f = eval_v(kb_random_uniform(ctx, k200, 2, 1.0, 1.00000001, KB_FLOAT32, (int64_t)(seed >> 2)));
    for (double x : f) ASSERT_EQ(x, 1.0);
    // minval == maxval: minval
    auto e = eval_v(kb_random_uniform(ctx, k200, 2, 0.25, 0.25, KB_FLOAT64, (int64_t)(seed >> 3)));
    for (double x : e) ASSERT_EQ(x, 0.25);
}

TEST_F(Random, NormalMomentsAndKS) {
    const double params[2][2] = {{0.0, 1.0}, {-10.0, 5.0}};
    for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64}) {
        for (int k = 0; k < 2; ++k) {
            const double m = params[k][0], sd = params[k][1];
            SCOPED_TRACE(std::string(kb_dtype_name(dt)) + " mean " + std::to_string(m));
            auto v = eval_v(kb_random_normal(ctx, k200, 2, m, sd, dt, 2001 + k));
            ASSERT_EQ(v.size(), 40000u);
            EXPECT_LT(std::fabs(mean_of(v) - m), 0.015 * sd);
            EXPECT_LT(std::fabs(std_of(v) - sd), 0.015 * sd);
            EXPECT_LT(ks_stat(v, [&](double x) { return phi((x - m) / sd); }), ks_bound(v.size()));
        }
    }
}

TEST_F(Random, TruncatedNormalMomentsAndKS) {
    for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64}) {
        SCOPED_TRACE(kb_dtype_name(dt));
        auto v = eval_v(kb_truncated_normal(ctx, k200, 2, 0.0, 1.0, dt, 3001));
        ASSERT_EQ(v.size(), 40000u);
        for (double x : v) {
            ASSERT_GE(x, -2.0);
            ASSERT_LE(x, 2.0);
        }
        EXPECT_LT(std::fabs(mean_of(v)), 0.016);
        EXPECT_LT(std::fabs(std_of(v) - 0.87962), 0.015);
        const double lo = phi(-2.0), z = phi(2.0) - phi(-2.0);
        EXPECT_LT(ks_stat(v, [&](double x) { return (phi(x) - lo) / z; }), ks_bound(v.size()));
        // mean and stddev: [mean - 2 sd, mean + 2 sd]
        auto w = eval_v(kb_truncated_normal(ctx, k200, 2, 3.0, 0.5, dt, 3002));
        for (double x : w) {
            ASSERT_GE(x, 2.0);
            ASSERT_LE(x, 4.0);
        }
        EXPECT_NEAR(mean_of(w), 3.0, 0.008);
        EXPECT_LT(ks_stat(w, [&](double x) { return (phi((x - 3.0) / 0.5) - lo) / z; }), ks_bound(w.size()));
    }
}

TEST_F(Random, BinomialIsBernoulli) {
    for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64, KB_BFLOAT16}) {
        SCOPED_TRACE(kb_dtype_name(dt));
        auto v = eval_v(kb_random_binomial(ctx, k200, 2, 0.5, dt, 4001));
        ASSERT_EQ(v.size(), 40000u);
        for (double x : v) ASSERT_TRUE(x == 0.0 || x == 1.0) << x;
        EXPECT_LT(std::fabs(mean_of(v) - 0.5), 0.015);
        EXPECT_EQ(*std::max_element(v.begin(), v.end()), 1.0);
        EXPECT_EQ(*std::min_element(v.begin(), v.end()), 0.0);
        EXPECT_LT(std::fabs(mean_of(eval_v(kb_random_binomial(ctx, k200, 2, 0.2, dt, 4002))) - 0.2), 0.012);
        for (double x : eval_v(kb_random_binomial(ctx, k200, 2, 0.0, dt, 4003))) ASSERT_EQ(x, 0.0);
        for (double x : eval_v(kb_random_binomial(ctx, k200, 2, 1.0, dt, 4004))) ASSERT_EQ(x, 1.0);
    }
}

// ---- seeds and streams ---------------------------------------------------------------------

TEST_F(Random, SeedsAndRuns) {
    const int64_t s = (int64_t)(seed & 0xffffffffu);
    const int64_t shp[1] = {64};
    kb_tensor *a = kb_random_normal(ctx, shp, 1, 0.0, 1.0, KB_FLOAT32, s);
    kb_tensor *b = kb_random_normal(ctx, shp, 1, 0.0, 1.0, KB_FLOAT32, s);
    kb_tensor *c = kb_random_normal(ctx, shp, 1, 0.0, 1.0, KB_FLOAT32, s + 1);
    kb_tensor *n1 = kb_random_normal(ctx, shp, 1, 0.0, 1.0, KB_FLOAT32, KB_SEED_NONE);
    kb_tensor *n2 = kb_random_normal(ctx, shp, 1, 0.0, 1.0, KB_FLOAT32, KB_SEED_NONE);
    Fn f(ctx, {a, b, c, n1, n2});
    ASSERT_EQ(kb_function_call(f.fn, nullptr, 0), KB_OK) << kb_last_error();
    auto a1 = f.out(0), b1 = f.out(1), c1 = f.out(2), n11 = f.out(3), n21 = f.out(4);
    EXPECT_EQ(a1, b1);   // same seed, same values
    EXPECT_NE(a1, c1);   // another seed
    EXPECT_NE(n11, n21); // two session-seeded nodes draw two streams
    EXPECT_NE(n11, a1);
    ASSERT_EQ(kb_function_call(f.fn, nullptr, 0), KB_OK) << kb_last_error();
    auto a2 = f.out(0), b2 = f.out(1), n12 = f.out(3);
    EXPECT_NE(a1, a2);   // a second run draws new numbers
    EXPECT_EQ(a2, b2);   // ... the same for the same seed
    EXPECT_NE(n11, n12);
    // kb_eval compiles a new function each time; the node's run counter still advances
    auto a3 = eval_v(a);
    EXPECT_NE(a3, a2);
    EXPECT_NE(a3, a1);

    // A fresh session with the same session seed and the same graph: the same sequence of runs.
    kb_context *ctx2 = nullptr;
    kb_context_options o = KB_CONTEXT_OPTIONS_DEFAULTS;
    o.device = KB_DEVICE_CPU;
    o.read_config = 0;
    o.seed = seed;
    ASSERT_EQ(kb_context_new(&ctx2, &o), KB_OK) << kb_last_error();
    {
        kb_tensor *a_ = kb_random_normal(ctx2, shp, 1, 0.0, 1.0, KB_FLOAT32, s);
        kb_tensor *b_ = kb_random_normal(ctx2, shp, 1, 0.0, 1.0, KB_FLOAT32, s);
        kb_tensor *c_ = kb_random_normal(ctx2, shp, 1, 0.0, 1.0, KB_FLOAT32, s + 1);
        kb_tensor *n1_ = kb_random_normal(ctx2, shp, 1, 0.0, 1.0, KB_FLOAT32, KB_SEED_NONE);
        kb_tensor *n2_ = kb_random_normal(ctx2, shp, 1, 0.0, 1.0, KB_FLOAT32, KB_SEED_NONE);
        Fn g(ctx2, {a_, b_, c_, n1_, n2_});
        ASSERT_EQ(kb_function_call(g.fn, nullptr, 0), KB_OK) << kb_last_error();
        EXPECT_EQ(g.out(0), a1);
        EXPECT_EQ(g.out(3), n11);
        EXPECT_EQ(g.out(4), n21);
        ASSERT_EQ(kb_function_call(g.fn, nullptr, 0), KB_OK) << kb_last_error();
        EXPECT_EQ(g.out(0), a2);
        EXPECT_EQ(g.out(3), n12);
    }
    kb_context_free(ctx2);
    // Another session seed changes the session-seeded streams only.
    o.seed = seed + 1;
    ASSERT_EQ(kb_context_new(&ctx2, &o), KB_OK) << kb_last_error();
    {
        kb_tensor *a_ = kb_random_normal(ctx2, shp, 1, 0.0, 1.0, KB_FLOAT32, s);
        kb_tensor *b_ = kb_random_normal(ctx2, shp, 1, 0.0, 1.0, KB_FLOAT32, s);
        kb_tensor *c_ = kb_random_normal(ctx2, shp, 1, 0.0, 1.0, KB_FLOAT32, s + 1);
        kb_tensor *n1_ = kb_random_normal(ctx2, shp, 1, 0.0, 1.0, KB_FLOAT32, KB_SEED_NONE);
        Fn g(ctx2, {a_, b_, c_, n1_});
        ASSERT_EQ(kb_function_call(g.fn, nullptr, 0), KB_OK) << kb_last_error();
        EXPECT_EQ(g.out(0), a1);
        EXPECT_NE(g.out(3), n11);
    }
    kb_context_free(ctx2);
}

// The _like forms take the run-time shape (a placeholder with an unknown batch).
TEST_F(Random, LikeFormsTakeTheRuntimeShape) {
    int64_t ps[2] = {KB_NONE, 3};
    kb_tensor *x = kb_placeholder(ctx, ps, 2, KB_FLOAT32, "x");
    kb_tensor *outs[4] = {kb_random_uniform_like(x, 0.0, 1.0, KB_FLOATX, KB_SEED_NONE),
                          kb_random_normal_like(x, 0.0, 1.0, KB_FLOAT64, 5),
                          kb_random_binomial_like(x, 0.5, KB_FLOATX, 6),
                          kb_truncated_normal_like(x, 0.0, 1.0, KB_FLOAT16, 7)};
    for (kb_tensor *t : outs) ASSERT_NE(t, nullptr) << kb_last_error();
    int64_t sh[KB_MAX_RANK];
    ASSERT_EQ(kb_int_shape(outs[0], sh), 2);
    EXPECT_EQ(sh[0], KB_NONE);
    EXPECT_EQ(sh[1], 3);
    EXPECT_EQ(kb_dtype_of(outs[0]), KB_FLOAT32);
    EXPECT_EQ(kb_dtype_of(outs[1]), KB_FLOAT64);
    EXPECT_EQ(kb_dtype_of(outs[3]), KB_FLOAT16);
    kb_function *fn = kb_function_new(ctx, &x, 1, outs, 4, nullptr, 0, KB_DEVICE_CPU);
    ASSERT_NE(fn, nullptr) << kb_last_error();
    for (int64_t batch : {5, 2}) {
        auto xv = random_values(gen, (size_t)(batch * 3), -1, 1);
        auto bytes = to_bytes(xv, KB_FLOAT32);
        Shape xs{batch, 3};
        kb_feed feed = feed_of(bytes, KB_FLOAT32, xs);
        ASSERT_EQ(kb_function_call(fn, &feed, 1), KB_OK) << kb_last_error();
        for (int i = 0; i < 4; ++i) {
            int rank = 0;
            int64_t dims[KB_MAX_RANK];
            ASSERT_NE(kb_function_output(fn, i, nullptr, &rank, dims, nullptr), nullptr);
            EXPECT_EQ(rank, 2);
            EXPECT_EQ(dims[0], batch);
            EXPECT_EQ(dims[1], 3);
        }
    }
    kb_function_free(fn);
}

TEST_F(Random, FloatxIsTheDefaultDtype) {
    const int64_t shp[1] = {8};
    EXPECT_EQ(kb_dtype_of(kb_random_uniform(ctx, shp, 1, 0, 1, KB_FLOATX, 1)), KB_FLOAT32);
    ASSERT_EQ(kb_set_floatx(ctx, KB_FLOAT64), KB_OK);
    kb_tensor *t = kb_truncated_normal(ctx, shp, 1, 0, 1, KB_FLOATX, 1);
    EXPECT_EQ(kb_dtype_of(t), KB_FLOAT64);
    EXPECT_EQ(eval_v(t).size(), 8u);
}

// Rank 0 gives one value; a zero-size shape gives an empty tensor (no kernel runs).
TEST_F(Random, ScalarAndEmptyShapes) {
    auto s = eval(kb_random_normal(ctx, nullptr, 0, 3.0, 0.0, KB_FLOAT64, 1));
    EXPECT_TRUE(s.shape.empty());
    ASSERT_EQ(s.v.size(), 1u);
    EXPECT_EQ(s.v[0], 3.0);  // stddev 0: the mean
    const int64_t e[2] = {0, 3};
    auto z = eval(kb_random_uniform(ctx, e, 2, 0, 1, KB_FLOAT32, 1));
    EXPECT_EQ(z.shape, (Shape{0, 3}));
    EXPECT_TRUE(z.v.empty());
    kb_tensor *v = kb_random_uniform_variable(ctx, e, 2, 0, 1, KB_FLOAT32, nullptr, KB_SEED_NONE);
    ASSERT_NE(v, nullptr) << kb_last_error();
    EXPECT_EQ(kb_count_params(v), 0);
    kb_tensor *x = make_var(ctx, {0.75}, {}, KB_FLOAT32);
    auto d = eval_v(kb_dropout(x, 0.5, nullptr, 0, 1));
    ASSERT_EQ(d.size(), 1u);
    EXPECT_TRUE(d[0] == 0.0 || d[0] == 1.5) << d[0];
}

// ---- variables -----------------------------------------------------------------------------

TEST_F(Random, Variables) {
    const int64_t shp[2] = {100, 50};
    const int64_t s = (int64_t)(seed & 0xffffffu);
    kb_tensor *u = kb_random_uniform_variable(ctx, shp, 2, -3.0, 2.0, KB_FLOATX, "ru", s);
    kb_tensor *n = kb_random_normal_variable(ctx, shp, 2, 1.0, 0.5, KB_FLOAT64, nullptr, s);
    kb_tensor *h = kb_random_uniform_variable(ctx, shp, 2, 0.0, 1.0, KB_FLOAT16, nullptr, KB_SEED_NONE);
    ASSERT_TRUE(u && n && h) << kb_last_error();
    EXPECT_TRUE(kb_is_variable(u));
    EXPECT_STREQ(kb_tensor_name(u), "ru");
    EXPECT_EQ(kb_count_params(u), 5000);
    EXPECT_EQ(kb_dtype_of(u), KB_FLOAT32);
    EXPECT_EQ(kb_dtype_of(n), KB_FLOAT64);
    EXPECT_EQ(kb_dtype_of(h), KB_FLOAT16);
    int64_t sh[KB_MAX_RANK];
    ASSERT_EQ(kb_int_shape(n, sh), 2);
    EXPECT_EQ(sh[0], 100);
    EXPECT_EQ(sh[1], 50);
    auto uv = get_v(u), nv = get_v(n), hv = get_v(h);
    for (double x : uv) {
        ASSERT_GE(x, -3.0);
        ASSERT_LT(x, 2.0);
    }
    for (double x : hv) {
        ASSERT_GE(x, 0.0);
        ASSERT_LT(x, 1.0);
    }
    // loose moment checks (5000 values: 6 standard errors)
    EXPECT_NEAR(mean_of(uv), -0.5, 6 * 5.0 / std::sqrt(12.0 * 5000));
    EXPECT_NEAR(mean_of(nv), 1.0, 6 * 0.5 / std::sqrt(5000.0));
    EXPECT_NEAR(std_of(nv), 0.5, 6 * 0.5 / std::sqrt(2.0 * 5000));
    // the values are the op's first draw with the same seed, and they stay (a variable)
    EXPECT_EQ(eval_v(kb_random_uniform(ctx, shp, 2, -3.0, 2.0, KB_FLOAT32, s)), uv);
    EXPECT_EQ(eval_v(kb_random_normal(ctx, shp, 2, 1.0, 0.5, KB_FLOAT64, s)), nv);
    EXPECT_EQ(eval_v(u), uv);
    EXPECT_EQ(get_v(u), uv);
}

// ---- dropout -------------------------------------------------------------------------------

TEST_F(Random, DropoutKeepsAndScales) {
    for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64}) {
        SCOPED_TRACE(kb_dtype_name(dt));
        const double level = 0.3;
        auto xv = rounded(random_values(gen, 40000, -2, 2), dt);
        kb_tensor *x = make_var(ctx, xv, {200, 200}, dt);
        auto y = eval_v(kb_dropout(x, level, nullptr, 0, 5001));
        ASSERT_EQ(y.size(), xv.size());
        const double scale = dt == KB_FLOAT32 ? (double)(1.0f / (1.0f - (float)level)) : 1.0 / (1.0 - level);
        size_t kept = 0;
        for (size_t i = 0; i < y.size(); ++i) {
            if (y[i] == 0.0) continue;
            ++kept;
            double e = dt == KB_FLOAT32 ? (double)((float)xv[i] * (float)scale) : xv[i] * scale;
            ASSERT_EQ(y[i], e) << i;
        }
        EXPECT_NEAR((double)kept / 40000.0, 1.0 - level, 0.015);
        // level 0 keeps everything unchanged
        EXPECT_EQ(eval_v(kb_dropout(x, 0.0, nullptr, 0, KB_SEED_NONE)), xv);
    }
}

TEST_F(Random, DropoutNoiseShapeBroadcasts) {
    auto xv = random_values(gen, 50 * 40, 0.5, 1.5);
    kb_tensor *x = make_var(ctx, xv, {50, 40});
    const int64_t rows[2] = {50, 1}, cols[1] = {40}, rows_none[2] = {KB_NONE, 1};
    for (int mode = 0; mode < 3; ++mode) {
        SCOPED_TRACE(mode);
        kb_tensor *y = mode == 0   ? kb_dropout(x, 0.5, rows, 2, 6001)
                       : mode == 1 ? kb_dropout(x, 0.5, cols, 1, 6002)  // right-aligned: (1, 40)
                                   : kb_dropout(x, 0.5, rows_none, 2, 6003);
        ASSERT_NE(y, nullptr) << kb_last_error();
        auto v = eval_v(y);
        ASSERT_EQ(v.size(), 2000u);
        int kept_lines = 0;
        const int lines = mode == 1 ? 40 : 50, along = mode == 1 ? 50 : 40;
        for (int l = 0; l < lines; ++l) {
            int kept = 0;
            for (int k = 0; k < along; ++k) kept += v[mode == 1 ? k * 40 + l : l * 40 + k] != 0.0;
            EXPECT_TRUE(kept == 0 || kept == along) << "line " << l << " kept " << kept;
            kept_lines += kept == along;
        }
        EXPECT_GT(kept_lines, 0);
        EXPECT_LT(kept_lines, lines);
    }
    // KB_NONE in noise_shape against a placeholder's unknown batch
    int64_t ps[2] = {KB_NONE, 4};
    kb_tensor *p = kb_placeholder(ctx, ps, 2, KB_FLOAT32, "p");
    const int64_t ns[2] = {KB_NONE, 1};
    kb_tensor *y = kb_dropout(p, 0.5, ns, 2, KB_SEED_NONE);
    ASSERT_NE(y, nullptr) << kb_last_error();
    auto pv = random_values(gen, 30 * 4, 0.5, 1.5);
    auto bytes = to_bytes(pv, KB_FLOAT32);
    Shape s{30, 4};
    RunResult r = run_function(ctx, {y}, KB_DEVICE_CPU, {p}, {feed_of(bytes, KB_FLOAT32, s)});
    ASSERT_EQ(r.status, KB_OK) << r.error;
    ASSERT_EQ(r.outs[0].shape, s);
    for (int i = 0; i < 30; ++i) {
        int kept = 0;
        for (int k = 0; k < 4; ++k) kept += r.outs[0].v[i * 4 + k] != 0.0;
        EXPECT_TRUE(kept == 0 || kept == 4) << "row " << i;
    }
}

// The gradient of dropout is dy times the same mask and scale (one run computes both).
TEST_F(Random, DropoutGradientIsMaskTimesScale) {
    for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64}) {
        SCOPED_TRACE(kb_dtype_name(dt));
        auto xv = random_values(gen, 60, -1, 1);
        auto wv = random_values(gen, 60, -1, 1);
        kb_tensor *x = make_var(ctx, xv, {6, 10}, dt);
        kb_tensor *w = make_const(ctx, wv, {6, 10}, dt);
        const double level = 0.45;
        kb_tensor *y = kb_dropout(x, level, nullptr, 0, KB_SEED_NONE);
        kb_tensor *loss = kb_sum(kb_multiply(y, w), nullptr, 0, 0);
        kb_tensor *g = nullptr;
        ASSERT_EQ(kb_gradients(loss, &x, 1, &g), KB_OK) << kb_last_error();
        ASSERT_NE(g, nullptr);
        Fn f(ctx, {y, g});
        const double scale = dt == KB_FLOAT32 ? (double)(1.0f / (1.0f - (float)level)) : 1.0 / (1.0 - level);
        auto xr = rounded(xv, dt), wr = rounded(wv, dt);
        for (int run = 0; run < 2; ++run) {  // a new mask each run, the gradient follows it
            ASSERT_EQ(kb_function_call(f.fn, nullptr, 0), KB_OK) << kb_last_error();
            auto yv = f.out(0), gv = f.out(1);
            ASSERT_EQ(gv.size(), 60u);
            int kept = 0;
            for (int i = 0; i < 60; ++i) {
                bool keep = yv[i] != 0.0;  // x has no zeros
                kept += keep;
                double e = keep ? (dt == KB_FLOAT32 ? (double)((float)wr[i] * (float)scale) : wr[i] * scale) : 0.0;
                EXPECT_EQ(gv[i], e) << i;
            }
            EXPECT_GT(kept, 0);
            EXPECT_LT(kept, 60);
        }
    }
}

// ---- CUDA ----------------------------------------------------------------------------------

// The k-th CUDA run of a node draws what its k-th CPU run draws (each device counts its own
// runs), over many Philox blocks (grid-stride loops) and a partial last block.
TEST_F(Random, CudaRunsMatchCpuRuns) {
    KB_REQUIRE_CUDA();
    const int64_t shp[1] = {(1 << 20) + 3};
    for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64, KB_FLOAT16}) {
        SCOPED_TRACE(kb_dtype_name(dt));
        kb_tensor *u = kb_random_uniform(ctx, shp, 1, -1.0, 1.0, dt, KB_SEED_NONE);
        kb_tensor *b = kb_random_binomial(ctx, shp, 1, 0.3, dt, 17);
        kb_tensor *x = make_var(ctx, random_values(gen, (size_t)shp[0], -1, 1), {shp[0]}, dt);
        kb_tensor *d = kb_dropout(x, 0.2, nullptr, 0, 18);
        kb_tensor *n = kb_random_normal(ctx, shp, 1, 0.0, 1.0, dt, 19);
        kb_tensor *t = kb_truncated_normal(ctx, shp, 1, 0.0, 1.0, dt, 20);
        Fn cpu(ctx, {u, b, d, n, t}, KB_DEVICE_CPU), gpu(ctx, {u, b, d, n, t}, KB_DEVICE_CUDA);
        ASSERT_EQ(kb_function_device(gpu.fn), KB_DEVICE_CUDA);
        const Tol tn = dt == KB_FLOAT64 ? Tol{1e-12, 1e-12} : dt == KB_FLOAT32 ? Tol{1e-5, 1e-6} : Tol{2e-2, 2e-2};
        for (int run = 0; run < 2; ++run) {
            ASSERT_EQ(kb_function_call(cpu.fn, nullptr, 0), KB_OK) << kb_last_error();
            ASSERT_EQ(kb_function_call(gpu.fn, nullptr, 0), KB_OK) << kb_last_error();
            for (int i = 0; i < 3; ++i) EXPECT_EQ(gpu.out(i), cpu.out(i)) << "output " << i << " run " << run;
            for (int i = 3; i < 5; ++i) EXPECT_TRUE(allclose(gpu.out(i), cpu.out(i), tn)) << "output " << i;
        }
    }
}

// ---- bad input -----------------------------------------------------------------------------

TEST_F(Random, BadInput) {
    const int64_t shp[2] = {2, 3}, neg[2] = {2, -3}, none[2] = {KB_NONE, 3};
    using S = std::vector<std::string>;
    EXPECT_NULL_WITH(kb_random_uniform(ctx, shp, 2, 1.0, 0.0, KB_FLOAT32, 1), KB_ERR_INVALID_ARGUMENT,
                     S{"kb_random_uniform", "minval"});
    EXPECT_NULL_WITH(kb_random_uniform(ctx, shp, 2, 0.0, INFINITY, KB_FLOAT32, 1), KB_ERR_INVALID_ARGUMENT,
                     S{"kb_random_uniform", "finite"});
    EXPECT_NULL_WITH(kb_random_uniform(ctx, shp, 2, -1e308, 1e308, KB_FLOAT64, 1), KB_ERR_INVALID_ARGUMENT,
                     S{"kb_random_uniform", "overflows"});
    EXPECT_NULL_WITH(kb_random_normal(ctx, shp, 2, 0.0, -1.0, KB_FLOAT32, 1), KB_ERR_INVALID_ARGUMENT,
                     S{"kb_random_normal", "stddev"});
    EXPECT_NULL_WITH(kb_truncated_normal(ctx, shp, 2, NAN, 1.0, KB_FLOAT32, 1), KB_ERR_INVALID_ARGUMENT,
                     S{"kb_truncated_normal", "mean"});
    EXPECT_NULL_WITH(kb_random_binomial(ctx, shp, 2, 1.5, KB_FLOAT32, 1), KB_ERR_INVALID_ARGUMENT,
                     S{"kb_random_binomial", "p must be in [0, 1]"});
    EXPECT_NULL_WITH(kb_random_binomial(ctx, shp, 2, NAN, KB_FLOAT32, 1), KB_ERR_INVALID_ARGUMENT,
                     S{"kb_random_binomial", "p"});
    EXPECT_NULL_WITH(kb_random_uniform(ctx, neg, 2, 0, 1, KB_FLOAT32, 1), KB_ERR_SHAPE,
                     S{"kb_random_uniform", "dimension 1"});
    EXPECT_NULL_WITH(kb_random_normal(ctx, none, 2, 0, 1, KB_FLOAT32, 1), KB_ERR_SHAPE,
                     S{"kb_random_normal", "_like"});
    EXPECT_NULL_WITH(kb_random_uniform(ctx, nullptr, 2, 0, 1, KB_FLOAT32, 1), KB_ERR_INVALID_ARGUMENT,
                     S{"kb_random_uniform", "shape"});
    EXPECT_NULL_WITH(kb_random_uniform(ctx, shp, 9, 0, 1, KB_FLOAT32, 1), KB_ERR_SHAPE, S{"kb_random_uniform", "rank"});
    EXPECT_NULL_WITH(kb_random_uniform(ctx, shp, 2, 0, 1, KB_INT32, 1), KB_ERR_DTYPE, S{"kb_random_uniform", "dtype"});
    EXPECT_NULL_WITH(kb_random_uniform(ctx, shp, 2, 0, 1, KB_FLOAT32, -2), KB_ERR_INVALID_ARGUMENT,
                     S{"kb_random_uniform", "seed"});
    EXPECT_NULL_WITH(kb_random_uniform(nullptr, shp, 2, 0, 1, KB_FLOAT32, 1), KB_ERR_INVALID_ARGUMENT,
                     S{"kb_random_uniform", "ctx"});
    EXPECT_NULL_WITH(kb_random_normal_like(nullptr, 0, 1, KB_FLOAT32, 1), KB_ERR_INVALID_ARGUMENT,
                     S{"kb_random_normal_like", "like"});
    EXPECT_NULL_WITH(kb_random_uniform_variable(ctx, shp, 2, 2.0, 1.0, KB_FLOAT32, nullptr, 1),
                     KB_ERR_INVALID_ARGUMENT, S{"kb_random_uniform_variable", "minval"});
    EXPECT_NULL_WITH(kb_random_normal_variable(ctx, shp, 2, 0.0, 1.0, KB_BOOL, nullptr, 1), KB_ERR_DTYPE,
                     S{"kb_random_normal_variable", "dtype"});
    EXPECT_NULL_WITH(kb_random_normal_variable(nullptr, shp, 2, 0.0, 1.0, KB_FLOAT32, nullptr, 1),
                     KB_ERR_INVALID_ARGUMENT, S{"kb_random_normal_variable", "ctx"});

    // dropout
    kb_tensor *x = make_var(ctx, random_values(gen, 12, -1, 1), {3, 4});
    for (double level : {-0.5, 1.0, 1.5, (double)NAN})
        EXPECT_NULL_WITH(kb_dropout(x, level, nullptr, 0, 1), KB_ERR_INVALID_ARGUMENT,
                         S{"kb_dropout", "level must be in interval [0, 1)"});
    const int64_t bad_ns[2] = {3, 5}, long_ns[3] = {1, 3, 4}, neg_ns[2] = {3, -2};
    EXPECT_NULL_WITH(kb_dropout(x, 0.5, bad_ns, 2, 1), KB_ERR_SHAPE, S{"kb_dropout", "noise_shape", "broadcast"});
    EXPECT_NULL_WITH(kb_dropout(x, 0.5, long_ns, 3, 1), KB_ERR_SHAPE, S{"kb_dropout", "noise_shape has 3 dims"});
    EXPECT_NULL_WITH(kb_dropout(x, 0.5, neg_ns, 2, 1), KB_ERR_SHAPE, S{"kb_dropout", "noise_shape dimension 1"});
    EXPECT_NULL_WITH(kb_dropout(x, 0.5, nullptr, 0, -7), KB_ERR_INVALID_ARGUMENT, S{"kb_dropout", "seed"});
    EXPECT_NULL_WITH(kb_dropout(nullptr, 0.5, nullptr, 0, 1), KB_ERR_INVALID_ARGUMENT, S{"kb_dropout", "x"});
    kb_tensor *xi = make_var(ctx, {1, 2, 3, 4}, {4}, KB_INT32);
    EXPECT_NULL_WITH(kb_dropout(xi, 0.5, nullptr, 0, 1), KB_ERR_DTYPE, S{"kb_dropout", "x"});

    // a noise_shape that only fails at run time (unknown batch) fails at plan time, by label
    int64_t ps[2] = {KB_NONE, 4};
    kb_tensor *p = kb_placeholder(ctx, ps, 2, KB_FLOAT32, "p");
    const int64_t ns[2] = {3, 1};
    kb_tensor *y = kb_dropout(p, 0.5, ns, 2, 1);
    ASSERT_NE(y, nullptr) << kb_last_error();
    auto bytes = to_bytes(random_values(gen, 20, -1, 1), KB_FLOAT32);
    Shape s5{5, 4};
    kb_clear_error();
    RunResult r = run_function(ctx, {y}, KB_DEVICE_CPU, {p}, {feed_of(bytes, KB_FLOAT32, s5)});
    EXPECT_EQ(r.status, KB_ERR_SHAPE);
    EXPECT_NE(r.error.find("dropout_mask"), std::string::npos) << r.error;

    // the session is still usable
    kb_clear_error();
    auto v = eval_v(kb_random_uniform(ctx, shp, 2, 0, 1, KB_FLOAT32, 1));
    EXPECT_EQ(v.size(), 6u);
    EXPECT_EQ(get_v(x).size(), 12u);
}

}  // namespace
