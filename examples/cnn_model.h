/*
 * The Keras mnist_cnn model, built with kb's public API. Shared by the example
 * (examples/mnist_cnn.c) and the benchmark's training-step rows (bench/kb_bench.c), so both time
 * and train the same graph.
 *
 *   conv 3x3 x32, relu, conv 3x3 x64, relu, max pool 2x2, dropout 0.25, flatten,
 *   dense 128, relu, dropout 0.5, dense 10, softmax, categorical crossentropy
 */
#ifndef KB_EXAMPLES_CNN_MODEL_H
#define KB_EXAMPLES_CNN_MODEL_H

#include <kb/kb.h>

enum { CNN_H = 28, CNN_W = 28, CNN_CLASSES = 10, CNN_PARAMS = 8 };

typedef struct cnn_model {
    int channels_first;                        /* the layout chosen (x is (N,1,28,28) or (N,28,28,1)) */
    kb_tensor *x, *y;                          /* inputs: images in [0, 1], one-hot labels (N, 10) */
    kb_tensor *probs;                          /* softmax output (N, 10) */
    kb_tensor *loss;                           /* mean categorical crossentropy (scalar) */
    kb_tensor *loss_sum, *correct;             /* for evaluation: summed loss, number of right argmaxes */
    kb_tensor *params[CNN_PARAMS];             /* conv1 kernel, bias, conv2 kernel, bias, dense1, dense2 */
    int64_t n_weights;
} cnn_model;

/*
 * Build the model on placeholders (x, y given NULL) or on the given tensors (the benchmark passes
 * variables holding one batch). \p training selects dropout: NULL means the learning phase.
 * Kernels start glorot-uniform from \p seed, biases at zero, as Keras' defaults.
 * Returns KB_OK or the first error (kb_last_error() has the message).
 */
kb_status cnn_build(kb_context *ctx, kb_data_format_arg fmt, int64_t seed, kb_tensor *x, kb_tensor *y,
                    kb_tensor *training, cnn_model *m);

#endif
