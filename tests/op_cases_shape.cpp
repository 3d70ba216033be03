// Op cases of the shape family (see op_cases.h). Data movement is exact on every device and dtype,
// so those cases use EXACT and run in float16/bfloat16 too; the shapes cross the 32x32 transpose
// tiles and the 16-byte word paths of the CUDA copies.
#include "op_cases.h"

namespace kbt {

namespace {

OpCase half_case(OpCase c) {
    c.half = true;
    return c;
}

Builder permuted(std::vector<int> p) {
    return [p](kb_context *, In in) { return kb_permute_dimensions(in[0], p.data(), (int)p.size()); };
}

}  // namespace

void add_shape_cases(std::vector<OpCase> &v) {
    const Range sym{-2.0, 2.0};

    // ---- permute_dimensions / transpose: tile transpose, batched transpose, general path ----
    v.push_back(half_case(mk(KB_OP_PERMUTE, "transpose_33x65",
                             [](kb_context *, In in) { return kb_transpose(in[0]); }, {{33, 65}}, {sym}, true,
                             EXACT, EXACT)));
    v.push_back(half_case(mk(KB_OP_PERMUTE, "permute_021_3x40x70",
                             permuted({0, 2, 1}),
                             {{3, 40, 70}}, {sym}, false, EXACT, EXACT)));
    v.push_back(half_case(mk(KB_OP_PERMUTE, "permute_210_5x6x7",
                             permuted({2, 1, 0}),
                             {{5, 6, 7}}, {sym}, true, EXACT, EXACT)));
    v.push_back(half_case(mk(KB_OP_PERMUTE, "permute_1023_4x5x3x8",
                             permuted({1, 0, 2, 3}),
                             {{4, 5, 3, 8}}, {sym}, true, EXACT, EXACT)));

    // ---- views through reshape ----
    v.push_back(mk(KB_OP_RESHAPE, "flatten_2x3x4", [](kb_context *, In in) { return kb_flatten(in[0]); },
                   {{2, 3, 4}}, {sym}, true, EXACT, EXACT));
    v.push_back(mk(KB_OP_RESHAPE, "batch_flatten_2x3x4", [](kb_context *, In in) { return kb_batch_flatten(in[0]); },
                   {{2, 3, 4}}, {sym}, true, EXACT, EXACT));
    v.push_back(mk(KB_OP_RESHAPE, "expand_dims_m1_2x3", [](kb_context *, In in) { return kb_expand_dims(in[0], -1); },
                   {{2, 3}}, {sym}, true, EXACT, EXACT));
    v.push_back(mk(KB_OP_RESHAPE, "squeeze_1_2x1x3", [](kb_context *, In in) { return kb_squeeze(in[0], 1); },
                   {{2, 1, 3}}, {sym}, true, EXACT, EXACT));

    // ---- concatenate / stack ----
    v.push_back(half_case(mk(KB_OP_CONCATENATE, "concatenate_axis1_2x3_2x2",
                             [](kb_context *, In in) { return kb_concatenate(in.data(), 2, 1); },
                             {{2, 3}, {2, 2}}, {sym}, true, EXACT, EXACT)));
    v.push_back(half_case(mk(KB_OP_CONCATENATE, "concatenate_axis_m1_words_4x8_4x12",
                             [](kb_context *, In in) { return kb_concatenate(in.data(), 2, -1); },
                             {{4, 8}, {4, 12}}, {sym}, false, EXACT, EXACT)));
    v.push_back(half_case(mk(KB_OP_CONCATENATE, "concatenate_5_inputs_axis0",
                             [](kb_context *, In in) { return kb_concatenate(in.data(), 5, 0); },
                             {{1, 2, 3}, {2, 2, 3}, {3, 2, 3}, {1, 2, 3}, {2, 2, 3}}, {sym}, true, EXACT, EXACT)));
    v.push_back(half_case(mk(KB_OP_CONCATENATE, "stack_axis1_3x_2x3",
                             [](kb_context *, In in) { return kb_stack(in.data(), 3, 1); },
                             {{2, 3}, {2, 3}, {2, 3}}, {sym}, true, EXACT, EXACT)));

    // ---- slice and its gradient ----
    v.push_back(half_case(mk(KB_OP_SLICE, "slice_3x4x5",
                             [](kb_context *, In in) {
                                 int64_t st[3] = {1, 0, 2}, sz[3] = {2, -1, 3};
                                 return kb_slice(in[0], st, sz, 3);
                             },
                             {{3, 4, 5}}, {sym}, true, EXACT, EXACT)));
    v.push_back(half_case(mk(KB_OP_SLICE, "slice_words_8x64",
                             [](kb_context *, In in) {
                                 int64_t st[2] = {1, 4}, sz[2] = {5, 32};
                                 return kb_slice(in[0], st, sz, 2);
                             },
                             {{8, 64}}, {sym}, false, EXACT, EXACT)));
    v.push_back(half_case(mk(KB_OP_SLICE_GRAD, "slice_grad_vjp",
                             [](kb_context *, In in) {
                                 int64_t st[2] = {1, 2}, sz[2] = {2, -1};
                                 return vjp(kb_slice(in[0], st, sz, 2), in[1], in[0]);
                             },
                             {{4, 5}, {2, 3}}, {sym}, true, EXACT, EXACT)));

    // ---- reverse ----
    v.push_back(half_case(mk(KB_OP_REVERSE, "reverse_axes_0_2_2x3x4",
                             [](kb_context *, In in) { int ax[2] = {0, 2}; return kb_reverse(in[0], ax, 2); },
                             {{2, 3, 4}}, {sym}, true, EXACT, EXACT)));
    v.push_back(half_case(mk(KB_OP_REVERSE, "reverse_axis_m2_6x8",
                             [](kb_context *, In in) { int ax[1] = {-2}; return kb_reverse(in[0], ax, 1); },
                             {{6, 8}}, {sym}, true, EXACT, EXACT)));

    // ---- tile / repeat / repeat_elements and their gradient ----
    v.push_back(half_case(mk(KB_OP_TILE, "tile_2x1x3_by_2x2x1",
                             [](kb_context *, In in) { int64_t n[3] = {2, 2, 1}; return kb_tile(in[0], n, 3); },
                             {{2, 1, 3}}, {sym}, true, EXACT, EXACT)));
    v.push_back(half_case(mk(KB_OP_TILE, "tile_leftpad_2x3_by_3",
                             [](kb_context *, In in) { int64_t n[1] = {3}; return kb_tile(in[0], n, 1); },
                             {{2, 3}}, {sym}, true, EXACT, EXACT)));
    v.push_back(half_case(mk(KB_OP_TILE, "repeat_2x3_n4", [](kb_context *, In in) { return kb_repeat(in[0], 4); },
                             {{2, 3}}, {sym}, true, EXACT, EXACT)));
    v.push_back(half_case(mk(KB_OP_REPEAT_ELEMENTS, "repeat_elements_2x3_rep3_axis1",
                             [](kb_context *, In in) { return kb_repeat_elements(in[0], 3, 1); },
                             {{2, 3}}, {sym}, true, EXACT, EXACT)));
    v.push_back(half_case(mk(KB_OP_REPEAT_ELEMENTS, "repeat_elements_2x3x2_rep2_axis_m3",
                             [](kb_context *, In in) { return kb_repeat_elements(in[0], 2, -3); },
                             {{2, 3, 2}}, {sym}, true, EXACT, EXACT)));
    v.push_back(half_case(mk(KB_OP_TILE_GRAD, "tile_grad_vjp",
                             [](kb_context *, In in) {
                                 int64_t n[2] = {2, 3};
                                 return vjp(kb_tile(in[0], n, 2), in[1], in[0]);
                             },
                             {{2, 3}, {4, 9}}, {sym}, true, T32R, T64R)));
    v.push_back(half_case(mk(KB_OP_TILE_GRAD, "tile_grad_repeat_elements_vjp",
                             [](kb_context *, In in) { return vjp(kb_repeat_elements(in[0], 4, 0), in[1], in[0]); },
                             {{3, 2}, {12, 2}}, {sym}, true, T32R, T64R)));

    // ---- one_hot: indices from a cast, some outside [0, 5) (zero rows) ----
    v.push_back(half_case(mk(KB_OP_ONE_HOT, "one_hot_int32_3x4_c5",
                             [](kb_context *, In in) { return kb_one_hot(kb_cast(in[0], KB_INT32), 5); },
                             {{3, 4}}, {{-2.5, 6.5}}, false, EXACT, EXACT)));
    v.push_back(half_case(mk(KB_OP_ONE_HOT, "one_hot_int64_7_c3",
                             [](kb_context *, In in) { return kb_one_hot(kb_cast(in[0], KB_INT64), 3); },
                             {{7}}, {{-1.5, 3.5}}, false, EXACT, EXACT)));
}

}  // namespace kbt
