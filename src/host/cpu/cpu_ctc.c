/* CPU kernels of the ctc family (CTC: ctc_label_dense_to_sparse, ctc_batch_cost (loss + gradient in log space), ctc_decode).
 *
 * Everything is computed in double whatever the float dtype (loaded exactly, the result rounded
 * once); the CUDA kernels (kernels/ctc.cu) use the same formulas in the same order:
 *   lse_t = m_t + log(sum_c exp(z[t, c] - m_t)), m_t = max_c z[t, c];  lsm(t, c) = z[t, c] - lse_t
 *   extended label l'(s): blank (C - 1) at even s, labels[(s - 1) / 2] at odd s, S = 2 L_b + 1
 *   alpha_0 = [lsm(0, blank), lsm(0, l'(1)), -inf...]
 *   alpha_t(s) = lse(lse(alpha_{t-1}(s), alpha_{t-1}(s-1)), alpha_{t-1}(s-2) [when l'(s) is not the
 *                blank and differs from l'(s-2)]) + lsm(t, l'(s))
 *   loss = -lse(alpha_{T-1}(S-1), alpha_{T-1}(S-2))     (T = input_length[b]; T = 0: 0 or +inf)
 *   beta mirrors alpha from t = T - 1 (both include the emission at t), and
 *   grad[t, c] = dy * exp(lsm(t, c)) - dy * sum_{s ascending, l'(s) = c} exp(alpha_t(s) + beta_t(s)
 *                - lsm(t, l'(s)) + loss)   for t < T; 0 for t >= T and for an impossible sample.
 * lse(a, b) = max + log1p(exp(-|a - b|)), -inf when both are -inf, NaN when either is NaN.
 * (The CUDA kernel sums the blank's positions by a fixed-order block reduction instead of in
 * ascending s: the same sum up to rounding, deterministic on both devices.)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/dtype.h"
#include "cpu/cpu_common.h"
#include "cpu/cpu_kernels.h"

static int64_t ld_int(const kb_buf *b, int64_t i) {
    return b->dtype == KB_INT32 ? (int64_t)((const int32_t *)b->data)[i] : ((const int64_t *)b->data)[i];
}

static double lse2(double a, double b) {
    if (a != a || b != b) return a + b;
    double m = a > b ? a : b;
    if (m == -INFINITY) return -INFINITY;
    return m + log1p(exp(-fabs(a - b)));
}

/* ---- ctc_sparse_part ---- */

kb_status kb_cpu_ctc_sparse_part(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)ex; (void)n_in;
    int64_t B = in[0].shape[0], M = in[0].shape[1], total = 0;
    for (int64_t b = 0; b < B; ++b) {
        int64_t n = ld_int(&in[1], b);
        total += n < 0 ? 0 : n > M ? M : n;
    }
    int64_t off = 0; /* kept entries before row b */
    size_t es = in[0].dtype == KB_INT32 || in[0].dtype == KB_FLOAT32 ? 4 : 8;
    for (int64_t b = 0; b < B; ++b) {
        int64_t n = ld_int(&in[1], b);
        n = n < 0 ? 0 : n > M ? M : n;
        for (int64_t j = 0; j < M; ++j) {
            int64_t k = j < n ? off + j : total + b * M - off + (j - n);
            if (a->i64[0] == 0) {
                ((int64_t *)out->data)[2 * k] = b;
                ((int64_t *)out->data)[2 * k + 1] = j;
            } else if (j < n) {
                memcpy((char *)out->data + (size_t)k * es, (const char *)in[0].data + (size_t)(b * M + j) * es, es);
            } else {
                memset((char *)out->data + (size_t)k * es, 0, es); /* 0 of every dtype */
            }
        }
        off += n;
    }
    return KB_OK;
}

/* ---- data checks shared by the loss kernels ---- */

static kb_status check_sample(const kb_exec *ex, const kb_buf *in, int64_t b, int64_t *Tb, int64_t *Lb) {
    int64_t T = in[0].shape[1], C = in[0].shape[2], L = in[1].shape[1];
    int64_t t = ld_int(&in[2], b), l = ld_int(&in[3], b);
    if (t < 0 || t > T)
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: input_length[%lld] = %lld is outside [0, %lld] (the time steps of y_pred)",
                            ex->op, (long long)b, (long long)t, (long long)T);
    if (l < 0)
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: label_length[%lld] = %lld is negative", ex->op, (long long)b,
                            (long long)l);
    if (l > L) l = L;
    for (int64_t j = 0; j < l; ++j) {
        int64_t v = ld_int(&in[1], b * L + j);
        if (v < 0 || v >= C - 1)
            return kb_set_error(KB_ERR_INVALID_ARGUMENT,
                                "%s: y_true[%lld, %lld] = %lld is not a label in [0, %lld) (the blank is num_classes - 1 = %lld)",
                                ex->op, (long long)b, (long long)j, (long long)v, (long long)(C - 1), (long long)(C - 1));
    }
    *Tb = t;
    *Lb = l;
    return KB_OK;
}

/* One sample's work space. */
typedef struct ctc_ws {
    int64_t T, C, S, Tb, blank;
    const kb_buf *z;
    int64_t zoff;   /* offset of z[b, 0, 0] */
    int64_t *ext;   /* S extended labels */
    double *lse;    /* Tb row log-sum-exps */
    double *alpha;  /* Tb x S (grad) or 2 x S (loss) */
} ctc_ws;

static double lsm(const ctc_ws *w, int64_t t, int64_t c) {
    return kb_load_f64(w->z->data, w->z->dtype, w->zoff + t * w->C + c) - w->lse[t];
}

static void row_lse(ctc_ws *w) {
    for (int64_t t = 0; t < w->Tb; ++t) {
        const int64_t base = w->zoff + t * w->C;
        double m = kb_load_f64(w->z->data, w->z->dtype, base);
        for (int64_t c = 1; c < w->C; ++c) {
            double v = kb_load_f64(w->z->data, w->z->dtype, base + c);
            if (v > m || v != v) m = v;
            if (m != m) break;
        }
        double s = 0.0;
        for (int64_t c = 0; c < w->C; ++c) s += exp(kb_load_f64(w->z->data, w->z->dtype, base + c) - m);
        w->lse[t] = m + log(s);
    }
}

/* alpha rows; keep_all: row t at alpha + t S, else rows alternate in alpha[0..2S). Returns -loss. */
static double forward(ctc_ws *w, int keep_all) {
    const int64_t S = w->S;
    if (w->Tb == 0) return S == 1 ? 0.0 : -INFINITY;
    double *cur = w->alpha;
    for (int64_t s = 0; s < S; ++s) cur[s] = s < 2 ? lsm(w, 0, w->ext[s]) : -INFINITY;
    for (int64_t t = 1; t < w->Tb; ++t) {
        double *prev = cur;
        cur = keep_all ? w->alpha + t * S : w->alpha + (t & 1) * S;
        for (int64_t s = 0; s < S; ++s) {
            double v = prev[s];
            if (s >= 1) v = lse2(v, prev[s - 1]);
            if (s >= 2 && w->ext[s] != w->blank && w->ext[s] != w->ext[s - 2]) v = lse2(v, prev[s - 2]);
            cur[s] = v + lsm(w, t, w->ext[s]);
        }
    }
    return S >= 2 ? lse2(cur[S - 1], cur[S - 2]) : cur[S - 1];
}

/* Set up sample b; *ok = 0 on a host allocation failure. */
static kb_status setup(ctc_ws *w, const kb_exec *ex, const kb_buf *in, int64_t b, int keep_all) {
    int64_t Lb = 0;
    KB_TRY(check_sample(ex, in, b, &w->Tb, &Lb));
    w->z = &in[0];
    w->T = in[0].shape[1];
    w->C = in[0].shape[2];
    w->blank = w->C - 1;
    w->S = 2 * Lb + 1;
    w->zoff = b * w->T * w->C;
    int64_t rows = keep_all ? (w->Tb > 0 ? w->Tb : 1) : 2;
    w->ext = (int64_t *)malloc((size_t)w->S * sizeof(int64_t));
    w->lse = (double *)malloc((size_t)(w->Tb + 1) * sizeof(double));
    w->alpha = (double *)malloc((size_t)(rows * w->S) * sizeof(double));
    if (!w->ext || !w->lse || !w->alpha)
        return kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: host allocation of %lld bytes failed", ex->op,
                            (long long)((rows * w->S + w->Tb + 1) * 8 + w->S * 8));
    const int64_t L = in[1].shape[1];
    for (int64_t s = 0; s < w->S; ++s) w->ext[s] = (s & 1) ? ld_int(&in[1], b * L + (s - 1) / 2) : w->blank;
    row_lse(w);
    return KB_OK;
}

static void release(ctc_ws *w) {
    free(w->ext);
    free(w->lse);
    free(w->alpha);
    memset(w, 0, sizeof *w);
}

kb_status kb_cpu_ctc_loss(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)a; (void)n_in;
    const int64_t B = in[0].shape[0];
    for (int64_t b = 0; b < B; ++b) {
        ctc_ws w;
        memset(&w, 0, sizeof w);
        kb_status st = setup(&w, ex, in, b, 0);
        if (st == KB_OK) kb_store_f64(out->data, out->dtype, b, -forward(&w, 0));
        release(&w);
        if (st != KB_OK) return st;
    }
    return KB_OK;
}

kb_status kb_cpu_ctc_loss_grad(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)a; (void)n_in;
    const int64_t B = in[0].shape[0], T = in[0].shape[1], C = in[0].shape[2];
    for (int64_t b = 0; b < B; ++b) {
        ctc_ws w;
        memset(&w, 0, sizeof w);
        kb_status st = setup(&w, ex, in, b, 1);
        const int64_t S = w.S, obase = b * T * C;
        double *beta = NULL, *post = NULL;
        unsigned char *present = NULL;
        if (st == KB_OK) {
            beta = (double *)malloc((size_t)(2 * S) * sizeof(double));
            post = (double *)malloc((size_t)C * sizeof(double));
            present = (unsigned char *)calloc((size_t)C, 1);
            if (!beta || !post || !present)
                st = kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: host allocation of %lld bytes failed", ex->op,
                                  (long long)(16 * S + 9 * C));
        }
        if (st != KB_OK) {
            free(beta), free(post), free(present);
            release(&w);
            return st;
        }
        const double dy = kb_load_f64(in[4].data, in[4].dtype, b);
        const double loss = -forward(&w, 1);
        for (int64_t i = 0; i < T * C; ++i) kb_store_f64(out->data, out->dtype, obase + i, 0.0);
        if (w.Tb > 0 && loss != INFINITY) {
            for (int64_t s = 0; s < S; ++s) present[w.ext[s]] = 1;
            double *cur = beta, *nxt = beta + S;
            for (int64_t t = w.Tb - 1; t >= 0; --t) {
                for (int64_t s = 0; s < S; ++s) {
                    double v;
                    if (t == w.Tb - 1) {
                        v = s >= S - 2 ? 0.0 : -INFINITY;
                    } else {
                        v = nxt[s];
                        if (s + 1 < S) v = lse2(v, nxt[s + 1]);
                        if (s + 2 < S && w.ext[s] != w.blank && w.ext[s + 2] != w.ext[s]) v = lse2(v, nxt[s + 2]);
                    }
                    cur[s] = v + lsm(&w, t, w.ext[s]);
                }
                for (int64_t c = 0; c < C; ++c) post[c] = 0.0;
                for (int64_t s = 0; s < S; ++s)
                    post[w.ext[s]] += exp(w.alpha[t * S + s] + cur[s] - lsm(&w, t, w.ext[s]) + loss);
                for (int64_t c = 0; c < C; ++c) {
                    double g = dy * exp(lsm(&w, t, c));
                    if (present[c]) g = g - dy * post[c];
                    kb_store_f64(out->data, out->dtype, obase + t * C + c, g);
                }
                double *tmp = cur;
                cur = nxt;
                nxt = tmp;
            }
        }
        free(beta), free(post), free(present);
        release(&w);
    }
    return KB_OK;
}

/* ---- greedy decoding ---- */

kb_status kb_cpu_ctc_greedy_decode(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    const int64_t B = in[0].shape[0], T = in[0].shape[1], C = in[0].shape[2];
    for (int64_t b = 0; b < B; ++b) {
        int64_t Tb = ld_int(&in[1], b), k = 0, prev = -1;
        if (Tb < 0 || Tb > T)
            return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: input_length[%lld] = %lld is outside [0, %lld] (the time steps of y_pred)",
                                ex->op, (long long)b, (long long)Tb, (long long)T);
        double acc = 0.0;
        for (int64_t t = 0; t < Tb; ++t) {
            const int64_t base = (b * T + t) * C;
            int64_t best = 0;
            double bv = kb_load_f64(in[0].data, in[0].dtype, base);
            for (int64_t c = 1; c < C; ++c) {
                double v = kb_load_f64(in[0].data, in[0].dtype, base + c);
                if (v > bv) bv = v, best = c;
            }
            acc += -bv;
            if (a->i64[0] == 0 && best != C - 1 && best != prev) ((int64_t *)out->data)[b * T + k++] = best;
            prev = best;
        }
        if (a->i64[0] == 0)
            for (; k < T; ++k) ((int64_t *)out->data)[b * T + k] = -1;
        else
            kb_store_f64(out->data, out->dtype, b, acc);
    }
    return KB_OK;
}

/* ---- beam search (TF's CTCBeamSearchDecoder with the default scorer) ----
 * A prefix tree of label sequences; each entry has P(prefix ending in a blank / in its last label)
 * at the previous (old) and the current (new) step. At each step the beam's entries are
 * updated, then every candidate entry of the previous beam is extended by every non-blank label;
 * the beam keeps the beam_width most probable entries (a full beam drops its least probable). */

typedef struct bprob {
    double total, blank, label;
} bprob;

typedef struct bentry {
    int64_t parent, label, first_child, next_sibling;
    bprob oldp, newp;
} bentry;

typedef struct beam {
    bentry *e;
    int64_t n, cap;
    int64_t *leaves, n_leaves, width;
} beam;

static const bprob kZero = {-INFINITY, -INFINITY, -INFINITY};

static int64_t new_entry(beam *bm, int64_t parent, int64_t label) {
    if (bm->n == bm->cap) {
        int64_t cap = bm->cap ? 2 * bm->cap : 256;
        bentry *e = (bentry *)realloc(bm->e, (size_t)cap * sizeof *e);
        if (!e) return -1;
        bm->e = e;
        bm->cap = cap;
    }
    bentry *x = &bm->e[bm->n];
    x->parent = parent;
    x->label = label;
    x->first_child = x->next_sibling = -1;
    x->oldp = x->newp = kZero;
    if (parent >= 0) {
        x->next_sibling = bm->e[parent].first_child;
        bm->e[parent].first_child = bm->n;
    }
    return bm->n++;
}

static int64_t get_child(beam *bm, int64_t p, int64_t label) {
    for (int64_t c = bm->e[p].first_child; c >= 0; c = bm->e[c].next_sibling)
        if (bm->e[c].label == label) return c;
    return new_entry(bm, p, label);
}

/* Index in leaves of the least probable entry (the first one on ties). */
static int64_t bottom(const beam *bm) {
    int64_t k = 0;
    for (int64_t i = 1; i < bm->n_leaves; ++i)
        if (bm->e[bm->leaves[i]].newp.total < bm->e[bm->leaves[k]].newp.total) k = i;
    return k;
}

static int candidate(const beam *bm, const bprob *p) {
    return p->total > -INFINITY &&
           (bm->n_leaves < bm->width || p->total > bm->e[bm->leaves[bottom(bm)]].newp.total);
}

/* leaves sorted by descending new total (ties: lower entry id first); insertion sort, n <= beam_width. */
static void sort_leaves(const beam *bm, int64_t *v, int64_t n) {
    for (int64_t i = 1; i < n; ++i) {
        int64_t x = v[i], j = i - 1;
        while (j >= 0) {
            double tj = bm->e[v[j]].newp.total, tx = bm->e[x].newp.total;
            if (tj > tx || (tj == tx && v[j] < x)) break;
            v[j + 1] = v[j];
            --j;
        }
        v[j + 1] = x;
    }
}

static kb_status beam_sample(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int64_t b, int64_t Tb, beam *bm,
                             int64_t *branches, double *lp, kb_buf *out) {
    const int64_t T = in[0].shape[1], C = in[0].shape[2], blank = C - 1, K = a->i64[1];
    const int merge = a->i64[2] != 0;
    bm->n = 0;
    bm->n_leaves = 0;
    int64_t root = new_entry(bm, -1, -1);
    if (root < 0) return kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: beam search: host allocation failed", ex->op);
    bm->e[root].newp.total = 0.0;
    bm->e[root].newp.blank = 0.0;
    bm->leaves[bm->n_leaves++] = root;
    for (int64_t t = 0; t < Tb; ++t) {
        const int64_t base = (b * T + t) * C;
        double m = kb_load_f64(in[0].data, in[0].dtype, base), s = 0.0;
        for (int64_t c = 1; c < C; ++c) {
            double v = kb_load_f64(in[0].data, in[0].dtype, base + c);
            if (v > m) m = v;
        }
        for (int64_t c = 0; c < C; ++c) s += exp(kb_load_f64(in[0].data, in[0].dtype, base + c) - m);
        const double norm = log(s);
        for (int64_t c = 0; c < C; ++c) lp[c] = (kb_load_f64(in[0].data, in[0].dtype, base + c) - m) - norm;
        int64_t nb = bm->n_leaves;
        memcpy(branches, bm->leaves, (size_t)nb * sizeof *branches);
        sort_leaves(bm, branches, nb);
        bm->n_leaves = 0;
        for (int64_t i = 0; i < nb; ++i) bm->e[branches[i]].oldp = bm->e[branches[i]].newp;
        for (int64_t i = 0; i < nb; ++i) {
            bentry *e = &bm->e[branches[i]];
            if (e->parent >= 0) {
                const bentry *p = &bm->e[e->parent];
                if (p->newp.total != -INFINITY) {
                    double previous = e->label == p->label ? p->oldp.blank : p->oldp.total;
                    e->newp.label = lse2(e->newp.label, previous);
                }
                e->newp.label += lp[e->label];
            }
            e->newp.blank = e->oldp.total + lp[blank];
            e->newp.total = lse2(e->newp.blank, e->newp.label);
            bm->leaves[bm->n_leaves++] = branches[i];
        }
        for (int64_t i = 0; i < nb; ++i) {
            const int64_t bi = branches[i];
            if (!candidate(bm, &bm->e[bi].oldp)) continue;
            for (int64_t c = 0; c < C; ++c) {
                if (c == blank) continue;
                int64_t ci = get_child(bm, bi, c);
                if (ci < 0) return kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: beam search: host allocation failed", ex->op);
                bentry *ch = &bm->e[ci];
                const bentry *pe = &bm->e[bi];
                if (ch->newp.total != -INFINITY) continue; /* already in the beam */
                ch->newp.blank = -INFINITY;
                double previous = c == pe->label ? pe->oldp.blank : pe->oldp.total;
                ch->newp.label = lp[c] + previous;
                ch->newp.total = ch->newp.label;
                if (candidate(bm, &ch->newp)) {
                    if (bm->n_leaves == bm->width) {
                        int64_t k = bottom(bm);
                        bm->e[bm->leaves[k]].newp = kZero;
                        bm->leaves[k] = bm->leaves[--bm->n_leaves];
                    }
                    bm->leaves[bm->n_leaves++] = ci;
                } else {
                    ch->oldp = kZero;
                    ch->newp = kZero;
                }
            }
        }
    }
    sort_leaves(bm, bm->leaves, bm->n_leaves);
    double *o = (double *)out->data + b * K * (T + 1);
    for (int64_t k = 0; k < K; ++k) {
        double *row = o + k * (T + 1);
        for (int64_t i = 0; i <= T; ++i) row[i] = -1.0;
        if (k >= bm->n_leaves) { /* fewer beams than top_paths (TF: an error) */
            row[0] = -INFINITY;
            continue;
        }
        const bentry *e = &bm->e[bm->leaves[k]];
        row[0] = e->newp.total;
        int64_t n = 0, prev = -1;
        for (const bentry *c = e; c->parent >= 0; c = &bm->e[c->parent]) {
            if (!merge || c->label != prev) ++n;
            prev = c->label;
        }
        int64_t i = n;
        prev = -1;
        for (const bentry *c = e; c->parent >= 0; c = &bm->e[c->parent]) {
            if (!merge || c->label != prev) row[i--] = (double)c->label;
            prev = c->label;
        }
    }
    return KB_OK;
}

kb_status kb_cpu_ctc_beam_search(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    const int64_t B = in[0].shape[0], T = in[0].shape[1], C = in[0].shape[2];
    for (int64_t b = 0; b < B; ++b) {
        int64_t Tb = ld_int(&in[1], b);
        if (Tb < 0 || Tb > T)
            return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: input_length[%lld] = %lld is outside [0, %lld] (the time steps of y_pred)",
                                ex->op, (long long)b, (long long)Tb, (long long)T);
    }
    beam bm;
    memset(&bm, 0, sizeof bm);
    bm.width = a->i64[0];
    bm.leaves = (int64_t *)malloc((size_t)(bm.width + 1) * sizeof(int64_t));
    int64_t *branches = (int64_t *)malloc((size_t)(bm.width + 1) * sizeof(int64_t));
    double *lp = (double *)malloc((size_t)C * sizeof(double));
    kb_status st = bm.leaves && branches && lp
                       ? KB_OK
                       : kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: beam search: host allocation failed", ex->op);
    for (int64_t b = 0; b < B && st == KB_OK; ++b) st = beam_sample(ex, a, in, b, ld_int(&in[1], b), &bm, branches, lp, out);
    free(bm.e);
    free(bm.leaves);
    free(branches);
    free(lp);
    return st;
}
