/* The session: configuration, uid counters, the tensors of the graph, and the devices. */
#ifndef KB_CORE_CONTEXT_H
#define KB_CORE_CONTEXT_H

#include <stdint.h>
#include "core/error.h"
#include "kb/kb.h"
#include "graph/device.h"
#include "ops/op.h"

typedef struct kb_config {
    double epsilon;
    kb_dtype floatx;
    kb_data_format image_data_format;
    char backend[256];
} kb_config;

typedef struct kb_uid {
    char *prefix;
    int count;
} kb_uid;

struct kb_context {
    kb_config cfg;
    int manual_variable_initialization;
    int learning_phase;         /* -1: not set (reads as 0) */
    kb_tensor *learning_phase_tensor;
    kb_uid *uids;
    int n_uids;
    /* every tensor of the session, in creation order (a topological order) */
    kb_tensor **tensors;
    int64_t n_tensors, cap_tensors;
    uint64_t generation;        /* bumped by clear_session: older functions refuse to run */
    uint64_t seed;
    kb_device device;           /* default device (never AUTO) */
    char device_name[160];
    int allow_tf32;             /* kb_set_allow_tf32: TF32 cuBLAS math for float32 products */
    int cuda_ordinal;           /* the CUDA device this session uses (kb_context_options) */
    void *cuda_dev;             /* NULL until the context opens its CUDA device */
    const kb_device_api *cuda_api;
    unsigned char fallback_logged[KB_OP_COUNT];
    kb_log_fn log_fn;
    void *log_user;
    /* profiling (graph/profile.c) */
    int profiling;              /* kb_set_profiling; on from KB_PROFILE / KB_PROFILE_TRACE */
    char *profile_trace_path;   /* KB_PROFILE_TRACE: the trace written at kb_context_free */
    struct kb_trace *trace;     /* events of profiled calls; made when profiling is first on */
};

/* keras.json: fill cfg from defaults, the file and KERAS_BACKEND (config.c). */
kb_status kb_config_load(kb_config *cfg, const char *keras_home, int read_file);
void kb_config_defaults(kb_config *cfg);
/* A notice through the session's log callback (stderr for WARN and above by default). */
void kb_notice(kb_context *ctx, kb_log_level level, const char *fmt, ...) KB_PRINTF(3, 4);
/* KB_DEVICE (cpu|cuda|auto) applied to a KB_DEVICE_AUTO choice; KB_ERR_CONFIG if invalid. */
kb_status kb_env_device(kb_device *d);
/* Open the session's CUDA device if not yet open (a CPU context may run CUDA functions). */
kb_status kb_ctx_open_cuda(kb_context *ctx);
/* Device api and handle for a device kind (the CPU one always exists). */
const kb_device_api *kb_ctx_api(kb_context *ctx, kb_device d, void **dev);

#endif
