// End to end: an MLP (2 -> 16 relu -> 3 softmax) built with placeholders and variables, its loss
// mean(categorical_crossentropy), kb_gradients, and SGD updates (update_sub(w, lr * g)) in one
// kb_function, trained on three generated Gaussian blobs (300 points) with minibatches of 30.
// The loss starts near ln 3 = 1.10 and must fall below kLossBound within kEpochs epochs, with
// at least 90% of the points classified correctly.
#include <algorithm>
#include <cmath>
#include <iostream>

#include "kb_test_util.h"

namespace {

using namespace kbt;

// Measured on the CPU (float32, lr 0.3, batch 30, 60 seeds): the untrained loss is 0.69-2.0, the
// loss after 15 epochs 0.005-0.025; the bound 0.15 leaves a 6x margin.
constexpr int kEpochs = 15;
constexpr int kBatch = 30;
constexpr double kLossBound = 0.15;
constexpr double kLearningRate = 0.3;

struct Blobs {
    std::vector<float> x;  // (N, 2)
    std::vector<float> y;  // (N, 3) one-hot
    std::vector<int> label;
    int n = 0;
};

Blobs make_blobs(std::mt19937_64 &gen, int per_class) {
    const double centers[3][2] = {{0.0, 2.0}, {-1.8, -1.0}, {1.8, -1.0}};
    std::normal_distribution<double> noise(0.0, 0.6);
    Blobs b;
    b.n = 3 * per_class;
    std::vector<int> order((size_t)b.n);
    for (int i = 0; i < b.n; ++i) order[i] = i % 3;
    std::shuffle(order.begin(), order.end(), gen);
    for (int i = 0; i < b.n; ++i) {
        int c = order[i];
        b.x.push_back((float)(centers[c][0] + noise(gen)));
        b.x.push_back((float)(centers[c][1] + noise(gen)));
        for (int k = 0; k < 3; ++k) b.y.push_back(k == c ? 1.0f : 0.0f);
        b.label.push_back(c);
    }
    return b;
}

kb_tensor *glorot(kb_context *ctx, std::mt19937_64 &gen, int64_t fan_in, int64_t fan_out, const char *name) {
    double lim = std::sqrt(6.0 / (double)(fan_in + fan_out));
    std::uniform_real_distribution<double> u(-lim, lim);
    std::vector<double> w((size_t)(fan_in * fan_out));
    for (double &v : w) v = u(gen);
    return make_var(ctx, w, {fan_in, fan_out}, KB_FLOAT32, name);
}

class Mlp : public KbTest {
protected:
    kb_device context_device() const override {
        return cuda_available() ? KB_DEVICE_CUDA : KB_DEVICE_CPU;
    }

    void train(kb_device device) {
        Blobs data = make_blobs(gen, 100);
        int64_t xs[2] = {KB_NONE, 2}, ys[2] = {KB_NONE, 3};
        kb_tensor *x = kb_placeholder(ctx, xs, 2, KB_FLOAT32, "x");
        kb_tensor *y = kb_placeholder(ctx, ys, 2, KB_FLOAT32, "y");
        kb_tensor *w1 = glorot(ctx, gen, 2, 16, "w1");
        int64_t s16[1] = {16}, s3[1] = {3};
        kb_tensor *b1 = kb_zeros(ctx, s16, 1, KB_FLOAT32, "b1");
        kb_tensor *w2 = glorot(ctx, gen, 16, 3, "w2");
        kb_tensor *b2 = kb_zeros(ctx, s3, 1, KB_FLOAT32, "b2");
        kb_tensor *h = kb_relu(kb_add(kb_dot(x, w1), b1), 0.0, INFINITY, 0.0);
        kb_tensor *p = kb_softmax(kb_add(kb_dot(h, w2), b2), -1);
        kb_tensor *loss = kb_mean(kb_categorical_crossentropy(y, p, 0, -1), nullptr, 0, 0);
        ASSERT_NE(loss, nullptr) << kb_last_error();

        kb_tensor *params[4] = {w1, b1, w2, b2};
        kb_tensor *grads[4] = {nullptr, nullptr, nullptr, nullptr};
        ASSERT_TRUE(ok(kb_gradients(loss, params, 4, grads)));
        kb_tensor *lr = kb_constant_scalar(ctx, kLearningRate, KB_FLOAT32, nullptr, 0);
        kb_tensor *updates[4];
        for (int i = 0; i < 4; ++i) {
            ASSERT_NE(grads[i], nullptr) << "parameter " << i << " is connected to the loss";
            updates[i] = kb_update_sub(params[i], kb_multiply(lr, grads[i]));
            ASSERT_NE(updates[i], nullptr) << kb_last_error();
        }
        kb_tensor *inputs[2] = {x, y};
        kb_function *step = kb_function_new(ctx, inputs, 2, &loss, 1, updates, 4, device);
        ASSERT_NE(step, nullptr) << kb_last_error();
        EXPECT_EQ(kb_function_device(step), device);
        kb_tensor *outs[2] = {loss, p};
        kb_function *evalf = kb_function_new(ctx, inputs, 2, outs, 2, nullptr, 0, device);
        ASSERT_NE(evalf, nullptr) << kb_last_error();

        auto full_loss = [&](std::vector<float> *probs) -> double {
            int64_t fx[2] = {data.n, 2}, fy[2] = {data.n, 3};
            kb_feed f[2] = {{data.x.data(), data.x.size() * sizeof(float), KB_FLOAT32, 2, fx, nullptr},
                            {data.y.data(), data.y.size() * sizeof(float), KB_FLOAT32, 2, fy, nullptr}};
            EXPECT_TRUE(ok(kb_function_call(evalf, f, 2)));
            float l = NAN;
            EXPECT_TRUE(ok(kb_function_get_output(evalf, 0, &l, sizeof l)));
            if (probs) {
                probs->resize((size_t)data.n * 3);
                EXPECT_TRUE(ok(kb_function_get_output(evalf, 1, probs->data(), probs->size() * sizeof(float))));
            }
            return l;
        };

        double first = full_loss(nullptr);
        EXPECT_GT(first, 0.4) << "untrained loss should be near ln 3";
        EXPECT_LT(first, 3.0) << "untrained loss should be near ln 3";
        double last = first;
        std::vector<double> history;
        for (int epoch = 0; epoch < kEpochs; ++epoch) {
            for (int start = 0; start < data.n; start += kBatch) {
                int64_t bx[2] = {kBatch, 2}, by[2] = {kBatch, 3};
                kb_feed f[2] = {{data.x.data() + start * 2, (size_t)kBatch * 2 * sizeof(float), KB_FLOAT32, 2, bx, nullptr},
                                {data.y.data() + start * 3, (size_t)kBatch * 3 * sizeof(float), KB_FLOAT32, 2, by, nullptr}};
                ASSERT_TRUE(ok(kb_function_call(step, f, 2))) << "epoch " << epoch;
                float bl = NAN;
                ASSERT_TRUE(ok(kb_function_get_output(step, 0, &bl, sizeof bl)));
                ASSERT_TRUE(std::isfinite(bl)) << "epoch " << epoch;
            }
            last = full_loss(nullptr);
            history.push_back(last);
        }
        std::vector<float> probs;
        last = full_loss(&probs);
        std::cout << "[ kb      ] MLP on " << (device == KB_DEVICE_CUDA ? "cuda" : "cpu") << ": loss "
                  << first << " -> " << last << " in " << kEpochs << " epochs" << std::endl;
        EXPECT_LT(last, kLossBound) << "loss did not fall below the bound; first " << first;
        EXPECT_LT(history.back(), history.front()) << "loss must decrease";
        int correct = 0;
        for (int i = 0; i < data.n; ++i) {
            int best = 0;
            for (int k = 1; k < 3; ++k)
                if (probs[i * 3 + k] > probs[i * 3 + best]) best = k;
            correct += best == data.label[i];
        }
        EXPECT_GE(correct, (int)(0.9 * data.n)) << "accuracy " << correct << "/" << data.n;
        kb_function_free(step);
        kb_function_free(evalf);
    }
};

TEST_F(Mlp, TrainsOnCpu) { train(KB_DEVICE_CPU); }

TEST_F(Mlp, TrainsOnCuda) {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device: the CUDA MLP test is not run";
    train(KB_DEVICE_CUDA);
}

// The same seed gives the same training run (bitwise): a deterministic CPU path.
TEST_F(Mlp, CpuTrainingIsReproducible) {
    auto run = [](uint64_t seed) {
        kb_context *c = nullptr;
        kb_context_options o = KB_CONTEXT_OPTIONS_DEFAULTS;
        o.device = KB_DEVICE_CPU;
        o.read_config = 0;
        EXPECT_EQ(kb_context_new(&c, &o), KB_OK);
        std::mt19937_64 g(seed);
        kb_tensor *w = glorot(c, g, 4, 3, "w");
        std::vector<double> xv(8 * 4);
        std::uniform_real_distribution<double> u(-1, 1);
        for (double &v : xv) v = u(g);
        kb_tensor *x = make_const(c, xv, {8, 4});
        kb_tensor *t = make_const(c, {1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0}, {8, 3});
        kb_tensor *loss = kb_mean(kb_categorical_crossentropy(t, kb_softmax(kb_dot(x, w), -1), 0, -1), nullptr, 0, 0);
        kb_tensor *gw = nullptr;
        EXPECT_EQ(kb_gradients(loss, &w, 1, &gw), KB_OK);
        kb_tensor *u1 = kb_update_sub(w, kb_multiply(kb_constant_scalar(c, 0.5, KB_FLOAT32, nullptr, 0), gw));
        kb_function *fn = kb_function_new(c, nullptr, 0, &loss, 1, &u1, 1, KB_DEVICE_CPU);
        EXPECT_NE(fn, nullptr);
        for (int i = 0; i < 20 && fn; ++i) EXPECT_EQ(kb_function_call(fn, nullptr, 0), KB_OK);
        std::vector<float> wv(12);
        EXPECT_EQ(kb_get_value(w, wv.data(), wv.size() * sizeof(float)), KB_OK);
        kb_function_free(fn);
        kb_context_free(c);
        return wv;
    };
    auto a = run(seed), b = run(seed);
    EXPECT_EQ(a, b);
}

}  // namespace
