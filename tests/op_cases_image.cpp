// Op cases of the image family (see op_cases.h): the padding and resize functions in both data
// formats, and their gradient ops through vjp.
#include "op_cases.h"

namespace kbt {

namespace {
const Range sym{-1.0, 1.0};
const int64_t pad2[4] = {1, 2, 0, 1}, pad3[6] = {1, 0, 0, 2, 1, 1};
}  // namespace

void add_image_cases(std::vector<OpCase> &v) {
    auto add = [&](kb_op_id op, const char *name, Builder b, std::vector<Shape> shapes, Tol t32, Tol t64,
                   bool half) {
        v.push_back(mk(op, name, std::move(b), std::move(shapes), {sym}, true, t32, t64));
        v.back().half = half;
    };
    // pad (exact data movement), crop through pad's gradient.
    add(KB_OP_PAD, "temporal_padding_2x3x4_1_2",
        [](kb_context *, In in) { return kb_temporal_padding(in[0], 1, 2); }, {{2, 3, 4}}, EXACT, EXACT, true);
    add(KB_OP_PAD, "spatial_2d_padding_cl_2x3x4x2",
        [](kb_context *, In in) { return kb_spatial_2d_padding(in[0], pad2, KB_DATA_FORMAT_CHANNELS_LAST); },
        {{2, 3, 4, 2}}, EXACT, EXACT, true);
    add(KB_OP_PAD, "spatial_2d_padding_cf_2x2x3x4",
        [](kb_context *, In in) { return kb_spatial_2d_padding(in[0], pad2, KB_DATA_FORMAT_CHANNELS_FIRST); },
        {{2, 2, 3, 4}}, EXACT, EXACT, true);
    add(KB_OP_PAD, "spatial_3d_padding_cl_1x2x3x2x2",
        [](kb_context *, In in) { return kb_spatial_3d_padding(in[0], pad3, KB_DATA_FORMAT_CHANNELS_LAST); },
        {{1, 2, 3, 2, 2}}, EXACT, EXACT, true);
    add(KB_OP_PAD, "spatial_3d_padding_cf_1x2x2x3x2",
        [](kb_context *, In in) { return kb_spatial_3d_padding(in[0], pad3, KB_DATA_FORMAT_CHANNELS_FIRST); },
        {{1, 2, 2, 3, 2}}, EXACT, EXACT, true);
    add(KB_OP_CROP, "crop_vjp_spatial_2d_padding",
        [](kb_context *, In in) {
            return vjp(kb_spatial_2d_padding(in[0], pad2, KB_DATA_FORMAT_CHANNELS_LAST), in[1], in[0]);
        },
        {{2, 3, 4, 2}, {2, 6, 5, 2}}, EXACT, EXACT, false);

    // resize_nearest (exact), its gradient (block sums).
    add(KB_OP_RESIZE_NEAREST, "resize_images_nearest_cl_2x3x4x2_f2x3",
        [](kb_context *, In in) { return kb_resize_images(in[0], 2, 3, KB_DATA_FORMAT_CHANNELS_LAST, KB_INTERP_NEAREST); },
        {{2, 3, 4, 2}}, EXACT, EXACT, true);
    add(KB_OP_RESIZE_NEAREST, "resize_images_nearest_cf_2x2x3x4_f3x2",
        [](kb_context *, In in) { return kb_resize_images(in[0], 3, 2, KB_DATA_FORMAT_CHANNELS_FIRST, KB_INTERP_NEAREST); },
        {{2, 2, 3, 4}}, EXACT, EXACT, true);
    add(KB_OP_RESIZE_NEAREST, "resize_volumes_cl_1x2x3x2x2_f2x1x3",
        [](kb_context *, In in) { return kb_resize_volumes(in[0], 2, 1, 3, KB_DATA_FORMAT_CHANNELS_LAST); },
        {{1, 2, 3, 2, 2}}, EXACT, EXACT, true);
    add(KB_OP_RESIZE_NEAREST, "resize_volumes_cf_1x2x2x3x2_f1x2x2",
        [](kb_context *, In in) { return kb_resize_volumes(in[0], 1, 2, 2, KB_DATA_FORMAT_CHANNELS_FIRST); },
        {{1, 2, 2, 3, 2}}, EXACT, EXACT, true);
    add(KB_OP_RESIZE_NEAREST_GRAD, "resize_nearest_grad_vjp_cl",
        [](kb_context *, In in) {
            return vjp(kb_resize_images(in[0], 2, 3, KB_DATA_FORMAT_CHANNELS_LAST, KB_INTERP_NEAREST), in[1], in[0]);
        },
        {{2, 3, 4, 2}, {2, 6, 12, 2}}, T32R, T64R, false);
    add(KB_OP_RESIZE_NEAREST_GRAD, "resize_nearest_grad_vjp_volumes_cf",
        [](kb_context *, In in) {
            return vjp(kb_resize_volumes(in[0], 1, 2, 2, KB_DATA_FORMAT_CHANNELS_FIRST), in[1], in[0]);
        },
        {{1, 2, 2, 3, 2}, {1, 2, 2, 6, 4}}, T32R, T64R, false);

    // resize_bilinear and its adjoint.
    add(KB_OP_RESIZE_BILINEAR, "resize_images_bilinear_cl_2x3x4x2_f2x3",
        [](kb_context *, In in) { return kb_resize_images(in[0], 2, 3, KB_DATA_FORMAT_CHANNELS_LAST, KB_INTERP_BILINEAR); },
        {{2, 3, 4, 2}}, T32, T64, true);
    add(KB_OP_RESIZE_BILINEAR, "resize_images_bilinear_cf_1x2x3x1_f4x2",
        [](kb_context *, In in) { return kb_resize_images(in[0], 4, 2, KB_DATA_FORMAT_CHANNELS_FIRST, KB_INTERP_BILINEAR); },
        {{1, 2, 3, 1}}, T32, T64, true);
    add(KB_OP_RESIZE_BILINEAR_GRAD, "resize_bilinear_grad_vjp_cl",
        [](kb_context *, In in) {
            return vjp(kb_resize_images(in[0], 2, 3, KB_DATA_FORMAT_CHANNELS_LAST, KB_INTERP_BILINEAR), in[1], in[0]);
        },
        {{2, 3, 4, 2}, {2, 6, 12, 2}}, T32R, T64R, false);
    add(KB_OP_RESIZE_BILINEAR_GRAD, "resize_bilinear_grad_vjp_cf_h1",
        [](kb_context *, In in) {
            return vjp(kb_resize_images(in[0], 3, 2, KB_DATA_FORMAT_CHANNELS_FIRST, KB_INTERP_BILINEAR), in[1], in[0]);
        },
        {{1, 2, 1, 3}, {1, 2, 3, 6}}, T32R, T64R, false);
}

}  // namespace kbt
