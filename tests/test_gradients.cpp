// Gradients: float64 finite differences on the CPU for every differentiable op case, and the
// Keras gradient semantics (test_gradient, None for unconnected variables, stop_gradient,
// non-scalar losses, second derivatives).
#include <cmath>

#include "op_cases.h"

namespace {

using namespace kbt;

class OpGrad : public KbTest, public ::testing::WithParamInterface<size_t> {};

TEST_P(OpGrad, FiniteDifferencesFloat64) {
    const OpCase &c = op_cases()[GetParam()];
    auto in = case_inputs(c, gen);
    {   // A gradient rule that says "not implemented yet" is reported as a skip, not hidden.
        std::vector<kb_tensor *> probe;
        for (size_t i = 0; i < c.shapes.size(); ++i) probe.push_back(make_var(ctx, in[i], c.shapes[i], KB_FLOAT64));
        kb_tensor *out = c.build(ctx, probe);
        if (!out && kb_last_status() == KB_ERR_NOT_SUPPORTED)
            GTEST_SKIP() << c.name << ": " << kb_last_error();
        if (out) {
            std::vector<kb_tensor *> g(probe.size(), nullptr);
            kb_status s = kb_gradients(kb_sum(out, nullptr, 0, 0), probe.data(), (int)probe.size(), g.data());
            if (s == KB_ERR_NOT_SUPPORTED) GTEST_SKIP() << c.name << ": " << kb_last_error();
        }
        kb_clear_error();
    }
    // print_tensor prints on every run: keep the log readable.
    const bool quiet = c.op == KB_OP_PRINT_TENSOR;
    if (quiet) ::testing::internal::CaptureStdout();
    ::testing::AssertionResult r = grad_check(ctx, c.build, c.shapes, in, gen);
    if (quiet) ::testing::internal::GetCapturedStdout();
    EXPECT_TRUE(r) << c.name;
}

std::vector<size_t> grad_case_indices() {
    std::vector<size_t> idx;
    for (size_t i = 0; i < op_cases().size(); ++i)
        if (op_cases()[i].grad) idx.push_back(i);
    return idx;
}

INSTANTIATE_TEST_SUITE_P(Cases, OpGrad, ::testing::ValuesIn(grad_case_indices()),
                         [](const ::testing::TestParamInfo<size_t> &p) {
                             return op_cases()[p.param].name;
                         });

class Gradients : public KbTest {};

// Keras test_gradient: exp = x * e^x; d sum(exp) / d exp = 1; adding stop_gradient(loss) to the
// loss leaves the gradient unchanged.
TEST_F(Gradients, KerasTestGradient) {
    for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64}) {
        std::vector<double> xv = random_values(gen, 12, -1.0, 1.0);
        kb_tensor *x = make_var(ctx, xv, {3, 4}, dt);
        kb_tensor *ex = kb_multiply(x, kb_exp(x));
        kb_tensor *loss = kb_sum(ex, nullptr, 0, 0);
        kb_tensor *zero_loss = kb_add(loss, kb_stop_gradient(loss));
        kb_tensor *g1 = nullptr, *g2 = nullptr;
        ASSERT_TRUE(ok(kb_gradients(loss, &ex, 1, &g1)));
        ASSERT_TRUE(ok(kb_gradients(zero_loss, &ex, 1, &g2)));
        ASSERT_NE(g1, nullptr);
        ASSERT_NE(g2, nullptr);
        std::vector<double> ones(12, 1.0);
        EXPECT_TRUE(allclose(eval_v(g1), ones, default_tol(dt)));
        EXPECT_TRUE(allclose(eval_v(g2), ones, default_tol(dt)));
        // And through to x: d sum(x e^x)/dx = (1 + x) e^x.
        kb_tensor *gx = nullptr;
        ASSERT_TRUE(ok(kb_gradients(zero_loss, &x, 1, &gx)));
        std::vector<double> want(12);
        for (int i = 0; i < 12; ++i) {
            double xi = dt == KB_FLOAT32 ? (double)(float)xv[i] : xv[i];
            want[i] = (1 + xi) * std::exp(xi);
        }
        EXPECT_TRUE(allclose(eval_v(gx), want, dt == KB_FLOAT32 ? Tol{1e-5, 1e-6} : Tol{1e-12, 1e-12}));
    }
}

TEST_F(Gradients, UnconnectedVariableGetsNull) {
    kb_tensor *a = make_var(ctx, {1, 2, 3}, {3});
    kb_tensor *b = make_var(ctx, {4, 5, 6}, {3});
    kb_tensor *loss = kb_sum(kb_square(a), nullptr, 0, 0);
    kb_tensor *vars[2] = {a, b};
    kb_tensor *g[2] = {nullptr, reinterpret_cast<kb_tensor *>(0x1)};
    ASSERT_TRUE(ok(kb_gradients(loss, vars, 2, g)));
    ASSERT_NE(g[0], nullptr);
    EXPECT_EQ(g[1], nullptr) << "b is not connected to the loss: Keras returns None";
    EXPECT_TRUE(allclose(eval_v(g[0]), {2, 4, 6}, default_tol(KB_FLOAT32)));
}

TEST_F(Gradients, StopGradientBlocks) {
    kb_tensor *x = make_var(ctx, {1, -2, 3}, {3}, KB_FLOAT64);
    kb_tensor *loss = kb_sum(kb_multiply(kb_stop_gradient(kb_square(x)), x), nullptr, 0, 0);
    kb_tensor *g = nullptr;
    ASSERT_TRUE(ok(kb_gradients(loss, &x, 1, &g)));
    ASSERT_NE(g, nullptr);
    // d/dx (stop(x^2) * x) = x^2 only (the stopped factor is a constant).
    EXPECT_TRUE(allclose(eval_v(g), {1, 4, 9}, default_tol(KB_FLOAT64)));
    // A loss that only reaches x through stop_gradient: unconnected (NULL) or zeros.
    kb_tensor *l2 = kb_sum(kb_stop_gradient(kb_square(x)), nullptr, 0, 0);
    kb_tensor *g2 = nullptr;
    ASSERT_TRUE(ok(kb_gradients(l2, &x, 1, &g2)));
    if (g2) {
        EXPECT_TRUE(allclose(eval_v(g2), {0, 0, 0}, 0, 0));
    }
}

// gradients(y, x) with a non-scalar y is the gradient of sum(y).
TEST_F(Gradients, NonScalarLossIsSummed) {
    std::vector<double> xv = random_values(gen, 6, -2.0, 2.0);
    kb_tensor *x = make_var(ctx, xv, {2, 3}, KB_FLOAT64);
    kb_tensor *y = kb_multiply(kb_square(x), x);  // x^3, shape (2,3)
    kb_tensor *g1 = nullptr, *g2 = nullptr;
    ASSERT_TRUE(ok(kb_gradients(y, &x, 1, &g1)));
    ASSERT_TRUE(ok(kb_gradients(kb_sum(y, nullptr, 0, 0), &x, 1, &g2)));
    std::vector<double> want(6);
    for (int i = 0; i < 6; ++i) want[i] = 3 * xv[i] * xv[i];
    EXPECT_TRUE(allclose(eval_v(g1), want, default_tol(KB_FLOAT64)));
    EXPECT_TRUE(allclose(eval_v(g2), want, default_tol(KB_FLOAT64)));
}

// Gradient rules are graph ops, so a gradient can be differentiated again:
// d/dx sum(d/dx sum(x^3)) = d/dx sum(3x^2) = 6x.
TEST_F(Gradients, SecondDerivative) {
    std::vector<double> xv = random_values(gen, 5, -2.0, 2.0);
    kb_tensor *x = make_var(ctx, xv, {5}, KB_FLOAT64);
    kb_tensor *loss = kb_sum(kb_multiply(kb_square(x), x), nullptr, 0, 0);
    kb_tensor *g = nullptr, *gg = nullptr;
    ASSERT_TRUE(ok(kb_gradients(loss, &x, 1, &g)));
    ASSERT_NE(g, nullptr);
    ASSERT_TRUE(ok(kb_gradients(kb_sum(g, nullptr, 0, 0), &x, 1, &gg)));
    ASSERT_NE(gg, nullptr);
    std::vector<double> w1(5), w2(5);
    for (int i = 0; i < 5; ++i) {
        w1[i] = 3 * xv[i] * xv[i];
        w2[i] = 6 * xv[i];
    }
    EXPECT_TRUE(allclose(eval_v(g), w1, default_tol(KB_FLOAT64)));
    EXPECT_TRUE(allclose(eval_v(gg), w2, 1e-12, 1e-12));
}

// Second derivative through the MLP ops: d/dx sum(d/dx sum(softmax(x) * w)) by finite differences.
TEST_F(Gradients, SecondDerivativeFiniteDifferences) {
    Builder b = [](kb_context *, const std::vector<kb_tensor *> &in) -> kb_tensor * {
        kb_tensor *l = kb_sum(kb_multiply(kb_sigmoid(in[0]), in[1]), nullptr, 0, 0);
        kb_tensor *g = nullptr;
        if (kb_gradients(l, &in[0], 1, &g) != KB_OK) return nullptr;
        return g;
    };
    auto x = random_values(gen, 6, -2.0, 2.0), w = random_values(gen, 6, -1.0, 1.0);
    EXPECT_TRUE(grad_check(ctx, b, {{2, 3}, {2, 3}}, {x, w}, gen));
}

TEST_F(Gradients, GradientOfSharedSubexpressionAccumulates) {
    // y = x*x + x: the two uses of x add up: dy/dx = 2x + 1.
    kb_tensor *x = make_var(ctx, {0.5, -1.5, 2.0}, {3}, KB_FLOAT64);
    kb_tensor *loss = kb_sum(kb_add(kb_multiply(x, x), x), nullptr, 0, 0);
    kb_tensor *g = nullptr;
    ASSERT_TRUE(ok(kb_gradients(loss, &x, 1, &g)));
    EXPECT_TRUE(allclose(eval_v(g), {2.0, -2.0, 5.0}, default_tol(KB_FLOAT64)));
}

TEST_F(Gradients, GradientWrtPlaceholderAndInFunction) {
    // Gradients are ordinary tensors: they compile into a function with placeholders.
    int64_t shape[2] = {KB_NONE, 2};
    kb_tensor *p = kb_placeholder(ctx, shape, 2, KB_FLOAT64, "p");
    kb_tensor *w = make_var(ctx, {1.0, -2.0}, {2}, KB_FLOAT64);
    kb_tensor *loss = kb_sum(kb_square(kb_multiply(p, w)), nullptr, 0, 0);
    kb_tensor *g = nullptr;
    ASSERT_TRUE(ok(kb_gradients(loss, &w, 1, &g)));
    std::vector<double> pv = {1, 2, 3, 4, 5, 6};
    auto bytes = to_bytes(pv, KB_FLOAT64);
    Shape ps = {3, 2};
    RunResult r = run_function(ctx, {g}, KB_DEVICE_CPU, {p}, {feed_of(bytes, KB_FLOAT64, ps)});
    ASSERT_EQ(r.status, KB_OK) << r.error;
    // d/dw sum((p w)^2) = 2 w sum_rows(p^2)
    double s0 = 1 + 9 + 25, s1 = 4 + 16 + 36;
    EXPECT_TRUE(allclose(r.outs[0].v, {2 * 1.0 * s0, 2 * -2.0 * s1}, default_tol(KB_FLOAT64)));
}

}  // namespace
