// Op cases of the random family (see op_cases.h). The ops take no differentiable input, so the
// cases are parity cases: the same graph runs once on the CPU and once on CUDA, and each device's
// first run of a node draws the same numbers (per-device run counters, ops/random.c). Uniform,
// binomial and dropout masks are bit-identical (EXACT); normal and truncated normal are computed
// in double and rounded once (T32 / T64). The input x gives the dtype under test (and, for the
// _like forms, the shape); its values are not read, except by dropout's multiply. Shapes with an
// element count that is not a multiple of 4 exercise the last, partial Philox block.
#include "op_cases.h"

namespace kbt {

namespace {
const Range sym{-1.0, 1.0};
const int64_t kShape[2] = {3, 7};  // 21 elements: 5 full blocks and a partial one

OpCase half_case(OpCase c) {
    c.half = true;
    return c;
}
}  // namespace

void add_random_cases(std::vector<OpCase> &v) {
    // random_uniform: static shape and the _like form (the shape of x at run time)
    v.push_back(half_case(mk(KB_OP_RANDOM_UNIFORM, "random_uniform_3x7",
                             [](kb_context *ctx, In in) {
                                 return kb_random_uniform(ctx, kShape, 2, -2.0, 3.0, kb_dtype_of(in[0]), 42);
                             },
                             {{2}}, {sym}, false, EXACT, EXACT)));
    v.push_back(half_case(mk(KB_OP_RANDOM_UNIFORM, "random_uniform_like_2x3x5",
                             [](kb_context *, In in) {
                                 return kb_random_uniform_like(in[0], 0.0, 1.0, kb_dtype_of(in[0]), KB_SEED_NONE);
                             },
                             {{2, 3, 5}}, {sym}, false, EXACT, EXACT)));
    // random_normal
    v.push_back(half_case(mk(KB_OP_RANDOM_NORMAL, "random_normal_3x7",
                             [](kb_context *ctx, In in) {
                                 return kb_random_normal(ctx, kShape, 2, 0.5, 2.0, kb_dtype_of(in[0]), 7);
                             },
                             {{2}}, {sym}, false)));
    v.push_back(half_case(mk(KB_OP_RANDOM_NORMAL, "random_normal_like_5x5",
                             [](kb_context *, In in) {
                                 return kb_random_normal_like(in[0], -1.0, 0.25, kb_dtype_of(in[0]), KB_SEED_NONE);
                             },
                             {{5, 5}}, {sym}, false)));
    // random_binomial
    v.push_back(half_case(mk(KB_OP_RANDOM_BINOMIAL, "random_binomial_3x7",
                             [](kb_context *ctx, In in) {
                                 return kb_random_binomial(ctx, kShape, 2, 0.3, kb_dtype_of(in[0]), 1234567);
                             },
                             {{2}}, {sym}, false, EXACT, EXACT)));
    v.push_back(half_case(mk(KB_OP_RANDOM_BINOMIAL, "random_binomial_like_4x9",
                             [](kb_context *, In in) {
                                 return kb_random_binomial_like(in[0], 0.5, kb_dtype_of(in[0]), KB_SEED_NONE);
                             },
                             {{4, 9}}, {sym}, false, EXACT, EXACT)));
    // truncated_normal
    v.push_back(half_case(mk(KB_OP_TRUNCATED_NORMAL, "truncated_normal_3x7",
                             [](kb_context *ctx, In in) {
                                 return kb_truncated_normal(ctx, kShape, 2, 1.0, 3.0, kb_dtype_of(in[0]), 99);
                             },
                             {{2}}, {sym}, false)));
    v.push_back(half_case(mk(KB_OP_TRUNCATED_NORMAL, "truncated_normal_like_6x5",
                             [](kb_context *, In in) {
                                 return kb_truncated_normal_like(in[0], 0.0, 1.0, kb_dtype_of(in[0]), KB_SEED_NONE);
                             },
                             {{6, 5}}, {sym}, false)));
    // dropout (x * dropout_mask): full mask, a broadcast noise_shape, KB_NONE in noise_shape
    v.push_back(half_case(mk(KB_OP_DROPOUT_MASK, "dropout_4x5",
                             [](kb_context *, In in) { return kb_dropout(in[0], 0.4, nullptr, 0, 11); },
                             {{4, 5}}, {sym}, false)));
    v.push_back(half_case(mk(KB_OP_DROPOUT_MASK, "dropout_noise_6x1_of_6x5",
                             [](kb_context *, In in) {
                                 const int64_t ns[2] = {6, 1};
                                 return kb_dropout(in[0], 0.5, ns, 2, KB_SEED_NONE);
                             },
                             {{6, 5}}, {sym}, false)));
    v.push_back(half_case(mk(KB_OP_DROPOUT_MASK, "dropout_noise_none_1_of_3x4x2",
                             [](kb_context *, In in) {
                                 const int64_t ns[3] = {KB_NONE, 1, KB_NONE};
                                 return kb_dropout(in[0], 0.25, ns, 3, 3);
                             },
                             {{3, 4, 2}}, {sym}, false)));
}

}  // namespace kbt
