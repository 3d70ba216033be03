/* Family ctc: CTC: ctc_label_dense_to_sparse, ctc_batch_cost (loss + gradient in log space), ctc_decode.
 * Entries, validation / shape rules, gradient rules and public constructors.
 *
 * Conventions of every op here (Keras 2 / TF 1 semantics, spec 2.10):
 *   * logits are batch-major (B, T, C); the blank is class C - 1; each time row is log-softmaxed
 *     inside the kernels (tf.nn.ctc_loss and ctc_beam_search_decoder treat their input as
 *     logits). The public functions pass log(y_pred + epsilon): log(transpose(y) + eps) is
 *     transpose(log(y + eps)), so the time-major transpose of Keras is never materialised.
 *   * labels (B, L) int32/int64: only labels[b, :label_length[b]] is read (label_length is
 *     clamped to L, as Keras' dense-to-sparse mask); lengths are (B,) or (B, 1), int32/int64.
 *   * data checked when a CPU kernel runs (KB_ERR_INVALID_ARGUMENT naming batch entry and value):
 *     input_length outside [0, T], a negative label_length, a kept label outside [0, C - 1).
 *     The CUDA kernels cannot report without a sync: there such a sample gives a NaN loss and a
 *     NaN gradient row (greedy decoding clamps input_length to [0, T]).
 *   * a label that needs more steps than input_length (L + repeats > T_b) has probability 0:
 *     loss +inf and a zero gradient (TF with ignore_longer_outputs_than_inputs=False raises
 *     "Not enough time for target transition sequence" instead).
 *
 * Ops:
 *   ctc_sparse_part(labels, label_lengths)        i64[0] = 0: indices (B*L, 2) int64;
 *                                                 1: values (B*L,) of labels' dtype. The first
 *       sum(min(len, L)) rows are labels[b, :len_b] in row-major order (TF's entries); the
 *       remaining rows are explicit zeros at the padded positions (kb shapes are static, so nnz is
 *       B*L; the dense value is exactly TF's).
 *   ctc_loss(logits, labels, input_length, label_length)          -> (B,) -log p(label | logits)
 *   ctc_loss_grad(logits, labels, input_length, label_length, dy) -> (B, T, C)
 *       dy[b] * d loss_b / d logits = dy[b] * (softmax - posterior), zero for t >= input_length
 *   ctc_greedy_decode(logp, input_length)  i64[0] = 0: (B, T) int64 best path (argmax, first
 *       index on ties; repeats merged, then blanks dropped), padded with -1;
 *       1: (B, 1) of logp's dtype, -sum_t max_c logp[b, t, c] over t < input_length.
 *   ctc_beam_search(logits, input_length)  i64[0] beam_width, i64[1] top_paths, i64[2]
 *       merge_repeated -> (B, top_paths, T + 1) float64 packed: [b, k, 0] the log probability of
 *       path k, [b, k, 1 + i] its labels padded with -1. CPU kernel only (TF's decoders are CPU
 *       kernels too): inside a CUDA function it runs on the host.
 */
#include <stdio.h>
#include <stdlib.h>

#include "core/context.h"
#include "cpu/cpu_kernels.h"
#include "ops/ops_common.h"

static int int_dtype(kb_dtype dt) { return dt == KB_INT32 || dt == KB_INT64; }

static const char *dname(kb_dtype dt) { return kb_dtype_name(dt) ? kb_dtype_name(dt) : "invalid"; }

/* A length vector: (B,) or (B, 1), int32/int64, batch b (-1: unknown). */
static kb_status check_lengths(const char *op, const char *arg, const kb_desc *d, int64_t b) {
    char s[96];
    if (!int_dtype(d->dtype))
        return kb_set_error(KB_ERR_DTYPE, "%s: %s must be int32 or int64, got %s", op, arg, dname(d->dtype));
    if (d->rank != 1 && !(d->rank == 2 && d->shape[1] <= 1))
        return kb_set_error(KB_ERR_SHAPE, "%s: %s must have shape (batch,) or (batch, 1), got %s", op, arg,
                            kb_shape_str(d, s, sizeof s));
    if (d->rank == 2 && d->shape[1] == 0)
        return kb_set_error(KB_ERR_SHAPE, "%s: %s must have shape (batch,) or (batch, 1), got %s", op, arg,
                            kb_shape_str(d, s, sizeof s));
    if (b >= 0 && d->shape[0] >= 0 && d->shape[0] != b)
        return kb_set_error(KB_ERR_SHAPE, "%s: %s has %lld entries but the batch size is %lld", op, arg,
                            (long long)d->shape[0], (long long)b);
    return KB_OK;
}

/* Dense labels (B, L), int32/int64 (float32/float64 too where \p any_value). */
static kb_status check_labels(const char *op, const char *arg, const kb_desc *d, int64_t b, int any_value) {
    char s[96];
    if (!int_dtype(d->dtype) && !(any_value && (d->dtype == KB_FLOAT32 || d->dtype == KB_FLOAT64)))
        return kb_set_error(KB_ERR_DTYPE, "%s: %s must be int32 or int64%s, got %s", op, arg,
                            any_value ? " (or float32 / float64)" : "", dname(d->dtype));
    if (d->rank != 2)
        return kb_set_error(KB_ERR_SHAPE, "%s: %s must have shape (batch, max_label_length), got %s", op, arg,
                            kb_shape_str(d, s, sizeof s));
    if (b >= 0 && d->shape[0] >= 0 && d->shape[0] != b)
        return kb_set_error(KB_ERR_SHAPE, "%s: %s has batch size %lld but y_pred has %lld", op, arg,
                            (long long)d->shape[0], (long long)b);
    return KB_OK;
}

/* Logits / probabilities (B, T, C) float32/float64, C >= 1. */
static kb_status check_logits(const char *op, const kb_desc *d) {
    char s[96];
    if (d->dtype != KB_FLOAT32 && d->dtype != KB_FLOAT64)
        return kb_set_error(KB_ERR_DTYPE, "%s: y_pred must be float32 or float64, got %s", op, dname(d->dtype));
    if (d->rank != 3)
        return kb_set_error(KB_ERR_SHAPE, "%s: y_pred must have shape (batch, time, num_classes), got %s", op,
                            kb_shape_str(d, s, sizeof s));
    if (d->shape[2] == 0)
        return kb_set_error(KB_ERR_SHAPE, "%s: y_pred has 0 classes (the blank is class num_classes - 1)", op);
    return KB_OK;
}

static void desc_set(kb_desc *out, kb_dtype dt, int rank, int64_t d0, int64_t d1, int64_t d2) {
    memset(out, 0, sizeof *out);
    out->dtype = dt;
    out->rank = rank;
    out->shape[0] = d0;
    out->shape[1] = d1;
    out->shape[2] = d2;
}

/* ---- ctc_sparse_part(labels, label_lengths) ---- */

static kb_status infer_sparse_part(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    KB_TRY(check_labels(op, "labels", &in[0], -1, 1));
    KB_TRY(check_lengths(op, "label_lengths", &in[1], in[0].shape[0]));
    int64_t nnz = in[0].shape[0] >= 0 && in[0].shape[1] >= 0 ? in[0].shape[0] * in[0].shape[1] : KB_NONE;
    if (a->i64[0] == 0) desc_set(out, KB_INT64, 2, nnz, 2, 0);
    else desc_set(out, in[0].dtype, 1, nnz, 0, 0);
    return KB_OK;
}
const kb_op_def kb_opdef_ctc_sparse_part = {"ctc_sparse_part", 2, KB_OPF_INTERNAL | KB_OPF_NONDIFF,
                                            infer_sparse_part, NULL, kb_cpu_ctc_sparse_part,
                                            KB_CUDA_KERNEL(ctc_sparse_part)};

/* ---- ctc_loss(logits, labels, input_length, label_length) ---- */

static kb_status check_loss_inputs(const char *op, const kb_desc *in) {
    KB_TRY(check_logits(op, &in[0]));
    KB_TRY(check_labels(op, "y_true", &in[1], in[0].shape[0], 0));
    KB_TRY(check_lengths(op, "input_length", &in[2], in[0].shape[0]));
    KB_TRY(check_lengths(op, "label_length", &in[3], in[0].shape[0]));
    return KB_OK;
}

static kb_status infer_loss(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)a; (void)n_in;
    KB_TRY(check_loss_inputs(op, in));
    desc_set(out, in[0].dtype, 1, in[0].shape[0], 0, 0);
    return KB_OK;
}

static kb_tensor *loss_grad_node(kb_tensor *n, kb_tensor *dy) {
    kb_tensor *in[5] = {n->in[0], n->in[1], n->in[2], n->in[3], dy};
    return kb_node("ctc_loss_grad", KB_OP_CTC_LOSS_GRAD, in, 5, NULL);
}

static kb_status grad_loss(kb_tensor *n, kb_tensor *dy, kb_tensor **dx) {
    dx[1] = dx[2] = dx[3] = NULL;
    dx[0] = loss_grad_node(n, dy);
    return dx[0] ? KB_OK : kb_last_status();
}
const kb_op_def kb_opdef_ctc_loss = {"ctc_loss", 4, KB_OPF_INTERNAL, infer_loss, grad_loss, kb_cpu_ctc_loss,
                                     KB_CUDA_KERNEL(ctc_loss)};

/* ---- ctc_loss_grad(logits, labels, input_length, label_length, dy) ---- */

static kb_status infer_loss_grad(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)a; (void)n_in;
    KB_TRY(check_loss_inputs(op, in));
    if (in[4].dtype != in[0].dtype || in[4].rank != 1 ||
        (in[4].shape[0] >= 0 && in[0].shape[0] >= 0 && in[4].shape[0] != in[0].shape[0]))
        return kb_set_error(KB_ERR_INTERNAL, "%s: dy must be (batch,) of the logits' dtype", op);
    *out = in[0];
    return KB_OK;
}

/* Does t depend on a placeholder or a variable (anything kb_gradients could differentiate)?
 * Inputs always have smaller ids than their node: one downward sweep over the ids. */
static int depends_on_leaf_input(kb_tensor *t) {
    kb_context *ctx = t->ctx;
    int64_t n = t->id + 1;
    unsigned char *mark = (unsigned char *)calloc((size_t)n, 1);
    if (!mark) return 1; /* be conservative: refuse */
    int found = 0;
    mark[t->id] = 1;
    for (int64_t i = t->id; i >= 0 && !found; --i) {
        if (!mark[i]) continue;
        kb_tensor *u = ctx->tensors[i];
        if (u->kind == KB_KIND_PLACEHOLDER || u->kind == KB_KIND_VARIABLE) found = 1;
        for (int k = 0; k < u->n_in; ++k) mark[u->in[k]->id] = 1;
    }
    free(mark);
    return found;
}

/* Linear in dy: d<g, dy_b G_b>/d dy_b = sum_{t,c} g G with G the gradient for dy = 1. The second
 * derivative w.r.t. the logits is not implemented: refused when the logits depend on anything
 * differentiable (when they are made of constants only, no gradient can be asked of them). */
static kb_status grad_loss_grad(kb_tensor *n, kb_tensor *g, kb_tensor **dx) {
    dx[0] = dx[1] = dx[2] = dx[3] = dx[4] = NULL;
    if (depends_on_leaf_input(n->in[0]))
        return kb_set_error(KB_ERR_NOT_SUPPORTED,
                            "kb_gradients: the second derivative of ctc_batch_cost w.r.t. y_pred is not supported");
    kb_tensor *ones = kb_ones_like(n->in[4], n->in[4]->desc.dtype);
    kb_tensor *unit = ones ? loss_grad_node(n, ones) : NULL;
    int axes[2] = {1, 2};
    dx[4] = unit ? kb_sum(kb_multiply(g, unit), axes, 2, 0) : NULL;
    return dx[4] ? KB_OK : kb_last_status();
}
const kb_op_def kb_opdef_ctc_loss_grad = {"ctc_loss_grad", 5, KB_OPF_INTERNAL, infer_loss_grad, grad_loss_grad,
                                          kb_cpu_ctc_loss_grad, KB_CUDA_KERNEL(ctc_loss_grad)};

/* ---- ctc_greedy_decode(logp, input_length) ---- */

static kb_status infer_greedy(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    KB_TRY(check_logits(op, &in[0]));
    KB_TRY(check_lengths(op, "input_length", &in[1], in[0].shape[0]));
    if (a->i64[0] == 0) desc_set(out, KB_INT64, 2, in[0].shape[0], in[0].shape[1], 0);
    else desc_set(out, in[0].dtype, 2, in[0].shape[0], 1, 0);
    return KB_OK;
}
const kb_op_def kb_opdef_ctc_greedy_decode = {"ctc_greedy_decode", 2, KB_OPF_INTERNAL | KB_OPF_NONDIFF,
                                              infer_greedy, NULL, kb_cpu_ctc_greedy_decode,
                                              KB_CUDA_KERNEL(ctc_greedy_decode)};

/* ---- ctc_beam_search(logits, input_length) ---- */

static kb_status infer_beam(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    (void)n_in;
    KB_TRY(check_logits(op, &in[0]));
    KB_TRY(check_lengths(op, "input_length", &in[1], in[0].shape[0]));
    if (a->i64[0] < 1 || a->i64[1] < 1 || a->i64[1] > a->i64[0])
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: beam_width %lld and top_paths %lld (need 1 <= top_paths <= beam_width)",
                            op, (long long)a->i64[0], (long long)a->i64[1]);
    desc_set(out, KB_FLOAT64, 3, in[0].shape[0], a->i64[1], in[0].shape[1] >= 0 ? in[0].shape[1] + 1 : KB_NONE);
    return KB_OK;
}
/* No CUDA kernel by design: beam search is sequential, branchy host work (TF's is a CPU kernel). */
const kb_op_def kb_opdef_ctc_beam_search = {"ctc_beam_search", 2, KB_OPF_INTERNAL | KB_OPF_NONDIFF, infer_beam,
                                            NULL, kb_cpu_ctc_beam_search, NULL};

/* ---- public API ---- */

/* Keras casts labels and lengths with tf.to_int32: float inputs are cast (truncation). */
static kb_tensor *as_int(kb_tensor *t) {
    return kb_dtype_is_float(t->desc.dtype) ? kb_cast(t, KB_INT32) : t;
}

kb_tensor *kb_ctc_label_dense_to_sparse(kb_tensor *labels, kb_tensor *label_lengths) {
    const char *fn = "kb_ctc_label_dense_to_sparse";
    if (!kb_check_tensor(fn, "labels", labels) || !kb_check_tensor(fn, "label_lengths", label_lengths)) return NULL;
    kb_desc d[2] = {labels->desc, label_lengths->desc};
    kb_desc out;
    kb_attrs a;
    memset(&a, 0, sizeof a);
    if (infer_sparse_part(fn, &a, d, 2, &out) != KB_OK) return NULL;
    kb_tensor *in2[2] = {labels, label_lengths};
    kb_tensor *ix = kb_node(fn, KB_OP_CTC_SPARSE_PART, in2, 2, &a);
    a.i64[0] = 1;
    kb_tensor *v = ix ? kb_node(fn, KB_OP_CTC_SPARSE_PART, in2, 2, &a) : NULL;
    if (!v) return NULL;
    kb_tensor *in3[3] = {ix, v, labels};
    kb_tensor *t = kb_node(fn, KB_OP_SPARSE_TO_DENSE, in3, 3, NULL);
    if (t) t->sparse = 1;
    return t;
}

static int check_args(const char *fn, kb_tensor *y_pred, kb_tensor *const *ints, const char *const *names, int n) {
    if (!kb_check_tensor(fn, "y_pred", y_pred)) return 0;
    for (int i = 0; i < n; ++i) {
        if (!kb_check_tensor(fn, names[i], ints[i])) return 0;
        if (ints[i]->desc.dtype == KB_BOOL || !kb_dtype_valid(ints[i]->desc.dtype)) {
            kb_set_error(KB_ERR_DTYPE, "%s: %s must be an integer (or float) tensor, got %s", fn, names[i],
                         dname(ints[i]->desc.dtype));
            return 0;
        }
    }
    return 1;
}

static kb_tensor *log_eps(kb_tensor *y_pred) {
    kb_tensor *eps = kb_scalar(y_pred->ctx, kb_epsilon(y_pred->ctx), y_pred->desc.dtype);
    return kb_log(kb_add(y_pred, eps));
}

kb_tensor *kb_ctc_batch_cost(kb_tensor *y_true, kb_tensor *y_pred, kb_tensor *input_length, kb_tensor *label_length) {
    const char *fn = "kb_ctc_batch_cost";
    kb_tensor *ints[3] = {y_true, input_length, label_length};
    static const char *const names[3] = {"y_true", "input_length", "label_length"};
    if (!check_args(fn, y_pred, ints, names, 3)) return NULL;
    /* validate before building anything (cast float labels / lengths as Keras' to_int32) */
    kb_desc d[4] = {y_pred->desc, y_true->desc, input_length->desc, label_length->desc};
    for (int i = 1; i < 4; ++i)
        if (kb_dtype_is_float(d[i].dtype)) d[i].dtype = KB_INT32;
    if (check_loss_inputs(fn, d) != KB_OK) return NULL;
    kb_tensor *in[4] = {log_eps(y_pred), as_int(y_true), as_int(input_length), as_int(label_length)};
    for (int i = 0; i < 4; ++i)
        if (!in[i]) return NULL;
    kb_tensor *loss = kb_node(fn, KB_OP_CTC_LOSS, in, 4, NULL);
    return loss ? kb_expand_dims(loss, 1) : NULL;
}

kb_status kb_ctc_decode(kb_tensor *y_pred, kb_tensor *input_length, int greedy, int beam_width, int top_paths,
                        int merge_repeated, kb_tensor **decoded_out, kb_tensor **log_prob_out) {
    const char *fn = "kb_ctc_decode";
    static const char *const names[1] = {"input_length"};
    if (!decoded_out || !log_prob_out) {
        kb_null_arg(fn, !decoded_out ? "decoded_out" : "log_prob_out");
        return kb_last_status() != KB_OK ? kb_last_status() : KB_ERR_INVALID_ARGUMENT;
    }
    *log_prob_out = NULL;
    decoded_out[0] = NULL;
    if (!check_args(fn, y_pred, &input_length, names, 1)) return kb_last_status();
    kb_attrs a;
    memset(&a, 0, sizeof a);
    kb_desc d[2] = {y_pred->desc, input_length->desc};
    if (kb_dtype_is_float(d[1].dtype)) d[1].dtype = KB_INT32;
    if (greedy) {
        if (infer_greedy(fn, &a, d, 2, &d[0]) != KB_OK) return kb_last_status();
    } else {
        if (beam_width < 1 || top_paths < 1 || top_paths > beam_width)
            return kb_set_error(KB_ERR_INVALID_ARGUMENT,
                                "%s: beam_width %d and top_paths %d (need 1 <= top_paths <= beam_width: TF's "
                                "\"requested more paths than the beam width\")",
                                fn, beam_width, top_paths);
        for (int k = 0; k < top_paths; ++k) decoded_out[k] = NULL;
        a.i64[0] = beam_width;
        a.i64[1] = top_paths;
        a.i64[2] = merge_repeated != 0;
        if (infer_beam(fn, &a, d, 2, &d[0]) != KB_OK) return kb_last_status();
    }
    kb_tensor *in[2] = {log_eps(y_pred), input_length ? as_int(input_length) : NULL};
    if (!in[0] || !in[1]) return kb_last_status();
    if (greedy) {
        kb_tensor *path = kb_node(fn, KB_OP_CTC_GREEDY_DECODE, in, 2, &a);
        a.i64[0] = 1;
        kb_tensor *lp = path ? kb_node(fn, KB_OP_CTC_GREEDY_DECODE, in, 2, &a) : NULL;
        if (!lp) return kb_last_status();
        decoded_out[0] = path;
        *log_prob_out = lp;
        return KB_OK;
    }
    kb_tensor *packed = kb_node(fn, KB_OP_CTC_BEAM_SEARCH, in, 2, &a);
    if (!packed) return kb_last_status();
    kb_tensor *paths[64], **ps = top_paths <= 64 ? paths : (kb_tensor **)calloc((size_t)top_paths, sizeof *ps);
    if (!ps) return kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: %d paths", fn, top_paths);
    int failed = 0;
    for (int k = 0; k < top_paths && !failed; ++k) {
        int64_t start[3] = {0, k, 1}, size[3] = {-1, 1, -1};
        kb_tensor *p = kb_cast(kb_squeeze(kb_slice(packed, start, size, 3), 1), KB_INT64);
        if (!p) failed = 1;
        ps[k] = p;
    }
    int64_t start[3] = {0, 0, 0}, size[3] = {-1, -1, 1};
    kb_tensor *lp = failed ? NULL : kb_cast(kb_squeeze(kb_slice(packed, start, size, 3), 2), y_pred->desc.dtype);
    if (lp)
        for (int k = 0; k < top_paths; ++k) decoded_out[k] = ps[k];
    if (ps != paths) free(ps);
    if (!lp) return kb_last_status();
    *log_prob_out = lp;
    return KB_OK;
}
