// Op cases of the nn family (see op_cases.h). The relu / sigmoid / softmax / crossentropy cases of
// the foundation are in op_cases.cpp; the float16 / bfloat16 parity cases of those ops are here.
#include <cmath>

#include "op_cases.h"

namespace kbt {

namespace {

const Range kSym{-3.0, 3.0}, kProb{0.0, 1.0};

// Integer class indices from a float input in [0, C): cast truncates (kinks keep values off integers).
kb_tensor *as_classes(kb_tensor *t, kb_dtype dt) { return kb_cast(t, dt); }
std::vector<double> integer_kinks(int n) {
    std::vector<double> k;
    for (int i = 0; i <= n; ++i) k.push_back(i);
    return k;
}

void push_half(std::vector<OpCase> &v, OpCase c) {
    c.half = true;
    v.push_back(std::move(c));
}

}  // namespace

void add_nn_cases(std::vector<OpCase> &v) {
    // ---- activations (every one also in float16 / bfloat16) ----------------------------------
    for (double alpha : {1.0, 0.5}) {
        std::string n = alpha == 1.0 ? "elu_3x4_a1" : "elu_3x4_a05";
        push_half(v, mk(KB_OP_ELU, n, [alpha](kb_context *, In in) { return kb_elu(in[0], alpha); }, {{3, 4}},
                        {{-4.0, 3.0}}, true, T32, T64, {0.0}));
    }
    push_half(v, mk(KB_OP_SOFTPLUS, "softplus_3x4", [](kb_context *, In in) { return kb_softplus(in[0]); },
                    {{3, 4}}, {{-8.0, 8.0}}, true, T32, T64, {0.0}));
    push_half(v, mk(KB_OP_SOFTPLUS, "softplus_large", [](kb_context *, In in) { return kb_softplus(in[0]); },
                    {{5, 7}}, {{-60.0, 60.0}}, false));
    push_half(v, mk(KB_OP_SOFTSIGN, "softsign_3x4", [](kb_context *, In in) { return kb_softsign(in[0]); },
                    {{3, 4}}, {{-5.0, 5.0}}, true, T32, T64, {0.0}));
    push_half(v, mk(KB_OP_HARD_SIGMOID, "hard_sigmoid_4x5",
                    [](kb_context *, In in) { return kb_hard_sigmoid(in[0]); }, {{4, 5}}, {{-4.0, 4.0}}, true, T32,
                    T64, {-2.5, 2.5}));
    push_half(v, mk(KB_OP_TANH, "tanh_3x4", [](kb_context *, In in) { return kb_tanh(in[0]); }, {{3, 4}},
                    {{-4.0, 4.0}}, true));
    // 1000 elements: the vector path of the CUDA kernel plus a tail.
    push_half(v, mk(KB_OP_TANH, "tanh_1003", [](kb_context *, In in) { return kb_tanh(in[0]); }, {{1003}},
                    {{-4.0, 4.0}}, false));
    push_half(v, mk(KB_OP_ELU, "elu_1003", [](kb_context *, In in) { return kb_elu(in[0], 1.0); }, {{1003}},
                    {{-4.0, 3.0}}, false));

    // relu / relu_grad / sigmoid / softmax / log_softmax in float16 / bfloat16 too.
    push_half(v, mk(KB_OP_RELU, "relu_half_a01_m5_t08",
                    [](kb_context *, In in) { return kb_relu(in[0], 0.1, 5.0, 0.8); }, {{3, 4}}, {{-4.0, 10.0}},
                    false, T32, T64, {0.0, 0.8, 5.0}));
    push_half(v, mk(KB_OP_RELU_GRAD, "relu_grad_half",
                    [](kb_context *, In in) { return vjp(kb_relu(in[0], 0.0, INFINITY, 0.0), in[1], in[0]); },
                    {{3, 4}, {3, 4}}, {kSym, kSym}, false, T32, T64, {0.0}));
    push_half(v, mk(KB_OP_SIGMOID, "sigmoid_half", [](kb_context *, In in) { return kb_sigmoid(in[0]); }, {{3, 4}},
                    {{-6.0, 6.0}}, false));
    for (int axis : {-1, 1})
        push_half(v, mk(KB_OP_SOFTMAX, std::string("softmax_half_axis") + (axis < 0 ? "m1" : "1"),
                        [axis](kb_context *, In in) { return kb_softmax(in[0], axis); }, {{2, 3, 4}}, {kSym},
                        false));
    // A row longer than 1024: the block-per-row kernel.
    push_half(v, mk(KB_OP_SOFTMAX, "softmax_2x1500", [](kb_context *, In in) { return kb_softmax(in[0], -1); },
                    {{2, 1500}}, {kSym}, false, T32R, T64R));
    push_half(v, mk(KB_OP_LOG_SOFTMAX, "log_softmax_half_cce_logits",
                    [](kb_context *, In in) { return kb_categorical_crossentropy(in[0], in[1], 1, -1); },
                    {{4, 3}, {4, 3}}, {kProb, kSym}, false, T32R, T64R));

    // ---- l2_normalize (composite: square, sum, maximum, sqrt, divide) -------------------------
    push_half(v, mk(KB_OP_MAXIMUM, "l2_normalize_axis_m1",
                    [](kb_context *, In in) {
                        int ax = -1;
                        return kb_l2_normalize(in[0], &ax, 1);
                    },
                    {{3, 4}}, {kSym}, true, T32R, T64R));
    push_half(v, mk(KB_OP_MAXIMUM, "l2_normalize_axes_0_2",
                    [](kb_context *, In in) {
                        int ax[2] = {0, 2};
                        return kb_l2_normalize(in[0], ax, 2);
                    },
                    {{2, 3, 2}}, {kSym}, true, T32R, T64R));
    push_half(v, mk(KB_OP_MAXIMUM, "l2_normalize_all",
                    [](kb_context *, In in) { return kb_l2_normalize(in[0], nullptr, 0); }, {{2, 3}}, {kSym}, true,
                    T32R, T64R));

    // ---- in_top_k -----------------------------------------------------------------------------
    for (int64_t k : {1, 2, 4}) {
        push_half(v, mk(KB_OP_IN_TOP_K, "in_top_k_6x5_k" + std::to_string(k),
                        [k](kb_context *, In in) { return kb_in_top_k(in[0], as_classes(in[1], KB_INT32), k); },
                        {{6, 5}, {6}}, {kSym, {0.0, 5.0}}, false, EXACT, EXACT, integer_kinks(5)));
    }
    // Rounded predictions: many ties with the target; int64 targets.
    push_half(v, mk(KB_OP_IN_TOP_K, "in_top_k_ties_40x7_k2",
                    [](kb_context *, In in) {
                        return kb_in_top_k(kb_round(in[0]), as_classes(in[1], KB_INT64), 2);
                    },
                    {{40, 7}, {40}}, {{-1.4, 1.4}, {0.0, 7.0}}, false, EXACT, EXACT,
                    {-0.5, 0.5, 1, 2, 3, 4, 5, 6}));
    // 70 classes: more than one per lane of the CUDA warp.
    v.push_back(mk(KB_OP_IN_TOP_K, "in_top_k_9x70_k5",
                   [](kb_context *, In in) { return kb_in_top_k(in[0], as_classes(in[1], KB_INT32), 5); },
                   {{9, 70}, {9}}, {kSym, {0.0, 70.0}}, false, EXACT, EXACT, integer_kinks(70)));

    // ---- losses -------------------------------------------------------------------------------
    push_half(v, mk(KB_OP_SIGMOID_CROSS_ENTROPY, "bce_logits_3x4",
                    [](kb_context *, In in) { return kb_binary_crossentropy(in[0], in[1], 1); },
                    {{3, 4}, {3, 4}}, {kProb, {-6.0, 6.0}}, true));
    push_half(v, mk(KB_OP_SIGMOID_CROSS_ENTROPY, "bce_logits_bcast_4x1_4x3",
                    [](kb_context *, In in) { return kb_binary_crossentropy(in[0], in[1], 1); },
                    {{4, 1}, {4, 3}}, {kProb, {-6.0, 6.0}}, true));
    push_half(v, mk(KB_OP_SIGMOID_CROSS_ENTROPY, "bce_sigmoid_output",
                    [](kb_context *, In in) { return kb_binary_crossentropy(in[0], kb_sigmoid(in[1]), 0); },
                    {{3, 4}, {3, 4}}, {kProb, {-30.0, 30.0}}, true));
    push_half(v, mk(KB_OP_CLIP, "bce_probs_3x4",
                    [](kb_context *, In in) { return kb_binary_crossentropy(in[0], in[1], 0); },
                    {{3, 4}, {3, 4}}, {kProb, {0.02, 0.98}}, true));
    push_half(v, mk(KB_OP_LOG_SOFTMAX, "scce_logits_5x4",
                    [](kb_context *, In in) {
                        return kb_sparse_categorical_crossentropy(as_classes(in[0], KB_INT32), in[1], 1, -1);
                    },
                    {{5}, {5, 4}}, {{0.0, 4.0}, kSym}, true, T32R, T64R, integer_kinks(4)));
    push_half(v, mk(KB_OP_LOG_SOFTMAX, "scce_probs_axis1_2x3x2",
                    [](kb_context *, In in) {
                        return kb_sparse_categorical_crossentropy(as_classes(in[0], KB_INT64), in[1], 0, 1);
                    },
                    {{2, 2}, {2, 3, 2}}, {{0.0, 3.0}, {0.05, 1.0}}, true, T32R, T64R, integer_kinks(3)));
    push_half(v, mk(KB_OP_LOG_SOFTMAX, "scce_softmax_output_trailing1",
                    [](kb_context *, In in) {
                        return kb_sparse_categorical_crossentropy(as_classes(in[0], KB_INT32),
                                                                  kb_softmax(in[1], -1), 0, -1);
                    },
                    {{4, 1}, {4, 3}}, {{0.0, 3.0}, kSym}, true, T32R, T64R, integer_kinks(3)));

    // ---- bias_add (composite: reshape + add) --------------------------------------------------
    struct B {
        const char *n;
        Shape x, b;
        kb_data_format_arg f;
    };
    const B biases[] = {{"cl_4d_1d", {2, 3, 2, 4}, {4}, KB_DATA_FORMAT_CHANNELS_LAST},
                        {"cf_4d_1d", {2, 3, 2, 4}, {3}, KB_DATA_FORMAT_CHANNELS_FIRST},
                        {"cf_3d_full", {2, 6, 5}, {5, 6}, KB_DATA_FORMAT_CHANNELS_FIRST},
                        {"cl_3d_full", {2, 6, 5}, {6, 5}, KB_DATA_FORMAT_CHANNELS_LAST},
                        {"cf_5d_1d", {2, 3, 2, 2, 2}, {3}, KB_DATA_FORMAT_CHANNELS_FIRST},
                        {"cf_2d", {3, 4}, {4}, KB_DATA_FORMAT_CHANNELS_FIRST}};
    for (const B &b : biases) {
        kb_data_format_arg f = b.f;
        push_half(v, mk(KB_OP_ADD, std::string("bias_add_") + b.n,
                        [f](kb_context *, In in) { return kb_bias_add(in[0], in[1], f); }, {b.x, b.b}, {kSym}, true));
    }

    // ---- local_conv1d / local_conv2d: extract_patches + batch_dot (+ the adjoint via vjp) -------
    struct L1 {
        const char *n;
        int64_t L, k, s, ol;
    };
    // ol from the kernel: (L - k) / s + 1, or fewer positions (the tail of the input unused)
    const L1 l1s[] = {{"k3_s2", 7, 3, 2, 3}, {"k2_s2_tail", 6, 2, 2, 2}, {"k1_s1", 4, 1, 1, 4}};
    for (const L1 &c : l1s) {
        Builder f = [c](kb_context *, In in) {
            return kb_local_conv1d(in[0], in[1], c.k, c.s, KB_DATA_FORMAT_CHANNELS_FIRST);  // format not used
        };
        Shape xs{2, c.L, 3}, ks{c.ol, c.k * 3, 2}, ys{2, c.ol, 2};
        v.push_back(mk(KB_OP_EXTRACT_PATCHES, std::string("local_conv1d_") + c.n, f, {xs, ks}, {kSym}, true, T32R,
                       T64R));
        v.push_back(mk(KB_OP_EXTRACT_PATCHES_GRAD, std::string("local_conv1d_dx_") + c.n,
                       [f](kb_context *ctx, In in) { return vjp(f(ctx, in), in[2], in[0]); }, {xs, ks, ys}, {kSym},
                       true, T32R, T64R));
    }
    struct L2 {
        const char *n;
        int64_t h, w, k[2], s[2], o[2];
    };
    const L2 l2s[] = {{"k3x2_s2x1", 5, 4, {3, 2}, {2, 1}, {2, 3}},   // overlapping columns
                      {"k2x2_s1x2_tail", 4, 5, {2, 2}, {1, 2}, {3, 2}}, // last column unused
                      {"k1x3_s1x1", 2, 4, {1, 3}, {1, 1}, {2, 2}}};
    for (const L2 &c : l2s)
        for (int cf = 0; cf < 2; ++cf) {
            kb_data_format_arg fmt = cf ? KB_DATA_FORMAT_CHANNELS_FIRST : KB_DATA_FORMAT_CHANNELS_LAST;
            Builder f = [c, fmt](kb_context *, In in) { return kb_local_conv2d(in[0], in[1], c.k, c.s, c.o, fmt); };
            Shape xs = cf ? Shape{2, 3, c.h, c.w} : Shape{2, c.h, c.w, 3};
            Shape ks{c.o[0] * c.o[1], c.k[0] * c.k[1] * 3, 2};
            Shape ys = cf ? Shape{2, 2, c.o[0], c.o[1]} : Shape{2, c.o[0], c.o[1], 2};
            std::string tag = std::string(c.n) + (cf ? "_cf" : "_cl");
            v.push_back(mk(KB_OP_EXTRACT_PATCHES, "local_conv2d_" + tag, f, {xs, ks}, {kSym}, true, T32R, T64R));
            v.push_back(mk(KB_OP_EXTRACT_PATCHES_GRAD, "local_conv2d_dx_" + tag,
                           [f](kb_context *ctx, In in) { return vjp(f(ctx, in), in[2], in[0]); }, {xs, ks, ys},
                           {kSym}, true, T32R, T64R));
        }
}

}  // namespace kbt
