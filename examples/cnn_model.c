/* The mnist_cnn model and the optimizers: see cnn_model.h. */
#include "cnn_model.h"

#include <math.h>
#include <string.h>

/* Keras glorot_uniform: limit sqrt(6 / (fan_in + fan_out)), where a conv kernel (kh, kw, in, out)
 * has fan_in = kh*kw*in and fan_out = kh*kw*out, and a dense kernel (in, out) in and out. */
static kb_tensor *glorot(kb_context *ctx, const int64_t *shape, int rank, const char *name, int64_t seed) {
    int64_t receptive = 1;
    for (int i = 0; i < rank - 2; ++i) receptive *= shape[i];
    int64_t fan_in = receptive * shape[rank - 2], fan_out = receptive * shape[rank - 1];
    double limit = sqrt(6.0 / (double)(fan_in + fan_out));
    return kb_random_uniform_variable(ctx, shape, rank, -limit, limit, KB_FLOAT32, name, seed);
}

static kb_tensor *relu(kb_tensor *x) { return kb_relu(x, 0, INFINITY, 0); }

kb_status cnn_build(kb_context *ctx, kb_data_format_arg fmt, int64_t seed, kb_tensor *x, kb_tensor *y,
                    kb_tensor *training, cnn_model *m) {
    memset(m, 0, sizeof *m);
    int cf = fmt == KB_DATA_FORMAT_CHANNELS_FIRST ||
             (fmt == KB_DATA_FORMAT_DEFAULT && kb_image_data_format(ctx) == KB_CHANNELS_FIRST);
    m->channels_first = cf;
    int64_t xs[4] = {KB_NONE, cf ? 1 : CNN_H, cf ? CNN_H : CNN_W, cf ? CNN_W : 1}, ys[2] = {KB_NONE, CNN_CLASSES};
    m->x = x ? x : kb_placeholder(ctx, xs, 4, KB_FLOAT32, "images");
    m->y = y ? y : kb_placeholder(ctx, ys, 2, KB_FLOAT32, "labels");
    if (!m->x || !m->y) return kb_last_status();

    static const int64_t k1[4] = {3, 3, 1, 32}, k2[4] = {3, 3, 32, 64}, w3[2] = {12 * 12 * 64, 128},
                         w4[2] = {128, CNN_CLASSES}, b1[1] = {32}, b2[1] = {64}, b3[1] = {128}, b4[1] = {CNN_CLASSES};
    static const char *const names[CNN_PARAMS] = {"conv1/kernel", "conv1/bias",   "conv2/kernel", "conv2/bias",
                                                  "dense1/kernel", "dense1/bias", "dense2/kernel", "dense2/bias"};
    const int64_t *shapes[CNN_PARAMS] = {k1, b1, k2, b2, w3, b3, w4, b4};
    const int ranks[CNN_PARAMS] = {4, 1, 4, 1, 2, 1, 2, 1};
    kb_tensor **p = m->params;
    for (int i = 0; i < CNN_PARAMS; ++i) {
        p[i] = i % 2 ? kb_zeros(ctx, shapes[i], ranks[i], KB_FLOAT32, names[i])
                     : glorot(ctx, shapes[i], ranks[i], names[i], seed + 1 + i / 2);
        if (!p[i]) return kb_last_status();
        int64_t n = 1;
        for (int d = 0; d < ranks[i]; ++d) n *= shapes[i][d];
        m->n_weights += n;
    }

    /* Every op returns NULL on an error and passes a NULL input on, so one check at the end
     * reports the first failure. */
    kb_data_format_arg f = cf ? KB_DATA_FORMAT_CHANNELS_FIRST : KB_DATA_FORMAT_CHANNELS_LAST;
    const int64_t pool[2] = {2, 2};
    kb_tensor *h = relu(kb_bias_add(kb_conv2d(m->x, p[0], NULL, KB_PADDING_VALID, f, NULL), p[1], f));
    h = relu(kb_bias_add(kb_conv2d(h, p[2], NULL, KB_PADDING_VALID, f, NULL), p[3], f));
    h = kb_pool2d(h, pool, pool, KB_PADDING_VALID, f, KB_POOL_MAX);
    h = kb_in_train_phase(kb_dropout(h, 0.25, NULL, 0, seed + 5), h, training);
    h = kb_batch_flatten(h);
    h = relu(kb_add(kb_dot(h, p[4]), p[5]));
    h = kb_in_train_phase(kb_dropout(h, 0.5, NULL, 0, seed + 6), h, training);
    m->probs = kb_softmax(kb_add(kb_dot(h, p[6]), p[7]), -1);
    kb_tensor *ce = kb_categorical_crossentropy(m->y, m->probs, 0, -1);
    m->loss = kb_mean(ce, NULL, 0, 0);
    m->loss_sum = kb_sum(ce, NULL, 0, 0);
    m->correct = kb_sum(kb_cast(kb_equal(kb_argmax(m->probs, -1), kb_argmax(m->y, -1)), KB_FLOAT32), NULL, 0, 0);
    return m->loss && m->loss_sum && m->correct ? KB_OK : kb_last_status();
}
