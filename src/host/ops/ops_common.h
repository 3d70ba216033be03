/* Shared validation/shape rules and helpers for the op family files. */
#ifndef KB_OPS_COMMON_H
#define KB_OPS_COMMON_H

#include <string.h>
#include "core/dtype.h"
#include "core/error.h"
#include "graph/tensor.h"
#include "ops/op.h"

/* dtype must be float32 or float64 (ops without float16/bfloat16 kernels). */
kb_status kb_require_float(const char *op, const char *arg, kb_dtype dt);
/* dtype must be float16, bfloat16, float32 or float64. */
kb_status kb_require_float_any(const char *op, const char *arg, kb_dtype dt);
/* dtype must be a float (any width) or int8/uint8/int32/int64 (not bool). */
kb_status kb_require_numeric(const char *op, const char *arg, kb_dtype dt);
/* One float input; out = in[0]. */
kb_status kb_infer_unary_float(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out);
/* Two float inputs of one dtype, numpy-broadcast. */
kb_status kb_infer_binary_float(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out);
/* out = in[0] whatever its dtype (identity, stop_gradient, print_tensor). */
kb_status kb_infer_same(const char *op, const kb_attrs *a, const kb_desc *in, int n_in, kb_desc *out);
/* Do two descs certainly have the same fully known shape? */
int kb_desc_same_known_shape(const kb_desc *a, const kb_desc *b);
/* Axis in [-rank, rank) normalised; KB_ERR_AXIS otherwise. */
kb_status kb_norm_axis(const char *op, int axis, int rank, int *out);

/* Gradient rule helpers. */
kb_tensor *kb_g_sum_like(kb_tensor *g, kb_tensor *ref);         /* g reduced to ref's shape */
kb_tensor *kb_g_reshape_like(kb_tensor *g, kb_tensor *ref);
kb_tensor *kb_g_sum_keep(kb_tensor *x, int axis);               /* sum over one axis, keepdims */
/* The clip op without the public argument checks (categorical_crossentropy's epsilon clip). */
kb_tensor *kb_clip_internal(kb_tensor *x, double lo, double hi);
kb_tensor *kb_log_softmax_internal(kb_tensor *x, int axis);

/* dot with a sparse 2-D x (ops/sparse.c): x must satisfy kb_is_sparse. */
kb_tensor *kb_sparse_dot(kb_tensor *x, kb_tensor *y);

#endif
