// Reference values and bad input of the reduce family: min, prod, var, std, any, all, logsumexp,
// argmax, argmin, cumsum, cumprod (and integer / empty / NaN edges of sum, mean, max) against
// independent loops written here, in float32 and float64 (integers and bools exact).
#include <cmath>
#include <limits>

#include "kb_test_util.h"

namespace {

using namespace kbt;

const double kNan = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

class Reduce : public KbTest {};

// Values rounded to the dtype they are stored in (the reference starts from the same inputs).
// Reference reduction of x (shape s) over the axes in `mask`: f folds the group's values (in
// C order) into one number.
template <class F>
std::vector<double> ref_reduce(const std::vector<double> &x, const Shape &s, unsigned mask, F f) {
    int r = (int)s.size();
    int64_t n_out = 1;
    for (int i = 0; i < r; ++i)
        if (!(mask & (1u << i))) n_out *= s[i];
    std::vector<std::vector<double>> groups((size_t)n_out);
    for (int64_t i = 0; i < numel(s); ++i) {
        int64_t rem = i, o = 0, ostride = 1;
        for (int d = r - 1; d >= 0; --d) {
            int64_t c = rem % s[d];
            rem /= s[d];
            if (!(mask & (1u << d))) {
                o += c * ostride;
                ostride *= s[d];
            }
        }
        groups[(size_t)o].push_back(x[(size_t)i]);
    }
    std::vector<double> out;
    for (auto &g : groups) out.push_back(f(g));
    return out;
}

double fsum(const std::vector<double> &g) {
    double a = 0;
    for (double v : g) a += v;
    return a;
}
double fprod(const std::vector<double> &g) {
    double a = 1;
    for (double v : g) a *= v;
    return a;
}
double fmin_nan(const std::vector<double> &g) {
    double a = kInf;
    for (double v : g) {
        if (std::isnan(v)) return v;
        a = std::min(a, v);
    }
    return a;
}
double fvar(const std::vector<double> &g) {
    double m = fsum(g) / (double)g.size(), a = 0;
    for (double v : g) a += (v - m) * (v - m);
    return a / (double)g.size();
}
double flse(const std::vector<double> &g) {
    double m = -kInf;
    for (double v : g) m = std::max(m, v);
    double a = 0;
    for (double v : g) a += std::exp(v - m);
    return m + std::log(a);
}

struct AxesCase {
    std::vector<int> axes;
    unsigned mask;
    int keep;
};
const AxesCase kAxes[] = {{{1}, 2u, 0}, {{0, 2}, 5u, 1}, {{}, 7u, 0}, {{-1}, 4u, 1}, {{-3, 1}, 3u, 0}};

using RedFn = kb_tensor *(*)(kb_tensor *, const int *, int, int);

void check_reduction(kb_context *ctx, std::mt19937_64 &gen, RedFn f, double (*ref)(const std::vector<double> &),
                     double lo, double hi, const char *what) {
    const Shape s{3, 4, 5};
    for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64}) {
        auto x = rounded(random_values(gen, 60, lo, hi), dt);
        kb_tensor *t = make_var(ctx, x, s, dt);
        for (const AxesCase &a : kAxes) {
            kb_tensor *y = f(t, a.axes.empty() ? nullptr : a.axes.data(), (int)a.axes.size(), a.keep);
            ASSERT_NE(y, nullptr) << kb_last_error();
            HostValue h = eval(y);
            EXPECT_TRUE(allclose(h.v, ref_reduce(x, s, a.mask, ref), dt == KB_FLOAT32 ? Tol{1e-4, 1e-5} : Tol{1e-10, 1e-12}))
                << what << " " << kb_dtype_name(dt) << " mask " << a.mask;
            EXPECT_EQ((int)h.shape.size(), a.keep ? 3 : 3 - __builtin_popcount(a.mask)) << what;
        }
    }
}

TEST_F(Reduce, MinProdVarStdLogsumexpMatchLoops) {
    check_reduction(ctx, gen, kb_min, fmin_nan, -3.0, 3.0, "min");
    check_reduction(ctx, gen, kb_prod, fprod, 0.5, 1.5, "prod");
    check_reduction(ctx, gen, kb_var, fvar, -3.0, 3.0, "var");
    check_reduction(
        ctx, gen, kb_std, [](const std::vector<double> &g) { return std::sqrt(fvar(g)); }, -3.0, 3.0, "std");
    check_reduction(ctx, gen, kb_logsumexp, flse, -5.0, 5.0, "logsumexp");
}

TEST_F(Reduce, LogsumexpIsStable) {
    // test_logsumexp_optim: [1e4, 1e-4] gives 1e4 (no overflow of exp(1e4)).
    for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64}) {
        kb_tensor *x = make_var(ctx, {1e4, 1e-4}, {2}, dt);
        EXPECT_TRUE(allclose(eval_v(kb_logsumexp(x, nullptr, 0, 0)), {1e4}, 1e-5, 0.0));
        // -1e4 everywhere: log(3) - 1e4, not log(0) = -inf.
        kb_tensor *y = make_var(ctx, {-1e4, -1e4, -1e4}, {3}, dt);
        EXPECT_TRUE(allclose(eval_v(kb_logsumexp(y, nullptr, 0, 0)), {std::log(3.0) - 1e4}, 1e-6, 0.0));
        // TF's edges: an all -inf row gives -inf, a +inf element +inf, NaN stays NaN.
        kb_tensor *z = make_var(ctx, {-kInf, -kInf, 1.0, kInf, 2.0, kNan}, {3, 2}, dt);
        int ax = 1;
        EXPECT_TRUE(allclose(eval_v(kb_logsumexp(z, &ax, 1, 0)), {-kInf, kInf, kNan}, 0.0, 0.0));
    }
}

TEST_F(Reduce, MinAndMaxPropagateNanAndEmptyGroups) {
    kb_tensor *x = make_var(ctx, {1.0, kNan, -2.0, 3.0, 4.0, 0.5}, {2, 3}, KB_FLOAT64);
    int ax = 1;
    EXPECT_TRUE(allclose(eval_v(kb_min(x, &ax, 1, 0)), {kNan, 0.5}, 0.0, 0.0));
    EXPECT_TRUE(allclose(eval_v(kb_max(x, &ax, 1, 0)), {kNan, 4.0}, 0.0, 0.0));
    // reductions over an empty axis: sum 0, prod 1, max -inf, min +inf, mean NaN, logsumexp -inf
    kb_tensor *e = make_var(ctx, {}, {2, 0}, KB_FLOAT32);
    EXPECT_TRUE(allclose(eval_v(kb_sum(e, &ax, 1, 0)), {0.0, 0.0}, 0.0, 0.0));
    EXPECT_TRUE(allclose(eval_v(kb_prod(e, &ax, 1, 0)), {1.0, 1.0}, 0.0, 0.0));
    EXPECT_TRUE(allclose(eval_v(kb_max(e, &ax, 1, 0)), {-kInf, -kInf}, 0.0, 0.0));
    EXPECT_TRUE(allclose(eval_v(kb_min(e, &ax, 1, 0)), {kInf, kInf}, 0.0, 0.0));
    EXPECT_TRUE(allclose(eval_v(kb_mean(e, &ax, 1, 0)), {kNan, kNan}, 0.0, 0.0));
    EXPECT_TRUE(allclose(eval_v(kb_logsumexp(e, &ax, 1, 0)), {-kInf, -kInf}, 0.0, 0.0));
    HostValue a = eval(kb_all(e, &ax, 1, 0)), o = eval(kb_any(e, &ax, 1, 0));
    EXPECT_EQ(a.dtype, KB_BOOL);
    EXPECT_EQ(a.v, (std::vector<double>{1, 1}));
    EXPECT_EQ(o.v, (std::vector<double>{0, 0}));
}

TEST_F(Reduce, IntegerReductionsAreExactAndKeepTheDtype) {
    const Shape s{2, 3};
    const std::vector<double> x{3, -7, 2, -1, -2, 5};
    int ax = 1;
    for (kb_dtype dt : {KB_INT32, KB_INT64}) {
        kb_tensor *t = make_var(ctx, x, s, dt);
        HostValue h = eval(kb_sum(t, &ax, 1, 0));
        EXPECT_EQ(h.dtype, dt);
        EXPECT_EQ(h.v, (std::vector<double>{-2, 2}));
        EXPECT_EQ(eval_v(kb_prod(t, &ax, 1, 0)), (std::vector<double>{-42, 10}));
        EXPECT_EQ(eval_v(kb_max(t, &ax, 1, 0)), (std::vector<double>{3, 5}));
        EXPECT_EQ(eval_v(kb_min(t, &ax, 1, 0)), (std::vector<double>{-7, -2}));
        // TF's integer mean: sum / count truncated toward zero (-2/3 -> 0, 2/3 -> 0; -7/2 -> -3)
        EXPECT_EQ(eval_v(kb_mean(t, &ax, 1, 0)), (std::vector<double>{0, 0}));
        int ax0 = 0;
        EXPECT_EQ(eval_v(kb_mean(t, &ax0, 1, 0)), (std::vector<double>{1, -4, 3}));
        EXPECT_EQ(eval(kb_mean(t, &ax, 1, 0)).dtype, dt);
    }
    // int32 sums wrap as TF's int32 arithmetic
    kb_tensor *big = make_var(ctx, {2147483647.0, 1.0}, {2}, KB_INT32);
    EXPECT_EQ(eval_v(kb_sum(big, nullptr, 0, 0)), (std::vector<double>{-2147483648.0}));
}

TEST_F(Reduce, MeanVarStdCastBoolToFloatx) {
    kb_tensor *b = make_var(ctx, {1, 0, 1, 1}, {4}, KB_BOOL);
    HostValue m = eval(kb_mean(b, nullptr, 0, 0));
    EXPECT_EQ(m.dtype, kb_floatx(ctx));
    EXPECT_TRUE(allclose(m.v, {0.75}, 1e-7, 0.0));
    EXPECT_TRUE(allclose(eval_v(kb_var(b, nullptr, 0, 0)), {0.1875}, 1e-6, 0.0));
    EXPECT_TRUE(allclose(eval_v(kb_std(b, nullptr, 0, 0)), {std::sqrt(0.1875)}, 1e-6, 0.0));
}

TEST_F(Reduce, StdGradientAtZeroVarianceIsNanAsTf) {
    // d sqrt(v)/dv at v = 0 is inf, times dv/dx = 0: NaN (TF's math), elsewhere (x - m) / (N std).
    kb_tensor *x = make_var(ctx, {2.0, 2.0, 1.0, 3.0}, {2, 2}, KB_FLOAT64);
    int ax = 1;
    kb_tensor *loss = kb_sum(kb_std(x, &ax, 1, 0), nullptr, 0, 0);
    kb_tensor *g = nullptr;
    ASSERT_TRUE(ok(kb_gradients(loss, &x, 1, &g)));
    std::vector<double> v = eval_v(g);
    ASSERT_EQ(v.size(), 4u);
    EXPECT_TRUE(std::isnan(v[0]) && std::isnan(v[1]));
    EXPECT_TRUE(allclose({v[2], v[3]}, {-0.5, 0.5}, 1e-12, 1e-12));
}

TEST_F(Reduce, AnyAllCastToBool) {
    // rows: all nonzero (NaN counts as true), some zero, all zero
    const std::vector<double> x{1.0, kNan, -2.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0};
    int ax = 1;
    for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64}) {
        kb_tensor *t = make_var(ctx, x, {3, 3}, dt);
        HostValue a = eval(kb_any(t, &ax, 1, 0)), l = eval(kb_all(t, &ax, 1, 1));
        EXPECT_EQ(a.dtype, KB_BOOL);
        EXPECT_EQ(a.v, (std::vector<double>{1, 1, 0}));
        EXPECT_EQ(l.v, (std::vector<double>{1, 0, 0}));
        EXPECT_EQ(l.shape, (Shape{3, 1}));
    }
    for (kb_dtype dt : {KB_INT32, KB_INT64, KB_BOOL, KB_UINT8}) {
        kb_tensor *t = make_var(ctx, {1, 1, 0, 0}, {2, 2}, dt);
        int ax0 = 0;
        EXPECT_EQ(eval_v(kb_any(t, &ax0, 1, 0)), (std::vector<double>{1, 1})) << kb_dtype_name(dt);
        EXPECT_EQ(eval_v(kb_all(t, &ax0, 1, 0)), (std::vector<double>{0, 0})) << kb_dtype_name(dt);
        EXPECT_EQ(eval_v(kb_all(t, nullptr, 0, 0)), (std::vector<double>{0})) << kb_dtype_name(dt);
    }
}

// Reference argmax / argmin along `axis` (numpy: first index; NaN is the extremum, first NaN wins).
std::vector<double> ref_arg(const std::vector<double> &x, const Shape &s, int axis, bool is_min) {
    int64_t outer = 1, inner = 1, n = s[(size_t)axis];
    for (int i = 0; i < axis; ++i) outer *= s[(size_t)i];
    for (size_t i = (size_t)axis + 1; i < s.size(); ++i) inner *= s[i];
    std::vector<double> out;
    for (int64_t o = 0; o < outer; ++o)
        for (int64_t in = 0; in < inner; ++in) {
            int64_t best = -1;
            for (int64_t k = 0; k < n; ++k) {
                double v = x[(size_t)((o * n + k) * inner + in)];
                if (std::isnan(v)) {
                    best = k;
                    break;
                }
                double b = best < 0 ? 0 : x[(size_t)((o * n + best) * inner + in)];
                if (best < 0 || (is_min ? v < b : v > b)) best = k;
            }
            out.push_back((double)best);
        }
    return out;
}

TEST_F(Reduce, ArgmaxArgminFirstIndexOnTiesAndNan) {
    const Shape s{3, 4, 5};
    for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64, KB_INT32, KB_INT64}) {
        // few distinct values: many ties
        std::vector<double> x = random_values(gen, 60, -2.0, 2.0);
        for (double &v : x) v = std::round(v);
        if (dt == KB_FLOAT64) {
            x[7] = kNan;
            x[27] = kNan;
            x[47] = kNan;
        }
        kb_tensor *t = make_var(ctx, x, s, dt);
        for (int axis : {0, 1, 2, -1, -3}) {
            int a = axis < 0 ? axis + 3 : axis;
            HostValue mx = eval(kb_argmax(t, axis)), mn = eval(kb_argmin(t, axis));
            EXPECT_EQ(mx.dtype, KB_INT64);
            EXPECT_EQ(mx.v, ref_arg(x, s, a, false)) << kb_dtype_name(dt) << " axis " << axis;
            EXPECT_EQ(mn.v, ref_arg(x, s, a, true)) << kb_dtype_name(dt) << " axis " << axis;
        }
    }
    kb_tensor *h = make_var(ctx, {1.0, kNan, 5.0, kNan}, {4}, KB_FLOAT32);
    EXPECT_EQ(eval_v(kb_argmax(h, -1)), (std::vector<double>{1}));
    EXPECT_EQ(eval_v(kb_argmin(h, 0)), (std::vector<double>{1}));
}

// Reference inclusive scan along `axis`.
std::vector<double> ref_scan(const std::vector<double> &x, const Shape &s, int axis, bool prod) {
    int64_t outer = 1, inner = 1, n = s[(size_t)axis];
    for (int i = 0; i < axis; ++i) outer *= s[(size_t)i];
    for (size_t i = (size_t)axis + 1; i < s.size(); ++i) inner *= s[i];
    std::vector<double> out(x.size());
    for (int64_t o = 0; o < outer; ++o)
        for (int64_t in = 0; in < inner; ++in) {
            double a = prod ? 1.0 : 0.0;
            for (int64_t k = 0; k < n; ++k) {
                size_t i = (size_t)((o * n + k) * inner + in);
                a = prod ? a * x[i] : a + x[i];
                out[i] = a;
            }
        }
    return out;
}

TEST_F(Reduce, CumsumCumprodAlongEveryAxis) {
    const Shape s{3, 4, 5};
    for (kb_dtype dt : {KB_FLOAT32, KB_FLOAT64}) {
        auto x = rounded(random_values(gen, 60, 0.5, 1.5), dt);
        kb_tensor *t = make_var(ctx, x, s, dt);
        Tol tol = dt == KB_FLOAT32 ? Tol{1e-5, 1e-6} : Tol{1e-12, 1e-12};
        for (int axis : {0, 1, 2, -1}) {
            int a = axis < 0 ? axis + 3 : axis;
            EXPECT_TRUE(allclose(eval_v(kb_cumsum(t, axis)), ref_scan(x, s, a, false), tol)) << axis;
            EXPECT_TRUE(allclose(eval_v(kb_cumprod(t, axis)), ref_scan(x, s, a, true), tol)) << axis;
        }
    }
    kb_tensor *i = make_var(ctx, {1, 2, 3, 4, 5, 6}, {2, 3}, KB_INT32);
    HostValue c = eval(kb_cumsum(i, 0));
    EXPECT_EQ(c.dtype, KB_INT32);
    EXPECT_EQ(c.v, (std::vector<double>{1, 2, 3, 5, 7, 9}));
    EXPECT_EQ(eval_v(kb_cumprod(i, -1)), (std::vector<double>{1, 2, 6, 4, 20, 120}));
}

TEST_F(Reduce, ScanGradientsAreReverseScans) {
    // d sum(w * cumsum(x)) / dx_i = sum_{j >= i} w_j; cumprod (no zeros): sum_{j >= i} w_j y_j / x_i
    const std::vector<double> x{0.5, 2.0, -1.5, 3.0}, w{1.0, -2.0, 0.5, 4.0};
    kb_tensor *xv = make_var(ctx, x, {4}, KB_FLOAT64), *wv = make_var(ctx, w, {4}, KB_FLOAT64);
    kb_tensor *g = nullptr;
    ASSERT_TRUE(ok(kb_gradients(kb_sum(kb_multiply(kb_cumsum(xv, 0), wv), nullptr, 0, 0), &xv, 1, &g)));
    EXPECT_TRUE(allclose(eval_v(g), {3.5, 2.5, 4.5, 4.0}, 1e-12, 1e-12));
    ASSERT_TRUE(ok(kb_gradients(kb_sum(kb_multiply(kb_cumprod(xv, 0), wv), nullptr, 0, 0), &xv, 1, &g)));
    std::vector<double> y = ref_scan(x, {4}, 0, true), want(4);
    for (int i = 0; i < 4; ++i) {
        double a = 0;
        for (int j = i; j < 4; ++j) a += w[(size_t)j] * y[(size_t)j];
        want[(size_t)i] = a / x[(size_t)i];
    }
    EXPECT_TRUE(allclose(eval_v(g), want, 1e-12, 1e-12));
}

TEST_F(Reduce, MinGradientSharesTies) {
    kb_tensor *x = make_var(ctx, {1.0, -1.0, -1.0, 2.0}, {4}, KB_FLOAT64);
    kb_tensor *g = nullptr;
    ASSERT_TRUE(ok(kb_gradients(kb_min(x, nullptr, 0, 0), &x, 1, &g)));
    EXPECT_TRUE(allclose(eval_v(g), {0.0, 0.5, 0.5, 0.0}, 0.0, 0.0));
}

TEST_F(Reduce, BadInput) {
    kb_tensor *x = make_var(ctx, {1, 2, 3, 4, 5, 6}, {2, 3}, KB_FLOAT32);
    int bad = 2, rep[2] = {1, -1};
    kb_clear_error();
    EXPECT_EQ(kb_min(nullptr, nullptr, 0, 0), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_INVALID_ARGUMENT, {"kb_min"}));
    kb_clear_error();
    EXPECT_EQ(kb_prod(x, &bad, 1, 0), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_AXIS, {"kb_prod", "axis 2"}));
    kb_clear_error();
    EXPECT_EQ(kb_logsumexp(x, rep, 2, 0), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_AXIS, {"kb_logsumexp", "repeated"}));
    kb_clear_error();
    EXPECT_EQ(kb_argmax(x, 2), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_AXIS, {"kb_argmax", "axis 2"}));
    kb_clear_error();
    EXPECT_EQ(kb_cumsum(x, -3), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_AXIS, {"kb_cumsum"}));
    kb_clear_error();
    kb_tensor *s = make_var(ctx, {1}, {}, KB_FLOAT32);
    EXPECT_EQ(kb_cumprod(s, 0), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_AXIS, {"kb_cumprod", "rank 0"}));
    kb_clear_error();
    kb_tensor *i = make_var(ctx, {1, 2}, {2}, KB_INT32);
    EXPECT_EQ(kb_logsumexp(i, nullptr, 0, 0), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_DTYPE, {"kb_logsumexp", "int32"}));
    kb_clear_error();
    EXPECT_EQ(kb_var(i, nullptr, 0, 0), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_DTYPE, {"kb_var", "int32"}));
    kb_clear_error();
    kb_tensor *b = make_var(ctx, {1, 0}, {2}, KB_BOOL);
    EXPECT_EQ(kb_sum(b, nullptr, 0, 0), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_DTYPE, {"kb_sum", "bool"}));
    kb_clear_error();
    EXPECT_EQ(kb_argmin(b, 0), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_DTYPE, {"kb_argmin", "bool"}));
    kb_clear_error();
    kb_tensor *e = make_var(ctx, {}, {3, 0}, KB_FLOAT32);
    EXPECT_EQ(kb_argmax(e, 1), nullptr);
    EXPECT_TRUE(has_error(KB_ERR_SHAPE, {"kb_argmax", "empty"}));
    kb_clear_error();
    // the session stays usable
    EXPECT_TRUE(allclose(eval_v(kb_min(x, nullptr, 0, 0)), {1.0}, 0.0, 0.0));
}

}  // namespace
