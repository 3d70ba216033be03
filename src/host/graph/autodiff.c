/*
 * kb_gradients: reverse-mode autodiff over the graph. Each op's rule builds its vector-Jacobian
 * product from table ops, so gradients run on the same kernels (and differentiate again where
 * the rules are differentiable). Only nodes on a path from a variable to the loss are visited.
 */
#include <stdlib.h>

#include "core/dtype.h"
#include "core/error.h"
#include "graph/tensor.h"

kb_status kb_gradients(kb_tensor *loss, kb_tensor *const *vars, int n, kb_tensor **grads_out) {
    const char *fn = "kb_gradients";
    if (!kb_check_tensor(fn, "loss", loss)) return kb_last_status();
    if (n < 0 || (n > 0 && (!vars || !grads_out)))
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: vars or grads_out is NULL (n = %d)", fn, n);
    for (int i = 0; i < n; ++i) {
        grads_out[i] = NULL;
        if (!kb_check_tensor(fn, "vars[i]", vars[i])) return kb_last_status();
        if (vars[i]->ctx != loss->ctx)
            return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: vars[%d] belongs to another context than loss", fn, i);
    }
    if (!kb_dtype_is_float(loss->desc.dtype))
        return kb_set_error(KB_ERR_DTYPE, "%s: loss has dtype %s; gradients need a float loss", fn,
                            kb_dtype_name(loss->desc.dtype));
    kb_context *ctx = loss->ctx;
    int64_t m = loss->id + 1; /* every ancestor of loss has a smaller id */
    unsigned char *anc = (unsigned char *)calloc((size_t)m, 1), *dep = (unsigned char *)calloc((size_t)m, 1);
    kb_tensor **grad = (kb_tensor **)calloc((size_t)m, sizeof *grad);
    kb_status st = KB_OK;
    if (!anc || !dep || !grad) {
        st = kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: out of host memory", fn);
        goto done;
    }
    anc[loss->id] = 1;
    for (int64_t i = m - 1; i >= 0; --i)
        if (anc[i])
            for (int k = 0; k < ctx->tensors[i]->n_in; ++k) anc[ctx->tensors[i]->in[k]->id] = 1;
    for (int i = 0; i < n; ++i)
        if (vars[i]->id < m && kb_dtype_is_float(vars[i]->desc.dtype)) dep[vars[i]->id] = 1;
    for (int64_t i = 0; i < m; ++i) {
        kb_tensor *t = ctx->tensors[i];
        if (!anc[i] || dep[i]) continue;
        for (int k = 0; k < t->n_in; ++k)
            if (dep[t->in[k]->id]) dep[i] = 1;
    }
    if (!dep[loss->id]) goto done; /* nothing connected: every gradient is NULL, as Keras' None */
    grad[loss->id] = kb_ones_like(loss, loss->desc.dtype);
    if (!grad[loss->id]) {
        st = kb_last_status();
        goto done;
    }
    for (int64_t i = m - 1; i >= 0 && st == KB_OK; --i) {
        kb_tensor *t = ctx->tensors[i];
        if (!anc[i] || !dep[i] || !grad[i] || t->kind != KB_KIND_OP) continue;
        const kb_op_def *def = kb_op_table[t->op];
        if (!def->grad) continue; /* KB_OPF_NONDIFF */
        kb_tensor *dx[KB_MAX_INPUTS] = {0};
        int wanted = 0;
        for (int k = 0; k < t->n_in; ++k) wanted |= dep[t->in[k]->id];
        if (!wanted) continue;
        /* a rule leaves dx[k] NULL on purpose (no gradient there) or because an op it made
         * failed: the error counter tells them apart */
        unsigned errs = kb_error_count();
        st = def->grad(t, grad[i], dx);
        if (st == KB_OK && kb_error_count() != errs) st = kb_last_status();
        for (int k = 0; k < t->n_in && st == KB_OK; ++k) {
            kb_tensor *x = t->in[k];
            if (!dep[x->id] || !dx[k]) continue;
            grad[x->id] = grad[x->id] ? kb_add(grad[x->id], dx[k]) : dx[k];
            if (!grad[x->id]) st = kb_last_status();
        }
    }
    if (st == KB_OK)
        for (int i = 0; i < n; ++i) grads_out[i] = vars[i]->id < m ? grad[vars[i]->id] : NULL;
done:
    free(anc);
    free(dep);
    free(grad);
    return st;
}
