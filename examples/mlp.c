/*
 * Train a small multilayer perceptron on a generated 3-class spiral with kb: placeholders,
 * variables, kb_gradients, and SGD written as kb_function updates. Prints the device, the loss
 * per epoch and the final accuracy.
 *
 *   kb_mlp [--device auto|cpu|cuda] [--epochs N] [--lr X] [--seed S]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kb/kb.h>

#define EXAMPLE_NAME "kb_mlp"
#include "example_util.h"

enum { CLASSES = 3, PER_CLASS = 200, N = CLASSES * PER_CLASS, HIDDEN = 64, BATCH = 50 };


/* Glorot-uniform, as Keras' default Dense kernel initialiser. */
static kb_tensor *glorot(kb_context *ctx, int64_t fan_in, int64_t fan_out, const char *name) {
    float *w = malloc(sizeof(float) * (size_t)(fan_in * fan_out));
    double limit = sqrt(6.0 / (double)(fan_in + fan_out));
    for (int64_t i = 0; i < fan_in * fan_out; ++i) w[i] = (float)((2 * urand() - 1) * limit);
    int64_t shape[2] = {fan_in, fan_out};
    kb_tensor *v = kb_variable(ctx, w, sizeof(float) * (size_t)(fan_in * fan_out), KB_FLOAT32, shape, 2, name);
    free(w);
    return v;
}

int main(int argc, char **argv) {
    kb_device device = KB_DEVICE_AUTO;
    int epochs = 40;
    double lr = 0.5;
    rng_state = 42;
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc) {
            const char *d = argv[++i];
            device = !strcmp(d, "cpu") ? KB_DEVICE_CPU : !strcmp(d, "cuda") ? KB_DEVICE_CUDA : KB_DEVICE_AUTO;
        } else if (!strcmp(argv[i], "--epochs") && i + 1 < argc) {
            epochs = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--lr") && i + 1 < argc) {
            lr = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            rng_state = strtoull(argv[++i], NULL, 10) | 1;
        } else {
            fprintf(stderr, "usage: %s [--device auto|cpu|cuda] [--epochs N] [--lr X] [--seed S]\n", argv[0]);
            return 2;
        }
    }

    kb_context_options opts = KB_CONTEXT_OPTIONS_DEFAULTS;
    opts.device = device;
    kb_context *ctx;
    if (kb_context_new(&ctx, &opts) != KB_OK) {
        fprintf(stderr, "kb_mlp: %s\n", kb_last_error());
        return 1;
    }
    printf("kb_mlp: device %s, backend config '%s', floatx %s\n", kb_context_device_name(ctx), kb_backend(ctx),
           kb_dtype_name(kb_floatx(ctx)));

    /* data: three interleaved spiral arms with noise */
    static float xs[N * 2], ys[N * CLASSES];
    memset(ys, 0, sizeof ys);
    for (int c = 0; c < CLASSES; ++c)
        for (int i = 0; i < PER_CLASS; ++i) {
            double r = (double)i / PER_CLASS, t = c * 4.0 + 4.0 * r + 0.2 * (urand() - 0.5);
            int k = c * PER_CLASS + i;
            xs[2 * k] = (float)(r * sin(t));
            xs[2 * k + 1] = (float)(r * cos(t));
            ys[k * CLASSES + c] = 1.0f;
        }

    /* model: 2 -> 64 relu -> 64 relu -> 3 softmax */
    int64_t xshape[2] = {KB_NONE, 2}, yshape[2] = {KB_NONE, CLASSES};
    kb_tensor *x = kb_placeholder(ctx, xshape, 2, KB_FLOAT32, "x");
    kb_tensor *y = kb_placeholder(ctx, yshape, 2, KB_FLOAT32, "y");
    int64_t h[1] = {HIDDEN}, o[1] = {CLASSES};
    kb_tensor *w1 = glorot(ctx, 2, HIDDEN, "w1"), *b1 = kb_zeros(ctx, h, 1, KB_FLOAT32, "b1");
    kb_tensor *w2 = glorot(ctx, HIDDEN, HIDDEN, "w2"), *b2 = kb_zeros(ctx, h, 1, KB_FLOAT32, "b2");
    kb_tensor *w3 = glorot(ctx, HIDDEN, CLASSES, "w3"), *b3 = kb_zeros(ctx, o, 1, KB_FLOAT32, "b3");
    kb_tensor *a1 = kb_relu(kb_add(kb_dot(x, w1), b1), 0, INFINITY, 0);
    kb_tensor *a2 = kb_relu(kb_add(kb_dot(a1, w2), b2), 0, INFINITY, 0);
    kb_tensor *p = kb_softmax(kb_add(kb_dot(a2, w3), b3), -1);
    kb_tensor *loss = kb_mean(kb_categorical_crossentropy(y, p, 0, -1), NULL, 0, 0);
    CHECK(loss);

    kb_tensor *params[6] = {w1, b1, w2, b2, w3, b3}, *grads[6];
    CHECK(kb_gradients(loss, params, 6, grads) == KB_OK);
    kb_tensor *updates[6];
    kb_tensor *rate = kb_constant_scalar(ctx, lr, KB_FLOAT32, NULL, 0);
    for (int i = 0; i < 6; ++i) CHECK(updates[i] = kb_update_sub(params[i], kb_multiply(rate, grads[i])));

    kb_tensor *ins[2] = {x, y}, *outs[2] = {loss, p};
    kb_function *train = kb_function_new(ctx, ins, 2, outs, 1, updates, 6, device);
    kb_function *predict = kb_function_new(ctx, ins, 2, outs, 2, NULL, 0, device);
    CHECK(train && predict);
    printf("kb_mlp: training on %s, %d samples, batch %d, lr %g\n",
           kb_function_device(train) == KB_DEVICE_CUDA ? "cuda" : "cpu", N, BATCH, lr);

    int order[N];
    for (int i = 0; i < N; ++i) order[i] = i;
    float bx[BATCH * 2], by[BATCH * CLASSES];
    for (int e = 1; e <= epochs; ++e) {
        for (int i = N - 1; i > 0; --i) { /* shuffle */
            int j = (int)(urand() * (i + 1)), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        double total = 0;
        for (int b = 0; b < N / BATCH; ++b) {
            for (int i = 0; i < BATCH; ++i) {
                int k = order[b * BATCH + i];
                memcpy(&bx[2 * i], &xs[2 * k], 2 * sizeof(float));
                memcpy(&by[CLASSES * i], &ys[CLASSES * k], CLASSES * sizeof(float));
            }
            int64_t sx[2] = {BATCH, 2}, sy[2] = {BATCH, CLASSES};
            kb_feed feeds[2] = {{bx, sizeof bx, KB_FLOAT32, 2, sx, NULL}, {by, sizeof by, KB_FLOAT32, 2, sy, NULL}};
            CHECK(kb_function_call(train, feeds, 2) == KB_OK);
            float l;
            CHECK(kb_function_get_output(train, 0, &l, sizeof l) == KB_OK);
            total += l;
        }
        printf("epoch %3d  loss %.4f\n", e, total / (N / BATCH));
    }

    int64_t sx[2] = {N, 2}, sy[2] = {N, CLASSES};
    kb_feed feeds[2] = {{xs, sizeof xs, KB_FLOAT32, 2, sx, NULL}, {ys, sizeof ys, KB_FLOAT32, 2, sy, NULL}};
    CHECK(kb_function_call(predict, feeds, 2) == KB_OK);
    const float *probs = kb_function_output(predict, 1, NULL, NULL, NULL, NULL);
    float final_loss;
    CHECK(kb_function_get_output(predict, 0, &final_loss, sizeof final_loss) == KB_OK);
    int correct = 0;
    for (int i = 0; i < N; ++i) {
        int best = 0;
        for (int c = 1; c < CLASSES; ++c)
            if (probs[i * CLASSES + c] > probs[i * CLASSES + best]) best = c;
        correct += ys[i * CLASSES + best] == 1.0f;
    }
    printf("kb_mlp: final loss %.4f, accuracy %.1f%% (%d/%d)\n", final_loss, 100.0 * correct / N, correct, N);
    kb_memory_stats ms;
    if (kb_memory_stats_get(ctx, &ms) == KB_OK && ms.device == KB_DEVICE_CUDA)
        printf("kb_mlp: device pool: in use %zu B, peak %zu B, reserved %zu B\n", ms.in_use, ms.peak, ms.reserved);
    kb_function_free(train);
    kb_function_free(predict);
    kb_context_free(ctx);
    return 0;
}
