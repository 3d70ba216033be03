// kb_function: feeds with unknown dims (plan cache), updates after outputs, applied together,
// update ops, determinism, feed validation, unfed placeholders, dtype casts of feeds.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kb_test_util.h"

namespace {

using namespace kbt;

class Function : public KbTest {
protected:
    // Context still works: build and evaluate something new.
    void expect_usable() {
        kb_tensor *a = make_const(ctx, {1, 2, 3}, {3});
        kb_tensor *b = kb_multiply(a, a);
        ASSERT_NE(b, nullptr) << kb_last_error();
        EXPECT_TRUE(allclose(eval_v(b), {1, 4, 9}, 0, 0)) << "context unusable after an error";
    }
};

TEST_F(Function, UnknownBatchTwoSizes) {
    int64_t ps[2] = {KB_NONE, 3};
    kb_tensor *x = kb_placeholder(ctx, ps, 2, KB_FLOAT32, "x");
    ASSERT_NE(x, nullptr) << kb_last_error();
    kb_tensor *w = make_var(ctx, {1, 0, 2, -1, 0.5, 3}, {3, 2});
    kb_tensor *y = kb_relu(kb_dot(x, w), 0, INFINITY, 0);
    int ax = 1;
    kb_tensor *s = kb_sum(y, &ax, 1, 0);
    kb_tensor *outs[2] = {y, s};
    kb_function *fn = kb_function_new(ctx, &x, 1, outs, 2, nullptr, 0, KB_DEVICE_CPU);
    ASSERT_NE(fn, nullptr) << kb_last_error();
    EXPECT_EQ(kb_function_device(fn), KB_DEVICE_CPU);
    for (int64_t batch : {2, 5, 2, 1, 5}) {
        std::vector<double> xv = random_values(gen, (size_t)batch * 3, -2, 2);
        auto bytes = to_bytes(xv, KB_FLOAT32);
        xv = from_bytes(bytes.data(), xv.size(), KB_FLOAT32);
        Shape fsh = {batch, 3};
        kb_feed f = feed_of(bytes, KB_FLOAT32, fsh);
        ASSERT_TRUE(ok(kb_function_call(fn, &f, 1))) << "batch " << batch;
        const double W[3][2] = {{1, 0}, {2, -1}, {0.5, 3}};
        std::vector<double> want_y, want_s;
        for (int64_t i = 0; i < batch; ++i) {
            double rs = 0;
            for (int j = 0; j < 2; ++j) {
                double acc = 0;
                for (int k = 0; k < 3; ++k) acc += xv[i * 3 + k] * W[k][j];
                acc = std::max(acc, 0.0);
                want_y.push_back(acc);
                rs += acc;
            }
            want_s.push_back(rs);
        }
        kb_dtype dt;
        int rank;
        int64_t dims[KB_MAX_RANK];
        size_t nbytes;
        const void *p = kb_function_output(fn, 0, &dt, &rank, dims, &nbytes);
        ASSERT_NE(p, nullptr) << kb_last_error();
        EXPECT_EQ(dt, KB_FLOAT32);
        ASSERT_EQ(rank, 2);
        EXPECT_EQ(dims[0], batch);
        EXPECT_EQ(dims[1], 2);
        EXPECT_EQ(nbytes, (size_t)batch * 2 * sizeof(float));
        EXPECT_TRUE(allclose(from_bytes(p, (size_t)batch * 2, KB_FLOAT32), want_y, 1e-5, 1e-5)) << batch;
        std::vector<float> sv((size_t)batch);
        ASSERT_TRUE(ok(kb_function_get_output(fn, 1, sv.data(), sv.size() * sizeof(float))));
        EXPECT_TRUE(allclose(std::vector<double>(sv.begin(), sv.end()), want_s, 1e-5, 1e-5)) << batch;
    }
    kb_function_free(fn);
}

// Keras test_function: f = function([y], [square(x) + y], updates=[update(x, x*2)]).
TEST_F(Function, UpdatesRunAfterOutputs) {
    kb_tensor *x = make_var(ctx, {1, 2, 3}, {3}, KB_FLOAT32, "x");
    int64_t ys[1] = {3};
    kb_tensor *y = kb_placeholder(ctx, ys, 1, KB_FLOAT32, "y");
    kb_tensor *out = kb_add(kb_square(x), y);
    kb_tensor *two = kb_constant_scalar(ctx, 2.0, KB_FLOAT32, nullptr, 0);
    kb_tensor *upd = kb_update(x, kb_multiply(kb_identity(x), two));
    ASSERT_NE(upd, nullptr) << kb_last_error();
    kb_function *fn = kb_function_new(ctx, &y, 1, &out, 1, &upd, 1, KB_DEVICE_CPU);
    ASSERT_NE(fn, nullptr) << kb_last_error();
    std::vector<float> yv = {10, 20, 30};
    int64_t fs[1] = {3};
    kb_feed f = {yv.data(), yv.size() * sizeof(float), KB_FLOAT32, 1, fs, nullptr};
    ASSERT_TRUE(ok(kb_function_call(fn, &f, 1)));
    std::vector<float> o(3);
    ASSERT_TRUE(ok(kb_function_get_output(fn, 0, o.data(), sizeof(float) * 3)));
    EXPECT_TRUE(allclose({o[0], o[1], o[2]}, {11, 24, 39}, 0, 0)) << "outputs see the old x";
    EXPECT_TRUE(allclose(get_v(x), {2, 4, 6}, 0, 0)) << "x doubled after the call";
    ASSERT_TRUE(ok(kb_function_call(fn, &f, 1)));
    ASSERT_TRUE(ok(kb_function_get_output(fn, 0, o.data(), sizeof(float) * 3)));
    EXPECT_TRUE(allclose({o[0], o[1], o[2]}, {14, 36, 66}, 0, 0));
    EXPECT_TRUE(allclose(get_v(x), {4, 8, 12}, 0, 0));
    kb_function_free(fn);
}

TEST_F(Function, UpdatesAreAppliedTogether) {
    kb_tensor *a = make_var(ctx, {1, 2}, {2}, KB_FLOAT64, "a");
    kb_tensor *b = make_var(ctx, {3, 4}, {2}, KB_FLOAT64, "b");
    kb_tensor *ups[2] = {kb_update(a, kb_identity(b)), kb_update(b, kb_identity(a))};
    kb_function *fn = kb_function_new(ctx, nullptr, 0, nullptr, 0, ups, 2, KB_DEVICE_CPU);
    ASSERT_NE(fn, nullptr) << kb_last_error();
    ASSERT_TRUE(ok(kb_function_call(fn, nullptr, 0)));
    EXPECT_TRUE(allclose(get_v(a), {3, 4}, 0, 0));
    EXPECT_TRUE(allclose(get_v(b), {1, 2}, 0, 0)) << "b gets a's old value: a swap";
    ASSERT_TRUE(ok(kb_function_call(fn, nullptr, 0)));
    EXPECT_TRUE(allclose(get_v(a), {1, 2}, 0, 0));
    EXPECT_TRUE(allclose(get_v(b), {3, 4}, 0, 0));
    kb_function_free(fn);
}

TEST_F(Function, UpdateAddSubMovingAverage) {
    kb_tensor *x = make_var(ctx, {1, 2, 3}, {3}, KB_FLOAT64);
    kb_tensor *y = make_var(ctx, {10, 20, 30}, {3}, KB_FLOAT64);
    kb_tensor *z = make_var(ctx, {0, 0, 0}, {3}, KB_FLOAT64);
    kb_tensor *inc = make_const(ctx, {0.5, 1, 1.5}, {3}, KB_FLOAT64);
    kb_tensor *val = make_const(ctx, {10, 10, 10}, {3}, KB_FLOAT64);
    kb_tensor *ups[3] = {kb_update_add(x, inc), kb_update_sub(y, inc), kb_moving_average_update(z, val, 0.9)};
    kb_function *fn = kb_function_new(ctx, nullptr, 0, nullptr, 0, ups, 3, KB_DEVICE_CPU);
    ASSERT_NE(fn, nullptr) << kb_last_error();
    ASSERT_TRUE(ok(kb_function_call(fn, nullptr, 0)));
    EXPECT_TRUE(allclose(get_v(x), {1.5, 3, 4.5}, 0, 0));
    EXPECT_TRUE(allclose(get_v(y), {9.5, 19, 28.5}, 0, 0));
    // x <- x - (x - value) * (1 - momentum), no zero-debias: 0 - (0 - 10) * 0.1 = 1.
    EXPECT_TRUE(allclose(get_v(z), {1, 1, 1}, 1e-12, 1e-12));
    ASSERT_TRUE(ok(kb_function_call(fn, nullptr, 0)));
    EXPECT_TRUE(allclose(get_v(x), {2, 4, 6}, 0, 0));
    EXPECT_TRUE(allclose(get_v(y), {9, 18, 27}, 0, 0));
    EXPECT_TRUE(allclose(get_v(z), {1.9, 1.9, 1.9}, 1e-12, 1e-12));
    kb_function_free(fn);
}

TEST_F(Function, EvalOfAnUpdateAppliesIt) {
    kb_tensor *x = make_var(ctx, {1, 2}, {2});
    kb_tensor *one = kb_constant_scalar(ctx, 1.0, KB_FLOAT32, nullptr, 0);
    kb_tensor *u = kb_update_add(x, one);
    ASSERT_NE(u, nullptr) << kb_last_error();
    EXPECT_TRUE(allclose(eval_v(u), {2, 3}, 0, 0)) << "the update's value is the new value";
    EXPECT_TRUE(allclose(get_v(x), {2, 3}, 0, 0));
    EXPECT_TRUE(allclose(eval_v(u), {3, 4}, 0, 0));
    EXPECT_TRUE(allclose(get_v(x), {3, 4}, 0, 0));
}

TEST_F(Function, UpdateOutputIsNewValue) {
    kb_tensor *x = make_var(ctx, {1, 2}, {2});
    kb_tensor *u = kb_update(x, make_const(ctx, {5, 6}, {2}));
    RunResult r = run_function(ctx, {u}, KB_DEVICE_CPU);
    ASSERT_EQ(r.status, KB_OK) << r.error;
    EXPECT_TRUE(allclose(r.outs[0].v, {5, 6}, 0, 0));
    EXPECT_TRUE(allclose(get_v(x), {5, 6}, 0, 0));
}

// Outputs that alias a variable's buffer (the variable itself, a reshape of it) still show the
// old value when an update of that variable runs in the same call.
TEST_F(Function, AliasedOutputsSeeOldValues) {
    kb_tensor *x = make_var(ctx, {1, 2, 3, 4}, {2, 2}, KB_FLOAT64, "x");
    int64_t flat[1] = {4};
    kb_tensor *r = kb_reshape(x, flat, 1);
    kb_tensor *t = kb_transpose(x);
    kb_tensor *two = kb_constant_scalar(ctx, 2.0, KB_FLOAT64, nullptr, 0);
    kb_tensor *u = kb_update(x, kb_multiply(x, two));
    RunResult res = run_function(ctx, {x, r, t, x}, KB_DEVICE_CPU, {}, {}, {u});
    ASSERT_EQ(res.status, KB_OK) << res.error;
    EXPECT_TRUE(allclose(res.outs[0].v, {1, 2, 3, 4}, 0, 0)) << "the variable as an output";
    EXPECT_TRUE(allclose(res.outs[1].v, {1, 2, 3, 4}, 0, 0)) << "a reshape of the variable";
    EXPECT_TRUE(allclose(res.outs[2].v, {1, 3, 2, 4}, 0, 0)) << "a transpose of the variable";
    EXPECT_TRUE(allclose(res.outs[3].v, {1, 2, 3, 4}, 0, 0)) << "the same output twice";
    EXPECT_EQ(res.outs[1].shape, Shape{4});
    EXPECT_TRUE(allclose(get_v(x), {2, 4, 6, 8}, 0, 0));
}

// Outputs are fetched lazily (read after the call), yet read back what the call computed: a
// variable output is captured before a later set_value, and another function's call in between
// does not disturb an arena output.
TEST_F(Function, LazyOutputsKeepTheCallsValues) {
    kb_tensor *x = make_var(ctx, {1, 2, 3}, {3}, KB_FLOAT64, "x");
    kb_tensor *two = kb_constant_scalar(ctx, 2.0, KB_FLOAT64, nullptr, 0);
    kb_tensor *y = kb_multiply(x, two);
    kb_function *f = kb_function_new(ctx, nullptr, 0, std::vector<kb_tensor *>{y, x}.data(), 2, nullptr, 0,
                                     KB_DEVICE_CPU);
    ASSERT_NE(f, nullptr) << kb_last_error();
    ASSERT_TRUE(ok(kb_function_call(f, nullptr, 0)));
    std::vector<double> nv = {10, 20, 30};
    ASSERT_TRUE(ok(kb_set_value(x, nv.data(), sizeof(double) * 3)));
    RunResult other = run_function(ctx, {kb_add(x, two)}, KB_DEVICE_CPU);
    ASSERT_EQ(other.status, KB_OK) << other.error;
    std::vector<double> o(3);
    ASSERT_TRUE(ok(kb_function_get_output(f, 0, o.data(), sizeof(double) * 3)));
    EXPECT_TRUE(allclose(o, {2, 4, 6}, 0, 0));
    ASSERT_TRUE(ok(kb_function_get_output(f, 1, o.data(), sizeof(double) * 3)));
    EXPECT_TRUE(allclose(o, {1, 2, 3}, 0, 0)) << "the variable output holds its value at the call";
    kb_function_free(f);
}

TEST_F(Function, PlaceholderAsOutput) {
    int64_t ps[1] = {KB_NONE};
    kb_tensor *p = kb_placeholder(ctx, ps, 1, KB_FLOAT32, "p");
    int64_t flat[2] = {-1, 1};
    kb_tensor *r = kb_reshape(p, flat, 2);
    std::vector<unsigned char> b = to_bytes({1.5, 2.5, 3.5}, KB_FLOAT32);
    Shape fs = {3};
    RunResult res = run_function(ctx, {p, r}, KB_DEVICE_CPU, {p}, {feed_of(b, KB_FLOAT32, fs)});
    ASSERT_EQ(res.status, KB_OK) << res.error;
    EXPECT_TRUE(allclose(res.outs[0].v, {1.5, 2.5, 3.5}, 0, 0));
    EXPECT_EQ(res.outs[1].shape, (Shape{3, 1}));
    EXPECT_TRUE(allclose(res.outs[1].v, {1.5, 2.5, 3.5}, 0, 0));
}

// A long graph with shared subexpressions and branches (buffer reuse by lifetime must not
// overwrite a value still needed) against a reference loop.
TEST_F(Function, LongGraphWithBranchesMatchesReference) {
    auto xv = random_values(gen, 12, -1, 1);
    kb_tensor *x = make_var(ctx, xv, {3, 4}, KB_FLOAT64);
    kb_tensor *half = kb_constant_scalar(ctx, 0.5, KB_FLOAT64, nullptr, 0);
    kb_tensor *y = x;
    std::vector<kb_tensor *> keep;
    std::vector<double> ref = xv;
    std::vector<std::vector<double>> refs;
    for (int i = 0; i < 12; ++i) {
        kb_tensor *a = kb_multiply(y, half);
        kb_tensor *b = kb_sigmoid(y);
        y = kb_add(kb_subtract(a, b), kb_square(a));
        for (double &v : ref) {
            double av = v * 0.5, bv = 1 / (1 + std::exp(-v));
            v = (av - bv) + av * av;
        }
        if (i % 4 == 3) {
            keep.push_back(y);
            refs.push_back(ref);
        }
    }
    int ax = 1;
    kb_tensor *s = kb_sum(kb_add(y, keep[0]), &ax, 1, 0);
    std::vector<double> sref(3, 0.0);
    for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 4; ++c) sref[r] += ref[r * 4 + c] + refs[0][r * 4 + c];
    std::vector<kb_tensor *> outs = keep;
    outs.push_back(s);
    RunResult res = run_function(ctx, outs, KB_DEVICE_CPU);
    ASSERT_EQ(res.status, KB_OK) << res.error;
    for (size_t i = 0; i < keep.size(); ++i) EXPECT_TRUE(allclose(res.outs[i].v, refs[i], 1e-12, 1e-14)) << i;
    EXPECT_TRUE(allclose(res.outs.back().v, sref, 1e-12, 1e-14));
}

TEST_F(Function, BitwiseDeterministic) {
    const int64_t n = 4096;
    auto av = random_values(gen, (size_t)n, -1, 1);
    kb_tensor *a = make_var(ctx, av, {64, 64});
    kb_tensor *m = kb_dot(a, a);
    kb_tensor *s = kb_sum(kb_exp(m), nullptr, 0, 0);
    kb_tensor *sm = kb_softmax(m, -1);
    kb_tensor *outs[2] = {s, sm};
    kb_function *fn = kb_function_new(ctx, nullptr, 0, outs, 2, nullptr, 0, KB_DEVICE_CPU);
    ASSERT_NE(fn, nullptr) << kb_last_error();
    std::vector<float> s1(1), s2(1), m1(n), m2(n);
    ASSERT_TRUE(ok(kb_function_call(fn, nullptr, 0)));
    ASSERT_TRUE(ok(kb_function_get_output(fn, 0, s1.data(), sizeof(float))));
    ASSERT_TRUE(ok(kb_function_get_output(fn, 1, m1.data(), n * sizeof(float))));
    ASSERT_TRUE(ok(kb_function_call(fn, nullptr, 0)));
    ASSERT_TRUE(ok(kb_function_get_output(fn, 0, s2.data(), sizeof(float))));
    ASSERT_TRUE(ok(kb_function_get_output(fn, 1, m2.data(), n * sizeof(float))));
    EXPECT_EQ(std::memcmp(s1.data(), s2.data(), sizeof(float)), 0);
    EXPECT_EQ(std::memcmp(m1.data(), m2.data(), n * sizeof(float)), 0);
    kb_function_free(fn);
    // A second function of the same graph gives the same bits.
    RunResult r = run_function(ctx, {s}, KB_DEVICE_CPU);
    ASSERT_EQ(r.status, KB_OK) << r.error;
    EXPECT_EQ((float)r.outs[0].v[0], s1[0]);
}

TEST_F(Function, OutputBeforeFirstCall) {
    kb_tensor *a = make_var(ctx, {1, 2}, {2});
    kb_tensor *b = kb_square(a);
    kb_function *fn = kb_function_new(ctx, nullptr, 0, &b, 1, nullptr, 0, KB_DEVICE_CPU);
    ASSERT_NE(fn, nullptr) << kb_last_error();
    float o[2];
    kb_clear_error();
    EXPECT_EQ(kb_function_get_output(fn, 0, o, sizeof o), KB_ERR_INVALID_STATE);
    kb_clear_error();
    EXPECT_EQ(kb_function_output(fn, 0, nullptr, nullptr, nullptr, nullptr), nullptr);
    EXPECT_EQ(kb_last_status(), KB_ERR_INVALID_STATE);
    kb_function_free(fn);
}

TEST_F(Function, OutputsAndGetOutputSizes) {
    kb_tensor *a = make_var(ctx, {1, 2, 3, 4}, {2, 2});
    kb_tensor *b = kb_transpose(a);
    kb_function *fn = kb_function_new(ctx, nullptr, 0, &b, 1, nullptr, 0, KB_DEVICE_CPU);
    ASSERT_NE(fn, nullptr) << kb_last_error();
    ASSERT_TRUE(ok(kb_function_call(fn, nullptr, 0)));
    float o[4];
    kb_clear_error();
    EXPECT_EQ(kb_function_get_output(fn, 0, o, sizeof(float) * 3), KB_ERR_SHAPE);
    EXPECT_EQ(kb_last_status(), KB_ERR_SHAPE);
    kb_clear_error();
    EXPECT_EQ(kb_function_get_output(fn, 1, o, sizeof o), KB_ERR_INVALID_ARGUMENT) << "index out of range";
    kb_clear_error();
    EXPECT_EQ(kb_function_output(fn, 5, nullptr, nullptr, nullptr, nullptr), nullptr);
    EXPECT_NE(kb_last_status(), KB_OK);
    ASSERT_TRUE(ok(kb_function_get_output(fn, 0, o, sizeof o)));
    EXPECT_TRUE(allclose({o[0], o[1], o[2], o[3]}, {1, 3, 2, 4}, 0, 0));
    // Output pointer is valid with NULL out-parameters.
    EXPECT_NE(kb_function_output(fn, 0, nullptr, nullptr, nullptr, nullptr), nullptr);
    kb_function_free(fn);
    kb_function_free(nullptr);
}

class FeedErrors : public Function {
protected:
    void SetUp() override {
        Function::SetUp();
        int64_t ps[2] = {KB_NONE, 3};
        x = kb_placeholder(ctx, ps, 2, KB_FLOAT32, "x");
        ASSERT_NE(x, nullptr);
        kb_tensor *y = kb_sum(x, nullptr, 0, 0);
        fn = kb_function_new(ctx, &x, 1, &y, 1, nullptr, 0, KB_DEVICE_CPU);
        ASSERT_NE(fn, nullptr) << kb_last_error();
        kb_clear_error();
    }
    void TearDown() override {
        kb_function_free(fn);
        Function::TearDown();
    }
    // After a rejected call, a good call still works.
    void expect_good_call() {
        std::vector<float> v = {1, 2, 3, 4, 5, 6};
        int64_t s[2] = {2, 3};
        kb_feed f = {v.data(), v.size() * sizeof(float), KB_FLOAT32, 2, s, nullptr};
        ASSERT_TRUE(ok(kb_function_call(fn, &f, 1)));
        float out = 0;
        ASSERT_TRUE(ok(kb_function_get_output(fn, 0, &out, sizeof out)));
        EXPECT_EQ(out, 21.0f);
        expect_usable();
    }
    kb_tensor *x = nullptr;
    kb_function *fn = nullptr;
    std::vector<float> data = std::vector<float>(6, 1.0f);
};

TEST_F(FeedErrors, WrongByteCount) {
    int64_t s[2] = {2, 3};
    kb_feed f = {data.data(), 5 * sizeof(float), KB_FLOAT32, 2, s, nullptr};
    EXPECT_EQ(kb_function_call(fn, &f, 1), KB_ERR_SHAPE);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE));
    expect_good_call();
}

TEST_F(FeedErrors, WrongRank) {
    int64_t s[3] = {2, 3, 1};
    kb_feed f = {data.data(), 6 * sizeof(float), KB_FLOAT32, 3, s, nullptr};
    EXPECT_EQ(kb_function_call(fn, &f, 1), KB_ERR_SHAPE);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE));
    expect_good_call();
}

TEST_F(FeedErrors, WrongKnownDim) {
    int64_t s[2] = {3, 2};
    kb_feed f = {data.data(), 6 * sizeof(float), KB_FLOAT32, 2, s, nullptr};
    EXPECT_EQ(kb_function_call(fn, &f, 1), KB_ERR_SHAPE);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE));
    expect_good_call();
}

TEST_F(FeedErrors, WrongFeedCount) {
    EXPECT_EQ(kb_function_call(fn, nullptr, 0), KB_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(kb_last_error()), "");
    expect_good_call();
}

TEST_F(FeedErrors, NullFeedData) {
    int64_t s[2] = {2, 3};
    kb_feed f = {nullptr, 6 * sizeof(float), KB_FLOAT32, 2, s, nullptr};
    EXPECT_EQ(kb_function_call(fn, &f, 1), KB_ERR_INVALID_ARGUMENT);
    expect_good_call();
}

TEST_F(FeedErrors, NegativeFeedDim) {
    int64_t s[2] = {-1, 3};
    kb_feed f = {data.data(), 6 * sizeof(float), KB_FLOAT32, 2, s, nullptr};
    EXPECT_NE(kb_function_call(fn, &f, 1), KB_OK);
    expect_good_call();
}

TEST_F(Function, UnfedPlaceholder) {
    int64_t ps[1] = {3};
    kb_tensor *p = kb_placeholder(ctx, ps, 1, KB_FLOAT32, "p");
    kb_tensor *y = kb_square(p);
    kb_clear_error();
    kb_function *fn = kb_function_new(ctx, nullptr, 0, &y, 1, nullptr, 0, KB_DEVICE_CPU);
    EXPECT_EQ(fn, nullptr) << "an output needs a placeholder that is not an input";
    EXPECT_NE(kb_last_status(), KB_OK);
    EXPECT_NE(std::string(kb_last_error()), "");
    kb_function_free(fn);
    float out[3];
    kb_clear_error();
    EXPECT_EQ(kb_eval(y, out, sizeof out), KB_ERR_INVALID_STATE);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_STATE));
    expect_usable();
}

TEST_F(Function, InputThatIsNotAPlaceholder) {
    kb_tensor *v = make_var(ctx, {1, 2}, {2});
    kb_tensor *y = kb_square(v);
    kb_clear_error();
    kb_function *fn = kb_function_new(ctx, &y, 1, &y, 1, nullptr, 0, KB_DEVICE_CPU);
    EXPECT_EQ(fn, nullptr);
    EXPECT_EQ(kb_last_status(), KB_ERR_INVALID_ARGUMENT);
    kb_function_free(fn);
    expect_usable();
}

TEST_F(Function, UpdatesMustBeUpdateOps) {
    kb_tensor *v = make_var(ctx, {1, 2}, {2});
    kb_tensor *y = kb_square(v);
    kb_clear_error();
    kb_function *fn = kb_function_new(ctx, nullptr, 0, &y, 1, &y, 1, KB_DEVICE_CPU);
    EXPECT_EQ(fn, nullptr);
    EXPECT_EQ(kb_last_status(), KB_ERR_INVALID_ARGUMENT);
    expect_usable();
}

TEST_F(Function, FeedsOfAnotherDtypeAreCast) {
    int64_t ps[1] = {KB_NONE};
    kb_tensor *p = kb_placeholder(ctx, ps, 1, KB_FLOAT32, "p");
    kb_tensor *y = kb_multiply(p, p);
    kb_function *fn = kb_function_new(ctx, &p, 1, &y, 1, nullptr, 0, KB_DEVICE_CPU);
    ASSERT_NE(fn, nullptr) << kb_last_error();
    float out[3];
    {   // float64 data
        double d[3] = {1.5, -2, 3};
        int64_t s[1] = {3};
        kb_feed f = {d, sizeof d, KB_FLOAT64, 1, s, nullptr};
        ASSERT_TRUE(ok(kb_function_call(fn, &f, 1)));
        kb_dtype dt;
        kb_function_output(fn, 0, &dt, nullptr, nullptr, nullptr);
        EXPECT_EQ(dt, KB_FLOAT32) << "the placeholder's dtype wins";
        ASSERT_TRUE(ok(kb_function_get_output(fn, 0, out, sizeof out)));
        EXPECT_TRUE(allclose({out[0], out[1], out[2]}, {2.25, 4, 9}, 0, 0));
    }
    {   // int32 data
        int32_t d[3] = {2, -3, 4};
        int64_t s[1] = {3};
        kb_feed f = {d, sizeof d, KB_INT32, 1, s, nullptr};
        ASSERT_TRUE(ok(kb_function_call(fn, &f, 1)));
        ASSERT_TRUE(ok(kb_function_get_output(fn, 0, out, sizeof out)));
        EXPECT_TRUE(allclose({out[0], out[1], out[2]}, {4, 9, 16}, 0, 0));
    }
    {   // KB_FLOATX: "the placeholder's dtype"
        float d[3] = {1, 2, 3};
        int64_t s[1] = {3};
        kb_feed f = {d, sizeof d, KB_FLOATX, 1, s, nullptr};
        ASSERT_TRUE(ok(kb_function_call(fn, &f, 1)));
        ASSERT_TRUE(ok(kb_function_get_output(fn, 0, out, sizeof out)));
        EXPECT_TRUE(allclose({out[0], out[1], out[2]}, {1, 4, 9}, 0, 0));
    }
    {   // byte count is checked against the feed's own dtype
        double d[3] = {1, 2, 3};
        int64_t s[1] = {3};
        kb_feed f = {d, 3 * sizeof(float), KB_FLOAT64, 1, s, nullptr};
        kb_clear_error();
        EXPECT_EQ(kb_function_call(fn, &f, 1), KB_ERR_SHAPE);
    }
    kb_function_free(fn);
    expect_usable();
}

TEST_F(Function, PrunesWhatOutputsDoNotNeed) {
    // An unfed placeholder that no output needs does not stop compilation.
    int64_t ps[1] = {2};
    kb_tensor *p = kb_placeholder(ctx, ps, 1, KB_FLOAT32, "unused");
    kb_tensor *unused = kb_square(p);
    (void)unused;
    kb_tensor *v = make_var(ctx, {1, 2}, {2});
    RunResult r = run_function(ctx, {kb_add(v, v)}, KB_DEVICE_CPU);
    ASSERT_EQ(r.status, KB_OK) << r.error;
    EXPECT_TRUE(allclose(r.outs[0].v, {2, 4}, 0, 0));
}

TEST_F(Function, VariablesSeenAfterSetValue) {
    kb_tensor *v = make_var(ctx, {1, 2}, {2});
    kb_tensor *y = kb_square(v);
    kb_function *fn = kb_function_new(ctx, nullptr, 0, &y, 1, nullptr, 0, KB_DEVICE_CPU);
    ASSERT_NE(fn, nullptr);
    float out[2];
    ASSERT_TRUE(ok(kb_function_call(fn, nullptr, 0)));
    ASSERT_TRUE(ok(kb_function_get_output(fn, 0, out, sizeof out)));
    EXPECT_EQ(out[1], 4.0f);
    float nv[2] = {3, 4};
    ASSERT_TRUE(ok(kb_set_value(v, nv, sizeof nv)));
    ASSERT_TRUE(ok(kb_function_call(fn, nullptr, 0)));
    ASSERT_TRUE(ok(kb_function_get_output(fn, 0, out, sizeof out)));
    EXPECT_EQ(out[0], 9.0f);
    EXPECT_EQ(out[1], 16.0f);
    kb_function_free(fn);
}

TEST_F(Function, BatchGetAndSetValue) {
    kb_tensor *a = make_var(ctx, {1, 2}, {2});
    kb_tensor *b = make_var(ctx, {3, 4, 5}, {3}, KB_FLOAT64);
    float av[2] = {9, 8};
    double bv[3] = {7, 6, 5};
    kb_tensor *vars[2] = {a, b};
    const void *data[2] = {av, bv};
    size_t sizes[2] = {sizeof av, sizeof bv};
    ASSERT_TRUE(ok(kb_batch_set_value(vars, 2, data, sizes)));
    float ao[2];
    double bo[3];
    void *outs[2] = {ao, bo};
    ASSERT_TRUE(ok(kb_batch_get_value(vars, 2, outs, sizes)));
    EXPECT_EQ(ao[0], 9.0f);
    EXPECT_EQ(bo[2], 5.0);
    // All sizes are checked before any variable is written.
    float a2[2] = {-1, -1};
    double b2[3] = {-1, -1, -1};
    const void *data2[2] = {a2, b2};
    size_t bad[2] = {sizeof a2, sizeof(double) * 2};
    kb_clear_error();
    EXPECT_EQ(kb_batch_set_value(vars, 2, data2, bad), KB_ERR_SHAPE);
    EXPECT_TRUE(allclose(get_v(a), {9, 8}, 0, 0)) << "a must not be written when b's size is wrong";
    EXPECT_TRUE(allclose(get_v(b), {7, 6, 5}, 0, 0));
}

// A batch of zero rows runs through every op: empty outputs, and reductions over the empty axis
// give numpy's values (sum 0, mean NaN, max -inf); the gradient of such a loss is zeros.
TEST_F(Function, EmptyBatch) {
    int64_t ps[2] = {KB_NONE, 3};
    kb_tensor *x = kb_placeholder(ctx, ps, 2, KB_FLOAT64, "x");
    kb_tensor *w = make_var(ctx, {1, -2, 0.5, 3, -1, 2}, {3, 2}, KB_FLOAT64, "w");
    kb_tensor *b = make_var(ctx, {0.25, -0.5}, {2}, KB_FLOAT64, "b");
    kb_tensor *y = kb_softmax(kb_relu(kb_add(kb_dot(x, w), b), 0, INFINITY, 0), -1);
    int ax0 = 0;
    kb_tensor *s = kb_sum(y, &ax0, 1, 0), *m = kb_mean(y, &ax0, 1, 0), *mx = kb_max(y, &ax0, 1, 0);
    kb_tensor *loss = kb_sum(kb_square(y), nullptr, 0, 0);
    kb_tensor *vars[2] = {w, b}, *g[2];
    ASSERT_TRUE(ok(kb_gradients(loss, vars, 2, g)));
    kb_tensor *outs[7] = {y, s, m, mx, loss, g[0], g[1]};
    kb_function *fn = kb_function_new(ctx, &x, 1, outs, 7, nullptr, 0, KB_DEVICE_CPU);
    ASSERT_NE(fn, nullptr) << kb_last_error();
    int64_t fs[2] = {0, 3};
    kb_feed f = {nullptr, 0, KB_FLOAT64, 2, fs, nullptr};
    ASSERT_TRUE(ok(kb_function_call(fn, &f, 1)));
    int rank = 0;
    int64_t shape[KB_MAX_RANK];
    size_t nb = 1;
    ASSERT_NE(kb_function_output(fn, 0, nullptr, &rank, shape, &nb), nullptr);
    EXPECT_EQ(rank, 2);
    EXPECT_EQ(shape[0], 0);
    EXPECT_EQ(shape[1], 2);
    EXPECT_EQ(nb, 0u);
    auto out = [&](int i, size_t n) {
        return from_bytes(kb_function_output(fn, i, nullptr, nullptr, nullptr, nullptr), n, KB_FLOAT64);
    };
    const double inf = INFINITY, nan = NAN;
    EXPECT_TRUE(allclose(out(1, 2), {0, 0}, 0, 0)) << "sum over an empty axis";
    EXPECT_TRUE(allclose(out(2, 2), {nan, nan}, 0, 0)) << "mean over an empty axis";
    EXPECT_TRUE(allclose(out(3, 2), {-inf, -inf}, 0, 0)) << "max over an empty axis";
    EXPECT_TRUE(allclose(out(4, 1), {0}, 0, 0)) << "loss";
    EXPECT_TRUE(allclose(out(5, 6), std::vector<double>(6, 0.0), 0, 0)) << "dloss/dw";
    EXPECT_TRUE(allclose(out(6, 2), {0, 0}, 0, 0)) << "dloss/db";
    kb_function_free(fn);
}

}  // namespace
