// Op cases of the norm family (see op_cases.h): bn_moments, bn_normalize, bn_grad_stats and
// bn_grad_input, reached through kb_normalize_batch_in_training (its fused path: the kept axes
// form one block) and its gradients. The composite path (other axes) is checked in test_norm.
#include "op_cases.h"

namespace kbt {

namespace {

enum Out { NORMED, MEAN, VAR };

// normalize_batch_in_training(x, gamma, beta, axes) with gamma / beta from in[1], in[2] when
// `affine`, None otherwise; returns one of its three results.
Builder bn(std::vector<int> axes, bool affine, Out which, double eps = 1e-3) {
    return [axes, affine, which, eps](kb_context *, In in) -> kb_tensor * {
        kb_tensor *r[3] = {nullptr, nullptr, nullptr};
        if (kb_normalize_batch_in_training(in[0], affine ? in[1] : nullptr, affine ? in[2] : nullptr, axes.data(),
                                           (int)axes.size(), eps, &r[0], &r[1], &r[2]) != KB_OK)
            return nullptr;
        return r[which];
    };
}

// d sum(normed * w) / d (x or gamma): w is the last input.
Builder bn_vjp(std::vector<int> axes, int wrt) {
    return [axes, wrt](kb_context *ctx, In in) -> kb_tensor * {
        kb_tensor *y = bn(axes, true, NORMED)(ctx, in);
        return y ? vjp(y, in[3], in[wrt]) : nullptr;
    };
}

}  // namespace

void add_norm_cases(std::vector<OpCase> &v) {
    const Range sym{-2.0, 2.0}, gam{0.5, 1.5};
    // mean / var: NHWC-style (kept last axis), NCHW-style (kept axis 1, inner dims after it),
    // and a reduction over every axis (one channel).
    v.push_back(mk(KB_OP_BN_MOMENTS, "bn_moments_mean_nhwc", bn({0, 1, 2}, false, MEAN), {{2, 3, 4, 5}}, {sym}, true,
                   T32R, T64R));
    v.push_back(mk(KB_OP_BN_MOMENTS, "bn_moments_var_nchw", bn({0, 2, 3}, false, VAR), {{2, 3, 4, 5}}, {sym}, true,
                   T32R, T64R));
    v.push_back(mk(KB_OP_BN_MOMENTS, "bn_moments_var_all", bn({0, 1, 2}, false, VAR), {{2, 3, 4}}, {sym}, true, T32R,
                   T64R));
    v.back().half = true;
    // normed, with and without gamma / beta, channels in the middle and last.
    v.push_back(mk(KB_OP_BN_NORMALIZE, "bn_normalize_nhwc", bn({0, 1, 2}, true, NORMED),
                   {{2, 3, 4, 5}, {5}, {5}}, {sym, gam, sym}, true, T32R, T64R));
    v.back().half = true;
    v.push_back(mk(KB_OP_BN_NORMALIZE, "bn_normalize_nchw", bn({0, 2, 3}, true, NORMED),
                   {{2, 3, 4, 5}, {3}, {3}}, {sym, gam, sym}, true, T32R, T64R));
    v.back().half = true;
    v.push_back(mk(KB_OP_BN_NORMALIZE, "bn_normalize_2d_none", bn({0}, false, NORMED), {{6, 4}}, {sym}, true, T32R,
                   T64R));
    v.push_back(mk(KB_OP_BN_NORMALIZE, "bn_normalize_3d_two_kept", bn({0}, true, NORMED, 1e-5),
                   {{5, 2, 3}, {2, 3}, {3, 2}}, {sym, gam, sym}, true, T32R, T64R));
    // The fused backward ops, and (grad = true) their second derivatives.
    v.push_back(mk(KB_OP_BN_GRAD_STATS, "bn_grad_stats_dgamma_nchw", bn_vjp({0, 2, 3}, 1),
                   {{2, 3, 2, 4}, {3}, {3}, {2, 3, 2, 4}}, {sym, gam, sym, sym}, true, T32R, T64R));
    v.back().half = true;
    v.push_back(mk(KB_OP_BN_GRAD_STATS, "bn_grad_stats_dbeta_nhwc", bn_vjp({0, 1}, 2),
                   {{3, 2, 4}, {4}, {4}, {3, 2, 4}}, {sym, gam, sym, sym}, true, T32R, T64R));
    v.push_back(mk(KB_OP_BN_GRAD_INPUT, "bn_grad_input_nhwc", bn_vjp({0, 1, 2}, 0),
                   {{2, 2, 3, 4}, {4}, {4}, {2, 2, 3, 4}}, {sym, gam, sym, sym}, true, T32R, T64R));
    v.back().half = true;
    v.push_back(mk(KB_OP_BN_GRAD_INPUT, "bn_grad_input_nchw", bn_vjp({0, 2, 3}, 0),
                   {{3, 2, 2, 3}, {2}, {2}, {3, 2, 2, 3}}, {sym, gam, sym, sym}, true, T32R, T64R));
}

}  // namespace kbt
