/*
 * kb_bench: a fixed table of ops at large sizes, timed on one device through kb's public API only.
 *
 *   kb_bench [--device cuda|cpu] [--rows name,name] [--iters N] [--json out.json] [--small]
 *
 * Every row is a kb_function with no inputs: its operands are kb variables, so after the warm-up
 * calls they live on the device and a call moves no data from the host. Outputs are read once,
 * after timing, and checked against a closed form or a host loop (all elements, or a sample
 * where the reference is costly), so the bench never reports the speed of a wrong answer. CUDA time comes from two cudaEvents recorded on the
 * context's stream around N calls; CPU time from the monotonic clock. Each row is timed
 * `repeats` times and the median per-call time is reported.
 *
 * Throughput: GB/s rows count the bytes the op must read and write at least (formula per row
 * below), so a kernel that moves more than that shows up as a lower figure; TFLOP/s rows count
 * 2*M*N*K. "of copy" divides GB/s by the device-to-device copy bandwidth measured at start
 * (2 x bytes / time of a 1 GiB copy), the practical ceiling of a memory-bound kernel.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, also under -std=c11 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kb/kb.h>

#include "cnn_model.h"  /* examples/: the mnist_cnn model and Adam, shared with the example */
#include "optimizers.h"

#ifdef KB_BENCH_CUDA
#include <cuda_runtime_api.h>
#endif

enum { MSG = 256, MAX_OUT = 5 };

/* ---------------------------------------------------------------------------------------- */
/* Inputs: values are a pure function of (seed, index), so checks recompute them instead of   */
/* keeping gigabytes of host copies.                                                          */
/* ---------------------------------------------------------------------------------------- */

/* splitmix64 finaliser: independent-looking bits for consecutive indices */
static uint64_t mix(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A float in [-1, 1) with 24 significant bits, exactly representable. */
static float val(uint64_t seed, int64_t i) {
    return (float)((double)(mix(seed * 0x100000001b3ull + (uint64_t)i) >> 40) / 8388608.0 - 1.0);
}

typedef struct bench {
    kb_context *ctx;
    kb_device device;
    int small;
    /* sizes (already shrunk by --small) */
    int64_t n;          /* elementwise length */
    int64_t rows, cols; /* reduction / softmax / argmax / cumsum matrix */
    int64_t tn;         /* transpose side */
    int64_t mm;         /* dot side (M = N = K) */
    int64_t bb, bm, bk, bn; /* batch_dot: B, M, K, N */
    int64_t cn, cc, chw, co; /* conv: batch, in channels, height = width, out channels (3x3 kernel) */
    int64_t pn, pc, phw;     /* max pool and batch norm: batch, channels, height = width */
    int64_t ctcb, lb;        /* CTC batch, LSTM batch */
    int64_t cnnb;            /* mnist_cnn training-step batch */
    double first_loss;       /* rows with updates: output 0 of the first call (before any update) */
    /* operands, made on first use so --rows only allocates what it runs */
    kb_tensor *a, *b, *x, *t, *da, *db, *ba, *bbt;
    kb_tensor *cx[2], *ck; /* conv input [channels_last, channels_first], kernel (3, 3, cc, co) */
    kb_tensor *px, *gamma, *beta; /* pool / batch norm input (channels_first), bn scale and offset */
} bench;

enum { SEED_A = 1, SEED_B = 2, SEED_X = 3, SEED_T = 4, SEED_DA = 5, SEED_DB = 6, SEED_BA = 7, SEED_BB = 8,
       SEED_CX = 9, SEED_CK = 10, SEED_PX = 11, SEED_G = 12, SEED_BE = 13, SEED_CY = 14, SEED_LX = 15, SEED_LK = 16,
       SEED_LR = 17, SEED_LB = 18 };
enum { CTC_T = 200, CTC_C = 32, CTC_L = 50 };        /* ctc row: steps, classes (blank last), label length */
enum { LSTM_T = 100, LSTM_I = 512, LSTM_H = 512 };   /* lstm row: steps, input size, units */

static kb_tensor *make_var(bench *B, uint64_t seed, const int64_t *shape, int rank, const char *name) {
    int64_t n = 1;
    for (int d = 0; d < rank; ++d) n *= shape[d];
    float *h = malloc(sizeof(float) * (size_t)n);
    if (!h) return NULL;
    for (int64_t i = 0; i < n; ++i) h[i] = val(seed, i);
    kb_tensor *v = kb_variable(B->ctx, h, sizeof(float) * (size_t)n, KB_FLOAT32, shape, rank, name);
    free(h);
    return v;
}

/* A 4-D image variable holding the logical (n, h, w, c) tensor val(seed, nhwc index) in the given
 * layout, so both data formats see the same numbers and one reference serves both. */
static kb_tensor *make_image(bench *B, uint64_t seed, int64_t N, int64_t HW, int64_t C, int cf, const char *name) {
    int64_t n = N * HW * HW * C, shape[4] = {N, HW, HW, C};
    if (cf) shape[1] = C, shape[2] = HW, shape[3] = HW;
    float *h = malloc(sizeof(float) * (size_t)n);
    if (!h) return NULL;
    for (int64_t i = 0; i < n; ++i) { /* i is the NHWC index */
        int64_t c = i % C, w = i / C % HW, y = i / (C * HW) % HW, b = i / (C * HW * HW);
        h[cf ? ((b * C + c) * HW + y) * HW + w : i] = val(seed, i);
    }
    kb_tensor *v = kb_variable(B->ctx, h, sizeof(float) * (size_t)n, KB_FLOAT32, shape, 4, name);
    free(h);
    return v;
}

static kb_tensor *vec_a(bench *B) {
    if (!B->a) B->a = make_var(B, SEED_A, &B->n, 1, "a");
    return B->a;
}
static kb_tensor *vec_b(bench *B) {
    if (!B->b) B->b = make_var(B, SEED_B, &B->n, 1, "b");
    return B->b;
}
static kb_tensor *mat_x(bench *B) {
    int64_t s[2] = {B->rows, B->cols};
    if (!B->x) B->x = make_var(B, SEED_X, s, 2, "x");
    return B->x;
}
static kb_tensor *mat_t(bench *B) {
    int64_t s[2] = {B->tn, B->tn};
    if (!B->t) B->t = make_var(B, SEED_T, s, 2, "t");
    return B->t;
}
static kb_tensor *dot_a(bench *B) {
    int64_t s[2] = {B->mm, B->mm};
    if (!B->da) B->da = make_var(B, SEED_DA, s, 2, "dot_a");
    return B->da;
}
static kb_tensor *dot_b(bench *B) {
    int64_t s[2] = {B->mm, B->mm};
    if (!B->db) B->db = make_var(B, SEED_DB, s, 2, "dot_b");
    return B->db;
}
static kb_tensor *bat_a(bench *B) {
    int64_t s[3] = {B->bb, B->bm, B->bk};
    if (!B->ba) B->ba = make_var(B, SEED_BA, s, 3, "bd_a");
    return B->ba;
}
static kb_tensor *bat_b(bench *B) {
    int64_t s[3] = {B->bb, B->bk, B->bn};
    if (!B->bbt) B->bbt = make_var(B, SEED_BB, s, 3, "bd_b");
    return B->bbt;
}

static kb_tensor *conv_x(bench *B, int cf) {
    if (!B->cx[cf]) B->cx[cf] = make_image(B, SEED_CX, B->cn, B->chw, B->cc, cf, cf ? "conv_x_cf" : "conv_x");
    return B->cx[cf];
}
static kb_tensor *conv_k(bench *B) {
    int64_t s[4] = {3, 3, B->cc, B->co};
    if (!B->ck) B->ck = make_var(B, SEED_CK, s, 4, "conv_k");
    return B->ck;
}
static kb_tensor *pool_x(bench *B) {
    if (!B->px) B->px = make_image(B, SEED_PX, B->pn, B->phw, B->pc, 1, "pool_x");
    return B->px;
}

/* ---------------------------------------------------------------------------------------- */
/* Rows                                                                                       */
/* ---------------------------------------------------------------------------------------- */

enum { SH_VEC, SH_MAT, SH_SQUARE, SH_DOT, SH_BATCH, SH_CONV, SH_POOL, SH_CTC, SH_LSTM, SH_CNN };

/* The row's sizes for the table and the JSON, e.g. "65536x1024" (what --small actually ran). */
static void shape_str(const bench *B, int sh, char *buf, size_t len) {
    switch (sh) {
    case SH_VEC: snprintf(buf, len, "%lld", (long long)B->n); break;
    case SH_MAT: snprintf(buf, len, "%lldx%lld", (long long)B->rows, (long long)B->cols); break;
    case SH_SQUARE: snprintf(buf, len, "%lldx%lld", (long long)B->tn, (long long)B->tn); break;
    case SH_DOT: snprintf(buf, len, "%lldx%lldx%lld", (long long)B->mm, (long long)B->mm, (long long)B->mm); break;
    case SH_BATCH:
        snprintf(buf, len, "%lldx%lldx%lldx%lld", (long long)B->bb, (long long)B->bm, (long long)B->bk, (long long)B->bn);
        break;
    case SH_CONV: /* N x C x H x W -> O (3x3, 'same') */
        snprintf(buf, len, "%lldx%lldx%lldx%lld->%lld", (long long)B->cn, (long long)B->cc, (long long)B->chw,
                 (long long)B->chw, (long long)B->co);
        break;
    case SH_POOL:
        snprintf(buf, len, "%lldx%lldx%lldx%lld", (long long)B->pn, (long long)B->pc, (long long)B->phw, (long long)B->phw);
        break;
    case SH_CTC: /* T, B, C, label length */
        snprintf(buf, len, "T%dxB%lldxC%dxL%d", CTC_T, (long long)B->ctcb, CTC_C, CTC_L);
        break;
    case SH_LSTM: /* LSTM T, B, in -> units */
        snprintf(buf, len, "T%dxB%lldx%d->%d", LSTM_T, (long long)B->lb, LSTM_I, LSTM_H);
        break;
    default: /* mnist_cnn step: batch of 28x28 images */
        snprintf(buf, len, "B%lldx28x28", (long long)B->cnnb);
    }
}

/* The output the check reads: host pointer plus what the function says it is. */
typedef struct out_view {
    const void *p;
    kb_dtype dt;
    int rank;
    int64_t shape[KB_MAX_RANK];
    size_t nbytes;
} out_view;

typedef struct row {
    const char *name;
    int shape;           /* SH_*: which operand sizes describe the row */
    int flops;           /* 1: amount is flops (TFLOP/s), 0: bytes (GB/s) */
    const char *formula; /* how amount is counted */
    kb_tensor *(*build)(bench *B);
    double (*amount)(const bench *B);
    /* returns 1 when the outputs are right (o[0] is build's, then more's); writes what it found to msg */
    int (*check)(const bench *B, const out_view *o, char *msg);
    int tf32; /* run with kb_set_allow_tf32(ctx, 1) */
    /* optional: further outputs the function computes with y (gradients), MAX_OUT - 1 at most; returns
     * how many, -1 on error */
    int (*more)(bench *B, kb_tensor *y, kb_tensor **more);
    /* optional: the function's updates (a training step), OPT_MAX_UPDATES(CNN_PARAMS) at most; returns how
     * many, -1 on error. Output 0 of the first call is kept in B->first_loss for the check. */
    int (*updates)(bench *B, kb_tensor **upd);
} row;

static const float *f32_out(const out_view *o, int64_t n, const int64_t *shape, int rank, char *msg) {
    if (o->dt != KB_FLOAT32 || o->rank != rank || o->nbytes != sizeof(float) * (size_t)n) {
        snprintf(msg, MSG, "output is %s rank %d, %zu bytes; expected float32 rank %d, %zu bytes",
                 kb_dtype_name(o->dt) ? kb_dtype_name(o->dt) : "?", o->rank, o->nbytes, rank,
                 sizeof(float) * (size_t)n);
        return NULL;
    }
    for (int d = 0; d < rank; ++d)
        if (o->shape[d] != shape[d]) {
            snprintf(msg, MSG, "output dim %d is %lld, expected %lld", d, (long long)o->shape[d], (long long)shape[d]);
            return NULL;
        }
    return (const float *)o->p;
}

/* At most this many rows / entries of the large per-row checks are recomputed on the host. */
enum { CHECK_ROWS = 2048, CHECK_DOT = 256 };

/* 2^-24: unit roundoff of float32. (k - 1) u sum|x| bounds the error of any summation order of
 * k terms, so the checks below use it as their tolerance rather than a guessed constant. */
static const double U32 = 5.9604644775390625e-8;

/* add: reads a and b, writes a + b: 3 * 4 * n bytes. Float addition is exact-rounded on both
 * sides, so the check is equality. */
static kb_tensor *build_add(bench *B) {
    kb_tensor *a = vec_a(B), *b = vec_b(B);
    return a && b ? kb_add(a, b) : NULL;
}
static double amount_vec3(const bench *B) { return 3.0 * 4.0 * (double)B->n; }
static int check_add(const bench *B, const out_view *o, char *msg) {
    const float *y = f32_out(o, B->n, &B->n, 1, msg);
    if (!y) return 0;
    for (int64_t i = 0; i < B->n; ++i) {
        float want = val(SEED_A, i) + val(SEED_B, i);
        if (y[i] != want) {
            snprintf(msg, MSG, "y[%lld] = %.9g, expected %.9g", (long long)i, y[i], want);
            return 0;
        }
    }
    snprintf(msg, MSG, "all %lld elements exact", (long long)B->n);
    return 1;
}

/* chain a*b + exp(a): the bytes a fused kernel must move (read a, b, write y: 3 * 4 * n), so an
 * unfused chain shows as a lower GB/s. Error: mul, expf (<= 2 ulp on CUDA) and add roundings,
 * at most 3 ulp of |ab| + e^a; the check allows 4. */
static kb_tensor *build_chain(bench *B) {
    kb_tensor *a = vec_a(B), *b = vec_b(B);
    if (!a || !b) return NULL;
    kb_tensor *ab = kb_multiply(a, b), *ea = kb_exp(a);
    return ab && ea ? kb_add(ab, ea) : NULL;
}
static int check_chain(const bench *B, const out_view *o, char *msg) {
    const float *y = f32_out(o, B->n, &B->n, 1, msg);
    if (!y) return 0;
    double worst = 0;
    for (int64_t i = 0; i < B->n; ++i) {
        double a = val(SEED_A, i), b = val(SEED_B, i), ea = exp(a);
        double err = fabs(y[i] - (a * b + ea)), tol = 4 * 2 * U32 * (fabs(a * b) + ea);
        if (!(err <= tol)) {
            snprintf(msg, MSG, "y[%lld] = %.9g, expected %.9g", (long long)i, y[i], a * b + ea);
            return 0;
        }
        if (err / tol > worst) worst = err / tol;
    }
    snprintf(msg, MSG, "all %lld elements, worst error %.2f of tolerance", (long long)B->n, worst);
    return 1;
}

/* sum over the last axis: reads the matrix, writes one float per row: 4 * R * C + 4 * R. */
static kb_tensor *build_sum_last(bench *B) {
    kb_tensor *x = mat_x(B);
    int ax = -1;
    return x ? kb_sum(x, &ax, 1, 0) : NULL;
}
static double amount_sum_last(const bench *B) { return 4.0 * (double)(B->rows * B->cols + B->rows); }
static int check_sum_last(const bench *B, const out_view *o, char *msg) {
    const float *y = f32_out(o, B->rows, &B->rows, 1, msg);
    if (!y) return 0;
    int64_t step = B->rows > CHECK_ROWS ? B->rows / CHECK_ROWS : 1;
    for (int64_t r = 0; r < B->rows; r += step) {
        double s = 0, sa = 0;
        for (int64_t c = 0; c < B->cols; ++c) {
            double v = val(SEED_X, r * B->cols + c);
            s += v;
            sa += fabs(v);
        }
        if (!(fabs(y[r] - s) <= (double)B->cols * U32 * sa)) {
            snprintf(msg, MSG, "row %lld: %.9g, expected %.9g", (long long)r, y[r], s);
            return 0;
        }
    }
    snprintf(msg, MSG, "%lld rows within (C-1)u sum|x|", (long long)((B->rows + step - 1) / step));
    return 1;
}

/* sum over the first axis: reads the matrix, writes one float per column: 4 * R * C + 4 * C. */
static kb_tensor *build_sum_first(bench *B) {
    kb_tensor *x = mat_x(B);
    int ax = 0;
    return x ? kb_sum(x, &ax, 1, 0) : NULL;
}
static double amount_sum_first(const bench *B) { return 4.0 * (double)(B->rows * B->cols + B->cols); }
static int check_sum_first(const bench *B, const out_view *o, char *msg) {
    const float *y = f32_out(o, B->cols, &B->cols, 1, msg);
    if (!y) return 0;
    double *s = calloc((size_t)B->cols, sizeof(double)), *sa = calloc((size_t)B->cols, sizeof(double));
    int ok = s && sa;
    if (!ok) snprintf(msg, MSG, "out of host memory for the check");
    for (int64_t r = 0; ok && r < B->rows; ++r)
        for (int64_t c = 0; c < B->cols; ++c) {
            double v = val(SEED_X, r * B->cols + c);
            s[c] += v;
            sa[c] += fabs(v);
        }
    for (int64_t c = 0; ok && c < B->cols; ++c)
        if (!(fabs(y[c] - s[c]) <= (double)B->rows * U32 * sa[c])) {
            snprintf(msg, MSG, "column %lld: %.9g, expected %.9g", (long long)c, y[c], s[c]);
            ok = 0;
        }
    if (ok) snprintf(msg, MSG, "all %lld columns within (R-1)u sum|x|", (long long)B->cols);
    free(s);
    free(sa);
    return ok;
}

/* softmax over the last axis: reads and writes the matrix: 2 * 4 * R * C. Relative error of
 * each y: a few ulp for exp and the division plus the sum's (C-1)u. */
static kb_tensor *build_softmax(bench *B) {
    kb_tensor *x = mat_x(B);
    return x ? kb_softmax(x, -1) : NULL;
}
static double amount_mat2(const bench *B) { return 2.0 * 4.0 * (double)(B->rows * B->cols); }
static int check_softmax(const bench *B, const out_view *o, char *msg) {
    int64_t shape[2] = {B->rows, B->cols};
    const float *y = f32_out(o, B->rows * B->cols, shape, 2, msg);
    if (!y) return 0;
    int64_t step = B->rows > CHECK_ROWS ? B->rows / CHECK_ROWS : 1;
    for (int64_t r = 0; r < B->rows; r += step) {
        double m = -INFINITY, s = 0;
        for (int64_t c = 0; c < B->cols; ++c) m = fmax(m, val(SEED_X, r * B->cols + c));
        for (int64_t c = 0; c < B->cols; ++c) s += exp(val(SEED_X, r * B->cols + c) - m);
        for (int64_t c = 0; c < B->cols; ++c) {
            double want = exp(val(SEED_X, r * B->cols + c) - m) / s;
            if (!(fabs(y[r * B->cols + c] - want) <= (double)(B->cols + 8) * U32 * want)) {
                snprintf(msg, MSG, "y[%lld, %lld] = %.9g, expected %.9g", (long long)r, (long long)c,
                         y[r * B->cols + c], want);
                return 0;
            }
        }
    }
    snprintf(msg, MSG, "%lld rows within (C+8)u relative", (long long)((B->rows + step - 1) / step));
    return 1;
}

/* argmax over the last axis: reads the matrix, writes one int64 per row: 4 * R * C + 8 * R.
 * Exact: the first index of the largest value. */
static kb_tensor *build_argmax(bench *B) {
    kb_tensor *x = mat_x(B);
    return x ? kb_argmax(x, -1) : NULL;
}
static double amount_argmax(const bench *B) { return 4.0 * (double)(B->rows * B->cols) + 8.0 * (double)B->rows; }
static int check_argmax(const bench *B, const out_view *o, char *msg) {
    if (o->dt != KB_INT64 || o->rank != 1 || o->shape[0] != B->rows) {
        snprintf(msg, MSG, "output is %s rank %d; expected int64 (%lld)",
                 kb_dtype_name(o->dt) ? kb_dtype_name(o->dt) : "?", o->rank, (long long)B->rows);
        return 0;
    }
    const int64_t *y = o->p;
    for (int64_t r = 0; r < B->rows; ++r) {
        int64_t best = 0;
        float bv = val(SEED_X, r * B->cols);
        for (int64_t c = 1; c < B->cols; ++c) {
            float v = val(SEED_X, r * B->cols + c);
            if (v > bv) bv = v, best = c;
        }
        if (y[r] != best) {
            snprintf(msg, MSG, "row %lld: %lld, expected %lld", (long long)r, (long long)y[r], (long long)best);
            return 0;
        }
    }
    snprintf(msg, MSG, "all %lld rows exact", (long long)B->rows);
    return 1;
}

/* cumsum over the last axis: reads and writes the matrix: 2 * 4 * R * C. Prefix k of any scan
 * order is within (k-1)u of the sum of |x| so far. */
static kb_tensor *build_cumsum(bench *B) {
    kb_tensor *x = mat_x(B);
    return x ? kb_cumsum(x, -1) : NULL;
}
static int check_cumsum(const bench *B, const out_view *o, char *msg) {
    int64_t shape[2] = {B->rows, B->cols};
    const float *y = f32_out(o, B->rows * B->cols, shape, 2, msg);
    if (!y) return 0;
    int64_t step = B->rows > CHECK_ROWS ? B->rows / CHECK_ROWS : 1;
    for (int64_t r = 0; r < B->rows; r += step) {
        double s = 0, sa = 0;
        for (int64_t c = 0; c < B->cols; ++c) {
            double v = val(SEED_X, r * B->cols + c);
            s += v;
            sa += fabs(v);
            if (!(fabs(y[r * B->cols + c] - s) <= (double)(c + 1) * U32 * sa)) {
                snprintf(msg, MSG, "y[%lld, %lld] = %.9g, expected %.9g", (long long)r, (long long)c,
                         y[r * B->cols + c], s);
                return 0;
            }
        }
    }
    snprintf(msg, MSG, "%lld rows within ku sum|x|", (long long)((B->rows + step - 1) / step));
    return 1;
}

/* transpose of a square matrix: reads and writes it: 2 * 4 * n^2. Exact. */
static kb_tensor *build_transpose(bench *B) {
    kb_tensor *t = mat_t(B);
    return t ? kb_transpose(t) : NULL;
}
static double amount_transpose(const bench *B) { return 2.0 * 4.0 * (double)(B->tn * B->tn); }
static int check_transpose(const bench *B, const out_view *o, char *msg) {
    int64_t shape[2] = {B->tn, B->tn};
    const float *y = f32_out(o, B->tn * B->tn, shape, 2, msg);
    if (!y) return 0;
    for (int64_t i = 0; i < B->tn; ++i)
        for (int64_t j = 0; j < B->tn; ++j)
            if (y[i * B->tn + j] != val(SEED_T, j * B->tn + i)) {
                snprintf(msg, MSG, "y[%lld, %lld] = %.9g, expected x[%lld, %lld] = %.9g", (long long)i,
                         (long long)j, y[i * B->tn + j], (long long)j, (long long)i, val(SEED_T, j * B->tn + i));
                return 0;
            }
    snprintf(msg, MSG, "all %lld elements exact", (long long)(B->tn * B->tn));
    return 1;
}

/* Entries (i, j) of batch b of x(M,K) . y(K,N), x and y made of val(seed) in C order; the
 * tolerance is (K+1)u sum|x y| for float32 accumulation, plus 2^-10 sum|x y| when TF32 rounds
 * both inputs to 10 mantissa bits. */
static int check_matmul(const float *y, int64_t batches, int64_t M, int64_t K, int64_t N, uint64_t sx, uint64_t sy,
                        int tf32, char *msg) {
    uint64_t s = 12345;
    double worst = 0;
    for (int t = 0; t < CHECK_DOT; ++t) {
        s = mix(s);
        int64_t b = (int64_t)(s % (uint64_t)batches), i = (int64_t)((s >> 20) % (uint64_t)M),
                j = (int64_t)((s >> 40) % (uint64_t)N);
        double acc = 0, aacc = 0;
        for (int64_t k = 0; k < K; ++k) {
            double p = (double)val(sx, (b * M + i) * K + k) * val(sy, (b * K + k) * N + j);
            acc += p;
            aacc += fabs(p);
        }
        double got = y[(b * M + i) * N + j], tol = ((double)(K + 1) * U32 + (tf32 ? 1.0 / 1024 : 0)) * aacc;
        if (!(fabs(got - acc) <= tol)) {
            snprintf(msg, MSG, "y[%lld, %lld, %lld] = %.9g, expected %.9g", (long long)b, (long long)i, (long long)j,
                     got, acc);
            return 0;
        }
        if (fabs(got - acc) / tol > worst) worst = fabs(got - acc) / tol;
    }
    snprintf(msg, MSG, "%d sampled entries, worst error %.3f of tolerance", CHECK_DOT, worst);
    return 1;
}

/* dot M = N = K: 2 * M * N * K flops */
static kb_tensor *build_dot(bench *B) {
    kb_tensor *x = dot_a(B), *y = dot_b(B);
    return x && y ? kb_dot(x, y) : NULL;
}
static double amount_dot(const bench *B) { return 2.0 * (double)B->mm * (double)B->mm * (double)B->mm; }
static int check_dot_any(const bench *B, const out_view *o, int tf32, char *msg) {
    int64_t shape[2] = {B->mm, B->mm};
    const float *y = f32_out(o, B->mm * B->mm, shape, 2, msg);
    return y && check_matmul(y, 1, B->mm, B->mm, B->mm, SEED_DA, SEED_DB, tf32, msg);
}
static int check_dot(const bench *B, const out_view *o, char *msg) { return check_dot_any(B, o, 0, msg); }
static int check_dot_tf32(const bench *B, const out_view *o, char *msg) { return check_dot_any(B, o, 1, msg); }

/* batch_dot (B, M, K) . (B, K, N) with Keras' default axes (2, 1): 2 * B * M * N * K flops */
static kb_tensor *build_batch_dot(bench *B) {
    kb_tensor *x = bat_a(B), *y = bat_b(B);
    return x && y ? kb_batch_dot(x, y, NULL, 0) : NULL;
}
static double amount_batch_dot(const bench *B) {
    return 2.0 * (double)B->bb * (double)B->bm * (double)B->bn * (double)B->bk;
}
static int check_batch_dot(const bench *B, const out_view *o, char *msg) {
    int64_t shape[3] = {B->bb, B->bm, B->bn};
    const float *y = f32_out(o, B->bb * B->bm * B->bn, shape, 3, msg);
    return y && check_matmul(y, B->bb, B->bm, B->bk, B->bn, SEED_BA, SEED_BB, 0, msg);
}

/* conv2d 3x3 'same', stride 1, x (N, H, W, C) or (N, C, H, W) -> O channels: 2 * N*H*W*O * 9*C flops
 * forward; forward+backward (y and the gradients of sum(y) w.r.t. x and the kernel) 3 times that.
 * x and the kernel hold val(SEED_CX, nhwc index) / val(SEED_CK, index), so one host reference
 * serves both layouts. Tolerance of each sampled entry: (k+1)u sum|terms| over its k terms. */
static double cxv(const bench *B, int64_t n, int64_t h, int64_t w, int64_t c) {
    return val(SEED_CX, ((n * B->chw + h) * B->chw + w) * B->cc + c);
}
static double ckv(const bench *B, int64_t kh, int64_t kw, int64_t c, int64_t o) {
    return val(SEED_CK, ((kh * 3 + kw) * B->cc + c) * B->co + o);
}
static kb_tensor *build_conv_any(bench *B, int cf) {
    kb_tensor *x = conv_x(B, cf), *k = conv_k(B);
    kb_data_format_arg df = cf ? KB_DATA_FORMAT_CHANNELS_FIRST : KB_DATA_FORMAT_CHANNELS_LAST;
    return x && k ? kb_conv2d(x, k, NULL, KB_PADDING_SAME, df, NULL) : NULL;
}
static kb_tensor *build_conv_nhwc(bench *B) { return build_conv_any(B, 0); }
static kb_tensor *build_conv_nchw(bench *B) { return build_conv_any(B, 1); }
/* dx and dkernel of sum(y), as PyTorch's autograd.grad(y.sum(), [x, w]) */
static int more_conv_any(bench *B, kb_tensor *y, kb_tensor **more, int cf) {
    kb_tensor *loss = kb_sum(y, NULL, 0, 0), *vars[2] = {conv_x(B, cf), conv_k(B)};
    return loss && kb_gradients(loss, vars, 2, more) == KB_OK && more[0] && more[1] ? 2 : -1;
}
static int more_conv_nhwc(bench *B, kb_tensor *y, kb_tensor **more) { return more_conv_any(B, y, more, 0); }
static int more_conv_nchw(bench *B, kb_tensor *y, kb_tensor **more) { return more_conv_any(B, y, more, 1); }
static double amount_conv(const bench *B) {
    return 2.0 * (double)(B->cn * B->chw * B->chw * B->co) * 9.0 * (double)B->cc;
}
static double amount_conv3(const bench *B) { return 3.0 * amount_conv(B); }

/* compares got with want under (k+1)u * mag; records the worst fraction of the tolerance */
static int within(double got, double want, double mag, int64_t k, double *worst) {
    double tol = (double)(k + 1) * U32 * mag + 1e-30, e = fabs(got - want) / tol;
    if (e > *worst) *worst = e;
    return e <= 1.0;
}

static int check_conv_any(const bench *B, const out_view *o, int cf, int grads, char *msg) {
    int64_t N = B->cn, HW = B->chw, C = B->cc, O = B->co, ys[4] = {N, HW, HW, O}, xs[4] = {N, HW, HW, C},
            ks[4] = {3, 3, C, O};
    if (cf) ys[1] = O, ys[2] = ys[3] = HW, xs[1] = C, xs[2] = xs[3] = HW;
    const float *y = f32_out(&o[0], N * HW * HW * O, ys, 4, msg);
    const float *dx = grads ? f32_out(&o[1], N * HW * HW * C, xs, 4, msg) : NULL;
    const float *dk = grads ? f32_out(&o[2], 9 * C * O, ks, 4, msg) : NULL;
    if (!y || (grads && (!dx || !dk))) return 0;
    uint64_t s = 777;
    double worst = 0;
    for (int t = 0; t < CHECK_DOT; ++t) {
        s = mix(s);
        int64_t n = (int64_t)(s % (uint64_t)N), h = (int64_t)((s >> 16) % (uint64_t)HW),
                w = (int64_t)((s >> 28) % (uint64_t)HW), c = (int64_t)((s >> 40) % (uint64_t)C),
                oc = (int64_t)((s >> 52) % (uint64_t)O);
        /* y[n, h, w, oc] */
        double acc = 0, mag = 0;
        int64_t k = 0;
        for (int64_t kh = 0; kh < 3; ++kh)
            for (int64_t kw = 0; kw < 3; ++kw) {
                int64_t ih = h + kh - 1, iw = w + kw - 1;
                if (ih < 0 || ih >= HW || iw < 0 || iw >= HW) continue;
                for (int64_t ic = 0; ic < C; ++ic, ++k) {
                    double p = cxv(B, n, ih, iw, ic) * ckv(B, kh, kw, ic, oc);
                    acc += p, mag += fabs(p);
                }
            }
        double got = y[cf ? ((n * O + oc) * HW + h) * HW + w : ((n * HW + h) * HW + w) * O + oc];
        if (!within(got, acc, mag, k, &worst)) {
            snprintf(msg, MSG, "y at (n %lld, h %lld, w %lld, o %lld) = %.9g, expected %.9g", (long long)n,
                     (long long)h, (long long)w, (long long)oc, got, acc);
            return 0;
        }
        if (!grads) continue;
        /* dx[n, h, w, c] = sum of kernel taps (kh, kw, c, :) whose output pixel exists */
        acc = mag = 0, k = 0;
        for (int64_t kh = 0; kh < 3; ++kh)
            for (int64_t kw = 0; kw < 3; ++kw) {
                int64_t oh = h - kh + 1, ow = w - kw + 1;
                if (oh < 0 || oh >= HW || ow < 0 || ow >= HW) continue;
                for (int64_t q = 0; q < O; ++q, ++k) acc += ckv(B, kh, kw, c, q), mag += fabs(ckv(B, kh, kw, c, q));
            }
        got = dx[cf ? ((n * C + c) * HW + h) * HW + w : ((n * HW + h) * HW + w) * C + c];
        if (!within(got, acc, mag, k, &worst)) {
            snprintf(msg, MSG, "dx at (n %lld, h %lld, w %lld, c %lld) = %.9g, expected %.9g", (long long)n,
                     (long long)h, (long long)w, (long long)c, got, acc);
            return 0;
        }
        if (t >= 16) continue; /* dkernel entries sum N*H*W terms: 16 samples */
        int64_t kh = h % 3, kw = w % 3;
        acc = mag = 0, k = 0;
        for (int64_t b = 0; b < N; ++b)
            for (int64_t oh = 0; oh < HW; ++oh)
                for (int64_t ow = 0; ow < HW; ++ow) {
                    int64_t ih = oh + kh - 1, iw = ow + kw - 1;
                    if (ih < 0 || ih >= HW || iw < 0 || iw >= HW) continue;
                    double v = cxv(B, b, ih, iw, c);
                    acc += v, mag += fabs(v), ++k;
                }
        got = dk[((kh * 3 + kw) * C + c) * O + oc];
        if (!within(got, acc, mag, k, &worst)) {
            snprintf(msg, MSG, "dkernel at (%lld, %lld, %lld, %lld) = %.9g, expected %.9g", (long long)kh,
                     (long long)kw, (long long)c, (long long)oc, got, acc);
            return 0;
        }
    }
    snprintf(msg, MSG, "%d sampled %s, worst error %.3f of tolerance", CHECK_DOT, grads ? "y / dx (16 dkernel)" : "y",
             worst);
    return 1;
}
static int check_conv_nhwc(const bench *B, const out_view *o, char *msg) { return check_conv_any(B, o, 0, 0, msg); }
static int check_conv_nchw(const bench *B, const out_view *o, char *msg) { return check_conv_any(B, o, 1, 0, msg); }
static int check_convb_nhwc(const bench *B, const out_view *o, char *msg) { return check_conv_any(B, o, 0, 1, msg); }
static int check_convb_nchw(const bench *B, const out_view *o, char *msg) { return check_conv_any(B, o, 1, 1, msg); }

/* max pool 3x3, stride 2, 'valid', channels_first (N, C, H, W): reads x, writes y:
 * 4 * N*C*H*W + 4 * N*C*OH*OW bytes. Exact. */
static int64_t pool_out(const bench *B) { return (B->phw - 3) / 2 + 1; }
static kb_tensor *build_maxpool(bench *B) {
    kb_tensor *x = pool_x(B);
    const int64_t ps[2] = {3, 3}, st[2] = {2, 2};
    return x ? kb_pool2d(x, ps, st, KB_PADDING_VALID, KB_DATA_FORMAT_CHANNELS_FIRST, KB_POOL_MAX) : NULL;
}
static double amount_maxpool(const bench *B) {
    int64_t oh = pool_out(B);
    return 4.0 * (double)(B->pn * B->pc) * (double)(B->phw * B->phw + oh * oh);
}
static double pxv(const bench *B, int64_t n, int64_t h, int64_t w, int64_t c) {
    return val(SEED_PX, ((n * B->phw + h) * B->phw + w) * B->pc + c);
}
static int check_maxpool(const bench *B, const out_view *o, char *msg) {
    int64_t OH = pool_out(B), N = B->pn, C = B->pc, shape[4] = {N, C, OH, OH};
    const float *y = f32_out(o, N * C * OH * OH, shape, 4, msg);
    if (!y) return 0;
    int64_t step = N * C > CHECK_ROWS ? N * C / CHECK_ROWS : 1;
    for (int64_t nc = 0; nc < N * C; nc += step)
        for (int64_t i = 0; i < OH; ++i)
            for (int64_t j = 0; j < OH; ++j) {
                double m = -INFINITY;
                for (int64_t a = 0; a < 3; ++a)
                    for (int64_t b = 0; b < 3; ++b) m = fmax(m, pxv(B, nc / C, 2 * i + a, 2 * j + b, nc % C));
                if (y[(nc * OH + i) * OH + j] != m) {
                    snprintf(msg, MSG, "y[%lld, %lld, %lld, %lld] = %.9g, expected %.9g", (long long)(nc / C),
                             (long long)(nc % C), (long long)i, (long long)j, y[(nc * OH + i) * OH + j], m);
                    return 0;
                }
            }
    snprintf(msg, MSG, "%lld (n, c) planes exact", (long long)((N * C + step - 1) / step));
    return 1;
}

/* normalize_batch_in_training over (N, H, W) of a channels_first x, gamma and beta per channel,
 * epsilon 1e-3 (PyTorch: F.batch_norm(training=True)): outputs normed, mean, var. Both
 * implementations read x twice (statistics, then normalise) and write y: 3 * 4 * N*C*H*W bytes.
 * Checks: mean within (m+1)u mean|x| and var within (2m+4)u mean(x^2) of the double statistics
 * over m = N*H*W values, normed within 8u (|x - mean| |gamma| / sqrt(var + eps) + |beta|) of the
 * formula applied to kb's own mean / var. */
static kb_tensor *bn_param(bench *B, kb_tensor **slot, uint64_t seed, const char *name) {
    if (!*slot) *slot = make_var(B, seed, &B->pc, 1, name);
    return *slot;
}
static kb_tensor *bn_outs[3]; /* normed, mean, var of the last build (one row builds at a time) */
static kb_tensor *build_bn(bench *B) {
    kb_tensor *x = pool_x(B), *g = bn_param(B, &B->gamma, SEED_G, "bn_gamma"), *b = bn_param(B, &B->beta, SEED_BE, "bn_beta");
    const int axes[3] = {0, 2, 3};
    if (!x || !g || !b || kb_normalize_batch_in_training(x, g, b, axes, 3, 1e-3, &bn_outs[0], &bn_outs[1], &bn_outs[2]) != KB_OK)
        return NULL;
    return bn_outs[0];
}
static int more_bn(bench *B, kb_tensor *y, kb_tensor **more) {
    (void)B, (void)y;
    more[0] = bn_outs[1];
    more[1] = bn_outs[2];
    return 2;
}
static double amount_bn(const bench *B) { return 3.0 * 4.0 * (double)(B->pn * B->pc * B->phw * B->phw); }
static int check_bn(const bench *B, const out_view *o, char *msg) {
    int64_t N = B->pn, C = B->pc, HW = B->phw, m = N * HW * HW, shape[4] = {N, C, HW, HW};
    const float *y = f32_out(&o[0], N * C * HW * HW, shape, 4, msg);
    if (!y) return 0;
    if (o[1].dt != KB_FLOAT32 || o[1].nbytes != sizeof(float) * (size_t)C || o[2].dt != KB_FLOAT32 ||
        o[2].nbytes != sizeof(float) * (size_t)C) {
        snprintf(msg, MSG, "mean / var are not %lld float32 values", (long long)C);
        return 0;
    }
    const float *mean = o[1].p, *var = o[2].p;
    double worst = 0;
    for (int64_t c = 0; c < C; ++c) {
        double s = 0, sa = 0, s2 = 0;
        for (int64_t n = 0; n < N; ++n)
            for (int64_t i = 0; i < HW * HW; ++i) {
                double v = pxv(B, n, i / HW, i % HW, c);
                s += v, sa += fabs(v), s2 += v * v;
            }
        double mu = s / (double)m, vr = s2 / (double)m - mu * mu;
        if (!within(mean[c], mu, sa / (double)m, m, &worst) || !within(var[c], vr, s2 / (double)m, 2 * m + 3, &worst)) {
            snprintf(msg, MSG, "channel %lld: mean %.9g var %.9g, expected %.9g %.9g", (long long)c, mean[c], var[c], mu, vr);
            return 0;
        }
        double g = val(SEED_G, c), be = val(SEED_BE, c), r = 1.0 / sqrt((double)var[c] + 1e-3);
        for (int64_t n = 0; n < N; n += N > 4 ? N / 4 : 1)
            for (int64_t i = 0; i < HW * HW; i += 7) {
                double d = pxv(B, n, i / HW, i % HW, c) - mean[c], want = d * r * g + be;
                if (!within(y[(n * C + c) * HW * HW + i], want, fabs(d * r * g) + fabs(be), 7, &worst)) {
                    snprintf(msg, MSG, "normed[%lld, %lld, %lld] = %.9g, expected %.9g", (long long)n, (long long)c,
                             (long long)i, y[(n * C + c) * HW * HW + i], want);
                    return 0;
                }
            }
    }
    snprintf(msg, MSG, "all %lld channels' mean / var, sampled normed, worst error %.3f of tolerance", (long long)C, worst);
    return 1;
}

/* random_uniform / random_normal of n = 64M float32 (Philox, a new draw every call): writes
 * 4 * n bytes. Checks on all n values: uniform in [0, 1) with |mean - 1/2| <= 6 sqrt(1/(12 n));
 * normal with |mean| <= 6 / sqrt(n) and |var - 1| <= 6 sqrt(2 / n) (statistical bounds: a correct
 * generator fails them with probability below 1e-8). */
static kb_tensor *build_uniform(bench *B) { return kb_random_uniform(B->ctx, &B->n, 1, 0.0, 1.0, KB_FLOAT32, 1234); }
static kb_tensor *build_normal(bench *B) { return kb_random_normal(B->ctx, &B->n, 1, 0.0, 1.0, KB_FLOAT32, 1234); }
static double amount_vec1(const bench *B) { return 4.0 * (double)B->n; }
static int check_random(const bench *B, const out_view *o, int normal, char *msg) {
    const float *y = f32_out(o, B->n, &B->n, 1, msg);
    if (!y) return 0;
    double s = 0, s2 = 0, lo = INFINITY, hi = -INFINITY, n = (double)B->n;
    for (int64_t i = 0; i < B->n; ++i) {
        double v = y[i];
        s += v, s2 += v * v, lo = fmin(lo, v), hi = fmax(hi, v);
    }
    double mean = s / n, var = s2 / n - mean * mean;
    int ok = normal ? fabs(mean) <= 6 / sqrt(n) && fabs(var - 1) <= 6 * sqrt(2 / n) && isfinite(lo) && isfinite(hi)
                    : lo >= 0 && hi < 1 && fabs(mean - 0.5) <= 6 * sqrt(1 / (12 * n));
    snprintf(msg, MSG, "mean %.6f var %.6f min %.8g max %.8g%s", mean, var, lo, hi, ok ? "" : ": outside the bounds");
    return ok;
}
static int check_uniform(const bench *B, const out_view *o, char *msg) { return check_random(B, o, 0, msg); }
static int check_normal(const bench *B, const out_view *o, char *msg) { return check_random(B, o, 1, msg); }

/* ctc_batch_cost with T = 200, B = 64, C = 32 (blank 31), labels of 50, and the gradient of the
 * summed loss w.r.t. y_pred (B, T, C) softmax probabilities: GB/s counts reading y_pred and
 * writing its gradient, 2 * 4 * B*T*C bytes. Check: the loss of 4 samples against a host
 * log-space CTC forward in double on log(y + 1e-7) renormalised (Keras / TF), within 1e-4
 * relative (float32 log-space recursion over T steps), and a finite gradient. */
static float ctc_prob(uint64_t b, int64_t t, int64_t c, double *z) { /* softmax over c of 2 val */
    double m = -INFINITY, e[CTC_C];
    for (int k = 0; k < CTC_C; ++k) m = fmax(m, 2.0 * val(SEED_CY, ((int64_t)b * CTC_T + t) * CTC_C + k));
    double s = 0;
    for (int k = 0; k < CTC_C; ++k) s += e[k] = exp(2.0 * val(SEED_CY, ((int64_t)b * CTC_T + t) * CTC_C + k) - m);
    if (z) *z = s;
    return (float)(e[c] / s);
}
static int32_t ctc_label(int64_t b, int64_t i) { return (int32_t)(mix((uint64_t)(b * CTC_L + i) + 99) % (CTC_C - 1)); }
static kb_tensor *ctc_outs[2];
static kb_tensor *build_ctc(bench *B) {
    int64_t nb = B->ctcb, ys[3] = {nb, CTC_T, CTC_C}, ls[2] = {nb, CTC_L}, one[2] = {nb, 1};
    float *p = malloc(sizeof(float) * (size_t)(nb * CTC_T * CTC_C));
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)(nb * CTC_L)), *il = malloc(sizeof(int32_t) * (size_t)nb),
            *ll = malloc(sizeof(int32_t) * (size_t)nb);
    kb_tensor *res = NULL;
    if (p && lab && il && ll) {
        for (int64_t b = 0; b < nb; ++b) {
            for (int64_t t = 0; t < CTC_T; ++t)
                for (int64_t c = 0; c < CTC_C; ++c) p[(b * CTC_T + t) * CTC_C + c] = ctc_prob((uint64_t)b, t, c, NULL);
            for (int64_t i = 0; i < CTC_L; ++i) lab[b * CTC_L + i] = ctc_label(b, i);
            il[b] = CTC_T, ll[b] = CTC_L;
        }
        kb_tensor *y = kb_variable(B->ctx, p, sizeof(float) * (size_t)(nb * CTC_T * CTC_C), KB_FLOAT32, ys, 3, "ctc_y");
        kb_tensor *yt = kb_variable(B->ctx, lab, sizeof(int32_t) * (size_t)(nb * CTC_L), KB_INT32, ls, 2, "ctc_labels");
        kb_tensor *in = kb_variable(B->ctx, il, sizeof(int32_t) * (size_t)nb, KB_INT32, one, 2, "ctc_il");
        kb_tensor *ln = kb_variable(B->ctx, ll, sizeof(int32_t) * (size_t)nb, KB_INT32, one, 2, "ctc_ll");
        kb_tensor *loss = y && yt && in && ln ? kb_ctc_batch_cost(yt, y, in, ln) : NULL;
        kb_tensor *tot = loss ? kb_sum(loss, NULL, 0, 0) : NULL;
        ctc_outs[0] = loss;
        if (tot && kb_gradients(tot, &y, 1, &ctc_outs[1]) == KB_OK && ctc_outs[1]) res = loss;
    }
    free(p);
    free(lab);
    free(il);
    free(ll);
    return res;
}
static int more_ctc(bench *B, kb_tensor *y, kb_tensor **more) {
    (void)B, (void)y;
    more[0] = ctc_outs[1];
    return 1;
}
static double amount_ctc(const bench *B) { return 2.0 * 4.0 * (double)(B->ctcb * CTC_T * CTC_C); }
static double logaddexp(double a, double b) {
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    return fmax(a, b) + log1p(exp(-fabs(a - b)));
}
static double ctc_host_loss(int64_t b) {
    double lp[CTC_T][CTC_C];
    for (int64_t t = 0; t < CTC_T; ++t) {
        double m = -INFINITY, s = 0;
        for (int64_t c = 0; c < CTC_C; ++c) m = fmax(m, lp[t][c] = log((double)ctc_prob((uint64_t)b, t, c, NULL) + 1e-7));
        for (int64_t c = 0; c < CTC_C; ++c) s += exp(lp[t][c] - m);
        for (int64_t c = 0; c < CTC_C; ++c) lp[t][c] -= m + log(s);
    }
    enum { S = 2 * CTC_L + 1 };
    double a[S], na[S];
    int lab[S];
    for (int s = 0; s < S; ++s) lab[s] = s % 2 ? ctc_label(b, s / 2) : CTC_C - 1, a[s] = -INFINITY;
    a[0] = lp[0][lab[0]], a[1] = lp[0][lab[1]];
    for (int64_t t = 1; t < CTC_T; ++t) {
        for (int s = 0; s < S; ++s) {
            double v = a[s];
            if (s >= 1) v = logaddexp(v, a[s - 1]);
            if (s >= 2 && s % 2 && lab[s] != lab[s - 2]) v = logaddexp(v, a[s - 2]);
            na[s] = v + lp[t][lab[s]];
        }
        memcpy(a, na, sizeof a);
    }
    return -logaddexp(a[S - 1], a[S - 2]);
}
static int check_ctc(const bench *B, const out_view *o, char *msg) {
    int64_t shape[2] = {B->ctcb, 1}, gs[3] = {B->ctcb, CTC_T, CTC_C};
    const float *loss = f32_out(&o[0], B->ctcb, shape, 2, msg), *g = loss ? f32_out(&o[1], B->ctcb * CTC_T * CTC_C, gs, 3, msg) : NULL;
    if (!loss || !g) return 0;
    for (int64_t i = 0; i < B->ctcb * CTC_T * CTC_C; ++i)
        if (!isfinite(g[i])) {
            snprintf(msg, MSG, "gradient entry %lld is %g", (long long)i, g[i]);
            return 0;
        }
    double worst = 0;
    int n_checked = 0;
    for (int64_t b = 0; b < B->ctcb; b += B->ctcb > 4 ? B->ctcb / 4 : 1, ++n_checked) {
        double want = ctc_host_loss(b), e = fabs(loss[b] - want) / (1e-4 * fabs(want));
        if (!(e <= 1)) {
            snprintf(msg, MSG, "loss[%lld] = %.9g, expected %.9g", (long long)b, loss[b], want);
            return 0;
        }
        worst = fmax(worst, e);
    }
    snprintf(msg, MSG, "%d losses vs host CTC, worst %.3f of 1e-4 relative; gradient finite", n_checked, worst);
    return 1;
}

/* fused LSTM (kb_cudnn_lstm / torch.nn.LSTM on cuDNN), T = 100, B = 64, 512 -> 512, outputs and
 * the gradients of sum(outputs) w.r.t. x and the three weights: 3 * 2 * T*B*(I + H)*4H flops
 * (forward GEMMs; the backward does twice that). Weights val * 1/32, inputs val. Check: the
 * outputs of batch rows 0 and B-1 at every step against a host LSTM in double, within 1e-4
 * absolute (|h| < 1; float32 GEMMs of 1024 terms per gate, an empirical bound for a contractive
 * recurrence), and finite gradients. */
static kb_tensor *lstm_outs[5];
static kb_tensor *make_var_scaled(bench *B, uint64_t seed, const int64_t *shape, int rank, float scale, const char *name) {
    int64_t n = 1;
    for (int d = 0; d < rank; ++d) n *= shape[d];
    float *h = malloc(sizeof(float) * (size_t)n);
    if (!h) return NULL;
    for (int64_t i = 0; i < n; ++i) h[i] = val(seed, i) * scale;
    kb_tensor *v = kb_variable(B->ctx, h, sizeof(float) * (size_t)n, KB_FLOAT32, shape, rank, name);
    free(h);
    return v;
}
static kb_tensor *build_lstm(bench *B) {
    int64_t xs[3] = {B->lb, LSTM_T, LSTM_I}, ks[2] = {LSTM_I, 4 * LSTM_H}, rs[2] = {LSTM_H, 4 * LSTM_H}, bs = 8 * LSTM_H;
    kb_tensor *vars[4] = {make_var(B, SEED_LX, xs, 3, "lstm_x"), make_var_scaled(B, SEED_LK, ks, 2, 1.0f / 32, "lstm_k"),
                          make_var_scaled(B, SEED_LR, rs, 2, 1.0f / 32, "lstm_r"),
                          make_var_scaled(B, SEED_LB, &bs, 1, 1.0f / 32, "lstm_b")};
    if (!vars[0] || !vars[1] || !vars[2] || !vars[3]) return NULL;
    if (kb_cudnn_lstm(vars[0], NULL, NULL, vars[1], vars[2], vars[3], 0, &lstm_outs[0], NULL, NULL) != KB_OK) return NULL;
    kb_tensor *loss = kb_sum(lstm_outs[0], NULL, 0, 0);
    return loss && kb_gradients(loss, vars, 4, lstm_outs + 1) == KB_OK ? lstm_outs[0] : NULL;
}
static int more_lstm(bench *B, kb_tensor *y, kb_tensor **more) {
    (void)B, (void)y;
    for (int i = 0; i < 4; ++i)
        if (!(more[i] = lstm_outs[1 + i])) return -1;
    return 4;
}
static double amount_lstm(const bench *B) {
    return 3.0 * 2.0 * LSTM_T * (double)B->lb * (LSTM_I + LSTM_H) * 4.0 * LSTM_H;
}
static double sigm(double v) { return 1 / (1 + exp(-v)); }
static int check_lstm(const bench *B, const out_view *o, char *msg) {
    int64_t shape[3] = {B->lb, LSTM_T, LSTM_H};
    const float *y = f32_out(&o[0], B->lb * LSTM_T * LSTM_H, shape, 3, msg);
    if (!y) return 0;
    for (int k = 1; k < 5; ++k)
        for (size_t i = 0; i < o[k].nbytes / sizeof(float); ++i)
            if (!isfinite(((const float *)o[k].p)[i])) {
                snprintf(msg, MSG, "gradient %d entry %zu is not finite", k, i);
                return 0;
            }
    double *h = calloc(LSTM_H, sizeof(double)), *c = calloc(LSTM_H, sizeof(double)), *z = malloc(sizeof(double) * 4 * LSTM_H);
    double worst = 0;
    int ok = h && c && z;
    const double sc = 1.0 / 32;
    for (int64_t b = 0; ok && b < B->lb; b += B->lb > 1 ? B->lb - 1 : 1) {
        memset(h, 0, sizeof(double) * LSTM_H);
        memset(c, 0, sizeof(double) * LSTM_H);
        for (int64_t t = 0; ok && t < LSTM_T; ++t) {
            for (int64_t g = 0; g < 4 * LSTM_H; ++g)
                z[g] = sc * ((double)(float)(val(SEED_LB, g) * (float)sc) / sc + (double)(float)(val(SEED_LB, 4 * LSTM_H + g) * (float)sc) / sc);
            for (int64_t i = 0; i < LSTM_I; ++i) {
                double xv = val(SEED_LX, (b * LSTM_T + t) * LSTM_I + i);
                for (int64_t g = 0; g < 4 * LSTM_H; ++g) z[g] += xv * (double)(val(SEED_LK, i * 4 * LSTM_H + g) * (float)sc);
            }
            for (int64_t j = 0; j < LSTM_H; ++j)
                for (int64_t g = 0; g < 4 * LSTM_H; ++g) z[g] += h[j] * (double)(val(SEED_LR, j * 4 * LSTM_H + g) * (float)sc);
            for (int64_t u = 0; u < LSTM_H; ++u) {
                double ig = sigm(z[u]), fg = sigm(z[LSTM_H + u]), gg = tanh(z[2 * LSTM_H + u]), og = sigm(z[3 * LSTM_H + u]);
                c[u] = fg * c[u] + ig * gg;
                h[u] = og * tanh(c[u]);
                double e = fabs(y[(b * LSTM_T + t) * LSTM_H + u] - h[u]) / 1e-4;
                worst = fmax(worst, e);
                if (!(e <= 1)) {
                    snprintf(msg, MSG, "outputs[%lld, %lld, %lld] = %.9g, expected %.9g", (long long)b, (long long)t,
                             (long long)u, y[(b * LSTM_T + t) * LSTM_H + u], h[u]);
                    ok = 0;
                    break;
                }
            }
        }
    }
    if (!h || !c || !z) snprintf(msg, MSG, "out of host memory for the check");
    else if (ok) snprintf(msg, MSG, "outputs of 2 batch rows, worst %.3f of 1e-4; gradients finite", worst);
    free(h);
    free(c);
    free(z);
    return ok;
}


/* One training step of the Keras mnist_cnn model (examples/cnn_model.c: conv 32, conv 64, max
 * pool, dropout, dense 128, dropout, dense 10, softmax, categorical crossentropy) with Adam
 * (lr 1e-3), dropout on, at batch 128, on one batch held in variables: forward, backward and
 * the optimizer's updates, as PyTorch's zero_grad / forward / backward / step. flops: 3 x the
 * forward's 2 * multiply-adds (conv1, conv2, dense1, dense2). The batch is learnable (class c
 * is noise plus a bright 6x6 square at a place of its own), so the check asks the loss after
 * the warm-up and timed steps to be finite and below 3/4 of the first step's (11 steps on the
 * CPU with --small, 100+ on a GPU). */
static cnn_model cnn_m;
static kb_tensor *build_cnn_any(bench *B, int cf) {
    int64_t nb = B->cnnb, n = nb * CNN_H * CNN_W, xs[4] = {nb, CNN_H, CNN_W, 1}, ys[2] = {nb, CNN_CLASSES};
    if (cf) xs[1] = 1, xs[2] = CNN_H, xs[3] = CNN_W; /* one channel: the same bytes in both layouts */
    float *x = malloc(sizeof(float) * (size_t)n), *y = calloc((size_t)(nb * CNN_CLASSES), sizeof(float));
    kb_tensor *res = NULL;
    if (x && y) {
        for (int64_t i = 0; i < n; ++i) {
            int64_t b = i / (CNN_H * CNN_W), r = i / CNN_W % CNN_H, c = i % CNN_W, k = b % CNN_CLASSES;
            int64_t r0 = 2 + 5 * (k / 5) * 2, c0 = 2 + 5 * (k % 5);
            x[i] = 0.25f * (val(SEED_CX, i) + 1) + (r >= r0 && r < r0 + 6 && c >= c0 && c < c0 + 6 ? 0.5f : 0.0f);
        }
        for (int64_t b = 0; b < nb; ++b) y[b * CNN_CLASSES + b % CNN_CLASSES] = 1;
        kb_tensor *xv = kb_variable(B->ctx, x, sizeof(float) * (size_t)n, KB_FLOAT32, xs, 4, "cnn_x");
        kb_tensor *yv = kb_variable(B->ctx, y, sizeof(float) * (size_t)(nb * CNN_CLASSES), KB_FLOAT32, ys, 2, "cnn_y");
        kb_tensor *train = kb_constant_scalar(B->ctx, 1, KB_INT32, NULL, 0);
        kb_data_format_arg df = cf ? KB_DATA_FORMAT_CHANNELS_FIRST : KB_DATA_FORMAT_CHANNELS_LAST;
        if (xv && yv && train && cnn_build(B->ctx, df, 7, xv, yv, train, &cnn_m) == KB_OK) res = cnn_m.loss;
    }
    free(x);
    free(y);
    return res;
}
static kb_tensor *build_cnn(bench *B) { return build_cnn_any(B, 0); }
static kb_tensor *build_cnn_cf(bench *B) { return build_cnn_any(B, 1); }
static int updates_cnn(bench *B, kb_tensor **upd) {
    kb_tensor *grads[CNN_PARAMS];
    int n = 0;
    if (kb_gradients(cnn_m.loss, cnn_m.params, CNN_PARAMS, grads) != KB_OK ||
        opt_updates(B->ctx, "adam", 1e-3, cnn_m.params, grads, CNN_PARAMS, upd, &n) != KB_OK)
        return -1;
    return n;
}
static double amount_cnn(const bench *B) {
    double macs = 26.0 * 26 * 32 * 9 + 24.0 * 24 * 64 * 9 * 32 + 9216.0 * 128 + 128.0 * 10;
    return 3.0 * 2.0 * macs * (double)B->cnnb;
}
static int check_cnn(const bench *B, const out_view *o, char *msg) {
    const float *loss = f32_out(o, 1, NULL, 0, msg);
    if (!loss) return 0;
    int ok = isfinite(*loss) && isfinite(B->first_loss) && *loss < 0.75 * B->first_loss;
    snprintf(msg, MSG, "loss %.4f after the timed steps, %.4f at the first%s", *loss, B->first_loss,
             ok ? "" : ": not below 3/4 of it");
    return ok;
}

static const row ROWS[] = {
    {"add", SH_VEC, 0, "3*4*n", build_add, amount_vec3, check_add, 0, NULL, NULL},
    {"chain", SH_VEC, 0, "3*4*n (a, b in, y out)", build_chain, amount_vec3, check_chain, 0, NULL, NULL},
    {"sum_last", SH_MAT, 0, "4*R*C + 4*R", build_sum_last, amount_sum_last, check_sum_last, 0, NULL, NULL},
    {"sum_first", SH_MAT, 0, "4*R*C + 4*C", build_sum_first, amount_sum_first, check_sum_first, 0, NULL, NULL},
    {"softmax", SH_MAT, 0, "2*4*R*C", build_softmax, amount_mat2, check_softmax, 0, NULL, NULL},
    {"argmax", SH_MAT, 0, "4*R*C + 8*R", build_argmax, amount_argmax, check_argmax, 0, NULL, NULL},
    {"cumsum", SH_MAT, 0, "2*4*R*C", build_cumsum, amount_mat2, check_cumsum, 0, NULL, NULL},
    {"transpose", SH_SQUARE, 0, "2*4*n*n", build_transpose, amount_transpose, check_transpose, 0, NULL, NULL},
    {"dot_fp32", SH_DOT, 1, "2*M*N*K", build_dot, amount_dot, check_dot, 0, NULL, NULL},
    {"dot_tf32", SH_DOT, 1, "2*M*N*K", build_dot, amount_dot, check_dot_tf32, 1, NULL, NULL},
    {"batch_dot", SH_BATCH, 1, "2*B*M*N*K", build_batch_dot, amount_batch_dot, check_batch_dot, 0, NULL, NULL},
    {"conv_nhwc", SH_CONV, 1, "2*N*H*W*O*9*C", build_conv_nhwc, amount_conv, check_conv_nhwc, 0, NULL, NULL},
    {"conv_nchw", SH_CONV, 1, "2*N*H*W*O*9*C", build_conv_nchw, amount_conv, check_conv_nchw, 0, NULL, NULL},
    {"convb_nhwc", SH_CONV, 1, "3*2*N*H*W*O*9*C (y, dx, dkernel)", build_conv_nhwc, amount_conv3, check_convb_nhwc, 0,
     more_conv_nhwc, NULL},
    {"convb_nchw", SH_CONV, 1, "3*2*N*H*W*O*9*C (y, dx, dkernel)", build_conv_nchw, amount_conv3, check_convb_nchw, 0,
     more_conv_nchw, NULL},
    {"maxpool", SH_POOL, 0, "4*N*C*H*W + 4*N*C*OH*OW", build_maxpool, amount_maxpool, check_maxpool, 0, NULL, NULL},
    {"bn_train", SH_POOL, 0, "3*4*N*C*H*W (x read twice, y written)", build_bn, amount_bn, check_bn, 0, more_bn, NULL},
    {"uniform", SH_VEC, 0, "4*n (written)", build_uniform, amount_vec1, check_uniform, 0, NULL, NULL},
    {"normal", SH_VEC, 0, "4*n (written)", build_normal, amount_vec1, check_normal, 0, NULL, NULL},
    {"ctc", SH_CTC, 0, "2*4*B*T*C (y_pred read, gradient written)", build_ctc, amount_ctc, check_ctc, 0, more_ctc, NULL},
    {"lstm", SH_LSTM, 1, "3*2*T*B*(I+H)*4H", build_lstm, amount_lstm, check_lstm, 0, more_lstm, NULL},
    {"cnn_nhwc", SH_CNN, 1, "3*2*B*(forward multiply-adds)", build_cnn, amount_cnn, check_cnn, 0, NULL, updates_cnn},
    {"cnn_nchw", SH_CNN, 1, "3*2*B*(forward multiply-adds)", build_cnn_cf, amount_cnn, check_cnn, 0, NULL,
     updates_cnn},
};
enum { N_ROWS = (int)(sizeof ROWS / sizeof ROWS[0]) };

/* ---------------------------------------------------------------------------------------- */
/* Timing                                                                                     */
/* ---------------------------------------------------------------------------------------- */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

enum { REPEATS = 5 };

#ifdef KB_BENCH_CUDA
/* A failed CUDA call aborts the timing of one row with the runtime's message. */
#define CU(call, msg)                                                                                    \
    do {                                                                                                 \
        cudaError_t e_ = (call);                                                                         \
        if (e_ != cudaSuccess) {                                                                         \
            snprintf(msg, MSG, "%s: %s", #call, cudaGetErrorString(e_));                                 \
            goto fail;                                                                                   \
        }                                                                                                \
    } while (0)

/* Median over `repeats` of the per-call time of `iters` calls between two events on the
 * context's stream. Returns < 0 with msg set on failure. */
static double time_cuda(bench *B, kb_function *fn, int iters, int repeats, char *msg) {
    cudaStream_t stream = (cudaStream_t)kb_context_cuda_stream(B->ctx);
    cudaEvent_t e0 = NULL, e1 = NULL;
    double t[REPEATS], res = -1;
    if (!stream) {
        snprintf(msg, MSG, "kb_context_cuda_stream: %s", kb_last_error());
        return -1;
    }
    CU(cudaEventCreate(&e0), msg);
    CU(cudaEventCreate(&e1), msg);
    for (int r = 0; r < repeats; ++r) {
        CU(cudaEventRecord(e0, stream), msg);
        for (int i = 0; i < iters; ++i)
            if (kb_function_call(fn, NULL, 0) != KB_OK) {
                snprintf(msg, MSG, "kb_function_call: %s", kb_last_error());
                goto fail;
            }
        CU(cudaEventRecord(e1, stream), msg);
        CU(cudaEventSynchronize(e1), msg);
        float ms = 0;
        CU(cudaEventElapsedTime(&ms, e0, e1), msg);
        t[r] = ms / iters;
    }
    res = median(t, repeats);
fail:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    return res;
}

/* Device-to-device copy of `bytes` on kb's stream: 2 * bytes / time (read + write), median of 5. */
static double copy_bandwidth_cuda(bench *B, size_t bytes, char *msg) {
    cudaStream_t stream = (cudaStream_t)kb_context_cuda_stream(B->ctx);
    void *src = NULL, *dst = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    double t[REPEATS], res = -1;
    if (!stream) {
        snprintf(msg, MSG, "kb_context_cuda_stream: %s", kb_last_error());
        return -1;
    }
    CU(cudaMalloc(&src, bytes), msg);
    CU(cudaMalloc(&dst, bytes), msg);
    CU(cudaMemsetAsync(src, 1, bytes, stream), msg);
    CU(cudaEventCreate(&e0), msg);
    CU(cudaEventCreate(&e1), msg);
    CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream), msg); /* warm-up */
    for (int r = 0; r < REPEATS; ++r) {
        float ms = 0;
        CU(cudaEventRecord(e0, stream), msg);
        CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream), msg);
        CU(cudaEventRecord(e1, stream), msg);
        CU(cudaEventSynchronize(e1), msg);
        CU(cudaEventElapsedTime(&ms, e0, e1), msg);
        t[r] = ms;
    }
    res = 2.0 * (double)bytes / (median(t, REPEATS) * 1e6);
fail:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(src);
    cudaFree(dst);
    return res;
}
#endif

static double time_cpu(kb_function *fn, int iters, int repeats, char *msg) {
    double t[REPEATS];
    for (int r = 0; r < repeats; ++r) {
        double t0 = now_ms();
        for (int i = 0; i < iters; ++i)
            if (kb_function_call(fn, NULL, 0) != KB_OK) {
                snprintf(msg, MSG, "kb_function_call: %s", kb_last_error());
                return -1;
            }
        t[r] = (now_ms() - t0) / iters;
    }
    return median(t, repeats);
}

/* memcpy between two host buffers: the CPU's counterpart of the device copy. */
static double copy_bandwidth_cpu(size_t bytes, char *msg) {
    char *src = malloc(bytes), *dst = malloc(bytes);
    double t[REPEATS], res = -1;
    volatile unsigned char sink = 0;
    if (!src || !dst) {
        snprintf(msg, MSG, "out of host memory for the copy measurement");
    } else {
        memset(src, 1, bytes);
        memcpy(dst, src, bytes); /* warm-up: fault the pages in */
        for (int r = 0; r < REPEATS; ++r) {
            double t0 = now_ms();
            memcpy(dst, src, bytes);
            t[r] = now_ms() - t0;
            sink += dst[bytes - 1 - (size_t)r]; /* a read of dst, so the copy cannot be elided */
        }
        res = 2.0 * (double)bytes / (median(t, REPEATS) * 1e6);
        (void)sink;
    }
    free(src);
    free(dst);
    return res;
}

/* ---------------------------------------------------------------------------------------- */
/* Output                                                                                     */
/* ---------------------------------------------------------------------------------------- */

typedef struct result {
    const row *r;
    double ms;         /* per call; < 0 when the row did not run */
    double throughput; /* GB/s or TFLOP/s */
    double frac;       /* of the copy bandwidth (GB/s rows), else < 0 */
    const char *status; /* "ok", "wrong", "error" */
    char msg[MSG];
} result;

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; ++s) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v) {
    if (v < 0 || !isfinite(v)) fputs("null", f);
    else fprintf(f, "%.6g", v);
}

static int write_json(const char *path, const bench *B, const char *devname, double copy_gbs, int iters,
                      int repeats, const result *res, int n) {
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    char date[32];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    fprintf(f, "{\n  \"tool\": \"kb\",\n  \"device\": ");
    json_str(f, devname);
    fprintf(f, ",\n  \"device_kind\": \"%s\",\n  \"date\": \"%s\",\n  \"small\": %s,\n", B->device == KB_DEVICE_CUDA ? "cuda" : "cpu",
            date, B->small ? "true" : "false");
    fprintf(f, "  \"iters\": %d,\n  \"repeats\": %d,\n  \"copy_gbs\": ", iters, repeats);
    json_num(f, copy_gbs);
    fprintf(f, ",\n  \"rows\": [\n");
    for (int i = 0; i < n; ++i) {
        const result *x = &res[i];
        char shape[64];
        shape_str(B, x->r->shape, shape, sizeof shape);
        fprintf(f, "    {\"name\": \"%s\", \"shape\": \"%s\", \"unit\": \"%s\", \"formula\": ", x->r->name, shape,
                x->r->flops ? "TFLOP/s" : "GB/s");
        json_str(f, x->r->formula);
        fprintf(f, ", \"amount\": %.17g, \"ms\": ", x->r->amount(B));
        json_num(f, x->ms);
        fprintf(f, ", \"throughput\": ");
        json_num(f, x->ms > 0 ? x->throughput : -1);
        fprintf(f, ", \"frac_copy\": ");
        json_num(f, x->frac);
        fprintf(f, ", \"check\": \"%s\", \"detail\": ", x->status);
        json_str(f, x->msg);
        fprintf(f, "}%s\n", i + 1 < n ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    return fclose(f) == 0;
}

/* ---------------------------------------------------------------------------------------- */

static void run_row(bench *B, const row *r, int iters, int repeats, result *res) {
    res->r = r;
    res->ms = res->throughput = res->frac = -1;
    res->status = "error";
    res->msg[0] = 0;
    /* every row sets the mode it needs, so a failed TF32 row cannot leak TF32 into the next */
    if (kb_set_allow_tf32(B->ctx, r->tf32) != KB_OK) {
        snprintf(res->msg, MSG, "kb_set_allow_tf32: %s", kb_last_error());
        return;
    }
    kb_tensor *y = r->build(B);
    if (!y) {
        snprintf(res->msg, MSG, "building the graph: %s (%s)", kb_last_error(), kb_status_string(kb_last_status()));
        return;
    }
    kb_tensor *outs[MAX_OUT] = {y};
    int n_out = 1 + (r->more ? r->more(B, y, outs + 1) : 0);
    if (n_out < 1) {
        snprintf(res->msg, MSG, "building the extra outputs: %s (%s)", kb_last_error(), kb_status_string(kb_last_status()));
        return;
    }
    kb_tensor *upd[OPT_MAX_UPDATES(CNN_PARAMS)]; /* the most a row's updates() makes */
    int n_upd = r->updates ? r->updates(B, upd) : 0;
    if (n_upd < 0) {
        snprintf(res->msg, MSG, "building the updates: %s (%s)", kb_last_error(), kb_status_string(kb_last_status()));
        return;
    }
    kb_function *fn = kb_function_new(B->ctx, NULL, 0, outs, n_out, upd, n_upd, B->device);
    if (!fn) {
        snprintf(res->msg, MSG, "kb_function_new: %s", kb_last_error());
        return;
    }
    /* warm-up: uploads the variables, plans, allocates the arena, creates library handles */
    for (int i = 0; i < 2; ++i) {
        float first;
        if (kb_function_call(fn, NULL, 0) != KB_OK ||
            (i == 0 && n_upd && kb_function_get_output(fn, 0, &first, sizeof first) != KB_OK)) {
            snprintf(res->msg, MSG, "kb_function_call: %s", kb_last_error());
            kb_function_free(fn);
            return;
        }
        if (i == 0 && n_upd) B->first_loss = first;
    }
#ifdef KB_BENCH_CUDA
    double ms = B->device == KB_DEVICE_CUDA ? time_cuda(B, fn, iters, repeats, res->msg)
                                            : time_cpu(fn, iters, repeats, res->msg);
#else
    double ms = time_cpu(fn, iters, repeats, res->msg);
#endif
    if (ms > 0) {
        res->ms = ms;
        res->throughput = r->amount(B) / (ms * (r->flops ? 1e9 : 1e6));
        out_view o[MAX_OUT];
        int got = 1;
        for (int i = 0; i < n_out && got; ++i) {
            o[i].p = kb_function_output(fn, i, &o[i].dt, &o[i].rank, o[i].shape, &o[i].nbytes);
            got = o[i].p != NULL;
        }
        if (!got) snprintf(res->msg, MSG, "kb_function_output: %s", kb_last_error());
        else res->status = r->check(B, o, res->msg) ? "ok" : "wrong";
    }
    kb_function_free(fn);
}

static int usage(const char *argv0) {
    fprintf(stderr, "usage: %s [--device cuda|cpu] [--rows name,name] [--iters N] [--json out.json] [--small]\nrows:",
            argv0);
    for (int i = 0; i < N_ROWS; ++i) fprintf(stderr, " %s", ROWS[i].name);
    fprintf(stderr, "\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *dev = NULL, *rows_arg = NULL, *json = NULL;
    int iters = 0, small = 0;
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc) dev = argv[++i];
        else if (!strcmp(argv[i], "--rows") && i + 1 < argc) rows_arg = argv[++i];
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else if (!strcmp(argv[i], "--small")) small = 1;
        else return usage(argv[0]);
    }
    if (iters < 0 || (dev && strcmp(dev, "cuda") && strcmp(dev, "cpu"))) return usage(argv[0]);

    /* --rows: pick rows by name, in table order */
    int pick[N_ROWS], n_pick = 0;
    for (int i = 0; i < N_ROWS; ++i) pick[i] = rows_arg == NULL;
    for (const char *p = rows_arg; p && *p;) {
        size_t len = strcspn(p, ",");
        int found = 0;
        for (int i = 0; i < N_ROWS; ++i)
            if (strlen(ROWS[i].name) == len && !strncmp(ROWS[i].name, p, len)) pick[i] = found = 1;
        if (!found) {
            fprintf(stderr, "kb_bench: unknown row '%.*s'\n", (int)len, p);
            return usage(argv[0]);
        }
        p += len + (p[len] == ',');
    }
    for (int i = 0; i < N_ROWS; ++i) n_pick += pick[i];

    bench B;
    memset(&B, 0, sizeof B);
    B.device = dev ? (!strcmp(dev, "cuda") ? KB_DEVICE_CUDA : KB_DEVICE_CPU)
                   : (kb_cuda_device_count() > 0 ? KB_DEVICE_CUDA : KB_DEVICE_CPU);
#ifndef KB_BENCH_CUDA
    if (B.device == KB_DEVICE_CUDA) {
        fprintf(stderr, "kb_bench: built without CUDA (no CUDA events to time with); use --device cpu\n");
        return 1;
    }
#endif
    B.small = small;
    /* --small: every size /64 (elements, or flops for the products) for a quick CPU smoke run */
    int s = small ? 64 : 1, s3 = small ? 4 : 1;
    B.n = (int64_t)64 * 1024 * 1024 / s;
    B.rows = 65536 / s, B.cols = 1024;
    B.tn = 8192 / (small ? 8 : 1);
    B.mm = 4096 / s3;
    B.bb = 256 / s, B.bm = 128, B.bk = 64, B.bn = 128;
    B.cn = 64 / s, B.cc = 128, B.chw = 28, B.co = 128;
    B.pn = 64 / s, B.pc = 256, B.phw = 56;
    B.ctcb = 64 / s, B.lb = 64 / s;
    B.cnnb = small ? 32 : 128;
    if (iters == 0) iters = B.device == KB_DEVICE_CUDA ? 20 : 3;
    int repeats = B.device == KB_DEVICE_CUDA ? REPEATS : 3;

    kb_context_options opts = KB_CONTEXT_OPTIONS_DEFAULTS;
    opts.device = B.device;
    opts.read_config = 0; /* defaults only: float32, no keras.json written by a benchmark */
    if (kb_context_new(&B.ctx, &opts) != KB_OK) {
        fprintf(stderr, "kb_bench: %s\n", kb_last_error());
        return 1;
    }
    const char *devname = kb_context_device_name(B.ctx);

    char msg[MSG] = "";
    size_t copy_bytes = (size_t)1 << (small ? 24 : 30);
#ifdef KB_BENCH_CUDA
    double copy_gbs = B.device == KB_DEVICE_CUDA ? copy_bandwidth_cuda(&B, copy_bytes, msg)
                                                 : copy_bandwidth_cpu(copy_bytes, msg);
#else
    double copy_gbs = copy_bandwidth_cpu(copy_bytes, msg);
#endif
    printf("kb_bench: %s%s, %d calls x %d repeats per row (median), copy %.1f GB/s (%zu MiB, 2 x bytes / time)\n",
           devname, small ? ", --small sizes" : "", iters, repeats, copy_gbs > 0 ? copy_gbs : 0.0, copy_bytes >> 20);
    if (copy_gbs <= 0) fprintf(stderr, "kb_bench: copy bandwidth not measured: %s\n", msg);
    printf("%-10s %-18s %10s %12s %8s  %-6s %s\n", "row", "shape", "ms", "throughput", "of copy", "check", "detail");

    result res[N_ROWS];
    int n_res = 0, failed = 0;
    for (int i = 0; i < N_ROWS; ++i) {
        if (!pick[i]) continue;
        result *x = &res[n_res++];
        run_row(&B, &ROWS[i], iters, repeats, x);
        if (!ROWS[i].flops && x->ms > 0 && copy_gbs > 0) x->frac = x->throughput / copy_gbs;
        failed += strcmp(x->status, "ok") != 0;
        char tp[32] = "-", fr[16] = "-", shape[64];
        shape_str(&B, ROWS[i].shape, shape, sizeof shape);
        if (x->ms > 0) snprintf(tp, sizeof tp, "%.2f %s", x->throughput, ROWS[i].flops ? "TF/s" : "GB/s");
        if (x->frac > 0) snprintf(fr, sizeof fr, "%.3f", x->frac);
        printf("%-10s %-18s %10.4f %12s %8s  %-6s %s\n", ROWS[i].name, shape, x->ms > 0 ? x->ms : 0.0, tp, fr,
               x->status, x->msg);
        fflush(stdout);
    }
    if (json && !write_json(json, &B, devname, copy_gbs, iters, repeats, res, n_res)) {
        fprintf(stderr, "kb_bench: cannot write %s\n", json);
        failed++;
    }
    kb_context_free(B.ctx);
    if (failed) fprintf(stderr, "kb_bench: %d of %d rows failed or gave a wrong value\n", failed, n_pick);
    return failed ? 1 : 0;
}
