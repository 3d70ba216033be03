// Op cases of the sparse family (see op_cases.h). The sparse operand is built from a fixed
// int64 index constant (with a duplicate entry, which is summed) and the case's value variable.
#include "op_cases.h"

namespace kbt {
namespace {

// 5 entries of a 3x4 matrix; (1, 2) appears twice.
const int64_t kIdx[10] = {0, 1, 1, 2, 2, 0, 1, 2, 2, 3};

kb_tensor *sparse_3x4(kb_context *ctx, kb_tensor *values) {
    int64_t is[2] = {5, 2}, ds[2] = {3, 4};
    kb_tensor *ix = kb_constant(ctx, kIdx, sizeof kIdx, KB_INT64, is, 2, nullptr);
    kb_tensor *carrier = kb_zeros(ctx, ds, 2, kb_dtype_of(values), nullptr);
    return kb_sparse_tensor(ix, values, carrier);
}

}  // namespace

void add_sparse_cases(std::vector<OpCase> &v) {
    const Range sym{-2.0, 2.0};
    v.push_back(mk(KB_OP_SPARSE_TO_DENSE, "to_dense_3x4",
                   [](kb_context *ctx, In in) { return kb_to_dense(sparse_3x4(ctx, in[0])); },
                   {{5}}, {sym}, true));
    v.push_back(mk(KB_OP_SPARSE_VALUES_AT, "sparse_values_at_vjp",
                   [](kb_context *ctx, In in) { return vjp(kb_to_dense(sparse_3x4(ctx, in[0])), in[1], in[0]); },
                   {{5}, {3, 4}}, {sym}, true));
    v.push_back(mk(KB_OP_SPARSE_DOT, "sparse_dot_3x4_4x2",
                   [](kb_context *ctx, In in) { return kb_dot(sparse_3x4(ctx, in[0]), in[1]); },
                   {{5}, {4, 2}}, {sym}, true, T32R, T64R));
    // d/dy of a sparse dot is a transposed sparse dot; d/dvalues is sparse_dot_grad_values.
    v.push_back(mk(KB_OP_SPARSE_DOT_GRAD_VALUES, "sparse_dot_grad_values_vjp",
                   [](kb_context *ctx, In in) { return vjp(kb_dot(sparse_3x4(ctx, in[0]), in[1]), in[2], in[0]); },
                   {{5}, {4, 2}, {3, 2}}, {sym}, true, T32R, T64R));
}

}  // namespace kbt
