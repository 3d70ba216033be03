// Reference values, gradients and bad input of the control family: map_fn, foldl, foldr, rnn
// (loop nodes traced from C callbacks, backpropagation through time, unroll).
#include <cmath>

#include "kb_test_util.h"

namespace {

using kbt::allclose;
using kbt::has_error;
using kbt::KbTest;
using kbt::ok;
using kbt::Shape;

kb_tensor *reshape(kb_tensor *x, std::vector<int64_t> s) { return kb_reshape(x, s.data(), (int)s.size()); }
kb_tensor *placeholder(kb_context *ctx, std::vector<int64_t> s, kb_dtype dt, const char *name) {
    return kb_placeholder(ctx, s.data(), (int)s.size(), dt, name);
}

// ---- callbacks ---------------------------------------------------------------------------------

kb_tensor *square_plus_w(kb_tensor *x, void *user) {  // x * x + w (w captured)
    return kb_add(kb_multiply(x, x), (kb_tensor *)user);
}
kb_tensor *twice(kb_tensor *x, void *) { return kb_add(x, x); }
kb_tensor *prod(kb_tensor *acc, kb_tensor *x, void *) { return kb_multiply(acc, x); }
kb_tensor *acc2_plus_x(kb_tensor *acc, kb_tensor *x, void *user) {  // 2 acc + x (order matters)
    return kb_add(kb_multiply(acc, (kb_tensor *)user), x);
}
kb_tensor *bad_dtype(kb_tensor *acc, kb_tensor *, void *) { return kb_cast(acc, KB_FLOAT64); }
kb_tensor *fails(kb_tensor *x, void *) { return reshape(x, {7}); }
kb_tensor *sum_prod(kb_tensor *acc, kb_tensor *x, void *) { return kb_sum(kb_multiply(acc, x), nullptr, 0, 0); }

// A simple tanh RNN: h' = tanh(x W + h U [+ c]), output = h' (or h' reshaped to 3-D); an
// additional state s (3-D) accumulates s' = s + mean... (kept simple: s' = s * 0.5 + 1).
struct Rnn {
    kb_tensor *W = nullptr, *U = nullptr;  // captured variables
    bool use_state = true, three_d = false, extra_state = false, constant = false;
    kb_tensor *half = nullptr;
};

kb_status rnn_step(kb_tensor *x, kb_tensor *const *states, int n_states, void *user, kb_tensor **out,
                   kb_tensor **ns) {
    Rnn *r = (Rnn *)user;
    kb_tensor *z = kb_dot(x, r->W);
    int k = 0;
    kb_tensor *h = nullptr;
    if (r->use_state) {
        h = states[k++];
        if (r->three_d) h = reshape(h, {-1, 4});
        z = kb_add(z, kb_dot(h, r->U));
    }
    kb_tensor *s = r->extra_state ? states[k++] : nullptr;
    if (r->constant) z = kb_add(z, states[n_states - 1]);
    kb_tensor *hn = kb_tanh(z);
    if (!hn) return kb_last_status();
    kb_tensor *o = r->three_d ? reshape(hn, {-1, 2, 2}) : hn;
    *out = o;
    int j = 0;
    if (r->use_state) ns[j++] = o;
    if (s) {  // per batch row: s * 0.5 + sum(o[b])
        int axes[2] = {1, 2};
        ns[j++] = kb_add(kb_multiply(s, r->half), reshape(kb_sum(o, axes, r->three_d ? 2 : 1, 0), {-1, 1, 1}));
    }
    return KB_OK;
}

kb_status identity_step(kb_tensor *x, kb_tensor *const *states, int, void *, kb_tensor **out, kb_tensor **ns) {
    *out = x;  // float32 output, float64 state
    ns[0] = states[0];
    return KB_OK;
}
kb_tensor *add_all(kb_tensor *x, void *user) {
    for (kb_tensor *t : *(std::vector<kb_tensor *> *)user) x = kb_add(x, t);
    return x;
}

kb_status failing_step(kb_tensor *x, kb_tensor *const *, int, void *, kb_tensor **out, kb_tensor **) {
    *out = reshape(x, {7});
    return kb_last_status();
}

// ---- reference ---------------------------------------------------------------------------------

std::vector<double> matvec(const std::vector<double> &a, int64_t off, const std::vector<double> &m, int64_t rows,
                           int64_t cols) {  // a[off:off+rows] (1 x rows) times m (rows x cols)
    std::vector<double> r(cols, 0.0);
    for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) r[j] += a[off + i] * m[i * cols + j];
    return r;
}

struct RnnRef {
    std::vector<double> outputs, last, h, s;
};

// x (B, T, F), h0 (B, U), W (F, U), Uw (U, U), c (B, U) or empty, mask (B, T) or empty,
// s0 (B, 2, 2) or empty.
RnnRef rnn_ref(const std::vector<double> &x, int64_t B, int64_t T, int64_t F, const std::vector<double> &h0,
               const std::vector<double> &W, const std::vector<double> &Uw, int64_t U, bool use_state,
               const std::vector<double> &c, const std::vector<double> &mask, bool back,
               const std::vector<double> &s0) {
    RnnRef r;
    r.outputs.assign(B * T * U, 0.0);
    r.h = h0;
    r.s = s0;
    std::vector<double> prev(B * U, 0.0);
    for (int64_t i = 0; i < T; ++i) {
        int64_t t = back ? T - 1 - i : i;
        for (int64_t b = 0; b < B; ++b) {
            std::vector<double> z = matvec(x, (b * T + t) * F, W, F, U);
            if (use_state) {
                std::vector<double> zh = matvec(r.h, b * U, Uw, U, U);
                for (int64_t j = 0; j < U; ++j) z[j] += zh[j];
            }
            if (!c.empty())
                for (int64_t j = 0; j < U; ++j) z[j] += c[b * U + j];
            bool on = mask.empty() || mask[b * T + t] != 0;
            double sum = 0;
            for (int64_t j = 0; j < U; ++j) {
                double hn = std::tanh(z[j]);
                sum += hn;
                double o = on ? hn : prev[b * U + j];
                r.outputs[(b * T + i) * U + j] = o;
                prev[b * U + j] = o;
            }
            if (use_state && on)
                for (int64_t j = 0; j < U; ++j) r.h[b * U + j] = std::tanh(z[j]);
            if (!s0.empty() && on)
                for (int64_t q = 0; q < 4; ++q) r.s[b * 4 + q] = r.s[b * 4 + q] * 0.5 + sum;
        }
    }
    r.last = prev;
    return r;
}

class Control : public KbTest {};

// ---- map_fn ------------------------------------------------------------------------------------

TEST_F(Control, MapFnCapturesAVariable) {
    auto xv = kbt::random_values(gen, 12, -2, 2), wv = kbt::random_values(gen, 3, -1, 1);
    kb_tensor *x = kbt::make_var(ctx, xv, {4, 3}), *w = kbt::make_var(ctx, wv, {3});
    kb_tensor *y = kb_map_fn(square_plus_w, w, x, KB_FLOATX);
    ASSERT_NE(y, nullptr) << kb_last_error();
    EXPECT_EQ(kbt::static_shape(y), (Shape{4, 3}));
    std::vector<double> want(12);
    auto xr = kbt::rounded(xv, KB_FLOAT32), wr = kbt::rounded(wv, KB_FLOAT32);
    for (int i = 0; i < 12; ++i) want[i] = xr[i] * xr[i] + wr[i % 3];
    EXPECT_TRUE(allclose(kbt::eval_v(y), want, 1e-6, 1e-6));
    // a new value of the captured variable is seen by the next evaluation
    std::vector<double> w2 = {1, 2, 3};
    auto b = kbt::to_bytes(w2, KB_FLOAT32);
    ASSERT_TRUE(ok(kb_set_value(w, b.data(), b.size())));
    for (int i = 0; i < 12; ++i) want[i] = xr[i] * xr[i] + w2[i % 3];
    EXPECT_TRUE(allclose(kbt::eval_v(y), want, 1e-6, 1e-6));
}

TEST_F(Control, MapFnChangesDtype) {  // int32 elements -> float32 outputs (Keras' dtype argument)
    std::vector<double> v = {3, -1, 7, 2, 5};
    kb_tensor *x = kbt::make_var(ctx, v, {5}, KB_INT32);
    kb_tensor *y = kb_map_fn(twice, nullptr, x, KB_FLOAT32);
    ASSERT_NE(y, nullptr) << kb_last_error();
    EXPECT_EQ(kb_dtype_of(y), KB_FLOAT32);
    EXPECT_TRUE(allclose(kbt::eval_v(y), {6, -2, 14, 4, 10}, 0, 0));
    kb_tensor *yi = kb_map_fn(twice, nullptr, x, KB_FLOATX);  // fn's own dtype
    ASSERT_NE(yi, nullptr) << kb_last_error();
    EXPECT_EQ(kb_dtype_of(yi), KB_INT32);
}

TEST_F(Control, MapFnFedPlaceholderWithUnknownLength) {
    kb_tensor *x = placeholder(ctx, {KB_NONE, KB_NONE}, KB_FLOAT32, "x");
    auto wv = kbt::random_values(gen, 1, -1, 1);
    kb_tensor *w = kbt::make_var(ctx, wv, {});
    kb_tensor *y = kb_map_fn(square_plus_w, w, x, KB_FLOATX);
    ASSERT_NE(y, nullptr) << kb_last_error();
    for (int64_t T : {3, 6}) {  // two plans of one function
        auto xv = kbt::random_values(gen, (size_t)T * 2, -1, 1);
        auto xb = kbt::to_bytes(xv, KB_FLOAT32);
        Shape s{T, 2};
        auto r = kbt::run_function(ctx, {y}, KB_DEVICE_CPU, {x}, {kbt::feed_of(xb, KB_FLOAT32, s)});
        ASSERT_EQ(r.status, KB_OK) << r.error;
        auto xr = kbt::rounded(xv, KB_FLOAT32);
        std::vector<double> want(xr.size());
        for (size_t i = 0; i < xr.size(); ++i) want[i] = xr[i] * xr[i] + kbt::rounded(wv, KB_FLOAT32)[0];
        EXPECT_EQ(r.outs[0].shape, s);
        EXPECT_TRUE(allclose(r.outs[0].v, want, 1e-6, 1e-6));
    }
}

TEST_F(Control, MapFnGradient) {
    auto xv = kbt::random_values(gen, 6, -2, 2), wv = kbt::random_values(gen, 3, -1, 1);
    EXPECT_TRUE(kbt::grad_check(
        ctx, [](kb_context *, const std::vector<kb_tensor *> &in) { return kb_map_fn(square_plus_w, in[1], in[0], KB_FLOATX); },
        {{2, 3}, {3}}, {xv, wv}, gen));
}

// ---- foldl / foldr -----------------------------------------------------------------------------

TEST_F(Control, FoldOrderFloat32Underflow) {  // Keras' test_foldr
    std::vector<double> v = {1e-20, 1e-20, 10, 10, 10};
    kb_tensor *x = kbt::make_var(ctx, v, {5});
    kb_tensor *l = kb_foldl(prod, nullptr, x, nullptr), *r = kb_foldr(prod, nullptr, x, nullptr);
    ASSERT_NE(l, nullptr) << kb_last_error();
    ASSERT_NE(r, nullptr) << kb_last_error();
    double lv = kbt::eval_v(l).at(0), rv = kbt::eval_v(r).at(0);
    EXPECT_LT(lv, rv);
    EXPECT_GT(rv, 9e-38);
    EXPECT_LE(rv, 1e-37);
}

TEST_F(Control, FoldWithAndWithoutInitializer) {
    auto xv = kbt::random_values(gen, 12, -1, 1), iv = kbt::random_values(gen, 3, -1, 1);
    kb_tensor *x = kbt::make_var(ctx, xv, {4, 3}, KB_FLOAT64), *init = kbt::make_var(ctx, iv, {3}, KB_FLOAT64);
    kb_tensor *two = kb_constant_scalar(ctx, 2.0, KB_FLOAT64, nullptr, 0);
    kb_tensor *outs[4] = {kb_foldl(acc2_plus_x, two, x, init), kb_foldr(acc2_plus_x, two, x, init),
                          kb_foldl(acc2_plus_x, two, x, nullptr), kb_foldr(acc2_plus_x, two, x, nullptr)};
    for (int c = 0; c < 4; ++c) {
        ASSERT_NE(outs[c], nullptr) << c << ": " << kb_last_error();
        bool right = c % 2, has_init = c < 2;
        std::vector<double> acc(3);
        int order[4] = {0, 1, 2, 3};
        if (right) {
            order[0] = 3, order[1] = 2, order[2] = 1, order[3] = 0;
        }
        int first = 0;
        if (has_init) {
            acc = iv;
        } else {
            for (int j = 0; j < 3; ++j) acc[j] = xv[order[0] * 3 + j];
            first = 1;
        }
        for (int i = first; i < 4; ++i)
            for (int j = 0; j < 3; ++j) acc[j] = 2 * acc[j] + xv[order[i] * 3 + j];
        EXPECT_TRUE(allclose(kbt::eval_v(outs[c]), acc, 1e-14, 1e-14)) << "case " << c;
    }
}

TEST_F(Control, FoldGradients) {
    auto xv = kbt::random_values(gen, 8, -1, 1), iv = kbt::random_values(gen, 2, -1, 1);
    for (int right = 0; right < 2; ++right) {
        EXPECT_TRUE(kbt::grad_check(
            ctx,
            [right](kb_context *c, const std::vector<kb_tensor *> &in) {
                kb_tensor *m = kb_constant_scalar(c, 1.5, KB_FLOAT64, nullptr, 0);
                kb_tensor *w = kb_multiply(in[1], m);  // an outer op, captured
                return right ? kb_foldr(prod, w, kb_add(in[0], w), in[1]) : kb_foldl(prod, w, kb_add(in[0], w), in[1]);
            },
            {{4, 2}, {2}}, {xv, iv}, gen))
            << "right " << right;
        EXPECT_TRUE(kbt::grad_check(
            ctx,
            [right](kb_context *, const std::vector<kb_tensor *> &in) {
                return right ? kb_foldr(acc2_plus_x, in[1], in[0], nullptr) : kb_foldl(acc2_plus_x, in[1], in[0], nullptr);
            },
            {{4, 2}, {2}}, {xv, iv}, gen))
            << "no initializer, right " << right;
    }
}

// ---- rnn ---------------------------------------------------------------------------------------

struct RnnCase {
    bool back = false, mask = false, constant = false, use_state = true, extra_state = false, three_d = false;
    bool unroll = false;
};

class RnnTest : public KbTest {
protected:
    static constexpr int64_t B = 2, T = 4, F = 3, U = 4;
    std::vector<double> xv, hv, Wv, Uv, cv, mv, sv;
    void make_values() {
        xv = kbt::random_values(gen, B * T * F, -1, 1);
        hv = kbt::random_values(gen, B * U, -1, 1);
        Wv = kbt::random_values(gen, F * U, -1, 1);
        Uv = kbt::random_values(gen, U * U, -1, 1);
        cv = kbt::random_values(gen, B * U, -1, 1);
        sv = kbt::random_values(gen, B * 4, -1, 1);
        mv = {1, 0, 1, 1, 0, 1, 1, 0};
    }
    // Builds rnn from tensors in = {x, h0, W, U, c, s0, mask}; returns {outputs, last, states...}.
    static std::vector<kb_tensor *> build(kb_context *ctx, const RnnCase &c, Rnn *r, const std::vector<kb_tensor *> &in) {
        r->W = in[2];
        r->U = in[3];
        r->use_state = c.use_state;
        r->three_d = c.three_d;
        r->extra_state = c.extra_state;
        r->constant = c.constant;
        r->half = kb_constant_scalar(ctx, 0.5, kb_dtype_of(in[0]), nullptr, 0);
        std::vector<kb_tensor *> states;
        if (c.use_state) states.push_back(c.three_d ? reshape(in[1], {B, 2, 2}) : in[1]);
        if (c.extra_state) states.push_back(in[5]);
        kb_tensor *consts[1] = {in[4]};
        kb_tensor *last = nullptr, *outs = nullptr, *ns[2] = {nullptr, nullptr};
        kb_status st = kb_rnn(rnn_step, r, in[0], states.data(), (int)states.size(), c.back, c.mask ? in[6] : nullptr,
                              consts, c.constant ? 1 : 0, c.unroll, 0, &last, &outs, ns);
        if (st != KB_OK) return {};
        std::vector<kb_tensor *> res = {outs, last};
        for (size_t k = 0; k < states.size(); ++k) res.push_back(ns[k]);
        return res;
    }
    std::vector<kb_tensor *> tensors(kb_dtype dt) {
        return {kbt::make_var(ctx, xv, {B, T, F}, dt), kbt::make_var(ctx, hv, {B, U}, dt),
                kbt::make_var(ctx, Wv, {F, U}, dt),    kbt::make_var(ctx, Uv, {U, U}, dt),
                kbt::make_var(ctx, cv, {B, U}, dt),    kbt::make_var(ctx, sv, {B, 2, 2}, dt),
                kbt::make_var(ctx, mv, {B, T}, KB_BOOL)};
    }
    void check_values(const RnnCase &c) {
        Rnn r;
        auto res = build(ctx, c, &r, tensors(KB_FLOAT64));
        ASSERT_FALSE(res.empty()) << kb_last_error();
        RnnRef ref = rnn_ref(xv, B, T, F, hv, Wv, Uv, U, c.use_state, c.constant ? cv : std::vector<double>{},
                             c.mask ? mv : std::vector<double>{}, c.back, c.extra_state ? sv : std::vector<double>{});
        Shape os = c.three_d ? Shape{B, T, 2, 2} : Shape{B, T, U};
        EXPECT_EQ(kbt::static_shape(res[0]), os);
        EXPECT_TRUE(allclose(kbt::eval_v(res[0]), ref.outputs, 1e-12, 1e-12)) << "outputs";
        EXPECT_TRUE(allclose(kbt::eval_v(res[1]), ref.last, 1e-12, 1e-12)) << "last_output";
        size_t k = 2;
        if (c.use_state) {
            EXPECT_TRUE(allclose(kbt::eval_v(res[k++]), ref.h, 1e-12, 1e-12)) << "state h";
        }
        if (c.extra_state) {
            EXPECT_TRUE(allclose(kbt::eval_v(res[k++]), ref.s, 1e-12, 1e-12)) << "state s";
        }
    }
};

TEST_F(RnnTest, MatchesAnIndependentLoop) {
    make_values();
    RnnCase cases[] = {{},
                       {.back = true},
                       {.mask = true},
                       {.back = true, .mask = true},
                       {.constant = true},
                       {.use_state = false},
                       {.mask = true, .extra_state = true},
                       {.mask = true, .three_d = true},
                       {.back = true, .mask = true, .constant = true, .extra_state = true, .unroll = true},
                       {.mask = true, .three_d = true, .unroll = true}};
    int i = 0;
    for (const RnnCase &c : cases) {
        SCOPED_TRACE("case " + std::to_string(i++));
        check_values(c);
    }
}

TEST_F(RnnTest, BpttMatchesFiniteDifferences) {
    make_values();
    RnnCase cases[] = {{}, {.back = true, .mask = true, .constant = true, .extra_state = true}, {.mask = true, .three_d = true}};
    for (const RnnCase &c : cases) {
        for (int out = 0; out < 3; ++out) {  // outputs, last_output, the final state
            EXPECT_TRUE(kbt::grad_check(
                ctx,
                [c, out](kb_context *cx, const std::vector<kb_tensor *> &in) -> kb_tensor * {
                    static Rnn r;
                    std::vector<kb_tensor *> all = in;
                    all.push_back(kbt::make_var(cx, {1, 0, 1, 1, 0, 1, 1, 0}, {B, T}, KB_BOOL));
                    auto res = build(cx, c, &r, all);
                    return res.empty() ? nullptr : res[(size_t)out];
                },
                {{B, T, F}, {B, U}, {F, U}, {U, U}, {B, U}, {B, 2, 2}}, {xv, hv, Wv, Uv, cv, sv}, gen))
                << "output " << out << " back " << c.back << " mask " << c.mask;
        }
    }
}

TEST_F(RnnTest, SecondDerivativesMatchFiniteDifferences) {
    make_values();
    // (the gradient loop of a masked rnn's gradient loop needs more than 15 inputs: refused)
    for (RnnCase c : {RnnCase{}, RnnCase{.back = true}, RnnCase{.back = true, .mask = true}}) {
        ::testing::AssertionResult res = kbt::grad_check(
                      ctx,
                      [c](kb_context *cx, const std::vector<kb_tensor *> &in) -> kb_tensor * {
                          static Rnn r;
                          std::vector<kb_tensor *> all = in;
                          all.push_back(kbt::make_var(cx, {1, 0, 1, 1, 0, 1, 1, 0}, {B, T}, KB_BOOL));
                          auto res = build(cx, c, &r, all);
                          if (res.empty()) return nullptr;
                          kb_tensor *vars[3] = {in[1], in[2], in[3]}, *g[3];
                          kb_tensor *loss = kb_add(kb_sum(kb_square(res[0]), nullptr, 0, 0), kb_sum(res[2], nullptr, 0, 0));
                          if (kb_gradients(loss, vars, 3, g) != KB_OK) return nullptr;
                          kb_tensor *parts[3] = {reshape(g[0], {-1}), reshape(g[1], {-1}), reshape(g[2], {-1})};
                          return kb_concatenate(parts, 3, 0);
                      },
                      {{B, T, F}, {B, U}, {F, U}, {U, U}, {B, U}, {B, 2, 2}}, {xv, hv, Wv, Uv, cv, sv}, gen);
        if (c.mask) {
            EXPECT_FALSE(res);
            EXPECT_NE(std::string(res.message()).find("at most 15"), std::string::npos) << res.message();
        } else {
            EXPECT_TRUE(res) << "back " << c.back;
        }
    }
}

TEST_F(RnnTest, UnrollEqualsLoopValuesAndGradients) {
    make_values();
    RnnCase c{.back = true, .mask = true, .constant = true, .extra_state = true};
    auto in = tensors(KB_FLOAT64);
    Rnn r1, r2;
    auto loop = build(ctx, c, &r1, in);
    c.unroll = true;
    auto unr = build(ctx, c, &r2, in);
    ASSERT_FALSE(loop.empty());
    ASSERT_FALSE(unr.empty());
    for (size_t i = 0; i < loop.size(); ++i) EXPECT_TRUE(allclose(kbt::eval_v(loop[i]), kbt::eval_v(unr[i]), 1e-13, 1e-13));
    kb_tensor *vars[5] = {in[0], in[1], in[2], in[3], in[4]};
    kb_tensor *gl[5], *gu[5];
    kb_tensor *ll = kb_add(kb_sum(kb_square(loop[0]), nullptr, 0, 0), kb_sum(loop[3], nullptr, 0, 0));
    kb_tensor *lu = kb_add(kb_sum(kb_square(unr[0]), nullptr, 0, 0), kb_sum(unr[3], nullptr, 0, 0));
    ASSERT_TRUE(ok(kb_gradients(ll, vars, 5, gl)));
    ASSERT_TRUE(ok(kb_gradients(lu, vars, 5, gu)));
    for (int i = 0; i < 5; ++i) {
        ASSERT_NE(gl[i], nullptr) << i;
        ASSERT_NE(gu[i], nullptr) << i;
        EXPECT_TRUE(allclose(kbt::eval_v(gl[i]), kbt::eval_v(gu[i]), 1e-12, 1e-12)) << "gradient " << i;
    }
}

TEST_F(RnnTest, PlaceholdersWithUnknownBatchAndSteps) {  // one function, two shapes (two plans)
    kb_tensor *x = placeholder(ctx, {KB_NONE, KB_NONE, F}, KB_FLOAT64, "x");
    kb_tensor *h0 = placeholder(ctx, {KB_NONE, U}, KB_FLOAT64, "h0");
    kb_tensor *mask = placeholder(ctx, {KB_NONE, KB_NONE}, KB_FLOAT64, "mask");  // cast to bool
    make_values();
    Rnn r;
    r.W = kbt::make_var(ctx, Wv, {F, U}, KB_FLOAT64);
    r.U = kbt::make_var(ctx, Uv, {U, U}, KB_FLOAT64);
    r.half = kb_constant_scalar(ctx, 0.5, KB_FLOAT64, nullptr, 0);
    kb_tensor *last = nullptr, *outs = nullptr, *ns[1] = {nullptr};
    ASSERT_TRUE(ok(kb_rnn(rnn_step, &r, x, &h0, 1, 1, mask, nullptr, 0, 0, 0, &last, &outs, ns)));
    kb_tensor *gW = nullptr;
    ASSERT_TRUE(ok(kb_gradients(kb_sum(outs, nullptr, 0, 0), &r.W, 1, &gW)));
    for (int64_t b : {3, 1}) {
        for (int64_t t : {5, 2}) {
            auto xs = kbt::random_values(gen, (size_t)(b * t * F), -1, 1), hs = kbt::random_values(gen, (size_t)(b * U), -1, 1);
            std::vector<double> ms((size_t)(b * t));
            for (size_t i = 0; i < ms.size(); ++i) ms[i] = (i * 7 + (size_t)t) % 3 != 0;
            auto xb = kbt::to_bytes(xs, KB_FLOAT64), hb = kbt::to_bytes(hs, KB_FLOAT64), mb = kbt::to_bytes(ms, KB_FLOAT64);
            auto res = kbt::run_function(ctx, {outs, last, ns[0], gW}, KB_DEVICE_CPU, {x, h0, mask},
                                         {kbt::feed_of(xb, KB_FLOAT64, {b, t, F}), kbt::feed_of(hb, KB_FLOAT64, {b, U}),
                                          kbt::feed_of(mb, KB_FLOAT64, {b, t})});
            ASSERT_EQ(res.status, KB_OK) << res.error;
            RnnRef ref = rnn_ref(xs, b, t, F, hs, Wv, Uv, U, true, {}, ms, true, {});
            EXPECT_EQ(res.outs[0].shape, (Shape{b, t, U}));
            EXPECT_TRUE(allclose(res.outs[0].v, ref.outputs, 1e-12, 1e-12)) << b << "x" << t;
            EXPECT_TRUE(allclose(res.outs[1].v, ref.last, 1e-12, 1e-12));
            EXPECT_TRUE(allclose(res.outs[2].v, ref.h, 1e-12, 1e-12));
            EXPECT_EQ(res.outs[3].shape, (Shape{F, U}));
        }
    }
}

// ---- bad input ---------------------------------------------------------------------------------

TEST_F(Control, BadInput) {
    kb_tensor *x2 = kbt::make_var(ctx, kbt::random_values(gen, 6, -1, 1), {2, 3});
    kb_tensor *x3 = kbt::make_var(ctx, kbt::random_values(gen, 12, -1, 1), {2, 2, 3});
    kb_tensor *last, *outs, *nns[1];
    kb_clear_error();
    EXPECT_EQ(kb_rnn(rnn_step, nullptr, x2, nullptr, 0, 0, nullptr, nullptr, 0, 0, 0, &last, &outs, nullptr), KB_ERR_SHAPE);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"kb_rnn", "Input should be at least 3D."}));
    kb_tensor *ph = placeholder(ctx, {2, KB_NONE, 3}, KB_FLOAT32, "seq");
    EXPECT_EQ(kb_rnn(rnn_step, nullptr, ph, nullptr, 0, 0, nullptr, nullptr, 0, 1, 0, &last, &outs, nullptr), KB_ERR_SHAPE);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"Unrolling requires a fixed number of timesteps."}));
    kb_clear_error();
    EXPECT_EQ(kb_rnn(failing_step, nullptr, x3, nullptr, 0, 0, nullptr, nullptr, 0, 0, 0, &last, &outs, nullptr),
              KB_ERR_SHAPE);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"kb_reshape"}));  // the step function's own error
    kb_tensor *m = kbt::make_var(ctx, {1, 1, 1}, {3}, KB_BOOL);
    EXPECT_EQ(kb_rnn(rnn_step, nullptr, x3, nullptr, 0, 0, m, nullptr, 0, 0, 0, &last, &outs, nullptr), KB_ERR_SHAPE);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"kb_rnn", "mask"}));
    EXPECT_EQ(kb_rnn(nullptr, nullptr, x3, nullptr, 0, 0, nullptr, nullptr, 0, 0, 0, &last, &outs, nullptr),
              KB_ERR_INVALID_ARGUMENT);
    EXPECT_NULL_WITH(kb_map_fn(nullptr, nullptr, x2, KB_FLOATX), KB_ERR_INVALID_ARGUMENT, {"kb_map_fn", "fn"});
    EXPECT_NULL_WITH(kb_map_fn(twice, nullptr, nullptr, KB_FLOATX), KB_ERR_INVALID_ARGUMENT, {"kb_map_fn", "elems"});
    EXPECT_NULL_WITH(kb_map_fn(fails, nullptr, x2, KB_FLOATX), KB_ERR_SHAPE, {"kb_reshape"});
    EXPECT_NULL_WITH(kb_foldl(bad_dtype, nullptr, x2, nullptr), KB_ERR_DTYPE, {"kb_foldl", "float64", "float32"});
    kb_tensor *one = kbt::make_var(ctx, {1, 2}, {1, 2});
    EXPECT_NULL_WITH(kb_foldr(prod, nullptr, one, nullptr), KB_ERR_SHAPE, {"kb_foldr", "at least 2"});
    kb_tensor *init = kbt::make_var(ctx, {1, 2, 3}, {3});
    EXPECT_NULL_WITH(kb_foldl(sum_prod, nullptr, x2, init), KB_ERR_SHAPE, {"kb_foldl", "state 0", "()", "(3,)"});
    // outputs and states of different dtypes; too many captured tensors
    kb_tensor *s64 = kbt::make_var(ctx, {1, 2, 3, 4}, {2, 2}, KB_FLOAT64);
    EXPECT_EQ(kb_rnn(identity_step, nullptr, x3, &s64, 1, 0, nullptr, nullptr, 0, 0, 0, &last, &outs, nns), KB_ERR_DTYPE);
    EXPECT_TRUE(has_error(KB_ERR_DTYPE, {"kb_rnn", "one dtype", "float32", "float64"}));
    std::vector<kb_tensor *> many;  // captures of unknown shape cannot be packed
    for (int i = 0; i < 16; ++i) many.push_back(placeholder(ctx, {KB_NONE}, KB_FLOAT32, "p"));
    EXPECT_NULL_WITH(kb_map_fn(add_all, &many, x2, KB_FLOATX), KB_ERR_NOT_SUPPORTED, {"kb_map_fn", "captures", "15"});
    // a sequence of 0 steps fails when the function runs, with the loop's label
    kb_tensor *p0 = placeholder(ctx, {KB_NONE, 3}, KB_FLOAT32, "p0");
    kb_tensor *y = kb_map_fn(twice, nullptr, p0, KB_FLOATX);
    ASSERT_NE(y, nullptr) << kb_last_error();
    std::vector<unsigned char> none;
    auto r = kbt::run_function(ctx, {y}, KB_DEVICE_CPU, {p0}, {kbt::feed_of(none, KB_FLOAT32, {0, 3})});
    EXPECT_EQ(r.status, KB_ERR_SHAPE);
    EXPECT_NE(r.error.find("0 steps"), std::string::npos) << r.error;
    // the session is still usable
    kb_tensor *z = kb_map_fn(twice, nullptr, x2, KB_FLOATX);
    ASSERT_NE(z, nullptr) << kb_last_error();
    EXPECT_EQ(kbt::eval_v(z).size(), 6u);
}

TEST_F(Control, SecondDerivativesThroughLoops) {  // the gradient loops are loops too
    auto xv = kbt::random_values(gen, 6, -1, 1), wv = kbt::random_values(gen, 3, -1, 1);
    kb_tensor *x = kbt::make_var(ctx, xv, {2, 3}), *w = kbt::make_var(ctx, wv, {3});
    kb_tensor *y = kb_sum(kb_map_fn(square_plus_w, w, x, KB_FLOATX), nullptr, 0, 0), *g = nullptr, *gg = nullptr;
    ASSERT_TRUE(ok(kb_gradients(y, &x, 1, &g)));
    ASSERT_NE(g, nullptr);
    std::vector<double> twice_x = kbt::rounded(xv, KB_FLOAT32);
    for (double &e : twice_x) e *= 2;
    EXPECT_TRUE(allclose(kbt::eval_v(g), twice_x, 1e-6, 1e-6));
    ASSERT_TRUE(ok(kb_gradients(kb_sum(kb_square(g), nullptr, 0, 0), &x, 1, &gg)));  // d sum((2x)^2) = 8x
    ASSERT_NE(gg, nullptr);
    for (double &e : twice_x) e *= 4;
    EXPECT_TRUE(allclose(kbt::eval_v(gg), twice_x, 1e-6, 1e-6));
    // fold with an initializer and an rnn (mask, go_backwards, constants, extra state): finite
    // differences of first-order gradients
    auto iv = kbt::random_values(gen, 3, -1, 1);
    EXPECT_TRUE(kbt::grad_check(
        ctx,
        [](kb_context *, const std::vector<kb_tensor *> &in) -> kb_tensor * {
            kb_tensor *f = kb_foldr(prod, nullptr, kb_add(in[0], in[2]), in[1]), *d[2];
            kb_tensor *vars[2] = {in[0], in[1]};
            if (kb_gradients(kb_sum(kb_square(f), nullptr, 0, 0), vars, 2, d) != KB_OK) return nullptr;
            kb_tensor *parts[2] = {reshape(d[0], {-1}), d[1]};
            return kb_concatenate(parts, 2, 0);
        },
        {{2, 3}, {3}, {3}}, {xv, iv, wv}, gen));
}

kb_tensor *identity_fn(kb_tensor *x, void *) { return x; }
kb_tensor *outer_fn(kb_tensor *, void *w) { return (kb_tensor *)w; }
kb_status keep_state(kb_tensor *, kb_tensor *const *states, int, void *, kb_tensor **out, kb_tensor **ns) {
    *out = states[0];
    ns[0] = states[0];
    return KB_OK;
}

TEST_F(Control, BodiesThatReturnTheirInputsOrOuterTensors) {
    auto xv = kbt::random_values(gen, 6, -1, 1), wv = kbt::random_values(gen, 2, -1, 1);
    kb_tensor *x = kbt::make_var(ctx, xv, {3, 2}, KB_FLOAT64), *w = kbt::make_var(ctx, wv, {2}, KB_FLOAT64);
    kb_tensor *id = kb_map_fn(identity_fn, nullptr, x, KB_FLOATX), *ow = kb_map_fn(outer_fn, w, x, KB_FLOATX);
    ASSERT_NE(id, nullptr) << kb_last_error();
    ASSERT_NE(ow, nullptr) << kb_last_error();
    EXPECT_TRUE(allclose(kbt::eval_v(id), xv, 0, 0));
    EXPECT_TRUE(allclose(kbt::eval_v(ow), {wv[0], wv[1], wv[0], wv[1], wv[0], wv[1]}, 0, 0));
    kb_tensor *vars[2] = {x, w}, *g[2];
    ASSERT_TRUE(ok(kb_gradients(kb_add(kb_sum(id, nullptr, 0, 0), kb_sum(ow, nullptr, 0, 0)), vars, 2, g)));
    ASSERT_NE(g[0], nullptr);
    ASSERT_NE(g[1], nullptr);
    EXPECT_TRUE(allclose(kbt::eval_v(g[0]), std::vector<double>(6, 1.0), 0, 0));
    EXPECT_TRUE(allclose(kbt::eval_v(g[1]), {3, 3}, 0, 0));
    // an rnn whose step keeps its state: outputs repeat the initial state, gradient T per step
    kb_tensor *in = kbt::make_var(ctx, kbt::random_values(gen, 12, -1, 1), {2, 3, 2}, KB_FLOAT64);
    kb_tensor *h0 = kbt::make_var(ctx, wv, {1, 2}, KB_FLOAT64), *last, *outs, *ns[1];
    ASSERT_TRUE(ok(kb_rnn(keep_state, nullptr, in, &h0, 1, 0, nullptr, nullptr, 0, 0, 0, &last, &outs, ns)));
    EXPECT_TRUE(allclose(kbt::eval_v(outs), {wv[0], wv[1], wv[0], wv[1], wv[0], wv[1]}, 0, 0));
    kb_tensor *gh = nullptr;
    ASSERT_TRUE(ok(kb_gradients(kb_sum(outs, nullptr, 0, 0), &h0, 1, &gh)));
    ASSERT_NE(gh, nullptr);
    EXPECT_TRUE(allclose(kbt::eval_v(gh), {3, 3}, 0, 0));
}

TEST_F(Control, ManyCapturesArePacked) {  // 1 sequence + 20 captures: static ones share an input
    auto xv = kbt::random_values(gen, 6, -1, 1);
    kb_tensor *x = kbt::make_var(ctx, xv, {2, 3}, KB_FLOAT64);
    std::vector<kb_tensor *> many;
    std::vector<std::vector<double>> vals;
    for (int i = 0; i < 20; ++i) {
        vals.push_back(kbt::random_values(gen, i % 2 ? 3 : 1, -1, 1));
        many.push_back(kbt::make_var(ctx, vals.back(), i % 2 ? Shape{3} : Shape{1}, KB_FLOAT64));
    }
    kb_tensor *y = kb_map_fn(add_all, &many, x, KB_FLOATX);
    ASSERT_NE(y, nullptr) << kb_last_error();
    std::vector<double> want = xv;
    for (int r = 0; r < 2; ++r)
        for (int j = 0; j < 3; ++j)
            for (int i = 0; i < 20; ++i) want[r * 3 + j] += vals[i][i % 2 ? j : 0];
    EXPECT_TRUE(allclose(kbt::eval_v(y), want, 1e-12, 1e-12));
    EXPECT_TRUE(kbt::grad_check(
        ctx,
        [](kb_context *, const std::vector<kb_tensor *> &in) {
            static std::vector<kb_tensor *> caps;
            caps.assign(in.begin() + 1, in.end());
            kb_tensor *sq = kb_square(in[0]);  // an outer op among the captures' users
            return kb_map_fn(add_all, &caps, kb_add(in[0], sq), KB_FLOATX);
        },
        [] {
            std::vector<Shape> sh{{2, 3}};
            for (int i = 0; i < 17; ++i) sh.push_back(i % 2 ? Shape{3} : Shape{1});
            return sh;
        }(),
        [&] {
            std::vector<std::vector<double>> v{xv};
            for (int i = 0; i < 17; ++i) v.push_back(vals[i]);
            return v;
        }(),
        gen));
}

TEST_F(Control, HalfPrecisionFold) {  // float16 rows: the loop moves bytes, the body widens itself
    std::vector<double> v = {0.5, 1.5, 2.0, -1.0};
    kb_tensor *x = kbt::make_var(ctx, v, {4}, KB_FLOAT16);
    kb_tensor *two = kb_constant_scalar(ctx, 2.0, KB_FLOAT16, nullptr, 0);
    kb_tensor *y = kb_foldl(acc2_plus_x, two, x, nullptr);
    ASSERT_NE(y, nullptr) << kb_last_error();
    EXPECT_EQ(kb_dtype_of(y), KB_FLOAT16);
    EXPECT_TRUE(allclose(kbt::eval_v(y), {((0.5 * 2 + 1.5) * 2 + 2.0) * 2 - 1.0}, 0, 0));
}

// ---- lazy switch ---------------------------------------------------------------------------------

struct Branches {
    kb_tensor *x, *w, *bad_index;
};
kb_tensor *then_mul(void *u) {  // x * w
    Branches *b = (Branches *)u;
    return kb_multiply(b->x, b->w);
}
kb_tensor *else_gather(void *u) {  // x + gather(x, index): an out-of-range index fails if it runs
    Branches *b = (Branches *)u;
    return kb_add(b->x, kb_gather(b->x, b->bad_index));
}
kb_tensor *else_square(void *u) { return kb_square(((Branches *)u)->x); }
kb_tensor *else_wrong_shape(void *u) { return ((Branches *)u)->w; }

TEST_F(Control, SwitchFnRunsOnlyTheSelectedBranch) {
    auto xv = kbt::random_values(gen, 3, -1, 1), wv = kbt::random_values(gen, 3, -1, 1);
    Branches b{kbt::make_var(ctx, xv, {3}), kbt::make_var(ctx, wv, {3}), kbt::make_var(ctx, {7, 7, 7}, {3}, KB_INT32)};
    kb_tensor *c = placeholder(ctx, {}, KB_INT32, "c");
    kb_tensor *y = kb_switch_fn(c, then_mul, else_gather, &b);
    ASSERT_NE(y, nullptr) << kb_last_error();
    EXPECT_EQ(kbt::static_shape(y), (Shape{3}));
    auto xr = kbt::rounded(xv, KB_FLOAT32), wr = kbt::rounded(wv, KB_FLOAT32);
    std::vector<double> want(3);
    for (int i = 0; i < 3; ++i) want[i] = xr[i] * wr[i];
    for (int cv : {1, 5}) {  // non-zero: then; the else branch (which would fail) never runs
        auto cb = kbt::to_bytes({(double)cv}, KB_INT32);
        auto r = kbt::run_function(ctx, {y}, KB_DEVICE_CPU, {c}, {kbt::feed_of(cb, KB_INT32, {})});
        ASSERT_EQ(r.status, KB_OK) << r.error;
        EXPECT_TRUE(allclose(r.outs[0].v, kbt::rounded(want, KB_FLOAT32), 0, 0));
    }
    auto cb = kbt::to_bytes({0.0}, KB_INT32);
    auto r = kbt::run_function(ctx, {y}, KB_DEVICE_CPU, {c}, {kbt::feed_of(cb, KB_INT32, {})});
    EXPECT_NE(r.status, KB_OK);  // the else branch ran: its gather index is out of range
    EXPECT_NE(r.error.find("gather"), std::string::npos) << r.error;
    // an else branch that runs fine
    kb_tensor *y2 = kb_switch_fn(c, then_mul, else_square, &b);
    ASSERT_NE(y2, nullptr) << kb_last_error();
    r = kbt::run_function(ctx, {y2}, KB_DEVICE_CPU, {c}, {kbt::feed_of(cb, KB_INT32, {})});
    ASSERT_EQ(r.status, KB_OK) << r.error;
    for (int i = 0; i < 3; ++i) want[i] = xr[i] * xr[i];
    EXPECT_TRUE(allclose(r.outs[0].v, kbt::rounded(want, KB_FLOAT32), 0, 0));
}

TEST_F(Control, SwitchFnGradientsAndBadInput) {
    auto xv = kbt::random_values(gen, 3, -1, 1), wv = kbt::random_values(gen, 3, -1, 1);
    for (double cv : {1.0, 0.0}) {
        EXPECT_TRUE(kbt::grad_check(
            ctx,
            [cv](kb_context *cx, const std::vector<kb_tensor *> &in) {
                static Branches b;
                b = Branches{in[0], in[1], nullptr};
                return kb_switch_fn(kb_constant_scalar(cx, cv, KB_FLOAT32, nullptr, 0), then_mul, else_square, &b);
            },
            {{3}, {3}}, {xv, wv}, gen))
            << "condition " << cv;
    }
    Branches b{kbt::make_var(ctx, xv, {3}), kbt::make_var(ctx, {1, 2}, {2}), nullptr};
    kb_tensor *c = kb_constant_scalar(ctx, 1, KB_BOOL, nullptr, 0);
    kb_tensor *cv = kbt::make_var(ctx, {1, 0}, {2}, KB_BOOL);
    EXPECT_NULL_WITH(kb_switch_fn(cv, then_mul, else_square, &b), KB_ERR_SHAPE, {"kb_switch_fn", "scalar"});
    EXPECT_NULL_WITH(kb_switch_fn(c, nullptr, else_square, &b), KB_ERR_INVALID_ARGUMENT, {"kb_switch_fn", "then_fn"});
    EXPECT_NULL_WITH(kb_switch_fn(c, else_square, else_wrong_shape, &b), KB_ERR_SHAPE, {"kb_switch_fn", "branches"});
    EXPECT_NULL_WITH(kb_switch_fn(c, then_mul, else_square, &b), KB_ERR_SHAPE, {"kb_multiply"});  // (3,) * (2,)
}

// ---- nesting and devices -----------------------------------------------------------------------

kb_tensor *row_sum_fold(kb_tensor *row, void *one) {  // map_fn body that runs a foldl itself
    return kb_foldl(acc2_plus_x, (kb_tensor *)one, row, nullptr);
}

TEST_F(Control, NestedLoops) {
    auto xv = kbt::random_values(gen, 12, -1, 1);
    kb_tensor *x = kbt::make_var(ctx, xv, {3, 4});
    kb_tensor *y = kb_map_fn(row_sum_fold, kb_constant_scalar(ctx, 1.0, KB_FLOAT32, nullptr, 0), x, KB_FLOATX);
    ASSERT_NE(y, nullptr) << kb_last_error();
    auto xr = kbt::rounded(xv, KB_FLOAT32);
    std::vector<double> want(3, 0.0);
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 4; ++j) want[i] += xr[i * 4 + j];
    EXPECT_TRUE(allclose(kbt::eval_v(y), want, 1e-6, 1e-6));
    EXPECT_TRUE(kbt::grad_check(
        ctx,
        [](kb_context *c, const std::vector<kb_tensor *> &in) {
            return kb_map_fn(row_sum_fold, kb_constant_scalar(c, 1.0, KB_FLOAT64, nullptr, 0), in[0], KB_FLOATX);
        },
        {{3, 4}}, {xv}, gen));
}

TEST_F(RnnTest, CudaMatchesCpu) {
    KB_REQUIRE_CUDA();
    make_values();
    for (RnnCase c : {RnnCase{}, RnnCase{.back = true, .mask = true, .constant = true, .extra_state = true}}) {
        EXPECT_TRUE(kbt::parity_check(
            ctx,
            [c](kb_context *cx, const std::vector<kb_tensor *> &in) -> kb_tensor * {
                static Rnn r;
                std::vector<kb_tensor *> all = in;
                all.push_back(kbt::make_var(cx, {1, 0, 1, 1, 0, 1, 1, 0}, {B, T}, KB_BOOL));
                auto res = build(cx, c, &r, all);
                if (res.empty()) return nullptr;
                kb_tensor *vars[3] = {in[0], in[2], in[3]}, *g[3];
                kb_tensor *loss = kb_sum(kb_square(res[0]), nullptr, 0, 0);
                if (kb_gradients(loss, vars, 3, g) != KB_OK) return nullptr;
                // one output: outputs and the gradients, flattened and concatenated
                kb_tensor *parts[4] = {reshape(res[0], {-1}), reshape(g[0], {-1}),
                                       reshape(g[1], {-1}), reshape(g[2], {-1})};
                return kb_concatenate(parts, 4, 0);
            },
            {{B, T, F}, {B, U}, {F, U}, {U, U}, {B, U}, {B, 2, 2}}, {xv, hv, Wv, Uv, cv, sv}, KB_FLOAT32, {1e-4, 1e-5}));
    }
}

}  // namespace
