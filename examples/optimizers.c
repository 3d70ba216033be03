/* Keras 2's optimizers as kb_function updates: see optimizers.h. */
#include "optimizers.h"

#include <math.h>
#include <string.h>

double opt_default_lr(const char *optimizer) {
    return !strcmp(optimizer, "adam") ? 0.001 : !strcmp(optimizer, "adadelta") ? 1.0 : !strcmp(optimizer, "sgd") ? 0.01 : -1;
}

static kb_tensor *scalar(kb_context *ctx, double v) { return kb_constant_scalar(ctx, v, KB_FLOAT32, NULL, 0); }

/* Optimizer state: a variable of zeros shaped like p. */
static kb_tensor *slot(kb_context *ctx, kb_tensor *p) {
    int64_t shape[KB_MAX_RANK];
    int r = kb_int_shape(p, shape);
    return r < 0 ? NULL : kb_zeros(ctx, shape, r, KB_FLOAT32, NULL);
}

/* a * x + b * y */
static kb_tensor *axpby(kb_context *ctx, double a, kb_tensor *x, double b, kb_tensor *y) {
    return kb_add(kb_multiply(scalar(ctx, a), x), kb_multiply(scalar(ctx, b), y));
}

kb_status opt_updates(kb_context *ctx, const char *optimizer, double lr, kb_tensor *const *params,
                      kb_tensor *const *grads, int n, kb_tensor **upd, int *n_upd) {
    int k = 0;
    *n_upd = 0;
    if (!strcmp(optimizer, "adam")) {
        const double b1 = 0.9, b2 = 0.999, eps = 1e-7;
        kb_tensor *it = kb_zeros(ctx, NULL, 0, KB_FLOAT32, "adam/iterations");
        kb_tensor *t = kb_add(it, scalar(ctx, 1));
        /* lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t), with b^t = exp(t log b) */
        kb_tensor *b1t = kb_exp(kb_multiply(t, scalar(ctx, log(b1))));
        kb_tensor *b2t = kb_exp(kb_multiply(t, scalar(ctx, log(b2))));
        kb_tensor *lr_t = kb_divide(kb_multiply(scalar(ctx, lr), kb_sqrt(kb_subtract(scalar(ctx, 1), b2t))),
                                    kb_subtract(scalar(ctx, 1), b1t));
        for (int i = 0; i < n; ++i) {
            kb_tensor *m = slot(ctx, params[i]), *v = slot(ctx, params[i]);
            kb_tensor *m_t = axpby(ctx, b1, m, 1 - b1, grads[i]);
            kb_tensor *v_t = axpby(ctx, b2, v, 1 - b2, kb_square(grads[i]));
            upd[k++] = kb_update(m, m_t);
            upd[k++] = kb_update(v, v_t);
            upd[k++] = kb_update_sub(params[i], kb_divide(kb_multiply(lr_t, m_t), kb_add(kb_sqrt(v_t), scalar(ctx, eps))));
        }
        upd[k++] = kb_update_add(it, scalar(ctx, 1));
    } else if (!strcmp(optimizer, "adadelta")) {
        const double rho = 0.95, eps = 1e-7;
        for (int i = 0; i < n; ++i) {
            kb_tensor *a = slot(ctx, params[i]), *d = slot(ctx, params[i]);
            kb_tensor *a_t = axpby(ctx, rho, a, 1 - rho, kb_square(grads[i]));
            kb_tensor *step = kb_divide(kb_multiply(grads[i], kb_sqrt(kb_add(d, scalar(ctx, eps)))),
                                        kb_sqrt(kb_add(a_t, scalar(ctx, eps))));
            upd[k++] = kb_update(a, a_t);
            upd[k++] = kb_update_sub(params[i], kb_multiply(scalar(ctx, lr), step));
            upd[k++] = kb_update(d, axpby(ctx, rho, d, 1 - rho, kb_square(step)));
        }
    } else if (!strcmp(optimizer, "sgd")) { /* v = 0.9 v - lr g; p += v */
        for (int i = 0; i < n; ++i) {
            kb_tensor *v = slot(ctx, params[i]);
            kb_tensor *v_t = axpby(ctx, 0.9, v, -lr, grads[i]);
            upd[k++] = kb_update(v, v_t);
            upd[k++] = kb_update_add(params[i], v_t);
        }
    } else {
        return KB_ERR_INVALID_ARGUMENT;
    }
    for (int i = 0; i < k; ++i)
        if (!upd[i]) return kb_last_status();
    *n_upd = k;
    return KB_OK;
}
