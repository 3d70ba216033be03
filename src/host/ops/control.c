/* Family control: control flow: the loop node (map_fn, foldl, foldr, rnn) and its traced bodies.
 * Entries, validation / shape rules, gradient rules and public constructors.
 *
 * A loop is a scan. Its body is traced once: the constructor makes per-step placeholders (one
 * slice of each sequence, each carried value), calls the user's C callback once, and keeps the
 * body's outputs. Every tensor the outputs reach that is not a body placeholder and was not made
 * by the trace (variables, outer placeholders and ops) is *captured*: it becomes an input of the
 * loop node, so pruning, placement and gradients see it. The node's inputs are
 *   [sequences (T, ...)] [start values of lagged sequences] [initial carries] [captures]
 * and its ONE output is (T + 1, P): row t packs step t's body outputs [y..., carry'...]
 * (flattened, one dtype); row T is zeros (the start value of carries that start at zero). The
 * public functions read parts with loop_part (all rows, or the last step's row).
 *
 * Per step u (0..T-1) sequence j is read at row rev ? T-1-u : u, a lagged sequence at that row
 * minus one (its start value at row 0); carries come from the previous step's row; step u writes
 * row out_rev ? T-1-u : u. Gradient (BPTT): a backward loop over the reversed steps whose body is
 * the vector-Jacobian product of the forward body (traced once with kb_gradients_seeded); it
 * reads the forward carries as a lagged sequence, carries d carry and the captures' gradient sums.
 * The backward loop is an ordinary loop node, so its own gradient (second derivatives) follows
 * the same rule. A lazy switch (kb_switch_fn) is a one-step loop with two bodies and a selector.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "graph/device.h"
#include "ops/control.h"
#include "ops/ops_common.h"
#include "cpu/cpu_kernels.h"

#define LMAX KB_MAX_INPUTS
#define CAPMAX (4 * KB_MAX_INPUTS) /* captured tensors; beyond the input limit they are packed */
#define YMAX (2 * LMAX)             /* per-step outputs */
#define NCMAX (2 * LMAX + CAPMAX)   /* carried values (a gradient loop carries one per capture) */
#define OUTMAX (YMAX + NCMAX)       /* body outputs */
#define PHMAX (LMAX + NCMAX)        /* body placeholders */
#define CUTMAX (PHMAX + CAPMAX)     /* a body function's inputs */
#define KB_LOOP_RANGES 8 /* traces a body may span: a forward body, its gradient's, ... */
#define LMAX_IN (KB_MAX_INPUTS - 1) /* loop_part takes the loop's inputs plus one */

enum { ROLE_INTERNAL, ROLE_SEQ, ROLE_CARRY_IN, ROLE_CARRY_ZERO, ROLE_CAP };
enum { PART_ALL = 0, PART_LAST = 1 };

/* One traced body (a loop has one; a lazy switch has two that share the placeholders). */
typedef struct kb_body {
    kb_tensor *outs[OUTMAX]; /* body outputs: n_y, then n_carry */
    /* the body's nodes in id order (for shape inference): placeholders, captures, internal */
    int n_nodes;
    kb_tensor **nodes;
    unsigned char *role;
    int *src;      /* SEQ / CARRY_IN / CAP: input index; CARRY_ZERO: node whose shape it has */
    int *in_idx;   /* internal ops: node index of each input (n_nodes * LMAX) */
    int out_idx[OUTMAX];
    kb_function *fn[2]; /* compiled body: CPU, CUDA */
} kb_body;

typedef struct kb_loop {
    kb_context *ctx;
    int n_seq, n_carry, n_cap, n_y, n_in;
    unsigned char rev[LMAX];            /* per sequence */
    signed char lag[LMAX];              /* per sequence: 0, +1 read the previous row, -1 the next */
    int lag_in[LMAX];                   /* per sequence: input index of a lagged one's start, -1: zeros */
    int carry_in[NCMAX];             /* per carry: input index of its initial value, -1: zeros */
    int out_rev;
    int nb;                             /* bodies: 1, or 2 (switch: body 0 where the selector is non-zero) */
    int sel_in;                         /* input index of the rank-0 selector (nb == 2), else -1 */
    kb_dtype dtype;                     /* of the rows */
    kb_tensor *ph[PHMAX];            /* body placeholders: sequence slices, then carries */
    kb_tensor *caps[CAPMAX];
    /* a capture is an input of its own (cap_in >= 0) or, when the inputs would exceed the limit,
     * a slice at element cap_off of a pack (input cap_pack: static captures of one dtype,
     * flattened and concatenated) */
    int cap_in[CAPMAX], cap_pack[CAPMAX];
    int64_t cap_off[CAPMAX];
    kb_body b[2];
    int64_t r[2 * KB_LOOP_RANGES]; /* ids made by the trace(s): [r0, r1), [r2, r3), ... */
} kb_loop;

static void loop_free(void *p) {
    kb_loop *L = (kb_loop *)p;
    if (!L) return;
    for (int i = 0; i < 2; ++i) {
        kb_function_free(L->b[i].fn[0]);
        kb_function_free(L->b[i].fn[1]);
        free(L->b[i].nodes);
        free(L->b[i].role);
        free(L->b[i].src);
        free(L->b[i].in_idx);
    }
    free(L);
}

static kb_loop *loop_of(const kb_attrs *a) { return (kb_loop *)(intptr_t)a->i64[0]; }

/* ------------------------------------------------------------------------------------------ */
/* Shape inference through the body                                                             */

static int64_t dsize(const kb_desc *d) { return kb_desc_size(d); }

/* The concrete (or symbolic) descs of the body outputs for the loop inputs \p in; *T the steps. */
static kb_status walk_body(const char *op, const kb_loop *L, const kb_body *Bd, const kb_desc *in, kb_desc *parts) {
    char s1[128], s2[128];
    kb_desc *d = (kb_desc *)calloc((size_t)Bd->n_nodes + 1, sizeof *d);
    if (!d) return kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: out of host memory", op);
    kb_status st = KB_OK;
    for (int i = 0; i < Bd->n_nodes && st == KB_OK; ++i) {
        kb_tensor *t = Bd->nodes[i];
        switch (Bd->role[i]) {
        case ROLE_SEQ: {
            const kb_desc *s = &in[Bd->src[i]];
            d[i].dtype = s->dtype;
            d[i].rank = s->rank - 1;
            for (int k = 1; k < s->rank; ++k) d[i].shape[k - 1] = s->shape[k];
            break;
        }
        case ROLE_CARRY_IN: d[i] = in[Bd->src[i]]; break;
        case ROLE_CAP: d[i] = L->cap_in[Bd->src[i]] >= 0 ? in[L->cap_in[Bd->src[i]]] : t->desc; break;
        case ROLE_CARRY_ZERO:
            d[i] = d[Bd->src[i]];
            d[i].dtype = t->desc.dtype;
            break;
        default:
            if (t->kind != KB_KIND_OP) {
                d[i] = t->desc;
                break;
            }
            {
                kb_desc x[KB_MAX_INPUTS];
                char label[64];
                for (int k = 0; k < t->n_in; ++k) x[k] = d[Bd->in_idx[i * LMAX + k]];
                snprintf(label, sizeof label, "%s (loop body %s#%lld)", op, kb_op_table[t->op]->name, (long long)t->id);
                st = kb_op_table[t->op]->infer(label, &t->attrs, x, t->n_in, &d[i]);
            }
        }
        if (st == KB_OK && Bd->role[i] != ROLE_INTERNAL && d[i].dtype != t->desc.dtype)
            st = kb_set_error(KB_ERR_DTYPE, "%s: loop input for %s has dtype %s, the body was traced with %s", op, t->name,
                              kb_dtype_name(d[i].dtype), kb_dtype_name(t->desc.dtype));
    }
    for (int i = 0; i < L->n_y + L->n_carry && st == KB_OK; ++i) parts[i] = d[Bd->out_idx[i]];
    for (int k = 0; k < L->n_carry && st == KB_OK; ++k) { /* a carried value keeps its shape */
        const kb_desc *a = &parts[L->n_y + k];
        int pi = -1;
        for (int i = 0; i < Bd->n_nodes; ++i)
            if (Bd->nodes[i] == L->ph[L->n_seq + k]) pi = i;
        const kb_desc *b = &d[pi];
        int ok = a->rank == b->rank;
        for (int q = 0; ok && q < a->rank; ++q)
            ok = a->shape[q] == KB_NONE || b->shape[q] == KB_NONE || a->shape[q] == b->shape[q];
        if (!ok)
            st = kb_set_error(KB_ERR_SHAPE, "%s: the step function returns state %d of shape %s; the state has shape %s",
                              op, k, kb_shape_str(a, s1, sizeof s1), kb_shape_str(b, s2, sizeof s2));
    }
    free(d);
    return st;
}

/* The descs of the body outputs (one body's, or the two switch bodies' when they agree) for
 * the loop inputs \p in; *T the steps. */
static kb_status walk(const char *op, const kb_loop *L, const kb_desc *in, int n_in, kb_desc *parts, int64_t *T) {
    char s1[128], s2[128];
    if (n_in != L->n_in)
        return kb_set_error(KB_ERR_INTERNAL, "%s: the loop takes %d inputs, got %d", op, L->n_in, n_in);
    *T = L->n_seq ? KB_NONE : 1; /* a switch without sequences is one step */
    for (int j = 0; j < L->n_seq; ++j) {
        if (in[j].rank < 1) return kb_set_error(KB_ERR_SHAPE, "%s: sequence %d is a scalar", op, j);
        int64_t t = in[j].shape[0];
        if (t != KB_NONE && *T != KB_NONE && t != *T)
            return kb_set_error(KB_ERR_SHAPE, "%s: sequences have %lld and %lld steps", op, (long long)*T, (long long)t);
        if (t != KB_NONE) *T = t;
    }
    if (L->nb == 2 && in[L->sel_in].rank != 0) {
        char s[128];
        return kb_set_error(KB_ERR_SHAPE, "%s: the condition has shape %s; it must be a scalar", op,
                            kb_shape_str(&in[L->sel_in], s, sizeof s));
    }
    KB_TRY(walk_body(op, L, &L->b[0], in, parts));
    if (L->nb == 1) return KB_OK;
    kb_desc other[OUTMAX];
    KB_TRY(walk_body(op, L, &L->b[1], in, other));
    for (int i = 0; i < L->n_y + L->n_carry; ++i) {
        const kb_desc *a = &parts[i], *b = &other[i];
        int same = a->rank == b->rank && a->dtype == b->dtype;
        for (int q = 0; same && q < a->rank; ++q)
            same = a->shape[q] == KB_NONE || b->shape[q] == KB_NONE || a->shape[q] == b->shape[q];
        if (!same)
            return kb_set_error(KB_ERR_SHAPE, "%s: the branches give %s %s and %s %s; they must agree", op,
                                kb_dtype_name(a->dtype), kb_shape_str(a, s1, sizeof s1), kb_dtype_name(b->dtype),
                                kb_shape_str(b, s2, sizeof s2));
        for (int q = 0; q < a->rank; ++q) /* a dim one branch knows */
            if (parts[i].shape[q] == KB_NONE) parts[i].shape[q] = b->shape[q];
    }
    return KB_OK;
}

static kb_status infer_loop(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    const kb_loop *L = loop_of(a);
    kb_desc parts[OUTMAX];
    int64_t T;
    KB_TRY(walk(op, L, in, n_in, parts, &T));
    if (T == 0)
        return kb_set_error(KB_ERR_SHAPE, "%s: the sequence has 0 steps; a loop needs at least one", op);
    int64_t P = 0;
    for (int i = 0; i < L->n_y + L->n_carry; ++i) {
        int64_t n = dsize(&parts[i]);
        P = (n < 0 || P < 0) ? KB_NONE : P + n;
    }
    out->dtype = L->dtype;
    out->rank = 2;
    out->shape[0] = T == KB_NONE ? KB_NONE : T + 1;
    out->shape[1] = P;
    return KB_OK;
}

/* Part a->i64[1] of a loop's rows; \p in[0] the rows (or the part, for loop_part_grad). */
static kb_status part_desc(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *part,
                           int64_t *T, int64_t *P, int64_t *off) {
    const kb_loop *L = loop_of(a);
    kb_desc parts[OUTMAX];
    KB_TRY(walk(op, L, in + 1, n_in - 1, parts, T));
    int p = (int)a->i64[1];
    *P = 0;
    *off = 0;
    for (int i = 0; i < L->n_y + L->n_carry; ++i) {
        int64_t n = dsize(&parts[i]);
        if (i == p) *off = *P;
        *P = (n < 0 || *P < 0) ? KB_NONE : *P + n;
    }
    *part = parts[p];
    return KB_OK;
}

static void full_desc(const kb_desc *part, int64_t T, int mode, kb_desc *out) {
    *out = *part;
    if (mode == PART_LAST) return;
    out->rank = part->rank + 1;
    out->shape[0] = T;
    for (int k = 0; k < part->rank; ++k) out->shape[k + 1] = part->shape[k];
}

static kb_status infer_loop_part(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    kb_desc part;
    int64_t T, P, off;
    KB_TRY(part_desc(op, a, in, n_in, &part, &T, &P, &off));
    if (in[0].rank != 2 || (in[0].shape[1] != KB_NONE && P != KB_NONE && in[0].shape[1] != P))
        return kb_set_error(KB_ERR_INTERNAL, "%s: the loop rows do not match the loop", op);
    full_desc(&part, T, (int)a->i64[2], out);
    return KB_OK;
}

static kb_status infer_loop_part_grad(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out) {
    kb_desc part, want;
    int64_t T, P, off;
    KB_TRY(part_desc(op, a, in, n_in, &part, &T, &P, &off));
    full_desc(&part, T, (int)a->i64[2], &want);
    if (in[0].rank != want.rank || in[0].dtype != want.dtype)
        return kb_set_error(KB_ERR_INTERNAL, "%s: the gradient does not match the loop part", op);
    out->dtype = loop_of(a)->dtype;
    out->rank = 2;
    out->shape[0] = T == KB_NONE ? KB_NONE : T + 1;
    out->shape[1] = P;
    return KB_OK;
}

kb_status kb_loop_part_geom(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_loop_geom *g) {
    kb_desc d[KB_MAX_INPUTS], part;
    for (int i = 0; i < n_in; ++i) {
        d[i].dtype = in[i].dtype;
        d[i].rank = in[i].rank;
        memcpy(d[i].shape, in[i].shape, sizeof d[i].shape);
    }
    int64_t T, P, off;
    KB_TRY(part_desc(ex->op, a, d, n_in, &part, &T, &P, &off));
    const kb_loop *L = loop_of(a);
    g->P = P;
    g->off = off;
    g->size = dsize(&part);
    g->elem_size = kb_dtype_size(L->dtype);
    if (a->i64[2] == PART_LAST) {
        g->rows = 1;
        g->row0 = L->out_rev ? 0 : T - 1;
    } else {
        g->rows = T;
        g->row0 = 0;
    }
    return KB_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Running                                                                                      */

kb_status kb_loop_run(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out,
                      kb_device device) {
    kb_loop *L = loop_of(a);
    kb_context *ctx = ex->ctx;
    void *dev;
    const kb_device_api *api = kb_ctx_api(ctx, device, &dev);
    int di = device == KB_DEVICE_CUDA;
    int n_ph = L->n_seq + L->n_carry, n_cut = n_ph + L->n_cap, n_out = L->n_y + L->n_carry;
    kb_body *Bd = &L->b[0];
    if (L->nb == 2) { /* the selector decides on the host (a device read waits for the stream) */
        unsigned char v[8] = {0};
        size_t es = kb_dtype_size(in[L->sel_in].dtype);
        KB_TRY(api->copy_d2h(dev, v, in[L->sel_in].data, es));
        KB_TRY(api->sync(dev));
        if (kb_load_f64(v, in[L->sel_in].dtype, 0) == 0) Bd = &L->b[1];
    }
    if (!Bd->fn[di]) {
        kb_tensor *cuts[CUTMAX];
        for (int i = 0; i < n_ph; ++i) cuts[i] = L->ph[i];
        for (int m = 0; m < L->n_cap; ++m) cuts[n_ph + m] = L->caps[m];
        Bd->fn[di] = kb_function_new_body(ctx, cuts, n_cut, Bd->outs, n_out, device);
        if (!Bd->fn[di]) return kb_last_status();
    }
    kb_desc d[KB_MAX_INPUTS], parts[OUTMAX];
    for (int i = 0; i < n_in; ++i) {
        d[i].dtype = in[i].dtype;
        d[i].rank = in[i].rank;
        memcpy(d[i].shape, in[i].shape, sizeof d[i].shape);
    }
    int64_t T;
    KB_TRY(walk(ex->op, L, d, n_in, parts, &T));
    size_t es = kb_dtype_size(L->dtype);
    int64_t P = out->shape[1], off[OUTMAX], sz[OUTMAX], o = 0;
    for (int i = 0; i < n_out; ++i) {
        sz[i] = dsize(&parts[i]);
        off[i] = o;
        o += sz[i];
    }
    if (o != P || out->shape[0] != T + 1) return kb_set_error(KB_ERR_INTERNAL, "%s: loop rows (%lld) do not match", ex->op, (long long)P);
    char *rows = (char *)out->data, *zero = rows + (size_t)(T * P) * es;
    KB_TRY(api->memset0(dev, zero, (size_t)P * es));
    void *cut_data[CUTMAX], *out_data[OUTMAX];
    kb_desc cut_desc[CUTMAX], out_desc[OUTMAX];
    size_t slice[LMAX];
    for (int j = 0; j < L->n_seq; ++j) {
        cut_desc[j] = d[j];
        cut_desc[j].rank = d[j].rank - 1;
        for (int k = 1; k < d[j].rank; ++k) cut_desc[j].shape[k - 1] = d[j].shape[k];
        slice[j] = (size_t)dsize(&cut_desc[j]) * kb_dtype_size(d[j].dtype);
    }
    for (int k = 0; k < L->n_carry; ++k) cut_desc[L->n_seq + k] = parts[L->n_y + k];
    for (int m = 0; m < L->n_cap; ++m) {
        int i = L->cap_in[m];
        if (i >= 0) {
            cut_desc[n_ph + m] = d[i];
            cut_data[n_ph + m] = in[i].data;
        } else {
            cut_desc[n_ph + m] = L->caps[m]->desc;
            cut_data[n_ph + m] = (char *)in[L->cap_pack[m]].data +
                                 (size_t)L->cap_off[m] * kb_dtype_size(L->caps[m]->desc.dtype);
        }
    }
    char *prev = NULL;
    kb_status st = KB_OK;
    for (int64_t u = 0; u < T && st == KB_OK; ++u) {
        for (int j = 0; j < L->n_seq; ++j) {
            int64_t base = L->rev[j] ? T - 1 - u : u;
            char *s = (char *)in[j].data;
            int64_t at = base - L->lag[j]; /* a lagged sequence starts from its start value */
            if (at >= 0 && at < T) cut_data[j] = s + (size_t)at * slice[j];
            else cut_data[j] = L->lag_in[j] >= 0 ? in[L->lag_in[j]].data : zero;
        }
        for (int k = 0; k < L->n_carry; ++k)
            cut_data[L->n_seq + k] = prev ? prev + (size_t)off[L->n_y + k] * es
                                          : (L->carry_in[k] >= 0 ? in[L->carry_in[k]].data : (void *)zero);
        st = kb_function_run_body(Bd->fn[di], cut_data, cut_desc, out_data, out_desc);
        char *row = rows + (size_t)((L->out_rev ? T - 1 - u : u) * P) * es;
        for (int i = 0; i < n_out && st == KB_OK; ++i) {
            if (dsize(&out_desc[i]) != sz[i])
                st = kb_set_error(KB_ERR_INTERNAL, "%s: body output %d has %lld elements, expected %lld", ex->op, i,
                                  (long long)dsize(&out_desc[i]), (long long)sz[i]);
            else if (sz[i])
                st = api->copy_d2d(dev, row + (size_t)off[i] * es, out_data[i], (size_t)sz[i] * es);
        }
        prev = row;
    }
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Building a loop node from a traced body                                                      */

typedef struct loop_spec {
    int n_seq;
    kb_tensor *seq[LMAX], *seq_ph[LMAX], *lag_init[LMAX]; /* lag_init NULL: starts at zeros */
    unsigned char rev[LMAX];
    signed char lag[LMAX];
    int n_carry;
    kb_tensor *carry_init[NCMAX], *carry_ph[NCMAX];
    kb_tensor *zero_src[NCMAX]; /* carry_init NULL: a carry that starts at zeros of this tensor's shape */
    int n_y;
    int nb;                        /* bodies (0 counts as 1) */
    kb_tensor *sel;                /* nb == 2: the rank-0 selector (non-zero: body 0) */
    kb_tensor *ys[2][YMAX], *carry_out[2][NCMAX]; /* per body */
    kb_tensor *extra_caps[CAPMAX];
    int n_extra;
    int out_rev;
    int64_t r[2 * KB_LOOP_RANGES];
} loop_spec;

static kb_tensor *part_node(kb_tensor *src, kb_tensor *loop, int part, int mode);

static int made_by_trace(const loop_spec *s, const kb_tensor *t) {
    for (int i = 0; i < 2 * KB_LOOP_RANGES; i += 2)
        if (t->id >= s->r[i] && t->id < s->r[i + 1]) return 1;
    return 0;
}

/* Collects body bi's nodes (DFS from its outputs, stopping at placeholders and captures; the
 * captures are added to L->caps) into list; returns the count, -1 when there are too many captures. */
static int collect(const loop_spec *s, kb_loop *L, kb_tensor *const *outs, int n_out, int *mark, kb_tensor **stack,
                   kb_tensor **list, int *n_cap) {
    int n_ph = s->n_seq + s->n_carry, sp = 0, n_list = 0;
    for (int i = 0; i < n_ph; ++i) {
        mark[L->ph[i]->id] = 0;
        list[n_list++] = L->ph[i];
    }
    for (int i = 0; i < n_out + s->n_extra; ++i) {
        kb_tensor *t = i < n_out ? outs[i] : s->extra_caps[i - n_out];
        if (mark[t->id] < 0) {
            mark[t->id] = 0;
            stack[sp++] = t;
        }
    }
    while (sp) {
        kb_tensor *t = stack[--sp];
        list[n_list++] = t;
        int internal = t->kind != KB_KIND_PLACEHOLDER && made_by_trace(s, t);
        for (int e = 0; e < s->n_extra; ++e) internal &= s->extra_caps[e] != t;
        if (!internal) {
            int known = 0;
            for (int m = 0; m < *n_cap && m < CAPMAX; ++m) known |= L->caps[m] == t;
            if (!known) {
                if (*n_cap >= CAPMAX) return -1;
                L->caps[(*n_cap)++] = t;
            }
            continue;
        }
        for (int k = 0; k < t->n_in; ++k)
            if (mark[t->in[k]->id] < 0) {
                mark[t->in[k]->id] = 0;
                stack[sp++] = t->in[k];
            }
    }
    return n_list;
}

static kb_tensor *loop_make(const char *fn, const loop_spec *s) {
    kb_context *ctx = s->n_seq ? s->seq[0]->ctx : s->sel->ctx;
    int n_out = s->n_y + s->n_carry, nb = s->nb == 2 ? 2 : 1;
    if (n_out == 0) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: the loop has no outputs and no states", fn);
        return NULL;
    }
    kb_tensor *outs[2][OUTMAX];
    for (int bi = 0; bi < nb; ++bi) {
        for (int i = 0; i < s->n_y; ++i) outs[bi][i] = s->ys[bi][i];
        for (int k = 0; k < s->n_carry; ++k) outs[bi][s->n_y + k] = s->carry_out[bi][k];
        for (int i = 0; i < n_out; ++i) {
            if (!kb_check_tensor(fn, "the step function's result", outs[bi][i])) return NULL;
            if (outs[bi][i]->desc.dtype != outs[0][0]->desc.dtype) {
                kb_set_error(KB_ERR_DTYPE, "%s: the %s must have one dtype; got %s and %s", fn,
                             nb == 2 ? "branches" : "step function's outputs and states",
                             kb_dtype_name(outs[0][0]->desc.dtype), kb_dtype_name(outs[bi][i]->desc.dtype));
                return NULL;
            }
        }
        for (int k = 0; k < s->n_carry; ++k) {
            const kb_desc *a = &s->carry_out[bi][k]->desc, *b = &s->carry_ph[k]->desc;
            int ok = a->rank == b->rank && a->dtype == b->dtype;
            for (int q = 0; ok && q < a->rank; ++q)
                ok = a->shape[q] == KB_NONE || b->shape[q] == KB_NONE || a->shape[q] == b->shape[q];
            if (!ok) {
                char s1[128], s2[128];
                kb_set_error(KB_ERR_SHAPE, "%s: the step function returns state %d as %s %s; the state is %s %s", fn, k,
                             kb_dtype_name(a->dtype), kb_shape_str(a, s1, sizeof s1), kb_dtype_name(b->dtype),
                             kb_shape_str(b, s2, sizeof s2));
                return NULL;
            }
        }
    }
    kb_loop *L = (kb_loop *)calloc(1, sizeof *L);
    int64_t nt = ctx->n_tensors;
    int *mark = (int *)malloc(sizeof(int) * (size_t)nt); /* -1 unseen, else the node's index */
    kb_tensor **stack = (kb_tensor **)malloc(sizeof *stack * (size_t)nt);
    kb_tensor **list = (kb_tensor **)malloc(sizeof *list * (size_t)nt);
    kb_tensor *node = NULL;
    if (!L || !mark || !stack || !list) {
        kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: out of host memory", fn);
        goto done;
    }
    L->ctx = ctx;
    L->n_seq = s->n_seq;
    L->n_carry = s->n_carry;
    L->n_y = s->n_y;
    L->out_rev = s->out_rev;
    L->nb = nb;
    L->sel_in = -1;
    L->dtype = outs[0][0]->desc.dtype;
    memcpy(L->r, s->r, sizeof L->r);
    for (int j = 0; j < s->n_seq; ++j) L->ph[j] = s->seq_ph[j];
    for (int k = 0; k < s->n_carry; ++k) L->ph[s->n_seq + k] = s->carry_ph[k];
    /* the captures of every body: not made by the trace(s), or placeholders of the outer graph */
    int n_cap = 0;
    for (int bi = 0; bi < nb; ++bi) {
        for (int64_t i = 0; i < nt; ++i) mark[i] = -1;
        if (collect(s, L, outs[bi], n_out, mark, stack, list, &n_cap) < 0) {
            n_cap = CAPMAX + 1;
            break;
        }
    }
    if (n_cap <= CAPMAX)
        for (int a = 1; a < n_cap; ++a) /* by id: a stable input order */
            for (int b = a; b > 0 && L->caps[b - 1]->id > L->caps[b]->id; --b) {
                kb_tensor *x = L->caps[b];
                L->caps[b] = L->caps[b - 1];
                L->caps[b - 1] = x;
            }
    /* inputs: sequences, lagged sequences' starts, initial carries, the selector, captures */
    kb_tensor *in[CUTMAX];
    int n_in = 0;
    for (int j = 0; j < s->n_seq; ++j) in[n_in++] = s->seq[j];
    for (int j = 0; j < s->n_seq; ++j) {
        L->rev[j] = s->rev[j];
        L->lag[j] = s->lag[j];
        L->lag_in[j] = -1;
        if (s->lag[j] && s->lag_init[j]) {
            L->lag_in[j] = n_in;
            in[n_in++] = s->lag_init[j];
        }
    }
    for (int k = 0; k < s->n_carry; ++k) {
        L->carry_in[k] = -1;
        if (s->carry_init[k]) {
            L->carry_in[k] = n_in;
            in[n_in++] = s->carry_init[k];
        }
    }
    if (nb == 2) {
        L->sel_in = n_in;
        in[n_in++] = s->sel;
    }
    /* captures as inputs; over the limit, static ones of one dtype share a packed input */
    int n_direct = n_cap <= CAPMAX ? n_cap : 0, n_pack = 0;
    unsigned char packed[CAPMAX] = {0};
    kb_tensor *packs[LMAX];
    while (n_cap <= CAPMAX && n_in + n_direct + n_pack > LMAX_IN && n_pack < LMAX) {
        int best = -1, count = 0;
        for (int m = 0; m < n_cap; ++m) {
            if (packed[m] || dsize(&L->caps[m]->desc) <= 0) continue;
            int c = 0;
            for (int q = 0; q < n_cap; ++q)
                c += !packed[q] && dsize(&L->caps[q]->desc) > 0 && L->caps[q]->desc.dtype == L->caps[m]->desc.dtype;
            if (c > count) best = m, count = c;
        }
        if (count < 2) break;
        kb_tensor *flat[CAPMAX];
        int nf = 0;
        int64_t off = 0, minus1 = -1;
        kb_dtype dt = L->caps[best]->desc.dtype;
        for (int m = 0; m < n_cap; ++m) {
            if (packed[m] || dsize(&L->caps[m]->desc) <= 0 || L->caps[m]->desc.dtype != dt) continue;
            packed[m] = 1;
            L->cap_pack[m] = n_pack; /* the pack's index for now */
            L->cap_off[m] = off;
            off += dsize(&L->caps[m]->desc);
            if (!(flat[nf++] = kb_reshape(L->caps[m], &minus1, 1))) goto done;
        }
        if (!(packs[n_pack++] = kb_concatenate(flat, nf, 0))) goto done;
        n_direct -= nf;
    }
    if (n_cap > CAPMAX || n_in + n_direct + n_pack > LMAX_IN) {
        kb_set_error(KB_ERR_NOT_SUPPORTED,
                     "%s: the loop needs %s%d inputs (%d sequences, initial states and conditions, %d tensors the step "
                     "function captures, packed where they have static shapes); at most %d are supported",
                     fn, n_cap > CAPMAX ? "more than " : "", n_in + n_direct + n_pack, n_in, n_cap, LMAX_IN);
        goto done;
    }
    L->n_cap = n_cap;
    for (int m = 0; m < n_cap; ++m) {
        L->cap_in[m] = packed[m] ? -1 : n_in;
        if (!packed[m]) in[n_in++] = L->caps[m];
    }
    for (int p = 0; p < n_pack; ++p) {
        for (int m = 0; m < n_cap; ++m)
            if (packed[m] && L->cap_pack[m] == p) L->cap_pack[m] = -(n_in + 1); /* final index, marked */
        in[n_in++] = packs[p];
    }
    for (int m = 0; m < n_cap; ++m)
        if (packed[m]) L->cap_pack[m] = -L->cap_pack[m] - 1;
    L->n_in = n_in;
    for (int bi = 0; bi < nb; ++bi) {
        kb_body *Bd = &L->b[bi];
        for (int64_t i = 0; i < nt; ++i) mark[i] = -1;
        int n_list = collect(s, L, outs[bi], n_out, mark, stack, list, &n_cap);
        /* the node list in id order, with roles */
        for (int a = 1; a < n_list; ++a)
            for (int b = a; b > 0 && list[b - 1]->id > list[b]->id; --b) {
                kb_tensor *x = list[b];
                list[b] = list[b - 1];
                list[b - 1] = x;
            }
        Bd->n_nodes = n_list;
        Bd->nodes = (kb_tensor **)malloc(sizeof *Bd->nodes * (size_t)n_list);
        Bd->role = (unsigned char *)calloc((size_t)n_list, 1);
        Bd->src = (int *)calloc((size_t)n_list, sizeof(int));
        Bd->in_idx = (int *)calloc((size_t)n_list * LMAX, sizeof(int));
        if (!Bd->nodes || !Bd->role || !Bd->src || !Bd->in_idx) {
            kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: out of host memory", fn);
            goto done;
        }
        for (int i = 0; i < n_list; ++i) {
            Bd->nodes[i] = list[i];
            mark[list[i]->id] = i;
        }
        for (int i = 0; i < n_list; ++i) {
            kb_tensor *t = list[i];
            int role = ROLE_INTERNAL, src = 0;
            for (int j = 0; j < s->n_seq; ++j)
                if (t == s->seq_ph[j]) role = ROLE_SEQ, src = j;
            for (int k = 0; k < s->n_carry; ++k)
                if (t == s->carry_ph[k]) {
                    if (s->carry_init[k]) {
                        role = ROLE_CARRY_IN, src = L->carry_in[k];
                    } else {
                        role = ROLE_CARRY_ZERO;
                        src = mark[s->zero_src[k]->id];
                        if (src < 0 || src >= i) {
                            kb_set_error(KB_ERR_INTERNAL, "%s: a zero-started state has no earlier shape source", fn);
                            goto done;
                        }
                    }
                }
            for (int m = 0; m < n_cap; ++m)
                if (t == L->caps[m]) role = ROLE_CAP, src = m;
            Bd->role[i] = (unsigned char)role;
            Bd->src[i] = src;
            if (role == ROLE_INTERNAL)
                for (int k = 0; k < t->n_in; ++k) Bd->in_idx[i * LMAX + k] = mark[t->in[k]->id];
        }
        for (int i = 0; i < n_out; ++i) {
            Bd->outs[i] = outs[bi][i];
            Bd->out_idx[i] = mark[outs[bi][i]->id];
        }
    }
    {
        kb_attrs at;
        memset(&at, 0, sizeof at);
        at.i64[0] = (int64_t)(intptr_t)L;
        node = kb_node(fn, KB_OP_LOOP, in, n_in, &at);
    }
    if (node) {
        node->ext = L;
        node->ext_free = loop_free;
        L = NULL;
    }
done:
    loop_free(L);
    free(mark);
    free(stack);
    free(list);
    return node;
}

/* loop_part(src, loop inputs...): part \p part of src, the loop's rows or their gradient. */
static kb_tensor *part_node(kb_tensor *src, kb_tensor *loop, int part, int mode) {
    if (!src) return NULL;
    kb_tensor *in[KB_MAX_INPUTS];
    in[0] = src;
    for (int i = 0; i < loop->n_in; ++i) in[i + 1] = loop->in[i];
    kb_attrs at;
    memset(&at, 0, sizeof at);
    at.i64[0] = loop->attrs.i64[0];
    at.i64[1] = part;
    at.i64[2] = mode;
    return kb_node("loop_part", KB_OP_LOOP_PART, in, loop->n_in + 1, &at);
}

/* The loop node a part node reads (its inputs after the first are the loop's). */
/* d rows = the part's gradient scattered into zero rows (the loop's inputs give the shapes) */
static kb_status grad_loop_part(kb_tensor *node, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *in[KB_MAX_INPUTS];
    in[0] = dy;
    for (int i = 1; i < node->n_in; ++i) in[i] = node->in[i];
    dx[0] = kb_node("loop_part_grad", KB_OP_LOOP_PART_GRAD, in, node->n_in, &node->attrs);
    return dx[0] ? KB_OK : kb_last_status();
}

static kb_status grad_loop_part_grad(kb_tensor *node, kb_tensor *dy, kb_tensor **dx) {
    kb_tensor *in[KB_MAX_INPUTS];
    in[0] = dy;
    for (int i = 1; i < node->n_in; ++i) in[i] = node->in[i];
    dx[0] = kb_node("loop_part", KB_OP_LOOP_PART, in, node->n_in, &node->attrs);
    return dx[0] ? KB_OK : kb_last_status();
}

/* ------------------------------------------------------------------------------------------ */
/* Backpropagation through time                                                                 */

static kb_tensor *ph_like(kb_context *ctx, const kb_tensor *t, const char *name) {
    return kb_placeholder(ctx, t->desc.shape, t->desc.rank, t->desc.dtype, name);
}

static kb_tensor *row_at(kb_tensor *x, int64_t i);
static kb_tensor *rows_from1(kb_tensor *x);

/* The gradient of a lagged sequence from E, the gradients of its slices by base row (E[b] is the
 * slice read at row b - lag, or the start value where that row is outside). */
static kb_status lag_grad(kb_tensor *E, int lag, kb_tensor **dseq, kb_tensor **dstart) {
    int ax = 0;
    kb_tensor *R = lag > 0 ? E : kb_reverse(E, &ax, 1); /* lag -1: the same on reversed rows */
    kb_tensor *first = row_at(R, 0), *rest = rows_from1(R);
    kb_tensor *z = first ? kb_expand_dims(kb_zeros_like(first, first->desc.dtype), 0) : NULL;
    kb_tensor *parts[2] = {rest, z};
    kb_tensor *d = rest && z ? kb_concatenate(parts, 2, 0) : NULL; /* R[1:] then a zero row */
    if (d && lag < 0) d = kb_reverse(d, &ax, 1);
    *dseq = d;
    *dstart = first;
    return d && first ? KB_OK : kb_last_status();
}

/* Backpropagation through time for any loop node (its own gradient loops included, so higher
 * derivatives work): a loop over the steps in reverse whose body is the seeded vector-Jacobian
 * product of the forward body. It reads the forward sequences, the forward carries before each
 * step (the carry rows lagged by one step, starting from the initial values) and the output
 * gradient's rows; it carries d carry and the captures' gradient sums and emits d slice rows. */
static kb_status grad_loop(kb_tensor *node, kb_tensor *dO, kb_tensor **dx) {
    const char *fn = "kb_gradients";
    kb_loop *F = loop_of(&node->attrs);
    kb_context *ctx = node->ctx;
    if (!kb_dtype_is_float(F->dtype)) return KB_OK; /* integer rows: no gradient */
    int ny = F->n_y, nc = F->n_carry;
    if (F->n_seq + 2 * nc + ny > LMAX_IN || ny > YMAX)
        return kb_set_error(KB_ERR_NOT_SUPPORTED, "%s: the loop's gradient needs %d sequences; at most %d are supported",
                            fn, F->n_seq + 2 * nc + ny, LMAX_IN);
    loop_spec s;
    memset(&s, 0, sizeof s);
    /* forward values the backward body reads, and the output gradient by part */
    kb_tensor *C[NCMAX], *dY[YMAX], *dC[NCMAX];
    for (int k = 0; k < nc; ++k) {
        C[k] = part_node(node, node, ny + k, PART_ALL);
        dC[k] = part_node(dO, node, ny + k, PART_ALL);
        if (!C[k] || !dC[k]) return kb_last_status();
    }
    for (int i = 0; i < ny; ++i)
        if (!(dY[i] = part_node(dO, node, i, PART_ALL))) return kb_last_status();
    /* trace the backward body: the forward body's placeholders are reused; its ids are one more
     * range of "made by the trace" */
    int slot = -1;
    for (int i = 0; i < KB_LOOP_RANGES; ++i) {
        s.r[2 * i] = F->r[2 * i];
        s.r[2 * i + 1] = F->r[2 * i + 1];
        if (slot < 0 && F->r[2 * i] == 0 && F->r[2 * i + 1] == 0) slot = i;
    }
    if (slot < 0)
        return kb_set_error(KB_ERR_NOT_SUPPORTED, "%s: derivatives of order above %d through a loop are not supported",
                            fn, KB_LOOP_RANGES - 2);
    s.r[2 * slot] = ctx->n_tensors;
    kb_tensor *dy_ph[YMAX], *dc_ph[NCMAX], *gc_ph[NCMAX], *gw_ph[CAPMAX], *seeds[OUTMAX];
    kb_tensor *vars[CUTMAX], *gg[2][CUTMAX];
    int fcap[CAPMAX], n_fcap = 0;
    for (int m = 0; m < F->n_cap; ++m)
        if (kb_dtype_is_float(F->caps[m]->desc.dtype)) fcap[n_fcap++] = m;
    for (int i = 0; i < ny; ++i)
        if (!(dy_ph[i] = ph_like(ctx, F->b[0].outs[i], "loop_dy"))) return kb_last_status();
    for (int k = 0; k < nc; ++k) {
        if (!(dc_ph[k] = ph_like(ctx, F->ph[F->n_seq + k], "loop_dstate"))) return kb_last_status();
        if (!(gc_ph[k] = ph_like(ctx, F->ph[F->n_seq + k], "loop_dstate_carry"))) return kb_last_status();
    }
    for (int q = 0; q < n_fcap; ++q)
        if (!(gw_ph[q] = ph_like(ctx, F->caps[fcap[q]], "loop_dcapture"))) return kb_last_status();
    for (int i = 0; i < ny; ++i) seeds[i] = dy_ph[i];
    for (int k = 0; k < nc; ++k)
        if (!(seeds[ny + k] = kb_add(gc_ph[k], dc_ph[k]))) return kb_last_status();
    int nv = 0;
    for (int j = 0; j < F->n_seq; ++j) vars[nv++] = F->ph[j];
    for (int k = 0; k < nc; ++k) vars[nv++] = F->ph[F->n_seq + k];
    for (int q = 0; q < n_fcap; ++q) vars[nv++] = F->caps[fcap[q]];
    /* per body (a switch has two): outputs dx per float sequence (rows), then carries: d state,
     * d capture sums */
    int yseq[LMAX], n_yseq = 0;
    s.nb = F->nb;
    if (F->nb == 2) s.sel = node->in[F->sel_in];
    for (int bi = 0; bi < F->nb; ++bi) {
        kb_tensor **g = gg[bi];
        KB_TRY(kb_gradients_seeded(F->b[bi].outs, seeds, ny + nc, vars, nv, g, 1));
        n_yseq = 0;
        for (int j = 0; j < F->n_seq; ++j) {
            if (!kb_dtype_is_float(F->ph[j]->desc.dtype)) continue;
            kb_tensor *gx = g[j] ? g[j] : kb_zeros_like(F->ph[j], F->ph[j]->desc.dtype);
            if (!gx) return kb_last_status();
            yseq[n_yseq] = j;
            s.ys[bi][n_yseq++] = gx;
        }
        for (int k = 0; k < nc; ++k) {
            kb_tensor *ph = F->ph[F->n_seq + k];
            kb_tensor *gc = g[F->n_seq + k] ? g[F->n_seq + k] : kb_zeros_like(ph, ph->desc.dtype);
            if (!gc) return kb_last_status();
            s.carry_out[bi][k] = gc;
        }
        for (int q = 0; q < n_fcap; ++q) {
            kb_tensor *gw = g[F->n_seq + nc + q];
            gw = gw ? kb_add(gw_ph[q], gw) : gw_ph[q];
            if (!gw) return kb_last_status();
            s.carry_out[bi][nc + q] = gw;
        }
    }
    s.n_y = n_yseq;
    for (int k = 0; k < nc; ++k) {
        s.carry_ph[k] = gc_ph[k];
        s.carry_init[k] = NULL;
        s.zero_src[k] = F->ph[F->n_seq + k];
    }
    for (int q = 0; q < n_fcap; ++q) {
        s.carry_ph[nc + q] = gw_ph[q];
        s.zero_src[nc + q] = F->caps[fcap[q]];
        s.extra_caps[s.n_extra++] = F->caps[fcap[q]];
    }
    s.n_carry = nc + n_fcap;
    s.r[2 * slot + 1] = ctx->n_tensors;
    /* Backward step u' is forward step u = T-1-u'. Sequences: the forward ones (read at the same
     * rows: reversed flags), the forward carries before each step (carry rows lagged by one
     * step: row r(u-1), the initial value at u = 0, with r the forward output row), the output
     * gradient's rows r(u). */
    int n = 0;
    for (int j = 0; j < F->n_seq; ++j, ++n) {
        s.seq[n] = node->in[j];
        s.seq_ph[n] = F->ph[j];
        s.rev[n] = (unsigned char)!F->rev[j];
        s.lag[n] = F->lag[j];
        s.lag_init[n] = F->lag_in[j] >= 0 ? node->in[F->lag_in[j]] : NULL;
    }
    for (int k = 0; k < nc; ++k, ++n) {
        s.seq[n] = C[k];
        s.seq_ph[n] = F->ph[F->n_seq + k];
        s.rev[n] = (unsigned char)!F->out_rev;
        s.lag[n] = F->out_rev ? -1 : 1;
        s.lag_init[n] = F->carry_in[k] >= 0 ? node->in[F->carry_in[k]] : NULL;
    }
    for (int i = 0; i < ny; ++i, ++n) {
        s.seq[n] = dY[i];
        s.seq_ph[n] = dy_ph[i];
        s.rev[n] = (unsigned char)!F->out_rev;
    }
    for (int k = 0; k < nc; ++k, ++n) {
        s.seq[n] = dC[k];
        s.seq_ph[n] = dc_ph[k];
        s.rev[n] = (unsigned char)!F->out_rev;
    }
    s.n_seq = n;
    /* d slice rows land where the first float sequence reads them; others are reversed after */
    s.out_rev = n_yseq ? !F->rev[yseq[0]] : 0;
    kb_tensor *B = loop_make(fn, &s);
    if (!B) return kb_last_status();
    for (int q = 0; q < n_yseq; ++q) {
        int j = yseq[q], ax = 0;
        kb_tensor *E = part_node(B, B, q, PART_ALL);
        if (E && s.out_rev != !F->rev[j]) E = kb_reverse(E, &ax, 1);
        if (!E) return kb_last_status();
        if (!F->lag[j]) {
            dx[j] = E;
            continue;
        }
        kb_tensor *dstart;
        KB_TRY(lag_grad(E, F->lag[j], &dx[j], &dstart));
        if (F->lag_in[j] >= 0) dx[F->lag_in[j]] = dstart;
    }
    for (int k = 0; k < nc; ++k)
        if (F->carry_in[k] >= 0 && !(dx[F->carry_in[k]] = part_node(B, B, n_yseq + k, PART_LAST)))
            return kb_last_status();
    kb_tensor *dcap[CAPMAX] = {0};
    for (int q = 0; q < n_fcap; ++q)
        if (!(dcap[fcap[q]] = part_node(B, B, n_yseq + nc + q, PART_LAST))) return kb_last_status();
    for (int m = 0; m < F->n_cap; ++m)
        if (F->cap_in[m] >= 0 && dcap[m]) dx[F->cap_in[m]] = dcap[m];
    for (int i = 0; i < F->n_in; ++i) { /* a pack's gradient: its members', flattened in order */
        kb_tensor *flat[CAPMAX];
        int nf = 0;
        int64_t minus1 = -1;
        for (int m = 0; m < F->n_cap; ++m) {
            if (F->cap_in[m] >= 0 || F->cap_pack[m] != i) continue;
            kb_tensor *d = dcap[m];
            if (!d) break; /* not float: the pack has no gradient */
            if (!(flat[nf++] = kb_reshape(d, &minus1, 1))) return kb_last_status();
        }
        int members = 0;
        for (int m = 0; m < F->n_cap; ++m) members += F->cap_in[m] < 0 && F->cap_pack[m] == i;
        if (members && nf == members && !(dx[i] = kb_concatenate(flat, nf, 0))) return kb_last_status();
    }
    return KB_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Entries                                                                                      */

/* loop: the scan. Inputs (variadic): sequences (T, ...), lagged sequences' start values,
 * initial carries, captured tensors. Output (T + 1, P) of the rows' dtype. Attributes: i64[0]
 * the kb_loop (owned by the node through kb_tensor.ext). Runs on its device through the nested
 * body function (the CPU kernel and the CUDA launcher are the same host driver). */
const kb_op_def kb_opdef_loop = {"loop", 1, KB_OPF_INTERNAL | KB_OPF_CPU_ANY_DTYPE, infer_loop, grad_loop, kb_cpu_loop,
                                 KB_CUDA_KERNEL(loop)};
/* loop_part: part i64[1] of a loop's rows, i64[2] = 0: every step (T, *part), 1: the last step's
 * row (*part). Inputs: the rows (T + 1, P), then the loop's inputs (for the parts' shapes).
 * i64[0] the kb_loop. */
const kb_op_def kb_opdef_loop_part = {"loop_part", 1, KB_OPF_INTERNAL | KB_OPF_CPU_ANY_DTYPE, infer_loop_part,
                                      grad_loop_part, kb_cpu_loop_part, KB_CUDA_KERNEL(loop_part)};
/* loop_part_grad: loop_part's gradient: the part's gradient scattered into zero (T + 1, P)
 * rows. Inputs: the part's gradient, then the loop's inputs. Attributes as loop_part. Its
 * gradient is loop_part of the incoming rows. */
const kb_op_def kb_opdef_loop_part_grad = {"loop_part_grad", 1, KB_OPF_INTERNAL | KB_OPF_CPU_ANY_DTYPE,
                                           infer_loop_part_grad, grad_loop_part_grad, kb_cpu_loop_part_grad,
                                           KB_CUDA_KERNEL(loop_part_grad)};

/* ------------------------------------------------------------------------------------------ */
/* Public constructors                                                                          */

/* After a callback: its failure (an error it or an op it made set), or NULL without one. */
static int callback_failed(const char *fn, const char *what, unsigned errs, kb_status st, int got) {
    if (st == KB_OK && got && kb_error_count() == errs) return 0;
    if (kb_error_count() == errs || kb_last_status() == KB_OK)
        kb_set_error(st != KB_OK ? st : KB_ERR_INVALID_ARGUMENT, "%s: %s failed (returned %s without an error)", fn, what,
                     st != KB_OK ? "a status" : "NULL");
    return 1;
}

/* x[i] along axis 0 (static i) without that axis. */
static kb_tensor *row_at(kb_tensor *x, int64_t i) {
    if (!x) return NULL;
    int64_t start[KB_MAX_RANK] = {0}, size[KB_MAX_RANK];
    for (int k = 0; k < x->desc.rank; ++k) size[k] = -1;
    start[0] = i;
    size[0] = 1;
    return kb_squeeze(kb_slice(x, start, size, x->desc.rank), 0);
}

/* x[1:] along axis 0. */
static kb_tensor *rows_from1(kb_tensor *x) {
    if (!x) return NULL;
    int64_t start[KB_MAX_RANK] = {0}, size[KB_MAX_RANK];
    for (int k = 0; k < x->desc.rank; ++k) size[k] = -1;
    start[0] = 1;
    return kb_slice(x, start, size, x->desc.rank);
}

static kb_tensor *slice_ph(kb_tensor *seq, const char *name) {
    return kb_placeholder(seq->ctx, seq->desc.shape + 1, seq->desc.rank - 1, seq->desc.dtype, name);
}

static int check_elems(const char *fn, void *cb, kb_tensor *elems) {
    if (!cb) {
        kb_null_arg(fn, "fn");
        return 0;
    }
    if (!kb_check_tensor(fn, "elems", elems)) return 0;
    if (elems->desc.rank < 1) {
        kb_set_error(KB_ERR_SHAPE, "%s: elems is a scalar; it must have a leading axis to iterate over", fn);
        return 0;
    }
    return 1;
}

kb_tensor *kb_map_fn(kb_map_callback fn, void *user, kb_tensor *elems, kb_dtype dtype) {
    const char *f = "kb_map_fn";
    if (!check_elems(f, (void *)(intptr_t)(fn != NULL), elems)) return NULL;
    kb_context *ctx = elems->ctx;
    if (dtype != KB_FLOATX && !kb_dtype_valid(dtype)) {
        kb_set_error(KB_ERR_DTYPE, "%s: invalid dtype %d", f, (int)dtype);
        return NULL;
    }
    loop_spec s;
    memset(&s, 0, sizeof s);
    s.r[0] = ctx->n_tensors;
    kb_tensor *ph = slice_ph(elems, "map_fn_elem");
    if (!ph) return NULL;
    unsigned errs = kb_error_count();
    kb_tensor *y = fn(ph, user);
    if (callback_failed(f, "fn", errs, KB_OK, y != NULL)) return NULL;
    if (!kb_check_tensor(f, "fn's result", y)) return NULL;
    if (dtype != KB_FLOATX && y->desc.dtype != dtype && !(y = kb_cast(y, dtype))) return NULL;
    s.r[1] = ctx->n_tensors;
    s.n_seq = 1;
    s.seq[0] = elems;
    s.seq_ph[0] = ph;
    s.n_y = 1;
    s.ys[0][0] = y;
    kb_tensor *L = loop_make(f, &s);
    return L ? part_node(L, L, 0, PART_ALL) : NULL;
}

static kb_tensor *fold(const char *f, kb_fold_fn fn, void *user, kb_tensor *elems, kb_tensor *initializer, int right) {
    if (!check_elems(f, (void *)(intptr_t)(fn != NULL), elems)) return NULL;
    if (initializer && !kb_check_tensor(f, "initializer", initializer)) return NULL;
    kb_context *ctx = elems->ctx;
    if (initializer && initializer->ctx != ctx) {
        kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: elems and initializer belong to different contexts", f);
        return NULL;
    }
    kb_tensor *seq = elems, *first = initializer;
    int rev = right;
    if (!initializer) { /* start from the first element visited, iterate over the others */
        if (elems->desc.shape[0] == 0 || elems->desc.shape[0] == 1) {
            kb_set_error(KB_ERR_SHAPE, "%s: elems has %lld element(s) and no initializer; at least 2 are needed", f,
                         (long long)elems->desc.shape[0]);
            return NULL;
        }
        if (right) {
            int ax = 0;
            seq = kb_reverse(elems, &ax, 1);
            rev = 0;
        }
        first = row_at(seq, 0);
        seq = rows_from1(seq);
        if (!first || !seq) return NULL;
    }
    loop_spec s;
    memset(&s, 0, sizeof s);
    s.r[0] = ctx->n_tensors;
    kb_tensor *acc = ph_like(ctx, first, "fold_acc"), *x = slice_ph(seq, "fold_elem");
    if (!acc || !x) return NULL;
    unsigned errs = kb_error_count();
    kb_tensor *y = fn(acc, x, user);
    if (callback_failed(f, "fn", errs, KB_OK, y != NULL)) return NULL;
    if (!kb_check_tensor(f, "fn's result", y)) return NULL;
    if (y->desc.dtype != first->desc.dtype) {
        kb_set_error(KB_ERR_DTYPE, "%s: fn returns %s; the accumulator (%s) is %s", f, kb_dtype_name(y->desc.dtype),
                     initializer ? "initializer" : "the first element", kb_dtype_name(first->desc.dtype));
        return NULL;
    }
    s.r[1] = ctx->n_tensors;
    s.n_seq = 1;
    s.seq[0] = seq;
    s.seq_ph[0] = x;
    s.rev[0] = (unsigned char)rev;
    s.n_carry = 1;
    s.carry_init[0] = first;
    s.carry_ph[0] = acc;
    s.carry_out[0][0] = y;
    kb_tensor *L = loop_make(f, &s);
    return L ? part_node(L, L, 0, PART_LAST) : NULL;
}

kb_tensor *kb_foldl(kb_fold_fn fn, void *user, kb_tensor *elems, kb_tensor *initializer) {
    return fold("kb_foldl", fn, user, elems, initializer, 0);
}
kb_tensor *kb_foldr(kb_fold_fn fn, void *user, kb_tensor *elems, kb_tensor *initializer) {
    return fold("kb_foldr", fn, user, elems, initializer, 1);
}

/* (B, T, ...) <-> (T, B, ...) */
static kb_tensor *swap01(kb_tensor *x) {
    if (!x) return NULL;
    int perm[KB_MAX_RANK];
    for (int i = 0; i < x->desc.rank; ++i) perm[i] = i;
    perm[0] = 1;
    perm[1] = 0;
    return kb_permute_dimensions(x, perm, x->desc.rank);
}

static kb_status call_step(const char *f, kb_step_fn step, void *user, kb_tensor *x, kb_tensor *const *states,
                           int n_states, int n_all, kb_tensor **out, kb_tensor **ns) {
    unsigned errs = kb_error_count();
    *out = NULL;
    for (int k = 0; k < n_states; ++k) ns[k] = NULL;
    kb_status st = step(x, states, n_all, user, out, ns);
    int got = *out != NULL;
    for (int k = 0; k < n_states; ++k) got &= ns[k] != NULL;
    if (callback_failed(f, "step_function", errs, st, got)) return kb_last_status();
    if (!kb_check_tensor(f, "step_function's output", *out)) return kb_last_status();
    for (int k = 0; k < n_states; ++k)
        if (!kb_check_tensor(f, "step_function's new state", ns[k])) return kb_last_status();
    return KB_OK;
}

kb_status kb_rnn(kb_step_fn step_function, void *user, kb_tensor *inputs, kb_tensor *const *initial_states,
                 int n_states, int go_backwards, kb_tensor *mask, kb_tensor *const *constants, int n_constants,
                 int unroll, int64_t input_length, kb_tensor **last_output, kb_tensor **outputs,
                 kb_tensor **new_states) {
    const char *f = "kb_rnn";
    (void)input_length; /* a hint (tf.while_loop's maximum_iterations): the steps are inputs' T */
    if (last_output) *last_output = NULL;
    if (outputs) *outputs = NULL;
    for (int k = 0; new_states && k < n_states; ++k) new_states[k] = NULL;
    if (!step_function) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: argument step_function is NULL", f);
    if (!kb_check_tensor(f, "inputs", inputs)) return kb_last_status();
    if (!last_output || !outputs || (n_states > 0 && !new_states))
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: last_output, outputs or new_states is NULL", f);
    if (n_states < 0 || (n_states > 0 && !initial_states))
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: initial_states is NULL with n_states %d", f, n_states);
    if (n_constants < 0 || (n_constants > 0 && !constants))
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: constants is NULL with n_constants %d", f, n_constants);
    if (n_states > LMAX || n_constants > LMAX)
        return kb_set_error(KB_ERR_NOT_SUPPORTED, "%s: at most %d states and %d constants", f, LMAX, LMAX);
    kb_context *ctx = inputs->ctx;
    for (int k = 0; k < n_states; ++k) {
        if (!kb_check_tensor(f, "initial_states[k]", initial_states[k])) return kb_last_status();
        if (initial_states[k]->ctx != ctx)
            return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: initial_states[%d] belongs to another context", f, k);
    }
    for (int k = 0; k < n_constants; ++k)
        if (!kb_check_tensor(f, "constants[k]", constants[k])) return kb_last_status();
    if (inputs->desc.rank < 3) return kb_set_error(KB_ERR_SHAPE, "%s: Input should be at least 3D.", f);
    int64_t T = inputs->desc.shape[1];
    if (mask) {
        if (!kb_check_tensor(f, "mask", mask)) return kb_last_status();
        char s1[128], s2[128];
        if (mask->desc.rank != 2 ||
            (mask->desc.shape[0] != KB_NONE && inputs->desc.shape[0] != KB_NONE && mask->desc.shape[0] != inputs->desc.shape[0]) ||
            (mask->desc.shape[1] != KB_NONE && T != KB_NONE && mask->desc.shape[1] != T))
            return kb_set_error(KB_ERR_SHAPE, "%s: mask has shape %s; it must be (batch, timesteps) of inputs %s", f,
                                kb_shape_str(&mask->desc, s1, sizeof s1), kb_shape_str(&inputs->desc, s2, sizeof s2));
        if (mask->desc.dtype != KB_BOOL && !(mask = kb_cast(mask, KB_BOOL))) return kb_last_status();
    }
    if (unroll && T == KB_NONE) return kb_set_error(KB_ERR_SHAPE, "%s: Unrolling requires a fixed number of timesteps.", f);
    if (T == 0) return kb_set_error(KB_ERR_SHAPE, "%s: inputs have 0 timesteps", f);
    int n_all = n_states + n_constants;
    kb_tensor *states[2 * LMAX], *ns[LMAX], *out = NULL;
    for (int k = 0; k < n_constants; ++k) states[n_states + k] = constants[k];
    if (unroll) {
        kb_tensor *outs[4096];
        if (T > 4096) return kb_set_error(KB_ERR_NOT_SUPPORTED, "%s: unroll supports at most 4096 timesteps", f);
        kb_tensor *X = swap01(inputs), *M = mask ? kb_transpose(mask) : NULL, *prev = NULL;
        if (!X || (mask && !M)) return kb_last_status();
        for (int k = 0; k < n_states; ++k) states[k] = initial_states[k];
        for (int64_t i = 0; i < T; ++i) {
            int64_t t = go_backwards ? T - 1 - i : i;
            kb_tensor *x = row_at(X, t);
            if (!x) return kb_last_status();
            KB_TRY(call_step(f, step_function, user, x, states, n_states, n_all, &out, ns));
            if (mask) {
                kb_tensor *m = row_at(M, t);
                if (!prev) prev = kb_zeros_like(out, out->desc.dtype);
                out = kb_switch(m, out, prev);
                for (int k = 0; k < n_states; ++k) ns[k] = kb_switch(m, ns[k], states[k]);
                prev = out;
            }
            if (!out) return kb_last_status();
            for (int k = 0; k < n_states; ++k) {
                if (!ns[k]) return kb_last_status();
                states[k] = ns[k];
            }
            outs[i] = out;
        }
        kb_tensor *Y = kb_stack(outs, (int)T, 1);
        if (!Y) return kb_last_status();
        *outputs = Y;
        *last_output = outs[T - 1];
        for (int k = 0; k < n_states; ++k) new_states[k] = states[k];
        return KB_OK;
    }
    kb_tensor *X = swap01(inputs), *M = mask ? kb_transpose(mask) : NULL;
    if (!X || (mask && !M)) return kb_last_status();
    loop_spec s;
    memset(&s, 0, sizeof s);
    s.r[0] = ctx->n_tensors;
    kb_tensor *x_ph = slice_ph(X, "rnn_input"), *m_ph = mask ? slice_ph(M, "rnn_mask") : NULL;
    if (!x_ph || (mask && !m_ph)) return kb_last_status();
    for (int k = 0; k < n_states; ++k)
        if (!(states[k] = ph_like(ctx, initial_states[k], "rnn_state"))) return kb_last_status();
    KB_TRY(call_step(f, step_function, user, x_ph, states, n_states, n_all, &out, ns));
    kb_tensor *pre = out, *prev_ph = NULL;
    if (mask) { /* masked steps keep the previous output (zeros first) and states */
        if (!(prev_ph = ph_like(ctx, out, "rnn_prev_output"))) return kb_last_status();
        if (!(out = kb_switch(m_ph, out, prev_ph))) return kb_last_status();
        for (int k = 0; k < n_states; ++k)
            if (!(ns[k] = kb_switch(m_ph, ns[k], states[k]))) return kb_last_status();
    }
    s.r[1] = ctx->n_tensors;
    s.n_seq = mask ? 2 : 1;
    s.seq[0] = X;
    s.seq_ph[0] = x_ph;
    s.rev[0] = (unsigned char)(go_backwards != 0);
    if (mask) {
        s.seq[1] = M;
        s.seq_ph[1] = m_ph;
        s.rev[1] = s.rev[0];
    }
    for (int k = 0; k < n_states; ++k) {
        s.carry_init[k] = initial_states[k];
        s.carry_ph[k] = states[k];
        s.carry_out[0][k] = ns[k];
    }
    s.n_carry = n_states;
    if (mask) {
        s.carry_ph[n_states] = prev_ph;
        s.carry_out[0][n_states] = out;
        s.zero_src[n_states] = pre;
        s.n_carry++;
    } else {
        s.n_y = 1;
        s.ys[0][0] = out;
    }
    kb_tensor *L = loop_make(f, &s);
    if (!L) return kb_last_status();
    int yp = mask ? n_states : 0;
    kb_tensor *Y = swap01(part_node(L, L, yp, PART_ALL)), *last = part_node(L, L, yp, PART_LAST);
    if (!Y || !last) return kb_last_status();
    for (int k = 0; k < n_states; ++k)
        if (!(new_states[k] = part_node(L, L, (mask ? 0 : 1) + k, PART_LAST))) return kb_last_status();
    *outputs = Y;
    *last_output = last;
    return KB_OK;
}

kb_tensor *kb_switch_fn(kb_tensor *condition, kb_branch_fn then_fn, kb_branch_fn else_fn, void *user) {
    const char *f = "kb_switch_fn";
    if (!kb_check_tensor(f, "condition", condition)) return NULL;
    if (!then_fn || !else_fn) {
        kb_null_arg(f, then_fn ? "else_fn" : "then_fn");
        return NULL;
    }
    if (condition->desc.rank != 0) {
        char sh[128];
        kb_set_error(KB_ERR_SHAPE, "%s: condition has shape %s; a lazy switch needs a scalar (kb_switch selects elementwise)",
                     f, kb_shape_str(&condition->desc, sh, sizeof sh));
        return NULL;
    }
    kb_context *ctx = condition->ctx;
    loop_spec s;
    memset(&s, 0, sizeof s);
    kb_tensor *y[2];
    kb_branch_fn br[2] = {then_fn, else_fn};
    for (int b = 0; b < 2; ++b) {
        s.r[2 * b] = ctx->n_tensors;
        unsigned errs = kb_error_count();
        y[b] = br[b](user);
        if (callback_failed(f, b ? "else_fn" : "then_fn", errs, KB_OK, y[b] != NULL)) return NULL;
        if (!kb_check_tensor(f, b ? "else_fn's result" : "then_fn's result", y[b])) return NULL;
        if (y[b]->ctx != ctx) {
            kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: a branch result belongs to another context than condition", f);
            return NULL;
        }
        s.r[2 * b + 1] = ctx->n_tensors;
        s.ys[b][0] = y[b];
    }
    s.nb = 2;
    s.sel = condition;
    s.n_y = 1;
    kb_tensor *L = loop_make(f, &s);
    return L ? part_node(L, L, 0, PART_LAST) : NULL;
}
