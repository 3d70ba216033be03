/*
 * Profiling of kb_function calls (graph/profile.c): per-node op times accumulated per function
 * and the context's bounded buffer of Chrome-trace events.
 *
 * function.c owns the hooks: call() runs kb_prof_begin before planning and kb_prof_end after
 * run(); run() records a timer before and after each kernel node while fn->prof_on is set (one
 * branch per node when it is not). Loop bodies (kb_function_run_body) are never profiled: their
 * time is the time of the loop op that runs them.
 */
#ifndef KB_GRAPH_PROFILE_H
#define KB_GRAPH_PROFILE_H

#include <stdint.h>
#include "graph/tensor.h"

/* Where a node runs: the table's device column. */
enum {
    KB_PW_NONE = 0,  /* not profiled: a leaf, a view, a cut */
    KB_PW_CUDA,      /* a CUDA kernel */
    KB_PW_CPU,       /* a CPU kernel in a CPU function */
    KB_PW_FALLBACK,  /* an op without a CUDA kernel, run on the host in a CUDA function */
    KB_PW_HOST       /* an op that runs on the host by design (KB_OPF_HOST) in a CUDA function */
};

typedef struct kb_fn_profile {
    kb_context *ctx;           /* functions are freed before their context */
    const kb_device_api *api;
    void *dev;
    kb_device device;
    int id;                    /* "function #id", the trace's tid */
    int n;                     /* schedule nodes of the function */
    int n_kernels;             /* of those, profiled ones (where != KB_PW_NONE) */
    const char (*label)[48];   /* the function's labels "<op>#<id>" */
    const char **op;           /* per node: op-table name, NULL when not profiled */
    unsigned char *where;      /* per node: KB_PW_* */
    void **tb, **ta;           /* per profiled node: timers before / after its op */
    void *t0, *t1;             /* the call's start (before planning) and end */
    int64_t *calls;            /* per node */
    double *ms;                /* per node */
    int64_t fn_calls;
    double fn_ms, ops_ms;      /* wall time of the calls, sum of the op times */
    int64_t start_ns;          /* host CLOCK_MONOTONIC at the running call's start */
    int print_at_free;         /* KB_PROFILE: print the table to stderr at kb_function_free */
    int *order;                /* profiled nodes sorted by total ms, descending (cache) */
    int order_valid;
    int tid_str;               /* trace strings, -1 until made */
    int *label_str, *shape_str;
    kb_desc *shape_desc;       /* the desc shape_str was made for */
} kb_fn_profile;

/* A profile for a function of n nodes on (api, dev); the caller fills op[] and where[] and then
 * calls kb_prof_init, which counts the kernels and makes their timers. NULL on failure. */
kb_fn_profile *kb_prof_new(kb_context *ctx, kb_device device, const kb_device_api *api, void *dev, int n,
                           const char (*label)[48]);
kb_status kb_prof_init(kb_fn_profile *p);
/* Prints the table to stderr when KB_PROFILE asked for it and a profiled call was made. */
void kb_prof_free(kb_fn_profile *p);
/* Start of a profiled call: the start timer and the host time. */
kb_status kb_prof_begin(kb_fn_profile *p);
/* End of a profiled call whose run() returned ok (nonzero) or failed (0): records the end timer,
 * waits for the device, adds the op times and trace events (desc: the plan's per-node descs).
 * A failed call adds nothing. */
kb_status kb_prof_end(kb_fn_profile *p, int ok, const kb_desc *desc);

/* The context's trace (free at kb_context_free, after writing $KB_PROFILE_TRACE). */
kb_status kb_trace_start(kb_context *ctx);
void kb_trace_free(struct kb_trace *t);

/* function.c: the profile of a function (NULL when it made no profiled call). */
kb_fn_profile *kb_function_prof(const kb_function *fn);

#endif
