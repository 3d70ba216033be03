/*
 * kb_gradients: reverse-mode autodiff over the graph. Each op's rule builds its vector-Jacobian
 * product from table ops, so gradients run on the same kernels (and differentiate again where
 * the rules are differentiable). Only nodes on a path from a variable to the loss are visited.
 */
#include <stdlib.h>

#include "core/dtype.h"
#include "core/error.h"
#include "graph/tensor.h"

static kb_status gradients(const char *fn, kb_tensor *const *roots, kb_tensor *const *seeds, int n_roots,
                           kb_tensor *const *vars, int n, kb_tensor **grads_out, int vars_are_leaves) {
    kb_context *ctx = roots[0]->ctx;
    int64_t m = 0; /* every ancestor of a root has a smaller id */
    for (int r = 0; r < n_roots; ++r)
        if (roots[r]->id + 1 > m) m = roots[r]->id + 1;
    unsigned char *anc = (unsigned char *)calloc((size_t)m, 1), *dep = (unsigned char *)calloc((size_t)m, 1);
    unsigned char *leaf = (unsigned char *)calloc((size_t)m, 1);
    kb_tensor **grad = (kb_tensor **)calloc((size_t)m, sizeof *grad);
    kb_status st = KB_OK;
    if (!anc || !dep || !grad || !leaf) {
        st = kb_set_error(KB_ERR_OUT_OF_MEMORY, "%s: out of host memory", fn);
        goto done;
    }
    for (int r = 0; r < n_roots; ++r)
        if (kb_dtype_is_float(roots[r]->desc.dtype)) anc[roots[r]->id] = 1;
    for (int i = 0; i < n; ++i)
        if (vars_are_leaves && vars[i]->id < m) leaf[vars[i]->id] = 1;
    for (int64_t i = m - 1; i >= 0; --i)
        if (anc[i] && !leaf[i])
            for (int k = 0; k < ctx->tensors[i]->n_in; ++k) anc[ctx->tensors[i]->in[k]->id] = 1;
    for (int i = 0; i < n; ++i)
        if (vars[i]->id < m && kb_dtype_is_float(vars[i]->desc.dtype)) dep[vars[i]->id] = 1;
    for (int64_t i = 0; i < m; ++i) {
        kb_tensor *t = ctx->tensors[i];
        if (!anc[i] || dep[i] || leaf[i]) continue;
        for (int k = 0; k < t->n_in; ++k)
            if (dep[t->in[k]->id]) dep[i] = 1;
    }
    for (int r = 0; r < n_roots && st == KB_OK; ++r) { /* seeds of one root are summed */
        int64_t id = roots[r]->id;
        if (!anc[id] || !dep[id]) continue; /* not connected: contributes nothing (Keras' None) */
        grad[id] = grad[id] ? kb_add(grad[id], seeds[r]) : seeds[r];
        if (!grad[id]) st = kb_last_status();
    }
    for (int64_t i = m - 1; i >= 0 && st == KB_OK; --i) {
        kb_tensor *t = ctx->tensors[i];
        if (!anc[i] || !dep[i] || !grad[i] || leaf[i] || t->kind != KB_KIND_OP) continue;
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
    free(leaf);
    free(grad);
    return st;
}

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
    /* seed d loss = ones_like(loss) (a non-scalar loss is summed, as in Keras), made only when
     * some variable is connected */
    int connected = 0;
    for (int i = 0; i < n && !connected; ++i) connected = vars[i]->id <= loss->id;
    if (!connected) return KB_OK;
    kb_tensor *seed = kb_ones_like(loss, loss->desc.dtype);
    if (!seed) return kb_last_status();
    return gradients(fn, &loss, &seed, 1, vars, n, grads_out, 0);
}

kb_status kb_gradients_seeded(kb_tensor *const *roots, kb_tensor *const *seeds, int n_roots, kb_tensor *const *vars,
                              int n, kb_tensor **grads_out, int vars_are_leaves) {
    for (int i = 0; i < n; ++i) grads_out[i] = NULL;
    if (n_roots <= 0) return KB_OK;
    return gradients("kb_gradients", roots, seeds, n_roots, vars, n, grads_out, vars_are_leaves);
}
