/*
 * Profiling: per-op times of functions (KB_PROFILE) and the Chrome trace (KB_PROFILE_TRACE).
 *
 * Times come from the device interface's timers: CUDA events recorded on the compute stream
 * (read after the sync that ends a profiled call), CLOCK_MONOTONIC on the CPU. A function's
 * profile (kb_fn_profile, made at its first profiled call) holds two timers per kernel node,
 * reused by every call, and accumulates calls and milliseconds per node. The context's trace
 * holds one compact event per op execution and per call (bounded, the rest are counted as
 * dropped); kb_profile_write_trace streams them as Chrome trace JSON, each event printed by cJSON.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/dtype.h"
#include "core/error.h"
#include "graph/profile.h"

#define KB_TRACE_MAX_DEFAULT ((int64_t)1 << 20)
#define KB_PROFILE_TOP_DEFAULT 25

/* One trace event, 40 bytes: names and shapes are indices into the trace's strings. */
typedef struct kb_trace_ev {
    double ts_us, dur_us;
    int64_t call;     /* the function's call number (1-based) */
    int32_t name;     /* string index: label, or the function's name for a call event */
    int32_t tid;      /* function id */
    int32_t shape;    /* string index of the output shape, -1 for a call event */
    int8_t dtype;     /* output dtype */
    int8_t where;     /* KB_PW_*, KB_PW_NONE for a call event */
} kb_trace_ev;

struct kb_trace {
    int64_t t0_ns;    /* profiling start: trace timestamps count from here */
    kb_trace_ev *ev;
    int64_t n, cap, max, dropped;
    char **str;
    int n_str, cap_str;
    int *threads;     /* per function id (index id - 1): string index of its name */
    int n_threads, cap_threads;
};

static kb_status prof_print(const kb_fn_profile *p, FILE *out, int top);

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const char *where_name(int w) {
    switch (w) {
    case KB_PW_CUDA: return "cuda";
    case KB_PW_CPU: return "cpu";
    case KB_PW_FALLBACK: return "cpu (fallback)";
    case KB_PW_HOST: return "host";
    default: return "";
    }
}

/* ------------------------------------------------------------------------------------------ */
/* The context's trace                                                                          */

kb_status kb_trace_start(kb_context *ctx) {
    if (ctx->trace) return KB_OK;
    struct kb_trace *t = (struct kb_trace *)calloc(1, sizeof *t);
    if (!t) return kb_set_error(KB_ERR_OUT_OF_MEMORY, "kb_set_profiling: out of host memory");
    t->t0_ns = now_ns();
    t->max = KB_TRACE_MAX_DEFAULT;
    const char *env = getenv("KB_PROFILE_TRACE_MAX");
    if (env && *env) {
        char *end = NULL;
        long long v = strtoll(env, &end, 10);
        if (end && !*end && v >= 0) t->max = (int64_t)v;
    }
    ctx->trace = t;
    return KB_OK;
}

void kb_trace_free(struct kb_trace *t) {
    if (!t) return;
    for (int i = 0; i < t->n_str; ++i) free(t->str[i]);
    free(t->str);
    free(t->ev);
    free(t->threads);
    free(t);
}

/* Append a copy of s; returns its index or -1 (out of memory: the event loses its name). */
static int trace_str(struct kb_trace *t, const char *s) {
    if (t->n_str == t->cap_str) {
        int cap = t->cap_str ? 2 * t->cap_str : 256;
        char **ns = (char **)realloc(t->str, sizeof *ns * (size_t)cap);
        if (!ns) return -1;
        t->str = ns;
        t->cap_str = cap;
    }
    char *c = strdup(s);
    if (!c) return -1;
    t->str[t->n_str] = c;
    return t->n_str++;
}

static kb_trace_ev *trace_push(struct kb_trace *t) {
    if (t->n == t->cap) {
        if (t->n >= t->max) {
            t->dropped++;
            return NULL;
        }
        int64_t cap = t->cap ? 2 * t->cap : 4096;
        if (cap > t->max) cap = t->max;
        kb_trace_ev *ne = (kb_trace_ev *)realloc(t->ev, sizeof *ne * (size_t)cap);
        if (!ne) {
            t->dropped++;
            return NULL;
        }
        t->ev = ne;
        t->cap = cap;
    }
    return &t->ev[t->n++];
}

/* ------------------------------------------------------------------------------------------ */
/* A function's profile                                                                         */

kb_fn_profile *kb_prof_new(kb_context *ctx, kb_device device, const kb_device_api *api, void *dev, int n,
                           const char (*label)[48]) {
    kb_fn_profile *p = (kb_fn_profile *)calloc(1, sizeof *p);
    if (!p) {
        kb_set_error(KB_ERR_OUT_OF_MEMORY, "kb_function_call: out of host memory for the profile");
        return NULL;
    }
    size_t m = (size_t)(n > 0 ? n : 1);
    p->ctx = ctx;
    p->device = device;
    p->api = api;
    p->dev = dev;
    p->n = n;
    p->label = label;
    p->tid_str = -1;
    p->op = (const char **)calloc(m, sizeof *p->op);
    p->where = (unsigned char *)calloc(m, 1);
    p->tb = (void **)calloc(m, sizeof *p->tb);
    p->ta = (void **)calloc(m, sizeof *p->ta);
    p->calls = (int64_t *)calloc(m, sizeof *p->calls);
    p->ms = (double *)calloc(m, sizeof *p->ms);
    p->order = (int *)calloc(m, sizeof *p->order);
    p->label_str = (int *)malloc(m * sizeof *p->label_str);
    p->shape_str = (int *)malloc(m * sizeof *p->shape_str);
    p->shape_desc = (kb_desc *)calloc(m, sizeof *p->shape_desc);
    if (!p->op || !p->where || !p->tb || !p->ta || !p->calls || !p->ms || !p->order || !p->label_str ||
        !p->shape_str || !p->shape_desc) {
        kb_prof_free(p);
        kb_set_error(KB_ERR_OUT_OF_MEMORY, "kb_function_call: out of host memory for the profile");
        return NULL;
    }
    for (int k = 0; k < n; ++k) p->label_str[k] = p->shape_str[k] = -1;
    const char *env = getenv("KB_PROFILE");
    p->print_at_free = env && *env && strcmp(env, "0") != 0;
    return p;
}

kb_status kb_prof_init(kb_fn_profile *p) {
    KB_TRY(p->api->timer_new(p->dev, &p->t0));
    KB_TRY(p->api->timer_new(p->dev, &p->t1));
    p->n_kernels = 0;
    for (int k = 0; k < p->n; ++k) {
        if (p->where[k] == KB_PW_NONE) continue;
        p->n_kernels++;
        KB_TRY(p->api->timer_new(p->dev, &p->tb[k]));
        KB_TRY(p->api->timer_new(p->dev, &p->ta[k]));
    }
    struct kb_trace *t = p->ctx->trace;
    p->id = t ? ++t->n_threads : 0;
    if (t) {
        if (t->n_threads > t->cap_threads) {
            int cap = t->cap_threads ? 2 * t->cap_threads : 16;
            int *nt = (int *)realloc(t->threads, sizeof *nt * (size_t)cap);
            if (!nt) {
                t->n_threads--;
                return kb_set_error(KB_ERR_OUT_OF_MEMORY, "kb_function_call: out of host memory for the trace");
            }
            t->threads = nt;
            t->cap_threads = cap;
        }
        char name[64];
        snprintf(name, sizeof name, "function #%d (%s)", p->id, p->device == KB_DEVICE_CUDA ? "cuda" : "cpu");
        t->threads[p->id - 1] = p->tid_str = trace_str(t, name);
    }
    return KB_OK;
}

void kb_prof_free(kb_fn_profile *p) {
    if (!p) return;
    if (p->print_at_free && p->fn_calls > 0) {
        prof_print(p, stderr, 0); /* the function is going away: print from the profile itself */
    }
    for (int k = 0; k < p->n && p->tb; ++k) {
        if (p->tb[k]) p->api->timer_free(p->dev, p->tb[k]);
        if (p->ta && p->ta[k]) p->api->timer_free(p->dev, p->ta[k]);
    }
    if (p->t0) p->api->timer_free(p->dev, p->t0);
    if (p->t1) p->api->timer_free(p->dev, p->t1);
    free(p->op);
    free(p->where);
    free(p->tb);
    free(p->ta);
    free(p->calls);
    free(p->ms);
    free(p->order);
    free(p->label_str);
    free(p->shape_str);
    free(p->shape_desc);
    free(p);
}

kb_status kb_prof_begin(kb_fn_profile *p) {
    p->start_ns = now_ns();
    return p->api->timer_record(p->dev, p->t0);
}

static int same_desc(const kb_desc *a, const kb_desc *b) {
    if (a->dtype != b->dtype || a->rank != b->rank) return 0;
    for (int d = 0; d < a->rank; ++d)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

kb_status kb_prof_end(kb_fn_profile *p, int ok, const kb_desc *desc) {
    if (!ok) return KB_OK; /* the failed call's status is what the caller reports */
    KB_TRY(p->api->timer_record(p->dev, p->t1));
    KB_TRY(p->api->sync(p->dev));
    int64_t end_ns = now_ns();
    double wall_ms = (double)(end_ns - p->start_ns) * 1e-6;
    struct kb_trace *t = p->ctx->trace;
    double start_us = t ? (double)(p->start_ns - t->t0_ns) * 1e-3 : 0.0;
    double end_us = start_us + wall_ms * 1e3;
    p->fn_calls++;
    p->fn_ms += wall_ms;
    p->order_valid = 0;
    if (t) {
        kb_trace_ev *e = trace_push(t);
        if (e) {
            e->ts_us = start_us;
            e->dur_us = wall_ms * 1e3;
            e->call = p->fn_calls;
            e->name = p->tid_str;
            e->tid = p->id;
            e->shape = -1;
            e->dtype = 0;
            e->where = KB_PW_NONE;
        }
    }
    for (int k = 0; k < p->n; ++k) {
        if (p->where[k] == KB_PW_NONE) continue;
        double ms = 0.0, off = 0.0;
        KB_TRY(p->api->timer_ms(p->dev, p->tb[k], p->ta[k], &ms));
        if (ms < 0) ms = 0;
        p->calls[k]++;
        p->ms[k] += ms;
        p->ops_ms += ms;
        if (!t) continue;
        KB_TRY(p->api->timer_ms(p->dev, p->t0, p->tb[k], &off));
        kb_trace_ev *e = trace_push(t);
        if (!e) continue;
        if (p->label_str[k] < 0) p->label_str[k] = trace_str(t, p->label[k]);
        if (p->shape_str[k] < 0 || !same_desc(&p->shape_desc[k], &desc[k])) {
            char s[160];
            p->shape_desc[k] = desc[k];
            p->shape_str[k] = trace_str(t, kb_shape_str(&desc[k], s, sizeof s));
        }
        /* device offsets on the host timeline; clamp into the call so the row nests */
        double ts = start_us + (off > 0 ? off : 0) * 1e3, dur = ms * 1e3;
        if (ts > end_us) ts = end_us;
        if (ts + dur > end_us) dur = end_us - ts;
        e->ts_us = ts;
        e->dur_us = dur;
        e->call = p->fn_calls;
        e->name = p->label_str[k];
        e->tid = p->id;
        e->shape = p->shape_str[k];
        e->dtype = (int8_t)desc[k].dtype;
        e->where = (int8_t)p->where[k];
    }
    return KB_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Public API                                                                                   */

kb_status kb_set_profiling(kb_context *ctx, int on) {
    if (!ctx) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "kb_set_profiling: argument ctx is NULL");
    if (on) KB_TRY(kb_trace_start(ctx));
    ctx->profiling = on != 0;
    return KB_OK;
}

int kb_profiling(const kb_context *ctx) { return ctx ? ctx->profiling : 0; }

static kb_status get_prof(const char *fname, const kb_function *fn, kb_fn_profile **out) {
    if (!fn) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: argument fn is NULL", fname);
    *out = kb_function_prof(fn);
    return KB_OK;
}

static void sort_order(kb_fn_profile *p) {
    if (p->order_valid) return;
    int m = 0;
    for (int k = 0; k < p->n; ++k)
        if (p->where[k] != KB_PW_NONE) p->order[m++] = k;
    /* insertion sort: stable (ties keep schedule order); n is the node count of one function */
    for (int i = 1; i < m; ++i) {
        int v = p->order[i], j = i;
        while (j > 0 && p->ms[p->order[j - 1]] < p->ms[v]) {
            p->order[j] = p->order[j - 1];
            --j;
        }
        p->order[j] = v;
    }
    p->order_valid = 1;
}

int kb_function_profile_count(const kb_function *fn) {
    kb_fn_profile *p = NULL;
    if (get_prof("kb_function_profile_count", fn, &p) != KB_OK) return -1;
    return p ? p->n_kernels : 0;
}

kb_status kb_function_profile_get(const kb_function *fn, int i, kb_op_profile *out) {
    const char *f = "kb_function_profile_get";
    kb_fn_profile *p = NULL;
    KB_TRY(get_prof(f, fn, &p));
    if (!out) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: argument out is NULL", f);
    int n = p ? p->n_kernels : 0;
    if (i < 0 || i >= n)
        return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: index %d out of range [0, %d)%s", f, i, n,
                            p ? "" : " (the function made no profiled call: kb_set_profiling or KB_PROFILE=1)");
    sort_order(p);
    int k = p->order[i];
    out->label = p->label[k];
    out->op = p->op[k];
    out->calls = p->calls[k];
    out->total_ms = p->ms[k];
    out->mean_ms = p->calls[k] ? p->ms[k] / (double)p->calls[k] : 0.0;
    out->device = where_name(p->where[k]);
    out->host_fallback = p->where[k] == KB_PW_FALLBACK;
    return KB_OK;
}

kb_status kb_function_profile_totals(const kb_function *fn, int64_t *calls, double *total_ms, double *ops_ms) {
    kb_fn_profile *p = NULL;
    KB_TRY(get_prof("kb_function_profile_totals", fn, &p));
    if (calls) *calls = p ? p->fn_calls : 0;
    if (total_ms) *total_ms = p ? p->fn_ms : 0.0;
    if (ops_ms) *ops_ms = p ? p->ops_ms : 0.0;
    return KB_OK;
}

kb_status kb_function_profile_reset(kb_function *fn) {
    kb_fn_profile *p = NULL;
    KB_TRY(get_prof("kb_function_profile_reset", fn, &p));
    if (!p) return KB_OK;
    memset(p->calls, 0, sizeof *p->calls * (size_t)p->n);
    memset(p->ms, 0, sizeof *p->ms * (size_t)p->n);
    p->fn_calls = 0;
    p->fn_ms = p->ops_ms = 0.0;
    p->order_valid = 0;
    return KB_OK;
}

static int top_rows(int top) {
    if (top > 0) return top;
    const char *env = getenv("KB_PROFILE_TOP");
    if (env && *env) {
        char *end = NULL;
        long v = strtol(env, &end, 10);
        if (end && !*end && v > 0 && v < 1000000000L) return (int)v;
    }
    return KB_PROFILE_TOP_DEFAULT;
}

static double pct(double part, double whole) { return whole > 0 ? 100.0 * part / whole : 0.0; }

static kb_status prof_print(const kb_fn_profile *cp, FILE *out, int top) {
    kb_fn_profile *p = (kb_fn_profile *)cp; /* the sort order is a cache */
    char dev[32];
    if (p->device == KB_DEVICE_CUDA) snprintf(dev, sizeof dev, "cuda:%d", p->ctx->cuda_ordinal);
    else snprintf(dev, sizeof dev, "cpu");
    double calls = (double)p->fn_calls;
    fprintf(out, "kb profile: function #%d on %s, %lld call%s, %.1f ms total, %.3f ms/call (ops %.3f ms/call)\n",
            p->id, dev, (long long)p->fn_calls, p->fn_calls == 1 ? "" : "s", p->fn_ms,
            calls > 0 ? p->fn_ms / calls : 0.0, calls > 0 ? p->ops_ms / calls : 0.0);
    sort_order(p);
    int m = p->n_kernels;
    int wop = 16, wlab = 20;
    for (int i = 0; i < m; ++i) {
        int k = p->order[i];
        int lo = (int)strlen(p->op[k]), ll = (int)strlen(p->label[k]);
        if (lo > wop) wop = lo;
        if (ll > wlab) wlab = ll;
    }
    fprintf(out, "  %-*s %6s %9s %11s %10s %6s\n", wop, "op", "nodes", "calls", "total ms", "mean ms", "%");
    /* per op type: distinct names in first-seen order, then sorted by total (stable) */
    typedef struct agg {
        const char *op;
        int nodes;
        int64_t calls;
        double ms;
    } agg;
    agg *a = (agg *)calloc((size_t)(m > 0 ? m : 1), sizeof *a);
    if (!a) return kb_set_error(KB_ERR_OUT_OF_MEMORY, "kb_function_profile_print: out of host memory");
    int na = 0;
    for (int i = 0; i < m; ++i) {
        int k = p->order[i], j = 0;
        while (j < na && strcmp(a[j].op, p->op[k]) != 0) ++j;
        if (j == na) a[na++].op = p->op[k];
        a[j].nodes++;
        a[j].calls += p->calls[k];
        a[j].ms += p->ms[k];
    }
    for (int i = 1; i < na; ++i) {
        agg v = a[i];
        int j = i;
        while (j > 0 && a[j - 1].ms < v.ms) {
            a[j] = a[j - 1];
            --j;
        }
        a[j] = v;
    }
    for (int j = 0; j < na; ++j)
        fprintf(out, "  %-*s %6d %9lld %11.3f %10.4f %6.1f\n", wop, a[j].op, a[j].nodes, (long long)a[j].calls,
                a[j].ms, a[j].calls ? a[j].ms / (double)a[j].calls : 0.0, pct(a[j].ms, p->ops_ms));
    free(a);
    int rows = top_rows(top);
    fprintf(out, "  %-*s %9s %11s %10s %6s  %s\n", wlab, "node", "calls", "total ms", "mean ms", "%", "device");
    for (int i = 0; i < m && i < rows; ++i) {
        int k = p->order[i];
        fprintf(out, "  %-*s %9lld %11.3f %10.4f %6.1f  %s\n", wlab, p->label[k], (long long)p->calls[k], p->ms[k],
                p->calls[k] ? p->ms[k] / (double)p->calls[k] : 0.0, pct(p->ms[k], p->ops_ms), where_name(p->where[k]));
    }
    if (m > rows) {
        double rest = 0;
        for (int i = rows; i < m; ++i) rest += p->ms[p->order[i]];
        fprintf(out, "  ... %d more node%s, %.3f ms (%.1f%%) (KB_PROFILE_TOP=%d shows them)\n", m - rows,
                m - rows == 1 ? "" : "s", rest, pct(rest, p->ops_ms), m);
    }
    return ferror(out) ? kb_set_error(KB_ERR_IO, "kb_function_profile_print: writing the table failed") : KB_OK;
}

kb_status kb_function_profile_print(const kb_function *fn, FILE *out, int top) {
    const char *f = "kb_function_profile_print";
    kb_fn_profile *p = NULL;
    KB_TRY(get_prof(f, fn, &p));
    if (!out) out = stderr;
    if (!p) {
        fprintf(out, "kb profile: the function made no profiled call (kb_set_profiling or KB_PROFILE=1)\n");
        return KB_OK;
    }
    return prof_print(p, out, top);
}

/* ------------------------------------------------------------------------------------------ */
/* Chrome trace JSON                                                                           */

/* Print one cJSON item (then free it) after a separator; 0 on failure. */
static int emit(FILE *f, cJSON *item, int *first) {
    if (!item) return 0;
    char *s = cJSON_PrintUnformatted(item);
    cJSON_Delete(item);
    if (!s) return 0;
    int ok = fprintf(f, "%s\n%s", *first ? "" : ",", s) >= 0;
    cJSON_free(s);
    *first = 0;
    return ok;
}

static cJSON *meta_event(const char *name, int pid, int tid, const char *value) {
    cJSON *e = cJSON_CreateObject();
    if (!e) return NULL;
    cJSON *args = cJSON_CreateObject();
    if (!args || !cJSON_AddStringToObject(args, "name", value)) {
        cJSON_Delete(args);
        cJSON_Delete(e);
        return NULL;
    }
    cJSON_AddStringToObject(e, "name", name);
    cJSON_AddStringToObject(e, "ph", "M");
    cJSON_AddNumberToObject(e, "pid", pid);
    cJSON_AddNumberToObject(e, "tid", tid);
    cJSON_AddItemToObject(e, "args", args);
    return e;
}

static const char *str_at(const struct kb_trace *t, int i) { return i >= 0 && i < t->n_str ? t->str[i] : "?"; }

static cJSON *x_event(const struct kb_trace *t, const kb_trace_ev *ev, int pid) {
    cJSON *e = cJSON_CreateObject(), *args = cJSON_CreateObject();
    if (!e || !args) {
        cJSON_Delete(e);
        cJSON_Delete(args);
        return NULL;
    }
    int call_event = ev->where == KB_PW_NONE;
    const char *name = str_at(t, ev->name);
    char cat[48];
    if (call_event) snprintf(cat, sizeof cat, "function");
    else {
        snprintf(cat, sizeof cat, "%s", name);
        char *hash = strchr(cat, '#');
        if (hash) *hash = 0; /* "conv2d#12" -> "conv2d" */
    }
    cJSON_AddStringToObject(e, "name", call_event ? "kb_function_call" : name);
    cJSON_AddStringToObject(e, "cat", cat);
    cJSON_AddStringToObject(e, "ph", "X");
    cJSON_AddNumberToObject(e, "ts", ev->ts_us);
    cJSON_AddNumberToObject(e, "dur", ev->dur_us);
    cJSON_AddNumberToObject(e, "pid", pid);
    cJSON_AddNumberToObject(e, "tid", ev->tid);
    cJSON_AddNumberToObject(args, "call", (double)ev->call);
    if (call_event) {
        cJSON_AddStringToObject(args, "function", name);
    } else {
        const char *dt = kb_dtype_name((kb_dtype)ev->dtype);
        cJSON_AddStringToObject(args, "shape", str_at(t, ev->shape));
        cJSON_AddStringToObject(args, "dtype", dt ? dt : "?");
        cJSON_AddStringToObject(args, "device", where_name(ev->where));
        cJSON_AddBoolToObject(args, "fallback", ev->where == KB_PW_FALLBACK);
    }
    cJSON_AddItemToObject(e, "args", args);
    return e;
}

kb_status kb_profile_write_trace(kb_context *ctx, const char *path) {
    const char *fname = "kb_profile_write_trace";
    if (!ctx) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: argument ctx is NULL", fname);
    if (!path) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: argument path is NULL", fname);
    if (!*path) return kb_set_error(KB_ERR_INVALID_ARGUMENT, "%s: path is empty", fname);
    FILE *f = fopen(path, "w");
    if (!f) return kb_set_error(KB_ERR_IO, "%s: cannot open '%s' for writing: %s", fname, path, strerror(errno));
    const struct kb_trace *t = ctx->trace;
    int pid = (int)getpid(), first = 1, ok = 1;
    ok = fprintf(f, "{\"traceEvents\":[") >= 0;
    if (ok) ok = emit(f, meta_event("process_name", pid, 0, "kb"), &first);
    for (int i = 0; t && ok && i < t->n_threads; ++i)
        ok = emit(f, meta_event("thread_name", pid, i + 1, str_at(t, t->threads[i])), &first);
    for (int64_t i = 0; t && ok && i < t->n; ++i) ok = emit(f, x_event(t, &t->ev[i], pid), &first);
    int64_t dropped = t ? t->dropped : 0;
    if (ok) {
        cJSON *other = cJSON_CreateObject();
        if (other) {
            cJSON_AddNumberToObject(other, "kb_dropped_events", (double)dropped);
            cJSON_AddNumberToObject(other, "kb_max_events", (double)(t ? t->max : KB_TRACE_MAX_DEFAULT));
        }
        char *s = other ? cJSON_PrintUnformatted(other) : NULL;
        cJSON_Delete(other);
        ok = s && fprintf(f, "\n],\"displayTimeUnit\":\"ms\",\"otherData\":%s}\n", s) >= 0;
        cJSON_free(s);
    }
    if (ferror(f)) ok = 0;
    if (fclose(f) != 0) ok = 0;
    if (!ok) return kb_set_error(KB_ERR_IO, "%s: writing '%s' failed (disk full or out of memory)", fname, path);
    if (dropped > 0)
        kb_notice(ctx, KB_LOG_WARN,
                  "%s: %lld trace events were dropped (the buffer holds %lld; raise KB_PROFILE_TRACE_MAX)", fname,
                  (long long)dropped, (long long)t->max);
    return KB_OK;
}
