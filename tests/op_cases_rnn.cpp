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

kb_tensor *build_layer(const Layer &l, In in) {
    size_t k = 1;
    kb_tensor *h0 = l.states ? in[k++] : nullptr;
    kb_tensor *c0 = l.states && l.mode == 0 ? in[k++] : nullptr;
    kb_tensor *K = in[k], *R = in[k + 1], *b = in[k + 2];
    kb_tensor *res[3] = {nullptr, nullptr, nullptr};
    kb_status st;
    if (l.mode == 0)
        st = kb_cudnn_lstm(in[0], h0, c0, K, R, b, l.go_back, &res[0], &res[1], &res[2]);
    else if (l.mode == 1)
        st = kb_cudnn_gru(in[0], h0, K, R, b, l.go_back, &res[0], &res[1]);
    else
        st = kb_cudnn_simple_rnn(in[0], h0, K, R, b, l.mode == 2 ? KB_CUDNN_RNN_TANH : KB_CUDNN_RNN_RELU, l.go_back,
                                 &res[0], &res[1]);
    return st == KB_OK ? res[l.result] : nullptr;
}
}  // namespace

void add_rnn_cases(std::vector<OpCase> &v) {
    for (const Layer &l : kLayers) {
        Builder b = [l](kb_context *, In in) { return build_layer(l, in); };
        v.push_back(mk(KB_OP_CUDNN_RNN, std::string("cudnn_rnn_") + l.name, b, layer_shapes(l), {sym}, true, T32R, T64R));
    }
    // The backward ops through vjp: w is the upstream gradient of the outputs (B, T, U).
    const Layer bl[] = {{"lstm", 0, true, 0, 0}, {"gru", 1, true, 1, 0}, {"simple_tanh", 2, false, 0, 0}};
    for (const Layer &l : bl) {
        std::vector<Shape> s = layer_shapes(l);
        size_t kernel_at = s.size() - 3;
        s.push_back({B, T, U});
        Builder data = [l](kb_context *, In in) {
            std::vector<kb_tensor *> li(in.begin(), in.end() - 1);
            return vjp(build_layer(l, li), in.back(), in[0]);
        };
        Builder weights = [l, kernel_at](kb_context *, In in) {
            std::vector<kb_tensor *> li(in.begin(), in.end() - 1);
            return vjp(build_layer(l, li), in.back(), in[kernel_at + 1]);  // recurrent_kernel
        };
        v.push_back(mk(KB_OP_CUDNN_RNN_BACKWARD_DATA, std::string("cudnn_rnn_backward_data_") + l.name, data, s, {sym},
                       false, T32R, T64R));
        v.push_back(mk(KB_OP_CUDNN_RNN_BACKWARD_WEIGHTS, std::string("cudnn_rnn_backward_weights_") + l.name, weights, s,
                       {sym}, false, T32R, T64R));
    }
}

}  // namespace kbt
