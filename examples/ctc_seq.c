/*
 * Train a small bidirectional GRU with CTC on generated sequences with kb: each sequence shows a
 * random string of 1..MAX_LABEL symbols, every symbol as a noisy one-hot for 2..4 frames, with
 * noise-only frames between and around them; the model reads the frames and must output the
 * string. Written against the public API only: placeholders, variables with Keras' default
 * initialisers, kb_cudnn_gru forwards and on the reversed sequence, a time-distributed dense +
 * softmax, kb_ctc_batch_cost as the loss, kb_gradients, Adam written as kb_function updates, and
 * kb_ctc_decode (greedy during training, greedy and beam search at the end) on a held-out set.
 * Prints the device, the seed, the loss and the label error rate (edit distance / label length).
 *
 *   kb_ctc_seq [--device auto|cpu|cuda] [--steps N] [--batch N] [--lr X] [--seed S] [--quick]
 *
 * Exit status: 0 when the model learned (final greedy LER < 0.5 x the initial one and below a
 * threshold: 0.3 with --quick, 0.1 otherwise), 3 when it did not, 1 on a kb error, 2 on bad flags.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kb/kb.h>

#include "optimizers.h"

#define EXAMPLE_NAME "kb_ctc_seq"
#include "example_util.h"

enum {
    K = 6,         /* alphabet size; class K is the CTC blank (Keras: the last class) */
    C = K + 1,     /* softmax classes */
    F = K + 2,     /* features per frame: the noisy one-hot of the symbol + 2 noise-only features */
    T = 32,        /* frames per sequence */
    MAX_LABEL = 6, /* labels per sequence: 1..MAX_LABEL */
    UNITS = 32,    /* GRU units per direction */
    EVAL_N = 200,  /* held-out sequences */
    BEAM = 8
};
static const double NOISE = 0.3; /* standard deviation of the Gaussian noise on every feature */

static int irand(int lo, int hi) { return lo + (int)(urand() * (hi - lo + 1)); } /* lo..hi */
static double nrand(void) { /* Box-Muller */
    double u = urand(), v = urand();
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

/* One sequence: x (T, F), labels (MAX_LABEL) padded with -1; returns the label length. */
static int make_sequence(float *x, int *labels) {
    int len = irand(1, MAX_LABEL), dur[MAX_LABEL], gap[MAX_LABEL + 1], used;
    do { /* symbol durations 2..4, gaps of 1..3 noise frames between symbols, 0..3 around */
        used = 0;
        for (int i = 0; i <= len; ++i) used += gap[i] = (i == 0 || i == len) ? irand(0, 3) : irand(1, 3);
        for (int i = 0; i < len; ++i) used += dur[i] = irand(2, 4);
    } while (used > T);
    for (int i = 0; i < T * F; ++i) x[i] = (float)(NOISE * nrand());
    int t = gap[0];
    for (int i = 0; i < MAX_LABEL; ++i) labels[i] = -1;
    for (int i = 0; i < len; ++i) {
        labels[i] = irand(0, K - 1);
        for (int d = 0; d < dur[i]; ++d, ++t) x[t * F + labels[i]] += 1.0f;
        t += gap[i + 1];
    }
    return len;
}

/* Keras glorot_uniform for a (fan_in, fan_out) kernel. */
static void glorot_fill(float *w, int64_t fan_in, int64_t fan_out) {
    double limit = sqrt(6.0 / (double)(fan_in + fan_out));
    for (int64_t i = 0; i < fan_in * fan_out; ++i) w[i] = (float)((2 * urand() - 1) * limit);
}
/* Keras orthogonal for a (rows, cols) kernel with rows <= cols: orthonormal rows of a Gaussian
 * matrix (Gram-Schmidt, the same span as Keras' QR). */
static void orthogonal_fill(float *w, int rows, int cols) {
    double *m = malloc(sizeof(double) * (size_t)rows * (size_t)cols);
    for (int i = 0; i < rows * cols; ++i) m[i] = nrand();
    for (int r = 0; r < rows; ++r) {
        double *a = m + (size_t)r * cols;
        for (int q = 0; q < r; ++q) {
            const double *b = m + (size_t)q * cols;
            double d = 0;
            for (int j = 0; j < cols; ++j) d += a[j] * b[j];
            for (int j = 0; j < cols; ++j) a[j] -= d * b[j];
        }
        double n = 0;
        for (int j = 0; j < cols; ++j) n += a[j] * a[j];
        n = sqrt(n);
        for (int j = 0; j < cols; ++j) a[j] /= n;
    }
    for (int i = 0; i < rows * cols; ++i) w[i] = (float)m[i];
    free(m);
}
static kb_tensor *weight(kb_context *ctx, int64_t rows, int64_t cols, int orthogonal, const char *name) {
    float *w = malloc(sizeof(float) * (size_t)(rows * cols));
    if (orthogonal) orthogonal_fill(w, (int)rows, (int)cols);
    else glorot_fill(w, rows, cols);
    int64_t shape[2] = {rows, cols};
    kb_tensor *v = kb_variable(ctx, w, sizeof(float) * (size_t)(rows * cols), KB_FLOAT32, shape, 2, name);
    free(w);
    return v;
}

/* Levenshtein distance between two label strings. */
static int edit_distance(const int *a, int na, const int *b, int nb) {
    int row[T + 1];
    for (int j = 0; j <= nb; ++j) row[j] = j;
    for (int i = 1; i <= na; ++i) {
        int diag = row[0];
        row[0] = i;
        for (int j = 1; j <= nb; ++j) {
            int up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[nb];
}
static void format_labels(char *out, const int *l, int n) {
    for (int i = 0; i < n; ++i) out[i] = (char)('a' + l[i]);
    out[n] = 0;
    if (n == 0) strcpy(out, "(empty)");
}

/* The held-out set and the evaluation: decode with fn (output 0 = int64 (N, T) paths padded
 * with -1), return the label error rate; writes a sample "truth -> decoded" for sequence 0. */
static float eval_x[EVAL_N * T * F];
static int eval_y[EVAL_N * MAX_LABEL], eval_len[EVAL_N];
static double evaluate(kb_function *fn, char *sample, size_t sample_size) {
    int64_t sx[3] = {EVAL_N, T, F};
    kb_feed feed = {eval_x, sizeof eval_x, KB_FLOAT32, 3, sx, NULL};
    CHECK(kb_function_call(fn, &feed, 1) == KB_OK);
    int rank;
    int64_t shape[KB_MAX_RANK];
    kb_dtype dt;
    const int64_t *paths = kb_function_output(fn, 0, &dt, &rank, shape, NULL);
    CHECK(paths && dt == KB_INT64 && rank == 2 && shape[0] == EVAL_N && shape[1] == T);
    long errors = 0, total = 0;
    for (int b = 0; b < EVAL_N; ++b) {
        int dec[T], n = 0;
        for (int t = 0; t < T && paths[b * T + t] >= 0; ++t) dec[n++] = (int)paths[b * T + t];
        errors += edit_distance(&eval_y[b * MAX_LABEL], eval_len[b], dec, n);
        total += eval_len[b];
        if (b == 0 && sample) {
            char truth[T + 8], got[T + 8];
            format_labels(truth, &eval_y[0], eval_len[0]);
            format_labels(got, dec, n);
            snprintf(sample, sample_size, "%s -> %s", truth, got);
        }
    }
    return (double)errors / (double)total;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int usage(const char *argv0) {
    fprintf(stderr, "usage: %s [--device auto|cpu|cuda] [--steps N] [--batch N] [--lr X] [--seed S] [--quick]\n", argv0);
    return 2;
}

int main(int argc, char **argv) {
    kb_device device = KB_DEVICE_AUTO;
    int steps = -1, batch = 32, quick = 0;
    double lr = 0.01;
    uint64_t seed = 1;
    for (int i = 1; i < argc; ++i) {
        char *end = NULL;
        if (!strcmp(argv[i], "--device") && i + 1 < argc) {
            const char *d = argv[++i];
            if (!strcmp(d, "cpu")) device = KB_DEVICE_CPU;
            else if (!strcmp(d, "cuda")) device = KB_DEVICE_CUDA;
            else if (!strcmp(d, "auto")) device = KB_DEVICE_AUTO;
            else return usage(argv[0]);
        } else if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 10000000) return usage(argv[0]);
            steps = (int)v;
        } else if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 4096) return usage(argv[0]);
            batch = (int)v;
        } else if (!strcmp(argv[i], "--lr") && i + 1 < argc) {
            lr = strtod(argv[++i], &end);
            if (*end || !(lr > 0) || !isfinite(lr)) return usage(argv[0]);
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            const char *s = argv[++i];
            if (*s == '-') return usage(argv[0]);
            seed = strtoull(s, &end, 10);
            if (*end || !*s) return usage(argv[0]);
        } else if (!strcmp(argv[i], "--quick")) {
            quick = 1;
        } else {
            return usage(argv[0]);
        }
    }
    if (steps < 0) steps = quick ? 300 : 1000;
    const int every = quick ? 50 : 100;
    const double threshold = quick ? 0.3 : 0.1;
    rng_state = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    if (!rng_state) rng_state = 1;

    kb_context_options opts = KB_CONTEXT_OPTIONS_DEFAULTS;
    opts.device = device;
    opts.seed = seed;
    kb_context *ctx;
    if (kb_context_new(&ctx, &opts) != KB_OK) {
        fprintf(stderr, "kb_ctc_seq: %s\n", kb_last_error());
        return 1;
    }
    printf("kb_ctc_seq: device %s, seed %llu\n", kb_context_device_name(ctx), (unsigned long long)seed);
    fflush(stdout);

    /* graph: x (B, T, F) -> [GRU forwards | GRU on the reversed frames, re-reversed] (B, T, 2U)
     * -> dense (2U -> C) on the last axis -> softmax -> CTC cost against y (B, MAX_LABEL) */
    int64_t xs[3] = {KB_NONE, T, F}, ys[2] = {KB_NONE, MAX_LABEL}, ls[2] = {KB_NONE, 1};
    kb_tensor *x = kb_placeholder(ctx, xs, 3, KB_FLOAT32, "x");
    kb_tensor *y = kb_placeholder(ctx, ys, 2, KB_INT32, "labels");
    kb_tensor *in_len = kb_placeholder(ctx, ls, 2, KB_INT32, "input_length");
    kb_tensor *lab_len = kb_placeholder(ctx, ls, 2, KB_INT32, "label_length");
    CHECK(x && y && in_len && lab_len);
    int64_t gru_bias[1] = {6 * UNITS}, dense_bias[1] = {C};
    kb_tensor *kf = weight(ctx, F, 3 * UNITS, 0, "fw_kernel"), *rf = weight(ctx, UNITS, 3 * UNITS, 1, "fw_recurrent");
    kb_tensor *bf = kb_zeros(ctx, gru_bias, 1, KB_FLOAT32, "fw_bias");
    kb_tensor *kbw = weight(ctx, F, 3 * UNITS, 0, "bw_kernel"), *rbw = weight(ctx, UNITS, 3 * UNITS, 1, "bw_recurrent");
    kb_tensor *bbw = kb_zeros(ctx, gru_bias, 1, KB_FLOAT32, "bw_bias");
    kb_tensor *wd = weight(ctx, 2 * UNITS, C, 0, "dense_kernel"), *bd = kb_zeros(ctx, dense_bias, 1, KB_FLOAT32, "dense_bias");
    CHECK(kf && rf && bf && kbw && rbw && bbw && wd && bd);

    int time_axis = 1;
    kb_tensor *fw = NULL, *bw = NULL;
    CHECK(kb_cudnn_gru(x, NULL, kf, rf, bf, 0, &fw, NULL) == KB_OK);
    CHECK(kb_cudnn_gru(kb_reverse(x, &time_axis, 1), NULL, kbw, rbw, bbw, 0, &bw, NULL) == KB_OK);
    kb_tensor *both[2] = {fw, kb_reverse(bw, &time_axis, 1)};
    kb_tensor *y_pred = kb_softmax(kb_add(kb_dot(kb_concatenate(both, 2, -1), wd), bd), -1);
    kb_tensor *loss = kb_mean(kb_ctc_batch_cost(y, y_pred, in_len, lab_len), NULL, 0, 0);
    CHECK(loss);

    /* Adam with Keras' defaults (beta_1 0.9, beta_2 0.999, epsilon 1e-7) as updates */
    enum { NP = 8 };
    kb_tensor *params[NP] = {kf, rf, bf, kbw, rbw, bbw, wd, bd}, *grads[NP], *updates[OPT_MAX_UPDATES(NP)];
    CHECK(kb_gradients(loss, params, NP, grads) == KB_OK);
    for (int i = 0; i < NP; ++i) CHECK(grads[i]);
    int n_updates = 0;
    CHECK(opt_updates(ctx, "adam", lr, params, grads, NP, updates, &n_updates) == KB_OK);

    /* decoders for the held-out set (input_length T for every sequence) */
    int64_t eval_ls[1] = {EVAL_N};
    kb_tensor *eval_len_t = kb_constant_scalar(ctx, T, KB_INT32, eval_ls, 1);
    kb_tensor *greedy_paths, *greedy_lp, *beam_paths, *beam_lp;
    CHECK(kb_ctc_decode(y_pred, eval_len_t, 1, 0, 1, 0, &greedy_paths, &greedy_lp) == KB_OK);
    CHECK(kb_ctc_decode(y_pred, eval_len_t, 0, BEAM, 1, 0, &beam_paths, &beam_lp) == KB_OK);

    kb_tensor *train_in[4] = {x, y, in_len, lab_len};
    kb_function *train = kb_function_new(ctx, train_in, 4, &loss, 1, updates, n_updates, device);
    kb_function *greedy = kb_function_new(ctx, &x, 1, &greedy_paths, 1, NULL, 0, device);
    kb_function *beam = kb_function_new(ctx, &x, 1, &beam_paths, 1, NULL, 0, device);
    CHECK(train && greedy && beam);
    printf("kb_ctc_seq: training on %s: %d steps of %d fresh sequences (T %d, %d features, 1..%d labels over %d "
           "symbols), bidirectional GRU %d+%d units, Adam lr %g\n",
           kb_function_device(train) == KB_DEVICE_CUDA ? "cuda" : "cpu", steps, batch, T, F, MAX_LABEL, K, UNITS,
           UNITS, lr);

    for (int b = 0; b < EVAL_N; ++b) eval_len[b] = make_sequence(&eval_x[b * T * F], &eval_y[b * MAX_LABEL]);
    char sample[3 * T + 16];
    double initial = evaluate(greedy, sample, sizeof sample), ler = initial;
    printf("step %5d  loss      -  LER %.3f  %s\n", 0, initial, sample);

    float *bx = malloc(sizeof(float) * (size_t)batch * T * F);
    int *by = malloc(sizeof(int) * (size_t)batch * MAX_LABEL), *bil = malloc(sizeof(int) * (size_t)batch),
        *bll = malloc(sizeof(int) * (size_t)batch);
    CHECK(bx && by && bil && bll);
    double t0 = now(), loss_sum = 0;
    int loss_n = 0;
    for (int s = 1; s <= steps; ++s) {
        for (int b = 0; b < batch; ++b) {
            bll[b] = make_sequence(&bx[(size_t)b * T * F], &by[(size_t)b * MAX_LABEL]);
            bil[b] = T;
        }
        int64_t sx[3] = {batch, T, F}, sy[2] = {batch, MAX_LABEL}, sl[2] = {batch, 1};
        kb_feed feeds[4] = {{bx, sizeof(float) * (size_t)batch * T * F, KB_FLOAT32, 3, sx, NULL},
                            {by, sizeof(int) * (size_t)batch * MAX_LABEL, KB_INT32, 2, sy, NULL},
                            {bil, sizeof(int) * (size_t)batch, KB_INT32, 2, sl, NULL},
                            {bll, sizeof(int) * (size_t)batch, KB_INT32, 2, sl, NULL}};
        CHECK(kb_function_call(train, feeds, 4) == KB_OK);
        float l;
        CHECK(kb_function_get_output(train, 0, &l, sizeof l) == KB_OK);
        loss_sum += l;
        ++loss_n;
        if (s % every == 0 || s == steps) {
            ler = evaluate(greedy, sample, sizeof sample);
            printf("step %5d  loss %7.3f  LER %.3f  %s\n", s, loss_sum / loss_n, ler, sample);
            fflush(stdout);
            loss_sum = 0;
            loss_n = 0;
        }
    }
    double secs = now() - t0;
    double beam_ler = evaluate(beam, NULL, 0);
    printf("kb_ctc_seq: %d steps in %.1f s; held-out LER: initial %.3f, greedy %.3f, beam search (width %d) %.3f\n",
           steps, secs, initial, ler, BEAM, beam_ler);
    int learned = ler < 0.5 * initial && ler < threshold;
    printf("kb_ctc_seq: %s (needs final greedy LER < 0.5 x initial and < %.2f)\n", learned ? "learned" : "DID NOT LEARN",
           threshold);
    free(bx);
    free(by);
    free(bil);
    free(bll);
    kb_function_free(train);
    kb_function_free(greedy);
    kb_function_free(beam);
    kb_context_free(ctx);
    return learned ? 0 : 3;
}
