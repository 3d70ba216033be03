/* The window geometry of an extract_patches / extract_patches_grad node (local_conv1d /
 * local_conv2d; attribute layout in ops/nn.c) on a concrete x, shared by the CPU and CUDA kernels. */
#ifndef KB_OPS_NN_PATCHES_H
#define KB_OPS_NN_PATCHES_H

#include "ops/op.h"

typedef struct kb_patch_geo {
    int cf;
    int64_t B, C, H, W, kh, kw, sh, sw, oh, ow, K;
} kb_patch_geo;

static inline kb_patch_geo kb_patch_geo_of(const kb_attrs *a, const kb_buf *x) {
    kb_patch_geo g;
    g.cf = (int)a->i64[0];
    g.kh = a->i64[1], g.kw = a->i64[2], g.sh = a->i64[3], g.sw = a->i64[4], g.oh = a->i64[5], g.ow = a->i64[6];
    g.B = x->shape[0];
    if (x->rank == 3) {
        g.H = 1, g.W = x->shape[1], g.C = x->shape[2];
    } else if (g.cf) {
        g.C = x->shape[1], g.H = x->shape[2], g.W = x->shape[3];
    } else {
        g.H = x->shape[1], g.W = x->shape[2], g.C = x->shape[3];
    }
    g.K = g.kh * g.kw * g.C;
    return g;
}

#endif
