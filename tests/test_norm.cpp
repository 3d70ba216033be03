// Reference values and bad input of the norm family: normalize_batch_in_training (fused and
// composite paths, None gamma / beta, mean / var shapes, population variance, large means) and
// batch_normalization (broadcasting, Keras' 4-D per-channel axis), against loops written here;
// gradients of the composite path by finite differences.
#include <cmath>

#include "kb_test_util.h"

namespace {

using namespace kbt;

class Norm : public KbTest {};

// Values rounded to the dtype they are stored in.
// Index of element i of shape s in the kept-axes group (C order over the kept axes).
int64_t group_of(int64_t i, const Shape &s, unsigned mask) {
    int64_t g = 0, st = 1;
    for (int d = (int)s.size() - 1; d >= 0; --d) {
        int64_t c = i % s[d];
        i /= s[d];
        if (!(mask & (1u << d))) {
            g += c * st;
            st *= s[d];
        }
    }
    return g;
}

struct BnRef {
    std::vector<double> normed, mean, var;
};

// normalize_batch_in_training by loops: gamma / beta indexed by the kept-axes group (empty:
// None).
BnRef ref_bn(const std::vector<double> &x, const Shape &s, unsigned mask, const std::vector<double> &gamma,
             const std::vector<double> &beta, double eps) {
    int64_t n = numel(s), groups = 1;
    for (size_t d = 0; d < s.size(); ++d)
        if (!(mask & (1u << d))) groups *= s[d];
    BnRef r;
    std::vector<double> cnt((size_t)groups, 0.0);
    r.mean.assign((size_t)groups, 0.0);
    r.var.assign((size_t)groups, 0.0);
    for (int64_t i = 0; i < n; ++i) {
        r.mean[(size_t)group_of(i, s, mask)] += x[(size_t)i];
        cnt[(size_t)group_of(i, s, mask)] += 1;
    }
    for (int64_t g = 0; g < groups; ++g) r.mean[(size_t)g] /= cnt[(size_t)g];
    for (int64_t i = 0; i < n; ++i) {
        double d = x[(size_t)i] - r.mean[(size_t)group_of(i, s, mask)];
        r.var[(size_t)group_of(i, s, mask)] += d * d;
    }
    for (int64_t g = 0; g < groups; ++g) r.var[(size_t)g] /= cnt[(size_t)g];
    for (int64_t i = 0; i < n; ++i) {
        size_t g = (size_t)group_of(i, s, mask);
        double y = (x[(size_t)i] - r.mean[g]) / std::sqrt(r.var[g] + eps);
        if (!gamma.empty()) y *= gamma[g];
        if (!beta.empty()) y += beta[g];
        r.normed.push_back(y);
    }
    return r;
}

struct Config {
    Shape x;
    std::vector<int> axes;
    unsigned mask;
    Shape param;  // gamma / beta shape (its elements in kept-axes order)
};

// Fused (kept axes one block) and composite (kept axes split, or all-but-last handled by
// broadcasting) configurations.
const Config kConfigs[] = {
    {{2, 3, 4, 5}, {0, 1, 2}, 7u, {5}},        // NHWC
    {{2, 3, 4, 5}, {0, 2, 3}, 13u, {3}},       // NCHW
    {{3, 4, 2}, {-3, -2}, 3u, {2}},            // negative axes, all but last
    {{6, 4}, {0}, 1u, {4}},                    // 2-D
    {{5, 2, 3}, {0}, 1u, {2, 3}},              // two kept axes
    {{2, 3, 4}, {1}, 2u, {2, 4}},              // kept axes not contiguous: composite
    {{2, 3, 4, 5}, {0, 2}, 5u, {3, 5}},        // composite, 4-D
    {{2, 3, 2, 2}, {0, 1, 2, 3}, 15u, {}},     // all axes (Keras test_batchnorm_tf)
};

TEST_F(Norm, NormalizeBatchInTrainingMatchesLoops) {
    for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64}) {
        Tol tol = dt == KB_FLOAT32 ? Tol{1e-4, 1e-5} : Tol{1e-10, 1e-12};
        for (const Config &c : kConfigs) {
            for (bool affine : {false, true}) {
                if (affine && c.param.empty()) continue;
                auto x = rounded(random_values(gen, (size_t)numel(c.x), -3.0, 3.0), dt);
                std::vector<double> gamma, beta;
                kb_tensor *tg = nullptr, *tb = nullptr;
                if (affine) {
                    gamma = rounded(random_values(gen, (size_t)numel(c.param), 0.5, 1.5), dt);
                    beta = rounded(random_values(gen, (size_t)numel(c.param), -1.0, 1.0), dt);
                    tg = make_var(ctx, gamma, c.param, dt);
                    tb = make_var(ctx, beta, c.param, dt);
                }
                kb_tensor *normed = nullptr, *mean = nullptr, *var = nullptr;
                ASSERT_TRUE(ok(kb_normalize_batch_in_training(make_var(ctx, x, c.x, dt), tg, tb, c.axes.data(),
                                                              (int)c.axes.size(), 1e-3, &normed, &mean, &var)));
                BnRef r = ref_bn(x, c.x, c.mask, gamma, beta, 1e-3);
                std::string what = shape_str(c.x) + " mask " + std::to_string(c.mask) + (affine ? " affine " : " ") +
                                   kb_dtype_name(dt);
                HostValue hn = eval(normed), hm = eval(mean), hv = eval(var);
                EXPECT_TRUE(allclose(hn.v, r.normed, tol)) << what;
                EXPECT_TRUE(allclose(hm.v, r.mean, tol)) << what;
                EXPECT_TRUE(allclose(hv.v, r.var, tol)) << what;
                EXPECT_EQ(hn.shape, c.x) << what;
                // mean / var keep the kept axes' shape (tf.nn.moments without keep_dims)
                Shape kept;
                for (size_t d = 0; d < c.x.size(); ++d)
                    if (!(c.mask & (1u << d))) kept.push_back(c.x[d]);
                EXPECT_EQ(hm.shape, kept) << what;
                EXPECT_EQ(hv.shape, kept) << what;
            }
        }
    }
}

TEST_F(Norm, VarianceIsPopulationAndEpsilonIsUsed) {
    // x = [1, 3] per channel: mean 2, population var 1 (not 2), normed = (x - 2) / sqrt(1 + eps)
    kb_tensor *x = make_var(ctx, {1, 10, 3, 30}, {2, 2}, KB_FLOAT64);
    kb_tensor *n = nullptr, *m = nullptr, *v = nullptr;
    int ax = 0;
    ASSERT_TRUE(ok(kb_normalize_batch_in_training(x, nullptr, nullptr, &ax, 1, 0.5, &n, &m, &v)));
    EXPECT_TRUE(allclose(eval_v(m), {2, 20}, 1e-15, 0));
    EXPECT_TRUE(allclose(eval_v(v), {1, 100}, 1e-15, 0));
    double a = 1 / std::sqrt(1.5), b = 10 / std::sqrt(100.5);
    EXPECT_TRUE(allclose(eval_v(n), {-a, -b, a, b}, 1e-14, 0));
}

TEST_F(Norm, LargeMeanKeepsVarianceAccurate) {
    // |mean| / std = 1e4: E[x^2] - E[x]^2 in float32 would lose every digit of the variance.
    for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64}) {
        auto noise = random_values(gen, 64 * 3, -1.0, 1.0);
        std::vector<double> x;
        for (double d : noise) x.push_back(1e4 + d);
        x = rounded(x, dt);
        kb_tensor *n = nullptr, *m = nullptr, *v = nullptr;
        int axes[2] = {0, 1};
        ASSERT_TRUE(ok(kb_normalize_batch_in_training(make_var(ctx, x, {8, 8, 3}, dt), nullptr, nullptr, axes, 2,
                                                      1e-3, &n, &m, &v)));
        BnRef r = ref_bn(x, {8, 8, 3}, 3u, {}, {}, 1e-3);
        EXPECT_TRUE(allclose(eval_v(v), r.var, dt == KB_FLOAT32 ? 1e-4 : 1e-10, 0)) << kb_dtype_name(dt);
        // normed uses the mean as stored: rounded to float32 at 1e4 it is off by up to 4.9e-4,
        // i.e. 1e-3 of a unit std; float64 keeps it exact
        EXPECT_TRUE(allclose(eval_v(n), r.normed, dt == KB_FLOAT32 ? Tol{0.0, 1e-3 / std::sqrt(r.var[0])}
                                                                  : Tol{1e-9, 1e-9}))
            << kb_dtype_name(dt);
    }
}

TEST_F(Norm, EmptyBatchGivesNanMoments) {
    // tf.nn.moments over an empty batch: 0 / 0
    kb_tensor *n = nullptr, *m = nullptr, *v = nullptr;
    int ax = 0;
    ASSERT_TRUE(ok(kb_normalize_batch_in_training(make_var(ctx, {}, {0, 3}, KB_FLOAT32), nullptr, nullptr, &ax, 1,
                                                  1e-3, &n, &m, &v)));
    const double nan = std::nan("");
    EXPECT_TRUE(allclose(eval_v(m), {nan, nan, nan}, 0, 0));
    EXPECT_TRUE(allclose(eval_v(v), {nan, nan, nan}, 0, 0));
    EXPECT_EQ(eval(n).shape, (Shape{0, 3}));
}

TEST_F(Norm, CompositePathGradients) {
    // Kept axes split (0 and 2): mean / var / gamma / beta reshaped to (2, 1, 4).
    auto build = [](kb_context *, const std::vector<kb_tensor *> &in) -> kb_tensor * {
        kb_tensor *n = nullptr, *m = nullptr, *v = nullptr;
        int ax = 1;
        if (kb_normalize_batch_in_training(in[0], in[1], in[2], &ax, 1, 1e-3, &n, &m, &v) != KB_OK) return nullptr;
        int64_t s[3] = {2, 1, 4};
        // every output takes part, so the gradients through mean and var are checked as well
        return kb_add(kb_add(n, kb_reshape(m, s, 3)), kb_reshape(kb_square(v), s, 3));
    };
    std::vector<Shape> shapes{{2, 3, 4}, {2, 4}, {2, 4}};
    std::vector<std::vector<double>> vals{random_values(gen, 24, -2, 2), random_values(gen, 8, 0.5, 1.5),
                                          random_values(gen, 8, -1, 1)};
    EXPECT_TRUE(grad_check(ctx, build, shapes, vals, gen));
}

TEST_F(Norm, FusedPathGradientThroughAllOutputs) {
    // normed, mean and var all reach the loss: bn_normalize's fused dx and bn_moments' rule add up.
    auto build = [](kb_context *, const std::vector<kb_tensor *> &in) -> kb_tensor * {
        kb_tensor *n = nullptr, *m = nullptr, *v = nullptr;
        int axes[3] = {0, 2, 3};
        if (kb_normalize_batch_in_training(in[0], in[1], in[2], axes, 3, 1e-3, &n, &m, &v) != KB_OK) return nullptr;
        int64_t s[4] = {1, 3, 1, 1};
        return kb_multiply(kb_add(n, kb_reshape(m, s, 4)), kb_reshape(kb_sqrt(v), s, 4));
    };
    std::vector<Shape> shapes{{2, 3, 2, 3}, {3}, {3}};
    std::vector<std::vector<double>> vals{random_values(gen, 36, -2, 2), random_values(gen, 3, 0.5, 1.5),
                                          random_values(gen, 3, -1, 1)};
    EXPECT_TRUE(grad_check(ctx, build, shapes, vals, gen));
}

TEST_F(Norm, BatchNormalizationMatchesLoops) {
    // x (3, 2, 4) with broadcastable mean / var / beta / gamma (Keras test_batchnorm shapes)
    for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64}) {
        Tol tol = dt == KB_FLOAT32 ? Tol{1e-5, 1e-6} : Tol{1e-12, 1e-12};
        auto x = rounded(random_values(gen, 24, -3, 3), dt);
        auto mean = rounded(random_values(gen, 2, -1, 1), dt), var = rounded(random_values(gen, 2, 0.5, 2), dt);
        auto beta = rounded(random_values(gen, 2, -1, 1), dt), gamma = rounded(random_values(gen, 2, 0.5, 2), dt);
        Shape ps{1, 2, 1};
        kb_tensor *y = kb_batch_normalization(make_var(ctx, x, {3, 2, 4}, dt), make_var(ctx, mean, ps, dt),
                                              make_var(ctx, var, ps, dt), make_var(ctx, beta, ps, dt),
                                              make_var(ctx, gamma, ps, dt), -1, 1e-3);
        std::vector<double> want;
        for (int64_t i = 0; i < 24; ++i) {
            size_t c = (size_t)((i / 4) % 2);
            want.push_back((x[(size_t)i] - mean[c]) / std::sqrt(var[c] + 1e-3) * gamma[c] + beta[c]);
        }
        EXPECT_TRUE(allclose(eval_v(y), want, tol)) << kb_dtype_name(dt);
        // None beta / gamma: 0 / 1
        kb_tensor *z = kb_batch_normalization(make_var(ctx, x, {3, 2, 4}, dt), make_var(ctx, mean, ps, dt),
                                              make_var(ctx, var, ps, dt), nullptr, nullptr, -1, 1e-3);
        for (int64_t i = 0; i < 24; ++i) {
            size_t c = (size_t)((i / 4) % 2);
            want[(size_t)i] = (x[(size_t)i] - mean[c]) / std::sqrt(var[c] + 1e-3);
        }
        EXPECT_TRUE(allclose(eval_v(z), want, tol)) << kb_dtype_name(dt);
    }
}

TEST_F(Norm, BatchNormalization4DAppliesPerChannelOfAxis) {
    // 4-D x, axis 1: (C,) parameters apply along axis 1 (Keras' fused NCHW path), axis -1 along
    // the last axis; (1, C, 1, 1) parameters give the same as (C,) with axis 1.
    const Shape s{2, 3, 2, 3};
    auto x = random_values(gen, 36, -3, 3);
    auto mean = random_values(gen, 3, -1, 1), var = random_values(gen, 3, 0.5, 2);
    auto beta = random_values(gen, 3, -1, 1), gamma = random_values(gen, 3, 0.5, 2);
    for (int axis : {1, -3, -1, 3}) {
        bool nchw = axis == 1 || axis == -3;
        for (const Shape &ps : {Shape{3}, nchw ? Shape{1, 3, 1, 1} : Shape{1, 1, 1, 3}}) {
            kb_tensor *y = kb_batch_normalization(make_var(ctx, x, s, KB_FLOAT64), make_var(ctx, mean, ps, KB_FLOAT64),
                                                  make_var(ctx, var, ps, KB_FLOAT64), make_var(ctx, beta, ps, KB_FLOAT64),
                                                  make_var(ctx, gamma, ps, KB_FLOAT64), axis, 1e-3);
            std::vector<double> want;
            for (int64_t i = 0; i < 36; ++i) {
                size_t c = (size_t)(nchw ? (i / 6) % 3 : i % 3);
                want.push_back((x[(size_t)i] - mean[c]) / std::sqrt(var[c] + 1e-3) * gamma[c] + beta[c]);
            }
            EXPECT_TRUE(allclose(eval_v(y), want, 1e-12, 1e-12)) << "axis " << axis << " " << shape_str(ps);
        }
    }
}

TEST_F(Norm, BadInput) {
    kb_tensor *x = make_var(ctx, random_values(gen, 24, -1, 1), {2, 3, 4});
    kb_tensor *n = nullptr, *m = nullptr, *v = nullptr;
    int ax = 0, bad_ax = 3, axes2[2] = {0, -3};
    EXPECT_EQ(kb_normalize_batch_in_training(nullptr, nullptr, nullptr, &ax, 1, 1e-3, &n, &m, &v), KB_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_normalize_batch_in_training", "x"}));
    kb_clear_error();
    EXPECT_EQ(kb_normalize_batch_in_training(x, nullptr, nullptr, &ax, 1, 1e-3, nullptr, &m, &v),
              KB_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_normalize_batch_in_training", "outputs"}));
    kb_clear_error();
    EXPECT_EQ(kb_normalize_batch_in_training(x, nullptr, nullptr, &bad_ax, 1, 1e-3, &n, &m, &v), KB_ERR_AXIS);
    EXPECT_TRUE(has_error(KB_ERR_AXIS, {"kb_normalize_batch_in_training", "axis 3"}));
    kb_clear_error();
    EXPECT_EQ(kb_normalize_batch_in_training(x, nullptr, nullptr, axes2, 2, 1e-3, &n, &m, &v), KB_ERR_AXIS);
    EXPECT_TRUE(has_error(KB_ERR_AXIS, {"repeated"}));
    kb_clear_error();
    EXPECT_EQ(kb_normalize_batch_in_training(x, nullptr, nullptr, &ax, 1, -1.0, &n, &m, &v), KB_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"epsilon"}));
    kb_clear_error();
    kb_tensor *xi = kb_cast(x, KB_INT32);
    EXPECT_EQ(kb_normalize_batch_in_training(xi, nullptr, nullptr, &ax, 1, 1e-3, &n, &m, &v), KB_ERR_DTYPE);
    EXPECT_TRUE(has_error(KB_ERR_DTYPE, {"kb_normalize_batch_in_training", "x"}));
    kb_clear_error();
    // gamma of the wrong size for the broadcast shape (1, 3, 4) of axes [0]
    kb_tensor *g5 = make_var(ctx, {1, 2, 3, 4, 5}, {5});
    EXPECT_NE(kb_normalize_batch_in_training(x, g5, nullptr, &ax, 1, 1e-3, &n, &m, &v), KB_OK);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"reshape"}));
    EXPECT_EQ(n, nullptr);
    kb_clear_error();
    // gamma of another dtype
    kb_tensor *g64 = make_var(ctx, random_values(gen, 12, 0.5, 1), {3, 4}, KB_FLOAT64);
    EXPECT_EQ(kb_normalize_batch_in_training(x, g64, nullptr, &ax, 1, 1e-3, &n, &m, &v), KB_ERR_DTYPE);
    kb_clear_error();
    // batch_normalization
    kb_tensor *mv = make_var(ctx, {0.1, 0.2, 0.3, 0.4}, {4});
    EXPECT_EQ(kb_batch_normalization(x, nullptr, mv, nullptr, nullptr, -1, 1e-3), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_batch_normalization", "mean"}));
    kb_clear_error();
    EXPECT_EQ(kb_batch_normalization(x, mv, mv, nullptr, nullptr, -1, -1e-3), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_batch_normalization", "epsilon"}));
    kb_clear_error();
    kb_tensor *m3 = make_var(ctx, {0.1, 0.2, 0.3}, {3});
    EXPECT_EQ(kb_batch_normalization(x, m3, mv, nullptr, nullptr, -1, 1e-3), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE));
    kb_clear_error();
    // the session stays usable
    ASSERT_TRUE(ok(kb_normalize_batch_in_training(x, nullptr, nullptr, &ax, 1, 1e-3, &n, &m, &v)));
    EXPECT_EQ(eval(m).shape, (Shape{3, 4}));
}

}  // namespace
