// Op cases of the ctc family (see op_cases.h): ctc_loss through ctc_batch_cost (finite
// differences w.r.t. y_pred), ctc_loss_grad through vjp (its dy-linear part checked by finite
// differences on constant probabilities; the second derivative w.r.t. y_pred is refused),
// dense-to-sparse through to_dense, greedy decoding (paths and log probabilities) and beam search.
#include "op_cases.h"

namespace kbt {

namespace {
const Range prob{0.05, 1.0};

// Labels (2, 3) with a repeat (needs a blank between) and -1 padding; lengths (2, 1).
kb_tensor *labels(kb_context *ctx) {
    return make_const(ctx, {0, 1, 1, 2, 0, -1}, {2, 3}, KB_INT32);
}
kb_tensor *lens(kb_context *ctx, double a, double b, kb_dtype dt = KB_INT32) {
    return make_const(ctx, {a, b}, {2, 1}, dt);
}
kb_tensor *cost(kb_context *ctx, kb_tensor *y) {
    return kb_ctc_batch_cost(labels(ctx), y, lens(ctx, 6, 5), lens(ctx, 3, 2, KB_INT64));
}
// Fixed probabilities (2, 6, 4) of the case's dtype: a constant, so only dy varies.
kb_tensor *fixed_probs(kb_context *ctx, kb_dtype dt) {
    std::vector<double> v(48);
    for (size_t i = 0; i < v.size(); ++i) v[i] = 0.1 + 0.8 * (double)((i * 37 + 11) % 29) / 28.0;
    return make_const(ctx, v, {2, 6, 4}, dt);
}
}  // namespace

void add_ctc_cases(std::vector<OpCase> &v) {
    const Shape ys{2, 6, 4};
    v.push_back(mk(KB_OP_CTC_LOSS, "ctc_batch_cost_2x6x4", [](kb_context *ctx, In in) { return cost(ctx, in[0]); },
                   {ys}, {prob}, true, T32R, T64R));
    // The kernel's gradient on random probabilities (parity); its own derivative w.r.t. y_pred is
    // refused, so no finite differences here.
    v.push_back(mk(KB_OP_CTC_LOSS_GRAD, "ctc_loss_grad_vjp",
                   [](kb_context *ctx, In in) { return vjp(cost(ctx, in[0]), in[1], in[0]); }, {ys, {2, 1}},
                   {prob, {-1.0, 1.0}}, false, T32R, T64R));
    // Linear in dy: finite differences w.r.t. the weights, y_pred a constant.
    v.push_back(mk(KB_OP_CTC_LOSS_GRAD, "ctc_loss_grad_linear_in_dy",
                   [](kb_context *ctx, In in) {
                       kb_tensor *y = fixed_probs(ctx, kb_dtype_of(in[0]));
                       return vjp(cost(ctx, y), in[0], y);
                   },
                   {{2, 1}}, {{-1.0, 1.0}}, true, T32R, T64R));
    // labels as float values (the case's dtype) kept up to lengths (3, 1): to_dense is exact.
    v.push_back(mk(KB_OP_CTC_SPARSE_PART, "ctc_label_dense_to_sparse_to_dense",
                   [](kb_context *ctx, In in) {
                       kb_tensor *len = make_const(ctx, {3, 1, 0}, {3}, KB_INT64);
                       return kb_to_dense(kb_ctc_label_dense_to_sparse(in[0], len));
                   },
                   {{3, 4}}, {{0.5, 3.0}}, false, EXACT, EXACT));
    auto decode = [](kb_context *ctx, kb_tensor *y, int greedy, int which) {
        kb_tensor *len = make_const(ctx, {6, 4}, {2}, KB_INT32);
        kb_tensor *paths[2] = {nullptr, nullptr}, *lp = nullptr;
        if (kb_ctc_decode(y, len, greedy, 3, 2, 0, paths, &lp) != KB_OK) return (kb_tensor *)nullptr;
        return which < 0 ? lp : kb_cast(paths[which], kb_dtype_of(y));
    };
    v.push_back(mk(KB_OP_CTC_GREEDY_DECODE, "ctc_decode_greedy_path",
                   [decode](kb_context *ctx, In in) { return decode(ctx, in[0], 1, 0); }, {ys}, {prob}, false,
                   EXACT, EXACT));
    v.push_back(mk(KB_OP_CTC_GREEDY_DECODE, "ctc_decode_greedy_log_prob",
                   [decode](kb_context *ctx, In in) { return decode(ctx, in[0], 1, -1); }, {ys}, {prob}, false,
                   T32R, T64R));
    v.push_back(mk(KB_OP_CTC_BEAM_SEARCH, "ctc_decode_beam_log_prob",
                   [decode](kb_context *ctx, In in) { return decode(ctx, in[0], 0, -1); }, {ys}, {prob}, false,
                   T32R, T64R));
    v.push_back(mk(KB_OP_CTC_BEAM_SEARCH, "ctc_decode_beam_path1",
                   [decode](kb_context *ctx, In in) { return decode(ctx, in[0], 0, 1); }, {ys}, {prob}, false,
                   EXACT, EXACT));
}

}  // namespace kbt
