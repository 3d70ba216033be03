/*
 * The op-table interface: what one op declares (validation + shape inference, gradient rule,
 * CPU kernel, CUDA kernel) and the buffers its kernels see. Plain C: src/cuda includes it too
 * (kernels are host-callable launchers with this signature), src/host never includes CUDA.
 */
#ifndef KB_OPS_OP_H
#define KB_OPS_OP_H

#include <stdint.h>
#include "kb/kb.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kb_op_id {
#define KB_OP(ID, name) KB_OP_##ID,
#include "ops/ops.def"
#undef KB_OP
    KB_OP_COUNT
} kb_op_id;

/* Typed attributes of a node; each op reads the fields its entry documents. */
typedef struct kb_attrs {
    uint32_t axes_mask;          /* reductions, broadcast_like/sum_like: bit i = axis i reduced */
    int keepdims;                /* reductions */
    int axis;                    /* softmax, log_softmax (normalised to >= 0) */
    int perm[KB_MAX_RANK];       /* permute_dimensions */
    int rank;                    /* reshape: target rank */
    int64_t shape[KB_MAX_RANK];  /* reshape: target shape (one -1 allowed) */
    double alpha, max_value, threshold; /* relu / relu_grad */
    double lo, hi;               /* clip */
    double value;                /* fill_like */
    kb_dtype dtype;              /* cast, fill_like */
    int mean_scale;              /* broadcast_like/sum_like: divide by the reduced element count */
    int64_t i64[3 * KB_MAX_RANK];/* op-specific integer parameters (slice start/size, tile reps,
                                    paddings, factors, ...): each entry documents its layout */
    char *message;               /* print_tensor (owned by the node) */
} kb_attrs;

/* Shape and dtype of a value: symbolic (dims may be KB_NONE) at graph build, concrete at plan. */
typedef struct kb_desc {
    kb_dtype dtype;
    int rank;
    int64_t shape[KB_MAX_RANK];
} kb_desc;

/* A concrete buffer a kernel reads or writes: C-order contiguous, on the kernel's device. */
typedef struct kb_buf {
    void *data;
    kb_dtype dtype;
    int rank;
    int64_t shape[KB_MAX_RANK];
    int64_t size; /* element count */
} kb_buf;

/* What a kernel needs of the device it runs on. */
typedef struct kb_exec {
    struct kb_context *ctx;
    void *dev;       /* CUDA: the kb_cuda_device of the context; CPU: NULL */
    const char *op;  /* node label for messages, e.g. "dot#12" */
} kb_exec;

typedef kb_status (*kb_kernel_fn)(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in,
                                  kb_buf *out);
/* Shape inference and validation. Writes *out; on error sets the message (prefixed by \p op:
 * "kb_add" at build, "add#12" at plan) and returns its status. Runs at build (unknown dims) and
 * at plan (concrete dims). */
typedef kb_status (*kb_infer_fn)(const char *op, const kb_attrs *a, const kb_desc *in, int n_in,
                                 kb_desc *out);
/* Vector-Jacobian product as graph ops: dx[i] = contribution to input i's gradient, or NULL
 * when input i gets none (not differentiable there, or an integer input). */
typedef kb_status (*kb_grad_fn)(kb_tensor *node, kb_tensor *dy, kb_tensor **dx);

enum {
    KB_OPF_NONDIFF = 1u << 0, /* no gradient flows through (shape, size, comparisons, ...) */
    KB_OPF_ALIAS = 1u << 1,   /* output is input 0's buffer, reinterpreted: no kernel runs */
    KB_OPF_INTERNAL = 1u << 2,/* made by kb itself (gradients, composites), not a Keras name */
    KB_OPF_HOST = 1u << 3,    /* runs on the host by design (print_tensor) */
    KB_OPF_UPDATE = 1u << 4,  /* a variable update: applied by kb_function after the outputs */
    /* The CPU kernel takes float16/bfloat16 buffers itself (data movement by element size, cast).
     * Without it, the executor widens float16/bfloat16 inputs and output to float32 around the
     * CPU kernel (one rounding at the end, as the CUDA kernels that compute in float32), so CPU
     * kernels are written for float32/float64 (+ the integer types an op takes) only. */
    KB_OPF_CPU_ANY_DTYPE = 1u << 5
};

typedef struct kb_op_def {
    const char *name;  /* Keras name (or internal name) */
    int n_inputs;      /* exact input count */
    unsigned flags;    /* KB_OPF_* */
    kb_infer_fn infer;
    kb_grad_fn grad;   /* NULL only with KB_OPF_NONDIFF */
    kb_kernel_fn cpu;  /* never NULL */
    kb_kernel_fn cuda; /* NULL: runs on the CPU inside a CUDA function (counted, logged once) */
} kb_op_def;

#define KB_OP(ID, name) extern const kb_op_def kb_opdef_##name;
#include "ops/ops.def"
#undef KB_OP

extern const kb_op_def *const kb_op_table[KB_OP_COUNT];

/* The kernel of KB_OPF_ALIAS ops: never called with data, present so every entry has one. */
kb_status kb_kernel_alias(const kb_exec *ex, const kb_attrs *a, const kb_buf *in, int n_in, kb_buf *out);

#ifdef KB_WITH_CUDA
#define KB_OP(ID, name) \
    kb_status kb_cuda_##name(const kb_exec *, const kb_attrs *, const kb_buf *, int, kb_buf *);
#include "ops/ops.def"
#undef KB_OP
#define KB_CUDA_KERNEL(name) kb_cuda_##name
#else
#define KB_CUDA_KERNEL(name) NULL
#endif

/* Run def->cpu on host buffers, widening float16/bfloat16 to float32 unless the op has
 * KB_OPF_CPU_ANY_DTYPE (graph/function.c). */
kb_status kb_cpu_call(const kb_exec *ex, const kb_op_def *def, const kb_attrs *a, const kb_buf *in, int n_in,
                      kb_buf *out);

/* Helpers shared by infer rules and kernels. */
#define KB_MAX_ELEMS ((int64_t)1 << 56) /* largest element count: bytes never overflow int64 */
int64_t kb_desc_size(const kb_desc *d);     /* -1 if a dim is unknown; KB_MAX_ELEMS + 1 if too large */
kb_status kb_check_size(const char *op, const kb_desc *d); /* KB_ERR_SHAPE above KB_MAX_ELEMS */
/* numpy broadcast of two descs; unknown dims stay unknown unless the other side fixes them. */
kb_status kb_broadcast_desc(const char *op, const kb_desc *a, const kb_desc *b, kb_desc *out);

#ifdef __cplusplus
}
#endif
#endif
