#include "op_cases.h"

#include <cmath>

namespace kbt {

kb_tensor *vjp(kb_tensor *y, kb_tensor *w, kb_tensor *x) {
    kb_tensor *loss = kb_sum(kb_multiply(y, w), nullptr, 0, 0);
    if (!loss) return nullptr;
    kb_tensor *g = nullptr;
    if (kb_gradients(loss, &x, 1, &g) != KB_OK) return nullptr;
    return g;
}

kb_tensor *scalar_like(kb_context *ctx, double v, kb_tensor *x) {
    return kb_constant_scalar(ctx, v, kb_dtype_of(x), nullptr, 0);
}

OpCase mk(kb_op_id op, std::string name, Builder b, std::vector<Shape> shapes,
          std::vector<Range> ranges, bool grad, Tol t32, Tol t64, std::vector<double> kinks) {
    return OpCase{op, std::move(name), std::move(b), std::move(shapes), std::move(ranges),
                  std::move(kinks), grad, t32, t64};
}

namespace {

void add_binary(std::vector<OpCase> &v, kb_op_id op, const char *nm,
                kb_tensor *(*f)(kb_tensor *, kb_tensor *), std::vector<Range> ranges) {
    const std::vector<std::pair<std::string, std::vector<Shape>>> shapes = {
        {"2x3_2x3", {{2, 3}, {2, 3}}},
        {"2x3_3", {{2, 3}, {3}}},
        {"4x1_1x5", {{4, 1}, {1, 5}}},
        {"scalar_2x3", {{}, {2, 3}}},
        {"2x3_scalar", {{2, 3}, {}}},
        {"2x1x3_1x4x1", {{2, 1, 3}, {1, 4, 1}}},
        {"scalar_scalar", {{}, {}}},
    };
    for (const auto &s : shapes)
        v.push_back(mk(op, std::string(nm) + "_" + s.first,
                       [f](kb_context *, In in) { return f(in[0], in[1]); }, s.second, ranges,
                       true));
}

std::vector<OpCase> build_cases() {
    std::vector<OpCase> v;
    const Range sym{-2.0, 2.0}, pos{0.3, 3.0};

    // ---- elementwise --------------------------------------------------------------------------
    add_binary(v, KB_OP_ADD, "add", kb_add, {sym});
    add_binary(v, KB_OP_SUBTRACT, "subtract", kb_subtract, {sym});
    add_binary(v, KB_OP_MULTIPLY, "multiply", kb_multiply, {sym});
    add_binary(v, KB_OP_DIVIDE, "divide", kb_divide, {sym, {0.5, 2.0}});

    v.push_back(mk(KB_OP_NEGATIVE, "negative_2x3", [](kb_context *, In in) { return kb_negative(in[0]); },
                   {{2, 3}}, {sym}, true));
    v.push_back(mk(KB_OP_NEGATIVE, "negative_scalar", [](kb_context *, In in) { return kb_negative(in[0]); },
                   {{}}, {sym}, true));
    v.push_back(mk(KB_OP_SQUARE, "square_3x4", [](kb_context *, In in) { return kb_square(in[0]); },
                   {{3, 4}}, {sym}, true));
    v.push_back(mk(KB_OP_EXP, "exp_2x3x2", [](kb_context *, In in) { return kb_exp(in[0]); },
                   {{2, 3, 2}}, {sym}, true));
    v.push_back(mk(KB_OP_LOG, "log_2x3", [](kb_context *, In in) { return kb_log(in[0]); },
                   {{2, 3}}, {pos}, true));
    v.push_back(mk(KB_OP_SQRT, "sqrt_2x3", [](kb_context *, In in) { return kb_sqrt(in[0]); },
                   {{2, 3}}, {pos}, true));
    // sqrt clips negatives to 0 (values and parity only: no derivative check at the clip).
    v.push_back(mk(KB_OP_SQRT, "sqrt_mixed_sign", [](kb_context *, In in) { return kb_sqrt(in[0]); },
                   {{4, 3}}, {sym}, false, T32, T64, {0.0}));
    v.push_back(mk(KB_OP_SQRT_GRAD, "sqrt_grad_vjp",
                   [](kb_context *, In in) { return vjp(kb_sqrt(in[0]), in[1], in[0]); },
                   {{2, 3}, {2, 3}}, {pos, sym}, true));
    // clip: categorical_crossentropy clips its (renormalised) output to [eps, 1-eps].
    v.push_back(mk(KB_OP_CLIP, "clip_via_cce",
                   [](kb_context *, In in) { return kb_categorical_crossentropy(in[0], in[1], 0, -1); },
                   {{4, 3}, {4, 3}}, {{0.0, 1.0}, {0.1, 1.0}}, true));
    // clip_grad: the gradient of categorical_crossentropy with respect to its (clipped) output.
    v.push_back(mk(KB_OP_CLIP_GRAD, "clip_grad_vjp_cce",
                   [](kb_context *, In in) {
                       return vjp(kb_categorical_crossentropy(in[0], in[1], 0, -1), in[2], in[1]);
                   },
                   {{4, 3}, {4, 3}, {4}}, {{0.0, 1.0}, {0.1, 1.0}, {-1.0, 1.0}}, true, T32R, T64R));
    v.push_back(mk(KB_OP_CAST, "cast_to_float64",
                   [](kb_context *, In in) { return kb_cast(in[0], KB_FLOAT64); },
                   {{2, 3}}, {sym}, true));
    v.push_back(mk(KB_OP_CAST, "cast_to_int32",
                   [](kb_context *, In in) { return kb_cast(in[0], KB_INT32); },
                   {{2, 3}}, {{-5.0, 5.0}}, false, EXACT, EXACT, {-4, -3, -2, -1, 0, 1, 2, 3, 4}));

    // ---- activations --------------------------------------------------------------------------
    struct R {
        double a, m, t;
        const char *n;
    };
    const double inf = INFINITY;
    const R relus[] = {{0, inf, 0, "a0_mNone_t0"},       {0.1, inf, 0, "a01_mNone_t0"},
                       {0, 5, 0, "a0_m5_t0"},            {0, inf, 0.8, "a0_mNone_t08"},
                       {0.1, 5, 0, "a01_m5_t0"},         {0.1, inf, 0.8, "a01_mNone_t08"},
                       {0, 5, 0.8, "a0_m5_t08"},         {0.1, 5, 0.8, "a01_m5_t08"},
                       {0.1, 0.0, 0.8, "a01_m0_t08"},    {0.1, 5, -2.8, "a01_m5_tm28"},
                       {0.1, 9, 0.8, "a01_m9_t08"},      {0, 6, 0, "a0_m6_t0"}};
    for (const R &r : relus) {
        double a = r.a, m = r.m, t = r.t;
        std::vector<double> kinks = {0.0, t};
        if (std::isfinite(m)) kinks.push_back(m);
        v.push_back(mk(KB_OP_RELU, std::string("relu_") + r.n,
                       [a, m, t](kb_context *, In in) { return kb_relu(in[0], a, m, t); },
                       {{3, 4}}, {{-4.0, 10.0}}, true, T32, T64, kinks));
    }
    v.push_back(mk(KB_OP_RELU_GRAD, "relu_grad_vjp",
                   [](kb_context *, In in) { return vjp(kb_relu(in[0], 0.0, INFINITY, 0.0), in[1], in[0]); },
                   {{2, 3}, {2, 3}}, {sym, sym}, true, T32, T64, {0.0}));
    v.push_back(mk(KB_OP_RELU_GRAD, "relu_grad_vjp_a01_m5_t08",
                   [](kb_context *, In in) { return vjp(kb_relu(in[0], 0.1, 5.0, 0.8), in[1], in[0]); },
                   {{3, 4}, {3, 4}}, {{-4.0, 10.0}, sym}, true, T32, T64, {0.0, 0.8, 5.0}));
    v.push_back(mk(KB_OP_SIGMOID, "sigmoid_2x3", [](kb_context *, In in) { return kb_sigmoid(in[0]); },
                   {{2, 3}}, {{-4.0, 4.0}}, true));
    for (int axis : {-1, 0, 1, 2})
        v.push_back(mk(KB_OP_SOFTMAX, "softmax_2x3x4_axis" + std::string(axis < 0 ? "m1" : std::to_string(axis)),
                       [axis](kb_context *, In in) { return kb_softmax(in[0], axis); },
                       {{2, 3, 4}}, {{-3.0, 3.0}}, true));
    v.push_back(mk(KB_OP_SOFTMAX, "softmax_4x5", [](kb_context *, In in) { return kb_softmax(in[0], -1); },
                   {{4, 5}}, {{-3.0, 3.0}}, true));
    v.push_back(mk(KB_OP_LOG_SOFTMAX, "log_softmax_cce_logits",
                   [](kb_context *, In in) { return kb_categorical_crossentropy(in[0], in[1], 1, -1); },
                   {{4, 3}, {4, 3}}, {{0.0, 1.0}, {-3.0, 3.0}}, true, T32R, T64R));
    v.push_back(mk(KB_OP_LOG_SOFTMAX, "log_softmax_cce_logits_axis1",
                   [](kb_context *, In in) { return kb_categorical_crossentropy(in[0], in[1], 1, 1); },
                   {{2, 3, 2}, {2, 3, 2}}, {{0.0, 1.0}, {-3.0, 3.0}}, true, T32R, T64R));
    v.push_back(mk(KB_OP_LOG_SOFTMAX, "log_softmax_cce_softmax_output",
                   [](kb_context *, In in) {
                       return kb_categorical_crossentropy(in[0], kb_softmax(in[1], -1), 0, -1);
                   },
                   {{4, 3}, {4, 3}}, {{0.0, 1.0}, {-3.0, 3.0}}, true, T32R, T64R));
    v.push_back(mk(KB_OP_CLIP, "cce_probs_axis1",
                   [](kb_context *, In in) { return kb_categorical_crossentropy(in[0], in[1], 0, 1); },
                   {{2, 3, 2}, {2, 3, 2}}, {{0.0, 1.0}, {0.1, 1.0}}, true, T32R, T64R));

    // ---- reductions ---------------------------------------------------------------------------
    struct Red {
        std::vector<int> axes;
        int keep;
        const char *n;
    };
    const Red reds[] = {{{1}, 0, "axis1"},          {{0, 2}, 1, "axes02_keep"},
                        {{}, 0, "all"},             {{}, 1, "all_keep"},
                        {{-1}, 0, "axism1"},        {{-3, -1}, 0, "axesm3m1"}};
    struct RedOp {
        kb_op_id op;
        const char *n;
        kb_tensor *(*f)(kb_tensor *, const int *, int, int);
    };
    const RedOp redops[] = {{KB_OP_SUM, "sum", kb_sum}, {KB_OP_MEAN, "mean", kb_mean},
                            {KB_OP_MAX, "max", kb_max}};
    for (const RedOp &ro : redops)
        for (const Red &r : reds) {
            std::vector<int> axes = r.axes;
            int keep = r.keep;
            auto f = ro.f;
            v.push_back(mk(ro.op, std::string(ro.n) + "_2x3x4_" + r.n,
                           [axes, keep, f](kb_context *, In in) {
                               return f(in[0], axes.empty() ? nullptr : axes.data(), (int)axes.size(), keep);
                           },
                           {{2, 3, 4}}, {sym}, true, T32R, T64R));
        }
    v.push_back(mk(KB_OP_SUM, "sum_scalar", [](kb_context *, In in) { return kb_sum(in[0], nullptr, 0, 0); },
                   {{}}, {sym}, true));
    v.push_back(mk(KB_OP_MAX, "max_4x1x3_axis1",
                   [](kb_context *, In in) { int ax = 1; return kb_max(in[0], &ax, 1, 0); },
                   {{4, 1, 3}}, {sym}, true));
    v.push_back(mk(KB_OP_MAX_GRAD, "max_grad_vjp",
                   [](kb_context *, In in) { int ax = 1; return vjp(kb_max(in[0], &ax, 1, 0), in[1], in[0]); },
                   {{3, 4}, {3}}, {sym, sym}, true));
    v.push_back(mk(KB_OP_MAX_GRAD, "max_grad_vjp_all",
                   [](kb_context *, In in) { return vjp(kb_max(in[0], nullptr, 0, 0), in[1], in[0]); },
                   {{2, 3, 2}, {}}, {sym, sym}, true));
    // sum_like: the gradient of a broadcasting add reduces dy to the smaller input's shape.
    v.push_back(mk(KB_OP_SUM_LIKE, "sum_like_vjp_add",
                   [](kb_context *, In in) { return vjp(kb_add(in[0], in[1]), in[2], in[1]); },
                   {{2, 3}, {3}, {2, 3}}, {sym}, true, T32R, T64R));
    v.push_back(mk(KB_OP_SUM_LIKE, "sum_like_vjp_multiply",
                   [](kb_context *, In in) { return vjp(kb_multiply(in[0], in[1]), in[2], in[1]); },
                   {{4, 3}, {4, 1}, {4, 3}}, {sym}, true, T32R, T64R));
    // broadcast_like: the gradient of sum / mean broadcasts dy back to the input's shape.
    v.push_back(mk(KB_OP_BROADCAST_LIKE, "broadcast_like_vjp_sum",
                   [](kb_context *, In in) { int ax = 1; return vjp(kb_sum(in[0], &ax, 1, 0), in[1], in[0]); },
                   {{2, 3, 2}, {2, 2}}, {sym}, true));
    v.push_back(mk(KB_OP_BROADCAST_LIKE, "broadcast_like_vjp_mean_all",
                   [](kb_context *, In in) { return vjp(kb_mean(in[0], nullptr, 0, 0), in[1], in[0]); },
                   {{2, 3}, {}}, {sym}, true));

    // ---- linear algebra and shape -------------------------------------------------------------
    const std::vector<std::pair<std::string, std::vector<Shape>>> dots = {
        {"4x2_2x4", {{4, 2}, {2, 4}}},       {"2x3_4x3x5", {{2, 3}, {4, 3, 5}}},
        {"3x2x3_3x4", {{3, 2, 3}, {3, 4}}},  {"3_3", {{3}, {3}}},
        {"3_3x4", {{3}, {3, 4}}},            {"2x3_3", {{2, 3}, {3}}},
        {"4x2_5x2x3", {{4, 2}, {5, 2, 3}}},
    };
    for (const auto &d : dots)
        // np.dot with a 1-D y is multiply + sum over the last axis (a composite, no DOT node).
        v.push_back(mk(d.second[1].size() == 1 ? KB_OP_MULTIPLY : KB_OP_DOT, "dot_" + d.first, [](kb_context *, In in) { return kb_dot(in[0], in[1]); },
                       d.second, {sym}, true, T32R, T64R));
    v.push_back(mk(KB_OP_PERMUTE, "transpose_2x3x4", [](kb_context *, In in) { return kb_transpose(in[0]); },
                   {{2, 3, 4}}, {sym}, true, EXACT, EXACT));
    v.push_back(mk(KB_OP_PERMUTE, "transpose_3x4", [](kb_context *, In in) { return kb_transpose(in[0]); },
                   {{3, 4}}, {sym}, true, EXACT, EXACT));
    v.push_back(mk(KB_OP_PERMUTE, "permute_102_2x3x4",
                   [](kb_context *, In in) { int p[3] = {1, 0, 2}; return kb_permute_dimensions(in[0], p, 3); },
                   {{2, 3, 4}}, {sym}, true, EXACT, EXACT));
    v.push_back(mk(KB_OP_PERMUTE, "permute_2013_2x3x1x2",
                   [](kb_context *, In in) { int p[4] = {2, 0, 1, 3}; return kb_permute_dimensions(in[0], p, 4); },
                   {{2, 3, 1, 2}}, {sym}, true, EXACT, EXACT));
    v.push_back(mk(KB_OP_RESHAPE, "reshape_2x3x4_to_4xm1",
                   [](kb_context *, In in) { int64_t s[2] = {4, -1}; return kb_reshape(in[0], s, 2); },
                   {{2, 3, 4}}, {sym}, true, EXACT, EXACT));
    v.push_back(mk(KB_OP_RESHAPE, "reshape_6_to_1x2x3",
                   [](kb_context *, In in) { int64_t s[3] = {1, 2, 3}; return kb_reshape(in[0], s, 3); },
                   {{6}}, {sym}, true, EXACT, EXACT));
    v.push_back(mk(KB_OP_RESHAPE_LIKE, "reshape_like_vjp",
                   [](kb_context *, In in) { int64_t s[2] = {6, 2}; return vjp(kb_reshape(in[0], s, 2), in[1], in[0]); },
                   {{2, 3, 2}, {6, 2}}, {sym}, true, EXACT, EXACT));

    // ---- tensor utilities and state -----------------------------------------------------------
    v.push_back(mk(KB_OP_IDENTITY, "identity_2x3", [](kb_context *, In in) { return kb_identity(in[0]); },
                   {{2, 3}}, {sym}, true, EXACT, EXACT));
    // stop_gradient: values only (its gradient is checked in test_gradients).
    v.push_back(mk(KB_OP_STOP_GRADIENT, "stop_gradient_2x3",
                   [](kb_context *, In in) { return kb_add(kb_stop_gradient(in[0]), in[0]); },
                   {{2, 3}}, {sym}, false));
    v.push_back(mk(KB_OP_FILL_LIKE, "fill_like_ones_like",
                   [](kb_context *, In in) {
                       return kb_add(in[0], kb_ones_like(in[0], kb_dtype_of(in[0])));
                   },
                   {{2, 3}}, {sym}, true));
    v.push_back(mk(KB_OP_FILL_LIKE, "fill_like_zeros_like_floatx",
                   [](kb_context *, In in) { return kb_zeros_like(in[0], KB_FLOATX); },
                   {{3, 2}}, {sym}, false, EXACT, EXACT));
    v.push_back(mk(KB_OP_SHAPE, "shape_2x3x4", [](kb_context *, In in) { return kb_shape(in[0]); },
                   {{2, 3, 4}}, {sym}, false, EXACT, EXACT));
    v.push_back(mk(KB_OP_SIZE, "size_2x3x4", [](kb_context *, In in) { return kb_size(in[0]); },
                   {{2, 3, 4}}, {sym}, false, EXACT, EXACT));
    v.push_back(mk(KB_OP_PRINT_TENSOR, "print_tensor_2x2",
                   [](kb_context *, In in) { return kb_print_tensor(in[0], "kb op case: "); },
                   {{2, 2}}, {sym}, true, EXACT, EXACT));
    // update (ASSIGN): x <- 2*y; the update op's value is the new value (idempotent, so the CPU and
    // the CUDA run of the parity test agree).
    v.push_back(mk(KB_OP_ASSIGN, "update_assign",
                   [](kb_context *ctx, In in) {
                       return kb_update(in[0], kb_multiply(in[1], scalar_like(ctx, 2.0, in[1])));
                   },
                   {{2, 3}, {2, 3}}, {sym}, false, T32, T64));

    add_elementwise_cases(v);
    add_reduce_cases(v);
    add_shape_cases(v);
    add_linalg_cases(v);
    add_image_cases(v);
    add_sparse_cases(v);
    add_nn_cases(v);
    add_norm_cases(v);
    add_conv_cases(v);
    add_random_cases(v);
    add_control_cases(v);
    add_ctc_cases(v);
    add_rnn_cases(v);
    return v;
}

}  // namespace

const std::vector<OpCase> &op_cases() {
    static const std::vector<OpCase> cases = build_cases();
    return cases;
}

std::vector<std::vector<double>> case_inputs(const OpCase &c, std::mt19937_64 &gen) {
    std::vector<std::vector<double>> in;
    for (size_t i = 0; i < c.shapes.size(); ++i) {
        const Range &r = c.ranges.size() > i ? c.ranges[i] : c.ranges[0];
        in.push_back(random_values(gen, (size_t)numel(c.shapes[i]), r.lo, r.hi, c.kinks, 0.05));
    }
    return in;
}

}  // namespace kbt
