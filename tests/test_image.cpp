// Reference values and bad input of the image family: the three padding functions and
// resize_images / resize_volumes (spec 2.4), in both data formats and with the context default.
#include <cmath>

#include "kb_test_util.h"

namespace {

using namespace kbt;

class Image : public KbTest {};

const kb_dtype kFloats[] = {KB_FLOAT32, KB_FLOAT64};

// Index of coordinate c in a C-order shape.
int64_t at(const Shape &s, const std::vector<int64_t> &c) {
    int64_t off = 0;
    for (size_t d = 0; d < s.size(); ++d) off = off * s[d] + c[d];
    return off;
}
std::vector<int64_t> coords(const Shape &s, int64_t i) {
    std::vector<int64_t> c(s.size());
    for (int d = (int)s.size() - 1; d >= 0; --d) c[d] = i % s[d], i /= s[d];
    return c;
}

// Zero padding: before[d] / after[d] per axis.
std::vector<double> pad_ref(const std::vector<double> &x, const Shape &s, const Shape &before, const Shape &after,
                            Shape *so) {
    Shape o = s;
    for (size_t d = 0; d < s.size(); ++d) o[d] += before[d] + after[d];
    std::vector<double> out((size_t)numel(o), 0.0);
    for (int64_t i = 0; i < numel(s); ++i) {
        auto c = coords(s, i);
        for (size_t d = 0; d < s.size(); ++d) c[d] += before[d];
        out[(size_t)at(o, c)] = x[(size_t)i];
    }
    *so = o;
    return out;
}

// np.repeat along every axis by f[d].
std::vector<double> repeat_ref(const std::vector<double> &x, const Shape &s, const Shape &f, Shape *so) {
    Shape o = s;
    for (size_t d = 0; d < s.size(); ++d) o[d] *= f[d];
    std::vector<double> out((size_t)numel(o));
    for (int64_t i = 0; i < numel(o); ++i) {
        auto c = coords(o, i);
        for (size_t d = 0; d < s.size(); ++d) c[d] /= f[d];
        out[(size_t)i] = x[(size_t)at(s, c)];
    }
    *so = o;
    return out;
}

// TF1 resize_bilinear (align_corners=False, half_pixel_centers=False) on axes h, h + 1: source
// coordinate dst * in / out, top-left = floor, neighbours clamped, four-corner weights.
std::vector<double> bilinear_ref(const std::vector<double> &x, const Shape &s, int h, int64_t fh, int64_t fw,
                                 Shape *so) {
    Shape o = s;
    o[h] *= fh;
    o[h + 1] *= fw;
    std::vector<double> out((size_t)numel(o));
    for (int64_t i = 0; i < numel(o); ++i) {
        auto c = coords(o, i);
        double sy = c[h] * (double)s[h] / (double)o[h], sx = c[h + 1] * (double)s[h + 1] / (double)o[h + 1];
        int64_t y0 = (int64_t)std::floor(sy), x0 = (int64_t)std::floor(sx);
        int64_t y1 = std::min(y0 + 1, s[h] - 1), x1 = std::min(x0 + 1, s[h + 1] - 1);
        double ly = sy - y0, lx = sx - x0;
        auto v = [&](int64_t yy, int64_t xx) {
            auto cc = c;
            cc[h] = yy;
            cc[h + 1] = xx;
            return x[(size_t)at(s, cc)];
        };
        out[(size_t)i] = v(y0, x0) * (1 - ly) * (1 - lx) + v(y0, x1) * (1 - ly) * lx + v(y1, x0) * ly * (1 - lx) +
                         v(y1, x1) * ly * lx;
    }
    *so = o;
    return out;
}

// Values as the dtype stores them, so exact comparisons hold in float32.
std::vector<double> as_dtype(const std::vector<double> &v, kb_dtype dt) {
    return from_bytes(to_bytes(v, dt).data(), v.size(), dt);
}

Tol tol_of(kb_dtype dt) { return dt == KB_FLOAT32 ? Tol{1e-5, 1e-6} : Tol{1e-12, 1e-12}; }

TEST_F(Image, Padding) {
    for (kb_dtype dt : kFloats) {
        Shape so;
        auto x3 = as_dtype(random_values(gen, 24, -1, 1), dt);
        HostValue t = eval(kb_temporal_padding(make_const(ctx, x3, {2, 3, 4}, dt), 2, 1));
        auto want = pad_ref(x3, {2, 3, 4}, {0, 2, 0}, {0, 1, 0}, &so);
        EXPECT_EQ(t.shape, so);
        EXPECT_TRUE(allclose(t.v, want, 0, 0));

        const int64_t p2[4] = {1, 0, 2, 3};
        auto x4 = as_dtype(random_values(gen, 48, -1, 1), dt);
        HostValue cl = eval(kb_spatial_2d_padding(make_const(ctx, x4, {2, 3, 4, 2}, dt), p2, KB_DATA_FORMAT_CHANNELS_LAST));
        want = pad_ref(x4, {2, 3, 4, 2}, {0, 1, 2, 0}, {0, 0, 3, 0}, &so);
        EXPECT_EQ(cl.shape, so);
        EXPECT_TRUE(allclose(cl.v, want, 0, 0));
        HostValue cf = eval(kb_spatial_2d_padding(make_const(ctx, x4, {2, 2, 3, 4}, dt), p2, KB_DATA_FORMAT_CHANNELS_FIRST));
        want = pad_ref(x4, {2, 2, 3, 4}, {0, 0, 1, 2}, {0, 0, 0, 3}, &so);
        EXPECT_EQ(cf.shape, so);
        EXPECT_TRUE(allclose(cf.v, want, 0, 0));

        const int64_t p3[6] = {0, 1, 2, 0, 1, 1};
        auto x5 = as_dtype(random_values(gen, 24, -1, 1), dt);
        HostValue v3 = eval(kb_spatial_3d_padding(make_const(ctx, x5, {1, 2, 3, 2, 2}, dt), p3, KB_DATA_FORMAT_CHANNELS_LAST));
        want = pad_ref(x5, {1, 2, 3, 2, 2}, {0, 0, 2, 1, 0}, {0, 1, 0, 1, 0}, &so);
        EXPECT_EQ(v3.shape, so);
        EXPECT_TRUE(allclose(v3.v, want, 0, 0));
    }
    // Any dtype: int64 moved exactly; hand numbers.
    HostValue i = eval(kb_temporal_padding(make_const(ctx, {7, 8}, {1, 2, 1}, KB_INT64), 1, 1));
    EXPECT_EQ(i.dtype, KB_INT64);
    EXPECT_TRUE(allclose(i.v, {0, 7, 8, 0}, 0, 0));
}

TEST_F(Image, PaddingFollowsContextDataFormat) {
    const int64_t p2[4] = {1, 1, 0, 0};
    auto x = random_values(gen, 24, -1, 1);
    ASSERT_TRUE(ok(kb_set_image_data_format(ctx, KB_CHANNELS_FIRST)));
    HostValue cf = eval(kb_spatial_2d_padding(make_const(ctx, x, {1, 2, 3, 4}), p2, KB_DATA_FORMAT_DEFAULT));
    EXPECT_EQ(cf.shape, (Shape{1, 2, 5, 4}));
    ASSERT_TRUE(ok(kb_set_image_data_format(ctx, KB_CHANNELS_LAST)));
    HostValue cl = eval(kb_spatial_2d_padding(make_const(ctx, x, {1, 2, 3, 4}), p2, KB_DATA_FORMAT_DEFAULT));
    EXPECT_EQ(cl.shape, (Shape{1, 4, 3, 4}));
}

TEST_F(Image, ResizeNearestIsRepeat) {
    for (kb_dtype dt : kFloats) {
        Shape so;
        auto x = as_dtype(random_values(gen, 48, -1, 1), dt);
        HostValue cl = eval(kb_resize_images(make_const(ctx, x, {2, 3, 4, 2}, dt), 2, 3, KB_DATA_FORMAT_CHANNELS_LAST,
                                             KB_INTERP_NEAREST));
        auto want = repeat_ref(x, {2, 3, 4, 2}, {1, 2, 3, 1}, &so);
        EXPECT_EQ(cl.shape, so);
        EXPECT_TRUE(allclose(cl.v, want, 0, 0));
        HostValue cf = eval(kb_resize_images(make_const(ctx, x, {2, 2, 3, 4}, dt), 3, 1, KB_DATA_FORMAT_CHANNELS_FIRST,
                                             KB_INTERP_NEAREST));
        want = repeat_ref(x, {2, 2, 3, 4}, {1, 1, 3, 1}, &so);
        EXPECT_EQ(cf.shape, so);
        EXPECT_TRUE(allclose(cf.v, want, 0, 0));
        HostValue v = eval(kb_resize_volumes(make_const(ctx, x, {1, 2, 3, 4, 2}, dt), 2, 1, 2, KB_DATA_FORMAT_CHANNELS_LAST));
        want = repeat_ref(x, {1, 2, 3, 4, 2}, {1, 2, 1, 2, 1}, &so);
        EXPECT_EQ(v.shape, so);
        EXPECT_TRUE(allclose(v.v, want, 0, 0));
        HostValue vf = eval(kb_resize_volumes(make_const(ctx, x, {1, 2, 3, 4, 2}, dt), 1, 2, 3, KB_DATA_FORMAT_CHANNELS_FIRST));
        want = repeat_ref(x, {1, 2, 3, 4, 2}, {1, 1, 1, 2, 3}, &so);
        EXPECT_EQ(vf.shape, so);
        EXPECT_TRUE(allclose(vf.v, want, 0, 0));
    }
}

TEST_F(Image, ResizeBilinearLegacyTf1) {
    for (kb_dtype dt : kFloats) {
        Shape so;
        auto x = as_dtype(random_values(gen, 48, -1, 1), dt);
        HostValue cl = eval(kb_resize_images(make_const(ctx, x, {2, 3, 4, 2}, dt), 2, 3, KB_DATA_FORMAT_CHANNELS_LAST,
                                             KB_INTERP_BILINEAR));
        auto want = bilinear_ref(x, {2, 3, 4, 2}, 1, 2, 3, &so);
        EXPECT_EQ(cl.shape, so);
        EXPECT_TRUE(allclose(cl.v, want, tol_of(dt)));
        HostValue cf = eval(kb_resize_images(make_const(ctx, x, {2, 2, 3, 4}, dt), 4, 2, KB_DATA_FORMAT_CHANNELS_FIRST,
                                             KB_INTERP_BILINEAR));
        want = bilinear_ref(x, {2, 2, 3, 4}, 2, 4, 2, &so);
        EXPECT_EQ(cf.shape, so);
        EXPECT_TRUE(allclose(cf.v, want, tol_of(dt)));
    }
    // Hand numbers, one row [0, 1] upsampled x2 in width: no half-pixel offset, last column clamped.
    HostValue h = eval(kb_resize_images(make_const(ctx, {0, 1}, {1, 1, 2, 1}), 1, 2, KB_DATA_FORMAT_CHANNELS_LAST,
                                        KB_INTERP_BILINEAR));
    EXPECT_TRUE(allclose(h.v, {0, 0.5, 1, 1}, 0, 0));
}

TEST_F(Image, ResizeGradients) {
    // nearest: every input gets the sum of its block; bilinear: the adjoint's column sums are the
    // interpolation weights, so d sum(resize(x)) / dx is fh * fw everywhere but at the clamped
    // edges, where the weight folds back: for [a, b] x2 in width the weights are (1.5, 2.5).
    kb_tensor *x = make_var(ctx, {1, 2}, {1, 1, 2, 1}, KB_FLOAT64);
    kb_tensor *g = nullptr;
    kb_tensor *n = kb_resize_images(x, 2, 2, KB_DATA_FORMAT_CHANNELS_LAST, KB_INTERP_NEAREST);
    ASSERT_TRUE(ok(kb_gradients(kb_sum(n, nullptr, 0, 0), &x, 1, &g)));
    EXPECT_TRUE(allclose(eval_v(g), {4, 4}, 0, 0));
    kb_tensor *b = kb_resize_images(x, 1, 2, KB_DATA_FORMAT_CHANNELS_LAST, KB_INTERP_BILINEAR);
    ASSERT_TRUE(ok(kb_gradients(kb_sum(b, nullptr, 0, 0), &x, 1, &g)));
    EXPECT_TRUE(allclose(eval_v(g), {1.5, 2.5}, 1e-15, 0));
}

TEST_F(Image, Errors) {
    kb_tensor *x4 = make_const(ctx, std::vector<double>(24, 1.0), {1, 2, 3, 4});
    kb_tensor *x3 = make_const(ctx, std::vector<double>(6, 1.0), {1, 2, 3});
    const int64_t p2[4] = {1, 1, 1, 1}, neg[4] = {1, -1, 0, 0}, p3[6] = {1, 1, 1, 1, 1, 1};
    EXPECT_EQ(kb_resize_images(x4, 2, 2, KB_DATA_FORMAT_CHANNELS_LAST, (kb_interpolation)7), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT,
                          {"kb_resize_images", "interpolation should be one of \"nearest\" or \"bilinear\"."}));
    EXPECT_EQ(kb_resize_images(x4, 2, 2, (kb_data_format_arg)5, KB_INTERP_NEAREST), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_resize_images", "Unknown data_format: 5"}));
    EXPECT_EQ(kb_resize_volumes(x4, 1, 1, 1, KB_DATA_FORMAT_CHANNELS_LAST), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"kb_resize_volumes", "5-D"}));
    EXPECT_EQ(kb_resize_volumes(x4, 1, 1, 1, (kb_data_format_arg)-3), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_resize_volumes", "Unknown data_format"}));
    EXPECT_EQ(kb_resize_images(x4, 0, 2, KB_DATA_FORMAT_CHANNELS_LAST, KB_INTERP_NEAREST), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_resize_images", "factor 0"}));
    EXPECT_EQ(kb_resize_images(x3, 2, 2, KB_DATA_FORMAT_CHANNELS_LAST, KB_INTERP_NEAREST), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"kb_resize_images", "4-D", "(1, 2, 3)"}));
    EXPECT_EQ(kb_resize_images(kb_cast(x4, KB_INT32), 2, 2, KB_DATA_FORMAT_CHANNELS_LAST, KB_INTERP_NEAREST), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_DTYPE, {"kb_resize_images"}));
    EXPECT_EQ(kb_temporal_padding(x4, 1, 1), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"kb_temporal_padding", "3-D"}));
    EXPECT_EQ(kb_temporal_padding(x3, -1, 1), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_temporal_padding", "negative"}));
    EXPECT_EQ(kb_spatial_2d_padding(x4, neg, KB_DATA_FORMAT_CHANNELS_LAST), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_spatial_2d_padding", "padding[1] = -1"}));
    EXPECT_EQ(kb_spatial_2d_padding(x4, p2, (kb_data_format_arg)2), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_spatial_2d_padding", "Unknown data_format: 2"}));
    EXPECT_EQ(kb_spatial_3d_padding(x4, p3, KB_DATA_FORMAT_CHANNELS_LAST), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"kb_spatial_3d_padding", "5-D"}));
    kb_clear_error();
    EXPECT_EQ(kb_spatial_2d_padding(x4, nullptr, KB_DATA_FORMAT_CHANNELS_LAST), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_spatial_2d_padding", "padding"}));
    kb_clear_error();
    EXPECT_EQ(kb_resize_images(nullptr, 2, 2, KB_DATA_FORMAT_CHANNELS_LAST, KB_INTERP_NEAREST), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_resize_images", "x"}));
    kb_clear_error();
    // The session stays usable.
    EXPECT_EQ(static_shape(kb_spatial_2d_padding(x4, p2, KB_DATA_FORMAT_CHANNELS_LAST)), (Shape{1, 4, 5, 4}));
}

}  // namespace
