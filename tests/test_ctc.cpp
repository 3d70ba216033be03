// Reference values, gradients and bad input of the ctc family: the spec's worked values (Keras'
// test_ctc, test_ctc_decode_greedy / _beam_search / _no_merge), the loss against a brute-force
// sum over every alignment of tiny inputs, beam search without pruning against the brute-force
// ranking of labelings, finite-difference gradients (float64), dense-to-sparse, and bad input.
#include <algorithm>
#include <cmath>
#include <map>

#include "graph/tensor.h"
#include "kb_test_util.h"

namespace {

using namespace kbt;

class Ctc : public KbTest {};

const double kEps = 1e-7;  // Keras' default epsilon (the fixture reads no keras.json)

// softmax(log(y + eps)) row-normalised: the probabilities tf.nn.ctc_loss sees.
std::vector<double> norm_probs(const std::vector<double> &y, int64_t rows, int64_t C) {
    std::vector<double> q(y.size());
    for (int64_t r = 0; r < rows; ++r) {
        double s = 0;
        for (int64_t c = 0; c < C; ++c) s += y[(size_t)(r * C + c)] + kEps;
        for (int64_t c = 0; c < C; ++c) q[(size_t)(r * C + c)] = (y[(size_t)(r * C + c)] + kEps) / s;
    }
    return q;
}

// P(collapse(path) = labeling) for every labeling of sample b: all C^Tb alignments enumerated,
// repeats merged then blanks (C - 1) dropped.
std::map<std::vector<int64_t>, double> labeling_probs(const std::vector<double> &q, int64_t T, int64_t C, int64_t b,
                                                      int64_t Tb) {
    std::map<std::vector<int64_t>, double> m;
    int64_t n = 1;
    for (int64_t t = 0; t < Tb; ++t) n *= C;
    for (int64_t code = 0; code < n; ++code) {
        std::vector<int64_t> path;
        int64_t x = code;
        double p = 1;
        for (int64_t t = 0; t < Tb; ++t) {
            int64_t c = x % C;
            x /= C;
            path.push_back(c);
            p *= q[(size_t)((b * T + t) * C + c)];
        }
        std::vector<int64_t> lab;
        for (int64_t t = 0; t < Tb; ++t)
            if (path[(size_t)t] != C - 1 && (t == 0 || path[(size_t)t] != path[(size_t)t - 1])) lab.push_back(path[(size_t)t]);
        m[lab] += p;
    }
    return m;
}

std::vector<double> col(const std::vector<int64_t> &v) { return std::vector<double>(v.begin(), v.end()); }

// ---- ctc_batch_cost ----

const std::vector<double> kSpecInputs = {
    0.633766, 0.221185, 0.0917319, 0.0129757, 0.0142857, 0.0260553,
    0.111121, 0.588392, 0.278779, 0.0055756, 0.00569609, 0.010436,
    0.0357786, 0.633813, 0.321418, 0.00249248, 0.00272882, 0.0037688,
    0.0663296, 0.643849, 0.280111, 0.00283995, 0.0035545, 0.00331533,
    0.458235, 0.396634, 0.123377, 0.00648837, 0.00903441, 0.00623107,
    0.30176, 0.28562, 0.0831517, 0.0862751, 0.0816851, 0.161508,
    0.24082, 0.397533, 0.0557226, 0.0546814, 0.0557528, 0.19549,
    0.230246, 0.450868, 0.0389607, 0.038309, 0.0391602, 0.202456,
    0.280884, 0.429522, 0.0326593, 0.0339046, 0.0326856, 0.190345,
    0.423286, 0.315517, 0.0338439, 0.0393744, 0.0339315, 0.154046};

TEST_F(Ctc, BatchCostSpecValues) {
    for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64}) {
        kb_tensor *y = make_var(ctx, kSpecInputs, {2, 5, 6}, dt);
        kb_tensor *lab = make_var(ctx, {0, 1, 2, 1, 0, 0, 1, 1, 0, -1}, {2, 5}, KB_INT32);
        kb_tensor *il = make_var(ctx, {5, 5}, {2, 1}, KB_INT32), *ll = make_var(ctx, {5, 4}, {2, 1}, KB_INT32);
        kb_tensor *loss = kb_ctc_batch_cost(lab, y, il, ll);
        ASSERT_NE(loss, nullptr) << kb_last_error();
        HostValue hv = eval(loss);
        EXPECT_EQ(hv.shape, (Shape{2, 1}));
        EXPECT_EQ(hv.dtype, dt);
        EXPECT_TRUE(allclose(hv.v, {3.34211, 5.42262}, 0, 1e-5)) << kb_dtype_name(dt);
        // the first sample alone
        std::vector<double> first(kSpecInputs.begin(), kSpecInputs.begin() + 30);
        kb_tensor *l1 = kb_ctc_batch_cost(make_var(ctx, {0, 1, 2, 1, 0}, {1, 5}, KB_INT64), make_var(ctx, first, {1, 5, 6}, dt),
                                          make_var(ctx, {5}, {1, 1}, KB_INT64), make_var(ctx, {5}, {1, 1}, KB_INT64));
        ASSERT_NE(l1, nullptr) << kb_last_error();
        EXPECT_TRUE(allclose(eval_v(l1), {3.34211}, 0, 1e-5));
    }
}

struct Tiny {
    int64_t T, C;
    std::vector<double> labels;  // (2, L)
    int64_t L;
    std::vector<double> il, ll;
};

// Repeats (need a blank between), empty labels, shorter inputs, padding, an impossible label.
const Tiny kTiny[] = {
    {4, 3, {0, 1, 1, -1}, 2, {4, 3}, {2, 1}},
    {4, 3, {0, 0, 1, 0}, 2, {4, 4}, {2, 2}},
    {3, 2, {0, 0, 0, 0}, 2, {3, 2}, {2, 0}},   // C = 2: one label class; "0 0" needs 3 steps
    {4, 3, {1, 0, 1, 0}, 2, {0, 2}, {0, 2}},   // input_length 0 with an empty label: loss 0
    {2, 3, {0, 0, 0, 1}, 2, {2, 2}, {2, 2}},   // "0 0" in 2 steps: impossible (+inf)
    {4, 3, {1, 1, 9, 0, 1, 1}, 3, {4, 4}, {2, 3}},
};

TEST_F(Ctc, LossMatchesBruteForceOverAlignments) {
    for (const Tiny &c : kTiny)
        for (kb_dtype lt : {KB_INT32, KB_INT64}) {
            auto y = random_values(gen, (size_t)(2 * c.T * c.C), 0.01, 1.0);
            auto q = norm_probs(y, 2 * c.T, c.C);
            std::vector<double> ref;
            for (int64_t b = 0; b < 2; ++b) {
                auto m = labeling_probs(q, c.T, c.C, b, (int64_t)c.il[(size_t)b]);
                std::vector<int64_t> lab;
                for (int64_t j = 0; j < std::min<int64_t>((int64_t)c.ll[(size_t)b], c.L); ++j)
                    lab.push_back((int64_t)c.labels[(size_t)(b * c.L + j)]);
                double p = m.count(lab) ? m[lab] : 0.0;
                ref.push_back(-std::log(p));
            }
            kb_tensor *loss = kb_ctc_batch_cost(make_const(ctx, c.labels, {2, c.L}, lt), make_var(ctx, y, {2, c.T, c.C}, KB_FLOAT64),
                                                make_const(ctx, c.il, {2, 1}, lt), make_const(ctx, c.ll, {2}, KB_INT32));
            ASSERT_NE(loss, nullptr) << kb_last_error();
            EXPECT_TRUE(allclose(eval_v(loss), ref, 1e-11, 1e-12)) << "T=" << c.T << " C=" << c.C;
        }
}

TEST_F(Ctc, BatchCostGradientMatchesFiniteDifferences) {
    // input_length 4 of 5 for sample 1: its last row gets no gradient.
    Builder b = [](kb_context *cx, const std::vector<kb_tensor *> &in) {
        return kb_ctc_batch_cost(make_const(cx, {0, 2, 2, 1, 0, -1}, {2, 3}, KB_INT32), in[0],
                                 make_const(cx, {5, 4}, {2, 1}, KB_INT32), make_const(cx, {3, 2}, {2, 1}, KB_INT32));
    };
    auto y = random_values(gen, 2 * 5 * 4, 0.05, 1.0);
    EXPECT_TRUE(grad_check(ctx, b, {{2, 5, 4}}, {y}, gen));
}

TEST_F(Ctc, GradientIsSoftmaxMinusPosteriorAndZeroWhenImpossible) {
    // sample 0: label "1 1" in 3 steps (one alignment: 1 blank 1); sample 1: impossible in 2 steps.
    auto y = random_values(gen, 2 * 3 * 3, 0.05, 1.0);
    kb_tensor *yv = make_var(ctx, y, {2, 3, 3}, KB_FLOAT64);
    kb_tensor *loss = kb_ctc_batch_cost(make_const(ctx, {1, 1, 1, 1}, {2, 2}, KB_INT32), yv,
                                        make_const(ctx, {3, 2}, {2, 1}, KB_INT32), make_const(ctx, {2, 2}, {2, 1}, KB_INT32));
    ASSERT_NE(loss, nullptr) << kb_last_error();
    auto q = norm_probs(y, 6, 3);
    auto lv = eval_v(loss);
    ASSERT_EQ(lv.size(), 2u);
    EXPECT_NEAR(lv[0], -std::log(q[1] * q[3 + 2] * q[6 + 1]), 1e-12);
    EXPECT_EQ(lv[1], INFINITY);
    kb_tensor *g = nullptr;
    ASSERT_TRUE(ok(kb_gradients(kb_sum(loss, nullptr, 0, 0), &yv, 1, &g)));
    auto gv = eval_v(g);
    ASSERT_EQ(gv.size(), 18u);
    // one alignment: d loss / d z = softmax(z) - onehot(path) for z = log(y + eps), so
    // d loss / d y = (q - onehot) / (y + eps).
    const int path[3] = {1, 2, 1};
    for (int t = 0; t < 3; ++t)
        for (int c = 0; c < 3; ++c) {
            size_t i = (size_t)(t * 3 + c);
            double want = (q[i] - (c == path[t] ? 1.0 : 0.0)) / (y[i] + kEps);
            EXPECT_NEAR(gv[i], want, 1e-9 * std::max(1.0, std::fabs(want))) << "t=" << t << " c=" << c;
        }
    for (size_t i = 9; i < 18; ++i) EXPECT_EQ(gv[i], 0.0) << i;
}

TEST_F(Ctc, SecondDerivativeIsRefused) {
    auto y = random_values(gen, 2 * 4 * 3, 0.05, 1.0);
    kb_tensor *yv = make_var(ctx, y, {2, 4, 3}, KB_FLOAT64);
    kb_tensor *loss = kb_ctc_batch_cost(make_const(ctx, {0, 1, 1, 0}, {2, 2}, KB_INT32), yv,
                                        make_const(ctx, {4, 4}, {2, 1}, KB_INT32), make_const(ctx, {2, 2}, {2, 1}, KB_INT32));
    kb_tensor *g = nullptr, *gg = nullptr;
    ASSERT_TRUE(ok(kb_gradients(kb_sum(loss, nullptr, 0, 0), &yv, 1, &g)));
    kb_clear_error();
    EXPECT_NE(kb_gradients(kb_sum(kb_square(g), nullptr, 0, 0), &yv, 1, &gg), KB_OK);
    EXPECT_TRUE(has_error(KB_ERR_NOT_SUPPORTED, {"second derivative of ctc_batch_cost"}));
    kb_clear_error();
    EXPECT_EQ(eval_v(loss).size(), 2u);  // the session is still usable
}

// ---- ctc_label_dense_to_sparse ----

TEST_F(Ctc, DenseToSparseKeepsLabelsUpToLength) {
    for (kb_dtype dt : {KB_INT32, KB_INT64}) {
        std::vector<double> lab;
        for (int i = 0; i < 16; ++i) lab.push_back((double)(gen() % 7) - 1.0);
        const std::vector<double> len = {2, 0, 9, -3};  // clamped to [0, 4] as Keras' mask
        kb_tensor *sp = kb_ctc_label_dense_to_sparse(make_var(ctx, lab, {4, 4}, dt), make_const(ctx, len, {4}, dt));
        ASSERT_NE(sp, nullptr) << kb_last_error();
        EXPECT_EQ(kb_is_sparse(sp), 1);
        std::vector<double> want(16, 0.0);
        std::vector<double> ix_want, v_want;
        for (int b = 0; b < 4; ++b)
            for (int j = 0; j < std::min(4, std::max(0, (int)len[(size_t)b])); ++j) {
                want[(size_t)(b * 4 + j)] = lab[(size_t)(b * 4 + j)];
                ix_want.push_back(b), ix_want.push_back(j), v_want.push_back(lab[(size_t)(b * 4 + j)]);
            }
        HostValue d = eval(kb_to_dense(sp));
        EXPECT_EQ(d.dtype, dt);
        EXPECT_TRUE(allclose(d.v, want, 0, 0));
        // the components: TF's entries first (row-major), then explicit zeros
        auto ix = eval_v(sp->in[0]), v = eval_v(sp->in[1]);
        ASSERT_EQ(ix.size(), 32u);
        ASSERT_EQ(v.size(), 16u);
        EXPECT_TRUE(allclose(std::vector<double>(ix.begin(), ix.begin() + (long)ix_want.size()), ix_want, 0, 0));
        EXPECT_TRUE(allclose(std::vector<double>(v.begin(), v.begin() + (long)v_want.size()), v_want, 0, 0));
        for (size_t k = v_want.size(); k < 16; ++k) EXPECT_EQ(v[k], 0.0) << k;
    }
    // float labels: the sparse tensor works in a sparse dot
    auto lab = rounded(random_values(gen, 6, 0, 3), KB_FLOAT32);
    auto w = rounded(random_values(gen, 3 * 2, -1, 1), KB_FLOAT32);
    kb_tensor *sp = kb_ctc_label_dense_to_sparse(make_var(ctx, lab, {2, 3}), make_const(ctx, {1, 3}, {2, 1}, KB_INT32));
    ASSERT_NE(sp, nullptr) << kb_last_error();
    std::vector<double> ref(4, 0.0);
    for (int r = 0; r < 2; ++r)
        for (int k = 0; k < (r == 0 ? 1 : 3); ++k)
            for (int c = 0; c < 2; ++c) ref[(size_t)(r * 2 + c)] += lab[(size_t)(r * 3 + k)] * w[(size_t)(k * 2 + c)];
    EXPECT_TRUE(allclose(eval_v(kb_dot(sp, make_var(ctx, w, {3, 2}))), rounded(ref, KB_FLOAT32), 1e-5, 1e-6));
}

// ---- ctc_decode ----

TEST_F(Ctc, GreedyDecodeSpecExample) {
    const std::vector<double> m0 = {1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.4, 0.6, 0.0, 0.0, 0.4, 0.6,
                                    0.0, 0.9, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    const std::vector<double> m1 = {0.1, 0.9, 0.0, 0.0, 0.0, 0.9, 0.1, 0.0, 0.0, 0.0, 0.1, 0.9,
                                    0.0, 0.9, 0.1, 0.1, 0.9, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    std::vector<double> y(m0);
    y.insert(y.end(), m1.begin(), m1.end());
    const int64_t lens[2] = {4, 5};
    double lp_ref[2] = {0, 0};
    for (int b = 0; b < 2; ++b)
        for (int t = 0; t < lens[b]; ++t) {
            double mx = -INFINITY;
            for (int c = 0; c < 4; ++c) mx = std::max(mx, std::log((double)(float)y[(size_t)((b * 6 + t) * 4 + c)] + kEps));
            lp_ref[b] -= mx;
        }
    for (int merge : {0, 1}) {  // Keras' merge_repeated is ignored by the greedy decoder
        kb_tensor *paths[1] = {nullptr}, *lp = nullptr;
        ASSERT_TRUE(ok(kb_ctc_decode(make_var(ctx, y, {2, 6, 4}), make_var(ctx, {4, 5}, {2}, KB_INT32), 1, 100, 1, merge,
                                     paths, &lp)));
        HostValue p = eval(paths[0]);
        EXPECT_EQ(p.dtype, KB_INT64);
        EXPECT_EQ(p.shape, (Shape{2, 6}));
        EXPECT_TRUE(allclose(p.v, {0, 1, -1, -1, -1, -1, 1, 1, 0, -1, -1, -1}, 0, 0));
        HostValue l = eval(lp);
        EXPECT_EQ(l.shape, (Shape{2, 1}));
        EXPECT_TRUE(allclose(l.v, {lp_ref[0], lp_ref[1]}, 1e-5, 1e-5));
        EXPECT_GT(l.v[0], 0.0);
    }
}

TEST_F(Ctc, BeamSearchSpecExample) {
    const double p[5][6] = {{0.30999, 0.309938, 0.0679938, 0.0673362, 0.0708352, 0.173908},
                            {0.215136, 0.439699, 0.0370931, 0.0393967, 0.0381581, 0.230517},
                            {0.199959, 0.489485, 0.0233221, 0.0251417, 0.0233289, 0.238763},
                            {0.279611, 0.452966, 0.0204795, 0.0209126, 0.0194803, 0.20655},
                            {0.51286, 0.288951, 0.0243026, 0.0220788, 0.0219297, 0.129878}};
    std::vector<double> y;
    for (int t = 0; t < 7; ++t)
        for (int c = 0; c < 6; ++c) y.push_back(t < 5 ? std::exp((double)(float)(p[t][c] + 2.0)) : 1.0);
    for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64}) {
        kb_tensor *paths[2] = {nullptr, nullptr}, *lp = nullptr;
        ASSERT_TRUE(ok(kb_ctc_decode(make_var(ctx, y, {1, 7, 6}, dt), make_var(ctx, {5}, {1}, KB_INT32), 0, 2, 2, 0,
                                     paths, &lp)));
        HostValue l = eval(lp);
        EXPECT_EQ(l.shape, (Shape{1, 2}));
        EXPECT_EQ(l.dtype, dt);
        EXPECT_TRUE(allclose(l.v, {-5.811451, -6.63339}, 1e-5, 1e-6)) << kb_dtype_name(dt);
        HostValue p0 = eval(paths[0]), p1 = eval(paths[1]);
        EXPECT_EQ(p0.shape, (Shape{1, 7}));
        EXPECT_TRUE(allclose(p0.v, {1, 0, -1, -1, -1, -1, -1}, 0, 0));
        EXPECT_TRUE(allclose(p1.v, {1, -1, -1, -1, -1, -1, -1}, 0, 0));
    }
}

TEST_F(Ctc, BeamSearchNoMergeSpecExample) {
    const std::vector<double> y = {0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0};
    for (int merge : {1, 0}) {
        kb_tensor *paths[1] = {nullptr}, *lp = nullptr;
        ASSERT_TRUE(ok(kb_ctc_decode(make_var(ctx, y, {1, 7, 3}), make_var(ctx, {7}, {1}, KB_INT64), 0, 1, 1, merge,
                                     paths, &lp)));
        EXPECT_TRUE(allclose(eval_v(paths[0]), merge ? std::vector<double>{0, 1, -1, -1, -1, -1, -1}
                                                     : std::vector<double>{0, 0, 1, 1, -1, -1, -1}, 0, 0))
            << "merge_repeated=" << merge;
    }
}

// Without pruning (beam wider than the number of labelings) beam search ranks labelings by their
// exact probability: compare the top 3 with the brute-force sums over alignments.
TEST_F(Ctc, WideBeamRanksLabelingsExactly) {
    const int64_t T = 4, C = 3;
    auto y = random_values(gen, (size_t)(2 * T * C), 0.02, 1.0);
    auto q = norm_probs(y, 2 * T, C);
    const int64_t lens[2] = {4, 3};
    kb_tensor *paths[3] = {nullptr, nullptr, nullptr}, *lp = nullptr;
    ASSERT_TRUE(ok(kb_ctc_decode(make_var(ctx, y, {2, T, C}, KB_FLOAT64), make_const(ctx, {4, 3}, {2}, KB_INT32), 0, 64,
                                 3, 0, paths, &lp)));
    auto lv = eval_v(lp);
    std::vector<std::vector<double>> pv;
    for (int k = 0; k < 3; ++k) pv.push_back(eval_v(paths[k]));
    for (int64_t b = 0; b < 2; ++b) {
        auto m = labeling_probs(q, T, C, b, lens[b]);
        std::vector<std::pair<double, std::vector<int64_t>>> rank;
        for (auto &e : m) rank.push_back({e.second, e.first});
        std::sort(rank.begin(), rank.end(), [](const auto &a, const auto &c) { return a.first > c.first; });
        for (int k = 0; k < 3; ++k) {
            EXPECT_NEAR(lv[(size_t)(b * 3 + k)], std::log(rank[(size_t)k].first), 1e-12) << "b=" << b << " k=" << k;
            std::vector<double> want = col(rank[(size_t)k].second);
            want.resize((size_t)T, -1.0);
            EXPECT_TRUE(allclose(std::vector<double>(pv[(size_t)k].begin() + b * T, pv[(size_t)k].begin() + (b + 1) * T), want, 0, 0))
                << "b=" << b << " k=" << k;
        }
    }
}

// ---- CUDA: long labels (S = 2L + 1 above the CTA's 256 threads), C above a warp, ragged lengths ----

TEST_F(Ctc, CudaMatchesCpuOnLongSequences) {
    KB_REQUIRE_CUDA();
    struct Cfg {
        int64_t B, T, C, L;
        std::vector<double> il, ll;
    };
    // S = 281: shared-memory work space; S = 1001: the gradient's global fallback
    const Cfg cfgs[] = {{3, 200, 37, 140, {200, 150, 37}, {140, 100, 0}}, {2, 560, 61, 500, {560, 300}, {500, 250}}};
    for (const Cfg &k : cfgs) {
        const int64_t B = k.B, T = k.T, C = k.C, L = k.L;
        const std::vector<double> il = k.il, ll = k.ll;
        std::vector<double> lab;
        for (int64_t i = 0; i < B * L; ++i) lab.push_back((double)(gen() % (uint64_t)(C - 1)));
        auto y = random_values(gen, (size_t)(B * T * C), 0.02, 1.0);
        auto w = random_values(gen, (size_t)B, -1.0, 1.0);
        auto cost = [=](kb_context *cx, kb_tensor *yp) {
            return kb_ctc_batch_cost(make_const(cx, lab, {B, L}, KB_INT64), yp, make_const(cx, il, {B, 1}, KB_INT32),
                                     make_const(cx, ll, {B, 1}, KB_INT64));
        };
        Builder loss = [=](kb_context *cx, const std::vector<kb_tensor *> &in) { return cost(cx, in[0]); };
        Builder grad = [=](kb_context *cx, const std::vector<kb_tensor *> &in) {
            kb_tensor *g = nullptr, *l = kb_sum(kb_multiply(cost(cx, in[0]), in[1]), nullptr, 0, 0);
            return kb_gradients(l, &in[0], 1, &g) == KB_OK ? g : nullptr;
        };
        auto decode = [=](int which) {
            return Builder([=](kb_context *cx, const std::vector<kb_tensor *> &in) {
                kb_tensor *p[1] = {nullptr}, *lp = nullptr;
                if (kb_ctc_decode(in[0], make_const(cx, il, {B}, KB_INT64), 1, 100, 1, 0, p, &lp) != KB_OK) return (kb_tensor *)nullptr;
                return which ? lp : kb_cast(p[0], kb_dtype_of(in[0]));
            });
        };
        for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64}) {
            Tol t = dt == KB_FLOAT32 ? Tol{1e-4, 1e-4} : Tol{1e-10, 1e-12};
            EXPECT_TRUE(parity_check(ctx, loss, {{B, T, C}}, {y}, dt, t)) << kb_dtype_name(dt) << " L=" << L;
            EXPECT_TRUE(parity_check(ctx, grad, {{B, T, C}, {B, 1}}, {y, w}, dt, t)) << kb_dtype_name(dt) << " L=" << L;
            EXPECT_TRUE(parity_check(ctx, decode(0), {{B, T, C}}, {y}, dt, Tol{0, 0})) << kb_dtype_name(dt);
            EXPECT_TRUE(parity_check(ctx, decode(1), {{B, T, C}}, {y}, dt, t)) << kb_dtype_name(dt);
        }
    }
    const int64_t C = 37;
    auto y = random_values(gen, (size_t)(2 * 5 * C), 0.02, 1.0);
    // invalid data cannot be reported by the CUDA kernel: that sample's loss is NaN, the others are not
    kb_tensor *yv = make_var(ctx, y, {2, 5, C});
    kb_tensor *bad = kb_ctc_batch_cost(make_const(ctx, {0, 1, 36, 2}, {2, 2}, KB_INT32), yv,
                                       make_const(ctx, {5, 5}, {2, 1}, KB_INT32), make_const(ctx, {2, 2}, {2, 1}, KB_INT32));
    ASSERT_NE(bad, nullptr) << kb_last_error();
    RunResult r = run_function(ctx, {bad}, KB_DEVICE_CUDA);
    ASSERT_TRUE(ok(r.status)) << r.error;
    ASSERT_EQ(r.outs.size(), 1u);
    EXPECT_TRUE(std::isfinite(r.outs[0].v[0]));
    EXPECT_TRUE(std::isnan(r.outs[0].v[1]));
}

// ---- bad input ----

TEST_F(Ctc, BadInputGivesClearErrors) {
    auto yv = random_values(gen, 2 * 5 * 6, 0.05, 1.0);
    kb_tensor *y = make_var(ctx, yv, {2, 5, 6});
    kb_tensor *lab = make_const(ctx, {0, 1, 2, 1, 0, 3}, {2, 3}, KB_INT32);
    kb_tensor *il = make_const(ctx, {5, 5}, {2, 1}, KB_INT32), *ll = make_const(ctx, {3, 3}, {2, 1}, KB_INT32);
    EXPECT_NULL_WITH(kb_ctc_batch_cost(lab, make_var(ctx, yv, {10, 6}), il, ll), KB_ERR_SHAPE,
                     {"kb_ctc_batch_cost", "y_pred must have shape (batch, time, num_classes)"});
    EXPECT_NULL_WITH(kb_ctc_batch_cost(lab, make_var(ctx, {1, 2}, {1, 1, 2}, KB_INT32), il, ll), KB_ERR_DTYPE,
                     {"kb_ctc_batch_cost", "y_pred must be float32 or float64"});
    EXPECT_NULL_WITH(kb_ctc_batch_cost(make_const(ctx, {0, 1, 2}, {3, 1}, KB_INT32), y, il, ll), KB_ERR_SHAPE,
                     {"y_true has batch size 3 but y_pred has 2"});
    EXPECT_NULL_WITH(kb_ctc_batch_cost(lab, y, make_const(ctx, {1, 1}, {2, 1}, KB_BOOL), ll), KB_ERR_DTYPE,
                     {"kb_ctc_batch_cost", "input_length"});
    EXPECT_NULL_WITH(kb_ctc_batch_cost(lab, y, il, make_const(ctx, {1, 1, 1, 1}, {2, 2}, KB_INT32)), KB_ERR_SHAPE,
                     {"label_length must have shape (batch,) or (batch, 1)"});
    EXPECT_NULL_WITH(kb_ctc_batch_cost(nullptr, y, il, ll), KB_ERR_INVALID_ARGUMENT, {"kb_ctc_batch_cost"});
    EXPECT_NULL_WITH(kb_ctc_label_dense_to_sparse(lab, make_const(ctx, {1, 1}, {2}, KB_FLOAT32)), KB_ERR_DTYPE,
                     {"kb_ctc_label_dense_to_sparse", "label_lengths must be int32 or int64"});
    // data errors, found when the CPU kernel runs
    struct RunCase {
        std::vector<double> lab, il, ll;
        std::string needle;
    };
    const RunCase rc[] = {
        {{0, 5, 1, 0, 0, 0}, {5, 5}, {3, 3}, "y_true[0, 1] = 5 is not a label in [0, 5)"},
        {{0, 1, 1, 0, -2, 0}, {5, 5}, {3, 3}, "y_true[1, 1] = -2"},
        {{0, 1, 1, 0, 0, 0}, {5, 5}, {3, -1}, "label_length[1] = -1 is negative"},
        {{0, 1, 1, 0, 0, 0}, {9, 5}, {3, 3}, "input_length[0] = 9 is outside [0, 5]"},
    };
    for (const RunCase &r : rc) {
        kb_tensor *loss = kb_ctc_batch_cost(make_const(ctx, r.lab, {2, 3}, KB_INT32), y, make_const(ctx, r.il, {2, 1}, KB_INT32),
                                            make_const(ctx, r.ll, {2, 1}, KB_INT32));
        ASSERT_NE(loss, nullptr) << kb_last_error();
        float out[2];
        kb_clear_error();
        EXPECT_EQ(kb_eval(loss, out, sizeof out), KB_ERR_INVALID_ARGUMENT) << r.needle;
        EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"ctc_loss", r.needle}));
    }
    // decode
    kb_tensor *paths[3] = {nullptr, nullptr, nullptr}, *lp = nullptr;
    kb_tensor *dl = make_const(ctx, {5, 5}, {2}, KB_INT32);
    kb_clear_error();
    EXPECT_EQ(kb_ctc_decode(y, dl, 0, 2, 3, 0, paths, &lp), KB_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_ctc_decode", "top_paths 3"}));
    EXPECT_EQ(lp, nullptr);
    kb_clear_error();
    EXPECT_EQ(kb_ctc_decode(y, dl, 1, 100, 1, 0, nullptr, &lp), KB_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_ctc_decode", "decoded_out"}));
    kb_clear_error();
    EXPECT_EQ(kb_ctc_decode(y, make_const(ctx, {5, 5, 5}, {3}, KB_INT32), 1, 100, 1, 0, paths, &lp), KB_ERR_SHAPE);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"kb_ctc_decode", "input_length has 3 entries but the batch size is 2"}));
    for (int greedy : {1, 0}) {
        ASSERT_TRUE(ok(kb_ctc_decode(y, make_const(ctx, {5, 7}, {2}, KB_INT32), greedy, 2, 1, 0, paths, &lp)));
        float out[2];
        kb_clear_error();
        EXPECT_EQ(kb_eval(lp, out, sizeof out), KB_ERR_INVALID_ARGUMENT);
        EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"input_length[1] = 7 is outside [0, 5]"}));
    }
    kb_clear_error();
    // the session is still usable
    kb_tensor *good = kb_ctc_batch_cost(lab, y, il, ll);
    ASSERT_NE(good, nullptr) << kb_last_error();
    auto v = eval_v(good);
    ASSERT_EQ(v.size(), 2u);
    EXPECT_TRUE(std::isfinite(v[0]) && v[0] > 0);
}

}  // namespace
