// Op cases of the conv family (see op_cases.h): conv2d in both data formats with strides,
// dilation, 'valid', symmetric and asymmetric 'same' (the odd pad at the bottom / right), conv1d
// (valid / same / causal) through conv2d, and the backward-data / backward-filter ops through vjp;
// conv3d / conv3d_transpose / pool3d likewise in 3-D (small volumes: finite differences are costly).
#include "op_cases.h"

namespace kbt {

namespace {
const Range sym{-1.0, 1.0};

struct Conv {
    const char *name;
    int64_t s[2], d[2];
    kb_padding pad;
    int64_t h, w, kh, kw;  // image and kernel size
};
// x: (2, h, w, 3) / (2, 3, h, w); kernel (kh, kw, 3, 2).
const Conv kConvs[] = {
    {"valid_s1", {1, 1}, {1, 1}, KB_PADDING_VALID, 5, 5, 3, 3},
    {"valid_s2", {2, 2}, {1, 1}, KB_PADDING_VALID, 5, 5, 3, 3},
    {"same_s1", {1, 1}, {1, 1}, KB_PADDING_SAME, 5, 5, 3, 3},
    {"same_s2_sym", {2, 2}, {1, 1}, KB_PADDING_SAME, 5, 5, 3, 3},      // pad 1 / 1
    {"same_s2_asym", {2, 2}, {1, 1}, KB_PADDING_SAME, 6, 6, 3, 3},     // pad 0 / 1
    {"same_s12_k2x3", {1, 2}, {1, 1}, KB_PADDING_SAME, 4, 5, 2, 3},    // even kernel: pad 0 / 1 rows
    {"valid_d2", {1, 1}, {2, 2}, KB_PADDING_VALID, 6, 5, 3, 2},
    {"same_d2", {1, 1}, {2, 1}, KB_PADDING_SAME, 5, 5, 3, 3},
};

Shape x_shape(const Conv &c, int cf) { return cf ? Shape{2, 3, c.h, c.w} : Shape{2, c.h, c.w, 3}; }
Shape k_shape(const Conv &c) { return {c.kh, c.kw, 3, 2}; }
int64_t out_dim(int64_t in, int64_t k, int64_t s, int64_t d, kb_padding p) {
    return p == KB_PADDING_SAME ? (in + s - 1) / s : (in - (k - 1) * d - 1) / s + 1;
}
Shape y_shape(const Conv &c, int cf) {
    int64_t oh = out_dim(c.h, c.kh, c.s[0], c.d[0], c.pad), ow = out_dim(c.w, c.kw, c.s[1], c.d[1], c.pad);
    return cf ? Shape{2, 2, oh, ow} : Shape{2, oh, ow, 2};
}
kb_data_format_arg fmt(int cf) { return cf ? KB_DATA_FORMAT_CHANNELS_FIRST : KB_DATA_FORMAT_CHANNELS_LAST; }
// conv3d (+ backward ops through vjp, conv3d_transpose) and pool3d (+ pool3d_grad): small volumes,
// both formats, 'valid', asymmetric 'same', strides, dilation.
struct Conv3 {
    const char *name;
    int64_t s[3], d[3];
    kb_padding pad;
    int64_t sp[3], k[3];  // volume and window
};
const Conv3 kConv3s[] = {
    {"valid_s1", {1, 1, 1}, {1, 1, 1}, KB_PADDING_VALID, {3, 4, 3}, {2, 2, 2}},
    {"same_s2_asym", {2, 1, 2}, {1, 1, 1}, KB_PADDING_SAME, {4, 3, 3}, {3, 2, 2}},  // pads 0/1, 0/1, 0/1
    {"same_d2", {1, 1, 1}, {2, 1, 1}, KB_PADDING_SAME, {4, 3, 3}, {2, 2, 1}},
};

Shape vol(int cf, int64_t n, int64_t c, const int64_t sp[3]) {
    return cf ? Shape{n, c, sp[0], sp[1], sp[2]} : Shape{n, sp[0], sp[1], sp[2], c};
}

void add_conv3d_cases(std::vector<OpCase> &v) {
    for (const Conv3 &c : kConv3s)
        for (int cf = 0; cf < 2; ++cf) {
            std::string tag = std::string(c.name) + (cf ? "_cf" : "_cl");
            int64_t out[3];
            for (int i = 0; i < 3; ++i) out[i] = out_dim(c.sp[i], c.k[i], c.s[i], c.d[i], c.pad);
            Shape xs = vol(cf, 2, 2, c.sp), ks{c.k[0], c.k[1], c.k[2], 2, 3}, ys = vol(cf, 2, 3, out);
            Builder conv = [c, cf](kb_context *, In in) { return kb_conv3d(in[0], in[1], c.s, c.pad, fmt(cf), c.d); };
            v.push_back(mk(KB_OP_CONV3D, "conv3d_" + tag, conv, {xs, ks}, {sym}, true, T32R, T64R));
            v.back().half = true;
            v.push_back(mk(KB_OP_CONV3D_BACKPROP_INPUT, "conv3d_backprop_input_" + tag,
                           [conv](kb_context *ctx, In in) { return vjp(conv(ctx, in), in[2], in[0]); }, {xs, ks, ys},
                           {sym}, true, T32R, T64R));
            v.push_back(mk(KB_OP_CONV3D_BACKPROP_FILTER, "conv3d_backprop_filter_" + tag,
                           [conv](kb_context *ctx, In in) { return vjp(conv(ctx, in), in[2], in[1]); }, {xs, ks, ys},
                           {sym}, true, T32R, T64R));
            if (c.d[0] > 1 || c.d[1] > 1 || c.d[2] > 1) continue;  // conv3d_transpose has no dilation
            int64_t os[5] = {xs[0], xs[1], xs[2], xs[3], xs[4]};
            v.push_back(mk(KB_OP_CONV3D_BACKPROP_INPUT, "conv3d_transpose_" + tag,
                           [c, cf, os](kb_context *, In in) {
                               return kb_conv3d_transpose(in[0], in[1], os, c.s, c.pad, fmt(cf));
                           },
                           {ys, ks}, {sym}, true, T32R, T64R));
            v.back().half = true;
        }
    struct P3 {
        const char *name;
        int64_t k[3], s[3];
        kb_padding pad;
        int64_t sp[3];
    };
    const P3 ps[] = {{"valid_k2_s2", {2, 2, 2}, {2, 2, 2}, KB_PADDING_VALID, {4, 3, 4}},
                     {"same_k3_s1", {3, 3, 2}, {1, 1, 1}, KB_PADDING_SAME, {3, 3, 2}},         // 1/1, 1/1, 0/1
                     {"same_k3_s2_asym", {3, 2, 3}, {2, 1, 2}, KB_PADDING_SAME, {4, 3, 5}}};  // 0/1, 0/1, 1/1
    for (const P3 &p : ps)
        for (int avg = 0; avg < 2; ++avg)
            for (int cf = 0; cf < 2; ++cf) {
                std::string tag = std::string(avg ? "avg_" : "max_") + p.name + (cf ? "_cf" : "_cl");
                kb_pool_mode mode = avg ? KB_POOL_AVG : KB_POOL_MAX;
                Builder pool = [p, cf, mode](kb_context *, In in) {
                    return kb_pool3d(in[0], p.k, p.s, p.pad, fmt(cf), mode);
                };
                int64_t out[3];
                for (int i = 0; i < 3; ++i) out[i] = out_dim(p.sp[i], p.k[i], p.s[i], 1, p.pad);
                Shape xs = vol(cf, 2, 2, p.sp), ys = vol(cf, 2, 2, out);
                v.push_back(mk(KB_OP_POOL3D, "pool3d_" + tag, pool, {xs}, {sym}, true, T32R, T64R));
                v.back().half = true;
                v.push_back(mk(KB_OP_POOL3D_GRAD, "pool3d_grad_" + tag,
                               [pool](kb_context *ctx, In in) { return vjp(pool(ctx, in), in[1], in[0]); }, {xs, ys},
                               {sym}, avg == 1, T32R, T64R));
            }
}
}  // namespace

void add_conv_cases(std::vector<OpCase> &v) {
    for (const Conv &c : kConvs)
        for (int cf = 0; cf < 2; ++cf) {
            std::string tag = std::string(c.name) + (cf ? "_cf" : "_cl");
            Builder conv = [c, cf](kb_context *, In in) { return kb_conv2d(in[0], in[1], c.s, c.pad, fmt(cf), c.d); };
            v.push_back(mk(KB_OP_CONV2D, "conv2d_" + tag, conv, {x_shape(c, cf), k_shape(c)}, {sym}, true, T32R, T64R));
            v.back().half = true;
            v.push_back(mk(KB_OP_CONV2D_BACKPROP_INPUT, "conv2d_backprop_input_" + tag,
                           [conv](kb_context *ctx, In in) { return vjp(conv(ctx, in), in[2], in[0]); },
                           {x_shape(c, cf), k_shape(c), y_shape(c, cf)}, {sym}, true, T32R, T64R));
            v.push_back(mk(KB_OP_CONV2D_BACKPROP_FILTER, "conv2d_backprop_filter_" + tag,
                           [conv](kb_context *ctx, In in) { return vjp(conv(ctx, in), in[2], in[1]); },
                           {x_shape(c, cf), k_shape(c), y_shape(c, cf)}, {sym}, true, T32R, T64R));
        }
    // conv2d_transpose: conv2d_backprop_input with x as dy; output_shape = conv2d's input shape.
    for (const Conv &c : kConvs)
        for (int cf = 0; c.d[0] == c.d[1] && cf < 2; ++cf) {  // unequal dilation is refused (atrous)
            Shape xs = x_shape(c, cf);
            int64_t os[4] = {xs[0], xs[1], xs[2], xs[3]};
            Builder tr = [c, cf, os](kb_context *, In in) {
                return kb_conv2d_transpose(in[0], in[1], os, c.s, c.pad, fmt(cf), c.d);
            };
            v.push_back(mk(KB_OP_CONV2D_BACKPROP_INPUT, std::string("conv2d_transpose_") + c.name + (cf ? "_cf" : "_cl"),
                           tr, {y_shape(c, cf), k_shape(c)}, {sym}, true, T32R, T64R));
        }
    // depthwise_conv2d: conv2d with groups = 3 and the (kh, kw, 3, 2) kernel seen as (kh, kw, 1, 6);
    // its grouped backward-data / backward-filter ops through vjp (dy has 6 channels).
    for (const Conv &c : kConvs)
        for (int cf = 0; cf < 2; ++cf) {
            std::string tag = std::string(c.name) + (cf ? "_cf" : "_cl");
            Builder dw = [c, cf](kb_context *, In in) {
                return kb_depthwise_conv2d(in[0], in[1], c.s, c.pad, fmt(cf), c.d);
            };
            v.push_back(mk(KB_OP_CONV2D, "depthwise_conv2d_" + tag, dw, {x_shape(c, cf), k_shape(c)}, {sym}, true,
                           T32R, T64R));
            v.back().half = true;
            Shape ys = y_shape(c, cf);
            ys[cf ? 1 : 3] = 6;
            v.push_back(mk(KB_OP_CONV2D_BACKPROP_INPUT, "depthwise_conv2d_backprop_input_" + tag,
                           [dw](kb_context *ctx, In in) { return vjp(dw(ctx, in), in[2], in[0]); },
                           {x_shape(c, cf), k_shape(c), ys}, {sym}, true, T32R, T64R));
            v.push_back(mk(KB_OP_CONV2D_BACKPROP_FILTER, "depthwise_conv2d_backprop_filter_" + tag,
                           [dw](kb_context *ctx, In in) { return vjp(dw(ctx, in), in[2], in[1]); },
                           {x_shape(c, cf), k_shape(c), ys}, {sym}, true, T32R, T64R));
        }
    // separable_conv2d / separable_conv1d: the depthwise cases, then a 1x1 conv to 2 channels.
    for (const Conv &c : kConvs)
        for (int cf = 0; cf < 2; ++cf) {
            v.push_back(mk(KB_OP_CONV2D, std::string("separable_conv2d_") + c.name + (cf ? "_cf" : "_cl"),
                           [c, cf](kb_context *, In in) {
                               return kb_separable_conv2d(in[0], in[1], in[2], c.s, c.pad, fmt(cf), c.d);
                           },
                           {x_shape(c, cf), k_shape(c), {1, 1, 6, 2}}, {sym}, true, T32R, T64R));
            v.back().half = true;
        }
    v.push_back(mk(KB_OP_CONV2D, "separable_conv1d_same_s2_cf",
                   [](kb_context *, In in) {
                       return kb_separable_conv1d(in[0], in[1], in[2], 2, KB_PADDING_SAME, fmt(1), 1);
                   },
                   {{2, 3, 7}, {3, 3, 2}, {1, 6, 2}}, {sym}, true, T32R, T64R));
    v.push_back(mk(KB_OP_CONV2D, "separable_conv1d_valid_d2_cl",
                   [](kb_context *, In in) {
                       return kb_separable_conv1d(in[0], in[1], in[2], 1, KB_PADDING_VALID, fmt(0), 2);
                   },
                   {{2, 7, 3}, {2, 3, 2}, {1, 6, 2}}, {sym}, true, T32R, T64R));
    // conv1d: conv2d on an inserted axis; causal = temporal_padding then 'valid'.
    struct C1 {
        const char *name;
        int64_t s, d;
        kb_padding pad;
        int cf;
        Shape x;
    };
    const C1 c1s[] = {{"valid_s2_cl", 2, 1, KB_PADDING_VALID, 0, {2, 7, 3}},
                      {"same_s2_cf", 2, 1, KB_PADDING_SAME, 1, {2, 3, 6}},
                      {"same_d2_cl", 1, 2, KB_PADDING_SAME, 0, {2, 6, 3}},
                      {"causal_d2_cl", 1, 2, KB_PADDING_CAUSAL, 0, {2, 5, 3}}};
    for (const C1 &c : c1s) {
        v.push_back(mk(KB_OP_CONV2D, std::string("conv1d_") + c.name,
                       [c](kb_context *, In in) { return kb_conv1d(in[0], in[1], c.s, c.pad, fmt(c.cf), c.d); },
                       {c.x, {3, 3, 2}}, {sym}, true, T32R, T64R));
        v.back().half = true;
    }
    // pool2d: max / avg, valid, symmetric and asymmetric 'same'; pool2d_grad through vjp (its own
    // gradient exists for avg only: the second derivative of max pooling is refused).
    struct P {
        const char *name;
        int64_t k[2], s[2];
        kb_padding pad;
        int64_t h, w;
    };
    const P ps[] = {{"valid_k2_s2", {2, 2}, {2, 2}, KB_PADDING_VALID, 5, 4},
                    {"same_k3_s1", {3, 3}, {1, 1}, KB_PADDING_SAME, 4, 5},      // pads 1 / 1
                    {"same_k3_s2_asym", {3, 3}, {2, 2}, KB_PADDING_SAME, 6, 5},  // rows 0 / 1, cols 1 / 1
                    {"same_k2x3_s12", {2, 3}, {1, 2}, KB_PADDING_SAME, 3, 6}};   // rows 0 / 1, cols 0 / 1
    for (const P &p : ps)
        for (int avg = 0; avg < 2; ++avg)
            for (int cf = 0; cf < 2; ++cf) {
                std::string tag = std::string(avg ? "avg_" : "max_") + p.name + (cf ? "_cf" : "_cl");
                kb_pool_mode mode = avg ? KB_POOL_AVG : KB_POOL_MAX;
                Builder pool = [p, cf, mode](kb_context *, In in) {
                    return kb_pool2d(in[0], p.k, p.s, p.pad, fmt(cf), mode);
                };
                Shape xs = cf ? Shape{2, 3, p.h, p.w} : Shape{2, p.h, p.w, 3};
                int64_t oh = out_dim(p.h, p.k[0], p.s[0], 1, p.pad), ow = out_dim(p.w, p.k[1], p.s[1], 1, p.pad);
                Shape ys = cf ? Shape{2, 3, oh, ow} : Shape{2, oh, ow, 3};
                v.push_back(mk(KB_OP_POOL2D, "pool2d_" + tag, pool, {xs}, {sym}, true, T32R, T64R));
                v.back().half = true;
                v.push_back(mk(KB_OP_POOL2D_GRAD, "pool2d_grad_" + tag,
                               [pool](kb_context *ctx, In in) { return vjp(pool(ctx, in), in[1], in[0]); }, {xs, ys},
                               {sym}, avg == 1, T32R, T64R));
            }
    add_conv3d_cases(v);
}

}  // namespace kbt
