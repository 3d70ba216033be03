/*
 * kb — the Keras backend API in C, on NVIDIA GPUs and on the CPU.
 *
 * One header, C99/C11, no internal struct exposed. Every Keras backend function `K.name` is
 * `kb_name` here. A kb_context is one Keras session; tensors belong to it and are freed by
 * kb_clear_session() or kb_context_free(). Errors: functions that make a tensor return NULL,
 * functions that act return kb_status; the reason is in kb_last_status() / kb_last_error().
 * See docs/guide.md for a walk-through and docs/errors.md for the error contract.
 */
#ifndef KB_KB_H
#define KB_KB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h> /* FILE, for kb_function_profile_print */

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define KB_API __declspec(dllexport)
#else
#define KB_API __attribute__((visibility("default")))
#endif

#define KB_VERSION_MAJOR 0
#define KB_VERSION_MINOR 1
#define KB_VERSION_PATCH 0

/** Largest tensor rank. */
#define KB_MAX_RANK 8
/** An unknown dimension of a placeholder (Keras `None`). */
#define KB_NONE ((int64_t)-1)

/* ------------------------------------------------------------------------------------------ */
/* Status and errors                                                                           */
/* ------------------------------------------------------------------------------------------ */

typedef enum kb_status {
    KB_OK = 0,
    KB_ERR_INVALID_ARGUMENT = 1, /**< NULL, out-of-range value, unknown name */
    KB_ERR_SHAPE = 2,            /**< shapes or ranks do not fit the op, or a wrong byte count */
    KB_ERR_DTYPE = 3,            /**< dtype not accepted by the op */
    KB_ERR_AXIS = 4,             /**< axis out of range or repeated */
    KB_ERR_INVALID_STATE = 5,    /**< e.g. unfed placeholder, function of a cleared session */
    KB_ERR_NOT_SUPPORTED = 6,    /**< valid Keras call that kb does not implement (yet) */
    KB_ERR_CONFIG = 7,           /**< keras.json or environment is invalid */
    KB_ERR_IO = 8,               /**< a file could not be read or written */
    KB_ERR_OUT_OF_MEMORY = 9,    /**< host or device allocation failed; the message has the size */
    KB_ERR_NO_DEVICE = 10,       /**< CUDA asked for, but not compiled in or no GPU present */
    KB_ERR_CUDA = 11,            /**< CUDA runtime error (message has cudaGetErrorString) */
    KB_ERR_CUBLAS = 12,
    KB_ERR_CUDNN = 13,
    KB_ERR_CURAND = 14,
    KB_ERR_INTERNAL = 15 /**< a bug in kb: please report it */
} kb_status;

/** Status of the last failed kb call on this thread (KB_OK if none since kb_clear_error). */
KB_API kb_status kb_last_status(void);
/** Message of the last failed kb call on this thread ("" if none). Never NULL. */
KB_API const char *kb_last_error(void);
/** Forget the last error on this thread. */
KB_API void kb_clear_error(void);
/** Static name of a status, e.g. "KB_ERR_SHAPE". Never NULL. */
KB_API const char *kb_status_string(kb_status s);

/* ------------------------------------------------------------------------------------------ */
/* Types                                                                                       */
/* ------------------------------------------------------------------------------------------ */

typedef enum kb_dtype {
    KB_FLOAT16 = 0,
    KB_BFLOAT16 = 1,
    KB_FLOAT32 = 2,
    KB_FLOAT64 = 3,
    KB_INT8 = 4,
    KB_UINT8 = 5,
    KB_INT32 = 6,
    KB_INT64 = 7,
    KB_BOOL = 8,           /**< one byte, 0 or 1 */
    KB_DTYPE_COUNT = 9,
    KB_FLOATX = -1         /**< "dtype=None": the context's floatx where Keras says so */
} kb_dtype;

/** "float32" etc. NULL for an invalid dtype. */
KB_API const char *kb_dtype_name(kb_dtype dt);
/** Parse "float32" etc. Returns KB_ERR_INVALID_ARGUMENT for an unknown name. */
KB_API kb_status kb_dtype_from_name(const char *name, kb_dtype *out);
/** Bytes per element (0 for an invalid dtype). */
KB_API size_t kb_dtype_size(kb_dtype dt);

typedef enum kb_data_format { KB_CHANNELS_LAST = 0, KB_CHANNELS_FIRST = 1 } kb_data_format;

typedef enum kb_device {
    KB_DEVICE_AUTO = 0, /**< env KB_DEVICE=cpu|cuda if set, else CUDA when compiled in and a GPU is present, else CPU */
    KB_DEVICE_CPU = 1,
    KB_DEVICE_CUDA = 2
} kb_device;

typedef struct kb_context kb_context;   /**< one Keras session */
typedef struct kb_tensor kb_tensor;     /**< a symbolic tensor: placeholder, variable, constant or op */
typedef struct kb_function kb_function; /**< a compiled K.function */

/* ------------------------------------------------------------------------------------------ */
/* Context and configuration (Keras: config / global state)                                    */
/* ------------------------------------------------------------------------------------------ */

typedef struct kb_context_options {
    kb_device device;       /**< default device for functions and eval */
    int cuda_device;        /**< CUDA ordinal, default 0 */
    const char *keras_home; /**< directory of keras.json; NULL: $KERAS_HOME, else ~/.keras (/tmp/.keras if ~ is read-only) */
    int read_config;        /**< 1: read (and create) keras.json as Keras does; 0: use defaults only */
    uint64_t seed;          /**< session seed for random ops without an explicit seed */
} kb_context_options;

#define KB_CONTEXT_OPTIONS_DEFAULTS {KB_DEVICE_AUTO, 0, NULL, 1, 1337u}

/**
 * Create a session. Reads keras.json (writing it with defaults when missing, as Keras does) and
 * KERAS_BACKEND. Unlike Keras, an invalid keras.json is an error (KB_ERR_CONFIG with the file,
 * the key and the value), not a silent default. \p opts may be NULL for the defaults.
 */
KB_API kb_status kb_context_new(kb_context **out, const kb_context_options *opts);
/** Free the session, its tensors and device memory. NULL is a no-op. */
KB_API void kb_context_free(kb_context *ctx);
/** The device functions of this context run on by default (never KB_DEVICE_AUTO). */
KB_API kb_device kb_context_device(const kb_context *ctx);
/** 1 when kb was built with CUDA, else 0. */
KB_API int kb_cuda_compiled(void);
/** Number of CUDA devices usable (0 when none or not compiled). */
KB_API int kb_cuda_device_count(void);
/** Human-readable name of the context's device, e.g. "cpu (2 threads)" or "cuda:0 NVIDIA H100". */
KB_API const char *kb_context_device_name(const kb_context *ctx);

KB_API double kb_epsilon(const kb_context *ctx);
KB_API kb_status kb_set_epsilon(kb_context *ctx, double e);
KB_API kb_dtype kb_floatx(const kb_context *ctx);
/** Only float16, float32 and float64 are accepted, as in Keras. */
KB_API kb_status kb_set_floatx(kb_context *ctx, kb_dtype dt);
/**
 * Keras cast_to_floatx on host buffers: convert \p n elements of \p src (dtype \p src_dtype)
 * to floatx into \p dst, which must hold \p dst_nbytes = n * sizeof(floatx).
 */
KB_API kb_status kb_cast_to_floatx(const kb_context *ctx, const void *src, kb_dtype src_dtype,
                                   size_t n, void *dst, size_t dst_nbytes);
/**
 * TF32 tensor-core math for float32 matrix products (dot, batch_dot) on CUDA: off by default, as
 * Keras users expect float32 results; 1 allows it for this context's functions from now on.
 */
KB_API kb_status kb_set_allow_tf32(kb_context *ctx, int allow);
KB_API int kb_allow_tf32(const kb_context *ctx);
/**
 * The cudaStream_t (as void *) this context's CUDA functions run on, opening the device if
 * needed; NULL (with an error) without CUDA. For interop and for timing with CUDA events.
 */
KB_API void *kb_context_cuda_stream(kb_context *ctx);
KB_API kb_data_format kb_image_data_format(const kb_context *ctx);
KB_API kb_status kb_set_image_data_format(kb_context *ctx, kb_data_format f);
/** The backend name as Keras computes it: non-empty $KERAS_BACKEND > keras.json > "tensorflow". */
KB_API const char *kb_backend(const kb_context *ctx);
typedef enum kb_log_level { KB_LOG_DEBUG = 0, KB_LOG_INFO = 1, KB_LOG_WARN = 2, KB_LOG_ERROR = 3 } kb_log_level;
typedef void (*kb_log_fn)(kb_log_level level, const char *message, void *user);
/**
 * Where the session's notices go (e.g. "an op ran on the CPU inside a CUDA function", once per
 * op). Default (fn NULL): WARN and above to stderr. Errors are never logged: they are returned.
 */
KB_API kb_status kb_context_set_log_callback(kb_context *ctx, kb_log_fn fn, void *user);

/** Keras get_uid(prefix): per-prefix counter, first call returns 1. NULL prefix means "". */
KB_API int kb_get_uid(kb_context *ctx, const char *prefix);
KB_API void kb_reset_uids(kb_context *ctx);
/**
 * Keras clear_session: frees every tensor of the session, resets uids and the learning phase.
 * Functions compiled before stay valid as handles but fail with KB_ERR_INVALID_STATE when called.
 */
KB_API kb_status kb_clear_session(kb_context *ctx);
/** Stored for API parity; kb variables always hold their value from creation. */
KB_API kb_status kb_manual_variable_initialization(kb_context *ctx, int value);
KB_API int kb_get_manual_variable_initialization(const kb_context *ctx);
/**
 * The learning-phase tensor: an int32 scalar that functions read at call time. Its value is the
 * one fixed by kb_set_learning_phase, else 0 (test), unless a function takes it as an input
 * and it is fed.
 */
KB_API kb_tensor *kb_learning_phase(kb_context *ctx);
/** 0 (test) or 1 (train); anything else is KB_ERR_INVALID_ARGUMENT, as Keras' ValueError. */
KB_API kb_status kb_set_learning_phase(kb_context *ctx, int value);

/* ------------------------------------------------------------------------------------------ */
/* Tensors: creation, predicates, introspection                                                */
/* ------------------------------------------------------------------------------------------ */

/**
 * Keras variable(value, dtype, name). \p data holds \p nbytes = size * sizeof(dtype) bytes in C
 * order; NULL means zeros. dtype KB_FLOATX means floatx. \p name may be NULL.
 */
KB_API kb_tensor *kb_variable(kb_context *ctx, const void *data, size_t nbytes, kb_dtype dtype,
                              const int64_t *shape, int rank, const char *name);
/**
 * Keras constant(value, dtype, shape). \p nbytes is either the full size or one element, which
 * fills the shape (Keras' scalar value).
 */
KB_API kb_tensor *kb_constant(kb_context *ctx, const void *data, size_t nbytes, kb_dtype dtype,
                              const int64_t *shape, int rank, const char *name);
/** A constant filled with \p value (converted to dtype). */
KB_API kb_tensor *kb_constant_scalar(kb_context *ctx, double value, kb_dtype dtype,
                                     const int64_t *shape, int rank);
/**
 * Keras placeholder(shape, ndim, dtype). \p shape may contain KB_NONE; NULL shape with rank = ndim
 * means every dimension unknown.
 */
KB_API kb_tensor *kb_placeholder(kb_context *ctx, const int64_t *shape, int rank, kb_dtype dtype,
                                 const char *name);
/** Keras zeros / ones: a variable (shapes are always static in C). */
KB_API kb_tensor *kb_zeros(kb_context *ctx, const int64_t *shape, int rank, kb_dtype dtype, const char *name);
KB_API kb_tensor *kb_ones(kb_context *ctx, const int64_t *shape, int rank, kb_dtype dtype, const char *name);
/** Keras eye(size): an n x m identity constant (m = n for a square one). */
KB_API kb_tensor *kb_eye(kb_context *ctx, int64_t n, int64_t m, kb_dtype dtype, const char *name);
/** Keras zeros_like / ones_like: dtype KB_FLOATX means floatx (as Keras 2.3.1, not x's dtype). */
KB_API kb_tensor *kb_zeros_like(kb_tensor *x, kb_dtype dtype);
KB_API kb_tensor *kb_ones_like(kb_tensor *x, kb_dtype dtype);
KB_API kb_tensor *kb_identity(kb_tensor *x);

/** 1 / 0 predicates. NULL gives 0. */
KB_API int kb_is_variable(const kb_tensor *x);
KB_API int kb_is_tensor(const kb_tensor *x);
KB_API int kb_is_placeholder(const kb_tensor *x);
/** Keras is_keras_tensor: 0 for variables, placeholders and backend op outputs (kb has no layers). */
KB_API int kb_is_keras_tensor(const kb_tensor *x);

/** Keras shape(x): a symbolic int32 tensor of x's runtime shape. */
KB_API kb_tensor *kb_shape(kb_tensor *x);
/** Keras int_shape: writes the rank dims (KB_NONE where unknown) and returns the rank, -1 on error. */
KB_API int kb_int_shape(const kb_tensor *x, int64_t shape_out[KB_MAX_RANK]);
/** Keras ndim; -1 on error. */
KB_API int kb_ndim(const kb_tensor *x);
/** Keras size(x): a symbolic int32 scalar with the runtime element count. */
KB_API kb_tensor *kb_size(kb_tensor *x);
/** Keras dtype; KB_FLOATX (-1) on error. */
KB_API kb_dtype kb_dtype_of(const kb_tensor *x);
/** Keras count_params: element count of a static shape; -1 (with an error) if a dim is unknown. */
KB_API int64_t kb_count_params(const kb_tensor *x);
/** The tensor's name ("variable_1", "placeholder_2", "add_7", ...). */
KB_API const char *kb_tensor_name(const kb_tensor *x);

/* ------------------------------------------------------------------------------------------ */
/* Values                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/**
 * Keras eval(x): evaluate \p x on the context's device into \p out (C order, x's dtype);
 * \p nbytes must equal the runtime size. Fails with KB_ERR_INVALID_STATE if x needs a placeholder.
 */
KB_API kb_status kb_eval(kb_tensor *x, void *out, size_t nbytes);
/** Keras get_value: a variable's (or constant's) value. */
KB_API kb_status kb_get_value(kb_tensor *x, void *out, size_t nbytes);
KB_API kb_status kb_batch_get_value(kb_tensor *const *xs, int n, void *const *outs, const size_t *nbytes);
/** Keras set_value: \p data has the variable's dtype and nbytes = its size in bytes. */
KB_API kb_status kb_set_value(kb_tensor *var, const void *data, size_t nbytes);
/** Keras batch_set_value: all sizes are checked before any variable is written. */
KB_API kb_status kb_batch_set_value(kb_tensor *const *vars, int n, const void *const *data, const size_t *nbytes);

/** Keras cast(x, dtype). */
KB_API kb_tensor *kb_cast(kb_tensor *x, kb_dtype dtype);

/**
 * Keras update(x, new_x), update_add, update_sub, moving_average_update: an update op for
 * kb_function_new's updates (or kb_eval, which applies it). Its value is the variable's new value.
 * moving_average_update: x <- x - (x - value) * (1 - momentum), without zero-debias (2.3.1).
 */
KB_API kb_tensor *kb_update(kb_tensor *x, kb_tensor *new_x);
KB_API kb_tensor *kb_update_add(kb_tensor *x, kb_tensor *increment);
KB_API kb_tensor *kb_update_sub(kb_tensor *x, kb_tensor *decrement);
KB_API kb_tensor *kb_moving_average_update(kb_tensor *x, kb_tensor *value, double momentum);
/** Keras print_tensor: identity(x) that prints "message" and x's values to stdout when run. */
KB_API kb_tensor *kb_print_tensor(kb_tensor *x, const char *message);

/* ------------------------------------------------------------------------------------------ */
/* Function and gradients                                                                      */
/* ------------------------------------------------------------------------------------------ */

/**
 * Keras function(inputs, outputs, updates). \p inputs are placeholders (the learning-phase
 * tensor may be one), \p outputs any tensors, \p updates tensors made by kb_update*. Outputs
 * are computed first; updates are applied after them, together (outputs see old values).
 * \p device KB_DEVICE_AUTO means $KB_DEVICE (cpu|cuda) if set, else the context's device.
 */
KB_API kb_function *kb_function_new(kb_context *ctx, kb_tensor *const *inputs, int n_inputs,
                                    kb_tensor *const *outputs, int n_outputs,
                                    kb_tensor *const *updates, int n_updates, kb_device device);
KB_API void kb_function_free(kb_function *fn);
/** The device the function runs on (KB_DEVICE_CPU or KB_DEVICE_CUDA). */
KB_API kb_device kb_function_device(const kb_function *fn);

/** A host value fed to a placeholder. dtype KB_FLOATX means "the placeholder's dtype"; another
 * dtype is cast to the placeholder's (Keras casts fed values). */
typedef struct kb_feed {
    const void *data;
    size_t nbytes;
    kb_dtype dtype;
    int rank;
    const int64_t *shape;
    /** Sparse placeholders only (COO): \p data / \p nbytes hold the nnz values, \p shape the dense
     * shape, and \p indices the (nnz, rank) int64 coordinates, row-major. NULL for dense feeds. */
    const int64_t *indices;
} kb_feed;

/** Run the function with one feed per input, in order. On CUDA, a call with feeds returns when
 * the device is done with them; a call without feeds may return while kernels still run (reading
 * an output or a value waits, and a device fault is reported there or by the next call). */
KB_API kb_status kb_function_call(kb_function *fn, const kb_feed *feeds, int n_feeds);

/** What a function is made of and did on its last call. */
typedef struct kb_function_info {
    kb_device device;
    int n_nodes;          /**< tensors the outputs and updates need (leaves included) */
    int n_kernels;        /**< nodes that launch a kernel (views and leaves do not) */
    int n_host_fallbacks; /**< of those, ops without a CUDA kernel run on the CPU in a CUDA function */
    int n_plans;          /**< cached plans (one per input-shape signature, at most 8) */
    size_t arena_bytes;   /**< arena of the last call's plan (intermediates reused by lifetime) */
    size_t naive_bytes;   /**< what the same intermediates would take without reuse */
} kb_function_info;
KB_API kb_status kb_function_get_info(const kb_function *fn, kb_function_info *out);
/**
 * Output \p i of the last call: a host buffer owned by the function, valid until the next call
 * or kb_function_free. Shape, rank and dtype through the out-parameters (each may be NULL).
 * Outputs are fetched lazily: a CUDA function copies an output to the host on its first read
 * (a call whose outputs are never read moves no data back), a CPU function returns it in place.
 */
KB_API const void *kb_function_output(const kb_function *fn, int i, kb_dtype *dtype, int *rank,
                                      int64_t shape[KB_MAX_RANK], size_t *nbytes);
/** Copy output \p i of the last call into \p out; \p nbytes must equal its size. */
KB_API kb_status kb_function_get_output(const kb_function *fn, int i, void *out, size_t nbytes);

/**
 * Keras gradients(loss, variables): grads_out[i] is d sum(loss) / d vars[i], or NULL when vars[i]
 * is not connected to loss (Keras None). Returns KB_OK when every connected gradient was built.
 */
KB_API kb_status kb_gradients(kb_tensor *loss, kb_tensor *const *vars, int n, kb_tensor **grads_out);
/** Keras stop_gradient(x): identity whose gradient is not propagated. */
KB_API kb_tensor *kb_stop_gradient(kb_tensor *x);

/* ------------------------------------------------------------------------------------------ */
/* Memory                                                                                      */
/* ------------------------------------------------------------------------------------------ */

typedef struct kb_memory_stats {
    kb_device device;
    size_t in_use;   /**< bytes handed out by the device pool now */
    size_t peak;     /**< largest in_use since the context was made */
    size_t reserved; /**< bytes the pool holds from the driver (cached included) */
} kb_memory_stats;

/** Device pool figures of the context (zeros for a CPU context). */
KB_API kb_status kb_memory_stats_get(kb_context *ctx, kb_memory_stats *out);
/** Return cached, unused device memory to the driver. */
KB_API kb_status kb_memory_release(kb_context *ctx);

/* ------------------------------------------------------------------------------------------ */
/* Ops (Keras names). Each takes tensors of one context and returns a new tensor or NULL.       */
/* Axes: negative counts from the end; `axes == NULL, n_axes == 0` means all axes.             */
/* ------------------------------------------------------------------------------------------ */

/* elementwise, numpy broadcasting */
KB_API kb_tensor *kb_add(kb_tensor *x, kb_tensor *y);
KB_API kb_tensor *kb_subtract(kb_tensor *x, kb_tensor *y);
KB_API kb_tensor *kb_multiply(kb_tensor *x, kb_tensor *y);
/** Floats only: integer inputs are KB_ERR_DTYPE (Keras' truediv would return a float; kb_cast first). */
/** Floats only: integer inputs are KB_ERR_DTYPE (Keras' truediv would return a float; kb_cast first). */
KB_API kb_tensor *kb_divide(kb_tensor *x, kb_tensor *y);
KB_API kb_tensor *kb_negative(kb_tensor *x);
KB_API kb_tensor *kb_square(kb_tensor *x);
KB_API kb_tensor *kb_exp(kb_tensor *x);
/** Plain log: NaN below 0, -inf at 0, as Keras. */
KB_API kb_tensor *kb_log(kb_tensor *x);
/** Keras sqrt clips x to [0, inf) first: sqrt(negative) = 0. */
KB_API kb_tensor *kb_sqrt(kb_tensor *x);

KB_API kb_tensor *kb_abs(kb_tensor *x);
/** Keras round: half to even (tf.round), e.g. round(2.5) = 2, round(-0.5) = -0. */
KB_API kb_tensor *kb_round(kb_tensor *x);
/** sign(0) = 0; NaN stays NaN. */
KB_API kb_tensor *kb_sign(kb_tensor *x);
/** Keras pow(x, a) with a scalar exponent (tf.pow). */
KB_API kb_tensor *kb_pow(kb_tensor *x, double a);
KB_API kb_tensor *kb_sin(kb_tensor *x);
KB_API kb_tensor *kb_cos(kb_tensor *x);
/**
 * Keras clip(x, min_value, max_value) with number bounds: -INFINITY / INFINITY mean None, and
 * max_value < min_value gives max_value = min_value. NaN bounds are KB_ERR_INVALID_ARGUMENT.
 */
KB_API kb_tensor *kb_clip(kb_tensor *x, double min_value, double max_value);
/** Keras clip with tensor bounds (broadcast against x); a NULL bound means None. */
KB_API kb_tensor *kb_clip_tensor(kb_tensor *x, kb_tensor *min_value, kb_tensor *max_value);
/** Elementwise max / min with broadcasting (gradient to x where x >= y, as TF). */
KB_API kb_tensor *kb_maximum(kb_tensor *x, kb_tensor *y);
KB_API kb_tensor *kb_minimum(kb_tensor *x, kb_tensor *y);

/* comparisons: numpy broadcasting, inputs of one dtype, a KB_BOOL result, no gradient */
KB_API kb_tensor *kb_equal(kb_tensor *x, kb_tensor *y);
KB_API kb_tensor *kb_not_equal(kb_tensor *x, kb_tensor *y);
KB_API kb_tensor *kb_greater(kb_tensor *x, kb_tensor *y);
KB_API kb_tensor *kb_greater_equal(kb_tensor *x, kb_tensor *y);
KB_API kb_tensor *kb_less(kb_tensor *x, kb_tensor *y);
KB_API kb_tensor *kb_less_equal(kb_tensor *x, kb_tensor *y);

/* reductions over `axes` (NULL/0 = all axes), keepdims as Keras */
KB_API kb_tensor *kb_sum(kb_tensor *x, const int *axes, int n_axes, int keepdims);
KB_API kb_tensor *kb_mean(kb_tensor *x, const int *axes, int n_axes, int keepdims);
KB_API kb_tensor *kb_max(kb_tensor *x, const int *axes, int n_axes, int keepdims);
KB_API kb_tensor *kb_min(kb_tensor *x, const int *axes, int n_axes, int keepdims);
KB_API kb_tensor *kb_prod(kb_tensor *x, const int *axes, int n_axes, int keepdims);
/** Population variance / standard deviation (divide by N); bool input is cast to floatx. */
KB_API kb_tensor *kb_var(kb_tensor *x, const int *axes, int n_axes, int keepdims);
KB_API kb_tensor *kb_std(kb_tensor *x, const int *axes, int n_axes, int keepdims);
/** any / all: x is cast to bool; the result is KB_BOOL. */
KB_API kb_tensor *kb_any(kb_tensor *x, const int *axes, int n_axes, int keepdims);
KB_API kb_tensor *kb_all(kb_tensor *x, const int *axes, int n_axes, int keepdims);
/** Numerically stable log(sum(exp(x))) (max shift). */
KB_API kb_tensor *kb_logsumexp(kb_tensor *x, const int *axes, int n_axes, int keepdims);
/** Keras argmax / argmin (default axis -1): int64 indices, the first index on ties. */
KB_API kb_tensor *kb_argmax(kb_tensor *x, int axis);
KB_API kb_tensor *kb_argmin(kb_tensor *x, int axis);
/** Keras cumsum / cumprod (default axis 0): inclusive scans along one axis. */
KB_API kb_tensor *kb_cumsum(kb_tensor *x, int axis);
KB_API kb_tensor *kb_cumprod(kb_tensor *x, int axis);

/* linear algebra and shape */
/** Keras dot: matmul for ranks <= 2 (a 2-D sparse x times a 2-D y without densifying), else the
 * Theano/np.dot rule (last axis of x with the second-to-last of y; output
 * x.shape[:-1] + y.shape[:-2] + y.shape[-1:]). */
KB_API kb_tensor *kb_dot(kb_tensor *x, kb_tensor *y);
/** Keras transpose: reverses all axes. */
KB_API kb_tensor *kb_transpose(kb_tensor *x);
/** Keras permute_dimensions(x, pattern). */
KB_API kb_tensor *kb_permute_dimensions(kb_tensor *x, const int *pattern, int n);
/** Keras reshape(x, shape): one entry may be -1. */
KB_API kb_tensor *kb_reshape(kb_tensor *x, const int64_t *shape, int rank);
/**
 * Keras batch_dot(x, y, axes): \p n_axes 0 means axes=None, 1 an int a (= (a, a)), 2 a pair.
 * Output: x's shape without axes[0], then y's without the batch axis and axes[1]; two rank-2
 * inputs give (B, 1). Errors as the Keras messages (rank < 2, batch sizes, axis 0, sizes).
 */
KB_API kb_tensor *kb_batch_dot(kb_tensor *x, kb_tensor *y, const int *axes, int n_axes);
/** Keras gather(reference, indices): rows of reference along axis 0; indices int32 or int64;
 * output indices.shape + reference.shape[1:]. An out-of-range index is KB_ERR_INVALID_ARGUMENT
 * when the function runs on the CPU; on CUDA it gives a row of zeros (no device-to-host sync). */
KB_API kb_tensor *kb_gather(kb_tensor *reference, kb_tensor *indices);

/* sparse (COO) tensors */
/**
 * Keras placeholder(sparse=True): fed with a kb_feed whose indices/data hold the COO entries
 * (duplicates are summed) and whose shape is the dense shape. Dtype float32, float64, int32 or int64.
 */
KB_API kb_tensor *kb_sparse_placeholder(kb_context *ctx, const int64_t *shape, int rank, kb_dtype dtype,
                                        const char *name);
/** A sparse tensor from COO components: indices (nnz, rank) int64, values (nnz,); the dense shape
 * is the (runtime) shape of \p dense_shape_like, whose values are never read. */
KB_API kb_tensor *kb_sparse_tensor(kb_tensor *indices, kb_tensor *values, kb_tensor *dense_shape_like);
/** Keras is_sparse; 0 for NULL. A sparse tensor used by any op but dot / to_dense is densified. */
KB_API int kb_is_sparse(const kb_tensor *x);
/** Keras to_dense: the dense value of a sparse tensor; a dense x is returned as is. */
KB_API kb_tensor *kb_to_dense(kb_tensor *x);

/* shape manipulation */
/** Keras concatenate(tensors, axis): a negative axis is taken modulo the rank. */
KB_API kb_tensor *kb_concatenate(kb_tensor *const *xs, int n, int axis);
/** Keras stack(x, axis): new axis of size n. */
KB_API kb_tensor *kb_stack(kb_tensor *const *xs, int n, int axis);
/** np.repeat(x, rep, axis). */
KB_API kb_tensor *kb_repeat_elements(kb_tensor *x, int64_t rep, int axis);
/** Keras repeat(x, n): x must be 2-D, (B, d) -> (B, n, d). */
KB_API kb_tensor *kb_repeat(kb_tensor *x, int64_t n);
/** Keras tile(x, n): n shorter than the rank is left-padded with 1s; longer is KB_ERR_NOT_SUPPORTED. */
KB_API kb_tensor *kb_tile(kb_tensor *x, const int64_t *n, int len);
/** Keras arange(start, stop, step, dtype) as a constant; Keras arange(n) is arange(0, n, 1). */
KB_API kb_tensor *kb_arange(kb_context *ctx, double start, double stop, double step, kb_dtype dtype);
/** reshape to (-1,) */
KB_API kb_tensor *kb_flatten(kb_tensor *x);
/** reshape to (-1, prod(shape[1:])) */
KB_API kb_tensor *kb_batch_flatten(kb_tensor *x);
/** Keras expand_dims(x, axis) (default -1: a new last axis). */
KB_API kb_tensor *kb_expand_dims(kb_tensor *x, int axis);
/** Keras squeeze(x, axis): exactly one axis, of size 1. */
KB_API kb_tensor *kb_squeeze(kb_tensor *x, int axis);
/** Keras one_hot(indices, num_classes): float32 of shape indices.shape + (num_classes,);
 * out-of-range indices give all-zero rows. */
KB_API kb_tensor *kb_one_hot(kb_tensor *indices, int64_t num_classes);
/** Keras reverse(x, axes); n_axes 0 reverses nothing (tf.reverse(x, [])), not every axis. */
KB_API kb_tensor *kb_reverse(kb_tensor *x, const int *axes, int n_axes);
/** Keras slice(x, start, size) (tf.slice; size -1 means "to the end"). */
KB_API kb_tensor *kb_slice(kb_tensor *x, const int64_t *start, const int64_t *size, int n);
/** Keras temporal_padding: zeros on axis 1 of a 3-D tensor. */
KB_API kb_tensor *kb_temporal_padding(kb_tensor *x, int64_t left, int64_t right);

/** data_format argument of the image functions: the context's image_data_format, or a format. */
typedef enum kb_data_format_arg {
    KB_DATA_FORMAT_DEFAULT = -1,
    KB_DATA_FORMAT_CHANNELS_LAST = KB_CHANNELS_LAST,
    KB_DATA_FORMAT_CHANNELS_FIRST = KB_CHANNELS_FIRST
} kb_data_format_arg;
/** Keras spatial_2d_padding: padding = {top, bottom, left, right}. */
KB_API kb_tensor *kb_spatial_2d_padding(kb_tensor *x, const int64_t padding[4], kb_data_format_arg data_format);
/** Keras spatial_3d_padding: padding = {d0, d1, h0, h1, w0, w1}. */
KB_API kb_tensor *kb_spatial_3d_padding(kb_tensor *x, const int64_t padding[6], kb_data_format_arg data_format);
typedef enum kb_interpolation { KB_INTERP_NEAREST = 0, KB_INTERP_BILINEAR = 1 } kb_interpolation;
/** Keras resize_images with integer factors (legacy TF1 resize: align_corners=False, no
 * half-pixel offset). */
KB_API kb_tensor *kb_resize_images(kb_tensor *x, int64_t height_factor, int64_t width_factor, kb_data_format_arg data_format,
                                   kb_interpolation interpolation);
/** Keras resize_volumes: repeat_elements on the three spatial axes. */
KB_API kb_tensor *kb_resize_volumes(kb_tensor *x, int64_t depth_factor, int64_t height_factor,
                                    int64_t width_factor, kb_data_format_arg data_format);

/* activations and losses */
/** Keras relu(x, alpha, max_value, threshold); max_value INFINITY means None. */
KB_API kb_tensor *kb_relu(kb_tensor *x, double alpha, double max_value, double threshold);
KB_API kb_tensor *kb_sigmoid(kb_tensor *x);
KB_API kb_tensor *kb_softmax(kb_tensor *x, int axis);
/** Keras categorical_crossentropy(target, output, from_logits, axis): per-sample losses. */
KB_API kb_tensor *kb_categorical_crossentropy(kb_tensor *target, kb_tensor *output, int from_logits, int axis);
/* -- activations, losses, bias_add (ops/nn.c) -- */
/** Keras elu(x, alpha=1): x for x > 0, alpha*(exp(x) - 1) otherwise. */
KB_API kb_tensor *kb_elu(kb_tensor *x, double alpha);
/** Keras softplus: log(1 + exp(x)), computed as max(x, 0) + log1p(exp(-|x|)). */
KB_API kb_tensor *kb_softplus(kb_tensor *x);
/** Keras softsign: x / (1 + |x|). */
KB_API kb_tensor *kb_softsign(kb_tensor *x);
/** Keras hard_sigmoid (TF backend 2.3.1): clip(0.2*x + 0.5, 0, 1). */
KB_API kb_tensor *kb_hard_sigmoid(kb_tensor *x);
KB_API kb_tensor *kb_tanh(kb_tensor *x);
/** Keras l2_normalize(x, axis): x / sqrt(max(sum(x^2, axes, keepdims), 1e-12)) as tf.nn.l2_normalize;
 * axes NULL / n_axes 0 normalise over all elements (axis=None). */
KB_API kb_tensor *kb_l2_normalize(kb_tensor *x, const int *axes, int n_axes);
/** Keras in_top_k(predictions (B, C) float, targets (B,) int32/int64, k): bool (B,), true when fewer than k
 * predictions of the row are strictly greater than the target's (ties count, as tf.nn.in_top_k); a row with
 * a non-finite prediction or an out-of-range target gives false. Not differentiable. */
KB_API kb_tensor *kb_in_top_k(kb_tensor *predictions, kb_tensor *targets, int64_t k);
/** Keras sparse_categorical_crossentropy(target, output, from_logits, axis): per-sample losses of shape
 * output.shape without `axis`. target holds class indices (int32/int64, or floats truncated as Keras' cast)
 * of that shape, or of that shape plus a trailing 1. An out-of-range class gives a loss of 0. */
KB_API kb_tensor *kb_sparse_categorical_crossentropy(kb_tensor *target, kb_tensor *output, int from_logits,
                                                     int axis);
/** Keras binary_crossentropy(target, output, from_logits): elementwise losses (tf.keras: epsilon clip of
 * the probabilities, or the stable sigmoid_cross_entropy_with_logits form). */
KB_API kb_tensor *kb_binary_crossentropy(kb_tensor *target, kb_tensor *output, int from_logits);
/** Keras bias_add(x, bias, data_format): bias 1-D (per channel) or of rank ndim(x)-1 in channels-last order
 * (reshaped, not transposed, for channels_first, as Keras does); x of rank 2 or > 5 adds along the last
 * axis whatever the data format (tf.nn.bias_add). */
KB_API kb_tensor *kb_bias_add(kb_tensor *x, kb_tensor *bias, kb_data_format_arg data_format);

/* -- normalization (ops/norm.c) -- */
/**
 * Keras normalize_batch_in_training(x, gamma, beta, reduction_axes, epsilon) -> (normed, mean,
 * var): mean and var (population variance) over \p reduction_axes (NULL / 0 axes: all axes), of
 * the kept axes' shape; normed = (x - mean) / sqrt(var + epsilon) * gamma + beta. \p gamma /
 * \p beta NULL mean None (1 / 0). For axes = all but the last, gamma / beta broadcast against
 * x; otherwise they are reshaped to the broadcast shape (1 on the reduced axes), as Keras does.
 * Keras' default epsilon is 1e-3. The three results are written to *normed, *mean, *var.
 */
KB_API kb_status kb_normalize_batch_in_training(kb_tensor *x, kb_tensor *gamma, kb_tensor *beta,
                                                const int *reduction_axes, int n_axes, double epsilon,
                                                kb_tensor **normed, kb_tensor **mean, kb_tensor **var);
/**
 * Keras batch_normalization(x, mean, var, beta, gamma, axis, epsilon):
 * (x - mean) / sqrt(var + epsilon) * gamma + beta with numpy broadcasting; \p beta / \p gamma
 * NULL mean 0 / 1. For a 4-D x with axis 1 / -3 (NCHW) or 3 / -1 (NHWC), mean, var, beta and
 * gamma are flattened and apply per channel of that axis (Keras' fused path); otherwise \p axis
 * is not used. Keras' default epsilon is 1e-3.
 */
KB_API kb_tensor *kb_batch_normalization(kb_tensor *x, kb_tensor *mean, kb_tensor *var, kb_tensor *beta,
                                         kb_tensor *gamma, int axis, double epsilon);

/* -- convolution and pooling (ops/conv.c) -- */
/** Keras padding argument: 'valid', 'same' (TF arithmetic: the odd extra pad goes at the end),
 * 'causal' (conv1d only). Any other value: KB_ERR_INVALID_ARGUMENT "Invalid padding: <n>". */
typedef enum kb_padding { KB_PADDING_VALID = 0, KB_PADDING_SAME = 1, KB_PADDING_CAUSAL = 2 } kb_padding;
/** Keras pool_mode argument of pool2d / pool3d: 'max' or 'avg'. */
typedef enum kb_pool_mode { KB_POOL_MAX = 0, KB_POOL_AVG = 1 } kb_pool_mode;
/** Keras conv2d (cross-correlation): x 4-D in data_format, kernel (kh, kw, in, out) whatever the
 * data_format; strides / dilation_rate {h, w}, NULL = {1, 1}. As tf.nn.convolution, strides > 1
 * together with dilation_rate > 1 is refused. float16/bfloat16/float32/float64. */
KB_API kb_tensor *kb_conv2d(kb_tensor *x, kb_tensor *kernel, const int64_t strides[2], kb_padding padding,
                            kb_data_format_arg data_format, const int64_t dilation_rate[2]);
/** Keras conv1d: x 3-D, kernel (k, in, out); conv2d on an inserted size-1 axis. 'causal' left-pads
 * dilation_rate * (k - 1) zeros then runs 'valid'; it needs channels_last (Keras' message). */
KB_API kb_tensor *kb_conv1d(kb_tensor *x, kb_tensor *kernel, int64_t strides, kb_padding padding,
                            kb_data_format_arg data_format, int64_t dilation_rate);
/** Keras pool2d: pool_size {h, w} (required), strides {h, w} (NULL = {1, 1}). 'same' max ignores the
 * padded cells, 'same' avg divides by the number of unpadded cells; the max gradient goes to the
 * first maximum of each window (row-major scan), as TF's CPU kernel. */
KB_API kb_tensor *kb_pool2d(kb_tensor *x, const int64_t pool_size[2], const int64_t strides[2], kb_padding padding,
                            kb_data_format_arg data_format, kb_pool_mode pool_mode);
/** Keras conv2d_transpose: x 4-D in data_format, kernel (kh, kw, out, in) (TF's transposed filter),
 * output_shape the 4 output dims in the data_format layout (required; KB_NONE batch = x's batch at
 * run time). The gradient of conv2d w.r.t. its input: output_shape must be a shape that conv2d with
 * the same strides / padding / dilation maps onto x's spatial dims. strides > 1 with dilation > 1,
 * and unequal dilation in H and W (tf.nn.atrous_conv2d_transpose), are refused. */
KB_API kb_tensor *kb_conv2d_transpose(kb_tensor *x, kb_tensor *kernel, const int64_t output_shape[4],
                                      const int64_t strides[2], kb_padding padding, kb_data_format_arg data_format,
                                      const int64_t dilation_rate[2]);
/** Keras depthwise_conv2d: kernel (kh, kw, in, M); output channels in * M ordered channel-major
 * (channel c * M + m is input channel c with multiplier m). Same strides / dilation rules as conv2d.
 * Runs as a grouped convolution (groups = in, per-channel work; cuDNN group count on CUDA). The
 * kernel dims must be known at graph build (KB_ERR_NOT_SUPPORTED otherwise). */
KB_API kb_tensor *kb_depthwise_conv2d(kb_tensor *x, kb_tensor *depthwise_kernel, const int64_t strides[2],
                                      kb_padding padding, kb_data_format_arg data_format,
                                      const int64_t dilation_rate[2]);
/** Keras separable_conv2d: depthwise_conv2d(x, depthwise_kernel (kh, kw, in, M)) with strides,
 * padding and dilation, then a 1x1 'valid' conv2d with pointwise_kernel (1, 1, in * M, out). */
KB_API kb_tensor *kb_separable_conv2d(kb_tensor *x, kb_tensor *depthwise_kernel, kb_tensor *pointwise_kernel,
                                      const int64_t strides[2], kb_padding padding, kb_data_format_arg data_format,
                                      const int64_t dilation_rate[2]);
/** Keras separable_conv1d: x 3-D, depthwise_kernel (k, in, M), pointwise_kernel (1, in * M, out);
 * separable_conv2d on an inserted size-1 axis ('causal' is refused, as Keras' TF backend). */
KB_API kb_tensor *kb_separable_conv1d(kb_tensor *x, kb_tensor *depthwise_kernel, kb_tensor *pointwise_kernel,
                                      int64_t strides, kb_padding padding, kb_data_format_arg data_format,
                                      int64_t dilation_rate);
/** Keras conv3d (cross-correlation): x 5-D in data_format (NDHWC channels_last, NCDHW
 * channels_first), kernel (kd, kh, kw, in, out) whatever the data_format; strides / dilation_rate
 * {d, h, w}, NULL = {1, 1, 1}. 'same' / 'valid' as conv2d (TF arithmetic, odd pad at the end);
 * strides > 1 together with dilation_rate > 1 is refused (tf.nn.convolution).
 * float16/bfloat16/float32/float64. */
KB_API kb_tensor *kb_conv3d(kb_tensor *x, kb_tensor *kernel, const int64_t strides[3], kb_padding padding,
                            kb_data_format_arg data_format, const int64_t dilation_rate[3]);
/** Keras conv3d_transpose: x 5-D in data_format, kernel (kd, kh, kw, out, in) (TF's transposed
 * filter), output_shape the 5 output dims in the data_format layout (required; KB_NONE batch = x's
 * batch at run time); strides {d, h, w} (NULL = {1, 1, 1}); no dilation (Keras). The gradient of
 * conv3d w.r.t. its input: output_shape must be a shape that conv3d with the same strides /
 * padding maps onto x's spatial dims (KB_ERR_SHAPE otherwise). */
KB_API kb_tensor *kb_conv3d_transpose(kb_tensor *x, kb_tensor *kernel, const int64_t output_shape[5],
                                      const int64_t strides[3], kb_padding padding, kb_data_format_arg data_format);
/** Keras pool3d: x 5-D, pool_size {d, h, w} (required), strides {d, h, w} (NULL = {1, 1, 1}).
 * As pool2d: 'same' max ignores the padded cells, 'same' avg divides by the number of unpadded
 * cells, the max gradient goes to the first maximum of each window (d, h, w row-major scan). */
KB_API kb_tensor *kb_pool3d(kb_tensor *x, const int64_t pool_size[3], const int64_t strides[3], kb_padding padding,
                            kb_data_format_arg data_format, kb_pool_mode pool_mode);


/* -- locally connected convolution (ops/nn.c) -- */
/**
 * Keras local_conv1d(inputs, kernel, kernel_size, strides, data_format): unshared weights, 'valid'
 * windows. inputs (B, L, C) channels_last whatever \p data_format (Keras normalises it but does
 * not use it; an unknown value is still KB_ERR_INVALID_ARGUMENT); kernel (output_length,
 * kernel_size * C, filters) with a known shape; window i covers steps i*strides ..
 * i*strides + kernel_size - 1 flattened in (step, channel) order. Output (B, output_length,
 * filters). output_length comes from the kernel (Keras); the windows must fit in L (trailing
 * steps beyond the last window are unused). float32 / float64.
 */
KB_API kb_tensor *kb_local_conv1d(kb_tensor *inputs, kb_tensor *kernel, int64_t kernel_size, int64_t strides,
                                  kb_data_format_arg data_format);
/**
 * Keras local_conv2d(inputs, kernel, kernel_size, strides, output_shape, data_format): inputs 4-D in
 * data_format, kernel (out_row * out_col, kh * kw * C, filters) with a known shape, kernel_size
 * {kh, kw}, strides {sh, sw} (NULL = {1, 1}), output_shape {out_row, out_col} (required). Position
 * (i, j) = kernel row i*out_col + j takes the window at rows i*sh.., columns j*sw.. flattened in
 * (kh, kw, C) order (channels_last) or (C, kh, kw) order (channels_first), as Keras' slices.
 * Output (B, out_row, out_col, filters) or (B, filters, out_row, out_col). float32 / float64.
 */
KB_API kb_tensor *kb_local_conv2d(kb_tensor *inputs, kb_tensor *kernel, const int64_t kernel_size[2],
                                  const int64_t strides[2], const int64_t output_shape[2],
                                  kb_data_format_arg data_format);

/* -- random (ops/random.c) -- */
/** Keras seed=None: a seed drawn from the session (kb_context_options.seed mixed with the new
 * tensor's id, so the same session seed and the same graph give the same numbers). */
#define KB_SEED_NONE ((int64_t)-1)
/*
 * Random ops draw from Philox4x32-10 (cuRAND's device API on the GPU, the same generator on the
 * CPU: uniform and binomial values are bit-identical on both). As TF's stateful random ops, each
 * run of a compiled function draws new numbers, reproducibly: the same seed gives the same
 * sequence of draws over successive runs (each device counts its own runs, so the k-th CPU run and
 * the k-th CUDA run of a node draw the same numbers). \p seed >= 0, or KB_SEED_NONE; any other
 * negative value is KB_ERR_INVALID_ARGUMENT. \p shape is static (dims >= 0); the _like forms take
 * the run-time shape of \p like (its data is not read). dtype: float16, bfloat16, float32 or float64
 * (KB_FLOATX = floatx, also for the _like forms); other dtypes are KB_ERR_DTYPE. Not differentiable.
 */
/** Keras random_uniform(shape, minval=0, maxval=1): values in [minval, maxval) (minval when they
 * are equal). minval > maxval, non-finite bounds or a non-finite range are KB_ERR_INVALID_ARGUMENT. */
KB_API kb_tensor *kb_random_uniform(kb_context *ctx, const int64_t *shape, int rank, double minval, double maxval,
                                    kb_dtype dtype, int64_t seed);
KB_API kb_tensor *kb_random_uniform_like(kb_tensor *like, double minval, double maxval, kb_dtype dtype, int64_t seed);
/** Keras random_normal(shape, mean=0, stddev=1) (Box-Muller). stddev < 0 or non-finite
 * arguments are KB_ERR_INVALID_ARGUMENT. */
KB_API kb_tensor *kb_random_normal(kb_context *ctx, const int64_t *shape, int rank, double mean, double stddev,
                                   kb_dtype dtype, int64_t seed);
KB_API kb_tensor *kb_random_normal_like(kb_tensor *like, double mean, double stddev, kb_dtype dtype, int64_t seed);
/** Keras random_binomial(shape, p=0): Bernoulli, 1 where uniform <= p, else 0. p outside [0, 1]
 * (or NaN) is KB_ERR_INVALID_ARGUMENT. */
KB_API kb_tensor *kb_random_binomial(kb_context *ctx, const int64_t *shape, int rank, double p, kb_dtype dtype,
                                     int64_t seed);
KB_API kb_tensor *kb_random_binomial_like(kb_tensor *like, double p, kb_dtype dtype, int64_t seed);
/** Keras truncated_normal(shape, mean=0, stddev=1): the normal distribution restricted to
 * [mean - 2 stddev, mean + 2 stddev] (exact, by the inverse CDF: one uniform per value, no
 * re-draws). Same argument checks as kb_random_normal. */
KB_API kb_tensor *kb_truncated_normal(kb_context *ctx, const int64_t *shape, int rank, double mean, double stddev,
                                      kb_dtype dtype, int64_t seed);
KB_API kb_tensor *kb_truncated_normal_like(kb_tensor *like, double mean, double stddev, kb_dtype dtype,
                                           int64_t seed);
/** Keras random_uniform_variable(shape, low, high, dtype, name, seed): a variable whose values are
 * drawn once, at creation, on the host (the first draw of kb_random_uniform with the same seed).
 * \p name may be NULL. */
KB_API kb_tensor *kb_random_uniform_variable(kb_context *ctx, const int64_t *shape, int rank, double low,
                                             double high, kb_dtype dtype, const char *name, int64_t seed);
/** Keras random_normal_variable(shape, mean, scale, dtype, name, seed): as above, normal values. */
KB_API kb_tensor *kb_random_normal_variable(kb_context *ctx, const int64_t *shape, int rank, double mean,
                                            double scale, kb_dtype dtype, const char *name, int64_t seed);
/**
 * Keras dropout(x, level, noise_shape=None, seed=None) (tf.nn.dropout): an element is kept where a
 * uniform draw is >= level and scaled by 1 / (1 - level); dropped elements are 0. The learning
 * phase is not consulted (as the TF op). \p noise_shape (NULL: x's shape) has \p noise_rank <= x's
 * rank dims, right-aligned against x's; each is 1, x's dim, or KB_NONE (= x's dim at run time),
 * and one draw is broadcast along its size-1 dims. level outside [0, 1) is KB_ERR_INVALID_ARGUMENT,
 * a noise_shape that does not broadcast to x is KB_ERR_SHAPE. x: float16/bfloat16/float32/float64.
 * The gradient is dy times the same mask and scale (x * mask, mask drawn once per run).
 */
KB_API kb_tensor *kb_dropout(kb_tensor *x, double level, const int64_t *noise_shape, int noise_rank, int64_t seed);

/* -- control flow: switch, learning-phase selection (ops/elementwise.c) -- */
/**
 * Keras switch(condition, then_expression, else_expression): elementwise selection through one
 * select op (tf.where). \p condition is cast to bool (non-zero is true). The two expressions must
 * have one dtype (any) and the same shape (KB_ERR_DTYPE / KB_ERR_SHAPE). A rank-0 condition picks
 * a whole branch; both branches are tensors the caller already made, so both are computed (as
 * TF1 tensors made outside a tf.cond); branches of different shapes are KB_ERR_NOT_SUPPORTED. A
 * condition of rank 1..ndim(then_expression) selects along the LEADING axes (its shape padded
 * with trailing 1s and broadcast: Keras' reshape-and-tile, TF1's rank-1 tf.where); each of its
 * dims must be 1 or the expression's. A condition of higher rank is KB_ERR_SHAPE with Keras'
 * message "Rank of `condition` should be less than or equal to rank of ...". Gradient: dy to the
 * selected branch, zeros to the other, none to the condition.
 */
KB_API kb_tensor *kb_switch(kb_tensor *condition, kb_tensor *then_expression, kb_tensor *else_expression);
/**
 * Keras in_train_phase(x, alt, training): x where training is true, else alt, as
 * kb_switch(training, x, alt). \p training NULL means kb_learning_phase(ctx), the int32 tensor
 * read when a function runs (fed, or the value of kb_set_learning_phase, else 0): unlike Keras,
 * which resolves a phase fixed by set_learning_phase when the graph is built, kb reads it at call
 * time (use kb_in_train_phase_fixed for the build-time choice). Otherwise \p training is any
 * tensor (int, bool or float; usually a scalar), cast to bool. x == alt returns x.
 */
KB_API kb_tensor *kb_in_train_phase(kb_tensor *x, kb_tensor *alt, kb_tensor *training);
/** Keras in_test_phase(x, alt, training) = in_train_phase(alt, x, training): x in test mode. */
KB_API kb_tensor *kb_in_test_phase(kb_tensor *x, kb_tensor *alt, kb_tensor *training);
/** Keras in_train_phase with a Python int training (1 / True, 0 / False): returns x (1) or alt (0)
 * itself, no op; other values are KB_ERR_INVALID_ARGUMENT. */
KB_API kb_tensor *kb_in_train_phase_fixed(kb_tensor *x, kb_tensor *alt, int training);
/** Keras in_test_phase with a Python int training: alt (1) or x (0) itself. */
KB_API kb_tensor *kb_in_test_phase_fixed(kb_tensor *x, kb_tensor *alt, int training);

/* -- higher-order functions and rnn: loop nodes (ops/control.c) -- */
/*
 * Keras callables are C callbacks that build graph ops. kb calls each one ONCE, on per-step
 * placeholders, and runs the traced body once per step inside one loop node (a nested function
 * compiled per device, on the caller function's device and stream). Tensors the body uses that it
 * did not make (variables, placeholders, outer ops) are captured as inputs of the loop node. A
 * loop node takes at most 15 inputs: sequences, initial states, captured tensors (beyond that,
 * captures of static shape and one dtype share one packed input; what still does not fit is
 * KB_ERR_NOT_SUPPORTED). The outputs and states of one loop share one dtype. Gradients flow through the loop
 * (backpropagation through time: a reverse loop over the gradient of the body) to the sequences,
 * the initial values and the captured tensors; that reverse loop is a loop too, so higher
 * derivatives work while each loop stays within the input limit (a gradient loop takes more
 * inputs than its forward loop). A loop needs at least one step (KB_ERR_SHAPE at run time for
 * 0 steps).
 * A callback reports failure by returning NULL (or a status) with the error set by the kb call
 * that failed; the loop constructor then returns NULL with that error.
 */
/** map_fn's callback: returns fn(elem), a tensor built from \p elem (one slice elems[i]). */
typedef kb_tensor *(*kb_map_callback)(kb_tensor *elem, void *user);
/** foldl / foldr's callback: returns the new accumulator fn(acc, x), same dtype and shape as acc. */
typedef kb_tensor *(*kb_fold_fn)(kb_tensor *acc, kb_tensor *x, void *user);
/**
 * rnn's step function: from \p input (inputs[:, t], shape (B, ...)) and \p states (the
 * n_initial_states current states followed by the constants; \p n_states counts both), writes
 * \p *output (B, ...) and new_states[0 .. n_initial_states - 1]. Returns KB_OK or the status of
 * the failing call.
 */
typedef kb_status (*kb_step_fn)(kb_tensor *input, kb_tensor *const *states, int n_states, void *user,
                                kb_tensor **output, kb_tensor **new_states);
/**
 * Keras map_fn(fn, elems, dtype) (tf.map_fn): stack of fn(elems[i]) over axis 0, shape
 * (T,) + fn's output shape. \p dtype: the output dtype (fn's result is cast to it), or KB_FLOATX
 * for fn's own dtype (Keras dtype=None). elems must have rank >= 1.
 */
KB_API kb_tensor *kb_map_fn(kb_map_callback fn, void *user, kb_tensor *elems, kb_dtype dtype);
/**
 * Keras foldl(fn, elems, initializer) (tf.foldl): acc = fn(acc, elems[i]) for i = 0 .. T-1,
 * starting from \p initializer; initializer NULL starts from elems[0] and folds elems[1:] (then
 * elems needs at least 2 elements). Returns the last accumulator; fn must keep its dtype
 * (KB_ERR_DTYPE) and shape (KB_ERR_SHAPE).
 */
KB_API kb_tensor *kb_foldl(kb_fold_fn fn, void *user, kb_tensor *elems, kb_tensor *initializer);
/** Keras foldr: as kb_foldl from the last element to the first (initializer NULL: elems[-1]). */
KB_API kb_tensor *kb_foldr(kb_fold_fn fn, void *user, kb_tensor *elems, kb_tensor *initializer);
/**
 * Keras rnn(step_function, inputs, initial_states, go_backwards, mask, constants, unroll,
 * input_length): iterates step_function over the time axis 1 of \p inputs (B, T, ...), rank >= 3
 * (KB_ERR_SHAPE "Input should be at least 3D."). The states are initial_states[0 .. n_states-1]
 * (n_states may be 0; a state may have any shape), the constants are appended to the states the
 * step function sees. go_backwards iterates from T-1 down to 0 and keeps the outputs in that
 * (reversed) order. \p mask (B, T), any dtype cast to bool, or NULL: at a masked step the output
 * is the previous step's output (zeros before the first step) and every state keeps its value
 * (broadcast over trailing dims). \p unroll builds the T steps as graph ops (no loop node) and
 * needs a static T (KB_ERR_SHAPE "Unrolling requires a fixed number of timesteps."). \p
 * input_length is accepted and ignored (the steps are inputs' T, as tf.keras). Writes
 * *last_output (B, ...) (the last step's output after masking), *outputs (B, T, ...) and
 * new_states[0 .. n_states-1]. Returns KB_OK or the error status (outputs NULL).
 */
KB_API kb_status kb_rnn(kb_step_fn step_function, void *user, kb_tensor *inputs, kb_tensor *const *initial_states,
                        int n_states, int go_backwards, kb_tensor *mask, kb_tensor *const *constants, int n_constants,
                        int unroll, int64_t input_length, kb_tensor **last_output, kb_tensor **outputs,
                        kb_tensor **new_states);
/** kb_switch_fn's branches: build and return the branch's value (any tensors they use are captured). */
typedef kb_tensor *(*kb_branch_fn)(void *user);
/**
 * Keras switch with a scalar condition and callable branches (tf.cond): both branches are traced
 * once, and each call of a function runs ONLY the branch that \p condition (rank 0, any dtype,
 * non-zero is true) selects; that read waits for the device. The branches' results must have
 * one dtype (KB_ERR_DTYPE) and one shape (KB_ERR_SHAPE, also when the function runs). A
 * condition of rank > 0 is KB_ERR_SHAPE (use kb_switch). Gradient: through the selected branch
 * to what it uses, none to the condition. Same loop-node limits as kb_map_fn.
 */
KB_API kb_tensor *kb_switch_fn(kb_tensor *condition, kb_branch_fn then_fn, kb_branch_fn else_fn, void *user);

/* -- fused recurrent layers (ops/rnn.c) -- */
/** Activation of kb_cudnn_simple_rnn (cuDNN's RNN_TANH / RNN_RELU cells). */
typedef enum kb_cudnn_rnn_activation { KB_CUDNN_RNN_TANH = 0, KB_CUDNN_RNN_RELU = 1 } kb_cudnn_rnn_activation;
/**
 * Fused LSTM over a whole sequence (Keras CuDNNLSTM; cuDNN on the GPU, the same math on the CPU).
 * x (batch, timesteps, input_dim) float32/float64; h0, c0 (batch, units) or NULL (zeros, Keras'
 * initial_state None); kernel (input_dim, 4 * units), recurrent_kernel (units, 4 * units), bias
 * (8 * units) = input bias then recurrent bias, gate blocks i, f, c, o; each gate is
 * x_t . kernel + h . recurrent_kernel + both biases; c' = f c + i g, h' = o tanh(c') (sigmoid
 * gates, tanh). The weight shapes must be known at graph build. go_backwards (0/1) reverses x
 * along time first; the outputs stay in processing order (Keras). Results (any may be NULL, not
 * all): *outputs (batch, timesteps, units), *h_n = the last output, *c_n the last cell state.
 * Gradients flow to x, h0, c0 and the weights; second derivatives are KB_ERR_NOT_SUPPORTED.
 * Errors: KB_ERR_SHAPE / KB_ERR_DTYPE naming the argument; outputs are NULL on error.
 */
KB_API kb_status kb_cudnn_lstm(kb_tensor *x, kb_tensor *h0, kb_tensor *c0, kb_tensor *kernel,
                               kb_tensor *recurrent_kernel, kb_tensor *bias, int go_backwards,
                               kb_tensor **outputs, kb_tensor **h_n, kb_tensor **c_n);
/**
 * Fused GRU (Keras CuDNNGRU = GRU with reset_after=True): kernel (input_dim, 3 * units),
 * recurrent_kernel (units, 3 * units), bias (6 * units), gate blocks z, r, h (Keras order; cuDNN's
 * r, z, h is handled inside): z, r = sigmoid(x_t W + bW + h R + bR) per gate,
 * hh = tanh(x_t W_h + bW_h + r * (h R_h + bR_h)), h' = z h + (1 - z) hh. Other arguments as
 * kb_cudnn_lstm.
 */
KB_API kb_status kb_cudnn_gru(kb_tensor *x, kb_tensor *h0, kb_tensor *kernel, kb_tensor *recurrent_kernel,
                              kb_tensor *bias, int go_backwards, kb_tensor **outputs, kb_tensor **h_n);
/**
 * Fused simple RNN: h' = activation(x_t . kernel + bW + h . recurrent_kernel + bR), kernel
 * (input_dim, units), recurrent_kernel (units, units), bias (2 * units). Other arguments as
 * kb_cudnn_lstm.
 */
KB_API kb_status kb_cudnn_simple_rnn(kb_tensor *x, kb_tensor *h0, kb_tensor *kernel, kb_tensor *recurrent_kernel,
                                     kb_tensor *bias, kb_cudnn_rnn_activation activation, int go_backwards,
                                     kb_tensor **outputs, kb_tensor **h_n);

/* -- CTC (ops/ctc.c) -- */
/**
 * Keras ctc_label_dense_to_sparse(labels, label_lengths): a sparse tensor (kb_is_sparse) whose
 * dense value is labels[b, :label_lengths[b]] and 0 elsewhere. labels (B, L) int32/int64 (or
 * float32/float64), label_lengths (B,) (or (B, 1)) int32/int64, clamped to [0, L] as Keras' mask.
 * kb shapes are static: the COO components have B * L entries, the first sum(len) being TF's
 * (row-major), the rest explicit zeros at the padded positions.
 */
KB_API kb_tensor *kb_ctc_label_dense_to_sparse(kb_tensor *labels, kb_tensor *label_lengths);
/**
 * Keras ctc_batch_cost(y_true, y_pred, input_length, label_length): (B, 1) = -log p(label | y_pred)
 * per sample, as tf.nn.ctc_loss on log(y_pred + epsilon) (re-normalised by a log-softmax; blank =
 * num_classes - 1; repeated labels need a blank between them). y_true (B, L) int labels, entries
 * beyond label_length ignored (-1 padding is fine); y_pred (B, T, C) softmax output, float32 or
 * float64; input_length, label_length (B, 1) (or (B,)); float labels / lengths are cast to int32
 * as Keras' to_int32. Differentiable w.r.t. y_pred (own CPU and CUDA kernels, log space).
 * Run-time data errors (CPU: KB_ERR_INVALID_ARGUMENT naming the entry; CUDA: NaN loss for that
 * sample): input_length outside [0, T], negative label_length, a label outside [0, C - 1).
 * A label that needs more than input_length steps gives +inf and a zero gradient (TF raises
 * "Not enough time for target transition sequence").
 */
KB_API kb_tensor *kb_ctc_batch_cost(kb_tensor *y_true, kb_tensor *y_pred, kb_tensor *input_length,
                                    kb_tensor *label_length);
/**
 * Keras ctc_decode(y_pred, input_length, greedy=True, beam_width=100, top_paths=1,
 * merge_repeated=False) on log(y_pred + epsilon), y_pred (B, T, C) float32/float64, input_length
 * (B,) int (float cast to int32). Writes the decoded paths to decoded_out[0..n) (n = 1 when greedy,
 * top_paths otherwise), each int64 (B, T) padded with -1 (Keras crops to the longest decode; kb
 * shapes are static, so the width is T), and *log_prob_out:
 *   greedy: TF's ctc_greedy_decoder (merge_repeated is ignored: repeats always merged, then blanks
 *     dropped; argmax first index on ties); log_prob (B, 1) = -sum_t max_c log(y_pred + eps), a
 *     positive number. CPU and CUDA kernels.
 *   beam: TF's ctc_beam_search_decoder(beam_width, top_paths, merge_repeated); log_prob
 *     (B, top_paths) the paths' log probabilities. CPU kernel (TF's is a CPU kernel too): in a CUDA
 *     function it runs on the host. 1 <= top_paths <= beam_width (KB_ERR_INVALID_ARGUMENT). A beam
 *     with fewer than top_paths entries gives empty paths with log probability -inf (TF raises).
 * Returns KB_OK, or the error with every output NULL.
 */
KB_API kb_status kb_ctc_decode(kb_tensor *y_pred, kb_tensor *input_length, int greedy, int beam_width,
                               int top_paths, int merge_repeated, kb_tensor **decoded_out,
                               kb_tensor **log_prob_out);

/* ------------------------------------------------------------------------------------------ */
/* Profiling (kb-only): per-op times of functions, Chrome trace                                */
/* ------------------------------------------------------------------------------------------ */
/* -- profiling -- */
/**
 * Profiling on (nonzero) or off (0) for the functions of \p ctx. While it is on, each
 * kb_function_call times every op that runs a kernel (leaves and views such as reshape are not
 * timed), and the whole call from entry (planning included) until the device is done: a profiled
 * CUDA call waits for the device at its end. CUDA times are cudaEvent times on the context's
 * stream; CPU times are CLOCK_MONOTONIC. The times add up per function (kb_function_profile_*)
 * and every op execution and call is one event of the context's trace (kb_profile_write_trace).
 * Off, a call costs one branch per op. Not profiled: the one-shot functions of kb_eval and
 * kb_get_value, and the ops inside loop bodies (kb_rnn, kb_map_fn, kb_foldl...): a loop is timed
 * as one op. Default: on when $KB_PROFILE is set and not "0", or when $KB_PROFILE_TRACE is set (read by
 * kb_context_new). NULL ctx: KB_ERR_INVALID_ARGUMENT.
 */
KB_API kb_status kb_set_profiling(kb_context *ctx, int on);
/** 1 when profiling is on for \p ctx, else 0 (also for NULL). */
KB_API int kb_profiling(const kb_context *ctx);

/** The accumulated time of one op node of a function. The strings are kb's: \p label lives as
 * long as the function, \p op and \p device are static. */
typedef struct kb_op_profile {
    const char *label;  /**< "<op>#<id>", as in messages and NVTX ranges, e.g. "conv2d#12" */
    const char *op;     /**< op-table name, e.g. "conv2d" */
    int64_t calls;      /**< profiled calls that ran it */
    double total_ms;    /**< sum of its times, milliseconds */
    double mean_ms;     /**< total_ms / calls (0 without calls) */
    const char *device; /**< "cuda"; "cpu" (a CPU function); "cpu (fallback)" (no CUDA kernel: run
                             on the host inside a CUDA function, copies included); "host" (an op
                             that runs on the host by design inside a CUDA function) */
    int host_fallback;  /**< 1 for "cpu (fallback)", else 0 */
} kb_op_profile;

/** Number of timed op nodes of \p fn: all its kernel nodes once it has made a profiled call, 0
 * before. NULL fn: -1 with KB_ERR_INVALID_ARGUMENT. */
KB_API int kb_function_profile_count(const kb_function *fn);
/** Entry \p i of \p fn's profile, in [0, kb_function_profile_count): sorted by total_ms,
 * largest first (equal totals keep schedule order). Out of range: KB_ERR_INVALID_ARGUMENT. */
KB_API kb_status kb_function_profile_get(const kb_function *fn, int i, kb_op_profile *out);
/** \p fn's totals over its profiled calls (each out may be NULL): the number of calls, their
 * wall time (host clock, from entry until the device is done), and the sum of their op times. */
KB_API kb_status kb_function_profile_totals(const kb_function *fn, int64_t *calls, double *total_ms,
                                            double *ops_ms);
/** Zero \p fn's accumulated calls and times (e.g. after a warm-up call, whose time includes
 * planning, allocation and cuDNN's algorithm search). The context's trace keeps its events. */
KB_API kb_status kb_function_profile_reset(kb_function *fn);
/**
 * Print \p fn's profile as a table to \p out (NULL: stderr): a header (function id, device,
 * calls, total and per-call time, op time per call), one row per op type (nodes, calls, total
 * ms, mean ms, % of op time), then one row per node sorted by total (calls, total, mean, %,
 * device), the first \p top of them (top <= 0: $KB_PROFILE_TOP, else 25) and a "... N more"
 * line. A function without profiled calls prints one line saying so. With $KB_PROFILE set,
 * kb_function_free prints the table of a function that made profiled calls to stderr.
 */
KB_API kb_status kb_function_profile_print(const kb_function *fn, FILE *out, int top);
/**
 * Write the context's trace to \p path as Chrome trace-event JSON, which Perfetto
 * (ui.perfetto.dev) and chrome://tracing open: one complete ("X") event per op execution and
 * per call, timestamps in microseconds since profiling was first turned on, one row (tid) per
 * function, args with the output shape, dtype and device. The buffer holds at most 2^20 events
 * ($KB_PROFILE_TRACE_MAX changes it, read when profiling is first turned on); later ones are
 * counted in otherData.kb_dropped_events and a warning is logged. With $KB_PROFILE_TRACE=path,
 * kb_context_free writes it. NULL ctx or path: KB_ERR_INVALID_ARGUMENT; a file that cannot be
 * written: KB_ERR_IO with the path.
 */
KB_API kb_status kb_profile_write_trace(kb_context *ctx, const char *path);

#ifdef __cplusplus
}
#endif
#endif /* KB_KB_H */
