/*
 * The Keras mnist_cnn example, on Fashion-MNIST, written against kb's public API only.
 *
 *   conv 3x3 x32, relu, conv 3x3 x64, relu, max pool 2x2, dropout 0.25, flatten,
 *   dense 128, relu, dropout 0.5, dense 10, softmax, categorical crossentropy
 *
 * Variables start from Keras' default initialisers (glorot uniform kernels, zero biases); the
 * optimizer (Adam, Adadelta or SGD with momentum, with Keras 2's update rules) is a list of
 * kb_function updates; dropout follows the learning phase, fed 1 to the training function.
 * Data: the IDX files of Debian's dataset-fashion-mnist package (read with zlib, see idx.c).
 *
 *   kb_mnist_cnn [--device auto|cpu|cuda] [--epochs N] [--batch N] [--optimizer adam|adadelta|sgd]
 *                [--lr X] [--seed S] [--train-limit N] [--test-limit N] [--data-format cl|cf]
 *                [--data DIR] [--profile] [--trace FILE] [--expect-accuracy A]
 *
 * Without --epochs / --train-limit the run fits the device: 12 epochs of all 60000 images on a
 * GPU; on a CPU 1 epoch of the first 12000 images (it says so), which takes a few minutes.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, isatty */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <kb/kb.h>

#include "cnn_model.h"
#include "idx.h"
#include "optimizers.h"

#define EXAMPLE_NAME "kb_mnist_cnn"
#include "example_util.h"

enum { H = CNN_H, W = CNN_W, CLASSES = CNN_CLASSES };

static const char *const class_names[CLASSES] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

typedef struct options {
    kb_device device;
    int epochs;        /* -1: by device */
    int batch;
    const char *optimizer;
    double lr;         /* < 0: the optimizer's Keras default */
    int64_t seed;
    int64_t train_limit, test_limit; /* -1: by device / all */
    kb_data_format_arg data_format;
    const char *data_dir;
    int profile;
    const char *trace;
    double expect_accuracy; /* < 0: none */
} options;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s [--device auto|cpu|cuda] [--epochs N] [--batch N] [--optimizer adam|adadelta|sgd]\n"
            "          [--lr X] [--seed S] [--train-limit N] [--test-limit N] [--data-format cl|cf]\n"
            "          [--data DIR] [--profile] [--trace FILE] [--expect-accuracy A]\n",
            argv0);
}

static int parse_options(int argc, char **argv, options *o) {
    *o = (options){KB_DEVICE_AUTO, -1, 128, "adam", -1, 1, -1, -1, KB_DATA_FORMAT_DEFAULT,
                   "/usr/share/datasets/fashion-mnist", 0, NULL, -1};
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(argv[0]);
            exit(0);
        }
        if (!strcmp(a, "--profile")) {
            o->profile = 1;
            continue;
        }
        static const char *const valued[] = {"--device", "--epochs", "--batch", "--optimizer", "--lr",
                                             "--seed", "--train-limit", "--test-limit", "--data-format",
                                             "--data", "--trace", "--expect-accuracy"};
        int known = 0;
        for (size_t k = 0; k < sizeof valued / sizeof *valued; ++k) known |= !strcmp(a, valued[k]);
        if (!known || !v) {
            fprintf(stderr, known ? "%s: %s needs a value\n" : "%s: unknown option %s\n", argv[0], a);
            return -1;
        }
        ++i;
        if (!strcmp(a, "--device")) {
            if (!strcmp(v, "cpu")) o->device = KB_DEVICE_CPU;
            else if (!strcmp(v, "cuda")) o->device = KB_DEVICE_CUDA;
            else if (!strcmp(v, "auto")) o->device = KB_DEVICE_AUTO;
            else end = (char *)v;
        } else if (!strcmp(a, "--epochs")) {
            o->epochs = (int)strtol(v, &end, 10);
            if (o->epochs < 1) end = (char *)v;
        } else if (!strcmp(a, "--batch")) {
            o->batch = (int)strtol(v, &end, 10);
            if (o->batch < 1) end = (char *)v;
        } else if (!strcmp(a, "--optimizer")) {
            o->optimizer = v;
            if (strcmp(v, "adam") && strcmp(v, "adadelta") && strcmp(v, "sgd")) end = (char *)v;
        } else if (!strcmp(a, "--lr")) {
            o->lr = strtod(v, &end);
            if (!(o->lr > 0)) end = (char *)v;
        } else if (!strcmp(a, "--seed")) {
            o->seed = strtoll(v, &end, 10);
            if (o->seed < 0) end = (char *)v;
        } else if (!strcmp(a, "--train-limit")) {
            o->train_limit = strtoll(v, &end, 10);
            if (o->train_limit < 1) end = (char *)v;
        } else if (!strcmp(a, "--test-limit")) {
            o->test_limit = strtoll(v, &end, 10);
            if (o->test_limit < 1) end = (char *)v;
        } else if (!strcmp(a, "--data-format")) {
            if (!strcmp(v, "cl") || !strcmp(v, "channels_last")) o->data_format = KB_DATA_FORMAT_CHANNELS_LAST;
            else if (!strcmp(v, "cf") || !strcmp(v, "channels_first")) o->data_format = KB_DATA_FORMAT_CHANNELS_FIRST;
            else end = (char *)v;
        } else if (!strcmp(a, "--data")) {
            o->data_dir = v;
        } else if (!strcmp(a, "--trace")) {
            o->trace = v;
            o->profile = 1;
        } else if (!strcmp(a, "--expect-accuracy")) {
            o->expect_accuracy = strtod(v, &end);
            if (!(o->expect_accuracy >= 0 && o->expect_accuracy <= 1)) end = (char *)v;
        }
        if (end && *end) {
            fprintf(stderr, "%s: bad value '%s' for %s\n", argv[0], v, a);
            return -1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* Data                                                                                           */
/* ---------------------------------------------------------------------------------------------- */

typedef struct dataset {
    int64_t n;
    float *x;  /* n x 784, in [0, 1] */
    float *y;  /* n x 10, one-hot */
    uint8_t *label;
} dataset;

/* images + labels "<dir>/<prefix>-images-idx3-ubyte.gz" / "-labels-idx1-ubyte.gz", the first
 * \p limit of them (all when limit < 0). 0, or -1 with the message printed. */
static int load_split(const char *dir, const char *prefix, int64_t limit, dataset *out) {
    char ip[4096], lp[4096], err[4608];
    snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    idx_array im, lb;
    if (idx_load(ip, 3, &im, err, sizeof err)) {
        fprintf(stderr, "kb_mnist_cnn: %s\n", err);
        if (access(ip, F_OK) != 0)
            fprintf(stderr, "kb_mnist_cnn: install the Debian package dataset-fashion-mnist, or pass --data DIR "
                            "(a folder with the four *-ubyte.gz files)\n");
        return -1;
    }
    if (idx_load(lp, 1, &lb, err, sizeof err)) {
        fprintf(stderr, "kb_mnist_cnn: %s\n", err);
        idx_free(&im);
        return -1;
    }
    int rc = 0;
    if (im.dims[1] != H || im.dims[2] != W) {
        fprintf(stderr, "kb_mnist_cnn: %s: images are %lldx%lld, expected %dx%d\n", ip, (long long)im.dims[1],
                (long long)im.dims[2], H, W);
        rc = -1;
    } else if (im.dims[0] != lb.dims[0]) {
        fprintf(stderr, "kb_mnist_cnn: %s has %lld images but %s has %lld labels\n", ip, (long long)im.dims[0], lp,
                (long long)lb.dims[0]);
        rc = -1;
    }
    for (int64_t i = 0; rc == 0 && i < lb.size; ++i)
        if (lb.data[i] >= CLASSES) {
            fprintf(stderr, "kb_mnist_cnn: %s: label %d of entry %lld is not a class 0..9\n", lp, lb.data[i],
                    (long long)i);
            rc = -1;
        }
    if (rc == 0) {
        int64_t n = limit > 0 && limit < im.dims[0] ? limit : im.dims[0];
        out->n = n;
        out->x = malloc(sizeof(float) * (size_t)(n * H * W));
        out->y = calloc((size_t)(n * CLASSES), sizeof(float));
        out->label = malloc((size_t)n);
        if (!out->x || !out->y || !out->label) {
            fprintf(stderr, "kb_mnist_cnn: out of memory for %lld images\n", (long long)n);
            rc = -1;
        } else {
            for (int64_t i = 0; i < n * H * W; ++i) out->x[i] = (float)im.data[i] / 255.0f;
            for (int64_t i = 0; i < n; ++i) {
                out->label[i] = lb.data[i];
                out->y[i * CLASSES + lb.data[i]] = 1.0f;
            }
        }
    }
    idx_free(&im);
    idx_free(&lb);
    return rc;
}

static void dataset_free(dataset *d) {
    free(d->x);
    free(d->y);
    free(d->label);
    memset(d, 0, sizeof *d);
}

/* ---------------------------------------------------------------------------------------------- */
/* Training loop                                                                                  */
/* ---------------------------------------------------------------------------------------------- */

static void progress(int tty, int epoch, int epochs, int64_t done, int64_t total, double loss, double rate,
                     int final) {
    const int width = 30;
    int filled = (int)(width * done / (total ? total : 1));
    char bar[64];
    for (int i = 0; i < width; ++i) bar[i] = i < filled ? '=' : i == filled ? '>' : '.';
    bar[width] = 0;
    printf("%sepoch %d/%d [%s] %6lld/%lld  loss %.4f  %7.0f samples/s%s", tty ? "\r" : "", epoch, epochs, bar,
           (long long)done, (long long)total, loss, rate, final || !tty ? "\n" : "");
    fflush(stdout);
}

/* Loss and accuracy of \p fn (outputs loss_sum, correct) over \p d, in batches of 1000. */
/* The image batch's shape: one channel, so both layouts hold the same bytes. */
static void image_shape(int channels_first, int64_t b, int64_t s[4]) {
    s[0] = b;
    s[1] = channels_first ? 1 : H;
    s[2] = channels_first ? H : W;
    s[3] = channels_first ? W : 1;
}

static void evaluate(kb_function *fn, int channels_first, const dataset *d, double *loss, double *acc) {
    double ls = 0, correct = 0;
    for (int64_t s = 0; s < d->n; s += 1000) {
        int64_t b = d->n - s < 1000 ? d->n - s : 1000;
        int64_t sx[4], sy[2] = {b, CLASSES};
        image_shape(channels_first, b, sx);
        kb_feed f[2] = {{d->x + s * H * W, sizeof(float) * (size_t)(b * H * W), KB_FLOAT32, 4, sx, NULL},
                        {d->y + s * CLASSES, sizeof(float) * (size_t)(b * CLASSES), KB_FLOAT32, 2, sy, NULL}};
        float l, c;
        CHECK(kb_function_call(fn, f, 2) == KB_OK);
        CHECK(kb_function_get_output(fn, 0, &l, sizeof l) == KB_OK);
        CHECK(kb_function_get_output(fn, 1, &c, sizeof c) == KB_OK);
        ls += l;
        correct += c;
    }
    *loss = ls / (double)d->n;
    *acc = correct / (double)d->n;
}

static void print_memory(kb_context *ctx, const char *when) {
    kb_memory_stats ms;
    if (kb_memory_stats_get(ctx, &ms) == KB_OK && ms.device == KB_DEVICE_CUDA)
        printf("memory pool %s: in use %.1f MiB, peak %.1f MiB, reserved %.1f MiB\n", when, ms.in_use / 1048576.0,
               ms.peak / 1048576.0, ms.reserved / 1048576.0);
}

int main(int argc, char **argv) {
    options o;
    if (parse_options(argc, argv, &o)) {
        usage(argv[0]);
        return 2;
    }
    kb_context_options copts = KB_CONTEXT_OPTIONS_DEFAULTS;
    copts.device = o.device;
    copts.seed = (uint64_t)o.seed;
    kb_context *ctx;
    if (kb_context_new(&ctx, &copts) != KB_OK) {
        fprintf(stderr, "kb_mnist_cnn: %s\n", kb_last_error());
        return 1;
    }
    int gpu = kb_context_device(ctx) == KB_DEVICE_CUDA;
    printf("kb_mnist_cnn: device %s, floatx %s\n", kb_context_device_name(ctx), kb_dtype_name(kb_floatx(ctx)));

    int epochs = o.epochs > 0 ? o.epochs : gpu ? 12 : 1;
    int64_t train_limit = o.train_limit > 0 ? o.train_limit : gpu || o.epochs > 0 ? -1 : 12000;
    if (!gpu && o.epochs < 0 && o.train_limit < 0)
        printf("kb_mnist_cnn: on the CPU, a short run: 1 epoch on the first 12000 training images "
               "(--epochs / --train-limit change it; on a GPU the default is 12 epochs of all 60000)\n");
    dataset train = {0}, test = {0};
    if (load_split(o.data_dir, "train", train_limit, &train) || load_split(o.data_dir, "t10k", o.test_limit, &test)) {
        dataset_free(&train);
        kb_context_free(ctx);
        return 1;
    }
    printf("data: %s: %lld training and %lld test images of %dx%d, %d classes (%s, %s, ...)\n", o.data_dir,
           (long long)train.n, (long long)test.n, H, W, CLASSES, class_names[0], class_names[1]);

    cnn_model m;
    CHECK(cnn_build(ctx, o.data_format, o.seed, NULL, NULL, NULL, &m) == KB_OK);
    kb_tensor *grads[CNN_PARAMS], *updates[OPT_MAX_UPDATES(CNN_PARAMS)];
    CHECK(kb_gradients(m.loss, m.params, CNN_PARAMS, grads) == KB_OK);
    double lr = o.lr > 0 ? o.lr : opt_default_lr(o.optimizer);
    int n_upd;
    CHECK(opt_updates(ctx, o.optimizer, lr, m.params, grads, CNN_PARAMS, updates, &n_upd) == KB_OK);

    kb_tensor *lp = kb_learning_phase(ctx);
    kb_tensor *train_in[3] = {m.x, m.y, lp}, *eval_out[2] = {m.loss_sum, m.correct};
    kb_function *train_fn = kb_function_new(ctx, train_in, 3, &m.loss, 1, updates, n_upd, o.device);
    kb_function *eval_fn = kb_function_new(ctx, train_in, 2, eval_out, 2, NULL, 0, o.device);
    CHECK(train_fn && eval_fn);
    kb_function_info info;
    CHECK(kb_function_get_info(train_fn, &info) == KB_OK);
    printf("model: mnist_cnn (%s), %lld weights; training function of %d nodes (%d kernels), optimizer %s "
           "lr %g, batch %d, %d epoch%s, seed %lld\n",
           m.channels_first ? "channels_first" : "channels_last", (long long)m.n_weights, info.n_nodes,
           info.n_kernels, o.optimizer, lr, o.batch, epochs, epochs > 1 ? "s" : "", (long long)o.seed);
    if (info.n_host_fallbacks)
        printf("note: %d ops of the training function have no CUDA kernel and run on the CPU\n", info.n_host_fallbacks);
    if (o.profile) CHECK(kb_set_profiling(ctx, 1) == KB_OK);

    int64_t *order = malloc(sizeof(int64_t) * (size_t)train.n);
    float *bx = malloc(sizeof(float) * (size_t)o.batch * H * W), *by = malloc(sizeof(float) * (size_t)o.batch * CLASSES);
    CHECK(order && bx && by);
    for (int64_t i = 0; i < train.n; ++i) order[i] = i;
    rng_state = (uint64_t)o.seed * 0x9E3779B97F4A7C15ull + 1; /* the shuffle's generator */
    if (!rng_state) rng_state = 1;                                /* xorshift never leaves 0 */
    int tty = isatty(1);
    int32_t one = 1;
    double test_loss = 0, test_acc = 0, t_train = 0;
    int64_t steps = 0;
    for (int e = 1; e <= epochs; ++e) {
        for (int64_t i = train.n - 1; i > 0; --i) { /* Fisher-Yates */
            int64_t j = (int64_t)(urand() * (double)(i + 1)), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        double t0 = now_s(), last_print = 0, total = 0;
        int64_t done = 0, nb = 0;
        for (int64_t s = 0; s < train.n; s += o.batch) {
            int64_t b = train.n - s < o.batch ? train.n - s : o.batch;
            for (int64_t i = 0; i < b; ++i) {
                int64_t k = order[s + i];
                memcpy(bx + i * H * W, train.x + k * H * W, sizeof(float) * H * W);
                memcpy(by + i * CLASSES, train.y + k * CLASSES, sizeof(float) * CLASSES);
            }
            int64_t sx[4], sy[2] = {b, CLASSES};
            image_shape(m.channels_first, b, sx);
            kb_feed f[3] = {{bx, sizeof(float) * (size_t)(b * H * W), KB_FLOAT32, 4, sx, NULL},
                            {by, sizeof(float) * (size_t)(b * CLASSES), KB_FLOAT32, 2, sy, NULL},
                            {&one, sizeof one, KB_INT32, 0, NULL, NULL}};
            CHECK(kb_function_call(train_fn, f, 3) == KB_OK);
            float l;
            CHECK(kb_function_get_output(train_fn, 0, &l, sizeof l) == KB_OK);
            if (!isfinite(l)) {
                fprintf(stderr, "\nkb_mnist_cnn: the loss is %f at step %lld: try a lower --lr\n", l, (long long)steps);
                return 1;
            }
            if (steps == 0) { /* the first step planned and allocated: what the model holds */
                kb_function_info fi;
                CHECK(kb_function_get_info(train_fn, &fi) == KB_OK);
                printf("training function: arena %.1f MiB for batch %lld (%.1f MiB without reuse)\n",
                       fi.arena_bytes / 1048576.0, (long long)b, fi.naive_bytes / 1048576.0);
                print_memory(ctx, "after the first step");
                if (o.profile) CHECK(kb_function_profile_reset(train_fn) == KB_OK); /* drop the warm-up */
            }
            total += l;
            done += b;
            ++nb;
            ++steps;
            double t = now_s() - t0;
            if (done == train.n || (tty && t - last_print > 0.25) || (!tty && t - last_print > 15)) {
                progress(tty, e, epochs, done, train.n, total / (double)nb, (double)done / t, done == train.n);
                last_print = t;
            }
        }
        t_train += now_s() - t0;
        evaluate(eval_fn, m.channels_first, &test, &test_loss, &test_acc);
        printf("epoch %d/%d: train loss %.4f, test loss %.4f, test accuracy %.2f%%, %.1f s\n", e, epochs,
               total / (double)nb, test_loss, 100 * test_acc, now_s() - t0);
    }
    printf("kb_mnist_cnn: final test accuracy %.2f%% (%lld images), test loss %.4f; %lld steps in %.1f s "
           "(%.0f samples/s)\n",
           100 * test_acc, (long long)test.n, test_loss, (long long)steps, t_train,
           (double)train.n * epochs / t_train);
    print_memory(ctx, "at end");
    if (o.profile) {
        CHECK(kb_function_profile_print(train_fn, stdout, 0) == KB_OK);
        if (o.trace) {
            CHECK(kb_profile_write_trace(ctx, o.trace) == KB_OK);
            printf("kb_mnist_cnn: Chrome trace written to %s (open it in ui.perfetto.dev)\n", o.trace);
        }
    }
    int rc = 0;
    if (o.expect_accuracy >= 0 && test_acc < o.expect_accuracy) {
        fprintf(stderr, "kb_mnist_cnn: test accuracy %.4f is below the expected %.4f\n", test_acc, o.expect_accuracy);
        rc = 3;
    }
    free(order);
    free(bx);
    free(by);
    dataset_free(&train);
    dataset_free(&test);
    kb_function_free(train_fn);
    kb_function_free(eval_fn);
    kb_context_free(ctx);
    return rc;
}
