/* The symbolic tensor: a leaf (placeholder, variable, constant) or the output of one op node. */
#ifndef KB_GRAPH_TENSOR_H
#define KB_GRAPH_TENSOR_H

#include <stddef.h>
#include <stdint.h>
#include "core/context.h"
#include "ops/op.h"

/* most inputs of one node: fused recurrent layers and loop nodes (which also take the tensors
 * their traced body captures) need more than the 2-3 of most ops */
#define KB_MAX_INPUTS 16
#define KB_TENSOR_MAGIC 0x6b627473u

typedef enum kb_kind { KB_KIND_PLACEHOLDER, KB_KIND_VARIABLE, KB_KIND_CONSTANT, KB_KIND_OP } kb_kind;

struct kb_tensor {
    uint32_t magic;
    kb_context *ctx;
    int64_t id;                    /* index in ctx->tensors: inputs always have smaller ids */
    kb_kind kind;
    kb_op_id op;                   /* KB_KIND_OP only */
    kb_tensor *in[KB_MAX_INPUTS];
    int n_in;
    kb_attrs attrs;
    kb_desc desc;                  /* dims may be KB_NONE */
    char name[64];
    int is_learning_phase;
    /* Sparse tensors (ops/sparse.c): a sparse_to_dense node whose inputs are the COO components
     * (indices (nnz, rank) int64, values (nnz,), a tensor with the dense shape). Ops that know
     * sparsity (dot, to_dense) read the components; every other op sees the dense value. */
    int sparse;
    int sparse_placeholder;        /* a sparse placeholder: its components are placeholders fed
                                      from one kb_feed (kb_function_call expands it) */
    int shape_only;                /* a placeholder that only carries a runtime shape: no data */
    /* storage of variables and constants: a host copy and a device copy with a valid bit each */
    void *host;
    size_t nbytes;
    int host_valid;
    void *dev;
    int dev_valid;
    /* Data a node owns beyond its attrs (a loop node's traced body, ops/control.c), freed with
     * the tensor by ext_free. */
    void *ext;
    void (*ext_free)(void *ext);
};

/* Make an op node: validates inputs (NULL, context), runs the op's infer rule. \p fn is the
 * public name for messages ("kb_add"). Returns NULL with the error set. */
kb_tensor *kb_node(const char *fn, kb_op_id op, kb_tensor *const *in, int n_in, const kb_attrs *a);
/* Same, attrs zero-initialised. */
kb_tensor *kb_node1(const char *fn, kb_op_id op, kb_tensor *x);
kb_tensor *kb_node2(const char *fn, kb_op_id op, kb_tensor *x, kb_tensor *y);
/* A rank-0 constant of dtype dt (for composites and gradient rules). */
kb_tensor *kb_scalar(kb_context *ctx, double v, kb_dtype dt);
/* Resolve KB_FLOATX. */
kb_dtype kb_resolve_dtype(const kb_context *ctx, kb_dtype dt);
/* Validate a public tensor argument: non-NULL (kb_null_arg) and a live kb tensor. */
int kb_check_tensor(const char *fn, const char *arg, const kb_tensor *t);
/* Normalise axis list to a mask (negative axes allowed); KB_ERR_AXIS on out-of-range or repeat.
 * n_axes == 0 with axes == NULL means all axes. */
kb_status kb_axes_mask(const char *fn, const int *axes, int n_axes, int rank, uint32_t *mask);
/* Ops that take a variable number of inputs (1..KB_MAX_INPUTS; their entry's n_inputs is the
 * minimum): the loop nodes of ops/control.c. */
int kb_op_variadic(kb_op_id op);

/* Nested functions (graph/function.c), the bodies of loop nodes. A body function's inputs are
 * "cut" tensors of any kind (placeholders, captured op outputs, variables): the pruning stops at
 * them and each call feeds them by device pointer (no copy). It runs on \p device, with no
 * updates, no host sync and no output fetch: kb_function_run_body hands back the device pointer
 * and concrete desc of each output (valid until the next run of this function). */
struct kb_function *kb_function_new_body(kb_context *ctx, kb_tensor *const *cuts, int n_cuts,
                                         kb_tensor *const *outputs, int n_outputs, kb_device device);
kb_status kb_function_run_body(struct kb_function *fn, void *const *cut_data, const kb_desc *cut_desc,
                               void **out_data, kb_desc *out_desc);

/* Reverse-mode autodiff from several roots with given seeds (tf.gradients' grad_ys): grads_out[i]
 * = sum over roots r of seeds[r]^T d roots[r] / d vars[i], NULL when not connected. Non-float
 * roots are skipped. With vars_are_leaves, no gradient flows through a var into its own inputs
 * (a loop body's captured tensors: the outer graph carries that part). */
kb_status kb_gradients_seeded(kb_tensor *const *roots, kb_tensor *const *seeds, int n_roots, kb_tensor *const *vars,
                              int n, kb_tensor **grads_out, int vars_are_leaves);

/* Make the host copy of a leaf current (copies back from the device if needed). */
kb_status kb_leaf_sync_host(kb_tensor *t);
/* Format a shape "(2, None, 3)" into buf. */
const char *kb_shape_str(const kb_desc *d, char *buf, size_t n);

#endif
