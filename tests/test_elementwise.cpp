// Reference values and bad input of the elementwise family: abs sign round pow sin cos clip
// clip_tensor maximum minimum, the comparisons, integer arithmetic and float16/bfloat16 of the
// foundation ops, against independent loops written here (and hand numbers for the edge cases
// the spec names: half-to-even ties, sign(0), NaN, None bounds, max < min).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kb_test_util.h"
#include "op_cases.h"

namespace {

using namespace kbt;

const double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();
const kb_dtype kFloats[] = {KB_FLOAT32, KB_FLOAT64};
const kb_dtype kAllFloats[] = {KB_FLOAT16, KB_BFLOAT16, KB_FLOAT32, KB_FLOAT64};
const kb_dtype kInts[] = {KB_INT8, KB_UINT8, KB_INT32, KB_INT64};

// Values as stored in dt (the reference starts from the same inputs).
// Tolerance for a result computed in float32 and rounded once to dt.
Tol tol_of(kb_dtype dt) {
    if (dt == KB_FLOAT16) return {1e-3, 1e-4};   // 11-bit mantissa: half an ulp is 2^-11
    if (dt == KB_BFLOAT16) return {8e-3, 1e-4};  // 8-bit mantissa: half an ulp is 2^-8
    return default_tol(dt);
}

// numpy broadcasting of a (shape sa) and b (shape sb) through f, by explicit index arithmetic.
template <typename F>
std::vector<double> bcast_ref(const std::vector<double> &a, const Shape &sa, const std::vector<double> &b,
                              const Shape &sb, F f, Shape *out_shape) {
    size_t r = std::max(sa.size(), sb.size());
    Shape so(r);
    for (size_t i = 0; i < r; ++i) {
        int64_t da = i < r - sa.size() ? 1 : sa[i - (r - sa.size())];
        int64_t db = i < r - sb.size() ? 1 : sb[i - (r - sb.size())];
        so[i] = std::max(da, db);
    }
    *out_shape = so;
    std::vector<double> o((size_t)numel(so));
    for (int64_t i = 0; i < numel(so); ++i) {
        std::vector<int64_t> idx(r);
        int64_t rem = i;
        for (size_t k = r; k-- > 0;) {
            idx[k] = rem % so[k];
            rem /= so[k];
        }
        int64_t ia = 0, ib = 0;
        for (size_t k = 0; k < sa.size(); ++k) ia = ia * sa[k] + (sa[k] == 1 ? 0 : idx[k + r - sa.size()]);
        for (size_t k = 0; k < sb.size(); ++k) ib = ib * sb[k] + (sb[k] == 1 ? 0 : idx[k + r - sb.size()]);
        o[(size_t)i] = f(a[(size_t)ia], b[(size_t)ib]);
    }
    return o;
}

const std::vector<std::pair<Shape, Shape>> kShapes = {
    {{2, 3}, {2, 3}}, {{2, 3}, {3}}, {{4, 1}, {1, 5}}, {{}, {2, 3}}, {{2, 3}, {}}, {{2, 1, 3}, {4, 1}}, {{3}, {2, 1}}};

class Elementwise : public KbTest {
protected:
    std::vector<double> rnd(size_t n, double lo = -2, double hi = 2) { return random_values(gen, n, lo, hi); }
    // n random integers in [lo, hi] (never all zero: random_values redraws exact zeros).
    std::vector<double> rnd_int(size_t n, double lo, double hi) {
        auto v = random_values(gen, n, lo, hi);
        for (double &x : v) x = std::round(x);
        return v;
    }
};

// ---- abs sign round ------------------------------------------------------------------------------

TEST_F(Elementwise, RoundHalfToEven) {
    const std::vector<double> x = {-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 4.5, -0.0, 0.4, -0.6, 2.51, kInf, -kInf, kNaN};
    const std::vector<double> want = {-2, -2, -0.0, 0, 2, 2, 4, 4, -0.0, 0, -1, 3, kInf, -kInf, kNaN};
    for (kb_dtype dt : kAllFloats) {
        HostValue hv = eval(kb_round(make_const(ctx, x, {(int64_t)x.size()}, dt)));
        EXPECT_EQ(hv.dtype, dt);
        EXPECT_TRUE(allclose(hv.v, rounded(want, dt), 0, 0)) << kb_dtype_name(dt);
        ASSERT_EQ(hv.v.size(), x.size());
        EXPECT_TRUE(std::signbit(hv.v[2])) << "round(-0.5) must be -0 in " << kb_dtype_name(dt);
    }
    // Random values against nearbyint (half to even in the default rounding mode).
    for (kb_dtype dt : kFloats) {
        auto v = rounded(rnd(200, -50, 50), dt);
        std::vector<double> w(v.size());
        for (size_t i = 0; i < v.size(); ++i) w[i] = std::nearbyint(v[i]);
        EXPECT_TRUE(allclose(eval_v(kb_round(make_const(ctx, v, {10, 20}, dt))), w, 0, 0));
    }
}

TEST_F(Elementwise, SignAndAbs) {
    const std::vector<double> x = {-3.0, -0.0, 0.0, 2.0, kNaN, kInf, -kInf, -1e-4, 7.25};
    const std::vector<double> sg = {-1, 0, 0, 1, kNaN, 1, -1, -1, 1};
    const std::vector<double> ab = {3.0, 0.0, 0.0, 2.0, kNaN, kInf, kInf, 1e-4, 7.25};
    for (kb_dtype dt : kAllFloats) {
        kb_tensor *t = make_const(ctx, x, {3, 3}, dt);
        HostValue s = eval(kb_sign(t)), a = eval(kb_abs(t));
        EXPECT_EQ(s.dtype, dt);
        EXPECT_EQ(s.shape, (Shape{3, 3}));
        EXPECT_TRUE(allclose(s.v, sg, 0, 0)) << kb_dtype_name(dt);
        EXPECT_TRUE(allclose(a.v, rounded(ab, dt), 0, 0)) << kb_dtype_name(dt);
        ASSERT_EQ(a.v.size(), x.size());
        EXPECT_FALSE(std::signbit(a.v[1])) << "abs(-0) must be +0";
        EXPECT_FALSE(std::signbit(s.v[1])) << "sign(-0) must be +0";
    }
}

// ---- pow sin cos ---------------------------------------------------------------------------------

TEST_F(Elementwise, PowAgainstStdPow) {
    const double exps[] = {2.0, 3.0, 0.5, -1.0, -1.5, 0.0, 1.0, 2.5};
    for (kb_dtype dt : kFloats)
        for (double a : exps) {
            // Negative bases only for integer exponents (a fractional power of a negative is NaN).
            bool integral = a == std::floor(a);
            auto v = rounded(rnd(24, integral ? -3 : 0.1, 3), dt);
            std::vector<double> w(v.size());
            for (size_t i = 0; i < v.size(); ++i) w[i] = std::pow(v[i], a);
            HostValue hv = eval(kb_pow(make_const(ctx, v, {2, 3, 4}, dt), a));
            EXPECT_EQ(hv.shape, (Shape{2, 3, 4}));
            EXPECT_TRUE(allclose(hv.v, w, default_tol(dt))) << "a = " << a << " " << kb_dtype_name(dt);
        }
    // IEEE pow edge values, as tf.pow: negative base with a fractional exponent is NaN, 0^-1 = inf,
    // x^0 = 1 for every x (NaN included).
    kb_tensor *e = make_const(ctx, {-4.0, 0.0, 4.0, kNaN}, {4}, KB_FLOAT64);
    EXPECT_TRUE(allclose(eval_v(kb_pow(e, 0.5)), {kNaN, 0.0, 2.0, kNaN}, 0, 0));
    EXPECT_TRUE(allclose(eval_v(kb_pow(e, -1.0)), {-0.25, kInf, 0.25, kNaN}, 0, 0));
    EXPECT_TRUE(allclose(eval_v(kb_pow(e, 0.0)), {1, 1, 1, 1}, 0, 0));
    EXPECT_TRUE(allclose(eval_v(kb_pow(e, 2.0)), {16, 0, 16, kNaN}, 0, 0));
}

TEST_F(Elementwise, SinCos) {
    for (kb_dtype dt : kAllFloats) {
        auto v = rounded(rnd(60, -10, 10), dt);
        std::vector<double> s(v.size()), c(v.size());
        for (size_t i = 0; i < v.size(); ++i) {
            s[i] = std::sin(v[i]);
            c[i] = std::cos(v[i]);
        }
        kb_tensor *x = make_const(ctx, v, {3, 4, 5}, dt);
        HostValue hs = eval(kb_sin(x));
        EXPECT_EQ(hs.dtype, dt);
        EXPECT_TRUE(allclose(hs.v, s, tol_of(dt))) << kb_dtype_name(dt);
        EXPECT_TRUE(allclose(eval_v(kb_cos(x)), c, tol_of(dt))) << kb_dtype_name(dt);
    }
    kb_tensor *e = make_const(ctx, {0.0, kInf, kNaN}, {3}, KB_FLOAT64);
    EXPECT_TRUE(allclose(eval_v(kb_sin(e)), {0.0, kNaN, kNaN}, 0, 0));
    EXPECT_TRUE(allclose(eval_v(kb_cos(e)), {1.0, kNaN, kNaN}, 0, 0));
}

// ---- clip ----------------------------------------------------------------------------------------

TEST_F(Elementwise, ClipNumberBounds) {
    struct B {
        double lo, hi;
    };
    const B bounds[] = {{-0.5, 0.7}, {-kInf, 0.3}, {-0.3, kInf}, {-kInf, kInf}, {1.0, -1.0}, {0.2, 0.2}};
    for (kb_dtype dt : kAllFloats)
        for (const B &b : bounds) {
            auto v = rounded(rnd(30, -2, 2), dt);
            v[0] = kNaN;
            v[1] = kInf;
            v[2] = -kInf;
            // Keras: max_value < min_value gives max_value = min_value.
            double lo = b.lo, hi = b.hi < b.lo ? b.lo : b.hi;
            std::vector<double> w(v.size());
            for (size_t i = 0; i < v.size(); ++i) w[i] = std::isnan(v[i]) ? v[i] : std::min(std::max(v[i], lo), hi);
            HostValue hv = eval(kb_clip(make_const(ctx, v, {5, 6}, dt), b.lo, b.hi));
            EXPECT_EQ(hv.dtype, dt);
            EXPECT_TRUE(allclose(hv.v, rounded(w, dt), 0, 0))
                << "clip(" << b.lo << ", " << b.hi << ") " << kb_dtype_name(dt);
        }
}

TEST_F(Elementwise, ClipTensorBounds) {
    for (kb_dtype dt : kFloats) {
        auto xv = rounded(rnd(24, -3, 3), dt), lov = rounded(rnd(4, -1, 0.5), dt), hiv = rounded(rnd(6, -0.5, 1), dt);
        kb_tensor *x = make_const(ctx, xv, {2, 3, 4}, dt);
        kb_tensor *lo = make_const(ctx, lov, {4}, dt), *hi = make_const(ctx, hiv, {2, 3, 1}, dt);
        // Per element: min(x, hi) then max(., lo), so where hi < lo the result is lo.
        std::vector<double> w(24), wlo(24), whi(24);
        for (int i = 0; i < 24; ++i) {
            double l = lov[(size_t)(i % 4)], h = hiv[(size_t)(i / 4)];
            w[(size_t)i] = std::max(std::min(xv[(size_t)i], h), l);
            wlo[(size_t)i] = std::max(xv[(size_t)i], l);
            whi[(size_t)i] = std::min(xv[(size_t)i], h);
        }
        HostValue hv = eval(kb_clip_tensor(x, lo, hi));
        EXPECT_EQ(hv.shape, (Shape{2, 3, 4}));
        EXPECT_TRUE(allclose(hv.v, w, 0, 0)) << kb_dtype_name(dt);
        EXPECT_TRUE(allclose(eval_v(kb_clip_tensor(x, lo, nullptr)), wlo, 0, 0));
        EXPECT_TRUE(allclose(eval_v(kb_clip_tensor(x, nullptr, hi)), whi, 0, 0));
        EXPECT_TRUE(allclose(eval_v(kb_clip_tensor(x, nullptr, nullptr)), xv, 0, 0));
    }
}

// ---- maximum / minimum ---------------------------------------------------------------------------

TEST_F(Elementwise, MaximumMinimumBroadcast) {
    auto mx = [](double a, double b) { return std::isnan(a) || std::isnan(b) ? kNaN : std::max(a, b); };
    auto mn = [](double a, double b) { return std::isnan(a) || std::isnan(b) ? kNaN : std::min(a, b); };
    for (kb_dtype dt : {KB_FLOAT16, KB_FLOAT32, KB_FLOAT64, KB_INT32, KB_INT64, KB_INT8, KB_UINT8})
        for (const auto &sh : kShapes) {
            bool is_int = !(dt == KB_FLOAT16 || dt == KB_FLOAT32 || dt == KB_FLOAT64);
            double lo = dt == KB_UINT8 ? 0 : -5;
            auto av = is_int ? rnd_int((size_t)numel(sh.first), lo, 5) : rounded(rnd((size_t)numel(sh.first)), dt);
            auto bv = is_int ? rnd_int((size_t)numel(sh.second), lo, 5) : rounded(rnd((size_t)numel(sh.second)), dt);
            if (!is_int && av.size() > 1) av[1] = kNaN;  // NaN propagates from either side
            if (!is_int && bv.size() > 2) bv[2] = kNaN;
            kb_tensor *a = make_const(ctx, av, sh.first, dt), *b = make_const(ctx, bv, sh.second, dt);
            Shape so;
            auto wmax = bcast_ref(av, sh.first, bv, sh.second, mx, &so);
            auto wmin = bcast_ref(av, sh.first, bv, sh.second, mn, &so);
            HostValue hmax = eval(kb_maximum(a, b)), hmin = eval(kb_minimum(a, b));
            EXPECT_EQ(hmax.shape, so);
            EXPECT_EQ(hmax.dtype, dt);
            EXPECT_TRUE(allclose(hmax.v, wmax, 0, 0)) << kb_dtype_name(dt) << " " << shape_str(sh.first);
            EXPECT_TRUE(allclose(hmin.v, wmin, 0, 0)) << kb_dtype_name(dt) << " " << shape_str(sh.first);
        }
}

// TF's gradient: to x where x >= y (maximum) / x <= y (minimum), the rest (NaN included) to y.
TEST_F(Elementwise, MaximumMinimumGradientTies) {
    kb_tensor *x = make_var(ctx, {1, 2, 3, kNaN, 5}, {5}, KB_FLOAT64);
    kb_tensor *y = make_var(ctx, {1, 5, 0, 1, kNaN}, {5}, KB_FLOAT64);
    kb_tensor *w = make_const(ctx, {10, 20, 30, 40, 50}, {5}, KB_FLOAT64);
    kb_tensor *vars[2] = {x, y};
    for (int is_max = 0; is_max < 2; ++is_max) {
        kb_tensor *m = is_max ? kb_maximum(x, y) : kb_minimum(x, y);
        kb_tensor *g[2] = {nullptr, nullptr};
        ASSERT_TRUE(ok(kb_gradients(kb_sum(kb_multiply(m, w), nullptr, 0, 0), vars, 2, g)));
        // x gets: tie, (2 >= 5: no / 2 <= 5: yes), (3 >= 0: yes / no), NaN: no, NaN: no.
        std::vector<double> gx = is_max ? std::vector<double>{10, 0, 30, 0, 0} : std::vector<double>{10, 20, 0, 0, 0};
        std::vector<double> gy(5);
        for (int i = 0; i < 5; ++i) gy[(size_t)i] = 10.0 * (i + 1) - gx[(size_t)i];
        EXPECT_TRUE(allclose(eval_v(g[0]), gx, 0, 0)) << (is_max ? "maximum" : "minimum");
        EXPECT_TRUE(allclose(eval_v(g[1]), gy, 0, 0)) << (is_max ? "maximum" : "minimum");
    }
    // A broadcast operand sums its gradient.
    kb_tensor *s = make_var(ctx, {2.5}, {}, KB_FLOAT64);
    kb_tensor *gs = nullptr;
    kb_tensor *xs = make_const(ctx, {1, 2, 3, 4}, {4}, KB_FLOAT64);
    ASSERT_TRUE(ok(kb_gradients(kb_sum(kb_maximum(xs, s), nullptr, 0, 0), &s, 1, &gs)));
    EXPECT_TRUE(allclose(eval_v(gs), {2.0}, 0, 0));
}

TEST_F(Elementwise, GradientRules) {
    kb_tensor *x = make_var(ctx, {-2.0, -0.5, 0.0, 0.5, 3.0}, {5}, KB_FLOAT64);
    auto grad_of = [&](kb_tensor *y) -> kb_tensor * {
        kb_tensor *g = nullptr;
        EXPECT_TRUE(ok(kb_gradients(kb_sum(y, nullptr, 0, 0), &x, 1, &g)));
        return g;
    };
    // abs: sign(x), 0 at 0 (TF).
    EXPECT_TRUE(allclose(eval_v(grad_of(kb_abs(x))), {-1, -1, 0, 1, 1}, 0, 0));
    // sign: zeros (TF's _SignGrad returns zeros_like(x), not None).
    kb_tensor *gs = grad_of(kb_sign(x));
    ASSERT_NE(gs, nullptr);
    EXPECT_TRUE(allclose(eval_v(gs), {0, 0, 0, 0, 0}, 0, 0));
    // round: no gradient registered in TF (None).
    EXPECT_EQ(grad_of(kb_round(x)), nullptr);
    // pow: a * x^(a-1).
    EXPECT_TRUE(allclose(eval_v(grad_of(kb_pow(x, 3.0))), {12, 0.75, 0, 0.75, 27}, 1e-15, 0));
    // sin / cos.
    std::vector<double> xs = {-2.0, -0.5, 0.0, 0.5, 3.0}, c(5), ms(5);
    for (int i = 0; i < 5; ++i) {
        c[(size_t)i] = std::cos(xs[(size_t)i]);
        ms[(size_t)i] = -std::sin(xs[(size_t)i]);
    }
    EXPECT_TRUE(allclose(eval_v(grad_of(kb_sin(x))), c, default_tol(KB_FLOAT64)));
    EXPECT_TRUE(allclose(eval_v(grad_of(kb_cos(x))), ms, default_tol(KB_FLOAT64)));
    // clip: dy where lo <= x <= hi (bounds included, as TF).
    EXPECT_TRUE(allclose(eval_v(grad_of(kb_clip(x, -0.5, 0.5))), {0, 1, 1, 1, 0}, 0, 0));
    // clip_tensor: x inside gets it, a bound where x is beyond it.
    kb_tensor *lo = make_var(ctx, {-1.0}, {}, KB_FLOAT64), *hi = make_var(ctx, {0.5}, {}, KB_FLOAT64);
    kb_tensor *vars[3] = {x, lo, hi}, *g[3] = {nullptr, nullptr, nullptr};
    ASSERT_TRUE(ok(kb_gradients(kb_sum(kb_clip_tensor(x, lo, hi), nullptr, 0, 0), vars, 3, g)));
    EXPECT_TRUE(allclose(eval_v(g[0]), {0, 1, 1, 1, 0}, 0, 0));
    EXPECT_TRUE(allclose(eval_v(g[1]), {1}, 0, 0));
    EXPECT_TRUE(allclose(eval_v(g[2]), {1}, 0, 0));
}

// ---- comparisons ---------------------------------------------------------------------------------

TEST_F(Elementwise, ComparisonsBroadcast) {
    struct Cmp {
        const char *n;
        kb_tensor *(*f)(kb_tensor *, kb_tensor *);
        bool (*ref)(double, double);
    };
    const Cmp cmps[] = {{"equal", kb_equal, [](double a, double b) { return a == b; }},
                        {"not_equal", kb_not_equal, [](double a, double b) { return a != b; }},
                        {"greater", kb_greater, [](double a, double b) { return a > b; }},
                        {"greater_equal", kb_greater_equal, [](double a, double b) { return a >= b; }},
                        {"less", kb_less, [](double a, double b) { return a < b; }},
                        {"less_equal", kb_less_equal, [](double a, double b) { return a <= b; }}};
    for (kb_dtype dt : {KB_FLOAT16, KB_BFLOAT16, KB_FLOAT32, KB_FLOAT64, KB_INT8, KB_UINT8, KB_INT32, KB_INT64})
        for (const auto &sh : kShapes) {
            bool is_float = dt == KB_FLOAT16 || dt == KB_BFLOAT16 || dt == KB_FLOAT32 || dt == KB_FLOAT64;
            double lo = dt == KB_UINT8 ? 0 : -2;
            // Integer-valued inputs: many ties; plus NaN on the float paths.
            auto av = rnd_int((size_t)numel(sh.first), lo, 2), bv = rnd_int((size_t)numel(sh.second), lo, 2);
            if (is_float && av.size() > 1) av[1] = kNaN;
            if (is_float && bv.size() > 1) bv[0] = kNaN;
            kb_tensor *a = make_const(ctx, av, sh.first, dt), *b = make_const(ctx, bv, sh.second, dt);
            for (const Cmp &c : cmps) {
                Shape so;
                auto want = bcast_ref(av, sh.first, bv, sh.second,
                                      [&](double p, double q) { return c.ref(p, q) ? 1.0 : 0.0; }, &so);
                HostValue hv = eval(c.f(a, b));
                EXPECT_EQ(hv.dtype, KB_BOOL) << c.n;
                EXPECT_EQ(hv.shape, so) << c.n;
                EXPECT_TRUE(allclose(hv.v, want, 0, 0)) << c.n << " " << kb_dtype_name(dt) << " "
                                                        << shape_str(sh.first) << " " << shape_str(sh.second);
            }
        }
}

TEST_F(Elementwise, EqualOnBool) {
    kb_tensor *a = make_const(ctx, {1, 0, 1, 0}, {4}, KB_BOOL), *b = make_const(ctx, {1, 1, 0, 0}, {4}, KB_BOOL);
    EXPECT_TRUE(allclose(eval_v(kb_equal(a, b)), {1, 0, 0, 1}, 0, 0));
    EXPECT_TRUE(allclose(eval_v(kb_not_equal(a, b)), {0, 1, 1, 0}, 0, 0));
    kb_tensor *c = make_const(ctx, {1}, {}, KB_BOOL);
    HostValue hv = eval(kb_equal(kb_reshape(a, std::vector<int64_t>{2, 2}.data(), 2), c));
    EXPECT_EQ(hv.shape, (Shape{2, 2}));
    EXPECT_TRUE(allclose(hv.v, {1, 0, 1, 0}, 0, 0));
}

// ---- integer arithmetic --------------------------------------------------------------------------

TEST_F(Elementwise, IntegerArithmetic) {
    for (kb_dtype dt : kInts) {
        bool u = dt == KB_UINT8;
        auto av = rnd_int(12, u ? 0 : -10, 10), bv = rnd_int(4, u ? 0 : -10, 10);
        kb_tensor *a = make_const(ctx, av, {3, 4}, dt), *b = make_const(ctx, bv, {4}, dt);
        Shape so;
        auto add = bcast_ref(av, {3, 4}, bv, {4}, [](double p, double q) { return p + q; }, &so);
        auto mul = bcast_ref(av, {3, 4}, bv, {4}, [](double p, double q) { return p * q; }, &so);
        HostValue hv = eval(kb_add(a, b));
        EXPECT_EQ(hv.dtype, dt);
        EXPECT_TRUE(allclose(hv.v, add, 0, 0)) << kb_dtype_name(dt);
        EXPECT_TRUE(allclose(eval_v(kb_multiply(a, b)), mul, 0, 0)) << kb_dtype_name(dt);
        std::vector<double> sq(12), ab(12), sg(12);
        for (size_t i = 0; i < 12; ++i) {
            sq[i] = av[i] * av[i];
            ab[i] = std::fabs(av[i]);
            sg[i] = av[i] > 0 ? 1 : av[i] < 0 ? -1 : 0;
        }
        EXPECT_TRUE(allclose(eval_v(kb_square(a)), sq, 0, 0)) << kb_dtype_name(dt);
        EXPECT_TRUE(allclose(eval_v(kb_abs(a)), ab, 0, 0)) << kb_dtype_name(dt);
        EXPECT_TRUE(allclose(eval_v(kb_sign(a)), sg, 0, 0)) << kb_dtype_name(dt);
        if (!u) {
            auto sub = bcast_ref(av, {3, 4}, bv, {4}, [](double p, double q) { return p - q; }, &so);
            EXPECT_TRUE(allclose(eval_v(kb_subtract(a, b)), sub, 0, 0)) << kb_dtype_name(dt);
            std::vector<double> neg(12);
            for (size_t i = 0; i < 12; ++i) neg[i] = -av[i];
            EXPECT_TRUE(allclose(eval_v(kb_negative(a)), neg, 0, 0)) << kb_dtype_name(dt);
        }
    }
}

// Integer overflow wraps modulo 2^bits, as TF's integer kernels (no trap, no saturation).
TEST_F(Elementwise, IntegerWrapAround) {
    const double i32max = 2147483647.0, i32min = -2147483648.0;
    kb_tensor *a = make_const(ctx, {i32max, i32min, 65536, -7}, {4}, KB_INT32);
    kb_tensor *one = make_const(ctx, {1}, {}, KB_INT32);
    EXPECT_TRUE(allclose(eval_v(kb_add(a, one)), {i32min, i32min + 1, 65537, -6}, 0, 0));
    EXPECT_TRUE(allclose(eval_v(kb_subtract(a, one)), {i32max - 1, i32max, 65535, -8}, 0, 0));
    EXPECT_TRUE(allclose(eval_v(kb_square(a)), {1, 0, 0, 49}, 0, 0));  // 65536^2 = 2^32 wraps to 0
    EXPECT_TRUE(allclose(eval_v(kb_negative(a)), {-i32max, i32min, -65536, 7}, 0, 0));
    EXPECT_TRUE(allclose(eval_v(kb_abs(a)), {i32max, i32min, 65536, 7}, 0, 0));
    kb_tensor *b = make_const(ctx, {100, -100, 127, -128}, {4}, KB_INT8);
    EXPECT_TRUE(allclose(eval_v(kb_add(b, b)), {-56, 56, -2, 0}, 0, 0));
    EXPECT_TRUE(allclose(eval_v(kb_multiply(b, b)), {16, 16, 1, 0}, 0, 0));
    kb_tensor *u = make_const(ctx, {0, 1, 200}, {3}, KB_UINT8);
    EXPECT_TRUE(allclose(eval_v(kb_negative(u)), {0, 255, 56}, 0, 0));
    EXPECT_TRUE(allclose(eval_v(kb_add(u, u)), {0, 2, 144}, 0, 0));
    EXPECT_TRUE(allclose(eval_v(kb_subtract(make_const(ctx, {0}, {}, KB_UINT8), u)), {0, 255, 56}, 0, 0));
}

// Integer inputs carry no gradient: a float loss through cast(int op) differentiates to None.
TEST_F(Elementwise, IntegerOpsHaveNoGradient) {
    kb_tensor *x = make_var(ctx, {1.5, -2.5, 3.0}, {3}, KB_FLOAT32);
    kb_tensor *i = kb_cast(x, KB_INT32);
    kb_tensor *y = kb_cast(kb_add(kb_multiply(i, i), kb_abs(i)), KB_FLOAT32);
    kb_tensor *g = nullptr;
    ASSERT_TRUE(ok(kb_gradients(kb_sum(y, nullptr, 0, 0), &x, 1, &g)));
    EXPECT_EQ(g, nullptr);
    EXPECT_TRUE(allclose(eval_v(y), {2, 6, 12}, 0, 0));  // cast truncates: 1, -2, 3
}

// ---- float16 / bfloat16 (CPU: widened to float32, one rounding on store) -----------------------

TEST_F(Elementwise, HalfTypesFoundationOps) {
    for (kb_dtype dt : {KB_FLOAT16, KB_BFLOAT16}) {
        auto av = rounded(rnd(24, -2, 2), dt), bv = rounded(rnd(4, 0.5, 2), dt);
        kb_tensor *a = make_const(ctx, av, {2, 3, 4}, dt), *b = make_const(ctx, bv, {4}, dt);
        Shape so;
        struct Op {
            kb_tensor *(*f)(kb_tensor *, kb_tensor *);
            double (*ref)(double, double);
        };
        const Op ops[] = {{kb_add, [](double p, double q) { return p + q; }},
                          {kb_subtract, [](double p, double q) { return p - q; }},
                          {kb_multiply, [](double p, double q) { return p * q; }},
                          {kb_divide, [](double p, double q) { return p / q; }}};
        for (const Op &op : ops) {
            auto want = rounded(bcast_ref(av, {2, 3, 4}, bv, {4}, op.ref, &so), dt);
            HostValue hv = eval(op.f(a, b));
            EXPECT_EQ(hv.dtype, dt);
            EXPECT_EQ(hv.shape, so);
            EXPECT_TRUE(allclose(hv.v, want, tol_of(dt))) << kb_dtype_name(dt);
        }
        std::vector<double> ex(24), lg(24), sq(24), sr(24), ng(24);
        for (size_t i = 0; i < 24; ++i) {
            ex[i] = std::exp(av[i]);
            lg[i] = std::log(std::fabs(av[i]));
            sq[i] = av[i] * av[i];
            sr[i] = av[i] < 0 ? 0 : std::sqrt(av[i]);
            ng[i] = -av[i];
        }
        EXPECT_TRUE(allclose(eval_v(kb_exp(a)), ex, tol_of(dt))) << kb_dtype_name(dt);
        EXPECT_TRUE(allclose(eval_v(kb_log(kb_abs(a))), lg, tol_of(dt))) << kb_dtype_name(dt);
        EXPECT_TRUE(allclose(eval_v(kb_square(a)), sq, tol_of(dt))) << kb_dtype_name(dt);
        EXPECT_TRUE(allclose(eval_v(kb_sqrt(a)), sr, tol_of(dt))) << kb_dtype_name(dt);
        EXPECT_TRUE(allclose(eval_v(kb_negative(a)), ng, 0, 0)) << kb_dtype_name(dt);
        HostValue c = eval(kb_cast(a, KB_FLOAT64));
        EXPECT_EQ(c.dtype, KB_FLOAT64);
        EXPECT_TRUE(allclose(c.v, av, 0, 0));
    }
}

// Large enough for the CPU kernels' OpenMP paths (n > 32768) and odd for any vector tail.
TEST_F(Elementwise, LargeInputs) {
    const int64_t n = 100003;
    auto av = rounded(rnd((size_t)n), KB_FLOAT32), bv = rounded(rnd((size_t)n), KB_FLOAT32);
    kb_tensor *a = make_const(ctx, av, {n}), *b = make_const(ctx, bv, {n});
    std::vector<double> mx((size_t)n), gt((size_t)n), fma_ref((size_t)n);
    for (size_t i = 0; i < (size_t)n; ++i) {
        mx[i] = std::max(av[i], bv[i]);
        gt[i] = av[i] > bv[i] ? 1 : 0;
        fma_ref[i] = av[i] * bv[i] + std::exp(av[i]);
    }
    EXPECT_TRUE(allclose(eval_v(kb_maximum(a, b)), mx, 0, 0));
    EXPECT_TRUE(allclose(eval_v(kb_greater(a, b)), gt, 0, 0));
    EXPECT_TRUE(allclose(eval_v(kb_add(kb_multiply(a, b), kb_exp(a))), fma_ref, default_tol(KB_FLOAT32)));
}

// ---- every op case of the family on the CPU, in each dtype it runs in --------------------------

// The parity test compares CPU with CUDA; this one runs the same cases on the CPU alone in
// float32 (and float16 / bfloat16 for `half` cases) against float64 on the same (pre-rounded)
// inputs, so the integer, bool and widened half paths of every case run without a GPU too.
TEST_F(Elementwise, FamilyCasesAgreeAcrossDtypes) {
    const kb_op_id family[] = {KB_OP_ADD, KB_OP_SUBTRACT, KB_OP_MULTIPLY, KB_OP_DIVIDE, KB_OP_NEGATIVE,
                               KB_OP_SQUARE, KB_OP_EXP, KB_OP_LOG, KB_OP_SQRT, KB_OP_SQRT_GRAD, KB_OP_CLIP,
                               KB_OP_CLIP_GRAD, KB_OP_CAST, KB_OP_ABS, KB_OP_ROUND, KB_OP_SIGN, KB_OP_POW,
                               KB_OP_SIN, KB_OP_COS, KB_OP_MAXIMUM, KB_OP_MINIMUM, KB_OP_EQUAL,
                               KB_OP_NOT_EQUAL, KB_OP_GREATER, KB_OP_GREATER_EQUAL, KB_OP_LESS,
                               KB_OP_LESS_EQUAL};
    int ran = 0;
    for (const OpCase &c : op_cases()) {
        if (std::find(std::begin(family), std::end(family), c.op) == std::end(family)) continue;
        std::vector<kb_dtype> dts = {KB_FLOAT32};
        if (c.half) dts.insert(dts.end(), {KB_FLOAT16, KB_BFLOAT16});
        for (kb_dtype dt : dts) {
            auto in = case_inputs(c, gen);
            for (auto &v : in) v = rounded(v, dt);
            std::vector<kb_tensor *> lo, hi;
            for (size_t i = 0; i < c.shapes.size(); ++i) {
                lo.push_back(make_var(ctx, in[i], c.shapes[i], dt));
                hi.push_back(make_var(ctx, in[i], c.shapes[i], KB_FLOAT64));
            }
            kb_tensor *ylo = c.build(ctx, lo), *yhi = c.build(ctx, hi);
            ASSERT_NE(ylo, nullptr) << c.name << " " << kb_dtype_name(dt) << ": " << kb_last_error();
            ASSERT_NE(yhi, nullptr) << c.name << ": " << kb_last_error();
            HostValue a = eval(ylo), b = eval(yhi);
            EXPECT_EQ(a.shape, b.shape) << c.name;
            Tol t = dt == KB_FLOAT32 ? Tol{1e-4, 1e-5} : THALF;
            EXPECT_TRUE(allclose(a.v, b.v, t)) << c.name << " " << kb_dtype_name(dt);
            ++ran;
        }
    }
    EXPECT_GT(ran, 300);
}

// ---- bad input -----------------------------------------------------------------------------------

TEST_F(Elementwise, BadInput) {
    kb_tensor *f = make_const(ctx, {1, 2, 3, 4, 5, 6}, {2, 3});
    kb_tensor *d = make_const(ctx, {1, 2, 3, 4, 5, 6}, {2, 3}, KB_FLOAT64);
    kb_tensor *i = make_const(ctx, {1, 2, 3, 4, 5, 6}, {2, 3}, KB_INT32);
    kb_tensor *bo = make_const(ctx, {1, 0, 1, 0, 1, 0}, {2, 3}, KB_BOOL);
    kb_tensor *f4 = make_const(ctx, {1, 2, 3, 4}, {4});
    // NULL arguments name the function and the argument.
    EXPECT_NULL_WITH(kb_abs(nullptr), KB_ERR_INVALID_ARGUMENT, {"kb_abs", "x"});
    EXPECT_NULL_WITH(kb_round(nullptr), KB_ERR_INVALID_ARGUMENT, {"kb_round", "x"});
    EXPECT_NULL_WITH(kb_sign(nullptr), KB_ERR_INVALID_ARGUMENT, {"kb_sign", "x"});
    EXPECT_NULL_WITH(kb_pow(nullptr, 2.0), KB_ERR_INVALID_ARGUMENT, {"kb_pow", "x"});
    EXPECT_NULL_WITH(kb_sin(nullptr), KB_ERR_INVALID_ARGUMENT, {"kb_sin", "x"});
    EXPECT_NULL_WITH(kb_cos(nullptr), KB_ERR_INVALID_ARGUMENT, {"kb_cos", "x"});
    EXPECT_NULL_WITH(kb_clip(nullptr, 0, 1), KB_ERR_INVALID_ARGUMENT, {"kb_clip", "x"});
    EXPECT_NULL_WITH(kb_clip_tensor(nullptr, f, f), KB_ERR_INVALID_ARGUMENT, {"kb_clip_tensor", "x"});
    EXPECT_NULL_WITH(kb_maximum(f, nullptr), KB_ERR_INVALID_ARGUMENT, {"kb_maximum", "y"});
    EXPECT_NULL_WITH(kb_minimum(nullptr, f), KB_ERR_INVALID_ARGUMENT, {"kb_minimum", "x"});
    EXPECT_NULL_WITH(kb_equal(nullptr, f), KB_ERR_INVALID_ARGUMENT, {"kb_equal", "x"});
    EXPECT_NULL_WITH(kb_less_equal(f, nullptr), KB_ERR_INVALID_ARGUMENT, {"kb_less_equal", "y"});
    // Integer division: an explicit cast is asked for.
    EXPECT_NULL_WITH(kb_divide(i, i), KB_ERR_DTYPE, {"kb_divide", "int32", "cast"});
    // Float-only functions on integers and bool.
    EXPECT_NULL_WITH(kb_exp(i), KB_ERR_DTYPE, {"kb_exp", "int32"});
    EXPECT_NULL_WITH(kb_sin(i), KB_ERR_DTYPE, {"kb_sin", "int32"});
    EXPECT_NULL_WITH(kb_round(i), KB_ERR_DTYPE, {"kb_round", "int32"});
    EXPECT_NULL_WITH(kb_pow(i, 2.0), KB_ERR_DTYPE, {"kb_pow", "int32"});
    EXPECT_NULL_WITH(kb_clip(i, 0, 1), KB_ERR_DTYPE, {"kb_clip", "int32"});
    EXPECT_NULL_WITH(kb_sqrt(bo), KB_ERR_DTYPE, {"kb_sqrt", "bool"});
    // Arithmetic and ordering do not take bool; equality does.
    EXPECT_NULL_WITH(kb_add(bo, bo), KB_ERR_DTYPE, {"kb_add", "bool"});
    EXPECT_NULL_WITH(kb_negative(bo), KB_ERR_DTYPE, {"kb_negative", "bool"});
    EXPECT_NULL_WITH(kb_abs(bo), KB_ERR_DTYPE, {"kb_abs", "bool"});
    EXPECT_NULL_WITH(kb_maximum(bo, bo), KB_ERR_DTYPE, {"kb_maximum", "bool"});
    EXPECT_NULL_WITH(kb_greater(bo, bo), KB_ERR_DTYPE, {"kb_greater", "bool"});
    EXPECT_NULL_WITH(kb_less(bo, bo), KB_ERR_DTYPE, {"kb_less", "bool"});
    // Mixed dtypes.
    EXPECT_NULL_WITH(kb_maximum(f, d), KB_ERR_DTYPE, {"kb_maximum", "float32", "float64"});
    EXPECT_NULL_WITH(kb_equal(f, i), KB_ERR_DTYPE, {"kb_equal", "float32", "int32"});
    EXPECT_NULL_WITH(kb_greater_equal(i, d), KB_ERR_DTYPE, {"kb_greater_equal", "int32", "float64"});
    EXPECT_NULL_WITH(kb_add(i, f), KB_ERR_DTYPE, {"kb_add", "int32", "float32"});
    EXPECT_NULL_WITH(kb_clip_tensor(f, d, nullptr), KB_ERR_DTYPE, {"kb_clip_tensor", "min_value", "float64"});
    // Shapes that do not broadcast.
    EXPECT_NULL_WITH(kb_minimum(f, f4), KB_ERR_SHAPE, {"kb_minimum", "(2, 3)", "(4,)"});
    EXPECT_NULL_WITH(kb_not_equal(f, f4), KB_ERR_SHAPE, {"kb_not_equal"});
    EXPECT_NULL_WITH(kb_clip_tensor(f, nullptr, f4), KB_ERR_SHAPE, {"kb_clip_tensor", "max_value"});
    // A bound that would grow x's shape.
    kb_tensor *big = make_const(ctx, std::vector<double>(12, 0.0), {2, 2, 3});
    EXPECT_NULL_WITH(kb_clip_tensor(f, big, nullptr), KB_ERR_SHAPE, {"kb_clip_tensor", "min_value", "(2, 3)"});
    // NaN bounds.
    EXPECT_NULL_WITH(kb_clip(f, kNaN, 1.0), KB_ERR_INVALID_ARGUMENT, {"kb_clip", "min_value", "NaN"});
    EXPECT_NULL_WITH(kb_clip(f, 0.0, kNaN), KB_ERR_INVALID_ARGUMENT, {"kb_clip", "max_value", "NaN"});
    // The session stays usable.
    kb_clear_error();
    EXPECT_TRUE(allclose(eval_v(kb_maximum(f, kb_negative(f))), {1, 2, 3, 4, 5, 6}, 0, 0));
}

// ---- switch / in_train_phase / in_test_phase (spec 2.11, 2.1) ------------------------------------

// Keras switch by index arithmetic: element idx of the expressions takes then where the condition
// at idx's leading cond-rank coordinates (size-1 cond dims read index 0) is non-zero.
std::vector<double> switch_ref(const std::vector<double> &c, const Shape &sc, const std::vector<double> &a,
                               const std::vector<double> &b, const Shape &se) {
    std::vector<double> o(a.size());
    for (int64_t i = 0; i < numel(se); ++i) {
        std::vector<int64_t> idx(se.size());
        int64_t rem = i;
        for (size_t k = se.size(); k-- > 0;) {
            idx[k] = rem % se[k];
            rem /= se[k];
        }
        int64_t ic = 0;
        for (size_t k = 0; k < sc.size(); ++k) ic = ic * sc[k] + (sc[k] == 1 ? 0 : idx[k]);
        o[(size_t)i] = (c[(size_t)ic] != 0 || std::isnan(c[(size_t)ic])) ? a[(size_t)i] : b[(size_t)i];
    }
    return o;
}

TEST_F(Elementwise, SwitchAgainstLoops) {
    const std::pair<Shape, Shape> shapes[] = {{{}, {3, 4}},        {{4, 3, 2}, {4, 3, 2}}, {{4}, {4, 3, 2}},
                                              {{4, 3}, {4, 3, 2}}, {{4, 1}, {4, 3, 2}},    {{1, 3}, {4, 3}},
                                              {{5}, {5}}};
    for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64, KB_FLOAT16, KB_INT32, KB_INT64, KB_UINT8}) {
        for (const auto &sh : shapes) {
            int64_t ne = numel(sh.second);
            auto a = rounded(rnd_int(ne, 0, 100), dt), b = rounded(rnd_int(ne, 0, 100), dt);
            // the condition: int32 values with zeros (false) and non-zeros (true, any sign)
            auto c = rnd_int(numel(sh.first), -2, 2);
            for (int pass = 0; pass < 2; ++pass) {  // both branches at least once for a scalar
                if (sh.first.empty()) c[0] = pass;
                kb_tensor *ct = make_const(ctx, c, sh.first, KB_INT32);
                kb_tensor *y = kb_switch(ct, make_const(ctx, a, sh.second, dt), make_const(ctx, b, sh.second, dt));
                ASSERT_NE(y, nullptr) << kb_last_error();
                EXPECT_EQ(kb_dtype_of(y), dt);
                EXPECT_EQ(static_shape(y), sh.second);
                EXPECT_TRUE(allclose(eval_v(y), switch_ref(c, sh.first, a, b, sh.second), 0, 0))
                    << shape_str(sh.first) << " " << shape_str(sh.second) << " " << kb_dtype_name(dt);
            }
        }
    }
    // a float condition is cast to bool: 0 and -0 are false, NaN and any other value true
    std::vector<double> c = {0.0, -0.0, kNaN, 2.5, -1e-30, kInf};
    auto a = rnd(6), b = rnd(6);
    kb_tensor *y = kb_switch(make_const(ctx, c, {6}, KB_FLOAT64), make_const(ctx, a, {6}), make_const(ctx, b, {6}));
    EXPECT_TRUE(allclose(eval_v(y), rounded({b[0], b[1], a[2], a[3], a[4], a[5]}, KB_FLOAT32), 0, 0));
    // bool operands, bool condition
    kb_tensor *yb = kb_switch(make_const(ctx, {1, 0, 1}, {3}, KB_BOOL), make_const(ctx, {1, 1, 0}, {3}, KB_BOOL),
                              make_const(ctx, {0, 0, 1}, {3}, KB_BOOL));
    EXPECT_EQ(kb_dtype_of(yb), KB_BOOL);
    EXPECT_TRUE(allclose(eval_v(yb), {1, 0, 0}, 0, 0));
}

// dy reaches the selected branch only: then gets cond, else gets !cond, the condition nothing.
TEST_F(Elementwise, SwitchGradients) {
    auto cv = rnd(12), av = rnd(24), bv = rnd(24);
    kb_tensor *c = make_var(ctx, cv, {4, 3}, KB_FLOAT64);
    kb_tensor *a = make_var(ctx, av, {4, 3, 2}, KB_FLOAT64), *b = make_var(ctx, bv, {4, 3, 2}, KB_FLOAT64);
    auto w = rnd(24);
    kb_tensor *loss = kb_sum(kb_multiply(kb_switch(kb_greater(c, scalar_like(ctx, 0.0, c)), a, b),
                                         make_const(ctx, w, {4, 3, 2}, KB_FLOAT64)),
                             nullptr, 0, 0);
    kb_tensor *vars[3] = {a, b, c}, *g[3] = {nullptr, nullptr, nullptr};
    ASSERT_TRUE(ok(kb_gradients(loss, vars, 3, g)));
    ASSERT_NE(g[0], nullptr);
    ASSERT_NE(g[1], nullptr);
    EXPECT_EQ(g[2], nullptr) << "no gradient to the condition";
    std::vector<double> ga(24), gb(24);
    for (int i = 0; i < 24; ++i) {
        bool t = cv[(size_t)i / 2] > 0;
        ga[(size_t)i] = t ? w[(size_t)i] : 0.0;
        gb[(size_t)i] = t ? 0.0 : w[(size_t)i];
    }
    EXPECT_TRUE(allclose(eval_v(g[0]), ga, 0, 0));
    EXPECT_TRUE(allclose(eval_v(g[1]), gb, 0, 0));
}

TEST_F(Elementwise, InTrainPhaseFollowsTheLearningPhase) {
    auto xv = rnd(6), av = rnd(6);
    kb_tensor *x = make_var(ctx, xv, {2, 3}), *alt = make_var(ctx, av, {2, 3});
    kb_tensor *tr = kb_in_train_phase(x, alt, nullptr), *te = kb_in_test_phase(x, alt, nullptr);
    ASSERT_NE(tr, nullptr) << kb_last_error();
    ASSERT_NE(te, nullptr) << kb_last_error();
    auto x32 = rounded(xv, KB_FLOAT32), a32 = rounded(av, KB_FLOAT32);
    // not set: test mode
    EXPECT_TRUE(allclose(eval_v(tr), a32, 0, 0));
    EXPECT_TRUE(allclose(eval_v(te), x32, 0, 0));
    // fixed by kb_set_learning_phase (read when the graph runs)
    ASSERT_TRUE(ok(kb_set_learning_phase(ctx, 1)));
    EXPECT_TRUE(allclose(eval_v(tr), x32, 0, 0));
    EXPECT_TRUE(allclose(eval_v(te), a32, 0, 0));
    ASSERT_TRUE(ok(kb_set_learning_phase(ctx, 0)));
    EXPECT_TRUE(allclose(eval_v(tr), a32, 0, 0));
    // fed to a function
    kb_tensor *lp = kb_learning_phase(ctx);
    for (int32_t phase : {1, 0, 1}) {
        std::vector<unsigned char> bytes(sizeof phase);
        std::memcpy(bytes.data(), &phase, sizeof phase);
        RunResult r = run_function(ctx, {tr, te}, KB_DEVICE_CPU, {lp}, {feed_of(bytes, KB_INT32, {})});
        ASSERT_TRUE(ok(r.status)) << r.error;
        EXPECT_TRUE(allclose(r.outs[0].v, phase ? x32 : a32, 0, 0)) << phase;
        EXPECT_TRUE(allclose(r.outs[1].v, phase ? a32 : x32, 0, 0)) << phase;
    }
    // an explicit training tensor (bool, int or float scalar)
    EXPECT_TRUE(allclose(eval_v(kb_in_train_phase(x, alt, make_const(ctx, {1}, {}, KB_BOOL))), x32, 0, 0));
    EXPECT_TRUE(allclose(eval_v(kb_in_train_phase(x, alt, make_const(ctx, {0}, {}, KB_INT64))), a32, 0, 0));
    EXPECT_TRUE(allclose(eval_v(kb_in_test_phase(x, alt, make_const(ctx, {0.5}, {}))), a32, 0, 0));
    // Python-int training: the tensor itself, no op
    EXPECT_EQ(kb_in_train_phase_fixed(x, alt, 1), x);
    EXPECT_EQ(kb_in_train_phase_fixed(x, alt, 0), alt);
    EXPECT_EQ(kb_in_test_phase_fixed(x, alt, 1), alt);
    EXPECT_EQ(kb_in_test_phase_fixed(x, alt, 0), x);
    // the same tensor for both: returned as is
    EXPECT_EQ(kb_in_train_phase(x, x, nullptr), x);
    EXPECT_EQ(kb_in_test_phase(x, x, nullptr), x);
}

// In train mode dy reaches x only (alt gets zeros), in test mode alt only.
TEST_F(Elementwise, InTrainPhaseGradients) {
    auto xv = rnd(4), av = rnd(4);
    kb_tensor *x = make_var(ctx, xv, {4}, KB_FLOAT64), *alt = make_var(ctx, av, {4}, KB_FLOAT64);
    kb_tensor *loss = kb_sum(kb_square(kb_in_train_phase(x, alt, nullptr)), nullptr, 0, 0);
    kb_tensor *vars[2] = {x, alt}, *g[2] = {nullptr, nullptr};
    ASSERT_TRUE(ok(kb_gradients(loss, vars, 2, g)));
    ASSERT_NE(g[0], nullptr);
    ASSERT_NE(g[1], nullptr);
    std::vector<double> two_x, two_a, zero(4, 0.0);
    for (int i = 0; i < 4; ++i) two_x.push_back(2 * xv[(size_t)i]), two_a.push_back(2 * av[(size_t)i]);
    for (int phase : {1, 0}) {
        ASSERT_TRUE(ok(kb_set_learning_phase(ctx, phase)));
        EXPECT_TRUE(allclose(eval_v(g[0]), phase ? two_x : zero, 0, 0)) << phase;
        EXPECT_TRUE(allclose(eval_v(g[1]), phase ? zero : two_a, 0, 0)) << phase;
    }
    // fixed at build time: alt is not connected at all (Keras returns None)
    kb_tensor *l2 = kb_sum(kb_square(kb_in_train_phase_fixed(x, alt, 1)), nullptr, 0, 0);
    ASSERT_TRUE(ok(kb_gradients(l2, vars, 2, g)));
    EXPECT_EQ(g[1], nullptr);
}

TEST_F(Elementwise, SwitchBadInput) {
    kb_tensor *f23 = make_const(ctx, {1, 2, 3, 4, 5, 6}, {2, 3});
    kb_tensor *f32 = make_const(ctx, {1, 2, 3, 4, 5, 6}, {3, 2});
    kb_tensor *d23 = make_const(ctx, {1, 2, 3, 4, 5, 6}, {2, 3}, KB_FLOAT64);
    kb_tensor *c1 = make_const(ctx, {1}, {}, KB_BOOL), *c2 = make_const(ctx, {1, 0}, {2}, KB_BOOL);
    kb_tensor *c3 = make_const(ctx, {1, 0, 1}, {3}, KB_BOOL);
    kb_tensor *c234 = make_const(ctx, std::vector<double>(24, 1.0), {2, 3, 4}, KB_BOOL);
    EXPECT_NULL_WITH(kb_switch(nullptr, f23, f23), KB_ERR_INVALID_ARGUMENT, {"kb_switch", "condition"});
    EXPECT_NULL_WITH(kb_switch(c1, nullptr, f23), KB_ERR_INVALID_ARGUMENT, {"kb_switch", "then_expression"});
    EXPECT_NULL_WITH(kb_switch(c1, f23, nullptr), KB_ERR_INVALID_ARGUMENT, {"kb_switch", "else_expression"});
    EXPECT_NULL_WITH(kb_switch(c1, f23, d23), KB_ERR_DTYPE, {"kb_switch", "float32", "float64"});
    EXPECT_NULL_WITH(kb_switch(c1, f23, f32), KB_ERR_NOT_SUPPORTED, {"kb_switch", "(2, 3)", "(3, 2)", "scalar"});
    EXPECT_NULL_WITH(kb_switch(c2, f23, f32), KB_ERR_SHAPE, {"kb_switch", "same shape"});
    EXPECT_NULL_WITH(kb_switch(c234, f23, f23), KB_ERR_SHAPE,
                     {"kb_switch",
                      "Rank of `condition` should be less than or equal to rank of `then_expression` and "
                      "`else_expression`. ndim(condition)=3, ndim(then_expression)=2"});
    EXPECT_NULL_WITH(kb_switch(c3, f23, f23), KB_ERR_SHAPE, {"kb_switch", "leading axes", "axis 0"});
    // in_train_phase / in_test_phase
    EXPECT_NULL_WITH(kb_in_train_phase(nullptr, f23, nullptr), KB_ERR_INVALID_ARGUMENT, {"kb_in_train_phase", "x"});
    EXPECT_NULL_WITH(kb_in_train_phase(f23, nullptr, nullptr), KB_ERR_INVALID_ARGUMENT,
                     {"kb_in_train_phase", "alt"});
    EXPECT_NULL_WITH(kb_in_test_phase(f23, d23, nullptr), KB_ERR_DTYPE, {"kb_in_test_phase", "float64"});
    EXPECT_NULL_WITH(kb_in_train_phase(f23, f32, c1), KB_ERR_NOT_SUPPORTED, {"kb_in_train_phase", "x", "alt"});
    EXPECT_NULL_WITH(kb_in_train_phase(f23, kb_negative(f23), c234), KB_ERR_SHAPE, {"kb_in_train_phase", "Rank of `condition`"});
    EXPECT_NULL_WITH(kb_in_train_phase_fixed(f23, d23, 2), KB_ERR_INVALID_ARGUMENT,
                     {"kb_in_train_phase_fixed", "0 or 1", "2"});
    EXPECT_NULL_WITH(kb_in_test_phase_fixed(nullptr, d23, 1), KB_ERR_INVALID_ARGUMENT, {"kb_in_test_phase_fixed", "x"});
    // a training tensor of another context
    kb_context *other = nullptr;
    ASSERT_TRUE(ok(kb_context_new(&other, nullptr)));
    kb_tensor *oc = make_const(other, {1}, {}, KB_BOOL);
    EXPECT_NULL_WITH(kb_in_train_phase(f23, make_const(ctx, {0, 0, 0, 0, 0, 0}, {2, 3}), oc), KB_ERR_INVALID_ARGUMENT,
                     {"kb_in_train_phase", "contexts"});
    kb_context_free(other);
    // the session stays usable
    kb_clear_error();
    EXPECT_TRUE(allclose(eval_v(kb_switch(c3, make_const(ctx, {1, 2, 3}, {3}), make_const(ctx, {4, 5, 6}, {3}))),
                         {1, 5, 3}, 0, 0));
}

}  // namespace
