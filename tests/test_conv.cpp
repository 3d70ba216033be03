// Reference values and bad input of the conv family: conv2d / conv1d against a direct
// (non-im2col) cross-correlation loop with TF's 'same' arithmetic (odd pad at the bottom /
// right), both data formats, strides, dilation; the backward ops against the loop's adjoint;
// Keras' error messages (spec 2.5); conv3d / conv3d_transpose / pool3d the same way in 3-D.
#include <cmath>

#include "kb_test_util.h"

namespace {

using namespace kbt;

class Conv : public KbTest {};

const kb_dtype kFloats[] = {KB_FLOAT32, KB_FLOAT64};

struct Geo {
    int64_t N, C, H, W, KH, KW, O, sh, sw, dh, dw;
    bool same, cf;
    int64_t OH, OW, pt, pl;
};

Geo geo(const Shape &xs, const Shape &ks, const int64_t s[2], const int64_t d[2], bool same, bool cf) {
    Geo g{};
    g.N = xs[0];
    g.C = cf ? xs[1] : xs[3];
    g.H = cf ? xs[2] : xs[1];
    g.W = cf ? xs[3] : xs[2];
    g.KH = ks[0], g.KW = ks[1], g.O = ks[3];
    g.sh = s[0], g.sw = s[1], g.dh = d[0], g.dw = d[1];
    g.same = same, g.cf = cf;
    auto axis = [&](int64_t in, int64_t k, int64_t st, int64_t dl, int64_t *out, int64_t *pad) {
        int64_t ke = (k - 1) * dl + 1;
        *out = same ? (in + st - 1) / st : (in - ke) / st + 1;
        *pad = same ? std::max<int64_t>((*out - 1) * st + ke - in, 0) / 2 : 0;
    };
    axis(g.H, g.KH, g.sh, g.dh, &g.OH, &g.pt);
    axis(g.W, g.KW, g.sw, g.dw, &g.OW, &g.pl);
    return g;
}
int64_t xi(const Geo &g, int64_t n, int64_t c, int64_t h, int64_t w) {
    return g.cf ? ((n * g.C + c) * g.H + h) * g.W + w : ((n * g.H + h) * g.W + w) * g.C + c;
}
int64_t yi(const Geo &g, int64_t n, int64_t o, int64_t h, int64_t w) {
    return g.cf ? ((n * g.O + o) * g.OH + h) * g.OW + w : ((n * g.OH + h) * g.OW + w) * g.O + o;
}
int64_t ki(const Geo &g, int64_t kh, int64_t kw, int64_t c, int64_t o) { return ((kh * g.KW + kw) * g.C + c) * g.O + o; }

// Visit every (output, input, kernel) triple of the cross-correlation that reads inside x.
template <typename F>
void each_tap(const Geo &g, F f) {
    for (int64_t n = 0; n < g.N; ++n)
        for (int64_t oh = 0; oh < g.OH; ++oh)
            for (int64_t ow = 0; ow < g.OW; ++ow)
                for (int64_t kh = 0; kh < g.KH; ++kh)
                    for (int64_t kw = 0; kw < g.KW; ++kw) {
                        int64_t ih = oh * g.sh - g.pt + kh * g.dh, iw = ow * g.sw - g.pl + kw * g.dw;
                        if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
                        for (int64_t c = 0; c < g.C; ++c)
                            for (int64_t o = 0; o < g.O; ++o) f(yi(g, n, o, oh, ow), xi(g, n, c, ih, iw), ki(g, kh, kw, c, o));
                    }
}

struct Case {
    Shape x, k;
    int64_t s[2], d[2];
    bool same, cf;
};

const Case kCases[] = {
    {{2, 5, 5, 3}, {3, 3, 3, 2}, {1, 1}, {1, 1}, false, false},
    {{2, 3, 5, 5}, {3, 3, 3, 2}, {1, 1}, {1, 1}, false, true},
    {{2, 6, 7, 3}, {3, 3, 3, 4}, {2, 2}, {1, 1}, true, false},  // pad 0/1 rows, 1/1 cols
    {{2, 3, 6, 7}, {3, 3, 3, 4}, {2, 2}, {1, 1}, true, true},
    {{1, 4, 6, 2}, {2, 4, 2, 3}, {1, 3}, {1, 1}, true, false},  // even kernels: extra pad at the end
    {{1, 2, 4, 6}, {2, 4, 2, 3}, {1, 3}, {1, 1}, true, true},
    {{2, 7, 6, 3}, {3, 2, 3, 2}, {1, 1}, {2, 3}, true, false},  // dilation
    {{2, 3, 7, 6}, {3, 2, 3, 2}, {1, 1}, {2, 3}, false, true},
    {{3, 9, 8, 1}, {4, 3, 1, 5}, {3, 2}, {1, 1}, false, false},
};

TEST_F(Conv, Conv2dMatchesDirectLoop) {
    for (const Case &c : kCases)
        for (kb_dtype dt : kFloats) {
            Geo g = geo(c.x, c.k, c.s, c.d, c.same, c.cf);
            auto xv = random_values(gen, (size_t)numel(c.x), -1, 1), kv = random_values(gen, (size_t)numel(c.k), -1, 1);
            std::vector<double> ref((size_t)(g.N * g.O * g.OH * g.OW), 0.0);
            each_tap(g, [&](int64_t y, int64_t x, int64_t k) { ref[(size_t)y] += xv[(size_t)x] * kv[(size_t)k]; });
            kb_tensor *y = kb_conv2d(make_var(ctx, xv, c.x, dt), make_var(ctx, kv, c.k, dt), c.s,
                                     c.same ? KB_PADDING_SAME : KB_PADDING_VALID,
                                     c.cf ? KB_DATA_FORMAT_CHANNELS_FIRST : KB_DATA_FORMAT_CHANNELS_LAST, c.d);
            ASSERT_NE(y, nullptr) << kb_last_error();
            HostValue hv = eval(y);
            EXPECT_EQ(hv.shape, (c.cf ? Shape{g.N, g.O, g.OH, g.OW} : Shape{g.N, g.OH, g.OW, g.O}));
            EXPECT_TRUE(allclose(hv.v, ref, dt == KB_FLOAT32 ? Tol{1e-5, 1e-5} : Tol{1e-12, 1e-12}))
                << shape_str(c.x) << " same=" << c.same << " cf=" << c.cf;
        }
}

// dx = sum over taps of dy * k, dk = sum over taps of dy * x: the loop's adjoint.
TEST_F(Conv, BackwardOpsMatchDirectLoopAdjoint) {
    for (const Case &c : kCases) {
        Geo g = geo(c.x, c.k, c.s, c.d, c.same, c.cf);
        Shape ys = c.cf ? Shape{g.N, g.O, g.OH, g.OW} : Shape{g.N, g.OH, g.OW, g.O};
        auto xv = random_values(gen, (size_t)numel(c.x), -1, 1), kv = random_values(gen, (size_t)numel(c.k), -1, 1);
        auto wv = random_values(gen, (size_t)numel(ys), -1, 1);
        std::vector<double> dx(xv.size(), 0.0), dk(kv.size(), 0.0);
        each_tap(g, [&](int64_t y, int64_t x, int64_t k) {
            dx[(size_t)x] += wv[(size_t)y] * kv[(size_t)k];
            dk[(size_t)k] += wv[(size_t)y] * xv[(size_t)x];
        });
        kb_tensor *x = make_var(ctx, xv, c.x, KB_FLOAT64), *k = make_var(ctx, kv, c.k, KB_FLOAT64);
        kb_tensor *y = kb_conv2d(x, k, c.s, c.same ? KB_PADDING_SAME : KB_PADDING_VALID,
                                 c.cf ? KB_DATA_FORMAT_CHANNELS_FIRST : KB_DATA_FORMAT_CHANNELS_LAST, c.d);
        ASSERT_NE(y, nullptr) << kb_last_error();
        kb_tensor *loss = kb_sum(kb_multiply(y, make_const(ctx, wv, ys, KB_FLOAT64)), nullptr, 0, 0);
        kb_tensor *vars[2] = {x, k}, *grads[2] = {nullptr, nullptr};
        ASSERT_TRUE(ok(kb_gradients(loss, vars, 2, grads)));
        EXPECT_TRUE(allclose(eval_v(grads[0]), dx, 1e-12, 1e-12)) << shape_str(c.x);
        EXPECT_TRUE(allclose(eval_v(grads[1]), dk, 1e-12, 1e-12)) << shape_str(c.x);
    }
}

// Images big enough that the CPU kernel splits the batch into chunks of im2col columns (2^24
// elements: 3 images of 128 x 128 x 32 with a 3 x 3 kernel per chunk): forward, and the filter
// gradient that sums over chunks.
TEST_F(Conv, BatchSplitIntoChunks) {
    for (bool cf : {false, true}) {
        Shape xs = cf ? Shape{5, 32, 128, 128} : Shape{5, 128, 128, 32}, ks{3, 3, 32, 2};
        const int64_t s1[2] = {1, 1};
        Geo g = geo(xs, ks, s1, s1, true, cf);
        Shape ys = cf ? Shape{g.N, g.O, g.OH, g.OW} : Shape{g.N, g.OH, g.OW, g.O};
        auto xv = random_values(gen, (size_t)numel(xs), -1, 1), kv = random_values(gen, (size_t)numel(ks), -1, 1);
        auto wv = random_values(gen, (size_t)numel(ys), -1, 1);
        std::vector<double> ref((size_t)numel(ys), 0.0), dk(kv.size(), 0.0);
        each_tap(g, [&](int64_t y, int64_t x, int64_t k) {
            ref[(size_t)y] += xv[(size_t)x] * kv[(size_t)k];
            dk[(size_t)k] += wv[(size_t)y] * xv[(size_t)x];
        });
        kb_tensor *x = make_var(ctx, xv, xs, KB_FLOAT64), *k = make_var(ctx, kv, ks, KB_FLOAT64);
        kb_tensor *y = kb_conv2d(x, k, nullptr, KB_PADDING_SAME,
                                 cf ? KB_DATA_FORMAT_CHANNELS_FIRST : KB_DATA_FORMAT_CHANNELS_LAST, nullptr);
        ASSERT_NE(y, nullptr) << kb_last_error();
        EXPECT_TRUE(allclose(eval_v(y), ref, 1e-12, 1e-12)) << "cf=" << cf;
        kb_tensor *loss = kb_sum(kb_multiply(y, make_const(ctx, wv, ys, KB_FLOAT64)), nullptr, 0, 0);
        kb_tensor *g_k = nullptr;
        ASSERT_TRUE(ok(kb_gradients(loss, &k, 1, &g_k)));
        EXPECT_TRUE(allclose(eval_v(g_k), dk, 1e-11, 1e-11)) << "cf=" << cf;
    }
}

// Spatial dims unknown at graph build: the 'same' pads are computed from the fed shape.
TEST_F(Conv, SamePaddingFromRuntimeShape) {
    int64_t ps[4] = {KB_NONE, KB_NONE, KB_NONE, 3};
    kb_tensor *x = kb_placeholder(ctx, ps, 4, KB_FLOAT64, "x");
    ASSERT_NE(x, nullptr) << kb_last_error();
    Shape ks{3, 3, 3, 2}, xs{2, 6, 5, 3};
    int64_t s[2] = {2, 2};
    auto kv = random_values(gen, (size_t)numel(ks), -1, 1), xv = random_values(gen, (size_t)numel(xs), -1, 1);
    kb_tensor *y = kb_conv2d(x, make_var(ctx, kv, ks, KB_FLOAT64), s, KB_PADDING_SAME, KB_DATA_FORMAT_CHANNELS_LAST,
                             nullptr);
    ASSERT_NE(y, nullptr) << kb_last_error();
    int64_t d1[2] = {1, 1};
    Geo g = geo(xs, ks, s, d1, true, false);
    std::vector<double> ref((size_t)(g.N * g.O * g.OH * g.OW), 0.0);
    each_tap(g, [&](int64_t yy, int64_t xx, int64_t k) { ref[(size_t)yy] += xv[(size_t)xx] * kv[(size_t)k]; });
    auto bytes = to_bytes(xv, KB_FLOAT64);
    RunResult r = run_function(ctx, {y}, KB_DEVICE_CPU, {x}, {feed_of(bytes, KB_FLOAT64, xs)});
    ASSERT_TRUE(ok(r.status)) << r.error;
    EXPECT_EQ(r.outs[0].shape, (Shape{2, 3, 3, 2}));
    EXPECT_TRUE(allclose(r.outs[0].v, ref, 1e-12, 1e-12));
}

// The context's image_data_format is the default.
TEST_F(Conv, DefaultDataFormatIsTheContexts) {
    ASSERT_TRUE(ok(kb_set_image_data_format(ctx, KB_CHANNELS_FIRST)));
    Shape xs{1, 2, 4, 4}, ks{3, 3, 2, 1};
    auto xv = random_values(gen, (size_t)numel(xs), -1, 1), kv = random_values(gen, (size_t)numel(ks), -1, 1);
    kb_tensor *x = make_var(ctx, xv, xs, KB_FLOAT64), *k = make_var(ctx, kv, ks, KB_FLOAT64);
    kb_tensor *a = kb_conv2d(x, k, nullptr, KB_PADDING_VALID, KB_DATA_FORMAT_DEFAULT, nullptr);
    kb_tensor *b = kb_conv2d(x, k, nullptr, KB_PADDING_VALID, KB_DATA_FORMAT_CHANNELS_FIRST, nullptr);
    ASSERT_TRUE(a && b) << kb_last_error();
    EXPECT_EQ(static_shape(a), (Shape{1, 1, 2, 2}));
    EXPECT_TRUE(allclose(eval_v(a), eval_v(b), 0, 0));
}

TEST_F(Conv, Conv2dBadInput) {
    kb_tensor *x = make_var(ctx, std::vector<double>(2 * 5 * 5 * 3, 1.0), {2, 5, 5, 3});
    kb_tensor *k = make_var(ctx, std::vector<double>(3 * 3 * 3 * 2, 1.0), {3, 3, 3, 2});
    const int64_t s2[2] = {2, 2}, d2[2] = {2, 2}, zero[2] = {0, 1};
    EXPECT_NULL_WITH(kb_conv2d(x, k, nullptr, (kb_padding)7, KB_DATA_FORMAT_CHANNELS_LAST, nullptr),
        KB_ERR_INVALID_ARGUMENT, {"kb_conv2d", "Invalid padding: 7"});
    EXPECT_NULL_WITH(kb_conv2d(x, k, nullptr, KB_PADDING_CAUSAL, KB_DATA_FORMAT_CHANNELS_LAST, nullptr),
        KB_ERR_INVALID_ARGUMENT, {"kb_conv2d", "Invalid padding: 2"});
    EXPECT_NULL_WITH(kb_conv2d(x, k, nullptr, KB_PADDING_VALID, (kb_data_format_arg)5, nullptr),
        KB_ERR_INVALID_ARGUMENT, {"kb_conv2d", "Unknown data_format: 5"});
    EXPECT_NULL_WITH(kb_conv2d(x, k, s2, KB_PADDING_VALID, KB_DATA_FORMAT_CHANNELS_LAST, d2),
        KB_ERR_INVALID_ARGUMENT, {"kb_conv2d", "dilation_rate > 1"});
    EXPECT_NULL_WITH(kb_conv2d(x, k, zero, KB_PADDING_VALID, KB_DATA_FORMAT_CHANNELS_LAST, nullptr),
        KB_ERR_INVALID_ARGUMENT, {"kb_conv2d", "strides[0] = 0"});
    // channels_first reads 5 input channels where the kernel has 3.
    EXPECT_NULL_WITH(kb_conv2d(x, k, nullptr, KB_PADDING_VALID, KB_DATA_FORMAT_CHANNELS_FIRST, nullptr),
        KB_ERR_SHAPE, {"kb_conv2d", "input channels"});
    kb_tensor *big = make_var(ctx, std::vector<double>(6 * 6 * 3 * 2, 1.0), {6, 6, 3, 2});
    EXPECT_NULL_WITH(kb_conv2d(x, big, nullptr, KB_PADDING_VALID, KB_DATA_FORMAT_CHANNELS_LAST, nullptr),
        KB_ERR_SHAPE, {"kb_conv2d", "Negative dimension size"});
    kb_tensor *k3 = make_var(ctx, std::vector<double>(3 * 3 * 3, 1.0), {3, 3, 3});
    EXPECT_NULL_WITH(kb_conv2d(x, k3, nullptr, KB_PADDING_VALID, KB_DATA_FORMAT_CHANNELS_LAST, nullptr),
        KB_ERR_SHAPE, {"kb_conv2d", "kernel must be 4-D"});
    kb_tensor *k64 = make_var(ctx, std::vector<double>(3 * 3 * 3 * 2, 1.0), {3, 3, 3, 2}, KB_FLOAT64);
    EXPECT_NULL_WITH(kb_conv2d(x, k64, nullptr, KB_PADDING_VALID, KB_DATA_FORMAT_CHANNELS_LAST, nullptr),
        KB_ERR_DTYPE, {"kb_conv2d", "kernel dtype float64"});
    kb_tensor *xi32 = make_var(ctx, std::vector<double>(2 * 5 * 5 * 3, 1.0), {2, 5, 5, 3}, KB_INT32);
    EXPECT_NULL_WITH(kb_conv2d(xi32, k, nullptr, KB_PADDING_VALID, KB_DATA_FORMAT_CHANNELS_LAST, nullptr),
        KB_ERR_DTYPE, {"kb_conv2d"});
    EXPECT_NULL_WITH(kb_conv2d(nullptr, k, nullptr, KB_PADDING_VALID, KB_DATA_FORMAT_CHANNELS_LAST, nullptr),
        KB_ERR_INVALID_ARGUMENT, {"kb_conv2d", "x"});
    // The session stays usable.
    EXPECT_NE(kb_conv2d(x, k, nullptr, KB_PADDING_SAME, KB_DATA_FORMAT_CHANNELS_LAST, nullptr), nullptr);
}

// conv2d_transpose scatters: out[x-index] += xt[y-index] * k[k-index] over conv2d's taps, where
// output_shape is conv2d's input shape, xt has conv2d's output shape and the transposed kernel
// (kh, kw, out, in) is indexed as conv2d's (kh, kw, in', out').
TEST_F(Conv, Conv2dTransposeMatchesScatterLoop) {
    std::vector<Case> cases(std::begin(kCases), std::end(kCases));
    cases.push_back({{2, 7, 6, 3}, {3, 2, 3, 2}, {1, 1}, {2, 2}, true, false});  // equal dilation (atrous)
    cases.push_back({{2, 3, 7, 6}, {3, 2, 3, 2}, {1, 1}, {3, 3}, false, true});
    for (const Case &c : cases)
        for (kb_dtype dt : kFloats) {
            if (c.d[0] != c.d[1]) continue;  // refused (tf.nn.atrous_conv2d_transpose): see the bad-input test
            Geo g = geo(c.x, c.k, c.s, c.d, c.same, c.cf);
            Shape ts = c.cf ? Shape{g.N, g.O, g.OH, g.OW} : Shape{g.N, g.OH, g.OW, g.O};
            auto tv = random_values(gen, (size_t)numel(ts), -1, 1), kv = random_values(gen, (size_t)numel(c.k), -1, 1);
            std::vector<double> ref((size_t)numel(c.x), 0.0);
            each_tap(g, [&](int64_t y, int64_t x, int64_t k) { ref[(size_t)x] += tv[(size_t)y] * kv[(size_t)k]; });
            int64_t os[4] = {c.x[0], c.x[1], c.x[2], c.x[3]};
            kb_tensor *y = kb_conv2d_transpose(make_var(ctx, tv, ts, dt), make_var(ctx, kv, c.k, dt), os, c.s,
                                               c.same ? KB_PADDING_SAME : KB_PADDING_VALID,
                                               c.cf ? KB_DATA_FORMAT_CHANNELS_FIRST : KB_DATA_FORMAT_CHANNELS_LAST, c.d);
            ASSERT_NE(y, nullptr) << kb_last_error();
            HostValue hv = eval(y);
            EXPECT_EQ(hv.shape, c.x);
            EXPECT_TRUE(allclose(hv.v, ref, dt == KB_FLOAT32 ? Tol{1e-5, 1e-5} : Tol{1e-12, 1e-12}))
                << shape_str(c.x) << " same=" << c.same << " cf=" << c.cf;
        }
}

// A KB_NONE batch in output_shape is x's batch at run time (Keras' shape(x)[0]); the spec's test
// shapes: x (2, 5, 6, 3), kernel (3, 3, 2, 3), output (2, 5, 6, 2), 'same'.
TEST_F(Conv, Conv2dTransposeBatchFromRuntimeShape) {
    int64_t ps[4] = {KB_NONE, 5, 6, 3};
    kb_tensor *x = kb_placeholder(ctx, ps, 4, KB_FLOAT64, "x");
    ASSERT_NE(x, nullptr) << kb_last_error();
    Shape ks{3, 3, 2, 3}, xs{2, 5, 6, 3}, outs{2, 5, 6, 2};
    const int64_t s1[2] = {1, 1};
    auto kv = random_values(gen, (size_t)numel(ks), -1, 1), xv = random_values(gen, (size_t)numel(xs), -1, 1);
    int64_t os[4] = {KB_NONE, 5, 6, 2};
    kb_tensor *y = kb_conv2d_transpose(x, make_var(ctx, kv, ks, KB_FLOAT64), os, nullptr, KB_PADDING_SAME,
                                       KB_DATA_FORMAT_CHANNELS_LAST, nullptr);
    ASSERT_NE(y, nullptr) << kb_last_error();
    int64_t dims[4];
    ASSERT_EQ(kb_int_shape(y, dims), 4);
    EXPECT_EQ(Shape(dims, dims + 4), (Shape{KB_NONE, 5, 6, 2}));
    Geo g = geo(outs, ks, s1, s1, true, false);
    std::vector<double> ref((size_t)numel(outs), 0.0);
    each_tap(g, [&](int64_t yy, int64_t xx, int64_t k) { ref[(size_t)xx] += xv[(size_t)yy] * kv[(size_t)k]; });
    auto bytes = to_bytes(xv, KB_FLOAT64);
    RunResult r = run_function(ctx, {y}, KB_DEVICE_CPU, {x}, {feed_of(bytes, KB_FLOAT64, xs)});
    ASSERT_TRUE(ok(r.status)) << r.error;
    EXPECT_EQ(r.outs[0].shape, outs);
    EXPECT_TRUE(allclose(r.outs[0].v, ref, 1e-12, 1e-12));
}

TEST_F(Conv, Conv2dTransposeBadInput) {
    const char *fn = "kb_conv2d_transpose";
    kb_tensor *x = make_var(ctx, std::vector<double>(2 * 3 * 3 * 2, 1.0), {2, 3, 3, 2});
    kb_tensor *k = make_var(ctx, std::vector<double>(3 * 3 * 4 * 2, 1.0), {3, 3, 4, 2});
    const int64_t os[4] = {2, 5, 5, 4}, s2[2] = {2, 2}, d2[2] = {2, 2}, d12[2] = {1, 2};
    const kb_data_format_arg cl = KB_DATA_FORMAT_CHANNELS_LAST;
    EXPECT_NULL_WITH(kb_conv2d_transpose(x, k, nullptr, nullptr, KB_PADDING_VALID, cl, nullptr),
        KB_ERR_INVALID_ARGUMENT, {fn, "output_shape"});
    EXPECT_NULL_WITH(kb_conv2d_transpose(x, k, os, nullptr, KB_PADDING_CAUSAL, cl, nullptr),
        KB_ERR_INVALID_ARGUMENT, {fn, "Invalid padding: 2"});
    EXPECT_NULL_WITH(kb_conv2d_transpose(x, k, os, s2, KB_PADDING_VALID, cl, d2),
        KB_ERR_INVALID_ARGUMENT, {fn, "dilation_rate > 1"});
    EXPECT_NULL_WITH(kb_conv2d_transpose(x, k, os, nullptr, KB_PADDING_VALID, cl, d12),
        KB_ERR_INVALID_ARGUMENT, {fn, "must be equal in H and W"});
    const int64_t bad_batch[4] = {3, 5, 5, 4}, zero_dim[4] = {2, 0, 5, 4};
    EXPECT_NULL_WITH(kb_conv2d_transpose(x, k, bad_batch, nullptr, KB_PADDING_VALID, cl, nullptr),
        KB_ERR_INVALID_ARGUMENT, {fn, "output_shape[0] = 3"});
    EXPECT_NULL_WITH(kb_conv2d_transpose(x, k, zero_dim, nullptr, KB_PADDING_VALID, cl, nullptr),
        KB_ERR_INVALID_ARGUMENT, {fn, "output_shape[1] = 0"});
    // (2, 6, 6, 4) 'valid' with a 3x3 window gives 4x4, not x's 3x3.
    const int64_t wrong[4] = {2, 6, 6, 4}, wrong_c[4] = {2, 5, 5, 3};
    EXPECT_NULL_WITH(kb_conv2d_transpose(x, k, wrong, nullptr, KB_PADDING_VALID, cl, nullptr),
        KB_ERR_SHAPE, {fn, "does not match the convolution output"});
    EXPECT_NULL_WITH(kb_conv2d_transpose(x, k, wrong_c, nullptr, KB_PADDING_VALID, cl, nullptr),
        KB_ERR_SHAPE, {fn, "input channels"});
    EXPECT_EQ(kb_conv2d_transpose(x, k, os, s2, KB_PADDING_VALID, cl, nullptr), nullptr);  // 5x5 / 2 -> 2x2
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {fn, "does not match"}));
    kb_clear_error();
    EXPECT_NE(kb_conv2d_transpose(x, k, os, nullptr, KB_PADDING_VALID, cl, nullptr), nullptr) << kb_last_error();
}

// depthwise_conv2d against a per-channel loop: y[n, c * M + m, oh, ow] = sum over the taps inside x
// of x[n, c, ih, iw] * k[kh, kw, c, m] (TF's channel-major output order).
struct DW {
    Shape x;
    int64_t kh, kw, M, s[2], d[2];
    bool same, cf;
};
const DW kDwCases[] = {{{2, 5, 6, 3}, 3, 3, 2, {1, 1}, {1, 1}, false, false},
                       {{2, 3, 5, 6}, 3, 3, 2, {1, 1}, {1, 1}, false, true},
                       {{2, 6, 7, 2}, 3, 2, 3, {2, 2}, {1, 1}, true, false},  // asymmetric 'same'
                       {{2, 2, 6, 7}, 3, 2, 3, {2, 2}, {1, 1}, true, true},
                       {{1, 7, 6, 3}, 2, 3, 1, {1, 1}, {2, 2}, true, false},  // dilation
                       {{1, 3, 7, 6}, 2, 3, 2, {1, 1}, {3, 1}, false, true}};

// The loop's output (layout of c.cf) into ref, its shape into ys.
void depthwise_ref(const DW &c, const std::vector<double> &xv, const std::vector<double> &kv, std::vector<double> &ref,
                   Shape &ys) {
    int64_t C = c.cf ? c.x[1] : c.x[3];
    Shape gk{c.kh, c.kw, C, 1};
    Geo g = geo(c.x, gk, c.s, c.d, c.same, c.cf);  // one output channel per input channel
    ys = c.cf ? Shape{g.N, C * c.M, g.OH, g.OW} : Shape{g.N, g.OH, g.OW, C * c.M};
    ref.assign((size_t)numel(ys), 0.0);
    for (int64_t n = 0; n < g.N; ++n)
        for (int64_t oh = 0; oh < g.OH; ++oh)
            for (int64_t ow = 0; ow < g.OW; ++ow)
                for (int64_t kh = 0; kh < c.kh; ++kh)
                    for (int64_t kw = 0; kw < c.kw; ++kw) {
                        int64_t ih = oh * g.sh - g.pt + kh * g.dh, iw = ow * g.sw - g.pl + kw * g.dw;
                        if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
                        for (int64_t ch = 0; ch < C; ++ch)
                            for (int64_t m = 0; m < c.M; ++m) {
                                int64_t o = ch * c.M + m;
                                int64_t yidx = c.cf ? ((n * C * c.M + o) * g.OH + oh) * g.OW + ow
                                                    : ((n * g.OH + oh) * g.OW + ow) * C * c.M + o;
                                int64_t kidx = ((kh * c.kw + kw) * C + ch) * c.M + m;
                                ref[(size_t)yidx] += xv[(size_t)xi(g, n, ch, ih, iw)] * kv[(size_t)kidx];
                            }
                    }
}

TEST_F(Conv, DepthwiseConv2dMatchesPerChannelLoop) {
    for (const DW &c : kDwCases)
        for (kb_dtype dt : kFloats) {
            Shape ks{c.kh, c.kw, c.cf ? c.x[1] : c.x[3], c.M}, ys;
            auto xv = random_values(gen, (size_t)numel(c.x), -1, 1), kv = random_values(gen, (size_t)numel(ks), -1, 1);
            std::vector<double> ref;
            depthwise_ref(c, xv, kv, ref, ys);
            kb_tensor *y = kb_depthwise_conv2d(make_var(ctx, xv, c.x, dt), make_var(ctx, kv, ks, dt), c.s,
                                               c.same ? KB_PADDING_SAME : KB_PADDING_VALID,
                                               c.cf ? KB_DATA_FORMAT_CHANNELS_FIRST : KB_DATA_FORMAT_CHANNELS_LAST, c.d);
            ASSERT_NE(y, nullptr) << kb_last_error();
            HostValue hv = eval(y);
            EXPECT_EQ(hv.shape, ys);
            EXPECT_TRUE(allclose(hv.v, ref, dt == KB_FLOAT32 ? Tol{1e-5, 1e-5} : Tol{1e-12, 1e-12}))
                << shape_str(c.x) << " same=" << c.same << " cf=" << c.cf;
        }
}

// A MobileNet-like depthwise layer (C = 8, M = 2) in both formats with strides, asymmetric 'same'
// and dilation: forward against the per-channel loop, and both gradients (the grouped
// backward-data / backward-filter ops) against the loop's adjoint: dx[n, c, ih, iw] = sum of
// w[n, c * M + m, oh, ow] * k[kh, kw, c, m], dk[kh, kw, c, m] = sum of w[..] * x[n, c, ih, iw].
TEST_F(Conv, DepthwiseManyChannelsValuesAndAdjoint) {
    const DW cases[] = {{{2, 7, 6, 8}, 3, 3, 2, {2, 2}, {1, 1}, true, false},   // pads 1/1 rows, 0/1 cols
                        {{2, 8, 7, 6}, 3, 3, 2, {2, 2}, {1, 1}, true, true},
                        {{1, 7, 7, 8}, 3, 2, 2, {1, 1}, {2, 3}, false, false},  // dilation
                        {{1, 8, 7, 7}, 2, 3, 2, {1, 1}, {2, 2}, true, true},
                        {{2, 8, 5, 7}, 1, 3, 2, {1, 2}, {1, 1}, false, true}};
    for (const DW &c : cases) {
        int64_t C = c.cf ? c.x[1] : c.x[3];
        Shape ks{c.kh, c.kw, C, c.M}, ys;
        auto xv = random_values(gen, (size_t)numel(c.x), -1, 1), kv = random_values(gen, (size_t)numel(ks), -1, 1);
        std::vector<double> ref;
        depthwise_ref(c, xv, kv, ref, ys);
        auto wv = random_values(gen, (size_t)numel(ys), -1, 1);
        Geo g = geo(c.x, Shape{c.kh, c.kw, C, 1}, c.s, c.d, c.same, c.cf);
        std::vector<double> dx(xv.size(), 0.0), dk(kv.size(), 0.0);
        for (int64_t n = 0; n < g.N; ++n)
            for (int64_t oh = 0; oh < g.OH; ++oh)
                for (int64_t ow = 0; ow < g.OW; ++ow)
                    for (int64_t kh = 0; kh < c.kh; ++kh)
                        for (int64_t kw = 0; kw < c.kw; ++kw) {
                            int64_t ih = oh * g.sh - g.pt + kh * g.dh, iw = ow * g.sw - g.pl + kw * g.dw;
                            if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
                            for (int64_t ch = 0; ch < C; ++ch)
                                for (int64_t m = 0; m < c.M; ++m) {
                                    int64_t o = ch * c.M + m;
                                    size_t yi_ = (size_t)(c.cf ? ((n * C * c.M + o) * g.OH + oh) * g.OW + ow
                                                               : ((n * g.OH + oh) * g.OW + ow) * C * c.M + o);
                                    size_t ki_ = (size_t)(((kh * c.kw + kw) * C + ch) * c.M + m);
                                    size_t xi_ = (size_t)xi(g, n, ch, ih, iw);
                                    dx[xi_] += wv[yi_] * kv[ki_];
                                    dk[ki_] += wv[yi_] * xv[xi_];
                                }
                        }
        for (kb_dtype dt : kFloats) {
            kb_tensor *x = make_var(ctx, xv, c.x, dt), *k = make_var(ctx, kv, ks, dt);
            kb_tensor *y = kb_depthwise_conv2d(x, k, c.s, c.same ? KB_PADDING_SAME : KB_PADDING_VALID,
                                               c.cf ? KB_DATA_FORMAT_CHANNELS_FIRST : KB_DATA_FORMAT_CHANNELS_LAST, c.d);
            ASSERT_NE(y, nullptr) << kb_last_error();
            Tol tol = dt == KB_FLOAT32 ? Tol{1e-5, 1e-5} : Tol{1e-12, 1e-12};
            HostValue hv = eval(y);
            EXPECT_EQ(hv.shape, ys);
            EXPECT_TRUE(allclose(hv.v, ref, tol)) << shape_str(c.x) << " cf=" << c.cf;
            kb_tensor *loss = kb_sum(kb_multiply(y, make_const(ctx, wv, ys, dt)), nullptr, 0, 0);
            kb_tensor *vars[2] = {x, k}, *grads[2] = {nullptr, nullptr};
            ASSERT_TRUE(ok(kb_gradients(loss, vars, 2, grads)));
            EXPECT_TRUE(allclose(eval(grads[0]).v, dx, tol)) << shape_str(c.x) << " cf=" << c.cf;
            EXPECT_TRUE(allclose(eval(grads[1]).v, dk, tol)) << shape_str(c.x) << " cf=" << c.cf;
        }
    }
}

// separable = the depthwise loop, then out[., o, .] = sum over q of dw[., q, .] * pk[q, o] per pixel;
// separable_conv1d runs the same cases with height-1 images (x without the size-1 axis).
TEST_F(Conv, SeparableConvMatchesLoop) {
    for (const DW &c2 : kDwCases)
        for (int one_d = 0; one_d < 2; ++one_d) {
            DW c = c2;
            if (one_d) {  // height 1: keep the width axis, kernel rows 1
                c.x[c.cf ? 2 : 1] = 1;
                c.kh = 1;
                c.s[0] = c.d[0] = 1;
                if (c.s[1] > 1 && c.d[1] > 1) c.d[1] = 1;
            }
            int64_t C = c.cf ? c.x[1] : c.x[3], Q = C * c.M, O = 2;
            Shape ks{c.kh, c.kw, C, c.M}, ps{1, 1, Q, O}, ys;
            auto xv = random_values(gen, (size_t)numel(c.x), -1, 1), kv = random_values(gen, (size_t)numel(ks), -1, 1);
            auto pv = random_values(gen, (size_t)numel(ps), -1, 1);
            std::vector<double> dw;
            depthwise_ref(c, xv, kv, dw, ys);
            int64_t N = ys[0], P = numel(ys) / (N * Q);  // pixels per image
            std::vector<double> ref((size_t)(N * P * O), 0.0);
            for (int64_t n = 0; n < N; ++n)
                for (int64_t p = 0; p < P; ++p)
                    for (int64_t q = 0; q < Q; ++q)
                        for (int64_t o = 0; o < O; ++o) {
                            double v = dw[(size_t)(c.cf ? (n * Q + q) * P + p : (n * P + p) * Q + q)];
                            int64_t yidx = c.cf ? (n * O + o) * P + p : (n * P + p) * O + o;
                            ref[(size_t)yidx] += v * pv[(size_t)(q * O + o)];
                        }
            kb_padding pad = c.same ? KB_PADDING_SAME : KB_PADDING_VALID;
            kb_data_format_arg f = c.cf ? KB_DATA_FORMAT_CHANNELS_FIRST : KB_DATA_FORMAT_CHANNELS_LAST;
            kb_tensor *y;
            Shape want = ys;
            want[c.cf ? 1 : 3] = O;
            if (one_d) {
                Shape x3 = c.x, k3{c.kw, C, c.M}, p3{1, Q, O};
                x3.erase(x3.begin() + (c.cf ? 2 : 1));
                want.erase(want.begin() + (c.cf ? 2 : 1));
                y = kb_separable_conv1d(make_var(ctx, xv, x3, KB_FLOAT64), make_var(ctx, kv, k3, KB_FLOAT64),
                                        make_var(ctx, pv, p3, KB_FLOAT64), c.s[1], pad, f, c.d[1]);
            } else {
                y = kb_separable_conv2d(make_var(ctx, xv, c.x, KB_FLOAT64), make_var(ctx, kv, ks, KB_FLOAT64),
                                        make_var(ctx, pv, ps, KB_FLOAT64), c.s, pad, f, c.d);
            }
            ASSERT_NE(y, nullptr) << kb_last_error();
            HostValue hv = eval(y);
            EXPECT_EQ(hv.shape, want);
            EXPECT_TRUE(allclose(hv.v, ref, 1e-12, 1e-12)) << shape_str(c.x) << " 1d=" << one_d << " cf=" << c.cf;
        }
}

TEST_F(Conv, SeparableConvBadInput) {
    kb_tensor *x = make_var(ctx, std::vector<double>(2 * 5 * 5 * 3, 1.0), {2, 5, 5, 3});
    kb_tensor *dk = make_var(ctx, std::vector<double>(3 * 3 * 3 * 2, 1.0), {3, 3, 3, 2});
    kb_tensor *pk = make_var(ctx, std::vector<double>(6 * 4, 1.0), {1, 1, 6, 4});
    kb_tensor *pk_bad = make_var(ctx, std::vector<double>(5 * 4, 1.0), {1, 1, 5, 4});
    kb_tensor *pk_win = make_var(ctx, std::vector<double>(2 * 6 * 4, 1.0), {2, 1, 6, 4});
    const int64_t s2[2] = {2, 2}, d2[2] = {2, 2};
    const kb_data_format_arg cl = KB_DATA_FORMAT_CHANNELS_LAST;
    const char *fn = "kb_separable_conv2d";
    EXPECT_NULL_WITH(kb_separable_conv2d(x, dk, pk, nullptr, KB_PADDING_CAUSAL, cl, nullptr),
        KB_ERR_INVALID_ARGUMENT, {fn, "Invalid padding: 2"});
    EXPECT_NULL_WITH(kb_separable_conv2d(x, dk, pk, s2, KB_PADDING_VALID, cl, d2),
        KB_ERR_INVALID_ARGUMENT, {fn, "dilation_rate > 1"});
    EXPECT_NULL_WITH(kb_separable_conv2d(x, dk, pk_bad, nullptr, KB_PADDING_VALID, cl, nullptr),
        KB_ERR_SHAPE, {fn, "input channels"});
    EXPECT_NULL_WITH(kb_separable_conv2d(x, dk, pk_win, nullptr, KB_PADDING_VALID, cl, nullptr),
        KB_ERR_SHAPE, {fn, "1x1 window"});
    EXPECT_NULL_WITH(kb_separable_conv2d(x, dk, nullptr, nullptr, KB_PADDING_VALID, cl, nullptr),
        KB_ERR_INVALID_ARGUMENT, {fn, "pointwise_kernel"});
    EXPECT_NE(kb_separable_conv2d(x, dk, pk, nullptr, KB_PADDING_SAME, cl, nullptr), nullptr) << kb_last_error();
    kb_tensor *x3 = make_var(ctx, std::vector<double>(2 * 7 * 3, 1.0), {2, 7, 3});
    kb_tensor *dk3 = make_var(ctx, std::vector<double>(3 * 3 * 2, 1.0), {3, 3, 2});
    kb_tensor *pk3 = make_var(ctx, std::vector<double>(6 * 4, 1.0), {1, 6, 4});
    fn = "kb_separable_conv1d";
    EXPECT_NULL_WITH(kb_separable_conv1d(x3, dk3, pk3, 1, KB_PADDING_CAUSAL, cl, 1),
        KB_ERR_INVALID_ARGUMENT, {fn, "Invalid padding: 2"});
    EXPECT_NULL_WITH(kb_separable_conv1d(x3, dk3, pk3, 2, KB_PADDING_VALID, cl, 2),
        KB_ERR_INVALID_ARGUMENT, {fn, "dilation_rate > 1"});
    EXPECT_NULL_WITH(kb_separable_conv1d(x3, dk, pk3, 1, KB_PADDING_VALID, cl, 1),
        KB_ERR_SHAPE, {fn, "depthwise_kernel must be 3-D"});
    EXPECT_NULL_WITH(kb_separable_conv1d(x3, dk3, pk3, 0, KB_PADDING_VALID, cl, 1),
        KB_ERR_INVALID_ARGUMENT, {fn, "strides[0] = 0"});
    EXPECT_NE(kb_separable_conv1d(x3, dk3, pk3, 2, KB_PADDING_SAME, cl, 1), nullptr) << kb_last_error();
}

TEST_F(Conv, DepthwiseConv2dBadInput) {
    const char *fn = "kb_depthwise_conv2d";
    kb_tensor *x = make_var(ctx, std::vector<double>(2 * 5 * 5 * 3, 1.0), {2, 5, 5, 3});
    kb_tensor *k = make_var(ctx, std::vector<double>(3 * 3 * 3 * 2, 1.0), {3, 3, 3, 2});
    const int64_t s2[2] = {2, 2}, d2[2] = {2, 2};
    const kb_data_format_arg cl = KB_DATA_FORMAT_CHANNELS_LAST;
    EXPECT_NULL_WITH(kb_depthwise_conv2d(x, k, nullptr, (kb_padding)9, cl, nullptr),
        KB_ERR_INVALID_ARGUMENT, {fn, "Invalid padding: 9"});
    EXPECT_NULL_WITH(kb_depthwise_conv2d(x, k, s2, KB_PADDING_VALID, cl, d2),
        KB_ERR_INVALID_ARGUMENT, {fn, "dilation_rate > 1"});
    EXPECT_NULL_WITH(kb_depthwise_conv2d(x, k, nullptr, KB_PADDING_VALID, KB_DATA_FORMAT_CHANNELS_FIRST, nullptr),
        KB_ERR_SHAPE, {fn, "input channels"});
    kb_tensor *k3 = make_var(ctx, std::vector<double>(3 * 3 * 3, 1.0), {3, 3, 3});
    EXPECT_NULL_WITH(kb_depthwise_conv2d(x, k3, nullptr, KB_PADDING_VALID, cl, nullptr),
        KB_ERR_SHAPE, {fn, "depthwise_kernel must be 4-D"});
    kb_tensor *big = make_var(ctx, std::vector<double>(6 * 6 * 3 * 2, 1.0), {6, 6, 3, 2});
    EXPECT_NULL_WITH(kb_depthwise_conv2d(x, big, nullptr, KB_PADDING_VALID, cl, nullptr),
        KB_ERR_SHAPE, {"Negative dimension size"});
    kb_tensor *k64 = make_var(ctx, std::vector<double>(3 * 3 * 3 * 2, 1.0), {3, 3, 3, 2}, KB_FLOAT64);
    EXPECT_NULL_WITH(kb_depthwise_conv2d(x, k64, nullptr, KB_PADDING_VALID, cl, nullptr), KB_ERR_DTYPE, {});
    EXPECT_NULL_WITH(kb_depthwise_conv2d(x, nullptr, nullptr, KB_PADDING_VALID, cl, nullptr),
        KB_ERR_INVALID_ARGUMENT, {fn, "depthwise_kernel"});
    EXPECT_NE(kb_depthwise_conv2d(x, k, nullptr, KB_PADDING_SAME, cl, nullptr), nullptr) << kb_last_error();
}

}  // namespace

namespace {

using namespace kbt;

// conv1d against a 1-D loop: y[n, t, o] = sum_{j, c} xp[n, t * s + j * d, c] k[j, c, o], xp padded
// with `left` / `right` zeros (TF 'same', or causal's dilation * (k - 1) on the left).
TEST_F(Conv, Conv1dMatchesDirectLoop) {
    struct C {
        int64_t L, K, s, d;
        kb_padding pad;
        bool cf;
    };
    const C cs[] = {{7, 3, 1, 1, KB_PADDING_VALID, false}, {7, 3, 2, 1, KB_PADDING_SAME, true},
                    {8, 4, 3, 1, KB_PADDING_SAME, false},  {6, 3, 1, 2, KB_PADDING_CAUSAL, false},
                    {5, 2, 2, 1, KB_PADDING_CAUSAL, false}, {9, 2, 1, 3, KB_PADDING_SAME, true}};
    const int64_t N = 2, Ci = 3, O = 2;
    for (const C &c : cs) {
        int64_t ke = (c.K - 1) * c.d + 1, left = 0, T;
        if (c.pad == KB_PADDING_SAME) {
            T = (c.L + c.s - 1) / c.s;
            left = std::max<int64_t>((T - 1) * c.s + ke - c.L, 0) / 2;
        } else if (c.pad == KB_PADDING_CAUSAL) {
            left = c.d * (c.K - 1);
            T = (c.L + left - ke) / c.s + 1;
        } else {
            T = (c.L - ke) / c.s + 1;
        }
        Shape xs = c.cf ? Shape{N, Ci, c.L} : Shape{N, c.L, Ci}, ks{c.K, Ci, O};
        auto xv = random_values(gen, (size_t)numel(xs), -1, 1), kv = random_values(gen, (size_t)numel(ks), -1, 1);
        std::vector<double> ref((size_t)(N * T * O), 0.0);
        for (int64_t n = 0; n < N; ++n)
            for (int64_t t = 0; t < T; ++t)
                for (int64_t o = 0; o < O; ++o) {
                    double acc = 0;
                    for (int64_t j = 0; j < c.K; ++j) {
                        int64_t i = t * c.s + j * c.d - left;
                        if (i < 0 || i >= c.L) continue;
                        for (int64_t ci = 0; ci < Ci; ++ci)
                            acc += xv[(size_t)(c.cf ? (n * Ci + ci) * c.L + i : (n * c.L + i) * Ci + ci)] *
                                   kv[(size_t)((j * Ci + ci) * O + o)];
                    }
                    ref[(size_t)(c.cf ? (n * O + o) * T + t : (n * T + t) * O + o)] = acc;
                }
        kb_tensor *y = kb_conv1d(make_var(ctx, xv, xs, KB_FLOAT64), make_var(ctx, kv, ks, KB_FLOAT64), c.s, c.pad,
                                 c.cf ? KB_DATA_FORMAT_CHANNELS_FIRST : KB_DATA_FORMAT_CHANNELS_LAST, c.d);
        ASSERT_NE(y, nullptr) << kb_last_error();
        HostValue hv = eval(y);
        EXPECT_EQ(hv.shape, (c.cf ? Shape{N, O, T} : Shape{N, T, O}));
        EXPECT_TRUE(allclose(hv.v, ref, 1e-12, 1e-12)) << "L=" << c.L << " pad=" << c.pad << " cf=" << c.cf;
    }
}

TEST_F(Conv, Conv1dBadInput) {
    kb_tensor *x = make_var(ctx, std::vector<double>(2 * 5 * 3, 1.0), {2, 5, 3});
    kb_tensor *k = make_var(ctx, std::vector<double>(2 * 3 * 4, 1.0), {2, 3, 4});
    EXPECT_EQ(kb_conv1d(x, k, 1, KB_PADDING_CAUSAL, KB_DATA_FORMAT_CHANNELS_FIRST, 1), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT,
                          {"kb_conv1d", "When using causal padding in `conv1d`, `data_format` must be \"channels_last\""}));
    kb_clear_error();
    EXPECT_NULL_WITH(kb_conv1d(x, k, 1, (kb_padding)-1, KB_DATA_FORMAT_CHANNELS_LAST, 1),
        KB_ERR_INVALID_ARGUMENT, {"kb_conv1d", "Invalid padding: -1"});
    EXPECT_NULL_WITH(kb_conv1d(x, k, 2, KB_PADDING_VALID, KB_DATA_FORMAT_CHANNELS_LAST, 2),
        KB_ERR_INVALID_ARGUMENT, {"kb_conv1d", "dilation_rate > 1"});
    EXPECT_NULL_WITH(kb_conv1d(x, k, 0, KB_PADDING_VALID, KB_DATA_FORMAT_CHANNELS_LAST, 1),
        KB_ERR_INVALID_ARGUMENT, {"kb_conv1d", "strides[0] = 0"});
    EXPECT_NULL_WITH(kb_conv1d(x, x, 1, KB_PADDING_VALID, KB_DATA_FORMAT_CHANNELS_LAST, 1),
        KB_ERR_SHAPE, {"kb_conv1d", "input channels"});
    kb_tensor *x4 = make_var(ctx, std::vector<double>(2 * 5 * 5 * 3, 1.0), {2, 5, 5, 3});
    EXPECT_NULL_WITH(kb_conv1d(x4, k, 1, KB_PADDING_VALID, KB_DATA_FORMAT_CHANNELS_LAST, 1),
        KB_ERR_SHAPE, {"kb_conv1d", "x must be 3-D"});
    EXPECT_NE(kb_conv1d(x, k, 1, KB_PADDING_CAUSAL, KB_DATA_FORMAT_CHANNELS_LAST, 1), nullptr);
}

}  // namespace

namespace {

using namespace kbt;

// pool2d against a loop over each window of the padded image (pads hold no value: max skips them,
// avg divides by the unpadded count), and its gradient: dy at the window's first maximum in
// row-major order (max) or dy / count on each unpadded cell (avg); w empty: values only.
struct PoolRef {
    std::vector<double> y, dx;
    Shape ys;
};
PoolRef pool_ref(const std::vector<double> &x, const Shape &xs, const std::vector<double> &w, const int64_t k[2],
                 const int64_t s[2], bool same, bool cf, bool avg) {
    int64_t N = xs[0], C = cf ? xs[1] : xs[3], H = cf ? xs[2] : xs[1], W = cf ? xs[3] : xs[2];
    int64_t OH = same ? (H + s[0] - 1) / s[0] : (H - k[0]) / s[0] + 1;
    int64_t OW = same ? (W + s[1] - 1) / s[1] : (W - k[1]) / s[1] + 1;
    int64_t pt = same ? std::max<int64_t>((OH - 1) * s[0] + k[0] - H, 0) / 2 : 0;
    int64_t pl = same ? std::max<int64_t>((OW - 1) * s[1] + k[1] - W, 0) / 2 : 0;
    PoolRef r;
    r.ys = cf ? Shape{N, C, OH, OW} : Shape{N, OH, OW, C};
    r.y.assign((size_t)numel(r.ys), 0.0);
    r.dx.assign(x.size(), 0.0);
    auto X = [&](int64_t n, int64_t c, int64_t h, int64_t ww) {
        return cf ? ((n * C + c) * H + h) * W + ww : ((n * H + h) * W + ww) * C + c;
    };
    for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c)
            for (int64_t oh = 0; oh < OH; ++oh)
                for (int64_t ow = 0; ow < OW; ++ow) {
                    int64_t yi = cf ? ((n * C + c) * OH + oh) * OW + ow : ((n * OH + oh) * OW + ow) * C + c;
                    std::vector<int64_t> cells;
                    for (int64_t i = 0; i < k[0]; ++i)
                        for (int64_t j = 0; j < k[1]; ++j) {
                            int64_t h = oh * s[0] - pt + i, ww = ow * s[1] - pl + j;
                            if (h >= 0 && h < H && ww >= 0 && ww < W) cells.push_back(X(n, c, h, ww));
                        }
                    double sum = 0;
                    int64_t best = cells[0];
                    for (int64_t q : cells) {
                        sum += x[(size_t)q];
                        if (x[(size_t)q] > x[(size_t)best]) best = q;
                    }
                    r.y[(size_t)yi] = avg ? sum / (double)cells.size() : x[(size_t)best];
                    if (w.empty()) continue;  // values only
                    if (avg)
                        for (int64_t q : cells) r.dx[(size_t)q] += w[(size_t)yi] / (double)cells.size();
                    else
                        r.dx[(size_t)best] += w[(size_t)yi];
                }
    return r;
}

TEST_F(Conv, Pool2dMatchesWindowLoop) {
    struct C {
        int64_t k[2], s[2];
        bool same;
        Shape x;  // channels_last; channels_first uses the permuted shape
    };
    const C cs[] = {{{2, 2}, {2, 2}, false, {2, 5, 4, 3}}, {{3, 3}, {1, 1}, true, {2, 4, 5, 3}},
                    {{3, 3}, {2, 2}, true, {2, 6, 5, 3}},  {{2, 3}, {1, 2}, true, {1, 3, 6, 2}},
                    {{3, 2}, {3, 1}, false, {1, 7, 4, 2}}, {{4, 4}, {1, 1}, true, {1, 4, 4, 1}}};
    for (const C &c : cs)
        for (bool cf : {false, true})
            for (bool avg : {false, true}) {
                Shape xs = cf ? Shape{c.x[0], c.x[3], c.x[1], c.x[2]} : c.x;
                // Small integers: many ties, so the max gradient shows which maximum gets dy.
                auto xv = random_values(gen, (size_t)numel(xs), -3, 3);
                for (double &v : xv) v = std::round(v);
                PoolRef probe = pool_ref(xv, xs, {}, c.k, c.s, c.same, cf, avg);
                auto wv = random_values(gen, (size_t)numel(probe.ys), -1, 1);
                PoolRef r = pool_ref(xv, xs, wv, c.k, c.s, c.same, cf, avg);
                kb_tensor *x = make_var(ctx, xv, xs, KB_FLOAT64);
                kb_tensor *y = kb_pool2d(x, c.k, c.s, c.same ? KB_PADDING_SAME : KB_PADDING_VALID,
                                         cf ? KB_DATA_FORMAT_CHANNELS_FIRST : KB_DATA_FORMAT_CHANNELS_LAST,
                                         avg ? KB_POOL_AVG : KB_POOL_MAX);
                ASSERT_NE(y, nullptr) << kb_last_error();
                HostValue hv = eval(y);
                EXPECT_EQ(hv.shape, r.ys);
                EXPECT_TRUE(allclose(hv.v, r.y, 1e-12, 1e-12)) << shape_str(xs) << " avg=" << avg;
                kb_tensor *loss = kb_sum(kb_multiply(y, make_const(ctx, wv, r.ys, KB_FLOAT64)), nullptr, 0, 0);
                kb_tensor *g = nullptr;
                ASSERT_TRUE(ok(kb_gradients(loss, &x, 1, &g)));
                EXPECT_TRUE(allclose(eval_v(g), r.dx, 1e-12, 1e-12)) << shape_str(xs) << " avg=" << avg;
            }
}

TEST_F(Conv, Pool2dBadInput) {
    kb_tensor *x = make_var(ctx, std::vector<double>(2 * 4 * 4 * 3, 1.0), {2, 4, 4, 3});
    const int64_t k2[2] = {2, 2}, k5[2] = {5, 1}, k0[2] = {2, 0};
    EXPECT_NULL_WITH(kb_pool2d(x, k2, nullptr, KB_PADDING_VALID, KB_DATA_FORMAT_CHANNELS_LAST, (kb_pool_mode)3),
        KB_ERR_INVALID_ARGUMENT, {"kb_pool2d", "Invalid pool_mode: 3"});
    EXPECT_NULL_WITH(kb_pool2d(x, k2, nullptr, KB_PADDING_CAUSAL, KB_DATA_FORMAT_CHANNELS_LAST, KB_POOL_MAX),
        KB_ERR_INVALID_ARGUMENT, {"kb_pool2d", "Invalid padding: 2"});
    EXPECT_NULL_WITH(kb_pool2d(x, k2, nullptr, KB_PADDING_VALID, (kb_data_format_arg)9, KB_POOL_MAX),
        KB_ERR_INVALID_ARGUMENT, {"kb_pool2d", "Unknown data_format: 9"});
    EXPECT_NULL_WITH(kb_pool2d(x, nullptr, nullptr, KB_PADDING_VALID, KB_DATA_FORMAT_CHANNELS_LAST, KB_POOL_MAX),
        KB_ERR_INVALID_ARGUMENT, {"kb_pool2d", "pool_size"});
    EXPECT_NULL_WITH(kb_pool2d(x, k0, nullptr, KB_PADDING_VALID, KB_DATA_FORMAT_CHANNELS_LAST, KB_POOL_MAX),
        KB_ERR_INVALID_ARGUMENT, {"kb_pool2d", "pool_size[1] = 0"});
    EXPECT_NULL_WITH(kb_pool2d(x, k5, nullptr, KB_PADDING_VALID, KB_DATA_FORMAT_CHANNELS_LAST, KB_POOL_MAX),
        KB_ERR_SHAPE, {"kb_pool2d", "Negative dimension size caused by subtracting 5 from 4"});
    kb_tensor *x3 = make_var(ctx, std::vector<double>(4 * 4 * 3, 1.0), {4, 4, 3});
    EXPECT_NULL_WITH(kb_pool2d(x3, k2, nullptr, KB_PADDING_VALID, KB_DATA_FORMAT_CHANNELS_LAST, KB_POOL_MAX),
        KB_ERR_SHAPE, {"kb_pool2d", "x must be 4-D"});
    // 'same' pools any size; the second derivative of max pooling is refused, avg's exists.
    kb_tensor *y = kb_pool2d(x, k5, k2, KB_PADDING_SAME, KB_DATA_FORMAT_CHANNELS_LAST, KB_POOL_MAX);
    ASSERT_NE(y, nullptr) << kb_last_error();
    EXPECT_EQ(static_shape(y), (Shape{2, 2, 2, 3}));
    kb_tensor *g = nullptr, *gg = nullptr;
    ASSERT_TRUE(ok(kb_gradients(kb_sum(kb_square(y), nullptr, 0, 0), &x, 1, &g)));
    EXPECT_EQ(kb_gradients(kb_sum(kb_square(g), nullptr, 0, 0), &x, 1, &gg), KB_ERR_NOT_SUPPORTED);
    EXPECT_TRUE(has_error(KB_ERR_NOT_SUPPORTED, {"second derivative of max pooling"}));
    kb_clear_error();
    kb_tensor *ya = kb_pool2d(x, k2, nullptr, KB_PADDING_SAME, KB_DATA_FORMAT_CHANNELS_LAST, KB_POOL_AVG);
    ASSERT_TRUE(ok(kb_gradients(kb_sum(kb_square(ya), nullptr, 0, 0), &x, 1, &g)));
    EXPECT_TRUE(ok(kb_gradients(kb_sum(kb_square(g), nullptr, 0, 0), &x, 1, &gg)));
}

}  // namespace

// ---- conv3d, conv3d_transpose, pool3d ------------------------------------------------------------

namespace {

using namespace kbt;

// 3-D geometry of a conv3d case with TF's 'same' arithmetic (odd pad at the back / bottom / right).
struct Geo3 {
    int64_t N, C, O, in[3], k[3], s[3], d[3], out[3], pad[3];
    bool cf;
};

Geo3 geo3(const Shape &xs, const Shape &ks, const int64_t s[3], const int64_t d[3], bool same, bool cf) {
    Geo3 g{};
    g.N = xs[0];
    g.C = cf ? xs[1] : xs[4];
    g.O = ks[4];
    g.cf = cf;
    for (int i = 0; i < 3; ++i) {
        g.in[i] = xs[(cf ? 2 : 1) + i];
        g.k[i] = ks[i];
        g.s[i] = s[i];
        g.d[i] = d[i];
        int64_t ke = (g.k[i] - 1) * d[i] + 1;
        g.out[i] = same ? (g.in[i] + s[i] - 1) / s[i] : (g.in[i] - ke) / s[i] + 1;
        g.pad[i] = same ? std::max<int64_t>((g.out[i] - 1) * s[i] + ke - g.in[i], 0) / 2 : 0;
    }
    return g;
}
// Offset of (n, c, p[3]) in a 5-D tensor of channels C and spatial dims sp in the case's format.
int64_t at5(bool cf, int64_t C, const int64_t sp[3], int64_t n, int64_t c, const int64_t p[3]) {
    int64_t s = (p[0] * sp[1] + p[1]) * sp[2] + p[2];
    return cf ? (n * C + c) * sp[0] * sp[1] * sp[2] + s : (n * sp[0] * sp[1] * sp[2] + s) * C + c;
}
Shape shape5(bool cf, int64_t N, int64_t C, const int64_t sp[3]) {
    return cf ? Shape{N, C, sp[0], sp[1], sp[2]} : Shape{N, sp[0], sp[1], sp[2], C};
}

// Visit every (y index, x index, kernel index) triple of the 3-D cross-correlation inside x.
template <typename F>
void each_tap3(const Geo3 &g, F f) {
    int64_t o[3], kk[3], ip[3];
    for (int64_t n = 0; n < g.N; ++n)
        for (o[0] = 0; o[0] < g.out[0]; ++o[0])
            for (o[1] = 0; o[1] < g.out[1]; ++o[1])
                for (o[2] = 0; o[2] < g.out[2]; ++o[2])
                    for (kk[0] = 0; kk[0] < g.k[0]; ++kk[0])
                        for (kk[1] = 0; kk[1] < g.k[1]; ++kk[1])
                            for (kk[2] = 0; kk[2] < g.k[2]; ++kk[2]) {
                                bool inside = true;
                                for (int i = 0; i < 3; ++i) {
                                    ip[i] = o[i] * g.s[i] - g.pad[i] + kk[i] * g.d[i];
                                    inside = inside && ip[i] >= 0 && ip[i] < g.in[i];
                                }
                                if (!inside) continue;
                                for (int64_t c = 0; c < g.C; ++c)
                                    for (int64_t oc = 0; oc < g.O; ++oc)
                                        f(at5(g.cf, g.O, g.out, n, oc, o), at5(g.cf, g.C, g.in, n, c, ip),
                                          (((kk[0] * g.k[1] + kk[1]) * g.k[2] + kk[2]) * g.C + c) * g.O + oc);
                            }
}

struct Case3 {
    Shape x, k;
    int64_t s[3], d[3];
    bool same, cf;
};

const Case3 kCases3[] = {
    {{2, 4, 5, 4, 2}, {2, 3, 2, 2, 3}, {1, 1, 1}, {1, 1, 1}, false, false},
    {{2, 2, 4, 5, 4}, {2, 3, 2, 2, 3}, {1, 1, 1}, {1, 1, 1}, false, true},
    {{1, 6, 4, 5, 2}, {3, 2, 2, 2, 2}, {2, 2, 1}, {1, 1, 1}, true, false},  // pads 0/1 (d), 0/0 (h), 0/1 (w)
    {{1, 2, 6, 4, 5}, {3, 2, 2, 2, 2}, {2, 2, 1}, {1, 1, 1}, true, true},
    {{1, 5, 4, 6, 1}, {2, 2, 3, 1, 2}, {1, 1, 1}, {2, 1, 2}, true, false},  // dilation
    {{1, 1, 5, 4, 6}, {2, 2, 3, 1, 2}, {1, 1, 1}, {2, 1, 2}, false, true},
    {{2, 5, 6, 7, 1}, {2, 2, 3, 1, 2}, {3, 2, 2}, {1, 1, 1}, false, false},
};

kb_padding pad_of(bool same) { return same ? KB_PADDING_SAME : KB_PADDING_VALID; }
kb_data_format_arg fmt_of(bool cf) { return cf ? KB_DATA_FORMAT_CHANNELS_FIRST : KB_DATA_FORMAT_CHANNELS_LAST; }

TEST_F(Conv, Conv3dMatchesDirectLoop) {
    for (const Case3 &c : kCases3)
        for (kb_dtype dt : kFloats) {
            Geo3 g = geo3(c.x, c.k, c.s, c.d, c.same, c.cf);
            Shape ys = shape5(c.cf, g.N, g.O, g.out);
            auto xv = random_values(gen, (size_t)numel(c.x), -1, 1), kv = random_values(gen, (size_t)numel(c.k), -1, 1);
            std::vector<double> ref((size_t)numel(ys), 0.0);
            each_tap3(g, [&](int64_t y, int64_t x, int64_t k) { ref[(size_t)y] += xv[(size_t)x] * kv[(size_t)k]; });
            kb_tensor *y = kb_conv3d(make_var(ctx, xv, c.x, dt), make_var(ctx, kv, c.k, dt), c.s, pad_of(c.same),
                                     fmt_of(c.cf), c.d);
            ASSERT_NE(y, nullptr) << kb_last_error();
            HostValue hv = eval(y);
            EXPECT_EQ(hv.shape, ys);
            EXPECT_TRUE(allclose(hv.v, ref, dt == KB_FLOAT32 ? Tol{1e-5, 1e-5} : Tol{1e-12, 1e-12}))
                << shape_str(c.x) << " same=" << c.same << " cf=" << c.cf;
        }
}

// The gradients (conv3d_backprop_input / _filter) against the loop's adjoint.
TEST_F(Conv, Conv3dBackwardOpsMatchDirectLoopAdjoint) {
    for (const Case3 &c : kCases3) {
        Geo3 g = geo3(c.x, c.k, c.s, c.d, c.same, c.cf);
        Shape ys = shape5(c.cf, g.N, g.O, g.out);
        auto xv = random_values(gen, (size_t)numel(c.x), -1, 1), kv = random_values(gen, (size_t)numel(c.k), -1, 1);
        auto wv = random_values(gen, (size_t)numel(ys), -1, 1);
        std::vector<double> dx(xv.size(), 0.0), dk(kv.size(), 0.0);
        each_tap3(g, [&](int64_t y, int64_t x, int64_t k) {
            dx[(size_t)x] += wv[(size_t)y] * kv[(size_t)k];
            dk[(size_t)k] += wv[(size_t)y] * xv[(size_t)x];
        });
        kb_tensor *x = make_var(ctx, xv, c.x, KB_FLOAT64), *k = make_var(ctx, kv, c.k, KB_FLOAT64);
        kb_tensor *y = kb_conv3d(x, k, c.s, pad_of(c.same), fmt_of(c.cf), c.d);
        ASSERT_NE(y, nullptr) << kb_last_error();
        kb_tensor *loss = kb_sum(kb_multiply(y, make_const(ctx, wv, ys, KB_FLOAT64)), nullptr, 0, 0);
        kb_tensor *vars[2] = {x, k}, *grads[2] = {nullptr, nullptr};
        ASSERT_TRUE(ok(kb_gradients(loss, vars, 2, grads)));
        EXPECT_TRUE(allclose(eval_v(grads[0]), dx, 1e-12, 1e-12)) << shape_str(c.x);
        EXPECT_TRUE(allclose(eval_v(grads[1]), dk, 1e-12, 1e-12)) << shape_str(c.x);
    }
}

// Spatial dims unknown at graph build: the 'same' pads come from the fed shape (uneven here).
TEST_F(Conv, Conv3dSamePaddingFromRuntimeShape) {
    int64_t ps[5] = {KB_NONE, KB_NONE, KB_NONE, KB_NONE, 2};
    kb_tensor *x = kb_placeholder(ctx, ps, 5, KB_FLOAT64, "x");
    ASSERT_NE(x, nullptr) << kb_last_error();
    Shape ks{3, 2, 2, 2, 3}, xs{2, 6, 4, 5, 2};
    const int64_t s[3] = {2, 2, 1}, d1[3] = {1, 1, 1};
    auto kv = random_values(gen, (size_t)numel(ks), -1, 1), xv = random_values(gen, (size_t)numel(xs), -1, 1);
    kb_tensor *y = kb_conv3d(x, make_var(ctx, kv, ks, KB_FLOAT64), s, KB_PADDING_SAME, KB_DATA_FORMAT_CHANNELS_LAST,
                             nullptr);
    ASSERT_NE(y, nullptr) << kb_last_error();
    Geo3 g = geo3(xs, ks, s, d1, true, false);
    std::vector<double> ref((size_t)(g.N * g.O * g.out[0] * g.out[1] * g.out[2]), 0.0);
    each_tap3(g, [&](int64_t yy, int64_t xx, int64_t k) { ref[(size_t)yy] += xv[(size_t)xx] * kv[(size_t)k]; });
    auto bytes = to_bytes(xv, KB_FLOAT64);
    RunResult r = run_function(ctx, {y}, KB_DEVICE_CPU, {x}, {feed_of(bytes, KB_FLOAT64, xs)});
    ASSERT_TRUE(ok(r.status)) << r.error;
    EXPECT_EQ(r.outs[0].shape, (Shape{2, 3, 2, 5, 3}));
    EXPECT_TRUE(allclose(r.outs[0].v, ref, 1e-12, 1e-12));
}

// The context's image_data_format is the default of conv3d, conv3d_transpose and pool3d.
TEST_F(Conv, Conv3dDefaultDataFormatIsTheContexts) {
    ASSERT_TRUE(ok(kb_set_image_data_format(ctx, KB_CHANNELS_FIRST)));
    Shape xs{1, 2, 3, 4, 3}, ks{2, 2, 2, 2, 1};
    auto xv = random_values(gen, (size_t)numel(xs), -1, 1), kv = random_values(gen, (size_t)numel(ks), -1, 1);
    kb_tensor *x = make_var(ctx, xv, xs, KB_FLOAT64), *k = make_var(ctx, kv, ks, KB_FLOAT64);
    const kb_data_format_arg def = KB_DATA_FORMAT_DEFAULT, cf = KB_DATA_FORMAT_CHANNELS_FIRST;
    const int64_t p2[3] = {2, 2, 2}, os[5] = {1, 2, 3, 4, 3};
    kb_tensor *a = kb_conv3d(x, k, nullptr, KB_PADDING_VALID, def, nullptr);
    kb_tensor *b = kb_conv3d(x, k, nullptr, KB_PADDING_VALID, cf, nullptr);
    kb_tensor *ta = kb_conv3d_transpose(a, k, os, nullptr, KB_PADDING_VALID, def);
    kb_tensor *tb = kb_conv3d_transpose(b, k, os, nullptr, KB_PADDING_VALID, cf);
    kb_tensor *pa = kb_pool3d(x, p2, p2, KB_PADDING_SAME, def, KB_POOL_MAX);
    kb_tensor *pb = kb_pool3d(x, p2, p2, KB_PADDING_SAME, cf, KB_POOL_MAX);
    ASSERT_TRUE(a && b && ta && tb && pa && pb) << kb_last_error();
    EXPECT_EQ(static_shape(a), (Shape{1, 1, 2, 3, 2}));
    EXPECT_EQ(static_shape(pa), (Shape{1, 2, 2, 2, 2}));
    EXPECT_TRUE(allclose(eval_v(a), eval_v(b), 0, 0));
    EXPECT_TRUE(allclose(eval_v(ta), eval_v(tb), 0, 0));
    EXPECT_TRUE(allclose(eval_v(pa), eval_v(pb), 0, 0));
}

TEST_F(Conv, Conv3dBadInput) {
    const char *fn = "kb_conv3d";
    kb_tensor *x = make_var(ctx, std::vector<double>(2 * 4 * 4 * 4 * 2, 1.0), {2, 4, 4, 4, 2});
    kb_tensor *k = make_var(ctx, std::vector<double>(2 * 2 * 2 * 2 * 3, 1.0), {2, 2, 2, 2, 3});
    const int64_t s2[3] = {1, 1, 2}, d2[3] = {2, 1, 1}, zero[3] = {1, 1, 0};
    const kb_data_format_arg cl = KB_DATA_FORMAT_CHANNELS_LAST;
    EXPECT_NULL_WITH(kb_conv3d(x, k, nullptr, KB_PADDING_CAUSAL, cl, nullptr),
        KB_ERR_INVALID_ARGUMENT, {fn, "Invalid padding: 2"});
    EXPECT_NULL_WITH(kb_conv3d(x, k, nullptr, KB_PADDING_VALID, (kb_data_format_arg)4, nullptr),
        KB_ERR_INVALID_ARGUMENT, {fn, "Unknown data_format: 4"});
    EXPECT_NULL_WITH(kb_conv3d(x, k, s2, KB_PADDING_VALID, cl, d2),
        KB_ERR_INVALID_ARGUMENT, {fn, "strides > 1 not supported in conjunction with dilation_rate > 1"});
    EXPECT_NULL_WITH(kb_conv3d(x, k, zero, KB_PADDING_VALID, cl, nullptr),
        KB_ERR_INVALID_ARGUMENT, {fn, "strides[2] = 0"});
    EXPECT_NULL_WITH(kb_conv3d(x, k, nullptr, KB_PADDING_VALID, cl, zero),
        KB_ERR_INVALID_ARGUMENT, {fn, "dilation_rate[2] = 0"});
    // channels_first reads 4 input channels where the kernel has 2.
    EXPECT_NULL_WITH(kb_conv3d(x, k, nullptr, KB_PADDING_VALID, KB_DATA_FORMAT_CHANNELS_FIRST, nullptr),
        KB_ERR_SHAPE, {fn, "input channels"});
    kb_tensor *big = make_var(ctx, std::vector<double>(5 * 2 * 2 * 2 * 3, 1.0), {5, 2, 2, 2, 3});
    EXPECT_NULL_WITH(kb_conv3d(x, big, nullptr, KB_PADDING_VALID, cl, nullptr),
        KB_ERR_SHAPE, {fn, "Negative dimension size caused by subtracting 5 from 4"});
    kb_tensor *k4 = make_var(ctx, std::vector<double>(2 * 2 * 2 * 3, 1.0), {2, 2, 2, 3});
    EXPECT_NULL_WITH(kb_conv3d(x, k4, nullptr, KB_PADDING_VALID, cl, nullptr),
        KB_ERR_SHAPE, {fn, "kernel must be 5-D"});
    kb_tensor *x4 = make_var(ctx, std::vector<double>(2 * 4 * 4 * 2, 1.0), {2, 4, 4, 2});
    EXPECT_NULL_WITH(kb_conv3d(x4, k, nullptr, KB_PADDING_VALID, cl, nullptr), KB_ERR_SHAPE, {fn, "x must be 5-D"});
    kb_tensor *k64 = make_var(ctx, std::vector<double>(2 * 2 * 2 * 2 * 3, 1.0), {2, 2, 2, 2, 3}, KB_FLOAT64);
    EXPECT_NULL_WITH(kb_conv3d(x, k64, nullptr, KB_PADDING_VALID, cl, nullptr),
        KB_ERR_DTYPE, {fn, "kernel dtype float64"});
    kb_tensor *xi = make_var(ctx, std::vector<double>(2 * 4 * 4 * 4 * 2, 1.0), {2, 4, 4, 4, 2}, KB_INT32);
    EXPECT_NULL_WITH(kb_conv3d(xi, k, nullptr, KB_PADDING_VALID, cl, nullptr), KB_ERR_DTYPE, {fn});
    EXPECT_NULL_WITH(kb_conv3d(x, nullptr, nullptr, KB_PADDING_VALID, cl, nullptr),
        KB_ERR_INVALID_ARGUMENT, {fn, "kernel"});
    // The session stays usable.
    kb_tensor *y = kb_conv3d(x, k, nullptr, KB_PADDING_SAME, cl, nullptr);
    ASSERT_NE(y, nullptr) << kb_last_error();
    EXPECT_EQ(static_shape(y), (Shape{2, 4, 4, 4, 3}));
}

// conv3d_transpose scatters: out[x-index] += xt[y-index] * k[k-index] over conv3d's taps, where
// output_shape is conv3d's input shape, xt has conv3d's output shape and the transposed kernel
// (kd, kh, kw, out, in) is indexed as conv3d's (kd, kh, kw, in', out').
TEST_F(Conv, Conv3dTransposeMatchesScatterLoop) {
    for (const Case3 &c : kCases3)
        for (kb_dtype dt : kFloats) {
            if (c.d[0] > 1 || c.d[1] > 1 || c.d[2] > 1) continue;  // no dilation argument (Keras)
            Geo3 g = geo3(c.x, c.k, c.s, c.d, c.same, c.cf);
            Shape ts = shape5(c.cf, g.N, g.O, g.out);
            auto tv = random_values(gen, (size_t)numel(ts), -1, 1), kv = random_values(gen, (size_t)numel(c.k), -1, 1);
            std::vector<double> ref((size_t)numel(c.x), 0.0);
            each_tap3(g, [&](int64_t y, int64_t x, int64_t k) { ref[(size_t)x] += tv[(size_t)y] * kv[(size_t)k]; });
            int64_t os[5] = {c.x[0], c.x[1], c.x[2], c.x[3], c.x[4]};
            kb_tensor *y = kb_conv3d_transpose(make_var(ctx, tv, ts, dt), make_var(ctx, kv, c.k, dt), os, c.s,
                                               pad_of(c.same), fmt_of(c.cf));
            ASSERT_NE(y, nullptr) << kb_last_error();
            HostValue hv = eval(y);
            EXPECT_EQ(hv.shape, c.x);
            EXPECT_TRUE(allclose(hv.v, ref, dt == KB_FLOAT32 ? Tol{1e-5, 1e-5} : Tol{1e-12, 1e-12}))
                << shape_str(c.x) << " same=" << c.same << " cf=" << c.cf;
        }
}

// A KB_NONE batch in output_shape is x's batch at run time; strides 2 with uneven 'same'.
TEST_F(Conv, Conv3dTransposeBatchFromRuntimeShape) {
    int64_t ps[5] = {KB_NONE, 2, 3, 2, 3};
    kb_tensor *x = kb_placeholder(ctx, ps, 5, KB_FLOAT64, "x");
    ASSERT_NE(x, nullptr) << kb_last_error();
    Shape ks{3, 2, 3, 2, 3}, xs{2, 2, 3, 2, 3}, outs{2, 4, 5, 3, 2};
    const int64_t s[3] = {2, 2, 2}, d1[3] = {1, 1, 1};
    auto kv = random_values(gen, (size_t)numel(ks), -1, 1), xv = random_values(gen, (size_t)numel(xs), -1, 1);
    int64_t os[5] = {KB_NONE, 4, 5, 3, 2};
    kb_tensor *y = kb_conv3d_transpose(x, make_var(ctx, kv, ks, KB_FLOAT64), os, s, KB_PADDING_SAME,
                                       KB_DATA_FORMAT_CHANNELS_LAST);
    ASSERT_NE(y, nullptr) << kb_last_error();
    int64_t dims[5];
    ASSERT_EQ(kb_int_shape(y, dims), 5);
    EXPECT_EQ(Shape(dims, dims + 5), (Shape{KB_NONE, 4, 5, 3, 2}));
    Geo3 g = geo3(outs, ks, s, d1, true, false);
    ASSERT_EQ(shape5(false, 2, 3, g.out), xs);
    std::vector<double> ref((size_t)numel(outs), 0.0);
    each_tap3(g, [&](int64_t yy, int64_t xx, int64_t k) { ref[(size_t)xx] += xv[(size_t)yy] * kv[(size_t)k]; });
    auto bytes = to_bytes(xv, KB_FLOAT64);
    RunResult r = run_function(ctx, {y}, KB_DEVICE_CPU, {x}, {feed_of(bytes, KB_FLOAT64, xs)});
    ASSERT_TRUE(ok(r.status)) << r.error;
    EXPECT_EQ(r.outs[0].shape, outs);
    EXPECT_TRUE(allclose(r.outs[0].v, ref, 1e-12, 1e-12));
}

TEST_F(Conv, Conv3dTransposeBadInput) {
    const char *fn = "kb_conv3d_transpose";
    kb_tensor *x = make_var(ctx, std::vector<double>(2 * 3 * 3 * 3 * 2, 1.0), {2, 3, 3, 3, 2});
    kb_tensor *k = make_var(ctx, std::vector<double>(2 * 2 * 2 * 4 * 2, 1.0), {2, 2, 2, 4, 2});
    const int64_t os[5] = {2, 4, 4, 4, 4}, s2[3] = {2, 2, 2}, s0[3] = {1, 0, 1};
    const kb_data_format_arg cl = KB_DATA_FORMAT_CHANNELS_LAST;
    EXPECT_NULL_WITH(kb_conv3d_transpose(x, k, nullptr, nullptr, KB_PADDING_VALID, cl),
        KB_ERR_INVALID_ARGUMENT, {fn, "output_shape"});
    EXPECT_NULL_WITH(kb_conv3d_transpose(x, k, os, nullptr, (kb_padding)5, cl),
        KB_ERR_INVALID_ARGUMENT, {fn, "Invalid padding: 5"});
    EXPECT_NULL_WITH(kb_conv3d_transpose(x, k, os, nullptr, KB_PADDING_VALID, (kb_data_format_arg)7),
        KB_ERR_INVALID_ARGUMENT, {fn, "Unknown data_format: 7"});
    EXPECT_NULL_WITH(kb_conv3d_transpose(x, k, os, s0, KB_PADDING_VALID, cl),
        KB_ERR_INVALID_ARGUMENT, {fn, "strides[1] = 0"});
    const int64_t bad_batch[5] = {3, 4, 4, 4, 4}, zero_dim[5] = {2, 4, 4, 0, 4};
    EXPECT_NULL_WITH(kb_conv3d_transpose(x, k, bad_batch, nullptr, KB_PADDING_VALID, cl),
        KB_ERR_INVALID_ARGUMENT, {fn, "output_shape[0] = 3"});
    EXPECT_NULL_WITH(kb_conv3d_transpose(x, k, zero_dim, nullptr, KB_PADDING_VALID, cl),
        KB_ERR_INVALID_ARGUMENT, {fn, "output_shape[3] = 0"});
    // 'valid' 2x2x2 windows map (2, 5, 4, 4, 4) to 4x3x3, not x's 3x3x3.
    const int64_t wrong[5] = {2, 5, 4, 4, 4}, wrong_c[5] = {2, 4, 4, 4, 3};
    EXPECT_NULL_WITH(kb_conv3d_transpose(x, k, wrong, nullptr, KB_PADDING_VALID, cl),
        KB_ERR_SHAPE, {fn, "does not match the convolution output"});
    EXPECT_NULL_WITH(kb_conv3d_transpose(x, k, wrong_c, nullptr, KB_PADDING_VALID, cl),
        KB_ERR_SHAPE, {fn, "input channels"});
    EXPECT_EQ(kb_conv3d_transpose(x, k, os, s2, KB_PADDING_VALID, cl), nullptr);  // 4 / 2 'valid' -> 2
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {fn, "does not match"}));
    kb_clear_error();
    kb_tensor *k4 = make_var(ctx, std::vector<double>(2 * 2 * 4 * 2, 1.0), {2, 2, 4, 2});
    EXPECT_NULL_WITH(kb_conv3d_transpose(x, k4, os, nullptr, KB_PADDING_VALID, cl),
        KB_ERR_SHAPE, {fn, "kernel must be 5-D"});
    kb_tensor *y = kb_conv3d_transpose(x, k, os, nullptr, KB_PADDING_VALID, cl);
    ASSERT_NE(y, nullptr) << kb_last_error();
    EXPECT_EQ(static_shape(y), (Shape{2, 4, 4, 4, 4}));
}

// pool3d against a loop over each window of the padded volume (pads hold no value: max skips
// them, avg divides by the unpadded count), and its gradient: dy at the window's first maximum in
// (d, h, w) row-major order (max) or dy / count on each unpadded cell (avg).
struct Pool3Ref {
    std::vector<double> y, dx;
    Shape ys;
};
Pool3Ref pool3_ref(const std::vector<double> &x, const Shape &xs, const std::vector<double> &w, const int64_t k[3],
                   const int64_t s[3], bool same, bool cf, bool avg) {
    int64_t N = xs[0], C = cf ? xs[1] : xs[4], in[3], out[3], pad[3];
    for (int i = 0; i < 3; ++i) {
        in[i] = xs[(cf ? 2 : 1) + i];
        out[i] = same ? (in[i] + s[i] - 1) / s[i] : (in[i] - k[i]) / s[i] + 1;
        pad[i] = same ? std::max<int64_t>((out[i] - 1) * s[i] + k[i] - in[i], 0) / 2 : 0;
    }
    Pool3Ref r;
    r.ys = shape5(cf, N, C, out);
    r.y.assign((size_t)numel(r.ys), 0.0);
    r.dx.assign(x.size(), 0.0);
    int64_t o[3], q[3], p[3];
    for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c)
            for (o[0] = 0; o[0] < out[0]; ++o[0])
                for (o[1] = 0; o[1] < out[1]; ++o[1])
                    for (o[2] = 0; o[2] < out[2]; ++o[2]) {
                        std::vector<int64_t> cells;
                        for (q[0] = 0; q[0] < k[0]; ++q[0])
                            for (q[1] = 0; q[1] < k[1]; ++q[1])
                                for (q[2] = 0; q[2] < k[2]; ++q[2]) {
                                    bool inside = true;
                                    for (int i = 0; i < 3; ++i) {
                                        p[i] = o[i] * s[i] - pad[i] + q[i];
                                        inside = inside && p[i] >= 0 && p[i] < in[i];
                                    }
                                    if (inside) cells.push_back(at5(cf, C, in, n, c, p));
                                }
                        int64_t yi = at5(cf, C, out, n, c, o), best = cells[0];
                        double sum = 0;
                        for (int64_t cell : cells) {
                            sum += x[(size_t)cell];
                            if (x[(size_t)cell] > x[(size_t)best]) best = cell;
                        }
                        r.y[(size_t)yi] = avg ? sum / (double)cells.size() : x[(size_t)best];
                        if (w.empty()) continue;
                        if (avg)
                            for (int64_t cell : cells) r.dx[(size_t)cell] += w[(size_t)yi] / (double)cells.size();
                        else
                            r.dx[(size_t)best] += w[(size_t)yi];
                    }
    return r;
}

TEST_F(Conv, Pool3dMatchesWindowLoop) {
    struct C {
        int64_t k[3], s[3];
        bool same;
        Shape x;  // channels_last; channels_first uses the permuted shape
    };
    const C cs[] = {{{2, 2, 2}, {2, 2, 2}, false, {2, 4, 5, 4, 2}},
                    {{3, 3, 2}, {1, 1, 1}, true, {1, 4, 3, 4, 2}},   // pads 1/1, 1/1, 0/1
                    {{3, 2, 3}, {2, 1, 2}, true, {1, 6, 3, 5, 2}},   // pads 0/1 (d), 0/1 (h), 1/1 (w)
                    {{2, 3, 1}, {3, 1, 2}, false, {1, 7, 4, 5, 1}}};
    for (const C &c : cs)
        for (bool cf : {false, true})
            for (bool avg : {false, true}) {
                Shape xs = cf ? Shape{c.x[0], c.x[4], c.x[1], c.x[2], c.x[3]} : c.x;
                // Small integers: many ties, so the max gradient shows which maximum gets dy.
                auto xv = random_values(gen, (size_t)numel(xs), -3, 3);
                for (double &v : xv) v = std::round(v);
                Pool3Ref probe = pool3_ref(xv, xs, {}, c.k, c.s, c.same, cf, avg);
                auto wv = random_values(gen, (size_t)numel(probe.ys), -1, 1);
                Pool3Ref r = pool3_ref(xv, xs, wv, c.k, c.s, c.same, cf, avg);
                kb_tensor *x = make_var(ctx, xv, xs, KB_FLOAT64);
                kb_tensor *y = kb_pool3d(x, c.k, c.s, pad_of(c.same), fmt_of(cf), avg ? KB_POOL_AVG : KB_POOL_MAX);
                ASSERT_NE(y, nullptr) << kb_last_error();
                HostValue hv = eval(y);
                EXPECT_EQ(hv.shape, r.ys);
                EXPECT_TRUE(allclose(hv.v, r.y, 1e-12, 1e-12)) << shape_str(xs) << " avg=" << avg;
                kb_tensor *loss = kb_sum(kb_multiply(y, make_const(ctx, wv, r.ys, KB_FLOAT64)), nullptr, 0, 0);
                kb_tensor *g = nullptr;
                ASSERT_TRUE(ok(kb_gradients(loss, &x, 1, &g)));
                EXPECT_TRUE(allclose(eval_v(g), r.dx, 1e-12, 1e-12)) << shape_str(xs) << " avg=" << avg;
            }
}

TEST_F(Conv, Pool3dBadInput) {
    const char *fn = "kb_pool3d";
    kb_tensor *x = make_var(ctx, std::vector<double>(2 * 4 * 4 * 4 * 3, 1.0), {2, 4, 4, 4, 3});
    const int64_t k2[3] = {2, 2, 2}, k5[3] = {1, 5, 1}, k0[3] = {2, 2, 0};
    const kb_data_format_arg cl = KB_DATA_FORMAT_CHANNELS_LAST;
    EXPECT_NULL_WITH(kb_pool3d(x, k2, nullptr, KB_PADDING_VALID, cl, (kb_pool_mode)2),
        KB_ERR_INVALID_ARGUMENT, {fn, "Invalid pool_mode: 2"});
    EXPECT_NULL_WITH(kb_pool3d(x, k2, nullptr, KB_PADDING_CAUSAL, cl, KB_POOL_MAX),
        KB_ERR_INVALID_ARGUMENT, {fn, "Invalid padding: 2"});
    EXPECT_NULL_WITH(kb_pool3d(x, k2, nullptr, KB_PADDING_VALID, (kb_data_format_arg)9, KB_POOL_MAX),
        KB_ERR_INVALID_ARGUMENT, {fn, "Unknown data_format: 9"});
    EXPECT_NULL_WITH(kb_pool3d(x, nullptr, nullptr, KB_PADDING_VALID, cl, KB_POOL_MAX),
        KB_ERR_INVALID_ARGUMENT, {fn, "pool_size"});
    EXPECT_NULL_WITH(kb_pool3d(x, k0, nullptr, KB_PADDING_VALID, cl, KB_POOL_MAX),
        KB_ERR_INVALID_ARGUMENT, {fn, "pool_size[2] = 0"});
    EXPECT_NULL_WITH(kb_pool3d(x, k2, k0, KB_PADDING_VALID, cl, KB_POOL_MAX),
        KB_ERR_INVALID_ARGUMENT, {fn, "strides[2] = 0"});
    EXPECT_NULL_WITH(kb_pool3d(x, k5, nullptr, KB_PADDING_VALID, cl, KB_POOL_MAX),
        KB_ERR_SHAPE, {fn, "Negative dimension size caused by subtracting 5 from 4"});
    kb_tensor *x4 = make_var(ctx, std::vector<double>(4 * 4 * 4 * 3, 1.0), {4, 4, 4, 3});
    EXPECT_NULL_WITH(kb_pool3d(x4, k2, nullptr, KB_PADDING_VALID, cl, KB_POOL_MAX),
        KB_ERR_SHAPE, {fn, "x must be 5-D"});
    // 'same' pools any size; the second derivative of max pooling is refused, avg's exists.
    kb_tensor *y = kb_pool3d(x, k5, k2, KB_PADDING_SAME, cl, KB_POOL_MAX);
    ASSERT_NE(y, nullptr) << kb_last_error();
    EXPECT_EQ(static_shape(y), (Shape{2, 2, 2, 2, 3}));
    kb_tensor *g = nullptr, *gg = nullptr;
    ASSERT_TRUE(ok(kb_gradients(kb_sum(kb_square(y), nullptr, 0, 0), &x, 1, &g)));
    EXPECT_EQ(kb_gradients(kb_sum(kb_square(g), nullptr, 0, 0), &x, 1, &gg), KB_ERR_NOT_SUPPORTED);
    EXPECT_TRUE(has_error(KB_ERR_NOT_SUPPORTED, {"second derivative of max pooling"}));
    kb_clear_error();
    kb_tensor *ya = kb_pool3d(x, k2, nullptr, KB_PADDING_SAME, cl, KB_POOL_AVG);
    ASSERT_TRUE(ok(kb_gradients(kb_sum(kb_square(ya), nullptr, 0, 0), &x, 1, &g)));
    EXPECT_TRUE(ok(kb_gradients(kb_sum(kb_square(g), nullptr, 0, 0), &x, 1, &gg)));
}

}  // namespace
