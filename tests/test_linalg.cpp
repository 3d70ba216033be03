// Reference values and bad input of the linalg family: batch_dot (every axes rule and output
// shape of spec 2.2, Keras' error messages), nD dot with unknown dims, gather / scatter_add, and
// the TF32 default.
#include <cstring>

#include "kb_test_util.h"

namespace {

using namespace kbt;

class Linalg : public KbTest {};

const kb_dtype kFloats[] = {KB_FLOAT32, KB_FLOAT64};

Tol tol_of(kb_dtype dt) { return dt == KB_FLOAT32 ? Tol{1e-5, 1e-5} : Tol{1e-12, 1e-12}; }

// Strides of a C-order shape.
std::vector<int64_t> strides(const Shape &s) {
    std::vector<int64_t> st(s.size(), 1);
    for (int i = (int)s.size() - 2; i >= 0; --i) st[i] = st[i + 1] * s[i + 1];
    return st;
}

// The numpy reference of Keras' tests: per sample np.tensordot(x[b], y[b], (a0 - 1, a1 - 1)),
// written as loops over the remaining axes of x then of y; a 1-D result gets a trailing 1.
std::vector<double> batch_dot_ref(const std::vector<double> &x, const Shape &sx, const std::vector<double> &y,
                                  const Shape &sy, int a0, int a1, Shape *so) {
    Shape ox, oy;  // remaining axes (excluding batch)
    std::vector<int> axx, axy;
    for (int i = 1; i < (int)sx.size(); ++i)
        if (i != a0) ox.push_back(sx[i]), axx.push_back(i);
    for (int i = 1; i < (int)sy.size(); ++i)
        if (i != a1) oy.push_back(sy[i]), axy.push_back(i);
    int64_t B = sx[0], K = sx[a0], nx = numel(ox), ny = numel(oy);
    auto stx = strides(sx), sty = strides(sy);
    std::vector<double> out;
    for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < nx; ++i)
            for (int64_t j = 0; j < ny; ++j) {
                int64_t offx = b * stx[0], offy = b * sty[0], r = i;
                for (int d = (int)ox.size() - 1; d >= 0; --d) offx += (r % ox[d]) * stx[axx[d]], r /= ox[d];
                r = j;
                for (int d = (int)oy.size() - 1; d >= 0; --d) offy += (r % oy[d]) * sty[axy[d]], r /= oy[d];
                double acc = 0;
                for (int64_t k = 0; k < K; ++k) acc += x[offx + k * stx[a0]] * y[offy + k * sty[a1]];
                out.push_back(acc);
            }
    *so = {B};
    so->insert(so->end(), ox.begin(), ox.end());
    so->insert(so->end(), oy.begin(), oy.end());
    if (so->size() == 1) so->push_back(1);
    return out;
}

struct BD {
    Shape x, y;
    std::vector<int> axes;
    Shape want;
};

// The spec's table (B = 7) and docstring example, plus negative axes, an int axes and the
// middle-axis cases that need a permute.
const std::vector<BD> kBatchDots = {
    {{7, 3, 4, 5}, {7, 2, 3, 4}, {2, 3}, {7, 3, 5, 2, 3}},
    {{7, 3, 4, 5}, {7, 2, 4}, {2}, {7, 3, 5, 2}},
    {{7, 3, 4}, {7, 2, 3, 4}, {2, 3}, {7, 3, 2, 3}},
    {{7, 4, 3}, {7, 3, 5}, {2, 1}, {7, 4, 5}},
    {{7, 4}, {7, 3, 4}, {1, 2}, {7, 3}},
    {{7, 4}, {7, 4}, {}, {7, 1}},
    {{32, 20, 1}, {32, 30, 20}, {1, 2}, {32, 1, 30}},
    {{7, 4, 3}, {7, 3, 5}, {}, {7, 4, 5}},
    {{7, 4, 3}, {7, 5, 3}, {-1, -1}, {7, 4, 5}},
    {{7, 2, 3, 4}, {7, 5, 3, 2}, {2, 2}, {7, 2, 4, 5, 2}},
    {{7, 3, 4}, {7, 3}, {1, 1}, {7, 4}},
    {{7, 3}, {7, 2, 3, 4}, {}, {7, 2, 4}},
};

int norm(int a, int r) { return a < 0 ? a + r : a; }

TEST_F(Linalg, BatchDotValuesAndShapes) {
    for (kb_dtype dt : kFloats)
        for (const auto &c : kBatchDots) {
            int rx = (int)c.x.size(), ry = (int)c.y.size();
            int a0, a1;
            if (c.axes.empty()) a0 = rx - 1, a1 = ry == 2 ? 1 : ry - 2;
            else if (c.axes.size() == 1) a0 = norm(c.axes[0], rx), a1 = norm(c.axes[0], ry);
            else a0 = norm(c.axes[0], rx), a1 = norm(c.axes[1], ry);
            auto xv = random_values(gen, (size_t)numel(c.x), -1, 1), yv = random_values(gen, (size_t)numel(c.y), -1, 1);
            Shape so;
            auto want = batch_dot_ref(xv, c.x, yv, c.y, a0, a1, &so);
            ASSERT_EQ(so, c.want) << "reference shape of " << shape_str(c.x) << "." << shape_str(c.y);
            kb_tensor *z = kb_batch_dot(make_const(ctx, xv, c.x, dt), make_const(ctx, yv, c.y, dt),
                                        c.axes.empty() ? nullptr : c.axes.data(), (int)c.axes.size());
            ASSERT_NE(z, nullptr) << shape_str(c.x) << "." << shape_str(c.y) << ": " << kb_last_error();
            EXPECT_EQ(static_shape(z), c.want) << shape_str(c.x) << "." << shape_str(c.y);
            HostValue hv = eval(z);
            EXPECT_EQ(hv.shape, c.want);
            EXPECT_TRUE(allclose(hv.v, want, tol_of(dt))) << shape_str(c.x) << "." << shape_str(c.y) << " "
                                                          << kb_dtype_name(dt);
        }
}

TEST_F(Linalg, BatchDotHandNumbers) {
    // x (2, 2), y (2, 2), axes None: row-wise dot products as (B, 1).
    kb_tensor *x = make_const(ctx, {1, 2, 3, 4}, {2, 2}), *y = make_const(ctx, {5, 6, 7, 8}, {2, 2});
    HostValue hv = eval(kb_batch_dot(x, y, nullptr, 0));
    EXPECT_EQ(hv.shape, (Shape{2, 1}));
    EXPECT_TRUE(allclose(hv.v, {17, 53}, 0, 0));
}

TEST_F(Linalg, BatchDotUnknownBatchAndZeroK) {
    // Unknown batch at build, fed at run; K = 0 gives zeros.
    int64_t ps[3] = {-1, 2, 3}, qs[3] = {-1, 3, 2};
    kb_tensor *p = kb_placeholder(ctx, ps, 3, KB_FLOAT64, "p"), *q = kb_placeholder(ctx, qs, 3, KB_FLOAT64, "q");
    int ax[2] = {2, 1};
    kb_tensor *z = kb_batch_dot(p, q, ax, 2);
    ASSERT_NE(z, nullptr) << kb_last_error();
    auto xv = random_values(gen, 12, -1, 1), yv = random_values(gen, 12, -1, 1);
    auto xb = to_bytes(xv, KB_FLOAT64), yb = to_bytes(yv, KB_FLOAT64);
    Shape sx{2, 2, 3}, sy{2, 3, 2};
    RunResult r = run_function(ctx, {z}, KB_DEVICE_CPU, {p, q}, {feed_of(xb, KB_FLOAT64, sx), feed_of(yb, KB_FLOAT64, sy)});
    ASSERT_EQ(r.status, KB_OK) << r.error;
    Shape so;
    auto want = batch_dot_ref(xv, sx, yv, sy, 2, 1, &so);
    EXPECT_EQ(r.outs[0].shape, so);
    EXPECT_TRUE(allclose(r.outs[0].v, want, 1e-12, 1e-12));

    int64_t es[3] = {2, 3, 0}, fs[3] = {2, 0, 4};
    kb_tensor *pe = kb_placeholder(ctx, es, 3, KB_FLOAT32, "pe"), *pf = kb_placeholder(ctx, fs, 3, KB_FLOAT32, "pf");
    kb_tensor *e = kb_batch_dot(pe, pf, nullptr, 0);
    ASSERT_NE(e, nullptr) << kb_last_error();
    std::vector<unsigned char> none(1);
    Shape s0{2, 3, 0}, s1{2, 0, 4};
    kb_feed f0 = feed_of(none, KB_FLOAT32, s0), f1 = feed_of(none, KB_FLOAT32, s1);
    f0.nbytes = f1.nbytes = 0;
    RunResult re = run_function(ctx, {e}, KB_DEVICE_CPU, {pe, pf}, {f0, f1});
    ASSERT_EQ(re.status, KB_OK) << re.error;
    EXPECT_EQ(re.outs[0].shape, (Shape{2, 3, 4}));
    EXPECT_TRUE(allclose(re.outs[0].v, std::vector<double>(24, 0.0), 0, 0));
}

TEST_F(Linalg, BatchDotErrors) {
    kb_tensor *x3 = make_const(ctx, std::vector<double>(24, 1.0), {2, 3, 4});
    kb_tensor *y3 = make_const(ctx, std::vector<double>(30, 1.0), {2, 3, 5});
    kb_tensor *v2 = make_const(ctx, {1, 2}, {2});
    kb_tensor *b3 = make_const(ctx, std::vector<double>(36, 1.0), {3, 3, 4});
    int ax12[2] = {1, 2}, ax0[2] = {0, 1}, ax21[2] = {2, 1}, ax_out[2] = {3, 1};
    EXPECT_EQ(kb_batch_dot(x3, v2, nullptr, 0), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"kb_batch_dot", "Can not do batch_dot on inputs with rank < 2",
                                         "Received inputs with shapes (2, 3, 4) and (2,)"}));
    EXPECT_EQ(kb_batch_dot(x3, b3, nullptr, 0), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"Can not do batch_dot on inputs with different batch sizes"}));
    EXPECT_EQ(kb_batch_dot(x3, y3, ax0, 2), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_AXIS, {"Can not perform batch_dot over axis 0.If your inputs are not batched",
                                        "K.expand_dims(x, 0)"}));
    EXPECT_EQ(kb_batch_dot(x3, y3, ax21, 2), nullptr);  // x axis 2 (4) vs y axis 1 (3)
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"with axes=[2, 1]", "x.shape[2] != y.shape[1] (4 != 3)"}));
    EXPECT_EQ(kb_batch_dot(x3, y3, ax_out, 2), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_AXIS, {"kb_batch_dot", "out of range"}));
    int three[3] = {1, 1, 1};
    EXPECT_EQ(kb_batch_dot(x3, y3, three, 3), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"Multiple target dimensions are not supported"}));
    kb_clear_error();
    EXPECT_EQ(kb_batch_dot(x3, y3, nullptr, 2), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_batch_dot", "axes"}));
    kb_clear_error();
    EXPECT_EQ(kb_batch_dot(nullptr, y3, ax12, 2), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_batch_dot", "x"}));
    kb_tensor *i3 = kb_cast(y3, KB_INT32);
    EXPECT_EQ(kb_batch_dot(x3, i3, ax12, 2), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_DTYPE, {"kb_batch_dot"}));
    kb_clear_error();
    // The session stays usable.
    int ax11[2] = {1, 1};
    EXPECT_EQ(static_shape(kb_batch_dot(x3, y3, ax11, 2)), (Shape{2, 4, 5}));
}

// np.dot reference for x (..., K) and y (B..., K, N).
std::vector<double> dot_nd_ref(const std::vector<double> &x, const Shape &sx, const std::vector<double> &y,
                               const Shape &sy) {
    int64_t K = sx.back(), M = numel(sx) / K, N = sy.back(), B = numel(sy) / (K * N);
    std::vector<double> out((size_t)(M * B * N), 0.0);
    for (int64_t m = 0; m < M; ++m)
        for (int64_t b = 0; b < B; ++b)
            for (int64_t n = 0; n < N; ++n)
                for (int64_t k = 0; k < K; ++k) out[(m * B + b) * N + n] += x[m * K + k] * y[(b * K + k) * N + n];
    return out;
}

TEST_F(Linalg, DotNdWithUnknownDims) {
    // Before the tensor-API issue this was KB_ERR_NOT_SUPPORTED (more than one unknown dim).
    int64_t ps[3] = {-1, -1, 3}, qs[3] = {-1, 3, -1};
    kb_tensor *p = kb_placeholder(ctx, ps, 3, KB_FLOAT64, "p"), *q = kb_placeholder(ctx, qs, 3, KB_FLOAT64, "q");
    kb_tensor *z = kb_dot(p, q);
    ASSERT_NE(z, nullptr) << kb_last_error();
    ASSERT_EQ(kb_ndim(z), 4);
    Shape sx{2, 4, 3}, sy{5, 3, 2};
    auto xv = random_values(gen, (size_t)numel(sx), -1, 1), yv = random_values(gen, (size_t)numel(sy), -1, 1);
    auto xb = to_bytes(xv, KB_FLOAT64), yb = to_bytes(yv, KB_FLOAT64);
    kb_tensor *g = nullptr;
    ASSERT_TRUE(ok(kb_gradients(kb_sum(z, nullptr, 0, 0), &q, 1, &g)));
    RunResult r =
        run_function(ctx, {z, g}, KB_DEVICE_CPU, {p, q}, {feed_of(xb, KB_FLOAT64, sx), feed_of(yb, KB_FLOAT64, sy)});
    ASSERT_EQ(r.status, KB_OK) << r.error;
    EXPECT_EQ(r.outs[0].shape, (Shape{2, 4, 5, 2}));
    EXPECT_TRUE(allclose(r.outs[0].v, dot_nd_ref(xv, sx, yv, sy), 1e-12, 1e-12));
    // d sum(z) / dy[b, k, n] = sum over x's rows of x[..., k].
    std::vector<double> colsum(3, 0.0), want;
    for (int64_t i = 0; i < 8; ++i)
        for (int k = 0; k < 3; ++k) colsum[k] += xv[i * 3 + k];
    for (int b = 0; b < 5; ++b)
        for (int k = 0; k < 3; ++k)
            for (int n = 0; n < 2; ++n) want.push_back(colsum[k]);
    EXPECT_EQ(r.outs[1].shape, sy);
    EXPECT_TRUE(allclose(r.outs[1].v, want, 1e-12, 1e-12));
}

TEST_F(Linalg, Tf32IsOffByDefault) {
    EXPECT_EQ(kb_allow_tf32(ctx), 0);
}

// batch_dot on CUDA runs strict float32 unless TF32 is opted in (cf. Parity.DotLargeStrictFloat32).
TEST_F(Linalg, BatchDotLargeStrictFloat32) {
    KB_REQUIRE_CUDA();
    const int64_t b = 4, m = 64, k = 256, n = 48;
    kb_tensor *x = make_var(ctx, random_values(gen, b * m * k, -1, 1), {b, m, k});
    kb_tensor *y = make_var(ctx, random_values(gen, b * k * n, -1, 1), {b, k, n});
    kb_tensor *z = kb_batch_dot(x, y, nullptr, 0);
    RunResult rc = run_function(ctx, {z}, KB_DEVICE_CPU), rd = run_function(ctx, {z}, KB_DEVICE_CUDA);
    ASSERT_EQ(rc.status, KB_OK) << rc.error;
    ASSERT_EQ(rd.status, KB_OK) << rd.error;
    // TF32 would give ~1e-3 relative error; strict float32 stays near 1e-6.
    EXPECT_TRUE(allclose(rd.outs[0].v, rc.outs[0].v, 1e-4, 1e-4));
}

TEST_F(Linalg, GatherValues) {
    // int32 reference (any dtype is moved), int32 and int64 indices, repeated rows.
    kb_tensor *ref = make_const(ctx, {0, 1, 10, 11, 20, 21}, {3, 2}, KB_INT32);
    for (kb_dtype it : {KB_INT32, KB_INT64}) {
        kb_tensor *idx = make_const(ctx, {2, 0, 2, 1}, {2, 2}, it);
        HostValue hv = eval(kb_gather(ref, idx));
        EXPECT_EQ(hv.dtype, KB_INT32);
        EXPECT_EQ(hv.shape, (Shape{2, 2, 2}));
        EXPECT_TRUE(allclose(hv.v, {20, 21, 0, 1, 20, 21, 10, 11}, 0, 0));
    }
    // Scalar index: output reference.shape[1:]; float16 reference.
    kb_tensor *h = make_const(ctx, {0.5, 1.5, 2.5}, {3}, KB_FLOAT16);
    HostValue hv = eval(kb_gather(h, make_const(ctx, {1}, {}, KB_INT64)));
    EXPECT_EQ(hv.shape, Shape{});
    EXPECT_TRUE(allclose(hv.v, {1.5}, 0, 0));
    // Unknown index count at build, resolved at run.
    int64_t is[1] = {-1};
    kb_tensor *pi = kb_placeholder(ctx, is, 1, KB_INT64, "pi");
    kb_tensor *z = kb_gather(ref, pi);
    ASSERT_NE(z, nullptr) << kb_last_error();
    EXPECT_EQ(kb_ndim(z), 2);
    std::vector<unsigned char> ib = to_bytes({1, 1, 2}, KB_INT64);
    Shape s3{3};
    RunResult r = run_function(ctx, {z}, KB_DEVICE_CPU, {pi}, {feed_of(ib, KB_INT64, s3)});
    ASSERT_EQ(r.status, KB_OK) << r.error;
    EXPECT_EQ(r.outs[0].shape, (Shape{3, 2}));
    EXPECT_TRUE(allclose(r.outs[0].v, {10, 11, 10, 11, 20, 21}, 0, 0));
}

TEST_F(Linalg, GatherGradientAddsRepeatedRows) {
    kb_tensor *ref = make_var(ctx, {1, 2, 3, 4, 5, 6}, {3, 2}, KB_FLOAT64);
    kb_tensor *idx = make_const(ctx, {2, 0, 2}, {3}, KB_INT64);
    kb_tensor *w = make_const(ctx, {1, 2, 3, 4, 5, 6}, {3, 2}, KB_FLOAT64);
    kb_tensor *loss = kb_sum(kb_multiply(kb_gather(ref, idx), w), nullptr, 0, 0);
    kb_tensor *g = nullptr;
    ASSERT_TRUE(ok(kb_gradients(loss, &ref, 1, &g)));
    // row 0 <- w[1]; row 1 untouched; row 2 <- w[0] + w[2].
    EXPECT_TRUE(allclose(eval_v(g), {3, 4, 0, 0, 6, 8}, 0, 0));
}

TEST_F(Linalg, GatherErrors) {
    kb_tensor *ref = make_const(ctx, {1, 2, 3, 4, 5, 6}, {3, 2});
    for (double bad : {3.0, -1.0}) {
        kb_tensor *z = kb_gather(ref, make_const(ctx, {0, bad}, {2}, KB_INT32));
        ASSERT_NE(z, nullptr);
        std::vector<float> out(4);
        EXPECT_EQ(kb_eval(z, out.data(), out.size() * sizeof(float)), KB_ERR_INVALID_ARGUMENT);
        EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"gather", "indices[1]", "out of range [0, 3)"}));
        kb_clear_error();
    }
    EXPECT_EQ(kb_gather(ref, make_const(ctx, {0}, {1}, KB_FLOAT32)), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_DTYPE, {"kb_gather", "indices", "int32 or int64"}));
    kb_clear_error();
    EXPECT_EQ(kb_gather(make_const(ctx, {1}, {}), make_const(ctx, {0}, {1}, KB_INT32)), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"kb_gather", "reference"}));
    kb_clear_error();
    EXPECT_EQ(kb_gather(nullptr, make_const(ctx, {0}, {1}, KB_INT32)), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_gather", "reference"}));
    kb_clear_error();
    EXPECT_TRUE(allclose(eval_v(kb_gather(ref, make_const(ctx, {1}, {1}, KB_INT32))), {3, 4}, 0, 0));
}

}  // namespace
