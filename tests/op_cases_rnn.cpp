// Op cases of the rnn family (see op_cases.h): the fused LSTM / GRU / simple RNN (tanh, relu)
// with and without initial states, go_backwards, every result (outputs, h_n, c_n), and the
// backward-data / backward-weights ops through vjp. Small shapes: x (2, 3, 3), units 2.
#include "op_cases.h"

namespace kbt {

namespace {
const Range sym{-1.0, 1.0};
const int64_t B = 2, T = 3, I = 3, U = 2;

struct Layer {
    const char *name;
    int mode;       // 0 LSTM, 1 GRU, 2 simple tanh, 3 simple relu
    bool states;    // h0 (and c0) given
    int go_back;
    int result;     // 0 outputs, 1 h_n, 2 c_n
};
const Layer kLayers[] = {
    {"lstm_outputs", 0, true, 0, 0},          {"lstm_c_n", 0, true, 0, 2},
    {"lstm_back_nostate", 0, false, 1, 0},    {"lstm_h_n_back", 0, true, 1, 1},
    {"gru_outputs", 1, true, 0, 0},           {"gru_back_nostate", 1, false, 1, 1},
    {"simple_tanh_outputs", 2, true, 0, 0},   {"simple_tanh_back_nostate", 2, false, 1, 0},
    {"simple_relu_outputs", 3, true, 0, 0},
};

int gates(int mode) { return mode == 0 ? 4 : mode == 1 ? 3 : 1; }

// Inputs: x, [h0, [c0]], kernel, recurrent_kernel, bias.
std::vector<Shape> layer_shapes(const Layer &l) {
    int64_t G = gates(l.mode);
    std::vector<Shape> s{{B, T, I}};
    if (l.states) s.push_back({B, U});
    if (l.states && l.mode == 0) s.push_back({B, U});
    s.push_back({I, G * U});
    s.push_back({U, G * U});
    s.push_back({2 * G * U});
    return s;
}

// All results of one layer call: res = {outputs, h_n, c_n (LSTM; else NULL)}; false on error.
bool run_layer(const Layer &l, In in, kb_tensor *res[3]) {
    size_t k = 1;
    kb_tensor *h0 = l.states ? in[k++] : nullptr;
    kb_tensor *c0 = l.states && l.mode == 0 ? in[k++] : nullptr;
    kb_tensor *K = in[k], *R = in[k + 1], *b = in[k + 2];
    res[0] = res[1] = res[2] = nullptr;
    kb_status st;
    if (l.mode == 0)
        st = kb_cudnn_lstm(in[0], h0, c0, K, R, b, l.go_back, &res[0], &res[1], &res[2]);
    else if (l.mode == 1)
        st = kb_cudnn_gru(in[0], h0, K, R, b, l.go_back, &res[0], &res[1]);
    else
        st = kb_cudnn_simple_rnn(in[0], h0, K, R, b, l.mode == 2 ? KB_CUDNN_RNN_TANH : KB_CUDNN_RNN_RELU, l.go_back,
                                 &res[0], &res[1]);
    return st == KB_OK;
}

kb_tensor *build_layer(const Layer &l, In in) {
    kb_tensor *res[3];
    return run_layer(l, in, res) ? res[l.result] : nullptr;
}
}  // namespace

void add_rnn_cases(std::vector<OpCase> &v) {
    for (const Layer &l : kLayers) {
        Builder b = [l](kb_context *, In in) { return build_layer(l, in); };
        v.push_back(mk(KB_OP_CUDNN_RNN, std::string("cudnn_rnn_") + l.name, b, layer_shapes(l), {sym}, true, T32R, T64R));
    }
    // The backward ops through the gradient of a loss that reaches every packed row: sum(outputs * w)
    // + sum(h_n * w[:, 0]) + sum(c_n * w[:, 0]) (w (B, T, U) the last input), with respect to each
    // layer input in turn: x, h0, c0 (backward data), kernel, recurrent_kernel, bias (weights).
    const Layer bl[] = {{"lstm", 0, true, 0, 0}, {"gru_back", 1, true, 1, 0}, {"simple_tanh_nostate", 2, false, 0, 0},
                        {"simple_relu", 3, true, 1, 0}};
    const char *wrt_names[6] = {"x", "h0", "c0", "kernel", "recurrent_kernel", "bias"};
    for (const Layer &l : bl) {
        std::vector<Shape> s = layer_shapes(l);
        s.push_back({B, T, U});
        for (int wrt = 0; wrt < 6; ++wrt) {
            if ((wrt == 1 && !l.states) || (wrt == 2 && !(l.states && l.mode == 0))) continue;
            // position of input `wrt` in the case's input list
            size_t at = wrt == 0 ? 0 : wrt <= 2 ? (size_t)wrt : s.size() - 1 - (6 - (size_t)wrt);
            Builder b = [l, at](kb_context *, In in) -> kb_tensor * {
                std::vector<kb_tensor *> li(in.begin(), in.end() - 1);
                kb_tensor *w = in.back(), *res[3];
                if (!run_layer(l, li, res)) return nullptr;
                int64_t st[3] = {0, 0, 0}, sz[3] = {-1, 1, -1};
                kb_tensor *w0 = kb_squeeze(kb_slice(w, st, sz, 3), 1);
                kb_tensor *loss = kb_sum(kb_multiply(res[0], w), nullptr, 0, 0);
                for (int r = 1; r < 3; ++r)
                    if (res[r]) loss = kb_add(loss, kb_sum(kb_multiply(res[r], w0), nullptr, 0, 0));
                kb_tensor *g = nullptr;
                if (!loss || kb_gradients(loss, &in[at], 1, &g) != KB_OK) return nullptr;
                return g;
            };
            v.push_back(mk(wrt <= 2 ? KB_OP_CUDNN_RNN_BACKWARD_DATA : KB_OP_CUDNN_RNN_BACKWARD_WEIGHTS,
                           std::string("cudnn_rnn_grad_") + l.name + "_" + wrt_names[wrt], b, s, {sym}, false, T32R,
                           T64R));
        }
    }
}

}  // namespace kbt
