// Reference values and bad input of the shape family: every data-movement op against an
// independent index loop in every dtype, the views with unknown dims, gradients, arange, one_hot
// and the errors of each public function.
#include <cmath>

#include "kb_test_util.h"

namespace {

using namespace kbt;

const kb_dtype kAllTypes[] = {KB_FLOAT16, KB_FLOAT32, KB_FLOAT64, KB_BFLOAT16, KB_INT8,
                              KB_UINT8,   KB_INT32,   KB_INT64,   KB_BOOL};

// ---- independent N-d references (C order) --------------------------------------------------------

using Idx = std::vector<int64_t>;

std::vector<int64_t> unravel(int64_t i, const Shape &s) {
    std::vector<int64_t> idx(s.size());
    for (size_t d = s.size(); d-- > 0;) {
        idx[d] = i % s[d];
        i /= s[d];
    }
    return idx;
}

int64_t ravel(const std::vector<int64_t> &idx, const Shape &s) {
    int64_t o = 0;
    for (size_t d = 0; d < s.size(); ++d) o = o * s[d] + idx[d];
    return o;
}

// out[idx] = x[src(idx)] for every idx of shape `os`.
template <typename F>
std::vector<double> gather_ref(const std::vector<double> &x, const Shape &xs, const Shape &os, F src) {
    std::vector<double> o((size_t)numel(os));
    for (int64_t i = 0; i < numel(os); ++i) o[(size_t)i] = x[(size_t)ravel(src(unravel(i, os)), xs)];
    return o;
}

// Values every dtype holds exactly (0..10, or 0/1 for bool), never all zeros.
std::vector<double> exact_values(size_t n, kb_dtype dt, uint64_t salt) {
    std::vector<double> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = (double)((i * 7 + salt) % 11);
    if (dt == KB_BOOL)
        for (auto &e : v) e = (double)((int64_t)e % 2);
    return v;
}

class Shape_ : public KbTest {
protected:
    kb_tensor *cst(const std::vector<double> &v, const Shape &s, kb_dtype dt = KB_FLOAT32) {
        return make_const(ctx, v, s, dt);
    }
    void expect_value(kb_tensor *t, const Shape &shape, const std::vector<double> &want, kb_dtype dt,
                      const std::string &what) {
        ASSERT_NE(t, nullptr) << what << ": " << kb_last_error();
        HostValue hv = eval(t);
        EXPECT_EQ(hv.shape, shape) << what;
        EXPECT_EQ(hv.dtype, dt) << what;
        EXPECT_TRUE(allclose(hv.v, want, 0, 0)) << what << " " << kb_dtype_name(dt);
    }
};

// ---- data movement in every dtype ----------------------------------------------------------------

TEST_F(Shape_, ConcatenateEveryDtypeAndAxis) {
    for (kb_dtype dt : kAllTypes) {
        const std::vector<Shape> shapes = {{2, 3, 4}, {2, 1, 4}, {2, 5, 4}};
        std::vector<std::vector<double>> vals;
        std::vector<kb_tensor *> ts;
        for (size_t k = 0; k < shapes.size(); ++k) {
            vals.push_back(exact_values((size_t)numel(shapes[k]), dt, k * 3 + 1));
            ts.push_back(cst(vals.back(), shapes[k], dt));
        }
        // axis -5 on rank 3 is -5 % 3 = 1 (Python modulo, as Keras)
        for (int axis : {1, -2, -5}) {
            Shape os = {2, 9, 4};
            std::vector<double> want((size_t)numel(os));
            for (int64_t i = 0; i < numel(os); ++i) {
                auto idx = unravel(i, os);
                size_t k = idx[1] < 3 ? 0 : idx[1] < 4 ? 1 : 2;
                idx[1] -= k == 0 ? 0 : k == 1 ? 3 : 4;
                want[(size_t)i] = vals[k][(size_t)ravel(idx, shapes[k])];
            }
            expect_value(kb_concatenate(ts.data(), 3, axis), os, want, dt, "concatenate axis " + std::to_string(axis));
        }
    }
}

TEST_F(Shape_, ConcatenateManyInputsBuildsATree) {
    std::vector<kb_tensor *> ts;
    std::vector<double> want;
    for (int k = 0; k < 9; ++k) {
        ts.push_back(cst({(double)k, (double)(10 + k)}, {2}));
        want.push_back(k);
        want.push_back(10 + k);
    }
    expect_value(kb_concatenate(ts.data(), 9, 0), {18}, want, KB_FLOAT32, "9 inputs");
    kb_tensor *one = kb_concatenate(ts.data(), 1, -1);
    expect_value(one, {2}, {0, 10}, KB_FLOAT32, "1 input");
}

TEST_F(Shape_, StackAxes) {
    auto a = std::vector<double>{1, 2, 3, 4, 5, 6}, b = std::vector<double>{7, 8, 9, 10, 11, 12};
    kb_tensor *ts[2] = {cst(a, {2, 3}), cst(b, {2, 3})};
    expect_value(kb_stack(ts, 2, 0), {2, 2, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, KB_FLOAT32, "axis 0");
    expect_value(kb_stack(ts, 2, -1), {2, 3, 2}, {1, 7, 2, 8, 3, 9, 4, 10, 5, 11, 6, 12}, KB_FLOAT32, "axis -1");
    expect_value(kb_stack(ts, 2, 1), {2, 2, 3}, {1, 2, 3, 7, 8, 9, 4, 5, 6, 10, 11, 12}, KB_FLOAT32, "axis 1");
}

TEST_F(Shape_, SliceEveryDtype) {
    const Shape xs = {4, 5, 6};
    for (kb_dtype dt : kAllTypes) {
        auto x = exact_values((size_t)numel(xs), dt, 2);
        kb_tensor *t = cst(x, xs, dt);
        int64_t st[3] = {1, 0, 2}, sz[3] = {2, -1, 3};
        Shape os = {2, 5, 3};
        auto want = gather_ref(x, xs, os, [](Idx i) { return Idx{i[0] + 1, i[1], i[2] + 2}; });
        expect_value(kb_slice(t, st, sz, 3), os, want, dt, "slice");
        int64_t st0[3] = {4, 5, 6}, sz0[3] = {0, 0, -1};  // empty at the very end is valid
        expect_value(kb_slice(t, st0, sz0, 3), {0, 0, 0}, {}, dt, "empty slice");
    }
}

TEST_F(Shape_, ReverseEveryDtype) {
    const Shape xs = {3, 4, 5};
    for (kb_dtype dt : kAllTypes) {
        auto x = exact_values((size_t)numel(xs), dt, 5);
        kb_tensor *t = cst(x, xs, dt);
        int ax[2] = {0, -1};
        auto want = gather_ref(x, xs, xs, [](Idx i) { return Idx{2 - i[0], i[1], 4 - i[2]}; });
        expect_value(kb_reverse(t, ax, 2), xs, want, dt, "reverse 0,-1");
        int all[3] = {0, 1, 2};
        auto want2 = std::vector<double>(x.rbegin(), x.rend());
        expect_value(kb_reverse(t, all, 3), xs, want2, dt, "reverse all");
        expect_value(kb_reverse(t, nullptr, 0), xs, x, dt, "reverse none");
    }
}

TEST_F(Shape_, TileAndRepeatElementsEveryDtype) {
    const Shape xs = {2, 3};
    for (kb_dtype dt : kAllTypes) {
        auto x = exact_values(6, dt, 1);
        kb_tensor *t = cst(x, xs, dt);
        int64_t n2[2] = {2, 3};
        expect_value(kb_tile(t, n2, 2), {4, 9}, gather_ref(x, xs, {4, 9}, [](Idx i) {
                         return Idx{i[0] % 2, i[1] % 3};
                     }), dt, "tile 2,3");
        int64_t n1[1] = {2};  // left-padded to (1, 2)
        expect_value(kb_tile(t, n1, 1), {2, 6}, gather_ref(x, xs, {2, 6}, [](Idx i) {
                         return Idx{i[0], i[1] % 3};
                     }), dt, "tile (2,) left-padded");
        // np.repeat: each element `rep` times in a row
        expect_value(kb_repeat_elements(t, 3, 1), {2, 9}, gather_ref(x, xs, {2, 9}, [](Idx i) {
                         return Idx{i[0], i[1] / 3};
                     }), dt, "repeat_elements axis 1");
        expect_value(kb_repeat_elements(t, 2, -2), {4, 3}, gather_ref(x, xs, {4, 3}, [](Idx i) {
                         return Idx{i[0] / 2, i[1]};
                     }), dt, "repeat_elements axis -2");
        expect_value(kb_repeat(t, 4), {2, 4, 3}, gather_ref(x, xs, {2, 4, 3}, [](Idx i) {
                         return Idx{i[0], i[2]};
                     }), dt, "repeat 4");
        expect_value(kb_repeat_elements(t, 0, 0), {0, 3}, {}, dt, "repeat_elements rep 0");
    }
}

TEST_F(Shape_, PermuteEveryDtypeAcrossTiles) {
    const Shape xs = {3, 40, 70};
    for (kb_dtype dt : kAllTypes) {
        auto x = exact_values((size_t)numel(xs), dt, 3);
        kb_tensor *t = cst(x, xs, dt);
        int p[3] = {0, 2, 1};
        expect_value(kb_permute_dimensions(t, p, 3), {3, 70, 40}, gather_ref(x, xs, {3, 70, 40}, [](Idx i) {
                         return Idx{i[0], i[2], i[1]};
                     }), dt, "permute 0,2,1");
        expect_value(kb_transpose(t), {70, 40, 3}, gather_ref(x, xs, {70, 40, 3}, [](Idx i) {
                         return Idx{i[2], i[1], i[0]};
                     }), dt, "transpose");
    }
}

// ---- views ---------------------------------------------------------------------------------------

TEST_F(Shape_, ViewsKeepValuesAndShapes) {
    std::vector<double> x(24);
    for (size_t i = 0; i < x.size(); ++i) x[i] = (double)i + 1;
    kb_tensor *t = cst(x, {2, 3, 4});
    expect_value(kb_flatten(t), {24}, x, KB_FLOAT32, "flatten");
    expect_value(kb_batch_flatten(t), {2, 12}, x, KB_FLOAT32, "batch_flatten");
    expect_value(kb_expand_dims(t, -1), {2, 3, 4, 1}, x, KB_FLOAT32, "expand_dims -1");
    expect_value(kb_expand_dims(t, 0), {1, 2, 3, 4}, x, KB_FLOAT32, "expand_dims 0");
    expect_value(kb_expand_dims(t, -4), {1, 2, 3, 4}, x, KB_FLOAT32, "expand_dims -4");
    expect_value(kb_expand_dims(t, 2), {2, 3, 1, 4}, x, KB_FLOAT32, "expand_dims 2");
    kb_tensor *u = cst(x, {2, 1, 12});
    expect_value(kb_squeeze(u, 1), {2, 12}, x, KB_FLOAT32, "squeeze 1");
    expect_value(kb_squeeze(u, -2), {2, 12}, x, KB_FLOAT32, "squeeze -2");
    kb_tensor *s = cst({5}, {});
    expect_value(kb_batch_flatten(s), {1, 1}, {5}, KB_FLOAT32, "batch_flatten scalar");
    expect_value(kb_expand_dims(s, 0), {1}, {5}, KB_FLOAT32, "expand_dims scalar");
}

TEST_F(Shape_, ViewsWithUnknownDims) {
    int64_t ps[3] = {KB_NONE, KB_NONE, 3};
    kb_tensor *p = kb_placeholder(ctx, ps, 3, KB_FLOAT32, "p");
    ASSERT_NE(p, nullptr);
    int64_t s[KB_MAX_RANK];
    kb_tensor *e = kb_expand_dims(p, 1);
    ASSERT_NE(e, nullptr) << kb_last_error();
    ASSERT_EQ(kb_int_shape(e, s), 4);
    EXPECT_EQ(s[0], KB_NONE);
    EXPECT_EQ(s[1], 1);
    EXPECT_EQ(s[2], KB_NONE);
    EXPECT_EQ(s[3], 3);
    kb_tensor *q = kb_squeeze(e, 1);
    kb_tensor *bf = kb_batch_flatten(p);
    ASSERT_NE(q, nullptr) << kb_last_error();
    ASSERT_NE(bf, nullptr) << kb_last_error();
    ASSERT_EQ(kb_int_shape(bf, s), 2);
    EXPECT_EQ(s[0], KB_NONE);
    EXPECT_EQ(s[1], KB_NONE);
    std::vector<double> xv(24);
    for (size_t i = 0; i < xv.size(); ++i) xv[i] = 0.5 * (double)i - 3;
    auto bytes = to_bytes(xv, KB_FLOAT32);
    RunResult r = run_function(ctx, {e, q, bf}, KB_DEVICE_CPU, {p}, {feed_of(bytes, KB_FLOAT32, {2, 4, 3})});
    ASSERT_TRUE(ok(r.status)) << r.error;
    EXPECT_EQ(r.outs[0].shape, (Shape{2, 1, 4, 3}));
    EXPECT_EQ(r.outs[1].shape, (Shape{2, 4, 3}));
    EXPECT_EQ(r.outs[2].shape, (Shape{2, 12}));
    for (const auto &o : r.outs) EXPECT_TRUE(allclose(o.v, xv, 0, 0));
    // squeezing an axis that turns out not to be 1 fails when the function runs
    int64_t p2s[2] = {KB_NONE, KB_NONE};
    kb_tensor *p2 = kb_placeholder(ctx, p2s, 2, KB_FLOAT32, "p2");
    kb_tensor *sq = kb_squeeze(p2, 1);
    ASSERT_NE(sq, nullptr) << kb_last_error();
    auto b6 = to_bytes({1, 2, 3, 4, 5, 6}, KB_FLOAT32);
    RunResult bad = run_function(ctx, {sq}, KB_DEVICE_CPU, {p2}, {feed_of(b6, KB_FLOAT32, {3, 2})});
    EXPECT_EQ(bad.status, KB_ERR_SHAPE) << bad.error;
    RunResult good = run_function(ctx, {sq}, KB_DEVICE_CPU, {p2}, {feed_of(b6, KB_FLOAT32, {6, 1})});
    ASSERT_TRUE(ok(good.status)) << good.error;
    EXPECT_EQ(good.outs[0].shape, (Shape{6}));
}

// ---- arange and one_hot --------------------------------------------------------------------------

TEST_F(Shape_, Arange) {
    expect_value(kb_arange(ctx, 0, 5, 1, KB_INT32), {5}, {0, 1, 2, 3, 4}, KB_INT32, "arange(5)");
    expect_value(kb_arange(ctx, 5, 0, -2, KB_INT64), {3}, {5, 3, 1}, KB_INT64, "arange(5, 0, -2)");
    expect_value(kb_arange(ctx, 0, -20, 1, KB_INT32), {0}, {}, KB_INT32, "arange(-20) is empty");
    expect_value(kb_arange(ctx, 3, 3, 1, KB_FLOAT64), {0}, {}, KB_FLOAT64, "arange(3, 3)");
    expect_value(kb_arange(ctx, 1, 2, 0.25, KB_FLOAT64), {4}, {1, 1.25, 1.5, 1.75}, KB_FLOAT64, "float step");
    // a float range cast to int32 truncates each value, as tf.cast
    expect_value(kb_arange(ctx, 0, 5, 1.5, KB_INT32), {4}, {0, 1, 3, 4}, KB_INT32, "int32 of a float range");
    kb_tensor *fx = kb_arange(ctx, 0, 3, 1, KB_FLOATX);
    ASSERT_NE(fx, nullptr) << kb_last_error();
    EXPECT_EQ(kb_dtype_of(fx), kb_floatx(ctx));
    kb_clear_error();
    EXPECT_EQ(kb_arange(ctx, 0, 5, 0, KB_INT32), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_arange", "step"}));
    kb_clear_error();
    EXPECT_EQ(kb_arange(ctx, 0, NAN, 1, KB_INT32), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_arange"}));
    kb_clear_error();
    EXPECT_EQ(kb_arange(ctx, 0, 3, 1, KB_BOOL), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_DTYPE, {"kb_arange"}));
    kb_clear_error();
    EXPECT_EQ(kb_arange(nullptr, 0, 3, 1, KB_INT32), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_arange", "ctx"}));
}

TEST_F(Shape_, OneHot) {
    for (kb_dtype it : {KB_INT32, KB_INT64}) {
        const std::vector<double> idx = {0, 3, -1, 4, 2, 1};
        kb_tensor *t = kb_one_hot(cst(idx, {2, 3}, it), 4);
        std::vector<double> want(24, 0.0);
        for (size_t i = 0; i < idx.size(); ++i)
            if (idx[i] >= 0 && idx[i] < 4) want[i * 4 + (size_t)idx[i]] = 1.0;
        expect_value(t, {2, 3, 4}, want, KB_FLOAT32, "one_hot");
    }
    kb_clear_error();
    EXPECT_EQ(kb_one_hot(cst({1, 2}, {2}), 3), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_DTYPE, {"kb_one_hot", "int32"}));
    kb_clear_error();
    EXPECT_EQ(kb_one_hot(cst({1, 2}, {2}, KB_INT32), -1), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_one_hot", "num_classes"}));
}

// ---- gradients -----------------------------------------------------------------------------------

TEST_F(Shape_, GradientsOfTheCopies) {
    std::vector<double> xv = {1, -2, 3, 4, 5, -6};
    kb_tensor *x = make_var(ctx, xv, {2, 3}, KB_FLOAT64);
    auto grad_of = [&](kb_tensor *y) {
        kb_tensor *g = nullptr;
        kb_tensor *loss = kb_sum(y, nullptr, 0, 0);
        EXPECT_EQ(kb_gradients(loss, &x, 1, &g), KB_OK) << kb_last_error();
        return g ? eval_v(g) : std::vector<double>{};
    };
    int64_t n[2] = {2, 3};
    // d sum(tile) / dx = number of copies; repeat_elements likewise
    EXPECT_TRUE(allclose(grad_of(kb_tile(x, n, 2)), std::vector<double>(6, 6.0), 0, 0));
    EXPECT_TRUE(allclose(grad_of(kb_repeat_elements(x, 5, 1)), std::vector<double>(6, 5.0), 0, 0));
    int64_t st[2] = {0, 1}, sz[2] = {-1, 1};
    EXPECT_TRUE(allclose(grad_of(kb_slice(x, st, sz, 2)), {0, 1, 0, 0, 1, 0}, 0, 0));
    kb_tensor *two[2] = {x, x};
    EXPECT_TRUE(allclose(grad_of(kb_concatenate(two, 2, 0)), std::vector<double>(6, 2.0), 0, 0));
}

// tile_grad in float16 / bfloat16 (widened around the CPU kernel): small integers sum exactly.
TEST_F(Shape_, TileGradientHalfTypes) {
    for (kb_dtype dt : {KB_FLOAT16, KB_BFLOAT16}) {
        kb_tensor *x = make_var(ctx, {1, 2, 3, 4, 5, 6}, {2, 3}, dt);
        std::vector<double> wv(36);
        for (size_t i = 0; i < wv.size(); ++i) wv[i] = (double)(i % 5) - 2;
        kb_tensor *w = make_const(ctx, wv, {4, 9}, dt);
        int64_t n[2] = {2, 3};
        kb_tensor *loss = kb_sum(kb_multiply(kb_tile(x, n, 2), w), nullptr, 0, 0);
        kb_tensor *g = nullptr;
        ASSERT_EQ(kb_gradients(loss, &x, 1, &g), KB_OK) << kb_last_error();
        std::vector<double> want(6, 0.0);
        for (int64_t i = 0; i < 36; ++i) want[(size_t)((i / 9 % 2) * 3 + i % 9 % 3)] += wv[(size_t)i];
        expect_value(g, {2, 3}, want, dt, "tile_grad");
    }
}

// concatenate's gradient takes its parts from the end when only the second input's length is known.
TEST_F(Shape_, ConcatenateGradientWithUnknownLength) {
    int64_t ps[2] = {KB_NONE, 3};
    kb_tensor *p = kb_placeholder(ctx, ps, 2, KB_FLOAT64, "p");
    std::vector<double> vv = {1, 2, 3, 4, 5, 6};
    kb_tensor *v = make_var(ctx, vv, {2, 3}, KB_FLOAT64);
    auto bytes = to_bytes({7, 8, 9}, KB_FLOAT64);
    for (int order = 0; order < 2; ++order) {
        kb_tensor *ins[2] = {order ? v : p, order ? p : v};
        kb_tensor *c = kb_concatenate(ins, 2, 0);
        kb_tensor *loss = kb_sum(kb_square(c), nullptr, 0, 0);
        kb_tensor *g = nullptr;
        ASSERT_EQ(kb_gradients(loss, &v, 1, &g), KB_OK) << kb_last_error();
        RunResult r = run_function(ctx, {g}, KB_DEVICE_CPU, {p}, {feed_of(bytes, KB_FLOAT64, {1, 3})});
        ASSERT_TRUE(ok(r.status)) << r.error;
        EXPECT_TRUE(allclose(r.outs[0].v, {2, 4, 6, 8, 10, 12}, 0, 0)) << "order " << order;
    }
    // neither length known at build time: not supported (said so, not a wrong answer)
    kb_tensor *w = make_var(ctx, {1, 1, 1}, {3}, KB_FLOAT64);
    kb_tensor *ins[2] = {p, kb_multiply(p, w)};
    kb_tensor *loss = kb_sum(kb_concatenate(ins, 2, 0), nullptr, 0, 0);
    kb_tensor *g = nullptr;
    kb_clear_error();
    EXPECT_EQ(kb_gradients(loss, &w, 1, &g), KB_ERR_NOT_SUPPORTED);
    EXPECT_TRUE(has_error(KB_ERR_NOT_SUPPORTED, {"concatenate"}));
    kb_clear_error();
}

// ---- bad input -----------------------------------------------------------------------------------

TEST_F(Shape_, BadInput) {
    kb_tensor *x = cst({1, 2, 3, 4, 5, 6}, {2, 3});
    kb_tensor *y = cst({1, 2, 3, 4}, {2, 2});
    kb_tensor *z = cst({1, 2, 3, 4}, {4});
    kb_tensor *i = cst({1, 2, 3, 4, 5, 6}, {2, 3}, KB_INT32);
    int64_t st[2] = {0, 0}, sz[2] = {1, 1}, big[2] = {2, 4}, far[2] = {1, 3};

    // slice: Keras' message for a spec of the wrong length, bounds, negative starts
    EXPECT_NULL_WITH(kb_slice(x, st, sz, 1), KB_ERR_SHAPE,
                     {"kb_slice", "The dimension and the size of indices should match."});
    EXPECT_NULL_WITH(kb_slice(x, st, big, 2), KB_ERR_SHAPE, {"kb_slice", "axis 1"});
    EXPECT_NULL_WITH(kb_slice(x, far, sz, 2), KB_ERR_SHAPE, {"kb_slice", "axis 1", "start 3"});
    int64_t neg[2] = {-1, 0}, bad_sz[2] = {1, -2};
    EXPECT_NULL_WITH(kb_slice(x, neg, sz, 2), KB_ERR_INVALID_ARGUMENT, {"kb_slice", "axis 0"});
    EXPECT_NULL_WITH(kb_slice(x, st, bad_sz, 2), KB_ERR_INVALID_ARGUMENT, {"kb_slice", "axis 1"});
    EXPECT_NULL_WITH(kb_slice(x, nullptr, sz, 2), KB_ERR_INVALID_ARGUMENT, {"kb_slice", "start"});
    EXPECT_NULL_WITH(kb_slice(nullptr, st, sz, 2), KB_ERR_INVALID_ARGUMENT, {"kb_slice", "x"});

    // concatenate / stack
    kb_tensor *xy[2] = {x, y}, *xz[2] = {x, z}, *xi[2] = {x, i}, *xn[2] = {x, nullptr};
    EXPECT_NULL_WITH(kb_concatenate(xy, 2, 0), KB_ERR_SHAPE, {"kb_concatenate", "(2, 3)", "(2, 2)"});
    EXPECT_NULL_WITH(kb_concatenate(xz, 2, 0), KB_ERR_SHAPE, {"kb_concatenate"});
    EXPECT_NULL_WITH(kb_concatenate(xi, 2, 0), KB_ERR_DTYPE, {"kb_concatenate", "int32"});
    EXPECT_NULL_WITH(kb_concatenate(xy, 2, 2), KB_ERR_AXIS, {"kb_concatenate", "axis 2"});
    EXPECT_NULL_WITH(kb_concatenate(xn, 2, 0), KB_ERR_INVALID_ARGUMENT, {"kb_concatenate", "tensors[1]"});
    EXPECT_NULL_WITH(kb_concatenate(xy, 0, 0), KB_ERR_INVALID_ARGUMENT, {"kb_concatenate"});
    kb_tensor *sc = cst({1}, {}), *scs[2] = {sc, sc};
    EXPECT_NULL_WITH(kb_concatenate(scs, 2, 0), KB_ERR_SHAPE, {"kb_concatenate"});
    EXPECT_NULL_WITH(kb_stack(xy, 2, 0), KB_ERR_SHAPE, {"kb_stack", "x[1]"});
    kb_tensor *xx[2] = {x, x};
    EXPECT_NULL_WITH(kb_stack(xx, 2, 3), KB_ERR_AXIS, {"kb_stack", "axis 3"});
    EXPECT_NULL_WITH(kb_stack(nullptr, 2, 0), KB_ERR_INVALID_ARGUMENT, {"kb_stack"});

    // tile / repeat / repeat_elements
    int64_t n3[3] = {1, 2, 3}, nneg[2] = {1, -1};
    EXPECT_NULL_WITH(kb_tile(x, n3, 3), KB_ERR_NOT_SUPPORTED, {"kb_tile", "rank 2"});
    EXPECT_NULL_WITH(kb_tile(x, nneg, 2), KB_ERR_INVALID_ARGUMENT, {"kb_tile", "n[1]"});
    EXPECT_NULL_WITH(kb_tile(x, nullptr, 2), KB_ERR_INVALID_ARGUMENT, {"kb_tile", "n"});
    int64_t huge[2] = {(int64_t)1 << 40, (int64_t)1 << 40};
    EXPECT_NULL_WITH(kb_tile(x, huge, 2), KB_ERR_SHAPE, {"kb_tile"});
    EXPECT_NULL_WITH(kb_repeat(z, 2), KB_ERR_SHAPE, {"kb_repeat", "2-D"});
    EXPECT_NULL_WITH(kb_repeat(x, -1), KB_ERR_INVALID_ARGUMENT, {"kb_repeat"});
    EXPECT_NULL_WITH(kb_repeat_elements(x, 2, 2), KB_ERR_AXIS, {"kb_repeat_elements", "axis 2"});
    EXPECT_NULL_WITH(kb_repeat_elements(x, -3, 0), KB_ERR_INVALID_ARGUMENT, {"kb_repeat_elements", "rep"});

    // reverse
    int rep[2] = {0, -2}, out[1] = {2};
    EXPECT_NULL_WITH(kb_reverse(x, rep, 2), KB_ERR_AXIS, {"kb_reverse", "repeated"});
    EXPECT_NULL_WITH(kb_reverse(x, out, 1), KB_ERR_AXIS, {"kb_reverse", "axis 2"});
    EXPECT_NULL_WITH(kb_reverse(x, nullptr, 1), KB_ERR_INVALID_ARGUMENT, {"kb_reverse"});

    // views
    EXPECT_NULL_WITH(kb_squeeze(x, 1), KB_ERR_SHAPE, {"kb_squeeze", "got 3"});
    EXPECT_NULL_WITH(kb_squeeze(x, 2), KB_ERR_AXIS, {"kb_squeeze"});
    EXPECT_NULL_WITH(kb_expand_dims(x, 3), KB_ERR_AXIS, {"kb_expand_dims", "axis 3"});
    EXPECT_NULL_WITH(kb_expand_dims(x, -4), KB_ERR_AXIS, {"kb_expand_dims"});
    EXPECT_NULL_WITH(kb_flatten(nullptr), KB_ERR_INVALID_ARGUMENT, {"kb_flatten", "x"});
    EXPECT_NULL_WITH(kb_batch_flatten(nullptr), KB_ERR_INVALID_ARGUMENT, {"kb_batch_flatten", "x"});
    std::vector<int64_t> r8(8, 1);
    kb_tensor *x8 = cst({1}, Shape(r8.begin(), r8.end()));
    EXPECT_NULL_WITH(kb_expand_dims(x8, 0), KB_ERR_SHAPE, {"kb_expand_dims", "rank 9"});
    EXPECT_NULL_WITH(kb_one_hot(kb_cast(x8, KB_INT32), 2), KB_ERR_SHAPE, {"kb_one_hot", "rank 9"});
    kb_clear_error();
}

}  // namespace
