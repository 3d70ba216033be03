/*
 * Keras 2's optimizers written as kb_function updates, for the examples and the benchmark: the
 * state is kb variables, a step is expressions of the gradients, and the function applies all
 * updates together after computing its outputs.
 */
#ifndef KB_EXAMPLES_OPTIMIZERS_H
#define KB_EXAMPLES_OPTIMIZERS_H

#include <kb/kb.h>

/* Room opt_updates needs for n parameters. */
#define OPT_MAX_UPDATES(n) (3 * (n) + 1)

/* Keras 2's default learning rate: adam 0.001, adadelta 1.0, sgd 0.01; < 0 for an unknown name. */
double opt_default_lr(const char *optimizer);

/*
 * The updates of one step of \p optimizer on params given grads (none NULL), as Keras 2 writes
 * them: "adam" (beta_1 0.9, beta_2 0.999, epsilon 1e-7, bias correction from an iteration
 * variable), "adadelta" (rho 0.95, epsilon 1e-7), "sgd" (momentum 0.9). Fills upd (room for
 * OPT_MAX_UPDATES(n)) and sets *n_upd. An unknown name is KB_ERR_INVALID_ARGUMENT; a failed op
 * returns its status (kb_last_error() has the message).
 */
kb_status opt_updates(kb_context *ctx, const char *optimizer, double lr, kb_tensor *const *params,
                      kb_tensor *const *grads, int n, kb_tensor **upd, int *n_upd);

#endif
