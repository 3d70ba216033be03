/* kb_context: one Keras session (configuration, uids, learning phase, tensors, devices). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/context.h"
#include "core/dtype.h"
#include "core/error.h"
#include "graph/profile.h"
#include "graph/tensor.h"

void kb_tensors_free_all(kb_context *ctx); /* graph/tensor.c */

/* KB_PROFILE (set, not "0") and KB_PROFILE_TRACE=path turn profiling on for a new context. */
static kb_status profile_from_env(kb_context *ctx) {
    const char *prof = getenv("KB_PROFILE"), *trace = getenv("KB_PROFILE_TRACE");
    int on = prof && *prof && strcmp(prof, "0") != 0;
    if (trace && *trace) {
        ctx->profile_trace_path = strdup(trace);
        if (!ctx->profile_trace_path) return kb_set_error(KB_ERR_OUT_OF_MEMORY, "kb_context_new: out of host memory");
        on = 1;
    }
    return on ? kb_set_profiling(ctx, 1) : KB_OK;
}

int kb_cuda_compiled(void) {
#ifdef KB_WITH_CUDA
    return 1;
#else
    return 0;
#endif
}

int kb_cuda_device_count(void) {
#ifdef KB_WITH_CUDA
    return kb_cuda_count();
#else
    return 0;
#endif
}

kb_status kb_env_device(kb_device *d) {
    const char *env = getenv("KB_DEVICE");
    if (*d != KB_DEVICE_AUTO || !env || !*env || strcmp(env, "auto") == 0) return KB_OK; /* explicit choice wins */
    if (strcmp(env, "cpu") == 0) *d = KB_DEVICE_CPU;
    else if (strcmp(env, "cuda") == 0 || strcmp(env, "gpu") == 0) *d = KB_DEVICE_CUDA;
    else return kb_set_error(KB_ERR_CONFIG, "KB_DEVICE='%s': expected cpu, cuda or auto", env);
    return KB_OK;
}

kb_status kb_ctx_open_cuda(kb_context *ctx) {
#ifdef KB_WITH_CUDA
    if (ctx->cuda_api) return KB_OK;
    char name[sizeof ctx->device_name];
    KB_TRY(kb_cuda_open(ctx->cuda_ordinal, &ctx->cuda_dev, &ctx->cuda_api, name, sizeof name));
    if (ctx->allow_tf32) KB_TRY(kb_cuda_set_tf32((struct kb_cuda_device *)ctx->cuda_dev, 1));
    if (ctx->device == KB_DEVICE_CUDA) memcpy(ctx->device_name, name, sizeof name);
    return KB_OK;
#else
    (void)ctx;
    return kb_set_error(KB_ERR_NO_DEVICE, "kb: CUDA asked for, but kb was built without CUDA");
#endif
}

static kb_status pick_device(kb_device asked, kb_device *out) {
    KB_TRY(kb_env_device(&asked));
    if (asked == KB_DEVICE_AUTO) asked = kb_cuda_device_count() > 0 ? KB_DEVICE_CUDA : KB_DEVICE_CPU;
    if (asked == KB_DEVICE_CUDA && kb_cuda_device_count() == 0)
        return kb_set_error(KB_ERR_NO_DEVICE, "kb_context_new: CUDA device asked for, but %s",
                            kb_cuda_compiled() ? "no CUDA GPU is present" : "kb was built without CUDA");
    if (asked != KB_DEVICE_CPU && asked != KB_DEVICE_CUDA)
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_context_new: invalid device %d", (int)asked);
    *out = asked;
    return KB_OK;
}

kb_status kb_context_new(kb_context **out, const kb_context_options *opts) {
    if (!out) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_context_new: argument out is NULL");
    *out = NULL;
    kb_context_options o = KB_CONTEXT_OPTIONS_DEFAULTS;
    if (opts) o = *opts;
    kb_context *ctx = (kb_context *)calloc(1, sizeof *ctx);
    if (!ctx) return kb_set_error(KB_ERR_OUT_OF_MEMORY, "kb_context_new: out of host memory");
    kb_status st = kb_config_load(&ctx->cfg, o.keras_home, o.read_config);
    if (st == KB_OK) st = pick_device(o.device, &ctx->device);
    if (st != KB_OK) {
        free(ctx);
        return st;
    }
    ctx->learning_phase = -1;
    ctx->seed = o.seed;
    ctx->cuda_ordinal = o.cuda_device;
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    snprintf(ctx->device_name, sizeof ctx->device_name, "cpu (%d thread%s)", threads, threads == 1 ? "" : "s");
    if ((ctx->device == KB_DEVICE_CUDA && kb_ctx_open_cuda(ctx) != KB_OK) || profile_from_env(ctx) != KB_OK) {
        kb_status s = kb_last_status();
        if (ctx->cuda_api) ctx->cuda_api->destroy(ctx->cuda_dev);
        kb_trace_free(ctx->trace);
        free(ctx->profile_trace_path);
        free(ctx);
        return s;
    }
    *out = ctx;
    return KB_OK;
}

void kb_context_free(kb_context *ctx) {
    if (!ctx) return;
    if (ctx->profile_trace_path) {
        if (kb_profile_write_trace(ctx, ctx->profile_trace_path) != KB_OK)
            kb_notice(ctx, KB_LOG_ERROR, "KB_PROFILE_TRACE: %s", kb_last_error());
        else
            kb_notice(ctx, KB_LOG_INFO, "KB_PROFILE_TRACE: wrote %s", ctx->profile_trace_path);
    }
    kb_trace_free(ctx->trace);
    free(ctx->profile_trace_path);
    kb_tensors_free_all(ctx);
    free(ctx->tensors);
    for (int i = 0; i < ctx->n_uids; ++i) free(ctx->uids[i].prefix);
    free(ctx->uids);
    if (ctx->cuda_api) ctx->cuda_api->destroy(ctx->cuda_dev);
    free(ctx);
}

kb_status kb_context_set_log_callback(kb_context *ctx, kb_log_fn fn, void *user) {
    if (!ctx) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_context_set_log_callback: argument ctx is NULL");
    ctx->log_fn = fn;
    ctx->log_user = user;
    return KB_OK;
}

void kb_notice(kb_context *ctx, kb_log_level level, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ctx->log_fn) ctx->log_fn(level, msg, ctx->log_user);
    else if (level >= KB_LOG_WARN) fprintf(stderr, "kb: %s\n", msg);
}

const kb_device_api *kb_ctx_api(kb_context *ctx, kb_device d, void **dev) {
    if (d == KB_DEVICE_CUDA && ctx->cuda_api) {
        *dev = ctx->cuda_dev;
        return ctx->cuda_api;
    }
    *dev = NULL;
    return &kb_cpu_device_api;
}

#define CTX_CHECK(fn, ctx, ret)                      \
    do {                                             \
        if (!(ctx)) {                                \
            kb_null_arg(fn, "ctx");                  \
            return ret;                              \
        }                                            \
    } while (0)

kb_device kb_context_device(const kb_context *ctx) {
    CTX_CHECK("kb_context_device", ctx, KB_DEVICE_CPU);
    return ctx->device;
}

const char *kb_context_device_name(const kb_context *ctx) {
    CTX_CHECK("kb_context_device_name", ctx, "");
    return ctx->device_name;
}

double kb_epsilon(const kb_context *ctx) {
    CTX_CHECK("kb_epsilon", ctx, NAN);
    return ctx->cfg.epsilon;
}

kb_status kb_set_epsilon(kb_context *ctx, double e) {
    if (!ctx) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_set_epsilon: argument ctx is NULL");
    if (!isfinite(e)) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_set_epsilon: epsilon must be finite, got %g", e);
    ctx->cfg.epsilon = e;
    return KB_OK;
}

kb_dtype kb_floatx(const kb_context *ctx) {
    CTX_CHECK("kb_floatx", ctx, KB_FLOAT32);
    return ctx->cfg.floatx;
}

kb_status kb_set_floatx(kb_context *ctx, kb_dtype dt) {
    if (!ctx) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_set_floatx: argument ctx is NULL");
    if (dt != KB_FLOAT16 && dt != KB_FLOAT32 && dt != KB_FLOAT64)
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_set_floatx: Unknown floatx type: %s (expected float16, float32 or float64)",
                            kb_dtype_name(dt) ? kb_dtype_name(dt) : "invalid dtype");
    ctx->cfg.floatx = dt;
    return KB_OK;
}

kb_status kb_cast_to_floatx(const kb_context *ctx, const void *src, kb_dtype src_dtype, size_t n, void *dst,
                            size_t dst_nbytes) {
    const char *fn = "kb_cast_to_floatx";
    if (!ctx) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: argument ctx is NULL", fn);
    if (!src && n) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: argument src is NULL", fn);
    if (!dst && n) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: argument dst is NULL", fn);
    if (!kb_dtype_valid(src_dtype))
        return kb_set_error(KB_ERR_DTYPE, "kb_cast_to_floatx: invalid source dtype %d", (int)src_dtype);
    size_t need = n * kb_dtype_size(ctx->cfg.floatx);
    if (dst_nbytes != need)
        return kb_set_error(KB_ERR_SHAPE, "kb_cast_to_floatx: destination holds %zu bytes, %zu %s values need %zu",
                            dst_nbytes, n, kb_dtype_name(ctx->cfg.floatx), need);
    kb_convert(src, src_dtype, dst, ctx->cfg.floatx, (int64_t)n);
    return KB_OK;
}

kb_data_format kb_image_data_format(const kb_context *ctx) {
    CTX_CHECK("kb_image_data_format", ctx, KB_CHANNELS_LAST);
    return ctx->cfg.image_data_format;
}

kb_status kb_set_image_data_format(kb_context *ctx, kb_data_format f) {
    if (!ctx) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_set_image_data_format: argument ctx is NULL");
    if (f != KB_CHANNELS_LAST && f != KB_CHANNELS_FIRST)
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_set_image_data_format: Unknown data_format: %d", (int)f);
    ctx->cfg.image_data_format = f;
    return KB_OK;
}

kb_status kb_set_allow_tf32(kb_context *ctx, int allow) {
    if (!ctx) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_set_allow_tf32: argument ctx is NULL");
    ctx->allow_tf32 = allow != 0;
#ifdef KB_WITH_CUDA
    if (ctx->cuda_dev) return kb_cuda_set_tf32((struct kb_cuda_device *)ctx->cuda_dev, ctx->allow_tf32);
#endif
    return KB_OK;
}

int kb_allow_tf32(const kb_context *ctx) {
    CTX_CHECK("kb_allow_tf32", ctx, 0);
    return ctx->allow_tf32;
}

void *kb_context_cuda_stream(kb_context *ctx) {
    CTX_CHECK("kb_context_cuda_stream", ctx, NULL);
    if (kb_ctx_open_cuda(ctx) != KB_OK) return NULL;
#ifdef KB_WITH_CUDA
    return kb_cuda_stream_handle((struct kb_cuda_device *)ctx->cuda_dev);
#else
    return NULL;
#endif
}

const char *kb_backend(const kb_context *ctx) {
    CTX_CHECK("kb_backend", ctx, "");
    return ctx->cfg.backend;
}

int kb_get_uid(kb_context *ctx, const char *prefix) {
    CTX_CHECK("kb_get_uid", ctx, -1);
    if (!prefix) prefix = "";
    for (int i = 0; i < ctx->n_uids; ++i)
        if (strcmp(ctx->uids[i].prefix, prefix) == 0) return ++ctx->uids[i].count;
    kb_uid *u = (kb_uid *)realloc(ctx->uids, sizeof *u * (size_t)(ctx->n_uids + 1));
    char *p = strdup(prefix);
    if (!u || !p) {
        free(p);
        if (u) ctx->uids = u;
        kb_set_error(KB_ERR_OUT_OF_MEMORY, "kb_get_uid: out of host memory");
        return -1;
    }
    ctx->uids = u;
    ctx->uids[ctx->n_uids].prefix = p;
    ctx->uids[ctx->n_uids].count = 1;
    ctx->n_uids++;
    return 1;
}

void kb_reset_uids(kb_context *ctx) {
    if (!ctx) return;
    for (int i = 0; i < ctx->n_uids; ++i) free(ctx->uids[i].prefix);
    free(ctx->uids);
    ctx->uids = NULL;
    ctx->n_uids = 0;
}

kb_status kb_clear_session(kb_context *ctx) {
    if (!ctx) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_clear_session: argument ctx is NULL");
    kb_tensors_free_all(ctx);
    kb_reset_uids(ctx);
    ctx->learning_phase = -1;
    ctx->learning_phase_tensor = NULL;
    ctx->generation++;
    return KB_OK;
}

kb_status kb_manual_variable_initialization(kb_context *ctx, int value) {
    if (!ctx) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_manual_variable_initialization: argument ctx is NULL");
    ctx->manual_variable_initialization = value != 0;
    return KB_OK;
}

int kb_get_manual_variable_initialization(const kb_context *ctx) {
    CTX_CHECK("kb_get_manual_variable_initialization", ctx, 0);
    return ctx->manual_variable_initialization;
}

kb_status kb_set_learning_phase(kb_context *ctx, int value) {
    if (!ctx) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_set_learning_phase: argument ctx is NULL");
    if (value != 0 && value != 1)
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_set_learning_phase: Expected learning phase to be 0 or 1 (got %d).", value);
    ctx->learning_phase = value;
    return KB_OK;
}

kb_status kb_memory_stats_get(kb_context *ctx, kb_memory_stats *out) {
    if (!ctx) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_memory_stats_get: argument ctx is NULL");
    if (!out) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_memory_stats_get: argument out is NULL");
    void *dev; /* the CUDA pool whenever the context has opened one (a CPU context's CUDA functions too) */
    const kb_device_api *api = kb_ctx_api(ctx, ctx->cuda_api ? KB_DEVICE_CUDA : KB_DEVICE_CPU, &dev);
    return api->stats(dev, out);
}

kb_status kb_memory_release(kb_context *ctx) {
    if (!ctx) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_memory_release: argument ctx is NULL");
    void *dev;
    const kb_device_api *api = kb_ctx_api(ctx, ctx->cuda_api ? KB_DEVICE_CUDA : KB_DEVICE_CPU, &dev);
    return api->release(dev);
}
