// Reference values and bad input of the nn family: activations, l2_normalize, in_top_k, the three
// crossentropies and bias_add against independent loops written here (spec 2.7, 2.8, 2.5), in
// float32 and float64 (float16 / bfloat16 through the CPU widening), and every nn op case on the
// CPU in float32 / float16 / bfloat16 against float64.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "kb_test_util.h"
#include "op_cases.h"

namespace {

using namespace kbt;

class Nn : public KbTest {};

const kb_dtype kFloatTypes[] = {KB_FLOAT32, KB_FLOAT64};
const double kInf = std::numeric_limits<double>::infinity();
const double kNan = std::numeric_limits<double>::quiet_NaN();

std::vector<double> map(const std::vector<double> &v, const std::function<double(double)> &f) {
    std::vector<double> o;
    for (double x : v) o.push_back(f(x));
    return o;
}

// ---- activations -------------------------------------------------------------------------------

// Edge values (infinities, NaN, zero, large magnitudes) plus random ones.
std::vector<double> act_inputs(std::mt19937_64 &gen) {
    std::vector<double> v = {-kInf, kInf, kNan, 0.0, -0.0, 1e-8, -1e-8, 100.0, -100.0, 30.0, -30.0,
                             -2.5, 2.5, -2.6, 2.6, 1.0, -1.0};
    auto r = random_values(gen, 23, -6.0, 6.0);
    v.insert(v.end(), r.begin(), r.end());
    return v;
}

TEST_F(Nn, ActivationsAgainstReferenceLoops) {
    struct A {
        const char *name;
        std::function<kb_tensor *(kb_tensor *)> op;
        std::function<double(double)> ref;
    };
    const A acts[] = {
        {"elu", [](kb_tensor *x) { return kb_elu(x, 1.0); }, [](double v) { return v > 0 ? v : std::exp(v) - 1; }},
        {"elu_a05", [](kb_tensor *x) { return kb_elu(x, 0.5); },
         [](double v) { return v > 0 ? v : 0.5 * (std::exp(v) - 1); }},
        {"elu_a2", [](kb_tensor *x) { return kb_elu(x, 2.0); },
         [](double v) { return v > 0 ? v : 2.0 * (std::exp(v) - 1); }},
        // log(1 + e^v) by cases, so the reference never overflows.
        {"softplus", kb_softplus,
         [](double v) { return v > 30 ? v + std::exp(-v) : (v < -30 ? std::exp(v) : std::log(1 + std::exp(v))); }},
        // tf.nn.softsign(+-inf) = inf/inf = NaN.
        {"softsign", kb_softsign, [](double v) { return v / (1 + std::fabs(v)); }},
        {"hard_sigmoid", kb_hard_sigmoid,
         [](double v) { return std::isnan(v) ? v : (v < -2.5 ? 0.0 : (v > 2.5 ? 1.0 : 0.2 * v + 0.5)); }},
        {"tanh", kb_tanh, [](double v) { return std::tanh(v); }},
    };
    for (kb_dtype dt : kFloatTypes) {
        auto in = rounded(act_inputs(gen), dt);
        for (const A &a : acts) {
            kb_tensor *x = make_const(ctx, in, {(int64_t)in.size()}, dt);
            auto want = rounded(map(in, a.ref), dt);
            EXPECT_TRUE(allclose(eval_v(a.op(x)), want, default_tol(dt))) << a.name << " " << kb_dtype_name(dt);
        }
    }
}

// Keras quirks: softplus is stable (no inf for large x, no 0 where exp underflows in float64),
// elu(-inf) = -alpha, hard_sigmoid saturates exactly.
TEST_F(Nn, ActivationHandNumbers) {
    kb_tensor *x = make_const(ctx, {-1000, -50, 0, 50, 1000}, {5}, KB_FLOAT64);
    auto sp = eval_v(kb_softplus(x));
    EXPECT_EQ(sp[0], 0.0);
    EXPECT_NEAR(sp[1], std::exp(-50.0), 1e-30);
    EXPECT_NEAR(sp[2], std::log(2.0), 1e-15);
    EXPECT_EQ(sp[3], 50.0);
    EXPECT_EQ(sp[4], 1000.0);
    kb_tensor *e = make_const(ctx, {-kInf, -1, 0, 3}, {4});
    EXPECT_TRUE(allclose(eval_v(kb_elu(e, 0.5)), {-0.5, 0.5 * (std::exp(-1.0) - 1), 0, 3}, default_tol(KB_FLOAT32)));
    kb_tensor *h = make_const(ctx, {-3, -2.5, 0, 1, 2.5, 3}, {6});
    EXPECT_TRUE(allclose(eval_v(kb_hard_sigmoid(h)), {0, 0, 0.5, 0.7, 1, 1}, default_tol(KB_FLOAT32)));
}

// float16 / bfloat16 go through the CPU widening: one rounding of the float32 result.
TEST_F(Nn, ActivationsInHalfTypes) {
    for (kb_dtype dt : {KB_FLOAT16, KB_BFLOAT16}) {
        auto in = rounded(random_values(gen, 40, -4.0, 4.0), dt);
        kb_tensor *x = make_const(ctx, in, {5, 8}, dt);
        Tol t = dt == KB_FLOAT16 ? Tol{1e-3, 1e-4} : Tol{8e-3, 1e-4};
        EXPECT_TRUE(allclose(eval_v(kb_tanh(x)), rounded(map(in, [](double v) { return std::tanh(v); }), dt), t));
        EXPECT_TRUE(allclose(eval_v(kb_elu(x, 1.0)), map(in, [](double v) { return v > 0 ? v : std::expm1(v); }), t));
        EXPECT_TRUE(allclose(eval_v(kb_relu(x, 0.1, 2.0, 0.5)),
                             map(in, [](double v) { return v >= 2 ? 2 : (v > 0.5 ? v : 0.1 * (v - 0.5)); }), t));
        EXPECT_EQ(kb_dtype_of(kb_softmax(x, -1)), dt);
        auto sm = eval_v(kb_softmax(x, -1));
        for (int r = 0; r < 5; ++r) {
            double m = -kInf, s = 0;
            for (int c = 0; c < 8; ++c) m = std::max(m, in[r * 8 + c]);
            for (int c = 0; c < 8; ++c) s += std::exp(in[r * 8 + c] - m);
            for (int c = 0; c < 8; ++c) EXPECT_NEAR(sm[r * 8 + c], std::exp(in[r * 8 + c] - m) / s, 1e-2);
        }
    }
}

// Gradients at the points the finite-difference cases keep away from: elu at 0 takes the alpha
// branch (tf.where(x > 0, ...)), hard_sigmoid passes 0.2*dy on the closed interval [-2.5, 2.5].
TEST_F(Nn, ActivationGradientsAtKinks) {
    kb_tensor *x = make_var(ctx, {0.0, -1.0, 2.0}, {3}, KB_FLOAT64);
    kb_tensor *g = nullptr;
    ASSERT_TRUE(ok(kb_gradients(kb_sum(kb_elu(x, 0.5), nullptr, 0, 0), &x, 1, &g)));
    EXPECT_TRUE(allclose(eval_v(g), {0.5, 0.5 * std::exp(-1.0), 1.0}, default_tol(KB_FLOAT64)));
    kb_tensor *h = make_var(ctx, {-3.0, -2.5, 0.0, 2.5, 3.0}, {5}, KB_FLOAT64);
    ASSERT_TRUE(ok(kb_gradients(kb_sum(kb_hard_sigmoid(h), nullptr, 0, 0), &h, 1, &g)));
    EXPECT_TRUE(allclose(eval_v(g), {0, 0.2, 0.2, 0.2, 0}, default_tol(KB_FLOAT64)));
}

// ---- l2_normalize ------------------------------------------------------------------------------

TEST_F(Nn, L2NormalizeAgainstLoop) {
    const Shape s = {3, 4, 2};
    for (kb_dtype dt : kFloatTypes) {
        auto in = rounded(random_values(gen, 24, -2.0, 2.0), dt);
        // A tiny fibre: its sum of squares is below 1e-12, so it is divided by 1e-6.
        for (int j = 0; j < 4; ++j) in[(size_t)(1 * 8 + j * 2 + 1)] = rounded({1e-7 * (j + 1)}, dt)[0];
        kb_tensor *x = make_const(ctx, in, s, dt);
        // axis = 1 (also as -2): fibres over j.
        std::vector<double> want(24);
        for (int i = 0; i < 3; ++i)
            for (int k = 0; k < 2; ++k) {
                double ss = 0;
                for (int j = 0; j < 4; ++j) ss += in[i * 8 + j * 2 + k] * in[i * 8 + j * 2 + k];
                for (int j = 0; j < 4; ++j)
                    want[i * 8 + j * 2 + k] = in[i * 8 + j * 2 + k] / std::sqrt(std::max(ss, 1e-12));
            }
        for (int ax : {1, -2}) EXPECT_TRUE(allclose(eval_v(kb_l2_normalize(x, &ax, 1)), want, default_tol(dt)));
        // axis = None: all elements.
        double ss = 0;
        for (double v : in) ss += v * v;
        auto all = map(in, [ss](double v) { return v / std::sqrt(ss); });
        EXPECT_TRUE(allclose(eval_v(kb_l2_normalize(x, nullptr, 0)), all, default_tol(dt)));
    }
    // All zeros: 0 / sqrt(1e-12) = 0, not NaN.
    kb_tensor *z = make_const(ctx, {0, 0, 0}, {3});
    EXPECT_TRUE(allclose(eval_v(kb_l2_normalize(z, nullptr, 0)), {0, 0, 0}, 0, 0));
}

// ---- in_top_k ----------------------------------------------------------------------------------

std::vector<double> in_top_k_ref(const std::vector<double> &p, const std::vector<double> &t, int64_t C, int64_t k) {
    std::vector<double> o;
    for (size_t r = 0; r < t.size(); ++r) {
        int64_t tg = (int64_t)t[r];
        if (tg < 0 || tg >= C) {
            o.push_back(0);
            continue;
        }
        bool bad = false;
        int64_t greater = 0;
        for (int64_t c = 0; c < C; ++c) {
            double v = p[r * C + c];
            if (!std::isfinite(v)) bad = true;
            else if (v > p[r * C + tg]) ++greater;
        }
        o.push_back(!bad && greater < k ? 1 : 0);
    }
    return o;
}

// test_in_top_k of Keras: k = 1..C over random rows, and rows where half the classes equal class 0
// (the target): ties count as in the top k.
TEST_F(Nn, InTopKAgainstLoopWithTies) {
    const int64_t B = 20, C = 10;
    for (kb_dtype dt : kFloatTypes)
        for (kb_dtype tdt : {KB_INT32, KB_INT64}) {
            auto p = rounded(random_values(gen, B * C, -1.0, 1.0), dt);
            std::vector<double> t(B);
            std::uniform_int_distribution<int> cls(0, C - 1);
            for (int64_t r = 0; r < B; ++r) t[r] = cls(gen);
            // Rows 10..19: half the classes equal class 0, the target.
            for (int64_t r = 10; r < B; ++r) {
                t[r] = 0;
                for (int64_t c = 1; c < C; c += 2) p[r * C + c] = p[r * C];
            }
            kb_tensor *pt = make_const(ctx, p, {B, C}, dt), *tt = make_const(ctx, t, {B}, tdt);
            for (int64_t k = 0; k <= C + 1; ++k) {
                kb_tensor *y = kb_in_top_k(pt, tt, k);
                ASSERT_NE(y, nullptr) << kb_last_error();
                EXPECT_EQ(kb_dtype_of(y), KB_BOOL);
                EXPECT_EQ(eval_v(y), in_top_k_ref(p, t, C, k)) << "k=" << k;
            }
        }
}

TEST_F(Nn, InTopKNonFiniteAndOutOfRange) {
    // Row 0: NaN elsewhere; row 1: +inf elsewhere; row 2: target -1; row 3: target 3; row 4: all tied.
    std::vector<double> p = {0.9, kNan, 0.1, 0.1, 0.2, kInf, 0.5, 0.2, 0.1, 0.5, 0.2, 0.1, 0.3, 0.3, 0.3};
    std::vector<double> t = {0, 0, -1, 3, 2};
    kb_tensor *pt = make_const(ctx, p, {5, 3}), *tt = make_const(ctx, t, {5}, KB_INT64);
    EXPECT_EQ(eval_v(kb_in_top_k(pt, tt, 1)), (std::vector<double>{0, 0, 0, 0, 1}));
    EXPECT_EQ(eval_v(kb_in_top_k(pt, tt, 3)), (std::vector<double>{0, 0, 0, 0, 1}));
    // in_top_k has no derivative: the gradient of a loss through it is NULL (no path).
    kb_tensor *pv = make_var(ctx, p, {5, 3});
    kb_tensor *g = reinterpret_cast<kb_tensor *>(1);
    kb_tensor *l = kb_sum(kb_cast(kb_in_top_k(pv, tt, 1), KB_FLOAT32), nullptr, 0, 0);
    ASSERT_TRUE(ok(kb_gradients(kb_add(l, kb_sum(kb_multiply(pv, pv), nullptr, 0, 0)), &pv, 1, &g)));
    EXPECT_TRUE(allclose(eval_v(g), map(p, [](double v) { return 2 * v; }), default_tol(KB_FLOAT32)));
}

// ---- losses ------------------------------------------------------------------------------------

const double kEps = 1e-7;  // K.epsilon()

// (outer, C, inner) view of a class axis.
struct AxisView {
    int64_t outer = 1, C = 1, inner = 1;
    AxisView(const Shape &s, int axis) {
        int ax = axis < 0 ? axis + (int)s.size() : axis;
        for (int d = 0; d < (int)s.size(); ++d) (d < ax ? outer : d == ax ? C : inner) *= s[d];
    }
    int64_t at(int64_t o, int64_t c, int64_t i) const { return (o * C + c) * inner + i; }
};

// -log_softmax(logits)[target] per (outer, inner) position.
std::vector<double> scce_ref(const std::vector<double> &logits, const std::vector<double> &t, const AxisView &v) {
    std::vector<double> o;
    for (int64_t a = 0; a < v.outer; ++a)
        for (int64_t i = 0; i < v.inner; ++i) {
            double m = -kInf, s = 0;
            for (int64_t c = 0; c < v.C; ++c) m = std::max(m, logits[v.at(a, c, i)]);
            for (int64_t c = 0; c < v.C; ++c) s += std::exp(logits[v.at(a, c, i)] - m);
            int64_t tg = (int64_t)t[a * v.inner + i];
            o.push_back(-(logits[v.at(a, tg, i)] - m - std::log(s)));
        }
    return o;
}

TEST_F(Nn, SparseCategoricalCrossentropyAgainstLoop) {
    const Shape s = {2, 4, 3};
    for (kb_dtype dt : kFloatTypes)
        for (int axis : {-1, 1, 0}) {
            AxisView v(s, axis);
            Shape ts;
            for (int d = 0; d < 3; ++d)
                if (d != (axis < 0 ? 2 : axis)) ts.push_back(s[d]);
            std::vector<double> t;
            std::uniform_int_distribution<int> cls(0, (int)v.C - 1);
            for (int64_t i = 0; i < v.outer * v.inner; ++i) t.push_back(cls(gen));
            auto logits = rounded(random_values(gen, 24, -4.0, 4.0), dt);
            auto probs = rounded(random_values(gen, 24, 0.0, 1.0), dt);
            probs[0] = 0.0;  // clipped to epsilon before the log
            kb_tensor *tt = make_const(ctx, t, ts, KB_INT32);
            Tol tol = dt == KB_FLOAT32 ? Tol{1e-5, 1e-5} : default_tol(dt);
            // from_logits
            kb_tensor *y = kb_sparse_categorical_crossentropy(tt, make_const(ctx, logits, s, dt), 1, axis);
            ASSERT_NE(y, nullptr) << kb_last_error();
            EXPECT_EQ(static_shape(y), ts);
            EXPECT_TRUE(allclose(eval_v(y), scce_ref(logits, t, v), tol)) << "axis " << axis;
            // probabilities: log(clip(p, eps, 1 - eps)) then log_softmax (implicit renormalisation)
            auto lp = map(probs, [](double p) { return std::log(std::min(std::max(p, kEps), 1 - kEps)); });
            y = kb_sparse_categorical_crossentropy(tt, make_const(ctx, probs, s, dt), 0, axis);
            EXPECT_TRUE(allclose(eval_v(y), scce_ref(lp, t, v), tol)) << "axis " << axis;
        }
}

TEST_F(Nn, SparseCategoricalCrossentropyTargetsAndSoftmaxShortcut) {
    // Extreme logits: through the softmax shortcut the loss stays finite and equals the logits path.
    std::vector<double> logits = {1000, 0, -1000, 5, 5, 5};
    kb_tensor *lg = make_const(ctx, logits, {2, 3});
    // Float targets of shape (2, 1): squeezed and truncated to int64 as Keras' cast.
    kb_tensor *tf = make_const(ctx, {2.0, 1.0}, {2, 1});
    kb_tensor *ti = make_const(ctx, {2, 1}, {2}, KB_INT64);
    auto want = std::vector<double>{2000, std::log(3.0)};
    EXPECT_TRUE(allclose(eval_v(kb_sparse_categorical_crossentropy(tf, kb_softmax(lg, -1), 0, -1)), want,
                         default_tol(KB_FLOAT32)));
    EXPECT_TRUE(allclose(eval_v(kb_sparse_categorical_crossentropy(ti, lg, 1, -1)), want, default_tol(KB_FLOAT32)));
    // Without the shortcut the clipped probabilities give -log(eps)-ish losses, never inf.
    kb_tensor *p = make_const(ctx, {0, 0, 1, 0.2, 0.3, 0.5}, {2, 3});
    auto v = eval_v(kb_sparse_categorical_crossentropy(ti, p, 0, -1));
    double l0 = std::log(1 - kEps), le = std::log(kEps);
    EXPECT_NEAR(v[0], -(l0 - std::log(std::exp(le) * 2 + std::exp(l0))), 1e-5);
    EXPECT_NEAR(v[1], -(std::log(0.3) - std::log(1.0)), 1e-6);
    // Gradient from logits: softmax - one_hot.
    kb_tensor *x = make_var(ctx, {0.1, 0.2, 0.7, 1.0, -1.0, 0.0}, {2, 3}, KB_FLOAT64);
    kb_tensor *g = nullptr;
    ASSERT_TRUE(ok(kb_gradients(kb_sum(kb_sparse_categorical_crossentropy(ti, x, 1, -1), nullptr, 0, 0), &x, 1, &g)));
    std::vector<double> xs = {0.1, 0.2, 0.7, 1.0, -1.0, 0.0}, want_g;
    for (int r = 0; r < 2; ++r) {
        double s = 0;
        for (int c = 0; c < 3; ++c) s += std::exp(xs[r * 3 + c]);
        for (int c = 0; c < 3; ++c) want_g.push_back(std::exp(xs[r * 3 + c]) / s - (c == (r == 0 ? 2 : 1)));
    }
    EXPECT_TRUE(allclose(eval_v(g), want_g, default_tol(KB_FLOAT64)));
}

TEST_F(Nn, BinaryCrossentropyAgainstLoop) {
    for (kb_dtype dt : kFloatTypes) {
        auto t = rounded(random_values(gen, 12, 0.0, 1.0), dt);
        auto o = rounded(random_values(gen, 12, 0.0, 1.0), dt);
        o[0] = 0.0;  // clipped to eps
        o[1] = 1.0;  // clipped to 1 - eps
        auto x = rounded(random_values(gen, 12, -50.0, 50.0), dt);
        x[2] = 0.0;
        kb_tensor *tt = make_const(ctx, t, {3, 4}, dt);
        std::vector<double> want_p, want_l;
        // The clip bounds as stored in dt (1 - 1e-7 is 1 - 2^-23 in float32).
        double lo = rounded({kEps}, dt)[0], hi = rounded({1 - kEps}, dt)[0];
        for (size_t i = 0; i < t.size(); ++i) {
            double c = std::min(std::max(o[i], lo), hi);
            want_p.push_back(-(t[i] * std::log(c + kEps) + (1 - t[i]) * std::log(1 - c + kEps)));
            want_l.push_back(std::max(x[i], 0.0) - x[i] * t[i] + std::log1p(std::exp(-std::fabs(x[i]))));
        }
        Tol tol = dt == KB_FLOAT32 ? Tol{1e-5, 1e-5} : default_tol(dt);
        EXPECT_TRUE(allclose(eval_v(kb_binary_crossentropy(tt, make_const(ctx, o, {3, 4}, dt), 0)), want_p, tol));
        kb_tensor *xt = make_const(ctx, x, {3, 4}, dt);
        EXPECT_TRUE(allclose(eval_v(kb_binary_crossentropy(tt, xt, 1)), want_l, tol));
        // Output made by a sigmoid: its logits are used (no clip), even at |x| = 50.
        EXPECT_TRUE(allclose(eval_v(kb_binary_crossentropy(tt, kb_sigmoid(xt), 0)), want_l, tol));
    }
}

// d/dx = sigmoid(x) - z everywhere, including x = 0 (where max and |x| have kinks).
TEST_F(Nn, BinaryCrossentropyLogitsGradient) {
    std::vector<double> xs = {0.0, 0.0, -3.0, 40.0}, zs = {0.0, 1.0, 0.25, 0.5};
    kb_tensor *x = make_var(ctx, xs, {4}, KB_FLOAT64), *z = make_var(ctx, zs, {4}, KB_FLOAT64);
    kb_tensor *vars[2] = {z, x}, *g[2] = {nullptr, nullptr};
    ASSERT_TRUE(ok(kb_gradients(kb_sum(kb_binary_crossentropy(z, x, 1), nullptr, 0, 0), vars, 2, g)));
    std::vector<double> gx, gz;
    for (int i = 0; i < 4; ++i) {
        gx.push_back(1 / (1 + std::exp(-xs[i])) - zs[i]);
        gz.push_back(-xs[i]);
    }
    EXPECT_TRUE(allclose(eval_v(g[1]), gx, default_tol(KB_FLOAT64)));
    EXPECT_TRUE(allclose(eval_v(g[0]), gz, default_tol(KB_FLOAT64)));
}

// Spec 2.8: renormalisation, epsilon clip, axis, from_logits, the softmax shortcut.
TEST_F(Nn, CategoricalCrossentropyAgainstLoop) {
    const Shape s = {2, 3, 4};
    for (kb_dtype dt : kFloatTypes)
        for (int axis : {-1, 1}) {
            AxisView v(s, axis);
            auto t = rounded(random_values(gen, 24, 0.0, 1.0), dt);
            auto p = rounded(random_values(gen, 24, 0.0, 2.0), dt);  // unnormalised
            p[0] = 0.0;
            auto x = rounded(random_values(gen, 24, -5.0, 5.0), dt);
            std::vector<double> want_p, want_l;
            for (int64_t a = 0; a < v.outer; ++a)
                for (int64_t i = 0; i < v.inner; ++i) {
                    double sp = 0, m = -kInf, sx = 0, lp = 0, ll = 0;
                    for (int64_t c = 0; c < v.C; ++c) sp += p[v.at(a, c, i)], m = std::max(m, x[v.at(a, c, i)]);
                    for (int64_t c = 0; c < v.C; ++c) sx += std::exp(x[v.at(a, c, i)] - m);
                    for (int64_t c = 0; c < v.C; ++c) {
                        double q = std::min(std::max(p[v.at(a, c, i)] / sp, kEps), 1 - kEps);
                        lp -= t[v.at(a, c, i)] * std::log(q);
                        ll -= t[v.at(a, c, i)] * (x[v.at(a, c, i)] - m - std::log(sx));
                    }
                    want_p.push_back(lp);
                    want_l.push_back(ll);
                }
            kb_tensor *tt = make_const(ctx, t, s, dt), *xt = make_const(ctx, x, s, dt);
            Tol tol = dt == KB_FLOAT32 ? Tol{1e-5, 1e-5} : default_tol(dt);
            EXPECT_TRUE(allclose(eval_v(kb_categorical_crossentropy(tt, make_const(ctx, p, s, dt), 0, axis)), want_p,
                                 tol)) << axis;
            EXPECT_TRUE(allclose(eval_v(kb_categorical_crossentropy(tt, xt, 1, axis)), want_l, tol)) << axis;
            EXPECT_TRUE(allclose(eval_v(kb_categorical_crossentropy(tt, kb_softmax(xt, axis), 0, axis)), want_l, tol))
                << axis;
        }
}

// ---- bias_add ----------------------------------------------------------------------------------

// x + bias broadcast the Keras way: bshape is the shape the bias is reshaped to (C-order data).
std::vector<double> add_reshaped(const std::vector<double> &x, const Shape &xs, const std::vector<double> &b,
                                 const Shape &bshape) {
    std::vector<double> o(x.size());
    for (int64_t i = 0; i < (int64_t)x.size(); ++i) {
        int64_t rem = i, bi = 0, bstride = 1;
        for (int d = (int)xs.size() - 1; d >= 0; --d) {
            int64_t c = rem % xs[d];
            rem /= xs[d];
            if (bshape[d] != 1) bi += c * bstride;
            bstride *= bshape[d];
        }
        o[i] = x[i] + b[bi];
    }
    return o;
}

TEST_F(Nn, BiasAddBothFormats) {
    struct C {
        Shape x, b;
        kb_data_format_arg f;
        Shape as;  // what Keras reshapes the bias to
    };
    const C cases[] = {
        {{2, 3, 2, 4}, {4}, KB_DATA_FORMAT_CHANNELS_LAST, {1, 1, 1, 4}},
        {{2, 3, 2, 4}, {3}, KB_DATA_FORMAT_CHANNELS_FIRST, {1, 3, 1, 1}},
        {{2, 3, 4}, {3}, KB_DATA_FORMAT_CHANNELS_FIRST, {1, 3, 1}},
        {{2, 2, 3, 2, 2}, {2}, KB_DATA_FORMAT_CHANNELS_FIRST, {1, 2, 1, 1, 1}},
        // The spec's test: x (20, 6, 10) channels_first with bias (10, 6): reshaped to (1, 6, 10).
        {{20, 6, 10}, {10, 6}, KB_DATA_FORMAT_CHANNELS_FIRST, {1, 6, 10}},
        {{2, 6, 5}, {6, 5}, KB_DATA_FORMAT_CHANNELS_LAST, {1, 6, 5}},
        // 4-D channels_first full bias (H, W, C) = (2, 4, 3) -> (1, 3, 2, 4), a reshape of the data.
        {{2, 3, 2, 4}, {2, 4, 3}, KB_DATA_FORMAT_CHANNELS_FIRST, {1, 3, 2, 4}},
        // Rank 2 and rank 6: tf.nn.bias_add on the last axis whatever the format.
        {{3, 4}, {4}, KB_DATA_FORMAT_CHANNELS_FIRST, {1, 4}},
        {{2, 1, 2, 1, 2, 3}, {3}, KB_DATA_FORMAT_CHANNELS_FIRST, {1, 1, 1, 1, 1, 3}},
    };
    for (kb_dtype dt : kFloatTypes)
        for (const C &c : cases) {
            auto x = rounded(random_values(gen, (size_t)numel(c.x), -2.0, 2.0), dt);
            auto b = rounded(random_values(gen, (size_t)numel(c.b), -2.0, 2.0), dt);
            kb_tensor *y = kb_bias_add(make_const(ctx, x, c.x, dt), make_const(ctx, b, c.b, dt), c.f);
            ASSERT_NE(y, nullptr) << kb_last_error();
            EXPECT_EQ(static_shape(y), c.x);
            EXPECT_TRUE(allclose(eval_v(y), rounded(add_reshaped(x, c.x, b, c.as), dt), default_tol(dt)))
                << shape_str(c.x) << " + " << shape_str(c.b);
        }
    // The default format is the context's image_data_format.
    ASSERT_TRUE(ok(kb_set_image_data_format(ctx, KB_CHANNELS_FIRST)));
    std::vector<double> x(12, 1.0);
    kb_tensor *y = kb_bias_add(make_const(ctx, x, {1, 3, 4}), make_const(ctx, {1, 2, 3}, {3}), KB_DATA_FORMAT_DEFAULT);
    EXPECT_TRUE(allclose(eval_v(y), add_reshaped(x, {1, 3, 4}, {1, 2, 3}, {1, 3, 1}), 0, 0));
}

// ---- every nn op case on the CPU in float32 / float16 / bfloat16 against float64 ----------------

bool is_nn_case(const std::string &n) {
    const char *prefixes[] = {"elu_",       "softplus_",    "softsign_", "hard_sigmoid_", "tanh_",  "relu_half",
                              "relu_grad_half", "sigmoid_half", "softmax_half", "softmax_2x1500", "log_softmax_half",
                              "l2_normalize", "in_top_k",     "bce_",      "scce_",         "bias_add_"};
    for (const char *p : prefixes)
        if (n.rfind(p, 0) == 0) return true;
    return false;
}

TEST_F(Nn, FamilyCasesAgreeAcrossDtypes) {
    int ran = 0;
    for (const OpCase &c : op_cases()) {
        if (!is_nn_case(c.name)) continue;
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
    EXPECT_GT(ran, 100);
}

// ---- local_conv1d / local_conv2d (spec 2.5) ----------------------------------------------------

// Keras local_conv1d by loops: y[b, i, f] = sum_{t, c} x[b, i*s + t, c] * W[i, t*C + c, f].
std::vector<double> local1d_ref(const std::vector<double> &x, const std::vector<double> &w, int64_t B, int64_t L,
                                int64_t C, int64_t k, int64_t s, int64_t ol, int64_t F) {
    std::vector<double> y((size_t)(B * ol * F), 0.0);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < ol; ++i)
            for (int64_t f = 0; f < F; ++f) {
                double acc = 0;
                for (int64_t t = 0; t < k; ++t)
                    for (int64_t c = 0; c < C; ++c)
                        acc += x[(size_t)((b * L + i * s + t) * C + c)] * w[(size_t)((i * k * C + t * C + c) * F + f)];
                y[(size_t)((b * ol + i) * F + f)] = acc;
            }
    return y;
}

TEST_F(Nn, LocalConv1dAgainstLoops) {
    struct Case {
        int64_t L, k, s, ol;
    };
    // ol = (L - k) / s + 1, and one with fewer positions than fit (Keras takes ol from the kernel)
    for (const Case &c : {Case{7, 3, 2, 3}, Case{6, 2, 2, 2}, Case{5, 5, 1, 1}, Case{8, 2, 3, 2}, Case{6, 1, 1, 6}})
        for (kb_dtype dt : kFloatTypes) {
            const int64_t B = 3, C = 2, F = 4;
            auto x = rounded(random_values(gen, (size_t)(B * c.L * C), -1, 1), dt);
            auto w = rounded(random_values(gen, (size_t)(c.ol * c.k * C * F), -1, 1), dt);
            kb_tensor *y = kb_local_conv1d(make_const(ctx, x, {B, c.L, C}, dt), make_const(ctx, w, {c.ol, c.k * C, F}, dt),
                                           c.k, c.s, KB_DATA_FORMAT_DEFAULT);
            ASSERT_NE(y, nullptr) << kb_last_error();
            EXPECT_EQ(static_shape(y), (Shape{B, c.ol, F}));
            EXPECT_TRUE(allclose(eval_v(y), local1d_ref(x, w, B, c.L, C, c.k, c.s, c.ol, F),
                                 dt == KB_FLOAT32 ? Tol{1e-5, 1e-6} : Tol{1e-12, 1e-13}))
                << c.L << " " << c.k << " " << c.s << " " << kb_dtype_name(dt);
        }
    // data_format is normalised but not used: channels_first input is still read channels_last
    auto x = random_values(gen, 2 * 5 * 3, -1, 1), w = random_values(gen, 2 * 6 * 2, -1, 1);
    kb_tensor *y = kb_local_conv1d(make_const(ctx, x, {2, 5, 3}, KB_FLOAT64), make_const(ctx, w, {2, 6, 2}, KB_FLOAT64),
                                   2, 3, KB_DATA_FORMAT_CHANNELS_FIRST);
    EXPECT_TRUE(allclose(eval_v(y), local1d_ref(x, w, 2, 5, 3, 2, 3, 2, 2), 1e-12, 1e-13));
}

// Keras local_conv2d by loops: position (i, j) uses kernel row i*ow + j and the window at
// (i*sh, j*sw), flattened (dy, dx, c) for channels_last and (c, dy, dx) for channels_first.
std::vector<double> local2d_ref(const std::vector<double> &x, const std::vector<double> &w, int64_t B, int64_t C,
                                int64_t H, int64_t W, const int64_t k[2], const int64_t s[2], const int64_t o[2],
                                int64_t F, bool cf) {
    std::vector<double> y((size_t)(B * o[0] * o[1] * F), 0.0);
    int64_t K = k[0] * k[1] * C;
    for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < o[0]; ++i)
            for (int64_t j = 0; j < o[1]; ++j)
                for (int64_t f = 0; f < F; ++f) {
                    double acc = 0;
                    for (int64_t dy = 0; dy < k[0]; ++dy)
                        for (int64_t dx = 0; dx < k[1]; ++dx)
                            for (int64_t c = 0; c < C; ++c) {
                                int64_t r = i * s[0] + dy, q = j * s[1] + dx;
                                double xv = cf ? x[(size_t)(((b * C + c) * H + r) * W + q)]
                                               : x[(size_t)(((b * H + r) * W + q) * C + c)];
                                int64_t kk = cf ? (c * k[0] + dy) * k[1] + dx : (dy * k[1] + dx) * C + c;
                                acc += xv * w[(size_t)(((i * o[1] + j) * K + kk) * F + f)];
                            }
                    size_t at = cf ? (size_t)(((b * F + f) * o[0] + i) * o[1] + j)
                                   : (size_t)(((b * o[0] + i) * o[1] + j) * F + f);
                    y[at] = acc;
                }
    return y;
}

TEST_F(Nn, LocalConv2dAgainstLoops) {
    struct Case {
        int64_t H, W, k[2], s[2], o[2];
    };
    const Case cases[] = {{5, 4, {3, 2}, {2, 1}, {2, 3}}, {4, 5, {2, 2}, {1, 2}, {3, 2}}, {3, 3, {3, 3}, {1, 1}, {1, 1}},
                          {6, 5, {2, 1}, {2, 2}, {2, 2}}};
    const int64_t B = 2, C = 3, F = 2;
    for (const Case &c : cases)
        for (int cf = 0; cf < 2; ++cf)
            for (kb_dtype dt : kFloatTypes) {
                auto x = rounded(random_values(gen, (size_t)(B * C * c.H * c.W), -1, 1), dt);
                auto w = rounded(random_values(gen, (size_t)(c.o[0] * c.o[1] * c.k[0] * c.k[1] * C * F), -1, 1), dt);
                Shape xs = cf ? Shape{B, C, c.H, c.W} : Shape{B, c.H, c.W, C};
                kb_tensor *y = kb_local_conv2d(make_const(ctx, x, xs, dt),
                                               make_const(ctx, w, {c.o[0] * c.o[1], c.k[0] * c.k[1] * C, F}, dt), c.k,
                                               c.s, c.o, cf ? KB_DATA_FORMAT_CHANNELS_FIRST : KB_DATA_FORMAT_CHANNELS_LAST);
                ASSERT_NE(y, nullptr) << kb_last_error();
                EXPECT_EQ(static_shape(y), cf ? (Shape{B, F, c.o[0], c.o[1]}) : (Shape{B, c.o[0], c.o[1], F}));
                EXPECT_TRUE(allclose(eval_v(y), local2d_ref(x, w, B, C, c.H, c.W, c.k, c.s, c.o, F, cf),
                                     dt == KB_FLOAT32 ? Tol{1e-5, 1e-6} : Tol{1e-12, 1e-13}))
                    << c.H << "x" << c.W << " cf=" << cf << " " << kb_dtype_name(dt);
            }
}

// The default data_format is the context's; strides NULL = (1, 1); an unknown batch resolves when
// a function runs; the input gradient sums over the overlapping windows (adjoint by loops).
TEST_F(Nn, LocalConv2dDefaultsUnknownBatchAndInputGradient) {
    ASSERT_TRUE(ok(kb_set_image_data_format(ctx, KB_CHANNELS_FIRST)));
    const int64_t k[2] = {2, 2}, one[2] = {1, 1}, o[2] = {2, 3};
    auto xv = random_values(gen, 2 * 3 * 3 * 4, -1, 1), wv = random_values(gen, 6 * 12 * 2, -1, 1);
    int64_t xs[4] = {KB_NONE, 3, 3, 4};
    kb_tensor *xp = kb_placeholder(ctx, xs, 4, KB_FLOAT64, "x");
    kb_tensor *w = make_var(ctx, wv, {6, 12, 2}, KB_FLOAT64);
    kb_tensor *y = kb_local_conv2d(xp, w, k, nullptr, o, KB_DATA_FORMAT_DEFAULT);
    ASSERT_NE(y, nullptr) << kb_last_error();
    auto bytes = to_bytes(xv, KB_FLOAT64);
    RunResult r = run_function(ctx, {y}, KB_DEVICE_CPU, {xp}, {feed_of(bytes, KB_FLOAT64, {2, 3, 3, 4})});
    ASSERT_TRUE(ok(r.status)) << r.error;
    EXPECT_EQ(r.outs[0].shape, (Shape{2, 2, 2, 3}));
    EXPECT_TRUE(allclose(r.outs[0].v, local2d_ref(xv, wv, 2, 3, 3, 4, k, one, o, 2, true), 1e-12, 1e-13));
    // d sum(y * R) / dx[b, c, r, q] = sum over windows (i, j) covering (r, q) of sum_f R * W
    kb_tensor *x = make_var(ctx, xv, {2, 3, 3, 4}, KB_FLOAT64);
    auto rv = random_values(gen, 2 * 2 * 2 * 3, -1, 1);
    kb_tensor *loss = kb_sum(kb_multiply(kb_local_conv2d(x, w, k, nullptr, o, KB_DATA_FORMAT_DEFAULT),
                                         make_const(ctx, rv, {2, 2, 2, 3}, KB_FLOAT64)),
                             nullptr, 0, 0);
    kb_tensor *g = nullptr;
    ASSERT_TRUE(ok(kb_gradients(loss, &x, 1, &g)));
    std::vector<double> want(xv.size(), 0.0);
    for (int64_t b = 0; b < 2; ++b)
        for (int64_t i = 0; i < 2; ++i)
            for (int64_t j = 0; j < 3; ++j)
                for (int64_t c = 0; c < 3; ++c)
                    for (int64_t dy = 0; dy < 2; ++dy)
                        for (int64_t dx = 0; dx < 2; ++dx)
                            for (int64_t f = 0; f < 2; ++f)
                                want[(size_t)(((b * 3 + c) * 3 + i + dy) * 4 + j + dx)] +=
                                    rv[(size_t)(((b * 2 + f) * 2 + i) * 3 + j)] *
                                    wv[(size_t)(((i * 3 + j) * 12 + (c * 2 + dy) * 2 + dx) * 2 + f)];
    EXPECT_TRUE(allclose(eval_v(g), want, 1e-12, 1e-13));
}

TEST_F(Nn, LocalConvBadInput) {
    auto v = [](int64_t n) { return std::vector<double>((size_t)n, 0.5); };
    kb_tensor *x3 = make_const(ctx, v(2 * 7 * 3), {2, 7, 3});
    kb_tensor *k3 = make_const(ctx, v(3 * 9 * 2), {3, 9, 2});
    kb_tensor *x4 = make_const(ctx, v(2 * 5 * 4 * 3), {2, 5, 4, 3});
    kb_tensor *k4 = make_const(ctx, v(6 * 18 * 2), {6, 18, 2});
    const int64_t ks[2] = {3, 2}, st[2] = {2, 1}, os[2] = {2, 3};
    const auto CL = KB_DATA_FORMAT_CHANNELS_LAST;
    EXPECT_NULL_WITH(kb_local_conv1d(nullptr, k3, 3, 2, CL), KB_ERR_INVALID_ARGUMENT, {"kb_local_conv1d", "inputs"});
    EXPECT_NULL_WITH(kb_local_conv1d(x3, nullptr, 3, 2, CL), KB_ERR_INVALID_ARGUMENT, {"kb_local_conv1d", "kernel"});
    EXPECT_NULL_WITH(kb_local_conv2d(x4, k4, nullptr, st, os, CL), KB_ERR_INVALID_ARGUMENT,
                     {"kb_local_conv2d", "kernel_size"});
    EXPECT_NULL_WITH(kb_local_conv2d(x4, k4, ks, st, nullptr, CL), KB_ERR_INVALID_ARGUMENT,
                     {"kb_local_conv2d", "output_shape"});
    EXPECT_NULL_WITH(kb_local_conv1d(x3, k3, 3, 2, (kb_data_format_arg)5), KB_ERR_INVALID_ARGUMENT,
                     {"kb_local_conv1d", "Unknown data_format"});
    EXPECT_NULL_WITH(kb_local_conv1d(x3, k3, 0, 2, CL), KB_ERR_INVALID_ARGUMENT, {"kb_local_conv1d", "kernel_size"});
    EXPECT_NULL_WITH(kb_local_conv1d(x3, k3, 3, -1, CL), KB_ERR_INVALID_ARGUMENT, {"kb_local_conv1d", "strides"});
    const int64_t st0[2] = {0, 1};
    EXPECT_NULL_WITH(kb_local_conv2d(x4, k4, ks, st0, os, CL), KB_ERR_INVALID_ARGUMENT, {"kb_local_conv2d", "strides"});
    // dtypes
    EXPECT_NULL_WITH(kb_local_conv1d(make_const(ctx, v(42), {2, 7, 3}, KB_INT32), k3, 3, 2, CL), KB_ERR_DTYPE,
                     {"kb_local_conv1d", "inputs", "int32"});
    EXPECT_NULL_WITH(kb_local_conv1d(make_const(ctx, v(42), {2, 7, 3}, KB_FLOAT16), k3, 3, 2, CL), KB_ERR_DTYPE,
                     {"kb_local_conv1d", "float16"});
    EXPECT_NULL_WITH(kb_local_conv1d(x3, make_const(ctx, v(54), {3, 9, 2}, KB_FLOAT64), 3, 2, CL), KB_ERR_DTYPE,
                     {"kb_local_conv1d", "kernel", "float64", "float32"});
    // ranks and shapes
    EXPECT_NULL_WITH(kb_local_conv1d(x4, k3, 3, 2, CL), KB_ERR_SHAPE, {"kb_local_conv1d", "3-D", "(2, 5, 4, 3)"});
    EXPECT_NULL_WITH(kb_local_conv2d(x3, k4, ks, st, os, CL), KB_ERR_SHAPE, {"kb_local_conv2d", "4-D"});
    EXPECT_NULL_WITH(kb_local_conv1d(x3, make_const(ctx, v(18), {9, 2}), 3, 2, CL), KB_ERR_SHAPE,
                     {"kb_local_conv1d", "kernel must be 3-D"});
    EXPECT_NULL_WITH(kb_local_conv1d(x3, k3, 2, 2, CL), KB_ERR_SHAPE,
                     {"kb_local_conv1d", "9 features per position", "kernel_size * channels = 6"});
    // 4 windows of 3 with stride 2 need 9 steps, x has 7
    EXPECT_NULL_WITH(kb_local_conv1d(x3, make_const(ctx, v(4 * 9 * 2), {4, 9, 2}), 3, 2, CL), KB_ERR_SHAPE,
                     {"kb_local_conv1d", "need 9 input steps", "have 7"});
    EXPECT_NULL_WITH(kb_local_conv2d(x4, make_const(ctx, v(5 * 18 * 2), {5, 18, 2}), ks, st, os, CL), KB_ERR_SHAPE,
                     {"kb_local_conv2d", "5 positions", "(2, 3) has 6"});
    EXPECT_NULL_WITH(kb_local_conv2d(x4, k4, ks, st, os, KB_DATA_FORMAT_CHANNELS_FIRST), KB_ERR_SHAPE,
                     {"kb_local_conv2d", "18 features", "= 30"});
    const int64_t os_big[2] = {3, 2};  // 3 rows of 3 with stride 2 need 7 rows, x has 5
    EXPECT_NULL_WITH(kb_local_conv2d(x4, k4, ks, st, os_big, CL), KB_ERR_SHAPE,
                     {"kb_local_conv2d", "need 7 input rows", "have 5"});
    int64_t ksh[3] = {3, KB_NONE, 2};
    EXPECT_NULL_WITH(kb_local_conv1d(x3, kb_placeholder(ctx, ksh, 3, KB_FLOAT32, "k"), 3, 2, CL), KB_ERR_SHAPE,
                     {"kb_local_conv1d", "kernel shape must be known"});
    // the session stays usable
    kb_clear_error();
    kb_tensor *y = kb_local_conv1d(x3, k3, 3, 2, CL);
    ASSERT_NE(y, nullptr) << kb_last_error();
    EXPECT_TRUE(allclose(eval_v(y), std::vector<double>(12, 9 * 0.25), 1e-6, 1e-6));
}

// ---- bad input ---------------------------------------------------------------------------------

TEST_F(Nn, BadInput) {
    kb_tensor *f = make_const(ctx, {1, 2, 3, 4, 5, 6}, {2, 3});
    kb_tensor *d = make_const(ctx, {1, 2, 3, 4, 5, 6}, {2, 3}, KB_FLOAT64);
    kb_tensor *i = make_const(ctx, {1, 2, 3, 4, 5, 6}, {2, 3}, KB_INT32);
    kb_tensor *t2 = make_const(ctx, {0, 1}, {2}, KB_INT32);
    kb_tensor *b2 = make_const(ctx, {0, 1}, {2}, KB_BOOL);
    // NULL arguments name the function and the argument.
    EXPECT_NULL_WITH(kb_elu(nullptr, 1.0), KB_ERR_INVALID_ARGUMENT, {"kb_elu", "x"});
    EXPECT_NULL_WITH(kb_softplus(nullptr), KB_ERR_INVALID_ARGUMENT, {"kb_softplus", "x"});
    EXPECT_NULL_WITH(kb_softsign(nullptr), KB_ERR_INVALID_ARGUMENT, {"kb_softsign", "x"});
    EXPECT_NULL_WITH(kb_hard_sigmoid(nullptr), KB_ERR_INVALID_ARGUMENT, {"kb_hard_sigmoid", "x"});
    EXPECT_NULL_WITH(kb_tanh(nullptr), KB_ERR_INVALID_ARGUMENT, {"kb_tanh", "x"});
    EXPECT_NULL_WITH(kb_l2_normalize(nullptr, nullptr, 0), KB_ERR_INVALID_ARGUMENT, {"kb_l2_normalize", "x"});
    EXPECT_NULL_WITH(kb_in_top_k(nullptr, t2, 1), KB_ERR_INVALID_ARGUMENT, {"kb_in_top_k", "predictions"});
    EXPECT_NULL_WITH(kb_in_top_k(f, nullptr, 1), KB_ERR_INVALID_ARGUMENT, {"kb_in_top_k", "targets"});
    EXPECT_NULL_WITH(kb_sparse_categorical_crossentropy(nullptr, f, 0, -1), KB_ERR_INVALID_ARGUMENT,
                     {"kb_sparse_categorical_crossentropy", "target"});
    EXPECT_NULL_WITH(kb_sparse_categorical_crossentropy(t2, nullptr, 0, -1), KB_ERR_INVALID_ARGUMENT,
                     {"kb_sparse_categorical_crossentropy", "output"});
    EXPECT_NULL_WITH(kb_binary_crossentropy(nullptr, f, 0), KB_ERR_INVALID_ARGUMENT,
                     {"kb_binary_crossentropy", "target"});
    EXPECT_NULL_WITH(kb_binary_crossentropy(f, nullptr, 1), KB_ERR_INVALID_ARGUMENT,
                     {"kb_binary_crossentropy", "output"});
    EXPECT_NULL_WITH(kb_bias_add(nullptr, t2, KB_DATA_FORMAT_DEFAULT), KB_ERR_INVALID_ARGUMENT, {"kb_bias_add", "x"});
    EXPECT_NULL_WITH(kb_bias_add(f, nullptr, KB_DATA_FORMAT_DEFAULT), KB_ERR_INVALID_ARGUMENT,
                     {"kb_bias_add", "bias"});
    // dtypes
    EXPECT_NULL_WITH(kb_elu(i, 1.0), KB_ERR_DTYPE, {"elu", "int32"});
    EXPECT_NULL_WITH(kb_tanh(i), KB_ERR_DTYPE, {"tanh"});
    EXPECT_NULL_WITH(kb_softplus(b2), KB_ERR_DTYPE, {"softplus"});
    EXPECT_NULL_WITH(kb_l2_normalize(i, nullptr, 0), KB_ERR_DTYPE, {"l2_normalize"});
    EXPECT_NULL_WITH(kb_in_top_k(i, t2, 1), KB_ERR_DTYPE, {"in_top_k", "predictions"});
    EXPECT_NULL_WITH(kb_in_top_k(f, make_const(ctx, {0, 1}, {2}), 1), KB_ERR_DTYPE, {"in_top_k", "targets"});
    EXPECT_NULL_WITH(kb_binary_crossentropy(d, f, 0), KB_ERR_DTYPE, {"binary_crossentropy", "float64", "float32"});
    EXPECT_NULL_WITH(kb_binary_crossentropy(i, i, 1), KB_ERR_DTYPE, {"binary_crossentropy", "output"});
    EXPECT_NULL_WITH(kb_sparse_categorical_crossentropy(b2, f, 1, -1), KB_ERR_DTYPE,
                     {"sparse_categorical_crossentropy", "target"});
    EXPECT_NULL_WITH(kb_sparse_categorical_crossentropy(t2, i, 1, -1), KB_ERR_DTYPE,
                     {"sparse_categorical_crossentropy", "output"});
    // shapes and axes
    EXPECT_NULL_WITH(kb_in_top_k(make_const(ctx, {1, 2}, {2}), t2, 1), KB_ERR_SHAPE, {"in_top_k", "(batch, classes)"});
    EXPECT_NULL_WITH(kb_in_top_k(f, make_const(ctx, {0, 1, 2}, {3}, KB_INT32), 1), KB_ERR_SHAPE, {"in_top_k"});
    EXPECT_NULL_WITH(kb_sparse_categorical_crossentropy(make_const(ctx, {0, 1, 2}, {3}, KB_INT32), f, 1, -1),
                     KB_ERR_SHAPE, {"sparse_categorical_crossentropy", "target"});
    EXPECT_NULL_WITH(kb_sparse_categorical_crossentropy(t2, f, 1, 2), KB_ERR_AXIS, {"sparse_categorical_crossentropy"});
    EXPECT_NULL_WITH(kb_binary_crossentropy(f, make_const(ctx, {1, 2}, {2}), 0), KB_ERR_SHAPE,
                     {"binary_crossentropy"});
    int bad_ax = 2;
    EXPECT_NULL_WITH(kb_l2_normalize(f, &bad_ax, 1), KB_ERR_AXIS, {"l2_normalize"});
    int rep[2] = {1, -1};
    EXPECT_NULL_WITH(kb_l2_normalize(f, rep, 2), KB_ERR_AXIS, {"l2_normalize"});
    // bias_add: Keras' message prints ndim(x).
    kb_tensor *x4 = make_const(ctx, std::vector<double>(24, 1.0), {2, 3, 2, 2});
    kb_tensor *b22 = make_const(ctx, {1, 2, 3, 4}, {2, 2});
    EXPECT_NULL_WITH(kb_bias_add(x4, b22, KB_DATA_FORMAT_CHANNELS_LAST), KB_ERR_SHAPE,
                     {"bias_add", "Unexpected bias dimensions 2, expect to be 1 or 4 dimensions"});
    EXPECT_NULL_WITH(kb_bias_add(x4, make_const(ctx, {1, 2, 3, 4}, {4}), KB_DATA_FORMAT_CHANNELS_FIRST),
                     KB_ERR_SHAPE, {"bias_add", "channel"});
    EXPECT_NULL_WITH(kb_bias_add(x4, make_const(ctx, {1, 2}, {2}), (kb_data_format_arg)7), KB_ERR_INVALID_ARGUMENT,
                     {"bias_add", "data_format"});
    EXPECT_NULL_WITH(kb_bias_add(f, make_const(ctx, {1, 2}, {2}), KB_DATA_FORMAT_CHANNELS_LAST), KB_ERR_SHAPE,
                     {"bias_add"});
    EXPECT_NULL_WITH(kb_bias_add(make_const(ctx, {1, 2}, {2}), make_const(ctx, {1, 2}, {2}), KB_DATA_FORMAT_DEFAULT),
                     KB_ERR_SHAPE, {"bias_add"});
    // The session stays usable.
    kb_clear_error();
    EXPECT_TRUE(allclose(eval_v(kb_tanh(make_const(ctx, {0.0}, {1}))), {0.0}, 0, 0));
}

}  // namespace
