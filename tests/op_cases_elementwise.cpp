// Op cases of the elementwise family (see op_cases.h): the ops of the tensor-API issue, float16 /
// bfloat16 parity (`half`) of the foundation ops (their float32/float64 cases are in
// op_cases.cpp), and integer / bool inputs made with casts inside the builders (the case's inputs
// are float variables).
#include <cmath>

#include "op_cases.h"

namespace kbt {

namespace {

using Bin = kb_tensor *(*)(kb_tensor *, kb_tensor *);
using Un = kb_tensor *(*)(kb_tensor *);

const Range kSym{-2.0, 2.0}, kPos{0.3, 3.0};

// The broadcasting shapes every binary op runs on.
const std::vector<std::pair<std::string, std::vector<Shape>>> &bin_shapes() {
    static const std::vector<std::pair<std::string, std::vector<Shape>>> s = {
        {"2x3_2x3", {{2, 3}, {2, 3}}},         {"2x3_3", {{2, 3}, {3}}},
        {"4x1_1x5", {{4, 1}, {1, 5}}},         {"scalar_2x3", {{}, {2, 3}}},
        {"2x1x3_1x4x1", {{2, 1, 3}, {1, 4, 1}}}, {"37_37", {{37}, {37}}},
    };
    return s;
}

OpCase half_case(OpCase c) {
    c.half = true;
    return c;
}

void add_binary(std::vector<OpCase> &v, kb_op_id op, const std::string &nm, Bin f, std::vector<Range> ranges,
                bool grad, Tol t32 = T32, Tol t64 = T64) {
    for (const auto &s : bin_shapes())
        v.push_back(half_case(mk(op, nm + "_" + s.first, [f](kb_context *, In in) { return f(in[0], in[1]); },
                                 s.second, ranges, grad, t32, t64)));
}

// f on integer operands: the float inputs cast to `dt` (truncation, identical on both devices).
void add_binary_int(std::vector<OpCase> &v, kb_op_id op, const std::string &nm, Bin f, kb_dtype dt, Range r) {
    for (const auto &s : bin_shapes())
        v.push_back(mk(op, nm + "_" + kb_dtype_name(dt) + "_" + s.first,
                       [f, dt](kb_context *, In in) { return f(kb_cast(in[0], dt), kb_cast(in[1], dt)); },
                       s.second, {r}, false, EXACT, EXACT));
}

void add_unary_int(std::vector<OpCase> &v, kb_op_id op, const std::string &nm, Un f, kb_dtype dt, Range r) {
    v.push_back(mk(op, nm + "_" + kb_dtype_name(dt) + "_3x5", [f, dt](kb_context *, In in) { return f(kb_cast(in[0], dt)); },
                   {{3, 5}}, {r}, false, EXACT, EXACT));
}

}  // namespace

void add_elementwise_cases(std::vector<OpCase> &v) {
    const double inf = INFINITY;

    // ---- float16 / bfloat16 of the foundation ops -------------------------------------------
    add_binary(v, KB_OP_ADD, "add_h", kb_add, {kSym}, false);
    add_binary(v, KB_OP_SUBTRACT, "subtract_h", kb_subtract, {kSym}, false);
    add_binary(v, KB_OP_MULTIPLY, "multiply_h", kb_multiply, {kSym}, false);
    add_binary(v, KB_OP_DIVIDE, "divide_h", kb_divide, {kSym, {0.5, 2.0}}, false);
    // 1003 elements: the 16-byte vector loop and a scalar tail (1003 = 8*125 + 3 halves).
    v.push_back(half_case(mk(KB_OP_ADD, "add_h_1003", [](kb_context *, In in) { return kb_add(in[0], in[1]); },
                             {{1003}, {1003}}, {kSym}, false)));
    v.push_back(half_case(mk(KB_OP_NEGATIVE, "negative_h_1003", [](kb_context *, In in) { return kb_negative(in[0]); },
                             {{1003}}, {kSym}, false, EXACT, EXACT)));
    v.push_back(half_case(mk(KB_OP_SQUARE, "square_h_3x4", [](kb_context *, In in) { return kb_square(in[0]); },
                             {{3, 4}}, {kSym}, false)));
    v.push_back(half_case(mk(KB_OP_EXP, "exp_h_37", [](kb_context *, In in) { return kb_exp(in[0]); },
                             {{37}}, {kSym}, false)));
    v.push_back(half_case(mk(KB_OP_LOG, "log_h_37", [](kb_context *, In in) { return kb_log(in[0]); },
                             {{37}}, {kPos}, false)));
    v.push_back(half_case(mk(KB_OP_SQRT, "sqrt_h_mixed_sign", [](kb_context *, In in) { return kb_sqrt(in[0]); },
                             {{37}}, {kSym}, false, T32, T64, {0.0})));
    v.push_back(half_case(mk(KB_OP_SQRT_GRAD, "sqrt_grad_h_vjp",
                             [](kb_context *, In in) { return vjp(kb_sqrt(in[0]), in[1], in[0]); },
                             {{2, 3}, {2, 3}}, {kPos, kSym}, false)));
    v.push_back(half_case(mk(KB_OP_CAST, "cast_h_to_float32",
                             [](kb_context *, In in) { return kb_cast(in[0], KB_FLOAT32); }, {{2, 3}}, {kSym}, false,
                             EXACT, EXACT)));
    v.push_back(half_case(mk(KB_OP_CAST, "cast_h_to_int32", [](kb_context *, In in) { return kb_cast(in[0], KB_INT32); },
                             {{2, 3}}, {{-5.0, 5.0}}, false, EXACT, EXACT)));

    // ---- integer arithmetic ------------------------------------------------------------------
    add_binary_int(v, KB_OP_ADD, "add", kb_add, KB_INT32, {-1000.0, 1000.0});
    add_binary_int(v, KB_OP_SUBTRACT, "subtract", kb_subtract, KB_INT64, {-1000.0, 1000.0});
    add_binary_int(v, KB_OP_MULTIPLY, "multiply", kb_multiply, KB_INT32, {-1000.0, 1000.0});
    // int8 sums and products leave [-128, 127]: both devices wrap modulo 256.
    add_binary_int(v, KB_OP_ADD, "add", kb_add, KB_INT8, {-120.0, 120.0});
    add_binary_int(v, KB_OP_MULTIPLY, "multiply", kb_multiply, KB_UINT8, {0.0, 250.0});
    add_binary_int(v, KB_OP_MAXIMUM, "maximum", kb_maximum, KB_INT32, {-5.0, 5.0});
    add_binary_int(v, KB_OP_MINIMUM, "minimum", kb_minimum, KB_INT64, {-5.0, 5.0});
    add_unary_int(v, KB_OP_NEGATIVE, "negative", kb_negative, KB_INT32, {-1000.0, 1000.0});
    add_unary_int(v, KB_OP_SQUARE, "square", kb_square, KB_INT64, {-1000.0, 1000.0});
    add_unary_int(v, KB_OP_ABS, "abs", kb_abs, KB_INT8, {-120.0, 120.0});
    add_unary_int(v, KB_OP_SIGN, "sign", kb_sign, KB_INT32, {-3.0, 3.0});
    add_unary_int(v, KB_OP_SIGN, "sign", kb_sign, KB_UINT8, {0.0, 3.0});

    // ---- abs sign round pow sin cos ----------------------------------------------------------
    v.push_back(half_case(mk(KB_OP_ABS, "abs_2x3", [](kb_context *, In in) { return kb_abs(in[0]); }, {{2, 3}},
                             {kSym}, true, EXACT, EXACT, {0.0})));
    v.push_back(half_case(mk(KB_OP_ABS, "abs_1003", [](kb_context *, In in) { return kb_abs(in[0]); }, {{1003}},
                             {kSym}, false, EXACT, EXACT)));
    v.push_back(half_case(mk(KB_OP_SIGN, "sign_2x3", [](kb_context *, In in) { return kb_sign(in[0]); }, {{2, 3}},
                             {kSym}, true, EXACT, EXACT, {0.0})));
    // round: inputs away from the ties (the ties are in test_elementwise); no gradient (TF: None).
    v.push_back(half_case(mk(KB_OP_ROUND, "round_3x4", [](kb_context *, In in) { return kb_round(in[0]); },
                             {{3, 4}}, {{-4.0, 4.0}}, false, EXACT, EXACT, {-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5})));
    struct P {
        double a;
        Range r;
        const char *n;
    };
    const P pows[] = {{2.0, kSym, "2"},   {3.0, kSym, "3"},    {0.5, kPos, "0p5"}, {-1.5, kPos, "m1p5"},
                      {0.0, kSym, "0"},   {1.0, kSym, "1"},    {-2.0, kPos, "m2"}, {2.5, kPos, "2p5"}};
    for (const P &p : pows) {
        double a = p.a;
        v.push_back(half_case(mk(KB_OP_POW, std::string("pow_2x3_") + p.n,
                                 [a](kb_context *, In in) { return kb_pow(in[0], a); }, {{2, 3}}, {p.r}, true)));
    }
    v.push_back(half_case(mk(KB_OP_SIN, "sin_3x4", [](kb_context *, In in) { return kb_sin(in[0]); }, {{3, 4}},
                             {{-4.0, 4.0}}, true)));
    v.push_back(half_case(mk(KB_OP_COS, "cos_3x4", [](kb_context *, In in) { return kb_cos(in[0]); }, {{3, 4}},
                             {{-4.0, 4.0}}, true)));
    // Second derivatives: the gradient of sin is made of cos (and of cos, of sin); pow of pow.
    v.push_back(mk(KB_OP_COS, "cos_via_sin_vjp", [](kb_context *, In in) { return vjp(kb_sin(in[0]), in[1], in[0]); },
                   {{2, 3}, {2, 3}}, {{-4.0, 4.0}, kSym}, true));
    v.push_back(mk(KB_OP_POW, "pow_3_vjp", [](kb_context *, In in) { return vjp(kb_pow(in[0], 3.0), in[1], in[0]); },
                   {{2, 3}, {2, 3}}, {kSym}, true));

    // ---- clip --------------------------------------------------------------------------------
    struct C {
        double lo, hi;
        const char *n;
    };
    const C clips[] = {{-0.5, 0.7, "m0p5_0p7"}, {-inf, 0.3, "None_0p3"}, {-0.3, inf, "m0p3_None"},
                       {-inf, inf, "None_None"}, {1.0, -1.0, "max_below_min"}};
    for (const C &c : clips) {
        double lo = c.lo, hi = c.hi;
        std::vector<double> kinks;
        if (std::isfinite(lo)) kinks.push_back(lo);
        if (std::isfinite(hi)) kinks.push_back(hi);
        v.push_back(half_case(mk(KB_OP_CLIP, std::string("clip_3x4_") + c.n,
                                 [lo, hi](kb_context *, In in) { return kb_clip(in[0], lo, hi); }, {{3, 4}}, {kSym},
                                 true, EXACT, EXACT, kinks)));
    }
    v.push_back(half_case(mk(KB_OP_CLIP_GRAD, "clip_grad_vjp_clip",
                             [](kb_context *, In in) { return vjp(kb_clip(in[0], -0.5, 0.7), in[1], in[0]); },
                             {{3, 4}, {3, 4}}, {kSym}, true, EXACT, EXACT, {-0.5, 0.7})));
    // clip_tensor = maximum(minimum(x, max), min): the bounds broadcast and get gradients too.
    v.push_back(half_case(mk(KB_OP_MINIMUM, "clip_tensor_2x3_min3_max2x1",
                             [](kb_context *, In in) { return kb_clip_tensor(in[0], in[1], in[2]); },
                             {{2, 3}, {3}, {2, 1}}, {kSym, {-1.0, 0.0}, {0.0, 1.0}}, true)));
    v.push_back(half_case(mk(KB_OP_MAXIMUM, "clip_tensor_min_only",
                             [](kb_context *, In in) { return kb_clip_tensor(in[0], in[1], nullptr); },
                             {{3, 4}, {}}, {kSym}, true)));
    v.push_back(half_case(mk(KB_OP_MINIMUM, "clip_tensor_max_only",
                             [](kb_context *, In in) { return kb_clip_tensor(in[0], nullptr, in[1]); },
                             {{3, 4}, {4}}, {kSym}, true)));

    // ---- maximum / minimum -------------------------------------------------------------------
    add_binary(v, KB_OP_MAXIMUM, "maximum", kb_maximum, {kSym}, true, EXACT, EXACT);
    add_binary(v, KB_OP_MINIMUM, "minimum", kb_minimum, {kSym}, true, EXACT, EXACT);
    // Ties: y = stop_gradient(clip(x, -0.5, 0.5)) equals x inside [-0.5, 0.5], where the gradient
    // goes to x (maximum: x >= y; minimum: x <= y) as TF; the finite differences agree there.
    v.push_back(half_case(mk(KB_OP_MAXIMUM, "maximum_ties_vjp",
                             [](kb_context *, In in) {
                                 kb_tensor *y = kb_stop_gradient(kb_clip(in[0], -0.5, 0.5));
                                 return vjp(kb_maximum(in[0], y), in[1], in[0]);
                             },
                             {{4, 5}, {4, 5}}, {kSym}, true, EXACT, EXACT, {-0.5, 0.5})));
    v.push_back(half_case(mk(KB_OP_MINIMUM, "minimum_ties_vjp",
                             [](kb_context *, In in) {
                                 kb_tensor *y = kb_stop_gradient(kb_clip(in[0], -0.5, 0.5));
                                 return vjp(kb_minimum(in[0], y), in[1], in[0]);
                             },
                             {{4, 5}, {4, 5}}, {kSym}, true, EXACT, EXACT, {-0.5, 0.5})));

    // ---- comparisons -------------------------------------------------------------------------
    struct Cmp {
        kb_op_id op;
        const char *n;
        Bin f;
    };
    const Cmp cmps[] = {{KB_OP_EQUAL, "equal", kb_equal},     {KB_OP_NOT_EQUAL, "not_equal", kb_not_equal},
                        {KB_OP_GREATER, "greater", kb_greater}, {KB_OP_GREATER_EQUAL, "greater_equal", kb_greater_equal},
                        {KB_OP_LESS, "less", kb_less},          {KB_OP_LESS_EQUAL, "less_equal", kb_less_equal}};
    for (const Cmp &c : cmps) {
        Bin f = c.f;
        add_binary(v, c.op, c.n, f, {kSym}, false, EXACT, EXACT);
        // Rounded inputs: many ties.
        v.push_back(half_case(mk(c.op, std::string(c.n) + "_ties_4x5",
                                 [f](kb_context *, In in) { return f(kb_round(in[0]), kb_round(in[1])); },
                                 {{4, 5}, {4, 5}}, {kSym}, false, EXACT, EXACT)));
        add_binary_int(v, c.op, c.n, f, KB_INT32, {-3.0, 3.0});
        add_binary_int(v, c.op, c.n, f, KB_INT8, {-3.0, 3.0});
    }
    // bool operands (equal / not_equal only).
    v.push_back(half_case(mk(KB_OP_EQUAL, "equal_bool",
                             [](kb_context *, In in) {
                                 return kb_equal(kb_greater(in[0], in[1]), kb_less(in[1], in[2]));
                             },
                             {{3, 4}, {3, 4}, {4}}, {kSym}, false, EXACT, EXACT)));
    v.push_back(half_case(mk(KB_OP_NOT_EQUAL, "not_equal_bool",
                             [](kb_context *, In in) {
                                 return kb_not_equal(kb_greater(in[0], in[1]), kb_less(in[1], in[2]));
                             },
                             {{3, 4}, {3, 4}, {4}}, {kSym}, false, EXACT, EXACT)));

    // ---- select: switch / in_train_phase / in_test_phase (cond = in[0] > 0, kept off 0) --------
    struct Sw {
        const char *n;
        Shape c, e;
    };
    const Sw sws[] = {{"scalar", {}, {3, 4}},         {"same_4x3x2", {4, 3, 2}, {4, 3, 2}},
                      {"rank1_4_4x3x2", {4}, {4, 3, 2}}, {"rank2_4x3_4x3x2", {4, 3}, {4, 3, 2}},
                      {"bcast_4x1_4x3x2", {4, 1}, {4, 3, 2}}, {"1037", {1037}, {1037}}};
    for (const Sw &w : sws) {
        Builder sw = [](kb_context *ctx, In in) {
            return kb_switch(kb_greater(in[0], scalar_like(ctx, 0.0, in[0])), in[1], in[2]);
        };
        v.push_back(half_case(mk(KB_OP_SELECT, std::string("switch_") + w.n, sw, {w.c, w.e, w.e}, {kSym},
                                 numel(w.e) < 100, EXACT, EXACT, {0.0})));  // 1037: the flat CUDA path
        // the gradient's selects (dy against a scalar zero) without the finite differences
        v.push_back(mk(KB_OP_SELECT, std::string("switch_vjp_") + w.n,
                       [sw](kb_context *ctx, In in) {
                           return kb_add(vjp(sw(ctx, in), in[3], in[1]), vjp(sw(ctx, in), in[3], in[2]));
                       },
                       {w.c, w.e, w.e, w.e}, {kSym}, false, EXACT, EXACT, {0.0}));
    }
    // a float condition cast to bool (non-zero is true), integer and bool operands
    v.push_back(mk(KB_OP_SELECT, "switch_float_cond_int32",
                   [](kb_context *, In in) {
                       return kb_switch(kb_round(in[0]), kb_cast(in[1], KB_INT32), kb_cast(in[2], KB_INT32));
                   },
                   {{5, 3}, {5, 3}, {5, 3}}, {{-1.4, 1.4}}, false, EXACT, EXACT, {-0.5, 0.5}));
    v.push_back(mk(KB_OP_SELECT, "switch_int8_rank1",
                   [](kb_context *ctx, In in) {
                       return kb_switch(kb_less(in[0], scalar_like(ctx, 0.0, in[0])), kb_cast(in[1], KB_INT8),
                                        kb_cast(in[2], KB_INT8));
                   },
                   {{3}, {3, 4}, {3, 4}}, {{-9.0, 9.0}}, false, EXACT, EXACT, {0.0}));
    v.push_back(mk(KB_OP_SELECT, "switch_bool",
                   [](kb_context *ctx, In in) {
                       kb_tensor *z = scalar_like(ctx, 0.0, in[0]);
                       return kb_switch(kb_greater(in[0], z), kb_greater(in[1], z), kb_less(in[2], z));
                   },
                   {{2, 3}, {2, 3}, {2, 3}}, {kSym}, false, EXACT, EXACT, {0.0}));
    v.push_back(half_case(mk(KB_OP_SELECT, "in_train_phase_tensor",
                             [](kb_context *ctx, In in) {
                                 return kb_in_train_phase(in[1], in[2], kb_greater(in[0], scalar_like(ctx, 0.0, in[0])));
                             },
                             {{}, {2, 5}, {2, 5}}, {kSym}, true, EXACT, EXACT, {0.0})));
    v.push_back(mk(KB_OP_SELECT, "in_test_phase_tensor",
                   [](kb_context *ctx, In in) {
                       return kb_in_test_phase(in[1], in[2], kb_greater(in[0], scalar_like(ctx, 0.0, in[0])));
                   },
                   {{}, {2, 5}, {2, 5}}, {kSym}, true, EXACT, EXACT, {0.0}));
}

}  // namespace kbt
