// Op cases of the reduce family (see op_cases.h): min, prod, any, all, logsumexp, argmax, argmin,
// cumsum, cumprod, the var / std composites, integer inputs of sum / mean / max / min / prod,
// and float16 / bfloat16 parity of every float reduction (sum, mean and max included).
#include "op_cases.h"

#include <cctype>

namespace kbt {

namespace {

using RedFn = kb_tensor *(*)(kb_tensor *, const int *, int, int);

struct Red {
    std::vector<int> axes;
    int keep;
    const char *n;
};
const Red kReds[] = {{{1}, 0, "axis1"}, {{0, 2}, 1, "axes02_keep"}, {{}, 0, "all"}, {{-1}, 0, "axism1"}};

Builder red_builder(RedFn f, std::vector<int> axes, int keep) {
    return [f, axes, keep](kb_context *, In in) {
        return f(in[0], axes.empty() ? nullptr : axes.data(), (int)axes.size(), keep);
    };
}

// x scaled by 3 and cast to an integer dtype: small integers of both signs, with ties.
kb_tensor *to_int(kb_context *ctx, kb_tensor *x, kb_dtype dt) {
    return kb_cast(kb_multiply(x, scalar_like(ctx, 3.0, x)), dt);
}

}  // namespace

void add_reduce_cases(std::vector<OpCase> &v) {
    const Range sym{-2.0, 2.0}, near1{0.5, 1.5};

    struct FloatRed {
        kb_op_id op;
        const char *n;
        RedFn f;
        Range r;
        bool grad;
    };
    const FloatRed reds[] = {{KB_OP_MIN, "min", kb_min, sym, true},
                             {KB_OP_PROD, "prod", kb_prod, near1, true},
                             {KB_OP_LOGSUMEXP, "logsumexp", kb_logsumexp, sym, true},
                             // var and std are composites of mean (their rows below exercise MEAN)
                             {KB_OP_MEAN, "var", kb_var, sym, true},
                             {KB_OP_MEAN, "std", kb_std, sym, true}};
    for (const FloatRed &fr : reds)
        for (const Red &r : kReds) {
            OpCase c = mk(fr.op, std::string(fr.n) + "_2x3x4_" + r.n, red_builder(fr.f, r.axes, r.keep), {{2, 3, 4}},
                          {fr.r}, fr.grad, T32R, T64R);
            c.half = true;
            v.push_back(c);
        }
    // prod of mixed signs (kept away from 0, where the dy * y / x rule has no value).
    v.push_back(mk(KB_OP_PROD, "prod_mixed_sign_4x5_axis0", red_builder(kb_prod, {0}, 0), {{4, 5}}, {sym}, true, T32R,
                   T64R, {0.0}));
    // min's gradient is max_grad (ties share dy).
    v.push_back(mk(KB_OP_MAX_GRAD, "max_grad_vjp_min",
                   [](kb_context *, In in) { int ax = 0; return vjp(kb_min(in[0], &ax, 1, 0), in[1], in[0]); },
                   {{3, 4}, {4}}, {sym, sym}, true));
    // float16 / bfloat16 parity of the foundation reductions and their gradient ops.
    const std::pair<RedFn, const char *> base[] = {{kb_sum, "sum"}, {kb_mean, "mean"}, {kb_max, "max"}};
    const kb_op_id base_ops[] = {KB_OP_SUM, KB_OP_MEAN, KB_OP_MAX};
    for (int i = 0; i < 3; ++i)
        for (const Red &r : kReds) {
            OpCase c = mk(base_ops[i], std::string(base[i].second) + "_half_3x5x7_" + r.n,
                          red_builder(base[i].first, r.axes, r.keep), {{3, 5, 7}}, {sym}, false, T32R, T64R);
            c.half = true;
            v.push_back(c);
        }
    {
        OpCase c = mk(KB_OP_BROADCAST_LIKE, "broadcast_like_half_vjp_mean",
                      [](kb_context *, In in) { int ax = 1; return vjp(kb_mean(in[0], &ax, 1, 1), in[1], in[0]); },
                      {{4, 6, 3}, {4, 1, 3}}, {sym}, true, T32R, T64R);
        c.half = true;
        v.push_back(c);
        c = mk(KB_OP_SUM_LIKE, "sum_like_half_vjp_add",
               [](kb_context *, In in) { return vjp(kb_add(in[0], in[1]), in[2], in[1]); },
               {{5, 3}, {3}, {5, 3}}, {sym}, true, T32R, T64R);
        c.half = true;
        v.push_back(c);
        c = mk(KB_OP_MAX_GRAD, "max_grad_half_vjp_max",
               [](kb_context *, In in) { int ax = -1; return vjp(kb_max(in[0], &ax, 1, 0), in[1], in[0]); },
               {{4, 9}, {4}}, {sym}, true, T32R, T64R);
        c.half = true;
        v.push_back(c);
    }

    // integer inputs (values only: integer reductions have no gradient); exact on both devices.
    const std::pair<RedFn, kb_op_id> ints[] = {{kb_sum, KB_OP_SUM},   {kb_mean, KB_OP_MEAN}, {kb_max, KB_OP_MAX},
                                               {kb_min, KB_OP_MIN},   {kb_prod, KB_OP_PROD}};
    const char *int_names[] = {"sum", "mean", "max", "min", "prod"};
    for (int i = 0; i < 5; ++i)
        for (kb_dtype dt : {KB_INT32, KB_INT64})
            for (const Red &r : kReds) {
                RedFn f = ints[i].first;
                std::vector<int> axes = r.axes;
                int keep = r.keep;
                v.push_back(mk(ints[i].second,
                               std::string(int_names[i]) + (dt == KB_INT32 ? "_int32" : "_int64") + "_3x4x5_" + r.n,
                               [f, axes, keep, dt](kb_context *ctx, In in) {
                                   return f(to_int(ctx, in[0], dt), axes.empty() ? nullptr : axes.data(),
                                            (int)axes.size(), keep);
                               },
                               {{3, 4, 5}}, {sym}, false, EXACT, EXACT));
            }

    // any / all: of a float (all nonzero), of integers with zeros, and of bool.
    for (int all = 0; all < 2; ++all) {
        RedFn f = all ? kb_all : kb_any;
        kb_op_id op = all ? KB_OP_ALL : KB_OP_ANY;
        std::string n = all ? "all" : "any";
        for (const Red &r : kReds) {
            std::vector<int> axes = r.axes;
            int keep = r.keep;
            OpCase c = mk(op, n + "_int32_3x4x5_" + r.n,
                          [f, axes, keep](kb_context *, In in) {
                              return f(kb_cast(in[0], KB_INT32), axes.empty() ? nullptr : axes.data(),
                                       (int)axes.size(), keep);
                          },
                          {{3, 4, 5}}, {{-1.5, 1.5}}, false, EXACT, EXACT);
            c.half = true;
            v.push_back(c);
        }
        OpCase c = mk(op, n + "_float_2x3_axis0", red_builder(f, {0}, 0), {{2, 3}}, {sym}, false, EXACT, EXACT);
        c.half = true;
        v.push_back(c);
        v.push_back(mk(op, n + "_bool_4x6_axis1",
                       [f](kb_context *, In in) { int ax = 1; return f(kb_cast(in[0], KB_BOOL), &ax, 1, 1); },
                       {{4, 6}}, {{-0.8, 0.8}}, false, EXACT, EXACT));
    }

    // argmax / argmin along each axis, of floats (half too) and integers (ties: first index).
    for (int is_min = 0; is_min < 2; ++is_min) {
        kb_tensor *(*f)(kb_tensor *, int) = is_min ? kb_argmin : kb_argmax;
        kb_op_id op = is_min ? KB_OP_ARGMIN : KB_OP_ARGMAX;
        std::string n = is_min ? "argmin" : "argmax";
        for (int axis : {0, 1, -1}) {
            std::string an = axis < 0 ? "m1" : std::to_string(axis);
            OpCase c = mk(op, n + "_3x4x5_axis" + an, [f, axis](kb_context *, In in) { return f(in[0], axis); },
                          {{3, 4, 5}}, {sym}, false, EXACT, EXACT);
            c.half = true;
            v.push_back(c);
            for (kb_dtype dt : {KB_INT32, KB_INT64})
                v.push_back(mk(op, n + (dt == KB_INT32 ? "_int32" : "_int64") + "_3x4x5_axis" + an,
                               [f, axis, dt](kb_context *ctx, In in) { return f(to_int(ctx, in[0], dt), axis); },
                               {{3, 4, 5}}, {sym}, false, EXACT, EXACT));
        }
        v.push_back(mk(op, n + "_long_rows_3x700", [f](kb_context *, In in) { return f(in[0], -1); }, {{3, 700}},
                       {sym}, false, EXACT, EXACT));
        v.push_back(mk(op, n + "_long_cols_600x3_axis0", [f](kb_context *, In in) { return f(in[0], 0); },
                       {{600, 3}}, {sym}, false, EXACT, EXACT));
    }

    // cumsum / cumprod along each axis (Keras' default is 0); gradients by finite differences.
    for (int prod = 0; prod < 2; ++prod) {
        kb_tensor *(*f)(kb_tensor *, int) = prod ? kb_cumprod : kb_cumsum;
        kb_op_id op = prod ? KB_OP_CUMPROD : KB_OP_CUMSUM;
        std::string n = prod ? "cumprod" : "cumsum";
        Range r = prod ? near1 : sym;
        for (int axis : {0, 1, -1}) {
            std::string an = axis < 0 ? "m1" : std::to_string(axis);
            OpCase c = mk(op, n + "_2x3x4_axis" + an, [f, axis](kb_context *, In in) { return f(in[0], axis); },
                          {{2, 3, 4}}, {r}, true, T32R, T64R);
            c.half = true;
            v.push_back(c);
            for (kb_dtype dt : {KB_INT32, KB_INT64})
                v.push_back(mk(op, n + (dt == KB_INT32 ? "_int32" : "_int64") + "_3x4x5_axis" + an,
                               [f, axis, dt](kb_context *ctx, In in) { return f(to_int(ctx, in[0], dt), axis); },
                               {{3, 4, 5}}, {sym}, false, EXACT, EXACT));
        }
        // rows longer than one CUDA tile, and a long scan over an outer axis
        OpCase c = mk(op, n + "_long_rows_3x1500", [f](kb_context *, In in) { return f(in[0], -1); }, {{3, 1500}},
                      {prod ? Range{0.999, 1.001} : sym}, false, T32R, T64R);
        c.half = !prod;
        v.push_back(c);
        v.push_back(mk(op, n + "_long_cols_700x3_axis0", [f](kb_context *, In in) { return f(in[0], 0); },
                       {{700, 3}}, {prod ? Range{0.999, 1.001} : sym}, false, T32R, T64R));
    }
    // the gradient of cumprod is a reverse cumsum divided by x: mixed signs away from 0.
    v.push_back(mk(KB_OP_CUMPROD, "cumprod_mixed_sign_5x3_axis0", [](kb_context *, In in) { return kb_cumprod(in[0], 0); },
                   {{5, 3}}, {sym}, true, T32R, T64R, {0.0}));

    // long rows and columns: the warp / block / split paths of the CUDA reductions.
    const std::pair<Shape, std::vector<int>> big[] = {
        {{7, 3000}, {1}}, {{3000, 7}, {0}}, {{5, 64, 33}, {1}}, {{2, 4100}, {}}, {{300, 40}, {0}}, {{6, 50, 4}, {0, 2}}};
    for (const auto &b : big) {
        std::string sn = shape_str(b.first);
        for (char &ch : sn)
            if (!isalnum((unsigned char)ch)) ch = '_';
        std::string an;
        for (int a : b.second) an += std::to_string(a);
        const std::pair<RedFn, kb_op_id> fs[] = {{kb_sum, KB_OP_SUM}, {kb_max, KB_OP_MAX},
                                                 {kb_logsumexp, KB_OP_LOGSUMEXP}, {kb_prod, KB_OP_PROD}};
        const char *fn[] = {"sum", "max", "logsumexp", "prod"};
        for (int i = 0; i < 4; ++i) {
            OpCase c = mk(fs[i].second, std::string(fn[i]) + "_big" + sn + "_ax" + (an.empty() ? "all" : an),
                          red_builder(fs[i].first, b.second, 0), {b.first},
                          {i == 3 ? Range{0.999, 1.001} : sym}, false, T32R, T64R);
            c.half = i != 3;
            v.push_back(c);
        }
    }
}

}  // namespace kbt
