// Op cases of the linalg family (see op_cases.h). The dot cases of the foundation stay in
// op_cases.cpp; these add the GEMM node's transpose flags, batch_dot's axes rules and gather.
#include "op_cases.h"

namespace kbt {

namespace {
const Range sym{-1.0, 1.0};

// Indices from a float input: values in [0.1, rows - 0.1] kept 0.05 away from integers, cast
// (truncation) to an integer dtype, so every row index is in range.
kb_tensor *idx(kb_tensor *v, kb_dtype dt) { return kb_cast(v, dt); }
const std::vector<double> int_kinks = {0, 1, 2, 3, 4, 5};
}  // namespace

void add_linalg_cases(std::vector<OpCase> &v) {
    // dot with a rank-3 y: a permute then the GEMM node; its gradients use both transpose flags.
    v.push_back(mk(KB_OP_DOT, "dot_2x3x4_5x4x2", [](kb_context *, In in) { return kb_dot(in[0], in[1]); },
                   {{2, 3, 4}, {5, 4, 2}}, {sym}, true, T32R, T64R));
    v.push_back(mk(KB_OP_DOT, "dot_4_3x4x2", [](kb_context *, In in) { return kb_dot(in[0], in[1]); },
                   {{4}, {3, 4, 2}}, {sym}, true, T32R, T64R));

    // batch_dot: the spec's shape table (B = 2) plus the docstring example; the comments say
    // which operands need a permute (p) or only a transpose flag (t).
    struct BD {
        const char *name;
        Shape x, y;
        std::vector<int> axes;
    };
    const std::vector<BD> bds = {
        {"2x3x4x5_2x2x3x4_ax23", {2, 3, 4, 5}, {2, 2, 3, 4}, {2, 3}},  // x p, y t
        {"2x3x4x5_2x2x4_ax2", {2, 3, 4, 5}, {2, 2, 4}, {2}},           // x p, y t
        {"2x3x4_2x2x3x4_ax23", {2, 3, 4}, {2, 2, 3, 4}, {2, 3}},       // y t
        {"2x4x3_2x3x5_ax21", {2, 4, 3}, {2, 3, 5}, {2, 1}},            // plain bmm
        {"2x4_2x3x4_ax12", {2, 4}, {2, 3, 4}, {1, 2}},                 // y t
        {"2x4_2x4_none", {2, 4}, {2, 4}, {}},                          // (B, 1)
        {"3x5x1_3x4x5_ax12", {3, 5, 1}, {3, 4, 5}, {1, 2}},            // x t, y t
        {"2x3x4_2x5x4x6_ax22", {2, 3, 4}, {2, 5, 4, 6}, {2, 2}},       // y p
        {"2x3x4_2x4x5_none", {2, 3, 4}, {2, 4, 5}, {}},
        {"2x3x4_2x3_ax1m1", {2, 3, 4}, {2, 3}, {1, -1}},               // x t, rank-2 y
    };
    for (const auto &b : bds) {
        std::vector<int> axes = b.axes;
        v.push_back(mk(KB_OP_BATCH_DOT, std::string("batch_dot_") + b.name,
                       [axes](kb_context *, In in) {
                           return kb_batch_dot(in[0], in[1], axes.empty() ? nullptr : axes.data(), (int)axes.size());
                       },
                       {b.x, b.y}, {sym}, true, T32R, T64R));
    }

    // gather: rows of a float reference by int32 / int64 indices (data movement: exact, and
    // float16/bfloat16 too); reference gradient = scatter_add.
    v.push_back(mk(KB_OP_GATHER, "gather_5x3_idx2x2_int32",
                   [](kb_context *, In in) { return kb_gather(in[0], idx(in[1], KB_INT32)); },
                   {{5, 3}, {2, 2}}, {{-1.0, 1.0}, {0.1, 4.9}}, true, EXACT, EXACT, int_kinks));
    v.back().half = true;
    v.push_back(mk(KB_OP_GATHER, "gather_4_idx3_int64",
                   [](kb_context *, In in) { return kb_gather(in[0], idx(in[1], KB_INT64)); },
                   {{4}, {3}}, {{-1.0, 1.0}, {0.1, 3.9}}, true, EXACT, EXACT, int_kinks));
    v.back().half = true;
    v.push_back(mk(KB_OP_GATHER, "gather_3x2x2_idx5",
                   [](kb_context *, In in) { return kb_gather(in[0], idx(in[1], KB_INT32)); },
                   {{3, 2, 2}, {5}}, {{-1.0, 1.0}, {0.1, 2.9}}, true, EXACT, EXACT, int_kinks));
    // scatter_add through the gather's gradient: 6 indices into 4 rows repeat some rows.
    v.push_back(mk(KB_OP_SCATTER_ADD, "scatter_add_vjp_gather",
                   [](kb_context *, In in) { return vjp(kb_gather(in[0], idx(in[1], KB_INT64)), in[2], in[0]); },
                   {{4, 3}, {6}, {6, 3}}, {{-1.0, 1.0}, {0.1, 3.9}, {-1.0, 1.0}}, true, T32R, T64R, int_kinks));
}

}  // namespace kbt
