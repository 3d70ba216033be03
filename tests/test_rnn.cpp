// Reference values, gradients and bad input of the rnn family: the fused LSTM / GRU / simple RNN
// against an independent step loop written here from the Keras cell formulas (numpy style, naive
// matrix products in double), in float32 and float64, with and without initial states and
// go_backwards; batch and time unknown at graph build; gradients of a loss against central
// differences of the reference loop; bad input (status + message + session usable).
#include <cmath>
#include <cstdlib>

#include "graph/tensor.h"
#include <set>

#include "kb_test_util.h"
#include "op_cases.h"
#include "ops/rnn_layout.h"

namespace {

using namespace kbt;

class Rnn : public KbTest {};

enum Mode { LSTM = 0, GRU = 1, TANH = 2, RELU = 3 };
int gates(int m) { return m == LSTM ? 4 : m == GRU ? 3 : 1; }
double sig(double v) { return 1.0 / (1.0 + std::exp(-v)); }

struct Weights {
    int mode;
    int64_t B, T, I, U;
    std::vector<double> x, h0, c0, K, R, b;  // h0 / c0 empty: zeros
};

struct RefOut {
    std::vector<double> y, h, c;  // y (B, T, U), h / c (B, U)
};

// The Keras cell loop. go_back: the steps read x[:, T-1-s]; the outputs stay in step order.
RefOut reference(const Weights &w, bool go_back) {
    int64_t B = w.B, T = w.T, I = w.I, U = w.U, G = gates(w.mode), GU = G * U;
    RefOut o;
    o.y.assign((size_t)(B * T * U), 0.0);
    o.h.assign((size_t)(B * U), 0.0);
    o.c.assign((size_t)(B * U), 0.0);
    for (int64_t bi = 0; bi < B; ++bi) {
        std::vector<double> h(U, 0.0), c(U, 0.0);
        for (int64_t u = 0; u < U; ++u) {
            if (!w.h0.empty()) h[u] = w.h0[bi * U + u];
            if (!w.c0.empty()) c[u] = w.c0[bi * U + u];
        }
        for (int64_t s = 0; s < T; ++s) {
            int64_t t = go_back ? T - 1 - s : s;
            std::vector<double> xp(GU), hp(GU);  // x_t . K + bW, h . R + bR
            for (int64_t j = 0; j < GU; ++j) {
                double a = w.b[j], r = w.b[GU + j];
                for (int64_t i = 0; i < I; ++i) a += w.x[(bi * T + t) * I + i] * w.K[i * GU + j];
                for (int64_t k = 0; k < U; ++k) r += h[k] * w.R[k * GU + j];
                xp[j] = a;
                hp[j] = r;
            }
            std::vector<double> hn(U);
            for (int64_t u = 0; u < U; ++u) {
                if (w.mode == LSTM) {
                    double ig = sig(xp[u] + hp[u]), fg = sig(xp[U + u] + hp[U + u]);
                    double cg = std::tanh(xp[2 * U + u] + hp[2 * U + u]), og = sig(xp[3 * U + u] + hp[3 * U + u]);
                    c[u] = fg * c[u] + ig * cg;
                    hn[u] = og * std::tanh(c[u]);
                } else if (w.mode == GRU) {
                    double z = sig(xp[u] + hp[u]), r = sig(xp[U + u] + hp[U + u]);
                    double hh = std::tanh(xp[2 * U + u] + r * hp[2 * U + u]);
                    hn[u] = z * h[u] + (1 - z) * hh;
                } else {
                    double a = xp[u] + hp[u];
                    hn[u] = w.mode == TANH ? std::tanh(a) : std::max(a, 0.0);
                }
            }
            h = hn;
            for (int64_t u = 0; u < U; ++u) o.y[(bi * T + s) * U + u] = h[u];
        }
        for (int64_t u = 0; u < U; ++u) {
            o.h[bi * U + u] = h[u];
            o.c[bi * U + u] = c[u];
        }
    }
    return o;
}

Weights random_weights(std::mt19937_64 &gen, int mode, int64_t B, int64_t T, int64_t I, int64_t U, bool states) {
    Weights w;
    w.mode = mode;
    w.B = B, w.T = T, w.I = I, w.U = U;
    int64_t GU = gates(mode) * U;
    w.x = random_values(gen, (size_t)(B * T * I), -1, 1);
    if (states) w.h0 = random_values(gen, (size_t)(B * U), -1, 1);
    if (states && mode == LSTM) w.c0 = random_values(gen, (size_t)(B * U), -1, 1);
    w.K = random_values(gen, (size_t)(I * GU), -0.8, 0.8);
    w.R = random_values(gen, (size_t)(U * GU), -0.8, 0.8);
    w.b = random_values(gen, (size_t)(2 * GU), -0.5, 0.5);
    return w;
}

Weights rounded_weights(const Weights &w, kb_dtype dt) {
    Weights r = w;
    for (auto *v : {&r.x, &r.h0, &r.c0, &r.K, &r.R, &r.b}) *v = rounded(*v, dt);
    return r;
}

struct Vars {
    kb_tensor *x, *h0, *c0, *K, *R, *b;
};

Vars make_vars(kb_context *ctx, const Weights &w, kb_dtype dt) {
    int64_t GU = gates(w.mode) * w.U;
    Vars v;
    v.x = make_var(ctx, w.x, {w.B, w.T, w.I}, dt, "x");
    v.h0 = w.h0.empty() ? nullptr : make_var(ctx, w.h0, {w.B, w.U}, dt, "h0");
    v.c0 = w.c0.empty() ? nullptr : make_var(ctx, w.c0, {w.B, w.U}, dt, "c0");
    v.K = make_var(ctx, w.K, {w.I, GU}, dt, "kernel");
    v.R = make_var(ctx, w.R, {w.U, GU}, dt, "recurrent_kernel");
    v.b = make_var(ctx, w.b, {2 * GU}, dt, "bias");
    return v;
}

// The layer of w's mode on tensors v (x possibly replaced).
kb_status layer(int mode, kb_tensor *x, const Vars &v, int go_back, kb_tensor **y, kb_tensor **h, kb_tensor **c) {
    if (mode == LSTM) return kb_cudnn_lstm(x, v.h0, v.c0, v.K, v.R, v.b, go_back, y, h, c);
    if (c) *c = nullptr;
    if (mode == GRU) return kb_cudnn_gru(x, v.h0, v.K, v.R, v.b, go_back, y, h);
    return kb_cudnn_simple_rnn(x, v.h0, v.K, v.R, v.b, mode == TANH ? KB_CUDNN_RNN_TANH : KB_CUDNN_RNN_RELU, go_back,
                               y, h);
}

Tol tol_of(kb_dtype dt) { return dt == KB_FLOAT32 ? Tol{1e-5, 1e-6} : Tol{1e-12, 1e-13}; }

TEST_F(Rnn, LayersMatchStepLoop) {
    for (int mode : {LSTM, GRU, TANH, RELU})
        for (bool states : {true, false})
            for (int back : {0, 1})
                for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64}) {
                    Weights w = random_weights(gen, mode, 3, 4, 5, 3, states);
                    RefOut ref = reference(rounded_weights(w, dt), back);
                    Vars v = make_vars(ctx, w, dt);
                    kb_tensor *y, *h, *c;
                    ASSERT_TRUE(ok(layer(mode, v.x, v, back, &y, &h, mode == LSTM ? &c : nullptr)));
                    std::string what = "mode " + std::to_string(mode) + " states " + std::to_string(states) +
                                       " back " + std::to_string(back) + " dtype " + kb_dtype_name(dt);
                    HostValue hy = eval(y);
                    EXPECT_EQ(hy.shape, (Shape{3, 4, 3})) << what;
                    EXPECT_TRUE(allclose(hy.v, ref.y, tol_of(dt))) << what;
                    EXPECT_TRUE(allclose(eval_v(h), ref.h, tol_of(dt))) << what;
                    if (mode == LSTM) {
                        EXPECT_TRUE(allclose(eval_v(c), ref.c, tol_of(dt))) << what;
                    }
                }
}

// A hand-checkable LSTM step: one unit, one input, zero recurrent kernel and biases except one.
TEST_F(Rnn, LstmGateOrderIsIFCO) {
    // kernel (1, 4) = [wi, wf, wc, wo]; x = 1 for one step; c0 = 2.
    std::vector<double> K{0.5, -1.0, 0.25, 2.0}, R(4, 0.0), b{0, 0, 0, 0, 0.1, 0, 0, 0};
    kb_tensor *x = make_var(ctx, {1.0}, {1, 1, 1}, KB_FLOAT64), *c0 = make_var(ctx, {2.0}, {1, 1}, KB_FLOAT64);
    kb_tensor *y, *h, *c;
    ASSERT_TRUE(ok(kb_cudnn_lstm(x, nullptr, c0, make_var(ctx, K, {1, 4}, KB_FLOAT64),
                                 make_var(ctx, R, {1, 4}, KB_FLOAT64), make_var(ctx, b, {8}, KB_FLOAT64), 0, &y, &h, &c)));
    double i = sig(0.6), f = sig(-1.0), g = std::tanh(0.25), o = sig(2.0);
    double cn = f * 2.0 + i * g;
    EXPECT_TRUE(allclose(eval_v(c), {cn}, 1e-14, 1e-14));
    EXPECT_TRUE(allclose(eval_v(h), {o * std::tanh(cn)}, 1e-14, 1e-14));
}

// GRU: Keras blocks z, r, h; the reset gate multiplies (h . R_h + bR_h) (reset_after).
TEST_F(Rnn, GruResetAfterRecurrentMatmul) {
    // one unit; x = 1; h0 = 0.5. kernel [wz, wr, wh], recurrent [rz, rr, rh], bias [bWz bWr bWh bRz bRr bRh].
    std::vector<double> K{0.3, -0.7, 0.9}, R{0.2, 0.4, -1.1}, b{0.1, 0.0, 0.2, 0.0, 0.3, 0.5};
    kb_tensor *x = make_var(ctx, {1.0}, {1, 1, 1}, KB_FLOAT64), *h0 = make_var(ctx, {0.5}, {1, 1}, KB_FLOAT64);
    kb_tensor *y = nullptr;
    ASSERT_TRUE(ok(kb_cudnn_gru(x, h0, make_var(ctx, K, {1, 3}, KB_FLOAT64), make_var(ctx, R, {1, 3}, KB_FLOAT64),
                                make_var(ctx, b, {6}, KB_FLOAT64), 0, &y, nullptr)));
    double z = sig(0.3 + 0.1 + 0.5 * 0.2), r = sig(-0.7 + 0.5 * 0.4 + 0.3);
    double hh = std::tanh(0.9 + 0.2 + r * (0.5 * -1.1 + 0.5));
    EXPECT_TRUE(allclose(eval_v(y), {z * 0.5 + (1 - z) * hh}, 1e-14, 1e-14));
}

// Batch and time unknown at graph build: the packed results are sliced from fixed rows.
TEST_F(Rnn, UnknownBatchAndTimeWithGradients) {
    for (int mode : {LSTM, GRU}) {
        Weights w = random_weights(gen, mode, 2, 5, 3, 4, true);
        RefOut ref = reference(w, true);
        int64_t ps[3] = {KB_NONE, KB_NONE, 3}, hs[2] = {KB_NONE, 4};
        kb_tensor *x = kb_placeholder(ctx, ps, 3, KB_FLOAT64, "x");
        Vars v = make_vars(ctx, w, KB_FLOAT64);
        v.h0 = kb_placeholder(ctx, hs, 2, KB_FLOAT64, "h0");
        kb_tensor *y, *h, *c = nullptr;
        ASSERT_TRUE(ok(layer(mode, x, v, 1, &y, &h, mode == LSTM ? &c : nullptr)));
        EXPECT_EQ(kb_ndim(y), 3);
        kb_tensor *loss = kb_sum(kb_square(y), nullptr, 0, 0);
        kb_tensor *wrt[3] = {x, v.h0, v.R}, *g[3] = {nullptr, nullptr, nullptr};
        ASSERT_TRUE(ok(kb_gradients(loss, wrt, 3, g)));
        auto xb = to_bytes(w.x, KB_FLOAT64), hb = to_bytes(w.h0, KB_FLOAT64);
        Shape xs{2, 5, 3}, h0s{2, 4};
        RunResult r = run_function(ctx, {y, h, g[0], g[1], g[2]}, KB_DEVICE_CPU, {x, v.h0},
                                   {feed_of(xb, KB_FLOAT64, xs), feed_of(hb, KB_FLOAT64, h0s)});
        ASSERT_TRUE(ok(r.status)) << r.error;
        EXPECT_EQ(r.outs[0].shape, (Shape{2, 5, 4}));
        EXPECT_TRUE(allclose(r.outs[0].v, ref.y, 1e-12, 1e-13));
        EXPECT_TRUE(allclose(r.outs[1].v, ref.h, 1e-12, 1e-13));
        // d sum(y^2) by central differences of the reference loop (x, h0, recurrent_kernel).
        std::vector<double> *targets[3] = {&w.x, &w.h0, &w.R};
        for (int k = 0; k < 3; ++k) {
            std::vector<double> num(targets[k]->size());
            for (size_t i = 0; i < num.size(); ++i) {
                double keep = (*targets[k])[i], e = 1e-6;
                auto f = [&](double val) {
                    (*targets[k])[i] = val;
                    RefOut o = reference(w, true);
                    double s = 0;
                    for (double q : o.y) s += q * q;
                    return s;
                };
                num[i] = (f(keep + e) - f(keep - e)) / (2 * e);
                (*targets[k])[i] = keep;
            }
            EXPECT_TRUE(allclose(r.outs[2 + k].v, num, 1e-6, 1e-8)) << "mode " << mode << " input " << k;
        }
    }
}

// A batch large enough for the CPU kernel's parallel step loops (B * G * U > 32768): values against
// the loop, and the weight gradients of the whole batch = the sum of those of its two halves (each
// below the threshold, so computed serially).
TEST_F(Rnn, LargeBatchMatchesLoopAndHalves) {
    for (int mode : {LSTM, GRU}) {
        const int64_t B = 34, T = 2, I = 4, U = mode == LSTM ? 256 : 352, GU = gates(mode) * U, H = B / 2;
        Weights w = random_weights(gen, mode, B, T, I, U, true);
        auto wt = random_values(gen, (size_t)(B * T * U), -1, 1);
        RefOut ref = reference(w, false);
        auto rows = [&](const std::vector<double> &v, int64_t per, int64_t from) {
            return std::vector<double>(v.begin() + from * per, v.begin() + (from + H) * per);
        };
        // full batch, then each half with the same weights
        std::vector<std::vector<double>> grads[3];
        for (int part = 0; part < 3; ++part) {
            Weights p = w;
            int64_t b0 = part == 2 ? H : 0;
            std::vector<double> wp = wt;
            if (part > 0) {
                p.B = H;
                p.x = rows(w.x, T * I, b0);
                p.h0 = rows(w.h0, U, b0);
                if (mode == LSTM) p.c0 = rows(w.c0, U, b0);
                wp = rows(wt, T * U, b0);
            }
            Vars v = make_vars(ctx, p, KB_FLOAT64);
            kb_tensor *y, *h, *c;
            ASSERT_TRUE(ok(layer(mode, v.x, v, 0, &y, &h, mode == LSTM ? &c : nullptr)));
            if (part == 0) {
                EXPECT_TRUE(allclose(eval_v(y), ref.y, 1e-12, 1e-13)) << "mode " << mode;
            }
            kb_tensor *loss = kb_sum(kb_multiply(y, make_const(ctx, wp, {p.B, T, U}, KB_FLOAT64)), nullptr, 0, 0);
            kb_tensor *wrt[3] = {v.K, v.R, v.b}, *g[3] = {nullptr, nullptr, nullptr};
            ASSERT_TRUE(ok(kb_gradients(loss, wrt, 3, g)));
            for (int k = 0; k < 3; ++k) grads[part].push_back(eval_v(g[k]));
        }
        for (int k = 0; k < 3; ++k) {
            std::vector<double> sum(grads[1][k].size());
            for (size_t i = 0; i < sum.size(); ++i) sum[i] = grads[1][k][i] + grads[2][k][i];
            EXPECT_EQ(grads[0][k].size(), (size_t)(k == 0 ? I * GU : k == 1 ? U * GU : 2 * GU));
            EXPECT_TRUE(allclose(grads[0][k], sum, 1e-10, 1e-12)) << "mode " << mode << " weight " << k;
        }
    }
}

// `steps` SGD steps of an LSTM -> GRU stack (the GRU reads the LSTM's outputs, so the LSTM's
// weights get gradients through backward-data of the GRU) on a fixed regression target, compiled
// for `device`; returns the loss before each step.
std::vector<double> train_stack(kb_context *ctx, const Weights &a, const Weights &b, const std::vector<double> &target,
                                kb_device device, int steps) {
    Vars va = make_vars(ctx, a, KB_FLOAT32), vb = make_vars(ctx, b, KB_FLOAT32);
    kb_tensor *y1 = nullptr, *h2 = nullptr;
    if (!ok(kb_cudnn_lstm(va.x, va.h0, va.c0, va.K, va.R, va.b, 0, &y1, nullptr, nullptr))) return {};
    if (!ok(kb_cudnn_gru(y1, vb.h0, vb.K, vb.R, vb.b, 1, nullptr, &h2))) return {};
    kb_tensor *t = make_const(ctx, target, {a.B, b.U}, KB_FLOAT32);
    kb_tensor *loss = kb_mean(kb_square(kb_subtract(h2, t)), nullptr, 0, 0);
    kb_tensor *params[6] = {va.K, va.R, va.b, vb.K, vb.R, vb.b}, *g[6] = {};
    if (!ok(kb_gradients(loss, params, 6, g))) return {};
    std::vector<kb_tensor *> updates;
    for (int i = 0; i < 6; ++i) updates.push_back(kb_update_sub(params[i], kb_multiply(g[i], make_const(ctx, {1.0}, {}))));
    kb_function *fn = kb_function_new(ctx, nullptr, 0, &loss, 1, updates.data(), 6, device);
    if (!fn) {
        ADD_FAILURE() << kb_last_error();
        return {};
    }
    std::vector<double> losses;
    for (int s = 0; s < steps; ++s) {
        if (!ok(kb_function_call(fn, nullptr, 0))) break;
        kb_dtype dt;
        int rank;
        int64_t dims[KB_MAX_RANK];
        size_t nbytes = 0;
        const void *p = kb_function_output(fn, 0, &dt, &rank, dims, &nbytes);
        if (!p) break;
        losses.push_back(from_bytes(p, 1, dt)[0]);
    }
    kb_function_free(fn);
    return losses;
}

TEST_F(Rnn, TrainingStackReducesLoss) {
    Weights a = random_weights(gen, LSTM, 4, 5, 3, 3, false), b = random_weights(gen, GRU, 4, 5, 3, 2, true);
    auto target = random_values(gen, 8, -0.8, 0.8);
    std::vector<double> l = train_stack(ctx, a, b, target, KB_DEVICE_CPU, 150);
    ASSERT_EQ(l.size(), (size_t)150);
    for (double v : l) ASSERT_TRUE(std::isfinite(v));
    EXPECT_LT(l.back(), 0.5 * l.front()) << "first " << l.front() << " last " << l.back();
}

// The same training on CUDA (cuDNN forward, backward data, backward weights, weight-space gathers
// and scatters, plan reuse across calls) follows the CPU losses.
TEST_F(Rnn, TrainingStackCudaMatchesCpu) {
    KB_REQUIRE_CUDA();
    Weights a = random_weights(gen, LSTM, 4, 5, 3, 3, true), b = random_weights(gen, GRU, 4, 5, 3, 2, true);
    auto target = random_values(gen, 8, -0.8, 0.8);
    std::vector<double> cpu = train_stack(ctx, a, b, target, KB_DEVICE_CPU, 10);
    std::vector<double> gpu = train_stack(ctx, a, b, target, KB_DEVICE_CUDA, 10);
    ASSERT_EQ(cpu.size(), (size_t)10);
    EXPECT_TRUE(allclose(gpu, cpu, 1e-4, 1e-6));
    // The fallback for a cuDNN reserve too large for the packs (recompute forward / backward-data).
    setenv("KB_RNN_RECOMPUTE", "1", 1);
    std::vector<double> re = train_stack(ctx, a, b, target, KB_DEVICE_CUDA, 10);
    unsetenv("KB_RNN_RECOMPUTE");
    EXPECT_TRUE(allclose(re, cpu, 1e-4, 1e-6));
    // Plans outlive contexts (the parity run's pattern: a forward case's context makes the plan,
    // is freed with its cuDNN handle, then a gradient case of the same shapes runs in a new
    // context): a fresh context, first forward only, freed; then training in another fresh
    // context, both GPU paths. Plans must never use a freed context's handle.
    for (const char *recompute : {"0", "1"}) {
        SCOPED_TRACE(std::string("KB_RNN_RECOMPUTE=") + recompute);
        setenv("KB_RNN_RECOMPUTE", recompute, 1);
        for (int round = 0; round < 2; ++round) {
            kb_context_options o = KB_CONTEXT_OPTIONS_DEFAULTS;
            o.device = KB_DEVICE_CUDA;
            o.read_config = 0;
            o.seed = seed;
            kb_context *c2 = nullptr;
            ASSERT_EQ(kb_context_new(&c2, &o), KB_OK) << kb_last_error();
            if (round == 0) { /* forward only: inference (recompute) or training (reserve in the pack) */
                Vars va = make_vars(c2, a, KB_FLOAT32);
                kb_tensor *y1 = nullptr;
                EXPECT_TRUE(ok(kb_cudnn_lstm(va.x, va.h0, va.c0, va.K, va.R, va.b, 0, &y1, nullptr, nullptr)));
                kb_function *fn = y1 ? kb_function_new(c2, nullptr, 0, &y1, 1, nullptr, 0, KB_DEVICE_CUDA) : nullptr;
                EXPECT_NE(fn, nullptr) << kb_last_error();
                if (fn) {
                    EXPECT_TRUE(ok(kb_function_call(fn, nullptr, 0)));
                    kb_function_free(fn);
                }
            } else {
                std::vector<double> again = train_stack(c2, a, b, target, KB_DEVICE_CUDA, 10);
                EXPECT_TRUE(allclose(again, cpu, 1e-4, 1e-6));
            }
            kb_context_free(c2);
        }
    }
    unsetenv("KB_RNN_RECOMPUTE");
}

TEST_F(Rnn, BadInput) {
    Weights w = random_weights(gen, LSTM, 2, 3, 3, 2, true);
    Vars v = make_vars(ctx, w, KB_FLOAT32);
    kb_tensor *y = nullptr, *h = nullptr, *c = nullptr;
    const char *fn = "kb_cudnn_lstm";
    auto expect = [&](kb_status got, kb_status st, std::vector<std::string> needles) {
        EXPECT_EQ(got, st) << kb_last_error();
        EXPECT_TRUE(has_error(st, needles));
        EXPECT_EQ(y, nullptr);
        kb_clear_error();
    };
    // x not 3-D.
    kb_tensor *x2 = make_var(ctx, random_values(gen, 6, -1, 1), {2, 3});
    expect(kb_cudnn_lstm(x2, v.h0, v.c0, v.K, v.R, v.b, 0, &y, &h, &c), KB_ERR_SHAPE, {fn, "x must be 3-D"});
    // x input_dim differs from the kernel's rows.
    kb_tensor *x4 = make_var(ctx, random_values(gen, 24, -1, 1), {2, 3, 4});
    expect(kb_cudnn_lstm(x4, v.h0, v.c0, v.K, v.R, v.b, 0, &y, &h, &c), KB_ERR_SHAPE, {fn, "input_dim 4", "expects 3"});
    // kernel with 3 * units columns for an LSTM.
    kb_tensor *k6 = make_var(ctx, random_values(gen, 18, -1, 1), {3, 6});
    expect(kb_cudnn_lstm(v.x, v.h0, v.c0, k6, v.R, v.b, 0, &y, &h, &c), KB_ERR_SHAPE, {fn, "kernel (3, 6)", "4 * units = 8"});
    // recurrent_kernel not (units, 4 units).
    kb_tensor *r6 = make_var(ctx, random_values(gen, 12, -1, 1), {2, 6});
    expect(kb_cudnn_lstm(v.x, v.h0, v.c0, v.K, r6, v.b, 0, &y, &h, &c), KB_ERR_SHAPE, {fn, "recurrent_kernel", "(units, 4 * units)"});
    // bias of 4 units instead of 8.
    kb_tensor *b8 = make_var(ctx, random_values(gen, 8, -1, 1), {8});
    expect(kb_cudnn_lstm(v.x, v.h0, v.c0, v.K, v.R, b8, 0, &y, &h, &c), KB_ERR_SHAPE, {fn, "bias (8,)", "16 entries"});
    // h0 of the wrong batch, c0 of the wrong units.
    kb_tensor *h3 = make_var(ctx, random_values(gen, 6, -1, 1), {3, 2}), *c3 = make_var(ctx, random_values(gen, 6, -1, 1), {2, 3});
    expect(kb_cudnn_lstm(v.x, h3, v.c0, v.K, v.R, v.b, 0, &y, &h, &c), KB_ERR_SHAPE, {fn, "initial h (h0) (3, 2)"});
    expect(kb_cudnn_lstm(v.x, v.h0, c3, v.K, v.R, v.b, 0, &y, &h, &c), KB_ERR_SHAPE, {fn, "initial c (c0) (2, 3)"});
    // dtypes: float64 kernel with float32 x; int32 x.
    kb_tensor *k64 = make_var(ctx, w.K, {3, 8}, KB_FLOAT64);
    expect(kb_cudnn_lstm(v.x, v.h0, v.c0, k64, v.R, v.b, 0, &y, &h, &c), KB_ERR_DTYPE, {fn, "kernel dtype float64"});
    kb_tensor *xi = make_var(ctx, random_values(gen, 18, -1, 1), {2, 3, 3}, KB_INT32);
    expect(kb_cudnn_lstm(xi, v.h0, v.c0, v.K, v.R, v.b, 0, &y, &h, &c), KB_ERR_DTYPE, {fn});
    // NULL kernel, nothing requested, go_backwards 2.
    expect(kb_cudnn_lstm(v.x, v.h0, v.c0, nullptr, v.R, v.b, 0, &y, &h, &c), KB_ERR_INVALID_ARGUMENT, {fn, "kernel"});
    expect(kb_cudnn_lstm(v.x, v.h0, v.c0, v.K, v.R, v.b, 0, nullptr, nullptr, nullptr), KB_ERR_INVALID_ARGUMENT, {fn, "NULL"});
    expect(kb_cudnn_lstm(v.x, v.h0, v.c0, v.K, v.R, v.b, 2, &y, &h, &c), KB_ERR_INVALID_ARGUMENT, {fn, "go_backwards"});
    // Weight shapes unknown at build.
    int64_t ks[2] = {3, KB_NONE};
    kb_tensor *kp = kb_placeholder(ctx, ks, 2, KB_FLOAT32, "k");
    expect(kb_cudnn_lstm(v.x, v.h0, v.c0, kp, v.R, v.b, 0, &y, &h, &c), KB_ERR_SHAPE, {fn, "shape of kernel must be known"});
    // GRU and simple RNN messages name their function and gate count.
    expect(kb_cudnn_gru(v.x, v.h0, v.K, v.R, v.b, 0, &y, &h), KB_ERR_SHAPE, {"kb_cudnn_gru", "3 * units"});
    expect(kb_cudnn_simple_rnn(v.x, v.h0, v.K, v.R, v.b, (kb_cudnn_rnn_activation)5, 0, &y, &h),
           KB_ERR_INVALID_ARGUMENT, {"kb_cudnn_simple_rnn", "activation"});
    // No timesteps (known at build).
    kb_tensor *x0 = make_var(ctx, {}, {2, 0, 3});
    expect(kb_cudnn_lstm(x0, v.h0, v.c0, v.K, v.R, v.b, 0, &y, &h, &c), KB_ERR_SHAPE, {fn, "no timesteps"});
    // The session stays usable.
    ASSERT_TRUE(ok(kb_cudnn_lstm(v.x, v.h0, v.c0, v.K, v.R, v.b, 0, &y, &h, &c)));
    EXPECT_TRUE(allclose(eval_v(h), reference(rounded_weights(w, KB_FLOAT32), false).h, tol_of(KB_FLOAT32)));
}

// The packs' sizes as the infer rules give them to the plan (what the arena allocates) against the
// block arithmetic every kernel indexes with (ops/rnn_layout.h: blk_f / blk_d, the reserve region,
// the fallback's copy of dpack's block 0, the CPU reserve), over shapes around the op cases' and
// the GPU training test's, with B = 0 and I < U, I = U, I > U. Reference sizes are written here.
TEST_F(Rnn, PackLayoutMatchesInferRules) {
    int checked = 0;
    for (int mode = 0; mode < 4; ++mode)
        for (int64_t B : {0, 1, 2, 4})
            for (int64_t T : {1, 3, 5})
                for (int64_t I : {1, 3, 8})
                    for (int64_t U : {1, 2, 3, 5}) {
                        SCOPED_TRACE("mode " + std::to_string(mode) + " B " + std::to_string(B) + " T " +
                                     std::to_string(T) + " I " + std::to_string(I) + " U " + std::to_string(U));
                        const int64_t G = gates(mode), kH = mode == LSTM ? 2 : 1, R = kH + T, W = std::max(I, U);
                        const int64_t NB = 1 + 2 * G;
                        kb_rnn_layout L;
                        kb_rnn_layout_of(mode, B, T, I, U, &L);
                        ASSERT_EQ(L.blk_f, B * R * U);
                        ASSERT_EQ(L.blk_d, B * R * W);
                        kb_attrs a;
                        memset(&a, 0, sizeof a);
                        a.i64[0] = mode;
                        a.i64[1] = 1;
                        a.i64[2] = mode == LSTM;
                        kb_desc in[8];
                        memset(in, 0, sizeof in);
                        auto set = [&](int i, std::vector<int64_t> shape) {
                            in[i].dtype = KB_FLOAT32;
                            in[i].rank = (int)shape.size();
                            for (size_t d = 0; d < shape.size(); ++d) in[i].shape[d] = shape[d];
                        };
                        set(0, {B, T, I});
                        set(1, {B, U});
                        set(2, {B, U});
                        set(3, {I, G * U});
                        set(4, {U, G * U});
                        set(5, {2 * G * U});
                        kb_desc f, d, w;
                        ASSERT_EQ(kb_op_table[KB_OP_CUDNN_RNN]->infer("t", &a, in, 6, &f), KB_OK) << kb_last_error();
                        EXPECT_EQ(kb_desc_size(&f), NB * B * R * U);
                        EXPECT_EQ(kb_desc_size(&f), L.size_f);
                        EXPECT_EQ(f.shape[0], NB);
                        in[6] = f;
                        in[7] = f;
                        ASSERT_EQ(kb_op_table[KB_OP_CUDNN_RNN_BACKWARD_DATA]->infer("t", &a, in, 8, &d), KB_OK)
                            << kb_last_error();
                        EXPECT_EQ(kb_desc_size(&d), NB * B * R * W);
                        EXPECT_EQ(kb_desc_size(&d), L.size_d);
                        in[7] = d;
                        ASSERT_EQ(kb_op_table[KB_OP_CUDNN_RNN_BACKWARD_WEIGHTS]->infer("t", &a, in, 8, &w), KB_OK)
                            << kb_last_error();
                        EXPECT_EQ(kb_desc_size(&w), (I + U + 2) * G * U);
                        EXPECT_EQ(kb_desc_size(&w), L.size_w);
                        // the fallback keeps dpack's block 0 (blk_f) in the data pack's reserve blocks
                        EXPECT_LE(L.blk_d + L.blk_f, L.size_d);
                        // CPU reserve: activations + LSTM cells / GRU h.R_h (forward pack), dXP + dHP (data pack)
                        const int64_t BT = B * T;
                        EXPECT_LE(L.blk_f + BT * G * U + BT * U, L.size_f);
                        EXPECT_LE(L.blk_d + 2 * BT * G * U, L.size_d);
                        // cuDNN's reserve region, for every reserve size up to the larger pack
                        for (size_t es : {(size_t)4, (size_t)8}) {
                            const size_t bf = (size_t)L.size_f * es, bd = (size_t)L.size_d * es;
                            const size_t of = kb_rnn_reserve_offset(L.blk_f, es), od = kb_rnn_reserve_offset(L.blk_d, es);
                            EXPECT_EQ(of % 256, 0u);
                            EXPECT_EQ(od % 256, 0u);
                            EXPECT_GE(of, (size_t)L.blk_f * es);  // block 0 untouched
                            EXPECT_GE(od, (size_t)L.blk_d * es);
                            EXPECT_LT(of, (size_t)L.blk_f * es + 256);
                            bool prev = true;
                            for (size_t r = 0; r <= bd + 8; r += (r < 600 ? 1 : 61)) {
                                const bool fits = kb_rnn_reserve_fits(&L, es, r) != 0;
                                EXPECT_TRUE(prev || !fits) << "fits is not monotone at " << r;
                                prev = fits;
                                if (fits) {
                                    ASSERT_LE(of + r, bf) << "reserve " << r << " overruns the forward pack";
                                    ASSERT_LE(od + r, bd) << "reserve " << r << " overruns the data pack";
                                }
                                // the exact rule: fits iff it fits both packs
                                EXPECT_EQ(fits, of + r <= bf && od + r <= bd) << r;
                                ++checked;
                            }
                        }
                    }
    EXPECT_GT(checked, 10000);
    RecordProperty("reserve_sizes_checked", checked);
}

// Collects the nodes of op `op` reachable from t (internal view of graph/tensor.h).
void find_ops(const kb_tensor *t, kb_op_id op, std::set<const kb_tensor *> &seen, std::vector<const kb_tensor *> &out) {
    if (!t || !seen.insert(t).second) return;
    if (t->kind == KB_KIND_OP && t->op == op) out.push_back(t);
    for (int i = 0; i < t->n_in && i < KB_MAX_INPUTS; ++i) find_ops(t->in[i], op, seen, out);
}

// The gradient op cases (what test_parity runs on the GPU) feed the backward ops whole packs of
// the layout's sizes (vjp through cudnn_rnn: dpack = slice_grad sums of the pack's shape), and run
// on the CPU, whose kernels refuse buffers of other sizes with KB_ERR_INTERNAL.
TEST_F(Rnn, GradientCasesFeedLayoutSizedPacks) {
    int cases = 0;
    for (const OpCase &c : op_cases()) {
        if (c.name.rfind("cudnn_rnn_grad_", 0) != 0) continue;
        SCOPED_TRACE(c.name);
        ++cases;
        auto values = case_inputs(c, gen);
        for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64}) {
            std::vector<kb_tensor *> vars;
            for (size_t i = 0; i < c.shapes.size(); ++i) vars.push_back(make_var(ctx, values[i], c.shapes[i], dt));
            kb_tensor *out = c.build(ctx, vars);
            ASSERT_NE(out, nullptr) << kb_last_error();
            int found = 0;
            for (kb_op_id op : {KB_OP_CUDNN_RNN_BACKWARD_DATA, KB_OP_CUDNN_RNN_BACKWARD_WEIGHTS}) {
                std::set<const kb_tensor *> seen;
                std::vector<const kb_tensor *> nodes;
                find_ops(out, op, seen, nodes);
                for (const kb_tensor *n : nodes) {
                    ++found;
                    ASSERT_EQ(n->n_in, 8);
                    const kb_desc &x = n->in[0]->desc, &r = n->in[4]->desc;
                    kb_rnn_layout L;
                    kb_rnn_layout_of((int)n->attrs.i64[0], x.shape[0], x.shape[1], x.shape[2], r.shape[0], &L);
                    const bool data = op == KB_OP_CUDNN_RNN_BACKWARD_DATA;
                    EXPECT_EQ(n->in[6]->op, KB_OP_CUDNN_RNN);  // the forward pack itself
                    EXPECT_EQ(kb_desc_size(&n->in[6]->desc), L.size_f);
                    EXPECT_EQ(kb_desc_size(&n->in[7]->desc), data ? L.size_f : L.size_d);
                    EXPECT_EQ(kb_desc_size(&n->desc), data ? L.size_d : L.size_w);
                    if (!data) {
                        EXPECT_EQ(n->in[7]->op, KB_OP_CUDNN_RNN_BACKWARD_DATA);
                    }
                }
            }
            EXPECT_GE(found, 1) << "no backward op in the case's graph";
            RunResult cpu = run_function(ctx, {out}, KB_DEVICE_CPU);
            ASSERT_EQ(cpu.status, KB_OK) << cpu.error;
            ASSERT_FALSE(cpu.outs[0].v.empty());
            double norm = 0;
            for (double v : cpu.outs[0].v) {
                ASSERT_TRUE(std::isfinite(v));
                norm += std::fabs(v);
            }
            // the loss reaches every input (a relu layer's units may all be dead for some draws)
            if (c.name.find("relu") == std::string::npos) {
                EXPECT_GT(norm, 0.0);
            }
        }
    }
    EXPECT_EQ(cases, 6 + 5 + 4 + 5);  // LSTM 6, GRU 5 (no c0), simple tanh 4 (no state), relu 5
}

// The rnn op cases CPU vs CUDA on both GPU paths (cuDNN's reserve in the packs, and the recompute
// fallback forced by KB_RNN_RECOMPUTE=1): test_parity runs each case only on the path its shapes
// select. Each case in a fresh CUDA context, as test_parity does (plans outlive contexts).
class RnnCuda : public KbTest {
protected:
    kb_device context_device() const override { return cuda_available() ? KB_DEVICE_CUDA : KB_DEVICE_CPU; }
};

TEST_F(RnnCuda, OpCasesMatchCpuOnBothGpuPaths) {
    KB_REQUIRE_CUDA();
    int runs = 0;
    for (const char *recompute : {"1", "0"}) {
        setenv("KB_RNN_RECOMPUTE", recompute, 1);
        for (const OpCase &c : op_cases()) {
            if (c.name.rfind("cudnn_rnn_", 0) != 0) continue;
            auto values = case_inputs(c, gen);
            for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64}) {
                kb_context_options o = KB_CONTEXT_OPTIONS_DEFAULTS;
                o.device = KB_DEVICE_CUDA;
                o.read_config = 0;
                o.seed = seed;
                kb_context *c2 = nullptr;
                ASSERT_EQ(kb_context_new(&c2, &o), KB_OK) << kb_last_error();
                ::testing::AssertionResult r =
                    parity_check(c2, c.build, c.shapes, values, dt, dt == KB_FLOAT32 ? c.tol32 : c.tol64);
                kb_context_free(c2);
                ++runs;
                if (!r) {
                    unsetenv("KB_RNN_RECOMPUTE");
                    FAIL() << c.name << " " << kb_dtype_name(dt) << " KB_RNN_RECOMPUTE=" << recompute << ": "
                           << r.message();  // stop: a device fault would poison every later case
                }
            }
        }
    }
    unsetenv("KB_RNN_RECOMPUTE");
    EXPECT_EQ(runs, 2 * 2 * (9 + 20));
}

// Second derivatives through the fused layer are refused with a clear status.
TEST_F(Rnn, SecondDerivativeRefused) {
    Weights w = random_weights(gen, GRU, 2, 3, 3, 2, true);
    Vars v = make_vars(ctx, w, KB_FLOAT64);
    kb_tensor *y = nullptr;
    ASSERT_TRUE(ok(kb_cudnn_gru(v.x, v.h0, v.K, v.R, v.b, 0, &y, nullptr)));
    kb_tensor *g = nullptr;
    ASSERT_TRUE(ok(kb_gradients(kb_sum(kb_square(y), nullptr, 0, 0), &v.K, 1, &g)));
    kb_tensor *g2 = nullptr;
    kb_clear_error();
    EXPECT_EQ(kb_gradients(kb_sum(kb_square(g), nullptr, 0, 0), &v.R, 1, &g2), KB_ERR_NOT_SUPPORTED);
    EXPECT_TRUE(has_error(KB_ERR_NOT_SUPPORTED, {"second derivative", "cudnn_rnn_backward_weights"}));
    kb_clear_error();
    EXPECT_EQ(eval(g).v.size(), (size_t)18);  // the first gradient still evaluates
}

}  // namespace
