// Op cases of the control family (see op_cases.h): the loop node and its part ops, reached through
// map_fn (a captured variable), rnn (a tanh step with captured weights, a mask and go_backwards:
// the gradient is backpropagation through time), the lazy switch_fn (both branches) and the
// vector-Jacobian product of foldl (loop_part_grad and the gradient loop node; its
// finite-difference check is a second derivative: the gradient loop of a gradient loop).
#include "op_cases.h"

namespace kbt {

namespace {
const Range sym{-1.0, 1.0};

kb_tensor *square_plus_w(kb_tensor *x, void *w) { return kb_add(kb_multiply(x, x), (kb_tensor *)w); }
kb_tensor *mul_acc(kb_tensor *acc, kb_tensor *x, void *w) { return kb_add(kb_multiply(acc, x), (kb_tensor *)w); }

struct Weights {
    kb_tensor *W, *U;
};
kb_status tanh_step(kb_tensor *x, kb_tensor *const *states, int, void *user, kb_tensor **out, kb_tensor **ns) {
    Weights *w = (Weights *)user;
    *out = kb_tanh(kb_add(kb_dot(x, w->W), kb_dot(states[0], w->U)));
    ns[0] = *out;
    return *out ? KB_OK : kb_last_status();
}

struct Pair {
    kb_tensor *x, *w;
};
kb_tensor *then_mul(void *u) { return kb_multiply(((Pair *)u)->x, ((Pair *)u)->w); }
kb_tensor *else_tanh(void *u) { return kb_tanh(kb_add(((Pair *)u)->x, ((Pair *)u)->w)); }
kb_tensor *lazy_switch(kb_context *ctx, In in, double cond) {
    Pair p{in[0], in[1]};
    return kb_switch_fn(kb_constant_scalar(ctx, cond, KB_INT32, nullptr, 0), then_mul, else_tanh, &p);
}

kb_tensor *rnn_outputs(kb_context *ctx, In in, int back, int masked) {
    Weights w{in[2], in[3]};
    std::vector<double> mv = {1, 1, 0, 0, 1, 1};
    kb_tensor *mask = masked ? make_var(ctx, mv, {2, 3}, KB_BOOL) : nullptr;
    kb_tensor *last = nullptr, *outs = nullptr, *ns[1] = {nullptr};
    kb_tensor *h0 = in[1];
    if (kb_rnn(tanh_step, &w, in[0], &h0, 1, back, mask, nullptr, 0, 0, 0, &last, &outs, ns) != KB_OK) return nullptr;
    return outs;
}
}  // namespace

void add_control_cases(std::vector<OpCase> &v) {
    v.push_back(mk(
        KB_OP_LOOP, "map_fn_captured",
        [](kb_context *, In in) { return kb_map_fn(square_plus_w, in[1], in[0], KB_FLOATX); }, {{4, 3}, {3}}, {sym},
        true));
    const Shape rnn_shapes[] = {{2, 3, 2}, {2, 3}, {2, 3}, {3, 3}};
    v.push_back(mk(
        KB_OP_LOOP_PART, "rnn_tanh", [](kb_context *c, In in) { return rnn_outputs(c, in, 0, 0); },
        {rnn_shapes[0], rnn_shapes[1], rnn_shapes[2], rnn_shapes[3]}, {sym}, true, T32R, T64R));
    v.push_back(mk(
        KB_OP_LOOP_PART, "rnn_tanh_backwards_masked", [](kb_context *c, In in) { return rnn_outputs(c, in, 1, 1); },
        {rnn_shapes[0], rnn_shapes[1], rnn_shapes[2], rnn_shapes[3]}, {sym}, true, T32R, T64R));
    v.push_back(mk(
        KB_OP_LOOP_PART, "switch_fn_then", [](kb_context *c, In in) { return lazy_switch(c, in, 3); }, {{2, 3}, {2, 3}},
        {sym}, true));
    v.push_back(mk(
        KB_OP_LOOP_PART, "switch_fn_else", [](kb_context *c, In in) { return lazy_switch(c, in, 0); }, {{2, 3}, {2, 3}},
        {sym}, true));
    v.push_back(mk(
        KB_OP_LOOP_PART_GRAD, "foldl_vjp",
        [](kb_context *, In in) { return vjp(kb_foldl(mul_acc, in[2], in[0], in[1]), in[3], in[0]); },
        {{4, 3}, {3}, {3}, {3}}, {sym}, true, T32R, T64R));
}

}  // namespace kbt
