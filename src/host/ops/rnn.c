/* Family rnn: fused recurrent layers (cuDNN LSTM / GRU / simple RNN over a sequence, CPU twin).
 * Entries, validation / shape rules, gradient rules and public constructors.
 *
 * Math (Keras CuDNNLSTM / CuDNNGRU, cuDNN's cell formulas). x (B, T, I); Keras weights kernel
 * (I, G*U), recurrent_kernel (U, G*U), bias (2*G*U) = input bias bW then recurrent bias bR; the G
 * gate blocks of U columns are, in Keras order: LSTM (G = 4) i, f, c, o; GRU (G = 3) z, r, h;
 * simple RNN (G = 1). Per step, with xp = x_t . kernel + bW and hp = h . recurrent_kernel + bR:
 *   LSTM: i = s(xp_i + hp_i), f = s(xp_f + hp_f), g = tanh(xp_c + hp_c), o = s(xp_o + hp_o),
 *         c' = f * c + i * g, h' = o * tanh(c')
 *   GRU:  z = s(xp_z + hp_z), r = s(xp_r + hp_r), hh = tanh(xp_h + r * hp_h) (reset after the
 *         recurrent matmul, cuDNN's form = Keras reset_after=True), h' = z * h + (1 - z) * hh
 *   RNN:  h' = tanh(xp + hp) or relu(xp + hp)
 * s = sigmoid. The output sequence is h_1 .. h_T; h_n = h_T. go_backwards (the public functions)
 * reverses x along time first, as the Keras CuDNN layers: the outputs stay in processing order.
 *
 * Ops (one output each, so results are packed). kH = 2 for LSTM (h and c), 1 otherwise; R = kH + T
 * rows per batch entry; W = max(I, U); NB = 1 + 2G blocks. Block 0 of a pack holds what the
 * graph reads; blocks 1.. are a device-specific reserve, written by one op and read by the next:
 *   cudnn_rnn(x, h0, c0, kernel, recurrent_kernel, bias) -> (NB, B, R, U):
 *       block 0: row 0 = h_n, row 1 = c_n (LSTM), rows kH .. kH+T-1 = the outputs h_1 .. h_T;
 *       reserve: CPU = the gate activations (B*T, G*U) then the LSTM cells / GRU h . R_h + bR_h
 *       (B*T, U); GPU = cuDNN's training reserve space (from the first 256-byte multiple).
 *   cudnn_rnn_backward_data(x, h0, c0, kernel, recurrent_kernel, bias, pack, dpack) -> (NB, B, R, W):
 *       dpack = the gradient of cudnn_rnn's pack (only block 0 is read); block 0: row 0 [:U] =
 *       dh0, row 1 [:U] = dc0 (LSTM), rows kH.. [:I] = dx, unused columns zero; reserve: CPU = the
 *       pre-activation gradients dXP then (GRU) dHP (B*T, G*U) each; GPU = cuDNN's reserve as
 *       cudnnRNNBackwardData_v8 left it (what cudnnRNNBackwardWeights_v8 reads).
 *   cudnn_rnn_backward_weights(x, h0, c0, kernel, recurrent_kernel, bias, pack, data_pack)
 *       -> (I + U + 2, G*U): rows 0..I-1 = dkernel, rows I..I+U-1 = drecurrent_kernel, row I+U =
 *       d(input bias), row I+U+1 = d(recurrent bias).
 * So the GPU runs one training forward, one backward-data and one backward-weights per training
 * step, as a fused layer should, though each op has one output. Every slice of block 0 starts at a
 * fixed index, so B and T may be unknown at graph build; I, U (the weight shapes) must be known.
 * The sizes and block arithmetic of the three packs are ops/rnn_layout.h (kb_rnn_layout), which
 * the kernels index with and check their buffers against; tests/test_rnn.cpp checks it against
 * these infer rules. When cuDNN's reserve does not fit the reserve region of both packs (decided
 * from the plan's sizes, the same way by all three kernels), the GPU falls back: the forward runs cuDNN's inference mode, backward-data
 * recomputes the training forward and keeps dpack's block 0 in its reserve, and backward-weights
 * recomputes the forward and backward-data from it (kernels/rnn.cu).
 *
 * Absent initial states (Keras initial_state None = zeros) are not inputs: the slot holds x and
 * the attribute says "absent" (cuDNN takes NULL hx / cx as zeros); they get no gradient.
 *
 * Attributes (kb_attrs.i64): [0] mode (KB_RNN_MODE_LSTM 0, GRU 1, RNN_TANH 2, RNN_RELU 3);
 * [1] 1 = h0 given; [2] 1 = c0 given (LSTM only).
 *
 * The backward ops are not differentiable again (second derivatives of a fused recurrent layer
 * are refused with KB_ERR_NOT_SUPPORTED by their rule; they carry KB_OPF_NONDIFF so the op table
 * does not ask for a finite-difference case of a rule that only refuses).
 */
#include <stdio.h>

#include "cpu/cpu_kernels.h"
#include "ops/ops_common.h"

/* attrs.i64[0] (repeated in cpu/cpu_rnn.c and kernels/rnn.cu) */
enum { KB_RNN_MODE_LSTM = 0, KB_RNN_MODE_GRU = 1, KB_RNN_MODE_RNN_TANH = 2, KB_RNN_MODE_RNN_RELU = 3 };

static const char *const mode_names[4] = {"LSTM", "GRU", "simple RNN (tanh)", "simple RNN (relu)"};

/* Gate blocks per mode. */
static int kb_rnn_gates(int mode) { return mode == KB_RNN_MODE_LSTM ? 4 : mode == KB_RNN_MODE_GRU ? 3 : 1; }

typedef struct {
    int mode, G, kH;
    int64_t B, T, I, U; /* B, T may be KB_NONE at build */
} rnn_geom;

static int known_is(int64_t v, int64_t want) { return v < 0 || want < 0 || v == want; }

/* Validate the six inputs of every op of the family (in[0..5]) and fill *g. */
static kb_status check_inputs(const char *op, const kb_attrs *a, const kb_desc *in, rnn_geom *g) {
    char s1[160], s2[160];
    int mode = (int)a->i64[0];
    if (mode < 0 || mode > 3) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: unknown recurrent mode %d", op, mode);
    const kb_desc *x = &in[0], *h0 = &in[1], *c0 = &in[2], *k = &in[3], *r = &in[4], *b = &in[5];
    KB_TRY(kb_require_float(op, "x", x->dtype));
    if (x->rank != 3)
        return kb_set_error(KB_ERR_SHAPE, "%s: x must be 3-D (batch, timesteps, input_dim), got %s", op,
                            kb_shape_str(x, s1, sizeof s1));
    const char *wn[3] = {"kernel", "recurrent_kernel", "bias"};
    const kb_desc *w[3] = {k, r, b};
    for (int i = 0; i < 3; ++i) {
        if (w[i]->dtype != x->dtype)
            return kb_set_error(KB_ERR_DTYPE, "%s: %s dtype %s differs from x dtype %s", op, wn[i],
                                kb_dtype_name(w[i]->dtype), kb_dtype_name(x->dtype));
        if (w[i]->rank != (i < 2 ? 2 : 1))
            return kb_set_error(KB_ERR_SHAPE, "%s: %s must be %d-D, got %s", op, wn[i], i < 2 ? 2 : 1,
                                kb_shape_str(w[i], s1, sizeof s1));
        for (int d = 0; d < w[i]->rank; ++d)
            if (w[i]->shape[d] < 0)
                return kb_set_error(KB_ERR_SHAPE, "%s: the shape of %s must be known when the graph is built, got %s",
                                    op, wn[i], kb_shape_str(w[i], s1, sizeof s1));
    }
    int G = kb_rnn_gates(mode);
    int64_t U = r->shape[0], I = k->shape[0];
    if (U < 1) return kb_set_error(KB_ERR_SHAPE, "%s: recurrent_kernel %s has no units", op, kb_shape_str(r, s1, sizeof s1));
    if (I < 1) return kb_set_error(KB_ERR_SHAPE, "%s: kernel %s has no input rows", op, kb_shape_str(k, s1, sizeof s1));
    if (r->shape[1] != G * U)
        return kb_set_error(KB_ERR_SHAPE, "%s: recurrent_kernel must be (units, %d * units) for %s, got %s", op, G,
                            mode_names[mode], kb_shape_str(r, s1, sizeof s1));
    if (k->shape[1] != G * U)
        return kb_set_error(KB_ERR_SHAPE, "%s: kernel %s must have %d * units = %lld columns (recurrent_kernel %s)", op,
                            kb_shape_str(k, s1, sizeof s1), G, (long long)(G * U), kb_shape_str(r, s2, sizeof s2));
    if (b->shape[0] != 2 * G * U)
        return kb_set_error(KB_ERR_SHAPE, "%s: bias %s must have 2 * %d * units = %lld entries (input then recurrent bias)",
                            op, kb_shape_str(b, s1, sizeof s1), G, (long long)(2 * G * U));
    if (!known_is(x->shape[2], I))
        return kb_set_error(KB_ERR_SHAPE, "%s: x %s has input_dim %lld, kernel %s expects %lld", op,
                            kb_shape_str(x, s1, sizeof s1), (long long)x->shape[2], kb_shape_str(k, s2, sizeof s2),
                            (long long)I);
    if (x->shape[1] == 0) return kb_set_error(KB_ERR_SHAPE, "%s: x %s has no timesteps", op, kb_shape_str(x, s1, sizeof s1));
    int64_t B = x->shape[0];
    const char *sn[2] = {"initial h (h0)", "initial c (c0)"};
    const kb_desc *st[2] = {h0, c0};
    if (a->i64[2] && mode != KB_RNN_MODE_LSTM)
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: only an LSTM has a cell state c0", op);
    for (int i = 0; i < 2; ++i) {
        if (!a->i64[1 + i]) continue;
        if (st[i]->dtype != x->dtype)
            return kb_set_error(KB_ERR_DTYPE, "%s: %s dtype %s differs from x dtype %s", op, sn[i],
                                kb_dtype_name(st[i]->dtype), kb_dtype_name(x->dtype));
        if (st[i]->rank != 2 || !known_is(st[i]->shape[0], B) || !known_is(st[i]->shape[1], U))
            return kb_set_error(KB_ERR_SHAPE, "%s: %s %s must be (batch, units) = (%lld, %lld) (x %s)", op, sn[i],
                                kb_shape_str(st[i], s1, sizeof s1), (long long)B, (long long)U,
                                kb_shape_str(x, s2, sizeof s2));
        if (B < 0) B = st[i]->shape[0];
    }
    g->mode = mode;
    g->G = G;
    g->kH = mode == KB_RNN_MODE_LSTM ? 2 : 1;
    g->B = B;
    g->T = x->shape[1];
    g->I = I;
    g->U = U;
    return KB_OK;
}

/* (1 + 2G, B, kH + T, width) */
static void packed_desc(const rnn_geom *g, kb_dtype dt, int64_t width, kb_desc *out) {
    memset(out, 0, sizeof *out);
    out->dtype = dt;
    out->rank = 4;
    out->shape[0] = 1 + 2 * g->G;
    out->shape[1] = g->B;
    out->shape[2] = g->T < 0 ? KB_NONE : g->kH + g->T;
    out->shape[3] = width;
}

static kb_status infer_cudnn_rnn(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    rnn_geom g;
    KB_TRY(check_inputs(op, a, in, &g));
    packed_desc(&g, in[0].dtype, g.U, out);
    return kb_check_size(op, out);
}

/* in[j] must be a pack of width `width` (what cudnn_rnn / cudnn_rnn_backward_data make). */
static kb_status check_pack(const char *op, const kb_desc *in, int j, const rnn_geom *g, int64_t width, const char *what) {
    kb_desc y;
    packed_desc(g, in[0].dtype, width, &y);
    int bad = in[j].dtype != y.dtype || in[j].rank != 4;
    for (int d = 0; d < 4 && !bad; ++d) bad = !known_is(in[j].shape[d], y.shape[d]);
    if (bad) {
        char s1[160], s2[160];
        return kb_set_error(KB_ERR_SHAPE, "%s: %s %s (%s) does not match the packed recurrent layout %s (%s)", op, what,
                            kb_shape_str(&in[j], s1, sizeof s1), kb_dtype_name(in[j].dtype),
                            kb_shape_str(&y, s2, sizeof s2), kb_dtype_name(y.dtype));
    }
    return KB_OK;
}

static int64_t width_of(const rnn_geom *g) { return g->I > g->U ? g->I : g->U; }

/* backward-data: in[6] = cudnn_rnn's pack, in[7] = its gradient. */
static kb_status infer_backward_data(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    rnn_geom g;
    KB_TRY(check_inputs(op, a, in, &g));
    KB_TRY(check_pack(op, in, 6, &g, g.U, "pack"));
    KB_TRY(check_pack(op, in, 7, &g, g.U, "dpack"));
    packed_desc(&g, in[0].dtype, width_of(&g), out);
    return kb_check_size(op, out);
}

/* backward-weights: in[6] = cudnn_rnn's pack, in[7] = cudnn_rnn_backward_data's pack. */
static kb_status infer_backward_weights(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    rnn_geom g;
    KB_TRY(check_inputs(op, a, in, &g));
    KB_TRY(check_pack(op, in, 6, &g, g.U, "pack"));
    KB_TRY(check_pack(op, in, 7, &g, width_of(&g), "data_pack"));
    memset(out, 0, sizeof *out);
    out->dtype = in[0].dtype;
    out->rank = 2;
    out->shape[0] = g.I + g.U + 2;
    out->shape[1] = g.G * g.U;
    return kb_check_size(op, out);
}

/* ---- gradients ------------------------------------------------------------------------------ */

/* Rows [row, row + nrows) (nrows -1: to the end) of block 0, first `width` columns: (B, n, width). */
static kb_tensor *block_rows(kb_tensor *t, int64_t row, int64_t nrows, int64_t width) {
    int64_t st[4] = {0, 0, row, 0}, sz[4] = {1, -1, nrows, width};
    return kb_squeeze(kb_slice(t, st, sz, 4), 0);
}

/* One row of block 0 as (B, width). */
static kb_tensor *pack_row(kb_tensor *t, int64_t row, int64_t width) {
    return kb_squeeze(block_rows(t, row, 1, width), 1);
}

static kb_status grad_cudnn_rnn(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    const kb_attrs *a = &n->attrs;
    int mode = (int)a->i64[0], kH = mode == KB_RNN_MODE_LSTM ? 2 : 1;
    int64_t I = n->in[3]->desc.shape[0], U = n->in[4]->desc.shape[0], GU = n->in[4]->desc.shape[1];
    kb_tensor *in[8];
    for (int i = 0; i < 6; ++i) in[i] = n->in[i];
    in[6] = n;
    in[7] = dy;
    kb_tensor *bd = kb_node("cudnn_rnn_backward_data", KB_OP_CUDNN_RNN_BACKWARD_DATA, in, 8, a);
    if (!bd) return kb_last_status();
    in[7] = bd;
    kb_tensor *bw = kb_node("cudnn_rnn_backward_weights", KB_OP_CUDNN_RNN_BACKWARD_WEIGHTS, in, 8, a);
    if (!bw) return kb_last_status();
    dx[0] = block_rows(bd, kH, -1, I);
    dx[1] = a->i64[1] ? pack_row(bd, 0, U) : NULL;
    dx[2] = a->i64[2] ? pack_row(bd, 1, U) : NULL;
    int64_t ks[2] = {0, 0}, kz[2] = {I, -1}, rs[2] = {I, 0}, rz[2] = {U, -1}, bs[2] = {I + U, 0}, bz[2] = {2, -1};
    int64_t flat = 2 * GU;
    dx[3] = kb_slice(bw, ks, kz, 2);
    dx[4] = kb_slice(bw, rs, rz, 2);
    dx[5] = kb_reshape(kb_slice(bw, bs, bz, 2), &flat, 1);
    for (int i = 0; i < 6; ++i)
        if (!dx[i] && (i == 0 || i > 2 || a->i64[i])) return kb_last_status();
    return KB_OK;
}

static kb_status grad_backward(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    (void)dy;
    (void)dx;
    return kb_set_error(KB_ERR_NOT_SUPPORTED,
                        "kb_gradients: the second derivative of a fused recurrent layer (%s) is not supported",
                        kb_op_table[n->op]->name);
}

const kb_op_def kb_opdef_cudnn_rnn = {"cudnn_rnn", 6, 0, infer_cudnn_rnn, grad_cudnn_rnn, kb_cpu_cudnn_rnn,
                                      KB_CUDA_KERNEL(cudnn_rnn)};
const kb_op_def kb_opdef_cudnn_rnn_backward_data = {
    "cudnn_rnn_backward_data", 8, KB_OPF_INTERNAL | KB_OPF_NONDIFF, infer_backward_data, grad_backward,
    kb_cpu_cudnn_rnn_backward_data, KB_CUDA_KERNEL(cudnn_rnn_backward_data)};
const kb_op_def kb_opdef_cudnn_rnn_backward_weights = {
    "cudnn_rnn_backward_weights", 8, KB_OPF_INTERNAL | KB_OPF_NONDIFF, infer_backward_weights, grad_backward,
    kb_cpu_cudnn_rnn_backward_weights, KB_CUDA_KERNEL(cudnn_rnn_backward_weights)};

/* ---- public constructors -------------------------------------------------------------------- */

static kb_status rnn_layer(const char *fn, int mode, kb_tensor *x, kb_tensor *h0, kb_tensor *c0, kb_tensor *kernel,
                           kb_tensor *recurrent_kernel, kb_tensor *bias, int go_backwards, kb_tensor **outputs,
                           kb_tensor **h_n, kb_tensor **c_n) {
    if (outputs) *outputs = NULL;
    if (h_n) *h_n = NULL;
    if (c_n) *c_n = NULL;
    if (!outputs && !h_n && !c_n)
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: outputs, h_n%s are all NULL (nothing to return)", fn,
                            mode == KB_RNN_MODE_LSTM ? " and c_n" : "");
    if (!kb_check_tensor(fn, "x", x) || (h0 && !kb_check_tensor(fn, "h0", h0)) ||
        (c0 && !kb_check_tensor(fn, "c0", c0)) || !kb_check_tensor(fn, "kernel", kernel) ||
        !kb_check_tensor(fn, "recurrent_kernel", recurrent_kernel) || !kb_check_tensor(fn, "bias", bias))
        return kb_last_status();
    if (go_backwards != 0 && go_backwards != 1)
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: go_backwards must be 0 or 1, got %d", fn, go_backwards);
    if (x->desc.rank != 3) {
        char s[160];
        return kb_set_error(KB_ERR_SHAPE, "%s: x must be 3-D (batch, timesteps, input_dim), got %s", fn,
                            kb_shape_str(&x->desc, s, sizeof s));
    }
    kb_tensor *xs = x;
    if (go_backwards) {
        int ax = 1;
        xs = kb_reverse(x, &ax, 1);
        if (!xs) return kb_last_status();
    }
    kb_attrs a;
    memset(&a, 0, sizeof a);
    a.i64[0] = mode;
    a.i64[1] = h0 != NULL;
    a.i64[2] = c0 != NULL;
    kb_tensor *in[6] = {xs, h0 ? h0 : xs, c0 ? c0 : xs, kernel, recurrent_kernel, bias};
    kb_tensor *p = kb_node(fn, KB_OP_CUDNN_RNN, in, 6, &a);
    if (!p) return kb_last_status();
    int kH = mode == KB_RNN_MODE_LSTM ? 2 : 1;
    kb_tensor *o = outputs ? block_rows(p, kH, -1, -1) : NULL;
    kb_tensor *h = h_n ? pack_row(p, 0, -1) : NULL;
    kb_tensor *c = c_n ? pack_row(p, 1, -1) : NULL;
    if ((outputs && !o) || (h_n && !h) || (c_n && !c)) return kb_last_status();
    if (outputs) *outputs = o;
    if (h_n) *h_n = h;
    if (c_n) *c_n = c;
    return KB_OK;
}

kb_status kb_cudnn_lstm(kb_tensor *x, kb_tensor *h0, kb_tensor *c0, kb_tensor *kernel, kb_tensor *recurrent_kernel,
                        kb_tensor *bias, int go_backwards, kb_tensor **outputs, kb_tensor **h_n, kb_tensor **c_n) {
    return rnn_layer("kb_cudnn_lstm", KB_RNN_MODE_LSTM, x, h0, c0, kernel, recurrent_kernel, bias, go_backwards,
                     outputs, h_n, c_n);
}

kb_status kb_cudnn_gru(kb_tensor *x, kb_tensor *h0, kb_tensor *kernel, kb_tensor *recurrent_kernel, kb_tensor *bias,
                       int go_backwards, kb_tensor **outputs, kb_tensor **h_n) {
    return rnn_layer("kb_cudnn_gru", KB_RNN_MODE_GRU, x, h0, NULL, kernel, recurrent_kernel, bias, go_backwards,
                     outputs, h_n, NULL);
}

kb_status kb_cudnn_simple_rnn(kb_tensor *x, kb_tensor *h0, kb_tensor *kernel, kb_tensor *recurrent_kernel,
                              kb_tensor *bias, kb_cudnn_rnn_activation activation, int go_backwards,
                              kb_tensor **outputs, kb_tensor **h_n) {
    const char *fn = "kb_cudnn_simple_rnn";
    if (activation != KB_CUDNN_RNN_TANH && activation != KB_CUDNN_RNN_RELU) {
        if (outputs) *outputs = NULL;
        if (h_n) *h_n = NULL;
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: activation must be KB_CUDNN_RNN_TANH or KB_CUDNN_RNN_RELU, got %d",
                            fn, (int)activation);
    }
    return rnn_layer(fn, activation == KB_CUDNN_RNN_TANH ? KB_RNN_MODE_RNN_TANH : KB_RNN_MODE_RNN_RELU, x, h0, NULL,
                     kernel, recurrent_kernel, bias, go_backwards, outputs, h_n, NULL);
}
