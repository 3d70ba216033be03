/* CPU kernels of the rnn family (fused recurrent layers (cuDNN LSTM / GRU / simple RNN over a sequence, CPU twin)).
 * Math, packed layouts and attributes: ops/rnn.c.
 *
 * The parity reference of cuDNN's cells, written for clarity: inputs are widened to float64, the
 * input projection of every step is one CBLAS GEMM (B*T, I) x (I, G*U) before the loop, each step
 * adds one (B, U) x (U, G*U) GEMM for the recurrent part, then the gates in plain loops; results
 * are rounded once to the output dtype. The forward keeps the gate activations (and the LSTM
 * cells / the GRU's h . R_h + bR_h) in its pack's reserve blocks; backward-data reads them, runs the
 * step recurrence backwards to get the pre-activation gradients of every step (dXP for the input
 * projection, dHP for the recurrent one; they differ only in the GRU's h gate, where
 * dHP_h = r * dXP_h), dx = dXP . kernel^T, and keeps dXP / dHP in its own reserve blocks;
 * backward-weights reads them: dkernel = x^T . dXP, drecurrent_kernel = h_prev^T . dHP,
 * dbias = column sums of dXP and dHP. (The kept values are rounded to the pack's dtype.)
 * Row index of every (B*T, .) matrix: b * T + t (x's batch-major order). */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "cpu/cpu_common.h"
#include "cpu/cpu_kernels.h"
#include "ops/rnn_layout.h"

enum { MODE_LSTM = 0, MODE_GRU = 1, MODE_TANH = 2, MODE_RELU = 3 }; /* attrs.i64[0], ops/rnn.c */
enum { FWD = 0, BWD_DATA = 1, BWD_WEIGHTS = 2 };

typedef struct {
    int mode, G, kH, has_h0, has_c0;
    int64_t B, T, In, U, GU, BT; /* In = input_dim (I is complex.h's macro) */
} geom;

typedef struct {
    double *x, *h0, *c0, *K, *R, *bias, *dy; /* inputs widened to float64 (h0 / c0 NULL: zeros) */
    double *act;                             /* (BT, GU) gate activations (LSTM i f g o, GRU z r hh, RNN h) */
    double *hs, *cs;                         /* (BT, U) h_t, c_t (LSTM) */
    double *hph;                             /* (BT, U) GRU: h . R_h + bR_h of each step */
    double *hp;                              /* (B, GU) recurrent projection of one step */
} state;

static double sigm(double v) { return 1.0 / (1.0 + exp(-v)); }

static double *widen(const kb_buf *b, int64_t n) {
    double *p = (double *)malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    if (p && n > 0) kb_convert(b->data, b->dtype, p, KB_FLOAT64, n);
    return p;
}

static double *zalloc(int64_t n) { return (double *)calloc((size_t)(n > 0 ? n : 1), sizeof(double)); }

static void free_state(state *s) {
    double *p[] = {s->x, s->h0, s->c0, s->K, s->R, s->bias, s->dy, s->act, s->hs, s->cs, s->hph, s->hp};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; ++i) free(p[i]);
}

/* h_{t-1}[b, u] (t = 0: h0 or zeros); same for c. */
static double h_prev(const geom *g, const state *s, int64_t b, int64_t t, int64_t u) {
    if (t > 0) return s->hs[(b * g->T + t - 1) * g->U + u];
    return s->h0 ? s->h0[b * g->U + u] : 0.0;
}
static double c_prev(const geom *g, const state *s, int64_t b, int64_t t, int64_t u) {
    if (t > 0) return s->cs[(b * g->T + t - 1) * g->U + u];
    return s->c0 ? s->c0[b * g->U + u] : 0.0;
}

/* The forward recurrence: fills act, hs, cs, hph. */
static void forward(const geom *g, state *s) {
    int64_t B = g->B, T = g->T, U = g->U, GU = g->GU;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g->BT, (int)GU, (int)g->In, 1.0, s->x, (int)g->In, s->K,
                (int)GU, 0.0, s->act, (int)GU);
    for (int64_t r = 0; r < g->BT; ++r)
        for (int64_t j = 0; j < GU; ++j) s->act[r * GU + j] += s->bias[j];
    const double *bR = s->bias + GU;
    for (int64_t t = 0; t < T; ++t) {
        for (int64_t b = 0; b < B; ++b) memcpy(s->hp + b * GU, bR, (size_t)GU * sizeof(double));
        const double *hprev = t > 0 ? s->hs + (t - 1) * U : s->h0;
        int ld = (int)(t > 0 ? T * U : U);
        if (hprev)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)GU, (int)U, 1.0, hprev, ld, s->R,
                        (int)GU, 1.0, s->hp, (int)GU);
#pragma omp parallel for if (B * GU > KB_OMP_MIN)
        for (int64_t b = 0; b < B; ++b) {
            double *a = s->act + (b * T + t) * GU;
            const double *hp = s->hp + b * GU;
            double *h = s->hs + (b * T + t) * U;
            for (int64_t u = 0; u < U; ++u) {
                if (g->mode == MODE_LSTM) {
                    double i = sigm(a[u] + hp[u]), f = sigm(a[U + u] + hp[U + u]);
                    double gg = tanh(a[2 * U + u] + hp[2 * U + u]), o = sigm(a[3 * U + u] + hp[3 * U + u]);
                    double c = f * c_prev(g, s, b, t, u) + i * gg;
                    a[u] = i;
                    a[U + u] = f;
                    a[2 * U + u] = gg;
                    a[3 * U + u] = o;
                    s->cs[(b * T + t) * U + u] = c;
                    h[u] = o * tanh(c);
                } else if (g->mode == MODE_GRU) {
                    double z = sigm(a[u] + hp[u]), r = sigm(a[U + u] + hp[U + u]);
                    double hh = tanh(a[2 * U + u] + r * hp[2 * U + u]);
                    a[u] = z;
                    a[U + u] = r;
                    a[2 * U + u] = hh;
                    s->hph[(b * T + t) * U + u] = hp[2 * U + u];
                    h[u] = z * h_prev(g, s, b, t, u) + (1.0 - z) * hh;
                } else {
                    double v = a[u] + hp[u];
                    h[u] = g->mode == MODE_TANH ? tanh(v) : (v > 0.0 ? v : 0.0);
                    a[u] = h[u];
                }
            }
        }
    }
}

/* The backward recurrence: dXP, dHP (BT, GU) (dHP may be dXP for LSTM / RNN), dh0, dc0 (B, U). */
static void backward(const geom *g, const state *s, double *dXP, double *dHP, double *dh, double *dc) {
    int64_t B = g->B, T = g->T, U = g->U, GU = g->GU, rows = g->kH + T;
    for (int64_t b = 0; b < B; ++b)
        for (int64_t u = 0; u < U; ++u) {
            dh[b * U + u] = s->dy[(b * rows) * U + u];
            dc[b * U + u] = g->mode == MODE_LSTM ? s->dy[(b * rows + 1) * U + u] : 0.0;
        }
    for (int64_t t = T - 1; t >= 0; --t) {
#pragma omp parallel for if (B * GU > KB_OMP_MIN)
        for (int64_t b = 0; b < B; ++b) {
            const double *a = s->act + (b * T + t) * GU;
            double *dx = dXP + (b * T + t) * GU, *dr = dHP + (b * T + t) * GU;
            for (int64_t u = 0; u < U; ++u) {
                double d = dh[b * U + u] + s->dy[(b * rows + g->kH + t) * U + u];
                if (g->mode == MODE_LSTM) {
                    double i = a[u], f = a[U + u], gg = a[2 * U + u], o = a[3 * U + u];
                    double tc = tanh(s->cs[(b * T + t) * U + u]);
                    double dct = dc[b * U + u] + d * o * (1.0 - tc * tc);
                    dx[u] = dct * gg * i * (1.0 - i);
                    dx[U + u] = dct * c_prev(g, s, b, t, u) * f * (1.0 - f);
                    dx[2 * U + u] = dct * i * (1.0 - gg * gg);
                    dx[3 * U + u] = d * tc * o * (1.0 - o);
                    dc[b * U + u] = dct * f;
                    dh[b * U + u] = 0.0;
                } else if (g->mode == MODE_GRU) {
                    double z = a[u], r = a[U + u], hh = a[2 * U + u], hph = s->hph[(b * T + t) * U + u];
                    double dah = d * (1.0 - z) * (1.0 - hh * hh);
                    double dar = dah * hph * r * (1.0 - r);
                    double daz = d * (h_prev(g, s, b, t, u) - hh) * z * (1.0 - z);
                    dx[u] = dr[u] = daz;
                    dx[U + u] = dr[U + u] = dar;
                    dx[2 * U + u] = dah;
                    dr[2 * U + u] = dah * r;
                    dh[b * U + u] = d * z; /* the direct path h' = z h + ... */
                } else {
                    double h = s->hs[(b * T + t) * U + u];
                    dx[u] = d * (g->mode == MODE_TANH ? 1.0 - h * h : (h > 0.0 ? 1.0 : 0.0));
                    dh[b * U + u] = 0.0;
                }
            }
        }
        /* dh_{t-1} += dHP_t . R^T */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)U, (int)GU, 1.0, dHP + t * GU, (int)(T * GU),
                    s->R, (int)GU, 1.0, dh, (int)U);
    }
}

static int fits(int64_t v) { return v >= 0 && v <= INT_MAX; }

/* b-major (B*T, U) rows kH.. of block 0 of a widened (., B, kH + T, U) pack. */
static void rows_of_pack(const geom *g, const double *pk, double *hs) {
    int64_t rows = g->kH + g->T;
    for (int64_t b = 0; b < g->B; ++b)
        memcpy(hs + b * g->T * g->U, pk + (b * rows + g->kH) * g->U, (size_t)(g->T * g->U) * sizeof(double));
}

static kb_status run(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, kb_buf *out, int which) {
    geom g;
    g.mode = (int)a->i64[0];
    g.G = g.mode == MODE_LSTM ? 4 : g.mode == MODE_GRU ? 3 : 1;
    g.kH = g.mode == MODE_LSTM ? 2 : 1;
    g.has_h0 = a->i64[1] != 0;
    g.has_c0 = a->i64[2] != 0 && g.mode == MODE_LSTM;
    g.B = in[0].shape[0];
    g.T = in[0].shape[1];
    g.In = in[0].shape[2];
    g.U = in[4].shape[0];
    g.GU = g.G * g.U;
    g.BT = g.B * g.T;
    memset(out->data, 0, (size_t)out->size * kb_dtype_size(out->dtype));
    if (g.BT == 0) return KB_OK;
    const int64_t dims[] = {g.BT, g.In, g.U, g.GU, g.T * g.GU, g.T * g.U};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; ++i)
        if (!fits(dims[i]))
            return kb_set_error(KB_ERR_NOT_SUPPORTED, "%s: CBLAS takes int sizes; a GEMM dimension is %lld", ex->op,
                                (long long)dims[i]);
    kb_rnn_layout L;
    kb_rnn_layout_of(g.mode, g.B, g.T, g.In, g.U, &L);
    int64_t rows = L.rows, W = L.W;
    int64_t blk_f = L.blk_f, blk_d = L.blk_d; /* block sizes of the two packs */
    /* the packs the plan allocated must be the layout this kernel indexes (ops/rnn_layout.h) */
    int64_t want_out = which == FWD ? L.size_f : which == BWD_DATA ? L.size_d : L.size_w;
    if (out->size != want_out || (which != FWD && in[6].size != L.size_f) ||
        (which != FWD && in[7].size != (which == BWD_DATA ? L.size_f : L.size_d)))
        return kb_set_error(KB_ERR_INTERNAL,
                            "%s: packed recurrent buffers do not match the layout (output %lld, want %lld; inputs "
                            "6 / 7: %lld / %lld)",
                            ex->op, (long long)out->size, (long long)want_out, (long long)(which != FWD ? in[6].size : 0),
                            (long long)(which != FWD ? in[7].size : 0));
    state s;
    memset(&s, 0, sizeof s);
    kb_status st = KB_OK;
    double *dXP = NULL, *dHP = NULL, *dh = NULL, *dc = NULL, *res = NULL, *pk = NULL, *dpk = NULL;
    s.x = widen(&in[0], g.BT * g.In);
    s.h0 = g.has_h0 ? widen(&in[1], g.B * g.U) : NULL;
    s.c0 = g.has_c0 ? widen(&in[2], g.B * g.U) : NULL;
    s.K = widen(&in[3], g.In * g.GU);
    s.R = widen(&in[4], g.U * g.GU);
    s.bias = widen(&in[5], 2 * g.GU);
    s.hs = zalloc(g.BT * g.U);
    res = zalloc(out->size);
    if (!s.x || (g.has_h0 && !s.h0) || (g.has_c0 && !s.c0) || !s.K || !s.R || !s.bias || !s.hs || !res) goto oom;
    if (which == FWD) {
        /* the reserve blocks hold the activations the backward ops read */
        s.act = res + blk_f;
        s.cs = g.mode == MODE_LSTM ? s.act + g.BT * g.GU : NULL;
        s.hph = g.mode == MODE_GRU ? s.act + g.BT * g.GU : NULL;
        s.hp = zalloc(g.B * g.GU);
        if (!s.hp) goto oom;
        forward(&g, &s);
        for (int64_t b = 0; b < g.B; ++b) {
            double *o = res + b * rows * g.U;
            memcpy(o, s.hs + (b * g.T + g.T - 1) * g.U, (size_t)g.U * sizeof(double));
            if (g.mode == MODE_LSTM) memcpy(o + g.U, s.cs + (b * g.T + g.T - 1) * g.U, (size_t)g.U * sizeof(double));
            memcpy(o + g.kH * g.U, s.hs + b * g.T * g.U, (size_t)(g.T * g.U) * sizeof(double));
        }
    } else if (which == BWD_DATA) {
        pk = widen(&in[6], in[6].size);
        s.dy = widen(&in[7], blk_f); /* block 0 of dpack */
        dh = zalloc(g.B * g.U);
        dc = zalloc(g.B * g.U);
        double *dx = zalloc(g.BT * g.In);
        if (!pk || !s.dy || !dh || !dc || !dx) {
            free(dx);
            goto oom;
        }
        s.act = pk + blk_f;
        s.cs = g.mode == MODE_LSTM ? s.act + g.BT * g.GU : NULL;
        s.hph = g.mode == MODE_GRU ? s.act + g.BT * g.GU : NULL;
        rows_of_pack(&g, pk, s.hs);
        /* the reserve blocks of the output hold dXP (and dHP for the GRU) for backward-weights */
        dXP = res + blk_d;
        dHP = g.mode == MODE_GRU ? dXP + g.BT * g.GU : dXP;
        backward(&g, &s, dXP, dHP, dh, dc);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)g.BT, (int)g.In, (int)g.GU, 1.0, dXP, (int)g.GU, s.K,
                    (int)g.GU, 0.0, dx, (int)g.In);
        for (int64_t b = 0; b < g.B; ++b) {
            double *o = res + b * rows * W;
            if (g.has_h0) memcpy(o, dh + b * g.U, (size_t)g.U * sizeof(double));
            if (g.has_c0) memcpy(o + W, dc + b * g.U, (size_t)g.U * sizeof(double));
            for (int64_t t = 0; t < g.T; ++t)
                memcpy(o + (g.kH + t) * W, dx + (b * g.T + t) * g.In, (size_t)g.In * sizeof(double));
        }
        free(dx);
    } else {
        pk = widen(&in[6], blk_f);
        dpk = widen(&in[7], in[7].size);
        double *hprev = zalloc(g.BT * g.U);
        if (!pk || !dpk || !hprev) {
            free(hprev);
            goto oom;
        }
        rows_of_pack(&g, pk, s.hs);
        dXP = dpk + blk_d;
        dHP = g.mode == MODE_GRU ? dXP + g.BT * g.GU : dXP;
        for (int64_t b = 0; b < g.B; ++b)
            for (int64_t t = 0; t < g.T; ++t)
                for (int64_t u = 0; u < g.U; ++u) hprev[(b * g.T + t) * g.U + u] = h_prev(&g, &s, b, t, u);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)g.In, (int)g.GU, (int)g.BT, 1.0, s.x, (int)g.In, dXP,
                    (int)g.GU, 0.0, res, (int)g.GU);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)g.U, (int)g.GU, (int)g.BT, 1.0, hprev, (int)g.U, dHP,
                    (int)g.GU, 0.0, res + g.In * g.GU, (int)g.GU);
        free(hprev);
        double *dbW = res + (g.In + g.U) * g.GU, *dbR = dbW + g.GU;
        for (int64_t r = 0; r < g.BT; ++r)
            for (int64_t j = 0; j < g.GU; ++j) {
                dbW[j] += dXP[r * g.GU + j];
                dbR[j] += dHP[r * g.GU + j];
            }
    }
    kb_convert(res, KB_FLOAT64, out->data, out->dtype, out->size);
    goto done;
oom:
    st = kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: out of host memory for the recurrent layer's buffers", ex->op);
done:
    /* act / cs / hph / dXP / dHP point into res, pk or dpk */
    s.act = s.cs = s.hph = NULL;
    free(dh);
    free(dc);
    free(res);
    free(pk);
    free(dpk);
    free_state(&s);
    return st;
}

kb_status kb_cpu_cudnn_rnn(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out) {
    (void)n_in;
    return run(ex, a, in, out, FWD);
}

kb_status kb_cpu_cudnn_rnn_backward_data(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                         kb_buf *out) {
    (void)n_in;
    return run(ex, a, in, out, BWD_DATA);
}

kb_status kb_cpu_cudnn_rnn_backward_weights(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                            kb_buf *out) {
    (void)n_in;
    return run(ex, a, in, out, BWD_WEIGHTS);
}
